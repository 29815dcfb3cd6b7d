/*
 * bench_store.c - a broker store with a million queued messages, and the
 * bytes each message leaves on disk.
 *
 * Filling a queue with a million messages through the wire would take
 * minutes of Ed25519 verification; what start-up time and memory depend on
 * is what lies in the store. So the store of a stopped broker is filled
 * through the broker's own store API (broker/store.h), the way route.c
 * stages an accepted message: one sealed queue entry, a "received" and a
 * "routed" audit record (appended to the audit log's Merkle tree with
 * kb_store_audit_log, tiles and all) and the accepted-id entry, in
 * unsynced batches of 1,000 with a synced write at the end. The bytes per message are counted
 * by key prefix in a stopped broker's LevelDB (logical key + value bytes),
 * next to the directory's size on disk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "audit_block.h"
#include "bench.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_merkle.h"
#include "kb_util.h"
#include "store.h"

#define FILL_BATCH 1000u

int bench_store_fill(const bench_broker_t *b, const bench_keys_t *k, const char *agency, const bench_pool_t *pool,
                     size_t n, double *seconds)
{
    char path[512];
    uint8_t key[32];
    snprintf(path, sizeof path, "%s/broker.storage.key", k->keys);
    if (kb_keys_load_storage(path, key) != KB_OK) {
        bench_log("storage key: %s", kb_last_error());
        return -1;
    }
    kb_store_t *s = kb_store_open(b->data, key);
    OPENSSL_cleanse(key, sizeof key);
    kb_batch_t *batch = kb_batch_new();
    Ketenbus__Envelope *e = ketenbus__envelope__unpack(NULL, pool->env_len, pool->envelope);
    kb_store_tiles_t tiles = {s, batch};
    kb_merkle_io_t io = kb_store_tiles_io(&tiles);
    kb_merkle_t *tree = s && batch ? kb_merkle_new(&io) : NULL;
    int rc = -1;
    if (!s || !batch || !e || !tree || kb_merkle_load(tree, kb_store_audit_size(s)) != KB_OK) {
        bench_log("fill: %s", kb_last_error());
        goto done;
    }
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(pool->envelope, pool->env_len, digest);
    int64_t t0 = bench_ns();
    for (size_t i = 0; i < n; i++) {
        /* a distinct id per entry, as distinct messages would have */
        uint8_t id[16];
        memcpy(id, e->message_id.data, 16);
        for (int j = 0; j < 6; j++)
            id[10 + j] = (uint8_t)((uint64_t)i >> (40 - 8 * j));
        id[9] = 0xff;
        Ketenbus__AuditRecord r;
        ketenbus__audit_record__init(&r);
        r.time_us = kb_now_us();
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
        r.agency = e->sender;
        r.officer = e->officer;
        r.message_id.data = id;
        r.message_id.len = 16;
        r.kind = e->kind;
        r.purpose = e->purpose;
        r.handling = e->handling;
        r.legal_basis = e->legal_basis ? e->legal_basis->basis : NULL;
        r.payload_sha256.data = digest;
        r.payload_sha256.len = sizeof digest;
        uint64_t received, tag;
        if (kb_store_audit_log(s, batch, tree, &r, &received) != KB_OK)
            goto done;
        Ketenbus__QueueEntry q;
        ketenbus__queue_entry__init(&q);
        q.envelope.data = pool->envelope;
        q.envelope.len = pool->env_len;
        q.expires_us = kb_now_us() + 14LL * 24 * 3600 * 1000000;
        q.message_id.data = id;
        q.message_id.len = 16;
        q.sender = e->sender;
        q.kind = e->kind;
        if (kb_store_queue_put(s, batch, agency, &q, &tag) != KB_OK)
            goto done;
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED;
        r.counterpart = (char *)agency;
        r.rule_id = (char *)"pair-0";
        r.tag = tag;
        if (kb_store_audit_log(s, batch, tree, &r, NULL) != KB_OK ||
            kb_store_seen_put(s, batch, e->sender, id, received) != KB_OK)
            goto done;
        if ((i + 1) % FILL_BATCH == 0 || i + 1 == n) {
            if (kb_store_commit(s, batch, i + 1 == n) != KB_OK) {
                bench_log("fill commit: %s", kb_last_error());
                goto done;
            }
        }
    }
    *seconds = (double)(bench_ns() - t0) / 1e9;
    rc = 0;
done:
    if (e)
        ketenbus__envelope__free_unpacked(e, NULL);
    kb_merkle_destroy(&tree);
    kb_batch_destroy(&batch);
    kb_store_destroy(&s);
    return rc;
}

int bench_store_bytes(const char *data_dir, bench_store_bytes_t *out)
{
    memset(out, 0, sizeof *out);
    leveldb_options_t *o = leveldb_options_create();
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    leveldb_readoptions_set_fill_cache(ro, 0);
    char *err = NULL;
    leveldb_t *db = leveldb_open(o, data_dir, &err);
    if (err) {
        bench_log("open %s: %s", data_dir, err);
        leveldb_free(err);
        leveldb_readoptions_destroy(ro);
        leveldb_options_destroy(o);
        return -1;
    }
    leveldb_iterator_t *it = leveldb_create_iterator(db, ro);
    for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *key = leveldb_iter_key(it, &kl);
        const char *val = leveldb_iter_value(it, &vl);
        uint64_t sz = kl + vl;
        switch (kl ? key[0] : 0) {
        case KB_ABLOCK_PREFIX: { /* 16 audit records to an entry */
            kb_ablock_iter_t bi;
            unsigned slot;
            const uint8_t *rec;
            size_t rl;
            kb_ablock_iter_init(&bi, val, vl);
            while (kb_ablock_next(&bi, &slot, &rec, &rl) == KB_OK)
                out->n_audit++;
            out->audit += sz;
            break;
        }
        case 'q': out->queue += sz; out->n_queue++; break;
        case 'd': out->seen += sz; break;
        case 't': out->tiles += sz; break;
        default: out->other += sz; break;
        }
    }
    leveldb_iter_destroy(it);
    leveldb_close(db);
    leveldb_readoptions_destroy(ro);
    leveldb_options_destroy(o);
    return 0;
}
