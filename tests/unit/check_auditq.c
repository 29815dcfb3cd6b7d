/*
 * check_auditq.c - the audit index (broker/store.c) and the query and
 * retention engine on it (broker/auditq.c).
 *
 * A deterministic pseudo-random log (agencies, subjects, messages with
 * several records each, events and kinds, written in batches of varying
 * size as the broker's turns do) is queried with a table of filters; every
 * answer, read in small pages, must equal a brute-force filter over the
 * records. Then: the index costs few LevelDB entries, a store without an
 * index is indexed at open, corrupt index lists are refused, the subject
 * query finds acknowledgements through their message, pruning keeps the
 * tree and removes contents and index entries and refuses an altered
 * record, and a subject query stays fast on a large log.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>
#include <leveldb/c.h>
#include <openssl/evp.h>

#include "auditq.h"
#include "checkpoint.h"
#include "kb_error.h"
#include "kb_ldb.h"
#include "kb_note.h"
#include "kb_util.h"
#include "store.h"
#include "kb_test.h"

#define ROWS(a) (int)(sizeof(a) / sizeof((a)[0]))
#define LOG_RECORDS 3000u   /* records of the query log */
#define N_SUBJECTS  40u     /* distinct subject keys in it */
#define BIG_RECORDS 100000u /* records of the latency test */
#define T0 1800000000000000LL /* 2027-01-15, microseconds */

static char s_dir[64];
static uint8_t s_key[32];

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/kbauditq.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
    for (int i = 0; i < 32; i++)
        s_key[i] = (uint8_t)(i * 5 + 3);
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* ------------------------------------------------------------ a log */

static const char *s_agencies[] = {"politie", "fier", "raad", "emm", "coa", "gemeente-a"};
#define N_AGENCIES 6

typedef struct {
    kb_store_t *store;      /* the store */
    kb_batch_t *batch;      /* its batch */
    kb_store_tiles_t tiles; /* tree binding */
    kb_merkle_io_t io;      /* vtable */
    kb_merkle_t *tree;      /* the audit tree */
} s_log_t;

static void s_log_open(s_log_t *l)
{
    l->store = kb_store_open(s_dir, s_key);
    ck_assert_msg(l->store != NULL, "%s", kb_last_error());
    l->batch = kb_batch_new();
    ck_assert_ptr_nonnull(l->batch);
    l->tiles.store = l->store;
    l->tiles.batch = l->batch;
    l->io = kb_store_tiles_io(&l->tiles);
    l->tree = kb_merkle_new(&l->io);
    ck_assert_ptr_nonnull(l->tree);
    ck_assert_msg(kb_merkle_load(l->tree, kb_store_audit_size(l->store)) == KB_OK, "%s", kb_last_error());
}

static void s_log_close(s_log_t *l)
{
    kb_merkle_destroy(&l->tree);
    kb_batch_destroy(&l->batch);
    kb_store_destroy(&l->store);
}

/* The model of record i of the query log (what was written). */
typedef struct {
    int64_t time_us;      /* time */
    int event;            /* AuditEvent */
    int kind;             /* Kind */
    int agency;           /* index into s_agencies, -1 none */
    int counterpart;      /* index into s_agencies, -1 none */
    int has_message;      /* 1: message_id set */
    uint32_t message;     /* message number */
    int subject;          /* subject number, -1 none */
    int subject2;         /* a second subject, -1 none */
} s_model_t;

static s_model_t s_model[LOG_RECORDS];

static uint32_t s_rand(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return (*state >> 8) & 0xffffff;
}

static void s_subject_key(int n, uint8_t out[32])
{
    memset(out, 0, 32);
    out[0] = 0x5a;
    out[1] = (uint8_t)n;
    out[31] = (uint8_t)(n * 7);
}

static void s_message_id(uint32_t n, uint8_t out[16])
{
    /* time-ordered like UUIDv7: the number in the timestamp bytes */
    memset(out, 0, 16);
    out[0] = 0x01;
    out[1] = (uint8_t)(n >> 24);
    out[2] = (uint8_t)(n >> 16);
    out[3] = (uint8_t)(n >> 8);
    out[4] = (uint8_t)n;
    out[6] = 0x70;
    out[8] = 0x80;
}

/* Fill the model: messages go through received, routed, delivered and
 * acknowledged (the ack without subject keys, as the broker writes it),
 * with refusals, connections and checkpoints in between. */
static void s_model_fill(void)
{
    uint32_t st = 42;
    uint32_t msg = 0;
    size_t i = 0;
    int64_t t = T0;
    while (i < LOG_RECORDS) {
        int from = (int)(s_rand(&st) % N_AGENCIES), to = (int)(s_rand(&st) % N_AGENCIES);
        int subject = (int)(s_rand(&st) % N_SUBJECTS);
        int subject2 = s_rand(&st) % 5 == 0 ? (int)(s_rand(&st) % N_SUBJECTS) : -1;
        int kind = 1 + (int)(s_rand(&st) % 3);
        uint32_t r = s_rand(&st) % 10;
        static const int life[] = {KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED,
                                   KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED,
                                   KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DELIVERED,
                                   KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ACKNOWLEDGED};
        int steps = r < 6 ? 4 : r < 8 ? 2 : 1;
        for (int k = 0; k < steps && i < LOG_RECORDS; k++, i++) {
            s_model_t *m = &s_model[i];
            t += (int64_t)(s_rand(&st) % 5000);
            m->time_us = t;
            m->kind = kind;
            m->agency = from;
            m->counterpart = k == 0 ? -1 : to;
            m->has_message = 1;
            /* ids are unique per sender only: every fifth message has the
             * id of the one before, from its own sender */
            m->message = msg % 5 == 4 ? msg - 1 : msg;
            m->subject = subject;
            m->subject2 = subject2;
            if (r == 8) { /* a refusal of one recipient */
                m->event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED;
                m->counterpart = to;
            } else if (r == 9) { /* a connection: no message */
                m->event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECTED;
                m->has_message = 0;
                m->subject = m->subject2 = -1;
                m->kind = 0;
            } else {
                m->event = life[k];
                if (k == 3)
                    m->subject = m->subject2 = -1; /* acks carry no subject keys */
            }
        }
        msg++;
    }
}

/* Build record i of the model into r (pointers into bufs). */
typedef struct {
    uint8_t id[16];       /* message id */
    uint8_t keys[2][32];  /* subject keys */
    ProtobufCBinaryData subj[2]; /* their descriptors */
    char reason[48];      /* reason text */
} s_bufs_t;

static void s_record_of(size_t i, Ketenbus__AuditRecord *r, s_bufs_t *bufs)
{
    const s_model_t *m = &s_model[i];
    ketenbus__audit_record__init(r);
    r->time_us = m->time_us;
    r->event = (Ketenbus__AuditEvent)m->event;
    r->kind = (Ketenbus__Kind)m->kind;
    r->agency = (char *)(m->agency >= 0 ? s_agencies[m->agency] : "");
    r->counterpart = (char *)(m->counterpart >= 0 ? s_agencies[m->counterpart] : "");
    if (m->has_message) {
        s_message_id(m->message, bufs->id);
        r->message_id.data = bufs->id;
        r->message_id.len = 16;
    }
    size_t n = 0;
    if (m->subject >= 0) {
        s_subject_key(m->subject, bufs->keys[n]);
        bufs->subj[n].data = bufs->keys[n];
        bufs->subj[n].len = 32;
        n++;
    }
    if (m->subject2 >= 0) {
        s_subject_key(m->subject2, bufs->keys[n]);
        bufs->subj[n].data = bufs->keys[n];
        bufs->subj[n].len = 32;
        n++;
    }
    r->n_subject_keys = n;
    r->subject_keys = bufs->subj;
    snprintf(bufs->reason, sizeof bufs->reason, "record %zu", i);
    r->reason = bufs->reason;
}

/* Write model records [from, to) as the broker would, in batches of
 * 1..97 records drawn from seed; commit 0 stages them all and commits none. */
static void s_write_batches(s_log_t *l, size_t from, size_t to, int commit, uint32_t seed)
{
    uint32_t st = seed;
    size_t i = from;
    while (i < to) {
        size_t n = 1 + s_rand(&st) % 97;
        for (size_t k = 0; k < n && i < to; k++, i++) {
            Ketenbus__AuditRecord r;
            s_bufs_t bufs;
            s_record_of(i, &r, &bufs);
            uint64_t idx;
            ck_assert_int_eq(kb_store_audit_log(l->store, l->batch, l->tree, &r, &idx), KB_OK);
            ck_assert_uint_eq(idx, i);
        }
        if (commit)
            ck_assert_int_eq(kb_store_commit(l->store, l->batch, 0), KB_OK);
    }
}

/* The whole model log, committed. */
static void s_write_log(s_log_t *l)
{
    s_write_batches(l, 0, LOG_RECORDS, 1, 7);
}

/* ------------------------------------------------------------ brute force */

static int s_model_about(const s_model_t *m, const kb_auditq_filter_t *f)
{
    for (size_t k = 0; k < f->n_subjects; k++) {
        uint8_t key[32];
        for (int which = 0; which < 2; which++) {
            int sub = which == 0 ? m->subject : m->subject2;
            if (sub < 0)
                continue;
            s_subject_key(sub, key);
            if (memcmp(key, f->subjects[k], 32) == 0)
                return 1;
        }
    }
    return 0;
}

/* Whether model record i matches f, subjects joined through messages (a
 * message: its id and its sender). */
static int s_model_match(size_t i, const kb_auditq_filter_t *f)
{
    const s_model_t *m = &s_model[i];
    if (f->n_subjects > 0) {
        int about = s_model_about(m, f);
        for (size_t j = 0; !about && m->has_message && j < LOG_RECORDS; j++)
            if (s_model[j].has_message && s_model[j].message == m->message && s_model[j].agency == m->agency &&
                s_model_about(&s_model[j], f))
                about = 1;
        if (!about)
            return 0;
    }
    Ketenbus__AuditRecord r;
    s_bufs_t bufs;
    s_record_of(i, &r, &bufs);
    r.index = i;
    return kb_auditq_match(f, &r);
}

typedef struct {
    uint64_t got[LOG_RECORDS]; /* indices returned */
    size_t n;                  /* their number */
} s_got_t;

static int s_collect(uint64_t index, const uint8_t *raw, size_t len, const Ketenbus__AuditRecord *r, void *arg)
{
    s_got_t *g = arg;
    ck_assert_uint_eq(r->index, index);
    ck_assert_uint_gt(len, 0);
    ck_assert_ptr_nonnull(raw);
    ck_assert_uint_lt(g->n, LOG_RECORDS);
    g->got[g->n++] = index;
    return 0;
}

/* Run f to the end in pages of limit matches and budget candidates. */
static void s_run_all(kb_store_t *s, const kb_auditq_filter_t *f, size_t limit, size_t budget, s_got_t *g)
{
    memset(g, 0, sizeof *g);
    uint64_t from = 0;
    for (int pages = 0; pages < 100000; pages++) {
        kb_auditq_page_t page;
        ck_assert_msg(kb_auditq_run(s, f, from, limit, budget, s_collect, g, &page) == KB_OK, "%s",
                      kb_last_error());
        ck_assert_uint_le(page.matched, limit);
        if (budget)
            ck_assert_uint_le(page.examined, budget);
        ck_assert_uint_ge(page.next, from);
        if (page.done)
            return;
        from = page.next;
    }
    ck_abort_msg("query does not end");
}

/* ------------------------------------------------------------ queries */

typedef struct {
    const char *name;  /* what the row asks */
    int subject;       /* subject number, -1 none */
    int subject2;      /* a second one, -1 none */
    int message;       /* message number, -1 none */
    const char *agency, *from, *to; /* agency filters, NULL none */
    const char *event; /* event name, NULL none */
    const char *event2;/* a second event, NULL none */
    const char *kind;  /* kind name, NULL none */
    int since, until;  /* record numbers whose times bound the period, -1 none */
} s_query_row_t;

static const s_query_row_t s_query_rows[] = {
    {"everything", -1, -1, -1, NULL, NULL, NULL, NULL, NULL, NULL, -1, -1},
    {"subject", 3, -1, -1, NULL, NULL, NULL, NULL, NULL, NULL, -1, -1},
    {"two subjects", 3, 17, -1, NULL, NULL, NULL, NULL, NULL, NULL, -1, -1},
    {"subject in a period", 5, -1, -1, NULL, NULL, NULL, NULL, NULL, NULL, 500, 2200},
    {"subject refused", 8, -1, -1, NULL, NULL, NULL, "refused", NULL, NULL, -1, -1},
    {"subject and agency", 9, -1, -1, "raad", NULL, NULL, NULL, NULL, NULL, -1, -1},
    {"unknown subject", 200, -1, -1, NULL, NULL, NULL, NULL, NULL, NULL, -1, -1},
    {"message", -1, -1, 77, NULL, NULL, NULL, NULL, NULL, NULL, -1, -1},
    {"message and event", -1, -1, 77, NULL, NULL, NULL, "delivered", NULL, NULL, -1, -1},
    {"agency", -1, -1, -1, "fier", NULL, NULL, NULL, NULL, NULL, -1, -1},
    {"sender", -1, -1, -1, NULL, "fier", NULL, NULL, NULL, NULL, -1, -1},
    {"recipient", -1, -1, -1, NULL, NULL, "emm", NULL, NULL, NULL, -1, -1},
    {"pair and kind", -1, -1, -1, NULL, "politie", "raad", NULL, NULL, "signal", -1, -1},
    {"refused", -1, -1, -1, NULL, NULL, NULL, "refused", NULL, NULL, -1, -1},
    {"refused by agency", -1, -1, -1, "coa", NULL, NULL, "refused", NULL, NULL, -1, -1},
    {"connected in a period", -1, -1, -1, NULL, NULL, NULL, "connected", NULL, NULL, 1000, 1500},
    {"routed (common event)", -1, -1, -1, NULL, NULL, NULL, "routed", NULL, NULL, -1, -1},
    {"two events", -1, -1, -1, NULL, NULL, NULL, "routed", "refused", NULL, -1, -1},
    {"kind", -1, -1, -1, NULL, NULL, NULL, NULL, NULL, "referral", -1, -1},
    {"period", -1, -1, -1, NULL, NULL, NULL, NULL, NULL, NULL, 1234, 2345},
    {"since only", -1, -1, -1, NULL, NULL, NULL, NULL, NULL, NULL, 2900, -1},
    {"until only", -1, -1, -1, NULL, NULL, NULL, NULL, NULL, NULL, -1, 10},
    {"empty period", -1, -1, -1, NULL, NULL, NULL, NULL, NULL, NULL, 2000, 2000},
    {"agency in a period", -1, -1, -1, "gemeente-a", NULL, NULL, NULL, NULL, NULL, 100, 2800},
};

static void s_filter_of(const s_query_row_t *row, kb_auditq_filter_t *f)
{
    memset(f, 0, sizeof *f);
    if (row->subject >= 0)
        s_subject_key(row->subject, f->subjects[f->n_subjects++]);
    if (row->subject2 >= 0)
        s_subject_key(row->subject2, f->subjects[f->n_subjects++]);
    if (row->message >= 0) {
        f->has_message = 1;
        s_message_id((uint32_t)row->message, f->message_id);
    }
    snprintf(f->agency, sizeof f->agency, "%s", row->agency ? row->agency : "");
    snprintf(f->from, sizeof f->from, "%s", row->from ? row->from : "");
    snprintf(f->to, sizeof f->to, "%s", row->to ? row->to : "");
    if (row->event)
        f->events |= kb_auditq_event_bit(row->event);
    if (row->event2)
        f->events |= kb_auditq_event_bit(row->event2);
    if (row->kind)
        f->kinds = kb_auditq_kind_bit(row->kind);
    if (row->since >= 0) {
        f->has_since = 1;
        f->since_us = s_model[row->since].time_us;
    }
    if (row->until >= 0) {
        f->has_until = 1;
        f->until_us = s_model[row->until].time_us;
    }
}

START_TEST(test_query_matches_brute_force)
{
    const s_query_row_t *row = &s_query_rows[_i];
    s_model_fill();
    s_log_t l;
    s_log_open(&l);
    s_write_log(&l);
    kb_auditq_filter_t f;
    s_filter_of(row, &f);
    if (row->event)
        ck_assert_uint_ne(f.events, 0);
    if (row->kind)
        ck_assert_uint_ne(f.kinds, 0);
    static s_got_t want, got;
    memset(&want, 0, sizeof want);
    for (size_t i = 0; i < LOG_RECORDS; i++)
        if (s_model_match(i, &f))
            want.got[want.n++] = i;
    /* whole, in pages of 7 matches, and with a budget of 50 candidates */
    static const size_t limits[][2] = {{LOG_RECORDS, 0}, {7, 0}, {1000, 50}};
    for (int k = 0; k < 3; k++) {
        s_run_all(l.store, &f, limits[k][0], limits[k][1], &got);
        ck_assert_msg(got.n == want.n, "%s: %zu records, expected %zu (pages of %zu)", row->name, got.n, want.n,
                      limits[k][0]);
        for (size_t i = 0; i < want.n; i++)
            ck_assert_msg(got.got[i] == want.got[i], "%s: #%zu is %" PRIu64 ", expected %" PRIu64, row->name, i,
                          got.got[i], want.got[i]);
    }
    /* the filter survives its JSON form */
    json_object *o = kb_auditq_filter_to_json(&f);
    kb_auditq_filter_t back;
    ck_assert_int_eq(kb_auditq_filter_from_json(o, &back), KB_OK);
    json_object_put(o);
    ck_assert_mem_eq(&back, &f, sizeof f);
    s_log_close(&l);
}
END_TEST

/* ------------------------------------------------------------ costs */

/* ------------------------------------------------------------ the subject cursor
 *
 * A subject query keeps its collected candidates with the store between
 * pages (auditq.c, s_cursor_t), so a page goes on where the last ended.
 * Pages of queries taking turns, restarts, records appended and records
 * staged but not committed between pages must give what a fresh query
 * gives. */

/* Write model records [from, to) in batches as s_write_log does; commit 0
 * stages them all and commits none. */
static void s_write_range(s_log_t *l, size_t from, size_t to, int commit)
{
    s_write_batches(l, from, to, commit, (uint32_t)from + 11);
}

static void s_want(const kb_auditq_filter_t *f, s_got_t *want)
{
    memset(want, 0, sizeof *want);
    for (size_t i = 0; i < LOG_RECORDS; i++)
        if (s_model_match(i, f))
            want->got[want->n++] = i;
}

static void s_same(const char *what, const s_got_t *got, const s_got_t *want)
{
    ck_assert_msg(got->n == want->n, "%s: %zu records, expected %zu", what, got->n, want->n);
    for (size_t i = 0; i < want->n; i++)
        ck_assert_msg(got->got[i] == want->got[i], "%s: #%zu is %" PRIu64 ", expected %" PRIu64, what, i,
                      got->got[i], want->got[i]);
}

/* A query being paged: its filter, where it goes on, what it got. */
typedef struct {
    kb_auditq_filter_t f; /* the query */
    uint64_t from;        /* next page starts here */
    int done;             /* read to its end */
    s_got_t got;          /* records returned */
} s_pager_t;

static void s_page(kb_store_t *s, s_pager_t *p, size_t limit, size_t budget)
{
    kb_auditq_page_t page;
    ck_assert_msg(kb_auditq_run(s, &p->f, p->from, limit, budget, s_collect, &p->got, &page) == KB_OK, "%s",
                  kb_last_error());
    ck_assert_uint_ge(page.next, p->from);
    p->from = page.next;
    p->done = page.done;
}

START_TEST(test_subject_pages_taking_turns)
{
    s_model_fill();
    s_log_t l;
    s_log_open(&l);
    s_write_log(&l);
    /* three subject queries (one sharing a subject, one in a period) and
     * one by agency, a page each in turn, in pages of 3 matches and 20
     * candidates */
    static const int rows[] = {1, 2, 3, 8};
    static s_pager_t p[4];
    static s_got_t want;
    for (int q = 0; q < 4; q++) {
        memset(&p[q], 0, sizeof p[q]);
        s_filter_of(&s_query_rows[rows[q]], &p[q].f);
    }
    for (int left = 4; left > 0;) {
        left = 0;
        for (int q = 0; q < 4; q++) {
            if (p[q].done)
                continue;
            s_page(l.store, &p[q], 3, 20);
            left += !p[q].done;
        }
    }
    for (int q = 0; q < 4; q++) {
        s_want(&p[q].f, &want);
        s_same(s_query_rows[rows[q]].name, &p[q].got, &want);
    }
    /* a query read to its end leaves no cursor; one half read keeps it */
    ck_assert_ptr_null(kb_store_cache(l.store));
    s_pager_t *a = &p[0];
    memset(&a->got, 0, sizeof a->got);
    a->from = 0;
    a->done = 0;
    for (int k = 0; k < 5; k++)
        s_page(l.store, a, 2, 0);
    ck_assert(!a->done);
    ck_assert_ptr_nonnull(kb_store_cache(l.store));
    /* starting over from 0 with the cursor kept gives the whole answer */
    memset(&a->got, 0, sizeof a->got);
    a->from = 0;
    while (!a->done)
        s_page(l.store, a, 5, 0);
    s_want(&a->f, &want);
    s_same("subject, started over", &a->got, &want);
    /* a reload drops a kept cursor */
    a->from = 0;
    a->done = 0;
    s_page(l.store, a, 1, 0);
    ck_assert_ptr_nonnull(kb_store_cache(l.store));
    ck_assert_int_eq(kb_store_reopen(l.store), KB_OK);
    ck_assert_ptr_null(kb_store_cache(l.store));
    s_log_close(&l);
}
END_TEST

START_TEST(test_subject_pages_see_appended_records)
{
    s_model_fill();
    s_log_t l;
    s_log_open(&l);
    static s_pager_t p;
    static s_got_t want;
    memset(&p, 0, sizeof p);
    s_filter_of(&s_query_rows[2], &p.f); /* two subjects */
    s_write_range(&l, 0, 1200, 1);
    for (int k = 0; k < 3; k++)
        s_page(l.store, &p, 2, 0);
    ck_assert(!p.done);
    /* records appended: later pages find them, and the acknowledgements
     * of messages begun before */
    s_write_range(&l, 1200, 2000, 1);
    for (int k = 0; k < 3; k++)
        s_page(l.store, &p, 2, 0);
    ck_assert(!p.done);
    /* records staged but not committed while a page collects (another
     * query's page in between took the store's cursor) */
    s_write_range(&l, 2000, 2400, 0);
    static s_pager_t other;
    memset(&other, 0, sizeof other);
    s_filter_of(&s_query_rows[1], &other.f);
    s_page(l.store, &other, 1, 0);
    s_page(l.store, &p, 2, 0);
    ck_assert(!p.done);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 0), KB_OK);
    s_write_range(&l, 2400, LOG_RECORDS, 1);
    while (!p.done)
        s_page(l.store, &p, 3, 7);
    s_want(&p.f, &want);
    s_same("two subjects, log growing while paged", &p.got, &want);
    s_log_close(&l);
}
END_TEST

START_TEST(test_index_entries_are_few)
{
    s_model_fill();
    s_log_t l;
    s_log_open(&l);
    s_write_log(&l);
    s_log_close(&l);
    size_t records = LOG_RECORDS, entries = kb_ldb_count_prefix(s_dir, 'x');
    /* the records themselves are 16 to an entry */
    ck_assert_uint_eq(kb_ldb_count_prefix(s_dir, 'b'), (LOG_RECORDS + 15) / 16);
    ck_assert_uint_eq(kb_ldb_count_prefix(s_dir, 'a'), 0);
    /* a record is indexed under four or five values; batches share lists */
    printf("index: %zu entries for %zu records (%.2f per record)\n", entries, records, (double)entries / records);
    ck_assert_msg(entries < records * 2, "%zu index entries for %zu records", entries, records);
}
END_TEST

/* A store written before the index existed is indexed when opened. */
START_TEST(test_reindex_at_open)
{
    s_model_fill();
    s_log_t l;
    s_log_open(&l);
    s_write_log(&l);
    kb_auditq_filter_t f;
    s_filter_of(&s_query_rows[2], &f);
    static s_got_t before, after;
    s_run_all(l.store, &f, 100, 0, &before);
    ck_assert_uint_gt(before.n, 0);
    s_log_close(&l);
    /* drop the index and its version key behind the store's back */
    char *err = NULL;
    leveldb_options_t *o = leveldb_options_create();
    leveldb_t *db = leveldb_open(o, s_dir, &err);
    ck_assert_ptr_null(err);
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    leveldb_iterator_t *it = leveldb_create_iterator(db, ro);
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    for (leveldb_iter_seek(it, "x", 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl;
        const char *k = leveldb_iter_key(it, &kl);
        if (k[0] != 'x')
            break;
        leveldb_writebatch_delete(wb, k, kl);
    }
    leveldb_writebatch_delete(wb, "i", 1);
    leveldb_write(db, wo, wb, &err);
    ck_assert_ptr_null(err);
    leveldb_iter_destroy(it);
    leveldb_writebatch_destroy(wb);
    leveldb_readoptions_destroy(ro);
    leveldb_writeoptions_destroy(wo);
    leveldb_close(db);
    leveldb_options_destroy(o);
    ck_assert_uint_eq(kb_ldb_count_prefix(s_dir, 'x'), 0);

    s_log_open(&l);
    s_run_all(l.store, &f, 100, 0, &after);
    ck_assert_uint_eq(after.n, before.n);
    ck_assert_mem_eq(after.got, before.got, before.n * sizeof before.got[0]);
    s_log_close(&l);
}
END_TEST

/* Malformed index lists (disk data is untrusted) are refused. */
static const struct {
    const char *name;    /* what is wrong */
    uint8_t value[12];   /* the list */
    size_t len;          /* its length */
    uint64_t last;       /* the last index its key claims */
} s_bad_lists[] = {
    {"empty", {0}, 0, 5},
    {"count zero", {0x00}, 1, 5},
    {"count beyond the bytes", {0x05, 0x01}, 2, 1},
    {"cut varint", {0x01, 0x85}, 2, 5},
    {"zero gap", {0x02, 0x05, 0x00}, 3, 5},
    {"last differs from key", {0x02, 0x05, 0x01}, 3, 7},
    {"trailing bytes", {0x01, 0x05, 0x00}, 3, 5},
    {"overlong varint", {0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 11, 5},
};

static int s_count_fn(uint64_t index, void *arg)
{
    (void)index;
    (*(size_t *)arg)++;
    return 0;
}

START_TEST(test_corrupt_list_is_refused_by_walks)
{
    kb_store_t *s = kb_store_open(s_dir, s_key);
    ck_assert_ptr_nonnull(s);
    kb_batch_t *b = kb_batch_new();
    uint8_t k[2 + 4 + 8];
    k[0] = 'x';
    k[1] = KB_INDEX_AGENCY;
    memcpy(k + 2, "emm", 4);
    kb_be64_put(k + 6, s_bad_lists[_i].last);
    ck_assert_int_eq(kb_batch_put(b, k, sizeof k, s_bad_lists[_i].value, s_bad_lists[_i].len), KB_OK);
    ck_assert_int_eq(kb_store_commit(s, b, 0), KB_OK);
    size_t n = 0;
    ck_assert_msg(kb_store_postings(s, KB_INDEX_AGENCY, "emm", 3, 0, UINT64_MAX, s_count_fn, &n) == KB_EPROTO,
                  "%s: accepted", s_bad_lists[_i].name);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
}
END_TEST

/* ------------------------------------------------------------ filters */

static const struct {
    const char *json;  /* a filter as JSON */
    int rc;            /* expected */
} s_filter_rows[] = {
    {"{}", KB_OK},
    {"{\"since_us\": 5, \"until_us\": 9, \"agency\": \"fier\", \"events\": 4, \"kinds\": 2}", KB_OK},
    {"{\"subjects\": [\"" "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" "\"]}", KB_OK},
    {"{\"message_id\": \"01900000-0000-7000-8000-000000000001\"}", KB_OK},
    {"[]", KB_EPROTO},
    {"{\"colour\": 1}", KB_EPROTO},
    {"{\"since_us\": \"yesterday\"}", KB_EPROTO},
    {"{\"subjects\": []}", KB_EPROTO},
    {"{\"subjects\": [\"zz\"]}", KB_EPROTO},
    {"{\"subjects\": \"00\"}", KB_EPROTO},
    {"{\"message_id\": \"not-a-uuid\"}", KB_EPROTO},
    {"{\"agency\": 7}", KB_EPROTO},
    {"{\"agency\": null}", KB_EPROTO},
    {"{\"from\": null}", KB_EPROTO},
    {"{\"to\": null}", KB_EPROTO},
    {"{\"to\": \"police\\u0000x\"}", KB_EPROTO},
    {"{\"message_id\": null}", KB_EPROTO},
    {"{\"subjects\": [null]}", KB_EPROTO},
    {"{\"agency\": \"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "\"}", KB_EPROTO},
    {"{\"events\": -1}", KB_EPROTO},
    {"{\"kinds\": 4294967296}", KB_EPROTO},
};

START_TEST(test_filter_json)
{
    json_object *o = json_tokener_parse(s_filter_rows[_i].json);
    ck_assert_ptr_nonnull(o);
    kb_auditq_filter_t f;
    int rc = kb_auditq_filter_from_json(o, &f);
    ck_assert_msg(rc == s_filter_rows[_i].rc, "%s: %d (%s)", s_filter_rows[_i].json, rc, kb_last_error());
    json_object_put(o);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_uint_eq(kb_auditq_event_bit("refused"), 1u << KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED);
    ck_assert_uint_eq(kb_auditq_event_bit("PRUNED"), 1u << KETENBUS__AUDIT_EVENT__AUDIT_EVENT_PRUNED);
    ck_assert_uint_eq(kb_auditq_event_bit("connect_refused"), 1u << KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECT_REFUSED);
    ck_assert_uint_eq(kb_auditq_event_bit("unspecified"), 0);
    ck_assert_uint_eq(kb_auditq_event_bit("refusedx"), 0);
    ck_assert_uint_eq(kb_auditq_event_bit(""), 0);
    ck_assert_uint_eq(kb_auditq_kind_bit("referral_update"), 1u << KETENBUS__KIND__KIND_REFERRAL_UPDATE);
    ck_assert_uint_eq(kb_auditq_kind_bit("letter"), 0);
}
END_TEST

/* ------------------------------------------------------------ time */

START_TEST(test_time_index)
{
    s_model_fill();
    s_log_t l;
    s_log_open(&l);
    s_write_log(&l);
    static const size_t at[] = {0, 1, 2, 255, 256, 1000, 2999};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        uint64_t idx = 99999;
        ck_assert_int_eq(kb_auditq_time_index(l.store, s_model[at[k]].time_us, &idx), KB_OK);
        /* the first record of that time (times may repeat) */
        size_t want = at[k];
        while (want > 0 && s_model[want - 1].time_us == s_model[at[k]].time_us)
            want--;
        ck_assert_uint_eq(idx, want);
    }
    uint64_t idx = 0;
    ck_assert_int_eq(kb_auditq_time_index(l.store, T0 - 1, &idx), KB_OK);
    ck_assert_uint_eq(idx, 0);
    ck_assert_int_eq(kb_auditq_time_index(l.store, s_model[LOG_RECORDS - 1].time_us + 1, &idx), KB_OK);
    ck_assert_uint_eq(idx, LOG_RECORDS);
    s_log_close(&l);
}
END_TEST

/* ------------------------------------------------------------ pruning */

/* A log of n records, one second apart, with a checkpoint at the end. */
static EVP_PKEY *s_sign_key(void)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(EVP_PKEY_keygen_init(c), 1);
    ck_assert_int_eq(EVP_PKEY_keygen(c, &k), 1);
    EVP_PKEY_CTX_free(c);
    return k;
}

static void s_simple_log(s_log_t *l, size_t n, EVP_PKEY *key)
{
    for (size_t i = 0; i < n; i++) {
        Ketenbus__AuditRecord r;
        uint8_t id[16], subj[32];
        ProtobufCBinaryData sd = {32, subj};
        ketenbus__audit_record__init(&r);
        r.time_us = T0 + (int64_t)i * 1000000;
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
        r.agency = (char *)"politie";
        r.counterpart = (char *)"raad";
        s_message_id((uint32_t)i, id);
        r.message_id.data = id;
        r.message_id.len = 16;
        s_subject_key((int)(i % 3), subj);
        r.n_subject_keys = 1;
        r.subject_keys = &sd;
        ck_assert_int_eq(kb_store_audit_log(l->store, l->batch, l->tree, &r, NULL), KB_OK);
        if (i % 100 == 99)
            ck_assert_int_eq(kb_store_commit(l->store, l->batch, 0), KB_OK);
    }
    ck_assert_int_eq(kb_store_commit(l->store, l->batch, 0), KB_OK);
    ck_assert_int_eq(checkpoint_sign(l->store, l->batch, l->tree, "test-broker", key, NULL), KB_OK);
    ck_assert_int_eq(kb_store_commit(l->store, l->batch, 1), KB_OK);
}

typedef struct {
    uint64_t n;        /* values seen */
    uint64_t stones;   /* tombstones among them */
    uint64_t expect;   /* next index */
    kb_merkle_acc_t *acc; /* root of the leaves */
} s_walk_t;

static int s_walk_fn(uint64_t index, const uint8_t *val, size_t len, void *arg)
{
    s_walk_t *w = arg;
    ck_assert_uint_eq(index, w->expect);
    w->expect++;
    w->n++;
    kb_audit_tombstone_t t;
    int rc = kb_audit_tombstone_parse(val, len, &t);
    if (rc == KB_OK) {
        w->stones++;
        ck_assert_int_eq(kb_merkle_acc_add_hash(w->acc, t.leaf_hash), KB_OK);
    } else {
        ck_assert_int_eq(rc, KB_ENOTFOUND);
        ck_assert_int_eq(kb_merkle_acc_add(w->acc, val, len), KB_OK);
    }
    return 0;
}

/* A record read just before it is pruned is not served again afterwards
 * from the block the store keeps for the next read; one prune per batch. */
START_TEST(test_pruned_record_read_before_is_gone)
{
    EVP_PKEY *key = s_sign_key();
    s_log_t l;
    s_log_open(&l);
    s_simple_log(&l, 600, key);
    Ketenbus__AuditRecord *r = NULL;
    ck_assert_int_eq(kb_store_audit_get(l.store, 299, &r), KB_OK); /* block 18: records 288 to 303 */
    ketenbus__audit_record__free_unpacked(r, NULL);
    kb_auditq_prune_t p;
    ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KB_PRUNE_ALL, T0 + 550LL * 1000000, 300, "test", &p),
                     KB_OK);
    ck_assert_uint_eq(p.end, 300);
    /* a second prune would rewrite the same blocks from disk, without the
     * first one's tombstones: refused until the batch is written */
    ck_assert_int_eq(kb_store_audit_prune(l.store, l.batch, KB_PRUNE_ALL, 512, 300, T0, NULL), KB_EINVAL);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "holds a prune already"));
    /* a read between the prune and its commit (the anchors, a query) */
    ck_assert_int_eq(kb_store_audit_get(l.store, 301, &r), KB_OK);
    ketenbus__audit_record__free_unpacked(r, NULL);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    ck_assert_int_eq(kb_store_audit_get(l.store, 299, &r), KB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "pruned"));
    ck_assert_int_eq(kb_store_audit_get(l.store, 300, &r), KB_OK);
    ck_assert_uint_eq(r->index, 300);
    ketenbus__audit_record__free_unpacked(r, NULL);
    uint8_t *v = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_store_audit_raw(l.store, 298, &v, &len), KB_OK);
    ck_assert_uint_eq(len, KB_AUDIT_TOMBSTONE_LEN);
    free(v);
    /* written: the next prune goes on */
    kb_store_pruned_t out;
    ck_assert_int_eq(kb_store_audit_prune(l.store, l.batch, KB_PRUNE_ALL, 512, 300, T0, &out), KB_OK);
    ck_assert_uint_eq(out.end, 512);
    s_log_close(&l);
    EVP_PKEY_free(key);
}
END_TEST

START_TEST(test_prune_keeps_the_tree)
{
    EVP_PKEY *key = s_sign_key();
    s_log_t l;
    s_log_open(&l);
    s_simple_log(&l, 1000, key);
    uint8_t root[KB_MERKLE_HASH_LEN], root2[KB_MERKLE_HASH_LEN];
    uint64_t size = kb_merkle_size(l.tree);
    ck_assert_uint_eq(size, 1001); /* and the checkpoint record */
    ck_assert_int_eq(kb_merkle_root(l.tree, root), KB_OK);
    kb_auditq_filter_t f;
    memset(&f, 0, sizeof f);
    s_subject_key(1, f.subjects[0]);
    f.n_subjects = 1;
    static s_got_t got;
    s_run_all(l.store, &f, 1000, 0, &got);
    ck_assert_uint_eq(got.n, 333);

    /* records older than record 700: 700 are due, but only full tiles go
     * (768 would be the bound) and chunks of 300 per call */
    kb_auditq_prune_t p;
    ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KB_PRUNE_ALL, T0 + 700LL * 1000000, 300, "test", &p), KB_OK);
    ck_assert_uint_eq(p.target, 700);
    ck_assert_uint_eq(p.limit, 700);
    ck_assert_uint_eq(p.first, 0);
    ck_assert_uint_eq(p.end, 300);
    ck_assert_int_eq(p.logged, 1);
    ck_assert_uint_eq(p.record, 1001);
    ck_assert_int_eq(p.more, 1);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KB_PRUNE_ALL, T0 + 700LL * 1000000, 300, "test", &p), KB_OK);
    ck_assert_uint_eq(p.end, 600);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KB_PRUNE_ALL, T0 + 700LL * 1000000, 300, "test", &p), KB_OK);
    ck_assert_uint_eq(p.end, 700);
    ck_assert_int_eq(p.more, 0);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    /* nothing more is due */
    ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KB_PRUNE_ALL, T0 + 700LL * 1000000, 300, "test", &p), KB_OK);
    ck_assert_int_eq(p.logged, 0);
    ck_assert_uint_eq(p.end, 700);
    ck_assert_uint_eq(kb_store_audit_pruned(l.store), 700);
    /* the last PRUNED record says so */
    Ketenbus__AuditRecord *r = NULL;
    ck_assert_int_eq(kb_store_audit_get(l.store, 1003, &r), KB_OK);
    ck_assert_int_eq(r->event, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_PRUNED);
    ck_assert_uint_eq(r->tag, 700);
    ck_assert_ptr_nonnull(strstr(r->reason, "[600, 700)"));
    ketenbus__audit_record__free_unpacked(r, NULL);
    ck_assert_int_eq(kb_store_audit_get(l.store, 5, &r), KB_ENOTFOUND);

    /* the tree is unchanged below the new records and reloads */
    ck_assert_int_eq(kb_merkle_root_at(l.tree, size, root2), KB_OK);
    ck_assert_mem_eq(root, root2, sizeof root);
    s_log_close(&l);
    s_log_open(&l);
    ck_assert_uint_eq(kb_store_audit_pruned(l.store), 700);
    ck_assert_int_eq(kb_merkle_root_at(l.tree, size, root2), KB_OK);
    ck_assert_mem_eq(root, root2, sizeof root);
    /* and a walk over stored values recomputes it: tombstones give their hashes */
    s_walk_t w = {0, 0, 0, kb_merkle_acc_new()};
    ck_assert_int_eq(kb_store_audit_scan(l.store, 0, size, SIZE_MAX, s_walk_fn, &w), KB_OK);
    ck_assert_uint_eq(w.stones, 700);
    ck_assert_int_eq(kb_merkle_acc_root(w.acc, root2), KB_OK);
    ck_assert_mem_eq(root, root2, sizeof root);
    kb_merkle_acc_destroy(&w.acc);
    /* the pruned records are gone from the index; their times stay */
    s_run_all(l.store, &f, 1000, 0, &got);
    ck_assert_uint_eq(got.n, 100);
    ck_assert_uint_ge(got.got[0], 700);
    uint64_t idx;
    ck_assert_int_eq(kb_auditq_time_index(l.store, T0 + 350LL * 1000000, &idx), KB_OK);
    ck_assert_uint_eq(idx, 350);
    /* pruning may not pass the full leaf tiles */
    ck_assert_int_eq(kb_store_audit_prune(l.store, l.batch, KB_PRUNE_ALL, 1100, 1000, 0, NULL), KB_EINVAL);
    s_log_close(&l);
    EVP_PKEY_free(key);
}
END_TEST

/* Messages received before the cutoff and delivered after it stay
 * findable by subject, though their subject-indexed records are pruned. */
START_TEST(test_prune_keeps_later_records_findable)
{
    EVP_PKEY *key = s_sign_key();
    s_log_t l;
    s_log_open(&l);
    for (size_t i = 0; i < 600; i++) {
        Ketenbus__AuditRecord r;
        uint8_t id[16], subj[32];
        ProtobufCBinaryData sd = {32, subj};
        ketenbus__audit_record__init(&r);
        r.time_us = T0 + (int64_t)i * 1000000;
        r.agency = (char *)"politie";
        r.counterpart = (char *)"raad";
        uint32_t msg = (uint32_t)i;
        if (i < 300) {
            r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
        } else if (i < 400) { /* messages 250..299: delivered and acknowledged */
            msg = 250 + (uint32_t)(i - 300) / 2;
            r.event = i % 2 == 0 ? KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DELIVERED
                                 : KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ACKNOWLEDGED;
        } else {
            r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECTED;
        }
        if (i < 400) {
            s_message_id(msg, id);
            r.message_id.data = id;
            r.message_id.len = 16;
            s_subject_key((int)(msg % 3), subj);
            if (r.event != KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ACKNOWLEDGED) {
                r.n_subject_keys = 1;
                r.subject_keys = &sd;
            }
        }
        ck_assert_int_eq(kb_store_audit_log(l.store, l.batch, l.tree, &r, NULL), KB_OK);
        if (i % 64 == 63)
            ck_assert_int_eq(kb_store_commit(l.store, l.batch, 0), KB_OK);
    }
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 0), KB_OK);
    ck_assert_int_eq(checkpoint_sign(l.store, l.batch, l.tree, "test-broker", key, NULL), KB_OK);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    kb_auditq_filter_t f;
    memset(&f, 0, sizeof f);
    s_subject_key(1, f.subjects[0]);
    f.n_subjects = 1;
    static s_got_t got;
    s_run_all(l.store, &f, 1000, 0, &got);
    ck_assert_uint_eq(got.n, 100 + 17 * 2);

    kb_auditq_prune_t p;
    ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KB_PRUNE_ALL, T0 + 300LL * 1000000, 1000, "test", &p), KB_OK);
    ck_assert_uint_eq(p.end, 300);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    s_run_all(l.store, &f, 1000, 0, &got);
    ck_assert_uint_eq(got.n, 17 * 2);
    for (size_t i = 0; i < got.n; i++)
        ck_assert_uint_ge(got.got[i], 300);
    /* and a second pruning removes the anchors with the rest */
    ck_assert_int_eq(checkpoint_sign(l.store, l.batch, l.tree, "test-broker", key, NULL), KB_OK);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KB_PRUNE_ALL, T0 + 500LL * 1000000, 1000, "test", &p), KB_OK);
    ck_assert_uint_eq(p.end, 500);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    s_run_all(l.store, &f, 1000, 0, &got);
    ck_assert_uint_eq(got.n, 0);
    size_t n = 0;
    uint8_t k0[32];
    for (int sub = 0; sub < 3; sub++) {
        s_subject_key(sub, k0);
        ck_assert_int_eq(kb_store_postings(l.store, KB_INDEX_SUBJECT, k0, 32, 0, UINT64_MAX, s_count_fn, &n), KB_OK);
    }
    ck_assert_uint_eq(n, 0);
    s_log_close(&l);
    EVP_PKEY_free(key);
}
END_TEST

/* The same when a prune goes in chunks that split a message's records:
 * the anchor one chunk puts on the message's ROUTED record, which a later
 * chunk prunes too, moves on to the next record that names the subject. */
static const size_t s_prune_chunks[] = {1000, 300, 100};

START_TEST(test_prune_in_chunks_keeps_later_records_findable)
{
    size_t chunk = s_prune_chunks[_i];
    EVP_PKEY *key = s_sign_key();
    s_log_t l;
    s_log_open(&l);
    uint8_t id[16], subj[32];
    s_message_id(7, id);
    s_subject_key(1, subj);
    ProtobufCBinaryData sd = {32, subj};
    for (size_t i = 0; i < 600; i++) {
        Ketenbus__AuditRecord r;
        ketenbus__audit_record__init(&r);
        r.time_us = T0 + (int64_t)i * 1000000;
        r.agency = (char *)"politie";
        r.event = i == 100   ? KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED
                  : i == 350 ? KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED
                  : i == 560 ? KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DELIVERED
                  : i == 561 ? KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ACKNOWLEDGED
                             : KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECTED;
        if (r.event != KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECTED) {
            r.kind = KETENBUS__KIND__KIND_SIGNAL;
            r.message_id.data = id;
            r.message_id.len = 16;
            if (i != 100)
                r.counterpart = (char *)"raad";
            if (r.event != KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ACKNOWLEDGED) {
                r.n_subject_keys = 1;
                r.subject_keys = &sd;
            }
        }
        ck_assert_int_eq(kb_store_audit_log(l.store, l.batch, l.tree, &r, NULL), KB_OK);
        if (i % 64 == 63)
            ck_assert_int_eq(kb_store_commit(l.store, l.batch, 0), KB_OK);
    }
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 0), KB_OK);
    ck_assert_int_eq(checkpoint_sign(l.store, l.batch, l.tree, "test-broker", key, NULL), KB_OK);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    kb_auditq_filter_t f;
    memset(&f, 0, sizeof f);
    memcpy(f.subjects[0], subj, 32);
    f.n_subjects = 1;
    static s_got_t got;
    s_run_all(l.store, &f, 1000, 0, &got);
    ck_assert_uint_eq(got.n, 4);
    kb_auditq_prune_t p;
    int chunks = 0;
    do {
        ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KB_PRUNE_ALL, T0 + 500LL * 1000000, chunk, "test", &p),
                         KB_OK);
        ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
        chunks++;
    } while (p.more);
    ck_assert_uint_eq(p.end, 500);
    ck_assert_int_eq(chunks, (int)((500 + chunk - 1) / chunk));
    s_run_all(l.store, &f, 1000, 0, &got);
    ck_assert_uint_eq(got.n, 2);
    ck_assert_uint_eq(got.got[0], 560);
    ck_assert_uint_eq(got.got[1], 561);
    s_log_close(&l);
    EVP_PKEY_free(key);
}
END_TEST

START_TEST(test_prune_needs_a_checkpoint)
{
    s_log_t l;
    s_log_open(&l);
    for (size_t i = 0; i < 600; i++) {
        Ketenbus__AuditRecord r;
        ketenbus__audit_record__init(&r);
        r.time_us = T0 + (int64_t)i;
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECTED;
        r.agency = (char *)"fier";
        ck_assert_int_eq(kb_store_audit_log(l.store, l.batch, l.tree, &r, NULL), KB_OK);
    }
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 0), KB_OK);
    kb_auditq_prune_t p;
    ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KB_PRUNE_ALL, T0 + 10000, 1000, "test", &p), KB_OK);
    ck_assert_uint_eq(p.target, 600);
    ck_assert_uint_eq(p.limit, 0);
    ck_assert_int_eq(p.logged, 0);
    ck_assert_uint_eq(kb_batch_size(l.batch), 0);
    s_log_close(&l);
}
END_TEST

START_TEST(test_prune_refuses_an_altered_record)
{
    EVP_PKEY *key = s_sign_key();
    s_log_t l;
    s_log_open(&l);
    s_simple_log(&l, 600, key);
    s_log_close(&l);
    /* change one byte of record 300 */
    kb_ldb_t ldb;
    kb_ldb_open(&ldb, s_dir);
    size_t vl;
    char *v = kb_ldb_get_record(&ldb, 300, &vl);
    v[vl - 1] ^= 1;
    kb_ldb_put_record(&ldb, 300, v, vl);
    leveldb_free(v);
    kb_ldb_close(&ldb);

    s_log_open(&l);
    kb_auditq_prune_t p;
    ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KB_PRUNE_ALL, T0 + 550LL * 1000000, 1000, "test", &p), KB_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "300"));
    ck_assert_uint_eq(kb_batch_size(l.batch), 0);
    ck_assert_uint_eq(kb_store_audit_pruned(l.store), 0);
    s_log_close(&l);
    EVP_PKEY_free(key);
}
END_TEST

START_TEST(test_tombstones)
{
    /* version 2: with the claim of the pruning that made it */
    uint8_t v[KB_AUDIT_TOMBSTONE_LEN] = {0, 'P', 2, 1};
    kb_be64_put(v + 4, (uint64_t)T0);
    kb_be64_put(v + 12, (uint64_t)T0 + 5);
    memset(v + 20, 0xab, 32);
    kb_audit_tombstone_t t;
    ck_assert_int_eq(kb_audit_tombstone_parse(v, sizeof v, &t), KB_OK);
    ck_assert_int_eq(t.time_us, T0);
    ck_assert_int_eq(t.pruned_us, T0 + 5);
    ck_assert_uint_eq(t.leaf_hash[31], 0xab);
    ck_assert_int_eq(t.claim, KETENBUS__KIND__KIND_SIGNAL);
    v[3] = 0xff;
    ck_assert_int_eq(kb_audit_tombstone_parse(v, sizeof v, &t), KB_OK);
    ck_assert_int_eq(t.claim, KB_PRUNE_ALL);
    v[3] = KB_STORE_KINDS; /* no such kind */
    ck_assert_int_eq(kb_audit_tombstone_parse(v, sizeof v, &t), KB_EPROTO);
    v[3] = 1;
    ck_assert_int_eq(kb_audit_tombstone_parse(v, sizeof v - 1, &t), KB_EPROTO);
    v[1] = 'Q';
    ck_assert_int_eq(kb_audit_tombstone_parse(v, sizeof v, &t), KB_EPROTO);
    v[1] = 'P';
    v[2] = 3;
    ck_assert_int_eq(kb_audit_tombstone_parse(v, sizeof v, &t), KB_EPROTO);
    /* version 1 (51 bytes, no claim) came from pruning every kind */
    uint8_t v1[KB_AUDIT_TOMBSTONE_LEN - 1] = {0, 'P', 1};
    kb_be64_put(v1 + 3, (uint64_t)T0);
    kb_be64_put(v1 + 11, (uint64_t)T0 + 5);
    memset(v1 + 19, 0xcd, 32);
    ck_assert_int_eq(kb_audit_tombstone_parse(v1, sizeof v1, &t), KB_OK);
    ck_assert_int_eq(t.claim, KB_PRUNE_ALL);
    ck_assert_int_eq(t.time_us, T0);
    ck_assert_uint_eq(t.leaf_hash[0], 0xcd);
    ck_assert_int_eq(kb_audit_tombstone_parse(v1, sizeof v1 - 1, &t), KB_EPROTO);
    const uint8_t record[] = {0x10, 0x01};
    ck_assert_int_eq(kb_audit_tombstone_parse(record, sizeof record, &t), KB_ENOTFOUND);
    ck_assert_int_eq(kb_audit_tombstone_parse(v, 0, &t), KB_ENOTFOUND);
}
END_TEST

/* ------------------------------------------------------------ latency */

static int s_count_match(uint64_t index, const uint8_t *raw, size_t len, const Ketenbus__AuditRecord *r, void *arg)
{
    (void)index;
    (void)raw;
    (void)len;
    (void)r;
    (*(size_t *)arg)++;
    return 0;
}

START_TEST(test_subject_query_is_fast_on_a_big_log)
{
    s_log_t l;
    s_log_open(&l);
    /* 100,000 records of 25,000 messages about 20,000 persons, in batches of 512 */
    for (uint32_t i = 0; i < BIG_RECORDS; i++) {
        Ketenbus__AuditRecord r;
        uint8_t id[16], subj[32];
        ProtobufCBinaryData sd = {32, subj};
        ketenbus__audit_record__init(&r);
        r.time_us = T0 + (int64_t)i * 1000;
        r.event = (Ketenbus__AuditEvent)(KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED + (int)(i % 4));
        r.agency = (char *)s_agencies[(i / 4) % N_AGENCIES];
        r.counterpart = (char *)s_agencies[(i / 4 + 1) % N_AGENCIES];
        s_message_id(i / 4, id);
        r.message_id.data = id;
        r.message_id.len = 16;
        memset(subj, 0, sizeof subj);
        kb_be64_put(subj, ((uint64_t)(i / 4) * 2654435761u) % 20000u);
        r.n_subject_keys = i % 4 == 3 ? 0 : 1;
        r.subject_keys = &sd;
        ck_assert_int_eq(kb_store_audit_log(l.store, l.batch, l.tree, &r, NULL), KB_OK);
        if (i % 512 == 511)
            ck_assert_int_eq(kb_store_commit(l.store, l.batch, 0), KB_OK);
    }
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 0), KB_OK);
    kb_auditq_filter_t f;
    memset(&f, 0, sizeof f);
    f.n_subjects = 1;
    double worst = 0, total = 0;
    size_t total_found = 0;
    for (int q = 0; q < 50; q++) {
        memset(f.subjects[0], 0, 32);
        kb_be64_put(f.subjects[0], ((uint64_t)(q * 397) * 2654435761u) % 20000u);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        size_t found = 0;
        kb_auditq_page_t page;
        ck_assert_int_eq(kb_auditq_run(l.store, &f, 0, 1000, 0, s_count_match, &found, &page), KB_OK);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert_int_eq(page.done, 1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        total += ms;
        total_found += found;
        if (ms > worst)
            worst = ms;
        ck_assert_uint_eq(found % 4, 0); /* whole lifecycles, acks included */
        ck_assert_uint_le(page.examined, found);
    }
    printf("subject query on %u records: mean %.3f ms, worst %.3f ms, %.1f records per subject\n", BIG_RECORDS,
           total / 50, worst, (double)total_found / 50);
    ck_assert_msg(worst < 50.0, "a subject query took %.1f ms", worst);
    s_log_close(&l);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *s_suite(void)
{
    Suite *s = suite_create("auditq");
    TCase *tc = tcase_create("query");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_query_matches_brute_force, 0, ROWS(s_query_rows));
    tcase_add_test(tc, test_subject_pages_taking_turns);
    tcase_add_test(tc, test_subject_pages_see_appended_records);
    tcase_add_test(tc, test_index_entries_are_few);
    tcase_add_test(tc, test_reindex_at_open);
    tcase_add_loop_test(tc, test_corrupt_list_is_refused_by_walks, 0, ROWS(s_bad_lists));
    tcase_add_loop_test(tc, test_filter_json, 0, ROWS(s_filter_rows));
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_time_index);
    suite_add_tcase(s, tc);

    tc = tcase_create("prune");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_prune_keeps_the_tree);
    tcase_add_test(tc, test_pruned_record_read_before_is_gone);
    tcase_add_test(tc, test_prune_keeps_later_records_findable);
    tcase_add_loop_test(tc, test_prune_in_chunks_keeps_later_records_findable, 0, ROWS(s_prune_chunks));
    tcase_add_test(tc, test_prune_needs_a_checkpoint);
    tcase_add_test(tc, test_prune_refuses_an_altered_record);
    tcase_add_test(tc, test_tombstones);
    suite_add_tcase(s, tc);

    tc = tcase_create("latency");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_subject_query_is_fast_on_a_big_log);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
