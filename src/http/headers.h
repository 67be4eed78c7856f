/*
 * http/headers.h - an ordered list of header fields in an arena.
 *
 * Names are stored in lower case (HTTP/2 requires it; HTTP/1.1 names are
 * lowered when parsed), so lookups compare bytes. Pseudo-headers (":path")
 * are never stored here: the request and response carry them as fields.
 * The list keeps wire order and repeated fields.
 */
#ifndef PT_HTTP_HEADERS_H
#define PT_HTTP_HEADERS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "portico/exchange.h"

struct pt_header {
    struct pt_str name;
    struct pt_str value;
};

struct pt_headers {
    struct pt_header *v;
    uint32_t n;
    uint32_t cap;
    uint32_t max; /* most fields allowed; 0 = unlimited */
    struct pt_arena *arena;
};

void pt_headers_init(struct pt_headers *h, struct pt_arena *arena, uint32_t max);
/* Add without copying or checking: name must be lower case and both must
 * live at least as long as the list (arena or static). Status: 0 or PT_ERR_LIMIT. */
int pt_headers_add_ref(struct pt_headers *h, struct pt_str name, struct pt_str value);
/* Index of the first field called name (lower case) at or after `from`, or -1. */
int pt_headers_index(const struct pt_headers *h, struct pt_str name, uint32_t from);
void pt_headers_remove_at(struct pt_headers *h, uint32_t i);
/* Total bytes of names and values (for limits and logs). */
size_t pt_headers_bytes(const struct pt_headers *h);
/* Copy every field of src into dst (values are shared, not copied: src must
 * outlive dst). Status: 0 or PT_ERR_LIMIT. */
int pt_headers_copy_ref(struct pt_headers *dst, const struct pt_headers *src);

/* RFC 9110 token characters (header names, methods). */
bool pt_http_is_token(struct pt_str s);
/* Field value bytes allowed on the wire: no NUL, CR or LF; other CTLs except
 * HTAB rejected. */
bool pt_http_is_field_value(struct pt_str s);

/* Hop-by-hop fields (connection, keep-alive, proxy-connection, te,
 * transfer-encoding, upgrade, trailer and every name listed in Connection)
 * are removed; `keep_te_trailers` keeps "te: trailers" (needed by gRPC). */
void pt_headers_strip_hop_by_hop(struct pt_headers *h, bool keep_te_trailers);

#endif
