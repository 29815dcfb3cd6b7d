/*
 * broker.h - internal structures of ketenbusd.
 *
 * One thread owns the ROUTER socket, the ZAP socket and the store's
 * state. Each turn of the loop (broker.c) drains the frames that are
 * waiting and lets route.c and deliver.c stage their changes in one batch;
 * the committer thread (commit.c) writes a batch with a single synced write
 * (group commit) while the loop stages the next, and the replies a batch
 * makes true (receipts, deliveries) are held until it is written: RECEIPT
 * ACCEPTED always follows the fsync that made it true.
 */
#ifndef KB_BROKER_H
#define KB_BROKER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <zmq.h>

#include "conf.h"
#include "idset.h"
#include "kb_codec.h"
#include "kb_merkle.h"
#include "ketenbus.pb-c.h"
#include "store.h"
#include "verify.h"

#define KB_ROUTING_ID_MAX   256u   /* ZeroMQ routing ids are at most 255 bytes */
#define KB_ZAP_KEY_PROPERTY "X-Curve-Key" /* connection property: the CURVE key it was accepted with */
#define KB_DRAIN_MAX        512u   /* frames, and envelopes, read per loop turn */
#define KB_DRAIN_ARENA_MAX  (32u << 20) /* decoded bytes a turn reads frames into: one more frame
                                         * at most (its decoding is bounded by the codec), so a
                                         * turn's memory is bounded whatever peers send */
#define KB_STAGE_OPS_MAX    65536u /* staged store operations before the loop waits for the disk */
/* What accepted envelopes staged for their recipients (route.c's cost: a
 * queue copy and S_COPY_COST per recipient) before the loop hands the
 * staged batch to the committer, waiting for the batch in flight if need
 * be; checked after every frame, also within a turn. An envelope fanned
 * out to many agencies is copied once per recipient (and once more for
 * each one online), so the bound on what a turn reads does not bound what
 * it stages: 4 MiB of signals fanned out to 64 agencies grew the broker
 * by 480 MiB in one turn before this bound, and longer floods without
 * limit. One SUBMIT stages at most this much, or one envelope's fan-out
 * when that alone is larger (route.c). Ordinary traffic stays far below
 * it: a batch of small messages reaches KB_STAGE_OPS_MAX first. */
#define KB_STAGE_COST_MAX   (16u << 20)
/* Bytes of replies (slots and frames) queued while a batch is written
 * before the loop waits for the disk: frames that stage nothing (PING,
 * refusals) still queue a reply, so without a bound a peer that keeps
 * sending while the disk is slow grows the broker's memory. Waiting leaves
 * its frames to libzmq's ZMQ_RCVHWM, which pushes back on the sender. The
 * replies of a batch of KB_STAGE_OPS_MAX operations of accepted SUBMITs
 * (each stages at least two: its queue entry and its id), one RECEIPT
 * each, take about 12 MiB: with room to spare for the deliveries that go
 * with them, a flow of SUBMITs reaches KB_STAGE_OPS_MAX first. */
#define KB_REPLIES_BYTES_MAX (32u << 20)
#define KB_MAX_SESSIONS     4096u  /* concurrent adapter sessions */
#define KB_SENDERS_PER_AGENCY 16   /* send-only sessions one agency may hold at once */
#define KB_DELIVER_BATCH    128u   /* envelopes per DELIVER frame */
#define KB_DELIVER_FRAME_BYTES (256u << 10) /* a DELIVER frame takes no more envelopes past this */
#define KB_RECEIPT_JOIN_MAX (256u * 1024u) /* bytes of entries one RECEIPT gathers */
#define KB_RECEIPT_JOIN_LOOKBACK 32u   /* queued replies searched for the peer's open RECEIPT */
#define KB_DELIVER_FRAMES_MAX 8u   /* DELIVER frames per session per turn */
#define KB_EXPIRY_PERIOD_MS 1000   /* how often queues are checked for expiry */
#define KB_CHECKPOINT_RETRY_MS 1000 /* a failed checkpoint is tried again this soon, not an interval later */
#define KB_CLOCK_SKEW_US    (300LL * 1000000) /* created_us may be this far ahead */
#define KB_REFUSED_WINDOW_MS 60000 /* refused connections are recorded one by one ... */
#define KB_REFUSED_PER_WINDOW 60u  /* ... up to this many per window and kind, the rest counted */

/* What a refusal recorded by zap_refused is about. Each kind has its own
 * limit, so that a revoked adapter that keeps sending cannot use up the
 * records that name an outsider's key, nor the other way round. */
typedef enum {
    KB_REFUSED_UNKNOWN_KEY, /* a handshake with a key the chain does not know */
    KB_REFUSED_REVOKED,     /* a frame on a connection whose key a reload took out */
    KB_REFUSED_KINDS
} kb_refused_kind_t;

/* One kind's window of refusals. */
typedef struct {
    int64_t since_ms; /* start of the current window */
    unsigned told;    /* refusals recorded one by one in it */
    uint64_t untold;  /* refusals only counted in it */
} kb_refusals_t;

/* A delivery sent and not yet acknowledged. */
typedef struct {
    uint64_t tag;                   /* queue sequence = delivery tag */
    uint8_t message_id[16];         /* for the audit record of the ACK */
    char sender[KB_AGENCY_ID_MAX + 1]; /* sending agency */
    int kind;                       /* message kind */
    int live;                       /* 0: acknowledged, a hole in the window until it reaches the front */
} kb_inflight_t;

/* An adapter's session, opened by HELLO, keyed by its ZeroMQ routing id. */
typedef struct {
    uint8_t rid[KB_ROUTING_ID_MAX]; /* routing id of the connection */
    size_t rid_len;                 /* its length; 0 = free slot */
    char agency[KB_AGENCY_ID_MAX + 1]; /* agency from the ZAP handshake */
    char key[KB_Z85_KEY_LEN + 1];   /* CURVE key its connection was accepted with */
    uint64_t credit;                /* deliveries it can still take */
    uint64_t cursor;                /* next queue sequence to look at */
    uint64_t passed;                /* entries the pump passed undelivered (unreadable): expiry
                                     * then looks at the in-flight window entry by entry */
    kb_inflight_t *inflight;        /* ring of deliveries in tag order, unacknowledged ones live */
    size_t n_inflight;              /* live entries (delivered, unacknowledged) */
    size_t head_inflight;           /* ring index of the oldest slot */
    size_t span_inflight;           /* slots from the head, holes included */
    size_t cap_inflight;            /* ring size (a power of two) */
    int64_t last_seen_ms;           /* monotonic time of its last frame */
    int active;                     /* 1 if deliveries for the agency go here */
    int send_only;                  /* 1: HELLO said send_only; never active */
    kb_delivery_raw_t *direct;      /* delivered this turn straight from routing (envelope bytes owned) */
    size_t n_direct;                /* their count */
    size_t cap_direct;              /* allocated */
} kb_session_t;

/* One slot of the agency -> active session cache (session.c). */
typedef struct {
    char agency[KB_AGENCY_ID_MAX + 1]; /* agency looked up; "" = empty slot */
    kb_session_t *session;          /* its active session, or NULL: none */
    uint64_t gen;                   /* b->session_gen when filled */
} kb_session_cache_t;

#define KB_SESSION_CACHE 256u       /* cache slots (a power of two) */

/* A reply waiting for the commit that makes it true. */
typedef struct {
    uint8_t rid[KB_ROUTING_ID_MAX]; /* destination routing id */
    size_t rid_len;                 /* its length */
    uint8_t *frame;                 /* encoded Frame (owned); see receipt_open */
    size_t frame_len;               /* its length */
    size_t frame_cap;               /* bytes allocated while receipt_open */
    int receipt_open;               /* 1: frame holds only the packed entries of a
                                       RECEIPT that later SUBMITs of the turn may join */
    size_t receipt_entries;         /* their number */
    uint64_t receipt_request;       /* request_id of the last SUBMIT they answer */
} kb_outgoing_t;

/* A list of replies in the order they go out. */
typedef struct {
    kb_outgoing_t *v;               /* the replies */
    size_t n;                       /* their count */
    size_t cap;                     /* allocated */
    size_t bytes;                   /* their slots and frames (see KB_REPLIES_BYTES_MAX) */
} kb_replies_t;

/* What the signal handlers of main.c tell the loop. */
typedef struct {
    volatile sig_atomic_t stop;     /* SIGTERM or SIGINT arrived */
    volatile sig_atomic_t reload;   /* SIGHUP arrived */
    volatile sig_atomic_t hup_pid;  /* sender of the last SIGHUP */
    volatile sig_atomic_t hup_uid;  /* its user id */
} kb_signals_t;

/* A frame read this turn, decoded, waiting for its signature checks. */
typedef struct {
    zmq_msg_t rid;                  /* routing id */
    zmq_msg_t body;                 /* the frame's bytes */
    int parts;                      /* message parts received */
    const char *agency;             /* User-Id from ZAP (owned by body) */
    const char *key;                /* X-Curve-Key from ZAP (owned by body), or NULL */
    int valid;                      /* 1 if authenticated and single-part */
    int decode_rc;                  /* kb_frame_decode() result */
    Ketenbus__Frame *frame;         /* decoded frame (in the turn's arena) */
    kb_verify_job_t **jobs;         /* per envelope of a SUBMIT: its check, or NULL */
} kb_incoming_t;

typedef struct kb_broker {
    kb_conf_t *conf;                /* configuration in force (owned) */
    char *conf_path;                /* file to reload from */
    kb_store_t *store;              /* durable state */
    kb_batch_t *batch;              /* changes staged this turn */
    kb_batch_t *spare;              /* the other batch: idle, or NULL while the committer writes it */
    struct kb_commit *commit;       /* committer thread: writes (and syncs) batches off this thread */
    kb_replies_t held;              /* replies waiting for the batch in flight */
    kb_incoming_t *in;              /* frames of this turn, KB_DRAIN_MAX slots */
    kb_incoming_t *in_next;         /* frames read ahead for the next turn, KB_DRAIN_MAX slots */
    struct kb_arena *arena;         /* the decoded frames of in (reset after the turn) */
    struct kb_arena *arena_next;    /* the decoded frames of in_next */
    size_t n_next;                  /* their count */
    kb_verify_pool_t *verify;       /* signature checks on all cores */
    kb_verify_job_t *jobs;          /* this turn's checks */
    size_t cap_jobs;                /* allocated */
    kb_verify_job_t *jobs_next;     /* checks of the frames read ahead (running on the pool) */
    size_t n_jobs_next;             /* their count */
    size_t cap_jobs_next;           /* allocated */
    int turn_sync;                  /* 1 if the staged batch must be synced (it answers SUBMITs) */
    size_t staged_cost;             /* route.c's cost of the envelopes the staged batch accepts */
    kb_merkle_t *tree;              /* the audit log's Merkle tree (leaves = audit records) */
    kb_store_tiles_t tiles;         /* binds the tree to the store and the turn's batch */
    uint64_t cp_size;               /* tree size of the last signed checkpoint */
    int cp_origin_ok;               /* 1 once the stored checkpoints are known to be under this broker id */
    int64_t cp_next_ms;             /* when the next checkpoint is due at the latest */
    int64_t cp_retry_ms;            /* after a failed checkpoint: no new try before this (unless forced) */
    int finished;                   /* 1 once kb_broker_finish() ran: nothing more is written */
    int64_t retention_next_ms;      /* when the next retention pass starts */
    int retention_kind;             /* the kind the pass is at (KB_CONF_RETENTION_KINDS: done) */
    void *zctx;                     /* ZeroMQ context */
    void *router;                   /* adapters connect here (CURVE server) */
    size_t frame_max_start;         /* max_message_bytes the router's limits were set from (at start) */
    void *zap;                      /* ZAP handler (inproc://zeromq.zap.01) */
    kb_refusals_t refused[KB_REFUSED_KINDS]; /* refused connections and frames, by kind */
    char endpoint[256];             /* bound endpoint, after start */
    EVP_PKEY *sign_key;             /* broker's Ed25519 key, signs notices */
    char curve_pub[KB_Z85_KEY_LEN + 1]; /* broker's CURVE public key (once started) */
    EVP_MD *sha256;                 /* SHA-256, fetched once: a fetch per digest costs more than the digest */
    EVP_MD_CTX *sha_ctx;            /* reused for the payload digest of every accepted envelope */
    kb_session_t *sessions;         /* session table, KB_MAX_SESSIONS slots */
    size_t n_sessions;              /* sessions in use */
    uint64_t session_gen;           /* bumped whenever a session opens or ends */
    kb_session_cache_t *session_cache; /* agency -> active session, KB_SESSION_CACHE slots */
    kb_replies_t out;               /* replies of the staged batch: sent after its commit */
    kb_idset_t *ids;                /* (sender, id) accepted into the staged batch */
    kb_idset_t *ids_flight;         /* (sender, id) accepted into the batch in flight */
    kb_idset_t *dels;               /* (agency, queue tag) removed in the staged batch (deliver.c) */
    kb_idset_t *dels_flight;        /* (agency, queue tag) removed in the batch in flight */
    int64_t started_ms;             /* monotonic start time */
    int64_t next_expiry_ms;         /* next expiry check */
    void *admin;                    /* operators' admin socket (ipc, in data_dir) */
    char admin_endpoint[300];       /* its endpoint */
    uint64_t stat_accepted;         /* envelopes accepted since start */
    uint64_t stat_rejected;         /* envelopes rejected since start */
    uint64_t stat_delivered;        /* deliveries sent since start */
} kb_broker_t;

/* broker.c */
kb_broker_t *kb_broker_new(const char *conf_path);
/* Writes what kb_broker_finish() writes, unless it was called (a failure
 * is then only logged), and frees everything. */
void kb_broker_destroy(kb_broker_t **p);
int kb_broker_start(kb_broker_t *b);
/* Serve until sig->stop, then write what was staged. KB_OK; KB_EIO when
 * that last write failed (logged as stop_write_failed: its audit records
 * are lost); other errors of the loop. */
int kb_broker_run(kb_broker_t *b, kb_signals_t *sig);
/* The last writes of a stop: waits for the batch in flight, ends every
 * session (a DISCONNECTED record each), writes them and signs a final
 * checkpoint. KB_OK; KB_EIO when a write failed, with kb_last_error()
 * naming what was not written (also logged at error level as
 * stop_write_failed). Writes nothing when called again. */
int kb_broker_finish(kb_broker_t *b);
/* Load the configuration file again and put it in force for messages
 * submitted from now on, and for those queued as they are delivered
 * (deliver.c). A file that does not load is refused and the old
 * configuration stays; both outcomes are logged and audited with the file's
 * SHA-256 (a refused one that could not be read whole: saying so) and who
 * asked (`who`). On failure kb_last_error() says why. */
int kb_broker_reload(kb_broker_t *b, const char *who);
/* Queue an encoded reply frame for rid (sent after the commit). */
int broker_reply(kb_broker_t *b, const uint8_t *rid, size_t rid_len, Ketenbus__Frame *f);
/* The same for a frame already encoded: takes *frame (malloc'd) and clears
 * it, also on failure (KB_ENOMEM), when the frame is freed. */
int broker_reply_raw(kb_broker_t *b, const uint8_t *rid, size_t rid_len, uint8_t **frame, size_t frame_len);
/* Queue receipt r answering SUBMIT request_id of rid. When the last reply
 * queued for the same peer (among the last KB_RECEIPT_JOIN_LOOKBACK
 * replies) is a receipt, r's entries join it (up to KB_MAX_BATCH entries,
 * KB_RECEIPT_JOIN_MAX bytes) and that RECEIPT carries this request_id: a
 * sender that submits one envelope per frame gets one RECEIPT per turn,
 * not one per SUBMIT, also when other peers' replies come in between. */
int broker_receipt(kb_broker_t *b, const uint8_t *rid, size_t rid_len, uint64_t request_id,
                   const Ketenbus__Receipt *r);

/* checkpoint.c: sign a checkpoint of the audit tree when due: once records
 * were logged since the last checkpoint's own CHECKPOINT record, after
 * checkpoint_interval or checkpoint_records of them (force: now, if
 * anything is unsigned). Never fails traffic: a failure is logged as an
 * alert and tried again KB_CHECKPOINT_RETRY_MS later. KB_OK when signed
 * or not due; the error of a checkpoint that failed (kb_last_error()). */
int checkpoint_maybe(kb_broker_t *b, int force);
/* retention.c: apply the chain file's retention periods to the audit log,
 * a chunk per turn (never fails traffic: failures are logged and tried
 * again later); retention_describe logs the periods in force. */
void retention_maybe(kb_broker_t *b);
void retention_describe(const kb_broker_t *b);
/* After a failed write: open the store again and re-read counters and tree
 * from disk (nothing may be in flight: see broker_settle). If the store
 * does not open, the broker logs store_lost and exits with status 1. */
void broker_resync(kb_broker_t *b);
/* Wait for the batch in flight (if any) to be written and send the replies
 * it makes true. If it failed, nothing not yet sent is confirmed: every
 * waiting reply becomes ERROR_CODE_INTERNAL, the staged batch is dropped,
 * counters and tree are reread and sessions restart; the commit's error
 * is returned. Whatever writes to the store directly, or reads what a
 * batch in flight changes (expiry, checkpoints, retention, admin), settles
 * first. */
int broker_settle(kb_broker_t *b);
/* Settle, then write what is staged the way a turn does (its replies and
 * direct deliveries go out once it is written), and settle that: nothing
 * is staged afterwards. For whatever must write the store by itself
 * (admin commands, shutdown). On failure as broker_settle. */
int broker_write_staged(kb_broker_t *b);

/* admin.c: the operators' admin socket (status, reload) */
int admin_start(kb_broker_t *b);
int admin_handle(kb_broker_t *b);

/* admin_audit.c: answer an audit_* admin command (req is the request
 * object, who the requester as the kernel names it, for the audit trail);
 * NULL if command is not one. The answer is the caller's. */
#define KB_ADMIN_WHO_MAX 160u
struct json_object;
struct json_object *admin_audit(kb_broker_t *b, const char *command, struct json_object *req, const char *who);

/* zap.c: answer waiting ZAP requests (CURVE key -> agency id). */
int zap_handle(kb_broker_t *b);
/* Log and audit a refused connection (or a frame of a revoked one), reason
 * saying why: at most KB_REFUSED_PER_WINDOW of each kind one by one per
 * KB_REFUSED_WINDOW_MS, and the rest counted in one record when the window
 * ends, so that whoever can reach the port cannot grow the audit log at
 * handshake (or frame) rate. */
void zap_refused(kb_broker_t *b, kb_refused_kind_t kind, const char *reason);
/* Write the records of the refusals not recorded one by one once their
 * window is over (or now, with force: at shutdown). */
void zap_refusals_flush(kb_broker_t *b, int force);

/* session.c */
kb_session_t *session_find(kb_broker_t *b, const uint8_t *rid, size_t rid_len);
kb_session_t *session_open(kb_broker_t *b, const uint8_t *rid, size_t rid_len, const char *agency, const char *key,
                           int send_only);
void session_close(kb_broker_t *b, kb_session_t *s, const char *why);
/* Free what s holds and clear it (no audit record: session_close). */
void session_reset(kb_broker_t *b, kb_session_t *s);
/* The agency's active session or NULL; cached, so it is cheap per message. */
kb_session_t *session_active(kb_broker_t *b, const char *agency);
/* Most deliveries a session may have outstanding: sent and unacknowledged
 * plus the credit for more. It bounds the in-flight window's memory (a
 * ring of at most 2^18 entries of 72 bytes, about 19 MB) whatever credit
 * an adapter keeps granting without ACKs. */
#define KB_OUTSTANDING_MAX 100000u
/* Add n to s's credit, within KB_OUTSTANDING_MAX outstanding deliveries. */
void session_credit_grant(kb_session_t *s, uint64_t n);
int session_inflight_add(kb_session_t *s, const kb_inflight_t *d);
/* Remove tag; copies the entry to *out when found, else KB_ENOTFOUND. */
int session_inflight_remove(kb_session_t *s, uint64_t tag, kb_inflight_t *out);
int session_inflight_has(const kb_session_t *s, uint64_t tag);
/* 1 and the highest tag in flight in *tag; 0 if nothing is in flight. */
int session_inflight_last(const kb_session_t *s, uint64_t *tag);
void session_expire_idle(kb_broker_t *b, int64_t now_ms);

/* audit.c: build and stage audit records. */
Ketenbus__AuditRecord *audit_record_for(Ketenbus__AuditRecord *r, int event, const Ketenbus__Envelope *e);
/* The same from the view of a packed envelope (borrows from v). */
Ketenbus__AuditRecord *audit_record_view(Ketenbus__AuditRecord *r, int event, const kb_envelope_view_t *v);
int audit_append(kb_broker_t *b, Ketenbus__AuditRecord *r, uint64_t *index);
int audit_event(kb_broker_t *b, int event, const char *agency, const char *counterpart, const char *reason);

/* route.c: handle a SUBMIT frame from an authenticated session. */
int route_submit(kb_broker_t *b, kb_session_t *s, uint64_t request_id, Ketenbus__Submit *sub,
                 const kb_verify_job_t *const *jobs);

/* deliver.c */
/* The DELIVER frames of the entries routing delivered from memory
 * (deliver_direct), to go with the replies of the staged batch that
 * writes them; deliver_pump sends them first. */
int deliver_send_direct(kb_broker_t *b);
int deliver_pump(kb_broker_t *b);
/* Deliver queue entry tag of s's agency (packed envelope bytes) from
 * memory while it is being routed, if s is caught up: it has credit and
 * every older entry of its queue has been delivered (s->cursor == tag).
 * Stages the 'delivered' record in the same batch as the entry; the
 * DELIVER frame joins that batch's replies, so it leaves only once the
 * entry is durable. *done is 1 if delivered, 0 if the pump must do it. */
int deliver_direct(kb_broker_t *b, kb_session_t *s, uint64_t tag, const Ketenbus__QueueEntry *q, int *done);
int deliver_ack(kb_broker_t *b, kb_session_t *s, const Ketenbus__Ack *ack);
int deliver_expire(kb_broker_t *b, int64_t now_us);

#endif
