/*
 * store.h - the broker's durable state in one LevelDB database.
 *
 * Key layout (all integers big-endian so keys sort in numeric order):
 *   q<agency>\0<seq:8>   queued delivery for agency, AES-256-GCM sealed QueueEntry
 *   c<agency>            queue depth of agency (u64), kept in the same batch as q
 *   d<sender>\0<id:16>   message ids accepted per sender (u64 audit index of "received")
 *   b<block:8>           audit records block * 16 to block * 16 + 15, append-only: each a
 *                        varint length and a packed AuditRecord or tombstone
 *                        (audit_block.h; one entry per 16 records, not per record)
 *   k<size:8>            signed checkpoint note of the audit tree at that size
 *   t<level:1><index:8>  tile of the audit Merkle tree (lib/kb_merkle.h):
 *                        concatenated 32-byte hashes, width = length / 32
 *   x<kind:1><value><last:8>  audit index postings (below)
 *   i                    version of the audit index (u64), written once it is complete
 *   p                    end of the pruned prefix of the audit log (u64)
 *   r<kind:1>            end of the range pruned of one kind of record (u64)
 * Queue keys are short-lived and audit keys permanent; different first bytes
 * keep them in separate key ranges so compaction of one does not rewrite the
 * other's tables more than needed.
 *
 * Writes are staged in a kb_batch_t and applied with kb_store_commit(); the
 * broker commits one synced batch per loop turn (group commit). Counters
 * (next queue sequence per agency, next audit index, depths) live in memory,
 * are found at open without scanning whole queues (a seek to the last key of
 * each prefix), and are read again by kb_store_reopen() if a commit fails.
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

/* Flags of kb_store_open_ex(). */
#define KB_STORE_NO_CREATE 1u /* no database in dir: fail (KB_ENOTFOUND) rather than make one */

/* As kb_store_open; key may be NULL for tools that read and prune the audit
 * log only (queue functions then fail with KB_ECRYPTO). A database another
 * process has open (a running broker) fails with KB_EIO, saying so. */
kb_store_t *kb_store_open_ex(const char *dir, const uint8_t key[32], unsigned flags);
void kb_store_destroy(kb_store_t **p);

/* A cache another module keeps with the store: auditq.c keeps the
 * candidates of the last subject query there, so that its next page goes
 * on where the last one ended. The store owns it: free_fn frees it when it
 * is replaced, when the store is destroyed, and whenever the audit log or
 * its index may change other than by appending (kb_store_reopen,
 * kb_store_audit_reindex, kb_store_audit_prune). kb_store_cache_set(s,
 * NULL, NULL) drops it. */
void *kb_store_cache(const kb_store_t *s);
void kb_store_cache_set(kb_store_t *s, void *cache, void (*free_fn)(void *));

/* After a failed write: close the database and open it again (never
 * creating one), then read the counters from disk; nothing written may be
 * in flight. On failure the store is unusable (only kb_store_destroy()
 * may follow). */
int kb_store_reopen(kb_store_t *s);

kb_batch_t *kb_batch_new(void);
void kb_batch_destroy(kb_batch_t **p);
void kb_batch_clear(kb_batch_t *b);
/* Number of operations staged. */
size_t kb_batch_size(const kb_batch_t *b);

/* Apply the batch (sync: fsync before returning) and clear it: the same
 * as kb_store_seal() then kb_store_write(). */
int kb_store_commit(kb_store_t *s, kb_batch_t *b, int sync);

/* Stage the queue counters (next sequence, depth) of every agency whose
 * queue changed since the last seal, once each with its current value, in
 * b. Queue puts and deletes mark their agency; a turn of hundreds of them
 * writes two counter keys per agency, not two per entry. The newest audit
 * block goes in too, if records joined it since the last seal. Call it from
 * the thread that stages, before handing b to another thread. */
void kb_store_seal(kb_store_t *s, kb_batch_t *b);

/* Write a sealed batch (sync: fsync before returning) and clear it. Reads
 * nothing of s but its database handle, so another thread may write while
 * the owner stages the next batch (LevelDB allows that). */
int kb_store_write(kb_store_t *s, kb_batch_t *b, int sync);

/* Stage a queue entry for agency; *seq is its delivery tag. */
int kb_store_queue_put(kb_store_t *s, kb_batch_t *b, const char *agency, const Ketenbus__QueueEntry *e,
                       uint64_t *seq);

/* Stage removal of (agency, seq). KB_ENOTFOUND if it is not queued. */
int kb_store_queue_del(kb_store_t *s, kb_batch_t *b, const char *agency, uint64_t seq);

/* Called for each entry by kb_store_queue_scan, with e NULL for one that
 * cannot be read (kb_last_error says why); return non-zero to stop. */
typedef int (kb_queue_fn)(uint64_t seq, Ketenbus__QueueEntry *e, void *arg);

/* Visit committed entries of agency with seq >= from, in order, at most max.
 * Entries are decrypted and unpacked; fn borrows them. An entry that fails
 * to decrypt or decode is passed to fn as NULL, so that the caller can move
 * past it, and KB_ECRYPTO is returned at the end (it stays in the queue:
 * never delivered, never silently lost). */
int kb_store_queue_scan(kb_store_t *s, const char *agency, uint64_t from, size_t max, kb_queue_fn *fn, void *arg);

/* Committed queue depth of agency (including staged changes). */
uint64_t kb_store_queue_depth(const kb_store_t *s, const char *agency);
/* The sequence the agency's next queue entry gets (0: none ever). */
uint64_t kb_store_queue_next(const kb_store_t *s, const char *agency);
/* The agencies whose queues hold entries (depth above 0, staged changes
 * included), configured or not, in no particular order: *agencies is an
 * array of *n ids in one allocation (ids included), the caller's to free()
 * (NULL when there are none). A copy, so the caller may stage queue
 * entries while it walks them. KB_ENOMEM. */
int kb_store_queue_agencies(const kb_store_t *s, char ***agencies, size_t *n);
/* How many queues the last open (or reopen) found with a stored depth of
 * 0 while entries were queued, and counted again (see store.c). */
size_t kb_store_queues_repaired(const kb_store_t *s);
/* How many audit records the last open moved from the layout of one entry
 * per record (a<index:8>) into blocks (audit_block.h); 0 once moved. */
uint64_t kb_store_audit_migrated(const kb_store_t *s);

/* Look up an accepted message id of sender: KB_OK with its audit index, or
 * KB_ENOTFOUND. */
int kb_store_seen_get(kb_store_t *s, const char *sender, const uint8_t id[16], uint64_t *audit_index);
int kb_store_seen_put(kb_store_t *s, kb_batch_t *b, const char *sender, const uint8_t id[16], uint64_t audit_index);

/* Stage an audit record; sets r->index and returns it through *index, and
 * raises r->time_us to the newest record's time if it is earlier (times
 * never go down along the log, also after a step back of the clock). The
 * record joins the newest block, which is staged in b when it holds 16
 * records and otherwise when the batch is sealed (kb_store_seal): stage
 * the records of one batch at a time, seal it, and after a failed write
 * read the log's end again (kb_store_reopen). */
int kb_store_audit_append(kb_store_t *s, kb_batch_t *b, Ketenbus__AuditRecord *r, uint64_t *index);

/* Number of audit records (the next index). */
uint64_t kb_store_audit_size(const kb_store_t *s);

/* Read audit record index (caller frees with protobuf_c_message_free_unpacked).
 * KB_ENOTFOUND if there is none or it was pruned; KB_EPROTO if it (or its
 * block) does not decode. */
int kb_store_audit_get(kb_store_t *s, uint64_t index, Ketenbus__AuditRecord **out);

/* The stored bytes of record index (a packed AuditRecord or a tombstone)
 * into *val (the caller frees it), *len. KB_ENOTFOUND, KB_EIO, KB_EPROTO
 * if its block does not decode. */
int kb_store_audit_raw(kb_store_t *s, uint64_t index, uint8_t **val, size_t *len);

/* Called by kb_store_audit_scan with the stored bytes of record index (a
 * packed AuditRecord or a tombstone); return non-zero to stop. */
typedef int (kb_audit_raw_fn)(uint64_t index, const uint8_t *val, size_t len, void *arg);

/* Visit the stored audit values with from <= index < end in index order, at
 * most max of them. A record missing from the log (which only tampering
 * causes) shows as a jump in index. KB_OK, KB_EIO, or KB_EPROTO for a block
 * that does not decode (naming its records). */
int kb_store_audit_scan(kb_store_t *s, uint64_t from, uint64_t end, size_t max, kb_audit_raw_fn *fn, void *arg);

/* The time of the first stored record at or after index: *time_us and
 * *found (its index). KB_ENOTFOUND if there is none, KB_EPROTO if it does
 * not decode, KB_EIO. Tombstones keep their record's time. */
int kb_store_audit_time(kb_store_t *s, uint64_t index, int64_t *time_us, uint64_t *found);

/* ------------------------------------------------------------ audit index
 *
 * kb_store_audit_log() indexes each record in the batch that stores it:
 *   kind 'm'  its message id (16 bytes)
 *   kind 's'  each of its subject keys (32 bytes), in buckets of 2^16 records,
 *             except on ROUTED and DELIVERED records, which always follow
 *             the RECEIVED record of their message (queries reach them
 *             through the message id; auditq.h)
 *   kind 'g'  its agency and its counterpart (id and a NUL), each once
 *   kind 'e'  its event (1 byte)
 * A batch collects the indices per (kind, value) in memory and
 * kb_store_commit() writes one key per (kind, value) that the batch touched:
 * x<kind><value><last index:8> -> the batch's indices of that value
 * (varint count, first index, then the gaps between them). Under load one
 * synced batch holds hundreds of records sharing a few agencies and events,
 * so the index costs about one LevelDB entry per message and subject rather
 * than four or five per record, and each entry is small; LevelDB's cost is
 * per entry (about 2 us each in large batches, more for random keys such as
 * subject keys). Keying by the last index lets a reader seek to the first
 * list that can hold an index >= from. Subject keys are random, and
 * random keys are what makes LevelDB's compaction expensive (measured:
 * about 6 us per random entry against 1-2 for keys that grow), so their
 * lists are keyed x s <bucket:4> <key> <last:8>, bucket = index >> 16:
 * new entries land in the newest bucket's small key range, and a query
 * seeks once per bucket (16 seeks per million records). Message ids are
 * UUIDv7, ordered by time, so theirs grow without buckets. Time needs no
 * index: records are appended in time order (see kb_store_audit_time).
 *
 * A store without the "i" key (made before the index existed) is indexed
 * when it is opened. */

/* The index kinds. */
#define KB_INDEX_MESSAGE 'm'
#define KB_INDEX_SUBJECT 's'
#define KB_INDEX_AGENCY  'g'
#define KB_INDEX_EVENT   'e'
#define KB_INDEX_VALUE_MAX 64u       /* longest indexed value; longer agency ids are not indexed */
#define KB_INDEX_BUCKET_BITS 16u     /* subject lists: one bucket per 2^16 records */
#define KB_INDEX_LIST_MAX  (1u << 20) /* indices in one stored list; a longer one is corrupt */

/* Called for each index of a posting walk; return non-zero to stop. */
typedef int (kb_posting_fn)(uint64_t index, void *arg);

/* Visit the indices in [from, end) of the records indexed under (kind,
 * value): ascending, except for subjects (ascending per bucket of 2^16
 * records only, since pruning adds anchors: kb_store_audit_prune). For an
 * agency value give the id without its NUL. KB_OK; KB_EPROTO for a corrupt
 * list; KB_EINVAL; KB_EIO. */
int kb_store_postings(kb_store_t *s, int kind, const void *value, size_t value_len, uint64_t from, uint64_t end,
                      kb_posting_fn *fn, void *arg);

/* Drop and rebuild the whole index from the records (a store from before
 * the index, or a damaged index). Commits as it goes. */
int kb_store_audit_reindex(kb_store_t *s);

/* ------------------------------------------------------------ pruning
 *
 * Retention removes the contents of old records but keeps the tree
 * provable: the value of a pruned record becomes a tombstone of
 * KB_AUDIT_TOMBSTONE_LEN bytes,
 *   0x00 'P' 0x02 <claim:1> <time_us:8> <pruned_us:8> <leaf hash:32>
 * (a protobuf message never starts with 0x00, so no record reads as a
 * tombstone or the other way round), holding the record's time (so the
 * log stays searchable by time), its leaf hash (so the tree can be
 * recomputed, and verified against the signed checkpoints, without it)
 * and its claim: which pruning made it, every kind (0xff) or one
 * Ketenbus__Kind. (Version 1, 51 bytes without the claim, came from
 * pruning every kind.) Its index entries are removed.
 *
 * A pruning looks at the records of a range [start, end) and takes those
 * of its kind, KB_PRUNE_ALL for every kind (`audit prune --before`), or
 * one Ketenbus__Kind, 0 for records of no kind: those about no message,
 * such as connections and rule loads, and refusals of envelopes whose
 * fields were not taken in (retention per kind). Each kind goes on from where its
 * last pruning ended (kb_store_audit_pruned_kind: "p" for every kind, "r"
 * <kind> for one), so tombstones may lie between kept records. CHECKPOINT
 * and PRUNED records, on which the verification of a pruned log rests,
 * are never pruned; nor are records outside full leaf tiles (the newest,
 * at most 255, which the tree rehashes on load). The caller logs a PRUNED
 * record with what kb_store_audit_prune() reports (kb_store_pruned_t):
 * `audit verify` checks that the tombstones of each claim in each range
 * are exactly those it declares. */

#define KB_AUDIT_TOMBSTONE_LEN 52u
#define KB_STORE_KINDS 6u   /* Ketenbus__Kind values 0..5 that a pruning may take */
#define KB_PRUNE_ALL  (-1)  /* "every kind" where a kind is asked for */

typedef struct {
    int64_t time_us;                        /* the pruned record's time */
    int64_t pruned_us;                      /* when it was pruned */
    uint8_t leaf_hash[KB_MERKLE_HASH_LEN];  /* its leaf hash in the audit tree */
    int claim;                              /* the kind whose pruning made it, or KB_PRUNE_ALL */
} kb_audit_tombstone_t;

/* Parse a stored value: KB_OK for a tombstone, KB_ENOTFOUND if the value
 * is not one (a record), KB_EPROTO if it starts like one but is malformed. */
int kb_audit_tombstone_parse(const uint8_t *val, size_t len, kb_audit_tombstone_t *t);

/* Where pruning every kind goes on from: no record below it but CHECKPOINT
 * and PRUNED records is kept. */
uint64_t kb_store_audit_pruned(const kb_store_t *s);

/* Where a pruning of kind (KB_PRUNE_ALL: of every kind) goes on from: no
 * record of that kind below it is kept. */
uint64_t kb_store_audit_pruned_kind(const kb_store_t *s, int kind);

/* What kb_store_audit_prune() did. */
typedef struct {
    uint64_t end;                                  /* the range looked at ends here */
    uint64_t count;                                /* records turned into tombstones */
    uint8_t indices_sha256[KB_MERKLE_HASH_LEN];    /* SHA-256 of their indices, be64 each, ascending */
} kb_store_pruned_t;

/* Stage the pruning of the records of kind (KB_PRUNE_ALL or a kind below
 * KB_STORE_KINDS) in [kb_store_audit_pruned_kind(s, kind), end), looking
 * at max records at most; *out (may be NULL) says where it stopped and
 * what it took. Each record's leaf hash is checked against its stored
 * leaf tile first: one that differs is not pruned (KB_ECRYPTO naming it:
 * the log was altered). A message whose subject-indexed records are
 * pruned while later ones of it stay gets its first remaining record
 * indexed under those subjects (an anchor), so queries by subject still
 * find what is kept. KB_EINVAL for another kind, or if end passes the
 * last full leaf tile (records staged but not yet written have no stored
 * leaf tile: KB_ENOTFOUND or KB_ECRYPTO); read errors. Nothing is staged
 * on failure. The caller appends the PRUNED audit record in the same
 * batch. One prune per batch: it rewrites blocks as they are on disk, so
 * a second one before the batch is written fails with KB_EINVAL. */
int kb_store_audit_prune(kb_store_t *s, kb_batch_t *b, int kind, uint64_t end, size_t max, int64_t now_us,
                         kb_store_pruned_t *out);

/* The leaf hashes stored in level-0 tiles for leaves [from, from + count):
 * full tiles, and the partial tile as the last checkpoint stored it
 * (checkpoint.c), never recomputed from records, so they are what the
 * broker hashed when it appended. *n gets how many were found (the run
 * stops at the first leaf no stored tile holds). KB_OK or read errors. */
int kb_store_leaf_hashes(kb_store_t *s, uint64_t from, size_t count, uint8_t *out, size_t *n);

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

/* The audit tree: leaf i is the packed AuditRecord stored as record i, byte
 * for byte, so the log needs no copy of its leaf hashes: the rightmost,
 * partial leaf tile is never stored but rehashed from its (at most 255)
 * records when the tree is loaded; full leaf tiles and every tile of the
 * higher levels are stored under t. An append thus stages one tile put
 * every 256 records (two every 65536, ...) next to its record instead of
 * rewriting a growing tile each time (which measured ~15 us per record,
 * against ~3 us). Consequences: leaves must be appended only through
 * kb_store_audit_log(), and pruning must keep the records from the last
 * full leaf tile on (the newest 255 at most). When the broker signs a
 * checkpoint it also stores the partial leaf tile as it is then
 * (checkpoint.c), once per checkpoint: a read of no more leaves than that
 * takes it instead of rehashing records, and `audit verify` uses it to
 * name an altered record among the newest ones.
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
 * failed commit (with kb_store_reopen()). */
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

/* The same from the first checkpoint of size >= from. */
int kb_store_checkpoint_scan_from(kb_store_t *s, uint64_t from, kb_checkpoint_fn *fn, void *arg);

#endif
