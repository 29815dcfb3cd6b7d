/*
 * sdk_internal.h - struct bodies of the adapter SDK (libketenbus).
 *
 * message.c owns ketenbus_msg_t, outbox.c the SDK's LevelDB state (unsent
 * submissions and acknowledged delivery ids), client.c the connection and
 * the protocol. None of this is visible through include/ketenbus.h.
 */
#ifndef KB_SDK_INTERNAL_H
#define KB_SDK_INTERNAL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "ketenbus.h"
#include "ketenbus.pb-c.h"

struct ketenbus_msg {
    Ketenbus__Envelope *env; /* the envelope (unpacked form, owned) */
    char id[37];             /* message id text, "" until numbered */
    uint64_t tag;            /* delivery tag, for received messages */
    int received;            /* 1 if it came from the broker */
};

/* Wrap an envelope (takes ownership); NULL on no memory (env is freed). */
ketenbus_msg_t *msg_wrap(Ketenbus__Envelope *env);

/* Refresh the cached id text from env->message_id. */
void msg_sync_id(ketenbus_msg_t *m);

/* ------------------------------------------------------------ outbox */

#define KB_OUTBOX_MAX_ENTRIES 1000000u /* refuse submissions beyond this backlog */

typedef struct {
    uint64_t seq;      /* outbox order */
    uint8_t id[16];    /* message id */
    uint8_t *bytes;    /* packed signed envelope (owned) */
    size_t len;        /* its length */
    uint8_t retry;     /* in memory only: refused for now, to be sent again */
} kb_outbox_entry_t;

typedef struct kb_outbox kb_outbox_t;

/* Open (creating) the state database in dir and load unsent entries. */
kb_outbox_t *kb_outbox_open(const char *dir);
void kb_outbox_destroy(kb_outbox_t **p);

/* Store a signed envelope durably (synced write) before it is sent. */
int kb_outbox_put(kb_outbox_t *o, const uint8_t id[16], const uint8_t *bytes, size_t len);

/* Store n signed envelopes (id, bytes, len of each; seq is ignored) with
 * one synced write, in order: all of them or, on error, none. */
int kb_outbox_put_batch(kb_outbox_t *o, const kb_outbox_entry_t *in, size_t n);

/* Forget an entry that got its receipt. KB_ENOTFOUND if unknown. */
int kb_outbox_remove(kb_outbox_t *o, const uint8_t id[16]);

/* Mark an entry the broker refused for now (REJECT_INTERNAL, "retry later")
 * to be sent again. Kept in memory only: after a restart every entry is sent
 * anyway. KB_ENOTFOUND if unknown. */
int kb_outbox_mark_retry(kb_outbox_t *o, const uint8_t id[16]);

/* Is entry i (0 <= i < size) marked for sending again? Clears the mark: the
 * caller is sending it. 0 for an index out of range. */
int kb_outbox_take_retry(kb_outbox_t *o, size_t i);

size_t kb_outbox_size(const kb_outbox_t *o);

/* Entry i in outbox order (0 <= i < size); borrowed. */
const kb_outbox_entry_t *kb_outbox_at(const kb_outbox_t *o, size_t i);

/* Index of the first entry whose seq is seq or later (size if none):
 * entries are in ascending seq order, whatever was removed. */
size_t kb_outbox_index_from(const kb_outbox_t *o, uint64_t seq);

/* A delivered message as the seen record knows it. The broker keeps
 * message ids per sender and senders may choose their ids, so the id alone
 * does not name a message: two agencies may send the same one. */
typedef struct {
    char sender[KB_AGENCY_ID_MAX + 1]; /* sending agency, NUL-terminated */
    uint8_t id[KB_ID_LEN];             /* message id */
} kb_seen_key_t;

/* Fill k with the sender and message id of a delivered envelope.
 * KB_EPROTO if the id is not 16 bytes or the sender is longer than
 * KB_AGENCY_ID_MAX (the broker delivers neither). */
int kb_outbox_seen_key(kb_seen_key_t *k, const Ketenbus__Envelope *e);

/* Has this delivery (sender and id) been acknowledged before? 0 also when
 * the record cannot be read: handing a message over twice is better than
 * dropping one. */
int kb_outbox_seen(kb_outbox_t *o, const kb_seen_key_t *k);

/* Record deliveries as acknowledged (one synced write). */
int kb_outbox_mark_seen(kb_outbox_t *o, const kb_seen_key_t *keys, size_t n);

/* Seen records are kept this long after twice the broker's message TTL
 * (kb_outbox_prune_seen), and deliveries older than that are refused
 * (kb_outbox_oldest_us). The record is dated by the agency's clock, the
 * expiry by the broker's, and
 * nothing bounds how far the two differ (the broker refuses only envelopes
 * dated minutes ahead of its clock); the broker also expires with a delay,
 * longer after it was down, and the agency's clock may be stepped (NTP, a
 * resumed virtual machine). A day covers all of these with room to spare,
 * and costs no more than a day's records. */
#define KB_SEEN_MARGIN_US  (86400LL * 1000000)
/* Longest TTL taken from a broker (100 years; the broker allows 10): a
 * larger one keeps everything, and sums with it cannot overflow. */
#define KB_SEEN_TTL_MAX_US (100LL * 365 * 86400 * 1000000)
/* A delivery created more than this after the agency's clock is refused
 * for now, as the broker refuses a submission so far ahead of its own
 * (KB_CLOCK_SKEW_US in broker/broker.h): a seen record is dated when the
 * message is acknowledged, and pruning by that date protects only if no
 * message it keeps out was created much later. */
#define KB_SEEN_AHEAD_US   (300LL * 1000000)

/* The broker told its message TTL (told_us; 0: not told, ignored). The
 * state remembers it with a synced write when it changed, and a longer TTL
 * told before stays in force until the messages queued under it have
 * expired (a reload may shorten the TTL, but not of what is queued).
 * KB_OK or KB_EIO. */
int kb_outbox_set_ttl(kb_outbox_t *o, uint64_t told_us, int64_t now_us);

/* How long after its acknowledgement, in us, a seen record must be kept at
 * now_us (before KB_SEEN_MARGIN_US); 0 if no broker ever told its TTL. */
int64_t kb_outbox_keep_us(const kb_outbox_t *o, int64_t now_us);

/* One step of a pass over the seen records: look at up to max of them
 * from where the last step stopped, and delete those acknowledged before
 * now_us - 2 * keep - KB_SEEN_MARGIN_US, legacy s<id:16> records, and
 * records this SDK does not write; the newest time of acknowledgement
 * deleted is remembered with them (kb_outbox_oldest_us). *removed is how
 * many went; *done is 1 when the pass reached the end (the next step
 * starts a new one). Nothing goes while kb_outbox_keep_us is 0. KB_OK,
 * KB_EIO or KB_ENOMEM. */
int kb_outbox_prune_seen(kb_outbox_t *o, int64_t now_us, size_t max, size_t *removed, int *done);

/* The earliest created time a delivery may have at now_us: a message
 * created before it may have been acknowledged here with its seen record
 * deleted since, so the duplicate filter could not tell a replay from a
 * first delivery. It is now_us - 2 * keep - KB_SEEN_MARGIN_US, and no
 * earlier than KB_SEEN_AHEAD_US after the newest acknowledgement
 * kb_outbox_prune_seen ever deleted: a longer TTL told later (by a broker
 * that was reloaded, or one that lies) does not bring deleted records
 * back. INT64_MIN while no broker ever told its TTL: nothing is deleted
 * then. */
int64_t kb_outbox_oldest_us(const kb_outbox_t *o, int64_t now_us);

/* ------------------------------------------------------------ sender keys (verify.c) */

typedef struct kb_sender_keys kb_sender_keys_t;

/* Public signing keys of the senders, read from dir as needed
 * (SENDER.sign.pub.pem; broker.sign.pub.pem for the broker's notices).
 * NULL on no memory. */
kb_sender_keys_t *kb_sender_keys_new(const char *dir);
void kb_sender_keys_destroy(kb_sender_keys_t **p);

/* The key directory's modification time (ns; 0 if it cannot be read): it
 * changes when a key file is added, removed or renamed into place. */
int64_t kb_sender_keys_stamp(const kb_sender_keys_t *k);

/* Check a delivered envelope as proto/SIGNING.md asks of a recipient: its
 * structure, that only the broker (broker_id, from WELCOME) sends notices
 * and nothing else, that it is meant for agency (its recipients name it,
 * or none are named), and its sender's signature over the header and every
 * visible field. KB_OK: it is what its sender wrote (less what is listed as
 * withheld). KB_EREJECTED: it cannot be genuine for agency whatever keys
 * are installed (a notice not from the broker, a message in the broker's
 * name that is not a notice, a sender called "broker" that is not the
 * broker, recipients that do not name agency). KB_EPROTO (malformed),
 * KB_ECRYPTO (not what the sender signed with the installed key),
 * KB_ENOTFOUND or KB_EIO (no readable key for its sender): refused, but a
 * newer ketenbus.proto or a key not yet installed here could make it pass.
 * The installed key is the one the sender's file holds at the call: a key
 * kept from an earlier call is used only while stat() shows its file
 * unchanged. The reason is in kb_last_error(). */
int kb_sender_keys_check(kb_sender_keys_t *k, const Ketenbus__Envelope *e, const char *broker_id, const char *agency);

/* ------------------------------------------------------------ quarantine (quarantine.c) */

/* Keep a delivery refused as not genuine in state_dir/quarantine (the
 * envelope, and why it was refused), synced, before it is acknowledged;
 * the path of the envelope's file into path (may be NULL). KB_OK, KB_EIO,
 * KB_ETOOBIG or KB_ENOMEM. */
int kb_quarantine_put(const char *state_dir, const Ketenbus__Envelope *e, const char *why, char *path,
                      size_t path_len);

/* The quarantine holds at most this many deliveries and bytes: beyond,
 * one that cannot be genuine is only logged and acknowledged, so that a
 * broker sending forgeries cannot fill the disk that also holds the
 * outbox. */
#define KB_QUARANTINE_MAX_ENTRIES 10000u
#define KB_QUARANTINE_MAX_BYTES   (1ull << 30)

/* What state_dir/quarantine holds: its .pb files into *entries, the bytes
 * of all its regular files into *bytes (no directory: 0 and 0). Read once
 * when a client starts; it keeps the count up to date itself. KB_OK or
 * KB_EIO. */
int kb_quarantine_usage(const char *state_dir, size_t *entries, uint64_t *bytes);

/* Bytes kb_quarantine_put() writes for e refused for why (about). */
uint64_t kb_quarantine_entry_bytes(const Ketenbus__Envelope *e, const char *why);

/* One quarantined delivery, as kb_quarantine_list() reads it. Its text
 * comes from the files, which hold what an attacker may have written:
 * make it safe before showing it. */
typedef struct {
    char file[PATH_MAX];          /* its .pb file */
    char refused[40];             /* when it was refused (UTC), "" if unknown */
    char reason[KB_ERROR_MAX + 64]; /* why, as the SDK wrote it */
    char sender[KB_AGENCY_ID_MAX + 1]; /* the envelope's sender, cut short; "" if none */
    char id[37];                  /* its message id, "" if none */
    int kind;                     /* its kind (ketenbus.Kind) */
    int readable;                 /* 1 if the .pb file holds an envelope */
    char problem[160];            /* "" or what is wrong with the entry's files */
} kb_quarantined_t;

/* Every delivery in state_dir/quarantine, the oldest refusal first, into
 * *out (*n entries; free() it). No directory: none, KB_OK. Only regular
 * files are read, and links are not followed; an entry whose files cannot
 * be read or decoded is listed with its problem. Each envelope is read and
 * freed in turn. KB_EIO (the directory cannot be read) or KB_ENOMEM. */
int kb_quarantine_list(const char *state_dir, kb_quarantined_t **out, size_t *n);

/* The envelope in a quarantine .pb file, as kb_quarantine_list() read it
 * (free with ketenbus__envelope__free_unpacked). KB_EIO or KB_EPROTO with
 * the reason in kb_last_error(), KB_ENOMEM. */
int kb_quarantine_read(const char *file, Ketenbus__Envelope **env);

/* s if it is an agency id (kb_agency_id_valid), else "unknown": a refused
 * envelope's sender may be anything, and goes into file names and log
 * lines. */
const char *kb_quarantine_safe_id(const char *s);

#endif
