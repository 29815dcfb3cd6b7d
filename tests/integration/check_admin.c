/*
 * check_admin.c - what the admin socket is sent never crashes the broker.
 *
 * The admin socket (ipc://DATA_DIR/admin.sock) is open only to the
 * broker's own user, but what arrives on it is still input: a script with
 * a typo, a tool of another version. A raw DEALER sends every command the
 * broker knows with each of its members set to values of every JSON type
 * (null, booleans, fractions, strings, arrays, objects, integers at and
 * past the limits), and requests that are not JSON objects at all. Every
 * request gets an answer, a JSON object whose "ok" says whether it was
 * done; the broker is still running afterwards and stops cleanly.
 * audit_prune gets no integer before_us but 1, a time before every
 * record: a later one would prune for real.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <json-c/json.h>
#include <unistd.h>
#include <zmq.h>

#include "kb_test.h"

static const char *s_agencies[] = {"politie", "fier"};
static const char *s_rules = "  - id: both-ways\n    from: [politie, fier]\n    to: [politie, fier]\n"
                             "    kinds: [signal]\n"
                             "    purposes: [victim_care, child_protection, criminal_investigation]\n"
                             "    max_handling: h3\n    legal_basis: Wpg art. 19\n";
static kb_chain_t s_chain;
static void *s_ctx, *s_sock;

enum { S_ANSWER_MS = 10000 };

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, s_rules, "");
    kb_chain_start(&s_chain);
    /* records and a checkpoint to read: a message, then a stop and start */
    ketenbus_client_t *pol = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_msg_t *m = kb_test_signal("fier", "for the audit log");
    ketenbus_receipt_t r;
    ck_assert_msg(ketenbus_client_submit(pol, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&pol);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    kb_chain_start(&s_chain);
    char endpoint[600];
    snprintf(endpoint, sizeof endpoint, "ipc://%s/data/admin.sock", s_chain.dir);
    s_ctx = zmq_ctx_new();
    s_sock = zmq_socket(s_ctx, ZMQ_DEALER);
    int t = S_ANSWER_MS, zero = 0;
    zmq_setsockopt(s_sock, ZMQ_RCVTIMEO, &t, sizeof t);
    zmq_setsockopt(s_sock, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_connect(s_sock, endpoint), 0);
}

static void s_teardown(void)
{
    zmq_close(s_sock);
    zmq_ctx_term(s_ctx);
    kb_chain_cleanup(&s_chain);
}

/* Send one request of len bytes and return the "ok" of its answer; fails
 * the test when no answer comes or it is not a JSON object with "ok". */
static int s_ask_len(const char *req, size_t len)
{
    ck_assert_int_eq(zmq_send(s_sock, req, len, 0), (int)len);
    zmq_msg_t m;
    zmq_msg_init(&m);
    int n = zmq_msg_recv(&m, s_sock, 0);
    ck_assert_msg(n >= 0, "no answer to %.200s: %s (broker running: %s)", req, zmq_strerror(zmq_errno()),
                  kill(s_chain.pid, 0) == 0 ? "yes" : "no");
    char *text = strndup(zmq_msg_data(&m), (size_t)n); /* a frame is not terminated */
    ck_assert_ptr_nonnull(text);
    json_object *o = json_tokener_parse(text), *ok = NULL;
    free(text);
    ck_assert_msg(json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "ok", &ok) &&
                      json_object_is_type(ok, json_type_boolean),
                  "answer to %.200s is no {\"ok\": ...}: %.*s", req, n > 300 ? 300 : n, (char *)zmq_msg_data(&m));
    int done = json_object_get_boolean(ok);
    json_object_put(o);
    zmq_msg_close(&m);
    return done;
}

static int s_ask(const char *req)
{
    return s_ask_len(req, strlen(req));
}

/* Values of every JSON type, and integers at and past the edges. */
static const char *const s_values[] = {
    "null", "true", "false", "0", "1", "-1", "1.5", "-0.0", "1e308", "\"\"", "\"x\"", "\"1\"", "\"\\u0000\"",
    "[]", "[null]", "[1,2]", "{}", "{\"a\":null}", "9223372036854775807", "-9223372036854775808",
    "18446744073709551615", "99999999999999999999999",
};
#define S_N_VALUES (sizeof s_values / sizeof s_values[0])

/* Every command and the members it reads. */
static const struct {
    const char *command;
    const char *members[3];
} s_commands[] = {
    {"status", {"verbose"}},
    {"audit_info", {"from"}},
    {"audit_query", {"from", "limit", "filter"}},
    {"audit_records", {"from", "count", "end"}},
    {"audit_leaves", {"from", "count"}},
    {"audit_checkpoints", {"from", "limit"}},
    {"audit_proof", {"index", "size"}},
    {"audit_consistency", {"from", "to"}},
};

static const char *const s_filter_members[] = {"since_us", "until_us", "subjects", "message_id", "agency",
                                               "from",     "to",       "events",   "kinds",      "colour"};

static void s_still_serving(void)
{
    ck_assert_int_eq(kill(s_chain.pid, 0), 0);
    ck_assert_int_eq(s_ask("{\"command\":\"status\"}"), 1);
}

START_TEST(test_every_member_of_every_type)
{
    char req[512];
    int asked = 0;
    for (size_t c = 0; c < sizeof s_commands / sizeof s_commands[0]; c++)
        for (size_t k = 0; k < 3 && s_commands[c].members[k]; k++)
            for (size_t v = 0; v < S_N_VALUES; v++) {
                snprintf(req, sizeof req, "{\"command\":\"%s\",\"%s\":%s}", s_commands[c].command,
                         s_commands[c].members[k], s_values[v]);
                s_ask(req);
                asked++;
            }
    /* each member of a query's filter, alone and with a valid neighbour */
    for (size_t k = 0; k < sizeof s_filter_members / sizeof s_filter_members[0]; k++)
        for (size_t v = 0; v < S_N_VALUES; v++) {
            snprintf(req, sizeof req, "{\"command\":\"audit_query\",\"filter\":{\"%s\":%s}}", s_filter_members[k],
                     s_values[v]);
            s_ask(req);
            snprintf(req, sizeof req,
                     "{\"command\":\"audit_query\",\"limit\":5,\"filter\":{\"agency\":\"fier\",\"%s\":%s}}",
                     s_filter_members[k], s_values[v]);
            s_ask(req);
            asked += 2;
        }
    fprintf(stderr, "admin requests answered: %d\n", asked);
    s_still_serving();
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
}
END_TEST

/* audit_prune with anything but an integer before_us is refused and
 * prunes nothing; so is an unknown kind. */
START_TEST(test_prune_refuses_what_is_no_time)
{
    char req[512];
    for (size_t v = 0; v < S_N_VALUES; v++) {
        const char *x = s_values[v];
        int integer = strspn(x, "-0123456789") == strlen(x);
        if (!integer) {
            snprintf(req, sizeof req, "{\"command\":\"audit_prune\",\"before_us\":%s}", x);
            ck_assert_msg(s_ask(req) == 0, "%s was done", req);
        }
        /* a time before any record: nothing to prune, whatever the kind */
        snprintf(req, sizeof req, "{\"command\":\"audit_prune\",\"before_us\":1,\"kind\":%s}", x);
        s_ask(req);
    }
    ck_assert_int_eq(s_ask("{\"command\":\"audit_prune\"}"), 0);
    s_still_serving();
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=audit_pruned"), 0);
}
END_TEST

/* Requests that are no JSON object with a command, or too large, or
 * nested past the parser's depth. */
START_TEST(test_requests_that_are_no_command)
{
    static const char *const bad[] = {
        "null", "[]", "7", "\"status\"", "{", "{}", "{\"command\":null}", "{\"command\":7}", "{\"command\":[]}",
        "{\"command\":\"\"}", "{\"command\":\"audit_\"}", "{\"command\":\"status\\u0000x\"}",
        "{\"command\":\"status\",\"command\":null}", "{\"command\":\"\xff\xfe\"}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
        "]]]]]]]]]]]]]]]]]]]]",
        "{\"command\":\"audit_query\",\"filter\":{\"agency\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{}}}}}}}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(s_ask(bad[i]) == 0, "%s was done", bad[i]);
    /* an empty request, and one past the size limit */
    ck_assert_int_eq(s_ask_len("", 0), 0);
    enum { BIG = 8192 };
    char *big = malloc(BIG + 1);
    ck_assert_ptr_nonnull(big);
    int n = snprintf(big, BIG + 1, "{\"command\":\"status\",\"pad\":\"");
    memset(big + n, 'x', BIG - (size_t)n - 2);
    memcpy(big + BIG - 2, "\"}", 3);
    ck_assert_int_eq(s_ask_len(big, BIG), 0);
    free(big);
    s_still_serving();
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("admin");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_every_member_of_every_type);
    tcase_add_test(tc, test_prune_refuses_what_is_no_time);
    tcase_add_test(tc, test_requests_that_are_no_command);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
