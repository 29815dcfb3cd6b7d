/*
 * peer_nats.c - the ketenbus-bench workload against NATS JetStream.
 *
 *   peer_nats URL N
 *
 * Creates a file-storage stream, then publishes N 256-byte messages with
 * js_PublishAsync (at most PEER_WINDOW awaiting their PubAck, counted by an
 * ack handler), while another thread on its own connection fetches from a
 * durable pull consumer (explicit acks, one natsMsg_Ack per message, batches
 * of PEER_ACK_EVERY). Note: nats-server 2.9 as Debian ships it sends the
 * PubAck once the message is in its file store's buffers; it writes and
 * syncs on a timer (sync_interval, default 2 minutes), so a PubAck is not a
 * synced write as a ketenbus RECEIPT or a RabbitMQ confirm is.
 * Prints one peer_common.h line.
 */
#include <pthread.h>
#include <stdatomic.h>

#include <nats/nats.h>

#include "peer_common.h"

#define STREAM  "BENCH"
#define SUBJECT "bench.msgs"

typedef struct {
    const char *url;           /* server URL */
    size_t n;                  /* messages */
    int64_t t0;                /* first publish */
    atomic_size_t confirmed;   /* PubAcks */
    atomic_size_t failed_pubs; /* publish errors */
    atomic_llong t_confirmed;  /* last PubAck */
    size_t consumed;           /* fetched and acked */
    int64_t t_consumed;        /* last ack */
    int failed;                /* consumer error */
} s_run_t;

static void s_on_puback(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    s_run_t *r = closure;
    if (pa && !pae) {
        atomic_fetch_add(&r->confirmed, 1);
        atomic_store(&r->t_confirmed, peer_ns());
    } else {
        atomic_fetch_add(&r->failed_pubs, 1);
    }
    natsMsg_Destroy(msg);
}

static void *s_consumer(void *arg)
{
    s_run_t *r = arg;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.MaxAckPending = PEER_PREFETCH * 4;
    natsStatus s = natsConnection_ConnectTo(&nc, r->url);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK)
        s = js_PullSubscribe(&sub, js, SUBJECT, "bench-consumer", NULL, &so, &jerr);
    if (s != NATS_OK) {
        fprintf(stderr, "peer_nats: consumer: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
        r->failed = 1;
    }
    int64_t limit = peer_ns() + (int64_t)(PEER_LIMIT_S * 1e9);
    while (!r->failed && r->consumed < r->n && peer_ns() < limit) {
        natsMsgList list = {NULL, 0};
        s = natsSubscription_Fetch(&list, sub, PEER_ACK_EVERY * 4, 200, &jerr);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            fprintf(stderr, "peer_nats: fetch: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
            r->failed = 1;
            break;
        }
        for (int i = 0; i < list.Count; i++) {
            if (natsMsg_Ack(list.Msgs[i], NULL) == NATS_OK)
                r->consumed++;
        }
        if (list.Count > 0)
            r->t_consumed = peer_ns();
        natsMsgList_Destroy(&list);
    }
    if (nc)
        natsConnection_Flush(nc);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3 || peer_count(argv[2]) == 0) {
        fprintf(stderr, "usage: peer_nats URL N\n");
        return 2;
    }
    static s_run_t r;
    r.url = argv[1];
    r.n = peer_count(argv[2]);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = PEER_WINDOW;
    jo.PublishAsync.AckHandler = s_on_puback;
    jo.PublishAsync.AckHandlerClosure = &r;
    natsStatus s = natsConnection_ConnectTo(&nc, r.url);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, &jo);
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {SUBJECT};
    sc.Name = STREAM;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (s == NATS_OK)
        s = js_AddStream(&si, js, &sc, NULL, &jerr);
    if (s != NATS_OK) {
        fprintf(stderr, "peer_nats: setup: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
        return 1;
    }
    jsStreamInfo_Destroy(si);

    pthread_t th;
    if (pthread_create(&th, NULL, s_consumer, &r) != 0)
        return 1;
    char body[PEER_PAYLOAD];
    memset(body, 'p', sizeof body);
    r.t0 = peer_ns();
    for (size_t i = 0; i < r.n && s == NATS_OK; i++)
        s = js_PublishAsync(js, SUBJECT, body, (int)sizeof body, NULL);
    if (s == NATS_OK) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = (int64_t)(PEER_LIMIT_S * 1000);
        s = js_PublishAsyncComplete(js, &po);
    }
    if (s != NATS_OK)
        fprintf(stderr, "peer_nats: publish: %s\n", natsStatus_GetText(s));
    pthread_join(th, NULL);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    peer_report("nats-jetstream", r.n, atomic_load(&r.confirmed), (int64_t)atomic_load(&r.t_confirmed), r.consumed,
                r.t_consumed, r.t0);
    nats_Close();
    return r.failed || atomic_load(&r.confirmed) != r.n || r.consumed != r.n ? 1 : 0;
}
