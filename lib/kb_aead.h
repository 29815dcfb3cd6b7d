/*
 * kb_aead.h - AES-256-GCM for data at rest (the broker's queued payloads).
 *
 * Sealed form: 12-byte random nonce || ciphertext || 16-byte tag. The
 * associated data binds a ciphertext to where it is stored (its LevelDB
 * key), so a record moved to another key fails to open.
 *
 * A kb_aead_t holds the key scheduled once in an encryption and a
 * decryption context; each seal or open then sets only the nonce. Its
 * random nonces are drawn from OpenSSL's DRBG a few dozen at a time. It is not
 * thread-safe: one owner at a time (the broker's loop thread). The one-shot
 * kb_aead_seal/kb_aead_open build one for a single call.
 */
#ifndef KB_AEAD_H
#define KB_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define KB_AEAD_KEY_LEN   32u
#define KB_AEAD_NONCE_LEN 12u
#define KB_AEAD_TAG_LEN   16u
#define KB_AEAD_OVERHEAD  (KB_AEAD_NONCE_LEN + KB_AEAD_TAG_LEN)

typedef struct kb_aead kb_aead_t;

/* A keyed AES-256-GCM object, or NULL (kb_last_error() says why: KB_ENOMEM,
 * KB_ECRYPTO). The key is copied into OpenSSL's contexts only. */
kb_aead_t *kb_aead_new(const uint8_t key[KB_AEAD_KEY_LEN]);
/* Frees the contexts (OpenSSL wipes their key schedules); accepts NULL. */
void kb_aead_destroy(kb_aead_t **p);

/* Encrypt pt into out, which must hold pt_len + KB_AEAD_OVERHEAD bytes.
 * KB_ETOOBIG (input over INT_MAX), KB_ECRYPTO. */
int kb_aead_seal_with(kb_aead_t *a, const void *aad, size_t aad_len, const void *pt, size_t pt_len, uint8_t *out);

/* Decrypt in (in_len >= KB_AEAD_OVERHEAD) into out, which must hold
 * in_len - KB_AEAD_OVERHEAD bytes. KB_ECRYPTO if the tag does not verify
 * (out is then wiped: nothing unauthenticated is left in it) or in is too
 * short, KB_ETOOBIG. */
int kb_aead_open_with(kb_aead_t *a, const void *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                      uint8_t *out);

/* One-shot forms of the two above, with a key instead of a kb_aead_t. */
int kb_aead_seal(const uint8_t key[KB_AEAD_KEY_LEN], const void *aad, size_t aad_len,
                 const void *pt, size_t pt_len, uint8_t *out);
int kb_aead_open(const uint8_t key[KB_AEAD_KEY_LEN], const void *aad, size_t aad_len,
                 const uint8_t *in, size_t in_len, uint8_t *out);

#endif
