/*
 * check_store.c - the broker's LevelDB store: queues, accepted ids, audit.
 *
 * Runs against a real LevelDB in a scratch directory, reopened between steps
 * where durability is what is being tested.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <check.h>
#include <leveldb/c.h>

#include "kb_error.h"
#include "kb_ldb.h"
#include "kb_util.h"
#include "store.h"
#include "kb_test.h"

static char s_dir[64];
static uint8_t s_key[32];

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/kbstore.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
    for (int i = 0; i < 32; i++)
        s_key[i] = (uint8_t)(i * 7 + 1);
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static kb_store_t *s_open(void)
{
    kb_store_t *s = kb_store_open(s_dir, s_key);
    ck_assert_msg(s != NULL, "open: %s", kb_last_error());
    return s;
}

static uint64_t s_put(kb_store_t *s, kb_batch_t *b, const char *agency, const char *sender, uint8_t idbyte)
{
    uint8_t id[16] = {idbyte};
    uint8_t env[] = {0x12, 0x03, 'a', 'b', 'c'};
    Ketenbus__QueueEntry q;
    ketenbus__queue_entry__init(&q);
    q.envelope.data = env;
    q.envelope.len = sizeof env;
    q.expires_us = 1000 + idbyte;
    q.message_id.data = id;
    q.message_id.len = 16;
    q.sender = (char *)sender;
    q.kind = KETENBUS__KIND__KIND_SIGNAL;
    uint64_t seq = 0;
    ck_assert_int_eq(kb_store_queue_put(s, b, agency, &q, &seq), KB_OK);
    return seq;
}

typedef struct {
    uint64_t seqs[64];
    uint8_t ids[64];
    size_t n;
    size_t bad; /* entries passed as unreadable */
} s_seen_t;

static int s_collect(uint64_t seq, Ketenbus__QueueEntry *e, void *arg)
{
    s_seen_t *s = arg;
    if (!e) {
        s->bad++;
        return 0;
    }
    s->seqs[s->n] = seq;
    s->ids[s->n] = e->message_id.data[0];
    s->n++;
    ck_assert_str_eq(e->sender, "fier");
    ck_assert_int_eq(e->envelope.len, 5);
    return 0;
}

START_TEST(test_queue_order_and_ack)
{
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    for (uint8_t i = 0; i < 5; i++)
        ck_assert_int_eq(s_put(s, b, "politie", "fier", i), i);
    s_put(s, b, "rvdk", "fier", 99);
    /* staged only: nothing visible before the commit */
    s_seen_t seen = {0};
    ck_assert_int_eq(kb_store_queue_scan(s, "politie", 0, 64, s_collect, &seen), KB_OK);
    ck_assert_int_eq(seen.n, 0);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    ck_assert_int_eq(kb_store_queue_depth(s, "politie"), 5);
    ck_assert_int_eq(kb_store_queue_depth(s, "rvdk"), 1);
    ck_assert_int_eq(kb_store_queue_scan(s, "politie", 0, 64, s_collect, &seen), KB_OK);
    ck_assert_int_eq(seen.n, 5);
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(seen.ids[i], i);
    /* from a cursor, and a limit */
    memset(&seen, 0, sizeof seen);
    ck_assert_int_eq(kb_store_queue_scan(s, "politie", 3, 1, s_collect, &seen), KB_OK);
    ck_assert_int_eq(seen.n, 1);
    ck_assert_int_eq(seen.seqs[0], 3);
    /* acknowledge 0 and 3 */
    ck_assert_int_eq(kb_store_queue_del(s, b, "politie", 0), KB_OK);
    ck_assert_int_eq(kb_store_queue_del(s, b, "politie", 3), KB_OK);
    ck_assert_int_eq(kb_store_queue_del(s, b, "nobody", 0), KB_ENOTFOUND);
    ck_assert_int_eq(kb_store_queue_del(s, b, "politie", 77), KB_ENOTFOUND);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);

    /* durable across reopen, depth and order intact */
    s = s_open();
    ck_assert_int_eq(kb_store_queue_depth(s, "politie"), 3);
    memset(&seen, 0, sizeof seen);
    ck_assert_int_eq(kb_store_queue_scan(s, "politie", 0, 64, s_collect, &seen), KB_OK);
    ck_assert_int_eq(seen.n, 3);
    ck_assert_int_eq(seen.seqs[0], 1);
    ck_assert_int_eq(seen.seqs[1], 2);
    ck_assert_int_eq(seen.seqs[2], 4);
    kb_store_destroy(&s);
}
END_TEST

START_TEST(test_tags_never_reused)
{
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    for (uint8_t i = 0; i < 3; i++)
        s_put(s, b, "politie", "fier", i);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    for (uint64_t i = 0; i < 3; i++)
        ck_assert_int_eq(kb_store_queue_del(s, b, "politie", i), KB_OK);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    ck_assert_int_eq(kb_store_queue_depth(s, "politie"), 0);
    kb_store_destroy(&s);
    /* the queue is empty, yet a new entry gets the next tag, not 0: a late
     * ACK for an old tag can never remove a new message */
    s = s_open();
    ck_assert_int_eq(s_put(s, b, "politie", "fier", 9), 3);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
}
END_TEST

/* The agencies with queued entries are those whose depth is above 0,
 * whoever configures them: an emptied queue drops out, and the list is
 * read again from disk at open. */
START_TEST(test_queue_agencies)
{
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    char **ids = (char **)1;
    size_t n = 1;
    ck_assert_int_eq(kb_store_queue_agencies(s, &ids, &n), KB_OK);
    ck_assert_ptr_null(ids);
    ck_assert_uint_eq(n, 0);
    s_put(s, b, "politie", "fier", 1);
    s_put(s, b, "politie", "fier", 2);
    s_put(s, b, "rvdk", "fier", 3);
    s_put(s, b, "veilig-thuis", "fier", 4);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    ck_assert_int_eq(kb_store_queue_del(s, b, "rvdk", 0), KB_OK); /* staged: counted already */
    ck_assert_int_eq(kb_store_queue_agencies(s, &ids, &n), KB_OK);
    ck_assert_uint_eq(n, 2);
    int politie = 0, veilig = 0;
    for (size_t i = 0; i < n; i++) {
        politie += strcmp(ids[i], "politie") == 0;
        veilig += strcmp(ids[i], "veilig-thuis") == 0;
    }
    ck_assert_int_eq(politie, 1);
    ck_assert_int_eq(veilig, 1);
    free(ids);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    kb_store_destroy(&s);
    s = s_open();
    ck_assert_int_eq(kb_store_queue_agencies(s, &ids, &n), KB_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert(strcmp(ids[0], "rvdk") != 0 && strcmp(ids[1], "rvdk") != 0);
    free(ids);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
}
END_TEST

/* A batch of many puts and deletes carries each changed agency's two
 * counters once, with their values as the batch leaves them; sealed and
 * written apart (the broker's committer) it persists the same as
 * kb_store_commit. */
START_TEST(test_counters_once_per_batch)
{
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    for (uint8_t i = 0; i < 40; i++)
        s_put(s, b, i % 2 ? "politie" : "rvdk", "fier", i);
    ck_assert_uint_eq(kb_batch_size(b), 40);
    kb_store_seal(s, b);
    ck_assert_uint_eq(kb_batch_size(b), 40 + 2 * 2);
    kb_store_seal(s, b); /* nothing changed since */
    ck_assert_uint_eq(kb_batch_size(b), 44);
    ck_assert_int_eq(kb_store_write(s, b, 1), KB_OK);
    for (uint64_t i = 0; i < 10; i++)
        ck_assert_int_eq(kb_store_queue_del(s, b, "politie", i), KB_OK);
    s_put(s, b, "politie", "fier", 77);
    kb_store_seal(s, b);
    ck_assert_uint_eq(kb_batch_size(b), 10 + 1 + 2);
    ck_assert_int_eq(kb_store_write(s, b, 1), KB_OK);
    ck_assert_int_eq(kb_store_queue_depth(s, "politie"), 11);
    kb_store_destroy(&s);
    s = s_open();
    ck_assert_int_eq(kb_store_queue_depth(s, "politie"), 11);
    ck_assert_int_eq(kb_store_queue_depth(s, "rvdk"), 20);
    ck_assert_int_eq(kb_store_queue_next(s, "politie"), 21);
    ck_assert_int_eq(kb_store_queue_next(s, "rvdk"), 20);
    ck_assert_int_eq(kb_store_queue_next(s, "nobody"), 0);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
}
END_TEST

/* A queue whose stored depth says 0 while entries are queued (an earlier
 * version could count one acknowledgement twice) is counted again at
 * open, and its corrected depth is written with the next batch. */
START_TEST(test_zero_depth_with_entries_repaired_at_open)
{
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    for (uint8_t i = 0; i < 4; i++)
        s_put(s, b, "politie", "fier", i);
    s_put(s, b, "rvdk", "fier", 9);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    ck_assert_int_eq(kb_store_queue_del(s, b, "politie", 0), KB_OK);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    ck_assert_int_eq(kb_store_queues_repaired(s), 0);
    kb_store_destroy(&s);
    /* the damage: politie's depth counter ("c" + agency) set to 0 */
    leveldb_options_t *o = leveldb_options_create();
    char *err = NULL;
    leveldb_t *db = leveldb_open(o, s_dir, &err);
    ck_assert_msg(err == NULL, "%s", err);
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    const uint8_t zero[8] = {0};
    leveldb_put(db, wo, "cpolitie", 8, (const char *)zero, 8, &err);
    ck_assert_msg(err == NULL, "%s", err);
    leveldb_writeoptions_destroy(wo);
    leveldb_close(db);
    leveldb_options_destroy(o);

    s = s_open();
    ck_assert_int_eq(kb_store_queues_repaired(s), 1);
    ck_assert_int_eq(kb_store_queue_depth(s, "politie"), 3);
    ck_assert_int_eq(kb_store_queue_depth(s, "rvdk"), 1);
    /* written with the next batch: found without a count next time */
    s_put(s, b, "rvdk", "fier", 10);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    kb_store_destroy(&s);
    s = s_open();
    ck_assert_int_eq(kb_store_queues_repaired(s), 0);
    ck_assert_int_eq(kb_store_queue_depth(s, "politie"), 3);
    /* an emptied queue stays at 0 without being counted */
    for (uint64_t i = 1; i < 4; i++)
        ck_assert_int_eq(kb_store_queue_del(s, b, "politie", i), KB_OK);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    kb_store_destroy(&s);
    s = s_open();
    ck_assert_int_eq(kb_store_queues_repaired(s), 0);
    ck_assert_int_eq(kb_store_queue_depth(s, "politie"), 0);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
}
END_TEST

START_TEST(test_failed_commit_rolls_back_counters)
{
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    s_put(s, b, "politie", "fier", 1);
    ck_assert_int_eq(kb_store_queue_depth(s, "politie"), 1);
    /* abandon the batch as the broker does after a failed commit */
    kb_batch_clear(b);
    ck_assert_int_eq(kb_store_reopen(s), KB_OK);
    ck_assert_int_eq(kb_store_queue_depth(s, "politie"), 0);
    ck_assert_int_eq(s_put(s, b, "politie", "fier", 2), 0);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
}
END_TEST

/* Two entries queued for politie (1 and 2), committed, the store closed:
 * the start of the tests that damage entry 0 on disk. */
static void s_queue_two_for_politie(void)
{
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    s_put(s, b, "politie", "fier", 1);
    s_put(s, b, "politie", "fier", 2);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
}

/* The LevelDB key of politie's queue entry 0: 'q', the agency, NUL, the
 * sequence number big-endian. */
static const uint8_t s_politie_entry0[1 + 7 + 1 + 8] = {'q', 'p', 'o', 'l', 'i', 't', 'i', 'e', 0,
                                                        0,   0,   0,   0,   0,   0,   0,   0};

START_TEST(test_encrypted_at_rest)
{
    s_queue_two_for_politie();
    kb_store_t *s;

    /* the plaintext sender name never appears in the queue values; flip a
     * byte of entry 0 and it no longer opens */
    leveldb_options_t *o = leveldb_options_create();
    char *err = NULL;
    leveldb_t *db = leveldb_open(o, s_dir, &err);
    ck_assert_ptr_null(err);
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    size_t vl;
    char *v = leveldb_get(db, ro, (const char *)s_politie_entry0, sizeof s_politie_entry0, &vl, &err);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_null(memmem(v, vl, "fier", 4));
    v[vl / 2] ^= 1;
    leveldb_put(db, wo, (const char *)s_politie_entry0, sizeof s_politie_entry0, v, vl, &err);
    ck_assert_ptr_null(err);
    leveldb_free(v);
    leveldb_readoptions_destroy(ro);
    leveldb_writeoptions_destroy(wo);
    leveldb_close(db);
    leveldb_options_destroy(o);

    s = s_open();
    s_seen_t seen = {0};
    ck_assert_int_eq(kb_store_queue_scan(s, "politie", 0, 64, s_collect, &seen), KB_ECRYPTO);
    ck_assert_msg(strstr(kb_last_error(), "does not decrypt") != NULL, "%s", kb_last_error());
    ck_assert_int_eq(seen.n, 1); /* the intact entry is still there */
    ck_assert_int_eq(seen.ids[0], 2);
    ck_assert_int_eq(seen.bad, 1); /* and the caller is told of the other, to move past it */
    kb_store_destroy(&s);

    /* another storage key opens nothing */
    s_key[0] ^= 0xff;
    s = s_open();
    memset(&seen, 0, sizeof seen);
    ck_assert_int_eq(kb_store_queue_scan(s, "politie", 0, 64, s_collect, &seen), KB_ECRYPTO);
    ck_assert_int_eq(seen.n, 0);
    ck_assert_int_eq(seen.bad, 2);
    kb_store_destroy(&s);
}
END_TEST

/* A queue value too short to hold a nonce and a tag (a damaged disk) is
 * reported as such, like any entry that does not open, and the entries
 * after it are still read. */
START_TEST(test_short_queue_value_refused)
{
    s_queue_two_for_politie();
    kb_store_t *s;

    kb_ldb_t l;
    kb_ldb_open(&l, s_dir);
    char *err = NULL;
    leveldb_put(l.db, l.wo, (const char *)s_politie_entry0, sizeof s_politie_entry0, "0123456789", 10, &err);
    ck_assert_ptr_null(err);
    kb_ldb_close(&l);

    s = s_open();
    s_seen_t seen = {0};
    ck_assert_int_eq(kb_store_queue_scan(s, "politie", 0, 64, s_collect, &seen), KB_ECRYPTO);
    ck_assert_msg(strstr(kb_last_error(), "politie entry 0 is truncated") != NULL, "%s", kb_last_error());
    ck_assert_int_eq(seen.bad, 1);
    ck_assert_int_eq(seen.n, 1);
    ck_assert_int_eq(seen.ids[0], 2);
    kb_store_destroy(&s);
}
END_TEST

START_TEST(test_seen_and_audit)
{
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    uint8_t id[16] = {1, 2, 3};
    uint64_t idx = 0;
    ck_assert_int_eq(kb_store_seen_get(s, "fier", id, &idx), KB_ENOTFOUND);
    ck_assert_int_eq(kb_store_audit_size(s), 0);
    for (int i = 0; i < 10; i++) {
        Ketenbus__AuditRecord r;
        ketenbus__audit_record__init(&r);
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
        r.agency = (char *)"fier";
        uint64_t got;
        ck_assert_int_eq(kb_store_audit_append(s, b, &r, &got), KB_OK);
        ck_assert_int_eq(got, (uint64_t)i);
    }
    ck_assert_int_eq(kb_store_seen_put(s, b, "fier", id, 7), KB_OK);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);

    s = s_open();
    ck_assert_int_eq(kb_store_audit_size(s), 10);
    ck_assert_int_eq(kb_store_seen_get(s, "fier", id, &idx), KB_OK);
    ck_assert_int_eq(idx, 7);
    ck_assert_int_eq(kb_store_seen_get(s, "politie", id, &idx), KB_ENOTFOUND);
    Ketenbus__AuditRecord *r = NULL;
    ck_assert_int_eq(kb_store_audit_get(s, 9, &r), KB_OK);
    ck_assert_int_eq(r->index, 9);
    ck_assert_str_eq(r->agency, "fier");
    ketenbus__audit_record__free_unpacked(r, NULL);
    ck_assert_int_eq(kb_store_audit_get(s, 10, &r), KB_ENOTFOUND);
    kb_store_destroy(&s);
}
END_TEST

/* ------------------------------------------------------------ audit blocks */

static void s_audit_add(kb_store_t *s, kb_batch_t *b, uint64_t want)
{
    Ketenbus__AuditRecord r;
    ketenbus__audit_record__init(&r);
    r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
    r.agency = (char *)"fier";
    r.time_us = 1000 + (int64_t)want * 10;
    uint64_t got = UINT64_MAX;
    ck_assert_int_eq(kb_store_audit_append(s, b, &r, &got), KB_OK);
    ck_assert_uint_eq(got, want);
}

/* A store holding audit records [0, n), closed again. */
static void s_audit_fill(uint64_t n)
{
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    for (uint64_t i = 0; i < n; i++)
        s_audit_add(s, b, i);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
}

typedef struct {
    uint64_t next; /* index expected next */
    size_t n;      /* records seen */
} s_walk_t;

static int s_walk_fn(uint64_t index, const uint8_t *val, size_t len, void *arg)
{
    s_walk_t *w = arg;
    ck_assert_uint_eq(index, w->next);
    Ketenbus__AuditRecord *r = ketenbus__audit_record__unpack(NULL, len, val);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->index, index);
    ck_assert_int_eq(r->time_us, 1000 + (int64_t)index * 10);
    ketenbus__audit_record__free_unpacked(r, NULL);
    w->next++;
    w->n++;
    return 0;
}

/* Every record of [0, n) reads back, one by one and by scans that start
 * and end inside blocks. */
static void s_audit_check(kb_store_t *s, uint64_t n)
{
    ck_assert_uint_eq(kb_store_audit_size(s), n);
    for (uint64_t i = 0; i < n; i++) {
        Ketenbus__AuditRecord *r = NULL;
        ck_assert_msg(kb_store_audit_get(s, i, &r) == KB_OK, "record %llu: %s", (unsigned long long)i,
                      kb_last_error());
        ck_assert_uint_eq(r->index, i);
        ketenbus__audit_record__free_unpacked(r, NULL);
    }
    Ketenbus__AuditRecord *r = NULL;
    ck_assert_int_eq(kb_store_audit_get(s, n, &r), KB_ENOTFOUND);
    for (uint64_t from = 0; from < n; from += 7) {
        s_walk_t w = {from, 0};
        uint64_t end = from + 19 < n ? from + 19 : n;
        ck_assert_int_eq(kb_store_audit_scan(s, from, end, SIZE_MAX, s_walk_fn, &w), KB_OK);
        ck_assert_uint_eq(w.next, end);
        int64_t t = 0;
        uint64_t found = 0;
        ck_assert_int_eq(kb_store_audit_time(s, from, &t, &found), KB_OK);
        ck_assert_uint_eq(found, from);
        ck_assert_int_eq(t, 1000 + (int64_t)from * 10);
    }
    s_walk_t w = {3, 0};
    uint64_t want = n < 3 ? 0 : n - 3 < 5 ? n - 3 : 5;
    ck_assert_int_eq(kb_store_audit_scan(s, 3, n, 5, s_walk_fn, &w), KB_OK);
    ck_assert_uint_eq(w.n, want);
}

/* Batches of every size around the block's 16: the newest block is written
 * again with each batch that adds to it, and the log reads back whole after
 * each commit and each reopen. */
START_TEST(test_audit_blocks_across_batches)
{
    static const unsigned sizes[] = {1, 15, 3, 16, 5, 33, 2, 14, 16, 1};
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    uint64_t n = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        for (unsigned i = 0; i < sizes[k]; i++)
            s_audit_add(s, b, n++);
        ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
        s_audit_check(s, n);
        if (k % 3 == 2) { /* and from disk */
            kb_store_destroy(&s);
            s = s_open();
            s_audit_check(s, n);
        }
    }
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
    ck_assert_uint_eq(n, 106);
    ck_assert_uint_eq(kb_ldb_count_prefix(s_dir, 'b'), (106 + 15) / 16);
    ck_assert_uint_eq(kb_ldb_count_prefix(s_dir, 'a'), 0);
}
END_TEST

/* Record times never go down along the log, also across a restart: a
 * record staged with an earlier time (the clock stepped back) gets the
 * newest record's time. */
START_TEST(test_audit_times_never_go_down)
{
    static const int64_t asked[] = {1000, 2000, 1500, 2500, 100};
    static const int64_t stored[] = {1000, 2000, 2000, 2500, 2500, 2500};
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    for (size_t i = 0; i < sizeof asked / sizeof *asked; i++) {
        Ketenbus__AuditRecord r;
        ketenbus__audit_record__init(&r);
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECTED;
        r.agency = (char *)"politie";
        r.time_us = asked[i];
        ck_assert_int_eq(kb_store_audit_append(s, b, &r, NULL), KB_OK);
        if (i == 3) { /* and after a restart */
            ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
            kb_store_destroy(&s);
            s = s_open();
        }
    }
    Ketenbus__AuditRecord r;
    ketenbus__audit_record__init(&r);
    r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECTED;
    r.time_us = 0; /* even one with no time given */
    ck_assert_int_eq(kb_store_audit_append(s, b, &r, NULL), KB_OK);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    for (uint64_t i = 0; i < sizeof stored / sizeof *stored; i++) {
        int64_t t = 0;
        uint64_t found = 0;
        ck_assert_int_eq(kb_store_audit_time(s, i, &t, &found), KB_OK);
        ck_assert_uint_eq(found, i);
        ck_assert_int_eq(t, stored[i]);
    }
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
}
END_TEST

/* A newest record that does not decode does not stop the store from
 * opening (its time is not known): audit verify names the damage. */
START_TEST(test_audit_undecodable_newest_record_opens)
{
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    for (uint64_t i = 0; i < 20; i++)
        s_audit_add(s, b, i);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    kb_store_destroy(&s);
    kb_ldb_t l;
    kb_ldb_open(&l, s_dir);
    kb_ldb_put_record(&l, 19, "\xff\xff\xff", 3);
    kb_ldb_close(&l);
    s = kb_store_open_ex(s_dir, NULL, KB_STORE_NO_CREATE);
    ck_assert_msg(s != NULL, "%s", kb_last_error());
    ck_assert_uint_eq(kb_store_audit_size(s), 20);
    kb_store_destroy(&s);
    s = s_open();
    ck_assert_uint_eq(kb_store_audit_size(s), 20);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
}
END_TEST

/* A batch that is never written (a failed commit) takes its records with
 * it: after kb_store_reopen the log goes on from what is on disk, also
 * inside a block the lost batch had added to. */
START_TEST(test_audit_lost_batch_leaves_the_block_as_stored)
{
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    for (uint64_t i = 0; i < 21; i++)
        s_audit_add(s, b, i);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    for (uint64_t i = 21; i < 40; i++) /* fills block 1, starts block 2 */
        s_audit_add(s, b, i);
    kb_store_seal(s, b);
    kb_batch_clear(b);
    ck_assert_int_eq(kb_store_reopen(s), KB_OK);
    s_audit_check(s, 21);
    for (uint64_t i = 21; i < 26; i++)
        s_audit_add(s, b, i);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
    s = s_open();
    s_audit_check(s, 26);
    kb_store_destroy(&s);
}
END_TEST

/* Bytes in the largest LevelDB log (*.log) of the store's directory: the
 * one being written. */
static off_t s_log_size(void)
{
    DIR *d = opendir(s_dir);
    ck_assert_ptr_nonnull(d);
    off_t max = -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        char path[320];
        struct stat st;
        if (l < 4 || strcmp(e->d_name + l - 4, ".log") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", s_dir, e->d_name);
        if (stat(path, &st) == 0 && st.st_size > max)
            max = st.st_size;
    }
    closedir(d);
    ck_assert_int_ge(max, 0);
    return max;
}

/* A write that fails (here: the log may not grow, RLIMIT_FSIZE, as a full
 * disk would) leaves records in the newest block in memory that are not
 * on disk. Until the store is opened again no record may be appended: it
 * would be numbered after records that do not exist. */
START_TEST(test_audit_no_append_after_failed_commit)
{
    kb_store_t *s = s_open();
    kb_batch_t *b = kb_batch_new();
    for (uint64_t i = 0; i < 20; i++)
        s_audit_add(s, b, i);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    for (uint64_t i = 20; i < 30; i++)
        s_audit_add(s, b, i);
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)s_log_size() + 16; /* not even the record's header fits */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = kb_store_commit(s, b, 1);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    ck_assert_msg(rc == KB_EIO, "the commit past the file size limit returned %d", rc);
    /* refused, and the message says why */
    Ketenbus__AuditRecord r;
    ketenbus__audit_record__init(&r);
    r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
    r.agency = (char *)"fier";
    uint64_t got = UINT64_MAX;
    ck_assert_int_eq(kb_store_audit_append(s, b, &r, &got), KB_EIO);
    ck_assert_msg(strstr(kb_last_error(), "a write failed") != NULL, "%s", kb_last_error());
    ck_assert_uint_eq(got, UINT64_MAX);
    /* opened again, the log goes on from what is on disk */
    kb_batch_clear(b);
    ck_assert_int_eq(kb_store_reopen(s), KB_OK);
    s_audit_check(s, 20);
    for (uint64_t i = 20; i < 25; i++)
        s_audit_add(s, b, i);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
    s = s_open();
    s_audit_check(s, 25);
    kb_store_destroy(&s);
}
END_TEST

/* A data directory of the layout before blocks (one a<index> entry per
 * record) is moved into blocks when opened; a record missing from it stays
 * missing. */
START_TEST(test_audit_one_entry_per_record_migrated)
{
    kb_store_t *s = s_open(); /* the other keys of a store (index version, ...) */
    kb_store_destroy(&s);
    char *err = NULL;
    leveldb_options_t *o = leveldb_options_create();
    leveldb_t *db = leveldb_open(o, s_dir, &err);
    ck_assert_msg(err == NULL, "%s", err);
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    const uint64_t n = 16 * 300 + 7, gap = 40;
    for (uint64_t i = 0; i < n; i++) {
        if (i == gap)
            continue;
        Ketenbus__AuditRecord r;
        ketenbus__audit_record__init(&r);
        r.index = i;
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
        r.time_us = 1000 + (int64_t)i * 10;
        uint8_t buf[64], k[9] = {'a'};
        size_t len = ketenbus__audit_record__pack(&r, buf);
        kb_be64_put(k + 1, i);
        leveldb_put(db, wo, (const char *)k, sizeof k, (const char *)buf, len, &err);
        ck_assert_msg(err == NULL, "%s", err);
    }
    leveldb_writeoptions_destroy(wo);
    leveldb_close(db);
    leveldb_options_destroy(o);

    s = s_open();
    ck_assert_uint_eq(kb_store_audit_migrated(s), n - 1);
    ck_assert_uint_eq(kb_store_audit_size(s), n);
    Ketenbus__AuditRecord *r = NULL;
    ck_assert_int_eq(kb_store_audit_get(s, gap, &r), KB_ENOTFOUND);
    s_walk_t w = {0, 0};
    ck_assert_int_eq(kb_store_audit_scan(s, 0, gap, SIZE_MAX, s_walk_fn, &w), KB_OK);
    w.next = gap + 1;
    ck_assert_int_eq(kb_store_audit_scan(s, gap, n, SIZE_MAX, s_walk_fn, &w), KB_OK);
    ck_assert_uint_eq(w.n, n - 1);
    /* the log goes on in the newest block */
    kb_batch_t *b = kb_batch_new();
    s_audit_add(s, b, n);
    ck_assert_int_eq(kb_store_commit(s, b, 1), KB_OK);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
    ck_assert_uint_eq(kb_ldb_count_prefix(s_dir, 'a'), 0);
    ck_assert_uint_eq(kb_ldb_count_prefix(s_dir, 'b'), n / 16 + 1);
    s = s_open();
    ck_assert_uint_eq(kb_store_audit_migrated(s), 0);
    ck_assert_uint_eq(kb_store_audit_size(s), n + 1);
    ck_assert_int_eq(kb_store_audit_get(s, n, &r), KB_OK);
    ck_assert_int_eq(r->time_us, 1000 + (int64_t)n * 10);
    ketenbus__audit_record__free_unpacked(r, NULL);
    kb_store_destroy(&s);
}
END_TEST

/* Write old-layout records (a<index>, one entry each) for [from, to)
 * straight into the stopped store's LevelDB. */
static void s_old_records(uint64_t from, uint64_t to)
{
    char *err = NULL;
    leveldb_options_t *o = leveldb_options_create();
    leveldb_t *db = leveldb_open(o, s_dir, &err);
    ck_assert_msg(err == NULL, "%s", err);
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    for (uint64_t i = from; i < to; i++) {
        Ketenbus__AuditRecord r;
        ketenbus__audit_record__init(&r);
        r.index = i;
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
        r.time_us = 1000 + (int64_t)i * 10;
        r.reason = (char *)"a record written in the layout of one entry per record";
        uint8_t buf[128], k[9] = {'a'};
        size_t len = ketenbus__audit_record__pack(&r, buf);
        kb_be64_put(k + 1, i);
        leveldb_put(db, wo, (const char *)k, sizeof k, (const char *)buf, len, &err);
        ck_assert_msg(err == NULL, "%s", err);
    }
    leveldb_compact_range(db, NULL, 0, NULL, 0); /* into tables, as an old store is */
    leveldb_writeoptions_destroy(wo);
    leveldb_close(db);
    leveldb_options_destroy(o);
}

/* A move into blocks that stopped halfway left block 0 written with
 * records 0-9 and entries for 10-20: the next open completes the block
 * rather than writing over it. A record in both layouts is refused. */
START_TEST(test_audit_migration_completes_a_written_block)
{
    s_audit_fill(10);
    s_old_records(10, 21);
    kb_store_t *s = s_open();
    ck_assert_uint_eq(kb_store_audit_migrated(s), 11);
    s_audit_check(s, 21);
    kb_store_destroy(&s);

    s_old_records(5, 6);
    ck_assert_ptr_null(kb_store_open(s_dir, s_key));
    ck_assert_msg(strstr(kb_last_error(), "audit record 5 is stored both") != NULL, "%s", kb_last_error());
}
END_TEST

/* A table of the old layout that cannot be read (a checksum mismatch, a
 * third of the way into 6,000 records, before the first write of 4,096)
 * stops the move before anything is written; once it reads again, every
 * record is moved. */
START_TEST(test_audit_migration_stops_at_a_read_error)
{
    kb_store_t *s = s_open();
    kb_store_destroy(&s);
    const uint64_t n = 6000;
    s_old_records(0, n);
    /* flip a byte in the middle of the biggest table */
    char cmd[256], path[256] = "";
    snprintf(cmd, sizeof cmd, "ls -S '%s'/*.ldb | head -1", s_dir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(fgets(path, sizeof path, p));
    pclose(p);
    path[strcspn(path, "\n")] = '\0';
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long at = ftell(f) / 3;
    ck_assert_int_eq(fseek(f, at, SEEK_SET), 0);
    int c = fgetc(f);
    ck_assert_int_eq(fseek(f, at, SEEK_SET), 0);
    fputc(c ^ 0x20, f);
    fclose(f);

    ck_assert_ptr_null(kb_store_open(s_dir, s_key));
    ck_assert_msg(strstr(kb_last_error(), "audit log") && strstr(kb_last_error(), "Corruption"), "%s",
                  kb_last_error());
    ck_assert_uint_eq(kb_ldb_count_prefix(s_dir, 'b'), 0); /* nothing written */
    f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, at, SEEK_SET), 0);
    fputc(c, f);
    fclose(f);
    s = s_open();
    ck_assert_uint_eq(kb_store_audit_size(s), n);
    s_walk_t w = {0, 0};
    ck_assert_int_eq(kb_store_audit_scan(s, 0, n, SIZE_MAX, s_walk_fn, &w), KB_OK);
    ck_assert_uint_eq(w.n, n);
    kb_store_destroy(&s);
}
END_TEST

/* A newest block that does not decode: the broker (with the storage key)
 * does not open the store; the audit tools do, to show the damage, and
 * append nothing to it. */
START_TEST(test_audit_damaged_newest_block)
{
    s_audit_fill(20);
    kb_store_t *s = NULL;
    kb_batch_t *b = kb_batch_new();
    kb_ldb_t l;
    kb_ldb_open(&l, s_dir);
    uint8_t k[9] = {'b'};
    kb_be64_put(k + 1, 1);
    char *err = NULL;
    leveldb_put(l.db, l.wo, (const char *)k, sizeof k, "\x05" "abc", 4, &err); /* a length past its end */
    ck_assert_ptr_null(err);
    kb_ldb_close(&l);

    ck_assert_ptr_null(kb_store_open(s_dir, s_key));
    ck_assert_msg(strstr(kb_last_error(), "newest audit block (records from 16) is damaged") != NULL, "%s",
                  kb_last_error());
    s = kb_store_open_ex(s_dir, NULL, KB_STORE_NO_CREATE);
    ck_assert_msg(s != NULL, "%s", kb_last_error());
    s_walk_t w = {0, 0};
    ck_assert_int_eq(kb_store_audit_scan(s, 0, UINT64_MAX, SIZE_MAX, s_walk_fn, &w), KB_EPROTO);
    ck_assert_msg(strstr(kb_last_error(), "audit records 16 to 31") != NULL, "%s", kb_last_error());
    ck_assert_uint_eq(w.n, 16);
    Ketenbus__AuditRecord *r = NULL;
    ck_assert_int_eq(kb_store_audit_get(s, 17, &r), KB_EPROTO);
    ck_assert_msg(strstr(kb_last_error(), "audit record 17") != NULL, "%s", kb_last_error());
    Ketenbus__AuditRecord rec;
    ketenbus__audit_record__init(&rec);
    rec.time_us = 1;
    ck_assert_int_eq(kb_store_audit_append(s, b, &rec, NULL), KB_EIO);
    ck_assert_msg(strstr(kb_last_error(), "damaged") != NULL, "%s", kb_last_error());
    ck_assert_uint_eq(kb_batch_size(b), 0);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
}
END_TEST

/* A key among the blocks that is not a block's key (a stray write, or a
 * block number whose indices overflow): the end of the log is unknown, so
 * the broker does not open the store and the audit tools append nothing;
 * a scan reports the key rather than stopping short of the records after
 * it. */
START_TEST(test_audit_stray_key_among_blocks)
{
    static const struct {
        uint8_t key[10];
        size_t len;
        int last;         /* whether it sorts after the newest block */
        size_t scanned;   /* records a scan visits before it */
    } stray[] = {
        {{'b', 0, 0, 0, 0, 0, 0, 0, 2, 'X'}, 10, 1, 40}, /* after block 2, not 9 bytes */
        {{'b', 0x10, 0, 0, 0, 0, 0, 0, 0}, 9, 1, 40},    /* block 2^60: index 2^64 */
        {{'b', 0, 0, 0, 0, 0, 0, 0, 1, 'X'}, 10, 0, 32}, /* between blocks 1 and 2 */
    };
    s_audit_fill(40);
    kb_store_t *s = NULL;
    kb_batch_t *b = kb_batch_new();
    kb_ldb_t l;
    kb_ldb_open(&l, s_dir);
    char *err = NULL;
    leveldb_put(l.db, l.wo, (const char *)stray[_i].key, stray[_i].len, "\x01" "x", 2, &err);
    ck_assert_ptr_null(err);
    kb_ldb_close(&l);

    if (stray[_i].last) {
        ck_assert_ptr_null(kb_store_open(s_dir, s_key));
        ck_assert_msg(strstr(kb_last_error(), "end of the audit log is unknown") != NULL, "%s", kb_last_error());
        s = kb_store_open_ex(s_dir, NULL, KB_STORE_NO_CREATE);
        ck_assert_msg(s != NULL, "%s", kb_last_error());
        Ketenbus__AuditRecord rec;
        ketenbus__audit_record__init(&rec);
        rec.time_us = 1;
        ck_assert_int_eq(kb_store_audit_append(s, b, &rec, NULL), KB_EIO);
    } else {
        s = s_open();
        ck_assert_uint_eq(kb_store_audit_size(s), 40);
    }
    s_walk_t w = {0, 0};
    ck_assert_int_eq(kb_store_audit_scan(s, 0, UINT64_MAX, SIZE_MAX, s_walk_fn, &w), KB_EPROTO);
    ck_assert_msg(strstr(kb_last_error(), "not a block's key") != NULL, "%s", kb_last_error());
    ck_assert_uint_eq(w.n, stray[_i].scanned);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
}
END_TEST

START_TEST(test_open_errors)
{
    ck_assert_ptr_null(kb_store_open("/proc/definitely/not/here", s_key));
    ck_assert_msg(strlen(kb_last_error()) > 0, "no detail for a failed open");
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_queue_order_and_ack);
    tcase_add_test(tc, test_tags_never_reused);
    tcase_add_test(tc, test_queue_agencies);
    tcase_add_test(tc, test_counters_once_per_batch);
    tcase_add_test(tc, test_failed_commit_rolls_back_counters);
    tcase_add_test(tc, test_zero_depth_with_entries_repaired_at_open);
    tcase_add_test(tc, test_encrypted_at_rest);
    tcase_add_test(tc, test_short_queue_value_refused);
    tcase_add_test(tc, test_seen_and_audit);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_audit_blocks_across_batches);
    tcase_add_test(tc, test_audit_times_never_go_down);
    tcase_add_test(tc, test_audit_undecodable_newest_record_opens);
    tcase_add_test(tc, test_audit_lost_batch_leaves_the_block_as_stored);
    tcase_add_test(tc, test_audit_no_append_after_failed_commit);
    tcase_add_test(tc, test_audit_one_entry_per_record_migrated);
    tcase_add_test(tc, test_audit_migration_completes_a_written_block);
    tcase_add_test(tc, test_audit_migration_stops_at_a_read_error);
    tcase_add_test(tc, test_audit_damaged_newest_block);
    tcase_add_loop_test(tc, test_audit_stray_key_among_blocks, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
