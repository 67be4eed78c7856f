/*
 * portico/str.h - the string view used across the plugin ABI.
 *
 * A pt_str is a borrowed (pointer, length) pair passed by value. It is never
 * NUL-terminated by contract; the owner of the bytes is named wherever one is
 * returned.
 */
#ifndef PORTICO_STR_H
#define PORTICO_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct pt_str {
    const char *ptr;
    size_t len;
};

/* A pt_str for a string literal. */
#define PT_STR(lit) ((struct pt_str){(lit), sizeof(lit) - 1})
#define PT_STR_NULL ((struct pt_str){NULL, 0})

static inline struct pt_str pt_str_from_cstr(const char *s)
{
    return (struct pt_str){s, s ? strlen(s) : 0};
}

static inline bool pt_str_eq(struct pt_str a, struct pt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

#endif
