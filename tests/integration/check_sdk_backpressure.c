/*
 * check_sdk_backpressure.c - what the SDK does when ZeroMQ cannot take a
 * frame now, against a real ketenbusd.
 *
 * zmq_send() with ZMQ_DONTWAIT fails with EAGAIN when the connection's
 * queue is full (a slow or stalled broker) or, with ZMQ_IMMEDIATE, while
 * no connection is up. Nothing that was to go out may be forgotten then:
 * acknowledgements and the credit they return are sent at a later poll
 * (credit lost is never given back, and deliveries stop once it is all
 * gone), and the outbox goes on from the first entry that did not go out,
 * not from its start. And no ACK frame carries more tags than the broker
 * takes, however many pile up. Filling a real queue depends on socket buffer sizes,
 * so this file puts its own zmq_send() in front of libzmq's (found with
 * dlsym(RTLD_NEXT), as tests/support/faults does for write()) that fails
 * the clients' frames with EAGAIN on cue and records what the DEALER
 * sockets do send. The broker is the real one. Also: an adapter that does
 * not read for a while keeps its session.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <zmq.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_test.h"
#include "kb_util.h"
#include "sdk_internal.h"

#define S_RULE_REST                                                                              \
    "    kinds: [signal]\n    purposes: [victim_care]\n    max_handling: h3\n"                   \
    "    legal_basis: Wpg art. 19\n"
#define S_RECORD_MAX  4096                  /* tags and message ids recorded */
#define S_DECODE_MAX  (64u * 1024u * 1024u) /* largest client frame decoded here */

static const char *s_agencies[] = {"politie", "fier"};
static const char *s_rules = "  - id: politie-fier\n    from: [politie]\n    to: [fier]\n" S_RULE_REST;
static kb_chain_t s_chain;

/* ------------------------------------------------ zmq_send on cue */

static int s_refuse_ack;      /* ACK frames still to fail with EAGAIN */
static int s_refuse_credit;   /* CREDIT frames still to fail with EAGAIN */
static int s_submit_pass;     /* SUBMIT frames to let through before failing them */
static int s_refuse_submit;   /* 1: fail SUBMIT frames (after s_submit_pass) */
static int s_submit_refused;  /* SUBMIT frames failed */
static int s_undecodable;     /* client frames the codec refuses (the broker would too) */
static uint64_t s_acked[S_RECORD_MAX];   /* tags of ACK frames that went out */
static size_t s_n_acked;                 /* count */
static uint8_t s_sent[S_RECORD_MAX][16]; /* ids of envelopes in SUBMITs that went out */
static size_t s_n_sent;                  /* count */

static void s_reset(void)
{
    s_refuse_ack = s_refuse_credit = s_submit_pass = s_refuse_submit = s_submit_refused = 0;
    s_undecodable = 0;
    s_n_acked = s_n_sent = 0;
}

/* 1 to let the frame go, 0 to fail it with EAGAIN; records what goes. */
static int s_pass(const void *buf, size_t len)
{
    Ketenbus__Frame *f = NULL;
    if (kb_frame_decode(buf, len, S_DECODE_MAX, &f) != KB_OK) {
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
        s_undecodable++;
        return 1;
    }
    int pass = 1;
    if (f->body_case == KETENBUS__FRAME__BODY_ACK && s_refuse_ack > 0) {
        s_refuse_ack--;
        pass = 0;
    } else if (f->body_case == KETENBUS__FRAME__BODY_CREDIT && s_refuse_credit > 0) {
        s_refuse_credit--;
        pass = 0;
    } else if (f->body_case == KETENBUS__FRAME__BODY_SUBMIT && s_refuse_submit) {
        if (s_submit_pass > 0) {
            s_submit_pass--;
        } else {
            s_submit_refused++;
            pass = 0;
        }
    }
    if (pass && f->body_case == KETENBUS__FRAME__BODY_ACK)
        for (size_t i = 0; i < f->ack->n_tags && s_n_acked < S_RECORD_MAX; i++)
            s_acked[s_n_acked++] = f->ack->tags[i];
    if (pass && f->body_case == KETENBUS__FRAME__BODY_SUBMIT)
        for (size_t i = 0; i < f->submit->n_envelopes && s_n_sent < S_RECORD_MAX; i++)
            memcpy(s_sent[s_n_sent++], f->submit->envelopes[i]->message_id.data, 16);
    ketenbus__frame__free_unpacked(f, NULL);
    return pass;
}

int zmq_send(void *s, const void *buf, size_t len, int flags)
{
    static int (*real)(void *, const void *, size_t, int);
    if (!real)
        real = (int (*)(void *, const void *, size_t, int))dlsym(RTLD_NEXT, "zmq_send");
    int type = 0;
    size_t type_len = sizeof type;
    if (zmq_getsockopt(s, ZMQ_TYPE, &type, &type_len) == 0 && type == ZMQ_DEALER && !s_pass(buf, len)) {
        errno = EAGAIN;
        return -1;
    }
    return real(s, buf, len, flags);
}

/* ------------------------------------------------------------ tests */

static void s_setup(void)
{
    s_reset();
    kb_chain_init(&s_chain, s_agencies, 2, s_rules, "");
    kb_chain_start(&s_chain);
}

static void s_teardown(void)
{
    kb_chain_cleanup(&s_chain);
}

/* politie sends n signals to fier; all accepted. */
static void s_send_signals(size_t n)
{
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *msgs[KETENBUS_BATCH_MAX];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < KETENBUS_BATCH_MAX ? n - done : KETENBUS_BATCH_MAX;
        for (size_t i = 0; i < k; i++) {
            char text[32];
            snprintf(text, sizeof text, "signal %zu", done + i);
            msgs[i] = kb_test_signal("fier", text);
        }
        ck_assert_msg(ketenbus_client_submit_batch(politie, msgs, k, NULL, 10000) == KETENBUS_OK, "%s",
                      ketenbus_last_error());
        for (size_t i = 0; i < k; i++)
            ketenbus_msg_destroy(&msgs[i]);
        done += k;
    }
    ketenbus_client_destroy(&politie);
}

static int s_is_acked(uint64_t tag)
{
    for (size_t i = 0; i < s_n_acked; i++)
        if (s_acked[i] == tag)
            return 1;
    return 0;
}

typedef struct {
    const uint64_t *tags; /* tags that must be acknowledged */
    size_t n;             /* count */
} s_tags_t;

static int s_all_acked(void *arg)
{
    const s_tags_t *t = arg;
    for (size_t i = 0; i < t->n; i++)
        if (!s_is_acked(t->tags[i]))
            return 0;
    return 1;
}

/* With a credit of 2, the first ACK and then the first CREDIT cannot go
 * out at once. Both must go later: forgetting them would leave the broker
 * with no credit for fier, and deliveries would stop. */
START_TEST(test_ack_and_credit_sent_later)
{
    enum { N = 10 };
    s_send_signals(N);
    ketenbus_client_t *fier = kb_chain_client_credit(&s_chain, "fier", NULL, 2);
    s_refuse_ack = 1;
    s_refuse_credit = 1;
    uint64_t tags[N];
    for (size_t i = 0; i < N; i++) {
        ketenbus_msg_t *m = NULL;
        ck_assert_msg(ketenbus_client_recv(fier, &m, 5000) == KETENBUS_OK, "message %zu of %d: %s", i, N,
                      ketenbus_last_error());
        tags[i] = m->tag;
        ck_assert_int_eq(ketenbus_client_ack(fier, m), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    ck_assert_int_eq(s_refuse_ack, 0);
    ck_assert_int_eq(s_refuse_credit, 0);
    s_tags_t want = {tags, N};
    ck_assert_msg(kb_wait_until(fier, s_all_acked, &want, 5000), "a tag was never acknowledged");
    ck_assert_int_eq(s_undecodable, 0);
    ketenbus_client_destroy(&fier);
}
END_TEST

static uint64_t s_taken[S_RECORD_MAX]; /* tags the handler took */
static size_t s_n_taken;               /* count */

static int s_take(ketenbus_client_t *c, const ketenbus_msg_t *m, void *arg)
{
    (void)c;
    (void)arg;
    if (s_n_taken < S_RECORD_MAX)
        s_taken[s_n_taken++] = m->tag;
    return 0;
}

static int s_taken_all(void *arg)
{
    return s_n_taken >= *(const size_t *)arg;
}

/* More deliveries are acknowledged at once than one ACK frame may carry
 * (KB_MAX_BATCH tags: the broker refuses a longer frame as malformed):
 * here they pile up while ACKs cannot go, as they also do when one poll
 * reads more than KB_MAX_BATCH deliveries. They must go in several frames. */
START_TEST(test_ack_frames_within_limit)
{
    size_t n = KB_MAX_BATCH + 76;
    s_send_signals(n);
    ketenbus_client_t *fier = kb_chain_client_credit(&s_chain, "fier", NULL, 2 * KB_MAX_BATCH);
    s_n_taken = 0;
    ketenbus_client_set_handler(fier, s_take, NULL);
    s_refuse_ack = 1 << 30;
    ck_assert_msg(kb_wait_until(fier, s_taken_all, &n, 20000), "took %zu of %zu", s_n_taken, n);
    ck_assert_uint_eq(s_n_acked, 0);
    s_refuse_ack = 0;
    s_tags_t want = {s_taken, n};
    ck_assert_msg(kb_wait_until(fier, s_all_acked, &want, 5000), "%zu tags acknowledged of %zu, %d frames refused",
                  s_n_acked, n, s_undecodable);
    ck_assert_int_eq(s_undecodable, 0);
    ketenbus_client_destroy(&fier);
}
END_TEST

static int s_id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* A batch goes out, the next two cannot: once frames go again, the outbox
 * is sent from the first entry that did not go, so nothing is sent twice
 * in one session. */
START_TEST(test_outbox_goes_on_where_it_stopped)
{
    enum { BATCHES = 3, N = BATCHES * KETENBUS_BATCH_MAX };
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    for (int64_t end = kb_mono_ms() + 5000; !ketenbus_client_is_connected(politie) && kb_mono_ms() < end;)
        ketenbus_client_poll(politie, 10);
    ck_assert(ketenbus_client_is_connected(politie));
    s_submit_pass = 1;
    s_refuse_submit = 1;
    for (int b = 0; b < BATCHES; b++) {
        ketenbus_msg_t *msgs[KETENBUS_BATCH_MAX];
        for (size_t i = 0; i < KETENBUS_BATCH_MAX; i++)
            msgs[i] = kb_test_signal("fier", "sent once");
        /* timeout 0: stored, and no poll that could send the rest */
        ck_assert_int_eq(ketenbus_client_submit_batch(politie, msgs, KETENBUS_BATCH_MAX, NULL, 0),
                         KETENBUS_EPENDING);
        for (size_t i = 0; i < KETENBUS_BATCH_MAX; i++)
            ketenbus_msg_destroy(&msgs[i]);
    }
    ck_assert_int_eq(s_n_sent, KETENBUS_BATCH_MAX);
    ck_assert_int_gt(s_submit_refused, 0);
    s_refuse_submit = 0;
    ck_assert_msg(ketenbus_client_flush(politie, 10000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ck_assert_uint_eq(s_n_sent, N);
    qsort(s_sent, s_n_sent, sizeof s_sent[0], s_id_cmp);
    for (size_t i = 1; i < s_n_sent; i++)
        ck_assert_msg(memcmp(s_sent[i - 1], s_sent[i], 16) != 0, "a message was sent twice");
    ketenbus_client_destroy(&politie);
}
END_TEST

/* A receiving adapter that does not poll for a while (a slow handler, a
 * busy process) with a credit of 400, while 400 signals of 16 KB reach it
 * one broker turn at a time, each in a DELIVER frame of its own: libzmq
 * keeps reading the connection for it, so the broker's send limit is not
 * reached and its session is not ended. (With a receive queue of three
 * frames, the broker gave up on the session as unreachable.) */
START_TEST(test_paused_receiver_keeps_its_session)
{
    enum { S_N = 400, S_TEXT = 16000 };
    s_reset();
    ketenbus_client_t *fier = kb_chain_client_credit(&s_chain, "fier", NULL, S_N);
    for (int64_t end = kb_mono_ms() + 5000; !ketenbus_client_is_connected(fier) && kb_mono_ms() < end;)
        ketenbus_client_poll(fier, 10);
    ck_assert(ketenbus_client_is_connected(fier));
    ketenbus_client_t *politie = kb_chain_client_credit(&s_chain, "politie", NULL, 0);
    char *text = malloc(S_TEXT + 1);
    ck_assert_ptr_nonnull(text);
    memset(text, 'x', S_TEXT);
    text[S_TEXT] = '\0';
    for (int i = 0; i < S_N; i++) {
        ketenbus_msg_t *m = kb_test_signal("fier", text);
        ck_assert_msg(ketenbus_client_submit(politie, m, NULL, 10000) == KETENBUS_OK, "%s", ketenbus_last_error());
        ketenbus_msg_destroy(&m);
    }
    free(text);
    int got = 0;
    for (ketenbus_msg_t *m = NULL; ketenbus_client_recv(fier, &m, 5000) == KETENBUS_OK; got++) {
        ck_assert_int_eq(ketenbus_client_ack(fier, m), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    ketenbus_client_destroy(&politie);
    ketenbus_client_destroy(&fier);
    ck_assert_int_eq(got, S_N);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "peer unreachable"), 0);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("sdk_backpressure");
    TCase *tc = tcase_create("backpressure");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ack_and_credit_sent_later);
    tcase_add_test(tc, test_outbox_goes_on_where_it_stopped);
    tcase_add_test(tc, test_ack_frames_within_limit);
    tcase_add_test(tc, test_paused_receiver_keeps_its_session);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
