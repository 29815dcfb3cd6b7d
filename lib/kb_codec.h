/*
 * kb_codec.h - Frame and Envelope encoding, decoding and validation.
 *
 * Everything received from a peer passes through kb_frame_decode() (size
 * limit before unpacking, NULL from protobuf-c handled, version checked) and
 * every envelope through kb_envelope_validate() (required fields, enum
 * ranges, lengths, UTF-8) before any other module looks at it.
 *
 * Ownership rule for the whole project: every protobuf-c message held in
 * memory is in "unpacked" form, i.e. every member is malloc'd (or a default
 * value pointer) and the whole tree is freed with
 * protobuf_c_message_free_unpacked(msg, NULL). Code that builds or edits a
 * message (SDK, broker redaction) allocates members with malloc/strdup.
 */
#ifndef KB_CODEC_H
#define KB_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "ketenbus.pb-c.h"

#define KB_PROTOCOL_VERSION 1u

/* Limits on what a peer may send (named, never bare numbers). */
#define KB_FRAME_MAX_DEFAULT   (1024u * 1024u) /* default max frame bytes */
#define KB_ID_LEN              16u   /* message and correlation ids */
#define KB_SUBJECT_KEY_LEN     32u   /* HMAC-SHA256 pseudonym */
#define KB_AGENCY_ID_MAX       32u   /* agency id length */
#define KB_MAX_RECIPIENTS      64u   /* recipients an envelope names */
#define KB_MAX_AGENCIES        4096u /* agencies in a chain (conf.h KB_CONF_MAX_AGENCIES) */
#define KB_MAX_SUBJECT_KEYS    32u
#define KB_MAX_INDICATORS      32u
#define KB_SHORT_TEXT_MAX      256u  /* officer, basis, references, paths */
#define KB_TEXT_MAX            (64u * 1024u) /* narratives and reasons */
#define KB_MAX_SEALS           64u
#define KB_SALT_LEN            16u
#define KB_DIGEST_LEN          32u
#define KB_SIGNATURE_LEN       64u
#define KB_MAX_BATCH           1024u /* envelopes per Submit, tags per Ack, ... */
/* KB_MAX_RECIPIENTS also bounds Notice.agencies. A ReceiptEntry's
 * recipients and refused hold one id per candidate recipient at most: the
 * named recipients, or for a fan-out every agency the rules allow, so
 * they are bounded by KB_MAX_AGENCIES. */
#define KB_MAX_UNKNOWN_FIELDS  8u    /* unknown fields per message of a frame */

/* Memory decoding one frame may take: KB_DECODE_MEM_PER_BYTE bytes per
 * byte of the frame plus KB_DECODE_MEM_BASE, counting every allocation
 * rounded up to KB_DECODE_ALIGN (as kb_arena does); a frame that would need
 * more is refused (KB_EPROTO) instead of allocated. So the worst case of
 * any frame into a kb_arena is kb_arena_used() <= 16 * len + 512 KiB.
 * Measured with kb_arena_used() after kb_frame_decode_with() (protobuf-c
 * 1.4.1, x86-64; tests/unit/check_codec.c test_decode_memory asserts the
 * bound): signed envelopes as the SDK makes them take 2.9x their frame;
 * an unsigned one with nothing optional 7.1x; 1024 unsigned ones naming 64
 * agencies of 1-3 characters each 17.1x (accepted, the base makes up the
 * rest); a frame of envelopes of 64 empty seals each is refused at the
 * budget (it would need 40x); before the wire scan
 * limited lists and repeats, empty seals (f2 01 00 ...) took 42x, empty
 * recipients 40x, a repeated singular field 52x, without bound in count.
 * The base covers a full batch of empty items (1024 empty envelopes: 280
 * KiB for 2 KiB). Frames of contrived but valid envelopes above 16x are
 * refused whole. */
#define KB_DECODE_MEM_PER_BYTE 16u
#define KB_DECODE_MEM_BASE     (512u * 1024u)
#define KB_DECODE_ALIGN        16u

/* Decode one frame of len bytes. Refuses frames over max_len (KB_ETOOBIG,
 * before anything is allocated); bytes that are not a Frame (at any depth:
 * field number 0, groups, lengths past their message, a NUL byte in a
 * string), have no body, carry more items in a list than its limit above
 * (KB_MAX_BATCH in a Submit, Receipt, Deliver or Ack, KB_MAX_SEALS seals in
 * an envelope, ...), a singular field or oneof twice, or more than
 * KB_MAX_UNKNOWN_FIELDS unknown fields in a message (KB_EPROTO; checked on
 * the wire before unpacking, whatever the version, with a detail naming
 * the field, e.g. "frame: submit.envelopes[0].seals: more than 64 items"),
 * or would take more memory than KB_DECODE_MEM_PER_BYTE allows (KB_EPROTO);
 * a Hello whose adapter_name or software is longer than KB_SHORT_TEXT_MAX
 * bytes, not UTF-8 or holds a control character (KB_EPROTO);
 * versions other than KB_PROTOCOL_VERSION
 * (KB_EVERSION) and NULL arguments (KB_EINVAL). A frame with neither version nor body is KB_EPROTO.
 * On KB_OK *out is the caller's. On KB_EVERSION *out is handed out too (the
 * caller's to free; only version and request_id are meaningful, the body may
 * be unset) so that the caller can answer with the request_id. On every
 * other error *out is NULL. */
int kb_frame_decode(const void *buf, size_t len, size_t max_len, Ketenbus__Frame **out);

/* The same with protobuf-c allocator alloc (NULL: malloc): *out then
 * belongs to it, and is freed with ketenbus__frame__free_unpacked(*out,
 * alloc), or not at all when alloc is an arena that is reset. */
int kb_frame_decode_with(const void *buf, size_t len, size_t max_len, ProtobufCAllocator *alloc,
                         Ketenbus__Frame **out);

/* The most items the wire scan of kb_frame_decode() lets field (by name)
 * of message msg hold; 0 if the field has no limit of its own (it then
 * gets KB_MAX_BATCH). */
size_t kb_frame_list_limit(const ProtobufCMessageDescriptor *msg, const char *field);

/* Encode a frame (its version is set to KB_PROTOCOL_VERSION). On KB_OK
 * *buf (malloc'd, caller frees) holds *len bytes; on error *buf is NULL and
 * *len 0. KB_EINVAL for NULL arguments or a frame without body, KB_ENOMEM.
 * The caller checks *len against the peer's size limit. */
int kb_frame_encode(Ketenbus__Frame *f, uint8_t **buf, size_t *len);

/* Check an envelope received from a sender: ids of the right length, known
 * enum values, kind matching the payload, required fields present, counts
 * and lengths within the limits above, valid UTF-8. Structure only: the
 * signature and seals are verified elsewhere. On failure returns KB_EPROTO
 * and writes a reason naming the field into why ("signal.urgency: unknown
 * value 9"; cut with "..." if why_len is short; why may be NULL), also kept
 * as kb_last_error(); on KB_OK why is "". Unknown fields anywhere in the
 * envelope are refused: no seal covers them and no rule could withhold them.
 * A field required of the sender (signal.exploitation, referral.action,
 * referral_update.status) may hold its default in a copy that lists it, or
 * a message above it, as withheld. KB_EINVAL if e is NULL. */
int kb_envelope_validate(const Ketenbus__Envelope *e, char *why, size_t why_len);

/* 1 if s is an agency id (and so also a broker id): 1..KB_AGENCY_ID_MAX
 * characters of a-z, 0-9 and -, safe in file names and log lines; else 0
 * (also for NULL). */
int kb_agency_id_valid(const char *s);

/* kb_envelope_validate() for an envelope an adapter submits: also refuses
 * any withheld path (KB_EPROTO, "withheld: ..."). The broker alone lists
 * what it withholds from a recipient, and the signature does not cover the
 * list. KB_EINVAL if e is NULL. */
int kb_envelope_validate_submitted(const Ketenbus__Envelope *e, char *why, size_t why_len);

/* Deep copy of an envelope (through pack/unpack), the caller's to free with
 * protobuf_c_message_free_unpacked(). NULL on no memory or a NULL e. */
Ketenbus__Envelope *kb_envelope_dup(const Ketenbus__Envelope *e);

/* What the audit records of a delivery need of a packed envelope, read
 * straight from its bytes (no allocation, nothing but these fields looked
 * at; a delivery then forwards the bytes as they are). Bytes fields point
 * into the buffer, strings are copied and NUL-terminated. */
typedef struct {
    ProtobufCBinaryData message_id;                          /* borrowed */
    char sender[KB_AGENCY_ID_MAX + 1];                       /* sending agency */
    char officer[KB_SHORT_TEXT_MAX + 1];                     /* acting officer ("" if none) */
    char basis[KB_SHORT_TEXT_MAX + 1];                       /* legal_basis.basis ("" if none) */
    int has_legal_basis;                                     /* 1 if legal_basis is present */
    int kind;                                                /* Ketenbus__Kind */
    int purpose;                                             /* Ketenbus__Purpose */
    int handling;                                            /* Ketenbus__Handling */
    size_t n_subject_keys;                                   /* count */
    ProtobufCBinaryData subject_keys[KB_MAX_SUBJECT_KEYS];   /* borrowed */
} kb_envelope_view_t;

/* Fill v from a packed Envelope of len bytes. KB_EPROTO (with a detail) if
 * the bytes are not a well-formed message, a string is longer than its
 * limit above or holds a NUL byte, or there are more than
 * KB_MAX_SUBJECT_KEYS subject keys; KB_EINVAL for NULL arguments. Other
 * fields are skipped unchecked: use it on bytes that were validated when
 * they were received (the broker's queue), not on a peer's. */
int kb_envelope_view(const uint8_t *buf, size_t len, kb_envelope_view_t *v);

/* 1 if withholding payload path (kb_seal_redact) may change the packed
 * Envelope of len bytes: a field on the path occurs in them, or a seal of
 * the path or of a field under it keeps its salt. 0 if it would change
 * nothing: the field is absent, or withheld already. Reads only the
 * payload along the path and the seals, so that a delivery can tell
 * whether its rule withholds more than the queued copy lacks without
 * unpacking it. KB_EPROTO if the bytes are not well-formed, KB_EINVAL for
 * NULL arguments or a path that is not a payload field. Like
 * kb_envelope_view, for bytes validated when they were received. */
int kb_envelope_carries(const uint8_t *buf, size_t len, const char *path);

/* One delivery whose envelope is already packed. */
typedef struct {
    uint64_t tag;                   /* delivery tag */
    const uint8_t *envelope;        /* packed Envelope (borrowed) */
    size_t envelope_len;            /* its length */
} kb_delivery_raw_t;

/* Encode a DELIVER frame of n deliveries without unpacking their envelopes:
 * the same bytes kb_frame_encode() makes of the unpacked frame. *buf
 * (malloc'd) is the caller's. KB_EINVAL (NULL arguments, n == 0 or over
 * KB_MAX_BATCH), KB_ETOOBIG (size overflow), KB_ENOMEM. */
int kb_deliver_encode(const kb_delivery_raw_t *d, size_t n, uint8_t **buf, size_t *len);

/* One message already packed (borrowed bytes). */
typedef struct {
    const uint8_t *bytes;           /* packed message */
    size_t len;                     /* its length */
} kb_packed_t;

/* Encode a SUBMIT frame of n packed envelopes without unpacking them: the
 * same bytes kb_frame_encode() makes of the unpacked frame with this
 * request_id (0: none). The SDK resends its outbox with it. *buf
 * (malloc'd) is the caller's. KB_EINVAL (NULL arguments, n == 0 or over
 * KB_MAX_BATCH), KB_ETOOBIG (size overflow), KB_ENOMEM. */
int kb_submit_encode(uint64_t request_id, const kb_packed_t *envelopes, size_t n, uint8_t **buf, size_t *len);

/* Bytes that one packed envelope of len bytes takes in a SUBMIT frame, and
 * the bytes of the whole frame with this request_id (0: none) around
 * envelopes taking body bytes: what kb_submit_encode() makes, so that a
 * sender can keep its frames within the broker's max_message_bytes. */
size_t kb_submit_item_len(size_t len);
size_t kb_submit_frame_len(uint64_t request_id, size_t body);

/* Encode a RECEIPT frame around entries[0..entries_len), the packed body of
 * a Receipt (its entries one after another, as ketenbus__receipt__pack
 * writes them; receipts packed one after another concatenate into one):
 * the same bytes kb_frame_encode() makes of the unpacked frame. The broker
 * answers the SUBMITs of one session in one turn with one such frame.
 * *buf (malloc'd) is the caller's. KB_EINVAL (NULL arguments), KB_ETOOBIG
 * (size overflow), KB_ENOMEM. */
int kb_receipt_encode(uint64_t request_id, const uint8_t *entries, size_t entries_len, uint8_t **buf, size_t *len);

/* Short lowercase name of a kind ("signal", "referral", "referral_update",
 * "match_notice", "expiry_notice"; "unknown" for any other value). Static. */
const char *kb_kind_name(int kind);

/* True if s[0..len) is valid UTF-8 without NUL bytes: no overlong forms,
 * surrogates, code points above U+10FFFF or cut-off sequences. */
int kb_utf8_valid(const char *s, size_t len);

/* Decode the code point at s[*pos] (s has len bytes) as strict UTF-8, as
 * kb_utf8_valid() accepts it (a NUL byte is U+0000 here), into *cp and
 * move *pos past it; KB_OK, or KB_EPROTO (nothing moved) for a byte that
 * starts no valid sequence there. */
int kb_utf8_next(const char *s, size_t len, size_t *pos, uint32_t *cp);

#endif
