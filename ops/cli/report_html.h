/*
 * report_html.h - the HTML page of `ketenbus audit report`: what was shared
 * in a period, by whom, with whom, what was refused and why, and whether the
 * audit log it comes from verified.
 *
 * kb_report_html() writes one self-contained HTML5 file for a privacy
 * officer: all CSS inline, no scripts, no fonts, images or links to fetch
 * (a Content-Security-Policy meta tag forbids any), so it can be mailed,
 * archived and opened offline, and prints on A4. It is a pure function of
 * its input: it reads the records, never the store or the clock, so the
 * same input gives the same bytes.
 *
 * The page has these parts, each under an element id tests and readers can
 * rely on:
 *   id="verification"  the `audit verify` outcome (OK or FAILED, the detail,
 *                      the records after the latest checkpoint, not verified,
 *                      as "unverified-records", the checkpoint note it was
 *                      checked against);
 *   id="summary"       records per event (ids "count-<event>", e.g.
 *                      "count-routed"), agencies exchanging;
 *   id="flow-matrix"   ROUTED records, sender (row) by recipient (column);
 *                      each cell carries data-from/data-to and a per-kind
 *                      breakdown in its title (hover);
 *   id="volume-chart"  an inline SVG of RECEIVED records per UTC day,
 *                      stacked by kind, with axes and a legend, and
 *   id="volume-table"  the same numbers as a table;
 *   id="refusals"      REFUSED records grouped by rule id (empty: default
 *                      deny), reject code and reason, with counts and the
 *                      sender -> recipient pairs concerned (each name in a
 *                      <bdi>, so a right-to-left one cannot swap the two);
 *   id="expired"       EXPIRED records: when, sender, recipient, message id,
 *                      kind;
 *   id="escalated"     that the broker records no escalation yet (no
 *                      audit event says an item was escalated, and no
 *                      free text such as a reason is taken for one), and
 *                      the EXPIRED records of referrals in the period
 *                      ("count-expired-referrals").
 * Every string that comes from a record or the verification outcome is
 * untrusted (agencies write officer ids, legal bases; reasons quote them):
 * it is HTML-escaped, invalid UTF-8, control characters and bidirectional
 * overrides are replaced with U+FFFD. Times are ISO 8601 UTC; days are UTC
 * days.
 *
 * Expected call, from `ketenbus audit report --since --until --out FILE`
 * (ops/cli), after reading the records of [since, until) in index order and
 * running the same verification as `ketenbus audit verify`:
 *
 *     kb_report_t r = {0};
 *     r.chain = origin;                  // checkpoint origin or broker name
 *     r.since_us = since;                // --since, or the first record's time
 *     r.until_us = until;                // --until, or the last record's time + 1
 *     r.generated_us = kb_now_us();
 *     r.records = (const Ketenbus__AuditRecord *const *)recs;
 *     r.n_records = n;
 *     r.verify.ok = verified;            // and the other kb_report_verify_t fields
 *     r.verify.records = checked;
 *     r.verify.checkpoint = note_text;   // the signed note, as stored
 *     r.verify.tree_size = cp.size;
 *     r.verify.root_hex = root_hex;      // kb_hex(cp.root, 32, root_hex)
 *     r.verify.message = detail;         // one line
 *     FILE *f = fopen(tmp_path, "w");    // then rename over --out on KB_OK
 *     int rc = kb_report_html(f, &r);
 *     if (fclose(f) != 0 && rc == KB_OK) rc = KB_EIO;
 *     if (rc != KB_OK) fprintf(stderr, "ketenbus audit report: %s\n", kb_last_error());
 *
 * Nothing in kb_report_t is taken over or freed: the records and strings
 * need only live until kb_report_html() returns.
 */
#ifndef KB_REPORT_HTML_H
#define KB_REPORT_HTML_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ketenbus.pb-c.h"

#define KB_REPORT_MAX_AGENCIES 256u  /* senders plus recipients in the flow matrix */
#define KB_REPORT_MAX_DAYS     1096u /* UTC days in the volume chart (three years) */
#define KB_REPORT_MAX_ROWS     1000u /* rows of a list before "and N more" */
#define KB_REPORT_MAX_PAIRS    6u    /* sender -> recipient pairs named per refusal reason */
#define KB_REPORT_MAX_ID       64u   /* bytes of a message id shown (longer ones are cut) */

/* The outcome of verifying the audit log, as `ketenbus audit verify` found it. */
typedef struct {
    int ok;                  /* 1: everything a signed checkpoint covers verified; 0: FAILED */
    uint64_t records;        /* records whose leaf hashes were checked */
    int has_first_bad;       /* 1: first_bad names the first record that failed */
    uint64_t first_bad;      /* index of that record (meaningful only with has_first_bad) */
    uint64_t pruned_first;   /* records [pruned_first, pruned_end) were pruned by retention */
    uint64_t pruned_end;     /* equal to pruned_first when nothing was pruned */
    uint64_t pruned;         /* how many of them (fewer when kinds were pruned by retention) */
    uint64_t unverified;     /* records after the latest signed checkpoint, not verified (0: none) */
    uint64_t unverified_from; /* the first of them */
    const char *checkpoint;  /* the signed note checked against, as text; NULL or "" if none */
    uint64_t tree_size;      /* tree size of that checkpoint */
    const char *root_hex;    /* its root hash, lowercase hex; NULL if none */
    const char *message;     /* one line: what verified, or what failed and where */
} kb_report_verify_t;

/* Everything the report shows. All pointers are borrowed. */
typedef struct {
    const char *chain;                           /* the log's name (checkpoint origin), for the title */
    int64_t since_us;                            /* period start, UTC microseconds, inclusive */
    int64_t until_us;                            /* period end, UTC microseconds, exclusive */
    int64_t generated_us;                        /* when the report was made, UTC microseconds */
    const Ketenbus__AuditRecord *const *records; /* the period's records, in index order */
    size_t n_records;                            /* their number */
    kb_report_verify_t verify;                   /* verification of the log they come from */
} kb_report_t;

/* Write the report page for r to out. Returns KB_OK, or: KB_EINVAL if out
 * or r is NULL, records is NULL with n_records > 0, an entry is NULL,
 * since_us > until_us, or a record's time lies outside [since_us,
 * until_us); KB_ETOOBIG if more than KB_REPORT_MAX_AGENCIES agencies appear
 * in ROUTED records, or the records span more than KB_REPORT_MAX_DAYS days;
 * KB_ENOMEM; KB_EIO if writing to out failed. kb_last_error() has the
 * detail. On failure out may hold part of a page: write to a temporary file
 * and rename it on success. out is flushed, not closed. */
int kb_report_html(FILE *out, const kb_report_t *r);

/* Write s (NUL-terminated; NULL writes nothing) HTML-escaped for text and
 * quoted attribute values: & < > " ' become entities; invalid UTF-8, control
 * characters other than tab and newline, and bidirectional overrides and
 * isolates (U+202A-U+202E, U+2066-U+2069) become U+FFFD. KB_EIO if writing
 * failed. */
int kb_report_escape(FILE *out, const char *s);

/* The UTC day of a time, as days since 1970-01-01 (floor division, so
 * -1 us is day -1). The volume chart buckets by it. */
int64_t kb_report_day(int64_t time_us);

#endif
