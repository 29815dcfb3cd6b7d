/*
 * retention.c - the broker applies the chain file's retention periods
 * (broker.retention, conf.h) to its audit log.
 *
 * For each kind with a period, the records of that kind older than now
 * minus the period lose their contents (kb_auditq_prune: tombstones that
 * keep the tree verifiable, and a PRUNED record saying which), and a
 * checkpoint is signed at once so the PRUNED record is covered. Passes
 * start once per checkpoint interval (a reload that shortens it brings the
 * next one forward, and one that changes a period starts one at once, or
 * starts the one under way over, kb_broker_reload): only records under a signed
 * checkpoint and outside the newest leaf tile can go, so what is due but
 * not yet covered goes in a later pass. A pass prunes at most
 * KB_RETENTION_CHUNK records per loop turn, one kind at a time, and goes
 * on in the next turns while more is due, so traffic never waits long.
 *
 * A failure (a record that no longer matches its leaf hash, a write that
 * fails) is logged as an error and tried again next interval; it never
 * stops traffic.
 */
#include <stdio.h>

#include "auditq.h"
#include "broker.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_log.h"
#include "kb_util.h"

#define KB_RETENTION_CHUNK 4096u /* records looked at per loop turn */

_Static_assert(KB_CONF_RETENTION_KINDS == KB_STORE_KINDS, "retention kinds are the store's prunable kinds");

static const char *s_name(int kind)
{
    return kind == 0 ? KB_AUDITQ_KIND_OTHER : kb_kind_name(kind);
}

/* A duration as the chain file would write it ("730d", "90s"). */
static void s_duration(int64_t us, char *out, size_t len)
{
    int64_t s = us / 1000000;
    if (s % 86400 == 0)
        snprintf(out, len, "%lldd", (long long)(s / 86400));
    else
        snprintf(out, len, "%llds", (long long)s);
}

void retention_describe(const kb_broker_t *b)
{
    for (int k = 0; k < (int)KB_CONF_RETENTION_KINDS; k++) {
        int64_t keep = b->conf->retention_us[k];
        if (keep == 0)
            continue;
        char text[32];
        s_duration(keep, text, sizeof text);
        kb_log(KB_LOG_INFO, "retention", "kind=%s keep=%s", s_name(k), text);
        if (k != 0 && keep < b->conf->message_ttl_us)
            kb_log(KB_LOG_WARN, "retention_short",
                   "kind=%s keep=%s detail=\"shorter than message_ttl: records of messages still queued may be "
                   "pruned\"",
                   s_name(k), text);
    }
}

void retention_maybe(kb_broker_t *b)
{
    int64_t now_ms = kb_mono_ms();
    if (now_ms < b->retention_next_ms || kb_batch_size(b->batch) != 0)
        return;
    while (b->retention_kind < (int)KB_CONF_RETENTION_KINDS && b->conf->retention_us[b->retention_kind] == 0)
        b->retention_kind++;
    if (b->retention_kind == (int)KB_CONF_RETENTION_KINDS) { /* the pass is done */
        b->retention_kind = 0;
        b->retention_next_ms = now_ms + b->conf->checkpoint_interval_us / 1000;
        return;
    }
    /* the pass reads the audit log and writes here, after every batch handed over */
    if (broker_settle(b) != KB_OK || kb_batch_size(b->batch) != 0)
        return;
    int k = b->retention_kind;
    int64_t keep = b->conf->retention_us[k];
    char text[32], who[96];
    s_duration(keep, text, sizeof text);
    snprintf(who, sizeof who, "the broker: retention of %s is %s", s_name(k), text);
    kb_auditq_prune_t p;
    int rc = kb_auditq_prune(b->store, b->batch, b->tree, k, kb_now_us() - keep, KB_RETENTION_CHUNK, who, &p);
    if (rc == KB_OK)
        rc = kb_store_commit(b->store, b->batch, 1);
    if (rc != KB_OK) {
        kb_log(KB_LOG_ERROR, "retention_failed", "kind=%s detail=\"%s\"", s_name(k), kb_last_error());
        broker_resync(b);
        b->retention_kind = 0;
        b->retention_next_ms = now_ms + b->conf->checkpoint_interval_us / 1000;
        return;
    }
    if (p.logged) {
        kb_log(KB_LOG_INFO, "audit_pruned", "by=retention kind=%s keep=%s count=%llu first=%llu end=%llu record=%llu",
               s_name(k), text, (unsigned long long)p.count, (unsigned long long)p.first, (unsigned long long)p.end,
               (unsigned long long)p.record);
        checkpoint_maybe(b, 1); /* cover the PRUNED record with a signature now */
    }
    if (!p.more)
        b->retention_kind++; /* this kind is done for this pass */
}
