/*
 * audit_source.c - the admin-socket and offline sources of audit_source.h.
 *
 * The admin source keeps one DEALER socket for the whole command (verify
 * asks hundreds of pages); a request that times out leaves the socket
 * unusable (a late answer would pair with the next request), so the source
 * refuses further requests after one. Record bytes arrive as base64 and
 * are decoded strictly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <zmq.h>

#include "audit_source.h"
#include "checkpoint.h"
#include "conf.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_note.h"
#include "kb_util.h"
#include "store.h"

#define KB_ASRC_TIMEOUT_MS   30000u  /* one admin request (a page is bounded on the broker's side) */
#define KB_ASRC_PAGE_RECORDS 4096u   /* records per admin page (the broker's maximum) */
#define KB_ASRC_PAGE_LEAVES  16384u  /* leaf hashes per admin page (the broker's maximum) */
#define KB_ASRC_PAGE_CPS     1000u   /* checkpoint notes per admin page */
#define KB_ASRC_OFFLINE_CHUNK 65536u /* records pruned per offline call */
#define KB_ASRC_ENDPOINT_MAX 4200u   /* ipc:// plus a path */

struct kb_asrc {
    int offline;                  /* 1: store, 0: admin socket */
    /* admin socket */
    char endpoint[KB_ASRC_ENDPOINT_MAX]; /* where the broker listens */
    void *zctx;                   /* ZeroMQ context */
    void *sock;                   /* DEALER to the admin socket */
    int broken;                   /* a request timed out: no more */
    int call_rc;                  /* why the last s_call() gave no answer */
    /* offline */
    kb_store_t *store;            /* the stopped broker's store */
    kb_batch_t *batch;            /* staged changes (prune) */
    kb_store_tiles_t tiles;       /* tree binding */
    kb_merkle_t *tree;            /* the audit tree, made on first use */
    /* from the chain file */
    char *broker_id;              /* broker id, NULL without --config */
    char *key_dir;                /* broker key directory, NULL without --config */
};

/* ------------------------------------------------------------ helpers */

static int s_b64_decode(const char *text, uint8_t **out, size_t *len)
{
    size_t tl = strlen(text);
    *out = NULL;
    *len = 0;
    if (tl % 4 != 0)
        return kb_error_set(KB_EPROTO, "malformed base64 from the broker");
    uint8_t *buf = malloc(tl / 4 * 3 + 1);
    if (!buf)
        return kb_error_set(KB_ENOMEM, "out of memory");
    int n = tl ? EVP_DecodeBlock(buf, (const unsigned char *)text, (int)tl) : 0;
    if (n < 0) {
        free(buf);
        return kb_error_set(KB_EPROTO, "malformed base64 from the broker");
    }
    size_t pad = (tl >= 1 && text[tl - 1] == '=') + (tl >= 2 && text[tl - 2] == '=');
    *out = buf;
    *len = (size_t)n - pad;
    return KB_OK;
}

static int s_get_u64(json_object *o, const char *key, uint64_t *v)
{
    json_object *x = NULL;
    if (!json_object_object_get_ex(o, key, &x) || !json_object_is_type(x, json_type_int) ||
        json_object_get_int64(x) < 0)
        return kb_error_set(KB_EPROTO, "answer without \"%s\"", key);
    *v = (uint64_t)json_object_get_int64(x);
    return KB_OK;
}

static int s_get_bool(json_object *o, const char *key)
{
    json_object *x = NULL;
    return json_object_object_get_ex(o, key, &x) && json_object_get_boolean(x);
}

static int s_unhex_hash(json_object *v, uint8_t out[KB_MERKLE_HASH_LEN])
{
    if (!json_object_is_type(v, json_type_string) || strlen(json_object_get_string(v)) != 2 * KB_MERKLE_HASH_LEN ||
        kb_unhex(json_object_get_string(v), out, KB_MERKLE_HASH_LEN) != KB_OK)
        return kb_error_set(KB_EPROTO, "malformed hash from the broker");
    return KB_OK;
}

/* ------------------------------------------------------------ admin calls */

/* Send req (consumed) and return the answer if it says ok; else NULL
 * with kb_last_error() holding the broker's error or why none came, and
 * a->call_rc its code: KB_EIO when the broker could not read its store,
 * KB_EREJECTED when it refused otherwise, KB_ENET when no usable answer
 * came. */
static json_object *s_call(kb_asrc_t *a, json_object *req)
{
    json_object *ans = NULL;
    a->call_rc = KB_ENET;
    if (a->broken) {
        json_object_put(req);
        kb_error_set(KB_ENET, "the admin socket did not answer before");
        return NULL;
    }
    const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    if (zmq_send(a->sock, text, strlen(text), 0) < 0) {
        kb_error_set(KB_ENET, "send to %s: %s", a->endpoint, zmq_strerror(zmq_errno()));
        json_object_put(req);
        return NULL;
    }
    json_object_put(req);
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, a->sock, 0) < 0) {
        a->broken = 1;
        zmq_msg_close(&m);
        kb_error_set(KB_ENET, "no answer from %s within %u s (is ketenbusd running? with --offline a stopped "
                              "broker's data directory is opened directly)",
                     a->endpoint, KB_ASRC_TIMEOUT_MS / 1000);
        return NULL;
    }
    json_tokener *tok = json_tokener_new();
    if (tok) {
        ans = json_tokener_parse_ex(tok, zmq_msg_data(&m), (int)zmq_msg_size(&m));
        json_tokener_free(tok);
    }
    zmq_msg_close(&m);
    if (!json_object_is_type(ans, json_type_object)) {
        json_object_put(ans);
        kb_error_set(KB_EPROTO, "malformed answer from %s", a->endpoint);
        return NULL;
    }
    if (!s_get_bool(ans, "ok")) {
        json_object *e = NULL;
        json_object_object_get_ex(ans, "error", &e);
        /* a store the broker could not read is damage (see
         * kb_asrc_is_damage); any other refusal is not */
        a->call_rc = s_get_bool(ans, "damaged") ? KB_EIO : KB_EREJECTED;
        kb_error_set(a->call_rc, "the broker says: %s", e ? json_object_get_string(e) : "(no reason)");
        json_object_put(ans);
        return NULL;
    }
    return ans;
}

static json_object *s_request(const char *command)
{
    json_object *req = json_object_new_object();
    json_object_object_add(req, "command", json_object_new_string(command));
    return req;
}

static void s_add_u64(json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

/* Hand the [{index, bytes}] of ans below end to fn (a broker that knows
 * no end answers past it). */
static int s_each_record(json_object *ans, uint64_t end, kb_asrc_record_fn *fn, void *arg)
{
    json_object *list = NULL;
    if (!json_object_object_get_ex(ans, "records", &list) || !json_object_is_type(list, json_type_array))
        return kb_error_set(KB_EPROTO, "answer without records");
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *r = json_object_array_get_idx(list, i), *b = NULL;
        uint64_t index;
        if (s_get_u64(r, "index", &index) != KB_OK || !json_object_object_get_ex(r, "bytes", &b) ||
            !json_object_is_type(b, json_type_string))
            return kb_error_set(KB_EPROTO, "malformed record in the answer");
        if (index >= end)
            break;
        uint8_t *raw;
        size_t len;
        int rc = s_b64_decode(json_object_get_string(b), &raw, &len);
        if (rc != KB_OK)
            return rc;
        int stop = fn(index, raw, len, arg);
        free(raw);
        if (stop)
            break;
    }
    return KB_OK;
}

/* ------------------------------------------------------------ open */

static int s_load_config(kb_asrc_t *a, const char *path, const char **data_dir)
{
    kb_conf_t *conf = kb_conf_load_ex(path, KB_CONF_SKIP_KEYS, NULL);
    if (!conf)
        return KB_ECONFIG;
    a->broker_id = strdup(conf->broker_id);
    a->key_dir = strdup(conf->key_dir);
    char *dd = strdup(conf->data_dir);
    kb_conf_destroy(&conf);
    if (!a->broker_id || !a->key_dir || !dd) {
        free(dd);
        return kb_error_set(KB_ENOMEM, "out of memory");
    }
    *data_dir = dd;
    return KB_OK;
}

kb_asrc_t *kb_asrc_open(const kb_asrc_opts_t *o)
{
    kb_asrc_t *a = calloc(1, sizeof *a);
    if (!a) {
        kb_error_set(KB_ENOMEM, "out of memory");
        return NULL;
    }
    a->offline = o->offline;
    const char *conf_data = NULL;
    if (o->config && s_load_config(a, o->config, &conf_data) != KB_OK)
        goto fail;
    const char *data = o->data ? o->data : conf_data;
    if (a->offline) {
        if (!data) {
            kb_error_set(KB_EINVAL, "--offline needs --data DIR (or --config FILE naming data_dir)");
            goto fail;
        }
        a->store = kb_store_open_ex(data, NULL, KB_STORE_NO_CREATE);
        a->batch = kb_batch_new();
        if (!a->store || !a->batch)
            goto fail;
        a->tiles.store = a->store;
        a->tiles.batch = a->batch;
    } else {
        int rc;
        if (o->admin)
            rc = kb_fmt(a->endpoint, sizeof a->endpoint, "%s", o->admin);
        else if (data)
            rc = kb_fmt(a->endpoint, sizeof a->endpoint, "ipc://%s/admin.sock", data);
        else
            rc = kb_error_set(KB_EINVAL, "--data DIR, --admin ENDPOINT or --config FILE is required");
        if (rc != KB_OK)
            goto fail;
        int zero = 0, timeout = (int)KB_ASRC_TIMEOUT_MS;
        a->zctx = zmq_ctx_new();
        a->sock = a->zctx ? zmq_socket(a->zctx, ZMQ_DEALER) : NULL;
        if (!a->sock || zmq_setsockopt(a->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
            zmq_setsockopt(a->sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout) != 0 ||
            zmq_connect(a->sock, a->endpoint) != 0) {
            kb_error_set(KB_ENET, "cannot connect to %s: %s", a->endpoint, zmq_strerror(zmq_errno()));
            goto fail;
        }
    }
    free((char *)conf_data);
    return a;
fail:
    free((char *)conf_data);
    kb_asrc_destroy(&a);
    return NULL;
}

void kb_asrc_destroy(kb_asrc_t **p)
{
    if (!p || !*p)
        return;
    kb_asrc_t *a = *p;
    if (a->sock)
        zmq_close(a->sock);
    if (a->zctx)
        zmq_ctx_term(a->zctx);
    kb_merkle_destroy(&a->tree);
    kb_batch_destroy(&a->batch);
    kb_store_destroy(&a->store);
    free(a->broker_id);
    free(a->key_dir);
    free(a);
    *p = NULL;
}

int kb_asrc_is_offline(const kb_asrc_t *a)
{
    return a->offline;
}

const char *kb_asrc_key_dir(const kb_asrc_t *a)
{
    return a->key_dir;
}

/* The offline tree at the log's size, made on first use. */
static int s_tree(kb_asrc_t *a)
{
    if (!a->tree) {
        kb_merkle_io_t io = kb_store_tiles_io(&a->tiles);
        a->tree = kb_merkle_new(&io);
        if (!a->tree)
            return KB_ENOMEM;
    }
    if (kb_merkle_size(a->tree) != kb_store_audit_size(a->store) || kb_merkle_size(a->tree) == 0)
        return kb_merkle_load(a->tree, kb_store_audit_size(a->store));
    return KB_OK;
}

/* ------------------------------------------------------------ reads */

void kb_asrc_info_clear(kb_asrc_info_t *info)
{
    free(info->cp_note);
    memset(info, 0, sizeof *info);
}

int kb_asrc_info(kb_asrc_t *a, kb_asrc_info_t *info)
{
    memset(info, 0, sizeof *info);
    int rc = KB_OK;
    if (a->offline) {
        info->size = kb_store_audit_size(a->store);
        info->pruned = kb_store_audit_pruned(a->store);
        for (int k = 0; k < (int)KB_STORE_KINDS; k++)
            info->pruned_kind[k] = kb_store_audit_pruned_kind(a->store, k);
        rc = kb_store_checkpoint_latest(a->store, &info->cp_size, &info->cp_note, &info->cp_len);
        if (rc == KB_OK)
            info->has_checkpoint = 1;
        else if (rc == KB_ENOTFOUND)
            rc = KB_OK;
    } else {
        json_object *ans = s_call(a, s_request("audit_info")), *id = NULL, *cp = NULL, *note = NULL, *kinds = NULL;
        if (!ans)
            return a->call_rc;
        rc = s_get_u64(ans, "size", &info->size);
        if (rc == KB_OK)
            rc = s_get_u64(ans, "pruned", &info->pruned);
        /* per kind: absent from a broker that prunes only every kind */
        if (rc == KB_OK && json_object_object_get_ex(ans, "pruned_kinds", &kinds)) {
            if (!json_object_is_type(kinds, json_type_array) || json_object_array_length(kinds) != KB_STORE_KINDS)
                rc = kb_error_set(KB_EPROTO, "malformed pruned_kinds from the broker");
            for (size_t k = 0; rc == KB_OK && k < KB_STORE_KINDS; k++) {
                json_object *e = json_object_array_get_idx(kinds, k);
                if (!json_object_is_type(e, json_type_int) || json_object_get_int64(e) < 0)
                    rc = kb_error_set(KB_EPROTO, "malformed pruned_kinds from the broker");
                else
                    info->pruned_kind[k] = (uint64_t)json_object_get_int64(e);
            }
        }
        if (rc == KB_OK && json_object_object_get_ex(ans, "broker_id", &id))
            snprintf(info->broker_id, sizeof info->broker_id, "%.64s", json_object_get_string(id));
        if (rc == KB_OK && json_object_object_get_ex(ans, "checkpoint", &cp)) {
            rc = s_get_u64(cp, "size", &info->cp_size);
            if (rc == KB_OK && json_object_object_get_ex(cp, "note", &note)) {
                info->cp_note = strdup(json_object_get_string(note));
                info->cp_len = info->cp_note ? strlen(info->cp_note) : 0;
                info->has_checkpoint = info->cp_note != NULL;
            }
        }
        json_object_put(ans);
    }
    if (a->broker_id)
        snprintf(info->broker_id, sizeof info->broker_id, "%.64s", a->broker_id);
    if (rc == KB_OK && !info->broker_id[0] && info->has_checkpoint) {
        /* the origin of the latest note: "ketenbus/<id>" */
        kb_note_checkpoint_t cp;
        if (kb_note_parse(info->cp_note, info->cp_len, &cp) == KB_OK && strncmp(cp.origin, "ketenbus/", 9) == 0)
            snprintf(info->broker_id, sizeof info->broker_id, "%.64s", cp.origin + 9);
    }
    if (rc != KB_OK)
        kb_asrc_info_clear(info);
    return rc;
}

typedef struct {
    kb_asrc_record_fn *fn; /* the caller's callback */
    void *arg;             /* its argument */
} s_fwd_t;

static int s_fwd_query(uint64_t index, const uint8_t *raw, size_t len, const Ketenbus__AuditRecord *r, void *arg)
{
    (void)r;
    s_fwd_t *f = arg;
    return f->fn(index, raw, len, f->arg);
}

int kb_asrc_query(kb_asrc_t *a, const kb_auditq_filter_t *f, uint64_t from, size_t limit, kb_asrc_record_fn *fn,
                  void *arg, uint64_t *next, int *done)
{
    if (limit > KB_AUDITQ_MAX_LIMIT)
        limit = KB_AUDITQ_MAX_LIMIT;
    if (a->offline) {
        s_fwd_t fw = {fn, arg};
        kb_auditq_page_t page;
        int rc = kb_auditq_run(a->store, f, from, limit, 0, s_fwd_query, &fw, &page);
        if (rc == KB_OK) {
            *next = page.next;
            *done = page.done;
        }
        return rc;
    }
    json_object *req = s_request("audit_query");
    json_object_object_add(req, "filter", kb_auditq_filter_to_json(f));
    s_add_u64(req, "from", from);
    s_add_u64(req, "limit", limit);
    json_object *ans = s_call(a, req);
    if (!ans)
        return a->call_rc;
    int rc = s_get_u64(ans, "next", next);
    if (rc == KB_OK && *next < from)
        rc = kb_error_set(KB_EPROTO, "the broker's page goes backwards");
    *done = s_get_bool(ans, "done");
    if (rc == KB_OK)
        rc = s_each_record(ans, KB_ASRC_END, fn, arg);
    json_object_put(ans);
    return rc;
}

typedef struct {
    kb_asrc_record_fn *fn; /* the caller's callback */
    void *arg;             /* its argument */
    uint64_t next;         /* after the last record seen */
    int stopped;           /* fn asked to stop */
} s_raw_t;

static int s_raw_fn(uint64_t index, const uint8_t *val, size_t len, void *arg)
{
    s_raw_t *r = arg;
    r->next = index + 1;
    r->stopped = r->fn(index, val, len, r->arg) != 0;
    return r->stopped;
}

int kb_asrc_records(kb_asrc_t *a, uint64_t from, uint64_t end, size_t count, kb_asrc_record_fn *fn, void *arg,
                    uint64_t *next, int *done)
{
    if (a->offline) {
        s_raw_t r = {fn, arg, from, 0};
        uint64_t size = kb_store_audit_size(a->store);
        if (size > end)
            size = end;
        int rc = kb_store_audit_scan(a->store, from, size, count, s_raw_fn, &r);
        if (rc != KB_OK)
            return rc;
        *next = r.next;
        /* fewer than count and not stopped: the stored records ended */
        *done = r.next >= size;
        return KB_OK;
    }
    if (count > KB_ASRC_PAGE_RECORDS)
        count = KB_ASRC_PAGE_RECORDS;
    json_object *req = s_request("audit_records");
    s_add_u64(req, "from", from);
    s_add_u64(req, "count", count);
    if (end != KB_ASRC_END)
        s_add_u64(req, "end", end);
    json_object *ans = s_call(a, req);
    if (!ans)
        return a->call_rc;
    int rc = s_get_u64(ans, "next", next);
    if (rc == KB_OK && *next < from)
        rc = kb_error_set(KB_EPROTO, "the broker's page goes backwards");
    *done = s_get_bool(ans, "done");
    if (rc == KB_OK && *next >= end) {
        *next = end;
        *done = 1;
    }
    if (rc == KB_OK)
        rc = s_each_record(ans, end, fn, arg);
    json_object_put(ans);
    return rc;
}

int kb_asrc_is_damage(int rc)
{
    return rc == KB_EPROTO || rc == KB_EIO;
}

int kb_asrc_leaves(kb_asrc_t *a, uint64_t from, size_t count, uint8_t *out, size_t *n)
{
    if (a->offline)
        return kb_store_leaf_hashes(a->store, from, count, out, n);
    *n = 0;
    while (*n < count) {
        size_t want = count - *n < KB_ASRC_PAGE_LEAVES ? count - *n : KB_ASRC_PAGE_LEAVES;
        json_object *req = s_request("audit_leaves"), *h = NULL;
        s_add_u64(req, "from", from + *n);
        s_add_u64(req, "count", want);
        json_object *ans = s_call(a, req);
        if (!ans)
            return a->call_rc;
        uint64_t got = 0;
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = s_get_u64(ans, "n", &got);
        if (rc == KB_OK && (!json_object_object_get_ex(ans, "hashes", &h) || !json_object_is_type(h, json_type_string)))
            rc = kb_error_set(KB_EPROTO, "answer without hashes");
        if (rc == KB_OK)
            rc = s_b64_decode(json_object_get_string(h), &buf, &len);
        if (rc == KB_OK && (got > want || len != got * KB_MERKLE_HASH_LEN))
            rc = kb_error_set(KB_EPROTO, "malformed leaf hashes from the broker");
        if (rc == KB_OK)
            memcpy(out + *n * KB_MERKLE_HASH_LEN, buf, len);
        free(buf);
        json_object_put(ans);
        if (rc != KB_OK)
            return rc;
        *n += (size_t)got;
        if (got < want)
            break;
    }
    return KB_OK;
}

int kb_asrc_checkpoints(kb_asrc_t *a, kb_asrc_cp_fn *fn, void *arg)
{
    if (a->offline)
        return kb_store_checkpoint_scan(a->store, fn, arg);
    uint64_t from = 0;
    for (;;) {
        json_object *req = s_request("audit_checkpoints"), *list = NULL;
        s_add_u64(req, "from", from);
        s_add_u64(req, "limit", KB_ASRC_PAGE_CPS);
        json_object *ans = s_call(a, req);
        if (!ans)
            return a->call_rc;
        int rc = KB_OK, stop = 0;
        if (!json_object_object_get_ex(ans, "checkpoints", &list) || !json_object_is_type(list, json_type_array))
            rc = kb_error_set(KB_EPROTO, "answer without checkpoints");
        for (size_t i = 0; rc == KB_OK && !stop && list && i < json_object_array_length(list); i++) {
            json_object *c = json_object_array_get_idx(list, i), *note = NULL;
            uint64_t size = 0;
            rc = s_get_u64(c, "size", &size);
            if (rc == KB_OK && (size < from || !json_object_object_get_ex(c, "note", &note) ||
                                !json_object_is_type(note, json_type_string)))
                rc = kb_error_set(KB_EPROTO, "malformed checkpoint in the answer");
            if (rc == KB_OK) {
                stop = fn(size, json_object_get_string(note), (size_t)json_object_get_string_len(note), arg);
                from = size + 1;
            }
        }
        int done = s_get_bool(ans, "done");
        json_object_put(ans);
        if (rc != KB_OK || stop || done)
            return rc;
    }
}

static int s_proof_list(json_object *ans, uint8_t proof[KB_MERKLE_PROOF_BYTES], size_t *n)
{
    json_object *list = NULL;
    if (!json_object_object_get_ex(ans, "proof", &list) || !json_object_is_type(list, json_type_array) ||
        json_object_array_length(list) > KB_MERKLE_MAX_PROOF)
        return kb_error_set(KB_EPROTO, "malformed proof from the broker");
    *n = json_object_array_length(list);
    for (size_t i = 0; i < *n; i++)
        if (s_unhex_hash(json_object_array_get_idx(list, i), proof + i * KB_MERKLE_HASH_LEN) != KB_OK)
            return KB_EPROTO;
    return KB_OK;
}

int kb_asrc_proof(kb_asrc_t *a, uint64_t index, uint64_t size, uint8_t leaf[KB_MERKLE_HASH_LEN],
                  uint8_t proof[KB_MERKLE_PROOF_BYTES], size_t *n)
{
    if (a->offline) {
        int rc = s_tree(a);
        if (rc == KB_OK && (index >= size || size > kb_merkle_size(a->tree)))
            rc = kb_error_set(KB_EINVAL, "no record %llu in a tree of %llu", (unsigned long long)index,
                              (unsigned long long)size);
        if (rc == KB_OK)
            rc = kb_merkle_leaf(a->tree, index, leaf);
        if (rc == KB_OK)
            rc = kb_merkle_inclusion_proof(a->tree, index, size, proof, n);
        return rc;
    }
    json_object *req = s_request("audit_proof"), *l = NULL;
    s_add_u64(req, "index", index);
    s_add_u64(req, "size", size);
    json_object *ans = s_call(a, req);
    if (!ans)
        return a->call_rc;
    int rc = json_object_object_get_ex(ans, "leaf", &l) ? s_unhex_hash(l, leaf)
                                                        : kb_error_set(KB_EPROTO, "answer without leaf");
    if (rc == KB_OK)
        rc = s_proof_list(ans, proof, n);
    json_object_put(ans);
    return rc;
}

int kb_asrc_consistency(kb_asrc_t *a, uint64_t from, uint64_t to, uint8_t proof[KB_MERKLE_PROOF_BYTES], size_t *n)
{
    if (a->offline) {
        int rc = s_tree(a);
        if (rc == KB_OK)
            rc = kb_merkle_consistency_proof(a->tree, from, to, proof, n);
        return rc;
    }
    json_object *req = s_request("audit_consistency");
    s_add_u64(req, "from", from);
    s_add_u64(req, "to", to);
    json_object *ans = s_call(a, req);
    if (!ans)
        return a->call_rc;
    int rc = s_proof_list(ans, proof, n);
    json_object_put(ans);
    return rc;
}

/* ------------------------------------------------------------ prune */

/* Undo what a failed offline change staged; the command ends after it
 * (a store that did not open again is only destroyed). The failure's
 * message (rc) stays the last error: reloading the tree sets others. */
static void s_resync(kb_asrc_t *a, int rc)
{
    char why[KB_ERROR_MAX];
    snprintf(why, sizeof why, "%s", kb_last_error());
    kb_batch_clear(a->batch);
    if (kb_store_reopen(a->store) == KB_OK && a->tree)
        kb_merkle_load(a->tree, kb_store_audit_size(a->store));
    kb_error_set(rc, "%s", why);
}

/* Sign a checkpoint of the offline log if records are newer than the
 * latest. Never over a log that does not extend the latest checkpoint:
 * fewer records than it covers (records lost or cut off) or another root
 * at its size would put the broker's signature on a history that
 * contradicts the one it signed (the broker itself refuses to start on
 * such a log); `audit verify --offline` says what happened. */
static int s_offline_checkpoint(kb_asrc_t *a, EVP_PKEY *key)
{
    uint64_t cp = 0, size = kb_store_audit_size(a->store);
    char *note = NULL;
    size_t len = 0;
    int rc = kb_store_checkpoint_latest(a->store, &cp, &note, &len);
    if (rc == KB_ENOTFOUND) {
        rc = KB_OK;
    } else if (rc == KB_OK && size < cp) {
        rc = kb_error_set(KB_EIO, "the log holds %llu records but its latest signed checkpoint covers %llu: records "
                                  "were lost or cut off; nothing was signed or pruned (see ketenbus audit verify "
                                  "--offline)",
                          (unsigned long long)size, (unsigned long long)cp);
    } else if (rc == KB_OK) {
        kb_note_checkpoint_t parsed;
        uint8_t root[KB_MERKLE_HASH_LEN];
        rc = kb_note_parse(note, len, &parsed);
        if (rc == KB_OK && kb_note_verify(note, len, parsed.origin, key, &parsed) != KB_OK)
            rc = kb_error_set(KB_ECRYPTO, "the latest checkpoint (size %llu) is not signed with the broker's key; "
                                          "nothing was signed or pruned (see ketenbus audit verify --offline)",
                              (unsigned long long)cp);
        if (rc == KB_OK && parsed.size != cp)
            rc = kb_error_set(KB_EPROTO, "the checkpoint stored for size %llu states size %llu",
                              (unsigned long long)cp, (unsigned long long)parsed.size);
        /* a checkpoint under another origin would make every later one
         * fail verification (the broker refuses to start so too) */
        char origin[KB_NOTE_MAX_ORIGIN + 1];
        snprintf(origin, sizeof origin, "ketenbus/%s", a->broker_id ? a->broker_id : "");
        if (rc == KB_OK && strcmp(parsed.origin, origin) != 0)
            rc = kb_error_set(KB_ECONFIG, "the log's checkpoints are for %s, but the configuration names broker id "
                                          "'%s': use the configuration the broker ran with; nothing was signed or "
                                          "pruned",
                              parsed.origin, a->broker_id ? a->broker_id : "");
        if (rc == KB_OK)
            rc = kb_merkle_root_at(a->tree, cp, root);
        if (rc == KB_OK && CRYPTO_memcmp(root, parsed.root, sizeof root) != 0)
            rc = kb_error_set(KB_ECRYPTO, "the tree's root at size %llu is not the one its checkpoint signed: the "
                                          "log was changed; nothing was signed or pruned (see ketenbus audit verify "
                                          "--offline)",
                              (unsigned long long)cp);
        if (rc == KB_OK && cp == size) {
            free(note);
            return KB_OK;
        }
    }
    free(note);
    if (rc == KB_OK)
        rc = checkpoint_sign(a->store, a->batch, a->tree, a->broker_id, key, NULL);
    if (rc == KB_OK)
        rc = kb_store_commit(a->store, a->batch, 1);
    return rc;
}

int kb_asrc_prune(kb_asrc_t *a, int kind, int64_t before_us, const char *who, kb_auditq_prune_t *out)
{
    if (!a->offline) {
        json_object *req = s_request("audit_prune");
        json_object_object_add(req, "before_us", json_object_new_int64(before_us));
        if (kind != KB_PRUNE_ALL)
            json_object_object_add(req, "kind", json_object_new_int(kind));
        json_object_object_add(req, "user", json_object_new_string(who));
        json_object_object_add(req, "pid", json_object_new_int64((int64_t)getpid()));
        json_object *ans = s_call(a, req);
        if (!ans)
            return a->call_rc;
        memset(out, 0, sizeof *out);
        int rc = s_get_u64(ans, "target", &out->target);
        if (rc == KB_OK)
            rc = s_get_u64(ans, "limit", &out->limit);
        if (rc == KB_OK)
            rc = s_get_u64(ans, "first", &out->first);
        if (rc == KB_OK)
            rc = s_get_u64(ans, "end", &out->end);
        if (rc == KB_OK)
            rc = s_get_u64(ans, "count", &out->count);
        out->logged = s_get_bool(ans, "logged");
        out->more = s_get_bool(ans, "more");
        if (rc == KB_OK && out->logged)
            rc = s_get_u64(ans, "record", &out->record);
        json_object_put(ans);
        return rc;
    }
    if (!a->key_dir || !a->broker_id)
        return kb_error_set(KB_ECONFIG, "pruning a stopped broker's log needs --config FILE: the broker's signing "
                                        "key signs a checkpoint over what was pruned");
    char path[4096];
    if (kb_fmt(path, sizeof path, "%s/broker.sign.pem", a->key_dir) != KB_OK)
        return kb_error_set(KB_ETOOBIG, "key_dir path too long");
    EVP_PKEY *key = kb_keys_load_sign_private(path);
    if (!key)
        return KB_ECRYPTO;
    char by[200];
    snprintf(by, sizeof by, "%.120s (offline)", who);
    int rc = s_tree(a);
    if (rc == KB_OK)
        rc = s_offline_checkpoint(a, key);
    if (rc == KB_OK)
        rc = kb_auditq_prune(a->store, a->batch, a->tree, kind, before_us, KB_ASRC_OFFLINE_CHUNK, by, out);
    if (rc == KB_OK)
        rc = kb_store_commit(a->store, a->batch, 1);
    if (rc == KB_OK && out->logged)
        rc = s_offline_checkpoint(a, key);
    if (rc != KB_OK)
        s_resync(a, rc);
    EVP_PKEY_free(key);
    return rc;
}
