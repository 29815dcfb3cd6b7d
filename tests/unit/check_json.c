/*
 * check_json.c - tests of lib/kb_json.c, the JSON form of protobuf messages.
 *
 * Reads as a tour of docs/JSON.md: full envelopes of every payload kind and
 * frames survive msg -> JSON -> msg byte for byte; exact output text for
 * small messages (field order, enum names, UUID and time text); a table of
 * malformed agency input with the code and the path-naming detail each must
 * give; and set/get by dotted path (nested creation, oneof switching,
 * repeated append, unknown paths, refused values leaving the message as it
 * was). The examples in docs/JSON.md are decoded too, so that the user
 * documentation cannot drift from the code.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kb_error.h"
#include "kb_json.h"
#include "kb_util.h"
#include "ketenbus.pb-c.h"
#include "kb_test.h"

#define ENV (&ketenbus__envelope__descriptor)
#define FRAME (&ketenbus__frame__descriptor)

/* 2026-11-23T10:00:00Z and other moments of the seed story, in microseconds */
#define T_CREATED 1795428000000000LL  /* 2026-11-23T10:00:00Z */
#define T_OBSERVED 1795363500000000LL /* 2026-11-22T16:05:00Z */
#define T_DEADLINE 1795442400000000LL /* 2026-11-23T14:00:00Z */

static uint8_t s_id[16] = {0x01, 0x9a, 0xb4, 0x3c, 0x70, 0x00, 0x7d, 0x21,
                           0x9a, 0x6b, 0x3c, 0x5d, 0x8e, 0x1f, 0x2a, 0x4b};
static uint8_t s_corr[16] = {0x01, 0x9a, 0xb4, 0x1e, 0x55, 0x10, 0x7c, 0x02,
                             0x81, 0x33, 0x0f, 0xe2, 0x44, 0x90, 0x1a, 0x77};
static uint8_t s_key1[32] = {0x5e, 0x11, 0x0a, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18, 0x29,
                             0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f, 0x90, 0xa1, 0xb2, 0xc3, 0xd4,
                             0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e};
static uint8_t s_key2[32] = {0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55,
                             0x44, 0x33, 0x22, 0x11, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
                             0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10};
static uint8_t s_salt[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static uint8_t s_digest[32] = {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                               12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27};
static uint8_t s_sig[64] = {0x80, 0x7f, 0x01, 0xfe, 0x42};

/* ----------------------------------------------------------- test messages */

/* Every header field of an envelope set, as the SDK would send it. */
static void s_header(Ketenbus__Envelope *e, Ketenbus__Kind kind)
{
    static char *recipients[] = {"politie", "rvdk"};
    static ProtobufCBinaryData keys[2];
    static Ketenbus__LegalBasis basis = KETENBUS__LEGAL_BASIS__INIT;
    static Ketenbus__FieldSeal seal_a = KETENBUS__FIELD_SEAL__INIT, seal_b = KETENBUS__FIELD_SEAL__INIT;
    static Ketenbus__FieldSeal *seals[2];
    keys[0] = (ProtobufCBinaryData){sizeof s_key1, s_key1};
    keys[1] = (ProtobufCBinaryData){sizeof s_key2, s_key2};
    basis.basis = "Jeugdwet art. 7.4.0";
    basis.consent = KETENBUS__CONSENT__CONSENT_NOT_REQUIRED;
    seal_a.path = "signal.minor";
    seal_a.salt = (ProtobufCBinaryData){sizeof s_salt, s_salt};
    seal_a.digest = (ProtobufCBinaryData){sizeof s_digest, s_digest};
    seal_b.path = "signal.narrative";
    seal_b.digest = (ProtobufCBinaryData){sizeof s_digest, s_digest};
    seals[0] = &seal_a;
    seals[1] = &seal_b;

    e->message_id = (ProtobufCBinaryData){sizeof s_id, s_id};
    e->sender = "fier";
    e->n_recipients = 2;
    e->recipients = recipients;
    e->kind = kind;
    e->purpose = KETENBUS__PURPOSE__PURPOSE_CHILD_PROTECTION;
    e->handling = KETENBUS__HANDLING__HANDLING_H2;
    e->legal_basis = &basis;
    e->created_us = T_CREATED;
    e->correlation_id = (ProtobufCBinaryData){sizeof s_corr, s_corr};
    e->n_subject_keys = 2;
    e->subject_keys = keys;
    e->officer = "fier-0412";
    e->n_seals = 2;
    e->seals = seals;
    e->signature = (ProtobufCBinaryData){sizeof s_sig, s_sig};
}

static Ketenbus__Signal *s_signal(void)
{
    static Ketenbus__Signal sig = KETENBUS__SIGNAL__INIT;
    static Ketenbus__Observation obs = KETENBUS__OBSERVATION__INIT;
    static Ketenbus__Indicator ind[] = {KETENBUS__INDICATOR__INDICATOR_REPEATED_ARRESTS,
                                        KETENBUS__INDICATOR__INDICATOR_ADULT_CLAIMS_CUSTODY,
                                        KETENBUS__INDICATOR__INDICATOR_SCHOOL_ABSENCE};
    obs.time_us = T_OBSERVED;
    obs.municipality = "GM0344";
    obs.location = "Hoog Catharijne, bij de roltrappen";
    sig.exploitation = KETENBUS__EXPLOITATION__EXPLOITATION_CRIMINAL;
    sig.n_indicators = 3;
    sig.indicators = ind;
    sig.minor = 1;
    sig.age_band = KETENBUS__AGE_BAND__AGE_BAND_12_TO_15;
    sig.observed = &obs;
    sig.urgency = KETENBUS__URGENCY__URGENCY_URGENT;
    sig.several_perpetrators = 1;
    sig.cross_border = 1;
    sig.source = KETENBUS__SOURCE__SOURCE_OFFICER;
    sig.reliability = KETENBUS__RELIABILITY__RELIABILITY_B;
    sig.accuracy = KETENBUS__ACCURACY__ACCURACY_2;
    sig.narrative = "Meisje (14) zegt dat \"oom\" haar dagelijks naar het station brengt; "
                    "geen papieren. Verblijft in crisisopvang, café-eigenaar belde.";
    return &sig;
}

static ProtobufCMessage *s_env_signal(void)
{
    static Ketenbus__Envelope e = KETENBUS__ENVELOPE__INIT;
    s_header(&e, KETENBUS__KIND__KIND_SIGNAL);
    e.payload_case = KETENBUS__ENVELOPE__PAYLOAD_SIGNAL;
    e.signal = s_signal();
    return &e.base;
}

static ProtobufCMessage *s_env_referral(void)
{
    static Ketenbus__Envelope e = KETENBUS__ENVELOPE__INIT;
    static Ketenbus__Referral r = KETENBUS__REFERRAL__INIT;
    r.action = KETENBUS__ACTION__ACTION_YOUTH_CARE;
    r.deadline_us = T_DEADLINE;
    r.urgency = KETENBUS__URGENCY__URGENCY_URGENT;
    r.reason = "Kind in verzekering; een volwassene claimt het gezag. Niet terug naar de 'familie' zonder onderzoek.";
    r.signal = s_signal();
    r.contact = "Politie Midden-Nederland, jeugdzaken, 0900-8844 (vraag naar dienst 7)";
    s_header(&e, KETENBUS__KIND__KIND_REFERRAL);
    e.sender = "politie";
    e.payload_case = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL;
    e.referral = &r;
    return &e.base;
}

static ProtobufCMessage *s_env_update(void)
{
    static Ketenbus__Envelope e = KETENBUS__ENVELOPE__INIT;
    static Ketenbus__ReferralUpdate u = KETENBUS__REFERRAL_UPDATE__INIT;
    u.status = KETENBUS__REFERRAL_STATUS__REFERRAL_STATUS_ACCEPTED;
    u.reason = "Raad onderzoekt een voorlopige ondertoezichtstelling.";
    u.handled_by = "rvdk-utrecht-team-3";
    s_header(&e, KETENBUS__KIND__KIND_REFERRAL_UPDATE);
    e.sender = "rvdk";
    e.payload_case = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL_UPDATE;
    e.referral_update = &u;
    return &e.base;
}

static ProtobufCMessage *s_env_notice(void)
{
    static Ketenbus__Envelope e = KETENBUS__ENVELOPE__INIT;
    static Ketenbus__Notice n = KETENBUS__NOTICE__INIT;
    static char *agencies[] = {"politie"};
    static char *withheld[] = {"signal.narrative", "signal.observed.location"};
    n.type = KETENBUS__NOTICE_TYPE__NOTICE_TYPE_MATCH;
    n.about_message_id = (ProtobufCBinaryData){sizeof s_corr, s_corr};
    n.n_agencies = 1;
    n.agencies = agencies;
    n.text = "politie holds a live signal on the same subject";
    s_header(&e, KETENBUS__KIND__KIND_MATCH_NOTICE);
    e.sender = "broker";
    e.payload_case = KETENBUS__ENVELOPE__PAYLOAD_NOTICE;
    e.notice = &n;
    e.n_withheld = 2;
    e.withheld = withheld;
    return &e.base;
}

/* Extremes: times outside RFC 3339's years come out as integers. */
static ProtobufCMessage *s_env_extreme_times(void)
{
    static Ketenbus__Envelope e = KETENBUS__ENVELOPE__INIT;
    static Ketenbus__Signal sig = KETENBUS__SIGNAL__INIT;
    static Ketenbus__Observation obs = KETENBUS__OBSERVATION__INIT;
    obs.time_us = INT64_MIN;
    sig.observed = &obs;
    e.created_us = INT64_MAX;
    e.kind = (Ketenbus__Kind)77; /* a value this version has no name for */
    e.payload_case = KETENBUS__ENVELOPE__PAYLOAD_SIGNAL;
    e.signal = &sig;
    return &e.base;
}

static ProtobufCMessage *s_frame_deliver(void)
{
    static Ketenbus__Frame f = KETENBUS__FRAME__INIT;
    static Ketenbus__Deliver d = KETENBUS__DELIVER__INIT;
    static Ketenbus__Delivery dl[2] = {KETENBUS__DELIVERY__INIT, KETENBUS__DELIVERY__INIT};
    static Ketenbus__Delivery *dls[2];
    dl[0].tag = 7;
    dl[0].envelope = (Ketenbus__Envelope *)s_env_referral();
    dl[1].tag = UINT64_MAX;
    dl[1].envelope = (Ketenbus__Envelope *)s_env_update();
    dls[0] = &dl[0];
    dls[1] = &dl[1];
    d.n_deliveries = 2;
    d.deliveries = dls;
    f.version = 1;
    f.request_id = 42;
    f.body_case = KETENBUS__FRAME__BODY_DELIVER;
    f.deliver = &d;
    return &f.base;
}

static ProtobufCMessage *s_frame_receipt(void)
{
    static Ketenbus__Frame f = KETENBUS__FRAME__INIT;
    static Ketenbus__Receipt r = KETENBUS__RECEIPT__INIT;
    static Ketenbus__ReceiptEntry en[2] = {KETENBUS__RECEIPT_ENTRY__INIT, KETENBUS__RECEIPT_ENTRY__INIT};
    static Ketenbus__ReceiptEntry *ens[2];
    static char *queued[] = {"rvdk", "comensha"};
    static char *refused[] = {"gem-utrecht"};
    en[0].message_id = (ProtobufCBinaryData){sizeof s_id, s_id};
    en[0].outcome = KETENBUS__OUTCOME__OUTCOME_ACCEPTED;
    en[0].audit_index = 9223372036854775809ull; /* above INT64_MAX */
    en[0].n_recipients = 2;
    en[0].recipients = queued;
    en[1].message_id = (ProtobufCBinaryData){sizeof s_corr, s_corr};
    en[1].outcome = KETENBUS__OUTCOME__OUTCOME_REJECTED;
    en[1].code = KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED;
    en[1].reason = "no rule lets gem-utrecht receive criminal_investigation narratives";
    en[1].rule_id = "deny-gemeente-narrative";
    en[1].n_refused = 1;
    en[1].refused = refused;
    ens[0] = &en[0];
    ens[1] = &en[1];
    r.n_entries = 2;
    r.entries = ens;
    f.version = 1;
    f.body_case = KETENBUS__FRAME__BODY_RECEIPT;
    f.receipt = &r;
    return &f.base;
}

static ProtobufCMessage *s_frame_welcome(void)
{
    static Ketenbus__Frame f = KETENBUS__FRAME__INIT;
    static Ketenbus__Welcome w = KETENBUS__WELCOME__INIT;
    w.broker_id = "ketenbus-nl-1";
    w.agency = "fier";
    w.broker_time_us = T_CREATED + 123456;
    w.policy_version = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    w.max_message_bytes = 1048576;
    w.ping_interval_ms = 1000;
    f.version = 1;
    f.request_id = 1;
    f.body_case = KETENBUS__FRAME__BODY_WELCOME;
    f.welcome = &w;
    return &f.base;
}

/* An empty sub-message is still present: "legal_basis": {}. */
static ProtobufCMessage *s_env_empty_sub(void)
{
    static Ketenbus__Envelope e = KETENBUS__ENVELOPE__INIT;
    static Ketenbus__LegalBasis lb = KETENBUS__LEGAL_BASIS__INIT;
    static Ketenbus__ReferralUpdate u = KETENBUS__REFERRAL_UPDATE__INIT;
    e.legal_basis = &lb;
    e.payload_case = KETENBUS__ENVELOPE__PAYLOAD_REFERRAL_UPDATE;
    e.referral_update = &u;
    return &e.base;
}

/* ------------------------------------------------------------ round trips */

typedef ProtobufCMessage *(*s_builder_fn)(void);

static const struct {
    const char *name;     /* what the row shows */
    s_builder_fn build;   /* the message to carry through JSON */
} s_round_trips[] = {
    {"envelope with signal", s_env_signal},
    {"envelope with referral", s_env_referral},
    {"envelope with referral update", s_env_update},
    {"envelope with match notice and withheld paths", s_env_notice},
    {"envelope with out-of-range times and unknown enum", s_env_extreme_times},
    {"envelope with empty sub-messages", s_env_empty_sub},
    {"frame deliver", s_frame_deliver},
    {"frame receipt", s_frame_receipt},
    {"frame welcome", s_frame_welcome},
};

static uint8_t *s_pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(protobuf_c_message_pack(m, buf), *len);
    return buf;
}

START_TEST(test_round_trip)
{
    const ProtobufCMessage *m = s_round_trips[_i].build();
    size_t a_len, b_len;
    uint8_t *a = s_pack(m, &a_len);

    for (int pretty = 0; pretty <= 1; pretty++) {
        char *text = kb_json_encode(m, pretty);
        ck_assert_msg(text != NULL, "%s: encode failed", s_round_trips[_i].name);
        ProtobufCMessage *back = NULL;
        int rc = kb_json_decode(text, strlen(text), m->descriptor, &back);
        ck_assert_msg(rc == KB_OK, "%s: decode: %s\n%s", s_round_trips[_i].name, kb_last_error(), text);
        uint8_t *b = s_pack(back, &b_len);
        ck_assert_msg(a_len == b_len && memcmp(a, b, a_len) == 0, "%s: packed bytes differ after JSON:\n%s",
                      s_round_trips[_i].name, text);
        char *again = kb_json_encode(back, pretty);
        ck_assert_ptr_nonnull(again);
        ck_assert_str_eq(again, text);
        free(again);
        free(b);
        protobuf_c_message_free_unpacked(back, NULL);
        free(text);
    }
    free(a);
}
END_TEST

/* The json_object interface gives the same as the text interface. */
START_TEST(test_object_interface)
{
    const ProtobufCMessage *m = s_env_referral();
    json_object *o = kb_json_from_msg(m);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(json_object_get_type(o), json_type_object);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "sender")), "politie");
    ProtobufCMessage *back = NULL;
    ck_assert_int_eq(kb_json_to_msg(o, ENV, &back), KB_OK);
    size_t a_len, b_len;
    uint8_t *a = s_pack(m, &a_len), *b = s_pack(back, &b_len);
    ck_assert_uint_eq(a_len, b_len);
    ck_assert_mem_eq(a, b, a_len);
    free(a);
    free(b);
    protobuf_c_message_free_unpacked(back, NULL);
    json_object_put(o);

    /* an object built in memory may hold bytes no parser would let through */
    o = json_object_new_object();
    json_object_object_add(o, "sender", json_object_new_string_len("fi\xc3\x28r", 5));
    back = NULL;
    ck_assert_int_eq(kb_json_to_msg(o, ENV, &back), KB_EPROTO);
    ck_assert_ptr_null(back);
    ck_assert_str_eq(kb_last_error(), "sender: invalid UTF-8 in string");
    json_object_put(o);

    ck_assert_int_eq(kb_json_to_msg(NULL, ENV, &back), KB_EPROTO);
    ck_assert_str_eq(kb_last_error(), "top level: expected a JSON object");
    ck_assert_int_eq(kb_json_decode(NULL, 0, ENV, &back), KB_EINVAL);
    ck_assert_ptr_null(kb_json_from_msg(NULL));
    ck_assert_ptr_null(kb_json_encode(NULL, 0));
}
END_TEST

/* ----------------------------------------------------------- exact output */

static ProtobufCMessage *s_small(void)
{
    static Ketenbus__Envelope e = KETENBUS__ENVELOPE__INIT;
    static Ketenbus__Signal sig = KETENBUS__SIGNAL__INIT;
    static char *recipients[] = {"politie"};
    static ProtobufCBinaryData key;
    key = (ProtobufCBinaryData){4, s_digest};
    e.message_id = (ProtobufCBinaryData){sizeof s_id, s_id};
    e.sender = "fier";
    e.n_recipients = 1;
    e.recipients = recipients;
    e.kind = KETENBUS__KIND__KIND_SIGNAL;
    e.handling = KETENBUS__HANDLING__HANDLING_H2;
    e.created_us = T_CREATED + 250;
    e.n_subject_keys = 1;
    e.subject_keys = &key;
    sig.age_band = KETENBUS__AGE_BAND__AGE_BAND_12_TO_15;
    sig.minor = 1;
    sig.reliability = KETENBUS__RELIABILITY__RELIABILITY_A;
    sig.accuracy = KETENBUS__ACCURACY__ACCURACY_1;
    e.payload_case = KETENBUS__ENVELOPE__PAYLOAD_SIGNAL;
    e.signal = &sig;
    return &e.base;
}

static ProtobufCMessage *s_basis(void)
{
    static Ketenbus__LegalBasis lb = KETENBUS__LEGAL_BASIS__INIT;
    lb.basis = "Wpg art. 19";
    lb.consent = KETENBUS__CONSENT__CONSENT_GIVEN;
    lb.consent_reference = "dossier 2026/118";
    return &lb.base;
}

static ProtobufCMessage *s_rejected(void)
{
    static Ketenbus__ReceiptEntry en = KETENBUS__RECEIPT_ENTRY__INIT;
    en.outcome = KETENBUS__OUTCOME__OUTCOME_REJECTED;
    en.code = KETENBUS__REJECT_CODE__REJECT_NOT_ALLOWED;
    en.audit_index = 18446744073709551615ull;
    return &en.base;
}

static ProtobufCMessage *s_bad_id(void)
{
    static Ketenbus__Envelope e = KETENBUS__ENVELOPE__INIT;
    e.message_id = (ProtobufCBinaryData){3, s_id}; /* not 16 bytes: shown as hex */
    e.created_us = -1;
    return &e.base;
}

static ProtobufCMessage *s_empty(void)
{
    static Ketenbus__Envelope e = KETENBUS__ENVELOPE__INIT;
    return &e.base;
}

static const struct {
    s_builder_fn build; /* message to write */
    int pretty;         /* kb_json_encode's pretty flag */
    const char *want;   /* exact text */
} s_outputs[] = {
    {s_small, 0,
     "{\"message_id\":\"019ab43c-7000-7d21-9a6b-3c5d8e1f2a4b\",\"sender\":\"fier\",\"recipients\":[\"politie\"],"
     "\"kind\":\"signal\",\"handling\":\"h2\",\"created_us\":\"2026-11-23T10:00:00.000250Z\","
     "\"subject_keys\":[\"deadbeef\"],\"signal\":{\"minor\":true,\"age_band\":\"12_to_15\","
     "\"reliability\":\"a\",\"accuracy\":\"1\"}}"},
    {s_basis, 1,
     "{\n"
     "  \"basis\": \"Wpg art. 19\",\n"
     "  \"consent\": \"given\",\n"
     "  \"consent_reference\": \"dossier 2026/118\"\n"
     "}"},
    {s_rejected, 0, "{\"outcome\":\"rejected\",\"audit_index\":18446744073709551615,\"code\":\"not_allowed\"}"},
    {s_bad_id, 0, "{\"message_id\":\"019ab4\",\"created_us\":\"1969-12-31T23:59:59.999999Z\"}"},
    {s_empty, 0, "{}"},
};

START_TEST(test_output)
{
    char *text = kb_json_encode(s_outputs[_i].build(), s_outputs[_i].pretty);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, s_outputs[_i].want);
    free(text);
}
END_TEST

/* Enum names: the enum's prefix goes, the rest is lowercase; input in any
 * case, with or without the prefix. */
static const struct {
    const ProtobufCMessageDescriptor *desc; /* message holding the enum */
    const char *in;                         /* agency input */
    const char *want;                       /* how it is written back */
} s_enums[] = {
    {ENV, "{\"kind\":\"REFERRAL_UPDATE\"}", "{\"kind\":\"referral_update\"}"},
    {ENV, "{\"kind\":\"KIND_MATCH_NOTICE\"}", "{\"kind\":\"match_notice\"}"},
    {ENV, "{\"purpose\":\"Criminal_Investigation\"}", "{\"purpose\":\"criminal_investigation\"}"},
    {ENV, "{\"handling\":\"H0\"}", "{\"handling\":\"h0\"}"},
    {ENV, "{\"kind\":\"unspecified\",\"handling\":\"h3\"}", "{\"handling\":\"h3\"}"},
    {ENV, "{\"legal_basis\":{\"consent\":\"not_required\"}}", "{\"legal_basis\":{\"consent\":\"not_required\"}}"},
    {ENV, "{\"signal\":{\"age_band\":\"24_plus\",\"source\":\"self_report\"}}",
     "{\"signal\":{\"age_band\":\"24_plus\",\"source\":\"self_report\"}}"},
    {ENV, "{\"signal\":{\"reliability\":\"X\",\"accuracy\":\"4\"}}",
     "{\"signal\":{\"reliability\":\"x\",\"accuracy\":\"4\"}}"},
    {ENV, "{\"signal\":{\"exploitation\":\"forced_begging\",\"indicators\":[\"loverboy_method\",\"NO_ID_DOCUMENTS\"]}}",
     "{\"signal\":{\"exploitation\":\"forced_begging\",\"indicators\":[\"loverboy_method\",\"no_id_documents\"]}}"},
    {ENV, "{\"referral\":{\"action\":\"shelter\",\"urgency\":\"priority\"}}",
     "{\"referral\":{\"action\":\"shelter\",\"urgency\":\"priority\"}}"},
    {ENV, "{\"referral_update\":{\"status\":\"declined\"}}", "{\"referral_update\":{\"status\":\"declined\"}}"},
    {ENV, "{\"notice\":{\"type\":\"expired\"}}", "{\"notice\":{\"type\":\"expired\"}}"},
    {ENV, "{\"kind\":7}", "{\"kind\":7}"},
    {FRAME, "{\"error\":{\"code\":\"unsupported_version\"}}", "{\"error\":{\"code\":\"unsupported_version\"}}"},
    {FRAME, "{\"receipt\":{\"entries\":[{\"outcome\":\"duplicate\",\"code\":\"spoofed_sender\"}]}}",
     "{\"receipt\":{\"entries\":[{\"outcome\":\"duplicate\",\"code\":\"spoofed_sender\"}]}}"},
    {FRAME, "{\"receipt\":{\"entries\":[{\"code\":\"none\"}]}}", "{\"receipt\":{\"entries\":[{}]}}"},
};

START_TEST(test_enum_names)
{
    ProtobufCMessage *m = NULL;
    int rc = kb_json_decode(s_enums[_i].in, strlen(s_enums[_i].in), s_enums[_i].desc, &m);
    ck_assert_msg(rc == KB_OK, "%s: %s", s_enums[_i].in, kb_last_error());
    char *text = kb_json_encode(m, 0);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, s_enums[_i].want);
    free(text);
    protobuf_c_message_free_unpacked(m, NULL);
}
END_TEST

/* Accepted input forms that differ from the output form. */
static const struct {
    const char *in;   /* agency input (Envelope) */
    const char *want; /* canonical output */
} s_inputs[] = {
    {"{\"created_us\":1795428000000000}", "{\"created_us\":\"2026-11-23T10:00:00.000000Z\"}"},
    {"{\"created_us\":\"2026-11-23T11:00:00+01:00\"}", "{\"created_us\":\"2026-11-23T10:00:00.000000Z\"}"},
    {"{\"created_us\":\"2026-11-23T10:00:00.5Z\"}", "{\"created_us\":\"2026-11-23T10:00:00.500000Z\"}"},
    {"{\"created_us\":\"2028-02-29T10:00:00Z\"}", "{\"created_us\":\"2028-02-29T10:00:00.000000Z\"}"},
    {"{\"created_us\":\"2000-02-29T10:00:00Z\"}", "{\"created_us\":\"2000-02-29T10:00:00.000000Z\"}"},
    {"{\"message_id\":\"019AB43C-7000-7D21-9A6B-3C5D8E1F2A4B\"}",
     "{\"message_id\":\"019ab43c-7000-7d21-9a6b-3c5d8e1f2a4b\"}"},
    {"{\"signature\":\"DEADBEEF\",\"subject_keys\":[\"\"]}", "{\"subject_keys\":[\"\"],\"signature\":\"deadbeef\"}"},
    {"  {\"sender\": null, \"signal\": null, \"recipients\": null}\n\n", "{}"},
    {"{\"recipients\":[]}", "{}"},
    {"{\"sender\":\"\",\"officer\":\"\\u00e9\\ud83d\\ude00\"}", "{\"officer\":\"\xc3\xa9\xf0\x9f\x98\x80\"}"},
    {"{\"signal\":{\"minor\":false,\"narrative\":\"a/b \\\"c\\\"\\n\"}}", "{\"signal\":{\"narrative\":\"a/b \\\"c\\\"\\n\"}}"},
    {"{\"withheld\":[\"signal.narrative\"]}", "{\"withheld\":[\"signal.narrative\"]}"},
};

START_TEST(test_input_forms)
{
    ProtobufCMessage *m = NULL;
    int rc = kb_json_decode(s_inputs[_i].in, strlen(s_inputs[_i].in), ENV, &m);
    ck_assert_msg(rc == KB_OK, "%s: %s", s_inputs[_i].in, kb_last_error());
    char *text = kb_json_encode(m, 0);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, s_inputs[_i].want);
    free(text);
    protobuf_c_message_free_unpacked(m, NULL);
}
END_TEST

/* --------------------------------------------------------- malformed input */

static const struct {
    const ProtobufCMessageDescriptor *desc; /* type to decode */
    const char *text;                       /* untrusted input */
    size_t len;                             /* bytes of text; 0: strlen */
    int rc;                                 /* expected code */
    const char *err;                        /* expected part of kb_last_error() */
} s_bad[] = {
    {ENV, "", 0, KB_EPROTO, "empty JSON text"},
    {ENV, "[]", 0, KB_EPROTO, "top level: expected a JSON object"},
    {ENV, "\"signal\"", 0, KB_EPROTO, "top level: expected a JSON object"},
    {ENV, "{\"kind\":\"signal\"", 0, KB_EPROTO, "line 1, column 17: unexpected end of JSON text"},
    {ENV, "{\"kind\":\"signal\",}", 0, KB_EPROTO, "JSON syntax error"},
    {ENV, "{\"kind\":\"signal\"}\n{}", 0, KB_EPROTO, "line 2, column 1"},
    {ENV, "{\"kind\":\"signal\" \"purpose\":\"analysis\"}", 0, KB_EPROTO, "JSON syntax error"},
    {ENV, "{\"kind\":\"signal\"}\0{}", 20, KB_EPROTO, "line 1, column 18: NUL byte in JSON text"},
    {ENV, "{\"signl\":{}}", 0, KB_EPROTO,
     "signl: unknown field (Envelope has message_id, sender, recipients, kind, purpose, handling, legal_basis, "
     "created_us, correlation_id, subject_keys, officer, signal, referral, referral_update, notice, seals, "
     "signature, withheld)"},
    {ENV, "{\"legal_basis\":{\"basis\":\"Wpg\",\"article\":19}}", 0, KB_EPROTO,
     "legal_basis.article: unknown field (LegalBasis has basis, consent, consent_reference)"},
    {ENV, "{\"kind\":\"sgnal\"}", 0, KB_EPROTO,
     "kind: unknown value \"sgnal\" (expected signal, referral, referral_update, match_notice, expiry_notice)"},
    {ENV, "{\"handling\":\"H5\"}", 0, KB_EPROTO, "handling: unknown value \"H5\" (expected h0, h1, h2, h3)"},
    {ENV, "{\"signal\":{\"urgency\":\"very\"}}", 0, KB_EPROTO,
     "signal.urgency: unknown value \"very\" (expected routine, priority, urgent)"},
    {ENV, "{\"legal_basis\":{\"consent\":\"maybe\"}}", 0, KB_EPROTO,
     "legal_basis.consent: unknown value \"maybe\" (expected given, refused, not_required)"},
    {ENV, "{\"signal\":{\"indicators\":[\"debt_bondage\",\"nope\"]}}", 0, KB_EPROTO,
     "signal.indicators[1]: unknown value \"nope\""},
    {ENV, "{\"kind\":true}", 0, KB_EPROTO, "kind: expected a string"},
    {ENV, "{\"kind\":-2147483649}", 0, KB_EPROTO, "kind: -2147483649 is out of range for enum"},
    {ENV, "{\"recipients\":[\"politie\",\"om\",7]}", 0, KB_EPROTO, "recipients[2]: expected a string"},
    {ENV, "{\"recipients\":[null]}", 0, KB_EPROTO, "recipients[0]: expected a string"},
    {ENV, "{\"recipients\":\"politie\"}", 0, KB_EPROTO, "recipients: expected an array"},
    {ENV, "{\"signal\":{\"observed\":{\"time_us\":\"yesterday\"}}}", 0, KB_EPROTO,
     "signal.observed.time_us: not an RFC 3339 time"},
    {ENV, "{\"created_us\":\"2026-11-23T10:00:00\"}", 0, KB_EPROTO, "created_us: not an RFC 3339 time"},
    {ENV, "{\"created_us\":\"2026-13-01T00:00:00Z\"}", 0, KB_EPROTO, "created_us: not an RFC 3339 time"},
    /* days the month does not have, which timegm() would move on */
    {ENV, "{\"created_us\":\"2026-02-30T00:00:00Z\"}", 0, KB_EPROTO, "created_us: not an RFC 3339 time"},
    {ENV, "{\"created_us\":\"2026-02-29T00:00:00Z\"}", 0, KB_EPROTO, "created_us: not an RFC 3339 time"},
    {ENV, "{\"created_us\":\"2100-02-29T00:00:00Z\"}", 0, KB_EPROTO, "created_us: not an RFC 3339 time"},
    {ENV, "{\"created_us\":\"2028-11-31T12:00:00+01:00\"}", 0, KB_EPROTO, "created_us: not an RFC 3339 time"},
    {ENV, "{\"created_us\":true}", 0, KB_EPROTO, "created_us: expected RFC 3339 time text or an integer"},
    {ENV, "{\"created_us\":1.5}", 0, KB_EPROTO, "created_us: expected RFC 3339 time text or an integer"},
    {ENV, "{\"created_us\":99999999999999999999}", 0, KB_EPROTO,
     "line 1, column 15: integer out of range (more than 64 bits)"},
    {ENV, "{\"created_us\":-9223372036854775809}", 0, KB_EPROTO, "integer out of range (more than 64 bits)"},
    {ENV, "{\"created_us\":18446744073709551615}", 0, KB_EPROTO,
     "created_us: 18446744073709551615 is out of range for int64"},
    {ENV, "{\"signal\":{},\"referral\":{}}", 0, KB_EPROTO, "payload: both signal and referral given"},
    {ENV, "{\"notice\":{},\"referral\":{\"action\":\"shelter\"}}", 0, KB_EPROTO,
     "payload: both referral and notice given"},
    {ENV, "{\"message_id\":\"not-a-uuid\"}", 0, KB_EPROTO, "message_id: not a UUID: \"not-a-uuid\""},
    {ENV, "{\"message_id\":\"019ab43c70007d219a6b3c5d8e1f2a4b\"}", 0, KB_EPROTO, "message_id: not a UUID"},
    {ENV, "{\"correlation_id\":\"019ab43c-7000-7d21-9a6b-3c5d8e1f2a\"}", 0, KB_EPROTO, "correlation_id: not a UUID"},
    {ENV, "{\"notice\":{\"about_message_id\":\"00\"}}", 0, KB_EPROTO, "notice.about_message_id: not a UUID"},
    {ENV, "{\"subject_keys\":[\"abc\"]}", 0, KB_EPROTO, "subject_keys[0]: not hex: odd number of digits"},
    {ENV, "{\"seals\":[{\"path\":\"signal.minor\"},{\"salt\":\"0g\"}]}", 0, KB_EPROTO,
     "seals[1].salt: not hex: bad hex digit"},
    {ENV, "{\"signature\":12}", 0, KB_EPROTO, "signature: expected a hex string"},
    {ENV, "{\"signal\":{\"minor\":1}}", 0, KB_EPROTO, "signal.minor: expected true or false"},
    {ENV, "{\"signal\":{\"minor\":\"true\"}}", 0, KB_EPROTO, "signal.minor: expected true or false"},
    {ENV, "{\"signal\":[]}", 0, KB_EPROTO, "signal: expected a JSON object"},
    {ENV, "{\"sender\":{\"id\":\"fier\"}}", 0, KB_EPROTO, "sender: expected a string"},
    {ENV, "{\"sender\":\"fi\xff" "er\"}", 0, KB_EPROTO, "sender: invalid UTF-8 in string"},
    {ENV, "{\"officer\":\"\xed\xa0\x80\"}", 0, KB_EPROTO, "officer: invalid UTF-8 in string"},
    {ENV, "{\"officer\":\"\xc0\xaf\"}", 0, KB_EPROTO, "officer: invalid UTF-8 in string"},
    {ENV, "{\"sender\":\"fi\\u0000er\"}", 0, KB_EPROTO, "sender: NUL character in string"},
    {ENV, "{\"withheld\":[[[[[[[[[[[[[[[[\"x\"]]]]]]]]]]]]]]]]}", 0, KB_EPROTO, "JSON nested deeper than 16 levels"},
    {ENV, "{\"s\\u00efgnal\":1}", 0, KB_EPROTO, "s??gnal: unknown field"},
    {ENV, "{\"handling\":\"h3\",\"kind\":\"signal\",\"handling\":\"h0\"}", 0, KB_EPROTO,
     "line 1, column 1: a key is given twice in this object"},
    {ENV, "{\"seals\":[{\"path\":\"a\"},\n {\"path\":\"b\",\"path\":\"c\"}]}", 0, KB_EPROTO,
     "line 2, column 2: a key is given twice"},
    {ENV, "{\"kind\":\"signal\",\"\\u006bind\":\"referral\"}", 0, KB_EPROTO, "a key is given twice"},
    {ENV, "{\"sender\\u0000x\":\"fier\"}", 0, KB_EPROTO, "line 1, column 2: NUL character in a key"},
    {FRAME, "{\"version\":4294967296}", 0, KB_EPROTO, "version: 4294967296 is out of range for uint32"},
    {FRAME, "{\"request_id\":-1}", 0, KB_EPROTO, "request_id: -1 is out of range for uint64"},
    {FRAME, "{\"hello\":{\"credit\":-5}}", 0, KB_EPROTO, "hello.credit: -5 is out of range for uint32"},
    {FRAME, "{\"ping\":{},\"pong\":{}}", 0, KB_EPROTO, "body: both ping and pong given"},
    {FRAME, "{\"deliver\":{\"deliveries\":[{\"tag\":1},{\"envelope\":{\"signal\":{\"minor\":\"yes\"}}}]}}", 0,
     KB_EPROTO, "deliver.deliveries[1].envelope.signal.minor: expected true or false"},
    {FRAME, "{\"ack\":{\"tags\":[1,2,\"3\"]}}", 0, KB_EPROTO, "ack.tags[2]: expected an integer"},
};

START_TEST(test_malformed)
{
    const char *text = s_bad[_i].text;
    size_t len = s_bad[_i].len ? s_bad[_i].len : strlen(text);
    ProtobufCMessage *m = (ProtobufCMessage *)&m; /* must be cleared */
    int rc = kb_json_decode(text, len, s_bad[_i].desc, &m);
    ck_assert_msg(rc == s_bad[_i].rc, "row %d %s: rc %d, want %d (%s)", _i, text, rc, s_bad[_i].rc, kb_last_error());
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(kb_last_error(), s_bad[_i].err) != NULL, "row %d: error \"%s\" lacks \"%s\"", _i,
                  kb_last_error(), s_bad[_i].err);
}
END_TEST

/* The size limit is checked before anything is parsed; up to it is fine. */
START_TEST(test_size_limit)
{
    size_t len = KB_JSON_MAX_BYTES;
    char *text = malloc(len + 1);
    ck_assert_ptr_nonnull(text);
    memset(text, ' ', len + 1);
    text[0] = '{';
    text[len - 1] = '}';
    ProtobufCMessage *m = NULL;
    ck_assert_int_eq(kb_json_decode(text, len, ENV, &m), KB_OK);
    ck_assert_ptr_nonnull(m);
    protobuf_c_message_free_unpacked(m, NULL);
    m = NULL;
    text[len] = '}';
    text[len - 1] = ' ';
    ck_assert_int_eq(kb_json_decode(text, len + 1, ENV, &m), KB_ETOOBIG);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "exceeds the limit"));
    free(text);
}
END_TEST

/* ------------------------------------------------------------- set and get */

static const struct {
    const ProtobufCMessageDescriptor *desc; /* message type */
    const char *start;                      /* message before, as JSON */
    const char *path;                       /* field to set; NULL: only get */
    const char *value;                      /* value in text form */
    int rc;                                 /* expected code of the set */
    const char *err;                        /* expected part of the detail, if rc != KB_OK */
    const char *get;                        /* path to read afterwards */
    const char *got;                        /* expected text; NULL: not set */
    const char *after;                      /* whole message afterwards */
} s_paths[] = {
    /* plain fields */
    {ENV, "{}", "purpose", "child_protection", KB_OK, NULL, "purpose", "child_protection",
     "{\"purpose\":\"child_protection\"}"},
    {ENV, "{}", "kind", "Referral", KB_OK, NULL, "kind", "referral", "{\"kind\":\"referral\"}"},
    {ENV, "{\"sender\":\"fier\"}", "sender", "politie", KB_OK, NULL, "sender", "politie", "{\"sender\":\"politie\"}"},
    {ENV, "{}", "officer", "\"quoted\" as is", KB_OK, NULL, "officer", "\"quoted\" as is",
     "{\"officer\":\"\\\"quoted\\\" as is\"}"},
    {ENV, "{}", "created_us", "2026-11-23T10:00:00Z", KB_OK, NULL, "created_us", "2026-11-23T10:00:00.000000Z",
     "{\"created_us\":\"2026-11-23T10:00:00.000000Z\"}"},
    {ENV, "{}", "created_us", "1795428000000000", KB_OK, NULL, "created_us", "2026-11-23T10:00:00.000000Z",
     "{\"created_us\":\"2026-11-23T10:00:00.000000Z\"}"},
    {ENV, "{}", "message_id", "019AB43C-7000-7D21-9A6B-3C5D8E1F2A4B", KB_OK, NULL, "message_id",
     "019ab43c-7000-7d21-9a6b-3c5d8e1f2a4b", "{\"message_id\":\"019ab43c-7000-7d21-9a6b-3c5d8e1f2a4b\"}"},
    {ENV, "{}", "signature", "00ff", KB_OK, NULL, "signature", "00ff", "{\"signature\":\"00ff\"}"},
    /* nested creation */
    {ENV, "{}", "signal.observed.municipality", "GM0344", KB_OK, NULL, "signal.observed",
     "{\"municipality\":\"GM0344\"}", "{\"signal\":{\"observed\":{\"municipality\":\"GM0344\"}}}"},
    {ENV, "{\"signal\":{\"minor\":true}}", "signal.observed.time_us", "2026-11-22T17:05:00+01:00", KB_OK, NULL,
     "signal.minor", "true",
     "{\"signal\":{\"minor\":true,\"observed\":{\"time_us\":\"2026-11-22T16:05:00.000000Z\"}}}"},
    {ENV, "{}", "legal_basis", "{\"basis\":\"Jeugdwet art. 7.4.0\",\"consent\":\"not_required\"}", KB_OK, NULL,
     "legal_basis.consent", "not_required",
     "{\"legal_basis\":{\"basis\":\"Jeugdwet art. 7.4.0\",\"consent\":\"not_required\"}}"},
    /* oneof switching */
    {ENV, "{\"signal\":{\"minor\":true}}", "referral.action", "investigation", KB_OK, NULL, "signal", NULL,
     "{\"referral\":{\"action\":\"investigation\"}}"},
    {ENV, "{\"referral\":{\"reason\":\"x\",\"signal\":{\"minor\":true}}}", "signal.narrative", "caf\xc3\xa9", KB_OK,
     NULL, "referral", NULL, "{\"signal\":{\"narrative\":\"caf\xc3\xa9\"}}"},
    {ENV, "{\"signal\":{\"urgency\":\"urgent\"}}", "signal.urgency", "routine", KB_OK, NULL, "signal.urgency",
     "routine", "{\"signal\":{\"urgency\":\"routine\"}}"},
    {ENV, "{\"notice\":{\"text\":\"t\"}}", "referral_update", "{\"status\":\"accepted\"}", KB_OK, NULL,
     "referral_update.status", "accepted", "{\"referral_update\":{\"status\":\"accepted\"}}"},
    {FRAME, "{\"ping\":{\"time_us\":5}}", "credit.credit", "64", KB_OK, NULL, "ping", NULL,
     "{\"credit\":{\"credit\":64}}"},
    /* repeated fields get the value appended */
    {ENV, "{\"recipients\":[\"politie\"]}", "recipients", "rvdk", KB_OK, NULL, "recipients", "[\"politie\",\"rvdk\"]",
     "{\"recipients\":[\"politie\",\"rvdk\"]}"},
    {ENV, "{}", "withheld", "signal.narrative", KB_OK, NULL, "withheld", "[\"signal.narrative\"]",
     "{\"withheld\":[\"signal.narrative\"]}"},
    {ENV, "{\"signal\":{\"indicators\":[\"controlled_movement\"]}}", "signal.indicators", "repeated_arrests", KB_OK,
     NULL, "signal.indicators", "[\"controlled_movement\",\"repeated_arrests\"]",
     "{\"signal\":{\"indicators\":[\"controlled_movement\",\"repeated_arrests\"]}}"},
    {ENV, "{}", "subject_keys", "5e110ab2", KB_OK, NULL, "subject_keys", "[\"5e110ab2\"]",
     "{\"subject_keys\":[\"5e110ab2\"]}"},
    {ENV, "{\"seals\":[{\"path\":\"signal.minor\"}]}", "seals", "{\"path\":\"signal.narrative\",\"digest\":\"ab\"}",
     KB_OK, NULL, "seals", "[{\"path\":\"signal.minor\"},{\"path\":\"signal.narrative\",\"digest\":\"ab\"}]",
     "{\"seals\":[{\"path\":\"signal.minor\"},{\"path\":\"signal.narrative\",\"digest\":\"ab\"}]}"},
    {FRAME, "{}", "ack.tags", "18446744073709551615", KB_OK, NULL, "ack.tags", "[18446744073709551615]",
     "{\"ack\":{\"tags\":[18446744073709551615]}}"},
    {FRAME, "{}", "request_id", "18446744073709551615", KB_OK, NULL, "request_id", "18446744073709551615",
     "{\"request_id\":18446744073709551615}"},
    /* unknown paths */
    {ENV, "{}", "signl", "x", KB_ENOTFOUND, "signl: unknown field (Envelope has message_id, sender", "signl", NULL,
     "{}"},
    {ENV, "{}", "signal.observed.place", "x", KB_ENOTFOUND,
     "signal.observed.place: unknown field (Observation has time_us, municipality, location)", "signal", NULL, "{}"},
    {ENV, "{}", "sender.name", "x", KB_ENOTFOUND, "sender: not a message", "sender", NULL, "{}"},
    {ENV, "{}", "seals.path", "x", KB_ENOTFOUND, "seals: a repeated field cannot be a step of a path", "seals", NULL,
     "{}"},
    {ENV, "{}", "", "x", KB_ENOTFOUND, "empty field path", "kind", NULL, "{}"},
    {ENV, "{}", "signal..minor", "true", KB_ENOTFOUND, "empty segment", "signal", NULL, "{}"},
    {ENV, "{}", "signal.", "true", KB_ENOTFOUND, "empty segment", "signal", NULL, "{}"},
    /* refused values leave the message as it was (no half-made path) */
    {ENV, "{}", "signal.minor", "yes", KB_EPROTO, "signal.minor: expected true or false", "signal", NULL, "{}"},
    {ENV, "{\"kind\":\"signal\"}", "kind", "sgnal", KB_EPROTO, "kind: unknown value \"sgnal\"", "kind", "signal",
     "{\"kind\":\"signal\"}"},
    {ENV, "{}", "created_us", "soon", KB_EPROTO, "created_us: not an RFC 3339 time", "created_us", NULL, "{}"},
    {ENV, "{}", "message_id", "019ab43c", KB_EPROTO, "message_id: not a UUID", "message_id", NULL, "{}"},
    {ENV, "{}", "subject_keys", "xyz", KB_EPROTO, "subject_keys: not hex", "subject_keys", NULL, "{}"},
    {ENV, "{\"signal\":{}}", "referral.signal", "{\"minor\":1}", KB_EPROTO, "referral.signal.minor: expected true or false",
     "signal", "{}", "{\"signal\":{}}"},
    {ENV, "{}", "legal_basis", "{\"basis\":", KB_EPROTO, "legal_basis: line 1, column 10: unexpected end", "legal_basis",
     NULL, "{}"},
    {FRAME, "{}", "version", "4294967296", KB_EPROTO, "version: 4294967296 is out of range for uint32", "version",
     NULL, "{}"},
    {FRAME, "{}", "version", "-1", KB_EPROTO, "version: -1 is out of range for uint32", "version", NULL, "{}"},
    {FRAME, "{}", "request_id", "18446744073709551616", KB_EPROTO, "out of range for a 64-bit integer", "request_id",
     NULL, "{}"},
    {FRAME, "{}", "request_id", "12abc", KB_EPROTO, "request_id: expected an integer", "request_id", NULL, "{}"},
    {FRAME, "{}", "request_id", " 12", KB_EPROTO, "request_id: expected an integer", "request_id", NULL, "{}"},
    {ENV, "{}", "sender", "fi\xff", KB_EPROTO, "sender: invalid UTF-8", "sender", NULL, "{}"},
    /* get only: unset, unknown and default values give NULL */
    {ENV, "{\"sender\":\"fier\"}", NULL, NULL, KB_OK, NULL, "officer", NULL, "{\"sender\":\"fier\"}"},
    {ENV, "{\"sender\":\"fier\"}", NULL, NULL, KB_OK, NULL, "signal.minor", NULL, "{\"sender\":\"fier\"}"},
    {ENV, "{\"signal\":{\"minor\":false}}", NULL, NULL, KB_OK, NULL, "signal.minor", NULL, "{\"signal\":{}}"},
    {ENV, "{\"sender\":\"fier\"}", NULL, NULL, KB_OK, NULL, "sendr", NULL, "{\"sender\":\"fier\"}"},
    {ENV, "{\"signal\":{\"observed\":{\"location\":\"Hoog Catharijne\"}}}", NULL, NULL, KB_OK, NULL, "signal",
     "{\"observed\":{\"location\":\"Hoog Catharijne\"}}", "{\"signal\":{\"observed\":{\"location\":\"Hoog Catharijne\"}}}"},
};

START_TEST(test_paths)
{
    ProtobufCMessage *m = NULL;
    const char *start = s_paths[_i].start;
    ck_assert_int_eq(kb_json_decode(start, strlen(start), s_paths[_i].desc, &m), KB_OK);
    if (s_paths[_i].path) {
        int rc = kb_json_set_path(m, s_paths[_i].path, s_paths[_i].value);
        ck_assert_msg(rc == s_paths[_i].rc, "row %d: set %s=%s: rc %d, want %d (%s)", _i, s_paths[_i].path,
                      s_paths[_i].value, rc, s_paths[_i].rc, kb_last_error());
        if (s_paths[_i].err)
            ck_assert_msg(strstr(kb_last_error(), s_paths[_i].err) != NULL, "row %d: error \"%s\" lacks \"%s\"", _i,
                          kb_last_error(), s_paths[_i].err);
    }
    char *got = kb_json_get_path(m, s_paths[_i].get);
    if (s_paths[_i].got) {
        ck_assert_msg(got != NULL, "row %d: get %s: NULL (%s)", _i, s_paths[_i].get, kb_last_error());
        ck_assert_str_eq(got, s_paths[_i].got);
    } else {
        ck_assert_msg(got == NULL, "row %d: get %s gave \"%s\"", _i, s_paths[_i].get, got);
    }
    free(got);
    char *after = kb_json_encode(m, 0);
    ck_assert_ptr_nonnull(after);
    ck_assert_str_eq(after, s_paths[_i].after);
    free(after);

    /* what was set packs and reads back like any other message */
    size_t len;
    uint8_t *buf = s_pack(m, &len);
    ProtobufCMessage *back = protobuf_c_message_unpack(s_paths[_i].desc, NULL, len, buf);
    ck_assert_ptr_nonnull(back);
    char *again = kb_json_encode(back, 0);
    ck_assert_str_eq(again, s_paths[_i].after);
    free(again);
    protobuf_c_message_free_unpacked(back, NULL);
    free(buf);
    protobuf_c_message_free_unpacked(m, NULL);
}
END_TEST

/* An agency builds a referral field by field, as ketenbus_msg_set does. */
START_TEST(test_build_by_paths)
{
    static const char *const steps[][2] = {
        {"kind", "referral"},
        {"recipients", "rvdk"},
        {"purpose", "child_protection"},
        {"handling", "h2"},
        {"legal_basis.basis", "Jeugdwet art. 7.4.0"},
        {"legal_basis.consent", "not_required"},
        {"referral.action", "youth_care"},
        {"referral.deadline_us", "2026-11-23T14:00:00Z"},
        {"referral.urgency", "urgent"},
        {"referral.signal.exploitation", "criminal"},
        {"referral.signal.minor", "true"},
        {"referral.signal.age_band", "12_to_15"},
        {"referral.signal.indicators", "repeated_arrests"},
        {"referral.signal.indicators", "adult_claims_custody"},
    };
    ProtobufCMessage *m = malloc(ENV->sizeof_message);
    ck_assert_ptr_nonnull(m);
    protobuf_c_message_init(ENV, m);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        ck_assert_msg(kb_json_set_path(m, steps[i][0], steps[i][1]) == KB_OK, "%s: %s", steps[i][0], kb_last_error());
    char *text = kb_json_encode(m, 0);
    ck_assert_str_eq(text, "{\"recipients\":[\"rvdk\"],\"kind\":\"referral\",\"purpose\":\"child_protection\","
                           "\"handling\":\"h2\",\"legal_basis\":{\"basis\":\"Jeugdwet art. 7.4.0\","
                           "\"consent\":\"not_required\"},\"referral\":{\"action\":\"youth_care\","
                           "\"deadline_us\":\"2026-11-23T14:00:00.000000Z\",\"urgency\":\"urgent\","
                           "\"signal\":{\"exploitation\":\"criminal\",\"indicators\":[\"repeated_arrests\","
                           "\"adult_claims_custody\"],\"minor\":true,\"age_band\":\"12_to_15\"}}}");
    free(text);
    ck_assert_int_eq(kb_json_set_path(NULL, "kind", "signal"), KB_EINVAL);
    ck_assert_int_eq(kb_json_set_path(m, "kind", NULL), KB_EINVAL);
    ck_assert_ptr_null(kb_json_get_path(m, NULL));
    protobuf_c_message_free_unpacked(m, NULL);
}
END_TEST

/* ------------------------------------------------------- the user document */

#define DOC_MAX (1024u * 1024u) /* docs/JSON.md is far smaller */

/* docs/JSON.md from the source tree: tests run from the top directory
 * (make test), or from anywhere with KB_BUILD set to build/ or build/san/. */
static char *s_read_doc(void)
{
    const char *build = getenv("KB_BUILD");
    char paths[3][4096] = {"docs/JSON.md", "", ""};
    if (build) {
        if (kb_fmt(paths[1], sizeof paths[1], "%s/../docs/JSON.md", build) != KB_OK)
            paths[1][0] = '\0';
        if (kb_fmt(paths[2], sizeof paths[2], "%s/../../docs/JSON.md", build) != KB_OK)
            paths[2][0] = '\0';
    }
    for (int i = 0; i < 3; i++) {
        char *text = NULL;
        if (paths[i][0] && kb_file_read(paths[i], DOC_MAX, &text, NULL) == KB_OK)
            return text;
    }
    return NULL;
}

START_TEST(test_doc_examples)
{
    char *doc = s_read_doc();
    ck_assert_msg(doc != NULL, "docs/JSON.md not found (run from the top directory or set KB_BUILD)");
    static const char open_tag[] = "```json\n", close_tag[] = "```";
    int blocks = 0;
    ProtobufCMessage *last = NULL;
    for (char *p = strstr(doc, open_tag); p; p = strstr(p, open_tag)) {
        p += strlen(open_tag);
        char *end = strstr(p, close_tag);
        ck_assert_ptr_nonnull(end);
        ProtobufCMessage *m = NULL;
        int rc = kb_json_decode(p, (size_t)(end - p), ENV, &m);
        ck_assert_msg(rc == KB_OK, "example %d of docs/JSON.md: %s", blocks + 1, kb_last_error());
        if (last)
            protobuf_c_message_free_unpacked(last, NULL);
        last = m;
        blocks++;
        p = end + strlen(close_tag);
    }
    ck_assert_int_ge(blocks, 4); /* signal, referral, referral update, received */
    char *withheld = kb_json_get_path(last, "withheld");
    ck_assert_ptr_nonnull(withheld);
    ck_assert_str_eq(withheld, "[\"signal.narrative\"]");
    char *sender = kb_json_get_path(last, "sender");
    ck_assert_str_eq(sender, "fier");
    free(sender);
    free(withheld);
    protobuf_c_message_free_unpacked(last, NULL);
    free(doc);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("kb_json");
    TCase *tc = tcase_create("round_trip");
    tcase_add_loop_test(tc, test_round_trip, 0, (int)(sizeof s_round_trips / sizeof s_round_trips[0]));
    tcase_add_test(tc, test_object_interface);
    suite_add_tcase(s, tc);

    tc = tcase_create("output");
    tcase_add_loop_test(tc, test_output, 0, (int)(sizeof s_outputs / sizeof s_outputs[0]));
    tcase_add_loop_test(tc, test_enum_names, 0, (int)(sizeof s_enums / sizeof s_enums[0]));
    tcase_add_loop_test(tc, test_input_forms, 0, (int)(sizeof s_inputs / sizeof s_inputs[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed");
    tcase_add_loop_test(tc, test_malformed, 0, (int)(sizeof s_bad / sizeof s_bad[0]));
    tcase_add_test(tc, test_size_limit);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("paths");
    tcase_add_loop_test(tc, test_paths, 0, (int)(sizeof s_paths / sizeof s_paths[0]));
    tcase_add_test(tc, test_build_by_paths);
    suite_add_tcase(s, tc);

    tc = tcase_create("doc");
    tcase_add_test(tc, test_doc_examples);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
