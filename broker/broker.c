/*
 * broker.c - ketenbusd's event loop.
 *
 * One turn: wait for frames (or the committer), answer ZAP requests, drain
 * up to KB_DRAIN_MAX frames from the ROUTER (SUBMIT and ACK stage their
 * changes in the staged batch; with signature checks on, the next frames
 * are read ahead and checked on the pool meanwhile), expire old entries
 * when due. If the committer is still writing the previous batch, that is
 * all: the loop goes on staging, up to KB_STAGE_OPS_MAX operations or
 * KB_REPLIES_BYTES_MAX bytes of replies, and then waits for it (what
 * peers send meanwhile waits in libzmq's bounded receive queues). Once
 * it is written, its held replies go out (receipts, and deliveries whose
 * entries it holds), the pump hands out
 * deliveries of what is now written (their "delivered" records go into the
 * staged batch: a delivery lost in a crash is simply repeated), and the
 * staged batch goes to the committer, synced if it answers SUBMITs.
 * If a write fails, nothing not yet sent is acknowledged: every waiting
 * client gets ERROR_CODE_INTERNAL, counters are reread from disk and
 * sessions restart, so adapters resend from their outboxes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <zmq.h>

#include "broker.h"
#include "commit.h"
#include "kb_arena.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_log.h"
#include "kb_note.h"
#include "kb_util.h"

#define KB_SND_BYTES       (256 << 20) /* frames of the largest size libzmq holds for a peer */
#define KB_SNDHWM_MIN      16     /* but at least this many */
#define KB_RCV_BYTES       (256 << 20) /* frames of the largest size libzmq holds per connection */
#define KB_RCVHWM_MIN      16     /* but at least this many */
#define KB_FRAME_SLACK     (1u << 20) /* over max_message_bytes: still answered, beyond: dropped by libzmq */
#define KB_HEARTBEAT_MS    2000   /* ZMTP heartbeat interval */
#define KB_LOST_LINGER_MS  1000    /* how long replies may take to leave when the store is lost */
#define KB_POLL_MAX_MS     250    /* longest wait, so expiry and timeouts run */

static void s_incoming_clear(kb_incoming_t *in);

static int s_key_path(char *buf, size_t len, const char *dir, const char *file)
{
    if (kb_fmt(buf, len, "%s/%s", dir, file) != KB_OK)
        return kb_error_set(KB_ETOOBIG, "path too long: %s/%s", dir, file);
    return KB_OK;
}

kb_broker_t *kb_broker_new(const char *conf_path)
{
    kb_broker_t *b = calloc(1, sizeof *b);
    if (!b) {
        kb_error_set(KB_ENOMEM, "broker: out of memory");
        return NULL;
    }
    char path[4096];
    uint8_t storage_key[32];
    b->conf_path = strdup(conf_path);
    b->sessions = calloc(KB_MAX_SESSIONS, sizeof *b->sessions);
    b->session_cache = calloc(KB_SESSION_CACHE, sizeof *b->session_cache);
    b->in = calloc(KB_DRAIN_MAX, sizeof *b->in);
    b->in_next = calloc(KB_DRAIN_MAX, sizeof *b->in_next);
    b->ids = kb_idset_new();
    b->arena = kb_arena_new();
    b->arena_next = kb_arena_new();
    b->ids_flight = kb_idset_new();
    b->dels = kb_idset_new();
    b->dels_flight = kb_idset_new();
    b->batch = kb_batch_new();
    b->spare = kb_batch_new();
    b->verify = kb_verify_pool_new(kb_verify_default_workers());
    b->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    b->sha_ctx = EVP_MD_CTX_new();
    if (!b->sha256 || !b->sha_ctx) {
        kb_error_ssl(KB_ECRYPTO, "broker: SHA-256 unavailable");
        goto fail;
    }
    if (!b->conf_path || !b->sessions || !b->session_cache || !b->in || !b->in_next || !b->ids || !b->ids_flight || !b->dels || !b->dels_flight || !b->arena || !b->arena_next || !b->batch || !b->spare || !b->verify) {
        kb_error_set(KB_ENOMEM, "broker: out of memory");
        goto fail;
    }
    b->conf = kb_conf_load(conf_path);
    if (!b->conf)
        goto fail;
    if (s_key_path(path, sizeof path, b->conf->key_dir, "broker.sign.pem") != KB_OK ||
        !(b->sign_key = kb_keys_load_sign_private(path)))
        goto fail;
    if (s_key_path(path, sizeof path, b->conf->key_dir, "broker.storage.key") != KB_OK ||
        kb_keys_load_storage(path, storage_key) != KB_OK)
        goto fail;
    b->store = kb_store_open(b->conf->data_dir, storage_key);
    OPENSSL_cleanse(storage_key, sizeof storage_key);
    if (!b->store)
        goto fail;
    if (kb_store_queues_repaired(b->store) > 0)
        kb_log(KB_LOG_WARN, "queue_depth_repaired", "queues=%zu detail=\"a stored depth of 0 with entries queued "
               "was counted again\"", kb_store_queues_repaired(b->store));
    if (kb_store_audit_migrated(b->store) > 0)
        kb_log(KB_LOG_INFO, "audit_log_migrated", "records=%llu detail=\"moved from one entry per record into "
               "blocks of 16\"", (unsigned long long)kb_store_audit_migrated(b->store));
    b->commit = kb_commit_new(b->store);
    if (!b->commit)
        goto fail;
    b->tiles.store = b->store;
    b->tiles.batch = b->batch;
    kb_merkle_io_t io = kb_store_tiles_io(&b->tiles);
    b->tree = kb_merkle_new(&io);
    if (!b->tree || kb_merkle_load(b->tree, kb_store_audit_size(b->store)) != KB_OK) {
        kb_error_wrap(KB_EIO, "loading the audit tree");
        goto fail;
    }
    return b;
fail:
    kb_broker_destroy(&b);
    return NULL;
}

static void s_replies_clear(kb_replies_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].frame);
    r->n = 0;
    r->bytes = 0;
}

_Static_assert(KB_IDSET_MAX == KB_DRAIN_MAX * KB_MAX_BATCH, "an id set holds what one turn can accept");

/* A write of the stop failed: what it held is lost (adapters send again
 * what was not confirmed to them, but the audit records are gone). Logged
 * at error level naming what was lost; the error makes the exit status 1. */
static int s_stop_lost(const char *what)
{
    char detail[KB_ERROR_MAX];
    snprintf(detail, sizeof detail, "%s", kb_last_error());
    kb_log(KB_LOG_ERROR, "stop_write_failed", "lost=\"%s\" detail=\"%s\"", what, detail);
    return kb_error_set(KB_EIO, "the stop could not write %s: %s", what, detail);
}

int kb_broker_finish(kb_broker_t *b)
{
    if (b->finished)
        return KB_OK;
    b->finished = 1;
    if (b->commit && b->tree && b->batch)
        broker_settle(b); /* what is in flight is written, and answered */
    kb_commit_destroy(&b->commit);
    if (!b->sessions || !b->store || !b->batch || !b->tree)
        return KB_OK;
    size_t ended = b->n_sessions;
    for (size_t i = 0; i < KB_MAX_SESSIONS; i++)
        session_close(b, &b->sessions[i], "broker stopping");
    char what[160];
    /* no checkpoint over records that may not be on disk */
    if (kb_store_commit(b->store, b->batch, 1) != KB_OK) {
        snprintf(what, sizeof what, "the DISCONNECTED records of the %zu session%s it ended and the final checkpoint",
                 ended, ended == 1 ? "" : "s");
        return s_stop_lost(what);
    }
    if (!b->sign_key || !b->cp_origin_ok) /* never under another broker's origin */
        return KB_OK;
    if (checkpoint_maybe(b, 1) != KB_OK) {
        uint64_t n = kb_merkle_size(b->tree);
        snprintf(what, sizeof what, "the final checkpoint (over %llu audit record%s)", (unsigned long long)n,
                 n == 1 ? "" : "s");
        return s_stop_lost(what);
    }
    return KB_OK;
}

void kb_broker_destroy(kb_broker_t **p)
{
    if (!p || !*p)
        return;
    kb_broker_t *b = *p;
    kb_broker_finish(b); /* unless done: a failure is logged */
    kb_merkle_destroy(&b->tree);
    if (b->router)
        zmq_close(b->router);
    if (b->admin)
        zmq_close(b->admin);
    if (b->zap)
        zmq_close(b->zap);
    if (b->zctx)
        zmq_ctx_term(b->zctx);
    s_replies_clear(&b->out);
    free(b->out.v);
    s_replies_clear(&b->held);
    free(b->held.v);
    kb_idset_destroy(&b->ids);
    kb_idset_destroy(&b->ids_flight);
    kb_idset_destroy(&b->dels);
    kb_idset_destroy(&b->dels_flight);
    if (b->verify)
        kb_verify_pool_finish(b->verify);
    for (size_t i = 0; b->in_next && i < b->n_next; i++)
        s_incoming_clear(&b->in_next[i]);
    kb_arena_destroy(&b->arena);
    kb_arena_destroy(&b->arena_next);
    kb_verify_pool_destroy(&b->verify);
    free(b->jobs);
    free(b->jobs_next);
    free(b->in);
    free(b->in_next);
    kb_store_destroy(&b->store);
    kb_batch_destroy(&b->batch);
    kb_batch_destroy(&b->spare);
    EVP_PKEY_free(b->sign_key);
    EVP_MD_CTX_free(b->sha_ctx);
    EVP_MD_free(b->sha256);
    kb_conf_destroy(&b->conf);
    if (b->sessions)
        for (size_t i = 0; i < KB_MAX_SESSIONS; i++)
            if (b->sessions[i].rid_len)
                session_reset(b, &b->sessions[i]);
    free(b->sessions);
    free(b->session_cache);
    free(b->conf_path);
    free(b);
    *p = NULL;
}

static int s_zmq_err(const char *what)
{
    return kb_error_set(KB_ENET, "%s: %s", what, zmq_strerror(zmq_errno()));
}

/* Said at start and at every reload that loads such a file, in the log
 * and in the rules_loaded audit record. */
#define S_UNCHECKED "verify_signatures is false: envelope signatures are not checked (benchmarks only)"

/* What the configuration in force warns of (an allow rule that never
 * decides, a rule about to expire), and its retention periods: the file
 * loaded, but an operator should hear of these. */
static void s_config_notes(const kb_broker_t *b)
{
    /* found by the load's lint: not linted again on the main loop */
    for (size_t i = 0; i < b->conf->n_lint; i++)
        kb_log(KB_LOG_WARN, "rules_warning", "at=%s:%d:%d detail=\"%s\"", b->conf->path, b->conf->lint[i].line,
               b->conf->lint[i].column, b->conf->lint[i].message);
    retention_describe(b);
    if (!b->conf->verify_signatures)
        kb_log(KB_LOG_WARN, "signatures_unchecked", "detail=\"%s\"", S_UNCHECKED);
}

/* The latest stored checkpoint was signed as "ketenbus/<broker id>": a
 * broker under another id would sign later ones under another origin,
 * which `ketenbus audit verify` rejects, so it does not start. */
static int s_origin_check(const kb_broker_t *b, const char *note, size_t note_len, uint64_t size)
{
    kb_note_checkpoint_t cp;
    if (kb_note_parse(note, note_len, &cp) != KB_OK)
        return kb_error_set(KB_EIO, "the latest stored checkpoint (size %llu) does not parse: %s",
                            (unsigned long long)size, kb_last_error());
    static const char prefix[] = "ketenbus/";
    const char *was = strncmp(cp.origin, prefix, sizeof prefix - 1) == 0 ? cp.origin + sizeof prefix - 1 : cp.origin;
    if (strcmp(was, b->conf->broker_id) != 0)
        return kb_error_set(KB_ECONFIG,
                            "%s: broker.id is '%s', but the audit log in %s was signed by broker '%s' (latest "
                            "checkpoint, size %llu, origin %s); a broker id cannot change for a data_dir: set "
                            "broker.id back to '%s'",
                            b->conf->path, b->conf->broker_id, b->conf->data_dir, was, (unsigned long long)size,
                            cp.origin, was);
    return KB_OK;
}

int kb_broker_start(kb_broker_t *b)
{
    char path[4096], pub[KB_Z85_KEY_LEN + 1], sec[KB_Z85_KEY_LEN + 1];
    if (s_key_path(path, sizeof path, b->conf->key_dir, "broker.curve_secret") != KB_OK ||
        kb_keys_load_curve_secret(path, pub, sec) != KB_OK)
        return KB_ECRYPTO;
    memcpy(b->curve_pub, pub, sizeof b->curve_pub);
    if (kb_conf_check_broker_keys(b->conf, b->sign_key, b->curve_pub, b->conf->key_dir) != KB_OK) {
        OPENSSL_cleanse(sec, sizeof sec);
        return KB_ECONFIG;
    }
    b->zctx = zmq_ctx_new();
    if (!b->zctx)
        return s_zmq_err("zmq_ctx_new");
    /* the ZAP handler must be bound before any CURVE socket binds */
    b->zap = zmq_socket(b->zctx, ZMQ_REP);
    if (!b->zap || zmq_bind(b->zap, "inproc://zeromq.zap.01") != 0) {
        OPENSSL_cleanse(sec, sizeof sec);
        return s_zmq_err("bind ZAP handler");
    }
    b->router = zmq_socket(b->zctx, ZMQ_ROUTER);
    if (!b->router) {
        OPENSSL_cleanse(sec, sizeof sec);
        return s_zmq_err("zmq_socket");
    }
    int one = 1, zero = 0, hb = KB_HEARTBEAT_MS, hbt = KB_HEARTBEAT_MS * 3;
    b->frame_max_start = b->conf->max_message_bytes;
    int64_t maxsize = (int64_t)b->conf->max_message_bytes + KB_FRAME_SLACK;
    /* what a connection sends faster than the loop reads waits in libzmq's
     * pipe up to this many frames, and then in the kernel's socket buffers
     * and at the sender (the I/O thread stops reading it): the broker's
     * memory stays bounded whatever an adapter sends */
    int rcvhwm = (int)(KB_RCV_BYTES / maxsize);
    if (rcvhwm < KB_RCVHWM_MIN) /* 255 frames at most: the largest frame is over 1 MiB */
        rcvhwm = KB_RCVHWM_MIN;
    /* the same the other way: what the broker sends a peer that does not
     * read waits in libzmq's pipe up to this many frames (a DELIVER frame
     * holds at most KB_DELIVER_FRAME_BYTES and one more envelope); a send
     * past it fails and ends the peer's session. Without it, an adapter
     * saying HELLO again and again without reading would have the broker
     * queue its deliveries again each time, in memory. */
    int hwm = (int)(KB_SND_BYTES / (maxsize + KB_DELIVER_FRAME_BYTES));
    if (hwm < KB_SNDHWM_MIN)
        hwm = KB_SNDHWM_MIN;
    int rc = zmq_setsockopt(b->router, ZMQ_CURVE_SERVER, &one, sizeof one);
    rc |= zmq_setsockopt(b->router, ZMQ_CURVE_SECRETKEY, sec, KB_Z85_KEY_LEN);
    OPENSSL_cleanse(sec, sizeof sec);
    rc |= zmq_setsockopt(b->router, ZMQ_ZAP_DOMAIN, "ketenbus", 8);
    rc |= zmq_setsockopt(b->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    /* adapters keep their (random) routing id when they reconnect: the new
     * connection takes it over from one that has not timed out yet. What
     * was queued on the old one is lost; the adapter's HELLO on the new
     * connection sends it again (proto/ketenbus.proto, the header) */
    rc |= zmq_setsockopt(b->router, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    rc |= zmq_setsockopt(b->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    rc |= zmq_setsockopt(b->router, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    rc |= zmq_setsockopt(b->router, ZMQ_LINGER, &zero, sizeof zero);
    rc |= zmq_setsockopt(b->router, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
    rc |= zmq_setsockopt(b->router, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    rc |= zmq_setsockopt(b->router, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
    rc |= zmq_setsockopt(b->zap, ZMQ_LINGER, &zero, sizeof zero);
    if (rc != 0)
        return s_zmq_err("socket options");
    if (zmq_bind(b->router, b->conf->listen) != 0)
        return kb_error_set(KB_ENET, "bind %s: %s", b->conf->listen, zmq_strerror(zmq_errno()));
    size_t len = sizeof b->endpoint;
    if (zmq_getsockopt(b->router, ZMQ_LAST_ENDPOINT, b->endpoint, &len) != 0)
        return s_zmq_err("ZMQ_LAST_ENDPOINT");
    if (admin_start(b) != KB_OK)
        return KB_ENET;
    b->started_ms = kb_mono_ms();
    b->next_expiry_ms = b->started_ms;
    uint64_t cp_size = 0;
    char *note = NULL;
    size_t note_len = 0;
    /* none yet is KB_ENOTFOUND; a store that cannot say is no store
     * without checkpoints, whose records could then be renumbered */
    rc = kb_store_checkpoint_latest(b->store, &cp_size, &note, &note_len);
    if (rc == KB_OK) {
        b->cp_size = cp_size;
        rc = s_origin_check(b, note, note_len, cp_size);
    } else if (rc == KB_ENOTFOUND) {
        rc = KB_OK;
    }
    free(note);
    if (rc != KB_OK)
        return rc;
    b->cp_origin_ok = 1;
    /* records a signed checkpoint covers are gone: appending now would
     * give other records their indices */
    if (kb_store_audit_size(b->store) < b->cp_size)
        return kb_error_set(KB_EIO, "the store holds %llu audit records; its latest signed checkpoint covers %llu "
                                    "(see ketenbus audit verify --offline)",
                            (unsigned long long)kb_store_audit_size(b->store), (unsigned long long)b->cp_size);
    b->cp_next_ms = b->started_ms + b->conf->checkpoint_interval_us / 1000;
    char loaded[KB_ERROR_MAX];
    snprintf(loaded, sizeof loaded, "%s%s%s", b->conf->sha256, b->conf->verify_signatures ? "" : "; ",
             b->conf->verify_signatures ? "" : S_UNCHECKED);
    audit_event(b, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, "", NULL, loaded);
    if (kb_store_commit(b->store, b->batch, 1) != KB_OK)
        return KB_EIO;
    s_config_notes(b);
    kb_log(KB_LOG_INFO, "started", "endpoint=%s admin=%s agencies=%zu rules=%zu config_sha256=%s audit_size=%llu",
           b->endpoint, b->admin_endpoint, b->conf->n_agencies, b->conf->n_rules, b->conf->sha256,
           (unsigned long long)kb_store_audit_size(b->store));
    return KB_OK;
}

/* A cleared slot for one more reply to rid at the end of r (counted by
 * the caller once it is filled), or NULL when out of memory. */
static kb_outgoing_t *s_reply_slot(kb_replies_t *r, const uint8_t *rid, size_t rid_len)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        kb_outgoing_t *p = realloc(r->v, cap * sizeof *p);
        if (!p) {
            kb_error_set(KB_ENOMEM, "broker: out of memory");
            return NULL;
        }
        r->v = p;
        r->cap = cap;
    }
    kb_outgoing_t *o = &r->v[r->n];
    memset(o, 0, sizeof *o);
    memcpy(o->rid, rid, rid_len);
    o->rid_len = rid_len;
    return o;
}

int broker_reply(kb_broker_t *b, const uint8_t *rid, size_t rid_len, Ketenbus__Frame *f)
{
    kb_outgoing_t *o = s_reply_slot(&b->out, rid, rid_len);
    if (!o)
        return KB_ENOMEM;
    int rc = kb_frame_encode(f, &o->frame, &o->frame_len);
    if (rc != KB_OK)
        return rc;
    b->out.n++;
    b->out.bytes += sizeof *o + o->frame_len;
    return KB_OK;
}

int broker_receipt(kb_broker_t *b, const uint8_t *rid, size_t rid_len, uint64_t request_id,
                   const Ketenbus__Receipt *r)
{
    size_t add = ketenbus__receipt__get_packed_size(r);
    /* the last reply queued for this peer, among the last few: replies to
     * one peer keep their order, replies to different peers need none */
    kb_outgoing_t *o = NULL;
    for (size_t i = b->out.n, k = 0; i > 0 && k < KB_RECEIPT_JOIN_LOOKBACK; i--, k++) {
        kb_outgoing_t *c = &b->out.v[i - 1];
        if (c->rid_len == rid_len && memcmp(c->rid, rid, rid_len) == 0) {
            o = c;
            break;
        }
    }
    int join = o && o->receipt_open && o->receipt_entries + r->n_entries <= KB_MAX_BATCH &&
               o->frame_len + add <= KB_RECEIPT_JOIN_MAX;
    if (!join && !(o = s_reply_slot(&b->out, rid, rid_len)))
        return KB_ENOMEM;
    if (o->frame_len + add > o->frame_cap) {
        size_t cap = o->frame_cap ? o->frame_cap * 2 : 512;
        while (cap < o->frame_len + add)
            cap *= 2;
        uint8_t *p = realloc(o->frame, cap);
        if (!p)
            return kb_error_set(KB_ENOMEM, "broker: out of memory"); /* a new entry has no frame yet */
        o->frame = p;
        o->frame_cap = cap;
    }
    if (add > 0) {
        ketenbus__receipt__pack(r, o->frame + o->frame_len);
        o->frame_len += add;
    }
    o->receipt_entries += r->n_entries;
    o->receipt_request = request_id;
    b->out.bytes += add;
    if (!join) {
        o->receipt_open = 1;
        b->out.n++;
        b->out.bytes += sizeof *o;
    }
    return KB_OK;
}

/* Frame the receipts still open: nothing joins them after this. One that
 * cannot be framed (out of memory) is dropped: its sender resends after
 * its timeout and is answered DUPLICATE. */
static void s_replies_close(kb_replies_t *r)
{
    size_t k = 0;
    r->bytes = 0;
    for (size_t i = 0; i < r->n; i++) {
        kb_outgoing_t *o = &r->v[i];
        if (o->receipt_open) {
            uint8_t *frame = NULL;
            size_t len = 0;
            int rc = kb_receipt_encode(o->receipt_request, o->frame, o->frame_len, &frame, &len);
            free(o->frame);
            o->frame = frame;
            o->frame_len = len;
            o->frame_cap = 0;
            o->receipt_open = 0;
            if (rc != KB_OK) {
                kb_log(KB_LOG_ERROR, "receipt_dropped", "entries=%zu detail=\"%s\"", o->receipt_entries,
                       kb_last_error());
                continue;
            }
        }
        r->bytes += sizeof *o + o->frame_len;
        r->v[k++] = *o;
    }
    r->n = k;
}

int broker_reply_raw(kb_broker_t *b, const uint8_t *rid, size_t rid_len, uint8_t **frame, size_t frame_len)
{
    kb_outgoing_t *o = s_reply_slot(&b->out, rid, rid_len);
    if (!o) {
        free(*frame);
        *frame = NULL;
        return KB_ENOMEM;
    }
    o->frame = *frame;
    o->frame_len = frame_len;
    *frame = NULL;
    b->out.n++;
    b->out.bytes += sizeof *o + frame_len;
    return KB_OK;
}

static int s_error(kb_broker_t *b, const uint8_t *rid, size_t rid_len, uint64_t request_id, int code,
                   const char *message)
{
    Ketenbus__Error err;
    ketenbus__error__init(&err);
    err.code = (Ketenbus__ErrorCode)code;
    err.message = (char *)message;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.request_id = request_id;
    f.body_case = KETENBUS__FRAME__BODY_ERROR;
    f.error = &err;
    return broker_reply(b, rid, rid_len, &f);
}

/* Send the replies of r, in order, and empty it. */
static void s_send_replies(kb_broker_t *b, kb_replies_t *r)
{
    s_replies_close(r);
    for (size_t i = 0; i < r->n; i++) {
        kb_outgoing_t *o = &r->v[i];
        if (zmq_send(b->router, o->rid, o->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_send(b->router, o->frame, o->frame_len, ZMQ_DONTWAIT) < 0) {
            int e = zmq_errno();
            kb_session_t *s = session_find(b, o->rid, o->rid_len);
            kb_log(KB_LOG_WARN, "send_failed", "agency=%s error=\"%s\"", s ? s->agency : "-", zmq_strerror(e));
            /* the peer is gone or stuck: end its session; its deliveries
             * are sent again when it says HELLO */
            if (s)
                session_close(b, s, "peer unreachable");
        }
    }
    s_replies_clear(r);
}

/* Send the replies that need no commit (or whose commit is done). */
static void s_flush(kb_broker_t *b)
{
    s_send_replies(b, &b->out);
}

/* After a failed commit nothing not yet sent may be confirmed: the
 * replies held for the batch in flight and those of this turn become
 * errors (in the order they would have gone) and leave before the store
 * is opened again (which may end the broker), the staged batch goes, and
 * sessions restart so adapters resend. Nothing may be in flight. */
static void s_abort_turn(kb_broker_t *b)
{
    kb_log(KB_LOG_ERROR, "commit_failed", "detail=\"%s\"", kb_last_error());
    kb_replies_t gone[2] = {b->held, b->out};
    b->held = b->out = (kb_replies_t){0};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < gone[k].n; i++)
            s_error(b, gone[k].v[i].rid, gone[k].v[i].rid_len, 0, KETENBUS__ERROR_CODE__ERROR_CODE_INTERNAL,
                    "the broker could not store this turn; send again");
        s_replies_clear(&gone[k]);
        free(gone[k].v);
    }
    s_flush(b);
    broker_resync(b); /* drops what a failed send above staged, too */
    kb_idset_clear(b->ids);
    kb_idset_clear(b->ids_flight);
    kb_idset_clear(b->dels); /* the entries are still queued: sessions start again from the first */
    kb_idset_clear(b->dels_flight);
    b->turn_sync = 0;
    b->staged_cost = 0;
    kb_batch_clear(b->batch); /* drop the disconnect records staged above */
    /* each session that ends here is audited as ended, in the next batch
     * (the ones that went with the failed write are gone) */
    for (size_t i = 0; i < KB_MAX_SESSIONS; i++) {
        kb_session_t *s = &b->sessions[i];
        if (!s->rid_len)
            continue;
        audit_event(b, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DISCONNECTED, s->agency, NULL,
                    "the broker could not store a turn: the session starts again");
        session_reset(b, s);
    }
    b->n_sessions = 0;
}

int broker_settle(kb_broker_t *b)
{
    if (!b->commit || !kb_commit_busy(b->commit))
        return KB_OK;
    kb_batch_t *done = NULL;
    int rc = kb_commit_wait(b->commit, &done);
    if (done)
        b->spare = done;
    if (rc == KB_OK) {
        /* the held replies are true now: send them before anything later */
        s_send_replies(b, &b->held);
        kb_idset_clear(b->ids_flight); /* in the store now */
        kb_idset_clear(b->dels_flight); /* gone from the store now */
        return KB_OK;
    }
    s_abort_turn(b);
    s_flush(b);
    return rc;
}

/* Hand the staged batch to the committer with the replies it makes true
 * and the ids it accepts; the next turn stages into the other batch. A
 * turn that staged nothing sends its replies at once. Nothing may be in
 * flight (settle first). */
static void s_submit(kb_broker_t *b)
{
    b->staged_cost = 0; /* written here, or handed to the committer */
    if (kb_batch_size(b->batch) == 0) {
        s_flush(b);
        b->turn_sync = 0;
        return;
    }
    kb_batch_t *next = b->spare ? b->spare : kb_batch_new();
    if (!next) {
        /* no second batch: write this one here */
        if (kb_store_commit(b->store, b->batch, b->turn_sync) != KB_OK)
            s_abort_turn(b);
        s_flush(b);
        kb_idset_clear(b->ids);
        kb_idset_clear(b->dels);
        b->turn_sync = 0;
        return;
    }
    b->spare = NULL;
    s_replies_close(&b->out); /* held from now on: complete frames */
    kb_store_seal(b->store, b->batch); /* the queue counters as this batch leaves them */
    kb_batch_t *job = b->batch;
    b->batch = next;
    b->tiles.batch = next; /* tiles of the tree are staged with the records */
    kb_replies_t sent = b->held; /* empty: settled */
    b->held = b->out;
    b->out = sent;
    kb_idset_t *ids = b->ids_flight; /* empty: settled */
    b->ids_flight = b->ids;
    b->ids = ids;
    kb_idset_t *dels = b->dels_flight; /* empty: settled */
    b->dels_flight = b->dels;
    b->dels = dels;
    kb_commit_start(b->commit, &job, b->turn_sync); /* cannot fail: nothing is in flight */
    b->turn_sync = 0;
}

/* Hand what is staged to the committer once the batch in flight is
 * written, and go on: routing stages into the other batch meanwhile. */
static int s_write_behind(kb_broker_t *b)
{
    int rc = broker_settle(b);
    if (rc != KB_OK)
        return rc; /* settling refused everything */
    rc = deliver_send_direct(b);
    if (rc != KB_OK) {
        s_abort_turn(b);
        s_flush(b);
        return rc;
    }
    s_submit(b);
    return KB_OK;
}

int broker_write_staged(kb_broker_t *b)
{
    int rc = s_write_behind(b);
    return rc != KB_OK ? rc : broker_settle(b);
}

/* The store cannot be used after a failed write, nor trusted to match
 * what is in memory: nothing more may be confirmed. What was confirmed is
 * on disk and the adapters keep the rest for the restarted broker. The
 * replies already queued (the "send again" errors) get a moment to leave;
 * then the broker exits with status 1. */
static void s_store_lost(kb_broker_t *b, const char *detail)
{
    kb_log(KB_LOG_ERROR, "store_lost", "detail=\"%s\" action=\"exiting; start the broker again once the disk "
           "works\"", detail);
    int linger = KB_LOST_LINGER_MS, zero = 0;
    zmq_setsockopt(b->router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(b->router);
    zmq_setsockopt(b->admin, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(b->admin);
    zmq_close(b->zap);
    zmq_ctx_term(b->zctx);
    exit(1);
}

void broker_resync(kb_broker_t *b)
{
    kb_batch_clear(b->batch);
    if (kb_store_reopen(b->store) != KB_OK || kb_merkle_load(b->tree, kb_store_audit_size(b->store)) != KB_OK)
        s_store_lost(b, kb_last_error());
    if (kb_store_audit_size(b->store) < b->cp_size) {
        char detail[160];
        snprintf(detail, sizeof detail, "the store opened with %llu audit records; a checkpoint covered %llu",
                 (unsigned long long)kb_store_audit_size(b->store), (unsigned long long)b->cp_size);
        s_store_lost(b, detail);
    }
    kb_log(KB_LOG_WARN, "store_reopened", "detail=\"after a failed write\" audit_size=%llu",
           (unsigned long long)kb_store_audit_size(b->store));
}

static void s_refuse_frame(kb_broker_t *b, const uint8_t *rid, size_t rid_len, const char *agency, uint64_t req,
                           int err_code, const char *reason)
{
    kb_log(KB_LOG_WARN, "frame_refused", "agency=%s reason=\"%s\"", agency, reason);
    Ketenbus__AuditRecord r;
    audit_record_for(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, NULL);
    r.agency = (char *)agency;
    r.code = err_code == KETENBUS__ERROR_CODE__ERROR_CODE_TOO_LARGE ? KETENBUS__REJECT_CODE__REJECT_TOO_LARGE
                                                                   : KETENBUS__REJECT_CODE__REJECT_MALFORMED;
    r.reason = (char *)reason;
    audit_append(b, &r, NULL);
    s_error(b, rid, rid_len, req, err_code, reason);
}

/* The largest frame the broker takes now: max_message_bytes, but no more
 * than at start, since libzmq's limits on the router were set from that. */
static size_t s_frame_max(const kb_broker_t *b)
{
    size_t now = b->conf->max_message_bytes;
    return b->frame_max_start > 0 && b->frame_max_start < now ? b->frame_max_start : now;
}

static int s_welcome(kb_broker_t *b, kb_session_t *s, uint64_t req)
{
    Ketenbus__Welcome w;
    ketenbus__welcome__init(&w);
    w.broker_id = b->conf->broker_id;
    w.agency = s->agency;
    w.broker_time_us = kb_now_us();
    w.policy_version = b->conf->sha256;
    w.max_message_bytes = (uint32_t)s_frame_max(b);
    w.ping_interval_ms = (uint32_t)(b->conf->session_timeout_us / 1000 / 3);
    w.message_ttl_us = (uint64_t)b->conf->message_ttl_us; /* the SDK forgets seen ids after it */
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.request_id = req;
    f.body_case = KETENBUS__FRAME__BODY_WELCOME;
    f.welcome = &w;
    return broker_reply(b, s->rid, s->rid_len, &f);
}

/* 1 if key (Z85) is one of agency's CURVE keys in configuration c. */
static int s_key_in_force(const kb_conf_t *c, const char *agency, const char *key)
{
    const kb_agency_t *a = key ? kb_conf_agency_by_curve(c, key) : NULL;
    return a && strcmp(a->id, agency) == 0;
}

/* A connection whose key a reload took out of the chain gets nothing
 * done, not even a refusal audited one by one: only the limited record of
 * zap_refused and an ERROR NOT_IN_CHAIN. A session with this key proves it
 * in force (a reload ends the others); without one, the configuration
 * says. 1 if the frame (f, when it decoded; NULL: it did not, or came in
 * several parts) was refused so. */
static int s_refuse_revoked(kb_broker_t *b, const uint8_t *rid, size_t rid_len, const char *agency, const char *key,
                            const Ketenbus__Frame *f)
{
    kb_session_t *s = session_find(b, rid, rid_len);
    if ((s && key && strcmp(s->agency, agency) == 0 && strcmp(s->key, key) == 0) || s_key_in_force(b->conf, agency, key))
        return 0;
    char reason[256];
    snprintf(reason, sizeof reason,
             "%s refused: the CURVE key %s of this connection is no longer %s's in the chain configuration",
             f && f->body_case == KETENBUS__FRAME__BODY_HELLO ? "HELLO" : "frame", key ? key : "(none)", agency);
    zap_refused(b, KB_REFUSED_REVOKED, reason);
    s_error(b, rid, rid_len, f ? f->request_id : 0, KETENBUS__ERROR_CODE__ERROR_CODE_NOT_IN_CHAIN, reason);
    return 1;
}

/* Handle one frame from rid, authenticated as agency: f and rc are the
 * result of decoding it (f stays in the turn's arena), jobs the signature
 * checks of its envelopes when it is a SUBMIT (NULL entries: not checked
 * yet). */
static int s_dispatch(kb_broker_t *b, const uint8_t *rid, size_t rid_len, const char *agency, const char *key,
                      size_t len, Ketenbus__Frame *f, int rc, const kb_verify_job_t *const *jobs)
{
    char reason[256];
    if (s_refuse_revoked(b, rid, rid_len, agency, key, rc == KB_OK ? f : NULL))
        return KB_OK;
    kb_session_t *s = session_find(b, rid, rid_len);
    if (rc == KB_ETOOBIG) {
        snprintf(reason, sizeof reason, "frame of %zu bytes exceeds the limit of %zu", len, s_frame_max(b));
        s_refuse_frame(b, rid, rid_len, agency, 0, KETENBUS__ERROR_CODE__ERROR_CODE_TOO_LARGE, reason);
        return KB_OK;
    }
    if (rc == KB_EVERSION) {
        snprintf(reason, sizeof reason, "protocol version %u is not supported (this broker speaks %u)",
                 f ? f->version : 0, KB_PROTOCOL_VERSION);
        s_refuse_frame(b, rid, rid_len, agency, f ? f->request_id : 0,
                       KETENBUS__ERROR_CODE__ERROR_CODE_UNSUPPORTED_VERSION, reason);
        return KB_OK;
    }
    if (rc != KB_OK) {
        snprintf(reason, sizeof reason, "malformed frame of %zu bytes: %s", len, kb_last_error());
        s_refuse_frame(b, rid, rid_len, agency, 0, KETENBUS__ERROR_CODE__ERROR_CODE_MALFORMED, reason);
        return KB_OK;
    }
    if (s && (strcmp(s->agency, agency) != 0 || !key || strcmp(s->key, key) != 0)) {
        /* another connection (another agency's, or one with another key)
         * has the routing id of a session whose own connection went: what
         * is sent to that id now reaches the newcomer, so the session ends */
        session_close(b, s, "its routing id is used by another connection");
        s = NULL;
    }
    if (s)
        s->last_seen_ms = kb_mono_ms();
    uint64_t req = f->request_id;
    switch (f->body_case) {
    case KETENBUS__FRAME__BODY_HELLO:
        if (rid_len < KB_ROUTING_ID_LEN || rid[0] == 0) {
            /* ids libzmq makes up for a peer (a zero byte and a counter) can
             * be guessed, and taken by another connection once this one goes */
            s_refuse_frame(b, rid, rid_len, agency, req, KETENBUS__ERROR_CODE__ERROR_CODE_UNEXPECTED,
                           "HELLO refused: the connection must set a random routing id of at least 16 bytes, "
                           "not starting with a zero byte (ZMQ_ROUTING_ID)");
            break;
        }
        s = session_open(b, rid, rid_len, agency, key, f->hello->send_only);
        if (!s) {
            rc = s_error(b, rid, rid_len, req, KETENBUS__ERROR_CODE__ERROR_CODE_INTERNAL, kb_last_error());
            break;
        }
        s->last_seen_ms = kb_mono_ms();
        if (!s->send_only)
            session_credit_grant(s, f->hello->credit);
        char name[160]; /* the first ~150 bytes of the name, quoted */
        kb_log(KB_LOG_INFO, "session_opened", "agency=%s adapter=%s credit=%llu%s", agency,
               kb_log_quote(f->hello->adapter_name, name, sizeof name), (unsigned long long)s->credit,
               s->send_only ? " send_only=1" : "");
        audit_event(b, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECTED, agency, NULL, f->hello->adapter_name);
        rc = s_welcome(b, s, req);
        break;
    case KETENBUS__FRAME__BODY_SUBMIT:
    case KETENBUS__FRAME__BODY_ACK:
    case KETENBUS__FRAME__BODY_CREDIT:
    case KETENBUS__FRAME__BODY_PING:
        if (!s) {
            rc = s_error(b, rid, rid_len, req, KETENBUS__ERROR_CODE__ERROR_CODE_NO_SESSION,
                         "no session: send HELLO first");
            break;
        }
        if (f->body_case == KETENBUS__FRAME__BODY_SUBMIT) {
            rc = route_submit(b, s, req, f->submit, jobs);
        } else if (f->body_case == KETENBUS__FRAME__BODY_ACK) {
            rc = deliver_ack(b, s, f->ack);
        } else if (f->body_case == KETENBUS__FRAME__BODY_CREDIT) {
            if (s->send_only) {
                rc = s_error(b, rid, rid_len, req, KETENBUS__ERROR_CODE__ERROR_CODE_UNEXPECTED,
                             "CREDIT on a send-only session: it takes no deliveries (send HELLO without "
                             "send_only to receive)");
                break;
            }
            session_credit_grant(s, f->credit->credit);
        } else {
            Ketenbus__Pong pong;
            ketenbus__pong__init(&pong);
            pong.time_us = f->ping->time_us;
            pong.queued = kb_store_queue_depth(b->store, s->agency);
            pong.uptime_s = (uint64_t)(kb_mono_ms() - b->started_ms) / 1000;
            Ketenbus__Frame pf;
            ketenbus__frame__init(&pf);
            pf.request_id = req;
            pf.body_case = KETENBUS__FRAME__BODY_PONG;
            pf.pong = &pong;
            rc = broker_reply(b, rid, rid_len, &pf);
        }
        break;
    case KETENBUS__FRAME__BODY_ERROR: {
        /* the peer's own text: quoted, so that it cannot add fields */
        char cut[201], quoted[2 * sizeof cut + 3];
        snprintf(cut, sizeof cut, "%s", f->error->message ? f->error->message : "");
        kb_log(KB_LOG_WARN, "peer_error", "agency=%s code=%d message=%s", agency, f->error->code,
               kb_log_quote(cut, quoted, sizeof quoted));
        break;
    }
    default:
        rc = s_error(b, rid, rid_len, req, KETENBUS__ERROR_CODE__ERROR_CODE_UNEXPECTED,
                     "adapters may not send this command");
        break;
    }
    return rc;
}

/* Read one message from the router into in: [routing id][frame].
 * KB_ETIMEDOUT if none is waiting. */
static int s_read_one(kb_broker_t *b, kb_incoming_t *in, kb_arena_t *arena)
{
    memset(in, 0, sizeof *in);
    zmq_msg_init(&in->rid);
    zmq_msg_init(&in->body);
    if (zmq_msg_recv(&in->rid, b->router, ZMQ_DONTWAIT) < 0)
        return zmq_errno() == EAGAIN ? KB_ETIMEDOUT : s_zmq_err("recv");
    in->parts = 1;
    int more = zmq_msg_more(&in->rid);
    if (more) {
        zmq_msg_recv(&in->body, b->router, 0);
        in->parts++;
        more = zmq_msg_more(&in->body);
        /* a DEALER sends single-part messages; drop any extra parts */
        while (more) {
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            zmq_msg_recv(&extra, b->router, 0);
            more = zmq_msg_more(&extra);
            zmq_msg_close(&extra);
            in->parts++;
        }
    }
    in->agency = in->parts >= 2 ? zmq_msg_gets(&in->body, "User-Id") : NULL;
    in->key = in->parts >= 2 ? zmq_msg_gets(&in->body, KB_ZAP_KEY_PROPERTY) : NULL;
    size_t rid_len = zmq_msg_size(&in->rid);
    in->valid = in->agency && *in->agency && rid_len > 0 && rid_len <= KB_ROUTING_ID_MAX && in->parts == 2;
    if (in->valid) {
        /* decoded into the turn's arena: dropped all at once after the turn */
        ProtobufCAllocator pa = kb_arena_allocator(arena);
        in->decode_rc = kb_frame_decode_with(zmq_msg_data(&in->body), zmq_msg_size(&in->body),
                                             s_frame_max(b), &pa, &in->frame);
    }
    return KB_OK;
}

/* Prepare the signature checks of every envelope of the read SUBMIT frames
 * whose sender is the authenticated agency (others are refused before
 * their signature matters) in *jobs (grown as needed); *k is their count.
 * The caller runs them on the pool. */
static int s_verify_prepare(kb_broker_t *b, kb_incoming_t *in, size_t n, kb_verify_job_t **jobs, size_t *cap,
                            size_t *k)
{
    *k = 0;
    size_t want = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i].valid && in[i].decode_rc == KB_OK && in[i].frame->body_case == KETENBUS__FRAME__BODY_SUBMIT)
            want += in[i].frame->submit->n_envelopes;
    if (want == 0 || !b->conf->verify_signatures)
        return KB_OK;
    if (want > *cap) {
        kb_verify_job_t *p = realloc(*jobs, want * sizeof *p);
        if (!p)
            return kb_error_set(KB_ENOMEM, "verify: out of memory");
        *jobs = p;
        *cap = want;
    }
    for (size_t i = 0; i < n; i++) {
        if (!in[i].valid || in[i].decode_rc != KB_OK || in[i].frame->body_case != KETENBUS__FRAME__BODY_SUBMIT)
            continue;
        Ketenbus__Submit *sub = in[i].frame->submit;
        in[i].jobs = calloc(sub->n_envelopes ? sub->n_envelopes : 1, sizeof *in[i].jobs);
        if (!in[i].jobs)
            return kb_error_set(KB_ENOMEM, "verify: out of memory");
        for (size_t e = 0; e < sub->n_envelopes; e++) {
            const Ketenbus__Envelope *env = sub->envelopes[e];
            const kb_agency_t *a = env->sender ? kb_conf_agency(b->conf, env->sender) : NULL;
            if (!a || strcmp(env->sender, in[i].agency) != 0 || !a->signing_key)
                continue;
            kb_verify_job_t *j = &(*jobs)[*k];
            j->env = env;
            j->key = a->signing_key;
            j->detail[0] = '\0';
            in[i].jobs[e] = j;
            (*k)++;
        }
    }
    return KB_OK;
}

/* The frame itself lives in the turn's arena: reset that after. */
static void s_incoming_clear(kb_incoming_t *in)
{
    free(in->jobs);
    zmq_msg_close(&in->body);
    zmq_msg_close(&in->rid);
    memset(in, 0, sizeof *in);
}

/* Read waiting frames into in, decoded into arena, until KB_DRAIN_MAX
 * frames or envelopes (a SUBMIT counts its envelopes, any other frame one)
 * or KB_DRAIN_ARENA_MAX decoded bytes are read; *n is how many frames.
 * Counting envelopes keeps the turns of batched SUBMITs as short as those
 * of single ones, so routing the next turn overlaps the write of this one
 * instead of one turn taking a sender's whole window. */
static int s_read_all(kb_broker_t *b, kb_incoming_t *in, size_t *n, kb_arena_t *arena)
{
    *n = 0;
    int rc = KB_OK;
    size_t envs = 0;
    while (*n < KB_DRAIN_MAX && envs < KB_DRAIN_MAX && kb_arena_used(arena) < KB_DRAIN_ARENA_MAX) {
        rc = s_read_one(b, &in[*n], arena);
        if (rc != KB_OK) {
            zmq_msg_close(&in[*n].body);
            zmq_msg_close(&in[*n].rid);
            break;
        }
        const kb_incoming_t *f = &in[*n];
        envs += f->valid && f->decode_rc == KB_OK && f->frame->body_case == KETENBUS__FRAME__BODY_SUBMIT
                    ? f->frame->submit->n_envelopes
                    : 1;
        (*n)++;
    }
    return rc == KB_ETIMEDOUT ? KB_OK : rc;
}

/* Let the pool finish the checks of the frames read ahead and forget
 * their results, so routing checks them again under the configuration
 * in force: the keys they used may be about to go (reload). */
static void s_read_ahead_recheck(kb_broker_t *b)
{
    if (b->n_next == 0)
        return;
    kb_verify_pool_finish(b->verify);
    for (size_t i = 0; i < b->n_jobs_next; i++)
        b->jobs_next[i].rc = KB_EINVAL;
}

/* Take up to KB_DRAIN_MAX waiting frames with their signatures checked on
 * all cores, then handle them one by one in arrival order. With checks on,
 * the frames waiting after these are read ahead and their checks started
 * on the pool's workers while this thread routes: the next turn finds
 * them (mostly) checked. Read-ahead frames are always handled first next
 * turn, so the order of arrival is kept. */
static int s_drain(kb_broker_t *b)
{
    size_t n = 0, k = 0;
    int rc = KB_OK;
    if (b->n_next > 0) {
        kb_verify_pool_finish(b->verify);
        kb_incoming_t *in = b->in;
        b->in = b->in_next;
        b->in_next = in;
        kb_arena_t *arena = b->arena;
        b->arena = b->arena_next;
        b->arena_next = arena;
        kb_verify_job_t *jobs = b->jobs;
        size_t cap = b->cap_jobs;
        b->jobs = b->jobs_next;
        b->cap_jobs = b->cap_jobs_next;
        b->jobs_next = jobs;
        b->cap_jobs_next = cap;
        n = b->n_next;
        b->n_next = b->n_jobs_next = 0;
    } else {
        rc = s_read_all(b, b->in, &n, b->arena);
        if (rc == KB_OK)
            rc = s_verify_prepare(b, b->in, n, &b->jobs, &b->cap_jobs, &k);
        if (rc == KB_OK)
            kb_verify_pool_run(b->verify, b->jobs, k);
    }
    if (rc == KB_OK && n > 0 && b->conf->verify_signatures) {
        size_t m = 0;
        int arc = s_read_all(b, b->in_next, &m, b->arena_next);
        if (arc == KB_OK)
            arc = s_verify_prepare(b, b->in_next, m, &b->jobs_next, &b->cap_jobs_next, &k);
        if (arc == KB_OK) {
            b->n_next = m;
            b->n_jobs_next = k;
            kb_verify_pool_start(b->verify, b->jobs_next, k);
        } else {
            kb_log(KB_LOG_WARN, "read_ahead_failed", "detail=\"%s\"", kb_last_error());
            for (size_t i = 0; i < m; i++)
                s_incoming_clear(&b->in_next[i]); /* dropped: their senders resend */
            kb_arena_reset(b->arena_next);
        }
    }
    int aborted = 0;
    for (size_t i = 0; i < n; i++) {
        kb_incoming_t *in = &b->in[i];
        const uint8_t *rid = zmq_msg_data(&in->rid);
        size_t rid_len = zmq_msg_size(&in->rid);
        if (rc != KB_OK || aborted) {
            /* nothing more is handled this turn; peers resend */
        } else if (!in->agency || !*in->agency || rid_len == 0 || rid_len > KB_ROUTING_ID_MAX) {
            kb_log(KB_LOG_WARN, "frame_dropped", "reason=\"no authenticated agency\"");
        } else if (in->parts != 2) {
            if (!s_refuse_revoked(b, rid, rid_len, in->agency, in->key, NULL))
                s_refuse_frame(b, rid, rid_len, in->agency, 0, KETENBUS__ERROR_CODE__ERROR_CODE_MALFORMED,
                               "expected a single-part message");
        } else {
            rc = s_dispatch(b, rid, rid_len, in->agency, in->key, zmq_msg_size(&in->body), in->frame, in->decode_rc,
                            (const kb_verify_job_t *const *)in->jobs);
            /* a turn's frames may fan out to many agencies each: past the
             * bound, write what they staged before routing more. A failed
             * write has already refused the turn and reset the sessions. */
            if (rc == KB_OK && b->staged_cost >= KB_STAGE_COST_MAX)
                aborted = s_write_behind(b) != KB_OK;
        }
        s_incoming_clear(in);
    }
    kb_arena_reset(b->arena); /* every frame of the turn */
    return rc;
}

/* Something went wrong in this turn (not a commit): once the batch in
 * flight is settled, drop what the turn staged and refuse its replies. */
static void s_fail_turn(kb_broker_t *b)
{
    if (broker_settle(b) != KB_OK)
        return; /* settling failed, and refused everything already */
    s_abort_turn(b);
    s_flush(b);
}

/* One turn: read and route what waits while the committer writes the
 * previous batch; once that is written, settle it (its receipts go out),
 * hand out deliveries of what it made durable, and start writing the
 * staged batch (this turn's and those of turns while the disk was busy). Only a batch that answers SUBMITs is synced: RECEIPT
 * promises durability. ACKs, sessions, deliveries and expiry ride along
 * unsynced and reach the disk with the next synced write; if the broker
 * dies first, an unacknowledged delivery is simply made again and the SDK
 * drops it. */
static int s_turn(kb_broker_t *b)
{
    int rc = s_drain(b);
    int64_t now_ms = kb_mono_ms();
    if (rc == KB_OK && now_ms >= b->next_expiry_ms) {
        /* expiry reads the queues: it must see every batch handed over */
        if (broker_settle(b) != KB_OK)
            return KB_OK;
        session_expire_idle(b, now_ms);
        zap_refusals_flush(b, 0);
        rc = deliver_expire(b, kb_now_us());
        b->next_expiry_ms = now_ms + KB_EXPIRY_PERIOD_MS;
    }
    if (rc != KB_OK) {
        s_fail_turn(b);
        return KB_OK; /* keep serving: the next turn may succeed */
    }
    /* While a batch is being written, what arrives is routed into the
     * staged batch, which goes next with everything that came meanwhile:
     * the loop does not wait for the disk, only the replies do. Past
     * KB_STAGE_OPS_MAX staged operations, KB_STAGE_COST_MAX of staged
     * copies, or KB_REPLIES_BYTES_MAX bytes of replies waiting, it waits
     * after all: it reads no frames meanwhile,
     * so libzmq's ZMQ_RCVHWM holds the senders back. */
    if (kb_commit_busy(b->commit) && !kb_commit_ready(b->commit) && kb_batch_size(b->batch) < KB_STAGE_OPS_MAX &&
        b->staged_cost < KB_STAGE_COST_MAX && b->out.bytes < KB_REPLIES_BYTES_MAX)
        return KB_OK; /* the committer's pipe wakes the loop */
    /* deliveries come from what is written, and one batch at a time is */
    if (broker_settle(b) != KB_OK)
        return KB_OK;
    rc = deliver_pump(b);
    if (rc != KB_OK) {
        s_fail_turn(b);
        return KB_OK;
    }
    s_submit(b);
    checkpoint_maybe(b, 0);
    retention_maybe(b);
    return KB_OK;
}

/* The socket, store and keys stay as they are until a restart: fresh
 * takes the listen, data_dir and key_dir of the configuration in force, so
 * that it (and `ketenbus status`) says what is in use, a later reload warns
 * again while the file still differs, and one that puts the file back does
 * not. Warns which of them the file changes; a listen naming the endpoint
 * bound (the port a "*" got) changes nothing. */
static void s_keep_in_use(const kb_broker_t *b, kb_conf_t *fresh)
{
    kb_conf_t *in_use = b->conf;
    struct {
        const char *name; /* the key in the file */
        char **now;       /* the value in use */
        char **next;      /* the file's */
        const char *same; /* another value that means the one in use, or NULL */
    } f[] = {
        {"listen", &in_use->listen, &fresh->listen, b->endpoint},
        {"data_dir", &in_use->data_dir, &fresh->data_dir, NULL},
        {"key_dir", &in_use->key_dir, &fresh->key_dir, NULL},
    };
    char changed[64] = "";
    size_t n = 0, used = 0; /* how many changed; bytes of changed */
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (strcmp(*f[i].now, *f[i].next) == 0)
            continue;
        /* the same endpoint spelt otherwise is no change, but its spelling
         * in use is kept too, so that the file's first spelling matches */
        if (!f[i].same || strcmp(f[i].same, *f[i].next) != 0) {
            int w = snprintf(changed + used, sizeof changed - used, "%s%s", n ? ", " : "", f[i].name);
            if (w > 0 && (size_t)w < sizeof changed - used)
                used += (size_t)w;
            n++;
        }
        char *keep = *f[i].next; /* the old configuration frees the file's value */
        *f[i].next = *f[i].now;
        *f[i].now = keep;
    }
    if (n > 0)
        kb_log(KB_LOG_WARN, "reload_partial",
               "changed=\"%s\" detail=\"the file changes %s, which takes a restart; until then the broker keeps "
               "what it started with\"",
               changed, changed);
}

/* A refused reload: logged and audited with who asked and the SHA-256 of
 * the file offered (sha256; "" when it could not be read whole, which why
 * then explains). The configuration in force stays. */
static int s_reload_refused(kb_broker_t *b, const char *who, const char *sha256, const char *why)
{
    char detail[KB_ERROR_MAX], file[96], reason[KB_ERROR_MAX + 256];
    /* why may be the thread's last error, which logging can change */
    snprintf(detail, sizeof detail, "%s", why);
    if (sha256[0])
        snprintf(file, sizeof file, "sha256=%s", sha256);
    else
        snprintf(file, sizeof file, "the file could not be read");
    kb_log(KB_LOG_ERROR, "reload_refused", "by=\"%s\"%s%s detail=\"%s\"", who, sha256[0] ? " sha256=" : "", sha256,
           detail);
    snprintf(reason, sizeof reason, "refused reload requested by %s; %s; old rules stay: %s", who, file, detail);
    audit_event(b, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, "", NULL, reason);
    return kb_error_set(KB_ECONFIG, "%s", detail);
}

int kb_broker_reload(kb_broker_t *b, const char *who)
{
    s_read_ahead_recheck(b);
    char sha256[65];
    kb_conf_t *fresh = kb_conf_load_ex(b->conf_path, 0, sha256);
    if (!fresh)
        return s_reload_refused(b, who, sha256, kb_last_error());
    /* the broker id names the origin of the audit log's signed
     * checkpoints: under another id, every later checkpoint would fail
     * `ketenbus audit verify`, and a restart would refuse it anyway */
    if (strcmp(fresh->broker_id, b->conf->broker_id) != 0) {
        char detail[KB_ERROR_MAX];
        snprintf(detail, sizeof detail,
                 "%s: broker.id changed from '%s' to '%s'; the audit log's checkpoints are signed as ketenbus/%s, "
                 "and the id cannot change for this data_dir",
                 fresh->path, b->conf->broker_id, fresh->broker_id, b->conf->broker_id);
        kb_conf_destroy(&fresh);
        return s_reload_refused(b, who, sha256, detail);
    }
    if (kb_conf_check_broker_keys(fresh, b->sign_key, b->curve_pub, b->conf->key_dir) != KB_OK) {
        int rc = s_reload_refused(b, who, sha256, kb_last_error());
        kb_conf_destroy(&fresh);
        return rc;
    }
    if (fresh->max_message_bytes > b->frame_max_start)
        kb_log(KB_LOG_WARN, "reload_partial",
               "detail=\"max_message_bytes above %zu needs a restart: frames stay limited to %zu until then\"",
               b->frame_max_start, b->frame_max_start);
    /* a clean cut: what was decided under the old configuration is written
     * and its replies sent now, so that no DELIVER held with a batch in
     * flight reaches a connection after its key was revoked below */
    if (broker_write_staged(b) != KB_OK)
        kb_log(KB_LOG_WARN, "reload_flush_failed", "detail=\"%s\"", kb_last_error());
    s_keep_in_use(b, fresh);
    kb_conf_t *old = b->conf;
    b->conf = fresh;
    /* a shorter checkpoint_interval holds from now, not once the old one
     * has run out, for checkpoints and for the retention passes it spaces */
    int64_t now_ms = kb_mono_ms();
    int64_t due = now_ms + (int64_t)(fresh->checkpoint_interval_us / 1000);
    if (b->cp_next_ms > due)
        b->cp_next_ms = due;
    if (b->retention_next_ms > due)
        b->retention_next_ms = due;
    /* other retention periods take effect at once: a pass starts now, and
     * one under way starts over, so that kinds it has done are pruned
     * under their new periods too (pruning what is pruned changes nothing) */
    if (memcmp(old->retention_us, fresh->retention_us, sizeof fresh->retention_us) != 0) {
        b->retention_kind = 0;
        if (b->retention_next_ms > now_ms)
            b->retention_next_ms = now_ms;
    }
    /* sessions of agencies that left the chain, and of connections whose
     * key left it, end now; their connections get no new one (HELLO) */
    for (size_t i = 0; i < KB_MAX_SESSIONS; i++) {
        kb_session_t *s = &b->sessions[i];
        if (s->rid_len == 0)
            continue;
        if (!kb_conf_agency(fresh, s->agency))
            session_close(b, s, "agency removed from the chain configuration");
        else if (!s_key_in_force(fresh, s->agency, s->key))
            session_close(b, s, "its CURVE key was removed from the chain configuration");
    }
    kb_log(KB_LOG_INFO, "rules_loaded", "by=\"%s\" sha256=%s previous=%s agencies=%zu rules=%zu", who,
           fresh->sha256, old->sha256, fresh->n_agencies, fresh->n_rules);
    s_config_notes(b);
    char reason[KB_ERROR_MAX + 128];
    snprintf(reason, sizeof reason, "sha256=%s previous=%s loaded by %s%s%s", fresh->sha256, old->sha256, who,
             fresh->verify_signatures ? "" : "; ", fresh->verify_signatures ? "" : S_UNCHECKED);
    audit_event(b, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, "", NULL, reason);
    kb_conf_destroy(&old);
    return KB_OK;
}

int kb_broker_run(kb_broker_t *b, kb_signals_t *sig)
{
    while (!sig->stop) {
        if (sig->reload) {
            sig->reload = 0;
            char who[96];
            snprintf(who, sizeof who, "SIGHUP from pid %d uid %d", (int)sig->hup_pid, (int)sig->hup_uid);
            kb_broker_reload(b, who);
        }
        /* a written batch wakes the loop too: its receipts are waiting */
        zmq_pollitem_t items[4] = {{b->router, 0, ZMQ_POLLIN, 0},
                                   {b->zap, 0, ZMQ_POLLIN, 0},
                                   {b->admin, 0, ZMQ_POLLIN, 0},
                                   {NULL, kb_commit_fd(b->commit), ZMQ_POLLIN, 0}};
        /* frames read ahead are waiting already: only look, do not wait */
        int n = zmq_poll(items, kb_commit_busy(b->commit) ? 4 : 3, b->n_next > 0 ? 0 : KB_POLL_MAX_MS);
        if (n < 0) {
            if (zmq_errno() == EINTR)
                continue;
            return s_zmq_err("poll");
        }
        if (items[1].revents & ZMQ_POLLIN) {
            int rc = zap_handle(b);
            if (rc != KB_OK)
                kb_log(KB_LOG_ERROR, "zap_failed", "detail=\"%s\"", kb_last_error());
        }
        if (items[2].revents & ZMQ_POLLIN) {
            /* operators read the store and may write it directly */
            broker_settle(b);
            int rc = admin_handle(b);
            if (rc != KB_OK)
                kb_log(KB_LOG_ERROR, "admin_failed", "detail=\"%s\"", kb_last_error());
        }
        int rc = s_turn(b);
        if (rc != KB_OK)
            return rc;
    }
    zap_refusals_flush(b, 1);
    /* what was staged while the last batch was written goes out too */
    int rc = broker_write_staged(b);
    kb_log(KB_LOG_INFO, "stopping", "accepted=%llu rejected=%llu delivered=%llu",
           (unsigned long long)b->stat_accepted, (unsigned long long)b->stat_rejected,
           (unsigned long long)b->stat_delivered);
    if (rc != KB_OK)
        return s_stop_lost("the audit records it staged");
    return KB_OK;
}
