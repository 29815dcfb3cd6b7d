/*
 * kb_seal.h - envelope signatures that survive redaction.
 *
 * The sender does not sign the payload as one blob. It signs a deterministic
 * encoding of the envelope header plus one salted digest per present payload
 * leaf field (idea of IETF SD-JWT selective disclosure):
 *
 *   digest(path) = SHA-256(salt || u32be(len path) || path
 *                          || u32be(len value) || canonical value bytes)
 *
 * with a fresh random 16-byte salt per field. The broker may withhold a field
 * from a recipient: it clears the value and the salt, keeps the digest and
 * lists the path in Envelope.withheld. The recipient still verifies the
 * sender's Ed25519 signature over all digests, checks every visible field
 * against its digest and sees which paths were withheld. The exact bytes are
 * specified in proto/SIGNING.md, with test vectors in tests/unit.
 *
 * Paths are the JSON paths of docs/JSON.md, rooted at the payload member:
 * "signal.narrative", "signal.observed.location", "referral.signal.minor".
 * Leaves are scalar, enum, string, bytes and repeated fields; message fields
 * are descended into.
 */
#ifndef KB_SEAL_H
#define KB_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "ketenbus.pb-c.h"

/* Seal and sign: replace e->seals with one fresh seal per present payload
 * leaf (sorted by path), then set e->signature with the Ed25519 private key.
 * Header fields (message_id, sender, ...) must be final before the call.
 * e->withheld is left alone. On failure e is unchanged. Returns KB_EINVAL
 * (NULL argument, no payload), KB_ECRYPTO (not an Ed25519 key, RNG or
 * signing failure), KB_EPROTO (payload with unknown fields or a field kind
 * SIGNING.md does not cover), KB_ETOOBIG (more than KB_MAX_SEALS present
 * fields), KB_ENOMEM. */
int kb_seal_sign(Ketenbus__Envelope *e, EVP_PKEY *private_key);

/* For tests and the SIGNING.md test vector only: as kb_seal_sign, but the
 * salt of the k-th seal in sorted path order is salts[16k .. 16k+15].
 * n_salts must equal the number of present leaves (else KB_EINVAL). Real
 * signers use kb_seal_sign: fixed salts make withheld fields guessable. */
int kb_seal_sign_with_salts(Ketenbus__Envelope *e, EVP_PKEY *private_key,
                            const uint8_t *salts, size_t n_salts);

/* Verify: the signature over the signed bytes with the sender's public key,
 * every visible leaf against its seal, every seal without salt against an
 * absent field listed in e->withheld, every e->withheld entry against the
 * seals (a field path of the payload, listed once, covering at least one
 * seal and only seals without salt), and no visible leaf without a seal.
 * KB_OK, or KB_ECRYPTO with the first failing path in kb_last_error() (a
 * seal's own path as "seal N (path)", a withheld entry as "withheld N
 * (path)", bytes outside [A-Za-z0-9_.] as '?' and cut after 48: the text
 * is the sender's or the broker's); KB_EINVAL for NULL arguments,
 * KB_ENOMEM. */
int kb_seal_verify(const Ketenbus__Envelope *e, EVP_PKEY *public_key);

/* Withhold one payload path (a leaf, or a message field to withhold all its
 * leaves) from this copy of the envelope: the value is freed and set to its
 * proto3 default, the salts of the seals at or under the path are dropped
 * and the path is added to e->withheld (once). Withholding an absent field
 * (also a path under another payload member, e.g. "referral.reason" on a
 * signal, or a message field that holds no value, e.g. an empty
 * "signal.observed") is a no-op that returns KB_OK. KB_ENOTFOUND if the path is not a
 * field under any payload member (kb_seal_path_exists); KB_ENOMEM or
 * KB_ETOOBIG (over KB_MAX_SEALS withheld paths) leave e unchanged. */
int kb_seal_redact(Ketenbus__Envelope *e, const char *path);

/* True if path names a field (leaf or message) under a payload member of the
 * Envelope ("signal.narrative"); used to validate sharing rules. The member
 * alone ("signal") is not a field path. */
int kb_seal_path_exists(const char *path);

/* Most components in a path, i.e. deepest payload nesting walked. */
#define KB_SEAL_MAX_DEPTH 8u

/* The field numbers along path, from the Envelope's payload member down
 * ("signal.observed.location": 20, 5, 3), into ids: their count, or 0 if
 * path is not a field under a payload member (kb_seal_path_exists). For
 * readers of packed envelopes (kb_envelope_carries). */
size_t kb_seal_path_ids(const char *path, uint32_t ids[KB_SEAL_MAX_DEPTH]);

/* Check that payload message type d, reached as payload member `member`
 * ("signal"), has no field whose presence version 1 cannot sign: a oneof
 * member or an explicit-presence (proto3 `optional`) field of message
 * type, at any depth a path reaches. kb_seal_sign and kb_seal_verify do
 * this for the payload they walk. KB_OK, KB_EPROTO naming the field
 * ("seal: signal.outcome: a oneof member of message type ..."), KB_ETOOBIG
 * (path too long), KB_EINVAL for NULL arguments. */
int kb_seal_schema_check(const ProtobufCMessageDescriptor *d, const char *member);

/* The exact bytes that are signed (SIGNING.md), with the seals as they are
 * in e. On KB_OK *out (malloc'd, *out_len bytes) is the caller's to free().
 * KB_EINVAL (NULL argument, no payload), KB_ETOOBIG, KB_ENOMEM. */
int kb_seal_signed_bytes(const Ketenbus__Envelope *e, uint8_t **out, size_t *out_len);

#endif
