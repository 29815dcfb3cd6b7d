/*
 * peer_rabbitmq.c - the ketenbus-bench workload against RabbitMQ.
 *
 *   peer_rabbitmq HOST PORT classic|quorum N
 *
 * Declares a durable queue of the given type, then one thread publishes N
 * persistent 256-byte messages (delivery_mode 2) on a confirm-mode channel
 * with at most PEER_WINDOW unconfirmed, while another thread on its own
 * connection consumes with prefetch PEER_PREFETCH and manual acks (multiple,
 * every PEER_ACK_EVERY). RabbitMQ confirms a persistent message on a durable
 * queue only after it is written and fsynced (classic: its message store;
 * quorum: the Raft log), as ketenbus sends RECEIPT ACCEPTED only after its
 * synced write. Prints one peer_common.h line.
 */
#include <pthread.h>
#include <stdatomic.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "peer_common.h"

typedef struct {
    const char *host;          /* server address */
    int port;                  /* AMQP port */
    const char *queue;         /* queue name */
    size_t n;                  /* messages */
    atomic_int started;        /* the publisher began */
    int64_t t0;                /* first publish */
    size_t consumed;           /* received and acked */
    int64_t t_consumed;        /* last ack sent */
    int failed;                /* consumer error */
} s_run_t;

static int s_ok(amqp_rpc_reply_t r, const char *what)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 1;
    fprintf(stderr, "peer_rabbitmq: %s failed (reply type %d, library error %s)\n", what, (int)r.reply_type,
            amqp_error_string2(r.library_error));
    return 0;
}

static amqp_connection_state_t s_connect(const char *host, int port)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *sock = c ? amqp_tcp_socket_new(c) : NULL;
    if (!sock || amqp_socket_open(sock, host, port) != AMQP_STATUS_OK) {
        fprintf(stderr, "peer_rabbitmq: cannot connect to %s:%d\n", host, port);
        if (c)
            amqp_destroy_connection(c);
        return NULL;
    }
    if (!s_ok(amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login")) {
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_channel_open(c, 1);
    if (!s_ok(amqp_get_rpc_reply(c), "channel.open")) {
        amqp_destroy_connection(c);
        return NULL;
    }
    return c;
}

static void s_close(amqp_connection_state_t c)
{
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static void *s_consumer(void *arg)
{
    s_run_t *r = arg;
    amqp_connection_state_t c = s_connect(r->host, r->port);
    if (!c) {
        r->failed = 1;
        return NULL;
    }
    amqp_basic_qos(c, 1, 0, PEER_PREFETCH, 0);
    amqp_basic_consume(c, 1, amqp_cstring_bytes(r->queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    if (!s_ok(amqp_get_rpc_reply(c), "basic.consume")) {
        r->failed = 1;
        amqp_destroy_connection(c);
        return NULL;
    }
    size_t pending = 0;
    uint64_t last_tag = 0;
    int64_t limit = peer_ns() + (int64_t)(PEER_LIMIT_S * 1e9);
    while (r->consumed < r->n && peer_ns() < limit) {
        amqp_maybe_release_buffers(c);
        amqp_envelope_t env;
        struct timeval tv = {0, 200000};
        amqp_rpc_reply_t res = amqp_consume_message(c, &env, &tv, 0);
        if (res.reply_type == AMQP_RESPONSE_NORMAL) {
            last_tag = env.delivery_tag;
            r->consumed++;
            amqp_destroy_envelope(&env);
            if (++pending >= PEER_ACK_EVERY || r->consumed == r->n) {
                amqp_basic_ack(c, 1, last_tag, 1);
                pending = 0;
                r->t_consumed = peer_ns();
            }
        } else if (!(res.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && res.library_error == AMQP_STATUS_TIMEOUT)) {
            s_ok(res, "consume");
            r->failed = 1;
            break;
        } else if (pending > 0) {
            amqp_basic_ack(c, 1, last_tag, 1);
            pending = 0;
            r->t_consumed = peer_ns();
        }
    }
    s_close(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5 || peer_count(argv[4]) == 0 || peer_count(argv[2]) > 65535 || peer_count(argv[2]) == 0 || (strcmp(argv[3], "classic") != 0 && strcmp(argv[3], "quorum") != 0)) {
        fprintf(stderr, "usage: peer_rabbitmq HOST PORT classic|quorum N\n");
        return 2;
    }
    s_run_t r;
    memset(&r, 0, sizeof r);
    r.host = argv[1];
    r.port = (int)peer_count(argv[2]);
    r.n = peer_count(argv[4]);
    char qname[64];
    snprintf(qname, sizeof qname, "bench-%s", argv[3]);
    r.queue = qname;

    amqp_connection_state_t c = s_connect(r.host, r.port);
    if (!c)
        return 1;
    amqp_table_entry_t qt;
    qt.key = amqp_cstring_bytes("x-queue-type");
    qt.value.kind = AMQP_FIELD_KIND_UTF8;
    qt.value.value.bytes = amqp_cstring_bytes(argv[3]);
    amqp_table_t args = {1, &qt};
    amqp_queue_declare(c, 1, amqp_cstring_bytes(qname), 0, 1, 0, 0, args);
    if (!s_ok(amqp_get_rpc_reply(c), "queue.declare"))
        return 1;
    amqp_queue_purge(c, 1, amqp_cstring_bytes(qname));
    amqp_confirm_select(c, 1);
    if (!s_ok(amqp_get_rpc_reply(c), "confirm.select"))
        return 1;

    pthread_t th;
    if (pthread_create(&th, NULL, s_consumer, &r) != 0)
        return 1;
    struct timespec pause = {0, 200000000};
    nanosleep(&pause, NULL); /* let basic.consume land */

    char body[PEER_PAYLOAD];
    memset(body, 'p', sizeof body);
    amqp_bytes_t msg = {sizeof body, body};
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = 2; /* persistent */
    size_t published = 0, confirmed = 0, nacked = 0;
    int64_t t_confirmed = 0;
    r.t0 = peer_ns();
    int64_t limit = r.t0 + (int64_t)(PEER_LIMIT_S * 1e9);
    while (confirmed + nacked < r.n && peer_ns() < limit) {
        while (published < r.n && published - confirmed - nacked < PEER_WINDOW) {
            if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(qname), 0, 0, &props, msg) !=
                AMQP_STATUS_OK) {
                fprintf(stderr, "peer_rabbitmq: publish failed\n");
                return 1;
            }
            published++;
        }
        int full = published - confirmed - nacked >= PEER_WINDOW || published == r.n;
        struct timeval tv = {0, full ? 50000 : 0};
        for (;;) {
            amqp_frame_t f;
            int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
            if (rc != AMQP_STATUS_OK)
                break;
            tv.tv_usec = 0;
            if (f.frame_type != AMQP_FRAME_METHOD)
                continue;
            if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
                amqp_basic_ack_t *a = f.payload.method.decoded;
                if (a->multiple)
                    confirmed = a->delivery_tag - nacked > confirmed ? a->delivery_tag - nacked : confirmed;
                else
                    confirmed++;
                t_confirmed = peer_ns();
            } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
                nacked++;
            }
        }
    }
    pthread_join(th, NULL);
    s_close(c);
    if (nacked)
        fprintf(stderr, "peer_rabbitmq: %zu publishes were nacked\n", nacked);
    char name[64];
    snprintf(name, sizeof name, "rabbitmq-%s", argv[3]);
    peer_report(name, r.n, confirmed, t_confirmed, r.consumed, r.t_consumed, r.t0);
    return r.failed || confirmed != r.n || r.consumed != r.n ? 1 : 0;
}
