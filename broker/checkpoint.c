/*
 * checkpoint.c - signed checkpoints of the audit log.
 *
 * Every checkpoint_interval, or after checkpoint_records new records, the
 * broker signs the tree size and root hash of its audit log in the C2SP
 * signed-note format (lib/kb_note.c) with its Ed25519 key, under the origin
 * and key name "ketenbus/<broker id>". The note is stored under k<size> and
 * announced by a CHECKPOINT audit record (which is itself the next leaf, so
 * the following checkpoint covers it). Agencies keep checkpoints as
 * witnesses; `ketenbus audit verify` checks every stored one.
 *
 * Checkpointing never stops traffic: a failure is logged at error level
 * (event=checkpoint_failed, for the operators' alerting) and tried again on
 * the next turn.
 */
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "broker.h"
#include "kb_error.h"
#include "kb_log.h"
#include "kb_note.h"
#include "kb_util.h"

#define KB_ORIGIN_MAX 96 /* "ketenbus/" + broker id */

void checkpoint_maybe(kb_broker_t *b, int force)
{
    uint64_t size = kb_merkle_size(b->tree);
    if (size == b->cp_size || kb_batch_size(b->batch) != 0)
        return; /* nothing new, or changes of this turn not committed yet */
    int64_t now = kb_mono_ms();
    if (!force && size - b->cp_size < b->conf->checkpoint_records && now < b->cp_next_ms)
        return;
    char origin[KB_ORIGIN_MAX];
    uint8_t root[KB_MERKLE_HASH_LEN];
    char *note = NULL;
    size_t note_len = 0;
    int rc = kb_fmt(origin, sizeof origin, "ketenbus/%s", b->conf->broker_id);
    if (rc == KB_OK)
        rc = kb_merkle_root(b->tree, root);
    if (rc == KB_OK)
        rc = kb_note_sign(origin, size, root, origin, b->sign_key, &note, &note_len);
    if (rc == KB_OK)
        rc = kb_store_checkpoint_put(b->store, b->batch, size, note, note_len);
    if (rc == KB_OK) {
        char root_hex[2 * KB_MERKLE_HASH_LEN + 1], reason[200];
        kb_hex(root, sizeof root, root_hex);
        snprintf(reason, sizeof reason, "size=%llu root=%s", (unsigned long long)size, root_hex);
        rc = audit_event(b, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CHECKPOINT, "", NULL, reason);
    }
    if (rc == KB_OK)
        rc = kb_store_commit(b->store, b->batch, 1);
    free(note);
    b->cp_next_ms = now + b->conf->checkpoint_interval_us / 1000;
    if (rc != KB_OK) {
        kb_log(KB_LOG_ERROR, "checkpoint_failed", "size=%llu detail=\"%s\"", (unsigned long long)size,
               kb_last_error());
        broker_resync(b);
        return;
    }
    kb_log(KB_LOG_INFO, "checkpoint", "size=%llu origin=%s", (unsigned long long)size, origin);
    b->cp_size = size;
}
