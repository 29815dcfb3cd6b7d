/*
 * check_outbox.c - the SDK's durable outbox and its record of seen messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "kb_error.h"
#include "kb_ldb.h"
#include "kb_test.h"
#include "sdk_internal.h"

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

/* kb_outbox_index_from() finds where to go on sending, whatever was
 * removed before, between and after. */
START_TEST(test_index_from)
{
    kb_outbox_t *o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    ck_assert_uint_eq(kb_outbox_index_from(o, 0), 0); /* empty */
    for (uint8_t i = 1; i <= 10; i++)
        s_put(o, i);
    uint64_t seq[10];
    for (size_t i = 0; i < 10; i++)
        seq[i] = kb_outbox_at(o, i)->seq;
    uint8_t id[16] = {1};
    ck_assert_int_eq(kb_outbox_remove(o, id), KB_OK); /* from the front */
    id[0] = 5;
    ck_assert_int_eq(kb_outbox_remove(o, id), KB_OK); /* from the middle */
    /* left: ids 2 3 4 6 7 8 9 10 at indexes 0..7 */
    ck_assert_uint_eq(kb_outbox_index_from(o, 0), 0);
    ck_assert_uint_eq(kb_outbox_index_from(o, seq[0]), 0); /* removed: the next one */
    ck_assert_uint_eq(kb_outbox_index_from(o, seq[1]), 0);
    ck_assert_uint_eq(kb_outbox_index_from(o, seq[3]), 2);
    ck_assert_uint_eq(kb_outbox_index_from(o, seq[4]), 3); /* removed: id 6 */
    ck_assert_int_eq(kb_outbox_at(o, 3)->id[0], 6);
    ck_assert_uint_eq(kb_outbox_index_from(o, seq[9]), 7);
    ck_assert_uint_eq(kb_outbox_index_from(o, seq[9] + 1), 8); /* past the end */
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

/* Seen messages are known by sender and id: the same id from another
 * sender is another message. */
START_TEST(test_seen)
{
    kb_outbox_t *o = kb_outbox_open(s_dir);
    kb_seen_key_t keys[3] = {{"politie", {1}}, {"politie", {2}}, {"rvdk", {1}}};
    ck_assert_int_eq(kb_outbox_seen(o, &keys[0]), 0);
    ck_assert_int_eq(kb_outbox_mark_seen(o, keys, 2), KB_OK);
    ck_assert_int_eq(kb_outbox_mark_seen(o, keys, 0), KB_OK); /* nothing */
    kb_outbox_destroy(&o);
    o = kb_outbox_open(s_dir);
    ck_assert_int_eq(kb_outbox_seen(o, &keys[0]), 1);
    ck_assert_int_eq(kb_outbox_seen(o, &keys[1]), 1);
    ck_assert_int_eq(kb_outbox_seen(o, &keys[2]), 0); /* rvdk's id 1 is not politie's */
    /* a sender that is a prefix of another names other keys */
    kb_seen_key_t pol = {"pol", {1}};
    ck_assert_int_eq(kb_outbox_seen(o, &pol), 0);
    kb_outbox_destroy(&o);
}
END_TEST

/* Entries s<id:16> of earlier SDK versions hold no sender: they are not
 * taken as a match for any sender, and the unsent submissions load as
 * before. */
START_TEST(test_seen_old_entries_ignored)
{
    kb_outbox_t *o = kb_outbox_open(s_dir);
    s_put(o, 7);
    kb_outbox_destroy(&o);
    char path[128];
    snprintf(path, sizeof path, "%s/state.ldb", s_dir);
    kb_ldb_t l;
    kb_ldb_open(&l, path);
    uint8_t key[17] = {'s', 1}, when[8] = {0};
    char *err = NULL;
    leveldb_put(l.db, l.wo, (const char *)key, sizeof key, (const char *)when, sizeof when, &err);
    ck_assert_ptr_null(err);
    kb_ldb_close(&l);
    o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    kb_seen_key_t k = {"politie", {1}};
    ck_assert_int_eq(kb_outbox_seen(o, &k), 0);
    uint8_t want[] = {7};
    s_expect(o, want, 1);
    kb_outbox_destroy(&o);
}
END_TEST

/* kb_outbox_seen_key() on what a broker could deliver. */
static const struct {
    size_t id_len;      /* message id bytes */
    const char *sender; /* NULL: the protobuf-c default "" */
    int rc;             /* expected */
} s_key_rows[] = {
    {16, "politie", KB_OK},
    {16, NULL, KB_OK},                                /* no sender: still one key */
    {16, "abcdefghijklmnopqrstuvwxyz012345", KB_OK},  /* KB_AGENCY_ID_MAX */
    {16, "abcdefghijklmnopqrstuvwxyz0123456", KB_EPROTO},
    {0, "politie", KB_EPROTO},
    {15, "politie", KB_EPROTO},
    {17, "politie", KB_EPROTO},
};

START_TEST(test_seen_key)
{
    uint8_t id[17] = {0x01, 0x89};
    Ketenbus__Envelope e;
    ketenbus__envelope__init(&e);
    e.message_id.data = id;
    e.message_id.len = s_key_rows[_i].id_len;
    if (s_key_rows[_i].sender)
        e.sender = (char *)s_key_rows[_i].sender;
    kb_seen_key_t k;
    ck_assert_int_eq(kb_outbox_seen_key(&k, &e), s_key_rows[_i].rc);
    if (s_key_rows[_i].rc == KB_OK) {
        ck_assert_str_eq(k.sender, s_key_rows[_i].sender ? s_key_rows[_i].sender : "");
        ck_assert_mem_eq(k.id, id, 16);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("outbox");
    TCase *tc = tcase_create("outbox");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_order_and_removal);
    tcase_add_test(tc, test_index_from);
    tcase_add_test(tc, test_batch);
    tcase_add_test(tc, test_retry_marks);
    tcase_add_test(tc, test_seen);
    tcase_add_test(tc, test_seen_old_entries_ignored);
    tcase_add_loop_test(tc, test_seen_key, 0, (int)(sizeof s_key_rows / sizeof s_key_rows[0]));
    suite_add_tcase(s, tc);
    return kb_test_run(s);
}
