/*
 * kb_aead.h - AES-256-GCM for data at rest (the broker's queued payloads).
 *
 * Sealed form: 12-byte random nonce || ciphertext || 16-byte tag. The
 * associated data binds a ciphertext to where it is stored (its LevelDB
 * key), so a record moved to another key fails to open.
 */
#ifndef KB_AEAD_H
#define KB_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define KB_AEAD_KEY_LEN   32u
#define KB_AEAD_NONCE_LEN 12u
#define KB_AEAD_TAG_LEN   16u
#define KB_AEAD_OVERHEAD  (KB_AEAD_NONCE_LEN + KB_AEAD_TAG_LEN)

/* Encrypt pt into out, which must hold pt_len + KB_AEAD_OVERHEAD bytes. */
int kb_aead_seal(const uint8_t key[KB_AEAD_KEY_LEN], const void *aad, size_t aad_len,
                 const void *pt, size_t pt_len, uint8_t *out);

/* Decrypt in (in_len >= KB_AEAD_OVERHEAD) into out, which must hold
 * in_len - KB_AEAD_OVERHEAD bytes. KB_ECRYPTO if the tag does not verify. */
int kb_aead_open(const uint8_t key[KB_AEAD_KEY_LEN], const void *aad, size_t aad_len,
                 const uint8_t *in, size_t in_len, uint8_t *out);

#endif
