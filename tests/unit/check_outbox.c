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
#include "kb_util.h"
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

#define S_HOUR_US (3600LL * 1000000)
#define S_DAY_US  (24 * S_HOUR_US)

/* Write a seen record r<sender>\0<id:16> acknowledged at when_us, or a raw
 * key and value, into the stopped state database l. */
static void s_raw(kb_ldb_t *l, const void *k, size_t kl, const void *v, size_t vl)
{
    char *err = NULL;
    leveldb_put(l->db, l->wo, k, kl, v, vl, &err);
    ck_assert_ptr_null(err);
}

static void s_seen_at(kb_ldb_t *l, const char *sender, uint8_t a, uint8_t b, int64_t when_us)
{
    uint8_t k[64], v[8];
    size_t sl = strlen(sender);
    k[0] = 'r';
    memcpy(k + 1, sender, sl + 1);
    memset(k + 2 + sl, 0, 16);
    k[2 + sl] = a;
    k[3 + sl] = b;
    kb_be64_put(v, (uint64_t)when_us);
    s_raw(l, k, 2 + sl + 16, v, sizeof v);
}

/* Seen records older than twice the broker's TTL plus the margin go,
 * younger ones stay; records of the old s<id:16> layout and records this SDK does
 * not write go; the work comes in steps of at most `max` records, each
 * going on where the last stopped; nothing goes before a broker told its
 * TTL. */
START_TEST(test_prune_seen)
{
    enum { N = 25 };
    const int64_t now = kb_now_us();
    kb_outbox_t *o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    s_put(o, 7);
    kb_outbox_destroy(&o);
    char path[128];
    snprintf(path, sizeof path, "%s/state.ldb", s_dir);
    kb_ldb_t l;
    kb_ldb_open(&l, path);
    for (uint8_t i = 0; i < N; i++) {
        s_seen_at(&l, "politie", 1, i, now - 10 * S_DAY_US);          /* expired long ago */
        s_seen_at(&l, "rvdk", 2, i, now - 3 * S_HOUR_US);             /* past twice the TTL, within the margin */
        s_seen_at(&l, "fier", 3, i, now - 60LL * 1000000);            /* within the TTL */
        uint8_t legacy[17] = {'s', 4, i};
        s_raw(&l, legacy, sizeof legacy, "\0\0\0\0\0\0\0\0", 8);
    }
    uint8_t odd[18] = {'r', '\0', 5};
    s_raw(&l, odd, sizeof odd, "short", 5); /* cannot be dated */
    kb_ldb_close(&l);

    o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    size_t removed = 99, total = 0;
    int done = 0, steps = 0;
    /* no TTL told yet: everything stays */
    ck_assert_int_eq(kb_outbox_prune_seen(o, now, 10, &removed, &done), KB_OK);
    ck_assert_uint_eq(removed, 0);
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(kb_outbox_set_ttl(o, (uint64_t)S_HOUR_US, now), KB_OK);
    do {
        ck_assert_int_eq(kb_outbox_prune_seen(o, now, 10, &removed, &done), KB_OK);
        ck_assert_uint_le(removed, 10);
        total += removed;
        steps++;
        ck_assert_int_le(steps, 100);
    } while (!done);
    ck_assert_int_eq(steps, (4 * N + 1 + 9) / 10); /* each record looked at once */
    ck_assert_uint_eq(total, 2 * N + 1);
    kb_seen_key_t gone = {"politie", {1, 3}}, kept = {"rvdk", {2, 3}}, young = {"fier", {3, 3}};
    ck_assert_int_eq(kb_outbox_seen(o, &gone), 0);
    ck_assert_int_eq(kb_outbox_seen(o, &kept), 1);
    ck_assert_int_eq(kb_outbox_seen(o, &young), 1);
    /* a second pass finds nothing more to do */
    ck_assert_int_eq(kb_outbox_prune_seen(o, now, 1000, &removed, &done), KB_OK);
    ck_assert_uint_eq(removed, 0);
    ck_assert_int_eq(done, 1);
    /* the margin is a day: a day later the rvdk records go too */
    ck_assert_int_eq(kb_outbox_prune_seen(o, now + S_DAY_US, 1000, &removed, &done), KB_OK);
    ck_assert_uint_eq(removed, N);
    uint8_t want[] = {7};
    s_expect(o, want, 1);
    kb_outbox_destroy(&o);
    ck_assert_uint_eq(kb_ldb_count_prefix(path, 's'), 0);
    ck_assert_uint_eq(kb_ldb_count_prefix(path, 'r'), N);
    ck_assert_uint_eq(kb_ldb_count_prefix(path, 'o'), 1);
}
END_TEST

/* The TTL the state keeps records for: the one told last, but a longer one
 * told before until what was queued under it has expired, also across a
 * restart. */
START_TEST(test_prune_ttl_shortened)
{
    const int64_t t0 = kb_now_us();
    kb_outbox_t *o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(kb_outbox_keep_us(o, t0), 0);
    ck_assert_int_eq(kb_outbox_set_ttl(o, 0, t0), KB_OK); /* not told */
    ck_assert_int_eq(kb_outbox_keep_us(o, t0), 0);
    ck_assert_int_eq(kb_outbox_set_ttl(o, (uint64_t)(10 * S_DAY_US), t0), KB_OK);
    ck_assert_int_eq(kb_outbox_keep_us(o, t0), 10 * S_DAY_US);
    /* a reload shortened it to an hour, seen at t1 */
    const int64_t t1 = t0 + S_DAY_US;
    ck_assert_int_eq(kb_outbox_set_ttl(o, (uint64_t)S_HOUR_US, t1), KB_OK);
    ck_assert_int_eq(kb_outbox_keep_us(o, t1), 10 * S_DAY_US);
    kb_outbox_destroy(&o);
    o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(kb_outbox_set_ttl(o, (uint64_t)S_HOUR_US, t1 + S_DAY_US), KB_OK); /* told again */
    ck_assert_int_eq(kb_outbox_keep_us(o, t1 + 10 * S_DAY_US - 1), 10 * S_DAY_US);
    ck_assert_int_eq(kb_outbox_keep_us(o, t1 + 10 * S_DAY_US), S_HOUR_US);
    /* a longer one replaces both */
    ck_assert_int_eq(kb_outbox_set_ttl(o, (uint64_t)(20 * S_DAY_US), t1 + 2 * S_DAY_US), KB_OK);
    ck_assert_int_eq(kb_outbox_keep_us(o, t1 + 2 * S_DAY_US), 20 * S_DAY_US);
    /* a TTL no broker gives is taken as the longest */
    ck_assert_int_eq(kb_outbox_set_ttl(o, UINT64_MAX, t1 + 3 * S_DAY_US), KB_OK);
    ck_assert_int_eq(kb_outbox_keep_us(o, t1 + 3 * S_DAY_US), KB_SEEN_TTL_MAX_US);
    size_t removed;
    int done;
    ck_assert_int_eq(kb_outbox_prune_seen(o, t1 + 3 * S_DAY_US, 10, &removed, &done), KB_OK);
    kb_outbox_destroy(&o);
}
END_TEST

/* The oldest delivery the SDK takes: none while no TTL was told (no record
 * goes then); twice the TTL and the margin; and never older than the
 * newest record pruning deleted, plus KB_SEEN_AHEAD_US, also when a longer
 * TTL is told afterwards and across a restart. */
START_TEST(test_oldest_after_pruning)
{
    const int64_t now = kb_now_us();
    kb_outbox_t *o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    kb_outbox_destroy(&o);
    char path[128];
    snprintf(path, sizeof path, "%s/state.ldb", s_dir);
    kb_ldb_t l;
    kb_ldb_open(&l, path);
    s_seen_at(&l, "politie", 1, 1, now - 10 * S_DAY_US);
    s_seen_at(&l, "politie", 1, 2, now - 20 * S_DAY_US);
    s_seen_at(&l, "fier", 2, 1, now - 60LL * 1000000);
    uint8_t legacy[17] = {'s', 4, 1}; /* not dated: says nothing of what went */
    s_raw(&l, legacy, sizeof legacy, "\0\0\0\0\0\0\0\0", 8);
    kb_ldb_close(&l);

    o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(kb_outbox_oldest_us(o, now), INT64_MIN);
    ck_assert_int_eq(kb_outbox_set_ttl(o, (uint64_t)S_HOUR_US, now), KB_OK);
    ck_assert_int_eq(kb_outbox_oldest_us(o, now), now - 2 * S_HOUR_US - KB_SEEN_MARGIN_US);
    size_t removed;
    int done;
    ck_assert_int_eq(kb_outbox_prune_seen(o, now, 1000, &removed, &done), KB_OK);
    ck_assert_uint_eq(removed, 3);
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(kb_outbox_oldest_us(o, now), now - 2 * S_HOUR_US - KB_SEEN_MARGIN_US);
    /* a broker tells a TTL of a year: the records of 10 and 20 days ago
     * are gone all the same, so nothing that old is taken */
    const int64_t gone = now - 10 * S_DAY_US + 1 + KB_SEEN_AHEAD_US;
    ck_assert_int_eq(kb_outbox_set_ttl(o, (uint64_t)(365 * S_DAY_US), now), KB_OK);
    ck_assert_int_eq(kb_outbox_oldest_us(o, now), gone);
    ck_assert_int_eq(kb_outbox_prune_seen(o, now, 1000, &removed, &done), KB_OK);
    ck_assert_uint_eq(removed, 0);
    kb_outbox_destroy(&o);
    o = kb_outbox_open(s_dir);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(kb_outbox_oldest_us(o, now), gone);
    const int64_t later = now + 800 * S_DAY_US;
    ck_assert_int_eq(kb_outbox_oldest_us(o, later), later - 730 * S_DAY_US - KB_SEEN_MARGIN_US);
    kb_seen_key_t young = {"fier", {2, 1}};
    ck_assert_int_eq(kb_outbox_seen(o, &young), 1);
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
    tcase_add_test(tc, test_prune_seen);
    tcase_add_test(tc, test_prune_ttl_shortened);
    tcase_add_test(tc, test_oldest_after_pruning);
    tcase_add_loop_test(tc, test_seen_key, 0, (int)(sizeof s_key_rows / sizeof s_key_rows[0]));
    suite_add_tcase(s, tc);
    return kb_test_run(s);
}
