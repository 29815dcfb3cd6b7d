/*
 * idset.c - set of (sender, message id) pairs (see idset.h).
 *
 * A slot holds the pair itself, so membership is exact (no fingerprints):
 * a false "seen" would drop a message as a duplicate. The hash mixes the
 * id's bytes (UUIDv7: the random tail varies most) with the sender's.
 */
#include <stdlib.h>
#include <string.h>

#include "idset.h"
#include "kb_error.h"

#define KB_IDSET_SLOTS0 1024u /* first table size (a power of two) */

typedef struct {
    uint64_t value;                        /* what the pair was put with */
    uint8_t id[KB_ID_LEN];                 /* message id */
    char sender[KB_AGENCY_ID_MAX + 1];     /* sending agency; "" = free slot */
} s_slot_t;

struct kb_idset {
    s_slot_t *slots;    /* the table */
    size_t n_slots;     /* its size (a power of two) */
    size_t n;           /* pairs in it */
    size_t *used;       /* indices of the slots in use, for clearing */
};

static uint64_t s_hash(const char *sender, const uint8_t id[KB_ID_LEN])
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over id then sender */
    for (unsigned i = 0; i < KB_ID_LEN; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    for (const char *p = sender; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* The slot of (sender, id), or the free slot where it would go. */
static size_t s_find(const kb_idset_t *s, const char *sender, const uint8_t id[KB_ID_LEN])
{
    size_t mask = s->n_slots - 1;
    size_t i = (size_t)s_hash(sender, id) & mask;
    while (s->slots[i].sender[0] &&
           (memcmp(s->slots[i].id, id, KB_ID_LEN) != 0 || strcmp(s->slots[i].sender, sender) != 0))
        i = (i + 1) & mask;
    return i;
}

kb_idset_t *kb_idset_new(void)
{
    kb_idset_t *s = calloc(1, sizeof *s);
    if (s) {
        s->n_slots = KB_IDSET_SLOTS0;
        s->slots = calloc(s->n_slots, sizeof *s->slots);
        s->used = calloc(s->n_slots / 2, sizeof *s->used);
    }
    if (!s || !s->slots || !s->used) {
        kb_idset_destroy(&s);
        kb_error_set(KB_ENOMEM, "idset: out of memory");
        return NULL;
    }
    return s;
}

void kb_idset_destroy(kb_idset_t **p)
{
    if (!p || !*p)
        return;
    free((*p)->slots);
    free((*p)->used);
    free(*p);
    *p = NULL;
}

/* Double the table and place every pair again. */
static int s_grow(kb_idset_t *s)
{
    size_t n_slots = s->n_slots * 2;
    s_slot_t *slots = calloc(n_slots, sizeof *slots);
    size_t *used = calloc(n_slots / 2, sizeof *used);
    if (!slots || !used) {
        free(slots);
        free(used);
        return kb_error_set(KB_ENOMEM, "idset: out of memory");
    }
    kb_idset_t next = {slots, n_slots, 0, used};
    for (size_t k = 0; k < s->n; k++) {
        const s_slot_t *old = &s->slots[s->used[k]];
        size_t i = s_find(&next, old->sender, old->id);
        next.slots[i] = *old;
        next.used[next.n++] = i;
    }
    free(s->slots);
    free(s->used);
    *s = next;
    return KB_OK;
}

int kb_idset_put(kb_idset_t *s, const char *sender, const uint8_t id[KB_ID_LEN], uint64_t value)
{
    size_t len = strlen(sender);
    if (len == 0 || len > KB_AGENCY_ID_MAX)
        return kb_error_set(KB_EINVAL, "idset: sender of %zu bytes", len);
    size_t i = s_find(s, sender, id);
    if (s->slots[i].sender[0])
        return KB_OK;
    if (s->n >= KB_IDSET_MAX)
        return kb_error_set(KB_ETOOBIG, "idset: more than %u ids", KB_IDSET_MAX);
    if ((s->n + 1) * 2 > s->n_slots) {
        int rc = s_grow(s);
        if (rc != KB_OK)
            return rc;
        i = s_find(s, sender, id);
    }
    s->slots[i].value = value;
    memcpy(s->slots[i].id, id, KB_ID_LEN);
    memcpy(s->slots[i].sender, sender, len + 1);
    s->used[s->n++] = i;
    return KB_OK;
}

int kb_idset_add(kb_idset_t *s, const char *sender, const uint8_t id[KB_ID_LEN])
{
    return kb_idset_put(s, sender, id, 0);
}

int kb_idset_get(const kb_idset_t *s, const char *sender, const uint8_t id[KB_ID_LEN], uint64_t *value)
{
    if (s->n == 0 || strlen(sender) > KB_AGENCY_ID_MAX)
        return 0;
    const s_slot_t *slot = &s->slots[s_find(s, sender, id)];
    if (slot->sender[0] == '\0')
        return 0;
    if (value)
        *value = slot->value;
    return 1;
}

int kb_idset_has(const kb_idset_t *s, const char *sender, const uint8_t id[KB_ID_LEN])
{
    return kb_idset_get(s, sender, id, NULL);
}

size_t kb_idset_size(const kb_idset_t *s)
{
    return s->n;
}

void kb_idset_clear(kb_idset_t *s)
{
    for (size_t k = 0; k < s->n; k++)
        s->slots[s->used[k]].sender[0] = '\0';
    s->n = 0;
}
