/*
 * check_soak.c - a long run of the real broker under steady load with
 * crashes, reloads and agencies going offline (`make soak`).
 *
 * Four agencies in a ring (politie -> fier -> comensha -> rvdk -> politie)
 * send signals through libketenbus to their neighbour at SOAK_RATE messages
 * per second in all, for SOAK_SECONDS. fier also keeps trying rvdk, which no
 * rule allows. During the first half of the run the broker is killed
 * with SIGKILL every SOAK_KILL_EVERY seconds and started again on the same
 * port; all through the run the rules are reloaded (SIGHUP) every 41 s and
 * one agency at a time closes its client for 10 s every 29 s. The broker
 * signs a checkpoint every 5 s and prunes signal records older than 2 min.
 *
 * What it proves, once every outbox is empty and every queue drained:
 *   - nothing accepted is lost: each allowed pair delivered exactly as many
 *     messages as its sender submitted;
 *   - effectively once and in order: the handler saw each pair's sequence
 *     numbers 1, 2, 3, ... with no repeat and no gap, across crashes;
 *   - default deny: nothing of fier's to rvdk arrived, and the broker
 *     refused it whenever it answered;
 *   - memory: the broker's anonymous memory in the last quarter of the run
 *     (a quarter after the last crash, when its caches are warm) stays
 *     within 1.25 x + 8 MiB of where that quarter started;
 *   - the broker stops cleanly on SIGTERM and `ketenbus audit verify` proves
 *     the whole audit log, pruned ranges included.
 *
 * Every figure is printed on stderr at the end. Not part of `make test`:
 * `make soak [SOAK_SECONDS=600] [SOAK_RATE=200] [SOAK_KILL_EVERY=67]`.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "kb_test.h"
#include "kb_util.h"

#define S_AGENCIES      4
#define S_FIER          1        /* index of the agency that also tries a refused pair */
#define S_RVDK          3        /* the refused pair's recipient */
#define S_RELOAD_EVERY  41000    /* ms between rule reloads */
#define S_OFFLINE_EVERY 29000    /* ms between one agency going offline */
#define S_OFFLINE_FOR   10000    /* ms it stays offline */
#define S_SAMPLE_EVERY  5000     /* ms between memory samples */
#define S_DRAIN_MS      180000   /* how long the end may take to drain */
#define S_MAX_SAMPLES   4096

static const char *s_names[S_AGENCIES] = {"politie", "fier", "comensha", "rvdk"};

#define S_RULE_REST                                                                              \
    "    kinds: [signal]\n    purposes: [victim_care]\n    max_handling: h3\n"                   \
    "    legal_basis: Wpg art. 19\n"

static const char *s_rules_a =
    "  - id: ring-politie\n    from: [politie]\n    to: [fier]\n" S_RULE_REST
    "  - id: ring-fier\n    from: [fier]\n    to: [comensha]\n" S_RULE_REST
    "  - id: ring-comensha\n    from: [comensha]\n    to: [rvdk]\n" S_RULE_REST
    "  - id: ring-rvdk\n    from: [rvdk]\n    to: [politie]\n" S_RULE_REST;

/* The same ring with an extra deny rule and other ids: what a reload changes. */
static const char *s_rules_b =
    "  - id: ring-politie-v2\n    from: [politie]\n    to: [fier]\n" S_RULE_REST
    "  - id: ring-fier-v2\n    from: [fier]\n    to: [comensha]\n" S_RULE_REST
    "  - id: ring-comensha-v2\n    from: [comensha]\n    to: [rvdk]\n" S_RULE_REST
    "  - id: ring-rvdk-v2\n    from: [rvdk]\n    to: [politie]\n" S_RULE_REST
    "  - id: no-fier-to-rvdk\n    effect: deny\n    from: [fier]\n    to: [rvdk]\n"
    "    legal_basis: shelter signals reach the board through CoMensha\n";

typedef struct {
    ketenbus_client_t *client;  /* NULL while offline */
    int64_t back_at_ms;         /* when an offline agency returns */
    uint64_t sent;              /* signals submitted to the next agency */
    uint64_t denied_sent;       /* fier only: signals submitted to rvdk */
    uint64_t denied_rejected;   /* of those, refused in a receipt we waited for */
    uint64_t got;               /* handler: signals from the previous agency, in order */
    uint64_t got_wrong;         /* handler: out of order, repeated or from a refused pair */
    char first_wrong[160];      /* what the first wrong one was */
} s_agency_t;

static kb_chain_t s_chain;
static s_agency_t s_ag[S_AGENCIES];

static long s_env(const char *name, long dflt, long lo, long hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (*end != '\0' || n < lo || n > hi) {
        fprintf(stderr, "soak: %s=%s: expected a number from %ld to %ld\n", name, v, lo, hi);
        exit(2);
    }
    return n;
}

static int s_index(const char *agency)
{
    for (int i = 0; i < S_AGENCIES; i++)
        if (strcmp(s_names[i], agency) == 0)
            return i;
    return -1;
}

/* Deliveries: "soak seq=N" from the previous agency in the ring must come
 * as N = got + 1; anything else is counted as wrong. */
static int s_handler(ketenbus_client_t *client, const ketenbus_msg_t *msg, void *arg)
{
    (void)client;
    s_agency_t *me = arg;
    int from = s_index(ketenbus_msg_sender(msg));
    int self = (int)(me - s_ag);
    char *text = ketenbus_msg_get(msg, "signal.narrative");
    unsigned long long seq = 0;
    int ok = from >= 0 && (from + 1) % S_AGENCIES == self && text && sscanf(text, "soak seq=%llu", &seq) == 1 &&
             seq == me->got + 1;
    if (ok) {
        me->got++;
    } else {
        if (me->got_wrong++ == 0)
            snprintf(me->first_wrong, sizeof me->first_wrong, "from %s: \"%s\" after %" PRIu64,
                     ketenbus_msg_sender(msg), text ? text : "(no narrative)", me->got);
    }
    free(text);
    return 0;
}

static void s_connect(int i)
{
    s_ag[i].client = kb_chain_client(&s_chain, s_names[i], NULL);
    ketenbus_client_set_handler(s_ag[i].client, s_handler, &s_ag[i]);
}

static void s_submit(int from, int to, uint64_t seq, int wait_ms, ketenbus_receipt_t *r)
{
    char text[64];
    snprintf(text, sizeof text, "soak seq=%" PRIu64, seq);
    ketenbus_msg_t *m = kb_test_signal(s_names[to], text);
    int rc = ketenbus_client_submit(s_ag[from].client, m, r, wait_ms);
    ck_assert_msg(rc == KETENBUS_OK || rc == KETENBUS_EPENDING || rc == KETENBUS_EREJECTED, "%s submit: %s",
                  s_names[from], ketenbus_last_error());
    ketenbus_msg_destroy(&m);
}

/* Anonymous memory of a process in KiB (RssAnon), 0 if unreadable. */
static long s_rss_anon_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static void s_poll_all(int timeout_ms)
{
    for (int i = 0; i < S_AGENCIES; i++)
        if (s_ag[i].client)
            ketenbus_client_poll(s_ag[i].client, timeout_ms);
}

static int s_drained(void)
{
    for (int i = 0; i < S_AGENCIES; i++) {
        int prev = (i + S_AGENCIES - 1) % S_AGENCIES;
        if (!s_ag[i].client || ketenbus_client_outbox_size(s_ag[i].client) > 0 || s_ag[i].got < s_ag[prev].sent)
            return 0;
    }
    return 1;
}

START_TEST(test_soak)
{
    const long seconds = s_env("SOAK_SECONDS", 600, 30, 7 * 24 * 3600);
    const long rate = s_env("SOAK_RATE", 200, 1, 5000);
    const long kill_every = s_env("SOAK_KILL_EVERY", 67, 5, 3600) * 1000;

    kb_chain_init(&s_chain, s_names, S_AGENCIES, s_rules_a,
                  "  checkpoint_interval: 5s\n  retention:\n    signal: 2m\n");
    kb_chain_start(&s_chain);
    kb_chain_pin_port(&s_chain);
    memset(s_ag, 0, sizeof s_ag);
    for (int i = 0; i < S_AGENCIES; i++)
        s_connect(i);

    const int64_t start = kb_mono_ms(), end = start + seconds * 1000;
    const int64_t calm_from = start + seconds * 1000 / 2;      /* no kills after this */
    const int64_t settled_from = start + seconds * 1000 * 3 / 4; /* caches warm again: memory compared from here */
    int64_t next_kill = start + kill_every, next_reload = start + S_RELOAD_EVERY;
    int64_t next_offline = start + S_OFFLINE_EVERY, next_sample = start + S_SAMPLE_EVERY;
    long samples[S_MAX_SAMPLES];
    size_t n_samples = 0, calm_first = 0;
    int kills = 0, reloads = 0, offlines = 0, next_off = 0, rules_b = 0, calm_seen = 0;
    uint64_t due_total = 0;

    while (kb_mono_ms() < end) {
        int64_t now = kb_mono_ms();
        /* the ring's load: what is due by now, spread over the agencies online */
        uint64_t due = (uint64_t)((now - start) * rate / 1000);
        for (; due_total < due; due_total++) {
            int from = (int)(due_total % S_AGENCIES);
            if (!s_ag[from].client)
                continue; /* offline agencies send nothing */
            if (from == S_FIER && due_total % 50 == 1) {
                /* a refused pair; wait for its receipt only when the broker runs */
                ketenbus_receipt_t r;
                memset(&r, 0, sizeof r);
                s_submit(from, S_RVDK, ++s_ag[from].denied_sent, s_chain.pid > 0 ? 2000 : 0, &r);
                if (r.outcome == KETENBUS_OUTCOME_REJECTED)
                    s_ag[from].denied_rejected++;
                continue;
            }
            s_submit(from, (from + 1) % S_AGENCIES, ++s_ag[from].sent, 0, NULL);
        }
        s_poll_all(1);

        if (now >= next_kill && now < calm_from) {
            kb_chain_kill(&s_chain);
            kills++;
            for (int k = 0; k < 20; k++) /* clients keep working while it is down */
                s_poll_all(25);
            kb_chain_start(&s_chain);
            next_kill = kb_mono_ms() + kill_every;
        }
        if (now >= next_reload && s_chain.pid > 0) {
            rules_b = !rules_b;
            kb_chain_set_rules(&s_chain, rules_b ? s_rules_b : s_rules_a);
            ck_assert_int_eq(kill(s_chain.pid, SIGHUP), 0);
            reloads++;
            next_reload = now + S_RELOAD_EVERY;
        }
        if (now >= next_offline) {
            ketenbus_client_destroy(&s_ag[next_off].client);
            s_ag[next_off].back_at_ms = now + S_OFFLINE_FOR;
            next_off = (next_off + 1) % S_AGENCIES;
            offlines++;
            next_offline = now + S_OFFLINE_EVERY;
        }
        for (int i = 0; i < S_AGENCIES; i++)
            if (!s_ag[i].client && now >= s_ag[i].back_at_ms)
                s_connect(i);
        if (now >= next_sample && s_chain.pid > 0 && n_samples < S_MAX_SAMPLES) {
            if (now >= settled_from && !calm_seen) {
                calm_seen = 1;
                calm_first = n_samples;
            }
            samples[n_samples++] = s_rss_anon_kib(s_chain.pid);
            next_sample = now + S_SAMPLE_EVERY;
        }
    }

    /* the end: everyone online, every outbox answered, every queue drained */
    for (int i = 0; i < S_AGENCIES; i++)
        if (!s_ag[i].client)
            s_connect(i);
    int64_t drain_deadline = kb_mono_ms() + S_DRAIN_MS;
    while (!s_drained() && kb_mono_ms() < drain_deadline)
        s_poll_all(10);
    int drained = s_drained();
    for (int i = 0; i < S_AGENCIES; i++)
        ketenbus_client_destroy(&s_ag[i].client);
    long last_anon = s_rss_anon_kib(s_chain.pid);
    int stop_status = kb_chain_stop(&s_chain);

    char out[8192];
    int verify = kb_chain_cli(&s_chain, out, sizeof out,
                              "audit verify --offline --data data --key keys/broker.sign.pub.pem");

    long calm_start = n_samples > calm_first ? samples[calm_first] : 0, calm_max = 0, all_max = 0;
    for (size_t k = 0; k < n_samples; k++) {
        if (samples[k] > all_max)
            all_max = samples[k];
        if (k >= calm_first && samples[k] > calm_max)
            calm_max = samples[k];
    }
    uint64_t sent = 0, got = 0, wrong = 0;
    for (int i = 0; i < S_AGENCIES; i++) {
        sent += s_ag[i].sent;
        got += s_ag[i].got;
        wrong += s_ag[i].got_wrong;
        int prev = (i + S_AGENCIES - 1) % S_AGENCIES;
        fprintf(stderr, "soak: %-8s -> %-8s sent %8" PRIu64 "  delivered in order %8" PRIu64 "\n", s_names[prev],
                s_names[i], s_ag[prev].sent, s_ag[i].got);
    }
    fprintf(stderr,
            "soak: %lds at %ld msg/s: %" PRIu64 " sent, %" PRIu64 " delivered, %" PRIu64 " wrong; "
            "refused pair: %" PRIu64 " sent, %" PRIu64 " refused while waited for\n"
            "soak: %d kills, %d reloads, %d agencies offline for %ds; broker RssAnon: max %ld KiB, "
            "last quarter from %ld to max %ld KiB, %ld KiB at the end (%zu samples)\n"
            "soak: broker exit status %d; audit verify exit %d:\n%s",
            seconds, rate, sent, got, wrong, s_ag[S_FIER].denied_sent, s_ag[S_FIER].denied_rejected, kills, reloads,
            offlines, S_OFFLINE_FOR / 1000, all_max, calm_start, calm_max, last_anon, n_samples, stop_status, verify,
            out);

    ck_assert_msg(drained, "not drained within %d ms after the load stopped", S_DRAIN_MS);
    for (int i = 0; i < S_AGENCIES; i++) {
        int prev = (i + S_AGENCIES - 1) % S_AGENCIES;
        ck_assert_msg(s_ag[i].got_wrong == 0, "%s: %" PRIu64 " deliveries out of order, repeated or refused; first %s",
                      s_names[i], s_ag[i].got_wrong, s_ag[i].first_wrong);
        ck_assert_msg(s_ag[i].got == s_ag[prev].sent, "%s -> %s: %" PRIu64 " sent, %" PRIu64 " delivered",
                      s_names[prev], s_names[i], s_ag[prev].sent, s_ag[i].got);
    }
    ck_assert_msg(sent > 0 && kills > 0 && reloads > 0 && offlines > 0, "the run was too short to exercise anything");
    ck_assert_msg(s_ag[S_FIER].denied_rejected > 0, "no refusal of fier -> rvdk was seen");
    ck_assert_msg(calm_start > 0 && calm_max <= calm_start * 5 / 4 + 8 * 1024,
                  "broker memory grew in the last quarter: %ld -> %ld KiB", calm_start, calm_max);
    ck_assert_int_eq(stop_status, 0);
    ck_assert_msg(verify == 0, "audit verify: %s", out);
    kb_chain_cleanup(&s_chain);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("soak");
    TCase *tc = tcase_create("soak");
    /* the run itself plus start-ups, the drain and the verification */
    tcase_set_timeout(tc, (double)s_env("SOAK_SECONDS", 600, 30, 7 * 24 * 3600) + S_DRAIN_MS / 1000 + 600);
    tcase_add_test(tc, test_soak);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
