/*
 * check_sdk_ack.c - an acknowledged message is never handed to the adapter
 * again, whatever the session did meanwhile, against a scripted broker.
 *
 * ketenbus_client_ack() records the message as seen (a synced write)
 * before it returns: on any session, or on none when the broker is away.
 * The tag goes to the broker only on the session that delivered it; the
 * broker delivers again on a new session, and the SDK acknowledges that
 * copy and drops it. A copy delivered again before the adapter acknowledged
 * the first one may wait in the inbox; recv must not hand it out once the
 * first is acknowledged. Every tag of the open session goes once, with
 * whichever copy of the message the adapter acknowledges. Copies beyond
 * the credit the client granted end the session, so what the SDK keeps of
 * a session stays bounded whatever the broker sends. The real broker
 * cannot be made to end a session on cue, so a scripted broker (kb_fake.h)
 * does.
 *
 * Disk faults: the program runs with tests/support/faults/ preloaded
 * (kb_test_preload_faults), so that a test can fail the write of a seen
 * record in the client's state directory, as on a full disk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "kb_error.h"
#include "kb_fake.h"
#include "kb_test.h"
#include "kb_util.h"
#include "sdk_internal.h"

#define S_TAG 7 /* the delivery tag the scripted broker uses */

static const char *s_agencies[] = {"politie", "fier"};
static kb_chain_t s_chain;
static kb_fake_t s_fake;
static ketenbus_msg_t *s_msg; /* the message delivered: from politie, a fixed id */

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 2, "", ""); /* keys only: no ketenbusd here */
    kb_fake_start(&s_fake, &s_chain);
    static const uint8_t id[16] = {0x01, 0x89, 0x0a, 0x5d, 0xac, 0x96, 0x77, 0x4b,
                                   0xbc, 0xce, 0xb3, 0x02, 0x09, 0x9a, 0x80, 0x57};
    s_msg = kb_test_signal("fier", "to be handed over once");
    kb_test_sign_as(&s_chain, s_msg, "politie", id);
}

static void s_teardown(void)
{
    ketenbus_msg_destroy(&s_msg);
    kb_fake_stop(&s_fake);
    kb_chain_cleanup(&s_chain);
}

/* The broker ends the session; cl notices. */
static void s_end_session(ketenbus_client_t *cl)
{
    ck_assert_int_eq(kb_fake_no_session(&s_fake), KB_OK); /* the broker says the session is gone */
    for (int64_t end = kb_mono_ms() + 5000; ketenbus_client_is_connected(cl) && kb_mono_ms() < end;)
        ketenbus_client_poll(cl, 10);
    ck_assert(!ketenbus_client_is_connected(cl));
}

/* Deliver s_msg under tag. */
static void s_deliver_tag(uint64_t tag)
{
    ck_assert_int_eq(kb_fake_deliver(&s_fake, &s_msg->env, &tag, 1), KB_OK);
}

static void s_deliver(void)
{
    s_deliver_tag(S_TAG);
}

/* cl acknowledges tag within 5 s. */
static void s_expect_ack_tag(ketenbus_client_t *cl, uint64_t tag)
{
    int64_t end = kb_mono_ms() + 5000;
    while (kb_mono_ms() < end) {
        Ketenbus__Frame *f = kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_ACK, (int)(end - kb_mono_ms()));
        if (!f)
            break;
        int found = 0;
        for (size_t i = 0; i < f->ack->n_tags; i++)
            found |= f->ack->tags[i] == tag;
        ketenbus__frame__free_unpacked(f, NULL);
        if (found)
            return;
    }
    ck_abort_msg("tag %llu was not acknowledged within 5 s", (unsigned long long)tag);
}

static void s_expect_ack(ketenbus_client_t *cl)
{
    s_expect_ack_tag(cl, S_TAG);
}

/* The next write of a seen record of a message from sender, in a state
 * directory under "/data/", fails with ENOSPC (once). Returns the path of
 * the switch, which is gone once the fault happened. */
static void s_fail_seen_write(const char *sender, char *path, size_t path_len)
{
    char dir[400], key[64];
    snprintf(dir, sizeof dir, "%s/faults", s_chain.dir);
    ck_assert_int_eq(kb_mkdirs(dir, 0700), KB_OK);
    ck_assert_int_eq(setenv("KB_FAULTS", dir, 1), 0);
    /* the key of a seen record: 'r', the sender, a NUL, the id */
    int n = snprintf(key, sizeof key, "r%s", sender);
    snprintf(path, path_len, "%s/log-write-enospc", dir);
    ck_assert_int_eq(kb_file_write(path, key, (size_t)n + 1, 0600), KB_OK);
}

/* Answer the PING ping. */
static void s_pong(const Ketenbus__Frame *ping)
{
    ck_assert_int_eq(kb_fake_pong(&s_fake, ping), KB_OK);
}

static int s_take(ketenbus_client_t *c, const ketenbus_msg_t *m, void *arg)
{
    (void)c;
    (void)m;
    (*(int *)arg)++;
    return 0; /* stored */
}

/* Read what the scripted broker got until 100 ms pass without a frame. */
static void s_drain(void)
{
    Ketenbus__Frame *f;
    while ((f = kb_fake_recv(&s_fake, NULL, 100)) != NULL)
        ketenbus__frame__free_unpacked(f, NULL);
}

/* The adapter acknowledges while the session is gone and then stops: the
 * acknowledgement still holds after the restart. */
START_TEST(test_ack_without_session_survives_restart)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    kb_fake_open_session(&s_fake, fier, "fier");
    s_deliver();
    ketenbus_msg_t *got = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &got, 5000), KETENBUS_OK);
    s_end_session(fier);
    ck_assert_int_eq(ketenbus_client_ack(fier, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);
    ketenbus_client_destroy(&fier);
    s_drain();

    /* the same state directory; the broker delivers the message again */
    fier = kb_chain_client(&s_chain, "fier", NULL);
    kb_fake_open_session(&s_fake, fier, "fier");
    s_deliver();
    s_expect_ack(fier);
    ck_assert_int_eq(ketenbus_client_recv(fier, &got, 300), KETENBUS_ETIMEDOUT);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* A copy delivered on a new session waits in the inbox while the adapter
 * still holds the first; once the first is acknowledged, recv acknowledges
 * the copy instead of handing it out. */
START_TEST(test_recv_skips_copy_of_acknowledged)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    kb_fake_open_session(&s_fake, fier, "fier");
    /* an outbox entry, whose receipt later shows that the copy was read */
    ketenbus_msg_t *out = kb_test_signal("politie", "marks the end of the copy");
    ck_assert_int_eq(ketenbus_client_submit(fier, out, NULL, 0), KETENBUS_EPENDING);
    s_deliver();
    ketenbus_msg_t *got = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &got, 5000), KETENBUS_OK);

    s_end_session(fier);
    kb_fake_open_session(&s_fake, fier, "fier");
    Ketenbus__Frame *sub = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_SUBMIT, 5000);
    ck_assert_msg(sub != NULL, "the outbox was not sent on the new session");
    s_deliver();
    ck_assert_int_eq(kb_fake_receipt(&s_fake, sub->submit, KETENBUS__OUTCOME__OUTCOME_ACCEPTED,
                                     KETENBUS__REJECT_CODE__REJECT_NONE, NULL),
                     KB_OK);
    ketenbus__frame__free_unpacked(sub, NULL);
    /* frames keep their order: the copy was read once the receipt was */
    for (int64_t end = kb_mono_ms() + 5000; ketenbus_client_outbox_size(fier) > 0 && kb_mono_ms() < end;)
        ketenbus_client_poll(fier, 10);
    ck_assert_uint_eq(ketenbus_client_outbox_size(fier), 0);

    ck_assert_int_eq(ketenbus_client_ack(fier, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);
    int rc = ketenbus_client_recv(fier, &got, 300);
    if (rc == KETENBUS_OK)
        ketenbus_msg_destroy(&got);
    ck_assert_msg(rc == KETENBUS_ETIMEDOUT, "recv handed out the acknowledged message again");
    s_expect_ack(fier);
    ketenbus_msg_destroy(&out);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* Two HELLOs were answered (the second went out while the broker held the
 * first WELCOME behind a write): the broker's second HELLO started its
 * session again and delivers what was in flight under new tags. The client
 * must take the new copy, so that the adapter's acknowledgement reaches the
 * broker with the tag it now knows; otherwise that delivery stays in flight
 * and its credit is gone for good. */
START_TEST(test_second_welcome_starts_a_new_session)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    Ketenbus__Frame *h1 = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_HELLO, 5000);
    ck_assert_ptr_nonnull(h1);
    Ketenbus__Frame *h2 = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_HELLO, 5000); /* 0.5 s later */
    ck_assert_ptr_nonnull(h2);
    ck_assert_int_eq(kb_fake_welcome(&s_fake, "fier", h1->request_id), KB_OK);
    s_deliver_tag(S_TAG);
    ck_assert_int_eq(kb_fake_welcome(&s_fake, "fier", h2->request_id), KB_OK);
    s_deliver_tag(S_TAG + 1);
    ketenbus__frame__free_unpacked(h1, NULL);
    ketenbus__frame__free_unpacked(h2, NULL);
    ketenbus_msg_t *got = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &got, 5000), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_ack(fier, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);
    s_expect_ack_tag(fier, S_TAG + 1);
    /* one message, handed over once */
    ck_assert_int_ne(ketenbus_client_recv(fier, &got, 500), KETENBUS_OK);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* The adapter acknowledges one message twice: its tag goes to the broker
 * once, and so does the credit it frees. */
START_TEST(test_second_ack_sends_nothing)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    kb_fake_open_session(&s_fake, fier, "fier");
    s_drain();
    s_deliver();
    ketenbus_msg_t *got = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &got, 5000), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_ack(fier, got), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_ack(fier, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);
    size_t tags = 0;
    uint64_t credit = 0;
    for (int64_t end = kb_mono_ms() + 1500; kb_mono_ms() < end;) { /* what the client sends meanwhile */
        Ketenbus__Frame *f = kb_fake_recv(&s_fake, fier, 100);
        if (!f)
            continue;
        if (f->body_case == KETENBUS__FRAME__BODY_ACK)
            for (size_t i = 0; i < f->ack->n_tags; i++)
                tags += f->ack->tags[i] == S_TAG;
        if (f->body_case == KETENBUS__FRAME__BODY_CREDIT)
            credit += f->credit->credit;
        ketenbus__frame__free_unpacked(f, NULL);
    }
    ck_assert_uint_eq(tags, 1);
    ck_assert_uint_eq(credit, 1);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* How often the client acknowledges tag within ms. */
static size_t s_count_acks(ketenbus_client_t *cl, uint64_t tag, int ms)
{
    size_t n = 0;
    for (int64_t end = kb_mono_ms() + ms; kb_mono_ms() < end;) {
        Ketenbus__Frame *f = kb_fake_recv(&s_fake, cl, 100);
        if (!f)
            continue;
        if (f->body_case == KETENBUS__FRAME__BODY_ACK)
            for (size_t i = 0; i < f->ack->n_tags; i++)
                n += f->ack->tags[i] == tag;
        ketenbus__frame__free_unpacked(f, NULL);
    }
    return n;
}

/* One message arrives under tags 7 and 8 in one burst: recv hands it out
 * once, and its acknowledgement sends both tags (else tag 8 stays in
 * flight and its credit is lost for the session). */
START_TEST(test_copy_in_one_burst_acknowledged_with_it)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    kb_fake_open_session(&s_fake, fier, "fier");
    s_drain();
    s_deliver_tag(7);
    s_deliver_tag(8);
    ketenbus_msg_t *got = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &got, 5000), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_ack(fier, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);
    ck_assert_int_eq(ketenbus_client_recv(fier, &got, 300), KETENBUS_ETIMEDOUT);
    s_expect_ack_tag(fier, 8);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* The adapter holds the copy of an ended session and the one delivered
 * again in the new session, and acknowledges the old copy first: the new
 * copy's tag goes then, once, and acknowledging the new copy sends it
 * no second time. */
START_TEST(test_old_copy_acknowledged_first)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    kb_fake_open_session(&s_fake, fier, "fier");
    s_deliver_tag(7);
    ketenbus_msg_t *first = NULL, *copy = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &first, 5000), KETENBUS_OK);
    s_end_session(fier);
    kb_fake_open_session(&s_fake, fier, "fier");
    s_drain();
    s_deliver_tag(8);
    ck_assert_int_eq(ketenbus_client_recv(fier, &copy, 5000), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_ack(fier, first), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_ack(fier, copy), KETENBUS_OK);
    ketenbus_msg_destroy(&first);
    ketenbus_msg_destroy(&copy);
    ck_assert_uint_eq(s_count_acks(fier, 8, 1500), 1);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* ketenbus_client_submit() stores the message, then polls for its receipt;
 * a poll that fails meanwhile for other work (here the seen record of a
 * delivery the handler took cannot be written: a full disk) does not make
 * the submission fail. Reported as KETENBUS_EIO it would be taken for "not
 * stored", and submitted again under a new id: a duplicate. It is
 * pending, and goes out. */
START_TEST(test_submit_stored_then_poll_fails)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", "/data");
    int taken = 0;
    ketenbus_client_set_handler(fier, s_take, &taken);
    kb_fake_open_session(&s_fake, fier, "fier");
    char fault[600];
    s_fail_seen_write("politie", fault, sizeof fault);
    s_deliver();
    ketenbus_msg_t *m = kb_test_signal("politie", "from fier");
    ketenbus_receipt_t r;
    memset(&r, 0xAB, sizeof r);
    int rc = ketenbus_client_submit(fier, m, &r, 3000);
    ck_assert_int_eq(taken, 1);
    ck_assert_msg(access(fault, F_OK) != 0, "the seen record was never written");
    ck_assert_msg(rc == KETENBUS_EPENDING, "submit of a stored message returned %d: %s", rc, ketenbus_last_error());
    ck_assert_ptr_nonnull(strstr(ketenbus_last_error(), "outbox: write"));
    ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_NONE);
    ck_assert_str_eq(r.message_id, ketenbus_msg_id(m));
    ck_assert_uint_eq(ketenbus_client_outbox_size(fier), 1);
    /* it went out; the seen record is written at the next poll and the
     * delivery acknowledged */
    Ketenbus__Frame *f = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_SUBMIT, 5000);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(kb_fake_receipt(&s_fake, f->submit, KETENBUS__OUTCOME__OUTCOME_ACCEPTED,
                                     KETENBUS__REJECT_CODE__REJECT_NONE, ""),
                     KB_OK);
    ketenbus__frame__free_unpacked(f, NULL);
    s_expect_ack(fier);
    ck_assert_int_eq(ketenbus_client_flush(fier, 5000), KETENBUS_OK);
    ck_assert_int_eq(taken, 1);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* ketenbus_client_ack() that cannot write the seen record (a full disk)
 * returns KETENBUS_EIO: nothing is acknowledged and the message comes
 * again. The broker delivers it again only on a new session, so the
 * client starts one, as for a delivery a handler kept, and recv hands the
 * message out again. */
START_TEST(test_failed_ack_comes_again)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", "/data");
    kb_fake_open_session(&s_fake, fier, "fier");
    s_deliver();
    ketenbus_msg_t *got = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &got, 5000), KETENBUS_OK);
    char fault[600];
    s_fail_seen_write("politie", fault, sizeof fault);
    ck_assert_int_eq(ketenbus_client_ack(fier, got), KETENBUS_EIO);
    ck_assert_msg(access(fault, F_OK) != 0, "the fault did not happen");
    ketenbus_msg_destroy(&got);
    /* a new session within a few seconds, which delivers it again; PINGs
     * are answered, so that the session does not end for silence */
    Ketenbus__Frame *f = NULL;
    for (int64_t end = kb_mono_ms() + 5000; kb_mono_ms() < end;) {
        f = kb_fake_recv(&s_fake, fier, 20);
        if (f && f->body_case == KETENBUS__FRAME__BODY_HELLO)
            break;
        if (f && f->body_case == KETENBUS__FRAME__BODY_PING)
            s_pong(f);
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
        f = NULL;
    }
    ck_assert_msg(f != NULL, "no new session within 5 s of the failed ack");
    ck_assert_int_eq(kb_fake_welcome(&s_fake, "fier", f->request_id), KB_OK);
    ketenbus__frame__free_unpacked(f, NULL);
    s_deliver_tag(8);
    ck_assert_int_eq(ketenbus_client_recv(fier, &got, 5000), KETENBUS_OK);
    ck_assert_str_eq(ketenbus_msg_id(got), ketenbus_msg_id(s_msg));
    ck_assert_int_eq(ketenbus_client_ack(fier, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);
    s_expect_ack_tag(fier, 8);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* Seen records the SDK could not write as a session ended (its log). */
static int s_not_recorded;

static void s_count_not_recorded(int level, const char *line, void *arg)
{
    (void)level;
    (void)arg;
    s_not_recorded += strstr(line, "event=seen_not_recorded") != NULL;
}

/* The handler takes a delivery, and the session ends in the same read,
 * before the acknowledgement goes: the SDK records the message as seen
 * as the session ends. When that write fails (a full disk), the record
 * is written at the next poll that can, and the copy the broker delivers
 * on the next session is acknowledged, not handed to the handler again. */
START_TEST(test_taken_delivery_kept_when_its_record_fails_at_session_end)
{
    s_chain.client_log = s_count_not_recorded;
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", "/data");
    int taken = 0;
    ketenbus_client_set_handler(fier, s_take, &taken);
    kb_fake_open_session(&s_fake, fier, "fier");
    s_drain();
    char fault[600];
    s_fail_seen_write("politie", fault, sizeof fault);
    s_deliver_tag(7);
    ck_assert_int_eq(kb_fake_no_session(&s_fake), KB_OK); /* the broker says the session is gone */
    /* both frames wait before the client reads, so one read takes both */
    usleep(300 * 1000);
    for (int64_t end = kb_mono_ms() + 5000; taken == 0 && kb_mono_ms() < end;)
        ketenbus_client_poll(fier, 10);
    ck_assert_int_eq(taken, 1);
    ck_assert_msg(access(fault, F_OK) != 0, "the seen record was written before the session ended");
    ck_assert_int_eq(s_not_recorded, 1);
    ck_assert(!ketenbus_client_is_connected(fier));
    /* the broker delivers it again on the next session */
    kb_fake_open_session(&s_fake, fier, "fier");
    s_deliver_tag(8);
    s_expect_ack_tag(fier, 8);
    ck_assert_int_eq(taken, 1);
    ketenbus_client_destroy(&fier);
    /* recorded: not handed over after a restart either */
    s_drain();
    fier = kb_chain_client(&s_chain, "fier", "/data");
    ketenbus_client_set_handler(fier, s_take, &taken);
    kb_fake_open_session(&s_fake, fier, "fier");
    s_deliver_tag(9);
    s_expect_ack_tag(fier, 9);
    ck_assert_int_eq(taken, 1);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* ketenbus_client_flush() returns KETENBUS_OK or KETENBUS_ETIMEDOUT only:
 * a poll that fails while it waits, for other work (the seen record of a
 * delivery the handler took cannot be written: a full disk), does not end
 * the wait. Here the receipt came in the same read: flush succeeds, and
 * the failed record is written by a later poll. */
START_TEST(test_flush_waits_through_a_failed_poll)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", "/data");
    int taken = 0;
    ketenbus_client_set_handler(fier, s_take, &taken);
    ketenbus_msg_t *m = kb_test_signal("politie", "from fier");
    ck_assert_int_eq(ketenbus_client_submit(fier, m, NULL, 0), KETENBUS_EPENDING);
    kb_fake_open_session(&s_fake, fier, "fier");
    Ketenbus__Frame *sub = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_SUBMIT, 5000);
    ck_assert_ptr_nonnull(sub);
    char fault[600];
    s_fail_seen_write("politie", fault, sizeof fault);
    s_deliver();
    ck_assert_int_eq(kb_fake_receipt(&s_fake, sub->submit, KETENBUS__OUTCOME__OUTCOME_ACCEPTED,
                                     KETENBUS__REJECT_CODE__REJECT_NONE, ""),
                     KB_OK);
    ketenbus__frame__free_unpacked(sub, NULL);
    usleep(300 * 1000); /* both wait before the client reads */
    int rc = ketenbus_client_flush(fier, 5000);
    ck_assert_msg(rc == KETENBUS_OK, "flush returned %d: %s", rc, ketenbus_last_error());
    ck_assert_int_eq(taken, 1);
    ck_assert_msg(access(fault, F_OK) != 0, "the seen record was never written");
    ck_assert_uint_eq(ketenbus_client_outbox_size(fier), 0);
    s_expect_ack(fier);
    ck_assert_int_eq(taken, 1);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* Deliver s_msg under tags first .. first + n - 1, in one frame (n at
 * most KB_MAX_BATCH). */
static void s_deliver_copies(uint64_t first, size_t n)
{
    Ketenbus__Envelope **envs = calloc(n, sizeof *envs);
    uint64_t *tags = calloc(n, sizeof *tags);
    ck_assert(envs && tags);
    for (size_t i = 0; i < n; i++) {
        envs[i] = s_msg->env;
        tags[i] = first + i;
    }
    ck_assert_int_eq(kb_fake_deliver(&s_fake, envs, tags, n), KB_OK);
    free(tags);
    free(envs);
}

/* Answer the outbox entry of m as accepted, and poll cl until it has the
 * receipt: frames keep their order, so cl has then read what was sent
 * before. */
static void s_barrier(ketenbus_client_t *cl, const ketenbus_msg_t *m)
{
    uint8_t id[16];
    ck_assert_int_eq(kb_uuid_parse(ketenbus_msg_id(m), id), KB_OK);
    Ketenbus__ReceiptEntry e;
    ketenbus__receipt_entry__init(&e);
    e.message_id.data = id;
    e.message_id.len = 16;
    e.outcome = KETENBUS__OUTCOME__OUTCOME_ACCEPTED;
    Ketenbus__ReceiptEntry *ep = &e;
    Ketenbus__Receipt r;
    ketenbus__receipt__init(&r);
    r.n_entries = 1;
    r.entries = &ep;
    Ketenbus__Frame fr;
    ketenbus__frame__init(&fr);
    fr.version = 1;
    fr.body_case = KETENBUS__FRAME__BODY_RECEIPT;
    fr.receipt = &r;
    ck_assert_int_eq(kb_fake_send(&s_fake, &fr), KB_OK);
    size_t before = ketenbus_client_outbox_size(cl);
    for (int64_t end = kb_mono_ms() + 5000; ketenbus_client_outbox_size(cl) == before && kb_mono_ms() < end;)
        ketenbus_client_poll(cl, 10);
    ck_assert_uint_eq(ketenbus_client_outbox_size(cl), before - 1);
}

/* Protocol violations the SDK logged, and the last one's line. */
static int s_violations;
static char s_violation[1024];

static void s_count_violations(int level, const char *line, void *arg)
{
    (void)arg;
    if (strstr(line, "event=protocol_violation")) {
        ck_assert_int_eq(level, 0);
        s_violations++;
        snprintf(s_violation, sizeof s_violation, "%s", line);
    }
}

/* A broker sends copies of a message the adapter holds under ever new
 * tags, beyond the credit the client granted (4): the session ends at the
 * first delivery over it, so the copies the SDK keeps (to acknowledge with
 * the message) never number more than the credit, and none of the flood is
 * kept or acknowledged. Copies within the credit are no violation. */
START_TEST(test_copies_beyond_credit_end_the_session)
{
    s_chain.client_log = s_count_violations;
    ketenbus_client_t *fier = kb_chain_client_credit(&s_chain, "fier", NULL, 4);
    /* outbox entries whose receipts show what the client has read */
    ketenbus_msg_t *marks[2] = {kb_test_signal("politie", "mark 1"), kb_test_signal("politie", "mark 2")};
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(ketenbus_client_submit(fier, marks[i], NULL, 0), KETENBUS_EPENDING);
    kb_fake_open_session(&s_fake, fier, "fier");
    s_drain();
    s_deliver_tag(1);
    ketenbus_msg_t *got = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &got, 5000), KETENBUS_OK);
    s_deliver_copies(2, 3);
    s_barrier(fier, marks[0]);
    ck_assert_int_eq(s_violations, 0);
    ck_assert(ketenbus_client_is_connected(fier));

    for (uint64_t tag = 5; tag < 10005; tag += 1000)
        s_deliver_copies(tag, 1000);
    s_barrier(fier, marks[1]);
    ck_assert_int_eq(s_violations, 1);
    ck_assert_msg(strstr(s_violation, "credit=4 granted=4 delivered=5 dropped=1000"), "%s", s_violation);
    ck_assert(!ketenbus_client_is_connected(fier));

    /* a new session; what the adapter held comes again and is acknowledged
     * with the message, under its new tag only */
    ck_assert_int_eq(ketenbus_client_ack(fier, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);
    kb_fake_open_session(&s_fake, fier, "fier");
    s_deliver_tag(20000);
    size_t tags = 0;
    for (int64_t end = kb_mono_ms() + 1500; kb_mono_ms() < end;) {
        Ketenbus__Frame *f = kb_fake_recv(&s_fake, fier, 100);
        if (f && f->body_case == KETENBUS__FRAME__BODY_ACK)
            for (size_t i = 0; i < f->ack->n_tags; i++) {
                ck_assert_uint_eq(f->ack->tags[i], 20000);
                tags++;
            }
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
    }
    ck_assert_uint_eq(tags, 1);
    ck_assert_int_eq(s_violations, 1);
    ck_assert_int_eq(ketenbus_client_recv(fier, &got, 100), KETENBUS_ETIMEDOUT);
    for (int i = 0; i < 2; i++)
        ketenbus_msg_destroy(&marks[i]);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* The session a second HELLO opens gets the credit the client returned
 * after that HELLO went, on the session of the first: the broker counts
 * it there. With a credit of 4, the first session's one delivery is
 * acknowledged and its credit returned; the second session may then take
 * five deliveries at once, and that is no violation. */
START_TEST(test_credit_returned_before_a_second_welcome_counts)
{
    s_chain.client_log = s_count_violations;
    ketenbus_client_t *fier = kb_chain_client_credit(&s_chain, "fier", NULL, 4);
    ketenbus_msg_t *mark = kb_test_signal("politie", "mark");
    ck_assert_int_eq(ketenbus_client_submit(fier, mark, NULL, 0), KETENBUS_EPENDING);
    Ketenbus__Frame *h1 = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_HELLO, 5000);
    ck_assert_ptr_nonnull(h1);
    Ketenbus__Frame *h2 = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_HELLO, 5000); /* 0.5 s later */
    ck_assert_ptr_nonnull(h2);
    ck_assert_int_eq(kb_fake_welcome(&s_fake, "fier", h1->request_id), KB_OK);
    s_deliver_tag(7);
    ketenbus_msg_t *got = NULL;
    ck_assert_int_eq(ketenbus_client_recv(fier, &got, 5000), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_ack(fier, got), KETENBUS_OK);
    ketenbus_msg_destroy(&got);
    Ketenbus__Frame *cr = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_CREDIT, 5000);
    ck_assert_ptr_nonnull(cr);
    ck_assert_uint_eq(cr->credit->credit, 1);
    ketenbus__frame__free_unpacked(cr, NULL);
    /* the broker read the second HELLO before that CREDIT: 4 + 1 */
    ck_assert_int_eq(kb_fake_welcome(&s_fake, "fier", h2->request_id), KB_OK);
    ketenbus__frame__free_unpacked(h1, NULL);
    ketenbus__frame__free_unpacked(h2, NULL);
    s_deliver_copies(8, 5);
    s_barrier(fier, mark);
    ck_assert_msg(s_violations == 0, "%s", s_violation);
    ck_assert(ketenbus_client_is_connected(fier));
    ketenbus_msg_destroy(&mark);
    ketenbus_client_destroy(&fier);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("sdk_ack");
    TCase *tc = tcase_create("ack");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ack_without_session_survives_restart);
    tcase_add_test(tc, test_recv_skips_copy_of_acknowledged);
    tcase_add_test(tc, test_second_welcome_starts_a_new_session);
    tcase_add_test(tc, test_second_ack_sends_nothing);
    tcase_add_test(tc, test_copy_in_one_burst_acknowledged_with_it);
    tcase_add_test(tc, test_old_copy_acknowledged_first);
    tcase_add_test(tc, test_submit_stored_then_poll_fails);
    tcase_add_test(tc, test_failed_ack_comes_again);
    tcase_add_test(tc, test_taken_delivery_kept_when_its_record_fails_at_session_end);
    tcase_add_test(tc, test_flush_waits_through_a_failed_poll);
    tcase_add_test(tc, test_copies_beyond_credit_end_the_session);
    tcase_add_test(tc, test_credit_returned_before_a_second_welcome_counts);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    (void)argc;
    kb_test_preload_faults(argv);
    return kb_test_run(s_suite());
}
