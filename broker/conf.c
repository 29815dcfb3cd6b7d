/*
 * conf.c - load and validate the chain configuration of ketenbusd (conf.h).
 *
 * The file is read whole (at most KB_CONF_MAX_BYTES), hashed, and parsed
 * with libyaml's document API; the node tree is then walked against the
 * fixed schema below. A first pass over the parser's events bounds the
 * nesting depth and refuses anchors and aliases, on which libyaml spends
 * time quadratic in their number; the walk consumes every node at most once
 * too, so the work stays proportional to the size of the file.
 *
 * Errors name the file, the 1-based line and column of the offending node
 * and the key or value at fault ("chain.yaml:12:7: unknown key 'sender' in
 * rule (expected id, from, to, kinds)"). A load either returns a complete
 * configuration or NULL: every failure path ends in kb_conf_destroy().
 *
 * Kind names in rules come from the generated protobuf-c descriptor of
 * ketenbus.Kind (KIND_REFERRAL_UPDATE is written referral_update), so a kind
 * added to the proto needs no change here.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <yaml.h>

#include "conf.h"
#include "kb_error.h"
#include "kb_keys.h"
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

#define S_US_PER_S   1000000LL
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
    s_index_t rule_ids;    /* rule id -> index in conf->rules */
    uint32_t *stamp;       /* per agency: number of the last list naming it */
    uint32_t list_no;      /* number of the agency list being read */
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

/* The text of a scalar node; one line of printable text without NUL. */
static int s_scalar(const s_ctx_t *ctx, const yaml_node_t *node, const char *what, const char **out)
{
    if (node->type != YAML_SCALAR_NODE)
        return s_err(ctx, node, "%s: expected a single value, not a %s", what, s_type_name(node));
    const char *text = (const char *)node->data.scalar.value;
    size_t len = node->data.scalar.length;
    if (strlen(text) != len)
        return s_err(ctx, node, "%s: NUL character in value", what);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch < 0x20 || ch == 0x7f)
            return s_err(ctx, node, "%s: control character in value", what);
    }
    *out = text;
    return KB_OK;
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
 * node of names[i], or NULL when absent. where says where the mapping is
 * ("in rule", "at top level"). */
static int s_map(s_ctx_t *ctx, const yaml_node_t *node, const char *where, const char *const *names, size_t n_names,
                 yaml_node_t **values)
{
    for (size_t i = 0; i < n_names; i++)
        values[i] = NULL;
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

/* [a-z0-9-], 1..KB_CONF_MAX_ID characters. */
static int s_id_is_valid(const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len > KB_CONF_MAX_ID)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
            return 0;
    return 1;
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

/* A duration "<number><s|m|h|d>" in [min_us, max_us] (range_text says it). */
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
        default: break;
        }
    }
    if (unit == 0)
        return s_err(ctx, node, "%s: expected a number with s, m, h or d, got '%.*s'", what, KB_CONF_SHOW, text);
    if (v > INT64_MAX / unit || v * unit < min_us || v * unit > max_us)
        return s_err(ctx, node, "%s: %.*s is out of range %s", what, KB_CONF_SHOW, text, range_text);
    *out = v * unit;
    return KB_OK;
}

/* ------------------------------------------------------------ broker */

enum { B_ID, B_LISTEN, B_DATA_DIR, B_KEY_DIR, B_MAX_MESSAGE, B_TTL, B_SESSION, B_N };
static const char *const s_broker_keys[B_N] = {
    "id", "listen", "data_dir", "key_dir", "max_message_bytes", "message_ttl", "session_timeout",
};

static int s_broker(s_ctx_t *ctx, const yaml_node_t *node)
{
    kb_conf_t *c = ctx->conf;
    yaml_node_t *v[B_N];
    int rc = s_map(ctx, node, "in broker", s_broker_keys, B_N, v);
    if (rc != KB_OK)
        return rc;
    static const int required[] = {B_LISTEN, B_DATA_DIR, B_KEY_DIR};
    for (size_t i = 0; i < S_COUNT(required); i++)
        if (!v[required[i]])
            return s_err(ctx, node, "missing key '%s' in broker", s_broker_keys[required[i]]);

    const char *text = "ketenbus";
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
    a->curve = calloc(list.n, sizeof *a->curve);
    if (!a->curve)
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
        if (s_index_get(&ctx->curve_keys, a->curve[i], &owner))
            return s_err(ctx, item, "agency '%s': the CURVE key in %s is already used by agency '%s'", a->id, text,
                         ctx->conf->agencies[owner].id);
        if ((rc = s_index_put(&ctx->curve_keys, a->curve[i], index)) != KB_OK)
            return rc;
        a->n_curve++;
    }
    return KB_OK;
}

static int s_agency(s_ctx_t *ctx, size_t index, const yaml_node_t *node)
{
    kb_agency_t *a = &ctx->conf->agencies[index];
    yaml_node_t *v[A_N];
    int rc = s_map(ctx, node, "in agency", s_agency_keys, A_N, v);
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
    a->signing_key = kb_keys_load_sign_public(a->signing_key_path);
    if (!a->signing_key)
        return s_err(ctx, v[A_SIGNING], "agency '%s': cannot load signing key %s: %s", a->id, text, kb_last_error());
    return KB_OK;
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
    if (!c->agencies || !ctx->stamp)
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

/* ------------------------------------------------------------- rules */

enum { R_ID, R_FROM, R_TO, R_KINDS, R_N };
static const char *const s_rule_keys[R_N] = {"id", "from", "to", "kinds"};

/* The agencies of a rule's from or to. */
static int s_rule_agencies(s_ctx_t *ctx, const kb_rule_t *r, yaml_node_t *node, const char *what, size_t *n_out,
                           char ***out)
{
    s_list_t list;
    int rc = s_list(ctx, node, what, &list);
    if (rc != KB_OK)
        return rc;
    if (list.n == 0)
        return s_err(ctx, node, "rule '%s' %s: expected at least one agency", r->id, what);
    *out = calloc(list.n, sizeof **out);
    if (!*out)
        return s_nomem();
    /* A fresh stamp per list finds a repeated agency in one pass. */
    ctx->list_no++;
    for (size_t i = 0; i < list.n; i++) {
        yaml_node_t *item;
        const char *text;
        size_t index;
        if ((rc = s_list_item(ctx, &list, i, &item)) != KB_OK || (rc = s_text(ctx, item, what, &text)) != KB_OK)
            return rc;
        if (!s_index_get(&ctx->agency_ids, text, &index))
            return s_err(ctx, item, "unknown agency '%.*s' in rule '%s' %s", KB_CONF_SHOW, text, r->id, what);
        if (ctx->stamp[index] == ctx->list_no)
            return s_err(ctx, item, "agency '%s' appears twice in rule '%s' %s", text, r->id, what);
        ctx->stamp[index] = ctx->list_no;
        if ((rc = s_strdup(text, &(*out)[i])) != KB_OK)
            return rc;
        (*n_out)++;
    }
    return KB_OK;
}

/* ASCII lowercase, whatever the locale (a Turkish one maps I elsewhere). */
static char s_lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Lowercase names of ketenbus.Kind without the KIND_ prefix, comma-separated. */
static void s_kind_names(char *buf, size_t len)
{
    const ProtobufCEnumDescriptor *d = &ketenbus__kind__descriptor;
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < d->n_values; i++) {
        const ProtobufCEnumValue *v = &d->values[i];
        if (v->value <= 0 || v->value >= 32 || strncmp(v->name, "KIND_", 5) != 0)
            continue;
        for (const char *p = (used ? ", " : ""); *p && used + 1 < len; p++)
            buf[used++] = *p;
        for (const char *p = v->name + 5; *p && used + 1 < len; p++)
            buf[used++] = s_lower(*p);
        buf[used] = '\0';
    }
}

/* The Kind value of a rule's kind name ("referral_update"), or -1. */
static int s_kind_value(const char *text)
{
    const ProtobufCEnumDescriptor *d = &ketenbus__kind__descriptor;
    for (unsigned i = 0; i < d->n_values; i++) {
        const ProtobufCEnumValue *v = &d->values[i];
        if (v->value <= 0 || v->value >= 32 || strncmp(v->name, "KIND_", 5) != 0)
            continue;
        const char *name = v->name + 5;
        size_t j = 0;
        while (name[j] && text[j] == s_lower(name[j]))
            j++;
        if (name[j] == '\0' && text[j] == '\0')
            return v->value;
    }
    return -1;
}

static int s_rule_kinds(s_ctx_t *ctx, kb_rule_t *r, yaml_node_t *node)
{
    s_list_t list;
    int rc = s_list(ctx, node, "kinds", &list);
    if (rc != KB_OK)
        return rc;
    if (list.n == 0)
        return s_err(ctx, node, "rule '%s' kinds: expected at least one kind", r->id);
    for (size_t i = 0; i < list.n; i++) {
        yaml_node_t *item;
        const char *text;
        if ((rc = s_list_item(ctx, &list, i, &item)) != KB_OK || (rc = s_text(ctx, item, "kinds", &text)) != KB_OK)
            return rc;
        int kind = s_kind_value(text);
        if (kind < 0) {
            char names[KB_CONF_LIST_TEXT];
            s_kind_names(names, sizeof names);
            return s_err(ctx, item, "unknown kind '%.*s' in rule '%s' (expected %s)", KB_CONF_SHOW, text, r->id,
                         names);
        }
        uint32_t bit = 1u << kind;
        if (r->kinds & bit)
            return s_err(ctx, item, "kind '%s' appears twice in rule '%s'", text, r->id);
        r->kinds |= bit;
    }
    return KB_OK;
}

static int s_rule(s_ctx_t *ctx, size_t index, const yaml_node_t *node)
{
    kb_rule_t *r = &ctx->conf->rules[index];
    yaml_node_t *v[R_N];
    int rc = s_map(ctx, node, "in rule", s_rule_keys, R_N, v);
    if (rc != KB_OK)
        return rc;
    r->line = (int)node->start_mark.line + 1;
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
    for (size_t k = R_FROM; k < R_N; k++)
        if (!v[k])
            return s_err(ctx, node, "missing key '%s' in rule '%s'", s_rule_keys[k], r->id);
    if ((rc = s_rule_agencies(ctx, r, v[R_FROM], "from", &r->n_from, &r->from)) != KB_OK ||
        (rc = s_rule_agencies(ctx, r, v[R_TO], "to", &r->n_to, &r->to)) != KB_OK)
        return rc;
    return s_rule_kinds(ctx, r, v[R_KINDS]);
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

enum { T_BROKER, T_AGENCIES, T_RULES, T_N };
static const char *const s_top_keys[T_N] = {"broker", "agencies", "rules"};

/* Position of a byte offset, for reader errors that carry no mark. */
static void s_offset_mark(const char *buf, size_t len, size_t offset, size_t *line, size_t *column)
{
    *line = 0;
    *column = 0;
    for (size_t i = 0; i < offset && i < len; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *column = 0;
        } else {
            (*column)++;
        }
    }
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
    int rc = s_check_depth(ctx, buf, len);
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
    if ((rc = s_take(ctx, 1, &root)) != KB_OK || (rc = s_map(ctx, root, "at top level", s_top_keys, T_N, v)) != KB_OK)
        return rc;
    if (!v[T_BROKER])
        return s_err(ctx, root, "missing key 'broker' at top level");
    if (!v[T_AGENCIES])
        return s_err(ctx, root, "missing key 'agencies' at top level");
    /* Agencies before rules, which name them. */
    if ((rc = s_broker(ctx, v[T_BROKER])) != KB_OK || (rc = s_agencies(ctx, v[T_AGENCIES])) != KB_OK)
        return rc;
    if (v[T_RULES] && (rc = s_rules(ctx, v[T_RULES])) != KB_OK)
        return rc;
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
    if (!path || !*path) {
        kb_error_set(KB_EINVAL, "configuration path is empty");
        return NULL;
    }
    s_ctx_t ctx = {.path = path};
    char *buf = NULL;
    size_t len = 0;
    int rc = kb_file_read(path, KB_CONF_MAX_BYTES, &buf, &len);
    if (rc != KB_OK) {
        kb_error_wrap(rc, "loading configuration");
        return NULL;
    }
    ctx.conf = calloc(1, sizeof *ctx.conf);
    if (!ctx.conf) {
        s_nomem();
        free(buf);
        return NULL;
    }
    if ((rc = s_strdup(path, &ctx.conf->path)) == KB_OK && (rc = s_dir_of(path, &ctx.dir)) == KB_OK &&
        (rc = s_sha256_hex(buf, len, ctx.conf->sha256)) == KB_OK)
        rc = s_load(&ctx, buf, len);

    if (ctx.have_doc)
        yaml_document_delete(&ctx.doc);
    free(ctx.used);
    free(ctx.stamp);
    free(ctx.dir);
    s_index_free(&ctx.agency_ids);
    s_index_free(&ctx.curve_keys);
    s_index_free(&ctx.rule_ids);
    free(buf);
    if (rc != KB_OK)
        kb_conf_destroy(&ctx.conf);
    return ctx.conf;
}

void kb_conf_destroy(kb_conf_t **p)
{
    if (!p || !*p)
        return;
    kb_conf_t *c = *p;
    for (size_t i = 0; i < c->n_agencies; i++) {
        kb_agency_t *a = &c->agencies[i];
        free(a->id);
        free(a->name);
        free(a->curve);
        free(a->signing_key_path);
        EVP_PKEY_free(a->signing_key);
    }
    free(c->agencies);
    for (size_t i = 0; i < c->n_rules; i++) {
        kb_rule_t *r = &c->rules[i];
        free(r->id);
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
