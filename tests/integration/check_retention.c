/*
 * check_retention.c - retention per kind of the audit log, end to end.
 *
 * Signals (fier -> politie, about person A) and referrals (politie ->
 * rvdk, about person B) are exchanged in turn through a real ketenbusd,
 * so their records interleave in the log; then:
 *   - `audit prune --kind signal` through the admin socket turns only the
 *     signal records of the full leaf tile into tombstones: referrals and
 *     records about no message stay, queries by kind and person find the
 *     same as before, and `audit verify` passes, saying how many records
 *     were pruned where;
 *   - the same offline, after which three changes to copies of the data
 *     directory are found by `audit verify`: a referral hidden as a
 *     tombstone of the signal pruning, a referral hidden as a tombstone of
 *     a referral pruning that never happened, and a pruned signal record
 *     put back from a copy made before the pruning;
 *   - a broker with `retention: {signal: 3s}` in its chain file prunes its
 *     signal records by itself once they are old enough and under a
 *     checkpoint, logs and audits it, the subject report says so, and the
 *     log verifies;
 *   - a reload that shortens checkpoint_interval, or sets another period,
 *     brings the next retention pass forward.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <json-c/json.h>
#include <leveldb/c.h>

#include "kb_error.h"
#include "kb_ldb.h"
#include "kb_merkle.h"
#include "kb_test.h"
#include "kb_util.h"
#include "store.h"

#define OUT_MAX    (4u << 20)
#define S_PAIRS    36           /* signal and referral pairs: 8 records each, so the first leaf tile fills */
#define S_TILE     256u         /* records of the first full leaf tile: what pruning may take */
#define S_WAIT_MS  30000        /* how long a broker may take to apply its retention */
#define PERSON_A   "bsn=123456782"
#define PERSON_B   "name_birth=Lakatos|Ana|2011-03-14"
#define SRC        "--data data"
#define KEY        "--key keys/broker.sign.pub.pem"
#define OFFLINE    "--offline --config chain.yaml"

static const char *s_agencies[] = {"politie", "fier", "rvdk"};
#define S_REST "    purposes: [victim_care, child_protection]\n    max_handling: h3\n    legal_basis: Wpg art. 19\n"
static const char *s_rules = "  - id: fier-politie\n    from: [fier]\n    to: [politie]\n    kinds: [signal]\n" S_REST
                             "  - id: politie-rvdk\n    from: [politie]\n    to: [rvdk]\n    kinds: [referral]\n" S_REST;

static kb_chain_t s_chain;
static char *s_out;
static char s_chain_key[400];

/* What the log held before pruning. */
typedef struct {
    size_t signals;          /* records of kind signal */
    size_t signals_kept;     /* of which at or after S_TILE */
    size_t referrals;        /* records of kind referral */
    size_t other;            /* records about no message but checkpoints and prunes */
    size_t person_b;         /* records about person B (the referrals) */
    uint64_t a_referral;     /* index of a referral record in the first tile */
    uint64_t a_signal;       /* index of a signal record in the first tile */
} s_census_t;

static int s_cli(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int s_cli(const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return kb_chain_cli(&s_chain, s_out, OUT_MAX, "%s", args);
}

static void s_setup_with(const char *broker_extra)
{
    s_out = malloc(OUT_MAX);
    ck_assert_ptr_nonnull(s_out);
    kb_chain_init(&s_chain, s_agencies, 3, s_rules, broker_extra);
    snprintf(s_chain_key, sizeof s_chain_key, "%s/chain.key", s_chain.dir);
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 7 + 3);
    ck_assert_int_eq(kb_file_write(s_chain_key, key, sizeof key, 0600), KB_OK);
    kb_chain_start(&s_chain);
}

static void s_setup(void)
{
    s_setup_with("  checkpoint_records: 20\n");
}

static void s_setup_retention(void)
{
    s_setup_with("  checkpoint_records: 20\n  checkpoint_interval: 1s\n  retention:\n    signal: 3s\n");
}

/* Retention passes a day apart, until a reload. */
static void s_setup_retention_daily(void)
{
    s_setup_with("  checkpoint_records: 20\n  checkpoint_interval: 1d\n  retention:\n    signal: 3s\n");
}

static void s_teardown(void)
{
    kb_chain_cleanup(&s_chain);
    free(s_out);
}

static void s_subject(ketenbus_msg_t *m, const char *person)
{
    kb_test_add_person(m, s_chain_key, person);
}

static ketenbus_msg_t *s_referral(void)
{
    ketenbus_msg_t *m = kb_test_referral("rvdk");
    s_subject(m, PERSON_B);
    return m;
}

static void s_submit(ketenbus_client_t *c, ketenbus_msg_t *m)
{
    ketenbus_receipt_t r;
    ck_assert_msg(ketenbus_client_submit(c, m, &r, 5000) == KETENBUS_OK, "submit: %s %s", ketenbus_last_error(),
                  r.reason);
    ketenbus_msg_destroy(&m);
}

static void s_drain(const char *agency, int n)
{
    kb_chain_drain(&s_chain, agency, n);
}

/* Signals and referrals in turn, each received and acknowledged. */
static void s_exchange(void)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    for (int i = 0; i < S_PAIRS; i++) {
        ketenbus_msg_t *m = kb_test_signal("politie", "seen at the station with an adult who held her papers");
        s_subject(m, PERSON_A);
        s_submit(fier, m);
        s_submit(politie, s_referral());
    }
    ketenbus_client_destroy(&fier);
    ketenbus_client_destroy(&politie);
    s_drain("politie", S_PAIRS);
    s_drain("rvdk", S_PAIRS);
}

/* ------------------------------------------------------------ JSON lines */

/* Parse s_out as JSON lines and call fn on each. */
static void s_each_line(void (*fn)(json_object *, void *), void *arg)
{
    char *save = NULL;
    for (char *line = strtok_r(s_out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_object *o = json_tokener_parse(line);
        ck_assert_msg(json_object_is_type(o, json_type_object), "not a JSON line: %.200s", line);
        fn(o, arg);
        json_object_put(o);
    }
}

static const char *s_get(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static void s_count_fn(json_object *o, void *arg)
{
    (void)o;
    (*(size_t *)arg)++;
}

/* Records `audit query SOURCE ARGS --json` returns. */
static size_t s_query(const char *source, const char *args)
{
    ck_assert_msg(s_cli("audit query %s %s --json", source, args) == 0, "%s", s_out);
    size_t n = 0;
    s_each_line(s_count_fn, &n);
    return n;
}

static void s_census_fn(json_object *o, void *arg)
{
    s_census_t *c = arg;
    uint64_t index = strtoull(s_get(o, "index"), NULL, 10);
    const char *kind = s_get(o, "kind");
    const char *event = s_get(o, "event");
    if (strcmp(kind, "signal") == 0) {
        c->signals++;
        c->signals_kept += index >= S_TILE;
        if (index < S_TILE)
            c->a_signal = index;
    } else if (strcmp(kind, "referral") == 0) {
        c->referrals++;
        if (index < S_TILE && c->a_referral == 0)
            c->a_referral = index;
    } else if (strcmp(event, "checkpoint") != 0 && strcmp(event, "pruned") != 0) {
        c->other++;
    }
}

static void s_census(s_census_t *c, const char *source)
{
    memset(c, 0, sizeof *c);
    ck_assert_msg(s_cli("audit export %s --format jsonl", source) == 0, "%s", s_out);
    s_each_line(s_census_fn, c);
    char args[600];
    snprintf(args, sizeof args, "--identify '%s' --chain-key chain.key", PERSON_B);
    c->person_b = s_query(source, args);
    ck_assert_uint_gt(c->signals - c->signals_kept, 0);
    ck_assert_uint_gt(c->a_referral, 0);
    ck_assert_uint_gt(c->a_signal, 0);
}

static void s_kept_fn(json_object *o, void *arg)
{
    ck_assert_uint_ge(strtoull(s_get(o, "index"), NULL, 10), S_TILE);
    ck_assert_str_eq(s_get(o, "kind"), "signal");
    (*(size_t *)arg)++;
}

/* What stays after the signal records of the first tile were pruned. */
static void s_check_after(const s_census_t *before, const char *source)
{
    ck_assert_uint_eq(s_query(source, "--kind signal"), before->signals_kept);
    ck_assert_uint_eq(s_query(source, "--kind referral"), before->referrals);
    ck_assert_uint_eq(s_query(source, "--kind other --event connected,disconnected,rules_loaded"), before->other);
    char args[600];
    snprintf(args, sizeof args, "--identify '%s' --chain-key chain.key", PERSON_B);
    ck_assert_uint_eq(s_query(source, args), before->person_b);
    /* person A's pruned records are found no more: what a query about A
     * finds is among the signal records kept (acknowledgements name no
     * person, so those whose message lost every record that does are
     * found by message and agency only) */
    snprintf(args, sizeof args, "--identify '%s' --chain-key chain.key", PERSON_A);
    ck_assert_msg(s_cli("audit query %s %s --json", source, args) == 0, "%s", s_out);
    size_t n_a = 0;
    s_each_line(s_kept_fn, &n_a);
    ck_assert_uint_le(n_a, before->signals_kept);
    /* verify passes and says how many were pruned where */
    ck_assert_msg(s_cli("audit verify %s %s", source, strcmp(source, SRC) == 0 ? KEY : "") == 0, "%s", s_out);
    char want[120];
    snprintf(want, sizeof want, "pruned: %zu records in [", before->signals - before->signals_kept);
    ck_assert_msg(strstr(s_out, want) != NULL, "want \"%s\" in: %s", want, s_out);
    ck_assert_msg(strstr(s_out, "others in that range are kept") != NULL, "%s", s_out);
}

/* ------------------------------------------------------------ by hand */

START_TEST(test_prune_one_kind)
{
    s_exchange();
    s_census_t before;
    s_census(&before, SRC);
    ck_assert_uint_eq(before.referrals, 4u * S_PAIRS);
    char now[32];
    kb_time_format(kb_now_us() + 1000000, now);
    ck_assert_msg(s_cli("audit prune --data data --before %s --kind signal", now) == 0, "%s", s_out);
    char want[120];
    snprintf(want, sizeof want, "done: %zu signal records older than", before.signals - before.signals_kept);
    ck_assert_msg(strstr(s_out, want) != NULL, "want \"%s\" in: %s", want, s_out);
    s_check_after(&before, SRC);
    /* the PRUNED record says so */
    ck_assert_msg(s_cli("audit query " SRC " --event pruned --json") == 0, "%s", s_out);
    ck_assert_ptr_nonnull(strstr(s_out, "\"kind\":\"signal\""));
    /* nothing more is due; an unknown kind is a usage error */
    ck_assert_int_eq(s_cli("audit prune --data data --before %s --kind signal", now), 0);
    ck_assert_ptr_nonnull(strstr(s_out, "nothing to prune"));
    ck_assert_int_eq(s_cli("audit prune --data data --before %s --kind signals", now), 2);
    ck_assert_ptr_nonnull(strstr(s_out, "unknown kind"));
    /* the broker starts again on the pruned log */
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    kb_chain_start(&s_chain);
    ck_assert_msg(s_cli("audit verify " SRC " " KEY) == 0, "%s", s_out);
}
END_TEST

/* ------------------------------------------------------------ tampering */

/* Replace record i of the copy in dir by a tombstone with the right leaf
 * hash, claiming the pruning of claim (0xff: every kind). */
static void s_hide(const char *dir, uint64_t i, uint8_t claim)
{
    kb_ldb_t l;
    kb_ldb_open(&l, dir);
    size_t len;
    char *v = kb_ldb_get_record(&l, i, &len);
    uint8_t stone[KB_AUDIT_TOMBSTONE_LEN] = {0, 'P', 2, claim};
    kb_be64_put(stone + 4, 1);
    kb_be64_put(stone + 12, 2);
    ck_assert_int_eq(kb_merkle_leaf_hash(v, len, stone + 20), KB_OK);
    leveldb_free(v);
    kb_ldb_put_record(&l, i, stone, sizeof stone);
    kb_ldb_close(&l);
}

/* Copy record i from the copy in from to the one in to. */
static void s_restore(const char *from, const char *to, uint64_t i)
{
    kb_ldb_t a, b;
    kb_ldb_open(&a, from);
    size_t len;
    char *v = kb_ldb_get_record(&a, i, &len);
    kb_ldb_close(&a);
    kb_ldb_open(&b, to);
    kb_ldb_put_record(&b, i, v, len);
    kb_ldb_close(&b);
    leveldb_free(v);
}

static void s_copy(const char *from, const char *to)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cd '%s' && rm -rf '%s' && cp -a '%s' '%s'", s_chain.dir, to, from, to);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_prune_one_kind_offline_and_tampering)
{
    s_exchange();
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    s_census_t before;
    s_census(&before, OFFLINE);
    s_copy("data", "before");
    char now[32];
    kb_time_format(kb_now_us() + 1000000, now);
    ck_assert_msg(s_cli("audit prune " OFFLINE " --before %s --kind signal", now) == 0, "%s", s_out);
    s_check_after(&before, OFFLINE);

    char dir[600], path[700];
    /* a referral hidden among the pruned signals */
    s_copy("data", "hidden-as-signal");
    snprintf(dir, sizeof dir, "%s/hidden-as-signal", s_chain.dir);
    s_hide(dir, before.a_referral, 1);
    ck_assert_int_eq(s_cli("audit verify --offline --data hidden-as-signal --key keys/broker.sign.pub.pem"), 3);
    ck_assert_msg(strstr(s_out, "a record was hidden as a tombstone") != NULL, "%s", s_out);
    /* a referral hidden under a referral pruning that never was */
    s_copy("data", "hidden-as-referral");
    snprintf(dir, sizeof dir, "%s/hidden-as-referral", s_chain.dir);
    s_hide(dir, before.a_referral, 2);
    ck_assert_int_eq(s_cli("audit verify --offline --data hidden-as-referral --key keys/broker.sign.pub.pem"), 3);
    ck_assert_msg(strstr(s_out, "no PRUNED record under a signed checkpoint declares it") != NULL, "%s", s_out);
    char want[80];
    snprintf(want, sizeof want, "first bad record: %llu", (unsigned long long)before.a_referral);
    ck_assert_msg(strstr(s_out, want) != NULL, "want \"%s\" in: %s", want, s_out);
    /* a pruned signal record put back from the copy made before */
    s_copy("data", "put-back");
    snprintf(dir, sizeof dir, "%s/put-back", s_chain.dir);
    snprintf(path, sizeof path, "%s/before", s_chain.dir);
    s_restore(path, dir, before.a_signal);
    ck_assert_int_eq(s_cli("audit verify --offline --data put-back --key keys/broker.sign.pub.pem"), 3);
    ck_assert_msg(strstr(s_out, "or a pruned one put back") != NULL, "%s", s_out);
    /* and the pruned log itself still verifies */
    ck_assert_msg(s_cli("audit verify " OFFLINE) == 0, "%s", s_out);
}
END_TEST

/* ------------------------------------------------------------ by the broker */

/* Whether the signal records of the first tile are gone (the broker
 * prunes them chunk by chunk as they pass 3 s of age). */
static int s_pruned_by_broker(size_t kept)
{
    return s_query(SRC, "--kind signal") == kept;
}

START_TEST(test_broker_applies_retention)
{
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=retention kind=signal keep=3s"), 1);
    s_exchange();
    s_census_t before;
    s_census(&before, SRC);
    int64_t deadline = kb_mono_ms() + S_WAIT_MS;
    while (!s_pruned_by_broker(before.signals_kept) && kb_mono_ms() < deadline)
        usleep(200 * 1000);
    ck_assert_msg(s_pruned_by_broker(before.signals_kept), "retention not applied within %d ms", S_WAIT_MS);
    ck_assert_int_ge(kb_chain_log_count(&s_chain, "by=retention kind=signal"), 1);
    ck_assert_msg(s_cli("audit query " SRC " --event pruned --json") == 0, "%s", s_out);
    ck_assert_msg(strstr(s_out, "retention of signal is 3s") != NULL, "%s", s_out);
    /* referrals have no retention period: every one stays */
    ck_assert_uint_eq(s_query(SRC, "--kind referral"), before.referrals);
    /* the article 15 report about A, through the admin socket, says so */
    ck_assert_msg(s_cli("audit subject " SRC " --identify '" PERSON_A "' --chain-key chain.key") == 0, "%s", s_out);
    ck_assert_msg(strstr(s_out, "signal records before index ") != NULL, "%s", s_out);
    ck_assert_msg(strstr(s_out, "were pruned by retention and are not included") != NULL, "%s", s_out);
    /* and the log verifies */
    ck_assert_msg(s_cli("audit verify " SRC " " KEY) == 0, "%s", s_out);
    ck_assert_msg(strstr(s_out, "others in that range are kept") != NULL, "%s", s_out);
}
END_TEST

/* Rewrite the chain's file with the first `from` replaced by `to`, and
 * reload it. */
static void s_reload_with(const char *from, const char *to)
{
    kb_chain_config_replace(&s_chain, from, to);
    ck_assert_msg(s_cli("reload --data data") == 0, "%s", s_out);
}

/* The broker waits a checkpoint interval (here a day) between retention
 * passes; a reload that shortens the interval holds for them at once, as
 * for checkpoints, not when the day has run out. */
START_TEST(test_shorter_interval_brings_retention_forward)
{
    s_exchange();
    s_census_t before;
    s_census(&before, SRC);
    s_reload_with("  checkpoint_interval: 1d\n", "  checkpoint_interval: 1s\n");
    int64_t deadline = kb_mono_ms() + S_WAIT_MS;
    while (!s_pruned_by_broker(before.signals_kept) && kb_mono_ms() < deadline)
        usleep(200 * 1000);
    ck_assert_msg(s_pruned_by_broker(before.signals_kept), "retention not applied within %d ms of a reload to "
                  "checkpoint_interval 1s", S_WAIT_MS);
    ck_assert_msg(s_cli("audit verify " SRC " " KEY) == 0, "%s", s_out);
}
END_TEST

/* A retention period a reload sets holds at once: the pass starts then,
 * not a checkpoint interval (a day) later. */
START_TEST(test_new_retention_holds_at_once)
{
    s_exchange();
    s_census_t before;
    s_census(&before, SRC);
    usleep(1500 * 1000); /* every signal record is older than the period set below */
    s_reload_with("  checkpoint_interval: 1d\n  retention:\n    signal: 3s\n",
                  "  checkpoint_interval: 1d\n  retention:\n    signal: 1s\n");
    int64_t deadline = kb_mono_ms() + S_WAIT_MS;
    while (!s_pruned_by_broker(before.signals_kept) && kb_mono_ms() < deadline)
        usleep(200 * 1000);
    ck_assert_msg(s_pruned_by_broker(before.signals_kept), "retention not applied within %d ms of a reload to "
                  "signal: 1s", S_WAIT_MS);
    ck_assert_msg(s_cli("audit query " SRC " --event pruned --json") == 0, "%s", s_out);
    ck_assert_msg(strstr(s_out, "retention of signal is 1s") != NULL, "%s", s_out);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("retention");
    TCase *tc = tcase_create("by hand");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_prune_one_kind);
    tcase_add_test(tc, test_prune_one_kind_offline_and_tampering);
    suite_add_tcase(s, tc);
    tc = tcase_create("configured");
    tcase_add_checked_fixture(tc, s_setup_retention, s_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_broker_applies_retention);
    suite_add_tcase(s, tc);
    tc = tcase_create("reloaded");
    tcase_add_checked_fixture(tc, s_setup_retention_daily, s_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_shorter_interval_brings_retention_forward);
    tcase_add_test(tc, test_new_retention_holds_at_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
