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
 * read once and kept; when a signature fails with a kept key, the file is
 * read again once (the sender may have been given a new key), and then
 * DIR/SENDER.previous.sign.pub.pem is tried if it is there: messages signed
 * before a key change may still be queued for this agency.
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

/* Read the key of id ("" = the broker) from its file into *key, or with
 * previous its key before the last change (ID.previous.sign.pub.pem; no
 * agency id has a dot): KB_ENOTFOUND when there is no such file, else the
 * loader's error. */
static int s_read(const kb_sender_keys_t *k, const char *id, int previous, EVP_PKEY **key)
{
    char path[PATH_MAX];
    *key = NULL;
    if (kb_fmt(path, sizeof path, "%s/%s%s.sign.pub.pem", k->dir, id[0] ? id : "broker",
               previous ? ".previous" : "") != KB_OK)
        return kb_error_set(KB_ETOOBIG, "sender keys: path of %s's key too long", id[0] ? id : "the broker");
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return kb_error_set(KB_ENOTFOUND, "no file %s", path);
    *key = kb_keys_load_sign_public(path);
    return *key ? KB_OK : KB_EIO;
}

/* The kept key of id, read from its file the first time. */
static int s_key(kb_sender_keys_t *k, const char *id, s_key_t **out)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->keys[i].id, id) == 0) {
            *out = &k->keys[i];
            return KB_OK;
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
    int rc = s_read(k, id, 0, &key);
    if (rc != KB_OK)
        return rc;
    s_key_t *s = &k->keys[k->n++];
    snprintf(s->id, sizeof s->id, "%s", id);
    s->key = key;
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
    /* a kept key may be an old one: read the file again, once */
    char detail[KB_ERROR_MAX];
    snprintf(detail, sizeof detail, "%s", kb_last_error());
    EVP_PKEY *fresh = NULL;
    if (s_read(k, id, 0, &fresh) == KB_OK && EVP_PKEY_eq(fresh, s->key) != 1) {
        EVP_PKEY_free(s->key);
        s->key = fresh;
        fresh = NULL;
        rc = kb_seal_verify(e, s->key);
        if (rc != KB_ECRYPTO)
            return rc;
        snprintf(detail, sizeof detail, "%s", kb_last_error());
    }
    EVP_PKEY_free(fresh);
    /* signed before the sender's key was replaced, and still queued */
    EVP_PKEY *previous = NULL;
    if (s_read(k, id, 1, &previous) == KB_OK) {
        rc = kb_seal_verify(e, previous);
        EVP_PKEY_free(previous);
        if (rc != KB_ECRYPTO)
            return rc;
    }
    return kb_error_set(KB_ECRYPTO, "not what %s signed: %s", from_broker ? "the broker" : id, detail);
}
