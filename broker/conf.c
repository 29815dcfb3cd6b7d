/*
 * conf.c - load and validate the chain configuration of ketenbusd (conf.h).
 *
 * The file is read whole (at most KB_CONF_MAX_BYTES), hashed, and parsed
 * with libyaml's document API; the node tree is then walked against the
 * fixed schema below. A first pass over the parser's events bounds the
 * nesting depth and refuses anchors and aliases, on which libyaml spends
 * time quadratic in their number; the walk consumes every node at most once
 * too, so the work stays proportional to the size of the file. Before
 * either, a pass over the bytes refuses what libyaml takes for a line
 * break and editors do not (s_check_breaks), so that every line:column
 * reported is where an editor shows it.
 *
 * Errors name the file, the 1-based line and column of the offending node
 * and the key or value at fault ("chain.yaml:12:7: unknown key 'sender' in
 * rule (expected id, description, effect, ...)"). A load either returns a
 * complete configuration or NULL: every failure path ends in
 * kb_conf_destroy().
 *
 * Rules are checked one by one as far as one rule can be (names, paths,
 * dates, required keys); what depends on several rules (shadowing, expiry
 * at load time) is kb_policy_lint()'s, run on the finished configuration.
 * Groups are expanded into each rule's from and to with a per-list stamp
 * per agency, so a rule costs time proportional to what it names.
 *
 * Kind, purpose and handling names come from the generated protobuf-c
 * descriptors (KIND_REFERRAL_UPDATE is written referral_update, HANDLING_H2
 * h2), so a value added to the proto needs no change here.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <yaml.h>

#include "conf.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_seal.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"

#define KB_CONF_MAX_ID        32u                    /* agency and broker ids */
#define KB_CONF_MAX_RULE_ID   63u                    /* fits a receipt's rule_id[64] */
#define KB_CONF_MAX_NAME      128u                   /* display names */
#define KB_CONF_MAX_ENDPOINT  256u                   /* listen endpoint */
#define KB_CONF_MIN_MESSAGE   1024u                  /* smallest max_message_bytes */
#define KB_CONF_MAX_MESSAGE   (64u * 1024u * 1024u)  /* largest max_message_bytes */
#define KB_CONF_SHOW          64                     /* characters of a value quoted in a message */
#define KB_CONF_LIST_TEXT     256u                   /* "expected ..." lists in messages */
#define KB_CONF_MAX_DEPTH     16                     /* nesting of lists and mappings; the schema uses 4 */
#define KB_CONF_MAX_BASIS     160u                   /* legal basis text: fits a decision's reason */
#define KB_CONF_MAX_TEXT      2048u                  /* a rule's description */
#define KB_CONF_MAX_ENUM_BIT  31                     /* kinds and purposes are bits of a uint32_t */
#define KB_CONF_DATE_LEN      10u                    /* "YYYY-MM-DD" */
#define KB_CONF_MIN_YEAR      1970                   /* earliest year of a valid_until */

#define S_US_PER_S   1000000LL
#define S_US_PER_DAY (86400LL * S_US_PER_S)
#define S_COUNT(a)   (sizeof(a) / sizeof((a)[0]))

/* A string -> index map with open addressing, for duplicate checks and
 * lookups while loading. Keys are borrowed from the configuration. */
typedef struct {
    const char **keys; /* key per slot, NULL for a free slot */
    size_t *values;    /* value per slot */
    size_t cap;        /* number of slots, a power of two (or 0) */
    size_t used;       /* occupied slots */
} s_index_t;

/* Everything one load needs besides the configuration itself. */
typedef struct {
    const char *path;      /* the file as given: first part of every message */
    char *dir;             /* directory relative paths start from; NULL: keep them */
    yaml_document_t doc;   /* the parsed document */
    int have_doc;          /* doc must be deleted */
    uint8_t *used;         /* per node of doc: consumed already */
    size_t n_nodes;        /* number of nodes in doc */
    kb_conf_t *conf;       /* the configuration being built */
    s_index_t agency_ids;  /* agency id -> index in conf->agencies */
    s_index_t curve_keys;  /* Z85 public key -> index of the agency owning it */
    char (*sign_hex)[2 * KB_CONF_SIGN_KEY_LEN + 1]; /* per agency: hex of its signing key, for sign_keys */
    s_index_t sign_keys;   /* hex signing key -> index of the agency owning it */
    s_index_t rule_ids;    /* rule id -> index in conf->rules */
    s_index_t group_ids;   /* group name -> index in conf->groups */
    uint32_t *stamp;       /* per agency: number of the last list naming it */
    uint32_t *added;       /* per agency: number of the last list it was added to */
    uint32_t *group_stamp; /* per group: number of the last list naming it */
    size_t *picked;        /* agency indexes of the list being read (n_agencies slots) */
    uint32_t list_no;      /* number of the agency list being read */
    uint64_t n_pairs;      /* sender/recipient pairs of the rules so far */
    unsigned flags;        /* KB_CONF_* flags of the load */
    const yaml_node_t *broker_node; /* the broker: mapping */
    const yaml_node_t *broker_id;   /* its id value; NULL: the default id */
} s_ctx_t;

/* ------------------------------------------------------------- index */

static size_t s_hash(const char *s)
{
    /* FNV-1a, 64 bit. */
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

static int s_index_grow(s_index_t *ix)
{
    size_t cap = ix->cap ? ix->cap * 2 : 16;
    if (cap > SIZE_MAX / sizeof(size_t))
        return kb_error_set(KB_ENOMEM, "index too large");
    const char **keys = calloc(cap, sizeof *keys);
    size_t *values = calloc(cap, sizeof *values);
    if (!keys || !values) {
        free(keys);
        free(values);
        return kb_error_set(KB_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < ix->cap; i++) {
        if (!ix->keys[i])
            continue;
        size_t j = s_hash(ix->keys[i]) & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = ix->keys[i];
        values[j] = ix->values[i];
    }
    free(ix->keys);
    free(ix->values);
    ix->keys = keys;
    ix->values = values;
    ix->cap = cap;
    return KB_OK;
}

/* 1 and *value if key is present, else 0. */
static int s_index_get(const s_index_t *ix, const char *key, size_t *value)
{
    if (ix->cap == 0)
        return 0;
    for (size_t j = s_hash(key) & (ix->cap - 1); ix->keys[j]; j = (j + 1) & (ix->cap - 1)) {
        if (strcmp(ix->keys[j], key) == 0) {
            *value = ix->values[j];
            return 1;
        }
    }
    return 0;
}

/* Add a key that is not present yet. */
static int s_index_put(s_index_t *ix, const char *key, size_t value)
{
    /* Keep the table at most half full so that probes stay short. */
    if (ix->used + 1 > ix->cap / 2) {
        int rc = s_index_grow(ix);
        if (rc != KB_OK)
            return rc;
    }
    size_t j = s_hash(key) & (ix->cap - 1);
    while (ix->keys[j])
        j = (j + 1) & (ix->cap - 1);
    ix->keys[j] = key;
    ix->values[j] = value;
    ix->used++;
    return KB_OK;
}

static void s_index_free(s_index_t *ix)
{
    free(ix->keys);
    free(ix->values);
    memset(ix, 0, sizeof *ix);
}

/* ------------------------------------------------------------ errors */

static int s_verr_at(const s_ctx_t *ctx, size_t line, size_t column, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static int s_verr_at(const s_ctx_t *ctx, size_t line, size_t column, const char *fmt, va_list ap)
{
    /* Format first: the arguments may point into the thread's last error. */
    char msg[KB_ERROR_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return kb_error_set(KB_ECONFIG, "%s:%zu:%zu: %s", ctx->path, line + 1, column + 1, msg);
}

static int s_err(const s_ctx_t *ctx, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A configuration error at node. */
static int s_err(const s_ctx_t *ctx, const yaml_node_t *node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_verr_at(ctx, node->start_mark.line, node->start_mark.column, fmt, ap);
    va_end(ap);
    return rc;
}

static int s_err_at(const s_ctx_t *ctx, size_t line, size_t column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_err_at(const s_ctx_t *ctx, size_t line, size_t column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_verr_at(ctx, line, column, fmt, ap);
    va_end(ap);
    return rc;
}

static kb_conf_pos_t s_pos(const yaml_node_t *node)
{
    return (kb_conf_pos_t){(int)node->start_mark.line + 1, (int)node->start_mark.column + 1};
}

static int s_nomem(void)
{
    return kb_error_set(KB_ENOMEM, "loading configuration: out of memory");
}

/* ------------------------------------------------------------- nodes */

/* The node with this index, marked as consumed. A node met twice comes from
 * a YAML alias. */
static int s_take(s_ctx_t *ctx, int index, yaml_node_t **out)
{
    yaml_node_t *node = yaml_document_get_node(&ctx->doc, index);
    if (!node)
        return kb_error_set(KB_ECONFIG, "%s: YAML document refers to a missing node", ctx->path);
    size_t i = (size_t)(node - ctx->doc.nodes.start);
    if (ctx->used[i])
        return s_err(ctx, node, "this node is used again through a YAML alias; aliases are not supported");
    ctx->used[i] = 1;
    *out = node;
    return KB_OK;
}

static size_t s_seq_len(const yaml_node_t *node)
{
    return (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
}

static const char *s_type_name(const yaml_node_t *node)
{
    switch (node->type) {
    case YAML_SCALAR_NODE: return "single value";
    case YAML_SEQUENCE_NODE: return "list";
    case YAML_MAPPING_NODE: return "mapping";
    default: return "empty node";
    }
}

/* Characters a value may not hold: C0 and C1 controls and DEL; the line
 * and paragraph separators; the bidirectional controls, with which a name
 * or legal basis shows in a log, `policy explain` or an audit report as
 * other text than it is (U+202E turns what follows around); and the
 * characters that show as nothing at all, with which two names that look
 * the same are not (soft hyphen, zero width space, word joiner and the
 * invisible operators, byte order mark, Hangul fillers, interlinear
 * annotation marks, tags). The zero width (non-)joiners U+200C and U+200D
 * stay allowed: some scripts need them within words. */
static int s_char_refused(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0x200e ||
           cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x061c ||
           cp == 0x00ad || cp == 0x180e || cp == 0x200b || (cp >= 0x2060 && cp <= 0x2064) || cp == 0xfeff ||
           cp == 0x115f || cp == 0x1160 || cp == 0x3164 || cp == 0xffa0 || (cp >= 0xfff9 && cp <= 0xfffb) ||
           (cp >= 0xe0000 && cp <= 0xe007f);
}

/* The text of a scalar node without NUL and without characters of
 * s_char_refused(); lines lets '\n' and '\t' through (a description). */
static int s_visible(const s_ctx_t *ctx, const yaml_node_t *node, const char *what, int lines, const char **out)
{
    if (node->type != YAML_SCALAR_NODE)
        return s_err(ctx, node, "%s: expected a single value, not a %s", what, s_type_name(node));
    const char *text = (const char *)node->data.scalar.value;
    size_t len = node->data.scalar.length;
    if (strlen(text) != len)
        return s_err(ctx, node, "%s: NUL character in value", what);
    for (size_t i = 0; i < len;) {
        /* libyaml hands over valid UTF-8 only; a byte that is not is
         * taken for U+FFFD */
        uint32_t cp = 0xfffd;
        if (kb_utf8_next(text, len, &i, &cp) != KB_OK)
            i++;
        if (s_char_refused(cp) && !(lines && (cp == '\n' || cp == '\t')))
            return s_err(ctx, node, "%s: invisible or control character U+%04X in value", what, (unsigned)cp);
    }
    *out = text;
    return KB_OK;
}

/* The text of a scalar node; one line of visible text. */
static int s_scalar(const s_ctx_t *ctx, const yaml_node_t *node, const char *what, const char **out)
{
    return s_visible(ctx, node, what, 0, out);
}

/* As s_scalar, and not empty. */
static int s_text(const s_ctx_t *ctx, const yaml_node_t *node, const char *what, const char **out)
{
    int rc = s_scalar(ctx, node, what, out);
    if (rc == KB_OK && **out == '\0')
        return s_err(ctx, node, "%s: empty value", what);
    return rc;
}

/* A plain empty value, "~" or "null". */
static int s_is_null(const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *t = (const char *)node->data.scalar.value;
    return !*t || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") || !strcmp(t, "NULL");
}

static void s_join_names(const char *const *names, size_t n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= len - used)
            break; /* a shorter hint is still a hint */
        used += (size_t)w;
    }
}

/* Read a mapping whose keys must be among names: values[i] is the value
 * node of names[i], or NULL when absent, and keys[i] (if keys is not NULL)
 * its key node. where says where the mapping is ("in rule", "at top
 * level"). */
static int s_map(s_ctx_t *ctx, const yaml_node_t *node, const char *where, const char *const *names, size_t n_names,
                 yaml_node_t **values, yaml_node_t **keys)
{
    for (size_t i = 0; i < n_names; i++) {
        values[i] = NULL;
        if (keys)
            keys[i] = NULL;
    }
    if (node->type != YAML_MAPPING_NODE)
        return s_err(ctx, node, "expected key: value lines %s, not a %s", where, s_type_name(node));
    for (yaml_node_pair_t *pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
        yaml_node_t *key, *value;
        const char *name;
        int rc;
        if ((rc = s_take(ctx, pair->key, &key)) != KB_OK || (rc = s_text(ctx, key, "key", &name)) != KB_OK)
            return rc;
        size_t i = 0;
        while (i < n_names && strcmp(names[i], name) != 0)
            i++;
        if (i == n_names) {
            char expected[KB_CONF_LIST_TEXT];
            s_join_names(names, n_names, expected, sizeof expected);
            return s_err(ctx, key, "unknown key '%.*s' %s (expected %s)", KB_CONF_SHOW, name, where, expected);
        }
        if (values[i])
            return s_err(ctx, key, "duplicate key '%s'", names[i]);
        if ((rc = s_take(ctx, pair->value, &value)) != KB_OK)
            return rc;
        values[i] = value;
        if (keys)
            keys[i] = key;
    }
    return KB_OK;
}

/* Nodes of a value that is one scalar or a list of them. */
typedef struct {
    yaml_node_t *single;    /* the value itself when it is a scalar */
    yaml_node_item_t *items; /* else its items */
    size_t n;               /* number of values */
} s_list_t;

static int s_list(const s_ctx_t *ctx, yaml_node_t *node, const char *what, s_list_t *list)
{
    memset(list, 0, sizeof *list);
    if (node->type == YAML_SCALAR_NODE) {
        list->single = node;
        list->n = 1;
        return KB_OK;
    }
    if (node->type != YAML_SEQUENCE_NODE)
        return s_err(ctx, node, "%s: expected a value or a list of values, not a %s", what, s_type_name(node));
    list->items = node->data.sequence.items.start;
    list->n = s_seq_len(node);
    return KB_OK;
}

static int s_list_item(s_ctx_t *ctx, const s_list_t *list, size_t i, yaml_node_t **out)
{
    if (list->single) {
        *out = list->single;
        return KB_OK;
    }
    return s_take(ctx, list->items[i], out);
}

/* ------------------------------------------------------------ values */

/* [a-z0-9-], 1..KB_CONF_MAX_ID characters: an id the wire also takes. */
_Static_assert(KB_CONF_MAX_ID == KB_AGENCY_ID_MAX, "configured ids fit the envelope's agency ids");
static int s_id_is_valid(const char *id)
{
    return kb_agency_id_valid(id);
}

/* [A-Za-z0-9._-], 1..KB_CONF_MAX_RULE_ID characters. */
static int s_rule_id_is_valid(const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len > KB_CONF_MAX_RULE_ID)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static int s_strdup(const char *text, char **out)
{
    *out = strdup(text);
    return *out ? KB_OK : s_nomem();
}

/* Resolve a path against the configuration's directory. */
static int s_path(const s_ctx_t *ctx, const yaml_node_t *node, const char *what, char **out)
{
    const char *text;
    int rc = s_text(ctx, node, what, &text);
    if (rc != KB_OK)
        return rc;
    if (text[0] == '/' || !ctx->dir)
        return s_strdup(text, out);
    char buf[PATH_MAX];
    const char *sep = ctx->dir[strlen(ctx->dir) - 1] == '/' ? "" : "/";
    if (kb_fmt(buf, sizeof buf, "%s%s%s", ctx->dir, sep, text) != KB_OK)
        return s_err(ctx, node, "%s: path too long", what);
    return s_strdup(buf, out);
}

/* A whole number in [min, max]. */
static int s_number(const s_ctx_t *ctx, const yaml_node_t *node, const char *what, long long min, long long max,
                    long long *out)
{
    const char *text;
    int rc = s_text(ctx, node, what, &text);
    if (rc != KB_OK)
        return rc;
    if (!isdigit((unsigned char)text[0]))
        return s_err(ctx, node, "%s: expected a whole number, got '%.*s'", what, KB_CONF_SHOW, text);
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (*end != '\0')
        return s_err(ctx, node, "%s: expected a whole number, got '%.*s'", what, KB_CONF_SHOW, text);
    if (errno == ERANGE || v < min || v > max)
        return s_err(ctx, node, "%s: %.*s is out of range %lld..%lld", what, KB_CONF_SHOW, text, min, max);
    *out = v;
    return KB_OK;
}

/* A duration "<number><s|m|h|d|y>" in [min_us, max_us] (range_text says
 * it); a year is 365 days. */
static int s_duration(const s_ctx_t *ctx, const yaml_node_t *node, const char *what, int64_t min_us, int64_t max_us,
                      const char *range_text, int64_t *out)
{
    const char *text;
    int rc = s_text(ctx, node, what, &text);
    if (rc != KB_OK)
        return rc;
    char *end = NULL;
    long long v = -1;
    if (isdigit((unsigned char)text[0])) {
        errno = 0;
        v = strtoll(text, &end, 10);
        if (errno == ERANGE)
            return s_err(ctx, node, "%s: %.*s is out of range %s", what, KB_CONF_SHOW, text, range_text);
    }
    int64_t unit = 0;
    if (end && end[0] != '\0' && end[1] == '\0') {
        switch (end[0]) {
        case 's': unit = S_US_PER_S; break;
        case 'm': unit = 60 * S_US_PER_S; break;
        case 'h': unit = 3600 * S_US_PER_S; break;
        case 'd': unit = 86400 * S_US_PER_S; break;
        case 'y': unit = 365LL * 86400 * S_US_PER_S; break;
        default: break;
        }
    }
    if (unit == 0)
        return s_err(ctx, node, "%s: expected a number with s, m, h, d or y, got '%.*s'", what, KB_CONF_SHOW, text);
    if (v > INT64_MAX / unit || v * unit < min_us || v * unit > max_us)
        return s_err(ctx, node, "%s: %.*s is out of range %s", what, KB_CONF_SHOW, text, range_text);
    *out = v * unit;
    return KB_OK;
}

/* ------------------------------------------------------------ broker */

enum {
    B_ID, B_LISTEN, B_DATA_DIR, B_KEY_DIR, B_MAX_MESSAGE, B_TTL, B_SESSION, B_CP_INTERVAL, B_CP_RECORDS,
    B_VERIFY, B_RETENTION, B_N
};
static const char *const s_broker_keys[B_N] = {
    "id", "listen", "data_dir", "key_dir", "max_message_bytes", "message_ttl", "session_timeout",
    "checkpoint_interval", "checkpoint_records", "verify_signatures", "retention",
};

/* retention: {kind: duration}: keys in Ketenbus__Kind order, "other" for 0 */
static const char *const s_retention_keys[KB_CONF_RETENTION_KINDS] = {
    "other", "signal", "referral", "referral_update", "match_notice", "expiry_notice",
};

static int s_retention(s_ctx_t *ctx, const yaml_node_t *node)
{
    yaml_node_t *v[KB_CONF_RETENTION_KINDS];
    int rc = s_map(ctx, node, "in retention", s_retention_keys, KB_CONF_RETENTION_KINDS, v, NULL);
    for (size_t k = 0; rc == KB_OK && k < KB_CONF_RETENTION_KINDS; k++) {
        char what[48];
        snprintf(what, sizeof what, "retention of %s", s_retention_keys[k]);
        if (v[k])
            rc = s_duration(ctx, v[k], what, S_US_PER_S, KB_CONF_MAX_RETENTION_US, "1s..100y",
                            &ctx->conf->retention_us[k]);
    }
    return rc;
}

static int s_broker(s_ctx_t *ctx, const yaml_node_t *node)
{
    kb_conf_t *c = ctx->conf;
    yaml_node_t *v[B_N];
    int rc = s_map(ctx, node, "in broker", s_broker_keys, B_N, v, NULL);
    if (rc != KB_OK)
        return rc;
    static const int required[] = {B_LISTEN, B_DATA_DIR, B_KEY_DIR};
    for (size_t i = 0; i < S_COUNT(required); i++)
        if (!v[required[i]])
            return s_err(ctx, node, "missing key '%s' in broker", s_broker_keys[required[i]]);

    const char *text = "ketenbus";
    ctx->broker_node = node;
    ctx->broker_id = v[B_ID];
    if (v[B_ID]) {
        if ((rc = s_text(ctx, v[B_ID], "broker id", &text)) != KB_OK)
            return rc;
        if (!s_id_is_valid(text))
            return s_err(ctx, v[B_ID], "bad broker id '%.*s' (1..%u characters of a-z, 0-9 and -)", KB_CONF_SHOW,
                         text, KB_CONF_MAX_ID);
    }
    if ((rc = s_strdup(text, &c->broker_id)) != KB_OK)
        return rc;

    if ((rc = s_text(ctx, v[B_LISTEN], "listen", &text)) != KB_OK)
        return rc;
    if (!strstr(text, "://") || strlen(text) > KB_CONF_MAX_ENDPOINT)
        return s_err(ctx, v[B_LISTEN], "listen: expected a ZeroMQ endpoint such as tcp://127.0.0.1:5555, got '%.*s'",
                     KB_CONF_SHOW, text);
    if ((rc = s_strdup(text, &c->listen)) != KB_OK || (rc = s_path(ctx, v[B_DATA_DIR], "data_dir", &c->data_dir)) != KB_OK ||
        (rc = s_path(ctx, v[B_KEY_DIR], "key_dir", &c->key_dir)) != KB_OK)
        return rc;

    c->max_message_bytes = KB_CONF_DEFAULT_MAX_MESSAGE;
    if (v[B_MAX_MESSAGE]) {
        long long n = 0;
        if ((rc = s_number(ctx, v[B_MAX_MESSAGE], "max_message_bytes", KB_CONF_MIN_MESSAGE, KB_CONF_MAX_MESSAGE, &n)) !=
            KB_OK)
            return rc;
        c->max_message_bytes = (size_t)n;
    }
    c->message_ttl_us = KB_CONF_DEFAULT_TTL_US;
    if (v[B_TTL] && (rc = s_duration(ctx, v[B_TTL], "message_ttl", S_US_PER_S, 3650LL * 86400 * S_US_PER_S, "1s..3650d",
                                     &c->message_ttl_us)) != KB_OK)
        return rc;
    c->session_timeout_us = KB_CONF_DEFAULT_SESSION_US;
    if (v[B_SESSION] && (rc = s_duration(ctx, v[B_SESSION], "session_timeout", S_US_PER_S, 3600 * S_US_PER_S, "1s..1h",
                                         &c->session_timeout_us)) != KB_OK)
        return rc;
    c->checkpoint_interval_us = KB_CONF_DEFAULT_CP_INTERVAL_US;
    if (v[B_CP_INTERVAL] && (rc = s_duration(ctx, v[B_CP_INTERVAL], "checkpoint_interval", S_US_PER_S,
                                             86400 * S_US_PER_S, "1s..1d", &c->checkpoint_interval_us)) != KB_OK)
        return rc;
    c->checkpoint_records = KB_CONF_DEFAULT_CP_RECORDS;
    if (v[B_CP_RECORDS]) {
        long long n = 0;
        if ((rc = s_number(ctx, v[B_CP_RECORDS], "checkpoint_records", 1, 100000000, &n)) != KB_OK)
            return rc;
        c->checkpoint_records = (uint64_t)n;
    }
    c->verify_signatures = 1;
    if (v[B_VERIFY]) {
        if ((rc = s_text(ctx, v[B_VERIFY], "verify_signatures", &text)) != KB_OK)
            return rc;
        c->verify_line = (int)v[B_VERIFY]->start_mark.line + 1;
        c->verify_column = (int)v[B_VERIFY]->start_mark.column + 1;
        if (strcmp(text, "true") == 0)
            c->verify_signatures = 1;
        else if (strcmp(text, "false") == 0)
            c->verify_signatures = 0;
        else
            return s_err(ctx, v[B_VERIFY], "verify_signatures: expected true or false, got '%.*s'", KB_CONF_SHOW,
                         text);
    }
    if (v[B_RETENTION] && (rc = s_retention(ctx, v[B_RETENTION])) != KB_OK)
        return rc;
    return KB_OK;
}

/* ---------------------------------------------------------- agencies */

enum { A_ID, A_NAME, A_CURVE, A_SIGNING, A_N };
static const char *const s_agency_keys[A_N] = {"id", "name", "curve_cert", "signing_key"};

static int s_agency_curve(s_ctx_t *ctx, kb_agency_t *a, size_t index, yaml_node_t *node)
{
    s_list_t list;
    int rc = s_list(ctx, node, "curve_cert", &list);
    if (rc != KB_OK)
        return rc;
    if (list.n == 0)
        return s_err(ctx, node, "agency '%s': curve_cert: expected at least one certificate", a->id);
    if (list.n > KB_CONF_MAX_KEYS)
        return s_err(ctx, node, "agency '%s': curve_cert: more than %u certificates", a->id, KB_CONF_MAX_KEYS);
    if (ctx->flags & KB_CONF_SKIP_KEYS) {
        /* Checked as text only: the files may be elsewhere (a privacy
         * officer checking rules has no keys). */
        for (size_t i = 0; i < list.n; i++) {
            yaml_node_t *item;
            const char *text;
            if ((rc = s_list_item(ctx, &list, i, &item)) != KB_OK ||
                (rc = s_text(ctx, item, "curve_cert", &text)) != KB_OK)
                return rc;
        }
        return KB_OK;
    }
    a->curve = calloc(list.n, sizeof *a->curve);
    a->curve_at = calloc(list.n, sizeof *a->curve_at);
    if (!a->curve || !a->curve_at)
        return s_nomem();
    for (size_t i = 0; i < list.n; i++) {
        yaml_node_t *item;
        const char *text;
        char *path = NULL;
        if ((rc = s_list_item(ctx, &list, i, &item)) != KB_OK || (rc = s_text(ctx, item, "curve_cert", &text)) != KB_OK ||
            (rc = s_path(ctx, item, "curve_cert", &path)) != KB_OK)
            return rc;
        rc = kb_keys_load_curve_public(path, a->curve[i]);
        free(path);
        if (rc != KB_OK)
            return s_err(ctx, item, "agency '%s': cannot load CURVE certificate %s: %s", a->id, text, kb_last_error());
        size_t owner;
        if (s_index_get(&ctx->curve_keys, a->curve[i], &owner) && owner == index)
            return s_err(ctx, item, "agency '%s': the CURVE key in %s is listed twice for this agency", a->id, text);
        if (s_index_get(&ctx->curve_keys, a->curve[i], &owner))
            return s_err(ctx, item, "agency '%s': the CURVE key in %s is already used by agency '%s'", a->id, text,
                         ctx->conf->agencies[owner].id);
        if ((rc = s_index_put(&ctx->curve_keys, a->curve[i], index)) != KB_OK)
            return rc;
        a->curve_at[i] = s_pos(item);
        a->n_curve++;
    }
    return KB_OK;
}

static int s_agency(s_ctx_t *ctx, size_t index, const yaml_node_t *node)
{
    kb_agency_t *a = &ctx->conf->agencies[index];
    yaml_node_t *v[A_N];
    int rc = s_map(ctx, node, "in agency", s_agency_keys, A_N, v, NULL);
    if (rc != KB_OK)
        return rc;
    a->line = (int)node->start_mark.line + 1;
    if (!v[A_ID])
        return s_err(ctx, node, "missing key 'id' in agency");
    const char *text;
    if ((rc = s_text(ctx, v[A_ID], "agency id", &text)) != KB_OK)
        return rc;
    if (!s_id_is_valid(text))
        return s_err(ctx, v[A_ID], "bad agency id '%.*s' (1..%u characters of a-z, 0-9 and -)", KB_CONF_SHOW, text,
                     KB_CONF_MAX_ID);
    /* the broker's key files are broker.*: an agency of that name would
     * share them, and adapters would take the broker's word for its */
    if (strcmp(text, "broker") == 0)
        return s_err(ctx, v[A_ID], "agency id 'broker' is taken by the broker's own key files; choose another");
    size_t first;
    if (s_index_get(&ctx->agency_ids, text, &first))
        return s_err(ctx, v[A_ID], "duplicate agency id '%s' (first on line %d)", text,
                     ctx->conf->agencies[first].line);
    if ((rc = s_strdup(text, &a->id)) != KB_OK || (rc = s_index_put(&ctx->agency_ids, a->id, index)) != KB_OK)
        return rc;
    if (!v[A_CURVE])
        return s_err(ctx, node, "missing key 'curve_cert' in agency '%s'", a->id);
    if (!v[A_SIGNING])
        return s_err(ctx, node, "missing key 'signing_key' in agency '%s'", a->id);

    text = a->id;
    if (v[A_NAME]) {
        if ((rc = s_text(ctx, v[A_NAME], "name", &text)) != KB_OK)
            return rc;
        if (strlen(text) > KB_CONF_MAX_NAME)
            return s_err(ctx, v[A_NAME], "agency '%s': name longer than %u bytes", a->id, KB_CONF_MAX_NAME);
    }
    if ((rc = s_strdup(text, &a->name)) != KB_OK)
        return rc;

    if ((rc = s_agency_curve(ctx, a, index, v[A_CURVE])) != KB_OK)
        return rc;

    if ((rc = s_text(ctx, v[A_SIGNING], "signing_key", &text)) != KB_OK ||
        (rc = s_path(ctx, v[A_SIGNING], "signing_key", &a->signing_key_path)) != KB_OK)
        return rc;
    a->signing_key_at = s_pos(v[A_SIGNING]);
    if (ctx->flags & KB_CONF_SKIP_KEYS)
        return KB_OK;
    a->signing_key = kb_keys_load_sign_public(a->signing_key_path);
    if (!a->signing_key)
        return s_err(ctx, v[A_SIGNING], "agency '%s': cannot load signing key %s: %s", a->id, text, kb_last_error());
    /* Compared as raw key bytes, whatever file or encoding holds them. Two
     * agencies with one key could each sign as the other, and whoever
     * checks a sender's signature could not tell them apart. */
    uint8_t raw[KB_CONF_SIGN_KEY_LEN];
    size_t raw_len = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(a->signing_key, raw, &raw_len) != 1 || raw_len != sizeof raw)
        return kb_error_ssl(KB_ECRYPTO, "%s:%zu:%zu: agency '%s': signing key %s", ctx->path,
                            v[A_SIGNING]->start_mark.line + 1, v[A_SIGNING]->start_mark.column + 1, a->id, text);
    kb_hex(raw, sizeof raw, ctx->sign_hex[index]);
    size_t owner;
    if (s_index_get(&ctx->sign_keys, ctx->sign_hex[index], &owner))
        return s_err(ctx, v[A_SIGNING], "agency '%s': the signing key in %s is already used by agency '%s' (line %d); "
                     "each agency signs with a key of its own",
                     a->id, text, ctx->conf->agencies[owner].id, ctx->conf->agencies[owner].line);
    return s_index_put(&ctx->sign_keys, ctx->sign_hex[index], index);
}

static int s_agencies(s_ctx_t *ctx, const yaml_node_t *node)
{
    kb_conf_t *c = ctx->conf;
    if (node->type != YAML_SEQUENCE_NODE)
        return s_err(ctx, node, "agencies: expected a list of agencies, not a %s", s_type_name(node));
    size_t n = s_seq_len(node);
    if (n == 0)
        return s_err(ctx, node, "agencies: expected at least one agency");
    if (n > KB_CONF_MAX_AGENCIES)
        return s_err(ctx, node, "agencies: more than %u agencies", KB_CONF_MAX_AGENCIES);
    c->agencies = calloc(n, sizeof *c->agencies);
    ctx->stamp = calloc(n, sizeof *ctx->stamp);
    ctx->added = calloc(n, sizeof *ctx->added);
    ctx->picked = calloc(n, sizeof *ctx->picked);
    ctx->sign_hex = calloc(n, sizeof *ctx->sign_hex);
    if (!c->agencies || !ctx->stamp || !ctx->added || !ctx->picked || !ctx->sign_hex)
        return s_nomem();
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item;
        int rc = s_take(ctx, node->data.sequence.items.start[i], &item);
        if (rc != KB_OK)
            return rc;
        /* Counted before it is complete, so that destroy frees a half one. */
        c->n_agencies = i + 1;
        if ((rc = s_agency(ctx, i, item)) != KB_OK)
            return rc;
    }
    return KB_OK;
}

/* ------------------------------------------------------------- names */

/* ASCII lowercase, whatever the locale (a Turkish one maps I elsewhere). */
static char s_lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* The values of enum d a rule may name: the prefixed ones in 1..31. */
static int s_enum_usable(const ProtobufCEnumValue *v, const char *prefix, size_t prefix_len)
{
    return v->value > 0 && v->value <= KB_CONF_MAX_ENUM_BIT && strncmp(v->name, prefix, prefix_len) == 0;
}

/* Lowercase names without prefix ("referral_update" for KIND_REFERRAL_UPDATE)
 * of the values of d whose bit is in bits, comma-separated. */
static void s_enum_names(const ProtobufCEnumDescriptor *d, const char *prefix, uint32_t bits, char *buf, size_t len)
{
    size_t plen = strlen(prefix), used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < d->n_values; i++) {
        const ProtobufCEnumValue *v = &d->values[i];
        if (!s_enum_usable(v, prefix, plen) || !(bits & (1u << v->value)))
            continue;
        for (const char *p = (used ? ", " : ""); *p && used + 1 < len; p++)
            buf[used++] = *p;
        for (const char *p = v->name + plen; *p && used + 1 < len; p++)
            buf[used++] = s_lower(*p);
        buf[used] = '\0';
    }
}

/* Bits of every value a rule may name. */
static uint32_t s_enum_all(const ProtobufCEnumDescriptor *d, const char *prefix)
{
    size_t plen = strlen(prefix);
    uint32_t bits = 0;
    for (unsigned i = 0; i < d->n_values; i++)
        if (s_enum_usable(&d->values[i], prefix, plen))
            bits |= 1u << d->values[i].value;
    return bits;
}

/* The value of a lowercase name without prefix, or -1. */
static int s_enum_value(const ProtobufCEnumDescriptor *d, const char *prefix, const char *text)
{
    size_t plen = strlen(prefix);
    for (unsigned i = 0; i < d->n_values; i++) {
        const ProtobufCEnumValue *v = &d->values[i];
        if (!s_enum_usable(v, prefix, plen))
            continue;
        const char *name = v->name + plen;
        size_t j = 0;
        while (name[j] && text[j] == s_lower(name[j]))
            j++;
        if (name[j] == '\0' && text[j] == '\0')
            return v->value;
    }
    return -1;
}

/* ------------------------------------------------------------ groups */

/* A group's members: agencies only, each once. */
static int s_group_members(s_ctx_t *ctx, kb_group_t *g, yaml_node_t *node)
{
    s_list_t list;
    int rc = s_list(ctx, node, "group members", &list);
    if (rc != KB_OK)
        return rc;
    if (list.n == 0)
        return s_err(ctx, node, "group '%s': expected at least one agency", g->id);
    g->members = calloc(list.n, sizeof *g->members);
    if (!g->members)
        return s_nomem();
    ctx->list_no++;
    for (size_t i = 0; i < list.n; i++) {
        yaml_node_t *item;
        const char *text;
        size_t index;
        if ((rc = s_list_item(ctx, &list, i, &item)) != KB_OK || (rc = s_text(ctx, item, "group member", &text)) != KB_OK)
            return rc;
        if (!s_index_get(&ctx->agency_ids, text, &index)) {
            if (s_index_get(&ctx->group_ids, text, &index))
                return s_err(ctx, item, "group '%s' contains group '%s'; a group may only contain agencies", g->id,
                             text);
            return s_err(ctx, item, "unknown agency '%.*s' in group '%s'", KB_CONF_SHOW, text, g->id);
        }
        if (ctx->stamp[index] == ctx->list_no)
            return s_err(ctx, item, "agency '%s' appears twice in group '%s'", text, g->id);
        ctx->stamp[index] = ctx->list_no;
        if ((rc = s_strdup(text, &g->members[i])) != KB_OK)
            return rc;
        g->n_members++;
    }
    return KB_OK;
}

static int s_groups(s_ctx_t *ctx, const yaml_node_t *node)
{
    kb_conf_t *c = ctx->conf;
    if (s_is_null(node))
        return KB_OK;
    if (node->type != YAML_MAPPING_NODE)
        return s_err(ctx, node, "groups: expected 'name: [agencies]' lines, not a %s", s_type_name(node));
    yaml_node_pair_t *pairs = node->data.mapping.pairs.start;
    size_t n = (size_t)(node->data.mapping.pairs.top - pairs);
    if (n > KB_CONF_MAX_GROUPS)
        return s_err(ctx, node, "groups: more than %u groups", KB_CONF_MAX_GROUPS);
    if (n == 0)
        return KB_OK;
    c->groups = calloc(n, sizeof *c->groups);
    ctx->group_stamp = calloc(n, sizeof *ctx->group_stamp);
    if (!c->groups || !ctx->group_stamp)
        return s_nomem();
    /* Every name first, so that a member naming a group is told apart
     * from a misspelt agency. */
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *key;
        const char *text;
        size_t first;
        int rc;
        if ((rc = s_take(ctx, pairs[i].key, &key)) != KB_OK || (rc = s_text(ctx, key, "group name", &text)) != KB_OK)
            return rc;
        if (!s_id_is_valid(text))
            return s_err(ctx, key, "bad group name '%.*s' (1..%u characters of a-z, 0-9 and -)", KB_CONF_SHOW, text,
                         KB_CONF_MAX_ID);
        if (s_index_get(&ctx->agency_ids, text, &first))
            return s_err(ctx, key, "group name '%s' is also an agency id (line %d)", text, c->agencies[first].line);
        if (s_index_get(&ctx->group_ids, text, &first))
            return s_err(ctx, key, "duplicate group '%s' (first on line %d)", text, c->groups[first].line);
        kb_group_t *g = &c->groups[i];
        c->n_groups = i + 1;
        g->line = (int)key->start_mark.line + 1;
        g->column = (int)key->start_mark.column + 1;
        if ((rc = s_strdup(text, &g->id)) != KB_OK || (rc = s_index_put(&ctx->group_ids, g->id, i)) != KB_OK)
            return rc;
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *value;
        int rc;
        if ((rc = s_take(ctx, pairs[i].value, &value)) != KB_OK ||
            (rc = s_group_members(ctx, &c->groups[i], value)) != KB_OK)
            return rc;
    }
    return KB_OK;
}

/* ------------------------------------------------------------- rules */

enum {
    R_ID, R_DESCRIPTION, R_EFFECT, R_FROM, R_TO, R_KINDS, R_PURPOSES, R_MAX_HANDLING, R_LEGAL_BASIS, R_REDACT,
    R_VALID_UNTIL, R_N
};
static const char *const s_rule_keys[R_N] = {
    "id", "description", "effect", "from", "to", "kinds", "purposes", "max_handling", "legal_basis", "redact",
    "valid_until",
};

/* Add an agency to the list being read, unless it is in it already. */
static void s_pick(s_ctx_t *ctx, size_t index, size_t *n)
{
    if (ctx->added[index] == ctx->list_no)
        return;
    ctx->added[index] = ctx->list_no;
    ctx->picked[(*n)++] = index;
}

/* The agencies of a rule's from or to: agency ids and group names, groups
 * expanded, each agency once in order of first mention. Naming the same
 * agency or group twice is an error; reaching an agency twice through
 * groups is not. */
static int s_rule_agencies(s_ctx_t *ctx, const kb_rule_t *r, yaml_node_t *node, const char *what, size_t *n_out,
                           char ***out)
{
    kb_conf_t *c = ctx->conf;
    s_list_t list;
    int rc = s_list(ctx, node, what, &list);
    if (rc != KB_OK)
        return rc;
    if (list.n == 0)
        return s_err(ctx, node, "rule '%s' %s: expected at least one agency or group", r->id, what);
    /* A fresh stamp per list finds a repeated name in one pass. */
    ctx->list_no++;
    size_t n = 0;
    for (size_t i = 0; i < list.n; i++) {
        yaml_node_t *item;
        const char *text;
        size_t index;
        if ((rc = s_list_item(ctx, &list, i, &item)) != KB_OK || (rc = s_text(ctx, item, what, &text)) != KB_OK)
            return rc;
        if (s_index_get(&ctx->agency_ids, text, &index)) {
            if (ctx->stamp[index] == ctx->list_no)
                return s_err(ctx, item, "agency '%s' appears twice in rule '%s' %s", text, r->id, what);
            ctx->stamp[index] = ctx->list_no;
            s_pick(ctx, index, &n);
        } else if (s_index_get(&ctx->group_ids, text, &index)) {
            if (ctx->group_stamp[index] == ctx->list_no)
                return s_err(ctx, item, "group '%s' appears twice in rule '%s' %s", text, r->id, what);
            ctx->group_stamp[index] = ctx->list_no;
            const kb_group_t *g = &c->groups[index];
            for (size_t m = 0; m < g->n_members; m++) {
                size_t member = 0;
                s_index_get(&ctx->agency_ids, g->members[m], &member); /* checked when the group was read */
                s_pick(ctx, member, &n);
            }
        } else {
            return s_err(ctx, item, "unknown agency or group '%.*s' in rule '%s' %s", KB_CONF_SHOW, text, r->id,
                         what);
        }
    }
    *out = calloc(n, sizeof **out);
    if (!*out)
        return s_nomem();
    for (size_t i = 0; i < n; i++) {
        if ((rc = s_strdup(c->agencies[ctx->picked[i]].id, &(*out)[i])) != KB_OK)
            return rc;
        (*n_out)++;
    }
    return KB_OK;
}

/* A rule's kinds or purposes: names of enum d (without prefix) as bits. */
/* Values of enum d named in the list at node, as bits; a value whose bit
 * is in barred (notice kinds in `kinds`) is refused with barred_why. */
static int s_rule_bits(s_ctx_t *ctx, const kb_rule_t *r, yaml_node_t *node, const char *what, const char *noun,
                       const ProtobufCEnumDescriptor *d, const char *prefix, uint32_t barred, const char *barred_why,
                       uint32_t *bits)
{
    s_list_t list;
    int rc = s_list(ctx, node, what, &list);
    if (rc != KB_OK)
        return rc;
    if (list.n == 0)
        return s_err(ctx, node, "rule '%s' %s: expected at least one %s", r->id, what, noun);
    for (size_t i = 0; i < list.n; i++) {
        yaml_node_t *item;
        const char *text;
        if ((rc = s_list_item(ctx, &list, i, &item)) != KB_OK || (rc = s_text(ctx, item, what, &text)) != KB_OK)
            return rc;
        int value = s_enum_value(d, prefix, text);
        if (value < 0) {
            char names[KB_CONF_LIST_TEXT];
            s_enum_names(d, prefix, ~barred, names, sizeof names);
            return s_err(ctx, item, "unknown %s '%.*s' in rule '%s' (expected %s)", noun, KB_CONF_SHOW, text, r->id,
                         names);
        }
        uint32_t bit = 1u << value;
        if (barred & bit)
            return s_err(ctx, item, "%s '%s' in rule '%s': %s", noun, text, r->id, barred_why);
        if (*bits & bit)
            return s_err(ctx, item, "%s '%s' appears twice in rule '%s'", noun, text, r->id);
        *bits |= bit;
    }
    return KB_OK;
}

static int s_rule_handling(s_ctx_t *ctx, kb_rule_t *r, yaml_node_t *node)
{
    const char *text;
    int rc = s_text(ctx, node, "max_handling", &text);
    if (rc != KB_OK)
        return rc;
    const ProtobufCEnumDescriptor *d = &ketenbus__handling__descriptor;
    int value = s_enum_value(d, "HANDLING_", text);
    if (value < 0) {
        char names[KB_CONF_LIST_TEXT];
        s_enum_names(d, "HANDLING_", UINT32_MAX, names, sizeof names);
        return s_err(ctx, node, "unknown handling code '%.*s' in rule '%s' max_handling (expected %s)", KB_CONF_SHOW,
                     text, r->id, names);
    }
    r->max_handling = value;
    return KB_OK;
}

/* True if path is under the payload member of one of the kinds in bits. */
static int s_path_in_kinds(const char *path, uint32_t kinds)
{
    for (int kind = 1; kind <= KB_CONF_MAX_ENUM_BIT; kind++) {
        if ((kinds & (1u << kind)) && kb_policy_redact_applies(path, kind))
            return 1;
    }
    return 0;
}

static int s_rule_redact(s_ctx_t *ctx, kb_rule_t *r, yaml_node_t *node)
{
    s_list_t list;
    int rc = s_list(ctx, node, "redact", &list);
    if (rc != KB_OK)
        return rc;
    if (list.n > KB_MAX_SEALS)
        return s_err(ctx, node, "rule '%s' redact: more than %u paths", r->id, KB_MAX_SEALS);
    if (list.n == 0)
        return KB_OK;
    r->redact = calloc(list.n, sizeof *r->redact);
    if (!r->redact)
        return s_nomem();
    for (size_t i = 0; i < list.n; i++) {
        yaml_node_t *item;
        const char *text;
        if ((rc = s_list_item(ctx, &list, i, &item)) != KB_OK || (rc = s_text(ctx, item, "redact", &text)) != KB_OK)
            return rc;
        if (!kb_seal_path_exists(text))
            return s_err(ctx, item, "unknown field path '%.*s' in rule '%s' redact", KB_CONF_SHOW, text, r->id);
        if (!s_path_in_kinds(text, r->kinds)) {
            char names[KB_CONF_LIST_TEXT];
            s_enum_names(&ketenbus__kind__descriptor, "KIND_", r->kinds, names, sizeof names);
            return s_err(ctx, item, "path '%s' does not belong to kinds [%s] of rule '%s'", text, names, r->id);
        }
        for (size_t j = 0; j < r->n_redact; j++) {
            const char *other = r->redact[j];
            if (strcmp(other, text) == 0)
                return s_err(ctx, item, "path '%s' appears twice in rule '%s' redact", text, r->id);
            /* One inside the other: what is withheld (and listed) would
             * depend on their order. */
            const char *inner = strlen(other) < strlen(text) ? text : other;
            const char *outer = inner == text ? other : text;
            if (strncmp(inner, outer, strlen(outer)) == 0 && inner[strlen(outer)] == '.')
                return s_err(ctx, item, "path '%s' in rule '%s' redact lies within '%s'; give only '%s'", inner,
                             r->id, outer, outer);
        }
        if ((rc = s_strdup(text, &r->redact[r->n_redact])) != KB_OK)
            return rc;
        r->n_redact++;
    }
    return KB_OK;
}

/* True if text starts with a real calendar date "YYYY-MM-DD". */
static int s_date_ok(const char *text)
{
    for (size_t i = 0; i < KB_CONF_DATE_LEN; i++) {
        int dash = i == 4 || i == 7;
        if (dash ? text[i] != '-' : !isdigit((unsigned char)text[i]))
            return 0;
    }
    int y = (text[0] - '0') * 1000 + (text[1] - '0') * 100 + (text[2] - '0') * 10 + (text[3] - '0');
    int m = (text[5] - '0') * 10 + (text[6] - '0');
    int d = (text[8] - '0') * 10 + (text[9] - '0');
    return y >= KB_CONF_MIN_YEAR && d >= 1 && d <= kb_days_in_month(y, m);
}

/* valid_until: a date (the rule holds to the end of that day, UTC) or an
 * RFC 3339 time (the rule holds until that instant). */
static int s_rule_until(s_ctx_t *ctx, kb_rule_t *r, yaml_node_t *node)
{
    const char *text;
    int rc = s_text(ctx, node, "valid_until", &text);
    if (rc != KB_OK)
        return rc;
    int64_t us = 0;
    int ok = strlen(text) >= KB_CONF_DATE_LEN && s_date_ok(text);
    if (ok && strlen(text) == KB_CONF_DATE_LEN) {
        char midnight[32];
        ok = kb_fmt(midnight, sizeof midnight, "%sT00:00:00Z", text) == KB_OK && kb_time_parse(midnight, &us) == KB_OK;
        us += S_US_PER_DAY;
    } else if (ok) {
        ok = kb_time_parse(text, &us) == KB_OK;
    }
    if (!ok || us <= 0)
        return s_err(ctx, node,
                     "rule '%s' valid_until: bad date '%.*s' (expected YYYY-MM-DD or an RFC 3339 time such as "
                     "2027-12-31T23:59:59Z)",
                     r->id, KB_CONF_SHOW, text);
    r->valid_until_us = us;
    r->until_line = (int)node->start_mark.line + 1;
    r->until_column = (int)node->start_mark.column + 1;
    return KB_OK;
}

/* Free text that may span lines (a folded or literal YAML block). */
static int s_rule_description(s_ctx_t *ctx, kb_rule_t *r, yaml_node_t *node)
{
    if (node->type == YAML_SCALAR_NODE && node->data.scalar.length > KB_CONF_MAX_TEXT)
        return s_err(ctx, node, "rule '%s' description: longer than %u bytes", r->id, KB_CONF_MAX_TEXT);
    const char *text;
    int rc = s_visible(ctx, node, "description", 1, &text);
    if (rc != KB_OK)
        return rc;
    return s_strdup(text, &r->description);
}

static int s_rule_effect(s_ctx_t *ctx, kb_rule_t *r, yaml_node_t *node)
{
    const char *text;
    int rc = s_text(ctx, node, "effect", &text);
    if (rc != KB_OK)
        return rc;
    if (strcmp(text, "allow") == 0)
        r->deny = 0;
    else if (strcmp(text, "deny") == 0)
        r->deny = 1;
    else
        return s_err(ctx, node, "rule '%s' effect: expected allow or deny, got '%.*s'", r->id, KB_CONF_SHOW, text);
    return KB_OK;
}

static int s_rule(s_ctx_t *ctx, size_t index, const yaml_node_t *node)
{
    kb_rule_t *r = &ctx->conf->rules[index];
    yaml_node_t *v[R_N], *k[R_N];
    int rc = s_map(ctx, node, "in rule", s_rule_keys, R_N, v, k);
    if (rc != KB_OK)
        return rc;
    r->line = (int)node->start_mark.line + 1;
    r->column = (int)node->start_mark.column + 1;
    if (!v[R_ID])
        return s_err(ctx, node, "missing key 'id' in rule");
    const char *text;
    if ((rc = s_text(ctx, v[R_ID], "rule id", &text)) != KB_OK)
        return rc;
    if (!s_rule_id_is_valid(text))
        return s_err(ctx, v[R_ID], "bad rule id '%.*s' (1..%u characters of A-Z, a-z, 0-9, '.', '_' and '-')",
                     KB_CONF_SHOW, text, KB_CONF_MAX_RULE_ID);
    size_t first;
    if (s_index_get(&ctx->rule_ids, text, &first))
        return s_err(ctx, v[R_ID], "duplicate rule id '%s' (first on line %d)", text, ctx->conf->rules[first].line);
    if ((rc = s_strdup(text, &r->id)) != KB_OK || (rc = s_index_put(&ctx->rule_ids, r->id, index)) != KB_OK)
        return rc;
    if (v[R_EFFECT] && (rc = s_rule_effect(ctx, r, v[R_EFFECT])) != KB_OK)
        return rc;

    /* A deny rule needs only from and to: it refuses every kind and
     * purpose unless it narrows them, and every handling code. */
    static const int needed_by_allow[] = {R_KINDS, R_PURPOSES, R_MAX_HANDLING, R_LEGAL_BASIS};
    if (!v[R_FROM] || !v[R_TO])
        return s_err(ctx, node, "missing key '%s' in rule '%s'", s_rule_keys[v[R_FROM] ? R_TO : R_FROM], r->id);
    for (size_t i = 0; !r->deny && i < S_COUNT(needed_by_allow); i++)
        if (!v[needed_by_allow[i]])
            return s_err(ctx, node, "missing key '%s' in rule '%s'", s_rule_keys[needed_by_allow[i]], r->id);
    if (r->deny && k[R_MAX_HANDLING])
        return s_err(ctx, k[R_MAX_HANDLING], "max_handling is not allowed on deny rule '%s' (it refuses every "
                     "handling code)", r->id);
    if (r->deny && k[R_REDACT])
        return s_err(ctx, k[R_REDACT], "redact is not allowed on deny rule '%s' (it lets nothing through)", r->id);

    if ((rc = s_rule_agencies(ctx, r, v[R_FROM], "from", &r->n_from, &r->from)) != KB_OK ||
        (rc = s_rule_agencies(ctx, r, v[R_TO], "to", &r->n_to, &r->to)) != KB_OK)
        return rc;
    if (v[R_KINDS]) {
        uint32_t notices = 0;
        for (int kind = 1; kind <= KB_CONF_MAX_ENUM_BIT; kind++)
            if (kb_policy_kind_is_notice(kind))
                notices |= 1u << kind;
        /* notices are the broker's own messages: a rule naming one would
         * let an agency forge a notice in the broker's name */
        if ((rc = s_rule_bits(ctx, r, v[R_KINDS], "kinds", "kind", &ketenbus__kind__descriptor, "KIND_", notices,
                              "notices are written and signed by the broker only; no rule routes them",
                              &r->kinds)) != KB_OK)
            return rc;
    } else {
        r->kinds = s_enum_all(&ketenbus__kind__descriptor, "KIND_");
    }
    if (v[R_PURPOSES]) {
        if ((rc = s_rule_bits(ctx, r, v[R_PURPOSES], "purposes", "purpose", &ketenbus__purpose__descriptor,
                              "PURPOSE_", 0, NULL, &r->purposes)) != KB_OK)
            return rc;
    } else {
        r->purposes = s_enum_all(&ketenbus__purpose__descriptor, "PURPOSE_");
    }
    if (v[R_MAX_HANDLING] && (rc = s_rule_handling(ctx, r, v[R_MAX_HANDLING])) != KB_OK)
        return rc;
    if (v[R_LEGAL_BASIS]) {
        if ((rc = s_text(ctx, v[R_LEGAL_BASIS], "legal_basis", &text)) != KB_OK)
            return rc;
        if (strlen(text) > KB_CONF_MAX_BASIS)
            return s_err(ctx, v[R_LEGAL_BASIS], "rule '%s' legal_basis: longer than %u bytes", r->id,
                         KB_CONF_MAX_BASIS);
        if ((rc = s_strdup(text, &r->legal_basis)) != KB_OK)
            return rc;
    }
    if (v[R_REDACT] && (rc = s_rule_redact(ctx, r, v[R_REDACT])) != KB_OK)
        return rc;
    if (v[R_VALID_UNTIL] && (rc = s_rule_until(ctx, r, v[R_VALID_UNTIL])) != KB_OK)
        return rc;
    if (v[R_DESCRIPTION] && (rc = s_rule_description(ctx, r, v[R_DESCRIPTION])) != KB_OK)
        return rc;

    /* The policy index holds one entry per sender/recipient pair of each
     * rule; groups multiply them, so bound their sum. */
    ctx->n_pairs += (uint64_t)r->n_from * r->n_to;
    if (ctx->n_pairs > KB_CONF_MAX_PAIRS)
        return s_err(ctx, node, "rule '%s': the rules so far name %llu sender/recipient pairs, more than %u "
                     "(a group counts every member)", r->id, (unsigned long long)ctx->n_pairs, KB_CONF_MAX_PAIRS);
    return KB_OK;
}

static int s_rules(s_ctx_t *ctx, const yaml_node_t *node)
{
    kb_conf_t *c = ctx->conf;
    if (s_is_null(node))
        return KB_OK; /* "rules:" with nothing: every message is refused */
    if (node->type != YAML_SEQUENCE_NODE)
        return s_err(ctx, node, "rules: expected a list of rules, not a %s", s_type_name(node));
    size_t n = s_seq_len(node);
    if (n > KB_CONF_MAX_RULES)
        return s_err(ctx, node, "rules: more than %u rules", KB_CONF_MAX_RULES);
    if (n == 0)
        return KB_OK;
    c->rules = calloc(n, sizeof *c->rules);
    if (!c->rules)
        return s_nomem();
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item;
        int rc = s_take(ctx, node->data.sequence.items.start[i], &item);
        if (rc != KB_OK)
            return rc;
        c->n_rules = i + 1;
        if ((rc = s_rule(ctx, i, item)) != KB_OK)
            return rc;
    }
    return KB_OK;
}

/* -------------------------------------------------------------- file */

enum { T_BROKER, T_AGENCIES, T_GROUPS, T_RULES, T_N };
static const char *const s_top_keys[T_N] = {"broker", "agencies", "groups", "rules"};

/* The byte order mark libyaml skips at the start of a UTF-8 file. */
#define S_UTF8_BOM "\xef\xbb\xbf"

/* Position (0-based) of a byte offset in buf as editors and grep count it:
 * a line ends at '\n' only, a column is a UTF-8 character (continuation
 * bytes 0x80-0xBF do not count) and a leading byte order mark is none.
 * libyaml's marks count characters too, and s_check_breaks() refuses what
 * libyaml would count as a line break besides '\n' and "\r\n", so
 * positions of both kinds agree. For reader errors, which carry only the
 * byte offset, and for s_check_breaks(). */
static void s_offset_mark(const char *buf, size_t len, size_t offset, size_t *line, size_t *column)
{
    *line = 0;
    *column = 0;
    size_t bom = sizeof S_UTF8_BOM - 1;
    size_t i = len >= bom && memcmp(buf, S_UTF8_BOM, bom) == 0 ? bom : 0;
    for (; i < offset && i < len; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\n') {
            (*line)++;
            *column = 0;
        } else if (ch < 0x80 || ch > 0xbf) {
            (*column)++;
        }
    }
}

/* libyaml takes NEL (U+0085), LINE SEPARATOR (U+2028), PARAGRAPH SEPARATOR
 * (U+2029) and a carriage return without a line feed after it for line
 * breaks, anywhere in the file, comments included; editors and grep do
 * not. After one, every line number of a message would point elsewhere
 * than where the reader looks: refuse them before parsing, where an editor
 * shows them. A UTF-16 file (libyaml reads one after its byte order mark)
 * is refused as well, since positions here count UTF-8. Bytes that are not
 * valid UTF-8 are left to libyaml's reader; in valid UTF-8 these byte
 * sequences are these characters only. */
static int s_check_breaks(const s_ctx_t *ctx, const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    if (len >= 2 && ((p[0] == 0xff && p[1] == 0xfe) || (p[0] == 0xfe && p[1] == 0xff)))
        return s_err_at(ctx, 0, 0, "the file is UTF-16; save it as UTF-8");
    for (size_t i = 0; i < len; i++) {
        const char *what = NULL;
        if (p[i] == '\r' && (len - i < 2 || p[i + 1] != '\n'))
            what = "a carriage return without a line feed after it";
        else if (p[i] == 0xc2 && len - i >= 2 && p[i + 1] == 0x85)
            what = "U+0085 (next line)";
        else if (p[i] == 0xe2 && len - i >= 3 && p[i + 1] == 0x80 && p[i + 2] == 0xa8)
            what = "U+2028 (line separator)";
        else if (p[i] == 0xe2 && len - i >= 3 && p[i + 1] == 0x80 && p[i + 2] == 0xa9)
            what = "U+2029 (paragraph separator)";
        if (what) {
            size_t line, column;
            s_offset_mark(buf, len, i, &line, &column);
            return s_err_at(ctx, line, column,
                            "%s: YAML counts it as a line break, editors do not, so the line numbers after it "
                            "would not match; remove it (comments included)",
                            what);
        }
    }
    return KB_OK;
}

static int s_yaml_error(const s_ctx_t *ctx, const yaml_parser_t *parser, const char *buf, size_t len)
{
    const char *problem = parser->problem ? parser->problem : "cannot parse";
    if (parser->error == YAML_MEMORY_ERROR)
        return kb_error_set(KB_ENOMEM, "%s: out of memory while parsing", ctx->path);
    if (parser->error == YAML_READER_ERROR) {
        size_t line, column;
        s_offset_mark(buf, len, parser->problem_offset, &line, &column);
        return s_err_at(ctx, line, column, "YAML error: %s", problem);
    }
    if (parser->context)
        return s_err_at(ctx, parser->problem_mark.line, parser->problem_mark.column, "YAML syntax error: %s %s",
                        problem, parser->context);
    return s_err_at(ctx, parser->problem_mark.line, parser->problem_mark.column, "YAML syntax error: %s", problem);
}

/* libyaml's scanner does work proportional to the flow nesting depth for
 * every token, so a few megabytes of "[[[[..." would keep the loader busy
 * for hours. The schema needs four levels: a pass over the events refuses
 * deep nesting before the document is built. */
static int s_check_depth(const s_ctx_t *ctx, const char *buf, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return s_nomem();
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    int rc = KB_OK, depth = 0, done = 0;
    while (!done && rc == KB_OK) {
        yaml_event_t event;
        if (!yaml_parser_parse(&parser, &event)) {
            rc = s_yaml_error(ctx, &parser, buf, len);
            break;
        }
        /* libyaml resolves anchors by linear search, quadratic in their
         * number; the schema has no use for them. */
        const yaml_char_t *anchor = event.type == YAML_SCALAR_EVENT           ? event.data.scalar.anchor
                                    : event.type == YAML_SEQUENCE_START_EVENT ? event.data.sequence_start.anchor
                                    : event.type == YAML_MAPPING_START_EVENT  ? event.data.mapping_start.anchor
                                                                              : NULL;
        if (anchor || event.type == YAML_ALIAS_EVENT)
            rc = s_err_at(ctx, event.start_mark.line, event.start_mark.column,
                          "YAML anchors and aliases are not supported");
        switch (event.type) {
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (rc == KB_OK && ++depth > KB_CONF_MAX_DEPTH)
                rc = s_err_at(ctx, event.start_mark.line, event.start_mark.column,
                              "lists and mappings nested deeper than %d levels", KB_CONF_MAX_DEPTH);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        default:
            break;
        }
        yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* Parse buf into ctx->doc: exactly one document. */
static int s_parse(s_ctx_t *ctx, const char *buf, size_t len)
{
    int rc = s_check_breaks(ctx, buf, len);
    if (rc == KB_OK)
        rc = s_check_depth(ctx, buf, len);
    if (rc != KB_OK)
        return rc;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return s_nomem();
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &ctx->doc)) {
        rc = s_yaml_error(ctx, &parser, buf, len);
        yaml_parser_delete(&parser);
        return rc;
    }
    ctx->have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&ctx->doc);
    if (!root) {
        rc = s_err_at(ctx, 0, 0, "empty configuration (expected broker, agencies and rules)");
    } else {
        /* A second document would be ignored silently: refuse it. */
        yaml_document_t next;
        if (!yaml_parser_load(&parser, &next)) {
            rc = s_yaml_error(ctx, &parser, buf, len);
        } else {
            yaml_node_t *extra = yaml_document_get_root_node(&next);
            if (extra)
                rc = s_err(ctx, extra, "a second YAML document; the configuration is one document");
            yaml_document_delete(&next);
        }
    }
    yaml_parser_delete(&parser);
    return rc;
}

static int s_load(s_ctx_t *ctx, const char *buf, size_t len)
{
    int rc = s_parse(ctx, buf, len);
    if (rc != KB_OK)
        return rc;
    ctx->n_nodes = (size_t)(ctx->doc.nodes.top - ctx->doc.nodes.start);
    ctx->used = calloc(ctx->n_nodes ? ctx->n_nodes : 1, 1);
    if (!ctx->used)
        return s_nomem();
    yaml_node_t *root, *v[T_N];
    if ((rc = s_take(ctx, 1, &root)) != KB_OK || (rc = s_map(ctx, root, "at top level", s_top_keys, T_N, v, NULL)) != KB_OK)
        return rc;
    if (!v[T_BROKER])
        return s_err(ctx, root, "missing key 'broker' at top level");
    if (!v[T_AGENCIES])
        return s_err(ctx, root, "missing key 'agencies' at top level");
    /* Agencies before groups, groups before rules: each names the former. */
    if ((rc = s_broker(ctx, v[T_BROKER])) != KB_OK || (rc = s_agencies(ctx, v[T_AGENCIES])) != KB_OK)
        return rc;
    /* The broker signs its notices with sender = its id: an agency of the
     * same id would have the broker's notices taken for its messages. */
    size_t same;
    if (s_index_get(&ctx->agency_ids, ctx->conf->broker_id, &same))
        return s_err(ctx, ctx->broker_id ? ctx->broker_id : ctx->broker_node,
                     "broker id '%s'%s is also the id of an agency (line %d); the broker's notices would pass for "
                     "that agency's messages: give the broker an id of its own",
                     ctx->conf->broker_id, ctx->broker_id ? "" : " (the default)", ctx->conf->agencies[same].line);
    if (v[T_GROUPS] && (rc = s_groups(ctx, v[T_GROUPS])) != KB_OK)
        return rc;
    if (v[T_RULES] && (rc = s_rules(ctx, v[T_RULES])) != KB_OK)
        return rc;
    return KB_OK;
}

/* Index the rules, then refuse them if the linter finds an error: the
 * first one (in file order) becomes the load error. The warnings stay in
 * c->lint: the broker logs them and `policy check` prints them without
 * linting the file a second time. */
static int s_policy(s_ctx_t *ctx)
{
    kb_conf_t *c = ctx->conf;
    c->policy = kb_policy_new(c);
    if (!c->policy)
        return kb_error_wrap(KB_ENOMEM, "%s", ctx->path);
    kb_policy_issue_t *issues = NULL;
    size_t n = 0;
    int rc = kb_policy_lint(c, kb_now_us(), &issues, &n);
    if (rc != KB_OK)
        return kb_error_wrap(rc, "%s", ctx->path);
    for (size_t i = 0; i < n; i++) {
        if (issues[i].is_error) {
            rc = kb_error_set(KB_ECONFIG, "%s:%d:%d: %s", ctx->path, issues[i].line, issues[i].column,
                              issues[i].message);
            break;
        }
    }
    if (rc != KB_OK) {
        free(issues);
        return rc;
    }
    c->lint = issues;
    c->n_lint = n;
    return KB_OK;
}

static int s_sha256_hex(const char *buf, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(buf, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
        return kb_error_ssl(KB_ECRYPTO, "SHA-256 of the configuration");
    kb_hex(md, md_len, out);
    return KB_OK;
}

static int s_dir_of(const char *path, char **out)
{
    *out = NULL;
    const char *slash = strrchr(path, '/');
    if (!slash)
        return KB_OK; /* relative paths are relative to the working directory, the file's too */
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    *out = strndup(path, len);
    return *out ? KB_OK : s_nomem();
}

kb_conf_t *kb_conf_load(const char *path)
{
    return kb_conf_load_ex(path, 0, NULL);
}

kb_conf_t *kb_conf_load_ex(const char *path, unsigned flags, char sha256[65])
{
    if (sha256)
        sha256[0] = '\0';
    if (!path || !*path) {
        kb_error_set(KB_EINVAL, "configuration path is empty");
        return NULL;
    }
    s_ctx_t ctx = {.path = path, .flags = flags};
    char *buf = NULL;
    size_t len = 0;
    int rc = kb_file_read(path, KB_CONF_MAX_BYTES, &buf, &len);
    if (rc != KB_OK) {
        kb_error_wrap(rc, "loading configuration");
        return NULL;
    }
    char hash[65];
    if ((rc = s_sha256_hex(buf, len, hash)) != KB_OK) {
        free(buf);
        return NULL;
    }
    if (sha256)
        memcpy(sha256, hash, sizeof hash);
    ctx.conf = calloc(1, sizeof *ctx.conf);
    if (!ctx.conf) {
        s_nomem();
        free(buf);
        return NULL;
    }
    memcpy(ctx.conf->sha256, hash, sizeof hash);
    if ((rc = s_strdup(path, &ctx.conf->path)) == KB_OK && (rc = s_dir_of(path, &ctx.dir)) == KB_OK &&
        (rc = s_load(&ctx, buf, len)) == KB_OK)
        rc = s_policy(&ctx);

    if (ctx.have_doc)
        yaml_document_delete(&ctx.doc);
    free(ctx.used);
    free(ctx.stamp);
    free(ctx.added);
    free(ctx.group_stamp);
    free(ctx.picked);
    free(ctx.sign_hex);
    free(ctx.dir);
    s_index_free(&ctx.agency_ids);
    s_index_free(&ctx.curve_keys);
    s_index_free(&ctx.sign_keys);
    s_index_free(&ctx.rule_ids);
    s_index_free(&ctx.group_ids);
    free(buf);
    if (rc != KB_OK)
        kb_conf_destroy(&ctx.conf);
    return ctx.conf;
}

int kb_conf_check_broker_keys(const kb_conf_t *c, EVP_PKEY *sign, const char *curve, const char *key_dir)
{
    uint8_t mine[KB_CONF_SIGN_KEY_LEN], theirs[KB_CONF_SIGN_KEY_LEN];
    size_t len = sizeof mine;
    if (sign && (EVP_PKEY_get_raw_public_key(sign, mine, &len) != 1 || len != sizeof mine))
        return kb_error_ssl(KB_ECRYPTO, "the broker's signing key in %s is no Ed25519 key", key_dir);
    /* a copied key file is the likely cause: name the agency and its line */
    for (size_t i = 0; i < c->n_agencies; i++) {
        const kb_agency_t *a = &c->agencies[i];
        len = sizeof theirs;
        if (sign && a->signing_key && EVP_PKEY_get_raw_public_key(a->signing_key, theirs, &len) == 1 &&
            len == sizeof theirs && CRYPTO_memcmp(mine, theirs, sizeof mine) == 0)
            return kb_error_set(KB_ECONFIG, "%s:%d:%d: agency '%s': its signing_key %s is the broker's own "
                                "(%s/broker.sign.pem); each agency signs with a key of its own",
                                c->path, a->signing_key_at.line, a->signing_key_at.column, a->id,
                                a->signing_key_path, key_dir);
        for (size_t k = 0; curve && k < a->n_curve; k++)
            if (strcmp(a->curve[k], curve) == 0)
                return kb_error_set(KB_ECONFIG, "%s:%d:%d: agency '%s': CURVE key %s is the broker's own "
                                    "(%s/broker.curve_secret); an adapter connects with a key pair of its own",
                                    c->path, a->curve_at[k].line, a->curve_at[k].column, a->id, a->curve[k],
                                    key_dir);
    }
    return KB_OK;
}

void kb_conf_destroy(kb_conf_t **p)
{
    if (!p || !*p)
        return;
    kb_conf_t *c = *p;
    kb_policy_destroy(&c->policy);
    free(c->lint);
    for (size_t i = 0; i < c->n_agencies; i++) {
        kb_agency_t *a = &c->agencies[i];
        free(a->id);
        free(a->name);
        free(a->curve);
        free(a->curve_at);
        free(a->signing_key_path);
        EVP_PKEY_free(a->signing_key);
    }
    free(c->agencies);
    for (size_t i = 0; i < c->n_groups; i++) {
        kb_group_t *g = &c->groups[i];
        free(g->id);
        for (size_t j = 0; j < g->n_members; j++)
            free(g->members[j]);
        free(g->members);
    }
    free(c->groups);
    for (size_t i = 0; i < c->n_rules; i++) {
        kb_rule_t *r = &c->rules[i];
        free(r->id);
        free(r->description);
        free(r->legal_basis);
        for (size_t j = 0; j < r->n_redact; j++)
            free(r->redact[j]);
        free(r->redact);
        for (size_t j = 0; j < r->n_from; j++)
            free(r->from[j]);
        free(r->from);
        for (size_t j = 0; j < r->n_to; j++)
            free(r->to[j]);
        free(r->to);
    }
    free(c->rules);
    free(c->path);
    free(c->broker_id);
    free(c->listen);
    free(c->data_dir);
    free(c->key_dir);
    free(c);
    *p = NULL;
}

const kb_agency_t *kb_conf_agency(const kb_conf_t *c, const char *id)
{
    if (!c || !id)
        return NULL;
    for (size_t i = 0; i < c->n_agencies; i++)
        if (strcmp(c->agencies[i].id, id) == 0)
            return &c->agencies[i];
    return NULL;
}

const kb_agency_t *kb_conf_agency_by_curve(const kb_conf_t *c, const char *public_z85)
{
    if (!c || !public_z85)
        return NULL;
    for (size_t i = 0; i < c->n_agencies; i++)
        for (size_t k = 0; k < c->agencies[i].n_curve; k++)
            if (strcmp(c->agencies[i].curve[k], public_z85) == 0)
                return &c->agencies[i];
    return NULL;
}
