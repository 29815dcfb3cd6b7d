/*
 * cmd_policy.c - `ketenbus policy check|explain`: the sharing rules of a
 * chain file, for the privacy officer who reviews them and the operator who
 * is about to load them.
 *
 * check    loads the file the way the broker would (without reading key
 *          files unless --keys), then runs the rules linter; load errors and
 *          lint findings are printed as "file:line:col: ...".
 * explain  answers "may A send kind K with purpose P and handling H to B,
 *          by which rule, and what would B not see?" with the broker's own
 *          decision code (broker/policy.h), so the answer cannot drift from
 *          what the broker does. Without --to it lists the fan-out.
 *
 * Nothing here talks to a broker: both commands read only the file. Exit
 * statuses are the CLI's (cli.h); explain uses KB_EXIT_REJECTED for
 * "refused" so that scripts can tell a refusal from an error.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"
#include "conf.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"
#include "policy.h"

#define S_ENUM_TEXT  32u   /* longest enum value name we print ("referral_update") */
#define S_LIST_TEXT  512u  /* "expected ..." lists in messages */
#define S_DATE_LEN   10u   /* "2028-01-01" */

/* ------------------------------------------------------------- help */

static void s_usage_policy(FILE *out)
{
    fprintf(out,
            "NAME\n"
            "    ketenbus policy - check the sharing rules of a chain file and explain decisions\n"
            "\n"
            "SYNOPSIS\n"
            "    ketenbus policy check FILE [--keys] [--strict]\n"
            "    ketenbus policy explain FILE --from A [--to B] --kind K --purpose P\n"
            "                            --handling H [--at TIME] [--json]\n"
            "\n"
            "DESCRIPTION\n"
            "    Both commands read only FILE, the chain configuration the broker loads\n"
            "    (see ops/examples/chain.yaml); they never contact a broker.\n"
            "\n"
            "    check     loads FILE as the broker would and lints its rules: errors\n"
            "              (the broker would refuse the file) and warnings (rules that\n"
            "              can never decide anything, a field withheld from one kind\n"
            "              but not from another kind that carries it, signatures not\n"
            "              checked), each as file:line:col.\n"
            "    explain   says whether a message would be ALLOWED or REFUSED, by which\n"
            "              rule, on which legal basis, and which fields the recipient\n"
            "              would not see.\n"
            "\n"
            "    Run 'ketenbus policy check --help' or 'ketenbus policy explain --help'\n"
            "    for the options of each. docs/RULES.md describes the rules language.\n"
            "\n"
            "EXIT STATUS\n"
            "    0  the file is OK (check) or the message is allowed (explain)\n"
            "    1  the file has errors, or warnings with --strict; or it cannot be read\n"
            "    2  bad usage: unknown option, agency, kind, purpose or handling code\n"
            "    3  the message would be refused (explain)\n");
}

static void s_usage_check(FILE *out)
{
    fprintf(out,
            "NAME\n"
            "    ketenbus policy check - lint the sharing rules of a chain file\n"
            "\n"
            "SYNOPSIS\n"
            "    ketenbus policy check FILE [--keys] [--strict]\n"
            "\n"
            "DESCRIPTION\n"
            "    Loads FILE with the broker's own parser and checks every rule. A mistake\n"
            "    that makes the broker refuse the file (unknown key or agency, a missing\n"
            "    legal basis, a rule that a deny rule fully shadows, an expired rule, ...)\n"
            "    is printed as\n"
            "        FILE:LINE:COL: message\n"
            "    on stderr. Rules that can never decide anything (for instance every case\n"
            "    they cover is taken by an earlier allow rule) are printed as\n"
            "        FILE:LINE:COL: warning: message\n"
            "    and do not stop the broker. Last comes a summary on stdout:\n"
            "        11 agencies, 3 groups, 16 rules (14 allow, 2 deny): OK\n"
            "\n"
            "OPTIONS\n"
            "    --keys     also load every key file the file names (agency certificates\n"
            "               and signing keys), as the broker does at start, and refuse an\n"
            "               agency listed with the broker's own public keys where key_dir\n"
            "               holds them (broker.sign.pub.pem, broker.curve); without it the\n"
            "               key files need not exist\n"
            "    --strict   treat warnings as errors (exit 1)\n"
            "    --help     this text\n"
            "\n"
            "EXIT STATUS\n"
            "    0  OK, possibly with warnings\n"
            "    1  errors (or warnings with --strict); the file cannot be read\n"
            "    2  bad usage\n"
            "\n"
            "EXAMPLE\n"
            "    ketenbus policy check ops/examples/chain.yaml\n");
}

static void s_usage_explain(FILE *out)
{
    fprintf(out,
            "NAME\n"
            "    ketenbus policy explain - may this message go there, and what is withheld?\n"
            "\n"
            "SYNOPSIS\n"
            "    ketenbus policy explain FILE --from A [--to B] --kind K --purpose P\n"
            "                            --handling H [--at TIME] [--json]\n"
            "\n"
            "DESCRIPTION\n"
            "    Decides as the broker would for a message from agency A to agency B and\n"
            "    prints ALLOWED or REFUSED, the deciding rule with its place in FILE, its\n"
            "    description and legal basis, and the fields B would not see (B receives\n"
            "    the message with these paths listed under \"withheld\"). Only the rule's\n"
            "    redact paths for kind K are withheld; its paths for its other kinds are\n"
            "    shown apart, as not in this message. A refusal names\n"
            "    the deny rule, or says \"no rule: default deny\" with the reason (for\n"
            "    instance a handling code above what the nearest rule allows, or a rule\n"
            "    past its valid_until date).\n"
            "\n"
            "    Without --to, lists every agency the broker would send the message to\n"
            "    when the sender names no recipients (the fan-out), each with the same\n"
            "    details, followed by the agencies a deny rule keeps it from.\n"
            "\n"
            "OPTIONS\n"
            "    --from A       sending agency id\n"
            "    --to B         receiving agency id (leave out for the fan-out)\n"
            "    --kind K       signal, referral or referral_update\n"
            "    --purpose P    criminal_investigation, victim_care, child_protection,\n"
            "                   registration, analysis or statistics\n"
            "    --handling H   handling code h0, h1, h2 or h3 (Europol SIENA)\n"
            "    --at TIME      decide at TIME instead of now: RFC 3339\n"
            "                   (2028-01-01T09:00:00Z) or a date (2028-01-01, midnight UTC);\n"
            "                   shows the effect of valid_until\n"
            "    --json         print one JSON object instead of text:\n"
            "                   {\"allowed\":true,\"rule\":\"...\",\"effect\":\"allow\",\n"
            "                    \"legal_basis\":\"...\",\"redact\":[...],\"reason\":\"...\", ...}\n"
            "                   (redact: what is withheld from kind K; redact_other_kinds:\n"
            "                   the rule's paths for its other kinds)\n"
            "                   (rule and effect are null for the default deny); without\n"
            "                   --to the object has \"recipients\": one such object each\n"
            "    --help         this text\n"
            "\n"
            "EXIT STATUS\n"
            "    0  allowed (without --to: at least one recipient)\n"
            "    1  the file cannot be read or has errors\n"
            "    2  bad usage: unknown agency, kind, purpose or handling code, bad time\n"
            "    3  refused (without --to: no recipient at all)\n"
            "\n"
            "EXAMPLES\n"
            "    ketenbus policy explain chain.yaml --from politie --to emm --kind signal \\\n"
            "        --purpose analysis --handling h1\n"
            "    ketenbus policy explain chain.yaml --from fier --kind signal \\\n"
            "        --purpose victim_care --handling h2 --json\n");
}

/* ------------------------------------------------------------- enums */

/* Length of the prefix every value name of ed shares ("KIND_"), which the
 * rules language and the JSON form leave out. */
static size_t s_enum_prefix(const ProtobufCEnumDescriptor *ed)
{
    const char *first = ed->n_values ? ed->values[0].name : "";
    const char *us = strchr(first, '_');
    return us ? (size_t)(us - first) + 1 : 0;
}

/* Values of ed a user may not give (NULL: none). */
typedef int (*s_enum_hidden_fn)(int value);

/* True for value 0 (unspecified), which is never a valid answer, and for
 * the values hidden leaves out. */
static int s_enum_is_hidden(int value, s_enum_hidden_fn hidden)
{
    return value == 0 || (hidden && hidden(value));
}

/* The value for text ("signal", "KIND_SIGNAL", any case), or -1. */
static int s_enum_parse(const ProtobufCEnumDescriptor *ed, s_enum_hidden_fn hidden, const char *text)
{
    size_t skip = s_enum_prefix(ed);
    for (unsigned i = 0; i < ed->n_values; i++) {
        const ProtobufCEnumValue *v = &ed->values[i];
        if (s_enum_is_hidden(v->value, hidden))
            continue;
        if (strcasecmp(text, v->name) == 0 || strcasecmp(text, v->name + skip) == 0)
            return v->value;
    }
    return -1;
}

/* Lowercase name without prefix ("referral_update"); the number if unnamed. */
static void s_enum_text(const ProtobufCEnumDescriptor *ed, int value, char out[S_ENUM_TEXT])
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(ed, value);
    if (!v || kb_fmt(out, S_ENUM_TEXT, "%s", v->name + s_enum_prefix(ed)) != KB_OK) {
        snprintf(out, S_ENUM_TEXT, "%d", value);
        return;
    }
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

/* "a, b or c": the values a user may give for ed, for error messages. */
static void s_enum_expected(const ProtobufCEnumDescriptor *ed, s_enum_hidden_fn hidden, char out[S_LIST_TEXT])
{
    size_t used = 0, n = 0, total = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < ed->n_values; i++)
        total += !s_enum_is_hidden(ed->values[i].value, hidden);
    for (unsigned i = 0; i < ed->n_values; i++) {
        if (s_enum_is_hidden(ed->values[i].value, hidden))
            continue;
        char name[S_ENUM_TEXT];
        s_enum_text(ed, ed->values[i].value, name);
        const char *sep = n == 0 ? "" : n + 1 == total ? " or " : ", ";
        int w = snprintf(out + used, S_LIST_TEXT - used, "%s%s", sep, name);
        if (w < 0 || (size_t)w >= S_LIST_TEXT - used)
            return; /* cut: the list stays readable, only shorter */
        used += (size_t)w;
        n++;
    }
}

/* Parse an option naming an enum value other than the hidden ones;
 * prints why and returns -1. */
static int s_enum_option(const ProtobufCEnumDescriptor *ed, s_enum_hidden_fn hidden, const char *option,
                         const char *text)
{
    int v = s_enum_parse(ed, hidden, text);
    if (v < 0) {
        char expected[S_LIST_TEXT];
        s_enum_expected(ed, hidden, expected);
        fprintf(stderr, "ketenbus policy explain: %s: unknown value '%s' (expected %s)\n", option, text, expected);
    }
    return v;
}

/* ------------------------------------------------------------- helpers */

/* Load path for these commands; prints the file:line:col error. */
static kb_conf_t *s_load(const char *path, int with_keys)
{
    kb_conf_t *conf = with_keys ? kb_conf_load(path) : kb_conf_load_ex(path, KB_CONF_SKIP_KEYS, NULL);
    if (!conf)
        fprintf(stderr, "%s\n", kb_last_error());
    return conf;
}

/* The broker's public keys in the file's key_dir, where they are (a
 * machine that checks a file need not hold them): no agency may be listed
 * with one, as the broker checks at start. */
static int s_check_broker_keys(const kb_conf_t *conf)
{
    char path[4096], curve[KB_Z85_KEY_LEN + 1];
    EVP_PKEY *sign = NULL;
    int have_curve = 0;
    if (kb_fmt(path, sizeof path, "%s/broker.sign.pub.pem", conf->key_dir) == KB_OK && access(path, F_OK) == 0 &&
        !(sign = kb_keys_load_sign_public(path)))
        return KB_ECRYPTO;
    if (kb_fmt(path, sizeof path, "%s/broker.curve", conf->key_dir) == KB_OK && access(path, F_OK) == 0) {
        if (kb_keys_load_curve_public(path, curve) != KB_OK) {
            EVP_PKEY_free(sign);
            return KB_ECRYPTO;
        }
        have_curve = 1;
    }
    int rc = kb_conf_check_broker_keys(conf, sign, have_curve ? curve : NULL, conf->key_dir);
    EVP_PKEY_free(sign);
    return rc;
}

static int s_has_agency(const kb_conf_t *conf, const char *id)
{
    for (size_t i = 0; i < conf->n_agencies; i++)
        if (strcmp(conf->agencies[i].id, id) == 0)
            return 1;
    return 0;
}

/* Prints "unknown agency" with the agencies of the file; returns 0 then. */
static int s_check_agency(const kb_conf_t *conf, const char *option, const char *id)
{
    if (s_has_agency(conf, id))
        return 1;
    fprintf(stderr, "ketenbus policy explain: %s: unknown agency '%s' (agencies in %s:", option, id, conf->path);
    for (size_t i = 0; i < conf->n_agencies; i++)
        fprintf(stderr, "%s %s", i ? "," : "", conf->agencies[i].id);
    fprintf(stderr, ")\n");
    return 0;
}

/* --at: RFC 3339, or a bare date taken as midnight UTC. */
static int s_parse_at(const char *text, int64_t *us)
{
    char full[64];
    if (strlen(text) == S_DATE_LEN) {
        if (kb_fmt(full, sizeof full, "%sT00:00:00Z", text) != KB_OK)
            return KB_EPROTO;
        text = full;
    }
    return kb_time_parse(text, us);
}

/* ------------------------------------------------------------- check */

static int s_check(int argc, char **argv)
{
    static const struct option opts[] = {{"keys", no_argument, NULL, 'k'},
                                         {"strict", no_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int with_keys = 0, strict = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ksh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': with_keys = 1; break;
        case 's': strict = 1; break;
        case 'h': s_usage_check(stdout); return KB_EXIT_OK;
        default: s_usage_check(stderr); return KB_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "ketenbus policy check: expected one FILE\n\n");
        s_usage_check(stderr);
        return KB_EXIT_USAGE;
    }
    const char *path = argv[optind];
    kb_conf_t *conf = s_load(path, with_keys);
    if (!conf)
        return KB_EXIT_FAIL;
    if (with_keys && s_check_broker_keys(conf) != KB_OK) {
        fprintf(stderr, "%s\n", kb_last_error());
        kb_conf_destroy(&conf);
        return KB_EXIT_FAIL;
    }

    /* the load linted the file: an error refused it, its warnings are kept */
    const kb_policy_issue_t *issues = conf->lint;
    size_t n_issues = conf->n_lint, n_errors = 0, n_warnings = 0;
    /* the broker section comes before the rules */
    if (!conf->verify_signatures) {
        fprintf(stderr,
                "%s:%d:%d: warning: verify_signatures is false: the broker does not check envelope signatures, so "
                "an adapter's messages are not proven to come from it (benchmarks only)\n",
                path, conf->verify_line, conf->verify_column);
        n_warnings++;
    }
    for (size_t i = 0; i < n_issues; i++) {
        const kb_policy_issue_t *is = &issues[i];
        fprintf(stderr, "%s:%d:%d: %s%s\n", path, is->line, is->column, is->is_error ? "" : "warning: ",
                is->message);
        if (is->is_error)
            n_errors++;
        else
            n_warnings++;
    }

    size_t n_deny = 0;
    for (size_t i = 0; i < conf->n_rules; i++)
        n_deny += conf->rules[i].deny != 0;
    printf("%zu agenc%s, %zu group%s, %zu rule%s (%zu allow, %zu deny): ", conf->n_agencies,
           conf->n_agencies == 1 ? "y" : "ies", conf->n_groups, conf->n_groups == 1 ? "" : "s", conf->n_rules,
           conf->n_rules == 1 ? "" : "s", conf->n_rules - n_deny, n_deny);
    int rc = KB_EXIT_OK;
    if (n_errors) {
        printf("%zu error%s\n", n_errors, n_errors == 1 ? "" : "s");
        rc = KB_EXIT_FAIL;
    } else if (n_warnings && strict) {
        printf("%zu warning%s (--strict)\n", n_warnings, n_warnings == 1 ? "" : "s");
        rc = KB_EXIT_FAIL;
    } else if (n_warnings) {
        printf("OK, %zu warning%s\n", n_warnings, n_warnings == 1 ? "" : "s");
    } else {
        printf("OK\n");
    }
    kb_conf_destroy(&conf);
    return rc;
}

/* ------------------------------------------------------------- explain */

/* What one explain run asks. */
typedef struct {
    const char *path;   /* the chain file */
    const char *from;   /* sending agency */
    const char *to;     /* receiving agency; NULL: fan-out */
    int kind;           /* Ketenbus__Kind */
    int purpose;        /* Ketenbus__Purpose */
    int handling;       /* Ketenbus__Handling */
    int64_t at_us;      /* decision time */
    int at_given;       /* --at was given: print it */
    int json;           /* --json */
} s_query_t;

/* JSON for one decision about recipient to of a message of kind. NULL
 * on no memory. "redact" lists what the broker withholds from this kind
 * (the rule's paths under its payload), "redact_other_kinds" the rule's
 * paths for its other kinds, which this message does not carry. */
static json_object *s_decision_json(const char *to, int kind, const kb_decision_t *d)
{
    json_object *o = json_object_new_object();
    json_object *redact = json_object_new_array(), *other = json_object_new_array();
    if (!o || !redact || !other) {
        json_object_put(o);
        json_object_put(redact);
        json_object_put(other);
        return NULL;
    }
    const kb_rule_t *r = d->rule;
    json_object_object_add(o, "to", json_object_new_string(to));
    json_object_object_add(o, "allowed", json_object_new_boolean(d->allowed));
    json_object_object_add(o, "rule", r ? json_object_new_string(r->id) : NULL);
    json_object_object_add(o, "effect", r ? json_object_new_string(r->deny ? "deny" : "allow") : NULL);
    json_object_object_add(o, "description",
                           r && r->description ? json_object_new_string(r->description) : NULL);
    json_object_object_add(o, "legal_basis",
                           r && r->legal_basis ? json_object_new_string(r->legal_basis) : NULL);
    if (d->allowed && r)
        for (size_t i = 0; i < r->n_redact; i++)
            json_object_array_add(kb_policy_redact_applies(r->redact[i], kind) ? redact : other,
                                  json_object_new_string(r->redact[i]));
    json_object_object_add(o, "redact", redact);
    json_object_object_add(o, "redact_other_kinds", other);
    json_object_object_add(o, "reason", json_object_new_string(d->reason));
    if (r) {
        json_object_object_add(o, "line", json_object_new_int(r->line));
        json_object_object_add(o, "column", json_object_new_int(r->column));
    }
    return o;
}

/* Text for one decision, indented under a header line. */
static void s_decision_text(const s_query_t *q, const char *to, const kb_decision_t *d, const char *indent)
{
    const kb_rule_t *r = d->rule;
    if (d->allowed && r)
        printf("%sALLOWED by rule %s (%s:%d:%d)\n", indent, r->id, q->path, r->line, r->column);
    else if (r)
        printf("%sREFUSED by %s rule %s (%s:%d:%d)\n", indent, r->deny ? "deny" : "allow", r->id, q->path, r->line,
               r->column);
    else
        printf("%sREFUSED: no rule: default deny\n", indent);
    if (r && r->description)
        printf("%s  description:  %s\n", indent, r->description);
    if (r && r->legal_basis && d->allowed)
        printf("%s  legal basis:  %s\n", indent, r->legal_basis);
    if (d->allowed && r) {
        /* only what the broker withholds from this kind: a path of the
         * rule for another kind is not in this message */
        size_t n_applies = 0;
        for (size_t i = 0; i < r->n_redact; i++)
            n_applies += kb_policy_redact_applies(r->redact[i], q->kind) != 0;
        if (n_applies == 0) {
            printf("%s  %s sees every field of the message\n", indent, to);
        } else {
            printf("%s  withheld from %s:", indent, to);
            for (size_t i = 0, k = 0; i < r->n_redact; i++)
                if (kb_policy_redact_applies(r->redact[i], q->kind))
                    printf("%s %s", k++ ? "," : "", r->redact[i]);
            printf("\n");
        }
        if (n_applies < r->n_redact) {
            printf("%s  rule paths for other kinds (not in this message):", indent);
            for (size_t i = 0, k = 0; i < r->n_redact; i++)
                if (!kb_policy_redact_applies(r->redact[i], q->kind))
                    printf("%s %s", k++ ? "," : "", r->redact[i]);
            printf("\n");
        }
    }
    /* an allowed decision's reason repeats the rule and basis shown above */
    if (!d->allowed && d->reason[0])
        printf("%s  reason:       %s\n", indent, d->reason);
}

/* Print json (consumed) on one line; KB_EXIT_FAIL on no memory. */
static int s_print_json(json_object *o)
{
    if (!o) {
        fprintf(stderr, "ketenbus policy explain: out of memory\n");
        return KB_EXIT_FAIL;
    }
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return KB_EXIT_OK;
}

/* The question in JSON (from, kind, ...), shared by both JSON forms. */
static json_object *s_query_json(const s_query_t *q)
{
    char kind[S_ENUM_TEXT], purpose[S_ENUM_TEXT], handling[S_ENUM_TEXT], at[32];
    s_enum_text(&ketenbus__kind__descriptor, q->kind, kind);
    s_enum_text(&ketenbus__purpose__descriptor, q->purpose, purpose);
    s_enum_text(&ketenbus__handling__descriptor, q->handling, handling);
    kb_time_format(q->at_us, at);
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "from", json_object_new_string(q->from));
    json_object_object_add(o, "kind", json_object_new_string(kind));
    json_object_object_add(o, "purpose", json_object_new_string(purpose));
    json_object_object_add(o, "handling", json_object_new_string(handling));
    json_object_object_add(o, "at", json_object_new_string(at));
    return o;
}

/* "politie -> emm: signal, purpose analysis, handling h1" */
static void s_query_text(const s_query_t *q, const char *to)
{
    char kind[S_ENUM_TEXT], purpose[S_ENUM_TEXT], handling[S_ENUM_TEXT];
    s_enum_text(&ketenbus__kind__descriptor, q->kind, kind);
    s_enum_text(&ketenbus__purpose__descriptor, q->purpose, purpose);
    s_enum_text(&ketenbus__handling__descriptor, q->handling, handling);
    printf("%s -> %s: %s, purpose %s, handling %s", q->from, to ? to : "(no recipients named)", kind, purpose,
           handling);
    if (q->at_given) {
        char at[32];
        kb_time_format(q->at_us, at);
        printf(", at %s", at);
    }
    printf("\n");
}

static int s_explain_one(const kb_conf_t *conf, const s_query_t *q)
{
    kb_decision_t d;
    if (kb_policy_decide(conf->policy, q->from, q->to, q->kind, q->purpose, q->handling, q->at_us, &d) != KB_OK) {
        fprintf(stderr, "ketenbus policy explain: %s\n", kb_last_error());
        return KB_EXIT_FAIL;
    }
    if (q->json) {
        json_object *o = s_query_json(q), *one = s_decision_json(q->to, q->kind, &d);
        if (!o || !one) {
            json_object_put(o);
            json_object_put(one);
            return s_print_json(NULL);
        }
        /* the decision's keys after the question's, in one flat object */
        json_object_object_foreach(one, key, val) json_object_object_add(o, key, json_object_get(val));
        json_object_put(one);
        int rc = s_print_json(o);
        if (rc != KB_EXIT_OK)
            return rc;
    } else {
        s_query_text(q, q->to);
        s_decision_text(q, q->to, &d, "");
    }
    return d.allowed ? KB_EXIT_OK : KB_EXIT_REJECTED;
}

static int s_explain_fanout(const kb_conf_t *conf, const s_query_t *q)
{
    const char **to = NULL;
    size_t n = 0;
    /* the broker's own fan-out: every agency the rules allow */
    if (kb_policy_fanout_all(conf->policy, q->from, q->kind, q->purpose, q->handling, q->at_us, &to, &n) != KB_OK) {
        fprintf(stderr, "ketenbus policy explain: %s\n", kb_last_error());
        return KB_EXIT_FAIL;
    }
    json_object *o = NULL, *list = NULL;
    if (q->json) {
        o = s_query_json(q);
        list = json_object_new_array();
        if (!o || !list) {
            json_object_put(o);
            json_object_put(list);
            free(to);
            return s_print_json(NULL);
        }
        json_object_object_add(o, "allowed", json_object_new_boolean(n > 0));
        json_object_object_add(o, "recipients", list);
    } else {
        s_query_text(q, NULL);
        if (n == 0)
            printf("REFUSED: no agency may receive it\n");
        else
            printf("ALLOWED: the broker sends it to %zu agenc%s\n", n, n == 1 ? "y" : "ies");
    }
    int rc = KB_EXIT_OK;
    for (size_t i = 0; i < n && rc == KB_EXIT_OK; i++) {
        kb_decision_t d;
        if (kb_policy_decide(conf->policy, q->from, to[i], q->kind, q->purpose, q->handling, q->at_us, &d) !=
            KB_OK) {
            fprintf(stderr, "ketenbus policy explain: %s\n", kb_last_error());
            rc = KB_EXIT_FAIL;
        } else if (q->json) {
            json_object *one = s_decision_json(to[i], q->kind, &d);
            if (!one)
                rc = s_print_json(NULL);
            else
                json_object_array_add(list, one);
        } else {
            printf("\n%s:\n", to[i]);
            s_decision_text(q, to[i], &d, "  ");
        }
    }
    /* Who a deny rule keeps it from: the refusals a reader cannot guess. */
    if (rc == KB_EXIT_OK && !q->json) {
        int header = 0;
        for (size_t i = 0; i < conf->n_agencies; i++) {
            const char *id = conf->agencies[i].id;
            kb_decision_t d;
            if (strcmp(id, q->from) == 0 ||
                kb_policy_decide(conf->policy, q->from, id, q->kind, q->purpose, q->handling, q->at_us, &d) !=
                    KB_OK ||
                d.allowed || !d.rule || !d.rule->deny)
                continue;
            if (!header)
                printf("\nrefused by a deny rule:\n");
            header = 1;
            printf("  %s: rule %s (%s:%d:%d)\n", id, d.rule->id, q->path, d.rule->line, d.rule->column);
        }
    }
    free(to);
    if (rc != KB_EXIT_OK) {
        json_object_put(o);
        return rc;
    }
    if (q->json && (rc = s_print_json(o)) != KB_EXIT_OK)
        return rc;
    return n > 0 ? KB_EXIT_OK : KB_EXIT_REJECTED;
}

static int s_explain(int argc, char **argv)
{
    static const struct option opts[] = {{"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"kind", required_argument, NULL, 'k'},
                                         {"purpose", required_argument, NULL, 'p'},
                                         {"handling", required_argument, NULL, 'H'},
                                         {"at", required_argument, NULL, 'a'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    s_query_t q = {.kind = -1, .purpose = -1, .handling = -1};
    const char *kind = NULL, *purpose = NULL, *handling = NULL, *at = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:t:k:p:H:a:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'f': q.from = optarg; break;
        case 't': q.to = optarg; break;
        case 'k': kind = optarg; break;
        case 'p': purpose = optarg; break;
        case 'H': handling = optarg; break;
        case 'a': at = optarg; break;
        case 'j': q.json = 1; break;
        case 'h': s_usage_explain(stdout); return KB_EXIT_OK;
        default: s_usage_explain(stderr); return KB_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "ketenbus policy explain: expected one FILE\n\n");
        s_usage_explain(stderr);
        return KB_EXIT_USAGE;
    }
    q.path = argv[optind];
    const char *missing = !q.from ? "--from" : !kind ? "--kind" : !purpose ? "--purpose" : !handling ? "--handling"
                                                                                                      : NULL;
    if (missing) {
        fprintf(stderr, "ketenbus policy explain: %s is required (see --help)\n", missing);
        return KB_EXIT_USAGE;
    }
    /* Notices are the broker's own: no agency may send one and no rule
     * names them, so there is nothing to explain about them. */
    if ((q.kind = s_enum_option(&ketenbus__kind__descriptor, kb_policy_kind_is_notice, "--kind", kind)) < 0 ||
        (q.purpose = s_enum_option(&ketenbus__purpose__descriptor, NULL, "--purpose", purpose)) < 0 ||
        (q.handling = s_enum_option(&ketenbus__handling__descriptor, NULL, "--handling", handling)) < 0)
        return KB_EXIT_USAGE;
    q.at_us = kb_now_us();
    if (at) {
        if (s_parse_at(at, &q.at_us) != KB_OK) {
            fprintf(stderr,
                    "ketenbus policy explain: --at: '%s' is not a time (RFC 3339 such as 2028-01-01T09:00:00Z, "
                    "or a date such as 2028-01-01)\n",
                    at);
            return KB_EXIT_USAGE;
        }
        q.at_given = 1;
    }

    kb_conf_t *conf = s_load(q.path, 0);
    if (!conf)
        return KB_EXIT_FAIL;
    int rc;
    if (!s_check_agency(conf, "--from", q.from) || (q.to && !s_check_agency(conf, "--to", q.to)))
        rc = KB_EXIT_USAGE;
    else if (q.to)
        rc = s_explain_one(conf, &q);
    else
        rc = s_explain_fanout(conf, &q);
    kb_conf_destroy(&conf);
    return rc;
}

/* ------------------------------------------------------------- dispatch */

int cmd_policy(int argc, char **argv)
{
    if (argc < 2) {
        s_usage_policy(stderr);
        return KB_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        s_usage_policy(stdout);
        return KB_EXIT_OK;
    }
    if (strcmp(sub, "check") == 0)
        return s_check(argc - 1, argv + 1);
    if (strcmp(sub, "explain") == 0)
        return s_explain(argc - 1, argv + 1);
    fprintf(stderr, "ketenbus policy: unknown subcommand '%s' (expected check or explain)\n\n", sub);
    s_usage_policy(stderr);
    return KB_EXIT_USAGE;
}
