/*
 * check_sdk_retry.c - a submission the broker refuses only for now stays in
 * the outbox and goes again.
 *
 * The broker answers REJECTED with REJECT_INTERNAL ("retry later") when it
 * could not check a message for duplicates because a store read failed.
 * That is no verdict on the message: the SDK must keep it in the outbox,
 * send the same message id again after a pause (never in a tight loop), and
 * report no rejection meanwhile. Any other refusal is final. The real
 * broker cannot be made to fail a read on cue, so a scripted broker (a
 * CURVE ROUTER with the broker's key) gives these answers: step by step in
 * the test's thread, or from a thread of its own while the test blocks in
 * ketenbus_client_submit(). A SUBMIT frame the broker drops unread (too
 * large after a reload lowered its limit) ends the session, so that the
 * outbox goes again within the limit in force, but never in a fast loop.
 * A final receipt reaches the submit that waits for it, however many
 * receipts for other messages the same read brings.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "kb_error.h"
#include "kb_fake.h"
#include "kb_test.h"
#include "kb_util.h"

#define KB_RETRY_FIRST_MS 500  /* the SDK's first pause before a retry (client.c) */
#define KB_SCRIPT_MAX     16   /* SUBMITs a scripted broker thread records */

static const char *s_agencies[] = {"politie", "fier"};
static kb_chain_t s_chain;
static kb_fake_t s_fake;

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, "", ""); /* keys only: no ketenbusd here */
    kb_fake_start(&s_fake, &s_chain);
}

static void s_teardown(void)
{
    kb_fake_stop(&s_fake);
    kb_chain_cleanup(&s_chain);
}

/* The client's next SUBMIT (one envelope); its message id goes to id. */
static Ketenbus__Frame *s_expect_submit(ketenbus_client_t *cl, uint8_t id[16], int timeout_ms)
{
    Ketenbus__Frame *f = kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_SUBMIT, timeout_ms);
    if (!f)
        return NULL;
    ck_assert_uint_eq(f->submit->n_envelopes, 1);
    ck_assert_uint_eq(f->submit->envelopes[0]->message_id.len, 16);
    memcpy(id, f->submit->envelopes[0]->message_id.data, 16);
    return f;
}

static ketenbus_client_t *s_welcomed_client(void)
{
    ketenbus_client_t *cl = kb_chain_client(&s_chain, "politie", NULL);
    Ketenbus__Frame *f = kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_HELLO, 5000);
    ck_assert_msg(f != NULL, "no HELLO within 5 s");
    uint64_t req = f->request_id;
    ketenbus__frame__free_unpacked(f, NULL);
    ck_assert_int_eq(kb_fake_welcome(&s_fake, "politie", req), KB_OK);
    for (int64_t end = kb_mono_ms() + 5000; !ketenbus_client_is_connected(cl) && kb_mono_ms() < end;)
        ketenbus_client_poll(cl, 10);
    ck_assert(ketenbus_client_is_connected(cl));
    return cl;
}

static void s_poll_for(ketenbus_client_t *cl, int ms)
{
    for (int64_t end = kb_mono_ms() + ms; kb_mono_ms() < end;)
        ketenbus_client_poll(cl, 10);
}

/* Refused for now, then accepted: the outbox keeps the entry until ACCEPTED,
 * the same id goes again after a pause, and only the final receipt counts. */
START_TEST(test_internal_then_accepted)
{
    ketenbus_client_t *cl = s_welcomed_client();
    ketenbus_msg_t *m = kb_test_signal("fier", "retried after a store error");
    ketenbus_receipt_t r;
    ck_assert_int_eq(ketenbus_client_submit(cl, m, &r, 0), KETENBUS_EPENDING);
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_NONE);

    uint8_t first[16], again[16];
    Ketenbus__Frame *f = s_expect_submit(cl, first, 5000);
    ck_assert_msg(f != NULL, "no SUBMIT within 5 s");
    ck_assert_int_eq(kb_fake_receipt(&s_fake, f->submit, KETENBUS__OUTCOME__OUTCOME_REJECTED,
                                     KETENBUS__REJECT_CODE__REJECT_INTERNAL, "store lookup failed; retry later"),
                     KB_OK);
    ketenbus__frame__free_unpacked(f, NULL);
    int64_t refused_at = kb_mono_ms();

    /* the refusal arrives and is no receipt: the entry stays */
    s_poll_for(cl, 100);
    ck_assert_uint_eq(ketenbus_client_outbox_size(cl), 1);
    ck_assert_ptr_null(ketenbus_client_last_receipt(cl));

    f = s_expect_submit(cl, again, 5000);
    ck_assert_msg(f != NULL, "the refused message was not sent again within 5 s");
    int64_t waited = kb_mono_ms() - refused_at;
    ck_assert_msg(waited >= KB_RETRY_FIRST_MS - 100, "sent again after %lld ms: no pause", (long long)waited);
    ck_assert_mem_eq(again, first, 16);
    ck_assert_uint_eq(ketenbus_client_outbox_size(cl), 1);
    ck_assert_ptr_null(ketenbus_client_last_receipt(cl));

    ck_assert_int_eq(kb_fake_receipt(&s_fake, f->submit, KETENBUS__OUTCOME__OUTCOME_ACCEPTED,
                                     KETENBUS__REJECT_CODE__REJECT_NONE, NULL),
                     KB_OK);
    ketenbus__frame__free_unpacked(f, NULL);
    ck_assert_int_eq(ketenbus_client_flush(cl, 5000), KETENBUS_OK);
    const ketenbus_receipt_t *last = ketenbus_client_last_receipt(cl);
    ck_assert_ptr_nonnull(last);
    ck_assert_int_eq(last->outcome, KETENBUS_OUTCOME_ACCEPTED);
    ck_assert_str_eq(last->message_id, ketenbus_msg_id(m));

    /* accepted: nothing goes again */
    ck_assert_ptr_null(kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_SUBMIT, 2 * KB_RETRY_FIRST_MS + 200));
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&cl);
}
END_TEST

/* Other refusals are final: the entry goes and is not sent again. */
START_TEST(test_final_refusal_not_retried)
{
    ketenbus_client_t *cl = s_welcomed_client();
    ketenbus_msg_t *m = kb_test_signal("fier", "refused for good");
    ck_assert_int_eq(ketenbus_client_submit(cl, m, NULL, 0), KETENBUS_EPENDING);
    uint8_t id[16];
    Ketenbus__Frame *f = s_expect_submit(cl, id, 5000);
    ck_assert_msg(f != NULL, "no SUBMIT within 5 s");
    ck_assert_int_eq(kb_fake_receipt(&s_fake, f->submit, KETENBUS__OUTCOME__OUTCOME_REJECTED,
                                     KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED, "no rule allows it"),
                     KB_OK);
    ketenbus__frame__free_unpacked(f, NULL);
    ck_assert_int_eq(ketenbus_client_flush(cl, 5000), KETENBUS_OK);
    const ketenbus_receipt_t *last = ketenbus_client_last_receipt(cl);
    ck_assert_ptr_nonnull(last);
    ck_assert_int_eq(last->outcome, KETENBUS_OUTCOME_REJECTED);
    ck_assert_int_eq(last->code, KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED);
    ck_assert_ptr_null(kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_SUBMIT, 2 * KB_RETRY_FIRST_MS + 200));
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&cl);
}
END_TEST

/* A receipt whose outcome the SDK does not know (here UNSPECIFIED) is no
 * decision: the entry stays in the outbox and goes again, and only a real
 * outcome answers it. */
START_TEST(test_unknown_outcome_is_no_receipt)
{
    ketenbus_client_t *cl = s_welcomed_client();
    ketenbus_msg_t *m = kb_test_signal("fier", "answered with an outcome nobody knows");
    ck_assert_int_eq(ketenbus_client_submit(cl, m, NULL, 0), KETENBUS_EPENDING);
    uint8_t first[16], again[16];
    Ketenbus__Frame *f = s_expect_submit(cl, first, 5000);
    ck_assert_msg(f != NULL, "no SUBMIT within 5 s");
    ck_assert_int_eq(kb_fake_receipt(&s_fake, f->submit, KETENBUS__OUTCOME__OUTCOME_UNSPECIFIED,
                                     KETENBUS__REJECT_CODE__REJECT_NONE, NULL),
                     KB_OK);
    ketenbus__frame__free_unpacked(f, NULL);
    s_poll_for(cl, 100);
    ck_assert_uint_eq(ketenbus_client_outbox_size(cl), 1);
    ck_assert_ptr_null(ketenbus_client_last_receipt(cl));
    f = s_expect_submit(cl, again, 5000);
    ck_assert_msg(f != NULL, "the unanswered message was not sent again within 5 s");
    ck_assert_mem_eq(again, first, 16);
    ck_assert_int_eq(kb_fake_receipt(&s_fake, f->submit, KETENBUS__OUTCOME__OUTCOME_ACCEPTED,
                                     KETENBUS__REJECT_CODE__REJECT_NONE, NULL),
                     KB_OK);
    ketenbus__frame__free_unpacked(f, NULL);
    ck_assert_int_eq(ketenbus_client_flush(cl, 5000), KETENBUS_OK);
    ck_assert_uint_eq(ketenbus_client_outbox_size(cl), 0);
    ck_assert_int_eq(ketenbus_client_last_receipt(cl)->outcome, KETENBUS_OUTCOME_ACCEPTED);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&cl);
}
END_TEST

/* A scripted broker on its own thread: WELCOMEs every HELLO, refuses the
 * first `refuse` SUBMITs for now and accepts the rest, recording ids. */
typedef struct {
    int refuse;                        /* SUBMITs to answer REJECT_INTERNAL */
    atomic_int stop;                   /* set by the test to end the thread */
    atomic_int n_submits;              /* SUBMITs seen */
    uint8_t ids[KB_SCRIPT_MAX][16];    /* their (single) message ids */
    int64_t at_ms[KB_SCRIPT_MAX];      /* when each came */
    int bad;                           /* a SUBMIT without exactly one envelope */
} s_script_t;

static void *s_script_run(void *arg)
{
    s_script_t *sc = arg;
    while (!atomic_load(&sc->stop)) {
        Ketenbus__Frame *f = kb_fake_recv(&s_fake, NULL, 20);
        if (!f)
            continue;
        if (f->body_case == KETENBUS__FRAME__BODY_HELLO) {
            kb_fake_welcome(&s_fake, "politie", f->request_id);
        } else if (f->body_case == KETENBUS__FRAME__BODY_SUBMIT) {
            int n = atomic_load(&sc->n_submits);
            if (f->submit->n_envelopes != 1 || f->submit->envelopes[0]->message_id.len != 16)
                sc->bad = 1;
            else if (n < KB_SCRIPT_MAX) {
                memcpy(sc->ids[n], f->submit->envelopes[0]->message_id.data, 16);
                sc->at_ms[n] = kb_mono_ms();
            }
            if (n < sc->refuse)
                kb_fake_receipt(&s_fake, f->submit, KETENBUS__OUTCOME__OUTCOME_REJECTED,
                                KETENBUS__REJECT_CODE__REJECT_INTERNAL, "store lookup failed; retry later");
            else
                kb_fake_receipt(&s_fake, f->submit, KETENBUS__OUTCOME__OUTCOME_ACCEPTED,
                                KETENBUS__REJECT_CODE__REJECT_NONE, NULL);
            atomic_store(&sc->n_submits, n + 1);
        }
        ketenbus__frame__free_unpacked(f, NULL);
    }
    return NULL;
}

/* A client of this thread, welcomed by the broker thread. */
static ketenbus_client_t *s_client_with(s_script_t *sc, pthread_t *th)
{
    ck_assert_int_eq(pthread_create(th, NULL, s_script_run, sc), 0);
    ketenbus_client_t *cl = kb_chain_client(&s_chain, "politie", NULL);
    for (int64_t end = kb_mono_ms() + 5000; !ketenbus_client_is_connected(cl) && kb_mono_ms() < end;)
        ketenbus_client_poll(cl, 10);
    ck_assert(ketenbus_client_is_connected(cl));
    return cl;
}

static void s_script_stop(s_script_t *sc, pthread_t th)
{
    atomic_store(&sc->stop, 1);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(sc->bad, 0);
}

/* A blocking submit waits through the retry and returns the final receipt. */
START_TEST(test_blocking_submit_gets_final_receipt)
{
    static s_script_t sc = {.refuse = 1};
    pthread_t th;
    ketenbus_client_t *cl = s_client_with(&sc, &th);
    ketenbus_msg_t *m = kb_test_signal("fier", "accepted on the second try");
    ketenbus_receipt_t r;
    int rc = ketenbus_client_submit(cl, m, &r, 5000);
    s_script_stop(&sc, th);
    ck_assert_msg(rc == KETENBUS_OK, "submit: %s (%s)", ketenbus_strerror(rc), ketenbus_last_error());
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_ACCEPTED);
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.message_id, ketenbus_msg_id(m));
    ck_assert_int_eq(atomic_load(&sc.n_submits), 2);
    ck_assert_mem_eq(sc.ids[1], sc.ids[0], 16);
    ck_assert_int_ge(sc.at_ms[1] - sc.at_ms[0], KB_RETRY_FIRST_MS - 100);
    ck_assert_uint_eq(ketenbus_client_outbox_size(cl), 0);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&cl);
}
END_TEST

/* While the broker keeps refusing for now, a blocking submit reports the
 * message as pending (never rejected), it stays in the outbox, and the
 * retries are spaced out: a few in the wait, not a flood. */
START_TEST(test_blocking_submit_pending_while_refused)
{
    static s_script_t sc = {.refuse = KB_SCRIPT_MAX};
    pthread_t th;
    ketenbus_client_t *cl = s_client_with(&sc, &th);
    ketenbus_msg_t *m = kb_test_signal("fier", "the store keeps failing");
    ketenbus_receipt_t r;
    int rc = ketenbus_client_submit(cl, m, &r, 1800);
    s_script_stop(&sc, th);
    ck_assert_int_eq(rc, KETENBUS_EPENDING);
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_NONE);
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.message_id, ketenbus_msg_id(m));
    ck_assert_uint_eq(ketenbus_client_outbox_size(cl), 1);
    ck_assert_ptr_null(ketenbus_client_last_receipt(cl));
    /* sent at 0, then after 0.5 s and 1 s more: three, give or take one */
    int n = atomic_load(&sc.n_submits);
    ck_assert_msg(n >= 2 && n <= 4, "%d SUBMITs in 1.8 s", n);
    for (int i = 1; i < n; i++) {
        ck_assert_mem_eq(sc.ids[i], sc.ids[0], 16);
        ck_assert_int_ge(sc.at_ms[i] - sc.at_ms[i - 1], KB_RETRY_FIRST_MS - 100);
    }
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&cl);
}
END_TEST

/* A frame the broker drops unread (ERROR_CODE_TOO_LARGE, request id 0)
 * leaves its SUBMIT without receipt: the SDK ends the session, so that a
 * new WELCOME tells the limit in force, and sends the outbox again. A
 * broker that goes on dropping everything is asked again less and less
 * often (at once, then after 1 s, 2 s, ...), not in a fast loop; the entry
 * stays in the outbox meanwhile. */
START_TEST(test_dropped_frame_restarts_with_backoff)
{
    ketenbus_client_t *cl = s_welcomed_client();
    ketenbus_msg_t *m = kb_test_signal("fier", "dropped by the broker every time");
    ck_assert_int_eq(ketenbus_client_submit(cl, m, NULL, 0), KETENBUS_EPENDING);
    int hellos = 0, submits = 0;
    for (int64_t end = kb_mono_ms() + 4500; kb_mono_ms() < end;) {
        Ketenbus__Frame *f = kb_fake_recv(&s_fake, cl, 20);
        if (!f)
            continue;
        if (f->body_case == KETENBUS__FRAME__BODY_HELLO) {
            hellos++;
            ck_assert_int_eq(kb_fake_welcome(&s_fake, "politie", f->request_id), KB_OK);
        } else if (f->body_case == KETENBUS__FRAME__BODY_SUBMIT) {
            submits++;
            Ketenbus__Error e;
            ketenbus__error__init(&e);
            e.code = KETENBUS__ERROR_CODE__ERROR_CODE_TOO_LARGE;
            e.message = (char *)"frame of 9999 bytes exceeds the limit of 4096";
            Ketenbus__Frame r;
            ketenbus__frame__init(&r);
            r.body_case = KETENBUS__FRAME__BODY_ERROR;
            r.error = &e;
            ck_assert_int_eq(kb_fake_send(&s_fake, &r), KB_OK);
        } else if (f->body_case == KETENBUS__FRAME__BODY_PING) {
            /* answered, so that no session ends for silence */
            ck_assert_int_eq(kb_fake_pong(&s_fake, f), KB_OK);
        }
        ketenbus__frame__free_unpacked(f, NULL);
    }
    /* restarts at about 0, 1 and 3 s: each sends the entry again */
    ck_assert_msg(hellos >= 2 && hellos <= 4, "%d HELLOs in 4.5 s", hellos);
    ck_assert_int_ge(submits, hellos);
    ck_assert_int_le(submits, hellos + 1);
    ck_assert_uint_eq(ketenbus_client_outbox_size(cl), 1);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&cl);
}
END_TEST

#define S_BACKLOG 1100 /* receipts of other messages around the awaited ones: more than 1024 */

/* Submit S_BACKLOG messages without waiting (in batches); their ids go
 * to ids. The SUBMITs are read and not answered. */
static void s_backlog(ketenbus_client_t *cl, uint8_t (*ids)[16])
{
    ketenbus_msg_t *batch[KETENBUS_BATCH_MAX];
    for (size_t at = 0; at < S_BACKLOG; at += KETENBUS_BATCH_MAX) {
        size_t n = S_BACKLOG - at < KETENBUS_BATCH_MAX ? S_BACKLOG - at : KETENBUS_BATCH_MAX;
        for (size_t i = 0; i < n; i++)
            batch[i] = kb_test_signal("fier", "backlog");
        ck_assert_int_eq(ketenbus_client_submit_batch(cl, batch, n, NULL, 0), KETENBUS_EPENDING);
        for (size_t i = 0; i < n; i++) {
            ck_assert_int_eq(kb_uuid_parse(ketenbus_msg_id(batch[i]), ids[at + i]), KB_OK);
            ketenbus_msg_destroy(&batch[i]);
        }
    }
    Ketenbus__Frame *f;
    while ((f = kb_fake_recv(&s_fake, cl, 300)) != NULL)
        ketenbus__frame__free_unpacked(f, NULL);
}

/* Send receipts for ids[0..n): REJECTED (not allowed) where rejected[i],
 * else ACCEPTED; in frames of KETENBUS_BATCH_MAX entries, as the broker
 * answers SUBMITs. */
static void s_receipts(uint8_t (*ids)[16], const int *rejected, size_t n)
{
    for (size_t at = 0; at < n; at += KETENBUS_BATCH_MAX) {
        size_t k = n - at < KETENBUS_BATCH_MAX ? n - at : KETENBUS_BATCH_MAX;
        Ketenbus__ReceiptEntry e[KETENBUS_BATCH_MAX], *ep[KETENBUS_BATCH_MAX];
        for (size_t i = 0; i < k; i++) {
            ketenbus__receipt_entry__init(&e[i]);
            e[i].message_id.data = ids[at + i];
            e[i].message_id.len = 16;
            int no = rejected && rejected[at + i];
            e[i].outcome = no ? KETENBUS__OUTCOME__OUTCOME_REJECTED : KETENBUS__OUTCOME__OUTCOME_ACCEPTED;
            e[i].code = no ? KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED : KETENBUS__REJECT_CODE__REJECT_NONE;
            e[i].reason = (char *)(no ? "no rule allows it" : "");
            ep[i] = &e[i];
        }
        Ketenbus__Receipt r;
        ketenbus__receipt__init(&r);
        r.n_entries = k;
        r.entries = ep;
        Ketenbus__Frame fr;
        ketenbus__frame__init(&fr);
        fr.version = 1;
        fr.body_case = KETENBUS__FRAME__BODY_RECEIPT;
        fr.receipt = &r;
        ck_assert_int_eq(kb_fake_send(&s_fake, &fr), KB_OK);
    }
}

/* The final refusal of a submitted message comes first in a read that
 * brings more than a thousand receipts of a backlog after it: submit
 * returns it (not "pending", which would say the message stays in the
 * outbox, which it left), and so does submit_batch, for the first of its
 * messages, with the second's acceptance after the backlog. */
START_TEST(test_final_refusal_among_many_receipts)
{
    static uint8_t ids[S_BACKLOG + 2][16];
    static int rejected[S_BACKLOG + 2];
    ketenbus_client_t *cl = s_welcomed_client();

    /* submit: its receipt, then the backlog's */
    s_backlog(cl, ids + 1);
    ketenbus_msg_t *m = kb_test_signal("fier", "refused for good");
    ck_assert_int_eq(ketenbus_msg_set(m, "message_id", "019ab4f1-2c80-7a3e-8d41-6f0b2c9e5d13"), KETENBUS_OK);
    ck_assert_int_eq(kb_uuid_parse("019ab4f1-2c80-7a3e-8d41-6f0b2c9e5d13", ids[0]), KB_OK);
    memset(rejected, 0, sizeof rejected);
    rejected[0] = 1;
    s_receipts(ids, rejected, S_BACKLOG + 1);
    usleep(300 * 1000); /* all of them wait before the client reads */
    ketenbus_receipt_t r;
    int rc = ketenbus_client_submit(cl, m, &r, 5000);
    ck_assert_msg(rc == KETENBUS_EREJECTED, "submit returned %d: %s", rc, ketenbus_last_error());
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_REJECTED);
    ck_assert_int_eq(r.code, KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED);
    ck_assert_str_eq(r.message_id, "019ab4f1-2c80-7a3e-8d41-6f0b2c9e5d13");
    ck_assert_uint_eq(ketenbus_client_outbox_size(cl), 0);
    ketenbus_msg_destroy(&m);

    /* submit_batch: the first one's receipt, the backlog's, the second one's */
    s_backlog(cl, ids + 1);
    ketenbus_msg_t *two[2] = {kb_test_signal("fier", "refused for good"), kb_test_signal("fier", "accepted")};
    ck_assert_int_eq(ketenbus_msg_set(two[0], "message_id", "019ab4f1-2c80-7a3e-8d41-6f0b2c9e5d14"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(two[1], "message_id", "019ab4f1-2c80-7a3e-8d41-6f0b2c9e5d15"), KETENBUS_OK);
    ck_assert_int_eq(kb_uuid_parse("019ab4f1-2c80-7a3e-8d41-6f0b2c9e5d14", ids[0]), KB_OK);
    ck_assert_int_eq(kb_uuid_parse("019ab4f1-2c80-7a3e-8d41-6f0b2c9e5d15", ids[S_BACKLOG + 1]), KB_OK);
    s_receipts(ids, rejected, S_BACKLOG + 2);
    usleep(300 * 1000);
    ketenbus_receipt_t rs[2];
    rc = ketenbus_client_submit_batch(cl, two, 2, rs, 5000);
    ck_assert_msg(rc == KETENBUS_EREJECTED, "submit_batch returned %d: %s", rc, ketenbus_last_error());
    ck_assert_int_eq(rs[0].outcome, KETENBUS_OUTCOME_REJECTED);
    ck_assert_int_eq(rs[1].outcome, KETENBUS_OUTCOME_ACCEPTED);
    ck_assert_uint_eq(ketenbus_client_outbox_size(cl), 0);
    const ketenbus_receipt_t *last = ketenbus_client_last_receipt(cl);
    ck_assert_ptr_nonnull(last);
    ck_assert_str_eq(last->message_id, "019ab4f1-2c80-7a3e-8d41-6f0b2c9e5d15");
    ketenbus_msg_destroy(&two[0]);
    ketenbus_msg_destroy(&two[1]);
    ketenbus_client_destroy(&cl);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("sdk_retry");
    TCase *tc = tcase_create("retry");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_internal_then_accepted);
    tcase_add_test(tc, test_final_refusal_not_retried);
    tcase_add_test(tc, test_unknown_outcome_is_no_receipt);
    tcase_add_test(tc, test_blocking_submit_gets_final_receipt);
    tcase_add_test(tc, test_blocking_submit_pending_while_refused);
    tcase_add_test(tc, test_dropped_frame_restarts_with_backoff);
    tcase_add_test(tc, test_final_refusal_among_many_receipts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
