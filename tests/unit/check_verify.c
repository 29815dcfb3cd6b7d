/*
 * check_verify.c - the signature-check pool gives every job the result a
 * direct kb_seal_verify() would, with 0 or several worker threads, over many
 * batches of different sizes.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <openssl/evp.h>

#include "kb_error.h"
#include "kb_seal.h"
#include "kb_util.h"
#include "verify.h"
#include "kb_test.h"

#define N_ENV 40

static EVP_PKEY *s_key, *s_other;
static Ketenbus__Envelope *s_env[N_ENV];

static Ketenbus__Envelope *s_make(int i)
{
    Ketenbus__Envelope *e = malloc(sizeof *e);
    ketenbus__envelope__init(e);
    e->message_id.data = malloc(16);
    e->message_id.len = 16;
    kb_uuid7(e->message_id.data);
    e->sender = strdup("politie");
    e->kind = KETENBUS__KIND__KIND_SIGNAL;
    e->created_us = kb_now_us();
    e->signal = malloc(sizeof *e->signal);
    ketenbus__signal__init(e->signal);
    e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_SIGNAL;
    e->signal->exploitation = KETENBUS__EXPLOITATION__EXPLOITATION_CRIMINAL;
    e->signal->narrative = strdup("narrative");
    /* every third envelope signed by another key: must fail */
    ck_assert_int_eq(kb_seal_sign(e, i % 3 == 2 ? s_other : s_key), KB_OK);
    return e;
}

static void s_setup(void)
{
    s_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    s_other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    for (int i = 0; i < N_ENV; i++)
        s_env[i] = s_make(i);
}

static void s_teardown(void)
{
    for (int i = 0; i < N_ENV; i++)
        ketenbus__envelope__free_unpacked(s_env[i], NULL);
    EVP_PKEY_free(s_key);
    EVP_PKEY_free(s_other);
}

static const unsigned s_workers[] = {0, 1, 3};

START_TEST(test_pool_matches_direct)
{
    kb_verify_pool_t *p = kb_verify_pool_new(s_workers[_i]);
    ck_assert_ptr_nonnull(p);
    kb_verify_job_t jobs[N_ENV];
    for (size_t n = 0; n <= N_ENV; n += 7) {
        for (int round = 0; round < 5; round++) {
            for (size_t j = 0; j < n; j++) {
                jobs[j].env = s_env[(j + (size_t)round) % N_ENV];
                jobs[j].key = s_key;
            }
            kb_verify_pool_run(p, jobs, n);
            for (size_t j = 0; j < n; j++) {
                int want = ((j + (size_t)round) % N_ENV) % 3 == 2 ? KB_ECRYPTO : KB_OK;
                ck_assert_int_eq(jobs[j].rc, want);
                if (want != KB_OK)
                    ck_assert_msg(jobs[j].detail[0] != '\0', "no detail for a failed check");
            }
        }
    }
    kb_verify_pool_destroy(&p);
    ck_assert_ptr_null(p);
    kb_verify_pool_destroy(&p); /* NULL is fine */
}
END_TEST

/* Started, then finished after other work on the calling thread (what
 * the broker does while it routes the previous turn): the same results;
 * a finish without a start returns at once. */
START_TEST(test_start_then_finish)
{
    kb_verify_pool_t *p = kb_verify_pool_new(s_workers[_i]);
    ck_assert_ptr_nonnull(p);
    kb_verify_pool_finish(p);
    kb_verify_job_t jobs[N_ENV];
    for (int round = 0; round < 6; round++) {
        size_t n = (size_t)(round * 7 + 1) % (N_ENV + 1);
        for (size_t j = 0; j < n; j++) {
            jobs[j].env = s_env[(j + (size_t)round) % N_ENV];
            jobs[j].key = s_key;
        }
        kb_verify_pool_start(p, jobs, n);
        /* meanwhile the caller checks one on its own */
        ck_assert_int_eq(kb_seal_verify(s_env[0], s_key), KB_OK);
        kb_verify_pool_finish(p);
        for (size_t j = 0; j < n; j++)
            ck_assert_int_eq(jobs[j].rc, ((j + (size_t)round) % N_ENV) % 3 == 2 ? KB_ECRYPTO : KB_OK);
        kb_verify_pool_finish(p); /* nothing left: returns */
    }
    kb_verify_pool_destroy(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("verify");
    TCase *tc = tcase_create("verify");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_loop_test(tc, test_pool_matches_direct, 0, 3);
    tcase_add_loop_test(tc, test_start_then_finish, 0, 3);
    suite_add_tcase(s, tc);
    return kb_test_run(s);
}
