/*
 * session.c - adapter sessions of the broker.
 *
 * A session starts with HELLO on a connection whose agency the ZAP handshake
 * established, and ends on timeout (no frame for session_timeout), when the
 * same agency opens a newer receiving session, or at broker stop.
 * Deliveries for an agency go to its newest receiving session only; tags
 * still in flight on an ended session are simply delivered again to the
 * next one (the SDK drops ids it has already acknowledged). A send-only
 * session (HELLO send_only, e.g. `ketenbus send`) takes no deliveries and
 * leaves the agency's receiving session alone, so an agency can run its
 * receiving adapter and submit from a script at the same time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "kb_error.h"
#include "kb_log.h"

kb_session_t *session_find(kb_broker_t *b, const uint8_t *rid, size_t rid_len)
{
    for (size_t i = 0; i < KB_MAX_SESSIONS; i++) {
        kb_session_t *s = &b->sessions[i];
        if (s->rid_len == rid_len && rid_len > 0 && memcmp(s->rid, rid, rid_len) == 0)
            return s;
    }
    return NULL;
}

static kb_session_t *s_active_scan(kb_broker_t *b, const char *agency)
{
    for (size_t i = 0; i < KB_MAX_SESSIONS; i++) {
        kb_session_t *s = &b->sessions[i];
        if (s->rid_len > 0 && s->active && strcmp(s->agency, agency) == 0)
            return s;
    }
    return NULL;
}

/* Routing asks for every recipient of every message, so the answers of
 * the scan over all slots are cached per agency (also "none": an offline
 * recipient), and the whole cache is void once any session opens or ends
 * (b->session_gen). */
kb_session_t *session_active(kb_broker_t *b, const char *agency)
{
    if (!b->session_cache)
        return s_active_scan(b, agency);
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = agency; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    kb_session_cache_t *c = &b->session_cache[h & (KB_SESSION_CACHE - 1)];
    if (c->gen == b->session_gen && c->agency[0] && strcmp(c->agency, agency) == 0)
        return c->session;
    kb_session_t *s = s_active_scan(b, agency);
    if (strlen(agency) < sizeof c->agency) {
        memcpy(c->agency, agency, strlen(agency) + 1);
        c->session = s;
        c->gen = b->session_gen;
    }
    return s;
}

static void s_direct_free(kb_session_t *s)
{
    for (size_t i = 0; i < s->n_direct; i++)
        free((void *)s->direct[i].envelope);
    free(s->direct);
    s->direct = NULL;
    s->n_direct = s->cap_direct = 0;
}

void session_reset(kb_broker_t *b, kb_session_t *s)
{
    free(s->inflight);
    s_direct_free(s);
    memset(s, 0, sizeof *s);
    b->session_gen++;
}

void session_close(kb_broker_t *b, kb_session_t *s, const char *why)
{
    if (!s || s->rid_len == 0)
        return;
    kb_log(KB_LOG_INFO, "session_closed", "agency=%s inflight=%zu reason=\"%s\"", s->agency, s->n_inflight, why);
    audit_event(b, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DISCONNECTED, s->agency, NULL, why);
    session_reset(b, s);
    b->n_sessions--;
}

/* The least recently seen send-only session of agency (NULL: of any
 * agency) other than keep, or NULL; *count (if given) is how many such
 * sessions there are. */
static kb_session_t *s_oldest_sender(kb_broker_t *b, const char *agency, const kb_session_t *keep, size_t *count)
{
    kb_session_t *oldest = NULL;
    size_t n = 0;
    for (size_t i = 0; i < KB_MAX_SESSIONS; i++) {
        kb_session_t *s = &b->sessions[i];
        if (s->rid_len == 0 || !s->send_only || s == keep || (agency && strcmp(s->agency, agency) != 0))
            continue;
        n++;
        if (!oldest || s->last_seen_ms < oldest->last_seen_ms)
            oldest = s;
    }
    if (count)
        *count = n;
    return oldest;
}

kb_session_t *session_open(kb_broker_t *b, const uint8_t *rid, size_t rid_len, const char *agency, const char *key,
                           int send_only)
{
    if (rid_len == 0 || rid_len > KB_ROUTING_ID_MAX) {
        kb_error_set(KB_EINVAL, "session: bad routing id");
        return NULL;
    }
    kb_session_t *s = session_find(b, rid, rid_len);
    /* send-only sessions end only by timeout: an agency keeps at most
     * KB_SENDERS_PER_AGENCY of them, and a full table gives up its least
     * recently seen one, so connecting scripts cannot crowd out receiving
     * adapters. A session a second HELLO turns send-only counts too, or
     * HELLO then HELLO send_only on many connections would pass the cap */
    size_t mine = 0;
    kb_session_t *old = send_only ? s_oldest_sender(b, agency, s, &mine) : NULL;
    if (old && mine >= KB_SENDERS_PER_AGENCY) {
        char why[128];
        snprintf(why, sizeof why, "the agency opened more than %d send-only sessions: the least recently seen ends",
                 KB_SENDERS_PER_AGENCY);
        session_close(b, old, why);
    }
    if (s) {
        /* a second HELLO on the same connection restarts the session:
         * what it had in flight, or was about to get, comes again */
        free(s->inflight);
        s->inflight = NULL;
        s->n_inflight = s->head_inflight = s->span_inflight = s->cap_inflight = 0;
        s_direct_free(s);
    } else {
        for (size_t i = 0; i < KB_MAX_SESSIONS && !s; i++)
            if (b->sessions[i].rid_len == 0)
                s = &b->sessions[i];
        if (!s && (old = s_oldest_sender(b, NULL, NULL, NULL)) != NULL) {
            session_close(b, old, "all session slots in use: the least recently seen send-only session ends");
            s = old; /* reset by session_close: free */
        }
        if (!s) {
            kb_error_set(KB_ETOOBIG, "session: all %u session slots in use", KB_MAX_SESSIONS);
            return NULL;
        }
        memcpy(s->rid, rid, rid_len);
        s->rid_len = rid_len;
        b->n_sessions++;
    }
    /* the newest receiving session of an agency gets its deliveries */
    if (!send_only) {
        old = session_active(b, agency);
        if (old && old != s)
            session_close(b, old, "replaced by a newer session of the same agency");
    }
    snprintf(s->agency, sizeof s->agency, "%s", agency);
    snprintf(s->key, sizeof s->key, "%s", key);
    s->credit = 0;
    s->cursor = 0;
    s->passed = 0;
    s->active = !send_only;
    s->send_only = send_only != 0;
    b->session_gen++;
    return s;
}

/* The in-flight window is a ring of slots in ascending tag order. An ACK
 * marks its slot a hole instead of moving the rest of the window (adapters
 * acknowledge in order, so the hole is nearly always at the front, where the
 * head steps over it). Holes left behind an entry that stays unacknowledged
 * are squeezed out once they outnumber the live entries, so the ring never
 * holds more than about twice what is in flight. */
#define KB_INFLIGHT_CAP0  64u   /* first ring size (a power of two) */

static kb_inflight_t *s_slot(const kb_session_t *s, size_t i)
{
    return &s->inflight[(s->head_inflight + i) & (s->cap_inflight - 1)];
}

static kb_inflight_t *s_inflight_find(const kb_session_t *s, uint64_t tag)
{
    size_t lo = 0, hi = s->span_inflight;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s_slot(s, mid)->tag < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == s->span_inflight)
        return NULL;
    kb_inflight_t *p = s_slot(s, lo);
    return p->tag == tag && p->live ? p : NULL;
}

/* Copy the live entries, in order, into a fresh ring of cap slots. */
static int s_inflight_rebuild(kb_session_t *s, size_t cap)
{
    kb_inflight_t *p = malloc(cap * sizeof *p);
    if (!p)
        return kb_error_set(KB_ENOMEM, "session: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < s->span_inflight; i++) {
        const kb_inflight_t *d = s_slot(s, i);
        if (d->live)
            p[n++] = *d;
    }
    free(s->inflight);
    s->inflight = p;
    s->cap_inflight = cap;
    s->head_inflight = 0;
    s->span_inflight = n;
    return KB_OK;
}

int session_inflight_add(kb_session_t *s, const kb_inflight_t *d)
{
    if (s->span_inflight > 0 && s_slot(s, s->span_inflight - 1)->tag >= d->tag)
        return kb_error_set(KB_EINVAL, "session: tags must ascend");
    if (s->span_inflight == s->cap_inflight) {
        size_t cap = s->cap_inflight ? s->cap_inflight : KB_INFLIGHT_CAP0;
        /* grow only when live entries fill half the ring; else drop the holes */
        if (s->n_inflight >= cap / 2) {
            if (cap > SIZE_MAX / 2 / sizeof *s->inflight)
                return kb_error_set(KB_ENOMEM, "session: in-flight window too large");
            cap *= 2;
        }
        int rc = s_inflight_rebuild(s, cap);
        if (rc != KB_OK)
            return rc;
    }
    /* tags are handed out in ascending order, so appending keeps it sorted */
    kb_inflight_t *slot = s_slot(s, s->span_inflight++);
    *slot = *d;
    slot->live = 1;
    s->n_inflight++;
    return KB_OK;
}

void session_credit_grant(kb_session_t *s, uint64_t n)
{
    uint64_t room = s->n_inflight < KB_OUTSTANDING_MAX ? KB_OUTSTANDING_MAX - s->n_inflight : 0;
    s->credit = n < room && s->credit < room - n ? s->credit + n : room;
}

int session_inflight_has(const kb_session_t *s, uint64_t tag)
{
    return s_inflight_find(s, tag) != NULL;
}

int session_inflight_last(const kb_session_t *s, uint64_t *tag)
{
    if (s->span_inflight == 0)
        return 0;
    *tag = s_slot(s, s->span_inflight - 1)->tag; /* live: trailing holes are trimmed */
    return 1;
}

int session_inflight_remove(kb_session_t *s, uint64_t tag, kb_inflight_t *out)
{
    kb_inflight_t *p = s_inflight_find(s, tag);
    if (!p)
        return KB_ENOTFOUND;
    if (out)
        *out = *p;
    p->live = 0;
    s->n_inflight--;
    while (s->span_inflight > 0 && !s_slot(s, 0)->live) {
        s->head_inflight = (s->head_inflight + 1) & (s->cap_inflight - 1);
        s->span_inflight--;
    }
    while (s->span_inflight > 0 && !s_slot(s, s->span_inflight - 1)->live)
        s->span_inflight--;
    return KB_OK;
}

void session_expire_idle(kb_broker_t *b, int64_t now_ms)
{
    int64_t limit_ms = b->conf->session_timeout_us / 1000;
    for (size_t i = 0; i < KB_MAX_SESSIONS; i++) {
        kb_session_t *s = &b->sessions[i];
        if (s->rid_len > 0 && now_ms - s->last_seen_ms > limit_ms)
            session_close(b, s, "no frame within session_timeout");
    }
}
