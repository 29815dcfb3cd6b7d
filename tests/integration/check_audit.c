/*
 * check_audit.c - `ketenbus audit` against a real broker.
 *
 * A demo-sized exchange among five agencies (signals and referrals, a
 * redaction, refusals, about two persons) runs through ketenbusd; then:
 *   - queries through the admin socket and offline return exactly what was
 *     sent: counts per sender, recipient and kind, refusals, a message's
 *     lifecycle, a person's records (found by identifier as adapters hash
 *     it), in table, JSON and CSV form; the subject report; the HTML report;
 *   - an agency keeps a checkpoint, more is exchanged, and verify,
 *     consistency and inclusion proofs show the log extends it; the note's
 *     signature checks with plain `openssl pkeyutl -verify`;
 *   - pruning through the admin socket and offline keeps the log verifiable;
 *   - with checkpoint_records 1, what is logged is signed at once, and a
 *     broker with nothing more to log signs nothing more;
 *   - verify through the admin socket of a broker that signs a checkpoint
 *     between any two of its requests, or prunes between two of them,
 *     still verifies (a relay in front of the admin socket has the broker
 *     do so at those moments);
 *   - malformed audit requests on the admin socket are refused, one by one;
 *   - tampering with a copy of a stopped broker's data directory through
 *     LevelDB's C API (a changed byte, a deleted record, swapped records, a
 *     rewritten tail under a checkpoint signed by another key, a truncated
 *     end, a tombstone nobody declared, a change among the newest records)
 *     is detected with the first bad record named, and deleted checkpoint
 *     notes are noticed;
 *   - logs written here through the store, without a broker, give the
 *     shapes no exchange makes on demand: `audit prune --offline` signs
 *     nothing over a log cut below its latest checkpoint or with another
 *     root at its size; a damaged block fails verification (exit 3) with
 *     its first record named, and the report is still written; records
 *     under no checkpoint at all are not verified; tombstone times moved
 *     out of the log's order or past their pruning's cut-off fail
 *     verification at that tombstone; records after the last checkpoint
 *     are said to be not verified, changed or not; proofs are verified
 *     only with every signature checked and every root known, and a
 *     pruned record's leaf is labelled as its tombstone's; the subject
 *     report says what retention per kind pruned; text agencies wrote
 *     reaches terminals without control characters, JSON with them all
 *     escaped, and spreadsheets in either locale without formulas.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <check.h>
#include <json-c/json.h>
#include <leveldb/c.h>
#include <openssl/evp.h>
#include <zmq.h>

#include "audit_block.h"
#include "auditq.h"
#include "checkpoint.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_ldb.h"
#include "kb_merkle.h"
#include "kb_note.h"
#include "kb_test.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"
#include "store.h"

#define ROWS(a) (int)(sizeof(a) / sizeof((a)[0]))
#define OUT_MAX (1u << 20)

static const char *s_agencies[] = {"politie", "rvdk", "fier", "emm", "gem-utrecht"};
#define S_REST                                                                                             \
    "    purposes: [victim_care, child_protection, criminal_investigation, analysis]\n    max_handling: h3\n" \
    "    legal_basis: Wpg art. 19\n"
static const char *s_rules =
    "  - id: fier-politie\n    from: [fier]\n    to: [politie]\n    kinds: [signal]\n" S_REST
    "  - id: politie-signal\n    from: [politie]\n    to: [fier, rvdk]\n    kinds: [signal]\n" S_REST
    "  - id: politie-referral\n    from: [politie]\n    to: [rvdk]\n    kinds: [referral]\n" S_REST
    "  - id: politie-emm\n    from: [politie]\n    to: [emm]\n    kinds: [signal]\n    redact: [signal.narrative]\n" S_REST
    "  - id: no-municipal-requests\n    effect: deny\n    from: [gem-utrecht]\n    to: [politie]\n";
/* checkpoints every 20 records, so a log has many */
static const char *s_broker_extra = "  checkpoint_records: 20\n";

static kb_chain_t s_chain;
static char s_out[OUT_MAX];
static char s_chain_key[400];

#define PERSON_A "bsn=123456782"
#define PERSON_B "name_birth=Lakatos|Ana|2011-03-14"

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 5, s_rules, s_broker_extra);
    snprintf(s_chain_key, sizeof s_chain_key, "%s/chain.key", s_chain.dir);
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 11 + 5);
    ck_assert_int_eq(kb_file_write(s_chain_key, key, sizeof key, 0600), KB_OK);
    kb_chain_start(&s_chain);
}

static void s_teardown(void)
{
    kb_chain_cleanup(&s_chain);
}

/* Run `ketenbus ARGS` in the chain's directory; output in s_out. */
static int s_cli(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int s_cli(const char *fmt, ...)
{
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const char *build = getenv("KB_BUILD");
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/ketenbus' %s > cli.out 2>&1", s_chain.dir, build ? build : "build", args);
    int st = system(cmd);
    char path[512], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/cli.out", s_chain.dir);
    s_out[0] = '\0';
    if (kb_file_read(path, sizeof s_out - 1, &text, &len) == KB_OK) {
        memcpy(s_out, text, len + 1);
        free(text);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The same with its stdout on a terminal: a pseudo-terminal in raw mode,
 * so that the bytes arrive as written; stderr goes to cli.err. */
static int s_cli_tty(const char *args)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    ck_assert_int_ge(master, 0);
    ck_assert_int_eq(grantpt(master), 0);
    ck_assert_int_eq(unlockpt(master), 0);
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    ck_assert_int_ge(slave, 0);
    struct termios t;
    ck_assert_int_eq(tcgetattr(slave, &t), 0);
    cfmakeraw(&t);
    ck_assert_int_eq(tcsetattr(slave, TCSANOW, &t), 0);
    const char *build = getenv("KB_BUILD");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && exec '%s/ketenbus' %s 2>cli.err", s_chain.dir, build ? build : "build", args);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (dup2(slave, STDOUT_FILENO) < 0)
            _exit(127);
        close(slave);
        close(master);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(slave);
    size_t len = 0;
    for (;;) { /* until EIO: the program closed the terminal */
        ssize_t n = read(master, s_out + len, sizeof s_out - 1 - len);
        if (n > 0)
            len += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else
            break;
    }
    s_out[len] = '\0';
    close(master);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ------------------------------------------------------------ the exchange */

static ketenbus_msg_t *s_signal(const char *to, const char *person)
{
    ketenbus_msg_t *m = kb_test_signal(to, "seen at the station with an adult who held her papers");
    kb_test_add_person(m, s_chain_key, person);
    return m;
}

static ketenbus_msg_t *s_referral(const char *to, const char *person)
{
    ketenbus_msg_t *m = kb_test_referral(to);
    kb_test_add_person(m, s_chain_key, person);
    return m;
}

/* Submit; 1 accepted, 0 refused. The message id goes to id (37 bytes). */
static int s_send(ketenbus_client_t *c, ketenbus_msg_t *m, char *id)
{
    ketenbus_receipt_t r;
    int rc = ketenbus_client_submit(c, m, &r, 5000);
    ck_assert_msg(rc == KETENBUS_OK || rc == KETENBUS_EREJECTED, "submit: %s", ketenbus_last_error());
    if (id)
        snprintf(id, 37, "%s", ketenbus_msg_id(m));
    ketenbus_msg_destroy(&m);
    return rc == KETENBUS_OK;
}

/* Receive and acknowledge n messages. */
static void s_drain(const char *agency, int n)
{
    kb_chain_drain(&s_chain, agency, n);
}

/* What was sent: routed records per (sender, recipient, kind). */
typedef struct {
    const char *from, *to, *kind; /* the pair and kind */
    int n;                        /* messages */
} s_flow_t;

static const s_flow_t s_flows[] = {
    {"fier", "politie", "signal", 3},   {"politie", "rvdk", "signal", 2}, {"politie", "rvdk", "referral", 2},
    {"politie", "fier", "signal", 1},   {"politie", "emm", "signal", 2},
};

static char s_message_b[37]; /* a message about person B */

/* The dozen messages: 10 accepted, 2 refused; person A in 8, B in 4. */
static void s_exchange(void)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ketenbus_client_t *gem = kb_chain_client(&s_chain, "gem-utrecht", NULL);
    ck_assert_int_eq(s_send(fier, s_signal("politie", PERSON_A), NULL), 1);
    ck_assert_int_eq(s_send(fier, s_signal("politie", PERSON_A), NULL), 1);
    ck_assert_int_eq(s_send(fier, s_signal("politie", PERSON_B), s_message_b), 1);
    ck_assert_int_eq(s_send(politie, s_signal("rvdk", PERSON_A), NULL), 1);
    ck_assert_int_eq(s_send(politie, s_signal("rvdk", PERSON_A), NULL), 1);
    ck_assert_int_eq(s_send(politie, s_referral("rvdk", PERSON_A), NULL), 1);
    ck_assert_int_eq(s_send(politie, s_referral("rvdk", PERSON_B), NULL), 1);
    ck_assert_int_eq(s_send(politie, s_signal("fier", PERSON_B), NULL), 1);
    ck_assert_int_eq(s_send(politie, s_signal("emm", PERSON_A), NULL), 1);
    ck_assert_int_eq(s_send(politie, s_signal("emm", PERSON_A), NULL), 1);
    ck_assert_int_eq(s_send(gem, s_signal("politie", PERSON_A), NULL), 0);
    ck_assert_int_eq(s_send(gem, s_signal("politie", PERSON_B), NULL), 0);
    ketenbus_client_destroy(&fier);
    ketenbus_client_destroy(&politie);
    ketenbus_client_destroy(&gem);
    s_drain("politie", 3);
    s_drain("rvdk", 4);
    s_drain("fier", 1);
    s_drain("emm", 2);
}

/* ------------------------------------------------------------ JSON lines */

typedef struct {
    json_object *recs[512]; /* parsed lines */
    size_t n;               /* their number */
} s_lines_t;

static void s_lines(s_lines_t *l)
{
    memset(l, 0, sizeof *l);
    char *save = NULL;
    for (char *line = strtok_r(s_out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_object *o = json_tokener_parse(line);
        ck_assert_msg(json_object_is_type(o, json_type_object), "not a JSON line: %s", line);
        ck_assert_uint_lt(l->n, 512);
        l->recs[l->n++] = o;
    }
}

static void s_lines_free(s_lines_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        json_object_put(l->recs[i]);
    l->n = 0;
}

static const char *s_get(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static size_t s_count(const s_lines_t *l, const char *key, const char *value)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += strcmp(s_get(l->recs[i], key), value) == 0;
    return n;
}

/* Routed records per flow equal what was sent, and nothing else. */
static void s_check_flows(const char *source)
{
    ck_assert_msg(s_cli("audit query %s --event routed --json", source) == 0, "%s", s_out);
    s_lines_t l;
    s_lines(&l);
    size_t total = 0;
    for (int f = 0; f < ROWS(s_flows); f++) {
        size_t n = 0;
        for (size_t i = 0; i < l.n; i++)
            n += strcmp(s_get(l.recs[i], "agency"), s_flows[f].from) == 0 &&
                 strcmp(s_get(l.recs[i], "counterpart"), s_flows[f].to) == 0 &&
                 strcmp(s_get(l.recs[i], "kind"), s_flows[f].kind) == 0;
        ck_assert_msg(n == (size_t)s_flows[f].n, "%s: %s -> %s %s: %zu routed, sent %d", source, s_flows[f].from,
                      s_flows[f].to, s_flows[f].kind, n, s_flows[f].n);
        total += n;
    }
    ck_assert_uint_eq(l.n, total);
    /* field names as the proto's; the redaction is recorded */
    ck_assert_uint_eq(s_count(&l, "rule_id", "politie-emm"), 2);
    for (size_t i = 0; i < l.n; i++)
        if (strcmp(s_get(l.recs[i], "counterpart"), "emm") == 0)
            ck_assert_ptr_nonnull(strstr(s_get(l.recs[i], "redacted"), "signal.narrative"));
    s_lines_free(&l);
}

START_TEST(test_queries_match_the_exchange)
{
    s_exchange();
    const char *src = "--data data";
    s_check_flows(src);
    /* refusals: both of the municipality's, by the deny rule */
    ck_assert_int_eq(s_cli("audit query %s --decision refused --json", src), 0);
    s_lines_t l;
    s_lines(&l);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_uint_eq(s_count(&l, "agency", "gem-utrecht"), 2);
    ck_assert_uint_eq(s_count(&l, "counterpart", "politie"), 2);
    ck_assert_uint_eq(s_count(&l, "rule_id", "no-municipal-requests"), 2);
    s_lines_free(&l);
    /* one agency, as sender or recipient */
    ck_assert_int_eq(s_cli("audit query %s --agency emm --json", src), 0);
    s_lines(&l);
    ck_assert_uint_eq(s_count(&l, "event", "routed"), 2);
    ck_assert_uint_eq(s_count(&l, "event", "delivered"), 2);
    ck_assert_uint_eq(s_count(&l, "event", "acknowledged"), 2);
    ck_assert_uint_ge(s_count(&l, "event", "connected"), 1);
    ck_assert_uint_eq(s_count(&l, "event", "received"), 0); /* politie received them */
    s_lines_free(&l);
    /* a pair and a kind */
    ck_assert_int_eq(s_cli("audit query %s --from politie --to rvdk --kind referral --event routed --json", src), 0);
    s_lines(&l);
    ck_assert_uint_eq(l.n, 2);
    s_lines_free(&l);
    /* one message: its whole lifecycle */
    ck_assert_int_eq(s_cli("audit query %s --message %s --json", src, s_message_b), 0);
    s_lines(&l);
    /* the sending agency's client got deliveries it did not acknowledge:
     * a message may be delivered more than once */
    ck_assert_uint_ge(l.n, 4);
    ck_assert_str_eq(s_get(l.recs[0], "event"), "received");
    ck_assert_str_eq(s_get(l.recs[1], "event"), "routed");
    ck_assert_uint_eq(s_count(&l, "event", "delivered"), l.n - 3);
    ck_assert_str_eq(s_get(l.recs[l.n - 1], "event"), "acknowledged");
    s_lines_free(&l);
    /* a person, by identifier: B is in 4 messages (1 refused) */
    ck_assert_int_eq(s_cli("audit query %s --identify '" PERSON_B "' --chain-key chain.key --json", src), 0);
    s_lines(&l);
    ck_assert_uint_eq(s_count(&l, "event", "received"), 3);
    ck_assert_uint_eq(s_count(&l, "event", "routed"), 3);
    ck_assert_uint_ge(s_count(&l, "event", "delivered"), 3);
    ck_assert_uint_eq(s_count(&l, "event", "acknowledged"), 3); /* found through their message */
    ck_assert_uint_eq(s_count(&l, "event", "refused"), 1);
    ck_assert_uint_eq(l.n, 10 + s_count(&l, "event", "delivered"));
    s_lines_free(&l);
    ck_assert_int_eq(s_cli("audit query %s --identify '" PERSON_A "' --chain-key chain.key --decision refused --json",
                           src), 0);
    s_lines(&l);
    ck_assert_uint_eq(l.n, 1);
    s_lines_free(&l);
    /* a wrong identifier is refused without echoing it */
    ck_assert_int_eq(s_cli("audit query %s --identify bsn=123456789 --chain-key chain.key", src), 2);
    ck_assert_ptr_null(strstr(s_out, "123456789"));
    /* CSV: a header and one row per record, quoted per RFC 4180 */
    ck_assert_int_eq(s_cli("audit query %s --decision refused --csv", src), 0);
    ck_assert_ptr_nonnull(strstr(s_out, "index,time_us,event,agency,"));
    ck_assert_ptr_nonnull(strstr(s_out, ",refused,gem-utrecht,"));
    int rows = 0;
    for (char *p = s_out; (p = strstr(p, "\r\n")) != NULL; p += 2)
        rows++;
    ck_assert_int_eq(rows, 3);
    /* the table */
    ck_assert_int_eq(s_cli("audit query %s --agency rvdk", src), 0);
    ck_assert_ptr_nonnull(strstr(s_out, "time (UTC)"));
    ck_assert_ptr_nonnull(strstr(s_out, "politie-referral"));
    /* the article 15 report */
    ck_assert_int_eq(s_cli("audit subject %s --identify '" PERSON_B "' --chain-key chain.key", src), 0);
    ck_assert_msg(strstr(s_out, "4 messages about this person") != NULL, "%s", s_out);
    ck_assert_ptr_nonnull(strstr(s_out, "shared with rvdk under rule politie-referral"));
    ck_assert_ptr_nonnull(strstr(s_out, "REFUSED for politie"));
    ck_assert_ptr_nonnull(strstr(s_out, "stored by fier (acknowledged)"));
    ck_assert_ptr_null(strstr(s_out, "Lakatos"));
    /* export of a period, both forms */
    ck_assert_int_eq(s_cli("audit export %s --format jsonl --since 2000-01-01 --until 2100-01-01 --out all.jsonl", src),
                     0);
    ck_assert_int_eq(s_cli("audit export %s --format csv --out all.csv", src), 0);
    ck_assert_int_eq(s_cli("audit export %s", src), 2); /* --format is required */
    /* the HTML report of the period, with the verification outcome */
    ck_assert_msg(s_cli("audit report %s --key keys/broker.sign.pub.pem --out report.html", src) == 0, "%s", s_out);
    char path[512], *html = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/report.html", s_chain.dir);
    ck_assert_int_eq(kb_file_read(path, 16u << 20, &html, &len), KB_OK);
    ck_assert_ptr_nonnull(strstr(html, "id=\"verification\""));
    ck_assert_ptr_nonnull(strstr(html, "id=\"flow-matrix\""));
    ck_assert_ptr_nonnull(strstr(html, "no-municipal-requests"));
    free(html);
    ck_assert_int_eq(s_cli("audit verify %s --key keys/broker.sign.pub.pem", src), 0);

    /* the same answers from the stopped broker's directory */
    ck_assert_int_eq(s_cli("audit query %s --json", src), 0);
    size_t online = strlen(s_out);
    char *before = strdup(s_out);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    s_check_flows("--offline --data data");
    ck_assert_int_eq(s_cli("audit query --offline --config chain.yaml --json"), 0);
    /* the stop added disconnections and a checkpoint after them */
    ck_assert_uint_gt(strlen(s_out), online);
    ck_assert_int_eq(strncmp(s_out, before, online), 0);
    free(before);
    ck_assert_int_eq(s_cli("audit verify --offline --config chain.yaml"), 0);
    /* usage errors */
    ck_assert_int_eq(s_cli("audit query --offline --data nowhere"), 1);
    ck_assert_int_eq(s_cli("audit verify --data data"), 2); /* no key */
    ck_assert_int_eq(s_cli("audit query --data data --index 3"), 2);
    ck_assert_int_eq(s_cli("audit frobnicate"), 2);
    ck_assert_int_eq(s_cli("audit --help"), 0);
}
END_TEST

/* ------------------------------------------------------------ witnesses */

START_TEST(test_kept_checkpoint_and_proofs)
{
    s_exchange();
    const char *src = "--data data --key keys/broker.sign.pub.pem";
    ck_assert_msg(s_cli("audit checkpoint --data data --out kept.note") == 0, "%s", s_out);
    char path[512], *note = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/kept.note", s_chain.dir);
    ck_assert_int_eq(kb_file_read(path, 8192, &note, &len), KB_OK);
    kb_note_checkpoint_t cp;
    ck_assert_int_eq(kb_note_parse(note, len, &cp), KB_OK);
    free(note);
    ck_assert_uint_ge(cp.size, 20);
    /* more traffic, more checkpoints */
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(s_send(politie, s_signal("fier", PERSON_B), NULL), 1);
    ketenbus_client_destroy(&politie);
    s_drain("fier", 10);

    ck_assert_msg(s_cli("audit verify %s --checkpoint kept.note", src) == 0, "%s", s_out);
    ck_assert_msg(strstr(s_out, "the log extends 1 of 1") != NULL, "%s", s_out);
    ck_assert_msg(strstr(s_out, "pruned") == NULL, "nothing was pruned: %s", s_out);
    ck_assert_msg(s_cli("audit consistency %s --from %llu --checkpoint kept.note", src, (unsigned long long)cp.size) == 0,
                  "%s", s_out);
    ck_assert_ptr_nonnull(strstr(s_out, "the proof holds"));
    ck_assert_msg(s_cli("audit consistency %s --from %llu --json", src, (unsigned long long)cp.size) == 0, "%s", s_out);
    ck_assert_ptr_nonnull(strstr(s_out, "\"verified\":true"));
    ck_assert_msg(s_cli("audit proof %s --index 7", src) == 0, "%s", s_out);
    ck_assert_ptr_nonnull(strstr(s_out, "the proof leads to it"));
    ck_assert_ptr_nonnull(strstr(s_out, "verified with the broker's key"));
    ck_assert_int_eq(s_cli("audit proof %s --index 3 --size %llu --json", src, (unsigned long long)cp.size), 0);
    ck_assert_ptr_nonnull(strstr(s_out, "\"verified\":true"));
    ck_assert_int_eq(s_cli("audit proof %s --index 99999", src), 1);
    /* the note checks with openssl alone, from the documented bytes */
    ck_assert_msg(s_cli("audit checkpoint --note kept.note --key keys/broker.sign.pub.pem --body kept.body --sig "
                        "kept.sig") == 0, "%s", s_out);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && openssl pkeyutl -verify -pubin -inkey keys/broker.sign.pub.pem -rawin -in kept.body "
             "-sigfile kept.sig > openssl.out 2>&1",
             s_chain.dir);
    int st = system(cmd);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "openssl pkeyutl -verify failed");
    /* the signed bytes are the note's first three lines */
    char *body = NULL;
    snprintf(path, sizeof path, "%s/kept.body", s_chain.dir);
    ck_assert_int_eq(kb_file_read(path, 8192, &body, &len), KB_OK);
    char want[200];
    char root64[64];
    EVP_EncodeBlock((unsigned char *)root64, cp.root, 32);
    snprintf(want, sizeof want, "ketenbus/test-broker\n%llu\n%s\n", (unsigned long long)cp.size, root64);
    ck_assert_str_eq(body, want);
    free(body);
    /* a note from another key is not a witness of this log */
    snprintf(cmd, sizeof cmd, "cd '%s' && sed 's/^[0-9][0-9]*$/1/' kept.note > bad.note", s_chain.dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(s_cli("audit verify %s --checkpoint bad.note", src), 3);
    ck_assert_ptr_nonnull(strstr(s_out, "bad.note"));
}
END_TEST

/* ------------------------------------------------------------ retention */

START_TEST(test_prune_then_verify)
{
    /* enough records for full leaf tiles: 80 messages, 4 records each */
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    for (int i = 0; i < 80; i++)
        ck_assert_int_eq(s_send(politie, s_signal("fier", i % 2 ? PERSON_A : PERSON_B), NULL), 1);
    ketenbus_client_destroy(&politie);
    s_drain("fier", 80);
    const char *src = "--data data --key keys/broker.sign.pub.pem";
    char now[32];
    kb_time_format(kb_now_us() + 1000000, now);
    /* checkpoint records stay: verification rests on them */
    ck_assert_int_eq(s_cli("audit query --data data --event checkpoint --until %s --json", now), 0);
    s_lines_t l;
    s_lines(&l);
    size_t kept = 0;
    for (size_t i = 0; i < l.n; i++)
        kept += atoi(s_get(l.recs[i], "index")) < 256;
    s_lines_free(&l);
    ck_assert_uint_gt(kept, 0);
    char want[64];
    ck_assert_msg(s_cli("audit prune --data data --before %s", now) == 0, "%s", s_out);
    snprintf(want, sizeof want, "done: %zu records older than", 256 - kept);
    ck_assert_msg(strstr(s_out, want) != NULL, "want \"%s\" in: %s", want, s_out);
    ck_assert_msg(strstr(s_out, "pruned in [0, 256)") != NULL, "%s", s_out);
    ck_assert_msg(s_cli("audit verify %s", src) == 0, "%s", s_out);
    snprintf(want, sizeof want, "pruned: %zu records in [0, 25", 256 - kept); /* [0, 255) if 255 is kept */
    ck_assert_msg(strstr(s_out, want) != NULL, "want \"%s\" in: %s", want, s_out);
    /* pruned records are gone from queries; the rest stays */
    ck_assert_int_eq(s_cli("audit query --data data --event pruned --json"), 0);
    s_lines(&l);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_str_eq(s_get(l.recs[0], "tag"), "256");
    s_lines_free(&l);
    ck_assert_int_eq(s_cli("audit query --data data --identify '" PERSON_A "' --chain-key chain.key --json"), 0);
    s_lines(&l);
    ck_assert_uint_gt(l.n, 0);
    for (size_t i = 0; i < l.n; i++)
        ck_assert_int_ge(atoi(s_get(l.recs[i], "index")), 256);
    s_lines_free(&l);
    /* again: nothing more is due */
    ck_assert_int_eq(s_cli("audit prune --data data --before %s", now), 0);
    ck_assert_ptr_nonnull(strstr(s_out, "nothing to prune"));
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    /* offline: needs the chain file for the signing key */
    ck_assert_int_eq(s_cli("audit prune --offline --data data --before %s", now), 1);
    ck_assert_int_eq(s_cli("audit prune --offline --config chain.yaml --before %s", now), 0);
    ck_assert_msg(s_cli("audit verify --offline --config chain.yaml") == 0, "%s", s_out);
    ck_assert_int_eq(s_cli("audit report --offline --config chain.yaml --out r.html"), 0);
    /* and the broker starts on a pruned log */
    kb_chain_start(&s_chain);
    ck_assert_int_eq(s_cli("audit verify %s", src), 0);
}
END_TEST

/* ------------------------------------------------------------ admin requests */

/* Malformed audit requests on the admin socket get ok:false, never a crash. */
static const char *s_bad_requests[] = {
    "{\"command\":\"audit_query\",\"limit\":0}",
    "{\"command\":\"audit_query\",\"limit\":100000}",
    "{\"command\":\"audit_query\",\"from\":-1}",
    "{\"command\":\"audit_query\",\"filter\":{\"subjects\":[\"zz\"]}}",
    "{\"command\":\"audit_query\",\"filter\":{\"colour\":1}}",
    "{\"command\":\"audit_query\",\"filter\":[]}",
    "{\"command\":\"audit_records\",\"count\":\"many\"}",
    "{\"command\":\"audit_records\",\"count\":5000}",
    "{\"command\":\"audit_records\",\"end\":-1}",
    "{\"command\":\"audit_leaves\",\"count\":0}",
    "{\"command\":\"audit_checkpoints\",\"limit\":-5}",
    "{\"command\":\"audit_proof\"}",
    "{\"command\":\"audit_proof\",\"index\":5,\"size\":3}",
    "{\"command\":\"audit_proof\",\"index\":1,\"size\":9999999}",
    "{\"command\":\"audit_consistency\",\"from\":10,\"to\":5}",
    "{\"command\":\"audit_prune\"}",
    "{\"command\":\"audit_prune\",\"before_us\":\"yesterday\"}",
    "{\"command\":\"audit_nothing\"}",
};

START_TEST(test_admin_requests_are_checked)
{
    char endpoint[600];
    snprintf(endpoint, sizeof endpoint, "ipc://%s/data/admin.sock", s_chain.dir);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int timeout = 5000, zero = 0;
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_connect(sock, endpoint), 0);
    for (int i = 0; i < ROWS(s_bad_requests); i++) {
        ck_assert_int_ge(zmq_send(sock, s_bad_requests[i], strlen(s_bad_requests[i]), 0), 0);
        char buf[4096];
        int n = zmq_recv(sock, buf, sizeof buf - 1, 0);
        ck_assert_msg(n > 0, "no answer to %s", s_bad_requests[i]);
        buf[n < (int)sizeof buf - 1 ? n : (int)sizeof buf - 1] = '\0';
        ck_assert_msg(strstr(buf, "\"ok\":false") != NULL, "%s -> %s", s_bad_requests[i], buf);
    }
    /* a good one still works */
    const char *good = "{\"command\":\"audit_info\"}";
    ck_assert_int_ge(zmq_send(sock, good, strlen(good), 0), 0);
    char buf[4096];
    int n = zmq_recv(sock, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_msg(strstr(buf, "\"ok\":true") != NULL, "%s", buf);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
}
END_TEST

/* ------------------------------------------------------------ tampering */

static kb_chain_t s_tchain;   /* one stopped broker for all rows */
static uint64_t s_tsize;      /* its records */

static void s_tamper_setup(void)
{
    kb_chain_init(&s_tchain, s_agencies, 5, s_rules, s_broker_extra);
    kb_chain_start(&s_tchain);
    ketenbus_client_t *politie = kb_chain_client(&s_tchain, "politie", NULL);
    for (int i = 0; i < 20; i++) {
        ketenbus_msg_t *m = kb_test_signal(i % 2 ? "fier" : "rvdk", "narrative");
        ketenbus_receipt_t r;
        ck_assert_int_eq(ketenbus_client_submit(politie, m, &r, 5000), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(kb_chain_stop(&s_tchain), 0);
    uint64_t cp = 0;
    kb_chain_checkpoint(&s_tchain, &cp, &s_tsize);
    ck_assert_uint_ge(s_tsize, 45);
}

static void s_tamper_teardown(void)
{
    kb_chain_cleanup(&s_tchain);
}

/* Rewrite record i with another reason, keeping its index: a well-formed record. */
static void s_rewrite(kb_ldb_t *l, uint64_t i, const char *reason)
{
    size_t len;
    char *v = kb_ldb_get_record(l, i, &len);
    Ketenbus__AuditRecord *r = ketenbus__audit_record__unpack(NULL, len, (const uint8_t *)v);
    ck_assert_ptr_nonnull(r);
    leveldb_free(v);
    if (r->reason != protobuf_c_empty_string)
        free(r->reason);
    r->reason = strdup(reason);
    uint8_t buf[8192];
    size_t n = ketenbus__audit_record__pack(r, buf);
    ketenbus__audit_record__free_unpacked(r, NULL);
    kb_ldb_put_record(l, i, buf, n);
}

enum { T_BYTE, T_DELETE, T_SWAP, T_FORGED_TAIL, T_TRUNCATE, T_TOMBSTONE, T_NEWEST, T_NOTES };
#define S_NO_RECORD INT64_MIN /* no record is bad */

static const struct {
    const char *name; /* what was done */
    int what;         /* T_* */
    int64_t at;       /* the first bad record (negative: from the end) */
    const char *says; /* in the outcome */
} s_tamper_rows[] = {
    {"a changed byte", T_BYTE, 17, "does not match the tree signed"},
    {"a deleted record", T_DELETE, 23, "is missing from the log"},
    {"two swapped records", T_SWAP, 10, "moved or swapped"},
    {"a rewritten tail under a checkpoint signed by another key", T_FORGED_TAIL, 30,
     "does not verify with the broker's key"},
    {"records deleted from the end", T_TRUNCATE, -3, "were removed"},
    {"a record hidden as a tombstone", T_TOMBSTONE, 5, "no PRUNED record under a signed checkpoint"},
    {"a changed byte in the newest record under a checkpoint", T_NEWEST, -2, "does not match the tree signed"},
    {"every checkpoint note deleted", T_NOTES, S_NO_RECORD, "no valid note of that size is stored"},
};

START_TEST(test_tampering_is_detected)
{
    int what = s_tamper_rows[_i].what;
    int named = s_tamper_rows[_i].at != S_NO_RECORD;
    uint64_t at = !named ? 0
                  : s_tamper_rows[_i].at >= 0 ? (uint64_t)s_tamper_rows[_i].at
                                              : s_tsize - (uint64_t)(-s_tamper_rows[_i].at);
    char cmd[2048], copy[400];
    snprintf(copy, sizeof copy, "%s/copy-%d", s_tchain.dir, _i);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s/data' '%s'", copy, s_tchain.dir, copy);
    ck_assert_int_eq(system(cmd), 0);
    /* untouched, the copy verifies */
    memcpy(&s_chain, &s_tchain, sizeof s_chain);
    ck_assert_msg(s_cli("audit verify --offline --data copy-%d --key keys/broker.sign.pub.pem", _i) == 0, "%s", s_out);

    kb_ldb_t l;
    kb_ldb_open(&l, copy);
    size_t len;
    char *v;
    switch (what) {
    case T_BYTE:
    case T_NEWEST: /* a byte inside the reason text, so the record still decodes */
        v = kb_ldb_get_record(&l, at, &len);
        v[len - 2] ^= 0x01;
        kb_ldb_put_record(&l, at, v, len);
        leveldb_free(v);
        break;
    case T_DELETE:
        kb_ldb_delete_record(&l, at);
        break;
    case T_SWAP: {
        size_t l2;
        char *a = kb_ldb_get_record(&l, at, &len), *b = kb_ldb_get_record(&l, at + 10, &l2);
        kb_ldb_put_record(&l, at, b, l2);
        kb_ldb_put_record(&l, at + 10, a, len);
        leveldb_free(a);
        leveldb_free(b);
        break;
    }
    case T_FORGED_TAIL: {
        /* rewrite everything from at, recompute the root, and sign it with
         * another key under the broker's name, in place of its checkpoint */
        for (uint64_t i = at; i < s_tsize; i++)
            s_rewrite(&l, i, "nothing happened");
        kb_merkle_acc_t *acc = kb_merkle_acc_new();
        for (uint64_t i = 0; i < s_tsize - 1; i++) {
            v = kb_ldb_get_record(&l, i, &len);
            ck_assert_int_eq(kb_merkle_acc_add(acc, v, len), KB_OK);
            leveldb_free(v);
        }
        uint8_t root[32];
        ck_assert_int_eq(kb_merkle_acc_root(acc, root), KB_OK);
        kb_merkle_acc_destroy(&acc);
        EVP_PKEY *evil = NULL;
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
        ck_assert_int_eq(EVP_PKEY_keygen_init(c), 1);
        ck_assert_int_eq(EVP_PKEY_keygen(c, &evil), 1);
        EVP_PKEY_CTX_free(c);
        char *note = NULL;
        size_t nl = 0;
        ck_assert_int_eq(kb_note_sign("ketenbus/test-broker", s_tsize - 1, root, "ketenbus/test-broker", evil, &note,
                                      &nl),
                         KB_OK);
        uint8_t k[9] = {'k'};
        kb_be64_put(k + 1, s_tsize - 1);
        char *err = NULL;
        leveldb_put(l.db, l.wo, (const char *)k, 9, note, nl, &err);
        ck_assert_ptr_null(err);
        free(note);
        EVP_PKEY_free(evil);
        break;
    }
    case T_TRUNCATE: /* newest first, so that the log ends at at */
        for (uint64_t i = s_tsize; i-- > at;)
            kb_ldb_delete_record(&l, i);
        break;
    case T_TOMBSTONE: {
        /* the right leaf hash, so the roots still agree: only the missing
         * PRUNED declaration gives it away */
        v = kb_ldb_get_record(&l, at, &len);
        uint8_t stone[KB_AUDIT_TOMBSTONE_LEN] = {0, 'P', 2, 0xff};
        kb_be64_put(stone + 4, 1);
        ck_assert_int_eq(kb_merkle_leaf_hash(v, len, stone + 20), KB_OK);
        leveldb_free(v);
        for (uint64_t i = 0; i <= at; i++) { /* a whole prefix, as pruning makes it */
            v = kb_ldb_get_record(&l, i, &len);
            ck_assert_int_eq(kb_merkle_leaf_hash(v, len, stone + 20), KB_OK);
            leveldb_free(v);
            kb_ldb_put_record(&l, i, stone, sizeof stone);
        }
        at = 0;
        break;
    }
    case T_NOTES: {
        leveldb_iterator_t *it = leveldb_create_iterator(l.db, l.ro);
        leveldb_writebatch_t *wb = leveldb_writebatch_create();
        for (leveldb_iter_seek(it, "k", 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
            size_t kl;
            const char *k = leveldb_iter_key(it, &kl);
            if (k[0] != 'k')
                break;
            leveldb_writebatch_delete(wb, k, kl);
        }
        char *err = NULL;
        leveldb_write(l.db, l.wo, wb, &err);
        ck_assert_ptr_null(err);
        leveldb_writebatch_destroy(wb);
        leveldb_iter_destroy(it);
        break;
    }
    }
    kb_ldb_close(&l);
    int rc = s_cli("audit verify --offline --data copy-%d --key keys/broker.sign.pub.pem", _i);
    ck_assert_msg(rc == 3, "%s: exit %d: %s", s_tamper_rows[_i].name, rc, s_out);
    char want[64];
    snprintf(want, sizeof want, "first bad record: %llu\n", (unsigned long long)at);
    if (named)
        ck_assert_msg(strstr(s_out, want) != NULL, "%s: expected \"%s\" in:\n%s", s_tamper_rows[_i].name, want,
                      s_out);
    else
        ck_assert_msg(strstr(s_out, "first bad record") == NULL, "%s", s_out);
    ck_assert_msg(strstr(s_out, s_tamper_rows[_i].says) != NULL, "%s: expected \"%s\" in:\n%s",
                  s_tamper_rows[_i].name, s_tamper_rows[_i].says, s_out);
    /* the JSON form names it too */
    rc = s_cli("audit verify --offline --data copy-%d --key keys/broker.sign.pub.pem --json", _i);
    ck_assert_int_eq(rc, 3);
    snprintf(want, sizeof want, "\"first_bad\":%llu,", (unsigned long long)at);
    if (named)
        ck_assert_msg(strstr(s_out, want) != NULL, "%s", s_out);
    memset(&s_chain, 0, sizeof s_chain);
}
END_TEST

/* A log shorter than its latest signed checkpoint (records lost or cut
 * off behind the broker's back): the broker refuses to start, saying so,
 * and signs no checkpoint over the shorter log on its way out. */
START_TEST(test_broker_refuses_a_log_shorter_than_its_checkpoint)
{
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0); /* signs a checkpoint over the whole log */
    char data[400];
    snprintf(data, sizeof data, "%s/data", s_chain.dir);
    size_t notes = kb_ldb_count_prefix(data, 'k');
    ck_assert_uint_gt(notes, 0);
    uint64_t size = 0, audit_size = 0;
    kb_chain_checkpoint(&s_chain, &size, &audit_size);
    ck_assert_uint_gt(size, 0);
    ck_assert_uint_ge(audit_size, size);
    /* cut the log back to one record short of what the checkpoint covers */
    kb_ldb_t l;
    kb_ldb_open(&l, data);
    for (uint64_t i = audit_size; i-- > size - 1;)
        kb_ldb_delete_record(&l, i);
    kb_ldb_close(&l);
    int st = kb_chain_try_start(&s_chain);
    ck_assert_msg(st == 1, "exit status %d", st);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "latest signed checkpoint covers"), 1);
    ck_assert_uint_eq(kb_ldb_count_prefix(data, 'k'), notes);
}
END_TEST

/* Poll the broker's log until it holds more than n checkpoint lines or
 * timeout_ms passes; the count then. */
static int s_checkpoints_past(int n, int timeout_ms)
{
    int64_t deadline = kb_mono_ms() + timeout_ms;
    int got = kb_chain_log_count(&s_chain, "event=checkpoint ");
    while (got <= n && kb_mono_ms() < deadline) {
        usleep(20 * 1000);
        got = kb_chain_log_count(&s_chain, "event=checkpoint ");
    }
    return got;
}

/* With checkpoint_records 1 a checkpoint follows every record logged, but
 * not its own CHECKPOINT record: a broker with nothing to log signs
 * nothing more, however many turns its loop makes. */
START_TEST(test_idle_broker_signs_no_more_checkpoints)
{
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    kb_chain_cleanup(&s_chain);
    kb_chain_init(&s_chain, s_agencies, 5, s_rules, "  checkpoint_records: 1\n");
    kb_chain_start(&s_chain);
    /* the start's rules_loaded record is signed at once */
    int signed_at_start = s_checkpoints_past(0, 5000);
    ck_assert_int_ge(signed_at_start, 1);
    /* each admin request is answered in a turn of the loop */
    for (int i = 0; i < 5; i++)
        ck_assert_msg(s_cli("status --data data") == 0, "%s", s_out);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=checkpoint "), signed_at_start);
    /* records logged are signed at once, and then nothing more: the
     * receipt leaves in the turn that signs them, so the status answered
     * after it finds them signed */
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    ck_assert_int_eq(s_send(politie, kb_test_signal("fier", "seen at the station"), NULL), 1);
    ck_assert_msg(s_cli("status --data data") == 0, "%s", s_out);
    int after_send = kb_chain_log_count(&s_chain, "event=checkpoint ");
    ck_assert_int_gt(after_send, signed_at_start);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(s_cli("status --data data") == 0, "%s", s_out);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=checkpoint "), after_send);
    ketenbus_client_destroy(&politie);
}
END_TEST

/* A relay between `ketenbus audit` (--admin) and the broker's admin
 * socket that has the broker handle the request inject first: before
 * every request it passes on (every), or before the first audit_records
 * request only, which verify sends once it has read the log's size and
 * its checkpoints. What a busy broker does between two requests then
 * happens there every time. Failures are kept for the test's thread. */
typedef struct {
    void *ctx;                  /* the relay's ZeroMQ context */
    void *front;                /* ROUTER the CLI connects to */
    void *back;                 /* DEALER to the broker's admin socket */
    char endpoint[512];         /* the front's endpoint */
    const char *inject;         /* request (JSON) the broker gets first */
    int every;                  /* 1: before every request; 0: before the first audit_records */
    int injected;               /* injected requests the broker answered with ok */
    char failed[1024];          /* "" or what went wrong */
    atomic_int stop;            /* set by the test: the thread ends */
    pthread_t thread;           /* the relay */
} s_relay_t;

#define S_RELAY_WAIT_MS 10000 /* longest wait for the broker's answer */

static void s_relay_inject(s_relay_t *r)
{
    char ans[4096];
    int n = -1;
    if (zmq_send(r->back, r->inject, strlen(r->inject), 0) >= 0)
        n = zmq_recv(r->back, ans, sizeof ans - 1, 0);
    if (n < 0) {
        snprintf(r->failed, sizeof r->failed, "%.200s: %s", r->inject, zmq_strerror(zmq_errno()));
        return;
    }
    ans[n < (int)sizeof ans - 1 ? n : (int)sizeof ans - 1] = '\0';
    if (!strstr(ans, "\"ok\":true"))
        snprintf(r->failed, sizeof r->failed, "%.200s: %.800s", r->inject, ans);
    else
        r->injected++;
}

static void *s_relay_run(void *arg)
{
    s_relay_t *r = arg;
    while (!atomic_load(&r->stop) && !r->failed[0]) {
        zmq_pollitem_t it = {r->front, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        zmq_msg_t rid, body, ans;
        zmq_msg_init(&rid);
        zmq_msg_init(&body);
        zmq_msg_init(&ans);
        if (zmq_msg_recv(&rid, r->front, 0) >= 0 && zmq_msg_more(&rid) && zmq_msg_recv(&body, r->front, 0) >= 0) {
            int records = memmem(zmq_msg_data(&body), zmq_msg_size(&body), "\"audit_records\"", 15) != NULL;
            if (r->every || (records && r->injected == 0))
                s_relay_inject(r);
            if (zmq_msg_send(&body, r->back, 0) < 0 || zmq_msg_recv(&ans, r->back, 0) < 0 ||
                zmq_msg_send(&rid, r->front, ZMQ_SNDMORE) < 0 || zmq_msg_send(&ans, r->front, 0) < 0)
                snprintf(r->failed, sizeof r->failed, "relaying: %s", zmq_strerror(zmq_errno()));
        }
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
        zmq_msg_close(&ans);
    }
    return NULL;
}

static void s_relay_start(s_relay_t *r, const char *inject, int every)
{
    memset(r, 0, sizeof *r);
    r->inject = inject;
    r->every = every;
    atomic_init(&r->stop, 0);
    snprintf(r->endpoint, sizeof r->endpoint, "ipc://%s/relay.sock", s_chain.dir);
    char target[512];
    snprintf(target, sizeof target, "ipc://%s/data/admin.sock", s_chain.dir);
    int zero = 0, wait = S_RELAY_WAIT_MS;
    r->ctx = zmq_ctx_new();
    ck_assert_ptr_nonnull(r->ctx);
    r->front = zmq_socket(r->ctx, ZMQ_ROUTER);
    r->back = zmq_socket(r->ctx, ZMQ_DEALER);
    ck_assert(r->front && r->back);
    ck_assert_int_eq(zmq_setsockopt(r->front, ZMQ_LINGER, &zero, sizeof zero), 0);
    ck_assert_int_eq(zmq_setsockopt(r->back, ZMQ_LINGER, &zero, sizeof zero), 0);
    ck_assert_int_eq(zmq_setsockopt(r->back, ZMQ_RCVTIMEO, &wait, sizeof wait), 0);
    ck_assert_int_eq(zmq_bind(r->front, r->endpoint), 0);
    ck_assert_int_eq(zmq_connect(r->back, target), 0);
    /* the sockets move to the relay's thread now, and back once it ended */
    ck_assert_int_eq(pthread_create(&r->thread, NULL, s_relay_run, r), 0);
}

static void s_relay_stop(s_relay_t *r)
{
    atomic_store(&r->stop, 1);
    ck_assert_int_eq(pthread_join(r->thread, NULL), 0);
    zmq_close(r->front);
    zmq_close(r->back);
    zmq_ctx_term(r->ctx);
}

/* A broker that signs a checkpoint after every record logged logs one
 * (a reload) before each request of verify: the checkpoints it signs
 * meanwhile are announced by records past the size verify began with,
 * which verify neither reads nor expects the notes of. It verifies what
 * there was, and leaves the rest to the next run. */
START_TEST(test_verify_while_the_broker_signs)
{
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    kb_chain_cleanup(&s_chain);
    kb_chain_init(&s_chain, s_agencies, 5, s_rules, "  checkpoint_records: 1\n");
    kb_chain_start(&s_chain);
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(s_send(politie, kb_test_signal("fier", "seen at the station"), NULL), 1);
    ketenbus_client_destroy(&politie);
    int before = kb_chain_log_count(&s_chain, "event=checkpoint ");
    s_relay_t r;
    s_relay_start(&r, "{\"command\":\"reload\"}", 1);
    int st = s_cli("audit verify --admin %s --key keys/broker.sign.pub.pem", r.endpoint);
    s_relay_stop(&r);
    ck_assert_msg(r.failed[0] == '\0', "%s", r.failed);
    ck_assert_int_ge(r.injected, 4); /* info, checkpoints, leaves, records */
    ck_assert_int_ge(kb_chain_log_count(&s_chain, "event=checkpoint "), before + r.injected);
    ck_assert_msg(st == 0 && strstr(s_out, "OK verified") != NULL, "exit %d: %s", st, s_out);
    /* and once the broker stops, the whole log */
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    ck_assert_msg(s_cli("audit verify --offline --config chain.yaml") == 0, "%s", s_out);
}
END_TEST

/* An operator prunes once verify has read the log's size and its
 * checkpoints, before it reads a record: the records it reads are
 * tombstones whose PRUNED record lies past that size. verify sees the
 * pruned end move, verifies again over the pruned log, and says so. */
START_TEST(test_verify_while_the_broker_prunes)
{
    /* enough records for full leaf tiles: 80 messages, 4 records each */
    ketenbus_client_t *politie = kb_chain_client(&s_chain, "politie", NULL);
    for (int i = 0; i < 80; i++)
        ck_assert_int_eq(s_send(politie, s_signal("fier", i % 2 ? PERSON_A : PERSON_B), NULL), 1);
    ketenbus_client_destroy(&politie);
    s_drain("fier", 80);
    char prune[128];
    snprintf(prune, sizeof prune, "{\"command\":\"audit_prune\",\"before_us\":%lld}",
             (long long)(kb_now_us() + 1000000));
    s_relay_t r;
    s_relay_start(&r, prune, 0);
    int st = s_cli("audit verify --admin %s --key keys/broker.sign.pub.pem", r.endpoint);
    s_relay_stop(&r);
    ck_assert_msg(r.failed[0] == '\0', "%s", r.failed);
    ck_assert_int_eq(r.injected, 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=audit_pruned"), 1);
    ck_assert_msg(st == 0 && strstr(s_out, "OK verified") != NULL, "exit %d: %s", st, s_out);
    ck_assert_msg(strstr(s_out, "verifying again") != NULL, "%s", s_out);
    ck_assert_msg(strstr(s_out, "pruned by retention") != NULL, "%s", s_out);
}
END_TEST


/* ------------------------------------------------------------ logs made in the store */

/* A stopped broker's log written here through the store, as the broker
 * writes it, to shape what no exchange produces on demand (a log cut
 * below its checkpoint, a damaged block, no checkpoint at all). */
#define S_T0 1800000000000000LL /* 2027-01-15T08:00:00Z, the first record's time */

typedef struct {
    kb_store_t *store;      /* the data directory's store */
    kb_batch_t *batch;      /* staged writes */
    kb_store_tiles_t tiles; /* tree binding */
    kb_merkle_io_t io;      /* its I/O */
    kb_merkle_t *tree;      /* the audit tree */
    EVP_PKEY *key;          /* the broker's signing key */
} s_log_t;

static char s_data[400]; /* the chain's data directory */

static void s_setup_store(void)
{
    kb_chain_init(&s_chain, s_agencies, 5, s_rules, s_broker_extra);
    snprintf(s_data, sizeof s_data, "%s/data", s_chain.dir);
}

static void s_log_open(s_log_t *l)
{
    uint8_t key[32] = {1};
    l->store = kb_store_open(s_data, key);
    ck_assert_msg(l->store != NULL, "%s", kb_last_error());
    l->batch = kb_batch_new();
    l->tiles.store = l->store;
    l->tiles.batch = l->batch;
    l->io = kb_store_tiles_io(&l->tiles);
    l->tree = kb_merkle_new(&l->io);
    ck_assert_int_eq(kb_merkle_load(l->tree, kb_store_audit_size(l->store)), KB_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/broker.sign.pem", s_chain.keys);
    l->key = kb_keys_load_sign_private(path);
    ck_assert_ptr_nonnull(l->key);
}

static void s_log_close(s_log_t *l)
{
    kb_merkle_destroy(&l->tree);
    kb_batch_destroy(&l->batch);
    kb_store_destroy(&l->store);
    EVP_PKEY_free(l->key);
}

#define S_LOG_SUBJECT_BYTE 0x5a /* every byte of the person's subject key */

/* n signals received from politie for rvdk about one person, a second
 * apart, with legal basis basis (NULL: "Wpg art. 19"); committed. */
static void s_log_records(s_log_t *l, uint64_t n, const char *basis)
{
    uint8_t subj[32];
    memset(subj, S_LOG_SUBJECT_BYTE, sizeof subj);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t at = kb_store_audit_size(l->store);
        Ketenbus__AuditRecord r;
        uint8_t id[16] = {0x01, 0, 0, 0, 0, 0, 0x70, 0, 0x80};
        ProtobufCBinaryData sd = {sizeof subj, subj};
        ketenbus__audit_record__init(&r);
        r.time_us = S_T0 + (int64_t)at * 1000000;
        r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
        r.agency = (char *)"politie";
        r.counterpart = (char *)"rvdk";
        r.kind = KETENBUS__KIND__KIND_SIGNAL;
        r.legal_basis = (char *)(basis ? basis : "Wpg art. 19");
        kb_be64_put(id + 8, at | 0x8000000000000000ull);
        r.message_id.data = id;
        r.message_id.len = sizeof id;
        r.n_subject_keys = 1;
        r.subject_keys = &sd;
        ck_assert_int_eq(kb_store_audit_log(l->store, l->batch, l->tree, &r, NULL), KB_OK);
    }
    ck_assert_int_eq(kb_store_commit(l->store, l->batch, 1), KB_OK);
}

/* A checkpoint signed by the broker's key (or by key, if not NULL). */
static void s_log_checkpoint(s_log_t *l, EVP_PKEY *key)
{
    ck_assert_int_eq(checkpoint_sign(l->store, l->batch, l->tree, "test-broker", key ? key : l->key, NULL), KB_OK);
    ck_assert_int_eq(kb_store_commit(l->store, l->batch, 1), KB_OK);
}

/* The sizes of the stored checkpoint notes. */
typedef struct {
    uint64_t sizes[64]; /* in order */
    size_t n;           /* their number */
} s_cp_sizes_t;

static int s_cp_size_fn(uint64_t size, const char *note, size_t len, void *arg)
{
    (void)note, (void)len;
    s_cp_sizes_t *s = arg;
    ck_assert_uint_lt(s->n, 64);
    s->sizes[s->n++] = size;
    return 0;
}

static void s_cp_sizes(s_cp_sizes_t *s)
{
    memset(s, 0, sizeof *s);
    kb_store_t *st = kb_store_open_ex(s_data, NULL, KB_STORE_NO_CREATE);
    ck_assert_msg(st != NULL, "%s", kb_last_error());
    ck_assert_int_eq(kb_store_checkpoint_scan(st, s_cp_size_fn, s), KB_OK);
    kb_store_destroy(&st);
}

/* `audit prune --offline` signs nothing over a log that does not extend
 * its latest signed checkpoint: one cut below it (the broker refuses to
 * start on that), or one whose tree gives another root at its size; nor
 * under a broker id other than the one the log was signed under. */
enum { P_CUT, P_ROOT, P_ORIGIN };

static const struct {
    const char *name; /* what is wrong */
    int what;         /* P_* */
    const char *says; /* in the error */
} s_offline_prune_rows[] = {
    {"a log cut below its latest checkpoint", P_CUT, "latest signed checkpoint covers 321"},
    {"a latest checkpoint over another root", P_ROOT, "is not the one its checkpoint signed"},
    {"a configuration with another broker id", P_ORIGIN,
     "the log's checkpoints are for ketenbus/test-broker, but the configuration names broker id 'other-broker'"},
};

START_TEST(test_offline_prune_signs_only_over_an_extended_log)
{
    s_log_t l;
    s_log_open(&l);
    s_log_records(&l, 300, NULL);
    s_log_checkpoint(&l, NULL); /* note 300, its CHECKPOINT record 300 */
    s_log_records(&l, 20, NULL);
    s_log_checkpoint(&l, NULL); /* note 321, record 321 */
    ck_assert_uint_eq(kb_store_audit_size(l.store), 322);
    uint8_t root[KB_MERKLE_HASH_LEN];
    char *note = NULL;
    size_t len = 0;
    memset(root, 0xab, sizeof root);
    ck_assert_int_eq(kb_note_sign("ketenbus/test-broker", 321, root, "ketenbus/test-broker", l.key, &note, &len),
                     KB_OK);
    s_log_close(&l);
    kb_ldb_t d;
    kb_ldb_open(&d, s_data);
    if (s_offline_prune_rows[_i].what == P_CUT) {
        for (uint64_t i = 322; i-- > 310;)
            kb_ldb_delete_record(&d, i);
    } else if (s_offline_prune_rows[_i].what == P_ORIGIN) {
        char *text = NULL;
        size_t tl = 0;
        ck_assert_int_eq(kb_file_read(s_chain.config, 1 << 20, &text, &tl), KB_OK);
        char *at = strstr(text, "id: test-broker\n");
        ck_assert_ptr_nonnull(at);
        char cfg[8192];
        snprintf(cfg, sizeof cfg, "%.*sid: other-broker\n%s", (int)(at - text), text, at + strlen("id: test-broker\n"));
        free(text);
        kb_chain_write_config(&s_chain, cfg);
    } else { /* the broker's key over a root the log does not give */
        uint8_t k[9] = {'k'};
        char *err = NULL;
        kb_be64_put(k + 1, 321);
        leveldb_put(d.db, d.wo, (const char *)k, sizeof k, note, len, &err);
        ck_assert_ptr_null(err);
    }
    kb_ldb_close(&d);
    free(note);
    size_t notes = kb_ldb_count_prefix(s_data, 'k');
    int st = s_cli("audit prune --offline --config chain.yaml --before 2027-01-15T08:01:00Z");
    ck_assert_msg(st == 1, "%s: exit %d: %s", s_offline_prune_rows[_i].name, st, s_out);
    ck_assert_msg(strstr(s_out, s_offline_prune_rows[_i].says) != NULL, "%s: %s", s_offline_prune_rows[_i].name,
                  s_out);
    ck_assert_msg(strstr(s_out, "done:") == NULL, "%s", s_out);
    /* nothing signed, nothing pruned */
    ck_assert_uint_eq(kb_ldb_count_prefix(s_data, 'k'), notes);
    s_cp_sizes_t sz;
    s_cp_sizes(&sz);
    for (size_t i = 0; i < sz.n; i++)
        ck_assert_msg(sz.sizes[i] == 300 || sz.sizes[i] == 321, "%s: a checkpoint of size %" PRIu64 " was signed",
                      s_offline_prune_rows[_i].name, sz.sizes[i]);
    ck_assert_int_eq(s_cli("audit query --offline --data data --event pruned --json"), 0);
    ck_assert_msg(strstr(s_out, "\"pruned\"") == NULL, "%s", s_out);
}
END_TEST


/* A damaged block in a stopped broker's store: verify still runs to its
 * end, says what cannot be read and names the block's first record as
 * the first bad one (exit 3, not "could not run"), and the report is
 * written with its verification FAILED. */
static const struct {
    const char *name; /* the damage */
    unsigned keep;    /* records of block 2 (32 to 47) kept before it */
} s_damaged_block_rows[] = {
    {"a first record's length past the block's end", 0},
    {"a record's length past the block's end after three that decode", 3},
};

START_TEST(test_verify_reports_a_damaged_block)
{
    s_log_t l;
    s_log_open(&l);
    s_log_records(&l, 300, NULL); /* records 0-255 in a full tile: the broker starts without reading them */
    s_log_checkpoint(&l, NULL);
    s_log_close(&l);
    kb_ldb_t d;
    kb_ldb_open(&d, s_data);
    uint8_t val[4096];
    size_t vl = 0;
    for (unsigned i = 0; i < s_damaged_block_rows[_i].keep; i++) {
        size_t len;
        char *rec = kb_ldb_get_record(&d, 32 + i, &len);
        ck_assert_uint_lt(len, 0x80);
        ck_assert_uint_lt(vl + 1 + len, sizeof val);
        val[vl++] = (uint8_t)len;
        memcpy(val + vl, rec, len);
        vl += len;
        leveldb_free(rec);
    }
    memcpy(val + vl, "\x7f" "abc", 4); /* 127 bytes announced, 3 there */
    vl += 4;
    uint8_t k[KB_ABLOCK_KEY_LEN];
    kb_ablock_key(k, 2);
    char *err = NULL;
    leveldb_put(d.db, d.wo, (const char *)k, sizeof k, (const char *)val, vl, &err);
    ck_assert_ptr_null(err);
    kb_ldb_close(&d);
    const char *name = s_damaged_block_rows[_i].name;
    int st = s_cli("audit verify --offline --config chain.yaml");
    ck_assert_msg(st == 3, "%s: exit %d: %s", name, st, s_out);
    ck_assert_msg(strstr(s_out, "FAILED: records from 32 on cannot be read") != NULL, "%s: %s", name, s_out);
    ck_assert_msg(strstr(s_out, "first bad record: 32\n") != NULL, "%s: %s", name, s_out);
    st = s_cli("audit verify --offline --config chain.yaml --json");
    ck_assert_msg(st == 3 && strstr(s_out, "\"ok\":false") && strstr(s_out, "\"first_bad\":32,"), "%s: exit %d: %s",
                  name, st, s_out);
    st = s_cli("audit report --offline --config chain.yaml --out r.html");
    ck_assert_msg(st == 3, "%s: report exits %d: %s", name, st, s_out);
    char path[512], *html = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/r.html", s_chain.dir);
    ck_assert_int_eq(kb_file_read(path, 16u << 20, &html, &len), KB_OK);
    ck_assert_ptr_nonnull(strstr(html, "FAILED: do not rely on this log"));
    ck_assert_msg(strstr(html, "records from 32 on cannot be read") != NULL, "%s", name);
    free(html);
    /* the same through a running broker, which answers that its store is
     * damaged: not "could not run" either (it reads a page at a time, so
     * the first bad record is the page's first) */
    kb_chain_start(&s_chain);
    st = s_cli("audit verify --data data --key keys/broker.sign.pub.pem");
    ck_assert_msg(st == 3, "%s: through the broker, exit %d: %s", name, st, s_out);
    ck_assert_msg(strstr(s_out, "cannot be read (the store is damaged): the broker says:") != NULL, "%s: %s", name,
                  s_out);
    st = s_cli("audit report --data data --key keys/broker.sign.pub.pem --out r2.html");
    ck_assert_msg(st == 3, "%s: report through the broker exits %d: %s", name, st, s_out);
}
END_TEST



/* Records under no signed checkpoint are not verified (exit 3): nothing
 * binds them to what the broker logged. An empty log is no failure. */
START_TEST(test_verify_without_a_checkpoint_is_not_verified)
{
    s_log_t l;
    s_log_open(&l);
    s_log_close(&l);
    int st = s_cli("audit verify --offline --config chain.yaml");
    ck_assert_msg(st == 0, "an empty log: exit %d: %s", st, s_out);
    ck_assert_msg(strstr(s_out, "\nOK ") != NULL, "%s", s_out);
    s_log_open(&l);
    s_log_records(&l, 50, NULL);
    s_log_close(&l);
    st = s_cli("audit verify --offline --config chain.yaml");
    ck_assert_msg(st == 3, "exit %d: %s", st, s_out);
    ck_assert_msg(strstr(s_out, "FAILED: 50 records but no checkpoint was ever signed: nothing is proven") != NULL,
                  "%s", s_out);
    st = s_cli("audit verify --offline --config chain.yaml --json");
    ck_assert_msg(st == 3 && strstr(s_out, "\"ok\":false") != NULL, "exit %d: %s", st, s_out);
    st = s_cli("audit report --offline --config chain.yaml --out r.html");
    ck_assert_msg(st == 3, "report: exit %d: %s", st, s_out);
}
END_TEST


/* A tombstone keeps its record's time, which no hash covers, and queries
 * find a period by binary search over every record's time, tombstones
 * included. A tombstone time moved out of the log's order, or past the
 * cut-off of the pruning that made it, fails verification at that
 * tombstone: otherwise a query for a kept minute could find nothing while
 * verify says OK. */
static const struct {
    const char *name;  /* what was changed */
    uint64_t first;    /* tombstones [first, end) get the time */
    uint64_t end;
    int64_t time_us;   /* the time they get */
    uint64_t bad;      /* the record named */
    const char *says;  /* in the outcome */
} s_stone_time_rows[] = {
    {"every tombstone moved a century on", 0, 512, S_T0 + 100LL * 365 * 86400 * 1000000, 0,
     "pruned only records older than 2027-01-15T08:08:32"},
    {"a tombstone moved past its neighbour, before the cut-off", 300, 301, S_T0 + 400LL * 1000000, 300,
     "tombstones 300 and 301 are out of time order (2027-01-15T08:06:40.000000Z, then 2027-01-15T08:05:01"},
    {"a tombstone moved back before its neighbour", 300, 301, S_T0 + 100LL * 1000000, 299,
     "tombstones 299 and 300 are out of time order (2027-01-15T08:04:59.000000Z, then 2027-01-15T08:01:40"},
    {"the last tombstone moved past the first kept record", 511, 512, S_T0 + 600LL * 1000000, 511,
     "tombstone 511 has the time 2027-01-15T08:10:00.000000Z, after that of record 512"},
};

START_TEST(test_verify_refuses_moved_tombstone_times)
{
    s_log_t l;
    s_log_open(&l);
    s_log_records(&l, 600, NULL); /* a second apart from S_T0 */
    s_log_checkpoint(&l, NULL);
    kb_auditq_prune_t p;
    ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KB_PRUNE_ALL, S_T0 + 512LL * 1000000, 4096, "test", &p),
                     KB_OK);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    ck_assert_uint_eq(p.first, 0);
    ck_assert_uint_eq(p.end, 512);
    s_log_checkpoint(&l, NULL);
    s_log_close(&l);
    /* a kept minute: records 540 to 599, and the checkpoint, pruning and
     * checkpoint records after them (written now, before S_T0: the store
     * gives them the time of record 599) */
    const char *minute = "--since 2027-01-15T08:09:00Z --until 2027-01-15T08:10:00Z";
    ck_assert_int_eq(s_cli("audit query --offline --data data %s --json", minute), 0);
    s_lines_t found;
    s_lines(&found);
    ck_assert_uint_eq(found.n, 63);
    s_lines_free(&found);
    int st = s_cli("audit verify --offline --config chain.yaml");
    ck_assert_msg(st == 0, "untouched: exit %d: %s", st, s_out);

    const char *name = s_stone_time_rows[_i].name;
    kb_ldb_t d;
    kb_ldb_open(&d, s_data);
    for (uint64_t i = s_stone_time_rows[_i].first; i < s_stone_time_rows[_i].end; i++) {
        size_t len;
        char *v = kb_ldb_get_record(&d, i, &len);
        kb_audit_tombstone_t ts;
        ck_assert_int_eq(kb_audit_tombstone_parse((const uint8_t *)v, len, &ts), KB_OK);
        ck_assert_uint_eq(len, KB_AUDIT_TOMBSTONE_LEN);
        kb_be64_put((uint8_t *)v + 4, (uint64_t)s_stone_time_rows[_i].time_us); /* the time, after the claim */
        kb_ldb_put_record(&d, i, v, len);
        leveldb_free(v);
    }
    kb_ldb_close(&d);
    st = s_cli("audit verify --offline --config chain.yaml");
    ck_assert_msg(st == 3, "%s: exit %d: %s", name, st, s_out);
    char want[64];
    snprintf(want, sizeof want, "first bad record: %" PRIu64 "\n", s_stone_time_rows[_i].bad);
    ck_assert_msg(strstr(s_out, want) != NULL, "%s: want \"%s\" in: %s", name, want, s_out);
    ck_assert_msg(strstr(s_out, s_stone_time_rows[_i].says) != NULL, "%s: want \"%s\" in: %s", name,
                  s_stone_time_rows[_i].says, s_out);
    st = s_cli("audit verify --offline --config chain.yaml --json");
    snprintf(want, sizeof want, "\"first_bad\":%" PRIu64 ",", s_stone_time_rows[_i].bad);
    ck_assert_msg(st == 3 && strstr(s_out, want) != NULL, "%s: exit %d: %s", name, st, s_out);
    /* nor does a report of the kept minute say OK */
    st = s_cli("audit report --offline --config chain.yaml %s --out r.html", minute);
    ck_assert_msg(st == 3 && strstr(s_out, "verification: FAILED") != NULL, "%s: report exits %d: %s", name, st,
                  s_out);
}
END_TEST


/* Records after the last signed checkpoint are covered by no signature,
 * and those past the last full leaf tile by no stored leaf hash either:
 * verify says how many are not verified, from where, and does not count
 * them among the verified, changed or not (exit 0: every log ends with
 * some). One in a full leaf tile still differs from its stored hash. */
static const struct {
    const char *name;    /* what was changed */
    uint64_t before;     /* records before the checkpoint */
    uint64_t after;      /* records after its CHECKPOINT record */
    int64_t at;          /* the record changed, -1: none */
    const char *reason;  /* its new reason */
    int status;          /* verify's exit status */
    const char *says;    /* in the outcome */
} s_tail_rows[] = {
    {"nothing", 300, 5, -1, NULL, 0,
     "OK verified: 300 records give the roots of 1 signed checkpoint (latest: size 300); 6 records after the last "
     "checkpoint (from index 300) are covered by no signed checkpoint yet: not verified\n"},
    {"the root in the newest CHECKPOINT record", 300, 5, 300,
     "size=300 root=0000000000000000000000000000000000000000000000000000000000000000", 0,
     "6 records after the last checkpoint (from index 300) are covered by no signed checkpoint yet: not verified\n"},
    {"the newest record", 300, 5, 305, "nothing happened", 0,
     "6 records after the last checkpoint (from index 300) are covered by no signed checkpoint yet: not verified\n"},
    {"a record after the checkpoint in a full leaf tile", 100, 200, 200, "nothing happened", 3,
     "record 200 differs from the leaf hash the broker stored"},
};

START_TEST(test_verify_says_what_no_checkpoint_covers)
{
    const char *name = s_tail_rows[_i].name;
    s_log_t l;
    s_log_open(&l);
    s_log_records(&l, s_tail_rows[_i].before, NULL);
    s_log_checkpoint(&l, NULL); /* its CHECKPOINT record is the first not covered */
    s_log_records(&l, s_tail_rows[_i].after, NULL);
    s_log_close(&l);
    uint64_t size = s_tail_rows[_i].before + 1 + s_tail_rows[_i].after;
    if (s_tail_rows[_i].at >= 0) {
        kb_ldb_t d;
        kb_ldb_open(&d, s_data);
        s_rewrite(&d, (uint64_t)s_tail_rows[_i].at, s_tail_rows[_i].reason);
        kb_ldb_close(&d);
    }
    int st = s_cli("audit verify --offline --config chain.yaml");
    ck_assert_msg(st == s_tail_rows[_i].status, "%s: exit %d: %s", name, st, s_out);
    ck_assert_msg(strstr(s_out, s_tail_rows[_i].says) != NULL, "%s: want \"%s\" in: %s", name,
                  s_tail_rows[_i].says, s_out);
    if (st != 0)
        return;
    char want[128];
    snprintf(want, sizeof want, "%" PRIu64 " records give the roots", size);
    ck_assert_msg(strstr(s_out, want) == NULL, "%s: %s", name, s_out);
    st = s_cli("audit verify --offline --config chain.yaml --json");
    snprintf(want, sizeof want, "\"checked\":%" PRIu64 ",", s_tail_rows[_i].before);
    ck_assert_msg(st == 0 && strstr(s_out, want) != NULL, "%s: exit %d: %s", name, st, s_out);
    snprintf(want, sizeof want, "\"unverified\":%" PRIu64 ",\"unverified_from\":%" PRIu64 ",",
             size - s_tail_rows[_i].before, s_tail_rows[_i].before);
    ck_assert_msg(strstr(s_out, want) != NULL, "%s: want %s in: %s", name, want, s_out);
    /* the report says so too */
    st = s_cli("audit report --offline --config chain.yaml --out r.html");
    ck_assert_msg(st == 0 && strstr(s_out, "covered by no signed checkpoint yet: not verified") != NULL,
                  "%s: report exits %d: %s", name, st, s_out);
    char path[512], *html = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/r.html", s_chain.dir);
    ck_assert_int_eq(kb_file_read(path, 16u << 20, &html, &len), KB_OK);
    ck_assert_msg(strstr(html, "OK: the log is intact up to its latest signed checkpoint") != NULL, "%s", name);
    snprintf(want, sizeof want, "id=\"verified-records\">%" PRIu64 "<", s_tail_rows[_i].before);
    ck_assert_msg(strstr(html, want) != NULL, "%s: no %s", name, want);
    snprintf(want, sizeof want, "id=\"unverified-records\">%" PRIu64 "</span> records from index %" PRIu64 " on",
             size - s_tail_rows[_i].before, s_tail_rows[_i].before);
    ck_assert_msg(strstr(html, want) != NULL, "%s: no %s", name, want);
    free(html);
}
END_TEST


/* Proofs say "verified" (exit 0) only with the note's signature checked
 * by the broker's key and every root known; otherwise they say what was
 * not checked and exit 3. A pruned record's leaf is its tombstone's. */
START_TEST(test_proofs_verified_only_when_checked)
{
    s_log_t l;
    s_log_open(&l);
    s_log_records(&l, 300, NULL);
    s_log_checkpoint(&l, NULL); /* note 300 */
    s_log_records(&l, 300, NULL);
    kb_auditq_prune_t p;
    ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KB_PRUNE_ALL, S_T0 + 100LL * 1000000, 4096, "test", &p),
                     KB_OK);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    ck_assert_uint_gt(p.count, 5);
    s_log_checkpoint(&l, NULL);
    s_log_close(&l);
    const char *key = "--key keys/broker.sign.pub.pem";
    /* a record */
    int st = s_cli("audit proof --offline --data data --index 450 %s", key);
    ck_assert_msg(st == 0 && strstr(s_out, "(recomputed from the record)"), "exit %d: %s", st, s_out);
    st = s_cli("audit proof --offline --data data --index 450 --json");
    ck_assert_msg(st == 3, "exit %d: %s", st, s_out);
    ck_assert_msg(strstr(s_out, "\"verified\":false") && strstr(s_out, "\"signature_checked\":false"), "%s", s_out);
    ck_assert_msg(strstr(s_out, "not verified: the checkpoint's signature was not checked"), "%s", s_out);
    st = s_cli("audit proof --offline --data data --index 450");
    ck_assert_msg(st == 3 && strstr(s_out, "signature  not checked"), "exit %d: %s", st, s_out);
    /* a pruned record: the hash its tombstone keeps */
    st = s_cli("audit proof --offline --data data --index 5 %s", key);
    ck_assert_msg(st == 0, "exit %d: %s", st, s_out);
    ck_assert_msg(strstr(s_out, "(stored in the tombstone of a pruned record") != NULL, "%s", s_out);
    ck_assert_msg(strstr(s_out, "recomputed from the record") == NULL, "%s", s_out);
    st = s_cli("audit proof --offline --data data --index 5 %s --json", key);
    ck_assert_msg(st == 0 && strstr(s_out, "\"leaf_from\":\"tombstone\"") && strstr(s_out, "\"verified\":true"),
                  "exit %d: %s", st, s_out);
    /* consistency: from a size with a signed root, and from one without */
    st = s_cli("audit consistency --offline --data data --from 300 %s", key);
    ck_assert_msg(st == 0 && strstr(s_out, "outcome    the proof holds\n"), "exit %d: %s", st, s_out);
    st = s_cli("audit consistency --offline --data data --from 300 --json");
    ck_assert_msg(st == 3 && strstr(s_out, "\"verified\":false"), "exit %d: %s", st, s_out);
    st = s_cli("audit consistency --offline --data data --from 7 %s", key);
    ck_assert_msg(st == 3, "exit %d: %s", st, s_out);
    ck_assert_msg(strstr(s_out, "not checked: no signed root of the old size is known") != NULL, "%s", s_out);
    st = s_cli("audit consistency --offline --data data --from 7 %s --json", key);
    ck_assert_msg(st == 3 && strstr(s_out, "\"verified\":false") && strstr(s_out, "\"checked\":false"),
                  "exit %d: %s", st, s_out);
}
END_TEST

/* A checkpoint signed by another key: a proof against it is never
 * verified, with the broker's key or without any. */
START_TEST(test_proof_against_a_forged_checkpoint)
{
    s_log_t l;
    s_log_open(&l);
    s_log_records(&l, 40, NULL);
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ck_assert_ptr_nonnull(other);
    s_log_checkpoint(&l, other);
    EVP_PKEY_free(other);
    s_log_close(&l);
    int st = s_cli("audit proof --offline --data data --index 3 --json");
    ck_assert_msg(st == 3 && strstr(s_out, "\"verified\":false"), "without a key: exit %d: %s", st, s_out);
    st = s_cli("audit proof --offline --config chain.yaml --index 3 --json");
    ck_assert_msg(st == 3 && strstr(s_out, "\"verified\":false") && strstr(s_out, "\"signature_checked\":true"),
                  "with the broker's key: exit %d: %s", st, s_out);
    st = s_cli("audit proof --offline --config chain.yaml --index 3");
    ck_assert_msg(st == 3 && strstr(s_out, "does NOT verify with the broker's key"), "exit %d: %s", st, s_out);
}
END_TEST


/* Retention per kind (the broker's `retention:`) pruned the person's
 * signals: the article 15 report says which kind was pruned up to where,
 * in text and as the first JSON line, instead of only "No records". */
START_TEST(test_subject_says_what_retention_per_kind_pruned)
{
    s_log_t l;
    s_log_open(&l);
    s_log_records(&l, 300, NULL);
    s_log_checkpoint(&l, NULL);
    s_log_records(&l, 300, NULL);
    kb_auditq_prune_t p;
    ck_assert_int_eq(kb_auditq_prune(l.store, l.batch, l.tree, KETENBUS__KIND__KIND_SIGNAL, S_T0 + 1000LL * 1000000,
                                     4096, "retention", &p), KB_OK);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    ck_assert_uint_gt(p.count, 0);
    uint64_t end = kb_store_audit_pruned_kind(l.store, KETENBUS__KIND__KIND_SIGNAL);
    ck_assert_uint_gt(end, kb_store_audit_pruned(l.store));
    s_log_checkpoint(&l, NULL);
    s_log_close(&l);
    uint8_t subj[32];
    char hex[65], want[128];
    memset(subj, S_LOG_SUBJECT_BYTE, sizeof subj);
    kb_hex(subj, sizeof subj, hex);
    /* a period of pruned records only */
    int st = s_cli("audit subject --offline --data data --subject %s --until 2027-01-15T08:04:10Z", hex);
    ck_assert_msg(st == 0, "exit %d: %s", st, s_out);
    snprintf(want, sizeof want, "signal records before index %" PRIu64 " (up to 2027-01-15T08:0", end);
    ck_assert_msg(strstr(s_out, want) != NULL, "want \"%s\" in: %s", want, s_out);
    ck_assert_msg(strstr(s_out, "No records about this person (outside what was pruned).") != NULL, "%s", s_out);
    st = s_cli("audit subject --offline --data data --subject %s --json", hex);
    ck_assert_msg(st == 0, "exit %d: %s", st, s_out);
    snprintf(want, sizeof want, "{\"pruned\":[{\"kind\":\"signal\",\"before_index\":%" PRIu64 ",\"until_time\":", end);
    ck_assert_msg(strncmp(s_out, want, strlen(want)) == 0, "want \"%s\" first in: %.300s", want, s_out);
    /* a period after it: nothing said */
    st = s_cli("audit subject --offline --data data --subject %s --since 2027-01-15T09:00:00Z", hex);
    ck_assert_msg(st == 0 && strstr(s_out, "were pruned") == NULL, "exit %d: %s", st, s_out);
}
END_TEST


/* Text an agency wrote (here a legal basis with an OSC title, a screen
 * clear, a C1 CSI and a bidirectional override) reaches the officer's
 * terminal with its control characters replaced, and a CSV cell that a
 * spreadsheet would run as a formula is kept as text; JSON keeps the
 * bytes (escaped). */
#define S_HOSTILE_BASIS "Wpg\x1b]0;pwned\x07\x1b[2J\xc2\x9b" "31m\xe2\x80\xae" "19"

START_TEST(test_agency_text_is_made_safe_for_terminals_and_spreadsheets)
{
    s_log_t l;
    s_log_open(&l);
    s_log_records(&l, 2, S_HOSTILE_BASIS);
    s_log_records(&l, 1, "=HYPERLINK(\"http://x.example/\"&A1)");
    s_log_records(&l, 1, "@SUM(A1)");
    s_log_close(&l);
    char hex[65];
    uint8_t subj[32];
    memset(subj, S_LOG_SUBJECT_BYTE, sizeof subj);
    kb_hex(subj, sizeof subj, hex);
    int st = s_cli("audit subject --offline --data data --subject %s", hex);
    ck_assert_msg(st == 0, "exit %d: %s", st, s_out);
    ck_assert_msg(strchr(s_out, 0x1b) == NULL && strchr(s_out, 0x07) == NULL, "%s", s_out);
    ck_assert_msg(strstr(s_out, "\xc2\x9b") == NULL && strstr(s_out, "\xe2\x80\xae") == NULL, "%s", s_out);
    ck_assert_msg(strstr(s_out, "legal basis \"Wpg\xef\xbf\xbd]0;pwned\xef\xbf\xbd\xef\xbf\xbd[2J\xef\xbf\xbd"
                                "31m\xef\xbf\xbd" "19\"") != NULL, "%s", s_out);
    /* the table, with a hostile reason */
    s_log_open(&l);
    Ketenbus__AuditRecord r;
    ketenbus__audit_record__init(&r);
    r.time_us = S_T0;
    r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED;
    r.agency = (char *)"politie\x1b[1A";
    r.counterpart = (char *)"rvdk";
    r.reason = (char *)"no rule\nfake line\x1b[2K";
    ck_assert_int_eq(kb_store_audit_log(l.store, l.batch, l.tree, &r, NULL), KB_OK);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    s_log_close(&l);
    st = s_cli("audit query --offline --data data --event refused");
    ck_assert_msg(st == 0 && strchr(s_out, 0x1b) == NULL, "exit %d: %s", st, s_out);
    ck_assert_msg(strstr(s_out, "no rule\xef\xbf\xbd" "fake line\xef\xbf\xbd[2K\n") != NULL, "%s", s_out);
    /* CSV: formulas become text */
    st = s_cli("audit export --offline --data data --format csv");
    ck_assert_msg(st == 0, "exit %d: %s", st, s_out);
    ck_assert_msg(strstr(s_out, ",\"'=HYPERLINK(\"\"http://x.example/\"\"&A1)\",") != NULL, "%s", s_out);
    ck_assert_msg(strstr(s_out, ",'@SUM(A1),") != NULL, "%s", s_out);
    ck_assert_msg(strstr(s_out, ",=") == NULL && strstr(s_out, ",\"=") == NULL && strstr(s_out, ",@") == NULL, "%s",
                  s_out);
    /* JSON keeps what was logged, escaped */
    st = s_cli("audit query --offline --data data --event refused --json");
    ck_assert_msg(st == 0 && strstr(s_out, "politie\\u001b[1A") != NULL, "exit %d: %s", st, s_out);
}
END_TEST

/* A report of a period before every record, given by its end alone, is an
 * empty page: the period starts where it ends, not now. */
START_TEST(test_report_of_an_empty_period_before_the_log)
{
    s_log_t l;
    s_log_open(&l);
    s_log_records(&l, 5, NULL);
    s_log_checkpoint(&l, NULL);
    s_log_close(&l);
    int st = s_cli("audit report --offline --config chain.yaml --until 2020-01-01 --out r.html");
    ck_assert_msg(st == 0, "exit %d: %s", st, s_out);
    ck_assert_msg(strstr(s_out, "report of 0 records written to r.html; verification: OK") != NULL, "%s", s_out);
    char path[512], *html = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/r.html", s_chain.dir);
    ck_assert_int_eq(kb_file_read(path, 16u << 20, &html, &len), KB_OK);
    ck_assert_msg(strstr(html, "<p>Period <time datetime=\"2020-01-01T00:00:00") != NULL, "%s", html);
    ck_assert_msg(strstr(html, " to <time datetime=\"2020-01-01T00:00:00") != NULL, "%s", html);
    ck_assert_msg(strstr(html, "id=\"count-records\">0<") != NULL, "%s", html);
    free(html);
    /* and from its start alone, a period after every record */
    st = s_cli("audit report --offline --config chain.yaml --since 2099-01-01 --out r.html");
    ck_assert_msg(st == 0 && strstr(s_out, "report of 0 records") != NULL, "exit %d: %s", st, s_out);
}
END_TEST

/* A spreadsheet in a Dutch locale (nl-NL) splits a .csv on ';', not ','.
 * A cell holding a ';' is quoted, and neither a cell nor any part of it
 * after a ';' (lists are joined with ';') starts a formula, whichever of
 * the two a spreadsheet splits on. */
START_TEST(test_csv_opens_no_formula_in_a_dutch_spreadsheet)
{
    s_log_t l;
    s_log_open(&l);
    char *redacted[] = {(char *)"signal.narrative", (char *)"=HYPERLINK(1)"};
    Ketenbus__AuditRecord r;
    ketenbus__audit_record__init(&r);
    r.time_us = S_T0;
    r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED;
    r.agency = (char *)"politie";
    r.counterpart = (char *)"rvdk";
    r.officer = (char *)"a;=2+3;b";
    r.legal_basis = (char *)"Wpg;@SUM(A1);+1;-1;\t=1";
    r.n_redacted = 2;
    r.redacted = redacted;
    ck_assert_int_eq(kb_store_audit_log(l.store, l.batch, l.tree, &r, NULL), KB_OK);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    s_log_close(&l);
    const char *cmds[] = {"audit export --offline --data data --format csv",
                          "audit query --offline --data data --csv"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int st = s_cli("%s", cmds[i]);
        ck_assert_msg(st == 0, "%s: exit %d: %s", cmds[i], st, s_out);
        ck_assert_msg(strstr(s_out, ",\"a;'=2+3;b\",") != NULL, "%s: %s", cmds[i], s_out);
        ck_assert_msg(strstr(s_out, ",\"Wpg;'@SUM(A1);'+1;'-1;'\t=1\",") != NULL, "%s: %s", cmds[i], s_out);
        ck_assert_msg(strstr(s_out, ",\"signal.narrative;'=HYPERLINK(1)\",") != NULL, "%s: %s", cmds[i], s_out);
        /* split as a spreadsheet that takes ';' for the separator and
         * ignores the quotes would: no part opens a formula */
        char *save = NULL;
        for (char *part = strtok_r(s_out, ";\r\n", &save); part; part = strtok_r(NULL, ";\r\n", &save)) {
            const char *c = part[0] == '"' ? part + 1 : part;
            ck_assert_msg(*c == '\0' || !strchr("=+-@\t", *c), "%s: a part opens a formula: %s", cmds[i], part);
        }
    }
}
END_TEST

/* JSON on stdout: json-c escapes C0 by itself, but DEL, C1 (U+009B is an
 * 8-bit CSI to a terminal) and bidirectional overrides and isolates must
 * be escaped too, keeping the value; invalid UTF-8 becomes U+FFFD so every
 * line is valid UTF-8. */
#define S_C1_OFFICER "csi:\xc2\x9b" "31m del:\x7f bidi:\xe2\x80\xae" "x lri:\xe2\x81\xa6" "y esc:\x1b[2J"

START_TEST(test_json_escapes_every_control_character)
{
    s_log_t l;
    s_log_open(&l);
    Ketenbus__AuditRecord r;
    ketenbus__audit_record__init(&r);
    r.time_us = S_T0;
    r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
    r.agency = (char *)"politie";
    r.officer = (char *)S_C1_OFFICER;
    r.legal_basis = (char *)"bad utf8 \xff\xfe end";
    r.reason = (char *)"\xc2\x85next line \xc2\xa0kept";
    ck_assert_int_eq(kb_store_audit_log(l.store, l.batch, l.tree, &r, NULL), KB_OK);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    s_log_close(&l);
    const char *cmds[] = {"audit query --offline --data data --event received --json",
                          "audit export --offline --data data --format jsonl --event received"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int st = s_cli("%s", cmds[i]);
        ck_assert_msg(st == 0, "%s: exit %d: %s", cmds[i], st, s_out);
        ck_assert_msg(kb_utf8_valid(s_out, strlen(s_out)), "%s: not UTF-8: %s", cmds[i], s_out);
        for (const unsigned char *p = (const unsigned char *)s_out; *p; p++)
            ck_assert_msg((*p >= 0x20 || *p == '\n') && *p != 0x7f, "%s: byte 0x%02x: %s", cmds[i], *p, s_out);
        const char *raw[] = {"\xc2\x9b", "\xc2\x85", "\xe2\x80\xae", "\xe2\x81\xa6"};
        for (size_t k = 0; k < sizeof raw / sizeof raw[0]; k++)
            ck_assert_msg(strstr(s_out, raw[k]) == NULL, "%s: raw U+%s: %s", cmds[i], raw[k], s_out);
        ck_assert_msg(strstr(s_out, "csi:\\u009b31m del:\\u007f bidi:\\u202ex lri:\\u2066y esc:\\u001b[2J") != NULL,
                      "%s: %s", cmds[i], s_out);
        ck_assert_msg(strstr(s_out, "\xc2\xa0kept") != NULL, "%s: %s", cmds[i], s_out); /* no control: as it is */
        /* the same values */
        json_object *o = json_tokener_parse(s_out);
        ck_assert_msg(o != NULL, "%s: %s", cmds[i], s_out);
        json_object *v = NULL;
        ck_assert(json_object_object_get_ex(o, "officer", &v));
        ck_assert_str_eq(json_object_get_string(v), S_C1_OFFICER);
        ck_assert(json_object_object_get_ex(o, "legal_basis", &v));
        ck_assert_str_eq(json_object_get_string(v), "bad utf8 \xef\xbf\xbd\xef\xbf\xbd end");
        ck_assert(json_object_object_get_ex(o, "reason", &v));
        ck_assert_str_eq(json_object_get_string(v), "\xc2\x85next line \xc2\xa0kept");
        json_object_put(o);
    }
}
END_TEST

/* CSV written to a terminal (stdout is, unless --out or a redirection)
 * shows agencies' control characters, C1 and bidirectional overrides as
 * U+FFFD, as the table does; written to a file it stays the data. */
#define S_TTY_OFFICER "\x1b]0;pwned\x07"
#define S_TTY_REASON  "c1:\xc2\x9b" "31m bidi:\xe2\x80\xae" "x del:\x7f line\r\nbreak"

START_TEST(test_csv_on_a_terminal_has_no_control_characters)
{
    s_log_t l;
    s_log_open(&l);
    uint8_t subj[32];
    memset(subj, S_LOG_SUBJECT_BYTE, sizeof subj);
    ProtobufCBinaryData sd = {sizeof subj, subj};
    Ketenbus__AuditRecord r;
    ketenbus__audit_record__init(&r);
    r.time_us = S_T0;
    r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED;
    r.agency = (char *)"politie";
    r.officer = (char *)S_TTY_OFFICER;
    r.reason = (char *)S_TTY_REASON;
    r.n_subject_keys = 1;
    r.subject_keys = &sd;
    ck_assert_int_eq(kb_store_audit_log(l.store, l.batch, l.tree, &r, NULL), KB_OK);
    ck_assert_int_eq(kb_store_commit(l.store, l.batch, 1), KB_OK);
    s_log_close(&l);
    char hex[65], subject_cmd[160];
    kb_hex(subj, sizeof subj, hex);
    snprintf(subject_cmd, sizeof subject_cmd, "audit subject --offline --data data --subject %s --csv", hex);
    const char *cmds[] = {"audit query --offline --data data --csv", "audit export --offline --data data --format csv",
                          subject_cmd};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int st = s_cli_tty(cmds[i]);
        ck_assert_msg(st == 0, "%s: exit %d: %s", cmds[i], st, s_out);
        /* CR LF end the rows; nothing else below 0x20 */
        for (const char *p = s_out; *p; p++)
            ck_assert_msg((unsigned char)*p >= 0x20 || (p[0] == '\r' && p[1] == '\n') || (*p == '\n' && p > s_out && p[-1] == '\r'),
                          "%s: byte 0x%02x: %s", cmds[i], (unsigned char)*p, s_out);
        ck_assert_msg(strchr(s_out, 0x7f) == NULL && strstr(s_out, "\xc2\x9b") == NULL &&
                      strstr(s_out, "\xe2\x80\xae") == NULL, "%s: %s", cmds[i], s_out);
        ck_assert_msg(strstr(s_out, ",\"\xef\xbf\xbd]0;pwned\xef\xbf\xbd\",") != NULL, "%s: %s", cmds[i], s_out);
        ck_assert_msg(strstr(s_out, ",c1:\xef\xbf\xbd" "31m bidi:\xef\xbf\xbd" "x del:\xef\xbf\xbd line\xef\xbf\xbd"
                                    "\xef\xbf\xbd" "break,") != NULL, "%s: %s", cmds[i], s_out);
        /* into a file: the data as logged */
        st = s_cli("%s", cmds[i]);
        ck_assert_msg(st == 0, "%s: exit %d: %s", cmds[i], st, s_out);
        ck_assert_msg(strstr(s_out, ",\"" S_TTY_OFFICER "\",") != NULL, "%s: %s", cmds[i], s_out);
        ck_assert_msg(strstr(s_out, ",\"" S_TTY_REASON "\",") != NULL, "%s: %s", cmds[i], s_out);
    }
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("audit");
    TCase *tc = tcase_create("exchange");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_queries_match_the_exchange);
    tcase_add_test(tc, test_kept_checkpoint_and_proofs);
    tcase_add_test(tc, test_prune_then_verify);
    tcase_add_test(tc, test_admin_requests_are_checked);
    tcase_add_test(tc, test_broker_refuses_a_log_shorter_than_its_checkpoint);
    tcase_add_test(tc, test_idle_broker_signs_no_more_checkpoints);
    tcase_add_test(tc, test_verify_while_the_broker_signs);
    tcase_add_test(tc, test_verify_while_the_broker_prunes);
    suite_add_tcase(s, tc);

    tc = tcase_create("tamper");
    tcase_add_unchecked_fixture(tc, s_tamper_setup, s_tamper_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_tampering_is_detected, 0, ROWS(s_tamper_rows));
    suite_add_tcase(s, tc);

    tc = tcase_create("store");
    tcase_add_checked_fixture(tc, s_setup_store, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_offline_prune_signs_only_over_an_extended_log, 0, ROWS(s_offline_prune_rows));
    tcase_add_loop_test(tc, test_verify_reports_a_damaged_block, 0, ROWS(s_damaged_block_rows));
    tcase_add_test(tc, test_verify_without_a_checkpoint_is_not_verified);
    tcase_add_loop_test(tc, test_verify_refuses_moved_tombstone_times, 0, ROWS(s_stone_time_rows));
    tcase_add_loop_test(tc, test_verify_says_what_no_checkpoint_covers, 0, ROWS(s_tail_rows));
    tcase_add_test(tc, test_proofs_verified_only_when_checked);
    tcase_add_test(tc, test_proof_against_a_forged_checkpoint);
    tcase_add_test(tc, test_subject_says_what_retention_per_kind_pruned);
    tcase_add_test(tc, test_agency_text_is_made_safe_for_terminals_and_spreadsheets);
    tcase_add_test(tc, test_csv_opens_no_formula_in_a_dutch_spreadsheet);
    tcase_add_test(tc, test_json_escapes_every_control_character);
    tcase_add_test(tc, test_csv_on_a_terminal_has_no_control_characters);
    tcase_add_test(tc, test_report_of_an_empty_period_before_the_log);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
