/*
 * kb_ldb.c - direct access to a stopped broker's LevelDB (see kb_ldb.h).
 *
 * Audit records live 16 to a LevelDB value (broker/audit_block.h): reading
 * or changing one record reads its block and writes the whole block again.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "audit_block.h"
#include "kb_error.h"
#include "kb_ldb.h"

void kb_ldb_open(kb_ldb_t *l, const char *dir)
{
    char *err = NULL;
    l->opts = leveldb_options_create();
    l->db = leveldb_open(l->opts, dir, &err);
    ck_assert_msg(err == NULL, "%s", err);
    l->ro = leveldb_readoptions_create();
    l->wo = leveldb_writeoptions_create();
}

void kb_ldb_close(kb_ldb_t *l)
{
    leveldb_close(l->db);
    leveldb_options_destroy(l->opts);
    leveldb_readoptions_destroy(l->ro);
    leveldb_writeoptions_destroy(l->wo);
}

size_t kb_ldb_count_prefix(const char *dir, char prefix)
{
    kb_ldb_t l;
    kb_ldb_open(&l, dir);
    leveldb_iterator_t *it = leveldb_create_iterator(l.db, l.ro);
    size_t n = 0;
    for (leveldb_iter_seek(it, &prefix, 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl < 1 || k[0] != prefix)
            break;
        n++;
    }
    leveldb_iter_destroy(it);
    kb_ldb_close(&l);
    return n;
}

/* The block holding record i (NULL if there is none; free with leveldb_free). */
static char *s_block(kb_ldb_t *l, uint64_t i, uint8_t k[KB_ABLOCK_KEY_LEN], size_t *len)
{
    char *err = NULL;
    kb_ablock_key(k, i / KB_ABLOCK_RECORDS);
    char *v = leveldb_get(l->db, l->ro, (const char *)k, KB_ABLOCK_KEY_LEN, len, &err);
    ck_assert_msg(err == NULL, "%s", err);
    return v;
}

char *kb_ldb_get_record(kb_ldb_t *l, uint64_t i, size_t *len)
{
    uint8_t k[KB_ABLOCK_KEY_LEN];
    size_t bl = 0;
    char *b = s_block(l, i, k, &bl);
    ck_assert_msg(b != NULL, "no audit block for record %llu", (unsigned long long)i);
    const uint8_t *rec;
    int rc = kb_ablock_slot(b, bl, (unsigned)(i % KB_ABLOCK_RECORDS), &rec, len);
    ck_assert_msg(rc == KB_OK && *len > 0, "no audit record %llu", (unsigned long long)i);
    char *v = malloc(*len); /* leveldb_free is free() */
    ck_assert_ptr_nonnull(v);
    memcpy(v, rec, *len);
    leveldb_free(b);
    return v;
}

/* Write record i's block again with v (len 0: without the record). */
static void s_replace(kb_ldb_t *l, uint64_t i, const void *v, size_t len)
{
    uint8_t k[KB_ABLOCK_KEY_LEN];
    size_t bl = 0;
    char *b = s_block(l, i, k, &bl);
    kb_ablock_buf_t out = {0};
    ck_assert_int_eq(kb_ablock_replace(&out, b, b ? bl : 0, (unsigned)(i % KB_ABLOCK_RECORDS), v, len), KB_OK);
    leveldb_free(b);
    char *err = NULL;
    if (out.n > 0)
        leveldb_put(l->db, l->wo, (const char *)k, sizeof k, (const char *)out.buf, out.len, &err);
    else
        leveldb_delete(l->db, l->wo, (const char *)k, sizeof k, &err);
    ck_assert_msg(err == NULL, "%s", err);
    kb_ablock_free(&out);
}

void kb_ldb_put_record(kb_ldb_t *l, uint64_t i, const void *v, size_t len)
{
    ck_assert_uint_gt(len, 0);
    s_replace(l, i, v, len);
}

void kb_ldb_delete_record(kb_ldb_t *l, uint64_t i)
{
    s_replace(l, i, NULL, 0);
}
