/*
 * audit_block.c - encoding of the audit log's blocks of 16 records (see
 * audit_block.h).
 */
#include <stdlib.h>
#include <string.h>

#include "audit_block.h"
#include "kb_error.h"
#include "kb_util.h"

#define S_VARINT_MAX 10u /* bytes of a 64-bit varint */

void kb_ablock_key(uint8_t k[KB_ABLOCK_KEY_LEN], uint64_t block)
{
    k[0] = KB_ABLOCK_PREFIX;
    kb_be64_put(k + 1, block);
}

int kb_ablock_key_parse(const void *k, size_t kl, uint64_t *block)
{
    const uint8_t *p = k;
    if (kl != KB_ABLOCK_KEY_LEN || p[0] != KB_ABLOCK_PREFIX)
        return 0;
    uint64_t b = kb_be64_get(p + 1);
    if (b > UINT64_MAX / KB_ABLOCK_RECORDS)
        return 0; /* its records' indices would not fit in 64 bits */
    *block = b;
    return 1;
}

void kb_ablock_iter_init(kb_ablock_iter_t *it, const void *val, size_t len)
{
    it->val = val;
    it->len = len;
    it->pos = 0;
    it->slot = 0;
}

int kb_ablock_next(kb_ablock_iter_t *it, unsigned *slot, const uint8_t **rec, size_t *rlen)
{
    if (it->pos >= it->len)
        return KB_ENOTFOUND;
    if (it->slot >= KB_ABLOCK_RECORDS)
        return kb_error_set(KB_EPROTO, "store: audit block has more than %u records", KB_ABLOCK_RECORDS);
    uint64_t n = 0;
    size_t p = it->pos;
    for (unsigned shift = 0;; shift += 7) {
        if (p >= it->len || shift > 63)
            return kb_error_set(KB_EPROTO, "store: audit block: length of record %u cut off", it->slot);
        uint8_t c = it->val[p++];
        n |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            break;
    }
    if (n > it->len - p)
        return kb_error_set(KB_EPROTO, "store: audit block: record %u runs past the block's end", it->slot);
    *slot = it->slot++;
    *rec = it->val + p;
    *rlen = (size_t)n;
    it->pos = p + (size_t)n;
    return KB_OK;
}

int kb_ablock_slot(const void *val, size_t len, unsigned slot, const uint8_t **rec, size_t *rlen)
{
    kb_ablock_iter_t it;
    kb_ablock_iter_init(&it, val, len);
    for (;;) {
        unsigned at;
        int rc = kb_ablock_next(&it, &at, rec, rlen);
        if (rc != KB_OK || at == slot)
            return rc;
    }
}

static int s_reserve(kb_ablock_buf_t *b, size_t more)
{
    if (b->len + more <= b->cap)
        return KB_OK;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->buf, cap);
    if (!p)
        return kb_error_set(KB_ENOMEM, "store: audit block: out of memory");
    b->buf = p;
    b->cap = cap;
    return KB_OK;
}

int kb_ablock_add(kb_ablock_buf_t *b, const void *rec, size_t len)
{
    if (b->n >= KB_ABLOCK_RECORDS)
        return kb_error_set(KB_EINVAL, "store: audit block is full");
    if (s_reserve(b, S_VARINT_MAX + len) != KB_OK)
        return KB_ENOMEM;
    uint64_t v = len;
    while (v >= 0x80) {
        b->buf[b->len++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->buf[b->len++] = (uint8_t)v;
    if (len)
        memcpy(b->buf + b->len, rec, len);
    b->len += len;
    b->n++;
    return KB_OK;
}

int kb_ablock_load(kb_ablock_buf_t *b, const void *val, size_t len)
{
    kb_ablock_reset(b);
    kb_ablock_iter_t it;
    unsigned slot;
    const uint8_t *rec;
    size_t rl;
    int rc;
    kb_ablock_iter_init(&it, val, len);
    while ((rc = kb_ablock_next(&it, &slot, &rec, &rl)) == KB_OK)
        ;
    if (s_reserve(b, it.pos) != KB_OK)
        return KB_ENOMEM;
    if (it.pos)
        memcpy(b->buf, val, it.pos); /* the slots that decode */
    b->len = it.pos;
    b->n = it.slot;
    return rc == KB_ENOTFOUND ? KB_OK : rc;
}

void kb_ablock_reset(kb_ablock_buf_t *b)
{
    b->len = 0;
    b->n = 0;
}

void kb_ablock_free(kb_ablock_buf_t *b)
{
    free(b->buf);
    memset(b, 0, sizeof *b);
}

int kb_ablock_replace(kb_ablock_buf_t *out, const void *val, size_t len, unsigned slot, const void *rec,
                      size_t rlen)
{
    if (slot >= KB_ABLOCK_RECORDS)
        return kb_error_set(KB_EINVAL, "store: audit block has no slot %u", slot);
    kb_ablock_reset(out);
    kb_ablock_iter_t it;
    kb_ablock_iter_init(&it, val, len);
    size_t ends[KB_ABLOCK_RECORDS]; /* out->len after each slot */
    int rc = KB_OK;
    for (;;) {
        unsigned at;
        const uint8_t *r;
        size_t rl;
        rc = kb_ablock_next(&it, &at, &r, &rl);
        if (rc != KB_OK)
            break;
        rc = at == slot ? kb_ablock_add(out, rec, rlen) : kb_ablock_add(out, r, rl);
        if (rc != KB_OK)
            return rc;
        ends[at] = out->len;
    }
    if (rc != KB_ENOTFOUND)
        return rc;
    while (out->n <= slot) {
        rc = out->n == slot ? kb_ablock_add(out, rec, rlen) : kb_ablock_add(out, NULL, 0);
        if (rc != KB_OK)
            return rc;
        ends[out->n - 1] = out->len;
    }
    /* the block ends at its last record */
    while (out->n > 0 && ends[out->n - 1] == (out->n >= 2 ? ends[out->n - 2] : 0) + 1) {
        out->n--;
        out->len = out->n ? ends[out->n - 1] : 0;
    }
    return KB_OK;
}
