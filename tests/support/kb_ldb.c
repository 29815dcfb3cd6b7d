/*
 * kb_ldb.c - direct access to a stopped broker's LevelDB (see kb_ldb.h).
 */
#include <check.h>

#include "kb_ldb.h"
#include "kb_util.h"

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

void kb_ldb_record_key(uint8_t k[9], uint64_t i)
{
    k[0] = 'a';
    kb_be64_put(k + 1, i);
}

char *kb_ldb_get_record(kb_ldb_t *l, uint64_t i, size_t *len)
{
    uint8_t k[9];
    char *err = NULL;
    kb_ldb_record_key(k, i);
    char *v = leveldb_get(l->db, l->ro, (const char *)k, sizeof k, len, &err);
    ck_assert_msg(err == NULL, "%s", err);
    ck_assert_msg(v != NULL, "no audit record %llu", (unsigned long long)i);
    return v;
}

void kb_ldb_put_record(kb_ldb_t *l, uint64_t i, const void *v, size_t len)
{
    uint8_t k[9];
    char *err = NULL;
    kb_ldb_record_key(k, i);
    leveldb_put(l->db, l->wo, (const char *)k, sizeof k, v, len, &err);
    ck_assert_msg(err == NULL, "%s", err);
}
