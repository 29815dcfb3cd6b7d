/*
 * policy.h - the sharing rules in force: per-recipient decisions, fan-out,
 * explanations and lints. Replaces the simple from/to/kinds rules.
 *
 * Semantics (docs/RULES.md says the same for privacy officers):
 * - A message may reach a recipient only when an allow rule names the
 *   sender (or a group it is in) in `from`, the recipient in `to`, the kind
 *   in `kinds`, the purpose in `purposes`, has max_handling at or above the
 *   message's handling code, and has not expired (valid_until). The first
 *   such rule in file order decides, and its `redact` paths are withheld.
 * - A deny rule (effect: deny) that matches sender, recipient, kind and
 *   purpose refuses the recipient whatever allow rules say.
 * - Anything else is refused (default deny), also a message from an agency
 *   to itself and anything naming an agency that is not in the chain.
 * Decisions are O(1) in the number of rules: rules are indexed by
 * (sender, recipient) pair; only the few rules for that pair are looked at.
 *
 * Reasons (kb_decision_t.reason) read "allowed by rule R (basis B)",
 * "refused by deny rule R", "refused: no rule allows kind K from A to B for
 * purpose P", and when an allow rule matched all but the handling code or
 * its expiry "refused: rule R allows at most h1; message is h2" or
 * "refused: rule R expired on 2026-01-01" (rule is then NULL: no rule
 * decided).
 *
 * Built by kb_conf_load() (conf->policy) from conf->rules; borrowed pointers
 * into the conf stay valid as long as the conf lives. Used by route.c, the
 * `ketenbus policy` commands and the tests.
 */
#ifndef KB_POLICY_H
#define KB_POLICY_H

#include <stddef.h>
#include <stdint.h>

typedef struct kb_conf kb_conf_t;
typedef struct kb_rule kb_rule_t;
typedef struct kb_policy kb_policy_t;

/* The outcome for one (sender, recipient, kind, purpose, handling). */
typedef struct {
    int allowed;              /* 1 allowed, 0 refused */
    const kb_rule_t *rule;    /* deciding allow or deny rule; NULL: no rule (default deny) */
    char reason[256];         /* one sentence for receipts, logs and `policy explain` */
} kb_decision_t;

/* Build the index for conf's rules (borrowed: conf must outlive it). NULL
 * with kb_last_error() on no memory (KB_ENOMEM) or when the rules expand to
 * more than KB_CONF_MAX_PAIRS sender/recipient pairs (KB_ETOOBIG). */
kb_policy_t *kb_policy_new(const kb_conf_t *conf);
void kb_policy_destroy(kb_policy_t **p);

/* Decide for one recipient at time now_us (UTC microseconds). Kind,
 * purpose and handling are the proto enum values. Always fills *out;
 * returns KB_OK, or KB_EINVAL for NULL arguments. Unknown agencies are
 * refused with a reason saying so. */
int kb_policy_decide(const kb_policy_t *p, const char *from, const char *to, int kind, int purpose, int handling,
                     int64_t now_us, kb_decision_t *out);

/* Recipients for a message without explicit recipients: every agency but
 * the sender for which kb_policy_decide() allows, in configuration order.
 * Fills up to max ids (borrowed from the conf); returns the count. */
size_t kb_policy_fanout(const kb_policy_t *p, const char *from, int kind, int purpose, int handling, int64_t now_us,
                        const char **out, size_t max);

/* The whole fan-out, as the broker routes it and `policy explain` shows
 * it: kb_policy_fanout() into an array with room for every agency of the
 * chain (no cap: KB_MAX_RECIPIENTS bounds the recipients an envelope
 * names, not the agencies rules allow). *out is the caller's (free(); the
 * ids in it are borrowed from the conf) and *n its count. Returns KB_OK,
 * KB_EINVAL or KB_ENOMEM (then *out is NULL and *n 0). */
int kb_policy_fanout_all(const kb_policy_t *p, const char *from, int kind, int purpose, int handling, int64_t now_us,
                         const char ***out, size_t *n);

/* What the broker decides for a message without named recipients: the
 * agencies of kb_policy_fanout_all() and, among them in configuration
 * order, every agency that an allow rule would reach but a deny rule
 * refuses (kb_policy_decide() names that rule). The broker routes to the
 * first and audits the refusal of the others: a deny rule that took an
 * agency out of a fan-out is a decision like any other. An agency no
 * allow rule reaches is not a candidate. Ownership and returns as for
 * kb_policy_fanout_all(). */
int kb_policy_fanout_candidates(const kb_policy_t *p, const char *from, int kind, int purpose, int handling,
                                int64_t now_us, const char ***out, size_t *n);

/* Which enum kb_policy_name() names. */
typedef enum {
    KB_POLICY_KIND,           /* Ketenbus__Kind: "signal", "referral_update" */
    KB_POLICY_PURPOSE,        /* Ketenbus__Purpose: "victim_care" */
    KB_POLICY_HANDLING,       /* Ketenbus__Handling: "h0" .. "h3" */
} kb_policy_field_t;

/* Room for any name kb_policy_name() writes. */
#define KB_POLICY_NAME_MAX 40

/* The rules-file name of a kind, purpose or handling value (the proto name
 * without prefix, lowercase), or the number when this version has none.
 * Writes into buf (len bytes, cut if short) and returns it. */
const char *kb_policy_name(kb_policy_field_t field, int value, char *buf, size_t len);

/* The payload member ("signal", "referral", "referral_update", "notice")
 * that envelopes of kind carry, or NULL for a kind without payload. */
const char *kb_policy_kind_member(int kind);

/* True for the kinds the broker alone writes and signs (match and expiry
 * notices): no rule may name them and no agency may send them. */
int kb_policy_kind_is_notice(int kind);

/* True if withholding redact path `path` changes a message of kind: the
 * path lies under that kind's payload member. The broker withholds only
 * such paths (kb_seal_redact finds nothing else to withhold); a rule for
 * several kinds lists paths for each, and `policy explain` shows only the
 * ones of the kind asked. */
int kb_policy_redact_applies(const char *path, int kind);

/* A finding of the linter, located in the file. */
typedef struct {
    int line;                 /* 1-based line of the rule (or key) */
    int column;               /* 1-based column */
    int is_error;             /* 1 error (the file is refused), 0 warning */
    char message[320];        /* what is wrong, naming the rule id */
} kb_policy_issue_t;

/* Lint the rules of conf at time now_us. Errors: an allow rule that deny
 * rules fully shadow (whatever it allows, a deny rule refuses), an expired
 * rule (at its valid_until). Warnings: an allow rule that is never the first
 * match for any (from, to, kind, purpose, handling) because earlier allow
 * rules (and deny rules) cover all of it, naming them; a rule whose from
 * and to are the same single agency; a rule for several kinds that
 * withholds a field from one kind but not the same field where another of
 * its kinds carries it (signal.narrative but not referral.signal.narrative).
 * Issues come in file order. Uses
 * conf->policy when set, else builds a temporary index. *issues is the
 * caller's (free()); returns KB_OK, KB_EINVAL, KB_ENOMEM or KB_ETOOBIG. */
int kb_policy_lint(const kb_conf_t *conf, int64_t now_us, kb_policy_issue_t **issues, size_t *n_issues);

#endif
