/*
 * check_session.c - a session's in-flight window (broker/session.c): tags
 * added in ascending order are found until acknowledged, in any order of
 * acknowledgement; the ring grows, wraps and squeezes out its holes without
 * losing or inventing an entry. A plain sorted array is the reference.
 * The credit a session is granted counts its unacknowledged deliveries,
 * and a second HELLO on the same connection starts the session over.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "broker.h"
#include "kb_error.h"
#include "kb_test.h"

#define N_TAGS 3000u

static kb_inflight_t s_item(uint64_t tag)
{
    kb_inflight_t d;
    memset(&d, 0, sizeof d);
    d.tag = tag;
    d.kind = (int)(tag % 5);
    memcpy(d.message_id, &tag, sizeof tag);
    snprintf(d.sender, sizeof d.sender, "agency-%llu", (unsigned long long)(tag % 7));
    return d;
}

/* Every tag below end is in flight exactly when ref says so. */
static void s_same(const kb_session_t *s, const unsigned char *ref, uint64_t end)
{
    size_t live = 0;
    for (uint64_t t = 0; t < end + 3; t++) {
        int want = t < end && ref[t];
        ck_assert_int_eq(session_inflight_has(s, t), want);
        live += (size_t)want;
    }
    ck_assert_uint_eq(s->n_inflight, live);
}

static void s_free(kb_session_t *s)
{
    free(s->inflight);
    memset(s, 0, sizeof *s);
}

START_TEST(test_add_remove_in_order)
{
    kb_session_t s;
    memset(&s, 0, sizeof s);
    unsigned char ref[N_TAGS] = {0};
    uint64_t next = 0;
    /* a window of up to 500 moving forward: the ACKs of a busy recipient */
    while (next < N_TAGS) {
        for (unsigned k = 0; k < 50 && next < N_TAGS; k++, next++) {
            kb_inflight_t d = s_item(next);
            ck_assert_int_eq(session_inflight_add(&s, &d), KB_OK);
            ref[next] = 1;
        }
        for (uint64_t t = 0; t + 500 < next; t++) {
            if (!ref[t])
                continue;
            kb_inflight_t out;
            ck_assert_int_eq(session_inflight_remove(&s, t, &out), KB_OK);
            ck_assert_uint_eq(out.tag, t);
            ck_assert_int_eq(out.kind, (int)(t % 5));
            ck_assert_int_eq(memcmp(out.message_id, &t, sizeof t), 0);
            ref[t] = 0;
        }
    }
    s_same(&s, ref, N_TAGS);
    ck_assert_uint_le(s.cap_inflight, 1024u);
    s_free(&s);
}
END_TEST

/* Acknowledgement orders: 0 forward, 1 backward, 2 every other first,
 * 3 all but the first (a hole-filled ring behind one stuck entry). */
START_TEST(test_remove_orders)
{
    kb_session_t s;
    memset(&s, 0, sizeof s);
    unsigned char ref[N_TAGS] = {0};
    for (uint64_t t = 0; t < N_TAGS; t++) {
        kb_inflight_t d = s_item(t);
        ck_assert_int_eq(session_inflight_add(&s, &d), KB_OK);
        ref[t] = 1;
    }
    for (uint64_t k = 0; k < N_TAGS; k++) {
        uint64_t t = k;
        if (_i == 1)
            t = N_TAGS - 1 - k;
        else if (_i == 2)
            t = k < N_TAGS / 2 ? 2 * k + 1 : 2 * (k - N_TAGS / 2);
        else if (_i == 3 && k == N_TAGS - 1)
            break;
        else if (_i == 3)
            t = k + 1;
        ck_assert_int_eq(session_inflight_remove(&s, t, NULL), KB_OK);
        ref[t] = 0;
        /* a second ACK of the same tag finds nothing */
        ck_assert_int_eq(session_inflight_remove(&s, t, NULL), KB_ENOTFOUND);
        if (k % 250 == 0)
            s_same(&s, ref, N_TAGS);
    }
    s_same(&s, ref, N_TAGS);
    ck_assert_uint_eq(s.n_inflight, _i == 3 ? 1u : 0u);
    s_free(&s);
}
END_TEST

/* One entry never acknowledged while thousands pass behind it: the ring
 * stays about twice the live entries, not the count of deliveries. */
START_TEST(test_stuck_entry_bounded)
{
    kb_session_t s;
    memset(&s, 0, sizeof s);
    kb_inflight_t d = s_item(1);
    ck_assert_int_eq(session_inflight_add(&s, &d), KB_OK);
    for (uint64_t t = 2; t < 200000; t++) {
        d = s_item(t);
        ck_assert_int_eq(session_inflight_add(&s, &d), KB_OK);
        if (t >= 40)
            ck_assert_int_eq(session_inflight_remove(&s, t - 38, NULL), KB_OK);
    }
    ck_assert_int_eq(session_inflight_has(&s, 1), 1);
    ck_assert_uint_eq(s.n_inflight, 39u); /* tag 1 and the last 38 */
    ck_assert_uint_le(s.cap_inflight, 128u);
    s_free(&s);
}
END_TEST

START_TEST(test_tags_must_ascend)
{
    kb_session_t s;
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(session_inflight_has(&s, 0), 0);
    ck_assert_int_eq(session_inflight_remove(&s, 0, NULL), KB_ENOTFOUND);
    kb_inflight_t d = s_item(10);
    ck_assert_int_eq(session_inflight_add(&s, &d), KB_OK);
    ck_assert_int_eq(session_inflight_add(&s, &d), KB_EINVAL);
    d = s_item(9);
    ck_assert_int_eq(session_inflight_add(&s, &d), KB_EINVAL);
    ck_assert_int_eq(session_inflight_has(&s, 9), 0);
    ck_assert_int_eq(session_inflight_has(&s, 11), 0);
    ck_assert_uint_eq(s.n_inflight, 1u);
    s_free(&s);
}
END_TEST

/* Credit adds up, but what is delivered and unacknowledged counts
 * against the same bound: an adapter that grants credit without ever
 * acknowledging cannot make the window grow past KB_OUTSTANDING_MAX. */
START_TEST(test_credit_bounded_by_outstanding)
{
    kb_session_t s;
    memset(&s, 0, sizeof s);
    session_credit_grant(&s, 64);
    session_credit_grant(&s, 36);
    ck_assert_uint_eq(s.credit, 100u);
    session_credit_grant(&s, UINT64_MAX); /* no wrap-around */
    ck_assert_uint_eq(s.credit, KB_OUTSTANDING_MAX);
    /* 1,000 delivered: the credit they used is not granted back by a CREDIT
     * while they stay unacknowledged */
    s.credit = 0;
    for (uint64_t t = 1; t <= 1000; t++) {
        kb_inflight_t d = s_item(t);
        ck_assert_int_eq(session_inflight_add(&s, &d), KB_OK);
    }
    session_credit_grant(&s, KB_OUTSTANDING_MAX);
    ck_assert_uint_eq(s.credit, KB_OUTSTANDING_MAX - 1000u);
    session_credit_grant(&s, 5);
    ck_assert_uint_eq(s.credit, KB_OUTSTANDING_MAX - 1000u);
    /* acknowledged ones make room again */
    for (uint64_t t = 1; t <= 10; t++)
        ck_assert_int_eq(session_inflight_remove(&s, t, NULL), KB_OK);
    session_credit_grant(&s, 4);
    ck_assert_uint_eq(s.credit, KB_OUTSTANDING_MAX - 996u);
    session_credit_grant(&s, 100);
    ck_assert_uint_eq(s.credit, KB_OUTSTANDING_MAX - 990u);
    s_free(&s);
}
END_TEST

/* A second HELLO on the same connection starts the session over: nothing
 * of the first stays in flight, and what the pump passed by in it no
 * longer makes expiry look at the (new) window entry by entry. */
START_TEST(test_second_hello_starts_over)
{
    kb_broker_t b;
    memset(&b, 0, sizeof b);
    b.sessions = calloc(KB_MAX_SESSIONS, sizeof *b.sessions);
    ck_assert_ptr_nonnull(b.sessions);
    const uint8_t rid[] = {0, 1, 2, 3, 4};
    kb_session_t *s = session_open(&b, rid, sizeof rid, "fier", "key-of-fier", 0);
    ck_assert_ptr_nonnull(s);
    session_credit_grant(s, 64);
    for (uint64_t t = 1; t <= 10; t++) {
        kb_inflight_t d = s_item(t);
        ck_assert_int_eq(session_inflight_add(s, &d), KB_OK);
    }
    s->cursor = 11;
    s->passed = 3;
    kb_session_t *again = session_open(&b, rid, sizeof rid, "fier", "key-of-fier", 0);
    ck_assert_ptr_eq(again, s);
    ck_assert_uint_eq(b.n_sessions, 1u);
    ck_assert_uint_eq(s->n_inflight, 0u);
    ck_assert_int_eq(session_inflight_has(s, 5), 0);
    ck_assert_uint_eq(s->credit, 0u);
    ck_assert_uint_eq(s->cursor, 0u);
    ck_assert_uint_eq(s->passed, 0u);
    ck_assert_int_eq(s->active, 1);
    ck_assert_ptr_eq(session_active(&b, "fier"), s);
    session_reset(&b, s);
    free(b.sessions);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("inflight");
    tcase_add_test(tc, test_add_remove_in_order);
    tcase_add_loop_test(tc, test_remove_orders, 0, 4);
    tcase_add_test(tc, test_stuck_entry_bounded);
    tcase_add_test(tc, test_tags_must_ascend);
    tcase_add_test(tc, test_credit_bounded_by_outstanding);
    tcase_add_test(tc, test_second_hello_starts_over);
    suite_add_tcase(s, tc);
    return kb_test_run(s);
}
