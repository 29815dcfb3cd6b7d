/*
 * cmd_admin.c - `ketenbus status` and `ketenbus reload`: talk to a running
 * broker through its admin socket (ipc://DATA_DIR/admin.sock).
 */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <zmq.h>

#include "cli.h"

#define KB_ADMIN_TIMEOUT_MS 10000 /* reload parses the file; allow for a large one */

static void s_usage(FILE *out, const char *cmd)
{
    if (strcmp(cmd, "status") == 0)
        fprintf(out, "usage: ketenbus status (--data DIR | --admin ENDPOINT) [--json]\n"
                     "\n"
                     "Shows the running broker's uptime, configuration hash, audit size and, per\n"
                     "agency, whether its receiving adapter is connected (adapter online), how many\n"
                     "send-only clients such as `ketenbus send` it has (senders: sessions seen within\n"
                     "session_timeout), and how many messages wait.\n");
    else
        fprintf(out, "usage: ketenbus reload (--data DIR | --admin ENDPOINT)\n"
                     "\n"
                     "Makes the running broker load its configuration file again (as SIGHUP does).\n"
                     "A valid file takes effect for messages submitted after it; a broken one is\n"
                     "refused, its error printed, and the old rules stay in force. Both outcomes are\n"
                     "audited with the file's SHA-256 and the user who asked.\n");
    fprintf(out, "\n"
                 "  --data DIR         the broker's data directory (its admin socket is DIR/admin.sock)\n"
                 "  --admin ENDPOINT   the admin endpoint itself (default: $KETENBUS_ADMIN)\n"
                 "\n"
                 "Exit status: 0 success, 1 failure (refused reload, broker not reachable), 2 usage.\n");
}

/* Send one request and return the parsed answer (NULL after printing why). */
static json_object *s_call(const char *endpoint, json_object *req)
{
    void *ctx = zmq_ctx_new();
    void *s = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    json_object *answer = NULL;
    int zero = 0, timeout = KB_ADMIN_TIMEOUT_MS;
    if (!s || zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout) != 0 || zmq_connect(s, endpoint) != 0) {
        fprintf(stderr, "ketenbus: cannot connect to %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        goto done;
    }
    const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    if (zmq_send(s, text, strlen(text), 0) < 0) {
        fprintf(stderr, "ketenbus: send to %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        goto done;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s, 0) < 0) {
        fprintf(stderr, "ketenbus: no answer from %s within %d s (is ketenbusd running?)\n", endpoint,
                KB_ADMIN_TIMEOUT_MS / 1000);
        zmq_msg_close(&m);
        goto done;
    }
    {
        /* the reply is not NUL-terminated: parse a copy */
        char *copy = strndup(zmq_msg_data(&m), zmq_msg_size(&m));
        answer = copy ? json_tokener_parse(copy) : NULL;
        free(copy);
    }
    zmq_msg_close(&m);
    if (!json_object_is_type(answer, json_type_object)) {
        fprintf(stderr, "ketenbus: malformed answer from %s\n", endpoint);
        json_object_put(answer);
        answer = NULL;
    }
done:
    if (s)
        zmq_close(s);
    if (ctx)
        zmq_ctx_term(ctx);
    return answer;
}

static const char *s_str(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static int64_t s_int(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static int s_ok(json_object *o)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, "ok", &v) && json_object_get_boolean(v);
}

int cmd_admin(int argc, char **argv)
{
    const char *cmd = argv[0];
    static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
                                         {"admin", required_argument, NULL, 'a'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *data = NULL, *admin = getenv("KETENBUS_ADMIN");
    int as_json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:a:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'a': admin = optarg; break;
        case 'j': as_json = 1; break;
        case 'h': s_usage(stdout, cmd); return KB_EXIT_OK;
        default: s_usage(stderr, cmd); return KB_EXIT_USAGE;
        }
    }
    char endpoint[4200];
    if (data)
        snprintf(endpoint, sizeof endpoint, "ipc://%s/admin.sock", data);
    else if (admin)
        snprintf(endpoint, sizeof endpoint, "%s", admin);
    else {
        fprintf(stderr, "ketenbus %s: --data DIR or --admin ENDPOINT is required\n", cmd);
        return KB_EXIT_USAGE;
    }
    if (optind != argc) {
        s_usage(stderr, cmd);
        return KB_EXIT_USAGE;
    }
    json_object *req = json_object_new_object();
    json_object_object_add(req, "command", json_object_new_string(cmd));
    if (strcmp(cmd, "reload") == 0) {
        struct passwd *pw = getpwuid(getuid());
        json_object_object_add(req, "user", json_object_new_string(pw ? pw->pw_name : "unknown"));
        json_object_object_add(req, "pid", json_object_new_int64((int64_t)getpid()));
    }
    json_object *ans = s_call(endpoint, req);
    json_object_put(req);
    if (!ans)
        return KB_EXIT_FAIL;
    int rc = s_ok(ans) ? KB_EXIT_OK : KB_EXIT_FAIL;
    if (as_json) {
        printf("%s\n", json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN));
    } else if (!s_ok(ans)) {
        fprintf(stderr, "ketenbus %s: %s\n", cmd, s_str(ans, "error"));
    } else if (strcmp(cmd, "reload") == 0) {
        printf("reloaded: sha256 %s, %lld agencies, %lld rules\n", s_str(ans, "config_sha256"),
               (long long)s_int(ans, "agencies"), (long long)s_int(ans, "rules"));
    } else {
        printf("broker %s at %s, up %llds\nconfig %s (sha256 %.16s...)\naudit records %lld; accepted %lld, "
               "rejected %lld, delivered %lld since start\n\n%-16s %-9s %7s %8s %9s\n",
               s_str(ans, "broker_id"), s_str(ans, "endpoint"), (long long)s_int(ans, "uptime_s"),
               s_str(ans, "config"), s_str(ans, "config_sha256"), (long long)s_int(ans, "audit_size"),
               (long long)s_int(ans, "accepted"), (long long)s_int(ans, "rejected"),
               (long long)s_int(ans, "delivered"), "agency", "adapter", "senders", "queued", "in flight");
        json_object *list = NULL;
        json_object_object_get_ex(ans, "agencies", &list);
        for (size_t i = 0; list && i < json_object_array_length(list); i++) {
            json_object *a = json_object_array_get_idx(list, i);
            json_object *conn = NULL;
            json_object_object_get_ex(a, "connected", &conn);
            printf("%-16s %-9s %7lld %8lld %9lld\n", s_str(a, "id"), json_object_get_boolean(conn) ? "online" : "offline",
                   (long long)s_int(a, "senders"), (long long)s_int(a, "queued"), (long long)s_int(a, "in_flight"));
        }
    }
    json_object_put(ans);
    return rc;
}
