/*
 * cmd_audit.c - `ketenbus audit`: the privacy officer's tools on the audit
 * trail (docs/AUDIT.md).
 *
 *   query        records matching filters, as a table, JSON lines or CSV
 *   export       records of a period as JSON lines or CSV
 *   subject      everything about one person (GDPR article 15)
 *   checkpoint   the latest signed checkpoint, to keep as a witness
 *   proof        an inclusion proof of one record
 *   consistency  a consistency proof between two tree sizes
 *   verify       recompute the tree and check every checkpoint
 *   prune        remove old records' contents, keeping the tree provable
 *   report       an HTML report of a period with the verification outcome
 *
 * Everything reads through an audit source (audit_source.h): the running
 * broker's admin socket, or with --offline a stopped broker's data
 * directory. Verification and proofs are checked here, with the broker's
 * public key, never taken from the broker.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "audit_source.h"
#include "audit_verify.h"
#include "auditq.h"
#include "cli.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_json.h"
#include "kb_keys.h"
#include "kb_note.h"
#include "kb_subject.h"
#include "kb_util.h"
#include "report_html.h"
#include "store.h"

#define S_EXIT_FAILED_VERIFY 3          /* verification found the log altered */
#define S_MAX_KEPT           16         /* --checkpoint files */
#define S_PAGE               1000u      /* matches per query page */
#define S_REPORT_MAX         5000000u   /* records a report holds in memory */
#define S_NOTE_FILE_MAX      KB_NOTE_MAX_LEN
#define S_TTY_MAX            4096u      /* bytes of one record field shown in a table line */
#define S_CSV_FORMULA        "=+-@\t\r"  /* what starts a formula in a spreadsheet cell */

/* Option groups, so each subcommand accepts only what it uses. */
enum {
    G_SRC = 1 << 0,    /* --data --admin --config --offline */
    G_FILTER = 1 << 1, /* --subject --identify --chain-key --message --agency --from --to --event --decision --kind */
    G_PERIOD = 1 << 2, /* --since --until */
    G_FORMAT = 1 << 3, /* --json --csv --limit */
    G_EXPORT = 1 << 4, /* --format --out */
    G_KEY = 1 << 5,    /* --key --checkpoint */
    G_INDEX = 1 << 6,  /* --index --size */
    G_CONS = 1 << 7,   /* --from-size --to-size */
    G_PRUNE = 1 << 8,  /* --before */
    G_NOTE = 1 << 9,   /* --note --body --sig --out */
};

/* Everything the command line can say. */
typedef struct {
    kb_asrc_opts_t src;                            /* where the log is */
    kb_auditq_filter_t filter;                     /* query conditions */
    const char *identify[KB_AUDITQ_MAX_SUBJECTS];  /* TYPE=VALUE */
    size_t n_identify;                             /* their number */
    const char *chain_key;                         /* --chain-key FILE */
    int json, csv;                                 /* output form */
    uint64_t limit;                                /* --limit (0: all) */
    const char *format;                            /* --format jsonl|csv */
    const char *out;                               /* --out FILE */
    const char *key;                               /* --key FILE (broker.sign.pub.pem) */
    const char *kept[S_MAX_KEPT];                  /* --checkpoint FILE */
    size_t n_kept;                                 /* their number */
    int has_index;                                 /* --index given */
    uint64_t index;                                /* --index N */
    int has_size;                                  /* --size given */
    uint64_t size;                                 /* --size N */
    int has_from_size, has_to_size;                /* consistency sizes given */
    uint64_t from_size, to_size;                   /* --from SIZE --to SIZE of `consistency` */
    int has_before;                                /* --before given */
    int64_t before_us;                             /* --before DATE */
    const char *note;                              /* --note FILE (a kept note) */
    const char *body, *sig;                        /* --body FILE --sig FILE */
    unsigned given;                                /* groups used */
} s_opts_t;

/* ------------------------------------------------------------ usage */

static const char *s_src_help =
    "Where the log is (one of):\n"
    "  --data DIR        the broker's data directory: its admin socket DIR/admin.sock\n"
    "                    (the broker must run), or with --offline the store itself\n"
    "  --admin ENDPOINT  the admin socket itself (default: $KETENBUS_ADMIN)\n"
    "  --config FILE     the chain file: data_dir, broker id and key_dir from it\n"
    "  --offline         open a stopped broker's data directory directly\n";

static const char *s_filter_help =
    "Filters (all given must hold):\n"
    "  --subject HEX            about the person with this subject key (repeatable)\n"
    "  --identify TYPE=VALUE    the same, from an identifier hashed as adapters do it\n"
    "                           (bsn, vnummer, document, name_birth, phone; repeatable)\n"
    "  --chain-key FILE         the chain key for --identify (default $KETENBUS_CHAIN_KEY)\n"
    "  --message UUID           one message\n"
    "  --agency ID              the agency acted or was the counterpart (sender or recipient)\n"
    "  --from ID, --to ID       the agency that acted (sender) / the counterpart (recipient)\n"
    "  --event NAME             received, refused, routed, delivered, acknowledged, expired,\n"
    "                           duplicate, connected, disconnected, rules_loaded,\n"
    "                           connect_refused, checkpoint, pruned (repeatable, or a,b)\n"
    "  --decision allowed|refused  routed to a recipient under a rule / refused\n"
    "  --kind NAME              signal, referral, referral_update, match_notice,\n"
    "                           expiry_notice, other: of no kind (repeatable, or a,b)\n"
    "  --since TIME, --until TIME  the period [since, until): 2026-11-01 or RFC 3339\n";

static void s_usage(FILE *out, const char *sub)
{
    if (!sub) {
        fprintf(out,
                "usage: ketenbus audit COMMAND [OPTIONS]\n"
                "\n"
                "The audit trail of a broker, for privacy officers (docs/AUDIT.md):\n"
                "  query        records matching filters: a table, --json lines or --csv\n"
                "  export       the records of a period as JSON lines or CSV\n"
                "  subject      everything about one person, for a GDPR article 15 request\n"
                "  checkpoint   the latest signed checkpoint, for an agency to keep\n"
                "  proof        an inclusion proof of one record against the latest checkpoint\n"
                "  consistency  a consistency proof from an earlier tree size\n"
                "  verify       recompute every leaf and the tree, check every checkpoint\n"
                "  prune        remove the contents of old records, keeping the tree provable\n"
                "  report       an HTML report of a period, with the verification outcome\n"
                "\n"
                "Run 'ketenbus audit COMMAND --help' for its options.\n"
                "Exit status: 0 success, 1 failure, 2 bad usage, 3 verification failed.\n");
        return;
    }
    if (strcmp(sub, "query") == 0) {
        fprintf(out, "usage: ketenbus audit query SOURCE [FILTERS] [--json | --csv] [--limit N]\n\n"
                     "Prints the audit records that match, oldest first: a table (time, event,\n"
                     "sender, recipient, kind, purpose, rule, reason), or with --json one JSON\n"
                     "object per line (field names as in proto/ketenbus.proto, docs/JSON.md), or\n"
                     "with --csv a header and rows (RFC 4180, lists joined with ';'; a cell with\n"
                     "',' or ';' is quoted, and a cell or a part of one after ';' that starts with\n"
                     "= + - @ gets a single quote before it, for spreadsheets in any locale).\n"
                     "Queries use the log's indexes (subject, message, agency, event); a subject\n"
                     "query includes the records of the person's messages that name no subject,\n"
                     "such as acknowledgements.\n\n"
                     "Agencies write officer ids, legal bases and reasons: control characters\n"
                     "(C0, DEL, C1), invalid UTF-8 and bidirectional overrides in them are shown\n"
                     "as U+FFFD in the table, and in CSV when stdout is a terminal (redirected to\n"
                     "a file or a pipe, CSV keeps them as logged). JSON writes them as \\uXXXX\n"
                     "escapes of the same value (invalid UTF-8 as \\ufffd).\n\n");
        fputs(s_src_help, out);
        fputs("\n", out);
        fputs(s_filter_help, out);
        fprintf(out, "\nOutput:\n  --json | --csv    instead of a table\n  --limit N         at most N records\n");
    } else if (strcmp(sub, "export") == 0) {
        fprintf(out, "usage: ketenbus audit export SOURCE --format jsonl|csv [--since TIME] [--until TIME]\n"
                     "                             [FILTERS] [--out FILE]\n\n"
                     "Writes every record of the period (default: the whole log) as JSON lines or\n"
                     "CSV, to FILE or stdout. Pruned records have no contents and are left out.\n"
                     "A CSV cell, or a part of one after ';', starting with = + - @ gets a single\n"
                     "quote before it, and a cell with ',' or ';' is quoted, so that a spreadsheet\n"
                     "shows it as text whichever of the two it separates cells with. Written to a\n"
                     "terminal (no --out, stdout not redirected), CSV shows control characters\n"
                     "(C0, DEL, C1), invalid UTF-8 and bidirectional overrides as U+FFFD; to a\n"
                     "file it keeps them as logged. JSON lines write them as \\uXXXX escapes of\n"
                     "the same value (invalid UTF-8 as \\ufffd).\n\n");
        fputs(s_src_help, out);
        fputs("\n", out);
        fputs(s_filter_help, out);
    } else if (strcmp(sub, "subject") == 0) {
        fprintf(out, "usage: ketenbus audit subject SOURCE (--identify TYPE=VALUE... --chain-key FILE |\n"
                     "                              --subject HEX...) [--since TIME] [--until TIME] [--json | --csv]\n\n"
                     "What a privacy officer needs for a GDPR article 15 request: every exchange\n"
                     "about the person, message by message: who sent what kind to whom, when, for\n"
                     "which purpose and on which legal basis, under which rule, what was withheld,\n"
                     "what was refused and why, and when it was delivered and acknowledged.\n"
                     "Identifiers are hashed here exactly as adapters hash them and never leave\n"
                     "this process; give several to find records made with any of them.\n"
                     "Says which kinds retention pruned up to which record and time in the period.\n"
                     "--json prints the records as JSON lines instead, after a line {\"pruned\": [...]}\n"
                     "when retention pruned any; --csv as CSV rows. Both treat agencies' text as\n"
                     "`audit query --help` says (CSV on a terminal: control characters as U+FFFD).\n\n");
        fputs(s_src_help, out);
    } else if (strcmp(sub, "checkpoint") == 0) {
        fprintf(out, "usage: ketenbus audit checkpoint SOURCE [--out FILE]\n"
                     "       ketenbus audit checkpoint [SOURCE | --note FILE] --key FILE --body FILE --sig FILE\n\n"
                     "Prints the latest signed checkpoint (C2SP signed note: origin, tree size,\n"
                     "root hash, the broker's Ed25519 signature). An agency keeps it and later\n"
                     "runs `audit verify --checkpoint FILE` to prove the log still extends it.\n"
                     "With --body and --sig it writes the signed bytes and the raw signature of\n"
                     "the note (or of a kept --note FILE) so that anyone can check it with:\n"
                     "  openssl pkeyutl -verify -pubin -inkey broker.sign.pub.pem -rawin \\\n"
                     "      -in BODY -sigfile SIG\n\n");
        fputs(s_src_help, out);
        fprintf(out, "\n  --key FILE   the broker's public signing key (broker.sign.pub.pem)\n");
    } else if (strcmp(sub, "proof") == 0) {
        fprintf(out, "usage: ketenbus audit proof SOURCE --index N [--size SIZE] [--key FILE] [--json]\n\n"
                     "Prints the inclusion proof of record N in the tree of the latest checkpoint\n"
                     "(or of the checkpoint of --size SIZE): the leaf hash recomputed from the\n"
                     "record (of a pruned record: the hash its tombstone keeps), the proof hashes\n"
                     "(RFC 9162), the root and the signed note, and checks them; with --key (or\n"
                     "--config) the note's signature too. Exit status 0 only when the proof holds\n"
                     "and the signature verified with the broker's key; 3 when either does not,\n"
                     "or the signature was not checked (no key given).\n\n");
        fputs(s_src_help, out);
    } else if (strcmp(sub, "consistency") == 0) {
        fprintf(out, "usage: ketenbus audit consistency SOURCE --from SIZE [--to SIZE] [--checkpoint FILE]\n"
                     "                                  [--key FILE] [--json]\n\n"
                     "Prints the consistency proof (RFC 9162) that the tree of the latest\n"
                     "checkpoint (or of --to SIZE) extends the tree of SIZE records, and checks it\n"
                     "against the signed roots: of a kept --checkpoint FILE of that size, or of\n"
                     "the broker's stored checkpoint of that size. Exit status 0 only when the\n"
                     "proof holds and every note's signature verified with the broker's key (--key\n"
                     "or --config); 3 when not, or when that was not checked (no key, or no signed\n"
                     "root of SIZE known).\n\n");
        fputs(s_src_help, out);
    } else if (strcmp(sub, "verify") == 0) {
        fprintf(out, "usage: ketenbus audit verify SOURCE [--key FILE] [--checkpoint FILE]... [--json]\n\n"
                     "Recomputes every record's leaf hash and the tree, checks the signature and\n"
                     "root of every stored checkpoint and of the checkpoints an agency kept\n"
                     "(--checkpoint, repeatable: proves the log extends them), and compares each\n"
                     "leaf with the hash the broker stored when it logged it. Detects a changed\n"
                     "byte, a deleted, moved or swapped record, a forged checkpoint, contents\n"
                     "removed without a signed PRUNED record and a pruned record's time moved\n"
                     "(out of the log's time order, or not older than its pruning's date), and\n"
                     "names the first bad record.\n"
                     "Pruned ranges are reported, not failed. Records after the latest signed\n"
                     "checkpoint are covered by no signature and not verified: it says how many,\n"
                     "from which index, and still exits 0 (every log ends with some, at least\n"
                     "the checkpoint record that follows each signing). A log with records but\n"
                     "no signed checkpoint at all is not verified (exit 3). Through a running\n"
                     "broker it checks the log as it was when it began (what is logged and signed\n"
                     "meanwhile is left for the next run), and verifies again when the broker\n"
                     "pruned records while they were read. Exit status 0: everything a signed\n"
                     "checkpoint covers verified; 3: not; 1: could not run.\n"
                     "Runs here, trusting nothing the broker says: it needs the broker's public\n"
                     "signing key, --key FILE or the chain file's key_dir/broker.sign.pub.pem\n"
                     "(--config).\n\n");
        fputs(s_src_help, out);
    } else if (strcmp(sub, "prune") == 0) {
        fprintf(out, "usage: ketenbus audit prune SOURCE --before TIME [--kind NAME]\n\n"
                     "Replaces records older than TIME by tombstones that keep only their time and\n"
                     "leaf hash, and removes them from the indexes, so the tree stays verifiable.\n"
                     "--kind limits it to the records about messages of that kind (signal,\n"
                     "referral, referral_update, match_notice, expiry_notice; repeatable or a,b),\n"
                     "or \"other\" for those of no kind: connections, rule loads, and refusals of\n"
                     "envelopes whose fields were not taken in (bad signature, spoofed sender:\n"
                     "they keep only the message id they claimed). Checkpoint\n"
                     "and pruned records always stay. A broker with `retention:` in its chain file\n"
                     "does this by itself for each kind configured there.\n"
                     "Only records under a signed checkpoint and outside the newest leaf tile (256\n"
                     "records) go; the broker signs a checkpoint before and after, and logs a\n"
                     "PRUNED record saying which records and who asked. Runs through the admin\n"
                     "socket while the broker runs; --offline needs --config (the broker's signing\n"
                     "key signs the checkpoints) and refuses a log that does not extend its latest\n"
                     "signed checkpoint (fewer records, or another root at its size).\n\n");
        fputs(s_src_help, out);
    } else if (strcmp(sub, "report") == 0) {
        fprintf(out, "usage: ketenbus audit report SOURCE [--since TIME] [--until TIME] --out FILE [--key FILE]\n\n"
                     "Writes one self-contained HTML page about the period: what was shared by\n"
                     "whom with whom, volumes per day and kind, refusals by rule, expired items,\n"
                     "and the outcome of `audit verify` with the checkpoint it was checked\n"
                     "against. The broker escalates nothing yet, so the page shows no escalated\n"
                     "items (text in a record is never taken for one), only how many referrals\n"
                     "expired. Without --since the period starts at its first record,\n"
                     "without --until it ends after its last (no records: an empty period\n"
                     "at the one given). Needs the broker's public key (--key or --config).\n"
                     "Exit status 3 when the page was written but the log did not verify.\n\n");
        fputs(s_src_help, out);
    }
}

/* ------------------------------------------------------------ options */

static int s_parse_u64(const char *text, uint64_t *out)
{
    char *end = NULL;
    if (!text || !*text || *text == '-')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || !end || *end)
        return -1;
    *out = v;
    return 0;
}

/* RFC 3339, or a date (midnight UTC). */
static int s_parse_time(const char *text, int64_t *us)
{
    char buf[64];
    if (strlen(text) == 10 && kb_fmt(buf, sizeof buf, "%sT00:00:00Z", text) == KB_OK)
        return kb_time_parse(buf, us);
    return kb_time_parse(text, us);
}

/* Add names (comma-separated) to a bit set through name_bit. */
static int s_names(const char *text, uint32_t (*name_bit)(const char *), uint32_t *bits)
{
    char buf[256];
    if (kb_fmt(buf, sizeof buf, "%s", text) != KB_OK)
        return -1;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        uint32_t b = name_bit(t);
        if (!b)
            return -1;
        *bits |= b;
    }
    return 0;
}

static int s_agency_opt(char *dst, const char *text, const char *opt)
{
    if (strlen(text) == 0 || strlen(text) > KB_AUDITQ_AGENCY_MAX) {
        fprintf(stderr, "ketenbus audit: %s: expected an agency id\n", opt);
        return -1;
    }
    memcpy(dst, text, strlen(text) + 1);
    return 0;
}

enum {
    O_DATA = 256, O_ADMIN, O_CONFIG, O_OFFLINE, O_SUBJECT, O_IDENTIFY, O_CHAIN_KEY, O_MESSAGE, O_AGENCY, O_FROM, O_TO,
    O_EVENT, O_DECISION, O_KIND, O_SINCE, O_UNTIL, O_JSON, O_CSV, O_LIMIT, O_FORMAT, O_OUT, O_KEY, O_CHECKPOINT,
    O_INDEX, O_SIZE, O_BEFORE, O_NOTE, O_BODY, O_SIG, O_HELP
};

static int s_group(int opt)
{
    switch (opt) {
    case O_DATA: case O_ADMIN: case O_CONFIG: case O_OFFLINE: return G_SRC;
    case O_SUBJECT: case O_IDENTIFY: case O_CHAIN_KEY: case O_MESSAGE: case O_AGENCY: case O_EVENT: case O_DECISION:
        return G_FILTER;
    case O_KIND: return G_FILTER | G_PRUNE;
    case O_FROM: case O_TO: return G_FILTER | G_CONS;
    case O_SINCE: case O_UNTIL: return G_PERIOD;
    case O_JSON: case O_CSV: case O_LIMIT: return G_FORMAT;
    case O_FORMAT: return G_EXPORT;
    case O_OUT: return G_EXPORT | G_NOTE;
    case O_KEY: case O_CHECKPOINT: return G_KEY;
    case O_INDEX: case O_SIZE: return G_INDEX;
    case O_BEFORE: return G_PRUNE;
    case O_NOTE: case O_BODY: case O_SIG: return G_NOTE;
    default: return 0;
    }
}

/* Parse argv (argv[0] is the subcommand) into o; allowed: groups it takes.
 * Returns -1 after printing a usage error, 1 after --help, 0 otherwise. */
static int s_parse(int argc, char **argv, unsigned allowed, s_opts_t *o)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, O_DATA},         {"admin", required_argument, NULL, O_ADMIN},
        {"config", required_argument, NULL, O_CONFIG},     {"offline", no_argument, NULL, O_OFFLINE},
        {"subject", required_argument, NULL, O_SUBJECT},   {"identify", required_argument, NULL, O_IDENTIFY},
        {"chain-key", required_argument, NULL, O_CHAIN_KEY}, {"message", required_argument, NULL, O_MESSAGE},
        {"agency", required_argument, NULL, O_AGENCY},     {"from", required_argument, NULL, O_FROM},
        {"to", required_argument, NULL, O_TO},             {"event", required_argument, NULL, O_EVENT},
        {"decision", required_argument, NULL, O_DECISION}, {"kind", required_argument, NULL, O_KIND},
        {"since", required_argument, NULL, O_SINCE},       {"until", required_argument, NULL, O_UNTIL},
        {"json", no_argument, NULL, O_JSON},               {"csv", no_argument, NULL, O_CSV},
        {"limit", required_argument, NULL, O_LIMIT},       {"format", required_argument, NULL, O_FORMAT},
        {"out", required_argument, NULL, O_OUT},           {"key", required_argument, NULL, O_KEY},
        {"checkpoint", required_argument, NULL, O_CHECKPOINT}, {"index", required_argument, NULL, O_INDEX},
        {"size", required_argument, NULL, O_SIZE},         {"before", required_argument, NULL, O_BEFORE},
        {"note", required_argument, NULL, O_NOTE},         {"body", required_argument, NULL, O_BODY},
        {"sig", required_argument, NULL, O_SIG},           {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0}};
    const char *sub = argv[0];
    memset(o, 0, sizeof *o);
    o->src.admin = getenv("KETENBUS_ADMIN");
    o->chain_key = getenv("KETENBUS_CHAIN_KEY");
    int c;
    optind = 1;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == O_HELP) {
            s_usage(stdout, sub);
            return 1;
        }
        if (c == '?')
            goto usage;
        unsigned g = (unsigned)s_group(c);
        if (!(g & allowed)) {
            fprintf(stderr, "ketenbus audit %s: option --%s does not apply here\n", sub,
                    opts[c - O_DATA].name);
            goto usage;
        }
        o->given |= g & allowed;
        uint64_t n = 0;
        switch (c) {
        case O_DATA: o->src.data = optarg; break;
        case O_ADMIN: o->src.admin = optarg; break;
        case O_CONFIG: o->src.config = optarg; break;
        case O_OFFLINE: o->src.offline = 1; break;
        case O_SUBJECT:
            if (o->filter.n_subjects + o->n_identify >= KB_AUDITQ_MAX_SUBJECTS || strlen(optarg) != 64 ||
                kb_unhex(optarg, o->filter.subjects[o->filter.n_subjects], 32) != KB_OK) {
                fprintf(stderr, "ketenbus audit %s: --subject: expected 64 hex digits (at most %u subjects)\n", sub,
                        KB_AUDITQ_MAX_SUBJECTS);
                return -1;
            }
            o->filter.n_subjects++;
            break;
        case O_IDENTIFY:
            if (o->filter.n_subjects + o->n_identify >= KB_AUDITQ_MAX_SUBJECTS || !strchr(optarg, '=')) {
                fprintf(stderr, "ketenbus audit %s: --identify: expected TYPE=VALUE (at most %u)\n", sub,
                        KB_AUDITQ_MAX_SUBJECTS);
                return -1;
            }
            o->identify[o->n_identify++] = optarg;
            break;
        case O_CHAIN_KEY: o->chain_key = optarg; break;
        case O_MESSAGE:
            if (kb_uuid_parse(optarg, o->filter.message_id) != KB_OK) {
                fprintf(stderr, "ketenbus audit %s: --message: expected a message id (UUID)\n", sub);
                return -1;
            }
            o->filter.has_message = 1;
            break;
        case O_AGENCY:
            if (s_agency_opt(o->filter.agency, optarg, "--agency") != 0)
                return -1;
            break;
        case O_FROM:
        case O_TO:
            if (allowed & G_CONS) { /* consistency: tree sizes */
                if (s_parse_u64(optarg, &n) != 0) {
                    fprintf(stderr, "ketenbus audit %s: --%s: expected a tree size\n", sub, c == O_FROM ? "from" : "to");
                    return -1;
                }
                if (c == O_FROM) {
                    o->has_from_size = 1;
                    o->from_size = n;
                } else {
                    o->has_to_size = 1;
                    o->to_size = n;
                }
            } else if (s_agency_opt(c == O_FROM ? o->filter.from : o->filter.to, optarg,
                                    c == O_FROM ? "--from" : "--to") != 0) {
                return -1;
            }
            break;
        case O_EVENT:
            if (s_names(optarg, kb_auditq_event_bit, &o->filter.events) != 0) {
                fprintf(stderr, "ketenbus audit %s: --event: unknown event in \"%s\"\n", sub, optarg);
                return -1;
            }
            break;
        case O_DECISION:
            if (strcmp(optarg, "refused") == 0)
                o->filter.events |= kb_auditq_event_bit("refused");
            else if (strcmp(optarg, "allowed") == 0)
                o->filter.events |= kb_auditq_event_bit("routed");
            else {
                fprintf(stderr, "ketenbus audit %s: --decision: expected allowed or refused\n", sub);
                return -1;
            }
            break;
        case O_KIND:
            if (s_names(optarg, kb_auditq_kind_bit, &o->filter.kinds) != 0) {
                fprintf(stderr, "ketenbus audit %s: --kind: unknown kind in \"%s\"\n", sub, optarg);
                return -1;
            }
            break;
        case O_SINCE:
        case O_UNTIL: {
            int64_t t = 0;
            if (s_parse_time(optarg, &t) != KB_OK) {
                fprintf(stderr, "ketenbus audit %s: --%s: %s\n", sub, c == O_SINCE ? "since" : "until",
                        kb_last_error());
                return -1;
            }
            if (c == O_SINCE) {
                o->filter.has_since = 1;
                o->filter.since_us = t;
            } else {
                o->filter.has_until = 1;
                o->filter.until_us = t;
            }
            break;
        }
        case O_JSON: o->json = 1; break;
        case O_CSV: o->csv = 1; break;
        case O_LIMIT:
            if (s_parse_u64(optarg, &o->limit) != 0 || o->limit == 0) {
                fprintf(stderr, "ketenbus audit %s: --limit: expected a positive number\n", sub);
                return -1;
            }
            break;
        case O_FORMAT: o->format = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_KEY: o->key = optarg; break;
        case O_CHECKPOINT:
            if (o->n_kept == S_MAX_KEPT) {
                fprintf(stderr, "ketenbus audit %s: at most %d --checkpoint files\n", sub, S_MAX_KEPT);
                return -1;
            }
            o->kept[o->n_kept++] = optarg;
            break;
        case O_INDEX:
        case O_SIZE:
            if (s_parse_u64(optarg, &n) != 0) {
                fprintf(stderr, "ketenbus audit %s: --%s: expected a number\n", sub, c == O_INDEX ? "index" : "size");
                return -1;
            }
            if (c == O_INDEX) {
                o->has_index = 1;
                o->index = n;
            } else {
                o->has_size = 1;
                o->size = n;
            }
            break;
        case O_BEFORE:
            if (s_parse_time(optarg, &o->before_us) != KB_OK) {
                fprintf(stderr, "ketenbus audit %s: --before: %s\n", sub, kb_last_error());
                return -1;
            }
            o->has_before = 1;
            break;
        case O_NOTE: o->note = optarg; break;
        case O_BODY: o->body = optarg; break;
        case O_SIG: o->sig = optarg; break;
        default: goto usage;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "ketenbus audit %s: unexpected argument '%s'\n", sub, argv[optind]);
        goto usage;
    }
    if (o->json && o->csv) {
        fprintf(stderr, "ketenbus audit %s: --json or --csv, not both\n", sub);
        return -1;
    }
    if (o->filter.has_since && o->filter.has_until && o->filter.until_us < o->filter.since_us) {
        fprintf(stderr, "ketenbus audit %s: --until is before --since\n", sub);
        return -1;
    }
    return 0;
usage:
    fprintf(stderr, "Run 'ketenbus audit %s --help' for its options.\n", sub);
    return -1;
}

/* Hash the --identify identifiers into subject keys. */
static int s_identify(s_opts_t *o, const char *sub)
{
    if (o->n_identify == 0)
        return 0;
    if (!o->chain_key) {
        fprintf(stderr, "ketenbus audit %s: --identify needs --chain-key FILE (or $KETENBUS_CHAIN_KEY)\n", sub);
        return KB_EXIT_USAGE;
    }
    uint8_t key[KB_CHAIN_KEY_LEN];
    if (kb_subject_load_chain_key(o->chain_key, key) != KB_OK) {
        fprintf(stderr, "ketenbus audit %s: %s\n", sub, kb_last_error());
        return KB_EXIT_FAIL;
    }
    int status = 0;
    for (size_t i = 0; i < o->n_identify && status == 0; i++) {
        char type[32];
        const char *eq = strchr(o->identify[i], '=');
        size_t tl = (size_t)(eq - o->identify[i]);
        if (tl == 0 || tl >= sizeof type) {
            fprintf(stderr, "ketenbus audit %s: --identify: expected TYPE=VALUE\n", sub);
            status = KB_EXIT_USAGE;
            break;
        }
        memcpy(type, o->identify[i], tl);
        type[tl] = '\0';
        /* the detail names the type and the rule, never the value */
        if (kb_subject_key(key, type, eq + 1, o->filter.subjects[o->filter.n_subjects]) != KB_OK) {
            fprintf(stderr, "ketenbus audit %s: --identify %s=...: %s\n", sub, type, kb_last_error());
            status = KB_EXIT_USAGE;
            break;
        }
        o->filter.n_subjects++;
    }
    OPENSSL_cleanse(key, sizeof key);
    return status;
}

static kb_asrc_t *s_open(s_opts_t *o, const char *sub)
{
    kb_asrc_t *a = kb_asrc_open(&o->src);
    if (!a)
        fprintf(stderr, "ketenbus audit %s: %s\n", sub, kb_last_error());
    return a;
}

/* The broker's public key: --key, else the chain file's key_dir. */
static EVP_PKEY *s_pub(const s_opts_t *o, kb_asrc_t *a, const char *sub, int required)
{
    char path[4096];
    const char *p = o->key;
    if (!p && a && kb_asrc_key_dir(a)) {
        if (kb_fmt(path, sizeof path, "%s/broker.sign.pub.pem", kb_asrc_key_dir(a)) != KB_OK)
            return NULL;
        p = path;
    }
    if (!p) {
        if (required)
            fprintf(stderr, "ketenbus audit %s: the broker's public signing key is needed: --key FILE "
                            "(broker.sign.pub.pem) or --config FILE\n", sub);
        return NULL;
    }
    EVP_PKEY *k = kb_keys_load_sign_public(p);
    if (!k)
        fprintf(stderr, "ketenbus audit %s: %s\n", sub, kb_last_error());
    return k;
}

static char *s_read_note(const char *path, size_t *len, const char *sub)
{
    char *text = NULL;
    if (kb_file_read(path, S_NOTE_FILE_MAX, &text, len) != KB_OK) {
        fprintf(stderr, "ketenbus audit %s: %s\n", sub, kb_last_error());
        return NULL;
    }
    return text;
}

static const char *s_user(void)
{
    struct passwd *pw = getpwuid(getuid());
    return pw ? pw->pw_name : "unknown";
}

/* ------------------------------------------------------------ records out */

/* A record as a JSON object: "index" first, then the proto's fields. */
static json_object *s_record_json(uint64_t index, const Ketenbus__AuditRecord *r)
{
    json_object *j = kb_json_from_msg(&r->base);
    json_object *o = json_object_new_object();
    if (!j || !o) {
        json_object_put(j);
        json_object_put(o);
        return NULL;
    }
    json_object_object_add(o, "index", json_object_new_int64((int64_t)index));
    json_object_object_foreach(j, k, v)
    {
        if (strcmp(k, "index") != 0)
            json_object_object_add(o, k, json_object_get(v));
    }
    json_object_put(j);
    return o;
}

static const char *s_jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : "";
}

/* ------------------------------------------------------------ text from agencies */

/* Replace the string *field of a decoded record (malloc'd by protobuf-c,
 * or its shared empty string) by its terminal-safe copy (cli_tty) if that
 * differs. KB_OK or KB_ENOMEM. */
static int s_tty_field(char **field)
{
    if (!*field || !**field)
        return KB_OK;
    size_t l = strlen(*field);
    char *safe = l < SIZE_MAX / 3 ? malloc(l * 3 + 1) : NULL;
    if (!safe)
        return kb_error_set(KB_ENOMEM, "out of memory");
    cli_tty(*field, safe, l * 3 + 1);
    if (strcmp(safe, *field) == 0) {
        free(safe);
    } else {
        free(*field);
        *field = safe;
    }
    return KB_OK;
}

/* Make every text field of r safe for a terminal (cli_tty). KB_OK or KB_ENOMEM. */
static int s_tty_record(Ketenbus__AuditRecord *r)
{
    char **fields[] = {&r->agency, &r->officer, &r->counterpart, &r->legal_basis, &r->rule_id, &r->reason};
    int rc = KB_OK;
    for (size_t i = 0; rc == KB_OK && i < sizeof fields / sizeof fields[0]; i++)
        rc = s_tty_field(fields[i]);
    for (size_t i = 0; rc == KB_OK && i < r->n_redacted; i++)
        rc = s_tty_field(&r->redacted[i]);
    return rc;
}

/* A field as one CSV cell: arrays joined with ';', every ';'-separated
 * part kept from opening a formula, whichever of ',' and ';' a spreadsheet
 * splits on. tty: the cell goes to a terminal, so its text is made safe
 * there (cli_tty) rather than kept as data. */
static void s_csv_field(FILE *out, json_object *o, const char *key, int tty)
{
    json_object *v = NULL;
    char buf[8192];
    buf[0] = '\0';
    if (json_object_object_get_ex(o, key, &v) && v) {
        if (json_object_is_type(v, json_type_array)) {
            size_t off = 0;
            for (size_t i = 0; i < json_object_array_length(v) && off < sizeof buf; i++)
                off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", i ? ";" : "",
                                        json_object_get_string(json_object_array_get_idx(v, i)));
        } else {
            snprintf(buf, sizeof buf, "%s", json_object_get_string(v));
        }
    }
    char safe[3 * sizeof buf]; /* cli_tty() writes 3 bytes for 1 at most */
    const char *text = tty ? cli_tty(buf, safe, sizeof safe) : buf;
    /* RFC 4180: quote fields with a comma, quote or line break; double
     * quotes. A semicolon too: a spreadsheet in a Dutch locale (nl-NL)
     * separates the cells of a .csv with it. */
    int quote = strpbrk(text, ",;\"\r\n") != NULL;
    if (quote)
        fputc('"', out);
    for (const char *p = text; *p; p++) {
        /* a cell, or a part of one after a ';', that a spreadsheet would
         * take for a formula (agencies write legal bases, officer ids and
         * reasons) is kept as text: a single quote before it (docs/AUDIT.md) */
        if ((p == text || p[-1] == ';') && strchr(S_CSV_FORMULA, *p))
            fputc('\'', out);
        if (*p == '"')
            fputc('"', out);
        fputc(*p, out);
    }
    if (quote)
        fputc('"', out);
}

static const char *s_csv_cols[] = {"index",   "time_us",  "event",       "agency",  "officer",        "counterpart",
                                    "message_id", "kind", "purpose",     "handling", "legal_basis",   "rule_id",
                                    "code",    "reason",   "subject_keys", "payload_sha256", "redacted", "tag"};
#define S_N_CSV_COLS (sizeof s_csv_cols / sizeof s_csv_cols[0])

enum { S_TABLE, S_JSONL, S_CSV };

typedef struct {
    FILE *out;          /* where */
    int form;           /* S_TABLE, S_JSONL, S_CSV */
    uint64_t n;         /* records written */
    uint64_t limit;     /* stop after (0: all) */
    int header;         /* 1: header written */
    int rc;             /* a failure */
    int tty;            /* 1: out is a terminal: CSV cells as cli_tty() shows them */
} s_printer_t;

static void s_print_header(s_printer_t *p)
{
    if (p->header)
        return;
    p->header = 1;
    if (p->form == S_CSV) {
        for (size_t i = 0; i < S_N_CSV_COLS; i++)
            fprintf(p->out, "%s%s", i ? "," : "", s_csv_cols[i]);
        fputs("\r\n", p->out);
    } else if (p->form == S_TABLE) {
        fprintf(p->out, "%-20s %-13s %-12s %-12s %-15s %-22s %-22s %s\n", "time (UTC)", "event", "sender",
                "recipient", "kind", "purpose", "rule", "reason");
    }
}

static int s_print_record(uint64_t index, const uint8_t *raw, size_t len, void *arg)
{
    s_printer_t *p = arg;
    Ketenbus__AuditRecord *r = ketenbus__audit_record__unpack(NULL, len, raw);
    if (!r)
        return 0; /* tombstones and damaged records: audit verify reports them */
    json_object *o = s_record_json(index, r);
    ketenbus__audit_record__free_unpacked(r, NULL);
    if (!o) {
        p->rc = KB_ENOMEM;
        return 1;
    }
    s_print_header(p);
    if (p->form == S_JSONL) {
        p->rc = cli_json_line(p->out, o, JSON_C_TO_STRING_PLAIN);
        if (p->rc != KB_OK) {
            json_object_put(o);
            return 1;
        }
    } else if (p->form == S_CSV) {
        for (size_t i = 0; i < S_N_CSV_COLS; i++) {
            if (i)
                fputc(',', p->out);
            s_csv_field(p->out, o, s_csv_cols[i], p->tty);
        }
        fputs("\r\n", p->out);
    } else {
        char when[32], agency[S_TTY_MAX], counterpart[S_TTY_MAX], rule[S_TTY_MAX], reason[S_TTY_MAX];
        snprintf(when, sizeof when, "%.19sZ", s_jstr(o, "time_us"));
        fprintf(p->out, "%-20s %-13.13s %-12.12s %-12.12s %-15.15s %-22.22s %-22.22s %s\n", when,
                s_jstr(o, "event"), cli_tty(s_jstr(o, "agency"), agency, sizeof agency),
                cli_tty(s_jstr(o, "counterpart"), counterpart, sizeof counterpart), s_jstr(o, "kind"),
                s_jstr(o, "purpose"), cli_tty(s_jstr(o, "rule_id"), rule, sizeof rule),
                cli_tty(s_jstr(o, "reason"), reason, sizeof reason));
    }
    json_object_put(o);
    p->n++;
    return p->limit && p->n >= p->limit;
}

/* Run a query to its end (or p->limit) through fn. */
static int s_query_all(kb_asrc_t *a, const kb_auditq_filter_t *f, kb_asrc_record_fn *fn, void *arg, uint64_t *limit_n,
                       uint64_t limit)
{
    uint64_t from = 0;
    int done = 0;
    while (!done) {
        uint64_t next = from;
        int rc = kb_asrc_query(a, f, from, S_PAGE, fn, arg, &next, &done);
        if (rc != KB_OK)
            return rc;
        if (limit && *limit_n >= limit)
            break;
        if (!done && next <= from)
            return kb_error_set(KB_EPROTO, "the query does not advance");
        from = next;
    }
    return KB_OK;
}

/* ------------------------------------------------------------ query, export */

static int s_cmd_query(int argc, char **argv, int export)
{
    const char *sub = argv[0];
    s_opts_t o;
    int prc = s_parse(argc, argv, G_SRC | G_FILTER | G_PERIOD | (export ? G_EXPORT : G_FORMAT), &o);
    if (prc)
        return prc > 0 ? KB_EXIT_OK : KB_EXIT_USAGE;
    int form = o.json ? S_JSONL : o.csv ? S_CSV : S_TABLE;
    if (export) {
        if (!o.format || (strcmp(o.format, "jsonl") != 0 && strcmp(o.format, "csv") != 0)) {
            fprintf(stderr, "ketenbus audit export: --format jsonl or --format csv is required\n");
            return KB_EXIT_USAGE;
        }
        form = strcmp(o.format, "csv") == 0 ? S_CSV : S_JSONL;
    }
    int status = s_identify(&o, sub);
    if (status)
        return status;
    kb_asrc_t *a = s_open(&o, sub);
    if (!a)
        return KB_EXIT_FAIL;
    FILE *out = stdout;
    char tmp[4200];
    if (o.out) {
        if (kb_fmt(tmp, sizeof tmp, "%s.tmp", o.out) != KB_OK || !(out = fopen(tmp, "w"))) {
            fprintf(stderr, "ketenbus audit %s: cannot write %s\n", sub, o.out);
            kb_asrc_destroy(&a);
            return KB_EXIT_FAIL;
        }
    }
    /* CSV is data for files, but agencies' control characters must not
     * reach a terminal: there the cells are shown as in the table */
    s_printer_t p = {out, form, 0, o.limit, 0, KB_OK, isatty(fileno(out))};
    int rc = s_query_all(a, &o.filter, s_print_record, &p, &p.n, o.limit);
    if (rc == KB_OK)
        rc = p.rc;
    if (rc == KB_OK && form == S_CSV)
        s_print_header(&p); /* a header even when nothing matched */
    if (o.out) {
        if (fclose(out) != 0 && rc == KB_OK)
            rc = kb_error_set(KB_EIO, "writing %s failed", o.out);
        if (rc == KB_OK && rename(tmp, o.out) != 0)
            rc = kb_error_set(KB_EIO, "cannot rename %s", tmp);
        if (rc != KB_OK)
            unlink(tmp);
    }
    if (rc != KB_OK)
        fprintf(stderr, "ketenbus audit %s: %s\n", sub, kb_last_error());
    else if (o.out)
        fprintf(stderr, "%" PRIu64 " records written to %s\n", p.n, o.out);
    else if (form == S_TABLE)
        printf("(%" PRIu64 " record%s)\n", p.n, p.n == 1 ? "" : "s");
    kb_asrc_destroy(&a);
    return rc == KB_OK ? KB_EXIT_OK : KB_EXIT_FAIL;
}

/* ------------------------------------------------------------ subject */

/* The records about the person, grouped by message. */
typedef struct {
    Ketenbus__AuditRecord **recs; /* in index order */
    size_t n;                     /* their number */
    size_t cap;                   /* allocated */
    int rc;                       /* a failure */
} s_recs_t;

static int s_collect(uint64_t index, const uint8_t *raw, size_t len, void *arg)
{
    (void)index;
    s_recs_t *c = arg;
    Ketenbus__AuditRecord *r = ketenbus__audit_record__unpack(NULL, len, raw);
    if (!r)
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        Ketenbus__AuditRecord **p = c->cap < S_REPORT_MAX ? realloc(c->recs, cap * sizeof *p) : NULL;
        if (!p) {
            ketenbus__audit_record__free_unpacked(r, NULL);
            c->rc = kb_error_set(KB_ETOOBIG, "too many records to hold; narrow the period");
            return 1;
        }
        c->recs = p;
        c->cap = cap;
    }
    c->recs[c->n++] = r;
    return 0;
}

static void s_recs_free(s_recs_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        ketenbus__audit_record__free_unpacked(c->recs[i], NULL);
    free(c->recs);
    memset(c, 0, sizeof *c);
}

static const char *s_name(const ProtobufCEnumDescriptor *d, int value, const char *prefix, char *buf, size_t len)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    size_t pl = strlen(prefix);
    if (!v || strncmp(v->name, prefix, pl) != 0) {
        snprintf(buf, len, "%d", value);
        return buf;
    }
    size_t i = 0;
    for (const char *s = v->name + pl; *s && i + 1 < len; s++)
        buf[i++] = (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
    buf[i] = '\0';
    return buf;
}

static void s_when(int64_t us, char out[32])
{
    char t[32];
    kb_time_format(us, t);
    snprintf(out, 32, "%.10s %.8s", t, t + 11);
}

/* One line about a record inside its message's block. */
static void s_subject_line(const Ketenbus__AuditRecord *r)
{
    char when[32], buf[64];
    s_when(r->time_us, when);
    const char *who = r->agency && *r->agency ? r->agency : "the broker";
    const char *to = r->counterpart && *r->counterpart ? r->counterpart : "?";
    printf("    %s  ", when);
    switch (r->event) {
    case KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED:
        printf("received from %s%s%s\n", who, r->officer && *r->officer ? ", officer " : "",
               r->officer ? r->officer : "");
        break;
    case KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED:
        printf("shared with %s under rule %s", to, r->rule_id && *r->rule_id ? r->rule_id : "?");
        if (r->n_redacted) {
            printf(", withheld:");
            for (size_t i = 0; i < r->n_redacted; i++)
                printf("%s %s", i ? "," : "", r->redacted[i]);
        }
        printf("\n");
        break;
    case KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED: {
        /* the reason usually names the rule already */
        int rule = r->rule_id && *r->rule_id && !(r->reason && strstr(r->reason, r->rule_id));
        printf("REFUSED%s%s: %s%s%s%s\n", r->counterpart && *r->counterpart ? " for " : "",
               r->counterpart ? r->counterpart : "", r->reason ? r->reason : "", rule ? " (rule " : "",
               rule ? r->rule_id : "", rule ? ")" : "");
        break;
    }
    case KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DELIVERED:
        printf("delivered to %s\n", to);
        break;
    case KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ACKNOWLEDGED:
        printf("stored by %s (acknowledged)\n", to);
        break;
    case KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED:
        printf("EXPIRED before %s acknowledged it\n", to);
        break;
    case KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DUPLICATE:
        printf("sent again by %s (duplicate, dropped)\n", who);
        break;
    default:
        printf("%s %s %s\n", s_name(&ketenbus__audit_event__descriptor, r->event, "AUDIT_EVENT_", buf, sizeof buf),
               who, r->reason ? r->reason : "");
        break;
    }
}

static int s_same_message(const Ketenbus__AuditRecord *a, const Ketenbus__AuditRecord *b)
{
    return a->message_id.len == 16 && b->message_id.len == 16 && memcmp(a->message_id.data, b->message_id.data, 16) == 0;
}

/* A kind's records that retention pruned beyond the every-kind end: no
 * record of the kind below end is kept. */
typedef struct {
    int kind;         /* Ketenbus__Kind, 0: about no message */
    uint64_t end;     /* its records before this index were pruned */
    int has_time;     /* 1: until_us is known */
    int64_t until_us; /* the time of the record before end (a tombstone keeps it) */
} s_pruned_kind_t;

static int s_time_fn(uint64_t index, const uint8_t *raw, size_t len, void *arg)
{
    (void)index;
    s_pruned_kind_t *p = arg;
    kb_audit_tombstone_t ts;
    if (kb_audit_tombstone_parse(raw, len, &ts) == KB_OK) {
        p->until_us = ts.time_us;
        p->has_time = 1;
    } else {
        Ketenbus__AuditRecord *r = ketenbus__audit_record__unpack(NULL, len, raw);
        if (r) {
            p->until_us = r->time_us;
            p->has_time = 1;
            ketenbus__audit_record__free_unpacked(r, NULL);
        }
    }
    return 1;
}

/* The kinds (of the --kind filter, if any) whose records retention pruned
 * beyond the every-kind end, as far as that reaches into the period. */
static int s_pruned_kinds(kb_asrc_t *a, const s_opts_t *o, const kb_asrc_info_t *info,
                          s_pruned_kind_t out[KB_STORE_KINDS], size_t *n)
{
    *n = 0;
    for (int k = 0; k < (int)KB_STORE_KINDS; k++) {
        uint64_t end = info->pruned_kind[k];
        if (end <= info->pruned || (o->filter.kinds && !(o->filter.kinds & (1u << k))))
            continue;
        s_pruned_kind_t p = {k, end, 0, 0};
        uint64_t next;
        int done;
        int rc = kb_asrc_records(a, end - 1, KB_ASRC_END, 1, s_time_fn, &p, &next, &done);
        if (rc != KB_OK)
            return rc;
        if (o->filter.has_since && p.has_time && p.until_us < o->filter.since_us)
            continue; /* all before the period */
        out[(*n)++] = p;
    }
    return KB_OK;
}

static const char *s_kind_label(int kind)
{
    return kind == 0 ? KB_AUDITQ_KIND_OTHER : kb_kind_name(kind);
}

static int s_subject_text(const s_opts_t *o, const kb_asrc_info_t *info, const s_recs_t *c,
                          const s_pruned_kind_t *pk, size_t n_pk)
{
    /* what agencies wrote reaches the terminal only made safe */
    for (size_t i = 0; i < c->n; i++)
        if (s_tty_record(c->recs[i]) != KB_OK)
            return KB_ENOMEM;
    char now[32], buf[64], kb[64];
    kb_time_format(kb_now_us(), now);
    printf("Subject access report (GDPR article 15)\n"
           "log ketenbus/%s, %" PRIu64 " records; made %s\n",
           info->broker_id, info->size, now);
    if (o->filter.has_since || o->filter.has_until) {
        char a[32] = "the start", b[32] = "now";
        if (o->filter.has_since)
            kb_time_format(o->filter.since_us, a);
        if (o->filter.has_until)
            kb_time_format(o->filter.until_us, b);
        printf("period: %s to %s\n", a, b);
    }
    printf("about: ");
    for (size_t i = 0; i < o->n_identify; i++) {
        const char *eq = strchr(o->identify[i], '=');
        printf("%s%.*s", i ? ", " : "", (int)(eq - o->identify[i]), o->identify[i]);
    }
    if (o->n_identify)
        printf(" (hashed with the chain key; ");
    printf("subject key%s", o->filter.n_subjects == 1 ? "" : "s");
    for (size_t i = 0; i < o->filter.n_subjects; i++) {
        char hex[65];
        kb_hex(o->filter.subjects[i], 32, hex);
        printf(" %.16s...", hex);
    }
    printf("%s\n", o->n_identify ? ")" : "");
    if (info->pruned)
        printf("records before index %" PRIu64 " were pruned by retention and are not included\n", info->pruned);
    for (size_t i = 0; i < n_pk; i++) {
        char t[32] = "";
        if (pk[i].has_time)
            kb_time_format(pk[i].until_us, t);
        printf("%s records before index %" PRIu64 "%s%s%s were pruned by retention and are not included\n",
               s_kind_label(pk[i].kind), pk[i].end, t[0] ? " (up to " : "", t, t[0] ? ")" : "");
    }
    /* summary */
    size_t messages = 0, shared = 0, refused = 0, expired = 0;
    for (size_t i = 0; i < c->n; i++) {
        const Ketenbus__AuditRecord *r = c->recs[i];
        int first = 1;
        for (size_t j = 0; j < i && first; j++)
            first = !s_same_message(c->recs[j], r);
        if (r->message_id.len == 16 && first)
            messages++;
        shared += r->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED;
        refused += r->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED;
        expired += r->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED;
    }
    printf("\nSummary: %zu message%s about this person; shared %zu time%s with a recipient, refused %zu time%s, "
           "expired %zu; %zu audit records\n",
           messages, messages == 1 ? "" : "s", shared, shared == 1 ? "" : "s", refused, refused == 1 ? "" : "s",
           expired, c->n);
    /* per message, in order of first appearance */
    char *done = calloc(c->n ? c->n : 1, 1);
    for (size_t i = 0; done && i < c->n; i++) {
        if (done[i])
            continue;
        const Ketenbus__AuditRecord *r = c->recs[i];
        if (r->message_id.len == 16) {
            char id[37];
            kb_uuid_format(r->message_id.data, id);
            printf("\nmessage %s: %s from %s", id,
                   s_name(&ketenbus__kind__descriptor, r->kind, "KIND_", kb, sizeof kb),
                   r->agency && *r->agency ? r->agency : "?");
            printf(", purpose %s", s_name(&ketenbus__purpose__descriptor, r->purpose, "PURPOSE_", buf, sizeof buf));
            printf(", handling %s", s_name(&ketenbus__handling__descriptor, r->handling, "HANDLING_", buf, sizeof buf));
            if (r->legal_basis && *r->legal_basis)
                printf(", legal basis \"%s\"", r->legal_basis);
            printf("\n");
            for (size_t j = i; j < c->n; j++)
                if (!done[j] && s_same_message(c->recs[j], r)) {
                    done[j] = 1;
                    s_subject_line(c->recs[j]);
                }
        } else {
            done[i] = 1;
            printf("\nwithout a message:\n");
            s_subject_line(r);
        }
    }
    free(done);
    if (c->n == 0)
        printf("\nNo records about this person%s.\n", info->pruned || n_pk ? " (outside what was pruned)" : "");
    printf("\nThe contents of the messages are not in the audit trail: the agencies that sent and received "
           "them hold them.\n");
    return KB_OK;
}

static int s_cmd_subject(int argc, char **argv)
{
    const char *sub = argv[0];
    s_opts_t o;
    int prc = s_parse(argc, argv, G_SRC | G_FILTER | G_PERIOD | G_FORMAT, &o);
    if (prc)
        return prc > 0 ? KB_EXIT_OK : KB_EXIT_USAGE;
    int status = s_identify(&o, sub);
    if (status)
        return status;
    if (o.filter.n_subjects == 0) {
        fprintf(stderr, "ketenbus audit subject: --identify TYPE=VALUE (with --chain-key) or --subject HEX is "
                        "required\n");
        return KB_EXIT_USAGE;
    }
    kb_asrc_t *a = s_open(&o, sub);
    if (!a)
        return KB_EXIT_FAIL;
    kb_asrc_info_t info;
    s_pruned_kind_t pk[KB_STORE_KINDS];
    size_t n_pk = 0;
    int rc = kb_asrc_info(a, &info);
    if (rc == KB_OK)
        rc = s_pruned_kinds(a, &o, &info, pk, &n_pk);
    if (rc == KB_OK && o.json && (info.pruned || n_pk)) {
        /* a first line, before the records, says what retention took */
        json_object *j = json_object_new_object(), *list = json_object_new_array();
        if (info.pruned) {
            json_object *e = json_object_new_object();
            json_object_object_add(e, "kind", json_object_new_string("all"));
            json_object_object_add(e, "before_index", json_object_new_int64((int64_t)info.pruned));
            json_object_array_add(list, e);
        }
        for (size_t i = 0; i < n_pk; i++) {
            json_object *e = json_object_new_object();
            json_object_object_add(e, "kind", json_object_new_string(s_kind_label(pk[i].kind)));
            json_object_object_add(e, "before_index", json_object_new_int64((int64_t)pk[i].end));
            if (pk[i].has_time) {
                char t[32];
                kb_time_format(pk[i].until_us, t);
                json_object_object_add(e, "until_time", json_object_new_string(t));
            }
            json_object_array_add(list, e);
        }
        json_object_object_add(j, "pruned", list);
        rc = cli_json_line(stdout, j, JSON_C_TO_STRING_PLAIN);
        json_object_put(j);
    }
    if (rc == KB_OK && (o.json || o.csv)) {
        s_printer_t p = {stdout, o.json ? S_JSONL : S_CSV, 0, o.limit, 0, KB_OK, isatty(STDOUT_FILENO)};
        rc = s_query_all(a, &o.filter, s_print_record, &p, &p.n, o.limit);
        if (rc == KB_OK)
            rc = p.rc;
        kb_asrc_info_clear(&info);
    } else if (rc == KB_OK) {
        s_recs_t c = {0};
        uint64_t none = 0;
        rc = s_query_all(a, &o.filter, s_collect, &c, &none, 0);
        if (rc == KB_OK)
            rc = c.rc;
        if (rc == KB_OK)
            rc = s_subject_text(&o, &info, &c, pk, n_pk);
        s_recs_free(&c);
        kb_asrc_info_clear(&info);
    }
    kb_asrc_info_clear(&info);
    if (rc != KB_OK)
        fprintf(stderr, "ketenbus audit subject: %s\n", kb_last_error());
    kb_asrc_destroy(&a);
    return rc == KB_OK ? KB_EXIT_OK : KB_EXIT_FAIL;
}

/* ------------------------------------------------------------ checkpoint */

static int s_cmd_checkpoint(int argc, char **argv)
{
    const char *sub = argv[0];
    s_opts_t o;
    int prc = s_parse(argc, argv, G_SRC | G_NOTE | G_KEY, &o);
    if (prc)
        return prc > 0 ? KB_EXIT_OK : KB_EXIT_USAGE;
    if (o.n_kept || (!o.body != !o.sig)) {
        fprintf(stderr, "ketenbus audit checkpoint: --body and --sig go together%s\n",
                o.n_kept ? "; --checkpoint does not apply (use --note)" : "");
        return KB_EXIT_USAGE;
    }
    char *note = NULL;
    size_t len = 0;
    kb_asrc_t *a = NULL;
    if (o.note) {
        if (!(note = s_read_note(o.note, &len, sub)))
            return KB_EXIT_FAIL;
    } else {
        if (!(a = s_open(&o, sub)))
            return KB_EXIT_FAIL;
        kb_asrc_info_t info;
        if (kb_asrc_info(a, &info) != KB_OK) {
            fprintf(stderr, "ketenbus audit checkpoint: %s\n", kb_last_error());
            kb_asrc_destroy(&a);
            return KB_EXIT_FAIL;
        }
        if (!info.has_checkpoint) {
            fprintf(stderr, "ketenbus audit checkpoint: the broker has not signed a checkpoint yet\n");
            kb_asrc_info_clear(&info);
            kb_asrc_destroy(&a);
            return KB_EXIT_FAIL;
        }
        note = info.cp_note;
        len = info.cp_len;
        info.cp_note = NULL;
        kb_asrc_info_clear(&info);
    }
    int status = KB_EXIT_OK;
    if (o.body) {
        EVP_PKEY *pub = s_pub(&o, a, sub, 1);
        kb_note_checkpoint_t cp;
        if (!pub) {
            status = KB_EXIT_USAGE;
        } else if (kb_note_parse(note, len, &cp) != KB_OK ||
                   kb_note_export(note, len, cp.origin, pub, o.body, o.sig) != KB_OK) {
            fprintf(stderr, "ketenbus audit checkpoint: %s\n", kb_last_error());
            status = KB_EXIT_FAIL;
        } else {
            printf("signed bytes: %s (%zu bytes)\nsignature:    %s (64 bytes, Ed25519)\ncheck with:   openssl pkeyutl "
                   "-verify -pubin -inkey %s -rawin -in %s -sigfile %s\n",
                   o.body, cp.body_len, o.sig, o.key ? o.key : "broker.sign.pub.pem", o.body, o.sig);
        }
        EVP_PKEY_free(pub);
    } else if (o.out) {
        if (kb_file_write(o.out, note, len, 0644) != KB_OK) {
            fprintf(stderr, "ketenbus audit checkpoint: %s\n", kb_last_error());
            status = KB_EXIT_FAIL;
        }
    } else {
        fwrite(note, 1, len, stdout);
    }
    free(note);
    kb_asrc_destroy(&a);
    return status;
}

/* ------------------------------------------------------------ proofs */

/* The checkpoint note to prove against: of size (0: the latest). */
typedef struct {
    uint64_t want;      /* size wanted, 0: latest */
    char *note;         /* the note found (caller frees) */
    size_t len;         /* its length */
    uint64_t size;      /* its size */
} s_find_cp_t;

static int s_find_cp(uint64_t size, const char *note, size_t len, void *arg)
{
    s_find_cp_t *f = arg;
    if (f->want && size != f->want)
        return size > f->want;
    free(f->note);
    f->note = strndup(note, len);
    f->len = f->note ? len : 0;
    f->size = size;
    return f->want != 0;
}

/* Parse and (with pub) verify a note; prints what it found. */
static int s_check_note(const char *note, size_t len, EVP_PKEY *pub, kb_note_checkpoint_t *cp, const char *sub,
                        int *sig_ok)
{
    if (kb_note_parse(note, len, cp) != KB_OK) {
        fprintf(stderr, "ketenbus audit %s: the checkpoint does not parse: %s\n", sub, kb_last_error());
        return -1;
    }
    *sig_ok = -1; /* not checked */
    if (pub)
        *sig_ok = kb_note_verify(note, len, cp->origin, pub, cp) == KB_OK;
    return 0;
}

static int s_leaf_of_record(kb_asrc_t *a, uint64_t index, uint8_t leaf[KB_MERKLE_HASH_LEN], int *found,
                            int *pruned);

typedef struct {
    uint64_t index;                     /* wanted */
    int found;                          /* 1: leaf set */
    int pruned;                         /* 1: a tombstone's stored hash, not recomputed */
    uint8_t leaf[KB_MERKLE_HASH_LEN];   /* its leaf hash */
} s_leaf_t;

static int s_leaf_fn(uint64_t index, const uint8_t *raw, size_t len, void *arg)
{
    s_leaf_t *l = arg;
    if (index != l->index)
        return 1;
    kb_audit_tombstone_t ts;
    if (kb_audit_tombstone_parse(raw, len, &ts) == KB_OK) {
        memcpy(l->leaf, ts.leaf_hash, sizeof l->leaf);
        l->pruned = 1;
    } else if (kb_merkle_leaf_hash(raw, len, l->leaf) != KB_OK)
        return 1;
    l->found = 1;
    return 1;
}

static int s_leaf_of_record(kb_asrc_t *a, uint64_t index, uint8_t leaf[KB_MERKLE_HASH_LEN], int *found,
                            int *pruned)
{
    s_leaf_t l = {index, 0, 0, {0}};
    uint64_t next;
    int done;
    int rc = kb_asrc_records(a, index, KB_ASRC_END, 1, s_leaf_fn, &l, &next, &done);
    *found = l.found;
    *pruned = l.pruned;
    memcpy(leaf, l.leaf, sizeof l.leaf);
    return rc;
}

static void s_print_hashes(const uint8_t *h, size_t n, const char *indent)
{
    for (size_t i = 0; i < n; i++) {
        char hex[65];
        kb_hex(h + i * KB_MERKLE_HASH_LEN, KB_MERKLE_HASH_LEN, hex);
        printf("%s%s\n", indent, hex);
    }
}

static json_object *s_hash_list(const uint8_t *h, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        char hex[65];
        kb_hex(h + i * KB_MERKLE_HASH_LEN, KB_MERKLE_HASH_LEN, hex);
        json_object_array_add(a, json_object_new_string(hex));
    }
    return a;
}

static int s_cmd_proof(int argc, char **argv)
{
    const char *sub = argv[0];
    s_opts_t o;
    int prc = s_parse(argc, argv, G_SRC | G_INDEX | G_KEY | G_FORMAT, &o);
    if (prc)
        return prc > 0 ? KB_EXIT_OK : KB_EXIT_USAGE;
    if (!o.has_index || o.n_kept || o.csv) {
        fprintf(stderr, "ketenbus audit proof: --index N is required (--checkpoint and --csv do not apply)\n");
        return KB_EXIT_USAGE;
    }
    kb_asrc_t *a = s_open(&o, sub);
    if (!a)
        return KB_EXIT_FAIL;
    EVP_PKEY *pub = s_pub(&o, a, sub, 0);
    int status = KB_EXIT_FAIL;
    s_find_cp_t f = {o.has_size ? o.size : 0, NULL, 0, 0};
    uint8_t leaf[KB_MERKLE_HASH_LEN], mine[KB_MERKLE_HASH_LEN], proof[KB_MERKLE_PROOF_BYTES];
    size_t n = 0;
    int found = 0, pruned = 0, sig_ok = -1;
    kb_note_checkpoint_t cp;
    if (kb_asrc_checkpoints(a, s_find_cp, &f) != KB_OK || !f.note) {
        fprintf(stderr, "ketenbus audit proof: %s\n",
                f.note ? kb_last_error() : o.has_size ? "no checkpoint of that size" : "no checkpoint signed yet");
        goto done;
    }
    if (s_check_note(f.note, f.len, pub, &cp, sub, &sig_ok) != 0)
        goto done;
    if (o.index >= cp.size) {
        fprintf(stderr, "ketenbus audit proof: record %" PRIu64 " is not in the checkpoint's tree of %" PRIu64
                        " records (a later checkpoint will hold it)\n", o.index, cp.size);
        goto done;
    }
    if (kb_asrc_proof(a, o.index, cp.size, leaf, proof, &n) != KB_OK ||
        s_leaf_of_record(a, o.index, mine, &found, &pruned) != KB_OK) {
        fprintf(stderr, "ketenbus audit proof: %s\n", kb_last_error());
        goto done;
    }
    /* the leaf is recomputed from the record, never taken from the broker
     * (a pruned record's tombstone keeps only its hash) */
    int leaf_ok = found && memcmp(leaf, mine, sizeof leaf) == 0;
    int proof_ok = found && kb_merkle_verify_inclusion(mine, o.index, cp.size, proof, n, cp.root) == KB_OK;
    /* verified only with the note's signature checked by the broker's key */
    int verified = proof_ok && leaf_ok && sig_ok == 1;
    char hex[65], root_hex[65];
    kb_hex(found ? mine : leaf, sizeof leaf, hex);
    kb_hex(cp.root, sizeof cp.root, root_hex);
    if (o.json) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "index", json_object_new_int64((int64_t)o.index));
        json_object_object_add(j, "tree_size", json_object_new_int64((int64_t)cp.size));
        json_object_object_add(j, "leaf_hash", json_object_new_string(hex));
        json_object_object_add(j, "leaf_from", json_object_new_string(!found ? "missing" : pruned ? "tombstone"
                                                                                                  : "record"));
        json_object_object_add(j, "proof", s_hash_list(proof, n));
        json_object_object_add(j, "root", json_object_new_string(root_hex));
        json_object_object_add(j, "checkpoint", json_object_new_string(f.note));
        json_object_object_add(j, "verified", json_object_new_boolean(verified));
        json_object_object_add(j, "signature_checked", json_object_new_boolean(sig_ok >= 0));
        int jrc = cli_json_line(stdout, j, JSON_C_TO_STRING_PLAIN);
        json_object_put(j);
        if (jrc != KB_OK) {
            fprintf(stderr, "ketenbus audit proof: %s\n", kb_last_error());
            goto done;
        }
    } else {
        printf("record %" PRIu64 " in the tree of %" PRIu64 " records (%s)\n", o.index, cp.size, cp.origin);
        printf("leaf hash  %s  (%s)\n", hex,
               !found     ? "record missing"
               : !leaf_ok ? "record differs from the tree"
               : pruned   ? "stored in the tombstone of a pruned record: its contents are gone, the hash is "
                            "not recomputed"
                          : "recomputed from the record");
        printf("proof      %zu hashes, deepest first:\n", n);
        s_print_hashes(proof, n, "           ");
        printf("root       %s  (%s)\n", root_hex, proof_ok ? "the proof leads to it" : "the proof does NOT lead to it");
        printf("signature  %s\n\n%s", sig_ok < 0 ? "not checked (give --key or --config)"
                                      : sig_ok  ? "verified with the broker's key"
                                                : "does NOT verify with the broker's key",
               f.note);
    }
    status = verified ? KB_EXIT_OK : S_EXIT_FAILED_VERIFY;
    if (!(proof_ok && leaf_ok) || sig_ok == 0)
        fprintf(stderr, "ketenbus audit proof: the proof does not hold\n");
    else if (!verified)
        fprintf(stderr, "ketenbus audit proof: not verified: the checkpoint's signature was not checked (give the "
                        "broker's public key with --key FILE or --config FILE)\n");
done:
    free(f.note);
    EVP_PKEY_free(pub);
    kb_asrc_destroy(&a);
    return status;
}

static int s_cmd_consistency(int argc, char **argv)
{
    const char *sub = argv[0];
    s_opts_t o;
    int prc = s_parse(argc, argv, G_SRC | G_CONS | G_KEY | G_FORMAT, &o);
    if (prc)
        return prc > 0 ? KB_EXIT_OK : KB_EXIT_USAGE;
    if (!o.has_from_size || o.n_kept > 1 || o.csv) {
        fprintf(stderr, "ketenbus audit consistency: --from SIZE is required (at most one --checkpoint)\n");
        return KB_EXIT_USAGE;
    }
    kb_asrc_t *a = s_open(&o, sub);
    if (!a)
        return KB_EXIT_FAIL;
    EVP_PKEY *pub = s_pub(&o, a, sub, 0);
    int status = KB_EXIT_FAIL, sig_new = -1, sig_old = -1;
    s_find_cp_t newer = {o.has_to_size ? o.to_size : 0, NULL, 0, 0}, older = {o.from_size, NULL, 0, 0};
    kb_note_checkpoint_t cp_new, cp_old;
    uint8_t proof[KB_MERKLE_PROOF_BYTES];
    size_t n = 0;
    if (kb_asrc_checkpoints(a, s_find_cp, &newer) != KB_OK || !newer.note) {
        fprintf(stderr, "ketenbus audit consistency: no checkpoint%s to prove against\n",
                o.has_to_size ? " of that size" : "");
        goto done;
    }
    if (s_check_note(newer.note, newer.len, pub, &cp_new, sub, &sig_new) != 0)
        goto done;
    if (o.n_kept) {
        if (!(older.note = s_read_note(o.kept[0], &older.len, sub)))
            goto done;
    } else if (o.from_size > 0 && (kb_asrc_checkpoints(a, s_find_cp, &older) != KB_OK || !older.note)) {
        older.note = NULL; /* no stored note of that size: the proof is printed unchecked */
    }
    if (older.note && s_check_note(older.note, older.len, pub, &cp_old, sub, &sig_old) != 0)
        goto done;
    if (older.note && cp_old.size != o.from_size) {
        fprintf(stderr, "ketenbus audit consistency: the checkpoint given is of size %" PRIu64 ", not %" PRIu64 "\n",
                cp_old.size, o.from_size);
        goto done;
    }
    if (o.from_size > cp_new.size) {
        fprintf(stderr, "ketenbus audit consistency: size %" PRIu64 " is beyond the checkpoint of %" PRIu64 "\n",
                o.from_size, cp_new.size);
        status = S_EXIT_FAILED_VERIFY;
        goto done;
    }
    if (kb_asrc_consistency(a, o.from_size, cp_new.size, proof, &n) != KB_OK) {
        fprintf(stderr, "ketenbus audit consistency: %s\n", kb_last_error());
        goto done;
    }
    uint8_t empty[KB_MERKLE_HASH_LEN];
    kb_merkle_root_from_hashes(NULL, 0, empty);
    const uint8_t *old_root = older.note ? cp_old.root : o.from_size == 0 ? empty : NULL;
    int checked = old_root != NULL;
    int ok = checked && kb_merkle_verify_consistency(o.from_size, cp_new.size, proof, n, old_root, cp_new.root) == KB_OK;
    /* verified only with both roots known and every note's signature
     * checked by the broker's key */
    int verified = ok && sig_new == 1 && (!older.note || sig_old == 1);
    char new_hex[65], old_hex[65] = "";
    kb_hex(cp_new.root, sizeof cp_new.root, new_hex);
    if (old_root)
        kb_hex(old_root, KB_MERKLE_HASH_LEN, old_hex);
    if (o.json) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "from_size", json_object_new_int64((int64_t)o.from_size));
        json_object_object_add(j, "to_size", json_object_new_int64((int64_t)cp_new.size));
        if (old_root)
            json_object_object_add(j, "from_root", json_object_new_string(old_hex));
        json_object_object_add(j, "to_root", json_object_new_string(new_hex));
        json_object_object_add(j, "proof", s_hash_list(proof, n));
        json_object_object_add(j, "checkpoint", json_object_new_string(newer.note));
        json_object_object_add(j, "verified", json_object_new_boolean(verified));
        json_object_object_add(j, "checked", json_object_new_boolean(checked));
        json_object_object_add(j, "signature_checked", json_object_new_boolean(sig_new >= 0));
        int jrc = cli_json_line(stdout, j, JSON_C_TO_STRING_PLAIN);
        json_object_put(j);
        if (jrc != KB_OK) {
            fprintf(stderr, "ketenbus audit consistency: %s\n", kb_last_error());
            goto done;
        }
    } else {
        printf("the tree of %" PRIu64 " records extends the tree of %" PRIu64 " records (%s)\n", cp_new.size,
               o.from_size, cp_new.origin);
        printf("old root   %s\n", old_root ? old_hex : "(unknown: give the kept checkpoint with --checkpoint)");
        printf("new root   %s  (signature %s)\n", new_hex,
               sig_new < 0 ? "not checked" : sig_new ? "verified" : "does NOT verify");
        printf("proof      %zu hashes:\n", n);
        s_print_hashes(proof, n, "           ");
        printf("outcome    %s\n\n%s",
               !checked ? "not checked: no signed root of the old size is known"
               : !ok    ? "the proof does NOT hold"
               : verified ? "the proof holds"
                          : "the proof holds, but a signature was not checked or does NOT verify",
               newer.note);
    }
    status = verified ? KB_EXIT_OK : S_EXIT_FAILED_VERIFY;
    if (!checked)
        fprintf(stderr, "ketenbus audit consistency: not verified: no signed root of size %" PRIu64 " is known "
                        "(give the kept checkpoint with --checkpoint FILE)\n", o.from_size);
    else if (ok && sig_new < 0)
        fprintf(stderr, "ketenbus audit consistency: not verified: the checkpoints' signatures were not checked (give "
                        "the broker's public key with --key FILE or --config FILE)\n");
done:
    free(newer.note);
    free(older.note);
    EVP_PKEY_free(pub);
    kb_asrc_destroy(&a);
    return status;
}

/* ------------------------------------------------------------ verify */

/* Run verification with the kept notes of o; prints nothing. */
static int s_verify(const s_opts_t *o, kb_asrc_t *a, EVP_PKEY *pub, kb_verify_result_t *res, FILE *progress)
{
    kb_verify_kept_t kept[S_MAX_KEPT];
    char *texts[S_MAX_KEPT] = {0};
    int rc = KB_OK;
    for (size_t i = 0; i < o->n_kept; i++) {
        size_t len = 0;
        if (kb_file_read(o->kept[i], S_NOTE_FILE_MAX, &texts[i], &len) != KB_OK) {
            rc = KB_EIO;
            break;
        }
        kept[i].path = o->kept[i];
        kept[i].note = texts[i];
        kept[i].len = len;
    }
    kb_asrc_info_t info;
    char origin[KB_ASRC_ID_MAX + 16] = "";
    if (rc == KB_OK && (rc = kb_asrc_info(a, &info)) == KB_OK) {
        /* with a chain file, the log must be that broker's */
        if (o->src.config && info.broker_id[0])
            snprintf(origin, sizeof origin, "ketenbus/%s", info.broker_id);
        kb_asrc_info_clear(&info);
    }
    if (rc == KB_OK)
        rc = kb_audit_verify(a, pub, origin[0] ? origin : NULL, kept, o->n_kept, progress, res);
    for (size_t i = 0; i < o->n_kept; i++)
        free(texts[i]);
    return rc;
}

/* Open the source and the broker's public signing key, both required
 * (verify, report). Returns KB_EXIT_OK, or the exit status after saying why. */
static int s_open_keyed(s_opts_t *o, const char *sub, kb_asrc_t **a, EVP_PKEY **pub)
{
    *a = s_open(o, sub);
    if (!*a)
        return KB_EXIT_FAIL;
    *pub = s_pub(o, *a, sub, 1);
    if (!*pub) {
        kb_asrc_destroy(a);
        return KB_EXIT_USAGE;
    }
    return KB_EXIT_OK;
}

static int s_cmd_verify(int argc, char **argv)
{
    const char *sub = argv[0];
    s_opts_t o;
    int prc = s_parse(argc, argv, G_SRC | G_KEY | G_FORMAT, &o);
    if (prc)
        return prc > 0 ? KB_EXIT_OK : KB_EXIT_USAGE;
    if (o.csv || o.limit) {
        fprintf(stderr, "ketenbus audit verify: --csv and --limit do not apply\n");
        return KB_EXIT_USAGE;
    }
    kb_asrc_t *a = NULL;
    EVP_PKEY *pub = NULL;
    int ostatus = s_open_keyed(&o, sub, &a, &pub);
    if (ostatus != KB_EXIT_OK)
        return ostatus;
    kb_verify_result_t res;
    int rc = s_verify(&o, a, pub, &res, o.json ? NULL : stderr);
    int status = KB_EXIT_FAIL;
    if (rc != KB_OK) {
        fprintf(stderr, "ketenbus audit verify: %s\n", kb_last_error());
    } else if (o.json) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "ok", json_object_new_boolean(res.ok));
        json_object_object_add(j, "log", json_object_new_string(res.origin));
        json_object_object_add(j, "records", json_object_new_int64((int64_t)res.size));
        json_object_object_add(j, "checked", json_object_new_int64((int64_t)res.checked));
        json_object_object_add(j, "checkpoints", json_object_new_int64((int64_t)res.checkpoints));
        json_object_object_add(j, "checkpoints_verified", json_object_new_int64((int64_t)res.checkpoints_ok));
        if (res.has_first_bad)
            json_object_object_add(j, "first_bad", json_object_new_int64((int64_t)res.first_bad));
        if (res.pruned_end > res.pruned_first) {
            json_object *p = json_object_new_array();
            json_object_array_add(p, json_object_new_int64((int64_t)res.pruned_first));
            json_object_array_add(p, json_object_new_int64((int64_t)res.pruned_end));
            json_object_object_add(j, "pruned", p);
            json_object_object_add(j, "pruned_records", json_object_new_int64((int64_t)res.pruned));
        }
        if (res.has_checkpoint) {
            char hex[65];
            kb_hex(res.cp_root, sizeof res.cp_root, hex);
            json_object_object_add(j, "checkpoint_size", json_object_new_int64((int64_t)res.cp_size));
            json_object_object_add(j, "checkpoint_root", json_object_new_string(hex));
        }
        if (res.ok) { /* records after the last signed checkpoint */
            json_object_object_add(j, "unverified", json_object_new_int64((int64_t)res.unverified));
            if (res.unverified)
                json_object_object_add(j, "unverified_from", json_object_new_int64((int64_t)res.unverified_from));
        }
        if (o.n_kept)
            json_object_object_add(j, "kept_extended", json_object_new_int64((int64_t)res.kept_ok));
        json_object_object_add(j, "message", json_object_new_string(res.message));
        json_object *f = json_object_new_array();
        for (size_t i = 0; i < res.n_findings; i++)
            json_object_array_add(f, json_object_new_string(res.findings[i]));
        json_object_object_add(j, "findings", f);
        int jrc = cli_json_line(stdout, j, JSON_C_TO_STRING_PLAIN);
        json_object_put(j);
        if (jrc != KB_OK)
            fprintf(stderr, "ketenbus audit verify: %s\n", kb_last_error());
        else
            status = res.ok ? KB_EXIT_OK : S_EXIT_FAILED_VERIFY;
    } else {
        printf("audit log %s: %" PRIu64 " records, %" PRIu64 " checkpoint%s (%" PRIu64 " verified)\n",
               res.origin[0] ? res.origin : "(no checkpoint)", res.size, res.checkpoints,
               res.checkpoints == 1 ? "" : "s", res.checkpoints_ok);
        if (res.ok) {
            printf("OK %s\n", res.message);
            if (res.has_checkpoint) {
                char hex[65];
                kb_hex(res.cp_root, sizeof res.cp_root, hex);
                printf("latest checkpoint: size %" PRIu64 ", root %s\n", res.cp_size, hex);
            }
            if (res.pruned == res.pruned_end - res.pruned_first && res.pruned > 0)
                printf("pruned: records [%" PRIu64 ", %" PRIu64 ") hold only their time and leaf hash (retention); "
                       "their hashes are part of the verified tree\n",
                       res.pruned_first, res.pruned_end);
            else if (res.pruned > 0)
                printf("pruned: %" PRIu64 " records in [%" PRIu64 ", %" PRIu64 ") hold only their time and leaf hash "
                       "(retention; the %" PRIu64 " others in that range are kept); their hashes are part of the "
                       "verified tree\n",
                       res.pruned, res.pruned_first, res.pruned_end,
                       res.pruned_end - res.pruned_first - res.pruned);
            if (o.n_kept)
                printf("your checkpoint%s: the log extends %" PRIu64 " of %zu\n", o.n_kept == 1 ? "" : "s",
                       res.kept_ok, o.n_kept);
        } else {
            printf("FAILED: %s\n", res.message);
            if (res.has_first_bad)
                printf("first bad record: %" PRIu64 "\n", res.first_bad);
            for (size_t i = 0; i < res.n_findings; i++)
                if (strcmp(res.findings[i], res.message) != 0)
                    printf("also: %s\n", res.findings[i]);
        }
        status = res.ok ? KB_EXIT_OK : S_EXIT_FAILED_VERIFY;
    }
    if (rc == KB_OK)
        kb_verify_result_clear(&res);
    EVP_PKEY_free(pub);
    kb_asrc_destroy(&a);
    return status;
}

/* ------------------------------------------------------------ prune */

/* Prune records of kind (KB_PRUNE_ALL: all) older than before_us, chunk
 * by chunk, saying what was done. */
static int s_prune_kind(kb_asrc_t *a, int kind, int64_t before_us, const char *who, const char *when)
{
    char what[48];
    if (kind == KB_PRUNE_ALL)
        snprintf(what, sizeof what, "records");
    else
        snprintf(what, sizeof what, "%s records", kind == 0 ? KB_AUDITQ_KIND_OTHER : kb_kind_name(kind));
    uint64_t total = 0, first = UINT64_MAX, end = 0;
    kb_auditq_prune_t p;
    int rc;
    for (;;) {
        rc = kb_asrc_prune(a, kind, before_us, who, &p);
        if (rc != KB_OK)
            break;
        if (p.logged) {
            if (first == UINT64_MAX)
                first = p.first;
            end = p.end;
            total += p.count;
            printf("pruned %" PRIu64 " %s in [%" PRIu64 ", %" PRIu64 ") (audit record %" PRIu64 ")\n", p.count,
                   what, p.first, p.end, p.record);
        }
        if (!p.more)
            break;
    }
    if (rc != KB_OK) {
        fprintf(stderr, "ketenbus audit prune: %s\n", kb_last_error());
        return rc;
    }
    if (first == UINT64_MAX)
        printf("nothing to prune before %s: %s below %" PRIu64 " were pruned already\n", when, what, p.first);
    else
        printf("done: %" PRIu64 " %s older than %s pruned in [%" PRIu64 ", %" PRIu64 ")\n", total, what, when,
               first, end);
    if (p.limit < p.target)
        printf("kept: %s in [%" PRIu64 ", %" PRIu64 ") are older too but stay until they are under a "
               "checkpoint and outside the newest leaf tile\n",
               what, p.limit > p.end ? p.limit : p.end, p.target);
    return KB_OK;
}

static int s_cmd_prune(int argc, char **argv)
{
    const char *sub = argv[0];
    s_opts_t o;
    int prc = s_parse(argc, argv, G_SRC | G_PRUNE, &o);
    if (prc)
        return prc > 0 ? KB_EXIT_OK : KB_EXIT_USAGE;
    if (!o.has_before) {
        fprintf(stderr, "ketenbus audit prune: --before TIME is required\n");
        return KB_EXIT_USAGE;
    }
    kb_asrc_t *a = s_open(&o, sub);
    if (!a)
        return KB_EXIT_FAIL;
    char who[128], when[32];
    snprintf(who, sizeof who, "user %.64s", s_user());
    kb_time_format(o.before_us, when);
    int rc = KB_OK;
    if (!o.filter.kinds) {
        rc = s_prune_kind(a, KB_PRUNE_ALL, o.before_us, who, when);
    } else {
        for (int k = 0; rc == KB_OK && k < (int)KB_STORE_KINDS; k++)
            if (o.filter.kinds & (1u << k))
                rc = s_prune_kind(a, k, o.before_us, who, when);
    }
    kb_asrc_destroy(&a);
    return rc == KB_OK ? KB_EXIT_OK : KB_EXIT_FAIL;
}

/* ------------------------------------------------------------ report */

static int s_cmd_report(int argc, char **argv)
{
    const char *sub = argv[0];
    s_opts_t o;
    int prc = s_parse(argc, argv, G_SRC | G_PERIOD | G_EXPORT | G_KEY, &o);
    if (prc)
        return prc > 0 ? KB_EXIT_OK : KB_EXIT_USAGE;
    if (!o.out || o.format) {
        fprintf(stderr, "ketenbus audit report: --out FILE is required (--format does not apply)\n");
        return KB_EXIT_USAGE;
    }
    kb_asrc_t *a = NULL;
    EVP_PKEY *pub = NULL;
    int ostatus = s_open_keyed(&o, sub, &a, &pub);
    if (ostatus != KB_EXIT_OK)
        return ostatus;
    kb_verify_result_t res;
    s_recs_t c = {0};
    int verified = 0;
    char partial[KB_VERIFY_MESSAGE_MAX + 128] = "";
    int rc = s_verify(&o, a, pub, &res, NULL);
    if (rc == KB_OK) {
        verified = 1;
        kb_auditq_filter_t f;
        memset(&f, 0, sizeof f);
        f.has_since = o.filter.has_since;
        f.since_us = o.filter.since_us;
        f.has_until = o.filter.has_until;
        f.until_us = o.filter.until_us;
        uint64_t none = 0;
        rc = s_query_all(a, &f, s_collect, &c, &none, 0);
        if (rc == KB_OK)
            rc = c.rc;
        if (rc != KB_OK && !res.ok && kb_asrc_is_damage(rc)) {
            /* verification named the damage: the page says so, with the
             * period's records that could be read before it */
            snprintf(partial, sizeof partial, "%s; this report holds only the %zu records of the period read before "
                     "the damage", res.message, c.n);
            rc = KB_OK;
        }
    }
    char tmp[4200], root_hex[65] = "";
    if (rc == KB_OK && kb_fmt(tmp, sizeof tmp, "%s.tmp", o.out) != KB_OK)
        rc = kb_error_set(KB_ETOOBIG, "--out path too long");
    if (rc == KB_OK) {
        kb_report_t r;
        memset(&r, 0, sizeof r);
        r.chain = res.origin[0] ? res.origin : "ketenbus";
        /* Without --since the period starts at its first record; with none,
         * where it ends (an empty period, also before every record), or now. */
        if (o.filter.has_since)
            r.since_us = o.filter.since_us;
        else if (c.n)
            r.since_us = c.recs[0]->time_us;
        else
            r.since_us = o.filter.has_until ? o.filter.until_us : kb_now_us();
        r.until_us = o.filter.has_until ? o.filter.until_us : c.n ? c.recs[c.n - 1]->time_us + 1 : r.since_us;
        /* a clock step back could put a record before the first one's time */
        for (size_t i = 0; !o.filter.has_since && i < c.n; i++)
            if (c.recs[i]->time_us < r.since_us)
                r.since_us = c.recs[i]->time_us;
        for (size_t i = 0; !o.filter.has_until && i < c.n; i++)
            if (c.recs[i]->time_us >= r.until_us)
                r.until_us = c.recs[i]->time_us + 1;
        r.generated_us = kb_now_us();
        r.records = (const Ketenbus__AuditRecord *const *)c.recs;
        r.n_records = c.n;
        r.verify.ok = res.ok;
        r.verify.records = res.checked;
        r.verify.has_first_bad = res.has_first_bad;
        r.verify.first_bad = res.first_bad;
        r.verify.pruned_first = res.pruned_first;
        r.verify.pruned_end = res.pruned_end;
        r.verify.pruned = res.pruned;
        r.verify.unverified = res.unverified;
        r.verify.unverified_from = res.unverified_from;
        r.verify.checkpoint = res.cp_note;
        r.verify.tree_size = res.cp_size;
        if (res.has_checkpoint) {
            kb_hex(res.cp_root, sizeof res.cp_root, root_hex);
            r.verify.root_hex = root_hex;
        }
        r.verify.message = partial[0] ? partial : res.message;
        FILE *f = fopen(tmp, "w");
        if (!f) {
            rc = kb_error_set(KB_EIO, "cannot write %s", tmp);
        } else {
            rc = kb_report_html(f, &r);
            if (fclose(f) != 0 && rc == KB_OK)
                rc = kb_error_set(KB_EIO, "writing %s failed", tmp);
            if (rc == KB_OK && rename(tmp, o.out) != 0)
                rc = kb_error_set(KB_EIO, "cannot rename %s to %s", tmp, o.out);
            if (rc != KB_OK)
                unlink(tmp);
        }
    }
    if (rc != KB_OK)
        fprintf(stderr, "ketenbus audit report: %s\n", kb_last_error());
    else
        printf("report of %zu records written to %s; verification: %s %s\n", c.n, o.out, res.ok ? "OK" : "FAILED",
               partial[0] ? partial : res.message);
    int status = rc != KB_OK ? KB_EXIT_FAIL : res.ok ? KB_EXIT_OK : S_EXIT_FAILED_VERIFY;
    s_recs_free(&c);
    if (verified)
        kb_verify_result_clear(&res);
    EVP_PKEY_free(pub);
    kb_asrc_destroy(&a);
    return status;
}

/* ------------------------------------------------------------ dispatch */

int cmd_audit(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        s_usage(argc < 2 ? stderr : stdout, NULL);
        return argc < 2 ? KB_EXIT_USAGE : KB_EXIT_OK;
    }
    const char *sub = argv[1];
    argc--;
    argv++;
    if (strcmp(sub, "query") == 0)
        return s_cmd_query(argc, argv, 0);
    if (strcmp(sub, "export") == 0)
        return s_cmd_query(argc, argv, 1);
    if (strcmp(sub, "subject") == 0)
        return s_cmd_subject(argc, argv);
    if (strcmp(sub, "checkpoint") == 0)
        return s_cmd_checkpoint(argc, argv);
    if (strcmp(sub, "proof") == 0)
        return s_cmd_proof(argc, argv);
    if (strcmp(sub, "consistency") == 0)
        return s_cmd_consistency(argc, argv);
    if (strcmp(sub, "verify") == 0)
        return s_cmd_verify(argc, argv);
    if (strcmp(sub, "prune") == 0)
        return s_cmd_prune(argc, argv);
    if (strcmp(sub, "report") == 0)
        return s_cmd_report(argc, argv);
    fprintf(stderr, "ketenbus audit: unknown command '%s'\n\n", sub);
    s_usage(stderr, NULL);
    return KB_EXIT_USAGE;
}
