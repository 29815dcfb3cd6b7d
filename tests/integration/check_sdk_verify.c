/*
 * check_sdk_verify.c - the SDK hands the adapter only deliveries that are
 * what their sender wrote, whatever the broker sends (proto/SIGNING.md,
 * "Verification").
 *
 * The real broker never sends a forged or altered envelope, so a scripted
 * broker (kb_fake.h, a CURVE ROUTER with the broker's key) does: envelopes
 * signed with another agency's key, changed after signing, malformed, or
 * in the broker's own name without being a notice, or addressed to other
 * agencies. None may reach the handler. What cannot be genuine whatever keys are installed is kept in
 * the state directory's quarantine, up to a bound, and only then
 * acknowledged, so that it does not come again in every session; the rest is not acknowledged (a
 * key installed later could make it pass). A genuine notice of the broker
 * is handed out, and so is a message signed with the sender's previous
 * key. A delivery whose sender's key the adapter lacks comes again in a
 * later session and is handed out once the key file is there, or once
 * the file is no longer one that others may write. A key file replaced,
 * rewritten in place or removed stops the old key from passing in the
 * running client, from the next delivery on. Against a
 * real broker: refused deliveries do not hold up the ones behind them, and
 * they expire.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "kb_error.h"
#include "kb_fake.h"
#include "kb_keys.h"
#include "kb_test.h"
#include "kb_util.h"
#include "sdk_internal.h"

static const char *s_agencies[] = {"politie", "fier", "rvdk"};
static kb_chain_t s_chain;
static kb_fake_t s_fake;
static int s_handled;          /* deliveries the handler saw */
static char s_last[128];       /* the last one's narrative, or "notice" */
static int s_refused;          /* event=delivery_refused lines the SDK logged */
static int s_full;             /* event=quarantine_full lines */
static char s_why[1024];       /* the last event=delivery_refused line */

static void s_log(int level, const char *line, void *arg)
{
    (void)arg;
    if (strstr(line, "event=delivery_refused")) {
        ck_assert_int_eq(level, 0); /* an error, not a detail */
        snprintf(s_why, sizeof s_why, "%s", line);
        s_refused++;
    }
    if (strstr(line, "event=quarantine_full")) {
        ck_assert_int_eq(level, 0);
        s_full++;
    }
}

static int s_handler(ketenbus_client_t *c, const ketenbus_msg_t *m, void *arg)
{
    (void)c;
    (void)arg;
    if (ketenbus_msg_kind(m) == KETENBUS_KIND_EXPIRY_NOTICE) {
        snprintf(s_last, sizeof s_last, "notice");
    } else {
        char *text = ketenbus_msg_get(m, "signal.narrative");
        snprintf(s_last, sizeof s_last, "%s", text ? text : "");
        free(text);
    }
    s_handled++;
    return 0;
}

static void s_setup(void)
{
    kb_chain_init(&s_chain, s_agencies, 3, "", ""); /* keys only: no ketenbusd here */
    kb_fake_start(&s_fake, &s_chain);
    s_chain.client_log = s_log;
    s_handled = s_refused = s_full = 0;
    s_last[0] = s_why[0] = '\0';
}

static void s_teardown(void)
{
    kb_fake_stop(&s_fake);
    kb_chain_cleanup(&s_chain);
}

/* The n-th message id of these tests (a UUIDv7). */
static void s_id(uint8_t id[16], uint8_t n)
{
    static const uint8_t base[16] = {0x01, 0x89, 0x0a, 0x5d, 0xac, 0x96, 0x77, 0x4b,
                                     0xbc, 0xce, 0xb3, 0x02, 0x09, 0x9a, 0x80, 0x00};
    memcpy(id, base, 16);
    id[15] = n;
}

/* A signal to fier with narrative, signed by signer, naming sender. */
static ketenbus_msg_t *s_signal(uint8_t n, const char *sender, const char *signer, const char *narrative)
{
    uint8_t id[16];
    s_id(id, n);
    ketenbus_msg_t *m = kb_test_signal("fier", narrative);
    kb_test_sign_with(&s_chain, m, sender, signer, id);
    return m;
}

/* An expiry notice to fier about message n, in the name of sender and
 * signed by signer ("broker": the broker's key). */
static ketenbus_msg_t *s_notice(uint8_t n, const char *sender, const char *signer)
{
    Ketenbus__Envelope *e = malloc(sizeof *e);
    ck_assert_ptr_nonnull(e);
    ketenbus__envelope__init(e);
    e->recipients = calloc(1, sizeof *e->recipients);
    e->legal_basis = malloc(sizeof *e->legal_basis);
    e->notice = malloc(sizeof *e->notice);
    e->correlation_id.data = malloc(16);
    ck_assert(e->recipients && e->legal_basis && e->notice && e->correlation_id.data);
    e->recipients[0] = strdup("fier");
    e->n_recipients = 1;
    e->kind = KETENBUS__KIND__KIND_EXPIRY_NOTICE;
    e->purpose = KETENBUS__PURPOSE__PURPOSE_VICTIM_CARE;
    e->handling = KETENBUS__HANDLING__HANDLING_H0;
    ketenbus__legal_basis__init(e->legal_basis);
    e->legal_basis->basis = strdup("delivery report to the sender");
    e->legal_basis->consent = KETENBUS__CONSENT__CONSENT_NOT_REQUIRED;
    s_id(e->correlation_id.data, 100);
    e->correlation_id.len = 16;
    ketenbus__notice__init(e->notice);
    e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_NOTICE;
    e->notice->type = KETENBUS__NOTICE_TYPE__NOTICE_TYPE_EXPIRED;
    e->notice->about_message_id.data = malloc(16);
    e->notice->agencies = calloc(1, sizeof *e->notice->agencies);
    ck_assert(e->recipients[0] && e->legal_basis->basis && e->notice->about_message_id.data && e->notice->agencies);
    s_id(e->notice->about_message_id.data, 100);
    e->notice->about_message_id.len = 16;
    e->notice->agencies[0] = strdup("rvdk");
    e->notice->n_agencies = 1;
    e->notice->text = strdup("signal was not acknowledged by rvdk before it expired");
    ck_assert(e->notice->agencies[0] && e->notice->text);
    ketenbus_msg_t *m = msg_wrap(e);
    ck_assert_ptr_nonnull(m);
    uint8_t id[16];
    s_id(id, n);
    kb_test_sign_with(&s_chain, m, sender, signer, id);
    return m;
}

/* Deliver msgs[i] under tags[i], all in one DELIVER frame. */
static void s_deliver(ketenbus_msg_t **msgs, const uint64_t *tags, size_t n)
{
    Ketenbus__Envelope *envs[8];
    ck_assert_uint_le(n, 8);
    for (size_t i = 0; i < n; i++)
        envs[i] = msgs[i]->env;
    ck_assert_int_eq(kb_fake_deliver(&s_fake, envs, tags, n), KB_OK);
}

/* Collect the tags cl acknowledges until tag `until` is among them (within
 * 5 s); returns how many were collected into tags (at most max). */
static size_t s_acks_until(ketenbus_client_t *cl, uint64_t until, uint64_t *tags, size_t max)
{
    size_t n = 0;
    int seen = 0;
    int64_t end = kb_mono_ms() + 5000;
    while (!seen && kb_mono_ms() < end) {
        Ketenbus__Frame *f = kb_fake_expect(&s_fake, cl, KETENBUS__FRAME__BODY_ACK, 200);
        if (!f)
            continue;
        for (size_t i = 0; i < f->ack->n_tags; i++) {
            seen |= f->ack->tags[i] == until;
            if (n < max)
                tags[n++] = f->ack->tags[i];
        }
        ketenbus__frame__free_unpacked(f, NULL);
    }
    ck_assert_msg(seen, "tag %llu was not acknowledged within 5 s", (unsigned long long)until);
    return n;
}

/* Copy NAME.sign.pub.pem of directory from to directory to, as AS.sign.pub.pem. */
static void s_copy_key(const char *from, const char *name, const char *to, const char *as)
{
    char src[600], dst[600];
    snprintf(src, sizeof src, "%s/%s.sign.pub.pem", from, name);
    snprintf(dst, sizeof dst, "%s/%s.sign.pub.pem", to, as);
    char *pem = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_file_read(src, 1 << 16, &pem, &len), KB_OK);
    ck_assert_int_eq(kb_file_write(dst, pem, len, 0644), KB_OK);
    free(pem);
}

/* The envelopes in state_dir/quarantine (*.pb files), each unpacked into
 * got[] (at most max; free with ketenbus__envelope__free_unpacked); how
 * many there are. Each has its reason beside it (*.txt). */
static size_t s_quarantined(const char *state_dir, Ketenbus__Envelope **got, size_t max)
{
    char dir[1024], path[2048];
    snprintf(dir, sizeof dir, "%s/quarantine", state_dir);
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "no quarantine directory in %s", state_dir);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 4 || strcmp(de->d_name + len - 3, ".pb") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%.*s.txt", dir, (int)(len - 3), de->d_name);
        ck_assert_msg(access(path, R_OK) == 0, "no reason beside %s", de->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        char *bytes = NULL;
        size_t blen = 0;
        ck_assert_int_eq(kb_file_read(path, 1 << 20, &bytes, &blen), KB_OK);
        Ketenbus__Envelope *e = ketenbus__envelope__unpack(NULL, blen, (const uint8_t *)bytes);
        free(bytes);
        ck_assert_msg(e != NULL, "%s does not hold an envelope", path);
        if (n < max)
            got[n] = e;
        else
            ketenbus__envelope__free_unpacked(e, NULL);
        n++;
    }
    closedir(d);
    return n;
}

/* Forged, altered, malformed and misattributed deliveries are not handed
 * out. What cannot be genuine whatever keys are installed (a notice not
 * from the broker, a message in the broker's name that is not one) is
 * quarantined, then acknowledged; the rest stays queued at the broker (a
 * key or schema this adapter lacks could make it pass, and acknowledging
 * it would lose it). The genuine one among them is handed out. */
START_TEST(test_only_genuine_deliveries_handed_out)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_client_set_handler(fier, s_handler, NULL);
    kb_fake_open_session(&s_fake, fier, "fier");
    ketenbus_msg_t *m[7];
    m[0] = s_signal(1, "politie", "rvdk", "in politie's name, signed by rvdk");
    m[1] = s_signal(2, "politie", "politie", "as politie wrote it");
    ck_assert_int_eq(ketenbus_msg_set(m[1], "signal.narrative", "changed on the way"), KETENBUS_OK);
    m[2] = s_signal(3, "politie", "politie", "without a signature");
    free(m[2]->env->signature.data);
    m[2]->env->signature.data = NULL;
    m[2]->env->signature.len = 0;
    m[3] = s_signal(4, "scripted", "broker", "a signal in the broker's name");
    m[4] = s_notice(5, "politie", "politie"); /* a notice not from the broker */
    m[5] = s_signal(6, "broker", "broker", "as agency 'broker', with the broker's key");
    m[6] = s_signal(7, "politie", "politie", "genuine");
    const uint64_t tags[] = {1, 2, 3, 4, 5, 6, 7};
    s_deliver(m, tags, 7);
    int seen[8] = {0};
    for (int64_t end = kb_mono_ms() + 5000; !(seen[4] && seen[5] && seen[6] && seen[7]) && kb_mono_ms() < end;) {
        Ketenbus__Frame *f = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_ACK, 200);
        for (size_t i = 0; f && i < f->ack->n_tags; i++)
            if (f->ack->tags[i] >= 1 && f->ack->tags[i] <= 7)
                seen[f->ack->tags[i]] = 1;
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
    }
    for (int t = 4; t <= 7; t++)
        ck_assert_msg(seen[t], "delivery %d was not acknowledged", t);
    for (int t = 1; t <= 3; t++)
        ck_assert_msg(!seen[t], "delivery %d was acknowledged: a key installed later could have passed it", t);
    ck_assert_int_eq(s_handled, 1);
    ck_assert_str_eq(s_last, "genuine");
    ck_assert_int_eq(s_refused, 6);
    /* what was acknowledged without being handed out is kept */
    char state[512];
    snprintf(state, sizeof state, "%s/state-fier", s_chain.dir);
    Ketenbus__Envelope *q[8];
    size_t nq = s_quarantined(state, q, 8);
    ck_assert_uint_eq(nq, 3);
    int notices = 0;
    for (size_t i = 0; i < nq; i++) {
        notices += q[i]->kind == KETENBUS__KIND__KIND_EXPIRY_NOTICE && strcmp(q[i]->sender, "politie") == 0;
        ketenbus__envelope__free_unpacked(q[i], NULL);
    }
    ck_assert_int_eq(notices, 1);
    /* and the copy without the change is taken: the refusal was for the
     * change, not for the message */
    uint64_t acked[16];
    ck_assert_int_eq(ketenbus_msg_set(m[1], "signal.narrative", "as politie wrote it"), KETENBUS_OK);
    const uint64_t again[] = {8};
    s_deliver(&m[1], again, 1);
    s_acks_until(fier, 8, acked, 16);
    ck_assert_int_eq(s_handled, 2);
    ck_assert_str_eq(s_last, "as politie wrote it");
    for (size_t i = 0; i < 7; i++)
        ketenbus_msg_destroy(&m[i]);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* The withheld list is the broker's, unsigned: an entry that explains no
 * withheld seal (a field the sender never wrote, or one still there and
 * verified) is refused like any other change on the way, and the delivery
 * is not acknowledged. The same message without it is handed out. */
START_TEST(test_phantom_withheld_not_handed_out)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_client_set_handler(fier, s_handler, NULL);
    kb_fake_open_session(&s_fake, fier, "fier");
    static const char *const claims[] = {"signal.cross_border", "signal.narrative"};
    ketenbus_msg_t *m[3];
    for (size_t i = 0; i < 2; i++) {
        m[i] = s_signal((uint8_t)(i + 1), "politie", "politie", "phantom");
        Ketenbus__Envelope *e = m[i]->env;
        e->withheld = calloc(1, sizeof *e->withheld);
        ck_assert_ptr_nonnull(e->withheld);
        e->withheld[0] = strdup(claims[i]);
        ck_assert_ptr_nonnull(e->withheld[0]);
        e->n_withheld = 1;
    }
    m[2] = s_signal(3, "politie", "politie", "genuine");
    const uint64_t tags[] = {1, 2, 3};
    s_deliver(m, tags, 3);
    uint64_t acked[16];
    size_t n = s_acks_until(fier, 3, acked, 16);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(acked[i] == 3, "delivery %llu was acknowledged", (unsigned long long)acked[i]);
    ck_assert_int_eq(s_handled, 1);
    ck_assert_str_eq(s_last, "genuine");
    ck_assert_int_eq(s_refused, 2);
    ck_assert_msg(strstr(s_why, "withheld 0 (signal.narrative)") != NULL, "reason: %s", s_why);
    for (size_t i = 0; i < 3; i++)
        ketenbus_msg_destroy(&m[i]);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* The broker's own notice, signed with its key, is handed out. */
START_TEST(test_broker_notice_handed_out)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_client_set_handler(fier, s_handler, NULL);
    kb_fake_open_session(&s_fake, fier, "fier");
    ketenbus_msg_t *m = s_notice(1, "scripted", "broker");
    const uint64_t tag = 1;
    s_deliver(&m, &tag, 1);
    uint64_t acked[4];
    s_acks_until(fier, 1, acked, 4);
    ck_assert_int_eq(s_handled, 1);
    ck_assert_str_eq(s_last, "notice");
    ck_assert_int_eq(s_refused, 0);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* Name the recipients to[0..n) in m (none: n = 0) and sign it again as
 * message n_id of sender, with signer's key. */
static void s_address(ketenbus_msg_t *m, uint8_t n_id, const char *sender, const char *signer, const char *const *to,
                      size_t n)
{
    Ketenbus__Envelope *e = m->env;
    for (size_t i = 0; i < e->n_recipients; i++)
        free(e->recipients[i]);
    free(e->recipients);
    e->recipients = NULL;
    e->n_recipients = 0;
    if (n > 0) {
        e->recipients = calloc(n, sizeof *e->recipients);
        ck_assert_ptr_nonnull(e->recipients);
    }
    for (size_t i = 0; i < n; i++) {
        e->recipients[i] = strdup(to[i]);
        ck_assert_ptr_nonnull(e->recipients[i]);
        e->n_recipients++;
    }
    uint8_t id[16];
    s_id(id, n_id);
    kb_test_sign_with(&s_chain, m, sender, signer, id);
}

/* A genuine envelope whose recipients do not name fier was sent to
 * others: the broker queues an envelope only for the agencies it names
 * (never a group: the broker does not expand one there), so this one
 * cannot be genuine for fier whatever keys it has, and is quarantined and
 * acknowledged. Named among others, or not named because none are (a
 * fan-out), fier takes it; so too the broker's notices. */
START_TEST(test_delivery_for_others_quarantined)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_client_set_handler(fier, s_handler, NULL);
    kb_fake_open_session(&s_fake, fier, "fier");
    static const char *const rvdk[] = {"rvdk"}, *const both[] = {"rvdk", "fier"};
    ketenbus_msg_t *m[5];
    m[0] = kb_test_signal(NULL, "for rvdk only");
    s_address(m[0], 1, "politie", "politie", rvdk, 1);
    m[1] = kb_test_signal(NULL, "for rvdk and fier");
    s_address(m[1], 2, "politie", "politie", both, 2);
    m[2] = kb_test_signal(NULL, "fanned out");
    s_address(m[2], 3, "politie", "politie", NULL, 0);
    m[3] = s_notice(4, "scripted", "broker");
    s_address(m[3], 4, "scripted", "broker", rvdk, 1);
    m[4] = s_notice(5, "scripted", "broker");
    s_address(m[4], 5, "scripted", "broker", NULL, 0);
    const uint64_t tags[] = {1, 2, 3, 4, 5};
    s_deliver(m, tags, 5);
    int seen[6] = {0};
    for (int64_t end = kb_mono_ms() + 5000; !(seen[1] && seen[2] && seen[3] && seen[4] && seen[5]) &&
                                             kb_mono_ms() < end;) {
        Ketenbus__Frame *f = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_ACK, 200);
        for (size_t i = 0; f && i < f->ack->n_tags; i++)
            if (f->ack->tags[i] >= 1 && f->ack->tags[i] <= 5)
                seen[f->ack->tags[i]] = 1;
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
    }
    for (int t = 1; t <= 5; t++)
        ck_assert_msg(seen[t], "delivery %d was not acknowledged", t);
    ck_assert_int_eq(s_handled, 3);
    ck_assert_int_eq(s_refused, 2);
    char state[512];
    snprintf(state, sizeof state, "%s/state-fier", s_chain.dir);
    Ketenbus__Envelope *q[4];
    size_t nq = s_quarantined(state, q, 4);
    ck_assert_uint_eq(nq, 2);
    for (size_t i = 0; i < nq; i++) {
        ck_assert_uint_eq(q[i]->n_recipients, 1);
        ck_assert_str_eq(q[i]->recipients[0], "rvdk");
        ketenbus__envelope__free_unpacked(q[i], NULL);
    }
    for (size_t i = 0; i < 5; i++)
        ketenbus_msg_destroy(&m[i]);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* fier's client of chain with the given credit, checking deliveries with
 * the keys in dir senders (made empty). */
static ketenbus_client_t *s_fier_client(kb_chain_t *chain, unsigned credit, char *senders, size_t len)
{
    snprintf(senders, len, "%s/senders", chain->dir);
    ck_assert_int_eq(kb_mkdirs(senders, 0700), KB_OK);
    char state[512];
    snprintf(state, sizeof state, "%s/state-fier", chain->dir);
    ketenbus_client_opts_t *o = ketenbus_client_opts_new();
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(ketenbus_client_opts_set_agency(o, "fier", chain->keys), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_signing_keys(o, senders), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_broker(o, chain->endpoint, chain->broker_cert), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_state_dir(o, state), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_log(o, s_log, NULL), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_credit(o, credit), KETENBUS_OK);
    ketenbus_client_t *fier = ketenbus_client_new(o);
    ketenbus_client_opts_destroy(&o);
    ck_assert_ptr_nonnull(fier);
    ketenbus_client_set_handler(fier, s_handler, NULL);
    return fier;
}

/* The same against the scripted broker, with a session open. */
static ketenbus_client_t *s_fier_with_senders(char *senders, size_t len)
{
    ketenbus_client_t *fier = s_fier_client(&s_chain, 64, senders, len);
    kb_fake_open_session(&s_fake, fier, "fier");
    return fier;
}

/* Deliver m under tag and see it refused and not acknowledged. */
static void s_refused_unacked(ketenbus_client_t *fier, ketenbus_msg_t *m, uint64_t tag)
{
    int refused = s_refused, handled = s_handled;
    s_deliver(&m, &tag, 1);
    for (int64_t end = kb_mono_ms() + 5000; s_refused == refused && kb_mono_ms() < end;)
        ketenbus_client_poll(fier, 10);
    ck_assert_int_eq(s_refused, refused + 1);
    ck_assert_int_eq(s_handled, handled);
    /* an acknowledgement would come with the next poll: none for half a second */
    for (int64_t end = kb_mono_ms() + 500; kb_mono_ms() < end;) {
        Ketenbus__Frame *f = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_ACK, 100);
        for (size_t i = 0; f && i < f->ack->n_tags; i++)
            ck_assert_msg(f->ack->tags[i] != tag, "the refused delivery was acknowledged: it would be lost");
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
    }
}

/* The SDK starts its session again (after 1 s), and the broker delivers
 * m under tag: it is handed out now, and only that tag is acknowledged
 * (never one of a refused delivery of the session before). */
static void s_taken_in_next_session(ketenbus_client_t *fier, ketenbus_msg_t *m, const char *narrative, uint64_t tag)
{
    int handled = s_handled;
    Ketenbus__Frame *f = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_HELLO, 5000);
    ck_assert_msg(f != NULL, "no new session asked for within 5 s");
    ck_assert_int_eq(kb_fake_welcome(&s_fake, "fier", f->request_id), KB_OK);
    ketenbus__frame__free_unpacked(f, NULL);
    for (int64_t end = kb_mono_ms() + 5000; !ketenbus_client_is_connected(fier) && kb_mono_ms() < end;)
        ketenbus_client_poll(fier, 10);
    s_deliver(&m, &tag, 1);
    uint64_t acked[4];
    size_t n = s_acks_until(fier, tag, acked, 4);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(acked[i], tag);
    ck_assert_int_eq(s_handled, handled + 1);
    ck_assert_str_eq(s_last, narrative);
}

/* Without politie's key file the delivery waits at the broker; the SDK
 * asks for it again in a new session, and takes it once the file is there. */
START_TEST(test_missing_key_delivery_comes_again)
{
    char senders[512];
    ketenbus_client_t *fier = s_fier_with_senders(senders, sizeof senders);
    ketenbus_msg_t *m = s_signal(1, "politie", "politie", "waits for the key");
    s_refused_unacked(fier, m, 1);
    s_copy_key(s_chain.keys, "politie", senders, "politie"); /* the adapter's operator adds the key */
    s_taken_in_next_session(fier, m, "waits for the key", 2);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* A sender's key file that others may write is no trust anchor: anyone
 * who may write it could pass their own signatures off as politie's. The
 * delivery waits at the broker, with the reason logged, until the file is
 * made safe. */
START_TEST(test_writable_sender_key_refused)
{
    char senders[512], path[600];
    ketenbus_client_t *fier = s_fier_with_senders(senders, sizeof senders);
    s_copy_key(s_chain.keys, "politie", senders, "politie");
    snprintf(path, sizeof path, "%s/politie.sign.pub.pem", senders);
    ck_assert_int_eq(chmod(path, 0666), 0);
    ketenbus_msg_t *m = s_signal(1, "politie", "politie", "waits for a safe key file");
    s_refused_unacked(fier, m, 1);
    ck_assert_msg(strstr(s_why, "politie.sign.pub.pem") && strstr(s_why, "chmod go-w"), "%s", s_why);
    ck_assert_int_eq(chmod(path, 0644), 0);
    s_taken_in_next_session(fier, m, "waits for a safe key file", 2);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* After politie's signing key was replaced, a message it signed before
 * and still queued for fier is refused while fier knows only the new key,
 * and not acknowledged (it is genuine); it is handed out once the old key
 * is there as politie.previous. */
START_TEST(test_previous_key_accepted)
{
    char senders[512], fresh[512];
    snprintf(fresh, sizeof fresh, "%s/fresh", s_chain.dir);
    ck_assert_int_eq(kb_keys_generate(fresh, "politie", 0), KB_OK);
    ketenbus_client_t *fier = s_fier_with_senders(senders, sizeof senders);
    s_copy_key(fresh, "politie", senders, "politie");
    ketenbus_msg_t *m = s_signal(1, "politie", "politie", "signed with the old key");
    s_refused_unacked(fier, m, 1);
    s_copy_key(s_chain.keys, "politie", senders, "politie.previous");
    s_taken_in_next_session(fier, m, "signed with the old key", 2);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* Deliver m under tag in the open session and see it handed out and
 * acknowledged. */
static void s_handed_out(ketenbus_client_t *fier, ketenbus_msg_t *m, uint64_t tag, const char *narrative)
{
    int handled = s_handled;
    s_deliver(&m, &tag, 1);
    uint64_t acked[4];
    s_acks_until(fier, tag, acked, 4);
    ck_assert_int_eq(s_handled, handled + 1);
    ck_assert_str_eq(s_last, narrative);
}

/* politie's key leaked, and the operator put its new key in place of the
 * old one (renamed over it, with no politie.previous). fier's running
 * client, which had checked a delivery with the old key, trusts the old
 * key no more from the next delivery on, and takes the new one. It must
 * not wait for a delivery to fail before it reads the file again: a
 * broker that was broken into chooses what it delivers, and would keep
 * the leaked key trusted. */
START_TEST(test_replaced_key_not_trusted)
{
    char senders[512];
    ck_assert_int_eq(kb_keys_generate(s_chain.keys, "politie-new", 0), KB_OK);
    ketenbus_client_t *fier = s_fier_with_senders(senders, sizeof senders);
    s_copy_key(s_chain.keys, "politie", senders, "politie");
    ketenbus_msg_t *m[3];
    m[0] = s_signal(1, "politie", "politie", "before the key leaked");
    s_handed_out(fier, m[0], 1, "before the key leaked");
    s_copy_key(s_chain.keys, "politie-new", senders, "politie");
    m[1] = s_signal(2, "politie", "politie", "signed with the leaked key");
    s_refused_unacked(fier, m[1], 2);
    ck_assert_msg(strstr(s_why, "not what politie signed"), "%s", s_why);
    m[2] = s_signal(3, "politie", "politie-new", "signed with the new key");
    s_taken_in_next_session(fier, m[2], "signed with the new key", 3);
    for (size_t i = 0; i < 3; i++)
        ketenbus_msg_destroy(&m[i]);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* Write NAME.sign.pub.pem of directory from over the file path in place,
 * as an editor that does not rename does: the same inode, and the same
 * length (every Ed25519 key's PEM has it), so only the file's times tell
 * that it changed. Written again until its change time moved, which it
 * does unless the file system's clock has not ticked since the file was
 * last written. */
static void s_rewrite_key(const char *from, const char *name, const char *path)
{
    char src[600];
    snprintf(src, sizeof src, "%s/%s.sign.pub.pem", from, name);
    char *pem = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_file_read(src, 1 << 16, &pem, &len), KB_OK);
    struct stat before, after;
    ck_assert_int_eq(stat(path, &before), 0);
    int64_t end = kb_mono_ms() + 1000;
    do {
        int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, pem, len), (ssize_t)len);
        ck_assert_int_eq(fstat(fd, &after), 0);
        ck_assert_int_eq(close(fd), 0);
    } while (after.st_ctim.tv_sec == before.st_ctim.tv_sec && after.st_ctim.tv_nsec == before.st_ctim.tv_nsec &&
             kb_mono_ms() < end);
    ck_assert_uint_eq(after.st_ino, before.st_ino);
    ck_assert_uint_eq(after.st_dev, before.st_dev);
    ck_assert_int_eq(after.st_size, before.st_size);
    free(pem);
}

/* The same when the key file is rewritten in place rather than replaced. */
START_TEST(test_key_rewritten_in_place_not_trusted)
{
    char senders[512], path[600];
    ck_assert_int_eq(kb_keys_generate(s_chain.keys, "politie-new", 0), KB_OK);
    ketenbus_client_t *fier = s_fier_with_senders(senders, sizeof senders);
    s_copy_key(s_chain.keys, "politie", senders, "politie");
    snprintf(path, sizeof path, "%s/politie.sign.pub.pem", senders);
    ketenbus_msg_t *m[3];
    m[0] = s_signal(1, "politie", "politie", "before the key leaked");
    s_handed_out(fier, m[0], 1, "before the key leaked");
    s_rewrite_key(s_chain.keys, "politie-new", path);
    m[1] = s_signal(2, "politie", "politie", "signed with the leaked key");
    s_refused_unacked(fier, m[1], 2);
    ck_assert_msg(strstr(s_why, "not what politie signed"), "%s", s_why);
    m[2] = s_signal(3, "politie", "politie-new", "signed with the new key");
    s_taken_in_next_session(fier, m[2], "signed with the new key", 3);
    for (size_t i = 0; i < 3; i++)
        ketenbus_msg_destroy(&m[i]);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* With politie's key file removed, the running client no longer has a
 * key for politie, though it had checked a delivery with it: politie's
 * deliveries are refused (and stay queued) as for a sender whose key was
 * never installed, and pass again once the file is back. */
START_TEST(test_removed_key_not_trusted)
{
    char senders[512], path[600];
    ketenbus_client_t *fier = s_fier_with_senders(senders, sizeof senders);
    s_copy_key(s_chain.keys, "politie", senders, "politie");
    snprintf(path, sizeof path, "%s/politie.sign.pub.pem", senders);
    ketenbus_msg_t *m[2];
    m[0] = s_signal(1, "politie", "politie", "before the key was removed");
    s_handed_out(fier, m[0], 1, "before the key was removed");
    ck_assert_int_eq(unlink(path), 0);
    m[1] = s_signal(2, "politie", "politie", "after the key was removed");
    s_refused_unacked(fier, m[1], 2);
    ck_assert_msg(strstr(s_why, "no file") && strstr(s_why, "politie.sign.pub.pem"), "%s", s_why);
    s_copy_key(s_chain.keys, "politie", senders, "politie");
    s_taken_in_next_session(fier, m[1], "after the key was removed", 3);
    for (size_t i = 0; i < 2; i++)
        ketenbus_msg_destroy(&m[i]);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* The next HELLO of cl within timeout_ms, answering its PINGs meanwhile
 * (a broker that does not would make it give the session up), or NULL. */
static Ketenbus__Frame *s_next_hello(ketenbus_client_t *cl, int timeout_ms)
{
    for (int64_t end = kb_mono_ms() + timeout_ms; kb_mono_ms() < end;) {
        Ketenbus__Frame *f = kb_fake_recv(&s_fake, cl, 100);
        if (f && f->body_case == KETENBUS__FRAME__BODY_HELLO)
            return f;
        if (f && f->body_case == KETENBUS__FRAME__BODY_PING)
            ck_assert_int_eq(kb_fake_pong(&s_fake, f), KB_OK);
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
    }
    return NULL;
}

/* A delivery refused again and again makes the SDK start its session
 * again after 1 s, then 2 s, ...: the wait grows although an older
 * delivery that passes (taken by recv, not yet acknowledged) comes before
 * it each time. */
START_TEST(test_refusal_restarts_back_off)
{
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL); /* recv: no handler */
    kb_fake_open_session(&s_fake, fier, "fier");
    ketenbus_msg_t *m[2] = {s_signal(1, "politie", "politie", "genuine, not acknowledged yet"),
                            s_signal(2, "politie", "rvdk", "not what politie signed")};
    int64_t hello[2] = {0, 0};
    for (int round = 0; round < 2; round++) {
        const uint64_t tags[2] = {2 * (uint64_t)round + 1, 2 * (uint64_t)round + 2};
        s_deliver(m, tags, 2);
        ketenbus_msg_t *got = NULL;
        ck_assert_int_eq(ketenbus_client_recv(fier, &got, 5000), KETENBUS_OK);
        ketenbus_msg_destroy(&got); /* taken, not acknowledged */
        Ketenbus__Frame *f = s_next_hello(fier, 10000);
        ck_assert_msg(f != NULL, "round %d: no new session asked for within 10 s", round);
        hello[round] = kb_mono_ms();
        ck_assert_int_eq(kb_fake_welcome(&s_fake, "fier", f->request_id), KB_OK);
        ketenbus__frame__free_unpacked(f, NULL);
        for (int64_t end = kb_mono_ms() + 5000; !ketenbus_client_is_connected(fier) && kb_mono_ms() < end;)
            ketenbus_client_poll(fier, 10);
    }
    ck_assert_int_eq(s_refused, 2);
    /* the second wait is 2 s from the second refusal, which came after the
     * first restart's WELCOME */
    ck_assert_msg(hello[1] - hello[0] >= 1900, "restarts %lld ms apart: the wait did not grow",
                  (long long)(hello[1] - hello[0]));
    ketenbus_msg_destroy(&m[0]);
    ketenbus_msg_destroy(&m[1]);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* A delivery the SDK cannot even tell apart (no message id) is dropped,
 * not acknowledged, and like a refused one it gives its credit back and
 * is asked for again in a new session. */
START_TEST(test_malformed_delivery_gives_credit_back)
{
    char senders[512];
    ketenbus_client_t *fier = s_fier_with_senders(senders, sizeof senders);
    ketenbus_msg_t *m = s_signal(1, "politie", "politie", "no id");
    free(m->env->message_id.data);
    m->env->message_id.data = NULL;
    m->env->message_id.len = 0;
    const uint64_t tag = 1;
    s_deliver(&m, &tag, 1);
    uint32_t credit = 0;
    for (int64_t end = kb_mono_ms() + 5000; credit == 0 && kb_mono_ms() < end;) {
        ketenbus_client_poll(fier, 10);
        Ketenbus__Frame *f = kb_fake_recv(&s_fake, fier, 10);
        if (f && f->body_case == KETENBUS__FRAME__BODY_ACK)
            ck_abort_msg("a delivery that was not handed out was acknowledged");
        if (f && f->body_case == KETENBUS__FRAME__BODY_CREDIT)
            credit = f->credit->credit;
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
    }
    ck_assert_uint_eq(credit, 1);
    Ketenbus__Frame *f = s_next_hello(fier, 5000);
    ck_assert_msg(f != NULL, "not asked for again in a new session");
    ketenbus__frame__free_unpacked(f, NULL);
    ck_assert_int_eq(s_handled, 0);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* While only refused deliveries wait, the restarts back off further (up
 * to ten minutes: each one delivers and audits them all again), but a
 * key file put into the key directory starts the session at once: here
 * after the third refusal, whose wait would be 4 s. */
START_TEST(test_key_installed_restarts_at_once)
{
    char senders[512];
    ketenbus_client_t *fier = s_fier_with_senders(senders, sizeof senders);
    ketenbus_msg_t *m = s_signal(1, "politie", "politie", "waits for the key");
    for (uint64_t tag = 1; tag <= 3; tag++) {
        s_deliver(&m, &tag, 1);
        for (int64_t end = kb_mono_ms() + 5000; s_refused < (int)tag && kb_mono_ms() < end;)
            ketenbus_client_poll(fier, 10);
        ck_assert_int_eq(s_refused, (int)tag);
        if (tag == 3)
            break;
        Ketenbus__Frame *f = s_next_hello(fier, 10000);
        ck_assert_msg(f != NULL, "no new session after refusal %llu", (unsigned long long)tag);
        ck_assert_int_eq(kb_fake_welcome(&s_fake, "fier", f->request_id), KB_OK);
        ketenbus__frame__free_unpacked(f, NULL);
        for (int64_t end = kb_mono_ms() + 5000; !ketenbus_client_is_connected(fier) && kb_mono_ms() < end;)
            ketenbus_client_poll(fier, 10);
    }
    int64_t installed = kb_mono_ms();
    s_copy_key(s_chain.keys, "politie", senders, "politie");
    Ketenbus__Frame *f = s_next_hello(fier, 10000);
    ck_assert_ptr_nonnull(f);
    int64_t waited = kb_mono_ms() - installed;
    ck_assert_msg(waited < 2500, "the session started again %lld ms after the key came", (long long)waited);
    ck_assert_int_eq(kb_fake_welcome(&s_fake, "fier", f->request_id), KB_OK);
    ketenbus__frame__free_unpacked(f, NULL);
    for (int64_t end = kb_mono_ms() + 5000; !ketenbus_client_is_connected(fier) && kb_mono_ms() < end;)
        ketenbus_client_poll(fier, 10);
    const uint64_t tag = 4;
    s_deliver(&m, &tag, 1);
    uint64_t acked[4];
    s_acks_until(fier, 4, acked, 4);
    ck_assert_int_eq(s_handled, 1);
    ketenbus_msg_destroy(&m);
    ketenbus_client_destroy(&fier);
}
END_TEST

/* A rule may withhold fields the sender must fill in (the kind of
 * exploitation, the action a referral asks for): the copy the recipient
 * gets holds their defaults and lists them as withheld, and the SDK hands
 * it out as genuine. Against a real broker. */
START_TEST(test_withheld_required_fields_handed_out)
{
    kb_chain_t chain;
    kb_chain_init(&chain, s_agencies, 3,
                  "  - id: politie-rvdk\n    from: [politie]\n    to: [rvdk]\n    kinds: [signal, referral]\n"
                  "    purposes: [victim_care, child_protection]\n    max_handling: h3\n"
                  "    legal_basis: Wpg art. 19\n"
                  "    redact: [signal.exploitation, referral.action, referral.signal.exploitation]\n",
                  "");
    kb_chain_start(&chain);
    ketenbus_client_t *politie = kb_chain_client(&chain, "politie", NULL);
    ketenbus_client_t *rvdk = kb_chain_client(&chain, "rvdk", NULL);
    ketenbus_msg_t *m[2] = {kb_test_signal("rvdk", "kind withheld"), kb_test_referral("rvdk")};
    for (int i = 0; i < 2; i++) {
        ketenbus_receipt_t r;
        ck_assert_msg(ketenbus_client_submit(politie, m[i], &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
        ck_assert_int_eq(r.outcome, KETENBUS_OUTCOME_ACCEPTED);
        ketenbus_msg_destroy(&m[i]);
    }
    for (int i = 0; i < 2; i++) {
        ketenbus_msg_t *got = NULL;
        ck_assert_msg(ketenbus_client_recv(rvdk, &got, 5000) == KETENBUS_OK, "delivery %d not handed out: %s", i,
                      ketenbus_last_error());
        int signal = ketenbus_msg_kind(got) == KETENBUS_KIND_SIGNAL;
        ck_assert_uint_eq(ketenbus_msg_withheld_count(got), signal ? 1 : 2);
        ck_assert_str_eq(ketenbus_msg_withheld(got, 0), signal ? "signal.exploitation" : "referral.action");
        ck_assert_int_eq(ketenbus_client_ack(rvdk, got), KETENBUS_OK);
        ketenbus_msg_destroy(&got);
    }
    ketenbus_client_destroy(&politie);
    ketenbus_client_destroy(&rvdk);
    kb_chain_cleanup(&chain);
}
END_TEST

static int s_handled_one(void *arg)
{
    (void)arg;
    return s_handled > 0;
}

/* Refused deliveries stay queued, and the broker sends them first in every
 * session; each gives its credit back, so more of them than the credit do
 * not stop the deliveries behind them. Against a real broker: fier lacks
 * politie's key, not rvdk's, and takes 2 deliveries at a time. */
START_TEST(test_refused_deliveries_do_not_stop_the_rest)
{
    kb_chain_t chain;
    kb_chain_init(&chain, s_agencies, 3,
                  "  - id: to-fier\n    from: [politie, rvdk]\n    to: [fier]\n    kinds: [signal]\n"
                  "    purposes: [victim_care]\n    max_handling: h3\n    legal_basis: Wpg art. 19\n",
                  "");
    kb_chain_start(&chain);
    s_handled = s_refused = 0;
    s_last[0] = '\0';
    ketenbus_client_t *politie = kb_chain_client(&chain, "politie", NULL);
    ketenbus_client_t *rvdk = kb_chain_client(&chain, "rvdk", NULL);
    for (int i = 0; i < 5; i++) {
        ketenbus_msg_t *m = kb_test_signal("fier", "refused: fier lacks politie's key");
        ketenbus_receipt_t r;
        ck_assert_msg(ketenbus_client_submit(politie, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
        ketenbus_msg_destroy(&m);
    }
    ketenbus_msg_t *m = kb_test_signal("fier", "from rvdk, behind them");
    ketenbus_receipt_t r;
    ck_assert_msg(ketenbus_client_submit(rvdk, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
    ketenbus_msg_destroy(&m);
    char senders[512];
    ketenbus_client_t *fier = s_fier_client(&chain, 2, senders, sizeof senders);
    s_copy_key(chain.keys, "rvdk", senders, "rvdk");
    ck_assert_msg(kb_wait_until(fier, s_handled_one, NULL, 8000), "rvdk's message did not come past %d refusals",
                  s_refused);
    ck_assert_str_eq(s_last, "from rvdk, behind them");
    ck_assert_int_ge(s_refused, 5);
    ketenbus_client_destroy(&fier);
    ketenbus_client_destroy(&politie);
    ketenbus_client_destroy(&rvdk);
    kb_chain_cleanup(&chain);
}
END_TEST

/* Refused deliveries are in flight while a session lasts, and each new
 * session gets them again; past message_ttl the broker no longer hands
 * them out, so they expire, and their sender is told. */
START_TEST(test_refused_deliveries_expire)
{
    kb_chain_t chain;
    kb_chain_init(&chain, s_agencies, 3,
                  "  - id: to-fier\n    from: [politie]\n    to: [fier]\n    kinds: [signal]\n"
                  "    purposes: [victim_care]\n    max_handling: h3\n    legal_basis: Wpg art. 19\n",
                  "  message_ttl: 2s\n");
    kb_chain_start(&chain);
    s_handled = s_refused = 0;
    ketenbus_client_t *politie = kb_chain_client(&chain, "politie", NULL);
    for (int i = 0; i < 3; i++) {
        ketenbus_msg_t *m = kb_test_signal("fier", "refused until it expires");
        ketenbus_receipt_t r;
        ck_assert_msg(ketenbus_client_submit(politie, m, &r, 5000) == KETENBUS_OK, "%s", ketenbus_last_error());
        ketenbus_msg_destroy(&m);
    }
    char senders[512];
    ketenbus_client_t *fier = s_fier_client(&chain, 64, senders, sizeof senders); /* without politie's key */
    for (int64_t end = kb_mono_ms() + 9000; kb_mono_ms() < end;)
        ck_assert_int_eq(ketenbus_client_poll(fier, 50), KETENBUS_OK);
    ck_assert_int_ge(s_refused, 3);
    ck_assert_int_eq(s_handled, 0);
    ketenbus_client_destroy(&fier);
    ketenbus_client_destroy(&politie);
    ck_assert_int_eq(kb_chain_stop(&chain), 0);
    ck_assert_int_eq(kb_chain_audit_count(&chain, KETENBUS__AUDIT_EVENT__AUDIT_EVENT_EXPIRED, "sender notified"), 3);
    kb_chain_cleanup(&chain);
}
END_TEST

/* The number of *.pb files in state_dir/quarantine. */
static size_t s_quarantine_count(const char *state_dir)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/quarantine", state_dir);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        n += len > 3 && strcmp(de->d_name + len - 3, ".pb") == 0;
    }
    closedir(d);
    return n;
}

/* The quarantine is bounded: a broker that sends forgeries in its own name
 * would otherwise fill the disk that also holds the outbox. It holds
 * KB_QUARANTINE_MAX_ENTRIES - 3 entries when the client starts (counted
 * then); of eight more forgeries three are kept, the other five only
 * logged (event=quarantine_full), and all eight acknowledged. */
START_TEST(test_quarantine_bounded)
{
    char state[512], path[700];
    snprintf(state, sizeof state, "%s/state-fier", s_chain.dir);
    snprintf(path, sizeof path, "%s/quarantine", state);
    ck_assert_int_eq(kb_mkdirs(path, 0700), KB_OK);
    for (unsigned i = 0; i < KB_QUARANTINE_MAX_ENTRIES - 3; i++) {
        snprintf(path, sizeof path, "%s/quarantine/earlier-%u.pb", state, i);
        ck_assert_int_eq(kb_file_write(path, "", 0, 0600), KB_OK);
    }
    ketenbus_client_t *fier = kb_chain_client(&s_chain, "fier", NULL);
    ketenbus_client_set_handler(fier, s_handler, NULL);
    kb_fake_open_session(&s_fake, fier, "fier");
    ketenbus_msg_t *m[8];
    uint64_t tags[8];
    for (uint8_t i = 0; i < 8; i++) {
        m[i] = s_signal((uint8_t)(20 + i), "scripted", "broker", "a signal in the broker's name");
        tags[i] = 20 + i;
    }
    s_deliver(m, tags, 8);
    int seen[8] = {0}, all = 0;
    for (int64_t end = kb_mono_ms() + 5000; !all && kb_mono_ms() < end;) {
        Ketenbus__Frame *f = kb_fake_expect(&s_fake, fier, KETENBUS__FRAME__BODY_ACK, 200);
        for (size_t i = 0; f && i < f->ack->n_tags; i++)
            if (f->ack->tags[i] >= 20 && f->ack->tags[i] < 28)
                seen[f->ack->tags[i] - 20] = 1;
        if (f)
            ketenbus__frame__free_unpacked(f, NULL);
        all = 1;
        for (int i = 0; i < 8; i++)
            all &= seen[i];
    }
    ck_assert_msg(all, "not every forgery was acknowledged");
    ck_assert_int_eq(s_handled, 0);
    ck_assert_int_eq(s_refused, 8);
    ck_assert_int_eq(s_full, 5);
    ck_assert_uint_eq(s_quarantine_count(state), KB_QUARANTINE_MAX_ENTRIES);
    for (size_t i = 0; i < 8; i++)
        ketenbus_msg_destroy(&m[i]);
    ketenbus_client_destroy(&fier);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("sdk_verify");
    TCase *tc = tcase_create("scripted");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_only_genuine_deliveries_handed_out);
    tcase_add_test(tc, test_phantom_withheld_not_handed_out);
    tcase_add_test(tc, test_quarantine_bounded);
    tcase_add_test(tc, test_broker_notice_handed_out);
    tcase_add_test(tc, test_delivery_for_others_quarantined);
    tcase_add_test(tc, test_missing_key_delivery_comes_again);
    tcase_add_test(tc, test_writable_sender_key_refused);
    tcase_add_test(tc, test_previous_key_accepted);
    tcase_add_test(tc, test_replaced_key_not_trusted);
    tcase_add_test(tc, test_key_rewritten_in_place_not_trusted);
    tcase_add_test(tc, test_removed_key_not_trusted);
    tcase_add_test(tc, test_refusal_restarts_back_off);
    tcase_add_test(tc, test_key_installed_restarts_at_once);
    tcase_add_test(tc, test_malformed_delivery_gives_credit_back);
    suite_add_tcase(s, tc);
    tc = tcase_create("broker");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_withheld_required_fields_handed_out);
    tcase_add_test(tc, test_refused_deliveries_do_not_stop_the_rest);
    tcase_add_test(tc, test_refused_deliveries_expire);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
