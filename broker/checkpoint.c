/*
 * checkpoint.c - signed checkpoints of the audit log.
 *
 * Every checkpoint_interval, or after checkpoint_records new records, the
 * broker signs the tree size and root hash of its audit log in the C2SP
 * signed-note format (lib/kb_note.c) with its Ed25519 key, under the origin
 * and key name "ketenbus/<broker id>". The note is stored under k<size> and
 * announced by a CHECKPOINT audit record (which is itself the next leaf, so
 * the following checkpoint covers it). Agencies keep checkpoints as
 * witnesses; `ketenbus audit verify` checks every stored one. With each
 * checkpoint the partial leaf tile is stored as well (store.h). Only
 * records logged since the last checkpoint's own CHECKPOINT record count as
 * new: a broker with nothing to log signs nothing more (else each
 * checkpoint's record would call for the next one, every turn with
 * checkpoint_records 1, and every interval when idle).
 *
 * Checkpointing never stops traffic: a failure is logged at error level
 * (event=checkpoint_failed, for the operators' alerting) and tried again
 * KB_CHECKPOINT_RETRY_MS later (not a whole checkpoint_interval, which may
 * be a day, nor on every turn, which would reopen the store each time);
 * a forced checkpoint (a prune, the stop) does not wait for that.
 */
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "broker.h"
#include "checkpoint.h"
#include "kb_error.h"
#include "kb_log.h"
#include "kb_note.h"
#include "kb_util.h"

#define KB_ORIGIN_MAX 96 /* "ketenbus/" + broker id */

/* Store the partial leaf tile of the tree at size (the newest size % 256
 * leaf hashes, which the store otherwise only rehashes from records), so
 * that the hashes the broker signed survive a later change to those
 * records: `audit verify` then names the altered record (store.h). */
static int s_store_partial_tile(kb_store_t *s, kb_batch_t *b, kb_merkle_t *tree, uint64_t size)
{
    size_t width = (size_t)(size % KB_MERKLE_TILE_WIDTH);
    if (width == 0)
        return KB_OK; /* the full tile is stored already */
    uint64_t first = size - width;
    uint8_t *hashes = malloc(width * KB_MERKLE_HASH_LEN);
    if (!hashes)
        return kb_error_set(KB_ENOMEM, "checkpoint: out of memory");
    int rc = KB_OK;
    for (size_t i = 0; rc == KB_OK && i < width; i++)
        rc = kb_merkle_leaf(tree, first + i, hashes + i * KB_MERKLE_HASH_LEN);
    if (rc == KB_OK)
        rc = kb_store_tile_put(s, b, 0, first / KB_MERKLE_TILE_WIDTH, hashes, width);
    free(hashes);
    return rc;
}

int checkpoint_sign(kb_store_t *s, kb_batch_t *b, kb_merkle_t *tree, const char *broker_id, EVP_PKEY *key,
                    uint64_t *size_out)
{
    uint64_t size = kb_merkle_size(tree);
    char origin[KB_ORIGIN_MAX];
    uint8_t root[KB_MERKLE_HASH_LEN];
    char *note = NULL;
    size_t note_len = 0;
    int rc = kb_fmt(origin, sizeof origin, "ketenbus/%s", broker_id);
    if (rc != KB_OK)
        return kb_error_set(KB_EINVAL, "checkpoint: broker id too long");
    rc = kb_merkle_root(tree, root);
    if (rc == KB_OK)
        rc = kb_note_sign(origin, size, root, origin, key, &note, &note_len);
    if (rc == KB_OK)
        rc = kb_store_checkpoint_put(s, b, size, note, note_len);
    if (rc == KB_OK)
        rc = s_store_partial_tile(s, b, tree, size);
    if (rc == KB_OK) {
        char root_hex[2 * KB_MERKLE_HASH_LEN + 1], reason[200];
        kb_hex(root, sizeof root, root_hex);
        snprintf(reason, sizeof reason, "size=%llu root=%s", (unsigned long long)size, root_hex);
        Ketenbus__AuditRecord r;
        ketenbus__audit_record__init(&r);
        r.time_us = kb_now_us();
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CHECKPOINT;
        r.agency = (char *)"";
        r.counterpart = (char *)"";
        r.reason = reason;
        rc = kb_store_audit_log(s, b, tree, &r, NULL);
    }
    free(note);
    if (rc == KB_OK && size_out)
        *size_out = size;
    return rc;
}

/* Records logged since the last checkpoint, not counting the CHECKPOINT
 * record that announced it (leaf cp_size, written with the note). */
static uint64_t s_new_records(const kb_broker_t *b, uint64_t size)
{
    uint64_t announced = b->cp_size > 0 ? b->cp_size + 1 : 0;
    return size > announced ? size - announced : 0;
}

int checkpoint_maybe(kb_broker_t *b, int force)
{
    uint64_t size = kb_merkle_size(b->tree);
    if (size <= b->cp_size || kb_batch_size(b->batch) != 0)
        return KB_OK; /* nothing new (a checkpoint never goes back), or changes of this turn not committed yet */
    int64_t now = kb_mono_ms();
    uint64_t fresh = s_new_records(b, size);
    if (!force && (fresh == 0 || now < b->cp_retry_ms ||
                   (fresh < b->conf->checkpoint_records && now < b->cp_next_ms)))
        return KB_OK;
    /* the checkpoint is written here, after every batch handed over */
    if (broker_settle(b) != KB_OK || kb_batch_size(b->batch) != 0)
        return KB_OK; /* the failed batch is reported as such; this is tried on a later turn */
    int rc = checkpoint_sign(b->store, b->batch, b->tree, b->conf->broker_id, b->sign_key, NULL);
    if (rc == KB_OK)
        rc = kb_store_commit(b->store, b->batch, 1);
    if (rc != KB_OK) {
        /* still due: soon again, whatever made it due */
        b->cp_retry_ms = now + KB_CHECKPOINT_RETRY_MS;
        if (b->cp_next_ms > b->cp_retry_ms)
            b->cp_next_ms = b->cp_retry_ms;
        char detail[KB_ERROR_MAX];
        snprintf(detail, sizeof detail, "%s", kb_last_error());
        kb_log(KB_LOG_ERROR, "checkpoint_failed", "size=%llu retry_in_ms=%d detail=\"%s\"",
               (unsigned long long)size, KB_CHECKPOINT_RETRY_MS, detail);
        broker_resync(b);
        return kb_error_set(rc, "checkpoint at size %llu: %s", (unsigned long long)size, detail);
    }
    kb_log(KB_LOG_INFO, "checkpoint", "size=%llu origin=ketenbus/%s", (unsigned long long)size, b->conf->broker_id);
    b->cp_size = size;
    b->cp_retry_ms = 0;
    b->cp_next_ms = now + b->conf->checkpoint_interval_us / 1000;
    return KB_OK;
}
