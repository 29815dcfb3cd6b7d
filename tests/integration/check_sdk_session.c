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
 * Each WELCOME sets the ping interval of its session (within the
 * client's own): a longer one than an earlier session's is taken too.
 *
 * Size: a frame from the broker larger than the SDK takes (64 MiB) is not
 * buffered whole before it is refused: the connection is dropped and made
 * again, and the adapter's memory stays as it was.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <zmq.h>

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
    ck_assert_int_eq(kb_fake_no_session(&s_fake), KB_OK);
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

/* Answer cl's HELLOs with a WELCOME that asks for a PING every
 * ping_ms, until it is welcomed. */
static void s_open_with_ping(ketenbus_client_t *cl, uint32_t ping_ms)
{
    for (int64_t end = kb_mono_ms() + 5000; !ketenbus_client_is_connected(cl) && kb_mono_ms() < end;) {
        Ketenbus__Frame *f = kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_HELLO, 200);
        if (f) {
            Ketenbus__Welcome w;
            ketenbus__welcome__init(&w);
            w.broker_id = (char *)"scripted";
            w.agency = (char *)"politie";
            w.ping_interval_ms = ping_ms;
            w.max_message_bytes = 1u << 20;
            Ketenbus__Frame fr;
            ketenbus__frame__init(&fr);
            fr.request_id = f->request_id;
            fr.body_case = KETENBUS__FRAME__BODY_WELCOME;
            fr.welcome = &w;
            ck_assert_int_eq(kb_fake_send(&s_fake, &fr), KB_OK);
            ketenbus__frame__free_unpacked(f, NULL);
        }
        ketenbus_client_poll(cl, 10);
    }
    ck_assert_msg(ketenbus_client_is_connected(cl), "no session within 5 s");
}

/* PINGs cl sends within ms, each answered. */
static int s_count_pings(ketenbus_client_t *cl, int ms)
{
    int n = 0;
    for (int64_t end = kb_mono_ms() + ms; kb_mono_ms() < end;) {
        Ketenbus__Frame *f = kb_fake_recv(&s_fake, cl, 20);
        if (f && f->body_case == KETENBUS__FRAME__BODY_PING) {
            ck_assert_int_eq(kb_fake_pong(&s_fake, f), KB_OK);
            n++;
        }
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
    }
    return n;
}

/* A client of politie that pings once a second, unless the broker asks
 * for more (kb_chain_client's ping five times a second). */
static ketenbus_client_t *s_client_ping_1s(void)
{
    char state[512];
    snprintf(state, sizeof state, "%s/state-politie", s_chain.dir);
    ketenbus_client_opts_t *o = ketenbus_client_opts_new();
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(ketenbus_client_opts_set_agency(o, "politie", s_chain.keys), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_broker(o, s_chain.endpoint, s_chain.broker_cert), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_state_dir(o, state), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_ping_interval(o, 1000), KETENBUS_OK);
    ketenbus_client_t *cl = ketenbus_client_new(o);
    ketenbus_client_opts_destroy(&o);
    ck_assert_msg(cl != NULL, "client: %s", ketenbus_last_error());
    return cl;
}

/* A session whose WELCOME asks for a PING every 100 ms, then one whose
 * WELCOME asks for one every 5 s: the second session pings at the
 * client's own interval, once a second, not ten times. */
START_TEST(test_each_welcome_sets_the_ping_interval)
{
    ketenbus_client_t *cl = s_client_ping_1s();
    s_open_with_ping(cl, 100);
    int fast = s_count_pings(cl, 1000);
    ck_assert_msg(fast >= 5, "%d PINGs in a second at an interval of 100 ms", fast);
    ck_assert_int_eq(kb_fake_no_session(&s_fake), KB_OK);
    for (int64_t end = kb_mono_ms() + 5000; ketenbus_client_is_connected(cl) && kb_mono_ms() < end;)
        ketenbus_client_poll(cl, 10);
    ck_assert(!ketenbus_client_is_connected(cl));
    s_open_with_ping(cl, 5000);
    int slow = s_count_pings(cl, 2500);
    ck_assert_msg(slow <= 4, "%d PINGs in 2.5 s at an interval of 1 s", slow);
    ck_assert(ketenbus_client_is_connected(cl));
    ketenbus_client_destroy(&cl);
}
END_TEST

#define S_HUGE_FRAME    (100u << 20) /* one frame the scripted broker sends, over the SDK's 64 MiB */
#define S_GROWTH_MAX_KB (32 * 1024)  /* how much the client's peak memory may grow meanwhile */

static void s_setup_keys(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, "", ""); /* keys only: the scripted broker runs in a child */
}

static void s_teardown_keys(void)
{
    kb_chain_cleanup(&s_chain);
}

/* Peak resident memory of this process in KiB (VmHWM), -1 if unknown. */
static long s_peak_kib(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (fp && fgets(line, sizeof line, fp))
        if (sscanf(line, "VmHWM: %ld kB", &v) == 1)
            break;
    if (fp)
        fclose(fp);
    return v;
}

/* The scripted broker of test_huge_frame_dropped, in a child process so
 * that its own memory does not count: it welcomes the client, sends it one
 * frame of S_HUGE_FRAME bytes, then welcomes every HELLO, answers PINGs
 * and accepts what is submitted, until the client has gone. */
static void s_huge_frame_broker(int ready_fd)
{
    kb_fake_t fake;
    kb_fake_start(&fake, &s_chain);
    if (write(ready_fd, s_chain.endpoint, sizeof s_chain.endpoint) != (ssize_t)sizeof s_chain.endpoint)
        _exit(2);
    close(ready_fd);
    int sent = 0;
    for (int64_t end = kb_mono_ms() + 20000; kb_mono_ms() < end;) {
        Ketenbus__Frame *f = kb_fake_recv(&fake, NULL, 100);
        if (!f)
            continue;
        if (f->body_case == KETENBUS__FRAME__BODY_HELLO) {
            kb_fake_welcome(&fake, "politie", f->request_id);
            if (!sent) {
                void *big = calloc(1, S_HUGE_FRAME);
                if (!big || zmq_send(fake.router, fake.rid, fake.rid_len, ZMQ_SNDMORE) < 0 ||
                    zmq_send(fake.router, big, S_HUGE_FRAME, 0) < 0)
                    _exit(3);
                free(big);
                sent = 1;
            }
        } else if (f->body_case == KETENBUS__FRAME__BODY_SUBMIT) {
            kb_fake_receipt(&fake, f->submit, KETENBUS__OUTCOME__OUTCOME_ACCEPTED, KETENBUS__REJECT_CODE__REJECT_NONE,
                            "");
        } else if (f->body_case == KETENBUS__FRAME__BODY_PING) {
            kb_fake_pong(&fake, f);
        }
        ketenbus__frame__free_unpacked(f, NULL);
    }
    kb_fake_stop(&fake);
    _exit(0);
}

/* A broker (broken, or one whose key was stolen) sends a frame of 100 MiB.
 * libzmq refuses it as it starts to arrive and drops the connection, so
 * the client's memory does not grow by the frame; the client connects
 * again, is welcomed, and its submission is accepted. */
START_TEST(test_huge_frame_dropped)
{
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL); /* Check's handler would end the whole process group */
        close(pfd[0]);
        s_huge_frame_broker(pfd[1]);
    }
    close(pfd[1]);
    ck_assert_int_eq(read(pfd[0], s_chain.endpoint, sizeof s_chain.endpoint), (ssize_t)sizeof s_chain.endpoint);
    close(pfd[0]);
    long before = s_peak_kib();
    ck_assert_int_gt(before, 0);
    ketenbus_client_t *cl = kb_chain_client(&s_chain, "politie", NULL);
    /* welcomed, then the frame drops the connection, then welcomed again */
    int sessions = 0, was = 0;
    for (int64_t end = kb_mono_ms() + 15000; sessions < 2 && kb_mono_ms() < end;) {
        ketenbus_client_poll(cl, 20);
        int now = ketenbus_client_is_connected(cl);
        sessions += now && !was;
        was = now;
    }
    long grown = s_peak_kib() - before;
    int rc = KETENBUS_ENET;
    if (sessions == 2) {
        ketenbus_msg_t *m = kb_test_signal("fier", "after the huge frame");
        rc = ketenbus_client_submit(cl, m, NULL, 5000);
        ketenbus_msg_destroy(&m);
    }
    ketenbus_client_destroy(&cl);
    kill(pid, SIGTERM);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    ck_assert_msg(grown < S_GROWTH_MAX_KB, "one frame of 100 MiB grew the client by %ld KiB", grown);
    ck_assert_msg(sessions == 2, "%d sessions within 15 s", sessions);
    ck_assert_msg(rc == KETENBUS_OK, "submit after the huge frame: %d (%s)", rc, ketenbus_last_error());
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
    tcase_add_test(tc, test_each_welcome_sets_the_ping_interval);
    suite_add_tcase(s, tc);
    TCase *size = tcase_create("size");
    tcase_add_checked_fixture(size, s_setup_keys, s_teardown_keys);
    tcase_set_timeout(size, 60);
    tcase_add_test(size, test_huge_frame_dropped);
    suite_add_tcase(s, size);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
