/*
 * bench_audit.c - figures of the whole audit log (`make bench-audit`).
 *
 * For each size (records; default 1,000,000 and 10,000,000) it fills a
 * fresh LevelDB store in a scratch directory under $TMPDIR the way the
 * broker does: every record through kb_store_audit_log() (record, index
 * postings and Merkle tiles in one batch), one synced commit per turn of
 * about BENCH_TURN records (group commit), a signed checkpoint every
 * KB_CONF_DEFAULT_CP_RECORDS records (checkpoint_sign(), as
 * checkpoint_maybe does). Each message gives the records route.c and
 * deliver.c write: RECEIVED, then ROUTED and DELIVERED per recipient, and
 * ACKNOWLEDGED per recipient in the next turn; field values as the broker
 * fills them (agency, officer, UUIDv7 message id, kind, purpose, handling,
 * legal basis, rule id, payload digest, 1-3 subject keys, redactions).
 * Senders and recipients are drawn from BENCH_AGENCIES agencies with a
 * skewed distribution, subject keys from a Zipf-Mandelbrot distribution
 * over as many subjects as messages (a few subjects have thousands of
 * records, most have one message), and time advances over one year
 * (kb_now_us is wrapped, -Wl,--wrap=kb_now_us, so CHECKPOINT records get
 * the same clock).
 *
 * Then it prints one table: appends (records/s and messages/s, with CPU
 * seconds), audit bytes per message on disk and logically by key prefix,
 * `ketenbus audit verify --offline` (kb_audit_verify through an offline
 * kb_asrc_t, exactly the CLI's code) in records per CPU-second against
 * the in-memory leaf-hash rate of the same records, and query latency of
 * kb_auditq_run (the admin socket's code, with its page limit and
 * candidate budget) by subject, message id, agency and time range,
 * against one LevelDB point read. Figures with a target say met or
 * MISSED.
 *
 * Usage: bench_audit [--keep] [records ...]. --keep leaves the scratch
 * directory (its path is printed). Not a test: it fails only when a query
 * or verification does not give what the fill wrote.
 */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <leveldb/c.h>
#include <openssl/evp.h>

#include "audit_source.h"
#include "audit_verify.h"
#include "auditq.h"
#include "checkpoint.h"
#include "conf.h"
#include "bench_clock.h"
#include "kb_error.h"
#include "kb_merkle.h"
#include "kb_util.h"
#include "store.h"

#define BENCH_TURN        256u        /* records per synced commit (a loaded broker turn) */
#define BENCH_AGENCIES    40u         /* agencies in the chain */
#define BENCH_BROKER_ID   "bench"     /* origin ketenbus/bench */
#define BENCH_T0_US       1767225600000000LL /* 2026-01-01T00:00:00Z */
#define BENCH_YEAR_US     (365LL * 86400 * 1000000)
#define BENCH_ZIPF_SHIFT  100.0       /* Zipf-Mandelbrot q: the top subject has ~0.1% of the keys */
#define BENCH_MAX_RECORDS 100000000u  /* largest size accepted */
#define BENCH_POINT_READS 5000u       /* baseline point reads */
#define BENCH_HASH_SAMPLE 100000u     /* records held in memory for the leaf-hash baseline */
#define BENCH_HASH_ROUNDS 10u         /* passes over them */
#define BENCH_RARE        50u         /* rare subjects queried */
#define BENCH_MEDIAN      20u         /* median subjects queried */
#define BENCH_FREQUENT    5u          /* frequent subjects queried (the top ranks) */
#define BENCH_MESSAGES    200u        /* message ids queried */
#define BENCH_RANGES      30u         /* time ranges queried */
#define BENCH_RANGE_US    (86400LL * 1000000) /* one day */
#define BENCH_QUERY_MS    10.0        /* target: a query under 10 ms */
#define BENCH_VERIFY_RATE 1000000.0   /* target: records verified per second per core */
#define BENCH_KEYS_MAX    3u          /* subject keys per message */
#define BENCH_RCPT_MAX    2u          /* recipients per message */

/* ------------------------------------------------------------ clocks */

static int64_t s_clock_us = BENCH_T0_US; /* the broker's wall clock, as the fill advances it */

int64_t __wrap_kb_now_us(void);
int64_t __wrap_kb_now_us(void)
{
    return s_clock_us;
}

static int s_fail(const char *what)
{
    fprintf(stderr, "bench_audit: %s: %s\n", what, kb_last_error());
    return 1;
}

/* ------------------------------------------------------------ randomness */

static uint64_t s_rng = 0x9e3779b97f4a7c15ull; /* splitmix64 state; fixed seed: same log every run */

static uint64_t s_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t s_rand(void)
{
    s_rng += 0x9e3779b97f4a7c15ull;
    return s_mix(s_rng);
}

/* Uniform in [0, 1). */
static double s_unit(void)
{
    return (double)(s_rand() >> 11) / 9007199254740992.0;
}

/* Zipf-Mandelbrot over [0, n): p(k) ~ 1 / (k + q), by the inverse of the
 * continuous distribution function. */
static uint64_t s_zipf(uint64_t n, double q)
{
    double x = q * exp(s_unit() * log(((double)n + q) / q)) - q;
    uint64_t k = (uint64_t)x;
    return k < n ? k : n - 1;
}

/* The subject key of rank k: 32 pseudo-random bytes (an HMAC in real life). */
static void s_subject_key(uint64_t k, uint8_t out[32])
{
    for (int i = 0; i < 4; i++) {
        uint64_t w = s_mix(k * 4 + (uint64_t)i + 0x5eedull);
        memcpy(out + 8 * i, &w, 8);
    }
}

/* ------------------------------------------------------------ the chain */

static char s_agency[BENCH_AGENCIES][40]; /* agency ids */

static void s_agencies(void)
{
    static const char *kinds[] = {"politie-eenheid", "gemeente", "coa-locatie", "fier-opvang", "raad-regio",
                                  "kmar-district", "inspectie-szw", "comensha-loket"};
    for (unsigned i = 0; i < BENCH_AGENCIES; i++)
        snprintf(s_agency[i], sizeof s_agency[i], "%s-%02u", kinds[i % 8], i / 8 + 1);
}

/* ------------------------------------------------------------ the fill */

/* An acknowledgement due in the next turn. */
typedef struct {
    uint8_t id[16];    /* message id */
    unsigned sender;   /* sending agency */
    unsigned rcpt;     /* acknowledging agency */
    int kind;          /* Ketenbus__Kind */
    uint64_t tag;      /* delivery tag */
} s_ack_t;

typedef struct {
    kb_store_t *s;          /* the store */
    kb_batch_t *b;          /* the turn's batch */
    kb_merkle_t *tree;      /* the audit tree */
    EVP_PKEY *key;          /* the broker's signing key */
    uint64_t target;        /* records to write */
    uint64_t messages;      /* messages written */
    uint64_t *subj_count;   /* messages per subject rank */
    uint64_t n_ranks;       /* subject ranks */
    uint64_t tag;           /* next delivery tag */
    s_ack_t *acks[2];       /* acknowledgements of the previous and the current turn */
    size_t n_acks[2];       /* their numbers */
    size_t cap_acks;        /* allocated per array */
    uint64_t next_cp;       /* size of the next checkpoint */
    uint64_t checkpoints;   /* signed */
    int64_t step_us;        /* mean clock advance per message */
    uint8_t (*sample_ids)[16]; /* message ids kept for the queries */
    size_t n_sample;        /* their number */
} s_fill_t;

static void s_uuid7(int64_t us, uint8_t id[16])
{
    uint64_t ms = (uint64_t)(us / 1000), r1 = s_rand(), r2 = s_rand();
    for (int i = 0; i < 6; i++)
        id[i] = (uint8_t)(ms >> (40 - 8 * i));
    memcpy(id + 6, &r1, 2);
    memcpy(id + 8, &r2, 8);
    id[6] = (uint8_t)((id[6] & 0x0f) | 0x70);
    id[8] = (uint8_t)((id[8] & 0x3f) | 0x80);
}

static int s_log(s_fill_t *x, Ketenbus__AuditRecord *r)
{
    r->time_us = s_clock_us;
    s_clock_us += 1 + (int64_t)(s_rand() % 50); /* records of one turn are microseconds apart */
    return kb_store_audit_log(x->s, x->b, x->tree, r, NULL);
}

/* Commit the turn (synced); the previous turn's acknowledgements are
 * written at the start of the next one. Sign a checkpoint when due. */
static int s_turn_end(s_fill_t *x)
{
    if (kb_store_commit(x->s, x->b, 1) != KB_OK)
        return s_fail("commit");
    if (kb_store_audit_size(x->s) >= x->next_cp) {
        if (checkpoint_sign(x->s, x->b, x->tree, BENCH_BROKER_ID, x->key, NULL) != KB_OK ||
            kb_store_commit(x->s, x->b, 1) != KB_OK)
            return s_fail("checkpoint");
        x->checkpoints++;
        x->next_cp += KB_CONF_DEFAULT_CP_RECORDS;
    }
    /* acknowledgements arrive in the next turn */
    s_ack_t *t = x->acks[0];
    x->acks[0] = x->acks[1];
    x->acks[1] = t;
    x->n_acks[0] = x->n_acks[1];
    x->n_acks[1] = 0;
    for (size_t i = 0; i < x->n_acks[0]; i++) {
        s_ack_t *a = &x->acks[0][i];
        Ketenbus__AuditRecord r;
        ketenbus__audit_record__init(&r);
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ACKNOWLEDGED;
        r.agency = s_agency[a->sender];
        r.counterpart = s_agency[a->rcpt];
        r.message_id.data = a->id;
        r.message_id.len = 16;
        r.kind = (Ketenbus__Kind)a->kind;
        r.tag = a->tag;
        if (s_log(x, &r) != KB_OK)
            return s_fail("ack");
    }
    x->n_acks[0] = 0;
    return 0;
}

/* One accepted message: RECEIVED, ROUTED and DELIVERED per recipient; the
 * acknowledgements are queued for the next turn. */
static int s_message(s_fill_t *x)
{
    static const char *bases[] = {"Wet politiegegevens art. 19", "Jeugdwet art. 7.4.4",
                                  "Vreemdelingenwet 2000 art. 107", "Wet maatschappelijke ondersteuning art. 5.2.6",
                                  "Wetboek van Strafvordering art. 126nd"};
    static const char *redact[] = {"narrative", "person.address", "person.phone"};
    static const Ketenbus__Kind kinds[] = {KETENBUS__KIND__KIND_SIGNAL, KETENBUS__KIND__KIND_SIGNAL,
                                           KETENBUS__KIND__KIND_SIGNAL, KETENBUS__KIND__KIND_REFERRAL,
                                           KETENBUS__KIND__KIND_REFERRAL_UPDATE, KETENBUS__KIND__KIND_MATCH_NOTICE};
    s_clock_us += (int64_t)(s_unit() * 2.0 * (double)x->step_us);
    /* senders: a few agencies send most (police units, shelters) */
    unsigned sender = (unsigned)s_zipf(BENCH_AGENCIES, 2.0);
    unsigned n_rcpt = 1 + (s_rand() % 10 < 2 ? 1 : 0);
    unsigned rcpt[BENCH_RCPT_MAX];
    for (unsigned i = 0; i < n_rcpt; i++) {
        do
            rcpt[i] = (unsigned)s_zipf(BENCH_AGENCIES, 4.0);
        while (rcpt[i] == sender || (i == 1 && rcpt[1] == rcpt[0]));
    }
    unsigned n_keys = 1 + (s_rand() % 10 < 3 ? 1 : 0) + (s_rand() % 10 < 1 ? 1 : 0);
    uint8_t keys[BENCH_KEYS_MAX][32], id[16], digest[32];
    ProtobufCBinaryData kb[BENCH_KEYS_MAX];
    for (unsigned i = 0; i < n_keys; i++) {
        uint64_t k = s_zipf(x->n_ranks, BENCH_ZIPF_SHIFT);
        x->subj_count[k]++;
        s_subject_key(k, keys[i]);
        kb[i].data = keys[i];
        kb[i].len = 32;
    }
    s_uuid7(s_clock_us, id);
    for (int i = 0; i < 4; i++) {
        uint64_t w = s_rand();
        memcpy(digest + 8 * i, &w, 8);
    }
    if (x->n_sample < BENCH_MESSAGES && s_rand() % 1000 == 0)
        memcpy(x->sample_ids[x->n_sample++], id, 16);
    char officer[32], rule[80];
    snprintf(officer, sizeof officer, "OFC-%06u", (unsigned)(s_rand() % 900000 + 100000));
    Ketenbus__Kind kind = kinds[s_rand() % 6];
    Ketenbus__AuditRecord r;
    ketenbus__audit_record__init(&r);
    r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
    r.agency = s_agency[sender];
    r.officer = officer;
    r.message_id.data = id;
    r.message_id.len = 16;
    r.kind = kind;
    r.purpose = (Ketenbus__Purpose)(1 + s_rand() % 6);
    r.handling = (Ketenbus__Handling)(1 + s_rand() % 4);
    r.legal_basis = (char *)bases[sender % 5];
    r.n_subject_keys = n_keys;
    r.subject_keys = kb;
    r.payload_sha256.data = digest;
    r.payload_sha256.len = 32;
    Ketenbus__AuditRecord base = r;
    if (s_log(x, &r) != KB_OK)
        return s_fail("received");
    for (unsigned i = 0; i < n_rcpt; i++) {
        snprintf(rule, sizeof rule, "%.30s-to-%.30s", s_agency[sender], s_agency[rcpt[i]]);
        r = base;
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED;
        r.counterpart = s_agency[rcpt[i]];
        r.rule_id = rule;
        r.tag = x->tag + i;
        if (s_rand() % 4 == 0) {
            r.n_redacted = 1 + s_rand() % 3;
            r.redacted = (char **)redact;
        }
        if (s_log(x, &r) != KB_OK)
            return s_fail("routed");
    }
    for (unsigned i = 0; i < n_rcpt; i++) {
        r = base;
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DELIVERED;
        r.counterpart = s_agency[rcpt[i]];
        r.tag = x->tag + i;
        if (s_log(x, &r) != KB_OK)
            return s_fail("delivered");
        if (x->n_acks[1] == x->cap_acks)
            return kb_error_set(KB_ENOMEM, "ack queue"), s_fail("acks");
        s_ack_t *a = &x->acks[1][x->n_acks[1]++];
        memcpy(a->id, id, 16);
        a->sender = sender;
        a->rcpt = rcpt[i];
        a->kind = kind;
        a->tag = x->tag + i;
    }
    x->tag += n_rcpt;
    x->messages++;
    return 0;
}

/* ------------------------------------------------------------ table */

static int s_markdown; /* 1: print the table as Markdown */

static void s_row(uint64_t size, const char *figure, const char *value, const char *target, const char *met,
                  const char *baseline)
{
    char n[32];
    snprintf(n, sizeof n, "%" PRIu64 "M", size / 1000000);
    if (size % 1000000)
        snprintf(n, sizeof n, "%" PRIu64, size);
    if (s_markdown)
        printf("| %s | %s | %s | %s | %s | %s |\n", n, figure, value, target, met, baseline);
    else
        printf("%-5s %-52s %-30s %-13s %-7s %s\n", n, figure, value, target, met, baseline);
    fflush(stdout);
}

static void s_header(void)
{
    if (s_markdown) {
        printf("| records | figure | value | target | | baseline (same process) and ratio |\n");
        printf("|---|---|---|---|---|---|\n");
    } else {
        printf("%-5s %-52s %-30s %-13s %-7s %s\n", "size", "figure", "value", "target", "", "baseline (same process), ratio");
    }
}

/* ------------------------------------------------------------ disk */

static uint64_t s_dir_bytes(const char *dir)
{
    uint64_t total = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[600];
        struct stat st;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p && stat(p, &st) == 0 &&
            S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

/* Logical bytes (key + value) by key prefix: b (audit blocks), t, k, x<kind>, other. */
typedef struct {
    uint64_t records, tiles, checkpoints, x_msg, x_subj, x_agency, x_event, other;
} s_bytes_t;

static int s_logical(const char *dir, s_bytes_t *out)
{
    memset(out, 0, sizeof *out);
    char *err = NULL;
    leveldb_options_t *o = leveldb_options_create();
    leveldb_t *db = leveldb_open(o, dir, &err);
    leveldb_options_destroy(o);
    if (err) {
        fprintf(stderr, "bench_audit: leveldb: %s\n", err);
        leveldb_free(err);
        return 1;
    }
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    leveldb_readoptions_set_fill_cache(ro, 0);
    leveldb_iterator_t *it = leveldb_create_iterator(db, ro);
    for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl = 0, vl = 0;
        const char *k = leveldb_iter_key(it, &kl);
        (void)leveldb_iter_value(it, &vl);
        uint64_t n = kl + vl;
        switch (kl ? k[0] : 0) {
        case 'b': out->records += n; break; /* audit blocks */
        case 't': out->tiles += n; break;
        case 'k': out->checkpoints += n; break;
        case 'x':
            switch (kl > 1 ? k[1] : 0) {
            case KB_INDEX_MESSAGE: out->x_msg += n; break;
            case KB_INDEX_SUBJECT: out->x_subj += n; break;
            case KB_INDEX_AGENCY: out->x_agency += n; break;
            default: out->x_event += n; break;
            }
            break;
        default: out->other += n; break;
        }
    }
    leveldb_iter_destroy(it);
    leveldb_readoptions_destroy(ro);
    leveldb_close(db);
    return 0;
}

/* ------------------------------------------------------------ latency */

typedef struct {
    double *v;  /* milliseconds */
    size_t n;   /* used */
    size_t cap; /* allocated */
} s_lat_t;

static void s_lat_add(s_lat_t *l, double ms)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        double *p = realloc(l->v, cap * sizeof *p);
        if (!p)
            return;
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = ms;
}

static int s_cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* p50, p99, max of l (sorted in place). */
static void s_lat_stats(s_lat_t *l, double *p50, double *p99, double *max)
{
    *p50 = *p99 = *max = 0;
    if (l->n == 0)
        return;
    qsort(l->v, l->n, sizeof *l->v, s_cmp_d);
    *p50 = l->v[(l->n - 1) / 2];
    *p99 = l->v[(size_t)((double)(l->n - 1) * 0.99)];
    *max = l->v[l->n - 1];
}

static int s_count_fn(uint64_t index, const uint8_t *raw, size_t len, const Ketenbus__AuditRecord *r, void *arg)
{
    (void)index, (void)raw, (void)len, (void)r;
    (*(uint64_t *)arg)++;
    return 0;
}

/* One query as the admin socket runs it: pages of KB_AUDITQ_MAX_LIMIT
 * matches and KB_AUDITQ_BUDGET_ADMIN candidates. first_ms: the first
 * request; whole_ms (NULL: stop after the first): every request until
 * done. */
static int s_query(kb_store_t *s, const kb_auditq_filter_t *f, double *first_ms, double *whole_ms, uint64_t *matched,
                   uint64_t *pages)
{
    uint64_t from = 0, n = 0, np = 0;
    double t0 = bench_clock_s(CLOCK_MONOTONIC);
    for (;;) {
        kb_auditq_page_t page;
        int rc = kb_auditq_run(s, f, from, KB_AUDITQ_MAX_LIMIT, KB_AUDITQ_BUDGET_ADMIN, s_count_fn, &n, &page);
        if (rc != KB_OK)
            return s_fail("query");
        np++;
        if (np == 1)
            *first_ms = (bench_clock_s(CLOCK_MONOTONIC) - t0) * 1e3;
        if (!whole_ms || page.done)
            break;
        from = page.next;
    }
    if (whole_ms)
        *whole_ms = (bench_clock_s(CLOCK_MONOTONIC) - t0) * 1e3;
    if (matched)
        *matched = n;
    if (pages)
        *pages = np;
    return 0;
}

static void s_lat_row(uint64_t size, const char *figure, s_lat_t *l, double base_ms, const char *note)
{
    double p50, p99, max;
    s_lat_stats(l, &p50, &p99, &max);
    char value[64], baseline[160], target[24];
    snprintf(value, sizeof value, "%.2f / %.2f / %.2f ms", p50, p99, max);
    snprintf(target, sizeof target, "p99 < %.0f ms", BENCH_QUERY_MS);
    snprintf(baseline, sizeof baseline, "p50 = %.0f x point read (%.1f us)%s%s", p50 / base_ms, base_ms * 1e3,
             note ? "; " : "", note ? note : "");
    s_row(size, figure, value, target, p99 < BENCH_QUERY_MS ? "met" : "MISSED", baseline);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* ------------------------------------------------------------ one size */

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    uint8_t *buf;  /* concatenated records */
    size_t *len;   /* their lengths */
    size_t n;      /* number held */
    size_t used;   /* bytes used */
    size_t cap;    /* bytes allocated */
} s_sample_t;

static int s_sample_fn(uint64_t index, const uint8_t *val, size_t len, void *arg)
{
    (void)index;
    s_sample_t *m = arg;
    if (m->used + len > m->cap) {
        size_t cap = (m->cap + len) * 2;
        uint8_t *p = realloc(m->buf, cap);
        if (!p)
            return 1;
        m->buf = p;
        m->cap = cap;
    }
    memcpy(m->buf + m->used, val, len);
    m->used += len;
    m->len[m->n++] = len;
    return 0;
}

static int s_run(const char *dir, uint64_t size)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return s_fail("rm");
    static const uint8_t skey[32] = {7, 7, 7};
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    s_fill_t x;
    memset(&x, 0, sizeof x);
    x.s = kb_store_open(dir, skey);
    x.b = kb_batch_new();
    if (!key || !x.s || !x.b)
        return s_fail("open");
    kb_store_tiles_t tiles = {x.s, x.b};
    kb_merkle_io_t io = kb_store_tiles_io(&tiles);
    x.tree = kb_merkle_new(&io);
    x.key = key;
    x.target = size;
    x.n_ranks = size / 4 + 1;
    x.subj_count = calloc(x.n_ranks, sizeof *x.subj_count);
    x.cap_acks = BENCH_TURN;
    x.acks[0] = calloc(x.cap_acks, sizeof(s_ack_t));
    x.acks[1] = calloc(x.cap_acks, sizeof(s_ack_t));
    x.sample_ids = calloc(BENCH_MESSAGES, 16);
    x.next_cp = KB_CONF_DEFAULT_CP_RECORDS;
    /* about 4.4 records per message: spread the messages over a year */
    x.step_us = (int64_t)(BENCH_YEAR_US / (int64_t)(size / 4 + 1));
    if (!x.tree || !x.subj_count || !x.acks[0] || !x.acks[1] || !x.sample_ids)
        return s_fail("memory");
    s_clock_us = BENCH_T0_US;
    s_rng = 0x9e3779b97f4a7c15ull;

    /* 1. the fill */
    double t0 = bench_clock_s(CLOCK_MONOTONIC), c0 = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t turn_start = 0;
    while (kb_store_audit_size(x.s) < size) {
        if (s_message(&x) != 0)
            return 1;
        /* a turn ends once it holds BENCH_TURN records (its last message whole) */
        if (kb_store_audit_size(x.s) - turn_start + BENCH_RCPT_MAX * 3 + 1 > BENCH_TURN) {
            if (s_turn_end(&x) != 0)
                return 1;
            turn_start = kb_store_audit_size(x.s);
        }
    }
    if (s_turn_end(&x) != 0 || s_turn_end(&x) != 0) /* the last acknowledgements */
        return 1;
    if (checkpoint_sign(x.s, x.b, x.tree, BENCH_BROKER_ID, key, NULL) != KB_OK ||
        kb_store_commit(x.s, x.b, 1) != KB_OK)
        return s_fail("checkpoint");
    x.checkpoints++;
    double fill_s = bench_clock_s(CLOCK_MONOTONIC) - t0, fill_cpu = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    uint64_t records = kb_store_audit_size(x.s), messages = x.messages;
    kb_merkle_destroy(&x.tree);
    kb_batch_destroy(&x.b);
    kb_store_destroy(&x.s);
    char value[96], base[200];
    snprintf(value, sizeof value, "%.0f records/s, %.0f msg/s", (double)records / fill_s, (double)messages / fill_s);
    snprintf(base, sizeof base, "%" PRIu64 " records, %" PRIu64 " messages, %" PRIu64 " checkpoints in %.1f s; "
             "%.1f CPU s = %.2f us CPU/record", records, messages, x.checkpoints, fill_s, fill_cpu,
             fill_cpu / (double)records * 1e6);
    s_row(size, "appends (synced turns of ~256 records)", value, "-", "", base);

    /* 2. bytes per message */
    uint64_t disk = s_dir_bytes(dir);
    s_bytes_t lb;
    if (s_logical(dir, &lb) != 0)
        return 1;
    double m = (double)messages;
    snprintf(value, sizeof value, "%.0f B/msg on disk", (double)disk / m);
    snprintf(base, sizeof base,
             "logical per msg: records %.0f, tiles %.1f, index msg %.0f subj %.0f agency %.0f event %.0f, "
             "checkpoints %.1f, other %.1f (%.1f records/msg)",
             (double)lb.records / m, (double)lb.tiles / m, (double)lb.x_msg / m, (double)lb.x_subj / m,
             (double)lb.x_agency / m, (double)lb.x_event / m, (double)lb.checkpoints / m, (double)lb.other / m,
             (double)records / m);
    s_row(size, "audit bytes per message", value, "-", "", base);

    /* 3. verify, as `ketenbus audit verify --offline` */
    kb_asrc_opts_t ao = {.data = dir, .offline = 1};
    kb_asrc_t *src = kb_asrc_open(&ao);
    if (!src)
        return s_fail("asrc");
    kb_verify_result_t vr;
    t0 = bench_clock_s(CLOCK_MONOTONIC);
    c0 = bench_clock_s(CLOCK_THREAD_CPUTIME_ID);
    double p0 = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID);
    if (kb_audit_verify(src, key, "ketenbus/" BENCH_BROKER_ID, NULL, 0, NULL, &vr) != KB_OK)
        return s_fail("verify");
    double v_s = bench_clock_s(CLOCK_MONOTONIC) - t0, v_cpu = bench_clock_s(CLOCK_THREAD_CPUTIME_ID) - c0, v_pcpu = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID) - p0;
    kb_asrc_destroy(&src);
    if (!vr.ok || vr.size != records) {
        fprintf(stderr, "bench_audit: verify failed: %s\n", vr.message);
        return 1;
    }
    uint64_t v_checked = vr.checked, v_cps = vr.checkpoints_ok;
    kb_verify_result_clear(&vr);

    /* the baseline: leaf hash + tree of the same records, in memory */
    kb_store_t *s = kb_store_open_ex(dir, NULL, KB_STORE_NO_CREATE);
    if (!s)
        return s_fail("reopen");
    s_sample_t sm = {0};
    sm.len = calloc(BENCH_HASH_SAMPLE, sizeof *sm.len);
    if (!sm.len || kb_store_audit_scan(s, 0, records, BENCH_HASH_SAMPLE, s_sample_fn, &sm) != KB_OK)
        return s_fail("sample");
    kb_merkle_acc_t *acc = kb_merkle_acc_new();
    if (!acc)
        return s_fail("acc");
    c0 = bench_clock_s(CLOCK_THREAD_CPUTIME_ID);
    for (unsigned round = 0; round < BENCH_HASH_ROUNDS; round++) {
        size_t off = 0;
        for (size_t i = 0; i < sm.n; i++) {
            if (kb_merkle_acc_add(acc, sm.buf + off, sm.len[i]) != KB_OK)
                return s_fail("hash");
            off += sm.len[i];
        }
    }
    double h_cpu = bench_clock_s(CLOCK_THREAD_CPUTIME_ID) - c0, h_rate = (double)(sm.n * BENCH_HASH_ROUNDS) / h_cpu;
    kb_merkle_acc_destroy(&acc);
    double v_rate = (double)records / v_cpu;
    snprintf(value, sizeof value, "%.0f records/CPU-s", v_rate);
    snprintf(base, sizeof base,
             "%.2f x leaf hash + tree in memory (%.0f/CPU-s, %.0f B avg); %.2f s wall, %.2f CPU s (process "
             "%.2f: compaction), %" PRIu64 " recomputed, %" PRIu64 " checkpoints",
             v_rate / h_rate, h_rate, (double)sm.used / (double)(sm.n ? sm.n : 1), v_s, v_cpu, v_pcpu, v_checked,
             v_cps);
    s_row(size, "audit verify --offline", value, ">= 1M/s/core", v_rate >= BENCH_VERIFY_RATE ? "met" : "MISSED",
          base);
    free(sm.buf);
    free(sm.len);

    /* 4. queries */
    s_lat_t lat = {0};
    for (unsigned i = 0; i < BENCH_POINT_READS; i++) {
        uint64_t idx = s_rand() % records;
        uint8_t *raw = NULL;
        size_t len = 0;
        double q0 = bench_clock_s(CLOCK_MONOTONIC);
        if (kb_store_audit_raw(s, idx, &raw, &len) != KB_OK)
            return s_fail("point read");
        s_lat_add(&lat, (bench_clock_s(CLOCK_MONOTONIC) - q0) * 1e3);
        free(raw);
    }
    double p50, p99, max;
    s_lat_stats(&lat, &p50, &p99, &max);
    double point_ms = p50;
    snprintf(value, sizeof value, "%.1f / %.1f / %.1f us", p50 * 1e3, p99 * 1e3, max * 1e3);
    s_row(size, "baseline: one record read (kb_store_audit_raw)", value, "-", "", "p50 / p99 / max");
    free(lat.v);
    memset(&lat, 0, sizeof lat);

    /* subjects by how many messages they have */
    uint64_t *sorted = malloc(x.n_ranks * sizeof *sorted);
    if (!sorted)
        return s_fail("memory");
    memcpy(sorted, x.subj_count, x.n_ranks * sizeof *sorted);
    qsort(sorted, x.n_ranks, sizeof *sorted, s_cmp_u64);
    /* the median subject by key occurrences: half the keys written belong to
     * subjects with at most this many messages */
    uint64_t total = 0, acc_n = 0, median = 1;
    for (uint64_t i = 0; i < x.n_ranks; i++)
        total += sorted[i];
    for (uint64_t i = 0; i < x.n_ranks; i++) {
        acc_n += sorted[i];
        if (acc_n * 2 >= total) {
            median = sorted[i];
            break;
        }
    }
    free(sorted);
    struct {
        const char *name;  /* row name */
        uint64_t lo, hi;   /* messages per subject */
        unsigned want;     /* subjects to query */
    } classes[3] = {{"rare (1 message)", 1, 1, BENCH_RARE},
                    {"median", median, median + median / 4, BENCH_MEDIAN},
                    {"frequent (top ranks)", 0, 0, BENCH_FREQUENT}};
    for (int c = 0; c < 3; c++) {
        s_lat_t first = {0}, whole = {0};
        uint64_t n_rec = 0, n_min = UINT64_MAX, n_max = 0, n_pages = 0, msgs = 0;
        double whole_sum = 0;
        unsigned got = 0;
        uint64_t start = c == 2 ? 0 : s_rand() % x.n_ranks;
        for (uint64_t j = 0; j < x.n_ranks && got < classes[c].want; j++) {
            uint64_t k = c == 2 ? j : (start + j) % x.n_ranks;
            uint64_t cnt = x.subj_count[k];
            if (c != 2 && (cnt < classes[c].lo || cnt > classes[c].hi))
                continue;
            kb_auditq_filter_t f;
            memset(&f, 0, sizeof f);
            s_subject_key(k, f.subjects[0]);
            f.n_subjects = 1;
            double fm = 0, wm = 0;
            uint64_t got_n = 0, np = 0;
            if (s_query(s, &f, &fm, &wm, &got_n, &np) != 0)
                return 1;
            if (got_n == 0) {
                fprintf(stderr, "bench_audit: subject rank %" PRIu64 " found nothing\n", k);
                return 1;
            }
            s_lat_add(&first, fm);
            s_lat_add(&whole, wm);
            whole_sum += wm;
            n_rec += got_n;
            n_pages += np;
            msgs += cnt;
            n_min = got_n < n_min ? got_n : n_min;
            n_max = got_n > n_max ? got_n : n_max;
            got++;
        }
        char fig[96], note[160];
        snprintf(note, sizeof note, "%u subjects, %" PRIu64 "-%" PRIu64 " records each (%.0f msgs avg), %.1f pages avg",
                 got, n_min, n_max, (double)msgs / (got ? got : 1), (double)n_pages / (got ? got : 1));
        snprintf(fig, sizeof fig, "by subject, %s: first page", classes[c].name);
        s_lat_row(size, fig, &first, point_ms, note);
        snprintf(note, sizeof note, "%.2f us per record returned", whole_sum * 1e3 / (double)(n_rec ? n_rec : 1));
        snprintf(fig, sizeof fig, "by subject, %s: whole result", classes[c].name);
        s_lat_row(size, fig, &whole, point_ms, note);
    }
    /* by message id */
    for (size_t i = 0; i < x.n_sample; i++) {
        kb_auditq_filter_t f;
        memset(&f, 0, sizeof f);
        f.has_message = 1;
        memcpy(f.message_id, x.sample_ids[i], 16);
        double fm = 0;
        uint64_t got_n = 0;
        if (s_query(s, &f, &fm, NULL, &got_n, NULL) != 0)
            return 1;
        if (got_n < 4)
            return kb_error_set(KB_EPROTO, "message has %" PRIu64 " records", got_n), s_fail("by message");
        s_lat_add(&lat, fm);
    }
    char note[96];
    snprintf(note, sizeof note, "%zu messages, 4 or 7 records each", x.n_sample);
    s_lat_row(size, "by message id", &lat, point_ms, note);
    /* by agency: first page */
    for (unsigned i = 0; i < BENCH_AGENCIES; i++) {
        kb_auditq_filter_t f;
        memset(&f, 0, sizeof f);
        snprintf(f.agency, sizeof f.agency, "%.39s", s_agency[i]);
        double fm = 0;
        if (s_query(s, &f, &fm, NULL, NULL, NULL) != 0)
            return 1;
        s_lat_add(&lat, fm);
    }
    snprintf(note, sizeof note, "%u agencies, first %u records", BENCH_AGENCIES, KB_AUDITQ_MAX_LIMIT);
    s_lat_row(size, "by agency: first page", &lat, point_ms, note);
    /* by time range: one day */
    s_lat_t whole = {0};
    uint64_t n_rec = 0;
    double whole_sum = 0;
    for (unsigned i = 0; i < BENCH_RANGES; i++) {
        kb_auditq_filter_t f;
        memset(&f, 0, sizeof f);
        f.has_since = f.has_until = 1;
        f.since_us = BENCH_T0_US + (int64_t)(s_unit() * (double)(BENCH_YEAR_US - BENCH_RANGE_US));
        f.until_us = f.since_us + BENCH_RANGE_US;
        double fm = 0, wm = 0;
        uint64_t got_n = 0;
        if (s_query(s, &f, &fm, &wm, &got_n, NULL) != 0)
            return 1;
        s_lat_add(&lat, fm);
        s_lat_add(&whole, wm);
        n_rec += got_n;
        whole_sum += wm;
    }
    snprintf(note, sizeof note, "%u one-day ranges, %.0f records each", BENCH_RANGES, (double)n_rec / BENCH_RANGES);
    s_lat_row(size, "by time range (one day): first page", &lat, point_ms, note);
    snprintf(note, sizeof note, "%.2f us per record returned", whole_sum * 1e3 / (double)(n_rec ? n_rec : 1));
    s_lat_row(size, "by time range (one day): whole result", &whole, point_ms, note);

    kb_store_destroy(&s);
    EVP_PKEY_free(key);
    free(x.subj_count);
    free(x.acks[0]);
    free(x.acks[1]);
    free(x.sample_ids);
    return 0;
}

int main(int argc, char **argv)
{
    int keep = 0;
    uint64_t sizes[16];
    size_t n_sizes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--keep") == 0) {
            keep = 1;
            continue;
        }
        if (strcmp(argv[i], "--markdown") == 0) {
            s_markdown = 1;
            continue;
        }
        char *end = NULL;
        unsigned long long v = strtoull(argv[i], &end, 10);
        if (!end || *end || v < 1000 || v > BENCH_MAX_RECORDS || n_sizes == sizeof sizes / sizeof *sizes) {
            fprintf(stderr, "usage: bench_audit [--keep] [--markdown] [records (1000..%u) ...]\n", BENCH_MAX_RECORDS);
            return 2;
        }
        sizes[n_sizes++] = v;
    }
    if (n_sizes == 0)
        sizes[n_sizes++] = 1000000;
    const char *tmp = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/bench_audit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("bench_audit: mkdtemp");
        return 1;
    }
    s_agencies();
    printf("audit log: the broker's store (LevelDB) filled as route.c/deliver.c write it; scratch %s\n", dir);
    printf("latency columns: p50 / p99 / max; queries as the admin socket runs them (pages of %u, budget %u)\n",
           KB_AUDITQ_MAX_LIMIT, KB_AUDITQ_BUDGET_ADMIN);
    s_header();
    int rc = 0;
    for (size_t i = 0; i < n_sizes && rc == 0; i++) {
        char sub[300];
        snprintf(sub, sizeof sub, "%s/%" PRIu64, dir, sizes[i]);
        rc = s_run(sub, sizes[i]);
        if (!keep) {
            char cmd[400];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", sub);
            if (system(cmd) != 0)
                rc = 1;
        }
    }
    if (keep)
        printf("kept %s\n", dir);
    else
        rmdir(dir);
    return rc;
}
