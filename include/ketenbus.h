/*
 * ketenbus.h - the adapter SDK of ketenbus (libketenbus).
 *
 * An agency's case system uses this library to exchange signals and
 * referrals with the other agencies of the chain through the ketenbus broker.
 * The SDK connects with the agency's CURVE key, builds, numbers (UUIDv7) and
 * signs (Ed25519) every envelope, keeps a durable local outbox so that a
 * submission succeeds while the broker is down, and filters redelivered
 * messages.
 *
 * Conventions:
 * - Functions that can fail return KETENBUS_OK (0) or a negative KETENBUS_E*
 *   code; ketenbus_strerror() gives static text for a code and
 *   ketenbus_last_error() the detail of the last failure on this thread
 *   (also after a constructor returned NULL).
 * - Objects are created with *_new() and freed with *_destroy(&p), which
 *   accepts NULL and sets *p to NULL.
 * - A returned `const char *` is borrowed from the object; a returned
 *   `char *` belongs to the caller, who frees it with free().
 * - A client is used from one thread at a time. The library never exits,
 *   aborts or prints; it reports through return codes and the log callback.
 * - Messages travel as JSON in the SDK's text interfaces: field names are the
 *   proto field names of proto/ketenbus.proto, documented in docs/JSON.md.
 */
#ifndef KETENBUS_H
#define KETENBUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KETENBUS_VERSION_MAJOR 0
#define KETENBUS_VERSION_MINOR 1
#define KETENBUS_VERSION_PATCH 0

/* Return codes. */
enum {
    KETENBUS_OK = 0,
    KETENBUS_EINVAL = -1,    /* bad argument from the caller */
    KETENBUS_ENOMEM = -2,    /* out of memory */
    KETENBUS_EIO = -3,       /* file or local storage failure */
    KETENBUS_EPROTO = -4,    /* malformed data (from a peer, a file, JSON) */
    KETENBUS_ECRYPTO = -5,   /* key, signature or cipher failure */
    KETENBUS_ETIMEDOUT = -6, /* nothing happened within the timeout */
    KETENBUS_EREJECTED = -7, /* the broker refused the message (see receipt) */
    KETENBUS_ENOTFOUND = -8, /* no such file, key, agency or field */
    KETENBUS_ECONFIG = -9,   /* invalid configuration */
    KETENBUS_ENET = -10,     /* ZeroMQ transport failure */
    KETENBUS_ETOOBIG = -11,  /* over a size limit */
    KETENBUS_EVERSION = -12, /* unsupported protocol version */
    KETENBUS_EPENDING = -13  /* stored in the outbox, no receipt yet */
};

/* Static text for a return code; never NULL. */
const char *ketenbus_strerror(int rc);

/* Detail of the last failure on this thread ("" if none); borrowed, valid
 * until the next failing call on this thread. */
const char *ketenbus_last_error(void);

/* ------------------------------------------------------------- messages */

/* Message kinds (same numbers as ketenbus.Kind in the proto). */
typedef enum {
    KETENBUS_KIND_SIGNAL = 1,
    KETENBUS_KIND_REFERRAL = 2,
    KETENBUS_KIND_REFERRAL_UPDATE = 3,
    KETENBUS_KIND_MATCH_NOTICE = 4,
    KETENBUS_KIND_EXPIRY_NOTICE = 5
} ketenbus_kind_t;

/* An envelope with its payload: one signal, referral, update or notice. */
typedef struct ketenbus_msg ketenbus_msg_t;

/* A new, empty message of the given kind; NULL on a bad kind or no memory. */
ketenbus_msg_t *ketenbus_msg_new(ketenbus_kind_t kind);

/* Parse a message from its JSON form (docs/JSON.md). On success *out is a new
 * message for the caller. Returns KETENBUS_EPROTO with the offending field
 * named in ketenbus_last_error() for bad JSON, unknown fields or values. */
int ketenbus_msg_from_json(const char *json, ketenbus_msg_t **out);

/* The JSON form of the message (one line); caller frees. NULL on no memory. */
char *ketenbus_msg_to_json(const ketenbus_msg_t *msg);

void ketenbus_msg_destroy(ketenbus_msg_t **p);

/* Set one field by its JSON path, with the value written as in JSON text
 * form, e.g. ("purpose", "child_protection"), ("signal.minor", "true"),
 * ("signal.observed.municipality", "GM0344"). For a repeated field the value
 * is appended. Returns KETENBUS_ENOTFOUND for an unknown path and
 * KETENBUS_EPROTO for a value that does not fit the field. */
int ketenbus_msg_set(ketenbus_msg_t *msg, const char *path, const char *value);

/* The field's value in JSON text form (strings unquoted); caller frees.
 * NULL if the path is unknown or the field is not set. */
char *ketenbus_msg_get(const ketenbus_msg_t *msg, const char *path);

ketenbus_kind_t ketenbus_msg_kind(const ketenbus_msg_t *msg);

/* Message id as canonical UUID text; "" until the message is submitted. */
const char *ketenbus_msg_id(const ketenbus_msg_t *msg);

/* Sending agency id; "" until submitted. */
const char *ketenbus_msg_sender(const ketenbus_msg_t *msg);

/* Payload paths the broker withheld from this recipient (0 if none). */
size_t ketenbus_msg_withheld_count(const ketenbus_msg_t *msg);
const char *ketenbus_msg_withheld(const ketenbus_msg_t *msg, size_t i);

/* ------------------------------------------------------- subject keys */

/* Subject keys are pseudonyms of the persons a message is about: the broker
 * and its audit log never see identifiers, only HMAC-SHA256 keys under the
 * chain key, a 32-byte secret that the agencies share and the broker
 * operator does not have (`ketenbus keygen --chain-key`). Every agency that
 * knows the same person computes the same key, so the broker can tell them
 * that they know the same person. docs/SUBJECT_KEYS.md gives the
 * normalisation rules per type and test vectors. */

/* The subject key of an identifier as 64 lowercase hex digits plus NUL.
 * type is one of "bsn", "vnummer", "document", "name_birth" (value written
 * "family name|given names|YYYY-MM-DD") or "phone"; value is UTF-8 text as
 * the agency's system holds it, normalised here. chain_key_file is read on
 * every call (32 raw bytes, mode 0600) and the key wiped afterwards.
 * Returns KETENBUS_EINVAL for a NULL argument or an unknown type,
 * KETENBUS_EPROTO for a value that is not valid for its type (a BSN failing
 * the elfproef, a date that does not exist; ketenbus_last_error() says why
 * without repeating the value) or a chain key file of the wrong length,
 * KETENBUS_ETOOBIG for a value over 256 bytes, KETENBUS_ENOTFOUND or
 * KETENBUS_EIO for a missing, unreadable or group/world-readable key file.
 * On failure hex_out holds "". */
int ketenbus_subject_key(const char *chain_key_file, const char *type, const char *value, char hex_out[65]);

/* Compute the subject key of (type, value) as ketenbus_subject_key() does
 * and append it to the message's subject_keys; a key the message carries
 * already is not added twice. Errors as ketenbus_subject_key(), and
 * KETENBUS_ETOOBIG when the message has the most subject keys an envelope
 * may carry (32). The message is unchanged on failure. */
int ketenbus_msg_add_subject(ketenbus_msg_t *msg, const char *chain_key_file, const char *type, const char *value);

/* -------------------------------------------------------------- client */

/* Outcome of one submission, filled by ketenbus_client_submit(). */
typedef enum {
    KETENBUS_OUTCOME_NONE = 0,      /* no receipt yet: the message waits in the outbox */
    KETENBUS_OUTCOME_ACCEPTED = 1,  /* durable at the broker */
    KETENBUS_OUTCOME_DUPLICATE = 2, /* the broker had accepted this id before */
    KETENBUS_OUTCOME_REJECTED = 3   /* refused for good: code and reason say why */
} ketenbus_outcome_t;

/* A refusal the broker gives only for now (ketenbus.RejectCode
 * REJECT_INTERNAL, "retry later": it could not look the message up in its
 * store) is not a receipt. The message stays in the outbox and is sent
 * again with the same id, first after 0.5 s, then after twice as long each
 * time the refusal repeats (at most 30 s apart; back to 0.5 s once the
 * broker accepts something), or at once on a new session. Until the broker
 * decides, the message has outcome NONE: ketenbus_client_submit() and
 * ketenbus_client_submit_batch() keep waiting and return KETENBUS_EPENDING
 * when their timeout passes first, ketenbus_client_last_receipt() does not
 * show it, and ketenbus_client_flush() waits for it. Each such refusal is
 * logged (level 1, event=receipt_retry). KETENBUS_OUTCOME_REJECTED and
 * KETENBUS_EREJECTED mean a final refusal only. */

typedef struct {
    ketenbus_outcome_t outcome; /* what the broker decided */
    int code;                   /* ketenbus.RejectCode of the proto, 0 if none */
    uint64_t audit_index;       /* position of the broker's "received" audit record */
    char message_id[37];        /* UUID text of the submitted message */
    char reason[256];           /* human-readable reason of a rejection */
    char rule_id[64];           /* rule that refused it, if any */
    char recipients[256];       /* comma-separated agencies it was queued for */
} ketenbus_receipt_t;

typedef struct ketenbus_client_opts ketenbus_client_opts_t;
typedef struct ketenbus_client ketenbus_client_t;

/* Log callback: level is 0 error, 1 warning, 2 info, 3 debug; line is one
 * key=value line without a newline. */
typedef void (ketenbus_log_fn)(int level, const char *line, void *arg);

/* Called for each delivered message during ketenbus_client_poll(). The
 * message is borrowed for the call. Return 0 once the message is stored
 * durably on the agency's side: the SDK then acknowledges it. Any other
 * value leaves it unacknowledged, and the broker delivers it again later:
 * the SDK starts its session again 1 s after the first such message (then
 * twice as long each time one is kept again, up to a minute; back to 1 s
 * once two minutes passed without such a restart), which brings every
 * unacknowledged delivery back. The handler may submit with timeout 0
 * (the message is stored and sent; its receipt comes in a later poll), but
 * must not call ketenbus_client_poll(), _recv(), _flush() or submit with a
 * timeout: those read the connection from inside the handler, and a
 * session that ends meanwhile would leave the rest of the current
 * delivery frame answered on the next one. */
typedef int (ketenbus_handler_fn)(ketenbus_client_t *client, const ketenbus_msg_t *msg, void *arg);

ketenbus_client_opts_t *ketenbus_client_opts_new(void);
void ketenbus_client_opts_destroy(ketenbus_client_opts_t **p);

/* Required: the agency id, and the directory with its keys as written by
 * `ketenbus keygen` (ID.curve_secret and ID.sign.pem). */
int ketenbus_client_opts_set_agency(ketenbus_client_opts_t *o, const char *agency, const char *key_dir);
/* Required: broker endpoint ("tcp://host:port") and its public CURVE
 * certificate file (broker.curve from `ketenbus keygen --broker`). */
int ketenbus_client_opts_set_broker(ketenbus_client_opts_t *o, const char *endpoint, const char *broker_cert);
/* Required: directory for the durable outbox and receive state (created). */
int ketenbus_client_opts_set_state_dir(ketenbus_client_opts_t *o, const char *dir);
/* Optional: directory with the public signing keys of the agencies this
 * one receives from, SENDER.sign.pub.pem as `ketenbus keygen` writes them,
 * and broker.sign.pub.pem, the key the broker signs its notices with
 * (default: the key directory of ketenbus_client_opts_set_agency).
 * Every delivery is checked before the handler or recv sees it, so that
 * the adapter need not trust the broker (proto/SIGNING.md,
 * "Verification"): its structure; that only the broker sends notices,
 * and nothing else; that it is meant for this agency: an envelope that
 * names its recipients must name this agency's id (the one given to
 * ketenbus_client_opts_set_agency; recipients are agency ids, never
 * groups), one that names none was fanned out by the rules; and the
 * sender's signature over the header and every visible field, which also
 * proves the list of withheld fields. Then its created time, which the
 * sender signed: it may be no more than 5 minutes ahead of this system's
 * clock, and no older than the records of acknowledged messages kept in
 * the state directory (see ketenbus_client_ack: twice the broker's
 * message_ttl and a day, once a broker told its TTL; and never older than
 * a record that was deleted, whatever TTL a broker tells later), since
 * past them a copy of a message acknowledged before would be taken for a
 * new one. A delivery that fails is not handed out; it is logged
 * (event=delivery_refused, at error level, with the reason and what was
 * done):
 * - one that cannot be genuine for this agency whatever keys are installed:
 *   a notice not from the broker, a message in the broker's name that is not
 *   a notice, one from a sender called "broker", the name of the broker's
 *   key files, that is not the broker, or one whose recipients do not name
 *   this agency, also a notice (action=quarantined): it is written to
 *   STATE_DIR/quarantine/ (SENDER-ID-HASH.pb, the envelope as received;
 *   .txt, when and why; `ketenbus quarantine` lists them), synced, and then
 *   acknowledged, so it does not come back in every session. The quarantine
 *   holds at most 10,000 deliveries or 1 GiB (counted when the client
 *   starts, and kept up to date), since the state directory also holds the
 *   outbox: beyond that such a delivery is only logged (error level,
 *   event=quarantine_full, and delivery_refused with
 *   action=dropped_quarantine_full) and acknowledged. Look into a quarantine
 *   that fills up, and delete entries once handled;
 * - any other (action=left_queued): malformed, not what its sender signed
 *   with the key installed here, its sender's key file is missing, or it is
 *   dated outside that window (a replay, or a clock is wrong: check both
 *   sides' clocks). A key not yet installed here, a newer ketenbus.proto, or
 *   a clock put right could make it pass, so it is not acknowledged (one too
 *   old never passes, and expires): it stays queued at the broker, which
 *   delivers it again when the session starts again (after 1 s, doubling up
 *   to ten minutes while only refused deliveries wait, since each restart
 *   delivers and audits them all again; at once, within a second, when a
 *   file is added to or renamed in the key directory) until it passes or
 *   expires (the sender is then told). The broker expires a delivery only
 *   between two sessions, not while it is in flight, so one that keeps being
 *   refused may expire later than message_ttl. Its credit is granted again
 *   at once, so refused deliveries, which come first in every session, do
 *   not stop the ones behind them (the broker bounds a session's
 *   unacknowledged deliveries plus credit at 100,000).
 * A key file is read when first needed and its key kept, but before each
 * delivery is checked its sender's file is looked at (stat: device, inode,
 * size, modification and change time): once it was replaced (renamed
 * over), rewritten in place or removed, the kept key is no longer used,
 * without a restart. A replaced or rewritten file is read again, so from
 * the next delivery on the new key passes and the old one does not; after
 * a removal the sender's deliveries are refused like those of a sender
 * without a key file (action=left_queued) until one is installed. When a
 * signature fails, SENDER.previous.sign.pub.pem is tried if present (read
 * each time, never kept), for messages signed before the change and still
 * queued. While that file is there the old key is trusted: remove it once
 * twice message_ttl has passed since the change, at once if the old key
 * leaked. */
int ketenbus_client_opts_set_signing_keys(ketenbus_client_opts_t *o, const char *dir);
/* Optional: deliveries the broker may send ahead of acknowledgement
 * (default 64); ones refused by the check above give their credit back,
 * so with them a session may hold more unacknowledged, at most 100,000.
 * 0 makes a send-only client: the broker delivers nothing to it, so
 * messages waiting for the agency stay queued for its receiving client
 * instead of being handed to this one and delivered again later, and its
 * session does not replace the agency's receiving client (a newer client
 * with credit does: one receiving client per agency). What the client
 * keeps of a session's deliveries is bounded by this credit: a broker
 * that delivers more than it was granted breaks the protocol, and the
 * session ends (logged, level 0, event=protocol_violation; the client says
 * HELLO again at once; if that repeats within two minutes, after 1 s,
 * then twice as long each time, up to a minute). */
int ketenbus_client_opts_set_credit(ketenbus_client_opts_t *o, unsigned credit);
/* Optional: liveness ping interval in milliseconds (default 1000). A
 * broker that asks for a shorter one when it opens a session gets it, for
 * that session. */
int ketenbus_client_opts_set_ping_interval(ketenbus_client_opts_t *o, unsigned ms);
/* Optional: log callback (default: silent). */
int ketenbus_client_opts_set_log(ketenbus_client_opts_t *o, ketenbus_log_fn *fn, void *arg);

/* A connected client, or NULL with ketenbus_last_error() set. Connecting
 * does not wait for the broker: it may be down. Messages left in the outbox
 * by an earlier run are sent again when the broker answers. A frame from
 * the broker over 64 MiB is not read: the connection is dropped and made
 * again (logged, level 1, event=reconnect). */
ketenbus_client_t *ketenbus_client_new(const ketenbus_client_opts_t *opts);

/* Close the connection. Unsent messages stay in the outbox for next time. */
void ketenbus_client_destroy(ketenbus_client_t **p);

/* Submit one message. The SDK sets sender, message id and created time,
 * signs the envelope and stores it durably in the outbox before it returns
 * anything but an argument error. It then waits up to timeout_ms (0: not at
 * all) for the broker's receipt, filling *receipt if it is not NULL.
 * Returns KETENBUS_OK when accepted (or duplicate), KETENBUS_EREJECTED when
 * refused for good (the receipt says why), KETENBUS_EPENDING when no receipt
 * came in time (the message is safe in the outbox and goes out on reconnect,
 * or again after a refusal for now: see REJECT_INTERNAL above).
 * Once the message is stored these three are the only results: a failure
 * after that (sending it, or other work done while waiting, such as
 * recording a delivery the handler took) is logged at error level, ends
 * the wait with KETENBUS_EPENDING and is named in ketenbus_last_error();
 * the message goes out all the same, and the next poll tries the failed
 * work again. Any other code means that nothing was stored, and the message
 * may be submitted again: KETENBUS_EINVAL, KETENBUS_ENOMEM, KETENBUS_ECRYPTO
 * (signing), KETENBUS_EIO (the outbox write failed), or KETENBUS_ETOOBIG.
 * Pending is not forever: the broker takes a message only within its
 * message_ttl (14 days by default) of the created time, which is set and
 * signed here. One that waits in the outbox longer, e.g. while the adapter
 * was offline for 14 days, is refused for good when it is finally sent:
 * receipt REJECTED, code REJECT_STALE (7). It then leaves the outbox; the
 * refusal is logged (level 1, event=receipt) and shows in
 * ketenbus_client_last_receipt() only while it is the latest receipt.
 * KETENBUS_ETOOBIG, with nothing stored, when the outbox is full (1,000,000
 * messages without receipt: is the broker reachable?), or when the signed
 * message is larger
 * than the broker takes in one frame (its max_message_bytes, known once
 * the client has connected). A message stored before the client knew, and
 * too large, is answered by the SDK itself when it would be sent: a receipt
 * REJECTED with code REJECT_TOO_LARGE (6), and it leaves the outbox. (So
 * is one sent before the broker's limit was lowered whose receipt was
 * lost; if the broker had accepted it, it is delivered all the same.) The
 * SDK sends what waits in SUBMIT frames within that limit. A frame the
 * broker drops unread (ketenbus.ErrorCode TOO_LARGE, MALFORMED or
 * UNSUPPORTED_VERSION; e.g. a reload lowered max_message_bytes under what
 * the client was told) ends the session: the next WELCOME tells the limit
 * in force and the outbox goes again within it. Should the broker go on
 * dropping frames, the next session waits 1 s, then twice as long each
 * time, up to a minute (logged, level 1, event=frame_dropped_by_broker).
 * msg stays the caller's; its id and sender are readable afterwards. */
int ketenbus_client_submit(ketenbus_client_t *c, ketenbus_msg_t *msg, ketenbus_receipt_t *receipt, int timeout_ms);

/* Most messages in one ketenbus_client_submit_batch(). */
#define KETENBUS_BATCH_MAX 256u

/* Submit msgs[0..n) (1 <= n <= KETENBUS_BATCH_MAX) as ketenbus_client_submit()
 * does, with one synced outbox write for all of them instead of one each:
 * what an adapter handing over a backlog wants. All or nothing: if one
 * message is invalid, KETENBUS_EINVAL names it and none is stored. Then it
 * waits up to timeout_ms for all receipts; receipts (n entries, may be NULL)
 * gets each message's, in order (outcome NONE where none came in time).
 * Returns KETENBUS_OK when all were accepted (or duplicates),
 * KETENBUS_EREJECTED when at least one was refused for good,
 * KETENBUS_EPENDING when at least one has no receipt yet (it goes out on
 * reconnect, or again after a refusal for now). As for
 * ketenbus_client_submit(), once the batch is stored these three are the
 * only results, and any other code means that none was stored
 * (KETENBUS_ETOOBIG also when the batch does not fit in the outbox). */
int ketenbus_client_submit_batch(ketenbus_client_t *c, ketenbus_msg_t **msgs, size_t n, ketenbus_receipt_t *receipts,
                                 int timeout_ms);

/* Set the callback for deliveries (NULL: use ketenbus_client_recv()). */
void ketenbus_client_set_handler(ketenbus_client_t *c, ketenbus_handler_fn *fn, void *arg);

/* Do network work for up to timeout_ms: (re)connect, send outbox entries,
 * read receipts and deliveries, call the handler. Returns KETENBUS_OK, or
 * the error of work that failed, which the next poll tries again:
 * KETENBUS_ENET (a transport failure), KETENBUS_EIO (a delivery the
 * handler took could not be recorded as acknowledged in the state
 * directory; it is not handed out again meanwhile) or KETENBUS_ENOMEM. */
int ketenbus_client_poll(ketenbus_client_t *c, int timeout_ms);

/* Take the next delivered message, waiting up to timeout_ms. With
 * timeout_ms 0 it does not wait, but reads what has arrived on the
 * connection (the network work of ketenbus_client_poll(c, 0)) before it
 * says none is there. On
 * KETENBUS_OK *out is the caller's; acknowledge it with ketenbus_client_ack()
 * once stored. Returns KETENBUS_ETIMEDOUT if none arrived, or an error of
 * ketenbus_client_poll() that ended the wait. Redelivered
 * messages that were acknowledged before are dropped silently; a message is
 * known by its sender and id together, since senders may choose ids. */
int ketenbus_client_recv(ketenbus_client_t *c, ketenbus_msg_t **out, int timeout_ms);

/* Acknowledge a message from ketenbus_client_recv(): the broker removes it
 * from this agency's queue. Before it returns KETENBUS_OK the message is
 * recorded as acknowledged in the state directory (a synced write), with or
 * without a session: it is never handed out again, also not after a
 * restart. The broker hears of it on the session that delivered the
 * message; if that session ended, the broker delivers the message again on
 * the next one and the SDK acknowledges that copy. Returns KETENBUS_EINVAL
 * for a message that was not received, KETENBUS_EIO when the record could
 * not be written (then nothing is acknowledged and the message comes
 * again: the SDK starts its session again, as for a delivery a handler
 * kept, 1 s after the first such failure and less often while they go
 * on), or a transport error. The record is kept as long as the message
 * could come again, from the broker or replayed as new: twice its
 * message_ttl (told in WELCOME; the broker takes a message until its TTL
 * after it was written, and keeps it queued for as long) and a day's
 * margin for clocks; older records are deleted a bounded step at a time
 * during poll, and deliveries written before that are refused (see
 * ketenbus_client_opts_set_signing_keys). A broker that does not tell its
 * TTL makes the SDK keep them all. */
int ketenbus_client_ack(ketenbus_client_t *c, const ketenbus_msg_t *msg);

/* Messages in the outbox without a receipt. */
size_t ketenbus_client_outbox_size(const ketenbus_client_t *c);

/* Wait up to timeout_ms until every outbox entry has a receipt (a refusal
 * for now is none: such entries are sent again meanwhile). Returns
 * KETENBUS_OK or KETENBUS_ETIMEDOUT, nothing else: work of the poll that
 * fails meanwhile (see ketenbus_client_poll) does not end the wait, since
 * it is tried again and the receipts may still come; it is logged (level
 * 0, event=poll_failed) and, if the wait ends without all receipts, named
 * in ketenbus_last_error(). */
int ketenbus_client_flush(ketenbus_client_t *c, int timeout_ms);

/* Receipt of the last outbox entry that got one during poll (for scripts that
 * submit with timeout 0 and flush later); NULL if none yet. Borrowed: the
 * client writes the next receipt over it. Refusals for now are not
 * receipts and do not show here. */
const ketenbus_receipt_t *ketenbus_client_last_receipt(const ketenbus_client_t *c);

/* True once the broker has welcomed this client on the current connection.
 * A broker whose configuration no longer holds this agency, or this key,
 * refuses the client (ketenbus.ErrorCode ERROR_CODE_NOT_IN_CHAIN): that is
 * logged once (level 0, event=not_in_chain), and the client asks again
 * after 2 s, then twice as long each time up to 5 minutes, so that it
 * reconnects by itself once its key is back in force (event=back_in_chain).
 * Messages submitted meanwhile wait in the outbox. */
int ketenbus_client_is_connected(const ketenbus_client_t *c);

#ifdef __cplusplus
}
#endif
#endif
