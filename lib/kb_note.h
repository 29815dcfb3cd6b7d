/*
 * kb_note.h - signed checkpoints of the audit tree, in the C2SP formats.
 *
 * A checkpoint (C2SP tlog-checkpoint) states the tree size and root hash
 * under the log's name, its origin:
 *
 *   <origin>\n
 *   <tree size, decimal, no leading zeros>\n
 *   <root hash, standard base64 with padding>\n
 *
 * A signed note (C2SP signed-note) is that text, an empty line, and one or
 * more signature lines:
 *
 *   — <key name> <base64(key id || signature)>\n
 *
 * where the line starts with U+2014 EM DASH and a space. For Ed25519
 * (signature type 0x01) the key id is the first 4 bytes of
 *   SHA-256(key name || "\n" || 0x01 || 32-byte public key)
 * and the signature is plain Ed25519 (RFC 8032) over the checkpoint text
 * exactly, final newline included, separating empty line excluded. Hence
 * Go's golang.org/x/mod/sumdb/note, the transparency-log witnesses and
 * `openssl pkeyutl -verify -rawin` (see kb_note_export) all check it.
 *
 * Parsing is strict and bounded: a note over KB_NOTE_MAX_LEN bytes is
 * KB_ETOOBIG; invalid UTF-8, control characters other than newline, a
 * missing empty line or final newline, a line that is not a signature after
 * the empty line, non-canonical base64, a size with leading zeros or over
 * 2^64 - 1, a root that is not 32 bytes, names or origins with spaces or
 * '+', more than KB_NOTE_MAX_SIGS signatures, and checkpoint extension lines
 * (this log writes none) are KB_EPROTO. Signature lines of other keys
 * (witness cosignatures, say) are kept and ignored by verification.
 *
 * Used by the broker (signing checkpoints) and by `ketenbus audit verify`.
 */
#ifndef KB_NOTE_H
#define KB_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "kb_merkle.h"

#define KB_NOTE_MAX_LEN       8192u /* longest note accepted */
#define KB_NOTE_MAX_ORIGIN    255u  /* bytes of an origin */
#define KB_NOTE_MAX_NAME      255u  /* bytes of a key name */
#define KB_NOTE_MAX_SIGS      16u   /* signature lines in a note */
#define KB_NOTE_MAX_SIG_LEN   128u  /* signature bytes after the key id, any algorithm */
#define KB_NOTE_KEY_ID_LEN    4u    /* key id bytes at the start of a signature */
#define KB_NOTE_ED25519_LEN   64u   /* an Ed25519 signature */
#define KB_NOTE_ALG_ED25519   0x01  /* signed-note signature type of Ed25519 */

/* One signature line. */
typedef struct {
    char name[KB_NOTE_MAX_NAME + 1];  /* key name, NUL-terminated */
    uint32_t key_id;                  /* key id (first 4 bytes, big-endian) */
    uint8_t sig[KB_NOTE_MAX_SIG_LEN]; /* signature bytes after the key id */
    size_t sig_len;                   /* their number */
} kb_note_sig_t;

/* A parsed checkpoint note. */
typedef struct {
    char origin[KB_NOTE_MAX_ORIGIN + 1];     /* the log's name, NUL-terminated */
    uint64_t size;                           /* tree size */
    uint8_t root[KB_MERKLE_HASH_LEN];        /* root hash at that size */
    size_t body_len;                         /* bytes of the signed text, a prefix of the note */
    kb_note_sig_t sigs[KB_NOTE_MAX_SIGS];    /* signature lines, in order */
    size_t n_sigs;                           /* their number */
} kb_note_checkpoint_t;

/* Key id of an Ed25519 key (private or public) under name. KB_EINVAL for
 * a bad name (empty, over KB_NOTE_MAX_NAME, spaces, '+', not UTF-8),
 * KB_ECRYPTO if key is not Ed25519. */
int kb_note_key_id(const char *name, EVP_PKEY *key, uint32_t *id);

/* The checkpoint text for origin, size and root into out (out_len bytes,
 * NUL-terminated); *len (may be NULL) gets its length. KB_EINVAL for a bad
 * origin (rules of key names), KB_ETOOBIG if out is too small. */
int kb_note_body(const char *origin, uint64_t size, const uint8_t root[KB_MERKLE_HASH_LEN], char *out, size_t out_len,
                 size_t *len);

/* Sign text (non-empty, ending in a newline, UTF-8 without control
 * characters but newlines) with the Ed25519 private key under key_name:
 * *note (NUL-terminated, the caller frees) is text, an empty line and the
 * signature line; *note_len its length. KB_EINVAL (bad text or name),
 * KB_ECRYPTO (not an Ed25519 private key, signing failed), KB_ETOOBIG (the
 * note would exceed KB_NOTE_MAX_LEN), KB_ENOMEM. */
int kb_note_sign_text(const char *text, size_t text_len, const char *key_name, EVP_PKEY *key, char **note,
                      size_t *note_len);

/* kb_note_body() then kb_note_sign_text(): a signed checkpoint. */
int kb_note_sign(const char *origin, uint64_t size, const uint8_t root[KB_MERKLE_HASH_LEN], const char *key_name,
                 EVP_PKEY *key, char **note, size_t *note_len);

/* Check that the note of len bytes carries a valid signature by the
 * Ed25519 public key pub under key_name (every line with that name and key
 * id must verify; other keys' lines are ignored); *text_len (may be NULL)
 * gets the length of the signed text. KB_OK; KB_EPROTO or KB_ETOOBIG if
 * malformed; KB_ECRYPTO if no line is by that key or one does not verify
 * (detail in kb_last_error()); KB_EINVAL for a bad name or NULL argument. */
int kb_note_verify_text(const char *note, size_t len, const char *key_name, EVP_PKEY *pub, size_t *text_len);

/* Parse a checkpoint note (no signature checked): fills *cp. KB_EPROTO,
 * KB_ETOOBIG, KB_EINVAL (NULL argument). */
int kb_note_parse(const char *note, size_t len, kb_note_checkpoint_t *cp);

/* kb_note_parse() and kb_note_verify_text(): a checkpoint to trust. */
int kb_note_verify(const char *note, size_t len, const char *key_name, EVP_PKEY *pub, kb_note_checkpoint_t *cp);

/* Write the signed text of the note to body_path and the raw 64-byte
 * signature by pub under key_name to sig_path (each mode 0644, atomically),
 * so that anyone can check it without this code:
 *   openssl pkeyutl -verify -pubin -inkey broker.sign.pub.pem -rawin \
 *       -in body_path -sigfile sig_path
 * The note is parsed, not verified. KB_EPROTO, KB_ETOOBIG, KB_ENOTFOUND
 * (no signature line of that key), KB_ECRYPTO (pub not Ed25519), KB_EIO. */
int kb_note_export(const char *note, size_t len, const char *key_name, EVP_PKEY *pub, const char *body_path,
                   const char *sig_path);

#endif
