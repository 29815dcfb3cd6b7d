/*
 * outbox.c - the SDK's durable state: unsent submissions and seen messages.
 *
 * Keys in the agency-side LevelDB (state_dir/state.ldb):
 *   h                      seen records acknowledged before this time (u64
 *                          us) may have been deleted (kb_outbox_oldest_us)
 *   o<seq:8>               a signed, packed envelope waiting for its receipt
 *   r<sender>\0<id:16>     a delivered message the agency acknowledged
 *                          (value: the time of the acknowledgement, u64 us)
 *   s<id:16>               the same as earlier versions of the SDK wrote it,
 *                          without the sender: no longer read (kb_outbox_seen),
 *                          deleted by kb_outbox_prune_seen
 *   t                      the broker's message TTL as this state last heard it,
 *                          and a longer one still in force (kb_outbox_set_ttl)
 * Seen messages are keyed by sender and id, as the broker keeps accepted
 * ids (d<sender>\0<id:16> in broker/store.h): senders may choose their ids,
 * so two agencies may send different messages under one id.
 * A submission is written with a synced write before the SDK sends it, so a
 * crash of the agency's system or a broker outage loses nothing; the entry
 * goes when the broker's receipt arrives, unless the broker refused it only
 * for now (REJECT_INTERNAL): then it stays, marked in memory to be sent
 * again. Unsent entries are kept in memory too (the backlog is small and
 * bounded by KB_OUTBOX_MAX_ENTRIES).
 * A seen record matters while the broker may deliver the message again,
 * which it does only while the message is queued: at most its message TTL
 * after the acknowledgement (the broker accepted it before). It also
 * matters while the message could be replayed, by a broker or whoever
 * holds its key, as one never seen: the SDK refuses deliveries created
 * before kb_outbox_oldest_us, and a genuine one may be up to twice the TTL
 * old (accepted by the broker until a TTL after it was created, then
 * queued for as long). So records are kept twice the TTL and a margin
 * after the acknowledgement; kb_outbox_prune_seen deletes older ones a
 * bounded step at a time, going on from where the last step stopped, and
 * remembers (the h record) how recent the newest it deleted was, since a
 * longer TTL told later does not bring them back.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>

#include "kb_error.h"
#include "kb_util.h"
#include "sdk_internal.h"

/* The longest key of a seen record: r<sender>\0<id:16>. */
#define KB_SEEN_KEY_MAX (1 + KB_AGENCY_ID_MAX + 1 + KB_ID_LEN)

struct kb_outbox {
    leveldb_t *db;                 /* the state database */
    leveldb_options_t *opts;       /* open options */
    leveldb_readoptions_t *ropts;  /* read options */
    leveldb_writeoptions_t *wsync; /* synced writes */
    leveldb_writeoptions_t *wfast; /* unsynced writes (removals) */
    kb_outbox_entry_t *items;      /* unsent entries in order, from items[head] */
    size_t head;                   /* first live entry (receipts mostly come in order) */
    size_t n;                      /* live entries: items[head .. head + n) */
    size_t cap;                    /* allocated */
    uint64_t next_seq;             /* next outbox sequence */
    int64_t ttl_us;                /* the broker's message TTL as last heard (0: never told) */
    int64_t old_ttl_us;            /* a longer TTL heard before, still in force until old_until_us */
    int64_t old_until_us;          /* when the last message queued under old_ttl_us has expired */
    int64_t gone_before_us;        /* seen records acknowledged before this may be deleted (0: none) */
    uint8_t cursor[KB_SEEN_KEY_MAX]; /* the key the next pruning step starts at */
    size_t cursor_len;             /* its length; 0: at the start of a pass */
};

/* The state key of the TTLs (the t record): ttl, old ttl, old until, each
 * a big-endian u64. */
#define KB_TTL_KEY     "t"
#define KB_TTL_VAL_LEN 24u

/* The state key of gone_before_us (the h record), a big-endian u64. */
#define KB_GONE_KEY     "h"
#define KB_GONE_VAL_LEN 8u

/* Room for n more entries at the end of items. */
static int s_reserve(kb_outbox_t *o, size_t n)
{
    if (o->head > 0 && o->head + o->n + n > o->cap) {
        /* reuse the room that in-order removals left at the front */
        memmove(o->items, o->items + o->head, o->n * sizeof *o->items);
        o->head = 0;
    }
    if (o->head + o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap < o->n + n)
            cap *= 2;
        kb_outbox_entry_t *p = realloc(o->items, cap * sizeof *p);
        if (!p)
            return kb_error_set(KB_ENOMEM, "outbox: out of memory");
        o->items = p;
        o->cap = cap;
    }
    return KB_OK;
}

static int s_append(kb_outbox_t *o, uint64_t seq, const uint8_t id[16], const uint8_t *bytes, size_t len)
{
    if (s_reserve(o, 1) != KB_OK)
        return KB_ENOMEM;
    kb_outbox_entry_t *e = &o->items[o->head + o->n];
    e->bytes = malloc(len ? len : 1);
    if (!e->bytes)
        return kb_error_set(KB_ENOMEM, "outbox: out of memory");
    memcpy(e->bytes, bytes, len);
    e->len = len;
    e->seq = seq;
    memcpy(e->id, id, 16);
    e->retry = 0;
    o->n++;
    return KB_OK;
}

static int s_load(kb_outbox_t *o)
{
    leveldb_iterator_t *it = leveldb_create_iterator(o->db, o->ropts);
    if (!it)
        return kb_error_set(KB_ENOMEM, "outbox: iterator");
    int rc = KB_OK;
    for (leveldb_iter_seek(it, "o", 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl != 9 || k[0] != 'o')
            break;
        const uint8_t *v = (const uint8_t *)leveldb_iter_value(it, &vl);
        Ketenbus__Envelope *e = ketenbus__envelope__unpack(NULL, vl, v);
        if (!e || e->message_id.len != 16) {
            /* never silently drop a submission: refuse to start instead */
            if (e)
                ketenbus__envelope__free_unpacked(e, NULL);
            rc = kb_error_set(KB_EIO, "outbox: entry %llu is unreadable",
                              (unsigned long long)kb_be64_get((const uint8_t *)k + 1));
            break;
        }
        uint64_t seq = kb_be64_get((const uint8_t *)k + 1);
        rc = s_append(o, seq, e->message_id.data, v, vl);
        ketenbus__envelope__free_unpacked(e, NULL);
        if (rc != KB_OK)
            break;
        o->next_seq = seq + 1;
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err) {
        rc = kb_error_set(KB_EIO, "outbox: read: %s", err);
        leveldb_free(err);
    }
    return rc;
}

static int64_t s_ttl_clamp(uint64_t v)
{
    return v > (uint64_t)KB_SEEN_TTL_MAX_US ? KB_SEEN_TTL_MAX_US : (int64_t)v;
}

/* Read the t record. One that is not 24 bytes was not written by this SDK:
 * it is taken as never told, and the next WELCOME writes it anew. */
static int s_load_ttl(kb_outbox_t *o)
{
    char *err = NULL;
    size_t vl;
    char *v = leveldb_get(o->db, o->ropts, KB_TTL_KEY, 1, &vl, &err);
    if (err) {
        int rc = kb_error_set(KB_EIO, "outbox: read the message TTL: %s", err);
        leveldb_free(err);
        return rc;
    }
    if (v && vl == KB_TTL_VAL_LEN) {
        const uint8_t *u = (const uint8_t *)v;
        o->ttl_us = s_ttl_clamp(kb_be64_get(u));
        o->old_ttl_us = s_ttl_clamp(kb_be64_get(u + 8));
        uint64_t until = kb_be64_get(u + 16);
        o->old_until_us = until > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)until;
    }
    leveldb_free(v);
    return KB_OK;
}

/* Read the h record. The SDK writes it with the deletions it accounts for,
 * in one batch; one of another length is not its own and is ignored. */
static int s_load_gone(kb_outbox_t *o)
{
    char *err = NULL;
    size_t vl;
    char *v = leveldb_get(o->db, o->ropts, KB_GONE_KEY, 1, &vl, &err);
    if (err) {
        int rc = kb_error_set(KB_EIO, "outbox: read what seen records were deleted: %s", err);
        leveldb_free(err);
        return rc;
    }
    if (v && vl == KB_GONE_VAL_LEN) {
        uint64_t t = kb_be64_get((const uint8_t *)v);
        o->gone_before_us = t > (uint64_t)(INT64_MAX - KB_SEEN_AHEAD_US) ? INT64_MAX - KB_SEEN_AHEAD_US : (int64_t)t;
    }
    leveldb_free(v);
    return KB_OK;
}

kb_outbox_t *kb_outbox_open(const char *dir)
{
    kb_outbox_t *o = calloc(1, sizeof *o);
    if (!o) {
        kb_error_set(KB_ENOMEM, "outbox: out of memory");
        return NULL;
    }
    char path[PATH_MAX];
    if (kb_mkdirs(dir, 0700) != KB_OK)
        goto fail;
    if (kb_fmt(path, sizeof path, "%s/state.ldb", dir) != KB_OK) {
        kb_error_set(KB_ETOOBIG, "outbox: path too long: %s", dir);
        goto fail;
    }
    o->opts = leveldb_options_create();
    o->ropts = leveldb_readoptions_create();
    o->wsync = leveldb_writeoptions_create();
    o->wfast = leveldb_writeoptions_create();
    leveldb_options_set_create_if_missing(o->opts, 1);
    leveldb_options_set_paranoid_checks(o->opts, 1);
    leveldb_readoptions_set_verify_checksums(o->ropts, 1);
    leveldb_writeoptions_set_sync(o->wsync, 1);
    char *err = NULL;
    o->db = leveldb_open(o->opts, path, &err);
    if (err) {
        kb_error_set(KB_EIO, "outbox: open %s: %s", path, err);
        leveldb_free(err);
        goto fail;
    }
    if (s_load(o) != KB_OK || s_load_ttl(o) != KB_OK || s_load_gone(o) != KB_OK)
        goto fail;
    return o;
fail:
    kb_outbox_destroy(&o);
    return NULL;
}

void kb_outbox_destroy(kb_outbox_t **p)
{
    if (!p || !*p)
        return;
    kb_outbox_t *o = *p;
    if (o->db)
        leveldb_close(o->db);
    if (o->opts)
        leveldb_options_destroy(o->opts);
    if (o->ropts)
        leveldb_readoptions_destroy(o->ropts);
    if (o->wsync)
        leveldb_writeoptions_destroy(o->wsync);
    if (o->wfast)
        leveldb_writeoptions_destroy(o->wfast);
    for (size_t i = 0; i < o->n; i++)
        free(o->items[o->head + i].bytes);
    free(o->items);
    free(o);
    *p = NULL;
}

int kb_outbox_put(kb_outbox_t *o, const uint8_t id[16], const uint8_t *bytes, size_t len)
{
    kb_outbox_entry_t in = {.seq = 0, .bytes = (uint8_t *)bytes, .len = len};
    memcpy(in.id, id, 16);
    return kb_outbox_put_batch(o, &in, 1);
}

int kb_outbox_put_batch(kb_outbox_t *o, const kb_outbox_entry_t *in, size_t n)
{
    if (n == 0)
        return KB_OK;
    if (n > KB_OUTBOX_MAX_ENTRIES - o->n)
        return kb_error_set(KB_ETOOBIG, "outbox: %zu messages wait already; is the broker reachable?", o->n);
    /* everything that can fail in memory fails before the write */
    if (s_reserve(o, n) != KB_OK)
        return KB_ENOMEM;
    kb_outbox_entry_t *slot = &o->items[o->head + o->n];
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    size_t made = 0;
    int rc = KB_OK;
    for (; made < n; made++) {
        slot[made].bytes = malloc(in[made].len ? in[made].len : 1);
        if (!slot[made].bytes) {
            rc = kb_error_set(KB_ENOMEM, "outbox: out of memory");
            break;
        }
        memcpy(slot[made].bytes, in[made].bytes, in[made].len);
        slot[made].len = in[made].len;
        slot[made].seq = o->next_seq + made;
        memcpy(slot[made].id, in[made].id, 16);
        slot[made].retry = 0;
        uint8_t k[9];
        k[0] = 'o';
        kb_be64_put(k + 1, slot[made].seq);
        leveldb_writebatch_put(b, (const char *)k, sizeof k, (const char *)in[made].bytes, in[made].len);
    }
    if (rc == KB_OK) {
        char *err = NULL;
        leveldb_write(o->db, o->wsync, b, &err); /* one synced write for all n */
        if (err) {
            rc = kb_error_set(KB_EIO, "outbox: write: %s", err);
            leveldb_free(err);
        }
    }
    leveldb_writebatch_destroy(b);
    if (rc != KB_OK) {
        for (size_t i = 0; i < made; i++)
            free(slot[i].bytes);
        return rc;
    }
    o->n += n;
    o->next_seq += n;
    return KB_OK;
}

int kb_outbox_remove(kb_outbox_t *o, const uint8_t id[16])
{
    for (size_t k = 0; k < o->n; k++) {
        kb_outbox_entry_t *e = &o->items[o->head + k];
        if (memcmp(e->id, id, 16) != 0)
            continue;
        uint8_t key[9];
        key[0] = 'o';
        kb_be64_put(key + 1, e->seq);
        char *err = NULL;
        /* unsynced: if lost in a crash the entry is sent again and the
         * broker answers DUPLICATE, which removes it then */
        leveldb_delete(o->db, o->wfast, (const char *)key, sizeof key, &err);
        if (err) {
            int rc = kb_error_set(KB_EIO, "outbox: delete: %s", err);
            leveldb_free(err);
            return rc;
        }
        free(e->bytes);
        if (k == 0) {
            o->head++; /* the usual case: receipts arrive in order */
        } else {
            memmove(e, e + 1, (o->n - k - 1) * sizeof *e);
        }
        o->n--;
        if (o->n == 0)
            o->head = 0;
        return KB_OK;
    }
    return KB_ENOTFOUND;
}

int kb_outbox_mark_retry(kb_outbox_t *o, const uint8_t id[16])
{
    for (size_t k = 0; k < o->n; k++) {
        kb_outbox_entry_t *e = &o->items[o->head + k];
        if (memcmp(e->id, id, 16) == 0) {
            e->retry = 1;
            return KB_OK;
        }
    }
    return KB_ENOTFOUND;
}

int kb_outbox_take_retry(kb_outbox_t *o, size_t i)
{
    if (i >= o->n)
        return 0;
    kb_outbox_entry_t *e = &o->items[o->head + i];
    int marked = e->retry;
    e->retry = 0;
    return marked;
}

size_t kb_outbox_size(const kb_outbox_t *o)
{
    return o->n;
}

const kb_outbox_entry_t *kb_outbox_at(const kb_outbox_t *o, size_t i)
{
    return i < o->n ? &o->items[o->head + i] : NULL;
}

size_t kb_outbox_index_from(const kb_outbox_t *o, uint64_t seq)
{
    size_t lo = 0, hi = o->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->items[o->head + mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int kb_outbox_seen_key(kb_seen_key_t *k, const Ketenbus__Envelope *e)
{
    if (e->message_id.len != KB_ID_LEN)
        return kb_error_set(KB_EPROTO, "delivery: message id of %zu bytes", e->message_id.len);
    const char *sender = e->sender ? e->sender : "";
    size_t len = strnlen(sender, KB_AGENCY_ID_MAX + 1);
    if (len > KB_AGENCY_ID_MAX)
        return kb_error_set(KB_EPROTO, "delivery: sender longer than %u bytes", KB_AGENCY_ID_MAX);
    memcpy(k->sender, sender, len);
    k->sender[len] = '\0';
    memcpy(k->id, e->message_id.data, KB_ID_LEN);
    return KB_OK;
}

/* The LevelDB key of a seen message: r<sender>\0<id:16>. An agency id holds
 * no NUL, so the key names one (sender, id). */
static size_t s_seen_key(uint8_t out[KB_SEEN_KEY_MAX], const kb_seen_key_t *k)
{
    size_t len = strnlen(k->sender, KB_AGENCY_ID_MAX);
    out[0] = 'r';
    memcpy(out + 1, k->sender, len);
    out[1 + len] = '\0';
    memcpy(out + 2 + len, k->id, KB_ID_LEN);
    return 2 + len + KB_ID_LEN;
}

/* Entries s<id:16> that earlier versions of the SDK wrote are not read: they do not
 * say who sent the message, and taking one for a match would drop another
 * agency's message that reuses the id, for good. Without them, a message
 * acknowledged under the old key whose acknowledgement never reached the
 * broker is handed to the adapter once more after the upgrade: a
 * duplicate, which the agency can recognise, instead of a loss, which
 * nobody sees. They are never read, and kb_outbox_prune_seen deletes them. */
int kb_outbox_seen(kb_outbox_t *o, const kb_seen_key_t *k)
{
    uint8_t key[KB_SEEN_KEY_MAX];
    size_t key_len = s_seen_key(key, k);
    char *err = NULL;
    size_t vl;
    char *v = leveldb_get(o->db, o->ropts, (const char *)key, key_len, &vl, &err);
    if (err) {
        leveldb_free(err);
        return 0;
    }
    if (v) {
        leveldb_free(v);
        return 1;
    }
    return 0;
}

int kb_outbox_mark_seen(kb_outbox_t *o, const kb_seen_key_t *keys, size_t n)
{
    if (n == 0)
        return KB_OK;
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    uint8_t now[8];
    kb_be64_put(now, (uint64_t)kb_now_us());
    for (size_t i = 0; i < n; i++) {
        uint8_t key[KB_SEEN_KEY_MAX];
        size_t key_len = s_seen_key(key, &keys[i]);
        leveldb_writebatch_put(wb, (const char *)key, key_len, (const char *)now, sizeof now);
    }
    char *err = NULL;
    leveldb_write(o->db, o->wsync, wb, &err);
    leveldb_writebatch_destroy(wb);
    if (err) {
        int rc = kb_error_set(KB_EIO, "outbox: write: %s", err);
        leveldb_free(err);
        return rc;
    }
    return KB_OK;
}

int kb_outbox_set_ttl(kb_outbox_t *o, uint64_t told_us, int64_t now_us)
{
    if (told_us == 0)
        return KB_OK;
    int64_t ttl = s_ttl_clamp(told_us);
    int64_t old = o->old_ttl_us, until = o->old_until_us;
    if (old != 0 && now_us >= until)
        old = until = 0; /* everything queued under it has expired */
    if (o->ttl_us > ttl) {
        /* The broker took the shorter TTL (a reload) before this WELCOME;
         * what it queued under the longer one may wait until now plus that. */
        int64_t lapse = now_us > INT64_MAX - o->ttl_us ? INT64_MAX : now_us + o->ttl_us;
        if (o->ttl_us > old)
            old = o->ttl_us;
        if (lapse > until)
            until = lapse;
    }
    if (old <= ttl)
        old = until = 0; /* the TTL in force covers it */
    if (ttl == o->ttl_us && old == o->old_ttl_us && until == o->old_until_us)
        return KB_OK;
    uint8_t v[KB_TTL_VAL_LEN];
    kb_be64_put(v, (uint64_t)ttl);
    kb_be64_put(v + 8, (uint64_t)old);
    kb_be64_put(v + 16, (uint64_t)until);
    char *err = NULL;
    /* synced: pruning with a shorter TTL than the one remembered here could
     * take records the broker may still need */
    leveldb_put(o->db, o->wsync, KB_TTL_KEY, 1, (const char *)v, sizeof v, &err);
    if (err) {
        int rc = kb_error_set(KB_EIO, "outbox: write the message TTL: %s", err);
        leveldb_free(err);
        return rc;
    }
    o->ttl_us = ttl;
    o->old_ttl_us = old;
    o->old_until_us = until;
    return KB_OK;
}

int64_t kb_outbox_keep_us(const kb_outbox_t *o, int64_t now_us)
{
    if (o->old_ttl_us > o->ttl_us && now_us < o->old_until_us)
        return o->old_ttl_us;
    return o->ttl_us;
}

/* Seen records acknowledged before this go at now_us, for a TTL of keep
 * (> 0, clamped: no overflow). */
static int64_t s_seen_cutoff(int64_t now_us, int64_t keep)
{
    return now_us - 2 * keep - KB_SEEN_MARGIN_US;
}

int64_t kb_outbox_oldest_us(const kb_outbox_t *o, int64_t now_us)
{
    int64_t keep = kb_outbox_keep_us(o, now_us);
    int64_t oldest = keep > 0 ? s_seen_cutoff(now_us, keep) : INT64_MIN;
    /* a message acknowledged here was created at most KB_SEEN_AHEAD_US
     * after its acknowledgement (later ones are refused), so one created
     * from gone_before_us + that on has its record still */
    if (o->gone_before_us > 0 && o->gone_before_us + KB_SEEN_AHEAD_US > oldest)
        oldest = o->gone_before_us + KB_SEEN_AHEAD_US;
    return oldest;
}

/* 1 for a seen record of the shape s_seen_key writes: r, a sender of at
 * most KB_AGENCY_ID_MAX bytes without NUL, NUL, 16 id bytes, and an 8-byte
 * time as its value. */
static int s_seen_record(const char *k, size_t kl, size_t vl)
{
    if (kl < 2 + KB_ID_LEN || kl > KB_SEEN_KEY_MAX || k[0] != 'r' || vl != 8)
        return 0;
    return memchr(k + 1, '\0', kl - 1 - KB_ID_LEN) == k + kl - 1 - KB_ID_LEN;
}

int kb_outbox_prune_seen(kb_outbox_t *o, int64_t now_us, size_t max, size_t *removed, int *done)
{
    *removed = 0;
    *done = 1;
    int64_t keep = kb_outbox_keep_us(o, now_us);
    if (keep <= 0) {
        o->cursor_len = 0;
        return KB_OK; /* never told how long the broker keeps messages: keep all */
    }
    int64_t before = s_seen_cutoff(now_us, keep);
    if (max < 2)
        max = 2; /* a step must get past a cursor shortened from a long key (below) */
    leveldb_iterator_t *it = leveldb_create_iterator(o->db, o->ropts);
    if (!it)
        return kb_error_set(KB_ENOMEM, "outbox: iterator");
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    if (o->cursor_len > 0)
        leveldb_iter_seek(it, (const char *)o->cursor, o->cursor_len);
    else
        leveldb_iter_seek(it, "r", 1);
    size_t looked = 0, gone = 0;
    int64_t gone_before = o->gone_before_us; /* after the deletions below */
    for (; leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl == 0 || (uint8_t)k[0] > 's')
            break; /* past the seen records: the pass is over */
        if (looked == max) {
            /* go on from here next time; a key longer than any this SDK
             * writes is cut, which seeks to at most one record before it */
            o->cursor_len = kl < sizeof o->cursor ? kl : sizeof o->cursor;
            memcpy(o->cursor, k, o->cursor_len);
            *done = 0;
            break;
        }
        looked++;
        const char *v = leveldb_iter_value(it, &vl);
        /* s<id:16> records are never read (kb_outbox_seen). A record that
         * cannot be dated is not one this SDK wrote; it goes too: at worst
         * a message comes twice, which the agency sees, where keeping
         * unreadable records would grow the state for good. */
        int dated = s_seen_record(k, kl, vl);
        int64_t acked = dated ? (int64_t)kb_be64_get((const uint8_t *)v) : 0;
        if (!dated || acked < before) {
            leveldb_writebatch_delete(wb, k, kl);
            gone++;
            if (dated && acked >= gone_before)
                gone_before = acked + 1; /* acked < before: no overflow */
        }
    }
    if (*done)
        o->cursor_len = 0;
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    int rc = KB_OK;
    if (err) {
        rc = kb_error_set(KB_EIO, "outbox: read seen records: %s", err);
        leveldb_free(err);
        o->cursor_len = 0;
        *done = 1;
    } else if (gone > 0) {
        /* in the same batch as the deletions it accounts for */
        uint8_t h[KB_GONE_VAL_LEN];
        kb_be64_put(h, (uint64_t)gone_before);
        if (gone_before != o->gone_before_us)
            leveldb_writebatch_put(wb, KB_GONE_KEY, 1, (const char *)h, sizeof h);
        /* unsynced: a removal lost in a crash is made again by the next
         * pass (a batch is lost or kept whole) */
        leveldb_write(o->db, o->wfast, wb, &err);
        if (err) {
            rc = kb_error_set(KB_EIO, "outbox: delete seen records: %s", err);
            leveldb_free(err);
            o->cursor_len = 0; /* the next pass starts over */
            *done = 1;
        } else {
            *removed = gone;
            o->gone_before_us = gone_before;
        }
    }
    leveldb_writebatch_destroy(wb);
    return rc;
}
