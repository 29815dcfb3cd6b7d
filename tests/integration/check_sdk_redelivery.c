/*
 * check_sdk_redelivery.c - the SDK hands a message to its handler once,
 * however often a broker delivers it.
 *
 * A broker may send an entry again: after a restart, or when a repeated
 * HELLO opens a new session while the first session's deliveries are still
 * being handled. Here a scripted broker (a CURVE ROUTER with the broker's
 * key, speaking the wire protocol) sends one message under three tags: two
 * in the same burst, before the SDK has acknowledged the first, and one
 * after. The handler must run once, and every tag must be acknowledged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <zmq.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_test.h"
#include "kb_util.h"
#include "sdk_internal.h"

static const char *s_agencies[] = {"politie", "fier"};
static kb_chain_t s_chain;
static void *s_ctx, *s_router;
static uint8_t s_rid[256];
static size_t s_rid_len;

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, "", ""); /* keys only: no ketenbusd here */
    char path[512], pub[KB_Z85_KEY_LEN + 1], sec[KB_Z85_KEY_LEN + 1];
    snprintf(path, sizeof path, "%s/broker.curve_secret", s_chain.keys);
    ck_assert_int_eq(kb_keys_load_curve_secret(path, pub, sec), KB_OK);
    s_ctx = zmq_ctx_new();
    s_router = zmq_socket(s_ctx, ZMQ_ROUTER);
    int one = 1, zero = 0;
    zmq_setsockopt(s_router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(s_router, ZMQ_CURVE_SECRETKEY, sec, KB_Z85_KEY_LEN);
    zmq_setsockopt(s_router, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_bind(s_router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof s_chain.endpoint;
    ck_assert_int_eq(zmq_getsockopt(s_router, ZMQ_LAST_ENDPOINT, s_chain.endpoint, &len), 0);
    s_rid_len = 0;
}

static void s_teardown(void)
{
    zmq_close(s_router);
    zmq_ctx_term(s_ctx);
    kb_chain_cleanup(&s_chain);
}

/* The next frame from the client within timeout_ms, polling the client
 * meanwhile so it does its network work; NULL on timeout. */
static Ketenbus__Frame *s_recv(ketenbus_client_t *cl, int timeout_ms)
{
    int64_t deadline = kb_mono_ms() + timeout_ms;
    while (kb_mono_ms() < deadline) {
        ketenbus_client_poll(cl, 5);
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, s_router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            continue;
        }
        ck_assert(zmq_msg_more(&rid));
        ck_assert_uint_le(zmq_msg_size(&rid), sizeof s_rid);
        s_rid_len = zmq_msg_size(&rid);
        memcpy(s_rid, zmq_msg_data(&rid), s_rid_len);
        zmq_msg_close(&rid);
        zmq_msg_init(&body);
        ck_assert_int_ge(zmq_msg_recv(&body, s_router, 0), 0);
        Ketenbus__Frame *f = NULL;
        ck_assert_int_eq(kb_frame_decode(zmq_msg_data(&body), zmq_msg_size(&body), 1u << 20, &f), KB_OK);
        zmq_msg_close(&body);
        return f;
    }
    return NULL;
}

/* The next frame of body_case (others, like PING, are skipped). */
static Ketenbus__Frame *s_expect(ketenbus_client_t *cl, int body_case)
{
    int64_t deadline = kb_mono_ms() + 5000;
    while (kb_mono_ms() < deadline) {
        Ketenbus__Frame *f = s_recv(cl, 200);
        if (f && (int)f->body_case == body_case)
            return f;
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
    }
    ck_abort_msg("no frame of case %d from the client within 5 s", body_case);
    return NULL;
}

static void s_send(Ketenbus__Frame *f)
{
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(kb_frame_encode(f, &buf, &len), KB_OK);
    ck_assert_int_eq(zmq_send(s_router, s_rid, s_rid_len, ZMQ_SNDMORE), (int)s_rid_len);
    ck_assert_int_eq(zmq_send(s_router, buf, len, 0), (int)len);
    free(buf);
}

static void s_welcome(uint64_t request_id)
{
    Ketenbus__Welcome w;
    ketenbus__welcome__init(&w);
    w.broker_id = (char *)"scripted";
    w.agency = (char *)"fier";
    w.ping_interval_ms = 1000;
    w.max_message_bytes = 1u << 20;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.version = 1;
    f.request_id = request_id; /* the HELLO's: the SDK checks it */
    f.body_case = KETENBUS__FRAME__BODY_WELCOME;
    f.welcome = &w;
    s_send(&f);
}

/* One DELIVER frame carrying env under each of the n tags. */
static void s_deliver(Ketenbus__Envelope *env, const uint64_t *tags, size_t n)
{
    Ketenbus__Delivery d[4], *dp[4];
    ck_assert_uint_le(n, 4);
    for (size_t i = 0; i < n; i++) {
        ketenbus__delivery__init(&d[i]);
        d[i].tag = tags[i];
        d[i].envelope = env;
        dp[i] = &d[i];
    }
    Ketenbus__Deliver del;
    ketenbus__deliver__init(&del);
    del.n_deliveries = n;
    del.deliveries = dp;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.version = 1;
    f.body_case = KETENBUS__FRAME__BODY_DELIVER;
    f.deliver = &del;
    s_send(&f);
}

/* Collect ACKed tags from the client until `want` tags came (within 5 s). */
static size_t s_acked(ketenbus_client_t *cl, uint64_t *tags, size_t want)
{
    size_t n = 0;
    while (n < want) {
        Ketenbus__Frame *f = s_expect(cl, KETENBUS__FRAME__BODY_ACK);
        for (size_t i = 0; i < f->ack->n_tags && n < want; i++)
            tags[n++] = f->ack->tags[i];
        ketenbus__frame__free_unpacked(f, NULL);
    }
    return n;
}

static int s_handled;

static int s_handler(ketenbus_client_t *c, const ketenbus_msg_t *m, void *arg)
{
    (void)c;
    (void)arg;
    char *text = ketenbus_msg_get(m, "signal.narrative");
    ck_assert_str_eq(text, "delivered three times");
    free(text);
    s_handled++;
    return 0;
}

static int s_tag_in(const uint64_t *tags, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++)
        if (tags[i] == tag)
            return 1;
    return 0;
}

START_TEST(test_same_message_three_tags)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_client_set_handler(fier, s_handler, NULL);
    s_handled = 0;
    Ketenbus__Frame *hello = s_expect(fier, KETENBUS__FRAME__BODY_HELLO);
    s_welcome(hello->request_id);
    ketenbus__frame__free_unpacked(hello, NULL);

    /* the message as a broker would deliver it (signed by politie) */
    ketenbus_msg_t *m = kb_test_signal("fier", "delivered three times");
    static const uint8_t id[16] = {0x01, 0x89, 0x0a, 0x5d, 0xac, 0x96, 0x77, 0x4b,
                                   0xbc, 0xce, 0xb3, 0x02, 0x09, 0x9a, 0x80, 0x57};
    kb_test_sign_as(&s_chain, m, "politie", id);

    /* two tags in one burst: the second arrives before the first's ACK */
    const uint64_t first[] = {7, 8};
    s_deliver(m->env, first, 2);
    uint64_t tags[3];
    s_acked(fier, tags, 2);
    ck_assert_int_eq(s_handled, 1);
    ck_assert(s_tag_in(tags, 2, 7) && s_tag_in(tags, 2, 8));

    /* and once more, later (a new session after a restart would do this) */
    const uint64_t again[] = {9};
    s_deliver(m->env, again, 1);
    s_acked(fier, tags + 2, 1);
    ck_assert_uint_eq(tags[2], 9);
    ck_assert_int_eq(s_handled, 1);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&fier);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("sdk_redelivery");
    TCase *tc = tcase_create("redelivery");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_same_message_three_tags);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
