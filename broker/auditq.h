/*
 * auditq.h - queries and retention over the broker's audit log.
 *
 * A query is a filter (time range, subjects, message, agency, sender,
 * recipient, events, kinds) run in pages: records with index >= from, in
 * index order, until limit matched or budget candidates were looked at,
 * with the index to go on from. Candidates come from the most selective
 * index of store.h: subjects, else the message id, else the agency, else an
 * event that is rare in traffic (refusals, expiries, connections, rule
 * loads, checkpoints, pruning), else a range scan; the other conditions
 * filter them. A time range becomes an index range by binary search,
 * O(log n) reads: records are appended with nondecreasing time_us (the
 * store gives a record written after a step back of the clock the newest
 * record's time). The time conditions are also checked per record, so
 * nothing outside the range is ever returned.
 *
 * "About a subject" means: the record carries one of the subject keys, or
 * it concerns a message of which a record carries one: the same message id
 * from the same sender (the record's agency), since ids are unique per
 * sender only. So a query by subject also finds the acknowledgements,
 * which name the message but not the persons, and never another agency's
 * message that has the same id, nor a refusal of an envelope that claimed
 * it. A query by message id alone (has_message) shows every record with
 * that id, whoever sent it: add the sender to tell messages apart.
 *
 * The same code serves the broker's admin socket (broker/admin.c, pages
 * bounded so the loop never waits long) and `ketenbus audit --offline`
 * (ops/cli), which opens a stopped broker's store itself. Filters travel
 * over the admin socket as JSON (kb_auditq_filter_to_json/_from_json).
 *
 * Retention: kb_auditq_prune() turns records older than a time into
 * tombstones (store.h), all of them or those of one kind, at most a chunk
 * per call, and logs a PRUNED audit record saying which.
 */
#ifndef KB_AUDITQ_H
#define KB_AUDITQ_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kb_merkle.h"
#include "ketenbus.pb-c.h"
#include "store.h"

#define KB_AUDITQ_MAX_SUBJECTS   16u      /* subject keys in one filter */
#define KB_AUDITQ_MAX_LIMIT      1000u    /* matches per page over the admin socket */
#define KB_AUDITQ_BUDGET_ADMIN   20000u   /* candidates looked at per admin request */
#define KB_AUDITQ_MAX_CANDIDATES 1000000u /* records about the subjects of one query */
#define KB_AUDITQ_MAX_MESSAGES   100000u  /* messages about the subjects of one query */
#define KB_AUDITQ_PRUNE_CHUNK    16384u   /* records pruned per call over the admin socket */
#define KB_AUDITQ_AGENCY_MAX     KB_INDEX_VALUE_MAX

/* What a query asks for; zeroed means "everything". */
typedef struct {
    int has_since;                                     /* 1: time_us >= since_us */
    int64_t since_us;                                  /* start of the period, inclusive */
    int has_until;                                     /* 1: time_us < until_us */
    int64_t until_us;                                  /* end of the period, exclusive */
    uint8_t subjects[KB_AUDITQ_MAX_SUBJECTS][32];      /* about any of these subject keys */
    size_t n_subjects;                                 /* their number; 0: any */
    int has_message;                                   /* 1: this message only */
    uint8_t message_id[16];                            /* the message */
    char agency[KB_AUDITQ_AGENCY_MAX + 1];             /* as agency or counterpart; "": any */
    char from[KB_AUDITQ_AGENCY_MAX + 1];               /* as agency (sender, actor); "": any */
    char to[KB_AUDITQ_AGENCY_MAX + 1];                 /* as counterpart (recipient); "": any */
    uint32_t events;                                   /* bit 1u << AuditEvent; 0: any */
    uint32_t kinds;                                    /* bit 1u << Kind; 0: any */
} kb_auditq_filter_t;

/* Where a page ended. */
typedef struct {
    uint64_t next;    /* index to continue from */
    int done;         /* 1: no match at or after next */
    size_t matched;   /* records handed to the callback */
    size_t examined;  /* candidates looked at */
} kb_auditq_page_t;

/* Called per match with the stored bytes and the decoded record (both
 * borrowed for the call); non-zero stops the page after this record. */
typedef int (kb_auditq_fn)(uint64_t index, const uint8_t *raw, size_t len, const Ketenbus__AuditRecord *r,
                           void *arg);

/* Run one page of f from index from: at most limit matches, at most budget
 * candidates examined (0: no bound). Tombstones and records that do not
 * decode never match (`audit verify` reports them). KB_OK with *page;
 * KB_EINVAL (NULL, limit 0); KB_ETOOBIG (the subjects have more than
 * KB_AUDITQ_MAX_CANDIDATES records or KB_AUDITQ_MAX_MESSAGES messages:
 * narrow the filter); KB_EPROTO (corrupt index: kb_store_audit_reindex);
 * KB_EIO. */
int kb_auditq_run(kb_store_t *s, const kb_auditq_filter_t *f, uint64_t from, size_t limit, size_t budget,
                  kb_auditq_fn *fn, void *arg, kb_auditq_page_t *page);

/* The first index whose record has time_us >= t (the log's size if none):
 * binary search, see above. KB_OK or read errors. */
int kb_auditq_time_index(kb_store_t *s, int64_t t, uint64_t *index);

/* Whether record r (at index) meets every condition of f except the
 * subjects (the caller's candidate set decides those). */
int kb_auditq_match(const kb_auditq_filter_t *f, const Ketenbus__AuditRecord *r);

/* The filter as a JSON object (caller puts it), and back: KB_EPROTO with
 * kb_last_error() naming the field for a malformed one. Unknown keys are
 * refused. */
json_object *kb_auditq_filter_to_json(const kb_auditq_filter_t *f);
int kb_auditq_filter_from_json(json_object *o, kb_auditq_filter_t *f);

/* Event and kind names as the JSON form writes them ("refused",
 * "signal"; "other" for the records of no message kind: those about no
 * message, such as connections and rule loads, and refusals of envelopes
 * whose fields were not taken in): the bit for a name, 0 if unknown. */
#define KB_AUDITQ_KIND_OTHER "other"
uint32_t kb_auditq_event_bit(const char *name);
uint32_t kb_auditq_kind_bit(const char *name);

/* What kb_auditq_prune() did. */
typedef struct {
    uint64_t target;   /* first record not older than before_us */
    uint64_t limit;    /* how far pruning may go now: min(target, full leaf tiles, latest checkpoint) */
    uint64_t first;    /* pruned range (of the kind) before the call */
    uint64_t end;      /* pruned range after it */
    uint64_t count;    /* records in [first, end) turned into tombstones */
    int logged;        /* 1: a PRUNED record was appended (0 when the range held nothing to prune) */
    uint64_t record;   /* its index */
    int more;          /* 1: call again, records [end, limit) remain */
} kb_auditq_prune_t;

/* Prune records older than before_us, at most max of them, within limit
 * (above): every record (kind KB_PRUNE_ALL) or those of one Ketenbus__Kind
 * (0: records of no message kind; never checkpoints or prunes). Stage the tombstones and index removals in b and append a PRUNED
 * audit record through tree (bound to s with batch b) saying which records
 * and who asked (who, e.g. "admin socket user ops pid 42"). The caller
 * commits, then signs a checkpoint so the record is covered. Records not
 * yet covered by a signed checkpoint are never pruned: their hashes must be
 * under a signature first. KB_OK (also when nothing was due: out->logged
 * 0); KB_ECRYPTO when a record to prune does not match its leaf hash
 * (nothing staged); store and tree errors, after which b may hold part of
 * the pruning: clear it and reload store and tree, as after a failed
 * commit. */
int kb_auditq_prune(kb_store_t *s, kb_batch_t *b, kb_merkle_t *tree, int kind, int64_t before_us, size_t max,
                    const char *who, kb_auditq_prune_t *out);

#endif
