/*
 * admin_audit.c - the audit commands of the admin socket (admin.c).
 *
 * What `ketenbus audit` asks a running broker (LevelDB lets only the
 * broker open its store). Every answer is bounded so the loop never waits
 * long: pages of at most KB_AUDITQ_MAX_LIMIT matches and
 * KB_AUDITQ_BUDGET_ADMIN candidates, KB_ADMIN_RECORDS_MAX raw records,
 * KB_ADMIN_LEAVES_MAX leaf hashes, KB_AUDITQ_PRUNE_CHUNK pruned records.
 * Record bytes travel as base64 of the stored value, so the CLI checks and
 * decodes exactly what is on disk (the verifier trusts nothing the broker
 * says about them). Requests and answers, all JSON objects with "ok":
 *   audit_info                          size, pruned end (every kind, and per kind: pruned_kinds,
 *                                       indexed by kind), broker id, latest checkpoint
 *   audit_query {filter, from, limit}   {records: [{index, bytes}], next, done}
 *   audit_records {from, count, end?}   {records: [{index, bytes}], size, next, done}
 *                                       (end: none at or past it, so that a reader's pass keeps
 *                                       to the records there were when it began)
 *   audit_leaves {from, count}          {hashes: base64 of n*32 bytes, n}
 *   audit_checkpoints {from, limit}     {checkpoints: [{size, note}], next, done}
 *   audit_proof {index, size}           {leaf: hex, proof: [hex]}
 *   audit_consistency {from, to}        {proof: [hex]}
 *   audit_prune {before_us, kind?}      {target, limit, first, end, count, record, more}
 *                                       (kind: a Ketenbus__Kind, 0 for records about no
 *                                       message; without it every record)
 * A prune signs a checkpoint first (only records under a signature are
 * pruned), is audited (PRUNED record) and is followed by a checkpoint at
 * once, so the PRUNED record is covered before anyone verifies.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "auditq.h"
#include "broker.h"
#include "kb_error.h"
#include "kb_log.h"
#include "kb_util.h"

#define KB_ADMIN_RECORDS_MAX     4096u  /* raw records per audit_records answer */
#define KB_ADMIN_LEAVES_MAX      16384u /* leaf hashes per audit_leaves answer (512 KiB) */
#define KB_ADMIN_CHECKPOINTS_MAX 1000u  /* notes per audit_checkpoints answer */

static json_object *s_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_object *s_fail(const char *fmt, ...)
{
    char msg[KB_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string(msg));
    return o;
}

/* s_fail for a store read that failed with rc: marked "damaged" when the
 * store itself could not be read or decoded (KB_EIO, KB_EPROTO), so that
 * `audit verify` tells damage apart from a broker that could not answer
 * (out of memory, say). */
static json_object *s_fail_read(int rc, const char *what)
{
    json_object *o = s_fail("%s: %s", what, kb_last_error());
    json_object_object_add(o, "damaged", json_object_new_boolean(rc == KB_EIO || rc == KB_EPROTO));
    return o;
}

static json_object *s_ok(void)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    return o;
}

/* An unsigned integer member (absent: def); -1 if present but not one. */
static int s_uint(json_object *req, const char *key, uint64_t def, uint64_t max, uint64_t *out)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(req, key, &v)) {
        *out = def;
        return 0;
    }
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
        (uint64_t)json_object_get_int64(v) > max)
        return -1;
    *out = (uint64_t)json_object_get_int64(v);
    return 0;
}

static json_object *s_b64(const uint8_t *data, size_t len)
{
    size_t out_len = 4 * ((len + 2) / 3) + 1;
    char *buf = malloc(out_len);
    if (!buf)
        return NULL;
    EVP_EncodeBlock((unsigned char *)buf, data, (int)len);
    json_object *s = json_object_new_string(buf);
    free(buf);
    return s;
}

static json_object *s_hex(const uint8_t *h)
{
    char hex[2 * KB_MERKLE_HASH_LEN + 1];
    kb_hex(h, KB_MERKLE_HASH_LEN, hex);
    return json_object_new_string(hex);
}

static void s_add_u64(json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

/* ------------------------------------------------------------ reads */

static json_object *s_info(kb_broker_t *b)
{
    json_object *o = s_ok();
    s_add_u64(o, "size", kb_store_audit_size(b->store));
    s_add_u64(o, "pruned", kb_store_audit_pruned(b->store));
    json_object *kinds = json_object_new_array();
    for (int k = 0; k < (int)KB_STORE_KINDS; k++)
        json_object_array_add(kinds, json_object_new_int64((int64_t)kb_store_audit_pruned_kind(b->store, k)));
    json_object_object_add(o, "pruned_kinds", kinds);
    json_object_object_add(o, "broker_id", json_object_new_string(b->conf->broker_id));
    uint64_t size = 0;
    char *note = NULL;
    size_t len = 0;
    if (kb_store_checkpoint_latest(b->store, &size, &note, &len) == KB_OK) {
        json_object *cp = json_object_new_object();
        s_add_u64(cp, "size", size);
        json_object_object_add(cp, "note", json_object_new_string_len(note, (int)len));
        json_object_object_add(o, "checkpoint", cp);
    }
    free(note);
    return o;
}

/* Records as [{index, bytes}] into an array. */
typedef struct {
    json_object *list; /* the array */
} s_list_t;

static void s_push_record(s_list_t *l, uint64_t index, const uint8_t *raw, size_t len)
{
    json_object *r = json_object_new_object();
    s_add_u64(r, "index", index);
    json_object_object_add(r, "bytes", s_b64(raw, len));
    json_object_array_add(l->list, r);
}

static int s_query_fn(uint64_t index, const uint8_t *raw, size_t len, const Ketenbus__AuditRecord *r, void *arg)
{
    (void)r;
    s_push_record(arg, index, raw, len);
    return 0;
}

static json_object *s_query(kb_broker_t *b, json_object *req)
{
    json_object *fo = NULL;
    kb_auditq_filter_t f;
    uint64_t from = 0, limit = 0;
    if (s_uint(req, "from", 0, INT64_MAX, &from) != 0 ||
        s_uint(req, "limit", KB_AUDITQ_MAX_LIMIT, KB_AUDITQ_MAX_LIMIT, &limit) != 0 || limit == 0)
        return s_fail("audit_query: from and limit (1..%u) must be integers", KB_AUDITQ_MAX_LIMIT);
    if (!json_object_object_get_ex(req, "filter", &fo))
        memset(&f, 0, sizeof f);
    else if (kb_auditq_filter_from_json(fo, &f) != KB_OK)
        return s_fail("audit_query: %s", kb_last_error());
    s_list_t l = {json_object_new_array()};
    kb_auditq_page_t page;
    int rc = kb_auditq_run(b->store, &f, from, (size_t)limit, KB_AUDITQ_BUDGET_ADMIN, s_query_fn, &l, &page);
    if (rc != KB_OK) {
        json_object_put(l.list);
        return s_fail_read(rc, "audit_query");
    }
    json_object *o = s_ok();
    json_object_object_add(o, "records", l.list);
    s_add_u64(o, "next", page.next);
    json_object_object_add(o, "done", json_object_new_boolean(page.done));
    return o;
}

static int s_raw_fn(uint64_t index, const uint8_t *val, size_t len, void *arg)
{
    s_push_record(arg, index, val, len);
    return 0;
}

static json_object *s_records(kb_broker_t *b, json_object *req)
{
    uint64_t from = 0, count = 0, end = 0;
    if (s_uint(req, "from", 0, INT64_MAX, &from) != 0 ||
        s_uint(req, "count", KB_ADMIN_RECORDS_MAX, KB_ADMIN_RECORDS_MAX, &count) != 0 || count == 0 ||
        s_uint(req, "end", UINT64_MAX, INT64_MAX, &end) != 0)
        return s_fail("audit_records: from, count (1..%u) and end must be integers", KB_ADMIN_RECORDS_MAX);
    uint64_t size = kb_store_audit_size(b->store);
    uint64_t stop = end < size ? end : size;
    s_list_t l = {json_object_new_array()};
    int rc = kb_store_audit_scan(b->store, from, stop, (size_t)count, s_raw_fn, &l);
    if (rc != KB_OK) {
        json_object_put(l.list);
        return s_fail_read(rc, "audit_records");
    }
    size_t n = json_object_array_length(l.list);
    uint64_t next = stop;
    if (n == count) {
        json_object *last = json_object_array_get_idx(l.list, n - 1), *ix = NULL;
        json_object_object_get_ex(last, "index", &ix);
        next = (uint64_t)json_object_get_int64(ix) + 1;
    }
    json_object *o = s_ok();
    json_object_object_add(o, "records", l.list);
    s_add_u64(o, "size", size);
    s_add_u64(o, "next", next);
    json_object_object_add(o, "done", json_object_new_boolean(next >= stop));
    return o;
}

static json_object *s_leaves(kb_broker_t *b, json_object *req)
{
    uint64_t from = 0, count = 0;
    if (s_uint(req, "from", 0, INT64_MAX, &from) != 0 ||
        s_uint(req, "count", KB_ADMIN_LEAVES_MAX, KB_ADMIN_LEAVES_MAX, &count) != 0 || count == 0)
        return s_fail("audit_leaves: from and count (1..%u) must be integers", KB_ADMIN_LEAVES_MAX);
    uint8_t *buf = malloc((size_t)count * KB_MERKLE_HASH_LEN);
    size_t n = 0;
    if (!buf)
        return s_fail("audit_leaves: out of memory");
    int rc = kb_store_leaf_hashes(b->store, from, (size_t)count, buf, &n);
    if (rc != KB_OK) {
        free(buf);
        return s_fail_read(rc, "audit_leaves");
    }
    json_object *o = s_ok();
    json_object_object_add(o, "hashes", s_b64(buf, n * KB_MERKLE_HASH_LEN));
    s_add_u64(o, "n", n);
    free(buf);
    return o;
}

typedef struct {
    json_object *list; /* [{size, note}] */
    size_t max;        /* notes wanted */
    uint64_t next;     /* size after the last one */
    int more;          /* 1: stopped at max */
} s_cps_t;

static int s_cp_fn(uint64_t size, const char *note, size_t len, void *arg)
{
    s_cps_t *c = arg;
    if (json_object_array_length(c->list) == c->max) {
        c->more = 1;
        return 1;
    }
    json_object *o = json_object_new_object();
    s_add_u64(o, "size", size);
    json_object_object_add(o, "note", json_object_new_string_len(note, (int)len));
    json_object_array_add(c->list, o);
    c->next = size + 1;
    return 0;
}

static json_object *s_checkpoints(kb_broker_t *b, json_object *req)
{
    uint64_t from = 0, limit = 0;
    if (s_uint(req, "from", 0, INT64_MAX, &from) != 0 ||
        s_uint(req, "limit", KB_ADMIN_CHECKPOINTS_MAX, KB_ADMIN_CHECKPOINTS_MAX, &limit) != 0 || limit == 0)
        return s_fail("audit_checkpoints: from and limit (1..%u) must be integers", KB_ADMIN_CHECKPOINTS_MAX);
    s_cps_t c = {json_object_new_array(), (size_t)limit, from, 0};
    int rc = kb_store_checkpoint_scan_from(b->store, from, s_cp_fn, &c);
    if (rc != KB_OK) {
        json_object_put(c.list);
        return s_fail_read(rc, "audit_checkpoints");
    }
    json_object *o = s_ok();
    json_object_object_add(o, "checkpoints", c.list);
    s_add_u64(o, "next", c.next);
    json_object_object_add(o, "done", json_object_new_boolean(!c.more));
    return o;
}

static json_object *s_proof_list(const uint8_t *proof, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, s_hex(proof + i * KB_MERKLE_HASH_LEN));
    return a;
}

static json_object *s_proof(kb_broker_t *b, json_object *req)
{
    uint64_t index = 0, size = 0;
    if (s_uint(req, "index", UINT64_MAX, INT64_MAX, &index) != 0 || index == UINT64_MAX ||
        s_uint(req, "size", kb_merkle_size(b->tree), INT64_MAX, &size) != 0)
        return s_fail("audit_proof: index and size must be integers");
    uint8_t proof[KB_MERKLE_PROOF_BYTES], leaf[KB_MERKLE_HASH_LEN];
    size_t n = 0;
    if (index >= size || kb_merkle_leaf(b->tree, index, leaf) != KB_OK ||
        kb_merkle_inclusion_proof(b->tree, index, size, proof, &n) != KB_OK)
        return s_fail("audit_proof: no proof of record %llu in a tree of %llu: %s", (unsigned long long)index,
                      (unsigned long long)size, index >= size ? "beyond the tree" : kb_last_error());
    json_object *o = s_ok();
    json_object_object_add(o, "leaf", s_hex(leaf));
    json_object_object_add(o, "proof", s_proof_list(proof, n));
    return o;
}

static json_object *s_consistency(kb_broker_t *b, json_object *req)
{
    uint64_t from = 0, to = 0;
    if (s_uint(req, "from", UINT64_MAX, INT64_MAX, &from) != 0 || from == UINT64_MAX ||
        s_uint(req, "to", kb_merkle_size(b->tree), INT64_MAX, &to) != 0)
        return s_fail("audit_consistency: from and to must be integers");
    uint8_t proof[KB_MERKLE_PROOF_BYTES];
    size_t n = 0;
    if (kb_merkle_consistency_proof(b->tree, from, to, proof, &n) != KB_OK)
        return s_fail("audit_consistency: %s", kb_last_error());
    json_object *o = s_ok();
    json_object_object_add(o, "proof", s_proof_list(proof, n));
    return o;
}

/* ------------------------------------------------------------ prune */

static json_object *s_prune(kb_broker_t *b, json_object *req, const char *who)
{
    json_object *before = NULL, *kind = NULL;
    if (!json_object_object_get_ex(req, "before_us", &before) || !json_object_is_type(before, json_type_int))
        return s_fail("audit_prune: before_us must be an integer");
    int k = KB_PRUNE_ALL;
    if (json_object_object_get_ex(req, "kind", &kind)) {
        int64_t v = json_object_is_type(kind, json_type_int) ? json_object_get_int64(kind) : -1;
        if (v < 0 || v >= (int64_t)KB_STORE_KINDS)
            return s_fail("audit_prune: kind must be an integer 0..%u", KB_STORE_KINDS - 1);
        k = (int)v;
    }
    /* what the loop staged while a batch was written goes first, with its
     * replies, so that the prune's batch holds the prune alone: written
     * here by itself, its failure must not confirm or drop anyone's work */
    if (broker_write_staged(b) != KB_OK)
        return s_fail("audit_prune: the broker could not store its staged work: %s", kb_last_error());
    /* only records under a signed checkpoint are pruned: sign one first */
    checkpoint_maybe(b, 1);
    kb_auditq_prune_t p;
    int rc = kb_auditq_prune(b->store, b->batch, b->tree, k, json_object_get_int64(before), KB_AUDITQ_PRUNE_CHUNK,
                             who, &p);
    if (rc == KB_OK)
        rc = kb_store_commit(b->store, b->batch, 1);
    if (rc != KB_OK) {
        char detail[KB_ERROR_MAX];
        snprintf(detail, sizeof detail, "%s", kb_last_error());
        broker_resync(b);
        kb_log(KB_LOG_ERROR, "audit_prune_failed", "by=\"%s\" detail=\"%s\"", who, detail);
        return s_fail("audit_prune: %s", detail);
    }
    if (p.logged) {
        kb_log(KB_LOG_INFO, "audit_pruned", "by=\"%s\" kind=%d first=%llu end=%llu record=%llu", who, k,
               (unsigned long long)p.first, (unsigned long long)p.end, (unsigned long long)p.record);
        checkpoint_maybe(b, 1); /* cover the PRUNED record with a signature now */
    }
    json_object *o = s_ok();
    s_add_u64(o, "target", p.target);
    s_add_u64(o, "limit", p.limit);
    s_add_u64(o, "first", p.first);
    s_add_u64(o, "end", p.end);
    s_add_u64(o, "count", p.count);
    json_object_object_add(o, "logged", json_object_new_boolean(p.logged));
    if (p.logged)
        s_add_u64(o, "record", p.record);
    json_object_object_add(o, "more", json_object_new_boolean(p.more));
    return o;
}

json_object *admin_audit(kb_broker_t *b, const char *command, json_object *req, const char *who)
{
    if (strcmp(command, "audit_info") == 0)
        return s_info(b);
    if (strcmp(command, "audit_query") == 0)
        return s_query(b, req);
    if (strcmp(command, "audit_records") == 0)
        return s_records(b, req);
    if (strcmp(command, "audit_leaves") == 0)
        return s_leaves(b, req);
    if (strcmp(command, "audit_checkpoints") == 0)
        return s_checkpoints(b, req);
    if (strcmp(command, "audit_proof") == 0)
        return s_proof(b, req);
    if (strcmp(command, "audit_consistency") == 0)
        return s_consistency(b, req);
    if (strcmp(command, "audit_prune") == 0)
        return s_prune(b, req, who);
    return NULL;
}
