/*
 * cli.h - subcommands of the `ketenbus` command-line tool.
 *
 * Each cmd_<name>(argc, argv) gets the arguments after the subcommand name
 * (argv[0] is the subcommand) and returns the process exit status:
 * 0 success, 1 failure (message on stderr), 2 bad usage, 3 a message was
 * rejected by the broker, 4 no receipt within the timeout (message kept in
 * the outbox).
 */
#ifndef KB_CLI_H
#define KB_CLI_H

#include <stdio.h>

#include "ketenbus.h"

enum { KB_EXIT_OK = 0, KB_EXIT_FAIL = 1, KB_EXIT_USAGE = 2, KB_EXIT_REJECTED = 3, KB_EXIT_PENDING = 4 };

int cmd_keygen(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_recv(int argc, char **argv);
/* quarantine: deliveries the SDK kept as never genuine, from --state */
int cmd_quarantine(int argc, char **argv);
/* status and reload: argv[0] says which */
int cmd_admin(int argc, char **argv);
/* policy check and policy explain: read a chain file, no broker */
int cmd_policy(int argc, char **argv);
/* subject-key: the subject key of an identifier under the chain key, no broker */
int cmd_subject(int argc, char **argv);
/* audit query|export|subject|checkpoint|proof|consistency|verify|prune|report
 * (cmd_audit.c); exit status 3 when verification finds the log altered */
int cmd_audit(int argc, char **argv);

/* Connection options shared by send and recv: flags, else environment. */
typedef struct {
    const char *agency;      /* --agency / KETENBUS_AGENCY */
    const char *keys;        /* --keys / KETENBUS_KEYS */
    const char *broker;      /* --broker / KETENBUS_BROKER */
    const char *broker_cert; /* --broker-cert / KETENBUS_BROKER_CERT */
    const char *state;       /* --state / KETENBUS_STATE */
    const char *signing_keys; /* recv --signing-keys / KETENBUS_SIGNING_KEYS (optional) */
    int verbose;             /* --verbose: SDK log lines on stderr */
} cli_conn_t;

/* Help text for the connection options. */
extern const char *cli_conn_help;

/* Fill unset fields from the environment; print what is missing. */
int cli_conn_finish(cli_conn_t *c, const char *cmd);

#define CLI_CREDIT_DEFAULT 0u          /* the SDK's default delivery credit */
#define CLI_SEND_ONLY      0xffffffffu  /* credit 0: the broker delivers nothing */

/* A connected client for c with the given delivery credit (or one of the
 * two values above); NULL after printing why. */
ketenbus_client_t *cli_connect(const cli_conn_t *c, unsigned credit);

/* Copy in (NULL: "") into out (len bytes), safe for a terminal (tty.c);
 * cut at a character boundary when out is full. Returns out. */
const char *cli_tty(const char *in, char *out, size_t len);

/* A copy of JSON text json (malloc'd; NULL when out of memory) with what
 * cli_tty() replaces written as \u escapes instead (invalid UTF-8 as
 * \ufffd): the same JSON value, valid UTF-8, safe on a terminal. */
char *cli_json_safe(const char *json);

/* Write j as one line of JSON (json-c's flags) through cli_json_safe():
 * json-c escapes C0 but passes DEL, C1 (U+009B is a CSI to a terminal),
 * bidirectional overrides and invalid UTF-8 through, and agencies write
 * those texts. KB_OK, or KB_ENOMEM (also for a NULL j) with nothing
 * written. */
struct json_object;
int cli_json_line(FILE *out, struct json_object *j, int flags);

/* Parse seconds (may be fractional) into ms; -1 if malformed. */
int cli_parse_seconds(const char *text);

#endif
