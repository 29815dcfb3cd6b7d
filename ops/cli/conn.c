/*
 * conn.c - connection options shared by `ketenbus send` and `recv`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *cli_conn_help =
    "Connection (each option falls back to the environment variable shown):\n"
    "  --agency ID          agency to act as                 KETENBUS_AGENCY\n"
    "  --keys DIR           directory with ID.curve_secret and ID.sign.pem\n"
    "                                                        KETENBUS_KEYS\n"
    "  --broker ENDPOINT    broker endpoint, e.g. tcp://127.0.0.1:5555\n"
    "                                                        KETENBUS_BROKER\n"
    "  --broker-cert FILE   broker's public CURVE certificate (broker.curve)\n"
    "                                                        KETENBUS_BROKER_CERT\n"
    "  --state DIR          outbox and receive state of this agency's adapter\n"
    "                                                        KETENBUS_STATE\n"
    "  --verbose            print all of the SDK's log lines on stderr (errors are\n"
    "                       printed without it)\n";

static void s_env(const char **field, const char *name)
{
    if (!*field || !**field)
        *field = getenv(name);
}

int cli_conn_finish(cli_conn_t *c, const char *cmd)
{
    s_env(&c->agency, "KETENBUS_AGENCY");
    s_env(&c->keys, "KETENBUS_KEYS");
    s_env(&c->broker, "KETENBUS_BROKER");
    s_env(&c->broker_cert, "KETENBUS_BROKER_CERT");
    s_env(&c->state, "KETENBUS_STATE");
    s_env(&c->signing_keys, "KETENBUS_SIGNING_KEYS");
    const char *missing = !c->agency ? "--agency" : !c->keys ? "--keys" : !c->broker ? "--broker"
                        : !c->broker_cert ? "--broker-cert" : !c->state ? "--state" : NULL;
    if (missing) {
        fprintf(stderr, "ketenbus %s: %s is required (or its environment variable)\n", cmd, missing);
        return KB_EXIT_USAGE;
    }
    return KB_EXIT_OK;
}

/* The SDK's log lines on stderr: errors always (a delivery refused as not
 * genuine, say), the rest with --verbose (arg non-NULL). */
static void s_log(int level, const char *line, void *arg)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (level <= 0 || arg)
        fprintf(stderr, "level=%s %s\n", level >= 0 && level <= 3 ? names[level] : "?", line);
}

ketenbus_client_t *cli_connect(const cli_conn_t *c, unsigned credit)
{
    ketenbus_client_opts_t *o = ketenbus_client_opts_new();
    ketenbus_client_t *client = NULL;
    if (o && ketenbus_client_opts_set_agency(o, c->agency, c->keys) == KETENBUS_OK &&
        ketenbus_client_opts_set_broker(o, c->broker, c->broker_cert) == KETENBUS_OK &&
        ketenbus_client_opts_set_state_dir(o, c->state) == KETENBUS_OK &&
        (!c->signing_keys || ketenbus_client_opts_set_signing_keys(o, c->signing_keys) == KETENBUS_OK) &&
        (credit == CLI_CREDIT_DEFAULT ||
         ketenbus_client_opts_set_credit(o, credit == CLI_SEND_ONLY ? 0 : credit) == KETENBUS_OK) &&
        ketenbus_client_opts_set_log(o, s_log, c->verbose ? (void *)c : NULL) == KETENBUS_OK)
        client = ketenbus_client_new(o);
    if (!client)
        fprintf(stderr, "ketenbus: cannot start the client: %s\n", ketenbus_last_error());
    ketenbus_client_opts_destroy(&o);
    return client;
}

int cli_parse_seconds(const char *text)
{
    char *end = NULL;
    double s = strtod(text, &end);
    if (!end || end == text || *end != '\0' || s < 0 || s > 86400)
        return -1;
    return (int)(s * 1000.0);
}
