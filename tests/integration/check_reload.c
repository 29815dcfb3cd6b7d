/*
 * check_reload.c - reloading the rules of a running broker.
 *
 * SIGHUP and `ketenbus reload` put a new configuration in force for messages
 * submitted after it, while a client keeps submitting: no message is lost,
 * earlier messages keep the old decision, later ones get the new. A broken
 * file is refused and the broker goes on serving with the old rules.
 * `ketenbus status` shows the running broker.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <check.h>

#include "kb_test.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"

static const char *s_agencies[] = {"politie", "fier"};
/* What each test rule says besides id, from, to and kinds. */
#define S_RULE_REST                                                                                  \
    "    purposes: [victim_care, child_protection, criminal_investigation]\n    max_handling: h3\n" \
    "    legal_basis: Wpg art. 19\n"

static const char *s_rules_open =
    "  - id: politie-fier\n    from: [politie]\n    to: [fier]\n    kinds: [signal]\n" S_RULE_REST;
static const char *s_rules_closed =
    "  - id: fier-politie\n    from: [fier]\n    to: [politie]\n    kinds: [signal]\n" S_RULE_REST;
static kb_chain_t s_chain;
static char s_out[16384];

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, s_rules_open, "");
    kb_chain_start(&s_chain);
    kb_chain_pin_port(&s_chain);
}

static void s_teardown(void)
{
    kb_chain_cleanup(&s_chain);
}

static int s_cli(const char *args)
{
    const char *build = getenv("KB_BUILD");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/ketenbus' %s --data '%s/data' > '%s/cli.out' 2>&1", build ? build : "build", args,
             s_chain.dir, s_chain.dir);
    int st = system(cmd);
    char path[512], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/cli.out", s_chain.dir);
    s_out[0] = '\0';
    if (kb_file_read(path, sizeof s_out - 1, &text, &len) == 0) {
        memcpy(s_out, text, len + 1);
        free(text);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int s_submit(ketenbus_client_t *c, int i)
{
    char text[64];
    snprintf(text, sizeof text, "message %d", i);
    ketenbus_msg_t *m = kb_test_signal("fier", text);
    ketenbus_receipt_t r;
    int rc = ketenbus_client_submit(c, m, &r, 5000);
    ketenbus_msg_destroy(&m);
    ck_assert_msg(rc == KETENBUS_OK || rc == KETENBUS_EREJECTED, "message %d: %s", i, ketenbus_last_error());
    return rc == KETENBUS_OK;
}

START_TEST(test_reload_under_load)
{
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    int accepted = 0;
    for (int i = 0; i < 50; i++) { /* old rules: all allowed */
        ck_assert_int_eq(s_submit(politie, i), 1);
        accepted++;
    }
    kb_chain_set_rules(&s_chain, s_rules_closed);
    kill(s_chain.pid, SIGHUP);
    /* keep submitting while the reload happens */
    int window = 0;
    int64_t deadline = kb_mono_ms() + 10000;
    while (kb_chain_log_count(&s_chain, "event=rules_loaded") < 1 && kb_mono_ms() < deadline) {
        accepted += s_submit(politie, 100 + window);
        window++;
    }
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=rules_loaded"), 1);
    for (int i = 0; i < 30; i++) /* new rules: politie may no longer send to fier */
        ck_assert_int_eq(s_submit(politie, 200 + i), 0);
    ck_assert_int_eq(ketenbus_client_outbox_size(politie), 0);
    ketenbus_client_destroy(&politie);

    /* every accepted message arrives, nothing else */
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    int got = 0;
    ketenbus_msg_t *m = NULL;
    while (ketenbus_client_recv(fier, &m, 1500) == KETENBUS_OK) {
        ck_assert_int_eq(ketenbus_client_ack(fier, m), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
        got++;
    }
    ck_assert_int_eq(got, accepted);
    ck_assert_int_ge(accepted, 50);
    ketenbus_client_destroy(&fier);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    /* start-up load plus one reload, with the file's hash and who asked */
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, "SIGHUP from pid"), 1);
}
END_TEST

START_TEST(test_broken_file_keeps_old_rules)
{
    ck_assert_int_eq(s_cli("status"), 0);
    ck_assert_msg(strstr(s_out, "politie") && strstr(s_out, "fier") && strstr(s_out, "offline"), "%s", s_out);
    kb_chain_write_config(&s_chain, "broker:\n  listen: [this is not\n");
    ck_assert_int_eq(s_cli("reload"), 1);
    ck_assert_msg(strstr(s_out, "chain.yaml:") != NULL, "no file:line in: %s", s_out);
    kill(s_chain.pid, SIGHUP);
    int64_t deadline = kb_mono_ms() + 5000;
    while (kb_chain_log_count(&s_chain, "event=reload_refused") < 2 && kb_mono_ms() < deadline)
        ;
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=reload_refused"), 2);
    /* the old rules still apply */
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_int_eq(s_submit(politie, 1), 1);
    ketenbus_client_destroy(&politie);
    /* a good file again: reload through the admin socket */
    kb_chain_set_rules(&s_chain, s_rules_closed);
    ck_assert_int_eq(s_cli("reload"), 0);
    ck_assert_msg(strstr(s_out, "reloaded: sha256") != NULL, "%s", s_out);
    politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_int_eq(s_submit(politie, 2), 0);
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(s_cli("status --json"), 0);
    ck_assert_msg(strstr(s_out, "\"queued\":1") != NULL, "%s", s_out);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, "refused reload"), 2);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, "loaded by admin socket user"), 1);
}
END_TEST

/* A rule about to expire loads, with a warning in the log: once expired,
 * the file would no longer load. */
START_TEST(test_rule_about_to_expire_is_logged)
{
    char until[32], rules[1024];
    kb_time_format(kb_now_us() + 5LL * 86400 * 1000000, until);
    snprintf(rules, sizeof rules, "%s    valid_until: %s\n", s_rules_open, until);
    kb_chain_set_rules(&s_chain, rules);
    ck_assert_int_eq(s_cli("reload"), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=rules_warning"), 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "rule 'politie-fier' expires on"), 1);
    /* the rule still applies */
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_int_eq(s_submit(politie, 1), 1);
    ketenbus_client_destroy(&politie);
}
END_TEST

START_TEST(test_admin_without_broker)
{
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(s_cli("status"), 1);
    ck_assert_msg(strstr(s_out, "is ketenbusd running?") != NULL, "%s", s_out);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("reload");
    TCase *tc = tcase_create("reload");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_reload_under_load);
    tcase_add_test(tc, test_broken_file_keeps_old_rules);
    tcase_add_test(tc, test_admin_without_broker);
    tcase_add_test(tc, test_rule_about_to_expire_is_logged);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
