/*
 * route.h - what one recipient of an accepted envelope gets: the sharing
 * decision and, when it is allowed, the exact bytes of its queue entry
 * (the envelope as the sender signed it, less the fields the deciding rule
 * withholds).
 *
 * route.c plans every candidate recipient with route_plan_recipient() and
 * queues plan.bytes; the tests call the same function to check that nothing
 * reaches a refused recipient and that withheld fields are really gone.
 */
#ifndef KB_ROUTE_H
#define KB_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "kb_codec.h"
#include "ketenbus.pb-c.h"
#include "policy.h"

/* The plan for one recipient. */
typedef struct {
    kb_decision_t decision;              /* the sharing decision */
    const uint8_t *bytes;                /* packed envelope for its queue; NULL when refused */
    size_t len;                          /* bytes in bytes */
    const char *redacted[KB_MAX_SEALS];  /* paths withheld from this copy (borrowed from the rule) */
    size_t n_redacted;                   /* their count */
    uint8_t *own;                        /* bytes, when they are this recipient's own packing (owned) */
} route_plan_t;

/* Decide for recipient `to` of e (sender, kind, purpose and handling from
 * e) at now_us with c->policy, and when allowed give the bytes to queue: a
 * redacted copy (kb_envelope_dup, kb_seal_redact per path of the rule,
 * which lists them in `withheld`) packed for this recipient alone, or else
 * `packed` (e packed once by the caller, borrowed) or, if packed is NULL, e
 * packed here. Withheld paths that do not occur in e change nothing and are
 * not listed. Returns KB_OK (also when refused: bytes NULL), KB_EINVAL,
 * KB_ENOMEM, or kb_seal_redact's error (then the plan holds no bytes).
 * Release with route_plan_clear(). */
int route_plan_recipient(const kb_conf_t *c, const Ketenbus__Envelope *e, const uint8_t *packed, size_t packed_len,
                         const char *to, int64_t now_us, route_plan_t *out);

/* Free what the plan owns; the plan then holds no bytes. NULL is fine. */
void route_plan_clear(route_plan_t *p);

#endif
