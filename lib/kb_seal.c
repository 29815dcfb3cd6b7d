/*
 * kb_seal.c - field seals and Ed25519 envelope signatures that survive
 * redaction (proto/SIGNING.md is the normative description of the bytes).
 *
 * The payload is walked generically through the protobuf-c descriptors, so
 * a field added to a payload message is sealed without a code change:
 * message fields are descended into, every other field (scalar, enum,
 * string, bytes, or a repeated field as a whole) is a leaf. Each present
 * leaf gets a seal SHA-256(salt || u32(len path) || path || u32(len value)
 * || value) over its canonical, language-neutral value bytes; the sender
 * signs the header fields plus all (path, digest) pairs.
 *
 * Invariants kept by every function here:
 * - Seals are sorted by path (bytewise) without duplicates; a seal without
 *   salt stands for a withheld field.
 * - Edits follow the ownership rule of kb_codec.h: every member is malloc'd
 *   and the tree is freed with protobuf_c_message_free_unpacked(). Cleared
 *   fields are set back to their proto3 default.
 * - kb_seal_sign() changes the envelope only when it succeeds.
 *
 * Used by the SDK (sign, verify on receipt), the broker (verify on submit,
 * redact per recipient) and the rules linter (kb_seal_path_exists).
 */
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_seal.h"

/* First bytes of the signed bytes; bump the version with any layout change. */
#define KB_SEAL_DOMAIN      "ketenbus-envelope-v1\n"
/* Longest path, NUL included ("referral.signal.observed.location"). */
#define KB_SEAL_PATH_MAX    KB_SHORT_TEXT_MAX
/* First allocation of a growing byte buffer. */
#define KB_SEAL_BUF_INITIAL 256u
/* Bytes of a sender's seal path an error quotes (s_path_show). */
#define KB_SEAL_PATH_SHOW   48u

/* A growing byte buffer; data is wiped when freed (leaf values may be secret). */
typedef struct {
    uint8_t *data; /* malloc'd, NULL until the first write */
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated */
} kb_seal_buf_t;

/* One present leaf found while sealing. */
typedef struct {
    char *path;      /* malloc'd path, e.g. "signal.narrative" */
    uint8_t *value;  /* malloc'd canonical value bytes (may be NULL if empty) */
    size_t value_len;/* bytes in value */
} kb_seal_leaf_t;

/* Leaves collected by kb_seal_sign, at most KB_MAX_SEALS. */
typedef struct {
    kb_seal_leaf_t leaves[KB_MAX_SEALS]; /* in walk order until sorted */
    size_t n;                            /* leaves in use */
} kb_seal_leaves_t;

/* State of kb_seal_verify's walk over the visible leaves. */
typedef struct {
    const Ketenbus__Envelope *e;   /* envelope being verified */
    uint8_t matched[KB_MAX_SEALS]; /* seal i was matched by a present leaf */
} kb_seal_check_t;

/* Called for each present leaf with its path and canonical value. */
typedef int (kb_seal_leaf_fn)(void *arg, const char *path, const uint8_t *value, size_t value_len);

/* ------------------------------------------------------------ byte buffer */

static void s_buf_free(kb_seal_buf_t *b)
{
    if (b->data)
        OPENSSL_clear_free(b->data, b->cap);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int s_buf_put(kb_seal_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return KB_OK;
    if (n > SIZE_MAX - b->len)
        return kb_error_set(KB_ETOOBIG, "seal: buffer size overflow");
    size_t need = b->len + n;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : KB_SEAL_BUF_INITIAL;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        uint8_t *data = OPENSSL_malloc(cap);
        if (!data)
            return kb_error_set(KB_ENOMEM, "seal: out of memory (%zu bytes)", cap);
        if (b->len)
            memcpy(data, b->data, b->len);
        if (b->data)
            OPENSSL_clear_free(b->data, b->cap);
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return KB_OK;
}

static void s_be32(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static int s_buf_u32(kb_seal_buf_t *b, uint32_t v)
{
    uint8_t be[4];
    s_be32(be, v);
    return s_buf_put(b, be, sizeof be);
}

static int s_buf_u64(kb_seal_buf_t *b, uint64_t v)
{
    uint8_t be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(v >> (56 - 8 * i));
    return s_buf_put(b, be, sizeof be);
}

/* A length as the u32 the encoding uses; larger ones cannot be encoded. */
static int s_buf_len32(kb_seal_buf_t *b, size_t n)
{
    if (n > UINT32_MAX)
        return kb_error_set(KB_ETOOBIG, "seal: item of %zu bytes exceeds the u32 length", n);
    return s_buf_u32(b, (uint32_t)n);
}

/* blob(x) = u32be(len x) || x */
static int s_buf_blob(kb_seal_buf_t *b, const void *p, size_t n)
{
    int rc = s_buf_len32(b, n);
    return rc ? rc : s_buf_put(b, p, n);
}

static int s_buf_str(kb_seal_buf_t *b, const char *s)
{
    return s ? s_buf_blob(b, s, strlen(s)) : s_buf_blob(b, NULL, 0);
}

static int s_buf_int32(kb_seal_buf_t *b, int32_t v)
{
    uint8_t be[4];
    s_be32(be, (uint32_t)v);
    return s_buf_blob(b, be, sizeof be);
}

static int s_buf_int64(kb_seal_buf_t *b, int64_t v)
{
    int rc = s_buf_len32(b, 8);
    return rc ? rc : s_buf_u64(b, (uint64_t)v);
}

/* ------------------------------------------------- descriptor-driven access */

/* The member at a descriptor's offset inside a message struct. */
static void *s_member(void *m, unsigned off)
{
    return (char *)m + off;
}

static const void *s_cmember(const void *m, unsigned off)
{
    return (const char *)m + off;
}

/* Bytes one element of this type takes in a protobuf-c struct or array. */
static size_t s_type_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* True if the value at p differs from the proto3 default of its type. */
static int s_nonzero(ProtobufCType type, const void *p)
{
    switch (type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)p;
        return s && s[0] != '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len > 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(const ProtobufCMessage *const *)p != NULL;
    default: {
        /* Floats too: compared by bits, as protobuf does (-0.0 is present). */
        size_t n = s_type_size(type);
        const uint8_t *b = p;
        for (size_t i = 0; i < n; i++)
            if (b[i])
                return 1;
        return 0;
    }
    }
}

/* Only proto3 labels are sealable; REQUIRED is proto2 and never generated
 * for ketenbus.proto. */
static int s_label_ok(const ProtobufCFieldDescriptor *f)
{
    return f->label == PROTOBUF_C_LABEL_NONE || f->label == PROTOBUF_C_LABEL_OPTIONAL ||
           f->label == PROTOBUF_C_LABEL_REPEATED;
}

/* Presence as SIGNING.md defines it (mirrors what protobuf-c packs). */
static int s_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const void *member = s_cmember(m, f->offset);
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)s_cmember(m, f->quantifier_offset) > 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)s_cmember(m, f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        /* proto3 `optional`: explicit presence */
        if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const void *ptr = *(const void *const *)member;
            return ptr != NULL && ptr != f->default_value;
        }
        return *(const protobuf_c_boolean *)s_cmember(m, f->quantifier_offset) != 0;
    }
    return s_nonzero(f->type, member);
}

/* Canonical bytes of one non-message value (SIGNING.md, "Leaf values"). */
static int s_put_value(kb_seal_buf_t *b, ProtobufCType type, const void *p)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM: {
        uint32_t v;
        memcpy(&v, p, sizeof v); /* two's complement / IEEE-754 bits as stored */
        return s_buf_u32(b, v);
    }
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE: {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        return s_buf_u64(b, v);
    }
    case PROTOBUF_C_TYPE_BOOL: {
        uint8_t v = *(const protobuf_c_boolean *)p ? 1 : 0;
        return s_buf_put(b, &v, 1);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)p;
        return s ? s_buf_put(b, s, strlen(s)) : KB_OK;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *d = p;
        return d->len ? s_buf_put(b, d->data, d->len) : KB_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        break;
    }
    return kb_error_set(KB_EPROTO, "seal: field type %d has no canonical value", (int)type);
}

/* Canonical value of a present leaf field into b (which is emptied first). */
static int s_leaf_value(kb_seal_buf_t *b, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    b->len = 0;
    const void *member = s_cmember(m, f->offset);
    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return s_put_value(b, f->type, member);
    /* repeated: u32 count, then blob(element) for each */
    size_t n = *(const size_t *)s_cmember(m, f->quantifier_offset);
    const uint8_t *arr = *(const uint8_t *const *)member;
    size_t esz = s_type_size(f->type);
    int rc = s_buf_len32(b, n);
    for (size_t i = 0; rc == KB_OK && i < n; i++) {
        size_t at = b->len;
        rc = s_buf_u32(b, 0); /* patched below with the element's length */
        if (rc == KB_OK)
            rc = s_put_value(b, f->type, arr + i * esz);
        if (rc == KB_OK) {
            size_t elen = b->len - at - 4;
            if (elen > UINT32_MAX)
                return kb_error_set(KB_ETOOBIG, "seal: %s element %zu too large", f->name, i);
            s_be32(b->data + at, (uint32_t)elen);
        }
    }
    return rc;
}

/* Append ".name" (or "name" at the root) to path[0..len); new length in *out. */
static int s_path_push(char *path, size_t len, const char *name, size_t *out)
{
    int n = snprintf(path + len, KB_SEAL_PATH_MAX - len, "%s%s", len ? "." : "", name);
    if (n < 0 || (size_t)n >= KB_SEAL_PATH_MAX - len) {
        path[len] = '\0';
        return kb_error_set(KB_ETOOBIG, "seal: path %s.%s longer than %u bytes", path, name,
                            KB_SEAL_PATH_MAX - 1);
    }
    *out = len + (size_t)n;
    return KB_OK;
}

/* Call fn for every present leaf under message m, whose path is path[0..len). */
static int s_walk(const ProtobufCMessage *m, char *path, size_t len, unsigned depth,
                  kb_seal_buf_t *val, kb_seal_leaf_fn *fn, void *arg)
{
    if (depth >= KB_SEAL_MAX_DEPTH)
        return kb_error_set(KB_EPROTO, "seal: %s nested deeper than %u levels", path,
                            KB_SEAL_MAX_DEPTH);
    /* Unknown fields would travel unsigned: refuse rather than pass them on. */
    if (m->n_unknown_fields)
        return kb_error_set(KB_EPROTO, "seal: %s has %u unknown fields", path, m->n_unknown_fields);
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!s_label_ok(f))
            return kb_error_set(KB_EPROTO, "seal: %s.%s: proto2 required fields are not sealable",
                                path, f->name);
        if (!s_present(m, f))
            continue;
        size_t sub_len;
        int rc = s_path_push(path, len, f->name, &sub_len);
        if (rc)
            return rc;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->label == PROTOBUF_C_LABEL_REPEATED) {
            rc = kb_error_set(KB_EPROTO, "seal: %s: repeated message fields are not sealable", path);
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)s_cmember(m, f->offset);
            rc = s_walk(sub, path, sub_len, depth + 1, val, fn, arg);
        } else {
            rc = s_leaf_value(val, m, f);
            if (rc == KB_OK)
                rc = fn(arg, path, val->data, val->len);
        }
        path[len] = '\0';
        if (rc)
            return rc;
    }
    return KB_OK;
}

/* Presence of a message field is not signed in version 1: a set message is
 * only descended into, so an empty one gives no seal and can be added or
 * removed unnoticed. That is harmless while a message field's presence
 * means nothing. A oneof member or a field with explicit presence
 * (proto3 `optional`; protobuf-c gives it LABEL_OPTIONAL, and LABEL_NONE
 * to a plain proto3 message field) of message type exists for its
 * presence, so a payload type that has one anywhere is refused
 * (SIGNING.md, "Paths and leaves"). The schema is checked, not the
 * message: such a field is refused also when it is not set. Envelope's own
 * payload oneof is outside the payload types: its member name is signed.
 * Types nested deeper than a path can reach are not looked into. */
static int s_schema_walk(const ProtobufCMessageDescriptor *d, char *path, size_t len, unsigned depth)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
            continue;
        size_t sub_len;
        int rc = s_path_push(path, len, f->name, &sub_len);
        if (rc)
            return rc;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            rc = kb_error_set(KB_EPROTO, "seal: %s: a oneof member of message type is not sealable in "
                              "version 1 (its presence would not be signed)", path);
        else if (f->label != PROTOBUF_C_LABEL_NONE)
            rc = kb_error_set(KB_EPROTO, "seal: %s: a message field with explicit presence (optional) is not "
                              "sealable in version 1 (its presence would not be signed)", path);
        else if (depth + 1 < KB_SEAL_MAX_DEPTH)
            rc = s_schema_walk(f->descriptor, path, sub_len, depth + 1);
        path[len] = '\0';
        if (rc)
            return rc;
    }
    return KB_OK;
}

int kb_seal_schema_check(const ProtobufCMessageDescriptor *d, const char *member)
{
    if (!d || !member)
        return kb_error_set(KB_EINVAL, "seal: schema check: NULL argument");
    char path[KB_SEAL_PATH_MAX];
    size_t len = 0;
    int rc = s_path_push(path, 0, member, &len);
    return rc ? rc : s_schema_walk(d, path, len, 1);
}

/* The set member of Envelope's `payload` oneof and its message, or NULL. */
static const ProtobufCFieldDescriptor *s_payload(const Ketenbus__Envelope *e, ProtobufCMessage **msg)
{
    const ProtobufCMessageDescriptor *d = &ketenbus__envelope__descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || f->type != PROTOBUF_C_TYPE_MESSAGE ||
            f->quantifier_offset != offsetof(Ketenbus__Envelope, payload_case))
            continue;
        if ((uint32_t)e->payload_case != f->id)
            continue;
        ProtobufCMessage *m = *(ProtobufCMessage *const *)s_cmember(e, f->offset);
        if (!m)
            return NULL;
        *msg = m;
        return f;
    }
    return NULL;
}

/* The payload member of Envelope with this name, or NULL. */
static const ProtobufCFieldDescriptor *s_payload_by_name(const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(&ketenbus__envelope__descriptor, name);
    if (!f || !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || f->type != PROTOBUF_C_TYPE_MESSAGE ||
        f->quantifier_offset != offsetof(Ketenbus__Envelope, payload_case))
        return NULL;
    return f;
}

/* Split a path into buf and resolve each component to its field: fields[0]
 * is the Envelope payload member. 1 if the path names a field under one. */
static int s_resolve(const char *path, char buf[KB_SEAL_PATH_MAX],
                     const ProtobufCFieldDescriptor *fields[KB_SEAL_MAX_DEPTH], size_t *n_out)
{
    if (!path)
        return 0;
    size_t len = strnlen(path, KB_SEAL_PATH_MAX);
    if (len == 0 || len >= KB_SEAL_PATH_MAX)
        return 0;
    memcpy(buf, path, len + 1);
    size_t n = 0;
    const ProtobufCMessageDescriptor *d = NULL;
    char *tok = buf;
    for (;;) {
        char *dot = strchr(tok, '.');
        if (dot)
            *dot = '\0';
        if (*tok == '\0' || n == KB_SEAL_MAX_DEPTH)
            return 0;
        const ProtobufCFieldDescriptor *f;
        if (n == 0) {
            f = s_payload_by_name(tok);
        } else {
            if (!d)
                return 0; /* the previous component was a leaf */
            f = protobuf_c_message_descriptor_get_field_by_name(d, tok);
        }
        if (!f)
            return 0;
        fields[n++] = f;
        d = (f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED)
                ? f->descriptor : NULL;
        if (!dot)
            break;
        tok = dot + 1;
    }
    *n_out = n;
    return n >= 2; /* the payload member itself is not a field path */
}

/* ------------------------------------------------------------ digests */

static int s_digest(const uint8_t salt[KB_SALT_LEN], const char *path, const uint8_t *value,
                    size_t value_len, uint8_t out[KB_DIGEST_LEN])
{
    kb_seal_buf_t b = {0};
    int rc = s_buf_put(&b, salt, KB_SALT_LEN);
    if (rc == KB_OK)
        rc = s_buf_str(&b, path);
    if (rc == KB_OK)
        rc = s_buf_blob(&b, value, value_len);
    unsigned int dlen = 0;
    if (rc == KB_OK &&
        (EVP_Digest(b.data, b.len, out, &dlen, EVP_sha256(), NULL) != 1 || dlen != KB_DIGEST_LEN))
        rc = kb_error_ssl(KB_ECRYPTO, "seal %s: SHA-256", path);
    s_buf_free(&b);
    return rc;
}

/* ------------------------------------------------------------ signed bytes */

static int s_signed_bytes(const Ketenbus__Envelope *e, const char *member,
                          Ketenbus__FieldSeal *const *seals, size_t n_seals, kb_seal_buf_t *b)
{
    static const char domain[] = KB_SEAL_DOMAIN;
    const Ketenbus__LegalBasis *lb = e->legal_basis;
    int rc = s_buf_put(b, domain, sizeof domain - 1);
    if (rc == KB_OK)
        rc = s_buf_blob(b, e->message_id.data, e->message_id.len);
    if (rc == KB_OK)
        rc = s_buf_str(b, e->sender);
    if (rc == KB_OK)
        rc = s_buf_len32(b, e->n_recipients);
    for (size_t i = 0; rc == KB_OK && i < e->n_recipients; i++)
        rc = s_buf_str(b, e->recipients[i]);
    if (rc == KB_OK)
        rc = s_buf_int32(b, (int32_t)e->kind);
    if (rc == KB_OK)
        rc = s_buf_int32(b, (int32_t)e->purpose);
    if (rc == KB_OK)
        rc = s_buf_int32(b, (int32_t)e->handling);
    if (rc == KB_OK)
        rc = s_buf_str(b, lb ? lb->basis : NULL);
    if (rc == KB_OK)
        rc = s_buf_int32(b, lb ? (int32_t)lb->consent : 0);
    if (rc == KB_OK)
        rc = s_buf_str(b, lb ? lb->consent_reference : NULL);
    if (rc == KB_OK)
        rc = s_buf_int64(b, e->created_us);
    if (rc == KB_OK)
        rc = s_buf_blob(b, e->correlation_id.data, e->correlation_id.len);
    if (rc == KB_OK)
        rc = s_buf_len32(b, e->n_subject_keys);
    for (size_t i = 0; rc == KB_OK && i < e->n_subject_keys; i++)
        rc = s_buf_blob(b, e->subject_keys[i].data, e->subject_keys[i].len);
    if (rc == KB_OK)
        rc = s_buf_str(b, e->officer);
    if (rc == KB_OK)
        rc = s_buf_str(b, member);
    if (rc == KB_OK)
        rc = s_buf_len32(b, n_seals);
    for (size_t i = 0; rc == KB_OK && i < n_seals; i++) {
        rc = s_buf_str(b, seals[i]->path);
        if (rc == KB_OK)
            rc = s_buf_blob(b, seals[i]->digest.data, seals[i]->digest.len);
    }
    return rc;
}

int kb_seal_signed_bytes(const Ketenbus__Envelope *e, uint8_t **out, size_t *out_len)
{
    if (!e || !out || !out_len)
        return kb_error_set(KB_EINVAL, "seal: signed bytes: NULL argument");
    ProtobufCMessage *payload;
    const ProtobufCFieldDescriptor *pf = s_payload(e, &payload);
    if (!pf)
        return kb_error_set(KB_EINVAL, "seal: envelope has no payload");
    if (e->n_seals > KB_MAX_SEALS)
        return kb_error_set(KB_ETOOBIG, "seal: %zu seals, at most %u", e->n_seals, KB_MAX_SEALS);
    for (size_t i = 0; i < e->n_seals; i++)
        if (!e->seals[i])
            return kb_error_set(KB_EINVAL, "seal: seal %zu is NULL", i);
    kb_seal_buf_t b = {0};
    int rc = s_signed_bytes(e, pf->name, e->seals, e->n_seals, &b);
    if (rc) {
        s_buf_free(&b);
        return rc;
    }
    /* Hand over a plain malloc'd copy: the caller frees with free(). */
    uint8_t *copy = malloc(b.len);
    if (!copy) {
        s_buf_free(&b);
        return kb_error_set(KB_ENOMEM, "seal: out of memory (%zu bytes)", b.len);
    }
    memcpy(copy, b.data, b.len);
    *out = copy;
    *out_len = b.len;
    s_buf_free(&b);
    return KB_OK;
}

/* ------------------------------------------------------------ signing */

static int s_is_ed25519(EVP_PKEY *key)
{
    return EVP_PKEY_is_a(key, "ED25519");
}

static int s_ed25519_sign(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t sig[KB_SIGNATURE_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return kb_error_ssl(KB_ENOMEM, "seal: digest context");
    size_t sig_len = KB_SIGNATURE_LEN;
    int rc = KB_OK;
    /* Ed25519 hashes internally: no message digest is given (NULL md). */
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, msg, len) != 1 || sig_len != KB_SIGNATURE_LEN)
        rc = kb_error_ssl(KB_ECRYPTO, "seal: Ed25519 sign");
    EVP_MD_CTX_free(ctx);
    return rc;
}

static int s_leaf_collect(void *arg, const char *path, const uint8_t *value, size_t value_len)
{
    kb_seal_leaves_t *c = arg;
    if (c->n == KB_MAX_SEALS)
        return kb_error_set(KB_ETOOBIG, "seal: more than %u present payload fields (at %s)",
                            KB_MAX_SEALS, path);
    kb_seal_leaf_t *l = &c->leaves[c->n];
    l->path = strdup(path);
    l->value = value_len ? OPENSSL_malloc(value_len) : NULL;
    l->value_len = value_len;
    if (!l->path || (value_len && !l->value)) {
        free(l->path);
        OPENSSL_free(l->value);
        l->path = NULL;
        l->value = NULL;
        return kb_error_set(KB_ENOMEM, "seal: out of memory at %s", path);
    }
    if (value_len)
        memcpy(l->value, value, value_len);
    c->n++;
    return KB_OK;
}

static int s_leaf_cmp(const void *a, const void *b)
{
    return strcmp(((const kb_seal_leaf_t *)a)->path, ((const kb_seal_leaf_t *)b)->path);
}

static void s_seals_free(Ketenbus__FieldSeal **seals, size_t n)
{
    for (size_t i = 0; seals && i < n; i++)
        if (seals[i])
            protobuf_c_message_free_unpacked(&seals[i]->base, NULL);
    free(seals);
}

/* A new seal for one leaf; the path moves into it. */
static int s_seal_new(kb_seal_leaf_t *l, const uint8_t *fixed_salt, Ketenbus__FieldSeal **out)
{
    Ketenbus__FieldSeal *s = malloc(sizeof *s);
    if (!s)
        return kb_error_set(KB_ENOMEM, "seal: out of memory at %s", l->path);
    ketenbus__field_seal__init(s);
    s->salt.data = malloc(KB_SALT_LEN);
    s->digest.data = malloc(KB_DIGEST_LEN);
    int rc = KB_OK;
    if (!s->salt.data || !s->digest.data) {
        rc = kb_error_set(KB_ENOMEM, "seal: out of memory at %s", l->path);
    } else {
        s->salt.len = KB_SALT_LEN;
        s->digest.len = KB_DIGEST_LEN;
        if (fixed_salt)
            memcpy(s->salt.data, fixed_salt, KB_SALT_LEN);
        else if (RAND_bytes(s->salt.data, KB_SALT_LEN) != 1)
            rc = kb_error_ssl(KB_ECRYPTO, "seal %s: RAND_bytes", l->path);
    }
    if (rc == KB_OK)
        rc = s_digest(s->salt.data, l->path, l->value, l->value_len, s->digest.data);
    if (rc) {
        protobuf_c_message_free_unpacked(&s->base, NULL);
        return rc;
    }
    s->path = l->path;
    l->path = NULL;
    *out = s;
    return KB_OK;
}

static int s_sign(Ketenbus__Envelope *e, EVP_PKEY *key, const uint8_t *salts, size_t n_salts)
{
    if (!e || !key)
        return kb_error_set(KB_EINVAL, "seal: sign: NULL argument");
    if (!s_is_ed25519(key))
        return kb_error_set(KB_ECRYPTO, "seal: signing key is not an Ed25519 key");
    ProtobufCMessage *payload;
    const ProtobufCFieldDescriptor *pf = s_payload(e, &payload);
    if (!pf)
        return kb_error_set(KB_EINVAL, "seal: envelope has no payload");

    kb_seal_leaves_t *c = calloc(1, sizeof *c);
    if (!c)
        return kb_error_set(KB_ENOMEM, "seal: out of memory");
    char path[KB_SEAL_PATH_MAX];
    size_t len = 0;
    kb_seal_buf_t val = {0}, tbs = {0};
    Ketenbus__FieldSeal **seals = NULL;
    uint8_t *sig = NULL;
    int rc = kb_seal_schema_check(pf->descriptor, pf->name);
    if (rc == KB_OK)
        rc = s_path_push(path, 0, pf->name, &len);
    if (rc == KB_OK)
        rc = s_walk(payload, path, len, 1, &val, s_leaf_collect, c);
    if (rc == KB_OK && salts && n_salts != c->n)
        rc = kb_error_set(KB_EINVAL, "seal: %zu salts given for %zu fields", n_salts, c->n);
    if (rc == KB_OK) {
        qsort(c->leaves, c->n, sizeof c->leaves[0], s_leaf_cmp);
        seals = calloc(c->n ? c->n : 1, sizeof *seals);
        if (!seals)
            rc = kb_error_set(KB_ENOMEM, "seal: out of memory");
    }
    for (size_t i = 0; rc == KB_OK && i < c->n; i++)
        rc = s_seal_new(&c->leaves[i], salts ? salts + i * KB_SALT_LEN : NULL, &seals[i]);
    if (rc == KB_OK)
        rc = s_signed_bytes(e, pf->name, seals, c->n, &tbs);
    if (rc == KB_OK && !(sig = malloc(KB_SIGNATURE_LEN)))
        rc = kb_error_set(KB_ENOMEM, "seal: out of memory");
    if (rc == KB_OK)
        rc = s_ed25519_sign(key, tbs.data, tbs.len, sig);
    if (rc == KB_OK) {
        /* Commit: only now does the envelope change. */
        s_seals_free(e->seals, e->n_seals);
        e->seals = seals;
        e->n_seals = c->n;
        seals = NULL;
        free(e->signature.data);
        e->signature.data = sig;
        e->signature.len = KB_SIGNATURE_LEN;
        sig = NULL;
    }
    s_seals_free(seals, c->n);
    free(sig);
    for (size_t i = 0; i < c->n; i++) {
        free(c->leaves[i].path);
        OPENSSL_clear_free(c->leaves[i].value, c->leaves[i].value_len);
    }
    free(c);
    s_buf_free(&val);
    s_buf_free(&tbs);
    return rc;
}

int kb_seal_sign(Ketenbus__Envelope *e, EVP_PKEY *private_key)
{
    return s_sign(e, private_key, NULL, 0);
}

int kb_seal_sign_with_salts(Ketenbus__Envelope *e, EVP_PKEY *private_key, const uint8_t *salts,
                            size_t n_salts)
{
    if (!salts)
        return kb_error_set(KB_EINVAL, "seal: sign with salts: NULL salts");
    return s_sign(e, private_key, salts, n_salts);
}

/* ------------------------------------------------------------ verifying */

/* Index of the seal with this path (seals already checked sorted), or -1. */
static long s_seal_find(const Ketenbus__Envelope *e, const char *path)
{
    size_t lo = 0, hi = e->n_seals;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e->seals[mid]->path, path);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* True if path is prefix itself or lies under it ("a.b" covers "a.b.c"). */
static int s_covers(const char *prefix, const char *path)
{
    size_t n = strlen(prefix);
    return strncmp(prefix, path, n) == 0 && (path[n] == '\0' || path[n] == '.');
}

static int s_leaf_check(void *arg, const char *path, const uint8_t *value, size_t value_len)
{
    kb_seal_check_t *c = arg;
    long i = s_seal_find(c->e, path);
    if (i < 0)
        return kb_error_set(KB_ECRYPTO, "seal %s: field present but not sealed", path);
    const Ketenbus__FieldSeal *s = c->e->seals[i];
    if (s->salt.len == 0)
        return kb_error_set(KB_ECRYPTO, "seal %s: marked withheld but the field is present", path);
    uint8_t digest[KB_DIGEST_LEN];
    int rc = s_digest(s->salt.data, path, value, value_len, digest);
    if (rc)
        return rc;
    if (CRYPTO_memcmp(digest, s->digest.data, KB_DIGEST_LEN) != 0)
        return kb_error_set(KB_ECRYPTO, "seal %s: field does not match its digest", path);
    c->matched[i] = 1;
    return KB_OK;
}

/* A seal path the sender chose, fit for an error text that ends up in
 * receipts, audit reasons and log lines: its first KB_SEAL_PATH_SHOW
 * bytes, each one that cannot occur in a field path ([A-Za-z0-9_.]) shown
 * as '?', and "..." if cut. The error names the seal by its index too. */
static const char *s_path_show(const char *path, char buf[KB_SEAL_PATH_SHOW + 4])
{
    size_t i = 0;
    for (; path[i] && i < KB_SEAL_PATH_SHOW; i++) {
        char c = path[i];
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.';
        buf[i] = plain ? c : '?';
    }
    if (path[i]) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

static int s_withheld_listed(const Ketenbus__Envelope *e, const char *path)
{
    for (size_t i = 0; i < e->n_withheld; i++)
        if (e->withheld[i] && s_covers(e->withheld[i], path))
            return 1;
    return 0;
}

/* Shape of the seals alone: counts, lengths, order, withheld listing. */
static int s_check_seals(const Ketenbus__Envelope *e)
{
    if (e->n_seals > KB_MAX_SEALS)
        return kb_error_set(KB_ECRYPTO, "seal: %zu seals, at most %u", e->n_seals, KB_MAX_SEALS);
    char show[KB_SEAL_PATH_SHOW + 4];
    for (size_t i = 0; i < e->n_seals; i++) {
        const Ketenbus__FieldSeal *s = e->seals[i];
        if (!s || !s->path)
            return kb_error_set(KB_ECRYPTO, "seal %zu: no path", i);
        if (strnlen(s->path, KB_SEAL_PATH_MAX) >= KB_SEAL_PATH_MAX)
            return kb_error_set(KB_ECRYPTO, "seal %zu: path longer than %u bytes", i,
                                KB_SEAL_PATH_MAX - 1);
        if (s->digest.len != KB_DIGEST_LEN)
            return kb_error_set(KB_ECRYPTO, "seal %zu (%s): digest is %zu bytes, not %u", i,
                                s_path_show(s->path, show), s->digest.len, KB_DIGEST_LEN);
        if (s->salt.len != 0 && s->salt.len != KB_SALT_LEN)
            return kb_error_set(KB_ECRYPTO, "seal %zu (%s): salt is %zu bytes, not %u", i,
                                s_path_show(s->path, show), s->salt.len, KB_SALT_LEN);
        if (i > 0) {
            int c = strcmp(e->seals[i - 1]->path, s->path);
            if (c == 0)
                return kb_error_set(KB_ECRYPTO, "seal %zu (%s): duplicate path", i, s_path_show(s->path, show));
            if (c > 0)
                return kb_error_set(KB_ECRYPTO, "seal %zu (%s): seals not sorted by path", i,
                                    s_path_show(s->path, show));
        }
        if (s->salt.len == 0 && !s_withheld_listed(e, s->path))
            return kb_error_set(KB_ECRYPTO, "seal %zu (%s): withheld but not listed in withheld", i,
                                s_path_show(s->path, show));
    }
    return KB_OK;
}

/* The withheld list is unsigned (the broker writes it), so each entry must
 * explain seals that really lost their salt: a field path under the
 * envelope's payload member pf, listed once, covering at least one seal and
 * only seals without salt. Otherwise it could claim that a field was
 * withheld which never existed, or which is still there and verified.
 * Seals are already checked by s_check_seals. */
static int s_check_withheld(const Ketenbus__Envelope *e, const ProtobufCFieldDescriptor *pf)
{
    if (e->n_withheld > KB_MAX_SEALS)
        return kb_error_set(KB_ECRYPTO, "withheld: %zu entries, at most %u", e->n_withheld, KB_MAX_SEALS);
    if (e->n_withheld > 0 && !e->withheld)
        return kb_error_set(KB_ECRYPTO, "withheld: %zu entries but no array", e->n_withheld);
    char show[KB_SEAL_PATH_SHOW + 4], show_seal[KB_SEAL_PATH_SHOW + 4];
    char buf[KB_SEAL_PATH_MAX];
    const ProtobufCFieldDescriptor *fields[KB_SEAL_MAX_DEPTH];
    for (size_t i = 0; i < e->n_withheld; i++) {
        const char *w = e->withheld[i];
        if (!w)
            return kb_error_set(KB_ECRYPTO, "withheld %zu: no path", i);
        size_t n = 0;
        if (!s_resolve(w, buf, fields, &n))
            return kb_error_set(KB_ECRYPTO, "withheld %zu (%s): not a payload field path", i,
                                s_path_show(w, show));
        if (fields[0] != pf)
            return kb_error_set(KB_ECRYPTO, "withheld %zu (%s): not a field of the %s payload", i,
                                s_path_show(w, show), pf->name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(e->withheld[j], w) == 0)
                return kb_error_set(KB_ECRYPTO, "withheld %zu (%s): listed twice", i, s_path_show(w, show));
        size_t covered = 0;
        for (size_t k = 0; k < e->n_seals; k++) {
            const Ketenbus__FieldSeal *s = e->seals[k];
            if (!s_covers(w, s->path))
                continue;
            if (s->salt.len != 0)
                return kb_error_set(KB_ECRYPTO, "withheld %zu (%s): seal %zu (%s) has its salt, it was not withheld",
                                    i, s_path_show(w, show), k, s_path_show(s->path, show_seal));
            covered++;
        }
        if (covered == 0)
            return kb_error_set(KB_ECRYPTO, "withheld %zu (%s): covers no seal, nothing signed was withheld there", i,
                                s_path_show(w, show));
    }
    return KB_OK;
}

static int s_ed25519_verify(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t *sig)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return kb_error_ssl(KB_ENOMEM, "seal: digest context");
    int rc = KB_OK;
    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) != 1)
        rc = kb_error_ssl(KB_ECRYPTO, "seal: Ed25519 verify setup");
    else if (EVP_DigestVerify(ctx, sig, KB_SIGNATURE_LEN, msg, len) != 1)
        rc = kb_error_ssl(KB_ECRYPTO, "seal: signature does not verify with the sender's key");
    EVP_MD_CTX_free(ctx);
    return rc;
}

int kb_seal_verify(const Ketenbus__Envelope *e, EVP_PKEY *public_key)
{
    if (!e || !public_key)
        return kb_error_set(KB_EINVAL, "seal: verify: NULL argument");
    if (!s_is_ed25519(public_key))
        return kb_error_set(KB_ECRYPTO, "seal: verifying key is not an Ed25519 key");
    ProtobufCMessage *payload;
    const ProtobufCFieldDescriptor *pf = s_payload(e, &payload);
    if (!pf)
        return kb_error_set(KB_ECRYPTO, "seal: envelope has no payload");
    if (e->signature.len != KB_SIGNATURE_LEN)
        return kb_error_set(KB_ECRYPTO, "seal: signature is %zu bytes, not %u", e->signature.len,
                            KB_SIGNATURE_LEN);
    int rc = s_check_seals(e);
    if (rc == KB_OK)
        rc = s_check_withheld(e, pf);
    if (rc)
        return rc;

    kb_seal_check_t *c = calloc(1, sizeof *c);
    if (!c)
        return kb_error_set(KB_ENOMEM, "seal: out of memory");
    c->e = e;
    char path[KB_SEAL_PATH_MAX];
    size_t len = 0;
    kb_seal_buf_t val = {0}, tbs = {0};
    rc = kb_seal_schema_check(pf->descriptor, pf->name);
    if (rc == KB_OK)
        rc = s_path_push(path, 0, pf->name, &len);
    if (rc == KB_OK)
        rc = s_walk(payload, path, len, 1, &val, s_leaf_check, c);
    if (rc == KB_EPROTO || rc == KB_ETOOBIG)
        rc = KB_ECRYPTO; /* unsealable payload: the detail says why */
    char show[KB_SEAL_PATH_SHOW + 4];
    for (size_t i = 0; rc == KB_OK && i < e->n_seals; i++)
        if (e->seals[i]->salt.len != 0 && !c->matched[i])
            rc = kb_error_set(KB_ECRYPTO, "seal %zu (%s): sealed field is absent", i,
                              s_path_show(e->seals[i]->path, show));
    if (rc == KB_OK)
        rc = s_signed_bytes(e, pf->name, e->seals, e->n_seals, &tbs);
    if (rc == KB_OK)
        rc = s_ed25519_verify(public_key, tbs.data, tbs.len, e->signature.data);
    free(c);
    s_buf_free(&val);
    s_buf_free(&tbs);
    return rc;
}

/* ------------------------------------------------------------ redaction */

/* Free one element of a repeated field or a singular value, wiping text. */
static void s_value_free(ProtobufCType type, const ProtobufCFieldDescriptor *f, void *p)
{
    if (type == PROTOBUF_C_TYPE_STRING) {
        char *s = *(char **)p;
        if (s && s != f->default_value) {
            OPENSSL_cleanse(s, strlen(s));
            free(s);
        }
    } else if (type == PROTOBUF_C_TYPE_BYTES) {
        ProtobufCBinaryData *d = p;
        const ProtobufCBinaryData *def = f->default_value;
        if (d->data && (!def || def->data != d->data)) {
            OPENSSL_cleanse(d->data, d->len);
            free(d->data);
        }
    } else if (type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage *m = *(ProtobufCMessage **)p;
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
    }
}

/* Set a present field back to its proto3 default, freeing what it held. */
static void s_clear(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    void *member = s_member(m, f->offset);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t *n = s_member(m, f->quantifier_offset);
        uint8_t *arr = *(uint8_t **)member;
        size_t esz = s_type_size(f->type);
        for (size_t i = 0; arr && i < *n; i++)
            s_value_free(f->type, f, arr + i * esz);
        if (arr) {
            OPENSSL_cleanse(arr, *n * esz);
            free(arr);
        }
        *(void **)member = NULL;
        *n = 0;
        return;
    }
    s_value_free(f->type, f, member);
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        /* free_unpacked skips the default pointer, so it is safe to leave */
        *(char **)member = (char *)f->default_value;
        break;
    case PROTOBUF_C_TYPE_BYTES:
        ((ProtobufCBinaryData *)member)->data = NULL;
        ((ProtobufCBinaryData *)member)->len = 0;
        break;
    case PROTOBUF_C_TYPE_MESSAGE:
        *(ProtobufCMessage **)member = NULL;
        break;
    default:
        memset(member, 0, s_type_size(f->type));
        break;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)s_member(m, f->quantifier_offset) = 0; /* case: not set */
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
             f->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)s_member(m, f->quantifier_offset) = 0;
}

/* True if message m holds a value: a present leaf at any depth, or
 * anything it cannot tell about (unknown fields, nesting past the limit). */
static int s_holds_value(const ProtobufCMessage *m, unsigned depth)
{
    if (m->n_unknown_fields || depth >= KB_SEAL_MAX_DEPTH)
        return 1;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!s_present(m, f))
            continue;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
            return 1;
        if (s_holds_value(*(const ProtobufCMessage *const *)s_cmember(m, f->offset), depth + 1))
            return 1;
    }
    return 0;
}

int kb_seal_redact(Ketenbus__Envelope *e, const char *path)
{
    if (!e || !path)
        return kb_error_set(KB_EINVAL, "seal: redact: NULL argument");
    char buf[KB_SEAL_PATH_MAX];
    const ProtobufCFieldDescriptor *fields[KB_SEAL_MAX_DEPTH];
    size_t n = 0;
    if (!s_resolve(path, buf, fields, &n))
        return kb_error_set(KB_ENOTFOUND, "seal: %.*s is not a payload field",
                            (int)KB_SHORT_TEXT_MAX, path);

    /* Find the field's parent message; any absent step means the field is absent. */
    ProtobufCMessage *m = NULL;
    const ProtobufCFieldDescriptor *pf = s_payload(e, &m);
    int present = pf == fields[0];
    for (size_t i = 1; present && i + 1 < n; i++) {
        present = s_present(m, fields[i]);
        if (present)
            m = *(ProtobufCMessage **)s_member(m, fields[i]->offset);
    }
    const ProtobufCFieldDescriptor *f = fields[n - 1];
    if (present)
        present = s_present(m, f);
    /* A set message field without a value under it (an empty sub-message)
     * has no seal and nothing to withhold: listing it would claim that a
     * signed field was withheld where none was (SIGNING.md, Withholding). */
    if (present && f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED)
        present = s_holds_value(*(const ProtobufCMessage *const *)s_cmember(m, f->offset), (unsigned)n);

    int salted = 0;
    for (size_t i = 0; i < e->n_seals; i++)
        if (e->seals[i] && e->seals[i]->path && e->seals[i]->salt.len &&
            s_covers(path, e->seals[i]->path))
            salted = 1;
    if (!present && !salted)
        return KB_OK; /* nothing to withhold */

    /* Allocate before changing anything, so a failure leaves e as it was. */
    int listed = 0;
    for (size_t i = 0; i < e->n_withheld; i++)
        if (e->withheld[i] && strcmp(e->withheld[i], path) == 0)
            listed = 1;
    char *dup = NULL;
    if (!listed) {
        if (e->n_withheld >= KB_MAX_SEALS)
            return kb_error_set(KB_ETOOBIG, "seal: more than %u withheld paths", KB_MAX_SEALS);
        dup = strdup(path);
        char **list = dup ? realloc(e->withheld, (e->n_withheld + 1) * sizeof *list) : NULL;
        if (!list) {
            free(dup);
            return kb_error_set(KB_ENOMEM, "seal: out of memory withholding %s", path);
        }
        e->withheld = list;
    }

    if (present)
        s_clear(m, f);
    for (size_t i = 0; i < e->n_seals; i++) {
        Ketenbus__FieldSeal *s = e->seals[i];
        if (s && s->path && s->salt.len && s_covers(path, s->path)) {
            OPENSSL_cleanse(s->salt.data, s->salt.len);
            free(s->salt.data);
            s->salt.data = NULL;
            s->salt.len = 0;
        }
    }
    if (dup)
        e->withheld[e->n_withheld++] = dup;
    return KB_OK;
}

int kb_seal_path_exists(const char *path)
{
    char buf[KB_SEAL_PATH_MAX];
    const ProtobufCFieldDescriptor *fields[KB_SEAL_MAX_DEPTH];
    size_t n = 0;
    return s_resolve(path, buf, fields, &n);
}

size_t kb_seal_path_ids(const char *path, uint32_t ids[KB_SEAL_MAX_DEPTH])
{
    char buf[KB_SEAL_PATH_MAX];
    const ProtobufCFieldDescriptor *fields[KB_SEAL_MAX_DEPTH];
    size_t n = 0;
    if (!s_resolve(path, buf, fields, &n))
        return 0;
    for (size_t i = 0; i < n; i++)
        ids[i] = fields[i]->id;
    return n;
}
