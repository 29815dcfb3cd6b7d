/*
 * verify_pruned.h - are the tombstones of an audit log what its PRUNED
 * records declare? Part of `ketenbus audit verify` (audit_verify.c).
 *
 * Retention turns records into tombstones (broker/store.h) that keep only
 * the record's time and leaf hash, and a claim: which pruning made them,
 * every kind or one kind. The pruning logs a PRUNED record (proto:
 * AuditRecord.pruning) with the range it looked at, the claim, how many
 * records it turned into tombstones and the SHA-256 of their indices.
 * Both the tombstones and the PRUNED records are met in index order in one
 * pass, and a PRUNED record always follows the range it declares. So the
 * check keeps, per claim, the tombstones not yet declared; a PRUNED record
 * takes those of its claim below its end, which must all lie in its range
 * and be exactly the records it counts and hashes. What stays undeclared
 * at the end was hidden by someone other than retention.
 *
 * This is what lets retention per kind leave tombstones between kept
 * records: a record hidden as a tombstone in a range where another kind
 * was pruned adds one to that claim's count (or, claiming its own kind,
 * finds no declaration), and a pruned record restored from a copy takes
 * one away. Logs from before the PRUNED record carried `pruning` declare
 * only "every record below tag": such a record takes all tombstones of
 * the every-kind claim below it, uncounted.
 */
#ifndef KB_VERIFY_PRUNED_H
#define KB_VERIFY_PRUNED_H

#include <stddef.h>
#include <stdint.h>

#include "ketenbus.pb-c.h"

typedef struct kb_pruned_check kb_pruned_check_t;

/* A new check, or NULL (out of memory). */
kb_pruned_check_t *kb_pruned_check_new(void);
void kb_pruned_check_destroy(kb_pruned_check_t **p);

/* A tombstone at index (ascending over calls) made by claim: a
 * Ketenbus__Kind or KB_PRUNE_ALL (store.h), keeping the time time_us.
 * KB_OK or KB_ENOMEM. */
int kb_pruned_check_stone(kb_pruned_check_t *c, uint64_t index, int claim, int64_t time_us);

/* The PRUNED record r at index. KB_OK when the tombstones it declares are
 * there, exactly, each with a time before the record's cut-off
 * (pruning.before_us, when it states one); KB_ECRYPTO when they are not,
 * with a message in why (why_len bytes) and the record to name in *bad;
 * KB_ENOMEM. */
int kb_pruned_check_record(kb_pruned_check_t *c, uint64_t index, const Ketenbus__AuditRecord *r, char *why,
                           size_t why_len, uint64_t *bad);

/* After the pass: how many tombstones no PRUNED record declared, and the
 * lowest of them in *first (when there are any). */
uint64_t kb_pruned_check_undeclared(const kb_pruned_check_t *c, uint64_t *first);

/* The highest index of a PRUNED record that declared tombstones, and
 * whether there is one (0: none). Its declaration counts only if a verified
 * checkpoint covers it. */
int kb_pruned_check_last_declaration(const kb_pruned_check_t *c, uint64_t *index);

#endif
