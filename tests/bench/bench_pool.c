/*
 * bench_pool.c - pre-signed SUBMIT frames.
 *
 * An adapter signs every envelope (Ed25519 over the seals, proto/SIGNING.md)
 * before it submits it. Signing is the adapter's cost, not the broker's, so
 * the benchmark signs its envelopes before the clock starts, on both cores,
 * and replays the encoded frames. Each envelope's UUIDv7 message id carries
 * the pair number (byte 7) and the index within the pool (bytes 10-15), so
 * a RECEIPT or DELIVER can be matched to its SUBMIT time without a lookup.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_json.h"
#include "kb_keys.h"
#include "kb_seal.h"
#include "kb_util.h"

#define BENCH_SIGN_THREADS 2

typedef struct {
    bench_pool_t *pool;          /* filled in place */
    const bench_keys_t *k;       /* key directory */
    unsigned pair;               /* s_pair -> r_pair */
    size_t from, to;             /* index range of this thread */
    size_t payload;              /* narrative bytes */
    int64_t ms;                  /* timestamp in the ids */
    int rc;                      /* 0 or -1 */
} s_job_t;

static Ketenbus__Envelope *s_template(unsigned pair, size_t payload)
{
    char *narrative = malloc(payload + 1);
    char *json = malloc(payload + 1024);
    if (!narrative || !json) {
        free(narrative);
        free(json);
        return NULL;
    }
    for (size_t i = 0; i < payload; i++)
        narrative[i] = (char)('a' + (i * 7 + i / 26) % 26);
    narrative[payload] = '\0';
    snprintf(json, payload + 1024,
             "{\"recipients\":[\"r%u\"],\"kind\":\"signal\",\"purpose\":\"victim_care\",\"handling\":\"h1\","
             "\"legal_basis\":{\"basis\":\"Wpg art. 19\",\"consent\":\"not_required\"},\"sender\":\"s%u\","
             "\"officer\":\"officer-17\",\"signal\":{\"exploitation\":\"criminal\",\"minor\":true,"
             "\"age_band\":\"12_to_15\",\"observed\":{\"municipality\":\"GM0344\"},\"narrative\":\"%s\"}}",
             pair, pair, narrative);
    ProtobufCMessage *pm = NULL;
    int rc = kb_json_decode(json, strlen(json), &ketenbus__envelope__descriptor, &pm);
    free(narrative);
    free(json);
    if (rc != KB_OK) {
        bench_log("envelope template: %s", kb_last_error());
        return NULL;
    }
    return (Ketenbus__Envelope *)pm;
}

static void s_id(uint8_t id[16], int64_t ms, unsigned pair, uint64_t index)
{
    for (int i = 0; i < 6; i++)
        id[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
    id[6] = 0x70;
    id[7] = (uint8_t)pair;
    id[8] = 0x80;
    id[9] = 0;
    for (int i = 0; i < 6; i++)
        id[10 + i] = (uint8_t)(index >> (40 - 8 * i));
}

int bench_id_decode(const uint8_t *id, size_t len, unsigned *pair, uint64_t *index)
{
    if (len != 16 || (id[6] >> 4) != 7 || id[7] >= BENCH_MAX_PAIRS)
        return -1;
    *pair = id[7];
    uint64_t v = 0;
    for (int i = 10; i < 16; i++)
        v = (v << 8) | id[i];
    *index = v;
    return 0;
}

static void *s_sign(void *arg)
{
    s_job_t *j = arg;
    j->rc = -1;
    char path[512];
    snprintf(path, sizeof path, "%s/s%u.sign.pem", j->k->keys, j->pair);
    EVP_PKEY *key = kb_keys_load_sign_private(path);
    Ketenbus__Envelope *tmpl = s_template(j->pair, j->payload);
    if (!key || !tmpl) {
        bench_log("sign: %s", kb_last_error());
        goto done;
    }
    int64_t now = kb_now_us();
    for (size_t i = j->from; i < j->to; i++) {
        Ketenbus__Envelope *e = kb_envelope_dup(tmpl);
        if (!e)
            goto done;
        free(e->message_id.data);
        e->message_id.data = malloc(16);
        if (!e->message_id.data) {
            ketenbus__envelope__free_unpacked(e, NULL);
            goto done;
        }
        e->message_id.len = 16;
        s_id(e->message_id.data, j->ms, j->pair, i);
        e->created_us = now;
        if (kb_seal_sign(e, key) != KB_OK) {
            bench_log("sign: %s", kb_last_error());
            ketenbus__envelope__free_unpacked(e, NULL);
            goto done;
        }
        Ketenbus__Submit sub;
        ketenbus__submit__init(&sub);
        sub.n_envelopes = 1;
        sub.envelopes = &e;
        Ketenbus__Frame f;
        ketenbus__frame__init(&f);
        f.request_id = i + 1;
        f.body_case = KETENBUS__FRAME__BODY_SUBMIT;
        f.submit = &sub;
        int rc = kb_frame_encode(&f, &j->pool->frame[i], &j->pool->len[i]);
        if (rc == KB_OK && i + 1 == j->pool->n) {
            j->pool->env_len = ketenbus__envelope__get_packed_size(e);
            j->pool->envelope = malloc(j->pool->env_len);
            if (j->pool->envelope)
                ketenbus__envelope__pack(e, j->pool->envelope);
        }
        ketenbus__envelope__free_unpacked(e, NULL);
        if (rc != KB_OK)
            goto done;
    }
    j->rc = 0;
done:
    if (tmpl)
        ketenbus__envelope__free_unpacked(tmpl, NULL);
    EVP_PKEY_free(key);
    return NULL;
}

int bench_pool_make(bench_pool_t *pool, const bench_keys_t *k, unsigned pair, size_t n, size_t payload)
{
    memset(pool, 0, sizeof *pool);
    if (n == 0 || pair >= BENCH_MAX_PAIRS)
        return -1;
    pool->n = n;
    pool->frame = calloc(n, sizeof *pool->frame);
    pool->len = calloc(n, sizeof *pool->len);
    if (!pool->frame || !pool->len) {
        bench_pool_free(pool);
        return -1;
    }
    s_job_t jobs[BENCH_SIGN_THREADS];
    pthread_t th[BENCH_SIGN_THREADS];
    int64_t ms = kb_now_us() / 1000;
    for (unsigned t = 0; t < BENCH_SIGN_THREADS; t++) {
        jobs[t] = (s_job_t){.pool = pool, .k = k, .pair = pair, .payload = payload, .ms = ms,
                            .from = n * t / BENCH_SIGN_THREADS, .to = n * (t + 1) / BENCH_SIGN_THREADS};
        if (pthread_create(&th[t], NULL, s_sign, &jobs[t]) != 0)
            jobs[t].rc = -2;
    }
    int rc = 0;
    for (unsigned t = 0; t < BENCH_SIGN_THREADS; t++) {
        if (jobs[t].rc != -2)
            pthread_join(th[t], NULL);
        if (jobs[t].rc != 0)
            rc = -1;
    }
    if (rc != 0)
        bench_pool_free(pool);
    return rc;
}

void bench_pool_free(bench_pool_t *pool)
{
    if (pool->frame)
        for (size_t i = 0; i < pool->n; i++)
            free(pool->frame[i]);
    free(pool->frame);
    free(pool->len);
    free(pool->envelope);
    memset(pool, 0, sizeof *pool);
}
