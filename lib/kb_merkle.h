/*
 * kb_merkle.h - the append-only Merkle tree of the audit log.
 *
 * Hashing is that of RFC 6962 / RFC 9162 section 2.1, so any certificate
 * transparency style tool can check what the broker publishes:
 *   leaf hash  = SHA-256(0x00 || leaf bytes)
 *   node hash  = SHA-256(0x01 || left || right)
 *   empty tree = SHA-256("")
 * The tree of n leaves splits at k, the largest power of two below n; the
 * left part is the full tree of the first k leaves.
 *
 * Storage follows the tiles of C2SP tlog-tiles: the hashes of level 8*L of
 * the tree (level 0 = leaf hashes, level 8 = roots of full 256-leaf
 * subtrees, ...) are grouped 256 at a time; tile (L, k) holds the hashes
 * with index 256*k .. 256*k+255 of level 8*L, concatenated, and its width
 * (1..256) is its length divided by 32. Only the rightmost tile of each
 * level is ever partial; it grows by rewriting. Every other node of the
 * tree is recomputed from at most 128 hashes of one tile. A tile holds
 * hashes only, never leaf bytes, so old records can be dropped later while
 * the tree stays provable.
 *
 * A kb_merkle_t keeps the right edge in memory: the rightmost (partial)
 * tile of each level and the roots of the full subtrees that make up the
 * current size (one per set bit of the size, at most 64). Appending
 * therefore reads nothing; it hashes O(1) amortised nodes and hands the
 * changed tiles to the storage's put_tile, normally one call (the partial
 * leaf tile), one more every 256 leaves, and so on. Opening at size n
 * reads one tile per level (at most 8), never the whole log.
 *
 * Storage is a small vtable (kb_merkle_io_t) so the same code runs on the
 * broker's LevelDB (broker/store.h, staged in the caller's write batch, so a
 * record and its tree update are durable together) and on memory
 * (kb_merkle_mem_t, for tests, benchmarks and tools).
 *
 * Proofs and the verification functions follow RFC 9162 sections 2.1.3
 * and 2.1.4; proofs are arrays of 32-byte hashes, concatenated, deepest
 * first. The verification functions need no storage: they are what
 * `ketenbus audit verify` and the agencies' own tools use.
 *
 * Reads (leaf hashes, old roots, proofs) use the in-memory right edge and
 * get_tile. A storage that stages writes (LevelDB) returns only committed
 * tiles, so ask for proofs after committing what appends staged; asked too
 * early, a read fails with KB_ENOTFOUND, it never returns wrong hashes.
 *
 * A kb_merkle_t is not thread-safe; the pure functions are.
 */
#ifndef KB_MERKLE_H
#define KB_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define KB_MERKLE_HASH_LEN    32u  /* SHA-256 */
#define KB_MERKLE_TILE_HEIGHT 8u   /* tree levels per tile level */
#define KB_MERKLE_TILE_WIDTH  256u /* hashes in a full tile: 2^KB_MERKLE_TILE_HEIGHT */
#define KB_MERKLE_TILE_BYTES  (KB_MERKLE_TILE_WIDTH * KB_MERKLE_HASH_LEN)
#define KB_MERKLE_TILE_LEVELS 8u   /* tile levels needed for 2^64 leaves */
#define KB_MERKLE_MAX_HEIGHT  64u  /* a tree size is a uint64_t */
/* Longest proof: an inclusion proof has at most one hash per tree level
 * (64), a consistency proof at most one more. */
#define KB_MERKLE_MAX_PROOF   (KB_MERKLE_MAX_HEIGHT + 1u)
#define KB_MERKLE_PROOF_BYTES (KB_MERKLE_MAX_PROOF * KB_MERKLE_HASH_LEN)

/* ------------------------------------------------------------ hashing */

/* The leaf hash of len bytes of data (a SHA-256 context per call; see
 * kb_merkle_acc_leaf_hash for loops). KB_ECRYPTO if OpenSSL fails. */
int kb_merkle_leaf_hash(const void *data, size_t len, uint8_t out[KB_MERKLE_HASH_LEN]);

/* The interior node hash of two child hashes. KB_ECRYPTO. */
int kb_merkle_node_hash(const uint8_t left[KB_MERKLE_HASH_LEN], const uint8_t right[KB_MERKLE_HASH_LEN],
                        uint8_t out[KB_MERKLE_HASH_LEN]);

/* The root of the tree whose leaf hashes are the n concatenated hashes
 * (n may be 0: the empty tree). Uses O(log n) memory. KB_EINVAL (NULL
 * with n > 0), KB_ECRYPTO. */
int kb_merkle_root_from_hashes(const uint8_t *hashes, size_t n, uint8_t out[KB_MERKLE_HASH_LEN]);

/* ------------------------------------------------------------ accumulator */

/* The root of a stream of leaves without storing them (what `audit verify`
 * needs while it reads the log): about 2 KiB of state. */
typedef struct kb_merkle_acc kb_merkle_acc_t;

/* A new accumulator of size 0, or NULL (kb_last_error) if out of memory. */
kb_merkle_acc_t *kb_merkle_acc_new(void);
void kb_merkle_acc_destroy(kb_merkle_acc_t **p);

/* Add one leaf (its bytes, or its hash). KB_ETOOBIG at 2^64 - 1 leaves,
 * KB_ECRYPTO. */
int kb_merkle_acc_add(kb_merkle_acc_t *a, const void *data, size_t len);
int kb_merkle_acc_add_hash(kb_merkle_acc_t *a, const uint8_t leaf_hash[KB_MERKLE_HASH_LEN]);

/* The leaf hash of len bytes of data, as kb_merkle_leaf_hash, through a's
 * SHA-256 context (no allocation: for loops over many records); a's
 * leaves are unchanged. KB_EINVAL, KB_ECRYPTO. */
int kb_merkle_acc_leaf_hash(kb_merkle_acc_t *a, const void *data, size_t len, uint8_t out[KB_MERKLE_HASH_LEN]);

/* Make dst hold the leaves of src (its own SHA-256 context stays). */
void kb_merkle_acc_copy(kb_merkle_acc_t *dst, const kb_merkle_acc_t *src);

/* Leaves added so far. */
uint64_t kb_merkle_acc_size(const kb_merkle_acc_t *a);

/* The root of the leaves added so far. KB_ECRYPTO. */
int kb_merkle_acc_root(kb_merkle_acc_t *a, uint8_t out[KB_MERKLE_HASH_LEN]);

/* ------------------------------------------------------------ verification */

/* Check that leaf_hash is leaf index of the tree of size whose root is root,
 * given the inclusion proof (n_proof hashes, concatenated), as RFC 9162
 * section 2.1.3.2. KB_OK; KB_ECRYPTO if the proof does not lead to root
 * (detail in kb_last_error); KB_EINVAL for index >= size, NULL arguments or
 * n_proof > KB_MERKLE_MAX_PROOF. */
int kb_merkle_verify_inclusion(const uint8_t leaf_hash[KB_MERKLE_HASH_LEN], uint64_t index, uint64_t size,
                               const uint8_t *proof, size_t n_proof, const uint8_t root[KB_MERKLE_HASH_LEN]);

/* Check that the tree of size2 (root2) extends the tree of size1 (root1),
 * given the consistency proof, as RFC 9162 section 2.1.4.2. size1 == 0 and
 * size1 == size2 need an empty proof (and, for equal sizes, equal roots;
 * for size1 == 0, root1 is the empty tree's). KB_OK; KB_ECRYPTO if the
 * proof does not hold; KB_EINVAL for size1 > size2, NULL arguments or
 * n_proof > KB_MERKLE_MAX_PROOF. */
int kb_merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t *proof, size_t n_proof,
                                 const uint8_t root1[KB_MERKLE_HASH_LEN], const uint8_t root2[KB_MERKLE_HASH_LEN]);

/* ------------------------------------------------------------ storage */

/* Where a tree keeps its tiles. Levels are 0..KB_MERKLE_TILE_LEVELS-1. */
typedef struct {
    /* Copy the first width hashes (1..KB_MERKLE_TILE_WIDTH) of tile
     * (level, index) into buf. KB_OK; KB_ENOTFOUND if the tile is missing or
     * narrower; KB_EIO or KB_EPROTO (a stored tile whose length is no
     * multiple of 32 or over a full tile) for storage failures; with the
     * detail set by kb_error_set. */
    int (*get_tile)(void *ctx, unsigned level, uint64_t index, size_t width, uint8_t *buf);
    /* Store tile (level, index) as these width hashes, replacing what is
     * there (a partial tile is put again each time it grows). KB_OK or a
     * storage error, which the append that caused it returns. */
    int (*put_tile)(void *ctx, unsigned level, uint64_t index, const uint8_t *hashes, size_t width);
    void *ctx; /* passed to both, borrowed */
} kb_merkle_io_t;

/* ------------------------------------------------------------ the tree */

typedef struct kb_merkle kb_merkle_t;

/* A tree of size 0 on io (copied; io->ctx must outlive the tree). Reads
 * nothing; call kb_merkle_load() to continue a stored tree. NULL with
 * kb_last_error() if out of memory or OpenSSL fails. */
kb_merkle_t *kb_merkle_new(const kb_merkle_io_t *io);
void kb_merkle_destroy(kb_merkle_t **p);

/* Reset the tree to its stored state at size: reads the rightmost tile of
 * each level (at most KB_MERKLE_TILE_LEVELS reads) and rebuilds the right
 * edge. Also the way back after a failed commit: load the committed size.
 * On failure the tree is left at size 0. KB_ENOTFOUND (a tile is missing
 * or too narrow for size), KB_EIO, KB_EPROTO, KB_ECRYPTO. */
int kb_merkle_load(kb_merkle_t *t, uint64_t size);

/* Append a leaf (its bytes, or its leaf hash): sets *index (may be NULL) to
 * its position. The tiles it changes are put before it returns; if a put
 * fails the tree is unchanged and the error returned (KB_ETOOBIG at
 * 2^64 - 1 leaves, KB_ECRYPTO, or put_tile's code). */
int kb_merkle_append(kb_merkle_t *t, const void *data, size_t len, uint64_t *index);
int kb_merkle_append_hash(kb_merkle_t *t, const uint8_t leaf_hash[KB_MERKLE_HASH_LEN], uint64_t *index);

/* Number of leaves. */
uint64_t kb_merkle_size(const kb_merkle_t *t);

/* Root of the tree at its current size; reads nothing. KB_ECRYPTO. */
int kb_merkle_root(kb_merkle_t *t, uint8_t out[KB_MERKLE_HASH_LEN]);

/* Root of the tree as it was at size (<= kb_merkle_size). KB_EINVAL for a
 * larger size; read errors as for get_tile. */
int kb_merkle_root_at(kb_merkle_t *t, uint64_t size, uint8_t out[KB_MERKLE_HASH_LEN]);

/* Leaf hash of leaf index (< kb_merkle_size). KB_EINVAL; read errors. */
int kb_merkle_leaf(kb_merkle_t *t, uint64_t index, uint8_t out[KB_MERKLE_HASH_LEN]);

/* Inclusion proof of leaf index in the tree of size (index < size <=
 * kb_merkle_size): *n_proof hashes into proof. KB_EINVAL; read errors. */
int kb_merkle_inclusion_proof(kb_merkle_t *t, uint64_t index, uint64_t size, uint8_t proof[KB_MERKLE_PROOF_BYTES],
                              size_t *n_proof);

/* Consistency proof between sizes size1 <= size2 <= kb_merkle_size: empty
 * when size1 is 0 or equal to size2. KB_EINVAL; read errors. */
int kb_merkle_consistency_proof(kb_merkle_t *t, uint64_t size1, uint64_t size2, uint8_t proof[KB_MERKLE_PROOF_BYTES],
                                size_t *n_proof);

/* ------------------------------------------------------------ in memory */

/* Tiles in memory: tests, benchmarks, and tools that rebuild a tree from
 * exported records. Grows as tiles are put; counts the puts. */
typedef struct kb_merkle_mem kb_merkle_mem_t;

kb_merkle_mem_t *kb_merkle_mem_new(void);
void kb_merkle_mem_destroy(kb_merkle_mem_t **p);

/* The vtable of m (m must outlive every tree using it). */
kb_merkle_io_t kb_merkle_mem_io(kb_merkle_mem_t *m);

/* Number of put_tile calls so far. */
uint64_t kb_merkle_mem_puts(const kb_merkle_mem_t *m);

#endif
