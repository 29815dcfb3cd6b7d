/*
 * check_arena.c - the bump allocator (lib/kb_arena.c): aligned blocks that
 * do not overlap, blocks larger than a chunk, reuse after a reset, and
 * frames decoded through it (kb_frame_decode_with) equal to frames decoded
 * with malloc, turn after turn.
 */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "kb_arena.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_test.h"

/* Block sizes per row: small, odd, one chunk, more than a chunk. */
static const size_t s_sizes[] = {1, 13, 64, 1000, KB_ARENA_CHUNK, KB_ARENA_CHUNK + 1, 3 * KB_ARENA_CHUNK};

START_TEST(test_blocks)
{
    kb_arena_t *a = kb_arena_new();
    ck_assert_ptr_nonnull(a);
    enum { N = 200 };
    unsigned char *p[N];
    size_t size = s_sizes[_i];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            p[i] = kb_arena_alloc(a, size);
            ck_assert_ptr_nonnull(p[i]);
            ck_assert_uint_eq((uintptr_t)p[i] % alignof(max_align_t), 0);
            memset(p[i], i, size);
        }
        ck_assert_uint_ge(kb_arena_used(a), N * size);
        /* nothing overwrote anything */
        for (int i = 0; i < N; i++)
            for (size_t k = 0; k < size; k += size / 7 + 1)
                ck_assert_uint_eq(p[i][k], (unsigned char)i);
        kb_arena_reset(a);
        ck_assert_uint_eq(kb_arena_used(a), 0);
    }
    ck_assert_ptr_null(kb_arena_alloc(a, SIZE_MAX - 8));
    kb_arena_destroy(&a);
    ck_assert_ptr_null(a);
    kb_arena_destroy(&a);
}
END_TEST

/* A SUBMIT frame of several envelopes decodes through the arena into the
 * same message as through malloc (compared by packing both), many turns
 * over one arena; a malformed frame fails the same way. */
START_TEST(test_frames)
{
    Ketenbus__Envelope env[3];
    Ketenbus__Envelope *ptrs[3];
    Ketenbus__Signal sig[3];
    uint8_t ids[3][16];
    for (int i = 0; i < 3; i++) {
        ketenbus__envelope__init(&env[i]);
        ketenbus__signal__init(&sig[i]);
        memset(ids[i], i + 1, sizeof ids[i]);
        env[i].message_id.data = ids[i];
        env[i].message_id.len = 16;
        env[i].sender = (char *)"politie";
        env[i].kind = KETENBUS__KIND__KIND_SIGNAL;
        env[i].payload_case = KETENBUS__ENVELOPE__PAYLOAD_SIGNAL;
        env[i].signal = &sig[i];
        sig[i].narrative = (char *)"seen at the station, twice";
        ptrs[i] = &env[i];
    }
    Ketenbus__Submit sub;
    ketenbus__submit__init(&sub);
    sub.n_envelopes = 3;
    sub.envelopes = ptrs;
    Ketenbus__Frame f;
    ketenbus__frame__init(&f);
    f.request_id = 42;
    f.body_case = KETENBUS__FRAME__BODY_SUBMIT;
    f.submit = &sub;
    uint8_t *wire = NULL;
    size_t wire_len = 0;
    ck_assert_int_eq(kb_frame_encode(&f, &wire, &wire_len), KB_OK);

    kb_arena_t *a = kb_arena_new();
    ck_assert_ptr_nonnull(a);
    ProtobufCAllocator pa = kb_arena_allocator(a);
    for (int turn = 0; turn < 50; turn++) {
        Ketenbus__Frame *x = NULL, *y = NULL;
        ck_assert_int_eq(kb_frame_decode(wire, wire_len, wire_len, &x), KB_OK);
        ck_assert_int_eq(kb_frame_decode_with(wire, wire_len, wire_len, &pa, &y), KB_OK);
        ck_assert_uint_gt(kb_arena_used(a), 0);
        uint8_t *bx = NULL, *by = NULL;
        size_t lx = 0, ly = 0;
        ck_assert_int_eq(kb_frame_encode(x, &bx, &lx), KB_OK);
        ck_assert_int_eq(kb_frame_encode(y, &by, &ly), KB_OK);
        ck_assert_uint_eq(lx, ly);
        ck_assert_int_eq(memcmp(bx, by, lx), 0);
        ck_assert_str_eq(y->submit->envelopes[2]->signal->narrative, "seen at the station, twice");
        free(bx);
        free(by);
        ketenbus__frame__free_unpacked(x, NULL);
        /* a frame cut short fails through the arena too */
        ck_assert_int_eq(kb_frame_decode_with(wire, wire_len - 3, wire_len, &pa, &y), KB_EPROTO);
        ck_assert_ptr_null(y);
        kb_arena_reset(a);
    }
    kb_arena_destroy(&a);
    free(wire);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("arena");
    TCase *tc = tcase_create("arena");
    tcase_add_loop_test(tc, test_blocks, 0, (int)(sizeof s_sizes / sizeof s_sizes[0]));
    tcase_add_test(tc, test_frames);
    suite_add_tcase(s, tc);
    return kb_test_run(s);
}
