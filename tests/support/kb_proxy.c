/*
 * kb_proxy.c - the TCP relay of kb_proxy.h.
 *
 * One thread polls the listening socket, a control pipe and both sides of
 * every joined connection. Commands come through the pipe as one byte
 * ('h' hold, 'r' release, 'c' cut, 'q' quit) and are answered with one
 * byte on a second pipe, so kb_proxy_cut returns only once the
 * connections are closed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kb_proxy.h"

#define S_MAX_PAIRS 16

typedef struct {
    int client;  /* accepted from an adapter; -1: slot free */
    int target;  /* our connection to the target */
} s_pair_t;

struct kb_proxy {
    int listen_fd;                  /* listening socket */
    int cmd[2];                     /* test -> thread */
    int ack[2];                     /* thread -> test */
    int target_port;                /* where the target listens */
    int hold;                       /* 1: the target's side is not read */
    s_pair_t pairs[S_MAX_PAIRS];    /* joined connections */
    pthread_t thread;               /* the relay */
    char endpoint[64];              /* tcp://127.0.0.1:PORT */
};

static void s_close_pair(s_pair_t *p)
{
    if (p->client < 0)
        return;
    close(p->client);
    close(p->target);
    p->client = p->target = -1;
}

/* Pass what is waiting on from to to; 0 when from closed or failed. */
static int s_pass(int from, int to)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof buf);
    if (n <= 0)
        return 0;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 0;
        off += w;
    }
    return 1;
}

static void s_accept(kb_proxy_t *p)
{
    int c = accept(p->listen_fd, NULL, NULL);
    if (c < 0)
        return;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->target_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int t = socket(AF_INET, SOCK_STREAM, 0);
    if (t < 0 || connect(t, (struct sockaddr *)&a, sizeof a) != 0) {
        if (t >= 0)
            close(t);
        close(c);
        return;
    }
    for (int i = 0; i < S_MAX_PAIRS; i++) {
        if (p->pairs[i].client < 0) {
            p->pairs[i] = (s_pair_t){c, t};
            return;
        }
    }
    close(t);
    close(c);
}

static void *s_run(void *arg)
{
    kb_proxy_t *p = arg;
    for (;;) {
        struct pollfd fds[2 + 2 * S_MAX_PAIRS];
        int idx[2 + 2 * S_MAX_PAIRS];
        int n = 0;
        fds[n++] = (struct pollfd){p->cmd[0], POLLIN, 0};
        fds[n++] = (struct pollfd){p->listen_fd, POLLIN, 0};
        for (int i = 0; i < S_MAX_PAIRS; i++) {
            if (p->pairs[i].client < 0)
                continue;
            idx[n] = i;
            fds[n++] = (struct pollfd){p->pairs[i].client, POLLIN, 0};
            if (!p->hold) {
                idx[n] = i;
                fds[n++] = (struct pollfd){p->pairs[i].target, POLLIN, 0};
            }
        }
        if (poll(fds, (nfds_t)n, 1000) < 0 && errno != EINTR)
            break;
        if (fds[0].revents & POLLIN) {
            char cmd = 0;
            if (read(p->cmd[0], &cmd, 1) != 1)
                break;
            if (cmd == 'h')
                p->hold = 1;
            else if (cmd == 'r')
                p->hold = 0;
            else if (cmd == 'c') {
                for (int i = 0; i < S_MAX_PAIRS; i++)
                    s_close_pair(&p->pairs[i]);
                p->hold = 0;
            }
            if (write(p->ack[1], &cmd, 1) != 1 || cmd == 'q')
                break;
            continue; /* the descriptors polled may be closed now */
        }
        if (fds[1].revents & POLLIN)
            s_accept(p);
        for (int k = 2; k < n; k++) {
            s_pair_t *pr = &p->pairs[idx[k]];
            if (!fds[k].revents || pr->client < 0)
                continue;
            int from_client = fds[k].fd == pr->client;
            if (!s_pass(fds[k].fd, from_client ? pr->target : pr->client))
                s_close_pair(pr);
        }
    }
    for (int i = 0; i < S_MAX_PAIRS; i++)
        s_close_pair(&p->pairs[i]);
    return NULL;
}

kb_proxy_t *kb_proxy_start(const char *target)
{
    const char *colon = strrchr(target, ':');
    if (!colon)
        return NULL;
    kb_proxy_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->target_port = atoi(colon + 1);
    for (int i = 0; i < S_MAX_PAIRS; i++)
        p->pairs[i].client = p->pairs[i].target = -1;
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(p->listen_fd, 16) != 0 || getsockname(p->listen_fd, (struct sockaddr *)&a, &alen) != 0 ||
        pipe(p->cmd) != 0 || pipe(p->ack) != 0) {
        if (p->listen_fd >= 0)
            close(p->listen_fd);
        free(p);
        return NULL;
    }
    snprintf(p->endpoint, sizeof p->endpoint, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    if (pthread_create(&p->thread, NULL, s_run, p) != 0) {
        close(p->listen_fd);
        for (int i = 0; i < 2; i++) {
            close(p->cmd[i]);
            close(p->ack[i]);
        }
        free(p);
        return NULL;
    }
    return p;
}

const char *kb_proxy_endpoint(const kb_proxy_t *p)
{
    return p->endpoint;
}

/* Send cmd to the thread and wait until it has done it. */
static void s_command(kb_proxy_t *p, char cmd)
{
    char got;
    if (write(p->cmd[1], &cmd, 1) == 1)
        while (read(p->ack[0], &got, 1) < 0 && errno == EINTR)
            ;
}

void kb_proxy_hold(kb_proxy_t *p, int on)
{
    s_command(p, on ? 'h' : 'r');
}

void kb_proxy_cut(kb_proxy_t *p)
{
    s_command(p, 'c');
}

void kb_proxy_stop(kb_proxy_t **pp)
{
    if (!pp || !*pp)
        return;
    kb_proxy_t *p = *pp;
    s_command(p, 'q');
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    for (int i = 0; i < 2; i++) {
        close(p->cmd[i]);
        close(p->ack[i]);
    }
    free(p);
    *pp = NULL;
}
