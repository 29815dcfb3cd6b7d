/*
 * kb_note.c - C2SP signed notes and checkpoints with Ed25519 (kb_note.h).
 *
 * Every input is untrusted: notes come from files an agency hands over or
 * from a witness. Parsing walks the bytes with explicit bounds, allocates
 * nothing, and refuses rather than repairs. Base64 is the standard
 * alphabet with padding, canonical only (unused bits zero), so one
 * checkpoint has exactly one text form.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_note.h"
#include "kb_util.h"

#define KB_NOTE_SIG_PREFIX     "\xe2\x80\x94 "   /* U+2014 EM DASH, space */
#define KB_NOTE_SIG_PREFIX_LEN 4u
#define KB_NOTE_SIZE_DIGITS    20u               /* digits of 2^64 - 1 */
#define KB_NOTE_ROOT_B64_LEN   44u               /* base64 of 32 bytes */
#define KB_ED25519_KEY_LEN     32u               /* raw Ed25519 public key */
/* base64 of key id and the longest signature we keep */
#define KB_NOTE_SIG_B64_MAX    (((KB_NOTE_KEY_ID_LEN + KB_NOTE_MAX_SIG_LEN + 2) / 3) * 4)

/* ------------------------------------------------------------ base64 */

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encode len bytes; out holds 4 * ceil(len / 3) + 1. Returns the length. */
static size_t s_b64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = s_b64[(v >> 18) & 63];
        out[o++] = s_b64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? s_b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? s_b64[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static int s_b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict decode of len chars into out (cap bytes): padded, canonical, no
 * whitespace. Returns the decoded length, or -1. */
static long s_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    if (len == 0 || len % 4 != 0)
        return -1;
    size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    size_t n = len / 4 * 3 - pad;
    if (n > cap)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int last = i + 4 == len;
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int d = s_b64_value(in[i + j]);
            if (d < 0) {
                /* '=' only as the trailing padding */
                if (!(last && in[i + j] == '=' && j >= 4 - pad))
                    return -1;
                d = 0;
            }
            v = v << 6 | (uint32_t)d;
        }
        /* padded groups must not carry bits beyond the decoded bytes */
        if (last && ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff))))
            return -1;
        out[o++] = (uint8_t)(v >> 16);
        if (o < n)
            out[o++] = (uint8_t)(v >> 8);
        if (o < n)
            out[o++] = (uint8_t)v;
    }
    return (long)n;
}

/* ------------------------------------------------------------ text rules */

/* Unicode White_Space, as Go's unicode.IsSpace (which signed-note names). */
static int s_is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* A key name or origin: 1..max bytes of UTF-8, no spaces, no '+', no
 * control characters. */
static int s_name_ok(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        if (kb_utf8_next(s, len, &i, &c) != KB_OK || c < 0x20 || c == 0x7f || c == '+' || s_is_space(c))
            return 0;
    }
    return 1;
}

/* Note text: valid UTF-8 with no control characters but newline. */
static int s_text_ok(const char *s, size_t len)
{
    if (!kb_utf8_valid(s, len))
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((uint8_t)s[i] < 0x20 && s[i] != '\n')
            return 0;
    return 1;
}

/* ------------------------------------------------------------ keys */

static int s_ed25519_public(EVP_PKEY *key, uint8_t pub[KB_ED25519_KEY_LEN])
{
    size_t len = KB_ED25519_KEY_LEN;
    if (!key || !EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_get_raw_public_key(key, pub, &len) != 1 ||
        len != KB_ED25519_KEY_LEN)
        return kb_error_ssl(KB_ECRYPTO, "note: not an Ed25519 key");
    return KB_OK;
}

int kb_note_key_id(const char *name, EVP_PKEY *key, uint32_t *id)
{
    if (!name || !id || !s_name_ok(name, strlen(name), KB_NOTE_MAX_NAME))
        return kb_error_set(KB_EINVAL, "note: bad key name");
    uint8_t pub[KB_ED25519_KEY_LEN];
    int rc = s_ed25519_public(key, pub);
    if (rc != KB_OK)
        return rc;
    const uint8_t sep[2] = {'\n', KB_NOTE_ALG_ED25519};
    uint8_t h[32];
    unsigned int hl = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(ctx, name, strlen(name)) != 1 ||
        EVP_DigestUpdate(ctx, sep, sizeof sep) != 1 || EVP_DigestUpdate(ctx, pub, sizeof pub) != 1 ||
        EVP_DigestFinal_ex(ctx, h, &hl) != 1) {
        EVP_MD_CTX_free(ctx);
        return kb_error_ssl(KB_ECRYPTO, "note: SHA-256 failed");
    }
    EVP_MD_CTX_free(ctx);
    *id = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    return KB_OK;
}

/* ------------------------------------------------------------ signing */

int kb_note_body(const char *origin, uint64_t size, const uint8_t root[KB_MERKLE_HASH_LEN], char *out, size_t out_len,
                 size_t *len)
{
    if (!origin || !root || !out || !s_name_ok(origin, strlen(origin), KB_NOTE_MAX_ORIGIN))
        return kb_error_set(KB_EINVAL, "note: bad origin");
    char b64[KB_NOTE_ROOT_B64_LEN + 1];
    s_b64_encode(root, KB_MERKLE_HASH_LEN, b64);
    int rc = kb_fmt(out, out_len, "%s\n%llu\n%s\n", origin, (unsigned long long)size, b64);
    if (rc != KB_OK)
        return kb_error_set(rc, "note: checkpoint does not fit in %zu bytes", out_len);
    if (len)
        *len = strlen(out);
    return KB_OK;
}

int kb_note_sign_text(const char *text, size_t text_len, const char *key_name, EVP_PKEY *key, char **note,
                      size_t *note_len)
{
    if (!text || !note || text_len == 0 || text[text_len - 1] != '\n' || !s_text_ok(text, text_len))
        return kb_error_set(KB_EINVAL, "note: text must be UTF-8 lines ending in a newline");
    uint32_t id;
    int rc = kb_note_key_id(key_name, key, &id);
    if (rc != KB_OK)
        return rc;
    size_t name_len = strlen(key_name);
    /* text, empty line, prefix, name, space, base64 of id and signature, newline */
    size_t sig_b64_len = ((KB_NOTE_KEY_ID_LEN + KB_NOTE_ED25519_LEN + 2) / 3) * 4;
    if (text_len > KB_NOTE_MAX_LEN ||
        KB_NOTE_MAX_LEN - text_len < 1 + KB_NOTE_SIG_PREFIX_LEN + name_len + 1 + sig_b64_len + 1)
        return kb_error_set(KB_ETOOBIG, "note: longer than %u bytes", KB_NOTE_MAX_LEN);
    size_t total = text_len + 1 + KB_NOTE_SIG_PREFIX_LEN + name_len + 1 + sig_b64_len + 1;

    uint8_t blob[KB_NOTE_KEY_ID_LEN + KB_NOTE_ED25519_LEN];
    blob[0] = (uint8_t)(id >> 24);
    blob[1] = (uint8_t)(id >> 16);
    blob[2] = (uint8_t)(id >> 8);
    blob[3] = (uint8_t)id;
    size_t sig_len = KB_NOTE_ED25519_LEN;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1 ||
        EVP_DigestSign(ctx, blob + KB_NOTE_KEY_ID_LEN, &sig_len, (const uint8_t *)text, text_len) != 1 ||
        sig_len != KB_NOTE_ED25519_LEN) {
        EVP_MD_CTX_free(ctx);
        return kb_error_ssl(KB_ECRYPTO, "note: Ed25519 signing failed (a private key is needed)");
    }
    EVP_MD_CTX_free(ctx);

    char *out = malloc(total + 1);
    if (!out)
        return kb_error_set(KB_ENOMEM, "note: out of memory");
    size_t o = 0;
    memcpy(out, text, text_len);
    o += text_len;
    out[o++] = '\n';
    memcpy(out + o, KB_NOTE_SIG_PREFIX, KB_NOTE_SIG_PREFIX_LEN);
    o += KB_NOTE_SIG_PREFIX_LEN;
    memcpy(out + o, key_name, name_len);
    o += name_len;
    out[o++] = ' ';
    o += s_b64_encode(blob, sizeof blob, out + o);
    out[o++] = '\n';
    out[o] = '\0';
    *note = out;
    if (note_len)
        *note_len = o;
    return KB_OK;
}

int kb_note_sign(const char *origin, uint64_t size, const uint8_t root[KB_MERKLE_HASH_LEN], const char *key_name,
                 EVP_PKEY *key, char **note, size_t *note_len)
{
    char body[KB_NOTE_MAX_ORIGIN + KB_NOTE_SIZE_DIGITS + KB_NOTE_ROOT_B64_LEN + 4];
    size_t len = 0;
    int rc = kb_note_body(origin, size, root, body, sizeof body, &len);
    return rc != KB_OK ? rc : kb_note_sign_text(body, len, key_name, key, note, note_len);
}

/* ------------------------------------------------------------ parsing */

typedef struct {
    const char *buf; /* the note */
    size_t len;      /* its length */
    size_t pos;      /* next byte to read */
} s_cursor_t;

/* The line at the cursor, without its newline; advances past the newline.
 * 0 if no complete line is left. */
static int s_line(s_cursor_t *c, const char **line, size_t *line_len)
{
    if (c->pos >= c->len)
        return 0;
    const char *start = c->buf + c->pos;
    const char *nl = memchr(start, '\n', c->len - c->pos);
    if (!nl)
        return 0;
    *line = start;
    *line_len = (size_t)(nl - start);
    c->pos += *line_len + 1;
    return 1;
}

static int s_malformed(const char *what)
{
    return kb_error_set(KB_EPROTO, "note: %s", what);
}

/* The signed-note layer: checks the whole note, finds the text and parses
 * the signature lines into sigs (KB_NOTE_MAX_SIGS). */
static int s_split(const char *note, size_t len, size_t *text_len, kb_note_sig_t *sigs, size_t *n_sigs)
{
    if (!note)
        return kb_error_set(KB_EINVAL, "note: NULL argument");
    if (len > KB_NOTE_MAX_LEN)
        return kb_error_set(KB_ETOOBIG, "note: %zu bytes, more than %u", len, KB_NOTE_MAX_LEN);
    if (!s_text_ok(note, len))
        return s_malformed("not UTF-8 text without control characters");
    if (len == 0 || note[len - 1] != '\n')
        return s_malformed("does not end in a newline");
    /* the last empty line separates text from signatures */
    size_t split = 0;
    int found = 0;
    for (size_t i = len - 1; i-- > 0;)
        if (note[i] == '\n' && note[i + 1] == '\n') {
            split = i;
            found = 1;
            break;
        }
    if (!found)
        return s_malformed("no empty line before the signatures");
    *text_len = split + 1;
    s_cursor_t c = {note, len, split + 2};
    if (c.pos >= len)
        return s_malformed("no signature lines");
    *n_sigs = 0;
    const char *line;
    size_t line_len;
    while (s_line(&c, &line, &line_len)) {
        if (*n_sigs == KB_NOTE_MAX_SIGS)
            return s_malformed("too many signatures");
        if (line_len < KB_NOTE_SIG_PREFIX_LEN || memcmp(line, KB_NOTE_SIG_PREFIX, KB_NOTE_SIG_PREFIX_LEN) != 0)
            return s_malformed("a line after the empty line is not a signature");
        line += KB_NOTE_SIG_PREFIX_LEN;
        line_len -= KB_NOTE_SIG_PREFIX_LEN;
        const char *space = memchr(line, ' ', line_len);
        if (!space)
            return s_malformed("signature line without a signature");
        size_t name_len = (size_t)(space - line);
        const char *b64 = space + 1;
        size_t b64_len = line_len - name_len - 1;
        if (!s_name_ok(line, name_len, KB_NOTE_MAX_NAME))
            return s_malformed("bad key name in a signature line");
        if (b64_len > KB_NOTE_SIG_B64_MAX)
            return s_malformed("signature too long");
        uint8_t raw[KB_NOTE_KEY_ID_LEN + KB_NOTE_MAX_SIG_LEN];
        long n = s_b64_decode(b64, b64_len, raw, sizeof raw);
        if (n < (long)KB_NOTE_KEY_ID_LEN + 1)
            return s_malformed("signature is not base64 of a key id and a signature");
        kb_note_sig_t *s = &sigs[(*n_sigs)++];
        memcpy(s->name, line, name_len);
        s->name[name_len] = '\0';
        s->key_id = (uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 | (uint32_t)raw[2] << 8 | raw[3];
        s->sig_len = (size_t)n - KB_NOTE_KEY_ID_LEN;
        memcpy(s->sig, raw + KB_NOTE_KEY_ID_LEN, s->sig_len);
    }
    return KB_OK;
}

/* Decimal without sign, spaces or leading zeros, at most 2^64 - 1. */
static int s_parse_size(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > KB_NOTE_SIZE_DIGITS || (len > 1 && s[0] == '0'))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

static int s_parse_body(const char *text, size_t len, kb_note_checkpoint_t *cp)
{
    s_cursor_t c = {text, len, 0};
    const char *line;
    size_t line_len;
    if (!s_line(&c, &line, &line_len) || !s_name_ok(line, line_len, KB_NOTE_MAX_ORIGIN))
        return s_malformed("bad origin line");
    memcpy(cp->origin, line, line_len);
    cp->origin[line_len] = '\0';
    if (!s_line(&c, &line, &line_len) || !s_parse_size(line, line_len, &cp->size))
        return s_malformed("bad tree size line");
    if (!s_line(&c, &line, &line_len) || line_len != KB_NOTE_ROOT_B64_LEN ||
        s_b64_decode(line, line_len, cp->root, sizeof cp->root) != (long)KB_MERKLE_HASH_LEN)
        return s_malformed("bad root hash line");
    if (c.pos != len)
        return s_malformed("text after the root hash line");
    return KB_OK;
}

int kb_note_parse(const char *note, size_t len, kb_note_checkpoint_t *cp)
{
    if (!cp)
        return kb_error_set(KB_EINVAL, "note: NULL argument");
    memset(cp, 0, sizeof *cp);
    int rc = s_split(note, len, &cp->body_len, cp->sigs, &cp->n_sigs);
    if (rc == KB_OK)
        rc = s_parse_body(note, cp->body_len, cp);
    if (rc != KB_OK)
        memset(cp, 0, sizeof *cp);
    return rc;
}

/* ------------------------------------------------------------ verifying */

static int s_verify_sigs(const char *note, size_t text_len, const kb_note_sig_t *sigs, size_t n_sigs,
                         const char *key_name, EVP_PKEY *pub)
{
    uint32_t id;
    int rc = kb_note_key_id(key_name, pub, &id);
    if (rc != KB_OK)
        return rc;
    size_t matched = 0;
    for (size_t i = 0; i < n_sigs; i++) {
        if (sigs[i].key_id != id || strcmp(sigs[i].name, key_name) != 0)
            continue;
        matched++;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int ok = ctx && sigs[i].sig_len == KB_NOTE_ED25519_LEN &&
                 EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
                 EVP_DigestVerify(ctx, sigs[i].sig, sigs[i].sig_len, (const uint8_t *)note, text_len) == 1;
        EVP_MD_CTX_free(ctx);
        if (!ok)
            return kb_error_ssl(KB_ECRYPTO, "note: signature by %s+%08x does not verify", key_name, id);
    }
    if (matched == 0)
        return kb_error_set(KB_ECRYPTO, "note: no signature by %s+%08x", key_name, id);
    return KB_OK;
}

int kb_note_verify_text(const char *note, size_t len, const char *key_name, EVP_PKEY *pub, size_t *text_len)
{
    kb_note_sig_t sigs[KB_NOTE_MAX_SIGS];
    size_t n_sigs = 0, tl = 0;
    int rc = s_split(note, len, &tl, sigs, &n_sigs);
    if (rc == KB_OK)
        rc = s_verify_sigs(note, tl, sigs, n_sigs, key_name, pub);
    if (rc == KB_OK && text_len)
        *text_len = tl;
    return rc;
}

int kb_note_verify(const char *note, size_t len, const char *key_name, EVP_PKEY *pub, kb_note_checkpoint_t *cp)
{
    int rc = kb_note_parse(note, len, cp);
    if (rc == KB_OK)
        rc = s_verify_sigs(note, cp->body_len, cp->sigs, cp->n_sigs, key_name, pub);
    return rc;
}

int kb_note_export(const char *note, size_t len, const char *key_name, EVP_PKEY *pub, const char *body_path,
                   const char *sig_path)
{
    if (!body_path || !sig_path)
        return kb_error_set(KB_EINVAL, "note: NULL argument");
    kb_note_checkpoint_t *cp = malloc(sizeof *cp);
    if (!cp)
        return kb_error_set(KB_ENOMEM, "note: out of memory");
    uint32_t id;
    int rc = kb_note_parse(note, len, cp);
    if (rc == KB_OK)
        rc = kb_note_key_id(key_name, pub, &id);
    const kb_note_sig_t *found = NULL;
    for (size_t i = 0; rc == KB_OK && i < cp->n_sigs && !found; i++)
        if (cp->sigs[i].key_id == id && strcmp(cp->sigs[i].name, key_name) == 0)
            found = &cp->sigs[i];
    if (rc == KB_OK && (!found || found->sig_len != KB_NOTE_ED25519_LEN))
        rc = kb_error_set(KB_ENOTFOUND, "note: no Ed25519 signature by %s+%08x", key_name, id);
    if (rc == KB_OK)
        rc = kb_file_write(body_path, note, cp->body_len, 0644);
    if (rc == KB_OK)
        rc = kb_file_write(sig_path, found->sig, found->sig_len, 0644);
    free(cp);
    return rc;
}
