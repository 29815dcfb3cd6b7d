/*
 * main.c - ketenbusd, the ketenbus broker.
 *
 *   ketenbusd --config chain.yaml [--ready-file PATH] [--log-level LEVEL]
 *
 * Loads the chain configuration, opens the store, binds the CURVE ROUTER and
 * serves until SIGTERM or SIGINT, then closes sessions, commits, signs a
 * final checkpoint and exits 0 (1 when one of those last writes failed).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "broker.h"
#include "kb_error.h"
#include "kb_log.h"
#include "kb_util.h"

static kb_signals_t s_sig;

static void s_on_stop(int sig)
{
    (void)sig;
    s_sig.stop = 1;
}

static void s_on_hup(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)ctx;
    s_sig.hup_pid = info ? (sig_atomic_t)info->si_pid : 0;
    s_sig.hup_uid = info ? (sig_atomic_t)info->si_uid : 0;
    s_sig.reload = 1;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: ketenbusd --config FILE [--ready-file PATH] [--log-level error|warn|info|debug]\n"
            "\n"
            "The ketenbus broker: routes signed signals and referrals between the agencies\n"
            "of a chain, as far as the sharing rules in FILE allow, keeps every accepted\n"
            "message durable until the recipient acknowledges it, and audits every event.\n"
            "\n"
            "  --config FILE      chain configuration (YAML; see ops/examples/chain.yaml)\n"
            "  --ready-file PATH  once serving, write the bound endpoint to PATH\n"
            "                     (useful with a listen port of '*')\n"
            "  --log-level LEVEL  error, warn, info (default) or debug\n"
            "  --help             this text\n"
            "\n"
            "Logs go to stderr, one key=value line per event. SIGHUP (or `ketenbus reload`)\n"
            "loads FILE again: a valid file takes effect for messages submitted after it, a\n"
            "broken one is refused with the error logged and the old rules stay in force;\n"
            "both are audited. Operators reach the broker through the admin socket\n"
            "ipc://DATA_DIR/admin.sock (`ketenbus status`, `ketenbus reload`), which only\n"
            "the broker's own user (and root) can open: it is mode 0600, and the broker\n"
            "creates every file with umask 077. Who asked for a reload or an audit prune is\n"
            "audited as the kernel names the connecting process (user, uid, pid). SIGTERM or\n"
            "SIGINT stops the broker cleanly. Exit status: 0 after a clean stop, 1 on a\n"
            "startup or fatal error, or when the stop could not write its last audit\n"
            "records or final checkpoint (the message names what was wrong, or lost), 2 on\n"
            "bad usage.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"ready-file", required_argument, NULL, 'r'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *ready = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:r:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'r': ready = optarg; break;
        case 'l': {
            static const char *names[] = {"error", "warn", "info", "debug"};
            int level = -1;
            for (int i = 0; i < 4; i++)
                if (strcmp(optarg, names[i]) == 0)
                    level = i;
            if (level < 0) {
                fprintf(stderr, "ketenbusd: unknown log level '%s'\n", optarg);
                return 2;
            }
            kb_log_set_level(level);
            break;
        }
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (!config || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    /* what the broker creates (its store, the admin socket, the ready file)
     * is for its own user alone: the store holds the chain's messages */
    umask(077);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sigaction hup;
    memset(&hup, 0, sizeof hup);
    hup.sa_sigaction = s_on_hup;
    hup.sa_flags = SA_SIGINFO;
    sigaction(SIGHUP, &hup, NULL);
    signal(SIGPIPE, SIG_IGN);

    kb_broker_t *b = kb_broker_new(config);
    if (!b) {
        fprintf(stderr, "ketenbusd: %s\n", kb_last_error());
        return 1;
    }
    int rc = kb_broker_start(b);
    if (rc == KB_OK && ready) {
        char line[300];
        int n = snprintf(line, sizeof line, "%s\n", b->endpoint);
        rc = kb_file_write(ready, line, (size_t)n, 0644);
    }
    if (rc == KB_OK)
        rc = kb_broker_run(b, &s_sig);
    if (rc != KB_OK)
        fprintf(stderr, "ketenbusd: %s\n", kb_last_error());
    /* a stop that loses audit records is no clean stop */
    if (kb_broker_finish(b) != KB_OK) {
        fprintf(stderr, "ketenbusd: %s\n", kb_last_error());
        rc = KB_EIO;
    }
    kb_broker_destroy(&b);
    return rc == KB_OK ? 0 : 1;
}
