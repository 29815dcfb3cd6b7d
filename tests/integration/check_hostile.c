/*
 * check_hostile.c - what a hostile or broken peer sends never crashes the
 * broker, is refused with a clear answer, and is audited.
 *
 * A raw DEALER with a chain member's real CURVE key speaks the protocol by
 * hand to send what the SDK never would: forged senders, altered signed
 * fields, garbage bytes, oversized frames, unknown protocol versions. A key
 * that is not in the chain must not get a session at all. After each test
 * the broker still accepts a valid message. A peer that pipelines hundreds
 * of SUBMITs without waiting gets every answer, in order; a send-only
 * session may not ask for deliveries. An adapter that acknowledges and
 * starts a new session at once never gets an acknowledged entry again, and
 * one that holds many deliveries without acknowledging them does not stop
 * the entries behind them from expiring. Sessions need a random routing id.
 * One envelope's content (withheld paths, which only the broker sets) is
 * refused alone and never fails the turn for the others. A notice, which
 * only the broker writes, is refused from an agency. A duplicate or an
 * envelope refused before its signature is checked leaves no officer,
 * purpose, handling code, legal basis or subject in the audit trail; a
 * duplicate's receipt gives the first one's audit index, also within one
 * SUBMIT. Text of the peer's that a refusal repeats adds no fields to the
 * broker's log line, and a seal path is not echoed as the peer wrote it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <unistd.h>
#include <zmq.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_json.h"
#include "kb_keys.h"
#include "kb_ldb.h"
#include "kb_seal.h"
#include "kb_test.h"
#include "kb_util.h"

#define MAX_BYTES 4096 /* max_message_bytes of the test chain */

/* What each test rule says besides id, from, to and kinds. */
#define S_RULE_REST                                                                                  \
    "    purposes: [victim_care, child_protection, criminal_investigation]\n    max_handling: h3\n" \
    "    legal_basis: Wpg art. 19\n"

static const char *s_agencies[] = {"politie", "fier"};
static const char *s_rules = "  - id: both-ways\n    from: [politie, fier]\n    to: [politie, fier]\n"
                             "    kinds: [signal]\n" S_RULE_REST;
/* The same rule, withholding a field from the recipient. */
#define S_RULES_REDACT                                                                               \
    "  - id: both-ways\n    from: [politie, fier]\n    to: [politie, fier]\n    kinds: [signal]\n" \
    S_RULE_REST "    redact: [signal.narrative]\n"
static kb_chain_t s_chain;
static void *s_ctx, *s_sock;

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, s_rules, "  max_message_bytes: 4096\n");
    kb_chain_start(&s_chain);
    s_ctx = zmq_ctx_new();
    s_sock = NULL;
}

static void s_teardown(void)
{
    if (s_sock)
        zmq_close(s_sock);
    zmq_ctx_term(s_ctx);
    kb_chain_cleanup(&s_chain);
}

/* A raw CURVE DEALER using the key files of `name` in dir, with routing id
 * id (id_len bytes; NULL: the one libzmq makes up). */
static void *s_raw_id(const char *dir, const char *name, const uint8_t *id, size_t id_len)
{
    char path[512], pub[41], sec[41], srv[41];
    snprintf(path, sizeof path, "%s/%s.curve_secret", dir, name);
    ck_assert_int_eq(kb_keys_load_curve_secret(path, pub, sec), KB_OK);
    ck_assert_int_eq(kb_keys_load_curve_public(s_chain.broker_cert, srv), KB_OK);
    void *s = zmq_socket(s_ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, srv, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (id)
        ck_assert_int_eq(zmq_setsockopt(s, ZMQ_ROUTING_ID, id, id_len), 0);
    ck_assert_int_eq(zmq_connect(s, s_chain.endpoint), 0);
    return s;
}

/* The same with a new random routing id, as the SDK sets. */
static void *s_raw(const char *dir, const char *name)
{
    uint8_t id[KB_ROUTING_ID_LEN];
    ck_assert_int_eq(kb_routing_id_new(id), KB_OK);
    return s_raw_id(dir, name, id, sizeof id);
}

static void s_send_frame(void *s, Ketenbus__Frame *f)
{
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(kb_frame_encode(f, &buf, &len), KB_OK);
    ck_assert_int_eq(zmq_send(s, buf, len, 0), (int)len);
    free(buf);
}

/* Send a PING without waiting. */
static void s_send_ping(void *s)
{
    Ketenbus__Ping ping;
    ketenbus__ping__init(&ping);
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_PING;
    f.ping = &ping;
    s_send_frame(s, &f);
}

/* Next frame from the broker within 5 s (NULL on timeout). */
static Ketenbus__Frame *s_next(void *s, int timeout_ms)
{
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    ck_assert_int_ge(zmq_msg_recv(&m, s, 0), 0);
    Ketenbus__Frame *f = NULL;
    ck_assert_int_eq(kb_frame_decode(zmq_msg_data(&m), zmq_msg_size(&m), 64u << 20, &f), KB_OK);
    zmq_msg_close(&m);
    return f;
}

/* Next frame of the given body case, skipping others (PONG, DELIVER). */
static Ketenbus__Frame *s_expect(void *s, int body_case)
{
    int64_t deadline = kb_mono_ms() + 5000;
    while (kb_mono_ms() < deadline) {
        Ketenbus__Frame *f = s_next(s, 200);
        if (f && (int)f->body_case == body_case)
            return f;
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
    }
    ck_abort_msg("no frame of case %d within 5 s", body_case);
    return NULL;
}

/* The next frame from the broker is ERROR NO_SESSION (within 5 s). */
static void s_expect_no_session(void *s)
{
    Ketenbus__Frame *r = s_expect(s, KETENBUS__FRAME__BODY_ERROR);
    ck_assert_int_eq(r->error->code, KETENBUS__ERROR_CODE__ERROR_CODE_NO_SESSION);
    ketenbus__frame__free_unpacked(r, NULL);
}

/* HELLO with the given credit and send_only flag; wait for WELCOME. */
static void s_send_hello(void *s, uint32_t credit, int send_only)
{
    Ketenbus__Hello h;
    ketenbus__hello__init(&h);
    h.adapter_name = (char *)"hostile-test";
    h.credit = credit;
    h.send_only = send_only;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_HELLO;
    f.hello = &h;
    s_send_frame(s, &f);
}

static void s_hello_as(void *s, uint32_t credit, int send_only)
{
    s_send_hello(s, credit, send_only);
    ketenbus__frame__free_unpacked(s_expect(s, KETENBUS__FRAME__BODY_WELCOME), NULL);
}

static void s_hello(void *s)
{
    s_hello_as(s, 0, 0);
}

/* The envelope of json (docs/JSON.md), numbered and signed with signer's
 * key. */
static Ketenbus__Envelope *s_envelope_json(const char *json, const char *signer)
{
    ProtobufCMessage *pm = NULL;
    ck_assert_msg(kb_json_decode(json, strlen(json), &ketenbus__envelope__descriptor, &pm) == KB_OK, "%s",
                  kb_last_error());
    Ketenbus__Envelope *e = (Ketenbus__Envelope *)pm;
    e->message_id.data = malloc(16);
    e->message_id.len = 16;
    ck_assert_int_eq(kb_uuid7(e->message_id.data), KB_OK);
    e->created_us = kb_now_us();
    char path[512];
    snprintf(path, sizeof path, "%s/%s.sign.pem", s_chain.keys, signer);
    EVP_PKEY *k = kb_keys_load_sign_private(path);
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(kb_seal_sign(e, k), KB_OK);
    EVP_PKEY_free(k);
    return e;
}

/* A signed signal envelope from `sender` to `recipient` (signed with
 * signer's key). */
static Ketenbus__Envelope *s_envelope_to(const char *sender, const char *signer, const char *recipient)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"recipients\":[\"%s\"],\"kind\":\"signal\",\"purpose\":\"victim_care\",\"handling\":\"h1\","
             "\"legal_basis\":{\"basis\":\"Wpg art. 19\",\"consent\":\"not_required\"},\"sender\":\"%s\","
             "\"signal\":{\"exploitation\":\"criminal\",\"narrative\":\"original text\"}}",
             recipient, sender);
    return s_envelope_json(json, signer);
}

/* The same to fier. */
static Ketenbus__Envelope *s_envelope(const char *sender, const char *signer)
{
    return s_envelope_to(sender, signer, "fier");
}

/* Send a SUBMIT of one envelope without waiting for its receipt. */
static void s_send_submit(void *s, Ketenbus__Envelope *e, uint64_t request_id)
{
    Ketenbus__Submit sub;
    ketenbus__submit__init(&sub);
    sub.n_envelopes = 1;
    sub.envelopes = &e;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.request_id = request_id;
    f.body_case = KETENBUS__FRAME__BODY_SUBMIT;
    f.submit = &sub;
    s_send_frame(s, &f);
}

/* Submit one envelope; returns its receipt entry's outcome and code. */
static void s_submit(void *s, Ketenbus__Envelope *e, int *outcome, int *code, char *reason, size_t reason_len)
{
    s_send_submit(s, e, 0);
    Ketenbus__Frame *r = s_expect(s, KETENBUS__FRAME__BODY_RECEIPT);
    ck_assert_int_eq(r->receipt->n_entries, 1);
    *outcome = r->receipt->entries[0]->outcome;
    *code = r->receipt->entries[0]->code;
    snprintf(reason, reason_len, "%s", r->receipt->entries[0]->reason);
    ketenbus__frame__free_unpacked(r, NULL);
}

/* Submit a valid signal from politie to fier on s and check it is accepted. */
static void s_submit_accepted(void *s)
{
    int outcome, code;
    char reason[512];
    Ketenbus__Envelope *e = s_envelope("politie", "politie");
    s_submit(s, e, &outcome, &code, reason, sizeof reason);
    ck_assert_msg(outcome == KETENBUS__OUTCOME__OUTCOME_ACCEPTED, "outcome %d: %s", outcome, reason);
    ketenbus__envelope__free_unpacked(e, NULL);
}

/* The broker still serves: a valid signal from politie to fier is accepted. */
static void s_still_serving(void)
{
    ketenbus_client_t *c = kb_chain_client(&s_chain, "politie", "-check");
    ketenbus_msg_t *m = kb_test_signal("fier", "still serving");
    ketenbus_receipt_t r;
    ck_assert_msg(ketenbus_client_submit(c, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_ACCEPTED);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&c);
}

START_TEST(test_forged_sender)
{
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    /* politie's connection claims to be fier, with fier's own valid signature */
    Ketenbus__Envelope *e = s_envelope("fier", "fier");
    int outcome, code;
    char reason[512];
    s_submit(s_sock, e, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(outcome, KETENBUS__OUTCOME__OUTCOME_REJECTED);
    ck_assert_int_eq(code, KETENBUS__REJECT_CODE__REJECT_SPOOFED_SENDER);
    ck_assert_msg(strstr(reason, "authenticated agency 'politie'") != NULL, "reason: %s", reason);
    ketenbus__envelope__free_unpacked(e, NULL);
    s_still_serving();
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, "does not match"), 1);
}
END_TEST

START_TEST(test_bad_signature)
{
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    int outcome, code;
    char reason[512];
    /* signed by another agency's key */
    Ketenbus__Envelope *e = s_envelope("politie", "fier");
    s_submit(s_sock, e, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(outcome, KETENBUS__OUTCOME__OUTCOME_REJECTED);
    ck_assert_int_eq(code, KETENBUS__REJECT_CODE__REJECT_BAD_SIGNATURE);
    ketenbus__envelope__free_unpacked(e, NULL);
    /* a signed field altered after signing */
    e = s_envelope("politie", "politie");
    free(e->signal->narrative);
    e->signal->narrative = strdup("altered text");
    s_submit(s_sock, e, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(outcome, KETENBUS__OUTCOME__OUTCOME_REJECTED);
    ck_assert_int_eq(code, KETENBUS__REJECT_CODE__REJECT_BAD_SIGNATURE);
    ck_assert_msg(strstr(reason, "signal.narrative") != NULL, "reason: %s", reason);
    ketenbus__envelope__free_unpacked(e, NULL);
    /* no signature at all */
    e = s_envelope("politie", "politie");
    free(e->signature.data);
    e->signature.data = NULL;
    e->signature.len = 0;
    s_submit(s_sock, e, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(code, KETENBUS__REJECT_CODE__REJECT_BAD_SIGNATURE);
    ketenbus__envelope__free_unpacked(e, NULL);
    s_still_serving();
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, "signature"), 3);
}
END_TEST

START_TEST(test_garbage_oversized_version)
{
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    /* garbage bytes */
    uint8_t junk[512];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    ck_assert_int_eq(zmq_send(s_sock, junk, sizeof junk, 0), (int)sizeof junk);
    Ketenbus__Frame *f = s_expect(s_sock, KETENBUS__FRAME__BODY_ERROR);
    ck_assert_int_eq(f->error->code, KETENBUS__ERROR_CODE__ERROR_CODE_MALFORMED);
    ketenbus__frame__free_unpacked(f, NULL);
    /* oversized: a frame just over the configured limit */
    uint8_t *big = calloc(1, MAX_BYTES + 100);
    ck_assert_int_eq(zmq_send(s_sock, big, MAX_BYTES + 100, 0), MAX_BYTES + 100);
    free(big);
    f = s_expect(s_sock, KETENBUS__FRAME__BODY_ERROR);
    ck_assert_int_eq(f->error->code, KETENBUS__ERROR_CODE__ERROR_CODE_TOO_LARGE);
    ck_assert_msg(strstr(f->error->message, "exceeds the limit of 4096") != NULL, "%s", f->error->message);
    ketenbus__frame__free_unpacked(f, NULL);
    /* an unknown protocol version */
    Ketenbus__Ping p;
    ketenbus__ping__init(&p);
    Ketenbus__Frame pf;
    ketenbus__frame__init(&pf);
    pf.body_case = KETENBUS__FRAME__BODY_PING;
    pf.ping = &p;
    pf.version = 2;
    size_t len = ketenbus__frame__get_packed_size(&pf);
    uint8_t *buf = malloc(len);
    ketenbus__frame__pack(&pf, buf); /* packed by hand: kb_frame_encode would set version 1 */
    ck_assert_int_eq(zmq_send(s_sock, buf, len, 0), (int)len);
    free(buf);
    f = s_expect(s_sock, KETENBUS__FRAME__BODY_ERROR);
    ck_assert_int_eq(f->error->code, KETENBUS__ERROR_CODE__ERROR_CODE_UNSUPPORTED_VERSION);
    ketenbus__frame__free_unpacked(f, NULL);
    /* a structurally invalid envelope (bad message id) */
    Ketenbus__Envelope *e = s_envelope("politie", "politie");
    e->message_id.len = 3;
    int outcome, code;
    char reason[512];
    s_submit(s_sock, e, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(code, KETENBUS__REJECT_CODE__REJECT_MALFORMED);
    ck_assert_msg(strstr(reason, "message_id") != NULL, "reason: %s", reason);
    e->message_id.len = 16;
    ketenbus__envelope__free_unpacked(e, NULL);
    s_still_serving();
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, "malformed frame"), 1);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, "exceeds the limit"), 1);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, "protocol version 2"), 1);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, "message_id"), 1);
}
END_TEST

START_TEST(test_no_session_before_hello)
{
    s_sock = s_raw(s_chain.keys, "politie");
    Ketenbus__Envelope *e = s_envelope("politie", "politie");
    Ketenbus__Submit sub;
    ketenbus__submit__init(&sub);
    sub.n_envelopes = 1;
    sub.envelopes = &e;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_SUBMIT;
    f.submit = &sub;
    s_send_frame(s_sock, &f);
    s_expect_no_session(s_sock);
    ketenbus__envelope__free_unpacked(e, NULL);
}
END_TEST

START_TEST(test_unknown_curve_key)
{
    /* a well-formed key pair the chain has never heard of */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/outsider", s_chain.dir);
    ck_assert_int_eq(kb_keys_generate(dir, "politie", 0), KB_OK);
    s_sock = s_raw(dir, "politie");
    Ketenbus__Hello h;
    ketenbus__hello__init(&h);
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_HELLO;
    f.hello = &h;
    s_send_frame(s_sock, &f); /* queued; the handshake fails, so it never leaves */
    Ketenbus__Frame *r = s_next(s_sock, 1500);
    ck_assert_msg(r == NULL, "an unknown key got an answer");
    s_still_serving();
    ck_assert_int_ge(kb_chain_log_count(&s_chain, "event=connect_refused"), 1);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_ge(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECT_REFUSED, "not in the chain"), 1);
}
END_TEST

/* Whoever can reach the port can make handshakes with keys the chain does
 * not know, one per connection, as fast as it can connect: the audit log
 * records the first 60 refusals of a minute one by one and counts the rest
 * in one record, so it grows by at most 61 records a minute however many
 * come. */
START_TEST(test_refused_handshakes_recorded_at_a_bounded_rate)
{
    enum { S_TRIES = 90 };
    char dir[512];
    snprintf(dir, sizeof dir, "%s/outsider", s_chain.dir);
    ck_assert_int_eq(kb_keys_generate(dir, "politie", 0), KB_OK);
    void *socks[S_TRIES];
    for (int i = 0; i < S_TRIES; i++)
        socks[i] = s_raw(dir, "politie"); /* libzmq does not reconnect after a refused handshake */
    int64_t deadline = kb_mono_ms() + 20000;
    while (kb_chain_log_count(&s_chain, "not in the chain") < 60 && kb_mono_ms() < deadline)
        usleep(50000);
    usleep(1000000); /* the other 30 */
    s_still_serving();
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "not in the chain"), 60);
    for (int i = 0; i < S_TRIES; i++)
        zmq_close(socks[i]);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    /* the rest, counted in one record at shutdown */
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "more connections refused"), 1);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECT_REFUSED, NULL), 61);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECT_REFUSED,
                                          "not recorded one by one"),
                     1);
}
END_TEST

/* The line `field` (such as "VmRSS:") of process pid's status in MiB, -1
 * if unknown. */
static long s_status_mib(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    size_t n = strlen(field);
    while (kib < 0 && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) != 0 || sscanf(line + n, "%ld", &kib) != 1)
            kib = -1;
    fclose(f);
    return kib < 0 ? -1 : kib / 1024;
}

/* Resident memory of process pid in MiB, -1 if unknown. */
static long s_rss_mib(pid_t pid)
{
    return s_status_mib(pid, "VmRSS:");
}

/* Send frame f on s as fast as the connection takes it for ms
 * milliseconds, counting in *sent the frames that went (of *len bytes);
 * the broker's RSS is sampled every 20 ms. Returns its RSS before, in
 * MiB, and its peak in *peak. */
static long s_flood(void *s, Ketenbus__Frame *f, int ms, long *sent, long *peak, size_t *len)
{
    uint8_t *buf;
    ck_assert_int_eq(kb_frame_encode(f, &buf, len), KB_OK);
    long before = s_rss_mib(s_chain.pid);
    ck_assert_int_gt(before, 0);
    *peak = before;
    *sent = 0;
    int64_t next_sample = 0;
    for (int64_t end = kb_mono_ms() + ms; kb_mono_ms() < end;) {
        if (zmq_send(s, buf, *len, ZMQ_DONTWAIT) == (int)*len)
            (*sent)++;
        else
            usleep(100); /* the connection is full: the broker is behind */
        if (kb_mono_ms() >= next_sample) {
            long now = s_rss_mib(s_chain.pid);
            *peak = now > *peak ? now : *peak;
            next_sample = kb_mono_ms() + 20;
        }
    }
    free(buf);
    return before;
}

/* Start the chain's broker again (with the disk faults preloaded if
 * faults) without AddressSanitizer's quarantine: under make test
 * SANITIZE=1 freed memory is held back in it (256 MiB), which would count
 * in a test of the broker's memory. */
static void s_restart_without_quarantine(int faults)
{
    kb_chain_stop(&s_chain);
    const char *prev = getenv("ASAN_OPTIONS");
    char asan[512];
    snprintf(asan, sizeof asan, "%s%squarantine_size_mb=0", prev ? prev : "", prev ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    s_chain.faults = faults;
    kb_chain_start(&s_chain);
}

/* An adapter sends SUBMITs far faster than the broker can check them
 * (each holds envelopes whose signatures do not verify): what waits is
 * held by libzmq up to a bounded number of frames per connection, then
 * by the kernel and the sender, so the broker's memory stays bounded. */
START_TEST(test_flood_of_submits_keeps_memory_bounded)
{
    enum { S_ENVS = 10, S_FLOOD_MS = 4000 };
    s_restart_without_quarantine(0);
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    Ketenbus__Envelope *e = s_envelope("politie", "fier"); /* signed with another agency's key */
    Ketenbus__Envelope *envs[S_ENVS];
    for (int i = 0; i < S_ENVS; i++)
        envs[i] = e;
    Ketenbus__Submit sub;
    ketenbus__submit__init(&sub);
    sub.n_envelopes = S_ENVS;
    sub.envelopes = envs;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_SUBMIT;
    f.submit = &sub;
    size_t len;
    long sent, peak, before = s_flood(s_sock, &f, S_FLOOD_MS, &sent, &peak, &len);
    ck_assert_uint_le(len, 4096); /* under the chain's max_message_bytes: each is checked */
    ketenbus__envelope__free_unpacked(e, NULL);
    zmq_close(s_sock);
    s_sock = NULL;
    fprintf(stderr, "flood: %ld SUBMITs of %zu B in %d ms; broker RSS %ld MiB before, peak %ld MiB\n", sent, len,
            S_FLOOD_MS, before, peak);
    /* 560 MiB and growing when libzmq held up to 100,000 frames a connection */
    ck_assert_int_lt(peak - before, 128);
    s_still_serving();
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    /* they were checked and refused, not dropped unread */
    char *log = NULL, *at;
    size_t log_len = 0;
    long rejected = -1;
    ck_assert_int_eq(kb_file_read(s_chain.log, 256u << 20, &log, &log_len), KB_OK);
    ck_assert_ptr_nonnull(at = strstr(log, "event=stopping"));
    for (char *next; (next = strstr(at + 1, "event=stopping")) != NULL;)
        at = next; /* the broker of this test, not the one stopped before it */
    ck_assert_ptr_nonnull(at = strstr(at, "rejected="));
    ck_assert_int_eq(sscanf(at, "rejected=%ld", &rejected), 1);
    free(log);
    ck_assert_int_ge(rejected, (long)S_ENVS * 100);
}
END_TEST

/* Large signals that the rules fan out to 64 agencies: each accepted
 * envelope is staged once per recipient, so what a turn reads (bounded)
 * is not what it stages. The broker writes what is staged once it reaches
 * KB_STAGE_COST_MAX (16 MiB), also within a turn, so its memory does not
 * follow the fan-out: the 16 SUBMITs below (4 MiB on the wire) grew its
 * anonymous memory by about 480 MiB before that bound, and 48 of them by
 * three times that. Now about 135 MiB, and 165 MiB with 48: the batch
 * staged and the one being written, each up to twice the bound, and
 * LevelDB's two memtables holding as much. Measured as anonymous memory:
 * LevelDB maps the tables it compacts, which counts in VmRSS too (and
 * grows with the data written, as page cache does). */
#define S_FAN 64
START_TEST(test_fanout_keeps_memory_bounded)
{
    enum { S_FRAMES = 16, S_PER = 16, S_TEXT = 16000, S_GROWTH_MAX_MIB = 200 };
    static char names[S_FAN][8];
    const char *ids[S_FAN + 1] = {"politie"};
    char to[S_FAN * 6 + 8] = "[";
    for (int i = 0; i < S_FAN; i++) {
        snprintf(names[i], sizeof names[i], "r%02d", i);
        ids[i + 1] = names[i];
        strcat(to, names[i]);
        strcat(to, i + 1 < S_FAN ? ", " : "]");
    }
    char rules[1024];
    snprintf(rules, sizeof rules, "  - id: fan\n    from: [politie]\n    to: %s\n    kinds: [signal]\n" S_RULE_REST, to);
    kb_chain_cleanup(&s_chain);
    kb_chain_init(&s_chain, ids, S_FAN + 1, rules, NULL);
    const char *prev = getenv("ASAN_OPTIONS"); /* as s_restart_without_quarantine */
    char asan[512];
    snprintf(asan, sizeof asan, "%s%squarantine_size_mb=0", prev ? prev : "", prev ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    kb_chain_start(&s_chain);

    /* no recipients named: the rule reaches all 64 */
    char *text = malloc(S_TEXT + 1), *json = malloc(S_TEXT + 1024);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(json);
    memset(text, 'x', S_TEXT);
    text[S_TEXT] = '\0';
    snprintf(json, S_TEXT + 1024,
             "{\"kind\":\"signal\",\"purpose\":\"victim_care\",\"handling\":\"h1\",\"legal_basis\":{\"basis\":"
             "\"Wpg art. 19\",\"consent\":\"not_required\"},\"sender\":\"politie\",\"signal\":{\"exploitation\":"
             "\"criminal\",\"narrative\":\"%s\"}}",
             text);
    uint8_t *frames[S_FRAMES];
    size_t lens[S_FRAMES];
    for (int k = 0; k < S_FRAMES; k++) {
        Ketenbus__Envelope *envs[S_PER];
        for (int i = 0; i < S_PER; i++)
            envs[i] = s_envelope_json(json, "politie");
        Ketenbus__Submit sub;
        ketenbus__submit__init(&sub);
        sub.n_envelopes = S_PER;
        sub.envelopes = envs;
        Ketenbus__Frame f;
        ketenbus__frame__init(&f);
        f.request_id = (uint64_t)k + 1;
        f.body_case = KETENBUS__FRAME__BODY_SUBMIT;
        f.submit = &sub;
        ck_assert_int_eq(kb_frame_encode(&f, &frames[k], &lens[k]), KB_OK);
        for (int i = 0; i < S_PER; i++)
            ketenbus__envelope__free_unpacked(envs[i], NULL);
    }
    free(text);
    free(json);

    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    long before = s_rss_mib(s_chain.pid), peak = before;
    long before_anon = s_status_mib(s_chain.pid, "RssAnon:"), peak_anon = before_anon;
    ck_assert_int_gt(before, 0);
    for (int k = 0; k < S_FRAMES; k++) {
        ck_assert_int_eq(zmq_send(s_sock, frames[k], lens[k], 0), (int)lens[k]);
        free(frames[k]);
    }
    /* every envelope is answered: accepted, or refused for now when its
     * SUBMIT's fan-out fills what one batch may stage */
    int answered = 0, accepted = 0;
    int64_t end = kb_mono_ms() + 60000;
    while (answered < S_FRAMES * S_PER && kb_mono_ms() < end) {
        zmq_pollitem_t it = {s_sock, 0, ZMQ_POLLIN, 0};
        long now = s_rss_mib(s_chain.pid), anon = s_status_mib(s_chain.pid, "RssAnon:");
        peak = now > peak ? now : peak;
        peak_anon = anon > peak_anon ? anon : peak_anon;
        if (zmq_poll(&it, 1, 10) <= 0)
            continue;
        Ketenbus__Frame *r = s_next(s_sock, 1000);
        ck_assert_ptr_nonnull(r);
        if (r->body_case == KETENBUS__FRAME__BODY_RECEIPT) {
            for (size_t i = 0; i < r->receipt->n_entries; i++) {
                const Ketenbus__ReceiptEntry *re = r->receipt->entries[i];
                answered++;
                accepted += re->outcome == KETENBUS__OUTCOME__OUTCOME_ACCEPTED;
                ck_assert_msg(re->outcome == KETENBUS__OUTCOME__OUTCOME_ACCEPTED ||
                                  (re->code == KETENBUS__REJECT_CODE__REJECT_INTERNAL && strstr(re->reason, "retry later")),
                              "%d %d %s", re->outcome, re->code, re->reason);
            }
        }
        ketenbus__frame__free_unpacked(r, NULL);
    }
    fprintf(stderr,
            "fan-out: %d SUBMITs of %d x %d B to %d agencies, %d accepted: broker RSS %ld MiB before, peak %ld MiB; "
            "anonymous %ld MiB before, peak %ld MiB\n",
            S_FRAMES, S_PER, S_TEXT, S_FAN, accepted, before, peak, before_anon, peak_anon);
    ck_assert_int_eq(answered, S_FRAMES * S_PER);
    ck_assert_int_ge(accepted, S_FRAMES); /* at least the first of each SUBMIT */
    ck_assert_int_lt(peak_anon - before_anon, S_GROWTH_MAX_MIB);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
}
END_TEST

/* While the disk stalls on a synced commit (8 s), an adapter floods the
 * broker with PINGs, which stage nothing but each queue a PONG. The loop
 * holds only a bounded amount of replies, then waits for the disk and
 * leaves what comes to libzmq's bounded receive queue, which pushes back on
 * the sender: the broker's memory stays bounded (it grew by over 200 MiB
 * in 6 s when every PONG was held until the batch was written). */
START_TEST(test_ping_flood_during_slow_commit_keeps_memory_bounded)
{
    /* the broker holds up to 32 MiB of replies (KB_REPLIES_BYTES_MAX) and
     * their allocator's overhead: about 35 MiB more, with or without ASan */
    enum { S_FLOOD_MS = 6000, S_GROWTH_MAX_MIB = 64 };
    s_restart_without_quarantine(1);
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    kb_chain_fault(&s_chain, "fdatasync-stall", 1);
    /* its batch is synced, and stalls; the PINGs after it arrive while the
     * committer waits for the disk */
    Ketenbus__Envelope *e = s_envelope("politie", "politie");
    s_send_submit(s_sock, e, 1);
    ketenbus__envelope__free_unpacked(e, NULL);
    Ketenbus__Ping ping;
    ketenbus__ping__init(&ping);
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_PING;
    f.ping = &ping;
    size_t len;
    long sent, peak, before = s_flood(s_sock, &f, S_FLOOD_MS, &sent, &peak, &len);
    kb_chain_fault(&s_chain, "fdatasync-stall", 0);
    fprintf(stderr, "ping flood during a stalled commit: %ld PINGs in %d ms; broker RSS %ld MiB before, peak %ld MiB\n",
            sent, S_FLOOD_MS, before, peak);
    ck_assert_int_lt(peak - before, S_GROWTH_MAX_MIB);
    /* the flooding connection may be gone: while the loop waits, its
     * ZMTP heartbeat answers wait behind its PINGs. Once the disk is back
     * the broker answers again. */
    zmq_close(s_sock);
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    s_send_frame(s_sock, &f);
    ketenbus__frame__free_unpacked(s_expect(s_sock, KETENBUS__FRAME__BODY_PONG), NULL);
    s_still_serving();
}
END_TEST

/* fier is taken out of the chain while its connection stays open (ZeroMQ
 * keeps it): whatever that connection sends now, garbage and messages of
 * several parts included, is refused with ERROR_CODE_NOT_IN_CHAIN and
 * recorded only within the limit of refused connections, never audited
 * frame by frame. That limit is its own: an outsider's key tried after the
 * flood is still named. */
START_TEST(test_revoked_connection_gets_nothing_done)
{
    s_sock = s_raw(s_chain.keys, "fier");
    s_hello(s_sock);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "broker:\n  id: test-broker\n  listen: %s\n  data_dir: data\n  key_dir: keys\n"
             "  max_message_bytes: 4096\nagencies:\n  - id: politie\n    name: Agency politie\n"
             "    curve_cert: keys/politie.curve\n    signing_key: keys/politie.sign.pub.pem\nrules: []\n",
             s_chain.endpoint);
    kb_chain_write_config(&s_chain, cfg);
    ck_assert_int_eq(kill(s_chain.pid, SIGHUP), 0);
    for (int64_t end = kb_mono_ms() + 10000;
         kb_chain_log_count(&s_chain, "event=rules_loaded") < 1 && kb_mono_ms() < end;)
        usleep(20000);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=rules_loaded"), 1);
    uint8_t junk[3] = {0xff, 0x01, 0x02};
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(zmq_send(s_sock, junk, sizeof junk, 0), (int)sizeof junk);
    for (int i = 0; i < 100; i++) { /* one answer each: all of them read */
        Ketenbus__Frame *f = s_expect(s_sock, KETENBUS__FRAME__BODY_ERROR);
        ck_assert_int_eq(f->error->code, KETENBUS__ERROR_CODE__ERROR_CODE_NOT_IN_CHAIN);
        ketenbus__frame__free_unpacked(f, NULL);
    }
    /* the same for messages of two parts, which no frame is */
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(zmq_send(s_sock, junk, sizeof junk, ZMQ_SNDMORE), (int)sizeof junk);
        ck_assert_int_eq(zmq_send(s_sock, junk, sizeof junk, 0), (int)sizeof junk);
    }
    for (int i = 0; i < 100; i++) {
        Ketenbus__Frame *f = s_expect(s_sock, KETENBUS__FRAME__BODY_ERROR);
        ck_assert_int_eq(f->error->code, KETENBUS__ERROR_CODE__ERROR_CODE_NOT_IN_CHAIN);
        ketenbus__frame__free_unpacked(f, NULL);
    }
    void *pol = s_raw(s_chain.keys, "politie"); /* still in the chain: still served */
    s_hello(pol);
    zmq_close(pol);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/outsider", s_chain.dir);
    ck_assert_int_eq(kb_keys_generate(dir, "politie", 0), KB_OK);
    void *outsider = s_raw(dir, "politie");
    for (int64_t end = kb_mono_ms() + 10000;
         kb_chain_log_count(&s_chain, "not in the chain") < 1 && kb_mono_ms() < end;)
        usleep(20000);
    zmq_close(outsider);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, NULL), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECT_REFUSED,
                                          "frame refused: the CURVE key"),
                     60);
    /* the outsider named, though the revoked connection used up its own limit */
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECT_REFUSED,
                                          "not in the chain (from"),
                     1);
    /* the other 140, counted in one record at shutdown */
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECT_REFUSED,
                                          "140 more frames refused on connections whose key left the chain"),
                     1);
}
END_TEST

/* The broker's side of revocation, seen on the wire: a connection whose
 * key a reload replaced gets no DELIVER any more, neither of the message it
 * had in hand nor of those that arrive for its agency afterwards; HELLO on
 * it is answered with ERROR_CODE_NOT_IN_CHAIN. A connection with the new
 * key gets all three. */
START_TEST(test_replaced_key_connection_gets_no_delivery)
{
    s_sock = s_raw(s_chain.keys, "fier");
    s_hello_as(s_sock, 16, 0);
    void *pol = s_raw(s_chain.keys, "politie");
    s_hello(pol);
    s_submit_accepted(pol);
    ketenbus__frame__free_unpacked(s_expect(s_sock, KETENBUS__FRAME__BODY_DELIVER), NULL); /* in hand */
    char dir[512], cfg[2048];
    snprintf(dir, sizeof dir, "%s/keys2", s_chain.dir);
    ck_assert_int_eq(kb_keys_generate(dir, "fier", 0), KB_OK);
    snprintf(cfg, sizeof cfg,
             "broker:\n  id: test-broker\n  listen: %s\n  data_dir: data\n  key_dir: keys\n"
             "  max_message_bytes: 4096\nagencies:\n  - id: politie\n    name: Agency politie\n"
             "    curve_cert: keys/politie.curve\n    signing_key: keys/politie.sign.pub.pem\n"
             "  - id: fier\n    name: Agency fier\n    curve_cert: keys2/fier.curve\n"
             "    signing_key: keys/fier.sign.pub.pem\nrules:\n%s",
             s_chain.endpoint, s_rules);
    kb_chain_write_config(&s_chain, cfg);
    ck_assert_int_eq(kill(s_chain.pid, SIGHUP), 0);
    for (int64_t end = kb_mono_ms() + 10000;
         kb_chain_log_count(&s_chain, "event=rules_loaded") < 1 && kb_mono_ms() < end;)
        usleep(20000);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=rules_loaded"), 1);
    for (int i = 0; i < 2; i++)
        s_submit_accepted(pol);
    zmq_close(pol);
    s_send_hello(s_sock, 16, 0);
    int refusals = 0;
    for (int64_t end = kb_mono_ms() + 1500; kb_mono_ms() < end;) {
        Ketenbus__Frame *f = s_next(s_sock, 100);
        if (!f)
            continue;
        ck_assert_msg(f->body_case == KETENBUS__FRAME__BODY_ERROR,
                      "a frame of case %d reached a connection whose key left the chain", (int)f->body_case);
        ck_assert_int_eq(f->error->code, KETENBUS__ERROR_CODE__ERROR_CODE_NOT_IN_CHAIN);
        refusals++;
        ketenbus__frame__free_unpacked(f, NULL);
    }
    ck_assert_int_eq(refusals, 1);
    void *fresh = s_raw(dir, "fier");
    s_hello_as(fresh, 16, 0);
    size_t delivered = 0;
    for (int64_t end = kb_mono_ms() + 5000; delivered < 3 && kb_mono_ms() < end;) {
        Ketenbus__Frame *f = s_next(fresh, 100);
        if (f && f->body_case == KETENBUS__FRAME__BODY_DELIVER)
            delivered += f->deliver->n_deliveries;
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
    }
    ck_assert_uint_eq(delivered, 3);
    zmq_close(fresh);
}
END_TEST

START_TEST(test_unchecked_signatures_for_benchmarks)
{
    /* verify_signatures: false (benchmarks only) skips the Ed25519 check but
     * still takes the sender from the CURVE key */
    kb_chain_cleanup(&s_chain);
    kb_chain_init(&s_chain, s_agencies, 2, s_rules, "  max_message_bytes: 4096\n  verify_signatures: false\n");
    kb_chain_start(&s_chain);
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    int outcome, code;
    char reason[512];
    Ketenbus__Envelope *e = s_envelope("politie", "fier");
    s_submit(s_sock, e, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(outcome, KETENBUS__OUTCOME__OUTCOME_ACCEPTED);
    ketenbus__envelope__free_unpacked(e, NULL);
    e = s_envelope("fier", "fier");
    s_submit(s_sock, e, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(code, KETENBUS__REJECT_CODE__REJECT_SPOOFED_SENDER);
    ketenbus__envelope__free_unpacked(e, NULL);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=signatures_unchecked"), 1);
}
END_TEST

/* A send-only session (HELLO send_only) may submit but not ask for
 * deliveries: CREDIT is refused with ERROR_CODE_UNEXPECTED, and the
 * session goes on. */
START_TEST(test_credit_on_send_only_session)
{
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello_as(s_sock, 10, 1); /* the credit is ignored: a send-only session has none */
    Ketenbus__Credit cr;
    ketenbus__credit__init(&cr);
    cr.credit = 5;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.request_id = 42;
    f.body_case = KETENBUS__FRAME__BODY_CREDIT;
    f.credit = &cr;
    s_send_frame(s_sock, &f);
    Ketenbus__Frame *e = s_expect(s_sock, KETENBUS__FRAME__BODY_ERROR);
    ck_assert_int_eq(e->error->code, KETENBUS__ERROR_CODE__ERROR_CODE_UNEXPECTED);
    ck_assert_uint_eq(e->request_id, 42);
    ck_assert_msg(strstr(e->error->message, "send-only") != NULL, "%s", e->error->message);
    ketenbus__frame__free_unpacked(e, NULL);
    int outcome, code;
    char reason[512];
    Ketenbus__Envelope *env = s_envelope("politie", "politie");
    s_submit(s_sock, env, &outcome, &code, reason, sizeof reason);
    ck_assert_msg(outcome == KETENBUS__OUTCOME__OUTCOME_ACCEPTED, "%s", reason);
    ketenbus__envelope__free_unpacked(env, NULL);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "credit=0 send_only=1"), 1);
}
END_TEST

/* Send-only sessions end only by timeout, so an agency that keeps
 * connecting may hold at most 16 (KB_SENDERS_PER_AGENCY): the 17th ends
 * the least recently seen one, which then has no session, while the newest
 * still has. */
START_TEST(test_send_only_sessions_are_capped)
{
    enum { N = 17 };
    void *socks[N];
    for (int i = 0; i < N; i++) {
        socks[i] = s_raw(s_chain.keys, "politie");
        s_hello_as(socks[i], 0, 1);
    }
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "send-only sessions: the least recently seen ends"), 1);
    s_send_ping(socks[0]);
    s_expect_no_session(socks[0]);
    s_send_ping(socks[N - 1]);
    ketenbus__frame__free_unpacked(s_expect(socks[N - 1], KETENBUS__FRAME__BODY_PONG), NULL);
    for (int i = 0; i < N; i++)
        zmq_close(socks[i]);
    s_still_serving();
}
END_TEST

/* The cap holds for sessions a second HELLO turns send-only too: 17
 * connections that each say HELLO and then HELLO send_only leave politie
 * 16 send-only sessions, not 17 (else one agency could fill every session
 * slot, and the eviction of a full table would end other agencies'
 * send-only sessions). A send-only session saying HELLO send_only again
 * ends no other. */
START_TEST(test_send_only_cap_holds_for_restarted_sessions)
{
    enum { N = 17 };
    void *socks[N];
    for (int i = 0; i < N; i++) {
        socks[i] = s_raw(s_chain.keys, "politie");
        s_hello_as(socks[i], 10, 0);
        s_hello_as(socks[i], 0, 1);
    }
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "send-only sessions: the least recently seen ends"), 1);
    s_hello_as(socks[N - 1], 0, 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "send-only sessions: the least recently seen ends"), 1);
    s_send_ping(socks[0]);
    s_expect_no_session(socks[0]);
    for (int i = 1; i < N; i++) {
        s_send_ping(socks[i]);
        ketenbus__frame__free_unpacked(s_expect(socks[i], KETENBUS__FRAME__BODY_PONG), NULL);
    }
    for (int i = 0; i < N; i++)
        zmq_close(socks[i]);
    s_still_serving();
}
END_TEST

/* What a pipelining peer sent and what came back to it. */
typedef struct {
    void *sock;              /* its raw DEALER */
    uint8_t ids[300][16];    /* message id of SUBMIT i */
    int got;                 /* receipt entries so far */
    int frames;              /* RECEIPT frames so far */
    int pong_after;          /* entries before the PONG (-1: none yet) */
} s_pipe_t;

/* Check one frame that came back to peer p; forged: index of the envelope
 * with a forged sender (-1: none). */
static void s_pipe_frame(s_pipe_t *p, Ketenbus__Frame *f, int n, int forged, uint64_t ping_req)
{
    if (f->body_case == KETENBUS__FRAME__BODY_PONG && f->request_id == ping_req) {
        ck_assert_int_eq(p->pong_after, -1);
        p->pong_after = p->got;
    } else if (f->body_case == KETENBUS__FRAME__BODY_RECEIPT) {
        p->frames++;
        ck_assert_uint_ge(f->receipt->n_entries, 1);
        for (size_t k = 0; k < f->receipt->n_entries; k++, p->got++) {
            const Ketenbus__ReceiptEntry *r = f->receipt->entries[k];
            ck_assert_int_lt(p->got, n);
            ck_assert_msg(r->message_id.len == 16 && memcmp(r->message_id.data, p->ids[p->got], 16) == 0,
                          "entry %d answers another envelope than SUBMIT %d", p->got, p->got);
            if (p->got == forged)
                ck_assert_int_eq(r->code, KETENBUS__REJECT_CODE__REJECT_SPOOFED_SENDER);
            else
                ck_assert_msg(r->outcome == KETENBUS__OUTCOME__OUTCOME_ACCEPTED, "SUBMIT %d: %s", p->got, r->reason);
        }
        ck_assert_uint_eq(f->request_id, (uint64_t)p->got); /* the SUBMIT of its last entry */
    }
}

/* Two peers send 300 SUBMITs of one envelope each, interleaved and without
 * waiting; politie has a PING in the middle and a forged sender among its
 * envelopes. The broker may answer several SUBMITs of a peer with one
 * RECEIPT: every envelope still gets exactly one entry, in the order its
 * peer sent it; each RECEIPT carries the request_id of the SUBMIT its last
 * entry answers; the PONG comes after the receipts of the SUBMITs before
 * the PING and before those after it. */
START_TEST(test_pipelined_submits_answered_in_order)
{
    enum { N = 300, PING_AT = 150, FORGED = 77, PING_REQ = 100000 };
    static const char *names[2] = {"politie", "fier"};
    s_pipe_t *p = calloc(2, sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (int k = 0; k < 2; k++) {
        p[k].sock = s_raw(s_chain.keys, names[k]);
        p[k].pong_after = -1;
        s_hello(p[k].sock);
    }
    /* every frame is encoded and signed first, then all go in one burst,
     * so the broker finds many SUBMITs of each peer in one turn */
    uint8_t *bufs[2][N + 1];
    size_t lens[2][N + 1], nf[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 2; k++) {
            Ketenbus__Frame f;
            ketenbus__frame__init(&f);
            if (k == 0 && i == PING_AT) {
                Ketenbus__Ping ping;
                ketenbus__ping__init(&ping);
                f.request_id = PING_REQ;
                f.body_case = KETENBUS__FRAME__BODY_PING;
                f.ping = &ping;
                ck_assert_int_eq(kb_frame_encode(&f, &bufs[k][nf[k]], &lens[k][nf[k]]), KB_OK);
                nf[k]++;
                ketenbus__frame__init(&f);
            }
            Ketenbus__Envelope *e = s_envelope_to(k == 0 && i == FORGED ? "fier" : names[k], names[k], names[1 - k]);
            memcpy(p[k].ids[i], e->message_id.data, 16);
            Ketenbus__Submit sub;
            ketenbus__submit__init(&sub);
            sub.n_envelopes = 1;
            sub.envelopes = &e;
            f.request_id = (uint64_t)i + 1; /* SUBMIT i */
            f.body_case = KETENBUS__FRAME__BODY_SUBMIT;
            f.submit = &sub;
            ck_assert_int_eq(kb_frame_encode(&f, &bufs[k][nf[k]], &lens[k][nf[k]]), KB_OK);
            nf[k]++;
            ketenbus__envelope__free_unpacked(e, NULL);
        }
    }
    for (size_t j = 0; j < N + 1; j++)
        for (int k = 0; k < 2; k++)
            if (j < nf[k]) {
                ck_assert_int_eq(zmq_send(p[k].sock, bufs[k][j], lens[k][j], 0), (int)lens[k][j]);
                free(bufs[k][j]);
            }
    int64_t deadline = kb_mono_ms() + 30000;
    while ((p[0].got < N || p[1].got < N) && kb_mono_ms() < deadline) {
        for (int k = 0; k < 2; k++) {
            Ketenbus__Frame *f = s_next(p[k].sock, 50);
            if (!f)
                continue;
            s_pipe_frame(&p[k], f, N, k == 0 ? FORGED : -1, PING_REQ);
            ketenbus__frame__free_unpacked(f, NULL);
        }
    }
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(p[k].got, N);
        fprintf(stderr, "pipelined: %s: %d SUBMITs answered by %d RECEIPT frames\n", names[k], N, p[k].frames);
        zmq_close(p[k].sock);
    }
    ck_assert_int_eq(p[0].pong_after, PING_AT);
    /* a burst of 600 is not answered one RECEIPT per SUBMIT */
    ck_assert_int_lt(p[0].frames + p[1].frames, 2 * N);
    free(p);
    s_still_serving();
}
END_TEST

/* Send an ACK of tags[0..n) without waiting. */
static void s_send_ack(void *s, uint64_t *tags, size_t n)
{
    Ketenbus__Ack a;
    ketenbus__ack__init(&a);
    a.n_tags = n;
    a.tags = tags;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_ACK;
    f.ack = &a;
    s_send_frame(s, &f);
}

/* Deliveries to s within ms (or until want tags): their tags in tags[],
 * how many in the return value. A WELCOME or PONG on the way is skipped. */
static size_t s_delivered(void *s, uint64_t *tags, size_t want, int ms)
{
    size_t n = 0;
    int64_t deadline = kb_mono_ms() + ms;
    while (n < want && kb_mono_ms() < deadline) {
        Ketenbus__Frame *f = s_next(s, 50);
        if (!f)
            continue;
        ck_assert_msg(f->body_case != KETENBUS__FRAME__BODY_ERROR, "ERROR frame: %s", f->error->message);
        if (f->body_case == KETENBUS__FRAME__BODY_DELIVER)
            for (size_t i = 0; i < f->deliver->n_deliveries; i++) {
                ck_assert_uint_lt(n, want);
                tags[n++] = f->deliver->deliveries[i]->tag;
            }
        ketenbus__frame__free_unpacked(f, NULL);
    }
    return n;
}

/* The queue count the broker reports in a PONG. */
static uint64_t s_queued(void *s)
{
    s_send_ping(s);
    Ketenbus__Frame *r = s_expect(s, KETENBUS__FRAME__BODY_PONG);
    uint64_t q = r->pong->queued;
    ketenbus__frame__free_unpacked(r, NULL);
    return q;
}

/* An adapter that acknowledges deliveries and says HELLO again in the same
 * breath (a restart, or the SDK after a silent broker) gets what it has
 * not acknowledged, and never again what it has: the acknowledgements are
 * staged, not yet in the store, when the new session reads the queue.
 * Each entry leaves the queue once, and the queue count stays right, also
 * after a restart of the broker. */
START_TEST(test_acked_not_redelivered_after_hello)
{
    enum { N = 3, ROUNDS = 8 };
    void *snd = s_raw(s_chain.keys, "politie");
    s_hello(snd);
    s_sock = s_raw(s_chain.keys, "fier");
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) {
            Ketenbus__Envelope *e = s_envelope("politie", "politie");
            int outcome, code;
            char reason[512];
            s_submit(snd, e, &outcome, &code, reason, sizeof reason);
            ck_assert_msg(outcome == KETENBUS__OUTCOME__OUTCOME_ACCEPTED, "%s", reason);
            ketenbus__envelope__free_unpacked(e, NULL);
        }
        s_hello_as(s_sock, N - 1, 0);
        uint64_t first[N], again[N];
        ck_assert_uint_eq(s_delivered(s_sock, first, N - 1, 5000), N - 1);
        /* acknowledge what came, and start a new session at once */
        uint8_t *bufs[N];
        size_t lens[N];
        for (int i = 0; i < N; i++) {
            Ketenbus__Frame f;
            ketenbus__frame__init(&f);
            Ketenbus__Ack a;
            Ketenbus__Hello h;
            if (i < N - 1) {
                ketenbus__ack__init(&a);
                a.n_tags = 1;
                a.tags = &first[i];
                f.body_case = KETENBUS__FRAME__BODY_ACK;
                f.ack = &a;
            } else {
                ketenbus__hello__init(&h);
                h.adapter_name = (char *)"hostile-test";
                h.credit = N;
                f.body_case = KETENBUS__FRAME__BODY_HELLO;
                f.hello = &h;
            }
            ck_assert_int_eq(kb_frame_encode(&f, &bufs[i], &lens[i]), KB_OK);
        }
        for (int i = 0; i < N; i++) {
            ck_assert_int_eq(zmq_send(s_sock, bufs[i], lens[i], 0), (int)lens[i]);
            free(bufs[i]);
        }
        /* only the one not acknowledged comes again, and nothing else */
        size_t n = s_delivered(s_sock, again, N, 1500);
        ck_assert_msg(n == 1, "round %d: %zu deliveries after the new HELLO, want 1 (the first was tag %llu)", round,
                      n, (unsigned long long)(n ? again[0] : 0));
        for (int i = 0; i < N - 1; i++)
            ck_assert_msg(again[0] != first[i], "round %d: acknowledged tag %llu delivered again", round,
                          (unsigned long long)first[i]);
        s_send_ack(s_sock, again, 1);
        ck_assert_uint_eq(s_queued(s_sock), 0);
    }
    zmq_close(snd);
    zmq_close(s_sock);
    s_sock = NULL;
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ACKNOWLEDGED, NULL), ROUNDS * N);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "commit_failed"), 0);
    /* the count on disk is right too: nothing waits after a restart */
    kb_chain_start(&s_chain);
    s_sock = s_raw(s_chain.keys, "fier");
    s_hello_as(s_sock, N, 0);
    ck_assert_uint_eq(s_queued(s_sock), 0);
    s_still_serving();
    uint64_t late[1];
    ck_assert_uint_eq(s_delivered(s_sock, late, 1, 3000), 1); /* still serving's message, once */
}
END_TEST

/* A recipient that holds more deliveries than expiry looks at in one check
 * (1,024) and never acknowledges them does not keep the entries behind them
 * from expiring: expiry passes the entries in flight by. */
START_TEST(test_expiry_passes_many_in_flight)
{
    enum { HELD = 1500, LATE = 5 };
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    kb_chain_cleanup(&s_chain);
    kb_chain_init(&s_chain, s_agencies, 2, s_rules, "  max_message_bytes: 4096\n  message_ttl: 2s\n");
    kb_chain_start(&s_chain);
    s_sock = s_raw(s_chain.keys, "fier");
    s_hello_as(s_sock, HELD, 0);
    void *snd = s_raw(s_chain.keys, "politie");
    s_hello(snd);
    for (int i = 0; i < HELD + LATE; i++) {
        Ketenbus__Envelope *e = s_envelope("politie", "politie");
        s_send_submit(snd, e, (uint64_t)i + 1);
        ketenbus__envelope__free_unpacked(e, NULL);
    }
    uint64_t *tags = calloc(HELD, sizeof *tags);
    ck_assert_ptr_nonnull(tags);
    ck_assert_uint_eq(s_delivered(s_sock, tags, HELD, 10000), HELD); /* held, never acknowledged */
    free(tags);
    /* the LATE ones were never delivered (no credit left) and expire; the
     * HELD ones are in flight and stay */
    uint64_t queued = 0;
    int64_t deadline = kb_mono_ms() + 10000;
    while ((queued = s_queued(s_sock)) > HELD && kb_mono_ms() < deadline)
        usleep(200000);
    ck_assert_uint_eq(queued, HELD);
    zmq_close(snd);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED, NULL), LATE);
}
END_TEST


/* An expiry's audit record says what was done about it: a message that
 * expires unread is told to its sender, and that notice, left unread in
 * its turn, expires without a notice about it. */
START_TEST(test_expiry_reason_says_what_was_done)
{
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    kb_chain_cleanup(&s_chain);
    kb_chain_init(&s_chain, s_agencies, 2, s_rules, "  max_message_bytes: 4096\n  message_ttl: 1s\n");
    kb_chain_start(&s_chain);
    void *politie = s_raw(s_chain.keys, "politie");
    s_hello(politie);
    s_submit_accepted(politie); /* fier is not there */
    zmq_close(politie);         /* nor is politie, to read the notice */
    usleep(5000000);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED, NULL), 2);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED, "sender notified"), 1);
    ck_assert_int_eq(
        kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED, "a notice of the broker"), 1);
}
END_TEST

/* A queue entry that no longer decrypts (damaged on disk) stays queued for
 * an operator, but the session moves past it: it is logged once, not at
 * every turn, and what comes after it is delivered. */
START_TEST(test_unreadable_queue_entry_passed_by)
{
    void *politie = s_raw(s_chain.keys, "politie");
    s_hello(politie);
    s_submit_accepted(politie);
    s_submit_accepted(politie);
    zmq_close(politie);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    char data[600];
    snprintf(data, sizeof data, "%s/data", s_chain.dir);
    kb_ldb_t l;
    kb_ldb_open(&l, data);
    const uint8_t key[14] = {'q', 'f', 'i', 'e', 'r', 0, 0, 0, 0, 0, 0, 0, 0, 1}; /* fier's tag 1, the last */
    char *err = NULL;
    size_t vl = 0;
    char *v = leveldb_get(l.db, l.ro, (const char *)key, sizeof key, &vl, &err);
    ck_assert_ptr_null(err);
    ck_assert_ptr_nonnull(v);
    v[vl / 2] ^= 0x55;
    leveldb_put(l.db, l.wo, (const char *)key, sizeof key, v, vl, &err);
    ck_assert_ptr_null(err);
    leveldb_free(v);
    kb_ldb_close(&l);
    kb_chain_start(&s_chain);

    s_sock = s_raw(s_chain.keys, "fier");
    s_hello_as(s_sock, 10, 0);
    uint64_t tags[4];
    ck_assert_uint_eq(s_delivered(s_sock, tags, 2, 1500), 1);
    ck_assert_uint_eq(tags[0], 0);
    s_send_ack(s_sock, tags, 1);
    politie = s_raw(s_chain.keys, "politie");
    s_hello(politie);
    s_submit_accepted(politie);
    ck_assert_uint_eq(s_delivered(s_sock, tags, 1, 3000), 1);
    ck_assert_uint_eq(tags[0], 2);
    s_send_ack(s_sock, tags, 1);
    for (int i = 0; i < 8; i++) { /* idle turns, each of which logged it again */
        usleep(250000);
        s_send_ping(s_sock);
    }
    ck_assert_uint_eq(s_queued(s_sock), 1); /* the damaged one stays */
    zmq_close(politie);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=queue_unreadable"), 1);
}
END_TEST

/* A raw DEALER of fier that takes in as little as it can: one frame in
 * its queue, a small socket buffer. */
static void *s_raw_stingy(const char *name)
{
    void *s = s_raw(s_chain.keys, name);
    int one = 1, small = 4096;
    ck_assert_int_eq(zmq_setsockopt(s, ZMQ_RCVHWM, &one, sizeof one), 0);
    ck_assert_int_eq(zmq_setsockopt(s, ZMQ_RCVBUF, &small, sizeof small), 0);
    return s;
}

/* An adapter with 2,000 messages of ~3.7 KB waiting says HELLO (credit
 * 100,000) every 20 ms for 8 s on one connection and reads nothing. Each
 * HELLO makes the broker send the queue again, into libzmq's pipe to that
 * peer: the pipe is bounded by bytes (KB_SND_BYTES), and a send past it
 * ends the session, so the broker's memory stays bounded (it grew by
 * 0.9-1.3 GiB when libzmq held up to 100,000 frames a peer). */
START_TEST(test_hello_again_without_reading_keeps_memory_bounded)
{
    enum { S_QUEUED = 2000, S_FLOOD_MS = 8000 };
    s_restart_without_quarantine(0);
    char narrative[3001], json[4096];
    memset(narrative, 'n', sizeof narrative - 1);
    narrative[sizeof narrative - 1] = '\0';
    snprintf(json, sizeof json,
             "{\"recipients\":[\"fier\"],\"kind\":\"signal\",\"purpose\":\"victim_care\",\"handling\":\"h1\","
             "\"legal_basis\":{\"basis\":\"Wpg art. 19\",\"consent\":\"not_required\"},\"sender\":\"politie\","
             "\"signal\":{\"exploitation\":\"criminal\",\"narrative\":\"%s\"}}",
             narrative);
    void *politie = s_raw(s_chain.keys, "politie");
    s_hello(politie);
    for (int i = 0; i < S_QUEUED; i++) {
        Ketenbus__Envelope *e = s_envelope_json(json, "politie");
        s_send_submit(politie, e, (uint64_t)i + 1);
        ketenbus__envelope__free_unpacked(e, NULL);
    }
    void *probe = s_raw(s_chain.keys, "fier"); /* send-only: takes no deliveries */
    s_hello_as(probe, 0, 1);
    uint64_t queued = 0;
    for (int64_t end = kb_mono_ms() + 30000; (queued = s_queued(probe)) < S_QUEUED && kb_mono_ms() < end;)
        usleep(100000);
    ck_assert_uint_eq(queued, S_QUEUED);
    zmq_close(politie);

    s_sock = s_raw_stingy("fier");
    long before = s_rss_mib(s_chain.pid), peak = before;
    ck_assert_int_gt(before, 0);
    for (int64_t end = kb_mono_ms() + S_FLOOD_MS; kb_mono_ms() < end;) {
        s_send_hello(s_sock, 100000, 0);
        usleep(20000);
        long now = s_rss_mib(s_chain.pid);
        peak = now > peak ? now : peak;
    }
    zmq_close(s_sock);
    s_sock = NULL;
    fprintf(stderr, "hello again: broker RSS %ld MiB before, peak %ld MiB\n", before, peak);
    ck_assert_int_lt(peak - before, 128);
    /* nothing was lost: a reader that reads gets all of it */
    ck_assert_uint_eq(s_queued(probe), S_QUEUED);
    zmq_close(probe);
    s_still_serving();
}
END_TEST

/* A connection must name itself with a random routing id: an id libzmq
 * makes up (a zero byte and a counter) can be guessed and taken by another
 * connection, so HELLO from one is refused and opens no session. */
START_TEST(test_hello_needs_random_routing_id)
{
    static const uint8_t zero_first[KB_ROUTING_ID_LEN] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    static const uint8_t short_id[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const uint8_t *ids[3] = {NULL, zero_first, short_id};
    const size_t lens[3] = {0, sizeof zero_first, sizeof short_id};
    for (int k = 0; k < 3; k++) {
        s_sock = s_raw_id(s_chain.keys, "politie", ids[k], lens[k]);
        s_send_hello(s_sock, 10, 0);
        Ketenbus__Frame *r = s_expect(s_sock, KETENBUS__FRAME__BODY_ERROR);
        ck_assert_int_eq(r->error->code, KETENBUS__ERROR_CODE__ERROR_CODE_UNEXPECTED);
        ck_assert_msg(strstr(r->error->message, "random routing id") != NULL, "%s", r->error->message);
        ketenbus__frame__free_unpacked(r, NULL);
        s_send_ping(s_sock);
        s_expect_no_session(s_sock);
        zmq_close(s_sock);
        s_sock = NULL;
    }
    s_still_serving();
}
END_TEST

/* When another agency's connection turns up with the routing id of a
 * session whose own connection went, that session ends at its first frame:
 * nothing for the first agency is sent to the newcomer. */
START_TEST(test_routing_id_taken_by_another_agency)
{
    uint8_t id[KB_ROUTING_ID_LEN];
    ck_assert_int_eq(kb_routing_id_new(id), KB_OK);
    void *pol = s_raw_id(s_chain.keys, "politie", id, sizeof id);
    s_hello_as(pol, 10, 0);
    zmq_close(pol);
    s_sock = s_raw_id(s_chain.keys, "fier", id, sizeof id);
    s_send_ping(s_sock);
    s_expect_no_session(s_sock);
    /* a signal for politie now: queued, and not handed to fier's connection */
    ketenbus_client_t *c = kb_chain_client(&s_chain, "fier", "-sender");
    ketenbus_msg_t *m = kb_test_signal("politie", "for politie only");
    ketenbus_receipt_t rc;
    ck_assert_msg(ketenbus_client_submit(c, m, &rc, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&c);
    uint64_t tags[1];
    ck_assert_uint_eq(s_delivered(s_sock, tags, 1, 1500), 0);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "routing id is used by another connection"), 1);
}
END_TEST

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

/* A correctly signed envelope with `withheld` set (the signature does not
 * cover it; only the broker lists what it withholds) is REJECTED as
 * malformed and audited, while another agency's valid message in the same
 * burst is accepted. The rule withholds a field, so an envelope that got
 * through would be redacted: with KB_MAX_SEALS paths listed already, that
 * used to fail the whole turn for everyone. */
START_TEST(test_withheld_from_adapter_rejected)
{
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    kb_chain_cleanup(&s_chain);
    kb_chain_init(&s_chain, s_agencies, 2, S_RULES_REDACT, "  max_message_bytes: 4096\n");
    kb_chain_start(&s_chain);
    void *politie = s_raw(s_chain.keys, "politie"), *fier = s_raw(s_chain.keys, "fier");
    s_hello(politie);
    s_hello(fier);
    Ketenbus__Envelope *bad = s_envelope("politie", "politie");
    s_withhold(bad, s_withheld_counts[_i]);
    Ketenbus__Envelope *good = s_envelope_to("fier", "fier", "politie");
    /* one burst: both SUBMITs are on their way before either is answered */
    s_send_submit(politie, bad, 1);
    s_send_submit(fier, good, 1);
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
    /* and afterwards politie's valid message is accepted */
    Ketenbus__Envelope *again = s_envelope("politie", "politie");
    s_send_submit(politie, again, 2);
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

/* Kinds only the broker writes, as an agency would forge them. */
static const char *const s_notice_kinds[] = {"match_notice", "expiry_notice"};

/* A notice from an agency (correctly signed, to a recipient a deny-less
 * chain could route to) is REJECTED as the broker's own kind and audited:
 * a recipient would take it for the broker's word about its message. */
START_TEST(test_notice_from_agency_rejected)
{
    void *politie = s_raw(s_chain.keys, "politie");
    s_hello(politie);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"recipients\":[\"fier\"],\"kind\":\"%s\",\"purpose\":\"victim_care\",\"handling\":\"h1\","
             "\"legal_basis\":{\"basis\":\"Wpg art. 19\",\"consent\":\"not_required\"},\"sender\":\"politie\","
             "\"notice\":{\"type\":\"%s\",\"agencies\":[\"fier\"],\"text\":\"forged\"}}",
             s_notice_kinds[_i], _i == 0 ? "match" : "expired");
    Ketenbus__Envelope *e = s_envelope_json(json, "politie");
    int outcome, code;
    char reason[512];
    s_submit(politie, e, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(outcome, KETENBUS__OUTCOME__OUTCOME_REJECTED);
    ck_assert_int_eq(code, KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED);
    ck_assert_msg(strstr(reason, "written and signed by the broker only") != NULL, "reason: %s", reason);
    ketenbus__envelope__free_unpacked(e, NULL);
    zmq_close(politie);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED,
                                          "written and signed by the broker only"),
                     1);
}
END_TEST

/* What a peer claims in an envelope whose signature is not checked: an
 * officer, purpose, handling code, legal basis and subject of its choosing,
 * signed with another agency's key. */
#define S_FORGED_JSON                                                                                               \
    "{\"recipients\":[\"fier\"],\"kind\":\"signal\",\"purpose\":\"criminal_investigation\",\"handling\":\"h3\","  \
    "\"officer\":\"forged-officer-99\",\"legal_basis\":{\"basis\":\"forged basis\",\"consent\":\"not_required\"},"   \
    "\"subject_keys\":[\"5e110ab2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e\"],"                      \
    "\"sender\":\"politie\",\"signal\":{\"exploitation\":\"criminal\"}}"

/* The record holds who sent it (the connection's agency), the message id
 * and its kind, and nothing of what only the signature vouches for. */
static void s_assert_unverified_record(const Ketenbus__AuditRecord *r, const uint8_t id[KB_ID_LEN])
{
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->agency, "politie");
    ck_assert_uint_eq(r->message_id.len, KB_ID_LEN);
    ck_assert(memcmp(r->message_id.data, id, KB_ID_LEN) == 0);
    ck_assert_int_eq(r->kind, KETENBUS__KIND__KIND_SIGNAL);
    ck_assert_msg(!r->officer || !*r->officer, "officer %s", r->officer);
    ck_assert_int_eq(r->purpose, 0);
    ck_assert_int_eq(r->handling, 0);
    ck_assert_msg(!r->legal_basis || !*r->legal_basis, "legal basis %s", r->legal_basis);
    ck_assert_uint_eq(r->n_subject_keys, 0);
}

/* An envelope answered as a duplicate or refused before its signature is
 * checked writes nothing of its claims into the sender's trail: resent
 * under an accepted id with a forged officer, purpose, handling, basis and
 * subject (signed with fier's key), it is a DUPLICATE whose record names
 * none of them; the same claims outside the time window are REFUSED as
 * stale, likewise. The accepted message's own record keeps its fields. */
START_TEST(test_unverified_claims_not_audited)
{
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    int outcome, code;
    char reason[512];
    Ketenbus__Envelope *e = s_envelope("politie", "politie");
    s_submit(s_sock, e, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(outcome, KETENBUS__OUTCOME__OUTCOME_ACCEPTED);
    Ketenbus__Envelope *dup = s_envelope_json(S_FORGED_JSON, "fier");
    memcpy(dup->message_id.data, e->message_id.data, KB_ID_LEN);
    s_submit(s_sock, dup, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(outcome, KETENBUS__OUTCOME__OUTCOME_DUPLICATE);
    Ketenbus__Envelope *stale = s_envelope_json(S_FORGED_JSON, "fier");
    stale->created_us = kb_now_us() - 400LL * 86400 * 1000000;
    s_submit(s_sock, stale, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(outcome, KETENBUS__OUTCOME__OUTCOME_REJECTED);
    ck_assert_int_eq(code, KETENBUS__REJECT_CODE__REJECT_STALE);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);

    Ketenbus__AuditRecord *r = kb_chain_audit_record(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DUPLICATE, 0, NULL);
    s_assert_unverified_record(r, e->message_id.data);
    ketenbus__audit_record__free_unpacked(r, NULL);
    r = kb_chain_audit_record(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, 0, NULL);
    s_assert_unverified_record(r, stale->message_id.data);
    ck_assert_int_eq(r->code, KETENBUS__REJECT_CODE__REJECT_STALE);
    ketenbus__audit_record__free_unpacked(r, NULL);
    r = kb_chain_audit_record(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED, 0, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->purpose, KETENBUS__PURPOSE__PURPOSE_VICTIM_CARE);
    ck_assert_str_eq(r->legal_basis, "Wpg art. 19");
    ketenbus__audit_record__free_unpacked(r, NULL);
    ketenbus__envelope__free_unpacked(e, NULL);
    ketenbus__envelope__free_unpacked(dup, NULL);
    ketenbus__envelope__free_unpacked(stale, NULL);
}
END_TEST

/* The same envelope twice in one SUBMIT: the second is a DUPLICATE whose
 * receipt gives the audit index of the first one's "received" record (the
 * batch is not in the store yet), as a duplicate found in the store does;
 * never another record's index. */
START_TEST(test_duplicate_in_batch_gives_received_index)
{
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    Ketenbus__Envelope *e = s_envelope("politie", "politie");
    Ketenbus__Envelope *twice[2] = {e, e};
    Ketenbus__Submit sub;
    ketenbus__submit__init(&sub);
    sub.n_envelopes = 2;
    sub.envelopes = twice;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_SUBMIT;
    f.submit = &sub;
    s_send_frame(s_sock, &f);
    Ketenbus__Frame *r = s_expect(s_sock, KETENBUS__FRAME__BODY_RECEIPT);
    ck_assert_uint_eq(r->receipt->n_entries, 2);
    ck_assert_int_eq(r->receipt->entries[0]->outcome, KETENBUS__OUTCOME__OUTCOME_ACCEPTED);
    ck_assert_int_eq(r->receipt->entries[1]->outcome, KETENBUS__OUTCOME__OUTCOME_DUPLICATE);
    uint64_t index = r->receipt->entries[0]->audit_index;
    ck_assert_uint_eq(r->receipt->entries[1]->audit_index, index);
    ketenbus__frame__free_unpacked(r, NULL);
    /* and so does a duplicate in a later SUBMIT */
    s_send_submit(s_sock, e, 2);
    r = s_expect(s_sock, KETENBUS__FRAME__BODY_RECEIPT);
    ck_assert_uint_eq(r->receipt->n_entries, 1);
    ck_assert_int_eq(r->receipt->entries[0]->outcome, KETENBUS__OUTCOME__OUTCOME_DUPLICATE);
    ck_assert_uint_eq(r->receipt->entries[0]->audit_index, index);
    ketenbus__frame__free_unpacked(r, NULL);
    ketenbus__envelope__free_unpacked(e, NULL);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    uint64_t at = 0;
    Ketenbus__AuditRecord *rec = kb_chain_audit_record(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED, 0, &at);
    ck_assert_ptr_nonnull(rec);
    ck_assert_uint_eq(at, index);
    ketenbus__audit_record__free_unpacked(rec, NULL);
}
END_TEST

/* Append to e (signed) a seal whose path, of the sender's choosing, tries
 * to add fields to a key=value line; its empty salt makes it a withheld
 * field that is not listed, so verifying fails on it. */
#define S_FORGED_PATH "zz\" agency=om rule=forged-rule x=\""

static void s_add_forged_seal(Ketenbus__Envelope *e)
{
    Ketenbus__FieldSeal **seals = realloc(e->seals, (e->n_seals + 1) * sizeof *seals);
    ck_assert_ptr_nonnull(seals);
    e->seals = seals;
    Ketenbus__FieldSeal *fs = malloc(sizeof *fs);
    ck_assert_ptr_nonnull(fs);
    ketenbus__field_seal__init(fs);
    fs->path = strdup(S_FORGED_PATH);
    fs->digest.data = calloc(1, KB_DIGEST_LEN);
    fs->digest.len = KB_DIGEST_LEN;
    seals[e->n_seals++] = fs;
}

/* The keys of a key=value log line as a reader splits it (a value runs to
 * the next space, or is quoted with \" and \\ escaped inside), written
 * space-separated into keys. */
static void s_log_keys(const char *line, char *keys, size_t len)
{
    size_t o = 0;
    keys[0] = '\0';
    for (const char *p = line; *p;) {
        while (*p == ' ' || *p == '\n')
            p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\n')
            p++;
        if (p > k)
            o += (size_t)snprintf(keys + o, len - o, "%s%.*s", o ? " " : "", (int)(p - k), k);
        ck_assert_uint_lt(o, len);
        if (*p != '=')
            continue;
        if (*++p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ' ' && *p != '\n')
                p++;
        }
    }
}

/* How many lines of the stopped broker's log have the event, each with
 * exactly the fields `keys` (space-separated, in order) as a reader splits
 * them. */
static int s_log_lines_with_keys(const char *event, const char *keys)
{
    FILE *f = fopen(s_chain.log, "r");
    ck_assert_ptr_nonnull(f);
    char line[4096], got[512], tag[64];
    snprintf(tag, sizeof tag, " event=%s ", event);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, tag))
            continue;
        n++;
        s_log_keys(line, got, sizeof got);
        ck_assert_msg(strcmp(got, keys) == 0, "fields %s in: %s", got, line);
    }
    fclose(f);
    return n;
}

/* A refusal's log line has the fields the broker writes and no others,
 * whatever text of the peer's its reason repeats: a seal path with a quote
 * and key=value pairs does not add agency, rule or other fields. */
START_TEST(test_refused_log_line_keeps_its_fields)
{
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    Ketenbus__Envelope *e = s_envelope("politie", "politie");
    s_add_forged_seal(e);
    int outcome, code;
    char reason[512];
    s_submit(s_sock, e, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(outcome, KETENBUS__OUTCOME__OUTCOME_REJECTED);
    ck_assert_int_eq(code, KETENBUS__REJECT_CODE__REJECT_BAD_SIGNATURE);
    ketenbus__envelope__free_unpacked(e, NULL);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(s_log_lines_with_keys("refused", "ts level event agency message code rule reason"), 1);
}
END_TEST

/* An adapter's ERROR frame is logged with its text quoted: a quote and
 * key=value pairs in it add no fields to the broker's line. */
START_TEST(test_peer_error_log_line_keeps_its_fields)
{
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    Ketenbus__Error err;
    ketenbus__error__init(&err);
    err.code = KETENBUS__ERROR_CODE__ERROR_CODE_INTERNAL;
    err.message = (char *)"disk full\" agency=om code=0 forged=\"yes";
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_ERROR;
    f.error = &err;
    s_send_frame(s_sock, &f);
    s_send_ping(s_sock); /* answered after the ERROR was handled */
    Ketenbus__Frame *pong = s_expect(s_sock, KETENBUS__FRAME__BODY_PONG);
    ketenbus__frame__free_unpacked(pong, NULL);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(s_log_lines_with_keys("peer_error", "ts level event agency code message"), 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "message=\"disk full\\\" agency=om"), 1);
}
END_TEST

/* A seal path of the sender's choosing is not echoed: the receipt, the
 * audit reason and the log name the seal by its index and show its path
 * in field-path characters only. */
START_TEST(test_seal_path_not_echoed)
{
    s_sock = s_raw(s_chain.keys, "politie");
    s_hello(s_sock);
    Ketenbus__Envelope *e = s_envelope("politie", "politie");
    char want[128];
    snprintf(want, sizeof want, "seal %zu (zz?\?agency?om?rule?forged?rule?x?\?): withheld but not listed", e->n_seals);
    s_add_forged_seal(e);
    int outcome, code;
    char reason[512];
    s_submit(s_sock, e, &outcome, &code, reason, sizeof reason);
    ck_assert_int_eq(code, KETENBUS__REJECT_CODE__REJECT_BAD_SIGNATURE);
    ck_assert_msg(strstr(reason, want) != NULL, "reason: %s", reason);
    ck_assert_msg(!strchr(reason, '"') && !strchr(reason, '='), "reason: %s", reason);
    ketenbus__envelope__free_unpacked(e, NULL);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, want), 1);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, "agency=om"), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, want), 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "agency=om"), 0);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("hostile");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_forged_sender);
    tcase_add_test(tc, test_bad_signature);
    tcase_add_test(tc, test_garbage_oversized_version);
    tcase_add_test(tc, test_no_session_before_hello);
    tcase_add_test(tc, test_unknown_curve_key);
    tcase_add_test(tc, test_refused_handshakes_recorded_at_a_bounded_rate);
    tcase_add_test(tc, test_flood_of_submits_keeps_memory_bounded);
    tcase_add_test(tc, test_ping_flood_during_slow_commit_keeps_memory_bounded);
    tcase_add_test(tc, test_fanout_keeps_memory_bounded);
    tcase_add_test(tc, test_revoked_connection_gets_nothing_done);
    tcase_add_test(tc, test_replaced_key_connection_gets_no_delivery);
    tcase_add_test(tc, test_unchecked_signatures_for_benchmarks);
    tcase_add_test(tc, test_pipelined_submits_answered_in_order);
    tcase_add_test(tc, test_credit_on_send_only_session);
    tcase_add_test(tc, test_send_only_sessions_are_capped);
    tcase_add_test(tc, test_send_only_cap_holds_for_restarted_sessions);
    tcase_add_test(tc, test_acked_not_redelivered_after_hello);
    tcase_add_test(tc, test_expiry_passes_many_in_flight);
    tcase_add_test(tc, test_hello_again_without_reading_keeps_memory_bounded);
    tcase_add_test(tc, test_unreadable_queue_entry_passed_by);
    tcase_add_test(tc, test_expiry_reason_says_what_was_done);
    tcase_add_test(tc, test_hello_needs_random_routing_id);
    tcase_add_test(tc, test_routing_id_taken_by_another_agency);
    tcase_add_loop_test(tc, test_withheld_from_adapter_rejected, 0,
                        (int)(sizeof s_withheld_counts / sizeof s_withheld_counts[0]));
    tcase_add_loop_test(tc, test_notice_from_agency_rejected, 0,
                        (int)(sizeof s_notice_kinds / sizeof s_notice_kinds[0]));
    tcase_add_test(tc, test_unverified_claims_not_audited);
    tcase_add_test(tc, test_duplicate_in_batch_gives_received_index);
    tcase_add_test(tc, test_refused_log_line_keeps_its_fields);
    tcase_add_test(tc, test_peer_error_log_line_keeps_its_fields);
    tcase_add_test(tc, test_seal_path_not_echoed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
