/*
 * rules.h - sharing decisions: may this sender send this kind to that
 * recipient? Default deny: only an allow rule that names the sender, the
 * recipient and the kind lets a message through.
 *
 * This is the simple form of the rules (from/to/kinds); the full language
 * (purposes, handling codes, legal basis, redaction, deny rules, groups)
 * replaces the bodies of these functions, not their callers.
 */
#ifndef KB_RULES_H
#define KB_RULES_H

#include "conf.h"

/* The first rule allowing (from, to, kind), or NULL when refused (also for
 * a kind outside 1..31 or a NULL argument). */
const kb_rule_t *kb_rules_match(const kb_conf_t *c, const char *from, const char *to, int kind);

/* Recipients for an envelope without explicit recipients: every agency but
 * the sender that some rule allows for (from, kind), in configuration order,
 * each once. Fills up to max ids (borrowed from c) into out; returns the
 * number filled, at most max. */
size_t kb_rules_fanout(const kb_conf_t *c, const char *from, int kind, const char **out, size_t max);

#endif
