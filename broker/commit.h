/*
 * commit.h - the broker's committer thread: LevelDB writes (and their
 * fdatasync) off the loop thread.
 *
 * The loop hands over a turn's batch and goes on reading and routing the
 * next turn's frames while this thread writes and syncs it; before it
 * starts another commit, or sends anything the batch makes true, it
 * collects the result. At most one batch is in flight, and batches are
 * written in the order they were started, so the store sees the same
 * sequence of writes as with kb_store_commit() in the loop.
 *
 * Used by broker.c only. The object belongs to the loop thread; the thread
 * inside touches nothing but the batch it was handed and the store's
 * LevelDB handle (LevelDB allows concurrent readers and writers).
 */
#ifndef KB_COMMIT_H
#define KB_COMMIT_H

#include "store.h"

typedef struct kb_commit kb_commit_t;

/* Start the thread for store (borrowed; it must outlive the object).
 * Returns once the thread runs; NULL on failure (kb_last_error()). */
kb_commit_t *kb_commit_new(kb_store_t *store);

/* Collect any batch in flight (its result is dropped: call kb_commit_wait
 * first to see it), stop and join the thread; accepts NULL. */
void kb_commit_destroy(kb_commit_t **p);

/* Hand *batch, sealed (kb_store_seal), over for kb_store_write(store,
 * batch, sync) and clear *batch. Only when nothing is in flight: KB_EINVAL
 * otherwise. */
int kb_commit_start(kb_commit_t *c, kb_batch_t **batch, int sync);

/* 1 if a batch was started and not yet collected. */
int kb_commit_busy(const kb_commit_t *c);

/* 1 if the batch in flight is written: kb_commit_wait will not block. */
int kb_commit_ready(kb_commit_t *c);

/* A descriptor that is readable when the batch in flight is written (for
 * the loop's poll); collect with kb_commit_wait. */
int kb_commit_fd(const kb_commit_t *c);

/* Wait until the batch in flight is written and give it back (cleared) in
 * *batch; returns its kb_store_write() result, with its detail as
 * kb_last_error() of the caller. KB_OK with *batch NULL if nothing was in
 * flight. */
int kb_commit_wait(kb_commit_t *c, kb_batch_t **batch);

#endif
