/*
 * checkpoint.h - signing a checkpoint of the audit log (checkpoint.c).
 *
 * The broker signs on its own schedule (checkpoint_maybe in broker.h);
 * `ketenbus audit prune --offline` signs through the same function after
 * it pruned a stopped broker's log, so that the PRUNED record and the
 * tombstones are covered by a signature before anyone verifies.
 */
#ifndef KB_CHECKPOINT_H
#define KB_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "kb_merkle.h"
#include "store.h"

/* Stage a checkpoint of tree (bound to store s, staging in batch b) at its
 * current size, signed with the broker's Ed25519 key under origin and key
 * name "ketenbus/<broker_id>": the note under k<size>, the partial leaf
 * tile, and the CHECKPOINT audit record that announces it. The caller
 * commits. On success *size (may be NULL) gets the size signed. KB_EINVAL
 * (bad broker id), KB_ECRYPTO, KB_ENOMEM, store and tree errors. */
int checkpoint_sign(kb_store_t *s, kb_batch_t *b, kb_merkle_t *tree, const char *broker_id, EVP_PKEY *key,
                    uint64_t *size);

#endif
