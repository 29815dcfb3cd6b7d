/*
 * audit_verify.c - verification of an audit log (see audit_verify.h).
 *
 * One pass over the records, in pages, with two accumulators: one over
 * the leaf hashes recomputed from the records, one over the leaf hashes the
 * broker stored in its tiles. At each signed size both roots are compared
 * with the signature's root. Findings are collected as failures with the
 * index they concern; the outcome names the lowest.
 *
 * A running broker goes on logging, signing and pruning while the pass
 * reads. The notes are read after the log's size, and the pass reads no
 * further than that size or the largest verified note, whichever is
 * larger: every CHECKPOINT record it meets was written with its note,
 * before the notes were read, so a checkpoint signed meanwhile is never
 * taken for a deleted one; and no note is left out, so a log cut short
 * below a signed size still fails. A prune meanwhile can turn records the
 * pass has yet to read into tombstones whose PRUNED record lies past its
 * end; a run that failed while the pruned ends moved is done again, over
 * the pruned log (at most S_RUNS times).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_block.h"
#include "audit_verify.h"
#include "kb_error.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"
#include "store.h"
#include "verify_pruned.h"

#define S_PAGE       4096u     /* records per page */
#define S_PROGRESS   1000000u  /* records between progress lines */
#define S_NO_INDEX   UINT64_MAX
#define S_ARENA      65536u    /* bytes for decoding one record without malloc */
#define S_RUNS       3         /* runs, when the broker prunes during them */

/* One checkpoint note, stored or kept. */
typedef struct {
    uint64_t size;                    /* its tree size */
    uint8_t root[KB_MERKLE_HASH_LEN]; /* its root */
    int valid;                        /* signature verified, origin right */
    int kept;                         /* from an agency's file */
    const char *path;                 /* that file */
    int matched;                      /* the records' root at size agreed */
} s_cp_t;

typedef struct {
    kb_asrc_t *src;                /* where the log is */
    EVP_PKEY *pub;                 /* the broker's public key */
    const char *want_origin;       /* expected origin, or NULL */
    kb_verify_result_t *out;       /* the outcome */
    uint64_t end;                  /* the pass reads records below this: the log's size when the run began,
                                    * or the largest verified note's, if larger */
    s_cp_t *cps;                   /* checkpoints */
    size_t n_cps;                  /* their number */
    size_t cap_cps;                /* allocated */
    uint64_t fail_index;           /* index of the failure whose message is kept */
    int have_fail;                 /* a failure was found */
    int rc;                        /* a source error */
    /* the pass over the records */
    kb_merkle_acc_t *acc;          /* root of the records' leaf hashes */
    kb_merkle_acc_t *acc_stored;   /* root of the stored leaf hashes, once they differ (stored_same 0) */
    int stored_same;               /* 1: every stored hash so far equals the record's: acc is their root too */
    uint64_t expect;               /* next index */
    int broken;                    /* a structural failure stopped the pass */
    uint8_t *stored;               /* stored leaf hashes of the current page */
    uint64_t stored_from;          /* their first index */
    size_t n_stored;               /* their number */
    int stored_prefix;             /* 1: stored hashes so far form a prefix */
    uint64_t stored_mismatch;      /* first record whose hash differs from the stored one */
    uint64_t stored_auth;          /* largest signed size whose stored root agreed */
    size_t next_cp;                /* next checkpoint (valid, sorted) to check */
    uint64_t last_good;            /* largest signed size whose records' root agreed */
    uint64_t recomputed;           /* records whose leaf hash was recomputed so far */
    uint64_t recomputed_good;      /* of which below last_good */
    uint64_t root_fail;            /* first signed size whose records' root disagreed, 0: none */
    uint64_t root_fail_prev;       /* last good size before it */
    uint64_t stones;               /* tombstones seen */
    int64_t prev_time;             /* time of record expect - 1 (a tombstone's: the one it keeps) */
    int prev_stone;                /* 1: that record is a tombstone */
    int64_t kept_time;             /* time of the last record that is not a tombstone */
    uint64_t kept_index;           /* its index */
    int has_kept;                  /* 1: there is one */
    kb_pruned_check_t *pruned;     /* tombstones against the PRUNED records */
    uint64_t *signed_at;           /* sizes CHECKPOINT records say the broker signed */
    size_t n_signed;               /* their number */
    size_t cap_signed;             /* allocated */
    uint64_t progress_at;          /* next progress line */
    FILE *progress;                /* where */
    uint8_t *arena;                /* S_ARENA bytes the current record is decoded into */
    size_t arena_used;             /* of which in use */
    ProtobufCAllocator alloc;      /* allocates from arena */
} s_verify_t;

/* Record a failure concerning index (S_NO_INDEX: none): every one is a
 * finding; the message of the lowest index is the outcome's (an index-less
 * one only while none has an index). */
static void s_fail(s_verify_t *v, uint64_t index, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void s_fail(s_verify_t *v, uint64_t index, const char *fmt, ...)
{
    kb_verify_result_t *o = v->out;
    char line[KB_VERIFY_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->ok = 0;
    if (o->n_findings < KB_VERIFY_FINDINGS_MAX)
        snprintf(o->findings[o->n_findings++], sizeof o->findings[0], "%s", line);
    if (index != S_NO_INDEX && (!o->has_first_bad || index < o->first_bad)) {
        o->has_first_bad = 1;
        o->first_bad = index;
    }
    int better = !v->have_fail ||
                 (index != S_NO_INDEX && (v->fail_index == S_NO_INDEX || index < v->fail_index));
    if (!better)
        return;
    snprintf(o->message, sizeof o->message, "%s", line);
    v->have_fail = 1;
    v->fail_index = index;
}

/* ------------------------------------------------------------ checkpoints */

static s_cp_t *s_cp_add(s_verify_t *v)
{
    if (v->n_cps == v->cap_cps) {
        size_t cap = v->cap_cps ? v->cap_cps * 2 : 64;
        s_cp_t *p = realloc(v->cps, cap * sizeof *p);
        if (!p)
            return NULL;
        v->cps = p;
        v->cap_cps = cap;
    }
    s_cp_t *c = &v->cps[v->n_cps++];
    memset(c, 0, sizeof *c);
    return c;
}

/* Parse and verify one note; keep the latest valid stored one's text. */
static int s_note(s_verify_t *v, uint64_t key_size, const char *note, size_t len, const char *kept_path)
{
    kb_verify_result_t *o = v->out;
    s_cp_t *c = s_cp_add(v);
    if (!c) {
        v->rc = kb_error_set(KB_ENOMEM, "out of memory");
        return 1;
    }
    o->checkpoints++;
    c->kept = kept_path != NULL;
    c->path = kept_path;
    char what[400];
    if (kept_path)
        snprintf(what, sizeof what, "your checkpoint %.300s", kept_path);
    else
        snprintf(what, sizeof what, "the checkpoint stored for size %" PRIu64, key_size);
    kb_note_checkpoint_t cp;
    if (kb_note_parse(note, len, &cp) != KB_OK) {
        s_fail(v, S_NO_INDEX, "%s is not a checkpoint note: %s", what, kb_last_error());
        return 0;
    }
    c->size = cp.size;
    memcpy(c->root, cp.root, sizeof c->root);
    if (!o->origin[0])
        snprintf(o->origin, sizeof o->origin, "%s", v->want_origin ? v->want_origin : cp.origin);
    if (strcmp(cp.origin, o->origin) != 0) {
        s_fail(v, S_NO_INDEX, "%s is for log %s, not %s", what, cp.origin, o->origin);
        return 0;
    }
    if (!kept_path && cp.size != key_size) {
        s_fail(v, S_NO_INDEX, "%s states size %" PRIu64 " (moved)", what, cp.size);
        return 0;
    }
    /* checkpoint.c signs with the origin as key name */
    if (kb_note_verify(note, len, cp.origin, v->pub, &cp) != KB_OK) {
        s_fail(v, S_NO_INDEX, "%s does not verify with the broker's key (forged or altered): %s", what,
               kb_last_error());
        return 0;
    }
    c->valid = 1;
    o->checkpoints_ok++;
    if (!kept_path && (!o->has_checkpoint || cp.size >= o->cp_size)) {
        char *copy = malloc(len + 1);
        if (!copy) {
            v->rc = kb_error_set(KB_ENOMEM, "out of memory");
            return 1;
        }
        memcpy(copy, note, len);
        copy[len] = '\0';
        free(o->cp_note);
        o->cp_note = copy;
        o->has_checkpoint = 1;
        o->cp_size = cp.size;
        memcpy(o->cp_root, cp.root, sizeof o->cp_root);
    }
    return 0;
}

static int s_stored_note(uint64_t size, const char *note, size_t len, void *arg)
{
    return s_note(arg, size, note, len, NULL);
}

static int s_cmp_cp(const void *a, const void *b)
{
    const s_cp_t *x = a, *y = b;
    if (x->valid != y->valid)
        return x->valid ? -1 : 1; /* valid ones first */
    return x->size < y->size ? -1 : x->size > y->size;
}

/* ------------------------------------------------------------ the pass */

/* Compare the roots at a signed size the pass just reached. */
static void s_at_size(s_verify_t *v, uint64_t size)
{
    /* Most sizes have no checkpoint: computing the two roots (a hash per
     * level) for every record cost as much as hashing the record itself. */
    if (v->next_cp >= v->n_cps || !v->cps[v->next_cp].valid || v->cps[v->next_cp].size != size)
        return;
    uint8_t root[KB_MERKLE_HASH_LEN], sroot[KB_MERKLE_HASH_LEN];
    int have = !v->broken && kb_merkle_acc_root(v->acc, root) == KB_OK;
    int have_stored;
    if (v->stored_same) {
        have_stored = v->stored_prefix && kb_merkle_acc_size(v->acc) == size && kb_merkle_acc_root(v->acc, sroot) == KB_OK;
    } else {
        have_stored = v->stored_prefix && kb_merkle_acc_size(v->acc_stored) == size &&
                      kb_merkle_acc_root(v->acc_stored, sroot) == KB_OK;
    }
    for (; v->next_cp < v->n_cps && v->cps[v->next_cp].valid && v->cps[v->next_cp].size == size; v->next_cp++) {
        s_cp_t *c = &v->cps[v->next_cp];
        if (have_stored && memcmp(sroot, c->root, sizeof sroot) == 0)
            v->stored_auth = size;
        if (!have)
            continue;
        if (memcmp(root, c->root, sizeof root) == 0) {
            c->matched = 1;
            if (!v->root_fail) {
                v->last_good = size;
                v->recomputed_good = v->recomputed;
            }
        } else if (!v->root_fail) {
            v->root_fail = size;
            v->root_fail_prev = v->last_good;
        }
    }
}

/* Arena allocation for decoding a record: unpacking allocates a dozen
 * small blocks per record, which malloc and free made a fifth of the
 * verification's time. The arena is reset per record; what does not fit
 * fails the unpack, which s_unpack then repeats on the heap. */
static void *s_arena_alloc(void *data, size_t size)
{
    s_verify_t *v = data;
    size_t at = (v->arena_used + 15u) & ~(size_t)15u;
    if (at > S_ARENA || size > S_ARENA - at)
        return NULL;
    v->arena_used = at + size;
    return v->arena + at;
}

static void s_arena_free(void *data, void *p)
{
    (void)data, (void)p; /* the whole arena is reset per record */
}

/* Decode a record into the arena, or on the heap (*heap = 1) when it does
 * not fit; NULL if it does not decode at all. */
static Ketenbus__AuditRecord *s_unpack(s_verify_t *v, const uint8_t *raw, size_t len, int *heap)
{
    v->arena_used = 0;
    *heap = 0;
    Ketenbus__AuditRecord *r = ketenbus__audit_record__unpack(&v->alloc, len, raw);
    if (!r) {
        *heap = 1;
        r = ketenbus__audit_record__unpack(NULL, len, raw);
    }
    return r;
}

static void s_unpacked_free(Ketenbus__AuditRecord *r, int heap)
{
    if (heap)
        ketenbus__audit_record__free_unpacked(r, NULL);
}

/* A tombstone keeps its record's time (store.c's prune), which no hash
 * covers. Queries find a period by binary search over the times of all
 * records, tombstones included (auditq.c), relying on the order in which
 * the broker appended them: a tombstone moved out of that order hides kept
 * records from queries by time. So a tombstone's time must lie between
 * its neighbours'. Kept records' times are covered by their hashes (their
 * order is the broker's clock's, not checked here), so one that is out of
 * order with a tombstone names the tombstone; of two tombstones out of
 * order, the one earlier than the last kept record is named, else the
 * first (which of them moved cannot be told). */
static void s_time_order(s_verify_t *v, uint64_t index, int64_t time_us, int stone)
{
    if (index > 0 && (stone || v->prev_stone) && time_us < v->prev_time) {
        char t[32], prev[32], kept[32];
        kb_time_format(time_us, t);
        kb_time_format(v->prev_time, prev);
        kb_time_format(v->kept_time, kept);
        if (!v->prev_stone || (v->has_kept && time_us < v->kept_time))
            s_fail(v, index,
                   "tombstone %" PRIu64 " has the time %s, before that of record %" PRIu64 " (%s): its time was "
                   "changed after pruning (queries by time would miss records)",
                   index, t, v->kept_index, kept);
        else if (!stone)
            s_fail(v, index - 1,
                   "tombstone %" PRIu64 " has the time %s, after that of record %" PRIu64 " (%s): its time was "
                   "changed after pruning (queries by time would miss records)",
                   index - 1, prev, index, t);
        else
            s_fail(v, index - 1,
                   "tombstones %" PRIu64 " and %" PRIu64 " are out of time order (%s, then %s): a tombstone's time "
                   "was changed after pruning (queries by time would miss records)",
                   index - 1, index, prev, t);
    }
    v->prev_time = time_us;
    v->prev_stone = stone;
    if (!stone) {
        v->kept_time = time_us;
        v->kept_index = index;
        v->has_kept = 1;
    }
}

static int s_record(uint64_t index, const uint8_t *raw, size_t len, void *arg)
{
    s_verify_t *v = arg;
    kb_verify_result_t *o = v->out;
    if (v->broken)
        return 1;
    if (index != v->expect) {
        s_fail(v, v->expect, "record %" PRIu64 " is missing from the log (deleted)", v->expect);
        v->broken = 1;
        return 1;
    }
    uint8_t leaf[KB_MERKLE_HASH_LEN];
    kb_audit_tombstone_t ts;
    int trc = kb_audit_tombstone_parse(raw, len, &ts);
    if (trc == KB_OK) {
        memcpy(leaf, ts.leaf_hash, sizeof leaf);
        if (v->stones++ == 0)
            o->pruned_first = index;
        o->pruned_end = index + 1;
        o->pruned = v->stones;
        if (kb_pruned_check_stone(v->pruned, index, ts.claim, ts.time_us) != KB_OK) {
            v->rc = KB_ENOMEM;
            return 1;
        }
        s_time_order(v, index, ts.time_us, 1);
    } else if (trc != KB_ENOTFOUND) {
        s_fail(v, index, "record %" PRIu64 " is damaged (a malformed tombstone)", index);
        v->broken = 1;
        return 1;
    } else {
        int heap = 0;
        Ketenbus__AuditRecord *r = s_unpack(v, raw, len, &heap);
        if (!r) {
            s_fail(v, index, "record %" PRIu64 " does not decode (its bytes were changed)", index);
            v->broken = 1;
            return 1;
        }
        if (r->index != index) {
            s_fail(v, index, "position %" PRIu64 " holds record %" PRIu64 " (records were moved or swapped)", index,
                   (uint64_t)r->index);
            s_unpacked_free(r, heap);
            v->broken = 1;
            return 1;
        }
        if (r->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_PRUNED) {
            char why[KB_VERIFY_MESSAGE_MAX];
            uint64_t bad = index;
            int prc = kb_pruned_check_record(v->pruned, index, r, why, sizeof why, &bad);
            if (prc == KB_ECRYPTO) {
                s_fail(v, bad, "%s", why);
            } else if (prc != KB_OK) {
                s_unpacked_free(r, heap);
                v->rc = prc;
                return 1;
            }
        }
        unsigned long long cp_size = 0;
        if (r->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CHECKPOINT && r->reason &&
            sscanf(r->reason, "size=%llu ", &cp_size) == 1) {
            if (v->n_signed == v->cap_signed) {
                size_t cap = v->cap_signed ? v->cap_signed * 2 : 64;
                uint64_t *p = realloc(v->signed_at, cap * sizeof *p);
                if (!p) {
                    s_unpacked_free(r, heap);
                    v->rc = kb_error_set(KB_ENOMEM, "out of memory");
                    return 1;
                }
                v->signed_at = p;
                v->cap_signed = cap;
            }
            v->signed_at[v->n_signed++] = cp_size;
        }
        s_time_order(v, index, r->time_us, 0);
        s_unpacked_free(r, heap);
        if (kb_merkle_acc_leaf_hash(v->acc, raw, len, leaf) != KB_OK) {
            v->rc = KB_ECRYPTO;
            return 1;
        }
        v->recomputed++;
    }
    /* the stored hash of this leaf */
    if (index >= v->stored_from && index < v->stored_from + v->n_stored) {
        const uint8_t *sh = v->stored + (index - v->stored_from) * KB_MERKLE_HASH_LEN;
        if (memcmp(sh, leaf, sizeof leaf) != 0) {
            if (v->stored_mismatch == S_NO_INDEX)
                v->stored_mismatch = index;
            /* the stored hashes part from the records' here: give them their
             * own accumulator, holding the leaves so far (equal until now) */
            if (v->stored_same && v->stored_prefix)
                kb_merkle_acc_copy(v->acc_stored, v->acc);
            v->stored_same = 0;
        }
        if (v->stored_prefix && !v->stored_same && kb_merkle_acc_add_hash(v->acc_stored, sh) != KB_OK) {
            v->rc = KB_ECRYPTO;
            return 1;
        }
    } else {
        v->stored_prefix = 0;
    }
    if (kb_merkle_acc_add_hash(v->acc, leaf) != KB_OK) {
        v->rc = KB_ECRYPTO;
        return 1;
    }
    v->expect++;
    s_at_size(v, v->expect);
    if (v->progress && v->expect >= v->progress_at) {
        fprintf(v->progress, "verified %" PRIu64 " records...\n", v->expect);
        v->progress_at += S_PROGRESS;
    }
    return 0;
}

/* ------------------------------------------------------------ the outcome */

static void s_conclude(s_verify_t *v, uint64_t size)
{
    kb_verify_result_t *o = v->out;
    uint64_t end = v->expect; /* records read before any structural stop */
    /* signed sizes beyond the log: records were removed from its end */
    if (!v->broken)
        for (size_t i = 0; i < v->n_cps; i++)
            if (v->cps[i].valid && v->cps[i].size > end) {
                s_fail(v, end,
                       "the log has %" PRIu64 " records but a checkpoint of size %" PRIu64
                       " was signed: records from %" PRIu64 " on were removed",
                       end, v->cps[i].size, end);
                break;
            }
    /* a root that disagrees: name the record through the stored hashes */
    if (v->root_fail) {
        uint64_t s = v->root_fail, g = v->root_fail_prev;
        if (v->stored_mismatch != S_NO_INDEX && v->stored_mismatch < s)
            s_fail(v, v->stored_mismatch,
                   "record %" PRIu64 " does not match the tree signed at size %" PRIu64
                   " (its bytes were changed after it was logged)%s",
                   v->stored_mismatch, s,
                   v->stored_auth >= s ? "" : "; the broker's stored leaf hashes disagree with the signature too");
        else
            s_fail(v, g,
                   "the records from %" PRIu64 " to %" PRIu64 " do not give the root signed at size %" PRIu64
                   " (one was changed; the stored leaf hashes were changed as well, so it cannot be named)",
                   g, s - 1, s);
    }
    /* a record newer than every signature that differs from the hash the broker stored */
    if (v->stored_mismatch != S_NO_INDEX && !v->root_fail)
        s_fail(v, v->stored_mismatch,
               "record %" PRIu64 " differs from the leaf hash the broker stored when it logged it (changed after "
               "it was logged)",
               v->stored_mismatch);
    /* every checkpoint the log says was signed must still be there */
    for (size_t i = 0, j = 0; i < v->n_signed; i++) {
        while (j < v->n_cps && (!v->cps[j].valid || v->cps[j].kept || v->cps[j].size < v->signed_at[i]))
            j++;
        if (j == v->n_cps || v->cps[j].size != v->signed_at[i])
            s_fail(v, S_NO_INDEX,
                   "the log records that a checkpoint of size %" PRIu64 " was signed, but no valid note of that "
                   "size is stored (deleted or replaced)",
                   v->signed_at[i]);
    }
    /* tombstones need a PRUNED record under a verified checkpoint */
    uint64_t at = 0, n = kb_pruned_check_undeclared(v->pruned, &at);
    if (n > 0 && !v->broken)
        s_fail(v, at,
               "%" PRIu64 " record%s from %" PRIu64 " on %s replaced by tombstones, but no PRUNED record under a "
               "signed checkpoint declares %s",
               n, n == 1 ? "" : "s", at, n == 1 ? "was" : "were", n == 1 ? "it" : "them");
    if (kb_pruned_check_last_declaration(v->pruned, &at) && at >= v->last_good)
        s_fail(v, at,
               "tombstones are declared by PRUNED record %" PRIu64 ", but no PRUNED record under a signed checkpoint "
               "(verified up to size %" PRIu64 ") declares them",
               at, v->last_good);
    /* records without any signature over them: consistent, but nothing
     * binds them to what the broker logged (anyone could have written them) */
    if (o->ok && !o->has_checkpoint && end > 0)
        s_fail(v, S_NO_INDEX,
               "%" PRIu64 " record%s but no checkpoint was ever signed: nothing is proven (the broker signs one "
               "every checkpoint_interval, every checkpoint_records and when it stops)",
               end, end == 1 ? "" : "s");
    o->size = v->broken ? size : end;
    o->checked = v->recomputed_good;
    if (o->ok) {
        char pruned[160] = "", tail[200] = "";
        if (v->stones > 0 && v->stones == o->pruned_end - o->pruned_first)
            snprintf(pruned, sizeof pruned, ", records [%" PRIu64 ", %" PRIu64 ") pruned by retention",
                     o->pruned_first, o->pruned_end);
        else if (v->stones)
            snprintf(pruned, sizeof pruned, ", %" PRIu64 " records in [%" PRIu64 ", %" PRIu64 ") pruned by retention",
                     (uint64_t)v->stones, o->pruned_first, o->pruned_end);
        /* Records after the last signed size: no signature covers them, and
         * the newest (past the last full leaf tile and what the last
         * checkpoint stored of the partial one) have no stored leaf hash
         * either, so a change to them cannot be seen (store.h). Every log
         * has some, the CHECKPOINT record that follows each signing: said,
         * not failed, and not counted as verified. */
        o->unverified_from = v->last_good;
        o->unverified = end - v->last_good;
        if (o->unverified > 0)
            snprintf(tail, sizeof tail,
                     "; %" PRIu64 " record%s after the last checkpoint (from index %" PRIu64 ") %s covered by no "
                     "signed checkpoint yet: not verified",
                     o->unverified, o->unverified == 1 ? "" : "s", o->unverified_from,
                     o->unverified == 1 ? "is" : "are");
        if (o->has_checkpoint)
            snprintf(o->message, sizeof o->message,
                     "verified: %" PRIu64 " records give the roots of %" PRIu64 " signed checkpoint%s (latest: size "
                     "%" PRIu64 ")%s%s",
                     v->last_good, o->checkpoints_ok, o->checkpoints_ok == 1 ? "" : "s", o->cp_size, pruned, tail);
        else
            snprintf(o->message, sizeof o->message, "the log is empty: no records, no checkpoint");
    }
}

/* One run of kb_audit_verify; *info gets the log as the run found it
 * (the caller clears it, also on failure). */
static int s_run(kb_asrc_t *src, EVP_PKEY *pub, const char *origin, const kb_verify_kept_t *kept, size_t n_kept,
                 FILE *progress, kb_verify_result_t *out, kb_asrc_info_t *info)
{
    memset(out, 0, sizeof *out);
    memset(info, 0, sizeof *info);
    out->ok = 1;
    s_verify_t *v = calloc(1, sizeof *v);
    if (!v)
        return kb_error_set(KB_ENOMEM, "out of memory");
    v->src = src;
    v->pub = pub;
    v->want_origin = origin;
    v->out = out;
    v->stored_prefix = 1;
    v->stored_same = 1;
    v->stored_mismatch = S_NO_INDEX;
    v->progress = progress;
    v->progress_at = S_PROGRESS;
    v->acc = kb_merkle_acc_new();
    v->acc_stored = kb_merkle_acc_new();
    v->stored = malloc(S_PAGE * KB_MERKLE_HASH_LEN);
    v->arena = malloc(S_ARENA);
    v->alloc.alloc = s_arena_alloc;
    v->alloc.free = s_arena_free;
    v->alloc.allocator_data = v;
    v->pruned = kb_pruned_check_new();
    int rc = v->acc && v->acc_stored && v->stored && v->arena && v->pruned ? KB_OK : kb_error_set(KB_ENOMEM, "out of memory");
    if (rc == KB_OK)
        rc = kb_asrc_info(src, info);
    if (rc != KB_OK)
        goto done;
    /* 1. the notes */
    rc = kb_asrc_checkpoints(src, s_stored_note, v);
    if (rc == KB_OK)
        rc = v->rc;
    for (size_t i = 0; rc == KB_OK && i < n_kept; i++)
        s_note(v, 0, kept[i].note, kept[i].len, kept[i].path);
    if (rc == KB_OK)
        rc = v->rc;
    if (rc != KB_OK)
        goto done;
    /* what the notes read cover: the records of the log's size then, and
     * those under a checkpoint signed since (none may be missing) */
    v->end = info->size;
    for (size_t i = 0; i < v->n_cps; i++)
        if (v->cps[i].valid && v->cps[i].size > v->end)
            v->end = v->cps[i].size;
    if (v->n_cps > 1)
        qsort(v->cps, v->n_cps, sizeof *v->cps, s_cmp_cp);
    for (size_t i = 1; i < v->n_cps; i++)
        if (v->cps[i].valid && v->cps[i - 1].size == v->cps[i].size &&
            memcmp(v->cps[i].root, v->cps[i - 1].root, KB_MERKLE_HASH_LEN) != 0)
            s_fail(v, S_NO_INDEX, "two signed checkpoints of size %" PRIu64 " have different roots (a fork)",
                   v->cps[i].size);
    /* 2. and 3. the records, a page at a time, with the stored hashes */
    s_at_size(v, 0);
    uint64_t from = 0;
    int done_all = 0;
    while (rc == KB_OK && !done_all && !v->broken) {
        v->stored_from = from;
        v->n_stored = 0;
        if (v->stored_prefix) /* the stored hashes form a prefix of the log */
            rc = kb_asrc_leaves(src, from, S_PAGE, v->stored, &v->n_stored);
        uint64_t next = from;
        if (rc == KB_OK)
            rc = kb_asrc_records(src, from, v->end, S_PAGE, s_record, v, &next, &done_all);
        if (rc == KB_OK)
            rc = v->rc;
        if (rc != KB_OK && v->rc == KB_OK && kb_asrc_is_damage(rc)) {
            /* a block that cannot be read or decoded: what it holds is not
             * verified, and the pass cannot go on past it (indices) */
            uint64_t at = v->expect - v->expect % KB_ABLOCK_RECORDS;
            s_fail(v, at, "records from %" PRIu64 " on cannot be read (the store is damaged): %s", at,
                   kb_last_error());
            v->broken = 1;
            rc = KB_OK;
            break;
        }
        if (rc == KB_OK && next <= from && !done_all)
            rc = kb_error_set(KB_EPROTO, "the record pages do not advance");
        from = next;
    }
    if (rc != KB_OK)
        goto done;
    /* 4. conclusions */
    s_conclude(v, info->size);
    for (size_t i = 0; i < v->n_cps; i++)
        if (v->cps[i].kept && v->cps[i].valid && v->cps[i].matched)
            out->kept_ok++;
done:
    kb_merkle_acc_destroy(&v->acc);
    kb_merkle_acc_destroy(&v->acc_stored);
    free(v->stored);
    free(v->arena);
    free(v->cps);
    kb_pruned_check_destroy(&v->pruned);
    free(v->signed_at);
    free(v);
    return rc;
}

/* Whether the pruned ends of the log differ from those of before. */
static int s_pruned_moved(kb_asrc_t *src, const kb_asrc_info_t *before)
{
    kb_asrc_info_t now;
    if (kb_asrc_info(src, &now) != KB_OK)
        return 0; /* the failed run's outcome stands */
    int moved = now.pruned != before->pruned ||
                memcmp(now.pruned_kind, before->pruned_kind, sizeof now.pruned_kind) != 0;
    kb_asrc_info_clear(&now);
    return moved;
}

int kb_audit_verify(kb_asrc_t *src, EVP_PKEY *pub, const char *origin, const kb_verify_kept_t *kept, size_t n_kept,
                    FILE *progress, kb_verify_result_t *out)
{
    for (int run = 1;; run++) {
        kb_asrc_info_t info;
        int rc = s_run(src, pub, origin, kept, n_kept, progress, out, &info);
        int again = rc == KB_OK && !out->ok && run < S_RUNS && s_pruned_moved(src, &info);
        kb_asrc_info_clear(&info);
        if (!again)
            return rc;
        kb_verify_result_clear(out);
        if (progress)
            fprintf(progress, "the broker pruned records while they were read: verifying again\n");
    }
}

void kb_verify_result_clear(kb_verify_result_t *r)
{
    free(r->cp_note);
    memset(r, 0, sizeof *r);
}
