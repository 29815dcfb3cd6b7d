/*
 * check_valgrind.c - the broker's normal run and shutdown leak nothing.
 *
 * Runs ketenbusd under valgrind's leak checker through a small exchange
 * (session, submit, delivery, ACK, a refusal, a malformed frame) and a
 * SIGTERM shutdown; valgrind's exit status 9 means errors or leaks. Not
 * built with SANITIZE=1, where ASan already watches every test.
 */
#include <stdio.h>
#include <stdlib.h>

#include <check.h>

#include "kb_test.h"

/* What each test rule says besides id, from, to and kinds. */
#define S_RULE_REST                                                                                  \
    "    purposes: [victim_care, child_protection, criminal_investigation]\n    max_handling: h3\n" \
    "    legal_basis: Wpg art. 19\n"

static const char *s_agencies[] = {"politie", "fier"};

START_TEST(test_broker_under_valgrind)
{
    kb_chain_t c;
    kb_chain_init(&c, s_agencies, 2,
                  "  - id: fier-politie\n    from: [fier]\n    to: [politie]\n    kinds: [signal]\n" S_RULE_REST, "");
    c.valgrind = 1;
    kb_chain_start(&c);
    ketenbus_client_t *fier = kb_chain_client(&c, "fier", NULL);
    ketenbus_client_t *politie = kb_chain_client(&c, "politie", NULL);
    ketenbus_msg_t *m = kb_test_signal("politie", "under valgrind");
    ck_assert_msg(ketenbus_client_submit(fier, m, NULL, 20000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    m = kb_test_signal("fier", "refused: no rule politie -> fier");
    ck_assert_int_eq(ketenbus_client_submit(politie, m, NULL, 20000), KETENBUS_EREJECTED);
    ketenbus_msg_destroy(&m);
    ck_assert_msg(ketenbus_client_recv(politie, &m, 20000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ck_assert_int_eq(ketenbus_client_ack(politie, m), KETENBUS_OK);
    ketenbus_msg_destroy(&m);
    ketenbus_client_poll(politie, 300);
    ketenbus_client_destroy(&fier);
    ketenbus_client_destroy(&politie);
    int status = kb_chain_stop(&c);
    ck_assert_msg(status == 0, "ketenbusd under valgrind exited %d (9: errors or leaks); see %s", status, c.log);
    kb_chain_cleanup(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("valgrind");
    TCase *tc = tcase_create("valgrind");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_broker_under_valgrind);
    suite_add_tcase(s, tc);
    return kb_test_run(s);
}
