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
 * - Anything else is refused (default deny).
 * Decisions are O(1) in the number of rules: rules are indexed by
 * (sender, recipient) pair; only the few rules for that pair are looked at.
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

/* Build the index for conf's rules; NULL with kb_last_error() on no memory. */
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

/* A finding of the linter, located in the file. */
typedef struct {
    int line;                 /* 1-based line of the rule (or key) */
    int column;               /* 1-based column */
    int is_error;             /* 1 error (the file is refused), 0 warning */
    char message[320];        /* what is wrong, naming the rule id */
} kb_policy_issue_t;

/* Lint the rules of conf at time now_us. Errors: an allow rule that a deny
 * rule fully shadows, an expired rule. Warnings: rules that can never match
 * (e.g. every sender/recipient pair also covered by an earlier allow rule
 * for all its kinds and purposes, or from == to only). *issues is the
 * caller's (free()); returns KB_OK or KB_ENOMEM. */
int kb_policy_lint(const kb_conf_t *conf, int64_t now_us, kb_policy_issue_t **issues, size_t *n_issues);

#endif
