/*
 * audit_verify.h - `ketenbus audit verify`: check a broker's audit log on
 * the privacy officer's side, trusting nothing the broker or its disk says.
 *
 * With the broker's public signing key, verification
 *   1. checks the signature of every stored checkpoint (and of the ones an
 *      agency kept, given as files), all under one origin;
 *   2. reads every stored value in index order: each must be a record whose
 *      index field is its position (or a tombstone of a pruned record),
 *      with no gaps; it recomputes each leaf hash from the record's bytes
 *      (a tombstone gives its hash) and the tree root at every checkpoint
 *      size, which must equal the signed root;
 *   3. compares each leaf hash with the one stored in the broker's leaf
 *      tiles when it was appended (or signed, for the newest): those are
 *      authenticated when their own root equals a signed root, and then
 *      name the exact record that changed; without a match they still
 *      point at it;
 *   4. accepts tombstones only as a prefix [0, E) of the log declared by a
 *      PRUNED record that a verified checkpoint covers.
 * It fails for a changed byte in a record (leaf hash), a deleted record (a
 * gap, or a log shorter than a signed size), records swapped or moved
 * (index field, and the root), a note whose signature does not verify (a
 * forged checkpoint, e.g. over a rewritten tail), roots that disagree,
 * tombstones nobody declared, tombstones whose time (covered by no hash,
 * but what queries by time search) is out of the log's time order or not
 * older than the cut-off of the pruning that made them, records that
 * cannot be read or decoded (a damaged block: a failure at its first
 * record, where the pass stops), and a checkpoint note that the log's own
 * CHECKPOINT records say was signed but that is no longer stored; and names
 * the first record that does not match.
 *
 * Records after the latest signed checkpoint are not verified: no
 * signature covers them, and the newest of them (those past the last full
 * leaf tile) have no stored leaf hash either (broker/store.h). They are
 * reported (unverified, unverified_from), not failed: every log ends with
 * some, at least the CHECKPOINT record that follows each signing. A log
 * with records but no signed checkpoint at all fails (nothing is proven).
 *
 * Through a running broker, verification reads the log as it was when it
 * began: its size then (or the largest verified checkpoint, if larger)
 * bounds the records read, so that what the broker logs and signs
 * meanwhile is left to the next run rather than taken for a deleted note.
 * A run that fails while the broker pruned records is done again (a few
 * times at most): records it had yet to read may have become tombstones
 * declared past that size.
 */
#ifndef KB_AUDIT_VERIFY_H
#define KB_AUDIT_VERIFY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/evp.h>

#include "audit_source.h"
#include "kb_merkle.h"
#include "kb_note.h"

#define KB_VERIFY_MESSAGE_MAX  600u /* one line of outcome */
#define KB_VERIFY_FINDINGS_MAX 8u   /* findings kept beyond the first */

/* A checkpoint an agency kept (a note it saved earlier). */
typedef struct {
    const char *path;  /* where it was read from, for messages */
    const char *note;  /* its text */
    size_t len;        /* its length */
} kb_verify_kept_t;

/* What verification found. */
typedef struct {
    int ok;                          /* 1: everything a signed checkpoint covers verified (see unverified) */
    uint64_t size;                   /* records in the log */
    uint64_t checked;                /* records recomputed from their bytes under a signed root that agreed */
    uint64_t checkpoints;            /* checkpoint notes checked (stored and kept) */
    uint64_t checkpoints_ok;         /* of which verified */
    int has_first_bad;               /* 1: first_bad is set */
    uint64_t first_bad;              /* the first record that does not match */
    uint64_t pruned_first;           /* tombstones lie in [pruned_first, pruned_end) */
    uint64_t pruned_end;             /* equal to pruned_first when none */
    uint64_t pruned;                 /* how many (fewer than the range when kinds were pruned) */
    uint64_t unverified;             /* records after the last signed checkpoint: covered by none, not verified */
    uint64_t unverified_from;        /* the first of them (the last signed size) */
    int has_checkpoint;              /* 1: the latest verified checkpoint is below */
    uint64_t cp_size;                /* its tree size */
    uint8_t cp_root[KB_MERKLE_HASH_LEN]; /* its root */
    char *cp_note;                   /* its note (free with kb_verify_result_clear) */
    char origin[KB_NOTE_MAX_ORIGIN + 1];  /* the log's name */
    uint64_t kept_ok;                /* kept checkpoints the log extends */
    char message[KB_VERIFY_MESSAGE_MAX]; /* one line: what verified or what failed where */
    char findings[KB_VERIFY_FINDINGS_MAX][KB_VERIFY_MESSAGE_MAX]; /* every failure found, in order */
    size_t n_findings;               /* their number (at most KB_VERIFY_FINDINGS_MAX kept) */
} kb_verify_result_t;

/* Verify the log of src with the broker's Ed25519 public key pub. origin,
 * if not NULL, is the expected "ketenbus/<broker id>". progress, if not
 * NULL, gets a line per million records (and one when it verifies again).
 * KB_OK when verification ran (the outcome is in *out, ok or not; a
 * damaged store is an outcome); an error when it could not (the source
 * failed: kb_last_error()). */
int kb_audit_verify(kb_asrc_t *src, EVP_PKEY *pub, const char *origin, const kb_verify_kept_t *kept, size_t n_kept,
                    FILE *progress, kb_verify_result_t *out);

void kb_verify_result_clear(kb_verify_result_t *r);

#endif
