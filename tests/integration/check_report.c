/*
 * check_report.c - the HTML audit report (ops/cli/report_html.c), checked as
 * text and as rendered by headless Chromium.
 *
 * A synthetic but realistic audit log of five days in November 2026 among
 * six agencies of the chain (police, child protection board, two shelters,
 * CoMensha, a municipality): signals, referrals and their updates routed
 * under named rules, refusals by three rules, by the default deny and by
 * the checks before the rules, two expired items, texts that claim an
 * escalation (an adapter's name, a reason: free text, never counted as
 * one), and a refusal whose reason quotes a hostile legal basis with
 * <script> and quotes. The test builds the page, checks its ids and every number
 * against counts made here, then has /usr/bin/chromium take a screenshot
 * and dump the DOM it built: the PNG must be a real 1280x2000 picture, and
 * the DOM must hold the sections and the matrix numbers, with the hostile
 * text as text and no script element. Chromium runs in its own process
 * group with a fresh profile and HOME in the scratch directory and is killed
 * after S_CHROMIUM_SECONDS. A missing Chromium fails the test: `make deps`
 * installs it. KB_KEEP_TMP=1 keeps the scratch directory (report.html,
 * report.png) to look at.
 *
 * Unit checks of the same module: HTML escaping (a table of hostile
 * strings), the UTC day of a time at the boundaries, and the argument,
 * limit and write errors of kb_report_html().
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <openssl/evp.h>

#include "kb_error.h"
#include "kb_note.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"

#include "report_html.h"
#include "kb_test.h"

#define S_CHROMIUM          "/usr/bin/chromium"
#define S_CHROMIUM_SECONDS  60
#define S_MAX_RECORDS       1024
#define S_MAX_HTML          (4u << 20)
#define S_DAY_US            86400000000LL
#define S_HOUR_US           3600000000LL
#define S_MIN_US            60000000LL
#define S_N_DAYS            5
#define S_PNG_MIN           (8u << 10) /* a rendered page, not a blank one */
#define S_ORIGIN            "ketenbus.example/keten-mensenhandel"

/* 2026-11-16T00:00:00Z and the day number of that date. */
#define S_SINCE_US 1794787200000000LL
#define S_DAY0     20773

#define K_SIGNAL   KETENBUS__KIND__KIND_SIGNAL
#define K_REFERRAL KETENBUS__KIND__KIND_REFERRAL
#define K_UPDATE   KETENBUS__KIND__KIND_REFERRAL_UPDATE
#define E_(x)      KETENBUS__AUDIT_EVENT__AUDIT_EVENT_##x
#define R_(x)      KETENBUS__REJECT_CODE__REJECT_##x

static const char *s_agencies[] = {"comensha", "fier", "gem-amsterdam", "ldh", "politie", "rvdk"};
#define S_N_AGENCIES (sizeof s_agencies / sizeof s_agencies[0])

/* Messages routed under a rule, per day of the period. */
static const struct {
    const char *from;    /* sending agency */
    const char *to;      /* recipient */
    int kind;            /* Kind */
    const char *rule;    /* rule that allowed it */
    int per_day[S_N_DAYS]; /* messages on each day */
} s_flows[] = {
    {"politie", "rvdk", K_SIGNAL, "politie-rvdk-minderjarigen", {3, 2, 4, 1, 2}},
    {"politie", "rvdk", K_REFERRAL, "politie-rvdk-minderjarigen", {1, 0, 1, 0, 1}},
    {"fier", "comensha", K_SIGNAL, "registratie-comensha", {2, 2, 2, 2, 2}},
    {"ldh", "comensha", K_SIGNAL, "registratie-comensha", {1, 1, 0, 1, 1}},
    {"rvdk", "politie", K_UPDATE, "rvdk-terugkoppeling", {1, 0, 1, 1, 0}},
    {"gem-amsterdam", "fier", K_REFERRAL, "gemeente-opvang", {0, 1, 1, 0, 2}},
    {"fier", "ldh", K_REFERRAL, "opvang-overdracht", {1, 0, 0, 1, 0}},
    {"politie", "comensha", K_SIGNAL, "registratie-comensha", {2, 1, 1, 2, 1}},
};

#define S_HOSTILE_BASIS "<script>alert('x')</script> & \"Wpg\""
/* An adapter's name, which the broker logs as its CONNECTED record's reason. */
#define S_ADAPTER_ESCALATED "Escalated: urgent referral 4711 not accepted before its deadline"

/* Refusals: rule ("" = none), code, reason, pair, how many. */
static const struct {
    const char *rule;   /* deciding rule, "" for none */
    int code;           /* RejectCode */
    const char *reason; /* the broker's reason */
    const char *from;   /* sender */
    const char *to;     /* recipient, "" for the whole message */
    int n;              /* refusals */
    int received;       /* 1: passed the checks, so a received record precedes it */
} s_refusals[] = {
    {"deny-gemeente-narratief", R_(NOT_ALLOWED), "rule deny-gemeente-narratief: municipalities get no police narrative",
     "gem-amsterdam", "politie", 4, 1},
    {"h3-blijft-binnen", R_(NOT_ALLOWED), "handling h3 exceeds the rule's highest, h2", "politie", "fier", 3, 1},
    {"comensha-alleen-registratie", R_(NOT_ALLOWED), "purpose criminal_investigation not allowed", "comensha", "rvdk",
     2, 1},
    {"comensha-alleen-registratie", R_(NOT_ALLOWED), "purpose analysis not allowed", "comensha", "rvdk", 1, 1},
    {"", R_(NOT_ALLOWED), "no sharing rule allows ldh to send signal to gem-amsterdam", "ldh", "gem-amsterdam", 5, 1},
    {"", R_(NOT_ALLOWED), "no rule for legal basis " S_HOSTILE_BASIS, "fier", "gem-amsterdam", 1, 1},
    {"", R_(BAD_SIGNATURE), "signature does not verify", "ldh", "", 1, 0},
};

/* The synthetic log and the report over it. */
typedef struct {
    Ketenbus__AuditRecord rec[S_MAX_RECORDS];      /* the records */
    const Ketenbus__AuditRecord *ptr[S_MAX_RECORDS]; /* pointers to them, for kb_report_t */
    uint8_t ids[S_MAX_RECORDS][16];                /* message ids */
    size_t n;                                      /* records made */
    uint64_t msgs;                                 /* message ids handed out */
    char *note;                                    /* the signed checkpoint (OpenSSL-free text) */
    char root_hex[2 * KB_MERKLE_HASH_LEN + 1];     /* its root */
    kb_report_t report;                            /* the input of kb_report_html */
} s_log_t;

static s_log_t s_log;
static char s_dir[256];

/* ------------------------------------------------------------- scratch */

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/kbreport.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    free(s_log.note);
    memset(&s_log, 0, sizeof s_log);
    const char *keep = getenv("KB_KEEP_TMP");
    if (keep && strcmp(keep, "1") == 0) {
        fprintf(stderr, "check_report: kept %s\n", s_dir);
        return;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void s_path(char *out, size_t len, const char *name)
{
    int n = snprintf(out, len, "%s/%s", s_dir, name);
    ck_assert(n > 0 && (size_t)n < len);
}

static char *s_read(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    ck_assert_msg(kb_file_read(path, S_MAX_HTML, &text, &len) == KB_OK, "read %s: %s", path, kb_last_error());
    return text;
}

/* ------------------------------------------------------------- the log */

static Ketenbus__AuditRecord *s_add(int event, int64_t t, const char *agency, const char *counterpart, int kind)
{
    ck_assert_uint_lt(s_log.n, S_MAX_RECORDS);
    Ketenbus__AuditRecord *r = &s_log.rec[s_log.n];
    ketenbus__audit_record__init(r);
    r->index = 1000 + s_log.n; /* the period starts inside the log */
    r->time_us = t;
    r->event = event;
    r->agency = (char *)agency;
    r->counterpart = (char *)counterpart;
    r->kind = kind;
    s_log.ptr[s_log.n] = r;
    s_log.n++;
    return r;
}

/* A fresh message id on r (UUIDv7 layout, counter in the random part). */
static void s_new_id(Ketenbus__AuditRecord *r)
{
    uint8_t *id = s_log.ids[s_log.n - 1];
    kb_be64_put(id, (uint64_t)r->time_us / 1000 << 16 | 0x7000u);
    kb_be64_put(id + 8, 0x8000000000000000ull | ++s_log.msgs);
    r->message_id.data = id;
    r->message_id.len = 16;
}

static void s_same_id(Ketenbus__AuditRecord *r, const Ketenbus__AuditRecord *of)
{
    r->message_id = of->message_id;
}

/* One message routed from -> to: received, routed, delivered and, unless
 * it expires, acknowledged. Returns the routed record. */
static Ketenbus__AuditRecord *s_message(int64_t t, const char *from, const char *to, int kind, const char *rule,
                                        int expires)
{
    Ketenbus__AuditRecord *rx = s_add(E_(RECEIVED), t, from, "", kind);
    s_new_id(rx);
    rx->officer = "mdw-1042";
    rx->purpose = KETENBUS__PURPOSE__PURPOSE_CHILD_PROTECTION;
    rx->legal_basis = "Wpg art. 19";
    Ketenbus__AuditRecord *ro = s_add(E_(ROUTED), t + 1000, from, to, kind);
    s_same_id(ro, rx);
    ro->rule_id = (char *)rule;
    Ketenbus__AuditRecord *de = s_add(E_(DELIVERED), t + 2000, from, to, kind);
    s_same_id(de, rx);
    if (expires) {
        Ketenbus__AuditRecord *ex = s_add(E_(EXPIRED), t + 2 * S_HOUR_US, from, to, kind);
        s_same_id(ex, rx);
        ex->reason = "not acknowledged before its expiry";
    } else {
        Ketenbus__AuditRecord *ack = s_add(E_(ACKNOWLEDGED), t + 3000, from, to, kind);
        s_same_id(ack, rx);
    }
    return ro;
}

/* A signed checkpoint for the verification box (a real Ed25519 note). */
static void s_checkpoint(uint64_t size)
{
    uint8_t root[KB_MERKLE_HASH_LEN];
    for (size_t i = 0; i < sizeof root; i++)
        root[i] = (uint8_t)(0x5a ^ (i * 37));
    kb_hex(root, sizeof root, s_log.root_hex);
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ck_assert_ptr_nonnull(key);
    size_t len = 0;
    ck_assert_int_eq(kb_note_sign(S_ORIGIN, size, root, S_ORIGIN, key, &s_log.note, &len), KB_OK);
    EVP_PKEY_free(key);
}

/* Build the log of the five days and the report over it. */
static void s_build(void)
{
    free(s_log.note);
    memset(&s_log, 0, sizeof s_log);
    int64_t t0 = S_SINCE_US;
    s_add(E_(RULES_LOADED), t0 + 7 * S_HOUR_US, "", "", 0)->reason = "chain.yaml sha256 3f2a...";
    for (size_t a = 0; a < S_N_AGENCIES; a++)
        s_add(E_(CONNECTED), t0 + 8 * S_HOUR_US + (int64_t)a * S_MIN_US, s_agencies[a], "", 0)->reason =
            a == 1 ? S_ADAPTER_ESCALATED : "ketenbus adapter 0.1";
    for (int d = 0; d < S_N_DAYS; d++) {
        int64_t day = t0 + d * S_DAY_US;
        int j = 0;
        for (size_t f = 0; f < sizeof s_flows / sizeof s_flows[0]; f++)
            for (int m = 0; m < s_flows[f].per_day[d]; m++, j++) {
                /* two of them expire: a referral to the board and one between shelters */
                int expires = (d == 2 && f == 1) || (d == 3 && f == 6);
                s_message(day + 9 * S_HOUR_US + j * 11 * S_MIN_US, s_flows[f].from, s_flows[f].to, s_flows[f].kind,
                          s_flows[f].rule, expires);
            }
        s_add(E_(CHECKPOINT), day + 23 * S_HOUR_US, "", "", 0)->reason = "checkpoint";
    }
    /* Each side of a UTC midnight: day 1 ends, day 2 begins. */
    s_message(t0 + 2 * S_DAY_US - 1, "politie", "comensha", K_SIGNAL, "registratie-comensha", 0);
    s_message(t0 + 2 * S_DAY_US, "politie", "comensha", K_SIGNAL, "registratie-comensha", 0);
    /* A referral routed with a reason that claims an escalation: free text. */
    Ketenbus__AuditRecord *esc = s_add(E_(ROUTED), t0 + 3 * S_DAY_US + 16 * S_HOUR_US, "politie", "rvdk", K_REFERRAL);
    s_new_id(esc);
    esc->rule_id = "politie-rvdk-minderjarigen";
    esc->reason = "escalated: urgent referral not accepted by fier before its deadline";
    /* Refusals, spread over the days. */
    int spread = 0;
    for (size_t i = 0; i < sizeof s_refusals / sizeof s_refusals[0]; i++)
        for (int k = 0; k < s_refusals[i].n; k++, spread++) {
            int64_t t = t0 + (spread % S_N_DAYS) * S_DAY_US + 14 * S_HOUR_US + spread * S_MIN_US;
            Ketenbus__AuditRecord *rx = NULL;
            if (s_refusals[i].received) {
                rx = s_add(E_(RECEIVED), t, s_refusals[i].from, "", K_SIGNAL);
                s_new_id(rx);
            }
            Ketenbus__AuditRecord *rf = s_add(E_(REFUSED), t + 500, s_refusals[i].from, s_refusals[i].to, K_SIGNAL);
            if (rx)
                s_same_id(rf, rx);
            else
                s_new_id(rf);
            rf->rule_id = (char *)s_refusals[i].rule;
            rf->code = s_refusals[i].code;
            rf->reason = (char *)s_refusals[i].reason;
        }
    s_add(E_(DISCONNECTED), t0 + 4 * S_DAY_US + 20 * S_HOUR_US, "ldh", "", 0)->reason = "timeout";

    /* The report wants index order, which is time order here. */
    for (size_t i = 1; i < s_log.n; i++)
        for (size_t k = i; k > 0 && s_log.ptr[k - 1]->time_us > s_log.ptr[k]->time_us; k--) {
            const Ketenbus__AuditRecord *x = s_log.ptr[k];
            s_log.ptr[k] = s_log.ptr[k - 1];
            s_log.ptr[k - 1] = x;
        }
    for (size_t i = 0; i < s_log.n; i++)
        ((Ketenbus__AuditRecord *)s_log.ptr[i])->index = 1000 + i;

    s_checkpoint(1000 + s_log.n);
    kb_report_t *r = &s_log.report;
    r->chain = S_ORIGIN;
    r->since_us = S_SINCE_US;
    r->until_us = S_SINCE_US + S_N_DAYS * S_DAY_US;
    r->generated_us = r->until_us + 9 * S_HOUR_US;
    r->records = s_log.ptr;
    r->n_records = s_log.n;
    r->verify.ok = 1;
    r->verify.records = 1000 + s_log.n;
    r->verify.pruned_first = 0;
    r->verify.pruned_end = 120;
    r->verify.pruned = 120;
    r->verify.checkpoint = s_log.note;
    r->verify.tree_size = 1000 + s_log.n;
    r->verify.root_hex = s_log.root_hex;
    r->verify.message = "all records and 5 checkpoints verified";
}

/* Counts made here, independently of the report code. */
static uint64_t s_count(int event)
{
    uint64_t n = 0;
    for (size_t i = 0; i < s_log.n; i++)
        n += (int)s_log.rec[i].event == event;
    return n;
}

static uint64_t s_expired_referrals(void)
{
    uint64_t n = 0;
    for (size_t i = 0; i < s_log.n; i++)
        n += s_log.rec[i].event == E_(EXPIRED) && s_log.rec[i].kind == K_REFERRAL;
    return n;
}

static uint64_t s_flow(const char *from, const char *to)
{
    uint64_t n = 0;
    for (size_t i = 0; i < s_log.n; i++)
        n += s_log.rec[i].event == E_(ROUTED) && strcmp(s_log.rec[i].agency, from) == 0 &&
             strcmp(s_log.rec[i].counterpart, to) == 0;
    return n;
}

static uint64_t s_received_on(int day)
{
    uint64_t n = 0;
    for (size_t i = 0; i < s_log.n; i++)
        n += s_log.rec[i].event == E_(RECEIVED) && (s_log.rec[i].time_us - S_SINCE_US) / S_DAY_US == day;
    return n;
}

/* Write the report to dir/name; returns the HTML. */
static char *s_write(const char *name)
{
    char path[512];
    s_path(path, sizeof path, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    int rc = kb_report_html(f, &s_log.report);
    ck_assert_msg(rc == KB_OK, "kb_report_html: %d %s", rc, kb_last_error());
    ck_assert_int_eq(fclose(f), 0);
    return s_read(path);
}

/* ------------------------------------------------------------- reading the page */

/* The number in the element that follows needle ("id=\"x\"" or a cell's
 * data attributes): the text after the next '>'. -1 if absent. */
static long long s_number_after(const char *html, const char *needle)
{
    const char *p = strstr(html, needle);
    if (!p || !(p = strchr(p, '>')))
        return -1;
    char *end;
    long long v = strtoll(p + 1, &end, 10);
    return end == p + 1 ? -1 : v;
}

static long long s_page_cell(const char *html, const char *from, const char *to)
{
    char needle[128];
    snprintf(needle, sizeof needle, "data-from=\"%s\" data-to=\"%s\"", from, to);
    return s_number_after(html, needle);
}

static long long s_id_number(const char *html, const char *id)
{
    char needle[64];
    snprintf(needle, sizeof needle, "id=\"%s\"", id);
    return s_number_after(html, needle);
}

/* The total (last cell) of the volume table's row for a day. */
static long long s_page_day_total(const char *html, int day)
{
    char needle[96], date[32];
    kb_time_format((S_DAY0 + day) * S_DAY_US, date);
    snprintf(needle, sizeof needle, "<th scope=\"row\"><time datetime=\"%.10s\">", date);
    const char *row = strstr(html, needle);
    if (!row)
        return -1;
    const char *end = strstr(row, "</tr>"), *last = NULL;
    for (const char *p = row; (p = strstr(p, "<td class=\"num\">")) && p < end; p++)
        last = p;
    return last ? strtoll(last + strlen("<td class=\"num\">"), NULL, 10) : -1;
}

/* The text of the section with the given id (a copy, the caller's). */
static char *s_section(const char *html, const char *id)
{
    char needle[64];
    snprintf(needle, sizeof needle, "<section id=\"%s\"", id);
    const char *p = strstr(html, needle);
    ck_assert_msg(p != NULL, "no section %s", id);
    const char *e = strstr(p, "</section>");
    ck_assert_ptr_nonnull(e);
    return strndup(p, (size_t)(e - p));
}

/* a and b both occur in hay, a first */
#define S_IN_ORDER(hay, a, b) ck_assert(strstr((hay), (a)) && strstr((hay), (b)) && strstr((hay), (a)) < strstr((hay), (b)))

static int s_occurrences(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static const char *s_ids[] = {"summary", "flow-matrix", "volume-chart", "volume-table", "refusals",
                              "expired",  "escalated",   "verification"};

/* What both the written file and Chromium's DOM must show. */
static void s_check_page(const char *html, const char *what)
{
    for (size_t i = 0; i < sizeof s_ids / sizeof s_ids[0]; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "id=\"%s\"", s_ids[i]);
        ck_assert_msg(strstr(html, needle) != NULL, "%s: no %s", what, needle);
    }
    for (size_t i = 0; i < S_N_AGENCIES; i++)
        for (size_t k = 0; k < S_N_AGENCIES; k++)
            ck_assert_msg(s_page_cell(html, s_agencies[i], s_agencies[k]) == (long long)s_flow(s_agencies[i], s_agencies[k]),
                          "%s: cell %s -> %s shows %lld, want %" PRIu64, what, s_agencies[i], s_agencies[k],
                          s_page_cell(html, s_agencies[i], s_agencies[k]), s_flow(s_agencies[i], s_agencies[k]));
    static const struct {
        const char *id; /* element id */
        int event;      /* records counted */
    } counts[] = {
        {"count-received", E_(RECEIVED)},   {"count-routed", E_(ROUTED)},
        {"count-delivered", E_(DELIVERED)}, {"count-acknowledged", E_(ACKNOWLEDGED)},
        {"count-refused", E_(REFUSED)},     {"count-expired", E_(EXPIRED)},
        {"count-connected", E_(CONNECTED)}, {"count-checkpoint", E_(CHECKPOINT)},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        ck_assert_msg(s_id_number(html, counts[i].id) == (long long)s_count(counts[i].event), "%s: %s is %lld, want %"
                      PRIu64, what, counts[i].id, s_id_number(html, counts[i].id), s_count(counts[i].event));
    ck_assert_int_eq(s_id_number(html, "count-records"), (long long)s_log.n);
    /* the broker escalates nothing yet: no card counts escalations */
    ck_assert_msg(strstr(html, "count-escalated") == NULL, "%s: an escalation count", what);
    ck_assert_int_eq(s_id_number(html, "count-expired-referrals"), (long long)s_expired_referrals());
    ck_assert_int_eq(s_id_number(html, "count-agencies"), (long long)S_N_AGENCIES);
    ck_assert_int_eq(s_id_number(html, "flow-total"), (long long)s_count(E_(ROUTED)));
    ck_assert_int_eq(s_id_number(html, "volume-total"), (long long)s_count(E_(RECEIVED)));
    for (int d = 0; d < S_N_DAYS; d++)
        ck_assert_msg(s_page_day_total(html, d) == (long long)s_received_on(d), "%s: day %d shows %lld, want %" PRIu64,
                      what, d, s_page_day_total(html, d), s_received_on(d));
    ck_assert_int_eq(s_id_number(html, "verified-records"), (long long)(1000 + s_log.n));
    ck_assert_int_eq(s_id_number(html, "checkpoint-size"), (long long)(1000 + s_log.n));
}

/* ------------------------------------------------------------- Chromium */

/* Run argv with stdout and stderr into files, in its own process group
 * with HOME in the scratch directory; kill the group after timeout_s.
 * Returns the exit status, or -1 on timeout or a signal. */
static int s_run(char *const argv[], const char *out_path, const char *err_path, int timeout_s)
{
    char home[512];
    s_path(home, sizeof home, "home");
    ck_assert_int_eq(kb_mkdirs(home, 0700), KB_OK);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setpgid(0, 0);
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        setenv("HOME", home, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    setpgid(pid, pid); /* either side may run first */
    /* Wait on a pidfd where the kernel has them, else poll waitpid. */
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int64_t deadline = kb_mono_ms() + (int64_t)timeout_s * 1000;
    int done = 0, status = 0;
    while (!done) {
        int64_t left = deadline - kb_mono_ms();
        if (left <= 0)
            break;
        if (pfd >= 0) {
            struct pollfd p = {.fd = pfd, .events = POLLIN};
            if (poll(&p, 1, (int)left) > 0)
                done = 1;
        } else {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid)
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (pfd >= 0)
        close(pfd);
    /* The browser is a zombie or still running, so its group id is still
     * ours: take its helpers (zygote, renderer, GPU) with it. */
    kill(-pid, SIGKILL);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    if (!done)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* chromium --headless ... ACTION file://report.html; the profile is new each time. */
static int s_chromium(const char *action, const char *out_name, const char *err_name)
{
    ck_assert_msg(access(S_CHROMIUM, X_OK) == 0,
                  "%s is missing: the report test renders the page in headless Chromium; "
                  "run `make deps` (installs the Debian package chromium)",
                  S_CHROMIUM);
    char profile[512], url[600], out[512], err[512];
    s_path(profile, sizeof profile, "profile.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(profile));
    char profile_arg[600];
    snprintf(profile_arg, sizeof profile_arg, "--user-data-dir=%s", profile);
    snprintf(url, sizeof url, "file://%s/report.html", s_dir);
    s_path(out, sizeof out, out_name);
    s_path(err, sizeof err, err_name);
    char *argv[] = {S_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars", profile_arg, "--window-size=1280,2000",
                    (char *)action, url, NULL};
    int rc = s_run(argv, out, err, S_CHROMIUM_SECONDS);
    if (rc != 0) {
        char *log = s_read(err);
        size_t len = strlen(log);
        ck_abort_msg("chromium %s: %s; last of its stderr:\n%s", action,
                     rc < 0 ? "timed out or killed" : "failed", log + (len > 2000 ? len - 2000 : 0));
    }
    return rc;
}

/* ------------------------------------------------------------- tests */

/* Hostile strings and what the page must contain instead. */
static const struct {
    const char *in;  /* from a record */
    const char *out; /* escaped */
} s_escape_cases[] = {
    {"politie", "politie"},
    {"a & b", "a &amp; b"},
    {"<script>alert(\"x\")</script>", "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"},
    {"it's", "it&#39;s"},
    {"\" onmouseover=\"x", "&quot; onmouseover=&quot;x"},
    {"Jeugdwet art. 7.1.4 \xe2\x80\x94 B\xc3\xa9", "Jeugdwet art. 7.1.4 \xe2\x80\x94 B\xc3\xa9"},
    {"tab\tand\nnewline", "tab\tand\nnewline"},
    {"\x1b[31mred\x7f", "\xef\xbf\xbd[31mred\xef\xbf\xbd"},
    {"gem-\xe2\x80\xae" "adsf", "gem-\xef\xbf\xbd" "adsf"},               /* RIGHT-TO-LEFT OVERRIDE */
    {"x\xe2\x81\xa6y\xe2\x81\xa9", "x\xef\xbf\xbdy\xef\xbf\xbd"},         /* isolates */
    {"a\xc2\x85Z", "a\xef\xbf\xbdZ"},                                   /* C1: NEXT LINE */
    {"\xc2\x80\xc2\x9b" "31m\xc2\x9f", "\xef\xbf\xbd\xef\xbf\xbd" "31m\xef\xbf\xbd"}, /* C1 bounds, 8-bit CSI */
    {"\xc2\xa0kept\xc2\xbf", "\xc2\xa0kept\xc2\xbf"},                   /* U+00A0, U+00BF: no controls */
    {"\xff\xfe", "\xef\xbf\xbd\xef\xbf\xbd"},                             /* not UTF-8 */
    {"ab\xc3", "ab\xef\xbf\xbd"},                                         /* cut-off sequence */
    {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                             /* overlong '/' */
    {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},             /* surrogate */
    {"\xf0\x9f\x91\xa7", "\xf0\x9f\x91\xa7"},                             /* U+1F467, four bytes */
    {"", ""},
};

START_TEST(test_escape)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(kb_report_escape(f, s_escape_cases[_i].in), KB_OK);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_msg(strcmp(buf, s_escape_cases[_i].out) == 0, "case %d: got '%s', want '%s'", _i, buf,
                  s_escape_cases[_i].out);
    free(buf);
}
END_TEST

START_TEST(test_escape_null)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(kb_report_escape(f, NULL), KB_OK);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_uint_eq(len, 0);
    free(buf);
    ck_assert_int_eq(kb_report_escape(NULL, "x"), KB_EINVAL);
}
END_TEST

/* Times and their UTC day (days since 1970-01-01). */
static const struct {
    int64_t us;  /* UTC microseconds */
    int64_t day; /* expected day */
} s_day_cases[] = {
    {0, 0},
    {S_DAY_US - 1, 0},
    {S_DAY_US, 1},
    {-1, -1},
    {-S_DAY_US, -1},
    {-S_DAY_US - 1, -2},
    {S_SINCE_US, S_DAY0},
    {S_SINCE_US - 1, S_DAY0 - 1},
    {S_SINCE_US + 2 * S_DAY_US - 1, S_DAY0 + 1}, /* 2026-11-17T23:59:59.999999Z */
    {S_SINCE_US + 2 * S_DAY_US, S_DAY0 + 2},     /* 2026-11-18T00:00:00Z */
    {INT64_MAX, INT64_MAX / S_DAY_US},
    {INT64_MIN, INT64_MIN / S_DAY_US - 1},
};

START_TEST(test_day)
{
    ck_assert_int_eq(kb_report_day(s_day_cases[_i].us), s_day_cases[_i].day);
}
END_TEST

START_TEST(test_day_text)
{
    /* the day numbers above are the dates they claim */
    int64_t us;
    ck_assert_int_eq(kb_time_parse("2026-11-16T00:00:00Z", &us), KB_OK);
    ck_assert_int_eq(us, S_SINCE_US);
    ck_assert_int_eq(kb_report_day(us), S_DAY0);
    ck_assert_int_eq(kb_time_parse("2026-11-18T01:00:00+02:00", &us), KB_OK); /* 17th, 23:00 UTC */
    ck_assert_int_eq(kb_report_day(us), S_DAY0 + 1);
}
END_TEST

/* The page as text: every section, every number, escaping, no URLs. */
START_TEST(test_page_text)
{
    s_build();
    /* the numbers the story is made of, as a reader would count them */
    ck_assert_uint_eq(s_count(E_(ROUTED)), 48);
    ck_assert_uint_eq(s_count(E_(REFUSED)), 17);
    ck_assert_uint_eq(s_count(E_(RECEIVED)), 47 + 16);
    ck_assert_uint_eq(s_count(E_(EXPIRED)), 2);
    ck_assert_uint_eq(s_flow("politie", "rvdk"), 16);
    ck_assert_uint_eq(s_flow("politie", "comensha"), 9);
    ck_assert_uint_eq(s_received_on(1), 7 + 1 + 3); /* day 1: flows, its last microsecond, refusals */
    ck_assert_uint_eq(s_received_on(2), 10 + 1 + 3); /* day 2: flows, its first microsecond, refusals */

    char *html = s_write("report.html");
    ck_assert_msg(strncmp(html, "<!DOCTYPE html>\n", 16) == 0, "not an HTML5 page");
    ck_assert_ptr_nonnull(strstr(html, "</html>\n"));
    s_check_page(html, "report.html");
    /* self-contained: no URL of any scheme, no script, nothing to fetch */
    ck_assert_ptr_null(strstr(html, "http:"));
    ck_assert_ptr_null(strstr(html, "https:"));
    ck_assert_ptr_null(strstr(html, "<script"));
    ck_assert_ptr_null(strstr(html, "src="));
    ck_assert_ptr_null(strstr(html, "href="));
    ck_assert_ptr_null(strstr(html, "@import"));
    ck_assert_ptr_null(strstr(html, "url("));
    ck_assert_ptr_nonnull(strstr(html, "default-src 'none'"));
    ck_assert_ptr_nonnull(strstr(html, "no rule for legal basis &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; "
                                       "&quot;Wpg&quot;"));

    /* the matrix tells the kinds on hover */
    ck_assert_ptr_nonnull(strstr(html, "title=\"politie &#8594; rvdk: 16 routed&#10;signal: 12&#10;referral: 4\""));

    char *ref = s_section(html, "refusals");
    ck_assert_ptr_nonnull(strstr(ref, ">deny-gemeente-narratief</td><td class=\"num\" rowspan=\"1\">4</td>"));
    ck_assert_ptr_nonnull(strstr(ref, ">h3-blijft-binnen</td><td class=\"num\" rowspan=\"1\">3</td>"));
    /* one rule, two reasons, most frequent first */
    const char *c1 = strstr(ref, ">comensha-alleen-registratie</td><td class=\"num\" rowspan=\"2\">3</td>");
    ck_assert_ptr_nonnull(c1);
    S_IN_ORDER(c1, "criminal_investigation", "purpose analysis");
    ck_assert_ptr_nonnull(strstr(ref, ">default deny</td><td class=\"num\" rowspan=\"2\">6</td>"));
    ck_assert_ptr_nonnull(strstr(ref, "<li><bdi>ldh</bdi> &#8594; <bdi>gem-amsterdam</bdi> (5)</li>"));
    ck_assert_ptr_nonnull(strstr(ref, "checks before the rules</span></td><td class=\"num\" rowspan=\"1\">1</td>"));
    ck_assert_ptr_nonnull(strstr(ref, "<code>bad_signature</code>"));
    ck_assert_ptr_nonnull(strstr(ref, "<li><bdi>ldh</bdi> &#8594; (whole message) (1)</li>"));
    /* named rules, then the default deny, then the checks */
    S_IN_ORDER(ref, "h3-blijft-binnen", "default deny");
    S_IN_ORDER(ref, "default deny", "checks before the rules</span>");
    free(ref);

    char *exp = s_section(html, "expired");
    ck_assert_int_eq(s_occurrences(exp, "<tr data-index="), 2);
    ck_assert_ptr_nonnull(strstr(exp, "<td>politie</td><td>rvdk</td>"));
    ck_assert_ptr_nonnull(strstr(exp, "<td>fier</td><td>ldh</td>"));
    ck_assert_ptr_nonnull(strstr(exp, "<td>referral</td>"));
    ck_assert_ptr_nonnull(strstr(exp, "<time datetime=\"2026-11-18T"));
    free(exp);

    /* texts that claim an escalation are not one, and appear nowhere */
    char *esc = s_section(html, "escalated");
    ck_assert_int_eq(s_occurrences(esc, "<tr"), 0);
    ck_assert_ptr_nonnull(strstr(esc, "The broker does not escalate items yet"));
    ck_assert_int_eq(s_expired_referrals(), 2);
    ck_assert_ptr_nonnull(strstr(esc, "<b id=\"count-expired-referrals\">2</b> (listed under expired items)."));
    free(esc);
    ck_assert_ptr_null(strstr(html, "urgent referral"));

    char *ver = s_section(html, "verification");
    ck_assert_ptr_nonnull(strstr(ver, "class=\"verify ok\""));
    ck_assert_ptr_nonnull(strstr(ver, s_log.root_hex));
    ck_assert_ptr_nonnull(strstr(ver, "120 records between 0 and 119"));
    /* the note as signed, byte for byte (its base64 has no HTML specials but '+' and '/') */
    ck_assert_ptr_nonnull(strstr(ver, s_log.note));
    ck_assert_ptr_nonnull(strstr(ver, "\n\n\xe2\x80\x94 " S_ORIGIN " "));
    free(ver);

    /* the chart: one bar per day and kind that has messages, and the legend */
    char *chart = s_section(html, "volume");
    int bars = 0;
    for (int d = 0; d < S_N_DAYS; d++)
        for (int k = 1; k <= 5; k++) {
            uint64_t n = 0;
            for (size_t i = 0; i < s_log.n; i++)
                n += s_log.rec[i].event == E_(RECEIVED) && (int)s_log.rec[i].kind == k &&
                     (s_log.rec[i].time_us - S_SINCE_US) / S_DAY_US == d;
            bars += n > 0;
        }
    ck_assert_int_eq(s_occurrences(chart, "<title>2026-11-"), bars);
    ck_assert_ptr_nonnull(strstr(chart, ">signal</text>"));
    ck_assert_ptr_nonnull(strstr(chart, ">referral_update</text>"));
    ck_assert_ptr_nonnull(strstr(chart, ">day (UTC)</text>"));
    free(chart);
    free(html);
}
END_TEST

/* Names and texts a sender chose, as the broker logs them: a C1 control
 * (U+0085 NEXT LINE) in a recipient's name, a rule id and a reason becomes
 * U+FFFD wherever the page shows it (matrix, attributes, refusals, expired
 * items); agency names in the refusals' "from -> to" pairs are isolated in
 * <bdi>, so that two in Arabic script do not swap places. */
#define S_C1_NAME "a\xc2\x85Z"
#define S_C1_SHOWN "a\xef\xbf\xbdZ"
#define S_RTL_FROM "\xd8\xb4\xd8\xb1\xd8\xb7\xd8\xa9" /* U+0634 U+0631 U+0637 U+0629 */
#define S_RTL_TO   "\xd9\x85\xd8\xa3\xd9\x88\xd9\x89" /* U+0645 U+0623 U+0648 U+0649 */

START_TEST(test_page_sender_chosen_names)
{
    s_build();
    int64_t t = S_SINCE_US + 4 * S_DAY_US + 21 * S_HOUR_US; /* after the last record, inside the period */
    s_message(t, "politie", S_C1_NAME, K_SIGNAL, S_C1_NAME, 1);
    Ketenbus__AuditRecord *rf = s_add(E_(REFUSED), t + 2 * S_HOUR_US + S_MIN_US, "politie", S_C1_NAME, K_SIGNAL);
    s_new_id(rf);
    rf->rule_id = S_C1_NAME;
    rf->code = R_(NOT_ALLOWED);
    rf->reason = "reason " S_C1_NAME;
    rf = s_add(E_(REFUSED), t + 2 * S_HOUR_US + 2 * S_MIN_US, S_RTL_FROM, S_RTL_TO, K_SIGNAL);
    s_new_id(rf);
    rf->code = R_(NOT_ALLOWED);
    rf->reason = "no sharing rule allows it";
    s_log.report.n_records = s_log.n;
    char *html = s_write("names.html");
    ck_assert_msg(strstr(html, "\xc2\x85") == NULL, "a raw U+0085 in the page");
    ck_assert_int_eq(s_page_cell(html, "politie", S_C1_SHOWN), 1);
    char *ref = s_section(html, "refusals");
    ck_assert_ptr_nonnull(strstr(ref, ">" S_C1_SHOWN "</td>"));
    ck_assert_ptr_nonnull(strstr(ref, "reason " S_C1_SHOWN "</td>"));
    ck_assert_ptr_nonnull(strstr(ref, "<li><bdi>politie</bdi> &#8594; <bdi>" S_C1_SHOWN "</bdi> (1)</li>"));
    ck_assert_ptr_nonnull(strstr(ref, "<li><bdi>" S_RTL_FROM "</bdi> &#8594; <bdi>" S_RTL_TO "</bdi> (1)</li>"));
    free(ref);
    char *exp = s_section(html, "expired");
    ck_assert_ptr_nonnull(strstr(exp, "<td>politie</td><td>" S_C1_SHOWN "</td>"));
    free(exp);
    free(html);
}
END_TEST

/* The other outcomes: a failed verification, nothing escalated or expired,
 * no checkpoint. */
START_TEST(test_page_failed_and_empty)
{
    s_build();
    kb_report_t *r = &s_log.report;
    r->n_records = 0;
    r->verify.ok = 0;
    r->verify.has_first_bad = 1;
    r->verify.first_bad = 0;
    r->verify.pruned_end = 0;
    r->verify.checkpoint = NULL;
    r->verify.message = "leaf 0 does not match the tree: record <0> was changed";
    char *html = s_write("empty.html");
    char *ver = s_section(html, "verification");
    ck_assert_ptr_nonnull(strstr(ver, "class=\"verify failed\""));
    ck_assert_ptr_nonnull(strstr(ver, "FAILED"));
    ck_assert_ptr_nonnull(strstr(ver, "record &lt;0&gt; was changed"));
    ck_assert_ptr_nonnull(strstr(ver, "id=\"first-bad\">index 0<"));
    ck_assert_ptr_nonnull(strstr(ver, "no signed checkpoint"));
    ck_assert_ptr_nonnull(strstr(ver, "<dd>none</dd>"));
    free(ver);
    const char *none[] = {"refusals", "expired"};
    for (size_t i = 0; i < 2; i++) {
        char *sec = s_section(html, none[i]);
        ck_assert_msg(strstr(sec, "None in this period.") != NULL, "%s: %s", none[i], sec);
        free(sec);
    }
    char *esc = s_section(html, "escalated");
    ck_assert_ptr_nonnull(strstr(esc, "The broker does not escalate items yet"));
    ck_assert_ptr_nonnull(strstr(esc, "<b id=\"count-expired-referrals\">0</b>."));
    free(esc);
    ck_assert_ptr_nonnull(strstr(html, "No messages were routed in this period."));
    ck_assert_ptr_nonnull(strstr(html, "No messages received in this period"));
    for (size_t i = 0; i < sizeof s_ids / sizeof s_ids[0]; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "id=\"%s\"", s_ids[i]);
        ck_assert_msg(strstr(html, needle) != NULL, "no %s", needle);
    }
    ck_assert_int_eq(s_id_number(html, "count-records"), 0);
    /* still five rows of zeros: the period has five days */
    for (int d = 0; d < S_N_DAYS; d++)
        ck_assert_int_eq(s_page_day_total(html, d), 0);
    free(html);
}
END_TEST

/* The broker escalates nothing yet, and a record's reason is free text:
 * for a CONNECTED record, the name an adapter chose for itself. Reasons
 * that claim an escalation, on records of every event but refusals (whose
 * reasons the refusals section shows), make no escalation card or row. */
START_TEST(test_free_text_is_no_escalation)
{
    s_build();
    for (size_t i = 0; i < s_log.n; i++)
        if (s_log.rec[i].event != E_(REFUSED))
            s_log.rec[i].reason = i % 2 ? S_ADAPTER_ESCALATED : "escalated";
    char *html = s_write("free-text.html");
    ck_assert_ptr_null(strstr(html, "count-escalated"));
    ck_assert_ptr_null(strstr(html, "4711"));
    char *esc = s_section(html, "escalated");
    ck_assert_int_eq(s_occurrences(esc, "<tr"), 0);
    ck_assert_int_eq(s_id_number(esc, "count-expired-referrals"), (long long)s_expired_referrals());
    free(esc);
    free(html);
}
END_TEST

/* Events are named from the proto; a value it does not declare counts as "other". */
START_TEST(test_unknown_event)
{
    s_build();
    char *html = s_write("plain.html");
    ck_assert_ptr_null(strstr(html, "id=\"count-other\""));
    ck_assert_ptr_null(strstr(html, "id=\"count-unspecified\""));
    ck_assert_int_eq(s_id_number(html, "count-rules_loaded"), 1);
    ck_assert_int_eq(s_id_number(html, "count-connect_refused"), 0);
    free(html);
    ck_assert_int_eq(s_log.rec[0].event, E_(RULES_LOADED));
    s_log.rec[0].event = 60;
    s_log.rec[1].event = 1000;
    s_log.rec[2].event = E_(UNSPECIFIED);
    html = s_write("odd.html");
    ck_assert_int_eq(s_id_number(html, "count-other"), 2);
    ck_assert_int_eq(s_id_number(html, "count-unspecified"), 1);
    ck_assert_int_eq(s_id_number(html, "count-rules_loaded"), 0);
    ck_assert_int_eq(s_id_number(html, "count-records"), (long long)s_log.n);
    free(html);
}
END_TEST

/* A period too long to chart is narrowed to the days that have records. */
START_TEST(test_long_period)
{
    s_build();
    s_log.report.since_us = 0;
    s_log.report.until_us = S_SINCE_US + 400 * S_DAY_US;
    char *html = s_write("long.html");
    ck_assert_int_eq(s_occurrences(html, "<th scope=\"row\"><time datetime="), S_N_DAYS);
    ck_assert_int_eq(s_page_day_total(html, 0), (long long)s_received_on(0));
    free(html);
}
END_TEST

/* Misuse and limits: each row breaks the good report one way. */
enum { S_NULL_OUT, S_NULL_REPORT, S_NULL_ARRAY, S_NULL_ENTRY, S_BACKWARDS, S_BEFORE, S_AT_END, S_TOO_MANY_DAYS,
       S_TOO_MANY_AGENCIES, S_DEV_FULL };

static const struct {
    int breakage; /* S_* above */
    int rc;       /* expected */
} s_error_cases[] = {
    {S_NULL_OUT, KB_EINVAL},          {S_NULL_REPORT, KB_EINVAL},      {S_NULL_ARRAY, KB_EINVAL},
    {S_NULL_ENTRY, KB_EINVAL},        {S_BACKWARDS, KB_EINVAL},        {S_BEFORE, KB_EINVAL},
    {S_AT_END, KB_EINVAL},            {S_TOO_MANY_DAYS, KB_ETOOBIG},   {S_TOO_MANY_AGENCIES, KB_ETOOBIG},
    {S_DEV_FULL, KB_EIO},
};

START_TEST(test_errors)
{
    s_build();
    kb_report_t *r = &s_log.report;
    static char names[KB_REPORT_MAX_AGENCIES + 1][16];
    FILE *f = fopen("/dev/null", "w");
    ck_assert_ptr_nonnull(f);
    switch (s_error_cases[_i].breakage) {
    case S_NULL_OUT:
        ck_assert_int_eq(kb_report_html(NULL, r), KB_EINVAL);
        fclose(f);
        return;
    case S_NULL_REPORT:
        r = NULL;
        break;
    case S_NULL_ARRAY:
        r->records = NULL;
        break;
    case S_NULL_ENTRY:
        s_log.ptr[3] = NULL;
        break;
    case S_BACKWARDS:
        r->until_us = r->since_us - 1;
        break;
    case S_BEFORE:
        s_log.rec[0].time_us = r->since_us - 1;
        break;
    case S_AT_END:
        s_log.rec[0].time_us = r->until_us; /* the end is excluded */
        break;
    case S_TOO_MANY_DAYS:
        r->since_us = 0;
        s_log.rec[0].time_us = 0;
        break;
    case S_TOO_MANY_AGENCIES:
        /* 257 municipalities and the COA */
        for (size_t i = 0; i <= KB_REPORT_MAX_AGENCIES; i++) {
            snprintf(names[i], sizeof names[i], "gem-%zu", i);
            s_add(E_(ROUTED), r->since_us + (int64_t)i, names[i], "coa", K_SIGNAL);
        }
        r->n_records = s_log.n;
        break;
    case S_DEV_FULL:
        fclose(f);
        f = fopen("/dev/full", "w");
        ck_assert_ptr_nonnull(f);
        break;
    }
    int rc = kb_report_html(f, r);
    ck_assert_msg(rc == s_error_cases[_i].rc, "case %d: rc %d, want %d (%s)", _i, rc, s_error_cases[_i].rc,
                  kb_last_error());
    ck_assert_str_ne(kb_last_error(), "");
    fclose(f);
}
END_TEST

/* Headless Chromium renders the page: a real screenshot and a DOM with the
 * sections and numbers. */
START_TEST(test_chromium)
{
    s_build();
    free(s_write("report.html"));

    char png[512], shot[600];
    s_path(png, sizeof png, "report.png");
    snprintf(shot, sizeof shot, "--screenshot=%s", png);
    s_chromium(shot, "shot.out", "shot.err");
    FILE *f = fopen(png, "rb");
    ck_assert_msg(f != NULL, "no screenshot at %s", png);
    uint8_t head[24];
    ck_assert_uint_eq(fread(head, 1, sizeof head, f), sizeof head);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    fclose(f);
    ck_assert_msg(memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0, "report.png is not a PNG");
    ck_assert_msg(memcmp(head + 12, "IHDR", 4) == 0, "report.png has no IHDR first");
    ck_assert_uint_eq(kb_be64_get(head + 16) >> 32, 1280);          /* width */
    ck_assert_uint_eq(kb_be64_get(head + 16) & 0xffffffffu, 2000);  /* height */
    ck_assert_msg(size > (long)S_PNG_MIN, "report.png is %ld bytes: a blank page?", size);

    s_chromium("--dump-dom", "dom.html", "dom.err");
    char path[512];
    s_path(path, sizeof path, "dom.html");
    char *dom = s_read(path);
    s_check_page(dom, "Chromium's DOM");
    /* the svg was parsed as SVG with its bars; the hostile reason stayed text */
    ck_assert_ptr_nonnull(strstr(dom, "<svg id=\"volume-chart\""));
    ck_assert_int_gt(s_occurrences(dom, "<rect "), 5);
    ck_assert_ptr_null(strstr(dom, "<script"));
    ck_assert_ptr_nonnull(strstr(dom, "no rule for legal basis &lt;script&gt;alert('x')&lt;/script&gt; &amp; \"Wpg\""));
    free(dom);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("report");
    TCase *unit = tcase_create("unit");
    tcase_add_checked_fixture(unit, s_setup, s_teardown);
    tcase_add_loop_test(unit, test_escape, 0, (int)(sizeof s_escape_cases / sizeof s_escape_cases[0]));
    tcase_add_test(unit, test_escape_null);
    tcase_add_loop_test(unit, test_day, 0, (int)(sizeof s_day_cases / sizeof s_day_cases[0]));
    tcase_add_test(unit, test_day_text);
    tcase_add_loop_test(unit, test_errors, 0, (int)(sizeof s_error_cases / sizeof s_error_cases[0]));
    suite_add_tcase(s, unit);

    TCase *page = tcase_create("page");
    tcase_add_checked_fixture(page, s_setup, s_teardown);
    tcase_set_timeout(page, 3 * S_CHROMIUM_SECONDS);
    tcase_add_test(page, test_page_text);
    tcase_add_test(page, test_page_sender_chosen_names);
    tcase_add_test(page, test_page_failed_and_empty);
    tcase_add_test(page, test_long_period);
    tcase_add_test(page, test_unknown_event);
    tcase_add_test(page, test_free_text_is_no_escalation);
    tcase_add_test(page, test_chromium);
    suite_add_tcase(s, page);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
