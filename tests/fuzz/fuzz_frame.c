/*
 * fuzz_frame.c - libFuzzer target for the frame decoder and the envelope
 * validator (lib/kb_codec.c).
 *
 * Treats the input as a frame from a peer, as the broker and the SDK do:
 * kb_frame_decode() with the default size limit, then kb_envelope_validate()
 * on every envelope of a Submit or Deliver. Beyond the sanitizers it checks
 * the codec's promises and aborts when one breaks:
 * - *out is NULL after every error except KB_EVERSION;
 * - a refused envelope gets KB_EPROTO and a non-empty, terminated reason;
 * - a valid envelope stays valid after kb_envelope_dup(), and the view
 *   of its packed bytes (kb_envelope_view) agrees with it;
 * - kb_envelope_carries() says of those bytes and a payload path that
 *   withholding it changes something whenever kb_seal_redact() does;
 * - a decoded frame encodes, decodes again, and encodes to the same bytes.
 *
 * Build (clang only; the unit tests do not need it):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Ilib -Ibuild/gen \
 *     tests/fuzz/fuzz_frame.c lib/kb_codec.c lib/kb_error.c lib/kb_seal.c lib/kb_util.c \
 *     build/gen/ketenbus.pb-c.c -lprotobuf-c -lcrypto -o fuzz_frame
 *   ./fuzz_frame -max_total_time=60 corpus/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_seal.h"

/* Room for a reason; shorter than KB_ERROR_MAX to exercise cutting. */
#define FUZZ_WHY_LEN 96

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Payload paths kb_envelope_carries is asked about: leaves and messages. */
static const char *const s_paths[] = {"signal.narrative", "signal.observed", "signal.observed.location",
                                      "signal.indicators", "referral.signal", "referral.reason",
                                      "referral_update.reason", "notice.text"};

/* Whenever withholding a path changes the envelope packed in bytes,
 * kb_envelope_carries says it may (the broker unpacks only then). */
static void s_check_carries(const uint8_t *packed, size_t len)
{
    for (size_t k = 0; k < sizeof s_paths / sizeof s_paths[0]; k++) {
        int carries = kb_envelope_carries(packed, len, s_paths[k]);
        if (carries < 0)
            abort();
        Ketenbus__Envelope *e = ketenbus__envelope__unpack(NULL, len, packed);
        if (!e)
            abort();
        size_t before = e->n_withheld;
        int rc = kb_seal_redact(e, s_paths[k]);
        if (rc != KB_OK && rc != KB_ETOOBIG && rc != KB_ENOMEM)
            abort();
        size_t after_len = ketenbus__envelope__get_packed_size(e);
        uint8_t *after = malloc(after_len ? after_len : 1);
        if (!after)
            abort();
        ketenbus__envelope__pack(e, after);
        int changed = e->n_withheld != before || after_len != len || memcmp(after, packed, len) != 0;
        if (changed && !carries)
            abort();
        free(after);
        ketenbus__envelope__free_unpacked(e, NULL);
    }
}

static void s_check_envelope(const Ketenbus__Envelope *e)
{
    if (!e)
        return; /* a Delivery without envelope: the caller's business */
    char why[FUZZ_WHY_LEN];
    memset(why, 'x', sizeof why);
    int rc = kb_envelope_validate(e, why, sizeof why);
    if (rc != KB_OK) {
        if (rc != KB_EPROTO || why[0] == '\0' || memchr(why, '\0', sizeof why) == NULL)
            abort();
        return;
    }
    if (why[0] != '\0')
        abort();
    Ketenbus__Envelope *copy = kb_envelope_dup(e);
    if (!copy)
        abort();
    if (kb_envelope_validate(copy, why, sizeof why) != KB_OK)
        abort();
    size_t len = ketenbus__envelope__get_packed_size(copy);
    uint8_t *packed = malloc(len ? len : 1);
    if (!packed)
        abort();
    ketenbus__envelope__pack(copy, packed);
    kb_envelope_view_t v;
    if (kb_envelope_view(packed, len, &v) != KB_OK || strcmp(v.sender, copy->sender) != 0 ||
        strcmp(v.officer, copy->officer) != 0 || v.kind != (int)copy->kind ||
        v.n_subject_keys != copy->n_subject_keys || v.message_id.len != copy->message_id.len ||
        strcmp(v.basis, copy->legal_basis ? copy->legal_basis->basis : "") != 0)
        abort();
    s_check_carries(packed, len);
    free(packed);
    ketenbus__envelope__free_unpacked(copy, NULL);
}

/* Encode a decoded frame, decode that, and encode again: same bytes. */
static void s_check_round_trip(Ketenbus__Frame *f)
{
    uint8_t *a = NULL, *b = NULL;
    size_t a_len = 0, b_len = 0;
    if (kb_frame_encode(f, &a, &a_len) != KB_OK)
        abort();
    Ketenbus__Frame *g = NULL;
    if (kb_frame_decode(a, a_len, a_len, &g) != KB_OK || g->body_case != f->body_case ||
        g->request_id != f->request_id)
        abort();
    if (kb_frame_encode(g, &b, &b_len) != KB_OK || b_len != a_len || memcmp(a, b, a_len) != 0)
        abort();
    ketenbus__frame__free_unpacked(g, NULL);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Ketenbus__Frame *f = NULL;
    int rc = kb_frame_decode(data, size, KB_FRAME_MAX_DEFAULT, &f);
    if (rc == KB_EVERSION) {
        if (!f || f->version == KB_PROTOCOL_VERSION)
            abort();
        ketenbus__frame__free_unpacked(f, NULL);
        return 0;
    }
    if (rc != KB_OK) {
        if (f || rc == KB_EINVAL)
            abort();
        return 0;
    }
    if (f->body_case == KETENBUS__FRAME__BODY_SUBMIT) {
        for (size_t i = 0; i < f->submit->n_envelopes; i++)
            s_check_envelope(f->submit->envelopes[i]);
    } else if (f->body_case == KETENBUS__FRAME__BODY_DELIVER) {
        for (size_t i = 0; i < f->deliver->n_deliveries; i++)
            s_check_envelope(f->deliver->deliveries[i]->envelope);
    }
    s_check_round_trip(f);
    ketenbus__frame__free_unpacked(f, NULL);
    return 0;
}
