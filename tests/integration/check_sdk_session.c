/*
 * check_sdk_session.c - how the SDK names its connection and when it takes
 * a session as open, against a scripted broker.
 *
 * Routing ids: the broker keys sessions by the ZeroMQ routing id of the
 * connection. The
 * id libzmq makes up when none is set is a zero byte and a counter, which
 * another agency can present while an earlier session is still open. The
 * SDK sets 16 random bytes whose first byte is not 0 (libzmq reserves those)
 * on every socket it makes. A scripted broker (a CURVE ROUTER with the
 * broker's key) reads the ids the clients arrive with.
 *
 * WELCOME: a session opens only on a WELCOME that answers a HELLO sent
 * since the last session ended. Frames of a connection that went can still
 * be read after the SDK learnt that it went; a WELCOME among them must not
 * make it skip the HELLO that the new connection needs.
 */
#include <string.h>

#include <check.h>

#include "kb_error.h"
#include "kb_fake.h"
#include "kb_test.h"
#include "kb_util.h"


static const char *s_agencies[] = {"politie", "fier"};
static kb_chain_t s_chain;
static kb_fake_t s_fake;

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, "", ""); /* keys only: no ketenbusd here */
    kb_fake_start(&s_fake, &s_chain);
}

static void s_teardown(void)
{
    kb_fake_stop(&s_fake);
    kb_chain_cleanup(&s_chain);
}

/* The routing id cl's HELLO arrives with. */
static void s_hello_rid(ketenbus_client_t *cl, uint8_t rid[KB_FAKE_RID_MAX], size_t *rid_len)
{
    Ketenbus__Frame *f = kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_HELLO, 5000);
    ck_assert_msg(f != NULL, "no HELLO within 5 s");
    ketenbus__frame__free_unpacked(f, NULL);
    *rid_len = s_fake.rid_len;
    memcpy(rid, s_fake.rid, s_fake.rid_len);
    ck_assert_uint_eq(*rid_len, KB_ROUTING_ID_LEN);
    ck_assert_uint_ne(rid[0], 0);
}

static int s_same(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    return a_len == b_len && memcmp(a, b, a_len) == 0;
}

START_TEST(test_two_clients_differ)
{
    uint8_t a[KB_FAKE_RID_MAX], b[KB_FAKE_RID_MAX];
    size_t a_len, b_len;
    ketenbus_client_t *pol = kb_chain_client(&s_chain, "politie", NULL);
    s_hello_rid(pol, a, &a_len);
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    s_hello_rid(fier, b, &b_len);
    ck_assert(!s_same(a, a_len, b, b_len));
    ketenbus_client_destroy(&fier);
    ketenbus_client_destroy(&pol);
}
END_TEST

/* A client made again (an adapter restart) does not reuse its old id, and
 * neither does a second client of the same agency. */
START_TEST(test_new_socket_new_id)
{
    uint8_t ids[3][KB_FAKE_RID_MAX];
    size_t lens[3];
    ketenbus_client_t *first = kb_chain_client(&s_chain, "fier", NULL);
    s_hello_rid(first, ids[0], &lens[0]);
    ketenbus_client_t *second = kb_chain_client_credit(&s_chain, "fier", "-send", 0);
    s_hello_rid(second, ids[1], &lens[1]);
    ketenbus_client_destroy(&first);
    first = kb_chain_client(&s_chain, "fier", NULL);
    s_hello_rid(first, ids[2], &lens[2]);
    for (int i = 0; i < 3; i++)
        for (int k = i + 1; k < 3; k++)
            ck_assert_msg(!s_same(ids[i], lens[i], ids[k], lens[k]), "ids %d and %d are the same", i, k);
    ketenbus_client_destroy(&second);
    ketenbus_client_destroy(&first);
}
END_TEST

/* Poll cl for ms milliseconds. */
static void s_poll_for(ketenbus_client_t *cl, int ms)
{
    for (int64_t end = kb_mono_ms() + ms; kb_mono_ms() < end;)
        ketenbus_client_poll(cl, 10);
}

START_TEST(test_stale_welcome_opens_nothing)
{
    ketenbus_client_t *cl = kb_chain_client(&s_chain, "politie", NULL);
    Ketenbus__Frame *f = kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_HELLO, 5000);
    ck_assert_msg(f != NULL, "no HELLO within 5 s");
    uint64_t first = f->request_id;
    ketenbus__frame__free_unpacked(f, NULL);
    /* the session ends before the answer comes (here the broker says so),
     * then the answer to that first HELLO arrives */
    Ketenbus__Error err;
    ketenbus__error__init(&err);
    err.code = KETENBUS__ERROR_CODE__ERROR_CODE_NO_SESSION;
    err.message = (char *)"no session: say HELLO";
    Ketenbus__Frame fr;
    ketenbus__frame__init(&fr);
    fr.version = 1;
    fr.body_case = KETENBUS__FRAME__BODY_ERROR;
    fr.error = &err;
    ck_assert_int_eq(kb_fake_send(&s_fake, &fr), KB_OK);
    ck_assert_int_eq(kb_fake_welcome(&s_fake, "politie", first), KB_OK);
    s_poll_for(cl, 300);
    ck_assert_msg(!ketenbus_client_is_connected(cl), "a WELCOME for a HELLO of an ended session opened one");
    /* the HELLOs sent since are answered: that opens it */
    int64_t end = kb_mono_ms() + 5000;
    while (!ketenbus_client_is_connected(cl) && kb_mono_ms() < end) {
        f = kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_HELLO, 200);
        if (f) {
            ck_assert_int_eq(kb_fake_welcome(&s_fake, "politie", f->request_id), KB_OK);
            ketenbus__frame__free_unpacked(f, NULL);
        }
        ketenbus_client_poll(cl, 10);
    }
    ck_assert(ketenbus_client_is_connected(cl));
    ketenbus_client_destroy(&cl);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("sdk_session");
    TCase *tc = tcase_create("session");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_two_clients_differ);
    tcase_add_test(tc, test_new_socket_new_id);
    tcase_add_test(tc, test_stale_welcome_opens_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
