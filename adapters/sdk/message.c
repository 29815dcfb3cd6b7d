/*
 * message.c - ketenbus_msg_t: an envelope as the SDK's users see it.
 *
 * Fields are read and written through the JSON mapping of lib/kb_json.c, so
 * the paths users write ("signal.narrative") are the ones of docs/JSON.md,
 * of the sharing rules' redaction paths and of the CLI.
 */
#include <stdlib.h>
#include <string.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_json.h"
#include "kb_util.h"
#include "sdk_internal.h"

ketenbus_msg_t *msg_wrap(Ketenbus__Envelope *env)
{
    ketenbus_msg_t *m = calloc(1, sizeof *m);
    if (!m) {
        ketenbus__envelope__free_unpacked(env, NULL);
        kb_error_set(KB_ENOMEM, "message: out of memory");
        return NULL;
    }
    m->env = env;
    msg_sync_id(m);
    return m;
}

void msg_sync_id(ketenbus_msg_t *m)
{
    if (m->env->message_id.len == 16)
        kb_uuid_format(m->env->message_id.data, m->id);
    else
        m->id[0] = '\0';
}

ketenbus_msg_t *ketenbus_msg_new(ketenbus_kind_t kind)
{
    Ketenbus__Envelope *e = malloc(sizeof *e);
    if (!e) {
        kb_error_set(KB_ENOMEM, "message: out of memory");
        return NULL;
    }
    ketenbus__envelope__init(e);
    e->kind = (Ketenbus__Kind)kind;
    switch (kind) {
    case KETENBUS_KIND_SIGNAL:
        e->signal = malloc(sizeof *e->signal);
        if (e->signal)
            ketenbus__signal__init(e->signal);
        e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_SIGNAL;
        break;
    case KETENBUS_KIND_REFERRAL:
        e->referral = malloc(sizeof *e->referral);
        if (e->referral)
            ketenbus__referral__init(e->referral);
        e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL;
        break;
    case KETENBUS_KIND_REFERRAL_UPDATE:
        e->referral_update = malloc(sizeof *e->referral_update);
        if (e->referral_update)
            ketenbus__referral_update__init(e->referral_update);
        e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL_UPDATE;
        break;
    default:
        free(e);
        kb_error_set(KB_EINVAL, "message: kind %d cannot be created by an agency", (int)kind);
        return NULL;
    }
    if (!e->signal && !e->referral && !e->referral_update) {
        e->payload_case = KETENBUS__ENVELOPE__PAYLOAD__NOT_SET;
        ketenbus__envelope__free_unpacked(e, NULL);
        kb_error_set(KB_ENOMEM, "message: out of memory");
        return NULL;
    }
    return msg_wrap(e);
}

int ketenbus_msg_from_json(const char *json, ketenbus_msg_t **out)
{
    if (!json || !out)
        return kb_error_set(KB_EINVAL, "message: NULL argument");
    ProtobufCMessage *pm = NULL;
    int rc = kb_json_decode(json, strlen(json), &ketenbus__envelope__descriptor, &pm);
    if (rc != KB_OK)
        return rc;
    ketenbus_msg_t *m = msg_wrap((Ketenbus__Envelope *)pm);
    if (!m)
        return KB_ENOMEM;
    *out = m;
    return KB_OK;
}

char *ketenbus_msg_to_json(const ketenbus_msg_t *msg)
{
    if (!msg)
        return NULL;
    return kb_json_encode(&msg->env->base, 0);
}

void ketenbus_msg_destroy(ketenbus_msg_t **p)
{
    if (!p || !*p)
        return;
    ketenbus__envelope__free_unpacked((*p)->env, NULL);
    free(*p);
    *p = NULL;
}

int ketenbus_msg_set(ketenbus_msg_t *msg, const char *path, const char *value)
{
    if (!msg || !path || !value)
        return kb_error_set(KB_EINVAL, "message: NULL argument");
    int rc = kb_json_set_path(&msg->env->base, path, value);
    if (rc == KB_OK)
        msg_sync_id(msg);
    return rc;
}

char *ketenbus_msg_get(const ketenbus_msg_t *msg, const char *path)
{
    if (!msg || !path)
        return NULL;
    return kb_json_get_path(&msg->env->base, path);
}

ketenbus_kind_t ketenbus_msg_kind(const ketenbus_msg_t *msg)
{
    return msg ? (ketenbus_kind_t)msg->env->kind : (ketenbus_kind_t)0;
}

const char *ketenbus_msg_id(const ketenbus_msg_t *msg)
{
    return msg ? msg->id : "";
}

const char *ketenbus_msg_sender(const ketenbus_msg_t *msg)
{
    return msg && msg->env->sender ? msg->env->sender : "";
}

size_t ketenbus_msg_withheld_count(const ketenbus_msg_t *msg)
{
    return msg ? msg->env->n_withheld : 0;
}

const char *ketenbus_msg_withheld(const ketenbus_msg_t *msg, size_t i)
{
    return msg && i < msg->env->n_withheld ? msg->env->withheld[i] : NULL;
}
