/*
 * check_idset.c - the set of (sender, message id) pairs (broker/idset.c):
 * exact membership (the same id from another sender, or another id from
 * the same sender, is not in it), the value each pair keeps, growth past
 * the first table, clearing for reuse, and the refusals of its limits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "idset.h"
#include "kb_error.h"
#include "kb_test.h"

static void s_id(uint8_t id[KB_ID_LEN], uint32_t n)
{
    memset(id, 0, KB_ID_LEN);
    /* a UUIDv7 shape: time in front, the counter in the random tail */
    id[0] = 0x01;
    id[6] = 0x70;
    id[8] = 0x80;
    memcpy(id + 12, &n, sizeof n);
}

static const char *s_senders[] = {"politie", "fier", "rvdk", "gem-utrecht"};

START_TEST(test_exact_membership)
{
    kb_idset_t *s = kb_idset_new();
    ck_assert_ptr_nonnull(s);
    uint8_t id[KB_ID_LEN];
    s_id(id, 7);
    ck_assert_int_eq(kb_idset_has(s, "politie", id), 0);
    ck_assert_int_eq(kb_idset_add(s, "politie", id), KB_OK);
    ck_assert_int_eq(kb_idset_has(s, "politie", id), 1);
    ck_assert_int_eq(kb_idset_has(s, "fier", id), 0);        /* same id, other sender */
    ck_assert_int_eq(kb_idset_has(s, "politie-x", id), 0);   /* a longer sender */
    ck_assert_int_eq(kb_idset_has(s, "politi", id), 0);      /* a shorter one */
    uint8_t other[KB_ID_LEN];
    s_id(other, 8);
    ck_assert_int_eq(kb_idset_has(s, "politie", other), 0);
    ck_assert_int_eq(kb_idset_add(s, "politie", id), KB_OK); /* again: no second entry */
    ck_assert_uint_eq(kb_idset_size(s), 1);
    kb_idset_destroy(&s);
    ck_assert_ptr_null(s);
    kb_idset_destroy(&s);
    kb_idset_destroy(NULL);
}
END_TEST

/* A pair's value: what it was put with, kept when it is put again; a pair
 * not in the set leaves *value alone; add() puts 0. */
START_TEST(test_values)
{
    kb_idset_t *s = kb_idset_new();
    ck_assert_ptr_nonnull(s);
    uint8_t id[KB_ID_LEN], other[KB_ID_LEN];
    s_id(id, 7);
    s_id(other, 8);
    uint64_t value = 99;
    ck_assert_int_eq(kb_idset_get(s, "politie", id, &value), 0);
    ck_assert_uint_eq(value, 99);
    ck_assert_int_eq(kb_idset_put(s, "politie", id, 12345), KB_OK);
    ck_assert_int_eq(kb_idset_get(s, "politie", id, &value), 1);
    ck_assert_uint_eq(value, 12345);
    ck_assert_int_eq(kb_idset_get(s, "politie", id, NULL), 1);
    ck_assert_int_eq(kb_idset_put(s, "politie", id, 1), KB_OK); /* again: the first value stays */
    ck_assert_int_eq(kb_idset_get(s, "politie", id, &value), 1);
    ck_assert_uint_eq(value, 12345);
    ck_assert_int_eq(kb_idset_put(s, "fier", id, UINT64_MAX), KB_OK);
    ck_assert_int_eq(kb_idset_get(s, "fier", id, &value), 1);
    ck_assert_uint_eq(value, UINT64_MAX);
    ck_assert_int_eq(kb_idset_add(s, "politie", other), KB_OK);
    ck_assert_int_eq(kb_idset_get(s, "politie", other, &value), 1);
    ck_assert_uint_eq(value, 0);
    value = 99;
    ck_assert_int_eq(kb_idset_get(s, "rvdk", id, &value), 0);
    ck_assert_uint_eq(value, 99);
    kb_idset_clear(s);
    ck_assert_int_eq(kb_idset_get(s, "politie", id, &value), 0);
    ck_assert_uint_eq(value, 99);
    kb_idset_destroy(&s);
}
END_TEST

/* Many pairs (several growths), all found, none invented; cleared, the set
 * is empty and takes them again. Rows: how many pairs. */
static const uint32_t s_counts[] = {1, 511, 512, 513, 5000, 40000};

START_TEST(test_many_and_clear)
{
    kb_idset_t *s = kb_idset_new();
    ck_assert_ptr_nonnull(s);
    uint32_t n = s_counts[_i];
    uint8_t id[KB_ID_LEN];
    for (int round = 0; round < 2; round++) {
        for (uint32_t k = 0; k < n; k++) {
            s_id(id, k);
            ck_assert_int_eq(kb_idset_put(s, s_senders[k % 4], id, 1000u + k), KB_OK);
        }
        ck_assert_uint_eq(kb_idset_size(s), n);
        for (uint32_t k = 0; k < n + 100; k++) {
            s_id(id, k);
            for (unsigned j = 0; j < 4; j++)
                ck_assert_int_eq(kb_idset_has(s, s_senders[j], id), k < n && k % 4 == j);
            /* every value came through the growths */
            uint64_t value = 0;
            ck_assert_int_eq(kb_idset_get(s, s_senders[k % 4], id, &value), k < n);
            ck_assert_uint_eq(value, k < n ? 1000u + k : 0);
        }
        kb_idset_clear(s);
        ck_assert_uint_eq(kb_idset_size(s), 0);
        for (uint32_t k = 0; k < n; k += 97) {
            s_id(id, k);
            ck_assert_int_eq(kb_idset_has(s, s_senders[k % 4], id), 0);
        }
    }
    kb_idset_destroy(&s);
}
END_TEST

START_TEST(test_limits)
{
    kb_idset_t *s = kb_idset_new();
    ck_assert_ptr_nonnull(s);
    uint8_t id[KB_ID_LEN];
    s_id(id, 1);
    char longest[KB_AGENCY_ID_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[KB_AGENCY_ID_MAX] = '\0';
    ck_assert_int_eq(kb_idset_add(s, longest, id), KB_OK);
    ck_assert_int_eq(kb_idset_has(s, longest, id), 1);
    longest[KB_AGENCY_ID_MAX] = 'a';
    longest[KB_AGENCY_ID_MAX + 1] = '\0';
    ck_assert_int_eq(kb_idset_add(s, longest, id), KB_EINVAL);
    ck_assert_int_eq(kb_idset_has(s, longest, id), 0);
    ck_assert_int_eq(kb_idset_add(s, "", id), KB_EINVAL);
    /* full: the next new pair is refused, known ones still fine */
    for (uint32_t k = 2; kb_idset_size(s) < KB_IDSET_MAX; k++) {
        s_id(id, k);
        ck_assert_int_eq(kb_idset_add(s, "fier", id), KB_OK);
    }
    s_id(id, 0xfffffff0u);
    ck_assert_int_eq(kb_idset_add(s, "fier", id), KB_ETOOBIG);
    s_id(id, 2);
    ck_assert_int_eq(kb_idset_add(s, "fier", id), KB_OK);
    ck_assert_uint_eq(kb_idset_size(s), KB_IDSET_MAX);
    kb_idset_destroy(&s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("idset");
    TCase *tc = tcase_create("idset");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_exact_membership);
    tcase_add_test(tc, test_values);
    tcase_add_loop_test(tc, test_many_and_clear, 0, (int)(sizeof s_counts / sizeof s_counts[0]));
    tcase_add_test(tc, test_limits);
    suite_add_tcase(s, tc);
    return kb_test_run(s);
}
