/*
 * rules.c - the simple sharing decision: allow rules of from, to and kinds
 * over the loaded configuration, default deny (see rules.h).
 *
 * A message may go from A to B with kind K only if some rule lists A in
 * from, B in to and K in kinds; there are no deny rules yet, so the first
 * such rule is the answer. Fan-out walks the agencies in configuration
 * order, which keeps the recipient list stable and free of duplicates
 * however many rules allow the same recipient. Both are linear scans over
 * the configuration; callers must not modify it meanwhile.
 */
#include <string.h>

#include "rules.h"

/* Highest kind a rule's bit set can hold. */
#define KB_RULES_MAX_KIND 31

static int s_lists(char *const *ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return 1;
    return 0;
}

const kb_rule_t *kb_rules_match(const kb_conf_t *c, const char *from, const char *to, int kind)
{
    if (!c || !from || !to || kind <= 0 || kind > KB_RULES_MAX_KIND)
        return NULL;
    uint32_t bit = 1u << kind;
    for (size_t i = 0; i < c->n_rules; i++) {
        const kb_rule_t *r = &c->rules[i];
        if ((r->kinds & bit) && s_lists(r->from, r->n_from, from) && s_lists(r->to, r->n_to, to))
            return r;
    }
    return NULL;
}

size_t kb_rules_fanout(const kb_conf_t *c, const char *from, int kind, const char **out, size_t max)
{
    size_t n = 0;
    if (!c || !from || !out)
        return 0;
    for (size_t i = 0; i < c->n_agencies && n < max; i++) {
        const char *id = c->agencies[i].id;
        if (strcmp(id, from) != 0 && kb_rules_match(c, from, id, kind))
            out[n++] = id;
    }
    return n;
}
