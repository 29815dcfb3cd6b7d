/*
 * check_codec.c - unit tests of lib/kb_codec.c.
 *
 * Covers every function of kb_codec.h: a table of malformed frames with the
 * code each must give, a round trip of every command, valid envelopes at
 * the edges of every limit, a table of invalid envelopes (each a valid one
 * with one thing broken) with the reason it must give, both as built and
 * after a trip through the wire format, and a table of UTF-8 sequences.
 * Test envelopes are built in static storage, so nothing needs freeing
 * except what the codec itself hands out.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "kb_arena.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_seal.h"
#include "kb_test.h"

/* ------------------------------------------------- fixture: one envelope */

/* Room for the longest ids a test builds ("ag-63" ... and 33 characters). */
#define AGENCY_ID_ROOM (KB_AGENCY_ID_MAX + 2)
/* A point in time used for created_us, deadlines and observations. */
#define T0_US INT64_C(1795000000000000)

typedef struct {
    Ketenbus__Envelope env;                                       /* the envelope under test */
    Ketenbus__LegalBasis basis;                                   /* env.legal_basis */
    Ketenbus__Signal signal;                                      /* payload of a signal, or in a referral */
    Ketenbus__Observation observed;                               /* signal.observed */
    Ketenbus__Referral referral;                                  /* payload of a referral */
    Ketenbus__ReferralUpdate update;                              /* payload of a referral update */
    Ketenbus__Notice notice;                                      /* payload of both notices */
    Ketenbus__FieldSeal seal;                                     /* the one seal all seal slots point to */
    Ketenbus__FieldSeal *seals[KB_MAX_SEALS + 1];                 /* env.seals */
    char *recipients[KB_MAX_RECIPIENTS + 1];                      /* env.recipients */
    char *withheld[KB_MAX_SEALS + 1];                             /* env.withheld */
    char *agencies[KB_MAX_RECIPIENTS + 1];                        /* notice.agencies */
    ProtobufCBinaryData subject_keys[KB_MAX_SUBJECT_KEYS + 1];    /* env.subject_keys */
    Ketenbus__Indicator indicators[KB_MAX_INDICATORS + 1];        /* signal.indicators */
    uint8_t id[KB_ID_LEN];                                        /* message id, a UUIDv7 */
    uint8_t corr[KB_ID_LEN];                                      /* correlation id */
    uint8_t key[KB_SUBJECT_KEY_LEN];                              /* every subject key */
    uint8_t salt[KB_SALT_LEN];                                    /* the seal's salt */
    uint8_t digest[KB_DIGEST_LEN];                                /* the seal's digest */
    uint8_t sig[KB_SIGNATURE_LEN];                                /* the signature */
    char ids[KB_MAX_RECIPIENTS + 1][AGENCY_ID_ROOM];              /* distinct agency ids */
    char text[KB_TEXT_MAX + 2];                                   /* long strings */
} fixture_t;

static fixture_t s_fx;

/* A valid envelope of the given kind in s_fx.env. */
static void s_fixture(Ketenbus__Kind kind)
{
    memset(&s_fx, 0, sizeof s_fx);
    static const uint8_t id[KB_ID_LEN] = {0x01, 0x93, 0x5c, 0x2a, 0x10, 0x00, 0x7a, 0xbc,
                                          0x9d, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab};
    memcpy(s_fx.id, id, sizeof id);
    memcpy(s_fx.corr, id, sizeof id);
    s_fx.corr[15] ^= 0xff;
    memset(s_fx.key, 0x5a, sizeof s_fx.key);
    memset(s_fx.salt, 0x11, sizeof s_fx.salt);
    memset(s_fx.digest, 0x22, sizeof s_fx.digest);
    memset(s_fx.sig, 0x33, sizeof s_fx.sig);
    for (size_t i = 0; i <= KB_MAX_RECIPIENTS; i++)
        snprintf(s_fx.ids[i], AGENCY_ID_ROOM, "ag-%zu", i);
    for (size_t i = 0; i <= KB_MAX_SUBJECT_KEYS; i++)
        s_fx.subject_keys[i] = (ProtobufCBinaryData){KB_SUBJECT_KEY_LEN, s_fx.key};
    for (size_t i = 0; i <= KB_MAX_SEALS; i++) {
        s_fx.seals[i] = &s_fx.seal;
        s_fx.withheld[i] = "signal.narrative";
    }
    for (size_t i = 0; i <= KB_MAX_INDICATORS; i++)
        s_fx.indicators[i] = (Ketenbus__Indicator)(1 + i % 16);

    Ketenbus__Envelope env = KETENBUS__ENVELOPE__INIT;
    Ketenbus__LegalBasis basis = KETENBUS__LEGAL_BASIS__INIT;
    Ketenbus__Signal signal = KETENBUS__SIGNAL__INIT;
    Ketenbus__Observation observed = KETENBUS__OBSERVATION__INIT;
    Ketenbus__Referral referral = KETENBUS__REFERRAL__INIT;
    Ketenbus__ReferralUpdate update = KETENBUS__REFERRAL_UPDATE__INIT;
    Ketenbus__Notice notice = KETENBUS__NOTICE__INIT;
    Ketenbus__FieldSeal seal = KETENBUS__FIELD_SEAL__INIT;

    basis.basis = "Jeugdwet art. 7.4.0";
    basis.consent = KETENBUS__CONSENT__CONSENT_NOT_REQUIRED;

    observed.time_us = T0_US - 3600000000;
    observed.municipality = "GM0344";
    observed.location = "Hoog Catharijne";

    signal.exploitation = KETENBUS__EXPLOITATION__EXPLOITATION_CRIMINAL;
    s_fx.indicators[0] = KETENBUS__INDICATOR__INDICATOR_REPEATED_ARRESTS;
    s_fx.indicators[1] = KETENBUS__INDICATOR__INDICATOR_ADULT_CLAIMS_CUSTODY;
    signal.n_indicators = 2;
    signal.indicators = s_fx.indicators;
    signal.minor = 1;
    signal.age_band = KETENBUS__AGE_BAND__AGE_BAND_12_TO_15;
    signal.observed = &s_fx.observed;
    signal.urgency = KETENBUS__URGENCY__URGENCY_URGENT;
    signal.source = KETENBUS__SOURCE__SOURCE_OFFICER;
    signal.reliability = KETENBUS__RELIABILITY__RELIABILITY_B;
    signal.accuracy = KETENBUS__ACCURACY__ACCURACY_2;
    signal.narrative = "Meisje (14) voor de derde keer aangehouden; "
                       "\xe2\x80\x98oom\xe2\x80\x99 haalt haar op. Caf\xc3\xa9.";

    referral.action = KETENBUS__ACTION__ACTION_YOUTH_CARE;
    referral.deadline_us = T0_US + 86400000000;
    referral.urgency = KETENBUS__URGENCY__URGENCY_URGENT;
    referral.reason = "Kind in bewaring; niet terug naar de 'familie' zonder onderzoek.";
    referral.signal = &s_fx.signal;
    referral.contact = "wachtcommandant Utrecht, 0900-8844";

    update.status = KETENBUS__REFERRAL_STATUS__REFERRAL_STATUS_ACCEPTED;
    update.reason = "Onderzoek gestart";
    update.handled_by = "rvdk-midden";

    notice.type = kind == KETENBUS__KIND__KIND_EXPIRY_NOTICE ? KETENBUS__NOTICE_TYPE__NOTICE_TYPE_EXPIRED
                                                             : KETENBUS__NOTICE_TYPE__NOTICE_TYPE_MATCH;
    notice.about_message_id = (ProtobufCBinaryData){KB_ID_LEN, s_fx.corr};
    s_fx.agencies[0] = "fier";
    notice.n_agencies = 1;
    notice.agencies = s_fx.agencies;
    notice.text = "Een andere organisatie kent deze persoon.";

    seal.path = "signal.narrative";
    seal.salt = (ProtobufCBinaryData){KB_SALT_LEN, s_fx.salt};
    seal.digest = (ProtobufCBinaryData){KB_DIGEST_LEN, s_fx.digest};

    env.message_id = (ProtobufCBinaryData){KB_ID_LEN, s_fx.id};
    env.sender = "politie";
    s_fx.recipients[0] = "rvdk";
    s_fx.recipients[1] = "comensha";
    env.n_recipients = 2;
    env.recipients = s_fx.recipients;
    env.kind = kind;
    env.purpose = KETENBUS__PURPOSE__PURPOSE_CHILD_PROTECTION;
    env.handling = KETENBUS__HANDLING__HANDLING_H2;
    env.legal_basis = &s_fx.basis;
    env.created_us = T0_US;
    env.n_subject_keys = 1;
    env.subject_keys = s_fx.subject_keys;
    env.officer = "AB1234";
    env.n_seals = 1;
    env.seals = s_fx.seals;
    env.signature = (ProtobufCBinaryData){KB_SIGNATURE_LEN, s_fx.sig};
    env.withheld = s_fx.withheld;

    switch (kind) {
    case KETENBUS__KIND__KIND_SIGNAL:
        env.payload_case = KETENBUS__ENVELOPE__PAYLOAD_SIGNAL;
        env.signal = &s_fx.signal;
        break;
    case KETENBUS__KIND__KIND_REFERRAL:
        env.payload_case = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL;
        env.referral = &s_fx.referral;
        break;
    case KETENBUS__KIND__KIND_REFERRAL_UPDATE:
        env.payload_case = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL_UPDATE;
        env.referral_update = &s_fx.update;
        env.correlation_id = (ProtobufCBinaryData){KB_ID_LEN, s_fx.corr};
        break;
    default:
        env.sender = "ketenbus";
        env.payload_case = KETENBUS__ENVELOPE__PAYLOAD_NOTICE;
        env.notice = &s_fx.notice;
        break;
    }
    s_fx.env = env;
    s_fx.basis = basis;
    s_fx.signal = signal;
    s_fx.observed = observed;
    s_fx.referral = referral;
    s_fx.update = update;
    s_fx.notice = notice;
    s_fx.seal = seal;
}

/* s_fx.text filled with n copies of c (NUL-terminated). */
static char *s_text(size_t n, char c)
{
    ck_assert_uint_lt(n, sizeof s_fx.text);
    memset(s_fx.text, c, n);
    s_fx.text[n] = '\0';
    return s_fx.text;
}

/* Validate e, and a copy of e that went through the wire format, and check
 * both give rc and (on failure) a reason containing want. */
static void s_expect(const Ketenbus__Envelope *e, int rc, const char *want)
{
    char why[256];
    memset(why, 'x', sizeof why);
    int got = kb_envelope_validate(e, why, sizeof why);
    ck_assert_msg(got == rc, "rc %d, expected %d (why: \"%s\")", got, rc, why);
    if (rc == KB_OK) {
        ck_assert_str_eq(why, "");
    } else {
        ck_assert_msg(strstr(why, want) != NULL, "why \"%s\" lacks \"%s\"", why, want);
        ck_assert_msg(strstr(kb_last_error(), want) != NULL, "last error \"%s\" lacks \"%s\"", kb_last_error(), want);
    }

    Ketenbus__Envelope *copy = kb_envelope_dup(e);
    ck_assert_ptr_nonnull(copy);
    got = kb_envelope_validate(copy, why, sizeof why);
    ck_assert_msg(got == rc, "after the wire: rc %d, expected %d (why: \"%s\")", got, rc, why);
    if (rc != KB_OK)
        ck_assert_msg(strstr(why, want) != NULL, "after the wire: why \"%s\" lacks \"%s\"", why, want);
    ketenbus__envelope__free_unpacked(copy, NULL);
}

/* ------------------------------------------------------- valid envelopes */

/* Build the i-th valid envelope (every kind, then each limit at its edge);
 * returns 0 past the last one. */
static int s_make_good(int i)
{
    Ketenbus__Envelope *e = &s_fx.env;
    s_fixture(KETENBUS__KIND__KIND_SIGNAL);
    switch (i) {
    case 0:
        return 1;
    case 1:
        s_fixture(KETENBUS__KIND__KIND_REFERRAL);
        return 1;
    case 2:
        s_fixture(KETENBUS__KIND__KIND_REFERRAL_UPDATE);
        return 1;
    case 3:
        s_fixture(KETENBUS__KIND__KIND_MATCH_NOTICE);
        return 1;
    case 4:
        s_fixture(KETENBUS__KIND__KIND_EXPIRY_NOTICE);
        return 1;
    case 5: /* as an SDK builds it before signing: nothing optional */
        e->n_recipients = 0;
        e->n_subject_keys = 0;
        e->n_seals = 0;
        e->signature.len = 0;
        e->officer = "";
        s_fx.signal.n_indicators = 0;
        s_fx.signal.observed = NULL;
        s_fx.signal.narrative = "";
        return 1;
    case 6:
        for (size_t k = 0; k < KB_MAX_RECIPIENTS; k++)
            s_fx.recipients[k] = s_fx.ids[k];
        e->n_recipients = KB_MAX_RECIPIENTS;
        return 1;
    case 7:
        e->n_subject_keys = KB_MAX_SUBJECT_KEYS;
        return 1;
    case 8:
        s_fx.signal.n_indicators = KB_MAX_INDICATORS;
        return 1;
    case 9:
        e->n_seals = KB_MAX_SEALS;
        e->n_withheld = KB_MAX_SEALS;
        return 1;
    case 10:
        e->sender = s_text(KB_AGENCY_ID_MAX, 'a');
        return 1;
    case 11:
        s_fx.signal.narrative = s_text(KB_TEXT_MAX, 'n');
        return 1;
    case 12:
        s_fx.basis.basis = s_text(KB_SHORT_TEXT_MAX, 'b');
        e->officer = s_fx.basis.basis;
        s_fx.seal.path = s_fx.basis.basis;
        return 1;
    case 13:
        s_fx.basis.consent = KETENBUS__CONSENT__CONSENT_GIVEN;
        s_fx.basis.consent_reference = "dossier 2026-0412, formulier T3";
        return 1;
    case 14:
        e->correlation_id = (ProtobufCBinaryData){KB_ID_LEN, s_fx.corr};
        return 1;
    case 15:
        s_fixture(KETENBUS__KIND__KIND_REFERRAL);
        s_fx.referral.signal = NULL;
        s_fx.referral.deadline_us = 0;
        return 1;
    case 16:
        s_fixture(KETENBUS__KIND__KIND_EXPIRY_NOTICE);
        s_fx.notice.about_message_id.len = 0;
        s_fx.notice.n_agencies = 0;
        return 1;
    case 17: /* a withheld field keeps its digest but loses its salt */
        s_fx.seal.salt.len = 0;
        s_fx.signal.narrative = "";
        e->n_withheld = 1;
        return 1;
    case 18:
        e->sender = "gem-utrecht";
        s_fx.recipients[0] = "0-9";
        return 1;
    case 19: /* every script of a narrative: 2, 3 and 4 byte sequences */
        s_fx.signal.narrative = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf";
        return 1;
    default:
        return 0;
    }
}
#define N_GOOD 20

START_TEST(test_valid_envelopes)
{
    ck_assert_int_eq(s_make_good(_i), 1);
    s_expect(&s_fx.env, KB_OK, NULL);
}
END_TEST

START_TEST(test_good_table_size)
{
    ck_assert_int_eq(s_make_good(N_GOOD), 0);
}
END_TEST

/* The view of every valid envelope's bytes holds what unpacking gives. */
START_TEST(test_view_matches_unpack)
{
    ck_assert_int_eq(s_make_good(_i), 1);
    size_t len = ketenbus__envelope__get_packed_size(&s_fx.env);
    uint8_t *buf = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(buf);
    ketenbus__envelope__pack(&s_fx.env, buf);
    Ketenbus__Envelope *e = ketenbus__envelope__unpack(NULL, len, buf);
    ck_assert_ptr_nonnull(e);
    kb_envelope_view_t v;
    ck_assert_int_eq(kb_envelope_view(buf, len, &v), KB_OK);
    ck_assert_uint_eq(v.message_id.len, e->message_id.len);
    ck_assert_int_eq(memcmp(v.message_id.data, e->message_id.data, e->message_id.len), 0);
    ck_assert_str_eq(v.sender, e->sender);
    ck_assert_str_eq(v.officer, e->officer);
    ck_assert_int_eq(v.kind, (int)e->kind);
    ck_assert_int_eq(v.purpose, (int)e->purpose);
    ck_assert_int_eq(v.handling, (int)e->handling);
    ck_assert_int_eq(v.has_legal_basis, e->legal_basis != NULL);
    ck_assert_str_eq(v.basis, e->legal_basis ? e->legal_basis->basis : "");
    ck_assert_uint_eq(v.n_subject_keys, e->n_subject_keys);
    for (size_t k = 0; k < e->n_subject_keys; k++) {
        ck_assert_uint_eq(v.subject_keys[k].len, e->subject_keys[k].len);
        ck_assert_int_eq(memcmp(v.subject_keys[k].data, e->subject_keys[k].data, e->subject_keys[k].len), 0);
    }
    ketenbus__envelope__free_unpacked(e, NULL);
    free(buf);
}
END_TEST

/* Bytes kb_envelope_view must refuse (KB_EPROTO), and two it reads. */
static const struct {
    const char *name;       /* what is wrong */
    const uint8_t *bytes;   /* the input */
    size_t len;             /* its length */
    int rc;                 /* expected result */
} s_view_rows[] = {
#define ROW(name, rc, ...) {name, (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}), rc}
    ROW("field number 0", KB_EPROTO, 0x02, 0x01, 'a'),
    ROW("sender cut off", KB_EPROTO, 0x12, 0x05, 'p', 'o'),
    ROW("sender as a varint", KB_EPROTO, 0x10, 0x01),
    ROW("kind as bytes", KB_EPROTO, 0x22, 0x01, 0x01),
    ROW("NUL in sender", KB_EPROTO, 0x12, 0x03, 'a', 0x00, 'b'),
    ROW("group wire type", KB_EPROTO, 0x13),
    ROW("varint of 11 bytes", KB_EPROTO, 0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01),
    ROW("legal_basis with a cut-off basis", KB_EPROTO, 0x3a, 0x03, 0x0a, 0x05, 'x'),
    ROW("legal_basis.basis as a varint", KB_EPROTO, 0x3a, 0x02, 0x08, 0x01),
    ROW("unknown fields are skipped", KB_OK, 0xa2, 0x06, 0x01, 'x', 0x12, 0x01, 'a', 0x28, 0x03),
#undef ROW
};
#define N_VIEW_ROWS (sizeof s_view_rows / sizeof s_view_rows[0])

START_TEST(test_view_malformed)
{
    kb_envelope_view_t v;
    ck_assert_msg(kb_envelope_view(s_view_rows[_i].bytes, s_view_rows[_i].len, &v) == s_view_rows[_i].rc, "%s",
                  s_view_rows[_i].name);
    ck_assert_int_eq(kb_envelope_view(NULL, 1, &v), KB_EINVAL);
}
END_TEST

/* Limits: no bytes at all, a sender one byte too long, 33 subject keys. */
START_TEST(test_view_limits)
{
    uint8_t buf[64 + 34 * 4] = {0};
    kb_envelope_view_t v;
    ck_assert_int_eq(kb_envelope_view(buf, 0, &v), KB_OK);
    ck_assert_str_eq(v.sender, "");
    buf[0] = 0x12;
    buf[1] = KB_AGENCY_ID_MAX + 1;
    memset(buf + 2, 'a', KB_AGENCY_ID_MAX + 1);
    ck_assert_int_eq(kb_envelope_view(buf, 2 + KB_AGENCY_ID_MAX + 1, &v), KB_EPROTO);
    ck_assert_int_eq(kb_envelope_view(buf, 2 + KB_AGENCY_ID_MAX + 1 - 1, &v), KB_EPROTO); /* cut off */
    buf[1] = KB_AGENCY_ID_MAX;
    ck_assert_int_eq(kb_envelope_view(buf, 2 + KB_AGENCY_ID_MAX, &v), KB_OK);
    ck_assert_uint_eq(strlen(v.sender), KB_AGENCY_ID_MAX);
    size_t n = 0;
    for (unsigned k = 0; k <= KB_MAX_SUBJECT_KEYS; k++) {
        buf[n++] = 0x52; /* field 10, bytes */
        buf[n++] = 2;
        buf[n++] = (uint8_t)k;
        buf[n++] = 0xff;
    }
    ck_assert_int_eq(kb_envelope_view(buf, n - 4, &v), KB_OK);
    ck_assert_uint_eq(v.n_subject_keys, KB_MAX_SUBJECT_KEYS);
    ck_assert_int_eq(v.subject_keys[7].data[0], 7);
    ck_assert_int_eq(kb_envelope_view(buf, n, &v), KB_EPROTO);
}
END_TEST

/* Paths kb_envelope_carries is asked about on every valid envelope:
 * leaves and messages of each payload, withheld or sealed in some rows. */
static const char *const s_carry_paths[] = {
    "signal.narrative",      "signal.observed",   "signal.observed.location", "signal.observed.municipality",
    "signal.indicators",     "signal.minor",      "signal.age_band",          "referral.reason",
    "referral.signal",       "referral.contact",  "referral.signal.narrative", "referral_update.reason",
    "referral_update.status", "notice.text",      "notice.agencies",
};
#define N_CARRY_PATHS (sizeof s_carry_paths / sizeof s_carry_paths[0])

/* The packed bytes of e (malloc'd, *len bytes). */
static uint8_t *s_packed(const Ketenbus__Envelope *e, size_t *len)
{
    *len = ketenbus__envelope__get_packed_size(e);
    uint8_t *buf = malloc(*len ? *len : 1);
    ck_assert_ptr_nonnull(buf);
    ketenbus__envelope__pack(e, buf);
    return buf;
}

/* kb_envelope_carries says 1 of every valid envelope's bytes and path
 * exactly when kb_seal_redact changes the envelope, 0 otherwise. */
START_TEST(test_carries_matches_redact)
{
    ck_assert_int_eq(s_make_good(_i), 1);
    size_t len = 0;
    uint8_t *buf = s_packed(&s_fx.env, &len);
    for (size_t k = 0; k < N_CARRY_PATHS; k++) {
        const char *path = s_carry_paths[k];
        Ketenbus__Envelope *e = ketenbus__envelope__unpack(NULL, len, buf);
        ck_assert_ptr_nonnull(e);
        size_t before_len = 0, after_len = 0;
        uint8_t *before = s_packed(e, &before_len);
        int rc = kb_seal_redact(e, path);
        if (rc == KB_ETOOBIG) {
            /* a list of KB_MAX_SEALS withheld paths takes no other */
            ck_assert_uint_eq(e->n_withheld, KB_MAX_SEALS);
            free(before);
            ketenbus__envelope__free_unpacked(e, NULL);
            continue;
        }
        ck_assert_int_eq(rc, KB_OK);
        uint8_t *after = s_packed(e, &after_len);
        int changed = before_len != after_len || memcmp(before, after, before_len) != 0;
        ck_assert_msg(kb_envelope_carries(buf, len, path) == changed, "row %d, %s: redacting it %s the envelope", _i,
                      path, changed ? "changes" : "does not change");
        /* once withheld, nothing is left to withhold */
        ck_assert_int_eq(kb_envelope_carries(after, after_len, path), 0);
        free(before);
        free(after);
        ketenbus__envelope__free_unpacked(e, NULL);
    }
    free(buf);
}
END_TEST

/* Bytes and arguments kb_envelope_carries refuses, and what it reads of a
 * hand-made envelope. */
START_TEST(test_carries_malformed)
{
    /* signal { narrative: "x" }: field 20 { field 12 } */
    static const uint8_t narrative[] = {0xa2, 0x01, 0x03, 0x62, 0x01, 'x'};
    /* a seal of signal.observed.location with a salt, and no payload */
    static const uint8_t seal[] = {0xf2, 0x01, 0x1e, 0x0a, 0x18, 's', 'i', 'g', 'n', 'a', 'l', '.', 'o', 'b', 's', 'e',
                                   'r', 'v', 'e', 'd', '.', 'l', 'o', 'c', 'a', 't', 'i', 'o', 'n', 0x12, 0x02, 0x01, 0x02};
    static const uint8_t cut[] = {0xa2, 0x01, 0x05, 0x62, 0x01};       /* signal of 5 bytes, 2 there */
    static const uint8_t inner_cut[] = {0xa2, 0x01, 0x02, 0x62, 0x05}; /* narrative of 5 bytes, 0 there */
    static const uint8_t seal_cut[] = {0xf2, 0x01, 0x02, 0x0a, 0x05};  /* seal path of 5 bytes, 0 there */
    ck_assert_int_eq(kb_envelope_carries(narrative, sizeof narrative, "signal.narrative"), 1);
    ck_assert_int_eq(kb_envelope_carries(narrative, sizeof narrative, "signal.observed"), 0);
    ck_assert_int_eq(kb_envelope_carries(narrative, sizeof narrative, "referral.signal.narrative"), 0);
    ck_assert_int_eq(kb_envelope_carries(seal, sizeof seal, "signal.observed"), 1);
    ck_assert_int_eq(kb_envelope_carries(seal, sizeof seal, "signal.observed.location"), 1);
    ck_assert_int_eq(kb_envelope_carries(seal, sizeof seal, "signal.observed.municipality"), 0);
    ck_assert_int_eq(kb_envelope_carries(cut, sizeof cut, "signal.narrative"), KB_EPROTO);
    ck_assert_int_eq(kb_envelope_carries(inner_cut, sizeof inner_cut, "signal.narrative"), KB_EPROTO);
    ck_assert_int_eq(kb_envelope_carries(seal_cut, sizeof seal_cut, "signal.narrative"), KB_EPROTO);
    ck_assert_int_eq(kb_envelope_carries(NULL, 0, "signal.narrative"), 0);
    ck_assert_int_eq(kb_envelope_carries(NULL, 1, "signal.narrative"), KB_EINVAL);
    ck_assert_int_eq(kb_envelope_carries(narrative, sizeof narrative, NULL), KB_EINVAL);
    ck_assert_int_eq(kb_envelope_carries(narrative, sizeof narrative, "signal"), KB_EINVAL);
    ck_assert_int_eq(kb_envelope_carries(narrative, sizeof narrative, "signal.no_such_field"), KB_EINVAL);
}
END_TEST

/* kb_deliver_encode makes the bytes kb_frame_encode makes of the same
 * deliveries unpacked: tags 0, small and large, envelopes of 0, small and
 * over 16 KiB (length varints of one, two and three bytes). */
START_TEST(test_deliver_encode_same_bytes)
{
    const size_t n = (size_t)_i + 1;
    kb_delivery_raw_t raw[4];
    uint8_t *packed[4];
    Ketenbus__Delivery items[4], *ptrs[4];
    static const uint64_t tags[4] = {0, 1, 300, UINT64_MAX};
    for (size_t k = 0; k < n; k++) {
        ck_assert_int_eq(s_make_good((int)k), 1);
        if (k == 2)
            s_fx.signal.narrative = s_text(20000, 'n');
        Ketenbus__Envelope *e = &s_fx.env;
        size_t len = ketenbus__envelope__get_packed_size(e);
        packed[k] = malloc(len ? len : 1);
        ketenbus__envelope__pack(e, packed[k]);
        raw[k] = (kb_delivery_raw_t){tags[k], packed[k], len};
        ketenbus__delivery__init(&items[k]);
        items[k].tag = tags[k];
        items[k].envelope = ketenbus__envelope__unpack(NULL, len, packed[k]);
        ck_assert_ptr_nonnull(items[k].envelope);
        ptrs[k] = &items[k];
    }
    Ketenbus__Deliver dv;
    ketenbus__deliver__init(&dv);
    dv.n_deliveries = n;
    dv.deliveries = ptrs;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_DELIVER;
    f.deliver = &dv;
    uint8_t *want = NULL, *got = NULL;
    size_t want_len = 0, got_len = 0;
    ck_assert_int_eq(kb_frame_encode(&f, &want, &want_len), KB_OK);
    ck_assert_int_eq(kb_deliver_encode(raw, n, &got, &got_len), KB_OK);
    ck_assert_uint_eq(got_len, want_len);
    ck_assert_int_eq(memcmp(got, want, want_len), 0);
    Ketenbus__Frame *back = NULL;
    ck_assert_int_eq(kb_frame_decode(got, got_len, got_len, &back), KB_OK);
    ck_assert_uint_eq(back->deliver->n_deliveries, n);
    ketenbus__frame__free_unpacked(back, NULL);
    for (size_t k = 0; k < n; k++) {
        ketenbus__envelope__free_unpacked(items[k].envelope, NULL);
        free(packed[k]);
    }
    free(want);
    free(got);
    ck_assert_int_eq(kb_deliver_encode(raw, 0, &got, &got_len), KB_EINVAL);
    ck_assert_ptr_null(got);
    ck_assert_int_eq(kb_deliver_encode(NULL, 1, &got, &got_len), KB_EINVAL);
    ck_assert_int_eq(kb_deliver_encode(raw, KB_MAX_BATCH + 1, &got, &got_len), KB_EINVAL);
}
END_TEST

/* kb_receipt_encode around receipts packed one after another makes the
 * bytes kb_frame_encode makes of one receipt holding all their entries, in
 * order, with the request_id given: how the broker joins the receipts of
 * one peer's SUBMITs in a turn. _i: request_id 0 (not written), small,
 * several varint bytes, UINT64_MAX. */
/* kb_submit_encode makes the bytes kb_frame_encode makes of the same
 * SUBMIT frame unpacked, with and without a request id, and the broker's
 * decoder reads back every envelope. */
START_TEST(test_submit_encode_same_bytes)
{
    const size_t n = (size_t)_i + 1;
    static const uint64_t request_ids[4] = {0, 1, 300, UINT64_MAX};
    kb_packed_t raw[4];
    uint8_t *packed[4];
    Ketenbus__Envelope *envs[4];
    for (size_t k = 0; k < n; k++) {
        ck_assert_int_eq(s_make_good((int)k), 1);
        if (k == 2)
            s_fx.signal.narrative = s_text(20000, 'n');
        size_t len = ketenbus__envelope__get_packed_size(&s_fx.env);
        packed[k] = malloc(len ? len : 1);
        ketenbus__envelope__pack(&s_fx.env, packed[k]);
        raw[k] = (kb_packed_t){packed[k], len};
        envs[k] = ketenbus__envelope__unpack(NULL, len, packed[k]);
        ck_assert_ptr_nonnull(envs[k]);
    }
    Ketenbus__Submit sub;
    ketenbus__submit__init(&sub);
    sub.n_envelopes = n;
    sub.envelopes = envs;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.body_case = KETENBUS__FRAME__BODY_SUBMIT;
    f.submit = &sub;
    f.request_id = request_ids[_i];
    uint8_t *want = NULL, *got = NULL;
    size_t want_len = 0, got_len = 0;
    ck_assert_int_eq(kb_frame_encode(&f, &want, &want_len), KB_OK);
    ck_assert_int_eq(kb_submit_encode(request_ids[_i], raw, n, &got, &got_len), KB_OK);
    ck_assert_uint_eq(got_len, want_len);
    ck_assert_int_eq(memcmp(got, want, want_len), 0);
    Ketenbus__Frame *back = NULL;
    ck_assert_int_eq(kb_frame_decode(got, got_len, got_len, &back), KB_OK);
    ck_assert_uint_eq(back->request_id, request_ids[_i]);
    ck_assert_int_eq(back->body_case, KETENBUS__FRAME__BODY_SUBMIT);
    ck_assert_uint_eq(back->submit->n_envelopes, n);
    for (size_t k = 0; k < n; k++)
        ck_assert_int_eq(memcmp(back->submit->envelopes[k]->message_id.data, envs[k]->message_id.data, 16), 0);
    ketenbus__frame__free_unpacked(back, NULL);
    for (size_t k = 0; k < n; k++) {
        ketenbus__envelope__free_unpacked(envs[k], NULL);
        free(packed[k]);
    }
    free(want);
    free(got);
    ck_assert_int_eq(kb_submit_encode(1, raw, 0, &got, &got_len), KB_EINVAL);
    ck_assert_ptr_null(got);
    ck_assert_int_eq(kb_submit_encode(1, NULL, 1, &got, &got_len), KB_EINVAL);
    ck_assert_int_eq(kb_submit_encode(1, raw, KB_MAX_BATCH + 1, &got, &got_len), KB_EINVAL);
    ck_assert_int_eq(kb_submit_encode(1, raw, 1, NULL, &got_len), KB_EINVAL);
}
END_TEST

START_TEST(test_receipt_encode_joins)
{
    static const uint64_t reqs[4] = {0, 7, 300000, UINT64_MAX};
    enum { N = 5 };
    Ketenbus__ReceiptEntry ent[N], *ptrs[N];
    uint8_t ids[N][16];
    char *recip[] = {(char *)"police", (char *)"fier"};
    for (size_t k = 0; k < N; k++) {
        ketenbus__receipt_entry__init(&ent[k]);
        memset(ids[k], 0xa0 + (int)k, sizeof ids[k]);
        ent[k].message_id.data = ids[k];
        ent[k].message_id.len = sizeof ids[k];
        ent[k].outcome = k == 3 ? KETENBUS__OUTCOME__OUTCOME_REJECTED : KETENBUS__OUTCOME__OUTCOME_ACCEPTED;
        ent[k].audit_index = 1000 * k;
        if (k == 3) {
            ent[k].code = KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED;
            ent[k].reason = (char *)"no rule allows any recipient";
        } else {
            ent[k].n_recipients = k % 2 + 1;
            ent[k].recipients = recip;
        }
        ptrs[k] = &ent[k];
    }
    /* three SUBMITs answered by 2, 0 and 3 entries */
    static const size_t parts[3] = {2, 0, 3};
    uint8_t body[4096];
    size_t body_len = 0, at = 0;
    for (size_t p = 0; p < 3; p++) {
        Ketenbus__Receipt r;
        ketenbus__receipt__init(&r);
        r.n_entries = parts[p];
        r.entries = ptrs + at;
        size_t add = ketenbus__receipt__get_packed_size(&r);
        ck_assert_uint_le(body_len + add, sizeof body);
        ck_assert_uint_eq(ketenbus__receipt__pack(&r, body + body_len), add);
        body_len += add;
        at += parts[p];
    }
    Ketenbus__Receipt all;
    ketenbus__receipt__init(&all);
    all.n_entries = N;
    all.entries = ptrs;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.request_id = reqs[_i];
    f.body_case = KETENBUS__FRAME__BODY_RECEIPT;
    f.receipt = &all;
    uint8_t *want = NULL, *got = NULL;
    size_t want_len = 0, got_len = 0;
    ck_assert_int_eq(kb_frame_encode(&f, &want, &want_len), KB_OK);
    ck_assert_int_eq(kb_receipt_encode(reqs[_i], body, body_len, &got, &got_len), KB_OK);
    ck_assert_uint_eq(got_len, want_len);
    ck_assert_int_eq(memcmp(got, want, want_len), 0);
    Ketenbus__Frame *back = NULL;
    ck_assert_int_eq(kb_frame_decode(got, got_len, got_len, &back), KB_OK);
    ck_assert_uint_eq(back->request_id, reqs[_i]);
    ck_assert_uint_eq(back->receipt->n_entries, N);
    for (size_t k = 0; k < N; k++) {
        ck_assert_int_eq(memcmp(back->receipt->entries[k]->message_id.data, ids[k], 16), 0);
        ck_assert_uint_eq(back->receipt->entries[k]->audit_index, 1000 * k);
    }
    ck_assert_str_eq(back->receipt->entries[3]->reason, "no rule allows any recipient");
    ketenbus__frame__free_unpacked(back, NULL);
    free(want);
    free(got);
    /* no entries at all: still a RECEIPT frame */
    ck_assert_int_eq(kb_receipt_encode(reqs[_i], NULL, 0, &got, &got_len), KB_OK);
    ck_assert_int_eq(kb_frame_decode(got, got_len, got_len, &back), KB_OK);
    ck_assert_int_eq(back->body_case, KETENBUS__FRAME__BODY_RECEIPT);
    ck_assert_uint_eq(back->receipt->n_entries, 0);
    ketenbus__frame__free_unpacked(back, NULL);
    free(got);
    got = NULL;
    ck_assert_int_eq(kb_receipt_encode(1, NULL, 5, &got, &got_len), KB_EINVAL);
    ck_assert_ptr_null(got);
    ck_assert_int_eq(kb_receipt_encode(1, body, body_len, NULL, &got_len), KB_EINVAL);
}
END_TEST

/* ----------------------------------------------------- invalid envelopes */

/* A field from a newer proto: neither signed nor redactable. protobuf-c
 * keeps the length prefix of such a field in its data. */
static uint8_t s_unknown_data[] = {3, 'a', 'b', 'c'};
static ProtobufCMessageUnknownField s_unknown = {99, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, sizeof s_unknown_data,
                                                 s_unknown_data};

/* Break the i-th thing of a valid envelope in s_fx; returns the reason
 * kb_envelope_validate() must give, NULL past the last one. */
static const char *s_make_bad(int i)
{
    Ketenbus__Envelope *e = &s_fx.env;
    s_fixture(KETENBUS__KIND__KIND_SIGNAL);
    switch (i) {
    case 0:
        e->message_id.len = 3;
        return "message_id: expected 16 bytes, got 3";
    case 1:
        e->message_id.len = 0;
        return "message_id: expected 16 bytes, got 0";
    case 2:
        s_fx.id[6] = 0x4a;
        return "message_id: not a UUIDv7 (version 4)";
    case 3:
        s_fx.id[8] = 0xcd;
        return "message_id: not a UUIDv7 (variant";
    case 4:
        e->sender = "";
        return "sender: empty agency id";
    case 5:
        e->sender = s_text(KB_AGENCY_ID_MAX + 1, 'a');
        return "sender: agency id longer than 32";
    case 6:
        e->sender = "Politie";
        return "sender: invalid character 0x50 at offset 0";
    case 7:
        e->sender = "pol itie";
        return "sender: invalid character 0x20 at offset 3";
    case 8:
        for (size_t k = 0; k <= KB_MAX_RECIPIENTS; k++)
            s_fx.recipients[k] = s_fx.ids[k];
        e->n_recipients = KB_MAX_RECIPIENTS + 1;
        return "recipients: 65 entries, at most 64";
    case 9:
        s_fx.recipients[1] = "om_x";
        return "recipients[1]: invalid character 0x5f";
    case 10:
        s_fx.recipients[2] = "rvdk";
        e->n_recipients = 3;
        return "recipients[2]: duplicate of recipients[0]";
    case 11:
        s_fx.recipients[0] = "";
        return "recipients[0]: empty agency id";
    case 12:
        e->kind = KETENBUS__KIND__KIND_UNSPECIFIED;
        return "kind: not set";
    case 13:
        e->kind = (Ketenbus__Kind)99;
        return "kind: unknown value 99";
    case 14:
        e->purpose = KETENBUS__PURPOSE__PURPOSE_UNSPECIFIED;
        return "purpose: not set";
    case 15:
        e->purpose = (Ketenbus__Purpose)42;
        return "purpose: unknown value 42";
    case 16:
        e->handling = KETENBUS__HANDLING__HANDLING_UNSPECIFIED;
        return "handling: not set";
    case 17:
        e->handling = (Ketenbus__Handling)-7;
        return "handling: unknown value -7";
    case 18:
        e->legal_basis = NULL;
        return "legal_basis: missing";
    case 19:
        s_fx.basis.basis = "";
        return "legal_basis.basis: empty";
    case 20:
        s_fx.basis.basis = s_text(KB_SHORT_TEXT_MAX + 1, 'b');
        return "legal_basis.basis: longer than 256 bytes";
    case 21:
        s_fx.basis.consent = KETENBUS__CONSENT__CONSENT_UNSPECIFIED;
        return "legal_basis.consent: not set";
    case 22:
        s_fx.basis.consent = (Ketenbus__Consent)9;
        return "legal_basis.consent: unknown value 9";
    case 23:
        s_fx.basis.consent = KETENBUS__CONSENT__CONSENT_GIVEN;
        return "legal_basis.consent_reference: required when consent is given";
    case 24:
        s_fx.basis.consent_reference = s_text(KB_SHORT_TEXT_MAX + 1, 'r');
        return "legal_basis.consent_reference: longer than 256 bytes";
    case 25:
        e->created_us = 0;
        return "created_us: must be positive, got 0";
    case 26:
        e->created_us = -5;
        return "created_us: must be positive, got -5";
    case 27:
        e->correlation_id = (ProtobufCBinaryData){5, s_fx.corr};
        return "correlation_id: expected 0 or 16 bytes, got 5";
    case 28:
        e->n_subject_keys = KB_MAX_SUBJECT_KEYS + 1;
        return "subject_keys: 33 entries, at most 32";
    case 29:
        e->n_subject_keys = 2;
        s_fx.subject_keys[1].len = KB_SUBJECT_KEY_LEN - 1;
        return "subject_keys[1]: expected 32 bytes, got 31";
    case 30:
        e->officer = s_text(KB_SHORT_TEXT_MAX + 1, 'o');
        return "officer: longer than 256 bytes";
    case 31:
        e->officer = "AB\xc3\x28";
        return "officer: not valid UTF-8";
    case 32:
        e->n_seals = KB_MAX_SEALS + 1;
        return "seals: 65 entries, at most 64";
    case 33:
        s_fx.seal.path = s_text(KB_SHORT_TEXT_MAX + 1, 'p');
        return "seals[0].path: longer than 256 bytes";
    case 34:
        s_fx.seal.path = "";
        return "seals[0].path: empty";
    case 35:
        s_fx.seal.digest.len = KB_DIGEST_LEN - 1;
        return "seals[0].digest: expected 32 bytes, got 31";
    case 36:
        s_fx.seal.salt.len = 8;
        return "seals[0].salt: expected 0 or 16 bytes, got 8";
    case 37:
        e->signature.len = 10;
        return "signature: expected 0 or 64 bytes, got 10";
    case 38:
        e->n_withheld = KB_MAX_SEALS + 1;
        return "withheld: 65 entries, at most 64";
    case 39:
        s_fx.withheld[0] = s_text(KB_SHORT_TEXT_MAX + 1, 'w');
        e->n_withheld = 1;
        return "withheld[0]: longer than 256 bytes";
    case 40:
        e->payload_case = KETENBUS__ENVELOPE__PAYLOAD__NOT_SET;
        e->signal = NULL;
        return "payload: missing, kind signal needs signal";
    case 41:
        e->kind = KETENBUS__KIND__KIND_REFERRAL;
        return "payload: kind referral needs referral, got signal";
    case 42:
        s_fixture(KETENBUS__KIND__KIND_REFERRAL_UPDATE);
        e->kind = KETENBUS__KIND__KIND_MATCH_NOTICE;
        return "payload: kind match_notice needs notice, got referral_update";
    case 43:
        s_fx.signal.exploitation = KETENBUS__EXPLOITATION__EXPLOITATION_UNSPECIFIED;
        return "signal.exploitation: not set";
    case 44:
        s_fx.signal.urgency = (Ketenbus__Urgency)9;
        return "signal.urgency: unknown value 9";
    case 45:
        s_fx.signal.n_indicators = KB_MAX_INDICATORS + 1;
        return "signal.indicators: 33 entries, at most 32";
    case 46:
        s_fx.indicators[1] = (Ketenbus__Indicator)99;
        return "signal.indicators[1]: unknown value 99";
    case 47:
        s_fx.indicators[0] = KETENBUS__INDICATOR__INDICATOR_UNSPECIFIED;
        return "signal.indicators[0]: unspecified value in list";
    case 48:
        s_fx.signal.narrative = "surrogate \xed\xa0\x80 half";
        return "signal.narrative: not valid UTF-8";
    case 49:
        s_fx.signal.narrative = s_text(KB_TEXT_MAX + 1, 'n');
        return "signal.narrative: longer than 65536 bytes";
    case 50:
        s_fx.observed.location = "Utrecht\xc0\xaf";
        return "signal.observed.location: not valid UTF-8";
    case 51:
        s_fx.signal.reliability = (Ketenbus__Reliability)5;
        return "signal.reliability: unknown value 5";
    case 52:
        s_fixture(KETENBUS__KIND__KIND_REFERRAL);
        s_fx.referral.action = KETENBUS__ACTION__ACTION_UNSPECIFIED;
        return "referral.action: not set";
    case 53:
        s_fixture(KETENBUS__KIND__KIND_REFERRAL);
        s_fx.referral.deadline_us = -1;
        return "referral.deadline_us: negative (-1)";
    case 54:
        s_fixture(KETENBUS__KIND__KIND_REFERRAL);
        s_fx.signal.age_band = (Ketenbus__AgeBand)17;
        return "referral.signal.age_band: unknown value 17";
    case 55:
        s_fixture(KETENBUS__KIND__KIND_REFERRAL);
        s_fx.signal.exploitation = KETENBUS__EXPLOITATION__EXPLOITATION_UNSPECIFIED;
        return "referral.signal.exploitation: not set";
    case 56:
        s_fixture(KETENBUS__KIND__KIND_REFERRAL);
        s_fx.referral.contact = "tel \xe2\x82";
        return "referral.contact: not valid UTF-8";
    case 57:
        s_fixture(KETENBUS__KIND__KIND_REFERRAL_UPDATE);
        s_fx.update.status = KETENBUS__REFERRAL_STATUS__REFERRAL_STATUS_UNSPECIFIED;
        return "referral_update.status: not set";
    case 58:
        s_fixture(KETENBUS__KIND__KIND_REFERRAL_UPDATE);
        s_fx.update.status = (Ketenbus__ReferralStatus)8;
        return "referral_update.status: unknown value 8";
    case 59:
        s_fixture(KETENBUS__KIND__KIND_REFERRAL_UPDATE);
        e->correlation_id.len = 0;
        return "correlation_id: required for kind referral_update";
    case 60:
        s_fixture(KETENBUS__KIND__KIND_MATCH_NOTICE);
        s_fx.notice.type = KETENBUS__NOTICE_TYPE__NOTICE_TYPE_UNSPECIFIED;
        return "notice.type: not set";
    case 61:
        s_fixture(KETENBUS__KIND__KIND_MATCH_NOTICE);
        s_fx.notice.type = KETENBUS__NOTICE_TYPE__NOTICE_TYPE_EXPIRED;
        return "notice.type: 1 does not fit kind match_notice";
    case 62:
        s_fixture(KETENBUS__KIND__KIND_EXPIRY_NOTICE);
        s_fx.notice.about_message_id.len = 4;
        return "notice.about_message_id: expected 0 or 16 bytes, got 4";
    case 63:
        s_fixture(KETENBUS__KIND__KIND_EXPIRY_NOTICE);
        s_fx.agencies[0] = "FIER";
        return "notice.agencies[0]: invalid character 0x46";
    case 64:
        s_fixture(KETENBUS__KIND__KIND_MATCH_NOTICE);
        s_fx.notice.text = "beyond \xf4\x90\x80\x80";
        return "notice.text: not valid UTF-8";
    case 65:
        s_fx.withheld[0] = "signal.\xff";
        e->n_withheld = 1;
        return "withheld[0]: not valid UTF-8";
    case 66:
        s_fx.basis.basis = "Wpg \xfe";
        return "legal_basis.basis: not valid UTF-8";
    case 67:
        s_fixture(KETENBUS__KIND__KIND_EXPIRY_NOTICE);
        s_fx.notice.type = (Ketenbus__NoticeType)3;
        return "notice.type: unknown value 3";
    case 68:
        e->base.n_unknown_fields = 1;
        e->base.unknown_fields = &s_unknown;
        return "envelope: unknown field 99";
    case 69:
        s_fx.observed.base.n_unknown_fields = 1;
        s_fx.observed.base.unknown_fields = &s_unknown;
        return "signal.observed: unknown field 99";
    case 70:
        /* item names of two digits and more (joined without printf) */
        e->n_subject_keys = 13;
        s_fx.subject_keys[12].len = KB_SUBJECT_KEY_LEN - 1;
        return "subject_keys[12]: expected 32 bytes, got 31";
    case 71:
        e->n_withheld = KB_MAX_SEALS;
        s_fx.withheld[KB_MAX_SEALS - 1] = s_text(KB_SHORT_TEXT_MAX + 1, 'w');
        return "withheld[63]: longer than 256 bytes";
    default:
        return NULL;
    }
}
#define N_BAD 72

START_TEST(test_invalid_envelopes)
{
    const char *want = s_make_bad(_i);
    ck_assert_ptr_nonnull(want);
    s_expect(&s_fx.env, KB_EPROTO, want);
}
END_TEST

START_TEST(test_bad_table_size)
{
    ck_assert_ptr_null(s_make_bad(N_BAD));
}
END_TEST

START_TEST(test_validate_arguments)
{
    char why[64] = "stale";
    ck_assert_int_eq(kb_envelope_validate(NULL, why, sizeof why), KB_EINVAL);
    ck_assert_str_eq(why, "");

    Ketenbus__Signal not_an_envelope = KETENBUS__SIGNAL__INIT;
    ck_assert_int_eq(kb_envelope_validate((const Ketenbus__Envelope *)(void *)&not_an_envelope, why, sizeof why),
                     KB_EINVAL);

    /* why may be NULL; the reason is still kept as the last error. */
    s_fixture(KETENBUS__KIND__KIND_SIGNAL);
    s_fx.signal.urgency = (Ketenbus__Urgency)9;
    ck_assert_int_eq(kb_envelope_validate(&s_fx.env, NULL, 0), KB_EPROTO);
    ck_assert_str_eq(kb_last_error(), "signal.urgency: unknown value 9");

    /* A short buffer gets a cut, NUL-terminated, marked reason. */
    char tiny[12];
    memset(tiny, 'x', sizeof tiny);
    ck_assert_int_eq(kb_envelope_validate(&s_fx.env, tiny, sizeof tiny), KB_EPROTO);
    ck_assert_str_eq(tiny, "signal.u...");

    /* A one-byte buffer holds just the terminator. */
    char one[1] = {'x'};
    ck_assert_int_eq(kb_envelope_validate(&s_fx.env, one, sizeof one), KB_EPROTO);
    ck_assert_int_eq(one[0], '\0');
}
END_TEST

/* An adapter may not set withheld paths; a delivered envelope may. */
START_TEST(test_validate_submitted)
{
    char why[256];
    s_fixture(KETENBUS__KIND__KIND_SIGNAL);
    ck_assert_int_eq(kb_envelope_validate_submitted(&s_fx.env, why, sizeof why), KB_OK);
    s_fx.env.n_withheld = 1;
    ck_assert_int_eq(kb_envelope_validate(&s_fx.env, why, sizeof why), KB_OK);
    ck_assert_int_eq(kb_envelope_validate_submitted(&s_fx.env, why, sizeof why), KB_EPROTO);
    ck_assert_str_eq(why, "withheld: 1 path given; withheld paths are set by the broker only");
    s_fx.env.n_withheld = KB_MAX_SEALS + 1; /* the general limit still speaks first */
    ck_assert_int_eq(kb_envelope_validate_submitted(&s_fx.env, why, sizeof why), KB_EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "at most 64"));
    ck_assert_int_eq(kb_envelope_validate_submitted(NULL, why, sizeof why), KB_EINVAL);
}
END_TEST

/* ------------------------------------------------------- malformed frames */

/* How a row's bytes are made: given in the row, or built by s_build(). */
typedef enum {
    GEN_RAW,            /* the row's bytes */
    GEN_HUGE,           /* KB_FRAME_MAX_DEFAULT + 1 bytes */
    GEN_TRUNCATED,      /* a valid Hello frame less its last 3 bytes */
    GEN_SUBMIT_MAX,     /* Submit with KB_MAX_BATCH envelopes */
    GEN_SUBMIT_OVER,    /* ... and one more */
    GEN_SUBMIT_SPLIT,   /* two Submit bodies of 600 envelopes each (merged by protobuf-c) */
    GEN_SUBMIT_V2_OVER, /* version 2, KB_MAX_BATCH + 1 envelopes */
    GEN_RECEIPT_OVER,   /* Receipt with KB_MAX_BATCH + 1 entries */
    GEN_DELIVER_OVER,   /* Deliver with KB_MAX_BATCH + 1 deliveries */
    GEN_ACK_PACKED_MAX, /* Ack with KB_MAX_BATCH packed tags */
    GEN_ACK_PACKED_OVER,
    GEN_ACK_LOOSE_OVER  /* Ack with KB_MAX_BATCH + 1 unpacked tags */
} gen_t;

/* Literal bytes and their length for a GEN_RAW row. */
#define RAW(s) (const uint8_t *)(s), sizeof(s) - 1

/* A valid ping with request id 7 (7 bytes). */
#define PING_V1 "\x08\x01\x10\x07\x8a\x01\x00"

static const struct {
    const char *name;      /* what the row is about */
    const uint8_t *bytes;  /* GEN_RAW: the frame */
    size_t len;            /* GEN_RAW: its length */
    gen_t gen;             /* how the bytes are made */
    size_t max_len;        /* limit passed to kb_frame_decode */
    int rc;                /* expected return */
    uint64_t request_id;   /* expected request_id when *out is handed out */
} s_frames[] = {
    {"empty buffer", RAW(""), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"one 0xff byte", RAW("\xff"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"random garbage", RAW("\xde\xad\xbe\xef\x13\x37\xca\xfe\xba\xbe"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"ascii text", RAW("hello, broker"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"version only, no body", RAW("\x08\x01"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"version and request id, no body", RAW("\x08\x01\x10\x07"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"only an unknown field", RAW("\xa0\x06\x01"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"ping, version 0 given", RAW("\x08\x00\x10\x07\x8a\x01\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EVERSION, 7},
    {"ping, version absent", RAW("\x10\x07\x8a\x01\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EVERSION, 7},
    {"ping, version 2", RAW("\x08\x02\x10\x07\x8a\x01\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EVERSION, 7},
    {"ping, version 2^32-1", RAW("\x08\xff\xff\xff\xff\x0f\x10\x07\x8a\x01\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT,
     KB_EVERSION, 7},
    {"version 2, unknown command", RAW("\x08\x02\x10\x09\xa2\x01\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EVERSION, 9},
    {"valid ping", RAW(PING_V1), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_OK, 7},
    {"valid ping, unknown field", RAW("\x08\x01\x10\x07\xa0\x06\x01\x8a\x01\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_OK,
     7},
    {"ping at the size limit", RAW(PING_V1), GEN_RAW, sizeof PING_V1 - 1, KB_OK, 7},
    {"ping one byte over the limit", RAW(PING_V1), GEN_RAW, sizeof PING_V1 - 2, KB_ETOOBIG, 0},
    {"body length past the end", RAW("\x08\x01\x52\x05\x0a"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"body length missing", RAW("\x08\x01\x52"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"body length 2^63-1", RAW("\x08\x01\x52\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), GEN_RAW, KB_FRAME_MAX_DEFAULT,
     KB_EPROTO, 0},
    {"hello sent as a varint", RAW("\x08\x01\x50\x01"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"submit sent as a varint", RAW("\x08\x01\x60\x01"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"group wire type", RAW("\x08\x01\x0b\x0c\x8a\x01\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"wire type 7", RAW("\x08\x01\x0f\x8a\x01\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"field number 0", RAW("\x00\x01\x8a\x01\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"11-byte varint", RAW("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x8a\x01\x00"), GEN_RAW,
     KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"request id as a cut fixed64", RAW("\x08\x01\x11\x01\x02"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"ping body of garbage", RAW("\x08\x01\x8a\x01\x02\xff\xff"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"hello string past its body", RAW("\x08\x01\x52\x04\x0a\x05" "ab"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO,
     0},
    /* protobuf-c accepts an overlong tag of field 0 and re-encodes it into
     * bytes it refuses: found by tests/fuzz/fuzz_frame.c. */
    {"field 0 as an overlong tag in hello", RAW("\x08\x01\x52\x03\x82\x00\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT,
     KB_EPROTO, 0},
    {"field 0 deep in a submitted envelope",
     RAW("\x08\x01\x62\x0a\x0a\x08\xa2\x01\x05\x2a\x03\x82\x00\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO,
     0},
    /* protobuf-c would cut these strings at the NUL without a word. */
    {"NUL byte in hello.adapter_name", RAW("\x08\x01\x52\x05\x0a\x03" "a\x00" "b"), GEN_RAW, KB_FRAME_MAX_DEFAULT,
     KB_EPROTO, 0},
    {"NUL byte in a submitted sender", RAW("\x08\x01\x62\x07\x0a\x05\x12\x03" "po\x00"), GEN_RAW,
     KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"NUL byte in bytes is fine", RAW("\x08\x01\x62\x07\x0a\x05\x0a\x03" "\x01\x00\x02"), GEN_RAW,
     KB_FRAME_MAX_DEFAULT, KB_OK, 0},
    {"group inside a ping", RAW("\x08\x01\x8a\x01\x01\x0b"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"length past the end of a nested body", RAW("\x08\x01\x62\x04\x0a\x02\x12\x05"), GEN_RAW,
     KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"ack with a cut packed varint", RAW("\x08\x01\x7a\x03\x0a\x01\x80"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"oversized frame", NULL, 0, GEN_HUGE, KB_FRAME_MAX_DEFAULT, KB_ETOOBIG, 0},
    {"truncated valid frame", NULL, 0, GEN_TRUNCATED, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"submit with KB_MAX_BATCH envelopes", NULL, 0, GEN_SUBMIT_MAX, KB_FRAME_MAX_DEFAULT, KB_OK, 0},
    {"submit with too many envelopes", NULL, 0, GEN_SUBMIT_OVER, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"submit split over two bodies", NULL, 0, GEN_SUBMIT_SPLIT, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"version 2 submit with too many", NULL, 0, GEN_SUBMIT_V2_OVER, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"receipt with too many entries", NULL, 0, GEN_RECEIPT_OVER, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"deliver with too many deliveries", NULL, 0, GEN_DELIVER_OVER, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"ack with KB_MAX_BATCH packed tags", NULL, 0, GEN_ACK_PACKED_MAX, KB_FRAME_MAX_DEFAULT, KB_OK, 0},
    {"ack with too many packed tags", NULL, 0, GEN_ACK_PACKED_OVER, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"ack with too many unpacked tags", NULL, 0, GEN_ACK_LOOSE_OVER, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    /* protobuf-c allocates every occurrence of a singular field, and keeps the last */
    {"version given twice", RAW("\x08\x01\x08\x01\x8a\x01\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"ping and credit in one frame", RAW("\x08\x01\x8a\x01\x00\x82\x01\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT,
     KB_EPROTO, 0},
    {"envelope sender given twice", RAW("\x08\x01\x62\x08\x0a\x06\x12\x01" "a" "\x12\x01" "b"), GEN_RAW,
     KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"legal basis given twice", RAW("\x08\x01\x62\x06\x0a\x04\x3a\x00\x3a\x00"), GEN_RAW,
     KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
    {"8 unknown fields in a ping", RAW("\x08\x01\x8a\x01\x10\x78\x00\x78\x00\x78\x00\x78\x00\x78\x00\x78\x00"
                                        "\x78\x00\x78\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_OK, 0},
    {"9 unknown fields in a ping", RAW("\x08\x01\x8a\x01\x12\x78\x00\x78\x00\x78\x00\x78\x00\x78\x00\x78\x00"
                                        "\x78\x00\x78\x00\x78\x00"), GEN_RAW, KB_FRAME_MAX_DEFAULT, KB_EPROTO, 0},
};
#define N_FRAMES (sizeof s_frames / sizeof s_frames[0])

/* A growing byte string for hand-made frames. */
typedef struct {
    uint8_t *buf; /* the bytes */
    size_t len;   /* bytes used */
    size_t cap;   /* bytes allocated */
} wire_t;

static void s_put(wire_t *w, const void *p, size_t n)
{
    if (!w->buf || w->len + n > w->cap) {
        w->cap = (w->len + n) * 2 + 1; /* never NULL, even for no bytes */
        w->buf = realloc(w->buf, w->cap);
        ck_assert_ptr_nonnull(w->buf);
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void s_put_varint(wire_t *w, uint64_t v)
{
    do {
        uint8_t b = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            b |= 0x80;
        s_put(w, &b, 1);
    } while (v);
}

/* Append a length-delimited field. */
static void s_put_field(wire_t *w, uint32_t field, const wire_t *body)
{
    s_put_varint(w, (uint64_t)field << 3 | 2);
    s_put_varint(w, body->len);
    s_put(w, body->buf, body->len);
}

/* Item styles of a batch body. */
enum { ITEM_MESSAGE, ITEM_PACKED, ITEM_LOOSE };

/* A frame of the given version with `bodies` copies of a batch body of n
 * items in field 1. */
static wire_t s_batch(uint32_t version, uint32_t body_field, size_t n, int style, int bodies)
{
    wire_t body = {0}, frame = {0};
    if (style == ITEM_PACKED) {
        wire_t tags = {0};
        for (size_t i = 0; i < n; i++)
            s_put_varint(&tags, 1 + i);
        s_put_field(&body, 1, &tags);
        free(tags.buf);
    } else {
        static const uint8_t empty_message[] = {0x0a, 0x00}, loose_tag[] = {0x08, 0x05};
        for (size_t i = 0; i < n; i++)
            s_put(&body, style == ITEM_LOOSE ? loose_tag : empty_message, 2);
    }
    s_put_varint(&frame, 1 << 3);
    s_put_varint(&frame, version);
    for (int b = 0; b < bodies; b++)
        s_put_field(&frame, body_field, &body);
    free(body.buf);
    return frame;
}

/* The bytes of frame row i (malloc'd). */
static wire_t s_build(size_t i)
{
    wire_t w = {0};
    switch (s_frames[i].gen) {
    case GEN_RAW:
        s_put(&w, s_frames[i].bytes, s_frames[i].len);
        break;
    case GEN_HUGE: {
        w.len = w.cap = KB_FRAME_MAX_DEFAULT + 1;
        w.buf = calloc(1, w.cap);
        ck_assert_ptr_nonnull(w.buf);
        break;
    }
    case GEN_TRUNCATED: {
        Ketenbus__Hello hello = KETENBUS__HELLO__INIT;
        hello.adapter_name = "fier-case-system";
        hello.software = "ketenbus-adapter 0.1.0";
        Ketenbus__Frame f = KETENBUS__FRAME__INIT;
        f.request_id = 3;
        f.body_case = KETENBUS__FRAME__BODY_HELLO;
        f.hello = &hello;
        ck_assert_int_eq(kb_frame_encode(&f, &w.buf, &w.len), KB_OK);
        w.len -= 3;
        break;
    }
    case GEN_SUBMIT_MAX:
        return s_batch(1, KETENBUS__FRAME__BODY_SUBMIT, KB_MAX_BATCH, ITEM_MESSAGE, 1);
    case GEN_SUBMIT_OVER:
        return s_batch(1, KETENBUS__FRAME__BODY_SUBMIT, KB_MAX_BATCH + 1, ITEM_MESSAGE, 1);
    case GEN_SUBMIT_SPLIT:
        return s_batch(1, KETENBUS__FRAME__BODY_SUBMIT, 600, ITEM_MESSAGE, 2);
    case GEN_SUBMIT_V2_OVER:
        return s_batch(2, KETENBUS__FRAME__BODY_SUBMIT, KB_MAX_BATCH + 1, ITEM_MESSAGE, 1);
    case GEN_RECEIPT_OVER:
        return s_batch(1, KETENBUS__FRAME__BODY_RECEIPT, KB_MAX_BATCH + 1, ITEM_MESSAGE, 1);
    case GEN_DELIVER_OVER:
        return s_batch(1, KETENBUS__FRAME__BODY_DELIVER, KB_MAX_BATCH + 1, ITEM_MESSAGE, 1);
    case GEN_ACK_PACKED_MAX:
        return s_batch(1, KETENBUS__FRAME__BODY_ACK, KB_MAX_BATCH, ITEM_PACKED, 1);
    case GEN_ACK_PACKED_OVER:
        return s_batch(1, KETENBUS__FRAME__BODY_ACK, KB_MAX_BATCH + 1, ITEM_PACKED, 1);
    case GEN_ACK_LOOSE_OVER:
        return s_batch(1, KETENBUS__FRAME__BODY_ACK, KB_MAX_BATCH + 1, ITEM_LOOSE, 1);
    }
    return w;
}

START_TEST(test_malformed_frames)
{
    wire_t w = s_build((size_t)_i);
    Ketenbus__Frame *f = (Ketenbus__Frame *)(uintptr_t)1; /* must be overwritten */
    int rc = kb_frame_decode(w.buf, w.len, s_frames[_i].max_len, &f);
    ck_assert_msg(rc == s_frames[_i].rc, "%s: rc %d (%s), expected %d", s_frames[_i].name, rc, kb_last_error(),
                  s_frames[_i].rc);
    if (rc == KB_OK || rc == KB_EVERSION) {
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(f->request_id, s_frames[_i].request_id);
        if (rc == KB_OK)
            ck_assert_uint_eq(f->version, KB_PROTOCOL_VERSION);
        ketenbus__frame__free_unpacked(f, NULL);
    } else {
        ck_assert_msg(f == NULL, "%s: *out not NULL on error", s_frames[_i].name);
        ck_assert_str_ne(kb_last_error(), "");
    }
    free(w.buf);
}
END_TEST

START_TEST(test_decode_details)
{
    Ketenbus__Frame *f = NULL;
    ck_assert_int_eq(kb_frame_decode(RAW("\x08\x02\x10\x07\x8a\x01\x00"), KB_FRAME_MAX_DEFAULT, &f), KB_EVERSION);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(f->version, 2);
    ck_assert_str_eq(kb_last_error(), "frame: protocol version 2, this side speaks 1");
    ketenbus__frame__free_unpacked(f, NULL);

    ck_assert_int_eq(kb_frame_decode(RAW(PING_V1), 4, &f), KB_ETOOBIG);
    ck_assert_str_eq(kb_last_error(), "frame: 7 bytes, limit 4");

    wire_t w = s_batch(1, KETENBUS__FRAME__BODY_SUBMIT, KB_MAX_BATCH + 1, ITEM_MESSAGE, 1);
    ck_assert_int_eq(kb_frame_decode(w.buf, w.len, KB_FRAME_MAX_DEFAULT, &f), KB_EPROTO);
    ck_assert_str_eq(kb_last_error(), "frame: submit.envelopes: more than 1024 items");
    free(w.buf);

    ck_assert_int_eq(kb_frame_decode(RAW("\x08\x01\x62\x07\x0a\x05\x12\x03" "po\x00"), KB_FRAME_MAX_DEFAULT, &f),
                     KB_EPROTO);
    ck_assert_str_eq(kb_last_error(), "frame: submit.envelopes[0].sender: NUL byte in string");

    w = s_batch(1, KETENBUS__FRAME__BODY_SUBMIT, KB_MAX_BATCH, ITEM_MESSAGE, 1);
    ck_assert_int_eq(kb_frame_decode(w.buf, w.len, KB_FRAME_MAX_DEFAULT, &f), KB_OK);
    ck_assert_uint_eq(f->submit->n_envelopes, KB_MAX_BATCH);
    ketenbus__frame__free_unpacked(f, NULL);
    free(w.buf);

    ck_assert_int_eq(kb_frame_decode(NULL, 1, KB_FRAME_MAX_DEFAULT, &f), KB_EINVAL);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(kb_frame_decode(RAW(PING_V1), KB_FRAME_MAX_DEFAULT, NULL), KB_EINVAL);
}
END_TEST

/* ------------------------------------------------ list limits and memory */

/* How a list's items look on the wire. */
enum { LIST_EMPTY, LIST_LOOSE_VARINT, LIST_PACKED };

/* A list of some message reachable from a Frame: the field numbers from the
 * Frame down to the message holding it, and the list's own. */
typedef struct {
    const char *name;      /* as the refusal names it */
    uint32_t path[4];      /* field numbers from the Frame, 0-terminated */
    uint32_t field;        /* the list's field number */
    int style;             /* LIST_* */
    size_t max;            /* its limit */
} list_row_t;

static const list_row_t s_lists[] = {
    {"submit.envelopes", {KETENBUS__FRAME__BODY_SUBMIT}, 1, LIST_EMPTY, KB_MAX_BATCH},
    {"submit.envelopes[0].seals", {KETENBUS__FRAME__BODY_SUBMIT, 1}, 30, LIST_EMPTY, KB_MAX_SEALS},
    {"submit.envelopes[0].recipients", {KETENBUS__FRAME__BODY_SUBMIT, 1}, 3, LIST_EMPTY, KB_MAX_RECIPIENTS},
    {"submit.envelopes[0].subject_keys", {KETENBUS__FRAME__BODY_SUBMIT, 1}, 10, LIST_EMPTY, KB_MAX_SUBJECT_KEYS},
    {"submit.envelopes[0].withheld", {KETENBUS__FRAME__BODY_SUBMIT, 1}, 32, LIST_EMPTY, KB_MAX_SEALS},
    {"submit.envelopes[0].signal.indicators", {KETENBUS__FRAME__BODY_SUBMIT, 1, 20}, 2, LIST_LOOSE_VARINT,
     KB_MAX_INDICATORS},
    {"submit.envelopes[0].signal.indicators", {KETENBUS__FRAME__BODY_SUBMIT, 1, 20}, 2, LIST_PACKED,
     KB_MAX_INDICATORS},
    {"submit.envelopes[0].referral.signal.indicators", {KETENBUS__FRAME__BODY_SUBMIT, 1, 21, 5}, 2,
     LIST_LOOSE_VARINT, KB_MAX_INDICATORS},
    {"submit.envelopes[0].notice.agencies", {KETENBUS__FRAME__BODY_SUBMIT, 1, 23}, 3, LIST_EMPTY, KB_MAX_RECIPIENTS},
    {"receipt.entries", {KETENBUS__FRAME__BODY_RECEIPT}, 1, LIST_EMPTY, KB_MAX_BATCH},
    {"receipt.entries[0].recipients", {KETENBUS__FRAME__BODY_RECEIPT, 1}, 7, LIST_EMPTY, KB_MAX_AGENCIES},
    {"receipt.entries[0].refused", {KETENBUS__FRAME__BODY_RECEIPT, 1}, 8, LIST_EMPTY, KB_MAX_AGENCIES},
    {"deliver.deliveries", {KETENBUS__FRAME__BODY_DELIVER}, 1, LIST_EMPTY, KB_MAX_BATCH},
    {"deliver.deliveries[0].envelope.seals", {KETENBUS__FRAME__BODY_DELIVER, 1, 2}, 30, LIST_EMPTY, KB_MAX_SEALS},
    {"deliver.deliveries[0].envelope.withheld", {KETENBUS__FRAME__BODY_DELIVER, 1, 2}, 32, LIST_EMPTY, KB_MAX_SEALS},
    {"ack.tags", {KETENBUS__FRAME__BODY_ACK}, 1, LIST_LOOSE_VARINT, KB_MAX_BATCH},
    {"ack.tags", {KETENBUS__FRAME__BODY_ACK}, 1, LIST_PACKED, KB_MAX_BATCH},
};
#define N_LISTS (sizeof s_lists / sizeof s_lists[0])

/* A frame with n items in list r, its holding message given `copies`
 * times in the first list on the way down (one when the list is the
 * body's own). */
static wire_t s_list_frame(const list_row_t *r, size_t n, size_t copies)
{
    wire_t m = {0};
    if (r->style == LIST_PACKED) {
        wire_t run = {0};
        for (size_t i = 0; i < n; i++)
            s_put_varint(&run, 1 + i % 16);
        s_put_field(&m, r->field, &run);
        free(run.buf);
    } else {
        for (size_t i = 0; i < n; i++) {
            s_put_varint(&m, (uint64_t)r->field << 3 | (r->style == LIST_EMPTY ? 2 : 0));
            s_put_varint(&m, r->style == LIST_EMPTY ? 0 : 1 + i % 16);
        }
    }
    size_t depth = 0;
    while (depth < 4 && r->path[depth])
        depth++;
    for (size_t k = depth; k-- > 0;) {
        wire_t outer = {0};
        if (k == 0)
            s_put_varint(&outer, 1 << 3), s_put_varint(&outer, KB_PROTOCOL_VERSION);
        for (size_t c = 0; c < (k == 1 ? copies : 1); c++)
            s_put_field(&outer, r->path[k], &m);
        free(m.buf);
        m = outer;
    }
    return m;
}

/* At the limit a list decodes; one more is refused before anything is
 * allocated, with a reason naming the list and the limit. */
START_TEST(test_list_limits)
{
    const list_row_t *r = &s_lists[_i];
    kb_arena_t *a = kb_arena_new();
    ck_assert_ptr_nonnull(a);
    ProtobufCAllocator pa = kb_arena_allocator(a);
    Ketenbus__Frame *f = NULL;

    wire_t w = s_list_frame(r, r->max, 1);
    int rc = kb_frame_decode_with(w.buf, w.len, KB_FRAME_MAX_DEFAULT, &pa, &f);
    ck_assert_msg(rc == KB_OK, "%s at the limit: %s", r->name, kb_last_error());
    ck_assert_ptr_nonnull(f);
    free(w.buf);
    kb_arena_reset(a);

    w = s_list_frame(r, r->max + 1, 1);
    f = (Ketenbus__Frame *)(uintptr_t)1;
    rc = kb_frame_decode_with(w.buf, w.len, KB_FRAME_MAX_DEFAULT, &pa, &f);
    ck_assert_int_eq(rc, KB_EPROTO);
    ck_assert_ptr_null(f);
    ck_assert_uint_eq(kb_arena_used(a), 0); /* refused on the wire */
    char want[256];
    snprintf(want, sizeof want, "frame: %s: more than %zu items", r->name, r->max);
    ck_assert_str_eq(kb_last_error(), want);
    free(w.buf);
    kb_arena_destroy(&a);
}
END_TEST

/* Every list reachable from a Frame has a limit of its own. */
static void s_check_lists(const ProtobufCMessageDescriptor *d, unsigned depth)
{
    ck_assert_uint_le(depth, 8);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (fd->label == PROTOBUF_C_LABEL_REPEATED)
            ck_assert_msg(kb_frame_list_limit(d, fd->name) > 0, "%s.%s has no limit", d->short_name, fd->name);
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
            s_check_lists(fd->descriptor, depth + 1);
    }
}

START_TEST(test_every_list_limited)
{
    s_check_lists(&ketenbus__frame__descriptor, 0);
    ck_assert_uint_eq(kb_frame_list_limit(&ketenbus__envelope__descriptor, "seals"), KB_MAX_SEALS);
    ck_assert_uint_eq(kb_frame_list_limit(&ketenbus__envelope__descriptor, "sender"), 0);
}
END_TEST

/* The shapes that cost most memory per byte: empty items in every list
 * at its limit, their holders repeated up to the batch limit and to 1 MiB,
 * and the same one item over (refused on the wire). Whatever the outcome,
 * the arena stays within the bound kb_codec.h documents. */
START_TEST(test_decode_memory)
{
    kb_arena_t *a = kb_arena_new();
    ck_assert_ptr_nonnull(a);
    ProtobufCAllocator pa = kb_arena_allocator(a);
    static const size_t copies[] = {1, 16, 256, KB_MAX_BATCH};
    for (size_t i = 0; i < N_LISTS; i++) {
        for (size_t c = 0; c < sizeof copies / sizeof copies[0]; c++) {
            for (size_t over = 0; over <= 1; over++) {
                const list_row_t *r = &s_lists[i];
                if (r->path[1] == 0 && copies[c] > 1)
                    continue;
                wire_t w = s_list_frame(r, r->max + over, copies[c]);
                if (w.len > KB_FRAME_MAX_DEFAULT) {
                    free(w.buf);
                    continue;
                }
                Ketenbus__Frame *f = NULL;
                int rc = kb_frame_decode_with(w.buf, w.len, KB_FRAME_MAX_DEFAULT, &pa, &f);
                size_t used = kb_arena_used(a);
                ck_assert_msg(used <= w.len * KB_DECODE_MEM_PER_BYTE + KB_DECODE_MEM_BASE,
                              "%s x%zu: %zu bytes took %zu (rc %d)", r->name, copies[c], w.len, used, rc);
                if (over)
                    ck_assert_int_eq(rc, KB_EPROTO);
                kb_arena_reset(a);
                free(w.buf);
            }
        }
    }
    /* 1 MiB of envelopes of 64 empty seals: within the bound, refused. */
    const list_row_t *seals = &s_lists[1];
    wire_t w = s_list_frame(seals, KB_MAX_SEALS, KB_MAX_BATCH);
    ck_assert_uint_le(w.len, KB_FRAME_MAX_DEFAULT);
    Ketenbus__Frame *f = NULL;
    ck_assert_int_eq(kb_frame_decode_with(w.buf, w.len, KB_FRAME_MAX_DEFAULT, &pa, &f), KB_EPROTO);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "bytes of memory"));
    ck_assert_uint_le(kb_arena_used(a), w.len * KB_DECODE_MEM_PER_BYTE + KB_DECODE_MEM_BASE);
    free(w.buf);
    kb_arena_destroy(&a);
}
END_TEST

/* ------------------------------------------------------------ hello text */

/* Hello's names go into logs and CONNECTED audit records. */
static const struct {
    const char *name;     /* adapter_name ("" : the long one below) */
    const char *software; /* software */
    size_t name_len;      /* > 0: adapter_name is this many 'a's */
    int rc;               /* expected return */
    const char *why;      /* part of the detail when refused */
} s_hellos[] = {
    {"fier-case-system", "ketenbus-adapter 0.1.0", 0, KB_OK, NULL},
    {"", "", 0, KB_OK, NULL},
    {"Caf\xc3\xa9-systeem \xe2\x82\xac", "v1", 0, KB_OK, NULL},
    {NULL, "v1", KB_SHORT_TEXT_MAX, KB_OK, NULL},
    {NULL, "v1", KB_SHORT_TEXT_MAX + 1, KB_EPROTO, "hello.adapter_name: longer than 256 bytes"},
    {NULL, "v1", 1000000, KB_EPROTO, "hello.adapter_name: longer than 256 bytes"},
    {"a\nforged=1", "v1", 0, KB_EPROTO, "hello.adapter_name: control character U+000A at byte 1"},
    {"tab\there", "v1", 0, KB_EPROTO, "control character U+0009"},
    {"del\x7f", "v1", 0, KB_EPROTO, "control character U+007F"},
    {"c1\xc2\x85", "v1", 0, KB_EPROTO, "control character U+0085"},
    {"latin1 caf\xe9", "v1", 0, KB_EPROTO, "hello.adapter_name: not valid UTF-8"},
    {"fier", "v1\r\n", 0, KB_EPROTO, "hello.software: control character U+000D"},
    {"fier", "\xc0\xaf", 0, KB_EPROTO, "hello.software: not valid UTF-8"},
};
#define N_HELLOS (sizeof s_hellos / sizeof s_hellos[0])

START_TEST(test_hello_text)
{
    char *long_name = NULL;
    Ketenbus__Hello hello = KETENBUS__HELLO__INIT;
    hello.adapter_name = (char *)s_hellos[_i].name;
    if (s_hellos[_i].name_len > 0) {
        long_name = malloc(s_hellos[_i].name_len + 1);
        ck_assert_ptr_nonnull(long_name);
        memset(long_name, 'a', s_hellos[_i].name_len);
        long_name[s_hellos[_i].name_len] = '\0';
        hello.adapter_name = long_name;
    }
    hello.software = (char *)s_hellos[_i].software;
    Ketenbus__Frame out = KETENBUS__FRAME__INIT;
    out.body_case = KETENBUS__FRAME__BODY_HELLO;
    out.hello = &hello;
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_frame_encode(&out, &buf, &len), KB_OK);
    Ketenbus__Frame *f = (Ketenbus__Frame *)(uintptr_t)1;
    int rc = kb_frame_decode(buf, len, 2 * KB_FRAME_MAX_DEFAULT, &f);
    ck_assert_msg(rc == s_hellos[_i].rc, "row %d: rc %d (%s)", _i, rc, kb_last_error());
    if (rc == KB_OK) {
        ck_assert_str_eq(f->hello->adapter_name, hello.adapter_name);
        ketenbus__frame__free_unpacked(f, NULL);
    } else {
        ck_assert_ptr_null(f);
        ck_assert_msg(strstr(kb_last_error(), s_hellos[_i].why) != NULL, "row %d: \"%s\" lacks \"%s\"", _i,
                      kb_last_error(), s_hellos[_i].why);
    }
    free(buf);
    free(long_name);
}
END_TEST

/* ------------------------------------------------------------ round trips */

/* Body cases in the order of the proto, one round trip each. */
static const Ketenbus__Frame__BodyCase s_commands[] = {
    KETENBUS__FRAME__BODY_HELLO,   KETENBUS__FRAME__BODY_WELCOME, KETENBUS__FRAME__BODY_SUBMIT,
    KETENBUS__FRAME__BODY_RECEIPT, KETENBUS__FRAME__BODY_DELIVER, KETENBUS__FRAME__BODY_ACK,
    KETENBUS__FRAME__BODY_CREDIT,  KETENBUS__FRAME__BODY_PING,    KETENBUS__FRAME__BODY_PONG,
    KETENBUS__FRAME__BODY_ERROR,
};
#define N_COMMANDS (sizeof s_commands / sizeof s_commands[0])

START_TEST(test_round_trip)
{
    Ketenbus__Hello hello = KETENBUS__HELLO__INIT;
    Ketenbus__Welcome welcome = KETENBUS__WELCOME__INIT;
    Ketenbus__Submit submit = KETENBUS__SUBMIT__INIT;
    Ketenbus__ReceiptEntry entry = KETENBUS__RECEIPT_ENTRY__INIT;
    Ketenbus__ReceiptEntry *entries[] = {&entry};
    Ketenbus__Receipt receipt = KETENBUS__RECEIPT__INIT;
    Ketenbus__Delivery delivery = KETENBUS__DELIVERY__INIT;
    Ketenbus__Delivery *deliveries[] = {&delivery};
    Ketenbus__Deliver deliver = KETENBUS__DELIVER__INIT;
    uint64_t tags[] = {1, 2, 300000, UINT64_MAX};
    Ketenbus__Ack ack = KETENBUS__ACK__INIT;
    Ketenbus__Credit credit = KETENBUS__CREDIT__INIT;
    Ketenbus__Ping ping = KETENBUS__PING__INIT;
    Ketenbus__Pong pong = KETENBUS__PONG__INIT;
    Ketenbus__Error error = KETENBUS__ERROR__INIT;
    char *recipients[] = {"rvdk", "comensha"};

    s_fixture(KETENBUS__KIND__KIND_REFERRAL);
    Ketenbus__Envelope *envelopes[] = {&s_fx.env, &s_fx.env};

    Ketenbus__Frame f = KETENBUS__FRAME__INIT;
    f.version = 5; /* kb_frame_encode sets the version it speaks */
    f.request_id = 0x1234567890ULL + (uint64_t)_i;
    f.body_case = s_commands[_i];
    switch (f.body_case) {
    case KETENBUS__FRAME__BODY_HELLO:
        hello.adapter_name = "fier-case-system";
        hello.software = "ketenbus-adapter 0.1.0";
        hello.credit = 64;
        f.hello = &hello;
        break;
    case KETENBUS__FRAME__BODY_WELCOME:
        welcome.broker_id = "ketenbus-nl-1";
        welcome.agency = "fier";
        welcome.broker_time_us = T0_US;
        welcome.policy_version = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        welcome.max_message_bytes = KB_FRAME_MAX_DEFAULT;
        welcome.ping_interval_ms = 1000;
        f.welcome = &welcome;
        break;
    case KETENBUS__FRAME__BODY_SUBMIT:
        submit.n_envelopes = 2;
        submit.envelopes = envelopes;
        f.submit = &submit;
        break;
    case KETENBUS__FRAME__BODY_RECEIPT:
        entry.message_id = (ProtobufCBinaryData){KB_ID_LEN, s_fx.id};
        entry.outcome = KETENBUS__OUTCOME__OUTCOME_REJECTED;
        entry.audit_index = 77;
        entry.code = KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED;
        entry.reason = "no rule allows politie -> gem-utrecht";
        entry.rule_id = "deny-gemeente-h2";
        entry.n_recipients = 2;
        entry.recipients = recipients;
        receipt.n_entries = 1;
        receipt.entries = entries;
        f.receipt = &receipt;
        break;
    case KETENBUS__FRAME__BODY_DELIVER:
        delivery.tag = 42;
        delivery.envelope = &s_fx.env;
        deliver.n_deliveries = 1;
        deliver.deliveries = deliveries;
        f.deliver = &deliver;
        break;
    case KETENBUS__FRAME__BODY_ACK:
        ack.n_tags = sizeof tags / sizeof tags[0];
        ack.tags = tags;
        f.ack = &ack;
        break;
    case KETENBUS__FRAME__BODY_CREDIT:
        credit.credit = 16;
        f.credit = &credit;
        break;
    case KETENBUS__FRAME__BODY_PING:
        ping.time_us = T0_US;
        f.ping = &ping;
        break;
    case KETENBUS__FRAME__BODY_PONG:
        pong.time_us = T0_US;
        pong.queued = 12;
        pong.uptime_s = 86400;
        f.pong = &pong;
        break;
    case KETENBUS__FRAME__BODY_ERROR:
        error.code = KETENBUS__ERROR_CODE__ERROR_CODE_NO_SESSION;
        error.message = "send Hello first";
        f.error = &error;
        break;
    default:
        ck_abort_msg("no round trip for body case %d", (int)f.body_case);
    }

    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_frame_encode(&f, &buf, &len), KB_OK);
    ck_assert_uint_eq(f.version, KB_PROTOCOL_VERSION);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(len, ketenbus__frame__get_packed_size(&f));

    Ketenbus__Frame *got = NULL;
    ck_assert_int_eq(kb_frame_decode(buf, len, len, &got), KB_OK);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(got->version, KB_PROTOCOL_VERSION);
    ck_assert_uint_eq(got->request_id, f.request_id);
    ck_assert_int_eq(got->body_case, f.body_case);

    /* Everything came back: encoding the decoded frame gives the same bytes. */
    uint8_t *again = NULL;
    size_t again_len = 0;
    ck_assert_int_eq(kb_frame_encode(got, &again, &again_len), KB_OK);
    ck_assert_uint_eq(again_len, len);
    ck_assert_mem_eq(again, buf, len);

    if (got->body_case == KETENBUS__FRAME__BODY_SUBMIT) {
        ck_assert_uint_eq(got->submit->n_envelopes, 2);
        for (size_t k = 0; k < got->submit->n_envelopes; k++)
            ck_assert_int_eq(kb_envelope_validate(got->submit->envelopes[k], NULL, 0), KB_OK);
    }
    if (got->body_case == KETENBUS__FRAME__BODY_DELIVER)
        ck_assert_int_eq(kb_envelope_validate(got->deliver->deliveries[0]->envelope, NULL, 0), KB_OK);

    free(again);
    free(buf);
    ketenbus__frame__free_unpacked(got, NULL);
}
END_TEST

START_TEST(test_encode_errors)
{
    uint8_t *buf = (uint8_t *)"stale";
    size_t len = 99;
    Ketenbus__Frame f = KETENBUS__FRAME__INIT;
    ck_assert_int_eq(kb_frame_encode(&f, &buf, &len), KB_EINVAL); /* no body */
    ck_assert_ptr_null(buf);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(kb_frame_encode(NULL, &buf, &len), KB_EINVAL);
    ck_assert_int_eq(kb_frame_encode(&f, NULL, &len), KB_EINVAL);
    ck_assert_int_eq(kb_frame_encode(&f, &buf, NULL), KB_EINVAL);
}
END_TEST

/* A Submit decodes whatever its envelopes hold; each envelope is then
 * refused or accepted on its own. */
START_TEST(test_submit_then_validate)
{
    s_fixture(KETENBUS__KIND__KIND_SIGNAL);
    Ketenbus__Envelope good = s_fx.env, bad = s_fx.env;
    bad.purpose = (Ketenbus__Purpose)77;
    Ketenbus__Envelope *envelopes[] = {&good, &bad};
    Ketenbus__Submit submit = KETENBUS__SUBMIT__INIT;
    submit.n_envelopes = 2;
    submit.envelopes = envelopes;
    Ketenbus__Frame f = KETENBUS__FRAME__INIT;
    f.body_case = KETENBUS__FRAME__BODY_SUBMIT;
    f.submit = &submit;

    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_frame_encode(&f, &buf, &len), KB_OK);
    Ketenbus__Frame *got = NULL;
    ck_assert_int_eq(kb_frame_decode(buf, len, KB_FRAME_MAX_DEFAULT, &got), KB_OK);
    char why[128];
    ck_assert_int_eq(kb_envelope_validate(got->submit->envelopes[0], why, sizeof why), KB_OK);
    ck_assert_int_eq(kb_envelope_validate(got->submit->envelopes[1], why, sizeof why), KB_EPROTO);
    ck_assert_str_eq(why, "purpose: unknown value 77");
    ketenbus__frame__free_unpacked(got, NULL);
    free(buf);
}
END_TEST

/* ------------------------------------------------------------ dup, names */

START_TEST(test_envelope_dup)
{
    s_fixture(KETENBUS__KIND__KIND_REFERRAL);
    Ketenbus__Envelope *copy = kb_envelope_dup(&s_fx.env);
    ck_assert_ptr_nonnull(copy);
    ck_assert_ptr_ne(copy, &s_fx.env);

    size_t len = ketenbus__envelope__get_packed_size(&s_fx.env);
    ck_assert_uint_eq(ketenbus__envelope__get_packed_size(copy), len);
    uint8_t *a = malloc(len), *b = malloc(len);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ketenbus__envelope__pack(&s_fx.env, a);
    ketenbus__envelope__pack(copy, b);
    ck_assert_mem_eq(a, b, len);
    free(a);
    free(b);

    /* A deep copy: nothing is shared with the original. */
    ck_assert_ptr_ne(copy->sender, s_fx.env.sender);
    ck_assert_ptr_ne(copy->referral, s_fx.env.referral);
    ck_assert_ptr_ne(copy->referral->signal, s_fx.env.referral->signal);
    copy->referral->signal->narrative[0] = 'X';
    ck_assert_int_eq(s_fx.signal.narrative[0], 'M');
    ck_assert_str_eq(copy->referral->signal->observed->municipality, "GM0344");
    ketenbus__envelope__free_unpacked(copy, NULL);

    ck_assert_ptr_null(kb_envelope_dup(NULL));
}
END_TEST

static const struct {
    int kind;         /* value given */
    const char *name; /* name expected */
} s_kind_names[] = {
    {KETENBUS__KIND__KIND_SIGNAL, "signal"},
    {KETENBUS__KIND__KIND_REFERRAL, "referral"},
    {KETENBUS__KIND__KIND_REFERRAL_UPDATE, "referral_update"},
    {KETENBUS__KIND__KIND_MATCH_NOTICE, "match_notice"},
    {KETENBUS__KIND__KIND_EXPIRY_NOTICE, "expiry_notice"},
    {KETENBUS__KIND__KIND_UNSPECIFIED, "unknown"},
    {6, "unknown"},
    {-1, "unknown"},
    {INT32_MAX, "unknown"},
};
#define N_KIND_NAMES (sizeof s_kind_names / sizeof s_kind_names[0])

START_TEST(test_kind_name)
{
    ck_assert_str_eq(kb_kind_name(s_kind_names[_i].kind), s_kind_names[_i].name);
}
END_TEST

/* ------------------------------------------------------------------ UTF-8 */

/* Literal bytes and their length. */
#define U(s) s, sizeof(s) - 1

static const struct {
    const char *name; /* what the row is about */
    const char *s;    /* the bytes */
    size_t len;       /* their length */
    int valid;        /* expected kb_utf8_valid() */
} s_utf8[] = {
    {"empty", U(""), 1},
    {"ascii", U("Hoog Catharijne"), 1},
    {"U+0080, first 2-byte", U("\xc2\x80"), 1},
    {"e acute", U("caf\xc3\xa9"), 1},
    {"U+07FF, last 2-byte", U("\xdf\xbf"), 1},
    {"U+0800, first 3-byte", U("\xe0\xa0\x80"), 1},
    {"euro sign", U("\xe2\x82\xac"), 1},
    {"U+D7FF, below surrogates", U("\xed\x9f\xbf"), 1},
    {"U+E000, above surrogates", U("\xee\x80\x80"), 1},
    {"U+FFFD", U("\xef\xbf\xbd"), 1},
    {"U+10000, first 4-byte", U("\xf0\x90\x80\x80"), 1},
    {"G clef", U("\xf0\x9d\x84\x9e"), 1},
    {"U+10FFFF, last code point", U("\xf4\x8f\xbf\xbf"), 1},
    {"mixed text", U("Meisje (14), \xe2\x80\x98oom\xe2\x80\x99 \xf0\x9f\x9a\xa8"), 1},
    {"NUL byte", U("a\0b"), 0},
    {"lone NUL", U("\0"), 0},
    {"lone continuation byte", U("\x80"), 0},
    {"continuation byte after ascii", U("ab\xbf"), 0},
    {"overlong NUL (C0 80)", U("\xc0\x80"), 0},
    {"overlong slash (C0 AF)", U("\xc0\xaf"), 0},
    {"overlong 2-byte (C1 BF)", U("\xc1\xbf"), 0},
    {"overlong 3-byte (E0 80 80)", U("\xe0\x80\x80"), 0},
    {"overlong 3-byte (E0 9F BF)", U("\xe0\x9f\xbf"), 0},
    {"overlong 4-byte (F0 80 80 80)", U("\xf0\x80\x80\x80"), 0},
    {"overlong 4-byte (F0 8F BF BF)", U("\xf0\x8f\xbf\xbf"), 0},
    {"high surrogate U+D800", U("\xed\xa0\x80"), 0},
    {"low surrogate U+DFFF", U("\xed\xbf\xbf"), 0},
    {"surrogate pair as CESU-8", U("\xed\xa0\xbd\xed\xb8\x80"), 0},
    {"U+110000", U("\xf4\x90\x80\x80"), 0},
    {"F5 lead", U("\xf5\x80\x80\x80"), 0},
    {"F8 lead (5-byte form)", U("\xf8\x88\x80\x80\x80"), 0},
    {"FE", U("\xfe"), 0},
    {"FF", U("\xff"), 0},
    {"truncated 2-byte", U("\xc3"), 0},
    {"truncated 3-byte", U("\xe2\x82"), 0},
    {"truncated 4-byte", U("\xf0\x9d\x84"), 0},
    {"truncated at end of text", U("caf\xc3"), 0},
    {"bad 2nd byte of 2-byte", U("\xc3\x28"), 0},
    {"bad 3rd byte of 3-byte", U("\xe2\x82\x28"), 0},
    {"bad 2nd byte of 4-byte", U("\xf0\x28\x8c\xbc"), 0},
    {"bad 4th byte of 4-byte", U("\xf0\x9d\x84\xc0"), 0},
};
#define N_UTF8 (sizeof s_utf8 / sizeof s_utf8[0])

START_TEST(test_utf8)
{
    ck_assert_msg(kb_utf8_valid(s_utf8[_i].s, s_utf8[_i].len) == s_utf8[_i].valid, "%s: expected %s",
                  s_utf8[_i].name, s_utf8[_i].valid ? "valid" : "invalid");
}
END_TEST

START_TEST(test_utf8_bounds)
{
    /* Only len bytes count: a valid prefix of a longer buffer is valid. */
    ck_assert_int_eq(kb_utf8_valid("ab\xff", 2), 1);
    ck_assert_int_eq(kb_utf8_valid("\xe2\x82\xac", 2), 0);
    ck_assert_int_eq(kb_utf8_valid(NULL, 0), 1);
    ck_assert_int_eq(kb_utf8_valid(NULL, 1), 0);
}
END_TEST

/* ------------------------------------------------------------------- main */

static Suite *s_suite(void)
{
    Suite *s = suite_create("codec");

    TCase *tc = tcase_create("frames");
    tcase_add_loop_test(tc, test_malformed_frames, 0, (int)N_FRAMES);
    tcase_add_test(tc, test_decode_details);
    tcase_add_loop_test(tc, test_round_trip, 0, (int)N_COMMANDS);
    tcase_add_test(tc, test_encode_errors);
    tcase_add_test(tc, test_submit_then_validate);
    tcase_add_loop_test(tc, test_list_limits, 0, (int)N_LISTS);
    tcase_add_test(tc, test_every_list_limited);
    tcase_add_test(tc, test_decode_memory);
    tcase_add_loop_test(tc, test_hello_text, 0, (int)N_HELLOS);
    suite_add_tcase(s, tc);

    tc = tcase_create("envelopes");
    tcase_add_loop_test(tc, test_valid_envelopes, 0, N_GOOD);
    tcase_add_loop_test(tc, test_view_matches_unpack, 0, N_GOOD);
    tcase_add_loop_test(tc, test_view_malformed, 0, (int)N_VIEW_ROWS);
    tcase_add_test(tc, test_view_limits);
    tcase_add_loop_test(tc, test_carries_matches_redact, 0, N_GOOD);
    tcase_add_test(tc, test_carries_malformed);
    tcase_add_loop_test(tc, test_deliver_encode_same_bytes, 0, 4);
    tcase_add_loop_test(tc, test_submit_encode_same_bytes, 0, 4);
    tcase_add_loop_test(tc, test_receipt_encode_joins, 0, 4);
    tcase_add_test(tc, test_good_table_size);
    tcase_add_loop_test(tc, test_invalid_envelopes, 0, N_BAD);
    tcase_add_test(tc, test_bad_table_size);
    tcase_add_test(tc, test_validate_arguments);
    tcase_add_test(tc, test_envelope_dup);
    tcase_add_test(tc, test_validate_submitted);
    suite_add_tcase(s, tc);

    tc = tcase_create("helpers");
    tcase_add_loop_test(tc, test_kind_name, 0, (int)N_KIND_NAMES);
    tcase_add_loop_test(tc, test_utf8, 0, (int)N_UTF8);
    tcase_add_test(tc, test_utf8_bounds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
