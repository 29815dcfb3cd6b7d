/*
 * check_audit_block.c - the encoding of the audit log's blocks of 16
 * records (broker/audit_block.h): slots in order, empty slots, values that
 * do not decode, and the rewrite of one record that tampering tests and
 * tools use.
 */
#include <stdio.h>
#include <string.h>

#include <check.h>

#include "audit_block.h"
#include "kb_error.h"
#include "kb_test.h"

/* A block of records "r0", "r1", ... with the empty slots in skip. */
static void s_build(kb_ablock_buf_t *b, unsigned n, unsigned skip_mask)
{
    kb_ablock_reset(b);
    for (unsigned i = 0; i < n; i++) {
        char rec[8];
        int len = snprintf(rec, sizeof rec, "r%u", i);
        ck_assert_int_eq(kb_ablock_add(b, rec, (skip_mask >> i) & 1 ? 0 : (size_t)len), KB_OK);
    }
}

static void s_expect_slot(const kb_ablock_buf_t *b, unsigned slot, const char *want)
{
    const uint8_t *rec;
    size_t len;
    int rc = kb_ablock_slot(b->buf, b->len, slot, &rec, &len);
    if (!want) {
        ck_assert_int_eq(rc, KB_ENOTFOUND);
        return;
    }
    ck_assert_int_eq(rc, KB_OK);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert(memcmp(rec, want, len) == 0);
}

START_TEST(test_slots_in_order)
{
    kb_ablock_buf_t b = {0};
    s_build(&b, 16, 1u << 5);
    ck_assert_uint_eq(b.n, 16);
    ck_assert_int_eq(kb_ablock_add(&b, "x", 1), KB_EINVAL); /* 17th */
    s_expect_slot(&b, 0, "r0");
    s_expect_slot(&b, 5, "");
    s_expect_slot(&b, 15, "r15");
    kb_ablock_iter_t it;
    unsigned slot, seen = 0;
    const uint8_t *rec;
    size_t len;
    kb_ablock_iter_init(&it, b.buf, b.len);
    while (kb_ablock_next(&it, &slot, &rec, &len) == KB_OK)
        ck_assert_uint_eq(slot, seen++);
    ck_assert_uint_eq(seen, 16);
    s_build(&b, 3, 0);
    s_expect_slot(&b, 3, NULL);
    kb_ablock_free(&b);
}
END_TEST

/* Lengths that run past the value, cut-off varints and a 17th slot are
 * errors that name the record, never reads past the value. */
static const struct {
    const char *name;
    const char *val;
    size_t len;
} s_bad[] = {
    {"length past the end", "\x05" "abc", 4},
    {"varint cut off", "\x02" "ab" "\x80", 4},
    {"huge length", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10},
    {"17 slots", "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 17},
};

START_TEST(test_malformed_values)
{
    kb_ablock_iter_t it;
    unsigned slot;
    const uint8_t *rec;
    size_t len;
    int rc;
    kb_ablock_iter_init(&it, s_bad[_i].val, s_bad[_i].len);
    while ((rc = kb_ablock_next(&it, &slot, &rec, &len)) == KB_OK)
        ck_assert_uint_le((size_t)(rec - (const uint8_t *)s_bad[_i].val) + len, s_bad[_i].len);
    ck_assert_msg(rc == KB_EPROTO, "%s: %d", s_bad[_i].name, rc);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "audit block"));
    kb_ablock_buf_t out = {0};
    ck_assert_int_eq(kb_ablock_replace(&out, s_bad[_i].val, s_bad[_i].len, 0, "x", 1), KB_EPROTO);
    kb_ablock_free(&out);
}
END_TEST

START_TEST(test_replace_one_record)
{
    kb_ablock_buf_t b = {0}, out = {0};
    s_build(&b, 6, 0);
    /* changed in place */
    ck_assert_int_eq(kb_ablock_replace(&out, b.buf, b.len, 2, "changed", 7), KB_OK);
    ck_assert_uint_eq(out.n, 6);
    s_expect_slot(&out, 1, "r1");
    s_expect_slot(&out, 2, "changed");
    s_expect_slot(&out, 5, "r5");
    /* emptied in the middle: an empty slot */
    ck_assert_int_eq(kb_ablock_replace(&out, b.buf, b.len, 3, NULL, 0), KB_OK);
    ck_assert_uint_eq(out.n, 6);
    s_expect_slot(&out, 3, "");
    /* emptied at the end: the block ends at its last record, also past
     * empty slots before it */
    s_build(&b, 6, 1u << 4);
    ck_assert_int_eq(kb_ablock_replace(&out, b.buf, b.len, 5, NULL, 0), KB_OK);
    ck_assert_uint_eq(out.n, 4);
    s_expect_slot(&out, 3, "r3");
    s_expect_slot(&out, 4, NULL);
    /* past the end: empty slots up to it */
    s_build(&b, 2, 0);
    ck_assert_int_eq(kb_ablock_replace(&out, b.buf, b.len, 4, "r4", 2), KB_OK);
    ck_assert_uint_eq(out.n, 5);
    s_expect_slot(&out, 2, "");
    s_expect_slot(&out, 4, "r4");
    /* the only record emptied: nothing left */
    s_build(&b, 1, 0);
    ck_assert_int_eq(kb_ablock_replace(&out, b.buf, b.len, 0, NULL, 0), KB_OK);
    ck_assert_uint_eq(out.n, 0);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_int_eq(kb_ablock_replace(&out, NULL, 0, 16, "x", 1), KB_EINVAL);
    kb_ablock_free(&b);
    kb_ablock_free(&out);
}
END_TEST

/* A stored value is loaded whole; a damaged one up to the damage. */
START_TEST(test_load)
{
    kb_ablock_buf_t b = {0}, got = {0};
    s_build(&b, 5, 1u << 2);
    ck_assert_int_eq(kb_ablock_load(&got, b.buf, b.len), KB_OK);
    ck_assert_uint_eq(got.n, 5);
    ck_assert_uint_eq(got.len, b.len);
    s_expect_slot(&got, 2, "");
    s_expect_slot(&got, 4, "r4");
    ck_assert_int_eq(kb_ablock_add(&got, "r5", 2), KB_OK); /* and goes on */
    s_expect_slot(&got, 5, "r5");
    ck_assert_int_eq(kb_ablock_load(&got, NULL, 0), KB_OK);
    ck_assert_uint_eq(got.n, 0);
    /* two slots, then a length past the end */
    uint8_t bad[16];
    memcpy(bad, b.buf, 6); /* "r0" and "r1" with their lengths */
    bad[6] = 0x7f;
    ck_assert_int_eq(kb_ablock_load(&got, bad, 7), KB_EPROTO);
    ck_assert_uint_eq(got.n, 2);
    s_expect_slot(&got, 1, "r1");
    kb_ablock_free(&b);
    kb_ablock_free(&got);
}
END_TEST

START_TEST(test_keys)
{
    uint8_t k[KB_ABLOCK_KEY_LEN];
    uint64_t block = 0;
    kb_ablock_key(k, 0x0102030405060708ull);
    ck_assert_int_eq(k[0], 'b');
    ck_assert_int_eq(k[1], 1);
    ck_assert_int_eq(k[8], 8);
    ck_assert_int_eq(kb_ablock_key_parse(k, sizeof k, &block), 1);
    ck_assert_uint_eq(block, 0x0102030405060708ull);
    ck_assert_int_eq(kb_ablock_key_parse(k, sizeof k - 1, &block), 0);
    k[0] = 'a';
    ck_assert_int_eq(kb_ablock_key_parse(k, sizeof k, &block), 0);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("audit_block");
    TCase *tc = tcase_create("audit_block");
    tcase_add_test(tc, test_slots_in_order);
    tcase_add_loop_test(tc, test_malformed_values, 0, (int)(sizeof s_bad / sizeof *s_bad));
    tcase_add_test(tc, test_replace_one_record);
    tcase_add_test(tc, test_load);
    tcase_add_test(tc, test_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
