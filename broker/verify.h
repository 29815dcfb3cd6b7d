/*
 * verify.h - checking envelope signatures on all cores.
 *
 * Ed25519 verification is the broker's largest cost per message (about
 * 0.1 ms per core, several times everything else together), and each check
 * is independent. The loop therefore first reads a turn's frames, hands every
 * envelope's signature check to this pool, and routes the envelopes in
 * their original order once all checks are done: order and decisions stay
 * single-threaded, only the arithmetic is spread over the cores.
 */
#ifndef KB_VERIFY_H
#define KB_VERIFY_H

#include <stddef.h>

#include <openssl/evp.h>

#include "ketenbus.pb-c.h"

#define KB_VERIFY_MAX_THREADS 16u /* workers beside the broker's own thread */

/* One signature check. */
typedef struct {
    const Ketenbus__Envelope *env; /* envelope to check (borrowed) */
    EVP_PKEY *key;                 /* its sender's Ed25519 public key (borrowed) */
    int rc;                        /* result of kb_seal_verify; KB_EINVAL until run */
    char detail[200];              /* why it failed (kb_last_error() of the worker) */
} kb_verify_job_t;

typedef struct kb_verify_pool kb_verify_pool_t;

/* A pool with `workers` threads beside the caller (0: the caller checks
 * everything itself). Returns once the threads run; NULL on failure. */
kb_verify_pool_t *kb_verify_pool_new(unsigned workers);

/* Stop and join the threads. */
void kb_verify_pool_destroy(kb_verify_pool_t **p);

/* Run the n jobs on the pool and the calling thread; returns when all are
 * done. Jobs must stay valid until then. */
void kb_verify_pool_run(kb_verify_pool_t *p, kb_verify_job_t *jobs, size_t n);

/* The same in two halves: start hands the jobs to the workers and returns
 * at once (the caller may do other work meanwhile, e.g. route the previous
 * turn); finish lends the calling thread to what is left and returns when
 * all are done. One batch at a time: no start before the last finish.
 * finish with nothing started returns at once. */
void kb_verify_pool_start(kb_verify_pool_t *p, kb_verify_job_t *jobs, size_t n);
void kb_verify_pool_finish(kb_verify_pool_t *p);

/* Workers for this machine: online cores minus one, at most the maximum. */
unsigned kb_verify_default_workers(void);

#endif
