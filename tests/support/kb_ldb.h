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

/* How many keys of the stopped database in dir start with prefix. */
size_t kb_ldb_count_prefix(const char *dir, char prefix);

/* The stored bytes of audit record i (free with leveldb_free); it must
 * exist. Records are stored 16 to a block (broker/audit_block.h). */
char *kb_ldb_get_record(kb_ldb_t *l, uint64_t i, size_t *len);

/* Store v (len > 0) as the bytes of audit record i, in its block. */
void kb_ldb_put_record(kb_ldb_t *l, uint64_t i, const void *v, size_t len);

/* Take audit record i out of its block: an empty slot, or a shorter block
 * when it was the block's last record (none left: the block is deleted). */
void kb_ldb_delete_record(kb_ldb_t *l, uint64_t i);

#endif
