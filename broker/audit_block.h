/*
 * audit_block.h - how audit records are laid out in the store: blocks of 16.
 *
 * The audit log keeps 16 consecutive records in one LevelDB value, under
 * the key b<block:8> (big-endian, block = index / 16). A block's value is,
 * for each record from index block * 16 on, a varint length and the
 * record's bytes (a packed AuditRecord, or a pruning tombstone). Only the
 * newest block may hold fewer than 16 records; the store writes it again
 * with every batch that adds to it, as it does the Merkle tree's partial
 * tiles. One entry per 16 records instead of one per record is what LevelDB
 * pays for: its memtable inserts, flushes and compactions cost per entry.
 *
 * A slot of length 0 holds no record: a record that was missing from a log
 * converted from the earlier layout (a<index:8>, one record per entry), or
 * taken out of a block by someone who changed the data directory. Readers
 * treat it as absent, as they treated a missing key, so `audit verify`
 * still reports the record as missing.
 *
 * These functions only encode and decode values; broker/store.c reads and
 * writes them, and the tests' tampering support (tests/support/kb_ldb.c)
 * rewrites single records through them.
 */
#ifndef KB_AUDIT_BLOCK_H
#define KB_AUDIT_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#define KB_ABLOCK_RECORDS 16u /* records per block */
#define KB_ABLOCK_KEY_LEN 9u  /* 'b' and the block number */
#define KB_ABLOCK_PREFIX  'b'

/* The key of a block. */
void kb_ablock_key(uint8_t k[KB_ABLOCK_KEY_LEN], uint64_t block);

/* Whether k is a block key (of a block whose records' indices fit in 64
 * bits); if so, its block number in *block. */
int kb_ablock_key_parse(const void *k, size_t kl, uint64_t *block);

/* Walks the slots of one stored block value (not copied: it must outlive
 * the walk). */
typedef struct {
    const uint8_t *val; /* the value */
    size_t len;         /* its length */
    size_t pos;         /* offset of the next slot */
    unsigned slot;      /* number of the next slot */
} kb_ablock_iter_t;

void kb_ablock_iter_init(kb_ablock_iter_t *it, const void *val, size_t len);

/* The next slot: KB_OK with its number, bytes and length (0: no record),
 * KB_ENOTFOUND past the last slot, KB_EPROTO (error set) if the value is
 * malformed (a length past its end, more than 16 slots). */
int kb_ablock_next(kb_ablock_iter_t *it, unsigned *slot, const uint8_t **rec, size_t *rlen);

/* The bytes of one slot of a stored value: KB_OK (*rlen 0 for an empty
 * slot), KB_ENOTFOUND if the block has fewer slots, KB_EPROTO if malformed. */
int kb_ablock_slot(const void *val, size_t len, unsigned slot, const uint8_t **rec, size_t *rlen);

/* A block being built: records are added in slot order. */
typedef struct {
    uint8_t *buf;  /* the value so far (malloc'd) */
    size_t len;    /* its length */
    size_t cap;    /* allocated */
    unsigned n;    /* slots in it */
} kb_ablock_buf_t;

/* Add the next slot (len 0: an empty one). KB_EINVAL when 16 are there. */
int kb_ablock_add(kb_ablock_buf_t *b, const void *rec, size_t len);

/* Copy a stored value (len 0: none) into b, checking that it decodes:
 * KB_OK, or KB_EPROTO as kb_ablock_next with b holding the slots before
 * the damage. */
int kb_ablock_load(kb_ablock_buf_t *b, const void *val, size_t len);

/* Empty b, keeping its memory. */
void kb_ablock_reset(kb_ablock_buf_t *b);

/* Free b's memory (b itself is the caller's). */
void kb_ablock_free(kb_ablock_buf_t *b);

/* Build into out (reset first) the stored value val with slot's record
 * replaced by rec (rlen 0: emptied). A slot past the block's end extends
 * it with empty slots; an emptied last slot, and empty slots before it,
 * are dropped, so the block ends at its last record. */
int kb_ablock_replace(kb_ablock_buf_t *out, const void *val, size_t len, unsigned slot, const void *rec,
                      size_t rlen);

#endif
