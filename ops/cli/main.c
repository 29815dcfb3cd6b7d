/*
 * main.c - the `ketenbus` command-line tool: dispatch to subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: ketenbus COMMAND [OPTIONS]\n"
            "\n"
            "Commands:\n"
            "  keygen       make the key files of an agency or of the broker\n"
            "  send         submit messages written as JSON (file or stdin) and print receipts\n"
            "  recv         print received messages as JSON lines and acknowledge them\n"
            "  quarantine   list deliveries the adapter refused as never genuine, and why\n"
            "  status       show a running broker's sessions, queues and audit size\n"
            "  reload       make a running broker load its configuration again\n"
            "  policy       check a chain file's sharing rules; explain what a rule allows\n"
            "  subject-key  the pseudonym (subject key) of a BSN, name and birth date, phone...\n"
            "  audit        query, export, verify, prove and prune the audit trail; reports\n"
            "\n"
            "Run 'ketenbus COMMAND --help' for the options of a command.\n"
            "The JSON form of messages is described in docs/JSON.md.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return KB_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        s_usage(stdout);
        return KB_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("ketenbus %d.%d.%d\n", KETENBUS_VERSION_MAJOR, KETENBUS_VERSION_MINOR, KETENBUS_VERSION_PATCH);
        return KB_EXIT_OK;
    }
    if (strcmp(cmd, "keygen") == 0)
        return cmd_keygen(argc - 1, argv + 1);
    if (strcmp(cmd, "send") == 0)
        return cmd_send(argc - 1, argv + 1);
    if (strcmp(cmd, "recv") == 0)
        return cmd_recv(argc - 1, argv + 1);
    if (strcmp(cmd, "quarantine") == 0)
        return cmd_quarantine(argc - 1, argv + 1);
    if (strcmp(cmd, "policy") == 0)
        return cmd_policy(argc - 1, argv + 1);
    if (strcmp(cmd, "subject-key") == 0)
        return cmd_subject(argc - 1, argv + 1);
    if (strcmp(cmd, "audit") == 0)
        return cmd_audit(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0)
        return cmd_admin(argc - 1, argv + 1);
    fprintf(stderr, "ketenbus: unknown command '%s'\n\n", cmd);
    s_usage(stderr);
    return KB_EXIT_USAGE;
}
