/*
 * store.h - the broker's durable state in one LevelDB database.
 *
 * Key layout (all integers big-endian so keys sort in numeric order):
 *   q<agency>\0<seq:8>   queued delivery for agency, AES-256-GCM sealed QueueEntry
 *   c<agency>            queue depth of agency (u64), kept in the same batch as q
 *   d<sender>\0<id:16>   message ids accepted per sender (u64 audit index of "received")
 *   a<index:8>           AuditRecord, append-only
 *   k<size:8>            signed checkpoint note of the audit tree at that size
 *   t<level:1><index:8>  tile of the audit Merkle tree (lib/kb_merkle.h):
 *                        concatenated 32-byte hashes, width = length / 32
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

#include "kb_merkle.h"
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

/* Stage a put of any key in the batch (for modules that own a key range). */
int kb_batch_put(kb_batch_t *b, const void *k, size_t kl, const void *v, size_t vl);

/* ------------------------------------------------------------ Merkle tiles */

/* Copy the first width (1..KB_MERKLE_TILE_WIDTH) hashes of committed tile
 * (level, index) into buf. KB_ENOTFOUND if it is missing or narrower;
 * KB_EPROTO if the stored value is not a whole number of hashes or longer
 * than a full tile; KB_EIO; KB_EINVAL for a bad level or width. */
int kb_store_tile_get(kb_store_t *s, unsigned level, uint64_t index, size_t width, uint8_t *buf);

/* Stage tile (level, index) of width hashes, replacing the stored one. */
int kb_store_tile_put(kb_store_t *s, kb_batch_t *b, unsigned level, uint64_t index, const uint8_t *hashes,
                      size_t width);

/* The audit tree: leaf i is the packed AuditRecord stored at a<i>, byte
 * for byte, so the log needs no copy of its leaf hashes: the rightmost,
 * partial leaf tile is never stored but rehashed from its (at most 255)
 * records when the tree is loaded; full leaf tiles and every tile of the
 * higher levels are stored under t. An append thus stages one tile put
 * every 256 records (two every 65536, ...) next to its record instead of
 * rewriting a growing tile each time (which measured ~15 us per record,
 * against ~3 us). Consequences: leaves must be appended only through
 * kb_store_audit_log(), and pruning must keep the records from the last
 * full leaf tile on (the newest 255 at most).
 *
 * The binding of the tree to this store: its io reads committed tiles and
 * records, and stages tile puts in batch (which may be changed between
 * appends). Owned by the caller; it must outlive the tree. */
typedef struct {
    kb_store_t *store; /* tiles and records are read from here */
    kb_batch_t *batch; /* tile puts are staged here */
} kb_store_tiles_t;

/* The vtable for kb_merkle_new() (ctx = t). Open the tree with
 * kb_merkle_load(tree, kb_store_audit_size(store)); do so again after a
 * failed commit (with kb_store_reload()). */
kb_merkle_io_t kb_store_tiles_io(kb_store_tiles_t *t);

/* Stage audit record r as kb_store_audit_append() does and append the same
 * packed bytes to tree (bound to this store through a kb_store_tiles_t
 * whose batch is b): record and tree update are committed together. Sets
 * r->index and *index (may be NULL). KB_EINVAL if the tree's size is not
 * the log's (a tree out of step); the tree's errors. On failure no record
 * is staged and neither log nor tree changes (a tile the failed append
 * staged holds nothing a load at the log's size reads, and is put again
 * by the append that next fills it). */
int kb_store_audit_log(kb_store_t *s, kb_batch_t *b, kb_merkle_t *tree, Ketenbus__AuditRecord *r, uint64_t *index);

/* ------------------------------------------------------------ checkpoints */

/* Stage a signed checkpoint note for tree size `size` (key k<size:8>). */
int kb_store_checkpoint_put(kb_store_t *s, kb_batch_t *b, uint64_t size, const char *note, size_t len);

/* The checkpoint with the largest size: KB_OK with *note (NUL-terminated,
 * caller frees), or KB_ENOTFOUND when none was signed yet. */
int kb_store_checkpoint_latest(kb_store_t *s, uint64_t *size, char **note, size_t *len);

/* Visit every stored checkpoint in size order; fn returns non-zero to stop. */
typedef int (kb_checkpoint_fn)(uint64_t size, const char *note, size_t len, void *arg);
int kb_store_checkpoint_scan(kb_store_t *s, kb_checkpoint_fn *fn, void *arg);

#endif
