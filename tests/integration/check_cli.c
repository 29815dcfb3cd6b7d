/*
 * check_cli.c - the `ketenbus` command-line tool against a real broker.
 *
 * Runs the built binary through /bin/sh with the connection in environment
 * variables, as a script would, and checks exit statuses, receipts, received
 * JSON and error messages, and the listing of quarantined deliveries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <json-c/json.h>

#include "kb_test.h"
#include "kb_util.h"
#include "sdk_internal.h"

/* What each test rule says besides id, from, to and kinds. */
#define S_RULE_REST                                                                                  \
    "    purposes: [victim_care, child_protection, criminal_investigation]\n    max_handling: h3\n" \
    "    legal_basis: Wpg art. 19\n"

static const char *s_agencies[] = {"politie", "rvdk"};
static kb_chain_t s_chain;
static char s_out[65536];

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2,
                  "  - id: politie-rvdk\n    from: [politie]\n    to: [rvdk]\n    kinds: [signal, referral]\n"
                  S_RULE_REST, "");
    kb_chain_start(&s_chain);
}

static void s_teardown(void)
{
    kb_chain_cleanup(&s_chain);
}

/* Run `ketenbus ARGS` as agency (NULL: no connection environment); stdout
 * and stderr go to s_out; returns the exit status. */
static int s_run(const char *agency, const char *args)
{
    const char *build = getenv("KB_BUILD");
    char cmd[4096], outfile[512];
    snprintf(outfile, sizeof outfile, "%s/cli.out", s_chain.dir);
    if (agency)
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && KETENBUS_AGENCY=%s KETENBUS_KEYS=keys KETENBUS_STATE=state-%s "
                 "KETENBUS_BROKER='%s' KETENBUS_BROKER_CERT=keys/broker.curve '%s/ketenbus' %s > cli.out 2>&1",
                 s_chain.dir, agency, agency, s_chain.endpoint, build ? build : "build", args);
    else
        snprintf(cmd, sizeof cmd, "cd '%s' && '%s/ketenbus' %s > cli.out 2>&1", s_chain.dir,
                 build ? build : "build", args);
    int st = system(cmd);
    char *text = NULL;
    size_t len = 0;
    s_out[0] = '\0';
    if (kb_file_read(outfile, sizeof s_out - 1, &text, &len) == 0) {
        memcpy(s_out, text, len + 1);
        free(text);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void s_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_chain.dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static const char *s_signal =
    "{\"recipients\":[\"rvdk\"],\"purpose\":\"child_protection\",\"handling\":\"h1\",\n"
    " \"legal_basis\":{\"basis\":\"Wpg art. 19\",\"consent\":\"not_required\"},\n"
    " \"signal\":{\"exploitation\":\"criminal\",\"minor\":true,\"narrative\":\"seen at the station\"}}\n";

START_TEST(test_keygen)
{
    ck_assert_int_eq(s_run(NULL, "keygen --agency fier --out newkeys"), 0);
    ck_assert_msg(strstr(s_out, "CURVE public key") != NULL, "%s", s_out);
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/newkeys/fier.sign.pem", s_chain.dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/newkeys/fier.curve_secret", s_chain.dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    /* never overwrites */
    ck_assert_int_eq(s_run(NULL, "keygen --agency fier --out newkeys"), 1);
    ck_assert_msg(strstr(s_out, "fier") != NULL, "%s", s_out);
    ck_assert_int_eq(s_run(NULL, "keygen --agency Fier_NL --out newkeys"), 2);
    ck_assert_msg(strstr(s_out, "not a valid agency id") != NULL, "%s", s_out);
    ck_assert_int_eq(s_run(NULL, "keygen --agency broker --out newkeys"), 2);
    ck_assert_msg(strstr(s_out, "the broker's own key files") != NULL, "%s", s_out);
    ck_assert_int_eq(s_run(NULL, "keygen --help"), 0);
    ck_assert_msg(strstr(s_out, "--broker") != NULL, "%s", s_out);
    ck_assert_int_eq(s_run(NULL, "frobnicate"), 2);
    ck_assert_msg(strstr(s_out, "unknown command 'frobnicate'") != NULL, "%s", s_out);
}
END_TEST

START_TEST(test_send_recv)
{
    s_file("signal.json", s_signal);
    ck_assert_int_eq(s_run("politie", "send signal.json"), 0);
    ck_assert_msg(strstr(s_out, "\"outcome\":\"accepted\"") && strstr(s_out, "\"recipients\":[\"rvdk\"]"), "%s",
                  s_out);
    ck_assert_int_eq(s_run("rvdk", "recv --count 1 --timeout 5"), 0);
    ck_assert_msg(strstr(s_out, "\"narrative\":\"seen at the station\"") && strstr(s_out, "\"sender\":\"politie\""),
                  "%s", s_out);
    /* acknowledged: nothing more */
    ck_assert_int_eq(s_run("rvdk", "recv --count 1 --timeout 0.5"), 4);
    /* two messages as JSON lines from stdin */
    ck_assert_int_eq(s_run("politie", "send - < signal.json"), 0);
    s_file("two.jsonl", "{\"recipients\":[\"rvdk\"],\"purpose\":\"child_protection\",\"handling\":\"h1\","
                        "\"legal_basis\":{\"basis\":\"b\",\"consent\":\"not_required\"},"
                        "\"signal\":{\"exploitation\":\"labour\"}}\n"
                        "{\"recipients\":[\"rvdk\"],\"purpose\":\"child_protection\",\"handling\":\"h1\","
                        "\"legal_basis\":{\"basis\":\"b\",\"consent\":\"not_required\"},"
                        "\"signal\":{\"exploitation\":\"sexual\"}}\n");
    ck_assert_int_eq(s_run("politie", "send two.jsonl"), 0);
    int lines = 0;
    for (char *p = s_out; (p = strstr(p, "\"accepted\"")) != NULL; p++)
        lines++;
    ck_assert_int_eq(lines, 2);
    ck_assert_int_eq(s_run("rvdk", "recv --count 3 --timeout 5"), 0);
}
END_TEST

/* `recv --timeout 0` takes what waits at the broker now and stops: it
 * connects and waits for the session (the broker delivers only then),
 * prints what came, and ends once no more comes. Run again, it finds
 * nothing; with --count it says that fewer arrived. */
START_TEST(test_recv_timeout_zero_takes_what_waits)
{
    s_file("signal.json", s_signal);
    ck_assert_int_eq(s_run("politie", "send signal.json"), 0);
    ck_assert_int_eq(s_run("politie", "send signal.json"), 0);
    int64_t start = kb_mono_ms();
    ck_assert_int_eq(s_run("rvdk", "recv --timeout 0"), 0);
    int lines = 0;
    for (char *p = s_out; (p = strstr(p, "\"narrative\":\"seen at the station\"")) != NULL; p++)
        lines++;
    ck_assert_msg(lines == 2, "want both messages: %s", s_out);
    ck_assert_msg(kb_mono_ms() - start < 15000, "recv --timeout 0 took %lld ms", (long long)(kb_mono_ms() - start));
    ck_assert_int_eq(s_run("rvdk", "recv --timeout 0"), 0);
    ck_assert_msg(s_out[0] == '\0', "acknowledged, yet: %s", s_out);
    ck_assert_int_eq(s_run("rvdk", "recv --count 1 --timeout 0"), 4);
    /* no broker: said, and no message */
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_int_eq(s_run("rvdk", "recv --timeout 0"), 4);
    ck_assert_msg(strstr(s_out, "opened no session") != NULL, "%s", s_out);
}
END_TEST

/* `recv` prints only what is proven to be its sender's: without the
 * sender's public key the message is refused, said on stderr, and stays
 * queued; with the key it is printed. */
START_TEST(test_recv_without_sender_key)
{
    s_file("signal.json", s_signal);
    ck_assert_int_eq(s_run("politie", "send signal.json"), 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/only-broker", s_chain.dir);
    ck_assert_int_eq(kb_mkdirs(dir, 0700), 0);
    ck_assert_int_eq(s_run("rvdk", "recv --count 1 --timeout 2 --signing-keys only-broker"), 4);
    ck_assert_msg(strstr(s_out, "level=error event=delivery_refused") && strstr(s_out, "sender=politie") &&
                      strstr(s_out, "only-broker/politie.sign.pub.pem") && !strstr(s_out, "seen at the station"),
                  "%s", s_out);
    ck_assert_int_eq(s_run("rvdk", "recv --count 1 --timeout 5 --signing-keys keys"), 0);
    ck_assert_msg(strstr(s_out, "\"narrative\":\"seen at the station\"") && !strstr(s_out, "delivery_refused"),
                  "%s", s_out);
}
END_TEST

/* `send` opens a send-only session: what waits for the agency is not
 * handed to it (and audited as delivered) only to come again later. */
START_TEST(test_send_takes_no_deliveries)
{
    s_file("signal.json", s_signal);
    ck_assert_int_eq(s_run("politie", "send signal.json"), 0);
    /* rvdk sends (refused: no rule lets it reach politie) while a signal waits for it */
    s_file("back.json", "{\"recipients\":[\"politie\"],\"purpose\":\"child_protection\",\"handling\":\"h1\","
                        "\"legal_basis\":{\"basis\":\"b\",\"consent\":\"not_required\"},"
                        "\"signal\":{\"exploitation\":\"labour\"}}\n");
    ck_assert_int_eq(s_run("rvdk", "send back.json"), 3);
    ck_assert_int_eq(s_run(NULL, "audit query --data data --event delivered --json"), 0);
    ck_assert_msg(strstr(s_out, "delivered") == NULL, "a send session got a delivery: %s", s_out);
    ck_assert_int_eq(s_run("rvdk", "recv --count 1 --timeout 5"), 0);
    ck_assert_int_eq(s_run(NULL, "audit query --data data --event delivered --json"), 0);
    int n = 0;
    for (char *p = s_out; (p = strstr(p, "\"event\":\"delivered\"")) != NULL; p++)
        n++;
    ck_assert_msg(n == 1, "want one delivery: %s", s_out);
}
END_TEST

/* `send --help` names the fields of the receipt lines, and those are the
 * fields printed: recipients a rule kept the message from are named in
 * reason (the receipt of the SDK has no field of its own for them). */
START_TEST(test_send_help_names_the_fields_printed)
{
    static const char *fields[] = {"message_id", "outcome", "audit_index", "recipients", "reason", "rule_id"};
    size_t n_fields = sizeof fields / sizeof fields[0];
    ck_assert_int_eq(s_run(NULL, "send --help"), 0);
    char help[sizeof s_out];
    memcpy(help, s_out, sizeof help);
    for (size_t i = 0; i < n_fields; i++)
        ck_assert_msg(strstr(help, fields[i]) != NULL, "send --help does not name %s", fields[i]);
    ck_assert_msg(strstr(help, "refused") == NULL, "send --help names a field it does not print:\n%s", help);
    /* accepted for rvdk; politie, the sender itself, is refused */
    s_file("two-recipients.json",
           "{\"recipients\":[\"rvdk\",\"politie\"],\"purpose\":\"child_protection\",\"handling\":\"h1\","
           "\"legal_basis\":{\"basis\":\"b\",\"consent\":\"not_required\"},\"signal\":{\"exploitation\":\"labour\"}}\n");
    ck_assert_int_eq(s_run("politie", "send two-recipients.json"), 0);
    json_object *o = json_tokener_parse(s_out);
    ck_assert_msg(o != NULL, "not one JSON line: %s", s_out);
    json_object *reason = NULL;
    ck_assert_msg(json_object_object_get_ex(o, "reason", &reason) &&
                      strstr(json_object_get_string(reason), "not sent to: politie"),
                  "%s", s_out);
    json_object_object_foreach(o, key, value)
    {
        (void)value;
        size_t i = 0;
        while (i < n_fields && strcmp(key, fields[i]) != 0)
            i++;
        ck_assert_msg(i < n_fields, "send printed %s, which its help does not name", key);
    }
    json_object_put(o);
}
END_TEST

START_TEST(test_send_errors)
{
    s_file("bad.json", "{\"purpose\":\"child_protection\",\n \"signl\":{}}\n");
    ck_assert_int_eq(s_run("politie", "send bad.json"), 1);
    ck_assert_msg(strstr(s_out, "bad.json:1:") && strstr(s_out, "signl"), "%s", s_out);
    s_file("broken.json", "{\"purpose\":\n");
    ck_assert_int_eq(s_run("politie", "send broken.json"), 1);
    ck_assert_msg(strstr(s_out, "invalid JSON") != NULL, "%s", s_out);
    /* refused by the rules: exit 3 and the reason */
    s_file("refused.json", "{\"recipients\":[\"politie\"],\"purpose\":\"child_protection\",\"handling\":\"h1\","
                           "\"legal_basis\":{\"basis\":\"b\",\"consent\":\"not_required\"},"
                           "\"signal\":{\"exploitation\":\"labour\"}}");
    ck_assert_int_eq(s_run("rvdk", "send refused.json"), 3);
    ck_assert_msg(strstr(s_out, "\"outcome\":\"rejected\"") && strstr(s_out, "no rule allows"), "%s", s_out);
    /* missing connection settings */
    ck_assert_int_eq(s_run(NULL, "send refused.json"), 2);
    ck_assert_msg(strstr(s_out, "--agency is required") != NULL, "%s", s_out);
}
END_TEST

START_TEST(test_pending_then_sent)
{
    kb_chain_pin_port(&s_chain);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    s_file("signal.json", s_signal);
    ck_assert_int_eq(s_run("politie", "send --timeout 0.5 signal.json"), 4);
    ck_assert_msg(strstr(s_out, "\"outcome\":\"pending\"") != NULL, "%s", s_out);
    kb_chain_start(&s_chain);
    /* the next run with the same state sends what waited in the outbox */
    ck_assert_int_eq(s_run("politie", "recv --timeout 2"), 0);
    ck_assert_int_eq(s_run("rvdk", "recv --count 1 --timeout 5"), 0);
    ck_assert_msg(strstr(s_out, "seen at the station") != NULL, "%s", s_out);
}
END_TEST

/* `quarantine` lists what the SDK kept as never genuine, oldest first, with
 * what the envelopes carry made safe for a terminal; --json gives each as a
 * JSON line; a file that is not an envelope is named, and the rest still
 * listed. The entries are written as the SDK writes them (its scripted
 * broker test, check_sdk_verify, makes them come through a session). */
START_TEST(test_quarantine_list)
{
    ck_assert_int_eq(s_run("rvdk", "quarantine"), 0);
    ck_assert_msg(strstr(s_out, "no deliveries kept in state-rvdk/quarantine"), "%s", s_out);
    char state[512];
    snprintf(state, sizeof state, "%s/state-rvdk", s_chain.dir);
    ketenbus_msg_t *first = kb_test_signal("rvdk", "a notice that is not one");
    ketenbus_msg_t *second = kb_test_signal("rvdk", "in the broker's name");
    uint8_t id[16] = {0x01, 0x89, 0x0a, 0x5d, 0xac, 0x96, 0x77, 0x4b, 0xbc, 0xce, 0xb3, 0x02, 0x09, 0x9a, 0x80, 0x01};
    kb_test_sign_as(&s_chain, first, "politie", id);
    id[15] = 2;
    kb_test_sign_as(&s_chain, second, "politie", id);
    free(second->env->sender);
    second->env->sender = strdup("\x1b]0;pwned\x07" "broker"); /* a terminal title sequence */
    ck_assert_ptr_nonnull(second->env->sender);
    /* the second is kept first: its file name (unknown-...) sorts after
     * the other's (politie-...), its time before */
    char file[PATH_MAX];
    ck_assert_int_eq(kb_quarantine_put(state, second->env, "sender \x1b[2J is not the broker", NULL, 0), KB_OK);
    usleep(2000);
    ck_assert_int_eq(kb_quarantine_put(state, first->env, "a notice from politie, not from the broker", file,
                                       sizeof file),
                     KB_OK);

    ck_assert_int_eq(s_run("rvdk", "quarantine"), 0);
    char *a = strstr(s_out, ketenbus_msg_id(first)), *b = strstr(s_out, ketenbus_msg_id(second));
    ck_assert_msg(a && b && b < a, "not both, oldest first: %s", s_out);
    ck_assert_msg(strstr(s_out, "  politie  ") && strstr(s_out, "  signal  a notice from politie, not from the broker\n"),
                  "%s", s_out);
    ck_assert_msg(!strchr(s_out, '\x1b') && !strchr(s_out, '\x07') && strstr(s_out, "\xef\xbf\xbd]0;pwned"),
                  "control characters reached the terminal: %s", s_out);

    ck_assert_int_eq(s_run("rvdk", "quarantine --json"), 0);
    ck_assert_msg(!strchr(s_out, '\x1b'), "%s", s_out);
    char *line = s_out;
    for (int i = 0; i < 2; i++) {
        char *end = strchr(line, '\n');
        ck_assert_ptr_nonnull(end);
        *end = '\0';
        json_object *o = json_tokener_parse(line);
        ck_assert_msg(o != NULL, "not JSON: %s", line);
        json_object *m = NULL, *v = NULL;
        ck_assert(json_object_object_get_ex(o, "message", &m) && json_object_object_get_ex(m, "signal", &v) &&
                  json_object_object_get_ex(v, "narrative", &v));
        ck_assert_str_eq(json_object_get_string(v), i == 1 ? "a notice that is not one" : "in the broker's name");
        ck_assert(json_object_object_get_ex(o, "reason", &v));
        ck_assert_str_eq(json_object_get_string(v), i == 1 ? "a notice from politie, not from the broker"
                                                           : "sender \x1b[2J is not the broker");
        ck_assert(json_object_object_get_ex(o, "file", &v));
        if (i == 1) /* the CLI ran with --state relative to the chain's directory */
            ck_assert_str_eq(json_object_get_string(v), file + strlen(s_chain.dir) + 1);
        ck_assert(json_object_object_get_ex(o, "refused", &v) && strlen(json_object_get_string(v)) > 20);
        json_object_put(o);
        line = end + 1;
    }
    ck_assert_str_eq(line, "");

    /* a file that is not an envelope: named, the others still listed */
    char junk[PATH_MAX + 32];
    snprintf(junk, sizeof junk, "%s/quarantine/junk.pb", state);
    ck_assert_int_eq(kb_file_write(junk, "\xff\xff\xff", 3, 0600), KB_OK);
    ck_assert_int_eq(s_run("rvdk", "quarantine"), 1);
    ck_assert_msg(strstr(s_out, "junk.pb: not a ketenbus envelope") && strstr(s_out, ketenbus_msg_id(first)) &&
                      strstr(s_out, ketenbus_msg_id(second)),
                  "%s", s_out);
    ketenbus_msg_destroy(&first);
    ketenbus_msg_destroy(&second);
}
END_TEST

/* Whatever lies in the quarantine directory, `quarantine` neither hangs,
 * nor follows links, nor lets control characters through: a reason file
 * with a forged time, a directory and a FIFO named like envelopes (names
 * with escape sequences), a reason file that is a link to another file,
 * and a reason with a C1 control and a byte that is not UTF-8. */
START_TEST(test_quarantine_hostile_files)
{
    char state[512], q[600], path[800];
    snprintf(state, sizeof state, "%s/state-rvdk", s_chain.dir);
    ketenbus_msg_t *m = kb_test_signal("rvdk", "kept");
    uint8_t id[16] = {0x01, 0x89, 0x0a, 0x5d, 0xac, 0x96, 0x77, 0x4b, 0xbc, 0xce, 0xb3, 0x02, 0x09, 0x9a, 0x80, 0x07};
    kb_test_sign_as(&s_chain, m, "politie", id);
    char file[PATH_MAX];
    ck_assert_int_eq(kb_quarantine_put(state, m->env, "C1 \xc2\x9b" "2J and \xff", file, sizeof file), KB_OK);
    snprintf(q, sizeof q, "%s/quarantine", state);
    /* a copy of the envelope whose reason file forges the time */
    char *bytes = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_file_read(file, 1 << 20, &bytes, &len), KB_OK);
    snprintf(path, sizeof path, "%s/forged.pb", q);
    ck_assert_int_eq(kb_file_write(path, bytes, len, 0600), KB_OK);
    snprintf(path, sizeof path, "%s/forged.txt", q);
    const char *forged = "refused \x1b]0;PWNED\x07: why\n";
    ck_assert_int_eq(kb_file_write(path, forged, strlen(forged), 0600), KB_OK);
    /* one whose reason file is a link to a file it must not show */
    snprintf(path, sizeof path, "%s/linked.pb", q);
    ck_assert_int_eq(kb_file_write(path, bytes, len, 0600), KB_OK);
    free(bytes);
    snprintf(path, sizeof path, "%s/secret", s_chain.dir);
    ck_assert_int_eq(kb_file_write(path, "top secret line\n", strlen("top secret line\n"), 0600), KB_OK);
    char link[800];
    snprintf(link, sizeof link, "%s/linked.txt", q);
    ck_assert_int_eq(symlink(path, link), 0);
    /* a directory and a FIFO named like envelopes */
    snprintf(path, sizeof path, "%s/d\x1b[31mRED.pb", q);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/fifo\x1b]0;T\x07.pb", q);
    ck_assert_int_eq(mkfifo(path, 0600), 0);

    ck_assert_int_eq(s_run("rvdk", "quarantine"), 1); /* the directory and the FIFO are no envelopes */
    ck_assert_msg(!strchr(s_out, '\x1b') && !strchr(s_out, '\x07') && !strstr(s_out, "\xc2\x9b") &&
                      !strstr(s_out, "top secret"),
                  "%s", s_out);
    ck_assert_msg(strstr(s_out, "forged.pb: its reason file is not in the SDK's form") &&
                      strstr(s_out, "linked.pb: its reason file: cannot open it") &&
                      strstr(s_out, "RED.pb: not a regular file") && strstr(s_out, ".pb: cannot open it") == NULL,
                  "%s", s_out);
    ck_assert_msg(strstr(s_out, "\xef\xbf\xbd.pb: not a regular file"), "the FIFO: %s", s_out);
    ck_assert_msg(strstr(s_out, "C1 \xef\xbf\xbd" "2J and \xef\xbf\xbd"), "%s", s_out);

    ck_assert_int_eq(s_run("rvdk", "quarantine --json"), 1);
    ck_assert_msg(!strchr(s_out, '\x1b') && !strchr(s_out, '\x07') && !strstr(s_out, "\xc2\x9b") &&
                      !strstr(s_out, "top secret") && strstr(s_out, "C1 \\u009b2J and \\ufffd"),
                  "%s", s_out);
    int objects = 0;
    for (char *line = s_out, *end; (end = strchr(line, '\n')) != NULL; line = end + 1) {
        *end = '\0';
        if (strncmp(line, "{", 1) != 0)
            continue; /* a line on stderr */
        json_object *o = json_tokener_parse(line);
        ck_assert_msg(o != NULL, "not JSON: %s", line);
        json_object_put(o);
        objects++;
    }
    ck_assert_int_eq(objects, 5);
    ketenbus_msg_destroy(&m);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_keygen);
    tcase_add_test(tc, test_send_recv);
    tcase_add_test(tc, test_recv_timeout_zero_takes_what_waits);
    tcase_add_test(tc, test_recv_without_sender_key);
    tcase_add_test(tc, test_send_takes_no_deliveries);
    tcase_add_test(tc, test_send_help_names_the_fields_printed);
    tcase_add_test(tc, test_send_errors);
    tcase_add_test(tc, test_pending_then_sent);
    tcase_add_test(tc, test_quarantine_list);
    tcase_add_test(tc, test_quarantine_hostile_files);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
