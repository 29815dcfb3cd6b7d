/*
 * kb_arena.h - a bump allocator for messages decoded and dropped together.
 *
 * The broker decodes a turn's frames, routes them and drops them all at
 * once; with protobuf-c's default allocator that is one malloc and one free
 * per field of every envelope (dozens per message). Through an arena the
 * allocations are pointer bumps in a few reused chunks, and dropping is a
 * reset. Not thread-safe: one owner at a time.
 */
#ifndef KB_ARENA_H
#define KB_ARENA_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#define KB_ARENA_CHUNK (64u * 1024u)       /* chunk size; larger blocks get a chunk of their own */
#define KB_ARENA_KEEP  (4u * 1024u * 1024u) /* chunk bytes a reset keeps for reuse; the rest is freed */

typedef struct kb_arena kb_arena_t;

/* An empty arena, or NULL (KB_ENOMEM). Chunks are allocated on demand. */
kb_arena_t *kb_arena_new(void);
/* Frees every chunk; accepts NULL. */
void kb_arena_destroy(kb_arena_t **p);

/* size bytes aligned for any type, valid until the next reset; NULL when
 * out of memory (or size is beyond what can be allocated). */
void *kb_arena_alloc(kb_arena_t *a, size_t size);

/* Forget every allocation; keeps up to KB_ARENA_KEEP bytes of chunks. */
void kb_arena_reset(kb_arena_t *a);

/* Bytes handed out since the last reset (for tests and limits). */
size_t kb_arena_used(const kb_arena_t *a);

/* protobuf-c allocator on a (free does nothing: reset drops everything). */
ProtobufCAllocator kb_arena_allocator(kb_arena_t *a);

#endif
