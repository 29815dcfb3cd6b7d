/*
 * kb_seal.h - envelope signatures that survive redaction.
 *
 * The sender does not sign the payload as one blob. It signs a deterministic
 * encoding of the envelope header plus one salted digest per present payload
 * leaf field (idea of IETF SD-JWT selective disclosure):
 *
 *   digest(path) = SHA-256(salt || path || canonical field bytes)
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
 * Header fields (message_id, sender, ...) must be final before the call. */
int kb_seal_sign(Ketenbus__Envelope *e, EVP_PKEY *private_key);

/* Verify: the signature over the signed bytes with the sender's public key,
 * every visible leaf against its seal, every seal without salt against an
 * absent field listed in e->withheld, and no visible leaf without a seal.
 * KB_OK, or KB_ECRYPTO with the first failing path in kb_last_error(). */
int kb_seal_verify(const Ketenbus__Envelope *e, EVP_PKEY *public_key);

/* Withhold one payload path (a leaf, or a message field to withhold all its
 * leaves) from this copy of the envelope. Withholding an absent field is a
 * no-op that returns KB_OK. KB_ENOTFOUND if the path is not a field of the
 * payload's message type. */
int kb_seal_redact(Ketenbus__Envelope *e, const char *path);

/* True if path names a field (leaf or message) under a payload member of the
 * Envelope ("signal.narrative"); used to validate sharing rules. */
int kb_seal_path_exists(const char *path);

/* The exact bytes that are signed (SIGNING.md). *out is the caller's. */
int kb_seal_signed_bytes(const Ketenbus__Envelope *e, uint8_t **out, size_t *out_len);

#endif
