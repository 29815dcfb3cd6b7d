/*
 * store.c - LevelDB-backed queues, accepted-id index and audit log.
 *
 * See store.h for the key layout. Per-agency counters are kept in a small
 * open-addressing hash table; they are also persisted (n<agency> next
 * sequence, c<agency> depth) in the same batch as the queue change, so a
 * delivery tag is never reused after a restart, even when a queue drained.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>
#include <openssl/crypto.h>

#include "kb_aead.h"
#include "kb_error.h"
#include "kb_util.h"
#include "store.h"

#define KB_KEY_MAX        96u   /* longest key: prefix + agency + NUL + 16 bytes */
#define KB_AGENCY_SLOTS0  64u   /* initial counter table size (power of two) */

typedef struct {
    char *agency;       /* owned agency id; NULL for an empty slot */
    uint64_t next_seq;  /* next delivery tag to assign */
    uint64_t depth;     /* entries queued */
} s_counter_t;

struct kb_store {
    leveldb_t *db;                 /* the database */
    leveldb_options_t *opts;       /* open options */
    leveldb_readoptions_t *ropts;  /* read options (checksums verified) */
    leveldb_writeoptions_t *wsync; /* synced writes */
    leveldb_writeoptions_t *wfast; /* unsynced writes */
    leveldb_cache_t *cache;        /* block cache */
    leveldb_filterpolicy_t *bloom; /* bloom filter for point lookups */
    uint8_t key[KB_AEAD_KEY_LEN];  /* storage key, wiped on destroy */
    s_counter_t *slots;            /* counter hash table */
    size_t n_slots;                /* its size (power of two) */
    size_t n_used;                 /* slots in use */
    uint64_t audit_next;           /* next audit index */
    char *dir;                     /* database directory */
};

struct kb_batch {
    leveldb_writebatch_t *wb; /* staged operations */
    size_t n;                 /* their count */
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
    s->n_used++;
    return &s->slots[i];
}

static void s_counters_clear(kb_store_t *s)
{
    for (size_t i = 0; i < s->n_slots; i++) {
        free(s->slots[i].agency);
        s->slots[i].agency = NULL;
    }
    s->n_used = 0;
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
    /* the audit log's last key gives its size without a scan */
    const char after = 'a' + 1;
    leveldb_iter_seek(it, &after, 1);
    if (leveldb_iter_valid(it))
        leveldb_iter_prev(it);
    else
        leveldb_iter_seek_to_last(it);
    if (leveldb_iter_valid(it)) {
        size_t kl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl == 9 && k[0] == 'a')
            s->audit_next = kb_be64_get((const uint8_t *)k + 1) + 1;
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err) {
        int rc = kb_error_set(KB_EIO, "store: reading counters: %s", err);
        leveldb_free(err);
        return rc;
    }
    return KB_OK;
}

kb_store_t *kb_store_open(const char *dir, const uint8_t key[32])
{
    kb_store_t *s = calloc(1, sizeof *s);
    if (!s) {
        kb_error_set(KB_ENOMEM, "store: out of memory");
        return NULL;
    }
    memcpy(s->key, key, KB_AEAD_KEY_LEN);
    s->n_slots = KB_AGENCY_SLOTS0;
    s->slots = calloc(s->n_slots, sizeof *s->slots);
    s->dir = strdup(dir);
    if (!s->slots || !s->dir) {
        kb_error_set(KB_ENOMEM, "store: out of memory");
        kb_store_destroy(&s);
        return NULL;
    }
    if (kb_mkdirs(dir, 0700) != KB_OK) {
        kb_store_destroy(&s);
        return NULL;
    }
    s->opts = leveldb_options_create();
    s->ropts = leveldb_readoptions_create();
    s->wsync = leveldb_writeoptions_create();
    s->wfast = leveldb_writeoptions_create();
    s->cache = leveldb_cache_create_lru(8u << 20);
    s->bloom = leveldb_filterpolicy_create_bloom(10);
    leveldb_options_set_create_if_missing(s->opts, 1);
    leveldb_options_set_paranoid_checks(s->opts, 1);
    leveldb_options_set_cache(s->opts, s->cache);
    leveldb_options_set_filter_policy(s->opts, s->bloom);
    leveldb_options_set_write_buffer_size(s->opts, 16u << 20);
    leveldb_readoptions_set_verify_checksums(s->ropts, 1);
    leveldb_writeoptions_set_sync(s->wsync, 1);
    leveldb_writeoptions_set_sync(s->wfast, 0);
    char *err = NULL;
    s->db = leveldb_open(s->opts, dir, &err);
    if (err) {
        kb_error_set(KB_EIO, "store: open %s: %s", dir, err);
        leveldb_free(err);
        kb_store_destroy(&s);
        return NULL;
    }
    if (s_load_counters(s) != KB_OK) {
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
    OPENSSL_cleanse(s->key, sizeof s->key);
    free(s->dir);
    free(s);
    *p = NULL;
}

int kb_store_reload(kb_store_t *s)
{
    return s_load_counters(s);
}

/* ------------------------------------------------------------ batches */

kb_batch_t *kb_batch_new(void)
{
    kb_batch_t *b = calloc(1, sizeof *b);
    if (!b || !(b->wb = leveldb_writebatch_create())) {
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
    leveldb_writebatch_destroy((*p)->wb);
    free(*p);
    *p = NULL;
}

void kb_batch_clear(kb_batch_t *b)
{
    leveldb_writebatch_clear(b->wb);
    b->n = 0;
}

size_t kb_batch_size(const kb_batch_t *b)
{
    return b->n;
}

int kb_store_commit(kb_store_t *s, kb_batch_t *b, int sync)
{
    if (b->n == 0)
        return KB_OK;
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

int kb_store_queue_put(kb_store_t *s, kb_batch_t *b, const char *agency, const Ketenbus__QueueEntry *e,
                       uint64_t *seq)
{
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
    int rc = kb_aead_seal(s->key, k, kl, plain, pl, sealed);
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
    s_put_counter(b, 'n', agency, c->next_seq);
    s_put_counter(b, 'c', agency, c->depth);
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
    s_put_counter(b, 'c', agency, c->depth);
    return KB_OK;
}

int kb_store_queue_scan(kb_store_t *s, const char *agency, uint64_t from, size_t max, kb_queue_fn *fn, void *arg)
{
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
        if (ivl < KB_AEAD_OVERHEAD) {
            bad = kb_error_set(KB_ECRYPTO, "store: %s entry %llu is truncated", agency, (unsigned long long)seq);
            continue;
        }
        size_t pl = ivl - KB_AEAD_OVERHEAD;
        uint8_t *plain = malloc(pl ? pl : 1);
        if (!plain) {
            rc = kb_error_set(KB_ENOMEM, "store: scan: out of memory");
            break;
        }
        if (kb_aead_open(s->key, ik, ikl, iv, ivl, plain) != KB_OK) {
            free(plain);
            bad = kb_error_set(KB_ECRYPTO, "store: %s entry %llu does not decrypt (altered, or another storage key)",
                               agency, (unsigned long long)seq);
            continue;
        }
        Ketenbus__QueueEntry *e = ketenbus__queue_entry__unpack(NULL, pl, plain);
        OPENSSL_cleanse(plain, pl);
        free(plain);
        if (!e) {
            bad = kb_error_set(KB_ECRYPTO, "store: %s entry %llu does not decode", agency, (unsigned long long)seq);
            continue;
        }
        seen++;
        int stop = fn(seq, e, arg);
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

int kb_store_audit_append(kb_store_t *s, kb_batch_t *b, Ketenbus__AuditRecord *r, uint64_t *index)
{
    r->index = s->audit_next;
    size_t len = ketenbus__audit_record__get_packed_size(r);
    uint8_t stackbuf[1024];
    uint8_t *buf = len <= sizeof stackbuf ? stackbuf : malloc(len);
    if (!buf)
        return kb_error_set(KB_ENOMEM, "store: audit: out of memory");
    ketenbus__audit_record__pack(r, buf);
    uint8_t k[9];
    k[0] = 'a';
    kb_be64_put(k + 1, r->index);
    leveldb_writebatch_put(b->wb, (const char *)k, sizeof k, (const char *)buf, len);
    if (buf != stackbuf)
        free(buf);
    b->n++;
    if (index)
        *index = r->index;
    s->audit_next++;
    return KB_OK;
}

uint64_t kb_store_audit_size(const kb_store_t *s)
{
    return s->audit_next;
}

int kb_store_audit_get(kb_store_t *s, uint64_t index, Ketenbus__AuditRecord **out)
{
    uint8_t k[9];
    k[0] = 'a';
    kb_be64_put(k + 1, index);
    char *err = NULL;
    size_t vl = 0;
    char *v = leveldb_get(s->db, s->ropts, (const char *)k, sizeof k, &vl, &err);
    if (err) {
        int rc = kb_error_set(KB_EIO, "store: read: %s", err);
        leveldb_free(err);
        return rc;
    }
    if (!v)
        return kb_error_set(KB_ENOTFOUND, "store: no audit record %llu", (unsigned long long)index);
    *out = ketenbus__audit_record__unpack(NULL, vl, (const uint8_t *)v);
    leveldb_free(v);
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

/* Leaf hashes of the width audit records from leaf tile index: the partial
 * leaf tile, which is not stored (see store.h). */
static int s_tiles_from_audit(kb_store_t *s, uint64_t index, size_t width, uint8_t *buf)
{
    uint64_t first = index * KB_MERKLE_TILE_WIDTH;
    uint8_t k[9];
    k[0] = 'a';
    kb_be64_put(k + 1, first);
    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
    if (!it)
        return kb_error_set(KB_ENOMEM, "store: iterator");
    int rc = KB_OK;
    size_t i = 0;
    leveldb_iter_seek(it, (const char *)k, sizeof k);
    for (; i < width && leveldb_iter_valid(it); i++, leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *ik = leveldb_iter_key(it, &kl);
        const char *iv = leveldb_iter_value(it, &vl);
        if (kl != sizeof k || ik[0] != 'a' || kb_be64_get((const uint8_t *)ik + 1) != first + i)
            break;
        if ((rc = kb_merkle_leaf_hash(iv, vl, buf + i * KB_MERKLE_HASH_LEN)) != KB_OK)
            break;
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err) {
        rc = kb_error_set(KB_EIO, "store: read audit records: %s", err);
        leveldb_free(err);
    } else if (rc == KB_OK && i < width) {
        rc = kb_error_set(KB_ENOTFOUND, "store: audit record %llu is missing (leaf tile %llu)",
                          (unsigned long long)(first + i), (unsigned long long)index);
    }
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
    r->index = s->audit_next;
    size_t len = ketenbus__audit_record__get_packed_size(r);
    uint8_t stackbuf[1024];
    uint8_t *buf = len <= sizeof stackbuf ? stackbuf : malloc(len);
    if (!buf)
        return kb_error_set(KB_ENOMEM, "store: audit: out of memory");
    ketenbus__audit_record__pack(r, buf);
    /* the tree first: it stages nothing when it fails */
    int rc = kb_merkle_append(tree, buf, len, NULL);
    if (rc == KB_OK) {
        uint8_t k[9];
        k[0] = 'a';
        kb_be64_put(k + 1, r->index);
        rc = kb_batch_put(b, k, sizeof k, buf, len);
    }
    if (buf != stackbuf)
        free(buf);
    if (rc != KB_OK)
        return rc;
    if (index)
        *index = r->index;
    s->audit_next++;
    return KB_OK;
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
static int s_checkpoints(kb_store_t *s, kb_checkpoint_fn *fn, void *arg, uint64_t *last_size, char **last,
                         size_t *last_len)
{
    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
    if (!it)
        return kb_error_set(KB_ENOMEM, "store: iterator");
    int rc = KB_ENOTFOUND;
    if (fn) {
        rc = KB_OK;
        for (leveldb_iter_seek(it, "k", 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
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
    return s_checkpoints(s, NULL, NULL, size, note, len);
}

int kb_store_checkpoint_scan(kb_store_t *s, kb_checkpoint_fn *fn, void *arg)
{
    return s_checkpoints(s, fn, arg, NULL, NULL, NULL);
}
