/*
 * bench.c - ketenbus-bench: throughput, latency and cost growth of
 * ketenbusd against the transport, disk and crypto ceilings of this
 * machine, all measured in one run and printed as one table.
 *
 *   ketenbus-bench [--quick] [--build DIR] [--tmp DIR] [--only LIST]
 *                  [--markdown] [--keep] [--log-level-warn]
 *
 * Order: keys, pre-signed envelopes, ceilings (forwarder, disk, LevelDB,
 * Ed25519), throughput (1->1 and 8->8, 256 B and 4 KiB), latency at fixed
 * offered loads, cost growth (agencies, a million queued, bytes per
 * message), and the SDK. Every broker is a fresh ketenbusd with its own
 * data directory on 127.0.0.1, stopped by pid before the next starts.
 * Exit status 0 when every run completed (a missed target is reported in
 * the table, not by the exit status), 1 when a run failed.
 */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <leveldb/c.h>
#include <openssl/crypto.h>
#include <zmq.h>

#include "bench.h"
#include "kb_util.h"

bench_opts_t g_opt;
static size_t g_peer_n = 20000; /* messages of the `peer` section (peers.sh) */
static int g_peer_off;          /* the `peer` section with verify_signatures: false */

/* ------------------------------------------------------------ helpers */

int64_t bench_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sleep_us(int64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int s_cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int64_t bench_pct(int64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, s_cmp64);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

void bench_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* ------------------------------------------------------------ the table */

#define MAX_ROWS 128
#define NOVERIFY "  verify_signatures: false\n" /* broker key for runs with checks off */
static bench_row_t s_rows[MAX_ROWS];
static size_t s_n_rows;
static int s_failed;

bench_row_t *bench_row(const char *section, const char *name, double value, const char *unit)
{
    static bench_row_t spare;
    if (s_n_rows == MAX_ROWS)
        return memset(&spare, 0, sizeof spare);
    bench_row_t *r = &s_rows[s_n_rows++];
    memset(r, 0, sizeof *r);
    snprintf(r->section, sizeof r->section, "%s", section);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    r->value = value;
    r->verdict = -1;
    return r;
}

void bench_vs(bench_row_t *r, const char *base_name, double base_value)
{
    snprintf(r->base, sizeof r->base, "%s", base_name);
    r->ratio = base_value > 0 ? r->value / base_value : 0;
}

void bench_target(bench_row_t *r, const char *text, int met)
{
    snprintf(r->target, sizeof r->target, "%s", text);
    r->verdict = met ? 1 : 0;
}

void bench_note(bench_row_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->note, sizeof r->note, fmt, ap);
    va_end(ap);
}

static void s_fmt_value(char *out, size_t len, double v)
{
    if (v != v)
        snprintf(out, len, "n/a");
    else if (v >= 100)
        snprintf(out, len, "%.0f", v);
    else if (v >= 10)
        snprintf(out, len, "%.1f", v);
    else
        snprintf(out, len, "%.2f", v);
}

void bench_print(int markdown)
{
    const char *verdict[] = {"MISSED", "met"};
    if (markdown) {
        printf("| # | section | figure | value | unit | baseline (same run) | ratio | target | |\n");
        printf("|---|---|---|---:|---|---|---:|---|---|\n");
    } else {
        printf("%-3s %-10s %-52s %10s %-6s %-34s %7s  %-22s %s\n", "#", "section", "figure", "value", "unit",
               "baseline (same run)", "ratio", "target", "");
    }
    for (size_t i = 0; i < s_n_rows; i++) {
        bench_row_t *r = &s_rows[i];
        char v[32], ratio[32] = "";
        s_fmt_value(v, sizeof v, r->value);
        if (r->base[0] && r->ratio > 0)
            snprintf(ratio, sizeof ratio, r->ratio >= 100 ? "%.0f" : r->ratio >= 10 ? "%.1f" : "%.3f", r->ratio);
        const char *base = r->base[0] ? r->base : r->value != r->value ? "-" : "(baseline)";
        const char *ok = r->verdict >= 0 ? verdict[r->verdict] : "";
        if (markdown)
            printf("| %zu | %s | %s | %s | %s | %s | %s | %s | %s |\n", i + 1, r->section, r->name, v, r->unit, base,
                   ratio, r->target, ok);
        else
            printf("%-3zu %-10s %-52s %10s %-6s %-34s %7s  %-22s %s\n", i + 1, r->section, r->name, v, r->unit, base,
                   ratio, r->target, ok);
    }
    printf(markdown ? "\nNotes:\n\n" : "\nnotes:\n");
    for (size_t i = 0; i < s_n_rows; i++)
        if (s_rows[i].note[0])
            printf(markdown ? "- %zu: %s\n" : "  %zu: %s\n", i + 1, s_rows[i].note);
}

/* ------------------------------------------------------------ sizes */

typedef struct {
    size_t fwd_n;            /* forwarder messages */
    double fwd_s;            /* forwarder time limit */
    double disk_s, ldb_s, crypto_s;
    size_t tp_small;         /* 1->1, 256 B */
    size_t tp_large;         /* 1->1, 4 KiB */
    size_t tp8_small;        /* per pair, 8->8, 256 B */
    size_t tp8_large;        /* per pair, 8->8, 4 KiB */
    double lat_s;            /* seconds per offered load */
    size_t growth;           /* 1->1 per agency count */
    size_t offline;          /* messages to an offline agency for bytes on disk */
    size_t queued;           /* the million */
    size_t sdk;              /* messages through the SDK */
    double limit_s;          /* time limit of one broker run */
} s_sizes_t;

#define WIRE_BATCH 64u /* envelopes per SUBMIT in the batched throughput rows */

static const s_sizes_t s_full = {600000, 10, 5, 3, 3, 150000, 40000, 20000, 5000, 5, 60000, 20000, 1000000, 5000, 300};
static const s_sizes_t s_quick = {100000, 2, 1.5, 0.7, 1, 20000, 6000, 2000, 600, 1.5, 8000, 4000, 1000000, 600, 40};

static int s_want(const char *section)
{
    if (!g_opt.only)
        return 1;
    size_t n = strlen(section);
    for (const char *p = g_opt.only; (p = strstr(p, section)) != NULL; p += n)
        if ((p == g_opt.only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

/* ------------------------------------------------------------ machine */

static void s_machine(const char *tmp)
{
    char cpu[128] = "?", line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                snprintf(cpu, sizeof cpu, "%s", c + 2);
                cpu[strcspn(cpu, "\n")] = '\0';
            }
            break;
        }
    if (f)
        fclose(f);
    long mem_kib = 0;
    f = fopen("/proc/meminfo", "r");
    if (f && fgets(line, sizeof line, f))
        mem_kib = strtol(line + 9, NULL, 10);
    if (f)
        fclose(f);
    struct utsname u;
    uname(&u);
    int zmaj, zmin, zpat;
    zmq_version(&zmaj, &zmin, &zpat);
    char when[32];
    kb_time_format(kb_now_us(), when);
    printf("ketenbus-bench %s, %s\n", g_opt.quick ? "quick (BENCH_QUICK=1)" : "full", when);
    printf("machine: %s, %ld cores online, %.1f GiB RAM, Linux %s\n", cpu, sysconf(_SC_NPROCESSORS_ONLN),
           (double)mem_kib / 1048576.0, u.release);
    printf("libraries: libzmq %d.%d.%d, %s, LevelDB %d.%d; scratch and data directories under %s\n", zmaj, zmin,
           zpat, OpenSSL_version(OPENSSL_VERSION), leveldb_major_version(), leveldb_minor_version(), tmp);
    printf("broker: %s/ketenbusd, log level %s, stderr to a file; sender, broker and receiver share the cores\n\n",
           g_opt.build, g_opt.log_level_warn ? "warn" : "info (default)");
}

/* ------------------------------------------------------------ runs */

/* Cores the broker checks signatures on: all online cores if this
 * ketenbusd has the verify pool of broker/verify.c (its symbols are in the
 * binary, which the build does not strip), else its one loop thread. */
static unsigned s_broker_verify_cores(unsigned cores)
{
    char bin[512], *text = NULL;
    size_t len = 0;
    snprintf(bin, sizeof bin, "%s/ketenbusd", g_opt.build);
    int pool = kb_file_read(bin, 256u << 20, &text, &len) == 0 && text &&
               memmem(text, len, "kb_verify_pool_run", strlen("kb_verify_pool_run")) != NULL;
    free(text);
    return pool ? cores : 1;
}

/* Did the broker of b refuse its configuration for an unknown key? */
static int s_unknown_key(const bench_broker_t *b)
{
    char *text = NULL;
    size_t len = 0;
    int hit = kb_file_read(b->log, 1u << 20, &text, &len) == 0 && text && strstr(text, "unknown key");
    free(text);
    return hit;
}

/* Start a fresh broker; falls back to the short rule form once if the
 * broker does not know the full one. */
static int s_try_broker(bench_broker_t *b, const bench_keys_t *k, const char *name, unsigned pairs, size_t agencies,
                        const char *extra)
{
    if (bench_broker_init(b, k, name, pairs, agencies, extra) != 0)
        return -1;
    if (bench_broker_start(b) == 0) {
        if (!g_rule_style)
            g_rule_style = 1;
        return 0;
    }
    if (g_rule_style || !s_unknown_key(b))
        return -1;
    bench_log("this ketenbusd knows only the short rule form (from, to, kinds); using it");
    g_rule_style = 2;
    if (bench_broker_init(b, k, name, pairs, agencies, extra) != 0)
        return -1;
    return bench_broker_start(b);
}

static int s_broker(bench_broker_t *b, const bench_keys_t *k, const char *name, unsigned pairs, size_t agencies,
                    const char *extra)
{
    if (s_try_broker(b, k, name, pairs, agencies, extra) != 0) {
        s_failed = 1;
        return -1;
    }
    return 0;
}

static void s_finish(bench_broker_t *b)
{
    if (b->pid > 0 && bench_broker_stop(b) != 0)
        bench_log("broker %s did not stop cleanly; see %s", b->dir, b->log);
}

/* A throughput run; returns 0 and fills w when it completed. */
static int s_wire_batch(bench_broker_t *b, const bench_keys_t *k, bench_pool_t *pools, unsigned pairs,
                        size_t per_pair, double rate, int online, unsigned batch, const s_sizes_t *z, bench_wire_t *w,
                        const char *what)
{
    bench_log("%s: %u pair(s), %zu messages each%s", what, pairs, per_pair, online ? "" : ", recipient offline");
    if (bench_wire_run(b, k, pools, pairs, per_pair, rate, online, batch, z->limit_s, w) != 0 || !w->complete) {
        bench_log("%s: incomplete: %s", what, w->error);
        s_failed = 1;
        return -1;
    }
    if (w->rejected)
        bench_log("%s: %s", what, w->error);
    return 0;
}

/* The same with one envelope per SUBMIT, as an adapter submitting one at a time sends them. */
static int s_wire(bench_broker_t *b, const bench_keys_t *k, bench_pool_t *pools, unsigned pairs, size_t per_pair,
                  double rate, int online, const s_sizes_t *z, bench_wire_t *w, const char *what)
{
    return s_wire_batch(b, k, pools, pairs, per_pair, rate, online, 1, z, w, what);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"quick", no_argument, NULL, 'q'},   {"build", required_argument, NULL, 'b'},
                                         {"tmp", required_argument, NULL, 't'},   {"only", required_argument, NULL, 'o'},
                                         {"keep", no_argument, NULL, 'k'},        {"markdown", no_argument, NULL, 'm'},
                                         {"log-level-warn", no_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
                                         {"peer-n", required_argument, NULL, 'n'},
                                         {"peer-checks-off", no_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    g_opt.build = "build";
    g_opt.tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    const char *q = getenv("BENCH_QUICK");
    g_opt.quick = q && strcmp(q, "1") == 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'q': g_opt.quick = 1; break;
        case 'b': g_opt.build = optarg; break;
        case 't': g_opt.tmp = optarg; break;
        case 'o': g_opt.only = optarg; break;
        case 'k': g_opt.keep = 1; break;
        case 'm': g_opt.markdown = 1; break;
        case 'w': g_opt.log_level_warn = 1; break;
        case 'f': g_peer_off = 1; break;
        case 'n': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (!end || *end || v < 1000 || v > 10000000) {
                fprintf(stderr, "ketenbus-bench: --peer-n wants 1000..10000000\n");
                return 2;
            }
            g_peer_n = (size_t)v;
            break;
        }
        case 'h':
            printf("usage: ketenbus-bench [--quick] [--build DIR] [--tmp DIR] [--only ceiling,throughput,latency,"
                   "growth,sdk,peer] [--peer-n N] [--peer-checks-off] [--markdown] [--keep]\n"
                   "                      [--log-level-warn]\n"
                   "Measures ketenbusd (from DIR, default build/) against this machine's ceilings and prints one\n"
                   "table. BENCH_QUICK=1 or --quick: short runs (under two minutes).\n");
            return 0;
        default: return 2;
        }
    }
    const s_sizes_t *z = g_opt.quick ? &s_quick : &s_full;
    int64_t t_start = bench_ns();
    setvbuf(stdout, NULL, _IOLBF, 0);

    char root[512];
    snprintf(root, sizeof root, "%s/ketenbus-bench.XXXXXX", g_opt.tmp);
    if (!mkdtemp(root)) {
        bench_log("mkdtemp %s failed", root);
        return 1;
    }
    s_machine(root);

    bench_keys_t keys;
    bench_log("keys for the broker and %u agencies in %s", BENCH_KEYS, root);
    if (bench_keys_make(&keys, root, BENCH_KEYS) != 0)
        return 1;

    /* pools: pair 0 serves every 1->1 run and the latency runs */
    /* pool 0 (s0 -> r0, 256 B) serves every 1->1 run, the latency runs and
     * the store fill; the 30,000/s run, if reachable, is cut to its size */
    size_t n0 = 1000;
    if ((s_want("throughput") || s_want("latency")) && z->tp_small > n0)
        n0 = z->tp_small; /* latency needs the 1->1 throughput runs to know what is reachable */
    if (s_want("latency") && (size_t)(10000 * z->lat_s) > n0)
        n0 = (size_t)(10000 * z->lat_s);
    if (s_want("growth") && z->growth > n0)
        n0 = z->growth;
    if (s_want("growth") && z->offline > n0)
        n0 = z->offline;
    bench_pool_t small[BENCH_MAX_PAIRS], large[BENCH_MAX_PAIRS];
    memset(small, 0, sizeof small);
    memset(large, 0, sizeof large);
    int64_t ts = bench_ns();
    if (g_opt.only && s_want("peer") && g_peer_n > n0)
        n0 = g_peer_n;
    /* the 8->8 pools serve the throughput section only; the 4 KiB pool of
     * pair 0 also gives the forwarder ceilings their message size */
    int all_pools = s_want("throughput");
    int large0 = all_pools || s_want("ceiling") || s_want("latency");
    size_t signed_n = 0;
    for (unsigned p = 0; p < (all_pools ? BENCH_MAX_PAIRS : 1u); p++) {
        size_t ns = p == 0 ? n0 : z->tp8_small, nl = p == 0 ? (all_pools ? z->tp_large : 1) : z->tp8_large;
        int with_large = p == 0 ? large0 : all_pools;
        if (bench_pool_make(&small[p], &keys, p, ns, 256) != 0 ||
            (with_large && bench_pool_make(&large[p], &keys, p, nl, 4096) != 0)) {
            bench_log("signing envelopes failed");
            return 1;
        }
        signed_n += ns + (with_large ? nl : 0);
    }
    bench_log("signed %zu envelopes in %.1f s (2 threads); SUBMIT frame %zu B (256 B narrative), %zu B (4 KiB)",
              signed_n, (double)(bench_ns() - ts) / 1e9, small[0].len[0], large0 ? large[0].len[0] : 0);

    /* ------------------------------------------------ peers.sh's ketenbus line */
    if (g_opt.only && s_want("peer")) {
        bench_broker_t pb;
        bench_wire_t pw;
        if (s_broker(&pb, &keys, "peer", 1, 2, g_peer_off ? NOVERIFY : NULL) == 0) {
            int ok = s_wire(&pb, &keys, small, 1, g_peer_n, 0, 1, z, &pw, "peer workload") == 0;
            s_finish(&pb);
            if (ok)
                printf("peer=%s n=%zu confirmed=%zu consumed=%zu confirmed_per_s=%.0f consumed_per_s=%.0f "
                       "delivered_per_s=%.0f\n", g_peer_off ? "ketenbus-checks-off" : "ketenbus", g_peer_n, pw.accepted, pw.delivered, pw.accept_rate, pw.ack_rate,
                       pw.deliver_rate);
        }
        if (!s_want("ceiling") && !s_want("throughput") && !s_want("latency") && !s_want("growth") && !s_want("sdk")) {
            for (unsigned p = 0; p < BENCH_MAX_PAIRS; p++)
                bench_pool_free(&small[p]);
            if (!g_opt.keep)
                bench_rmrf(root);
            return s_failed ? 1 : 0;
        }
    }

    /* ------------------------------------------------ ceilings */
    char name[128];
    bench_row_t *r;
    bench_fwd_t fwd_s = {0, 0}, fwd_l = {0, 0};
    bench_disk_t disk = {0, 0, 0};
    double verify = 0, sign = 0, seal = 0, ldb[3] = {0, 0, 0}, verify_all = 0, verify_ceiling = 0;
    unsigned n_cores = (unsigned)sysconf(_SC_NPROCESSORS_ONLN), verify_cores = 1;
    const size_t ldb_batch[3] = {1, 16, 256};
    if (s_want("ceiling") || s_want("throughput") || s_want("latency")) {
        bench_log("ceiling: ZeroMQ forwarder, %zu B and %zu B, plain and CURVE", small[0].len[0], large[0].len[0]);
        if (bench_forwarder(small[0].len[0], z->fwd_n, z->fwd_s, &fwd_s) != 0 ||
            bench_forwarder(large[0].len[0], z->fwd_n / 4, z->fwd_s, &fwd_l) != 0) {
            bench_log("forwarder failed");
            s_failed = 1;
        }
        bench_log("ceiling: fdatasync and LevelDB in %s", root);
        if (bench_disk(root, 100000, z->disk_s, &disk) != 0)
            s_failed = 1;
        for (int i = 0; i < 3; i++)
            if (bench_leveldb(root, ldb_batch[i], small[0].env_len + 60, z->ldb_s, &ldb[i]) != 0)
                s_failed = 1;
        bench_log("ceiling: Ed25519");
        if (bench_ed25519(z->crypto_s, &verify, &sign) != 0 || bench_seal_verify(&keys, &small[0], z->crypto_s / 2, &seal) != 0 ||
            bench_ed25519_cores(n_cores, z->crypto_s / 2, &verify_all) != 0)
            s_failed = 1;
        verify_cores = s_broker_verify_cores(n_cores);
        verify_ceiling = verify_cores > 1 ? verify_all : verify;
    }
    if (large0) {
        snprintf(name, sizeof name, "ZeroMQ ROUTER forwarder, plain tcp, %zu B", small[0].len[0]);
        bench_row("ceiling", name, fwd_s.plain_rate, "msg/s");
        snprintf(name, sizeof name, "ZeroMQ ROUTER forwarder, CURVE, %zu B", small[0].len[0]);
        r = bench_row("ceiling", name, fwd_s.curve_rate, "msg/s");
        bench_vs(r, "plain forwarder", fwd_s.plain_rate);
        snprintf(name, sizeof name, "ZeroMQ ROUTER forwarder, plain tcp, %zu B", large[0].len[0]);
        bench_row("ceiling", name, fwd_l.plain_rate, "msg/s");
        snprintf(name, sizeof name, "ZeroMQ ROUTER forwarder, CURVE, %zu B", large[0].len[0]);
        r = bench_row("ceiling", name, fwd_l.curve_rate, "msg/s");
        bench_vs(r, "plain forwarder", fwd_l.plain_rate);
        r = bench_row("ceiling", "4 KiB append + fdatasync", disk.ops, "op/s");
        bench_note(r, "one file in the scratch directory, the broker data directories' file system");
        bench_row("ceiling", "4 KiB append + fdatasync, p50", (double)disk.p50 / 1000, "us");
        bench_row("ceiling", "4 KiB append + fdatasync, p99", (double)disk.p99 / 1000, "us");
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "LevelDB synced WriteBatch of %zu x %zu B", ldb_batch[i], small[0].env_len + 60);
            r = bench_row("ceiling", name, ldb[i] * (double)ldb_batch[i], "entry/s");
            bench_vs(r, "fdatasync op/s", disk.ops);
            bench_note(r, "%.0f synced batches per second", ldb[i]);
        }
        r = bench_row("ceiling", "Ed25519 verify (OpenSSL EVP), 1 core", verify, "op/s");
        bench_note(r, "%s; sign: %.0f op/s", OpenSSL_version(OPENSSL_VERSION), sign);
        snprintf(name, sizeof name, "Ed25519 verify (OpenSSL EVP), all %u cores at once", n_cores);
        r = bench_row("ceiling", name, verify_all, "op/s");
        bench_vs(r, "Ed25519 verify, 1 core", verify);
        r = bench_row("ceiling", "kb_seal_verify of a 256 B signal, 1 core", seal, "op/s");
        bench_vs(r, "Ed25519 verify", verify);
        bench_note(r, "what the broker does per envelope: per-field SHA-256 seals plus one Ed25519 verify");
    }

    /* ------------------------------------------------ throughput */
    bench_broker_t b;
    bench_wire_t w;
    double tp_small_accept = 0;
    long empty_rss = 0, empty_hwm = 0, tp_rss = 0, tp_hwm = 0, tp_anon = 0, tp_file = 0;
    double empty_ready_ms = 0;
    bench_store_bytes_t acked_bytes;
    memset(&acked_bytes, 0, sizeof acked_bytes);
    size_t acked_n = 0;
    int have_switch = 0;   /* the broker knows verify_signatures: false */
    double noverify = NAN; /* its accept rate with checks off */
    if (s_want("throughput") || s_want("latency")) {
        /* signature checks off, if this broker can do that (the rule form
         * is settled first, so a refusal here is about the switch) */
        if (!g_rule_style && s_broker(&b, &keys, "tp-probe", 1, 2, NULL) == 0)
            s_finish(&b);
        memset(&b, 0, sizeof b);
        have_switch = s_try_broker(&b, &keys, "tp-noverify", 1, 2, NOVERIFY) == 0;
        bench_wire_t wn;
        memset(&wn, 0, sizeof wn);
        if (have_switch && s_wire(&b, &keys, small, 1, z->tp_small, 0, 1, z, &wn, "throughput, checks off") == 0)
            noverify = wn.accept_rate;
        s_finish(&b);
        if (!have_switch)
            s_failed = 0; /* a broker without the switch is not a failed run */
        r = bench_row("throughput", "accepted, 256 B, 1->1, signature checks OFF", noverify, "msg/s");
        bench_vs(r, "CURVE forwarder", fwd_s.curve_rate);
        if (have_switch) {
            bench_target(r, ">= 50,000 and >= 30% ceil", noverify >= 50000 && noverify >= 0.3 * fwd_s.curve_rate);
            bench_note(r, "verify_signatures: false; %zu messages, closed loop with 4,000 in flight", wn.accepted);
            r = bench_row("throughput", "delivered, 256 B, 1->1, checks OFF", wn.deliver_rate, "msg/s");
            bench_vs(r, "CURVE forwarder", fwd_s.curve_rate);
            r = bench_row("throughput", "end to end through ACK commit, 256 B, 1->1, checks OFF", wn.ack_rate, "msg/s");
            bench_vs(r, "CURVE forwarder", fwd_s.curve_rate);
        } else {
            bench_target(r, ">= 50,000 and >= 30% ceil", 0);
            bench_note(r, "ketenbusd has no verify_signatures switch (config refused it): not measurable; rows below "
                          "are with checks ON");
        }

        struct {
            unsigned pairs;
            int large;
            const char *label;
        } tp[4] = {{1, 0, "256 B, 1->1"}, {1, 1, "4 KiB, 1->1"}, {8, 0, "256 B, 8->8"}, {8, 1, "4 KiB, 8->8"}};
        for (int i = 0; i < (s_want("throughput") ? 4 : 1); i++) {
            size_t per = tp[i].pairs == 1 ? (tp[i].large ? z->tp_large : z->tp_small)
                                          : (tp[i].large ? z->tp8_large : z->tp8_small);
            bench_pool_t *pools = tp[i].large ? large : small;
            double ceil_rate = tp[i].large ? fwd_l.curve_rate : fwd_s.curve_rate;
            char bname[32];
            snprintf(bname, sizeof bname, "tp-%d", i);
            if (s_broker(&b, &keys, bname, tp[i].pairs, 2 * tp[i].pairs, NULL) != 0)
                continue;
            if (i == 0) {
                empty_ready_ms = b.ready_ms;
                bench_broker_rss(&b, &empty_rss, &empty_hwm);
            }
            int ok = s_wire(&b, &keys, pools, tp[i].pairs, per, 0, 1, z, &w, tp[i].label) == 0;
            if (i == 0)
                bench_broker_mem(&b, &tp_rss, &tp_hwm, &tp_anon, &tp_file);
            s_finish(&b);
            if (!ok)
                continue;
            if (i == 0) {
                tp_small_accept = w.accept_rate;
                acked_n = w.accepted;
                bench_store_bytes(b.data, &acked_bytes);
            }
            snprintf(name, sizeof name, "accepted (RECEIPT after sync), %s, checks ON", tp[i].label);
            r = bench_row("throughput", name, w.accept_rate, "msg/s");
            bench_vs(r, "CURVE forwarder", ceil_rate);
            if (i == 0) {
                bench_target(r, ">= 30% of CURVE ceiling", w.accept_rate >= 0.3 * ceil_rate);
                bench_note(r, "%zu messages, closed loop with 4,000 in flight; receipt p50 %.0f us at this load", w.accepted,
                           (double)w.rcpt_p50 / 1000);
                r = bench_row("throughput", "accepted, 256 B, 1->1, checks ON, vs verify ceiling", w.accept_rate, "msg/s");
                char vname[64];
                snprintf(vname, sizeof vname, "Ed25519 verify x %u core%s", verify_cores, verify_cores > 1 ? "s" : "");
                bench_vs(r, vname, verify_ceiling);
                bench_target(r, ">= 80% of verify ceiling", w.accept_rate >= 0.8 * verify_ceiling);
                if (verify_cores > 1)
                    bench_note(r, "this ketenbusd checks signatures on a thread pool (broker/verify.c): all %u cores, "
                                  "shared with the load generator", verify_cores);
                else
                    bench_note(r, "this ketenbusd verifies in its one loop thread, so its verify ceiling is one core's");
            }
            snprintf(name, sizeof name, "delivered, %s", tp[i].label);
            r = bench_row("throughput", name, w.deliver_rate, "msg/s");
            bench_vs(r, "CURVE forwarder", ceil_rate);
            snprintf(name, sizeof name, "end to end through ACK commit, %s", tp[i].label);
            r = bench_row("throughput", name, w.ack_rate, "msg/s");
            bench_vs(r, "CURVE forwarder", ceil_rate);
            if (i == 0)
                bench_note(r, "until a PONG reports the recipient's queue empty: every ACK committed");
        }
        /* the same envelopes 64 to a SUBMIT frame, as submit_batch() and
         * `ketenbus send` send a backlog: what per-frame costs (CURVE, one
         * receipt entry set per frame) take from the one-per-frame runs */
        for (int off = 1; off >= 0 && s_want("throughput"); off--) {
            if (off && !have_switch)
                continue;
            if (s_broker(&b, &keys, off ? "tp-batch-off" : "tp-batch-on", 1, 2, off ? NOVERIFY : NULL) != 0)
                continue;
            int ok = s_wire_batch(&b, &keys, small, 1, z->tp_small, 0, 1, WIRE_BATCH, z, &w,
                                  off ? "throughput, 64 per SUBMIT, checks off" : "throughput, 64 per SUBMIT") == 0;
            s_finish(&b);
            if (!ok)
                continue;
            snprintf(name, sizeof name, "accepted, 256 B, 1->1, %u per SUBMIT, checks %s", WIRE_BATCH, off ? "OFF" : "ON");
            r = bench_row("throughput", name, w.accept_rate, "msg/s");
            bench_vs(r, "CURVE forwarder", fwd_s.curve_rate);
            bench_note(r, "%zu messages in SUBMIT frames of %u envelopes (as ketenbus_client_submit_batch sends them), "
                          "closed loop with 4,000 messages in flight; not the one-per-frame workload of the targets",
                       w.accepted, WIRE_BATCH);
            if (!off) {
                r = bench_row("throughput", "accepted, 256 B, 1->1, 64 per SUBMIT, checks ON, vs verify ceiling",
                              w.accept_rate, "msg/s");
                char vname[64];
                snprintf(vname, sizeof vname, "Ed25519 verify x %u core%s", verify_cores, verify_cores > 1 ? "s" : "");
                bench_vs(r, vname, verify_ceiling);
            }
            snprintf(name, sizeof name, "end to end through ACK commit, 256 B, 1->1, %u per SUBMIT, checks %s",
                     WIRE_BATCH, off ? "OFF" : "ON");
            r = bench_row("throughput", name, w.ack_rate, "msg/s");
            bench_vs(r, "CURVE forwarder", fwd_s.curve_rate);
        }
    }

    /* ------------------------------------------------ latency */
    if (s_want("latency")) {
        /* checks on: 1,000 and 10,000 always (an overloaded broker shows as
         * growing latency), 30,000 if the throughput run reached it; the
         * same with checks off where the broker has the switch */
        const struct {
            double rate;
            int off;
        } runs[5] = {{1000, 0}, {10000, 0}, {30000, 0}, {10000, 1}, {30000, 1}};
        for (int i = 0; i < 5; i++) {
            if (runs[i].off && !have_switch)
                continue;
            double reach = runs[i].off ? noverify : tp_small_accept;
            size_t n = (size_t)(runs[i].rate * z->lat_s);
            if (n > small[0].n)
                n = small[0].n;
            char label[64];
            snprintf(label, sizeof label, "%.0f/s offered, checks %s", runs[i].rate, runs[i].off ? "OFF" : "ON");
            if (runs[i].rate > 10000 && reach > 0 && runs[i].rate > reach) {
                snprintf(name, sizeof name, "SUBMIT->RECEIPT p50 at %s", label);
                r = bench_row("latency", name, NAN, "us");
                bench_note(r, "not reachable: the broker accepted at most %.0f msg/s in the throughput run", reach);
                continue;
            }
            char bname[32];
            snprintf(bname, sizeof bname, "lat-%d", i);
            if (s_broker(&b, &keys, bname, 1, 2, runs[i].off ? NOVERIFY : NULL) != 0)
                continue;
            snprintf(name, sizeof name, "latency at %s", label);
            int ok = s_wire(&b, &keys, small, 1, n, runs[i].rate, 1, z, &w, name) == 0;
            s_finish(&b);
            if (!ok)
                continue;
            int at10k = runs[i].rate == 10000;
            snprintf(name, sizeof name, "SUBMIT->RECEIPT p50 at %s", label);
            r = bench_row("latency", name, (double)w.rcpt_p50 / 1000, "us");
            bench_vs(r, "fdatasync p50", (double)disk.p50 / 1000);
            if (at10k)
                bench_target(r, "< 1000 us", w.rcpt_p50 < 1000000);
            bench_note(r, "%zu messages, offered %.0f/s, accepted %.0f/s", w.sent, w.offered_rate, w.accept_rate);
            snprintf(name, sizeof name, "SUBMIT->RECEIPT p99 at %s", label);
            r = bench_row("latency", name, (double)w.rcpt_p99 / 1000, "us");
            bench_vs(r, "fdatasync p99", (double)disk.p99 / 1000);
            if (at10k)
                bench_target(r, "< 2 x fdatasync p99", w.rcpt_p99 < 2 * disk.p99);
            snprintf(name, sizeof name, "SUBMIT->RECEIPT p99.9 at %s", label);
            r = bench_row("latency", name, (double)w.rcpt_p999 / 1000, "us");
            bench_vs(r, "fdatasync p99", (double)disk.p99 / 1000);
            snprintf(name, sizeof name, "SUBMIT->DELIVER p50 at %s", label);
            r = bench_row("latency", name, (double)w.dlv_p50 / 1000, "us");
            bench_vs(r, "fdatasync p50", (double)disk.p50 / 1000);
            if (at10k)
                bench_target(r, "< 1000 us", w.dlv_p50 < 1000000);
            snprintf(name, sizeof name, "SUBMIT->DELIVER p99 at %s", label);
            r = bench_row("latency", name, (double)w.dlv_p99 / 1000, "us");
            bench_vs(r, "fdatasync p99", (double)disk.p99 / 1000);
            if (at10k)
                bench_target(r, "< 2 x fdatasync p99", w.dlv_p99 < 2 * disk.p99);
            snprintf(name, sizeof name, "SUBMIT->DELIVER p99.9 at %s", label);
            r = bench_row("latency", name, (double)w.dlv_p999 / 1000, "us");
            bench_vs(r, "fdatasync p99", (double)disk.p99 / 1000);
        }
    }

    /* ------------------------------------------------ cost growth */
    if (s_want("growth")) {
        /* the baseline of the memory and start-up rows, if no throughput run gave it */
        if (empty_rss == 0 && s_broker(&b, &keys, "fresh", 1, 2, NULL) == 0) {
            empty_ready_ms = b.ready_ms;
            bench_broker_rss(&b, &empty_rss, &empty_hwm);
            s_finish(&b);
        }
        const size_t counts[3] = {10, 100, 1000};
        double base10 = 0;
        for (int i = 0; i < 3; i++) {
            char bname[32];
            snprintf(bname, sizeof bname, "growth-%zu", counts[i]);
            if (s_broker(&b, &keys, bname, 1, counts[i], NULL) != 0)
                continue;
            double ready = b.ready_ms;
            snprintf(name, sizeof name, "%zu agencies", counts[i]);
            int ok = s_wire(&b, &keys, small, 1, z->growth, 0, 1, z, &w, name) == 0;
            s_finish(&b);
            if (!ok)
                continue;
            if (i == 0)
                base10 = w.accept_rate;
            snprintf(name, sizeof name, "accepted, 256 B, 1->1, %zu agencies and rules", counts[i]);
            r = bench_row("growth", name, w.accept_rate, "msg/s");
            bench_vs(r, "same with 10 agencies", base10);
            bench_note(r, "%zu messages; broker ready %.0f ms after exec", w.accepted, ready);
        }

        /* bytes per message: recipient offline, everything stays queued */
        if (s_broker(&b, &keys, "offline", 1, 2, NULL) == 0) {
            int ok = s_wire(&b, &keys, small, 1, z->offline, 0, 0, z, &w, "offline recipient") == 0;
            s_finish(&b);
            bench_store_bytes_t sb;
            if (ok && bench_store_bytes(b.data, &sb) == 0 && w.accepted > 0) {
                double n = (double)w.accepted;
                uint64_t du = bench_dir_bytes(b.data);
                r = bench_row("growth", "queue bytes per message (recipient offline)", (double)sb.queue / n, "B");
                bench_vs(r, "envelope bytes", (double)small[0].env_len);
                bench_note(r, "key + sealed QueueEntry; accepted-id index adds %.0f B", (double)sb.seen / n);
                r = bench_row("growth", "audit bytes per message (received + routed)", (double)sb.audit / n, "B");
                bench_vs(r, "envelope bytes", (double)small[0].env_len);
                bench_note(r, "%.2f audit records per message; Merkle tiles add %.1f B", (double)sb.n_audit / n,
                           (double)sb.tiles / n);
                r = bench_row("growth", "data directory bytes per queued message", (double)du / n, "B");
                bench_vs(r, "envelope bytes", (double)small[0].env_len);
                bench_note(r, "LevelDB files incl. log, %zu messages", w.accepted);
            }
        }
        if (acked_n > 0) {
            double n = (double)acked_n;
            r = bench_row("growth", "audit bytes per message, delivered and ACKed", (double)acked_bytes.audit / n, "B");
            bench_vs(r, "envelope bytes", (double)small[0].env_len);
            bench_note(r, "%.2f audit records per message (received, routed, delivered, acknowledged); %.0f queue B "
                          "left", (double)acked_bytes.n_audit / n, (double)acked_bytes.queue / n);
        }
        if (empty_rss > 0 && tp_rss > 0) {
            r = bench_row("growth", "broker RSS after the 256 B 1->1 run", (double)tp_rss / 1024, "MiB");
            bench_vs(r, "RSS of a fresh broker", (double)empty_rss / 1024);
            bench_note(r, "peak (VmHWM) %.1f MiB; now %.1f MiB anonymous, %.1f MiB mapped files (LevelDB tables)",
                       (double)tp_hwm / 1024, (double)tp_anon / 1024, (double)tp_file / 1024);
        }

        /* a million queued for an offline agency */
        if (bench_broker_init(&b, &keys, "million", 1, 2, NULL) == 0) {
            double fill_s = 0;
            bench_log("filling a store with %zu queued messages", z->queued);
            if (bench_store_fill(&b, &keys, "r0", &small[0], z->queued, &fill_s) == 0 && bench_broker_start(&b) == 0) {
                double ready = b.ready_ms;
                bench_sleep_us(1500000); /* let the first expiry scan and idle turns run */
                long rss = 0, hwm = 0, anon = 0, file = 0;
                bench_broker_mem(&b, &rss, &hwm, &anon, &file);
                s_finish(&b);
                snprintf(name, sizeof name, "broker RSS with %zu queued for an offline agency", z->queued);
                r = bench_row("growth", name, (double)rss / 1024, "MiB");
                bench_vs(r, "RSS of a fresh broker", (double)empty_rss / 1024);
                bench_target(r, "< 64 MiB", rss < 64 * 1024);
                bench_note(r, "%.1f MiB anonymous + %.1f MiB mapped LevelDB tables; peak %.1f MiB; store filled "
                              "through broker/store.h in %.1f s (%.0f MiB on disk)",
                           (double)anon / 1024, (double)file / 1024, (double)hwm / 1024, fill_s,
                           (double)bench_dir_bytes(b.data) / 1048576.0);
                snprintf(name, sizeof name, "broker anonymous memory (RssAnon) with %zu queued", z->queued);
                r = bench_row("growth", name, (double)anon / 1024, "MiB");
                bench_vs(r, "RSS of a fresh broker", (double)empty_rss / 1024);
                bench_target(r, "< 64 MiB", anon < 64 * 1024);
                bench_note(r, "RSS without file pages: the mapped tables are LevelDB's mmap reads (its background "
                              "compaction of the filled store), clean and reclaimable");
                snprintf(name, sizeof name, "start to ready with %zu queued", z->queued);
                r = bench_row("growth", name, ready, "ms");
                bench_vs(r, "start of a fresh broker", empty_ready_ms);
                bench_target(r, "< 2000 ms", ready < 2000);
                bench_note(r, "exec of ketenbusd until --ready-file is written");
            } else {
                s_failed = 1;
                s_finish(&b);
            }
        }
    }

    /* ------------------------------------------------ the SDK */
    double sdk_single = 0;
    for (size_t batch = 1; s_want("sdk") && batch <= 64; batch *= 64) {
        if (s_broker(&b, &keys, "sdk", 1, 2, NULL) != 0)
            continue;
        bench_sdk_t sd;
        bench_log("SDK: %zu messages, %zu per submission", z->sdk, batch);
        int ok = bench_sdk_run(&b, &keys, z->sdk, 256, batch, z->limit_s, &sd) == 0 && sd.complete;
        s_finish(&b);
        if (!ok) {
            bench_log("SDK run: %s", sd.error);
            s_failed = 1;
        } else if (batch == 1) {
            sdk_single = sd.accept_rate;
            r = bench_row("sdk", "accepted via libketenbus, 256 B, 1->1", sd.accept_rate, "msg/s");
            bench_vs(r, "fdatasync op/s", disk.ops);
            bench_note(r, "submit(..., 0) + poll, window 512: the outbox's synced write per submission bounds it");
            r = bench_row("sdk", "delivered via libketenbus, 256 B, 1->1", sd.deliver_rate, "msg/s");
            bench_vs(r, "wire, same size", tp_small_accept);
        } else {
            r = bench_row("sdk", "accepted via libketenbus, batches of 64, 256 B, 1->1", sd.accept_rate, "msg/s");
            bench_vs(r, "SDK, one per submit", sdk_single);
            bench_note(r, "submit_batch(64, ..., 0) + poll, window 512: one outbox synced write per 64 messages");
            r = bench_row("sdk", "delivered via libketenbus, batches of 64, 256 B, 1->1", sd.deliver_rate, "msg/s");
            bench_vs(r, "wire, same size", tp_small_accept);
        }
    }

    printf("\n");
    bench_print(g_opt.markdown);
    printf("\nwall time %.0f s%s\n", (double)(bench_ns() - t_start) / 1e9, s_failed ? "; SOME RUNS FAILED (see stderr)" : "");
    for (unsigned p = 0; p < BENCH_MAX_PAIRS; p++) {
        bench_pool_free(&small[p]);
        bench_pool_free(&large[p]);
    }
    if (!g_opt.keep)
        bench_rmrf(root);
    else
        bench_log("kept %s", root);
    return s_failed ? 1 : 0;
}
