/*
 * check_retention_pass.c - where a retention pass stands after a reload
 * (broker/retention.c, kb_broker_reload).
 *
 * A pass prunes one kind of record after another, a chunk per loop turn.
 * A reload that changes a retention period starts a pass at once; one
 * under way starts over from the first kind, so that the kinds it had
 * already done are pruned under their new periods in this pass, not a
 * checkpoint_interval later. A broker is built from a scratch chain
 * (kb_broker_new: no sockets) and reloaded as SIGHUP would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "broker.h"
#include "kb_error.h"
#include "kb_test.h"
#include "kb_util.h"

static const char *s_agencies[] = {"fier"};

#define S_DAY_MS (86400LL * 1000)

/* A chain whose broker section ends with retention: signal for `signal`. */
static void s_write(kb_chain_t *c, const char *signal)
{
    char extra[256];
    snprintf(extra, sizeof extra, "  checkpoint_interval: 1d\n  retention:\n    signal: %s\n    referral: 30d\n",
             signal);
    kb_chain_init(c, s_agencies, 1, "", extra);
}

START_TEST(test_changed_period_starts_the_pass_over)
{
    kb_chain_t c;
    s_write(&c, "30d");
    kb_broker_t *b = kb_broker_new(c.config);
    ck_assert_msg(b != NULL, "%s", kb_last_error());
    /* a pass under way, past the first kind, and the next one a day off */
    b->retention_kind = (int)KB_CONF_RETENTION_KINDS - 1;
    b->retention_next_ms = kb_mono_ms() + S_DAY_MS;

    /* the same periods again: the pass goes on where it was */
    ck_assert_int_eq(kb_broker_reload(b, "test"), KB_OK);
    ck_assert_int_eq(b->retention_kind, (int)KB_CONF_RETENTION_KINDS - 1);
    ck_assert_int_gt(b->retention_next_ms, kb_mono_ms() + S_DAY_MS / 2);

    /* a shorter period for signals: a pass now, from the first kind */
    kb_chain_config_replace(&c, "signal: 30d", "signal: 20d");
    ck_assert_int_eq(kb_broker_reload(b, "test"), KB_OK);
    ck_assert_int_eq(b->retention_kind, 0);
    ck_assert_int_le(b->retention_next_ms, kb_mono_ms());
    kb_broker_destroy(&b);
    kb_chain_cleanup(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("retention_pass");
    TCase *tc = tcase_create("reload");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_changed_period_starts_the_pass_over);
    suite_add_tcase(s, tc);
    return kb_test_run(s);
}
