/*
 * peer_common.h - what the peer-broker clients of tests/bench/peers.sh
 * share: the workload ketenbus-bench runs (256-byte messages, one producer
 * to one consumer, each publish acknowledged by the server within a window,
 * each message consumed with an explicit ack) and one output line per run:
 *
 *   peer=NAME n=N confirmed_per_s=X consumed_per_s=Y seconds=S
 *
 * confirmed_per_s counts server acknowledgements of publishes from the
 * first publish; consumed_per_s counts messages received and acknowledged
 * by the consumer from the first publish. Header-only: each client is one
 * file built against its Debian library with pkg-config.
 */
#ifndef KB_PEER_COMMON_H
#define KB_PEER_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PEER_PAYLOAD 256u   /* bytes per message, as the 256 B ketenbus signal's narrative */
#define PEER_WINDOW  4000u  /* publishes without acknowledgement, as ketenbus-bench's window */
#define PEER_PREFETCH 1000u /* deliveries ahead of the consumer's acks */
#define PEER_ACK_EVERY 64u  /* the consumer acks in groups, as a DELIVER batch is acked */
#define PEER_LIMIT_S 120.0  /* a run ends after this even if incomplete */

static inline int64_t peer_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void peer_report(const char *name, size_t n, size_t confirmed, int64_t t_confirmed, size_t consumed,
                               int64_t t_consumed, int64_t t0)
{
    double c = t_confirmed > t0 ? (double)confirmed / ((double)(t_confirmed - t0) / 1e9) : 0;
    double d = t_consumed > t0 ? (double)consumed / ((double)(t_consumed - t0) / 1e9) : 0;
    printf("peer=%s n=%zu confirmed=%zu consumed=%zu confirmed_per_s=%.0f consumed_per_s=%.0f seconds=%.2f\n", name,
           n, confirmed, consumed, c, d, (double)((t_consumed > t_confirmed ? t_consumed : t_confirmed) - t0) / 1e9);
    fflush(stdout);
}

static inline size_t peer_count(const char *s)
{
    char *end = NULL;
    long v = s ? strtol(s, &end, 10) : 0;
    return (s && end && *end == '\0' && v > 0 && v <= 100000000) ? (size_t)v : 0;
}

#endif
