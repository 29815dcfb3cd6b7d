/*
 * check_exchange.c - end-to-end exchange through a real ketenbusd.
 *
 * Each test starts the broker of this build on an ephemeral loopback port in
 * a scratch directory, connects real SDK clients over CURVE, and stops the
 * broker by pid. Covers: signal and referral with update between two
 * agencies, an offline recipient, a broker killed right after RECEIPT
 * ACCEPTED and one killed with hundreds of messages in flight, a recipient
 * with a small credit, the SDK outbox while the broker is down, refusal by
 * the rules, a send-only client beside the agency's receiving client, a
 * handler that keeps messages for a while (they come again on the same
 * connection), a fan-out to more agencies than an envelope may name, one
 * that deny rules narrow (audited), and the bound on what one SUBMIT's
 * fan-outs may stage; and recv that does not wait still reads the
 * connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "kb_test.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"

/* What each test rule says besides id, from, to and kinds. */
#define S_RULE_REST                                                                                  \
    "    purposes: [victim_care, child_protection, criminal_investigation]\n    max_handling: h3\n" \
    "    legal_basis: Wpg art. 19\n"

static const char *s_agencies[] = {"politie", "rvdk", "fier", "gem-utrecht"};

static const char *s_rules =
    "  - id: fier-signal-politie\n    from: [fier]\n    to: [politie]\n    kinds: [signal]\n" S_RULE_REST
    "  - id: politie-signal\n    from: [politie]\n    to: [fier, rvdk]\n    kinds: [signal]\n" S_RULE_REST
    "  - id: politie-referral-rvdk\n    from: [politie]\n    to: [rvdk]\n    kinds: [referral]\n" S_RULE_REST
    "  - id: rvdk-update-politie\n    from: [rvdk]\n    to: [politie]\n    kinds: [referral_update]\n" S_RULE_REST;

static kb_chain_t s_chain;

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 4, s_rules, "");
    kb_chain_start(&s_chain);
}

static void s_teardown(void)
{
    kb_chain_cleanup(&s_chain);
}

/* Receive one message within timeout; fail the test otherwise. */
static ketenbus_msg_t *s_recv(ketenbus_client_t *c, int timeout_ms)
{
    ketenbus_msg_t *m = NULL;
    int rc = ketenbus_client_recv(c, &m, timeout_ms);
    ck_assert_msg(rc == KETENBUS_OK, "recv: %s", ketenbus_last_error());
    return m;
}

START_TEST(test_signal_referral_update)
{
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_client_t *rvdk = kb_chain_client(&s_chain, "rvdk", NULL);

    /* a signal from police to the child protection board */
    ketenbus_msg_t *sig = kb_test_signal("rvdk", "arrested for pickpocketing at Utrecht Centraal");
    ketenbus_receipt_t r;
    ck_assert_msg(ketenbus_client_submit(politie, sig, &r, 5000) == KETENBUS_OK, "submit: %s",
                  ketenbus_last_error());
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_ACCEPTED);
    ck_assert_str_eq(r.recipients, "rvdk");
    ck_assert_str_eq(r.message_id, ketenbus_msg_id(sig));

    ketenbus_msg_t *got = s_recv(rvdk, 5000);
    ck_assert_str_eq(ketenbus_msg_id(got), ketenbus_msg_id(sig));
    ck_assert_str_eq(ketenbus_msg_sender(got), "politie");
    char *narrative = ketenbus_msg_get(got, "signal.narrative");
    ck_assert_str_eq(narrative, "arrested for pickpocketing at Utrecht Centraal");
    free(narrative);
    ck_assert_int_eq(ketenbus_client_ack(rvdk, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);

    /* an urgent referral, then the board's answer threaded to it */
    ketenbus_msg_t *ref = ketenbus_msg_new(KETENBUS_KIND_REFERRAL);
    ck_assert_int_eq(ketenbus_msg_set(ref, "recipients", "rvdk"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(ref, "purpose", "child_protection"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(ref, "handling", "h2"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(ref, "legal_basis.basis", "Jeugdwet art. 7.4.0"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(ref, "legal_basis.consent", "not_required"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(ref, "referral.action", "youth_care"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(ref, "referral.urgency", "urgent"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(ref, "referral.deadline_us", "2030-01-01T12:00:00Z"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(ref, "referral.signal.exploitation", "criminal"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_submit(politie, ref, &r, 5000), KETENBUS_OK);
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_ACCEPTED);

    got = s_recv(rvdk, 5000);
    ck_assert_int_eq(ketenbus_msg_kind(got), KETENBUS_KIND_REFERRAL);
    ck_assert_str_eq(ketenbus_msg_id(got), ketenbus_msg_id(ref));
    ck_assert_int_eq(ketenbus_client_ack(rvdk, got), KETENBUS_OK);

    ketenbus_msg_t *upd = ketenbus_msg_new(KETENBUS_KIND_REFERRAL_UPDATE);
    ck_assert_int_eq(ketenbus_msg_set(upd, "recipients", "politie"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(upd, "purpose", "child_protection"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(upd, "handling", "h2"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(upd, "legal_basis.basis", "Jeugdwet art. 7.4.0"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(upd, "legal_basis.consent", "not_required"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(upd, "correlation_id", ketenbus_msg_id(got)), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(upd, "referral_update.status", "accepted"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_submit(rvdk, upd, &r, 5000), KETENBUS_OK);
    ketenbus_msg_destroy(&got);

    got = s_recv(politie, 5000);
    ck_assert_int_eq(ketenbus_msg_kind(got), KETENBUS_KIND_REFERRAL_UPDATE);
    char *corr = ketenbus_msg_get(got, "correlation_id");
    ck_assert_str_eq(corr, ketenbus_msg_id(ref));
    free(corr);
    char *status = ketenbus_msg_get(got, "referral_update.status");
    ck_assert_str_eq(status, "accepted");
    free(status);
    ck_assert_int_eq(ketenbus_client_ack(politie, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);

    ketenbus_msg_destroy(&sig);
    ketenbus_msg_destroy(&ref);
    ketenbus_msg_destroy(&upd);
    ketenbus_client_destroy(&politie);
    ketenbus_client_destroy(&rvdk);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ACKNOWLEDGED, NULL), 3);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED, NULL), 3);
    /* the broker signed a checkpoint of everything when it stopped; the
     * checkpoint's own record is the one leaf after it */
    uint64_t cp_size = 0, audit_size = 0;
    kb_chain_checkpoint(&s_chain, &cp_size, &audit_size);
    ck_assert_uint_eq(cp_size + 1, audit_size);
    ck_assert_int_ge(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CHECKPOINT, "size="), 1);
}
END_TEST

/* recv with timeout 0 waits for nothing, but reads what has arrived on
 * the connection: an adapter that only ever calls it so, from a loop of
 * its own, receives what the broker delivers. */
START_TEST(test_recv_without_waiting_reads_the_connection)
{
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *m = kb_test_signal("fier", "taken without waiting");
    ck_assert_int_eq(ketenbus_client_submit(politie, m, NULL, 5000), KETENBUS_OK);
    char id[37];
    snprintf(id, sizeof id, "%s", ketenbus_msg_id(m));
    ketenbus_msg_destroy(&m);
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    int rc = KETENBUS_ETIMEDOUT;
    for (int64_t end = kb_mono_ms() + 10000; rc == KETENBUS_ETIMEDOUT && kb_mono_ms() < end;) {
        rc = ketenbus_client_recv(fier, &m, 0);
        if (rc == KETENBUS_ETIMEDOUT)
            usleep(10 * 1000); /* the adapter's own loop */
    }
    ck_assert_msg(rc == KETENBUS_OK, "recv(0) returned %d: %s", rc, ketenbus_last_error());
    ck_assert_str_eq(ketenbus_msg_id(m), id);
    ck_assert_int_eq(ketenbus_client_ack(fier, m), KETENBUS_OK);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&fier);
    ketenbus_client_destroy(&politie);
}
END_TEST

START_TEST(test_offline_recipient)
{
    enum { N = 25 };
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    char ids[N][37];
    for (int i = 0; i < N; i++) {
        char text[64];
        snprintf(text, sizeof text, "signal %d", i);
        ketenbus_msg_t *m = kb_test_signal("fier", text);
        ck_assert_int_eq(ketenbus_client_submit(politie, m, NULL, 5000), KETENBUS_OK);
        snprintf(ids[i], sizeof ids[i], "%s", ketenbus_msg_id(m));
        ketenbus_msg_destroy(&m);
    }
    ketenbus_client_destroy(&politie);

    /* fier connects only now; everything arrives, in order */
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    for (int i = 0; i < N; i++) {
        ketenbus_msg_t *m = s_recv(fier, 5000);
        ck_assert_str_eq(ketenbus_msg_id(m), ids[i]);
        ck_assert_int_eq(ketenbus_client_ack(fier, m), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    ketenbus_msg_t *extra = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &extra, 300), KETENBUS_ETIMEDOUT);
    ketenbus_client_destroy(&fier);
}
END_TEST

START_TEST(test_kill9_after_accept)
{
    kb_chain_pin_port(&s_chain);
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *m = kb_test_signal("rvdk", "survives a crash");
    ketenbus_receipt_t r;
    ck_assert_int_eq(ketenbus_client_submit(politie, m, &r, 5000), KETENBUS_OK);
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_ACCEPTED);
    kb_chain_kill(&s_chain); /* SIGKILL right after RECEIPT ACCEPTED */
    kb_chain_start(&s_chain);

    ketenbus_client_t *rvdk = kb_chain_client(&s_chain, "rvdk", NULL);
    ketenbus_msg_t *got = s_recv(rvdk, 8000);
    ck_assert_str_eq(ketenbus_msg_id(got), ketenbus_msg_id(m));
    ck_assert_int_eq(ketenbus_client_ack(rvdk, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);
    /* exactly once: nothing more, also not after the politie client
     * reconnects and resends its outbox */
    ketenbus_client_poll(politie, 500);
    ck_assert_int_eq(ketenbus_client_outbox_size(politie), 0);
    ck_assert_int_eq(ketenbus_client_recv(rvdk, &got, 700), KETENBUS_ETIMEDOUT);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&rvdk);
    ketenbus_client_destroy(&politie);
}
END_TEST

/* Submit signal "<what> <i>" from c to rvdk without waiting for its
 * receipt; its message id goes to id. */
static void s_submit_nowait(ketenbus_client_t *c, const char *what, int i, char id[40])
{
    char text[64];
    snprintf(text, sizeof text, "%s %d", what, i);
    ketenbus_msg_t *m = kb_test_signal("rvdk", text);
    ketenbus_receipt_t r;
    int rc = ketenbus_client_submit(c, m, &r, 0);
    ck_assert_msg(rc == KETENBUS_OK || rc == KETENBUS_EPENDING, "submit: %s", ketenbus_last_error());
    snprintf(id, 40, "%s", ketenbus_msg_id(m));
    ketenbus_msg_destroy(&m);
}

/* Many submissions and deliveries in flight when the broker is killed:
 * every message with a RECEIPT ACCEPTED before the kill arrives after the
 * restart, the rest arrive once the outbox is resent, each exactly once
 * and all in submission order. The broker writes a turn's batch while it
 * routes the next one; this checks that a receipt never runs ahead of its
 * synced write and that order survives a batch lost in flight. */
#define S_MANY 400
#define S_ACCEPTED_BEFORE_KILL 150

START_TEST(test_kill9_with_many_in_flight)
{
    kb_chain_pin_port(&s_chain);
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_client_t *rvdk = kb_chain_client(&s_chain, "rvdk", NULL);
    static char sent[S_MANY][40], got[S_MANY][40];
    size_t n_got = 0;
    for (int i = 0; i < S_MANY; i++) {
        s_submit_nowait(politie, "in flight", i, sent[i]);
    }
    /* receipts come in submission order: once the outbox is this small,
     * the first S_ACCEPTED_BEFORE_KILL are durable at the broker */
    while (ketenbus_client_outbox_size(politie) > S_MANY - S_ACCEPTED_BEFORE_KILL) {
        ck_assert_int_eq(ketenbus_client_poll(politie, 20), KETENBUS_OK);
        ketenbus_msg_t *m = NULL;
        while (n_got < S_MANY && ketenbus_client_recv(rvdk, &m, 0) == KETENBUS_OK) {
            snprintf(got[n_got++], sizeof got[0], "%s", ketenbus_msg_id(m));
            ck_assert_int_eq(ketenbus_client_ack(rvdk, m), KETENBUS_OK);
            ketenbus_msg_destroy(&m);
        }
    }
    size_t accepted = S_MANY - ketenbus_client_outbox_size(politie);
    kb_chain_kill(&s_chain);
    kb_chain_start(&s_chain);

    /* the clients reconnect by themselves; politie resends its outbox */
    while (n_got < S_MANY) {
        ck_assert_int_eq(ketenbus_client_poll(politie, 10), KETENBUS_OK);
        ketenbus_msg_t *m = NULL;
        int rc = ketenbus_client_recv(rvdk, &m, 8000);
        ck_assert_msg(rc == KETENBUS_OK, "%zu of %d arrived (%zu accepted before the kill): %s", n_got, S_MANY,
                      accepted, ketenbus_last_error());
        snprintf(got[n_got++], sizeof got[0], "%s", ketenbus_msg_id(m));
        ck_assert_int_eq(ketenbus_client_ack(rvdk, m), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    for (size_t i = 0; i < S_MANY; i++)
        ck_assert_msg(strcmp(got[i], sent[i]) == 0, "arrival %zu is %s, sent %s (%zu accepted before the kill)", i,
                      got[i], sent[i], accepted);
    ck_assert_int_eq(ketenbus_client_flush(politie, 8000), KETENBUS_OK);
    ketenbus_msg_t *extra = NULL;
    ck_assert_int_eq(ketenbus_client_recv(rvdk, &extra, 700), KETENBUS_ETIMEDOUT);
    ketenbus_client_destroy(&rvdk);
    ketenbus_client_destroy(&politie);
}
END_TEST

/* A recipient that grants a credit of 3: while it has credit and nothing
 * older waits, the broker hands it new messages as they are routed; once
 * the credit is used up the rest waits in the store and comes through the
 * pump as credit returns. Both ways interleave; every message arrives
 * once, in submission order. */
#define S_CREDITED 300

static ketenbus_msg_t *s_recv_ack(ketenbus_client_t *c, int timeout_ms)
{
    ketenbus_msg_t *m = NULL;
    if (ketenbus_client_recv(c, &m, timeout_ms) != KETENBUS_OK)
        return NULL;
    ck_assert_int_eq(ketenbus_client_ack(c, m), KETENBUS_OK);
    return m;
}

START_TEST(test_small_credit_in_order)
{
    char state[512];
    snprintf(state, sizeof state, "%s/state-rvdk-credit", s_chain.dir);
    ketenbus_client_opts_t *o = ketenbus_client_opts_new();
    ck_assert_int_eq(ketenbus_client_opts_set_agency(o, "rvdk", s_chain.keys), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_broker(o, s_chain.endpoint, s_chain.broker_cert), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_state_dir(o, state), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_credit(o, 3), KETENBUS_OK);
    ketenbus_client_t *rvdk = ketenbus_client_new(o);
    ketenbus_client_opts_destroy(&o);
    ck_assert_msg(rvdk != NULL, "client: %s", ketenbus_last_error());
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    static char sent[S_CREDITED][40];
    size_t n_got = 0;
    for (int i = 0; i < S_CREDITED; i++) {
        s_submit_nowait(politie, "credited", i, sent[i]);
        /* the sender keeps sending while the recipient takes one at most
         * per message sent: its credit comes back between new messages,
         * with older ones still waiting in the store */
        ck_assert_int_eq(ketenbus_client_poll(politie, 2), KETENBUS_OK);
        ketenbus_msg_t *got = s_recv_ack(rvdk, i % 3 == 0 ? 5 : 0);
        if (got) {
            ck_assert_msg(strcmp(ketenbus_msg_id(got), sent[n_got]) == 0, "arrival %zu out of order", n_got);
            n_got++;
            ketenbus_msg_destroy(&got);
        }
    }
    ck_assert_int_eq(ketenbus_client_flush(politie, 8000), KETENBUS_OK);
    while (n_got < S_CREDITED) {
        ketenbus_client_poll(politie, 1);
        ketenbus_msg_t *got = s_recv_ack(rvdk, 8000);
        ck_assert_msg(got != NULL, "%zu of %d arrived: %s", n_got, S_CREDITED, ketenbus_last_error());
        ck_assert_msg(strcmp(ketenbus_msg_id(got), sent[n_got]) == 0, "arrival %zu out of order", n_got);
        n_got++;
        ketenbus_msg_destroy(&got);
    }
    ketenbus_msg_t *extra = NULL;
    ck_assert_int_eq(ketenbus_client_recv(rvdk, &extra, 700), KETENBUS_ETIMEDOUT);
    ketenbus_client_destroy(&rvdk);
    ketenbus_client_destroy(&politie);
}
END_TEST

START_TEST(test_outbox_while_broker_down)
{
    kb_chain_pin_port(&s_chain);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *m = kb_test_signal("rvdk", "sent while the broker was down");
    ketenbus_receipt_t r;
    ck_assert_int_eq(ketenbus_client_submit(politie, m, &r, 300), KETENBUS_EPENDING);
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_NONE);
    ck_assert_int_eq(ketenbus_client_outbox_size(politie), 1);
    /* the adapter restarts too: the outbox is on disk */
    ketenbus_client_destroy(&politie);

    kb_chain_start(&s_chain);
    politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_msg(ketenbus_client_flush(politie, 8000) == KETENBUS_OK, "flush: %s", ketenbus_last_error());
    const ketenbus_receipt_t *last = ketenbus_client_last_receipt(politie);
    ck_assert_ptr_nonnull(last);
    ck_assert_int_eq(last->outcome, KETENBUS_OUTCOME_ACCEPTED);
    ck_assert_str_eq(last->message_id, ketenbus_msg_id(m));

    ketenbus_client_t *rvdk = kb_chain_client(&s_chain, "rvdk", NULL);
    ketenbus_msg_t *got = s_recv(rvdk, 5000);
    ck_assert_str_eq(ketenbus_msg_id(got), ketenbus_msg_id(m));
    ck_assert_int_eq(ketenbus_client_ack(rvdk, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&rvdk);
    ketenbus_client_destroy(&politie);
}
END_TEST

START_TEST(test_refused_by_rules)
{
    ketenbus_client_t *gem = kb_chain_client(&s_chain, "gem-utrecht", NULL);
    ketenbus_msg_t *m = kb_test_signal("politie", "request for the police narrative");
    ketenbus_receipt_t r;
    ck_assert_int_eq(ketenbus_client_submit(gem, m, &r, 5000), KETENBUS_EREJECTED);
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_REJECTED);
    ck_assert_int_eq(r.code, KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED);
    ck_assert_msg(strstr(r.reason, "no rule allows") != NULL, "reason: %s", r.reason);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&gem);

    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_int_eq(ketenbus_client_recv(politie, &m, 500), KETENBUS_ETIMEDOUT);
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, "no rule allows"), 1);
    /* the refused message's digest, as for one refused only in part */
    Ketenbus__AuditRecord *refused =
        kb_chain_audit_record(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, 0, NULL);
    ck_assert_ptr_nonnull(refused);
    ck_assert_str_eq(refused->counterpart, "politie");
    ck_assert_uint_eq(refused->payload_sha256.len, 32);
    ketenbus__audit_record__free_unpacked(refused, NULL);
}
END_TEST

START_TEST(test_fanout_without_recipients)
{
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *m = kb_test_signal(NULL, "to whoever the rules allow");
    ketenbus_receipt_t r;
    ck_assert_int_eq(ketenbus_client_submit(politie, m, &r, 5000), KETENBUS_OK);
    ck_assert_str_eq(r.recipients, "rvdk,fier");
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&politie);
}
END_TEST

/* The rules of test_fanout_deny: politie's signals may go to rvdk and fier,
 * but a deny rule keeps them from rvdk, and another keeps those for a
 * criminal investigation from fier. */
static const char *s_rules_deny =
    "  - id: politie-signal\n    from: [politie]\n    to: [fier, rvdk]\n    kinds: [signal]\n" S_RULE_REST
    "  - id: no-rvdk\n    effect: deny\n    from: [politie]\n    to: [rvdk]\n"
    "  - id: no-fier-ci\n    effect: deny\n    from: [politie]\n    to: [fier]\n"
    "    purposes: [criminal_investigation]\n";

/* An agency that an allow rule would reach in a fan-out but a deny rule
 * refuses is a decision too: audited as refused with the deny rule and
 * the message's digest, and listed in the receipt, as a named recipient
 * would be. When deny rules refuse every candidate, the message is
 * refused with the first one's rule. */
START_TEST(test_fanout_deny)
{
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    kb_chain_cleanup(&s_chain);
    kb_chain_init(&s_chain, s_agencies, 4, s_rules_deny, "");
    kb_chain_start(&s_chain);
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *m = kb_test_signal(NULL, "to whoever the rules allow");
    ketenbus_receipt_t r;
    ck_assert_int_eq(ketenbus_client_submit(politie, m, &r, 5000), KETENBUS_OK);
    ck_assert_str_eq(r.recipients, "fier");
    ck_assert_str_eq(r.reason, "not sent to: rvdk");
    ketenbus_msg_destroy(&m);
    m = kb_test_signal(NULL, "for an investigation");
    ck_assert_int_eq(ketenbus_msg_set(m, "purpose", "criminal_investigation"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_submit(politie, m, &r, 5000), KETENBUS_EREJECTED);
    ck_assert_int_eq(r.code, KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED);
    ck_assert_str_eq(r.rule_id, "no-rvdk");
    ck_assert_str_eq(r.reason, "refused by deny rule no-rvdk");
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);

    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, "no-rvdk"), 2);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, "no-fier-ci"), 1);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED, NULL), 1);
    Ketenbus__AuditRecord *received =
        kb_chain_audit_record(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED, 0, NULL);
    Ketenbus__AuditRecord *refused =
        kb_chain_audit_record(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, 0, NULL);
    ck_assert_ptr_nonnull(received);
    ck_assert_ptr_nonnull(refused);
    ck_assert_str_eq(refused->counterpart, "rvdk");
    ck_assert_str_eq(refused->rule_id, "no-rvdk");
    ck_assert_int_eq(refused->code, KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED);
    ck_assert_uint_eq(refused->payload_sha256.len, 32);
    ck_assert(memcmp(refused->payload_sha256.data, received->payload_sha256.data, 32) == 0);
    ketenbus__audit_record__free_unpacked(received, NULL);
    ketenbus__audit_record__free_unpacked(refused, NULL);
    refused = kb_chain_audit_record(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, 2, NULL);
    ck_assert_ptr_nonnull(refused);
    ck_assert_str_eq(refused->counterpart, "fier");
    ck_assert_str_eq(refused->rule_id, "no-fier-ci");
    ck_assert_uint_eq(refused->payload_sha256.len, 32);
    ketenbus__audit_record__free_unpacked(refused, NULL);
}
END_TEST

/* A chain of n agencies, "politie" and a1 .. a(n-1), with one rule that
 * lets politie send signals and referrals to all the others. */
static void s_wide_chain(kb_chain_t *chain, size_t n)
{
    static char ids[KB_TEST_MAX_AGENCIES][24]; /* the chain borrows them */
    const char *agencies[KB_TEST_MAX_AGENCIES];
    size_t cap = 256 + n * 16, o = 0;
    char *rules = malloc(cap);
    ck_assert(n <= KB_TEST_MAX_AGENCIES && rules);
    o += (size_t)snprintf(rules + o, cap - o, "  - id: politie-everyone\n    from: [politie]\n    to: [");
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], i == 0 ? "politie" : "a%zu", i);
        agencies[i] = ids[i];
        if (i > 0)
            o += (size_t)snprintf(rules + o, cap - o, "%s%s", i > 1 ? ", " : "", ids[i]);
    }
    snprintf(rules + o, cap - o, "]\n    kinds: [signal, referral]\n" S_RULE_REST);
    kb_chain_init(chain, agencies, n, rules, "");
    free(rules);
}

/* A fan-out reaches every agency the rules allow, also past the
 * KB_MAX_RECIPIENTS (64) an envelope may name: the last agency of a chain
 * of 70 gets the message, and every one of them is audited as routed. */
#define S_WIDE 70

START_TEST(test_fanout_past_64)
{
    kb_chain_t chain;
    s_wide_chain(&chain, S_WIDE);
    kb_chain_start(&chain);

    ketenbus_client_t *politie = kb_chain_client(&chain, "politie", NULL);
    char last_id[16];
    snprintf(last_id, sizeof last_id, "a%d", S_WIDE - 1);
    ketenbus_client_t *last = kb_chain_client(&chain, last_id, NULL);
    ketenbus_msg_t *m = kb_test_signal(NULL, "to every agency of a wide chain");
    ketenbus_receipt_t r;
    ck_assert_msg(ketenbus_client_submit(politie, m, &r, 10000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_ACCEPTED);
    ketenbus_msg_t *got = s_recv(last, 10000);
    ck_assert_str_eq(ketenbus_msg_id(got), ketenbus_msg_id(m));
    ck_assert_int_eq(ketenbus_client_ack(last, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&last);
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(kb_chain_stop(&chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED, NULL), S_WIDE - 1);
    ck_assert_int_eq(kb_chain_audit_count(&chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, NULL), 0);
    kb_chain_cleanup(&chain);
}
END_TEST

/* What one SUBMIT may stage for its recipients is bounded (broker/route.c,
 * s_budget: 64 copies of a full frame, 128 MiB with the default 1 MiB
 * frames). With 999 recipients, a referral of about 150 KB needs more
 * than that alone: it is refused for good, saying so, and audited. Two of
 * about 100 KB in one SUBMIT fit one at a time: the second is refused for
 * now, and the SDK sends it again alone, when it is accepted. */
#define S_HUGE 1000

static int s_retries;

static void s_count_retries(int level, const char *line, void *arg)
{
    (void)level;
    (void)arg;
    if (strstr(line, "event=receipt_retry"))
        s_retries++;
}

/* A referral to whoever the rules allow, with text fields of these sizes. */
static ketenbus_msg_t *s_big_referral(size_t reason, size_t narrative, size_t contact)
{
    ketenbus_msg_t *m = ketenbus_msg_new(KETENBUS_KIND_REFERRAL);
    ck_assert_ptr_nonnull(m);
    static const char *fields[][2] = {{"purpose", "child_protection"},
                                      {"handling", "h2"},
                                      {"legal_basis.basis", "Jeugdwet art. 7.4.0"},
                                      {"legal_basis.consent", "not_required"},
                                      {"referral.action", "youth_care"},
                                      {"referral.signal.exploitation", "criminal"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        ck_assert_int_eq(ketenbus_msg_set(m, fields[i][0], fields[i][1]), KETENBUS_OK);
    const char *paths[3] = {"referral.reason", "referral.signal.narrative", "referral.contact"};
    size_t lens[3] = {reason, narrative, contact};
    for (size_t i = 0; i < 3; i++) {
        char *text = malloc(lens[i] + 1);
        ck_assert_ptr_nonnull(text);
        memset(text, 'x', lens[i]);
        text[lens[i]] = '\0';
        ck_assert_msg(ketenbus_msg_set(m, paths[i], text) == KETENBUS_OK, "%s: %s", paths[i], ketenbus_last_error());
        free(text);
    }
    return m;
}

START_TEST(test_fanout_staging_bounded)
{
    kb_chain_t chain;
    s_wide_chain(&chain, S_HUGE);
    kb_chain_start(&chain);
    s_retries = 0;
    chain.client_log = s_count_retries;
    ketenbus_client_t *politie = kb_chain_client(&chain, "politie", NULL);

    /* 999 x ~151 KB > 128 MiB: refused for good */
    ketenbus_msg_t *huge = s_big_referral(60000, 60000, 30000);
    ketenbus_receipt_t r;
    ck_assert_int_eq(ketenbus_client_submit(politie, huge, &r, 20000), KETENBUS_EREJECTED);
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_REJECTED);
    ck_assert_int_eq(r.code, KETENBUS__REJECT_CODE__REJECT_TOO_LARGE);
    ck_assert_msg(strstr(r.reason, "to 999 agencies") && strstr(r.reason, "name its recipients"), "reason: %s",
                  r.reason);
    ck_assert_int_eq(s_retries, 0);
    ketenbus_msg_destroy(&huge);

    /* 999 x ~101 KB fits once, not twice: the second waits for the next turn */
    ketenbus_msg_t *two[2] = {s_big_referral(50000, 50000, 0), s_big_referral(50000, 50000, 0)};
    ketenbus_receipt_t rs[2];
    ck_assert_msg(ketenbus_client_submit_batch(politie, two, 2, rs, 60000) == KETENBUS_OK, "%s",
                  ketenbus_last_error());
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(rs[i].outcome, KETENBUS_OUTCOME_ACCEPTED);
        ck_assert_msg(strncmp(rs[i].recipients, "a1,", 3) == 0, "recipients: %.40s", rs[i].recipients);
        ketenbus_msg_destroy(&two[i]);
    }
    ck_assert_int_eq(s_retries, 1); /* the second, refused for now once */
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(kb_chain_stop(&chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, "name its recipients"),
                     1);
    ck_assert_int_eq(kb_chain_audit_count(&chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED, NULL),
                     2 * (S_HUGE - 1));
    kb_chain_cleanup(&chain);
}
END_TEST

static int s_handled;

static int s_handler(ketenbus_client_t *c, const ketenbus_msg_t *msg, void *arg)
{
    (void)c;
    char *text = ketenbus_msg_get(msg, "signal.narrative");
    ck_assert_str_eq(text, (const char *)arg);
    free(text);
    /* refuse the first time: the broker must deliver it again */
    return s_handled++ == 0 ? -1 : 0;
}

static int s_handled_once(void *arg)
{
    (void)arg;
    return s_handled >= 1;
}

static int s_handled_twice(void *arg)
{
    (void)arg;
    return s_handled >= 2;
}

START_TEST(test_callback_style)
{
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *m = kb_test_signal("fier", "handled by a callback");
    ck_assert_int_eq(ketenbus_client_submit(politie, m, NULL, 5000), KETENBUS_OK);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&politie);

    s_handled = 0;
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", "-cb");
    ketenbus_client_set_handler(fier, s_handler, (void *)"handled by a callback");
    ck_assert_msg(kb_wait_until(fier, s_handled_once, NULL, 5000), "handler not called");
    ketenbus_client_destroy(&fier);
    /* the handler declined (non-zero): a new session gets it again and accepts it */
    fier = kb_chain_client(&s_chain, "fier", "-cb");
    ketenbus_client_set_handler(fier, s_handler, (void *)"handled by a callback");
    ck_assert_msg(kb_wait_until(fier, s_handled_twice, NULL, 8000), "handled %d times", s_handled);
    ketenbus_client_poll(fier, 200);
    ketenbus_client_destroy(&fier);
    /* acknowledged: a third session receives nothing */
    fier = kb_chain_client(&s_chain, "fier", "-cb");
    ck_assert_int_eq(ketenbus_client_recv(fier, &m, 700), KETENBUS_ETIMEDOUT);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* A handler that cannot store what it gets yet keeps the first two
 * deliveries (returns non-zero), using up a credit of 2: the SDK asks for
 * them again on the same connection, without a reconnect, and all three
 * messages are handled in the end, each accepted once. */
static int s_kept, s_accepted[3];

static int s_keep_twice(ketenbus_client_t *c, const ketenbus_msg_t *m, void *arg)
{
    (void)c;
    (void)arg;
    if (s_kept < 2) {
        s_kept++;
        return 1;
    }
    char *text = ketenbus_msg_get(m, "signal.narrative");
    int i = -1;
    ck_assert_int_eq(sscanf(text, "kept %d", &i), 1);
    free(text);
    ck_assert(i >= 0 && i < 3);
    s_accepted[i]++;
    return 0;
}

static int s_all_accepted(void *arg)
{
    (void)arg;
    return s_accepted[0] > 0 && s_accepted[1] > 0 && s_accepted[2] > 0;
}

START_TEST(test_kept_deliveries_come_again)
{
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    for (int i = 0; i < 3; i++) {
        char text[32];
        snprintf(text, sizeof text, "kept %d", i);
        ketenbus_msg_t *m = kb_test_signal("fier", text);
        ck_assert_int_eq(ketenbus_client_submit(politie, m, NULL, 5000), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    ketenbus_client_destroy(&politie);
    s_kept = 0;
    memset(s_accepted, 0, sizeof s_accepted);
    ketenbus_client_t *fier = kb_chain_client_credit(&s_chain, "fier", NULL, 2);
    ketenbus_client_set_handler(fier, s_keep_twice, NULL);
    ck_assert_msg(kb_wait_until(fier, s_all_accepted, NULL, 10000), "kept %d, accepted %d/%d/%d", s_kept,
                  s_accepted[0], s_accepted[1], s_accepted[2]);
    ketenbus_client_poll(fier, 300); /* the last ACK out */
    ck_assert_int_eq(s_kept, 2);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(s_accepted[i], 1);
    ketenbus_client_destroy(&fier);
    /* the first session, and the one started again for the kept two */
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=session_opened agency=fier"), 2);
}
END_TEST

/* An agency submits from a send-only client (credit 0, as `ketenbus send`)
 * while its receiving client stays connected: the send-only session does
 * not replace the receiving one, which keeps getting its deliveries. A
 * second receiving client still replaces the first. */
START_TEST(test_send_only_beside_receiver)
{
    ketenbus_client_t *rcv = kb_chain_client(&s_chain, "fier", "-rcv");
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_receipt_t r;
    ketenbus_msg_t *m = kb_test_signal("fier", "first for fier");
    ck_assert_msg(ketenbus_client_submit(politie, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    m = s_recv(rcv, 5000);
    ck_assert_int_eq(ketenbus_client_ack(rcv, m), KETENBUS_OK);
    ketenbus_msg_destroy(&m);

    ketenbus_client_t *snd = kb_chain_client_credit(&s_chain, "fier", "-send", 0);
    m = kb_test_signal("politie", "from fier's script");
    ck_assert_msg(ketenbus_client_submit(snd, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_ACCEPTED);
    ketenbus_msg_destroy(&m);
    /* (the SDK says HELLO again when WELCOME is slow: at least once) */
    ck_assert_int_ge(kb_chain_log_count(&s_chain, "send_only=1"), 1);
    /* status: fier's receiving adapter online, one sender beside it */
    char out[8192];
    ck_assert_int_eq(kb_chain_cli(&s_chain, out, sizeof out, "status --data data --json"), 0);
    ck_assert_msg(strstr(out, "\"id\":\"fier\",\"connected\":true,\"senders\":1") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "\"id\":\"politie\",\"connected\":true,\"senders\":0") != NULL, "%s", out);

    m = kb_test_signal("fier", "second for fier");
    ck_assert_msg(ketenbus_client_submit(politie, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    m = s_recv(rcv, 5000);
    char *text = ketenbus_msg_get(m, "signal.narrative");
    ck_assert_str_eq(text, "second for fier");
    free(text);
    ck_assert_int_eq(ketenbus_client_ack(rcv, m), KETENBUS_OK);
    ketenbus_msg_destroy(&m);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "replaced by a newer session"), 0);
    ketenbus_client_destroy(&snd);

    /* a second receiving client of fier is the newest receiver: it replaces the first */
    ketenbus_client_t *rcv2 = kb_chain_client(&s_chain, "fier", "-rcv2");
    int64_t deadline = kb_mono_ms() + 5000;
    while (kb_chain_log_count(&s_chain, "replaced by a newer session") == 0 && kb_mono_ms() < deadline)
        ketenbus_client_poll(rcv2, 50);
    ck_assert_int_ge(kb_chain_log_count(&s_chain, "replaced by a newer session"), 1);
    ketenbus_client_destroy(&rcv2);
    ketenbus_client_destroy(&rcv);
    ketenbus_client_destroy(&politie);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("exchange");
    TCase *tc = tcase_create("exchange");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_signal_referral_update);
    tcase_add_test(tc, test_offline_recipient);
    tcase_add_test(tc, test_recv_without_waiting_reads_the_connection);
    tcase_add_test(tc, test_kill9_after_accept);
    tcase_add_test(tc, test_kill9_with_many_in_flight);
    tcase_add_test(tc, test_small_credit_in_order);
    tcase_add_test(tc, test_outbox_while_broker_down);
    tcase_add_test(tc, test_refused_by_rules);
    tcase_add_test(tc, test_fanout_without_recipients);
    tcase_add_test(tc, test_fanout_deny);
    tcase_add_test(tc, test_callback_style);
    tcase_add_test(tc, test_send_only_beside_receiver);
    tcase_add_test(tc, test_kept_deliveries_come_again);
    suite_add_tcase(s, tc);
    TCase *wide = tcase_create("wide");
    tcase_set_timeout(wide, 120);
    tcase_add_test(wide, test_fanout_past_64);
    tcase_add_test(wide, test_fanout_staging_bounded);
    suite_add_tcase(s, wide);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
