/*
 * kb_keys.h - the key files a chain needs, written by `ketenbus keygen`.
 *
 * For a name N (an agency id, or "broker") in directory D:
 *   D/N.curve          CURVE public certificate (ZPL, as CZMQ zcert writes it) 0644
 *   D/N.curve_secret   CURVE secret certificate              mode 0600
 *   D/N.sign.pem       Ed25519 private key, PKCS#8 PEM       mode 0600
 *   D/N.sign.pub.pem   Ed25519 public key, SubjectPublicKeyInfo PEM 0644
 *   D/N.storage.key    32 random bytes for AES-256-GCM at rest (broker only) 0600
 * Existing files are never overwritten (KB_EIO naming the file). Secrets are
 * wiped from memory with OPENSSL_cleanse after use.
 *
 * The loaders follow symlinks and check the file they opened: it must be a
 * regular file, owned by this user (the effective uid) or root, that group
 * and others may not write (a public key is what the holder of the secret
 * one is known by: whoever could replace it could pose as that holder).
 * Group and others may not access a secret file (N.curve_secret, N.sign.pem,
 * N.storage.key) at all. `ketenbus keygen` writes files that pass, whatever
 * the umask.
 *
 * Errors of the loaders: KB_ENOTFOUND (no such file), KB_EIO (unreadable,
 * not a regular file, or refused for its owner or mode, with what to run),
 * KB_ETOOBIG (over 64 KiB), KB_EPROTO (not a certificate, PEM or storage key
 * of the expected form or length), KB_ECRYPTO (a key of the wrong type, or a
 * public key that does not match the secret one); detail in kb_last_error().
 */
#ifndef KB_KEYS_H
#define KB_KEYS_H

#include <stdint.h>

#include <openssl/evp.h>

#define KB_Z85_KEY_LEN 40u   /* a CURVE key in Z85 text, without NUL */

/* Write the key set for name ([A-Za-z0-9_-], 1..64 chars) into dir (created
 * 0700 if missing); with_storage adds N.storage.key. Checks that none of the
 * files exists before writing any; on a failure midway the files written by
 * this call are removed. KB_EINVAL bad name, KB_EIO existing file or write
 * failure, KB_ECRYPTO key generation failure. */
int kb_keys_generate(const char *dir, const char *name, int with_storage);

/* Read the Z85 public key (40 chars + NUL) from a public or secret
 * certificate file. */
int kb_keys_load_curve_public(const char *cert_path, char public_z85[KB_Z85_KEY_LEN + 1]);

/* Read both keys from a secret certificate file (D/N.curve_secret); checks
 * that the public key belongs to the secret one. The caller wipes secret_z85
 * with OPENSSL_cleanse when done. */
int kb_keys_load_curve_secret(const char *cert_path, char public_z85[KB_Z85_KEY_LEN + 1],
                              char secret_z85[KB_Z85_KEY_LEN + 1]);

/* Ed25519 keys from PEM; NULL with kb_last_error() set (any other key type
 * is refused). An encrypted private key is refused, never prompted for.
 * Free with EVP_PKEY_free. */
EVP_PKEY *kb_keys_load_sign_private(const char *pem_path);
EVP_PKEY *kb_keys_load_sign_public(const char *pem_path);

/* The 32-byte storage key; a file of any other length is KB_EPROTO. */
int kb_keys_load_storage(const char *path, uint8_t key[32]);

/* A secret key file of exactly want raw bytes into out, checked as every
 * key file is (the file opened: regular, owned by this user or root, no
 * access for group or others); KB_EPROTO naming its size and what (e.g.
 * "a chain key (ketenbus keygen --chain-key)") when it has another. */
int kb_keys_load_raw_secret(const char *path, uint8_t *out, size_t want, const char *what);

#endif
