/*
 * check_subject.c - tests of lib/kb_subject.c and the SDK's subject keys
 * (adapters/sdk/subject.c).
 *
 * A table of identifiers and what each type's rules make of them (or why
 * they are refused), known-answer keys under the published test chain key
 * of docs/SUBJECT_KEYS.md, and two comparisons with an independent Python
 * implementation (tests/unit/subject_ref.py, found through $KB_SRCDIR,
 * default "."): every row of the table, and every code point of the blocks
 * the name rules cover. Then the chain key file loader and the SDK calls.
 *
 * File tests work in one mkdtemp directory that the fixture removes.
 */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "kb_error.h"
#include "kb_subject.h"
#include "kb_util.h"
#include "kb_test.h"

#define ROWS(a) (sizeof(a) / sizeof((a)[0]))

/* The test chain key of docs/SUBJECT_KEYS.md: 32 ASCII bytes, not secret. */
static const uint8_t s_test_key[KB_CHAIN_KEY_LEN + 1] = "ketenbus-test-vectors-not-secret";

/* ------------------------------------------------------------ normalisation table */

static const struct {
    const char *type;  /* identifier type */
    const char *value; /* as an agency's system may hold it */
    const char *want;  /* normalised form, NULL if refused */
    int rc;            /* expected return code */
} s_rows[] = {
    /* bsn: separators go, the elfproef decides */
    {"bsn", "123456782", "123456782", KB_OK},
    {"bsn", "1234.56.782", "123456782", KB_OK},
    {"bsn", " 123 456 782 ", "123456782", KB_OK},
    {"bsn", "1234-56-782", "123456782", KB_OK},
    {"bsn", "111222333", "111222333", KB_OK},
    {"bsn", "010000008", "010000008", KB_OK},
    {"bsn", "123456789", NULL, KB_EPROTO},   /* elfproef fails */
    {"bsn", "213456782", NULL, KB_EPROTO},   /* two digits swapped */
    {"bsn", "000000000", NULL, KB_EPROTO},   /* passes the sum, but all zero */
    {"bsn", "12345678", NULL, KB_EPROTO},    /* a leading zero lost */
    {"bsn", "1234567820", NULL, KB_EPROTO},  /* ten digits */
    {"bsn", "12345678x", NULL, KB_EPROTO},
    {"bsn", "123456782\n", NULL, KB_EPROTO},
    {"bsn", "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94\xef\xbc\x95\xef\xbc\x96\xef\xbc\x97\xef\xbc\x98\xef\xbc\x92",
     NULL, KB_EPROTO}, /* full-width digits */
    {"bsn", "", NULL, KB_EPROTO},
    /* vnummer */
    {"vnummer", "1234567890", "1234567890", KB_OK},
    {"vnummer", "12 3456 7890", "1234567890", KB_OK},
    {"vnummer", "123456789", NULL, KB_EPROTO},
    {"vnummer", "V1234567890", NULL, KB_EPROTO},
    /* document */
    {"document", "nw-92 bf1 k3", "NW92BF1K3", KB_OK},
    {"document", "NW92BF1K3", "NW92BF1K3", KB_OK},
    {"document", "ab.123", "AB123", KB_OK},
    {"document", "AB12", NULL, KB_EPROTO},
    {"document", "NW92BF1K3/", NULL, KB_EPROTO},
    {"document", "NW\xc3\x96" "2BF1K3", NULL, KB_EPROTO}, /* Ö */
    {"document", "ABCDEFGHIJKLMNOPQRSTUVWXYZ1234567", NULL, KB_EPROTO}, /* 33 */
    {"document", "ABCDEFGHIJKLMNOPQRSTUVWXYZ123456", "ABCDEFGHIJKLMNOPQRSTUVWXYZ123456", KB_OK},
    /* name_birth */
    {"name_birth", "Jansen|Jan|1990-01-01", "jansen|jan|1990-01-01", KB_OK},
    {"name_birth", "  JANSEN  | Jan  Pieter |1990-01-01", "jansen|jan pieter|1990-01-01", KB_OK},
    {"name_birth", "Jansen|Jan| 1990-01-01 ", "jansen|jan|1990-01-01", KB_OK},
    {"name_birth", "\xc3\x87" "elik-\xc3\x96zt\xc3\xbcrk | Ay\xc5\x9f" "e  Nur |2009-03-14",
     "celik ozturk|ayse nur|2009-03-14", KB_OK},
    {"name_birth", "van der Berg|Anne-Marie|2001-12-31", "van der berg|anne marie|2001-12-31", KB_OK},
    {"name_birth", "J.P. de Vries|J.|1970-10-10", "j p de vries|j|1970-10-10", KB_OK},
    {"name_birth", "\xc5\x81ukasiewicz|J\xc3\xb3zef|1978-06-05", "lukasiewicz|jozef|1978-06-05", KB_OK},
    {"name_birth", "O'Brien|Se\xc3\xa1n|1995-02-28", "obrien|sean|1995-02-28", KB_OK},
    /* curly apostrophe, and the accent as a combining mark (NFD text) */
    {"name_birth", "O\xe2\x80\x99" "Brien|Sea\xcc\x81n|1995-02-28", "obrien|sean|1995-02-28", KB_OK},
    {"name_birth", "\xc4\xb2sselmeer|Ruth|2000-02-29", "ijsselmeer|ruth|2000-02-29", KB_OK},
    {"name_birth", "Stra\xc3\x9f" "e|J\xc3\xbcrgen|1980-05-05", "strasse|jurgen|1980-05-05", KB_OK},
    {"name_birth", "\xc3\x98" "deg\xc3\xa5rd|\xc3\x86lfr\xc3\xad\xc3\xb0|1983-04-30", "odegard|aelfrid|1983-04-30",
     KB_OK},
    /* Romanian s with cedilla (Extended-A) and with comma below (Extended-B) */
    {"name_birth", "\xc5\x9e" "tef\xc4\x83nescu|Ioana|2007-07-01", "stefanescu|ioana|2007-07-01", KB_OK},
    {"name_birth", "\xc8\x98tef\xc4\x83nescu|Ioana|2007-07-01", "stefanescu|ioana|2007-07-01", KB_OK},
    /* Cyrillic and Greek: lower case, letters kept; final sigma folded */
    {"name_birth", "\xd0\x98\xd0\x92\xd0\x90\xd0\x9d\xd0\x9e\xd0\x92\xd0\x90|\xd0\x9c\xd0\xb0\xd1\x80\xd0\xb8\xd1\x8f|"
                   "1999-09-09",
     "\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd\xd0\xbe\xd0\xb2\xd0\xb0|\xd0\xbc\xd0\xb0\xd1\x80\xd0\xb8\xd1\x8f|1999-09-09", KB_OK},
    {"name_birth", "\xce\x9f\xce\x94\xce\xa5\xce\xa3\xce\xa3\xce\x95\xce\xa5\xce\xa3|x|1985-01-01",
     "\xce\xbf\xce\xb4\xcf\x85\xcf\x83\xcf\x83\xce\xb5\xcf\x85\xcf\x83|x|1985-01-01", KB_OK},
    {"name_birth", "\xce\xbf\xce\xb4\xcf\x85\xcf\x83\xcf\x83\xce\xb5\xcf\x85\xcf\x82|x|1985-01-01",
     "\xce\xbf\xce\xb4\xcf\x85\xcf\x83\xcf\x83\xce\xb5\xcf\x85\xcf\x83|x|1985-01-01", KB_OK},
    /* Arabic has no case: kept as written */
    {"name_birth", "\xd9\x85\xd8\xad\xd9\x85\xd8\xaf|\xd8\xb9\xd9\x84\xd9\x8a|1990-01-01",
     "\xd9\x85\xd8\xad\xd9\x85\xd8\xaf|\xd8\xb9\xd9\x84\xd9\x8a|1990-01-01", KB_OK},
    /* no-break space and tab are spaces */
    {"name_birth", "van\xc2\xa0" "Dijk|Jan\tWillem|1990-01-01", "van dijk|jan willem|1990-01-01", KB_OK},
    {"name_birth", "Jansen||1990-01-01", "jansen||1990-01-01", KB_OK},
    {"name_birth", "|Jan|1990-01-01", NULL, KB_EPROTO},
    {"name_birth", " - . |Jan|1990-01-01", NULL, KB_EPROTO},
    {"name_birth", "Jansen|Jan", NULL, KB_EPROTO},
    {"name_birth", "Jansen|Jan|1990|01-01", NULL, KB_EPROTO},
    {"name_birth", "Jansen|Jan|01-01-1990", NULL, KB_EPROTO},
    {"name_birth", "Jansen|Jan|1990-1-1", NULL, KB_EPROTO},
    {"name_birth", "Jansen|Jan|1990-02-29", NULL, KB_EPROTO},
    {"name_birth", "Jansen|Jan|1900-02-29", NULL, KB_EPROTO},
    {"name_birth", "Jansen|Jan|2000-13-01", NULL, KB_EPROTO},
    {"name_birth", "Jansen|Jan|2000-04-31", NULL, KB_EPROTO},
    {"name_birth", "Jansen|Jan|1899-12-31", NULL, KB_EPROTO},
    {"name_birth", "Jansen 2|Jan|1990-01-01", NULL, KB_EPROTO},
    {"name_birth", "Jansen, Jan|Jan|1990-01-01", NULL, KB_EPROTO},
    {"name_birth", "Jansen\xc3\x97|Jan|1990-01-01", NULL, KB_EPROTO},     /* × */
    {"name_birth", "Jan\xffsen|Jan|1990-01-01", NULL, KB_EPROTO},         /* not UTF-8 */
    {"name_birth", "Jan\xc3(sen|Jan|1990-01-01", NULL, KB_EPROTO},        /* cut sequence */
    {"name_birth", "Jan\xc0\xafsen|Jan|1990-01-01", NULL, KB_EPROTO},     /* overlong '/' */
    {"name_birth", "Jan\xed\xa0\x80sen|Jan|1990-01-01", NULL, KB_EPROTO}, /* surrogate */
    {"name_birth", "Jansen|Jan\xe2\x80\x9c|1990-01-01", NULL, KB_EPROTO}, /* quotation mark */
    /* digits, punctuation and symbols of other scripts and blocks are no letters */
    {"name_birth", "Jansen\xe2\x82\xac|Jan|1990-01-01", NULL, KB_EPROTO},         /* euro sign */
    {"name_birth", "Jansen\xd9\xa1|Jan|1990-01-01", NULL, KB_EPROTO},             /* Arabic-Indic digit one */
    {"name_birth", "Jansen|Jan\xdb\xb5|1990-01-01", NULL, KB_EPROTO},             /* Persian digit five */
    {"name_birth", "Jansen\xef\xbc\x91|Jan|1990-01-01", NULL, KB_EPROTO},         /* fullwidth digit one */
    {"name_birth", "Jansen\xe0\xa5\xa7|Jan|1990-01-01", NULL, KB_EPROTO},         /* Devanagari digit one */
    {"name_birth", "Jansen\xe0\xb9\x91|Jan|1990-01-01", NULL, KB_EPROTO},         /* Thai digit one */
    {"name_birth", "\xd9\x85\xd8\xad\xd9\x85\xd8\xaf\xd8\x8c|x|1990-01-01", NULL, KB_EPROTO}, /* Arabic comma */
    {"name_birth", "Jansen\xe2\x84\x96|Jan|1990-01-01", NULL, KB_EPROTO},         /* numero sign */
    {"name_birth", "Jansen\xe2\x91\xa0|Jan|1990-01-01", NULL, KB_EPROTO},         /* circled digit one */
    {"name_birth", "\xe6\x9d\x8e\xe3\x80\x82|x|1990-01-01", NULL, KB_EPROTO},    /* ideographic full stop */
    {"name_birth", "Jansen\xef\xbc\x8c|Jan|1990-01-01", NULL, KB_EPROTO},         /* fullwidth comma */
    {"name_birth", "Jansen\xee\x80\x80|Jan|1990-01-01", NULL, KB_EPROTO},         /* private use */
    {"name_birth", "Jansen\xf3\xb0\x80\x80|Jan|1990-01-01", NULL, KB_EPROTO},     /* private use, plane 15 */
    {"name_birth", "Jansen\xef\xbf\xbd|Jan|1990-01-01", NULL, KB_EPROTO},         /* replacement character */
    {"name_birth", "Jansen\xef\xb7\x90|Jan|1990-01-01", NULL, KB_EPROTO},         /* noncharacter U+FDD0 */
    {"name_birth", "Jansen\xf0\x9f\xbf\xbe|Jan|1990-01-01", NULL, KB_EPROTO},     /* noncharacter U+1FFFE */
    {"name_birth", "Jansen\xf0\x9f\x98\x80|Jan|1990-01-01", NULL, KB_EPROTO},     /* emoji */
    /* letters of every script stay: Chinese, the iteration mark of Japanese
     * names (佐々木), Glagolitic; the ideographic space separates */
    {"name_birth", "\xe4\xbd\x90\xe3\x80\x85\xe6\x9c\xa8|\xe8\x8a\xb1\xe5\xad\x90|1990-01-01",
     "\xe4\xbd\x90\xe3\x80\x85\xe6\x9c\xa8|\xe8\x8a\xb1\xe5\xad\x90|1990-01-01", KB_OK},
    {"name_birth", "\xe7\x8e\x8b|\xe5\xb0\x8f\xe3\x80\x80\xe6\x98\x8e|1990-01-01",
     "\xe7\x8e\x8b|\xe5\xb0\x8f \xe6\x98\x8e|1990-01-01", KB_OK},
    {"name_birth", "\xe2\xb0\x80\xe2\xb0\xb0|x|1990-01-01", "\xe2\xb0\x80\xe2\xb0\xb0|x|1990-01-01", KB_OK},
    /* phone */
    {"phone", "06-12345678", "+31612345678", KB_OK},
    {"phone", "+31 6 12345678", "+31612345678", KB_OK},
    {"phone", "+31 (0)6 1234 5678", "+31612345678", KB_OK},
    {"phone", "0031612345678", "+31612345678", KB_OK},
    {"phone", "+310612345678", "+31612345678", KB_OK},
    {"phone", "06.12.34.56.78", "+31612345678", KB_OK},
    {"phone", "(020) 123 4567", "+31201234567", KB_OK},
    {"phone", "0031 20 123 4567", "+31201234567", KB_OK},
    {"phone", "+44 (0)20 7946 0958", "+442079460958", KB_OK},
    {"phone", "+1 (212) 555-0100", "+12125550100", KB_OK},
    {"phone", "612345678", NULL, KB_EPROTO},
    {"phone", "+31 6 1234 5678 ext 12", NULL, KB_EPROTO},
    {"phone", "+3161234+5678", NULL, KB_EPROTO},
    {"phone", "+1234567", NULL, KB_EPROTO},
    {"phone", "+1234567890123456", NULL, KB_EPROTO},
    {"phone", "000612345678", NULL, KB_EPROTO},
    {"phone", "0", NULL, KB_EPROTO},
    {"phone", "", NULL, KB_EPROTO},
    /* types are exact */
    {"BSN", "123456782", NULL, KB_EINVAL},
    {"email", "a@example.org", NULL, KB_EINVAL},
    {"", "123456782", NULL, KB_EINVAL},
};

START_TEST(test_normalise)
{
    char out[KB_SUBJECT_NORMALISED_MAX];
    memset(out, 'x', sizeof out);
    int rc = kb_subject_normalise(s_rows[_i].type, s_rows[_i].value, out, sizeof out);
    ck_assert_msg(rc == s_rows[_i].rc, "row %d (%s): rc %d, expected %d (%s)", _i, s_rows[_i].type, rc,
                  s_rows[_i].rc, kb_last_error());
    if (s_rows[_i].want) {
        ck_assert_str_eq(out, s_rows[_i].want);
        /* normalising is idempotent */
        char again[KB_SUBJECT_NORMALISED_MAX];
        ck_assert_int_eq(kb_subject_normalise(s_rows[_i].type, out, again, sizeof again), KB_OK);
        ck_assert_str_eq(again, out);
    } else {
        ck_assert_str_eq(out, "");
        ck_assert_str_ne(kb_last_error(), "");
        /* the detail names the rule, never the identifier */
        if (strlen(s_rows[_i].value) >= 4)
            ck_assert_msg(strstr(kb_last_error(), s_rows[_i].value) == NULL, "row %d: detail repeats the value: %s",
                          _i, kb_last_error());
    }
}
END_TEST

START_TEST(test_normalise_limits)
{
    char out[KB_SUBJECT_NORMALISED_MAX];
    /* NULL arguments and buffers */
    ck_assert_int_eq(kb_subject_normalise(NULL, "123456782", out, sizeof out), KB_EINVAL);
    ck_assert_int_eq(kb_subject_normalise("bsn", NULL, out, sizeof out), KB_EINVAL);
    ck_assert_int_eq(kb_subject_normalise("bsn", "123456782", NULL, 10), KB_EINVAL);
    ck_assert_int_eq(kb_subject_normalise("bsn", "123456782", out, 0), KB_EINVAL);
    /* an out buffer one byte short, then just long enough */
    ck_assert_int_eq(kb_subject_normalise("bsn", "123456782", out, 9), KB_ETOOBIG);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(kb_subject_normalise("bsn", "123456782", out, 10), KB_OK);
    ck_assert_int_eq(kb_subject_normalise("phone", "0612345678", out, 12), KB_ETOOBIG);
    ck_assert_int_eq(kb_subject_normalise("phone", "0612345678", out, 13), KB_OK);
    ck_assert_str_eq(out, "+31612345678");
    /* KB_SUBJECT_VALUE_MAX bytes are accepted, one more is not */
    char value[KB_SUBJECT_VALUE_MAX + 2];
    const char *tail = "|b|2000-01-01";
    size_t head = KB_SUBJECT_VALUE_MAX - strlen(tail);
    memset(value, 'a', head);
    memcpy(value + head, tail, strlen(tail) + 1);
    ck_assert_uint_eq(strlen(value), KB_SUBJECT_VALUE_MAX);
    ck_assert_int_eq(kb_subject_normalise("name_birth", value, out, sizeof out), KB_OK);
    memmove(value + 1, value, strlen(value) + 1);
    ck_assert_int_eq(kb_subject_normalise("name_birth", value, out, sizeof out), KB_ETOOBIG);
}
END_TEST

/* ------------------------------------------------------------ known answers */

/* docs/SUBJECT_KEYS.md's test vectors, computed by tests/unit/subject_ref.py. */
static const struct {
    const char *type;  /* identifier type */
    const char *value; /* input */
    const char *key;   /* HMAC-SHA256 under s_test_key, hex */
} s_vectors[] = {
    {"bsn", "123456782", "b11e4050c5ab98de07a3c6ceab179d3c8d0d3792f56d4a9d9ec1b4b4a48b6991"},
    {"bsn", "1234.56.782", "b11e4050c5ab98de07a3c6ceab179d3c8d0d3792f56d4a9d9ec1b4b4a48b6991"},
    {"bsn", "111222333", "2bb921a8cce108350ded58f13de9cbd2b5a47c827d730928183a5a1eb78879a5"},
    {"vnummer", "12 3456 7890", "da1b2adefe63e261c8b765d6611612891abdac3fbadd0032285652321c5913bd"},
    {"document", "nw-92 bf1 k3", "1995a149c15efebda0b5f5e9d287b2ae6f400efdc0742df4120d4290b91245ea"},
    {"name_birth", "Jansen|Jan|1990-01-01", "cae45abf5db0ad6f9c7c45309d54d92552935782e21ef67ac6b1dd86e5ceba52"},
    {"name_birth", "\xc3\x87" "elik-\xc3\x96zt\xc3\xbcrk | Ay\xc5\x9f" "e  Nur |2009-03-14",
     "df8bbdc603f2cee663c884bc550b294eafce275ec94488612c4c2438ebd47f64"},
    {"name_birth", "van der Berg|Anne-Marie|2001-12-31",
     "34a78ef2084308b319727bca7eb1f2b4007f927d7eabf83d9079847e7fdea7c2"},
    {"name_birth", "\xc5\x81ukasiewicz|J\xc3\xb3zef|1978-06-05",
     "bbaaa9b87065b4f07b1036b5f89c3a5a5598c1739890e8ac31ddd273f7cbcaf3"},
    {"name_birth", "O'Brien|Se\xc3\xa1n|1995-02-28", "de369db1c9eb4688a4f788e50e5b0d29f39adcb06236bbb686ecc0fb89c6f20b"},
    {"name_birth", "\xc4\xb2sselmeer|Ruth|2000-02-29", "ed1ee97b3e6dd22a258704436e8acf20fe0e0c0c7e3b1d3e0a2cf86721f7d46f"},
    {"name_birth", "\xc8\x98tef\xc4\x83nescu|Ioana|2007-07-01",
     "a4ff03ff4a2359f9e57537791b2185bb6e4af77d84fbac9f493b09a044e69bdf"},
    {"name_birth", "\xd0\x98\xd0\x92\xd0\x90\xd0\x9d\xd0\x9e\xd0\x92\xd0\x90|\xd0\x9c\xd0\xb0\xd1\x80\xd0\xb8\xd1\x8f|"
                   "1999-09-09",
     "e2e4791c2df409008a46a5a972ae111c86c71ae1265ba488c34be91859f066fb"},
    {"phone", "06-12345678", "508a66e4133151ed5fcd2ea3c2b0773a2e0d7f7e0ee8d077f3c64581a5437fd8"},
    {"phone", "+31 (0)6 1234 5678", "508a66e4133151ed5fcd2ea3c2b0773a2e0d7f7e0ee8d077f3c64581a5437fd8"},
    {"phone", "0031 20 123 4567", "fa879aab1c7683e1765b7c2578c8de09daa3df07e1929f5d0868ff50136f650f"},
    {"phone", "+44 (0)20 7946 0958", "50333803c22b60a0c386b729e8c69f2125d0036d45cbfcec383e746165a37709"},
};

START_TEST(test_known_answer)
{
    uint8_t key[32];
    char hex[65];
    ck_assert_int_eq(kb_subject_key(s_test_key, s_vectors[_i].type, s_vectors[_i].value, key), KB_OK);
    kb_hex(key, sizeof key, hex);
    ck_assert_str_eq(hex, s_vectors[_i].key);
}
END_TEST

START_TEST(test_key_separation)
{
    uint8_t a[32], b[32], other_key[KB_CHAIN_KEY_LEN];
    /* the same digits as another type give another key: the type is hashed */
    ck_assert_int_eq(kb_subject_key(s_test_key, "bsn", "123456782", a), KB_OK);
    ck_assert_int_eq(kb_subject_key(s_test_key, "document", "123456782", b), KB_OK);
    ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
    /* another chain, another key */
    memcpy(other_key, s_test_key, sizeof other_key);
    other_key[0] ^= 1;
    ck_assert_int_eq(kb_subject_key(other_key, "bsn", "123456782", b), KB_OK);
    ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
    /* refusals pass through; the output is not left half written */
    memset(b, 0xAA, sizeof b);
    ck_assert_int_eq(kb_subject_key(s_test_key, "bsn", "123456789", b), KB_EPROTO);
    ck_assert_int_eq(kb_subject_key(s_test_key, "nope", "123456782", b), KB_EINVAL);
    ck_assert_int_eq(kb_subject_key(NULL, "bsn", "123456782", b), KB_EINVAL);
    ck_assert_int_eq(kb_subject_key(s_test_key, "bsn", "123456782", NULL), KB_EINVAL);
}
END_TEST

/* ------------------------------------------------------------ independent reference */

static char s_root[PATH_MAX]; /* the mkdtemp directory of the running tcase */

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void s_root_setup(void)
{
    snprintf(s_root, sizeof s_root, "%s/kbtest-subject.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(s_root));
}

static void s_root_teardown(void)
{
    nftw(s_root, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *s_path(char *buf, size_t len, const char *name)
{
    ck_assert_int_eq(kb_fmt(buf, len, "%s/%s", s_root, name), KB_OK);
    return buf;
}

/* Start subject_ref.py with args; its stdout is the returned stream. */
static FILE *s_reference(const char *args)
{
    const char *srcdir = getenv("KB_SRCDIR");
    char cmd[PATH_MAX + 512];
    if (!srcdir || !*srcdir)
        srcdir = ".";
    ck_assert_msg(strchr(srcdir, '\'') == NULL, "KB_SRCDIR must not contain a quote");
    ck_assert_int_eq(kb_fmt(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/unit/subject_ref.py' %s", srcdir, args),
                     KB_OK);
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    return p;
}

static void s_reference_done(FILE *p)
{
    int st = pclose(p);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "subject_ref.py failed (status %d)", st);
}

/* Every row of the table with a known type: the same verdict, normalised
 * form and key as the reference. */
START_TEST(test_python_rows)
{
    char path[PATH_MAX], args[PATH_MAX + 16];
    FILE *f = fopen(s_path(path, sizeof path, "rows.txt"), "w");
    ck_assert_ptr_nonnull(f);
    size_t sent[ROWS(s_rows)], n_sent = 0;
    for (size_t i = 0; i < ROWS(s_rows); i++) {
        if (s_rows[i].rc == KB_EINVAL)
            continue; /* the reference knows only the five types */
        char hex[2 * KB_SUBJECT_VALUE_MAX + 1];
        kb_hex((const uint8_t *)s_rows[i].value, strlen(s_rows[i].value), hex);
        fprintf(f, "%s %s\n", s_rows[i].type, hex);
        sent[n_sent++] = i;
    }
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_msg(strchr(path, '\'') == NULL, "TMPDIR must not contain a quote");
    ck_assert_int_eq(kb_fmt(args, sizeof args, "rows '%s'", path), KB_OK);
    FILE *p = s_reference(args);
    char line[1024];
    size_t got = 0;
    while (fgets(line, sizeof line, p)) {
        ck_assert_uint_lt(got, n_sent);
        line[strcspn(line, "\n")] = '\0';
        size_t i = sent[got++];
        char norm[KB_SUBJECT_NORMALISED_MAX], norm_hex[2 * KB_SUBJECT_NORMALISED_MAX + 1], key_hex[65], want[1024];
        uint8_t key[32];
        int rc = kb_subject_key(s_test_key, s_rows[i].type, s_rows[i].value, key);
        if (rc != KB_OK) {
            ck_assert_msg(strcmp(line, "error") == 0, "row %zu: C refuses (%s), reference says %s", i,
                          kb_last_error(), line);
            continue;
        }
        ck_assert_int_eq(kb_subject_normalise(s_rows[i].type, s_rows[i].value, norm, sizeof norm), KB_OK);
        kb_hex((const uint8_t *)norm, strlen(norm), norm_hex);
        kb_hex(key, sizeof key, key_hex);
        ck_assert_int_eq(kb_fmt(want, sizeof want, "ok %s %s", norm_hex, key_hex), KB_OK);
        ck_assert_msg(strcmp(line, want) == 0, "row %zu: C '%s' %s, reference %s", i, norm, key_hex, line);
    }
    s_reference_done(p);
    ck_assert_uint_eq(got, n_sent);
}
END_TEST

/* Each code point C of Latin-1, Latin Extended-A/B, IPA, combining marks,
 * Greek, Cyrillic, Arabic, the Indic scripts, General Punctuation up to
 * Glagolitic, CJK Symbols and Punctuation, the Halfwidth and Fullwidth
 * Forms, the emoji blocks, the edges of private use and noncharacters, in
 * the family name "a" C "b": C's tables against Unicode's decomposition,
 * case mapping and categories as the reference uses them. */
START_TEST(test_python_codepoints)
{
    FILE *p = s_reference("codepoints");
    char line[256];
    unsigned n = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        unsigned cp = 0;
        char want[200];
        ck_assert_msg(sscanf(line, "%x %199s", &cp, want) == 2, "reference line '%s'", line);
        char in[64], out[KB_SUBJECT_NORMALISED_MAX], got[2 * KB_SUBJECT_NORMALISED_MAX + 1];
        uint8_t utf8[4];
        size_t len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (len == 1) {
            utf8[0] = (uint8_t)cp;
        } else {
            static const uint8_t lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
            for (size_t k = len - 1; k > 0; k--)
                utf8[k] = (uint8_t)(0x80 | ((cp >> (6 * (len - 1 - k))) & 0x3F));
            utf8[0] = (uint8_t)(lead[len] | (cp >> (6 * (len - 1))));
        }
        ck_assert_int_eq(kb_fmt(in, sizeof in, "a%.*sb|c|2000-01-01", (int)len, (const char *)utf8), KB_OK);
        int rc = kb_subject_normalise("name_birth", in, out, sizeof out);
        if (rc != KB_OK) {
            memcpy(got, "error", sizeof "error");
        } else {
            size_t fam = strcspn(out, "|");
            kb_hex((const uint8_t *)out, fam, got);
        }
        ck_assert_msg(strcmp(got, want) == 0, "U+%04X: C %s (%s), reference %s", cp, got,
                      rc == KB_OK ? out : kb_last_error(), want);
        n++;
    }
    s_reference_done(p);
    ck_assert_uint_gt(n, 11000);
}
END_TEST

/* ------------------------------------------------------------ chain key files */

static void s_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    ck_assert_int_eq(close(fd), 0);
}

START_TEST(test_chain_key_file)
{
    char path[PATH_MAX];
    uint8_t key[KB_CHAIN_KEY_LEN], filler[64];
    memset(filler, 7, sizeof filler);
    s_path(path, sizeof path, "chain.key");

    s_write_file(path, s_test_key, KB_CHAIN_KEY_LEN, 0600);
    ck_assert_int_eq(kb_subject_load_chain_key(path, key), KB_OK);
    ck_assert_mem_eq(key, s_test_key, KB_CHAIN_KEY_LEN);
    s_write_file(path, s_test_key, KB_CHAIN_KEY_LEN, 0400);
    ck_assert_int_eq(kb_subject_load_chain_key(path, key), KB_OK);

    static const struct {
        size_t len; /* bytes in the file */
        mode_t mode; /* its mode */
        int rc;      /* expected */
        const char *detail; /* part of the detail */
    } bad[] = {
        {KB_CHAIN_KEY_LEN, 0640, KB_EIO, "chmod 600"},
        {KB_CHAIN_KEY_LEN, 0604, KB_EIO, "mode 0604"},
        {KB_CHAIN_KEY_LEN - 1, 0600, KB_EPROTO, "31 bytes"},
        {KB_CHAIN_KEY_LEN + 1, 0600, KB_EPROTO, "33 bytes"},
        {64, 0600, KB_EPROTO, "64 bytes"},
        {0, 0600, KB_EPROTO, "0 bytes"},
    };
    for (size_t i = 0; i < ROWS(bad); i++) {
        s_write_file(path, filler, bad[i].len, bad[i].mode);
        ck_assert_int_eq(kb_subject_load_chain_key(path, key), bad[i].rc);
        ck_assert_msg(strstr(kb_last_error(), bad[i].detail) != NULL, "case %zu: %s", i, kb_last_error());
    }
    /* a FIFO in its place is refused at once, not waited on */
    unlink(path);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(kb_subject_load_chain_key(path, key), KB_EIO);
    ck_assert_msg(strstr(kb_last_error(), "not a regular file") != NULL, "%s", kb_last_error());
    unlink(path);
    ck_assert_int_eq(kb_subject_load_chain_key(s_path(path, sizeof path, "missing.key"), key), KB_ENOTFOUND);
    ck_assert_int_eq(kb_subject_load_chain_key(s_root, key), KB_EIO); /* a directory */
    ck_assert_int_eq(kb_subject_load_chain_key("", key), KB_EINVAL);
    ck_assert_int_eq(kb_subject_load_chain_key(NULL, key), KB_EINVAL);
}
END_TEST

/* A chain key owned by another user (who could change it) is refused;
 * registered only when run as root, who alone can give a file away. */
START_TEST(test_chain_key_of_another_user)
{
    char path[PATH_MAX];
    uint8_t key[KB_CHAIN_KEY_LEN];
    s_path(path, sizeof path, "chain.key");
    s_write_file(path, s_test_key, KB_CHAIN_KEY_LEN, 0600);
    ck_assert_int_eq(chown(path, 4242, (gid_t)-1), 0);
    ck_assert_int_eq(kb_subject_load_chain_key(path, key), KB_EIO);
    ck_assert_msg(strstr(kb_last_error(), "owned by uid 4242") != NULL, "%s", kb_last_error());
}
END_TEST

/* ------------------------------------------------------------ SDK */

START_TEST(test_sdk)
{
    char path[PATH_MAX], hex[65];
    s_write_file(s_path(path, sizeof path, "chain.key"), s_test_key, KB_CHAIN_KEY_LEN, 0600);

    ck_assert_int_eq(ketenbus_subject_key(path, "bsn", "1234.56.782", hex), KETENBUS_OK);
    ck_assert_str_eq(hex, s_vectors[0].key);
    ck_assert_int_eq(ketenbus_subject_key(path, "bsn", "123456789", hex), KETENBUS_EPROTO);
    ck_assert_str_eq(hex, "");
    ck_assert_msg(strstr(ketenbus_last_error(), "elfproef") != NULL, "%s", ketenbus_last_error());
    ck_assert_int_eq(ketenbus_subject_key(path, "passport", "NW92BF1K3", hex), KETENBUS_EINVAL);
    ck_assert_int_eq(ketenbus_subject_key(NULL, "bsn", "123456782", hex), KETENBUS_EINVAL);
    ck_assert_int_eq(ketenbus_subject_key(path, "bsn", "123456782", NULL), KETENBUS_EINVAL);
    ck_assert_int_eq(ketenbus_subject_key(s_path(path, sizeof path, "none.key"), "bsn", "123456782", hex),
                     KETENBUS_ENOTFOUND);
    s_path(path, sizeof path, "chain.key");

    ketenbus_msg_t *m = ketenbus_msg_new(KETENBUS_KIND_SIGNAL);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(ketenbus_msg_add_subject(m, path, "bsn", "123456782"), KETENBUS_OK);
    /* the same person again, written differently: not added twice */
    ck_assert_int_eq(ketenbus_msg_add_subject(m, path, "bsn", "1234 56 782"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_add_subject(m, path, "phone", "06-12345678"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_add_subject(m, path, "phone", "06-1234"), KETENBUS_EPROTO);
    ck_assert_int_eq(ketenbus_msg_add_subject(NULL, path, "bsn", "123456782"), KETENBUS_EINVAL);
    char *json = ketenbus_msg_to_json(m);
    ck_assert_ptr_nonnull(json);
    char want[256];
    ck_assert_int_eq(kb_fmt(want, sizeof want, "\"subject_keys\":[\"%s\",\"%s\"]", s_vectors[0].key,
                            s_vectors[13].key),
                     KB_OK);
    ck_assert_msg(strstr(json, want) != NULL, "%s", json);
    free(json);

    /* at most 32 keys per envelope */
    for (int i = 0; i < 30; i++) {
        char phone[32];
        ck_assert_int_eq(kb_fmt(phone, sizeof phone, "0612345%03d", i), KB_OK);
        ck_assert_int_eq(ketenbus_msg_add_subject(m, path, "phone", phone), KETENBUS_OK);
    }
    ck_assert_int_eq(ketenbus_msg_add_subject(m, path, "phone", "0698765432"), KETENBUS_ETOOBIG);
    ck_assert_int_eq(ketenbus_msg_add_subject(m, path, "bsn", "123456782"), KETENBUS_OK); /* present already */
    ketenbus_msg_destroy(&m);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("subject");
    TCase *tc = tcase_create("normalise");
    tcase_add_loop_test(tc, test_normalise, 0, ROWS(s_rows));
    tcase_add_test(tc, test_normalise_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("keys");
    tcase_add_loop_test(tc, test_known_answer, 0, ROWS(s_vectors));
    tcase_add_test(tc, test_key_separation);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_checked_fixture(tc, s_root_setup, s_root_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_python_rows);
    tcase_add_test(tc, test_python_codepoints);
    tcase_add_test(tc, test_chain_key_file);
    if (geteuid() == 0)
        tcase_add_test(tc, test_chain_key_of_another_user);
    else
        fprintf(stderr, "check_subject: not run without root: a chain key owned by another user\n");
    tcase_add_test(tc, test_sdk);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
