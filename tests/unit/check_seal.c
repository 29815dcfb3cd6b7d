/*
 * check_seal.c - tests of kb_seal: field seals and envelope signatures that
 * survive redaction (proto/SIGNING.md).
 *
 * Covers every public function of lib/kb_seal.h: sign/verify round trips
 * per payload kind, a table of tamperings that verify must refuse, the
 * errors about seal paths a sender chose (no quotes, controls or '='), a table
 * of redactions after which verify must still pass and the withheld text
 * must be gone from the packed envelope, path validation, the signed bytes,
 * the fixed test vector of SIGNING.md, and an independent re-implementation
 * (tests/unit/seal_vectors.py, found through $KB_SRCDIR, default ".") that
 * must compute the same signed bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <openssl/evp.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_seal.h"
#include "kb_util.h"
#include "kb_test.h"

#define XSTR(x) STR(x)
#define STR(x) #x

/* Field values of the test envelopes; the texts are searched for after
 * redaction, so each occurs in one field only. */
#define NARRATIVE "Uncle collected her twice at the station; she owes him \xe2\x82\xac 2000"
#define LOCATION "Stationsplein Noord"
#define MUNICIPALITY "GM0344"
#define REASON "Child in custody; an adult claims to be family"
#define CONTACT "desk fier, extension 4242"
#define UPDATE_REASON "Placed in a protected shelter"
#define HANDLED_BY "rvdk-team-7"
#define NOTICE_TEXT "Also known to politie"
#define CREATED_US 1795426800000000
#define OBSERVED_US 1795420000000000
#define DEADLINE_US 1795513200000000

static const uint8_t s_msg_id[KB_ID_LEN] = {0x01, 0x9a, 0xb5, 0xc0, 0x00, 0x00, 0x70, 0x00,
                                            0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01};

/* ------------------------------------------------------------ builders */

static void *s_alloc(size_t n)
{
    void *p = calloc(1, n);
    ck_assert_ptr_nonnull(p);
    return p;
}

static char *s_strdup(const char *s)
{
    char *p = strdup(s);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void s_set_str(char **field, const char *s)
{
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = s_strdup(s);
}

static void s_bytes(ProtobufCBinaryData *b, const void *p, size_t n)
{
    free(b->data);
    b->data = s_alloc(n);
    memcpy(b->data, p, n);
    b->len = n;
}

static Ketenbus__Envelope *s_header_new(Ketenbus__Kind kind)
{
    Ketenbus__Envelope *e = s_alloc(sizeof *e);
    ketenbus__envelope__init(e);
    s_bytes(&e->message_id, s_msg_id, sizeof s_msg_id);
    e->sender = s_strdup("fier");
    e->n_recipients = 2;
    e->recipients = s_alloc(2 * sizeof *e->recipients);
    e->recipients[0] = s_strdup("politie");
    e->recipients[1] = s_strdup("rvdk");
    e->kind = kind;
    e->purpose = KETENBUS__PURPOSE__PURPOSE_CHILD_PROTECTION;
    e->handling = KETENBUS__HANDLING__HANDLING_H2;
    e->legal_basis = s_alloc(sizeof *e->legal_basis);
    ketenbus__legal_basis__init(e->legal_basis);
    e->legal_basis->basis = s_strdup("Jeugdwet art. 7.4.0");
    e->legal_basis->consent = KETENBUS__CONSENT__CONSENT_NOT_REQUIRED;
    e->created_us = CREATED_US;
    e->n_subject_keys = 2;
    e->subject_keys = s_alloc(2 * sizeof *e->subject_keys);
    uint8_t key[KB_SUBJECT_KEY_LEN];
    for (size_t i = 0; i < e->n_subject_keys; i++) {
        memset(key, 0x11 * (int)(i + 1), sizeof key);
        s_bytes(&e->subject_keys[i], key, sizeof key);
    }
    e->officer = s_strdup("fier-0042");
    return e;
}

/* 13 present leaves; cross_border is left unset on purpose. */
static Ketenbus__Signal *s_signal_new(void)
{
    Ketenbus__Signal *s = s_alloc(sizeof *s);
    ketenbus__signal__init(s);
    s->exploitation = KETENBUS__EXPLOITATION__EXPLOITATION_CRIMINAL;
    s->n_indicators = 3;
    s->indicators = s_alloc(3 * sizeof *s->indicators);
    s->indicators[0] = KETENBUS__INDICATOR__INDICATOR_REPEATED_ARRESTS;
    s->indicators[1] = KETENBUS__INDICATOR__INDICATOR_ADULT_CLAIMS_CUSTODY;
    s->indicators[2] = KETENBUS__INDICATOR__INDICATOR_SCRIPTED_STORY;
    s->minor = 1;
    s->age_band = KETENBUS__AGE_BAND__AGE_BAND_12_TO_15;
    s->observed = s_alloc(sizeof *s->observed);
    ketenbus__observation__init(s->observed);
    s->observed->time_us = OBSERVED_US;
    s->observed->municipality = s_strdup(MUNICIPALITY);
    s->observed->location = s_strdup(LOCATION);
    s->urgency = KETENBUS__URGENCY__URGENCY_URGENT;
    s->several_perpetrators = 1;
    s->source = KETENBUS__SOURCE__SOURCE_OFFICER;
    s->reliability = KETENBUS__RELIABILITY__RELIABILITY_B;
    s->accuracy = KETENBUS__ACCURACY__ACCURACY_2;
    s->narrative = s_strdup(NARRATIVE);
    return s;
}

typedef enum { MK_SIGNAL, MK_REFERRAL, MK_UPDATE, MK_NOTICE } make_kind_t;

static Ketenbus__Envelope *s_make(make_kind_t what)
{
    Ketenbus__Envelope *e;
    switch (what) {
    case MK_SIGNAL:
        e = s_header_new(KETENBUS__KIND__KIND_SIGNAL);
        e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_SIGNAL;
        e->signal = s_signal_new();
        return e;
    case MK_REFERRAL: {
        e = s_header_new(KETENBUS__KIND__KIND_REFERRAL);
        Ketenbus__Referral *r = s_alloc(sizeof *r);
        ketenbus__referral__init(r);
        r->action = KETENBUS__ACTION__ACTION_YOUTH_CARE;
        r->deadline_us = DEADLINE_US;
        r->urgency = KETENBUS__URGENCY__URGENCY_URGENT;
        r->reason = s_strdup(REASON);
        r->signal = s_signal_new();
        r->contact = s_strdup(CONTACT);
        e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL;
        e->referral = r;
        return e;
    }
    case MK_UPDATE: {
        e = s_header_new(KETENBUS__KIND__KIND_REFERRAL_UPDATE);
        s_bytes(&e->correlation_id, s_msg_id, sizeof s_msg_id);
        Ketenbus__ReferralUpdate *u = s_alloc(sizeof *u);
        ketenbus__referral_update__init(u);
        u->status = KETENBUS__REFERRAL_STATUS__REFERRAL_STATUS_ACCEPTED;
        u->reason = s_strdup(UPDATE_REASON);
        u->handled_by = s_strdup(HANDLED_BY);
        e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL_UPDATE;
        e->referral_update = u;
        return e;
    }
    case MK_NOTICE: {
        e = s_header_new(KETENBUS__KIND__KIND_MATCH_NOTICE);
        Ketenbus__Notice *n = s_alloc(sizeof *n);
        ketenbus__notice__init(n);
        n->type = KETENBUS__NOTICE_TYPE__NOTICE_TYPE_MATCH;
        s_bytes(&n->about_message_id, s_msg_id, sizeof s_msg_id);
        n->n_agencies = 1;
        n->agencies = s_alloc(sizeof *n->agencies);
        n->agencies[0] = s_strdup("politie");
        n->text = s_strdup(NOTICE_TEXT);
        e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_NOTICE;
        e->notice = n;
        return e;
    }
    }
    ck_abort_msg("unknown envelope kind %d", (int)what);
    return NULL;
}

static void s_free(Ketenbus__Envelope **e)
{
    if (*e)
        protobuf_c_message_free_unpacked(&(*e)->base, NULL);
    *e = NULL;
}

static EVP_PKEY *s_keygen(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ck_assert_ptr_nonnull(k);
    return k;
}

/* The public half only, as a recipient holds it. */
static EVP_PKEY *s_public_of(EVP_PKEY *priv)
{
    uint8_t raw[32];
    size_t len = sizeof raw;
    ck_assert_int_eq(EVP_PKEY_get_raw_public_key(priv, raw, &len), 1);
    EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, len);
    ck_assert_ptr_nonnull(pub);
    return pub;
}

static uint8_t *s_pack(const Ketenbus__Envelope *e, size_t *len)
{
    *len = ketenbus__envelope__get_packed_size(e);
    uint8_t *buf = s_alloc(*len ? *len : 1);
    ck_assert_uint_eq(ketenbus__envelope__pack(e, buf), *len);
    return buf;
}

/* A copy that went over the wire, as the recipient sees it. */
static Ketenbus__Envelope *s_repack(const Ketenbus__Envelope *e)
{
    size_t len;
    uint8_t *buf = s_pack(e, &len);
    Ketenbus__Envelope *copy = ketenbus__envelope__unpack(NULL, len, buf);
    free(buf);
    ck_assert_ptr_nonnull(copy);
    return copy;
}

static int s_packed_contains(const Ketenbus__Envelope *e, const char *text)
{
    size_t len;
    uint8_t *buf = s_pack(e, &len);
    int found = memmem(buf, len, text, strlen(text)) != NULL;
    free(buf);
    return found;
}

static long s_seal_index(const Ketenbus__Envelope *e, const char *path)
{
    for (size_t i = 0; i < e->n_seals; i++)
        if (strcmp(e->seals[i]->path, path) == 0)
            return (long)i;
    return -1;
}

static Ketenbus__FieldSeal *s_seal(const Ketenbus__Envelope *e, const char *path)
{
    long i = s_seal_index(e, path);
    ck_assert_msg(i >= 0, "no seal for %s", path);
    return e->seals[i];
}

static void s_sha256_hex(const uint8_t *p, size_t n, char out[2 * KB_DIGEST_LEN + 1])
{
    uint8_t d[KB_DIGEST_LEN];
    unsigned int dlen = 0;
    ck_assert_int_eq(EVP_Digest(p, n, d, &dlen, EVP_sha256(), NULL), 1);
    ck_assert_uint_eq(dlen, KB_DIGEST_LEN);
    kb_hex(d, sizeof d, out);
}

static void s_signed_hash(const Ketenbus__Envelope *e, char out[2 * KB_DIGEST_LEN + 1])
{
    uint8_t *tbs = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_seal_signed_bytes(e, &tbs, &len), KB_OK);
    s_sha256_hex(tbs, len, out);
    free(tbs);
}

/* ------------------------------------------------------------ round trip */

static const struct {
    make_kind_t what;       /* payload kind */
    size_t n_seals;      /* present leaves of that payload */
    const char *deepest; /* one nested path that must be sealed */
} s_roundtrip_rows[] = {
    {MK_SIGNAL, 13, "signal.observed.location"},
    {MK_REFERRAL, 18, "referral.signal.observed.time_us"},
    {MK_UPDATE, 3, "referral_update.handled_by"},
    {MK_NOTICE, 4, "notice.agencies"},
};

START_TEST(test_roundtrip)
{
    EVP_PKEY *key = s_keygen(), *pub = s_public_of(key);
    Ketenbus__Envelope *e = s_make(s_roundtrip_rows[_i].what);
    ck_assert_int_eq(kb_seal_verify(e, pub), KB_ECRYPTO); /* unsigned yet */
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    ck_assert_uint_eq(e->n_seals, s_roundtrip_rows[_i].n_seals);
    ck_assert_uint_eq(e->signature.len, KB_SIGNATURE_LEN);
    for (size_t i = 0; i < e->n_seals; i++) {
        ck_assert_uint_eq(e->seals[i]->salt.len, KB_SALT_LEN);
        ck_assert_uint_eq(e->seals[i]->digest.len, KB_DIGEST_LEN);
        if (i > 0)
            ck_assert_int_lt(strcmp(e->seals[i - 1]->path, e->seals[i]->path), 0);
        for (size_t j = 0; j < i; j++) /* fresh salt per field */
            ck_assert_int_ne(memcmp(e->seals[i]->salt.data, e->seals[j]->salt.data, KB_SALT_LEN), 0);
    }
    ck_assert_int_ge(s_seal_index(e, s_roundtrip_rows[_i].deepest), 0);
    ck_assert_int_eq(kb_seal_verify(e, pub), KB_OK);
    ck_assert_int_eq(kb_seal_verify(e, key), KB_OK); /* a private key verifies too */
    Ketenbus__Envelope *copy = s_repack(e);
    ck_assert_int_eq(kb_seal_verify(copy, pub), KB_OK);
    s_free(&copy);
    s_free(&e);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
}
END_TEST

START_TEST(test_resign_replaces_seals)
{
    EVP_PKEY *key = s_keygen();
    Ketenbus__Envelope *e = s_make(MK_SIGNAL);
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    uint8_t salt[KB_SALT_LEN];
    memcpy(salt, s_seal(e, "signal.narrative")->salt.data, sizeof salt);
    /* The SDK fills in the header, then signs again. */
    s_set_str(&e->officer, "fier-0043");
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    ck_assert_uint_eq(e->n_seals, 13);
    ck_assert_int_ne(memcmp(salt, s_seal(e, "signal.narrative")->salt.data, sizeof salt), 0);
    ck_assert_int_eq(kb_seal_verify(e, key), KB_OK);
    s_free(&e);
    EVP_PKEY_free(key);
}
END_TEST

START_TEST(test_sign_errors)
{
    EVP_PKEY *key = s_keygen();
    Ketenbus__Envelope *e = s_make(MK_SIGNAL);
    ck_assert_int_eq(kb_seal_sign(NULL, key), KB_EINVAL);
    ck_assert_int_eq(kb_seal_sign(e, NULL), KB_EINVAL);
    ck_assert_int_eq(kb_seal_verify(NULL, key), KB_EINVAL);
    ck_assert_int_eq(kb_seal_verify(e, NULL), KB_EINVAL);

    /* Not an Ed25519 key. */
    EVP_PKEY *x = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(kb_seal_sign(e, x), KB_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "Ed25519"));
    ck_assert_int_eq(kb_seal_verify(e, x), KB_ECRYPTO);
    EVP_PKEY_free(x);

    /* A failed sign leaves the envelope as it was. */
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    uint8_t before[KB_SIGNATURE_LEN];
    memcpy(before, e->signature.data, sizeof before);
    uint8_t salts[KB_SALT_LEN * 2] = {0};
    ck_assert_int_eq(kb_seal_sign_with_salts(e, key, salts, 2), KB_EINVAL);
    ck_assert_int_eq(kb_seal_sign_with_salts(e, key, NULL, 13), KB_EINVAL);
    ck_assert_uint_eq(e->n_seals, 13);
    ck_assert_int_eq(memcmp(before, e->signature.data, sizeof before), 0);
    ck_assert_int_eq(kb_seal_verify(e, key), KB_OK);

    /* Unknown fields in the payload would travel unsigned. */
    ProtobufCMessage *m = &e->signal->base;
    m->unknown_fields = s_alloc(sizeof *m->unknown_fields);
    m->n_unknown_fields = 1;
    m->unknown_fields[0].tag = 99;
    m->unknown_fields[0].wire_type = PROTOBUF_C_WIRE_TYPE_VARINT;
    m->unknown_fields[0].len = 1;
    m->unknown_fields[0].data = s_alloc(1);
    ck_assert_int_eq(kb_seal_sign(e, key), KB_EPROTO);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "unknown fields"));

    /* No payload. */
    protobuf_c_message_free_unpacked(&e->signal->base, NULL);
    e->signal = NULL;
    e->payload_case = KETENBUS__ENVELOPE__PAYLOAD__NOT_SET;
    ck_assert_int_eq(kb_seal_sign(e, key), KB_EINVAL);
    ck_assert_int_eq(kb_seal_verify(e, key), KB_ECRYPTO);
    s_free(&e);
    EVP_PKEY_free(key);
}
END_TEST

/* ------------------------------------------------------------ tampering */

typedef void (mutate_fn)(Ketenbus__Envelope *e);

static void s_tm_narrative(Ketenbus__Envelope *e) { s_set_str(&e->signal->narrative, "Nothing to report"); }
static void s_tm_nested(Ketenbus__Envelope *e) { s_set_str(&e->referral->signal->narrative, "Nothing"); }
static void s_tm_minor(Ketenbus__Envelope *e) { e->signal->minor = 0; }
static void s_tm_indicator(Ketenbus__Envelope *e) { e->signal->indicators[2] = KETENBUS__INDICATOR__INDICATOR_DEBT_BONDAGE; }
static void s_tm_sender(Ketenbus__Envelope *e) { s_set_str(&e->sender, "politie"); }
static void s_tm_recipient(Ketenbus__Envelope *e) { s_set_str(&e->recipients[1], "om"); }
static void s_tm_recipient_added(Ketenbus__Envelope *e)
{
    char **r = realloc(e->recipients, 3 * sizeof *r);
    ck_assert_ptr_nonnull(r);
    e->recipients = r;
    e->recipients[e->n_recipients++] = s_strdup("gem-utrecht");
}
static void s_tm_recipients_cleared(Ketenbus__Envelope *e)
{
    for (size_t i = 0; i < e->n_recipients; i++)
        free(e->recipients[i]);
    free(e->recipients);
    e->recipients = NULL;
    e->n_recipients = 0;
}
static void s_tm_kind(Ketenbus__Envelope *e) { e->kind = KETENBUS__KIND__KIND_REFERRAL; }
static void s_tm_purpose(Ketenbus__Envelope *e) { e->purpose = KETENBUS__PURPOSE__PURPOSE_ANALYSIS; }
static void s_tm_handling(Ketenbus__Envelope *e) { e->handling = KETENBUS__HANDLING__HANDLING_H0; }
static void s_tm_created(Ketenbus__Envelope *e) { e->created_us += 1; }
static void s_tm_subject_key(Ketenbus__Envelope *e) { e->subject_keys[1].data[31] ^= 0x01; }
static void s_tm_officer(Ketenbus__Envelope *e) { s_set_str(&e->officer, "fier-9999"); }
static void s_tm_message_id(Ketenbus__Envelope *e) { e->message_id.data[15] ^= 0x01; }
static void s_tm_basis(Ketenbus__Envelope *e) { s_set_str(&e->legal_basis->basis, "Wpg art. 19"); }
static void s_tm_consent(Ketenbus__Envelope *e) { e->legal_basis->consent = KETENBUS__CONSENT__CONSENT_GIVEN; }
static void s_tm_consent_ref(Ketenbus__Envelope *e) { s_set_str(&e->legal_basis->consent_reference, "file 12"); }
static void s_tm_correlation(Ketenbus__Envelope *e) { s_bytes(&e->correlation_id, s_msg_id, sizeof s_msg_id); }
static void s_tm_added_field(Ketenbus__Envelope *e) { e->signal->cross_border = 1; }
static void s_tm_sig_bit(Ketenbus__Envelope *e) { e->signature.data[17] ^= 0x04; }
static void s_tm_sig_short(Ketenbus__Envelope *e) { e->signature.len = KB_SIGNATURE_LEN - 1; }
static void s_tm_sig_missing(Ketenbus__Envelope *e)
{
    free(e->signature.data);
    e->signature.data = NULL;
    e->signature.len = 0;
}
static void s_tm_digest(Ketenbus__Envelope *e) { s_seal(e, "signal.narrative")->digest.data[0] ^= 0x80; }
static void s_tm_salt(Ketenbus__Envelope *e) { s_seal(e, "signal.age_band")->salt.data[3] ^= 0x01; }
static void s_tm_salt_len(Ketenbus__Envelope *e) { s_seal(e, "signal.urgency")->salt.len = KB_SALT_LEN - 1; }
static void s_tm_digest_len(Ketenbus__Envelope *e) { s_seal(e, "signal.source")->digest.len = KB_DIGEST_LEN - 1; }

static void s_tm_seal_removed(Ketenbus__Envelope *e)
{
    long i = s_seal_index(e, "signal.minor");
    ck_assert_int_ge(i, 0);
    protobuf_c_message_free_unpacked(&e->seals[i]->base, NULL);
    memmove(&e->seals[i], &e->seals[i + 1], (e->n_seals - (size_t)i - 1) * sizeof *e->seals);
    e->n_seals--;
}

static void s_tm_reordered(Ketenbus__Envelope *e)
{
    Ketenbus__FieldSeal *t = e->seals[3];
    e->seals[3] = e->seals[4];
    e->seals[4] = t;
}

static void s_tm_duplicate(Ketenbus__Envelope *e)
{
    s_set_str(&e->seals[4]->path, e->seals[3]->path);
}

static void s_withhold_by_hand(Ketenbus__Envelope *e, int clear_value, int clear_salt)
{
    if (clear_value) {
        free(e->signal->narrative);
        e->signal->narrative = (char *)protobuf_c_empty_string;
    }
    if (clear_salt) {
        Ketenbus__FieldSeal *s = s_seal(e, "signal.narrative");
        free(s->salt.data);
        s->salt.data = NULL;
        s->salt.len = 0;
    }
}

static void s_tm_unlisted(Ketenbus__Envelope *e) { s_withhold_by_hand(e, 1, 1); }
static void s_tm_value_dropped(Ketenbus__Envelope *e) { s_withhold_by_hand(e, 1, 0); }

static void s_tm_withheld_present(Ketenbus__Envelope *e)
{
    s_withhold_by_hand(e, 0, 1);
    e->withheld = s_alloc(sizeof *e->withheld);
    e->withheld[0] = s_strdup("signal.narrative");
    e->n_withheld = 1;
}

static void s_tm_redacted_seal_dropped(Ketenbus__Envelope *e)
{
    ck_assert_int_eq(kb_seal_redact(e, "signal.narrative"), KB_OK);
    long i = s_seal_index(e, "signal.narrative");
    ck_assert_int_ge(i, 0);
    protobuf_c_message_free_unpacked(&e->seals[i]->base, NULL);
    memmove(&e->seals[i], &e->seals[i + 1], (e->n_seals - (size_t)i - 1) * sizeof *e->seals);
    e->n_seals--;
}

static void s_add_withheld(Ketenbus__Envelope *e, const char *path)
{
    char **list = realloc(e->withheld, (e->n_withheld + 1) * sizeof *list);
    ck_assert_ptr_nonnull(list);
    e->withheld = list;
    e->withheld[e->n_withheld++] = s_strdup(path);
}

/* Entries of withheld that explain no withheld seal: the broker's list is
 * unsigned, so each is checked against the seals. */
static void s_tm_wh_never_sealed(Ketenbus__Envelope *e) { s_add_withheld(e, "signal.cross_border"); }
static void s_tm_wh_visible(Ketenbus__Envelope *e) { s_add_withheld(e, "signal.minor"); }
static void s_tm_wh_member(Ketenbus__Envelope *e) { s_add_withheld(e, "signal"); }
static void s_tm_wh_not_a_path(Ketenbus__Envelope *e) { s_add_withheld(e, "everything"); }
static void s_tm_wh_empty(Ketenbus__Envelope *e) { s_add_withheld(e, ""); }
static void s_tm_wh_under_leaf(Ketenbus__Envelope *e) { s_add_withheld(e, "signal.narrative.text"); }
static void s_tm_wh_other_payload(Ketenbus__Envelope *e) { s_add_withheld(e, "referral.reason"); }
static void s_tm_wh_hostile(Ketenbus__Envelope *e) { s_add_withheld(e, "signal.minor\" agency=om"); }
static void s_tm_wh_prefix(Ketenbus__Envelope *e) { s_add_withheld(e, "signal.narr"); }

static void s_tm_wh_twice(Ketenbus__Envelope *e)
{
    ck_assert_int_eq(kb_seal_redact(e, "signal.narrative"), KB_OK);
    s_add_withheld(e, "signal.narrative");
}

/* one leaf withheld, the message around it claimed too while its other
 * leaves are still there */
static void s_tm_wh_partly(Ketenbus__Envelope *e)
{
    ck_assert_int_eq(kb_seal_redact(e, "signal.observed.location"), KB_OK);
    s_add_withheld(e, "signal.observed");
}

static void s_tm_wh_too_many(Ketenbus__Envelope *e)
{
    ck_assert_int_eq(kb_seal_redact(e, "signal.narrative"), KB_OK);
    while (e->n_withheld <= KB_MAX_SEALS)
        s_add_withheld(e, "signal.narrative");
}

static void s_tm_too_many(Ketenbus__Envelope *e)
{
    size_t n = KB_MAX_SEALS + 1;
    Ketenbus__FieldSeal **s = realloc(e->seals, n * sizeof *s);
    ck_assert_ptr_nonnull(s);
    e->seals = s;
    uint8_t digest[KB_DIGEST_LEN] = {0};
    char path[32];
    while (e->n_seals < n) {
        Ketenbus__FieldSeal *f = s_alloc(sizeof *f);
        ketenbus__field_seal__init(f);
        ck_assert_int_eq(kb_fmt(path, sizeof path, "signal.zz%03zu", e->n_seals), KB_OK);
        f->path = s_strdup(path);
        s_bytes(&f->digest, digest, sizeof digest);
        s_bytes(&f->salt, digest, KB_SALT_LEN);
        e->seals[e->n_seals++] = f;
    }
}

static void s_tm_unknown_field(Ketenbus__Envelope *e)
{
    ProtobufCMessage *m = &e->signal->observed->base;
    m->unknown_fields = s_alloc(sizeof *m->unknown_fields);
    m->n_unknown_fields = 1;
    m->unknown_fields[0].tag = 77;
    m->unknown_fields[0].wire_type = PROTOBUF_C_WIRE_TYPE_VARINT;
    m->unknown_fields[0].len = 1;
    m->unknown_fields[0].data = s_alloc(1);
}

static void s_tm_no_payload(Ketenbus__Envelope *e)
{
    protobuf_c_message_free_unpacked(&e->signal->base, NULL);
    e->signal = NULL;
    e->payload_case = KETENBUS__ENVELOPE__PAYLOAD__NOT_SET;
}

static const struct {
    const char *name;    /* what the row changes after signing */
    make_kind_t what;       /* envelope to sign */
    mutate_fn *mutate; /* NULL: verify with another agency's key */
    const char *expect;  /* must occur in kb_last_error() */
} s_tamper_rows[] = {
    {"changed narrative", MK_SIGNAL, s_tm_narrative, "signal.narrative"},
    {"changed nested narrative", MK_REFERRAL, s_tm_nested, "referral.signal.narrative"},
    {"changed bool", MK_SIGNAL, s_tm_minor, "signal.minor"},
    {"changed repeated element", MK_SIGNAL, s_tm_indicator, "signal.indicators"},
    {"changed sender", MK_SIGNAL, s_tm_sender, "signature"},
    {"changed recipient", MK_SIGNAL, s_tm_recipient, "signature"},
    {"added recipient", MK_SIGNAL, s_tm_recipient_added, "signature"},
    {"cleared recipients", MK_SIGNAL, s_tm_recipients_cleared, "signature"},
    {"changed kind", MK_SIGNAL, s_tm_kind, "signature"},
    {"changed purpose", MK_SIGNAL, s_tm_purpose, "signature"},
    {"changed handling", MK_SIGNAL, s_tm_handling, "signature"},
    {"changed created_us", MK_SIGNAL, s_tm_created, "signature"},
    {"changed subject key", MK_SIGNAL, s_tm_subject_key, "signature"},
    {"changed officer", MK_SIGNAL, s_tm_officer, "signature"},
    {"changed message id", MK_SIGNAL, s_tm_message_id, "signature"},
    {"changed legal basis", MK_SIGNAL, s_tm_basis, "signature"},
    {"changed consent", MK_SIGNAL, s_tm_consent, "signature"},
    {"added consent reference", MK_SIGNAL, s_tm_consent_ref, "signature"},
    {"added correlation id", MK_SIGNAL, s_tm_correlation, "signature"},
    {"added field without seal", MK_SIGNAL, s_tm_added_field, "signal.cross_border"},
    {"removed seal", MK_SIGNAL, s_tm_seal_removed, "signal.minor"},
    {"reordered seals", MK_SIGNAL, s_tm_reordered, "not sorted"},
    {"duplicate seal path", MK_SIGNAL, s_tm_duplicate, "duplicate"},
    {"withheld path not listed", MK_SIGNAL, s_tm_unlisted, "signal.narrative"},
    {"value dropped, salt kept", MK_SIGNAL, s_tm_value_dropped, "signal.narrative"},
    {"withheld but present", MK_SIGNAL, s_tm_withheld_present, "signal.narrative"},
    {"withheld seal dropped", MK_SIGNAL, s_tm_redacted_seal_dropped,
     "withheld 0 (signal.narrative): covers no seal"},
    {"withheld lists a field never sealed", MK_SIGNAL, s_tm_wh_never_sealed,
     "withheld 0 (signal.cross_border): covers no seal"},
    {"withheld lists a visible field", MK_SIGNAL, s_tm_wh_visible,
     "withheld 0 (signal.minor): seal 4 (signal.minor) has its salt"},
    {"withheld lists the payload member", MK_SIGNAL, s_tm_wh_member,
     "withheld 0 (signal): not a payload field path"},
    {"withheld lists a non-path", MK_SIGNAL, s_tm_wh_not_a_path,
     "withheld 0 (everything): not a payload field path"},
    {"withheld lists an empty path", MK_SIGNAL, s_tm_wh_empty, "withheld 0 (): not a payload field path"},
    {"withheld lists a path under a leaf", MK_SIGNAL, s_tm_wh_under_leaf,
     "withheld 0 (signal.narrative.text): not a payload field path"},
    {"withheld lists another payload", MK_SIGNAL, s_tm_wh_other_payload,
     "withheld 0 (referral.reason): not a field of the signal payload"},
    {"withheld lists a hostile text", MK_SIGNAL, s_tm_wh_hostile,
     "withheld 0 (signal.minor??agency?om): not a payload field path"},
    {"withheld lists a prefix of a path", MK_SIGNAL, s_tm_wh_prefix,
     "withheld 0 (signal.narr): not a payload field path"},
    {"withheld lists a path twice", MK_SIGNAL, s_tm_wh_twice, "withheld 1 (signal.narrative): listed twice"},
    {"withheld claims a partly withheld message", MK_SIGNAL, s_tm_wh_partly,
     "withheld 1 (signal.observed): seal 7 (signal.observed.municipality) has its salt"},
    {"withheld lists more than 64", MK_SIGNAL, s_tm_wh_too_many, "withheld: 65 entries, at most 64"},
    {"changed digest", MK_SIGNAL, s_tm_digest, "signal.narrative"},
    {"changed salt", MK_SIGNAL, s_tm_salt, "signal.age_band"},
    {"salt of 15 bytes", MK_SIGNAL, s_tm_salt_len, "signal.urgency"},
    {"digest of 31 bytes", MK_SIGNAL, s_tm_digest_len, "signal.source"},
    {"more than 64 seals", MK_SIGNAL, s_tm_too_many, "at most 64"},
    {"unknown field in payload", MK_SIGNAL, s_tm_unknown_field, "signal.observed"},
    {"no payload", MK_SIGNAL, s_tm_no_payload, "no payload"},
    {"flipped signature bit", MK_SIGNAL, s_tm_sig_bit, "signature"},
    {"short signature", MK_SIGNAL, s_tm_sig_short, "signature"},
    {"missing signature", MK_SIGNAL, s_tm_sig_missing, "signature"},
    {"wrong key", MK_SIGNAL, NULL, "signature"},
};

START_TEST(test_tamper)
{
    EVP_PKEY *key = s_keygen(), *pub = s_public_of(key);
    Ketenbus__Envelope *e = s_make(s_tamper_rows[_i].what);
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    ck_assert_int_eq(kb_seal_verify(e, pub), KB_OK); /* the change below is what fails */
    EVP_PKEY *check_with = pub;
    if (s_tamper_rows[_i].mutate)
        s_tamper_rows[_i].mutate(e);
    else
        check_with = s_keygen();
    kb_error_clear();
    ck_assert_msg(kb_seal_verify(e, check_with) == KB_ECRYPTO, "%s: verify did not refuse",
                  s_tamper_rows[_i].name);
    ck_assert_msg(strstr(kb_last_error(), s_tamper_rows[_i].expect) != NULL,
                  "%s: detail \"%s\" lacks \"%s\"", s_tamper_rows[_i].name, kb_last_error(),
                  s_tamper_rows[_i].expect);
    if (check_with != pub)
        EVP_PKEY_free(check_with);
    s_free(&e);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
}
END_TEST

/* A seal path is the sender's text, and the errors about it reach
 * receipts, audit reasons and log lines: an error names the seal by its
 * index and shows the path in field-path characters only ('?' for the
 * rest), cut after 48 bytes. Rows: a seal appended after the real ones
 * (its path sorts last), what is wrong with it, what the error says. */
#define Y10 "yyyyyyyyyy"
static const struct {
    const char *path;   /* the appended seal's path */
    size_t salt_len;    /* its salt */
    size_t digest_len;  /* its digest */
    const char *expect; /* follows "seal N " in kb_last_error() */
} s_hostile_path_rows[] = {
    {"zz\" agency=om rule=forged-rule x=\"", 0, KB_DIGEST_LEN,
     "(zz?\?agency?om?rule?forged?rule?x?\?): withheld but not listed in withheld"},
    {"zz\" agency=om", KB_SALT_LEN, KB_DIGEST_LEN, "(zz?\?agency?om): sealed field is absent"},
    {"zz\x1b[2J\r\nlevel=error", 0, 3, "(zz?\?2J?\?level?error): digest is 3 bytes"},
    {"zz\xe2\x80\xae=", 5, KB_DIGEST_LEN, "(zz?\?\?\?): salt is 5 bytes"},
    {"zz" Y10 Y10 Y10 Y10 Y10 Y10 Y10 Y10 Y10 Y10, 0, KB_DIGEST_LEN,
     "(zz" Y10 Y10 Y10 Y10 "yyyyyy...): withheld"},
};

START_TEST(test_hostile_seal_path)
{
    EVP_PKEY *key = s_keygen(), *pub = s_public_of(key);
    Ketenbus__Envelope *e = s_make(MK_SIGNAL);
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    Ketenbus__FieldSeal **seals = realloc(e->seals, (e->n_seals + 1) * sizeof *seals);
    ck_assert_ptr_nonnull(seals);
    e->seals = seals;
    Ketenbus__FieldSeal *f = s_alloc(sizeof *f);
    ketenbus__field_seal__init(f);
    f->path = s_strdup(s_hostile_path_rows[_i].path);
    uint8_t zero[KB_DIGEST_LEN] = {0};
    s_bytes(&f->digest, zero, s_hostile_path_rows[_i].digest_len);
    if (s_hostile_path_rows[_i].salt_len)
        s_bytes(&f->salt, zero, s_hostile_path_rows[_i].salt_len);
    size_t index = e->n_seals;
    e->seals[e->n_seals++] = f;
    ck_assert_int_eq(kb_seal_verify(e, pub), KB_ECRYPTO);
    char want[256];
    ck_assert_int_eq(kb_fmt(want, sizeof want, "seal %zu %s", index, s_hostile_path_rows[_i].expect), KB_OK);
    const char *err = kb_last_error();
    ck_assert_msg(strstr(err, want) == err, "detail \"%s\" is not \"%s...\"", err, want);
    for (const char *c = err; *c; c++)
        ck_assert_msg(*c >= ' ' && *c <= '~' && *c != '"' && *c != '=', "detail \"%s\" has byte 0x%02x", err,
                      (unsigned char)*c);
    s_free(&e);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
}
END_TEST

/* ------------------------------------------------------------ redaction */

static const struct {
    make_kind_t what;          /* envelope to sign and redact */
    const char *path;       /* path to withhold */
    int rc;                 /* expected result of kb_seal_redact */
    size_t n_withheld;      /* seals without salt afterwards */
    const char *secret;     /* text that must be gone from the packed bytes, or NULL */
} s_redact_rows[] = {
    {MK_SIGNAL, "signal.narrative", KB_OK, 1, NARRATIVE},
    {MK_SIGNAL, "signal.observed", KB_OK, 3, LOCATION},
    {MK_SIGNAL, "signal.observed.location", KB_OK, 1, LOCATION},
    {MK_SIGNAL, "signal.observed.municipality", KB_OK, 1, MUNICIPALITY},
    {MK_SIGNAL, "signal.indicators", KB_OK, 1, NULL},
    {MK_SIGNAL, "signal.minor", KB_OK, 1, NULL},
    {MK_SIGNAL, "signal.observed.time_us", KB_OK, 1, NULL},
    {MK_SIGNAL, "signal.cross_border", KB_OK, 0, NULL},        /* absent: no-op */
    {MK_SIGNAL, "referral.reason", KB_OK, 0, NULL},            /* other payload: absent */
    {MK_SIGNAL, "referral.signal.narrative", KB_OK, 0, NULL},
    {MK_SIGNAL, "signal.nosuch", KB_ENOTFOUND, 0, NULL},
    {MK_SIGNAL, "nosuch.narrative", KB_ENOTFOUND, 0, NULL},
    {MK_SIGNAL, "signal", KB_ENOTFOUND, 0, NULL},
    {MK_SIGNAL, "signal.narrative.text", KB_ENOTFOUND, 0, NULL},
    {MK_SIGNAL, "signal..narrative", KB_ENOTFOUND, 0, NULL},
    {MK_SIGNAL, "sender", KB_ENOTFOUND, 0, NULL},
    {MK_SIGNAL, "", KB_ENOTFOUND, 0, NULL},
    {MK_REFERRAL, "referral.signal", KB_OK, 13, NARRATIVE},
    {MK_REFERRAL, "referral.signal.narrative", KB_OK, 1, NARRATIVE},
    {MK_REFERRAL, "referral.signal.observed", KB_OK, 3, LOCATION},
    {MK_REFERRAL, "referral.contact", KB_OK, 1, CONTACT},
    {MK_REFERRAL, "referral.deadline_us", KB_OK, 1, NULL},
    {MK_UPDATE, "referral_update.reason", KB_OK, 1, UPDATE_REASON},
    {MK_NOTICE, "notice.agencies", KB_OK, 1, NULL},
};

START_TEST(test_redact)
{
    EVP_PKEY *key = s_keygen(), *pub = s_public_of(key);
    Ketenbus__Envelope *e = s_make(s_redact_rows[_i].what);
    const char *path = s_redact_rows[_i].path;
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    size_t n_seals = e->n_seals;
    uint8_t(*digests)[KB_DIGEST_LEN] = s_alloc(n_seals * KB_DIGEST_LEN);
    for (size_t i = 0; i < n_seals; i++)
        memcpy(digests[i], e->seals[i]->digest.data, KB_DIGEST_LEN);
    size_t before_len;
    uint8_t *before = s_pack(e, &before_len);
    char hash_before[2 * KB_DIGEST_LEN + 1], hash_after[2 * KB_DIGEST_LEN + 1];
    s_signed_hash(e, hash_before);
    if (s_redact_rows[_i].secret)
        ck_assert(s_packed_contains(e, s_redact_rows[_i].secret));

    ck_assert_int_eq(kb_seal_redact(e, path), s_redact_rows[_i].rc);

    /* Seals keep their digests; exactly the expected ones lost their salt. */
    ck_assert_uint_eq(e->n_seals, n_seals);
    size_t unsalted = 0;
    for (size_t i = 0; i < n_seals; i++) {
        ck_assert_int_eq(memcmp(digests[i], e->seals[i]->digest.data, KB_DIGEST_LEN), 0);
        unsalted += e->seals[i]->salt.len == 0;
    }
    ck_assert_uint_eq(unsalted, s_redact_rows[_i].n_withheld);
    if (unsalted) {
        ck_assert_uint_eq(e->n_withheld, 1);
        ck_assert_str_eq(e->withheld[0], path);
    } else {
        /* a no-op or a refusal leaves the envelope byte for byte as it was */
        ck_assert_uint_eq(e->n_withheld, 0);
        size_t after_len;
        uint8_t *after = s_pack(e, &after_len);
        ck_assert_uint_eq(after_len, before_len);
        ck_assert_int_eq(memcmp(after, before, before_len), 0);
        free(after);
    }
    if (s_redact_rows[_i].secret)
        ck_assert_msg(!s_packed_contains(e, s_redact_rows[_i].secret), "%s still in the packed envelope",
                      s_redact_rows[_i].secret);
    s_signed_hash(e, hash_after);
    ck_assert_str_eq(hash_after, hash_before); /* redaction never changes what was signed */

    ck_assert_int_eq(kb_seal_verify(e, pub), KB_OK);
    Ketenbus__Envelope *copy = s_repack(e);
    ck_assert_int_eq(kb_seal_verify(copy, pub), KB_OK);
    ck_assert_uint_eq(copy->n_withheld, e->n_withheld);
    s_free(&copy);
    free(before);
    free(digests);
    s_free(&e);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
}
END_TEST

START_TEST(test_redact_twice_and_nested)
{
    EVP_PKEY *key = s_keygen();
    Ketenbus__Envelope *e = s_make(MK_SIGNAL);
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    ck_assert_int_eq(kb_seal_redact(NULL, "signal.narrative"), KB_EINVAL);
    ck_assert_int_eq(kb_seal_redact(e, NULL), KB_EINVAL);

    ck_assert_int_eq(kb_seal_redact(e, "signal.narrative"), KB_OK);
    ck_assert_int_eq(kb_seal_redact(e, "signal.narrative"), KB_OK);
    ck_assert_uint_eq(e->n_withheld, 1);

    /* a leaf first, then the message around it: both listed, once each */
    ck_assert_int_eq(kb_seal_redact(e, "signal.observed.location"), KB_OK);
    ck_assert_int_eq(kb_seal_redact(e, "signal.observed"), KB_OK);
    ck_assert_int_eq(kb_seal_redact(e, "signal.observed"), KB_OK);
    ck_assert_uint_eq(e->n_withheld, 3);
    ck_assert_str_eq(e->withheld[1], "signal.observed.location");
    ck_assert_str_eq(e->withheld[2], "signal.observed");
    ck_assert_ptr_null(e->signal->observed);
    ck_assert_int_eq(kb_seal_verify(e, key), KB_OK);

    /* The recipient's copy: the withheld paths are what it can show. */
    Ketenbus__Envelope *copy = s_repack(e);
    ck_assert_int_eq(kb_seal_verify(copy, key), KB_OK);
    ck_assert_int_eq(kb_seal_redact(copy, "signal.minor"), KB_OK);
    ck_assert_int_eq(kb_seal_verify(copy, key), KB_OK);
    ck_assert_int_eq(copy->signal->minor, 0);
    s_free(&copy);
    s_free(&e);
    EVP_PKEY_free(key);
}
END_TEST

/* What the broker's withholding produces always verifies: leaves, lists,
 * messages, a message after a leaf inside it, a whole nested signal, on
 * the envelope and on the copy that went over the wire. */
static const struct {
    make_kind_t what;         /* envelope to sign */
    const char *paths[5];     /* withheld in this order, NULL-terminated */
    size_t n_withheld;        /* entries of withheld afterwards */
} s_genuine_rows[] = {
    {MK_SIGNAL, {"signal.indicators", "signal.minor", NULL}, 2},
    {MK_SIGNAL, {"signal.observed.location", "signal.observed", "signal.narrative", NULL}, 3},
    {MK_SIGNAL, {"signal.observed", "signal.observed.location", "signal.cross_border", NULL}, 1},
    {MK_REFERRAL, {"referral.signal.narrative", "referral.signal", "referral.contact", NULL}, 3},
    {MK_REFERRAL, {"referral.signal", "referral.signal.observed", "referral.signal.minor", NULL}, 1},
    {MK_UPDATE, {"referral_update.reason", "referral_update.handled_by", "referral_update.status", NULL}, 3},
    {MK_NOTICE, {"notice.agencies", "notice.text", NULL}, 2},
};

START_TEST(test_withheld_genuine)
{
    EVP_PKEY *key = s_keygen(), *pub = s_public_of(key);
    Ketenbus__Envelope *e = s_make(s_genuine_rows[_i].what);
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    for (size_t i = 0; s_genuine_rows[_i].paths[i]; i++) {
        ck_assert_int_eq(kb_seal_redact(e, s_genuine_rows[_i].paths[i]), KB_OK);
        ck_assert_msg(kb_seal_verify(e, pub) == KB_OK, "after %s: %s", s_genuine_rows[_i].paths[i],
                      kb_last_error());
    }
    ck_assert_uint_eq(e->n_withheld, s_genuine_rows[_i].n_withheld);
    Ketenbus__Envelope *copy = s_repack(e);
    ck_assert_msg(kb_seal_verify(copy, pub) == KB_OK, "copy: %s", kb_last_error());
    s_free(&copy);
    s_free(&e);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
}
END_TEST

/* A set but empty sub-message has no seal: withholding it withholds
 * nothing signed, so nothing is listed and the copy stays as it was (a
 * listed path that covers no seal would be refused by verify). */
START_TEST(test_redact_empty_submessage)
{
    EVP_PKEY *key = s_keygen();
    Ketenbus__Envelope *e = s_make(MK_SIGNAL);
    protobuf_c_message_free_unpacked(&e->signal->observed->base, NULL);
    e->signal->observed = s_alloc(sizeof *e->signal->observed);
    ketenbus__observation__init(e->signal->observed);
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    ck_assert_int_lt(s_seal_index(e, "signal.observed.location"), 0);
    size_t before_len, after_len;
    uint8_t *before = s_pack(e, &before_len);

    ck_assert_int_eq(kb_seal_redact(e, "signal.observed"), KB_OK);
    ck_assert_uint_eq(e->n_withheld, 0);
    uint8_t *after = s_pack(e, &after_len);
    ck_assert_uint_eq(after_len, before_len);
    ck_assert_int_eq(memcmp(after, before, before_len), 0);
    ck_assert_int_eq(kb_seal_verify(e, key), KB_OK);

    /* with a value under it, it is withheld and listed as usual */
    e->signal->observed->time_us = OBSERVED_US;
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    ck_assert_int_eq(kb_seal_redact(e, "signal.observed"), KB_OK);
    ck_assert_uint_eq(e->n_withheld, 1);
    ck_assert_int_eq(kb_seal_verify(e, key), KB_OK);
    free(after);
    free(before);
    s_free(&e);
    EVP_PKEY_free(key);
}
END_TEST

/* ------------------------------------------------------------ schema */

/* Every payload member of today's Envelope passes the schema check. */
START_TEST(test_schema_today)
{
    const ProtobufCMessageDescriptor *d = &ketenbus__envelope__descriptor;
    size_t members = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        ck_assert_msg(kb_seal_schema_check(f->descriptor, f->name) == KB_OK, "%s: %s", f->name, kb_last_error());
        members++;
    }
    ck_assert_uint_eq(members, 4);
    ck_assert_int_eq(kb_seal_schema_check(NULL, "signal"), KB_EINVAL);
    ck_assert_int_eq(kb_seal_schema_check(&ketenbus__signal__descriptor, NULL), KB_EINVAL);
}
END_TEST

/* Payload types a later ketenbus.proto could bring, as descriptors written
 * by hand (only what the check reads): a oneof of message members, an
 * `optional` message field, the same one level down, and what stays
 * sealable (a oneof of scalars, a plain message field). */
#define SCHEMA_FIELD(n, lab, typ, desc, fl) \
    {.name = (n), .id = 1, .label = (lab), .type = (typ), .descriptor = (desc), .flags = (fl)}
#define SCHEMA_MESSAGE(n, fs) \
    {.magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, .name = "test." n, .short_name = n, .c_name = "Test__" n, \
     .package_name = "test", .n_fields = sizeof(fs) / sizeof((fs)[0]), .fields = (fs)}

static const ProtobufCFieldDescriptor s_oneof_fields[] = {
    SCHEMA_FIELD("note", PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_STRING, NULL, 0),
    SCHEMA_FIELD("accepted", PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_MESSAGE, &ketenbus__observation__descriptor,
                 PROTOBUF_C_FIELD_FLAG_ONEOF),
};
static const ProtobufCMessageDescriptor s_oneof_msg = SCHEMA_MESSAGE("Outcome", s_oneof_fields);

static const ProtobufCFieldDescriptor s_optional_fields[] = {
    SCHEMA_FIELD("seen", PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_MESSAGE, &ketenbus__observation__descriptor, 0),
};
static const ProtobufCMessageDescriptor s_optional_msg = SCHEMA_MESSAGE("Optional", s_optional_fields);

static const ProtobufCFieldDescriptor s_nested_fields[] = {
    SCHEMA_FIELD("observed", PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_MESSAGE, &ketenbus__observation__descriptor, 0),
    SCHEMA_FIELD("outcome", PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_MESSAGE, &s_oneof_msg, 0),
};
static const ProtobufCMessageDescriptor s_nested_msg = SCHEMA_MESSAGE("Nested", s_nested_fields);

static const ProtobufCFieldDescriptor s_fine_fields[] = {
    SCHEMA_FIELD("count", PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_INT32, NULL, PROTOBUF_C_FIELD_FLAG_ONEOF),
    SCHEMA_FIELD("text", PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_STRING, NULL, PROTOBUF_C_FIELD_FLAG_ONEOF),
    SCHEMA_FIELD("maybe", PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_BOOL, NULL, 0),
    SCHEMA_FIELD("observed", PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_MESSAGE, &ketenbus__observation__descriptor, 0),
};
static const ProtobufCMessageDescriptor s_fine_msg = SCHEMA_MESSAGE("Fine", s_fine_fields);

static const struct {
    const ProtobufCMessageDescriptor *d; /* payload type */
    int rc;                              /* expected result */
    const char *expect;                  /* must occur in kb_last_error(), or NULL */
} s_schema_rows[] = {
    {&s_oneof_msg, KB_EPROTO, "seal: signal.accepted: a oneof member of message type is not sealable"},
    {&s_optional_msg, KB_EPROTO, "seal: signal.seen: a message field with explicit presence (optional)"},
    {&s_nested_msg, KB_EPROTO, "seal: signal.outcome.accepted: a oneof member of message type"},
    {&s_fine_msg, KB_OK, NULL},
};

START_TEST(test_schema_refused)
{
    kb_error_clear();
    ck_assert_int_eq(kb_seal_schema_check(s_schema_rows[_i].d, "signal"), s_schema_rows[_i].rc);
    if (s_schema_rows[_i].expect)
        ck_assert_msg(strstr(kb_last_error(), s_schema_rows[_i].expect) != NULL, "detail \"%s\" lacks \"%s\"",
                      kb_last_error(), s_schema_rows[_i].expect);
}
END_TEST

/* ------------------------------------------------------------ paths */

static const struct {
    const char *path; /* candidate sharing-rule path */
    int exists;       /* expected kb_seal_path_exists */
} s_path_rows[] = {
    {"signal.narrative", 1},
    {"signal.observed", 1},
    {"signal.observed.location", 1},
    {"signal.indicators", 1},
    {"referral.signal", 1},
    {"referral.signal.minor", 1},
    {"referral.deadline_us", 1},
    {"referral_update.status", 1},
    {"notice.about_message_id", 1},
    {"signal", 0},
    {"referral", 0},
    {NULL, 0},
    {"", 0},
    {".", 0},
    {"signal.", 0},
    {".signal.minor", 0},
    {"signal..minor", 0},
    {"signal.narrative.x", 0},
    {"signal.indicators.x", 0},
    {"signal.nosuch", 0},
    {"Signal.narrative", 0},
    {"sender", 0},
    {"seals.path", 0},
    {"legal_basis.basis", 0},
    {"referral.signal.observed.location.x", 0},
    {"referral.signal.signal.minor", 0},
};

START_TEST(test_path_exists)
{
    ck_assert_int_eq(kb_seal_path_exists(s_path_rows[_i].path), s_path_rows[_i].exists);
}
END_TEST

/* ------------------------------------------------------------ signed bytes */

START_TEST(test_signed_bytes)
{
    static const char domain[] = "ketenbus-envelope-v1\n";
    EVP_PKEY *key = s_keygen();
    Ketenbus__Envelope *e = s_make(MK_UPDATE);
    uint8_t *tbs = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_seal_signed_bytes(NULL, &tbs, &len), KB_EINVAL);
    ck_assert_int_eq(kb_seal_signed_bytes(e, NULL, &len), KB_EINVAL);
    ck_assert_int_eq(kb_seal_signed_bytes(e, &tbs, NULL), KB_EINVAL);
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    ck_assert_int_eq(kb_seal_signed_bytes(e, &tbs, &len), KB_OK);
    ck_assert_uint_gt(len, sizeof domain - 1);
    ck_assert_int_eq(memcmp(tbs, domain, sizeof domain - 1), 0);
    /* message_id follows the domain tag as u32be(16) || id */
    const uint8_t id_len[4] = {0, 0, 0, 16};
    ck_assert_int_eq(memcmp(tbs + sizeof domain - 1, id_len, 4), 0);
    ck_assert_int_eq(memcmp(tbs + sizeof domain - 1 + 4, s_msg_id, sizeof s_msg_id), 0);
    /* ... and ends with the last seal's digest */
    const Ketenbus__FieldSeal *last = e->seals[e->n_seals - 1];
    ck_assert_int_eq(memcmp(tbs + len - KB_DIGEST_LEN, last->digest.data, KB_DIGEST_LEN), 0);
    /* The signature is Ed25519 over exactly these bytes. */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key), 1);
    ck_assert_int_eq(EVP_DigestVerify(ctx, e->signature.data, e->signature.len, tbs, len), 1);
    EVP_MD_CTX_free(ctx);
    free(tbs);

    /* Not signed: the salts, the signature and the withheld list. */
    char h1[2 * KB_DIGEST_LEN + 1], h2[2 * KB_DIGEST_LEN + 1];
    s_signed_hash(e, h1);
    e->seals[0]->salt.data[0] ^= 1;
    e->signature.data[0] ^= 1;
    ck_assert_int_eq(kb_seal_redact(e, "referral_update.handled_by"), KB_OK);
    s_signed_hash(e, h2);
    ck_assert_str_eq(h1, h2);
    /* Signed: the header (here the officer). */
    s_set_str(&e->officer, "fier-0001");
    s_signed_hash(e, h2);
    ck_assert_str_ne(h1, h2);

    protobuf_c_message_free_unpacked(&e->referral_update->base, NULL);
    e->referral_update = NULL;
    e->payload_case = KETENBUS__ENVELOPE__PAYLOAD__NOT_SET;
    ck_assert_int_eq(kb_seal_signed_bytes(e, &tbs, &len), KB_EINVAL);
    s_free(&e);
    EVP_PKEY_free(key);
}
END_TEST

/* ------------------------------------------------------------ SIGNING.md vector */

/* RFC 8032 section 7.1, test 1: a published key, never to be used for real. */
static const char s_vec_private[] =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char s_vec_public[] =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
#define VEC_NARRATIVE "Picked up for pickpocketing; an adult claiming to be her uncle came to collect her."
#define VEC_SEALS 6
static const char s_vec_minor_digest[] =
    "5f6f58abfe5390cfc5d721c832ba3ec3cc43c28e491b0002d1c6f410b9a7ee1a";
static const char s_vec_signed_sha256[] =
    "d8bdc9198b21132e1a797d90c86fbbe7c82ffbe6606dd4b195923a3780520582";
static const char s_vec_signature[] =
    "84e209ed9571ceaf52455cec5cd0efe449eb3d1742aa01b220727721a3c991fb"
    "f70f04a2a66cd464e5f575ce7fed68d2674e2c82b1c41f3d77d2fcab314a7a09";

/* The envelope of SIGNING.md, "Test vector". */
static Ketenbus__Envelope *s_vector_envelope(void)
{
    Ketenbus__Envelope *e = s_alloc(sizeof *e);
    ketenbus__envelope__init(e);
    s_bytes(&e->message_id, s_msg_id, sizeof s_msg_id);
    e->sender = s_strdup("fier");
    e->n_recipients = 2;
    e->recipients = s_alloc(2 * sizeof *e->recipients);
    e->recipients[0] = s_strdup("politie");
    e->recipients[1] = s_strdup("rvdk");
    e->kind = KETENBUS__KIND__KIND_SIGNAL;
    e->purpose = KETENBUS__PURPOSE__PURPOSE_CHILD_PROTECTION;
    e->handling = KETENBUS__HANDLING__HANDLING_H2;
    e->legal_basis = s_alloc(sizeof *e->legal_basis);
    ketenbus__legal_basis__init(e->legal_basis);
    e->legal_basis->basis = s_strdup("Jeugdwet art. 7.4.0");
    e->legal_basis->consent = KETENBUS__CONSENT__CONSENT_NOT_REQUIRED;
    e->created_us = CREATED_US;
    e->n_subject_keys = 1;
    e->subject_keys = s_alloc(sizeof *e->subject_keys);
    uint8_t key[KB_SUBJECT_KEY_LEN];
    memset(key, 0x11, sizeof key);
    s_bytes(&e->subject_keys[0], key, sizeof key);
    e->officer = s_strdup("fier-0042");
    Ketenbus__Signal *s = s_alloc(sizeof *s);
    ketenbus__signal__init(s);
    s->exploitation = KETENBUS__EXPLOITATION__EXPLOITATION_CRIMINAL;
    s->n_indicators = 2;
    s->indicators = s_alloc(2 * sizeof *s->indicators);
    s->indicators[0] = KETENBUS__INDICATOR__INDICATOR_REPEATED_ARRESTS;
    s->indicators[1] = KETENBUS__INDICATOR__INDICATOR_ADULT_CLAIMS_CUSTODY;
    s->minor = 1;
    s->age_band = KETENBUS__AGE_BAND__AGE_BAND_12_TO_15;
    s->observed = s_alloc(sizeof *s->observed);
    ketenbus__observation__init(s->observed);
    s->observed->municipality = s_strdup(MUNICIPALITY);
    s->narrative = s_strdup(VEC_NARRATIVE);
    e->payload_case = KETENBUS__ENVELOPE__PAYLOAD_SIGNAL;
    e->signal = s;
    return e;
}

START_TEST(test_vector)
{
    uint8_t raw[32];
    ck_assert_int_eq(kb_unhex(s_vec_private, raw, sizeof raw), KB_OK);
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, sizeof raw);
    ck_assert_ptr_nonnull(key);
    uint8_t pub_raw[32];
    size_t pub_len = sizeof pub_raw;
    char hex[2 * KB_SIGNATURE_LEN + 1];
    ck_assert_int_eq(EVP_PKEY_get_raw_public_key(key, pub_raw, &pub_len), 1);
    kb_hex(pub_raw, pub_len, hex);
    ck_assert_str_eq(hex, s_vec_public);

    /* salt k (sorted order) is the bytes 16k, 16k+1, ..., 16k+15 */
    uint8_t salts[VEC_SEALS * KB_SALT_LEN];
    for (size_t i = 0; i < sizeof salts; i++)
        salts[i] = (uint8_t)i;
    Ketenbus__Envelope *e = s_vector_envelope();
    ck_assert_int_eq(kb_seal_sign_with_salts(e, key, salts, VEC_SEALS), KB_OK);
    ck_assert_uint_eq(e->n_seals, VEC_SEALS);
    kb_hex(s_seal(e, "signal.minor")->digest.data, KB_DIGEST_LEN, hex);
    ck_assert_str_eq(hex, s_vec_minor_digest);
    char sha[2 * KB_DIGEST_LEN + 1];
    s_signed_hash(e, sha);
    ck_assert_str_eq(sha, s_vec_signed_sha256);
    kb_hex(e->signature.data, e->signature.len, hex);
    ck_assert_str_eq(hex, s_vec_signature);
    ck_assert_int_eq(kb_seal_verify(e, key), KB_OK);

    /* The redacted vector: narrative withheld, same signed bytes. */
    ck_assert_int_eq(kb_seal_redact(e, "signal.narrative"), KB_OK);
    ck_assert_uint_eq(e->n_seals, VEC_SEALS);
    ck_assert_uint_eq(e->n_withheld, 1);
    ck_assert_str_eq(e->withheld[0], "signal.narrative");
    ck_assert_uint_eq(s_seal(e, "signal.narrative")->salt.len, 0);
    s_signed_hash(e, sha);
    ck_assert_str_eq(sha, s_vec_signed_sha256);
    ck_assert_int_eq(kb_seal_verify(e, key), KB_OK);
    s_free(&e);
    EVP_PKEY_free(key);
}
END_TEST

/* ------------------------------------------------------------ independent check */

/* The leaves of s_make(MK_REFERRAL) as SIGNING.md types them, written by
 * hand from the proto (enum numbers included) rather than from kb_seal. */
static const struct {
    const char *path; /* seal path */
    const char *json; /* type and value members of its JSON object */
} s_referral_leaves[] = {
    {"referral.action", "\"type\": \"enum\", \"value\": 2"},
    {"referral.contact", "\"type\": \"string\", \"value\": \"" CONTACT "\""},
    {"referral.deadline_us", "\"type\": \"int64\", \"value\": " XSTR(DEADLINE_US)},
    {"referral.reason", "\"type\": \"string\", \"value\": \"" REASON "\""},
    {"referral.signal.accuracy", "\"type\": \"enum\", \"value\": 2"},
    {"referral.signal.age_band", "\"type\": \"enum\", \"value\": 2"},
    {"referral.signal.exploitation", "\"type\": \"enum\", \"value\": 3"},
    {"referral.signal.indicators", "\"type\": \"enum\", \"repeated\": true, \"value\": [8, 9, 16]"},
    {"referral.signal.minor", "\"type\": \"bool\", \"value\": true"},
    {"referral.signal.narrative", "\"type\": \"string\", \"value\": \"" NARRATIVE "\""},
    {"referral.signal.observed.location", "\"type\": \"string\", \"value\": \"" LOCATION "\""},
    {"referral.signal.observed.municipality", "\"type\": \"string\", \"value\": \"" MUNICIPALITY "\""},
    {"referral.signal.observed.time_us", "\"type\": \"int64\", \"value\": " XSTR(OBSERVED_US)},
    {"referral.signal.reliability", "\"type\": \"enum\", \"value\": 2"},
    {"referral.signal.several_perpetrators", "\"type\": \"bool\", \"value\": true"},
    {"referral.signal.source", "\"type\": \"enum\", \"value\": 3"},
    {"referral.signal.urgency", "\"type\": \"enum\", \"value\": 3"},
    {"referral.urgency", "\"type\": \"enum\", \"value\": 3"},
};

static void s_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void s_json_hex(FILE *f, const uint8_t *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
    fputc('"', f);
}

static void s_write_json(FILE *f, const Ketenbus__Envelope *e, int falsify)
{
    fputs("{\"header\": {\"message_id\": ", f);
    s_json_hex(f, e->message_id.data, e->message_id.len);
    fputs(", \"sender\": ", f);
    s_json_str(f, e->sender);
    fputs(", \"recipients\": [", f);
    for (size_t i = 0; i < e->n_recipients; i++) {
        fputs(i ? ", " : "", f);
        s_json_str(f, e->recipients[i]);
    }
    fprintf(f, "], \"kind\": %d, \"purpose\": %d, \"handling\": %d, \"legal_basis\": {\"basis\": ",
            (int)e->kind, (int)e->purpose, (int)e->handling);
    s_json_str(f, e->legal_basis->basis);
    fprintf(f, ", \"consent\": %d, \"consent_reference\": ", (int)e->legal_basis->consent);
    s_json_str(f, e->legal_basis->consent_reference);
    fprintf(f, "}, \"created_us\": %lld, \"correlation_id\": ", (long long)e->created_us);
    s_json_hex(f, e->correlation_id.data, e->correlation_id.len);
    fputs(", \"subject_keys\": [", f);
    for (size_t i = 0; i < e->n_subject_keys; i++) {
        fputs(i ? ", " : "", f);
        s_json_hex(f, e->subject_keys[i].data, e->subject_keys[i].len);
    }
    fputs("], \"officer\": ", f);
    s_json_str(f, e->officer);
    fputs(", \"payload\": \"referral\"},\n \"seals\": [", f);
    size_t n_rows = sizeof s_referral_leaves / sizeof s_referral_leaves[0];
    ck_assert_uint_eq(e->n_seals, n_rows); /* every seal is described */
    for (size_t i = 0; i < n_rows; i++) {
        const Ketenbus__FieldSeal *s = s_seal(e, s_referral_leaves[i].path);
        fputs(i ? ",\n  {\"path\": " : "\n  {\"path\": ", f);
        s_json_str(f, s->path);
        if (s->salt.len) {
            int lie = falsify && strcmp(s->path, "referral.signal.minor") == 0;
            fprintf(f, ", %s, \"salt\": ", lie ? "\"type\": \"bool\", \"value\": false"
                                               : s_referral_leaves[i].json);
            s_json_hex(f, s->salt.data, s->salt.len);
        }
        fputs(", \"digest\": ", f);
        s_json_hex(f, s->digest.data, s->digest.len);
        fputc('}', f);
    }
    fputs("]}\n", f);
}

/* Run seal_vectors.py on file; its one output line goes to out. Exit status. */
static int s_run_python(const char *file, char *out, size_t out_len)
{
    const char *srcdir = getenv("KB_SRCDIR");
    char cmd[1024];
    if (!srcdir || !*srcdir)
        srcdir = ".";
    ck_assert_msg(strchr(srcdir, '\'') == NULL, "KB_SRCDIR must not contain a quote");
    ck_assert_int_eq(kb_fmt(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/unit/seal_vectors.py' '%s' 2>&1",
                            srcdir, file), KB_OK);
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    out[0] = '\0';
    if (fgets(out, (int)out_len, p))
        out[strcspn(out, "\n")] = '\0';
    int status = pclose(p);
    ck_assert_msg(status != -1 && WIFEXITED(status), "python did not run: %s", cmd);
    return WEXITSTATUS(status);
}

static const struct {
    const char *redact; /* path withheld before the check, or NULL */
    int falsify;        /* describe a value other than the one sealed */
} s_python_rows[] = {
    {NULL, 0},
    {"referral.signal.narrative", 0},
    {"referral.signal.observed", 0},
    {NULL, 1},
};

START_TEST(test_python_independent)
{
    EVP_PKEY *key = s_keygen();
    Ketenbus__Envelope *e = s_make(MK_REFERRAL);
    ck_assert_int_eq(kb_seal_sign(e, key), KB_OK);
    if (s_python_rows[_i].redact)
        ck_assert_int_eq(kb_seal_redact(e, s_python_rows[_i].redact), KB_OK);
    char file[] = "/tmp/check_seal_XXXXXX";
    int fd = mkstemp(file);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    s_write_json(f, e, s_python_rows[_i].falsify);
    ck_assert_int_eq(fclose(f), 0);

    char got[128];
    int rc = s_run_python(file, got, sizeof got);
    unlink(file);
    if (s_python_rows[_i].falsify) {
        ck_assert_int_ne(rc, 0);
    } else {
        char want[2 * KB_DIGEST_LEN + 1];
        ck_assert_int_eq(rc, 0);
        s_signed_hash(e, want);
        ck_assert_str_eq(got, want);
    }
    s_free(&e);
    EVP_PKEY_free(key);
}
END_TEST

/* ------------------------------------------------------------ suite */

#define ROWS(a) (int)(sizeof(a) / sizeof((a)[0]))

static Suite *s_suite(void)
{
    Suite *s = suite_create("seal");
    TCase *tc = tcase_create("sign");
    tcase_add_loop_test(tc, test_roundtrip, 0, ROWS(s_roundtrip_rows));
    tcase_add_test(tc, test_resign_replaces_seals);
    tcase_add_test(tc, test_sign_errors);
    tcase_add_test(tc, test_signed_bytes);
    tcase_add_test(tc, test_vector);
    suite_add_tcase(s, tc);

    tc = tcase_create("tamper");
    tcase_add_loop_test(tc, test_tamper, 0, ROWS(s_tamper_rows));
    tcase_add_loop_test(tc, test_hostile_seal_path, 0, ROWS(s_hostile_path_rows));
    suite_add_tcase(s, tc);

    tc = tcase_create("redact");
    tcase_add_loop_test(tc, test_redact, 0, ROWS(s_redact_rows));
    tcase_add_test(tc, test_redact_twice_and_nested);
    tcase_add_test(tc, test_redact_empty_submessage);
    tcase_add_loop_test(tc, test_withheld_genuine, 0, ROWS(s_genuine_rows));
    tcase_add_loop_test(tc, test_path_exists, 0, ROWS(s_path_rows));
    tcase_add_test(tc, test_schema_today);
    tcase_add_loop_test(tc, test_schema_refused, 0, ROWS(s_schema_rows));
    suite_add_tcase(s, tc);

    tc = tcase_create("independent");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_python_independent, 0, ROWS(s_python_rows));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
