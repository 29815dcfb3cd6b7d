/*
 * admin.c - the operators' admin socket of ketenbusd.
 *
 * A ROUTER on ipc://DATA_DIR/admin.sock. The socket file is mode 0600 (and
 * the broker runs with umask 077), so only the broker's own user (and root)
 * can connect, whatever the mode of the data directory: the file system is
 * the access control. One JSON object per request, one per answer:
 *   {"command":"status"}          -> uptime, agencies, queues, audit size
 *   {"command":"reload"}          -> the outcome of kb_broker_reload
 *   {"command":"audit_...", ...}  -> admin_audit.c: queries, records,
 *                                    proofs, checkpoints, pruning
 * Who asked for a reload or a prune is recorded from the kernel's account
 * of the connection (SO_PEERCRED: user and process), not from what the
 * request says ("user" and "pid" in it are ignored).
 * Requests are small and answered at once, inside the broker's loop.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <json-c/json.h>
#include <zmq.h>

#include "broker.h"
#include "kb_error.h"
#include "kb_log.h"
#include "kb_util.h"

#define KB_ADMIN_MAX_REQUEST 4096u /* bytes; requests are tiny */

int admin_start(kb_broker_t *b)
{
    if (kb_fmt(b->admin_endpoint, sizeof b->admin_endpoint, "ipc://%s/admin.sock", b->conf->data_dir) != KB_OK)
        return kb_error_set(KB_ETOOBIG, "admin: data_dir path too long for an ipc endpoint");
    b->admin = zmq_socket(b->zctx, ZMQ_ROUTER);
    int zero = 0;
    if (!b->admin || zmq_setsockopt(b->admin, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(b->admin, b->admin_endpoint) != 0)
        return kb_error_set(KB_ENET, "bind %s: %s", b->admin_endpoint, zmq_strerror(zmq_errno()));
    const char *path = b->admin_endpoint + strlen("ipc://");
    if (chmod(path, 0600) != 0)
        return kb_error_set(KB_EIO, "chmod 600 %s: %s", path, strerror(errno));
    return KB_OK;
}

/* "admin socket user NAME (uid N) pid P" of the process that sent msg, as
 * the kernel knows it; "admin socket user unknown" if it cannot say. */
static void s_who(const zmq_msg_t *msg, char *who, size_t cap)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    int fd = zmq_msg_get(msg, ZMQ_SRCFD);
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
        snprintf(who, cap, "admin socket user unknown");
        return;
    }
    struct passwd pw, *found = NULL;
    char buf[1024];
    if (getpwuid_r(cred.uid, &pw, buf, sizeof buf, &found) != 0)
        found = NULL;
    snprintf(who, cap, "admin socket user %.64s (uid %lu) pid %ld", found ? found->pw_name : "?",
             (unsigned long)cred.uid, (long)cred.pid);
}

/* Send-only sessions (e.g. `ketenbus send`) of agency: they submit beside
 * its receiving adapter and are not counted as "connected". */
static size_t s_senders(const kb_broker_t *b, const char *agency)
{
    size_t n = 0;
    if (b->n_sessions == 0)
        return 0;
    for (size_t i = 0; i < KB_MAX_SESSIONS; i++) {
        const kb_session_t *s = &b->sessions[i];
        if (s->rid_len > 0 && s->send_only && strcmp(s->agency, agency) == 0)
            n++;
    }
    return n;
}

static json_object *s_status(kb_broker_t *b)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    json_object_object_add(o, "broker_id", json_object_new_string(b->conf->broker_id));
    json_object_object_add(o, "endpoint", json_object_new_string(b->endpoint));
    json_object_object_add(o, "uptime_s", json_object_new_int64((kb_mono_ms() - b->started_ms) / 1000));
    json_object_object_add(o, "config", json_object_new_string(b->conf_path));
    json_object_object_add(o, "config_sha256", json_object_new_string(b->conf->sha256));
    json_object_object_add(o, "audit_size", json_object_new_int64((int64_t)kb_store_audit_size(b->store)));
    json_object_object_add(o, "accepted", json_object_new_int64((int64_t)b->stat_accepted));
    json_object_object_add(o, "rejected", json_object_new_int64((int64_t)b->stat_rejected));
    json_object_object_add(o, "delivered", json_object_new_int64((int64_t)b->stat_delivered));
    json_object *agencies = json_object_new_array();
    for (size_t i = 0; i < b->conf->n_agencies; i++) {
        const kb_agency_t *a = &b->conf->agencies[i];
        kb_session_t *s = session_active(b, a->id);
        json_object *ao = json_object_new_object();
        json_object_object_add(ao, "id", json_object_new_string(a->id));
        json_object_object_add(ao, "connected", json_object_new_boolean(s != NULL));
        json_object_object_add(ao, "senders", json_object_new_int64((int64_t)s_senders(b, a->id)));
        json_object_object_add(ao, "queued", json_object_new_int64((int64_t)kb_store_queue_depth(b->store, a->id)));
        json_object_object_add(ao, "in_flight", json_object_new_int64(s ? (int64_t)s->n_inflight : 0));
        json_object_object_add(ao, "credit", json_object_new_int64(s ? (int64_t)s->credit : 0));
        json_object_array_add(agencies, ao);
    }
    json_object_object_add(o, "agencies", agencies);
    return o;
}

static json_object *s_reload(kb_broker_t *b, const char *who)
{
    json_object *o = json_object_new_object();
    if (kb_broker_reload(b, who) == KB_OK) {
        json_object_object_add(o, "ok", json_object_new_boolean(1));
        json_object_object_add(o, "config_sha256", json_object_new_string(b->conf->sha256));
        json_object_object_add(o, "agencies", json_object_new_int64((int64_t)b->conf->n_agencies));
        json_object_object_add(o, "rules", json_object_new_int64((int64_t)b->conf->n_rules));
    } else {
        json_object_object_add(o, "ok", json_object_new_boolean(0));
        json_object_object_add(o, "error", json_object_new_string(kb_last_error()));
    }
    return o;
}

static json_object *s_error(const char *message)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string(message));
    return o;
}

/* Answer one request; KB_ETIMEDOUT when none is waiting. */
static int s_one(kb_broker_t *b)
{
    zmq_msg_t rid, body;
    zmq_msg_init(&rid);
    if (zmq_msg_recv(&rid, b->admin, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&rid);
        return KB_ETIMEDOUT;
    }
    zmq_msg_init(&body);
    int parts = 1;
    int more = zmq_msg_more(&rid);
    while (more) {
        zmq_msg_close(&body);
        zmq_msg_init(&body);
        zmq_msg_recv(&body, b->admin, 0);
        more = zmq_msg_more(&body);
        parts++;
    }
    json_object *reply = NULL;
    char who[KB_ADMIN_WHO_MAX];
    s_who(&body, who, sizeof who);
    size_t len = zmq_msg_size(&body);
    if (parts < 2 || len == 0 || len > KB_ADMIN_MAX_REQUEST) {
        reply = s_error("expected one JSON object of at most 4096 bytes");
    } else {
        json_tokener *tok = json_tokener_new_ex(8);
        json_object *req = tok ? json_tokener_parse_ex(tok, zmq_msg_data(&body), (int)len) : NULL;
        json_object *cmd = NULL;
        /* a command with an escaped NUL would compare as its first part */
        if (!json_object_is_type(req, json_type_object) || !json_object_object_get_ex(req, "command", &cmd) ||
            !json_object_is_type(cmd, json_type_string) ||
            strlen(json_object_get_string(cmd)) != (size_t)json_object_get_string_len(cmd))
            reply = s_error("expected {\"command\": \"status\" | \"reload\"}");
        else if (strcmp(json_object_get_string(cmd), "status") == 0)
            reply = s_status(b);
        else if (strcmp(json_object_get_string(cmd), "reload") == 0)
            reply = s_reload(b, who);
        else if (!(reply = admin_audit(b, json_object_get_string(cmd), req, who)))
            reply = s_error("unknown command; expected status, reload or audit_*");
        json_object_put(req);
        if (tok)
            json_tokener_free(tok);
    }
    const char *text = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN);
    if (zmq_send(b->admin, zmq_msg_data(&rid), zmq_msg_size(&rid), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(b->admin, text, strlen(text), ZMQ_DONTWAIT) < 0)
        kb_log(KB_LOG_WARN, "admin_reply_failed", "error=\"%s\"", zmq_strerror(zmq_errno()));
    json_object_put(reply);
    zmq_msg_close(&body);
    zmq_msg_close(&rid);
    return KB_OK;
}

int admin_handle(kb_broker_t *b)
{
    int rc;
    while ((rc = s_one(b)) == KB_OK)
        ;
    return rc == KB_ETIMEDOUT ? KB_OK : rc;
}
