/*
 * route.c - SUBMIT handling: validate, authenticate, decide, queue, audit.
 *
 * For each envelope, in order: structure (kb_envelope_validate_submitted: an
 * adapter may not set withheld paths), sender equal
 * to the authenticated agency, created time within the message TTL and clock
 * skew, not a duplicate (same sender and id accepted before: on disk, earlier
 * in this turn, or in the batch the committer is writing), the sender's
 * Ed25519 signature over its seals, then the sharing decision per recipient
 * (policy.h). An accepted envelope
 * stages its "received" and per-recipient "routed"/"refused" audit records,
 * a queue entry per permitted recipient and its id in the accepted-id
 * index, all in the turn's batch. The receipt is queued and leaves only
 * after the batch is synced. A refusal is audited too, with its reason and
 * the deny rule that refused, if one did.
 *
 * Each recipient gets the envelope as the sender signed it, less the
 * fields its deciding rule withholds: those recipients get a redacted copy
 * packed for them alone, the others share one packing of the original.
 * The received envelope's SHA-256 goes into every record of it; a routed
 * record lists the withheld paths.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "broker.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_log.h"
#include "kb_seal.h"
#include "kb_util.h"
#include "policy.h"
#include "route.h"

/* Receipt entry plus the strings it points to, built per envelope. */
typedef struct {
    Ketenbus__ReceiptEntry entry;                  /* what goes on the wire */
    char reason[512];                              /* rejection reason */
    char rule_id[128];                             /* deciding rule */
    const char *recipients[KB_MAX_RECIPIENTS];     /* accepted recipients */
    const char *refused[KB_MAX_RECIPIENTS];        /* refused recipients */
} s_result_t;

/* Mark the receipt entry rejected with res->reason and res->rule_id, count
 * and log it. */
static void s_rejected(kb_broker_t *b, kb_session_t *s, const Ketenbus__Envelope *e, s_result_t *res, int code)
{
    res->entry.outcome = KETENBUS__OUTCOME__OUTCOME_REJECTED;
    res->entry.code = (Ketenbus__RejectCode)code;
    res->entry.reason = res->reason;
    res->entry.rule_id = res->rule_id;
    b->stat_rejected++;
    char idtext[37] = "-";
    if (e && e->message_id.len == KB_ID_LEN)
        kb_uuid_format(e->message_id.data, idtext);
    kb_log(KB_LOG_WARN, "refused", "agency=%s message=%s code=%d rule=%s reason=\"%s\"", s->agency, idtext, code,
           res->rule_id[0] ? res->rule_id : "-", res->reason);
}

static void s_reject(kb_broker_t *b, kb_session_t *s, const Ketenbus__Envelope *e, int trusted, s_result_t *res,
                     int code, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void s_reject(kb_broker_t *b, kb_session_t *s, const Ketenbus__Envelope *e, int trusted, s_result_t *res,
                     int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof res->reason, fmt, ap);
    va_end(ap);
    s_rejected(b, s, e, res, code);

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
}

/* Accepted before, but not in the store yet: staged, or in the batch the
 * committer is writing. */
static int s_batch_has(kb_broker_t *b, const char *sender, const uint8_t id[16])
{
    return kb_idset_has(b->ids, sender, id) || kb_idset_has(b->ids_flight, sender, id);
}

static int s_withheld_by(const Ketenbus__Envelope *e, const char *path)
{
    for (size_t i = 0; i < e->n_withheld; i++)
        if (e->withheld[i] && strcmp(e->withheld[i], path) == 0)
            return 1;
    return 0;
}

static int s_pack(const Ketenbus__Envelope *e, uint8_t **out, size_t *len)
{
    *len = ketenbus__envelope__get_packed_size(e);
    *out = malloc(*len ? *len : 1);
    if (!*out)
        return kb_error_set(KB_ENOMEM, "route: out of memory");
    ketenbus__envelope__pack(e, *out);
    return KB_OK;
}

int route_plan_recipient(const kb_conf_t *c, const Ketenbus__Envelope *e, const uint8_t *packed, size_t packed_len,
                         const char *to, int64_t now_us, route_plan_t *out)
{
    if (!out)
        return kb_error_set(KB_EINVAL, "route_plan_recipient: NULL argument");
    memset(out, 0, sizeof *out);
    if (!c || !e || !to || !e->sender)
        return kb_error_set(KB_EINVAL, "route_plan_recipient: NULL argument");
    int rc = kb_policy_decide(c->policy, e->sender, to, (int)e->kind, (int)e->purpose, (int)e->handling, now_us,
                              &out->decision);
    if (rc != KB_OK || !out->decision.allowed)
        return rc;
    const kb_rule_t *rule = out->decision.rule;
    if (rule->n_redact > 0) {
        Ketenbus__Envelope *copy = kb_envelope_dup(e);
        if (!copy)
            return kb_error_set(KB_ENOMEM, "route: out of memory copying an envelope for %s", to);
        for (size_t i = 0; rc == KB_OK && i < rule->n_redact; i++)
            rc = kb_seal_redact(copy, rule->redact[i]);
        /* Only what was there to withhold is listed (and audited). */
        for (size_t i = 0; rc == KB_OK && i < rule->n_redact; i++)
            if (s_withheld_by(copy, rule->redact[i]) && !s_withheld_by(e, rule->redact[i]))
                out->redacted[out->n_redacted++] = rule->redact[i];
        if (rc == KB_OK && out->n_redacted > 0 && (rc = s_pack(copy, &out->own, &out->len)) == KB_OK)
            out->bytes = out->own;
        protobuf_c_message_free_unpacked(&copy->base, NULL);
        if (rc != KB_OK) {
            out->n_redacted = 0;
            return rc;
        }
        if (out->bytes)
            return KB_OK;
    }
    if (packed) {
        out->bytes = packed;
        out->len = packed_len;
        return KB_OK;
    }
    if ((rc = s_pack(e, &out->own, &out->len)) == KB_OK)
        out->bytes = out->own;
    return rc;
}

void route_plan_clear(route_plan_t *p)
{
    if (!p)
        return;
    free(p->own);
    p->own = NULL;
    p->bytes = NULL;
    p->len = 0;
    p->n_redacted = 0;
}

/* The audit record of one recipient refused by the rules. */
static int s_audit_refused(kb_broker_t *b, const Ketenbus__Envelope *e, const char *to, const route_plan_t *plan,
                           const uint8_t *digest, size_t digest_len)
{
    Ketenbus__AuditRecord r;
    audit_record_for(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, e);
    r.counterpart = (char *)to;
    r.code = kb_conf_agency(b->conf, to) ? KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED
                                         : KETENBUS__REJECT_CODE__REJECT_UNKNOWN_RECIPIENT;
    r.reason = (char *)plan->decision.reason;
    if (plan->decision.rule)
        r.rule_id = plan->decision.rule->id;
    if (digest) {
        r.payload_sha256.data = (uint8_t *)digest;
        r.payload_sha256.len = digest_len;
    }
    return audit_append(b, &r, NULL);
}

/* No candidate is allowed: reject the envelope with the first refused
 * recipient's reason (and deny rule), auditing each refused recipient. */
static int s_refuse_all(kb_broker_t *b, kb_session_t *s, const Ketenbus__Envelope *e, s_result_t *res,
                        const route_plan_t *plans, size_t n)
{
    const kb_decision_t *first = &plans[0].decision;
    snprintf(res->reason, sizeof res->reason, "%s", first->reason);
    if (first->rule)
        snprintf(res->rule_id, sizeof res->rule_id, "%s", first->rule->id);
    int code = kb_conf_agency(b->conf, res->refused[0]) ? KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED
                                                        : KETENBUS__REJECT_CODE__REJECT_UNKNOWN_RECIPIENT;
    s_rejected(b, s, e, res, code);
    int rc = KB_OK;
    for (size_t i = 0; rc == KB_OK && i < n; i++)
        rc = s_audit_refused(b, e, res->refused[i], &plans[i], NULL, 0);
    return rc;
}

static int s_route_one(kb_broker_t *b, kb_session_t *s, Ketenbus__Envelope *e, const kb_verify_job_t *job,
                       s_result_t *res)
{
    ketenbus__receipt_entry__init(&res->entry);
    res->entry.message_id = e->message_id;
    res->entry.recipients = (char **)res->recipients;
    res->entry.refused = (char **)res->refused;

    char why[256];
    if (kb_envelope_validate_submitted(e, why, sizeof why) != KB_OK) {
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
    /* the check usually ran on the pool before this turn's routing */
    int sig_rc = KB_OK;
    const char *sig_detail = "";
    if (sender && b->conf->verify_signatures) {
        if (job && job->env == e && job->rc != KB_EINVAL) {
            sig_rc = job->rc;
            sig_detail = job->detail;
        } else {
            sig_rc = kb_seal_verify(e, sender->signing_key);
            sig_detail = kb_last_error();
        }
    }
    if (!sender || sig_rc != KB_OK) {
        s_reject(b, s, e, 0, res, KETENBUS__REJECT_CODE__REJECT_BAD_SIGNATURE, "signature does not verify: %s",
                 sender ? sig_detail : "unknown sender");
        return KB_OK;
    }
    const char *candidates[KB_MAX_RECIPIENTS];
    size_t n_cand = e->n_recipients;
    if (n_cand > 0) {
        for (size_t i = 0; i < n_cand; i++)
            candidates[i] = e->recipients[i];
    } else {
        n_cand = kb_policy_fanout(b->conf->policy, e->sender, (int)e->kind, (int)e->purpose, (int)e->handling, now,
                                  candidates, KB_MAX_RECIPIENTS);
    }
    if (n_cand == 0) {
        char kind[KB_POLICY_NAME_MAX], purpose[KB_POLICY_NAME_MAX], handling[KB_POLICY_NAME_MAX];
        s_reject(b, s, e, 1, res, KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED,
                 "refused: no rule allows kind %s from %s to any agency for purpose %s and handling %s",
                 kb_policy_name(KB_POLICY_KIND, (int)e->kind, kind, sizeof kind), e->sender,
                 kb_policy_name(KB_POLICY_PURPOSE, (int)e->purpose, purpose, sizeof purpose),
                 kb_policy_name(KB_POLICY_HANDLING, (int)e->handling, handling, sizeof handling));
        return KB_OK;
    }

    /* pack once: the digest for the audit, and the bytes of every recipient
     * whose rule withholds nothing */
    uint8_t *packed = NULL;
    size_t len = 0;
    route_plan_t *plans = calloc(n_cand, sizeof *plans);
    int rc = plans ? s_pack(e, &packed, &len) : kb_error_set(KB_ENOMEM, "route: out of memory");
    uint8_t digest[SHA256_DIGEST_LENGTH];
    if (rc == KB_OK && (EVP_DigestInit_ex(b->sha_ctx, b->sha256, NULL) != 1 ||
                        EVP_DigestUpdate(b->sha_ctx, packed, len) != 1 ||
                        EVP_DigestFinal_ex(b->sha_ctx, digest, NULL) != 1))
        rc = kb_error_ssl(KB_ECRYPTO, "route: SHA-256");
    route_plan_t *allowed[KB_MAX_RECIPIENTS], *refused[KB_MAX_RECIPIENTS];
    for (size_t i = 0; rc == KB_OK && i < n_cand; i++) {
        rc = route_plan_recipient(b->conf, e, packed, len, candidates[i], now, &plans[i]);
        if (rc == KB_OK && plans[i].bytes) {
            allowed[res->entry.n_recipients] = &plans[i];
            res->recipients[res->entry.n_recipients++] = candidates[i];
        } else if (rc == KB_OK) {
            refused[res->entry.n_refused] = &plans[i];
            res->refused[res->entry.n_refused++] = candidates[i];
        }
    }
    if (rc != KB_OK) {
        /* Nothing of this envelope is staged yet: refuse it alone rather
         * than fail the turn of every agency. */
        int code = rc == KB_ENOMEM || rc == KB_ECRYPTO ? KETENBUS__REJECT_CODE__REJECT_INTERNAL
                                                       : KETENBUS__REJECT_CODE__REJECT_MALFORMED;
        char detail[KB_ERROR_MAX];
        snprintf(detail, sizeof detail, "%s", kb_last_error());
        for (size_t i = 0; plans && i < n_cand; i++)
            route_plan_clear(&plans[i]);
        free(plans);
        free(packed);
        res->entry.n_recipients = 0;
        res->entry.n_refused = 0;
        s_reject(b, s, e, 1, res, code, "could not route this envelope: %s", detail);
        return KB_OK;
    }
    if (res->entry.n_recipients == 0) {
        rc = s_refuse_all(b, s, e, res, plans, n_cand);
        free(plans);
        free(packed);
        return rc;
    }

    /* accepted: audit, queue per recipient with its own bytes */
    Ketenbus__AuditRecord r;
    if (rc == KB_OK) {
        audit_record_for(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED, e);
        r.payload_sha256.data = digest;
        r.payload_sha256.len = sizeof digest;
        rc = audit_append(b, &r, &res->entry.audit_index);
    }
    Ketenbus__QueueEntry q;
    ketenbus__queue_entry__init(&q);
    q.expires_us = now + b->conf->message_ttl_us;
    q.message_id = e->message_id;
    q.sender = e->sender;
    q.kind = e->kind;
    size_t n_redacted = 0;
    for (size_t i = 0; rc == KB_OK && i < res->entry.n_recipients; i++) {
        const route_plan_t *plan = allowed[i];
        uint64_t tag;
        q.envelope.data = (uint8_t *)plan->bytes;
        q.envelope.len = plan->len;
        rc = kb_store_queue_put(b->store, b->batch, res->recipients[i], &q, &tag);
        if (rc != KB_OK)
            break;
        audit_record_for(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_ROUTED, e);
        r.counterpart = (char *)res->recipients[i];
        r.rule_id = plan->decision.rule->id;
        r.tag = tag;
        r.payload_sha256.data = digest;
        r.payload_sha256.len = sizeof digest;
        r.n_redacted = plan->n_redacted;
        r.redacted = (char **)plan->redacted;
        n_redacted += plan->n_redacted;
        rc = audit_append(b, &r, NULL);
        /* a recipient that has everything older gets it without a read back
         * from the store, once this batch is written */
        int direct = 0;
        if (rc == KB_OK)
            rc = deliver_direct(b, session_active(b, res->recipients[i]), tag, &q, &direct);
    }
    for (size_t i = 0; rc == KB_OK && i < res->entry.n_refused; i++)
        rc = s_audit_refused(b, e, res->refused[i], refused[i], digest, sizeof digest);
    if (rc == KB_OK)
        rc = kb_store_seen_put(b->store, b->batch, e->sender, e->message_id.data, res->entry.audit_index);
    if (rc == KB_OK)
        rc = kb_idset_add(b->ids, e->sender, e->message_id.data);
    for (size_t i = 0; plans && i < n_cand; i++)
        route_plan_clear(&plans[i]);
    free(plans);
    free(packed);
    if (rc != KB_OK)
        return rc;
    res->entry.outcome = KETENBUS__OUTCOME__OUTCOME_ACCEPTED;
    b->stat_accepted++;
    /* one line per message is a write(2) each: kept for --log-level debug;
     * the audit log holds every accepted message anyway */
    if (kb_log_enabled(KB_LOG_DEBUG)) {
        char idtext[37];
        kb_uuid_format(e->message_id.data, idtext);
        kb_log(KB_LOG_DEBUG, "accepted",
           "agency=%s message=%s kind=%s recipients=%zu refused=%zu redacted=%zu audit=%llu", s->agency, idtext,
           kb_kind_name(e->kind), res->entry.n_recipients, res->entry.n_refused, n_redacted,
               (unsigned long long)res->entry.audit_index);
    }
    return KB_OK;
}

int route_submit(kb_broker_t *b, kb_session_t *s, uint64_t request_id, Ketenbus__Submit *sub,
                 const kb_verify_job_t *const *jobs)
{
    size_t n = sub->n_envelopes;
    /* receipts promise durability: this turn's commit is synced */
    b->turn_sync = 1;
    s_result_t *res = calloc(n ? n : 1, sizeof *res);
    Ketenbus__ReceiptEntry **entries = calloc(n ? n : 1, sizeof *entries);
    if (!res || !entries) {
        free(res);
        free(entries);
        return kb_error_set(KB_ENOMEM, "route: out of memory");
    }
    int rc = KB_OK;
    for (size_t i = 0; i < n && rc == KB_OK; i++) {
        rc = s_route_one(b, s, sub->envelopes[i], jobs ? jobs[i] : NULL, &res[i]);
        entries[i] = &res[i].entry;
    }
    if (rc == KB_OK) {
        Ketenbus__Receipt receipt;
        ketenbus__receipt__init(&receipt);
        receipt.n_entries = n;
        receipt.entries = entries;
        rc = broker_receipt(b, s->rid, s->rid_len, request_id, &receipt);
    }
    free(entries);
    free(res);
    return rc;
}
