/*
 * idset.h - a set of (sender, message id) pairs, for the duplicates of
 * messages accepted into a batch that is not in the store yet. Each pair
 * carries a value: route.c keeps the audit index of the message's
 * "received" record there, which a duplicate's receipt gives.
 *
 * Open addressing with linear probing over a power-of-two table kept at
 * most half full; clearing touches only the slots in use, so a set that is
 * cleared every turn costs what the turn added. Bounded: it holds at most
 * KB_IDSET_MAX pairs (every envelope one turn can accept), and refuses more.
 * Used by route.c through the broker's two sets (the staged batch's and the
 * one being written), and by deliver.c for the queue entries those batches
 * remove: (agency, tag) with the tag big-endian in the id's first 8 bytes.
 */
#ifndef KB_IDSET_H
#define KB_IDSET_H

#include <stddef.h>
#include <stdint.h>

#include "kb_codec.h"

/* Most pairs a set holds: KB_DRAIN_MAX frames of KB_MAX_BATCH envelopes. */
#define KB_IDSET_MAX (512u * KB_MAX_BATCH)

typedef struct kb_idset kb_idset_t;

/* An empty set, or NULL (KB_ENOMEM). */
kb_idset_t *kb_idset_new(void);
void kb_idset_destroy(kb_idset_t **p);

/* Add (sender, id) with value; adding a pair already in the set is KB_OK
 * and keeps the value it has. KB_EINVAL for a sender longer than
 * KB_AGENCY_ID_MAX, KB_ETOOBIG when the set holds KB_IDSET_MAX pairs,
 * KB_ENOMEM. */
int kb_idset_put(kb_idset_t *s, const char *sender, const uint8_t id[KB_ID_LEN], uint64_t value);

/* kb_idset_put() with value 0, for a set whose values nobody reads. */
int kb_idset_add(kb_idset_t *s, const char *sender, const uint8_t id[KB_ID_LEN]);

/* 1 if (sender, id) is in the set, with its value in *value (if not
 * NULL); 0 if not (*value unchanged). */
int kb_idset_get(const kb_idset_t *s, const char *sender, const uint8_t id[KB_ID_LEN], uint64_t *value);

/* 1 if (sender, id) is in the set. */
int kb_idset_has(const kb_idset_t *s, const char *sender, const uint8_t id[KB_ID_LEN]);

/* Pairs in the set. */
size_t kb_idset_size(const kb_idset_t *s);

/* Remove every pair (the table keeps its size). */
void kb_idset_clear(kb_idset_t *s);

#endif
