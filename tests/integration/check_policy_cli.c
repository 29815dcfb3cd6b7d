/*
 * check_policy_cli.c - `ketenbus policy check` and `ketenbus policy explain`.
 *
 * Runs the built binary ($KB_BUILD/ketenbus) as a privacy officer would:
 * `check` on the example chain (ops/examples/chain.yaml, found from the
 * source tree the tests run in) and on broken files in a scratch directory,
 * whose errors must point at the right file:line:col; `explain` on the
 * example chain for allowed, redacted, denied, default-denied, too
 * restricted and expired messages, as text and as JSON. No broker runs:
 * both commands read only the file.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <json-c/json.h>

#include "kb_util.h"
#include "kb_test.h"

#define S_EXAMPLE  "ops/examples/chain.yaml"
#define S_OUT_MAX  65536
#define S_MAX_WANT 4

static char s_dir[256];             /* scratch directory */
static char s_example[PATH_MAX];    /* absolute path of the example chain */
static char s_out[S_OUT_MAX];       /* stdout and stderr of the last run */

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/kbpolicy.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
    /* make test runs at the top of the source tree */
    ck_assert_msg(realpath(S_EXAMPLE, s_example) != NULL, "cannot find %s from the current directory", S_EXAMPLE);
}

static void s_teardown(void)
{
    const char *keep = getenv("KB_KEEP_TMP");
    if (keep && strcmp(keep, "1") == 0)
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Run `ketenbus policy ARGS` in the scratch directory; stdout and stderr
 * go to s_out; "@EX" in args stands for the example file. Returns the exit
 * status. */
static int s_policy(const char *args)
{
    const char *build = getenv("KB_BUILD");
    char expanded[4096], cmd[8192], outfile[512];
    const char *at = strstr(args, "@EX");
    int n = at ? snprintf(expanded, sizeof expanded, "%.*s'%s'%s", (int)(at - args), args, s_example, at + 3)
               : snprintf(expanded, sizeof expanded, "%s", args);
    ck_assert(n >= 0 && (size_t)n < sizeof expanded);
    n = snprintf(outfile, sizeof outfile, "%s/cli.out", s_dir);
    ck_assert(n > 0 && (size_t)n < sizeof outfile);
    n = snprintf(cmd, sizeof cmd, "cd '%s' && '%s/ketenbus' policy %s > cli.out 2>&1", s_dir,
                 build ? build : "build", expanded);
    ck_assert(n > 0 && (size_t)n < sizeof cmd);
    int st = system(cmd);
    char *text = NULL;
    size_t len = 0;
    s_out[0] = '\0';
    if (kb_file_read(outfile, sizeof s_out - 1, &text, &len) == 0) {
        memcpy(s_out, text, len + 1);
        free(text);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void s_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static void s_want(const char *const *want, const char *unwanted)
{
    for (size_t i = 0; i < S_MAX_WANT && want[i]; i++)
        ck_assert_msg(strstr(s_out, want[i]) != NULL, "expected '%s' in:\n%s", want[i], s_out);
    if (unwanted)
        ck_assert_msg(strstr(s_out, unwanted) == NULL, "did not expect '%s' in:\n%s", unwanted, s_out);
}

/* ------------------------------------------------------------- explain */

/* One question to the example chain and what the answer must say. */
typedef struct {
    const char *args;                  /* after "policy explain @EX" */
    int rc;                            /* expected exit status */
    const char *want[S_MAX_WANT];      /* substrings of the output */
    const char *unwanted;              /* a substring that must not appear */
} s_explain_case_t;

static const s_explain_case_t s_explain_cases[] = {
    /* 0: a shelter's signal to the police: allowed, everything visible */
    {"--from fier --to politie --kind signal --purpose victim_care --handling h2", 0,
     {"ALLOWED by rule care-signals-police", "chain.yaml:", "AVG art. 6(1)(d)", "politie sees every field"},
     "withheld"},
    /* 1: police to EMM for analysis: narrative and location withheld */
    {"--from politie --to emm --kind signal --purpose analysis --handling h1", 0,
     {"ALLOWED by rule analysis-emm", "withheld from emm: signal.narrative, signal.observed.location",
      "Wpg art. 19 lid 1"},
     NULL},
    /* 2: the Marechaussee is in the group police */
    {"--from kmar --to emm --kind signal --purpose analysis --handling h2", 0, {"ALLOWED by rule analysis-emm"}, NULL},
    /* 3: registration with CoMensha, without the police narrative */
    {"--from politie --to comensha --kind signal --purpose registration --handling h1", 0,
     {"ALLOWED by rule police-registers-comensha", "withheld from comensha: signal.narrative"}, NULL},
    /* 4: the same at h2: the rule allows at most h1 -> default deny */
    {"--from politie --to comensha --kind signal --purpose registration --handling h2", 3,
     {"REFUSED: no rule: default deny", "police-registers-comensha", "h1"}, "ALLOWED"},
    /* 5: the municipality asks the police for their narrative: deny rule */
    {"--from gem-utrecht --to politie --kind referral --purpose child_protection --handling h0", 3,
     {"REFUSED by deny rule no-municipal-requests-to-police", "chain.yaml:"}, NULL},
    /* 6: police information to a municipality: deny rule, for any purpose */
    {"--from kmar --to gem-amsterdam --kind signal --purpose victim_care --handling h0", 3,
     {"REFUSED by deny rule no-police-information-to-municipalities"}, NULL},
    /* 7: nothing says the board sends to EMM: default deny */
    {"--from rvdk --to emm --kind signal --purpose analysis --handling h0", 3, {"REFUSED: no rule: default deny"},
     NULL},
    /* 8: H3 only between police and prosecutor */
    {"--from politie --to om --kind referral --purpose criminal_investigation --handling h3", 0,
     {"ALLOWED by rule police-investigation", "om sees every field"}, NULL},
    /* 9: H3 to the board is too restricted */
    {"--from politie --to rvdk --kind referral --purpose child_protection --handling h3", 3,
     {"REFUSED: no rule: default deny", "police-child-protection"}, NULL},
    /* 10: statistics for Defence for Children: allowed until the pilot ends */
    {"--from comensha --to dci --kind signal --purpose statistics --handling h0 --at 2028-12-31T23:00:00Z", 0,
     {"ALLOWED by rule statistics-dci", "signal.observed", "at 2028-12-31T23:00:00"}, NULL},
    /* 11: ... and refused after it */
    {"--from comensha --to dci --kind signal --purpose statistics --handling h0 --at 2029-01-01", 3,
     {"REFUSED", "statistics-dci", "expired"}, "ALLOWED"},
    /* 12: the wrong purpose for a rule that exists */
    {"--from politie --to rvdk --kind signal --purpose statistics --handling h0", 3, {"default deny"}, NULL},
    /* 13: an agency never sends to itself */
    {"--from politie --to politie --kind signal --purpose criminal_investigation --handling h0", 3, {"REFUSED"},
     NULL},
    /* 14: fan-out of the shelter's signal: police and CoMensha only */
    {"--from fier --kind signal --purpose victim_care --handling h2", 0,
     {"the broker sends it to 2 agencies", "politie:\n  ALLOWED by rule care-signals-police",
      "comensha:\n  ALLOWED by rule care-reports-comensha"},
     "emm:"},
    /* 15: fan-out of a police signal: deny rules listed */
    {"--from politie --kind signal --purpose victim_care --handling h0", 3,
     {"REFUSED: no agency may receive it", "refused by a deny rule", "gem-utrecht: rule no-police-information"},
     NULL},
    /* 16: JSON, allowed with redactions */
    {"--from politie --to emm --kind signal --purpose analysis --handling h1 --json", 0,
     {"\"allowed\":true", "\"rule\":\"analysis-emm\"", "\"effect\":\"allow\"",
      "\"redact\":[\"signal.narrative\",\"signal.observed.location\"]"},
     NULL},
    /* 17: JSON, refused by a deny rule */
    {"--from gem-utrecht --to politie --kind referral --purpose child_protection --handling h0 --json", 3,
     {"\"allowed\":false", "\"rule\":\"no-municipal-requests-to-police\"", "\"effect\":\"deny\"", "\"redact\":[]"},
     NULL},
    /* 18: JSON, default deny */
    {"--from rvdk --to emm --kind signal --purpose analysis --handling h0 --json", 3,
     {"\"allowed\":false", "\"rule\":null", "\"effect\":null", "\"reason\":\""}, NULL},
    /* 19: JSON fan-out */
    {"--from fier --kind signal --purpose victim_care --handling h2 --json", 0,
     {"\"allowed\":true", "\"recipients\":[{\"to\":\"politie\"", "\"to\":\"comensha\""}, "\"to\":\"emm\""},
    /* 20-27: usage errors */
    {"--from interpol --to politie --kind signal --purpose analysis --handling h0", 2,
     {"--from: unknown agency 'interpol'", "politie, kmar, om"}, NULL},
    {"--from politie --to interpol --kind signal --purpose analysis --handling h0", 2,
     {"--to: unknown agency 'interpol'"}, NULL},
    {"--from politie --to emm --kind letter --purpose analysis --handling h0", 2,
     {"--kind: unknown value 'letter' (expected signal, referral or referral_update)\n"}, "notice"},
    {"--from politie --to emm --kind signal --purpose curiosity --handling h0", 2,
     {"--purpose: unknown value 'curiosity'", "victim_care"}, NULL},
    {"--from politie --to emm --kind signal --purpose analysis --handling h4", 2,
     {"--handling: unknown value 'h4'", "h0, h1, h2 or h3"}, NULL},
    {"--from politie --to emm --kind signal --purpose analysis --handling h1 --at yesterday", 2,
     {"--at: 'yesterday' is not a time"}, NULL},
    /* a day the month does not have is no time, not the next month's first */
    {"--from politie --to emm --kind signal --purpose analysis --handling h1 --at 2028-11-31", 2,
     {"--at: '2028-11-31' is not a time"}, NULL},
    {"--from politie --to emm --kind signal --purpose analysis --handling h1 --at 2027-02-29T10:00:00Z", 2,
     {"--at: '2027-02-29T10:00:00Z' is not a time"}, NULL},
    /* 28: a required option missing */
    {"--from politie --to emm --kind signal --handling h1", 2, {"--purpose is required"}, NULL},
    /* 29: case-insensitive, with the proto prefix */
    {"--from politie --to emm --kind KIND_SIGNAL --purpose Analysis --handling H1", 0,
     {"ALLOWED by rule analysis-emm"}, NULL},
    /* 30-31: notices are the broker's own, no agency sends one: not a kind to ask about */
    {"--from politie --to emm --kind match_notice --purpose analysis --handling h0", 2,
     {"--kind: unknown value 'match_notice' (expected signal, referral or referral_update)\n"}, "REFUSED"},
    {"--from politie --kind KIND_EXPIRY_NOTICE --purpose analysis --handling h0 --json", 2,
     {"--kind: unknown value 'KIND_EXPIRY_NOTICE' (expected signal, referral or referral_update)\n"}, "allowed"},
};

START_TEST(test_explain)
{
    const s_explain_case_t *c = &s_explain_cases[_i];
    char args[1024];
    snprintf(args, sizeof args, "explain @EX %s", c->args);
    int rc = s_policy(args);
    ck_assert_msg(rc == c->rc, "case %d: exit %d, expected %d:\n%s", _i, rc, c->rc, s_out);
    s_want(c->want, c->unwanted);
}
END_TEST

/* The JSON output is one object that parses, with the documented keys. */
START_TEST(test_explain_json_parses)
{
    ck_assert_int_eq(s_policy("explain @EX --from politie --to emm --kind signal --purpose analysis "
                              "--handling h1 --json"),
                     0);
    json_object *o = json_tokener_parse(s_out);
    ck_assert_msg(o != NULL, "not JSON: %s", s_out);
    json_object *v = NULL;
    ck_assert(json_object_object_get_ex(o, "allowed", &v) && json_object_get_boolean(v));
    ck_assert(json_object_object_get_ex(o, "rule", &v) && strcmp(json_object_get_string(v), "analysis-emm") == 0);
    ck_assert(json_object_object_get_ex(o, "legal_basis", &v) && strstr(json_object_get_string(v), "Wpg"));
    ck_assert(json_object_object_get_ex(o, "redact", &v) && json_object_array_length(v) == 2);
    ck_assert(json_object_object_get_ex(o, "reason", &v) && json_object_get_string_len(v) > 0);
    json_object_put(o);

    ck_assert_int_eq(s_policy("explain @EX --from politie --kind signal --purpose analysis --handling h1 --json"), 0);
    o = json_tokener_parse(s_out);
    ck_assert_msg(o != NULL, "not JSON: %s", s_out);
    ck_assert(json_object_object_get_ex(o, "recipients", &v) && json_object_array_length(v) == 1);
    json_object *first = json_object_array_get_idx(v, 0), *to = NULL;
    ck_assert(json_object_object_get_ex(first, "to", &to) && strcmp(json_object_get_string(to), "emm") == 0);
    json_object_put(o);
}
END_TEST

/* ------------------------------------------------------------- check */

START_TEST(test_check_example)
{
    ck_assert_int_eq(s_policy("check @EX"), 0);
    ck_assert_msg(strstr(s_out, "11 agencies, 3 groups, 15 rules (13 allow, 2 deny): OK\n") != NULL, "%s", s_out);
    ck_assert_msg(strstr(s_out, "warning") == NULL, "%s", s_out);
    ck_assert_int_eq(s_policy("check --strict @EX"), 0);
    /* the example's key files are not beside it: --keys reads them */
    ck_assert_int_eq(s_policy("check --keys @EX"), 1);
    ck_assert_msg(strstr(s_out, "chain.yaml:") && strstr(s_out, "keys/politie"), "%s", s_out);
}
END_TEST

/* A file given through a pipe (`<(cat chain.yaml)`, /dev/stdin) is read
 * until its writer is done, not as an empty file. */
START_TEST(test_check_from_pipe)
{
    const char *build = getenv("KB_BUILD");
    char cmd[PATH_MAX + 1024], outfile[512];
    snprintf(outfile, sizeof outfile, "%s/cli.out", s_dir);
    int n = snprintf(cmd, sizeof cmd, "cat '%s' | '%s/ketenbus' policy check /dev/stdin > '%s' 2>&1", s_example,
                     build ? build : "build", outfile);
    ck_assert(n > 0 && (size_t)n < sizeof cmd);
    int st = system(cmd);
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_file_read(outfile, sizeof s_out - 1, &text, &len), 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", text);
    ck_assert_msg(strstr(text, "11 agencies, 3 groups, 15 rules (13 allow, 2 deny): OK\n") != NULL, "%s", text);
    free(text);
}
END_TEST

START_TEST(test_check_usage)
{
    ck_assert_int_eq(s_policy("check"), 2);
    ck_assert_msg(strstr(s_out, "expected one FILE"), "%s", s_out);
    ck_assert_int_eq(s_policy("check --bogus @EX"), 2);
    ck_assert_int_eq(s_policy("check missing.yaml"), 1);
    ck_assert_msg(strstr(s_out, "missing.yaml"), "%s", s_out);
    ck_assert_int_eq(s_policy("frobnicate"), 2);
    ck_assert_msg(strstr(s_out, "unknown subcommand 'frobnicate'"), "%s", s_out);
    ck_assert_int_eq(s_policy(""), 2);
    const char *helps[] = {"--help", "check --help", "explain --help"};
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        ck_assert_int_eq(s_policy(helps[i]), 0);
        ck_assert_msg(strstr(s_out, "SYNOPSIS") && strstr(s_out, "EXIT STATUS"), "%s: %s", helps[i], s_out);
    }
}
END_TEST

/* Everything before `rules:` in the broken files; the rules follow. */
static const char *s_head = "broker:\n"
                            "  id: t\n"
                            "  listen: tcp://127.0.0.1:*\n"
                            "  data_dir: data\n"
                            "  key_dir: keys\n"
                            "agencies:\n"
                            "  - id: politie\n"
                            "    name: Politie\n"
                            "    curve_cert: keys/politie.curve\n"
                            "    signing_key: keys/politie.sign.pub.pem\n"
                            "  - id: fier\n"
                            "    name: Fier\n"
                            "    curve_cert: keys/fier.curve\n"
                            "    signing_key: keys/fier.sign.pub.pem\n"
                            "  - id: rvdk\n"
                            "    name: Raad\n"
                            "    curve_cert: keys/rvdk.curve\n"
                            "    signing_key: keys/rvdk.sign.pub.pem\n"
                            "groups:\n"
                            "  care: [fier]\n"
                            "rules:\n"; /* 21 lines: rules start on line 22 */

#define S_RULE_LINE 22

/* A rules block and where its mistake must be reported. */
typedef struct {
    const char *rules;     /* YAML under rules: */
    int rc;                /* expected exit status */
    int line;              /* line of the finding, counted from the first rules line (0 = none) */
    int column;            /* its column */
    const char *want;      /* a substring of the message */
} s_check_case_t;

static const s_check_case_t s_check_cases[] = {
    /* 0: a good file */
    {"  - id: ok\n    from: [care]\n    to: [politie]\n    kinds: [signal]\n    purposes: [victim_care]\n"
     "    max_handling: h2\n    legal_basis: \"AVG art. 6(1)(d)\"\n",
     0, 0, 0, "3 agencies, 1 group, 1 rule (1 allow, 0 deny): OK"},
    /* 1: unknown agency in to */
    {"  - id: r1\n    from: [care]\n    to: [politie, interpol]\n    kinds: [signal]\n"
     "    purposes: [victim_care]\n    max_handling: h2\n    legal_basis: \"b\"\n",
     1, 2, 19, "interpol"},
    /* 2: unknown purpose */
    {"  - id: r1\n    from: [care]\n    to: [politie]\n    kinds: [signal]\n"
     "    purposes: [victim-care]\n    max_handling: h2\n    legal_basis: \"b\"\n",
     1, 4, 16, "victim-care"},
    /* 3: handling code that does not exist */
    {"  - id: r1\n    from: [care]\n    to: [politie]\n    kinds: [signal]\n"
     "    purposes: [victim_care]\n    max_handling: h4\n    legal_basis: \"b\"\n",
     1, 5, 19, "h4"},
    /* 4: a redact path that is no field */
    {"  - id: r1\n    from: [care]\n    to: [politie]\n    kinds: [signal]\n"
     "    purposes: [victim_care]\n    max_handling: h2\n    legal_basis: \"b\"\n    redact: [signal.story]\n",
     1, 7, 14, "signal.story"},
    /* 5: an allow rule without legal basis */
    {"  - id: r1\n    from: [care]\n    to: [politie]\n    kinds: [signal]\n"
     "    purposes: [victim_care]\n    max_handling: h2\n",
     1, 0, 5, "legal_basis"},
    /* 6: the same rule id twice */
    {"  - id: r1\n    from: [care]\n    to: [politie]\n    kinds: [signal]\n"
     "    purposes: [victim_care]\n    max_handling: h2\n    legal_basis: \"b\"\n"
     "  - id: r1\n    from: [politie]\n    to: [rvdk]\n    kinds: [signal]\n"
     "    purposes: [child_protection]\n    max_handling: h2\n    legal_basis: \"b\"\n",
     1, 7, 9, "r1"},
    /* 7: an expired rule */
    {"  - id: old\n    from: [care]\n    to: [politie]\n    kinds: [signal]\n"
     "    purposes: [victim_care]\n    max_handling: h2\n    legal_basis: \"b\"\n    valid_until: 2020-01-01\n",
     1, 7, 18, "old"},
    /* 8: an allow rule a deny rule fully shadows */
    {"  - id: never\n    effect: deny\n    from: [care]\n    to: [politie]\n"
     "  - id: shadowed\n    from: [fier]\n    to: [politie]\n    kinds: [signal]\n"
     "    purposes: [victim_care]\n    max_handling: h2\n    legal_basis: \"b\"\n",
     1, 4, 5, "shadowed"},
    /* 9: a later allow rule that never decides anything: a warning */
    {"  - id: wide\n    from: [care]\n    to: [politie]\n    kinds: [signal]\n"
     "    purposes: [victim_care]\n    max_handling: h3\n    legal_basis: \"b\"\n"
     "  - id: narrow\n    from: [fier]\n    to: [politie]\n    kinds: [signal]\n"
     "    purposes: [victim_care]\n    max_handling: h1\n    legal_basis: \"b\"\n",
     0, 7, 5, "warning: "},
    /* 10: a bad YAML line */
    {"  - id: r1\n    from: [care\n", 1, 2, 0, ""},
};

START_TEST(test_check_broken)
{
    const s_check_case_t *c = &s_check_cases[_i];
    char text[8192], where[64];
    snprintf(text, sizeof text, "%s%s", s_head, c->rules);
    s_file("bad.yaml", text);
    int rc = s_policy("check bad.yaml");
    ck_assert_msg(rc == c->rc, "case %d: exit %d, expected %d:\n%s", _i, rc, c->rc, s_out);
    if (c->line && c->column)
        snprintf(where, sizeof where, "bad.yaml:%d:%d: ", S_RULE_LINE + c->line, c->column);
    else if (c->line)
        snprintf(where, sizeof where, "bad.yaml:%d:", S_RULE_LINE + c->line);
    else if (c->rc)
        snprintf(where, sizeof where, "bad.yaml:%d:%d: ", S_RULE_LINE, c->column);
    else
        where[0] = '\0';
    ck_assert_msg(strstr(s_out, where) != NULL, "case %d: expected '%s' in:\n%s", _i, where, s_out);
    ck_assert_msg(strstr(s_out, c->want) != NULL, "case %d: expected '%s' in:\n%s", _i, c->want, s_out);
    if (c->rc == 0 && strstr(c->want, "warning")) {
        /* --strict turns the warning into a failure */
        ck_assert_int_eq(s_policy("check --strict bad.yaml"), 1);
        ck_assert_msg(strstr(s_out, "(--strict)") != NULL, "%s", s_out);
    }
}
END_TEST

/* A rule for signals and referrals that withholds only signal.narrative:
 * the broker withholds it from a signal, and nothing from a referral
 * (kb_seal_redact changes only paths under the message's payload), so
 * explain must not say the referral's narrative is withheld. */
START_TEST(test_explain_redact_per_kind)
{
    char text[4096];
    snprintf(text, sizeof text, "%s%s", s_head,
             "  - id: police-to-fier\n    from: politie\n    to: fier\n    kinds: [signal, referral]\n"
             "    purposes: [victim_care]\n    max_handling: h2\n    legal_basis: b\n"
             "    redact: [signal.narrative]\n");
    s_file("kinds.yaml", text);
    ck_assert_int_eq(s_policy("explain kinds.yaml --from politie --to fier --kind referral --purpose victim_care "
                              "--handling h1"),
                     0);
    const char *ref[] = {"fier sees every field", "rule paths for other kinds (not in this message): signal.narrative",
                         NULL};
    s_want(ref, "withheld from fier");
    ck_assert_int_eq(s_policy("explain kinds.yaml --from politie --to fier --kind signal --purpose victim_care "
                              "--handling h1"),
                     0);
    const char *sig[] = {"withheld from fier: signal.narrative", NULL};
    s_want(sig, "other kinds");
    ck_assert_int_eq(s_policy("explain kinds.yaml --from politie --to fier --kind referral --purpose victim_care "
                              "--handling h1 --json"),
                     0);
    const char *json[] = {"\"redact\":[]", "\"redact_other_kinds\":[\"signal.narrative\"]", NULL};
    s_want(json, NULL);
    ck_assert_int_eq(s_policy("explain kinds.yaml --from politie --kind referral --purpose victim_care --handling h1 "
                              "--json"),
                     0);
    s_want(json, NULL);
    /* check says the referral's copy of the field is not withheld */
    ck_assert_int_eq(s_policy("check kinds.yaml"), 0);
    const char *lint[] = {"kinds.yaml:22:5: warning: rule 'police-to-fier' withholds signal.narrative from a signal "
                          "but not referral.signal.narrative from a referral",
                          NULL};
    s_want(lint, NULL);
}
END_TEST

/* A file that turns signature checks off is warned about, at its line. */
START_TEST(test_check_unchecked_signatures)
{
    const char *rules = "  - id: ok\n    from: [care]\n    to: [politie]\n    kinds: [signal]\n"
                        "    purposes: [victim_care]\n    max_handling: h2\n    legal_basis: b\n";
    const char *key_dir = "  key_dir: keys\n";
    const char *at = strstr(s_head, key_dir);
    ck_assert_ptr_nonnull(at);
    at += strlen(key_dir);
    char text[4096];
    snprintf(text, sizeof text, "%.*s  verify_signatures: false\n%s%s", (int)(at - s_head), s_head, at, rules);
    s_file("unchecked.yaml", text);
    ck_assert_int_eq(s_policy("check unchecked.yaml"), 0);
    const char *want[] = {"unchecked.yaml:6:22: warning: verify_signatures is false", "OK, 1 warning", NULL};
    s_want(want, NULL);
    ck_assert_int_eq(s_policy("check --strict unchecked.yaml"), 1);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("policy-cli");
    TCase *tc = tcase_create("policy-cli");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_explain, 0, (int)(sizeof s_explain_cases / sizeof s_explain_cases[0]));
    tcase_add_test(tc, test_explain_json_parses);
    tcase_add_test(tc, test_explain_redact_per_kind);
    tcase_add_test(tc, test_check_unchecked_signatures);
    tcase_add_test(tc, test_check_example);
    tcase_add_test(tc, test_check_usage);
    tcase_add_test(tc, test_check_from_pipe);
    tcase_add_loop_test(tc, test_check_broken, 0, (int)(sizeof s_check_cases / sizeof s_check_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
