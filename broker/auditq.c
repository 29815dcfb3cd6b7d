/*
 * auditq.c - queries and retention over the audit log (see auditq.h).
 *
 * A page walks one candidate stream in index order and filters it; the
 * stream is a posting walk of store.h or a range scan. Only the subject
 * stream is materialised (the union of the subjects' records and the
 * records of their messages, sorted), bounded by KB_AUDITQ_MAX_CANDIDATES.
 *
 * Collecting it means reading every record of the subjects and walking the
 * postings of every message they concern: for a subject with thousands of
 * records that is most of the query's time (10M records: ~60 ms), and a
 * client pages through the result with the index to go on from (admin
 * socket, `audit query`), so rebuilding it per page made the whole result
 * cost pages x collection. The collected stream is therefore kept with the
 * store (kb_store_cache: s_cursor_t): a page of the same subjects that
 * starts inside the range it covers continues in it by binary search.
 * That is safe because the log is append-only below its committed size
 * (the store drops the cache on reload, reindex and pruning), and the
 * stream covers only committed records: a range whose last record is not
 * committed yet is collected but not kept. Records appended after the
 * stream was collected are collected, once, when a page reaches its end.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditq.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_util.h"

#define S_EVENT_PREFIX "AUDIT_EVENT_"
#define S_KIND_PREFIX  "KIND_"
#define S_NAME_MAX     48 /* longest enum name written */

/* Events that are rare in traffic: their posting lists are short enough
 * to drive a query (per-message events are a quarter of the log each). */
static const uint32_t s_rare_events = (1u << KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED) |
                                      (1u << KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED) |
                                      (1u << KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DUPLICATE) |
                                      (1u << KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECTED) |
                                      (1u << KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DISCONNECTED) |
                                      (1u << KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED) |
                                      (1u << KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CONNECT_REFUSED) |
                                      (1u << KETENBUS__AUDIT_EVENT__AUDIT_EVENT_CHECKPOINT) |
                                      (1u << KETENBUS__AUDIT_EVENT__AUDIT_EVENT_PRUNED);

/* ------------------------------------------------------------ names */

/* The bit of the enum value whose name is prefix + NAME (any case). */
static uint32_t s_enum_bit(const ProtobufCEnumDescriptor *d, const char *prefix, const char *name)
{
    char want[S_NAME_MAX + 16];
    size_t pl = strlen(prefix), nl = name ? strlen(name) : 0;
    if (nl == 0 || pl + nl >= sizeof want)
        return 0;
    memcpy(want, prefix, pl);
    for (size_t i = 0; i < nl; i++)
        want[pl + i] = (char)toupper((unsigned char)name[i]);
    want[pl + nl] = '\0';
    for (unsigned i = 0; i < d->n_values; i++)
        if (strcmp(d->values[i].name, want) == 0 && d->values[i].value > 0 && d->values[i].value < 32)
            return 1u << d->values[i].value;
    return 0;
}

uint32_t kb_auditq_event_bit(const char *name)
{
    return s_enum_bit(&ketenbus__audit_event__descriptor, S_EVENT_PREFIX, name);
}

uint32_t kb_auditq_kind_bit(const char *name)
{
    if (name && strcmp(name, KB_AUDITQ_KIND_OTHER) == 0)
        return 1u << KETENBUS__KIND__KIND_UNSPECIFIED;
    return s_enum_bit(&ketenbus__kind__descriptor, S_KIND_PREFIX, name);
}

/* ------------------------------------------------------------ matching */

int kb_auditq_match(const kb_auditq_filter_t *f, const Ketenbus__AuditRecord *r)
{
    const char *agency = r->agency ? r->agency : "";
    const char *counterpart = r->counterpart ? r->counterpart : "";
    if (f->has_since && r->time_us < f->since_us)
        return 0;
    if (f->has_until && r->time_us >= f->until_us)
        return 0;
    if (f->has_message && (r->message_id.len != 16 || memcmp(r->message_id.data, f->message_id, 16) != 0))
        return 0;
    if (f->agency[0] && strcmp(agency, f->agency) != 0 && strcmp(counterpart, f->agency) != 0)
        return 0;
    if (f->from[0] && strcmp(agency, f->from) != 0)
        return 0;
    if (f->to[0] && strcmp(counterpart, f->to) != 0)
        return 0;
    if (f->events && ((unsigned)r->event >= 32u || !(f->events & (1u << r->event))))
        return 0;
    if (f->kinds && ((unsigned)r->kind >= 32u || !(f->kinds & (1u << r->kind))))
        return 0;
    return 1;
}

/* ------------------------------------------------------------ time */

int kb_auditq_time_index(kb_store_t *s, int64_t t, uint64_t *index)
{
    uint64_t lo = 0, hi = kb_store_audit_size(s);
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2, found = 0;
        int64_t when = 0;
        int rc = kb_store_audit_time(s, mid, &when, &found);
        if (rc == KB_ENOTFOUND || (rc == KB_OK && found >= hi)) {
            hi = mid; /* nothing stored in [mid, hi) */
            continue;
        }
        if (rc != KB_OK)
            return rc;
        if (when < t)
            lo = found + 1;
        else
            hi = mid;
    }
    *index = lo;
    return KB_OK;
}

/* ------------------------------------------------------------ pages */

typedef struct {
    kb_store_t *s;                /* the store */
    const kb_auditq_filter_t *f;  /* the filter */
    size_t limit;                 /* matches wanted */
    size_t budget;                /* candidates allowed (0: any) */
    kb_auditq_fn *fn;             /* match callback */
    void *arg;                    /* its argument */
    kb_auditq_page_t *page;       /* progress */
    int stopped;                  /* 1: the page is full */
    int rc;                       /* first failure */
    int subject_stream;           /* 1: walking a subject stream, which shows */
    const struct s_msg *msgs;     /* the records of these messages only */
    size_t n_msgs;                /* their number */
} s_run_t;

/* A message about a subject: ids are unique per sender only, so a message
 * is its id and its sender (the agency of every record about it). */
typedef struct s_msg {
    uint8_t id[16];                        /* message id */
    char sender[KB_AGENCY_ID_MAX + 1];     /* sending agency */
} s_msg_t;

static int s_cmp_msg(const void *a, const void *b)
{
    const s_msg_t *x = a, *y = b;
    int c = memcmp(x->id, y->id, 16);
    return c ? c : strcmp(x->sender, y->sender);
}

/* Whether r, in a subject stream, is about one of x's messages: records
 * of another sender's message that happens to have the same id are not. */
static int s_msg_of(const s_run_t *x, const Ketenbus__AuditRecord *r)
{
    if (!x->subject_stream || r->message_id.len != 16)
        return 1;
    for (size_t i = 0; i < r->n_subject_keys; i++)
        for (size_t k = 0; k < x->f->n_subjects; k++)
            if (r->subject_keys[i].len == 32 && memcmp(r->subject_keys[i].data, x->f->subjects[k], 32) == 0)
                return 1; /* about a subject itself */
    if (x->n_msgs == 0)
        return 0;
    s_msg_t key;
    memcpy(key.id, r->message_id.data, 16);
    if (!r->agency || strlen(r->agency) > KB_AGENCY_ID_MAX)
        return 0;
    strcpy(key.sender, r->agency);
    return bsearch(&key, x->msgs, x->n_msgs, sizeof key, s_cmp_msg) != NULL;
}

/* Look at one candidate; non-zero when the page is full. */
static int s_consider(s_run_t *x, uint64_t index, const uint8_t *raw, size_t len)
{
    x->page->examined++;
    x->page->next = index + 1;
    Ketenbus__AuditRecord *r = NULL;
    if (len > 0 && raw[0] != 0) /* a tombstone starts with 0 */
        r = ketenbus__audit_record__unpack(NULL, len, raw);
    int stop = 0;
    if (r && kb_auditq_match(x->f, r) && s_msg_of(x, r)) {
        x->page->matched++;
        stop = x->fn(index, raw, len, r, x->arg);
    }
    if (r)
        ketenbus__audit_record__free_unpacked(r, NULL);
    if (stop || x->page->matched >= x->limit || (x->budget && x->page->examined >= x->budget))
        x->stopped = 1;
    return x->stopped;
}

static int s_scan_fn(uint64_t index, const uint8_t *val, size_t len, void *arg)
{
    return s_consider(arg, index, val, len);
}

static int s_posting_fn(uint64_t index, void *arg)
{
    s_run_t *x = arg;
    uint8_t *raw = NULL;
    size_t len = 0;
    int rc = kb_store_audit_raw(x->s, index, &raw, &len);
    if (rc == KB_ENOTFOUND) { /* a missing record: audit verify's business */
        x->page->examined++;
        x->page->next = index + 1;
        return 0;
    }
    if (rc != KB_OK) {
        x->rc = rc;
        return 1;
    }
    int stop = s_consider(x, index, raw, len);
    free(raw);
    return stop;
}

/* A growing sorted-later array of indices. */
typedef struct {
    uint64_t *v;  /* entries */
    size_t n;     /* used */
    size_t cap;   /* allocated */
    int rc;       /* KB_ETOOBIG or KB_ENOMEM once full */
} s_vec_t;

static int s_vec_push(uint64_t index, void *arg)
{
    s_vec_t *v = arg;
    if (v->n == KB_AUDITQ_MAX_CANDIDATES) {
        v->rc = kb_error_set(KB_ETOOBIG, "audit query: the subjects have more than %u records; narrow the query",
                             KB_AUDITQ_MAX_CANDIDATES);
        return 1;
    }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        uint64_t *p = realloc(v->v, cap * sizeof *p);
        if (!p) {
            v->rc = kb_error_set(KB_ENOMEM, "audit query: out of memory");
            return 1;
        }
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = index;
    return 0;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void s_vec_sort_unique(s_vec_t *v)
{
    if (v->n < 2)
        return;
    qsort(v->v, v->n, sizeof *v->v, s_cmp_u64);
    size_t o = 1;
    for (size_t i = 1; i < v->n; i++)
        if (v->v[i] != v->v[o - 1])
            v->v[o++] = v->v[i];
    v->n = o;
}

/* The records about f's subjects in [lo, hi), sorted (see auditq.h), and
 * the messages they may show (*msgs, sorted, *n_msgs of them; the
 * caller's to free): those of which a record carries a subject key. */
static int s_subject_candidates(kb_store_t *s, const kb_auditq_filter_t *f, uint64_t lo, uint64_t hi, s_vec_t *out,
                                s_msg_t **msgs, size_t *n_msgs)
{
    s_vec_t direct = {0};
    *msgs = NULL;
    *n_msgs = 0;
    int rc = KB_OK;
    for (size_t i = 0; rc == KB_OK && i < f->n_subjects; i++) {
        rc = kb_store_postings(s, KB_INDEX_SUBJECT, f->subjects[i], 32, 0, UINT64_MAX, s_vec_push, &direct);
        if (rc == KB_OK)
            rc = direct.rc;
    }
    s_vec_sort_unique(&direct);
    /* the messages those records concern */
    s_msg_t *m = NULL;
    size_t n = 0;
    if (rc == KB_OK && direct.n > 0) {
        m = malloc((direct.n < KB_AUDITQ_MAX_MESSAGES ? direct.n : KB_AUDITQ_MAX_MESSAGES) * sizeof *m);
        if (!m)
            rc = kb_error_set(KB_ENOMEM, "audit query: out of memory");
    }
    for (size_t i = 0; rc == KB_OK && i < direct.n; i++) {
        uint8_t *raw = NULL;
        size_t len = 0;
        int rrc = kb_store_audit_raw(s, direct.v[i], &raw, &len);
        if (rrc == KB_ENOTFOUND)
            continue;
        if (rrc != KB_OK) {
            rc = rrc;
            break;
        }
        Ketenbus__AuditRecord *r = len > 0 && raw[0] != 0 ? ketenbus__audit_record__unpack(NULL, len, raw) : NULL;
        if (r && r->message_id.len == 16 && r->agency && strlen(r->agency) <= KB_AGENCY_ID_MAX &&
            (n == 0 || memcmp(m[n - 1].id, r->message_id.data, 16) != 0 || strcmp(m[n - 1].sender, r->agency) != 0)) {
            if (n == KB_AUDITQ_MAX_MESSAGES) {
                rc = kb_error_set(KB_ETOOBIG, "audit query: the subjects have more than %u messages; narrow the query",
                                  KB_AUDITQ_MAX_MESSAGES);
            } else {
                memcpy(m[n].id, r->message_id.data, 16);
                strcpy(m[n].sender, r->agency);
                n++;
            }
        }
        if (r)
            ketenbus__audit_record__free_unpacked(r, NULL);
        free(raw);
    }
    if (rc == KB_OK && n > 1) {
        qsort(m, n, sizeof *m, s_cmp_msg);
        size_t o = 1;
        for (size_t i = 1; i < n; i++)
            if (s_cmp_msg(&m[i], &m[o - 1]) != 0)
                m[o++] = m[i];
        n = o;
    }
    for (size_t i = 0; rc == KB_OK && i < direct.n; i++)
        if (direct.v[i] >= lo && direct.v[i] < hi && s_vec_push(direct.v[i], out))
            rc = out->rc;
    /* every record under each id: s_msg_of keeps those of the message's
     * own sender when the stream is walked */
    for (size_t i = 0; rc == KB_OK && i < n; i++) {
        if (i > 0 && memcmp(m[i].id, m[i - 1].id, 16) == 0)
            continue;
        rc = kb_store_postings(s, KB_INDEX_MESSAGE, m[i].id, 16, lo, hi, s_vec_push, out);
        if (rc == KB_OK)
            rc = out->rc;
    }
    s_vec_sort_unique(out);
    free(direct.v);
    if (rc != KB_OK) {
        free(m);
        return rc;
    }
    *msgs = m;
    *n_msgs = n;
    return KB_OK;
}

/* ------------------------------------------------------------ subject cursor */

/* The subject stream of the last subject query (see the top of the file). */
typedef struct {
    uint8_t subjects[KB_AUDITQ_MAX_SUBJECTS][32]; /* the query's subject keys */
    size_t n_subjects;                            /* their number */
    uint64_t lo;                                  /* the stream covers [lo, hi): its first index */
    uint64_t hi;                                  /* its end (exclusive) */
    s_vec_t c;                                    /* its indices, sorted */
    s_msg_t *msgs;                                /* the messages it may show, sorted */
    size_t n_msgs;                                /* their number */
} s_cursor_t;

static void s_cursor_free(void *p)
{
    s_cursor_t *cur = p;
    if (cur) {
        free(cur->c.v);
        free(cur->msgs);
    }
    free(cur);
}

/* The stream depends on the subjects only (the other conditions filter it). */
static int s_cursor_for(const s_cursor_t *cur, const kb_auditq_filter_t *f)
{
    return cur && cur->n_subjects == f->n_subjects &&
           memcmp(cur->subjects, f->subjects, f->n_subjects * sizeof f->subjects[0]) == 0;
}

/* Whether every record below hi is committed (records are committed in
 * index order, so the last one decides). */
static int s_committed(kb_store_t *s, uint64_t hi)
{
    if (hi == 0)
        return 1;
    uint8_t *raw = NULL;
    size_t len = 0;
    int rc = kb_store_audit_raw(s, hi - 1, &raw, &len);
    free(raw);
    return rc == KB_OK;
}

/* The first position of c holding an index >= index. */
static size_t s_lower_bound(const s_vec_t *c, uint64_t index)
{
    size_t a = 0, b = c->n;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (c->v[m] < index)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

/* Collect the subject stream of [lo, hi) into a new cursor: *out, kept
 * with the store when its range is committed (*kept 1), else the
 * caller's to free. */
static int s_cursor_build(kb_store_t *s, const kb_auditq_filter_t *f, uint64_t lo, uint64_t hi, s_cursor_t **out,
                          int *kept)
{
    *out = NULL;
    *kept = 0;
    s_cursor_t *cur = calloc(1, sizeof *cur);
    if (!cur)
        return kb_error_set(KB_ENOMEM, "audit query: out of memory");
    memcpy(cur->subjects, f->subjects, f->n_subjects * sizeof f->subjects[0]);
    cur->n_subjects = f->n_subjects;
    cur->lo = lo;
    cur->hi = hi;
    int rc = s_subject_candidates(s, f, lo, hi, &cur->c, &cur->msgs, &cur->n_msgs);
    if (rc != KB_OK) {
        s_cursor_free(cur);
        return rc;
    }
    if (s_committed(s, hi)) {
        kb_store_cache_set(s, cur, s_cursor_free);
        *kept = 1;
    }
    *out = cur;
    return KB_OK;
}

/* Walk the stream of cur from index lo (below cur->hi) into the page. */
static int s_cursor_walk(const s_cursor_t *cur, uint64_t lo, s_run_t *x)
{
    x->subject_stream = 1;
    x->msgs = cur->msgs;
    x->n_msgs = cur->n_msgs;
    int rc = KB_OK;
    for (size_t i = s_lower_bound(&cur->c, lo); i < cur->c.n && !x->stopped; i++) {
        s_posting_fn(cur->c.v[i], x);
        if ((rc = x->rc) != KB_OK)
            break;
    }
    x->subject_stream = 0;
    return rc;
}

/* One page of a subject query over [lo, hi): continue the kept stream if
 * it is this query's and covers lo, else collect it; once the kept stream
 * is walked to its end, collect the records appended since. */
static int s_subject_page(kb_store_t *s, const kb_auditq_filter_t *f, uint64_t lo, uint64_t hi, s_run_t *x)
{
    s_cursor_t *cur = kb_store_cache(s);
    int rc = KB_OK;
    if (s_cursor_for(cur, f) && cur->lo <= lo && lo < cur->hi && cur->hi <= hi) {
        rc = s_cursor_walk(cur, lo, x);
        if (rc != KB_OK || x->stopped)
            return rc;
        lo = cur->hi;
    }
    if (lo < hi) {
        int kept = 0;
        rc = s_cursor_build(s, f, lo, hi, &cur, &kept);
        if (rc == KB_OK)
            rc = s_cursor_walk(cur, lo, x);
        if (cur && !kept)
            s_cursor_free(cur);
    }
    /* a query read to its end needs its cursor no more */
    if (rc == KB_OK && !x->stopped && s_cursor_for(kb_store_cache(s), f))
        kb_store_cache_set(s, NULL, NULL);
    return rc;
}

/* The single event of a mask, or 0. */
static int s_single_event(uint32_t events)
{
    if (events == 0 || (events & (events - 1)) != 0)
        return 0;
    return __builtin_ctz(events);
}

int kb_auditq_run(kb_store_t *s, const kb_auditq_filter_t *f, uint64_t from, size_t limit, size_t budget,
                  kb_auditq_fn *fn, void *arg, kb_auditq_page_t *page)
{
    if (!s || !f || !fn || !page || limit == 0)
        return kb_error_set(KB_EINVAL, "audit query: bad arguments");
    memset(page, 0, sizeof *page);
    page->next = from;
    uint64_t lo = 0, hi = kb_store_audit_size(s);
    int rc = KB_OK;
    if (f->has_since)
        rc = kb_auditq_time_index(s, f->since_us, &lo);
    if (rc == KB_OK && f->has_until)
        rc = kb_auditq_time_index(s, f->until_us, &hi);
    if (rc != KB_OK)
        return rc;
    if (lo < from)
        lo = from;
    if (lo >= hi) {
        page->done = 1;
        page->next = hi > from ? hi : from;
        return KB_OK;
    }
    s_run_t x = {s, f, limit, budget, fn, arg, page, 0, KB_OK, 0, NULL, 0};
    int event = s_single_event(f->events);
    const char *agency = f->agency[0] ? f->agency : f->from[0] ? f->from : f->to[0] ? f->to : NULL;
    if (f->n_subjects > 0) {
        rc = s_subject_page(s, f, lo, hi, &x);
    } else if (f->has_message) {
        rc = kb_store_postings(s, KB_INDEX_MESSAGE, f->message_id, 16, lo, hi, s_posting_fn, &x);
    } else if (event && (s_rare_events & (1u << event))) {
        uint8_t e = (uint8_t)event;
        rc = kb_store_postings(s, KB_INDEX_EVENT, &e, 1, lo, hi, s_posting_fn, &x);
    } else if (agency) {
        rc = kb_store_postings(s, KB_INDEX_AGENCY, agency, strlen(agency), lo, hi, s_posting_fn, &x);
    } else {
        rc = kb_store_audit_scan(s, lo, hi, SIZE_MAX, s_scan_fn, &x);
    }
    if (rc == KB_OK)
        rc = x.rc;
    if (rc != KB_OK)
        return rc;
    if (!x.stopped) {
        page->done = 1;
        page->next = hi;
    }
    return KB_OK;
}

/* ------------------------------------------------------------ JSON */

static void s_add_str(json_object *o, const char *key, const char *v)
{
    if (v && *v)
        json_object_object_add(o, key, json_object_new_string(v));
}

json_object *kb_auditq_filter_to_json(const kb_auditq_filter_t *f)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    if (f->has_since)
        json_object_object_add(o, "since_us", json_object_new_int64(f->since_us));
    if (f->has_until)
        json_object_object_add(o, "until_us", json_object_new_int64(f->until_us));
    if (f->n_subjects > 0) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < f->n_subjects; i++) {
            char hex[65];
            kb_hex(f->subjects[i], 32, hex);
            json_object_array_add(a, json_object_new_string(hex));
        }
        json_object_object_add(o, "subjects", a);
    }
    if (f->has_message) {
        char id[37];
        kb_uuid_format(f->message_id, id);
        json_object_object_add(o, "message_id", json_object_new_string(id));
    }
    s_add_str(o, "agency", f->agency);
    s_add_str(o, "from", f->from);
    s_add_str(o, "to", f->to);
    if (f->events)
        json_object_object_add(o, "events", json_object_new_int64(f->events));
    if (f->kinds)
        json_object_object_add(o, "kinds", json_object_new_int64(f->kinds));
    return o;
}

static int s_json_agency(json_object *v, const char *key, char out[KB_AUDITQ_AGENCY_MAX + 1])
{
    /* The type first: a JSON null has no string at all. The length is
     * json-c's, so an escaped NUL inside the id cannot shorten it. */
    if (!json_object_is_type(v, json_type_string))
        return kb_error_set(KB_EPROTO, "filter.%s: expected an agency id of at most %u bytes", key,
                            KB_AUDITQ_AGENCY_MAX);
    const char *t = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (n > KB_AUDITQ_AGENCY_MAX || memchr(t, '\0', n) != NULL)
        return kb_error_set(KB_EPROTO, "filter.%s: expected an agency id of at most %u bytes", key,
                            KB_AUDITQ_AGENCY_MAX);
    memcpy(out, t, n + 1);
    return KB_OK;
}

static int s_json_int(json_object *v, const char *key, int64_t min, int64_t max, int64_t *out)
{
    if (!json_object_is_type(v, json_type_int))
        return kb_error_set(KB_EPROTO, "filter.%s: expected an integer", key);
    int64_t x = json_object_get_int64(v);
    if (x < min || x > max)
        return kb_error_set(KB_EPROTO, "filter.%s: out of range", key);
    *out = x;
    return KB_OK;
}

int kb_auditq_filter_from_json(json_object *o, kb_auditq_filter_t *f)
{
    memset(f, 0, sizeof *f);
    if (!json_object_is_type(o, json_type_object))
        return kb_error_set(KB_EPROTO, "filter: expected an object");
    int rc = KB_OK;
    json_object_object_foreach(o, key, v)
    {
        int64_t x = 0;
        if (rc != KB_OK)
            break;
        if (strcmp(key, "since_us") == 0) {
            rc = s_json_int(v, key, INT64_MIN, INT64_MAX, &f->since_us);
            f->has_since = 1;
        } else if (strcmp(key, "until_us") == 0) {
            rc = s_json_int(v, key, INT64_MIN, INT64_MAX, &f->until_us);
            f->has_until = 1;
        } else if (strcmp(key, "subjects") == 0) {
            size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
            if (!json_object_is_type(v, json_type_array) || n == 0 || n > KB_AUDITQ_MAX_SUBJECTS) {
                rc = kb_error_set(KB_EPROTO, "filter.subjects: expected 1 to %u subject keys", KB_AUDITQ_MAX_SUBJECTS);
                break;
            }
            for (size_t i = 0; rc == KB_OK && i < n; i++) {
                json_object *e = json_object_array_get_idx(v, i);
                if (!json_object_is_type(e, json_type_string) || strlen(json_object_get_string(e)) != 64 ||
                    kb_unhex(json_object_get_string(e), f->subjects[i], 32) != KB_OK)
                    rc = kb_error_set(KB_EPROTO, "filter.subjects[%zu]: expected 64 hex digits", i);
            }
            f->n_subjects = n;
        } else if (strcmp(key, "message_id") == 0) {
            if (!json_object_is_type(v, json_type_string) ||
                kb_uuid_parse(json_object_get_string(v), f->message_id) != KB_OK)
                rc = kb_error_set(KB_EPROTO, "filter.message_id: expected a UUID");
            f->has_message = 1;
        } else if (strcmp(key, "agency") == 0) {
            rc = s_json_agency(v, key, f->agency);
        } else if (strcmp(key, "from") == 0) {
            rc = s_json_agency(v, key, f->from);
        } else if (strcmp(key, "to") == 0) {
            rc = s_json_agency(v, key, f->to);
        } else if (strcmp(key, "events") == 0) {
            rc = s_json_int(v, key, 0, UINT32_MAX, &x);
            f->events = (uint32_t)x;
        } else if (strcmp(key, "kinds") == 0) {
            rc = s_json_int(v, key, 0, UINT32_MAX, &x);
            f->kinds = (uint32_t)x;
        } else {
            rc = kb_error_set(KB_EPROTO, "filter: unknown key \"%.40s\"", key);
        }
    }
    return rc;
}

/* ------------------------------------------------------------ retention */

int kb_auditq_prune(kb_store_t *s, kb_batch_t *b, kb_merkle_t *tree, int kind, int64_t before_us, size_t max,
                    const char *who, kb_auditq_prune_t *out)
{
    memset(out, 0, sizeof *out);
    if (kind != KB_PRUNE_ALL && (kind < 0 || kind >= (int)KB_STORE_KINDS))
        return kb_error_set(KB_EINVAL, "prune: no kind %d", kind);
    out->first = out->end = kb_store_audit_pruned_kind(s, kind);
    int rc = kb_auditq_time_index(s, before_us, &out->target);
    if (rc != KB_OK)
        return rc;
    uint64_t size = kb_store_audit_size(s), cp_size = 0;
    char *note = NULL;
    size_t note_len = 0;
    rc = kb_store_checkpoint_latest(s, &cp_size, &note, &note_len);
    free(note);
    if (rc == KB_ENOTFOUND)
        cp_size = 0;
    else if (rc != KB_OK)
        return rc;
    uint64_t limit = out->target;
    uint64_t full = (size / KB_MERKLE_TILE_WIDTH) * KB_MERKLE_TILE_WIDTH;
    if (limit > full)
        limit = full;
    if (limit > cp_size)
        limit = cp_size;
    out->limit = limit;
    if (limit <= out->first)
        return KB_OK;
    int64_t now = kb_now_us();
    kb_store_pruned_t done;
    rc = kb_store_audit_prune(s, b, kind, limit, max, now, &done);
    uint64_t end = done.end;
    if (rc != KB_OK || end == out->first)
        return rc;
    out->end = end;
    out->more = end < limit;
    if (done.count == 0)
        return KB_OK; /* nothing of the kind in the range: only its cursor moves */
    char when[32], what[48], reason[KB_SHORT_TEXT_MAX + 200];
    kb_time_format(before_us, when);
    if (kind == KB_PRUNE_ALL)
        snprintf(what, sizeof what, "records");
    else if (kind == 0)
        snprintf(what, sizeof what, "records of no message kind (other)");
    else
        snprintf(what, sizeof what, "%s records", kb_kind_name(kind));
    snprintf(reason, sizeof reason, "pruned %llu %s in [%llu, %llu) older than %s; requested by %.200s",
             (unsigned long long)done.count, what, (unsigned long long)out->first, (unsigned long long)end, when,
             who ? who : "?");
    Ketenbus__Pruning pr;
    ketenbus__pruning__init(&pr);
    pr.first = out->first;
    pr.all_kinds = kind == KB_PRUNE_ALL;
    pr.count = done.count;
    pr.indices_sha256.data = done.indices_sha256;
    pr.indices_sha256.len = sizeof done.indices_sha256;
    pr.before_us = before_us;
    pr.kind = kind == KB_PRUNE_ALL ? KETENBUS__KIND__KIND_UNSPECIFIED : (Ketenbus__Kind)kind;
    Ketenbus__AuditRecord r;
    ketenbus__audit_record__init(&r);
    r.time_us = now;
    r.event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_PRUNED;
    r.agency = (char *)"";
    r.counterpart = (char *)"";
    r.reason = reason;
    r.tag = end;
    r.pruning = &pr;
    rc = kb_store_audit_log(s, b, tree, &r, &out->record);
    if (rc != KB_OK)
        return rc;
    out->logged = 1;
    out->count = done.count;
    return KB_OK;
}
