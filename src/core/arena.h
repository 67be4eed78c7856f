/*
 * core/arena.h - per-exchange (and per-connection) bump allocator.
 *
 * An arena hands out memory that is all freed at once by pt_arena_fini().
 * Blocks come from a pt_arena_pool owned by one worker, so steady-state
 * requests do not call malloc. Each arena has a byte limit: exceeding it
 * makes pt_arena_alloc() return NULL, which callers turn into a 431/413 reply
 * rather than a crash. A real malloc failure aborts (see pt_xmalloc).
 *
 * Thread: an arena and its pool belong to one worker thread.
 */
#ifndef PT_CORE_ARENA_H
#define PT_CORE_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "portico/str.h"

#define PT_ARENA_BLOCK_SIZE 8192u

struct pt_arena_block;

/* A free list of standard-size blocks, one per worker. */
struct pt_arena_pool {
    struct pt_arena_block *free;
    size_t nfree;
    size_t max_free; /* blocks kept beyond this are returned to malloc */
};

struct pt_arena {
    struct pt_arena_block *head; /* most recent block first */
    char *cur;
    char *end;
    size_t used;  /* bytes handed out, including large allocations */
    size_t limit; /* 0 = unlimited */
    struct pt_arena_pool *pool;
};

void pt_arena_pool_init(struct pt_arena_pool *p, size_t max_free);
void pt_arena_pool_fini(struct pt_arena_pool *p);

/* pool may be NULL (plain malloc). */
void pt_arena_init(struct pt_arena *a, struct pt_arena_pool *pool, size_t limit);
void pt_arena_fini(struct pt_arena *a);

/* Pointer: 16-byte aligned memory, or NULL when the limit would be exceeded. */
void *pt_arena_alloc(struct pt_arena *a, size_t n);
/* Pointer: a copy of s (NUL-terminated as a convenience), or NULL at the limit. */
char *pt_arena_strndup(struct pt_arena *a, const char *s, size_t n);
/* Status: 0 or PT_ERR_LIMIT; *out gets an arena copy of s. */
int pt_arena_str(struct pt_arena *a, struct pt_str s, struct pt_str *out);

/* Aborting allocation helpers for everything that is not arena memory. */
void *pt_xmalloc(size_t n);
void *pt_xcalloc(size_t nmemb, size_t n);
void *pt_xrealloc(void *p, size_t n);
char *pt_xstrdup(const char *s);
char *pt_xstrndup(const char *s, size_t n);
/* For allocators outside our control (libevent, nghttp2): log and abort. */
void pt_abort_oom(size_t n) __attribute__((noreturn));

#endif
