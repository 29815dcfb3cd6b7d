/*
 * kb_aead.c - AES-256-GCM seal/open through OpenSSL's EVP interface.
 */
#include <limits.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "kb_aead.h"
#include "kb_error.h"

int kb_aead_seal(const uint8_t key[KB_AEAD_KEY_LEN], const void *aad, size_t aad_len,
                 const void *pt, size_t pt_len, uint8_t *out)
{
    if (pt_len > INT_MAX || aad_len > INT_MAX)
        return kb_error_set(KB_ETOOBIG, "aead: input too large");
    if (RAND_bytes(out, KB_AEAD_NONCE_LEN) != 1)
        return kb_error_ssl(KB_ECRYPTO, "aead: RAND_bytes");
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return kb_error_ssl(KB_ENOMEM, "aead: context");
    int rc = KB_ECRYPTO, n = 0, fin = 0;
    uint8_t *ct = out + KB_AEAD_NONCE_LEN;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, out) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_EncryptUpdate(ctx, ct, &n, pt, (int)pt_len) != 1 ||
        EVP_EncryptFinal_ex(ctx, ct + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, KB_AEAD_TAG_LEN, ct + pt_len) != 1) {
        rc = kb_error_ssl(KB_ECRYPTO, "aead: encrypt");
    } else {
        rc = KB_OK;
    }
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int kb_aead_open(const uint8_t key[KB_AEAD_KEY_LEN], const void *aad, size_t aad_len,
                 const uint8_t *in, size_t in_len, uint8_t *out)
{
    if (in_len < KB_AEAD_OVERHEAD)
        return kb_error_set(KB_ECRYPTO, "aead: sealed data too short (%zu bytes)", in_len);
    if (in_len > INT_MAX || aad_len > INT_MAX)
        return kb_error_set(KB_ETOOBIG, "aead: input too large");
    size_t ct_len = in_len - KB_AEAD_OVERHEAD;
    const uint8_t *ct = in + KB_AEAD_NONCE_LEN;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return kb_error_ssl(KB_ENOMEM, "aead: context");
    int rc, n = 0, fin = 0;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, in) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_DecryptUpdate(ctx, out, &n, ct, (int)ct_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, KB_AEAD_TAG_LEN, (void *)(ct + ct_len)) != 1 ||
        EVP_DecryptFinal_ex(ctx, out + n, &fin) != 1) {
        rc = kb_error_ssl(KB_ECRYPTO, "aead: authentication failed (data altered or wrong key)");
    } else {
        rc = KB_OK;
    }
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}
