/*
 * audit_source.h - where `ketenbus audit` reads a broker's audit log.
 *
 * Two implementations behind one interface:
 *   - the admin socket of a running broker (--data DIR, whose socket is
 *     DIR/admin.sock, or --admin ENDPOINT): LevelDB lets only one process
 *     open a database, so while the broker runs, it answers (admin_audit.c);
 *   - the store itself (--offline with --data DIR or a --config chain
 *     file naming data_dir): a stopped broker's data directory, opened
 *     without the storage key (audit records are not encrypted; queued
 *     messages stay out of reach).
 * Both hand out the same things: the stored bytes of records (records and
 * tombstones, never re-encoded, so verification checks what is on disk),
 * query pages (broker/auditq.h), stored leaf hashes, checkpoint notes,
 * proofs, and pruning. Verification (audit_verify.c) trusts none of what
 * it gets: it recomputes and checks signatures itself.
 */
#ifndef KB_AUDIT_SOURCE_H
#define KB_AUDIT_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "auditq.h"
#include "kb_merkle.h"
#include "store.h"

#define KB_ASRC_ID_MAX 64u /* broker id bytes */
#define KB_ASRC_END UINT64_MAX /* the end of kb_asrc_records(): wherever the log ends */

typedef struct kb_asrc kb_asrc_t;

/* How to reach the log; from the command line. */
typedef struct {
    const char *data;    /* --data DIR: the broker's data directory */
    const char *admin;   /* --admin ENDPOINT: its admin socket */
    const char *config;  /* --config FILE: chain file (data_dir, broker id, key_dir) */
    int offline;         /* 1: open the store (the broker must be stopped) */
} kb_asrc_opts_t;

/* What the log is: sizes, name, latest checkpoint. */
typedef struct {
    uint64_t size;                 /* records in the log */
    uint64_t pruned;               /* records below this index were pruned */
    uint64_t pruned_kind[KB_STORE_KINDS]; /* per Ketenbus__Kind (0: about no message): no record of
                                    * that kind below this index is kept (retention per kind) */
    char broker_id[KB_ASRC_ID_MAX + 1]; /* from the config, the broker, or the latest note's origin */
    int has_checkpoint;            /* 1: cp_* are set */
    uint64_t cp_size;              /* tree size of the latest checkpoint */
    char *cp_note;                 /* its note (the caller frees with kb_asrc_info_clear) */
    size_t cp_len;                 /* its length */
} kb_asrc_info_t;

/* Open per o: the admin socket unless o->offline. NULL with kb_last_error()
 * (no directory or endpoint given, store in use or missing, bad config). */
kb_asrc_t *kb_asrc_open(const kb_asrc_opts_t *o);
void kb_asrc_destroy(kb_asrc_t **p);

/* 1 when reading the store directly. */
int kb_asrc_is_offline(const kb_asrc_t *a);

/* The key directory of the chain file, if one was given (else NULL). */
const char *kb_asrc_key_dir(const kb_asrc_t *a);

int kb_asrc_info(kb_asrc_t *a, kb_asrc_info_t *info);
void kb_asrc_info_clear(kb_asrc_info_t *info);

/* Called per record with its stored bytes (borrowed); non-zero stops. */
typedef int (kb_asrc_record_fn)(uint64_t index, const uint8_t *raw, size_t len, void *arg);

/* One page of a query from index from, at most limit matches: *next and
 * *done as in kb_auditq_page_t. */
int kb_asrc_query(kb_asrc_t *a, const kb_auditq_filter_t *f, uint64_t from, size_t limit, kb_asrc_record_fn *fn,
                  void *arg, uint64_t *next, int *done);

/* Stored values of records [from, end) (end KB_ASRC_END: to the end of
 * the log), at most count, in index order (gaps show as jumps); *next and
 * *done (no stored record at or after next, below end). A running broker
 * goes on logging: end keeps a pass to the records there were when it
 * began (audit verify). */
int kb_asrc_records(kb_asrc_t *a, uint64_t from, uint64_t end, size_t count, kb_asrc_record_fn *fn, void *arg,
                    uint64_t *next, int *done);

/* Whether rc, from one of the reads below, means that the stored log
 * could not be read or decoded (a damaged block, a malformed value, a
 * LevelDB read error, or the broker answering with such an error), rather
 * than that the source failed (no answer, out of memory). */
int kb_asrc_is_damage(int rc);

/* Stored leaf hashes (kb_store_leaf_hashes) of [from, from + count) into
 * out; *n found. */
int kb_asrc_leaves(kb_asrc_t *a, uint64_t from, size_t count, uint8_t *out, size_t *n);

/* Every stored checkpoint note in size order; fn non-zero stops. */
typedef int (kb_asrc_cp_fn)(uint64_t size, const char *note, size_t len, void *arg);
int kb_asrc_checkpoints(kb_asrc_t *a, kb_asrc_cp_fn *fn, void *arg);

/* The broker's leaf hash of index and its inclusion proof in the tree of
 * size (n hashes into proof). */
int kb_asrc_proof(kb_asrc_t *a, uint64_t index, uint64_t size, uint8_t leaf[KB_MERKLE_HASH_LEN],
                  uint8_t proof[KB_MERKLE_PROOF_BYTES], size_t *n);

/* Consistency proof between tree sizes from <= to. */
int kb_asrc_consistency(kb_asrc_t *a, uint64_t from, uint64_t to, uint8_t proof[KB_MERKLE_PROOF_BYTES], size_t *n);

/* Prune one chunk of records older than before_us (kb_auditq_prune): all
 * of them (kind KB_PRUNE_ALL) or those of one Ketenbus__Kind, on behalf of
 * who; with a signed checkpoint before and after. Offline this
 * needs the chain file (--config): the broker's signing key signs them,
 * only over a log that extends the latest signed checkpoint (KB_EIO for
 * fewer records than it covers, KB_ECRYPTO for a note not by that key or
 * another root at its size: nothing is signed or pruned).
 * KB_OK with *out; KB_ECONFIG without a key offline; errors. */
int kb_asrc_prune(kb_asrc_t *a, int kind, int64_t before_us, const char *who, kb_auditq_prune_t *out);

#endif
