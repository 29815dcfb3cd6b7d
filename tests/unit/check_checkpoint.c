/*
 * check_checkpoint.c - when the broker signs its audit checkpoints
 * (broker/checkpoint.c).
 *
 * A broker is built from a scratch chain (kb_broker_new: its store, tree
 * and signing key, no sockets) and checkpoint_maybe() is called as the
 * loop calls it. Disk faults of tests/support/faults/ are preloaded into
 * this program (kb_test_preload_faults), so that the write of a checkpoint
 * fails as on a full disk: the failed checkpoint is tried again
 * KB_CHECKPOINT_RETRY_MS later, not a checkpoint_interval (here a day)
 * later, and not on every turn before that; once it is written, the next
 * is due a whole interval later. The same whether the interval or
 * checkpoint_records made it due.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "broker.h"
#include "kb_error.h"
#include "kb_test.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"

#define S_DAY_MS (86400LL * 1000) /* the checkpoint_interval of these chains */

static const char *s_agencies[] = {"fier"};

/* What makes the checkpoint due. */
typedef struct {
    const char *broker_extra; /* broker keys of the chain */
    int by_interval;          /* 1: the interval ran out; 0: checkpoint_records were logged */
} s_due_row_t;

static const s_due_row_t s_due_rows[] = {
    {"  checkpoint_interval: 1d\n", 1},
    {"  checkpoint_interval: 1d\n  checkpoint_records: 1\n", 0},
};

START_TEST(test_failed_checkpoint_is_tried_again_soon)
{
    const s_due_row_t *row = &s_due_rows[_i];
    kb_chain_t c;
    kb_chain_init(&c, s_agencies, 1, "", row->broker_extra);
    char faults[600], fault[640];
    snprintf(faults, sizeof faults, "%s/faults", c.dir);
    snprintf(fault, sizeof fault, "%s/log-write-enospc", faults);
    ck_assert_int_eq(kb_mkdirs(faults, 0700), KB_OK);
    ck_assert_int_eq(setenv("KB_FAULTS", faults, 1), 0);
    kb_broker_t *b = kb_broker_new(c.config);
    ck_assert_msg(b != NULL, "%s", kb_last_error());
    /* a record to sign, written */
    ck_assert_int_eq(audit_event(b, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RULES_LOADED, "", NULL, "test"), KB_OK);
    ck_assert_int_eq(kb_store_commit(b->store, b->batch, 1), KB_OK);
    /* as kb_broker_start leaves it (the interval counts from the start),
     * unless the interval is what ran out */
    b->cp_next_ms = row->by_interval ? kb_mono_ms() : kb_mono_ms() + S_DAY_MS;

    /* the checkpoint's write fails: the disk is full */
    kb_chain_fault(&c, "log-write-enospc", 1);
    checkpoint_maybe(b, 0);
    int64_t failed_at = kb_mono_ms();
    ck_assert_msg(access(fault, F_OK) != 0, "no checkpoint was written");
    ck_assert_uint_eq(b->cp_size, 0);
    /* due again soon, not a day later */
    ck_assert_int_le(b->cp_next_ms, failed_at + KB_CHECKPOINT_RETRY_MS);
    ck_assert_int_le(b->cp_retry_ms, failed_at + KB_CHECKPOINT_RETRY_MS);
    /* and not tried again on the next turn, before that */
    ck_assert_int_gt(b->cp_retry_ms, failed_at); /* set at the failure, a second on */
    checkpoint_maybe(b, 0);
    if (kb_mono_ms() < b->cp_retry_ms)
        ck_assert_uint_eq(b->cp_size, 0);

    /* the disk works again: the retry signs what was logged */
    for (int64_t end = kb_mono_ms() + 10 * KB_CHECKPOINT_RETRY_MS; b->cp_size == 0 && kb_mono_ms() < end;) {
        usleep(20 * 1000);
        checkpoint_maybe(b, 0);
    }
    int64_t signed_by = kb_mono_ms();
    ck_assert_uint_eq(b->cp_size, 1);
    ck_assert_uint_eq(kb_merkle_size(b->tree), 2); /* the record and the CHECKPOINT record */
    /* the next is due a whole interval after this one */
    ck_assert_int_gt(b->cp_next_ms, signed_by + S_DAY_MS / 2);
    kb_broker_destroy(&b);
    ck_assert_int_eq(unsetenv("KB_FAULTS"), 0);
    kb_chain_cleanup(&c);
}
END_TEST

int main(int argc, char **argv)
{
    (void)argc;
    kb_test_preload_faults(argv);
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("schedule");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_failed_checkpoint_is_tried_again_soon, 0,
                        (int)(sizeof s_due_rows / sizeof s_due_rows[0]));
    suite_add_tcase(s, tc);
    return kb_test_run(s);
}
