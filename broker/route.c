/*
 * route.c - SUBMIT handling: validate, authenticate, decide, queue, audit.
 *
 * For each envelope, in order: structure (kb_envelope_validate), sender equal
 * to the authenticated agency, created time within the message TTL and clock
 * skew, not a duplicate (same sender and id accepted before, on disk or
 * earlier in this turn), the sender's Ed25519 signature over its seals, then
 * the sharing decision per recipient. An accepted envelope stages its
 * "received" and per-recipient "routed"/"refused" audit records, a queue
 * entry per permitted recipient and its id in the accepted-id index, all in
 * the turn's batch. The receipt is queued and leaves only after the batch is
 * synced. A refusal is audited too, with its reason.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "broker.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_log.h"
#include "kb_seal.h"
#include "kb_util.h"
#include "rules.h"

/* Receipt entry plus the strings it points to, built per envelope. */
typedef struct {
    Ketenbus__ReceiptEntry entry;                  /* what goes on the wire */
    char reason[512];                              /* rejection reason */
    char rule_id[128];                             /* deciding rule */
    const char *recipients[KB_MAX_RECIPIENTS];     /* accepted recipients */
    const char *refused[KB_MAX_RECIPIENTS];        /* refused recipients */
} s_result_t;

static void s_reject(kb_broker_t *b, kb_session_t *s, const Ketenbus__Envelope *e, int trusted, s_result_t *res,
                     int code, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void s_reject(kb_broker_t *b, kb_session_t *s, const Ketenbus__Envelope *e, int trusted, s_result_t *res,
                     int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof res->reason, fmt, ap);
    va_end(ap);
    res->entry.outcome = KETENBUS__OUTCOME__OUTCOME_REJECTED;
    res->entry.code = (Ketenbus__RejectCode)code;
    res->entry.reason = res->reason;
    b->stat_rejected++;

    /* Only fields of an envelope that passed validation are copied into
     * the audit log; otherwise the record holds who sent it and why it was
     * refused, not the peer's bytes. */
    Ketenbus__AuditRecord r;
    audit_record_for(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, trusted ? e : NULL);
    r.agency = s->agency;
    if (!trusted && e && e->message_id.len == KB_ID_LEN)
        r.message_id = e->message_id;
    r.code = (Ketenbus__RejectCode)code;
    r.reason = res->reason;
    r.rule_id = res->rule_id;
    audit_append(b, &r, NULL);
    char idtext[37] = "-";
    if (e && e->message_id.len == KB_ID_LEN)
        kb_uuid_format(e->message_id.data, idtext);
    kb_log(KB_LOG_WARN, "refused", "agency=%s message=%s code=%d reason=\"%s\"", s->agency, idtext, code,
           res->reason);
}

static int s_batch_has(kb_broker_t *b, const char *sender, const uint8_t id[16])
{
    for (size_t i = 0; i < b->n_batch_ids; i++)
        if (memcmp(b->batch_ids[i], id, 16) == 0 && strcmp(b->batch_senders[i], sender) == 0)
            return 1;
    return 0;
}

static int s_batch_add(kb_broker_t *b, const char *sender, const uint8_t id[16])
{
    if (b->n_batch_ids == b->cap_batch_ids) {
        size_t cap = b->cap_batch_ids ? b->cap_batch_ids * 2 : 256;
        void *ids = realloc(b->batch_ids, cap * sizeof *b->batch_ids);
        if (!ids)
            return kb_error_set(KB_ENOMEM, "route: out of memory");
        b->batch_ids = ids;
        void *snd = realloc(b->batch_senders, cap * sizeof *b->batch_senders);
        if (!snd)
            return kb_error_set(KB_ENOMEM, "route: out of memory");
        b->batch_senders = snd;
        b->cap_batch_ids = cap;
    }
    memcpy(b->batch_ids[b->n_batch_ids], id, 16);
    snprintf(b->batch_senders[b->n_batch_ids], sizeof b->batch_senders[0], "%s", sender);
    b->n_batch_ids++;
    return KB_OK;
}

/* Decide recipients; fills res->recipients / res->refused. */
static void s_decide(kb_broker_t *b, const Ketenbus__Envelope *e, s_result_t *res, const kb_rule_t **rules)
{
    const char *candidates[KB_MAX_RECIPIENTS];
    size_t n_cand;
    if (e->n_recipients > 0) {
        n_cand = e->n_recipients;
        for (size_t i = 0; i < n_cand; i++)
            candidates[i] = e->recipients[i];
    } else {
        n_cand = kb_rules_fanout(b->conf, e->sender, (int)e->kind, candidates, KB_MAX_RECIPIENTS);
    }
    for (size_t i = 0; i < n_cand; i++) {
        const kb_rule_t *rule = NULL;
        if (kb_conf_agency(b->conf, candidates[i]) && strcmp(candidates[i], e->sender) != 0)
            rule = kb_rules_match(b->conf, e->sender, candidates[i], (int)e->kind);
        if (rule) {
            rules[res->entry.n_recipients] = rule;
            res->recipients[res->entry.n_recipients++] = candidates[i];
        } else {
            res->refused[res->entry.n_refused++] = candidates[i];
        }
    }
}

static int s_route_one(kb_broker_t *b, kb_session_t *s, Ketenbus__Envelope *e, s_result_t *res)
{
    ketenbus__receipt_entry__init(&res->entry);
    res->entry.message_id = e->message_id;
    res->entry.recipients = (char **)res->recipients;
    res->entry.refused = (char **)res->refused;

    char why[256];
    if (kb_envelope_validate(e, why, sizeof why) != KB_OK) {
        s_reject(b, s, e, 0, res, KETENBUS__REJECT_CODE__REJECT_MALFORMED, "%s", why);
        return KB_OK;
    }
    if (strcmp(e->sender, s->agency) != 0) {
        s_reject(b, s, e, 0, res, KETENBUS__REJECT_CODE__REJECT_SPOOFED_SENDER,
                 "sender '%s' does not match the authenticated agency '%s'", e->sender, s->agency);
        return KB_OK;
    }
    int64_t now = kb_now_us();
    if (e->created_us > now + KB_CLOCK_SKEW_US || e->created_us < now - b->conf->message_ttl_us) {
        s_reject(b, s, e, 1, res, KETENBUS__REJECT_CODE__REJECT_STALE,
                 "created_us is outside the accepted window (message TTL and clock skew)");
        return KB_OK;
    }
    uint64_t prior = 0;
    int seen = kb_store_seen_get(b->store, e->sender, e->message_id.data, &prior);
    if (seen == KB_OK || s_batch_has(b, e->sender, e->message_id.data)) {
        res->entry.outcome = KETENBUS__OUTCOME__OUTCOME_DUPLICATE;
        res->entry.audit_index = prior;
        Ketenbus__AuditRecord r;
        audit_record_for(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DUPLICATE, e);
        audit_append(b, &r, NULL);
        return KB_OK;
    }
    if (seen != KB_ENOTFOUND) {
        s_reject(b, s, e, 1, res, KETENBUS__REJECT_CODE__REJECT_INTERNAL, "store lookup failed; retry later");
        return KB_OK;
    }
    const kb_agency_t *sender = kb_conf_agency(b->conf, e->sender);
    if (!sender || kb_seal_verify(e, sender->signing_key) != KB_OK) {
        s_reject(b, s, e, 0, res, KETENBUS__REJECT_CODE__REJECT_BAD_SIGNATURE, "signature does not verify: %s",
                 kb_last_error());
        return KB_OK;
    }
    const kb_rule_t *rules[KB_MAX_RECIPIENTS];
    s_decide(b, e, res, rules);
    if (res->entry.n_recipients == 0) {
        if (e->n_recipients > 0)
            s_reject(b, s, e, 1, res, KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED,
                     "no sharing rule allows %s from %s to %s%s", kb_kind_name(e->kind), e->sender,
                     e->recipients[0], e->n_recipients > 1 ? " or the other recipients" : "");
        else
            s_reject(b, s, e, 1, res, KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED,
                     "no sharing rule allows %s from %s to any agency", kb_kind_name(e->kind), e->sender);
        return KB_OK;
    }

    /* accepted: pack once, hash for the audit, queue per recipient */
    size_t len = ketenbus__envelope__get_packed_size(e);
    uint8_t *packed = malloc(len ? len : 1);
    if (!packed)
        return kb_error_set(KB_ENOMEM, "route: out of memory");
    ketenbus__envelope__pack(e, packed);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(packed, len, digest);

    Ketenbus__AuditRecord r;
    audit_record_for(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED, e);
    r.payload_sha256.data = digest;
    r.payload_sha256.len = sizeof digest;
    int rc = audit_append(b, &r, &res->entry.audit_index);

    Ketenbus__QueueEntry q;
    ketenbus__queue_entry__init(&q);
    q.envelope.data = packed;
    q.envelope.len = len;
    q.expires_us = now + b->conf->message_ttl_us;
    q.message_id = e->message_id;
    q.sender = e->sender;
    q.kind = e->kind;
    for (size_t i = 0; rc == KB_OK && i < res->entry.n_recipients; i++) {
        uint64_t tag;
        rc = kb_store_queue_put(b->store, b->batch, res->recipients[i], &q, &tag);
        if (rc != KB_OK)
            break;
        audit_record_for(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED, e);
        r.counterpart = (char *)res->recipients[i];
        r.rule_id = rules[i]->id;
        r.tag = tag;
        r.payload_sha256.data = digest;
        r.payload_sha256.len = sizeof digest;
        rc = audit_append(b, &r, NULL);
    }
    for (size_t i = 0; rc == KB_OK && i < res->entry.n_refused; i++) {
        audit_record_for(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, e);
        r.counterpart = (char *)res->refused[i];
        r.code = KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED;
        r.reason = (char *)(kb_conf_agency(b->conf, res->refused[i]) ? "no sharing rule allows this recipient"
                                                                       : "not an agency of this chain");
        rc = audit_append(b, &r, NULL);
    }
    if (rc == KB_OK)
        rc = kb_store_seen_put(b->store, b->batch, e->sender, e->message_id.data, res->entry.audit_index);
    if (rc == KB_OK)
        rc = s_batch_add(b, e->sender, e->message_id.data);
    free(packed);
    if (rc != KB_OK)
        return rc;
    res->entry.outcome = KETENBUS__OUTCOME__OUTCOME_ACCEPTED;
    b->stat_accepted++;
    char idtext[37];
    kb_uuid_format(e->message_id.data, idtext);
    kb_log(KB_LOG_INFO, "accepted", "agency=%s message=%s kind=%s recipients=%zu refused=%zu audit=%llu", s->agency,
           idtext, kb_kind_name(e->kind), res->entry.n_recipients, res->entry.n_refused,
           (unsigned long long)res->entry.audit_index);
    return KB_OK;
}

int route_submit(kb_broker_t *b, kb_session_t *s, uint64_t request_id, Ketenbus__Submit *sub,
                 const uint8_t *raw, size_t raw_len)
{
    (void)raw;
    (void)raw_len;
    size_t n = sub->n_envelopes;
    s_result_t *res = calloc(n ? n : 1, sizeof *res);
    Ketenbus__ReceiptEntry **entries = calloc(n ? n : 1, sizeof *entries);
    if (!res || !entries) {
        free(res);
        free(entries);
        return kb_error_set(KB_ENOMEM, "route: out of memory");
    }
    int rc = KB_OK;
    for (size_t i = 0; i < n && rc == KB_OK; i++) {
        rc = s_route_one(b, s, sub->envelopes[i], &res[i]);
        entries[i] = &res[i].entry;
    }
    if (rc == KB_OK) {
        Ketenbus__Receipt receipt;
        ketenbus__receipt__init(&receipt);
        receipt.n_entries = n;
        receipt.entries = entries;
        Ketenbus__Frame f;
        ketenbus__frame__init(&f);
        f.request_id = request_id;
        f.body_case = KETENBUS__FRAME__BODY_RECEIPT;
        f.receipt = &receipt;
        rc = broker_reply(b, s->rid, s->rid_len, &f);
    }
    free(entries);
    free(res);
    return rc;
}
