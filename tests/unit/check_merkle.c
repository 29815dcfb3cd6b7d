/*
 * check_merkle.c - tests of kb_merkle (the audit log's Merkle tree) and of
 * its LevelDB binding in broker/store.c.
 *
 * Known answers come from outside this code: the RFC 6962 test vectors of
 * the certificate-transparency projects, and tests/unit/merkle_ref.py (found
 * through $KB_SRCDIR, default "."), a literal transcription of RFC 9162's
 * recursive definitions in Python, for every root, inclusion proof and
 * consistency proof of trees up to 70 leaves. The tile tests grow trees of
 * 70,000 leaves in memory and in LevelDB, reopen them at sizes on both
 * sides of tile boundaries and cross-check roots and proofs against an
 * accumulator that never touches tiles. The tamper table checks that
 * verification refuses what an altered log would serve.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <check.h>

#include "kb_error.h"
#include "kb_merkle.h"
#include "kb_util.h"
#include "store.h"
#include "kb_test.h"

#define HLEN KB_MERKLE_HASH_LEN
#define REF_LEAVES 70        /* leaves in merkle_ref.py's trees */
#define BIG_LEAVES 70000u    /* leaves in the tile tests */
#define TAMPER_LEAVES 70u    /* leaves of the tamper table's tree */
#define ROWS(a) (int)(sizeof(a) / sizeof((a)[0]))
#define XSTR(x) STR(x)
#define STR(x) #x
#define PROOF_TEXT_MAX 4400  /* a longest proof as text: 65 * 65 chars */

/* ------------------------------------------------------------ helpers */

static size_t s_leaf_data(uint64_t i, char buf[32])
{
    int n = snprintf(buf, 32, "leaf-%" PRIu64, i);
    ck_assert(n > 0 && n < 32);
    return (size_t)n;
}

static void s_leaf_hash_of(uint64_t i, uint8_t out[HLEN])
{
    char d[32];
    size_t n = s_leaf_data(i, d);
    ck_assert_int_eq(kb_merkle_leaf_hash(d, n, out), KB_OK);
}

static void s_unhex(const char *hex, uint8_t out[HLEN])
{
    ck_assert_int_eq(kb_unhex(hex, out, HLEN), KB_OK);
}

static void s_hex_of(const uint8_t h[HLEN], char out[2 * HLEN + 1])
{
    kb_hex(h, HLEN, out);
}

/* Proof as merkle_ref.py prints it: comma-separated hex, "-" when empty. */
static void s_proof_text(const uint8_t *proof, size_t n, char *out, size_t out_len)
{
    if (n == 0) {
        ck_assert_int_eq(kb_fmt(out, out_len, "-"), KB_OK);
        return;
    }
    ck_assert(out_len >= n * (2 * HLEN + 1));
    for (size_t i = 0; i < n; i++) {
        kb_hex(proof + i * HLEN, HLEN, out + i * (2 * HLEN + 1));
        out[i * (2 * HLEN + 1) + 2 * HLEN] = i + 1 < n ? ',' : '\0';
    }
}

typedef struct {
    kb_merkle_mem_t *mem; /* tiles */
    kb_merkle_io_t io;    /* its vtable */
    kb_merkle_t *tree;    /* the tree on it */
} s_memtree_t;

static void s_memtree_init(s_memtree_t *m)
{
    m->mem = kb_merkle_mem_new();
    ck_assert_ptr_nonnull(m->mem);
    m->io = kb_merkle_mem_io(m->mem);
    m->tree = kb_merkle_new(&m->io);
    ck_assert_msg(m->tree != NULL, "%s", kb_last_error());
}

static void s_memtree_fini(s_memtree_t *m)
{
    kb_merkle_destroy(&m->tree);
    kb_merkle_mem_destroy(&m->mem);
}

/* A tree of the leaf hashes given (n of them, concatenated). */
static void s_memtree_of(s_memtree_t *m, const uint8_t *hashes, size_t n)
{
    s_memtree_init(m);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(kb_merkle_append_hash(m->tree, hashes + i * HLEN, NULL), KB_OK);
}

/* Leaf hashes of "leaf-0" .. "leaf-<n-1>" (caller frees). */
static uint8_t *s_leaf_hashes(size_t n)
{
    uint8_t *h = malloc(n * HLEN + 1);
    ck_assert_ptr_nonnull(h);
    for (size_t i = 0; i < n; i++)
        s_leaf_hash_of(i, h + i * HLEN);
    return h;
}

/* Check an inclusion proof from t against root of size (and that it verifies). */
static void s_check_inclusion(kb_merkle_t *t, uint64_t index, uint64_t size, const uint8_t root[HLEN])
{
    uint8_t proof[KB_MERKLE_PROOF_BYTES], leaf[HLEN];
    size_t n = 0;
    ck_assert_int_eq(kb_merkle_leaf(t, index, leaf), KB_OK);
    ck_assert_msg(kb_merkle_inclusion_proof(t, index, size, proof, &n) == KB_OK, "%s", kb_last_error());
    ck_assert_msg(kb_merkle_verify_inclusion(leaf, index, size, proof, n, root) == KB_OK,
                  "leaf %" PRIu64 " size %" PRIu64 ": %s", index, size, kb_last_error());
}

static void s_check_consistency(kb_merkle_t *t, uint64_t size1, uint64_t size2)
{
    uint8_t proof[KB_MERKLE_PROOF_BYTES], r1[HLEN], r2[HLEN];
    size_t n = 0;
    ck_assert_int_eq(kb_merkle_root_at(t, size1, r1), KB_OK);
    ck_assert_int_eq(kb_merkle_root_at(t, size2, r2), KB_OK);
    ck_assert_msg(kb_merkle_consistency_proof(t, size1, size2, proof, &n) == KB_OK, "%s", kb_last_error());
    ck_assert_msg(kb_merkle_verify_consistency(size1, size2, proof, n, r1, r2) == KB_OK,
                  "%" PRIu64 " -> %" PRIu64 ": %s", size1, size2, kb_last_error());
}

/* ------------------------------------------------------------ hashing */

START_TEST(test_hashes)
{
    uint8_t h[HLEN], l[HLEN], r[HLEN];
    char hex[2 * HLEN + 1];
    /* SHA-256(0x00) and SHA-256(""), the leaf of nothing and the empty tree */
    ck_assert_int_eq(kb_merkle_leaf_hash("", 0, h), KB_OK);
    s_hex_of(h, hex);
    ck_assert_str_eq(hex, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    ck_assert_int_eq(kb_merkle_root_from_hashes(NULL, 0, h), KB_OK);
    s_hex_of(h, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* a node is not the leaf of its children's concatenation */
    ck_assert_int_eq(kb_merkle_leaf_hash("a", 1, l), KB_OK);
    ck_assert_int_eq(kb_merkle_leaf_hash("b", 1, r), KB_OK);
    uint8_t both[2 * HLEN], as_leaf[HLEN];
    memcpy(both, l, HLEN);
    memcpy(both + HLEN, r, HLEN);
    ck_assert_int_eq(kb_merkle_node_hash(l, r, h), KB_OK);
    ck_assert_int_eq(kb_merkle_leaf_hash(both, sizeof both, as_leaf), KB_OK);
    ck_assert_mem_ne(h, as_leaf, HLEN);
    ck_assert_int_eq(kb_merkle_root_from_hashes(both, 2, as_leaf), KB_OK);
    ck_assert_mem_eq(h, as_leaf, HLEN);
    ck_assert_int_eq(kb_merkle_leaf_hash(NULL, 3, h), KB_EINVAL);
    ck_assert_int_eq(kb_merkle_root_from_hashes(NULL, 3, h), KB_EINVAL);
}
END_TEST

/* ------------------------------------------------------------ RFC 6962 vectors */

/* The certificate-transparency test leaves and the published MTH(D[n]). */
static const struct {
    const char *data; /* leaf bytes */
    size_t len;       /* their length */
} s_ct_leaves[] = {
    {"", 0},
    {"\x00", 1},
    {"\x10", 1},
    {"\x20\x21", 2},
    {"\x30\x31", 2},
    {"\x40\x41\x42\x43", 4},
    {"\x50\x51\x52\x53\x54\x55\x56\x57", 8},
    {"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16},
};

static const char *s_ct_roots[] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static const struct {
    int consistency; /* 0: inclusion proof of leaf a in size b; 1: consistency a -> b */
    uint64_t a, b;   /* leaf index or first size; tree size */
    const char *proof; /* expected proof, merkle_ref.py's text form */
} s_ct_proofs[] = {
    {0, 0, 1, "-"},
    {0, 0, 8,
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7,"
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e,"
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"},
    {0, 5, 8,
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b,"
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0,"
     "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"},
    {0, 2, 3, "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"},
    {0, 1, 5,
     "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d,"
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e,"
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"},
    {1, 1, 1, "-"},
    {1, 1, 8,
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7,"
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e,"
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"},
    {1, 6, 8,
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a,"
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0,"
     "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"},
    {1, 2, 5,
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e,"
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"},
};

START_TEST(test_ct_vectors)
{
    s_memtree_t m;
    s_memtree_init(&m);
    kb_merkle_acc_t *acc = kb_merkle_acc_new();
    ck_assert_ptr_nonnull(acc);
    uint8_t hashes[ROWS(s_ct_leaves)][HLEN], h[HLEN];
    char hex[2 * HLEN + 1];
    for (int n = 0; n <= ROWS(s_ct_leaves); n++) {
        /* the same root three ways: the tree's right edge, the
         * accumulator, and a list of leaf hashes */
        ck_assert_int_eq(kb_merkle_root(m.tree, h), KB_OK);
        s_hex_of(h, hex);
        ck_assert_str_eq(hex, s_ct_roots[n]);
        ck_assert_int_eq(kb_merkle_acc_root(acc, h), KB_OK);
        s_hex_of(h, hex);
        ck_assert_str_eq(hex, s_ct_roots[n]);
        ck_assert_int_eq(kb_merkle_root_from_hashes(hashes[0], (size_t)n, h), KB_OK);
        s_hex_of(h, hex);
        ck_assert_str_eq(hex, s_ct_roots[n]);
        if (n == ROWS(s_ct_leaves))
            break;
        uint64_t index = 99;
        ck_assert_int_eq(kb_merkle_append(m.tree, s_ct_leaves[n].data, s_ct_leaves[n].len, &index), KB_OK);
        ck_assert_uint_eq(index, (uint64_t)n);
        ck_assert_int_eq(kb_merkle_acc_add(acc, s_ct_leaves[n].data, s_ct_leaves[n].len), KB_OK);
        ck_assert_int_eq(kb_merkle_leaf_hash(s_ct_leaves[n].data, s_ct_leaves[n].len, hashes[n]), KB_OK);
    }
    ck_assert_uint_eq(kb_merkle_acc_size(acc), 8);
    /* every earlier root, from the tiles */
    for (int n = 0; n <= ROWS(s_ct_leaves); n++) {
        ck_assert_int_eq(kb_merkle_root_at(m.tree, (uint64_t)n, h), KB_OK);
        s_hex_of(h, hex);
        ck_assert_str_eq(hex, s_ct_roots[n]);
    }
    for (int i = 0; i < ROWS(s_ct_proofs); i++) {
        uint8_t proof[KB_MERKLE_PROOF_BYTES], r1[HLEN], r2[HLEN];
        char text[KB_MERKLE_MAX_PROOF * (2 * HLEN + 1)];
        size_t n = 0;
        uint64_t a = s_ct_proofs[i].a, b = s_ct_proofs[i].b;
        s_unhex(s_ct_roots[b], r2);
        if (s_ct_proofs[i].consistency) {
            ck_assert_int_eq(kb_merkle_consistency_proof(m.tree, a, b, proof, &n), KB_OK);
            s_unhex(s_ct_roots[a], r1);
            ck_assert_int_eq(kb_merkle_verify_consistency(a, b, proof, n, r1, r2), KB_OK);
        } else {
            ck_assert_int_eq(kb_merkle_inclusion_proof(m.tree, a, b, proof, &n), KB_OK);
            ck_assert_int_eq(kb_merkle_verify_inclusion(hashes[a], a, b, proof, n, r2), KB_OK);
        }
        s_proof_text(proof, n, text, sizeof text);
        ck_assert_str_eq(text, s_ct_proofs[i].proof);
    }
    kb_merkle_acc_destroy(&acc);
    s_memtree_fini(&m);
}
END_TEST

/* ------------------------------------------------------------ independent reference */

static FILE *s_run_reference(void)
{
    const char *srcdir = getenv("KB_SRCDIR");
    char cmd[1024];
    if (!srcdir || !*srcdir)
        srcdir = ".";
    ck_assert_msg(strchr(srcdir, '\'') == NULL, "KB_SRCDIR must not contain a quote");
    ck_assert_int_eq(kb_fmt(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/unit/merkle_ref.py' %d", srcdir, REF_LEAVES),
                     KB_OK);
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    return p;
}

START_TEST(test_python_reference)
{
    s_memtree_t m;
    s_memtree_init(&m);
    uint8_t *hashes = s_leaf_hashes(REF_LEAVES);
    for (uint64_t i = 0; i < REF_LEAVES; i++) {
        char d[32];
        size_t n = s_leaf_data(i, d);
        ck_assert_int_eq(kb_merkle_append(m.tree, d, n, NULL), KB_OK);
    }
    FILE *p = s_run_reference();
    char *line = NULL;
    size_t cap = 0;
    unsigned roots = 0, incl = 0, cons = 0;
    uint8_t proof[KB_MERKLE_PROOF_BYTES], h[HLEN], r1[HLEN], r2[HLEN];
    char got[PROOF_TEXT_MAX + 1];
    while (getline(&line, &cap, p) > 0) {
        line[strcspn(line, "\n")] = '\0';
        char kind[8], want[sizeof got];
        unsigned long long a = 0, b = 0;
        size_t n = 0;
        if (sscanf(line, "root %llu %64s", &a, want) == 2) {
            ck_assert_int_eq(kb_merkle_root_at(m.tree, a, h), KB_OK);
            s_hex_of(h, got);
            ck_assert_msg(strcmp(got, want) == 0, "root %llu: %s, reference %s", a, got, want);
            /* the root of a list of leaf hashes, with no tiles */
            ck_assert_int_eq(kb_merkle_root_from_hashes(hashes, (size_t)a, h), KB_OK);
            s_hex_of(h, got);
            ck_assert_str_eq(got, want);
            roots++;
            continue;
        }
        ck_assert_msg(sscanf(line, "%7s %llu %llu %" XSTR(PROOF_TEXT_MAX) "s", kind, &a, &b, want) == 4,
                      "bad line: %s", line);
        ck_assert_int_eq(kb_merkle_root_at(m.tree, b, r2), KB_OK);
        if (strcmp(kind, "incl") == 0) {
            ck_assert_int_eq(kb_merkle_inclusion_proof(m.tree, a, b, proof, &n), KB_OK);
            ck_assert_int_eq(kb_merkle_verify_inclusion(hashes + a * HLEN, a, b, proof, n, r2), KB_OK);
            incl++;
        } else {
            ck_assert_str_eq(kind, "cons");
            ck_assert_int_eq(kb_merkle_consistency_proof(m.tree, a, b, proof, &n), KB_OK);
            ck_assert_int_eq(kb_merkle_root_at(m.tree, a, r1), KB_OK);
            ck_assert_int_eq(kb_merkle_verify_consistency(a, b, proof, n, r1, r2), KB_OK);
            cons++;
        }
        s_proof_text(proof, n, got, sizeof got);
        ck_assert_msg(strcmp(got, want) == 0, "%s %llu %llu:\n  got       %s\n  reference %s", kind, a, b, got,
                      want);
    }
    free(line);
    int status = pclose(p);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "merkle_ref.py failed");
    /* everything was compared: 0..70 roots, sum 1..70 of each proof kind */
    ck_assert_uint_eq(roots, REF_LEAVES + 1);
    ck_assert_uint_eq(incl, REF_LEAVES * (REF_LEAVES + 1) / 2);
    ck_assert_uint_eq(cons, REF_LEAVES * (REF_LEAVES + 1) / 2);
    free(hashes);
    s_memtree_fini(&m);
}
END_TEST

/* ------------------------------------------------------------ tiles */

/* Sizes to reopen at: empty, around the first tile boundaries, around the
 * first level-2 tile entry (65536 = 256 * 256 leaves), and the end. */
static const uint64_t s_reopen_sizes[] = {0,    1,     2,     255,   256,   257,   511,  512,
                                          513,  4097,  65535, 65536, 65537, 69999, 70000};

/* Roots of every size in s_reopen_sizes, by an accumulator (no tiles). */
static void s_expected_roots(const uint8_t *hashes, uint8_t roots[][HLEN])
{
    kb_merkle_acc_t *acc = kb_merkle_acc_new();
    ck_assert_ptr_nonnull(acc);
    size_t next = 0;
    for (uint64_t n = 0; n <= BIG_LEAVES; n++) {
        if (next < (size_t)ROWS(s_reopen_sizes) && s_reopen_sizes[next] == n)
            ck_assert_int_eq(kb_merkle_acc_root(acc, roots[next++]), KB_OK);
        if (n < BIG_LEAVES)
            ck_assert_int_eq(kb_merkle_acc_add_hash(acc, hashes + n * HLEN), KB_OK);
    }
    ck_assert_uint_eq(next, ROWS(s_reopen_sizes));
    kb_merkle_acc_destroy(&acc);
}

/* A tree just loaded at size (from the same storage as the full tree big):
 * same root as the accumulator, the same proofs as big, all verifying. */
static void s_check_reopened(kb_merkle_t *t, kb_merkle_t *big, uint64_t size, const uint8_t root[HLEN])
{
    uint8_t h[HLEN], p1[KB_MERKLE_PROOF_BYTES], p2[KB_MERKLE_PROOF_BYTES];
    size_t n1 = 0, n2 = 0;
    ck_assert_uint_eq(kb_merkle_size(t), size);
    ck_assert_int_eq(kb_merkle_root(t, h), KB_OK);
    ck_assert_mem_eq(h, root, HLEN);
    ck_assert_int_eq(kb_merkle_root_at(big, size, h), KB_OK);
    ck_assert_mem_eq(h, root, HLEN);
    if (size == 0)
        return;
    /* leaves at both ends, at tile edges and spread out */
    uint64_t picks[] = {0, size - 1, size / 2, 255, 256, 65535, 65536, size / 3, (size * 7) / 8};
    for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++) {
        uint64_t index = picks[i];
        if (index >= size)
            continue;
        s_check_inclusion(t, index, size, root);
        ck_assert_int_eq(kb_merkle_inclusion_proof(t, index, size, p1, &n1), KB_OK);
        ck_assert_int_eq(kb_merkle_inclusion_proof(big, index, size, p2, &n2), KB_OK);
        ck_assert_uint_eq(n1, n2);
        ck_assert_mem_eq(p1, p2, n1 * HLEN);
        ck_assert_int_eq(kb_merkle_leaf(t, index, h), KB_OK);
        uint8_t want[HLEN];
        ck_assert_int_eq(kb_merkle_leaf(big, index, want), KB_OK);
        ck_assert_mem_eq(h, want, HLEN);
    }
    uint64_t firsts[] = {1, size / 2, size - 1, 256, 65536};
    for (size_t i = 0; i < sizeof firsts / sizeof firsts[0]; i++) {
        if (firsts[i] == 0 || firsts[i] > size)
            continue;
        s_check_consistency(t, firsts[i], size);
        ck_assert_int_eq(kb_merkle_consistency_proof(t, firsts[i], size, p1, &n1), KB_OK);
        ck_assert_int_eq(kb_merkle_consistency_proof(big, firsts[i], size, p2, &n2), KB_OK);
        ck_assert_uint_eq(n1, n2);
        ck_assert_mem_eq(p1, p2, n1 * HLEN);
    }
}

START_TEST(test_tiles_in_memory)
{
    uint8_t *hashes = s_leaf_hashes(BIG_LEAVES);
    uint8_t roots[ROWS(s_reopen_sizes)][HLEN];
    s_expected_roots(hashes, roots);

    s_memtree_t m;
    s_memtree_init(&m);
    uint64_t max_puts = 0;
    for (uint64_t i = 0; i < BIG_LEAVES; i++) {
        uint64_t before = kb_merkle_mem_puts(m.mem), index = 0;
        ck_assert_int_eq(kb_merkle_append_hash(m.tree, hashes + i * HLEN, &index), KB_OK);
        ck_assert_uint_eq(index, i);
        uint64_t puts = kb_merkle_mem_puts(m.mem) - before;
        /* one put for the leaf tile, one more per tile level it completes */
        uint64_t want = 1 + ((i + 1) % 256 == 0) + ((i + 1) % 65536 == 0);
        ck_assert_uint_eq(puts, want);
        if (puts > max_puts)
            max_puts = puts;
    }
    ck_assert_uint_eq(max_puts, 3);
    ck_assert_uint_eq(kb_merkle_mem_puts(m.mem), BIG_LEAVES + BIG_LEAVES / 256 + BIG_LEAVES / 65536);

    for (int i = 0; i < ROWS(s_reopen_sizes); i++) {
        kb_merkle_t *t = kb_merkle_new(&m.io);
        ck_assert_ptr_nonnull(t);
        ck_assert_msg(kb_merkle_load(t, s_reopen_sizes[i]) == KB_OK, "load %" PRIu64 ": %s", s_reopen_sizes[i],
                      kb_last_error());
        s_check_reopened(t, m.tree, s_reopen_sizes[i], roots[i]);
        kb_merkle_destroy(&t);
    }

    /* a tree reopened mid-way and grown again matches the original */
    kb_merkle_t *t = kb_merkle_new(&m.io);
    ck_assert_int_eq(kb_merkle_load(t, 65530), KB_OK);
    for (uint64_t i = 65530; i < 65540; i++)
        ck_assert_int_eq(kb_merkle_append_hash(t, hashes + i * HLEN, NULL), KB_OK);
    uint8_t a[HLEN], b[HLEN];
    ck_assert_int_eq(kb_merkle_root(t, a), KB_OK);
    ck_assert_int_eq(kb_merkle_root_at(m.tree, 65540, b), KB_OK);
    ck_assert_mem_eq(a, b, HLEN);
    /* asking beyond what is stored fails cleanly */
    ck_assert_int_eq(kb_merkle_load(t, BIG_LEAVES + 1), KB_ENOTFOUND);
    ck_assert_uint_eq(kb_merkle_size(t), 0);
    kb_merkle_destroy(&t);
    free(hashes);
    s_memtree_fini(&m);
}
END_TEST

static char s_dir[64];

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/kbmerkle.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static kb_store_t *s_store_open(void)
{
    static const uint8_t key[32] = {1, 2, 3};
    kb_store_t *s = kb_store_open(s_dir, key);
    ck_assert_msg(s != NULL, "open: %s", kb_last_error());
    return s;
}

typedef struct {
    kb_store_t *store;       /* the database */
    kb_batch_t *batch;       /* staged writes */
    kb_store_tiles_t tiles;  /* binding of the tree to the store */
    kb_merkle_io_t io;       /* its vtable */
    kb_merkle_t *tree;       /* the audit tree */
} s_logtree_t;

static void s_logtree_open(s_logtree_t *l)
{
    l->store = s_store_open();
    l->batch = kb_batch_new();
    ck_assert_ptr_nonnull(l->batch);
    l->tiles.store = l->store;
    l->tiles.batch = l->batch;
    l->io = kb_store_tiles_io(&l->tiles);
    l->tree = kb_merkle_new(&l->io);
    ck_assert_ptr_nonnull(l->tree);
    ck_assert_msg(kb_merkle_load(l->tree, kb_store_audit_size(l->store)) == KB_OK, "%s", kb_last_error());
}

static void s_logtree_close(s_logtree_t *l)
{
    kb_merkle_destroy(&l->tree);
    kb_batch_destroy(&l->batch);
    kb_store_destroy(&l->store);
}

/* Audit record i: its reason says which leaf it is. */
static void s_record(Ketenbus__AuditRecord *r, uint64_t i, char reason[32])
{
    ketenbus__audit_record__init(r);
    s_leaf_data(i, reason);
    r->time_us = 1795426800000000 + (int64_t)i;
    r->event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
    r->agency = "politie";
    r->reason = reason;
}

/* Append records [from, to) through kb_store_audit_log, committing every
 * commit_every; their leaf hashes go to hashes[i]. Returns the most
 * batch entries one append staged. */
static size_t s_log_records(s_logtree_t *l, uint64_t from, uint64_t to, uint64_t commit_every, uint8_t *hashes)
{
    size_t max_entries = 0;
    for (uint64_t i = from; i < to; i++) {
        Ketenbus__AuditRecord r;
        char reason[32];
        s_record(&r, i, reason);
        size_t before = kb_batch_size(l->batch);
        uint64_t index = 0;
        ck_assert_msg(kb_store_audit_log(l->store, l->batch, l->tree, &r, &index) == KB_OK, "%s", kb_last_error());
        ck_assert_uint_eq(index, i);
        size_t entries = kb_batch_size(l->batch) - before;
        /* the record, plus a leaf tile and a level-1 tile when a leaf tile
         * fills, plus a level-2 tile when 65536 leaves do */
        size_t want = 1 + 2 * ((i + 1) % 256 == 0) + ((i + 1) % 65536 == 0);
        ck_assert_uint_eq(entries, want);
        if (entries > max_entries)
            max_entries = entries;
        /* the leaf is the record exactly as stored */
        uint8_t buf[256];
        size_t len = ketenbus__audit_record__get_packed_size(&r);
        ck_assert_uint_le(len, sizeof buf);
        ketenbus__audit_record__pack(&r, buf);
        ck_assert_int_eq(kb_merkle_leaf_hash(buf, len, hashes + i * HLEN), KB_OK);
        if ((i + 1) % commit_every == 0)
            ck_assert_int_eq(kb_store_commit(l->store, l->batch, 0), KB_OK);
    }
    ck_assert_int_eq(kb_store_commit(l->store, l->batch, 1), KB_OK);
    return max_entries;
}

START_TEST(test_tiles_leveldb)
{
    uint8_t *hashes = malloc(BIG_LEAVES * HLEN);
    ck_assert_ptr_nonnull(hashes);
    s_logtree_t l;
    s_logtree_open(&l);
    ck_assert_uint_eq(kb_merkle_size(l.tree), 0);
    /* in two runs with a reopen between them, mid-tile */
    size_t max1 = s_log_records(&l, 0, 1000, 97, hashes);
    s_logtree_close(&l);
    s_logtree_open(&l);
    ck_assert_uint_eq(kb_merkle_size(l.tree), 1000);
    size_t max2 = s_log_records(&l, 1000, BIG_LEAVES, 1000, hashes);
    ck_assert_uint_le(max1, 3);
    ck_assert_uint_eq(max2, 4);

    uint8_t roots[ROWS(s_reopen_sizes)][HLEN], h[HLEN];
    s_expected_roots(hashes, roots);
    ck_assert_int_eq(kb_merkle_root(l.tree, h), KB_OK);
    ck_assert_mem_eq(h, roots[ROWS(s_reopen_sizes) - 1], HLEN);
    /* the same leaves in memory give the same tree */
    s_memtree_t m;
    s_memtree_of(&m, hashes, BIG_LEAVES);
    ck_assert_int_eq(kb_merkle_root(m.tree, h), KB_OK);
    ck_assert_mem_eq(h, roots[ROWS(s_reopen_sizes) - 1], HLEN);
    s_memtree_fini(&m);
    s_logtree_close(&l);

    /* reopened from disk at every size: partial leaf tiles come from the
     * records, the rest from stored tiles */
    s_logtree_open(&l);
    ck_assert_uint_eq(kb_merkle_size(l.tree), BIG_LEAVES);
    for (int i = 0; i < ROWS(s_reopen_sizes); i++) {
        kb_merkle_t *t = kb_merkle_new(&l.io);
        ck_assert_ptr_nonnull(t);
        ck_assert_msg(kb_merkle_load(t, s_reopen_sizes[i]) == KB_OK, "load %" PRIu64 ": %s", s_reopen_sizes[i],
                      kb_last_error());
        s_check_reopened(t, l.tree, s_reopen_sizes[i], roots[i]);
        kb_merkle_destroy(&t);
    }
    s_logtree_close(&l);
    free(hashes);
}
END_TEST

START_TEST(test_leveldb_uncommitted_and_out_of_step)
{
    uint8_t hashes[300 * HLEN], committed[HLEN], h[HLEN];
    s_logtree_t l;
    s_logtree_open(&l);
    s_log_records(&l, 0, 250, 1000, hashes);
    ck_assert_int_eq(kb_merkle_root(l.tree, committed), KB_OK);
    /* staged past a tile boundary, then abandoned as after a failed commit */
    for (uint64_t i = 250; i < 300; i++) {
        Ketenbus__AuditRecord r;
        char reason[32];
        s_record(&r, i, reason);
        ck_assert_int_eq(kb_store_audit_log(l.store, l.batch, l.tree, &r, NULL), KB_OK);
    }
    /* the full leaf tile is not committed: a proof needing it fails loudly */
    uint8_t proof[KB_MERKLE_PROOF_BYTES];
    size_t n;
    ck_assert_int_eq(kb_merkle_inclusion_proof(l.tree, 3, 300, proof, &n), KB_ENOTFOUND);
    kb_batch_clear(l.batch);
    ck_assert_int_eq(kb_store_reopen(l.store), KB_OK);
    ck_assert_uint_eq(kb_store_audit_size(l.store), 250);
    /* a tree out of step with the log is refused */
    Ketenbus__AuditRecord r;
    char reason[32];
    s_record(&r, 250, reason);
    ck_assert_int_eq(kb_store_audit_log(l.store, l.batch, l.tree, &r, NULL), KB_EINVAL);
    ck_assert_int_eq(kb_batch_size(l.batch), 0);
    ck_assert_int_eq(kb_merkle_load(l.tree, kb_store_audit_size(l.store)), KB_OK);
    ck_assert_int_eq(kb_merkle_root(l.tree, h), KB_OK);
    ck_assert_mem_eq(h, committed, HLEN);
    /* and on it goes */
    s_log_records(&l, 250, 300, 1000, hashes);
    ck_assert_int_eq(kb_merkle_root(l.tree, h), KB_OK);
    uint8_t want[HLEN];
    ck_assert_int_eq(kb_merkle_root_from_hashes(hashes, 300, want), KB_OK);
    ck_assert_mem_eq(h, want, HLEN);
    s_check_inclusion(l.tree, 3, 300, want);
    s_logtree_close(&l);

    /* a stored tile of a bad length is refused, not used */
    kb_store_t *s = s_store_open();
    kb_batch_t *b = kb_batch_new();
    uint8_t k[10] = {'t', 0, 0, 0, 0, 0, 0, 0, 0, 0}, v[33] = {0};
    ck_assert_int_eq(kb_batch_put(b, k, sizeof k, v, sizeof v), KB_OK);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    ck_assert_int_eq(kb_store_tile_get(s, 0, 0, 1, h), KB_EPROTO);
    ck_assert_int_eq(kb_store_tile_get(s, 0, 1, 1, h), KB_ENOTFOUND);
    ck_assert_int_eq(kb_store_tile_get(s, 8, 0, 1, h), KB_EINVAL);
    ck_assert_int_eq(kb_store_tile_get(s, 0, 0, 0, h), KB_EINVAL);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
    s_logtree_open(&l);
    ck_assert_int_eq(kb_merkle_load(l.tree, 100), KB_EPROTO);
    ck_assert_uint_eq(kb_merkle_size(l.tree), 0);
    /* a missing record of the partial leaf tile */
    ck_assert_int_eq(kb_merkle_load(l.tree, 301), KB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "audit record 300 is missing"));
    s_logtree_close(&l);
}
END_TEST

/* ------------------------------------------------------------ tampering */

typedef enum {
    T_CHANGED_LEAF,   /* the log serves another leaf 37 */
    T_SWAPPED_LEAVES, /* leaves 36 and 37 trade places */
    T_DROPPED_LEAF,   /* leaf 20 left out */
    T_WRONG_SIZE_UP,  /* the proof is checked against the root of size 71 */
    T_WRONG_SIZE_DOWN,/* ... and of size 69 */
    T_WRONG_INDEX,    /* the leaf claimed at another position */
    T_SWAPPED_PROOF,  /* two proof hashes swapped */
    T_FLIPPED_BIT,    /* one bit of one proof hash */
    T_SHORT_PROOF,    /* last proof hash dropped */
    T_LONG_PROOF,     /* a hash appended */
    T_CONS_REWRITTEN, /* consistency: the tail before the first checkpoint rewritten */
    T_CONS_FORKED,    /* consistency: a tree that is no extension, with a valid-looking proof */
    T_CONS_SHORT,     /* consistency: proof hash dropped */
    T_CONS_WRONG_OLD, /* consistency: proof against an older root than claimed */
} s_tamper_t;

static const struct {
    s_tamper_t what; /* the alteration */
    int rc;          /* what verification must return */
} s_tamper_rows[] = {
    {T_CHANGED_LEAF, KB_ECRYPTO}, {T_SWAPPED_LEAVES, KB_ECRYPTO}, {T_DROPPED_LEAF, KB_ECRYPTO},
    {T_WRONG_SIZE_UP, KB_ECRYPTO}, {T_WRONG_SIZE_DOWN, KB_ECRYPTO}, {T_WRONG_INDEX, KB_ECRYPTO},
    {T_SWAPPED_PROOF, KB_ECRYPTO}, {T_FLIPPED_BIT, KB_ECRYPTO}, {T_SHORT_PROOF, KB_ECRYPTO},
    {T_LONG_PROOF, KB_ECRYPTO}, {T_CONS_REWRITTEN, KB_ECRYPTO}, {T_CONS_FORKED, KB_ECRYPTO},
    {T_CONS_SHORT, KB_ECRYPTO}, {T_CONS_WRONG_OLD, KB_ECRYPTO},
};

/* The verifier holds checkpoints (size, root) of the honest log of
 * TAMPER_LEAVES leaves (and of its first 40); the log it asks serves
 * proofs from an altered copy. */
START_TEST(test_tamper)
{
    const uint64_t n = TAMPER_LEAVES, m = 40, leaf = 37;
    uint8_t *honest = s_leaf_hashes(n + 1);
    uint8_t *bad = s_leaf_hashes(n + 1);
    s_memtree_t good;
    s_memtree_of(&good, honest, n + 1);
    uint8_t root_n[HLEN], root_m[HLEN], proof[KB_MERKLE_PROOF_BYTES], tmp[HLEN];
    ck_assert_int_eq(kb_merkle_root_at(good.tree, n, root_n), KB_OK);
    ck_assert_int_eq(kb_merkle_root_at(good.tree, m, root_m), KB_OK);
    size_t count = n, np = 0;
    uint64_t index = leaf, size = n;
    const uint8_t *leaf_hash = honest + leaf * HLEN, *root = root_n;
    int rc = KB_OK;

    switch (s_tamper_rows[_i].what) {
    case T_CHANGED_LEAF:
        ck_assert_int_eq(kb_merkle_leaf_hash("leaf-37 (edited)", 16, bad + leaf * HLEN), KB_OK);
        leaf_hash = bad + leaf * HLEN;
        break;
    case T_SWAPPED_LEAVES:
        memcpy(tmp, bad + 36 * HLEN, HLEN);
        memcpy(bad + 36 * HLEN, bad + 37 * HLEN, HLEN);
        memcpy(bad + 37 * HLEN, tmp, HLEN);
        break;
    case T_DROPPED_LEAF:
        memmove(bad + 20 * HLEN, bad + 21 * HLEN, (n - 20) * HLEN);
        index = leaf - 1; /* where leaf 37 now is */
        break;
    default:
        break;
    }
    if (s_tamper_rows[_i].what <= T_DROPPED_LEAF) {
        /* a verifier recomputing the root from the served leaves sees it */
        ck_assert_int_eq(kb_merkle_root_from_hashes(bad, count, tmp), KB_OK);
        ck_assert_mem_ne(tmp, root_n, HLEN);
        /* and so does one checking the served proof against its checkpoint */
        s_memtree_t evil;
        s_memtree_of(&evil, bad, count);
        ck_assert_int_eq(kb_merkle_inclusion_proof(evil.tree, index, count, proof, &np), KB_OK);
        rc = kb_merkle_verify_inclusion(leaf_hash, index, size, proof, np, root);
        if (s_tamper_rows[_i].what == T_DROPPED_LEAF) {
            /* also when the log claims the leaf kept its position */
            ck_assert_int_eq(kb_merkle_verify_inclusion(leaf_hash, leaf, size, proof, np, root), KB_ECRYPTO);
        }
        s_memtree_fini(&evil);
    } else if (s_tamper_rows[_i].what <= T_LONG_PROOF) {
        uint8_t other_root[HLEN];
        ck_assert_int_eq(kb_merkle_inclusion_proof(good.tree, leaf, n, proof, &np), KB_OK);
        ck_assert_uint_ge(np, 3);
        switch (s_tamper_rows[_i].what) {
        case T_WRONG_SIZE_UP:
        case T_WRONG_SIZE_DOWN:
            /* the size comes with its own checkpoint root */
            size = s_tamper_rows[_i].what == T_WRONG_SIZE_UP ? n + 1 : n - 1;
            ck_assert_int_eq(kb_merkle_root_at(good.tree, size, other_root), KB_OK);
            root = other_root;
            break;
        case T_WRONG_INDEX:
            index = leaf + 1;
            break;
        case T_SWAPPED_PROOF:
            memcpy(tmp, proof, HLEN);
            memcpy(proof, proof + HLEN, HLEN);
            memcpy(proof + HLEN, tmp, HLEN);
            break;
        case T_FLIPPED_BIT:
            proof[HLEN + 5] ^= 0x10;
            break;
        case T_SHORT_PROOF:
            np--;
            break;
        case T_LONG_PROOF:
            memcpy(proof + np * HLEN, root_n, HLEN);
            np++;
            break;
        default:
            break;
        }
        rc = kb_merkle_verify_inclusion(leaf_hash, index, size, proof, np, root);
    } else {
        const uint8_t *r1 = root_m, *r2 = root_n;
        uint8_t evil_root[HLEN];
        s_memtree_t evil;
        if (s_tamper_rows[_i].what == T_CONS_REWRITTEN || s_tamper_rows[_i].what == T_CONS_FORKED) {
            /* CONS_REWRITTEN: leaf m-1, the end of the first checkpoint,
             * rewritten; CONS_FORKED: a leaf in the middle of it */
            uint64_t at = s_tamper_rows[_i].what == T_CONS_REWRITTEN ? m - 1 : m / 2;
            ck_assert_int_eq(kb_merkle_leaf_hash("rewritten", 9, bad + at * HLEN), KB_OK);
            s_memtree_of(&evil, bad, n);
            ck_assert_int_eq(kb_merkle_root(evil.tree, evil_root), KB_OK);
            ck_assert_int_eq(kb_merkle_consistency_proof(evil.tree, m, n, proof, &np), KB_OK);
            /* against the honest old checkpoint and the new evil root */
            r2 = evil_root;
            /* the evil log's proof is valid for its own roots only */
            uint8_t evil_m[HLEN];
            ck_assert_int_eq(kb_merkle_root_at(evil.tree, m, evil_m), KB_OK);
            ck_assert_int_eq(kb_merkle_verify_consistency(m, n, proof, np, evil_m, evil_root), KB_OK);
            s_memtree_fini(&evil);
        } else {
            ck_assert_int_eq(kb_merkle_consistency_proof(good.tree, m, n, proof, &np), KB_OK);
            if (s_tamper_rows[_i].what == T_CONS_SHORT) {
                np--;
            } else {
                ck_assert_int_eq(kb_merkle_root_at(good.tree, m - 1, evil_root), KB_OK);
                r1 = evil_root;
            }
        }
        rc = kb_merkle_verify_consistency(m, n, proof, np, r1, r2);
    }
    ck_assert_msg(rc == s_tamper_rows[_i].rc, "row %d: %d (%s)", _i, rc, kb_last_error());
    free(honest);
    free(bad);
    s_memtree_fini(&good);
}
END_TEST

/* RFC 9162 verification does not bind the tree size on its own: a proof
 * for size 8 also verifies as one for size 7 against the same root. The
 * signed checkpoint binds size and root together, so verifiers must take
 * both from one checkpoint (as kb_note does). Recorded here so that nobody
 * relies on the size check alone. */
START_TEST(test_size_is_bound_by_the_checkpoint)
{
    uint8_t *hashes = s_leaf_hashes(8);
    s_memtree_t m;
    s_memtree_of(&m, hashes, 8);
    uint8_t root8[HLEN], root7[HLEN], proof[KB_MERKLE_PROOF_BYTES];
    size_t n;
    ck_assert_int_eq(kb_merkle_root(m.tree, root8), KB_OK);
    ck_assert_int_eq(kb_merkle_root_at(m.tree, 7, root7), KB_OK);
    ck_assert_int_eq(kb_merkle_inclusion_proof(m.tree, 5, 8, proof, &n), KB_OK);
    ck_assert_int_eq(kb_merkle_verify_inclusion(hashes + 5 * HLEN, 5, 7, proof, n, root8), KB_OK);
    ck_assert_int_eq(kb_merkle_verify_inclusion(hashes + 5 * HLEN, 5, 7, proof, n, root7), KB_ECRYPTO);
    free(hashes);
    s_memtree_fini(&m);
}
END_TEST

/* ------------------------------------------------------------ errors */

typedef struct {
    kb_merkle_mem_t *mem; /* the real storage */
    kb_merkle_io_t inner; /* its vtable */
    int fail_put_at;      /* fail the put with this number (from 1), 0 never */
    int puts;             /* puts seen */
} s_flaky_t;

static int s_flaky_get(void *ctx, unsigned level, uint64_t index, size_t width, uint8_t *buf)
{
    s_flaky_t *f = ctx;
    return f->inner.get_tile(f->inner.ctx, level, index, width, buf);
}

static int s_flaky_put(void *ctx, unsigned level, uint64_t index, const uint8_t *hashes, size_t width)
{
    s_flaky_t *f = ctx;
    if (++f->puts == f->fail_put_at)
        return kb_error_set(KB_EIO, "disk on fire");
    return f->inner.put_tile(f->inner.ctx, level, index, hashes, width);
}

START_TEST(test_failed_put_leaves_tree_unchanged)
{
    uint8_t *hashes = s_leaf_hashes(600);
    s_flaky_t f = {kb_merkle_mem_new(), {0}, 0, 0};
    ck_assert_ptr_nonnull(f.mem);
    f.inner = kb_merkle_mem_io(f.mem);
    kb_merkle_io_t io = {s_flaky_get, s_flaky_put, &f};
    kb_merkle_t *t = kb_merkle_new(&io);
    ck_assert_ptr_nonnull(t);
    for (uint64_t i = 0; i < 255; i++)
        ck_assert_int_eq(kb_merkle_append_hash(t, hashes + i * HLEN, NULL), KB_OK);
    /* leaf 255 fills the first leaf tile: fail its second put (level 1) */
    uint8_t before[HLEN], after[HLEN];
    ck_assert_int_eq(kb_merkle_root(t, before), KB_OK);
    f.fail_put_at = f.puts + 2;
    ck_assert_int_eq(kb_merkle_append_hash(t, hashes + 255 * HLEN, NULL), KB_EIO);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "disk on fire"));
    ck_assert_uint_eq(kb_merkle_size(t), 255);
    ck_assert_int_eq(kb_merkle_root(t, after), KB_OK);
    ck_assert_mem_eq(before, after, HLEN);
    /* the first put fails too: still unchanged */
    f.fail_put_at = f.puts + 1;
    ck_assert_int_eq(kb_merkle_append_hash(t, hashes + 255 * HLEN, NULL), KB_EIO);
    ck_assert_uint_eq(kb_merkle_size(t), 255);
    /* retried, it goes on as if nothing happened */
    for (uint64_t i = 255; i < 600; i++)
        ck_assert_int_eq(kb_merkle_append_hash(t, hashes + i * HLEN, NULL), KB_OK);
    uint8_t want[HLEN];
    ck_assert_int_eq(kb_merkle_root(t, after), KB_OK);
    ck_assert_int_eq(kb_merkle_root_from_hashes(hashes, 600, want), KB_OK);
    ck_assert_mem_eq(after, want, HLEN);
    s_check_inclusion(t, 17, 600, want);
    kb_merkle_destroy(&t);
    kb_merkle_mem_destroy(&f.mem);
    free(hashes);
}
END_TEST

START_TEST(test_bad_arguments)
{
    uint8_t *hashes = s_leaf_hashes(10);
    s_memtree_t m;
    s_memtree_of(&m, hashes, 10);
    uint8_t h[HLEN], r[HLEN], proof[KB_MERKLE_PROOF_BYTES];
    size_t n;
    ck_assert_int_eq(kb_merkle_root(m.tree, r), KB_OK);
    ck_assert_int_eq(kb_merkle_root_at(m.tree, 11, h), KB_EINVAL);
    ck_assert_int_eq(kb_merkle_leaf(m.tree, 10, h), KB_EINVAL);
    ck_assert_int_eq(kb_merkle_inclusion_proof(m.tree, 10, 10, proof, &n), KB_EINVAL);
    ck_assert_int_eq(kb_merkle_inclusion_proof(m.tree, 0, 11, proof, &n), KB_EINVAL);
    ck_assert_int_eq(kb_merkle_inclusion_proof(m.tree, 0, 0, proof, &n), KB_EINVAL);
    ck_assert_int_eq(kb_merkle_consistency_proof(m.tree, 5, 4, proof, &n), KB_EINVAL);
    ck_assert_int_eq(kb_merkle_consistency_proof(m.tree, 5, 11, proof, &n), KB_EINVAL);
    /* the trivial consistency proofs are empty */
    ck_assert_int_eq(kb_merkle_consistency_proof(m.tree, 0, 10, proof, &n), KB_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(kb_merkle_consistency_proof(m.tree, 10, 10, proof, &n), KB_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(kb_merkle_append(m.tree, NULL, 1, NULL), KB_EINVAL);

    uint8_t empty[HLEN];
    ck_assert_int_eq(kb_merkle_root_from_hashes(NULL, 0, empty), KB_OK);
    ck_assert_int_eq(kb_merkle_verify_inclusion(hashes, 10, 10, proof, 0, r), KB_EINVAL);
    ck_assert_int_eq(kb_merkle_verify_inclusion(hashes, 0, 10, NULL, 1, r), KB_EINVAL);
    ck_assert_int_eq(kb_merkle_verify_inclusion(hashes, 0, 10, proof, KB_MERKLE_MAX_PROOF + 1, r), KB_EINVAL);
    ck_assert_int_eq(kb_merkle_verify_consistency(5, 4, proof, 0, r, r), KB_EINVAL);
    /* empty and equal-size consistency: roots are all there is to check */
    ck_assert_int_eq(kb_merkle_verify_consistency(0, 10, NULL, 0, empty, r), KB_OK);
    ck_assert_int_eq(kb_merkle_verify_consistency(0, 10, NULL, 0, r, r), KB_ECRYPTO);
    ck_assert_int_eq(kb_merkle_verify_consistency(0, 10, r, 1, empty, r), KB_ECRYPTO);
    ck_assert_int_eq(kb_merkle_verify_consistency(10, 10, NULL, 0, r, r), KB_OK);
    ck_assert_int_eq(kb_merkle_verify_consistency(10, 10, NULL, 0, empty, r), KB_ECRYPTO);
    ck_assert_int_eq(kb_merkle_verify_consistency(10, 10, r, 1, r, r), KB_ECRYPTO);
    ck_assert_int_eq(kb_merkle_verify_consistency(3, 10, NULL, 0, empty, r), KB_ECRYPTO);
    /* a single-leaf tree: its leaf is its root, with an empty proof */
    ck_assert_int_eq(kb_merkle_verify_inclusion(hashes, 0, 1, NULL, 0, hashes), KB_OK);
    ck_assert_int_eq(kb_merkle_verify_inclusion(hashes, 0, 1, hashes, 1, hashes), KB_ECRYPTO);
    /* proofs that reach the root given but not the size claimed: the path
     * stops below the top of a tree that large */
    ck_assert_int_eq(kb_merkle_verify_inclusion(hashes, 0, 2, NULL, 0, hashes), KB_ECRYPTO);
    uint8_t root2[HLEN], root4[HLEN];
    ck_assert_int_eq(kb_merkle_root_at(m.tree, 2, root2), KB_OK);
    ck_assert_int_eq(kb_merkle_root_at(m.tree, 4, root4), KB_OK);
    ck_assert_int_eq(kb_merkle_consistency_proof(m.tree, 2, 4, proof, &n), KB_OK);
    ck_assert_int_eq(kb_merkle_verify_consistency(2, 4, proof, n, root2, root4), KB_OK);
    ck_assert_int_eq(kb_merkle_verify_consistency(2, 8, proof, n, root2, root4), KB_ECRYPTO);
    ck_assert_int_eq(kb_merkle_inclusion_proof(m.tree, 1, 4, proof, &n), KB_OK);
    ck_assert_int_eq(kb_merkle_verify_inclusion(hashes + HLEN, 1, 4, proof, n, root4), KB_OK);
    ck_assert_int_eq(kb_merkle_verify_inclusion(hashes + HLEN, 1, 8, proof, n, root4), KB_ECRYPTO);
    kb_merkle_io_t none = {NULL, NULL, NULL};
    ck_assert_ptr_null(kb_merkle_new(&none));
    ck_assert_ptr_null(kb_merkle_new(NULL));
    kb_merkle_destroy(NULL);
    kb_merkle_acc_destroy(NULL);
    kb_merkle_mem_destroy(NULL);
    free(hashes);
    s_memtree_fini(&m);
}
END_TEST

/* Every proof of every pair of sizes up to 300 verifies, from tiles that
 * span two leaf tiles (the Python reference stops at 70). */
START_TEST(test_all_proofs_across_a_tile)
{
    const uint64_t n = 300;
    uint8_t *hashes = s_leaf_hashes(n);
    s_memtree_t m;
    s_memtree_of(&m, hashes, n);
    for (uint64_t size = 1; size <= n; size++) {
        uint8_t root[HLEN], want[HLEN];
        ck_assert_int_eq(kb_merkle_root_at(m.tree, size, root), KB_OK);
        ck_assert_int_eq(kb_merkle_root_from_hashes(hashes, size, want), KB_OK);
        ck_assert_mem_eq(root, want, HLEN);
        for (uint64_t i = 0; i < size; i += 7)
            s_check_inclusion(m.tree, i, size, root);
        s_check_inclusion(m.tree, size - 1, size, root);
        for (uint64_t first = 1; first <= size; first += 5)
            s_check_consistency(m.tree, first, size);
    }
    free(hashes);
    s_memtree_fini(&m);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *s_suite(void)
{
    Suite *s = suite_create("merkle");
    TCase *tc = tcase_create("hashing");
    tcase_add_test(tc, test_hashes);
    tcase_add_test(tc, test_ct_vectors);
    tcase_add_test(tc, test_bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_python_reference);
    tcase_add_test(tc, test_all_proofs_across_a_tile);
    suite_add_tcase(s, tc);

    tc = tcase_create("tiles");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_tiles_in_memory);
    tcase_add_test(tc, test_tiles_leveldb);
    tcase_add_test(tc, test_leveldb_uncommitted_and_out_of_step);
    tcase_add_test(tc, test_failed_put_leaves_tree_unchanged);
    suite_add_tcase(s, tc);

    tc = tcase_create("tamper");
    tcase_add_loop_test(tc, test_tamper, 0, ROWS(s_tamper_rows));
    tcase_add_test(tc, test_size_is_bound_by_the_checkpoint);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
