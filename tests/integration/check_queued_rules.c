/*
 * check_queued_rules.c - a queued message goes out only if the rules in
 * force when it is delivered still allow it.
 *
 * politie sends fier a signal while fier is offline, so it waits in fier's
 * queue. Then the rules change: a reload puts a deny rule in, or takes the
 * allow rule out, or makes it withhold the narrative; or the allow rule's
 * valid_until passes; or a reload takes politie out of the chain. When fier
 * connects, a message the rules now refuse does not reach it: it leaves
 * the queue with a `refused` record naming the reason and the deny rule,
 * and politie gets an expiry notice saying why (unless politie is out of
 * the chain). A message the rules still allow reaches fier without the
 * fields its rule now withholds, and the `delivered` record says which.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "kb_error.h"
#include "kb_keys.h"
#include "kb_test.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"
#include "store.h"

static const char *s_agencies[] = {"politie", "fier"};
/* What each test rule says besides id, from and to. */
#define S_RULE_REST                                                                                              \
    "    kinds: [signal]\n    purposes: [victim_care]\n    max_handling: h3\n    legal_basis: Wpg art. 19\n"
static const char *s_allow = "  - id: p-f\n    from: [politie]\n    to: [fier]\n" S_RULE_REST;
static const char *s_allow_redact =
    "  - id: p-f\n    from: [politie]\n    to: [fier]\n" S_RULE_REST "    redact: [signal.narrative]\n";
static const char *s_deny = "  - id: stop\n    effect: deny\n    from: [politie]\n    to: [fier]\n";
static const char *s_other_way = "  - id: f-p\n    from: [fier]\n    to: [politie]\n" S_RULE_REST;
static kb_chain_t s_chain;
static char s_out[16384];

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, s_allow, "");
    kb_chain_start(&s_chain);
    kb_chain_pin_port(&s_chain);
}

static void s_teardown(void)
{
    kb_chain_cleanup(&s_chain);
}

/* Load the chain's file again through the admin socket. */
static void s_reload(void)
{
    int st = kb_chain_cli(&s_chain, s_out, sizeof s_out, "reload --data %s/data", s_chain.dir);
    ck_assert_msg(st == 0, "reload: %s", s_out);
}

/* politie submits a signal for fier with narrative text; its message id
 * into id (37 bytes). Returns politie's client, which stays connected to
 * receive its notices. */
static ketenbus_client_t *s_politie_sends(const char *text, char *id)
{
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *m = kb_test_signal("fier", text);
    ketenbus_receipt_t r;
    ck_assert_msg(ketenbus_client_submit(politie, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_ACCEPTED);
    snprintf(id, 37, "%s", r.message_id);
    ketenbus_msg_destroy(&m);
    return politie;
}

/* politie's next delivery is the broker's expiry notice about message id,
 * its text holding each of the two parts (the second may be NULL). */
static void s_notice_about(ketenbus_client_t *politie, const char *id, const char *part, const char *part2)
{
    ketenbus_msg_t *m = NULL;
    ck_assert_msg(ketenbus_client_recv(politie, &m, 10000) == KETENBUS_OK, "no notice: %s", ketenbus_last_error());
    ck_assert_int_eq(ketenbus_msg_kind(m), KETENBUS_KIND_EXPIRY_NOTICE);
    char *about = ketenbus_msg_get(m, "correlation_id");
    ck_assert_ptr_nonnull(about);
    ck_assert_str_eq(about, id);
    free(about);
    char *text = ketenbus_msg_get(m, "notice.text");
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "no longer allow it") && strstr(text, part) && (!part2 || strstr(text, part2)),
                  "notice text: %s", text);
    free(text);
    ck_assert_int_eq(ketenbus_client_ack(politie, m), KETENBUS_OK);
    ketenbus_msg_destroy(&m);
}

/* fier connects and gets nothing for 2 s; fier's client in *out, or
 * destroyed if out is NULL. */
static void s_fier_gets_nothing(ketenbus_client_t **out)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_msg_t *m = NULL;
    ck_assert_msg(ketenbus_client_recv(fier, &m, 2000) != KETENBUS_OK, "fier received a message the rules refuse");
    if (out)
        *out = fier;
    else
        ketenbus_client_destroy(&fier);
}

/* Open the stopped broker's store. */
static kb_store_t *s_store(void)
{
    char path[512];
    uint8_t key[32];
    snprintf(path, sizeof path, "%s/broker.storage.key", s_chain.keys);
    ck_assert_int_eq(kb_keys_load_storage(path, key), KB_OK);
    snprintf(path, sizeof path, "%s/data", s_chain.dir);
    kb_store_t *s = kb_store_open(path, key);
    ck_assert_msg(s != NULL, "open store: %s", kb_last_error());
    return s;
}

/* The stopped broker's audit records of event with fier as counterpart,
 * in log order: their count, and the k-th in *out (if not NULL; the
 * caller frees it; NULL if there are not k + 1). */
static int s_fier_records(int event, int k, Ketenbus__AuditRecord **out)
{
    kb_store_t *s = s_store();
    int n = 0;
    if (out)
        *out = NULL;
    for (uint64_t i = 0; i < kb_store_audit_size(s); i++) {
        Ketenbus__AuditRecord *r = NULL;
        ck_assert_int_eq(kb_store_audit_get(s, i, &r), KB_OK);
        if ((int)r->event == event && r->counterpart && strcmp(r->counterpart, "fier") == 0 && n++ == k && out)
            *out = r;
        else
            ketenbus__audit_record__free_unpacked(r, NULL);
    }
    kb_store_destroy(&s);
    return n;
}

/* The one refused record of the message queued for fier: sender, reject
 * code, reason, deciding rule (NULL: none), and the queue entry it was
 * routed to; nor was it delivered or expired. */
static void s_refused_record(const char *reason_part, const char *rule_id)
{
    Ketenbus__AuditRecord *r = NULL, *routed = NULL;
    ck_assert_int_eq(s_fier_records(KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, 0, &r), 1);
    ck_assert_int_eq(s_fier_records(KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED, 0, &routed), 1);
    ck_assert_str_eq(r->agency, "politie");
    ck_assert_int_eq(r->kind, KETENBUS__KIND__KIND_SIGNAL);
    ck_assert_int_eq(r->code, KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED);
    ck_assert_msg(strstr(r->reason, reason_part) != NULL, "reason: %s", r->reason);
    ck_assert_msg(strstr(r->reason, "(decided again at delivery)") != NULL, "reason: %s", r->reason);
    ck_assert_str_eq(r->rule_id, rule_id ? rule_id : "");
    ck_assert_uint_eq(r->tag, routed->tag);
    ck_assert_int_eq(memcmp(r->message_id.data, routed->message_id.data, 16), 0);
    ketenbus__audit_record__free_unpacked(routed, NULL);
    ketenbus__audit_record__free_unpacked(r, NULL);
    ck_assert_int_eq(s_fier_records(KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DELIVERED, 0, NULL), 0);
    ck_assert_int_eq(s_fier_records(KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED, 0, NULL), 0);
}

/* A reload puts a deny rule in the place of the allow rule: the queued
 * message is refused by it at delivery. */
START_TEST(test_reload_to_deny_rule)
{
    char id[37];
    ketenbus_client_t *politie = s_politie_sends("queued before the deny rule", id);
    kb_chain_set_rules(&s_chain, s_deny);
    s_reload();
    ketenbus_client_t *fier = NULL;
    s_fier_gets_nothing(&fier);
    s_notice_about(politie, id, "refused by deny rule stop", "for fier");
    ketenbus_msg_t *m = NULL;
    ck_assert_int_ne(ketenbus_client_recv(fier, &m, 500), KETENBUS_OK);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=refused_at_delivery sender=politie recipient=fier"), 1);
    ketenbus_client_destroy(&fier);
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    s_refused_record("refused by deny rule stop (decided again at delivery); sender notified", "stop");
}
END_TEST

/* A reload takes the allow rule out: no rule allows the queued message
 * any more. */
START_TEST(test_reload_without_allow_rule)
{
    char id[37];
    ketenbus_client_t *politie = s_politie_sends("queued before the rule went", id);
    kb_chain_set_rules(&s_chain, s_other_way);
    s_reload();
    s_fier_gets_nothing(NULL);
    s_notice_about(politie, id, "no rule allows kind signal from politie to fier", NULL);
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    s_refused_record("refused: no rule allows kind signal from politie to fier for purpose victim_care", NULL);
}
END_TEST

/* The allow rule's valid_until passes while the message waits: no reload,
 * and still it is not delivered. */
START_TEST(test_allow_rule_expires)
{
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    kb_chain_cleanup(&s_chain);
    char until[32], rules[1024];
    int64_t until_us = kb_now_us() + 3LL * 1000000;
    kb_time_format(until_us, until);
    snprintf(rules, sizeof rules, "%s    valid_until: %s\n", s_allow, until);
    kb_chain_init(&s_chain, s_agencies, 2, rules, "");
    kb_chain_start(&s_chain);
    char id[37];
    ketenbus_client_t *politie = s_politie_sends("queued while the rule held", id);
    while (kb_now_us() <= until_us)
        ketenbus_client_poll(politie, 100);
    s_fier_gets_nothing(NULL);
    s_notice_about(politie, id, "rule p-f expired on", NULL);
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    /* an expired rule decides nothing: it is named in the reason */
    s_refused_record("refused: rule p-f expired on", NULL);
}
END_TEST

/* A reload makes the allow rule withhold the narrative: the message that
 * was queued with it reaches fier without it, and the delivered record
 * says so; one queued after the reload was redacted when it was routed,
 * and its delivered record lists nothing more. */
START_TEST(test_reload_to_narrower_redaction)
{
    char id[37];
    ketenbus_client_t *politie = s_politie_sends("the narrative withheld since", id);
    kb_chain_set_rules(&s_chain, s_allow_redact);
    s_reload();
    ketenbus_msg_t *m = kb_test_signal("fier", "redacted when routed");
    ketenbus_receipt_t r;
    ck_assert_msg(ketenbus_client_submit(politie, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(ketenbus_client_recv(fier, &m, 5000) == KETENBUS_OK, "message %d: %s", k, ketenbus_last_error());
        ck_assert_str_eq(ketenbus_msg_id(m), k == 0 ? id : r.message_id);
        char *text = ketenbus_msg_get(m, "signal.narrative");
        ck_assert_msg(text == NULL, "fier got the narrative: %s", text);
        ck_assert_uint_eq(ketenbus_msg_withheld_count(m), 1);
        ck_assert_str_eq(ketenbus_msg_withheld(m, 0), "signal.narrative");
        char *band = ketenbus_msg_get(m, "signal.age_band");
        ck_assert_ptr_nonnull(band); /* the rest is there */
        free(band);
        ck_assert_int_eq(ketenbus_client_ack(fier, m), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    ck_assert_int_ne(ketenbus_client_recv(politie, &m, 1000), KETENBUS_OK); /* delivered: no notice */
    ketenbus_client_destroy(&fier);
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, NULL), 0);
    Ketenbus__AuditRecord *a = NULL;
    ck_assert_int_eq(s_fier_records(KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DELIVERED, 0, &a), 2);
    ck_assert_uint_eq(a->n_redacted, 1); /* withheld at delivery, under the rule in force then */
    ck_assert_str_eq(a->redacted[0], "signal.narrative");
    ck_assert_str_eq(a->rule_id, "p-f");
    ketenbus__audit_record__free_unpacked(a, NULL);
    ck_assert_int_eq(s_fier_records(KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DELIVERED, 1, &a), 2);
    ck_assert_uint_eq(a->n_redacted, 0); /* withheld at routing: its routed record says so */
    ketenbus__audit_record__free_unpacked(a, NULL);
    ck_assert_int_eq(s_fier_records(KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED, 1, &a), 2);
    ck_assert_uint_eq(a->n_redacted, 1);
    ketenbus__audit_record__free_unpacked(a, NULL);
}
END_TEST

/* A reload takes the sender out of the chain: what it queued is refused
 * at delivery, and it is told nothing (as at expiry). */
START_TEST(test_reload_without_sender)
{
    char id[37];
    ketenbus_client_t *politie = s_politie_sends("queued before politie left", id);
    ketenbus_client_destroy(&politie);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "broker:\n  id: test-broker\n  listen: %s\n  data_dir: data\n  key_dir: keys\n"
             "agencies:\n  - id: fier\n    name: Agency fier\n    curve_cert: keys/fier.curve\n"
             "    signing_key: keys/fier.sign.pub.pem\nrules: []\n",
             s_chain.endpoint);
    kb_chain_write_config(&s_chain, cfg);
    s_reload();
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_msg_t *m = NULL;
    int64_t deadline = kb_mono_ms() + 10000;
    while (kb_chain_log_count(&s_chain, "event=refused_at_delivery") < 1 && kb_mono_ms() < deadline)
        ck_assert_msg(ketenbus_client_recv(fier, &m, 100) != KETENBUS_OK, "fier received a message of politie");
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=refused_at_delivery sender=politie recipient=fier"), 1);
    ck_assert_int_ne(ketenbus_client_recv(fier, &m, 500), KETENBUS_OK);
    ketenbus_client_destroy(&fier);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    s_refused_record("refused: unknown agency 'politie' (decided again at delivery); sender not notified", NULL);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("queued_rules");
    TCase *tc = tcase_create("queued_rules");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_reload_to_deny_rule);
    tcase_add_test(tc, test_reload_without_allow_rule);
    tcase_add_test(tc, test_allow_rule_expires);
    tcase_add_test(tc, test_reload_to_narrower_redaction);
    tcase_add_test(tc, test_reload_without_sender);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
