/*
 * kb_codec.c - Frame and Envelope encoding, decoding and validation.
 *
 * The gate every byte from a peer passes before another module sees it. The
 * broker decodes adapter frames with it and the SDK decodes broker frames;
 * both validate each envelope they take in with kb_envelope_validate().
 *
 * Invariants:
 * - kb_frame_decode() refuses a frame over the caller's size limit before any
 *   allocation. It then checks the whole frame on the wire (tags, wire types,
 *   lengths, at every depth), counts the items of every list of every
 *   message against the limit validation would enforce anyway, and refuses
 *   singular fields given twice and piles of unknown fields, all before
 *   protobuf-c allocates one struct or string per item: a 1 MiB frame of
 *   empty seals cost 40 times its size in memory. protobuf-c then unpacks
 *   through an allocator with a budget of KB_DECODE_MEM_PER_BYTE per byte,
 *   so that no shape of frame takes more.
 * - On every error path the unpacked frame is freed and *out stays NULL, with
 *   one exception: on KB_EVERSION the frame is handed out so that the caller
 *   can answer with the peer's request_id.
 * - kb_envelope_validate() checks structure only (signatures and seals are
 *   verified elsewhere). It walks every string and enum of the envelope
 *   through the protobuf-c descriptors, so a field added to the proto is
 *   checked for UTF-8 and known enum values without touching this file.
 *   Unknown fields in an envelope are refused: no seal covers them and no
 *   sharing rule could withhold them.
 * - Nothing here prints or aborts; failures return a KB_E* code and record a
 *   detail with kb_error_set().
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_seal.h"

/* Longest field path in a reason ("referral.signal.observed.location"). */
#define KB_CODEC_PATH_MAX 128u
/* Deepest message nesting followed on the wire and in the walk (the proto
 * nests Frame > Submit > Envelope > Referral > Signal > Observation). */
#define KB_CODEC_MAX_DEPTH 8u
/* Most fields of a message the wire scan counts (AuditRecord, the largest
 * message of the proto, has 19). */
#define KB_CODEC_MAX_FIELDS 32u
/* A varint is at most 10 bytes on the wire. */
#define KB_VARINT_MAX_BYTES 10u
/* Highest field number protobuf allows. */
#define KB_FIELD_NUMBER_MAX ((1u << 29) - 1u)

/* Protobuf wire types. */
enum {
    KB_WIRE_VARINT = 0,
    KB_WIRE_FIXED64 = 1,
    KB_WIRE_LEN = 2,
    KB_WIRE_FIXED32 = 5
};

/* Read position in an untrusted buffer. */
typedef struct {
    const uint8_t *buf; /* start of the bytes */
    size_t len;         /* number of bytes */
    size_t pos;         /* next byte to read, pos <= len */
} kb_cursor_t;

/* ------------------------------------------------------------ wire scan */

static int s_read_varint(kb_cursor_t *c, uint64_t *v)
{
    uint64_t out = 0;
    for (unsigned i = 0; i < KB_VARINT_MAX_BYTES; i++) {
        if (c->len - c->pos < 1)
            return KB_EPROTO;
        uint8_t b = c->buf[c->pos++];
        out |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *v = out;
            return KB_OK;
        }
    }
    return KB_EPROTO;
}

/* Read one tag; field numbers outside 1..2^29-1 are malformed. */
static int s_read_tag(kb_cursor_t *c, uint32_t *field, unsigned *wire)
{
    uint64_t tag;
    if (s_read_varint(c, &tag) != KB_OK)
        return KB_EPROTO;
    uint64_t num = tag >> 3;
    if (num == 0 || num > KB_FIELD_NUMBER_MAX)
        return KB_EPROTO;
    *field = (uint32_t)num;
    *wire = (unsigned)(tag & 7);
    return KB_OK;
}

/* Skip the value of a field; for KB_WIRE_LEN hand out its bytes. Groups
 * (wire types 3 and 4) are not part of proto3 and refused. */
static int s_skip_value(kb_cursor_t *c, unsigned wire, kb_cursor_t *inner)
{
    uint64_t v;
    switch (wire) {
    case KB_WIRE_VARINT:
        return s_read_varint(c, &v);
    case KB_WIRE_FIXED64:
        if (c->len - c->pos < 8)
            return KB_EPROTO;
        c->pos += 8;
        return KB_OK;
    case KB_WIRE_FIXED32:
        if (c->len - c->pos < 4)
            return KB_EPROTO;
        c->pos += 4;
        return KB_OK;
    case KB_WIRE_LEN:
        if (s_read_varint(c, &v) != KB_OK || v > c->len - c->pos)
            return KB_EPROTO;
        if (inner) {
            inner->buf = c->buf + c->pos;
            inner->len = (size_t)v;
            inner->pos = 0;
        }
        c->pos += (size_t)v;
        return KB_OK;
    default:
        return KB_EPROTO;
    }
}

/* Most items each repeated field reachable from a Frame may hold: the
 * limits kb_envelope_validate() and the batch commands enforce anyway,
 * checked on the wire so that protobuf-c never allocates past them. A
 * repeated field missing here gets KB_MAX_BATCH (tests/unit/check_codec.c
 * checks that every one reachable from a Frame is listed). */
static const struct {
    const ProtobufCMessageDescriptor *msg; /* message holding the list */
    const char *field;                     /* the repeated field */
    size_t max;                            /* most items allowed */
} s_list_limits[] = {
    {&ketenbus__submit__descriptor, "envelopes", KB_MAX_BATCH},
    {&ketenbus__receipt__descriptor, "entries", KB_MAX_BATCH},
    {&ketenbus__receipt_entry__descriptor, "recipients", KB_MAX_AGENCIES},
    {&ketenbus__receipt_entry__descriptor, "refused", KB_MAX_AGENCIES},
    {&ketenbus__deliver__descriptor, "deliveries", KB_MAX_BATCH},
    {&ketenbus__ack__descriptor, "tags", KB_MAX_BATCH},
    {&ketenbus__envelope__descriptor, "recipients", KB_MAX_RECIPIENTS},
    {&ketenbus__envelope__descriptor, "subject_keys", KB_MAX_SUBJECT_KEYS},
    {&ketenbus__envelope__descriptor, "seals", KB_MAX_SEALS},
    {&ketenbus__envelope__descriptor, "withheld", KB_MAX_SEALS},
    {&ketenbus__signal__descriptor, "indicators", KB_MAX_INDICATORS},
    {&ketenbus__notice__descriptor, "agencies", KB_MAX_RECIPIENTS},
};
#define KB_N_LIST_LIMITS (sizeof s_list_limits / sizeof s_list_limits[0])

size_t kb_frame_list_limit(const ProtobufCMessageDescriptor *msg, const char *field)
{
    for (size_t i = 0; i < KB_N_LIST_LIMITS; i++)
        if (s_list_limits[i].msg == msg && strcmp(s_list_limits[i].field, field) == 0)
            return s_list_limits[i].max;
    return 0;
}

/* Where the scan is: the field (and item) through which each enclosing
 * message was entered, to name the place of a refusal without building
 * the name for every message that passes. */
typedef struct {
    const ProtobufCFieldDescriptor *field[KB_CODEC_MAX_DEPTH + 1]; /* field entered at each depth */
    size_t index[KB_CODEC_MAX_DEPTH + 1];                          /* item number if it is repeated */
} kb_scan_path_t;

/* Record a refusal "frame: submit.envelopes[2].seals: <what>"; fd (may be
 * NULL) is the field of the message at depth the refusal is about. */
static int s_scan_fail(const kb_scan_path_t *p, unsigned depth, const ProtobufCFieldDescriptor *fd, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

static int s_scan_fail(const kb_scan_path_t *p, unsigned depth, const ProtobufCFieldDescriptor *fd, const char *fmt,
                       ...)
{
    char path[2 * KB_CODEC_PATH_MAX] = "frame";
    size_t used = strlen(path);
    for (unsigned k = 0; k <= depth; k++) {
        const ProtobufCFieldDescriptor *f = k < depth ? p->field[k] : fd;
        if (!f)
            break;
        int n = f->label == PROTOBUF_C_LABEL_REPEATED && k < depth
                    ? snprintf(path + used, sizeof path - used, "%s%s[%zu]", k ? "." : ": ", f->name, p->index[k])
                    : snprintf(path + used, sizeof path - used, "%s%s", k ? "." : ": ", f->name);
        if (n < 0 || (size_t)n >= sizeof path - used)
            break; /* a cut name still says where; depth is limited anyway */
        used += (size_t)n;
    }
    char what[KB_ERROR_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return kb_error_set(KB_EPROTO, "%s: %s", path, what);
}

/* Check one message on the wire against its descriptor, recursing into
 * the known message fields, before protobuf-c allocates anything for it:
 * - every tag names a field number 1..2^29-1 (also when its varint is
 *   overlong), every wire type is one proto3 uses and every length stays
 *   inside its parent. protobuf-c 1.4 lets an overlong tag of field 0
 *   through as an unknown field and then re-encodes it into bytes it
 *   refuses itself, so a frame would decode and its re-encoded envelope not.
 * - a known string field holds no NUL byte: protobuf-c would cut the C
 *   string there without a word ("rvdk\0x" would arrive as "rvdk").
 * - a repeated field holds at most its s_list_limits items (a packed run of
 *   varints counts one per varint); a singular field, and a oneof, appears
 *   at most once; at most KB_MAX_UNKNOWN_FIELDS unknown fields. protobuf-c
 *   allocates a struct or string for every occurrence, also of a singular
 *   field it then drops: a few bytes each on the wire, tens of bytes each
 *   in memory. No encoder writes a singular field twice.
 * Failures record a detail naming the field. */
static int s_scan_message(kb_cursor_t *c, const ProtobufCMessageDescriptor *d, unsigned depth, kb_scan_path_t *p)
{
    if (depth > KB_CODEC_MAX_DEPTH)
        return s_scan_fail(p, depth, NULL, "nested deeper than %u", KB_CODEC_MAX_DEPTH);
    if (d->n_fields > KB_CODEC_MAX_FIELDS)
        return s_scan_fail(p, depth, NULL, "%s has more fields than the scan counts", d->short_name);
    size_t seen[KB_CODEC_MAX_FIELDS] = {0}; /* occurrences (items for lists) per field index */
    size_t limit[KB_CODEC_MAX_FIELDS];      /* for lists, set at the first item */
    unsigned oneof_seen[KB_CODEC_MAX_FIELDS]; /* quantifier offsets of the oneofs met */
    size_t n_oneof = 0, n_unknown = 0;
    while (c->pos < c->len) {
        uint32_t field;
        unsigned wire;
        kb_cursor_t inner;
        size_t at = c->pos;
        if (s_read_tag(c, &field, &wire) != KB_OK || s_skip_value(c, wire, &inner) != KB_OK)
            return s_scan_fail(p, depth, NULL, "malformed protobuf near byte %zu", at);
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, field);
        if (!fd) {
            if (++n_unknown > KB_MAX_UNKNOWN_FIELDS)
                return s_scan_fail(p, depth, NULL, "more than %u unknown fields", KB_MAX_UNKNOWN_FIELDS);
            continue;
        }
        size_t fi = (size_t)(fd - d->fields);
        if (fd->type == PROTOBUF_C_TYPE_STRING && wire == KB_WIRE_LEN && memchr(inner.buf, 0, inner.len))
            return s_scan_fail(p, depth, fd, "NUL byte in string");
        size_t items = 1;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            int packable = fd->type != PROTOBUF_C_TYPE_MESSAGE && fd->type != PROTOBUF_C_TYPE_STRING &&
                           fd->type != PROTOBUF_C_TYPE_BYTES;
            if (wire == KB_WIRE_LEN && packable) {
                if (inner.len > 0 && (inner.buf[inner.len - 1] & 0x80) != 0)
                    return s_scan_fail(p, depth, fd, "packed run ends inside a varint");
                items = 0;
                for (size_t i = 0; i < inner.len; i++)
                    if ((inner.buf[i] & 0x80) == 0)
                        items++;
            }
            if (seen[fi] == 0) {
                limit[fi] = kb_frame_list_limit(d, fd->name);
                if (limit[fi] == 0)
                    limit[fi] = KB_MAX_BATCH;
            }
            if (items > limit[fi] - seen[fi])
                return s_scan_fail(p, depth, fd, "more than %zu items", limit[fi]);
        } else if (seen[fi] > 0) {
            return s_scan_fail(p, depth, fd, "given more than once");
        } else if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            for (size_t k = 0; k < n_oneof; k++)
                if (oneof_seen[k] == fd->quantifier_offset)
                    return s_scan_fail(p, depth, fd, "a second member of the same oneof");
            oneof_seen[n_oneof++] = fd->quantifier_offset; /* at most one per field */
        }
        size_t index = seen[fi];
        seen[fi] += items;
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE && wire == KB_WIRE_LEN) {
            p->field[depth] = fd;
            p->index[depth] = index;
            int rc = s_scan_message(&inner, fd->descriptor, depth + 1, p);
            if (rc != KB_OK)
                return rc;
        }
    }
    return KB_OK;
}

/* Check the whole frame on the wire (s_scan_message) before protobuf-c
 * allocates any of it. */
static int s_prescan(const uint8_t *buf, size_t len)
{
    kb_cursor_t c = {.buf = buf, .len = len, .pos = 0};
    kb_scan_path_t p;
    return s_scan_message(&c, &ketenbus__frame__descriptor, 0, &p);
}

/* An allocator that hands protobuf-c at most `left` more bytes (each
 * request counted as an arena that aligns to KB_DECODE_ALIGN hands it out)
 * and then fails, so that one frame cannot take more than its budget
 * whatever shape it has. */
typedef struct {
    ProtobufCAllocator *inner; /* the caller's allocator, NULL: malloc */
    size_t left;               /* bytes it may still hand out */
    int over;                  /* 1 once a request was refused */
} kb_budget_t;

static void *s_budget_alloc(void *data, size_t size)
{
    kb_budget_t *b = data;
    size_t need = size > SIZE_MAX - KB_DECODE_ALIGN ? SIZE_MAX : (size + KB_DECODE_ALIGN - 1) & ~(size_t)(KB_DECODE_ALIGN - 1);
    if (need == 0)
        need = KB_DECODE_ALIGN;
    if (need > b->left) {
        b->over = 1;
        return NULL;
    }
    b->left -= need;
    return b->inner ? b->inner->alloc(b->inner->allocator_data, size) : malloc(size);
}

static void s_budget_free(void *data, void *ptr)
{
    kb_budget_t *b = data;
    if (b->inner)
        b->inner->free(b->inner->allocator_data, ptr);
    else
        free(ptr);
}

/* The same limit on the unpacked frame: protects callers against a prescan
 * that ever disagrees with protobuf-c. */
static int s_check_batch(const Ketenbus__Frame *f)
{
    size_t n;
    const char *name;
    switch (f->body_case) {
    case KETENBUS__FRAME__BODY_SUBMIT:
        n = f->submit->n_envelopes;
        name = "submit.envelopes";
        break;
    case KETENBUS__FRAME__BODY_RECEIPT:
        n = f->receipt->n_entries;
        name = "receipt.entries";
        break;
    case KETENBUS__FRAME__BODY_DELIVER:
        n = f->deliver->n_deliveries;
        name = "deliver.deliveries";
        break;
    case KETENBUS__FRAME__BODY_ACK:
        n = f->ack->n_tags;
        name = "ack.tags";
        break;
    default:
        return KB_OK;
    }
    if (n > KB_MAX_BATCH)
        return kb_error_set(KB_EPROTO, "frame: %s: %zu items, at most %u", name, n, KB_MAX_BATCH);
    return KB_OK;
}

/* Free text a peer shows in logs and audit records (Hello's names): at most
 * max bytes of UTF-8 without control characters (C0, DEL, C1), which could
 * forge or garble log lines. */
static int s_check_label(const char *s, size_t max, const char *field)
{
    s = s ? s : "";
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return kb_error_set(KB_EPROTO, "frame: %s: longer than %zu bytes", field, max);
    if (!kb_utf8_valid(s, n))
        return kb_error_set(KB_EPROTO, "frame: %s: not valid UTF-8", field);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        unsigned c1 = ch == 0xc2 && i + 1 < n ? (unsigned char)s[i + 1] : 0; /* U+0080..U+009F */
        if (ch < 0x20 || ch == 0x7f || (c1 >= 0x80 && c1 <= 0x9f))
            return kb_error_set(KB_EPROTO, "frame: %s: control character U+%04X at byte %zu", field,
                                c1 ? c1 : ch, i);
    }
    return KB_OK;
}

/* What validation a body needs beyond the wire scan. */
static int s_check_body(const Ketenbus__Frame *f)
{
    if (f->body_case != KETENBUS__FRAME__BODY_HELLO)
        return KB_OK;
    int rc = s_check_label(f->hello->adapter_name, KB_SHORT_TEXT_MAX, "hello.adapter_name");
    if (rc == KB_OK)
        rc = s_check_label(f->hello->software, KB_SHORT_TEXT_MAX, "hello.software");
    return rc;
}

/* ---------------------------------------------------------------- frames */

int kb_frame_decode(const void *buf, size_t len, size_t max_len, Ketenbus__Frame **out)
{
    return kb_frame_decode_with(buf, len, max_len, NULL, out);
}

int kb_frame_decode_with(const void *buf, size_t len, size_t max_len, ProtobufCAllocator *alloc,
                         Ketenbus__Frame **out)
{
    if (!out)
        return kb_error_set(KB_EINVAL, "kb_frame_decode: out is NULL");
    *out = NULL;
    if (!buf && len > 0)
        return kb_error_set(KB_EINVAL, "kb_frame_decode: buf is NULL");
    if (len > max_len)
        return kb_error_set(KB_ETOOBIG, "frame: %zu bytes, limit %zu", len, max_len);
    if (len == 0)
        return kb_error_set(KB_EPROTO, "frame: empty");
    if (len > (SIZE_MAX - KB_DECODE_MEM_BASE) / KB_DECODE_MEM_PER_BYTE)
        return kb_error_set(KB_ETOOBIG, "frame: %zu bytes, too large to decode", len);
    int rc = s_prescan(buf, len);
    if (rc != KB_OK)
        return rc;

    kb_budget_t budget = {.inner = alloc, .left = len * KB_DECODE_MEM_PER_BYTE + KB_DECODE_MEM_BASE};
    ProtobufCAllocator bounded = {s_budget_alloc, s_budget_free, &budget};
    Ketenbus__Frame *f = ketenbus__frame__unpack(&bounded, len, buf);
    if (!f && budget.over)
        return kb_error_set(KB_EPROTO, "frame: decoding %zu bytes would take more than %zu bytes of memory", len,
                            len * KB_DECODE_MEM_PER_BYTE + KB_DECODE_MEM_BASE);
    if (!f)
        return kb_error_set(KB_EPROTO, "frame: not a valid Frame message (%zu bytes)", len);
    /* Neither a version nor a body: nothing of a Frame was in the bytes. */
    if (f->version == 0 && f->body_case == KETENBUS__FRAME__BODY__NOT_SET) {
        ketenbus__frame__free_unpacked(f, alloc);
        return kb_error_set(KB_EPROTO, "frame: no version and no body");
    }
    /* Before the body: a newer version may carry commands we do not know. */
    if (f->version != KB_PROTOCOL_VERSION) {
        *out = f;
        return kb_error_set(KB_EVERSION, "frame: protocol version %u, this side speaks %u", f->version,
                            KB_PROTOCOL_VERSION);
    }
    if (f->body_case == KETENBUS__FRAME__BODY__NOT_SET) {
        ketenbus__frame__free_unpacked(f, alloc);
        return kb_error_set(KB_EPROTO, "frame: no command in body");
    }
    rc = s_check_batch(f);
    if (rc == KB_OK)
        rc = s_check_body(f);
    if (rc != KB_OK) {
        ketenbus__frame__free_unpacked(f, alloc);
        return rc;
    }
    *out = f;
    return KB_OK;
}

int kb_frame_encode(Ketenbus__Frame *f, uint8_t **buf, size_t *len)
{
    if (!buf || !len)
        return kb_error_set(KB_EINVAL, "kb_frame_encode: buf or len is NULL");
    *buf = NULL;
    *len = 0;
    if (!f || f->base.descriptor != &ketenbus__frame__descriptor)
        return kb_error_set(KB_EINVAL, "kb_frame_encode: not a Frame");
    if (f->body_case == KETENBUS__FRAME__BODY__NOT_SET)
        return kb_error_set(KB_EINVAL, "kb_frame_encode: frame has no body");
    f->version = KB_PROTOCOL_VERSION;
    size_t need = ketenbus__frame__get_packed_size(f);
    uint8_t *b = malloc(need > 0 ? need : 1);
    if (!b)
        return kb_error_set(KB_ENOMEM, "encode frame: out of memory (%zu bytes)", need);
    size_t got = ketenbus__frame__pack(f, b);
    if (got != need) {
        free(b);
        return kb_error_set(KB_EINVAL, "encode frame: packed %zu bytes, expected %zu", got, need);
    }
    *buf = b;
    *len = got;
    return KB_OK;
}

/* ------------------------------------------------------------ raw forms */

/* A length-delimited string of at most max bytes without NUL into out. */
static int s_view_string(const kb_cursor_t *v, char *out, size_t max, const char *field)
{
    if (v->len > max)
        return kb_error_set(KB_EPROTO, "envelope view: %s longer than %zu bytes", field, max);
    if (v->len > 0 && memchr(v->buf, '\0', v->len))
        return kb_error_set(KB_EPROTO, "envelope view: %s holds a NUL byte", field);
    memcpy(out, v->buf, v->len);
    out[v->len] = '\0';
    return KB_OK;
}

/* Field numbers of Envelope, LegalBasis and FieldSeal read by kb_envelope_view
 * and kb_envelope_carries. */
enum {
    KB_ENV_MESSAGE_ID = 1,
    KB_ENV_SENDER = 2,
    KB_ENV_KIND = 4,
    KB_ENV_PURPOSE = 5,
    KB_ENV_HANDLING = 6,
    KB_ENV_LEGAL_BASIS = 7,
    KB_ENV_SUBJECT_KEYS = 10,
    KB_ENV_OFFICER = 11,
    KB_ENV_SEALS = 30,
    KB_BASIS_BASIS = 1,
    KB_SEAL_PATH = 1,
    KB_SEAL_SALT = 2
};

int kb_envelope_view(const uint8_t *buf, size_t len, kb_envelope_view_t *v)
{
    if (!v || (!buf && len > 0))
        return kb_error_set(KB_EINVAL, "kb_envelope_view: NULL argument");
    memset(v, 0, sizeof *v);
    kb_cursor_t c = {buf, len, 0};
    while (c.pos < c.len) {
        uint32_t field;
        unsigned wire;
        kb_cursor_t val = {NULL, 0, 0};
        uint64_t num = 0;
        if (s_read_tag(&c, &field, &wire) != KB_OK)
            return kb_error_set(KB_EPROTO, "envelope view: bad tag at offset %zu", c.pos);
        int is_enum = field == KB_ENV_KIND || field == KB_ENV_PURPOSE || field == KB_ENV_HANDLING;
        int rc;
        if (is_enum && wire == KB_WIRE_VARINT)
            rc = s_read_varint(&c, &num);
        else
            rc = s_skip_value(&c, wire, &val);
        if (rc != KB_OK)
            return kb_error_set(KB_EPROTO, "envelope view: field %u cut off or malformed", field);
        int want_len = field == KB_ENV_MESSAGE_ID || field == KB_ENV_SENDER || field == KB_ENV_LEGAL_BASIS ||
                       field == KB_ENV_SUBJECT_KEYS || field == KB_ENV_OFFICER;
        if ((want_len && wire != KB_WIRE_LEN) || (is_enum && wire != KB_WIRE_VARINT))
            return kb_error_set(KB_EPROTO, "envelope view: field %u has wire type %u", field, wire);
        switch (field) {
        case KB_ENV_MESSAGE_ID:
            v->message_id.data = val.len ? (uint8_t *)val.buf : NULL;
            v->message_id.len = val.len;
            break;
        case KB_ENV_SENDER:
            rc = s_view_string(&val, v->sender, KB_AGENCY_ID_MAX, "sender");
            break;
        case KB_ENV_OFFICER:
            rc = s_view_string(&val, v->officer, KB_SHORT_TEXT_MAX, "officer");
            break;
        case KB_ENV_KIND:
            v->kind = (int)(int32_t)(uint32_t)num; /* protobuf: an enum is the low 32 bits */
            break;
        case KB_ENV_PURPOSE:
            v->purpose = (int)(int32_t)(uint32_t)num;
            break;
        case KB_ENV_HANDLING:
            v->handling = (int)(int32_t)(uint32_t)num;
            break;
        case KB_ENV_SUBJECT_KEYS:
            if (v->n_subject_keys == KB_MAX_SUBJECT_KEYS)
                return kb_error_set(KB_EPROTO, "envelope view: more than %u subject keys", KB_MAX_SUBJECT_KEYS);
            v->subject_keys[v->n_subject_keys].data = val.len ? (uint8_t *)val.buf : NULL;
            v->subject_keys[v->n_subject_keys++].len = val.len;
            break;
        case KB_ENV_LEGAL_BASIS:
            /* a message field given twice is merged: the last basis wins */
            v->has_legal_basis = 1;
            while (rc == KB_OK && val.pos < val.len) {
                uint32_t f2;
                unsigned w2;
                kb_cursor_t inner = {NULL, 0, 0};
                if (s_read_tag(&val, &f2, &w2) != KB_OK || s_skip_value(&val, w2, &inner) != KB_OK)
                    return kb_error_set(KB_EPROTO, "envelope view: legal_basis malformed");
                if (f2 == KB_BASIS_BASIS) {
                    if (w2 != KB_WIRE_LEN)
                        return kb_error_set(KB_EPROTO, "envelope view: legal_basis.basis has wire type %u", w2);
                    rc = s_view_string(&inner, v->basis, KB_SHORT_TEXT_MAX, "legal_basis.basis");
                }
            }
            break;
        default:
            break;
        }
        if (rc != KB_OK)
            return rc;
    }
    return KB_OK;
}

/* 1 if a field along ids[0..n) occurs in the message bytes c, any
 * occurrence counted; 0 if none does; KB_EPROTO on malformed bytes. */
static int s_path_occurs(kb_cursor_t c, const uint32_t *ids, size_t n)
{
    while (c.pos < c.len) {
        uint32_t field;
        unsigned wire;
        kb_cursor_t val = {NULL, 0, 0};
        if (s_read_tag(&c, &field, &wire) != KB_OK || s_skip_value(&c, wire, &val) != KB_OK)
            return kb_error_set(KB_EPROTO, "envelope carries: field cut off or malformed");
        if (field != ids[0])
            continue;
        if (n == 1 || wire != KB_WIRE_LEN)
            return 1; /* there, or not what the path says it is: unpacking tells */
        int rc = s_path_occurs(val, ids + 1, n - 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* 1 if the FieldSeal in c keeps its salt and seals path (path_len bytes)
 * or a field under it; 0 if not; KB_EPROTO on malformed bytes. */
static int s_seal_salted_under(kb_cursor_t c, const char *path, size_t path_len)
{
    kb_cursor_t seal_path = {NULL, 0, 0};
    size_t salt_len = 0;
    while (c.pos < c.len) {
        uint32_t field;
        unsigned wire;
        kb_cursor_t val = {NULL, 0, 0};
        if (s_read_tag(&c, &field, &wire) != KB_OK || s_skip_value(&c, wire, &val) != KB_OK)
            return kb_error_set(KB_EPROTO, "envelope carries: seal cut off or malformed");
        if (field == KB_SEAL_PATH && wire == KB_WIRE_LEN)
            seal_path = val; /* the last one counts, as when unpacking */
        else if (field == KB_SEAL_SALT && wire == KB_WIRE_LEN)
            salt_len = val.len;
    }
    return salt_len > 0 && seal_path.len >= path_len && memcmp(seal_path.buf, path, path_len) == 0 &&
           (seal_path.len == path_len || seal_path.buf[path_len] == '.');
}

int kb_envelope_carries(const uint8_t *buf, size_t len, const char *path)
{
    if (!path || (!buf && len > 0))
        return kb_error_set(KB_EINVAL, "kb_envelope_carries: NULL argument");
    uint32_t ids[KB_SEAL_MAX_DEPTH];
    size_t n = kb_seal_path_ids(path, ids);
    if (n == 0)
        return kb_error_set(KB_EINVAL, "kb_envelope_carries: %.*s is not a payload field", (int)KB_SHORT_TEXT_MAX,
                            path);
    size_t path_len = strlen(path);
    kb_cursor_t c = {buf, len, 0};
    while (c.pos < c.len) {
        uint32_t field;
        unsigned wire;
        kb_cursor_t val = {NULL, 0, 0};
        if (s_read_tag(&c, &field, &wire) != KB_OK || s_skip_value(&c, wire, &val) != KB_OK)
            return kb_error_set(KB_EPROTO, "envelope carries: field cut off or malformed at offset %zu", c.pos);
        int rc = 0;
        if (field == KB_ENV_SEALS && wire == KB_WIRE_LEN)
            rc = s_seal_salted_under(val, path, path_len);
        else if (field == ids[0])
            rc = n == 1 || wire != KB_WIRE_LEN ? 1 : s_path_occurs(val, ids + 1, n - 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static size_t s_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *s_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Wire tags of the fields the raw encoders below write (field number << 3 | wire type). */
#define KB_TAG_FRAME_VERSION  ((1u << 3) | KB_WIRE_VARINT)
#define KB_TAG_FRAME_REQUEST  ((2u << 3) | KB_WIRE_VARINT)
#define KB_TAG_FRAME_SUBMIT   ((12u << 3) | KB_WIRE_LEN)
#define KB_TAG_FRAME_RECEIPT  ((13u << 3) | KB_WIRE_LEN)
#define KB_TAG_FRAME_DELIVER  ((14u << 3) | KB_WIRE_LEN)
#define KB_TAG_ENVELOPES      ((1u << 3) | KB_WIRE_LEN)
#define KB_TAG_DELIVERIES     ((1u << 3) | KB_WIRE_LEN)
#define KB_TAG_DELIVERY_TAG   ((1u << 3) | KB_WIRE_VARINT)
#define KB_TAG_DELIVERY_ENV   ((2u << 3) | KB_WIRE_LEN)
_Static_assert(KB_PROTOCOL_VERSION < 0x80, "the version is written as a one-byte varint");

/* Bytes of a frame with a request id and a body of body_len bytes. */
static size_t s_frame_len(uint64_t request_id, size_t body_len)
{
    size_t n = 2 + 1 + s_varint_len(body_len) + body_len;
    if (request_id != 0) /* proto3: a zero scalar is not written */
        n += 1 + s_varint_len(request_id);
    return n;
}

/* Write the frame's fields up to its body's bytes: version, request id,
 * the body's tag and length. Returns where the body goes. */
static uint8_t *s_frame_head(uint8_t *p, uint64_t request_id, uint8_t body_tag, size_t body_len)
{
    *p++ = KB_TAG_FRAME_VERSION;
    *p++ = KB_PROTOCOL_VERSION;
    if (request_id != 0) {
        *p++ = KB_TAG_FRAME_REQUEST;
        p = s_put_varint(p, request_id);
    }
    *p++ = body_tag;
    return s_put_varint(p, body_len);
}

/* Write one length-delimited field: tag, length, bytes. */
static uint8_t *s_put_bytes(uint8_t *p, uint8_t tag, const uint8_t *bytes, size_t len)
{
    *p++ = tag;
    p = s_put_varint(p, len);
    if (len > 0)
        memcpy(p, bytes, len);
    return p + len;
}

/* Bytes of one Delivery message's body. */
static size_t s_delivery_len(const kb_delivery_raw_t *d)
{
    size_t n = 1 + s_varint_len(d->envelope_len) + d->envelope_len;
    if (d->tag != 0) /* proto3: a zero scalar is not written */
        n += 1 + s_varint_len(d->tag);
    return n;
}

int kb_deliver_encode(const kb_delivery_raw_t *d, size_t n, uint8_t **buf, size_t *len)
{
    if (!buf || !len)
        return kb_error_set(KB_EINVAL, "kb_deliver_encode: buf or len is NULL");
    *buf = NULL;
    *len = 0;
    if (!d || n == 0 || n > KB_MAX_BATCH)
        return kb_error_set(KB_EINVAL, "kb_deliver_encode: %zu deliveries", n);
    size_t body = 0;
    for (size_t i = 0; i < n; i++) {
        if (!d[i].envelope && d[i].envelope_len > 0)
            return kb_error_set(KB_EINVAL, "kb_deliver_encode: delivery %zu has no bytes", i);
        size_t dl = s_delivery_len(&d[i]);
        size_t add = 1 + s_varint_len(dl) + dl;
        if (body > SIZE_MAX / 2 - add)
            return kb_error_set(KB_ETOOBIG, "kb_deliver_encode: frame too large");
        body += add;
    }
    size_t total = s_frame_len(0, body);
    uint8_t *out = malloc(total);
    if (!out)
        return kb_error_set(KB_ENOMEM, "encode deliver: out of memory (%zu bytes)", total);
    uint8_t *p = s_frame_head(out, 0, KB_TAG_FRAME_DELIVER, body);
    for (size_t i = 0; i < n; i++) {
        *p++ = KB_TAG_DELIVERIES;
        p = s_put_varint(p, s_delivery_len(&d[i]));
        if (d[i].tag != 0) {
            *p++ = KB_TAG_DELIVERY_TAG;
            p = s_put_varint(p, d[i].tag);
        }
        p = s_put_bytes(p, KB_TAG_DELIVERY_ENV, d[i].envelope, d[i].envelope_len);
    }
    *buf = out;
    *len = (size_t)(p - out);
    return KB_OK;
}

size_t kb_submit_item_len(size_t len)
{
    return 1 + s_varint_len(len) + len;
}

size_t kb_submit_frame_len(uint64_t request_id, size_t body)
{
    return s_frame_len(request_id, body);
}

int kb_submit_encode(uint64_t request_id, const kb_packed_t *envelopes, size_t n, uint8_t **buf, size_t *len)
{
    if (!buf || !len)
        return kb_error_set(KB_EINVAL, "kb_submit_encode: buf or len is NULL");
    *buf = NULL;
    *len = 0;
    if (!envelopes || n == 0 || n > KB_MAX_BATCH)
        return kb_error_set(KB_EINVAL, "kb_submit_encode: %zu envelopes", n);
    size_t body = 0;
    for (size_t i = 0; i < n; i++) {
        if (!envelopes[i].bytes && envelopes[i].len > 0)
            return kb_error_set(KB_EINVAL, "kb_submit_encode: envelope %zu has no bytes", i);
        size_t add = kb_submit_item_len(envelopes[i].len);
        if (body > SIZE_MAX / 2 - add)
            return kb_error_set(KB_ETOOBIG, "kb_submit_encode: frame too large");
        body += add;
    }
    size_t total = s_frame_len(request_id, body);
    uint8_t *out = malloc(total);
    if (!out)
        return kb_error_set(KB_ENOMEM, "encode submit: out of memory (%zu bytes)", total);
    uint8_t *p = s_frame_head(out, request_id, KB_TAG_FRAME_SUBMIT, body);
    for (size_t i = 0; i < n; i++)
        p = s_put_bytes(p, KB_TAG_ENVELOPES, envelopes[i].bytes, envelopes[i].len);
    *buf = out;
    *len = (size_t)(p - out);
    return KB_OK;
}

int kb_receipt_encode(uint64_t request_id, const uint8_t *entries, size_t entries_len, uint8_t **buf, size_t *len)
{
    if (!buf || !len)
        return kb_error_set(KB_EINVAL, "kb_receipt_encode: buf or len is NULL");
    *buf = NULL;
    *len = 0;
    if (!entries && entries_len > 0)
        return kb_error_set(KB_EINVAL, "kb_receipt_encode: entries is NULL");
    if (entries_len > SIZE_MAX / 2)
        return kb_error_set(KB_ETOOBIG, "kb_receipt_encode: frame too large");
    size_t total = s_frame_len(request_id, entries_len);
    uint8_t *out = malloc(total);
    if (!out)
        return kb_error_set(KB_ENOMEM, "encode receipt: out of memory (%zu bytes)", total);
    uint8_t *p = s_frame_head(out, request_id, KB_TAG_FRAME_RECEIPT, entries_len);
    if (entries_len > 0)
        memcpy(p, entries, entries_len);
    p += entries_len;
    *buf = out;
    *len = (size_t)(p - out);
    return KB_OK;
}

/* ------------------------------------------------------------ validation */

/* Record a reason in why (when given) and as the last error; KB_EPROTO.
 * A reason longer than the buffer is cut and marked with "...". */
static int s_reject(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void s_copy_marked(char *dst, size_t dst_len, const char *src)
{
    int n = snprintf(dst, dst_len, "%s", src);
    if (n >= 0 && (size_t)n >= dst_len && dst_len >= 4)
        memcpy(dst + dst_len - 4, "...", 4);
}

static int s_reject(char *why, size_t why_len, const char *fmt, ...)
{
    char reason[KB_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (n < 0)
        snprintf(reason, sizeof reason, "envelope: invalid");
    else if ((size_t)n >= sizeof reason)
        memcpy(reason + sizeof reason - 4, "...", 4);
    if (why && why_len > 0)
        s_copy_marked(why, why_len, reason);
    return kb_error_set(KB_EPROTO, "%s", reason);
}

/* Name item index of a list for a reason: base[index]suffix. Joined by
 * hand, without printf: it runs for every listed item of every envelope,
 * though the name is read only when the item is refused. A name that does
 * not fit is refused rather than reported under a cut-off name. */
static int s_name(char *out, char *why, size_t why_len, const char *base, size_t index, const char *suffix)
{
    char digits[24];
    size_t nd = 0;
    do {
        digits[nd++] = (char)('0' + index % 10);
        index /= 10;
    } while (index > 0);
    size_t bl = strlen(base), sl = strlen(suffix);
    if (bl >= KB_CODEC_PATH_MAX || sl >= KB_CODEC_PATH_MAX || bl + nd + sl + 2 >= KB_CODEC_PATH_MAX)
        return s_reject(why, why_len, "envelope: field path longer than %u bytes", KB_CODEC_PATH_MAX - 1);
    memcpy(out, base, bl);
    out[bl] = '[';
    for (size_t i = 0; i < nd; i++)
        out[bl + 1 + i] = digits[nd - 1 - i];
    out[bl + 1 + nd] = ']';
    memcpy(out + bl + nd + 2, suffix, sl + 1);
    return KB_OK;
}

static const char *s_str(const char *s)
{
    return s ? s : "";
}

static int s_enum_known(const ProtobufCEnumDescriptor *d, int v)
{
    return protobuf_c_enum_descriptor_get_value(d, v) != NULL;
}

/* An enum that must be given: not 0 (UNSPECIFIED) and a known value. */
static int s_check_required_enum(const ProtobufCEnumDescriptor *d, int v, const char *field, char *why, size_t why_len)
{
    if (v == 0)
        return s_reject(why, why_len, "%s: not set", field);
    if (!s_enum_known(d, v))
        return s_reject(why, why_len, "%s: unknown value %d", field, v);
    return KB_OK;
}

static int s_agency_id_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
}

int kb_agency_id_valid(const char *s)
{
    size_t n = s ? strnlen(s, KB_AGENCY_ID_MAX + 1) : 0;
    if (n == 0 || n > KB_AGENCY_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!s_agency_id_char((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Agency ids: 1..KB_AGENCY_ID_MAX characters of [a-z0-9-]. The reason shows
 * the offending byte in hex, never the peer's text. */
static int s_check_agency_id(const char *s, const char *field, char *why, size_t why_len)
{
    s = s_str(s);
    size_t n = strnlen(s, KB_AGENCY_ID_MAX + 1);
    if (n == 0)
        return s_reject(why, why_len, "%s: empty agency id", field);
    if (n > KB_AGENCY_ID_MAX)
        return s_reject(why, why_len, "%s: agency id longer than %u characters", field, KB_AGENCY_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!s_agency_id_char(ch))
            return s_reject(why, why_len, "%s: invalid character 0x%02x at offset %zu (allowed: a-z 0-9 -)", field, ch,
                            i);
    }
    return KB_OK;
}

/* A list of agency ids: at most max entries, each valid, no duplicates. */
static int s_check_agency_list(char *const *ids, size_t n, size_t max, const char *field, char *why, size_t why_len)
{
    if (n > max)
        return s_reject(why, why_len, "%s: %zu entries, at most %zu", field, n, max);
    if (n > 0 && !ids)
        return s_reject(why, why_len, "%s: %zu entries but no array", field, n);
    for (size_t i = 0; i < n; i++) {
        char name[KB_CODEC_PATH_MAX];
        int rc = s_name(name, why, why_len, field, i, "");
        if (rc == KB_OK)
            rc = s_check_agency_id(ids[i], name, why, why_len);
        if (rc != KB_OK)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(ids[i], ids[j]) == 0)
                return s_reject(why, why_len, "%s: duplicate of %s[%zu]", name, field, j);
    }
    return KB_OK;
}

static int s_check_short_text(const char *s, const char *field, char *why, size_t why_len)
{
    if (strnlen(s_str(s), KB_SHORT_TEXT_MAX + 1) > KB_SHORT_TEXT_MAX)
        return s_reject(why, why_len, "%s: longer than %u bytes", field, KB_SHORT_TEXT_MAX);
    return KB_OK;
}

static int s_check_bytes_len(const ProtobufCBinaryData *b, size_t want, int may_be_empty, const char *field, char *why,
                             size_t why_len)
{
    if (b->len == want || (may_be_empty && b->len == 0)) {
        if (b->len > 0 && !b->data)
            return s_reject(why, why_len, "%s: %zu bytes but no data", field, b->len);
        return KB_OK;
    }
    if (may_be_empty)
        return s_reject(why, why_len, "%s: expected 0 or %zu bytes, got %zu", field, want, b->len);
    return s_reject(why, why_len, "%s: expected %zu bytes, got %zu", field, want, b->len);
}

/* RFC 9562: version nibble 7 in byte 6, variant bits 10 in byte 8. */
static int s_check_uuid7(const ProtobufCBinaryData *id, const char *field, char *why, size_t why_len)
{
    int rc = s_check_bytes_len(id, KB_ID_LEN, 0, field, why, why_len);
    if (rc != KB_OK)
        return rc;
    unsigned version = id->data[6] >> 4;
    if (version != 7)
        return s_reject(why, why_len, "%s: not a UUIDv7 (version %u)", field, version);
    if ((id->data[8] & 0xc0) != 0x80)
        return s_reject(why, why_len, "%s: not a UUIDv7 (variant bits 0x%x, expected 0x2)", field,
                        (unsigned)(id->data[8] >> 6));
    return KB_OK;
}

/* 1 if the broker withheld path from this copy of e: it or a message
 * field above it is listed in e->withheld. A withheld field holds its
 * default value, so a field required of the sender may read "not set". */
static int s_withheld(const Ketenbus__Envelope *e, const char *path)
{
    for (size_t i = 0; i < e->n_withheld; i++) {
        const char *w = s_str(e->withheld[i]);
        size_t n = strlen(w);
        if (n > 0 && strncmp(path, w, n) == 0 && (path[n] == '\0' || path[n] == '.'))
            return 1;
    }
    return 0;
}

static int s_check_signal(const Ketenbus__Envelope *e, const Ketenbus__Signal *s, const char *prefix, char *why,
                          size_t why_len)
{
    char path[64];
    snprintf(path, sizeof path, "%s.exploitation", prefix);
    if (s->exploitation == 0 && !s_withheld(e, path))
        return s_reject(why, why_len, "%s.exploitation: not set", prefix);
    if (s->n_indicators > KB_MAX_INDICATORS)
        return s_reject(why, why_len, "%s.indicators: %zu entries, at most %u", prefix, s->n_indicators,
                        KB_MAX_INDICATORS);
    return KB_OK;
}

/* The kind and the payload member must agree, and each payload has its own
 * required fields. Enum values and strings are left to s_walk(). */
static int s_check_payload(const Ketenbus__Envelope *e, char *why, size_t why_len)
{
    Ketenbus__Envelope__PayloadCase want;
    switch (e->kind) {
    case KETENBUS__KIND__KIND_SIGNAL:
        want = KETENBUS__ENVELOPE__PAYLOAD_SIGNAL;
        break;
    case KETENBUS__KIND__KIND_REFERRAL:
        want = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL;
        break;
    case KETENBUS__KIND__KIND_REFERRAL_UPDATE:
        want = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL_UPDATE;
        break;
    case KETENBUS__KIND__KIND_MATCH_NOTICE:
    case KETENBUS__KIND__KIND_EXPIRY_NOTICE:
        want = KETENBUS__ENVELOPE__PAYLOAD_NOTICE;
        break;
    default:
        return s_reject(why, why_len, "kind: unknown value %d", (int)e->kind);
    }
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(&ketenbus__envelope__descriptor, want);
    const char *want_name = fd ? fd->name : "?";
    if (e->payload_case == KETENBUS__ENVELOPE__PAYLOAD__NOT_SET)
        return s_reject(why, why_len, "payload: missing, kind %s needs %s", kb_kind_name(e->kind), want_name);
    if (e->payload_case != want) {
        fd = protobuf_c_message_descriptor_get_field(&ketenbus__envelope__descriptor, e->payload_case);
        return s_reject(why, why_len, "payload: kind %s needs %s, got %s", kb_kind_name(e->kind), want_name,
                        fd ? fd->name : "unknown member");
    }
    /* Every payload member is a message pointer in the same union slot. */
    if (!e->signal)
        return s_reject(why, why_len, "%s: missing", want_name);

    int rc = KB_OK;
    switch (want) {
    case KETENBUS__ENVELOPE__PAYLOAD_SIGNAL:
        rc = s_check_signal(e, e->signal, "signal", why, why_len);
        break;
    case KETENBUS__ENVELOPE__PAYLOAD_REFERRAL:
        if (e->referral->action == 0 && !s_withheld(e, "referral.action"))
            return s_reject(why, why_len, "referral.action: not set");
        if (e->referral->deadline_us < 0)
            return s_reject(why, why_len, "referral.deadline_us: negative (%lld)", (long long)e->referral->deadline_us);
        if (e->referral->signal)
            rc = s_check_signal(e, e->referral->signal, "referral.signal", why, why_len);
        break;
    case KETENBUS__ENVELOPE__PAYLOAD_REFERRAL_UPDATE:
        if (e->referral_update->status == 0 && !s_withheld(e, "referral_update.status"))
            return s_reject(why, why_len, "referral_update.status: not set");
        if (e->correlation_id.len == 0)
            return s_reject(why, why_len, "correlation_id: required for kind referral_update");
        break;
    case KETENBUS__ENVELOPE__PAYLOAD_NOTICE: {
        const Ketenbus__Notice *n = e->notice;
        Ketenbus__NoticeType type = KETENBUS__NOTICE_TYPE__NOTICE_TYPE_EXPIRED;
        if (e->kind == KETENBUS__KIND__KIND_MATCH_NOTICE)
            type = KETENBUS__NOTICE_TYPE__NOTICE_TYPE_MATCH;
        if (n->type == 0)
            return s_reject(why, why_len, "notice.type: not set");
        if (n->type != type && s_enum_known(&ketenbus__notice_type__descriptor, n->type))
            return s_reject(why, why_len, "notice.type: %d does not fit kind %s", (int)n->type, kb_kind_name(e->kind));
        rc = s_check_bytes_len(&n->about_message_id, KB_ID_LEN, 1, "notice.about_message_id", why, why_len);
        if (rc == KB_OK)
            rc = s_check_agency_list(n->agencies, n->n_agencies, KB_MAX_RECIPIENTS, "notice.agencies", why, why_len);
        break;
    }
    default:
        break;
    }
    return rc;
}

static int s_walk(const ProtobufCMessage *m, const char *prefix, unsigned depth, char *why, size_t why_len);

/* Check one value of a string, enum or message field; member points at it
 * (a char *, an int or a message pointer). */
static int s_check_value(const ProtobufCFieldDescriptor *f, const void *member, int repeated, const char *path,
                         unsigned depth, char *why, size_t why_len)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s;
        memcpy(&s, member, sizeof s);
        s = s_str(s);
        size_t n = strnlen(s, KB_TEXT_MAX + 1);
        if (n > KB_TEXT_MAX)
            return s_reject(why, why_len, "%s: longer than %u bytes", path, KB_TEXT_MAX);
        if (!kb_utf8_valid(s, n))
            return s_reject(why, why_len, "%s: not valid UTF-8", path);
        return KB_OK;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        int v;
        memcpy(&v, member, sizeof v);
        if (!s_enum_known(f->descriptor, v))
            return s_reject(why, why_len, "%s: unknown value %d", path, v);
        /* An UNSPECIFIED item in a list says nothing; a peer sending it is confused. */
        if (repeated && v == 0)
            return s_reject(why, why_len, "%s: unspecified value in list", path);
        return KB_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub;
        memcpy(&sub, member, sizeof sub);
        if (!sub)
            return repeated ? s_reject(why, why_len, "%s: NULL item", path) : KB_OK;
        return s_walk(sub, path, depth + 1, why, why_len);
    }
    default:
        return KB_OK;
    }
}

/* Visit every string, enum and nested message of m (set oneof members
 * only, every item of repeated fields). */
static int s_walk(const ProtobufCMessage *m, const char *prefix, unsigned depth, char *why, size_t why_len)
{
    if (depth > KB_CODEC_MAX_DEPTH)
        return s_reject(why, why_len, "%s: nested deeper than %u", prefix, KB_CODEC_MAX_DEPTH);
    /* Fields this side does not know are neither signed nor redacted by the
     * sharing rules, yet the broker would relay them: refuse them. */
    if (m->n_unknown_fields > 0)
        return s_reject(why, why_len, "%s: unknown field %u", prefix[0] ? prefix : "envelope",
                        m->unknown_fields ? m->unknown_fields[0].tag : 0);
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        size_t elem;
        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING:
            elem = sizeof(char *);
            break;
        case PROTOBUF_C_TYPE_ENUM:
            elem = sizeof(int);
            break;
        case PROTOBUF_C_TYPE_MESSAGE:
            elem = sizeof(ProtobufCMessage *);
            break;
        default:
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which;
            memcpy(&which, base + f->quantifier_offset, sizeof which);
            if (which != f->id)
                continue;
        }
        /* joined by hand: this runs for every field of every envelope, and
         * a formatted print here cost more than the rest of the check */
        char path[KB_CODEC_PATH_MAX];
        size_t pl = strlen(prefix), nl = strlen(f->name), dot = pl > 0;
        if (pl + dot + nl >= sizeof path)
            return s_reject(why, why_len, "envelope: field path longer than %u bytes", KB_CODEC_PATH_MAX - 1);
        memcpy(path, prefix, pl);
        path[pl] = '.';
        memcpy(path + pl + dot, f->name, nl + 1);
        int rc;
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            rc = s_check_value(f, base + f->offset, 0, path, depth, why, why_len);
            if (rc != KB_OK)
                return rc;
            continue;
        }
        size_t n;
        const char *items;
        memcpy(&n, base + f->quantifier_offset, sizeof n);
        memcpy(&items, base + f->offset, sizeof items);
        if (n > 0 && !items)
            return s_reject(why, why_len, "%s: %zu items but no array", path, n);
        for (size_t k = 0; k < n; k++) {
            char item[KB_CODEC_PATH_MAX];
            rc = s_name(item, why, why_len, path, k, "");
            if (rc == KB_OK)
                rc = s_check_value(f, items + k * elem, 1, item, depth, why, why_len);
            if (rc != KB_OK)
                return rc;
        }
    }
    return KB_OK;
}

int kb_envelope_validate(const Ketenbus__Envelope *e, char *why, size_t why_len)
{
    if (why && why_len > 0)
        why[0] = '\0';
    if (!e || e->base.descriptor != &ketenbus__envelope__descriptor)
        return kb_error_set(KB_EINVAL, "kb_envelope_validate: not an Envelope");

    int rc = s_check_uuid7(&e->message_id, "message_id", why, why_len);
    if (rc == KB_OK)
        rc = s_check_agency_id(e->sender, "sender", why, why_len);
    if (rc == KB_OK)
        rc = s_check_agency_list(e->recipients, e->n_recipients, KB_MAX_RECIPIENTS, "recipients", why, why_len);
    if (rc == KB_OK)
        rc = s_check_required_enum(&ketenbus__kind__descriptor, e->kind, "kind", why, why_len);
    if (rc == KB_OK)
        rc = s_check_required_enum(&ketenbus__purpose__descriptor, e->purpose, "purpose", why, why_len);
    if (rc == KB_OK)
        rc = s_check_required_enum(&ketenbus__handling__descriptor, e->handling, "handling", why, why_len);
    if (rc != KB_OK)
        return rc;

    const Ketenbus__LegalBasis *lb = e->legal_basis;
    if (!lb)
        return s_reject(why, why_len, "legal_basis: missing");
    if (s_str(lb->basis)[0] == '\0')
        return s_reject(why, why_len, "legal_basis.basis: empty");
    rc = s_check_short_text(lb->basis, "legal_basis.basis", why, why_len);
    if (rc == KB_OK)
        rc = s_check_required_enum(&ketenbus__consent__descriptor, lb->consent, "legal_basis.consent", why, why_len);
    if (rc == KB_OK)
        rc = s_check_short_text(lb->consent_reference, "legal_basis.consent_reference", why, why_len);
    if (rc != KB_OK)
        return rc;
    if (lb->consent == KETENBUS__CONSENT__CONSENT_GIVEN && s_str(lb->consent_reference)[0] == '\0')
        return s_reject(why, why_len, "legal_basis.consent_reference: required when consent is given");

    if (e->created_us <= 0)
        return s_reject(why, why_len, "created_us: must be positive, got %lld", (long long)e->created_us);
    rc = s_check_bytes_len(&e->correlation_id, KB_ID_LEN, 1, "correlation_id", why, why_len);
    if (rc != KB_OK)
        return rc;

    if (e->n_subject_keys > KB_MAX_SUBJECT_KEYS)
        return s_reject(why, why_len, "subject_keys: %zu entries, at most %u", e->n_subject_keys, KB_MAX_SUBJECT_KEYS);
    if (e->n_subject_keys > 0 && !e->subject_keys)
        return s_reject(why, why_len, "subject_keys: %zu entries but no array", e->n_subject_keys);
    for (size_t i = 0; i < e->n_subject_keys; i++) {
        char name[KB_CODEC_PATH_MAX];
        rc = s_name(name, why, why_len, "subject_keys", i, "");
        if (rc == KB_OK)
            rc = s_check_bytes_len(&e->subject_keys[i], KB_SUBJECT_KEY_LEN, 0, name, why, why_len);
        if (rc != KB_OK)
            return rc;
    }
    rc = s_check_short_text(e->officer, "officer", why, why_len);
    if (rc != KB_OK)
        return rc;

    if (e->n_seals > KB_MAX_SEALS)
        return s_reject(why, why_len, "seals: %zu entries, at most %u", e->n_seals, KB_MAX_SEALS);
    if (e->n_seals > 0 && !e->seals)
        return s_reject(why, why_len, "seals: %zu entries but no array", e->n_seals);
    for (size_t i = 0; i < e->n_seals; i++) {
        char name[KB_CODEC_PATH_MAX];
        const Ketenbus__FieldSeal *s = e->seals[i];
        if (!s)
            return s_reject(why, why_len, "seals[%zu]: NULL item", i);
        if (s_str(s->path)[0] == '\0')
            return s_reject(why, why_len, "seals[%zu].path: empty", i);
        rc = s_name(name, why, why_len, "seals", i, ".path");
        if (rc == KB_OK)
            rc = s_check_short_text(s->path, name, why, why_len);
        if (rc == KB_OK)
            rc = s_name(name, why, why_len, "seals", i, ".salt");
        if (rc == KB_OK)
            rc = s_check_bytes_len(&s->salt, KB_SALT_LEN, 1, name, why, why_len);
        if (rc == KB_OK)
            rc = s_name(name, why, why_len, "seals", i, ".digest");
        if (rc == KB_OK)
            rc = s_check_bytes_len(&s->digest, KB_DIGEST_LEN, 0, name, why, why_len);
        if (rc != KB_OK)
            return rc;
    }
    rc = s_check_bytes_len(&e->signature, KB_SIGNATURE_LEN, 1, "signature", why, why_len);
    if (rc != KB_OK)
        return rc;

    if (e->n_withheld > KB_MAX_SEALS)
        return s_reject(why, why_len, "withheld: %zu entries, at most %u", e->n_withheld, KB_MAX_SEALS);
    if (e->n_withheld > 0 && !e->withheld)
        return s_reject(why, why_len, "withheld: %zu entries but no array", e->n_withheld);
    for (size_t i = 0; i < e->n_withheld; i++) {
        char name[KB_CODEC_PATH_MAX];
        rc = s_name(name, why, why_len, "withheld", i, "");
        if (rc == KB_OK)
            rc = s_check_short_text(e->withheld[i], name, why, why_len);
        if (rc != KB_OK)
            return rc;
    }

    rc = s_check_payload(e, why, why_len);
    if (rc != KB_OK)
        return rc;
    /* Last, so that the specific reasons above win over generic ones. */
    return s_walk(&e->base, "", 0, why, why_len);
}

int kb_envelope_validate_submitted(const Ketenbus__Envelope *e, char *why, size_t why_len)
{
    int rc = kb_envelope_validate(e, why, why_len);
    if (rc != KB_OK)
        return rc;
    if (e->n_withheld > 0)
        return s_reject(why, why_len, "withheld: %zu path%s given; withheld paths are set by the broker only",
                        e->n_withheld, e->n_withheld == 1 ? "" : "s");
    return KB_OK;
}

/* ---------------------------------------------------------------- helpers */

Ketenbus__Envelope *kb_envelope_dup(const Ketenbus__Envelope *e)
{
    if (!e || e->base.descriptor != &ketenbus__envelope__descriptor) {
        kb_error_set(KB_EINVAL, "kb_envelope_dup: not an Envelope");
        return NULL;
    }
    size_t need = ketenbus__envelope__get_packed_size(e);
    uint8_t *b = malloc(need > 0 ? need : 1);
    if (!b) {
        kb_error_set(KB_ENOMEM, "copy envelope: out of memory (%zu bytes)", need);
        return NULL;
    }
    Ketenbus__Envelope *copy = NULL;
    size_t got = ketenbus__envelope__pack(e, b);
    if (got == need)
        copy = ketenbus__envelope__unpack(NULL, got, b);
    /* The bytes hold personal data of possible victims. */
    OPENSSL_cleanse(b, need);
    free(b);
    if (!copy)
        kb_error_set(KB_ENOMEM, "copy envelope: out of memory");
    return copy;
}

const char *kb_kind_name(int kind)
{
    switch (kind) {
    case KETENBUS__KIND__KIND_SIGNAL:
        return "signal";
    case KETENBUS__KIND__KIND_REFERRAL:
        return "referral";
    case KETENBUS__KIND__KIND_REFERRAL_UPDATE:
        return "referral_update";
    case KETENBUS__KIND__KIND_MATCH_NOTICE:
        return "match_notice";
    case KETENBUS__KIND__KIND_EXPIRY_NOTICE:
        return "expiry_notice";
    default:
        return "unknown";
    }
}

int kb_utf8_next(const char *s, size_t len, size_t *pos, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = *pos;
    unsigned char b = p[i];
    size_t n;
    uint32_t v, min;
    if (b < 0x80) {
        *cp = b;
        *pos = i + 1;
        return KB_OK;
    } else if (b >= 0xC2 && b <= 0xDF) {
        n = 2, v = b & 0x1Fu, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        n = 3, v = b & 0x0Fu, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4, v = b & 0x07u, min = 0x10000;
    } else {
        return KB_EPROTO;
    }
    if (len - i < n)
        return KB_EPROTO;
    for (size_t k = 1; k < n; k++) {
        if ((p[i + k] & 0xC0) != 0x80)
            return KB_EPROTO;
        v = (v << 6) | (p[i + k] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return KB_EPROTO;
    *cp = v;
    *pos = i + n;
    return KB_OK;
}

int kb_utf8_valid(const char *s, size_t len)
{
    if (!s)
        return len == 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        /* Allowed range of the second byte rules out overlong forms,
         * surrogates (U+D800..DFFF) and code points above U+10FFFF. */
        size_t more;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return 0; /* continuation byte, C0/C1 overlong lead or > F4 */
        }
        if (len - i - 1 < more)
            return 0;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= more; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
        i += more + 1;
    }
    return 1;
}
