/*
 * kb_subject.h - subject keys: pseudonyms of the persons a message is about.
 *
 * Adapters never send identifiers (BSN, foreign-national number, document
 * number, name and birth date, phone number) to the broker. They send
 * HMAC-SHA256(chain key, "<type>:" || normalised value), so that two
 * agencies that know the same person compute the same key, and the broker
 * and its audit log see only keys. The chain key is a secret shared by the
 * agencies (not the broker operator), 32 bytes, in a file made by
 * `ketenbus keygen --chain-key`.
 *
 * Normalisation per type (docs/SUBJECT_KEYS.md gives the full rules,
 * examples and test vectors; tests/unit/subject_ref.py is a second
 * implementation in Python):
 *   bsn          digits only (spaces, '.' and '-' removed, anything else
 *                refused), must be 9 digits passing the "elfproef":
 *                9*d1 + 8*d2 + ... + 2*d8 - 1*d9 divisible by 11, not all zero
 *   vnummer      digits only (foreign-national number, V-nummer), 10 digits
 *   document     upper case letters and digits only (passport/ID number):
 *                ASCII letters upper-cased, spaces, '.' and '-' removed,
 *                5 to 32 characters
 *   name_birth   "family name|given names|YYYY-MM-DD" with exactly two '|':
 *                lower case, accents removed (a table for Latin-1 and Latin
 *                Extended-A letters: é -> e, ß -> ss, ĳ -> ij, ł -> l; Greek
 *                and Cyrillic are lower-cased and kept, other letters kept),
 *                apostrophes dropped, runs of spaces, '-' and '.' collapsed
 *                to one space, trimmed; digits, punctuation, symbols and
 *                controls refused: those of ASCII, Latin-1 and General
 *                Punctuation, and the digits of other scripts, symbol and
 *                punctuation blocks, private use and noncharacters that
 *                docs/SUBJECT_KEYS.md lists (other code points are kept as
 *                letters); the family name must not be empty; the date
 *                must exist
 *   phone        E.164: '+' and 8 to 15 digits; spaces, '-', '.', '(' and ')'
 *                removed, "(0)" after a country code dropped, "00" becomes
 *                '+', a leading single '0' becomes "+31", "+310" becomes "+31"
 * Error details never contain the value: they name the type and the rule.
 *
 * Used by the SDK (ketenbus_subject_key), the CLI (`ketenbus subject-key`,
 * `ketenbus audit query --identify`) and the tests.
 */
#ifndef KB_SUBJECT_H
#define KB_SUBJECT_H

#include <stddef.h>
#include <stdint.h>

#define KB_CHAIN_KEY_LEN 32u
#define KB_SUBJECT_VALUE_MAX 256u /* longest identifier accepted, in bytes */

/* An out buffer of this size always holds a normalised value and its NUL
 * (normalising grows a value by at most two bytes: "0..." -> "+31..."). */
#define KB_SUBJECT_NORMALISED_MAX (KB_SUBJECT_VALUE_MAX + 8u)

/* Normalise value of type into out (NUL-terminated). KB_EINVAL for an
 * unknown type or a NULL argument, KB_EPROTO (detail says why) for a value
 * that is not valid for its type (e.g. a BSN failing the elfproef),
 * KB_ETOOBIG for a value over KB_SUBJECT_VALUE_MAX bytes or an out buffer
 * that is too small. On failure out holds "" (if out_len > 0). */
int kb_subject_normalise(const char *type, const char *value, char *out, size_t out_len);

/* The subject key of (type, value) under the chain key: HMAC-SHA256 over
 * "<type>:<normalised value>". Errors as kb_subject_normalise, and
 * KB_ECRYPTO if OpenSSL fails. The normalised text is wiped after use. */
int kb_subject_key(const uint8_t chain_key[KB_CHAIN_KEY_LEN], const char *type, const char *value,
                   uint8_t out[32]);

/* Read a chain key file: exactly 32 raw bytes, a regular file that neither
 * group nor others may read or write (mode 0600 or 0400). KB_ENOTFOUND no
 * such file, KB_EIO unreadable, not a regular file or too open a mode,
 * KB_EPROTO another length. The caller wipes out with OPENSSL_cleanse. */
int kb_subject_load_chain_key(const char *path, uint8_t out[KB_CHAIN_KEY_LEN]);

#endif
