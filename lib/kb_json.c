/*
 * kb_json.c - the JSON form of protobuf messages (docs/JSON.md).
 *
 * One mapping for every message type of proto/ketenbus.proto, driven only by
 * the protobuf-c descriptors: the same code turns an Envelope, a Frame or a
 * bare Signal into JSON and back. Users: the CLI, the SDK's text interface
 * (ketenbus_msg_from_json/to_json/set/get) and the adapter daemon's spool and
 * HTTP API, all of which read JSON written by agency systems: untrusted input.
 *
 * Invariants:
 * - Messages built here are in the project's unpacked form (kb_codec.h):
 *   every member malloc'd, freed with protobuf_c_message_free_unpacked(m,
 *   NULL). A failed conversion frees everything it built, and
 *   kb_json_set_path converts the value before it touches the message, so a
 *   refused value leaves the message as it was.
 * - Output has fields in field-number order and omits proto3 defaults, so
 *   msg -> JSON -> msg packs to the same bytes.
 * - Every decoding error names the JSON path of the offending value
 *   ("signal.observed.time_us: ...", "recipients[2]: ...").
 * - Text is bounded (KB_JSON_MAX_BYTES, KB_JSON_MAX_DEPTH) before json-c
 *   allocates for it. What json-c lets through silently is refused after a
 *   second look at the text: integers beyond 64 bits (json-c saturates them),
 *   keys given twice in one object (json-c keeps the last) and keys with a
 *   \u0000 escape (json-c cuts them there), so that no two readers of one
 *   agency file can see different messages.
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_json.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"

#define KB_JSON_PATH_MAX 2048   /* longest JSON path kept for error messages */
#define KB_JSON_NAME_MAX 64     /* longest field or enum name taken from a path or descriptor */
#define KB_JSON_LIST_MAX 360    /* room for the "expected ..." lists in error messages */
#define KB_JSON_QUOTE_MAX 40    /* bytes of an offending value quoted back in an error */
#define KB_JSON_UUID_LEN 16u    /* bytes of the id fields written as UUID text */
#define KB_JSON_UUID_TEXT 36u   /* characters of canonical UUID text */

/* RFC 3339 covers the years 0001-9999; times outside are written as integers
 * so that every int64 survives a round trip. */
#define KB_JSON_TIME_MIN_US (-62135596800LL * 1000000LL)
#define KB_JSON_TIME_MAX_US (253402300799LL * 1000000LL + 999999LL)

/* The only fields whose bytes are written as UUID text (decided by name). */
static const char *const s_uuid_fields[] = {"message_id", "correlation_id", "about_message_id"};

/* protobuf-c descriptors do not carry oneof names; these name the oneofs of
 * proto/ketenbus.proto in errors ("payload: both signal and referral given"). */
static const struct {
    const ProtobufCMessageDescriptor *desc; /* message holding the oneof */
    unsigned case_offset;                   /* offset of its case member */
    const char *name;                       /* oneof name in the proto */
} s_oneof_names[] = {
    {&ketenbus__envelope__descriptor, offsetof(Ketenbus__Envelope, payload_case), "payload"},
    {&ketenbus__frame__descriptor, offsetof(Ketenbus__Frame, body_case), "body"},
};

/* The JSON path of the value being converted, for error messages. */
typedef struct {
    char buf[KB_JSON_PATH_MAX]; /* "signal.indicators[2]"; "" at the top level */
    size_t len;                 /* strlen(buf) */
} kb_jpath_t;

/* Storage for one converted element of any field type. */
typedef union {
    int32_t i32;             /* int32, sint32, sfixed32, enum */
    uint32_t u32;            /* uint32, fixed32 */
    int64_t i64;             /* int64, sint64, sfixed64 */
    uint64_t u64;            /* uint64, fixed64 */
    float f;                 /* float */
    double d;                /* double */
    protobuf_c_boolean b;    /* bool */
    char *s;                 /* string, malloc'd */
    ProtobufCBinaryData bin; /* bytes, data malloc'd */
    ProtobufCMessage *m;     /* message, unpacked form */
} kb_jelem_t;

static int s_obj_to_msg(kb_jpath_t *p, json_object *obj, const ProtobufCMessageDescriptor *desc, int depth,
                        ProtobufCMessage **out);
static json_object *s_msg_to_json(const ProtobufCMessage *m);

/* ------------------------------------------------------------ paths, errors */

/* Append ".name" (or "name" at the top); returns the length to restore.
 * Bytes that are not printable ASCII become '?', as keys come from untrusted
 * text and end up in logs. A path that does not fit keeps its old end. */
static size_t s_path_push(kb_jpath_t *p, const char *name, size_t name_len)
{
    size_t saved = p->len;
    size_t keep = name_len > KB_JSON_NAME_MAX ? KB_JSON_NAME_MAX : name_len;
    size_t need = 1 + keep + 3; /* '.', the name, "..." when cut */
    if (need >= sizeof p->buf - p->len)
        return saved;
    if (p->len)
        p->buf[p->len++] = '.';
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)name[i];
        p->buf[p->len++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (keep < name_len) {
        memcpy(p->buf + p->len, "...", 3);
        p->len += 3;
    }
    p->buf[p->len] = '\0';
    return saved;
}

static size_t s_path_index(kb_jpath_t *p, size_t i)
{
    size_t saved = p->len;
    if (kb_fmt(p->buf + p->len, sizeof p->buf - p->len, "[%zu]", i) == KB_OK)
        p->len += strlen(p->buf + p->len);
    else
        p->buf[p->len] = '\0';
    return saved;
}

static void s_path_pop(kb_jpath_t *p, size_t saved)
{
    p->len = saved;
    p->buf[saved] = '\0';
}

static void s_path_set(kb_jpath_t *p, const char *path, size_t len)
{
    p->len = 0;
    p->buf[0] = '\0';
    if (len < sizeof p->buf) {
        memcpy(p->buf, path, len);
        p->len = len;
        p->buf[len] = '\0';
    }
}

/* Record "path: message" and return rc. */
__attribute__((format(printf, 3, 4))) static int s_fail(const kb_jpath_t *p, int rc, const char *fmt, ...)
{
    char msg[KB_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap); /* a cut message is still a message */
    va_end(ap);
    return kb_error_set(rc, "%s: %s", p->len ? p->buf : "top level", msg);
}

/* A short, printable copy of untrusted text for an error message. */
static void s_quote(const char *s, size_t len, char out[KB_JSON_QUOTE_MAX + 4])
{
    size_t o = 0;
    for (size_t i = 0; i < len && o < KB_JSON_QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    if (len > KB_JSON_QUOTE_MAX) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* Append ", item" to a list buffer; ", ..." once it is full. */
static void s_list_add(char *list, size_t list_size, size_t *used, const char *item)
{
    if (*used >= list_size)
        return; /* already marked full */
    const char *sep = *used ? ", " : "";
    size_t left = list_size - *used;
    int n = snprintf(list + *used, left, "%s%s", sep, item);
    if (n >= 0 && (size_t)n < left - 5) { /* keep room for ", ..." */
        *used += (size_t)n;
        return;
    }
    list[*used] = '\0';
    snprintf(list + *used, left, "%s...", sep);
    *used = list_size;
}

static int s_unknown_field(const kb_jpath_t *p, const ProtobufCMessageDescriptor *desc, int rc)
{
    char list[KB_JSON_LIST_MAX] = "";
    size_t used = 0;
    for (unsigned i = 0; i < desc->n_fields; i++)
        s_list_add(list, sizeof list, &used, desc->fields[i].name);
    return s_fail(p, rc, "unknown field (%s has %s)", desc->short_name, list);
}

static const char *s_oneof_name(const ProtobufCMessageDescriptor *desc, unsigned case_offset)
{
    for (size_t i = 0; i < sizeof s_oneof_names / sizeof s_oneof_names[0]; i++)
        if (s_oneof_names[i].desc == desc && s_oneof_names[i].case_offset == case_offset)
            return s_oneof_names[i].name;
    return "oneof";
}

/* ------------------------------------------------------------- field kinds */

static int s_is_uuid_field(const ProtobufCFieldDescriptor *fd)
{
    if (fd->type != PROTOBUF_C_TYPE_BYTES)
        return 0;
    for (size_t i = 0; i < sizeof s_uuid_fields / sizeof s_uuid_fields[0]; i++)
        if (strcmp(fd->name, s_uuid_fields[i]) == 0)
            return 1;
    return 0;
}

static int s_is_time_field(const ProtobufCFieldDescriptor *fd)
{
    if (fd->type != PROTOBUF_C_TYPE_INT64 && fd->type != PROTOBUF_C_TYPE_SINT64 &&
        fd->type != PROTOBUF_C_TYPE_SFIXED64)
        return 0;
    size_t n = strlen(fd->name);
    return n > 3 && strcmp(fd->name + n - 3, "_us") == 0;
}

/* Bytes one element of this type takes in a message or repeated array. */
static size_t s_elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int32_t);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return sizeof(uint32_t);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: return sizeof(int64_t);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* Optional scalars carry a has_ flag at quantifier_offset; pointers do not. */
static int s_has_flag(const ProtobufCFieldDescriptor *fd)
{
    return fd->label == PROTOBUF_C_LABEL_OPTIONAL && !(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
           fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_MESSAGE;
}

/* Mirrors protobuf-c's test for proto3 fields it leaves out when packing. */
static int s_is_default(const ProtobufCFieldDescriptor *fd, const void *p)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM: return *(const int32_t *)p == 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return *(const uint32_t *)p == 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: return *(const int64_t *)p == 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return *(const uint64_t *)p == 0;
    case PROTOBUF_C_TYPE_FLOAT: return *(const float *)p == 0;
    case PROTOBUF_C_TYPE_DOUBLE: return *(const double *)p == 0;
    case PROTOBUF_C_TYPE_BOOL: return !*(const protobuf_c_boolean *)p;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s == NULL || s[0] == '\0';
    }
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE: return *(ProtobufCMessage *const *)p == NULL;
    }
    return 1;
}

/* Whether a field is written to JSON: the fields protobuf-c would pack. */
static int s_field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    const char *base = (const char *)m;
    const void *member = base + fd->offset;
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + fd->quantifier_offset) == fd->id;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)(base + fd->quantifier_offset) > 0;
    if (fd->label == PROTOBUF_C_LABEL_REQUIRED)
        return fd->type != PROTOBUF_C_TYPE_MESSAGE || *(ProtobufCMessage *const *)member != NULL;
    if (fd->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (s_has_flag(fd))
            return *(const protobuf_c_boolean *)(base + fd->quantifier_offset) != 0;
        const void *ptr = *(const void *const *)member;
        return ptr != NULL && ptr != fd->default_value;
    }
    return !s_is_default(fd, member);
}

/* Free what one element owns and put the field's initial value back. */
static void s_elem_free(const ProtobufCFieldDescriptor *fd, void *p)
{
    if (fd->type == PROTOBUF_C_TYPE_STRING) {
        char *s = *(char **)p;
        if (s && (const void *)s != fd->default_value && s != protobuf_c_empty_string)
            free(s);
        *(char **)p = (char *)fd->default_value;
    } else if (fd->type == PROTOBUF_C_TYPE_BYTES) {
        ProtobufCBinaryData *b = p;
        const ProtobufCBinaryData *def = fd->default_value;
        if (b->data && (!def || b->data != def->data))
            free(b->data);
        b->data = NULL;
        b->len = 0;
    } else if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage **m = p;
        if (*m)
            protobuf_c_message_free_unpacked(*m, NULL);
        *m = NULL;
    }
}

/* ------------------------------------------------------------------- enums */

/* Length of the prefix all value names share that the JSON form leaves out:
 * the enum name in upper snake case plus '_' ("AgeBand" -> "AGE_BAND_") when
 * every value starts with it, else the longest common prefix that ends in '_'
 * ("RejectCode": "REJECT_"). Every value keeps at least one character. */
static size_t s_enum_prefix_len(const ProtobufCEnumDescriptor *ed)
{
    if (ed->n_values == 0)
        return 0;
    char snake[2 * KB_JSON_NAME_MAX + 2];
    size_t n = 0;
    const char *nm = ed->short_name;
    int fits = 1;
    for (size_t i = 0; nm[i] != '\0'; i++) {
        unsigned char c = (unsigned char)nm[i];
        if (n + 3 > sizeof snake) {
            fits = 0;
            break;
        }
        if (i > 0 && isupper(c)) {
            unsigned char prev = (unsigned char)nm[i - 1], next = (unsigned char)nm[i + 1];
            if (islower(prev) || isdigit(prev) || (isupper(prev) && islower(next)))
                snake[n++] = '_';
        }
        snake[n++] = (char)toupper(c);
    }
    if (fits) {
        snake[n++] = '_';
        snake[n] = '\0';
        for (unsigned v = 0; v < ed->n_values && fits; v++) {
            const char *vn = ed->values[v].name;
            fits = strncmp(vn, snake, n) == 0 && vn[n] != '\0';
        }
        if (fits)
            return n;
    }
    const char *first = ed->values[0].name;
    size_t common = strlen(first);
    for (unsigned v = 1; v < ed->n_values; v++) {
        const char *vn = ed->values[v].name;
        size_t k = 0;
        while (k < common && vn[k] == first[k])
            k++;
        common = k;
    }
    for (;;) {
        while (common > 0 && first[common - 1] != '_')
            common--;
        int keeps_all = 1;
        for (unsigned v = 0; v < ed->n_values && keeps_all; v++)
            keeps_all = ed->values[v].name[common] != '\0';
        if (keeps_all || common == 0)
            return common;
        common--;
    }
}

/* The JSON name of a value ("KIND_SIGNAL" -> "signal"); 0 if not declared. */
static int s_enum_text(const ProtobufCEnumDescriptor *ed, int value, char *out, size_t out_size)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(ed, value);
    if (!v)
        return 0;
    const char *s = v->name + s_enum_prefix_len(ed);
    size_t n = strlen(s);
    if (n >= out_size)
        return 0;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[n] = '\0';
    return 1;
}

/* ASCII case-insensitive equality of a name and len bytes of text. */
static int s_name_eq(const char *name, const char *text, size_t len)
{
    size_t i = 0;
    for (; i < len; i++) {
        if (name[i] == '\0' || tolower((unsigned char)name[i]) != tolower((unsigned char)text[i]))
            return 0;
    }
    return name[i] == '\0';
}

static int s_enum_from_text(const kb_jpath_t *p, const ProtobufCEnumDescriptor *ed, const char *text, size_t len,
                            int32_t *out)
{
    size_t pre = s_enum_prefix_len(ed);
    for (unsigned v = 0; v < ed->n_values; v++) {
        const char *vn = ed->values[v].name;
        if (s_name_eq(vn + pre, text, len) || s_name_eq(vn, text, len)) {
            *out = ed->values[v].value;
            return KB_OK;
        }
    }
    char list[KB_JSON_LIST_MAX] = "";
    size_t used = 0;
    for (unsigned v = 0; v < ed->n_values; v++) {
        char name[2 * KB_JSON_NAME_MAX];
        if (ed->values[v].value != 0 && s_enum_text(ed, ed->values[v].value, name, sizeof name))
            s_list_add(list, sizeof list, &used, name);
    }
    char q[KB_JSON_QUOTE_MAX + 4];
    s_quote(text, len, q);
    return s_fail(p, KB_EPROTO, "unknown value \"%s\" (expected %s)", q, list);
}

/* ------------------------------------------------------------ text checks */


static void s_line_col(const char *text, size_t off, unsigned *line, unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* One JSON object of the text, in the order its '{' appears. */
typedef struct {
    size_t offset; /* where its '{' is */
    size_t keys;   /* keys written in it, duplicates included */
} kb_jobjinfo_t;

/* What json-c accepts silently but must be refused, found by a second look
 * at the text after json-c parsed it: */
typedef struct {
    kb_jobjinfo_t *objs; /* every object, in document order */
    size_t n;            /* objects found */
    size_t cap;          /* room in objs */
} kb_jscan_t;

static int s_scan_error(const char *text, size_t off, const char *what)
{
    unsigned line, col;
    s_line_col(text, off, &line, &col);
    return kb_error_set(KB_EPROTO, "line %u, column %u: %s", line, col, what);
}

/* An integer literal past 64 bits: json-c turns it into the nearest 64-bit
 * value without an error. */
static int s_int_too_big(const char *digits, size_t nd, int neg)
{
    static const char max_pos[] = "18446744073709551615"; /* UINT64_MAX */
    static const char max_neg[] = "9223372036854775808";  /* -INT64_MIN */
    while (nd > 1 && digits[0] == '0') {
        digits++;
        nd--;
    }
    const char *lim = neg ? max_neg : max_pos;
    size_t lim_len = neg ? sizeof max_neg - 1 : sizeof max_pos - 1;
    return nd > lim_len || (nd == lim_len && memcmp(digits, lim, lim_len) > 0);
}

/* Walk text json-c has accepted: refuse integers past 64 bits and keys with
 * a \u0000 escape (json-c cuts the key there), and count the keys of every
 * object so that s_check_keys can find keys given twice (json-c keeps the
 * last value without a word). */
static int s_scan_text(const char *text, size_t len, kb_jscan_t *sc)
{
    size_t stack[KB_JSON_MAX_DEPTH + 1]; /* index in sc->objs of each open object; SIZE_MAX for arrays */
    size_t depth = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '"' || c == '\'') {
            size_t start = i;
            int nul = 0;
            for (i++; i < len && text[i] != c; i++) {
                if (text[i] == '\\') {
                    if (len - i > 5 && memcmp(text + i + 1, "u0000", 5) == 0)
                        nul = 1;
                    i++;
                }
            }
            size_t j = i + 1;
            while (j < len && isspace((unsigned char)text[j]))
                j++;
            if (j < len && text[j] == ':' && depth > 0 && stack[depth - 1] != SIZE_MAX) {
                if (nul)
                    return s_scan_error(text, start, "NUL character in a key");
                sc->objs[stack[depth - 1]].keys++;
            }
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == KB_JSON_MAX_DEPTH + 1)
                return s_scan_error(text, i, "JSON nested too deeply");
            size_t idx = SIZE_MAX;
            if (c == '{') {
                if (sc->n == sc->cap) {
                    size_t cap = sc->cap ? sc->cap * 2 : 16;
                    if (cap > SIZE_MAX / sizeof *sc->objs)
                        return kb_error_set(KB_ENOMEM, "JSON check: too many objects");
                    kb_jobjinfo_t *o = realloc(sc->objs, cap * sizeof *o);
                    if (!o)
                        return kb_error_set(KB_ENOMEM, "JSON check: out of memory");
                    sc->objs = o;
                    sc->cap = cap;
                }
                idx = sc->n++;
                sc->objs[idx] = (kb_jobjinfo_t){.offset = i, .keys = 0};
            }
            stack[depth++] = idx;
            continue;
        }
        if (c == '}' || c == ']') {
            if (depth > 0)
                depth--;
            continue;
        }
        if (c != '-' && !isdigit((unsigned char)c))
            continue;
        size_t start = i;
        int neg = c == '-';
        if (neg)
            i++;
        size_t d0 = i;
        while (i < len && isdigit((unsigned char)text[i]))
            i++;
        int integral = !(i < len && (text[i] == '.' || text[i] == 'e' || text[i] == 'E'));
        if (integral && s_int_too_big(text + d0, i - d0, neg))
            return s_scan_error(text, start, "integer out of range (more than 64 bits)");
        while (i < len && (isdigit((unsigned char)text[i]) || (text[i] != '\0' && strchr(".eE+-", text[i]))))
            i++;
        i--; /* the loop steps onto the byte after the number */
    }
    return KB_OK;
}

/* Compare, in document order, the keys each object was written with to the
 * keys json-c kept: fewer kept means a key was given twice. */
static int s_check_keys(const char *text, json_object *o, const kb_jscan_t *sc, size_t *next)
{
    if (json_object_is_type(o, json_type_array)) {
        size_t n = json_object_array_length(o);
        for (size_t i = 0; i < n; i++) {
            int rc = s_check_keys(text, json_object_array_get_idx(o, i), sc, next);
            if (rc != KB_OK)
                return rc;
        }
        return KB_OK;
    }
    if (!json_object_is_type(o, json_type_object))
        return KB_OK;
    if (*next >= sc->n)
        return kb_error_set(KB_EPROTO, "JSON check: objects do not match the text");
    const kb_jobjinfo_t *info = &sc->objs[(*next)++];
    if ((size_t)json_object_object_length(o) != info->keys)
        return s_scan_error(text, info->offset, "a key is given twice in this object");
    struct json_object_iterator it = json_object_iter_begin(o), end = json_object_iter_end(o);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        int rc = s_check_keys(text, json_object_iter_peek_value(&it), sc, next);
        if (rc != KB_OK)
            return rc;
    }
    return KB_OK;
}

/* Parse untrusted text into a JSON object within the size and depth limits. */
static int s_parse_text(const char *text, size_t len, json_object **out)
{
    *out = NULL;
    if (len > KB_JSON_MAX_BYTES)
        return kb_error_set(KB_ETOOBIG, "JSON text of %zu bytes exceeds the limit of %u bytes", len,
                            (unsigned)KB_JSON_MAX_BYTES);
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        unsigned line, col;
        s_line_col(text, (size_t)(nul - text), &line, &col);
        return kb_error_set(KB_EPROTO, "line %u, column %u: NUL byte in JSON text", line, col);
    }
    size_t first = 0;
    while (first < len && isspace((unsigned char)text[first]))
        first++;
    if (first == len)
        return kb_error_set(KB_EPROTO, "empty JSON text");
    if (text[first] != '{')
        return kb_error_set(KB_EPROTO, "top level: expected a JSON object");

    json_tokener *tok = json_tokener_new_ex(KB_JSON_MAX_DEPTH);
    if (!tok)
        return kb_error_set(KB_ENOMEM, "JSON parser: out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);

    int rc = KB_OK;
    unsigned line, col;
    s_line_col(text, end < len ? end : len, &line, &col);
    if (jerr == json_tokener_continue) {
        rc = kb_error_set(KB_EPROTO, "line %u, column %u: unexpected end of JSON text", line, col);
    } else if (jerr == json_tokener_error_depth) {
        rc = kb_error_set(KB_EPROTO, "line %u, column %u: JSON nested deeper than %d levels", line, col,
                          KB_JSON_MAX_DEPTH);
    } else if (jerr != json_tokener_success || !obj) {
        rc = kb_error_set(KB_EPROTO, "line %u, column %u: JSON syntax error (%s)", line, col,
                          json_tokener_error_desc(jerr));
    } else {
        for (size_t i = end; i < len && rc == KB_OK; i++) {
            if (!isspace((unsigned char)text[i])) {
                s_line_col(text, i, &line, &col);
                rc = kb_error_set(KB_EPROTO, "line %u, column %u: text after the JSON object", line, col);
            }
        }
    }
    if (rc == KB_OK) {
        kb_jscan_t sc = {.objs = NULL, .n = 0, .cap = 0};
        size_t next = 0;
        rc = s_scan_text(text, len, &sc);
        if (rc == KB_OK)
            rc = s_check_keys(text, obj, &sc, &next);
        free(sc.objs);
    }
    if (rc != KB_OK) {
        json_object_put(obj);
        return rc;
    }
    *out = obj;
    return KB_OK;
}

/* --------------------------------------------------------- JSON -> message */

/* The integer in v as sign and magnitude: JSON integers span both int64 and
 * uint64, and json-c keeps values above INT64_MAX apart. */
static int s_json_integer(const kb_jpath_t *p, json_object *v, int *neg, uint64_t *mag)
{
    if (!json_object_is_type(v, json_type_int))
        return s_fail(p, KB_EPROTO, "expected an integer");
    int64_t i = json_object_get_int64(v);
    if (i < 0) {
        *neg = 1;
        *mag = (uint64_t)(-(i + 1)) + 1;
    } else {
        *neg = 0;
        *mag = i == INT64_MAX ? json_object_get_uint64(v) : (uint64_t)i;
    }
    return KB_OK;
}

static int s_json_signed(const kb_jpath_t *p, json_object *v, int64_t min, int64_t max, const char *tname,
                         int64_t *out)
{
    int neg;
    uint64_t mag;
    int rc = s_json_integer(p, v, &neg, &mag);
    if (rc != KB_OK)
        return rc;
    uint64_t lim = neg ? (uint64_t)(-(min + 1)) + 1 : (uint64_t)max;
    if (mag > lim)
        return s_fail(p, KB_EPROTO, "%s%" PRIu64 " is out of range for %s (%" PRId64 "..%" PRId64 ")", neg ? "-" : "",
                      mag, tname, min, max);
    *out = neg ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
    return KB_OK;
}

static int s_json_unsigned(const kb_jpath_t *p, json_object *v, uint64_t max, const char *tname, uint64_t *out)
{
    int neg;
    uint64_t mag;
    int rc = s_json_integer(p, v, &neg, &mag);
    if (rc != KB_OK)
        return rc;
    if (neg || mag > max)
        return s_fail(p, KB_EPROTO, "%s%" PRIu64 " is out of range for %s (0..%" PRIu64 ")", neg ? "-" : "", mag,
                      tname, max);
    *out = mag;
    return KB_OK;
}

/* A JSON string's bytes, refused when they are not valid UTF-8 text. */
static int s_json_text(const kb_jpath_t *p, json_object *v, const char *expect, const char **s, size_t *len)
{
    if (!json_object_is_type(v, json_type_string))
        return s_fail(p, KB_EPROTO, "expected %s", expect);
    int n = json_object_get_string_len(v);
    *s = json_object_get_string(v);
    *len = n > 0 ? (size_t)n : 0;
    if (memchr(*s, '\0', *len))
        return s_fail(p, KB_EPROTO, "NUL character in string");
    if (!kb_utf8_valid(*s, *len))
        return s_fail(p, KB_EPROTO, "invalid UTF-8 in string");
    return KB_OK;
}

static int s_json_bytes(const kb_jpath_t *p, const ProtobufCFieldDescriptor *fd, json_object *v,
                        ProtobufCBinaryData *out)
{
    const char *s;
    size_t len;
    int uuid = s_is_uuid_field(fd);
    int rc = s_json_text(p, v, uuid ? "a UUID string" : "a hex string", &s, &len);
    if (rc != KB_OK)
        return rc;
    if (uuid) {
        uint8_t *id = malloc(KB_JSON_UUID_LEN);
        if (!id)
            return s_fail(p, KB_ENOMEM, "out of memory");
        if (kb_uuid_parse(s, id) != KB_OK) {
            free(id);
            char q[KB_JSON_QUOTE_MAX + 4];
            s_quote(s, len, q);
            return s_fail(p, KB_EPROTO, "not a UUID: \"%s\" (expected 36 characters like %s)", q,
                          "0190f3a2-7c4e-7d21-9a6b-3c5d8e1f2a4b");
        }
        out->data = id;
        out->len = KB_JSON_UUID_LEN;
        return KB_OK;
    }
    if (len % 2 != 0)
        return s_fail(p, KB_EPROTO, "not hex: odd number of digits (%zu)", len);
    out->data = NULL;
    out->len = 0;
    if (len == 0)
        return KB_OK;
    uint8_t *b = malloc(len / 2);
    if (!b)
        return s_fail(p, KB_ENOMEM, "out of memory");
    if (kb_unhex(s, b, len / 2) != KB_OK) {
        free(b);
        return s_fail(p, KB_EPROTO, "not hex: %s", kb_last_error());
    }
    out->data = b;
    out->len = len / 2;
    return KB_OK;
}

static int s_json_time(const kb_jpath_t *p, json_object *v, int64_t *out)
{
    if (json_object_is_type(v, json_type_int))
        return s_json_signed(p, v, INT64_MIN, INT64_MAX, "int64", out);
    if (!json_object_is_type(v, json_type_string))
        return s_fail(p, KB_EPROTO, "expected RFC 3339 time text or an integer of microseconds");
    const char *s;
    size_t len;
    int rc = s_json_text(p, v, "a string", &s, &len);
    if (rc != KB_OK)
        return rc;
    if (kb_time_parse(s, out) != KB_OK) {
        char q[KB_JSON_QUOTE_MAX + 4];
        s_quote(s, len, q);
        return s_fail(p, KB_EPROTO, "not an RFC 3339 time: \"%s\" (like 2026-11-23T10:00:00Z)", q);
    }
    return KB_OK;
}

/* Convert one JSON value into one element of field fd in *e (callers copy
 * s_elem_size() bytes of it into place). On failure e owns nothing. */
static int s_json_to_elem(kb_jpath_t *p, const ProtobufCFieldDescriptor *fd, json_object *v, kb_jelem_t *e, int depth)
{
    int64_t i64;
    uint64_t u64;
    int rc = KB_OK;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        rc = s_json_signed(p, v, INT32_MIN, INT32_MAX, "int32", &i64);
        if (rc == KB_OK)
            e->i32 = (int32_t)i64;
        return rc;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        rc = s_json_unsigned(p, v, UINT32_MAX, "uint32", &u64);
        if (rc == KB_OK)
            e->u32 = (uint32_t)u64;
        return rc;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (s_is_time_field(fd))
            rc = s_json_time(p, v, &i64);
        else
            rc = s_json_signed(p, v, INT64_MIN, INT64_MAX, "int64", &i64);
        if (rc == KB_OK)
            e->i64 = i64;
        return rc;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        rc = s_json_unsigned(p, v, UINT64_MAX, "uint64", &u64);
        if (rc == KB_OK)
            e->u64 = u64;
        return rc;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
            return s_fail(p, KB_EPROTO, "expected a number");
        double d = json_object_get_double(v);
        if (fd->type == PROTOBUF_C_TYPE_DOUBLE) {
            e->d = d;
            return KB_OK;
        }
        if (isfinite(d) && (d > FLT_MAX || d < -FLT_MAX))
            return s_fail(p, KB_EPROTO, "%g is out of range for float", d);
        e->f = (float)d;
        return KB_OK;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_object_is_type(v, json_type_boolean))
            return s_fail(p, KB_EPROTO, "expected true or false");
        e->b = json_object_get_boolean(v) ? 1 : 0;
        return KB_OK;
    case PROTOBUF_C_TYPE_ENUM: {
        if (json_object_is_type(v, json_type_int)) {
            /* a number keeps a value this version has no name for */
            rc = s_json_signed(p, v, INT32_MIN, INT32_MAX, "enum", &i64);
            if (rc == KB_OK)
                e->i32 = (int32_t)i64;
            return rc;
        }
        const char *s;
        size_t len;
        rc = s_json_text(p, v, "a string", &s, &len);
        if (rc != KB_OK)
            return rc;
        return s_enum_from_text(p, fd->descriptor, s, len, &e->i32);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s;
        size_t len;
        rc = s_json_text(p, v, "a string", &s, &len);
        if (rc != KB_OK)
            return rc;
        char *copy = malloc(len + 1);
        if (!copy)
            return s_fail(p, KB_ENOMEM, "out of memory");
        memcpy(copy, s, len);
        copy[len] = '\0';
        e->s = copy;
        return KB_OK;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return s_json_bytes(p, fd, v, &e->bin);
    case PROTOBUF_C_TYPE_MESSAGE:
        return s_obj_to_msg(p, v, fd->descriptor, depth + 1, &e->m);
    }
    return s_fail(p, KB_EPROTO, "field type %d is not supported", (int)fd->type);
}

/* Fill field fd of a freshly initialised message m from v. On failure the
 * elements converted so far stay in m, counted, for the caller to free. */
static int s_json_to_field(kb_jpath_t *p, ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, json_object *v,
                           int depth)
{
    char *base = (char *)m;
    void *member = base + fd->offset;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        if (!json_object_is_type(v, json_type_array))
            return s_fail(p, KB_EPROTO, "expected an array");
        if (depth + 1 > KB_JSON_MAX_DEPTH)
            return s_fail(p, KB_EPROTO, "nested deeper than %d levels", KB_JSON_MAX_DEPTH);
        size_t n = json_object_array_length(v);
        if (n == 0)
            return KB_OK;
        size_t sz = s_elem_size(fd->type);
        if (n > SIZE_MAX / sz)
            return s_fail(p, KB_ETOOBIG, "array of %zu elements is too large", n);
        /* n is the count of values json-c already parsed, not a claimed count */
        void *arr = calloc(n, sz);
        if (!arr)
            return s_fail(p, KB_ENOMEM, "out of memory");
        size_t *count = (size_t *)(base + fd->quantifier_offset);
        *(void **)member = arr;
        *count = 0;
        for (size_t i = 0; i < n; i++) {
            size_t saved = s_path_index(p, i);
            kb_jelem_t e;
            memset(&e, 0, sizeof e);
            int rc = s_json_to_elem(p, fd, json_object_array_get_idx(v, i), &e, depth + 1);
            if (rc != KB_OK)
                return rc;
            memcpy((char *)arr + i * sz, &e, sz); /* elements of 4 bytes are not union-aligned */
            (*count)++;
            s_path_pop(p, saved);
        }
        return KB_OK;
    }
    kb_jelem_t e;
    memset(&e, 0, sizeof e);
    int rc = s_json_to_elem(p, fd, v, &e, depth);
    if (rc != KB_OK)
        return rc;
    memcpy(member, &e, s_elem_size(fd->type));
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)(base + fd->quantifier_offset) = fd->id;
    else if (s_has_flag(fd))
        *(protobuf_c_boolean *)(base + fd->quantifier_offset) = 1;
    return KB_OK;
}

static int s_obj_to_msg(kb_jpath_t *p, json_object *obj, const ProtobufCMessageDescriptor *desc, int depth,
                        ProtobufCMessage **out)
{
    *out = NULL;
    if (depth > KB_JSON_MAX_DEPTH)
        return s_fail(p, KB_EPROTO, "nested deeper than %d levels", KB_JSON_MAX_DEPTH);
    if (!json_object_is_type(obj, json_type_object))
        return s_fail(p, KB_EPROTO, "expected a JSON object");
    ProtobufCMessage *m = malloc(desc->sizeof_message);
    if (!m)
        return s_fail(p, KB_ENOMEM, "out of memory");
    protobuf_c_message_init(desc, m);

    int rc = KB_OK;
    struct json_object_iterator it = json_object_iter_begin(obj), end = json_object_iter_end(obj);
    for (; rc == KB_OK && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *key = json_object_iter_peek_name(&it);
        json_object *v = json_object_iter_peek_value(&it);
        size_t saved = s_path_push(p, key, strlen(key));
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field_by_name(desc, key);
        if (!fd) {
            rc = s_unknown_field(p, desc, KB_EPROTO);
            break;
        }
        if (v == NULL) { /* null: the field is not given */
            s_path_pop(p, saved);
            continue;
        }
        if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t cur = *(const uint32_t *)((const char *)m + fd->quantifier_offset);
            if (cur != 0 && cur != fd->id) {
                const ProtobufCFieldDescriptor *other = protobuf_c_message_descriptor_get_field(desc, cur);
                const char *a = other ? other->name : "?", *b = fd->name;
                if (other && other->id > fd->id) {
                    b = a;
                    a = fd->name;
                }
                s_path_pop(p, saved);
                const char *on = s_oneof_name(desc, fd->quantifier_offset);
                s_path_push(p, on, strlen(on));
                rc = s_fail(p, KB_EPROTO, "both %s and %s given (only one may be set)", a, b);
                break;
            }
        }
        rc = s_json_to_field(p, m, fd, v, depth);
        if (rc == KB_OK)
            s_path_pop(p, saved);
    }
    if (rc != KB_OK) {
        protobuf_c_message_free_unpacked(m, NULL);
        return rc;
    }
    *out = m;
    return KB_OK;
}

int kb_json_to_msg(json_object *obj, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    if (!desc || !out)
        return kb_error_set(KB_EINVAL, "kb_json_to_msg: NULL argument");
    kb_jpath_t p = {.buf = "", .len = 0};
    return s_obj_to_msg(&p, obj, desc, 1, out);
}

int kb_json_decode(const char *text, size_t len, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    if (!text || !desc || !out)
        return kb_error_set(KB_EINVAL, "kb_json_decode: NULL argument");
    *out = NULL;
    json_object *obj;
    int rc = s_parse_text(text, len, &obj);
    if (rc != KB_OK)
        return rc;
    rc = kb_json_to_msg(obj, desc, out);
    json_object_put(obj);
    return rc;
}

/* --------------------------------------------------------- message -> JSON */

static json_object *s_bytes_to_json(const ProtobufCFieldDescriptor *fd, const ProtobufCBinaryData *b)
{
    if (s_is_uuid_field(fd) && b->len == KB_JSON_UUID_LEN) {
        char text[KB_JSON_UUID_TEXT + 1];
        kb_uuid_format(b->data, text);
        return json_object_new_string(text);
    }
    /* other lengths in an id field are shown as hex: the input side refuses
     * them, but what a malformed message holds stays visible */
    if (b->len > (SIZE_MAX - 1) / 2)
        return NULL;
    char *hex = malloc(2 * b->len + 1);
    if (!hex)
        return NULL;
    kb_hex(b->data, b->len, hex);
    json_object *o = json_object_new_string_len(hex, (int)(2 * b->len));
    free(hex);
    return o;
}

static json_object *s_elem_to_json(const ProtobufCFieldDescriptor *fd, const void *p)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: return json_object_new_int(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return json_object_new_int64(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t v = *(const int64_t *)p;
        if (s_is_time_field(fd) && v >= KB_JSON_TIME_MIN_US && v <= KB_JSON_TIME_MAX_US) {
            char text[32];
            kb_time_format(v, text);
            return json_object_new_string(text);
        }
        return json_object_new_int64(v);
    }
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return json_object_new_uint64(*(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT: return json_object_new_double(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE: return json_object_new_double(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL: return json_object_new_boolean(*(const protobuf_c_boolean *)p ? 1 : 0);
    case PROTOBUF_C_TYPE_ENUM: {
        char name[2 * KB_JSON_NAME_MAX];
        int32_t v = *(const int32_t *)p;
        if (s_enum_text(fd->descriptor, v, name, sizeof name))
            return json_object_new_string(name);
        return json_object_new_int(v); /* a value this version does not know */
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return json_object_new_string(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES: return s_bytes_to_json(fd, p);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        return sub ? s_msg_to_json(sub) : json_object_new_object();
    }
    }
    return NULL;
}

/* The JSON value of a present field; NULL on no memory. */
static json_object *s_field_to_json(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    const char *base = (const char *)m;
    const void *member = base + fd->offset;
    if (fd->label != PROTOBUF_C_LABEL_REPEATED)
        return s_elem_to_json(fd, member);
    size_t n = *(const size_t *)(base + fd->quantifier_offset);
    const char *arr = *(const char *const *)member;
    size_t sz = s_elem_size(fd->type);
    json_object *a = json_object_new_array_ext(n > INT32_MAX ? INT32_MAX : (int)n);
    if (!a)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        json_object *v = s_elem_to_json(fd, arr + i * sz);
        if (!v || json_object_array_add(a, v) != 0) {
            json_object_put(v);
            json_object_put(a);
            return NULL;
        }
    }
    return a;
}

static json_object *s_msg_to_json(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *desc = m->descriptor;
    json_object *obj = json_object_new_object();
    if (!obj)
        return NULL;
    /* protobuf-c keeps fields sorted by number: the output order */
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &desc->fields[i];
        if (!s_field_present(m, fd))
            continue;
        json_object *v = s_field_to_json(m, fd);
        if (!v || json_object_object_add_ex(obj, fd->name, v, JSON_C_OBJECT_ADD_KEY_IS_NEW) != 0) {
            json_object_put(v);
            json_object_put(obj);
            return NULL;
        }
    }
    return obj;
}

json_object *kb_json_from_msg(const ProtobufCMessage *msg)
{
    if (!msg) {
        kb_error_set(KB_EINVAL, "kb_json_from_msg: NULL message");
        return NULL;
    }
    json_object *o = s_msg_to_json(msg);
    if (!o)
        kb_error_set(KB_ENOMEM, "JSON form of %s: out of memory", msg->descriptor->short_name);
    return o;
}

/* Text of a JSON value: strings bare, anything else as compact JSON. */
static char *s_json_string(json_object *o, int pretty)
{
    const char *s;
    if (json_object_is_type(o, json_type_string)) {
        s = json_object_get_string(o);
    } else {
        int flags = JSON_C_TO_STRING_NOSLASHESCAPE;
        flags |= pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN;
        s = json_object_to_json_string_ext(o, flags);
    }
    char *copy = s ? strdup(s) : NULL;
    if (!copy)
        kb_error_set(KB_ENOMEM, "JSON text: out of memory");
    return copy;
}

char *kb_json_encode(const ProtobufCMessage *msg, int pretty)
{
    json_object *o = kb_json_from_msg(msg);
    if (!o)
        return NULL;
    char *text = s_json_string(o, pretty);
    json_object_put(o);
    return text;
}

/* ------------------------------------------------------------------- paths */

/* The fields a dotted path names, resolved against descriptors only. */
typedef struct {
    const ProtobufCFieldDescriptor *fd[KB_JSON_MAX_DEPTH]; /* field of each segment */
    size_t n;                                              /* segments in the path */
} kb_jsteps_t;

static int s_resolve(const ProtobufCMessageDescriptor *desc, const char *path, kb_jsteps_t *st)
{
    kb_jpath_t p = {.buf = "", .len = 0};
    st->n = 0;
    size_t plen = strlen(path);
    if (plen == 0)
        return kb_error_set(KB_ENOTFOUND, "empty field path");
    if (plen >= KB_JSON_PATH_MAX)
        return kb_error_set(KB_ENOTFOUND, "field path of %zu bytes is too long", plen);
    const char *seg = path;
    for (;;) {
        const char *dot = strchr(seg, '.');
        size_t sl = dot ? (size_t)(dot - seg) : strlen(seg);
        s_path_set(&p, path, (size_t)(seg - path) + sl);
        if (sl == 0)
            return s_fail(&p, KB_ENOTFOUND, "empty segment in field path \"%.*s\"", KB_JSON_NAME_MAX, path);
        if (sl > KB_JSON_NAME_MAX)
            return s_fail(&p, KB_ENOTFOUND, "unknown field (name too long)");
        if (st->n == KB_JSON_MAX_DEPTH)
            return s_fail(&p, KB_ENOTFOUND, "path deeper than %d fields", KB_JSON_MAX_DEPTH);
        char name[KB_JSON_NAME_MAX + 1];
        memcpy(name, seg, sl);
        name[sl] = '\0';
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field_by_name(desc, name);
        if (!fd)
            return s_unknown_field(&p, desc, KB_ENOTFOUND);
        st->fd[st->n++] = fd;
        if (!dot)
            return KB_OK;
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
            return s_fail(&p, KB_ENOTFOUND, "not a message, so it has no field \"%.*s\"", KB_JSON_NAME_MAX, dot + 1);
        if (fd->label == PROTOBUF_C_LABEL_REPEATED)
            return s_fail(&p, KB_ENOTFOUND, "a repeated field cannot be a step of a path");
        desc = fd->descriptor;
        seg = dot + 1;
    }
}

/* True if text is a decimal integer: optional '-', then only digits. */
static int s_is_decimal(const char *text)
{
    const char *s = text[0] == '-' ? text + 1 : text;
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

static int s_decimal_to_json(const kb_jpath_t *p, const char *text, json_object **out)
{
    if (!s_is_decimal(text))
        return s_fail(p, KB_EPROTO, "expected an integer");
    char *end;
    errno = 0;
    if (text[0] == '-') {
        long long v = strtoll(text, &end, 10);
        if (errno == ERANGE || *end != '\0')
            return s_fail(p, KB_EPROTO, "%s is out of range for a 64-bit integer", text);
        *out = json_object_new_int64((int64_t)v);
    } else {
        unsigned long long v = strtoull(text, &end, 10);
        if (errno == ERANGE || *end != '\0')
            return s_fail(p, KB_EPROTO, "%s is out of range for a 64-bit integer", text);
        *out = v <= INT64_MAX ? json_object_new_int64((int64_t)v) : json_object_new_uint64((uint64_t)v);
    }
    return *out ? KB_OK : s_fail(p, KB_ENOMEM, "out of memory");
}

/* The JSON value for the text form of one element of fd (see kb_json.h). */
static int s_text_to_json(const kb_jpath_t *p, const ProtobufCFieldDescriptor *fd, const char *text, json_object **out)
{
    *out = NULL;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_MESSAGE: {
        int rc = s_parse_text(text, strlen(text), out);
        return rc == KB_OK ? KB_OK : kb_error_wrap(rc, "%s", p->buf);
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)
            *out = json_object_new_boolean(text[0] == 't');
        else
            return s_fail(p, KB_EPROTO, "expected true or false");
        break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(text, &end);
        if (end == text || *end != '\0' || isspace((unsigned char)text[0]))
            return s_fail(p, KB_EPROTO, "expected a number");
        if (errno == ERANGE)
            return s_fail(p, KB_EPROTO, "%s is out of range", text);
        *out = json_object_new_double(d);
        break;
    }
    case PROTOBUF_C_TYPE_ENUM:
        if (s_is_decimal(text))
            return s_decimal_to_json(p, text, out);
        *out = json_object_new_string(text);
        break;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES: *out = json_object_new_string(text); break;
    default:
        if (s_is_time_field(fd) && !s_is_decimal(text)) {
            *out = json_object_new_string(text);
            break;
        }
        return s_decimal_to_json(p, text, out);
    }
    return *out ? KB_OK : s_fail(p, KB_ENOMEM, "out of memory");
}

/* Clear the member of fd's oneof that is set, if it is not fd itself. */
static void s_oneof_clear_other(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    char *base = (char *)m;
    uint32_t *cur = (uint32_t *)(base + fd->quantifier_offset);
    if (*cur == 0 || *cur == fd->id)
        return;
    const ProtobufCFieldDescriptor *other = protobuf_c_message_descriptor_get_field(m->descriptor, *cur);
    if (other) /* members share one storage place; free it as the other's type */
        s_elem_free(other, base + other->offset);
    *cur = 0;
}

/* The sub-message in field fd of m, created (and selected, for a oneof
 * member) when it is missing. */
static int s_step_into(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, ProtobufCMessage **sub)
{
    char *base = (char *)m;
    ProtobufCMessage **slot = (ProtobufCMessage **)(base + fd->offset);
    int oneof = (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
    uint32_t *cur = oneof ? (uint32_t *)(base + fd->quantifier_offset) : NULL;
    if ((!oneof || *cur == fd->id) && *slot) {
        *sub = *slot;
        return KB_OK;
    }
    const ProtobufCMessageDescriptor *sd = fd->descriptor;
    ProtobufCMessage *n = malloc(sd->sizeof_message);
    if (!n)
        return kb_error_set(KB_ENOMEM, "%s: out of memory", fd->name);
    protobuf_c_message_init(sd, n);
    if (oneof) {
        s_oneof_clear_other(m, fd);
        *cur = fd->id;
    }
    *slot = n;
    *sub = n;
    return KB_OK;
}

/* Put a converted element into m: appended to a repeated field, replacing
 * the old value otherwise. Takes e's allocations on success. */
static int s_store(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, kb_jelem_t *e)
{
    char *base = (char *)m;
    void *member = base + fd->offset;
    size_t sz = s_elem_size(fd->type);
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t *count = (size_t *)(base + fd->quantifier_offset);
        if (*count >= SIZE_MAX / sz - 1)
            return kb_error_set(KB_ETOOBIG, "%s: too many elements", fd->name);
        char *arr = realloc(*(void **)member, (*count + 1) * sz);
        if (!arr)
            return kb_error_set(KB_ENOMEM, "%s: out of memory", fd->name);
        *(void **)member = arr;
        memcpy(arr + *count * sz, e, sz);
        (*count)++;
        return KB_OK;
    }
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *cur = (uint32_t *)(base + fd->quantifier_offset);
        if (*cur == fd->id)
            s_elem_free(fd, member);
        else
            s_oneof_clear_other(m, fd);
        *cur = fd->id;
    } else {
        s_elem_free(fd, member);
        if (s_has_flag(fd))
            *(protobuf_c_boolean *)(base + fd->quantifier_offset) = 1;
    }
    memcpy(member, e, sz);
    return KB_OK;
}

int kb_json_set_path(ProtobufCMessage *msg, const char *path, const char *value)
{
    if (!msg || !path || !value)
        return kb_error_set(KB_EINVAL, "kb_json_set_path: NULL argument");
    kb_jsteps_t st;
    int rc = s_resolve(msg->descriptor, path, &st);
    if (rc != KB_OK)
        return rc;
    const ProtobufCFieldDescriptor *fd = st.fd[st.n - 1];
    kb_jpath_t p;
    s_path_set(&p, path, strlen(path));

    /* convert first: a refused value must leave msg untouched */
    json_object *jv = NULL;
    rc = s_text_to_json(&p, fd, value, &jv);
    if (rc != KB_OK)
        return rc;
    kb_jelem_t e;
    memset(&e, 0, sizeof e);
    rc = s_json_to_elem(&p, fd, jv, &e, (int)st.n);
    json_object_put(jv);
    if (rc != KB_OK)
        return rc;

    ProtobufCMessage *cur = msg;
    for (size_t i = 0; i + 1 < st.n && rc == KB_OK; i++)
        rc = s_step_into(cur, st.fd[i], &cur);
    if (rc == KB_OK)
        rc = s_store(cur, fd, &e);
    if (rc != KB_OK)
        s_elem_free(fd, &e);
    return rc;
}

char *kb_json_get_path(const ProtobufCMessage *msg, const char *path)
{
    if (!msg || !path) {
        kb_error_set(KB_EINVAL, "kb_json_get_path: NULL argument");
        return NULL;
    }
    kb_jsteps_t st;
    if (s_resolve(msg->descriptor, path, &st) != KB_OK)
        return NULL;
    const ProtobufCMessage *cur = msg;
    for (size_t i = 0; i < st.n; i++) {
        const ProtobufCFieldDescriptor *fd = st.fd[i];
        if (!s_field_present(cur, fd)) {
            kb_error_set(KB_ENOTFOUND, "%s: not set", path);
            return NULL;
        }
        if (i + 1 < st.n)
            cur = *(ProtobufCMessage *const *)((const char *)cur + fd->offset);
    }
    json_object *v = s_field_to_json(cur, st.fd[st.n - 1]);
    if (!v) {
        kb_error_set(KB_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    char *text = s_json_string(v, 0);
    json_object_put(v);
    return text;
}
