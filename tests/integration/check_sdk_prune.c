/*
 * check_sdk_prune.c - the SDK forgets acknowledged messages once the broker
 * can no longer deliver them again, and only then; and it takes no
 * delivery older than what it remembers.
 *
 * The state directory records every acknowledged delivery (r<sender>\0<id>,
 * with the time of the acknowledgement) so that a redelivery is dropped. The
 * broker delivers a message again only while it is queued, at most its
 * message_ttl, which WELCOME tells; a genuine message may be up to twice
 * that old: records older than twice the TTL and a day's
 * margin go, and so do the s<id:16> records of earlier SDK versions, which
 * are never read. Against the real broker: its WELCOME tells the TTL and
 * the old records go while younger ones stay. Against a scripted broker: a
 * redelivery of a message acknowledged within the TTL is still dropped,
 * one whose record expired is handed over, and a broker that tells no TTL
 * (older ones) makes the SDK keep everything. A delivery created before
 * the records kept (a replay the records can no longer reveal), or far
 * ahead of the agency's clock, stays queued and is not handed over, also
 * when a broker tells a longer TTL after the records went.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <openssl/evp.h>

#include "kb_error.h"
#include "kb_fake.h"
#include "kb_keys.h"
#include "kb_ldb.h"
#include "kb_seal.h"
#include "kb_test.h"
#include "kb_util.h"
#include "sdk_internal.h"

#define S_HOUR_US (3600LL * 1000000)
#define S_DAY_US  (24 * S_HOUR_US)
#define S_OLD     1500 /* expired records: more than one pruning step */
#define S_YOUNG   20   /* records within the TTL (or its margin) */

static const char *s_agencies[] = {"politie", "fier"};
static kb_chain_t s_chain;
static kb_fake_t s_fake;
static int s_pruned;   /* event=seen_pruned lines logged */
static int s_handled;  /* messages handed to the handler */
static char s_last[64]; /* narrative of the last one */
static int s_queued;   /* deliveries refused and left queued (event=delivery_refused) */
static char s_why[1024]; /* the last such line */

static void s_log(int level, const char *line, void *arg)
{
    (void)arg;
    if (strstr(line, "event=seen_pruned"))
        s_pruned++;
    if (strstr(line, "event=delivery_refused")) {
        ck_assert_int_eq(level, 0); /* an error, not a detail */
        ck_assert_msg(strstr(line, "action=left_queued") != NULL, "%s", line);
        snprintf(s_why, sizeof s_why, "%s", line);
        s_queued++;
    }
}

static int s_handler(ketenbus_client_t *c, const ketenbus_msg_t *m, void *arg)
{
    (void)c;
    (void)arg;
    char *text = ketenbus_msg_get(m, "signal.narrative");
    snprintf(s_last, sizeof s_last, "%s", text ? text : "");
    free(text);
    s_handled++;
    return 0;
}

static void s_state_path(char *out, size_t len)
{
    snprintf(out, len, "%s/state-fier/state.ldb", s_chain.dir);
}

static void s_put(kb_ldb_t *l, const void *k, size_t kl, const void *v, size_t vl)
{
    char *err = NULL;
    leveldb_put(l->db, l->wo, k, kl, v, vl, &err);
    ck_assert_ptr_null(err);
}

/* The id of politie's message (a, b): {a, b >> 8, b, 0...}, with the
 * version and variant bits of a UUIDv7. */
static void s_id(uint8_t id[16], uint8_t a, unsigned b)
{
    memset(id, 0, 16);
    id[0] = a;
    id[1] = (uint8_t)(b >> 8);
    id[2] = (uint8_t)b;
    id[6] = 0x70;
    id[8] = 0x80;
}

/* A seen record of politie's message (a, b) acknowledged at when_us. */
static void s_seen_at(kb_ldb_t *l, uint8_t a, unsigned b, int64_t when_us)
{
    uint8_t k[1 + 8 + 16] = "rpolitie", v[8];
    s_id(k + 9, a, b);
    kb_be64_put(v, (uint64_t)when_us);
    s_put(l, k, sizeof k, v, sizeof v);
}

/* fier's state as an agency has it after years: expired records (a = 1),
 * records within the margin (a = 2) and within the TTL (a = 3), and
 * records of the old layout. */
static void s_seed_state(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/state-fier", s_chain.dir);
    ck_assert_int_eq(kb_mkdirs(path, 0700), KB_OK);
    s_state_path(path, sizeof path);
    kb_ldb_t l;
    leveldb_options_t *o = leveldb_options_create();
    leveldb_options_set_create_if_missing(o, 1);
    char *err = NULL;
    leveldb_t *db = leveldb_open(o, path, &err); /* create it */
    ck_assert_ptr_null(err);
    leveldb_close(db);
    leveldb_options_destroy(o);
    kb_ldb_open(&l, path);
    int64_t now = kb_now_us();
    for (unsigned i = 0; i < S_OLD; i++) {
        s_seen_at(&l, 1, i, now - 30 * S_DAY_US);
        uint8_t legacy[17] = {'s'};
        s_id(legacy + 1, 1, i);
        s_put(&l, legacy, sizeof legacy, "\0\0\0\0\0\0\0\0", 8);
    }
    for (unsigned i = 0; i < S_YOUNG; i++) {
        s_seen_at(&l, 2, i, now - 20 * S_HOUR_US);
        s_seen_at(&l, 3, i, now - 60LL * 1000000);
    }
    kb_ldb_close(&l);
}

static ketenbus_client_t *s_client(void)
{
    char state[512];
    snprintf(state, sizeof state, "%s/state-fier", s_chain.dir);
    ketenbus_client_opts_t *o = ketenbus_client_opts_new();
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(ketenbus_client_opts_set_agency(o, "fier", s_chain.keys), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_broker(o, s_chain.endpoint, s_chain.broker_cert), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_state_dir(o, state), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_ping_interval(o, 200), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_log(o, s_log, NULL), KETENBUS_OK);
    ketenbus_client_t *cl = ketenbus_client_new(o);
    ketenbus_client_opts_destroy(&o);
    ck_assert_msg(cl != NULL, "client: %s", ketenbus_last_error());
    ketenbus_client_set_handler(cl, s_handler, NULL);
    s_pruned = s_handled = s_queued = 0;
    s_last[0] = s_why[0] = '\0';
    return cl;
}

static int s_pass_done(void *arg)
{
    (void)arg;
    return s_pruned > 0;
}

static size_t s_count(char prefix)
{
    char path[512];
    s_state_path(path, sizeof path);
    return kb_ldb_count_prefix(path, prefix);
}

/* ------------------------------------------------------------ real broker */

static void s_setup_broker(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, "", "  message_ttl: 1h\n");
    kb_chain_start(&s_chain);
    s_seed_state();
}

static void s_teardown_broker(void)
{
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    kb_chain_cleanup(&s_chain);
}

/* The broker's WELCOME says message_ttl: 1h. Records acknowledged 30 days
 * ago go, a few steps at a time, and so do the old-layout ones; records of
 * 20 hours ago (within the day's margin) and of a minute ago stay. */
START_TEST(test_broker_ttl_prunes)
{
    ketenbus_client_t *fier = s_client();
    ck_assert_msg(kb_wait_until(fier, s_pass_done, NULL, 10000), "no pass over the seen records within 10 s");
    ketenbus_client_destroy(&fier);
    ck_assert_uint_eq(s_count('r'), 2 * S_YOUNG);
    ck_assert_uint_eq(s_count('s'), 0);
}
END_TEST

/* ------------------------------------------------------------ scripted broker */

static void s_setup_fake(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, "", ""); /* keys only: no ketenbusd here */
    kb_fake_start(&s_fake, &s_chain);
    s_seed_state();
}

static void s_teardown_fake(void)
{
    kb_fake_stop(&s_fake);
    kb_chain_cleanup(&s_chain);
}

/* Answer cl's HELLO with a WELCOME telling ttl_us (0: none, as older
 * brokers). */
static void s_welcome(ketenbus_client_t *cl, uint64_t ttl_us)
{
    Ketenbus__Frame *hello = kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_HELLO, 5000);
    ck_assert_ptr_nonnull(hello);
    Ketenbus__Welcome w;
    ketenbus__welcome__init(&w);
    w.broker_id = (char *)"scripted";
    w.agency = (char *)"fier";
    w.ping_interval_ms = 1000;
    w.max_message_bytes = 1u << 20;
    w.message_ttl_us = ttl_us;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.version = 1;
    f.request_id = hello->request_id;
    f.body_case = KETENBUS__FRAME__BODY_WELCOME;
    f.welcome = &w;
    ck_assert_int_eq(kb_fake_send(&s_fake, &f), KB_OK);
    ketenbus__frame__free_unpacked(hello, NULL);
    int64_t end = kb_mono_ms() + 5000;
    while (!ketenbus_client_is_connected(cl) && kb_mono_ms() < end)
        ketenbus_client_poll(cl, 50);
    ck_assert(ketenbus_client_is_connected(cl));
}

/* Deliver politie's message (a, b) under tag and wait for its ACK. */
static void s_redeliver(ketenbus_client_t *cl, uint8_t a, uint8_t b, const char *narrative, uint64_t tag)
{
    uint8_t id[16];
    s_id(id, a, b);
    ketenbus_msg_t *m = kb_test_signal("fier", narrative);
    kb_test_sign_as(&s_chain, m, "politie", id);
    ck_assert_int_eq(kb_fake_deliver(&s_fake, &m->env, &tag, 1), KB_OK);
    Ketenbus__Frame *ack = kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_ACK, 5000);
    ck_assert_ptr_nonnull(ack);
    ck_assert_uint_eq(ack->ack->n_tags, 1);
    ck_assert_uint_eq(ack->ack->tags[0], tag);
    ketenbus__frame__free_unpacked(ack, NULL);
    ketenbus_msg_destroy(&m);
}

/* Deliver politie's message (a, b), created at created_us, under tag. */
static void s_deliver_created(uint8_t a, uint8_t b, const char *narrative, uint64_t tag, int64_t created_us)
{
    uint8_t id[16];
    s_id(id, a, b);
    ketenbus_msg_t *m = kb_test_signal("fier", narrative);
    kb_test_sign_as(&s_chain, m, "politie", id);
    m->env->created_us = created_us;
    char path[512];
    snprintf(path, sizeof path, "%s/politie.sign.pem", s_chain.keys);
    EVP_PKEY *key = kb_keys_load_sign_private(path);
    ck_assert_ptr_nonnull(key);
    ck_assert_int_eq(kb_seal_sign(m->env, key), KB_OK);
    EVP_PKEY_free(key);
    ck_assert_int_eq(kb_fake_deliver(&s_fake, &m->env, &tag, 1), KB_OK);
    ketenbus_msg_destroy(&m);
}

/* The delivery of tag is refused, not handed over and not acknowledged
 * (it stays queued at the broker, which expires it), for a reason that
 * says `about`. */
static void s_expect_queued(ketenbus_client_t *cl, uint64_t tag, const char *about)
{
    int queued = s_queued, handled = s_handled;
    for (int64_t end = kb_mono_ms() + 5000; s_queued == queued && kb_mono_ms() < end;)
        ketenbus_client_poll(cl, 10);
    ck_assert_msg(s_queued == queued + 1, "delivery %llu was not refused", (unsigned long long)tag);
    ck_assert_int_eq(s_handled, handled);
    ck_assert_msg(strstr(s_why, about) != NULL, "%s", s_why);
    for (int64_t end = kb_mono_ms() + 300; kb_mono_ms() < end;) {
        Ketenbus__Frame *f = kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_ACK, 50);
        for (size_t i = 0; f && i < f->ack->n_tags; i++)
            ck_assert_msg(f->ack->tags[i] != tag, "the refused delivery %llu was acknowledged",
                          (unsigned long long)tag);
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
    }
}

/* The delivery of tag is handed over (and acknowledged), its narrative
 * narrative. */
static void s_expect_handled(ketenbus_client_t *cl, uint64_t tag, const char *narrative)
{
    int handled = s_handled;
    Ketenbus__Frame *ack = kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_ACK, 5000);
    ck_assert_ptr_nonnull(ack);
    ck_assert_uint_eq(ack->ack->n_tags, 1);
    ck_assert_uint_eq(ack->ack->tags[0], tag);
    ketenbus__frame__free_unpacked(ack, NULL);
    ck_assert_int_eq(s_handled, handled + 1);
    ck_assert_str_eq(s_last, narrative);
}

/* A broker telling a TTL of 14 days: a genuine message written 400 days
 * ago is not taken, nor one dated 10 minutes ahead of the agency's clock;
 * one written 20 days ago (the broker takes a message until its TTL after
 * it was written, and then keeps it queued for as long) is. */
START_TEST(test_old_and_future_deliveries_stay_queued)
{
    ketenbus_client_t *fier = s_client();
    s_welcome(fier, (uint64_t)(14 * S_DAY_US));
    int64_t now = kb_now_us();
    s_deliver_created(4, 1, "written last year", 21, now - 400 * S_DAY_US);
    s_expect_queued(fier, 21, "may be a replay");
    s_deliver_created(4, 2, "written in ten minutes", 22, now + 600LL * 1000000);
    s_expect_queued(fier, 22, "ahead of this system's clock");
    s_deliver_created(4, 3, "written 20 days ago", 23, now - 20 * S_DAY_US);
    s_expect_handled(fier, 23, "written 20 days ago");
    ketenbus_client_destroy(&fier);
}
END_TEST

/* politie's message (1, 5), acknowledged 30 days ago, whose record a pass
 * with a TTL of an hour deleted, is replayed as it was (written 30 days
 * ago): it is not taken, and neither after a WELCOME that tells a TTL of
 * a year, since that does not bring the record back. A message written
 * after the records that went is taken under that TTL. */
START_TEST(test_replay_after_pruning_refused)
{
    ketenbus_client_t *fier = s_client();
    s_welcome(fier, (uint64_t)S_HOUR_US);
    ck_assert_msg(kb_wait_until(fier, s_pass_done, NULL, 10000), "no pass over the seen records within 10 s");
    int64_t written = kb_now_us() - 30 * S_DAY_US - 60LL * 1000000;
    s_deliver_created(1, 5, "acknowledged 30 days ago", 31, written);
    s_expect_queued(fier, 31, "may be a replay");
    s_welcome(fier, (uint64_t)(365 * S_DAY_US)); /* the session starts again for the refused one */
    s_deliver_created(1, 5, "acknowledged 30 days ago", 32, written);
    s_expect_queued(fier, 32, "may be a replay");
    s_deliver_created(5, 1, "written 29 days ago", 33, kb_now_us() - 29 * S_DAY_US);
    s_expect_handled(fier, 33, "written 29 days ago");
    ketenbus_client_destroy(&fier);
}
END_TEST

/* After a pass with a TTL of an hour: the message acknowledged a minute ago
 * comes again and is acknowledged and dropped; the one of 30 days ago,
 * which the broker cannot hold any more, is no longer known. */
START_TEST(test_redelivery_within_ttl_dropped)
{
    ketenbus_client_t *fier = s_client();
    s_welcome(fier, (uint64_t)S_HOUR_US);
    ck_assert_msg(kb_wait_until(fier, s_pass_done, NULL, 10000), "no pass over the seen records within 10 s");
    s_redeliver(fier, 3, 5, "acknowledged a minute ago", 11);
    ck_assert_int_eq(s_handled, 0);
    s_redeliver(fier, 2, 5, "acknowledged 20 hours ago", 12);
    ck_assert_int_eq(s_handled, 0);
    s_redeliver(fier, 1, 5, "acknowledged 30 days ago", 13);
    ck_assert_int_eq(s_handled, 1);
    ck_assert_str_eq(s_last, "acknowledged 30 days ago");
    ketenbus_client_destroy(&fier);
    ck_assert_uint_eq(s_count('s'), 0);
}
END_TEST

/* A broker that tells no TTL may hold a message for any time: nothing
 * goes, and the old message is still dropped. */
START_TEST(test_no_ttl_keeps_all)
{
    ketenbus_client_t *fier = s_client();
    s_welcome(fier, 0);
    s_redeliver(fier, 1, 5, "acknowledged 30 days ago", 13);
    ketenbus_client_poll(fier, 300); /* a step would have run by now */
    ck_assert_int_eq(s_handled, 0);
    ck_assert_int_eq(s_pruned, 0);
    ketenbus_client_destroy(&fier);
    ck_assert_uint_eq(s_count('r'), S_OLD + 2 * S_YOUNG);
    ck_assert_uint_eq(s_count('s'), S_OLD);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("sdk_prune");
    TCase *tc = tcase_create("broker");
    tcase_add_checked_fixture(tc, s_setup_broker, s_teardown_broker);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_broker_ttl_prunes);
    suite_add_tcase(s, tc);
    tc = tcase_create("scripted");
    tcase_add_checked_fixture(tc, s_setup_fake, s_teardown_fake);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_redelivery_within_ttl_dropped);
    tcase_add_test(tc, test_no_ttl_keeps_all);
    tcase_add_test(tc, test_old_and_future_deliveries_stay_queued);
    tcase_add_test(tc, test_replay_after_pruning_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
