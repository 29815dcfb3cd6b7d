/*
 * check_outbox.c - the SDK's durable outbox and seen-id record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "kb_error.h"
#include "sdk_internal.h"
#include "kb_test.h"

static char s_dir[64];

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/kboutbox.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A packed envelope whose message id is {n, 0, ...}. */
static void s_put(kb_outbox_t *o, uint8_t n)
{
    Ketenbus__Envelope e;
    ketenbus__envelope__init(&e);
    uint8_t id[16] = {n};
    e.message_id.data = id;
    e.message_id.len = 16;
    uint8_t buf[64];
    size_t len = ketenbus__envelope__pack(&e, buf);
    ck_assert_int_eq(kb_outbox_put(o, id, buf, len), KB_OK);
}

static void s_expect(kb_outbox_t *o, const uint8_t *ids, size_t n)
{
    ck_assert_uint_eq(kb_outbox_size(o), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(kb_outbox_at(o, i)->id[0], ids[i]);
    ck_assert_ptr_null(kb_outbox_at(o, n));
}

START_TEST(test_order_and_removal)
{
    kb_outbox_t *o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    for (uint8_t i = 1; i <= 200; i++)
        s_put(o, i);
    uint8_t id[16] = {0};
    /* in order (the usual case), then out of order */
    for (uint8_t i = 1; i <= 150; i++) {
        id[0] = i;
        ck_assert_int_eq(kb_outbox_remove(o, id), KB_OK);
    }
    id[0] = 170;
    ck_assert_int_eq(kb_outbox_remove(o, id), KB_OK);
    ck_assert_int_eq(kb_outbox_remove(o, id), KB_ENOTFOUND);
    /* appending reuses the room at the front */
    for (uint8_t i = 201; i <= 250; i++)
        s_put(o, i);
    uint8_t want[99];
    size_t n = 0;
    for (int i = 151; i <= 250; i++)
        if (i != 170)
            want[n++] = (uint8_t)i;
    s_expect(o, want, n);
    kb_outbox_destroy(&o);
    /* durable: the same entries in the same order after reopening */
    o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    s_expect(o, want, n);
    kb_outbox_destroy(&o);
}
END_TEST

/* Batches go in one write, keep their order among single puts, and grow the
 * table past its first allocation in one step. */
START_TEST(test_batch)
{
    enum { N = 150 };
    kb_outbox_t *o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    s_put(o, 1);
    Ketenbus__Envelope e;
    ketenbus__envelope__init(&e);
    kb_outbox_entry_t in[N];
    uint8_t bufs[N][64];
    for (size_t i = 0; i < N; i++) {
        memset(in[i].id, 0, 16);
        in[i].id[0] = (uint8_t)(2 + i);
        e.message_id.data = in[i].id;
        e.message_id.len = 16;
        in[i].len = ketenbus__envelope__pack(&e, bufs[i]);
        in[i].bytes = bufs[i];
    }
    ck_assert_int_eq(kb_outbox_put_batch(o, in, N), KB_OK);
    ck_assert_int_eq(kb_outbox_put_batch(o, in, 0), KB_OK); /* nothing */
    s_put(o, 200);
    uint8_t want[N + 2];
    for (size_t i = 0; i < N + 1; i++)
        want[i] = (uint8_t)(1 + i);
    want[N + 1] = 200;
    s_expect(o, want, N + 2);
    /* the outbox keeps its own copies */
    memset(bufs, 0, sizeof bufs);
    kb_outbox_destroy(&o);
    o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    s_expect(o, want, N + 2);
    /* sequence numbers go on after reopening */
    ck_assert_uint_gt(kb_outbox_at(o, N + 1)->seq, kb_outbox_at(o, N)->seq);
    ck_assert_uint_eq(kb_outbox_at(o, N)->seq, kb_outbox_at(o, 0)->seq + N);
    kb_outbox_destroy(&o);
}
END_TEST

/* Retry marks: set by id, read and cleared by index, gone with the entry,
 * and never stored (after a restart every entry is sent anyway). */
START_TEST(test_retry_marks)
{
    kb_outbox_t *o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    for (uint8_t i = 1; i <= 3; i++)
        s_put(o, i);
    uint8_t id[16] = {2}, unknown[16] = {9};
    ck_assert_int_eq(kb_outbox_take_retry(o, 1), 0); /* new entries are unmarked */
    ck_assert_int_eq(kb_outbox_mark_retry(o, id), KB_OK);
    ck_assert_int_eq(kb_outbox_mark_retry(o, unknown), KB_ENOTFOUND);
    ck_assert_int_eq(kb_outbox_take_retry(o, 0), 0);
    ck_assert_int_eq(kb_outbox_take_retry(o, 1), 1);
    ck_assert_int_eq(kb_outbox_take_retry(o, 1), 0); /* taking clears it */
    ck_assert_int_eq(kb_outbox_take_retry(o, 3), 0); /* out of range */
    /* the mark follows its entry when an earlier one goes */
    ck_assert_int_eq(kb_outbox_mark_retry(o, id), KB_OK);
    id[0] = 1;
    ck_assert_int_eq(kb_outbox_remove(o, id), KB_OK);
    ck_assert_int_eq(kb_outbox_at(o, 0)->id[0], 2);
    ck_assert_int_eq(kb_outbox_take_retry(o, 0), 1);
    id[0] = 3;
    ck_assert_int_eq(kb_outbox_mark_retry(o, id), KB_OK);
    kb_outbox_destroy(&o);
    o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    ck_assert_uint_eq(kb_outbox_size(o), 2);
    ck_assert_int_eq(kb_outbox_take_retry(o, 1), 0);
    kb_outbox_destroy(&o);
}
END_TEST

START_TEST(test_seen)
{
    kb_outbox_t *o = kb_outbox_open(s_dir);
    uint8_t ids[3][16] = {{1}, {2}, {3}};
    ck_assert_int_eq(kb_outbox_seen(o, ids[0]), 0);
    ck_assert_int_eq(kb_outbox_mark_seen(o, ids, 2), KB_OK);
    kb_outbox_destroy(&o);
    o = kb_outbox_open(s_dir);
    ck_assert_int_eq(kb_outbox_seen(o, ids[0]), 1);
    ck_assert_int_eq(kb_outbox_seen(o, ids[1]), 1);
    ck_assert_int_eq(kb_outbox_seen(o, ids[2]), 0);
    kb_outbox_destroy(&o);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("outbox");
    TCase *tc = tcase_create("outbox");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_order_and_removal);
    tcase_add_test(tc, test_batch);
    tcase_add_test(tc, test_retry_marks);
    tcase_add_test(tc, test_seen);
    suite_add_tcase(s, tc);
    return kb_test_run(s);
}
