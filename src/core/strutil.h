/*
 * core/strutil.h - small string helpers on pt_str.
 */
#ifndef PT_CORE_STRUTIL_H
#define PT_CORE_STRUTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "portico/str.h"

static inline char pt_ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* Value of a hexadecimal digit, or -1. */
static inline int pt_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool pt_str_eq_nocase(struct pt_str a, struct pt_str b);
bool pt_str_has_prefix(struct pt_str s, struct pt_str prefix);
bool pt_str_has_prefix_nocase(struct pt_str s, struct pt_str prefix);
struct pt_str pt_str_trim(struct pt_str s); /* spaces and tabs at both ends */
/* Status: 0, or PT_ERR_BAD_REQUEST when s is not a decimal uint64 (no sign,
 * no spaces, no overflow). */
int pt_str_to_u64(struct pt_str s, uint64_t *out);
/* Write v in decimal to buf (at least 20 bytes; no NUL); returns the
 * length. For per-request header values, where printf's cost shows. */
size_t pt_u64_format(uint64_t v, char *buf);
/* Does the comma-separated list contain token (case-insensitive)? */
bool pt_str_list_has_token(struct pt_str list, struct pt_str token);

#endif
