/*
 * check_note.c - tests of kb_note: signed checkpoints (C2SP signed-note,
 * tlog-checkpoint) with Ed25519.
 *
 * Known answers from outside this code: the example note and key of Go's
 * golang.org/x/mod/sumdb/note (PeterNeumann), which kb_note must reproduce
 * byte for byte, and a checkpoint vector whose signature was made with the
 * openssl command line and whose key id with Python's hashlib. The real
 * `openssl pkeyutl -verify` checks an exported checkpoint. A table of
 * malformed notes covers the parser's refusals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <check.h>
#include <openssl/evp.h>

#include "kb_error.h"
#include "kb_keys.h"
#include "kb_merkle.h"
#include "kb_note.h"
#include "kb_util.h"
#include "kb_test.h"

#define ROWS(a) (int)(sizeof(a) / sizeof((a)[0]))
#define EM "\xe2\x80\x94" /* U+2014 EM DASH */

/* The Go example key: its signer and verifier keys (0x01 || key, base64). */
#define PN_NAME "PeterNeumann"
#define PN_SKEY "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
#define PN_VKEY "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
#define PN_KEY_ID 0xc74f20a3u
#define GO_TEXT                                                                                                       \
    "If you think cryptography is the answer to your problem,\n"                                                       \
    "then you don't know what your problem is.\n"
#define GO_NOTE                                                                                                       \
    GO_TEXT "\n" EM " PeterNeumann "                                                                                  \
            "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
/* The same text signed again by a second key, from the Go documentation. */
#define GO_NOTE_TWO_KEYS                                                                                              \
    GO_NOTE EM " EnochRoot "                                                                                          \
            "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

/* A checkpoint of the tree of leaves "leaf-0" .. "leaf-69" (root as
 * tests/unit/merkle_ref.py computes it) signed by the Go example key with
 * `openssl pkeyutl -sign -rawin`. */
#define CP_ORIGIN "example.com/ketenbus-test"
#define CP_SIZE 70
#define CP_ROOT_HEX "50abcaf126a2e1629ddf4aa6dd4ef05c9302cd11144dd29c6149fc8ed907565d"
#define CP_BODY CP_ORIGIN "\n70\nUKvK8Sai4WKd30qm3U7wXJMCzREUTdKcYUn8jtkHVl0=\n"
#define CP_SIG "x08go5y4+9WD8bqcmkH6HtyjCE51tMzd7tfC/tewDC3iYr0w5K/QEdKO8HgxCGYJevDykx1w10QD7+dF4+qNYqoxowQ="
#define CP_NOTE CP_BODY "\n" EM " PeterNeumann " CP_SIG "\n"

/* ------------------------------------------------------------ helpers */

/* Ed25519 key from a signed-note key string (base64 of 0x01 || 32 bytes). */
static EVP_PKEY *s_note_key(const char *b64, int private)
{
    uint8_t raw[40];
    ck_assert_int_eq(EVP_DecodeBlock(raw, (const uint8_t *)b64, (int)strlen(b64)), 33);
    ck_assert_int_eq(raw[0], KB_NOTE_ALG_ED25519);
    EVP_PKEY *k = private ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw + 1, 32)
                          : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw + 1, 32);
    ck_assert_ptr_nonnull(k);
    return k;
}

static EVP_PKEY *s_new_key(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ck_assert_ptr_nonnull(k);
    return k;
}

static void s_root_70(uint8_t root[KB_MERKLE_HASH_LEN])
{
    kb_merkle_acc_t *acc = kb_merkle_acc_new();
    ck_assert_ptr_nonnull(acc);
    for (int i = 0; i < CP_SIZE; i++) {
        char leaf[16];
        int n = snprintf(leaf, sizeof leaf, "leaf-%d", i);
        ck_assert_int_eq(kb_merkle_acc_add(acc, leaf, (size_t)n), KB_OK);
    }
    ck_assert_int_eq(kb_merkle_acc_root(acc, root), KB_OK);
    kb_merkle_acc_destroy(&acc);
    uint8_t want[KB_MERKLE_HASH_LEN];
    ck_assert_int_eq(kb_unhex(CP_ROOT_HEX, want, sizeof want), KB_OK);
    ck_assert_mem_eq(root, want, sizeof want);
}

/* ------------------------------------------------------------ known answers */

START_TEST(test_go_vector)
{
    EVP_PKEY *priv = s_note_key(PN_SKEY, 1), *pub = s_note_key(PN_VKEY, 0);
    uint32_t id = 0;
    ck_assert_int_eq(kb_note_key_id(PN_NAME, priv, &id), KB_OK);
    ck_assert_uint_eq(id, PN_KEY_ID);
    ck_assert_int_eq(kb_note_key_id(PN_NAME, pub, &id), KB_OK);
    ck_assert_uint_eq(id, PN_KEY_ID);

    char *note = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_note_sign_text(GO_TEXT, strlen(GO_TEXT), PN_NAME, priv, &note, &len), KB_OK);
    ck_assert_str_eq(note, GO_NOTE);
    ck_assert_uint_eq(len, strlen(GO_NOTE));
    free(note);

    size_t text_len = 0;
    ck_assert_int_eq(kb_note_verify_text(GO_NOTE, strlen(GO_NOTE), PN_NAME, pub, &text_len), KB_OK);
    ck_assert_uint_eq(text_len, strlen(GO_TEXT));
    /* a second key's line is ignored, ours still found */
    ck_assert_int_eq(kb_note_verify_text(GO_NOTE_TWO_KEYS, strlen(GO_NOTE_TWO_KEYS), PN_NAME, pub, NULL), KB_OK);
    /* one changed letter */
    char bad[] = GO_NOTE;
    char *p = strstr(bad, "cryptography");
    ck_assert_ptr_nonnull(p);
    p[11] = 'Y';
    ck_assert_int_eq(kb_note_verify_text(bad, strlen(bad), PN_NAME, pub, NULL), KB_ECRYPTO);
    /* not a checkpoint */
    kb_note_checkpoint_t cp;
    ck_assert_int_eq(kb_note_verify(GO_NOTE, strlen(GO_NOTE), PN_NAME, pub, &cp), KB_EPROTO);
    EVP_PKEY_free(priv);
    EVP_PKEY_free(pub);
}
END_TEST

START_TEST(test_checkpoint_vector)
{
    EVP_PKEY *priv = s_note_key(PN_SKEY, 1), *pub = s_note_key(PN_VKEY, 0);
    uint8_t root[KB_MERKLE_HASH_LEN];
    s_root_70(root);

    char body[512];
    size_t body_len = 0;
    ck_assert_int_eq(kb_note_body(CP_ORIGIN, CP_SIZE, root, body, sizeof body, &body_len), KB_OK);
    ck_assert_str_eq(body, CP_BODY);
    ck_assert_uint_eq(body_len, strlen(CP_BODY));

    char *note = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_note_sign(CP_ORIGIN, CP_SIZE, root, PN_NAME, priv, &note, &len), KB_OK);
    ck_assert_str_eq(note, CP_NOTE);
    free(note);

    kb_note_checkpoint_t cp;
    ck_assert_int_eq(kb_note_verify(CP_NOTE, strlen(CP_NOTE), PN_NAME, pub, &cp), KB_OK);
    ck_assert_str_eq(cp.origin, CP_ORIGIN);
    ck_assert_uint_eq(cp.size, CP_SIZE);
    ck_assert_mem_eq(cp.root, root, sizeof root);
    ck_assert_uint_eq(cp.body_len, strlen(CP_BODY));
    ck_assert_uint_eq(cp.n_sigs, 1);
    ck_assert_str_eq(cp.sigs[0].name, PN_NAME);
    ck_assert_uint_eq(cp.sigs[0].key_id, PN_KEY_ID);
    ck_assert_uint_eq(cp.sigs[0].sig_len, KB_NOTE_ED25519_LEN);
    EVP_PKEY_free(priv);
    EVP_PKEY_free(pub);
}
END_TEST

/* ------------------------------------------------------------ round trips */

static const struct {
    const char *origin; /* log name */
    uint64_t size;      /* tree size */
} s_roundtrip_rows[] = {
    {"ketenbus.nl/audit/nl-mensenhandel", 0},
    {"ketenbus.nl/audit/nl-mensenhandel", 1},
    {"ketenbus.nl/audit/nl-mensenhandel", 1234567890123ull},
    {"ketenbus.nl/audit/nl-mensenhandel", UINT64_MAX},
    {"ketenbus.nl/audit/ketenpartners-\xc3\xbc", 42},
};

START_TEST(test_roundtrip)
{
    EVP_PKEY *key = s_new_key(), *other = s_new_key();
    uint8_t root[KB_MERKLE_HASH_LEN];
    for (size_t i = 0; i < sizeof root; i++)
        root[i] = (uint8_t)(i * 13 + (size_t)_i);
    char *note = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_note_sign(s_roundtrip_rows[_i].origin, s_roundtrip_rows[_i].size, root, "ketenbus-broker", key,
                                  &note, &len),
                     KB_OK);
    kb_note_checkpoint_t cp;
    ck_assert_int_eq(kb_note_parse(note, len, &cp), KB_OK);
    ck_assert_str_eq(cp.origin, s_roundtrip_rows[_i].origin);
    ck_assert_uint_eq(cp.size, s_roundtrip_rows[_i].size);
    ck_assert_mem_eq(cp.root, root, sizeof root);
    ck_assert_int_eq(kb_note_verify(note, len, "ketenbus-broker", key, &cp), KB_OK);
    /* another key, or the right key under another name: no signature */
    ck_assert_int_eq(kb_note_verify(note, len, "ketenbus-broker", other, &cp), KB_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "no signature by ketenbus-broker+"));
    ck_assert_int_eq(kb_note_verify(note, len, "ketenbus-broker2", key, &cp), KB_ECRYPTO);
    ck_assert_int_eq(kb_note_verify(note, len, "bad name", key, &cp), KB_EINVAL);
    free(note);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}
END_TEST

START_TEST(test_sign_errors)
{
    EVP_PKEY *key = s_new_key(), *pub = s_note_key(PN_VKEY, 0);
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    ck_assert_ptr_nonnull(rsa);
    uint8_t root[KB_MERKLE_HASH_LEN] = {0};
    char *note = NULL;
    char body[64];
    uint32_t id;
    ck_assert_int_eq(kb_note_sign("", 1, root, "k", key, &note, NULL), KB_EINVAL);
    ck_assert_int_eq(kb_note_sign("a b", 1, root, "k", key, &note, NULL), KB_EINVAL);
    ck_assert_int_eq(kb_note_sign("a+b", 1, root, "k", key, &note, NULL), KB_EINVAL);
    ck_assert_int_eq(kb_note_sign("a\nb", 1, root, "k", key, &note, NULL), KB_EINVAL);
    ck_assert_int_eq(kb_note_sign("a\xe2\x80\x83" "b", 1, root, "k", key, &note, NULL), KB_EINVAL); /* EM SPACE */
    ck_assert_int_eq(kb_note_sign("o", 1, root, "", key, &note, NULL), KB_EINVAL);
    ck_assert_int_eq(kb_note_sign("o", 1, root, "k+1", key, &note, NULL), KB_EINVAL);
    ck_assert_int_eq(kb_note_sign("o", 1, root, "k", rsa, &note, NULL), KB_ECRYPTO);
    ck_assert_int_eq(kb_note_sign("o", 1, root, "k", pub, &note, NULL), KB_ECRYPTO); /* public only */
    ck_assert_int_eq(kb_note_key_id("k", rsa, &id), KB_ECRYPTO);
    ck_assert_int_eq(kb_note_key_id(NULL, key, &id), KB_EINVAL);
    ck_assert_int_eq(kb_note_body("o", 1, root, body, 20, NULL), KB_ETOOBIG);
    ck_assert_int_eq(kb_note_sign_text("no newline", 10, "k", key, &note, NULL), KB_EINVAL);
    ck_assert_int_eq(kb_note_sign_text("", 0, "k", key, &note, NULL), KB_EINVAL);
    ck_assert_int_eq(kb_note_sign_text("tab\there\n", 10, "k", key, &note, NULL), KB_EINVAL);
    char *big = malloc(KB_NOTE_MAX_LEN + 2);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', KB_NOTE_MAX_LEN);
    big[KB_NOTE_MAX_LEN - 1] = '\n';
    ck_assert_int_eq(kb_note_sign_text(big, KB_NOTE_MAX_LEN, "k", key, &note, NULL), KB_ETOOBIG);
    free(big);
    char origin[KB_NOTE_MAX_ORIGIN + 2];
    memset(origin, 'o', sizeof origin - 1);
    origin[sizeof origin - 1] = '\0';
    ck_assert_int_eq(kb_note_sign(origin, 1, root, "k", key, &note, NULL), KB_EINVAL);
    origin[KB_NOTE_MAX_ORIGIN] = '\0'; /* exactly the longest */
    size_t len = 0;
    ck_assert_int_eq(kb_note_sign(origin, UINT64_MAX, root, "k", key, &note, &len), KB_OK);
    kb_note_checkpoint_t cp;
    ck_assert_int_eq(kb_note_verify(note, len, "k", key, &cp), KB_OK);
    ck_assert_uint_eq(strlen(cp.origin), KB_NOTE_MAX_ORIGIN);
    free(note);
    ck_assert_int_eq(kb_note_parse(NULL, 0, &cp), KB_EINVAL);
    ck_assert_int_eq(kb_note_parse(CP_NOTE, strlen(CP_NOTE), NULL), KB_EINVAL);
    EVP_PKEY_free(key);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(rsa);
}
END_TEST

/* ------------------------------------------------------------ malformed notes */

enum { MOD_REPLACE, MOD_WHOLE, MOD_HUGE, MOD_SIGS };

static const struct {
    const char *what; /* the defect */
    int mod;          /* MOD_REPLACE: first `from` in CP_NOTE becomes `to`; MOD_WHOLE: the note is `to` */
    const char *from; /* text replaced */
    const char *to;   /* replacement (to_len bytes if to_len, else a string) */
    size_t to_len;    /* for replacements with a NUL byte */
    int parse_rc;     /* kb_note_parse */
    int verify_rc;    /* kb_note_verify with the Go example key */
} s_bad_rows[] = {
    {"intact", MOD_REPLACE, "", "", 0, KB_OK, KB_OK},
    {"empty note", MOD_WHOLE, NULL, "", 0, KB_EPROTO, KB_EPROTO},
    {"only an empty line", MOD_WHOLE, NULL, "\n\n", 0, KB_EPROTO, KB_EPROTO},
    {"no empty line", MOD_REPLACE, "=\n\n" EM, "=\n" EM, 0, KB_EPROTO, KB_EPROTO},
    {"no signature line", MOD_WHOLE, NULL, CP_BODY "\n", 0, KB_EPROTO, KB_EPROTO},
    {"missing final newline", MOD_REPLACE, "owQ=\n", "owQ=", 0, KB_EPROTO, KB_EPROTO},
    {"missing newline after the root", MOD_REPLACE, "Vl0=\n\n", "Vl0=\n", 0, KB_EPROTO, KB_EPROTO},
    {"text after the signatures", MOD_REPLACE, "owQ=\n", "owQ=\nthanks!\n", 0, KB_EPROTO, KB_EPROTO},
    {"extension line in the checkpoint", MOD_REPLACE, "Vl0=\n", "Vl0=\nextra\n", 0, KB_EPROTO, KB_EPROTO},
    {"a fourth line after an empty one", MOD_REPLACE, "Vl0=\n", "Vl0=\n\nextra\n", 0, KB_EPROTO, KB_EPROTO},
    {"empty origin", MOD_REPLACE, CP_ORIGIN "\n", "\n", 0, KB_EPROTO, KB_EPROTO},
    {"space in origin", MOD_REPLACE, "ketenbus-test", "ketenbus test", 0, KB_EPROTO, KB_EPROTO},
    {"tab in origin", MOD_REPLACE, "example.com", "example\t.com", 0, KB_EPROTO, KB_EPROTO},
    {"NUL byte", MOD_REPLACE, "\n70\n", "\n7\0\n", 4, KB_EPROTO, KB_EPROTO},
    {"invalid UTF-8", MOD_REPLACE, "example", "ex\xff" "mple", 0, KB_EPROTO, KB_EPROTO},
    {"CRLF line end", MOD_REPLACE, "\n70\n", "\n70\r\n", 0, KB_EPROTO, KB_EPROTO},
    {"size with a leading zero", MOD_REPLACE, "\n70\n", "\n070\n", 0, KB_EPROTO, KB_EPROTO},
    {"size with a sign", MOD_REPLACE, "\n70\n", "\n+70\n", 0, KB_EPROTO, KB_EPROTO},
    {"negative size", MOD_REPLACE, "\n70\n", "\n-70\n", 0, KB_EPROTO, KB_EPROTO},
    {"size with a space", MOD_REPLACE, "\n70\n", "\n 70\n", 0, KB_EPROTO, KB_EPROTO},
    {"empty size", MOD_REPLACE, "\n70\n", "\n\n", 0, KB_EPROTO, KB_EPROTO},
    {"size in hex", MOD_REPLACE, "\n70\n", "\n0x46\n", 0, KB_EPROTO, KB_EPROTO},
    {"size letter O", MOD_REPLACE, "\n70\n", "\n7O\n", 0, KB_EPROTO, KB_EPROTO},
    {"size 2^64", MOD_REPLACE, "\n70\n", "\n18446744073709551616\n", 0, KB_EPROTO, KB_EPROTO},
    {"size of 21 digits", MOD_REPLACE, "\n70\n", "\n100000000000000000000\n", 0, KB_EPROTO, KB_EPROTO},
    {"size 2^64-1, not signed", MOD_REPLACE, "\n70\n", "\n18446744073709551615\n", 0, KB_OK, KB_ECRYPTO},
    {"another size, not signed", MOD_REPLACE, "\n70\n", "\n71\n", 0, KB_OK, KB_ECRYPTO},
    {"root not base64", MOD_REPLACE, "UKvK", "UKv*", 0, KB_EPROTO, KB_EPROTO},
    {"root of 31 bytes", MOD_REPLACE, "Vl0=", "VQ==", 0, KB_EPROTO, KB_EPROTO},
    {"root of 33 bytes", MOD_REPLACE, "Vl0=", "Vl0A", 0, KB_EPROTO, KB_EPROTO},
    {"root without padding", MOD_REPLACE, "Vl0=", "Vl0", 0, KB_EPROTO, KB_EPROTO},
    {"root base64 not canonical", MOD_REPLACE, "Vl0=", "Vl1=", 0, KB_EPROTO, KB_EPROTO},
    {"root in URL-safe base64", MOD_REPLACE, "UKvK8Sai", "UKvK8S_i", 0, KB_EPROTO, KB_EPROTO},
    {"another root, not signed", MOD_REPLACE, "UKvK", "UKvL", 0, KB_OK, KB_ECRYPTO},
    {"hyphens for the em dash", MOD_REPLACE, EM " ", "-- ", 0, KB_EPROTO, KB_EPROTO},
    {"no space after the em dash", MOD_REPLACE, EM " ", EM, 0, KB_EPROTO, KB_EPROTO},
    {"empty key name", MOD_REPLACE, EM " PeterNeumann ", EM "  ", 0, KB_EPROTO, KB_EPROTO},
    {"key name with +", MOD_REPLACE, "PeterNeumann ", "Peter+Neumann ", 0, KB_EPROTO, KB_EPROTO},
    {"two spaces before the signature", MOD_REPLACE, "PeterNeumann ", "PeterNeumann  ", 0, KB_EPROTO, KB_EPROTO},
    {"space after the signature", MOD_REPLACE, "owQ=\n", "owQ= \n", 0, KB_EPROTO, KB_EPROTO},
    {"no signature after the name", MOD_REPLACE, " " CP_SIG, "", 0, KB_EPROTO, KB_EPROTO},
    {"signature not base64", MOD_REPLACE, "x08go5y4", "x08go5y*", 0, KB_EPROTO, KB_EPROTO},
    {"signature base64 not canonical", MOD_REPLACE, "owQ=", "owR=", 0, KB_EPROTO, KB_EPROTO},
    {"signature of 3 bytes", MOD_REPLACE, CP_SIG, "x08g", 0, KB_EPROTO, KB_EPROTO},
    {"signature of 2 bytes after the key id", MOD_REPLACE, CP_SIG, "x08go5y4", 0, KB_OK, KB_ECRYPTO},
    {"signature over 128 bytes", MOD_REPLACE, "owQ=",
     "owQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0,
     KB_EPROTO, KB_EPROTO},
    {"wrong key id", MOD_REPLACE, "x08g", "x08h", 0, KB_OK, KB_ECRYPTO},
    {"wrong key name", MOD_REPLACE, "PeterNeumann ", "PeterNeuman ", 0, KB_OK, KB_ECRYPTO},
    {"one bit of the signature", MOD_REPLACE, "x08go5y4+", "x08go5y5+", 0, KB_OK, KB_ECRYPTO},
    {"a witness line too", MOD_REPLACE, "owQ=\n", "owQ=\n" EM " witness.example AAAAAAAAAA==\n", 0, KB_OK, KB_OK},
    {"our line twice", MOD_REPLACE, "owQ=\n", "owQ=\n" EM " PeterNeumann " CP_SIG "\n", 0, KB_OK, KB_OK},
    {"our line twice, one bad", MOD_REPLACE, "owQ=\n",
     "owQ=\n" EM " PeterNeumann x08go5y4+9WD8bqcmkH6HtyjCE51tMzd7tfC/tewDC3iYr0w5K/QEdKO8HgxCGYJevDykx1w10QD7+dF4+qN"
     "YqoxowA=\n",
     0, KB_OK, KB_ECRYPTO},
    {"16 signatures", MOD_SIGS, NULL, NULL, 15, KB_OK, KB_OK},
    {"17 signatures", MOD_SIGS, NULL, NULL, 16, KB_EPROTO, KB_EPROTO},
    {"note over the size limit", MOD_HUGE, NULL, NULL, 0, KB_ETOOBIG, KB_ETOOBIG},
};

/* The note of row i (caller frees); *len its length. */
static char *s_bad_note(int i, size_t *len)
{
    const char *base = CP_NOTE;
    char *out = NULL;
    if (s_bad_rows[i].mod == MOD_WHOLE) {
        out = strdup(s_bad_rows[i].to);
        *len = strlen(out);
    } else if (s_bad_rows[i].mod == MOD_REPLACE) {
        const char *at = strstr(base, s_bad_rows[i].from);
        ck_assert_msg(at != NULL, "row %d: '%s' not in the note", i, s_bad_rows[i].from);
        size_t from_len = strlen(s_bad_rows[i].from);
        size_t to_len = s_bad_rows[i].to_len ? s_bad_rows[i].to_len : strlen(s_bad_rows[i].to);
        size_t head = (size_t)(at - base), tail = strlen(base) - head - from_len;
        out = malloc(head + to_len + tail + 1);
        ck_assert_ptr_nonnull(out);
        memcpy(out, base, head);
        memcpy(out + head, s_bad_rows[i].to, to_len);
        memcpy(out + head + to_len, at + from_len, tail + 1);
        *len = head + to_len + tail;
    } else if (s_bad_rows[i].mod == MOD_SIGS) {
        /* our signature plus to_len witness lines */
        const char *witness = EM " witness.example AAAAAAAAAA==\n";
        size_t n = s_bad_rows[i].to_len;
        out = malloc(strlen(base) + n * strlen(witness) + 1);
        ck_assert_ptr_nonnull(out);
        strcpy(out, base);
        for (size_t k = 0; k < n; k++)
            strcat(out, witness);
        *len = strlen(out);
    } else {
        /* valid in form, one byte too long */
        *len = KB_NOTE_MAX_LEN + 1;
        out = malloc(*len + 1);
        ck_assert_ptr_nonnull(out);
        size_t head = strlen(CP_BODY) + 1;
        memcpy(out, CP_NOTE, head);
        size_t sig_len = strlen(CP_NOTE) - head;
        memset(out + head, 'x', *len - head - sig_len);
        memcpy(out + *len - sig_len, CP_NOTE + head, sig_len);
        out[*len] = '\0';
    }
    ck_assert_ptr_nonnull(out);
    return out;
}

START_TEST(test_malformed)
{
    EVP_PKEY *pub = s_note_key(PN_VKEY, 0);
    size_t len = 0;
    char *note = s_bad_note(_i, &len);
    kb_note_checkpoint_t cp;
    int rc = kb_note_parse(note, len, &cp);
    ck_assert_msg(rc == s_bad_rows[_i].parse_rc, "%s: parse %d (%s)", s_bad_rows[_i].what, rc, kb_last_error());
    rc = kb_note_verify(note, len, PN_NAME, pub, &cp);
    ck_assert_msg(rc == s_bad_rows[_i].verify_rc, "%s: verify %d (%s)", s_bad_rows[_i].what, rc, kb_last_error());
    if (rc == KB_OK) {
        ck_assert_uint_eq(cp.size, CP_SIZE);
        ck_assert_str_eq(cp.origin, CP_ORIGIN);
    } else if (s_bad_rows[_i].parse_rc != KB_OK) {
        /* a refused note leaves nothing usable behind */
        ck_assert_uint_eq(cp.n_sigs, 0);
        ck_assert_uint_eq(cp.size, 0);
        ck_assert_str_eq(cp.origin, "");
    }
    free(note);
    EVP_PKEY_free(pub);
}
END_TEST

/* ------------------------------------------------------------ openssl */

static char s_dir[64];

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/kbnote.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Exit status of `openssl pkeyutl -verify` on the exported files. */
static int s_openssl_verify(const char *pub_pem, const char *body, const char *sig)
{
    char cmd[1024];
    ck_assert_int_eq(kb_fmt(cmd, sizeof cmd,
                            "openssl pkeyutl -verify -pubin -inkey '%s' -rawin -in '%s' -sigfile '%s' >'%s/out' 2>&1",
                            pub_pem, body, sig, s_dir),
                     KB_OK);
    fflush(NULL);
    int status = system(cmd);
    ck_assert_msg(status != -1 && WIFEXITED(status), "could not run: %s", cmd);
    ck_assert_msg(WEXITSTATUS(status) != 127, "the openssl command is missing (Debian package openssl)");
    return WEXITSTATUS(status);
}

START_TEST(test_openssl_verifies_export)
{
    ck_assert_msg(kb_keys_generate(s_dir, "broker", 0) == KB_OK, "%s", kb_last_error());
    char priv_pem[128], pub_pem[128], body[128], sig[128], out[128];
    ck_assert_int_eq(kb_fmt(priv_pem, sizeof priv_pem, "%s/broker.sign.pem", s_dir), KB_OK);
    ck_assert_int_eq(kb_fmt(pub_pem, sizeof pub_pem, "%s/broker.sign.pub.pem", s_dir), KB_OK);
    ck_assert_int_eq(kb_fmt(body, sizeof body, "%s/body.txt", s_dir), KB_OK);
    ck_assert_int_eq(kb_fmt(sig, sizeof sig, "%s/sig.bin", s_dir), KB_OK);
    ck_assert_int_eq(kb_fmt(out, sizeof out, "%s/out", s_dir), KB_OK);
    EVP_PKEY *priv = kb_keys_load_sign_private(priv_pem);
    EVP_PKEY *pub = kb_keys_load_sign_public(pub_pem);
    ck_assert_ptr_nonnull(priv);
    ck_assert_ptr_nonnull(pub);

    uint8_t root[KB_MERKLE_HASH_LEN];
    s_root_70(root);
    char *note = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_note_sign("ketenbus.nl/audit/test", CP_SIZE, root, "ketenbus-broker", priv, &note, &len),
                     KB_OK);
    ck_assert_int_eq(kb_note_export(note, len, "ketenbus-broker", pub, body, sig), KB_OK);

    /* the body file is the signed text exactly; the signature is raw */
    char *got = NULL;
    size_t got_len = 0;
    ck_assert_int_eq(kb_file_read(body, 4096, &got, &got_len), KB_OK);
    kb_note_checkpoint_t cp;
    ck_assert_int_eq(kb_note_verify(note, len, "ketenbus-broker", pub, &cp), KB_OK);
    ck_assert_uint_eq(got_len, cp.body_len);
    ck_assert_mem_eq(got, note, got_len);
    free(got);
    ck_assert_int_eq(kb_file_read(sig, 4096, &got, &got_len), KB_OK);
    ck_assert_uint_eq(got_len, KB_NOTE_ED25519_LEN);
    free(got);

    ck_assert_int_eq(s_openssl_verify(pub_pem, body, sig), 0);
    ck_assert_int_eq(kb_file_read(out, 4096, &got, &got_len), KB_OK);
    ck_assert_ptr_nonnull(strstr(got, "Signature Verified Successfully"));
    free(got);

    /* one byte more in the body and openssl refuses too */
    ck_assert_int_eq(kb_file_write(body, note, cp.body_len - 1, 0644), KB_OK);
    ck_assert_int_ne(s_openssl_verify(pub_pem, body, sig), 0);

    /* no signature of that name, or of that key */
    ck_assert_int_eq(kb_note_export(note, len, "someone-else", pub, body, sig), KB_ENOTFOUND);
    EVP_PKEY *other = s_new_key();
    ck_assert_int_eq(kb_note_export(note, len, "ketenbus-broker", other, body, sig), KB_ENOTFOUND);
    ck_assert_int_eq(kb_note_export("junk", 4, "ketenbus-broker", pub, body, sig), KB_EPROTO);
    EVP_PKEY_free(other);
    free(note);
    EVP_PKEY_free(priv);
    EVP_PKEY_free(pub);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *s_suite(void)
{
    Suite *s = suite_create("note");
    TCase *tc = tcase_create("vectors");
    tcase_add_test(tc, test_go_vector);
    tcase_add_test(tc, test_checkpoint_vector);
    suite_add_tcase(s, tc);

    tc = tcase_create("sign");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_roundtrip, 0, ROWS(s_roundtrip_rows));
    tcase_add_test(tc, test_sign_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed");
    tcase_add_loop_test(tc, test_malformed, 0, ROWS(s_bad_rows));
    suite_add_tcase(s, tc);

    tc = tcase_create("openssl");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_openssl_verifies_export);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
