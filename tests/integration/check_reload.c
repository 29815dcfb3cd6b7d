/*
 * check_reload.c - reloading the rules of a running broker.
 *
 * SIGHUP and `ketenbus reload` put a new configuration in force for messages
 * submitted after it, while a client keeps submitting, and for those still
 * queued when they are delivered: no message is lost, each one the new
 * rules refuse is audited and told to its sender (check_queued_rules.c has
 * the details). A broken
 * file is refused and the broker goes on serving with the old rules.
 * `ketenbus status` shows the running broker. An agency, or a key, taken
 * out of the chain loses the connections it had. The broker id can change
 * neither by reload nor by restart.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <openssl/evp.h>
#include <zmq.h>

#include "kb_error.h"
#include "kb_keys.h"
#include "kb_test.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"

static const char *s_agencies[] = {"politie", "fier"};
/* What each test rule says besides id, from, to and kinds. */
#define S_RULE_REST                                                                                  \
    "    purposes: [victim_care, child_protection, criminal_investigation]\n    max_handling: h3\n" \
    "    legal_basis: Wpg art. 19\n"

static const char *s_rules_open =
    "  - id: politie-fier\n    from: [politie]\n    to: [fier]\n    kinds: [signal]\n" S_RULE_REST;
static const char *s_rules_closed =
    "  - id: fier-politie\n    from: [fier]\n    to: [politie]\n    kinds: [signal]\n" S_RULE_REST;
static kb_chain_t s_chain;
static char s_out[16384];

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, s_rules_open, "");
    kb_chain_start(&s_chain);
    kb_chain_pin_port(&s_chain);
}

static void s_teardown(void)
{
    kb_chain_cleanup(&s_chain);
}

static int s_cli(const char *args)
{
    const char *build = getenv("KB_BUILD");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/ketenbus' %s --data '%s/data' > '%s/cli.out' 2>&1", build ? build : "build", args,
             s_chain.dir, s_chain.dir);
    int st = system(cmd);
    char path[512], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/cli.out", s_chain.dir);
    s_out[0] = '\0';
    if (kb_file_read(path, sizeof s_out - 1, &text, &len) == 0) {
        memcpy(s_out, text, len + 1);
        free(text);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int s_submit(ketenbus_client_t *c, int i)
{
    char text[64];
    snprintf(text, sizeof text, "message %d", i);
    ketenbus_msg_t *m = kb_test_signal("fier", text);
    ketenbus_receipt_t r;
    int rc = ketenbus_client_submit(c, m, &r, 5000);
    ketenbus_msg_destroy(&m);
    ck_assert_msg(rc == KETENBUS_OK || rc == KETENBUS_EREJECTED, "message %d: %s", i, ketenbus_last_error());
    return rc == KETENBUS_OK;
}

START_TEST(test_reload_under_load)
{
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    int accepted = 0;
    for (int i = 0; i < 50; i++) { /* old rules: all allowed */
        ck_assert_int_eq(s_submit(politie, i), 1);
        accepted++;
    }
    kb_chain_set_rules(&s_chain, s_rules_closed);
    kill(s_chain.pid, SIGHUP);
    /* keep submitting while the reload happens */
    int window = 0;
    int64_t deadline = kb_mono_ms() + 10000;
    while (kb_chain_log_count(&s_chain, "event=rules_loaded") < 1 && kb_mono_ms() < deadline) {
        accepted += s_submit(politie, 100 + window);
        window++;
    }
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=rules_loaded"), 1);
    for (int i = 0; i < 30; i++) /* new rules: politie may no longer send to fier */
        ck_assert_int_eq(s_submit(politie, 200 + i), 0);
    ck_assert_int_eq(ketenbus_client_outbox_size(politie), 0);
    ketenbus_client_destroy(&politie);

    /* the accepted messages still queued are decided again when fier
     * comes: the new rules refuse them too, so none arrives, and politie
     * hears of each one */
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_msg_t *m = NULL;
    ck_assert_int_ne(ketenbus_client_recv(fier, &m, 1500), KETENBUS_OK);
    ck_assert_int_ge(accepted, 50);
    politie = kb_chain_client(&s_chain, "politie", NULL);
    for (int i = 0; i < accepted; i++) {
        ck_assert_msg(ketenbus_client_recv(politie, &m, 5000) == KETENBUS_OK, "notice %d of %d: %s", i, accepted,
                      ketenbus_last_error());
        ck_assert_int_eq(ketenbus_msg_kind(m), KETENBUS_KIND_EXPIRY_NOTICE);
        ck_assert_int_eq(ketenbus_client_ack(politie, m), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    ck_assert_int_ne(ketenbus_client_recv(fier, &m, 500), KETENBUS_OK);
    ketenbus_client_destroy(&politie);
    ketenbus_client_destroy(&fier);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    /* start-up load plus one reload, with the file's hash and who asked */
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, "SIGHUP from pid"), 1);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED,
                                          "(decided again at delivery); sender notified"),
                     accepted);
}
END_TEST

/* "sha256=" and the hex SHA-256 of text, as the audit names a file. */
static void s_sha256_of(const char *text, char out[80])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    ck_assert_int_eq(EVP_Digest(text, strlen(text), md, &md_len, EVP_sha256(), NULL), 1);
    ck_assert_uint_eq(md_len, 32);
    memcpy(out, "sha256=", 7);
    kb_hex(md, md_len, out + 7);
}

START_TEST(test_broken_file_keeps_old_rules)
{
    ck_assert_int_eq(s_cli("status"), 0);
    ck_assert_msg(strstr(s_out, "politie") && strstr(s_out, "fier") && strstr(s_out, "offline"), "%s", s_out);
    static const char broken[] = "broker:\n  listen: [this is not\n";
    kb_chain_write_config(&s_chain, broken);
    ck_assert_int_eq(s_cli("reload"), 1);
    ck_assert_msg(strstr(s_out, "chain.yaml:") != NULL, "no file:line in: %s", s_out);
    kill(s_chain.pid, SIGHUP);
    int64_t deadline = kb_mono_ms() + 5000;
    while (kb_chain_log_count(&s_chain, "event=reload_refused") < 2 && kb_mono_ms() < deadline)
        ;
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=reload_refused"), 2);
    /* the old rules still apply */
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_int_eq(s_submit(politie, 1), 1);
    ketenbus_client_destroy(&politie);
    /* a good file again: reload through the admin socket */
    kb_chain_set_rules(&s_chain, s_rules_closed);
    ck_assert_int_eq(s_cli("reload"), 0);
    ck_assert_msg(strstr(s_out, "reloaded: sha256") != NULL, "%s", s_out);
    politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_int_eq(s_submit(politie, 2), 0);
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(s_cli("status --json"), 0);
    ck_assert_msg(strstr(s_out, "\"queued\":1") != NULL, "%s", s_out);
    /* a file that is not there is refused too, and audited as unread */
    char moved[400];
    snprintf(moved, sizeof moved, "%s.moved", s_chain.config);
    ck_assert_int_eq(rename(s_chain.config, moved), 0);
    ck_assert_int_eq(s_cli("reload"), 1);
    ck_assert_int_eq(rename(moved, s_chain.config), 0);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, "refused reload"), 3);
    /* a refused file is named by its SHA-256, as a loaded one is */
    char hash[80];
    s_sha256_of(broken, hash);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, hash), 2);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED,
                                          "; the file could not be read; old rules stay: loading configuration: open "),
                     1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, hash), 2);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, "loaded by admin socket user"), 1);
}
END_TEST

/* Only the broker's own user can open the admin socket, whatever the data
 * directory allows, and what the broker creates is its user's alone. Who
 * asked for a reload is audited as the kernel names the process, not as
 * the request claims. */
START_TEST(test_admin_socket_is_the_brokers_own)
{
    char path[600], endpoint[620];
    snprintf(path, sizeof path, "%s/data/admin.sock", s_chain.dir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/data/CURRENT", s_chain.dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 077, 0);
    snprintf(endpoint, sizeof endpoint, "ipc://%s/data/admin.sock", s_chain.dir);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int timeout = 10000, zero = 0;
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_connect(sock, endpoint), 0);
    const char *req = "{\"command\":\"reload\",\"user\":\"mallory\",\"pid\":1}";
    ck_assert_int_ge(zmq_send(sock, req, strlen(req), 0), 0);
    char buf[4096];
    int n = zmq_recv(sock, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n < (int)sizeof buf - 1 ? n : (int)sizeof buf - 1] = '\0';
    ck_assert_msg(strstr(buf, "\"ok\":true") != NULL, "%s", buf);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    char who[128];
    snprintf(who, sizeof who, "(uid %lu) pid %ld", (unsigned long)getuid(), (long)getpid());
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, who), 1);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, "mallory"), 0);
}
END_TEST

/* A rule about to expire loads, with a warning in the log: once expired,
 * the file would no longer load. */
START_TEST(test_rule_about_to_expire_is_logged)
{
    char until[32], rules[1024];
    kb_time_format(kb_now_us() + 5LL * 86400 * 1000000, until);
    snprintf(rules, sizeof rules, "%s    valid_until: %s\n", s_rules_open, until);
    kb_chain_set_rules(&s_chain, rules);
    ck_assert_int_eq(s_cli("reload"), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=rules_warning"), 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "rule 'politie-fier' expires on"), 1);
    /* the rule still applies */
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_int_eq(s_submit(politie, 1), 1);
    ketenbus_client_destroy(&politie);
}
END_TEST

/* Put fier in the configuration with the CURVE certificate fier_curve
 * (relative to the chain's directory), or leave it out (NULL), and the
 * lines broker_extra under broker:; reload and wait, polling cl, until the
 * broker has loaded it. */
static void s_reconfigure_with(ketenbus_client_t *cl, const char *fier_curve, int loads_before,
                               const char *broker_extra)
{
    char cfg[4096];
    int n = snprintf(cfg, sizeof cfg,
                     "broker:\n  id: test-broker\n  listen: %s\n  data_dir: data\n  key_dir: keys\n%s"
                     "agencies:\n  - id: politie\n    name: Agency politie\n    curve_cert: keys/politie.curve\n"
                     "    signing_key: keys/politie.sign.pub.pem\n",
                     s_chain.endpoint, broker_extra);
    if (fier_curve)
        n += snprintf(cfg + n, sizeof cfg - (size_t)n,
                      "  - id: fier\n    name: Agency fier\n    curve_cert: %s\n"
                      "    signing_key: keys/fier.sign.pub.pem\nrules:\n%s",
                      fier_curve, s_rules_open);
    else
        n += snprintf(cfg + n, sizeof cfg - (size_t)n, "rules: []\n");
    ck_assert_int_lt(n, (int)sizeof cfg);
    kb_chain_write_config(&s_chain, cfg);
    ck_assert_int_eq(kill(s_chain.pid, SIGHUP), 0);
    int64_t deadline = kb_mono_ms() + 10000;
    while (kb_chain_log_count(&s_chain, "event=rules_loaded") <= loads_before && kb_mono_ms() < deadline)
        ketenbus_client_poll(cl, 50);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=rules_loaded"), loads_before + 1);
}

static void s_reconfigure(ketenbus_client_t *cl, const char *fier_curve, int loads_before)
{
    s_reconfigure_with(cl, fier_curve, loads_before, "");
}

/* cl gets nothing, and its adapter's HELLOs are refused: polled until the
 * broker has refused `refusals` of them, and one second more. */
static void s_gets_nothing(ketenbus_client_t *cl, int refusals)
{
    ketenbus_msg_t *m = NULL;
    int64_t deadline = kb_mono_ms() + 10000;
    while (kb_chain_log_count(&s_chain, "HELLO refused") < refusals && kb_mono_ms() < deadline)
        ck_assert_msg(ketenbus_client_recv(cl, &m, 100) != KETENBUS_OK, "a message reached a connection "
                                                                        "whose key is out of the chain");
    ck_assert_int_ge(kb_chain_log_count(&s_chain, "HELLO refused"), refusals);
    ck_assert_int_ne(ketenbus_client_recv(cl, &m, 1000), KETENBUS_OK);
}

/* Receive n messages on cl (each within 5 s), acknowledging them, and
 * check that they are "message 0" .. "message n-1", each once. */
static void s_receive_all(ketenbus_client_t *cl, int n)
{
    int seen[8] = {0};
    ck_assert_int_le(n, 8);
    for (int k = 0; k < n; k++) {
        ketenbus_msg_t *m = NULL;
        ck_assert_msg(ketenbus_client_recv(cl, &m, 5000) == KETENBUS_OK, "message %d of %d: %s", k, n,
                      ketenbus_last_error());
        char *text = ketenbus_msg_get(m, "signal.narrative");
        int i = -1;
        ck_assert_int_eq(sscanf(text, "message %d", &i), 1);
        ck_assert(i >= 0 && i < n && !seen[i]);
        seen[i] = 1;
        free(text);
        ck_assert_int_eq(ketenbus_client_ack(cl, m), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    ketenbus_msg_t *m = NULL;
    ck_assert_int_ne(ketenbus_client_recv(cl, &m, 1000), KETENBUS_OK);
}

/* What the fier adapter logged: how often it said it is out of the chain,
 * and back in. */
static int s_not_in_chain, s_back_in_chain;

static void s_fier_log(int level, const char *line, void *arg)
{
    (void)level;
    (void)arg;
    s_not_in_chain += strstr(line, "event=not_in_chain") != NULL;
    s_back_in_chain += strstr(line, "event=back_in_chain") != NULL;
}

/* An agency taken out of the chain by a reload gets nothing more on the
 * connection it had: ZeroMQ keeps that connection (and the User-Id ZAP
 * gave it), but its session ends and its adapter's HELLOs are refused.
 * Back in the chain, the same connection gets what waited, the message it
 * had in hand and never acknowledged included. */
START_TEST(test_removed_agency_gets_nothing_more)
{
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(s_submit(politie, i), 1);
    ketenbus_client_destroy(&politie);
    s_not_in_chain = s_back_in_chain = 0;
    s_chain.client_log = s_fier_log;
    ketenbus_client_t *fier = kb_chain_client_credit(&s_chain, "fier", NULL, 1);
    ketenbus_msg_t *m = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &m, 5000), KETENBUS_OK);
    ketenbus_msg_destroy(&m); /* in hand, not acknowledged */
    s_reconfigure(fier, NULL, 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "agency removed from the chain configuration"), 1);
    s_gets_nothing(fier, 2);
    /* its adapter asks again after 2 s, then 4 s, ... (not every 0.5 s) */
    ck_assert_int_ne(ketenbus_client_recv(fier, &m, 2500), KETENBUS_OK);
    ck_assert_int_le(kb_chain_log_count(&s_chain, "HELLO refused"), 3);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=session_opened agency=fier"), 1);
    /* the adapter said so once, not at every refusal */
    ck_assert_int_eq(s_not_in_chain, 1);
    ck_assert_int_eq(s_back_in_chain, 0);
    s_reconfigure(fier, "keys/fier.curve", 1);
    s_receive_all(fier, 3);
    ck_assert_int_eq(s_not_in_chain, 1);
    ck_assert_int_eq(s_back_in_chain, 1);
    ketenbus_client_destroy(&fier);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_ge(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECT_REFUSED,
                                          "is no longer fier's in the chain configuration"),
                     2);
}
END_TEST

/* The queue of an agency taken out of the chain stays, but its entries
 * still expire: audited, with the notice to their sender, and not handed
 * to the agency once it is back in the chain. */
START_TEST(test_removed_agency_queue_expires)
{
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    kb_chain_cleanup(&s_chain);
    kb_chain_init(&s_chain, s_agencies, 2, s_rules_open, "  message_ttl: 3s\n");
    kb_chain_start(&s_chain);
    kb_chain_pin_port(&s_chain);
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *m = kb_test_signal("fier", "message 0");
    ketenbus_receipt_t r;
    ck_assert_msg(ketenbus_client_submit(politie, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    /* the files written by the reloads set no message_ttl: the entry keeps
     * the expiry it was queued with */
    s_reconfigure(politie, NULL, 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=expired"), 0); /* fier was out first */
    ck_assert_msg(ketenbus_client_recv(politie, &m, 10000) == KETENBUS_OK, "no expiry notice: %s",
                  ketenbus_last_error());
    ck_assert_int_eq(ketenbus_msg_kind(m), KETENBUS_KIND_EXPIRY_NOTICE);
    char *about = ketenbus_msg_get(m, "correlation_id");
    ck_assert_ptr_nonnull(about);
    ck_assert_str_eq(about, r.message_id);
    free(about);
    ck_assert_int_eq(ketenbus_client_ack(politie, m), KETENBUS_OK);
    ketenbus_msg_destroy(&m);
    s_reconfigure(politie, "keys/fier.curve", 1);
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ck_assert_int_ne(ketenbus_client_recv(fier, &m, 2000), KETENBUS_OK);
    ketenbus_client_destroy(&fier);
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED, NULL), 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=expired sender=politie recipient=fier"), 1);
}
END_TEST

/* An agency's key is replaced (say, its adapter's secret key leaked): the
 * connections made with the old key get nothing more, and an adapter with
 * the new key gets everything that waited. */
START_TEST(test_replaced_key_ends_its_connections)
{
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_int_eq(s_submit(politie, 0), 1);
    ketenbus_client_t *old = kb_chain_client(&s_chain, "fier", "-old");
    ketenbus_msg_t *m = NULL;
    ck_assert_int_eq(ketenbus_client_recv(old, &m, 5000), KETENBUS_OK);
    ketenbus_msg_destroy(&m); /* in hand, not acknowledged */
    char keys2[512];
    snprintf(keys2, sizeof keys2, "%s/keys2", s_chain.dir);
    ck_assert_int_eq(kb_keys_generate(keys2, "fier", 0), KB_OK);
    s_reconfigure(old, "keys2/fier.curve", 0);
    /* sent after the new key is in force */
    ck_assert_int_eq(s_submit(politie, 1), 1);
    ck_assert_int_eq(s_submit(politie, 2), 1);
    ketenbus_client_destroy(&politie);
    s_gets_nothing(old, 2);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "its CURVE key was removed from the chain configuration"), 1);
    /* the adapter with the new key */
    char state[512];
    snprintf(state, sizeof state, "%s/state-fier-new", s_chain.dir);
    ketenbus_client_opts_t *o = ketenbus_client_opts_new();
    ck_assert_int_eq(ketenbus_client_opts_set_agency(o, "fier", keys2), KETENBUS_OK);
    /* keys2 holds fier's own keys only: the senders' public keys are elsewhere */
    ck_assert_int_eq(ketenbus_client_opts_set_signing_keys(o, s_chain.keys), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_broker(o, s_chain.endpoint, s_chain.broker_cert), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_state_dir(o, state), KETENBUS_OK);
    ketenbus_client_t *fresh = ketenbus_client_new(o);
    ketenbus_client_opts_destroy(&o);
    ck_assert_ptr_nonnull(fresh);
    s_receive_all(fresh, 3);
    ck_assert_int_ne(ketenbus_client_recv(old, &m, 500), KETENBUS_OK);
    ketenbus_client_destroy(&fresh);
    ketenbus_client_destroy(&old);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
}
END_TEST

/* Set the value of the broker's key (its first "  key: " line in the
 * chain's file) to value. */
static void s_set_broker_key(const char *key, const char *value)
{
    char *text = NULL, out[65536], line[64];
    size_t len = 0;
    ck_assert_int_eq(kb_file_read(s_chain.config, sizeof out - 1024, &text, &len), KB_OK);
    snprintf(line, sizeof line, "\n  %s: ", key);
    const char *at = strstr(text, line);
    ck_assert_ptr_nonnull(at);
    const char *eol = strchr(at + 1, '\n');
    ck_assert_ptr_nonnull(eol);
    snprintf(out, sizeof out, "%.*s%s%s%s", (int)(at - text), text, line, value, eol);
    free(text);
    kb_chain_write_config(&s_chain, out);
}

/* Replace the broker id the chain's file gives (test-broker) by id. */
static void s_set_broker_id(const char *id)
{
    s_set_broker_key("id", id);
}

/* The broker id names the origin of the audit log's signed checkpoints: a
 * reload that changes it is refused (the old configuration stays), and a
 * broker whose id differs from the one its stored checkpoints were signed
 * under does not start. */
START_TEST(test_broker_id_cannot_change)
{
    s_set_broker_id("other-broker");
    ck_assert_int_eq(s_cli("reload"), 1);
    ck_assert_msg(strstr(s_out, "broker.id changed from 'test-broker' to 'other-broker'") != NULL, "%s", s_out);
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_int_eq(s_submit(politie, 1), 1);
    ketenbus_client_destroy(&politie);
    s_set_broker_id("test-broker");
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0); /* signs a checkpoint as ketenbus/test-broker */
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED,
                                          "broker.id changed from 'test-broker' to 'other-broker'"),
                     1);
    uint64_t size = 0, audit_size = 0;
    kb_chain_checkpoint(&s_chain, &size, &audit_size);

    s_set_broker_id("other-broker");
    ck_assert_int_ne(kb_chain_try_start(&s_chain), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "broker.id is 'other-broker', but the audit log"), 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "signed by broker 'test-broker'"), 1);
    /* under its own id it starts again */
    s_set_broker_id("test-broker");
    kb_chain_start(&s_chain);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
}
END_TEST

/* A reload that turns signature checks off says so: a warning in the log
 * and the reason of its rules_loaded audit record (as a start does). */
START_TEST(test_reload_turning_signatures_off_warns)
{
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=signatures_unchecked"), 0);
    char *text = NULL, out[65536];
    size_t len = 0;
    ck_assert_int_eq(kb_file_read(s_chain.config, sizeof out - 64, &text, &len), KB_OK);
    const char *at = strstr(text, "  key_dir: keys\n");
    ck_assert_ptr_nonnull(at);
    at += strlen("  key_dir: keys\n");
    snprintf(out, sizeof out, "%.*s  verify_signatures: false\n%s", (int)(at - text), text, at);
    free(text);
    kb_chain_write_config(&s_chain, out);
    ck_assert_int_eq(s_cli("reload"), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=signatures_unchecked"), 1);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED,
                                          "verify_signatures is false"),
                     1);
}
END_TEST

/* A reload that shortens checkpoint_interval holds at once: the records
 * written before it are signed within the new interval, not when the old
 * one (a day) has run out. */
START_TEST(test_shorter_checkpoint_interval_holds_at_once)
{
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    kb_chain_cleanup(&s_chain);
    kb_chain_init(&s_chain, s_agencies, 2, s_rules_open, "  checkpoint_interval: 1d\n");
    kb_chain_start(&s_chain);
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_int_eq(s_submit(politie, 0), 1);
    int before = kb_chain_log_count(&s_chain, "event=checkpoint ");
    s_reconfigure_with(politie, "keys/fier.curve", kb_chain_log_count(&s_chain, "event=rules_loaded"),
                       "  checkpoint_interval: 1s\n");
    int64_t deadline = kb_mono_ms() + 5000;
    while (kb_chain_log_count(&s_chain, "event=checkpoint ") == before && kb_mono_ms() < deadline)
        ketenbus_client_poll(politie, 50);
    ck_assert_msg(kb_chain_log_count(&s_chain, "event=checkpoint ") > before,
                  "no checkpoint within 5 s of a reload to checkpoint_interval 1s");
    ketenbus_client_destroy(&politie);
}
END_TEST

/* listen, data_dir and key_dir take a restart: a reload that changes one
 * says so, names it, and says so again at every reload until the file is
 * put back, while the broker goes on where it is. */
START_TEST(test_restart_only_changes_warn_until_undone)
{
    char endpoint[256];
    snprintf(endpoint, sizeof endpoint, "%s", s_chain.endpoint);
    s_set_broker_key("listen", "tcp://127.0.0.1:1");
    for (int i = 1; i <= 2; i++) {
        ck_assert_int_eq(s_cli("reload"), 0);
        ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=reload_partial changed=\"listen\" detail=\"the file "
                                                      "changes listen, which takes a restart"),
                         i);
    }
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_int_eq(s_submit(politie, 1), 1); /* still where it was */
    ketenbus_client_destroy(&politie);
    s_set_broker_key("listen", endpoint); /* put back: nothing to restart for */
    ck_assert_int_eq(s_cli("reload"), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=reload_partial"), 2);
    s_set_broker_key("listen", "tcp://127.0.0.1:*"); /* as the broker started: nothing either */
    ck_assert_int_eq(s_cli("reload"), 0);
    ck_assert_int_eq(s_cli("reload"), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=reload_partial"), 2);
    s_set_broker_key("data_dir", "data2");
    s_set_broker_key("key_dir", "keys2");
    ck_assert_int_eq(s_cli("reload"), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=reload_partial changed=\"data_dir, key_dir\""), 1);
    s_set_broker_key("data_dir", "data");
    ck_assert_int_eq(s_cli("reload"), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=reload_partial changed=\"key_dir\""), 1);
    ck_assert_int_eq(s_cli("status"), 0); /* the admin socket in the data_dir in use */
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=reload_partial"), 4);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
}
END_TEST

/* "chain.yaml:<line>:<column>: " of the first `text` in the chain file. */
static void s_where(const char *text, char *out, size_t size)
{
    char *conf = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_file_read(s_chain.config, 1u << 20, &conf, &len), KB_OK);
    const char *at = strstr(conf, text);
    ck_assert_msg(at != NULL, "'%s' is not in %s", text, s_chain.config);
    int line = 1;
    const char *bol = conf;
    for (const char *p = conf; p < at; p++)
        if (*p == '\n') {
            line++;
            bol = p + 1;
        }
    snprintf(out, size, "chain.yaml:%d:%d: ", line, (int)(at - bol) + 1);
    free(conf);
}

/* An agency listed with the broker's own signing key or CURVE key (a
 * copied key file) is refused at reload, the old configuration staying,
 * and at start, and by policy check --keys; the error names the file,
 * the key's line and column, and the agency. */
START_TEST(test_brokers_own_keys_are_no_agencys)
{
    char where[64], what[160];
    kb_chain_config_replace(&s_chain, "keys/fier.sign.pub.pem", "keys/broker.sign.pub.pem");
    s_where("keys/broker.sign.pub.pem", where, sizeof where);
    snprintf(what, sizeof what, "%sagency 'fier': its signing_key ", where);
    ck_assert_int_eq(s_cli("reload"), 1);
    ck_assert_msg(strstr(s_out, what) && strstr(s_out, "is the broker's own"), "%s lacks %s", s_out, what);
    /* policy check --keys says so too, from the broker's keys in key_dir */
    char out[4096];
    ck_assert_int_eq(kb_chain_cli(&s_chain, out, sizeof out, "policy check --keys chain.yaml"), 1);
    ck_assert_msg(strstr(out, ": agency 'fier': its signing_key ") != NULL, "%s", out);
    ck_assert_int_eq(kb_chain_cli(&s_chain, out, sizeof out, "policy check chain.yaml"), 0); /* keys not read */
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_client_destroy(&fier); /* fier's own keys still hold */
    kb_chain_config_replace(&s_chain, "keys/broker.sign.pub.pem", "keys/fier.sign.pub.pem");
    kb_chain_config_replace(&s_chain, "keys/fier.curve", "keys/broker.curve");
    s_where("keys/broker.curve", where, sizeof where);
    snprintf(what, sizeof what, "%sagency 'fier': CURVE key ", where);
    ck_assert_int_eq(s_cli("reload"), 1);
    ck_assert_msg(strstr(s_out, what) && strstr(s_out, "is the broker's own"), "%s lacks %s", s_out, what);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED,
                                          "is the broker's own"),
                     2);
    /* nor does a broker start with such a file */
    ck_assert_int_ne(kb_chain_try_start(&s_chain), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, ": agency 'fier': CURVE key "), 2); /* reload and start */
    ck_assert_int_eq(kb_chain_cli(&s_chain, out, sizeof out, "policy check --keys chain.yaml"), 1);
    ck_assert_msg(strstr(out, what) != NULL, "%s lacks %s", out, what);
    kb_chain_config_replace(&s_chain, "keys/broker.curve", "keys/fier.curve");
    ck_assert_int_eq(kb_chain_cli(&s_chain, out, sizeof out, "policy check --keys chain.yaml"), 0);
    kb_chain_start(&s_chain);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
}
END_TEST

START_TEST(test_admin_without_broker)
{
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(s_cli("status"), 1);
    ck_assert_msg(strstr(s_out, "is ketenbusd running?") != NULL, "%s", s_out);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("reload");
    TCase *tc = tcase_create("reload");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_reload_under_load);
    tcase_add_test(tc, test_broken_file_keeps_old_rules);
    tcase_add_test(tc, test_admin_without_broker);
    tcase_add_test(tc, test_broker_id_cannot_change);
    tcase_add_test(tc, test_reload_turning_signatures_off_warns);
    tcase_add_test(tc, test_rule_about_to_expire_is_logged);
    tcase_add_test(tc, test_admin_socket_is_the_brokers_own);
    tcase_add_test(tc, test_removed_agency_gets_nothing_more);
    tcase_add_test(tc, test_removed_agency_queue_expires);
    tcase_add_test(tc, test_replaced_key_ends_its_connections);
    tcase_add_test(tc, test_shorter_checkpoint_interval_holds_at_once);
    tcase_add_test(tc, test_restart_only_changes_warn_until_undone);
    tcase_add_test(tc, test_brokers_own_keys_are_no_agencys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
