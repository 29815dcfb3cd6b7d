/*
 * check_verify_pruned.c - matching tombstones with the PRUNED records that
 * declare them (ops/cli/verify_pruned.c), as `audit verify` does.
 *
 * Each row is a log in miniature: tombstones (index, claim and the time
 * they keep) and PRUNED records (what they declare, and what the check
 * must say of each and which record it names), then
 * how many tombstones stay undeclared and the lowest of them. The declared
 * indices are hashed here the way the broker hashes them (SHA-256 of the
 * indices, 8 bytes big-endian each), so a row can declare one set while
 * the log holds another.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <openssl/evp.h>

#include "kb_error.h"
#include "kb_util.h"
#include "store.h"
#include "verify_pruned.h"
#include "kb_test.h"

#define ROWS(a) (int)(sizeof(a) / sizeof((a)[0]))
#define S_MAX   8            /* stones or declared indices in a row */
#define S_END   UINT64_MAX   /* ends a list of indices */
#define ALL     KB_PRUNE_ALL
#define SIGNAL  KETENBUS__KIND__KIND_SIGNAL
#define REFERRAL KETENBUS__KIND__KIND_REFERRAL

typedef struct {
    uint64_t index;  /* where the tombstone is */
    int claim;       /* what made it */
    int64_t time_us; /* the time it keeps */
} s_stone_t;

typedef struct {
    uint64_t at;               /* the PRUNED record's index */
    int legacy;                /* 1: without `pruning` (declares every kind below end) */
    int claim;                 /* ALL or a kind (9: none that exists) */
    uint64_t first, end;       /* the range it declares */
    uint64_t declared[S_MAX];  /* the indices it counts and hashes, S_END-terminated */
    int rc;                    /* what the check says of it */
    const char *why;           /* in its message (rc != KB_OK) */
    uint64_t bad;              /* the record it names (rc != KB_OK) */
    int64_t before_us;         /* the cut-off it states (0: none) */
} s_decl_t;

typedef struct {
    const char *name;          /* what the row shows */
    s_stone_t stones[S_MAX];   /* in index order; index S_END ends */
    s_decl_t decl[2];          /* in index order; at 0 ends */
    uint64_t undeclared;       /* tombstones left */
    uint64_t first_left;       /* the lowest of them */
    uint64_t last_decl;        /* the last PRUNED record that took tombstones; 0: none */
} s_row_t;

static const s_row_t s_rows[] = {
    {"exactly what was declared",
     {{3, SIGNAL, 0}, {5, SIGNAL, 0}, {9, SIGNAL, 0}, {S_END, 0, 0}},
     {{20, 0, SIGNAL, 0, 10, {3, 5, 9, S_END}, KB_OK, NULL, 0, 0}},
     0, 0, 20},
    {"a record hidden among a kind's tombstones",
     {{3, SIGNAL, 0}, {5, SIGNAL, 0}, {7, SIGNAL, 0}, {9, SIGNAL, 0}, {S_END, 0, 0}},
     {{20, 0, SIGNAL, 0, 10, {3, 5, 9, S_END}, KB_ECRYPTO, "but 4 are there", 3, 0}},
     0, 0, 20},
    {"a pruned record put back",
     {{3, SIGNAL, 0}, {9, SIGNAL, 0}, {S_END, 0, 0}},
     {{20, 0, SIGNAL, 0, 10, {3, 5, 9, S_END}, KB_ECRYPTO, "or a pruned one put back", 3, 0}},
     0, 0, 20},
    {"as many tombstones, at other places",
     {{3, SIGNAL, 0}, {6, SIGNAL, 0}, {9, SIGNAL, 0}, {S_END, 0, 0}},
     {{20, 0, SIGNAL, 0, 10, {3, 5, 9, S_END}, KB_ECRYPTO, "at other places", 3, 0}},
     0, 0, 20},
    {"a tombstone claiming a kind nobody pruned",
     {{3, SIGNAL, 0}, {4, REFERRAL, 0}, {5, SIGNAL, 0}, {S_END, 0, 0}},
     {{20, 0, SIGNAL, 0, 10, {3, 5, S_END}, KB_OK, NULL, 0, 0}},
     1, 4, 20},
    {"a tombstone below the declared range",
     {{1, SIGNAL, 0}, {3, SIGNAL, 0}, {5, SIGNAL, 0}, {S_END, 0, 0}},
     {{20, 0, SIGNAL, 2, 10, {3, 5, S_END}, KB_ECRYPTO, "record 1 was replaced by a tombstone", 1, 0}},
     0, 0, 20},
    {"a tombstone past the declared end",
     {{3, SIGNAL, 0}, {5, SIGNAL, 0}, {12, SIGNAL, 0}, {S_END, 0, 0}},
     {{20, 0, SIGNAL, 0, 10, {3, 5, S_END}, KB_OK, NULL, 0, 0}},
     1, 12, 20},
    {"two prunings of one kind, one after the other",
     {{1, SIGNAL, 0}, {2, SIGNAL, 0}, {11, SIGNAL, 0}, {12, SIGNAL, 0}, {S_END, 0, 0}},
     {{10, 0, SIGNAL, 0, 10, {1, 2, S_END}, KB_OK, NULL, 0, 0},
      {30, 0, SIGNAL, 10, 20, {11, 12, S_END}, KB_OK, NULL, 0, 0}},
     0, 0, 30},
    {"every kind and one kind side by side",
     {{0, ALL, 0}, {1, ALL, 0}, {5, SIGNAL, 0}, {S_END, 0, 0}},
     {{8, 0, ALL, 0, 4, {0, 1, S_END}, KB_OK, NULL, 0, 0}, {9, 0, SIGNAL, 4, 8, {5, S_END}, KB_OK, NULL, 0, 0}},
     0, 0, 9},
    {"a PRUNED record of the older form takes every-kind tombstones below it",
     {{0, ALL, 0}, {1, ALL, 0}, {2, ALL, 0}, {S_END, 0, 0}},
     {{5, 1, ALL, 0, 3, {S_END}, KB_OK, NULL, 0, 0}},
     0, 0, 5},
    {"an every-kind declaration does not cover a kind's tombstone",
     {{0, ALL, 0}, {1, SIGNAL, 0}, {S_END, 0, 0}},
     {{5, 0, ALL, 0, 3, {0, S_END}, KB_OK, NULL, 0, 0}},
     1, 1, 5},
    {"a PRUNED record naming a kind that does not exist",
     {{S_END, 0, 0}},
     {{5, 0, 9, 0, 3, {S_END}, KB_ECRYPTO, "names no kind", 5, 0}},
     0, 0, 0},
    {"tombstones older than the cut-off their pruning states",
     {{3, SIGNAL, 100}, {5, SIGNAL, 150}, {9, SIGNAL, 199}, {S_END, 0, 0}},
     {{20, 0, SIGNAL, 0, 10, {3, 5, 9, S_END}, KB_OK, NULL, 0, 200}},
     0, 0, 20},
    {"a tombstone whose time was moved past its pruning's cut-off",
     {{3, SIGNAL, 100}, {5, SIGNAL, 4900000000000000}, {9, SIGNAL, 199}, {S_END, 0, 0}},
     {{20, 0, SIGNAL, 0, 10, {3, 5, 9, S_END}, KB_ECRYPTO, "tombstone 5 has the time 2125-", 5, 200}},
     0, 0, 20},
    {"a tombstone as old as the cut-off is not older than it",
     {{0, ALL, 100}, {1, ALL, 200}, {S_END, 0, 0}},
     {{5, 0, ALL, 0, 3, {0, 1, S_END}, KB_ECRYPTO, "pruned only records older than", 1, 200}},
     0, 0, 5},
    {"a PRUNED record that states no cut-off checks no time",
     {{0, ALL, 900}, {S_END, 0, 0}},
     {{5, 0, ALL, 0, 3, {0, S_END}, KB_OK, NULL, 0, 0}},
     0, 0, 5},
    {"nothing pruned, nothing declared", {{S_END, 0, 0}}, {{0}}, 0, 0, 0},
};

/* SHA-256 of the indices as the broker hashes them. */
static size_t s_digest(const uint64_t *idx, uint8_t out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ck_assert_int_eq(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
    size_t n = 0;
    for (; idx[n] != S_END; n++) {
        uint8_t be[8];
        kb_be64_put(be, idx[n]);
        ck_assert_int_eq(EVP_DigestUpdate(md, be, sizeof be), 1);
    }
    ck_assert_int_eq(EVP_DigestFinal_ex(md, out, NULL), 1);
    EVP_MD_CTX_free(md);
    return n;
}

START_TEST(test_declarations)
{
    const s_row_t *row = &s_rows[_i];
    kb_pruned_check_t *c = kb_pruned_check_new();
    ck_assert_ptr_nonnull(c);
    size_t s = 0, d = 0;
    /* the log in index order: tombstones and PRUNED records interleaved */
    while (row->stones[s].index != S_END || (d < 2 && row->decl[d].at != 0)) {
        int decl_next = d < 2 && row->decl[d].at != 0 &&
                        (row->stones[s].index == S_END || row->decl[d].at < row->stones[s].index);
        if (!decl_next) {
            const s_stone_t *t = &row->stones[s];
            ck_assert_int_eq(kb_pruned_check_stone(c, t->index, t->claim, t->time_us), KB_OK);
            s++;
            continue;
        }
        const s_decl_t *x = &row->decl[d++];
        uint8_t digest[32];
        Ketenbus__Pruning p;
        ketenbus__pruning__init(&p);
        p.first = x->first;
        p.all_kinds = x->claim == ALL;
        p.kind = x->claim == ALL ? KETENBUS__KIND__KIND_UNSPECIFIED : (Ketenbus__Kind)x->claim;
        p.count = s_digest(x->declared, digest);
        p.indices_sha256.data = digest;
        p.indices_sha256.len = sizeof digest;
        p.before_us = x->before_us;
        Ketenbus__AuditRecord r;
        ketenbus__audit_record__init(&r);
        r.index = x->at;
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_PRUNED;
        r.tag = x->end;
        r.pruning = x->legacy ? NULL : &p;
        char why[512] = "";
        uint64_t bad = S_END;
        int rc = kb_pruned_check_record(c, x->at, &r, why, sizeof why, &bad);
        ck_assert_msg(rc == x->rc, "%s: record %llu: rc %d, want %d (%s)", row->name, (unsigned long long)x->at, rc,
                      x->rc, why);
        if (x->why) {
            ck_assert_msg(strstr(why, x->why) != NULL, "%s: want \"%s\" in \"%s\"", row->name, x->why, why);
            ck_assert_msg(bad == x->bad, "%s: names record %llu, want %llu", row->name, (unsigned long long)bad,
                          (unsigned long long)x->bad);
        }
    }
    uint64_t first = S_END;
    ck_assert_uint_eq(kb_pruned_check_undeclared(c, &first), row->undeclared);
    if (row->undeclared)
        ck_assert_uint_eq(first, row->first_left);
    uint64_t last = 0;
    ck_assert_int_eq(kb_pruned_check_last_declaration(c, &last), row->last_decl != 0);
    if (row->last_decl)
        ck_assert_uint_eq(last, row->last_decl);
    kb_pruned_check_destroy(&c);
    ck_assert_ptr_null(c);
    kb_pruned_check_destroy(&c); /* NULL is fine */
}
END_TEST

/* Many tombstones awaiting one declaration: the queue grows and is reused. */
START_TEST(test_many)
{
    kb_pruned_check_t *c = kb_pruned_check_new();
    ck_assert_ptr_nonnull(c);
    enum { N = 5000 };
    static uint64_t idx[N + 1];
    for (uint64_t round = 0; round < 3; round++) {
        for (uint64_t i = 0; i < N; i++) {
            idx[i] = round * 2 * N + 2 * i;
            ck_assert_int_eq(kb_pruned_check_stone(c, idx[i], SIGNAL, (int64_t)idx[i]), KB_OK);
        }
        idx[N] = S_END;
        uint8_t digest[32];
        Ketenbus__Pruning p;
        ketenbus__pruning__init(&p);
        p.first = round * 2 * N;
        p.kind = SIGNAL;
        p.count = s_digest(idx, digest);
        p.indices_sha256.data = digest;
        p.indices_sha256.len = sizeof digest;
        Ketenbus__AuditRecord r;
        ketenbus__audit_record__init(&r);
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_PRUNED;
        r.tag = (round + 1) * 2 * N;
        r.pruning = &p;
        char why[512] = "";
        uint64_t bad = 0;
        ck_assert_msg(kb_pruned_check_record(c, r.tag + 1, &r, why, sizeof why, &bad) == KB_OK, "%s", why);
    }
    uint64_t first = 0;
    ck_assert_uint_eq(kb_pruned_check_undeclared(c, &first), 0);
    kb_pruned_check_destroy(&c);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("verify_pruned");
    TCase *tc = tcase_create("declarations");
    tcase_add_loop_test(tc, test_declarations, 0, ROWS(s_rows));
    tcase_add_test(tc, test_many);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
