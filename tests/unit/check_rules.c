/*
 * check_rules.c - tests of broker/rules.c over a small hand-built
 * configuration (no files, no conf.c): a table of allow/deny decisions with
 * the rule that decides, and fan-out order, sender exclusion, duplicates and
 * truncation.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "ketenbus.pb-c.h"
#include "rules.h"

#define K(kind) (1u << KETENBUS__KIND__KIND_##kind)

static char *s_from_fier[] = {"fier"};
static char *s_from_politie[] = {"politie"};
static char *s_from_two[] = {"politie", "fier"};
static char *s_to_politie_comensha[] = {"politie", "comensha"};
static char *s_to_om[] = {"om"};
static char *s_to_all[] = {"comensha", "fier", "politie", "om"};
static char *s_to_politie[] = {"politie"};

/* Agencies in configuration order: politie, om, fier, comensha, ldh. */
static kb_agency_t s_agencies[] = {
    {.id = "politie"}, {.id = "om"}, {.id = "fier"}, {.id = "comensha"}, {.id = "ldh"},
};

static kb_rule_t s_rules[] = {
    {.id = "fier-signal", .from = s_from_fier, .n_from = 1, .to = s_to_politie_comensha, .n_to = 2,
     .kinds = K(SIGNAL)},
    {.id = "politie-om", .from = s_from_politie, .n_from = 1, .to = s_to_om, .n_to = 1,
     .kinds = K(SIGNAL) | K(REFERRAL)},
    /* Names the sender itself among the recipients, in an order unlike the
     * configuration's. */
    {.id = "referrals", .from = s_from_two, .n_from = 2, .to = s_to_all, .n_to = 4,
     .kinds = K(REFERRAL) | K(REFERRAL_UPDATE)},
    /* Allows again what "referrals" allows: fan-out must not repeat. */
    {.id = "fier-politie-again", .from = s_from_fier, .n_from = 1, .to = s_to_politie, .n_to = 1,
     .kinds = K(REFERRAL) | K(SIGNAL)},
};

static const kb_conf_t s_conf = {
    .n_agencies = sizeof s_agencies / sizeof s_agencies[0],
    .agencies = s_agencies,
    .n_rules = sizeof s_rules / sizeof s_rules[0],
    .rules = s_rules,
};

static const kb_conf_t s_no_rules = {
    .n_agencies = sizeof s_agencies / sizeof s_agencies[0],
    .agencies = s_agencies,
};

typedef struct {
    const char *from; /* sender */
    const char *to;   /* recipient */
    int kind;         /* ketenbus.Kind */
    const char *rule; /* id of the deciding rule, NULL for refused */
} s_decision_t;

static const s_decision_t s_decisions[] = {
    {"fier", "politie", KETENBUS__KIND__KIND_SIGNAL, "fier-signal"},
    {"fier", "comensha", KETENBUS__KIND__KIND_SIGNAL, "fier-signal"},
    {"fier", "om", KETENBUS__KIND__KIND_SIGNAL, NULL},             /* recipient not in to */
    {"fier", "ldh", KETENBUS__KIND__KIND_SIGNAL, NULL},
    {"comensha", "politie", KETENBUS__KIND__KIND_SIGNAL, NULL},   /* sender in no rule */
    {"politie", "fier", KETENBUS__KIND__KIND_SIGNAL, NULL},       /* rules are one-way */
    {"fier", "politie", KETENBUS__KIND__KIND_MATCH_NOTICE, NULL}, /* kind not allowed */
    {"fier", "politie", KETENBUS__KIND__KIND_REFERRAL, "referrals"}, /* first match wins */
    {"politie", "om", KETENBUS__KIND__KIND_SIGNAL, "politie-om"},
    {"politie", "om", KETENBUS__KIND__KIND_REFERRAL, "politie-om"},
    {"politie", "om", KETENBUS__KIND__KIND_REFERRAL_UPDATE, "referrals"},
    {"politie", "om", KETENBUS__KIND__KIND_EXPIRY_NOTICE, NULL},
    {"politie", "comensha", KETENBUS__KIND__KIND_REFERRAL_UPDATE, "referrals"},
    {"om", "politie", KETENBUS__KIND__KIND_REFERRAL, NULL},
    {"fier", "fier", KETENBUS__KIND__KIND_REFERRAL, "referrals"}, /* the rule names it; fan-out skips it */
    {"FIER", "politie", KETENBUS__KIND__KIND_SIGNAL, NULL},       /* ids are exact */
    {"fier", "Politie", KETENBUS__KIND__KIND_SIGNAL, NULL},
    {"fie", "politie", KETENBUS__KIND__KIND_SIGNAL, NULL},
    {"", "politie", KETENBUS__KIND__KIND_SIGNAL, NULL},
    {"unknown", "politie", KETENBUS__KIND__KIND_SIGNAL, NULL},
    {"fier", "politie", KETENBUS__KIND__KIND_UNSPECIFIED, NULL},
    {"fier", "politie", -1, NULL},
    {"fier", "politie", 32, NULL},
    {"fier", "politie", 99, NULL},
};

START_TEST(test_match)
{
    const s_decision_t *row = &s_decisions[_i];
    const kb_rule_t *r = kb_rules_match(&s_conf, row->from, row->to, row->kind);
    if (row->rule) {
        ck_assert_msg(r != NULL, "row %d: %s -> %s kind %d refused, expected rule %s", _i, row->from, row->to,
                      row->kind, row->rule);
        ck_assert_str_eq(r->id, row->rule);
    } else {
        ck_assert_msg(r == NULL, "row %d: %s -> %s kind %d allowed by %s", _i, row->from, row->to, row->kind,
                      r ? r->id : "");
    }
    /* Without rules everything is refused. */
    ck_assert_ptr_null(kb_rules_match(&s_no_rules, row->from, row->to, row->kind));
}
END_TEST

START_TEST(test_match_null_arguments)
{
    ck_assert_ptr_null(kb_rules_match(NULL, "fier", "politie", KETENBUS__KIND__KIND_SIGNAL));
    ck_assert_ptr_null(kb_rules_match(&s_conf, NULL, "politie", KETENBUS__KIND__KIND_SIGNAL));
    ck_assert_ptr_null(kb_rules_match(&s_conf, "fier", NULL, KETENBUS__KIND__KIND_SIGNAL));
}
END_TEST

typedef struct {
    const char *from;          /* sender */
    int kind;                  /* ketenbus.Kind */
    const char *expect[6];     /* recipients in order, NULL-terminated */
} s_fanout_t;

static const s_fanout_t s_fanouts[] = {
    /* Configuration order, not the rule's to order (politie, comensha). */
    {"fier", KETENBUS__KIND__KIND_SIGNAL, {"politie", "comensha", NULL}},
    /* Sender excluded although "referrals" names it; politie once although two rules allow it. */
    {"fier", KETENBUS__KIND__KIND_REFERRAL, {"politie", "om", "comensha", NULL}},
    {"fier", KETENBUS__KIND__KIND_REFERRAL_UPDATE, {"politie", "om", "comensha", NULL}},
    {"politie", KETENBUS__KIND__KIND_SIGNAL, {"om", NULL}},
    {"politie", KETENBUS__KIND__KIND_REFERRAL, {"om", "fier", "comensha", NULL}},
    {"politie", KETENBUS__KIND__KIND_MATCH_NOTICE, {NULL}},
    {"om", KETENBUS__KIND__KIND_REFERRAL, {NULL}},
    {"ldh", KETENBUS__KIND__KIND_SIGNAL, {NULL}},
    {"fier", 0, {NULL}},
};

START_TEST(test_fanout)
{
    const s_fanout_t *row = &s_fanouts[_i];
    const char *out[8];
    for (size_t i = 0; i < 8; i++)
        out[i] = "untouched";
    size_t n = kb_rules_fanout(&s_conf, row->from, row->kind, out, 8);
    size_t want = 0;
    while (row->expect[want])
        want++;
    ck_assert_uint_eq(n, want);
    for (size_t i = 0; i < want; i++)
        ck_assert_str_eq(out[i], row->expect[i]);
    ck_assert_str_eq(out[n], "untouched");
    /* The ids are the configuration's own, not copies. */
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (size_t a = 0; a < s_conf.n_agencies; a++)
            found |= out[i] == s_agencies[a].id;
        ck_assert(found);
    }
    ck_assert_uint_eq(kb_rules_fanout(&s_no_rules, row->from, row->kind, out, 8), 0);
}
END_TEST

START_TEST(test_fanout_truncates)
{
    const char *out[3] = {"untouched", "untouched", "untouched"};
    ck_assert_uint_eq(kb_rules_fanout(&s_conf, "fier", KETENBUS__KIND__KIND_REFERRAL, out, 2), 2);
    ck_assert_str_eq(out[0], "politie");
    ck_assert_str_eq(out[1], "om");
    ck_assert_str_eq(out[2], "untouched");
    ck_assert_uint_eq(kb_rules_fanout(&s_conf, "fier", KETENBUS__KIND__KIND_REFERRAL, out, 0), 0);
    ck_assert_str_eq(out[0], "politie");
    ck_assert_uint_eq(kb_rules_fanout(NULL, "fier", KETENBUS__KIND__KIND_REFERRAL, out, 3), 0);
    ck_assert_uint_eq(kb_rules_fanout(&s_conf, NULL, KETENBUS__KIND__KIND_REFERRAL, out, 3), 0);
    ck_assert_uint_eq(kb_rules_fanout(&s_conf, "fier", KETENBUS__KIND__KIND_REFERRAL, NULL, 3), 0);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("rules");
    TCase *tc = tcase_create("decide");
    tcase_add_loop_test(tc, test_match, 0, (int)(sizeof s_decisions / sizeof s_decisions[0]));
    tcase_add_test(tc, test_match_null_arguments);
    tcase_add_loop_test(tc, test_fanout, 0, (int)(sizeof s_fanouts / sizeof s_fanouts[0]));
    tcase_add_test(tc, test_fanout_truncates);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(s_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
