/*
 * kb_fake.c - a scripted broker for SDK tests (see kb_fake.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <zmq.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_fake.h"
#include "kb_keys.h"
#include "kb_util.h"

#define KB_FAKE_FRAME_MAX (1u << 20) /* largest frame the scripted broker decodes */
#define KB_FAKE_SLICE_MS  5          /* client poll and socket wait per round */

void kb_fake_start(kb_fake_t *f, kb_chain_t *chain)
{
    memset(f, 0, sizeof *f);
    char path[512], pub[KB_Z85_KEY_LEN + 1], sec[KB_Z85_KEY_LEN + 1];
    snprintf(path, sizeof path, "%s/broker.curve_secret", chain->keys);
    ck_assert_int_eq(kb_keys_load_curve_secret(path, pub, sec), KB_OK);
    f->ctx = zmq_ctx_new();
    ck_assert_ptr_nonnull(f->ctx);
    f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
    ck_assert_ptr_nonnull(f->router);
    int one = 1, zero = 0;
    ck_assert_int_eq(zmq_setsockopt(f->router, ZMQ_CURVE_SERVER, &one, sizeof one), 0);
    ck_assert_int_eq(zmq_setsockopt(f->router, ZMQ_CURVE_SECRETKEY, sec, KB_Z85_KEY_LEN), 0);
    ck_assert_int_eq(zmq_setsockopt(f->router, ZMQ_LINGER, &zero, sizeof zero), 0);
    ck_assert_int_eq(zmq_bind(f->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof chain->endpoint;
    ck_assert_int_eq(zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, chain->endpoint, &len), 0);
}

void kb_fake_stop(kb_fake_t *f)
{
    if (f->router)
        zmq_close(f->router);
    if (f->ctx)
        zmq_ctx_term(f->ctx);
    f->router = NULL;
    f->ctx = NULL;
}

Ketenbus__Frame *kb_fake_recv(kb_fake_t *f, ketenbus_client_t *cl, int timeout_ms)
{
    int64_t deadline = kb_mono_ms() + timeout_ms;
    do {
        if (cl)
            ketenbus_client_poll(cl, KB_FAKE_SLICE_MS);
        zmq_pollitem_t item = {f->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, cl ? 0 : KB_FAKE_SLICE_MS) <= 0)
            continue;
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, f->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            continue;
        }
        int ok = zmq_msg_more(&rid) && zmq_msg_size(&rid) <= sizeof f->rid;
        if (ok) {
            f->rid_len = zmq_msg_size(&rid);
            memcpy(f->rid, zmq_msg_data(&rid), f->rid_len);
        }
        zmq_msg_close(&rid);
        if (!ok)
            continue;
        zmq_msg_init(&body);
        Ketenbus__Frame *fr = NULL;
        if (zmq_msg_recv(&body, f->router, 0) >= 0 &&
            kb_frame_decode(zmq_msg_data(&body), zmq_msg_size(&body), KB_FAKE_FRAME_MAX, &fr) != KB_OK && fr) {
            ketenbus__frame__free_unpacked(fr, NULL);
            fr = NULL;
        }
        zmq_msg_close(&body);
        if (fr)
            return fr;
    } while (kb_mono_ms() < deadline);
    return NULL;
}

Ketenbus__Frame *kb_fake_expect(kb_fake_t *f, ketenbus_client_t *cl, int body_case, int timeout_ms)
{
    int64_t deadline = kb_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - kb_mono_ms();
        if (left <= 0)
            return NULL;
        Ketenbus__Frame *fr = kb_fake_recv(f, cl, (int)left);
        if (fr && (int)fr->body_case == body_case)
            return fr;
        if (fr)
            ketenbus__frame__free_unpacked(fr, NULL);
    }
}

int kb_fake_send(kb_fake_t *f, Ketenbus__Frame *fr)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = kb_frame_encode(fr, &buf, &len);
    if (rc != KB_OK)
        return rc;
    if (zmq_send(f->router, f->rid, f->rid_len, ZMQ_SNDMORE) != (int)f->rid_len ||
        zmq_send(f->router, buf, len, 0) != (int)len)
        rc = KB_ENET;
    free(buf);
    return rc;
}

int kb_fake_welcome(kb_fake_t *f, const char *agency, uint64_t request_id)
{
    Ketenbus__Welcome w;
    ketenbus__welcome__init(&w);
    w.broker_id = (char *)"scripted";
    w.agency = (char *)agency;
    w.ping_interval_ms = 1000;
    w.max_message_bytes = KB_FAKE_FRAME_MAX;
    Ketenbus__Frame fr;
    ketenbus__frame__init(&fr);
    fr.request_id = request_id;
    fr.body_case = KETENBUS__FRAME__BODY_WELCOME;
    fr.welcome = &w;
    return kb_fake_send(f, &fr);
}

int kb_fake_pong(kb_fake_t *f, const Ketenbus__Frame *ping)
{
    Ketenbus__Pong p;
    ketenbus__pong__init(&p);
    p.time_us = ping->ping->time_us;
    Ketenbus__Frame fr;
    ketenbus__frame__init(&fr);
    fr.request_id = ping->request_id;
    fr.body_case = KETENBUS__FRAME__BODY_PONG;
    fr.pong = &p;
    return kb_fake_send(f, &fr);
}

void kb_fake_open_session(kb_fake_t *f, ketenbus_client_t *cl, const char *agency)
{
    int64_t end = kb_mono_ms() + 5000;
    while (!ketenbus_client_is_connected(cl) && kb_mono_ms() < end) {
        Ketenbus__Frame *fr = kb_fake_expect(f, cl, KETENBUS__FRAME__BODY_HELLO, 200);
        if (fr) {
            ck_assert_int_eq(kb_fake_welcome(f, agency, fr->request_id), KB_OK);
            ketenbus__frame__free_unpacked(fr, NULL);
        }
        ketenbus_client_poll(cl, 10);
    }
    ck_assert_msg(ketenbus_client_is_connected(cl), "no session within 5 s");
}

int kb_fake_no_session(kb_fake_t *f)
{
    Ketenbus__Error err;
    ketenbus__error__init(&err);
    err.code = KETENBUS__ERROR_CODE__ERROR_CODE_NO_SESSION;
    err.message = (char *)"no session: say HELLO";
    Ketenbus__Frame fr;
    ketenbus__frame__init(&fr);
    fr.version = 1;
    fr.body_case = KETENBUS__FRAME__BODY_ERROR;
    fr.error = &err;
    return kb_fake_send(f, &fr);
}

int kb_fake_deliver(kb_fake_t *f, Ketenbus__Envelope *const *envs, const uint64_t *tags, size_t n)
{
    Ketenbus__Delivery *d = calloc(n ? n : 1, sizeof *d);
    Ketenbus__Delivery **dp = calloc(n ? n : 1, sizeof *dp);
    int rc = d && dp ? KB_OK : KB_ENOMEM;
    for (size_t i = 0; rc == KB_OK && i < n; i++) {
        ketenbus__delivery__init(&d[i]);
        d[i].tag = tags[i];
        d[i].envelope = envs[i];
        dp[i] = &d[i];
    }
    if (rc == KB_OK) {
        Ketenbus__Deliver del;
        ketenbus__deliver__init(&del);
        del.n_deliveries = n;
        del.deliveries = dp;
        Ketenbus__Frame fr;
        ketenbus__frame__init(&fr);
        fr.version = 1;
        fr.body_case = KETENBUS__FRAME__BODY_DELIVER;
        fr.deliver = &del;
        rc = kb_fake_send(f, &fr);
    }
    free(dp);
    free(d);
    return rc;
}

int kb_fake_receipt(kb_fake_t *f, const Ketenbus__Submit *sub, Ketenbus__Outcome outcome, Ketenbus__RejectCode code,
                    const char *reason)
{
    size_t n = sub->n_envelopes;
    Ketenbus__ReceiptEntry *e = calloc(n ? n : 1, sizeof *e);
    Ketenbus__ReceiptEntry **ep = calloc(n ? n : 1, sizeof *ep);
    int rc = e && ep ? KB_OK : KB_ENOMEM;
    for (size_t i = 0; rc == KB_OK && i < n; i++) {
        ketenbus__receipt_entry__init(&e[i]);
        e[i].message_id = sub->envelopes[i]->message_id;
        e[i].outcome = outcome;
        e[i].code = code;
        e[i].reason = (char *)(reason ? reason : "");
        ep[i] = &e[i];
    }
    if (rc == KB_OK) {
        Ketenbus__Receipt r;
        ketenbus__receipt__init(&r);
        r.n_entries = n;
        r.entries = ep;
        Ketenbus__Frame fr;
        ketenbus__frame__init(&fr);
        fr.body_case = KETENBUS__FRAME__BODY_RECEIPT;
        fr.receipt = &r;
        rc = kb_fake_send(f, &fr);
    }
    free(ep);
    free(e);
    return rc;
}
