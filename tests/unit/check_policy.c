/*
 * check_policy.c - tests of broker/policy.c and the per-recipient routing
 * plan of broker/route.c.
 *
 * - A realistic rules file for the expert group's agencies (groups care,
 *   police and municipalities; deny rules; redactions; a pilot rule with an
 *   expiry) and a table of decisions over it: allowed or refused, deciding
 *   rule, withheld paths and the exact reason, covering deny-over-allow,
 *   group expansion, handling codes above the maximum, expiry (decided at a
 *   time after valid_until), default deny and unknown agencies; fan-out,
 *   and its candidates with those a deny rule takes out of it.
 * - A lint table: every error refuses the file with its exact
 *   "file:LINE:COL: message", every warning is reported with its position.
 * - A property test: for 200 random rules files (random groups, allow and
 *   deny rules, redactions, expiries) and random signed envelopes, the plan
 *   of route.c (the code the broker queues with) gives bytes only to
 *   recipients kb_policy_decide() allows; in those bytes no withheld
 *   field's value occurs, every withheld path is listed, and the copy still
 *   verifies with the sender's key.
 *
 * Files are loaded with KB_CONF_SKIP_KEYS: the key paths are never read.
 * The unchecked fixture makes one temp directory and loads the main file
 * before the tests fork.
 */
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <openssl/evp.h>

#include "conf.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_seal.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"
#include "policy.h"
#include "route.h"
#include "kb_test.h"

#define SIG KETENBUS__KIND__KIND_SIGNAL
#define REF KETENBUS__KIND__KIND_REFERRAL
#define UPD KETENBUS__KIND__KIND_REFERRAL_UPDATE
#define CI KETENBUS__PURPOSE__PURPOSE_CRIMINAL_INVESTIGATION
#define VC KETENBUS__PURPOSE__PURPOSE_VICTIM_CARE
#define CP KETENBUS__PURPOSE__PURPOSE_CHILD_PROTECTION
#define REG KETENBUS__PURPOSE__PURPOSE_REGISTRATION
#define ANA KETENBUS__PURPOSE__PURPOSE_ANALYSIS
#define STA KETENBUS__PURPOSE__PURPOSE_STATISTICS
#define H0 KETENBUS__HANDLING__HANDLING_H0
#define H1 KETENBUS__HANDLING__HANDLING_H1
#define H2 KETENBUS__HANDLING__HANDLING_H2
#define H3 KETENBUS__HANDLING__HANDLING_H3

#define US 1000000LL
#define S_NOW (1798761600LL * US)       /* 2027-01-01T00:00:00Z */
#define S_PILOT_END (4086547200LL * US) /* 2099-07-01T00:00:00Z: end of valid_until 2099-06-30 */
#define S_LATER (4102444800LL * US)     /* 2100-01-01T00:00:00Z, after the pilot */

static char s_root[PATH_MAX]; /* temp directory of the rules files */
static kb_conf_t *s_conf;     /* the main rules file, loaded by the fixture */

/* ---------------------------------------------------------------- files */

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static const char *s_in(char *buf, const char *file)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s", s_root, file);
    ck_assert_int_lt(n, PATH_MAX);
    return buf;
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    size_t len = strlen(text);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Lines 1-22: broker, the expert group's agencies (key files never read),
 * three groups, "rules:". */
#define S_HEAD                                                                            \
    "broker:\n  listen: tcp://127.0.0.1:5555\n  data_dir: data\n  key_dir: keys\n"       \
    "agencies:\n"                                                                         \
    "  - {id: politie, curve_cert: k/politie.curve, signing_key: k/politie.pem}\n"        \
    "  - {id: kmar, curve_cert: k/kmar.curve, signing_key: k/kmar.pem}\n"                 \
    "  - {id: om, curve_cert: k/om.curve, signing_key: k/om.pem}\n"                       \
    "  - {id: comensha, curve_cert: k/comensha.curve, signing_key: k/comensha.pem}\n"     \
    "  - {id: fier, curve_cert: k/fier.curve, signing_key: k/fier.pem}\n"                 \
    "  - {id: ldh, curve_cert: k/ldh.curve, signing_key: k/ldh.pem}\n"                    \
    "  - {id: rvdk, curve_cert: k/rvdk.curve, signing_key: k/rvdk.pem}\n"                 \
    "  - {id: dci, curve_cert: k/dci.curve, signing_key: k/dci.pem}\n"                    \
    "  - {id: emm, curve_cert: k/emm.curve, signing_key: k/emm.pem}\n"                    \
    "  - {id: gem-utrecht, curve_cert: k/u.curve, signing_key: k/u.pem}\n"                \
    "  - {id: gem-amsterdam, curve_cert: k/a.curve, signing_key: k/a.pem}\n"              \
    "  - {id: gem-rotterdam, curve_cert: k/r.curve, signing_key: k/r.pem}\n"              \
    "groups:\n"                                                                           \
    "  care: [fier, ldh]\n"                                                               \
    "  police: [politie, kmar]\n"                                                         \
    "  municipalities: [gem-utrecht, gem-amsterdam, gem-rotterdam]\n"                     \
    "rules:\n"

/* The agencies of S_HEAD, in order. */
static const char *const s_ids[] = {"politie", "kmar", "om", "comensha", "fier", "ldh",
                                    "rvdk", "dci", "emm", "gem-utrecht", "gem-amsterdam", "gem-rotterdam"};
#define S_N_IDS (sizeof s_ids / sizeof s_ids[0])

static const char s_rules[] =
    S_HEAD
    "  # Police information never goes to a municipality.\n"            /* 23 */
    "  - id: no-police-to-municipalities\n"                             /* 24 */
    "    effect: deny\n"
    "    from: [police]\n"
    "    to: [municipalities]\n"
    "  - id: no-municipal-referrals-to-police\n"                        /* 28 */
    "    effect: deny\n"
    "    from: [municipalities]\n"
    "    to: [police]\n"
    "    kinds: [referral]\n"
    "  - id: no-statistics-from-police\n"                               /* 33 */
    "    effect: deny\n"
    "    from: police\n"
    "    to: dci\n"
    "    purposes: [statistics]\n"
    "  - id: care-signals-police\n"                                     /* 38 */
    "    description: Shelters tell the police about possible victims.\n"
    "    from: [care]\n"
    "    to: [police]\n"
    "    kinds: [signal]\n"
    "    purposes: [victim_care, criminal_investigation]\n"
    "    max_handling: h2\n"
    "    legal_basis: \"Wpg art. 19 lid 1\"\n"
    "  - id: care-reports-comensha\n"                                   /* 46 */
    "    from: [care]\n"
    "    to: [comensha]\n"
    "    kinds: [signal, referral]\n"
    "    purposes: [registration, victim_care]\n"
    "    max_handling: h2\n"
    "    legal_basis: \"AVG art. 6(1)(e)\"\n"
    "    redact: [signal.narrative, referral.signal.narrative]\n"
    "  - id: police-investigation\n"                                    /* 54 */
    "    from: [police]\n"
    "    to: [police, om]\n"
    "    kinds: [signal, referral, referral_update]\n"
    "    purposes: [criminal_investigation]\n"
    "    max_handling: h3\n"
    "    legal_basis: \"Wpg art. 15\"\n"
    "  - id: police-child-protection\n"                                 /* 61 */
    "    from: [police]\n"
    "    to: [rvdk]\n"
    "    kinds: [signal, referral]\n"
    "    purposes: [child_protection]\n"
    "    max_handling: h2\n"
    "    legal_basis: \"Wpg art. 19\"\n"
    "  - id: police-registers-comensha\n"                               /* 68 */
    "    from: [police]\n"
    "    to: [comensha]\n"
    "    kinds: [signal]\n"
    "    purposes: [registration]\n"
    "    max_handling: h1\n"
    "    legal_basis: \"Wpg art. 19\"\n"
    "    redact: [signal.narrative, signal.observed.location]\n"
    "  - id: pilot-emm\n"                                               /* 76 */
    "    from: [police]\n"
    "    to: [emm]\n"
    "    kinds: [signal]\n"
    "    purposes: [analysis]\n"
    "    max_handling: h2\n"
    "    legal_basis: pilot agreement\n"
    "    redact: [signal.observed]\n"
    "    valid_until: 2099-06-30\n"                                    /* 84 */
    "  - id: emm-after-pilot\n"                                         /* 85 */
    "    from: politie\n"
    "    to: emm\n"
    "    kinds: [signal]\n"
    "    purposes: [analysis]\n"
    "    max_handling: h1\n"
    "    legal_basis: \"Wpg art. 19\"\n"
    "    redact: [signal.narrative, signal.observed]\n"
    "  - id: board-answers-police\n"                                    /* 93 */
    "    from: [rvdk]\n"
    "    to: [police]\n"
    "    kinds: [referral_update]\n"
    "    purposes: [child_protection]\n"
    "    max_handling: h2\n"
    "    legal_basis: \"AVG art. 6(1)(e)\"\n"
    "  - id: municipalities-signal\n"                                   /* 100 */
    "    from: [municipalities]\n"
    "    to: [rvdk, care, police]\n"
    "    kinds: [signal, referral]\n"
    "    purposes: [child_protection, victim_care]\n"
    "    max_handling: h1\n"
    "    legal_basis: \"Jeugdwet art. 7.4.0\"\n"
    "    redact: [signal.narrative, referral.signal.narrative, referral.contact]\n"
    "  - id: statistics-dci\n"                                          /* 108 */
    "    from: [comensha, police]\n"
    "    to: [dci]\n"
    "    kinds: [signal]\n"
    "    purposes: [statistics]\n"
    "    max_handling: h0\n"
    "    legal_basis: \"AVG art. 89\"\n"
    "    redact: [signal.narrative, signal.observed, signal.indicators]\n";

static void s_setup(void)
{
    snprintf(s_root, sizeof s_root, "%s/kbtest-policy.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(s_root));
    char path[PATH_MAX];
    s_write(s_in(path, "chain.yaml"), s_rules);
    s_conf = kb_conf_load_ex(path, KB_CONF_SKIP_KEYS, NULL);
    ck_assert_msg(s_conf != NULL, "%s", kb_last_error());
}

static void s_teardown(void)
{
    kb_conf_destroy(&s_conf);
    nftw(s_root, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------ decisions */

typedef struct {
    const char *from;   /* sender */
    const char *to;     /* recipient */
    int kind;           /* Ketenbus__Kind */
    int purpose;        /* Ketenbus__Purpose */
    int handling;       /* Ketenbus__Handling */
    int64_t now_us;     /* time of the decision; 0: S_NOW */
    int allowed;        /* expected outcome */
    const char *rule;   /* deciding rule id, NULL: none */
    const char *redact; /* the deciding rule's withheld paths, comma-separated */
    const char *reason; /* exact reason */
} s_row_t;

static const s_row_t s_table[] = {
    /* shelters to the police: group expansion on both sides */
    {"fier", "politie", SIG, VC, H1, 0, 1, "care-signals-police", "",
     "allowed by rule care-signals-police (basis Wpg art. 19 lid 1)"},
    {"ldh", "kmar", SIG, CI, H2, 0, 1, "care-signals-police", "",
     "allowed by rule care-signals-police (basis Wpg art. 19 lid 1)"},
    {"ldh", "politie", SIG, VC, H2, 0, 1, "care-signals-police", "",
     "allowed by rule care-signals-police (basis Wpg art. 19 lid 1)"},
    {"fier", "politie", SIG, VC, H3, 0, 0, NULL, "", "refused: rule care-signals-police allows at most h2; message is h3"},
    {"fier", "politie", REF, VC, H1, 0, 0, NULL, "",
     "refused: no rule allows kind referral from fier to politie for purpose victim_care"},
    {"fier", "politie", SIG, REG, H1, 0, 0, NULL, "",
     "refused: no rule allows kind signal from fier to politie for purpose registration"},
    {"fier", "ldh", SIG, VC, H1, 0, 0, NULL, "", "refused: no rule allows kind signal from fier to ldh for purpose victim_care"},
    /* shelters to CoMensha, with the narrative withheld */
    {"fier", "comensha", SIG, REG, H2, 0, 1, "care-reports-comensha", "signal.narrative,referral.signal.narrative",
     "allowed by rule care-reports-comensha (basis AVG art. 6(1)(e))"},
    {"ldh", "comensha", REF, VC, H0, 0, 1, "care-reports-comensha", "signal.narrative,referral.signal.narrative",
     "allowed by rule care-reports-comensha (basis AVG art. 6(1)(e))"},
    {"comensha", "fier", SIG, REG, H0, 0, 0, NULL, "",
     "refused: no rule allows kind signal from comensha to fier for purpose registration"},
    /* police among themselves and with the prosecutor */
    {"politie", "kmar", SIG, CI, H3, 0, 1, "police-investigation", "", "allowed by rule police-investigation (basis Wpg art. 15)"},
    {"kmar", "om", UPD, CI, H3, 0, 1, "police-investigation", "", "allowed by rule police-investigation (basis Wpg art. 15)"},
    {"kmar", "politie", REF, CI, H0, 0, 1, "police-investigation", "", "allowed by rule police-investigation (basis Wpg art. 15)"},
    {"politie", "politie", SIG, CI, H1, 0, 0, NULL, "", "refused: 'politie' is both sender and recipient"},
    {"om", "politie", SIG, CI, H1, 0, 0, NULL, "", "refused: no rule allows kind signal from om to politie for purpose criminal_investigation"},
    {"politie", "om", SIG, CP, H1, 0, 0, NULL, "", "refused: no rule allows kind signal from politie to om for purpose child_protection"},
    {"om", "kmar", UPD, CI, H3, 0, 0, NULL, "",
     "refused: no rule allows kind referral_update from om to kmar for purpose criminal_investigation"},
    /* police to the child protection board */
    {"politie", "rvdk", SIG, CP, H2, 0, 1, "police-child-protection", "", "allowed by rule police-child-protection (basis Wpg art. 19)"},
    {"kmar", "rvdk", REF, CP, H1, 0, 1, "police-child-protection", "", "allowed by rule police-child-protection (basis Wpg art. 19)"},
    {"politie", "rvdk", REF, CP, H3, 0, 0, NULL, "", "refused: rule police-child-protection allows at most h2; message is h3"},
    {"politie", "rvdk", SIG, CI, H1, 0, 0, NULL, "",
     "refused: no rule allows kind signal from politie to rvdk for purpose criminal_investigation"},
    /* police to CoMensha: nested field withheld */
    {"politie", "comensha", SIG, REG, H1, 0, 1, "police-registers-comensha", "signal.narrative,signal.observed.location",
     "allowed by rule police-registers-comensha (basis Wpg art. 19)"},
    {"kmar", "comensha", SIG, REG, H0, 0, 1, "police-registers-comensha", "signal.narrative,signal.observed.location",
     "allowed by rule police-registers-comensha (basis Wpg art. 19)"},
    {"politie", "comensha", SIG, REG, H2, 0, 0, NULL, "", "refused: rule police-registers-comensha allows at most h1; message is h2"},
    /* the EMM pilot and what follows it */
    {"politie", "emm", SIG, ANA, H2, 0, 1, "pilot-emm", "signal.observed", "allowed by rule pilot-emm (basis pilot agreement)"},
    {"kmar", "emm", SIG, ANA, H1, 0, 1, "pilot-emm", "signal.observed", "allowed by rule pilot-emm (basis pilot agreement)"},
    {"politie", "emm", SIG, ANA, H2, S_PILOT_END - 1, 1, "pilot-emm", "signal.observed",
     "allowed by rule pilot-emm (basis pilot agreement)"},
    {"politie", "emm", SIG, ANA, H2, S_PILOT_END, 0, NULL, "", "refused: rule pilot-emm expired on 2099-06-30"},
    {"politie", "emm", SIG, ANA, H1, S_LATER, 1, "emm-after-pilot", "signal.narrative,signal.observed",
     "allowed by rule emm-after-pilot (basis Wpg art. 19)"},
    {"politie", "emm", SIG, ANA, H2, S_LATER, 0, NULL, "", "refused: rule pilot-emm expired on 2099-06-30"},
    {"kmar", "emm", SIG, ANA, H1, S_LATER, 0, NULL, "", "refused: rule pilot-emm expired on 2099-06-30"},
    {"emm", "politie", SIG, ANA, H0, 0, 0, NULL, "", "refused: no rule allows kind signal from emm to politie for purpose analysis"},
    /* deny rules win, whatever the allow rules say */
    {"politie", "gem-utrecht", SIG, CP, H0, 0, 0, "no-police-to-municipalities", "",
     "refused by deny rule no-police-to-municipalities"},
    {"kmar", "gem-rotterdam", REF, VC, H0, 0, 0, "no-police-to-municipalities", "",
     "refused by deny rule no-police-to-municipalities"},
    {"gem-utrecht", "politie", REF, CP, H1, 0, 0, "no-municipal-referrals-to-police", "",
     "refused by deny rule no-municipal-referrals-to-police"},
    {"gem-amsterdam", "kmar", REF, VC, H0, 0, 0, "no-municipal-referrals-to-police", "",
     "refused by deny rule no-municipal-referrals-to-police"},
    {"politie", "dci", SIG, STA, H0, 0, 0, "no-statistics-from-police", "", "refused by deny rule no-statistics-from-police"},
    {"kmar", "dci", SIG, STA, H0, 0, 0, "no-statistics-from-police", "", "refused by deny rule no-statistics-from-police"},
    /* municipalities */
    {"gem-utrecht", "politie", SIG, CP, H1, 0, 1, "municipalities-signal", "signal.narrative,referral.signal.narrative,referral.contact",
     "allowed by rule municipalities-signal (basis Jeugdwet art. 7.4.0)"},
    {"gem-amsterdam", "kmar", SIG, VC, H1, 0, 1, "municipalities-signal", "signal.narrative,referral.signal.narrative,referral.contact",
     "allowed by rule municipalities-signal (basis Jeugdwet art. 7.4.0)"},
    {"gem-rotterdam", "rvdk", REF, VC, H1, 0, 1, "municipalities-signal", "signal.narrative,referral.signal.narrative,referral.contact",
     "allowed by rule municipalities-signal (basis Jeugdwet art. 7.4.0)"},
    {"gem-rotterdam", "ldh", SIG, CP, H0, 0, 1, "municipalities-signal", "signal.narrative,referral.signal.narrative,referral.contact",
     "allowed by rule municipalities-signal (basis Jeugdwet art. 7.4.0)"},
    {"gem-rotterdam", "fier", SIG, CP, H2, 0, 0, NULL, "", "refused: rule municipalities-signal allows at most h1; message is h2"},
    {"gem-utrecht", "gem-amsterdam", SIG, CP, H0, 0, 0, NULL, "",
     "refused: no rule allows kind signal from gem-utrecht to gem-amsterdam for purpose child_protection"},
    {"gem-utrecht", "om", SIG, CP, H0, 0, 0, NULL, "",
     "refused: no rule allows kind signal from gem-utrecht to om for purpose child_protection"},
    /* statistics for Defence for Children */
    {"comensha", "dci", SIG, STA, H0, 0, 1, "statistics-dci", "signal.narrative,signal.observed,signal.indicators",
     "allowed by rule statistics-dci (basis AVG art. 89)"},
    {"comensha", "dci", SIG, STA, H1, 0, 0, NULL, "", "refused: rule statistics-dci allows at most h0; message is h1"},
    {"comensha", "dci", REF, STA, H0, 0, 0, NULL, "",
     "refused: no rule allows kind referral from comensha to dci for purpose statistics"},
    {"dci", "comensha", SIG, STA, H0, 0, 0, NULL, "", "refused: no rule allows kind signal from dci to comensha for purpose statistics"},
    /* the board answers */
    {"rvdk", "politie", UPD, CP, H2, 0, 1, "board-answers-police", "", "allowed by rule board-answers-police (basis AVG art. 6(1)(e))"},
    {"rvdk", "kmar", UPD, CP, H2, 0, 1, "board-answers-police", "", "allowed by rule board-answers-police (basis AVG art. 6(1)(e))"},
    {"rvdk", "politie", REF, CP, H1, 0, 0, NULL, "", "refused: no rule allows kind referral from rvdk to politie for purpose child_protection"},
    /* unknown agencies and values */
    {"polite", "politie", SIG, VC, H1, 0, 0, NULL, "", "refused: unknown agency 'polite'"},
    {"fier", "ldh2", SIG, VC, H1, 0, 0, NULL, "", "refused: unknown agency 'ldh2'"},
    {"fier", "", SIG, VC, H1, 0, 0, NULL, "", "refused: unknown agency ''"},
    {"Fier", "politie", SIG, VC, H1, 0, 0, NULL, "", "refused: unknown agency 'Fier'"},
    {"fier", "politie", 0, VC, H1, 0, 0, NULL, "", "refused: no rule allows kind unspecified from fier to politie for purpose victim_care"},
    {"fier", "politie", 99, VC, H1, 0, 0, NULL, "", "refused: no rule allows kind 99 from fier to politie for purpose victim_care"},
    {"fier", "politie", SIG, 0, H1, 0, 0, NULL, "", "refused: no rule allows kind signal from fier to politie for purpose unspecified"},
    {"fier", "politie", SIG, 99, H1, 0, 0, NULL, "", "refused: no rule allows kind signal from fier to politie for purpose 99"},
    {"fier", "politie", SIG, VC, 0, 0, 0, NULL, "", "refused: unknown handling code 0"},
    {"fier", "politie", SIG, VC, 99, 0, 0, NULL, "", "refused: rule care-signals-police allows at most h2; message is 99"},
};

static void s_join(char *const *list, size_t n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? "," : "", list[i]);
        ck_assert(w > 0 && (size_t)w < len - used);
        used += (size_t)w;
    }
}

START_TEST(test_decide)
{
    const s_row_t *row = &s_table[_i];
    kb_decision_t d;
    memset(&d, 0x5a, sizeof d); /* every field must be written */
    ck_assert_int_eq(kb_policy_decide(s_conf->policy, row->from, row->to, row->kind, row->purpose, row->handling,
                                      row->now_us ? row->now_us : S_NOW, &d),
                     KB_OK);
    ck_assert_msg(d.allowed == row->allowed, "row %d: allowed %d, reason %s", _i, d.allowed, d.reason);
    ck_assert_str_eq(d.reason, row->reason);
    if (!row->rule) {
        ck_assert_ptr_null(d.rule);
        return;
    }
    ck_assert_ptr_nonnull(d.rule);
    ck_assert_str_eq(d.rule->id, row->rule);
    ck_assert_int_eq(d.rule->deny, !row->allowed);
    char redact[512];
    s_join(d.rule->redact, d.rule->n_redact, redact, sizeof redact);
    ck_assert_str_eq(redact, row->redact);
}
END_TEST

START_TEST(test_decide_arguments)
{
    kb_decision_t d;
    ck_assert_int_eq(kb_policy_decide(NULL, "fier", "politie", SIG, VC, H1, S_NOW, &d), KB_EINVAL);
    ck_assert_int_eq(d.allowed, 0);
    ck_assert_ptr_null(d.rule);
    ck_assert_int_eq(kb_policy_decide(s_conf->policy, NULL, "politie", SIG, VC, H1, S_NOW, &d), KB_EINVAL);
    ck_assert_int_eq(d.allowed, 0);
    ck_assert_int_eq(kb_policy_decide(s_conf->policy, "fier", NULL, SIG, VC, H1, S_NOW, &d), KB_EINVAL);
    ck_assert_int_eq(kb_policy_decide(s_conf->policy, "fier", "politie", SIG, VC, H1, S_NOW, NULL), KB_EINVAL);

    /* an empty rule set refuses everything */
    kb_conf_t empty = {.n_agencies = 2, .agencies = s_conf->agencies};
    kb_policy_t *p = kb_policy_new(&empty);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(kb_policy_decide(p, "politie", "kmar", SIG, CI, H0, S_NOW, &d), KB_OK);
    ck_assert_int_eq(d.allowed, 0);
    ck_assert_str_eq(d.reason, "refused: no rule allows kind signal from politie to kmar for purpose criminal_investigation");
    kb_policy_destroy(&p);
    ck_assert_ptr_null(p);
    kb_policy_destroy(&p);
    kb_policy_destroy(NULL);
    ck_assert_ptr_null(kb_policy_new(NULL));

    char buf[KB_POLICY_NAME_MAX];
    ck_assert_str_eq(kb_policy_name(KB_POLICY_KIND, UPD, buf, sizeof buf), "referral_update");
    ck_assert_str_eq(kb_policy_name(KB_POLICY_PURPOSE, CI, buf, sizeof buf), "criminal_investigation");
    ck_assert_str_eq(kb_policy_name(KB_POLICY_HANDLING, H2, buf, sizeof buf), "h2");
    ck_assert_str_eq(kb_policy_name(KB_POLICY_HANDLING, 7, buf, sizeof buf), "7");
    ck_assert_str_eq(kb_policy_name(KB_POLICY_PURPOSE, VC, buf, 4), "vic");
}
END_TEST

/* Fan-out: the allowed recipients in configuration order. */
typedef struct {
    const char *from;   /* sender */
    int kind;           /* Ketenbus__Kind */
    int purpose;        /* Ketenbus__Purpose */
    int handling;       /* Ketenbus__Handling */
    int64_t now_us;     /* time; 0: S_NOW */
    size_t max;         /* room in out */
    const char *expect; /* recipients, comma-separated */
} s_fanout_t;

static const s_fanout_t s_fanouts[] = {
    {"politie", SIG, REG, H1, 0, 16, "comensha"},
    {"politie", SIG, CI, H3, 0, 16, "kmar,om"},
    {"politie", SIG, ANA, H2, 0, 16, "emm"},
    {"politie", SIG, ANA, H2, S_LATER, 16, ""},
    {"politie", SIG, ANA, H1, S_LATER, 16, "emm"},
    {"gem-utrecht", SIG, CP, H1, 0, 16, "politie,kmar,fier,ldh,rvdk"},
    {"gem-utrecht", REF, CP, H1, 0, 16, "fier,ldh,rvdk"}, /* the deny rule keeps the police out */
    {"gem-utrecht", SIG, CP, H1, 0, 2, "politie,kmar"},
    {"gem-utrecht", SIG, CP, H1, 0, 0, ""},
    {"fier", SIG, VC, H2, 0, 16, "politie,kmar,comensha"},
    {"fier", SIG, VC, H3, 0, 16, ""},
    {"dci", SIG, STA, H0, 0, 16, ""},
    {"nobody", SIG, STA, H0, 0, 16, ""},
    {"fier", SIG, VC, 0, 0, 16, ""},
};

START_TEST(test_fanout)
{
    const s_fanout_t *row = &s_fanouts[_i];
    const char *out[16];
    size_t n = kb_policy_fanout(s_conf->policy, row->from, row->kind, row->purpose, row->handling,
                                row->now_us ? row->now_us : S_NOW, out, row->max);
    char got[256];
    s_join((char *const *)out, n, got, sizeof got);
    ck_assert_str_eq(got, row->expect);
    for (size_t i = 0; i < n; i++)
        ck_assert_ptr_nonnull(kb_conf_agency(s_conf, out[i])); /* borrowed from the conf */
    ck_assert_uint_eq(kb_policy_fanout(NULL, row->from, row->kind, row->purpose, row->handling, S_NOW, out, 16), 0);
    ck_assert_uint_eq(kb_policy_fanout(s_conf->policy, NULL, row->kind, row->purpose, row->handling, S_NOW, out, 16), 0);
    ck_assert_uint_eq(kb_policy_fanout(s_conf->policy, row->from, row->kind, row->purpose, row->handling, S_NOW, NULL, 16), 0);
}
END_TEST

/* Fan-out candidates: the allowed recipients and, in configuration order
 * among them, those an allow rule reaches but a deny rule refuses (the
 * broker audits their refusal); never one that no allow rule reaches. */
typedef struct {
    const char *from;   /* sender */
    int kind;           /* Ketenbus__Kind */
    int purpose;        /* Ketenbus__Purpose */
    int handling;       /* Ketenbus__Handling */
    const char *expect; /* candidates, comma-separated */
    const char *denied; /* those of them a deny rule refuses */
} s_candidates_t;

static const s_candidates_t s_candidates[] = {
    /* municipalities-signal reaches the police; no-municipal-referrals-to-police refuses them */
    {"gem-utrecht", REF, CP, H1, "politie,kmar,fier,ldh,rvdk", "politie,kmar"},
    {"gem-utrecht", SIG, CP, H1, "politie,kmar,fier,ldh,rvdk", ""},
    /* statistics-dci reaches dci; no-statistics-from-police refuses it */
    {"politie", SIG, STA, H0, "dci", "dci"},
    /* above statistics-dci's h0 no allow rule reaches dci: no candidate */
    {"politie", SIG, STA, H1, "", ""},
    /* no-police-to-municipalities matches, but no allow rule reaches them */
    {"politie", SIG, CP, H1, "rvdk", ""},
    {"politie", SIG, CI, H3, "kmar,om", ""},
    {"nobody", REF, CP, H1, "", ""},
    {"gem-utrecht", REF, CP, 0, "", ""},
};

START_TEST(test_fanout_candidates)
{
    const s_candidates_t *row = &s_candidates[_i];
    const char **out = NULL, **allowed = NULL;
    size_t n = 99, n_allowed = 0;
    ck_assert_int_eq(kb_policy_fanout_candidates(s_conf->policy, row->from, row->kind, row->purpose, row->handling,
                                                 S_NOW, &out, &n),
                     KB_OK);
    ck_assert_int_eq(kb_policy_fanout_all(s_conf->policy, row->from, row->kind, row->purpose, row->handling, S_NOW,
                                          &allowed, &n_allowed),
                     KB_OK);
    char got[256], denied[256] = "";
    s_join((char *const *)out, n, got, sizeof got);
    ck_assert_str_eq(got, row->expect);
    size_t used = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        kb_decision_t d;
        ck_assert_int_eq(kb_policy_decide(s_conf->policy, row->from, out[i], row->kind, row->purpose, row->handling,
                                          S_NOW, &d),
                         KB_OK);
        if (d.allowed) {
            /* the allowed ones are the fan-out, in its order */
            ck_assert_uint_lt(k, n_allowed);
            ck_assert_str_eq(out[i], allowed[k++]);
            continue;
        }
        ck_assert_ptr_nonnull(d.rule);
        ck_assert(d.rule->deny);
        used += (size_t)snprintf(denied + used, sizeof denied - used, "%s%s", used ? "," : "", out[i]);
    }
    ck_assert_uint_eq(k, n_allowed);
    ck_assert_str_eq(denied, row->denied);
    free(out);
    free(allowed);
    ck_assert_int_eq(kb_policy_fanout_candidates(NULL, row->from, row->kind, row->purpose, row->handling, S_NOW,
                                                 &out, &n),
                     KB_EINVAL);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(kb_policy_fanout_candidates(s_conf->policy, row->from, row->kind, row->purpose, row->handling,
                                                 S_NOW, NULL, &n),
                     KB_EINVAL);
}
END_TEST

/* The main file lints clean now, and its pilot is an error once expired. */
START_TEST(test_lint_fixture)
{
    kb_policy_issue_t *issues = NULL;
    size_t n = 99;
    ck_assert_int_eq(kb_policy_lint(s_conf, S_NOW, &issues, &n), KB_OK);
    ck_assert_msg(n == 0, "%d:%d: %s", issues[0].line, issues[0].column, issues[0].message);
    free(issues);
    ck_assert_int_eq(kb_policy_lint(s_conf, S_LATER, &issues, &n), KB_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(issues[0].is_error, 1);
    ck_assert_int_eq(issues[0].line, 84);
    ck_assert_int_eq(issues[0].column, 18);
    ck_assert_str_eq(issues[0].message, "rule 'pilot-emm' expired on 2099-06-30; remove it or extend valid_until");
    free(issues);

    /* a month before, it warns: the file will stop loading */
    ck_assert_int_eq(kb_policy_lint(s_conf, S_PILOT_END - 10LL * 86400 * US - 5, &issues, &n), KB_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(issues[0].is_error, 0);
    ck_assert_int_eq(issues[0].line, 84);
    ck_assert_str_eq(issues[0].message, "rule 'pilot-emm' expires on 2099-06-30 (in 10 days); once expired the file "
                                        "no longer loads: extend valid_until or remove the rule");
    free(issues);
    ck_assert_int_eq(kb_policy_lint(s_conf, S_PILOT_END - 3600 * US, &issues, &n), KB_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_ptr_nonnull(strstr(issues[0].message, "(within a day)"));
    free(issues);
    ck_assert_int_eq(kb_policy_lint(s_conf, S_PILOT_END - 31LL * 86400 * US, &issues, &n), KB_OK);
    ck_assert_uint_eq(n, 0);
    free(issues);

    /* without an index in the conf, lint builds its own */
    kb_policy_t *saved = s_conf->policy;
    s_conf->policy = NULL;
    ck_assert_int_eq(kb_policy_lint(s_conf, S_LATER, &issues, &n), KB_OK);
    s_conf->policy = saved;
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(issues[0].line, 84);
    free(issues);

    ck_assert_int_eq(kb_policy_lint(NULL, S_NOW, &issues, &n), KB_EINVAL);
    ck_assert_int_eq(kb_policy_lint(s_conf, S_NOW, NULL, &n), KB_EINVAL);
    ck_assert_int_eq(kb_policy_lint(s_conf, S_NOW, &issues, NULL), KB_EINVAL);
}
END_TEST

/* ----------------------------------------------------------------- lint */

/* One-line rules for the lint table; the first rule is on line 23. */
#define ALLOW(id, from, to, kinds, purposes, h)                                                          \
    "  - {id: " id ", from: " from ", to: " to ", kinds: " kinds ", purposes: " purposes ", max_handling: " h \
    ", legal_basis: b}\n"
#define ALLOW_UNTIL(id, from, to, kinds, purposes, h, until)                                             \
    "  - {id: " id ", from: " from ", to: " to ", kinds: " kinds ", purposes: " purposes ", max_handling: " h \
    ", legal_basis: b, valid_until: " until "}\n"
#define DENY(id, from, to, rest) "  - {id: " id ", effect: deny, from: " from ", to: " to rest "}\n"
#define ALLOW_REDACT(id, kinds, redact)                                                                   \
    "  - {id: " id ", from: fier, to: politie, kinds: " kinds ", purposes: victim_care, max_handling: h1, " \
    "legal_basis: b, redact: " redact "}\n"

typedef struct {
    const char *rules;  /* the rules after S_HEAD */
    int is_error;       /* 1: the load fails with expect; 0: expect is the only warning */
    const char *expect; /* "LINE:COL: message"; NULL: no issue at all */
} s_lint_t;

static const s_lint_t s_lints[] = {
    /* errors: an allow rule the deny rules shadow */
    {DENY("d", "fier", "politie", "") ALLOW("a", "fier", "politie", "signal", "victim_care", "h1"), 1,
     "24:5: rule 'a' can never allow anything: deny rule 'd' refuses all of it"},
    {ALLOW("a", "care", "politie", "signal", "victim_care", "h1") DENY("d", "care", "police", ""), 1,
     "23:5: rule 'a' can never allow anything: deny rule 'd' refuses all of it"},
    {DENY("d1", "fier", "politie", ", purposes: [victim_care]")
         DENY("d2", "care", "police", ", kinds: [signal], purposes: [criminal_investigation]")
             ALLOW("a", "fier", "politie", "signal", "[victim_care, criminal_investigation]", "h2"),
     1, "25:5: rule 'a' can never allow anything: deny rules 'd1' and 'd2' refuse all of it"},
    {ALLOW("a", "[fier, ldh]", "kmar", "[signal, referral]", "victim_care", "h3")
         DENY("d", "care", "police", ", kinds: [signal, referral, referral_update]"),
     1, "23:5: rule 'a' can never allow anything: deny rule 'd' refuses all of it"},
    {ALLOW("a", "municipalities", "police", "referral", "child_protection", "h1")
         DENY("d", "municipalities", "police", ", kinds: [referral]"),
     1, "23:5: rule 'a' can never allow anything: deny rule 'd' refuses all of it"},
    {ALLOW_UNTIL("a", "fier", "politie", "signal", "victim_care", "h1", "2097-01-01")
         DENY("d", "fier", "politie", ", valid_until: 2098-01-01"),
     1, "23:5: rule 'a' can never allow anything: deny rule 'd' refuses all of it"},
    /* errors: expired rules */
    {"  - id: old\n    from: fier\n    to: politie\n    kinds: signal\n    purposes: victim_care\n"
     "    max_handling: h1\n    legal_basis: b\n    valid_until: 2020-01-01\n",
     1, "30:18: rule 'old' expired on 2020-01-01; remove it or extend valid_until"},
    {"  - id: d\n    effect: deny\n    from: fier\n    to: politie\n    valid_until: 2020-01-01T12:00:00Z\n", 1,
     "27:18: rule 'd' expired on 2020-01-01T12:00:00Z; remove it or extend valid_until"},
    {ALLOW_UNTIL("a", "fier", "politie", "signal", "victim_care", "h1", "\"2020-01-01T12:00:00.5+01:00\""), 1,
     "23:123: rule 'a' expired on 2020-01-01T11:00:00.500000Z; remove it or extend valid_until"},
    /* the first error is the one reported */
    {ALLOW("ok", "fier", "politie", "signal", "victim_care", "h1") DENY("d", "ldh", "politie", "")
         ALLOW("a", "ldh", "politie", "signal", "victim_care", "h1")
             "  - id: old\n    effect: deny\n    from: fier\n    to: kmar\n    valid_until: 2020-01-01\n",
     1, "25:5: rule 'a' can never allow anything: deny rule 'd' refuses all of it"},

    /* warnings: a rule earlier allow rules always beat */
    {ALLOW("a", "care", "police", "signal", "[victim_care, criminal_investigation]", "h2")
         ALLOW("b", "fier", "politie", "signal", "victim_care", "h1"),
     0, "24:5: rule 'b' never decides: earlier allow rule 'a' allows all of it first"},
    {ALLOW("a1", "fier", "politie", "signal", "victim_care", "h2")
         ALLOW("a2", "fier", "politie", "signal", "registration", "h3")
             ALLOW("b", "fier", "politie", "signal", "[victim_care, registration]", "h1"),
     0, "25:5: rule 'b' never decides: earlier allow rules 'a1' and 'a2' allow all of it first"},
    {ALLOW("a1", "fier", "politie", "signal", "victim_care", "h3")
         ALLOW("a2", "fier", "politie", "signal", "registration", "h3")
             ALLOW("a3", "fier", "politie", "signal", "analysis", "h3")
                 ALLOW("a4", "fier", "politie", "signal", "statistics", "h3")
                     ALLOW("b", "fier", "politie", "signal", "[victim_care, registration, analysis, statistics]", "h3"),
     0, "27:5: rule 'b' never decides: earlier allow rules 'a1', 'a2', 'a3' and others allow all of it first"},
    {DENY("d", "fier", "politie", ", purposes: [registration]")
         ALLOW("a", "fier", "politie", "signal", "victim_care", "h2")
             ALLOW("b", "fier", "politie", "signal", "[victim_care, registration]", "h1"),
     0, "25:5: rule 'b' never decides: earlier allow rule 'a' allows all of it first and deny rule 'd' refuses the rest"},
    /* warnings: an agency to itself */
    {ALLOW("s", "fier", "fier", "signal", "victim_care", "h1"), 0,
     "23:5: rule 's' names only 'fier' in from and to; an agency never sends to itself, so it never applies"},
    {DENY("s", "politie", "[politie]", ""), 0,
     "23:5: rule 's' names only 'politie' in from and to; an agency never sends to itself, so it never applies"},
    /* warnings: a field withheld from one kind but not where another of the rule's kinds carries it */
    {ALLOW_REDACT("r", "[signal, referral]", "[signal.narrative]"), 0,
     "23:5: rule 'r' withholds signal.narrative from a signal but not referral.signal.narrative from a referral, "
     "which carries the same field: add referral.signal.narrative to redact"},
    {ALLOW_REDACT("r", "[referral, signal]", "[referral.reason, referral.signal.observed]"), 0,
     "23:5: rule 'r' withholds referral.signal.observed from a referral but not signal.observed from a signal, "
     "which carries the same field: add signal.observed to redact"},
    {ALLOW_REDACT("r", "[signal, referral]", "[signal.observed, referral.signal.observed.location]"), 0,
     "23:5: rule 'r' withholds signal.observed from a signal but not referral.signal.observed from a referral, "
     "which carries the same field: add referral.signal.observed to redact"},

    /* no issue */
    {ALLOW_REDACT("r", "[signal, referral]", "[signal.narrative, referral.signal.narrative]"), 0, NULL},
    {ALLOW_REDACT("r", "[signal, referral]", "[signal.narrative, referral.signal]"), 0, NULL},
    {ALLOW_REDACT("r", "[signal, referral]", "[referral.signal]"), 0, NULL}, /* no path names a whole signal */
    {ALLOW_REDACT("r", "[signal, referral]", "[signal.observed, referral.signal.observed]"), 0, NULL},
    {ALLOW_REDACT("r", "[signal, referral]", "[referral.reason]"), 0, NULL}, /* a signal has no reason */
    {ALLOW_REDACT("r", "[signal]", "[signal.narrative]"), 0, NULL},
    {ALLOW_REDACT("r", "[referral]", "[referral.signal.narrative]"), 0, NULL},
    {ALLOW("a", "fier", "politie", "signal", "victim_care", "h1") ALLOW("b", "fier", "politie", "signal", "victim_care", "h2"),
     0, NULL}, /* b allows a higher handling code */
    {ALLOW_UNTIL("a", "fier", "politie", "signal", "victim_care", "h2", "2099-01-01")
         ALLOW("b", "fier", "politie", "signal", "victim_care", "h2"),
     0, NULL}, /* b outlives a */
    {ALLOW("a", "fier", "police", "signal", "victim_care", "h2") ALLOW("b", "care", "politie", "signal", "victim_care", "h1"),
     0, NULL}, /* b decides for ldh */
    {DENY("d", "[gem-utrecht, gem-amsterdam]", "police", "")
         ALLOW("a", "municipalities", "politie", "signal", "child_protection", "h1"),
     0, NULL}, /* a decides for gem-rotterdam */
    {DENY("d", "fier", "politie", ", kinds: [referral]") ALLOW("a", "fier", "politie", "signal", "victim_care", "h1"),
     0, NULL},
    {DENY("d", "fier", "politie", ", valid_until: 2098-01-01") ALLOW("a", "fier", "politie", "signal", "victim_care", "h1"),
     0, NULL}, /* a outlives d */
    {ALLOW("a", "[fier, ldh]", "[fier, ldh]", "referral", "victim_care", "h1"), 0, NULL},
    {DENY("d", "fier", "politie", "") DENY("d2", "fier", "politie", ", kinds: [signal]"), 0, NULL},
};

START_TEST(test_lint)
{
    const s_lint_t *row = &s_lints[_i];
    char name[32], path[PATH_MAX], text[8192], expect[PATH_MAX + 512];
    snprintf(name, sizeof name, "lint-%d.yaml", _i);
    int n = snprintf(text, sizeof text, "%s%s", S_HEAD, row->rules);
    ck_assert_int_lt(n, (int)sizeof text);
    s_write(s_in(path, name), text);
    kb_error_clear();
    kb_conf_t *c = kb_conf_load_ex(path, KB_CONF_SKIP_KEYS, NULL);
    if (row->is_error) {
        ck_assert_msg(c == NULL, "row %d loaded", _i);
        snprintf(expect, sizeof expect, "%s:%s", path, row->expect);
        ck_assert_str_eq(kb_last_error(), expect);
        return;
    }
    ck_assert_msg(c != NULL, "row %d: %s", _i, kb_last_error());
    kb_policy_issue_t *issues = NULL;
    size_t n_issues = 0;
    ck_assert_int_eq(kb_policy_lint(c, kb_now_us(), &issues, &n_issues), KB_OK);
    if (!row->expect) {
        ck_assert_msg(n_issues == 0, "row %d: %d:%d: %s", _i, issues[0].line, issues[0].column, issues[0].message);
    } else {
        ck_assert_uint_eq(n_issues, 1);
        ck_assert_int_eq(issues[0].is_error, 0);
        char got[512];
        snprintf(got, sizeof got, "%d:%d: %s", issues[0].line, issues[0].column, issues[0].message);
        ck_assert_str_eq(got, row->expect);
    }
    free(issues);
    kb_conf_destroy(&c);
}
END_TEST

/* ------------------------------------------------------------- property */

#define P_RUNS        200 /* random rules files */
#define P_ENVELOPES   12  /* random envelopes per file */
#define P_TRIES       100 /* files drawn until one has no lint error */
#define P_TEXT_LEN    24  /* letters of a field's random value */
#define P_MAX_LEAVES  8   /* string leaves of one payload */

/* xorshift64*: deterministic per run, so a failing run can be replayed. */
typedef struct {
    uint64_t state; /* never 0 */
} s_rng_t;

static uint64_t s_next(s_rng_t *r)
{
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return r->state * 2685821657736338717ULL;
}

static unsigned s_below(s_rng_t *r, unsigned n)
{
    return (unsigned)(s_next(r) % n);
}

/* Kinds the generator uses, their names and the paths a rule may withhold. */
static const char *const s_kind_names[] = {"", "signal", "referral", "referral_update"};
static const char *const s_paths[][6] = {
    {NULL},
    {"signal.narrative", "signal.observed.location", "signal.observed", "signal.indicators", "signal.minor", NULL},
    {"referral.reason", "referral.contact", "referral.signal.narrative", "referral.signal.observed.location",
     "referral.signal", NULL},
    {"referral_update.reason", "referral_update.handled_by", NULL},
};
static const char *const s_purpose_names[] = {"criminal_investigation", "victim_care", "child_protection",
                                              "registration", "analysis", "statistics"};

/* Append to a text buffer, failing the test on overflow. */
static void s_add(char *buf, size_t len, size_t *used, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void s_add(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    ck_assert(n >= 0 && (size_t)n < len - *used);
    *used += (size_t)n;
}

/* "[a, b]" of 1..max distinct names drawn from names[0..n). */
static void s_pick_names(s_rng_t *r, const char *const *names, unsigned n, unsigned max, char *buf, size_t len)
{
    unsigned count = 1 + s_below(r, max), chosen = 0;
    unsigned taken[32] = {0};
    size_t used = 0;
    s_add(buf, len, &used, "[");
    while (chosen < count) {
        unsigned i = s_below(r, n);
        if (taken[i])
            continue;
        taken[i] = 1;
        s_add(buf, len, &used, "%s%s", chosen++ ? ", " : "", names[i]);
    }
    s_add(buf, len, &used, "]");
}

/* True if path is prefix or lies under it ("signal.observed" covers
 * "signal.observed.location"). */
static int s_under(const char *prefix, const char *path)
{
    size_t n = strlen(prefix);
    return strncmp(prefix, path, n) == 0 && (path[n] == '\0' || path[n] == '.');
}

/* A random rules file after S_HEAD's broker and agencies. */
static void s_random_rules(s_rng_t *r, char *buf, size_t len)
{
    size_t used = 0;
    /* S_HEAD without its groups and "rules:" */
    const char *groups = strstr(S_HEAD, "groups:\n");
    s_add(buf, len, &used, "%.*s", (int)(groups - S_HEAD), S_HEAD);
    const char *names[S_N_IDS + 3];
    for (size_t i = 0; i < S_N_IDS; i++)
        names[i] = s_ids[i];
    unsigned n_groups = s_below(r, 4);
    static const char *const group_names[] = {"g0", "g1", "g2"};
    if (n_groups)
        s_add(buf, len, &used, "groups:\n");
    char list[256];
    for (unsigned g = 0; g < n_groups; g++) {
        s_pick_names(r, s_ids, S_N_IDS, 4, list, sizeof list);
        s_add(buf, len, &used, "  %s: %s\n", group_names[g], list);
        names[S_N_IDS + g] = group_names[g];
    }
    unsigned n_names = (unsigned)S_N_IDS + n_groups;
    unsigned n_rules = 3 + s_below(r, 10);
    s_add(buf, len, &used, "rules:\n");
    for (unsigned i = 0; i < n_rules; i++) {
        int deny = s_below(r, 4) == 0;
        s_add(buf, len, &used, "  - id: r%u\n", i);
        if (deny)
            s_add(buf, len, &used, "    effect: deny\n");
        s_pick_names(r, names, n_names, 3, list, sizeof list);
        s_add(buf, len, &used, "    from: %s\n", list);
        s_pick_names(r, names, n_names, 3, list, sizeof list);
        s_add(buf, len, &used, "    to: %s\n", list);
        unsigned kinds = 0;
        if (!deny || s_below(r, 2)) {
            s_pick_names(r, s_kind_names + 1, 3, 2, list, sizeof list);
            s_add(buf, len, &used, "    kinds: %s\n", list);
            for (unsigned k = 1; k <= 3; k++)
                if (strstr(list, s_kind_names[k]) && (k != 2 || strstr(list, "referral,") || strstr(list, "referral]")))
                    kinds |= 1u << k;
        }
        if (!deny || s_below(r, 2)) {
            s_pick_names(r, s_purpose_names, 6, 3, list, sizeof list);
            s_add(buf, len, &used, "    purposes: %s\n", list);
        }
        if (deny) {
            if (s_below(r, 4) == 0)
                s_add(buf, len, &used, "    valid_until: 2099-0%u-01\n", 1 + s_below(r, 9));
            continue;
        }
        s_add(buf, len, &used, "    max_handling: h%u\n    legal_basis: basis %u\n", s_below(r, 4), i);
        /* withhold up to three paths of the rule's kinds, none inside another
         * (the loader refuses that) */
        const char *paths[16];
        unsigned n_paths = 0;
        for (unsigned k = 1; k <= 3; k++)
            for (unsigned j = 0; (kinds & (1u << k)) && s_paths[k][j]; j++)
                paths[n_paths++] = s_paths[k][j];
        unsigned n_redact = s_below(r, 4);
        if (n_redact > n_paths)
            n_redact = n_paths;
        if (n_redact) {
            unsigned taken[16] = {0}, chosen = 0;
            s_add(buf, len, &used, "    redact: [");
            const char *chosen_paths[16];
            for (unsigned tries = 0; chosen < n_redact && tries < 64; tries++) {
                unsigned j = s_below(r, n_paths);
                int overlaps = 0;
                for (unsigned q = 0; q < chosen; q++)
                    overlaps |= s_under(chosen_paths[q], paths[j]) || s_under(paths[j], chosen_paths[q]);
                if (taken[j] || overlaps)
                    continue;
                taken[j] = 1;
                chosen_paths[chosen] = paths[j];
                s_add(buf, len, &used, "%s%s", chosen++ ? ", " : "", paths[j]);
            }
            s_add(buf, len, &used, "]\n");
        }
        if (s_below(r, 4) == 0)
            s_add(buf, len, &used, "    valid_until: 2099-0%u-15\n", 1 + s_below(r, 9));
    }
}

/* A string leaf of a test payload: its path and value. */
typedef struct {
    const char *path;         /* e.g. "referral.signal.narrative" */
    char value[P_TEXT_LEN + 1]; /* random lowercase letters */
} s_leaf_t;

/* The random payload strings of one envelope. */
typedef struct {
    s_leaf_t leaves[P_MAX_LEAVES]; /* the string leaves set */
    size_t n;                      /* their count */
} s_leaves_t;

static char *s_leaf(s_rng_t *r, s_leaves_t *l, const char *path)
{
    ck_assert_uint_lt(l->n, P_MAX_LEAVES);
    s_leaf_t *leaf = &l->leaves[l->n++];
    leaf->path = path;
    for (size_t i = 0; i < P_TEXT_LEN; i++)
        leaf->value[i] = (char)('a' + s_below(r, 26));
    leaf->value[P_TEXT_LEN] = '\0';
    char *copy = strdup(leaf->value);
    ck_assert_ptr_nonnull(copy);
    return copy;
}

static void *s_calloc(size_t n)
{
    void *p = calloc(1, n);
    ck_assert_ptr_nonnull(p);
    return p;
}

static Ketenbus__Signal *s_signal(s_rng_t *r, s_leaves_t *l, const char *prefix)
{
    static const char *const paths[2][3] = {
        {"signal.narrative", "signal.observed.location", "signal.observed.municipality"},
        {"referral.signal.narrative", "referral.signal.observed.location", "referral.signal.observed.municipality"},
    };
    int nested = strcmp(prefix, "referral.signal") == 0;
    Ketenbus__Signal *s = s_calloc(sizeof *s);
    ketenbus__signal__init(s);
    s->exploitation = KETENBUS__EXPLOITATION__EXPLOITATION_CRIMINAL;
    s->n_indicators = 2;
    s->indicators = s_calloc(2 * sizeof *s->indicators);
    s->indicators[0] = KETENBUS__INDICATOR__INDICATOR_REPEATED_ARRESTS;
    s->indicators[1] = KETENBUS__INDICATOR__INDICATOR_SCRIPTED_STORY;
    s->minor = 1;
    s->age_band = KETENBUS__AGE_BAND__AGE_BAND_12_TO_15;
    s->observed = s_calloc(sizeof *s->observed);
    ketenbus__observation__init(s->observed);
    s->observed->time_us = S_NOW;
    s->narrative = s_leaf(r, l, paths[nested][0]);
    s->observed->location = s_leaf(r, l, paths[nested][1]);
    s->observed->municipality = s_leaf(r, l, paths[nested][2]);
    return s;
}

/* A signed envelope of a random sender, kind, purpose and handling code. */
static Ketenbus__Envelope *s_envelope(s_rng_t *r, EVP_PKEY *key, s_leaves_t *l)
{
    memset(l, 0, sizeof *l);
    Ketenbus__Envelope *e = s_calloc(sizeof *e);
    ketenbus__envelope__init(e);
    e->message_id.data = s_calloc(KB_ID_LEN);
    e->message_id.len = KB_ID_LEN;
    ck_assert_int_eq(kb_uuid7(e->message_id.data), KB_OK);
    e->sender = strdup(s_ids[s_below(r, S_N_IDS)]);
    e->kind = (Ketenbus__Kind)(1 + s_below(r, 3));
    e->purpose = (Ketenbus__Purpose)(1 + s_below(r, 6));
    e->handling = (Ketenbus__Handling)(1 + s_below(r, 4));
    e->legal_basis = s_calloc(sizeof *e->legal_basis);
    ketenbus__legal_basis__init(e->legal_basis);
    e->legal_basis->basis = strdup("Wpg art. 19");
    e->legal_basis->consent = KETENBUS__CONSENT__CONSENT_NOT_REQUIRED;
    e->created_us = kb_now_us();
    e->officer = strdup("officer-1");
    ck_assert(e->sender && e->legal_basis->basis && e->officer);
    switch (e->kind) {
    case SIG:
        e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_SIGNAL;
        e->signal = s_signal(r, l, "signal");
        break;
    case REF:
        e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL;
        e->referral = s_calloc(sizeof *e->referral);
        ketenbus__referral__init(e->referral);
        e->referral->action = KETENBUS__ACTION__ACTION_YOUTH_CARE;
        e->referral->urgency = KETENBUS__URGENCY__URGENCY_URGENT;
        e->referral->reason = s_leaf(r, l, "referral.reason");
        e->referral->contact = s_leaf(r, l, "referral.contact");
        e->referral->signal = s_signal(r, l, "referral.signal");
        break;
    default:
        e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL_UPDATE;
        e->correlation_id.data = s_calloc(KB_ID_LEN);
        e->correlation_id.len = KB_ID_LEN;
        ck_assert_int_eq(kb_uuid7(e->correlation_id.data), KB_OK);
        e->referral_update = s_calloc(sizeof *e->referral_update);
        ketenbus__referral_update__init(e->referral_update);
        e->referral_update->status = KETENBUS__REFERRAL_STATUS__REFERRAL_STATUS_ACCEPTED;
        e->referral_update->reason = s_leaf(r, l, "referral_update.reason");
        e->referral_update->handled_by = s_leaf(r, l, "referral_update.handled_by");
        break;
    }
    ck_assert_msg(kb_seal_sign(e, key) == KB_OK, "%s", kb_last_error());
    char why[256];
    ck_assert_msg(kb_envelope_validate(e, why, sizeof why) == KB_OK, "%s", why);
    return e;
}

static int s_listed(char *const *list, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], path) == 0)
            return 1;
    return 0;
}

/* The payload member an envelope carries ("signal"), as paths start. */
static const char *s_member(const Ketenbus__Envelope *e)
{
    return e->kind == SIG ? "signal" : e->kind == REF ? "referral" : "referral_update";
}

/* Check the plan for one recipient against the decision and the bytes. */
static void s_check_plan(const kb_conf_t *c, const Ketenbus__Envelope *e, const uint8_t *packed, size_t len,
                         const s_leaves_t *l, EVP_PKEY *key, const char *to, int64_t now)
{
    kb_decision_t d;
    ck_assert_int_eq(kb_policy_decide(c->policy, e->sender, to, (int)e->kind, (int)e->purpose, (int)e->handling, now,
                                      &d),
                     KB_OK);
    route_plan_t plan;
    ck_assert_msg(route_plan_recipient(c, e, packed, len, to, now, &plan) == KB_OK, "%s", kb_last_error());
    ck_assert_int_eq(plan.decision.allowed, d.allowed);
    ck_assert_ptr_eq(plan.decision.rule, d.rule);
    ck_assert_str_eq(plan.decision.reason, d.reason);
    if (!d.allowed) {
        /* never bytes for a refused recipient */
        ck_assert_ptr_null(plan.bytes);
        ck_assert_ptr_null(plan.own);
        ck_assert_uint_eq(plan.n_redacted, 0);
        route_plan_clear(&plan);
        return;
    }
    ck_assert_ptr_nonnull(plan.bytes);
    Ketenbus__Envelope *got = ketenbus__envelope__unpack(NULL, plan.len, plan.bytes);
    ck_assert_ptr_nonnull(got);
    ck_assert_msg(kb_seal_verify(got, key) == KB_OK, "to %s: %s", to, kb_last_error());

    const kb_rule_t *rule = d.rule;
    const char *member = s_member(e);
    size_t applies = 0;
    for (size_t i = 0; i < rule->n_redact; i++) {
        const char *path = rule->redact[i];
        if (!s_under(member, path)) {
            /* a path of another kind's payload: nothing to withhold */
            ck_assert(!s_listed(got->withheld, got->n_withheld, path));
            continue;
        }
        applies++;
        ck_assert_msg(s_listed(got->withheld, got->n_withheld, path), "%s not listed as withheld", path);
        ck_assert(s_listed((char *const *)plan.redacted, plan.n_redacted, path));
        for (size_t j = 0; j < l->n; j++)
            if (s_under(path, l->leaves[j].path))
                ck_assert_msg(!memmem(plan.bytes, plan.len, l->leaves[j].value, P_TEXT_LEN),
                              "%s (withheld by %s) reached %s", l->leaves[j].path, path, to);
    }
    ck_assert_uint_eq(plan.n_redacted, applies);
    ck_assert_uint_eq(got->n_withheld, applies);
    /* what is not withheld arrives */
    for (size_t j = 0; j < l->n; j++) {
        int withheld = 0;
        for (size_t i = 0; i < rule->n_redact; i++)
            withheld |= s_under(rule->redact[i], l->leaves[j].path);
        if (!withheld)
            ck_assert_msg(memmem(plan.bytes, plan.len, l->leaves[j].value, P_TEXT_LEN) != NULL, "%s missing",
                          l->leaves[j].path);
    }
    /* recipients without redaction share the one packing */
    if (applies == 0)
        ck_assert_ptr_eq(plan.bytes, packed);
    else
        ck_assert_ptr_eq(plan.bytes, plan.own);
    ketenbus__envelope__free_unpacked(got, NULL);
    route_plan_clear(&plan);
    ck_assert_ptr_null(plan.bytes);
}

START_TEST(test_property)
{
    s_rng_t rng = {0x9e3779b97f4a7c15ULL ^ ((uint64_t)(_i + 1) * 0x2545F4914F6CDD1DULL)};
    char *text = malloc(65536);
    ck_assert_ptr_nonnull(text);
    char name[32], path[PATH_MAX];
    snprintf(name, sizeof name, "random-%d.yaml", _i);
    s_in(path, name);
    kb_conf_t *c = NULL;
    for (int tries = 0; !c; tries++) {
        ck_assert_int_lt(tries, P_TRIES);
        s_random_rules(&rng, text, 65536);
        s_write(path, text);
        c = kb_conf_load_ex(path, KB_CONF_SKIP_KEYS, NULL);
        /* the only error random rules can have: an allow rule deny rules shadow */
        ck_assert_msg(c || strstr(kb_last_error(), "can never allow anything"), "%s\n%s", kb_last_error(), text);
    }
    free(text);

    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ck_assert_ptr_nonnull(key);
    for (int k = 0; k < P_ENVELOPES; k++) {
        s_leaves_t leaves;
        Ketenbus__Envelope *e = s_envelope(&rng, key, &leaves);
        int64_t now = s_below(&rng, 3) == 0 ? S_LATER : S_NOW;
        size_t len = ketenbus__envelope__get_packed_size(e);
        uint8_t *packed = malloc(len);
        ck_assert_ptr_nonnull(packed);
        ketenbus__envelope__pack(e, packed);
        for (size_t t = 0; t < S_N_IDS; t++)
            s_check_plan(c, e, packed, len, &leaves, key, s_ids[t], now);
        s_check_plan(c, e, packed, len, &leaves, key, "nobody", now);

        /* without a shared packing the plan packs for itself */
        route_plan_t plan;
        ck_assert_int_eq(route_plan_recipient(c, e, NULL, 0, s_ids[0], now, &plan), KB_OK);
        ck_assert(plan.bytes == NULL || plan.bytes == plan.own);
        route_plan_clear(&plan);

        /* fan-out is every agency the decision allows, in file order */
        const char *out[S_N_IDS];
        size_t n = kb_policy_fanout(c->policy, e->sender, (int)e->kind, (int)e->purpose, (int)e->handling, now, out,
                                    S_N_IDS);
        size_t j = 0;
        for (size_t t = 0; t < S_N_IDS; t++) {
            kb_decision_t d;
            kb_policy_decide(c->policy, e->sender, s_ids[t], (int)e->kind, (int)e->purpose, (int)e->handling, now,
                             &d);
            if (d.allowed) {
                ck_assert_uint_lt(j, n);
                ck_assert_str_eq(out[j++], s_ids[t]);
            }
        }
        ck_assert_uint_eq(j, n);
        free(packed);
        ketenbus__envelope__free_unpacked(e, NULL);
    }
    EVP_PKEY_free(key);
    kb_conf_destroy(&c);
}
END_TEST

START_TEST(test_plan_arguments)
{
    route_plan_t plan;
    ck_assert_int_eq(route_plan_recipient(NULL, NULL, NULL, 0, "politie", S_NOW, &plan), KB_EINVAL);
    ck_assert_ptr_null(plan.bytes);
    ck_assert_int_eq(route_plan_recipient(s_conf, NULL, NULL, 0, "politie", S_NOW, NULL), KB_EINVAL);
    route_plan_clear(NULL);
}
END_TEST

/* ------------------------------------------------------ lint model */

/* The linter against a plain model of what it must find, on random files
 * made to overlap: few agencies, kinds and purposes, every handling code,
 * a few expiry dates, deny rules among the allow rules. The model walks
 * every rule against every rule before it, pair by pair (what the linter
 * did before it kept unions per class); the linter must report the same
 * rules in the same way. The rules a message names are the first few of
 * those the model finds (which ones come first depends on the index's
 * order of pairs): each must be one of them, as many as there are up to
 * M_NAMED, with "and others" exactly when there are more. */
#define M_RUNS      300 /* random files */
#define M_MAX_RULES 40  /* rules per file */
#define M_AGENCIES  4   /* agencies rules name: politie, kmar, fier, ldh */
#define M_UNTILS    4   /* no expiry and three dates */
#define M_NAMED     3   /* rules a lint message names (KB_POLICY_NAMED of policy.c) */

static const char *const s_m_ids[M_AGENCIES] = {"politie", "kmar", "fier", "ldh"};
static const char *const s_m_untils[M_UNTILS] = {NULL, "2097-01-01", "2098-06-30", "2099-12-31"};

/* One generated rule. */
typedef struct {
    int deny;          /* 1: effect deny */
    unsigned from;     /* bit per agency of s_m_ids */
    unsigned to;       /* the same */
    unsigned kinds;    /* bits 1..3 (signal, referral, referral_update) */
    unsigned purposes; /* bits 0..2 of s_purpose_names */
    int hand;          /* 0..3: h0..h3 */
    int until;         /* index in s_m_untils */
} m_rule_t;

/* What the model finds about one rule. */
typedef struct {
    int pairs, live, decides; /* as s_lint_t */
    unsigned deny_set[2];     /* bit per rule index (up to 64) of deny rules refusing part of it */
    unsigned allow_set[2];    /* earlier allow rules taking part of it first */
} m_out_t;

static int s_m_lasts(const m_rule_t *x, const m_rule_t *a)
{
    return x->until == 0 || (a->until != 0 && x->until >= a->until); /* dates ascend with their index */
}

static void s_m_set(unsigned set[2], size_t i)
{
    set[i / 32] |= 1u << (i % 32);
}

static int s_m_count(const unsigned set[2])
{
    return __builtin_popcount(set[0]) + __builtin_popcount(set[1]);
}

static void s_m_run(const m_rule_t *r, size_t n, m_out_t *out)
{
    memset(out, 0, n * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        const m_rule_t *a = &r[i];
        if (a->deny)
            continue;
        for (unsigned f = 0; f < M_AGENCIES; f++)
            for (unsigned t = 0; t < M_AGENCIES; t++) {
                if (f == t || !(a->from & (1u << f)) || !(a->to & (1u << t)))
                    continue;
                out[i].pairs = 1;
                for (unsigned k = 1; k <= 3; k++) {
                    if (!(a->kinds & (1u << k)))
                        continue;
                    unsigned refused = 0, taken = 0;
                    for (size_t d = 0; d < n; d++) /* deny rules apply wherever they stand */
                        if (r[d].deny && (r[d].from & (1u << f)) && (r[d].to & (1u << t)) &&
                            (r[d].kinds & (1u << k)) && (r[d].purposes & a->purposes) && s_m_lasts(&r[d], a)) {
                            refused |= r[d].purposes;
                            s_m_set(out[i].deny_set, d);
                        }
                    unsigned rest = a->purposes & ~refused;
                    if (!rest)
                        continue;
                    out[i].live = 1;
                    for (size_t x = 0; x < i; x++)
                        if (!r[x].deny && (r[x].from & (1u << f)) && (r[x].to & (1u << t)) &&
                            (r[x].kinds & (1u << k)) && (r[x].purposes & rest) && r[x].hand >= a->hand &&
                            s_m_lasts(&r[x], a)) {
                            taken |= r[x].purposes;
                            s_m_set(out[i].allow_set, x);
                        }
                    if (rest & ~taken)
                        out[i].decides = 1;
                }
            }
    }
}

static void s_m_list(char *buf, size_t len, size_t *used, const char *const *names, unsigned bits, unsigned max)
{
    unsigned count = 0;
    s_add(buf, len, used, "[");
    for (unsigned i = 0; i < max; i++)
        if (bits & (1u << i))
            s_add(buf, len, used, "%s%s", count++ ? ", " : "", names[i]);
    s_add(buf, len, used, "]");
}

/* The quoted names in text (after the first, the rule's own id, if
 * skip) that lie before `stop` (NULL: the end): each must be a rule of
 * set; returns their count. */
static int s_m_names_in(const char *text, int skip, const char *stop, const unsigned set[2], const char *msg)
{
    int count = 0;
    const char *p = text - 1;
    if (skip) {
        p = strchr(text, '\'');
        p = p ? strchr(p + 1, '\'') : NULL; /* past the rule's own id */
    }
    while (p && (p = strchr(p + 1, '\'')) != NULL && (!stop || p < stop)) {
        const char *q = strchr(p + 1, '\'');
        ck_assert_msg(q != NULL, "%s", msg);
        unsigned idx = 0;
        ck_assert_msg(sscanf(p + 1, "r%u'", &idx) == 1 && idx < 64, "%s", msg);
        ck_assert_msg(set[idx / 32] & (1u << (idx % 32)), "names r%u, not one the model found: %s", idx, msg);
        count++;
        p = q;
    }
    return count;
}

static int s_m_expect(int found)
{
    return found < (int)M_NAMED ? found : (int)M_NAMED;
}

START_TEST(test_lint_model)
{
    s_rng_t rng = {0x9e3779b97f4a7c15ULL ^ (uint64_t)(_i + 1) * 0x2545f4914f6cdd1dULL};
    m_rule_t rules[M_MAX_RULES];
    size_t n = 1 + s_below(&rng, M_MAX_RULES);
    static char text[65536];
    size_t used = 0;
    s_add(text, sizeof text, &used, "%s", S_HEAD);
    for (size_t i = 0; i < n; i++) {
        m_rule_t *r = &rules[i];
        r->deny = s_below(&rng, 4) == 0;
        do {
            r->from = 1 + s_below(&rng, (1u << M_AGENCIES) - 1);
            r->to = 1 + s_below(&rng, (1u << M_AGENCIES) - 1);
        } while (r->from == r->to && __builtin_popcount(r->from) == 1); /* no rule of one agency to itself */
        r->kinds = (1 + s_below(&rng, 7)) << 1;
        r->purposes = 1 + s_below(&rng, 7);
        r->hand = r->deny ? 0 : (int)s_below(&rng, 4);
        r->until = (int)s_below(&rng, M_UNTILS);
        s_add(text, sizeof text, &used, "  - {id: r%zu, %sfrom: ", i, r->deny ? "effect: deny, " : "");
        s_m_list(text, sizeof text, &used, s_m_ids, r->from, M_AGENCIES);
        s_add(text, sizeof text, &used, ", to: ");
        s_m_list(text, sizeof text, &used, s_m_ids, r->to, M_AGENCIES);
        if (!r->deny || s_below(&rng, 2)) {
            s_add(text, sizeof text, &used, ", kinds: ");
            s_m_list(text, sizeof text, &used, s_kind_names, r->kinds, 4);
            s_add(text, sizeof text, &used, ", purposes: ");
            s_m_list(text, sizeof text, &used, s_purpose_names, r->purposes, 3);
        } else {
            r->kinds = 0xe;     /* a deny rule without kinds and purposes has all; */
            r->purposes = 0x3f; /* of those the generated rules use */
        }
        if (!r->deny)
            s_add(text, sizeof text, &used, ", max_handling: h%d, legal_basis: b", r->hand);
        if (r->until)
            s_add(text, sizeof text, &used, ", valid_until: %s", s_m_untils[r->until]);
        s_add(text, sizeof text, &used, "}\n");
    }
    m_out_t out[M_MAX_RULES];
    s_m_run(rules, n, out);

    /* what the linter must say of each rule, in file order */
    char path[PATH_MAX], name[32];
    snprintf(name, sizeof name, "model-%d.yaml", _i);
    s_write(s_in(path, name), text);
    kb_error_clear();
    kb_conf_t *c = kb_conf_load_ex(path, KB_CONF_SKIP_KEYS, NULL);
    kb_policy_issue_t *issues = NULL;
    size_t n_issues = 0, at = 0;
    if (c)
        ck_assert_int_eq(kb_policy_lint(c, kb_now_us(), &issues, &n_issues), KB_OK);
    for (size_t i = 0; i < n; i++) {
        const m_out_t *o = &out[i];
        if (rules[i].deny || !o->pairs || (o->live && o->decides))
            continue;
        char got[512], head[64];
        if (c) {
            ck_assert_msg(at < n_issues, "%s: rule r%zu: no issue", path, i);
            snprintf(got, sizeof got, "%s", issues[at].message);
            ck_assert_int_eq(issues[at].is_error, !o->live);
            ck_assert_int_eq(issues[at].line, 23 + (int)i); /* the first rule is on line 23 */
            at++;
        } else {
            /* the load refuses the file at its first error: no warnings */
            if (o->live)
                continue;
            const char *msg = kb_last_error();
            const char *colon = strstr(msg, ": rule ");
            ck_assert_msg(colon != NULL, "%s", msg);
            snprintf(got, sizeof got, "%s", colon + 2);
        }
        snprintf(head, sizeof head, "rule 'r%zu' %s", i, o->live ? "never decides: " : "can never allow anything: ");
        ck_assert_msg(strncmp(got, head, strlen(head)) == 0, "%s: '%s', expected '%s...'", path, got, head);
        int n_d = s_m_count(o->deny_set), n_a = s_m_count(o->allow_set);
        int others = 0;
        for (const char *p = got; (p = strstr(p, " and others")) != NULL; p++)
            others++;
        if (!o->live) {
            ck_assert_int_eq(s_m_names_in(got, 1, NULL, o->deny_set, got), s_m_expect(n_d));
            ck_assert_int_eq(others, n_d > (int)M_NAMED);
        } else {
            const char *rest = o->deny_set[0] | o->deny_set[1] ? strstr(got, " and deny rule") : NULL;
            ck_assert_msg(!(o->deny_set[0] | o->deny_set[1]) || rest, "%s: %s", path, got);
            ck_assert_int_eq(s_m_names_in(got, 1, rest, o->allow_set, got), s_m_expect(n_a));
            if (rest)
                ck_assert_int_eq(s_m_names_in(rest, 0, NULL, o->deny_set, got), s_m_expect(n_d));
            ck_assert_int_eq(others, (n_a > (int)M_NAMED) + (n_d > (int)M_NAMED));
        }
        if (!c)
            return; /* only the first error is known */
    }
    if (c) {
        ck_assert_msg(at == n_issues, "%s: %zu issues, the model has %zu: %s", path, n_issues, at,
                      n_issues > at ? issues[at].message : "");
        free(issues);
        kb_conf_destroy(&c);
    } else {
        ck_abort_msg("%s refused, but the model finds no error: %s", path, kb_last_error());
    }
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("policy");
    tcase_add_unchecked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_decide, 0, (int)(sizeof s_table / sizeof s_table[0]));
    tcase_add_test(tc, test_decide_arguments);
    tcase_add_loop_test(tc, test_fanout, 0, (int)(sizeof s_fanouts / sizeof s_fanouts[0]));
    tcase_add_loop_test(tc, test_fanout_candidates, 0, (int)(sizeof s_candidates / sizeof s_candidates[0]));
    tcase_add_test(tc, test_lint_fixture);
    tcase_add_loop_test(tc, test_lint, 0, (int)(sizeof s_lints / sizeof s_lints[0]));
    tcase_add_loop_test(tc, test_lint_model, 0, M_RUNS);
    tcase_add_loop_test(tc, test_property, 0, P_RUNS);
    tcase_add_test(tc, test_plan_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
