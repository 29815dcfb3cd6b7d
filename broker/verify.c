/*
 * verify.c - a small fixed pool of threads for signature checks.
 *
 * kb_verify_pool_run() publishes a batch (jobs, n) under the mutex and bumps
 * a generation counter; workers and the caller then take job indexes from
 * an atomic counter until none are left, and the caller waits until every
 * taken job has finished. No job touches shared state besides its own slot;
 * OpenSSL's verify calls are thread-safe with separate contexts, which
 * kb_seal_verify creates per call.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kb_error.h"
#include "kb_seal.h"
#include "verify.h"

struct kb_verify_pool {
    pthread_t threads[KB_VERIFY_MAX_THREADS]; /* the workers */
    unsigned n_threads;                       /* how many run */
    pthread_mutex_t lock;                     /* guards the fields below */
    pthread_cond_t work;                      /* a new batch or stop */
    pthread_cond_t done;                      /* a worker finished its share */
    unsigned long generation;                 /* batch number */
    int stop;                                 /* 1: workers exit */
    kb_verify_job_t *jobs;                    /* current batch */
    size_t n;                                 /* its size */
    atomic_size_t next;                       /* next job index to take */
    atomic_size_t finished;                   /* jobs completed */
    unsigned busy;                            /* workers inside the current batch */
};

static void s_do(kb_verify_pool_t *p)
{
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n)
            return;
        kb_verify_job_t *j = &p->jobs[i];
        j->rc = kb_seal_verify(j->env, j->key);
        if (j->rc != KB_OK)
            snprintf(j->detail, sizeof j->detail, "%s", kb_last_error());
        atomic_fetch_add(&p->finished, 1);
    }
}

static void *s_worker(void *arg)
{
    kb_verify_pool_t *p = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stop)
            break;
        seen = p->generation;
        p->busy++;
        pthread_mutex_unlock(&p->lock);
        s_do(p);
        pthread_mutex_lock(&p->lock);
        p->busy--;
        pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

kb_verify_pool_t *kb_verify_pool_new(unsigned workers)
{
    kb_verify_pool_t *p = calloc(1, sizeof *p);
    if (!p) {
        kb_error_set(KB_ENOMEM, "verify pool: out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    if (workers > KB_VERIFY_MAX_THREADS)
        workers = KB_VERIFY_MAX_THREADS;
    for (unsigned i = 0; i < workers; i++) {
        if (pthread_create(&p->threads[i], NULL, s_worker, p) != 0) {
            kb_error_set(KB_ENOMEM, "verify pool: cannot start thread %u", i);
            kb_verify_pool_destroy(&p);
            return NULL;
        }
        p->n_threads++;
    }
    return p;
}

void kb_verify_pool_destroy(kb_verify_pool_t **pp)
{
    if (!pp || !*pp)
        return;
    kb_verify_pool_t *p = *pp;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    free(p);
    *pp = NULL;
}

void kb_verify_pool_start(kb_verify_pool_t *p, kb_verify_job_t *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        jobs[i].rc = KB_EINVAL;
    pthread_mutex_lock(&p->lock);
    p->jobs = jobs;
    p->n = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->finished, 0);
    /* one job is not worth waking anyone for */
    if (n > 1 && p->n_threads > 0) {
        p->generation++;
        pthread_cond_broadcast(&p->work);
    }
    pthread_mutex_unlock(&p->lock);
}

void kb_verify_pool_finish(kb_verify_pool_t *p)
{
    if (p->n == 0)
        return;
    s_do(p);
    pthread_mutex_lock(&p->lock);
    /* every job taken is finished, and no worker is still inside this batch
     * (a late worker would otherwise read the next batch's counters) */
    while (atomic_load(&p->finished) < p->n || p->busy > 0)
        pthread_cond_wait(&p->done, &p->lock);
    p->jobs = NULL;
    p->n = 0;
    pthread_mutex_unlock(&p->lock);
}

void kb_verify_pool_run(kb_verify_pool_t *p, kb_verify_job_t *jobs, size_t n)
{
    if (n == 0)
        return;
    kb_verify_pool_start(p, jobs, n);
    kb_verify_pool_finish(p);
}

unsigned kb_verify_default_workers(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores <= 1)
        return 0;
    return cores - 1 > (long)KB_VERIFY_MAX_THREADS ? KB_VERIFY_MAX_THREADS : (unsigned)(cores - 1);
}
