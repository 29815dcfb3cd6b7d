/*
 * cmd_recv.c - `ketenbus recv`: print received messages as JSON lines.
 *
 * Each message is written to stdout and flushed before it is acknowledged,
 * so a pipeline that stores the lines durably loses nothing: a message whose
 * line was not written is delivered again.
 *
 * --timeout 0 takes what waits for the agency now. Only the broker knows
 * that, and it says so only by delivering it once a session is open: so
 * recv connects, waits for the session (bounded), and takes deliveries
 * until none came for a while (the broker hands out what waits as soon as
 * the session opens, and more as acknowledgements return credit), bounded
 * too, so that a steady stream does not keep it running.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kb_util.h"

#define CLI_NOW_SESSION_MS 10000 /* --timeout 0: how long the broker may take to open the session */
#define CLI_NOW_QUIET_MS   1000  /* --timeout 0: no new message this long after the last (or the
                                  * session's start): what waited has been handed out */
#define CLI_NOW_MAX_MS     10000 /* --timeout 0: stop this long after the session opened in any case */

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: ketenbus recv [CONNECTION] [--count N] [--timeout S] [--no-ack]\n"
            "                     [--signing-keys DIR]\n"
            "\n"
            "Prints each message delivered to the agency as one JSON line (docs/JSON.md)\n"
            "and acknowledges it after the line is written. Also sends messages still\n"
            "waiting in the outbox of the same --state. Only messages that are what\n"
            "their sender signed are printed; any other is reported on stderr\n"
            "(delivery_refused) and stays queued at the broker, except one that cannot\n"
            "be genuine with any key (a notice not from the broker, a message in the\n"
            "broker's name), which is kept in STATE/quarantine/ and acknowledged, also\n"
            "with --no-ack ('ketenbus quarantine' lists them).\n"
            "\n"
            "  --count N     stop after N messages (default: until the timeout)\n"
            "  --timeout S   stop after S seconds (default 10). 0: only what waits at the\n"
            "                broker now: wait up to 10 s for the session, then stop once\n"
            "                1 s passed without a new message (after 10 s at most)\n"
            "  --no-ack      print without acknowledging (they are delivered again)\n"
            "  --signing-keys DIR  the senders' public keys, SENDER.sign.pub.pem (and\n"
            "                SENDER.previous.sign.pub.pem after a key change), and the\n"
            "                broker's broker.sign.pub.pem (default: --keys)\n"
            "                                                 KETENBUS_SIGNING_KEYS\n"
            "\n"
            "%s"
            "\n"
            "Exit status: 0 when --count messages arrived (or, without --count, at the\n"
            "timeout), 1 error, 2 usage, 4 fewer than --count arrived in time (with\n"
            "--timeout 0 also when the broker opened no session within 10 s).\n",
            cli_conn_help);
}

int cmd_recv(int argc, char **argv)
{
    static const struct option opts[] = {{"agency", required_argument, NULL, 'a'},
                                         {"keys", required_argument, NULL, 'k'},
                                         {"broker", required_argument, NULL, 'b'},
                                         {"broker-cert", required_argument, NULL, 'c'},
                                         {"state", required_argument, NULL, 's'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"no-ack", no_argument, NULL, 'N'},
                                         {"signing-keys", required_argument, NULL, 'K'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    cli_conn_t conn = {0};
    int timeout_ms = 10000, no_ack = 0, c;
    long count = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "a:k:b:c:s:n:t:NK:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'a': conn.agency = optarg; break;
        case 'k': conn.keys = optarg; break;
        case 'b': conn.broker = optarg; break;
        case 'c': conn.broker_cert = optarg; break;
        case 's': conn.state = optarg; break;
        case 'v': conn.verbose = 1; break;
        case 'N': no_ack = 1; break;
        case 'K': conn.signing_keys = optarg; break;
        case 'n': {
            char *end = NULL;
            count = strtol(optarg, &end, 10);
            if (!end || *end || count < 1 || count > 100000000) {
                fprintf(stderr, "ketenbus recv: --count: '%s' is not a positive number\n", optarg);
                return KB_EXIT_USAGE;
            }
            break;
        }
        case 't':
            if ((timeout_ms = cli_parse_seconds(optarg)) < 0) {
                fprintf(stderr, "ketenbus recv: --timeout: '%s' is not a number of seconds\n", optarg);
                return KB_EXIT_USAGE;
            }
            break;
        case 'h': s_usage(stdout); return KB_EXIT_OK;
        default: s_usage(stderr); return KB_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        s_usage(stderr);
        return KB_EXIT_USAGE;
    }
    int rc = cli_conn_finish(&conn, "recv");
    if (rc != KB_EXIT_OK)
        return rc;
    ketenbus_client_t *client = cli_connect(&conn, count > 0 && count < 64 ? (unsigned)count : CLI_CREDIT_DEFAULT);
    if (!client)
        return KB_EXIT_FAIL;
    int64_t deadline = kb_mono_ms() + timeout_ms;
    int64_t limit = 0; /* --timeout 0: the latest the quiet deadline may move to */
    long got = 0;
    rc = KB_EXIT_OK;
    if (timeout_ms == 0) {
        /* ask the broker: what waits comes once a session is open */
        int64_t give_up = kb_mono_ms() + CLI_NOW_SESSION_MS;
        while (rc == KB_EXIT_OK && !ketenbus_client_is_connected(client) && kb_mono_ms() < give_up) {
            if (ketenbus_client_poll(client, 100) != KETENBUS_OK) {
                fprintf(stderr, "ketenbus recv: %s\n", ketenbus_last_error());
                rc = KB_EXIT_FAIL;
            }
        }
        if (rc == KB_EXIT_OK && !ketenbus_client_is_connected(client)) {
            fprintf(stderr, "ketenbus recv: the broker opened no session within %d s; nothing was received\n",
                    CLI_NOW_SESSION_MS / 1000);
            rc = KB_EXIT_PENDING;
        }
        int64_t opened = kb_mono_ms();
        deadline = opened + CLI_NOW_QUIET_MS;
        limit = opened + CLI_NOW_MAX_MS;
    }
    while (rc == KB_EXIT_OK && (count < 0 || got < count)) {
        int64_t left = deadline - kb_mono_ms();
        ketenbus_msg_t *m = NULL;
        int r = ketenbus_client_recv(client, &m, left > 0 ? (int)left : 0);
        if (r == KETENBUS_ETIMEDOUT)
            break;
        if (r != KETENBUS_OK) {
            fprintf(stderr, "ketenbus recv: %s\n", ketenbus_last_error());
            rc = KB_EXIT_FAIL;
            break;
        }
        char *json = ketenbus_msg_to_json(m);
        if (!json || printf("%s\n", json) < 0 || fflush(stdout) != 0) {
            fprintf(stderr, "ketenbus recv: cannot write the message; not acknowledged\n");
            free(json);
            ketenbus_msg_destroy(&m);
            rc = KB_EXIT_FAIL;
            break;
        }
        free(json);
        if (!no_ack && ketenbus_client_ack(client, m) != KETENBUS_OK) {
            fprintf(stderr, "ketenbus recv: ack: %s\n", ketenbus_last_error());
            ketenbus_msg_destroy(&m);
            rc = KB_EXIT_FAIL;
            break;
        }
        ketenbus_msg_destroy(&m);
        got++;
        if (limit != 0) /* more may follow as the acknowledgements return credit */
            deadline = kb_mono_ms() + CLI_NOW_QUIET_MS < limit ? kb_mono_ms() + CLI_NOW_QUIET_MS : limit;
    }
    /* give the acknowledgements a moment to leave before closing */
    if (rc == KB_EXIT_OK)
        ketenbus_client_poll(client, 50);
    ketenbus_client_destroy(&client);
    if (rc == KB_EXIT_OK && count > 0 && got < count)
        rc = KB_EXIT_PENDING;
    return rc;
}
