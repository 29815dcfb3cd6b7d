/*
 * verify_pruned.c - matching tombstones with PRUNED records (see
 * verify_pruned.h).
 *
 * Per claim (the kinds, and every kind in the last slot) a queue of the
 * tombstones met and not yet declared, ascending. A PRUNED record takes the
 * front of its claim's queue up to its end. Memory is an index and a time
 * (16 bytes) per tombstone awaiting its PRUNED record.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_util.h"
#include "store.h"
#include "verify_pruned.h"

#define S_CLAIMS (KB_STORE_KINDS + 1u) /* the kinds, then every kind */
#define S_ALL    KB_STORE_KINDS       /* slot of the every-kind claim */

/* A tombstone awaiting its declaration. */
typedef struct {
    uint64_t index;  /* where it is */
    int64_t time_us; /* the time it keeps */
} s_stone_t;

/* Tombstones of one claim awaiting their declaration. */
typedef struct {
    s_stone_t *idx; /* idx[head..n) are waiting */
    size_t head;    /* first waiting */
    size_t n;       /* end of the waiting ones */
    size_t cap;     /* allocated */
} s_queue_t;

struct kb_pruned_check {
    s_queue_t q[S_CLAIMS];  /* per claim */
    int has_decl;           /* a PRUNED record declared tombstones */
    uint64_t last_decl;     /* the last one that did */
};

static size_t s_slot(int claim)
{
    return claim == KB_PRUNE_ALL || claim < 0 || claim >= (int)KB_STORE_KINDS ? S_ALL : (size_t)claim;
}

kb_pruned_check_t *kb_pruned_check_new(void)
{
    kb_pruned_check_t *c = calloc(1, sizeof *c);
    if (!c)
        kb_error_set(KB_ENOMEM, "out of memory");
    return c;
}

void kb_pruned_check_destroy(kb_pruned_check_t **p)
{
    if (!p || !*p)
        return;
    for (size_t i = 0; i < S_CLAIMS; i++)
        free((*p)->q[i].idx);
    free(*p);
    *p = NULL;
}

int kb_pruned_check_stone(kb_pruned_check_t *c, uint64_t index, int claim, int64_t time_us)
{
    s_queue_t *q = &c->q[s_slot(claim)];
    if (q->n == q->cap) {
        if (q->head > q->n / 2) { /* reuse the taken front */
            memmove(q->idx, q->idx + q->head, (q->n - q->head) * sizeof *q->idx);
            q->n -= q->head;
            q->head = 0;
        } else {
            size_t cap = q->cap ? q->cap * 2 : 1024;
            s_stone_t *idx = realloc(q->idx, cap * sizeof *idx);
            if (!idx)
                return kb_error_set(KB_ENOMEM, "out of memory");
            q->idx = idx;
            q->cap = cap;
        }
    }
    q->idx[q->n].index = index;
    q->idx[q->n].time_us = time_us;
    q->n++;
    return KB_OK;
}

static const char *s_claim_name(int claim)
{
    if (claim == KB_PRUNE_ALL)
        return "every kind";
    return claim == 0 ? "other" : kb_kind_name(claim);
}

int kb_pruned_check_record(kb_pruned_check_t *c, uint64_t index, const Ketenbus__AuditRecord *r, char *why,
                           size_t why_len, uint64_t *bad)
{
    const Ketenbus__Pruning *p = r->pruning;
    int claim = !p || p->all_kinds ? KB_PRUNE_ALL : (int)p->kind;
    s_queue_t *q = &c->q[s_slot(claim)];
    uint64_t end = r->tag, first = p ? p->first : 0;
    /* take the waiting tombstones of the claim below its end */
    size_t from = q->head;
    while (q->head < q->n && q->idx[q->head].index < end)
        q->head++;
    size_t taken = q->head - from;
    if (taken > 0) {
        c->has_decl = 1;
        c->last_decl = index;
    }
    if (!p)
        return KB_OK; /* the older form: every tombstone below tag */
    if (p->all_kinds == 0 && ((int)p->kind < 0 || (int)p->kind >= (int)KB_STORE_KINDS)) {
        snprintf(why, why_len, "PRUNED record %" PRIu64 " names no kind that can be pruned (%d)", index, (int)p->kind);
        *bad = index;
        return KB_ECRYPTO;
    }
    if (taken > 0 && q->idx[from].index < first) {
        snprintf(why, why_len,
                 "record %" PRIu64 " was replaced by a tombstone (%s) that no PRUNED record declares: the pruning "
                 "at %" PRIu64 " began at %" PRIu64,
                 q->idx[from].index, s_claim_name(claim), index, first);
        *bad = q->idx[from].index;
        return KB_ECRYPTO;
    }
    uint8_t digest[32];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (size_t i = from; ok && i < q->head; i++) {
        uint8_t be[8];
        kb_be64_put(be, q->idx[i].index);
        ok = EVP_DigestUpdate(md, be, sizeof be) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(md, digest, NULL) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return kb_error_set(KB_ENOMEM, "SHA-256 failed");
    if (taken != p->count || p->indices_sha256.len != sizeof digest ||
        CRYPTO_memcmp(digest, p->indices_sha256.data, sizeof digest) != 0) {
        snprintf(why, why_len,
                 "PRUNED record %" PRIu64 " declares %" PRIu64 " tombstones (%s) in [%" PRIu64 ", %" PRIu64
                 "), but %zu %s there%s: a record was hidden as a tombstone, or a pruned one put back",
                 index, (uint64_t)p->count, s_claim_name(claim), first, end, taken, taken == 1 ? "is" : "are",
                 taken == p->count ? " at other places" : "");
        *bad = taken > 0 ? q->idx[from].index : index;
        return KB_ECRYPTO;
    }
    /* A tombstone keeps its record's time, which no hash covers; the
     * pruning took only records older than its cut-off (0: the PRUNED
     * record does not say). A later time is one changed since, and would
     * mislead queries by time (auditq.c's binary search). */
    for (size_t i = from; p->before_us != 0 && i < q->head; i++) {
        if (q->idx[i].time_us < p->before_us)
            continue;
        char t[32], cut[32];
        kb_time_format(q->idx[i].time_us, t);
        kb_time_format(p->before_us, cut);
        snprintf(why, why_len,
                 "tombstone %" PRIu64 " has the time %s, but PRUNED record %" PRIu64 " pruned only records older "
                 "than %s: its time was changed after pruning (queries by time would miss records)",
                 q->idx[i].index, t, index, cut);
        *bad = q->idx[i].index;
        return KB_ECRYPTO;
    }
    return KB_OK;
}

uint64_t kb_pruned_check_undeclared(const kb_pruned_check_t *c, uint64_t *first)
{
    uint64_t n = 0;
    for (size_t i = 0; i < S_CLAIMS; i++) {
        const s_queue_t *q = &c->q[i];
        if (q->head < q->n && (n == 0 || q->idx[q->head].index < *first))
            *first = q->idx[q->head].index;
        n += q->n - q->head;
    }
    return n;
}

int kb_pruned_check_last_declaration(const kb_pruned_check_t *c, uint64_t *index)
{
    *index = c->last_decl;
    return c->has_decl;
}
