/*
 * bench_sdk.c - the exchange through libketenbus, as an adapter runs it.
 *
 * One client for s0 submits with timeout 0 (the SDK builds, signs, stores
 * in its durable outbox with a synced write, sends, and returns
 * KETENBUS_EPENDING), one message per ketenbus_client_submit() or `batch`
 * per ketenbus_client_submit_batch() (one synced write for the batch),
 * keeping a window of unanswered submissions, and one
 * client for r0 receives through a handler that returns 0 (the SDK records
 * the ids as seen with a synced write per batch, then ACKs). Both run in
 * this thread through ketenbus_client_poll(). Unlike the wire benchmark,
 * this includes everything an adapter pays: JSON-path field setting,
 * signing, and the outbox fsync per submission.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "ketenbus.h"

#define SDK_WINDOW 512u  /* submissions without receipt */

typedef struct {
    size_t delivered;    /* handler calls */
    int64_t last;        /* ns of the last */
} s_rx_t;

static int s_handler(ketenbus_client_t *c, const ketenbus_msg_t *m, void *arg)
{
    (void)c;
    (void)m;
    s_rx_t *rx = arg;
    rx->delivered++;
    rx->last = bench_ns();
    return 0;
}

static ketenbus_client_t *s_client(const bench_broker_t *b, const bench_keys_t *k, const char *agency)
{
    char state[512];
    snprintf(state, sizeof state, "%s/sdk-state-%s", b->dir, agency);
    ketenbus_client_opts_t *o = ketenbus_client_opts_new();
    if (!o)
        return NULL;
    ketenbus_client_t *c = NULL;
    if (ketenbus_client_opts_set_agency(o, agency, k->keys) == KETENBUS_OK &&
        ketenbus_client_opts_set_broker(o, b->endpoint, k->broker_cert) == KETENBUS_OK &&
        ketenbus_client_opts_set_state_dir(o, state) == KETENBUS_OK &&
        ketenbus_client_opts_set_credit(o, 4096) == KETENBUS_OK)
        c = ketenbus_client_new(o);
    if (!c)
        bench_log("client %s: %s", agency, ketenbus_last_error());
    ketenbus_client_opts_destroy(&o);
    return c;
}

static ketenbus_msg_t *s_message(const char *narrative)
{
    ketenbus_msg_t *m = ketenbus_msg_new(KETENBUS_KIND_SIGNAL);
    if (!m)
        return NULL;
    static const char *fields[][2] = {
        {"recipients", "r0"}, {"purpose", "victim_care"}, {"handling", "h1"},
        {"legal_basis.basis", "Wpg art. 19"}, {"legal_basis.consent", "not_required"},
        {"officer", "officer-17"}, {"signal.exploitation", "criminal"}, {"signal.minor", "true"},
        {"signal.age_band", "12_to_15"}, {"signal.observed.municipality", "GM0344"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (ketenbus_msg_set(m, fields[i][0], fields[i][1]) != KETENBUS_OK) {
            ketenbus_msg_destroy(&m);
            return NULL;
        }
    if (ketenbus_msg_set(m, "signal.narrative", narrative) != KETENBUS_OK)
        ketenbus_msg_destroy(&m);
    return m;
}

int bench_sdk_run(const bench_broker_t *b, const bench_keys_t *k, size_t n, size_t payload, size_t batch,
                  double time_limit_s, bench_sdk_t *out)
{
    if (batch < 1 || batch > KETENBUS_BATCH_MAX)
        return -1;
    memset(out, 0, sizeof *out);
    out->n = n;
    char *narrative = malloc(payload + 1);
    if (!narrative)
        return -1;
    for (size_t i = 0; i < payload; i++)
        narrative[i] = (char)('a' + i % 26);
    narrative[payload] = '\0';
    s_rx_t rx = {0, 0};
    ketenbus_client_t *snd = s_client(b, k, "s0");
    ketenbus_client_t *rcv = s_client(b, k, "r0");
    int rc = -1;
    if (!snd || !rcv)
        goto done;
    ketenbus_client_set_handler(rcv, s_handler, &rx);
    int64_t deadline = bench_ns() + 10LL * 1000000000;
    while ((!ketenbus_client_is_connected(snd) || !ketenbus_client_is_connected(rcv)) && bench_ns() < deadline) {
        ketenbus_client_poll(snd, 10);
        ketenbus_client_poll(rcv, 10);
    }
    if (!ketenbus_client_is_connected(snd) || !ketenbus_client_is_connected(rcv)) {
        snprintf(out->error, sizeof out->error, "clients not welcomed");
        goto done;
    }
    size_t submitted = 0;
    int64_t t0 = bench_ns(), limit = t0 + (int64_t)(time_limit_s * 1e9), last_rcpt = t0;
    size_t answered = 0;
    while ((answered < n || rx.delivered < n) && bench_ns() < limit) {
        while (submitted < n && ketenbus_client_outbox_size(snd) < SDK_WINDOW) {
            ketenbus_msg_t *ms[KETENBUS_BATCH_MAX];
            size_t want = n - submitted < batch ? n - submitted : batch, made = 0;
            for (; made < want; made++)
                if (!(ms[made] = s_message(narrative)))
                    break;
            int r = made < want ? KETENBUS_ENOMEM
                    : want == 1 ? ketenbus_client_submit(snd, ms[0], NULL, 0)
                                : ketenbus_client_submit_batch(snd, ms, want, NULL, 0);
            for (size_t i = 0; i < made; i++)
                ketenbus_msg_destroy(&ms[i]);
            if (r != KETENBUS_EPENDING && r != KETENBUS_OK) {
                snprintf(out->error, sizeof out->error, "submit: %s", ketenbus_last_error());
                goto done;
            }
            submitted += want;
        }
        if (ketenbus_client_poll(snd, 0) != KETENBUS_OK || ketenbus_client_poll(rcv, 1) != KETENBUS_OK) {
            snprintf(out->error, sizeof out->error, "poll: %s", ketenbus_last_error());
            goto done;
        }
        size_t now_answered = submitted - ketenbus_client_outbox_size(snd);
        if (now_answered != answered) {
            answered = now_answered;
            last_rcpt = bench_ns();
        }
    }
    out->accept_rate = (double)answered / ((double)(last_rcpt - t0) / 1e9);
    if (rx.last > t0)
        out->deliver_rate = (double)rx.delivered / ((double)(rx.last - t0) / 1e9);
    out->complete = answered == n && rx.delivered == n;
    if (!out->complete)
        snprintf(out->error, sizeof out->error, "%zu answered, %zu delivered of %zu in %.0f s", answered,
                 rx.delivered, n, time_limit_s);
    rc = 0;
done:
    ketenbus_client_destroy(&snd);
    ketenbus_client_destroy(&rcv);
    free(narrative);
    return rc;
}
