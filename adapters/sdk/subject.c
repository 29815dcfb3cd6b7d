/*
 * subject.c - the SDK's subject keys: ketenbus_subject_key() and
 * ketenbus_msg_add_subject().
 *
 * Thin wrappers over lib/kb_subject.c, which holds the normalisation rules
 * shared with the CLI. The chain key is read from its file on every call
 * and wiped before returning, so the SDK keeps no copy of it between calls:
 * an adapter that computes many keys pays one small file read per key,
 * which is nothing next to signing and a synced outbox write.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_subject.h"
#include "kb_util.h"
#include "sdk_internal.h"

int ketenbus_subject_key(const char *chain_key_file, const char *type, const char *value, char hex_out[65])
{
    if (!hex_out)
        return kb_error_set(KB_EINVAL, "subject key: no output buffer");
    hex_out[0] = '\0';
    if (!chain_key_file || !type || !value)
        return kb_error_set(KB_EINVAL, "subject key: chain key file, type and value are required");
    uint8_t chain_key[KB_CHAIN_KEY_LEN];
    uint8_t key[KB_SUBJECT_KEY_LEN];
    int rc = kb_subject_load_chain_key(chain_key_file, chain_key);
    if (rc == KB_OK)
        rc = kb_subject_key(chain_key, type, value, key);
    if (rc == KB_OK)
        kb_hex(key, sizeof key, hex_out);
    OPENSSL_cleanse(chain_key, sizeof chain_key);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int ketenbus_msg_add_subject(ketenbus_msg_t *msg, const char *chain_key_file, const char *type, const char *value)
{
    if (!msg)
        return kb_error_set(KB_EINVAL, "subject key: message is required");
    char hex[2 * KB_SUBJECT_KEY_LEN + 1];
    int rc = ketenbus_subject_key(chain_key_file, type, value, hex);
    if (rc != KB_OK)
        return rc;
    uint8_t key[KB_SUBJECT_KEY_LEN];
    rc = kb_unhex(hex, key, sizeof key);
    if (rc != KB_OK)
        return rc;
    /* Adding the same person twice (say by BSN from two records) is not an
     * error; a second copy would only make the envelope longer. */
    const Ketenbus__Envelope *e = msg->env;
    for (size_t i = 0; i < e->n_subject_keys; i++)
        if (e->subject_keys[i].len == sizeof key && CRYPTO_memcmp(e->subject_keys[i].data, key, sizeof key) == 0)
            return KB_OK;
    if (e->n_subject_keys >= KB_MAX_SUBJECT_KEYS)
        return kb_error_set(KB_ETOOBIG, "subject key: the message has %zu subject keys, at most %u", e->n_subject_keys,
                            KB_MAX_SUBJECT_KEYS);
    return ketenbus_msg_set(msg, "subject_keys", hex);
}
