/*
 * route.c - SUBMIT handling: validate, authenticate, decide, queue, audit.
 *
 * For each envelope, in order: structure (kb_envelope_validate_submitted: an
 * adapter may not set withheld paths), sender equal
 * to the authenticated agency, created time within the message TTL and clock
 * skew, not a duplicate (same sender and id accepted before: on disk, earlier
 * in this turn, or in the batch the committer is writing), the sender's
 * Ed25519 signature over its seals, then the sharing decision per recipient
 * (policy.h). The records of an envelope refused, or answered as a
 * duplicate, before its signature is checked hold who sent it and what it
 * is: the connection's agency, the message id and kind, the code and
 * reason (s_checked_t); never the officer, purpose, handling code, legal
 * basis or subject keys it claims, which only the signature vouches for. A
 * duplicate costs no signature check: the first one's records say the
 * rest. An accepted envelope stages its "received" and per-recipient
 * "routed"/"refused" audit records, a queue entry per permitted recipient
 * and its id in the accepted-id index, all in the turn's batch. The
 * receipt is queued and leaves only after the batch is synced. A refusal
 * is audited too, with its reason and the deny rule that refused, if one
 * did.
 *
 * Each recipient gets the envelope as the sender signed it, less the
 * fields its deciding rule withholds: those recipients get a redacted copy
 * packed for them alone, the others share one packing of the original.
 * The received envelope's SHA-256 goes into every record of it; a routed
 * record lists the withheld paths.
 *
 * An envelope that names no recipients goes to every agency the rules
 * allow (kb_policy_fanout_all, as `policy explain` shows it), however many:
 * KB_MAX_RECIPIENTS bounds only the recipients an envelope names. An agency
 * that an allow rule would reach but a deny rule refuses is a candidate
 * too (kb_policy_fanout_candidates): refused, listed and audited with that
 * rule, as a named recipient would be. What an envelope stages is its
 * cost: a queue copy plus S_COPY_COST per recipient. One envelope may cost
 * up to s_budget(), KB_MAX_RECIPIENTS copies of a full frame (what any
 * envelope could stage when fan-outs were capped); one that costs more is
 * refused for good (REJECT_TOO_LARGE, saying so). A SUBMIT stages at most
 * KB_STAGE_COST_MAX, or its first accepted envelope when that alone costs
 * more: the envelopes past it are refused for now (REJECT_INTERNAL,
 * "retry later"), which the SDK sends again. Nothing is dropped silently.
 * The loop writes what is staged once it reaches KB_STAGE_COST_MAX
 * (broker.c), so the broker's memory follows what it stages, not how
 * widely the rules fan out what it reads.
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

/* Staging cost of one recipient beyond its queue copy: its routed (or
 * refused) audit record, Merkle nodes and receipt id, rounded up. */
#define S_COPY_COST 1024u

/* How far an envelope was checked, and so what of it its audit records
 * repeat. Only the sender's signature vouches for the officer, purpose,
 * handling code, legal basis and subject keys: before it is checked they
 * are whatever the peer wrote, and anyone holding an adapter's CURVE key
 * alone could put them in that agency's trail. */
typedef enum {
    S_UNCHECKED, /* malformed: the connection's agency and the message id, if it is one */
    S_UNSIGNED,  /* well formed, signature not checked: also its kind */
    S_SIGNED,    /* signature checked (or not asked for): every field audit_record_for takes */
} s_checked_t;

/* Receipt entry plus the strings it points to, built per envelope. */
typedef struct {
    Ketenbus__ReceiptEntry entry;                  /* what goes on the wire */
    char reason[512];                              /* rejection reason */
    char rule_id[128];                             /* deciding rule */
    const char **recipients;                       /* accepted recipients (owned array, ids borrowed) */
    const char **refused;                          /* refused recipients (owned array, ids borrowed) */
} s_result_t;

/* What a SUBMIT may stage for its recipients (see the top of the file). */
static size_t s_budget(const kb_broker_t *b)
{
    size_t frame = b->conf->max_message_bytes > KB_FRAME_MAX_DEFAULT ? b->conf->max_message_bytes
                                                                     : KB_FRAME_MAX_DEFAULT;
    return (size_t)KB_MAX_RECIPIENTS * (frame + (size_t)KB_MAX_BATCH * S_COPY_COST);
}

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
    /* the reason may repeat what the peer sent: quoted and escaped, it
     * cannot end its value early and add fields to the line */
    char reason[2 * sizeof res->reason + 3];
    kb_log(KB_LOG_WARN, "refused", "agency=%s message=%s code=%d rule=%s reason=%s", s->agency, idtext, code,
           res->rule_id[0] ? res->rule_id : "-", kb_log_quote(res->reason, reason, sizeof reason));
}

/* The audit record of event about e, holding what `checked` vouches for.
 * The agency is the connection's, whatever the envelope says. */
static Ketenbus__AuditRecord *s_record(Ketenbus__AuditRecord *r, int event, const kb_session_t *s,
                                       const Ketenbus__Envelope *e, s_checked_t checked)
{
    audit_record_for(r, event, checked == S_SIGNED ? e : NULL);
    r->agency = (char *)s->agency;
    if (checked != S_SIGNED && e && e->message_id.len == KB_ID_LEN)
        r->message_id = e->message_id;
    if (checked == S_UNSIGNED)
        r->kind = e->kind;
    return r;
}

static void s_reject(kb_broker_t *b, kb_session_t *s, const Ketenbus__Envelope *e, s_checked_t checked,
                     s_result_t *res, int code, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void s_reject(kb_broker_t *b, kb_session_t *s, const Ketenbus__Envelope *e, s_checked_t checked,
                     s_result_t *res, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof res->reason, fmt, ap);
    va_end(ap);
    s_rejected(b, s, e, res, code);

    Ketenbus__AuditRecord r;
    s_record(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_REFUSED, s, e, checked);
    r.code = (Ketenbus__RejectCode)code;
    r.reason = res->reason;
    r.rule_id = res->rule_id;
    audit_append(b, &r, NULL);
}

/* Accepted before, but not in the store yet: staged, or in the batch the
 * committer is writing. *index is the audit index of its "received"
 * record, as the store's seen index would give it. */
static int s_batch_get(kb_broker_t *b, const char *sender, const uint8_t id[16], uint64_t *index)
{
    return kb_idset_get(b->ids, sender, id, index) || kb_idset_get(b->ids_flight, sender, id, index);
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
 * recipient's reason (and deny rule), auditing each refused recipient with
 * the envelope's digest, as for a message refused only in part. */
static int s_refuse_all(kb_broker_t *b, kb_session_t *s, const Ketenbus__Envelope *e, s_result_t *res,
                        const route_plan_t *plans, size_t n, const uint8_t *digest, size_t digest_len)
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
        rc = s_audit_refused(b, e, res->refused[i], &plans[i], digest, digest_len);
    return rc;
}

/* *spent: what earlier envelopes of this SUBMIT staged for their
 * recipients (their cost); this one adds its own when accepted. */
static int s_route_one(kb_broker_t *b, kb_session_t *s, Ketenbus__Envelope *e, const kb_verify_job_t *job,
                       s_result_t *res, size_t *spent)
{
    ketenbus__receipt_entry__init(&res->entry);
    res->entry.message_id = e->message_id;

    char why[256];
    if (kb_envelope_validate_submitted(e, why, sizeof why) != KB_OK) {
        s_reject(b, s, e, S_UNCHECKED, res, KETENBUS__REJECT_CODE__REJECT_MALFORMED, "%s", why);
        return KB_OK;
    }
    if (strcmp(e->sender, s->agency) != 0) {
        s_reject(b, s, e, S_UNSIGNED, res, KETENBUS__REJECT_CODE__REJECT_SPOOFED_SENDER,
                 "sender '%s' does not match the authenticated agency '%s'", e->sender, s->agency);
        return KB_OK;
    }
    if (kb_policy_kind_is_notice((int)e->kind)) {
        /* a notice's sender is the broker: one from an agency would pass
         * for the broker's word about another agency's message */
        s_reject(b, s, e, S_UNSIGNED, res, KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED,
                 "kind %s is written and signed by the broker only; an agency may not send it",
                 kb_kind_name(e->kind));
        return KB_OK;
    }
    int64_t now = kb_now_us();
    if (e->created_us > now + KB_CLOCK_SKEW_US || e->created_us < now - b->conf->message_ttl_us) {
        s_reject(b, s, e, S_UNSIGNED, res, KETENBUS__REJECT_CODE__REJECT_STALE,
                 "created_us is outside the accepted window (message TTL and clock skew)");
        return KB_OK;
    }
    uint64_t prior = 0;
    int seen = kb_store_seen_get(b->store, e->sender, e->message_id.data, &prior);
    if (seen == KB_OK || s_batch_get(b, e->sender, e->message_id.data, &prior)) {
        res->entry.outcome = KETENBUS__OUTCOME__OUTCOME_DUPLICATE;
        res->entry.audit_index = prior;
        /* answered before its signature is checked: a duplicate costs no
         * verification, and says nothing the first one did not */
        Ketenbus__AuditRecord r;
        s_record(&r, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DUPLICATE, s, e, S_UNSIGNED);
        audit_append(b, &r, NULL);
        return KB_OK;
    }
    if (seen != KB_ENOTFOUND) {
        s_reject(b, s, e, S_UNSIGNED, res, KETENBUS__REJECT_CODE__REJECT_INTERNAL, "store lookup failed; retry later");
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
        s_reject(b, s, e, S_UNSIGNED, res, KETENBUS__REJECT_CODE__REJECT_BAD_SIGNATURE, "signature does not verify: %s",
                 sender ? sig_detail : "unknown sender");
        return KB_OK;
    }
    const char **candidates = NULL, **fanout = NULL;
    size_t n_cand = e->n_recipients;
    if (n_cand > 0) {
        candidates = (const char **)e->recipients;
    } else if (kb_policy_fanout_candidates(b->conf->policy, e->sender, (int)e->kind, (int)e->purpose,
                                           (int)e->handling, now, &fanout, &n_cand) != KB_OK) {
        s_reject(b, s, e, S_SIGNED, res, KETENBUS__REJECT_CODE__REJECT_INTERNAL,
                 "could not route this envelope: %s; retry later", kb_last_error());
        return KB_OK;
    } else {
        candidates = fanout;
    }
    if (n_cand == 0) {
        free(fanout);
        char kind[KB_POLICY_NAME_MAX], purpose[KB_POLICY_NAME_MAX], handling[KB_POLICY_NAME_MAX];
        s_reject(b, s, e, S_SIGNED, res, KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED,
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
    route_plan_t **allowed = calloc(n_cand, sizeof *allowed), **refused = calloc(n_cand, sizeof *refused);
    res->recipients = calloc(n_cand, sizeof *res->recipients);
    res->refused = calloc(n_cand, sizeof *res->refused);
    res->entry.recipients = (char **)res->recipients;
    res->entry.refused = (char **)res->refused;
    int rc = plans && allowed && refused && res->recipients && res->refused
                 ? s_pack(e, &packed, &len)
                 : kb_error_set(KB_ENOMEM, "route: out of memory for %zu recipients", n_cand);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    if (rc == KB_OK && (EVP_DigestInit_ex(b->sha_ctx, b->sha256, NULL) != 1 ||
                        EVP_DigestUpdate(b->sha_ctx, packed, len) != 1 ||
                        EVP_DigestFinal_ex(b->sha_ctx, digest, NULL) != 1))
        rc = kb_error_ssl(KB_ECRYPTO, "route: SHA-256");
    size_t cost = 0;
    for (size_t i = 0; rc == KB_OK && i < n_cand; i++) {
        rc = route_plan_recipient(b->conf, e, packed, len, candidates[i], now, &plans[i]);
        if (rc == KB_OK && plans[i].bytes) {
            allowed[res->entry.n_recipients] = &plans[i];
            res->recipients[res->entry.n_recipients++] = candidates[i];
            cost += plans[i].len + S_COPY_COST;
        } else if (rc == KB_OK) {
            refused[res->entry.n_refused] = &plans[i];
            res->refused[res->entry.n_refused++] = candidates[i];
            cost += S_COPY_COST;
        }
    }
    /* Nothing of this envelope is staged yet: a refusal here refuses it
     * alone rather than fail the turn of every agency. */
    int code = 0;
    char detail[KB_ERROR_MAX] = "";
    if (rc != KB_OK) {
        code = rc == KB_ENOMEM || rc == KB_ECRYPTO ? KETENBUS__REJECT_CODE__REJECT_INTERNAL
                                                   : KETENBUS__REJECT_CODE__REJECT_MALFORMED;
        snprintf(detail, sizeof detail, "could not route this envelope: %s", kb_last_error());
    } else if (res->entry.n_recipients > 0 && cost > s_budget(b)) {
        code = KETENBUS__REJECT_CODE__REJECT_TOO_LARGE;
        snprintf(detail, sizeof detail,
                 "a message of %zu bytes to %zu agencies needs %zu bytes of queue copies, more than the broker's "
                 "limit of %zu; send it smaller or name its recipients",
                 len, res->entry.n_recipients, cost, s_budget(b));
    } else if (res->entry.n_recipients > 0 && *spent > 0 && *spent + cost > KB_STAGE_COST_MAX) {
        code = KETENBUS__REJECT_CODE__REJECT_INTERNAL;
        snprintf(detail, sizeof detail,
                 "the fan-out of the messages before it in this batch fills what one batch may stage; retry later");
    }
    if (code != 0 || res->entry.n_recipients == 0) {
        if (code != 0) {
            res->entry.n_recipients = 0;
            res->entry.n_refused = 0;
            s_reject(b, s, e, S_SIGNED, res, code, "%s", detail);
        } else {
            rc = s_refuse_all(b, s, e, res, plans, n_cand, digest, sizeof digest);
        }
        for (size_t i = 0; plans && i < n_cand; i++)
            route_plan_clear(&plans[i]);
        free(plans);
        free(allowed);
        free(refused);
        free(fanout);
        free(packed);
        return code != 0 ? KB_OK : rc;
    }
    *spent += cost;
    b->staged_cost += cost;

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
        rc = kb_idset_put(b->ids, e->sender, e->message_id.data, res->entry.audit_index);
    for (size_t i = 0; plans && i < n_cand; i++)
        route_plan_clear(&plans[i]);
    free(plans);
    free(allowed);
    free(refused);
    free(fanout);
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
    size_t spent = 0;
    for (size_t i = 0; i < n && rc == KB_OK; i++) {
        rc = s_route_one(b, s, sub->envelopes[i], jobs ? jobs[i] : NULL, &res[i], &spent);
        entries[i] = &res[i].entry;
    }
    if (rc == KB_OK) {
        Ketenbus__Receipt receipt;
        ketenbus__receipt__init(&receipt);
        receipt.n_entries = n;
        receipt.entries = entries;
        rc = broker_receipt(b, s->rid, s->rid_len, request_id, &receipt);
    }
    for (size_t i = 0; i < n; i++) {
        free(res[i].recipients);
        free(res[i].refused);
    }
    free(entries);
    free(res);
    return rc;
}
