/*
 * bench_wire.c - drive ketenbusd over the wire protocol with raw DEALERs.
 *
 * One thread, one ZeroMQ context (one I/O thread), per pair p a CURVE
 * DEALER with s_p's key that submits and one with r_p's key that receives.
 * It speaks the protocol as the SDK does on the wire (one envelope per
 * SUBMIT, or up to 256 as submit_batch() sends them; an ACK and a CREDIT
 * per DELIVER frame) but keeps no outbox, so
 * the figures are the broker's, not the adapter's disk. The loop waits in
 * ppoll() on the sockets' ZMQ_FD with a nanosecond timeout, so an open-loop
 * schedule of 30,000 messages per second is kept without spinning a core
 * the broker needs. Latency is taken from the scheduled send time (no
 * coordinated omission): a late send counts against the broker.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "bench.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_util.h"

#define WIRE_WINDOW_TOTAL   4000u      /* closed loop: SUBMITs without receipt, all senders */
#define WIRE_CREDIT         20000u     /* deliveries a recipient lets the broker send ahead */
#define WIRE_FRAME_MAX      (64u << 20)
#define WIRE_WAIT_MAX_NS    5000000LL  /* longest single wait */
#define WIRE_PING_NS        2000000LL  /* ping interval while waiting for the ACKs' commit */
#define WIRE_MAX_TAGS       1024u      /* tags per ACK frame */

typedef struct {
    void *snd;              /* s_p's DEALER */
    void *rcv;              /* r_p's DEALER */
    int snd_fd, rcv_fd;     /* their ZMQ_FDs */
    size_t next;            /* next pool index to send */
    size_t answered;        /* receipts (any outcome) */
    size_t accepted;        /* receipts ACCEPTED */
    size_t delivered;       /* envelopes delivered */
    uint64_t queued;        /* last PONG's queue depth for r_p */
    int pong_seen;          /* a PONG arrived since the last PING */
    int64_t *t_sent;        /* per index: (scheduled) send time */
    int64_t *t_rcpt;        /* per index: receipt time */
    int64_t *t_dlv;         /* per index: delivery time */
    uint8_t **bframe;       /* batched runs: SUBMIT frame of indexes [b * batch, (b + 1) * batch) */
    size_t *blen;           /* their lengths */
    size_t n_bframe;        /* their count */
    uint64_t tags[WIRE_MAX_TAGS]; /* tags to acknowledge */
} s_pair_t;

typedef struct {
    s_pair_t p[BENCH_MAX_PAIRS]; /* the pairs */
    unsigned n;                  /* in use */
    size_t per_pair;             /* messages per pair */
    int64_t last_rcpt, last_dlv; /* ns of the last receipt / delivery */
    size_t rejected;             /* receipts not ACCEPTED */
    char first_reject[200];      /* reason of the first */
} s_run_t;

static void *s_dealer(void *ctx, const bench_keys_t *k, const char *agency, const char *endpoint)
{
    char path[512], pub[KB_Z85_KEY_LEN + 1], sec[KB_Z85_KEY_LEN + 1], srv[KB_Z85_KEY_LEN + 1];
    snprintf(path, sizeof path, "%s/%s.curve_secret", k->keys, agency);
    if (kb_keys_load_curve_secret(path, pub, sec) != KB_OK || kb_keys_load_curve_public(k->broker_cert, srv) != KB_OK) {
        bench_log("keys of %s: %s", agency, kb_last_error());
        return NULL;
    }
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    if (!s)
        return NULL;
    int zero = 0, hwm = 1000000;
    int rc = zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, srv, KB_Z85_KEY_LEN);
    rc |= zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, KB_Z85_KEY_LEN);
    rc |= zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, KB_Z85_KEY_LEN);
    rc |= zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    rc |= zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    rc |= zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    uint8_t id[KB_ROUTING_ID_LEN];
    if (kb_routing_id_new(id) != KB_OK)
        rc = -1;
    else
        rc |= zmq_setsockopt(s, ZMQ_ROUTING_ID, id, sizeof id);
    memset(sec, 0, sizeof sec);
    if (rc != 0 || zmq_connect(s, endpoint) != 0) {
        bench_log("dealer %s: %s", agency, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

static int s_send_frame(void *sock, Ketenbus__Frame *f)
{
    uint8_t *buf;
    size_t len;
    if (kb_frame_encode(f, &buf, &len) != KB_OK)
        return -1;
    int rc = zmq_send(sock, buf, len, 0) == (int)len ? 0 : -1;
    free(buf);
    return rc;
}

static int s_hello(void *sock, uint32_t credit)
{
    Ketenbus__Hello h;
    ketenbus__hello__init(&h);
    h.adapter_name = (char *)"ketenbus-bench";
    h.credit = credit;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_HELLO;
    f.hello = &h;
    return s_send_frame(sock, &f);
}

static int s_ping(void *sock)
{
    Ketenbus__Ping p;
    ketenbus__ping__init(&p);
    p.time_us = kb_now_us();
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_PING;
    f.ping = &p;
    return s_send_frame(sock, &f);
}

/* Wait for WELCOME on sock (skipping anything else). */
static int s_welcome(void *sock, int timeout_ms)
{
    int64_t deadline = bench_ns() + (int64_t)timeout_ms * 1000000;
    while (bench_ns() < deadline) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            continue;
        }
        Ketenbus__Frame *f = NULL;
        int ok = kb_frame_decode(zmq_msg_data(&m), zmq_msg_size(&m), WIRE_FRAME_MAX, &f) == KB_OK &&
                 f->body_case == KETENBUS__FRAME__BODY_WELCOME;
        if (f && f->body_case == KETENBUS__FRAME__BODY_ERROR)
            bench_log("broker refused HELLO: %s", f->error->message);
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
        zmq_msg_close(&m);
        if (ok)
            return 0;
    }
    return -1;
}

static void s_on_receipt(s_run_t *r, s_pair_t *p, const Ketenbus__Receipt *rc, int64_t now)
{
    for (size_t i = 0; i < rc->n_entries; i++) {
        const Ketenbus__ReceiptEntry *e = rc->entries[i];
        unsigned pair;
        uint64_t idx;
        if (bench_id_decode(e->message_id.data, e->message_id.len, &pair, &idx) != 0 || idx >= r->per_pair ||
            &r->p[pair] != p)
            continue;
        p->answered++;
        if (e->outcome == KETENBUS__OUTCOME__OUTCOME_ACCEPTED) {
            p->accepted++;
            p->t_rcpt[idx] = now;
            r->last_rcpt = now;
        } else {
            if (r->rejected++ == 0)
                snprintf(r->first_reject, sizeof r->first_reject, "outcome %d code %d: %.160s", (int)e->outcome,
                         (int)e->code, e->reason ? e->reason : "");
        }
    }
}

static int s_on_deliver(s_run_t *r, s_pair_t *p, const Ketenbus__Deliver *d, int64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_deliveries; i++) {
        const Ketenbus__Delivery *dl = d->deliveries[i];
        unsigned pair;
        uint64_t idx;
        if (dl->envelope && bench_id_decode(dl->envelope->message_id.data, dl->envelope->message_id.len, &pair,
                                            &idx) == 0 && idx < r->per_pair && &r->p[pair] == p) {
            if (p->t_dlv[idx] == 0) {
                p->t_dlv[idx] = now;
                p->delivered++;
                r->last_dlv = now;
            }
        }
        if (n < WIRE_MAX_TAGS)
            p->tags[n++] = dl->tag;
    }
    if (n == 0)
        return 0;
    /* the adapter "stored" them: acknowledge and hand the credit back */
    Ketenbus__Ack ack;
    ketenbus__ack__init(&ack);
    ack.n_tags = n;
    ack.tags = p->tags;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_ACK;
    f.ack = &ack;
    if (s_send_frame(p->rcv, &f) != 0)
        return -1;
    Ketenbus__Credit cr;
    ketenbus__credit__init(&cr);
    cr.credit = (uint32_t)n;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_CREDIT;
    f.credit = &cr;
    return s_send_frame(p->rcv, &f);
}

/* Read everything waiting on sock. */
static int s_drain(s_run_t *r, s_pair_t *p, void *sock)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return zmq_errno() == EAGAIN || zmq_errno() == EINTR ? 0 : -1;
        }
        int64_t now = bench_ns();
        Ketenbus__Frame *f = NULL;
        int rc = 0;
        if (kb_frame_decode(zmq_msg_data(&m), zmq_msg_size(&m), WIRE_FRAME_MAX, &f) == KB_OK) {
            switch (f->body_case) {
            case KETENBUS__FRAME__BODY_RECEIPT:
                s_on_receipt(r, p, f->receipt, now);
                break;
            case KETENBUS__FRAME__BODY_DELIVER:
                rc = s_on_deliver(r, p, f->deliver, now);
                break;
            case KETENBUS__FRAME__BODY_PONG:
                if (sock == p->rcv) {
                    p->queued = f->pong->queued;
                    p->pong_seen = 1;
                }
                break;
            case KETENBUS__FRAME__BODY_ERROR:
                bench_log("broker error %d: %s", (int)f->error->code, f->error->message);
                rc = -1;
                break;
            default:
                break;
            }
        }
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
        zmq_msg_close(&m);
        if (rc != 0)
            return rc;
    }
}

static int s_fd(void *sock)
{
    int fd = -1;
    size_t len = sizeof fd;
    zmq_getsockopt(sock, ZMQ_FD, &fd, &len);
    return fd;
}

/* Join the pool's single-envelope SUBMIT frames into frames of `batch`
 * envelopes each (before any clock starts). */
static int s_batch_frames(s_pair_t *p, const bench_pool_t *pool, size_t per_pair, unsigned batch)
{
    p->n_bframe = (per_pair + batch - 1) / batch;
    p->bframe = calloc(p->n_bframe, sizeof *p->bframe);
    p->blen = calloc(p->n_bframe, sizeof *p->blen);
    Ketenbus__Frame **one = calloc(batch, sizeof *one);
    Ketenbus__Envelope **envs = calloc(batch, sizeof *envs);
    int rc = p->bframe && p->blen && one && envs ? 0 : -1;
    for (size_t b = 0; rc == 0 && b < p->n_bframe; b++) {
        size_t n = 0;
        for (size_t j = b * batch; j < per_pair && j < (b + 1) * batch; j++, n++) {
            int drc = kb_frame_decode(pool->frame[j], pool->len[j], WIRE_FRAME_MAX, &one[n]);
            if (drc != KB_OK || one[n]->body_case != KETENBUS__FRAME__BODY_SUBMIT || one[n]->submit->n_envelopes != 1) {
                if (one[n]) /* also handed out with KB_EVERSION */
                    ketenbus__frame__free_unpacked(one[n], NULL);
                rc = -1;
                break;
            }
            envs[n] = one[n]->submit->envelopes[0];
        }
        if (rc == 0) {
            Ketenbus__Submit sub;
            ketenbus__submit__init(&sub);
            sub.n_envelopes = n;
            sub.envelopes = envs;
            Ketenbus__Frame f;
            ketenbus__frame__init(&f);
            f.request_id = b + 1;
            f.body_case = KETENBUS__FRAME__BODY_SUBMIT;
            f.submit = &sub;
            rc = kb_frame_encode(&f, &p->bframe[b], &p->blen[b]) == KB_OK ? 0 : -1;
        }
        for (size_t i = 0; i < n; i++)
            ketenbus__frame__free_unpacked(one[i], NULL);
    }
    free(one);
    free(envs);
    return rc;
}

/* Append the latencies of the messages that arrived to tmp[*m...]. */
static void s_lat(const int64_t *sent, const int64_t *got, size_t n, int64_t *tmp, size_t *m)
{
    for (size_t i = 0; i < n; i++)
        if (got[i] > 0)
            tmp[(*m)++] = got[i] - sent[i];
}

int bench_wire_run(const bench_broker_t *b, const bench_keys_t *k, bench_pool_t *pools, unsigned n_pairs,
                   size_t per_pair, double rate, int recipients_online, unsigned batch, double time_limit_s,
                   bench_wire_t *out)
{
    memset(out, 0, sizeof *out);
    if (n_pairs == 0 || n_pairs > BENCH_MAX_PAIRS || per_pair == 0 || batch == 0 || batch > 256 ||
        (batch > 1 && rate > 0))
        return -1;
    s_run_t *r = calloc(1, sizeof *r);
    void *ctx = zmq_ctx_new();
    if (!r || !ctx) {
        free(r);
        return -1;
    }
    r->n = n_pairs;
    r->per_pair = per_pair;
    int rc = -1;
    for (unsigned i = 0; i < n_pairs; i++) {
        s_pair_t *p = &r->p[i];
        if (pools[i].n < per_pair) {
            snprintf(out->error, sizeof out->error, "pool %u has %zu envelopes, need %zu", i, pools[i].n, per_pair);
            goto done;
        }
        char sa[16], ra[16];
        snprintf(sa, sizeof sa, "s%u", i);
        snprintf(ra, sizeof ra, "r%u", i);
        p->t_sent = calloc(per_pair, sizeof(int64_t));
        p->t_rcpt = calloc(per_pair, sizeof(int64_t));
        p->t_dlv = calloc(per_pair, sizeof(int64_t));
        if (batch > 1 && s_batch_frames(p, &pools[i], per_pair, batch) != 0) {
            snprintf(out->error, sizeof out->error, "pool %u: cannot join its frames in batches of %u", i, batch);
            goto done;
        }
        p->snd = s_dealer(ctx, k, sa, b->endpoint);
        p->rcv = recipients_online ? s_dealer(ctx, k, ra, b->endpoint) : NULL;
        if (!p->t_sent || !p->t_rcpt || !p->t_dlv || !p->snd || (recipients_online && !p->rcv)) {
            snprintf(out->error, sizeof out->error, "setting up pair %u failed", i);
            goto done;
        }
        if (s_hello(p->snd, 0) != 0 || (p->rcv && s_hello(p->rcv, WIRE_CREDIT) != 0) || s_welcome(p->snd, 10000) != 0 ||
            (p->rcv && s_welcome(p->rcv, 10000) != 0)) {
            snprintf(out->error, sizeof out->error, "no WELCOME for pair %u", i);
            goto done;
        }
        p->snd_fd = s_fd(p->snd);
        p->rcv_fd = p->rcv ? s_fd(p->rcv) : -1;
    }

    size_t window = WIRE_WINDOW_TOTAL / n_pairs;
    int64_t gap = rate > 0 ? (int64_t)(1e9 * n_pairs / rate) : 0; /* per pair */
    int64_t t0 = bench_ns() + 1000000, limit = t0 + (int64_t)(time_limit_s * 1e9);
    int64_t acked_at = 0, last_ping = 0;
    int phase = 0; /* 0 sending/answering, 1 waiting for the ACKs' commit, 2 done */
    while (phase < 2) {
        int64_t now = bench_ns();
        if (now > limit) {
            snprintf(out->error, sizeof out->error, "time limit of %.0f s reached", time_limit_s);
            break;
        }
        int64_t next_due = INT64_MAX;
        for (unsigned i = 0; i < n_pairs && phase == 0; i++) {
            s_pair_t *p = &r->p[i];
            while (p->next < per_pair) {
                int64_t due = rate > 0 ? t0 + (int64_t)p->next * gap + (int64_t)i * gap / n_pairs : now;
                if (rate > 0 && due > now) {
                    if (due < next_due)
                        next_due = due;
                    break;
                }
                /* closed loop: at most `window` messages without receipt */
                if (rate <= 0 && (now < t0 || p->next - p->answered + batch > window))
                    break;
                size_t j = p->next, n = 1;
                const uint8_t *frame = pools[i].frame[j];
                size_t len = pools[i].len[j];
                if (batch > 1) {
                    frame = p->bframe[j / batch];
                    len = p->blen[j / batch];
                    n = per_pair - j < batch ? per_pair - j : batch;
                }
                if (zmq_send(p->snd, frame, len, ZMQ_DONTWAIT) < 0) {
                    if (zmq_errno() != EAGAIN) {
                        snprintf(out->error, sizeof out->error, "send: %s", zmq_strerror(zmq_errno()));
                        goto done;
                    }
                    break;
                }
                for (size_t m = 0; m < n; m++)
                    p->t_sent[j + m] = rate > 0 ? due : bench_ns();
                p->next += n;
            }
        }
        for (unsigned i = 0; i < n_pairs; i++) {
            if (s_drain(r, &r->p[i], r->p[i].snd) != 0 || (r->p[i].rcv && s_drain(r, &r->p[i], r->p[i].rcv) != 0)) {
                snprintf(out->error, sizeof out->error, "receiving failed");
                goto done;
            }
        }
        size_t answered = 0, accepted = 0, delivered = 0;
        for (unsigned i = 0; i < n_pairs; i++) {
            answered += r->p[i].answered;
            accepted += r->p[i].accepted;
            delivered += r->p[i].delivered;
        }
        now = bench_ns();
        if (phase == 0 && answered == (size_t)n_pairs * per_pair && (!recipients_online || delivered == accepted)) {
            phase = recipients_online ? 1 : 2;
            acked_at = now;
            last_ping = 0;
        }
        if (phase == 1) {
            int all_zero = 1;
            for (unsigned i = 0; i < n_pairs; i++)
                if (!r->p[i].pong_seen || r->p[i].queued != 0)
                    all_zero = 0;
            if (all_zero) {
                acked_at = now;
                phase = 2;
                break;
            }
            if (now - last_ping >= WIRE_PING_NS) {
                for (unsigned i = 0; i < n_pairs; i++) {
                    r->p[i].pong_seen = 0;
                    s_ping(r->p[i].rcv);
                }
                last_ping = now;
            }
            next_due = last_ping + WIRE_PING_NS;
        }
        /* wait for a socket or the next scheduled send */
        int64_t wait = next_due == INT64_MAX ? WIRE_WAIT_MAX_NS : next_due - bench_ns();
        if (wait > WIRE_WAIT_MAX_NS)
            wait = WIRE_WAIT_MAX_NS;
        if (wait > 0) {
            struct pollfd fds[2 * BENCH_MAX_PAIRS];
            nfds_t nf = 0;
            for (unsigned i = 0; i < n_pairs; i++) {
                fds[nf++] = (struct pollfd){.fd = r->p[i].snd_fd, .events = POLLIN};
                if (r->p[i].rcv)
                    fds[nf++] = (struct pollfd){.fd = r->p[i].rcv_fd, .events = POLLIN};
            }
            /* ZMQ_FD is edge-like: only wait if no socket has a message now */
            int ready = 0;
            for (unsigned i = 0; i < n_pairs && !ready; i++) {
                int ev = 0;
                size_t len = sizeof ev;
                zmq_getsockopt(r->p[i].snd, ZMQ_EVENTS, &ev, &len);
                ready |= ev & ZMQ_POLLIN;
                if (r->p[i].rcv) {
                    zmq_getsockopt(r->p[i].rcv, ZMQ_EVENTS, &ev, &len);
                    ready |= ev & ZMQ_POLLIN;
                }
            }
            if (!ready) {
                struct timespec ts = {(time_t)(wait / 1000000000), (long)(wait % 1000000000)};
                ppoll(fds, nf, &ts, NULL);
            }
        }
    }

    /* results */
    size_t total = (size_t)n_pairs * per_pair;
    int64_t *tmp = malloc(total * sizeof *tmp);
    if (!tmp)
        goto done;
    int64_t first = t0, last_sent = t0;
    for (unsigned i = 0; i < n_pairs; i++) {
        s_pair_t *p = &r->p[i];
        out->sent += p->next;
        out->accepted += p->accepted;
        out->delivered += p->delivered;
        if (p->next > 0 && p->t_sent[p->next - 1] > last_sent)
            last_sent = p->t_sent[p->next - 1];
    }
    out->rejected = r->rejected;
    if (r->last_rcpt > first)
        out->accept_rate = (double)out->accepted / ((double)(r->last_rcpt - first) / 1e9);
    if (r->last_dlv > first)
        out->deliver_rate = (double)out->delivered / ((double)(r->last_dlv - first) / 1e9);
    if (phase == 2 && acked_at > first && recipients_online)
        out->ack_rate = (double)out->delivered / ((double)(acked_at - first) / 1e9);
    if (last_sent > first)
        out->offered_rate = (double)out->sent / ((double)(last_sent - first) / 1e9);
    size_t m = 0;
    for (unsigned i = 0; i < n_pairs; i++)
        s_lat(r->p[i].t_sent, r->p[i].t_rcpt, per_pair, tmp, &m);
    out->rcpt_p50 = bench_pct(tmp, m, 0.50);
    out->rcpt_p99 = bench_pct(tmp, m, 0.99);
    out->rcpt_p999 = bench_pct(tmp, m, 0.999);
    m = 0;
    for (unsigned i = 0; i < n_pairs; i++)
        s_lat(r->p[i].t_sent, r->p[i].t_dlv, per_pair, tmp, &m);
    out->dlv_p50 = bench_pct(tmp, m, 0.50);
    out->dlv_p99 = bench_pct(tmp, m, 0.99);
    out->dlv_p999 = bench_pct(tmp, m, 0.999);
    free(tmp);
    out->complete = phase == 2 && out->accepted == total && (!recipients_online || out->delivered == total);
    if (r->rejected && !out->error[0])
        snprintf(out->error, sizeof out->error, "%zu not accepted, first: %.150s", r->rejected, r->first_reject);
    rc = 0;
done:
    for (unsigned i = 0; i < n_pairs; i++) {
        if (r->p[i].snd)
            zmq_close(r->p[i].snd);
        if (r->p[i].rcv)
            zmq_close(r->p[i].rcv);
        free(r->p[i].t_sent);
        free(r->p[i].t_rcpt);
        free(r->p[i].t_dlv);
        for (size_t b2 = 0; r->p[i].bframe && b2 < r->p[i].n_bframe; b2++)
            free(r->p[i].bframe[b2]);
        free(r->p[i].bframe);
        free(r->p[i].blen);
    }
    zmq_ctx_term(ctx);
    free(r);
    return rc;
}
