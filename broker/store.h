/*
 * store.h - the broker's durable state in one LevelDB database.
 *
 * Key layout (all integers big-endian so keys sort in numeric order):
 *   q<agency>\0<seq:8>   queued delivery for agency, AES-256-GCM sealed QueueEntry
 *   c<agency>            queue depth of agency (u64), kept in the same batch as q
 *   d<sender>\0<id:16>   message ids accepted per sender (u64 audit index of "received")
 *   a<index:8>           AuditRecord, append-only
 * Queue keys are short-lived and audit keys permanent; different first bytes
 * keep them in separate key ranges so compaction of one does not rewrite the
 * other's tables more than needed.
 *
 * Writes are staged in a kb_batch_t and applied with kb_store_commit(); the
 * broker commits one synced batch per loop turn (group commit). Counters
 * (next queue sequence per agency, next audit index, depths) live in memory,
 * are found at open without scanning whole queues (a seek to the last key of
 * each prefix), and are rolled back by kb_store_reload() if a commit fails.
 */
#ifndef KB_STORE_H
#define KB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ketenbus.pb-c.h"

typedef struct kb_store kb_store_t;
typedef struct kb_batch kb_batch_t;

/* Open (creating) the database in dir; key is the 32-byte storage key. */
kb_store_t *kb_store_open(const char *dir, const uint8_t key[32]);
void kb_store_destroy(kb_store_t **p);

/* Re-read the counters from disk (after a failed commit). */
int kb_store_reload(kb_store_t *s);

kb_batch_t *kb_batch_new(void);
void kb_batch_destroy(kb_batch_t **p);
void kb_batch_clear(kb_batch_t *b);
/* Number of operations staged. */
size_t kb_batch_size(const kb_batch_t *b);

/* Apply the batch (sync: fsync before returning) and clear it. */
int kb_store_commit(kb_store_t *s, kb_batch_t *b, int sync);

/* Stage a queue entry for agency; *seq is its delivery tag. */
int kb_store_queue_put(kb_store_t *s, kb_batch_t *b, const char *agency, const Ketenbus__QueueEntry *e,
                       uint64_t *seq);

/* Stage removal of (agency, seq). KB_ENOTFOUND if it is not queued. */
int kb_store_queue_del(kb_store_t *s, kb_batch_t *b, const char *agency, uint64_t seq);

/* Called for each entry by kb_store_queue_scan; return non-zero to stop. */
typedef int (kb_queue_fn)(uint64_t seq, Ketenbus__QueueEntry *e, void *arg);

/* Visit committed entries of agency with seq >= from, in order, at most max.
 * Entries are decrypted and unpacked; fn borrows them. An entry that fails
 * to decrypt or decode is reported through kb_last_error and skipped with
 * KB_ECRYPTO returned at the end (never delivered, never silently lost). */
int kb_store_queue_scan(kb_store_t *s, const char *agency, uint64_t from, size_t max, kb_queue_fn *fn, void *arg);

/* Committed queue depth of agency (including staged changes). */
uint64_t kb_store_queue_depth(const kb_store_t *s, const char *agency);

/* Look up an accepted message id of sender: KB_OK with its audit index, or
 * KB_ENOTFOUND. */
int kb_store_seen_get(kb_store_t *s, const char *sender, const uint8_t id[16], uint64_t *audit_index);
int kb_store_seen_put(kb_store_t *s, kb_batch_t *b, const char *sender, const uint8_t id[16], uint64_t audit_index);

/* Stage an audit record; sets r->index and returns it through *index. */
int kb_store_audit_append(kb_store_t *s, kb_batch_t *b, Ketenbus__AuditRecord *r, uint64_t *index);

/* Number of audit records (the next index). */
uint64_t kb_store_audit_size(const kb_store_t *s);

/* Read audit record index (caller frees with protobuf_c_message_free_unpacked). */
int kb_store_audit_get(kb_store_t *s, uint64_t index, Ketenbus__AuditRecord **out);

#endif
