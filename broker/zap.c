/*
 * zap.c - ZeroMQ authentication (ZAP, RFC 27) for the broker's ROUTER.
 *
 * libzmq asks this handler about every CURVE handshake. A client key listed
 * for an agency in the chain configuration is accepted with the agency id as
 * User-Id, which the broker reads from every received message afterwards:
 * the sender of a message is who the key says, never what the frame claims.
 * The key itself goes along as the connection's property X-Curve-Key, so
 * that the broker can tell, after a reload, which connections hold a key
 * that is no longer in force. Any other key is refused (status 400),
 * logged and audited (zap_refused).
 */
#include <string.h>

#include <zmq.h>

#include "broker.h"
#include "kb_error.h"
#include "kb_log.h"
#include "kb_util.h"

#define KB_ZAP_FRAMES 7 /* version, request id, domain, address, identity, mechanism, key */

static int s_send(void *sock, const void *data, size_t len, int more)
{
    return zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) < 0 ? KB_ENET : KB_OK;
}

/* Answer a ZAP request; key (Z85, or NULL) becomes the connection's
 * X-Curve-Key property, in the ZMTP metadata encoding (RFC 37): name
 * length in one byte, name, value length in four bytes big-endian, value. */
static void s_reply(void *sock, const zmq_msg_t *req_id, const char *code, const char *text, const char *user,
                    const char *key)
{
    uint8_t meta[1 + sizeof KB_ZAP_KEY_PROPERTY - 1 + 4 + KB_Z85_KEY_LEN];
    size_t ml = 0;
    if (key && strlen(key) == KB_Z85_KEY_LEN) {
        meta[ml++] = (uint8_t)(sizeof KB_ZAP_KEY_PROPERTY - 1);
        memcpy(meta + ml, KB_ZAP_KEY_PROPERTY, sizeof KB_ZAP_KEY_PROPERTY - 1);
        ml += sizeof KB_ZAP_KEY_PROPERTY - 1;
        meta[ml++] = 0; /* 40 in four bytes, big-endian */
        meta[ml++] = 0;
        meta[ml++] = 0;
        meta[ml++] = (uint8_t)KB_Z85_KEY_LEN;
        memcpy(meta + ml, key, KB_Z85_KEY_LEN);
        ml += KB_Z85_KEY_LEN;
    }
    s_send(sock, "1.0", 3, 1);
    s_send(sock, zmq_msg_data((zmq_msg_t *)req_id), zmq_msg_size((zmq_msg_t *)req_id), 1);
    s_send(sock, code, strlen(code), 1);
    s_send(sock, text, strlen(text), 1);
    s_send(sock, user, strlen(user), 1);
    s_send(sock, meta, ml, 0);
}

static int s_handle_one(kb_broker_t *b)
{
    zmq_msg_t parts[KB_ZAP_FRAMES + 1];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, b->zap, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n && i < KB_ZAP_FRAMES + 1; i++)
                zmq_msg_close(&parts[i]);
            return n == 0 ? KB_ETIMEDOUT : KB_ENET;
        }
        more = zmq_msg_more(&m);
        if (n < KB_ZAP_FRAMES + 1)
            parts[n] = m;
        else
            zmq_msg_close(&m);
        n++;
    }
    if (n < 6) {
        kb_log(KB_LOG_WARN, "zap_malformed", "frames=%d", n);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
        return KB_OK;
    }
    const char *mech = zmq_msg_data(&parts[5]);
    size_t mech_len = zmq_msg_size(&parts[5]);
    char address[64] = "";
    size_t al = zmq_msg_size(&parts[3]);
    snprintf(address, sizeof address, "%.*s", (int)(al < 63 ? al : 63), (const char *)zmq_msg_data(&parts[3]));
    if (n == 7 && mech_len == 5 && memcmp(mech, "CURVE", 5) == 0 && zmq_msg_size(&parts[6]) == 32) {
        char z85[KB_Z85_KEY_LEN + 1];
        zmq_z85_encode(z85, zmq_msg_data(&parts[6]), 32);
        const kb_agency_t *a = kb_conf_agency_by_curve(b->conf, z85);
        if (a) {
            s_reply(b->zap, &parts[1], "200", "OK", a->id, z85);
            kb_log(KB_LOG_DEBUG, "zap_accepted", "agency=%s address=%s", a->id, address);
        } else {
            s_reply(b->zap, &parts[1], "400", "unknown key", "", NULL);
            char reason[192];
            snprintf(reason, sizeof reason, "CURVE key %s not in the chain (from %s)", z85, address);
            zap_refused(b, KB_REFUSED_UNKNOWN_KEY, reason);
        }
    } else {
        s_reply(b->zap, &parts[1], "400", "CURVE required", "", NULL);
        char reason[160];
        snprintf(reason, sizeof reason, "not CURVE (from %s)", address);
        zap_refused(b, KB_REFUSED_UNKNOWN_KEY, reason);
    }
    for (int i = 0; i < n && i < KB_ZAP_FRAMES + 1; i++)
        zmq_msg_close(&parts[i]);
    return KB_OK;
}

/* What the record of the refusals of a kind not recorded one by one says. */
static const char *const s_untold_what[KB_REFUSED_KINDS] = {
    [KB_REFUSED_UNKNOWN_KEY] = "connections refused",
    [KB_REFUSED_REVOKED] = "frames refused on connections whose key left the chain",
};

/* End a kind's current minute of refusals if it is over (or force): what
 * was not recorded one by one gets one record with its count. */
static void s_refusals_roll(kb_broker_t *b, kb_refused_kind_t kind, int64_t now_ms, int force)
{
    kb_refusals_t *w = &b->refused[kind];
    if (!force && now_ms - w->since_ms < KB_REFUSED_WINDOW_MS)
        return;
    if (w->untold > 0) {
        char reason[160];
        snprintf(reason, sizeof reason, "%llu more %s in %lld s, not recorded one by one",
                 (unsigned long long)w->untold, s_untold_what[kind], (long long)((now_ms - w->since_ms + 999) / 1000));
        kb_log(KB_LOG_WARN, "connect_refused", "reason=\"%s\"", reason);
        audit_event(b, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECT_REFUSED, "", NULL, reason);
    }
    w->since_ms = now_ms;
    w->told = 0;
    w->untold = 0;
}

void zap_refused(kb_broker_t *b, kb_refused_kind_t kind, const char *reason)
{
    s_refusals_roll(b, kind, kb_mono_ms(), 0);
    kb_refusals_t *w = &b->refused[kind];
    if (w->told >= KB_REFUSED_PER_WINDOW) {
        w->untold++;
        return;
    }
    w->told++;
    kb_log(KB_LOG_WARN, "connect_refused", "reason=\"%s\"", reason);
    audit_event(b, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECT_REFUSED, "", NULL, reason);
}

void zap_refusals_flush(kb_broker_t *b, int force)
{
    int64_t now = kb_mono_ms();
    for (int k = 0; k < KB_REFUSED_KINDS; k++)
        s_refusals_roll(b, (kb_refused_kind_t)k, now, force);
}

int zap_handle(kb_broker_t *b)
{
    int rc;
    while ((rc = s_handle_one(b)) == KB_OK)
        ;
    return rc == KB_ETIMEDOUT ? KB_OK : rc;
}
