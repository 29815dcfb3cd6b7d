/*
 * deliver.c - deliveries under the rules in force, acknowledgements and
 * expiry.
 *
 * A queue entry leaves the queue only on ACK (from the agency's session that
 * received it), on expiry, or when the rules in force no longer allow it
 * as it is about to go out (below). Deliveries go out in queue order,
 * within the credit the adapter granted, and only once the entry is
 * committed: the pump reads written entries from the store; an entry
 * routed to a session that has every older entry already (deliver_direct)
 * goes out from memory with the replies of the batch that writes it. An entry in
 * flight is never expired: the adapter may be storing it right now. An
 * entry past its expiry is not handed out again (a new session starts
 * from the first entry), so one that an adapter keeps refusing expires.
 * Expiry tells the sender with an EXPIRY_NOTICE signed by the broker.
 *
 * The pump decides every entry again (policy.h) with the rules in force
 * when it hands it out, not only those in force when it was routed: a
 * reload that stops an exchange (a deny rule, an allow rule taken out) or
 * an allow rule whose valid_until passes stops what is still queued too.
 * An entry the rules no longer allow leaves the queue as refused, audited
 * with the reason and the rule that refuses it, and its sender gets an
 * EXPIRY_NOTICE saying why, as for an expiry: nothing leaves silently. An
 * entry they still allow loses, before it goes out, the paths its rule
 * now withholds that its queued copy still carries; a rule that withholds
 * less gives nothing back. The broker's own notices are not decided (no
 * rule names them). An entry routing delivers from memory (deliver_direct)
 * was decided by the rules in force in the same turn: a reload writes the
 * staged batch and sends those deliveries before it puts the new rules
 * in force, so none is decided under old rules and sent under new ones.
 *
 * A removal (ACK, expiry or refusal) is staged in a batch that reaches the
 * store later, while the pump and expiry read the store: until it is written,
 * the entry is in the broker's set of removals (b->dels, b->dels_flight)
 * and both pass it by. Otherwise a session that starts again from the
 * first entry (a new HELLO) would get an entry it has acknowledged, and
 * its second ACK would remove the entry, and count it off, twice.
 */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "kb_error.h"
#include "kb_log.h"
#include "kb_seal.h"
#include "kb_util.h"
#include "policy.h"

/* Deliveries collected for one session during a queue scan. */
typedef struct {
    kb_broker_t *b;                 /* the broker */
    kb_session_t *s;                /* the receiving session */
    kb_delivery_raw_t *items;       /* deliveries (envelope bytes owned) */
    size_t n;                       /* collected */
    uint64_t last_seq;              /* last sequence looked at */
    int64_t now_us;                 /* entries that expired by then are not handed out */
    int looked;                     /* 1 if any entry was looked at */
    int rc;                         /* first error */
} s_pump_t;

/* What the rule in force at delivery withholds beyond the queued copy. */
typedef struct {
    const kb_rule_t *rule;                /* the rule that allows the delivery now */
    const char *paths[KB_MAX_SEALS];      /* paths withheld from the copy now (borrowed from the rule) */
    size_t n_paths;                       /* their count; 0: the copy goes as it is queued */
    uint8_t *bytes;                       /* the copy without them (owned), or NULL */
    size_t len;                           /* its length */
} s_more_t;

/* Hand queue entry q (tag) to session s: a copy of its envelope bytes in
 * *out, the tag in the session's in-flight window, its DELIVERED record,
 * one credit used. The envelope goes out as the queue holds it (packed for
 * this recipient): only the fields of its audit record are read (v). With
 * more (may be NULL) holding bytes, those go out instead, and the record
 * names the paths they withhold beyond the queued copy and the rule; its
 * bytes are taken (cleared), also on failure. */
static int s_hand_out(kb_broker_t *b, kb_session_t *s, uint64_t tag, const Ketenbus__QueueEntry *q,
                      const kb_envelope_view_t *v, s_more_t *more, kb_delivery_raw_t *out)
{
    uint8_t *bytes = more ? more->bytes : NULL;
    size_t len = more && bytes ? more->len : q->envelope.len;
    if (more)
        more->bytes = NULL;
    if (!bytes) {
        bytes = malloc(len ? len : 1);
        if (!bytes)
            return kb_error_set(KB_ENOMEM, "deliver: out of memory");
        if (len > 0)
            memcpy(bytes, q->envelope.data, len);
    }
    kb_inflight_t d = {.tag = tag, .kind = (int)q->kind};
    if (q->message_id.len == 16)
        memcpy(d.message_id, q->message_id.data, 16);
    snprintf(d.sender, sizeof d.sender, "%s", q->sender);
    int rc = session_inflight_add(s, &d);
    if (rc == KB_OK) {
        Ketenbus__AuditRecord r;
        audit_record_view(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DELIVERED, v);
        r.counterpart = s->agency;
        r.tag = tag;
        if (more && more->n_paths > 0) {
            r.rule_id = more->rule->id;
            r.redacted = (char **)more->paths;
            r.n_redacted = more->n_paths;
        }
        rc = audit_append(b, &r, NULL);
    }
    if (rc != KB_OK) {
        free(bytes);
        return rc;
    }
    *out = (kb_delivery_raw_t){tag, bytes, len};
    s->credit--;
    return KB_OK;
}

/* Send deliveries items[0..n) to s in DELIVER frames of up to
 * KB_DELIVER_BATCH envelopes, and free their bytes. A frame takes no more
 * envelopes once it holds KB_DELIVER_FRAME_BYTES, so that the frames
 * libzmq may hold for a peer (broker.c, KB_SND_BYTES) bound its memory. */
static int s_send_items(kb_broker_t *b, kb_session_t *s, kb_delivery_raw_t *items, size_t n)
{
    int rc = KB_OK;
    for (size_t i = 0, k = 0; rc == KB_OK && i < n; i += k) {
        size_t bytes = items[i].envelope_len;
        for (k = 1; i + k < n && k < KB_DELIVER_BATCH && bytes < KB_DELIVER_FRAME_BYTES; k++)
            bytes += items[i + k].envelope_len;
        uint8_t *frame = NULL;
        size_t frame_len = 0;
        rc = kb_deliver_encode(items + i, k, &frame, &frame_len);
        if (rc == KB_OK)
            rc = broker_reply_raw(b, s->rid, s->rid_len, &frame, frame_len);
        if (rc == KB_OK)
            b->stat_delivered += k;
    }
    for (size_t i = 0; i < n; i++)
        free((void *)items[i].envelope);
    return rc;
}

/* The key of queue entry `tag` of agency in the sets of removals. */
static void s_del_key(uint64_t tag, uint8_t id[KB_ID_LEN])
{
    memset(id, 0, KB_ID_LEN);
    kb_be64_put(id, tag);
}

/* 1 if the removal of agency's entry `tag` is staged or being written. */
static int s_removing(const kb_broker_t *b, const char *agency, uint64_t tag)
{
    uint8_t id[KB_ID_LEN];
    s_del_key(tag, id);
    return kb_idset_has(b->dels, agency, id) || kb_idset_has(b->dels_flight, agency, id);
}

/* Stage the removal of agency's entry `tag`, and remember it until it is
 * written. KB_ENOTFOUND if it is not queued. */
static int s_remove(kb_broker_t *b, const char *agency, uint64_t tag)
{
    int rc = kb_store_queue_del(b->store, b->batch, agency, tag);
    if (rc != KB_OK)
        return rc;
    uint8_t id[KB_ID_LEN];
    s_del_key(tag, id);
    return kb_idset_add(b->dels, agency, id);
}

/* Tell sender, by an EXPIRY_NOTICE the broker signs, that its message
 * `about` (of purpose) will not reach recipient: text says why. The
 * notice is queued for the sender in the staged batch. */
static int s_notify_sender(kb_broker_t *b, const char *sender, const uint8_t about[KB_ID_LEN], int purpose,
                           const char *recipient, const char *text, int64_t now_us)
{
    Ketenbus__Envelope *n = malloc(sizeof *n);
    if (!n)
        return kb_error_set(KB_ENOMEM, "notice: out of memory");
    ketenbus__envelope__init(n);
    int rc = KB_ENOMEM;
    n->message_id.data = malloc(16);
    n->sender = strdup(b->conf->broker_id);
    n->recipients = calloc(1, sizeof *n->recipients);
    /* initialised at once: on the way out free_unpacked walks them */
    n->legal_basis = malloc(sizeof *n->legal_basis);
    if (n->legal_basis)
        ketenbus__legal_basis__init(n->legal_basis);
    n->notice = malloc(sizeof *n->notice);
    if (n->notice)
        ketenbus__notice__init(n->notice);
    n->payload_case = KETENBUS__ENVELOPE__PAYLOAD_NOTICE;
    if (!n->message_id.data || !n->sender || !n->recipients || !n->legal_basis || !n->notice)
        goto done;
    n->message_id.len = 16;
    if ((rc = kb_uuid7(n->message_id.data)) != KB_OK)
        goto done;
    rc = KB_ENOMEM;
    n->recipients[0] = strdup(sender);
    if (!n->recipients[0])
        goto done;
    n->n_recipients = 1;
    n->kind = KETENBUS__KIND__KIND_EXPIRY_NOTICE;
    n->purpose = (Ketenbus__Purpose)purpose;
    n->handling = KETENBUS__HANDLING__HANDLING_H0;
    n->legal_basis->basis = strdup("delivery report to the sender");
    n->legal_basis->consent = KETENBUS__CONSENT__CONSENT_NOT_REQUIRED;
    n->created_us = now_us;
    n->correlation_id.data = malloc(16);
    n->notice->type = KETENBUS__NOTICE_TYPE__NOTICE_TYPE_EXPIRED;
    n->notice->about_message_id.data = malloc(16);
    n->notice->agencies = calloc(1, sizeof *n->notice->agencies);
    n->notice->text = strdup(text);
    if (!n->legal_basis->basis || !n->correlation_id.data || !n->notice->about_message_id.data ||
        !n->notice->agencies || !n->notice->text)
        goto done;
    memcpy(n->correlation_id.data, about, 16);
    n->correlation_id.len = 16;
    memcpy(n->notice->about_message_id.data, about, 16);
    n->notice->about_message_id.len = 16;
    n->notice->agencies[0] = strdup(recipient);
    if (!n->notice->agencies[0])
        goto done;
    n->notice->n_agencies = 1;
    if ((rc = kb_seal_sign(n, b->sign_key)) != KB_OK)
        goto done;
    size_t len = ketenbus__envelope__get_packed_size(n);
    uint8_t *packed = malloc(len);
    rc = KB_ENOMEM;
    if (!packed)
        goto done;
    ketenbus__envelope__pack(n, packed);
    Ketenbus__QueueEntry q;
    ketenbus__queue_entry__init(&q);
    q.envelope.data = packed;
    q.envelope.len = len;
    q.expires_us = now_us + b->conf->message_ttl_us;
    q.message_id = n->message_id;
    q.sender = n->sender;
    q.kind = n->kind;
    uint64_t tag;
    rc = kb_store_queue_put(b->store, b->batch, sender, &q, &tag);
    free(packed);
done:
    ketenbus__envelope__free_unpacked(n, NULL);
    return rc;
}

/* Queue entry tag of agency, which the rules in force no longer allow
 * (d): it leaves the queue as refused, audited with d's reason and rule,
 * and its sender, if still in the chain, gets a notice saying why. */
static int s_refuse(kb_broker_t *b, const char *agency, uint64_t tag, const kb_envelope_view_t *v,
                    const kb_decision_t *d, int64_t now_us)
{
    int rc = s_remove(b, agency, tag);
    if (rc != KB_OK)
        return rc;
    /* as at expiry: an agency out of the chain gets nothing from it */
    int notify = kb_conf_agency(b->conf, v->sender) && v->message_id.len == KB_ID_LEN;
    char reason[sizeof d->reason + 96];
    snprintf(reason, sizeof reason, "%s (decided again at delivery); %s", d->reason,
             notify ? "sender notified" : "sender not notified: not in the chain now");
    Ketenbus__AuditRecord r;
    audit_record_view(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, v);
    r.counterpart = (char *)agency;
    r.code = KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED;
    r.reason = reason;
    if (d->rule)
        r.rule_id = d->rule->id;
    r.tag = tag;
    rc = audit_append(b, &r, NULL);
    if (rc == KB_OK && notify) {
        char text[sizeof d->reason + 160];
        snprintf(text, sizeof text, "%s for %s left the queue unacknowledged: the sharing rules in force at "
                 "delivery no longer allow it (%s)", kb_kind_name(v->kind), agency, d->reason);
        rc = s_notify_sender(b, v->sender, v->message_id.data, v->purpose, agency, text, now_us);
    }
    if (rc != KB_OK)
        return rc;
    char idtext[37] = "-";
    if (v->message_id.len == KB_ID_LEN)
        kb_uuid_format(v->message_id.data, idtext);
    kb_log(KB_LOG_WARN, "refused_at_delivery", "sender=%s recipient=%s message=%s rule=%s reason=\"%s\"", v->sender,
           agency, idtext, d->rule ? d->rule->id : "-", d->reason);
    return KB_OK;
}

/* The rule that allows q's delivery now (d->rule) withholds paths from a
 * message of kind: those its queued copy still carries are withheld from
 * it now, in m. The copy is unpacked only if it still carries one of them
 * (kb_envelope_carries reads the bytes along the path and the seals),
 * that is when the rule withholds more than the one it was routed under.
 * KB_EPROTO if the copy does not decode, KB_ENOMEM, or kb_seal_redact's
 * error. */
static int s_redact_more(const kb_decision_t *d, const Ketenbus__QueueEntry *q, int kind, s_more_t *m)
{
    const kb_rule_t *rule = d->rule;
    m->rule = rule;
    int more = 0;
    for (size_t i = 0; !more && i < rule->n_redact; i++) {
        if (!kb_policy_redact_applies(rule->redact[i], kind))
            continue;
        more = kb_envelope_carries(q->envelope.data, q->envelope.len, rule->redact[i]);
        if (more < 0)
            return more;
    }
    if (!more)
        return KB_OK; /* as usual: it lacks them all already, or never had them */
    Ketenbus__Envelope *e = ketenbus__envelope__unpack(NULL, q->envelope.len, q->envelope.data);
    if (!e)
        return kb_error_set(KB_EPROTO, "deliver: the queued envelope does not decode");
    int rc = KB_OK;
    for (size_t i = 0; rc == KB_OK && i < rule->n_redact; i++) {
        size_t before = e->n_withheld;
        if (kb_policy_redact_applies(rule->redact[i], kind))
            rc = kb_seal_redact(e, rule->redact[i]);
        /* listed only when there was something to withhold (kb_seal_redact) */
        if (rc == KB_OK && e->n_withheld > before && m->n_paths < KB_MAX_SEALS)
            m->paths[m->n_paths++] = rule->redact[i];
    }
    if (rc == KB_OK && m->n_paths > 0) {
        m->len = ketenbus__envelope__get_packed_size(e);
        m->bytes = malloc(m->len ? m->len : 1);
        if (m->bytes)
            ketenbus__envelope__pack(e, m->bytes);
        else
            rc = kb_error_set(KB_ENOMEM, "deliver: out of memory");
    }
    if (rc != KB_OK)
        m->n_paths = 0;
    ketenbus__envelope__free_unpacked(e, NULL);
    return rc;
}

static int s_collect(uint64_t seq, Ketenbus__QueueEntry *q, void *arg)
{
    s_pump_t *p = arg;
    p->last_seq = seq;
    p->looked = 1;
    if (!q) {
        /* damaged on disk, or another storage key: it stays queued for an
         * operator, and the session moves past it (said once a session) */
        kb_log(KB_LOG_ERROR, "queue_unreadable", "agency=%s tag=%llu detail=\"%s\"", p->s->agency,
               (unsigned long long)seq, kb_last_error());
        p->s->passed++;
        return 0;
    }
    if (s_removing(p->b, p->s->agency, seq))
        return 0; /* acknowledged or expired; the store does not know yet */
    if (q->expires_us <= p->now_us) {
        /* expired: left to expiry, which tells the sender. Handed out, it
         * would stay in flight, where expiry never takes it, for as long
         * as the adapter keeps it (one that refuses it, say, in every
         * session). Expiry now looks at this session's window entry by
         * entry, since this one lies in it undelivered. */
        p->s->passed++;
        return 0;
    }
    kb_envelope_view_t v;
    if (kb_envelope_view(q->envelope.data, q->envelope.len, &v) != KB_OK) {
        kb_log(KB_LOG_ERROR, "queue_corrupt", "agency=%s tag=%llu detail=\"%s\"", p->s->agency,
               (unsigned long long)seq, kb_last_error());
        p->s->passed++; /* it lies among the entries in flight now */
        return 0;
    }
    s_more_t more;
    more.n_paths = 0;
    more.bytes = NULL;
    int rc = KB_OK;
    if (!kb_policy_kind_is_notice(v.kind)) {
        /* decided again: the rules may have changed since it was routed */
        kb_decision_t d;
        rc = kb_policy_decide(p->b->conf->policy, v.sender, p->s->agency, v.kind, v.purpose, v.handling, p->now_us,
                              &d);
        if (rc == KB_OK && !d.allowed) {
            rc = s_refuse(p->b, p->s->agency, seq, &v, &d, p->now_us);
            if (rc != KB_OK) {
                p->rc = rc;
                return 1;
            }
            return 0;
        }
        if (rc == KB_OK && d.rule->n_redact > 0)
            rc = s_redact_more(&d, q, v.kind, &more);
        if (rc != KB_OK && rc != KB_ENOMEM) {
            /* it cannot go out without what its rule withholds: as an
             * entry whose view does not read, it stays until it expires */
            kb_log(KB_LOG_ERROR, rc == KB_EPROTO ? "queue_corrupt" : "redact_failed",
                   "agency=%s tag=%llu detail=\"%s\"", p->s->agency, (unsigned long long)seq, kb_last_error());
            p->s->passed++;
            return 0;
        }
    }
    if (rc == KB_OK)
        rc = s_hand_out(p->b, p->s, seq, q, &v, &more, &p->items[p->n]);
    if (rc != KB_OK) {
        free(more.bytes);
        p->rc = rc;
        return 1;
    }
    p->n++;
    return p->s->credit == 0;
}

static int s_pump_session(kb_broker_t *b, kb_session_t *s)
{
    s_pump_t p = {.b = b, .s = s, .now_us = kb_now_us()};
    size_t max = s->credit < KB_DELIVER_BATCH ? (size_t)s->credit : KB_DELIVER_BATCH;
    p.items = calloc(max, sizeof *p.items);
    if (!p.items)
        return kb_error_set(KB_ENOMEM, "deliver: out of memory");
    int rc = kb_store_queue_scan(b->store, s->agency, s->cursor, max, s_collect, &p);
    if (rc == KB_ECRYPTO)
        rc = KB_OK; /* logged by s_collect */
    if (p.looked)
        s->cursor = p.last_seq + 1;
    if (rc == KB_OK)
        rc = p.rc;
    if (rc == KB_OK) {
        rc = s_send_items(b, s, p.items, p.n); /* frees their bytes */
    } else {
        for (size_t i = 0; i < p.n; i++)
            free((void *)p.items[i].envelope);
    }
    free(p.items);
    return rc;
}

int deliver_direct(kb_broker_t *b, kb_session_t *s, uint64_t tag, const Ketenbus__QueueEntry *q, int *done)
{
    *done = 0;
    if (!s || s->credit == 0 || s->cursor != tag)
        return KB_OK; /* not caught up: the pump reads it from the store in order */
    kb_envelope_view_t v;
    if (kb_envelope_view(q->envelope.data, q->envelope.len, &v) != KB_OK)
        return KB_OK; /* cannot happen with bytes routing packed; the pump logs it */
    if (s->n_direct == s->cap_direct) {
        size_t cap = s->cap_direct ? s->cap_direct * 2 : KB_DELIVER_BATCH;
        kb_delivery_raw_t *p = realloc(s->direct, cap * sizeof *p);
        if (!p)
            return kb_error_set(KB_ENOMEM, "deliver: out of memory");
        s->direct = p;
        s->cap_direct = cap;
    }
    /* decided by routing in this very turn (see the top of the file) */
    int rc = s_hand_out(b, s, tag, q, &v, NULL, &s->direct[s->n_direct]);
    if (rc != KB_OK)
        return rc;
    s->n_direct++;
    s->cursor = tag + 1;
    *done = 1;
    return KB_OK;
}

/* The DELIVER frames of what routing delivered to s this turn. */
static int s_send_direct(kb_broker_t *b, kb_session_t *s)
{
    int rc = s_send_items(b, s, s->direct, s->n_direct);
    s->n_direct = 0;
    return rc;
}

int deliver_send_direct(kb_broker_t *b)
{
    for (size_t i = 0; i < KB_MAX_SESSIONS; i++) {
        kb_session_t *s = &b->sessions[i];
        if (s->rid_len > 0 && s->n_direct > 0) {
            int rc = s_send_direct(b, s);
            if (rc != KB_OK)
                return rc;
        }
    }
    return KB_OK;
}

int deliver_pump(kb_broker_t *b)
{
    int rc = deliver_send_direct(b);
    if (rc != KB_OK)
        return rc;
    for (size_t i = 0; i < KB_MAX_SESSIONS; i++) {
        kb_session_t *s = &b->sessions[i];
        if (s->rid_len == 0 || !s->active || s->credit == 0)
            continue;
        /* nothing queued past the cursor: skip the seek */
        if (kb_store_queue_depth(b->store, s->agency) == 0 || s->cursor >= kb_store_queue_next(b->store, s->agency))
            continue;
        /* as many DELIVER frames as the credit allows: a turn may have
         * accepted hundreds of messages for this recipient */
        for (unsigned k = 0; k < KB_DELIVER_FRAMES_MAX && s->credit > 0 && s->rid_len > 0; k++) {
            uint64_t before = s->cursor;
            rc = s_pump_session(b, s);
            if (rc != KB_OK)
                return rc;
            if (s->cursor == before)
                break; /* nothing more queued */
        }
    }
    return KB_OK;
}

int deliver_ack(kb_broker_t *b, kb_session_t *s, const Ketenbus__Ack *ack)
{
    for (size_t i = 0; i < ack->n_tags; i++) {
        kb_inflight_t d;
        if (session_inflight_remove(s, ack->tags[i], &d) != KB_OK) {
            /* a stale or foreign tag: harmless, but worth a line */
            kb_log(KB_LOG_DEBUG, "ack_unknown", "agency=%s tag=%llu", s->agency, (unsigned long long)ack->tags[i]);
            continue;
        }
        if (s_removing(b, s->agency, d.tag)) {
            /* cannot happen since the pump passes removed entries by; if it
             * does, the entry must not be counted off twice */
            kb_log(KB_LOG_WARN, "ack_twice", "agency=%s tag=%llu", s->agency, (unsigned long long)d.tag);
            continue;
        }
        int rc = s_remove(b, s->agency, d.tag);
        if (rc == KB_ENOTFOUND) {
            /* the store has no such entry: nothing to remove, and no reason
             * to refuse the rest of the turn to every other agency */
            kb_log(KB_LOG_ERROR, "ack_not_queued", "agency=%s tag=%llu detail=\"%s\"", s->agency,
                   (unsigned long long)d.tag, kb_last_error());
            continue;
        }
        if (rc != KB_OK)
            return rc;
        Ketenbus__AuditRecord r;
        audit_record_for(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ACKNOWLEDGED, NULL);
        r.agency = d.sender;
        r.counterpart = s->agency;
        r.message_id.data = d.message_id;
        r.message_id.len = 16;
        r.kind = (Ketenbus__Kind)d.kind;
        r.tag = d.tag;
        rc = audit_append(b, &r, NULL);
        if (rc != KB_OK)
            return rc;
    }
    return KB_OK;
}

/* ------------------------------------------------------------ expiry */

/* Most queue entries expiry looks at per agency and check. Entries in
 * flight are passed by, the whole window at once: the pump delivers queue
 * entries in order, so every entry between the first and the last in
 * flight is in flight or being removed, unless the pump passed an entry it
 * could not read (then the window is looked at entry by entry, so that
 * such an entry still expires). A recipient holding many deliveries does
 * not keep the entries behind them from expiring. */
#define KB_EXPIRE_SCAN_MAX (8u * KB_DELIVER_BATCH)

typedef struct {
    kb_broker_t *b;        /* the broker */
    const char *agency;    /* whose queue */
    int64_t now_us;        /* expiry reference time */
    size_t expired;        /* entries expired */
    size_t looked;         /* entries looked at */
    uint64_t next;         /* the sequence after the last looked at */
    int jumped;            /* 1: the scan stopped to go on after the in-flight window */
    int done;              /* 1 once an entry that has not expired is reached */
    int rc;                /* first error */
} s_expire_t;

static int s_expire_one(uint64_t seq, Ketenbus__QueueEntry *q, void *arg)
{
    s_expire_t *x = arg;
    x->looked++;
    x->next = seq + 1;
    if (!q)
        return 0; /* unreadable: its expiry is not known; it stays for an operator */
    if (q->expires_us > x->now_us) {
        x->done = 1;
        return 1; /* entries expire in queue order */
    }
    kb_session_t *s = session_active(x->b, x->agency);
    if (s && session_inflight_has(s, seq)) {
        uint64_t last = seq;
        if (s->passed == 0 && session_inflight_last(s, &last) && last > seq) {
            x->next = last + 1;
            x->jumped = 1;
            return 1;
        }
        return 0;
    }
    if (s_removing(x->b, x->agency, seq))
        return 0;
    Ketenbus__Envelope *e = ketenbus__envelope__unpack(NULL, q->envelope.len, q->envelope.data);
    /* no notice about a notice: the sender of a notice is the broker */
    int notify = e && e->kind != KETENBUS__KIND__KIND_EXPIRY_NOTICE && e->kind != KETENBUS__KIND__KIND_MATCH_NOTICE &&
                 kb_conf_agency(x->b->conf, q->sender);
    int rc = s_remove(x->b, x->agency, seq);
    if (rc == KB_OK) {
        Ketenbus__AuditRecord r;
        audit_record_for(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED, e);
        r.agency = q->sender;
        r.counterpart = (char *)x->agency;
        r.message_id = q->message_id;
        r.kind = q->kind;
        r.tag = seq;
        /* the reason says what is done about it */
        r.reason = notify ? (char *)"not acknowledged before its expiry; sender notified"
                 : !e     ? (char *)"not acknowledged before its expiry; sender not notified: the envelope does not decode"
                 : e->kind == KETENBUS__KIND__KIND_EXPIRY_NOTICE || e->kind == KETENBUS__KIND__KIND_MATCH_NOTICE
                     ? (char *)"not acknowledged before its expiry; a notice of the broker: no notice about it"
                     : (char *)"not acknowledged before its expiry; sender not notified: not in the chain now";
        rc = audit_append(x->b, &r, NULL);
    }
    if (rc == KB_OK && notify) {
        char text[256];
        snprintf(text, sizeof text, "%s was not acknowledged by %s before it expired", kb_kind_name(e->kind),
                 x->agency);
        rc = s_notify_sender(x->b, e->sender, e->message_id.data, (int)e->purpose, x->agency, text, x->now_us);
    }
    if (e)
        ketenbus__envelope__free_unpacked(e, NULL);
    if (rc != KB_OK) {
        x->rc = rc;
        return 1;
    }
    char idtext[37] = "-";
    if (q->message_id.len == 16)
        kb_uuid_format(q->message_id.data, idtext);
    kb_log(KB_LOG_INFO, "expired", "sender=%s recipient=%s message=%s", q->sender, x->agency, idtext);
    x->expired++;
    return 0;
}

int deliver_expire(kb_broker_t *b, int64_t now_us)
{
    /* every queue that holds entries, not only those of the agencies in
     * the configuration: the queue of an agency a reload took out stays
     * (the agency may come back) but its entries expire as any others,
     * audited and told to their senders */
    char **agencies = NULL;
    size_t n = 0;
    int rc = kb_store_queue_agencies(b->store, &agencies, &n);
    for (size_t i = 0; rc == KB_OK && i < n; i++) {
        const char *agency = agencies[i]; /* its queue holds entries (only its own expiry takes them) */
        s_expire_t x = {.b = b, .agency = agency, .now_us = now_us};
        while (rc == KB_OK && !x.done && x.looked < KB_EXPIRE_SCAN_MAX) {
            size_t before = x.looked;
            x.jumped = 0;
            rc = kb_store_queue_scan(b->store, agency, x.next, KB_DELIVER_BATCH, s_expire_one, &x);
            if (rc == KB_ECRYPTO)
                rc = KB_OK; /* logged by the pump; the entry stays for an operator */
            if (rc == KB_OK)
                rc = x.rc;
            if (!x.jumped && x.looked - before < KB_DELIVER_BATCH)
                break; /* the end of the queue, or stopped */
        }
    }
    free(agencies);
    return rc;
}
