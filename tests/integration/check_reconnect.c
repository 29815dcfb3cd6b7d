/*
 * check_reconnect.c - deliveries lost with a connection come again.
 *
 * ZeroMQ reconnects an adapter by itself and keeps its routing id, so the
 * broker's session goes on across the reconnect, while the frames the
 * broker had sent into the old connection are gone. Here the recipient
 * talks to the real broker through a TCP relay (tests/support/kb_proxy.c)
 * that holds the broker's DELIVERs and then cuts the connection: the SDK
 * must notice the new connection and say HELLO again, so that the broker
 * sends what was in flight once more.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "kb_proxy.h"
#include "kb_test.h"

static const char *s_agencies[] = {"politie", "fier"};
static const char *s_rules = "  - id: to-fier\n    from: [politie]\n    to: [fier]\n"
                             "    kinds: [signal]\n"
                             "    purposes: [victim_care, child_protection, criminal_investigation]\n"
                             "    max_handling: h3\n    legal_basis: Wpg art. 19\n";
static kb_chain_t s_chain;

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, s_rules, "");
    kb_chain_start(&s_chain);
}

static void s_teardown(void)
{
    kb_chain_cleanup(&s_chain);
}

static void s_submit(ketenbus_client_t *c, const char *text)
{
    ketenbus_receipt_t r;
    ketenbus_msg_t *m = kb_test_signal("fier", text);
    ck_assert_msg(ketenbus_client_submit(c, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_ACCEPTED);
    ketenbus_msg_destroy(&m);
}

/* Receive one message within 5 s, check its narrative is want, ack it. */
static void s_expect(ketenbus_client_t *c, const char *want)
{
    ketenbus_msg_t *m = NULL;
    ck_assert_msg(ketenbus_client_recv(c, &m, 5000) == KETENBUS_OK, "waiting for '%s': %s", want,
                  ketenbus_last_error());
    char *text = ketenbus_msg_get(m, "signal.narrative");
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, want);
    free(text);
    ck_assert_int_eq(ketenbus_client_ack(c, m), KETENBUS_OK);
    ketenbus_msg_destroy(&m);
}

START_TEST(test_deliveries_lost_with_a_connection_come_again)
{
    kb_proxy_t *px = kb_proxy_start(s_chain.endpoint);
    ck_assert_ptr_nonnull(px);
    /* fier connects through the relay, politie directly */
    char direct[sizeof s_chain.endpoint];
    snprintf(direct, sizeof direct, "%s", s_chain.endpoint);
    snprintf(s_chain.endpoint, sizeof s_chain.endpoint, "%s", kb_proxy_endpoint(px));
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    snprintf(s_chain.endpoint, sizeof s_chain.endpoint, "%s", direct);
    ketenbus_client_t *pol = kb_chain_client(&s_chain, "politie", NULL);

    s_submit(pol, "before the cut");
    s_expect(fier, "before the cut");
    ketenbus_client_poll(fier, 100); /* its ACK goes out */

    /* the broker sends these into a connection that will be cut */
    kb_proxy_hold(px, 1);
    s_submit(pol, "in flight, one");
    s_submit(pol, "in flight, two");
    ketenbus_msg_t *m = NULL;
    ck_assert_int_ne(ketenbus_client_recv(fier, &m, 300), KETENBUS_OK); /* held */
    ck_assert_ptr_null(m);
    kb_proxy_cut(px);

    /* the same client reconnects by itself; both come again, in order */
    s_expect(fier, "in flight, one");
    s_expect(fier, "in flight, two");
    s_submit(pol, "after the cut");
    s_expect(fier, "after the cut");
    ck_assert_int_ge(kb_chain_log_count(&s_chain, "session_opened"), 3);

    ketenbus_client_destroy(&pol);
    ketenbus_client_destroy(&fier);
    kb_proxy_stop(&px);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("reconnect");
    TCase *tc = tcase_create("reconnect");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_deliveries_lost_with_a_connection_come_again);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
