/*
 * check_aead.c - AES-256-GCM at rest (lib/kb_aead.c): a keyed kb_aead_t
 * used for many seals and opens in a row gives what the one-shot calls
 * give, a NIST test vector decrypts, and every kind of damage (altered
 * nonce, ciphertext, tag or associated data, wrong key, short input) is
 * refused, with nothing decrypted left behind, also when it comes between
 * good calls on the same object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "kb_aead.h"
#include "kb_error.h"
#include "kb_test.h"

static const uint8_t s_key[KB_AEAD_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                               17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void s_hex(const char *hex, uint8_t *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

/* GCM spec test case 16 (AES-256, 60-byte plaintext, 20-byte AAD), laid
 * out as kb_aead stores it: nonce || ciphertext || tag. */
START_TEST(test_known_vector)
{
    uint8_t key[32], nonce[12], pt[60], aad[20], ct[60], tag[16];
    s_hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", key, 32);
    s_hex("cafebabefacedbaddecaf888", nonce, 12);
    s_hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b1"
          "6aedf5aa0de657ba637b39",
          pt, 60);
    s_hex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad, 20);
    s_hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5"
          "f61e6393ba7a0abcc9f662",
          ct, 60);
    s_hex("76fc6ece0f4e1768cddf8853bb2d551b", tag, 16);
    uint8_t in[12 + 60 + 16], out[60];
    memcpy(in, nonce, 12);
    memcpy(in + 12, ct, 60);
    memcpy(in + 72, tag, 16);
    ck_assert_int_eq(kb_aead_open(key, aad, sizeof aad, in, sizeof in, out), KB_OK);
    ck_assert_int_eq(memcmp(out, pt, sizeof pt), 0);
    kb_aead_t *a = kb_aead_new(key);
    ck_assert_ptr_nonnull(a);
    for (int round = 0; round < 3; round++) {
        memset(out, 0, sizeof out);
        ck_assert_int_eq(kb_aead_open_with(a, aad, sizeof aad, in, sizeof in, out), KB_OK);
        ck_assert_int_eq(memcmp(out, pt, sizeof pt), 0);
    }
    kb_aead_destroy(&a);
    ck_assert_ptr_null(a);
    kb_aead_destroy(&a);
    kb_aead_destroy(NULL);
}
END_TEST

/* Many messages of different sizes through one object, opened both by the
 * object and by the one-shot call, and the other way round. */
START_TEST(test_keyed_round_trips)
{
    kb_aead_t *a = kb_aead_new(s_key);
    ck_assert_ptr_nonnull(a);
    uint8_t pt[4096], sealed[4096 + KB_AEAD_OVERHEAD], out[4096];
    for (size_t i = 0; i < sizeof pt; i++)
        pt[i] = (uint8_t)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof pt; len += len < 40 ? 1 : 397) {
        char aad[32];
        snprintf(aad, sizeof aad, "q/agency/%zu", len);
        ck_assert_int_eq(kb_aead_seal_with(a, aad, strlen(aad), pt, len, sealed), KB_OK);
        ck_assert_int_eq(kb_aead_open_with(a, aad, strlen(aad), sealed, len + KB_AEAD_OVERHEAD, out), KB_OK);
        ck_assert_int_eq(memcmp(out, pt, len), 0);
        ck_assert_int_eq(kb_aead_open(s_key, aad, strlen(aad), sealed, len + KB_AEAD_OVERHEAD, out), KB_OK);
        ck_assert_int_eq(memcmp(out, pt, len), 0);
        ck_assert_int_eq(kb_aead_seal(s_key, aad, strlen(aad), pt, len, sealed), KB_OK);
        ck_assert_int_eq(kb_aead_open_with(a, aad, strlen(aad), sealed, len + KB_AEAD_OVERHEAD, out), KB_OK);
        ck_assert_int_eq(memcmp(out, pt, len), 0);
    }
    /* two seals of the same input differ: a fresh random nonce each */
    uint8_t s1[16 + KB_AEAD_OVERHEAD], s2[16 + KB_AEAD_OVERHEAD];
    ck_assert_int_eq(kb_aead_seal_with(a, "k", 1, pt, 16, s1), KB_OK);
    ck_assert_int_eq(kb_aead_seal_with(a, "k", 1, pt, 16, s2), KB_OK);
    ck_assert_int_ne(memcmp(s1, s2, KB_AEAD_NONCE_LEN), 0);
    kb_aead_destroy(&a);
}
END_TEST

static int s_cmp_nonce(const void *x, const void *y)
{
    return memcmp(x, y, KB_AEAD_NONCE_LEN);
}

/* Nonces are drawn in bulk: across many refills of the pool, no nonce
 * comes twice, and none is all zeros (an unfilled pool). */
START_TEST(test_nonces_unique)
{
    enum { N = 1000 };
    static uint8_t nonces[N][KB_AEAD_NONCE_LEN];
    kb_aead_t *a = kb_aead_new(s_key);
    ck_assert_ptr_nonnull(a);
    uint8_t sealed[8 + KB_AEAD_OVERHEAD];
    static const uint8_t zero[KB_AEAD_NONCE_LEN];
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(kb_aead_seal_with(a, "k", 1, "12345678", 8, sealed), KB_OK);
        memcpy(nonces[i], sealed, KB_AEAD_NONCE_LEN);
        ck_assert_int_ne(memcmp(nonces[i], zero, KB_AEAD_NONCE_LEN), 0);
    }
    qsort(nonces, N, KB_AEAD_NONCE_LEN, s_cmp_nonce);
    for (int i = 1; i < N; i++)
        ck_assert_int_ne(memcmp(nonces[i - 1], nonces[i], KB_AEAD_NONCE_LEN), 0);
    kb_aead_destroy(&a);
}
END_TEST

/* Damage rows: each must be refused with KB_ECRYPTO, leaving nothing it
 * decrypted in the output (GCM decrypts before it checks the tag), and a
 * good open on the same object must still work right after. */
enum { D_NONCE, D_CT, D_TAG, D_AAD, D_AAD_LEN, D_KEY, D_SHORT, D_EMPTY, N_DAMAGE };

START_TEST(test_damage_refused)
{
    kb_aead_t *a = kb_aead_new(s_key);
    ck_assert_ptr_nonnull(a);
    const char *aad = "q/politie/00000007";
    uint8_t pt[300], sealed[300 + KB_AEAD_OVERHEAD], bad[300 + KB_AEAD_OVERHEAD], out[300];
    memset(pt, 'x', sizeof pt);
    ck_assert_int_eq(kb_aead_seal_with(a, aad, strlen(aad), pt, sizeof pt, sealed), KB_OK);
    memcpy(bad, sealed, sizeof bad);
    size_t bad_len = sizeof bad, aad_len = strlen(aad);
    char other_aad[64];
    snprintf(other_aad, sizeof other_aad, "%s", aad);
    kb_aead_t *use = a, *other = NULL;
    switch (_i) {
    case D_NONCE:
        bad[0] ^= 1;
        break;
    case D_CT:
        bad[KB_AEAD_NONCE_LEN + 100] ^= 0x80;
        break;
    case D_TAG:
        bad[sizeof bad - 1] ^= 1;
        break;
    case D_AAD:
        other_aad[2] = 'P'; /* the same entry under another key */
        break;
    case D_AAD_LEN:
        aad_len--;
        break;
    case D_KEY: {
        uint8_t k2[KB_AEAD_KEY_LEN];
        memcpy(k2, s_key, sizeof k2);
        k2[31] ^= 1;
        other = kb_aead_new(k2);
        ck_assert_ptr_nonnull(other);
        use = other;
        break;
    }
    case D_SHORT:
        bad_len = KB_AEAD_OVERHEAD - 1;
        break;
    case D_EMPTY:
        bad_len = 0;
        break;
    }
    memset(out, 0xAA, sizeof out);
    ck_assert_int_eq(kb_aead_open_with(use, other_aad, aad_len, bad, bad_len, out), KB_ECRYPTO);
    ck_assert_ptr_nonnull(kb_last_error());
    for (size_t i = 0; i < sizeof out; i++) /* wiped, or not written */
        ck_assert_msg(out[i] == 0 || out[i] == 0xAA, "byte %zu of a refused open is 0x%02x", i, out[i]);
    ck_assert_int_eq(kb_aead_open_with(a, aad, strlen(aad), sealed, sizeof sealed, out), KB_OK);
    ck_assert_int_eq(memcmp(out, pt, sizeof pt), 0);
    /* and the object still seals what it opens */
    ck_assert_int_eq(kb_aead_seal_with(a, aad, strlen(aad), pt, sizeof pt, bad), KB_OK);
    ck_assert_int_eq(kb_aead_open_with(a, aad, strlen(aad), bad, sizeof bad, out), KB_OK);
    kb_aead_destroy(&other);
    kb_aead_destroy(&a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("aead");
    TCase *tc = tcase_create("aead");
    tcase_add_test(tc, test_known_vector);
    tcase_add_test(tc, test_keyed_round_trips);
    tcase_add_test(tc, test_nonces_unique);
    tcase_add_loop_test(tc, test_damage_refused, 0, N_DAMAGE);
    suite_add_tcase(s, tc);
    return kb_test_run(s);
}
