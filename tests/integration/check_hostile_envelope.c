/*
 * check_hostile_envelope.c - one envelope's content never fails the
 * broker's turn for the others.
 *
 * A raw DEALER with a chain member's real CURVE key sends a correctly
 * signed envelope with `withheld` set (the signature does not cover it;
 * only the broker may list what it withholds). It must be REJECTED as
 * malformed, with an audit record, while another agency's valid message in
 * the same burst is accepted, and the broker keeps serving. The rule
 * withholds a field, so an envelope that got through would be redacted:
 * with KB_MAX_SEALS paths listed already, that used to fail the whole turn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <zmq.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_json.h"
#include "kb_keys.h"
#include "kb_seal.h"
#include "kb_test.h"
#include "kb_util.h"

static const char *s_agencies[] = {"politie", "fier"};
static const char *s_rules = "  - id: both-ways\n    from: [politie, fier]\n    to: [politie, fier]\n"
                             "    kinds: [signal]\n"
                             "    purposes: [victim_care, child_protection, criminal_investigation]\n"
                             "    max_handling: h3\n    legal_basis: Wpg art. 19\n"
                             "    redact: [signal.narrative]\n";
static kb_chain_t s_chain;
static void *s_ctx;

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, s_rules, "");
    kb_chain_start(&s_chain);
    s_ctx = zmq_ctx_new();
}

static void s_teardown(void)
{
    zmq_ctx_term(s_ctx);
    kb_chain_cleanup(&s_chain);
}

/* A raw CURVE DEALER with the key files of agency name. */
static void *s_raw(const char *name)
{
    char path[512], pub[41], sec[41], srv[41];
    snprintf(path, sizeof path, "%s/%s.curve_secret", s_chain.keys, name);
    ck_assert_int_eq(kb_keys_load_curve_secret(path, pub, sec), KB_OK);
    ck_assert_int_eq(kb_keys_load_curve_public(s_chain.broker_cert, srv), KB_OK);
    void *s = zmq_socket(s_ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, srv, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_connect(s, s_chain.endpoint), 0);
    return s;
}

static void s_send_frame(void *s, Ketenbus__Frame *f)
{
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(kb_frame_encode(f, &buf, &len), KB_OK);
    ck_assert_int_eq(zmq_send(s, buf, len, 0), (int)len);
    free(buf);
}

/* Next frame of the given body case within 5 s, skipping others. */
static Ketenbus__Frame *s_expect(void *s, int body_case)
{
    int64_t deadline = kb_mono_ms() + 5000;
    while (kb_mono_ms() < deadline) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        ck_assert_int_ge(zmq_msg_recv(&m, s, 0), 0);
        Ketenbus__Frame *f = NULL;
        ck_assert_int_eq(kb_frame_decode(zmq_msg_data(&m), zmq_msg_size(&m), 64u << 20, &f), KB_OK);
        zmq_msg_close(&m);
        if ((int)f->body_case == body_case)
            return f;
        ketenbus__frame__free_unpacked(f, NULL);
    }
    ck_abort_msg("no frame of case %d within 5 s", body_case);
    return NULL;
}

static void s_hello(void *s)
{
    Ketenbus__Hello h;
    ketenbus__hello__init(&h);
    h.adapter_name = (char *)"hostile-envelope-test";
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_HELLO;
    f.hello = &h;
    s_send_frame(s, &f);
    ketenbus__frame__free_unpacked(s_expect(s, KETENBUS__FRAME__BODY_WELCOME), NULL);
}

/* A signal from sender to recipient, signed with the sender's key. */
static Ketenbus__Envelope *s_envelope(const char *sender, const char *recipient)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"recipients\":[\"%s\"],\"kind\":\"signal\",\"purpose\":\"victim_care\",\"handling\":\"h1\","
             "\"legal_basis\":{\"basis\":\"Wpg art. 19\",\"consent\":\"not_required\"},\"sender\":\"%s\","
             "\"signal\":{\"exploitation\":\"criminal\",\"narrative\":\"original text\"}}",
             recipient, sender);
    ProtobufCMessage *pm = NULL;
    ck_assert_msg(kb_json_decode(json, strlen(json), &ketenbus__envelope__descriptor, &pm) == KB_OK, "%s",
                  kb_last_error());
    Ketenbus__Envelope *e = (Ketenbus__Envelope *)pm;
    e->message_id.data = malloc(16);
    e->message_id.len = 16;
    ck_assert_int_eq(kb_uuid7(e->message_id.data), KB_OK);
    e->created_us = kb_now_us();
    char path[512];
    snprintf(path, sizeof path, "%s/%s.sign.pem", s_chain.keys, sender);
    EVP_PKEY *k = kb_keys_load_sign_private(path);
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(kb_seal_sign(e, k), KB_OK);
    EVP_PKEY_free(k);
    return e;
}

static void s_send_submit(void *s, Ketenbus__Envelope *e)
{
    Ketenbus__Submit sub;
    ketenbus__submit__init(&sub);
    sub.n_envelopes = 1;
    sub.envelopes = &e;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_SUBMIT;
    f.submit = &sub;
    s_send_frame(s, &f);
}

/* Set n withheld paths on e after it was signed. */
static void s_withhold(Ketenbus__Envelope *e, size_t n)
{
    e->withheld = calloc(n, sizeof *e->withheld);
    ck_assert_ptr_nonnull(e->withheld);
    for (size_t i = 0; i < n; i++) {
        e->withheld[i] = strdup("signal.observed.location");
        ck_assert_ptr_nonnull(e->withheld[i]);
    }
    e->n_withheld = n;
}

/* Rows: how many withheld paths the hostile envelope carries. */
static const size_t s_withheld_counts[] = {1, KB_MAX_SEALS};

START_TEST(test_withheld_from_adapter_rejected)
{
    void *politie = s_raw("politie"), *fier = s_raw("fier");
    s_hello(politie);
    s_hello(fier);

    Ketenbus__Envelope *bad = s_envelope("politie", "fier");
    s_withhold(bad, s_withheld_counts[_i]);
    Ketenbus__Envelope *good = s_envelope("fier", "politie");
    /* one burst: both SUBMITs are on their way before either is answered */
    s_send_submit(politie, bad);
    s_send_submit(fier, good);

    Ketenbus__Frame *r = s_expect(politie, KETENBUS__FRAME__BODY_RECEIPT);
    ck_assert_uint_eq(r->receipt->n_entries, 1);
    Ketenbus__ReceiptEntry *en = r->receipt->entries[0];
    ck_assert_int_eq(en->outcome, KETENBUS__OUTCOME__OUTCOME_REJECTED);
    ck_assert_int_eq(en->code, KETENBUS__REJECT_CODE__REJECT_MALFORMED);
    ck_assert_msg(strstr(en->reason, "withheld paths are set by the broker only") != NULL, "reason: %s", en->reason);
    ck_assert_uint_eq(en->n_recipients, 0);
    ketenbus__frame__free_unpacked(r, NULL);

    r = s_expect(fier, KETENBUS__FRAME__BODY_RECEIPT);
    ck_assert_uint_eq(r->receipt->n_entries, 1);
    ck_assert_int_eq(r->receipt->entries[0]->outcome, KETENBUS__OUTCOME__OUTCOME_ACCEPTED);
    ketenbus__frame__free_unpacked(r, NULL);

    /* and afterwards: politie's valid message is accepted */
    Ketenbus__Envelope *again = s_envelope("politie", "fier");
    s_send_submit(politie, again);
    r = s_expect(politie, KETENBUS__FRAME__BODY_RECEIPT);
    ck_assert_int_eq(r->receipt->entries[0]->outcome, KETENBUS__OUTCOME__OUTCOME_ACCEPTED);
    ketenbus__frame__free_unpacked(r, NULL);

    ketenbus__envelope__free_unpacked(bad, NULL);
    ketenbus__envelope__free_unpacked(good, NULL);
    ketenbus__envelope__free_unpacked(again, NULL);
    zmq_close(politie);
    zmq_close(fier);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED,
                                          "withheld paths are set by the broker only"),
                     1);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED, NULL), 2);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("hostile_envelope");
    TCase *tc = tcase_create("hostile_envelope");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_withheld_from_adapter_rejected, 0,
                        (int)(sizeof s_withheld_counts / sizeof s_withheld_counts[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
