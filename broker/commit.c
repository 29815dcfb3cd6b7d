/*
 * commit.c - the committer thread (see commit.h).
 *
 * One job slot under a mutex: kb_commit_start fills it and signals the
 * thread; the thread writes the batch, records the result and writes one
 * byte into a pipe; kb_commit_wait reads that byte (blocking), then takes
 * the result. The pipe doubles as the descriptor the loop polls, so a
 * finished commit wakes the loop like an arriving frame does.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commit.h"
#include "kb_error.h"

struct kb_commit {
    kb_store_t *store;              /* where batches go (borrowed) */
    pthread_t thread;               /* the committer */
    int started;                    /* 1 once the thread runs */
    int pipe_fd[2];                 /* [0] loop reads, [1] thread writes: one byte per finished job */
    pthread_mutex_t lock;           /* guards the fields below */
    pthread_cond_t work;            /* a job or stop for the thread */
    kb_batch_t *job;                /* batch to write; NULL: none waiting */
    int job_sync;                   /* its sync flag */
    kb_batch_t *done;               /* written batch, until collected */
    int done_rc;                    /* its result */
    char done_err[KB_ERROR_MAX];    /* its detail when it failed */
    int stop;                       /* 1: the thread exits */
    int busy;                       /* loop side: a job started and not collected */
};

static void *s_run(void *arg)
{
    kb_commit_t *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->stop && !c->job)
            pthread_cond_wait(&c->work, &c->lock);
        if (!c->job)
            break; /* stop, and nothing left to write */
        kb_batch_t *b = c->job;
        int sync = c->job_sync;
        c->job = NULL;
        pthread_mutex_unlock(&c->lock);
        int rc = kb_store_write(c->store, b, sync); /* sealed by the loop (kb_store_seal) */
        pthread_mutex_lock(&c->lock);
        c->done = b;
        c->done_rc = rc;
        c->done_err[0] = '\0';
        if (rc != KB_OK)
            snprintf(c->done_err, sizeof c->done_err, "%s", kb_last_error());
        /* the loop blocks on this byte; a full pipe cannot happen with one job in flight */
        char one = 1;
        ssize_t w;
        do {
            w = write(c->pipe_fd[1], &one, 1);
        } while (w < 0 && errno == EINTR);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

kb_commit_t *kb_commit_new(kb_store_t *store)
{
    kb_commit_t *c = calloc(1, sizeof *c);
    if (!c) {
        kb_error_set(KB_ENOMEM, "commit: out of memory");
        return NULL;
    }
    c->store = store;
    c->pipe_fd[0] = c->pipe_fd[1] = -1;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->work, NULL);
    if (pipe2(c->pipe_fd, O_CLOEXEC) != 0) {
        kb_error_set(KB_EIO, "commit: pipe: %s", strerror(errno));
        kb_commit_destroy(&c);
        return NULL;
    }
    int err = pthread_create(&c->thread, NULL, s_run, c);
    if (err != 0) {
        kb_error_set(KB_ENOMEM, "commit: thread: %s", strerror(err));
        kb_commit_destroy(&c);
        return NULL;
    }
    c->started = 1;
    return c;
}

void kb_commit_destroy(kb_commit_t **p)
{
    if (!p || !*p)
        return;
    kb_commit_t *c = *p;
    if (c->started) {
        kb_batch_t *b = NULL;
        kb_commit_wait(c, &b);
        kb_batch_destroy(&b);
        pthread_mutex_lock(&c->lock);
        c->stop = 1;
        pthread_cond_signal(&c->work);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
    }
    kb_batch_destroy(&c->job);
    kb_batch_destroy(&c->done);
    for (int i = 0; i < 2; i++)
        if (c->pipe_fd[i] >= 0)
            close(c->pipe_fd[i]);
    pthread_cond_destroy(&c->work);
    pthread_mutex_destroy(&c->lock);
    free(c);
    *p = NULL;
}

int kb_commit_start(kb_commit_t *c, kb_batch_t **batch, int sync)
{
    if (c->busy)
        return kb_error_set(KB_EINVAL, "commit: a batch is still in flight");
    pthread_mutex_lock(&c->lock);
    c->job = *batch;
    c->job_sync = sync;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->lock);
    *batch = NULL;
    c->busy = 1;
    return KB_OK;
}

int kb_commit_busy(const kb_commit_t *c)
{
    return c->busy;
}

int kb_commit_ready(kb_commit_t *c)
{
    if (!c->busy)
        return 0;
    pthread_mutex_lock(&c->lock);
    int ready = c->done != NULL;
    pthread_mutex_unlock(&c->lock);
    return ready;
}

int kb_commit_fd(const kb_commit_t *c)
{
    return c->pipe_fd[0];
}

int kb_commit_wait(kb_commit_t *c, kb_batch_t **batch)
{
    *batch = NULL;
    if (!c->busy)
        return KB_OK;
    char one;
    ssize_t r;
    do {
        r = read(c->pipe_fd[0], &one, 1);
    } while (r < 0 && errno == EINTR);
    if (r != 1)
        return kb_error_set(KB_EIO, "commit: pipe: %s", r < 0 ? strerror(errno) : "closed");
    pthread_mutex_lock(&c->lock);
    *batch = c->done;
    int rc = c->done_rc;
    c->done = NULL;
    pthread_mutex_unlock(&c->lock);
    c->busy = 0;
    if (rc != KB_OK)
        kb_error_set(rc, "%s", c->done_err);
    return rc;
}
