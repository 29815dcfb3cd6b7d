/*
 * check_sdk_batch.c - ketenbus_client_submit_batch() against a real ketenbusd.
 *
 * A batch is stored with one synced outbox write and answered with one
 * receipt per message, in order. Covers: all accepted and delivered in
 * order; one refused among accepted ones; an invalid message refusing the
 * whole batch before anything is stored; a batch written while the broker
 * is down and sent when it comes up; the argument limits; a backlog larger
 * than one frame the broker takes (also after a reload raised the limit,
 * which takes effect only at a restart, and after a reload lowered it
 * under a connected client), and a message larger than that alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <signal.h>
#include <unistd.h>

#include "kb_error.h"
#include "kb_test.h"
#include "kb_util.h"

#define S_RULE_REST                                                                              \
    "    kinds: [signal]\n    purposes: [victim_care]\n    max_handling: h3\n"                   \
    "    legal_basis: Wpg art. 19\n"

static const char *s_agencies[] = {"politie", "fier", "rvdk"};
static const char *s_rules = "  - id: politie-fier\n    from: [politie]\n    to: [fier]\n" S_RULE_REST;

static kb_chain_t s_chain;

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 3, s_rules, "");
    kb_chain_start(&s_chain);
}

static void s_teardown(void)
{
    kb_chain_cleanup(&s_chain);
}

/* n signals "batch 0".."batch n-1" to recipient. */
static void s_make(ketenbus_msg_t **msgs, size_t n, const char *recipient)
{
    for (size_t i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof text, "batch %zu", i);
        msgs[i] = kb_test_signal(recipient, text);
    }
}

static void s_free(ketenbus_msg_t **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ketenbus_msg_destroy(&msgs[i]);
}

/* fier receives n signals "batch 0".."batch n-1" in that order. */
static void s_expect_delivered(size_t n)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    for (size_t i = 0; i < n; i++) {
        ketenbus_msg_t *m = NULL;
        ck_assert_msg(ketenbus_client_recv(fier, &m, 5000) == KETENBUS_OK, "message %zu: %s", i,
                      ketenbus_last_error());
        char *text = ketenbus_msg_get(m, "signal.narrative"), want[32];
        snprintf(want, sizeof want, "batch %zu", i);
        ck_assert_str_eq(text, want);
        free(text);
        ck_assert_int_eq(ketenbus_client_ack(fier, m), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    ketenbus_msg_t *extra = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &extra, 300), KETENBUS_ETIMEDOUT);
    ketenbus_client_destroy(&fier);
}

START_TEST(test_batch_accepted_in_order)
{
    enum { N = 200 };
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *msgs[N];
    ketenbus_receipt_t rs[N];
    s_make(msgs, N, "fier");
    ck_assert_msg(ketenbus_client_submit_batch(politie, msgs, N, rs, 10000) == KETENBUS_OK, "%s",
                  ketenbus_last_error());
    for (size_t i = 0; i < N; i++) {
        ck_assert_int_eq(rs[i].outcome, KETENBUS_OUTCOME_ACCEPTED);
        ck_assert_str_eq(rs[i].message_id, ketenbus_msg_id(msgs[i]));
        ck_assert_str_eq(rs[i].recipients, "fier");
        if (i > 0)
            ck_assert_uint_gt(rs[i].audit_index, rs[i - 1].audit_index);
    }
    ck_assert_uint_eq(ketenbus_client_outbox_size(politie), 0);
    /* the same messages again: the broker knows their ids */
    ck_assert_int_eq(ketenbus_client_submit_batch(politie, msgs, N, rs, 10000), KETENBUS_OK);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(rs[i].outcome, KETENBUS_OUTCOME_DUPLICATE);
    /* and one alone: answered by its new receipt, not by the first one */
    ketenbus_receipt_t r;
    ck_assert_int_eq(ketenbus_client_submit(politie, msgs[0], &r, 5000), KETENBUS_OK);
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_DUPLICATE);
    s_free(msgs, N);
    ketenbus_client_destroy(&politie);
    s_expect_delivered(N);
}
END_TEST

START_TEST(test_batch_one_refused)
{
    enum { N = 5 };
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *msgs[N];
    ketenbus_receipt_t rs[N];
    s_make(msgs, N, "fier");
    ketenbus_msg_destroy(&msgs[2]);
    msgs[2] = kb_test_signal("rvdk", "batch 2"); /* no rule allows it */
    ck_assert_int_eq(ketenbus_client_submit_batch(politie, msgs, N, rs, 5000), KETENBUS_EREJECTED);
    ck_assert_ptr_nonnull(strstr(ketenbus_last_error(), "1 of 5 rejected"));
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(rs[i].outcome, i == 2 ? KETENBUS_OUTCOME_REJECTED : KETENBUS_OUTCOME_ACCEPTED);
    ck_assert_str_ne(rs[2].reason, "");
    s_free(msgs, N);
    ketenbus_client_destroy(&politie);
    /* fier gets the four others, still in order */
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    const char *want[] = {"batch 0", "batch 1", "batch 3", "batch 4"};
    for (size_t i = 0; i < 4; i++) {
        ketenbus_msg_t *m = NULL;
        ck_assert_int_eq(ketenbus_client_recv(fier, &m, 5000), KETENBUS_OK);
        char *text = ketenbus_msg_get(m, "signal.narrative");
        ck_assert_str_eq(text, want[i]);
        free(text);
        ck_assert_int_eq(ketenbus_client_ack(fier, m), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    ketenbus_client_destroy(&fier);
}
END_TEST

START_TEST(test_batch_invalid_stores_nothing)
{
    enum { N = 4 };
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *msgs[N];
    s_make(msgs, N, "fier");
    ketenbus_msg_destroy(&msgs[3]);
    msgs[3] = ketenbus_msg_new(KETENBUS_KIND_SIGNAL); /* no recipients, purpose, ... */
    ck_assert_int_eq(ketenbus_client_submit_batch(politie, msgs, N, NULL, 2000), KETENBUS_EINVAL);
    ck_assert_msg(strstr(ketenbus_last_error(), "message 3") && strstr(ketenbus_last_error(), "nothing was stored"),
                  "%s", ketenbus_last_error());
    ck_assert_uint_eq(ketenbus_client_outbox_size(politie), 0);
    /* without the bad one the rest goes through */
    ck_assert_int_eq(ketenbus_client_submit_batch(politie, msgs, 3, NULL, 5000), KETENBUS_OK);
    s_free(msgs, N);
    ketenbus_client_destroy(&politie);
    s_expect_delivered(3);
}
END_TEST

START_TEST(test_batch_while_broker_down)
{
    enum { N = 50 };
    kb_chain_pin_port(&s_chain);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *msgs[N];
    ketenbus_receipt_t rs[N];
    s_make(msgs, N, "fier");
    ck_assert_int_eq(ketenbus_client_submit_batch(politie, msgs, N, rs, 200), KETENBUS_EPENDING);
    for (size_t i = 0; i < N; i++) {
        ck_assert_int_eq(rs[i].outcome, KETENBUS_OUTCOME_NONE);
        ck_assert_str_eq(rs[i].message_id, ketenbus_msg_id(msgs[i]));
    }
    ck_assert_uint_eq(ketenbus_client_outbox_size(politie), N);
    /* the outbox survives the adapter's restart too */
    ketenbus_client_destroy(&politie);
    kb_chain_start(&s_chain);
    politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_uint_eq(ketenbus_client_outbox_size(politie), N);
    ck_assert_int_eq(ketenbus_client_flush(politie, 10000), KETENBUS_OK);
    s_free(msgs, N);
    ketenbus_client_destroy(&politie);
    s_expect_delivered(N);
}
END_TEST

START_TEST(test_batch_limits)
{
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *one = kb_test_signal("fier", "batch 0");
    ck_assert_int_eq(ketenbus_client_submit_batch(politie, &one, 0, NULL, 0), KETENBUS_EINVAL);
    ck_assert_int_eq(ketenbus_client_submit_batch(NULL, &one, 1, NULL, 0), KETENBUS_EINVAL);
    ck_assert_int_eq(ketenbus_client_submit_batch(politie, NULL, 1, NULL, 0), KETENBUS_EINVAL);
    ketenbus_msg_t **many = calloc(KETENBUS_BATCH_MAX + 1, sizeof *many);
    ck_assert_ptr_nonnull(many);
    for (size_t i = 0; i <= KETENBUS_BATCH_MAX; i++)
        many[i] = one;
    ck_assert_int_eq(ketenbus_client_submit_batch(politie, many, KETENBUS_BATCH_MAX + 1, NULL, 0), KETENBUS_EINVAL);
    ck_assert_ptr_nonnull(strstr(ketenbus_last_error(), "at most"));
    free(many);
    ck_assert_uint_eq(ketenbus_client_outbox_size(politie), 0);
    ketenbus_msg_destroy(&one);
    ketenbus_client_destroy(&politie);
}
END_TEST

/* politie submits n signals of 40 KiB each in one batch (n <= 80); all
 * must be accepted within timeout_ms and leave the outbox. */
static void s_submit_large_batch(size_t n, int timeout_ms)
{
    static char big[40 * 1024 + 1];
    memset(big, 'x', sizeof big - 1);
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *msgs[80];
    ketenbus_receipt_t rs[80];
    ck_assert_uint_le(n, 80);
    for (size_t i = 0; i < n; i++)
        msgs[i] = kb_test_signal("fier", big);
    ck_assert_msg(ketenbus_client_submit_batch(politie, msgs, n, rs, timeout_ms) == KETENBUS_OK, "%s",
                  ketenbus_last_error());
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(rs[i].outcome, KETENBUS_OUTCOME_ACCEPTED);
    ck_assert_uint_eq(ketenbus_client_outbox_size(politie), 0);
    s_free(msgs, n);
    ketenbus_client_destroy(&politie);
}

/* 40 messages of 40 KiB each are far under the broker's 1 MiB frame
 * limit one by one, but not together: the SDK sends them in as many
 * SUBMIT frames as that limit needs, and all are accepted. */
START_TEST(test_batch_larger_than_a_frame)
{
    s_submit_large_batch(40, 10000);
}
END_TEST

/* A reload raises max_message_bytes from 1 MiB to 8 MiB. libzmq's limit on
 * the broker's socket was set at start and stays, so the broker goes on
 * telling 1 MiB (and logs that the rest needs a restart): a backlog of
 * 3.2 MB still goes, in frames the socket takes. */
START_TEST(test_batch_after_reload_raised_the_limit)
{
    char *cfg = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_file_read(s_chain.config, 1u << 20, &cfg, &len), KB_OK);
    const char *at = strstr(cfg, "agencies:");
    ck_assert_ptr_nonnull(at);
    char *raised = NULL;
    ck_assert_int_gt(asprintf(&raised, "%.*s  max_message_bytes: 8388608\n%s", (int)(at - cfg), cfg, at), 0);
    kb_chain_write_config(&s_chain, raised);
    free(raised);
    free(cfg);
    ck_assert_int_eq(kill(s_chain.pid, SIGHUP), 0);
    for (int64_t end = kb_mono_ms() + 10000;
         kb_chain_log_count(&s_chain, "event=rules_loaded") < 1 && kb_mono_ms() < end;)
        usleep(20000);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=rules_loaded"), 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "max_message_bytes above 1048576 needs a restart"), 1);
    s_submit_large_batch(80, 15000);
}
END_TEST

/* With a broker that takes frames of at most 4 KiB, a message of 8 KiB is
 * refused at submit once the client knows the limit, with nothing stored;
 * stored before the client knew it, it is answered REJECT_TOO_LARGE when
 * it would be sent, and leaves the outbox instead of waiting for ever. */
START_TEST(test_message_larger_than_the_broker_takes)
{
    kb_chain_cleanup(&s_chain);
    kb_chain_init(&s_chain, s_agencies, 3, s_rules, "  max_message_bytes: 4096\n");
    kb_chain_start(&s_chain);
    static char big[8 * 1024 + 1];
    memset(big, 'x', sizeof big - 1);
    ketenbus_receipt_t r;
    /* a client that does not know the limit yet: stored, then rejected */
    ketenbus_client_t *early = kb_chain_client(&s_chain, "politie", "-early");
    ketenbus_msg_t *m = kb_test_signal("fier", big);
    ck_assert_int_eq(ketenbus_client_submit(early, m, &r, 0), KETENBUS_EPENDING);
    ck_assert_uint_eq(ketenbus_client_outbox_size(early), 1);
    ck_assert_msg(ketenbus_client_flush(early, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    const ketenbus_receipt_t *last = ketenbus_client_last_receipt(early);
    ck_assert_ptr_nonnull(last);
    ck_assert_int_eq(last->outcome, KETENBUS_OUTCOME_REJECTED);
    ck_assert_int_eq(last->code, 6); /* REJECT_TOO_LARGE */
    ck_assert_ptr_nonnull(strstr(last->reason, "at most 4096 bytes"));
    /* a small one still goes */
    ketenbus_msg_t *small = kb_test_signal("fier", "small");
    ck_assert_int_eq(ketenbus_client_submit(early, small, &r, 5000), KETENBUS_OK);
    /* now it knows: refused at once, nothing stored */
    ck_assert_int_eq(ketenbus_client_submit(early, m, &r, 0), KETENBUS_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(ketenbus_last_error(), "at most 4096"));
    ck_assert_uint_eq(ketenbus_client_outbox_size(early), 0);
    ketenbus_msg_destroy(&m);
    ketenbus_msg_destroy(&small);
    ketenbus_client_destroy(&early);
}
END_TEST

/* A reload lowers max_message_bytes from 64 KiB to 4 KiB while a client
 * is connected: it still knows the limit of its WELCOME, and sends a batch
 * of ten messages of about 1 KiB and one of 6 KiB in one frame, which the
 * broker drops unread (ERROR_CODE_TOO_LARGE). The client starts its
 * session again, learns the new limit, and sends the ten again in frames
 * within it; the large one it answers itself (REJECT_TOO_LARGE), once, and
 * the broker refuses no more frames. */
START_TEST(test_batch_after_reload_lowered_the_limit)
{
    kb_chain_cleanup(&s_chain);
    kb_chain_init(&s_chain, s_agencies, 3, s_rules, "  max_message_bytes: 65536\n");
    kb_chain_start(&s_chain);
    ketenbus_client_t *pol = kb_chain_client(&s_chain, "politie", NULL);
    for (int64_t end = kb_mono_ms() + 5000; !ketenbus_client_is_connected(pol) && kb_mono_ms() < end;)
        ketenbus_client_poll(pol, 20);
    ck_assert(ketenbus_client_is_connected(pol));

    char *cfg = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_file_read(s_chain.config, 1u << 20, &cfg, &len), KB_OK);
    char *at = strstr(cfg, "max_message_bytes: 65536");
    ck_assert_ptr_nonnull(at);
    char *lowered = NULL;
    ck_assert_int_gt(asprintf(&lowered, "%.*smax_message_bytes: 4096%s", (int)(at - cfg), cfg,
                              at + strlen("max_message_bytes: 65536")),
                     0);
    kb_chain_write_config(&s_chain, lowered);
    free(lowered);
    free(cfg);
    ck_assert_int_eq(kill(s_chain.pid, SIGHUP), 0);
    for (int64_t end = kb_mono_ms() + 10000;
         kb_chain_log_count(&s_chain, "event=rules_loaded") < 1 && kb_mono_ms() < end;)
        usleep(20000);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=rules_loaded"), 1);

    enum { N = 11, BIG = 5 };
    ketenbus_msg_t *msgs[N];
    static char text[600], big[6 * 1024];
    memset(text, 'x', sizeof text - 1);
    memset(big, 'y', sizeof big - 1);
    for (size_t i = 0; i < N; i++)
        msgs[i] = kb_test_signal("fier", i == BIG ? big : text);
    ketenbus_receipt_t r[N];
    int rc = ketenbus_client_submit_batch(pol, msgs, N, r, 15000);
    ck_assert_msg(rc == KETENBUS_EREJECTED, "rc %d: %s", rc, ketenbus_last_error());
    for (size_t i = 0; i < N; i++) {
        if (i == BIG) {
            ck_assert_int_eq(r[i].outcome, KETENBUS_OUTCOME_REJECTED);
            ck_assert_int_eq(r[i].code, 6); /* REJECT_TOO_LARGE */
            ck_assert_ptr_nonnull(strstr(r[i].reason, "at most 4096 bytes"));
        } else {
            ck_assert_msg(r[i].outcome == KETENBUS_OUTCOME_ACCEPTED, "message %zu: outcome %d", i,
                          (int)r[i].outcome);
        }
    }
    ck_assert_uint_eq(ketenbus_client_outbox_size(pol), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "exceeds the limit"), 1);
    s_free(msgs, N);
    ketenbus_client_destroy(&pol);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("sdk_batch");
    TCase *tc = tcase_create("batch");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_batch_accepted_in_order);
    tcase_add_test(tc, test_batch_one_refused);
    tcase_add_test(tc, test_batch_invalid_stores_nothing);
    tcase_add_test(tc, test_batch_while_broker_down);
    tcase_add_test(tc, test_batch_limits);
    tcase_add_test(tc, test_batch_larger_than_a_frame);
    tcase_add_test(tc, test_batch_after_reload_raised_the_limit);
    tcase_add_test(tc, test_message_larger_than_the_broker_takes);
    tcase_add_test(tc, test_batch_after_reload_lowered_the_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
