/*
 * cmd_quarantine.c - `ketenbus quarantine`: list the deliveries the SDK
 * refused as never genuine and kept in the adapter's state directory.
 *
 * Such a delivery (a notice not from the broker, a message in the
 * broker's name, a sender called "broker") was acknowledged after it was
 * kept, so it is no longer in the broker's queue: this is where the
 * agency's IT staff and privacy officer find it, with when and why it was
 * refused. Nothing in it is trusted: text from it is made safe for the
 * terminal, and --json leaves the escaping to the JSON encoder.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kb_codec.h"
#include "kb_json.h"
#include "kb_util.h"
#include "sdk_internal.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: ketenbus quarantine [--state DIR] [--json]\n"
            "\n"
            "Lists the deliveries this adapter refused as never genuine, whatever keys\n"
            "are installed (a notice not from the broker, a message in the broker's\n"
            "name, a sender called 'broker'), which the SDK kept in STATE/quarantine/\n"
            "and then acknowledged. One line each, the oldest refusal first: when it\n"
            "was refused (UTC), sender, message id, kind, why. Deliveries refused for\n"
            "another reason (a bad signature, a missing sender key) are not here: they\n"
            "stay queued at the broker and come again.\n"
            "\n"
            "  --state DIR   the adapter's state directory        KETENBUS_STATE\n"
            "  --json        one JSON object per line instead: file, refused, reason,\n"
            "                problem (if any) and message, the envelope as received\n"
            "                (docs/JSON.md)\n"
            "\n"
            "Exit status: 0 listed (none kept: a note on stderr), 1 an envelope file\n"
            "could not be read (named on stderr; the others are listed), 2 usage.\n");
}

static void s_print_line(const kb_quarantined_t *q)
{
    char refused[3 * sizeof q->refused], sender[3 * sizeof q->sender], reason[3 * sizeof q->reason];
    printf("%s  %s  %s  %s  %s\n", q->refused[0] ? cli_tty(q->refused, refused, sizeof refused) : "?",
           q->sender[0] ? cli_tty(q->sender, sender, sizeof sender) : "-", q->id[0] ? q->id : "-",
           q->readable ? kb_kind_name(q->kind) : "-", q->reason[0] ? cli_tty(q->reason, reason, sizeof reason) : "-");
}

/* One JSON line, the envelope read again (one at a time: each may be
 * large). 0, or -1 when out of memory. */
static int s_print_json(const kb_quarantined_t *q)
{
    json_object *o = json_object_new_object();
    if (!o)
        return -1;
    json_object_object_add(o, "file", json_object_new_string(q->file));
    json_object_object_add(o, "refused", q->refused[0] ? json_object_new_string(q->refused) : NULL);
    json_object_object_add(o, "reason", json_object_new_string(q->reason));
    Ketenbus__Envelope *e = NULL;
    if (q->readable && kb_quarantine_read(q->file, &e) != KB_OK)
        json_object_object_add(o, "problem", json_object_new_string(kb_last_error())); /* changed since listed */
    else if (q->problem[0])
        json_object_object_add(o, "problem", json_object_new_string(q->problem));
    json_object *m = e ? kb_json_from_msg(&e->base) : NULL;
    int rc = e && !m ? -1 : 0;
    if (e)
        ketenbus__envelope__free_unpacked(e, NULL);
    json_object_object_add(o, "message", m);
    if (rc == 0 && cli_json_line(stdout, o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) != KB_OK)
        rc = -1;
    json_object_put(o);
    return rc;
}

int cmd_quarantine(int argc, char **argv)
{
    static const struct option opts[] = {{"state", required_argument, NULL, 's'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *state = NULL;
    int as_json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
        switch (c) {
        case 's': state = optarg; break;
        case 'j': as_json = 1; break;
        case 'h': s_usage(stdout); return KB_EXIT_OK;
        default: s_usage(stderr); return KB_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        s_usage(stderr);
        return KB_EXIT_USAGE;
    }
    if (!state || !*state)
        state = getenv("KETENBUS_STATE");
    if (!state || !*state) {
        fprintf(stderr, "ketenbus quarantine: --state is required (or KETENBUS_STATE)\n");
        return KB_EXIT_USAGE;
    }
    kb_quarantined_t *list = NULL;
    size_t n = 0;
    if (kb_quarantine_list(state, &list, &n) != KB_OK) {
        fprintf(stderr, "ketenbus quarantine: %s\n", kb_last_error());
        return KB_EXIT_FAIL;
    }
    if (n == 0)
        fprintf(stderr, "ketenbus quarantine: no deliveries kept in %s/quarantine\n", state);
    int rc = KB_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        const kb_quarantined_t *q = &list[i];
        if (q->problem[0]) {
            char file[3 * sizeof q->file], problem[3 * sizeof q->problem];
            fprintf(stderr, "ketenbus quarantine: %s: %s\n", cli_tty(q->file, file, sizeof file),
                    cli_tty(q->problem, problem, sizeof problem));
            if (!q->readable)
                rc = KB_EXIT_FAIL;
        }
        if (as_json ? s_print_json(q) != 0 : (s_print_line(q), 0)) {
            fprintf(stderr, "ketenbus quarantine: out of memory\n");
            rc = KB_EXIT_FAIL;
            break;
        }
    }
    free(list);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ketenbus quarantine: cannot write the list\n");
        rc = KB_EXIT_FAIL;
    }
    return rc;
}
