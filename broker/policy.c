/*
 * policy.c - the sharing rules in force (policy.h): an index of the rules
 * by (sender, recipient) pair, decisions, fan-out and the linter.
 *
 * Layout. Agencies are numbered by their position in conf->agencies and
 * found by id through an open-addressing hash table. Every rule is expanded
 * into one entry per (sender, recipient) pair it names, except an agency to
 * itself; the entries of one pair lie next to each other in one array, deny
 * rules first and allow rules after them, each part in file order. A second
 * hash table maps the pair to its run of entries and to the union of their
 * kind and purpose bits, so most refusals need no entry at all. A decision
 * therefore costs two id lookups, one pair lookup and a walk over the few
 * rules that name that pair, whatever the number of rules.
 *
 * Invariants: the index is read-only once built and borrows the conf (rule
 * ids, legal basis texts, agency ids), which must outlive it; a decision
 * never allocates. Deny entries come first, so the first deny rule that
 * matches refuses at once and the first allow rule that matches after all
 * deny entries decides.
 *
 * The linter walks the same index pair by pair: per allow rule it works out
 * whether some (kind, purpose) of some pair is left over by the deny rules
 * (else the rule can never allow anything: an error) and by the allow rules
 * before it that allow at least its handling codes for at least as long
 * (else it never decides: a warning). It keeps, per pair, the union of the
 * purposes of the rules before each one per (kind, handling code, expiry)
 * (s_walk_t), so a rule costs a few lookups, not a walk over every rule
 * before it: 40,000 rules on one pair lint in about a second, not minutes.
 * Only for a rule that never decides does a second walk collect the rules
 * its message names, and it stops once it has them.
 *
 * Used by conf.c (built at the end of each load), route.c, the `ketenbus
 * policy` commands and the tests.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"
#include "policy.h"

#define KB_POLICY_MAX_BIT    31    /* kinds and purposes are bits of a uint32_t */
#define KB_POLICY_MIN_SLOTS  16u   /* smallest hash table */
#define KB_POLICY_NAMED      3u    /* rules a lint message names before "and others" */
#define KB_POLICY_TIME_TEXT  32u   /* "2026-01-01" or an RFC 3339 time */
#define KB_POLICY_EXPIRY_WARN_US (30LL * 86400 * 1000000) /* warn this long before a rule expires */
#define KB_POLICY_SHOW       64    /* characters of an unknown agency id quoted in a reason */
#define KB_POLICY_NONE       SIZE_MAX /* no such agency */

#define S_US_PER_S   1000000LL
#define S_US_PER_DAY (86400LL * S_US_PER_S)

/* One rule as one pair sees it, with the fields a decision tests copied in
 * so that a walk over a pair's rules stays in a cache line or two. */
typedef struct {
    uint32_t rule;        /* index in conf->rules */
    uint32_t kinds;       /* the rule's kind bits */
    uint32_t purposes;    /* the rule's purpose bits */
    uint8_t deny;         /* 1 for a deny rule */
    uint8_t max_handling; /* highest handling code (allow rules) */
    uint8_t expires;      /* 1 if the rule has a valid_until */
} s_entry_t;

/* A (sender, recipient) pair that some rule names. */
typedef struct {
    uint64_t key;         /* (sender index + 1) << 32 | (recipient index + 1); 0: free slot */
    uint32_t first;       /* its entries are entries[first .. first + n) */
    uint32_t n;           /* number of entries */
    uint32_t n_deny;      /* the first n_deny of them are deny rules */
    uint32_t kinds;       /* union of the entries' kinds */
    uint32_t purposes;    /* union of the entries' purposes */
} s_pair_t;

struct kb_policy {
    const kb_conf_t *conf;    /* the configuration indexed (borrowed) */
    uint32_t *agency_slots;   /* agency index + 1 per slot, 0: free */
    size_t agency_mask;       /* number of agency slots - 1 (a power of two - 1) */
    s_pair_t *pairs;          /* pair hash table */
    size_t pair_mask;         /* number of pair slots - 1 */
    s_entry_t *entries;       /* the entries of every pair, pair after pair */
    size_t n_entries;         /* entries in use */
};

/* How the rules of one pair answer a question. */
typedef enum {
    S_DEFAULT,  /* no rule matches: default deny */
    S_ALLOW,    /* an allow rule decides */
    S_DENY,     /* a deny rule refuses */
    S_HANDLING, /* the first allow rule otherwise matching allows a lower handling code */
    S_EXPIRED,  /* the first allow rule otherwise matching has expired */
} s_verdict_t;

/* -------------------------------------------------------------- hashing */

static size_t s_hash_text(const char *s)
{
    /* FNV-1a, 64 bit. */
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 29));
}

static size_t s_hash_pair(uint64_t key)
{
    /* The finaliser of MurmurHash3: every key bit moves every slot bit. */
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    key *= 0xc4ceb9fe1a85ec53ULL;
    key ^= key >> 33;
    return (size_t)key;
}

static uint64_t s_pair_key(size_t from, size_t to)
{
    return ((uint64_t)(from + 1) << 32) | (uint64_t)(to + 1);
}

/* Slots for n keys at most half full, a power of two; 0 if too many. */
static size_t s_slots_for(size_t n)
{
    size_t cap = KB_POLICY_MIN_SLOTS;
    while (cap / 2 < n) {
        if (cap > SIZE_MAX / 4)
            return 0;
        cap *= 2;
    }
    return cap;
}

static size_t s_agency_find(const kb_policy_t *p, const char *id)
{
    const kb_agency_t *agencies = p->conf->agencies;
    for (size_t j = s_hash_text(id) & p->agency_mask;; j = (j + 1) & p->agency_mask) {
        uint32_t slot = p->agency_slots[j];
        if (slot == 0)
            return KB_POLICY_NONE;
        if (strcmp(agencies[slot - 1].id, id) == 0)
            return slot - 1;
    }
}

static const s_pair_t *s_pair_find(const kb_policy_t *p, size_t from, size_t to)
{
    uint64_t key = s_pair_key(from, to);
    for (size_t j = s_hash_pair(key) & p->pair_mask;; j = (j + 1) & p->pair_mask) {
        const s_pair_t *pair = &p->pairs[j];
        if (pair->key == key)
            return pair;
        if (pair->key == 0)
            return NULL;
    }
}

/* The pair's slot, claimed if it is new. The table never fills: it has
 * twice as many slots as there can be pairs. */
static s_pair_t *s_pair_claim(kb_policy_t *p, size_t from, size_t to)
{
    uint64_t key = s_pair_key(from, to);
    size_t j = s_hash_pair(key) & p->pair_mask;
    while (p->pairs[j].key != 0 && p->pairs[j].key != key)
        j = (j + 1) & p->pair_mask;
    p->pairs[j].key = key;
    return &p->pairs[j];
}

/* ------------------------------------------------------------------ build */

static int s_index_agencies(kb_policy_t *p)
{
    const kb_conf_t *c = p->conf;
    if (c->n_agencies >= UINT32_MAX)
        return kb_error_set(KB_ETOOBIG, "policy: too many agencies");
    size_t cap = s_slots_for(c->n_agencies);
    p->agency_slots = cap ? calloc(cap, sizeof *p->agency_slots) : NULL;
    if (!p->agency_slots)
        return kb_error_set(KB_ENOMEM, "policy: out of memory");
    p->agency_mask = cap - 1;
    for (size_t i = 0; i < c->n_agencies; i++) {
        size_t j = s_hash_text(c->agencies[i].id) & p->agency_mask;
        while (p->agency_slots[j] != 0)
            j = (j + 1) & p->agency_mask;
        p->agency_slots[j] = (uint32_t)(i + 1);
    }
    return KB_OK;
}

/* Count or fill the entries of every pair of every rule. In the counting
 * pass (fill NULL) each pair's n and n_deny grow; in the filling pass the
 * entries are written at the cursors, which start at each pair's first
 * deny and first allow entry. */
static void s_walk_rules(kb_policy_t *p, uint32_t *deny_at, uint32_t *allow_at)
{
    const kb_conf_t *c = p->conf;
    for (size_t r = 0; r < c->n_rules; r++) {
        const kb_rule_t *rule = &c->rules[r];
        for (size_t f = 0; f < rule->n_from; f++) {
            /* An id that is not an agency (only in a hand-built conf) names no pair. */
            size_t from = s_agency_find(p, rule->from[f]);
            if (from == KB_POLICY_NONE)
                continue;
            for (size_t t = 0; t < rule->n_to; t++) {
                size_t to = s_agency_find(p, rule->to[t]);
                if (to == KB_POLICY_NONE || to == from)
                    continue; /* nobody sends to itself */
                s_pair_t *pair = s_pair_claim(p, from, to);
                if (!deny_at) {
                    pair->n++;
                    pair->n_deny += rule->deny ? 1u : 0u;
                    continue;
                }
                size_t slot = (size_t)(pair - p->pairs);
                uint32_t at = rule->deny ? deny_at[slot]++ : allow_at[slot]++;
                s_entry_t *e = &p->entries[at];
                e->rule = (uint32_t)r;
                e->kinds = rule->kinds;
                e->purposes = rule->purposes;
                e->deny = rule->deny ? 1 : 0;
                e->max_handling = (uint8_t)(rule->max_handling > 0 && rule->max_handling <= UINT8_MAX
                                                ? rule->max_handling : 0);
                e->expires = rule->valid_until_us != 0;
                pair->kinds |= rule->kinds;
                pair->purposes |= rule->purposes;
            }
        }
    }
}

static int s_index_rules(kb_policy_t *p)
{
    const kb_conf_t *c = p->conf;
    uint64_t total = 0;
    for (size_t r = 0; r < c->n_rules; r++)
        total += (uint64_t)c->rules[r].n_from * c->rules[r].n_to;
    if (total > KB_CONF_MAX_PAIRS)
        return kb_error_set(KB_ETOOBIG, "policy: the rules name %llu sender/recipient pairs, more than %u",
                            (unsigned long long)total, KB_CONF_MAX_PAIRS);
    size_t cap = s_slots_for((size_t)total);
    p->pairs = calloc(cap, sizeof *p->pairs);
    if (!p->pairs)
        return kb_error_set(KB_ENOMEM, "policy: out of memory");
    p->pair_mask = cap - 1;
    s_walk_rules(p, NULL, NULL);

    uint32_t *deny_at = calloc(cap, sizeof *deny_at);
    uint32_t *allow_at = calloc(cap, sizeof *allow_at);
    size_t used = 0;
    for (size_t j = 0; j < cap; j++) {
        s_pair_t *pair = &p->pairs[j];
        if (pair->key == 0)
            continue;
        pair->first = (uint32_t)used;
        used += pair->n;
    }
    p->entries = used ? calloc(used, sizeof *p->entries) : NULL;
    if (!deny_at || !allow_at || (used && !p->entries)) {
        free(deny_at);
        free(allow_at);
        return kb_error_set(KB_ENOMEM, "policy: out of memory");
    }
    p->n_entries = used;
    for (size_t j = 0; j < cap; j++) {
        deny_at[j] = p->pairs[j].first;
        allow_at[j] = p->pairs[j].first + p->pairs[j].n_deny;
    }
    s_walk_rules(p, deny_at, allow_at);
    free(deny_at);
    free(allow_at);
    return KB_OK;
}

static int s_build(const kb_conf_t *conf, kb_policy_t **out)
{
    *out = NULL;
    if (!conf)
        return kb_error_set(KB_EINVAL, "kb_policy_new: no configuration");
    kb_policy_t *p = calloc(1, sizeof *p);
    if (!p)
        return kb_error_set(KB_ENOMEM, "policy: out of memory");
    p->conf = conf;
    int rc = s_index_agencies(p);
    if (rc == KB_OK)
        rc = s_index_rules(p);
    if (rc != KB_OK)
        kb_policy_destroy(&p);
    *out = p;
    return rc;
}

kb_policy_t *kb_policy_new(const kb_conf_t *conf)
{
    kb_policy_t *p;
    s_build(conf, &p);
    return p;
}

void kb_policy_destroy(kb_policy_t **p)
{
    if (!p || !*p)
        return;
    free((*p)->agency_slots);
    free((*p)->pairs);
    free((*p)->entries);
    free(*p);
    *p = NULL;
}

/* -------------------------------------------------------------- decisions */

static int s_expired(const s_entry_t *e, const kb_rule_t *rule, int64_t now_us)
{
    return e->expires && now_us >= rule->valid_until_us;
}

/* The answer of the rules of (from, to); *rule is the deciding rule, or for
 * S_HANDLING and S_EXPIRED the allow rule that nearly matched. With
 * with_deny 0 the deny rules are passed over: what the allow rules alone
 * would say. */
static s_verdict_t s_match(const kb_policy_t *p, size_t from, size_t to, int kind, int purpose, int handling,
                           int64_t now_us, int with_deny, const kb_rule_t **rule)
{
    *rule = NULL;
    if (kind <= 0 || kind > KB_POLICY_MAX_BIT || purpose <= 0 || purpose > KB_POLICY_MAX_BIT)
        return S_DEFAULT;
    const s_pair_t *pair = s_pair_find(p, from, to);
    uint32_t kind_bit = 1u << kind, purpose_bit = 1u << purpose;
    if (!pair || !(pair->kinds & kind_bit) || !(pair->purposes & purpose_bit))
        return S_DEFAULT;
    const kb_rule_t *rules = p->conf->rules;
    const s_entry_t *e = p->entries + pair->first;
    const s_entry_t *deny_end = e + pair->n_deny, *end = e + pair->n;
    for (; with_deny && e < deny_end; e++) {
        if ((e->kinds & kind_bit) && (e->purposes & purpose_bit) && !s_expired(e, &rules[e->rule], now_us)) {
            *rule = &rules[e->rule];
            return S_DENY;
        }
    }
    s_verdict_t near = S_DEFAULT;
    for (e = deny_end; e < end; e++) {
        if (!(e->kinds & kind_bit) || !(e->purposes & purpose_bit))
            continue;
        const kb_rule_t *r = &rules[e->rule];
        s_verdict_t miss = s_expired(e, r, now_us) ? S_EXPIRED : handling > e->max_handling ? S_HANDLING : S_ALLOW;
        if (miss == S_ALLOW) {
            *rule = r;
            return S_ALLOW;
        }
        if (near == S_DEFAULT) {
            near = miss;
            *rule = r;
        }
    }
    return near;
}

static char s_lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

const char *kb_policy_name(kb_policy_field_t field, int value, char *buf, size_t len)
{
    const ProtobufCEnumDescriptor *d = field == KB_POLICY_KIND      ? &ketenbus__kind__descriptor
                                       : field == KB_POLICY_PURPOSE ? &ketenbus__purpose__descriptor
                                                                    : &ketenbus__handling__descriptor;
    const char *prefix = field == KB_POLICY_KIND ? "KIND_" : field == KB_POLICY_PURPOSE ? "PURPOSE_" : "HANDLING_";
    if (!buf || len == 0)
        return "";
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    size_t plen = strlen(prefix);
    if (!v || strncmp(v->name, prefix, plen) != 0) {
        snprintf(buf, len, "%d", value);
        return buf;
    }
    size_t i = 0;
    for (const char *s = v->name + plen; *s && i + 1 < len; s++)
        buf[i++] = s_lower(*s);
    buf[i] = '\0';
    return buf;
}

/* The last day a rule holds when its end is a midnight (as a date in the
 * file gives), else the instant it ends. */
static void s_until_text(int64_t us, char out[KB_POLICY_TIME_TEXT])
{
    struct tm tm;
    if (us % S_US_PER_DAY == 0) {
        time_t last = (time_t)((us - 1) / S_US_PER_S);
        gmtime_r(&last, &tm);
        strftime(out, KB_POLICY_TIME_TEXT, "%Y-%m-%d", &tm);
    } else if (us % S_US_PER_S == 0) {
        time_t t = (time_t)(us / S_US_PER_S);
        gmtime_r(&t, &tm);
        strftime(out, KB_POLICY_TIME_TEXT, "%Y-%m-%dT%H:%M:%SZ", &tm);
    } else {
        kb_time_format(us, out);
    }
}

static void s_reason(kb_decision_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The reason of a decision; the limits on ids and basis texts keep it
 * short, and should one still be cut it ends in "...". */
static void s_reason(kb_decision_t *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof out->reason)
        memcpy(out->reason + sizeof out->reason - 4, "...", 4);
}

int kb_policy_decide(const kb_policy_t *p, const char *from, const char *to, int kind, int purpose, int handling,
                     int64_t now_us, kb_decision_t *out)
{
    if (!out)
        return kb_error_set(KB_EINVAL, "kb_policy_decide: NULL argument");
    out->allowed = 0;
    out->rule = NULL;
    out->reason[0] = '\0';
    if (!p || !from || !to) {
        s_reason(out, "refused: no policy, sender or recipient given");
        return kb_error_set(KB_EINVAL, "kb_policy_decide: NULL argument");
    }
    size_t fi = s_agency_find(p, from), ti = s_agency_find(p, to);
    char k[KB_POLICY_NAME_MAX], pu[KB_POLICY_NAME_MAX], h[KB_POLICY_NAME_MAX], hmax[KB_POLICY_NAME_MAX];
    if (fi == KB_POLICY_NONE || ti == KB_POLICY_NONE) {
        s_reason(out, "refused: unknown agency '%.*s'", KB_POLICY_SHOW, fi == KB_POLICY_NONE ? from : to);
        return KB_OK;
    }
    if (fi == ti) {
        s_reason(out, "refused: '%s' is both sender and recipient", from);
        return KB_OK;
    }
    if (handling < KETENBUS__HANDLING__HANDLING_H0) {
        s_reason(out, "refused: unknown handling code %d", handling);
        return KB_OK;
    }
    const kb_rule_t *rule;
    switch (s_match(p, fi, ti, kind, purpose, handling, now_us, 1, &rule)) {
    case S_ALLOW:
        out->allowed = 1;
        out->rule = rule;
        s_reason(out, "allowed by rule %s (basis %s)", rule->id, rule->legal_basis ? rule->legal_basis : "none given");
        break;
    case S_DENY:
        out->rule = rule;
        s_reason(out, "refused by deny rule %s", rule->id);
        break;
    case S_HANDLING:
        s_reason(out, "refused: rule %s allows at most %s; message is %s", rule->id,
                 kb_policy_name(KB_POLICY_HANDLING, rule->max_handling, hmax, sizeof hmax),
                 kb_policy_name(KB_POLICY_HANDLING, handling, h, sizeof h));
        break;
    case S_EXPIRED: {
        char until[KB_POLICY_TIME_TEXT];
        s_until_text(rule->valid_until_us, until);
        s_reason(out, "refused: rule %s expired on %s", rule->id, until);
        break;
    }
    case S_DEFAULT:
        s_reason(out, "refused: no rule allows kind %s from %s to %s for purpose %s",
                 kb_policy_name(KB_POLICY_KIND, kind, k, sizeof k), from, to,
                 kb_policy_name(KB_POLICY_PURPOSE, purpose, pu, sizeof pu));
        break;
    }
    return KB_OK;
}

/* The fan-out, and with with_denied 1 also the agencies an allow rule would
 * reach but a deny rule refuses. Only a pair whose deny rule matches is
 * looked at twice: without deny rules this costs what the fan-out does. */
static size_t s_fanout(const kb_policy_t *p, const char *from, int kind, int purpose, int handling, int64_t now_us,
                       int with_denied, const char **out, size_t max)
{
    if (!p || !from || !out || handling < KETENBUS__HANDLING__HANDLING_H0)
        return 0;
    size_t fi = s_agency_find(p, from), n = 0;
    if (fi == KB_POLICY_NONE)
        return 0;
    const kb_conf_t *c = p->conf;
    for (size_t ti = 0; ti < c->n_agencies && n < max; ti++) {
        if (ti == fi)
            continue;
        const kb_rule_t *rule;
        s_verdict_t v = s_match(p, fi, ti, kind, purpose, handling, now_us, 1, &rule);
        if (v == S_ALLOW ||
            (with_denied && v == S_DENY && s_match(p, fi, ti, kind, purpose, handling, now_us, 0, &rule) == S_ALLOW))
            out[n++] = c->agencies[ti].id;
    }
    return n;
}

size_t kb_policy_fanout(const kb_policy_t *p, const char *from, int kind, int purpose, int handling, int64_t now_us,
                        const char **out, size_t max)
{
    return s_fanout(p, from, kind, purpose, handling, now_us, 0, out, max);
}

static int s_fanout_all(const kb_policy_t *p, const char *from, int kind, int purpose, int handling, int64_t now_us,
                        int with_denied, const char ***out, size_t *n)
{
    if (!out || !n)
        return kb_error_set(KB_EINVAL, "policy fan-out: NULL argument");
    *out = NULL;
    *n = 0;
    if (!p || !from)
        return kb_error_set(KB_EINVAL, "policy fan-out: NULL argument");
    size_t room = p->conf->n_agencies ? p->conf->n_agencies : 1;
    const char **ids = calloc(room, sizeof *ids);
    if (!ids)
        return kb_error_set(KB_ENOMEM, "policy: out of memory for a fan-out to %zu agencies", room);
    *n = s_fanout(p, from, kind, purpose, handling, now_us, with_denied, ids, room);
    *out = ids;
    return KB_OK;
}

int kb_policy_fanout_all(const kb_policy_t *p, const char *from, int kind, int purpose, int handling, int64_t now_us,
                         const char ***out, size_t *n)
{
    return s_fanout_all(p, from, kind, purpose, handling, now_us, 0, out, n);
}

int kb_policy_fanout_candidates(const kb_policy_t *p, const char *from, int kind, int purpose, int handling,
                                int64_t now_us, const char ***out, size_t *n)
{
    return s_fanout_all(p, from, kind, purpose, handling, now_us, 1, out, n);
}

const char *kb_policy_kind_member(int kind)
{
    switch (kind) {
    case KETENBUS__KIND__KIND_SIGNAL: return "signal";
    case KETENBUS__KIND__KIND_REFERRAL: return "referral";
    case KETENBUS__KIND__KIND_REFERRAL_UPDATE: return "referral_update";
    case KETENBUS__KIND__KIND_MATCH_NOTICE:
    case KETENBUS__KIND__KIND_EXPIRY_NOTICE: return "notice";
    default: return NULL;
    }
}

int kb_policy_kind_is_notice(int kind)
{
    return kind == KETENBUS__KIND__KIND_MATCH_NOTICE || kind == KETENBUS__KIND__KIND_EXPIRY_NOTICE;
}

/* True if path is prefix itself or lies under it ("a.b" under "a"). */
static int s_under(const char *path, const char *prefix)
{
    size_t len = strlen(prefix);
    return strncmp(path, prefix, len) == 0 && (path[len] == '\0' || path[len] == '.');
}

int kb_policy_redact_applies(const char *path, int kind)
{
    const char *member = kb_policy_kind_member(kind);
    return path && member && s_under(path, member);
}

/* ------------------------------------------------------------------- lint */

/* Payloads that carry another kind's payload inside them (proto/ketenbus.proto):
 * a referral holds the signal it rests on. The same field then has a path
 * per kind, and a rule for both kinds must withhold both to withhold it. */
static const struct {
    int kind;            /* the kind whose payload embeds */
    const char *at;      /* where: the embedded payload's path */
    int inner;           /* the embedded payload's own kind */
} s_embeds[] = {
    {KETENBUS__KIND__KIND_REFERRAL, "referral.signal", KETENBUS__KIND__KIND_SIGNAL},
};

/* True if some redact path of rule r withholds path (it or a path above it). */
static int s_withholds(const kb_rule_t *r, const char *path)
{
    for (size_t i = 0; i < r->n_redact; i++)
        if (s_under(path, r->redact[i]))
            return 1;
    return 0;
}

/* What the linter learns about one rule over all pairs. */
typedef struct {
    uint8_t has_pairs;                /* it names a pair other than an agency to itself */
    uint8_t live;                     /* some case of it is refused by no deny rule */
    uint8_t decides;                  /* ...nor allowed first by an earlier allow rule */
    uint8_t more_deny;                /* more deny rules overlap it than deny[] names */
    uint8_t more_allow;               /* more earlier allow rules overlap it than allow[] names */
    uint32_t n_deny;                  /* entries used in deny[] */
    uint32_t n_allow;                 /* entries used in allow[] */
    uint32_t deny[KB_POLICY_NAMED];   /* deny rules that refuse part of it */
    uint32_t allow[KB_POLICY_NAMED];  /* earlier allow rules that allow part of it first */
} s_lint_t;

/* Issues as they are found, growing. */
typedef struct {
    kb_policy_issue_t *items; /* the issues */
    size_t n;                 /* in use */
    size_t cap;               /* allocated */
} s_issues_t;

/* True if rule x applies for at least as long as rule a does. */
static int s_lasts(const kb_rule_t *x, const kb_rule_t *a)
{
    return x->valid_until_us == 0 || (a->valid_until_us != 0 && x->valid_until_us >= a->valid_until_us);
}

/* Remember rule r in a list of at most KB_POLICY_NAMED, once. */
static void s_note(uint32_t *list, uint32_t *n, uint8_t *more, uint32_t r)
{
    for (uint32_t i = 0; i < *n; i++)
        if (list[i] == r)
            return;
    if (*n < KB_POLICY_NAMED)
        list[(*n)++] = r;
    else
        *more = 1;
}

/* What the linter keeps of one pair while it walks the pair's allow
 * entries in file order, so that each entry costs a few lookups instead
 * of a walk over every entry before it. Purposes are unions (bits) per
 * class of rule that can take a case from a later one: the class is the
 * kind, the handling code allowed, and the expiry. Rules that never expire
 * are one union per (kind, handling); expiring ones sit in a Fenwick tree
 * over their distinct valid_until values, latest first, so the union of
 * every rule lasting at least until t is one prefix query. Reused from
 * pair to pair; grows to the largest pair. */
typedef struct {
    int64_t *untils;        /* distinct valid_until values of the pair (none 0), ascending */
    size_t n_untils;        /* in use */
    uint32_t *deny_after;   /* [kind * (n_untils + 1) + i]: deny purposes of rules lasting until untils[i] or later */
    uint32_t *fenwick;      /* [(kind * n_hand + h) * (n_untils + 1) + r]: earlier allow purposes, 1-based r */
    uint32_t deny_forever[KB_POLICY_MAX_BIT + 1];  /* deny purposes of rules without expiry, per kind */
    uint32_t *forever;      /* [kind * n_hand + h]: earlier allow purposes without expiry */
    size_t n_kind;          /* kinds in use: highest kind bit of the pair + 1 */
    size_t n_hand;          /* handling codes in use: highest max_handling of the pair + 1 */
    size_t cap_untils;      /* allocated untils */
    size_t cap_cells;       /* allocated fenwick cells */
    size_t cap_deny;        /* allocated deny_after cells */
    size_t cap_forever;     /* allocated forever cells */
} s_walk_t;

static void s_walk_free(s_walk_t *w)
{
    free(w->untils);
    free(w->deny_after);
    free(w->fenwick);
    free(w->forever);
}

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Grow *p to n cells of size sz (content not kept); KB_ENOMEM. */
static int s_room(void **p, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap)
        return KB_OK;
    if (n > SIZE_MAX / sz)
        return kb_error_set(KB_ENOMEM, "policy lint: out of memory");
    void *q = malloc(n * sz);
    if (!q)
        return kb_error_set(KB_ENOMEM, "policy lint: out of memory");
    free(*p);
    *p = q;
    *cap = n;
    return KB_OK;
}

/* Position (1-based, latest first) of a valid_until value of the pair. */
static size_t s_until_rank(const s_walk_t *w, int64_t until)
{
    size_t lo = 0, hi = w->n_untils;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->untils[mid] < until)
            lo = mid + 1;
        else
            hi = mid;
    }
    return w->n_untils - lo; /* untils[lo] == until */
}

/* Set w up for the pair with entries [deny, end) whose allow entries
 * start at allows: the deny unions filled, the allow unions empty. */
static int s_walk_pair(const kb_conf_t *c, s_walk_t *w, const s_entry_t *deny, const s_entry_t *allows,
                       const s_entry_t *end)
{
    size_t n = (size_t)(end - deny);
    int rc = s_room((void **)&w->untils, &w->cap_untils, n ? n : 1, sizeof *w->untils);
    if (rc != KB_OK)
        return rc;
    uint32_t kinds = 0;
    unsigned hand = 0;
    w->n_untils = 0;
    for (const s_entry_t *e = deny; e < end; e++) {
        kinds |= e->kinds;
        if (e->max_handling > hand)
            hand = e->max_handling;
        if (c->rules[e->rule].valid_until_us != 0)
            w->untils[w->n_untils++] = c->rules[e->rule].valid_until_us;
    }
    qsort(w->untils, w->n_untils, sizeof *w->untils, s_cmp_i64);
    size_t u = 0;
    for (size_t i = 0; i < w->n_untils; i++)
        if (u == 0 || w->untils[u - 1] != w->untils[i])
            w->untils[u++] = w->untils[i];
    w->n_untils = u;
    w->n_kind = 1;
    for (size_t k = 1; k <= KB_POLICY_MAX_BIT; k++)
        if (kinds & (1u << k))
            w->n_kind = k + 1;
    w->n_hand = (size_t)hand + 1;
    size_t row = u + 1, cells = w->n_kind * w->n_hand * row;
    if ((rc = s_room((void **)&w->deny_after, &w->cap_deny, w->n_kind * row, sizeof *w->deny_after)) != KB_OK ||
        (rc = s_room((void **)&w->fenwick, &w->cap_cells, cells, sizeof *w->fenwick)) != KB_OK ||
        (rc = s_room((void **)&w->forever, &w->cap_forever, w->n_kind * w->n_hand, sizeof *w->forever)) != KB_OK)
        return rc;
    memset(w->deny_after, 0, w->n_kind * row * sizeof *w->deny_after);
    memset(w->fenwick, 0, cells * sizeof *w->fenwick);
    memset(w->forever, 0, w->n_kind * w->n_hand * sizeof *w->forever);
    memset(w->deny_forever, 0, sizeof w->deny_forever);
    for (const s_entry_t *d = deny; d < allows; d++) {
        int64_t until = c->rules[d->rule].valid_until_us;
        for (size_t k = 1; k < w->n_kind; k++) {
            if (!(d->kinds & (1u << k)))
                continue;
            if (until == 0)
                w->deny_forever[k] |= d->purposes;
            else
                w->deny_after[k * row + (u - s_until_rank(w, until))] |= d->purposes;
        }
    }
    /* from "lasting until exactly untils[i]" to "until untils[i] or later" */
    for (size_t k = 1; k < w->n_kind; k++)
        for (size_t i = u; i-- > 1;)
            w->deny_after[k * row + i - 1] |= w->deny_after[k * row + i];
    return KB_OK;
}

/* Purposes of kind k that deny rules lasting as long as a rule ending at
 * until (0: never) refuse. */
static uint32_t s_refused(const s_walk_t *w, size_t k, int64_t until)
{
    uint32_t refused = w->deny_forever[k];
    if (until != 0)
        refused |= w->deny_after[k * (w->n_untils + 1) + (w->n_untils - s_until_rank(w, until))];
    return refused;
}

/* Purposes of kind k that earlier allow rules take first from a rule
 * allowing up to handling code hand and ending at until: they allow at
 * least that handling code, for at least as long. */
static uint32_t s_taken(const s_walk_t *w, size_t k, unsigned hand, int64_t until)
{
    uint32_t taken = 0;
    size_t row = w->n_untils + 1;
    for (size_t h = hand; h < w->n_hand; h++) {
        taken |= w->forever[k * w->n_hand + h];
        if (until == 0)
            continue;
        const uint32_t *tree = &w->fenwick[(k * w->n_hand + h) * row];
        for (size_t r = s_until_rank(w, until); r > 0; r -= r & (~r + 1))
            taken |= tree[r];
    }
    return taken;
}

/* Add allow entry e to the unions of the earlier allow rules. */
static void s_walk_add(const kb_conf_t *c, s_walk_t *w, const s_entry_t *e)
{
    int64_t until = c->rules[e->rule].valid_until_us;
    size_t row = w->n_untils + 1, rank = until ? s_until_rank(w, until) : 0;
    for (size_t k = 1; k < w->n_kind; k++) {
        if (!(e->kinds & (1u << k)))
            continue;
        if (until == 0) {
            w->forever[k * w->n_hand + e->max_handling] |= e->purposes;
            continue;
        }
        uint32_t *tree = &w->fenwick[(k * w->n_hand + e->max_handling) * row];
        for (size_t r = rank; r <= w->n_untils; r += r & (~r + 1))
            tree[r] |= e->purposes;
    }
}

/* Look at the allow entry e with the pair's unions in w: is some (kind,
 * purpose) of it left over by the deny rules (live), and by the earlier
 * allow rules (it decides)? */
static void s_lint_entry(const kb_conf_t *c, const s_walk_t *w, s_lint_t *lint, const s_entry_t *e)
{
    s_lint_t *l = &lint[e->rule];
    l->has_pairs = 1;
    if (l->decides)
        return; /* nothing left to find out */
    int64_t until = c->rules[e->rule].valid_until_us;
    for (size_t k = 1; k < w->n_kind; k++) {
        if (!(e->kinds & (1u << k)))
            continue;
        uint32_t rest = e->purposes & ~s_refused(w, k, until);
        if (!rest)
            continue;
        l->live = 1;
        if (rest & ~s_taken(w, k, e->max_handling, until)) {
            l->decides = 1;
            return;
        }
    }
}

/* The rules a warning or error about rule e names: deny rules that refuse
 * part of it and earlier allow rules that take part of it first, in the
 * order of the pairs and of the file, the first KB_POLICY_NAMED of each.
 * Only for rules that never decide; a walk stops once it has its names. */
static void s_lint_names(const kb_conf_t *c, const s_walk_t *w, s_lint_t *lint, const s_entry_t *deny,
                         const s_entry_t *deny_end, const s_entry_t *allows, const s_entry_t *e)
{
    const kb_rule_t *a = &c->rules[e->rule];
    s_lint_t *l = &lint[e->rule];
    for (size_t k = 1; k < w->n_kind; k++) {
        uint32_t bit = 1u << k;
        if (!(e->kinds & bit))
            continue;
        for (const s_entry_t *d = deny; d < deny_end && !(l->n_deny == KB_POLICY_NAMED && l->more_deny); d++)
            if ((d->kinds & bit) && (d->purposes & e->purposes) && s_lasts(&c->rules[d->rule], a))
                s_note(l->deny, &l->n_deny, &l->more_deny, d->rule);
        uint32_t rest = e->purposes & ~s_refused(w, k, a->valid_until_us);
        if (!rest)
            continue;
        for (const s_entry_t *x = allows; x < e && !(l->n_allow == KB_POLICY_NAMED && l->more_allow); x++)
            if ((x->kinds & bit) && (x->purposes & rest) && x->max_handling >= e->max_handling &&
                s_lasts(&c->rules[x->rule], a))
                s_note(l->allow, &l->n_allow, &l->more_allow, x->rule);
    }
}

static int s_issue(s_issues_t *is, int line, int column, int is_error, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int s_issue(s_issues_t *is, int line, int column, int is_error, const char *fmt, ...)
{
    if (is->n == is->cap) {
        size_t cap = is->cap ? is->cap * 2 : 8;
        if (cap > SIZE_MAX / sizeof *is->items)
            return kb_error_set(KB_ENOMEM, "policy lint: out of memory");
        kb_policy_issue_t *items = realloc(is->items, cap * sizeof *items);
        if (!items)
            return kb_error_set(KB_ENOMEM, "policy lint: out of memory");
        is->items = items;
        is->cap = cap;
    }
    kb_policy_issue_t *it = &is->items[is->n++];
    it->line = line;
    it->column = column;
    it->is_error = is_error;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(it->message, sizeof it->message, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof it->message)
        memcpy(it->message + sizeof it->message - 4, "...", 4);
    return KB_OK;
}

/* "deny rule 'd'" or "deny rules 'a', 'b' and 'c'" (", and others"). */
static void s_names(const kb_conf_t *c, const char *what, const uint32_t *list, uint32_t n, int more, char *buf,
                    size_t len)
{
    size_t used = 0;
    int w = snprintf(buf, len, "%s rule%s", what, n + (more ? 1u : 0u) > 1 ? "s" : "");
    used = w > 0 && (size_t)w < len ? (size_t)w : len - 1;
    for (uint32_t i = 0; i < n && used + 1 < len; i++) {
        const char *sep = i == 0 ? " " : (i + 1 == n && !more) ? " and " : ", ";
        w = snprintf(buf + used, len - used, "%s'%s'", sep, c->rules[list[i]].id);
        used = w > 0 && (size_t)w < len - used ? used + (size_t)w : len - 1;
    }
    if (more && used + 1 < len)
        snprintf(buf + used, len - used, " and others");
}

/* A rule for a kind and a kind that embeds it (signal and referral) that
 * withholds a field in one of them but not the same field in the other:
 * the recipient reads in one what the rule hides in the other. */
static int s_lint_redact(const kb_rule_t *r, s_issues_t *is)
{
    for (size_t e = 0; e < sizeof s_embeds / sizeof s_embeds[0]; e++) {
        if (!(r->kinds & (1u << s_embeds[e].kind)) || !(r->kinds & (1u << s_embeds[e].inner)))
            continue;
        const char *inner = kb_policy_kind_member(s_embeds[e].inner), *at = s_embeds[e].at;
        char kind[KB_POLICY_NAME_MAX], other[KB_POLICY_NAME_MAX];
        kb_policy_name(KB_POLICY_KIND, s_embeds[e].kind, kind, sizeof kind);
        kb_policy_name(KB_POLICY_KIND, s_embeds[e].inner, other, sizeof other);
        for (size_t i = 0; i < r->n_redact; i++) {
            const char *p = r->redact[i], *rest, *from_kind, *to_kind, *prefix;
            if (s_under(p, at)) { /* referral.signal.X: is signal.X withheld too? */
                rest = p + strlen(at);
                prefix = inner;
                from_kind = kind;
                to_kind = other;
            } else if (s_under(p, inner)) { /* signal.X: is referral.signal.X? */
                rest = p + strlen(inner);
                prefix = at;
                from_kind = other;
                to_kind = kind;
            } else {
                continue;
            }
            char twin[2 * KB_SHORT_TEXT_MAX];
            int n = snprintf(twin, sizeof twin, "%s%s", prefix, rest);
            /* a whole embedded payload (referral.signal) has no twin path */
            if (*rest == '\0' || n < 0 || (size_t)n >= sizeof twin || s_withholds(r, twin))
                continue;
            int rc = s_issue(is, r->line, r->column, 0,
                             "rule '%s' withholds %s from a %s but not %s from a %s, which carries the same field: "
                             "add %s to redact",
                             r->id, p, from_kind, twin, to_kind, twin);
            if (rc != KB_OK)
                return rc;
        }
    }
    return KB_OK;
}

static int s_lint_rules(const kb_conf_t *c, const s_lint_t *lint, int64_t now_us, s_issues_t *is)
{
    char names[2][sizeof ((kb_policy_issue_t *)0)->message];
    for (size_t i = 0; i < c->n_rules; i++) {
        const kb_rule_t *r = &c->rules[i];
        const s_lint_t *l = &lint[i];
        int rc = KB_OK;
        if (r->valid_until_us != 0 && now_us < r->valid_until_us && r->valid_until_us - now_us <= KB_POLICY_EXPIRY_WARN_US) {
            /* an expired rule is a load error: say so while there is time */
            char until[KB_POLICY_TIME_TEXT];
            s_until_text(r->valid_until_us, until);
            long long days = (long long)((r->valid_until_us - now_us) / (86400LL * 1000000));
            char left[32];
            if (days < 1)
                snprintf(left, sizeof left, "within a day");
            else
                snprintf(left, sizeof left, "in %lld day%s", days, days == 1 ? "" : "s");
            rc = s_issue(is, r->until_line ? r->until_line : r->line, r->until_line ? r->until_column : r->column, 0,
                         "rule '%s' expires on %s (%s); once expired the file no longer loads: extend valid_until "
                         "or remove the rule",
                         r->id, until, left);
            if (rc != KB_OK)
                return rc;
        }
        if (r->valid_until_us != 0 && now_us >= r->valid_until_us) {
            char until[KB_POLICY_TIME_TEXT];
            s_until_text(r->valid_until_us, until);
            rc = s_issue(is, r->until_line ? r->until_line : r->line, r->until_line ? r->until_column : r->column, 1,
                         "rule '%s' expired on %s; remove it or extend valid_until", r->id, until);
        } else if (r->n_from == 1 && r->n_to == 1 && strcmp(r->from[0], r->to[0]) == 0) {
            rc = s_issue(is, r->line, r->column, 0,
                         "rule '%s' names only '%s' in from and to; an agency never sends to itself, so it never "
                         "applies", r->id, r->from[0]);
        } else if (r->deny || !l->has_pairs) {
            continue;
        } else if (!l->live) {
            s_names(c, "deny", l->deny, l->n_deny, l->more_deny, names[0], sizeof names[0]);
            rc = s_issue(is, r->line, r->column, 1, "rule '%s' can never allow anything: %s refuse%s all of it",
                         r->id, names[0], l->n_deny + l->more_deny > 1 ? "" : "s");
        } else if (!l->decides && !l->n_deny) {
            s_names(c, "earlier allow", l->allow, l->n_allow, l->more_allow, names[0], sizeof names[0]);
            rc = s_issue(is, r->line, r->column, 0, "rule '%s' never decides: %s allow%s all of it first", r->id,
                         names[0], l->n_allow + l->more_allow > 1 ? "" : "s");
        } else if (!l->decides) {
            s_names(c, "earlier allow", l->allow, l->n_allow, l->more_allow, names[0], sizeof names[0]);
            s_names(c, "deny", l->deny, l->n_deny, l->more_deny, names[1], sizeof names[1]);
            rc = s_issue(is, r->line, r->column, 0,
                         "rule '%s' never decides: %s allow%s all of it first and %s refuse%s the rest", r->id,
                         names[0], l->n_allow + l->more_allow > 1 ? "" : "s", names[1],
                         l->n_deny + l->more_deny > 1 ? "" : "s");
        }
        if (rc != KB_OK)
            return rc;
        if ((rc = s_lint_redact(r, is)) != KB_OK)
            return rc;
    }
    return KB_OK;
}

int kb_policy_lint(const kb_conf_t *conf, int64_t now_us, kb_policy_issue_t **issues, size_t *n_issues)
{
    if (!conf || !issues || !n_issues)
        return kb_error_set(KB_EINVAL, "kb_policy_lint: NULL argument");
    *issues = NULL;
    *n_issues = 0;
    kb_policy_t *own = NULL;
    const kb_policy_t *p = conf->policy;
    if (!p) {
        int rc = s_build(conf, &own);
        if (rc != KB_OK)
            return rc;
        p = own;
    }
    s_lint_t *lint = calloc(conf->n_rules ? conf->n_rules : 1, sizeof *lint);
    if (!lint) {
        kb_policy_destroy(&own);
        return kb_error_set(KB_ENOMEM, "policy lint: out of memory");
    }
    /* first what every rule decides, then the names for those that never do */
    s_walk_t w = {0};
    int rc = KB_OK;
    for (int names = 0; names < 2 && rc == KB_OK; names++) {
        for (size_t j = 0; j <= p->pair_mask && rc == KB_OK; j++) {
            const s_pair_t *pair = &p->pairs[j];
            if (pair->key == 0)
                continue;
            const s_entry_t *deny = p->entries + pair->first, *allows = deny + pair->n_deny, *end = deny + pair->n;
            int needed = !names;
            for (const s_entry_t *e = allows; e < end && !needed; e++)
                needed = !lint[e->rule].decides;
            if (!needed || (rc = s_walk_pair(conf, &w, deny, allows, end)) != KB_OK)
                continue;
            for (const s_entry_t *e = allows; e < end; e++) {
                if (!names) {
                    s_lint_entry(conf, &w, lint, e);
                    s_walk_add(conf, &w, e);
                } else if (!lint[e->rule].decides) {
                    s_lint_names(conf, &w, lint, deny, allows, allows, e);
                }
            }
        }
    }
    s_walk_free(&w);
    if (rc != KB_OK) {
        free(lint);
        kb_policy_destroy(&own);
        return rc;
    }    s_issues_t is = {0};
    rc = s_lint_rules(conf, lint, now_us, &is);
    free(lint);
    kb_policy_destroy(&own);
    if (rc != KB_OK) {
        free(is.items);
        return rc;
    }
    *issues = is.items;
    *n_issues = is.n;
    return KB_OK;
}
