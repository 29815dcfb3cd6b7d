/*
 * kb_arena.c - bump allocator in a list of chunks (see kb_arena.h).
 *
 * Chunks form a singly linked list, newest first; allocation bumps inside
 * the newest and adds a chunk when it is full. A reset moves the chunks it
 * keeps (up to KB_ARENA_KEEP bytes, standard-sized ones first) to a free
 * list that the next allocations draw on before calling malloc.
 */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

#include "kb_arena.h"
#include "kb_error.h"

#define KB_ARENA_ALIGN alignof(max_align_t)

typedef struct s_chunk {
    struct s_chunk *next;  /* older chunk (or next free one) */
    size_t size;           /* usable bytes in data */
    size_t used;           /* bytes handed out */
    alignas(max_align_t) unsigned char data[]; /* the memory */
} s_chunk_t;

struct kb_arena {
    s_chunk_t *chunks;  /* in use, newest first */
    s_chunk_t *spare;   /* kept by a reset, all of KB_ARENA_CHUNK bytes */
    size_t used;        /* bytes handed out since the last reset */
};

kb_arena_t *kb_arena_new(void)
{
    kb_arena_t *a = calloc(1, sizeof *a);
    if (!a)
        kb_error_set(KB_ENOMEM, "arena: out of memory");
    return a;
}

static void s_free_list(s_chunk_t *c)
{
    while (c) {
        s_chunk_t *next = c->next;
        free(c);
        c = next;
    }
}

void kb_arena_destroy(kb_arena_t **p)
{
    if (!p || !*p)
        return;
    s_free_list((*p)->chunks);
    s_free_list((*p)->spare);
    free(*p);
    *p = NULL;
}

void *kb_arena_alloc(kb_arena_t *a, size_t size)
{
    if (size > SIZE_MAX / 2)
        return NULL;
    size_t need = (size + KB_ARENA_ALIGN - 1) & ~(size_t)(KB_ARENA_ALIGN - 1);
    if (need == 0)
        need = KB_ARENA_ALIGN;
    s_chunk_t *c = a->chunks;
    if (!c || c->size - c->used < need) {
        if (need <= KB_ARENA_CHUNK && a->spare) {
            c = a->spare;
            a->spare = c->next;
        } else {
            size_t sz = need > KB_ARENA_CHUNK ? need : KB_ARENA_CHUNK;
            c = malloc(sizeof *c + sz);
            if (!c)
                return NULL;
            c->size = sz;
        }
        c->used = 0;
        c->next = a->chunks;
        a->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->used += need;
    return p;
}

void kb_arena_reset(kb_arena_t *a)
{
    size_t kept = 0;
    for (s_chunk_t *s = a->spare; s; s = s->next)
        kept += s->size;
    s_chunk_t *c = a->chunks;
    while (c) {
        s_chunk_t *next = c->next;
        if (c->size == KB_ARENA_CHUNK && kept + c->size <= KB_ARENA_KEEP) {
            c->next = a->spare;
            a->spare = c;
            kept += c->size;
        } else {
            free(c);
        }
        c = next;
    }
    a->chunks = NULL;
    a->used = 0;
}

size_t kb_arena_used(const kb_arena_t *a)
{
    return a->used;
}

static void *s_pb_alloc(void *data, size_t size)
{
    return kb_arena_alloc(data, size);
}

static void s_pb_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr; /* everything goes at the next reset */
}

ProtobufCAllocator kb_arena_allocator(kb_arena_t *a)
{
    ProtobufCAllocator pa = {s_pb_alloc, s_pb_free, a};
    return pa;
}
