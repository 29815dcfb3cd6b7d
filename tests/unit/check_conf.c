/*
 * check_conf.c - tests of broker/conf.c: a full chain configuration loads
 * with the values written (groups, allow and deny rules, redactions, dates)
 * and the defaults for what is left out; a table of broken configurations
 * each fails with its exact "file:LINE:COL: message"; file-level failures
 * (missing, too large), loading without key files (KB_CONF_SKIP_KEYS) and
 * the lookups by id and CURVE key. What several rules mean together (the
 * linter) is tested in check_policy.c.
 *
 * The unchecked fixture makes one temp directory with real key files
 * (kb_keys_generate) that every configuration refers to relatively, and
 * removes it at the end.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "conf.h"
#include "kb_error.h"
#include "policy.h"
#include "kb_keys.h"
#include "ketenbus.pb-c.h"
#include "kb_test.h"
#include "kb_util.h"

static char s_root[PATH_MAX]; /* temp directory with keys/ and the config files */

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

static void s_write(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void s_setup(void)
{
    snprintf(s_root, sizeof s_root, "%s/kbtest-conf.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(s_root));
    char keys[PATH_MAX];
    s_in(keys, "keys");
    static const char *const names[] = {"politie", "politie2", "om", "fier", "comensha"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_msg(kb_keys_generate(keys, names[i], 0) == KB_OK, "%s", kb_last_error());

    /* A public key of the wrong type for the signing_key rows. */
    char path[PATH_MAX];
    EVP_PKEY *x = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    ck_assert_ptr_nonnull(x);
    FILE *f = fopen(s_in(path, "keys/x25519.pub.pem"), "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PUBKEY(f, x), 1);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(path, 0644), 0); /* a key file others may write is refused, whatever the umask */
    EVP_PKEY_free(x);

    /* fier's signing key again, in a file of another name */
    char from[PATH_MAX];
    EVP_PKEY *fier = NULL;
    f = fopen(s_in(from, "keys/fier.sign.pub.pem"), "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fier = PEM_read_PUBKEY(f, NULL, NULL, NULL));
    ck_assert_int_eq(fclose(f), 0);
    f = fopen(s_in(path, "keys/copy-of-fier.sign.pub.pem"), "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PUBKEY(f, fier), 1);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(path, 0644), 0);
    EVP_PKEY_free(fier);
}

static void s_teardown(void)
{
    nftw(s_root, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------- valid config */

static const char s_full[] =
    "# a chain for the tests\n"                                   /* 1 */
    "broker:\n"                                                   /* 2 */
    "  id: ketenbus-test\n"                                       /* 3 */
    "  listen: tcp://127.0.0.1:5555\n"                            /* 4 */
    "  data_dir: data\n"                                          /* 5 */
    "  key_dir: keys\n"                                           /* 6 */
    "  max_message_bytes: 2048\n"                                 /* 7 */
    "  message_ttl: 3d\n"                                         /* 8 */
    "  session_timeout: 30s\n"                                    /* 9 */
    "agencies:\n"                                                 /* 10 */
    "  - id: politie\n"                                           /* 11 */
    "    name: Politie Nederland\n"                               /* 12 */
    "    curve_cert: [keys/politie.curve, keys/politie2.curve]\n" /* 13 */
    "    signing_key: keys/politie.sign.pub.pem\n"                /* 14 */
    "  - id: om\n"                                                /* 15 */
    "    curve_cert: keys/om.curve\n"                             /* 16 */
    "    signing_key: %s/keys/om.sign.pub.pem\n"                  /* 17: absolute */
    "  - id: fier\n"                                              /* 18 */
    "    name: \"Fier Frysl\xc3\xa2n\"\n"                         /* 19 */
    "    curve_cert:\n"                                           /* 20 */
    "      - keys/fier.curve\n"                                   /* 21 */
    "    signing_key: keys/fier.sign.pub.pem\n"                   /* 22 */
    "rules:\n"                                                    /* 23 */
    "  - id: fier-signal-politie\n"                               /* 24 */
    "    from: [fier]\n"                                          /* 25 */
    "    to: [politie, om]\n"                                     /* 26 */
    "    kinds: [signal, referral_update]\n"                      /* 27 */
    "    purposes: [victim_care, criminal_investigation]\n"       /* 28 */
    "    max_handling: h2\n"                                      /* 29 */
    "    legal_basis: \"Wpg art. 19 lid 1\"\n"                    /* 30 */
    "    redact: [signal.narrative, signal.observed.location]\n"  /* 31 */
    "  - id: politie.referral_1\n"                                /* 32 */
    "    description: >\n"                                        /* 33 */
    "      The police refer\n"                                    /* 34 */
    "      to the prosecutor.\n"                                  /* 35 */
    "    effect: allow\n"                                         /* 36 */
    "    from: politie\n"                                         /* 37 */
    "    to: om\n"                                                /* 38 */
    "    kinds: [referral, referral_update]\n"                    /* 39 */
    "    purposes: criminal_investigation\n"                      /* 40 */
    "    max_handling: h3\n"                                      /* 41 */
    "    legal_basis: Wjsg\n"                                     /* 42 */
    "    valid_until: 2099-12-31\n"                               /* 43 */
    "  - id: no-care-to-om\n"                                     /* 44 */
    "    effect: deny\n"                                          /* 45 */
    "    from: [care, politie]\n"                                 /* 46 */
    "    to: om\n"                                                /* 47 */
    "    purposes: [statistics]\n"                                /* 48 */
    "  - {id: groups, from: [all], to: [care, fier], kinds: [signal], purposes: [analysis], max_handling: h0,\n"
    "     legal_basis: x, valid_until: \"2099-06-30T12:00:00+02:00\"}\n" /* 49-50 */
    "groups:\n"                                                   /* 51 */
    "  care: [fier]\n"                                            /* 52 */
    "  all:\n"                                                    /* 53 */
    "    - om\n"                                                  /* 54 */
    "    - fier\n"                                                /* 55 */
    "    - politie\n";                                            /* 56 */

static void s_write_full(char *path)
{
    char text[8192];
    int n = snprintf(text, sizeof text, s_full, s_root);
    ck_assert_int_lt(n, (int)sizeof text);
    s_in(path, "full.yaml");
    s_write(path, text, (size_t)n);
}

static void s_curve_of(const char *file, char out[KB_Z85_KEY_LEN + 1])
{
    char path[PATH_MAX];
    ck_assert_int_eq(kb_keys_load_curve_public(s_in(path, file), out), KB_OK);
}

START_TEST(test_full)
{
    char path[PATH_MAX], expect[PATH_MAX];
    s_write_full(path);
    kb_conf_t *c = kb_conf_load(path);
    ck_assert_msg(c != NULL, "%s", kb_last_error());

    ck_assert_str_eq(c->path, path);
    ck_assert_str_eq(c->broker_id, "ketenbus-test");
    ck_assert_str_eq(c->listen, "tcp://127.0.0.1:5555");
    ck_assert_str_eq(c->data_dir, s_in(expect, "data"));
    ck_assert_str_eq(c->key_dir, s_in(expect, "keys"));
    ck_assert_uint_eq(c->max_message_bytes, 2048);
    ck_assert_int_eq(c->message_ttl_us, 3LL * 86400 * 1000000);
    ck_assert_int_eq(c->session_timeout_us, 30LL * 1000000);

    ck_assert_uint_eq(c->n_agencies, 3);
    const kb_agency_t *politie = &c->agencies[0], *om = &c->agencies[1], *fier = &c->agencies[2];
    ck_assert_str_eq(politie->id, "politie");
    ck_assert_str_eq(politie->name, "Politie Nederland");
    ck_assert_int_eq(politie->line, 11);
    ck_assert_str_eq(om->id, "om");
    ck_assert_str_eq(om->name, "om"); /* the id when no name is given */
    ck_assert_str_eq(fier->name, "Fier Frysl\xc3\xa2n");
    ck_assert_int_eq(fier->line, 18);

    char k1[KB_Z85_KEY_LEN + 1], k2[KB_Z85_KEY_LEN + 1], k3[KB_Z85_KEY_LEN + 1];
    s_curve_of("keys/politie.curve", k1);
    s_curve_of("keys/politie2.curve", k2);
    s_curve_of("keys/fier.curve", k3);
    ck_assert_uint_eq(politie->n_curve, 2);
    ck_assert_str_eq(politie->curve[0], k1);
    ck_assert_str_eq(politie->curve[1], k2);
    ck_assert_uint_eq(om->n_curve, 1);
    ck_assert_uint_eq(fier->n_curve, 1);
    ck_assert_str_eq(fier->curve[0], k3);

    ck_assert_str_eq(politie->signing_key_path, s_in(expect, "keys/politie.sign.pub.pem"));
    ck_assert_str_eq(om->signing_key_path, s_in(expect, "keys/om.sign.pub.pem"));
    EVP_PKEY *pk = kb_keys_load_sign_public(expect);
    ck_assert_ptr_nonnull(pk);
    ck_assert_int_eq(EVP_PKEY_eq(pk, om->signing_key), 1);
    ck_assert_int_ne(EVP_PKEY_eq(pk, politie->signing_key), 1);
    EVP_PKEY_free(pk);

    ck_assert_uint_eq(c->n_groups, 2);
    ck_assert_str_eq(c->groups[0].id, "care");
    ck_assert_int_eq(c->groups[0].line, 52);
    ck_assert_int_eq(c->groups[0].column, 3);
    ck_assert_uint_eq(c->groups[0].n_members, 1);
    ck_assert_str_eq(c->groups[0].members[0], "fier");
    ck_assert_str_eq(c->groups[1].id, "all");
    ck_assert_uint_eq(c->groups[1].n_members, 3);
    ck_assert_str_eq(c->groups[1].members[0], "om");
    ck_assert_str_eq(c->groups[1].members[2], "politie");

    ck_assert_uint_eq(c->n_rules, 4);
    const kb_rule_t *r0 = &c->rules[0], *r1 = &c->rules[1];
    ck_assert_str_eq(r0->id, "fier-signal-politie");
    ck_assert_int_eq(r0->line, 24);
    ck_assert_int_eq(r0->column, 5);
    ck_assert_ptr_null(r0->description);
    ck_assert_int_eq(r0->deny, 0);
    ck_assert_uint_eq(r0->purposes, (1u << KETENBUS__PURPOSE__PURPOSE_VICTIM_CARE) |
                                        (1u << KETENBUS__PURPOSE__PURPOSE_CRIMINAL_INVESTIGATION));
    ck_assert_int_eq(r0->max_handling, KETENBUS__HANDLING__HANDLING_H2);
    ck_assert_str_eq(r0->legal_basis, "Wpg art. 19 lid 1");
    ck_assert_uint_eq(r0->n_redact, 2);
    ck_assert_str_eq(r0->redact[0], "signal.narrative");
    ck_assert_str_eq(r0->redact[1], "signal.observed.location");
    ck_assert_int_eq(r0->valid_until_us, 0);
    ck_assert_int_eq(r0->until_line, 0);
    ck_assert_uint_eq(r0->n_from, 1);
    ck_assert_str_eq(r0->from[0], "fier");
    ck_assert_uint_eq(r0->n_to, 2);
    ck_assert_str_eq(r0->to[0], "politie");
    ck_assert_str_eq(r0->to[1], "om");
    ck_assert_uint_eq(r0->kinds,
                      (1u << KETENBUS__KIND__KIND_SIGNAL) | (1u << KETENBUS__KIND__KIND_REFERRAL_UPDATE));
    ck_assert_str_eq(r1->id, "politie.referral_1");
    ck_assert_str_eq(r1->description, "The police refer to the prosecutor.\n");
    ck_assert_int_eq(r1->deny, 0);
    ck_assert_uint_eq(r1->purposes, 1u << KETENBUS__PURPOSE__PURPOSE_CRIMINAL_INVESTIGATION);
    ck_assert_int_eq(r1->max_handling, KETENBUS__HANDLING__HANDLING_H3);
    ck_assert_str_eq(r1->legal_basis, "Wjsg");
    ck_assert_uint_eq(r1->n_redact, 0);
    /* a date: the rule holds to the end of that day, UTC */
    ck_assert_int_eq(r1->valid_until_us, 4102444800LL * 1000000);
    ck_assert_int_eq(r1->until_line, 43);
    ck_assert_int_eq(r1->until_column, 18);
    ck_assert_uint_eq(r1->n_from, 1);
    ck_assert_str_eq(r1->from[0], "politie");
    ck_assert_uint_eq(r1->n_to, 1);
    ck_assert_str_eq(r1->to[0], "om");
    ck_assert_uint_eq(r1->kinds, (1u << KETENBUS__KIND__KIND_REFERRAL) | (1u << KETENBUS__KIND__KIND_REFERRAL_UPDATE));

    /* a deny rule: every kind unless it names some, every handling code,
     * and the groups expanded */
    const kb_rule_t *r2 = &c->rules[2], *r3 = &c->rules[3];
    ck_assert_str_eq(r2->id, "no-care-to-om");
    ck_assert_int_eq(r2->deny, 1);
    ck_assert_uint_eq(r2->n_from, 2);
    ck_assert_str_eq(r2->from[0], "fier");
    ck_assert_str_eq(r2->from[1], "politie");
    ck_assert_uint_eq(r2->kinds, (1u << KETENBUS__KIND__KIND_SIGNAL) | (1u << KETENBUS__KIND__KIND_REFERRAL) |
                                     (1u << KETENBUS__KIND__KIND_REFERRAL_UPDATE) |
                                     (1u << KETENBUS__KIND__KIND_MATCH_NOTICE) |
                                     (1u << KETENBUS__KIND__KIND_EXPIRY_NOTICE));
    ck_assert_uint_eq(r2->purposes, 1u << KETENBUS__PURPOSE__PURPOSE_STATISTICS);
    ck_assert_int_eq(r2->max_handling, 0);
    ck_assert_ptr_null(r2->legal_basis);

    /* a flow mapping; a group and its members named again count once */
    ck_assert_str_eq(r3->id, "groups");
    ck_assert_int_eq(r3->line, 49);
    ck_assert_int_eq(r3->column, 5);
    ck_assert_uint_eq(r3->n_from, 3);
    ck_assert_str_eq(r3->from[0], "om");
    ck_assert_str_eq(r3->from[1], "fier");
    ck_assert_str_eq(r3->from[2], "politie");
    ck_assert_uint_eq(r3->n_to, 1);
    ck_assert_str_eq(r3->to[0], "fier");
    ck_assert_int_eq(r3->max_handling, KETENBUS__HANDLING__HANDLING_H0);
    /* an RFC 3339 time with an offset: 2099-06-30T10:00:00Z */
    ck_assert_int_eq(r3->valid_until_us, 4086496800LL * 1000000);
    ck_assert_ptr_nonnull(c->policy);

    /* The hash is over the file's bytes. */
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char buf[8192];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    unsigned char md[32];
    unsigned int md_len = 0;
    ck_assert_int_eq(EVP_Digest(buf, len, md, &md_len, EVP_sha256(), NULL), 1);
    char hex[65];
    for (unsigned i = 0; i < md_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    ck_assert_str_eq(c->sha256, hex);

    kb_conf_destroy(&c);
    ck_assert_ptr_null(c);
    kb_conf_destroy(&c); /* twice is harmless */
    kb_conf_destroy(NULL);
}
END_TEST

START_TEST(test_lookup)
{
    char path[PATH_MAX];
    s_write_full(path);
    kb_conf_t *c = kb_conf_load(path);
    ck_assert_msg(c != NULL, "%s", kb_last_error());
    ck_assert_ptr_eq(kb_conf_agency(c, "om"), &c->agencies[1]);
    ck_assert_ptr_eq(kb_conf_agency(c, "fier"), &c->agencies[2]);
    ck_assert_ptr_null(kb_conf_agency(c, "comensha")); /* has keys, not in the chain */
    ck_assert_ptr_null(kb_conf_agency(c, "Om"));
    ck_assert_ptr_null(kb_conf_agency(c, ""));
    ck_assert_ptr_null(kb_conf_agency(NULL, "om"));

    char k[KB_Z85_KEY_LEN + 1];
    s_curve_of("keys/politie2.curve", k);
    ck_assert_ptr_eq(kb_conf_agency_by_curve(c, k), &c->agencies[0]);
    s_curve_of("keys/politie.curve", k);
    ck_assert_ptr_eq(kb_conf_agency_by_curve(c, k), &c->agencies[0]);
    s_curve_of("keys/fier.curve", k);
    ck_assert_ptr_eq(kb_conf_agency_by_curve(c, k), &c->agencies[2]);
    s_curve_of("keys/comensha.curve", k);
    ck_assert_ptr_null(kb_conf_agency_by_curve(c, k));
    ck_assert_ptr_null(kb_conf_agency_by_curve(c, NULL));
    kb_conf_destroy(&c);
}
END_TEST

/* Minimal configurations: every optional key left out. */
#define S_MINIMAL                                  \
    "broker:\n"                                    \
    "  listen: tcp://*:5555\n"                     \
    "  data_dir: /var/lib/ketenbus\n"              \
    "  key_dir: keys/\n"                           \
    "agencies:\n"                                  \
    "  - id: om\n"                                 \
    "    curve_cert: keys/om.curve\n"              \
    "    signing_key: keys//om.sign.pub.pem\n"

static const char *const s_minimal[] = {
    S_MINIMAL,
    S_MINIMAL "rules:\n",
    S_MINIMAL "rules: []\n",
    S_MINIMAL "rules: ~\n",
    ("{broker: {listen: 'tcp://*:5555', data_dir: /var/lib/ketenbus, key_dir: keys/},\n"
     " agencies: [{id: om, curve_cert: [keys/om.curve], signing_key: keys//om.sign.pub.pem}]}\n"),
};

START_TEST(test_defaults)
{
    char path[PATH_MAX], expect[PATH_MAX], name[32];
    snprintf(name, sizeof name, "minimal-%d.yaml", _i);
    s_write(s_in(path, name), s_minimal[_i], strlen(s_minimal[_i]));
    kb_conf_t *c = kb_conf_load(path);
    ck_assert_msg(c != NULL, "row %d: %s", _i, kb_last_error());
    ck_assert_str_eq(c->broker_id, "ketenbus");
    ck_assert_str_eq(c->listen, "tcp://*:5555");
    ck_assert_str_eq(c->data_dir, "/var/lib/ketenbus");
    ck_assert_str_eq(c->key_dir, s_in(expect, "keys/"));
    ck_assert_uint_eq(c->max_message_bytes, KB_CONF_DEFAULT_MAX_MESSAGE);
    ck_assert_int_eq(c->message_ttl_us, KB_CONF_DEFAULT_TTL_US);
    ck_assert_int_eq(c->message_ttl_us, 14LL * 86400 * 1000000);
    ck_assert_int_eq(c->session_timeout_us, KB_CONF_DEFAULT_SESSION_US);
    ck_assert_uint_eq(c->n_agencies, 1);
    ck_assert_str_eq(c->agencies[0].name, "om");
    ck_assert_uint_eq(c->n_rules, 0);
    for (size_t k = 0; k < KB_CONF_RETENTION_KINDS; k++)
        ck_assert_int_eq(c->retention_us[k], 0); /* kept for ever */
    kb_conf_destroy(&c);
}
END_TEST

START_TEST(test_relative_config_path)
{
    char path[PATH_MAX], cwd[PATH_MAX];
    s_write(s_in(path, "rel.yaml"), S_MINIMAL, strlen(S_MINIMAL));
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(s_root), 0);
    kb_conf_t *c = kb_conf_load("rel.yaml");
    int saved = chdir(cwd);
    ck_assert_msg(c != NULL, "%s", kb_last_error());
    ck_assert_int_eq(saved, 0);
    /* Relative to the file, which is in the working directory. */
    ck_assert_str_eq(c->key_dir, "keys/");
    ck_assert_str_eq(c->agencies[0].signing_key_path, "keys//om.sign.pub.pem");
    ck_assert_str_eq(c->path, "rel.yaml");
    kb_conf_destroy(&c);
}
END_TEST

START_TEST(test_limits_accepted)
{
    static const char text[] = "broker:\n"
                               "  listen: ipc:///run/ketenbus.sock\n"
                               "  data_dir: d\n"
                               "  key_dir: k\n"
                               "  max_message_bytes: 67108864\n"
                               "  message_ttl: 3650d\n"
                               "  session_timeout: 1h\n"
                               "  retention:\n"
                               "    signal: 2y\n"
                               "    referral: 2555d\n"
                               "    expiry_notice: 1s\n"
                               "    other: 100y\n"
                               "agencies:\n"
                               "  - id: a-very-long-agency-id-32-chars-x\n"
                               "    curve_cert: keys/om.curve\n"
                               "    signing_key: keys/om.sign.pub.pem\n";
    char path[PATH_MAX];
    s_write(s_in(path, "limits.yaml"), text, sizeof text - 1);
    kb_conf_t *c = kb_conf_load(path);
    ck_assert_msg(c != NULL, "%s", kb_last_error());
    ck_assert_uint_eq(c->max_message_bytes, 64u * 1024 * 1024);
    ck_assert_int_eq(c->message_ttl_us, 3650LL * 86400 * 1000000);
    ck_assert_int_eq(c->session_timeout_us, 3600LL * 1000000);
    ck_assert_int_eq(c->retention_us[KETENBUS__KIND__KIND_SIGNAL], 2LL * 365 * 86400 * 1000000);
    ck_assert_int_eq(c->retention_us[KETENBUS__KIND__KIND_REFERRAL], 2555LL * 86400 * 1000000);
    ck_assert_int_eq(c->retention_us[KETENBUS__KIND__KIND_REFERRAL_UPDATE], 0);
    ck_assert_int_eq(c->retention_us[KETENBUS__KIND__KIND_MATCH_NOTICE], 0);
    ck_assert_int_eq(c->retention_us[KETENBUS__KIND__KIND_EXPIRY_NOTICE], 1000000);
    ck_assert_int_eq(c->retention_us[0], KB_CONF_MAX_RETENTION_US);
    ck_assert_str_eq(c->agencies[0].id, "a-very-long-agency-id-32-chars-x");
    kb_conf_destroy(&c);
}
END_TEST

/* Names in any script load, right-to-left ones too, and characters next to
 * the refused ranges; so do a CRLF file and one with a byte order mark. */
static const struct {
    const char *name; /* as written in the file */
    const char *value; /* as loaded */
} s_names[] = {
    {"Fier Frysl\xc3\xa2n", "Fier Frysl\xc3\xa2n"},
    {"\"\\u00A0\\u00FF\"", "\xc2\xa0\xc3\xbf"},                     /* after the C1 controls */
    {"\xd8\xa7\xd9\x84\xd8\xb4\xd8\xb1\xd8\xb7\xd8\xa9", "\xd8\xa7\xd9\x84\xd8\xb4\xd8\xb1\xd8\xb7\xd8\xa9"}, /* Arabic */
    {"\"\\u061B\\u061D\\u200D\\u2027\\u202F\\u2065\\u206A\"",
     "\xd8\x9b\xd8\x9d\xe2\x80\x8d\xe2\x80\xa7\xe2\x80\xaf\xe2\x81\xa5\xe2\x81\xaa"},
    {"\xf0\x9f\x9a\x93 politie", "\xf0\x9f\x9a\x93 politie"},     /* four bytes */
};

START_TEST(test_names_accepted)
{
    char path[PATH_MAX], text[1024], name[32];
    const char *bom = _i == 0 ? "\xef\xbb\xbf" : "";
    const char *eol = _i == 1 ? "\r\n" : "\n";
    int n = snprintf(text, sizeof text,
                     "%sbroker:%s  listen: tcp://*:5555%s  data_dir: d%s  key_dir: k%sagencies:%s  - id: om%s"
                     "    name: %s%s    curve_cert: keys/om.curve%s    signing_key: keys/om.sign.pub.pem%s",
                     bom, eol, eol, eol, eol, eol, eol, s_names[_i].name, eol, eol, eol);
    ck_assert(n > 0 && (size_t)n < sizeof text);
    snprintf(name, sizeof name, "name-%d.yaml", _i);
    s_write(s_in(path, name), text, (size_t)n);
    kb_conf_t *c = kb_conf_load(path);
    ck_assert_msg(c != NULL, "row %d: %s", _i, kb_last_error());
    ck_assert_str_eq(c->agencies[0].name, s_names[_i].value);
    ck_assert_int_eq(c->agencies[0].line, 6);
    kb_conf_destroy(&c);
}
END_TEST

/* A rules file checked where the key files are not. */
START_TEST(test_skip_keys)
{
    static const char text[] = "broker:\n  listen: tcp://127.0.0.1:1\n  data_dir: d\n  key_dir: k\n"
                               "agencies:\n"
                               "  - id: politie\n    curve_cert: [nowhere/politie.curve, x.curve]\n"
                               "    signing_key: nowhere/politie.sign.pub.pem\n"
                               "  - id: fier\n    curve_cert: nowhere/fier.curve\n"
                               "    signing_key: nowhere/fier.sign.pub.pem\n"
                               "rules:\n"
                               "  - id: r1\n    from: fier\n    to: politie\n    kinds: signal\n"
                               "    purposes: victim_care\n    max_handling: h2\n    legal_basis: b\n";
    char path[PATH_MAX], expect[PATH_MAX];
    s_write(s_in(path, "nokeys.yaml"), text, sizeof text - 1);
    ck_assert_ptr_null(kb_conf_load(path));
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "nokeys.yaml:7:18: agency 'politie': cannot load CURVE certificate"));
    ck_assert_ptr_null(kb_conf_load_ex(path, 0, NULL));

    kb_conf_t *c = kb_conf_load_ex(path, KB_CONF_SKIP_KEYS, NULL);
    ck_assert_msg(c != NULL, "%s", kb_last_error());
    ck_assert_uint_eq(c->n_agencies, 2);
    ck_assert_uint_eq(c->agencies[0].n_curve, 0);
    ck_assert_ptr_null(c->agencies[0].signing_key);
    ck_assert_str_eq(c->agencies[0].signing_key_path, s_in(expect, "nowhere/politie.sign.pub.pem"));
    ck_assert_uint_eq(c->n_rules, 1);
    ck_assert_ptr_nonnull(c->policy);
    kb_decision_t d;
    ck_assert_int_eq(kb_policy_decide(c->policy, "fier", "politie", KETENBUS__KIND__KIND_SIGNAL,
                                      KETENBUS__PURPOSE__PURPOSE_VICTIM_CARE, KETENBUS__HANDLING__HANDLING_H2, 0, &d),
                     KB_OK);
    ck_assert_int_eq(d.allowed, 1);
    ck_assert_ptr_eq(d.rule, &c->rules[0]);
    kb_conf_destroy(&c);

    /* The keys must still be given. */
    static const char missing[] = "broker:\n  listen: tcp://127.0.0.1:1\n  data_dir: d\n  key_dir: k\n"
                                  "agencies:\n  - id: politie\n    curve_cert: x.curve\n";
    s_write(s_in(path, "nokeys2.yaml"), missing, sizeof missing - 1);
    ck_assert_ptr_null(kb_conf_load_ex(path, KB_CONF_SKIP_KEYS, NULL));
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "nokeys2.yaml:6:5: missing key 'signing_key' in agency 'politie'"));
}
END_TEST

/* An agency's public key file that group or others may write is refused:
 * whoever may write it could pose as the agency. */
START_TEST(test_writable_key_refused)
{
    char path[PATH_MAX], key[PATH_MAX];
    s_write_full(path);
    ck_assert_int_eq(chmod(s_in(key, "keys/om.sign.pub.pem"), 0664), 0);
    kb_conf_t *c = kb_conf_load(path);
    char error[KB_ERROR_MAX];
    snprintf(error, sizeof error, "%s", kb_last_error());
    ck_assert_int_eq(chmod(key, 0644), 0);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(error, "full.yaml:17:") && strstr(error, "om.sign.pub.pem") &&
                      strstr(error, "(mode 0664); chmod go-w"),
                  "%s", error);
    c = kb_conf_load(path);
    ck_assert_msg(c != NULL, "%s", kb_last_error());
    kb_conf_destroy(&c);
}
END_TEST

START_TEST(test_file_errors)
{
    char path[PATH_MAX];
    ck_assert_ptr_null(kb_conf_load(s_in(path, "absent.yaml")));
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "absent.yaml"));
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "No such file"));

    ck_assert_ptr_null(kb_conf_load(NULL));
    ck_assert_ptr_null(kb_conf_load(""));

    size_t big = KB_CONF_MAX_BYTES + 1;
    char *text = malloc(big);
    ck_assert_ptr_nonnull(text);
    memset(text, '#', big);
    s_write(s_in(path, "big.yaml"), text, big);
    free(text);
    ck_assert_ptr_null(kb_conf_load(path));
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "big.yaml"));
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "limit"));
}
END_TEST

/* The loader names the bytes it read by their SHA-256 also when they do
 * not load, so that a refused file can be audited; a file not read whole
 * has none. */
START_TEST(test_sha256_of_refused_file)
{
    char path[PATH_MAX], sha[65] = "x", hex[65];
    static const char broken[] = "broker:\n  listen: [this is not\n";
    s_write(s_in(path, "refused.yaml"), broken, sizeof broken - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    ck_assert_int_eq(EVP_Digest(broken, sizeof broken - 1, md, &md_len, EVP_sha256(), NULL), 1);
    kb_hex(md, md_len, hex);
    ck_assert_ptr_null(kb_conf_load_ex(path, 0, sha));
    ck_assert_str_eq(sha, hex);

    ck_assert_ptr_null(kb_conf_load_ex(s_in(path, "absent.yaml"), 0, sha));
    ck_assert_str_eq(sha, "");
    size_t big = KB_CONF_MAX_BYTES + 1;
    char *text = malloc(big);
    ck_assert_ptr_nonnull(text);
    memset(text, '#', big);
    s_write(s_in(path, "big-hashed.yaml"), text, big);
    free(text);
    ck_assert_ptr_null(kb_conf_load_ex(path, 0, sha));
    ck_assert_str_eq(sha, "");

    s_write_full(path);
    kb_conf_t *c = kb_conf_load_ex(path, 0, sha);
    ck_assert_msg(c != NULL, "%s", kb_last_error());
    ck_assert_str_eq(sha, c->sha256);
    kb_conf_destroy(&c);
}
END_TEST

/* ---------------------------------------------------- broken configs */

/* Lines 1-4. */
#define B "broker:\n  listen: tcp://127.0.0.1:5555\n  data_dir: data\n  key_dir: keys\n"
#define AG_POLITIE "  - id: politie\n    curve_cert: keys/politie.curve\n    signing_key: keys/politie.sign.pub.pem\n"
#define AG_FIER "  - id: fier\n    curve_cert: keys/fier.curve\n    signing_key: keys/fier.sign.pub.pem\n"
/* Lines 5-11: politie on 6, fier on 9. */
#define A "agencies:\n" AG_POLITIE AG_FIER
/* The rest of an allow rule, lines 17-19 of RULE. */
#define REST "    purposes: [victim_care]\n    max_handling: h1\n    legal_basis: b\n"
/* A rule r1 on lines 13-19 after B A "rules:\n". */
#define RULE(from, to, kinds) "  - id: r1\n    from: " from "\n    to: " to "\n    kinds: " kinds "\n" REST
/* A rule r1 on lines 13-16 with the given last lines from line 17 on. */
#define RULE_WITH(lines) "  - id: r1\n    from: fier\n    to: politie\n    kinds: [signal]\n" lines
/* Two groups on lines 12-14 after B A. */
#define GROUPS "groups:\n  care: [fier]\n  police: [politie]\n"

typedef struct {
    const char *yaml;   /* the configuration */
    const char *expect; /* "LINE:COL: message" after "path:" in kb_last_error() */
} s_bad_t;

static const s_bad_t s_bad[] = {
    /* structure */
    {"", "1:1: empty configuration"},
    {"# only a comment\n", "1:1: empty configuration"},
    {"- broker\n", "1:1: expected key: value lines at top level, not a list"},
    {B A "extra: 1\n", "12:1: unknown key 'extra' at top level (expected broker, agencies, groups, rules)"},
    {A, "1:1: missing key 'broker' at top level"},
    {B, "1:1: missing key 'agencies' at top level"},
    {B A B, "12:1: duplicate key 'broker'"},
    {B A "---\nfoo: 1\n", "13:1: a second YAML document"},
    {B "agencies:\n  - &a\n    id: politie\n    curve_cert: keys/politie.curve\n"
       "    signing_key: keys/politie.sign.pub.pem\n  - *a\n",
     "6:5: YAML anchors and aliases are not supported"},
    {B "agencies:\n" AG_FIER "rules:\n" RULE("fier", "[fier]", "*k"), "13:12: YAML anchors and aliases are not supported"},
    {B "agencies: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
     "5:26: lists and mappings nested deeper than 16 levels"},
    /* YAML syntax */
    {"broker:\n  listen: [tcp://x:1\n", "3:1: YAML syntax error: did not find expected ',' or ']'"},
    {"broker:\n\tlisten: x\n", "2:1: YAML syntax error: found character that cannot start any token"},
    {"broker:\n  listen: \"a\xff\"\n", "2:13: YAML error: invalid leading UTF-8 octet"},
    /* columns count characters, as libyaml's marks and editors do, not bytes */
    {B "agencies:\n  - id: fier\n    name: \"\xc3\xa9\xc3\xa9\xe2\x82\xac\xff\"\n",
     "7:15: YAML error: invalid leading UTF-8 octet"},
    {B "agencies:\n  - id: fier\n    name: \"\xc3\xa9\xc3\xa9\xe2\x82\xac\x7f\"\n",
     "7:15: YAML error: control characters are not allowed"},
    {B "agencies:\n  - id: fier\n    name: \"\xc3\xa9\xc3\xa9\xe2\x82\xac\": x\n",
     "7:16: YAML syntax error: mapping values are not allowed in this context"},
    {"\xef\xbb\xbf" "broker: \"\xff\"\n", "1:10: YAML error: invalid leading UTF-8 octet"}, /* after a BOM */
    /* what YAML counts as a line break and editors do not: refused anywhere,
     * where an editor shows it, so that later line numbers match */
    {"# a comment \xe2\x80\xa8 with a line separator\n" B A,
     "1:13: U+2028 (line separator): YAML counts it as a line break, editors do not, so the line numbers after it "
     "would not match; remove it (comments included)"},
    {B "agencies:\n  - id: fier\n    name: \"Fier\xe2\x80\xa9" "Frysl\xc3\xa2n\"\n", "7:16: U+2029 (paragraph separator)"},
    {B "agencies:\n  - id: fier\n    name: \"Fier\xc2\x85" "Frysl\xc3\xa2n\"\n", "7:16: U+0085 (next line)"},
    {B "agencies:\n  - id: fier\n    name: \"Fier \xc3\xa2\xc2\x85\"\n", "7:18: U+0085 (next line)"},
    {"broker:\r  listen: tcp://x:1\n", "1:8: a carriage return without a line feed after it: YAML counts it as a "
                                      "line break"},
    {"broker:\r\n  listen: tcp://x:1\r", "2:20: a carriage return without a line feed after it"},
    /* "\r\n" is one line end, as editors count it */
    {"broker:\r\n  listen: tcp://x:1\r\n  data_dir: data\r\n  key_dir: keys\r\n  port: 1\r\nagencies: x\r\n",
     "5:3: unknown key 'port' in broker"},
    {"\xff\xfe" "b\x00", "1:1: the file is UTF-16; save it as UTF-8"},
    {"\xfe\xff" "\x00" "b", "1:1: the file is UTF-16; save it as UTF-8"},
    {"broker: x\n  listen: y\n", "2:9: YAML syntax error: mapping values are not allowed in this context"},
    /* broker */
    {"broker:\n  data_dir: data\n  key_dir: keys\n" A, "2:3: missing key 'listen' in broker"},
    {"broker:\n  listen: tcp://x:1\n  key_dir: keys\n" A, "2:3: missing key 'data_dir' in broker"},
    {"broker:\n  listen: tcp://x:1\n  data_dir: data\n" A, "2:3: missing key 'key_dir' in broker"},
    {"broker:\n  listen: tcp://x:1\n  data_dir: data\n  listen: tcp://y:2\n  key_dir: keys\n" A,
     "4:3: duplicate key 'listen'"},
    {"broker:\n  listen: tcp://x:1\n  data_dir: data\n  key_dir: keys\n  port: 5555\n" A,
     "5:3: unknown key 'port' in broker (expected id, listen, data_dir, key_dir, max_message_bytes, message_ttl, "
     "session_timeout, checkpoint_interval, checkpoint_records, verify_signatures, retention)"},
    {"broker: tcp://x:1\n" A, "1:9: expected key: value lines in broker, not a single value"},
    {"broker:\n  listen: tcp://x:1\n  data_dir: data\n  key_dir: keys\n  verify_signatures: maybe\n" A,
     "5:22: verify_signatures: expected true or false, got 'maybe'"},
    {"broker:\n  listen: 127.0.0.1:5555\n  data_dir: data\n  key_dir: keys\n" A,
     "2:11: listen: expected a ZeroMQ endpoint such as tcp://127.0.0.1:5555, got '127.0.0.1:5555'"},
    {"broker:\n  listen:\n  data_dir: data\n  key_dir: keys\n" A, "2:10: listen: empty value"},
    {"broker:\n  listen: [tcp://x:1]\n  data_dir: data\n  key_dir: keys\n" A,
     "2:11: listen: expected a single value, not a list"},
    {B "  id: Ketenbus\n" A, "5:7: bad broker id 'Ketenbus' (1..32 characters of a-z, 0-9 and -)"},
    {B "  message_ttl: 14x\n" A, "5:16: message_ttl: expected a number with s, m, h, d or y, got '14x'"},
    {B "  message_ttl: 14\n" A, "5:16: message_ttl: expected a number with s, m, h, d or y, got '14'"},
    {B "  message_ttl: -1d\n" A, "5:16: message_ttl: expected a number with s, m, h, d or y, got '-1d'"},
    {B "  message_ttl: 0s\n" A, "5:16: message_ttl: 0s is out of range 1s..3650d"},
    {B "  message_ttl: 3651d\n" A, "5:16: message_ttl: 3651d is out of range 1s..3650d"},
    {B "  message_ttl: 99999999999999999999d\n" A, "5:16: message_ttl: 99999999999999999999d is out of range"},
    {B "  message_ttl: 9223372036854775807d\n" A, "5:16: message_ttl: 9223372036854775807d is out of range"},
    {B "  session_timeout: 61m\n" A, "5:20: session_timeout: 61m is out of range 1s..1h"},
    {B "  session_timeout: 10 s\n" A, "5:20: session_timeout: expected a number with s, m, h, d or y, got '10 s'"},
    {B "  retention: 2y\n" A, "5:14: expected key: value lines in retention, not a single value"},
    {B "  retention:\n    signals: 2y\n" A,
     "6:5: unknown key 'signals' in retention (expected other, signal, referral, referral_update, match_notice, "
     "expiry_notice)"},
    {B "  retention:\n    signal: 2y\n    signal: 3y\n" A, "7:5: duplicate key 'signal'"},
    {B "  retention:\n    referral: 7 years\n" A,
     "6:15: retention of referral: expected a number with s, m, h, d or y, got '7 years'"},
    {B "  retention:\n    signal: 0d\n" A, "6:13: retention of signal: 0d is out of range 1s..100y"},
    {B "  retention:\n    other: 101y\n" A, "6:12: retention of other: 101y is out of range 1s..100y"},
    {B "  max_message_bytes: 1023\n" A, "5:22: max_message_bytes: 1023 is out of range 1024..67108864"},
    {B "  max_message_bytes: 67108865\n" A, "5:22: max_message_bytes: 67108865 is out of range 1024..67108864"},
    {B "  max_message_bytes: 1MB\n" A, "5:22: max_message_bytes: expected a whole number, got '1MB'"},
    {B "  max_message_bytes: +2048\n" A, "5:22: max_message_bytes: expected a whole number, got '+2048'"},
    /* agencies */
    {B "agencies: []\n", "5:11: agencies: expected at least one agency"},
    {B "agencies:\n  politie: x\n", "6:3: agencies: expected a list of agencies, not a mapping"},
    {B "agencies:\n  - politie\n", "6:5: expected key: value lines in agency, not a single value"},
    {B "agencies:\n  - name: Politie\n", "6:5: missing key 'id' in agency"},
    {B "agencies:\n  - id: Politie\n", "6:9: bad agency id 'Politie' (1..32 characters of a-z, 0-9 and -)"},
    {B "agencies:\n  - id: gem utrecht\n", "6:9: bad agency id 'gem utrecht'"},
    {B "agencies:\n  - id: a-very-long-agency-id-33-chars-xy\n", "6:9: bad agency id"},
    {B "agencies:\n  - id: \"\"\n", "6:9: agency id: empty value"},
    {B "agencies:\n" AG_POLITIE "  - id: politie\n", "9:9: duplicate agency id 'politie' (first on line 6)"},
    {B "agencies:\n  - id: fier\n    curve_cert: keys/fier.curve\n",
     "6:5: missing key 'signing_key' in agency 'fier'"},
    {B "agencies:\n  - id: fier\n    signing_key: keys/fier.sign.pub.pem\n",
     "6:5: missing key 'curve_cert' in agency 'fier'"},
    {B "agencies:\n  - id: fier\n    curve: keys/fier.curve\n",
     "7:5: unknown key 'curve' in agency (expected id, name, curve_cert, signing_key)"},
    {B "agencies:\n  - id: fier\n    name: \"Fier\\tFryslan\"\n    curve_cert: keys/fier.curve\n"
       "    signing_key: keys/fier.sign.pub.pem\n",
     "7:11: name: invisible or control character U+0009 in value"},
    {B "agencies:\n  - id: fier\n    name: \"Fier\\0\"\n    curve_cert: keys/fier.curve\n"
       "    signing_key: keys/fier.sign.pub.pem\n",
     "7:11: name: NUL character in value"},
    /* C1 controls, line and paragraph separators and bidirectional controls
     * make a value show as other text than it is: refused, escaped or not */
#define NAMED(value) \
    B "agencies:\n  - id: fier\n    name: " value "\n    curve_cert: keys/fier.curve\n    signing_key: keys/fier.sign.pub.pem\n"
    {NAMED("\"Fier\\x7f\""), "7:11: name: invisible or control character U+007F in value"},
    {NAMED("\"Fier\\x80\""), "7:11: name: invisible or control character U+0080 in value"},
    {NAMED("\"Fier\\N\""), "7:11: name: invisible or control character U+0085 in value"},
    {NAMED("\"Fier\\u009F\""), "7:11: name: invisible or control character U+009F in value"},
    {NAMED("\"Fier\\L\""), "7:11: name: invisible or control character U+2028 in value"},
    {NAMED("\"Fier\\P\""), "7:11: name: invisible or control character U+2029 in value"},
    {NAMED("\"Fier\\u200E\""), "7:11: name: invisible or control character U+200E in value"},
    {NAMED("\"Fier\\u200f\""), "7:11: name: invisible or control character U+200F in value"},
    {NAMED("\"Fier\\u202A\""), "7:11: name: invisible or control character U+202A in value"},
    {NAMED("\"reif\\u202E\""), "7:11: name: invisible or control character U+202E in value"},
    {NAMED("Fier \xe2\x80\xae" "naslyrF"), "7:11: name: invisible or control character U+202E in value"},
    {NAMED("\"\\u2066Fier\""), "7:11: name: invisible or control character U+2066 in value"},
    {NAMED("Fier\xe2\x81\xa9"), "7:11: name: invisible or control character U+2069 in value"},
    {NAMED("\"Fier\\u061C\""), "7:11: name: invisible or control character U+061C in value"},
    {NAMED("\"Fier\\u00ADs\""), "7:11: name: invisible or control character U+00AD in value"},
    {NAMED("\"Fi\\u200Ber\""), "7:11: name: invisible or control character U+200B in value"},
    {NAMED("\"Fier\\u2060\""), "7:11: name: invisible or control character U+2060 in value"},
    {NAMED("\"Fier\\u2064\""), "7:11: name: invisible or control character U+2064 in value"},
    {NAMED("\"Fi\\uFEFFer\""), "7:11: name: invisible or control character U+FEFF in value"},
    {NAMED("\"\\u3164Fier\""), "7:11: name: invisible or control character U+3164 in value"},
    {NAMED("\"Fier\\U000E0041\""), "7:11: name: invisible or control character U+E0041 in value"},
    {B "agencies:\n  - id: \"fi\\u202Eer\"\n", "6:9: agency id: invisible or control character U+202E in value"},
    {B "agencies:\n  - id: fier\n    \"na\\u200Fme\": x\n", "7:5: key: invisible or control character U+200F in value"},
    {B "agencies:\n  - id: fier\n    curve_cert: keys/nope.curve\n    signing_key: keys/fier.sign.pub.pem\n",
     "7:17: agency 'fier': cannot load CURVE certificate keys/nope.curve: "},
    {B "agencies:\n  - id: fier\n    curve_cert: keys/fier.sign.pub.pem\n    signing_key: keys/fier.sign.pub.pem\n",
     "7:17: agency 'fier': cannot load CURVE certificate keys/fier.sign.pub.pem: "},
    {B "agencies:\n  - id: fier\n    curve_cert: []\n    signing_key: keys/fier.sign.pub.pem\n",
     "7:17: agency 'fier': curve_cert: expected at least one certificate"},
    {B "agencies:\n  - id: fier\n    curve_cert: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q]\n"
       "    signing_key: keys/fier.sign.pub.pem\n",
     "7:17: agency 'fier': curve_cert: more than 16 certificates"},
    {B "agencies:\n  - id: fier\n    curve_cert: {a: b}\n    signing_key: keys/fier.sign.pub.pem\n",
     "7:17: curve_cert: expected a value or a list of values, not a mapping"},
    {B "agencies:\n  - id: fier\n    curve_cert: keys/fier.curve\n    signing_key: keys/fier.nope.pem\n",
     "8:18: agency 'fier': cannot load signing key keys/fier.nope.pem: "},
    {B "agencies:\n  - id: fier\n    curve_cert: keys/fier.curve\n    signing_key: keys/x25519.pub.pem\n",
     "8:18: agency 'fier': cannot load signing key keys/x25519.pub.pem: "},
    {B "agencies:\n  - id: fier\n    curve_cert: keys/fier.curve\n    signing_key: keys/fier.curve\n",
     "8:18: agency 'fier': cannot load signing key keys/fier.curve: "},
    {B "agencies:\n" AG_POLITIE "  - id: om\n    curve_cert: [keys/om.curve, keys/politie.curve]\n"
       "    signing_key: keys/om.sign.pub.pem\n",
     "10:33: agency 'om': the CURVE key in keys/politie.curve is already used by agency 'politie'"},
    {B "agencies:\n  - id: om\n    curve_cert: [keys/om.curve, keys/om.curve_secret]\n"
       "    signing_key: keys/om.sign.pub.pem\n",
     "7:33: agency 'om': the CURVE key in keys/om.curve_secret is listed twice for this agency"},
    {B "agencies:\n  - id: om\n    curve_cert: [keys/om.curve, keys/fier.curve, keys/om.curve]\n"
       "    signing_key: keys/om.sign.pub.pem\n",
     "7:50: agency 'om': the CURVE key in keys/om.curve is listed twice for this agency"},
    /* one signing key for two agencies: each could sign as the other */
    {B "agencies:\n" AG_POLITIE "  - id: om\n    curve_cert: keys/om.curve\n    signing_key: keys/politie.sign.pub.pem\n",
     "11:18: agency 'om': the signing key in keys/politie.sign.pub.pem is already used by agency 'politie' (line 6); "
     "each agency signs with a key of its own"},
    {B "agencies:\n" AG_POLITIE AG_FIER "  - id: om\n    curve_cert: keys/om.curve\n"
       "    signing_key: keys/copy-of-fier.sign.pub.pem\n",
     "14:18: agency 'om': the signing key in keys/copy-of-fier.sign.pub.pem is already used by agency 'fier' (line 9)"},
    /* the broker's notices carry its id as sender: no agency may have it */
    {"broker:\n  id: fier\n  listen: tcp://127.0.0.1:5555\n  data_dir: data\n  key_dir: keys\n" A,
     "2:7: broker id 'fier' is also the id of an agency (line 10); the broker's notices would pass for that "
     "agency's messages: give the broker an id of its own"},
    {B "agencies:\n" AG_POLITIE
       "  - id: ketenbus\n    curve_cert: keys/fier.curve\n    signing_key: keys/fier.sign.pub.pem\n",
     "2:3: broker id 'ketenbus' (the default) is also the id of an agency (line 9); the broker's notices would "
     "pass for that agency's messages: give the broker an id of its own"},
    /* nor the name of the broker's key files (broker.sign.pub.pem, ...) */
    {B "agencies:\n" AG_POLITIE
       "  - id: broker\n    curve_cert: keys/fier.curve\n    signing_key: keys/fier.sign.pub.pem\n",
     "9:9: agency id 'broker' is taken by the broker's own key files; choose another"},
    /* rules */
    {B A "rules: {}\n", "12:8: rules: expected a list of rules, not a mapping"},
    {B A "rules:\n  - id: r1\n    sender: [fier]\n",
     "14:5: unknown key 'sender' in rule (expected id, description, effect, from, to, kinds, purposes, "
     "max_handling, legal_basis, redact, valid_until)"},
    {B A "rules:\n  - from: [fier]\n", "13:5: missing key 'id' in rule"},
    {B A "rules:\n  - id: r1\n    from: [fier]\n    to: [politie]\n", "13:5: missing key 'kinds' in rule 'r1'"},
    {B A "rules:\n" RULE("[polite]", "[fier]", "[signal]"), "14:12: unknown agency or group 'polite' in rule 'r1' from"},
    {B A "rules:\n" RULE("fier", "om", "signal"), "15:9: unknown agency or group 'om' in rule 'r1' to"},
    {B A "rules:\n" RULE("[fier, politie, fier]", "politie", "signal"),
     "14:27: agency 'fier' appears twice in rule 'r1' from"},
    {B A "rules:\n" RULE("[]", "politie", "signal"), "14:11: rule 'r1' from: expected at least one agency or group"},
    {B A "rules:\n" RULE("fier", "politie", "[SIGNAL]"),
     "16:13: unknown kind 'SIGNAL' in rule 'r1' (expected signal, referral, referral_update)"},
    /* notices are the broker's own: no rule may route one */
    {B A "rules:\n" RULE("fier", "politie", "[signal, match_notice]"),
     "16:21: kind 'match_notice' in rule 'r1': notices are written and signed by the broker only; no rule routes "
     "them"},
    {B A "rules:\n" RULE("fier", "politie", "expiry_notice"),
     "16:12: kind 'expiry_notice' in rule 'r1': notices are written and signed by the broker only; no rule routes "
     "them"},
    {B A "rules:\n  - {id: d, effect: deny, from: fier, to: politie, kinds: [match_notice]}\n",
     "13:60: kind 'match_notice' in rule 'd': notices are written and signed by the broker only; no rule routes "
     "them"},
    {B A "rules:\n" RULE("fier", "politie", "kind_signal"), "16:12: unknown kind 'kind_signal' in rule 'r1'"},
    {B A "rules:\n" RULE("fier", "politie", "unspecified"), "16:12: unknown kind 'unspecified' in rule 'r1'"},
    {B A "rules:\n" RULE("fier", "politie", "[signal, referral, signal]"),
     "16:31: kind 'signal' appears twice in rule 'r1'"},
    {B A "rules:\n" RULE("fier", "politie", "[]"), "16:12: rule 'r1' kinds: expected at least one kind"},
    {B A "rules:\n" RULE("fier", "politie", "signal") RULE("politie", "fier", "signal"),
     "20:9: duplicate rule id 'r1' (first on line 13)"},
    {B A "rules:\n  - id: r 1\n", "13:9: bad rule id 'r 1'"},
    {B A "rules:\n" RULE("{fier: 1}", "politie", "signal"), "14:11: from: expected a value or a list of values, not a mapping"},
    /* groups */
    {B A "groups: [fier]\n", "12:9: groups: expected 'name: [agencies]' lines, not a list"},
    {B A "groups:\n  Care: [fier]\n", "13:3: bad group name 'Care' (1..32 characters of a-z, 0-9 and -)"},
    {B A "groups:\n  fier: [politie]\n", "13:3: group name 'fier' is also an agency id (line 9)"},
    {B A "groups:\n  care: [fier]\n  care: [politie]\n", "14:3: duplicate group 'care' (first on line 13)"},
    {B A "groups:\n  care: []\n", "13:9: group 'care': expected at least one agency"},
    {B A "groups:\n  care: [fier, ldh]\n", "13:16: unknown agency 'ldh' in group 'care'"},
    {B A "groups:\n  care: [fier, fier]\n", "13:16: agency 'fier' appears twice in group 'care'"},
    {B A "groups:\n  care: [fier, police]\n  police: [politie]\n",
     "13:16: group 'care' contains group 'police'; a group may only contain agencies"},
    {B A "groups:\n  care: {fier: 1}\n", "13:9: group members: expected a value or a list of values, not a mapping"},
    {B A GROUPS "rules:\n" RULE("[care, cure]", "politie", "signal"),
     "17:18: unknown agency or group 'cure' in rule 'r1' from"},
    {B A GROUPS "rules:\n" RULE("[care, care]", "politie", "signal"), "17:18: group 'care' appears twice in rule 'r1' from"},
    {B A GROUPS "rules:\n" RULE("care", "[police, politie, police]", "signal"),
     "18:27: group 'police' appears twice in rule 'r1' to"},
    /* effect and the keys an allow rule needs */
    {B A "rules:\n" RULE_WITH("    effect: permit\n"), "17:13: rule 'r1' effect: expected allow or deny, got 'permit'"},
    {B A "rules:\n  - id: r1\n    to: [politie]\n", "13:5: missing key 'from' in rule 'r1'"},
    {B A "rules:\n  - id: r1\n    effect: deny\n    from: [fier]\n", "13:5: missing key 'to' in rule 'r1'"},
    {B A "rules:\n" RULE_WITH("    max_handling: h1\n    legal_basis: b\n"),
     "13:5: missing key 'purposes' in rule 'r1'"},
    {B A "rules:\n" RULE_WITH("    purposes: [victim_care]\n    legal_basis: b\n"),
     "13:5: missing key 'max_handling' in rule 'r1'"},
    {B A "rules:\n" RULE_WITH("    purposes: [victim_care]\n    max_handling: h1\n"),
     "13:5: missing key 'legal_basis' in rule 'r1'"},
    {B A "rules:\n  - id: r1\n    effect: deny\n    from: [fier]\n    to: [politie]\n    max_handling: h1\n",
     "17:5: max_handling is not allowed on deny rule 'r1' (it refuses every handling code)"},
    {B A "rules:\n  - id: r1\n    effect: deny\n    from: [fier]\n    to: [politie]\n    kinds: [signal]\n"
         "    redact: [signal.narrative]\n",
     "18:5: redact is not allowed on deny rule 'r1' (it lets nothing through)"},
    /* purposes and handling codes */
    {B A "rules:\n" RULE_WITH("    purposes: [care]\n    max_handling: h1\n    legal_basis: b\n"),
     "17:16: unknown purpose 'care' in rule 'r1' (expected criminal_investigation, victim_care, child_protection, "
     "registration, analysis, statistics)"},
    {B A "rules:\n" RULE_WITH("    purposes: [unspecified]\n    max_handling: h1\n    legal_basis: b\n"),
     "17:16: unknown purpose 'unspecified' in rule 'r1'"},
    {B A "rules:\n" RULE_WITH("    purposes: [analysis, analysis]\n    max_handling: h1\n    legal_basis: b\n"),
     "17:26: purpose 'analysis' appears twice in rule 'r1'"},
    {B A "rules:\n" RULE_WITH("    purposes: []\n    max_handling: h1\n    legal_basis: b\n"),
     "17:15: rule 'r1' purposes: expected at least one purpose"},
    {B A "rules:\n" RULE_WITH("    purposes: analysis\n    max_handling: h4\n    legal_basis: b\n"),
     "18:19: unknown handling code 'h4' in rule 'r1' max_handling (expected h0, h1, h2, h3)"},
    {B A "rules:\n" RULE_WITH("    purposes: analysis\n    max_handling: H1\n    legal_basis: b\n"),
     "18:19: unknown handling code 'H1' in rule 'r1' max_handling"},
    {B A "rules:\n" RULE_WITH("    purposes: analysis\n    max_handling: [h1]\n    legal_basis: b\n"),
     "18:19: max_handling: expected a single value, not a list"},
    /* legal basis and description */
    {B A "rules:\n" RULE_WITH("    purposes: analysis\n    max_handling: h1\n    legal_basis: \"\"\n"),
     "19:18: legal_basis: empty value"},
    {B A "rules:\n" RULE_WITH("    purposes: analysis\n    max_handling: h1\n    legal_basis: \"a\\nb\"\n"),
     "19:18: legal_basis: invisible or control character U+000A in value"},
    {B A "rules:\n" RULE_WITH("    purposes: analysis\n    max_handling: h1\n    legal_basis: "
                              "\"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234"
                              "5678901234567890123456789012345678901234567890123456789012345678901234567890x\"\n"),
     "19:18: rule 'r1' legal_basis: longer than 160 bytes"},
    {B A "rules:\n" RULE_WITH(REST "    description: [a]\n"), "20:18: description: expected a single value, not a list"},
    {B A "rules:\n" RULE_WITH(REST "    description: \"a\\x01b\"\n"), "20:18: description: invisible or control character U+0001 in value"},
    {B A "rules:\n" RULE_WITH(REST "    description: \"Tells \\u202Esnoitseggus\"\n"),
     "20:18: description: invisible or control character U+202E in value"},
    {B A "rules:\n" RULE_WITH(REST "    description: \"a\\u0085b\"\n"),
     "20:18: description: invisible or control character U+0085 in value"},
    {B A "rules:\n" RULE_WITH("    purposes: analysis\n    max_handling: h1\n    legal_basis: \"Wpg \\u2067art. 19\"\n"),
     "19:18: legal_basis: invisible or control character U+2067 in value"},
    /* redact */
    {B A "rules:\n" RULE_WITH(REST "    redact: [signal.narative]\n"),
     "20:14: unknown field path 'signal.narative' in rule 'r1' redact"},
    {B A "rules:\n" RULE_WITH(REST "    redact: [signal]\n"), "20:14: unknown field path 'signal' in rule 'r1' redact"},
    {B A "rules:\n" RULE_WITH(REST "    redact: [signal.narrative.x]\n"),
     "20:14: unknown field path 'signal.narrative.x' in rule 'r1' redact"},
    {B A "rules:\n" RULE_WITH(REST "    redact: [signal.narrative, referral.reason]\n"),
     "20:32: path 'referral.reason' does not belong to kinds [signal] of rule 'r1'"},
    {B A "rules:\n" RULE_WITH(REST "    redact: [signal.narrative, signal.narrative]\n"),
     "20:32: path 'signal.narrative' appears twice in rule 'r1' redact"},
    {B A "rules:\n" RULE_WITH(REST "    redact: [signal.observed, signal.narrative, signal.observed.location]\n"),
     "20:49: path 'signal.observed.location' in rule 'r1' redact lies within 'signal.observed'; give only "
     "'signal.observed'"},
    {B A "rules:\n" RULE_WITH(REST "    redact: [signal.observed.location, signal.observed]\n"),
     "20:40: path 'signal.observed.location' in rule 'r1' redact lies within 'signal.observed'"},
    {B A "rules:\n" RULE_WITH(REST "    redact: [signal.observed.location, signal.observed.locations]\n"),
     "20:40: unknown field path 'signal.observed.locations'"},
    {B A "rules:\n" RULE_WITH(REST "    redact: {a: b}\n"), "20:13: redact: expected a value or a list of values, not a mapping"},
    /* valid_until */
    {B A "rules:\n" RULE_WITH(REST "    valid_until: 2027-02-29\n"),
     "20:18: rule 'r1' valid_until: bad date '2027-02-29' (expected YYYY-MM-DD or an RFC 3339 time such as "
     "2027-12-31T23:59:59Z)"},
    {B A "rules:\n" RULE_WITH(REST "    valid_until: 2027-13-01\n"), "20:18: rule 'r1' valid_until: bad date '2027-13-01'"},
    {B A "rules:\n" RULE_WITH(REST "    valid_until: 27-12-31\n"), "20:18: rule 'r1' valid_until: bad date '27-12-31'"},
    {B A "rules:\n" RULE_WITH(REST "    valid_until: 2027-12-31T25:00:00Z\n"),
     "20:18: rule 'r1' valid_until: bad date '2027-12-31T25:00:00Z'"},
    {B A "rules:\n" RULE_WITH(REST "    valid_until: 2027-12-31T10:00:00\n"),
     "20:18: rule 'r1' valid_until: bad date '2027-12-31T10:00:00'"},
    {B A "rules:\n" RULE_WITH(REST "    valid_until: 2027-12-31x\n"), "20:18: rule 'r1' valid_until: bad date '2027-12-31x'"},
    {B A "rules:\n" RULE_WITH(REST "    valid_until: 1969-12-31\n"), "20:18: rule 'r1' valid_until: bad date '1969-12-31'"},
};

START_TEST(test_bad)
{
    const s_bad_t *row = &s_bad[_i];
    char name[32], path[PATH_MAX], expect[PATH_MAX + 512];
    snprintf(name, sizeof name, "bad-%d.yaml", _i);
    s_write(s_in(path, name), row->yaml, strlen(row->yaml));
    kb_error_clear();
    kb_conf_t *c = kb_conf_load(path);
    ck_assert_msg(c == NULL, "row %d loaded", _i);
    snprintf(expect, sizeof expect, "%s:%s", path, row->expect);
    const char *err = kb_last_error();
    ck_assert_msg(strncmp(err, expect, strlen(expect)) == 0, "row %d:\n got  \"%s\"\n want \"%s\"", _i, err, expect);
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("load");
    tcase_add_unchecked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_full);
    tcase_add_test(tc, test_lookup);
    tcase_add_loop_test(tc, test_defaults, 0, (int)(sizeof s_minimal / sizeof s_minimal[0]));
    tcase_add_test(tc, test_relative_config_path);
    tcase_add_test(tc, test_limits_accepted);
    tcase_add_loop_test(tc, test_names_accepted, 0, (int)(sizeof s_names / sizeof s_names[0]));
    tcase_add_test(tc, test_skip_keys);
    tcase_add_test(tc, test_file_errors);
    tcase_add_test(tc, test_sha256_of_refused_file);
    tcase_add_test(tc, test_writable_key_refused);
    tcase_add_loop_test(tc, test_bad, 0, (int)(sizeof s_bad / sizeof s_bad[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
