/*
 * store.c - LevelDB-backed queues, accepted-id index and audit log.
 *
 * See store.h for the key layout. Per-agency counters are kept in a small
 * open-addressing hash table; they are also persisted (n<agency> next
 * sequence, c<agency> depth) in the same batch as the queue change, so a
 * delivery tag is never reused after a restart, even when a queue drained.
 *
 * The audit index (store.h) is collected per batch in a small hash table of
 * posting lists keyed by (kind, value) and written by kb_store_commit(), so
 * records of one batch that share a value share one LevelDB entry.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "audit_block.h"
#include "kb_aead.h"
#include "kb_error.h"
#include "kb_util.h"
#include "store.h"

#define KB_KEY_MAX        96u   /* longest key: prefix + agency + NUL + 16 bytes */
#define KB_AGENCY_SLOTS0  64u   /* initial counter table size (power of two) */
#define KB_POSTING_SLOTS0 64u   /* initial posting table size of a batch (power of two) */
#define KB_PREFIX_MAX     (2u + 4u + KB_INDEX_VALUE_MAX + 1u) /* 'x', kind, [bucket], value (agency ids end in NUL) */
#define KB_POSTING_KEY_MAX (KB_PREFIX_MAX + 8u)
#define KB_VARINT_MAX     10u   /* bytes of a 64-bit varint */
#define KB_INDEX_VERSION  1u    /* value of the "i" key */
#define KB_REINDEX_CHUNK  65536u /* records indexed per batch by kb_store_audit_reindex */
#define KB_TOMBSTONE_MAGIC 'P'
#define KB_TOMBSTONE_V1   1u    /* 51 bytes, no claim: made by pruning every kind */
#define KB_TOMBSTONE_V2   2u    /* 52 bytes: the claim follows the version */
#define KB_TOMBSTONE_ALL  0xffu /* claim byte of a tombstone made by pruning every kind */

typedef struct {
    char *agency;       /* owned agency id; NULL for an empty slot */
    uint64_t next_seq;  /* next delivery tag to assign */
    uint64_t depth;     /* entries queued */
    int dirty;          /* changed since the last kb_store_seal() */
} s_counter_t;

struct kb_store {
    leveldb_t *db;                 /* the database */
    leveldb_options_t *opts;       /* open options */
    leveldb_readoptions_t *ropts;  /* read options (checksums verified) */
    leveldb_writeoptions_t *wsync; /* synced writes */
    leveldb_writeoptions_t *wfast; /* unsynced writes */
    leveldb_cache_t *cache;        /* block cache */
    leveldb_filterpolicy_t *bloom; /* bloom filter for point lookups */
    kb_aead_t *aead;               /* keyed with the storage key; NULL without it */
    s_counter_t *slots;            /* counter hash table */
    size_t n_slots;                /* its size (power of two) */
    size_t n_used;                 /* slots in use */
    size_t n_dirty;                /* counters changed since the last seal */
    uint64_t audit_next;           /* next audit index */
    int64_t audit_time;            /* time of the newest record: none gets an earlier one */
    kb_ablock_buf_t tail;          /* the newest block's records while it holds fewer than 16 */
    int tail_dirty;                /* records added to it since the last kb_store_seal() */
    uint64_t migrated;             /* records the last open moved into blocks (s_migrate) */
    const char *no_append;         /* why records cannot be appended now, or NULL */
    char *rblock;                  /* the block the last record read came from (leveldb_get), or NULL */
    size_t rblock_len;             /* its length */
    uint64_t rblock_no;            /* its number */
    uint64_t pruned_end;           /* records below this index are tombstones */
    uint64_t kind_end[KB_STORE_KINDS]; /* per kind: its records below this index are tombstones */
    int has_key;                   /* 0: opened without storage key (audit tools) */
    size_t repaired;               /* queues whose depth the last load corrected */
    char *dir;                     /* database directory */
    void *aux;                     /* another module's cache (kb_store_cache_set), or NULL */
    void (*aux_free)(void *);      /* frees it */
};

/* The indices a batch stages under one (kind, value). */
typedef struct {
    uint8_t prefix[KB_PREFIX_MAX]; /* 'x', kind, value */
    size_t prefix_len;             /* its length; 0 = free slot */
    uint64_t *idx;                 /* indices, ascending (kept allocated when the slot is freed) */
    size_t n;                      /* their count */
    size_t cap;                    /* allocated */
} s_posting_t;

struct kb_batch {
    leveldb_writebatch_t *wb; /* staged operations */
    size_t n;                 /* their count */
    s_posting_t *post;        /* posting lists of staged audit records (open addressing) */
    size_t n_post;            /* table size (power of two) */
    size_t used_post;         /* slots in use */
    int pruned;               /* holds a prune's rewritten blocks (one prune per batch) */
};

/* ------------------------------------------------------------ counters */

static uint64_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static s_counter_t *s_counter_find(const kb_store_t *s, const char *agency)
{
    size_t mask = s->n_slots - 1;
    for (size_t i = s_hash(agency) & mask;; i = (i + 1) & mask) {
        if (!s->slots[i].agency)
            return NULL;
        if (strcmp(s->slots[i].agency, agency) == 0)
            return &s->slots[i];
    }
}

static int s_counter_grow(kb_store_t *s)
{
    size_t n = s->n_slots * 2;
    s_counter_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return kb_error_set(KB_ENOMEM, "store: counters: out of memory");
    for (size_t i = 0; i < s->n_slots; i++) {
        if (!s->slots[i].agency)
            continue;
        size_t j = s_hash(s->slots[i].agency) & (n - 1);
        while (slots[j].agency)
            j = (j + 1) & (n - 1);
        slots[j] = s->slots[i];
    }
    free(s->slots);
    s->slots = slots;
    s->n_slots = n;
    return KB_OK;
}

static s_counter_t *s_counter_get(kb_store_t *s, const char *agency)
{
    s_counter_t *c = s_counter_find(s, agency);
    if (c)
        return c;
    if ((s->n_used + 1) * 2 > s->n_slots && s_counter_grow(s) != KB_OK)
        return NULL;
    size_t mask = s->n_slots - 1;
    size_t i = s_hash(agency) & mask;
    while (s->slots[i].agency)
        i = (i + 1) & mask;
    s->slots[i].agency = strdup(agency);
    if (!s->slots[i].agency) {
        kb_error_set(KB_ENOMEM, "store: counters: out of memory");
        return NULL;
    }
    s->slots[i].next_seq = 0;
    s->slots[i].depth = 0;
    s->slots[i].dirty = 0;
    s->n_used++;
    return &s->slots[i];
}

static void s_counters_clear(kb_store_t *s)
{
    for (size_t i = 0; i < s->n_slots; i++) {
        free(s->slots[i].agency);
        s->slots[i].agency = NULL;
        s->slots[i].dirty = 0;
    }
    s->n_used = 0;
    s->n_dirty = 0;
}

static void s_counter_touch(kb_store_t *s, s_counter_t *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        s->n_dirty++;
    }
}

/* ------------------------------------------------------------ keys */

/* prefix byte + text + NUL + tail bytes; returns length or 0 if too long */
static size_t s_key(uint8_t *out, char prefix, const char *text, const uint8_t *tail, size_t tail_len)
{
    size_t tl = strlen(text);
    if (2 + tl + tail_len > KB_KEY_MAX)
        return 0;
    out[0] = (uint8_t)prefix;
    memcpy(out + 1, text, tl);
    size_t n = 1 + tl;
    if (tail) {
        out[n++] = 0;
        memcpy(out + n, tail, tail_len);
        n += tail_len;
    }
    return n;
}

static size_t s_queue_key(uint8_t *out, const char *agency, uint64_t seq)
{
    uint8_t t[8];
    kb_be64_put(t, seq);
    return s_key(out, 'q', agency, t, 8);
}

static void s_put_counter(kb_batch_t *b, char prefix, const char *agency, uint64_t v)
{
    uint8_t k[KB_KEY_MAX], val[8];
    size_t kl = s_key(k, prefix, agency, NULL, 0);
    kb_be64_put(val, v);
    leveldb_writebatch_put(b->wb, (const char *)k, kl, (const char *)val, 8);
    b->n++;
}

/* ------------------------------------------------------------ open/close */

/* A stored depth of 0 with entries still queued: an earlier version could
 * count one acknowledgement twice, and the pump and expiry skip a queue of
 * depth 0, so its entries would never go. For each agency whose depth is
 * 0, one seek tells whether it has entries; only such a queue is counted
 * (and its depth written with the next batch). */
static int s_repair_depths(kb_store_t *s)
{
    s->repaired = 0;
    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
    if (!it)
        return kb_error_set(KB_ENOMEM, "store: iterator");
    for (size_t i = 0; i < s->n_slots; i++) {
        s_counter_t *c = &s->slots[i];
        if (!c->agency || c->depth != 0 || c->next_seq == 0)
            continue;
        uint8_t k[KB_KEY_MAX];
        size_t pl = s_queue_key(k, c->agency, 0) - 8; /* 'q', agency, NUL */
        uint64_t n = 0;
        for (leveldb_iter_seek(it, (const char *)k, pl); leveldb_iter_valid(it); leveldb_iter_next(it)) {
            size_t kl;
            const char *key = leveldb_iter_key(it, &kl);
            if (kl != pl + 8 || memcmp(key, k, pl) != 0)
                break;
            n++;
        }
        if (n > 0) {
            c->depth = n;
            s_counter_touch(s, c);
            s->repaired++;
        }
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err) {
        int rc = kb_error_set(KB_EIO, "store: counting queue entries: %s", err);
        leveldb_free(err);
        return rc;
    }
    return KB_OK;
}

static int s_time_one(uint64_t index, const uint8_t *val, size_t len, void *arg);

/* The time of the newest record, so that records appended after a step
 * back of the clock do not go back in time (a stray or damaged end is
 * not read: nothing is appended to such a log). Never fails the open. */
static int s_load_audit_time(kb_store_t *s)
{
    s->audit_time = 0;
    if (s->audit_next == 0 || s->no_append)
        return KB_OK;
    uint64_t found = 0;
    int64_t t = 0;
    /* a newest record that is missing or does not decode is audit
     * verify's business: the store opens, so that the tools can say so */
    if (kb_store_audit_time(s, s->audit_next - 1, &t, &found) == KB_OK)
        s->audit_time = t;
    return KB_OK;
}

static int s_load_counters(kb_store_t *s)
{
    s_counters_clear(s);
    s->audit_next = 0;
    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
    if (!it)
        return kb_error_set(KB_ENOMEM, "store: iterator");
    /* n<agency> and c<agency>: one small key per agency ever queued for */
    const char prefixes[2] = {'n', 'c'};
    for (int p = 0; p < 2; p++) {
        leveldb_iter_seek(it, &prefixes[p], 1);
        for (; leveldb_iter_valid(it); leveldb_iter_next(it)) {
            size_t kl, vl;
            const char *k = leveldb_iter_key(it, &kl);
            const char *v = leveldb_iter_value(it, &vl);
            if (kl < 2 || k[0] != prefixes[p])
                break;
            if (vl != 8 || kl - 1 >= KB_KEY_MAX)
                continue;
            char agency[KB_KEY_MAX];
            memcpy(agency, k + 1, kl - 1);
            agency[kl - 1] = '\0';
            s_counter_t *c = s_counter_get(s, agency);
            if (!c) {
                leveldb_iter_destroy(it);
                return KB_ENOMEM;
            }
            if (prefixes[p] == 'n')
                c->next_seq = kb_be64_get((const uint8_t *)v);
            else
                c->depth = kb_be64_get((const uint8_t *)v);
        }
    }
    /* p: the end of the pruned prefix */
    s->pruned_end = 0;
    {
        char *perr = NULL;
        size_t vl = 0;
        char *v = leveldb_get(s->db, s->ropts, "p", 1, &vl, &perr);
        if (perr) {
            int rc = kb_error_set(KB_EIO, "store: reading the pruned end: %s", perr);
            leveldb_free(perr);
            leveldb_iter_destroy(it);
            return rc;
        }
        if (v && vl == 8)
            s->pruned_end = kb_be64_get((const uint8_t *)v);
        leveldb_free(v);
    }
    /* the audit log's last block gives its size without a scan; a block
     * of fewer than 16 records is the tail the next records join */
    kb_ablock_reset(&s->tail);
    s->tail_dirty = 0;
    s->no_append = NULL;
    int rc = KB_OK;
    const char after = KB_ABLOCK_PREFIX + 1;
    leveldb_iter_seek(it, &after, 1);
    if (leveldb_iter_valid(it))
        leveldb_iter_prev(it);
    else
        leveldb_iter_seek_to_last(it);
    uint64_t block;
    size_t kl = 0;
    const char *k = leveldb_iter_valid(it) ? leveldb_iter_key(it, &kl) : NULL;
    if (k && kl >= 1 && k[0] == KB_ABLOCK_PREFIX && !kb_ablock_key_parse(k, kl, &block)) {
        /* not a block's key: where the log ends is unknown, and appending
         * from a guess would write over records */
        rc = kb_error_set(KB_EPROTO, "store: a key of %zu bytes among the audit blocks is not a block's key; "
                                     "the end of the audit log is unknown%s", kl,
                          s->has_key ? " (see ketenbus audit verify --offline)" : "");
        if (!s->has_key) {
            s->no_append = "the end of the audit log is unknown (a stray key among its blocks)";
            rc = KB_OK;
        }
    } else if (k && kb_ablock_key_parse(k, kl, &block)) {
        size_t vl;
        const char *v = leveldb_iter_value(it, &vl);
        rc = kb_ablock_load(&s->tail, v, vl);
        if (rc != KB_OK) {
            kb_error_wrap(rc, "store: the newest audit block (records from %llu) is damaged%s",
                          (unsigned long long)block * KB_ABLOCK_RECORDS,
                          s->has_key ? " (see ketenbus audit verify --offline)" : "");
            /* the audit tools open it anyway, to show the damage; nothing
             * can be appended to it without writing over the evidence */
            if (!s->has_key) {
                s->no_append = "the newest audit block is damaged (audit verify says where)";
                rc = KB_OK;
            }
        }
        s->audit_next = block * KB_ABLOCK_RECORDS + s->tail.n;
        if (s->tail.n == KB_ABLOCK_RECORDS)
            kb_ablock_reset(&s->tail);
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err) {
        rc = kb_error_set(KB_EIO, "store: reading counters: %s", err);
        leveldb_free(err);
        return rc;
    }
    if (rc == KB_OK)
        rc = s_load_audit_time(s);
    return rc != KB_OK ? rc : s_repair_depths(s);
}

static int s_index_check(kb_store_t *s);
static int s_load_kind_ends(kb_store_t *s);

static int s_iter_done(leveldb_iterator_t *it, int rc, const char *what);
static void s_rblock_drop(kb_store_t *s);

#define KB_MIGRATE_BLOCKS 256u /* blocks written per batch by s_migrate */

/* Put block b, built in blk, into wb. */
static void s_block_put(leveldb_writebatch_t *wb, uint64_t block, const kb_ablock_buf_t *blk)
{
    uint8_t k[KB_ABLOCK_KEY_LEN];
    kb_ablock_key(k, block);
    leveldb_writebatch_put(wb, (const char *)k, sizeof k, (const char *)blk->buf, blk->len);
}

/* Start migrating block: from what is stored of it already (a stop
 * halfway can leave a block written while entries of it remain: it is
 * completed, never written over). */
static int s_migrate_block_start(kb_store_t *s, uint64_t block, kb_ablock_buf_t *blk)
{
    uint8_t k[KB_ABLOCK_KEY_LEN];
    kb_ablock_key(k, block);
    char *err = NULL;
    size_t vl = 0;
    char *v = leveldb_get(s->db, s->ropts, (const char *)k, sizeof k, &vl, &err);
    if (err) {
        int rc = kb_error_set(KB_EIO, "store: read: %s", err);
        leveldb_free(err);
        return rc;
    }
    int rc = kb_ablock_load(blk, v, v ? vl : 0);
    leveldb_free(v);
    return rc;
}

/* Put record index (len > 0) into blk, the block being migrated: into an
 * empty slot only. */
static int s_migrate_record(kb_ablock_buf_t *blk, kb_ablock_buf_t *tmp, uint64_t index, const char *v, size_t len)
{
    unsigned slot = (unsigned)(index % KB_ABLOCK_RECORDS);
    const uint8_t *have;
    size_t hl = 0;
    if (slot >= blk->n) {
        int rc = KB_OK;
        while (rc == KB_OK && blk->n < slot)
            rc = kb_ablock_add(blk, NULL, 0);
        return rc == KB_OK ? kb_ablock_add(blk, v, len) : rc;
    }
    if (kb_ablock_slot(blk->buf, blk->len, slot, &have, &hl) == KB_OK && hl > 0)
        return kb_error_set(KB_EPROTO, "store: audit record %llu is stored both as an entry of its own and in its "
                                       "block; not moving it (run audit verify with the version that wrote it)",
                            (unsigned long long)index);
    int rc = kb_ablock_replace(tmp, blk->buf, blk->len, slot, v, len);
    if (rc == KB_OK) {
        kb_ablock_buf_t t = *blk;
        *blk = *tmp;
        *tmp = t;
    }
    return rc;
}

/* Write wb (synced if sync) unless the iterator that filled it failed:
 * LevelDB's iterator skips a block it cannot read and reports it only
 * through its error, so nothing is written after a read error. */
static int s_migrate_write(kb_store_t *s, leveldb_iterator_t *it, leveldb_writebatch_t *wb, int sync)
{
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    if (err) {
        int rc = kb_error_set(KB_EIO, "store: reading the audit log to move it into blocks: %s", err);
        leveldb_free(err);
        return rc;
    }
    leveldb_write(s->db, sync ? s->wsync : s->wfast, wb, &err);
    leveldb_writebatch_clear(wb);
    if (err) {
        int rc = kb_error_set(KB_EIO, "store: moving the audit log into blocks: %s", err);
        leveldb_free(err);
        return rc;
    }
    return KB_OK;
}

/* At open: move an audit log stored one record per entry (a<index:8>, the
 * layout before blocks) into blocks of 16 (audit_block.h). Each write holds
 * whole blocks and the deletion of the entries they replace, so a stop
 * halfway leaves the rest for the next open, which completes a block it
 * finds written rather than writing over it. A record missing from the old
 * log becomes an empty slot, which readers report as missing, as before. */
static int s_migrate(kb_store_t *s)
{
    s->migrated = 0;
    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    kb_ablock_buf_t blk = {0}, tmp = {0};
    if (!it || !wb) {
        if (it)
            leveldb_iter_destroy(it);
        if (wb)
            leveldb_writebatch_destroy(wb);
        return kb_error_set(KB_ENOMEM, "store: iterator");
    }
    int rc = KB_OK;
    uint64_t block = UINT64_MAX;
    size_t blocks = 0;
    for (leveldb_iter_seek(it, "a", 1); rc == KB_OK && leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl < 1 || k[0] != 'a')
            break;
        if (kl != 9)
            continue;
        const char *v = leveldb_iter_value(it, &vl);
        uint64_t index = kb_be64_get((const uint8_t *)k + 1);
        if (index / KB_ABLOCK_RECORDS != block) {
            if (block != UINT64_MAX) {
                s_block_put(wb, block, &blk);
                if (++blocks % KB_MIGRATE_BLOCKS == 0 && (rc = s_migrate_write(s, it, wb, 0)) != KB_OK)
                    break;
            }
            block = index / KB_ABLOCK_RECORDS;
            if ((rc = s_migrate_block_start(s, block, &blk)) != KB_OK)
                break;
        }
        if (vl > 0 && (rc = s_migrate_record(&blk, &tmp, index, v, vl)) != KB_OK)
            break;
        leveldb_writebatch_delete(wb, k, kl);
        s->migrated++;
    }
    if (rc == KB_OK && block != UINT64_MAX) {
        s_block_put(wb, block, &blk);
        rc = s_migrate_write(s, it, wb, 1);
    }
    leveldb_writebatch_destroy(wb);
    kb_ablock_free(&blk);
    kb_ablock_free(&tmp);
    return s_iter_done(it, rc, "moving the audit log into blocks");
}

/* Open the LevelDB database in s->dir with s->opts. */
static int s_open_db(kb_store_t *s)
{
    char *err = NULL;
    s->db = leveldb_open(s->opts, s->dir, &err);
    if (!err)
        return KB_OK;
    int rc;
    if (strstr(err, "does not exist"))
        rc = kb_error_set(KB_ENOTFOUND, "store: no database in %s", s->dir);
    else if (strstr(err, "lock"))
        rc = kb_error_set(KB_EIO, "store: %s is in use by another process (a running broker: ask it through its "
                                  "admin socket): %s", s->dir, err);
    else
        rc = kb_error_set(KB_EIO, "store: open %s: %s", s->dir, err);
    leveldb_free(err);
    s->db = NULL;
    return rc;
}

kb_store_t *kb_store_open(const char *dir, const uint8_t key[32])
{
    return kb_store_open_ex(dir, key, 0);
}

kb_store_t *kb_store_open_ex(const char *dir, const uint8_t key[32], unsigned flags)
{
    kb_store_t *s = calloc(1, sizeof *s);
    if (!s) {
        kb_error_set(KB_ENOMEM, "store: out of memory");
        return NULL;
    }
    if (key) {
        s->aead = kb_aead_new(key);
        if (!s->aead) {
            kb_store_destroy(&s);
            return NULL;
        }
        s->has_key = 1;
    }
    s->n_slots = KB_AGENCY_SLOTS0;
    s->slots = calloc(s->n_slots, sizeof *s->slots);
    s->dir = strdup(dir);
    if (!s->slots || !s->dir) {
        kb_error_set(KB_ENOMEM, "store: out of memory");
        kb_store_destroy(&s);
        return NULL;
    }
    if (!(flags & KB_STORE_NO_CREATE) && kb_mkdirs(dir, 0700) != KB_OK) {
        kb_store_destroy(&s);
        return NULL;
    }
    s->opts = leveldb_options_create();
    s->ropts = leveldb_readoptions_create();
    s->wsync = leveldb_writeoptions_create();
    s->wfast = leveldb_writeoptions_create();
    s->cache = leveldb_cache_create_lru(8u << 20);
    s->bloom = leveldb_filterpolicy_create_bloom(10);
    leveldb_options_set_create_if_missing(s->opts, (flags & KB_STORE_NO_CREATE) ? 0 : 1);
    leveldb_options_set_paranoid_checks(s->opts, 1);
    leveldb_options_set_cache(s->opts, s->cache);
    leveldb_options_set_filter_policy(s->opts, s->bloom);
    leveldb_options_set_write_buffer_size(s->opts, 16u << 20);
    leveldb_readoptions_set_verify_checksums(s->ropts, 1);
    leveldb_writeoptions_set_sync(s->wsync, 1);
    leveldb_writeoptions_set_sync(s->wfast, 0);
    if (s_open_db(s) != KB_OK || s_migrate(s) != KB_OK || s_load_counters(s) != KB_OK || s_load_kind_ends(s) != KB_OK ||
        s_index_check(s) != KB_OK) {
        kb_store_destroy(&s);
        return NULL;
    }
    return s;
}

void kb_store_destroy(kb_store_t **p)
{
    if (!p || !*p)
        return;
    kb_store_t *s = *p;
    kb_store_cache_set(s, NULL, NULL);
    if (s->db)
        leveldb_close(s->db);
    if (s->opts)
        leveldb_options_destroy(s->opts);
    if (s->ropts)
        leveldb_readoptions_destroy(s->ropts);
    if (s->wsync)
        leveldb_writeoptions_destroy(s->wsync);
    if (s->wfast)
        leveldb_writeoptions_destroy(s->wfast);
    if (s->cache)
        leveldb_cache_destroy(s->cache);
    if (s->bloom)
        leveldb_filterpolicy_destroy(s->bloom);
    if (s->slots) {
        s_counters_clear(s);
        free(s->slots);
    }
    kb_aead_destroy(&s->aead);
    kb_ablock_free(&s->tail);
    s_rblock_drop(s);
    free(s->dir);
    free(s);
    *p = NULL;
}

void *kb_store_cache(const kb_store_t *s)
{
    return s->aux;
}

void kb_store_cache_set(kb_store_t *s, void *cache, void (*free_fn)(void *))
{
    if (s->aux && s->aux_free)
        s->aux_free(s->aux);
    s->aux = cache;
    s->aux_free = free_fn;
}

int kb_store_reopen(kb_store_t *s)
{
    kb_store_cache_set(s, NULL, NULL);
    s_rblock_drop(s);
    /* LevelDB keeps its log position after a write whose bytes did not
     * reach the file (ENOSPC), so the records written after it would sit
     * at the wrong offsets in their blocks; and after a failed sync it
     * refuses every later write. A fresh open recovers what the log holds
     * up to the failure and starts a new log. */
    leveldb_close(s->db);
    s->db = NULL;
    /* a data directory that went with its volume must not come back empty */
    leveldb_options_set_create_if_missing(s->opts, 0);
    int rc = s_open_db(s);
    if (rc == KB_OK)
        rc = s_load_counters(s);
    if (rc == KB_OK)
        rc = s_load_kind_ends(s);
    if (rc != KB_OK)
        s->no_append = "the store could not be opened again";
    return rc;
}

/* ------------------------------------------------------------ batches */

kb_batch_t *kb_batch_new(void)
{
    kb_batch_t *b = calloc(1, sizeof *b);
    if (b) {
        b->n_post = KB_POSTING_SLOTS0;
        b->post = calloc(b->n_post, sizeof *b->post);
    }
    if (!b || !b->post || !(b->wb = leveldb_writebatch_create())) {
        if (b)
            free(b->post);
        free(b);
        kb_error_set(KB_ENOMEM, "store: batch: out of memory");
        return NULL;
    }
    return b;
}

void kb_batch_destroy(kb_batch_t **p)
{
    if (!p || !*p)
        return;
    kb_batch_t *b = *p;
    for (size_t i = 0; i < b->n_post; i++)
        free(b->post[i].idx);
    free(b->post);
    leveldb_writebatch_destroy(b->wb);
    free(b);
    *p = NULL;
}

static void s_postings_clear(kb_batch_t *b)
{
    if (b->used_post == 0)
        return;
    for (size_t i = 0; i < b->n_post; i++) {
        b->post[i].prefix_len = 0;
        b->post[i].n = 0;
    }
    b->used_post = 0;
}

void kb_batch_clear(kb_batch_t *b)
{
    leveldb_writebatch_clear(b->wb);
    b->n = 0;
    b->pruned = 0;
    s_postings_clear(b);
}

size_t kb_batch_size(const kb_batch_t *b)
{
    return b->n;
}

/* ------------------------------------------------------------ postings */

static size_t s_varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* Read a varint at *pos of buf[0..len); KB_EPROTO if cut off or too long. */
static int s_varint_get(const uint8_t *buf, size_t len, size_t *pos, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return KB_EPROTO;
        uint8_t c = buf[(*pos)++];
        if (shift == 63 && c > 1)
            return KB_EPROTO;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return KB_OK;
        }
    }
    return KB_EPROTO;
}

static uint64_t s_hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Build the prefix of the list holding index under (kind, value): 'x' kind
 * value (+ NUL for agencies), for subjects 'x' 's' bucket value; 0 if the
 * value is empty or too long to index. */
static size_t s_prefix(uint8_t out[KB_PREFIX_MAX], int kind, const void *value, size_t len, uint64_t index)
{
    int nul = kind == KB_INDEX_AGENCY;
    if (len == 0 || len > KB_INDEX_VALUE_MAX)
        return 0;
    out[0] = 'x';
    out[1] = (uint8_t)kind;
    size_t o = 2;
    if (kind == KB_INDEX_SUBJECT) {
        uint64_t bucket = index >> KB_INDEX_BUCKET_BITS;
        out[o++] = (uint8_t)(bucket >> 24);
        out[o++] = (uint8_t)(bucket >> 16);
        out[o++] = (uint8_t)(bucket >> 8);
        out[o++] = (uint8_t)bucket;
    }
    memcpy(out + o, value, len);
    o += len;
    if (nul)
        out[o++] = 0;
    return o;
}

static s_posting_t *s_posting_slot(kb_batch_t *b, const uint8_t *prefix, size_t len)
{
    size_t mask = b->n_post - 1;
    for (size_t i = s_hash_bytes(prefix, len) & mask;; i = (i + 1) & mask) {
        s_posting_t *p = &b->post[i];
        if (p->prefix_len == 0 || (p->prefix_len == len && memcmp(p->prefix, prefix, len) == 0))
            return p;
    }
}

static int s_postings_grow(kb_batch_t *b)
{
    size_t n = b->n_post * 2;
    s_posting_t *old = b->post;
    size_t old_n = b->n_post;
    b->post = calloc(n, sizeof *b->post);
    if (!b->post) {
        b->post = old;
        return kb_error_set(KB_ENOMEM, "store: index: out of memory");
    }
    b->n_post = n;
    for (size_t i = 0; i < old_n; i++) {
        if (old[i].prefix_len == 0) {
            free(old[i].idx);
            continue;
        }
        *s_posting_slot(b, old[i].prefix, old[i].prefix_len) = old[i];
    }
    free(old);
    return KB_OK;
}

/* Add index under (kind, value) to the batch's lists. */
static int s_posting_add(kb_batch_t *b, int kind, const void *value, size_t len, uint64_t index)
{
    uint8_t prefix[KB_PREFIX_MAX];
    size_t pl = s_prefix(prefix, kind, value, len, index);
    if (pl == 0)
        return KB_OK;
    if ((b->used_post + 1) * 2 > b->n_post && s_postings_grow(b) != KB_OK)
        return KB_ENOMEM;
    s_posting_t *p = s_posting_slot(b, prefix, pl);
    if (p->prefix_len == 0) {
        memcpy(p->prefix, prefix, pl);
        p->prefix_len = pl;
        p->n = 0;
        b->used_post++;
    }
    if (p->n > 0 && p->idx[p->n - 1] == index)
        return KB_OK; /* the same value twice in one record */
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        uint64_t *idx = realloc(p->idx, cap * sizeof *idx);
        if (!idx)
            return kb_error_set(KB_ENOMEM, "store: index: out of memory");
        p->idx = idx;
        p->cap = cap;
    }
    p->idx[p->n++] = index;
    return KB_OK;
}

/* Remove index from the end of the list of (kind, value), if it is there. */
static void s_posting_undo(kb_batch_t *b, int kind, const void *value, size_t len, uint64_t index)
{
    uint8_t prefix[KB_PREFIX_MAX];
    size_t pl = s_prefix(prefix, kind, value, len, index);
    if (pl == 0)
        return;
    s_posting_t *p = s_posting_slot(b, prefix, pl);
    if (p->prefix_len != 0 && p->n > 0 && p->idx[p->n - 1] == index)
        p->n--; /* an empty list stays in the table and is not written */
}

/* Whether r's subject keys are indexed: not on ROUTED and DELIVERED
 * records, which always follow a RECEIVED record of their message in the
 * log and are found through its id (a random subject key costs LevelDB
 * the most; this saves one per message). */
static int s_subject_indexed(const Ketenbus__AuditRecord *r)
{
    return r->message_id.len != 16 || (r->event != KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED &&
                                       r->event != KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DELIVERED);
}

/* Apply fn to every (kind, value) record r is indexed under. */
typedef int (s_index_fn)(kb_batch_t *b, int kind, const void *value, size_t len, uint64_t index);

static int s_index_each(kb_batch_t *b, const Ketenbus__AuditRecord *r, uint64_t index, s_index_fn *fn)
{
    int rc = KB_OK;
    uint8_t event = (uint8_t)r->event;
    if (r->message_id.len == 16)
        rc = fn(b, KB_INDEX_MESSAGE, r->message_id.data, 16, index);
    for (size_t i = 0; s_subject_indexed(r) && rc == KB_OK && i < r->n_subject_keys; i++)
        if (r->subject_keys[i].len == 32)
            rc = fn(b, KB_INDEX_SUBJECT, r->subject_keys[i].data, 32, index);
    if (rc == KB_OK && r->agency && *r->agency)
        rc = fn(b, KB_INDEX_AGENCY, r->agency, strlen(r->agency), index);
    if (rc == KB_OK && r->counterpart && *r->counterpart && !(r->agency && strcmp(r->agency, r->counterpart) == 0))
        rc = fn(b, KB_INDEX_AGENCY, r->counterpart, strlen(r->counterpart), index);
    if (rc == KB_OK && (unsigned)r->event < 256u)
        rc = fn(b, KB_INDEX_EVENT, &event, 1, index);
    return rc;
}

static int s_undo_fn(kb_batch_t *b, int kind, const void *value, size_t len, uint64_t index)
{
    s_posting_undo(b, kind, value, len, index);
    return KB_OK;
}

/* Stage the index entries of record r at index; on failure none stays. */
static int s_index_record(kb_batch_t *b, const Ketenbus__AuditRecord *r, uint64_t index)
{
    int rc = s_index_each(b, r, index, s_posting_add);
    if (rc != KB_OK)
        s_index_each(b, r, index, s_undo_fn);
    return rc;
}

/* Encode idx[0..n) (ascending) into out: count, first, gaps. Returns the
 * length; out needs (n + 1) * KB_VARINT_MAX bytes. */
static size_t s_list_encode(const uint64_t *idx, size_t n, uint8_t *out)
{
    size_t o = s_varint_put(out, n);
    for (size_t i = 0; i < n; i++)
        o += s_varint_put(out + o, i == 0 ? idx[0] : idx[i] - idx[i - 1]);
    return o;
}

static int s_put_list(leveldb_writebatch_t *wb, const uint8_t *prefix, size_t pl, const uint64_t *idx, size_t n)
{
    uint8_t k[KB_POSTING_KEY_MAX];
    memcpy(k, prefix, pl);
    kb_be64_put(k + pl, idx[n - 1]);
    uint8_t stackbuf[512];
    size_t need = (n + 1) * KB_VARINT_MAX;
    uint8_t *buf = need <= sizeof stackbuf ? stackbuf : malloc(need);
    if (!buf)
        return kb_error_set(KB_ENOMEM, "store: index: out of memory");
    size_t len = s_list_encode(idx, n, buf);
    leveldb_writebatch_put(wb, (const char *)k, pl + 8, (const char *)buf, len);
    if (buf != stackbuf)
        free(buf);
    return KB_OK;
}

/* Write the batch's posting lists into its write batch. */
static int s_postings_flush(kb_batch_t *b)
{
    for (size_t i = 0; b->used_post && i < b->n_post; i++) {
        s_posting_t *p = &b->post[i];
        if (p->prefix_len == 0 || p->n == 0)
            continue;
        int rc = s_put_list(b->wb, p->prefix, p->prefix_len, p->idx, p->n);
        if (rc != KB_OK)
            return rc;
    }
    s_postings_clear(b);
    return KB_OK;
}

void kb_store_seal(kb_store_t *s, kb_batch_t *b)
{
    if (s->tail_dirty && s->tail.n > 0) { /* the newest block as it stands */
        s_block_put(b->wb, s->audit_next / KB_ABLOCK_RECORDS, &s->tail);
        b->n++;
        s->tail_dirty = 0;
    }
    for (size_t i = 0; s->n_dirty > 0 && i < s->n_slots; i++) {
        s_counter_t *c = &s->slots[i];
        if (!c->agency || !c->dirty)
            continue;
        s_put_counter(b, 'n', c->agency, c->next_seq);
        s_put_counter(b, 'c', c->agency, c->depth);
        c->dirty = 0;
        s->n_dirty--;
    }
}

int kb_store_commit(kb_store_t *s, kb_batch_t *b, int sync)
{
    kb_store_seal(s, b);
    int rc = kb_store_write(s, b, sync);
    s_rblock_drop(s); /* a block read since a prune staged its tombstones is stale now */
    /* the newest block in memory holds records that are not on disk */
    if (rc != KB_OK)
        s->no_append = "a write failed and the store was not opened again since";
    return rc;
}

int kb_store_write(kb_store_t *s, kb_batch_t *b, int sync)
{
    if (b->n == 0)
        return KB_OK;
    int frc = s_postings_flush(b);
    if (frc != KB_OK) {
        kb_batch_clear(b);
        return frc;
    }
    char *err = NULL;
    leveldb_write(s->db, sync ? s->wsync : s->wfast, b->wb, &err);
    kb_batch_clear(b);
    if (err) {
        int rc = kb_error_set(KB_EIO, "store: write: %s", err);
        leveldb_free(err);
        return rc;
    }
    return KB_OK;
}

/* ------------------------------------------------------------ queues */

static int s_need_key(const kb_store_t *s)
{
    return s->has_key ? KB_OK : kb_error_set(KB_ECRYPTO, "store: opened without the storage key");
}

int kb_store_queue_put(kb_store_t *s, kb_batch_t *b, const char *agency, const Ketenbus__QueueEntry *e,
                       uint64_t *seq)
{
    if (s_need_key(s) != KB_OK)
        return KB_ECRYPTO;
    s_counter_t *c = s_counter_get(s, agency);
    if (!c)
        return KB_ENOMEM;
    uint8_t k[KB_KEY_MAX];
    size_t kl = s_queue_key(k, agency, c->next_seq);
    if (kl == 0)
        return kb_error_set(KB_EINVAL, "store: agency id too long");
    size_t pl = ketenbus__queue_entry__get_packed_size(e);
    uint8_t *plain = malloc(pl ? pl : 1);
    uint8_t *sealed = malloc(pl + KB_AEAD_OVERHEAD);
    if (!plain || !sealed) {
        free(plain);
        free(sealed);
        return kb_error_set(KB_ENOMEM, "store: queue entry: out of memory");
    }
    ketenbus__queue_entry__pack(e, plain);
    int rc = kb_aead_seal_with(s->aead, k, kl, plain, pl, sealed);
    OPENSSL_cleanse(plain, pl);
    free(plain);
    if (rc != KB_OK) {
        free(sealed);
        return rc;
    }
    leveldb_writebatch_put(b->wb, (const char *)k, kl, (const char *)sealed, pl + KB_AEAD_OVERHEAD);
    free(sealed);
    b->n++;
    *seq = c->next_seq++;
    c->depth++;
    s_counter_touch(s, c); /* its counters go into the batch when it is sealed */
    return KB_OK;
}

int kb_store_queue_del(kb_store_t *s, kb_batch_t *b, const char *agency, uint64_t seq)
{
    s_counter_t *c = s_counter_find(s, agency);
    if (!c || c->depth == 0 || seq >= c->next_seq)
        return kb_error_set(KB_ENOTFOUND, "store: %s has no entry %llu", agency, (unsigned long long)seq);
    uint8_t k[KB_KEY_MAX];
    size_t kl = s_queue_key(k, agency, seq);
    if (kl == 0)
        return kb_error_set(KB_EINVAL, "store: agency id too long");
    /* the caller knows the tag is live (in flight); checking the disk here
     * would cost a read per acknowledgement */
    leveldb_writebatch_delete(b->wb, (const char *)k, kl);
    b->n++;
    c->depth--;
    s_counter_touch(s, c);
    return KB_OK;
}

/* Decrypt and unpack the queue entry at key ik with value iv into *e:
 * KB_OK, KB_ECRYPTO (it does not decrypt or decode; kb_last_error says
 * which entry) or KB_ENOMEM. */
static int s_queue_open(kb_store_t *s, const char *ik, size_t ikl, const uint8_t *iv, size_t ivl, const char *agency,
                        uint64_t seq, Ketenbus__QueueEntry **e)
{
    size_t pl = ivl - KB_AEAD_OVERHEAD;
    uint8_t *plain = malloc(pl ? pl : 1);
    if (!plain)
        return kb_error_set(KB_ENOMEM, "store: scan: out of memory");
    if (kb_aead_open_with(s->aead, ik, ikl, iv, ivl, plain) != KB_OK) { /* plain wiped */
        free(plain);
        return kb_error_set(KB_ECRYPTO, "store: %s entry %llu does not decrypt (altered, or another storage key)",
                            agency, (unsigned long long)seq);
    }
    *e = ketenbus__queue_entry__unpack(NULL, pl, plain);
    OPENSSL_cleanse(plain, pl);
    free(plain);
    if (!*e)
        return kb_error_set(KB_ECRYPTO, "store: %s entry %llu does not decode", agency, (unsigned long long)seq);
    return KB_OK;
}

int kb_store_queue_scan(kb_store_t *s, const char *agency, uint64_t from, size_t max, kb_queue_fn *fn, void *arg)
{
    if (s_need_key(s) != KB_OK)
        return KB_ECRYPTO;
    uint8_t k[KB_KEY_MAX];
    size_t kl = s_queue_key(k, agency, from);
    if (kl == 0)
        return kb_error_set(KB_EINVAL, "store: agency id too long");
    size_t prefix_len = kl - 8;
    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
    if (!it)
        return kb_error_set(KB_ENOMEM, "store: iterator");
    int rc = KB_OK, bad = KB_OK;
    size_t seen = 0;
    for (leveldb_iter_seek(it, (const char *)k, kl); leveldb_iter_valid(it) && seen < max; leveldb_iter_next(it)) {
        size_t ikl, ivl;
        const char *ik = leveldb_iter_key(it, &ikl);
        if (ikl != kl || memcmp(ik, k, prefix_len) != 0)
            break;
        const uint8_t *iv = (const uint8_t *)leveldb_iter_value(it, &ivl);
        uint64_t seq = kb_be64_get((const uint8_t *)ik + prefix_len);
        Ketenbus__QueueEntry *e = NULL;
        if (ivl < KB_AEAD_OVERHEAD) {
            bad = kb_error_set(KB_ECRYPTO, "store: %s entry %llu is truncated", agency, (unsigned long long)seq);
        } else if ((rc = s_queue_open(s, ik, ikl, iv, ivl, agency, seq, &e)) != KB_OK) {
            if (rc != KB_ECRYPTO)
                break;
            bad = rc;
            rc = KB_OK;
        }
        seen++;
        int stop = fn(seq, e, arg);
        if (e)
            ketenbus__queue_entry__free_unpacked(e, NULL);
        if (stop)
            break;
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err) {
        rc = kb_error_set(KB_EIO, "store: scan %s: %s", agency, err);
        leveldb_free(err);
    }
    return rc != KB_OK ? rc : bad;
}

uint64_t kb_store_queue_depth(const kb_store_t *s, const char *agency)
{
    const s_counter_t *c = s_counter_find(s, agency);
    return c ? c->depth : 0;
}

uint64_t kb_store_audit_migrated(const kb_store_t *s)
{
    return s->migrated;
}

size_t kb_store_queues_repaired(const kb_store_t *s)
{
    return s->repaired;
}

uint64_t kb_store_queue_next(const kb_store_t *s, const char *agency)
{
    const s_counter_t *c = s_counter_find(s, agency);
    return c ? c->next_seq : 0;
}

int kb_store_queue_agencies(const kb_store_t *s, char ***agencies, size_t *n)
{
    *agencies = NULL;
    *n = 0;
    size_t count = 0, bytes = 0;
    for (size_t i = 0; i < s->n_slots; i++) {
        const s_counter_t *c = &s->slots[i];
        if (c->agency && c->depth > 0) {
            count++;
            bytes += sizeof(char *) + strlen(c->agency) + 1; /* ids are short: bounded by KB_KEY_MAX */
        }
    }
    if (count == 0)
        return KB_OK;
    char **v = malloc(bytes);
    if (!v)
        return kb_error_set(KB_ENOMEM, "store: queued agencies: out of memory");
    char *text = (char *)(v + count);
    size_t k = 0;
    for (size_t i = 0; i < s->n_slots; i++) {
        const s_counter_t *c = &s->slots[i];
        if (!c->agency || c->depth == 0)
            continue;
        size_t len = strlen(c->agency) + 1;
        memcpy(text, c->agency, len);
        v[k++] = text;
        text += len;
    }
    *agencies = v;
    *n = k;
    return KB_OK;
}

/* ------------------------------------------------------------ accepted ids */

int kb_store_seen_get(kb_store_t *s, const char *sender, const uint8_t id[16], uint64_t *audit_index)
{
    uint8_t k[KB_KEY_MAX];
    size_t kl = s_key(k, 'd', sender, id, 16);
    if (kl == 0)
        return kb_error_set(KB_EINVAL, "store: sender id too long");
    char *err = NULL;
    size_t vl = 0;
    char *v = leveldb_get(s->db, s->ropts, (const char *)k, kl, &vl, &err);
    if (err) {
        int rc = kb_error_set(KB_EIO, "store: read: %s", err);
        leveldb_free(err);
        return rc;
    }
    if (!v)
        return KB_ENOTFOUND;
    int rc = KB_OK;
    if (vl == 8)
        *audit_index = kb_be64_get((const uint8_t *)v);
    else
        rc = kb_error_set(KB_EIO, "store: corrupt accepted-id entry");
    leveldb_free(v);
    return rc;
}

int kb_store_seen_put(kb_store_t *s, kb_batch_t *b, const char *sender, const uint8_t id[16], uint64_t audit_index)
{
    (void)s;
    uint8_t k[KB_KEY_MAX], v[8];
    size_t kl = s_key(k, 'd', sender, id, 16);
    if (kl == 0)
        return kb_error_set(KB_EINVAL, "store: sender id too long");
    kb_be64_put(v, audit_index);
    leveldb_writebatch_put(b->wb, (const char *)k, kl, (const char *)v, 8);
    b->n++;
    return KB_OK;
}

/* ------------------------------------------------------------ audit */

/* Stage record r as the next of the log: its index postings, its leaf in
 * tree (if not NULL) and its bytes in the tail block, which goes into b
 * once it holds 16 records and otherwise when b is sealed. On failure
 * nothing stays staged. */
static int s_audit_stage(kb_store_t *s, kb_batch_t *b, kb_merkle_t *tree, Ketenbus__AuditRecord *r, uint64_t *index)
{
    if (s->no_append)
        return kb_error_set(KB_EIO, "store: no audit record can be appended: %s", s->no_append);
    r->index = s->audit_next;
    if (ketenbus__audit_record__get_packed_size(r) == 0) /* an empty slot means a missing record */
        return kb_error_set(KB_EINVAL, "store: an audit record with no field set");
    /* times never go down along the log: queries find a period by binary
     * search, and audit verify holds tombstones to that order */
    int64_t asked_time = r->time_us;
    if (r->time_us < s->audit_time)
        r->time_us = s->audit_time;
    size_t len = ketenbus__audit_record__get_packed_size(r);
    uint8_t stackbuf[1024];
    uint8_t *buf = len <= sizeof stackbuf ? stackbuf : malloc(len);
    if (!buf) {
        r->time_us = asked_time;
        return kb_error_set(KB_ENOMEM, "store: audit: out of memory");
    }
    ketenbus__audit_record__pack(r, buf);
    size_t tail_len = s->tail.len;
    unsigned tail_n = s->tail.n;
    /* the tail, index and tree in turn: each undoes itself when it fails */
    int rc = kb_ablock_add(&s->tail, buf, len);
    if (rc == KB_OK && (rc = s_index_record(b, r, r->index)) == KB_OK && tree &&
        (rc = kb_merkle_append(tree, buf, len, NULL)) != KB_OK)
        s_index_each(b, r, r->index, s_undo_fn);
    if (buf != stackbuf)
        free(buf);
    if (rc != KB_OK) {
        s->tail.len = tail_len;
        s->tail.n = tail_n;
        r->time_us = asked_time;
        return rc;
    }
    s->audit_time = r->time_us;
    if (s->tail.n == KB_ABLOCK_RECORDS) {
        s_block_put(b->wb, s->audit_next / KB_ABLOCK_RECORDS, &s->tail);
        kb_ablock_reset(&s->tail);
        s->tail_dirty = 0;
    } else {
        s->tail_dirty = 1;
    }
    b->n++;
    if (index)
        *index = r->index;
    s->audit_next++;
    return KB_OK;
}

int kb_store_audit_append(kb_store_t *s, kb_batch_t *b, Ketenbus__AuditRecord *r, uint64_t *index)
{
    return s_audit_stage(s, b, NULL, r, index);
}

uint64_t kb_store_audit_size(const kb_store_t *s)
{
    return s->audit_next;
}

/* Forget the block kept by s_record_get: pruning rewrites blocks. */
static void s_rblock_drop(kb_store_t *s)
{
    leveldb_free(s->rblock);
    s->rblock = NULL;
}

/* The stored bytes of record index, in the block kept with the store
 * (valid until the next read or change of the log). Queries read the
 * records of one message, which mostly share a block, one after another:
 * the block is kept for the next read, and fetched again if it does not
 * hold the slot (the newest block grows). KB_ENOTFOUND (error set) when
 * the log has no such record. */
static int s_record_get(kb_store_t *s, uint64_t index, const uint8_t **rec, size_t *len)
{
    uint64_t block = index / KB_ABLOCK_RECORDS;
    unsigned slot = (unsigned)(index % KB_ABLOCK_RECORDS);
    int rc = KB_ENOTFOUND;
    if (s->rblock && s->rblock_no == block)
        rc = kb_ablock_slot(s->rblock, s->rblock_len, slot, rec, len);
    if (rc != KB_OK) {
        uint8_t k[KB_ABLOCK_KEY_LEN];
        kb_ablock_key(k, block);
        char *err = NULL;
        s_rblock_drop(s);
        s->rblock = leveldb_get(s->db, s->ropts, (const char *)k, sizeof k, &s->rblock_len, &err);
        if (err) {
            rc = kb_error_set(KB_EIO, "store: read: %s", err);
            leveldb_free(err);
            return rc;
        }
        s->rblock_no = block;
        rc = s->rblock ? kb_ablock_slot(s->rblock, s->rblock_len, slot, rec, len) : KB_ENOTFOUND;
    }
    if (rc == KB_OK && *len == 0)
        rc = KB_ENOTFOUND;
    if (rc == KB_ENOTFOUND) {
        kb_error_set(KB_ENOTFOUND, "store: no audit record %llu", (unsigned long long)index);
    } else if (rc == KB_EPROTO) {
        kb_error_wrap(rc, "store: audit record %llu", (unsigned long long)index);
    }
    return rc;
}

int kb_store_audit_get(kb_store_t *s, uint64_t index, Ketenbus__AuditRecord **out)
{
    const uint8_t *v;
    size_t vl;
    *out = NULL;
    int rc = s_record_get(s, index, &v, &vl);
    if (rc != KB_OK)
        return rc;
    if (v[0] == 0)
        return kb_error_set(KB_ENOTFOUND, "store: audit record %llu was pruned", (unsigned long long)index);
    *out = ketenbus__audit_record__unpack(NULL, vl, v);
    if (!*out)
        return kb_error_set(KB_EPROTO, "store: audit record %llu does not decode", (unsigned long long)index);
    return KB_OK;
}

/* ------------------------------------------------------------ Merkle tiles */

#define KB_TILE_KEY_LEN 10u /* 't' + level + 8-byte index */

int kb_batch_put(kb_batch_t *b, const void *k, size_t kl, const void *v, size_t vl)
{
    if (!b || !k || (!v && vl))
        return kb_error_set(KB_EINVAL, "store: NULL argument");
    leveldb_writebatch_put(b->wb, (const char *)k, kl, (const char *)v, vl);
    b->n++;
    return KB_OK;
}

static int s_tile_key(uint8_t k[KB_TILE_KEY_LEN], unsigned level, uint64_t index, size_t width)
{
    if (level >= KB_MERKLE_TILE_LEVELS || width == 0 || width > KB_MERKLE_TILE_WIDTH)
        return kb_error_set(KB_EINVAL, "store: bad tile %u/%llu width %zu", level, (unsigned long long)index, width);
    k[0] = 't';
    k[1] = (uint8_t)level;
    kb_be64_put(k + 2, index);
    return KB_OK;
}

int kb_store_tile_get(kb_store_t *s, unsigned level, uint64_t index, size_t width, uint8_t *buf)
{
    uint8_t k[KB_TILE_KEY_LEN];
    int rc = s_tile_key(k, level, index, width);
    if (rc != KB_OK)
        return rc;
    char *err = NULL;
    size_t vl = 0;
    char *v = leveldb_get(s->db, s->ropts, (const char *)k, sizeof k, &vl, &err);
    if (err) {
        rc = kb_error_set(KB_EIO, "store: read tile: %s", err);
        leveldb_free(err);
        return rc;
    }
    if (!v)
        return kb_error_set(KB_ENOTFOUND, "store: no tile %u/%llu", level, (unsigned long long)index);
    if (vl % KB_MERKLE_HASH_LEN != 0 || vl > KB_MERKLE_TILE_BYTES)
        rc = kb_error_set(KB_EPROTO, "store: tile %u/%llu has %zu bytes", level, (unsigned long long)index, vl);
    else if (vl / KB_MERKLE_HASH_LEN < width)
        rc = kb_error_set(KB_ENOTFOUND, "store: tile %u/%llu has %zu hashes, not %zu", level,
                          (unsigned long long)index, vl / KB_MERKLE_HASH_LEN, width);
    else
        memcpy(buf, v, width * KB_MERKLE_HASH_LEN);
    leveldb_free(v);
    return rc;
}

int kb_store_tile_put(kb_store_t *s, kb_batch_t *b, unsigned level, uint64_t index, const uint8_t *hashes,
                      size_t width)
{
    (void)s;
    uint8_t k[KB_TILE_KEY_LEN];
    int rc = s_tile_key(k, level, index, width);
    if (rc != KB_OK)
        return rc;
    return kb_batch_put(b, k, sizeof k, hashes, width * KB_MERKLE_HASH_LEN);
}

typedef struct {
    uint8_t *buf;   /* leaf hashes */
    uint64_t first; /* index of the first */
    size_t n;       /* hashes so far */
    int rc;         /* first failure */
} s_leaves_t;

static int s_leaf_one(uint64_t index, const uint8_t *val, size_t len, void *arg)
{
    s_leaves_t *x = arg;
    if (index != x->first + x->n)
        return 1; /* a record is missing */
    kb_audit_tombstone_t ts;
    int trc = kb_audit_tombstone_parse(val, len, &ts);
    if (trc == KB_OK) /* pruning keeps this tile's records, but a tombstone knows its hash */
        memcpy(x->buf + x->n * KB_MERKLE_HASH_LEN, ts.leaf_hash, KB_MERKLE_HASH_LEN);
    else if (trc != KB_ENOTFOUND)
        x->rc = trc;
    else
        x->rc = kb_merkle_leaf_hash(val, len, x->buf + x->n * KB_MERKLE_HASH_LEN);
    x->n++;
    return x->rc != KB_OK;
}

/* Leaf hashes of the width audit records from leaf tile index: the partial
 * leaf tile, which is not stored (see store.h). */
static int s_tiles_from_audit(kb_store_t *s, uint64_t index, size_t width, uint8_t *buf)
{
    s_leaves_t x = {buf, index * KB_MERKLE_TILE_WIDTH, 0, KB_OK};
    int rc = kb_store_audit_scan(s, x.first, x.first + width, width, s_leaf_one, &x);
    if (rc == KB_OK)
        rc = x.rc;
    if (rc == KB_OK && x.n < width)
        rc = kb_error_set(KB_ENOTFOUND, "store: audit record %llu is missing (leaf tile %llu)",
                          (unsigned long long)(x.first + x.n), (unsigned long long)index);
    return rc;
}

static int s_tiles_get(void *ctx, unsigned level, uint64_t index, size_t width, uint8_t *buf)
{
    kb_store_tiles_t *t = ctx;
    int rc = kb_store_tile_get(t->store, level, index, width, buf);
    if (rc == KB_ENOTFOUND && level == 0 && width < KB_MERKLE_TILE_WIDTH)
        rc = s_tiles_from_audit(t->store, index, width, buf);
    return rc;
}

static int s_tiles_put(void *ctx, unsigned level, uint64_t index, const uint8_t *hashes, size_t width)
{
    kb_store_tiles_t *t = ctx;
    if (level == 0 && width < KB_MERKLE_TILE_WIDTH)
        return KB_OK; /* the records are the partial leaf tile */
    return kb_store_tile_put(t->store, t->batch, level, index, hashes, width);
}

kb_merkle_io_t kb_store_tiles_io(kb_store_tiles_t *t)
{
    kb_merkle_io_t io = {s_tiles_get, s_tiles_put, t};
    return io;
}

int kb_store_audit_log(kb_store_t *s, kb_batch_t *b, kb_merkle_t *tree, Ketenbus__AuditRecord *r, uint64_t *index)
{
    if (kb_merkle_size(tree) != s->audit_next)
        return kb_error_set(KB_EINVAL, "store: audit tree has %llu leaves, the log %llu records",
                            (unsigned long long)kb_merkle_size(tree), (unsigned long long)s->audit_next);
    return s_audit_stage(s, b, tree, r, index);
}

/* ------------------------------------------------------------ checkpoints */

int kb_store_checkpoint_put(kb_store_t *s, kb_batch_t *b, uint64_t size, const char *note, size_t len)
{
    (void)s;
    uint8_t k[9];
    k[0] = 'k';
    kb_be64_put(k + 1, size);
    return kb_batch_put(b, k, sizeof k, note, len);
}

/* Scan k-keys forward (fn != NULL) or fetch the last one. */
static int s_checkpoints(kb_store_t *s, uint64_t from, kb_checkpoint_fn *fn, void *arg, uint64_t *last_size,
                         char **last, size_t *last_len)
{
    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
    if (!it)
        return kb_error_set(KB_ENOMEM, "store: iterator");
    int rc = KB_ENOTFOUND;
    if (fn) {
        rc = KB_OK;
        uint8_t start[9];
        start[0] = 'k';
        kb_be64_put(start + 1, from);
        for (leveldb_iter_seek(it, (const char *)start, sizeof start); leveldb_iter_valid(it); leveldb_iter_next(it)) {
            size_t kl, vl;
            const char *k = leveldb_iter_key(it, &kl);
            if (kl != 9 || k[0] != 'k')
                break;
            const char *v = leveldb_iter_value(it, &vl);
            if (fn(kb_be64_get((const uint8_t *)k + 1), v, vl, arg))
                break;
        }
    } else {
        leveldb_iter_seek(it, "l", 1);
        if (leveldb_iter_valid(it))
            leveldb_iter_prev(it);
        else
            leveldb_iter_seek_to_last(it);
        if (leveldb_iter_valid(it)) {
            size_t kl, vl;
            const char *k = leveldb_iter_key(it, &kl);
            if (kl == 9 && k[0] == 'k') {
                const char *v = leveldb_iter_value(it, &vl);
                *last = malloc(vl + 1);
                if (!*last) {
                    rc = kb_error_set(KB_ENOMEM, "store: out of memory");
                } else {
                    memcpy(*last, v, vl);
                    (*last)[vl] = '\0';
                    *last_len = vl;
                    *last_size = kb_be64_get((const uint8_t *)k + 1);
                    rc = KB_OK;
                }
            }
        }
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err) {
        rc = kb_error_set(KB_EIO, "store: checkpoints: %s", err);
        leveldb_free(err);
    }
    return rc;
}

int kb_store_checkpoint_latest(kb_store_t *s, uint64_t *size, char **note, size_t *len)
{
    return s_checkpoints(s, 0, NULL, NULL, size, note, len);
}

int kb_store_checkpoint_scan(kb_store_t *s, kb_checkpoint_fn *fn, void *arg)
{
    return s_checkpoints(s, 0, fn, arg, NULL, NULL, NULL);
}

int kb_store_checkpoint_scan_from(kb_store_t *s, uint64_t from, kb_checkpoint_fn *fn, void *arg)
{
    return s_checkpoints(s, from, fn, arg, NULL, NULL, NULL);
}

/* ------------------------------------------------------------ audit reads */

/* Leave the iterator's error (if any) in *rc and destroy it. */
static int s_iter_done(leveldb_iterator_t *it, int rc, const char *what)
{
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err) {
        rc = kb_error_set(KB_EIO, "store: %s: %s", what, err);
        leveldb_free(err);
    }
    return rc;
}

/* Called by s_blocks_walk with each block's slots: 0 to go on, 1 to stop,
 * or a KB_E* code from decoding them. */
typedef int (s_block_fn)(uint64_t block, kb_ablock_iter_t *bi, void *arg);

/* Call fn for every stored block holding records of [from, end), in
 * order. A block that does not decode fails the walk, naming its records. */
static int s_blocks_walk(kb_store_t *s, uint64_t from, uint64_t end, s_block_fn *fn, void *arg)
{
    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
    if (!it)
        return kb_error_set(KB_ENOMEM, "store: iterator");
    uint8_t k[KB_ABLOCK_KEY_LEN];
    kb_ablock_key(k, from / KB_ABLOCK_RECORDS);
    int rc = KB_OK;
    for (leveldb_iter_seek(it, (const char *)k, sizeof k); rc == KB_OK && leveldb_iter_valid(it);
         leveldb_iter_next(it)) {
        size_t kl, vl;
        uint64_t block;
        const char *ik = leveldb_iter_key(it, &kl);
        if (kl < 1 || ik[0] != KB_ABLOCK_PREFIX)
            break; /* past the blocks */
        if (!kb_ablock_key_parse(ik, kl, &block)) {
            rc = kb_error_set(KB_EPROTO, "store: a key of %zu bytes among the audit blocks is not a block's key", kl);
            break;
        }
        if (block * KB_ABLOCK_RECORDS >= end)
            break;
        const char *iv = leveldb_iter_value(it, &vl);
        kb_ablock_iter_t bi;
        kb_ablock_iter_init(&bi, iv, vl);
        rc = fn(block, &bi, arg);
        if (rc == KB_EPROTO)
            rc = kb_error_wrap(rc, "store: audit records %llu to %llu", (unsigned long long)block * KB_ABLOCK_RECORDS,
                               (unsigned long long)block * KB_ABLOCK_RECORDS + KB_ABLOCK_RECORDS - 1);
    }
    return s_iter_done(it, rc > 0 ? KB_OK : rc, "reading audit records");
}

typedef struct {
    uint64_t from, end;  /* the range */
    size_t max, seen;    /* records to visit at most, visited */
    kb_audit_raw_fn *fn; /* the caller's */
    void *arg;
} s_scan_t;

static int s_scan_block(uint64_t block, kb_ablock_iter_t *bi, void *arg)
{
    s_scan_t *x = arg;
    unsigned slot;
    const uint8_t *rec;
    size_t rl;
    int rc;
    while ((rc = kb_ablock_next(bi, &slot, &rec, &rl)) == KB_OK) {
        uint64_t index = block * KB_ABLOCK_RECORDS + slot;
        if (index >= x->end || x->seen >= x->max)
            return 1;
        if (index >= x->from && rl > 0) {
            x->seen++;
            if (x->fn(index, rec, rl, x->arg))
                return 1;
        }
    }
    return rc == KB_ENOTFOUND ? (x->seen >= x->max) : rc;
}

/* Walk the stored records with from <= index < end in index order, at
 * most max of them, through the blocks that hold them; empty slots are
 * skipped. */
int kb_store_audit_scan(kb_store_t *s, uint64_t from, uint64_t end, size_t max, kb_audit_raw_fn *fn, void *arg)
{
    if (!s || !fn)
        return kb_error_set(KB_EINVAL, "store: NULL argument");
    s_scan_t x = {from, end, max, 0, fn, arg};
    return max > 0 ? s_blocks_walk(s, from, end, s_scan_block, &x) : KB_OK;
}

typedef struct {
    int64_t *time_us; /* out: its time */
    uint64_t *found;  /* out: its index */
    int rc;           /* KB_OK once found */
} s_time_t;

static int s_time_one(uint64_t index, const uint8_t *val, size_t len, void *arg)
{
    s_time_t *x = arg;
    *x->found = index;
    kb_audit_tombstone_t ts;
    x->rc = kb_audit_tombstone_parse(val, len, &ts);
    if (x->rc == KB_OK) {
        *x->time_us = ts.time_us;
    } else if (x->rc == KB_ENOTFOUND) {
        Ketenbus__AuditRecord *r = ketenbus__audit_record__unpack(NULL, len, val);
        if (r) {
            *x->time_us = r->time_us;
            ketenbus__audit_record__free_unpacked(r, NULL);
            x->rc = KB_OK;
        } else {
            x->rc = kb_error_set(KB_EPROTO, "store: audit record %llu does not decode", (unsigned long long)index);
        }
    }
    return 1;
}

int kb_store_audit_time(kb_store_t *s, uint64_t index, int64_t *time_us, uint64_t *found)
{
    s_time_t x = {time_us, found, KB_ENOTFOUND};
    int rc = kb_store_audit_scan(s, index, UINT64_MAX, 1, s_time_one, &x);
    if (rc == KB_OK)
        rc = x.rc;
    if (rc == KB_ENOTFOUND)
        kb_error_set(KB_ENOTFOUND, "store: no audit record at or after %llu", (unsigned long long)index);
    return rc;
}

/* ------------------------------------------------------------ index reads */

/* Decode a stored list into *idx (malloc'd, *n entries) and check it
 * against the last index of its key. */
static int s_list_decode(const uint8_t *v, size_t vl, uint64_t last, uint64_t **idx, size_t *n)
{
    size_t pos = 0;
    uint64_t count = 0, x = 0;
    *idx = NULL;
    *n = 0;
    if (s_varint_get(v, vl, &pos, &count) != KB_OK || count == 0 || count > KB_INDEX_LIST_MAX ||
        count > vl) /* every entry takes at least one byte */
        return kb_error_set(KB_EPROTO, "store: corrupt index list (count)");
    uint64_t *out = malloc((size_t)count * sizeof *out);
    if (!out)
        return kb_error_set(KB_ENOMEM, "store: index: out of memory");
    for (uint64_t i = 0; i < count; i++) {
        uint64_t d;
        if (s_varint_get(v, vl, &pos, &d) != KB_OK || (i > 0 && (d == 0 || d > UINT64_MAX - x))) {
            free(out);
            return kb_error_set(KB_EPROTO, "store: corrupt index list (entry %llu)", (unsigned long long)i);
        }
        x = i == 0 ? d : x + d;
        out[i] = x;
    }
    if (pos != vl || x != last) {
        free(out);
        return kb_error_set(KB_EPROTO, "store: corrupt index list (ends at %llu, key says %llu)",
                            (unsigned long long)x, (unsigned long long)last);
    }
    *idx = out;
    *n = (size_t)count;
    return KB_OK;
}

/* Walk the lists of one prefix from index from; *stop when done early.
 * Lists of a subject bucket may interleave (kb_store_audit_prune adds
 * anchors), so those are walked to the end of the bucket. */
static int s_walk_lists(leveldb_iterator_t *it, const uint8_t *prefix, size_t pl, uint64_t from, uint64_t end,
                        kb_posting_fn *fn, void *arg, int *stop)
{
    int sorted = prefix[1] != KB_INDEX_SUBJECT;
    uint8_t k[KB_POSTING_KEY_MAX];
    memcpy(k, prefix, pl);
    kb_be64_put(k + pl, from);
    int rc = KB_OK;
    for (leveldb_iter_seek(it, (const char *)k, pl + 8); !*stop && leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *ik = leveldb_iter_key(it, &kl);
        if (kl != pl + 8 || memcmp(ik, k, pl) != 0)
            break;
        const uint8_t *iv = (const uint8_t *)leveldb_iter_value(it, &vl);
        uint64_t *idx;
        size_t n;
        rc = s_list_decode(iv, vl, kb_be64_get((const uint8_t *)ik + pl), &idx, &n);
        if (rc != KB_OK)
            break;
        for (size_t i = 0; i < n && !*stop; i++) {
            if (idx[i] >= end)
                *stop = sorted;
            else if (idx[i] >= from)
                *stop = fn(idx[i], arg) != 0;
        }
        free(idx);
    }
    return rc;
}

int kb_store_postings(kb_store_t *s, int kind, const void *value, size_t value_len, uint64_t from, uint64_t end,
                      kb_posting_fn *fn, void *arg)
{
    uint8_t prefix[KB_PREFIX_MAX];
    size_t pl = (s && fn && value) ? s_prefix(prefix, kind, value, value_len, from) : 0;
    if (pl == 0)
        return kb_error_set(KB_EINVAL, "store: bad index value");
    if (end > s->audit_next)
        end = s->audit_next;
    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
    if (!it)
        return kb_error_set(KB_ENOMEM, "store: iterator");
    int rc = KB_OK, stop = 0;
    if (kind != KB_INDEX_SUBJECT) {
        rc = s_walk_lists(it, prefix, pl, from, end, fn, arg, &stop);
    } else {
        /* one walk per bucket the range touches */
        for (uint64_t at = from; rc == KB_OK && !stop && at < end;) {
            pl = s_prefix(prefix, kind, value, value_len, at);
            rc = s_walk_lists(it, prefix, pl, at, end, fn, arg, &stop);
            at = ((at >> KB_INDEX_BUCKET_BITS) + 1) << KB_INDEX_BUCKET_BITS;
        }
    }
    return s_iter_done(it, rc, "reading the audit index");
}

/* ------------------------------------------------------------ reindex */

/* Delete every key of prefix p (one byte) in batches. */
static int s_delete_prefix(kb_store_t *s, char p)
{
    kb_batch_t *b = kb_batch_new();
    leveldb_iterator_t *it = b ? leveldb_create_iterator(s->db, s->ropts) : NULL;
    if (!it) {
        kb_batch_destroy(&b);
        return kb_error_set(KB_ENOMEM, "store: out of memory");
    }
    int rc = KB_OK;
    for (leveldb_iter_seek(it, &p, 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl < 1 || k[0] != p)
            break;
        leveldb_writebatch_delete(b->wb, k, kl);
        b->n++;
    }
    rc = s_iter_done(it, rc, "dropping the audit index");
    if (rc == KB_OK)
        rc = kb_store_commit(s, b, 0);
    kb_batch_destroy(&b);
    return rc;
}

typedef struct {
    kb_store_t *s;   /* the store */
    kb_batch_t *b;   /* postings are staged here */
    int rc;          /* first failure */
    uint64_t next;   /* next index to read */
} s_reindex_t;

static int s_reindex_one(uint64_t index, const uint8_t *val, size_t len, void *arg)
{
    s_reindex_t *x = arg;
    x->next = index + 1;
    if (len > 0 && val[0] == 0)
        return 0; /* pruned: not indexed */
    Ketenbus__AuditRecord *r = ketenbus__audit_record__unpack(NULL, len, val);
    if (!r)
        return 0; /* a damaged record is for audit verify to report, not the index */
    x->rc = s_index_record(x->b, r, index);
    ketenbus__audit_record__free_unpacked(r, NULL);
    x->b->n++; /* so that the commit writes the lists */
    return x->rc != KB_OK;
}

int kb_store_audit_reindex(kb_store_t *s)
{
    kb_store_cache_set(s, NULL, NULL);
    int rc = s_delete_prefix(s, 'x');
    kb_batch_t *b = rc == KB_OK ? kb_batch_new() : NULL;
    if (rc == KB_OK && !b)
        rc = KB_ENOMEM;
    s_reindex_t x = {s, b, KB_OK, 0};
    while (rc == KB_OK && x.next < s->audit_next) {
        uint64_t before = x.next;
        rc = kb_store_audit_scan(s, x.next, s->audit_next, KB_REINDEX_CHUNK, s_reindex_one, &x);
        if (rc == KB_OK)
            rc = x.rc;
        if (rc == KB_OK)
            rc = kb_store_commit(s, b, 0);
        if (rc == KB_OK && x.next == before)
            break; /* nothing more stored */
    }
    if (rc == KB_OK) {
        uint8_t v[8];
        kb_be64_put(v, KB_INDEX_VERSION);
        kb_batch_put(b, "i", 1, v, sizeof v);
        rc = kb_store_commit(s, b, 1);
    }
    kb_batch_destroy(&b);
    return rc;
}

/* At open: index a log from before the index existed. */
static int s_index_check(kb_store_t *s)
{
    char *err = NULL;
    size_t vl = 0;
    char *v = leveldb_get(s->db, s->ropts, "i", 1, &vl, &err);
    if (err) {
        int rc = kb_error_set(KB_EIO, "store: read: %s", err);
        leveldb_free(err);
        return rc;
    }
    int have = v != NULL;
    leveldb_free(v);
    if (have)
        return KB_OK;
    return kb_store_audit_reindex(s);
}

/* ------------------------------------------------------------ pruning */

int kb_audit_tombstone_parse(const uint8_t *val, size_t len, kb_audit_tombstone_t *t)
{
    if (!val || len == 0 || val[0] != 0)
        return KB_ENOTFOUND;
    size_t o = 3;
    if (len == KB_AUDIT_TOMBSTONE_LEN && val[1] == KB_TOMBSTONE_MAGIC && val[2] == KB_TOMBSTONE_V2 &&
        (val[3] == KB_TOMBSTONE_ALL || val[3] < KB_STORE_KINDS)) {
        t->claim = val[3] == KB_TOMBSTONE_ALL ? KB_PRUNE_ALL : val[3];
        o = 4;
    } else if (len == KB_AUDIT_TOMBSTONE_LEN - 1 && val[1] == KB_TOMBSTONE_MAGIC && val[2] == KB_TOMBSTONE_V1) {
        t->claim = KB_PRUNE_ALL;
    } else {
        return kb_error_set(KB_EPROTO, "store: malformed tombstone of %zu bytes", len);
    }
    t->time_us = (int64_t)kb_be64_get(val + o);
    t->pruned_us = (int64_t)kb_be64_get(val + o + 8);
    memcpy(t->leaf_hash, val + o + 16, KB_MERKLE_HASH_LEN);
    return KB_OK;
}

static void s_tombstone(uint8_t out[KB_AUDIT_TOMBSTONE_LEN], int claim, int64_t time_us, int64_t pruned_us,
                        const uint8_t hash[KB_MERKLE_HASH_LEN])
{
    out[0] = 0;
    out[1] = KB_TOMBSTONE_MAGIC;
    out[2] = KB_TOMBSTONE_V2;
    out[3] = claim == KB_PRUNE_ALL ? KB_TOMBSTONE_ALL : (uint8_t)claim;
    kb_be64_put(out + 4, (uint64_t)time_us);
    kb_be64_put(out + 12, (uint64_t)pruned_us);
    memcpy(out + 20, hash, KB_MERKLE_HASH_LEN);
}

uint64_t kb_store_audit_pruned(const kb_store_t *s)
{
    return s->pruned_end;
}

uint64_t kb_store_audit_pruned_kind(const kb_store_t *s, int kind)
{
    if (kind < 0 || kind >= (int)KB_STORE_KINDS)
        return s->pruned_end;
    return s->kind_end[kind] > s->pruned_end ? s->kind_end[kind] : s->pruned_end;
}

/* "r" <kind:1> -> u64: the end of the range retention pruned of that kind. */
static int s_load_kind_ends(kb_store_t *s)
{
    for (unsigned k = 0; k < KB_STORE_KINDS; k++) {
        const char key[2] = {'r', (char)k};
        char *err = NULL;
        size_t vl = 0;
        char *v = leveldb_get(s->db, s->ropts, key, sizeof key, &vl, &err);
        if (err) {
            int rc = kb_error_set(KB_EIO, "store: reading the pruned end of kind %u: %s", k, err);
            leveldb_free(err);
            return rc;
        }
        s->kind_end[k] = v && vl == 8 ? kb_be64_get((const uint8_t *)v) : 0;
        leveldb_free(v);
    }
    return KB_OK;
}

/* Whether a prune of kind (KB_PRUNE_ALL: every kind) takes r. CHECKPOINT
 * and PRUNED records are what verification of a pruned log rests on, and
 * hold nothing about persons: they stay. */
static int s_prune_takes(int kind, const Ketenbus__AuditRecord *r)
{
    if (r->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CHECKPOINT || r->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_PRUNED)
        return 0;
    return kind == KB_PRUNE_ALL || (int)r->kind == kind;
}


/* A pruned record's message and one of its subject keys. */
typedef struct {
    uint8_t id[16];   /* message id */
    uint8_t key[32];  /* subject key */
} s_about_t;

typedef struct {
    kb_store_t *s;              /* the store */
    kb_batch_t *b;              /* tombstones are staged here */
    kb_batch_t *gone;           /* per (kind, value): the indices its lists lose */
    s_about_t *about;           /* subjects of pruned records, per message */
    size_t n_about;             /* their number */
    size_t cap_about;           /* allocated */
    int64_t now_us;             /* pruning time */
    int kind;                   /* the Kind pruned, or KB_PRUNE_ALL */
    uint64_t count;             /* records turned into tombstones */
    EVP_MD_CTX *digest;         /* SHA-256 over their indices */
    uint64_t expect;            /* next index expected */
    uint64_t tile;              /* leaf tile in tile_buf, UINT64_MAX: none */
    uint8_t tile_buf[KB_MERKLE_TILE_BYTES]; /* its hashes */
    uint8_t stone[KB_AUDIT_TOMBSTONE_LEN];  /* the tombstone s_prune_one made, if stoned */
    int stoned;                 /* whether it made one for the record it was given */
    kb_ablock_buf_t out;        /* the block being rewritten */
    uint64_t first, end;        /* the range pruned */
    int rc;                     /* first failure */
} s_prune_t;

/* Decide about record index: kept, or replaced by the tombstone it leaves
 * in x->stone (x->stoned); 1 to stop, with x->rc set. */
static int s_prune_one(uint64_t index, const uint8_t *val, size_t len, void *arg)
{
    s_prune_t *x = arg;
    x->stoned = 0;
    if (index != x->expect) {
        x->rc = kb_error_set(KB_ECRYPTO, "store: audit record %llu is missing; not pruning (run audit verify)",
                             (unsigned long long)x->expect);
        return 1;
    }
    x->expect++;
    kb_audit_tombstone_t ts;
    int trc = kb_audit_tombstone_parse(val, len, &ts);
    if (trc == KB_OK)
        return 0; /* pruned before */
    uint64_t tile = index / KB_MERKLE_TILE_WIDTH;
    if (tile != x->tile) {
        x->rc = kb_store_tile_get(x->s, 0, tile, KB_MERKLE_TILE_WIDTH, x->tile_buf);
        if (x->rc != KB_OK)
            return 1;
        x->tile = tile;
    }
    uint8_t hash[KB_MERKLE_HASH_LEN];
    Ketenbus__AuditRecord *r = trc == KB_ENOTFOUND ? ketenbus__audit_record__unpack(NULL, len, val) : NULL;
    if (r && !s_prune_takes(x->kind, r)) {
        ketenbus__audit_record__free_unpacked(r, NULL);
        return 0; /* kept */
    }
    x->rc = r ? kb_merkle_leaf_hash(val, len, hash) : KB_EPROTO;
    if (x->rc == KB_OK &&
        (r->index != index ||
         memcmp(hash, x->tile_buf + (index % KB_MERKLE_TILE_WIDTH) * KB_MERKLE_HASH_LEN, KB_MERKLE_HASH_LEN) != 0))
        x->rc = KB_ECRYPTO;
    if (x->rc != KB_OK) {
        if (r)
            ketenbus__audit_record__free_unpacked(r, NULL);
        if (x->rc == KB_ECRYPTO || x->rc == KB_EPROTO)
            x->rc = kb_error_set(KB_ECRYPTO,
                                 "store: audit record %llu does not match its leaf hash; not pruning (run audit verify)",
                                 (unsigned long long)index);
        return 1;
    }
    uint8_t be[8];
    s_tombstone(x->stone, x->kind, r->time_us, x->now_us, hash);
    x->stoned = 1;
    kb_be64_put(be, index);
    x->count++;
    if (EVP_DigestUpdate(x->digest, be, sizeof be) != 1) {
        ketenbus__audit_record__free_unpacked(r, NULL);
        x->rc = kb_error_set(KB_ECRYPTO, "store: prune: SHA-256 failed");
        return 1;
    }
    /* the lists that lose this index */
    x->rc = s_index_each(x->gone, r, index, s_posting_add);
    /* an anchor may index it under subjects s_index_each leaves out */
    for (size_t i = 0; x->rc == KB_OK && i < r->n_subject_keys; i++)
        if (r->subject_keys[i].len == 32)
            x->rc = s_posting_add(x->gone, KB_INDEX_SUBJECT, r->subject_keys[i].data, 32, index);
    /* remember whom its message is about, for anchors (below): also from
     * records not indexed by subject, since one of them may hold the anchor
     * an earlier prune of the message's first records left */
    for (size_t i = 0; x->rc == KB_OK && r->message_id.len == 16 && i < r->n_subject_keys; i++) {
        if (r->subject_keys[i].len != 32)
            continue;
        if (x->n_about == x->cap_about) {
            size_t cap = x->cap_about ? x->cap_about * 2 : 64;
            s_about_t *p = realloc(x->about, cap * sizeof *p);
            if (!p) {
                x->rc = kb_error_set(KB_ENOMEM, "store: prune: out of memory");
                break;
            }
            x->about = p;
            x->cap_about = cap;
        }
        memcpy(x->about[x->n_about].id, r->message_id.data, 16);
        memcpy(x->about[x->n_about].key, r->subject_keys[i].data, 32);
        x->n_about++;
    }
    ketenbus__audit_record__free_unpacked(r, NULL);
    return x->rc != KB_OK;
}

static int s_first_fn(uint64_t index, void *arg)
{
    *(uint64_t *)arg = index;
    return 1;
}

/* The first record of a message walk that carries a subject key. */
typedef struct {
    kb_store_t *s;         /* the store */
    const uint8_t *key;    /* the subject key */
    uint64_t found;        /* its index, UINT64_MAX: none */
    int rc;                /* read failure */
} s_carrier_t;

static int s_carrier_fn(uint64_t index, void *arg)
{
    s_carrier_t *c = arg;
    uint8_t *val = NULL;
    size_t len = 0;
    int rc = kb_store_audit_raw(c->s, index, &val, &len);
    if (rc != KB_OK) {
        c->rc = rc == KB_ENOTFOUND ? KB_OK : rc;
        return rc != KB_ENOTFOUND;
    }
    Ketenbus__AuditRecord *r = len > 0 && val[0] != 0 ? ketenbus__audit_record__unpack(NULL, len, val) : NULL;
    for (size_t i = 0; r && i < r->n_subject_keys && c->found == UINT64_MAX; i++)
        if (r->subject_keys[i].len == 32 && memcmp(r->subject_keys[i].data, c->key, 32) == 0)
            c->found = index;
    if (r)
        ketenbus__audit_record__free_unpacked(r, NULL);
    free(val);
    return c->found != UINT64_MAX;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int s_cmp_about(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(s_about_t));
}

/* A pruned record may have been the only one that made later records of
 * its message (ROUTED, DELIVERED, ACKNOWLEDGED: not indexed by subject)
 * findable by subject. For each of its subjects, the first record of the
 * message at or after stop that carries it is indexed under it (an
 * anchor), so a subject query still reaches what retention keeps, through
 * the message id. (An acknowledgement names no subjects: once every record
 * of its message that does is pruned, it is found by message and agency.) */
static int s_prune_anchors(s_prune_t *x, kb_batch_t *staged, uint64_t stop)
{
    kb_batch_t *anchors = kb_batch_new();
    if (!anchors)
        return KB_ENOMEM;
    int rc = KB_OK;
    /* each (message, subject) once: a message's records name the same ones */
    if (x->n_about > 1)
        qsort(x->about, x->n_about, sizeof *x->about, s_cmp_about);
    for (size_t i = 0; rc == KB_OK && i < x->n_about; i++) {
        if (i > 0 && memcmp(&x->about[i], &x->about[i - 1], sizeof *x->about) == 0)
            continue;
        uint64_t have = UINT64_MAX;
        s_carrier_t c = {x->s, x->about[i].key, UINT64_MAX, KB_OK};
        rc = kb_store_postings(x->s, KB_INDEX_MESSAGE, x->about[i].id, 16, stop, UINT64_MAX, s_carrier_fn, &c);
        if (rc == KB_OK)
            rc = c.rc;
        uint64_t j = c.found;
        if (rc != KB_OK || j == UINT64_MAX)
            continue;
        rc = kb_store_postings(x->s, KB_INDEX_SUBJECT, x->about[i].key, 32, j, j + 1, s_first_fn, &have);
        if (rc == KB_OK && have != j)
            rc = s_posting_add(anchors, KB_INDEX_SUBJECT, x->about[i].key, 32, j);
    }
    for (size_t i = 0; rc == KB_OK && i < anchors->n_post; i++) {
        s_posting_t *p = &anchors->post[i];
        if (p->prefix_len == 0 || p->n == 0)
            continue;
        qsort(p->idx, p->n, sizeof *p->idx, s_cmp_u64);
        size_t o = 1;
        for (size_t k = 1; k < p->n; k++)
            if (p->idx[k] != p->idx[o - 1])
                p->idx[o++] = p->idx[k];
        /* no stored list ends at idx[o - 1]: such a list would hold it */
        rc = s_put_list(staged->wb, p->prefix, p->prefix_len, p->idx, o);
        staged->n++;
    }
    kb_batch_destroy(&anchors);
    return rc;
}

static int s_has(const uint64_t *idx, size_t n, uint64_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (idx[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && idx[lo] == v;
}

/* Stage the removal of gone[0..n_gone) (ascending) from the stored lists of
 * prefix: a list that holds one of them is rewritten without it under the
 * key of its new last index, or deleted when nothing is left. Lists of
 * other kinds hold disjoint ranges in key order, so the walk ends at the
 * first list that reaches the last of gone; subject lists may interleave
 * (anchors) and are walked to the end of their bucket. */
static int s_prune_postings(kb_store_t *s, kb_batch_t *b, const uint8_t *prefix, size_t pl, const uint64_t *gone,
                            size_t n_gone)
{
    int sorted = prefix[1] != KB_INDEX_SUBJECT;
    uint8_t k[KB_POSTING_KEY_MAX];
    memcpy(k, prefix, pl);
    kb_be64_put(k + pl, gone[0]);
    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
    if (!it)
        return kb_error_set(KB_ENOMEM, "store: iterator");
    int rc = KB_OK;
    for (leveldb_iter_seek(it, (const char *)k, pl + 8); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *ik = leveldb_iter_key(it, &kl);
        if (kl != pl + 8 || memcmp(ik, k, pl) != 0)
            break;
        uint64_t last = kb_be64_get((const uint8_t *)ik + pl);
        const uint8_t *iv = (const uint8_t *)leveldb_iter_value(it, &vl);
        uint64_t *idx;
        size_t n, keep = 0;
        rc = s_list_decode(iv, vl, last, &idx, &n);
        if (rc != KB_OK)
            break;
        for (size_t i = 0; i < n; i++)
            if (!s_has(gone, n_gone, idx[i]))
                idx[keep++] = idx[i];
        if (keep < n) {
            leveldb_writebatch_delete(b->wb, ik, kl);
            b->n++;
            if (keep > 0) {
                rc = s_put_list(b->wb, prefix, pl, idx, keep);
                b->n++;
            }
        }
        free(idx);
        if (rc != KB_OK || (sorted && last >= gone[n_gone - 1]))
            break;
    }
    return s_iter_done(it, rc, "pruning the audit index");
}

/* Stage one block holding records of [x->first, x->end) again, with
 * s_prune_one's tombstones in place of the records it takes; the records
 * around the range stay as they are, and an unchanged block is not
 * staged. */
static int s_prune_block(uint64_t block, kb_ablock_iter_t *bi, void *arg)
{
    s_prune_t *x = arg;
    unsigned slot;
    const uint8_t *rec;
    size_t rl;
    int rc, changed = 0;
    kb_ablock_reset(&x->out);
    while ((rc = kb_ablock_next(bi, &slot, &rec, &rl)) == KB_OK) {
        uint64_t index = block * KB_ABLOCK_RECORDS + slot;
        if (index >= x->first && index < x->end && rl > 0) {
            if (s_prune_one(index, rec, rl, x))
                return 1; /* x->rc says why */
            if (x->stoned) {
                rec = x->stone;
                rl = sizeof x->stone;
                changed = 1;
            }
        }
        if ((rc = kb_ablock_add(&x->out, rec, rl)) != KB_OK)
            return rc;
    }
    if (rc != KB_ENOTFOUND)
        return rc;
    if (changed) {
        s_block_put(x->b->wb, block, &x->out);
        x->b->n++;
    }
    return 0;
}

int kb_store_audit_prune(kb_store_t *s, kb_batch_t *b, int kind, uint64_t end, size_t max, int64_t now_us,
                         kb_store_pruned_t *out)
{
    if (kind != KB_PRUNE_ALL && (kind < 0 || kind >= (int)KB_STORE_KINDS))
        return kb_error_set(KB_EINVAL, "store: no kind %d to prune", kind);
    /* its blocks are read from disk: a second prune before this batch is
     * written would stage them again without the first one's tombstones */
    if (b->pruned)
        return kb_error_set(KB_EINVAL, "store: this batch holds a prune already; write it before the next");
    kb_store_cache_set(s, NULL, NULL);
    s_rblock_drop(s);
    uint64_t first = kb_store_audit_pruned_kind(s, kind);
    kb_store_pruned_t none = {.end = first};
    if (out)
        *out = none;
    uint64_t full = (s->audit_next / KB_MERKLE_TILE_WIDTH) * KB_MERKLE_TILE_WIDTH;
    if (end > full)
        return kb_error_set(KB_EINVAL, "store: cannot prune past record %llu (the newest records stay)",
                            (unsigned long long)full);
    if (end <= first)
        return KB_OK;
    if (end - first > max)
        end = first + max;
    s_prune_t *x = calloc(1, sizeof *x);
    kb_batch_t *staged = kb_batch_new();
    EVP_MD_CTX *digest = EVP_MD_CTX_new();
    if (!x || !staged || !digest || EVP_DigestInit_ex(digest, EVP_sha256(), NULL) != 1) {
        free(x);
        kb_batch_destroy(&staged);
        EVP_MD_CTX_free(digest);
        return kb_error_set(KB_ENOMEM, "store: prune: out of memory");
    }
    x->digest = digest;
    x->s = s;
    x->b = staged;
    x->gone = kb_batch_new();
    x->now_us = now_us;
    x->kind = kind;
    x->expect = first;
    x->first = first;
    x->end = end;
    x->tile = UINT64_MAX;
    int rc = x->gone ? KB_OK : KB_ENOMEM;
    if (rc == KB_OK)
        rc = s_blocks_walk(s, first, end, s_prune_block, x);
    if (rc == KB_OK)
        rc = x->rc;
    if (rc == KB_OK && x->expect != end)
        rc = kb_error_set(KB_ECRYPTO, "store: audit record %llu is missing; not pruning (run audit verify)",
                          (unsigned long long)x->expect);
    for (size_t i = 0; rc == KB_OK && i < x->gone->n_post; i++) {
        const s_posting_t *p = &x->gone->post[i];
        if (p->prefix_len && p->n > 0)
            rc = s_prune_postings(s, staged, p->prefix, p->prefix_len, p->idx, p->n);
    }
    if (rc == KB_OK)
        rc = s_prune_anchors(x, staged, end);
    uint8_t indices_sha256[KB_MERKLE_HASH_LEN];
    if (rc == KB_OK && EVP_DigestFinal_ex(digest, indices_sha256, NULL) != 1)
        rc = kb_error_set(KB_ECRYPTO, "store: prune: SHA-256 failed");
    if (rc == KB_OK) { /* nothing reaches b before this point */
        uint8_t v[8];
        const char key[2] = {kind == KB_PRUNE_ALL ? 'p' : 'r', (char)kind};
        kb_be64_put(v, end);
        kb_batch_put(staged, key, kind == KB_PRUNE_ALL ? 1 : 2, v, sizeof v);
        leveldb_writebatch_append(b->wb, staged->wb);
        b->n += staged->n;
        b->pruned = 1;
        if (kind == KB_PRUNE_ALL)
            s->pruned_end = end;
        else
            s->kind_end[kind] = end;
        if (out) {
            out->end = end;
            out->count = x->count;
            memcpy(out->indices_sha256, indices_sha256, sizeof indices_sha256);
        }
    }
    EVP_MD_CTX_free(digest);
    kb_batch_destroy(&x->gone);
    kb_batch_destroy(&staged);
    kb_ablock_free(&x->out);
    s_rblock_drop(s); /* the anchors read blocks this prune rewrites */
    free(x->about);
    free(x);
    return rc;
}

int kb_store_leaf_hashes(kb_store_t *s, uint64_t from, size_t count, uint8_t *out, size_t *n)
{
    *n = 0;
    uint8_t *tile = malloc(KB_MERKLE_TILE_BYTES);
    if (!tile)
        return kb_error_set(KB_ENOMEM, "store: out of memory");
    int rc = KB_OK;
    while (*n < count) {
        uint64_t i = from + *n;
        uint64_t t = i / KB_MERKLE_TILE_WIDTH;
        size_t off = (size_t)(i % KB_MERKLE_TILE_WIDTH);
        /* read the tile at whatever width it is stored */
        uint8_t k[KB_TILE_KEY_LEN];
        s_tile_key(k, 0, t, 1);
        char *err = NULL;
        size_t vl = 0;
        char *v = leveldb_get(s->db, s->ropts, (const char *)k, sizeof k, &vl, &err);
        if (err) {
            rc = kb_error_set(KB_EIO, "store: read tile: %s", err);
            leveldb_free(err);
            break;
        }
        size_t width = v && vl % KB_MERKLE_HASH_LEN == 0 && vl <= KB_MERKLE_TILE_BYTES ? vl / KB_MERKLE_HASH_LEN : 0;
        if (width > 0)
            memcpy(tile, v, vl);
        leveldb_free(v);
        if (off >= width)
            break;
        size_t take = width - off;
        if (take > count - *n)
            take = count - *n;
        memcpy(out + *n * KB_MERKLE_HASH_LEN, tile + off * KB_MERKLE_HASH_LEN, take * KB_MERKLE_HASH_LEN);
        *n += take;
        if (off + take < KB_MERKLE_TILE_WIDTH)
            break; /* a partial tile ends the stored hashes */
    }
    free(tile);
    return rc;
}

int kb_store_audit_raw(kb_store_t *s, uint64_t index, uint8_t **val, size_t *len)
{
    const uint8_t *v;
    size_t vl;
    *val = NULL;
    *len = 0;
    int rc = s_record_get(s, index, &v, &vl);
    if (rc != KB_OK)
        return rc;
    *val = malloc(vl);
    if (!*val)
        return kb_error_set(KB_ENOMEM, "store: out of memory");
    memcpy(*val, v, vl);
    *len = vl;
    return KB_OK;
}
