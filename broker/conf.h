/*
 * conf.h - the chain configuration file of ketenbusd (YAML).
 *
 * One file describes the broker (listen endpoint, data and key directories,
 * limits), the agencies of the chain with their public keys, and the sharing
 * rules. Relative paths are resolved against the directory of the file.
 * Loading either yields a complete, validated configuration or nothing:
 * errors read "path:line:column: message" (kb_last_error()) and name the key
 * or value that is wrong. Unknown and duplicate keys are errors.
 *
 * Example (ops/examples/chain.yaml holds a full one):
 *
 *   broker:
 *     id: ketenbus-demo
 *     listen: tcp://127.0.0.1:5555     # port "*" binds an ephemeral port
 *     data_dir: data
 *     key_dir: keys                    # broker.curve_secret, broker.sign.pem, broker.storage.key
 *     max_message_bytes: 1048576
 *     message_ttl: 14d                 # number with s, m, h or d
 *     session_timeout: 10s             # no frame from an adapter for this long: session ends
 *   agencies:
 *     - id: politie
 *       name: Politie Nederland
 *       curve_cert: keys/politie.curve # a string or a list of certificate files
 *       signing_key: keys/politie.sign.pub.pem
 *   rules:
 *     - id: fier-signal-politie
 *       from: [fier]
 *       to: [politie, comensha]
 *       kinds: [signal]
 *
 * Used by broker/main.c (load, reload) and the rule and session modules.
 */
#ifndef KB_CONF_H
#define KB_CONF_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "kb_keys.h"

/* Limits for the configuration file itself. */
#define KB_CONF_MAX_BYTES    (4u * 1024u * 1024u)
#define KB_CONF_MAX_AGENCIES 4096u
#define KB_CONF_MAX_RULES    100000u
#define KB_CONF_MAX_KEYS     16u   /* CURVE keys per agency */

typedef struct {
    char *id;                     /* short id, [a-z0-9-], 1..32 chars */
    char *name;                   /* display name */
    size_t n_curve;               /* number of CURVE public keys */
    char (*curve)[KB_Z85_KEY_LEN + 1]; /* Z85 public keys of its adapters */
    char *signing_key_path;       /* resolved path of its Ed25519 public key */
    EVP_PKEY *signing_key;        /* loaded Ed25519 public key */
    int line;                     /* line of the entry in the file */
} kb_agency_t;

typedef struct {
    char *id;                     /* unique rule id */
    size_t n_from;                /* senders it applies to */
    char **from;                  /* agency ids */
    size_t n_to;                  /* recipients it allows */
    char **to;                    /* agency ids */
    uint32_t kinds;               /* bit (1u << Ketenbus__Kind) per allowed kind */
    int line;                     /* line of the rule in the file */
} kb_rule_t;

typedef struct {
    char *path;                   /* the file as given */
    char *broker_id;              /* broker name, sent in WELCOME */
    char *listen;                 /* zmq endpoint to bind */
    char *data_dir;               /* resolved LevelDB directory */
    char *key_dir;                /* resolved broker key directory */
    size_t max_message_bytes;     /* largest accepted frame */
    int64_t message_ttl_us;       /* time a message may wait for an ACK */
    int64_t session_timeout_us;   /* silence after which a session ends */
    size_t n_agencies;            /* number of agencies */
    kb_agency_t *agencies;        /* the agencies, in file order */
    size_t n_rules;               /* number of rules */
    kb_rule_t *rules;             /* the rules, in file order */
    char sha256[65];              /* hex SHA-256 of the file's bytes */
} kb_conf_t;

/* Defaults for optional broker keys. */
#define KB_CONF_DEFAULT_MAX_MESSAGE  (1024u * 1024u)
#define KB_CONF_DEFAULT_TTL_US       (14LL * 24 * 3600 * 1000000)
#define KB_CONF_DEFAULT_SESSION_US   (10LL * 1000000)

/* Load and validate; NULL with kb_last_error() = "file:line:col: message". */
kb_conf_t *kb_conf_load(const char *path);

void kb_conf_destroy(kb_conf_t **p);

/* The agency with this id, or NULL. */
const kb_agency_t *kb_conf_agency(const kb_conf_t *c, const char *id);

/* The agency owning this Z85 CURVE public key, or NULL. */
const kb_agency_t *kb_conf_agency_by_curve(const kb_conf_t *c, const char *public_z85);

#endif
