/*
 * kb_merkle.c - RFC 9162 Merkle tree over tiles (see kb_merkle.h).
 *
 * Invariants of a kb_merkle_t of size n:
 *   - edge.full[h] is the root of the full subtree of height h that ends
 *     the decomposition of n into powers of two, for every set bit h of n;
 *   - rows[L] holds the first (n >> 8L) % 256 hashes of tile
 *     (L, n >> (8L + 8)), the rightmost tile of level L, exactly as put.
 * Every other hash is read through io.get_tile. An append only writes past
 * the valid end of rows[] and edge.full[] until all its tiles are put, so
 * a failed put leaves the tree as it was.
 *
 * SHA-256 runs through one EVP_MD, fetched once per process (a fetch
 * takes a lock and a lookup in the provider's method store: on every hash
 * it cost more than hashing a record), and one reused EVP_MD_CTX per
 * object (or per call of a pure function). Loops hashing many leaves use
 * an accumulator's context (kb_merkle_acc_leaf_hash) rather than
 * kb_merkle_leaf_hash, which makes a context per call.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "kb_error.h"
#include "kb_merkle.h"

#define HLEN KB_MERKLE_HASH_LEN

static const uint8_t s_leaf_prefix = 0x00; /* RFC 9162: leaf hash domain */
static const uint8_t s_node_prefix = 0x01; /* RFC 9162: interior node domain */

/* ------------------------------------------------------------ hashing */

typedef struct {
    EVP_MD *md;      /* SHA-256, fetched once */
    EVP_MD_CTX *ctx; /* reused for every hash */
} s_hasher_t;

static pthread_once_t s_md_once = PTHREAD_ONCE_INIT;
static EVP_MD *s_md; /* SHA-256 of the default library context, fetched once, kept to exit */

static void s_md_fetch(void)
{
    s_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int s_hasher_init(s_hasher_t *h)
{
    h->md = NULL;
    if (pthread_once(&s_md_once, s_md_fetch) == 0 && s_md && EVP_MD_up_ref(s_md) == 1)
        h->md = s_md;
    h->ctx = EVP_MD_CTX_new();
    if (!h->md || !h->ctx) {
        EVP_MD_free(h->md);
        EVP_MD_CTX_free(h->ctx);
        h->md = NULL;
        h->ctx = NULL;
        return kb_error_ssl(KB_ECRYPTO, "merkle: SHA-256 unavailable");
    }
    return KB_OK;
}

static void s_hasher_fini(s_hasher_t *h)
{
    EVP_MD_CTX_free(h->ctx);
    EVP_MD_free(h->md);
    h->ctx = NULL;
    h->md = NULL;
}

/* SHA-256(prefix || a || b), b may be NULL; prefix < 0 means none */
static int s_hash(s_hasher_t *h, int prefix, const void *a, size_t a_len, const void *b, size_t b_len,
                  uint8_t out[HLEN])
{
    unsigned int out_len = 0;
    const uint8_t *p = prefix == 0 ? &s_leaf_prefix : &s_node_prefix;
    if (EVP_DigestInit_ex2(h->ctx, h->md, NULL) != 1 || (prefix >= 0 && EVP_DigestUpdate(h->ctx, p, 1) != 1) ||
        (a_len && EVP_DigestUpdate(h->ctx, a, a_len) != 1) || (b_len && EVP_DigestUpdate(h->ctx, b, b_len) != 1) ||
        EVP_DigestFinal_ex(h->ctx, out, &out_len) != 1 || out_len != HLEN)
        return kb_error_ssl(KB_ECRYPTO, "merkle: SHA-256 failed");
    return KB_OK;
}

static int s_leaf(s_hasher_t *h, const void *data, size_t len, uint8_t out[HLEN])
{
    return s_hash(h, 0, data, len, NULL, 0, out);
}

static int s_node(s_hasher_t *h, const uint8_t *left, const uint8_t *right, uint8_t out[HLEN])
{
    return s_hash(h, 1, left, HLEN, right, HLEN, out);
}

static int s_empty(s_hasher_t *h, uint8_t out[HLEN])
{
    return s_hash(h, -1, NULL, 0, NULL, 0, out);
}

/* Root of count (a power of two, 1..KB_MERKLE_TILE_WIDTH/2) consecutive
 * hashes: the full subtree they are the bottom row of. */
static int s_row_root(s_hasher_t *h, const uint8_t *row, size_t count, uint8_t out[HLEN])
{
    uint8_t work[KB_MERKLE_TILE_WIDTH / 4][HLEN]; /* count/2 hashes after the first pass */
    if (count == 1) {
        memcpy(out, row, HLEN);
        return KB_OK;
    }
    int rc = KB_OK;
    for (size_t i = 0; i < count / 2 && rc == KB_OK; i++)
        rc = s_node(h, row + 2 * i * HLEN, row + (2 * i + 1) * HLEN, work[i]);
    for (count /= 2; count > 1 && rc == KB_OK; count /= 2)
        for (size_t i = 0; i < count / 2 && rc == KB_OK; i++)
            rc = s_node(h, work[2 * i], work[2 * i + 1], work[i]);
    if (rc == KB_OK)
        memcpy(out, work[0], HLEN);
    return rc;
}

/* x >> s for s up to 64 (a plain shift by 64 is undefined) */
static uint64_t s_shr(uint64_t x, unsigned s)
{
    return s >= 64 ? 0 : x >> s;
}

/* The largest power of two strictly below n (n >= 2). */
static uint64_t s_split(uint64_t n)
{
    return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

/* ------------------------------------------------------------ right edge */

typedef struct {
    uint64_t size;                                  /* leaves */
    uint8_t full[KB_MERKLE_MAX_HEIGHT][HLEN];       /* full[h]: subtree of height h, valid for set bits h of size */
} s_edge_t;

static int s_edge_root(s_hasher_t *h, const s_edge_t *e, uint8_t out[HLEN])
{
    if (e->size == 0)
        return s_empty(h, out);
    unsigned low = (unsigned)__builtin_ctzll(e->size);
    uint8_t r[HLEN];
    memcpy(r, e->full[low], HLEN);
    for (unsigned b = low + 1; b < KB_MERKLE_MAX_HEIGHT; b++) {
        if (!((e->size >> b) & 1))
            continue;
        int rc = s_node(h, e->full[b], r, r);
        if (rc != KB_OK)
            return rc;
    }
    memcpy(out, r, HLEN);
    return KB_OK;
}

/* Merge a new leaf hash into the edge (the accumulator's append). */
static int s_edge_add(s_hasher_t *h, s_edge_t *e, const uint8_t leaf[HLEN])
{
    if (e->size == UINT64_MAX)
        return kb_error_set(KB_ETOOBIG, "merkle: tree is full");
    uint8_t cur[HLEN];
    memcpy(cur, leaf, HLEN);
    unsigned height = 0;
    for (; (e->size >> height) & 1; height++) {
        int rc = s_node(h, e->full[height], cur, cur);
        if (rc != KB_OK)
            return rc;
    }
    memcpy(e->full[height], cur, HLEN);
    e->size++;
    return KB_OK;
}

/* ------------------------------------------------------------ pure functions */

int kb_merkle_leaf_hash(const void *data, size_t len, uint8_t out[KB_MERKLE_HASH_LEN])
{
    if ((!data && len) || !out)
        return kb_error_set(KB_EINVAL, "merkle: NULL argument");
    s_hasher_t h;
    int rc = s_hasher_init(&h);
    if (rc == KB_OK)
        rc = s_leaf(&h, data, len, out);
    s_hasher_fini(&h);
    return rc;
}

int kb_merkle_node_hash(const uint8_t left[KB_MERKLE_HASH_LEN], const uint8_t right[KB_MERKLE_HASH_LEN],
                        uint8_t out[KB_MERKLE_HASH_LEN])
{
    if (!left || !right || !out)
        return kb_error_set(KB_EINVAL, "merkle: NULL argument");
    s_hasher_t h;
    int rc = s_hasher_init(&h);
    if (rc == KB_OK)
        rc = s_node(&h, left, right, out);
    s_hasher_fini(&h);
    return rc;
}

int kb_merkle_root_from_hashes(const uint8_t *hashes, size_t n, uint8_t out[KB_MERKLE_HASH_LEN])
{
    if ((!hashes && n) || !out)
        return kb_error_set(KB_EINVAL, "merkle: NULL argument");
    s_hasher_t h;
    int rc = s_hasher_init(&h);
    if (rc != KB_OK)
        return rc;
    s_edge_t *e = malloc(sizeof *e);
    if (!e) {
        s_hasher_fini(&h);
        return kb_error_set(KB_ENOMEM, "merkle: out of memory");
    }
    e->size = 0;
    for (size_t i = 0; i < n && rc == KB_OK; i++)
        rc = s_edge_add(&h, e, hashes + i * HLEN);
    if (rc == KB_OK)
        rc = s_edge_root(&h, e, out);
    free(e);
    s_hasher_fini(&h);
    return rc;
}

/* ------------------------------------------------------------ accumulator */

struct kb_merkle_acc {
    s_hasher_t hs; /* SHA-256 state */
    s_edge_t edge; /* roots of the full subtrees so far */
};

kb_merkle_acc_t *kb_merkle_acc_new(void)
{
    kb_merkle_acc_t *a = calloc(1, sizeof *a);
    if (!a) {
        kb_error_set(KB_ENOMEM, "merkle: out of memory");
        return NULL;
    }
    if (s_hasher_init(&a->hs) != KB_OK) {
        kb_merkle_acc_destroy(&a);
        return NULL;
    }
    return a;
}

void kb_merkle_acc_destroy(kb_merkle_acc_t **p)
{
    if (!p || !*p)
        return;
    s_hasher_fini(&(*p)->hs);
    free(*p);
    *p = NULL;
}

int kb_merkle_acc_add(kb_merkle_acc_t *a, const void *data, size_t len)
{
    if (!data && len)
        return kb_error_set(KB_EINVAL, "merkle: NULL argument");
    uint8_t leaf[HLEN];
    int rc = s_leaf(&a->hs, data, len, leaf);
    return rc != KB_OK ? rc : s_edge_add(&a->hs, &a->edge, leaf);
}

int kb_merkle_acc_leaf_hash(kb_merkle_acc_t *a, const void *data, size_t len, uint8_t out[KB_MERKLE_HASH_LEN])
{
    if ((!data && len) || !out)
        return kb_error_set(KB_EINVAL, "merkle: NULL argument");
    return s_leaf(&a->hs, data, len, out);
}

void kb_merkle_acc_copy(kb_merkle_acc_t *dst, const kb_merkle_acc_t *src)
{
    /* only the subtrees that are set matter; copying the whole edge keeps it simple */
    dst->edge = src->edge;
}

int kb_merkle_acc_add_hash(kb_merkle_acc_t *a, const uint8_t leaf_hash[KB_MERKLE_HASH_LEN])
{
    return s_edge_add(&a->hs, &a->edge, leaf_hash);
}

uint64_t kb_merkle_acc_size(const kb_merkle_acc_t *a)
{
    return a->edge.size;
}

int kb_merkle_acc_root(kb_merkle_acc_t *a, uint8_t out[KB_MERKLE_HASH_LEN])
{
    return s_edge_root(&a->hs, &a->edge, out);
}

/* ------------------------------------------------------------ verification */

static int s_mismatch(const char *what)
{
    return kb_error_set(KB_ECRYPTO, "merkle: %s", what);
}

int kb_merkle_verify_inclusion(const uint8_t leaf_hash[KB_MERKLE_HASH_LEN], uint64_t index, uint64_t size,
                               const uint8_t *proof, size_t n_proof, const uint8_t root[KB_MERKLE_HASH_LEN])
{
    if (!leaf_hash || !root || (!proof && n_proof))
        return kb_error_set(KB_EINVAL, "merkle: NULL argument");
    if (index >= size)
        return kb_error_set(KB_EINVAL, "merkle: leaf %llu is not in a tree of size %llu", (unsigned long long)index,
                            (unsigned long long)size);
    if (n_proof > KB_MERKLE_MAX_PROOF)
        return kb_error_set(KB_EINVAL, "merkle: proof of %zu hashes is too long", n_proof);
    s_hasher_t h;
    int rc = s_hasher_init(&h);
    if (rc != KB_OK)
        return rc;
    /* fn walks up from the leaf, sn from the last leaf; where fn is a left
     * child with a right sibling the proof hash goes right, else left */
    uint64_t fn = index, sn = size - 1;
    uint8_t r[HLEN];
    memcpy(r, leaf_hash, HLEN);
    for (size_t i = 0; i < n_proof && rc == KB_OK; i++) {
        const uint8_t *p = proof + i * HLEN;
        if (sn == 0) {
            rc = s_mismatch("inclusion proof is too long");
            break;
        }
        if ((fn & 1) || fn == sn) {
            rc = s_node(&h, p, r, r);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            rc = s_node(&h, r, p, r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    s_hasher_fini(&h);
    if (rc != KB_OK)
        return rc;
    if (sn != 0)
        return s_mismatch("inclusion proof is too short");
    if (memcmp(r, root, HLEN) != 0)
        return s_mismatch("inclusion proof does not lead to the root");
    return KB_OK;
}

int kb_merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t *proof, size_t n_proof,
                                 const uint8_t root1[KB_MERKLE_HASH_LEN], const uint8_t root2[KB_MERKLE_HASH_LEN])
{
    if (!root1 || !root2 || (!proof && n_proof))
        return kb_error_set(KB_EINVAL, "merkle: NULL argument");
    if (size1 > size2)
        return kb_error_set(KB_EINVAL, "merkle: size %llu is larger than size %llu", (unsigned long long)size1,
                            (unsigned long long)size2);
    if (n_proof > KB_MERKLE_MAX_PROOF)
        return kb_error_set(KB_EINVAL, "merkle: proof of %zu hashes is too long", n_proof);
    s_hasher_t h;
    int rc = s_hasher_init(&h);
    if (rc != KB_OK)
        return rc;
    uint8_t fr[HLEN], sr[HLEN];
    if (size1 == 0 || size1 == size2) {
        /* nothing to prove beyond the roots themselves */
        if (n_proof != 0)
            rc = s_mismatch("consistency proof must be empty");
        else if (size1 == 0 && (rc = s_empty(&h, fr)) == KB_OK && memcmp(fr, root1, HLEN) != 0)
            rc = s_mismatch("root of size 0 is not the empty tree's");
        else if (rc == KB_OK && size1 == size2 && memcmp(root1, root2, HLEN) != 0)
            rc = s_mismatch("roots of equal sizes differ");
        s_hasher_fini(&h);
        return rc;
    }
    if (n_proof == 0) {
        s_hasher_fini(&h);
        return s_mismatch("consistency proof is empty");
    }
    /* when size1 is a power of two its root is a node of the proof path
     * that the proof leaves out */
    int first_given = (size1 & (size1 - 1)) == 0;
    const uint8_t *first = first_given ? root1 : proof;
    size_t next = first_given ? 0 : 1;
    uint64_t fn = size1 - 1, sn = size2 - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    memcpy(fr, first, HLEN);
    memcpy(sr, first, HLEN);
    for (size_t i = next; i < n_proof && rc == KB_OK; i++) {
        const uint8_t *c = proof + i * HLEN;
        if (sn == 0) {
            rc = s_mismatch("consistency proof is too long");
            break;
        }
        if ((fn & 1) || fn == sn) {
            rc = s_node(&h, c, fr, fr);
            if (rc == KB_OK)
                rc = s_node(&h, c, sr, sr);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            rc = s_node(&h, sr, c, sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    s_hasher_fini(&h);
    if (rc != KB_OK)
        return rc;
    if (sn != 0)
        return s_mismatch("consistency proof is too short");
    if (memcmp(fr, root1, HLEN) != 0)
        return s_mismatch("consistency proof does not lead to the first root");
    if (memcmp(sr, root2, HLEN) != 0)
        return s_mismatch("consistency proof does not lead to the second root");
    return KB_OK;
}

/* ------------------------------------------------------------ the tree */

struct kb_merkle {
    kb_merkle_io_t io;                                           /* tile storage */
    s_hasher_t hs;                                               /* SHA-256 state */
    s_edge_t edge;                                               /* size and full-subtree roots */
    uint8_t rows[KB_MERKLE_TILE_LEVELS][KB_MERKLE_TILE_BYTES];   /* rightmost tile of each level */
    uint8_t scratch[KB_MERKLE_TILE_BYTES];                       /* a tile read through io */
};

/* Width and index of the rightmost tile of level at size n. */
static size_t s_row_width(uint64_t n, unsigned level)
{
    return (size_t)((n >> (KB_MERKLE_TILE_HEIGHT * level)) % KB_MERKLE_TILE_WIDTH);
}

static uint64_t s_row_tile(uint64_t n, unsigned level)
{
    return s_shr(n, KB_MERKLE_TILE_HEIGHT * (level + 1));
}

kb_merkle_t *kb_merkle_new(const kb_merkle_io_t *io)
{
    if (!io || !io->get_tile || !io->put_tile) {
        kb_error_set(KB_EINVAL, "merkle: no storage");
        return NULL;
    }
    kb_merkle_t *t = calloc(1, sizeof *t);
    if (!t) {
        kb_error_set(KB_ENOMEM, "merkle: out of memory");
        return NULL;
    }
    t->io = *io;
    if (s_hasher_init(&t->hs) != KB_OK) {
        kb_merkle_destroy(&t);
        return NULL;
    }
    return t;
}

void kb_merkle_destroy(kb_merkle_t **p)
{
    if (!p || !*p)
        return;
    s_hasher_fini(&(*p)->hs);
    free(*p);
    *p = NULL;
}

static int s_get_tile(kb_merkle_t *t, unsigned level, uint64_t index, size_t width, uint8_t *buf)
{
    int rc = t->io.get_tile(t->io.ctx, level, index, width, buf);
    if (rc != KB_OK)
        return kb_error_wrap(rc, "merkle: reading %zu hashes of tile %u/%llu", width, level, (unsigned long long)index);
    return KB_OK;
}

int kb_merkle_load(kb_merkle_t *t, uint64_t size)
{
    t->edge.size = 0;
    for (unsigned level = 0; level < KB_MERKLE_TILE_LEVELS; level++) {
        unsigned shift = KB_MERKLE_TILE_HEIGHT * level;
        if ((size >> shift) == 0)
            break;
        size_t width = s_row_width(size, level);
        if (width == 0)
            continue;
        int rc = s_get_tile(t, level, s_row_tile(size, level), width, t->rows[level]);
        if (rc != KB_OK)
            return rc;
        /* the set bits of width are the full subtrees of heights shift..shift+7 */
        size_t offset = 0;
        for (unsigned j = KB_MERKLE_TILE_HEIGHT; j-- > 0;) {
            size_t count = (size_t)1 << j;
            if (!(width & count))
                continue;
            rc = s_row_root(&t->hs, t->rows[level] + offset * HLEN, count, t->edge.full[shift + j]);
            if (rc != KB_OK)
                return rc;
            offset += count;
        }
    }
    t->edge.size = size;
    return KB_OK;
}

/* Put h, a leaf hash or the root of a full subtree of height 8*level that
 * leaf n (the size before the append) completes, at the end of level's
 * rightmost tile (index n >> 8*level of that level) and put the tile. */
static int s_row_put(kb_merkle_t *t, unsigned level, uint64_t n, const uint8_t h[HLEN])
{
    size_t width = s_row_width(n, level);
    memcpy(t->rows[level] + width * HLEN, h, HLEN);
    int rc = t->io.put_tile(t->io.ctx, level, s_row_tile(n, level), t->rows[level], width + 1);
    if (rc != KB_OK)
        return kb_error_wrap(rc, "merkle: put tile %u/%llu", level, (unsigned long long)s_row_tile(n, level));
    return KB_OK;
}

int kb_merkle_append_hash(kb_merkle_t *t, const uint8_t leaf_hash[KB_MERKLE_HASH_LEN], uint64_t *index)
{
    uint64_t n = t->edge.size;
    if (n == UINT64_MAX)
        return kb_error_set(KB_ETOOBIG, "merkle: tree is full");
    int rc = s_row_put(t, 0, n, leaf_hash);
    if (rc != KB_OK)
        return rc;
    uint8_t cur[HLEN];
    memcpy(cur, leaf_hash, HLEN);
    unsigned height = 0;
    while ((n >> height) & 1) {
        rc = s_node(&t->hs, t->edge.full[height], cur, cur);
        if (rc != KB_OK)
            return rc;
        height++;
        /* a full subtree of height 8L is an entry of tile level L; the
         * loop ends below height 64 because n < 2^64 - 1 */
        if (height % KB_MERKLE_TILE_HEIGHT == 0 &&
            (rc = s_row_put(t, height / KB_MERKLE_TILE_HEIGHT, n, cur)) != KB_OK)
            return rc;
    }
    memcpy(t->edge.full[height], cur, HLEN);
    t->edge.size = n + 1;
    if (index)
        *index = n;
    return KB_OK;
}

int kb_merkle_append(kb_merkle_t *t, const void *data, size_t len, uint64_t *index)
{
    if (!data && len)
        return kb_error_set(KB_EINVAL, "merkle: NULL argument");
    uint8_t leaf[HLEN];
    int rc = s_leaf(&t->hs, data, len, leaf);
    return rc != KB_OK ? rc : kb_merkle_append_hash(t, leaf, index);
}

uint64_t kb_merkle_size(const kb_merkle_t *t)
{
    return t->edge.size;
}

int kb_merkle_root(kb_merkle_t *t, uint8_t out[KB_MERKLE_HASH_LEN])
{
    return s_edge_root(&t->hs, &t->edge, out);
}

/* Root of the full subtree of 2^height leaves from start (aligned). */
static int s_subtree(kb_merkle_t *t, uint64_t start, unsigned height, uint8_t out[HLEN])
{
    unsigned level = height / KB_MERKLE_TILE_HEIGHT;
    uint64_t pos = start >> (KB_MERKLE_TILE_HEIGHT * level); /* index in that level's row */
    uint64_t tile = pos / KB_MERKLE_TILE_WIDTH;
    size_t off = (size_t)(pos % KB_MERKLE_TILE_WIDTH);
    size_t count = (size_t)1 << (height % KB_MERKLE_TILE_HEIGHT);
    const uint8_t *row = t->rows[level];
    uint64_t n = t->edge.size;
    if (tile != s_row_tile(n, level) || off + count > s_row_width(n, level)) {
        int rc = s_get_tile(t, level, tile, off + count, t->scratch);
        if (rc != KB_OK)
            return rc;
        row = t->scratch;
    }
    return s_row_root(&t->hs, row + off * HLEN, count, out);
}

/* Root of leaves [lo, hi), lo < hi, where lo is a multiple of the smallest
 * power of two >= hi - lo (true of every range RFC 9162 recurses into): the
 * full subtrees of the binary decomposition of hi - lo, folded from the
 * right. */
static int s_range(kb_merkle_t *t, uint64_t lo, uint64_t hi, uint8_t out[HLEN])
{
    uint8_t parts[KB_MERKLE_MAX_HEIGHT][HLEN];
    size_t n = 0;
    int rc = KB_OK;
    while (lo < hi && rc == KB_OK) {
        unsigned height = 63 - (unsigned)__builtin_clzll(hi - lo);
        rc = s_subtree(t, lo, height, parts[n++]);
        lo += (uint64_t)1 << height;
    }
    if (rc != KB_OK)
        return rc;
    memcpy(out, parts[n - 1], HLEN);
    while (n-- > 1)
        if ((rc = s_node(&t->hs, parts[n - 1], out, out)) != KB_OK)
            return rc;
    return KB_OK;
}

int kb_merkle_root_at(kb_merkle_t *t, uint64_t size, uint8_t out[KB_MERKLE_HASH_LEN])
{
    if (size > t->edge.size)
        return kb_error_set(KB_EINVAL, "merkle: size %llu is beyond the tree (%llu)", (unsigned long long)size,
                            (unsigned long long)t->edge.size);
    if (size == t->edge.size)
        return kb_merkle_root(t, out);
    if (size == 0)
        return s_empty(&t->hs, out);
    return s_range(t, 0, size, out);
}

int kb_merkle_leaf(kb_merkle_t *t, uint64_t index, uint8_t out[KB_MERKLE_HASH_LEN])
{
    if (index >= t->edge.size)
        return kb_error_set(KB_EINVAL, "merkle: no leaf %llu in a tree of size %llu", (unsigned long long)index,
                            (unsigned long long)t->edge.size);
    return s_subtree(t, index, 0, out);
}

/* Copy the n hashes collected root-first into proof, deepest first. */
static void s_reverse_into(uint8_t (*path)[HLEN], size_t n, uint8_t *proof, size_t *n_proof)
{
    for (size_t i = 0; i < n; i++)
        memcpy(proof + i * HLEN, path[n - 1 - i], HLEN);
    *n_proof = n;
}

int kb_merkle_inclusion_proof(kb_merkle_t *t, uint64_t index, uint64_t size, uint8_t proof[KB_MERKLE_PROOF_BYTES],
                              size_t *n_proof)
{
    if (size > t->edge.size || index >= size)
        return kb_error_set(KB_EINVAL, "merkle: no leaf %llu in a tree of size %llu (tree has %llu)",
                            (unsigned long long)index, (unsigned long long)size, (unsigned long long)t->edge.size);
    uint8_t path[KB_MERKLE_MAX_PROOF][HLEN];
    size_t n = 0;
    uint64_t lo = 0, hi = size;
    /* descend from the root towards the leaf; each step's sibling subtree
     * is one proof hash */
    while (hi - lo > 1) {
        uint64_t k = s_split(hi - lo);
        int rc;
        if (index < lo + k) {
            rc = s_range(t, lo + k, hi, path[n++]);
            hi = lo + k;
        } else {
            rc = s_range(t, lo, lo + k, path[n++]);
            lo += k;
        }
        if (rc != KB_OK)
            return rc;
    }
    s_reverse_into(path, n, proof, n_proof);
    return KB_OK;
}

int kb_merkle_consistency_proof(kb_merkle_t *t, uint64_t size1, uint64_t size2, uint8_t proof[KB_MERKLE_PROOF_BYTES],
                                size_t *n_proof)
{
    if (size1 > size2 || size2 > t->edge.size)
        return kb_error_set(KB_EINVAL, "merkle: no consistency proof from size %llu to %llu (tree has %llu)",
                            (unsigned long long)size1, (unsigned long long)size2, (unsigned long long)t->edge.size);
    *n_proof = 0;
    if (size1 == 0 || size1 == size2)
        return KB_OK;
    uint8_t path[KB_MERKLE_MAX_PROOF][HLEN];
    size_t n = 0;
    uint64_t lo = 0, hi = size2;
    int whole = 1; /* [lo, hi) still starts at leaf 0: its left part is known to the verifier */
    int rc = KB_OK;
    while (size1 != hi && rc == KB_OK) {
        uint64_t k = s_split(hi - lo);
        if (size1 - lo <= k) {
            rc = s_range(t, lo + k, hi, path[n++]);
            hi = lo + k;
        } else {
            rc = s_range(t, lo, lo + k, path[n++]);
            lo += k;
            whole = 0;
        }
    }
    if (rc == KB_OK && !whole)
        rc = s_range(t, lo, hi, path[n++]);
    if (rc != KB_OK)
        return rc;
    s_reverse_into(path, n, proof, n_proof);
    return KB_OK;
}

/* ------------------------------------------------------------ in memory */

typedef struct {
    uint8_t *hashes; /* KB_MERKLE_TILE_BYTES once put, else NULL */
    size_t width;    /* hashes in it */
} s_mem_tile_t;

struct kb_merkle_mem {
    s_mem_tile_t *tiles[KB_MERKLE_TILE_LEVELS]; /* per level, by tile index */
    size_t n_tiles[KB_MERKLE_TILE_LEVELS];      /* allocated entries per level */
    uint64_t puts;                              /* put_tile calls */
};

static int s_mem_get(void *ctx, unsigned level, uint64_t index, size_t width, uint8_t *buf)
{
    kb_merkle_mem_t *m = ctx;
    if (level >= KB_MERKLE_TILE_LEVELS || width == 0 || width > KB_MERKLE_TILE_WIDTH)
        return kb_error_set(KB_EINVAL, "merkle mem: bad tile request");
    if (index >= m->n_tiles[level] || m->tiles[level][index].width < width)
        return kb_error_set(KB_ENOTFOUND, "merkle mem: no tile %u/%llu of %zu hashes", level,
                            (unsigned long long)index, width);
    memcpy(buf, m->tiles[level][index].hashes, width * HLEN);
    return KB_OK;
}

static int s_mem_put(void *ctx, unsigned level, uint64_t index, const uint8_t *hashes, size_t width)
{
    kb_merkle_mem_t *m = ctx;
    if (level >= KB_MERKLE_TILE_LEVELS || width == 0 || width > KB_MERKLE_TILE_WIDTH)
        return kb_error_set(KB_EINVAL, "merkle mem: bad tile");
    if (index >= m->n_tiles[level]) {
        size_t n = m->n_tiles[level] ? m->n_tiles[level] : 16;
        while (n <= index) {
            if (n > SIZE_MAX / 2 / sizeof(s_mem_tile_t))
                return kb_error_set(KB_ENOMEM, "merkle mem: too many tiles");
            n *= 2;
        }
        s_mem_tile_t *grown = realloc(m->tiles[level], n * sizeof *grown);
        if (!grown)
            return kb_error_set(KB_ENOMEM, "merkle mem: out of memory");
        memset(grown + m->n_tiles[level], 0, (n - m->n_tiles[level]) * sizeof *grown);
        m->tiles[level] = grown;
        m->n_tiles[level] = n;
    }
    s_mem_tile_t *tl = &m->tiles[level][index];
    if (!tl->hashes && !(tl->hashes = malloc(KB_MERKLE_TILE_BYTES)))
        return kb_error_set(KB_ENOMEM, "merkle mem: out of memory");
    memcpy(tl->hashes, hashes, width * HLEN);
    tl->width = width;
    m->puts++;
    return KB_OK;
}

kb_merkle_mem_t *kb_merkle_mem_new(void)
{
    kb_merkle_mem_t *m = calloc(1, sizeof *m);
    if (!m)
        kb_error_set(KB_ENOMEM, "merkle mem: out of memory");
    return m;
}

void kb_merkle_mem_destroy(kb_merkle_mem_t **p)
{
    if (!p || !*p)
        return;
    kb_merkle_mem_t *m = *p;
    for (unsigned l = 0; l < KB_MERKLE_TILE_LEVELS; l++) {
        for (size_t i = 0; i < m->n_tiles[l]; i++)
            free(m->tiles[l][i].hashes);
        free(m->tiles[l]);
    }
    free(m);
    *p = NULL;
}

kb_merkle_io_t kb_merkle_mem_io(kb_merkle_mem_t *m)
{
    kb_merkle_io_t io = {s_mem_get, s_mem_put, m};
    return io;
}

uint64_t kb_merkle_mem_puts(const kb_merkle_mem_t *m)
{
    return m->puts;
}
