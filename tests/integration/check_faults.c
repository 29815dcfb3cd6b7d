/*
 * check_faults.c - what the broker does when its disk fails under it.
 *
 * The broker runs with tests/support/faults/kb_faults.c preloaded, which
 * makes LevelDB's log writes fail (ENOSPC, as on a full disk) or its syncs
 * slow, when a test switches the fault on. Whatever fails, no sender is
 * told ACCEPTED for a message the store does not hold, and every message
 * the adapters submitted reaches its recipient once the disk works again.
 * A stop whose last writes fail (the sessions' DISCONNECTED records, the
 * final checkpoint) says what was lost and exits with status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "kb_test.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"

static const char *s_agencies[] = {"politie", "fier"};
static const char *s_rules = "  - id: both-ways\n    from: [politie, fier]\n    to: [politie, fier]\n"
                             "    kinds: [signal]\n"
                             "    purposes: [victim_care, child_protection, criminal_investigation]\n"
                             "    max_handling: h3\n    legal_basis: Wpg art. 19\n";
static kb_chain_t s_chain;

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, s_rules, "");
    s_chain.faults = 1;
    kb_chain_start(&s_chain);
}

static void s_teardown(void)
{
    kb_chain_cleanup(&s_chain);
}

/* Submit a signal to fier without waiting for its receipt, and let the
 * client send it. */
static void s_submit_nowait(ketenbus_client_t *c, const char *text)
{
    ketenbus_msg_t *m = kb_test_signal("fier", text);
    int rc = ketenbus_client_submit(c, m, NULL, 0);
    ck_assert_msg(rc == KETENBUS_OK || rc == KETENBUS_EPENDING, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    ketenbus_client_poll(c, 50);
}

/* Fill the audit log past its first leaf tile (256 records; the newest
 * tile is never pruned) with refusals, so that a prune has records to
 * remove. */
static void s_fill_audit(ketenbus_client_t *c)
{
    enum { N = 150 };
    ketenbus_msg_t *msgs[N];
    ketenbus_receipt_t rs[N];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++)
            msgs[i] = kb_test_signal("nobody", "refused: no such agency");
        ketenbus_client_submit_batch(c, msgs, N, rs, 10000); /* fails: all refused, as the receipts say */
        for (int i = 0; i < N; i++) {
            ck_assert_int_eq(rs[i].outcome, KETENBUS_OUTCOME_REJECTED);
            ketenbus_msg_destroy(&msgs[i]);
        }
    }
}

/* An operator prunes the audit log while the disk is full and work is
 * staged behind a slow write: the prune's own write fails, but what was
 * staged before it is written and answered as a turn would be, or refused
 * so that the adapter sends it again; no message is confirmed unwritten,
 * and all of them are delivered. */
START_TEST(test_prune_on_full_disk_confirms_nothing_unwritten)
{
    ketenbus_client_t *pol = kb_chain_client_credit(&s_chain, "politie", "", 0);
    ketenbus_receipt_t r;
    ketenbus_msg_t *m = kb_test_signal("fier", "before the fault");
    ck_assert_msg(ketenbus_client_submit(pol, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    s_fill_audit(pol);
    /* the next submission's batch syncs slowly; one more is staged meanwhile */
    kb_chain_fault(&s_chain, "fdatasync-slow", 1);
    s_submit_nowait(pol, "written slowly");
    s_submit_nowait(pol, "staged behind the slow write");
    /* the prune's own write fails: the one holding its PRUNED record, which
     * names who asked; the checkpoint signed before it is written */
    kb_chain_fault_text(&s_chain, "log-write-enospc", "admin socket user");
    char out[4096];
    int st = kb_chain_cli(&s_chain, out, sizeof out, "audit prune --data data --before 2100-01-01T00:00:00Z");
    fprintf(stderr, "audit prune on a full disk: exit %d: %s\n", st, out);
    ck_assert_int_ne(st, 0);
    ck_assert_msg(strstr(out, "No space left on device") != NULL, "%s", out);
    kb_chain_fault(&s_chain, "fdatasync-slow", 0);
    /* the disk works again: everything submitted is accepted, and lands */
    m = kb_test_signal("fier", "after the fault");
    ck_assert_msg(ketenbus_client_submit(pol, m, &r, 10000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    ck_assert_int_eq(ketenbus_client_flush(pol, 10000), KETENBUS_OK);
    ck_assert_uint_eq(ketenbus_client_outbox_size(pol), 0);
    ketenbus_client_destroy(&pol);
    kb_chain_drain(&s_chain, "fier", 4);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    /* the fault did happen, in the write it was meant for */
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "audit_prune_failed"), 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "checkpoint_failed"), 0);
}
END_TEST

enum { S_AFTER = 60 }; /* messages sent after the fault: more than one 32 KiB log block */

/* Receive from agency until nothing more comes, acknowledging each, and
 * check that the narratives are exactly want[0..n), in any order. */
static void s_expect_exactly(kb_chain_t *c, const char *agency, char **want, int n)
{
    ketenbus_client_t *cl = kb_chain_client(c, agency, NULL);
    int *seen = calloc((size_t)n, sizeof *seen);
    ck_assert_ptr_nonnull(seen);
    for (int got = 0;; got++) {
        ketenbus_msg_t *m = NULL;
        int rc = ketenbus_client_recv(cl, &m, got < n ? 5000 : 1500);
        if (got >= n) {
            ck_assert_msg(rc != KETENBUS_OK, "%s received a message more than the %d sent", agency, n);
            break;
        }
        ck_assert_msg(rc == KETENBUS_OK, "%s recv %d: %s", agency, got, ketenbus_last_error());
        char *text = ketenbus_msg_get(m, "signal.narrative");
        ck_assert_ptr_nonnull(text);
        int k = 0;
        while (k < n && strcmp(want[k], text) != 0)
            k++;
        ck_assert_msg(k < n, "unexpected message '%s'", text);
        ck_assert_msg(!seen[k], "'%s' delivered twice", text);
        seen[k] = 1;
        free(text);
        ck_assert_int_eq(ketenbus_client_ack(cl, m), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    free(seen);
    ketenbus_client_destroy(&cl);
}

/* A write of submitted work fails because the disk is full. LevelDB keeps
 * its log position after such a write, so a broker that wrote on into that
 * log would misplace every record past the next 32 KiB block boundary, and
 * the log would not open again. What the broker confirms after the fault
 * has to survive a restart, and the broker has to start on the same data.
 * The sessions the failure ended are audited as ended. */
START_TEST(test_failed_commit_leaves_a_store_that_opens_again)
{
    char *texts[2 + S_AFTER];
    texts[0] = strdup("before the fault");
    texts[1] = strdup("when the disk was full");
    for (int i = 0; i < S_AFTER; i++) {
        texts[2 + i] = calloc(1, 64);
        snprintf(texts[2 + i], 64, "after the fault, number %d", i);
    }
    ketenbus_client_t *pol = kb_chain_client_credit(&s_chain, "politie", "", 0);
    ketenbus_receipt_t r;
    ketenbus_msg_t *m = kb_test_signal("fier", texts[0]);
    ck_assert_msg(ketenbus_client_submit(pol, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    kb_chain_fault(&s_chain, "commit-write-enospc", 1);
    /* refused as "retry later": the client keeps it and sends it again */
    s_submit_nowait(pol, texts[1]);
    for (int i = 2; i < 2 + S_AFTER; i++) {
        m = kb_test_signal("fier", texts[i]);
        ck_assert_msg(ketenbus_client_submit(pol, m, &r, 10000) == KETENBUS_OK, "%s", ketenbus_last_error());
        ketenbus_msg_destroy(&m);
    }
    ck_assert_int_eq(ketenbus_client_flush(pol, 10000), KETENBUS_OK);
    ck_assert_uint_eq(ketenbus_client_outbox_size(pol), 0);
    ketenbus_client_destroy(&pol);
    ck_assert_int_ge(kb_chain_log_count(&s_chain, "No space left on device"), 1);
    ck_assert_int_ge(kb_chain_log_count(&s_chain, "store_reopened"), 1);
    /* everything confirmed is on disk, in a store that opens */
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    /* the sessions the failed write ended are in the audit trail */
    ck_assert_int_ge(kb_chain_audit_count(&s_chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_DISCONNECTED,
                                          "could not store a turn"),
                     1);
    kb_chain_start(&s_chain);
    s_expect_exactly(&s_chain, "fier", texts, 2 + S_AFTER);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
    for (int i = 0; i < 2 + S_AFTER; i++)
        free(texts[i]);
}
END_TEST

/* The disk stays full: the store does not open again after the failed
 * write, and the broker exits with status 1 and store_lost rather than
 * confirm anything more. Started again once the disk works, it has lost
 * nothing: the adapter kept what was not confirmed and sends it again. */
START_TEST(test_disk_stays_full_broker_exits)
{
    static const char *texts[] = {"before the disk filled up", "while the disk was full"};
    char *want[2] = {(char *)texts[0], (char *)texts[1]};
    kb_chain_pin_port(&s_chain); /* the client finds the restarted broker where it was */
    ketenbus_client_t *pol = kb_chain_client_credit(&s_chain, "politie", "", 0);
    ketenbus_receipt_t r;
    ketenbus_msg_t *m = kb_test_signal("fier", texts[0]);
    ck_assert_msg(ketenbus_client_submit(pol, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    kb_chain_fault(&s_chain, "disk-full", 1);
    s_submit_nowait(pol, texts[1]);
    int st = -1;
    for (int64_t end = kb_mono_ms() + 15000; st < 0 && kb_mono_ms() < end;) {
        ketenbus_client_poll(pol, 50);
        st = kb_chain_wait_exit(&s_chain, 50);
    }
    ck_assert_int_eq(st, 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "store_lost"), 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "store_reopened"), 0);
    ck_assert_uint_eq(ketenbus_client_outbox_size(pol), 1);
    kb_chain_fault(&s_chain, "disk-full", 0);
    kb_chain_start(&s_chain);
    ck_assert_int_eq(ketenbus_client_flush(pol, 10000), KETENBUS_OK);
    ck_assert_uint_eq(ketenbus_client_outbox_size(pol), 0);
    ketenbus_client_destroy(&pol);
    s_expect_exactly(&s_chain, "fier", want, 2);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
}
END_TEST

/* What the stop writes, and which of its writes fails. */
typedef struct {
    const char *fails;   /* text of the write that fails */
    int session;         /* 1: an adapter is connected at the stop */
    const char *lost;    /* what the broker then says it lost */
} s_stop_row_t;

static const s_stop_row_t s_stop_rows[] = {
    /* the DISCONNECTED record of the session the stop ends */
    {"broker stopping", 1, "the DISCONNECTED records of the 1 session it ended and the final checkpoint"},
    /* the CHECKPOINT record of the final checkpoint */
    {"root=", 0, "the final checkpoint (over 1 audit record)"},
};

/* The disk fills up as the broker stops: its last writes fail, and with
 * them audit records or the final checkpoint. That is no clean stop: the
 * broker names what it lost and exits with status 1. Started again, it
 * opens the store and stops cleanly. */
START_TEST(test_failed_write_at_stop_exits_1)
{
    const s_stop_row_t *row = &s_stop_rows[_i];
    ketenbus_client_t *pol = NULL;
    if (row->session) {
        pol = kb_chain_client_credit(&s_chain, "politie", "", 0);
        ketenbus_receipt_t r;
        ketenbus_msg_t *m = kb_test_signal("fier", "before the stop");
        ck_assert_msg(ketenbus_client_submit(pol, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
        ketenbus_msg_destroy(&m);
    }
    kb_chain_fault_text(&s_chain, "log-write-enospc", row->fails);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 1);
    ketenbus_client_destroy(&pol);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "event=stop_write_failed"), 1);
    ck_assert_int_eq(kb_chain_log_count(&s_chain, row->lost), 2); /* the log line and the exit message */
    ck_assert_int_eq(kb_chain_log_count(&s_chain, "ketenbusd: the stop could not write"), 1);
    ck_assert_int_ge(kb_chain_log_count(&s_chain, "No space left on device"), 1);
    kb_chain_start(&s_chain);
    ck_assert_int_eq(kb_chain_stop(&s_chain), 0);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_prune_on_full_disk_confirms_nothing_unwritten);
    tcase_add_test(tc, test_failed_commit_leaves_a_store_that_opens_again);
    tcase_add_test(tc, test_disk_stays_full_broker_exits);
    tcase_add_loop_test(tc, test_failed_write_at_stop_exits_1, 0, (int)(sizeof s_stop_rows / sizeof s_stop_rows[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
