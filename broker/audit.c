/*
 * audit.c - building the broker's audit records.
 *
 * Every event lands as one AuditRecord (NEN 7513 fields: who, what, when,
 * about whom, why) in the batch of the change it describes, so the record
 * and the change are durable together. The payload is never copied in; its
 * SHA-256 is (route.c fills payload_sha256). Each record is also a leaf of
 * the audit Merkle tree (RFC 6962 hashing, lib/kb_merkle.c), appended in the
 * same batch, so RECEIPT's audit index is the record's leaf index.
 */
#include <string.h>

#include "broker.h"
#include "kb_error.h"
#include "kb_log.h"
#include "kb_util.h"

Ketenbus__AuditRecord *audit_record_for(Ketenbus__AuditRecord *r, int event, const Ketenbus__Envelope *e)
{
    ketenbus__audit_record__init(r);
    r->time_us = kb_now_us();
    r->event = (Ketenbus__AuditEvent)event;
    if (e) {
        /* borrowed pointers: the record is packed before e is freed */
        r->agency = e->sender;
        r->officer = e->officer;
        r->message_id = e->message_id;
        r->kind = e->kind;
        r->purpose = e->purpose;
        r->handling = e->handling;
        if (e->legal_basis)
            r->legal_basis = e->legal_basis->basis;
        r->n_subject_keys = e->n_subject_keys;
        r->subject_keys = e->subject_keys;
    }
    return r;
}

Ketenbus__AuditRecord *audit_record_view(Ketenbus__AuditRecord *r, int event, const kb_envelope_view_t *v)
{
    /* the same fields audit_record_for takes from an unpacked envelope */
    ketenbus__audit_record__init(r);
    r->time_us = kb_now_us();
    r->event = (Ketenbus__AuditEvent)event;
    r->agency = (char *)v->sender;
    r->officer = (char *)v->officer;
    r->message_id = v->message_id;
    r->kind = (Ketenbus__Kind)v->kind;
    r->purpose = (Ketenbus__Purpose)v->purpose;
    r->handling = (Ketenbus__Handling)v->handling;
    if (v->has_legal_basis)
        r->legal_basis = (char *)v->basis;
    r->n_subject_keys = v->n_subject_keys;
    r->subject_keys = (ProtobufCBinaryData *)v->subject_keys;
    return r;
}

int audit_append(kb_broker_t *b, Ketenbus__AuditRecord *r, uint64_t *index)
{
    /* the record and its leaf in the Merkle tree are staged together */
    int rc = kb_store_audit_log(b->store, b->batch, b->tree, r, index);
    if (rc != KB_OK)
        kb_log(KB_LOG_ERROR, "audit_failed", "detail=\"%s\"", kb_last_error());
    return rc;
}

int audit_event(kb_broker_t *b, int event, const char *agency, const char *counterpart, const char *reason)
{
    Ketenbus__AuditRecord r;
    audit_record_for(&r, event, NULL);
    r.agency = (char *)(agency ? agency : "");
    r.counterpart = (char *)(counterpart ? counterpart : "");
    r.reason = (char *)(reason ? reason : "");
    return audit_append(b, &r, NULL);
}
