/*
 * cmd_send.c - `ketenbus send`: submit messages written as JSON.
 *
 * Input is one JSON object, or several as JSON lines, from a file or stdin.
 * The messages are stored in the adapter's outbox (one synced write per
 * batch of KETENBUS_BATCH_MAX) and submitted; one JSON line per receipt
 * goes to stdout. A message without a receipt within the
 * timeout stays in the outbox and goes out with the next run.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "kb_error.h"
#include "kb_json.h"
#include "kb_util.h"

#define KB_SEND_INPUT_MAX (64u * 1024u * 1024u) /* bytes of JSON read at most */

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: ketenbus send [CONNECTION] [--timeout S] [FILE|-]\n"
            "\n"
            "Submits each message in FILE (default: stdin) to the broker and prints one\n"
            "JSON line per receipt: message_id, outcome (accepted, duplicate, rejected,\n"
            "pending) and, unless pending, recipients, audit_index (not when rejected),\n"
            "reason and rule_id (when the broker gave them). An accepted message that\n"
            "the rules kept from some of its recipients says so in reason: \"not sent\n"
            "to: AGENCY ...\". The input is one JSON object or JSON lines, in the form\n"
            "of docs/JSON.md; the SDK fills message_id, sender, created_us, seals and\n"
            "signature. Messages are stored in the outbox in batches of up to 256 (one\n"
            "synced write each); an invalid message stops the run before its batch is\n"
            "stored, and the messages before that batch stay submitted. Its session is\n"
            "send-only: messages waiting for the agency stay queued for its receiving\n"
            "adapter or `ketenbus recv`, which stay connected meanwhile.\n"
            "\n"
            "  --timeout S   seconds to wait for all receipts (default 10); messages\n"
            "                without a receipt stay in the outbox and are sent again by\n"
            "                the next send or recv with the same --state\n"
            "\n"
            "%s"
            "\n"
            "Exit status: 0 all accepted (or duplicates), 1 error, 2 usage, 3 some\n"
            "rejected, 4 some still pending.\n",
            cli_conn_help);
}

static void s_print_receipt(const ketenbus_receipt_t *r, const char *id, int pending)
{
    static const char *names[] = {"pending", "accepted", "duplicate", "rejected"};
    json_object *o = json_object_new_object();
    json_object_object_add(o, "message_id", json_object_new_string(r && r->message_id[0] ? r->message_id : id));
    int outcome = pending || !r ? 0 : (int)r->outcome;
    json_object_object_add(o, "outcome", json_object_new_string(names[outcome >= 0 && outcome <= 3 ? outcome : 0]));
    if (r && !pending) {
        if (r->outcome != KETENBUS_OUTCOME_REJECTED)
            json_object_object_add(o, "audit_index", json_object_new_int64((int64_t)r->audit_index));
        json_object *rec = json_object_new_array();
        char buf[sizeof r->recipients];
        snprintf(buf, sizeof buf, "%s", r->recipients);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_object_array_add(rec, json_object_new_string(t));
        json_object_object_add(o, "recipients", rec);
        if (r->reason[0])
            json_object_object_add(o, "reason", json_object_new_string(r->reason));
        if (r->rule_id[0])
            json_object_object_add(o, "rule_id", json_object_new_string(r->rule_id));
    }
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    fflush(stdout);
    json_object_put(o);
}

int cmd_send(int argc, char **argv)
{
    static const struct option opts[] = {{"agency", required_argument, NULL, 'a'},
                                         {"keys", required_argument, NULL, 'k'},
                                         {"broker", required_argument, NULL, 'b'},
                                         {"broker-cert", required_argument, NULL, 'c'},
                                         {"state", required_argument, NULL, 's'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    cli_conn_t conn = {0};
    int timeout_ms = 10000, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "a:k:b:c:s:t:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'a': conn.agency = optarg; break;
        case 'k': conn.keys = optarg; break;
        case 'b': conn.broker = optarg; break;
        case 'c': conn.broker_cert = optarg; break;
        case 's': conn.state = optarg; break;
        case 'v': conn.verbose = 1; break;
        case 't':
            if ((timeout_ms = cli_parse_seconds(optarg)) < 0) {
                fprintf(stderr, "ketenbus send: --timeout: '%s' is not a number of seconds\n", optarg);
                return KB_EXIT_USAGE;
            }
            break;
        case 'h': s_usage(stdout); return KB_EXIT_OK;
        default: s_usage(stderr); return KB_EXIT_USAGE;
        }
    }
    if (argc - optind > 1) {
        s_usage(stderr);
        return KB_EXIT_USAGE;
    }
    int rc = cli_conn_finish(&conn, "send");
    if (rc != KB_EXIT_OK)
        return rc;
    const char *file = optind < argc ? argv[optind] : "-";
    char *text = NULL;
    size_t len = 0;
    if (strcmp(file, "-") == 0) {
        size_t cap = 0;
        for (;;) {
            if (len + 4096 + 1 > cap) {
                cap = cap ? cap * 2 : 65536;
                if (cap > KB_SEND_INPUT_MAX) {
                    fprintf(stderr, "ketenbus send: stdin: more than %u bytes\n", KB_SEND_INPUT_MAX);
                    free(text);
                    return KB_EXIT_FAIL;
                }
                char *p = realloc(text, cap);
                if (!p) {
                    free(text);
                    fprintf(stderr, "ketenbus send: out of memory\n");
                    return KB_EXIT_FAIL;
                }
                text = p;
            }
            size_t n = fread(text + len, 1, cap - len - 1, stdin);
            len += n;
            if (n == 0)
                break;
        }
        if (!text)
            text = strdup("");
        text[len] = '\0';
    } else if (kb_file_read(file, KB_SEND_INPUT_MAX, &text, &len) != KB_OK) {
        fprintf(stderr, "ketenbus send: %s\n", kb_last_error());
        return KB_EXIT_FAIL;
    }

    /* parse everything first: a typo in message 3 must not half-send the file */
    ketenbus_msg_t **msgs = NULL;
    size_t n_msgs = 0, cap_msgs = 0;
    json_tokener *tok = json_tokener_new_ex(KB_JSON_MAX_DEPTH);
    size_t pos = 0;
    int line = 1;
    rc = KB_EXIT_OK;
    while (pos < len && rc == KB_EXIT_OK) {
        while (pos < len && (text[pos] == ' ' || text[pos] == '\n' || text[pos] == '\t' || text[pos] == '\r')) {
            if (text[pos] == '\n')
                line++;
            pos++;
        }
        if (pos >= len)
            break;
        json_tokener_reset(tok);
        json_object *obj = json_tokener_parse_ex(tok, text + pos, (int)(len - pos));
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        if (!obj || jerr != json_tokener_success) {
            fprintf(stderr, "ketenbus send: %s:%d: invalid JSON: %s\n", file, line,
                    json_tokener_error_desc(jerr == json_tokener_continue ? json_tokener_error_parse_eof : jerr));
            json_object_put(obj);
            rc = KB_EXIT_FAIL;
            break;
        }
        size_t used = (size_t)json_tokener_get_parse_end(tok);
        /* hand the original bytes to the SDK, which refuses duplicate keys
         * and oversized integers that json-c would silently accept */
        char *one = strndup(text + pos, used);
        ketenbus_msg_t *m = NULL;
        if (!one) {
            fprintf(stderr, "ketenbus send: out of memory\n");
            rc = KB_EXIT_FAIL;
        } else if (ketenbus_msg_from_json(one, &m) != KETENBUS_OK) {
            fprintf(stderr, "ketenbus send: %s:%d: %s\n", file, line, ketenbus_last_error());
            rc = KB_EXIT_FAIL;
        } else if (n_msgs == cap_msgs) {
            cap_msgs = cap_msgs ? cap_msgs * 2 : 16;
            ketenbus_msg_t **p = realloc(msgs, cap_msgs * sizeof *p);
            if (!p) {
                ketenbus_msg_destroy(&m);
                rc = KB_EXIT_FAIL;
            } else {
                msgs = p;
            }
        }
        if (m && rc == KB_EXIT_OK)
            msgs[n_msgs++] = m;
        free(one);
        json_object_put(obj);
        for (size_t i = pos; i < pos + used; i++)
            if (text[i] == '\n')
                line++;
        pos += used;
    }
    json_tokener_free(tok);
    free(text);
    if (rc == KB_EXIT_OK && n_msgs == 0) {
        fprintf(stderr, "ketenbus send: %s: no message in the input\n", file);
        rc = KB_EXIT_FAIL;
    }
    ketenbus_client_t *client = rc == KB_EXIT_OK ? cli_connect(&conn, CLI_SEND_ONLY) : NULL;
    if (rc == KB_EXIT_OK && !client)
        rc = KB_EXIT_FAIL;

    /* batches: one synced outbox write per KETENBUS_BATCH_MAX messages */
    int64_t deadline = kb_mono_ms() + timeout_ms;
    int rejected = 0, pending = 0;
    ketenbus_receipt_t *rs = client ? calloc(KETENBUS_BATCH_MAX, sizeof *rs) : NULL;
    if (client && !rs) {
        fprintf(stderr, "ketenbus send: out of memory\n");
        rc = KB_EXIT_FAIL;
    }
    for (size_t at = 0; rs && at < n_msgs; at += KETENBUS_BATCH_MAX) {
        size_t n = n_msgs - at < KETENBUS_BATCH_MAX ? n_msgs - at : KETENBUS_BATCH_MAX;
        int64_t left = deadline - kb_mono_ms();
        int src = ketenbus_client_submit_batch(client, msgs + at, n, rs, left > 0 ? (int)left : 0);
        if (src != KETENBUS_OK && src != KETENBUS_EREJECTED && src != KETENBUS_EPENDING) {
            fprintf(stderr, "ketenbus send: messages %zu to %zu of the input: %s\n", at + 1, at + n,
                    ketenbus_last_error());
            rc = KB_EXIT_FAIL;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            if (rs[i].outcome == KETENBUS_OUTCOME_NONE) {
                s_print_receipt(NULL, ketenbus_msg_id(msgs[at + i]), 1);
                pending++;
            } else {
                s_print_receipt(&rs[i], ketenbus_msg_id(msgs[at + i]), 0);
                rejected += rs[i].outcome == KETENBUS_OUTCOME_REJECTED;
            }
        }
    }
    free(rs);
    ketenbus_client_destroy(&client);
    for (size_t i = 0; i < n_msgs; i++)
        ketenbus_msg_destroy(&msgs[i]);
    free(msgs);
    if (rc != KB_EXIT_OK)
        return rc;
    return rejected ? KB_EXIT_REJECTED : pending ? KB_EXIT_PENDING : KB_EXIT_OK;
}
