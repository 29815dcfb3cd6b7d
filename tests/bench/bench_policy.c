/*
 * bench_policy.c - how fast the sharing rules engine decides, with few and
 * with many rules (`make bench-policy`; not part of `make test`).
 *
 * For each size it writes a chain file of BENCH_AGENCIES agencies and that
 * many random rules (allow rules, and deny rules for statistics only, so
 * that no allow rule is shadowed and the file loads) to a scratch directory,
 * loads it with KB_CONF_SKIP_KEYS as the broker would load it, and times
 * kb_policy_decide() over a fixed mix of questions: half about a sender and
 * recipient some rule names (these walk that pair's rules), half about
 * random pairs (mostly default deny). It prints decisions per second and
 * nanoseconds per decision for each size and the ratio between them, and
 * exits 1 if a decision among 10,000 rules takes BENCH_BUDGET_NS or more.
 *
 * Deterministic: a fixed seed draws the rules and the questions.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "ketenbus.pb-c.h"
#include "policy.h"

#define BENCH_AGENCIES   200       /* agencies of the chain */
#define BENCH_FEW        10        /* rules of the small file */
#define BENCH_MANY       10000     /* rules of the large file */
#define BENCH_QUESTIONS  (1u << 16) /* distinct questions, asked in turn */
#define BENCH_MIN_NS     (1000LL * 1000 * 1000) /* time each size at least this long */
#define BENCH_BUDGET_NS  2000.0    /* a decision among BENCH_MANY rules must be faster */
#define BENCH_SEED       0x6b6574656e627573ULL /* "ketenbus" */
#define BENCH_NOW_US     (1798761600LL * 1000000) /* 2027-01-01T00:00:00Z */
#define BENCH_PATH_MAX   512

/* One question to the engine. The ids are copies, as the broker has them
 * in the envelope it just decoded, not pointers into the conf. */
typedef struct {
    char from[KB_AGENCY_ID_MAX + 1]; /* sender id */
    char to[KB_AGENCY_ID_MAX + 1];   /* recipient id */
    int kind;         /* Ketenbus__Kind */
    int purpose;      /* Ketenbus__Purpose */
    int handling;     /* Ketenbus__Handling */
} s_question_t;

/* What one size measured. */
typedef struct {
    size_t rules;        /* rules in the file */
    double load_ms;      /* kb_conf_load_ex, index and lint included */
    double ns;           /* per decision */
    double per_second;   /* decisions per second */
    uint64_t decisions;  /* decisions timed */
    uint64_t allowed;    /* of which allowed */
} s_result_t;

static uint64_t s_state = BENCH_SEED;

/* xorshift64* */
static uint64_t s_next(void)
{
    s_state ^= s_state >> 12;
    s_state ^= s_state << 25;
    s_state ^= s_state >> 27;
    return s_state * 2685821657736338717ULL;
}

static unsigned s_below(unsigned n)
{
    return (unsigned)(s_next() % n);
}

static int64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const char *const s_kinds[] = {"signal", "referral", "referral_update"};
/* Allow rules draw from the first five; deny rules name statistics only. */
static const char *const s_purposes[] = {"criminal_investigation", "victim_care", "child_protection",
                                         "registration", "analysis", "statistics"};

/* "[a017, a120]": 1..max distinct agencies. */
static void s_agencies(FILE *f, unsigned max)
{
    unsigned n = 1 + s_below(max), picked[4];
    fputc('[', f);
    for (unsigned i = 0; i < n; i++) {
        unsigned a;
        int again;
        do {
            a = s_below(BENCH_AGENCIES);
            again = 0;
            for (unsigned j = 0; j < i; j++)
                again |= picked[j] == a;
        } while (again);
        picked[i] = a;
        fprintf(f, "%sa%03u", i ? ", " : "", a);
    }
    fputc(']', f);
}

/* "[x, y]" of 1..max distinct names among names[0..n); returns the bit
 * (1u << index) of each name written. */
static unsigned s_names(FILE *f, const char *const *names, unsigned n, unsigned max)
{
    unsigned count = 1 + s_below(max), mask = 0;
    fputc('[', f);
    for (unsigned i = 0; i < count;) {
        unsigned k = s_below(n);
        if (mask & (1u << k))
            continue;
        mask |= 1u << k;
        fprintf(f, "%s%s", i++ ? ", " : "", names[k]);
    }
    fputc(']', f);
    return mask;
}

static int s_write_chain(const char *path, size_t n_rules)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench-policy: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "broker:\n  listen: tcp://127.0.0.1:5555\n  data_dir: data\n  key_dir: keys\nagencies:\n");
    for (unsigned a = 0; a < BENCH_AGENCIES; a++)
        fprintf(f, "  - {id: a%03u, curve_cert: keys/a%03u.curve, signing_key: keys/a%03u.sign.pub.pem}\n", a, a, a);
    fprintf(f, "rules:\n");
    for (size_t i = 0; i < n_rules; i++) {
        int deny = s_below(10) == 0;
        fprintf(f, "  - {id: r%zu, ", i);
        if (deny)
            fprintf(f, "effect: deny, ");
        fprintf(f, "from: ");
        s_agencies(f, 3);
        fprintf(f, ", to: ");
        s_agencies(f, 3);
        fprintf(f, ", kinds: ");
        unsigned kinds = s_names(f, s_kinds, 3, 2);
        if (deny) {
            fprintf(f, ", purposes: [statistics]}\n");
            continue;
        }
        fprintf(f, ", purposes: ");
        s_names(f, s_purposes, 5, 3);
        fprintf(f, ", max_handling: h%u, legal_basis: \"basis %zu\"%s}\n", s_below(4), i,
                (kinds & 1u) && s_below(4) == 0 ? ", redact: [signal.narrative]" : "");
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "bench-policy: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Half the questions about pairs some rule names, half about any pair. */
static void s_questions(const kb_conf_t *c, s_question_t *q)
{
    for (unsigned i = 0; i < BENCH_QUESTIONS; i++) {
        const char *from, *to;
        if (i % 2 == 0 && c->n_rules > 0) {
            const kb_rule_t *r = &c->rules[s_below((unsigned)c->n_rules)];
            from = r->from[s_below((unsigned)r->n_from)];
            to = r->to[s_below((unsigned)r->n_to)];
        } else {
            from = c->agencies[s_below(BENCH_AGENCIES)].id;
            to = c->agencies[s_below(BENCH_AGENCIES)].id;
        }
        snprintf(q[i].from, sizeof q[i].from, "%s", from); /* ids are at most KB_AGENCY_ID_MAX */
        snprintf(q[i].to, sizeof q[i].to, "%s", to);
        q[i].kind = 1 + (int)s_below(3);
        q[i].purpose = 1 + (int)s_below(6);
        q[i].handling = 1 + (int)s_below(4);
    }
}

static int s_run(const char *dir, size_t n_rules, s_question_t *q, s_result_t *out)
{
    char path[BENCH_PATH_MAX];
    if (snprintf(path, sizeof path, "%s/chain-%zu.yaml", dir, n_rules) >= (int)sizeof path ||
        s_write_chain(path, n_rules) != 0)
        return -1;
    int64_t t0 = s_now_ns();
    kb_conf_t *c = kb_conf_load_ex(path, KB_CONF_SKIP_KEYS, NULL);
    int64_t t1 = s_now_ns();
    unlink(path);
    if (!c) {
        fprintf(stderr, "bench-policy: %s\n", kb_last_error());
        return -1;
    }
    s_questions(c, q);
    kb_decision_t d;
    uint64_t n = 0, allowed = 0;
    int64_t start = s_now_ns(), elapsed = 0;
    while (elapsed < BENCH_MIN_NS) {
        for (unsigned i = 0; i < BENCH_QUESTIONS; i++) {
            kb_policy_decide(c->policy, q[i].from, q[i].to, q[i].kind, q[i].purpose, q[i].handling, BENCH_NOW_US, &d);
            allowed += (uint64_t)d.allowed;
        }
        n += BENCH_QUESTIONS;
        elapsed = s_now_ns() - start;
    }
    out->rules = c->n_rules;
    out->load_ms = (double)(t1 - t0) / 1e6;
    out->decisions = n;
    out->allowed = allowed;
    out->ns = (double)elapsed / (double)n;
    out->per_second = 1e9 / out->ns;
    kb_conf_destroy(&c);
    return 0;
}

int main(void)
{
    char dir[] = "/tmp/kb-bench-policy.XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench-policy: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    s_question_t *q = calloc(BENCH_QUESTIONS, sizeof *q);
    s_result_t few, many;
    int rc = q ? 0 : -1;
    if (rc == 0)
        rc = s_run(dir, BENCH_FEW, q, &few);
    if (rc == 0)
        rc = s_run(dir, BENCH_MANY, q, &many);
    free(q);
    rmdir(dir);
    if (rc != 0)
        return 1;

    printf("sharing rules engine: kb_policy_decide, %u agencies, half the questions about pairs with rules\n",
           BENCH_AGENCIES);
    printf("%8s %10s %14s %12s %10s\n", "rules", "load ms", "decisions/s", "ns/decision", "allowed");
    const s_result_t *rs[] = {&few, &many};
    for (size_t i = 0; i < 2; i++)
        printf("%8zu %10.1f %14.0f %12.1f %9.1f%%\n", rs[i]->rules, rs[i]->load_ms, rs[i]->per_second, rs[i]->ns,
               100.0 * (double)rs[i]->allowed / (double)rs[i]->decisions);
    printf("ratio %zu/%zu rules: %.2fx the time per decision\n", many.rules, few.rules, many.ns / few.ns);
    int ok = many.ns < BENCH_BUDGET_NS;
    printf("budget: a decision among %zu rules under %.0f ns: %s (%.1f ns)\n", many.rules, BENCH_BUDGET_NS,
           ok ? "met" : "MISSED", many.ns);
    return ok ? 0 : 1;
}
