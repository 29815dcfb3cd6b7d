/*
 * client.c - ketenbus_client_t: the adapter's side of the protocol.
 *
 * One DEALER socket with CURVE (the agency's key pair, the broker's public
 * key) and a random routing id, since the broker keys sessions by it. The
 * client is driven by the caller's thread through poll, submit, recv and
 * flush; nothing runs in the background. Session life:
 *   not welcomed --HELLO--> welcomed (WELCOME) --silence, NO_SESSION or a new connection--> not welcomed
 * ZeroMQ reconnects by itself and keeps the routing id, so the broker's
 * session would go on across a reconnect while the frames it had queued on
 * the old connection are gone. A monitor on the socket reports every lost
 * and every new connection; either ends the session here, and HELLO on the
 * new connection makes the broker send again what was in flight. Frames of
 * the old connection can still be read after those events, so only a
 * WELCOME that echoes a HELLO sent since the session ended opens one.
 * A frame from the broker is bounded before libzmq buffers it: one over
 * KB_FRAME_MAX (and some slack) drops the connection. libzmq does not
 * connect again after such a protocol error, so a lost connection that
 * libzmq does not retry by itself is made again here, after a wait that
 * grows until a WELCOME.
 * A frame the broker drops unread (too large after a reload lowered its
 * limit) also ends the session, with a growing wait before the next HELLO
 * if that repeats (s_frame_dropped).
 * On every WELCOME all outbox entries are sent again, in order: the broker
 * drops ids it accepted before (DUPLICATE), so a broker restart or a lost
 * receipt costs nothing. A SUBMIT that ZeroMQ cannot take now (EAGAIN: the
 * queue to the broker is full) is tried again at the next poll, and the
 * outbox goes on from its first entry, not from the start again. An entry
 * the broker refused only for now (REJECT_INTERNAL, "retry later"), or
 * answered with an outcome this SDK does not know, keeps its place in the
 * outbox and is sent again after a delay that doubles while such refusals
 * go on; it gets no receipt until the broker decides.
 * Deliveries acknowledged before are acknowledged again and dropped
 * (effectively once); like the broker, the SDK knows a message by its
 * sender and id, since senders may choose ids. ketenbus_client_ack()
 * records a message as seen before it returns, with or without a session;
 * ACK and CREDIT go on the session that delivered the message, and stay
 * owed across EAGAIN until a poll can send them. What the SDK keeps of a
 * session's deliveries is bounded by the credit it granted, since a
 * broker that delivers beyond it ends the session (s_over_credit). The broker delivers a
 * message again only until its TTL, which WELCOME tells, and a genuine one
 * is at most twice that old: seen records older than that (and a margin)
 * are deleted, a bounded step per poll, and a delivery created before the
 * records kept, which they could no longer tell from a replay, stays
 * queued (s_check_created).
 */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <zmq.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_log.h"
#include "kb_seal.h"
#include "kb_util.h"
#include "sdk_internal.h"

#define KB_DEFAULT_CREDIT     64u
#define KB_DEFAULT_PING_MS    1000u
#define KB_HELLO_RETRY_MS     500
#define KB_REVOKED_FIRST_MS   2000   /* HELLO again this long after the key was refused (NOT_IN_CHAIN), */
#define KB_REVOKED_MAX_MS     300000 /* twice as long each time, up to this */
#define KB_KEEP_FIRST_MS      1000   /* a delivery the handler kept is asked for again after this, */
#define KB_KEEP_MAX_MS        60000  /* twice as long each time it is kept again, up to this, */
#define KB_KEEP_CALM_MS       120000 /* and back to the first wait once no restart was needed this long */
#define KB_REFUSED_MAX_MS     600000 /* when only refused deliveries wait (for a key): up to this, */
#define KB_KEYS_LOOK_MS       1000   /* or at once when the key directory changed (looked at this often) */
#define KB_DROPPED_FIRST_MS   1000   /* a session ended again for a frame the broker dropped (or deliveries
                                      * beyond the credit) waits this long, */
#define KB_DROPPED_MAX_MS     60000  /* twice as long each time, up to this, */
#define KB_DROPPED_CALM_MS    120000 /* and HELLO goes at once again after this long without one */
#define KB_RESEND_BATCH       256u   /* envelopes per SUBMIT when resending */
_Static_assert(KB_RESEND_BATCH <= KB_MAX_BATCH, "a resent SUBMIT stays within the broker's batch limit");
#define KB_SILENCE_PINGS      3      /* missed pings before the session is presumed gone */
#define KB_CLOSE_LINGER_MS    500    /* how long closing waits for queued frames */
#define KB_FRAME_MAX          (64u * 1024u * 1024u) /* largest frame accepted from the broker */
#define KB_FRAME_SLACK        (1u << 20)  /* over KB_FRAME_MAX: still read (and refused), beyond: dropped by libzmq */
#define KB_RCVHWM             1000   /* unread frames libzmq holds for the client (its default) */
#define KB_RECONNECT_FIRST_MS 1000   /* a connection libzmq gave up is made again after this, */
#define KB_RECONNECT_MAX_MS   60000  /* twice as long each time until a WELCOME, up to this */
#define KB_RETRY_MIN_MS       500    /* first wait before sending again what the broker refused for now */
#define KB_RETRY_MAX_MS       30000  /* longest wait between such retries */
#define KB_PRUNE_STEP         1000u  /* seen records looked at per pruning step */
#define KB_PRUNE_STEP_MS      100    /* pause between steps of one pass (at most 10,000 records/s) */
#define KB_PRUNE_PASS_MS      (3600 * 1000) /* pause between passes */
#define KB_FLUSH_PAUSE_MS     100    /* flush waits this long after a poll that failed */

struct ketenbus_client_opts {
    char *agency;            /* agency id */
    char *key_dir;           /* directory with its keys */
    char *endpoint;          /* broker endpoint */
    char *broker_cert;       /* broker's public CURVE certificate file */
    char *state_dir;         /* outbox and receive state */
    char *signing_keys;      /* senders' public signing keys (NULL: key_dir) */
    unsigned credit;         /* deliveries granted ahead */
    unsigned ping_ms;        /* ping interval */
    ketenbus_log_fn *log;    /* log callback */
    void *log_arg;           /* its argument */
};

/* The submissions one submit call waits for. Their receipts are taken as
 * each RECEIPT frame is handled (s_on_receipt), not looked up afterwards,
 * so that none is missed however many other receipts come in the same
 * read. A handler may submit (with timeout 0) while a submit of the
 * adapter waits: waits nest, the innermost first. */
typedef struct kb_await {
    ketenbus_msg_t **msgs;               /* the messages waited for, in submission order */
    size_t n;                            /* count, at most KETENBUS_BATCH_MAX */
    ketenbus_receipt_t *receipts;        /* their receipts as they come (n entries; may be NULL) */
    uint8_t decided[KETENBUS_BATCH_MAX]; /* 1: msgs[i] got its (final) receipt */
    size_t n_decided;                    /* how many did */
    size_t n_rejected;                   /* how many of those were refused for good */
    struct kb_await *outer;              /* the wait this one started within, or NULL */
} kb_await_t;

/* A delivery of the open session whose message the adapter holds (recv),
 * or a copy of it: its tag goes when the message is acknowledged. */
typedef struct {
    kb_seen_key_t key; /* sender and id */
    uint64_t tag;      /* delivery tag */
} kb_held_t;

struct ketenbus_client {
    ketenbus_client_opts_t o;         /* copy of the options */
    void *zctx;                       /* ZeroMQ context */
    void *dealer;                     /* connection to the broker */
    void *monitor;                    /* the dealer's connection events (PAIR) */
    EVP_PKEY *sign_key;               /* agency's Ed25519 key */
    kb_sender_keys_t *senders;        /* senders' public keys, to check deliveries */
    char broker_id[KB_AGENCY_ID_MAX + 1]; /* the broker's id (WELCOME): the sender of its notices */
    kb_outbox_t *outbox;              /* durable state */
    int welcomed;                     /* session open on this connection */
    int resend;                       /* outbox must be (re)sent */
    uint64_t resend_seq;              /* with resend: from the entry of this seq on */
    int64_t retry_at_ms;              /* when entries refused for now go again (0: none due) */
    unsigned retry_ms;                /* wait before the next such round (backoff) */
    int64_t last_hello_ms;            /* when HELLO was last sent */
    int64_t revoked_ms;               /* HELLO interval while the broker refuses this key; 0: not refused */
    uint64_t hello_floor;             /* a WELCOME answers a HELLO only from this request id up */
    int64_t hello_at_ms;              /* no HELLO before this (after frames the broker dropped, or
                                       * deliveries beyond the credit) */
    int64_t dropped_ms;               /* the wait before HELLO when that happens again (backoff) */
    int64_t dropped_restart_ms;       /* when a session last ended for it (0: never) */
    int64_t reconnect_at_ms;          /* when to connect again if libzmq does not (0: not needed) */
    int64_t reconnect_ms;             /* the wait before that (backoff) */
    int64_t last_ping_ms;             /* when PING was last sent */
    int64_t last_rx_ms;               /* when a frame last arrived */
    int ttl_told;                     /* the last WELCOME told the broker's message TTL */
    size_t max_frame;                 /* largest frame the broker takes (WELCOME); 0: not told yet */
    int64_t keep_at_ms;               /* when to start the session again for deliveries the handler kept (0: none) */
    int64_t keep_ms;                  /* the wait before that (backoff) */
    int64_t keep_restart_ms;          /* when the session was last started again for them (0: never) */
    int keep_kept;                    /* 1: the handler kept one (0: only refused ones wait) */
    size_t q_entries;                 /* deliveries in the quarantine (counted at start, then kept) */
    uint64_t q_bytes;                 /* their bytes */
    int64_t keys_stamp;               /* the key directory's stamp when a refusal set keep_at_ms */
    int64_t keys_look_ms;             /* when to look at it again */
    int64_t prune_at_ms;              /* when the next step over the seen records is due */
    size_t pruned;                    /* seen records removed in this pass so far */
    unsigned ping_ms;                 /* ping interval in force */
    uint64_t next_request;            /* request id counter */
    ketenbus_msg_t **inbox;           /* received, not yet taken by recv */
    size_t n_inbox;                   /* count */
    size_t cap_inbox;                 /* allocated */
    uint64_t *ack_tags;               /* tags the handler took in this poll, to acknowledge */
    kb_seen_key_t *ack_keys;          /* their senders and ids, to record as seen first */
    size_t n_ack;                     /* count */
    size_t n_ack_untagged;            /* ack_keys[0..this) were taken on a session that ended before
                                       * they were recorded: no tag to send, only to record */
    size_t cap_ack;                   /* allocated */
    uint64_t *dup_tags;               /* tags to acknowledge whose messages are recorded as seen */
    size_t n_dup;                     /* count */
    size_t cap_dup;                   /* allocated */
    kb_held_t *held;                  /* tags of this session's deliveries handed out by recv, or of
                                       * copies of them, waiting for ketenbus_client_ack() */
    size_t n_held;                    /* count */
    size_t cap_held;                  /* allocated */
    uint64_t credit_owed;             /* acknowledged deliveries whose CREDIT is not sent yet */
    uint64_t credit_granted;          /* deliveries the broker may send on this session: the credit of
                                       * its HELLO and of the CREDIT frames since (s_on_deliver) */
    uint64_t delivered;               /* deliveries it sent on this session */
    uint64_t credit_since_hello;      /* credit sent in CREDIT frames since the last HELLO went out */
    kb_await_t *await;                /* the innermost submit waiting for receipts, or NULL */
    ketenbus_receipt_t last_receipt;  /* the most recent receipt */
    int has_last_receipt;             /* 1 once there is one */
    ketenbus_handler_fn *handler;     /* delivery callback */
    void *handler_arg;                /* its argument */
};

/* ------------------------------------------------------------ options */

ketenbus_client_opts_t *ketenbus_client_opts_new(void)
{
    ketenbus_client_opts_t *o = calloc(1, sizeof *o);
    if (!o) {
        kb_error_set(KB_ENOMEM, "options: out of memory");
        return NULL;
    }
    o->credit = KB_DEFAULT_CREDIT;
    o->ping_ms = KB_DEFAULT_PING_MS;
    return o;
}

static void s_opts_free(ketenbus_client_opts_t *o)
{
    free(o->agency);
    free(o->key_dir);
    free(o->endpoint);
    free(o->broker_cert);
    free(o->state_dir);
    free(o->signing_keys);
}

void ketenbus_client_opts_destroy(ketenbus_client_opts_t **p)
{
    if (!p || !*p)
        return;
    s_opts_free(*p);
    free(*p);
    *p = NULL;
}

static int s_set(char **field, const char *value, const char *what)
{
    if (!value || !*value)
        return kb_error_set(KB_EINVAL, "options: %s is empty", what);
    char *copy = strdup(value);
    if (!copy)
        return kb_error_set(KB_ENOMEM, "options: out of memory");
    free(*field);
    *field = copy;
    return KB_OK;
}

int ketenbus_client_opts_set_agency(ketenbus_client_opts_t *o, const char *agency, const char *key_dir)
{
    if (!o)
        return kb_error_set(KB_EINVAL, "options: NULL");
    int rc = s_set(&o->agency, agency, "agency");
    return rc == KB_OK ? s_set(&o->key_dir, key_dir, "key directory") : rc;
}

int ketenbus_client_opts_set_broker(ketenbus_client_opts_t *o, const char *endpoint, const char *broker_cert)
{
    if (!o)
        return kb_error_set(KB_EINVAL, "options: NULL");
    int rc = s_set(&o->endpoint, endpoint, "broker endpoint");
    return rc == KB_OK ? s_set(&o->broker_cert, broker_cert, "broker certificate") : rc;
}

int ketenbus_client_opts_set_state_dir(ketenbus_client_opts_t *o, const char *dir)
{
    if (!o)
        return kb_error_set(KB_EINVAL, "options: NULL");
    return s_set(&o->state_dir, dir, "state directory");
}

int ketenbus_client_opts_set_signing_keys(ketenbus_client_opts_t *o, const char *dir)
{
    if (!o)
        return kb_error_set(KB_EINVAL, "options: NULL");
    return s_set(&o->signing_keys, dir, "signing key directory");
}

int ketenbus_client_opts_set_credit(ketenbus_client_opts_t *o, unsigned credit)
{
    if (!o || credit > 100000)
        return kb_error_set(KB_EINVAL, "options: credit must be 0..100000");
    o->credit = credit;
    return KB_OK;
}

int ketenbus_client_opts_set_ping_interval(ketenbus_client_opts_t *o, unsigned ms)
{
    if (!o || ms < 50 || ms > 600000)
        return kb_error_set(KB_EINVAL, "options: ping interval must be 50..600000 ms");
    o->ping_ms = ms;
    return KB_OK;
}

int ketenbus_client_opts_set_log(ketenbus_client_opts_t *o, ketenbus_log_fn *fn, void *arg)
{
    if (!o)
        return kb_error_set(KB_EINVAL, "options: NULL");
    o->log = fn;
    o->log_arg = arg;
    return KB_OK;
}

/* ------------------------------------------------------------ helpers */

static void s_log(ketenbus_client_t *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void s_log(ketenbus_client_t *c, int level, const char *fmt, ...)
{
    if (!c->o.log)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->o.log(level, line, c->o.log_arg);
}

/* Give a new DEALER a random routing id (kb_routing_id_new) before it
 * connects. The broker keys sessions by the routing id, and refuses the one
 * libzmq makes up (a zero byte and a counter), which is easy to guess:
 * another agency connecting with it while this agency's session is still
 * open would be handed this agency's deliveries. Every socket the client
 * creates gets a fresh id through this function. */
static int s_set_routing_id(void *sock)
{
    uint8_t id[KB_ROUTING_ID_LEN];
    int rc = kb_routing_id_new(id);
    if (rc == KB_OK && zmq_setsockopt(sock, ZMQ_ROUTING_ID, id, sizeof id) != 0)
        rc = kb_error_set(KB_ENET, "client: routing id: %s", zmq_strerror(zmq_errno()));
    OPENSSL_cleanse(id, sizeof id);
    return rc;
}

/* Send an encoded frame and free it. */
static int s_send_encoded(ketenbus_client_t *c, uint8_t *buf, size_t len)
{
    int n = zmq_send(c->dealer, buf, len, ZMQ_DONTWAIT);
    free(buf);
    if (n < 0) {
        /* EAGAIN: not connected (ZMQ_IMMEDIATE) or the pipe is full */
        return kb_error_set(zmq_errno() == EAGAIN ? KB_EPENDING : KB_ENET, "send: %s", zmq_strerror(zmq_errno()));
    }
    return KB_OK;
}

static int s_send(ketenbus_client_t *c, Ketenbus__Frame *f)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (f->request_id == 0)
        f->request_id = ++c->next_request;
    int rc = kb_frame_encode(f, &buf, &len);
    if (rc != KB_OK)
        return rc;
    return s_send_encoded(c, buf, len);
}

static int s_send_hello(ketenbus_client_t *c)
{
    Ketenbus__Hello h;
    ketenbus__hello__init(&h);
    h.adapter_name = c->o.agency;
    h.software = (char *)"libketenbus 0.1.0";
    h.credit = c->o.credit;
    h.send_only = c->o.credit == 0; /* takes no deliveries: leaves the agency's receiver alone */
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_HELLO;
    f.hello = &h;
    c->last_hello_ms = kb_mono_ms();
    int rc = s_send(c, &f);
    if (rc == KB_OK)
        c->credit_since_hello = 0;
    return rc;
}

static int s_send_submit(ketenbus_client_t *c, const kb_packed_t *envs, size_t n)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = kb_submit_encode(++c->next_request, envs, n, &buf, &len);
    return rc == KB_OK ? s_send_encoded(c, buf, len) : rc;
}

/* The largest SUBMIT frame the broker takes: what its last WELCOME said. */
static size_t s_max_frame(const ketenbus_client_t *c)
{
    return c->max_frame > 0 ? c->max_frame : KB_FRAME_MAX_DEFAULT;
}

/* Answer an outbox entry that no SUBMIT frame can carry (larger alone
 * than the broker takes) as the broker would: rejected for good, with
 * REJECT_TOO_LARGE, so that it leaves the outbox and its submitter
 * learns why instead of waiting for ever. */
static void s_on_receipt(ketenbus_client_t *c, const Ketenbus__Receipt *rc);

static void s_reject_too_large(ketenbus_client_t *c, const uint8_t id[16], size_t frame_len)
{
    char reason[160];
    snprintf(reason, sizeof reason,
             "a SUBMIT of this message alone is %zu bytes; the broker takes frames of at most %zu bytes "
             "(max_message_bytes)",
             frame_len, s_max_frame(c));
    Ketenbus__ReceiptEntry e;
    ketenbus__receipt_entry__init(&e);
    e.message_id.data = (uint8_t *)id;
    e.message_id.len = 16;
    e.outcome = KETENBUS__OUTCOME__OUTCOME_REJECTED;
    e.code = KETENBUS__REJECT_CODE__REJECT_TOO_LARGE;
    e.reason = reason;
    Ketenbus__ReceiptEntry *ep = &e;
    Ketenbus__Receipt r;
    ketenbus__receipt__init(&r);
    r.n_entries = 1;
    r.entries = &ep;
    s_on_receipt(c, &r);
}

/* Send outbox entries from the one of seq `from_seq` on (with only_retry:
 * just those marked to be sent again), in SUBMIT frames of up to
 * KB_RESEND_BATCH envelopes and at most the broker's max_message_bytes,
 * around the stored bytes: the outbox holds only envelopes the SDK
 * packed, and checks those it loads at open. An entry too large for any
 * frame is rejected here (s_reject_too_large). Every entry passed clears
 * its retry mark, as it goes out now. When a frame cannot go, *stop_seq
 * is the seq of its first entry: everything from there on is still to be
 * sent (s_resend_from), and what went before need not go again on this
 * session. */
static int s_send_outbox(ketenbus_client_t *c, uint64_t from_seq, int only_retry, uint64_t *stop_seq)
{
    size_t n = kb_outbox_size(c->outbox);
    kb_packed_t envs[KB_RESEND_BATCH];
    size_t k = 0, body = 0;
    uint64_t first = 0; /* seq of envs[0] */
    struct {
        uint8_t id[16];
        size_t frame_len;
    } *oversized = NULL;
    size_t n_oversized = 0;
    int rc = KB_OK;
    for (size_t i = kb_outbox_index_from(c->outbox, from_seq); i < n && rc == KB_OK; i++) {
        if (!kb_outbox_take_retry(c->outbox, i) && only_retry)
            continue;
        const kb_outbox_entry_t *e = kb_outbox_at(c->outbox, i);
        size_t item = kb_submit_item_len(e->len);
        /* the request id of the next frame is at most this long */
        size_t alone = kb_submit_frame_len(c->next_request + 1, item);
        if (alone > s_max_frame(c)) {
            void *grown = realloc(oversized, (n_oversized + 1) * sizeof *oversized);
            if (!grown) {
                rc = kb_error_set(KB_ENOMEM, "client: out of memory");
                break;
            }
            oversized = grown;
            memcpy(oversized[n_oversized].id, e->id, 16);
            oversized[n_oversized++].frame_len = alone;
            continue;
        }
        if (k > 0 && kb_submit_frame_len(c->next_request + 1, body + item) > s_max_frame(c)) {
            rc = s_send_submit(c, envs, k);
            if (rc != KB_OK) {
                *stop_seq = first;
                break;
            }
            k = 0;
            body = 0;
        }
        if (k == 0)
            first = e->seq;
        envs[k++] = (kb_packed_t){e->bytes, e->len};
        body += item;
        if (k == KB_RESEND_BATCH) {
            rc = s_send_submit(c, envs, k);
            if (rc != KB_OK)
                *stop_seq = first;
            k = 0;
            body = 0;
        }
    }
    if (rc == KB_OK && k > 0) {
        rc = s_send_submit(c, envs, k);
        if (rc != KB_OK)
            *stop_seq = first;
    }
    /* after the loop: a rejection takes the entry out of the outbox */
    for (size_t i = 0; i < n_oversized; i++)
        s_reject_too_large(c, oversized[i].id, oversized[i].frame_len);
    free(oversized);
    return rc;
}

/* Send the outbox again from the entry of seq `seq` on, at the next poll,
 * keeping an earlier start that is due already. */
static void s_resend_from(ketenbus_client_t *c, uint64_t seq)
{
    if (!c->resend || seq < c->resend_seq)
        c->resend_seq = seq;
    c->resend = 1;
}

static int s_grow(void **p, size_t *cap, size_t need, size_t item)
{
    if (need <= *cap)
        return KB_OK;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * item);
    if (!q)
        return kb_error_set(KB_ENOMEM, "client: out of memory");
    *p = q;
    *cap = n;
    return KB_OK;
}

/* Send the acknowledgements collected so far: record what the handler took
 * as seen first (one synced write), then ACK and return the credit. Tags
 * are good only on the session that delivered them, so a session's end
 * clears them (s_unwelcome): the broker delivers again on the next one,
 * and the copy is acknowledged as seen. A frame ZeroMQ cannot take now
 * (EAGAIN: the queue to the broker is full) goes at a later poll: the tags
 * and the credit stay owed until then. Forgetting them would cost the
 * session that credit for good, and deliveries stop once it is gone. */
static int s_flush_acks(ketenbus_client_t *c)
{
    if (c->n_ack > 0) {
        size_t tagged = c->n_ack - c->n_ack_untagged;
        int rc = kb_outbox_mark_seen(c->outbox, c->ack_keys, c->n_ack);
        if (rc == KB_OK)
            rc = s_grow((void **)&c->dup_tags, &c->cap_dup, c->n_dup + tagged, sizeof *c->dup_tags);
        if (rc != KB_OK)
            return rc; /* kept: recorded again (the same keys) at the next flush */
        if (tagged > 0) /* none when all were taken on a session that ended */
            memcpy(c->dup_tags + c->n_dup, c->ack_tags + c->n_ack_untagged, tagged * sizeof *c->dup_tags);
        c->n_dup += tagged;
        c->n_ack = 0;
        c->n_ack_untagged = 0;
    }
    if (!c->welcomed)
        return KB_OK;
    /* at most KB_MAX_BATCH tags per ACK: the broker refuses a longer frame
     * as malformed, and a credit above it lets one poll take more */
    size_t sent = 0;
    int rc = KB_OK;
    while (sent < c->n_dup) {
        Ketenbus__Ack ack;
        ketenbus__ack__init(&ack);
        ack.n_tags = c->n_dup - sent < KB_MAX_BATCH ? c->n_dup - sent : KB_MAX_BATCH;
        ack.tags = c->dup_tags + sent;
        Ketenbus__Frame f;
        ketenbus__frame__init(&f);
        f.body_case = KETENBUS__FRAME__BODY_ACK;
        f.ack = &ack;
        rc = s_send(c, &f);
        if (rc != KB_OK)
            break;
        sent += ack.n_tags;
    }
    if (sent > 0) {
        memmove(c->dup_tags, c->dup_tags + sent, (c->n_dup - sent) * sizeof *c->dup_tags);
        c->n_dup -= sent;
        c->credit_owed += sent;
    }
    if (rc != KB_OK)
        return rc == KB_EPENDING ? KB_OK : rc;
    if (c->credit_owed > 0) {
        Ketenbus__Credit cr;
        ketenbus__credit__init(&cr);
        cr.credit = c->credit_owed < UINT32_MAX ? (uint32_t)c->credit_owed : UINT32_MAX;
        Ketenbus__Frame g;
        ketenbus__frame__init(&g);
        g.body_case = KETENBUS__FRAME__BODY_CREDIT;
        g.credit = &cr;
        rc = s_send(c, &g);
        if (rc != KB_OK)
            return rc == KB_EPENDING ? KB_OK : rc;
        c->credit_owed -= cr.credit;
        c->credit_granted += cr.credit;
        c->credit_since_hello += cr.credit;
    }
    return KB_OK;
}

static int s_queue_ack(ketenbus_client_t *c, uint64_t tag, const kb_seen_key_t *key)
{
    if (s_grow((void **)&c->ack_tags, &c->cap_ack, c->n_ack + 1, sizeof *c->ack_tags) != KB_OK)
        return KB_ENOMEM;
    /* ack_keys shares cap_ack: grow it to the same capacity */
    kb_seen_key_t *keys = realloc(c->ack_keys, c->cap_ack * sizeof *keys);
    if (!keys)
        return kb_error_set(KB_ENOMEM, "client: out of memory");
    c->ack_keys = keys;
    c->ack_tags[c->n_ack] = tag;
    c->ack_keys[c->n_ack] = *key;
    c->n_ack++;
    return KB_OK;
}

/* Queue the tag of a delivery whose message is recorded as seen. */
static int s_queue_seen_tag(ketenbus_client_t *c, uint64_t tag)
{
    if (s_grow((void **)&c->dup_tags, &c->cap_dup, c->n_dup + 1, sizeof *c->dup_tags) != KB_OK)
        return KB_ENOMEM;
    c->dup_tags[c->n_dup++] = tag;
    return KB_OK;
}

/* Remember a tag of this session to acknowledge with its message. */
static int s_hold(ketenbus_client_t *c, const kb_seen_key_t *key, uint64_t tag)
{
    if (s_grow((void **)&c->held, &c->cap_held, c->n_held + 1, sizeof *c->held) != KB_OK)
        return KB_ENOMEM;
    c->held[c->n_held++] = (kb_held_t){*key, tag};
    return KB_OK;
}

static int s_same_key(const kb_seen_key_t *a, const kb_seen_key_t *b);

/* Is a tag of this message (sender and id) held? */
static int s_held_has(const ketenbus_client_t *c, const kb_seen_key_t *key)
{
    for (size_t i = 0; i < c->n_held; i++)
        if (s_same_key(&c->held[i].key, key))
            return 1;
    return 0;
}

/* The message is recorded as seen: queue every held tag of it (each once:
 * a tag acknowledged twice would give the broker a credit too many). */
static int s_release_held(ketenbus_client_t *c, const kb_seen_key_t *key)
{
    size_t kept = 0;
    int rc = KB_OK;
    for (size_t i = 0; i < c->n_held; i++) {
        if (rc == KB_OK && s_same_key(&c->held[i].key, key) && (rc = s_queue_seen_tag(c, c->held[i].tag)) == KB_OK)
            continue; /* queued: no longer held */
        c->held[kept++] = c->held[i]; /* also one that could not be queued: it goes with the next ack */
    }
    c->n_held = kept;
    return rc;
}

static void s_fill_receipt(ketenbus_receipt_t *r, const Ketenbus__ReceiptEntry *e)
{
    memset(r, 0, sizeof *r);
    r->outcome = (ketenbus_outcome_t)e->outcome;
    r->code = (int)e->code;
    r->audit_index = e->audit_index;
    if (e->message_id.len == 16)
        kb_uuid_format(e->message_id.data, r->message_id);
    snprintf(r->reason, sizeof r->reason, "%s", e->reason ? e->reason : "");
    snprintf(r->rule_id, sizeof r->rule_id, "%s", e->rule_id ? e->rule_id : "");
    size_t o = 0;
    for (size_t i = 0; i < e->n_recipients; i++) {
        int n = snprintf(r->recipients + o, sizeof r->recipients - o, "%s%s", i ? "," : "", e->recipients[i]);
        if (n < 0 || (size_t)n >= sizeof r->recipients - o)
            break;
        o += (size_t)n;
    }
    if (e->n_refused > 0 && e->outcome == KETENBUS__OUTCOME__OUTCOME_ACCEPTED && r->reason[0] == '\0') {
        size_t ro = (size_t)snprintf(r->reason, sizeof r->reason, "not sent to:");
        for (size_t i = 0; i < e->n_refused && ro < sizeof r->reason; i++)
            ro += (size_t)snprintf(r->reason + ro, sizeof r->reason - ro, " %s", e->refused[i]);
    }
}

/* A refusal that means "not now" rather than "not this message": the broker
 * could not look up or store it (a store read error) and says to retry. */
/* A refusal for now (REJECT_INTERNAL, "retry later"), or an outcome this
 * SDK does not know (UNSPECIFIED, or one a later protocol adds): neither
 * is a decision, so the outbox keeps the entry. */
static int s_refused_for_now(const Ketenbus__ReceiptEntry *e)
{
    if (e->outcome != KETENBUS__OUTCOME__OUTCOME_ACCEPTED && e->outcome != KETENBUS__OUTCOME__OUTCOME_DUPLICATE &&
        e->outcome != KETENBUS__OUTCOME__OUTCOME_REJECTED)
        return 1;
    return e->outcome == KETENBUS__OUTCOME__OUTCOME_REJECTED && e->code == KETENBUS__REJECT_CODE__REJECT_INTERNAL;
}

/* A backoff wait doubled, up to max. */
static int64_t s_double(int64_t ms, int64_t max)
{
    return ms * 2 > max ? max : ms * 2;
}

/* Keep an entry the broker refused for now, marked to be sent again when
 * the next retry round is due. Rounds are spaced KB_RETRY_MIN_MS apart at
 * first and twice as far each time a round is scheduled, up to
 * KB_RETRY_MAX_MS, so a broker whose store keeps failing is not flooded;
 * the spacing starts again at KB_RETRY_MIN_MS once the broker accepts. */
static void s_retry_later(ketenbus_client_t *c, const Ketenbus__ReceiptEntry *e)
{
    if (kb_outbox_mark_retry(c->outbox, e->message_id.data) != KB_OK)
        return; /* answered before (a resend crossed this receipt) */
    if (c->retry_at_ms == 0) {
        c->retry_at_ms = kb_mono_ms() + c->retry_ms;
        c->retry_ms = (unsigned)s_double(c->retry_ms, KB_RETRY_MAX_MS);
    }
    char id[37];
    kb_uuid_format(e->message_id.data, id);
    s_log(c, 1, "event=receipt_retry message=%s outcome=%d code=%d reason=\"%s\" retry_in_ms=%lld", id,
          (int)e->outcome, (int)e->code, e->reason ? e->reason : "", (long long)(c->retry_at_ms - kb_mono_ms()));
}

/* Give w the receipt r of the message id if w waits for it: to the first
 * of its messages with that id still without one (an adapter may submit
 * one id twice; the broker answers them in order). */
static void s_await_take(kb_await_t *w, const ketenbus_receipt_t *r, const uint8_t id[16])
{
    for (size_t i = 0; i < w->n; i++) {
        if (w->decided[i] || memcmp(w->msgs[i]->env->message_id.data, id, 16) != 0)
            continue;
        w->decided[i] = 1;
        w->n_decided++;
        w->n_rejected += r->outcome == KETENBUS_OUTCOME_REJECTED;
        if (w->receipts)
            w->receipts[i] = *r;
        return;
    }
}

static void s_on_receipt(ketenbus_client_t *c, const Ketenbus__Receipt *rc)
{
    for (size_t i = 0; i < rc->n_entries; i++) {
        const Ketenbus__ReceiptEntry *e = rc->entries[i];
        if (e->message_id.len != 16)
            continue;
        if (s_refused_for_now(e)) {
            s_retry_later(c, e); /* no receipt yet: the outbox keeps it */
            continue;
        }
        if (kb_outbox_remove(c->outbox, e->message_id.data) != KB_OK)
            continue; /* a receipt for something already answered */
        if (e->outcome == KETENBUS__OUTCOME__OUTCOME_ACCEPTED || e->outcome == KETENBUS__OUTCOME__OUTCOME_DUPLICATE)
            c->retry_ms = KB_RETRY_MIN_MS;
        s_fill_receipt(&c->last_receipt, e);
        c->has_last_receipt = 1;
        for (kb_await_t *w = c->await; w; w = w->outer)
            s_await_take(w, &c->last_receipt, e->message_id.data);
        s_log(c, e->outcome == KETENBUS__OUTCOME__OUTCOME_REJECTED ? 1 : 3,
              "event=receipt message=%s outcome=%d audit=%llu reason=\"%s\"", c->last_receipt.message_id,
              (int)e->outcome, (unsigned long long)e->audit_index, c->last_receipt.reason);
    }
}

static int s_same_key(const kb_seen_key_t *a, const kb_seen_key_t *b)
{
    return memcmp(a->id, b->id, KB_ID_LEN) == 0 && strcmp(a->sender, b->sender) == 0;
}

/* Is this message (sender and id) in the inbox already? */
static int s_inbox_has(const ketenbus_client_t *c, const kb_seen_key_t *key)
{
    for (size_t i = 0; i < c->n_inbox; i++) {
        kb_seen_key_t k;
        if (kb_outbox_seen_key(&k, c->inbox[i]->env) == KB_OK && s_same_key(&k, key))
            return 1;
    }
    return 0;
}

/* Did the handler take this message, and is it not recorded as seen yet
 * (in this poll, or on a session that ended before the record could be
 * written)? */
static int s_ack_pending(const ketenbus_client_t *c, const kb_seen_key_t *key)
{
    for (size_t i = 0; i < c->n_ack; i++)
        if (s_same_key(&c->ack_keys[i], key))
            return 1;
    return 0;
}

/* A delivery was kept by the handler (kept), or refused here and left
 * queued: the broker sends it again only in a new session, so start one
 * after keep_ms (s_housekeeping), unless one is due already. The wait
 * doubles with each such restart, up to a minute while the handler keeps
 * deliveries, up to ten while only refused ones wait: those pass only once
 * a key is installed, and each restart delivers, and audits, all of them
 * again; a change in the key directory starts the session at once. The
 * wait is back to the least once no restart was needed for
 * KB_KEEP_CALM_MS: judged over time, not per delivery, since the broker
 * sends older deliveries that pass before the one that does not. */
static void s_keep_later(ketenbus_client_t *c, int kept)
{
    c->keep_kept |= kept;
    if (c->keep_at_ms != 0)
        return;
    int64_t now = kb_mono_ms();
    if (c->keep_restart_ms == 0 || now - c->keep_restart_ms > KB_KEEP_CALM_MS)
        c->keep_ms = KB_KEEP_FIRST_MS;
    c->keep_at_ms = now + c->keep_ms;
    c->keys_stamp = kb_sender_keys_stamp(c->senders);
    c->keys_look_ms = now + KB_KEYS_LOOK_MS;
}

/* Is a delivery that passed kb_sender_keys_check dated where the seen
 * records can still tell whether it was acknowledged before? Older than
 * kb_outbox_oldest_us, its record may be gone, so a copy replayed (by the
 * broker, or whoever holds its key) would be handed out as new; dated
 * more than KB_SEEN_AHEAD_US ahead of this clock, its record would go
 * before the delivery looks old enough to be refused. Neither proves a
 * forgery (clocks go wrong): KB_ETIMEDOUT, and it stays queued. */
static int s_check_created(ketenbus_client_t *c, const Ketenbus__Envelope *e)
{
    int64_t now = kb_now_us();
    char created[32];
    kb_time_format(e->created_us, created);
    if (e->created_us > now + KB_SEEN_AHEAD_US)
        return kb_error_set(KB_ETIMEDOUT, "created %s, %lld s ahead of this system's clock (at most %lld s): a clock "
                            "is wrong", created, (long long)((e->created_us - now) / 1000000),
                            (long long)(KB_SEEN_AHEAD_US / 1000000));
    int64_t oldest = kb_outbox_oldest_us(c->outbox, now);
    if (e->created_us < oldest) {
        char limit[32];
        kb_time_format(oldest, limit);
        return kb_error_set(KB_ETIMEDOUT, "created %s, before %s: older than twice the broker's message_ttl and a "
                            "day, or than records of acknowledged messages kept here, so it may be a replay (or a "
                            "clock is wrong)", created, limit);
    }
    return KB_OK;
}

static int64_t s_restart_later(ketenbus_client_t *c, const char *why);

/* The broker sent more deliveries than the credit granted on this session
 * (HELLO and CREDIT frames since). The lists that hold a session's
 * deliveries (inbox, held tags, tags to acknowledge) are bounded by that
 * credit only while the broker keeps to it: one that sends, say, copies of
 * a message the adapter holds under ever new tags would make them grow
 * without bound. The SDK does not trust it to: the session ends, which
 * empties them, and the rest of the frame is not looked at. */
static void s_over_credit(ketenbus_client_t *c, size_t dropped)
{
    unsigned long long granted = (unsigned long long)c->credit_granted;
    unsigned long long delivered = (unsigned long long)c->delivered + 1;
    int64_t wait = s_restart_later(c, "the broker sent deliveries beyond the credit granted");
    s_log(c, 0,
          "event=protocol_violation reason=\"deliveries beyond the credit granted\" credit=%u granted=%llu "
          "delivered=%llu dropped=%zu hello_in_ms=%lld",
          c->o.credit, granted, delivered, dropped, (long long)wait);
}

static int s_on_deliver(ketenbus_client_t *c, Ketenbus__Deliver *d)
{
    for (size_t i = 0; i < d->n_deliveries; i++) {
        if (c->delivered >= c->credit_granted) {
            s_over_credit(c, d->n_deliveries - i);
            return KB_OK;
        }
        c->delivered++;
        Ketenbus__Delivery *dl = d->deliveries[i];
        Ketenbus__Envelope *e = dl->envelope;
        kb_seen_key_t key;
        if (!e || kb_outbox_seen_key(&key, e) != KB_OK) {
            /* left unacknowledged: it stays in the broker's queue and
             * comes again in a later session, as a refused one does */
            s_log(c, 1, "event=delivery_dropped tag=%llu reason=\"%s\"", (unsigned long long)dl->tag,
                  e ? kb_last_error() : "no envelope");
            c->credit_owed++;
            s_keep_later(c, 0);
            continue;
        }
        /* a redelivery (the broker may send an entry again, e.g. when a
         * repeated HELLO opens a new session) is acknowledged, not handled;
         * the same id from another sender is another message */
        int taken = kb_outbox_seen(c->outbox, &key) || s_ack_pending(c, &key);
        if (taken) {
            if (s_queue_seen_tag(c, dl->tag) != KB_OK)
                return KB_ENOMEM;
            continue;
        }
        /* a copy of one waiting in the inbox or in the adapter's hands:
         * not handed out twice, its tag goes with the message's ACK */
        if (s_inbox_has(c, &key) || s_held_has(c, &key)) {
            if (s_hold(c, &key, dl->tag) != KB_OK)
                return KB_ENOMEM;
            continue;
        }
        /* handed out only if it is what its sender wrote, for this
         * agency, and dated where the seen records still know it */
        int vrc = kb_sender_keys_check(c->senders, e, c->broker_id, c->o.agency);
        if (vrc == KB_OK)
            vrc = s_check_created(c, e);
        if (vrc != KB_OK) {
            char id[37] = "?", why[KB_ERROR_MAX], kept[PATH_MAX] = "";
            if (e->message_id.len == 16)
                kb_uuid_format(e->message_id.data, id);
            snprintf(why, sizeof why, "%s", kb_last_error());
            /* one that cannot be genuine whatever keys are installed is
             * kept here, then acknowledged, so that it does not come again
             * in every session; any other stays queued at the
             * broker and comes again in a later session: a key not yet
             * installed here (a new agency's, a sender's new one) may be
             * added meanwhile, or a clock put right, and acknowledging it
             * would lose a genuine message; one too old expires there */
            int never = vrc == KB_EREJECTED;
            const char *action = never ? "quarantined file=" : "left_queued";
            uint64_t size = never ? kb_quarantine_entry_bytes(e, why) : 0;
            if (never && (c->q_entries >= KB_QUARANTINE_MAX_ENTRIES || c->q_bytes + size > KB_QUARANTINE_MAX_BYTES)) {
                /* bounded: whoever holds the broker's key could otherwise
                 * fill the disk that also holds the outbox. It cannot be
                 * genuine, so it is acknowledged all the same. */
                s_log(c, 0, "event=quarantine_full tag=%llu entries=%zu bytes=%llu", (unsigned long long)dl->tag,
                      c->q_entries, (unsigned long long)c->q_bytes);
                action = "dropped_quarantine_full";
            } else if (never && kb_quarantine_put(c->o.state_dir, e, why, kept, sizeof kept) != KB_OK) {
                s_log(c, 0, "event=quarantine_failed tag=%llu detail=\"%s\"", (unsigned long long)dl->tag,
                      kb_last_error());
                never = 0;
                action = "left_queued";
            } else if (never) {
                c->q_entries++;
                c->q_bytes += size;
            }
            s_log(c, 0, "event=delivery_refused tag=%llu sender=%s id=%s action=%s%s reason=\"%s\"",
                  (unsigned long long)dl->tag, kb_quarantine_safe_id(e->sender), id, action, kept, why);
            if (never) {
                if (s_queue_seen_tag(c, dl->tag) != KB_OK)
                    return KB_ENOMEM;
            } else {
                /* its credit is granted again at once: refused ones that
                 * come first in the queue in every session must not stop
                 * the deliveries behind them (the broker bounds what a
                 * session has unacknowledged: KB_OUTSTANDING_MAX in
                 * broker/broker.h) */
                c->credit_owed++;
                s_keep_later(c, 0);
            }
            continue;
        }
        dl->envelope = NULL; /* ownership moves to the message */
        ketenbus_msg_t *m = msg_wrap(e);
        if (!m)
            return KB_ENOMEM;
        m->tag = dl->tag;
        m->received = 1;
        if (c->handler) {
            int keep = c->handler(c, m, c->handler_arg);
            int rc = keep == 0 ? s_queue_ack(c, m->tag, &key) : KB_OK;
            if (keep != 0)
                s_keep_later(c, 1);
            ketenbus_msg_destroy(&m);
            if (rc != KB_OK)
                return rc;
        } else {
            if (s_grow((void **)&c->inbox, &c->cap_inbox, c->n_inbox + 1, sizeof *c->inbox) != KB_OK) {
                ketenbus_msg_destroy(&m);
                return KB_ENOMEM;
            }
            c->inbox[c->n_inbox++] = m;
        }
    }
    return KB_OK;
}

static void s_unwelcome(ketenbus_client_t *c, const char *why)
{
    if (c->welcomed)
        s_log(c, 1, "event=session_lost reason=\"%s\"", why);
    c->welcomed = 0;
    c->last_hello_ms = 0;
    c->hello_floor = c->next_request + 1; /* an answer to an earlier HELLO opens nothing */
    /* deliveries not yet acknowledged come again in the next session; the
     * ones the handler took are recorded as seen first, so their
     * redelivery is acknowledged and dropped, not handled twice. If that
     * write fails, their keys stay without their tags (which were this
     * session's): the next flush records them (s_flush_acks), and until
     * then a copy the broker delivers again counts as taken
     * (s_ack_pending), its tag acknowledged only once they are recorded */
    if (c->n_ack > 0 && kb_outbox_mark_seen(c->outbox, c->ack_keys, c->n_ack) != KB_OK) {
        s_log(c, 0, "event=seen_not_recorded count=%zu detail=\"%s\"", c->n_ack, kb_last_error());
        c->n_ack_untagged = c->n_ack;
    } else {
        c->n_ack = 0;
        c->n_ack_untagged = 0;
    }
    for (size_t i = 0; i < c->n_inbox; i++)
        ketenbus_msg_destroy(&c->inbox[i]);
    c->n_inbox = 0;
    c->n_held = 0; /* their messages come again in the next session */
    /* tags and credit are the ended session's: the next HELLO grants the
     * whole credit again, and what was in flight comes again */
    c->n_dup = 0;
    c->credit_owed = 0;
    c->credit_granted = 0;
    c->delivered = 0;
}

/* End the session for something the broker did wrong (s_frame_dropped,
 * s_over_credit) and say HELLO again: at once the first time, and after a
 * wait, twice as long each time, when it happens again within
 * KB_DROPPED_CALM_MS, so that a broker that keeps doing it is not asked
 * again in a fast loop. Returns that wait. */
static int64_t s_restart_later(ketenbus_client_t *c, const char *why)
{
    int64_t now = kb_mono_ms();
    int64_t wait = 0;
    if (c->dropped_restart_ms != 0 && now - c->dropped_restart_ms <= KB_DROPPED_CALM_MS) {
        wait = c->dropped_ms;
        c->dropped_ms = s_double(c->dropped_ms, KB_DROPPED_MAX_MS);
    } else {
        c->dropped_ms = KB_DROPPED_FIRST_MS;
    }
    c->dropped_restart_ms = now;
    s_unwelcome(c, why);
    c->hello_at_ms = now + wait;
    return wait;
}

/* The broker dropped a frame of this session without reading it (too
 * large, or not one it could decode), answering with request id 0: if it
 * was a SUBMIT, its messages get no receipt while the session lasts. The
 * likely cause is a reload that lowered max_message_bytes below what the
 * last WELCOME told, so the session ends (s_restart_later): the next
 * WELCOME tells the limit in force, and the outbox goes again in frames
 * within it (a message too large alone is then answered REJECT_TOO_LARGE
 * here). Errors that come while no session is open answer frames of the
 * one that ended, which go again anyway. */
static void s_frame_dropped(ketenbus_client_t *c, const char *why)
{
    if (!c->welcomed)
        return;
    int64_t wait = s_restart_later(c, why);
    s_log(c, 1, "event=frame_dropped_by_broker hello_in_ms=%lld", (long long)wait);
}

static int s_handle(ketenbus_client_t *c, const uint8_t *buf, size_t len)
{
    Ketenbus__Frame *f = NULL;
    int rc = kb_frame_decode(buf, len, KB_FRAME_MAX, &f);
    if (rc != KB_OK) {
        s_log(c, 0, "event=bad_frame detail=\"%s\"", kb_last_error());
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
        return KB_OK; /* never crash on what the peer sends */
    }
    c->last_rx_ms = kb_mono_ms();
    rc = KB_OK;
    switch (f->body_case) {
    case KETENBUS__FRAME__BODY_WELCOME:
        if (f->request_id < c->hello_floor) {
            s_log(c, 2, "event=welcome_dropped request=%llu reason=\"answers a HELLO of a session that ended\"",
                  (unsigned long long)f->request_id);
            break;
        }
        /* a later HELLO answered on a welcomed connection started the
         * broker's session again: what it had in flight comes again under
         * new tags, so the copies waiting here are of the old session */
        if (c->welcomed) {
            uint64_t floor = c->hello_floor; /* the answers to later HELLOs restart it too */
            s_unwelcome(c, "the broker answered a later HELLO");
            c->hello_floor = floor;
        }
        c->reconnect_ms = KB_RECONNECT_FIRST_MS;
        if (c->revoked_ms > 0)
            s_log(c, 2, "event=back_in_chain");
        c->revoked_ms = 0;
        c->keep_at_ms = 0; /* what the handler kept comes again in this session */
        c->keep_kept = 0;
        snprintf(c->broker_id, sizeof c->broker_id, "%s", f->welcome->broker_id);
        c->welcomed = 1;
        /* the session's credit: its HELLO's, and that of the CREDIT frames
         * sent after that HELLO, which the broker adds to it. Those went
         * on a session this WELCOME replaces (HELLOs go out only while no
         * session is open, so a later HELLO may be answered after an
         * earlier one opened a session), which the broker gave its HELLO's
         * credit only: no more than that is carried over, so that a chain
         * of such WELCOMEs cannot raise the bound (at worst a chain whose
         * every session had deliveries ends in one restart more) */
        c->delivered = 0;
        c->credit_granted = (uint64_t)c->o.credit +
                            (c->credit_since_hello < c->o.credit ? c->credit_since_hello : c->o.credit);
        c->resend = 1;
        c->resend_seq = 0; /* all of it: the broker may have lost what went before */
        c->last_ping_ms = c->last_rx_ms;
        c->max_frame = f->welcome->max_message_bytes; /* 0 from an older broker: its default */
        /* each session's own: the shorter of this client's interval and
         * the one this WELCOME asks for, never one an earlier WELCOME asked
         * for (the broker's may have grown since, e.g. after a reload) */
        c->ping_ms = f->welcome->ping_interval_ms > 0 && f->welcome->ping_interval_ms < c->o.ping_ms
                         ? f->welcome->ping_interval_ms
                         : c->o.ping_ms;
        s_log(c, 2, "event=welcome broker=%s agency=%s policy=%.16s", f->welcome->broker_id, f->welcome->agency,
              f->welcome->policy_version);
        /* the broker knows this client by its CURVE key; deliveries are
         * checked against the agency id it was given here, and those
         * addressed to another are refused for good */
        if (f->welcome->agency[0] && strcmp(f->welcome->agency, c->o.agency) != 0)
            s_log(c, 0, "event=agency_mismatch agency=%s broker_says=%s", c->o.agency,
                  kb_quarantine_safe_id(f->welcome->agency));
        /* a broker that does not tell its TTL (older ones) may keep a
         * message for any time: then no seen record goes */
        c->ttl_told = 0;
        if (f->welcome->message_ttl_us > 0) {
            if (kb_outbox_set_ttl(c->outbox, f->welcome->message_ttl_us, kb_now_us()) == KB_OK)
                c->ttl_told = 1;
            else
                s_log(c, 1, "event=state_write_failed detail=\"%s\"", kb_last_error());
        }
        break;
    case KETENBUS__FRAME__BODY_RECEIPT:
        s_on_receipt(c, f->receipt);
        break;
    case KETENBUS__FRAME__BODY_DELIVER:
        if (c->welcomed)
            rc = s_on_deliver(c, f->deliver);
        break;
    case KETENBUS__FRAME__BODY_PONG:
        break;
    case KETENBUS__FRAME__BODY_ERROR:
        if (f->error->code == KETENBUS__ERROR_CODE__ERROR_CODE_NOT_IN_CHAIN) {
            /* this key (or agency) was taken out of the chain: said once,
             * then asked again less and less often, so that it reconnects
             * by itself once put back */
            if (c->revoked_ms == 0)
                s_log(c, 0, "event=not_in_chain message=\"%s\"", f->error->message);
            int answers_hello = !c->welcomed; /* else a frame of the session it ends */
            s_unwelcome(c, f->error->message);
            c->last_hello_ms = kb_mono_ms(); /* the next HELLO waits */
            if (c->revoked_ms == 0)
                c->revoked_ms = KB_REVOKED_FIRST_MS;
            else if (answers_hello)
                c->revoked_ms = s_double(c->revoked_ms, KB_REVOKED_MAX_MS);
            break;
        }
        s_log(c, 1, "event=broker_error code=%d message=\"%s\"", f->error->code, f->error->message);
        if (f->error->code == KETENBUS__ERROR_CODE__ERROR_CODE_NO_SESSION ||
            f->error->code == KETENBUS__ERROR_CODE__ERROR_CODE_INTERNAL)
            s_unwelcome(c, f->error->message);
        else if (f->error->code == KETENBUS__ERROR_CODE__ERROR_CODE_TOO_LARGE ||
                 f->error->code == KETENBUS__ERROR_CODE__ERROR_CODE_MALFORMED ||
                 f->error->code == KETENBUS__ERROR_CODE__ERROR_CODE_UNSUPPORTED_VERSION)
            s_frame_dropped(c, f->error->message);
        break;
    default:
        s_log(c, 1, "event=unexpected_frame case=%d", (int)f->body_case);
        break;
    }
    ketenbus__frame__free_unpacked(f, NULL);
    return rc;
}

/* One step of pruning the seen records (outbox.c), a pass after another
 * while a broker told its TTL. A failure is logged and tried again with the
 * next pass: it costs disk space, not messages. */
static void s_prune_step(ketenbus_client_t *c, int64_t now_ms)
{
    size_t removed = 0;
    int done = 1;
    int rc = kb_outbox_prune_seen(c->outbox, kb_now_us(), KB_PRUNE_STEP, &removed, &done);
    c->pruned += removed;
    if (rc != KB_OK) {
        s_log(c, 1, "event=prune_failed detail=\"%s\"", kb_last_error());
        done = 1;
    } else if (done) {
        s_log(c, c->pruned > 0 ? 2 : 3, "event=seen_pruned removed=%zu", c->pruned);
    }
    if (done)
        c->pruned = 0;
    c->prune_at_ms = now_ms + (done ? KB_PRUNE_PASS_MS : KB_PRUNE_STEP_MS);
}

/* Timers: hello, ping, silence, resend, acks, pruning. */
static int s_read_events(ketenbus_client_t *c);

static int s_housekeeping(ketenbus_client_t *c)
{
    s_read_events(c); /* a HELLO due now goes after what the connection did */
    int64_t now = kb_mono_ms();
    if (c->reconnect_at_ms != 0 && now >= c->reconnect_at_ms) {
        /* libzmq does not connect again after a protocol error (e.g. a
         * frame over ZMQ_MAXMSGSIZE): without this the client would stay
         * without a connection for good */
        c->reconnect_at_ms = 0;
        s_log(c, 1, "event=reconnect endpoint=%s reason=\"libzmq gave the connection up\"", c->o.endpoint);
        c->reconnect_ms = s_double(c->reconnect_ms, KB_RECONNECT_MAX_MS);
        (void)zmq_disconnect(c->dealer, c->o.endpoint); /* ENOENT once libzmq forgot it: nothing to undo */
        if (zmq_connect(c->dealer, c->o.endpoint) != 0) {
            c->reconnect_at_ms = now + c->reconnect_ms; /* tried again later */
            return kb_error_set(KB_ENET, "client: connect %s: %s", c->o.endpoint, zmq_strerror(zmq_errno()));
        }
    }
    if (c->ttl_told && now >= c->prune_at_ms)
        s_prune_step(c, now);
    if (c->welcomed && now - c->last_rx_ms > (int64_t)c->ping_ms * KB_SILENCE_PINGS + 1000)
        s_unwelcome(c, "no answer from the broker");
    if (c->keep_at_ms != 0 && !c->keep_kept && now >= c->keys_look_ms) {
        c->keys_look_ms = now + KB_KEYS_LOOK_MS;
        if (kb_sender_keys_stamp(c->senders) != c->keys_stamp)
            c->keep_at_ms = now; /* a key was installed: try the refused ones now */
    }
    if (c->welcomed && c->keep_at_ms != 0 && now >= c->keep_at_ms) {
        /* a new session on the same connection: the broker delivers again
         * what is not acknowledged, the kept deliveries with it */
        s_log(c, 2, "event=redeliver_kept wait_ms=%lld", (long long)c->keep_ms);
        int64_t max = c->keep_kept ? KB_KEEP_MAX_MS : KB_REFUSED_MAX_MS;
        c->keep_ms = s_double(c->keep_ms, max);
        c->keep_restart_ms = now;
        c->keep_kept = 0;
        c->welcomed = 0; /* ended on purpose: not logged as a lost session */
        s_unwelcome(c, "deliveries the handler kept, or refused here, are asked for again");
    }
    if (!c->welcomed) {
        int64_t every = c->revoked_ms > 0 ? c->revoked_ms : KB_HELLO_RETRY_MS;
        if (now >= c->hello_at_ms && now - c->last_hello_ms >= every) {
            int rc = s_send_hello(c);
            if (rc != KB_OK && rc != KB_EPENDING)
                return rc;
        }
        return KB_OK;
    }
    if (c->resend) {
        /* on from where the last try stopped: what went out is in the
         * connection's queue already, in order */
        uint64_t stop = 0;
        int rc = s_send_outbox(c, c->resend_seq, 0, &stop);
        if (rc == KB_OK)
            c->resend = 0;
        else
            c->resend_seq = stop;
        if (rc != KB_OK && rc != KB_EPENDING)
            return rc;
    }
    if (c->retry_at_ms != 0 && now >= c->retry_at_ms) {
        c->retry_at_ms = 0;
        uint64_t stop = 0;
        int rc = s_send_outbox(c, 0, 1, &stop);
        if (rc != KB_OK)
            s_resend_from(c, stop); /* marks of entries that did not go out are gone: all from there */
        if (rc != KB_OK && rc != KB_EPENDING)
            return rc;
    }
    int rc = s_flush_acks(c);
    if (rc != KB_OK)
        return rc;
    if (now - c->last_ping_ms >= (int64_t)c->ping_ms) {
        Ketenbus__Ping p;
        ketenbus__ping__init(&p);
        p.time_us = kb_now_us();
        Ketenbus__Frame f;
        ketenbus__frame__init(&f);
        f.body_case = KETENBUS__FRAME__BODY_PING;
        f.ping = &p;
        c->last_ping_ms = now;
        rc = s_send(c, &f);
        if (rc != KB_OK && rc != KB_EPENDING)
            return rc;
    }
    return KB_OK;
}

/* Read the dealer's connection events: a connection that went or a new
 * one ends the session (see the top of this file). Returns how many were
 * read. */
static int s_read_events(ketenbus_client_t *c)
{
    int n = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return n;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&m) >= sizeof event)
            memcpy(&event, zmq_msg_data(&m), sizeof event);
        /* the second part is the endpoint */
        while (zmq_msg_more(&m)) {
            zmq_msg_close(&m);
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, c->monitor, 0) < 0)
                break;
        }
        zmq_msg_close(&m);
        if (event == ZMQ_EVENT_CONNECT_RETRIED) {
            c->reconnect_at_ms = 0; /* libzmq connects again by itself */
            continue;               /* and nothing changed for the session */
        }
        n++;
        if (event == ZMQ_EVENT_DISCONNECTED) {
            s_unwelcome(c, "connection lost");
            /* libzmq says CONNECT_RETRIED at once when it connects again;
             * after a protocol error it does not (s_housekeeping) */
            c->reconnect_at_ms = kb_mono_ms() + c->reconnect_ms;
        } else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            c->reconnect_at_ms = 0;
            s_unwelcome(c, "new connection");
            s_log(c, 2, "event=connected endpoint=%s", c->o.endpoint);
        }
    }
}

/* Read every waiting frame; returns how many were handled (or an error). */
static int s_read_all(ketenbus_client_t *c)
{
    int handled = s_read_events(c); /* before the frames, which are checked against what they say */
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->dealer, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            if (zmq_errno() == EAGAIN || zmq_errno() == EINTR)
                return handled;
            return kb_error_set(KB_ENET, "recv: %s", zmq_strerror(zmq_errno()));
        }
        int rc = s_handle(c, zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
        if (rc != KB_OK)
            return rc;
        handled++;
    }
}

/* ------------------------------------------------------------ public API */

ketenbus_client_t *ketenbus_client_new(const ketenbus_client_opts_t *opts)
{
    if (!opts || !opts->agency || !opts->key_dir || !opts->endpoint || !opts->broker_cert || !opts->state_dir) {
        kb_error_set(KB_EINVAL, "client: agency, key directory, broker and state directory are required");
        return NULL;
    }
    ketenbus_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        kb_error_set(KB_ENOMEM, "client: out of memory");
        return NULL;
    }
    char path[PATH_MAX], pub[KB_Z85_KEY_LEN + 1], sec[KB_Z85_KEY_LEN + 1], server[KB_Z85_KEY_LEN + 1];
    c->o = *opts;
    c->o.agency = strdup(opts->agency);
    c->o.key_dir = strdup(opts->key_dir);
    c->o.endpoint = strdup(opts->endpoint);
    c->o.broker_cert = strdup(opts->broker_cert);
    c->o.state_dir = strdup(opts->state_dir);
    c->o.signing_keys = NULL;
    c->senders = kb_sender_keys_new(opts->signing_keys ? opts->signing_keys : opts->key_dir);
    c->ping_ms = opts->ping_ms;
    c->keep_ms = KB_KEEP_FIRST_MS;
    c->retry_ms = KB_RETRY_MIN_MS;
    c->reconnect_ms = KB_RECONNECT_FIRST_MS;
    if (!c->o.agency || !c->o.key_dir || !c->o.endpoint || !c->o.broker_cert || !c->o.state_dir || !c->senders) {
        kb_error_set(KB_ENOMEM, "client: out of memory");
        goto fail;
    }
    if (kb_fmt(path, sizeof path, "%s/%s.sign.pem", opts->key_dir, opts->agency) != KB_OK ||
        !(c->sign_key = kb_keys_load_sign_private(path)))
        goto fail;
    if (kb_keys_load_curve_public(opts->broker_cert, server) != KB_OK)
        goto fail;
    if (kb_fmt(path, sizeof path, "%s/%s.curve_secret", opts->key_dir, opts->agency) != KB_OK ||
        kb_keys_load_curve_secret(path, pub, sec) != KB_OK)
        goto fail;
    c->outbox = kb_outbox_open(opts->state_dir);
    if (c->outbox && kb_quarantine_usage(opts->state_dir, &c->q_entries, &c->q_bytes) != KB_OK) {
        /* not a reason to stay away: writing there fails too, and such a
         * delivery is then left queued (logged) */
        s_log(c, 0, "event=quarantine_unreadable detail=\"%s\"", kb_last_error());
        c->q_entries = 0;
        c->q_bytes = 0;
    }
    if (!c->outbox) {
        OPENSSL_cleanse(sec, sizeof sec);
        goto fail;
    }
    c->zctx = zmq_ctx_new();
    c->dealer = c->zctx ? zmq_socket(c->zctx, ZMQ_DEALER) : NULL;
    if (!c->dealer) {
        OPENSSL_cleanse(sec, sizeof sec);
        kb_error_set(KB_ENET, "client: socket: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (s_set_routing_id(c->dealer) != KB_OK) {
        OPENSSL_cleanse(sec, sizeof sec);
        goto fail;
    }
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://ketenbus-monitor-%p", (void *)c);
    c->monitor = zmq_socket(c->zctx, ZMQ_PAIR);
    int unbounded = 0; /* libzmq blocks its I/O thread on a full monitor pipe: while the broker is
                        * away, unread CONNECT_RETRIED events would fill one of 2,000 in an hour */
    if (!c->monitor || zmq_setsockopt(c->monitor, ZMQ_RCVHWM, &unbounded, sizeof unbounded) != 0 ||
        zmq_socket_monitor(c->dealer, mon,
                           ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_CONNECT_RETRIED) != 0 ||
        zmq_connect(c->monitor, mon) != 0) {
        OPENSSL_cleanse(sec, sizeof sec);
        kb_error_set(KB_ENET, "client: socket monitor: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    int zero = 0, one = 1, ivl = 100, ivl_max = 2000, hb = 2000, hbt = 6000;
    /* a frame of the broker is bounded before it is buffered, not only when
     * it is decoded: libzmq drops the connection on a frame over maxsize
     * (the client connects again). The frames not read yet are counted, not
     * weighed: the broker's are small (a DELIVER frame holds 256 KiB and one
     * envelope), and a queue of a few frames would make libzmq stop reading
     * the connection while the adapter is busy, so that the broker ends the
     * session (its send limit) and libzmq's heartbeat the connection */
    int64_t maxsize = (int64_t)KB_FRAME_MAX + KB_FRAME_SLACK;
    int rcvhwm = KB_RCVHWM;
    int rc = zmq_setsockopt(c->dealer, ZMQ_CURVE_SERVERKEY, server, KB_Z85_KEY_LEN);
    rc |= zmq_setsockopt(c->dealer, ZMQ_CURVE_PUBLICKEY, pub, KB_Z85_KEY_LEN);
    rc |= zmq_setsockopt(c->dealer, ZMQ_CURVE_SECRETKEY, sec, KB_Z85_KEY_LEN);
    OPENSSL_cleanse(sec, sizeof sec);
    rc |= zmq_setsockopt(c->dealer, ZMQ_LINGER, &zero, sizeof zero);
    rc |= zmq_setsockopt(c->dealer, ZMQ_IMMEDIATE, &one, sizeof one);
    rc |= zmq_setsockopt(c->dealer, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
    rc |= zmq_setsockopt(c->dealer, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    rc |= zmq_setsockopt(c->dealer, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    rc |= zmq_setsockopt(c->dealer, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    rc |= zmq_setsockopt(c->dealer, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    rc |= zmq_setsockopt(c->dealer, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
    if (rc != 0) {
        kb_error_set(KB_ENET, "client: socket options: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (zmq_connect(c->dealer, opts->endpoint) != 0) {
        kb_error_set(KB_ENET, "client: connect %s: %s", opts->endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    s_log(c, 2, "event=client_started agency=%s endpoint=%s outbox=%zu", c->o.agency, c->o.endpoint,
          kb_outbox_size(c->outbox));
    return c;
fail:
    ketenbus_client_destroy(&c);
    return NULL;
}

void ketenbus_client_destroy(ketenbus_client_t **p)
{
    if (!p || !*p)
        return;
    ketenbus_client_t *c = *p;
    /* also without a session: deliveries the handler took are recorded
     * as seen even if their tags can no longer go */
    if (c->dealer && c->outbox && (c->welcomed || c->n_ack > 0))
        s_flush_acks(c);
    if (c->monitor) {
        int zero = 0;
        zmq_setsockopt(c->monitor, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(c->monitor);
    }
    if (c->dealer) {
        /* let ACKs and submissions already handed to ZeroMQ leave; with
         * ZMQ_IMMEDIATE nothing waits for a broker that is not connected */
        int linger = KB_CLOSE_LINGER_MS;
        zmq_setsockopt(c->dealer, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(c->dealer);
    }
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    kb_outbox_destroy(&c->outbox);
    EVP_PKEY_free(c->sign_key);
    kb_sender_keys_destroy(&c->senders);
    for (size_t i = 0; i < c->n_inbox; i++)
        ketenbus_msg_destroy(&c->inbox[i]);
    free(c->inbox);
    free(c->ack_tags);
    free(c->ack_keys);
    free(c->dup_tags);
    free(c->held);
    s_opts_free(&c->o);
    free(c);
    *p = NULL;
}

void ketenbus_client_set_handler(ketenbus_client_t *c, ketenbus_handler_fn *fn, void *arg)
{
    if (!c)
        return;
    c->handler = fn;
    c->handler_arg = arg;
}

int ketenbus_client_poll(ketenbus_client_t *c, int timeout_ms)
{
    if (!c)
        return kb_error_set(KB_EINVAL, "client: NULL");
    int64_t deadline = kb_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int rc = s_housekeeping(c);
        if (rc != KB_OK)
            return rc;
        int64_t left = deadline - kb_mono_ms();
        int wait = left <= 0 ? 0 : (left > 100 ? 100 : (int)left);
        zmq_pollitem_t items[2] = {{c->dealer, 0, ZMQ_POLLIN, 0}, {c->monitor, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, wait) < 0 && zmq_errno() != EINTR)
            return kb_error_set(KB_ENET, "poll: %s", zmq_strerror(zmq_errno()));
        int handled = s_read_all(c);
        if (handled < 0)
            return handled;
        if (handled > 0) {
            rc = s_housekeeping(c); /* answer WELCOME with the outbox, acks, ... */
            return rc;
        }
        if (kb_mono_ms() >= deadline)
            return KB_OK;
    }
}

/* Fill the header fields the SDK owns (sender, message id, created time),
 * validate, sign and pack msg into out (id, bytes, len; the caller frees
 * out->bytes). */
static int s_prepare(ketenbus_client_t *c, ketenbus_msg_t *msg, kb_outbox_entry_t *out)
{
    if (!msg)
        return kb_error_set(KB_EINVAL, "submit: NULL message");
    if (msg->received)
        return kb_error_set(KB_EINVAL, "submit: a received message cannot be submitted again");
    Ketenbus__Envelope *e = msg->env;
    /* the payload implies the kind; "kind" may be left out of the JSON */
    if (e->kind == KETENBUS__KIND__KIND_UNSPECIFIED) {
        if (e->payload_case == KETENBUS__ENVELOPE__PAYLOAD_SIGNAL)
            e->kind = KETENBUS__KIND__KIND_SIGNAL;
        else if (e->payload_case == KETENBUS__ENVELOPE__PAYLOAD_REFERRAL)
            e->kind = KETENBUS__KIND__KIND_REFERRAL;
        else if (e->payload_case == KETENBUS__ENVELOPE__PAYLOAD_REFERRAL_UPDATE)
            e->kind = KETENBUS__KIND__KIND_REFERRAL_UPDATE;
    }
    if (e->kind == KETENBUS__KIND__KIND_MATCH_NOTICE || e->kind == KETENBUS__KIND__KIND_EXPIRY_NOTICE)
        return kb_error_set(KB_EINVAL, "submit: notices are written by the broker only");
    /* number, date and sign: the SDK owns these header fields */
    if (e->sender != protobuf_c_empty_string)
        free(e->sender);
    e->sender = strdup(c->o.agency);
    if (!e->sender)
        return kb_error_set(KB_ENOMEM, "submit: out of memory");
    if (e->message_id.len != 16) {
        free(e->message_id.data);
        e->message_id.data = malloc(16);
        if (!e->message_id.data) {
            e->message_id.len = 0;
            return kb_error_set(KB_ENOMEM, "submit: out of memory");
        }
        e->message_id.len = 16;
        int rc = kb_uuid7(e->message_id.data);
        if (rc != KB_OK)
            return rc;
    }
    if (e->created_us == 0)
        e->created_us = kb_now_us();
    msg_sync_id(msg);
    char why[256];
    /* validate before signing so the caller learns of mistakes at once */
    uint8_t *tmp_sig = e->signature.data;
    size_t tmp_len = e->signature.len;
    e->signature.data = NULL;
    e->signature.len = 0;
    int rc = kb_envelope_validate_submitted(e, why, sizeof why);
    e->signature.data = tmp_sig;
    e->signature.len = tmp_len;
    if (rc != KB_OK)
        return kb_error_set(KB_EINVAL, "submit: %s", why);
    rc = kb_seal_sign(e, c->sign_key);
    if (rc != KB_OK)
        return rc;
    out->len = ketenbus__envelope__get_packed_size(e);
    /* what the broker said it takes, once it has said so (a message stored
     * before that and too large is rejected when it would be sent) */
    size_t frame = kb_submit_frame_len(UINT64_MAX, kb_submit_item_len(out->len));
    if (c->max_frame > 0 && frame > c->max_frame)
        return kb_error_set(KB_ETOOBIG, "submit: the message packs into %zu bytes; the broker takes frames of at most %zu "
                            "(max_message_bytes)", frame, c->max_frame);
    out->bytes = malloc(out->len);
    if (!out->bytes)
        return kb_error_set(KB_ENOMEM, "submit: out of memory");
    ketenbus__envelope__pack(e, out->bytes);
    memcpy(out->id, e->message_id.data, 16);
    return KB_OK;
}

/* Store n prepared envelopes with one synced write, then send them if the
 * broker is connected. Frees in[i].bytes in every case. An error means
 * that nothing was stored: once the entries are in the outbox a failure
 * to send them is only logged, since they go again from there (a caller
 * told otherwise would submit them again, under new ids). */
static int s_store_and_send(ketenbus_client_t *c, kb_outbox_entry_t *in, size_t n)
{
    size_t before = kb_outbox_size(c->outbox);
    int rc = kb_outbox_put_batch(c->outbox, in, n);
    for (size_t i = 0; i < n; i++)
        free(in[i].bytes);
    if (rc != KB_OK)
        return rc;
    if (c->welcomed && !c->resend) {
        uint64_t stop = 0;
        rc = s_send_outbox(c, kb_outbox_at(c->outbox, before)->seq, 0, &stop);
        if (rc != KB_OK)
            s_resend_from(c, stop);
        if (rc != KB_OK && rc != KB_EPENDING)
            s_log(c, 0, "event=send_failed rc=%d detail=\"%s\" stored=%zu", rc, kb_last_error(), n);
    }
    return KB_OK;
}

/* Start waiting for the receipts of msgs[0..n), before they are stored:
 * one may be answered as they are sent (s_reject_too_large). */
static void s_await_begin(ketenbus_client_t *c, kb_await_t *w, ketenbus_msg_t **msgs, size_t n,
                          ketenbus_receipt_t *receipts)
{
    memset(w, 0, sizeof *w);
    w->msgs = msgs;
    w->n = n;
    w->receipts = receipts;
    w->outer = c->await;
    c->await = w;
}

/* Stop waiting: w is the innermost wait (waits nest). */
static void s_await_end(ketenbus_client_t *c, kb_await_t *w)
{
    c->await = w->outer;
}

/* Wait up to timeout_ms for the receipts w waits for (stored meanwhile),
 * then stop waiting; the receipts of messages that got none say outcome
 * NONE. KB_OK when all were accepted or duplicates, KB_EREJECTED when one
 * was refused, KB_EPENDING when one has no receipt; nothing else, since
 * the messages are stored: a poll that fails meanwhile (e.g. the seen
 * record of a delivery the handler took could not be written) ends the
 * wait, and its error is logged and described in failed (failed_len
 * bytes; "" if none), but is not returned. Whatever failed is tried again
 * by the next poll. */
static int s_await(ketenbus_client_t *c, kb_await_t *w, int timeout_ms, char *failed, size_t failed_len)
{
    int64_t deadline = kb_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    failed[0] = '\0';
    for (;;) {
        int64_t left = deadline - kb_mono_ms();
        if (w->n_decided == w->n || left <= 0)
            break;
        int rc = ketenbus_client_poll(c, (int)left);
        if (rc != KB_OK) {
            snprintf(failed, failed_len, " (waiting stopped: %s)", kb_last_error());
            s_log(c, 0, "event=poll_failed rc=%d detail=\"%s\" while=submit", rc, kb_last_error());
            break;
        }
    }
    s_await_end(c, w);
    for (size_t i = 0; w->receipts && i < w->n; i++) {
        if (w->decided[i])
            continue;
        memset(&w->receipts[i], 0, sizeof w->receipts[i]);
        snprintf(w->receipts[i].message_id, sizeof w->receipts[i].message_id, "%s", w->msgs[i]->id);
    }
    size_t pending = w->n - w->n_decided;
    if (w->n_rejected > 0)
        return kb_error_set(KB_EREJECTED, "submit: %zu of %zu rejected; the receipts say why", w->n_rejected, w->n);
    if (pending > 0)
        return kb_error_set(KB_EPENDING, "submit: no receipt yet for %zu of %zu; they stay in the outbox%s", pending,
                            w->n, failed);
    return KB_OK;
}

int ketenbus_client_submit(ketenbus_client_t *c, ketenbus_msg_t *msg, ketenbus_receipt_t *receipt, int timeout_ms)
{
    if (!c || !msg)
        return kb_error_set(KB_EINVAL, "submit: NULL argument");
    kb_outbox_entry_t in = {0};
    int rc = s_prepare(c, msg, &in);
    if (rc != KB_OK) {
        free(in.bytes);
        return rc;
    }
    ketenbus_receipt_t r;
    kb_await_t w;
    s_await_begin(c, &w, &msg, 1, &r);
    rc = s_store_and_send(c, &in, 1);
    if (rc != KB_OK) {
        s_await_end(c, &w);
        return rc;
    }
    char failed[KB_ERROR_MAX];
    rc = s_await(c, &w, timeout_ms, failed, sizeof failed);
    if (receipt)
        *receipt = r;
    if (rc == KB_EPENDING)
        return kb_error_set(KB_EPENDING, "submit: no receipt yet for %s; it stays in the outbox%s", msg->id, failed);
    if (rc == KB_EREJECTED)
        return kb_error_set(KB_EREJECTED, "submit: %s rejected: %s", msg->id, r.reason);
    return rc;
}

int ketenbus_client_submit_batch(ketenbus_client_t *c, ketenbus_msg_t **msgs, size_t n, ketenbus_receipt_t *receipts,
                                 int timeout_ms)
{
    if (!c || !msgs || n == 0)
        return kb_error_set(KB_EINVAL, "submit_batch: NULL argument or no messages");
    if (n > KETENBUS_BATCH_MAX)
        return kb_error_set(KB_EINVAL, "submit_batch: %zu messages, at most %u in one batch", n, KETENBUS_BATCH_MAX);
    kb_outbox_entry_t in[KETENBUS_BATCH_MAX];
    memset(in, 0, n * sizeof *in);
    for (size_t i = 0; i < n; i++) {
        int rc = s_prepare(c, msgs[i], &in[i]);
        if (rc != KB_OK) {
            char why[KB_ERROR_MAX];
            snprintf(why, sizeof why, "%s", kb_last_error());
            for (size_t k = 0; k <= i; k++)
                free(in[k].bytes);
            return kb_error_set(rc, "submit_batch: message %zu: %s; nothing was stored", i, why);
        }
    }
    kb_await_t w;
    s_await_begin(c, &w, msgs, n, receipts);
    int rc = s_store_and_send(c, in, n);
    if (rc != KB_OK) {
        s_await_end(c, &w);
        return rc;
    }
    char failed[KB_ERROR_MAX];
    return s_await(c, &w, timeout_ms, failed, sizeof failed);
}

/* Acknowledge and drop the messages at the front of the inbox that are
 * recorded as seen. A copy that the broker delivered again while the
 * adapter held the first one (a new session sends again what was in
 * flight) waits in the inbox; once the adapter acknowledged the first,
 * handing out the copy would give it the message twice. */
static int s_inbox_drop_seen(ketenbus_client_t *c)
{
    size_t dropped = 0;
    while (c->n_inbox > 0) {
        ketenbus_msg_t *m = c->inbox[0];
        kb_seen_key_t key;
        if (kb_outbox_seen_key(&key, m->env) != KB_OK || !kb_outbox_seen(c->outbox, &key))
            break;
        /* the inbox holds deliveries of the open session only (s_unwelcome) */
        if (s_queue_seen_tag(c, m->tag) != KB_OK)
            return KB_ENOMEM;
        memmove(c->inbox, c->inbox + 1, (c->n_inbox - 1) * sizeof *c->inbox);
        c->n_inbox--;
        ketenbus_msg_destroy(&m);
        dropped++;
        if (s_release_held(c, &key) != KB_OK)
            return KB_ENOMEM;
    }
    return dropped > 0 ? s_flush_acks(c) : KB_OK;
}

int ketenbus_client_recv(ketenbus_client_t *c, ketenbus_msg_t **out, int timeout_ms)
{
    if (!c || !out)
        return kb_error_set(KB_EINVAL, "recv: NULL argument");
    int64_t deadline = kb_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int polled = 0; /* the connection is read at least once, also with timeout 0 */
    for (;;) {
        int rc = s_inbox_drop_seen(c);
        if (rc != KB_OK)
            return rc;
        if (c->n_inbox > 0) {
            kb_seen_key_t key;
            if (kb_outbox_seen_key(&key, c->inbox[0]->env) == KB_OK && s_hold(c, &key, c->inbox[0]->tag) != KB_OK)
                return KB_ENOMEM;
            *out = c->inbox[0];
            memmove(c->inbox, c->inbox + 1, (c->n_inbox - 1) * sizeof *c->inbox);
            c->n_inbox--;
            return KB_OK;
        }
        int64_t left = deadline - kb_mono_ms();
        if (left <= 0 && polled)
            return kb_error_set(KB_ETIMEDOUT, "recv: nothing arrived within %d ms", timeout_ms);
        rc = ketenbus_client_poll(c, left > 0 ? (int)left : 0);
        polled = 1;
        if (rc != KB_OK)
            return rc;
    }
}

int ketenbus_client_ack(ketenbus_client_t *c, const ketenbus_msg_t *msg)
{
    if (!c || !msg || !msg->received)
        return kb_error_set(KB_EINVAL, "ack: not a received message");
    /* recorded now, whatever the session: once this returns KB_OK the
     * message is never handed over again, also after a restart */
    kb_seen_key_t key;
    int rc = kb_outbox_seen_key(&key, msg->env);
    if (rc == KB_OK && !kb_outbox_seen(c->outbox, &key))
        rc = kb_outbox_mark_seen(c->outbox, &key, 1);
    if (rc != KB_OK) {
        /* nothing is acknowledged: the broker delivers it again only on a
         * new session, asked for as for a delivery the handler kept */
        s_keep_later(c, 1);
        return rc;
    }
    /* the tags of this session's copies go now, whichever copy this is; a
     * copy from an ended session has no tag here (the broker delivers it
     * again, and that delivery is acknowledged as seen) */
    rc = s_release_held(c, &key);
    if (rc != KB_OK)
        return rc;
    return s_flush_acks(c);
}

size_t ketenbus_client_outbox_size(const ketenbus_client_t *c)
{
    return c ? kb_outbox_size(c->outbox) : 0;
}

/* Sleep for ms milliseconds (0 or less: not at all). */
static void s_pause_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal may end it early: the caller looks at the clock */
}

/* A poll that fails while flush waits is not the end of the wait: the
 * failed work (e.g. recording a delivery the handler took, on a full disk)
 * is tried again by the next poll, and the receipts may still come. It is
 * logged once per flush and named in the ETIMEDOUT that ends a wait that
 * stays unsuccessful; between polls that fail the wait pauses this long,
 * since a poll that fails returns at once. */
int ketenbus_client_flush(ketenbus_client_t *c, int timeout_ms)
{
    if (!c)
        return kb_error_set(KB_EINVAL, "flush: NULL");
    int64_t deadline = kb_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    char failed[KB_ERROR_MAX] = "";
    while (kb_outbox_size(c->outbox) > 0) {
        int64_t left = deadline - kb_mono_ms();
        if (left <= 0)
            return kb_error_set(KB_ETIMEDOUT, "flush: %zu messages still without receipt%s%s%s",
                                kb_outbox_size(c->outbox), failed[0] ? " (a poll failed: " : "", failed,
                                failed[0] ? ")" : "");
        int rc = ketenbus_client_poll(c, (int)left);
        if (rc != KB_OK) {
            if (!failed[0])
                s_log(c, 0, "event=poll_failed rc=%d detail=\"%s\" while=flush", rc, kb_last_error());
            snprintf(failed, sizeof failed, "%s", kb_last_error());
            left = deadline - kb_mono_ms();
            s_pause_ms(left < KB_FLUSH_PAUSE_MS ? left : KB_FLUSH_PAUSE_MS);
        }
    }
    return KB_OK;
}

const ketenbus_receipt_t *ketenbus_client_last_receipt(const ketenbus_client_t *c)
{
    return c && c->has_last_receipt ? &c->last_receipt : NULL;
}

int ketenbus_client_is_connected(const ketenbus_client_t *c)
{
    return c ? c->welcomed : 0;
}
