/*
 * verify.c - the recipient's check of a delivery (proto/SIGNING.md,
 * "Verification"): before the adapter sees a delivered envelope, the SDK
 * checks its structure and then that it is exactly what its sender signed,
 * with the sender's Ed25519 public key from a directory of key files.
 *
 * The broker checks signatures too, but the recipient must not have to
 * trust it: a broker that was broken into, or anyone holding the broker's
 * CURVE secret, could otherwise hand an agency a message in another
 * agency's name, or with a field changed.
 *
 * Keys are read from DIR/SENDER.sign.pub.pem as `ketenbus keygen` writes
 * them; notices (expiry and match notices) are written by the broker, carry
 * its id as sender and are checked with DIR/broker.sign.pub.pem. A key is
 * kept once read, with what stat() said of its file then; before each
 * use the file is looked at again, and one that was replaced, rewritten
 * or removed since is read again, or its key forgotten (the sender is then
 * unknown until a file is there). Waiting for a signature to fail before
 * reading the file again would not do: after a key leaked and its file
 * was replaced, the broker this check guards against chooses which
 * deliveries come, and could keep the old key trusted as long as it liked
 * by holding back those signed with the new one. When a signature fails,
 * DIR/SENDER.previous.sign.pub.pem is tried if it is there (read at each
 * try, never kept): messages signed before a key change may still be
 * queued for this agency.
 *
 * A file is taken to be unchanged while its device, inode, size and
 * modification and change times (in nanoseconds) are: a rename over it, a
 * rewrite in place and a chmod all change the change time. Only a rewrite
 * in place with a key of the same length, within the same tick of the file
 * system's clock as the write before it, could look unchanged.
 *
 * A delivery must also be meant for this agency: an envelope that names
 * its recipients reaches at most those (they are signed, and the broker
 * queues it for no one else), so one whose list does not name this agency
 * was sent to another, however genuine its signature. Recipients name
 * agencies only: the groups of the chain configuration are for the rules,
 * and the broker does not expand one named in an envelope (it refuses it
 * as an unknown agency), so every agency that gets a copy is named in it.
 * An envelope without recipients was fanned out by the rules, and a notice
 * of the broker names the agency it reports to, or no one.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_seal.h"
#include "kb_util.h"
#include "sdk_internal.h"

typedef struct {
    char id[KB_AGENCY_ID_MAX + 1]; /* sender id ("" for the broker's key) */
    EVP_PKEY *key;                 /* its public signing key */
    struct stat st;                /* its file, as stat() saw it just before it was read */
} s_key_t;

struct kb_sender_keys {
    char *dir;     /* directory of the public key files */
    s_key_t *keys; /* keys read so far */
    size_t n;      /* count */
    size_t cap;    /* allocated */
};

kb_sender_keys_t *kb_sender_keys_new(const char *dir)
{
    kb_sender_keys_t *k = calloc(1, sizeof *k);
    if (!k || !(k->dir = strdup(dir))) {
        free(k);
        kb_error_set(KB_ENOMEM, "sender keys: out of memory");
        return NULL;
    }
    return k;
}

void kb_sender_keys_destroy(kb_sender_keys_t **p)
{
    if (!p || !*p)
        return;
    kb_sender_keys_t *k = *p;
    for (size_t i = 0; i < k->n; i++)
        EVP_PKEY_free(k->keys[i].key);
    free(k->keys);
    free(k->dir);
    free(k);
    *p = NULL;
}

int64_t kb_sender_keys_stamp(const kb_sender_keys_t *k)
{
    struct stat st;
    if (stat(k->dir, &st) != 0)
        return 0;
    return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

/* The path of id's key file ("" = the broker), or with previous of its
 * key before the last change (ID.previous.sign.pub.pem; no agency id has a
 * dot). */
static int s_path(const kb_sender_keys_t *k, const char *id, int previous, char path[PATH_MAX])
{
    if (kb_fmt(path, PATH_MAX, "%s/%s%s.sign.pub.pem", k->dir, id[0] ? id : "broker", previous ? ".previous" : "") !=
        KB_OK)
        return kb_error_set(KB_ETOOBIG, "sender keys: path of %s's key too long", id[0] ? id : "the broker");
    return KB_OK;
}

/* Read the key of id from its file (s_path) into *key, and what stat()
 * said of the file into *st (may be NULL): KB_ENOTFOUND when there is no
 * such file, else the loader's error. stat() comes first: a file replaced
 * in between is then read again at its next use, where the other order
 * would keep the old key with the new file's stamp. */
static int s_read(const kb_sender_keys_t *k, const char *id, int previous, EVP_PKEY **key, struct stat *st)
{
    char path[PATH_MAX];
    struct stat seen;
    *key = NULL;
    int rc = s_path(k, id, previous, path);
    if (rc != KB_OK)
        return rc;
    if (stat(path, &seen) != 0) {
        if (errno == ENOENT)
            return kb_error_set(KB_ENOTFOUND, "no file %s", path);
        memset(&seen, 0, sizeof seen); /* the loader names the file and why */
    }
    *key = kb_keys_load_sign_public(path);
    if (!*key)
        return KB_EIO;
    if (st)
        *st = seen;
    return KB_OK;
}

static int s_same_time(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* Is s's file still the one its key was read from? */
static int s_unchanged(const kb_sender_keys_t *k, const s_key_t *s)
{
    char path[PATH_MAX];
    struct stat now;
    if (s_path(k, s->id, 0, path) != KB_OK || stat(path, &now) != 0)
        return 0;
    return now.st_dev == s->st.st_dev && now.st_ino == s->st.st_ino && now.st_size == s->st.st_size &&
           s_same_time(&now.st_mtim, &s->st.st_mtim) && s_same_time(&now.st_ctim, &s->st.st_ctim);
}

/* The key of id, as its file holds it now: the kept one while the file is
 * unchanged, else read from the file (and kept); a kept key whose file
 * changed is forgotten first, so it is never used once the file is gone,
 * replaced or unreadable. */
static int s_key(kb_sender_keys_t *k, const char *id, s_key_t **out)
{
    for (size_t i = 0; i < k->n; i++) {
        if (strcmp(k->keys[i].id, id) != 0)
            continue;
        if (s_unchanged(k, &k->keys[i])) {
            *out = &k->keys[i];
            return KB_OK;
        }
        EVP_PKEY_free(k->keys[i].key);
        k->keys[i] = k->keys[--k->n];
        break;
    }
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 8;
        s_key_t *keys = realloc(k->keys, cap * sizeof *keys);
        if (!keys)
            return kb_error_set(KB_ENOMEM, "sender keys: out of memory");
        k->keys = keys;
        k->cap = cap;
    }
    EVP_PKEY *key = NULL;
    struct stat st;
    int rc = s_read(k, id, 0, &key, &st);
    if (rc != KB_OK)
        return rc;
    s_key_t *s = &k->keys[k->n++];
    snprintf(s->id, sizeof s->id, "%s", id);
    s->key = key;
    s->st = st;
    *out = s;
    return KB_OK;
}

static int s_is_notice(const Ketenbus__Envelope *e)
{
    return e->kind == KETENBUS__KIND__KIND_MATCH_NOTICE || e->kind == KETENBUS__KIND__KIND_EXPIRY_NOTICE;
}

/* Is agency among the named recipients, or are none named? */
static int s_addressed_to(const Ketenbus__Envelope *e, const char *agency)
{
    if (e->n_recipients == 0)
        return 1;
    for (size_t i = 0; i < e->n_recipients; i++)
        if (strcmp(e->recipients[i], agency) == 0)
            return 1;
    return 0;
}

int kb_sender_keys_check(kb_sender_keys_t *k, const Ketenbus__Envelope *e, const char *broker_id, const char *agency)
{
    if (!k || !e || !broker_id || !agency)
        return kb_error_set(KB_EINVAL, "sender keys: nothing to check");
    char why[256];
    if (kb_envelope_validate(e, why, sizeof why) != KB_OK)
        return kb_error_set(KB_EPROTO, "malformed envelope: %s", why);
    /* only the broker writes notices, and it writes nothing else; and no
     * one else is "broker", the name of its key files */
    int from_broker = strcmp(e->sender, broker_id) == 0;
    if (s_is_notice(e) != from_broker)
        return kb_error_set(KB_EREJECTED, from_broker ? "the broker's id as sender of a message that is not a notice"
                                                      : "a notice whose sender is %s, not the broker %s",
                            e->sender, broker_id);
    if (!from_broker && strcmp(e->sender, "broker") == 0)
        return kb_error_set(KB_EREJECTED, "sender 'broker' is not the broker %s, and no agency may have that id",
                            broker_id);
    if (!s_addressed_to(e, agency))
        return kb_error_set(KB_EREJECTED, "addressed to %s%s, not to %s", kb_quarantine_safe_id(e->recipients[0]),
                            e->n_recipients > 1 ? " and others" : "", agency);
    const char *id = from_broker ? "" : e->sender;
    s_key_t *s = NULL;
    int rc = s_key(k, id, &s);
    if (rc != KB_OK)
        return kb_error_wrap(rc, "signing key of %s", from_broker ? "the broker" : id);
    rc = kb_seal_verify(e, s->key);
    if (rc != KB_ECRYPTO)
        return rc;
    char detail[KB_ERROR_MAX];
    snprintf(detail, sizeof detail, "%s", kb_last_error());
    /* signed before the sender's key was replaced, and still queued */
    EVP_PKEY *previous = NULL;
    if (s_read(k, id, 1, &previous, NULL) == KB_OK) {
        rc = kb_seal_verify(e, previous);
        EVP_PKEY_free(previous);
        if (rc != KB_ECRYPTO)
            return rc;
    }
    return kb_error_set(KB_ECRYPTO, "not what %s signed: %s", from_broker ? "the broker" : id, detail);
}
