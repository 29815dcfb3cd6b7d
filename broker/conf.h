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
 * Example (ops/examples/chain.yaml holds a full one, docs/RULES.md explains
 * the rules to privacy officers):
 *
 *   broker:
 *     id: ketenbus-demo
 *     listen: tcp://127.0.0.1:5555     # port "*" binds an ephemeral port
 *     data_dir: data
 *     key_dir: keys                    # broker.curve_secret, broker.sign.pem, broker.storage.key
 *     max_message_bytes: 1048576
 *     message_ttl: 14d                 # number with s, m, h, d or y (365 days)
 *     session_timeout: 10s             # no frame from an adapter for this long: session ends
 *     checkpoint_interval: 60s         # sign an audit checkpoint at least this often...
 *     checkpoint_records: 100000       # ...or after this many new audit records
 *                                      # (either: only once records were logged since the last)
 *     verify_signatures: true          # false only for benchmarks: senders are then
 *                                      # authenticated by their CURVE key alone
 *     retention:                       # optional: audit records older than this lose their
 *       signal: 2y                     # contents (audit prune), per kind of message; "other"
 *       referral: 7y                   # for records of no kind (connections, rule loads,
 *       other: 7y                      # unchecked refusals); a kind not named is kept for ever
 *   agencies:
 *     - id: politie
 *       name: Politie Nederland
 *       curve_cert: keys/politie.curve # a string or a list of certificate files
 *       signing_key: keys/politie.sign.pub.pem
 *   groups:                            # optional: names for sets of agencies
 *     care: [fier, ldh]
 *   rules:
 *     - id: care-signals-police
 *       description: Shelters tell the police about possible victims.
 *       effect: allow                  # or deny; deny rules win
 *       from: [care]                   # agency ids or group names
 *       to: [politie]
 *       kinds: [signal]
 *       purposes: [victim_care, criminal_investigation]
 *       max_handling: h2
 *       legal_basis: "Wpg art. 19 lid 1"
 *       redact: [signal.narrative]     # withheld from the recipients
 *       valid_until: 2027-12-31        # end of that day UTC, or an RFC 3339 time
 *
 * Groups are expanded while loading: a rule's from and to hold agency ids.
 * A loaded configuration also carries the policy index of its rules
 * (policy.h), and loading refuses a file whose rules have lint errors
 * (kb_policy_lint: a rule that can never allow anything, an expired rule).
 *
 * Used by broker/main.c and broker.c (load, reload), zap.c, route.c, the
 * policy engine and the `ketenbus policy` commands.
 */
#ifndef KB_CONF_H
#define KB_CONF_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "kb_codec.h"
#include "kb_keys.h"
#include "policy.h"

/* Limits for the configuration file itself. */
#define KB_CONF_MAX_BYTES    (4u * 1024u * 1024u)
#define KB_CONF_MAX_AGENCIES KB_MAX_AGENCIES /* a fan-out and its receipt reach them all */
#define KB_CONF_MAX_RULES    100000u
#define KB_CONF_MAX_KEYS     16u   /* CURVE keys per agency */
#define KB_CONF_MAX_GROUPS   1024u
#define KB_CONF_MAX_PAIRS    (1u << 20) /* sender/recipient pairs summed over all rules */
#define KB_CONF_SIGN_KEY_LEN 32u     /* a raw Ed25519 public key */

/* Flags of kb_conf_load_ex(). */
#define KB_CONF_SKIP_KEYS    1u    /* do not read curve_cert and signing_key files */

/* Where a value stands in the file, both counted from 1. */
typedef struct kb_conf_pos {
    int line;
    int column;
} kb_conf_pos_t;

typedef struct kb_agency {
    char *id;                     /* short id, [a-z0-9-], 1..32 chars */
    char *name;                   /* display name */
    size_t n_curve;               /* number of CURVE public keys (0 with KB_CONF_SKIP_KEYS) */
    char (*curve)[KB_Z85_KEY_LEN + 1]; /* Z85 public keys of its adapters */
    kb_conf_pos_t *curve_at;      /* where each key's certificate is named */
    char *signing_key_path;       /* resolved path of its Ed25519 public key */
    EVP_PKEY *signing_key;        /* loaded Ed25519 public key (NULL with KB_CONF_SKIP_KEYS) */
    kb_conf_pos_t signing_key_at; /* where signing_key is named */
    int line;                     /* line of the entry in the file */
} kb_agency_t;

/* A named set of agencies that rules may use in from and to. */
typedef struct kb_group {
    char *id;                     /* group name, [a-z0-9-], never an agency id */
    size_t n_members;             /* number of members */
    char **members;               /* agency ids, in file order, each once */
    int line;                     /* line of the group's name */
    int column;                   /* its column */
} kb_group_t;

/* One sharing rule; see policy.h for what it means. */
typedef struct kb_rule {
    char *id;                     /* unique rule id */
    char *description;            /* free text for readers; NULL if absent */
    int deny;                     /* 1: effect deny, 0: effect allow */
    size_t n_from;                /* senders it applies to */
    char **from;                  /* agency ids, groups expanded, each once */
    size_t n_to;                  /* recipients it applies to */
    char **to;                    /* agency ids, groups expanded, each once */
    uint32_t kinds;               /* bit (1u << Ketenbus__Kind); a deny rule without kinds has all */
    uint32_t purposes;            /* bit (1u << Ketenbus__Purpose); a deny rule without purposes has all */
    int max_handling;             /* highest Ketenbus__Handling allowed; 0 on deny rules */
    char *legal_basis;            /* legal basis text; NULL on a deny rule without one */
    size_t n_redact;              /* number of redact paths */
    char **redact;                /* payload paths withheld from recipients ("signal.narrative") */
    int64_t valid_until_us;       /* UTC time from which the rule no longer applies; 0: no expiry */
    int line;                     /* line of the rule in the file */
    int column;                   /* its column */
    int until_line;               /* line of the valid_until value (0 without one) */
    int until_column;             /* its column */
} kb_rule_t;

#define KB_CONF_RETENTION_KINDS 6u /* Ketenbus__Kind values 0..5 */
#define KB_CONF_MAX_RETENTION_US (100LL * 365 * 86400 * 1000000)

typedef struct kb_conf {
    char *path;                   /* the file as given */
    char *broker_id;              /* broker name, sent in WELCOME */
    char *listen;                 /* zmq endpoint to bind */
    char *data_dir;               /* resolved LevelDB directory */
    char *key_dir;                /* resolved broker key directory */
    size_t max_message_bytes;     /* largest accepted frame */
    int64_t message_ttl_us;       /* time a message may wait for an ACK */
    int64_t session_timeout_us;   /* silence after which a session ends */
    int64_t checkpoint_interval_us; /* sign an audit checkpoint at least this often... */
    uint64_t checkpoint_records;  /* ...or after this many new audit records */
    int verify_signatures;        /* 0 only to measure the rest of the broker (benchmarks) */
    int verify_line;              /* line of the verify_signatures value (0 without one) */
    int verify_column;            /* its column */
    int64_t retention_us[KB_CONF_RETENTION_KINDS]; /* per Ketenbus__Kind (0: no kind); 0: kept */
    size_t n_agencies;            /* number of agencies */
    kb_agency_t *agencies;        /* the agencies, in file order */
    size_t n_groups;              /* number of groups */
    kb_group_t *groups;           /* the groups, in file order */
    size_t n_rules;               /* number of rules */
    kb_rule_t *rules;             /* the rules, in file order */
    kb_policy_t *policy;          /* index of the rules for decisions (owned) */
    kb_policy_issue_t *lint;      /* the linter's warnings at load, in file order (owned; errors refuse the file) */
    size_t n_lint;                /* their number */
    char sha256[65];              /* hex SHA-256 of the file's bytes */
} kb_conf_t;

/* Defaults for optional broker keys. */
#define KB_CONF_DEFAULT_MAX_MESSAGE  (1024u * 1024u)
#define KB_CONF_DEFAULT_TTL_US       (14LL * 24 * 3600 * 1000000)
#define KB_CONF_DEFAULT_SESSION_US   (10LL * 1000000)
#define KB_CONF_DEFAULT_CP_INTERVAL_US (60LL * 1000000)
#define KB_CONF_DEFAULT_CP_RECORDS   100000u

/* Load and validate; NULL with kb_last_error() = "file:line:col: message".
 * Fails too when kb_policy_lint() at the current time finds an error in the
 * rules (its first error is the message). Same as kb_conf_load_ex(path, 0, NULL). */
kb_conf_t *kb_conf_load(const char *path);

/* As kb_conf_load, with flags: KB_CONF_SKIP_KEYS checks a file without its
 * key files (the curve_cert and signing_key keys must still be given; the
 * agencies then have no keys loaded, so such a conf cannot run a broker).
 * If sha256 is not NULL, it receives the hex SHA-256 of the bytes read,
 * also when the file does not load (so that a refused file can be named),
 * or "" when it could not be read whole (missing, too large, changed while
 * it was read); on success it equals the conf's sha256. */
kb_conf_t *kb_conf_load_ex(const char *path, unsigned flags, char sha256[65]);

/* Refuse an agency of c listed with one of the broker's own public keys:
 * with its signing key, what the broker signs (notices, checkpoints) would
 * pass for that agency's, and what the agency signs for the broker's; with
 * its CURVE key, an adapter would hold the broker's own key pair. sign is
 * the broker's Ed25519 key (private or public) and curve its Z85 CURVE
 * public key; either may be NULL (not checked). key_dir names where the
 * broker's keys are, for the message. KB_ECONFIG with "file:line: agency
 * 'x': ..." naming the agency's entry, or KB_OK. Needs a conf loaded with
 * its keys (not KB_CONF_SKIP_KEYS). */
int kb_conf_check_broker_keys(const kb_conf_t *c, EVP_PKEY *sign, const char *curve, const char *key_dir);

void kb_conf_destroy(kb_conf_t **p);

/* The agency with this id, or NULL. */
const kb_agency_t *kb_conf_agency(const kb_conf_t *c, const char *id);

/* The agency owning this Z85 CURVE public key, or NULL. */
const kb_agency_t *kb_conf_agency_by_curve(const kb_conf_t *c, const char *public_z85);

#endif
