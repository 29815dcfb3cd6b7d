/*
 * report_html.c - the HTML page of `ketenbus audit report` (see
 * report_html.h for what it shows and how it is called).
 *
 * Two steps: s_stats_build() counts everything in one pass over the records
 * (agencies of the flow matrix, records per UTC day and kind, refusals
 * sorted into groups), then the s_section_*() writers print the page from
 * those counts. The writers use plain stdio and do not check each call:
 * the stream's error flag is sticky, and kb_report_html() checks it once
 * after fflush().
 *
 * Invariants: every string from a record or the verification outcome goes
 * through kb_report_escape(); only static text and numbers are printed
 * unescaped. The page names no URL at all (the SVG needs no xmlns inside
 * HTML), and its Content-Security-Policy forbids scripts and fetches, so a
 * reason that slipped through unescaped still could not run or call out.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_util.h"
#include "report_html.h"

#define S_US_PER_DAY   86400000000LL
#define S_N_KINDS      6       /* KIND_SIGNAL..KIND_EXPIRY_NOTICE at 0..4, anything else at 5 */
#define S_KIND_OTHER   5
#define S_N_EVENTS     64      /* count slots: declared AUDIT_EVENT_* below 63, anything else at 63 */
#define S_EVENT_OTHER  63
#define S_ENUM_TEXT    48      /* longest enum value name shown ("connect_refused") */
#define S_TIME_LEN     32      /* kb_time_format() output */

/* Volume chart geometry, in SVG user units (the SVG scales to the page). */
#define S_SVG_W        1100
#define S_SVG_TOP      44      /* legend above the plot */
#define S_SVG_LEFT     60      /* y axis labels */
#define S_SVG_RIGHT    16
#define S_SVG_PLOT_H   260
#define S_SVG_BOTTOM   56      /* x axis labels and title */
#define S_SVG_LABELS   14      /* most x axis labels */
#define S_SVG_LEGEND_W 150     /* room per legend entry */

/* Okabe-Ito colours: told apart with the common colour-vision deficiencies. */
static const char *const s_kind_colour[S_N_KINDS] = {
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#999999",
};

/* One group of refusals: same rule, code and reason. */
typedef struct {
    const Ketenbus__AuditRecord *head; /* its first record (rule, code and reason of all) */
    size_t start;                      /* index of head in s_stats_t.refused */
    size_t count;                      /* records in the group */
} s_group_t;

/* One sender -> recipient pair inside a refusal group. */
typedef struct {
    const char *from; /* sender */
    const char *to;   /* recipient ("" when the whole message was refused) */
    size_t count;     /* refusals between them */
} s_pair_t;

/* Everything the page shows, counted once. Strings are borrowed from the records. */
typedef struct {
    uint64_t events[S_N_EVENTS];           /* records per event */
    uint64_t expired_referrals;            /* EXPIRED records of referrals */
    const char **agencies;                 /* senders and recipients of ROUTED records, sorted, unique */
    size_t n_agencies;                     /* their number */
    uint64_t *flow;                        /* [from][to][kind] ROUTED counts, n_agencies^2 * S_N_KINDS */
    int64_t day0;                          /* first day of the chart (kb_report_day) */
    size_t n_days;                         /* days in the chart, 0 for an empty period */
    uint64_t *volume;                      /* [day][kind] RECEIVED counts, n_days * S_N_KINDS */
    const Ketenbus__AuditRecord **refused; /* REFUSED records, sorted by rule, code, reason, pair */
    size_t n_refused;                      /* their number */
    s_group_t *groups;                     /* refusal groups, by rule then count */
    size_t n_groups;                       /* their number */
    s_pair_t *pairs;                       /* scratch for one group's pairs (n_refused entries) */
} s_stats_t;

/* ------------------------------------------------------------- escaping */

static const char *s_str(const char *s)
{
    return s ? s : "";
}

/* Length of the valid UTF-8 sequence at p (at most left bytes), 0 if invalid. */
static size_t s_utf8_seq(const unsigned char *p, size_t left)
{
    size_t n = p[0] < 0x80 ? 1 : p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
    if (n > left || !kb_utf8_valid((const char *)p, n))
        return 0;
    return n;
}

int kb_report_escape(FILE *out, const char *s)
{
    if (!out)
        return kb_error_set(KB_EINVAL, "escape: no stream");
    const unsigned char *p = (const unsigned char *)s_str(s);
    size_t left = strlen((const char *)p);
    while (left > 0) {
        size_t n = s_utf8_seq(p, left);
        const char *rep = NULL;
        if (n == 0) {
            rep = "\xef\xbf\xbd";
            n = 1;
        } else if (n == 1) {
            switch (p[0]) {
            case '&': rep = "&amp;"; break;
            case '<': rep = "&lt;"; break;
            case '>': rep = "&gt;"; break;
            case '"': rep = "&quot;"; break;
            case '\'': rep = "&#39;"; break;
            case '\t': case '\n': break;
            default:
                if (p[0] < 0x20 || p[0] == 0x7f)
                    rep = "\xef\xbf\xbd";
            }
        } else if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
            /* U+0080-009F, C1 controls: U+009B is an 8-bit CSI to a terminal
             * a reader may copy the text into. */
            rep = "\xef\xbf\xbd";
        } else if (n == 3 && p[0] == 0xe2 &&
                   ((p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
                    (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9))) {
            /* U+202A-202E, U+2066-2069: would reorder the text around them,
             * making "gem-x" read as another agency. */
            rep = "\xef\xbf\xbd";
        }
        if (rep)
            fputs(rep, out);
        else
            fwrite(p, 1, n, out);
        p += n;
        left -= n;
    }
    return ferror(out) ? kb_error_set(KB_EIO, "write report: %s", strerror(errno)) : KB_OK;
}

int64_t kb_report_day(int64_t time_us)
{
    int64_t d = time_us / S_US_PER_DAY;
    if (time_us % S_US_PER_DAY < 0)
        d--;
    return d;
}

/* Escaped s, or placeholder (static HTML) when s is empty. */
static void s_esc_or(FILE *out, const char *s, const char *placeholder)
{
    if (s && *s)
        kb_report_escape(out, s);
    else
        fputs(placeholder, out);
}

/* Escaped s isolated in <bdi>, or placeholder (static HTML) when s is
 * empty. Senders choose agency names: one in a right-to-left script next to
 * another would otherwise join it in one right-to-left run, and "from -> to"
 * would show the two the other way round under an arrow that still points
 * right. */
static void s_bdi_or(FILE *out, const char *s, const char *placeholder)
{
    if (s && *s) {
        fputs("<bdi>", out);
        kb_report_escape(out, s);
        fputs("</bdi>", out);
    } else {
        fputs(placeholder, out);
    }
}

/* ------------------------------------------------------------- names and times */

static int s_kind_slot(int kind)
{
    return kind >= KETENBUS__KIND__KIND_SIGNAL && kind <= KETENBUS__KIND__KIND_EXPIRY_NOTICE ? kind - 1
                                                                                             : S_KIND_OTHER;
}

static const char *s_kind_label(int slot)
{
    return slot == S_KIND_OTHER ? "other" : kb_kind_name(slot + 1);
}

/* The lowercase name of an enum value without its prefix, from the
 * generated descriptor, so events added to the proto show by name
 * ("AUDIT_EVENT_CONNECT_REFUSED" -> "connect_refused"); NULL if the value
 * is not declared. */
static const char *s_enum_name(const ProtobufCEnumDescriptor *d, int value, const char *prefix,
                               char out[S_ENUM_TEXT])
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    if (!v)
        return NULL;
    const char *name = v->name;
    size_t plen = strlen(prefix);
    if (strncmp(name, prefix, plen) == 0)
        name += plen;
    size_t i = 0;
    for (; name[i] && i < S_ENUM_TEXT - 1; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    out[i] = '\0';
    return out;
}

static const char *s_event_label(int event, char out[S_ENUM_TEXT])
{
    const char *name = s_enum_name(&ketenbus__audit_event__descriptor, event, "AUDIT_EVENT_", out);
    return name ? name : "other";
}

static int s_event_slot(int event)
{
    char name[S_ENUM_TEXT];
    if (event < 0 || event >= S_EVENT_OTHER || !s_enum_name(&ketenbus__audit_event__descriptor, event, "", name))
        return S_EVENT_OTHER;
    return event;
}

static const char *s_code_label(int code, char out[S_ENUM_TEXT])
{
    const char *name = s_enum_name(&ketenbus__reject_code__descriptor, code, "REJECT_", out);
    return name ? name : "unknown";
}

/* "2026-11-23T10:00:00Z": ISO 8601 UTC to the second. */
static void s_time(int64_t us, char out[S_TIME_LEN])
{
    char full[S_TIME_LEN];
    kb_time_format(us, full);
    snprintf(out, S_TIME_LEN, "%.19sZ", full);
}

/* "2026-11-23", or "11-23" when short. */
static void s_day(int64_t day, int short_form, char out[S_TIME_LEN])
{
    char full[S_TIME_LEN];
    kb_time_format(day * S_US_PER_DAY, full);
    if (short_form)
        snprintf(out, S_TIME_LEN, "%.5s", full + 5);
    else
        snprintf(out, S_TIME_LEN, "%.10s", full);
}

/* <time datetime="...">...</time> to the second. */
static void s_put_time(FILE *out, int64_t us)
{
    char t[S_TIME_LEN];
    s_time(us, t);
    fprintf(out, "<time datetime=\"%s\">%s</time>", t, t);
}

/* A message id: UUID text for 16 bytes, else hex (cut at KB_REPORT_MAX_ID bytes). */
static void s_put_message_id(FILE *out, ProtobufCBinaryData id)
{
    if (id.len == 0 || !id.data) {
        fputs("<span class=\"none\">&#8212;</span>", out);
        return;
    }
    if (id.len == 16) {
        char text[37];
        kb_uuid_format(id.data, text);
        fprintf(out, "<code>%s</code>", text);
        return;
    }
    size_t n = id.len > KB_REPORT_MAX_ID ? KB_REPORT_MAX_ID : id.len;
    char hex[2 * KB_REPORT_MAX_ID + 1];
    kb_hex(id.data, n, hex);
    fprintf(out, "<code>%s%s</code>", hex, n < id.len ? "&#8230;" : "");
}

/* ------------------------------------------------------------- counting */

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static size_t s_agency_index(const s_stats_t *st, const char *name)
{
    const char **hit = bsearch(&name, st->agencies, st->n_agencies, sizeof *st->agencies, s_cmp_str);
    return (size_t)(hit - st->agencies);
}

/* Who decided a refusal: a named rule, the default deny (no rule allowed
 * it), or the checks before the rules (malformed, bad signature, ...),
 * which name no rule either. Also the order of the refusals table. */
enum { S_BY_RULE, S_BY_DEFAULT_DENY, S_BY_CHECKS };

static int s_decider(const Ketenbus__AuditRecord *rec)
{
    if (*s_str(rec->rule_id))
        return S_BY_RULE;
    switch (rec->code) {
    case KETENBUS__REJECT_CODE__REJECT_NONE:
    case KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED:
    case KETENBUS__REJECT_CODE__REJECT_UNKNOWN_RECIPIENT:
        return S_BY_DEFAULT_DENY;
    default:
        return S_BY_CHECKS;
    }
}

/* Same decider and rule id: one block of the refusals table. */
static int s_cmp_decider(const Ketenbus__AuditRecord *x, const Ketenbus__AuditRecord *y)
{
    int dx = s_decider(x), dy = s_decider(y);
    if (dx != dy)
        return dx - dy;
    return strcmp(s_str(x->rule_id), s_str(y->rule_id));
}

/* Refusals sort by decider and rule id, code, reason, then the pair, so
 * that a group and its pairs are contiguous. */
static int s_cmp_refusal(const void *a, const void *b)
{
    const Ketenbus__AuditRecord *x = *(const Ketenbus__AuditRecord *const *)a;
    const Ketenbus__AuditRecord *y = *(const Ketenbus__AuditRecord *const *)b;
    int c = s_cmp_decider(x, y);
    if (c)
        return c;
    if (x->code != y->code)
        return x->code < y->code ? -1 : 1;
    if ((c = strcmp(s_str(x->reason), s_str(y->reason))) != 0)
        return c;
    if ((c = strcmp(s_str(x->agency), s_str(y->agency))) != 0)
        return c;
    return strcmp(s_str(x->counterpart), s_str(y->counterpart));
}

static int s_same_group(const Ketenbus__AuditRecord *x, const Ketenbus__AuditRecord *y)
{
    return strcmp(s_str(x->rule_id), s_str(y->rule_id)) == 0 && x->code == y->code &&
           strcmp(s_str(x->reason), s_str(y->reason)) == 0;
}

/* Groups: by decider and rule as the records are, then most frequent reason first. */
static int s_cmp_group(const void *a, const void *b)
{
    const s_group_t *x = a, *y = b;
    int c = s_cmp_decider(x->head, y->head);
    if (c)
        return c;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->start < y->start ? -1 : 1;
}

static int s_cmp_pair(const void *a, const void *b)
{
    const s_pair_t *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    int c = strcmp(x->from, y->from);
    return c ? c : strcmp(x->to, y->to);
}

static void s_stats_free(s_stats_t *st)
{
    free(st->agencies);
    free(st->flow);
    free(st->volume);
    free(st->refused);
    free(st->groups);
    free(st->pairs);
    memset(st, 0, sizeof *st);
}

/* n zeroed items of size sz, or NULL: for n == 0 with *rc = KB_OK, else
 * with *rc = KB_ENOMEM (KB_ETOOBIG if n * sz overflows). */
static void *s_calloc(size_t n, size_t sz, const char *what, int *rc)
{
    *rc = KB_OK;
    if (n == 0)
        return NULL;
    if (n > SIZE_MAX / sz) {
        *rc = kb_error_set(KB_ETOOBIG, "report: too many %s", what);
        return NULL;
    }
    void *p = calloc(n, sz);
    if (!p)
        *rc = kb_error_set(KB_ENOMEM, "report: out of memory for %s", what);
    return p;
}

/* Chart days: the period's, narrowed to the records' span when the period
 * is too long to chart (an open --since). */
static int s_days(s_stats_t *st, const kb_report_t *r, int64_t tmin, int64_t tmax)
{
    st->n_days = 0;
    if (r->since_us >= r->until_us)
        return KB_OK;
    int64_t lo = kb_report_day(r->since_us), hi = kb_report_day(r->until_us - 1);
    if (hi - lo + 1 > (int64_t)KB_REPORT_MAX_DAYS) {
        if (r->n_records == 0)
            return KB_OK;
        lo = kb_report_day(tmin);
        hi = kb_report_day(tmax);
        if (hi - lo + 1 > (int64_t)KB_REPORT_MAX_DAYS)
            return kb_error_set(KB_ETOOBIG, "report: the records span %" PRId64 " days; at most %u fit a report",
                                hi - lo + 1, KB_REPORT_MAX_DAYS);
    }
    st->day0 = lo;
    st->n_days = (size_t)(hi - lo + 1);
    return KB_OK;
}

static int s_stats_build(s_stats_t *st, const kb_report_t *r)
{
    size_t n_names = 0;
    int64_t tmin = 0, tmax = 0;
    for (size_t i = 0; i < r->n_records; i++) {
        const Ketenbus__AuditRecord *rec = r->records[i];
        if (!rec)
            return kb_error_set(KB_EINVAL, "report: record %zu is NULL", i);
        if (rec->time_us < r->since_us || rec->time_us >= r->until_us) {
            char t[S_TIME_LEN];
            s_time(rec->time_us, t);
            return kb_error_set(KB_EINVAL, "report: record %" PRIu64 " (%s) lies outside the period", rec->index, t);
        }
        if (i == 0 || rec->time_us < tmin)
            tmin = rec->time_us;
        if (i == 0 || rec->time_us > tmax)
            tmax = rec->time_us;
        st->events[s_event_slot(rec->event)]++;
        if (rec->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED && rec->kind == KETENBUS__KIND__KIND_REFERRAL)
            st->expired_referrals++;
        if (rec->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED)
            n_names += 2;
    }
    st->n_refused = (size_t)st->events[KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED];

    /* Agencies of the flow matrix: every name of a ROUTED record, sorted. */
    int rc;
    st->agencies = s_calloc(n_names, sizeof *st->agencies, "agencies", &rc);
    if (rc)
        return rc;
    size_t k = 0;
    for (size_t i = 0; i < r->n_records; i++) {
        const Ketenbus__AuditRecord *rec = r->records[i];
        if (rec->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED) {
            st->agencies[k++] = s_str(rec->agency);
            st->agencies[k++] = s_str(rec->counterpart);
        }
    }
    if (k > 0) {
        qsort(st->agencies, k, sizeof *st->agencies, s_cmp_str);
        size_t u = 1;
        for (size_t i = 1; i < k; i++)
            if (strcmp(st->agencies[i], st->agencies[u - 1]) != 0)
                st->agencies[u++] = st->agencies[i];
        st->n_agencies = u;
    }
    if (st->n_agencies > KB_REPORT_MAX_AGENCIES)
        return kb_error_set(KB_ETOOBIG, "report: %zu agencies exchanged messages; the matrix shows at most %u",
                            st->n_agencies, KB_REPORT_MAX_AGENCIES);
    size_t na = st->n_agencies;
    st->flow = s_calloc(na * na, S_N_KINDS * sizeof *st->flow, "matrix cells", &rc);
    if (rc)
        return rc;

    if ((rc = s_days(st, r, tmin, tmax)) != 0)
        return rc;
    st->volume = s_calloc(st->n_days, S_N_KINDS * sizeof *st->volume, "days", &rc);
    if (rc)
        return rc;
    st->refused = s_calloc(st->n_refused, sizeof *st->refused, "refusals", &rc);
    if (rc)
        return rc;

    size_t nr = 0;
    for (size_t i = 0; i < r->n_records; i++) {
        const Ketenbus__AuditRecord *rec = r->records[i];
        int ks = s_kind_slot(rec->kind);
        if (rec->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED) {
            size_t from = s_agency_index(st, s_str(rec->agency));
            size_t to = s_agency_index(st, s_str(rec->counterpart));
            st->flow[(from * na + to) * S_N_KINDS + (size_t)ks]++;
        } else if (rec->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED) {
            /* s_days() covers every record's day */
            int64_t d = kb_report_day(rec->time_us) - st->day0;
            st->volume[(size_t)d * S_N_KINDS + (size_t)ks]++;
        } else if (rec->event == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED) {
            st->refused[nr++] = rec;
        }
    }

    /* Refusal groups. */
    if (nr == 0)
        return KB_OK;
    qsort(st->refused, nr, sizeof *st->refused, s_cmp_refusal);
    st->groups = s_calloc(nr, sizeof *st->groups, "refusal groups", &rc);
    if (rc)
        return rc;
    st->pairs = s_calloc(nr, sizeof *st->pairs, "refusal pairs", &rc);
    if (rc)
        return rc;
    for (size_t i = 0; i < nr; i++) {
        if (i == 0 || !s_same_group(st->refused[i - 1], st->refused[i]))
            st->groups[st->n_groups++] = (s_group_t){.head = st->refused[i], .start = i, .count = 0};
        st->groups[st->n_groups - 1].count++;
    }
    qsort(st->groups, st->n_groups, sizeof *st->groups, s_cmp_group);
    return KB_OK;
}

/* ------------------------------------------------------------- page parts */

static const char s_css[] =
    ":root{--ink:#1d2330;--mute:#5b6475;--line:#d9dee7;--bg:#f4f6f9;--card:#fff;"
    "--ok:#1b7f3b;--okbg:#e7f6ec;--bad:#b3261e;--badbg:#fdecea;--accent:#1f4e8c}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--ink);"
    "font:14px/1.45 \"DejaVu Sans\",\"Liberation Sans\",Arial,sans-serif}\n"
    "header{background:var(--accent);color:#fff;padding:18px 32px}\n"
    "header h1{margin:0;font-size:22px;font-weight:600}\n"
    "header p{margin:4px 0 0;opacity:.9}\n"
    "main{max-width:1200px;margin:0 auto;padding:20px 32px 40px}\n"
    "section{background:var(--card);border:1px solid var(--line);border-radius:6px;"
    "padding:14px 20px 18px;margin:0 0 18px}\n"
    "h2{font-size:17px;margin:0 0 4px}\n"
    "p.note{color:var(--mute);margin:0 0 12px;font-size:13px}\n"
    "table{border-collapse:collapse;font-size:13px}\n"
    "th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}\n"
    "thead th{background:#eef1f6}\n"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    "code{font:12px \"DejaVu Sans Mono\",monospace}\n"
    "td time,td code{white-space:nowrap}\n"
    ".none{color:var(--mute)}\n"
    ".scroll{overflow-x:auto}\n"
    ".cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(100px,1fr));gap:10px;margin:6px 0 10px}\n"
    ".card{border:1px solid var(--line);border-radius:6px;padding:8px 10px}\n"
    ".card .n{display:block;font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}\n"
    ".card .l{color:var(--mute);font-size:12px}\n"
    ".card.warn .n{color:var(--bad)}\n"
    ".minor{color:var(--mute);font-size:12px;margin:0}\n"
    ".minor span{margin-right:14px;white-space:nowrap}\n"
    "#flow-matrix td.num{min-width:56px}\n"
    "#flow-matrix td.zero{color:#b8bfcc}\n"
    "#flow-matrix th.row{white-space:nowrap}\n"
    "#flow-matrix td.self{background:#f3f4f6}\n"
    "#flow-matrix td.total,#flow-matrix th.total{font-weight:600;background:#eef1f6}\n"
    "#volume-chart{display:block;width:100%;height:auto;margin:4px 0 8px}\n"
    "#volume-chart text{font:12px \"DejaVu Sans\",Arial,sans-serif;fill:#1d2330}\n"
    "#volume-chart .axis{stroke:#1d2330;stroke-width:1}\n"
    "#volume-chart .grid{stroke:#d9dee7;stroke-width:1}\n"
    "details summary{cursor:pointer;color:var(--accent);margin:4px 0}\n"
    "#refusals td.rule{font-weight:600;white-space:nowrap}\n"
    "#refusals ul{margin:0;padding-left:16px}\n"
    "#refusals li{white-space:nowrap}\n"
    ".verify{border-width:2px}\n"
    ".verify.ok{border-color:var(--ok);background:var(--okbg)}\n"
    ".verify.failed{border-color:var(--bad);background:var(--badbg)}\n"
    ".verify .status{font-size:20px;font-weight:700;margin:0 0 6px}\n"
    ".verify.ok .status{color:var(--ok)}\n"
    ".verify.failed .status{color:var(--bad)}\n"
    ".verify dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}\n"
    ".verify dt{color:var(--mute)}\n"
    ".verify dd{margin:0;overflow-wrap:anywhere}\n"
    ".verify pre{background:#fff;border:1px solid var(--line);padding:8px 10px;margin:6px 0 0;"
    "font:12px/1.4 \"DejaVu Sans Mono\",monospace;white-space:pre-wrap;overflow-wrap:anywhere}\n"
    "footer{color:var(--mute);font-size:12px;text-align:center;padding:0 0 24px}\n"
    "@media print{body{background:#fff}header{background:#fff;color:var(--ink);"
    "border-bottom:2px solid var(--ink)}section{break-inside:avoid}summary{display:none}}\n";

static void s_head(FILE *out, const kb_report_t *r)
{
    char since[S_TIME_LEN], until[S_TIME_LEN];
    s_time(r->since_us, since);
    s_time(r->until_us, until);
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta name=\"generator\" content=\"ketenbus audit report\">\n<title>Audit report ",
          out);
    kb_report_escape(out, r->chain);
    fprintf(out, " %s to %s</title>\n<style>\n%s</style>\n</head>\n<body>\n<header>\n<h1>Audit report",
            since, until, s_css);
    if (r->chain && *r->chain) {
        fputs(": ", out);
        kb_report_escape(out, r->chain);
    }
    fputs("</h1>\n<p>Period ", out);
    s_put_time(out, r->since_us);
    fputs(" to ", out);
    s_put_time(out, r->until_us);
    fputs(" (UTC, end excluded) &#183; generated ", out);
    s_put_time(out, r->generated_us);
    fputs("</p>\n</header>\n<main>\n", out);
}

static void s_section_verification(FILE *out, const kb_report_verify_t *v)
{
    fprintf(out, "<section id=\"verification\" class=\"verify %s\">\n<h2>Verification of the audit log</h2>\n"
                 "<p class=\"status\">%s</p>\n<p class=\"detail\">",
            v->ok ? "ok" : "failed",
            !v->ok         ? "&#10008; FAILED: do not rely on this log"
            : v->unverified ? "&#10004; OK: the log is intact up to its latest signed checkpoint"
                            : "&#10004; OK: the log is intact");
    s_esc_or(out, v->message, v->ok ? "Every record and checkpoint verified." : "No detail given.");
    fprintf(out, "</p>\n<dl>\n<dt>Records verified</dt><dd id=\"verified-records\">%" PRIu64 "</dd>\n", v->records);
    if (v->unverified)
        fprintf(out, "<dt>Not yet verified</dt><dd><span id=\"unverified-records\">%" PRIu64 "</span> record%s from "
                     "index %" PRIu64 " on, after the latest signed checkpoint: no checkpoint covers %s yet</dd>\n",
                v->unverified, v->unverified == 1 ? "" : "s", v->unverified_from, v->unverified == 1 ? "it" : "them");
    if (v->has_first_bad)
        fprintf(out, "<dt>First failing record</dt><dd id=\"first-bad\">index %" PRIu64 "</dd>\n", v->first_bad);
    if (v->pruned_end > v->pruned_first)
        fprintf(out, "<dt>Pruned by retention</dt><dd>%" PRIu64 " records between %" PRIu64 " and %" PRIu64
                     " (their hashes are kept, so the tree still verifies)</dd>\n",
                v->pruned, v->pruned_first, v->pruned_end - 1);
    else
        fputs("<dt>Pruned by retention</dt><dd>none</dd>\n", out);
    if (v->checkpoint && *v->checkpoint) {
        fprintf(out, "<dt>Checked against</dt><dd>checkpoint of tree size <span id=\"checkpoint-size\">%" PRIu64
                     "</span></dd>\n<dt>Root hash</dt><dd><code>",
                v->tree_size);
        s_esc_or(out, v->root_hex, "unknown");
        fputs("</code></dd>\n</dl>\n<p class=\"minor\">The signed checkpoint (C2SP signed note); an agency that kept "
              "a copy as witness can compare it byte for byte:</p>\n<pre id=\"checkpoint\">",
              out);
        kb_report_escape(out, v->checkpoint);
        fputs("</pre>\n", out);
    } else {
        fputs("<dt>Checked against</dt><dd>no signed checkpoint</dd>\n</dl>\n", out);
    }
    fputs("</section>\n", out);
}

static void s_card(FILE *out, const char *id, uint64_t n, const char *label, int warn)
{
    fprintf(out, "<div class=\"card%s\"><span class=\"n\" id=\"%s\">%" PRIu64 "</span><span class=\"l\">%s</span></div>\n",
            warn && n > 0 ? " warn" : "", id, n, label);
}

static void s_section_summary(FILE *out, const kb_report_t *r, const s_stats_t *st)
{
    static const struct {
        int event;         /* AUDIT_EVENT_* */
        const char *label; /* card text */
        int warn;          /* red when not zero */
    } cards[] = {
        {KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED, "received", 0},
        {KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED, "routed", 0},
        {KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DELIVERED, "delivered", 0},
        {KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ACKNOWLEDGED, "acknowledged", 0},
        {KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, "refused", 1},
        {KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED, "expired", 1},
    };
    fputs("<section id=\"summary\">\n<h2>Summary</h2>\n<p class=\"note\">Audit records in the period, by event. "
          "One message gives one <em>received</em> record and one <em>routed</em> record per recipient; "
          "<em>agencies</em> counts those that sent or received a routed message.</p>\n"
          "<div class=\"cards\">\n",
          out);
    s_card(out, "count-records", (uint64_t)r->n_records, "audit records", 0);
    for (size_t i = 0; i < sizeof cards / sizeof cards[0]; i++) {
        char id[S_ENUM_TEXT + 8], name[S_ENUM_TEXT];
        snprintf(id, sizeof id, "count-%s", s_event_label(cards[i].event, name));
        s_card(out, id, st->events[cards[i].event], cards[i].label, cards[i].warn);
    }
    s_card(out, "count-agencies", (uint64_t)st->n_agencies, "agencies", 0);
    fputs("</div>\n<p class=\"minor\">", out);
    /* the other declared events, then "unspecified" and "other" only when they occur */
    for (int e = 0; e < S_N_EVENTS; e++) {
        int carded = 0;
        for (size_t i = 0; i < sizeof cards / sizeof cards[0]; i++)
            carded |= cards[i].event == e;
        char name[S_ENUM_TEXT];
        const char *label = s_event_label(e, name);
        int odd = e == KETENBUS__AUDIT_EVENT__AUDIT_EVENT_UNSPECIFIED || e == S_EVENT_OTHER;
        if (carded || (odd && st->events[e] == 0) || (!odd && s_event_slot(e) == S_EVENT_OTHER))
            continue;
        fprintf(out, "<span>%s: <b id=\"count-%s\">%" PRIu64 "</b></span>", label, label, st->events[e]);
    }
    fputs("</p>\n</section>\n", out);
}

static uint64_t s_cell(const s_stats_t *st, size_t from, size_t to, int kind)
{
    return st->flow[(from * st->n_agencies + to) * S_N_KINDS + (size_t)kind];
}

static uint64_t s_cell_total(const s_stats_t *st, size_t from, size_t to)
{
    uint64_t t = 0;
    for (int k = 0; k < S_N_KINDS; k++)
        t += s_cell(st, from, to, k);
    return t;
}

static void s_section_matrix(FILE *out, const s_stats_t *st)
{
    size_t na = st->n_agencies;
    fputs("<section id=\"flow-matrix\">\n<h2>Flow matrix: who shared with whom</h2>\n"
          "<p class=\"note\">Messages routed from the sending agency (row) to the recipient (column) under a "
          "sharing rule. Hover over a number for the kinds.</p>\n",
          out);
    if (na == 0) {
        fputs("<p class=\"none\">No messages were routed in this period.</p>\n</section>\n", out);
        return;
    }
    uint64_t max = 0;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < na; j++)
            if (s_cell_total(st, i, j) > max)
                max = s_cell_total(st, i, j);
    fputs("<div class=\"scroll\"><table>\n<thead><tr><th>from \\ to</th>", out);
    for (size_t j = 0; j < na; j++) {
        fputs("<th scope=\"col\" class=\"num\">", out);
        s_esc_or(out, st->agencies[j], "(none)");
        fputs("</th>", out);
    }
    fputs("<th scope=\"col\" class=\"num total\">sent</th></tr></thead>\n<tbody>\n", out);
    uint64_t grand = 0;
    for (size_t i = 0; i < na; i++) {
        uint64_t row = 0;
        fputs("<tr><th scope=\"row\" class=\"row\">", out);
        s_esc_or(out, st->agencies[i], "(none)");
        fputs("</th>", out);
        for (size_t j = 0; j < na; j++) {
            uint64_t n = s_cell_total(st, i, j);
            row += n;
            fputs("<td class=\"num", out);
            fputs(n == 0 ? (i == j ? " zero self" : " zero") : "", out);
            fputs("\" data-from=\"", out);
            kb_report_escape(out, st->agencies[i]);
            fputs("\" data-to=\"", out);
            kb_report_escape(out, st->agencies[j]);
            fputs("\"", out);
            if (n > 0) {
                /* Heat: the busiest pair darkest; text turns white on dark cells. */
                unsigned pct = (unsigned)(8 + (n * 62) / max);
                fprintf(out, " style=\"background:rgba(31,78,140,.%02u)%s\" title=\"", pct,
                        pct > 45 ? ";color:#fff" : "");
                kb_report_escape(out, st->agencies[i]);
                fputs(" &#8594; ", out);
                kb_report_escape(out, st->agencies[j]);
                fprintf(out, ": %" PRIu64 " routed", n);
                for (int k = 0; k < S_N_KINDS; k++)
                    if (s_cell(st, i, j, k) > 0)
                        fprintf(out, "&#10;%s: %" PRIu64, s_kind_label(k), s_cell(st, i, j, k));
                fputs("\"", out);
            }
            fprintf(out, ">%" PRIu64 "</td>", n);
        }
        grand += row;
        fprintf(out, "<td class=\"num total\">%" PRIu64 "</td></tr>\n", row);
    }
    fputs("</tbody>\n<tfoot><tr><th scope=\"row\" class=\"total\">received</th>", out);
    for (size_t j = 0; j < na; j++) {
        uint64_t col = 0;
        for (size_t i = 0; i < na; i++)
            col += s_cell_total(st, i, j);
        fprintf(out, "<td class=\"num total\">%" PRIu64 "</td>", col);
    }
    fprintf(out, "<td class=\"num total\" id=\"flow-total\">%" PRIu64 "</td></tr></tfoot>\n</table></div>\n</section>\n",
            grand);
}

/* Smallest of 1, 2, 5 times a power of ten that is >= v (v >= 1). */
static uint64_t s_nice(uint64_t v)
{
    uint64_t p = 1;
    while (p <= UINT64_MAX / 10 && p * 10 <= v)
        p *= 10;
    if (p >= v)
        return p;
    if (p * 2 >= v)
        return p * 2;
    if (p <= UINT64_MAX / 5 && p * 5 >= v)
        return p * 5;
    return p <= UINT64_MAX / 10 ? p * 10 : UINT64_MAX;
}

static uint64_t s_day_total(const s_stats_t *st, size_t d)
{
    uint64_t t = 0;
    for (int k = 0; k < S_N_KINDS; k++)
        t += st->volume[d * S_N_KINDS + (size_t)k];
    return t;
}

static void s_chart(FILE *out, const s_stats_t *st, const int *used, int n_used)
{
    uint64_t max = 0;
    for (size_t d = 0; d < st->n_days; d++)
        if (s_day_total(st, d) > max)
            max = s_day_total(st, d);
    int height = S_SVG_TOP + S_SVG_PLOT_H + S_SVG_BOTTOM;
    fprintf(out, "<svg id=\"volume-chart\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" "
                 "aria-labelledby=\"volume-chart-title\">\n<title id=\"volume-chart-title\">Messages received per UTC "
                 "day, stacked by kind</title>\n",
            S_SVG_W, height, S_SVG_W, height);
    if (max == 0) {
        fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">No messages received in this period</text>\n</svg>\n",
                S_SVG_W / 2, height / 2);
        return;
    }
    uint64_t step = s_nice((max + 3) / 4);
    uint64_t ymax = ((max + step - 1) / step) * step;
    double plot_w = S_SVG_W - S_SVG_LEFT - S_SVG_RIGHT;
    double slot = plot_w / (double)st->n_days;
    double bar = slot * 0.7 < 1 ? 1 : slot * 0.7;
    int y0 = S_SVG_TOP + S_SVG_PLOT_H;

    /* legend */
    for (int i = 0; i < n_used; i++) {
        int x = S_SVG_LEFT + i * S_SVG_LEGEND_W;
        fprintf(out, "<rect x=\"%d\" y=\"10\" width=\"14\" height=\"14\" fill=\"%s\"></rect>"
                     "<text x=\"%d\" y=\"22\">%s</text>\n",
                x, s_kind_colour[used[i]], x + 20, s_kind_label(used[i]));
    }
    /* grid and y axis */
    for (uint64_t v = 0; v <= ymax; v += step) {
        double y = y0 - (double)v / (double)ymax * S_SVG_PLOT_H;
        fprintf(out, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"></line>"
                     "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%" PRIu64 "</text>\n",
                S_SVG_LEFT, y, S_SVG_W - S_SVG_RIGHT, y, S_SVG_LEFT - 8, y + 4, v);
    }
    fprintf(out, "<text x=\"14\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">messages</text>\n",
            S_SVG_TOP + S_SVG_PLOT_H / 2, S_SVG_TOP + S_SVG_PLOT_H / 2);
    /* bars */
    size_t every = (st->n_days + S_SVG_LABELS - 1) / S_SVG_LABELS;
    int short_label = slot * (double)every < 90;
    for (size_t d = 0; d < st->n_days; d++) {
        char day[S_TIME_LEN];
        s_day(st->day0 + (int64_t)d, 0, day);
        double x = S_SVG_LEFT + slot * (double)d + (slot - bar) / 2;
        double y = y0;
        for (int i = 0; i < n_used; i++) {
            uint64_t n = st->volume[d * S_N_KINDS + (size_t)used[i]];
            if (n == 0)
                continue;
            double h = (double)n / (double)ymax * S_SVG_PLOT_H;
            y -= h;
            fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s %s: %" PRIu64
                         "</title></rect>\n",
                    x, y, bar, h, s_kind_colour[used[i]], day, s_kind_label(used[i]), n);
        }
        uint64_t t = s_day_total(st, d);
        if (t > 0 && slot >= 28)
            fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%" PRIu64 "</text>\n", x + bar / 2, y - 5,
                    t);
        if (d % every == 0) {
            char label[S_TIME_LEN];
            s_day(st->day0 + (int64_t)d, short_label, label);
            fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x + bar / 2, y0 + 18, label);
        }
    }
    fprintf(out, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"></line>"
                 "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"></line>\n",
            S_SVG_LEFT, y0, S_SVG_W - S_SVG_RIGHT, y0, S_SVG_LEFT, S_SVG_TOP, S_SVG_LEFT, y0);
    fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">day (UTC)</text>\n</svg>\n",
            S_SVG_LEFT + (int)plot_w / 2, y0 + 44);
}

static void s_section_volume(FILE *out, const s_stats_t *st)
{
    int used[S_N_KINDS], n_used = 0;
    uint64_t kind_total[S_N_KINDS] = {0};
    for (size_t d = 0; d < st->n_days; d++)
        for (int k = 0; k < S_N_KINDS; k++)
            kind_total[k] += st->volume[d * S_N_KINDS + (size_t)k];
    for (int k = 0; k < S_N_KINDS; k++)
        if (kind_total[k] > 0)
            used[n_used++] = k;

    fputs("<section id=\"volume\">\n<h2>Volume per day by kind</h2>\n<p class=\"note\">Messages received by the broker "
          "per UTC day (received records), stacked by kind. The table below has the same numbers.</p>\n",
          out);
    s_chart(out, st, used, n_used);
    /* open: a closed <details> is left out of print and hidden from screen readers */
    fputs("<details open><summary>Numbers per day</summary>\n<div class=\"scroll\"><table id=\"volume-table\">\n"
          "<thead><tr><th scope=\"col\">day (UTC)</th>",
          out);
    for (int i = 0; i < n_used; i++)
        fprintf(out, "<th scope=\"col\" class=\"num\">%s</th>", s_kind_label(used[i]));
    fputs("<th scope=\"col\" class=\"num\">total</th></tr></thead>\n<tbody>\n", out);
    uint64_t grand = 0;
    for (size_t d = 0; d < st->n_days; d++) {
        char day[S_TIME_LEN];
        s_day(st->day0 + (int64_t)d, 0, day);
        fprintf(out, "<tr><th scope=\"row\"><time datetime=\"%s\">%s</time></th>", day, day);
        for (int i = 0; i < n_used; i++)
            fprintf(out, "<td class=\"num\">%" PRIu64 "</td>", st->volume[d * S_N_KINDS + (size_t)used[i]]);
        uint64_t t = s_day_total(st, d);
        grand += t;
        fprintf(out, "<td class=\"num\">%" PRIu64 "</td></tr>\n", t);
    }
    fputs("</tbody>\n<tfoot><tr><th scope=\"row\">total</th>", out);
    for (int i = 0; i < n_used; i++)
        fprintf(out, "<td class=\"num\">%" PRIu64 "</td>", kind_total[used[i]]);
    fprintf(out, "<td class=\"num\" id=\"volume-total\">%" PRIu64 "</td></tr></tfoot>\n</table></div>\n</details>\n"
                 "</section>\n",
            grand);
}

/* The pairs of one refusal group, most frequent first. */
static void s_refusal_pairs(FILE *out, s_stats_t *st, const s_group_t *g)
{
    size_t np = 0;
    for (size_t i = g->start; i < g->start + g->count; i++) {
        const Ketenbus__AuditRecord *rec = st->refused[i];
        if (np > 0 && strcmp(st->pairs[np - 1].from, s_str(rec->agency)) == 0 &&
            strcmp(st->pairs[np - 1].to, s_str(rec->counterpart)) == 0) {
            st->pairs[np - 1].count++;
            continue;
        }
        st->pairs[np++] = (s_pair_t){.from = s_str(rec->agency), .to = s_str(rec->counterpart), .count = 1};
    }
    qsort(st->pairs, np, sizeof *st->pairs, s_cmp_pair);
    fputs("<ul>", out);
    size_t shown = np < KB_REPORT_MAX_PAIRS ? np : KB_REPORT_MAX_PAIRS, rest = 0;
    for (size_t i = 0; i < np; i++) {
        if (i >= shown) {
            rest += st->pairs[i].count;
            continue;
        }
        fputs("<li>", out);
        s_bdi_or(out, st->pairs[i].from, "(unknown)");
        fputs(" &#8594; ", out);
        s_bdi_or(out, st->pairs[i].to, "(whole message)");
        fprintf(out, " (%zu)</li>", st->pairs[i].count);
    }
    if (rest > 0)
        fprintf(out, "<li class=\"none\">%zu more between %zu other pairs</li>", rest, np - shown);
    fputs("</ul>", out);
}

static void s_section_refusals(FILE *out, s_stats_t *st)
{
    fputs("<section id=\"refusals\">\n<h2>Refusals by rule and reason</h2>\n<p class=\"note\">Messages, or copies for "
          "one recipient, that the broker refused. <em>Default deny</em>: no sharing rule allowed it; <em>checks before "
          "the rules</em>: malformed, badly signed, stale or oversized messages.</p>\n",
          out);
    if (st->n_groups == 0) {
        fputs("<p class=\"none\">None in this period.</p>\n</section>\n", out);
        return;
    }
    fputs("<div class=\"scroll\"><table>\n<thead><tr><th scope=\"col\">rule</th><th scope=\"col\" class=\"num\">"
          "refusals</th><th scope=\"col\">reason</th><th scope=\"col\">code</th><th scope=\"col\" class=\"num\">count"
          "</th><th scope=\"col\">from &#8594; to</th></tr></thead>\n<tbody>\n",
          out);
    size_t g = 0, rows = 0;
    while (g < st->n_groups && rows < KB_REPORT_MAX_ROWS) {
        const Ketenbus__AuditRecord *head = st->groups[g].head;
        /* This rule's groups are g..end; the rows shown of them g..cut. */
        size_t end = g + 1, total = st->groups[g].count;
        while (end < st->n_groups && s_cmp_decider(st->groups[end].head, head) == 0)
            total += st->groups[end++].count;
        size_t cut = end - g > KB_REPORT_MAX_ROWS - rows ? g + (KB_REPORT_MAX_ROWS - rows) : end;
        for (size_t i = g; i < cut; i++) {
            const Ketenbus__AuditRecord *rec = st->groups[i].head;
            fputs("<tr>", out);
            if (i == g) {
                fprintf(out, "<td class=\"rule\" rowspan=\"%zu\">", cut - g);
                int by = s_decider(head);
                if (by == S_BY_RULE)
                    kb_report_escape(out, head->rule_id);
                else
                    fputs(by == S_BY_DEFAULT_DENY ? "default deny" : "<span class=\"none\">checks before the rules</span>", out);
                fprintf(out, "</td><td class=\"num\" rowspan=\"%zu\">%zu</td>", cut - g, total);
            }
            fputs("<td>", out);
            s_esc_or(out, rec->reason, "<span class=\"none\">(no reason given)</span>");
            char code[S_ENUM_TEXT];
            fprintf(out, "</td><td><code>%s</code></td><td class=\"num\">%zu</td><td>", s_code_label(rec->code, code),
                    st->groups[i].count);
            s_refusal_pairs(out, st, &st->groups[i]);
            fputs("</td></tr>\n", out);
        }
        rows += cut - g;
        g = cut;
    }
    if (g < st->n_groups)
        fprintf(out, "<tr><td colspan=\"6\" class=\"none\">%zu more reasons not shown; use "
                     "<code>ketenbus audit query</code></td></tr>\n",
                st->n_groups - g);
    fputs("</tbody>\n</table></div>\n</section>\n", out);
}

/* The EXPIRED records. */
static void s_expired_list(FILE *out, const kb_report_t *r)
{
    size_t shown = 0, more = 0;
    for (size_t i = 0; i < r->n_records; i++) {
        const Ketenbus__AuditRecord *rec = r->records[i];
        if (rec->event != KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED)
            continue;
        if (shown == KB_REPORT_MAX_ROWS) {
            more++;
            continue;
        }
        if (shown++ == 0) {
            fputs("<div class=\"scroll\"><table>\n<thead><tr><th scope=\"col\">when (UTC)</th>"
                  "<th scope=\"col\">sender</th><th scope=\"col\">recipient</th><th scope=\"col\">message id</th>"
                  "<th scope=\"col\">kind</th></tr></thead>\n<tbody>\n",
                  out);
        }
        fprintf(out, "<tr data-index=\"%" PRIu64 "\"><td>", rec->index);
        s_put_time(out, rec->time_us);
        fputs("</td><td>", out);
        s_esc_or(out, rec->agency, "<span class=\"none\">&#8212;</span>");
        fputs("</td><td>", out);
        s_esc_or(out, rec->counterpart, "<span class=\"none\">&#8212;</span>");
        fputs("</td><td>", out);
        s_put_message_id(out, rec->message_id);
        fprintf(out, "</td><td>%s</td></tr>\n", rec->kind ? s_kind_label(s_kind_slot(rec->kind)) : "&#8212;");
    }
    if (shown == 0) {
        fputs("<p class=\"none\">None in this period.</p>\n", out);
        return;
    }
    fputs("</tbody>\n</table></div>\n", out);
    if (more > 0)
        fprintf(out, "<p class=\"minor\">%zu more not shown; use <code>ketenbus audit query</code>.</p>\n", more);
}

static void s_section_expired(FILE *out, const kb_report_t *r)
{
    fputs("<section id=\"expired\">\n<h2>Expired items</h2>\n<p class=\"note\">Messages that left a recipient's queue "
          "unacknowledged at their expiry: the recipient never confirmed having them.</p>\n",
          out);
    s_expired_list(out, r);
    fputs("</section>\n", out);
}

/* The broker escalates nothing yet: no audit event or field says that an
 * item was escalated. A record's reason is free text, and for some events
 * the adapter's own (a CONNECTED record's reason is the name the adapter
 * chose for itself), so no text is read as an escalation. The section says
 * so and gives what the log does hold: referrals that expired. */
static void s_section_escalated(FILE *out, const s_stats_t *st)
{
    fprintf(out, "<section id=\"escalated\">\n<h2>Escalated items</h2>\n<p class=\"note\">The broker does not "
                 "escalate items yet: no audit event records an escalation, so this report can show none. Text in a "
                 "record, such as a reason or an adapter&#39;s name, is not taken for one.</p>\n<p>Referrals that "
                 "expired before the recipient acknowledged them: <b id=\"count-expired-referrals\">%" PRIu64
                 "</b>%s.</p>\n</section>\n",
            st->expired_referrals, st->expired_referrals ? " (listed under expired items)" : "");
}

int kb_report_html(FILE *out, const kb_report_t *r)
{
    if (!out || !r)
        return kb_error_set(KB_EINVAL, "report: no %s", out ? "input" : "output stream");
    if (r->n_records > 0 && !r->records)
        return kb_error_set(KB_EINVAL, "report: %zu records but no array", r->n_records);
    if (r->since_us > r->until_us)
        return kb_error_set(KB_EINVAL, "report: the period ends before it starts");

    s_stats_t st;
    memset(&st, 0, sizeof st);
    int rc = s_stats_build(&st, r);
    if (rc == KB_OK) {
        s_head(out, r);
        s_section_verification(out, &r->verify);
        s_section_summary(out, r, &st);
        s_section_matrix(out, &st);
        s_section_volume(out, &st);
        s_section_refusals(out, &st);
        s_section_expired(out, r);
        s_section_escalated(out, &st);
        fputs("</main>\n<footer>ketenbus audit report &#183; times in UTC (ISO 8601) &#183; this file is "
              "self-contained: no scripts, no network</footer>\n</body>\n</html>\n",
              out);
        if (fflush(out) != 0 || ferror(out))
            rc = kb_error_set(KB_EIO, "write report: %s", strerror(errno));
    }
    s_stats_free(&st);
    return rc;
}
