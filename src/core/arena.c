#include "core/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/errors.h"

struct pt_arena_block {
    struct pt_arena_block *next;
    size_t size; /* usable bytes after the header */
    /* keep the payload 16-byte aligned */
    _Alignas(16) char data[];
};

void pt_abort_oom(size_t n)
{
    fprintf(stderr, "portico: out of memory allocating %zu bytes\n", n);
    abort();
}

void *pt_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        pt_abort_oom(n);
    return p;
}

void *pt_xcalloc(size_t nmemb, size_t n)
{
    void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);
    if (!p)
        pt_abort_oom(nmemb * n);
    return p;
}

void *pt_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        pt_abort_oom(n);
    return q;
}

char *pt_xstrndup(const char *s, size_t n)
{
    char *p = pt_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *pt_xstrdup(const char *s)
{
    return pt_xstrndup(s, strlen(s));
}

void pt_arena_pool_init(struct pt_arena_pool *p, size_t max_free)
{
    p->free = NULL;
    p->nfree = 0;
    p->max_free = max_free;
}

void pt_arena_pool_fini(struct pt_arena_pool *p)
{
    while (p->free) {
        struct pt_arena_block *b = p->free;
        p->free = b->next;
        free(b);
    }
    p->nfree = 0;
}

void pt_arena_init(struct pt_arena *a, struct pt_arena_pool *pool, size_t limit)
{
    a->head = NULL;
    a->cur = a->end = NULL;
    a->used = 0;
    a->limit = limit;
    a->pool = pool;
}

static struct pt_arena_block *block_new(struct pt_arena *a, size_t size)
{
    struct pt_arena_block *b;
    if (size == PT_ARENA_BLOCK_SIZE && a->pool && a->pool->free) {
        b = a->pool->free;
        a->pool->free = b->next;
        a->pool->nfree--;
    } else {
        b = pt_xmalloc(sizeof(*b) + size);
        b->size = size;
    }
    return b;
}

static void block_release(struct pt_arena *a, struct pt_arena_block *b)
{
    if (b->size == PT_ARENA_BLOCK_SIZE && a->pool && a->pool->nfree < a->pool->max_free) {
        b->next = a->pool->free;
        a->pool->free = b;
        a->pool->nfree++;
    } else {
        free(b);
    }
}

void pt_arena_fini(struct pt_arena *a)
{
    struct pt_arena_block *b = a->head;
    while (b) {
        struct pt_arena_block *next = b->next;
        block_release(a, b);
        b = next;
    }
    a->head = NULL;
    a->cur = a->end = NULL;
    a->used = 0;
}

void *pt_arena_alloc(struct pt_arena *a, size_t n)
{
    size_t need = (n + 15u) & ~(size_t)15u;
    if (need < n)
        return NULL;
    if (a->limit && (a->used + need > a->limit || a->used + need < a->used))
        return NULL;
    if ((size_t)(a->end - a->cur) >= need) {
        void *p = a->cur;
        a->cur += need;
        a->used += need;
        return p;
    }
    if (need > PT_ARENA_BLOCK_SIZE / 4) {
        /* Large allocation: its own block, behind the current one so the
         * current block's free tail stays usable. */
        struct pt_arena_block *b = block_new(a, need);
        if (a->head) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = NULL;
            a->head = b;
            a->cur = a->end = b->data + need;
        }
        a->used += need;
        return b->data;
    }
    struct pt_arena_block *b = block_new(a, PT_ARENA_BLOCK_SIZE);
    b->next = a->head;
    a->head = b;
    a->cur = b->data + need;
    a->end = b->data + PT_ARENA_BLOCK_SIZE;
    a->used += need;
    return b->data;
}

char *pt_arena_strndup(struct pt_arena *a, const char *s, size_t n)
{
    char *p = pt_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int pt_arena_str(struct pt_arena *a, struct pt_str s, struct pt_str *out)
{
    char *p = pt_arena_strndup(a, s.ptr, s.len);
    if (!p)
        return PT_ERR_LIMIT;
    *out = (struct pt_str){p, s.len};
    return 0;
}
