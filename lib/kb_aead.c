/*
 * kb_aead.c - AES-256-GCM seal/open through OpenSSL's EVP interface.
 *
 * Setting up a GCM context (key schedule, GHASH tables) costs several
 * times an entry's encryption, so a kb_aead_t keys its two contexts once and
 * each call only resets the nonce (EVP_*Init_ex with a NULL cipher and key
 * keeps both). A failed call leaves a context in an undefined state, so the
 * next call keys it again.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "kb_aead.h"
#include "kb_error.h"

/* Nonces drawn from the DRBG per call to RAND_bytes: a call costs about as
 * much as sealing a small entry, so a kb_aead_t draws this many at once and
 * hands them out one by one. They are as random as one draw each.
 *
 * With random 96-bit nonces NIST SP 800-38D (8.3) allows 2^32 seals per
 * key. The broker seals one queue entry per recipient, under one storage
 * key that is never rotated, and nothing counts the seals: at ten
 * thousand entries a day that bound is a thousand years away, at a million
 * a day twelve years, and a broker kept saturated as in `make bench`
 * (about 50,000 a second) would pass it within a day. */
#define KB_AEAD_NONCE_POOL 64u

struct kb_aead {
    EVP_CIPHER_CTX *enc;            /* keyed for encryption */
    EVP_CIPHER_CTX *dec;            /* keyed for decryption */
    uint8_t key[KB_AEAD_KEY_LEN];   /* to key a context again after a failure; wiped on destroy */
    int enc_ready;                  /* 1 if enc holds the key and no failed call since */
    int dec_ready;                  /* 1 if dec holds the key and no failed call since */
    uint8_t nonces[KB_AEAD_NONCE_POOL * KB_AEAD_NONCE_LEN]; /* drawn, not yet used; wiped on destroy */
    size_t n_nonces;                /* how many are left (taken from the end) */
};

/* The next unused random nonce into out. */
static int s_nonce(kb_aead_t *a, uint8_t *out)
{
    if (a->n_nonces == 0) {
        if (RAND_bytes(a->nonces, sizeof a->nonces) != 1)
            return kb_error_ssl(KB_ECRYPTO, "aead: RAND_bytes");
        a->n_nonces = KB_AEAD_NONCE_POOL;
    }
    a->n_nonces--;
    uint8_t *n = a->nonces + a->n_nonces * KB_AEAD_NONCE_LEN;
    memcpy(out, n, KB_AEAD_NONCE_LEN);
    OPENSSL_cleanse(n, KB_AEAD_NONCE_LEN); /* used once, never again */
    return KB_OK;
}

kb_aead_t *kb_aead_new(const uint8_t key[KB_AEAD_KEY_LEN])
{
    kb_aead_t *a = calloc(1, sizeof *a);
    if (!a) {
        kb_error_set(KB_ENOMEM, "aead: out of memory");
        return NULL;
    }
    memcpy(a->key, key, KB_AEAD_KEY_LEN);
    a->enc = EVP_CIPHER_CTX_new();
    a->dec = EVP_CIPHER_CTX_new();
    if (!a->enc || !a->dec) {
        kb_error_ssl(KB_ENOMEM, "aead: context");
        kb_aead_destroy(&a);
    }
    return a;
}

void kb_aead_destroy(kb_aead_t **p)
{
    if (!p || !*p)
        return;
    kb_aead_t *a = *p;
    EVP_CIPHER_CTX_free(a->enc);
    EVP_CIPHER_CTX_free(a->dec);
    OPENSSL_cleanse(a->key, sizeof a->key);
    OPENSSL_cleanse(a->nonces, sizeof a->nonces);
    free(a);
    *p = NULL;
}

int kb_aead_seal_with(kb_aead_t *a, const void *aad, size_t aad_len, const void *pt, size_t pt_len, uint8_t *out)
{
    if (pt_len > INT_MAX || aad_len > INT_MAX)
        return kb_error_set(KB_ETOOBIG, "aead: input too large");
    if (s_nonce(a, out) != KB_OK)
        return KB_ECRYPTO;
    if (!a->enc_ready) {
        if (EVP_EncryptInit_ex(a->enc, EVP_aes_256_gcm(), NULL, a->key, NULL) != 1)
            return kb_error_ssl(KB_ECRYPTO, "aead: encrypt key");
        a->enc_ready = 1;
    }
    int n = 0, fin = 0;
    uint8_t *ct = out + KB_AEAD_NONCE_LEN;
    if (EVP_EncryptInit_ex(a->enc, NULL, NULL, NULL, out) != 1 ||
        EVP_EncryptUpdate(a->enc, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_EncryptUpdate(a->enc, ct, &n, pt, (int)pt_len) != 1 ||
        EVP_EncryptFinal_ex(a->enc, ct + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(a->enc, EVP_CTRL_GCM_GET_TAG, KB_AEAD_TAG_LEN, ct + pt_len) != 1) {
        a->enc_ready = 0;
        return kb_error_ssl(KB_ECRYPTO, "aead: encrypt");
    }
    return KB_OK;
}

int kb_aead_open_with(kb_aead_t *a, const void *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                      uint8_t *out)
{
    if (in_len < KB_AEAD_OVERHEAD)
        return kb_error_set(KB_ECRYPTO, "aead: sealed data too short (%zu bytes)", in_len);
    if (in_len > INT_MAX || aad_len > INT_MAX)
        return kb_error_set(KB_ETOOBIG, "aead: input too large");
    if (!a->dec_ready) {
        if (EVP_DecryptInit_ex(a->dec, EVP_aes_256_gcm(), NULL, a->key, NULL) != 1)
            return kb_error_ssl(KB_ECRYPTO, "aead: decrypt key");
        a->dec_ready = 1;
    }
    size_t ct_len = in_len - KB_AEAD_OVERHEAD;
    const uint8_t *ct = in + KB_AEAD_NONCE_LEN;
    int n = 0, fin = 0;
    if (EVP_DecryptInit_ex(a->dec, NULL, NULL, NULL, in) != 1 ||
        EVP_DecryptUpdate(a->dec, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_DecryptUpdate(a->dec, out, &n, ct, (int)ct_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(a->dec, EVP_CTRL_GCM_SET_TAG, KB_AEAD_TAG_LEN, (void *)(ct + ct_len)) != 1 ||
        EVP_DecryptFinal_ex(a->dec, out + n, &fin) != 1) {
        /* GCM decrypts before it checks the tag: what it wrote is not to
         * be trusted, and may be the personal data itself */
        OPENSSL_cleanse(out, ct_len);
        a->dec_ready = 0;
        return kb_error_ssl(KB_ECRYPTO, "aead: authentication failed (data altered or wrong key)");
    }
    return KB_OK;
}

int kb_aead_seal(const uint8_t key[KB_AEAD_KEY_LEN], const void *aad, size_t aad_len,
                 const void *pt, size_t pt_len, uint8_t *out)
{
    kb_aead_t *a = kb_aead_new(key);
    if (!a)
        return KB_ENOMEM;
    int rc = kb_aead_seal_with(a, aad, aad_len, pt, pt_len, out);
    kb_aead_destroy(&a);
    return rc;
}

int kb_aead_open(const uint8_t key[KB_AEAD_KEY_LEN], const void *aad, size_t aad_len,
                 const uint8_t *in, size_t in_len, uint8_t *out)
{
    kb_aead_t *a = kb_aead_new(key);
    if (!a)
        return KB_ENOMEM;
    int rc = kb_aead_open_with(a, aad, aad_len, in, in_len, out);
    kb_aead_destroy(&a);
    return rc;
}
