/*
 * kb_ldb.h - direct access to a stopped broker's LevelDB, for tests that
 * play the part of someone who changes the data directory behind the
 * broker's back (tampering with audit records, tombstones, notes).
 *
 * Every function fails the running Check test on error.
 */
#ifndef KB_LDB_H
#define KB_LDB_H

#include <stddef.h>
#include <stdint.h>

#include <leveldb/c.h>

typedef struct {
    leveldb_t *db;                 /* the database */
    leveldb_options_t *opts;       /* its options */
    leveldb_readoptions_t *ro;     /* reads */
    leveldb_writeoptions_t *wo;    /* writes */
} kb_ldb_t;

/* Open the database in dir (it must exist). */
void kb_ldb_open(kb_ldb_t *l, const char *dir);
void kb_ldb_close(kb_ldb_t *l);

/* The key of audit record i: 'a' and the index, big-endian (store.h). */
void kb_ldb_record_key(uint8_t k[9], uint64_t i);

/* The stored value of audit record i (free with leveldb_free); it must exist. */
char *kb_ldb_get_record(kb_ldb_t *l, uint64_t i, size_t *len);

/* Store v as the value of audit record i. */
void kb_ldb_put_record(kb_ldb_t *l, uint64_t i, const void *v, size_t len);

#endif
