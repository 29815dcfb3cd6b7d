/*
 * check_sdk_senders.c - the SDK tells messages of two senders apart that
 * carry the same message id, against a real ketenbusd.
 *
 * A sender may choose its own message_id (docs/JSON.md), and the broker
 * keeps ids per sender: two agencies that pick the same id send two
 * messages, and the broker accepts and delivers both. The SDK's filter of
 * redeliveries must key on the sender and the id as well; keyed on the id
 * alone it takes the second message for a redelivery of the first,
 * acknowledges it and drops it, and the message is gone for good. Covered
 * for each way the SDK can meet the second message: after the first was
 * acknowledged through recv, in the same poll as the first (handler), and
 * while the first still waits in the inbox.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "kb_test.h"

#define S_RULE_REST                                                                              \
    "    kinds: [signal]\n    purposes: [victim_care]\n    max_handling: h3\n"                   \
    "    legal_basis: Wpg art. 19\n"
#define S_SHARED_ID "019ab4f1-2c80-7a3e-8d41-6f0b2c9e5d13" /* chosen by both senders */

static const char *s_agencies[] = {"politie", "fier", "rvdk"};
static const char *s_rules = "  - id: politie-fier\n    from: [politie]\n    to: [fier]\n" S_RULE_REST
                             "  - id: rvdk-fier\n    from: [rvdk]\n    to: [fier]\n" S_RULE_REST;

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

/* As sender, submit a signal to fier with the shared id and narrative
 * "from <sender>"; the broker must accept it (not call it a duplicate). */
static void s_submit_shared(const char *sender)
{
    ketenbus_client_t *cl = kb_chain_client(&s_chain, sender, NULL);
    char text[64];
    snprintf(text, sizeof text, "from %s", sender);
    ketenbus_msg_t *m = kb_test_signal("fier", text);
    ck_assert_int_eq(ketenbus_msg_set(m, "message_id", S_SHARED_ID), KETENBUS_OK);
    ketenbus_receipt_t r;
    ck_assert_msg(ketenbus_client_submit(cl, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_ACCEPTED);
    ck_assert_str_eq(r.message_id, S_SHARED_ID);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&cl);
}

/* The narrative of m must be "from <its sender>"; returns the sender's bit
 * (1 politie, 2 rvdk). */
static int s_check(const ketenbus_msg_t *m)
{
    ck_assert_str_eq(ketenbus_msg_id(m), S_SHARED_ID);
    const char *sender = ketenbus_msg_sender(m);
    char *text = ketenbus_msg_get(m, "signal.narrative"), want[64];
    snprintf(want, sizeof want, "from %s", sender);
    ck_assert_str_eq(text, want);
    free(text);
    if (strcmp(sender, "politie") == 0)
        return 1;
    ck_assert_str_eq(sender, "rvdk");
    return 2;
}

/* The first message is received and acknowledged before the second is
 * sent: the second is no redelivery of the first. */
START_TEST(test_second_after_first_acknowledged)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    s_submit_shared("politie");
    ketenbus_msg_t *m = NULL;
    ck_assert_msg(ketenbus_client_recv(fier, &m, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ck_assert_int_eq(s_check(m), 1);
    ck_assert_int_eq(ketenbus_client_ack(fier, m), KETENBUS_OK);
    ketenbus_msg_destroy(&m);

    s_submit_shared("rvdk");
    ck_assert_msg(ketenbus_client_recv(fier, &m, 5000) == KETENBUS_OK, "rvdk's message did not arrive: %s",
                  ketenbus_last_error());
    ck_assert_int_eq(s_check(m), 2);
    ck_assert_int_eq(ketenbus_client_ack(fier, m), KETENBUS_OK);
    ketenbus_msg_destroy(&m);

    /* both acknowledged: a client started again on the same state gets
     * neither again */
    ketenbus_client_destroy(&fier);
    fier = kb_chain_client(&s_chain, "fier", NULL);
    ck_assert_int_eq(ketenbus_client_recv(fier, &m, 500), KETENBUS_ETIMEDOUT);
    ketenbus_client_destroy(&fier);
}
END_TEST

static int s_handled_mask;
static int s_handled_count;

static int s_handler(ketenbus_client_t *c, const ketenbus_msg_t *m, void *arg)
{
    (void)c;
    (void)arg;
    s_handled_mask |= s_check(m);
    s_handled_count++;
    return 0;
}

static int s_both_handled(void *arg)
{
    (void)arg;
    return s_handled_count >= 2;
}

/* Both wait at the broker before fier connects, so they come together and
 * the handler takes the second before the first's acknowledgement is
 * written. */
START_TEST(test_both_to_handler)
{
    s_submit_shared("politie");
    s_submit_shared("rvdk");
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    s_handled_mask = 0;
    s_handled_count = 0;
    ketenbus_client_set_handler(fier, s_handler, NULL);
    ck_assert_msg(kb_wait_until(fier, s_both_handled, NULL, 5000), "handled %d of 2 (senders 0x%x)",
                  s_handled_count, s_handled_mask);
    ck_assert_int_eq(s_handled_mask, 3);
    ketenbus_client_destroy(&fier);
    /* acknowledged: nothing comes again */
    fier = kb_chain_client(&s_chain, "fier", "-after");
    ketenbus_msg_t *m = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &m, 500), KETENBUS_ETIMEDOUT);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* Both wait at the broker; recv takes them one after the other without an
 * acknowledgement in between, so the second arrives while the first is
 * still in the inbox. */
START_TEST(test_both_through_inbox)
{
    s_submit_shared("politie");
    s_submit_shared("rvdk");
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_msg_t *a = NULL, *b = NULL;
    ck_assert_msg(ketenbus_client_recv(fier, &a, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ck_assert_msg(ketenbus_client_recv(fier, &b, 5000) == KETENBUS_OK, "the second sender's message: %s",
                  ketenbus_last_error());
    ck_assert_int_eq(s_check(a) | s_check(b), 3);
    ck_assert_int_eq(ketenbus_client_ack(fier, a), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_ack(fier, b), KETENBUS_OK);
    ketenbus_msg_destroy(&a);
    ketenbus_msg_destroy(&b);
    ketenbus_client_destroy(&fier);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("sdk_senders");
    TCase *tc = tcase_create("senders");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_second_after_first_acknowledged);
    tcase_add_test(tc, test_both_to_handler);
    tcase_add_test(tc, test_both_through_inbox);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
