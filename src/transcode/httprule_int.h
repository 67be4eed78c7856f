/*
 * transcode/httprule_int.h - what the httprule_*.c files share: the
 * compiled route and table, percent-decoding helpers, query binding. Never
 * included from outside src/transcode (and its unit tests).
 */
#ifndef PT_TRANSCODE_HTTPRULE_INT_H
#define PT_TRANSCODE_HTTPRULE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transcode/httprule.h"

/* One compiled (HTTP method, template) of one gRPC method. */
struct pt_httprule_route {
    uint32_t method;      /* index into the compile input */
    uint32_t binding;     /* 0 = the rule, i = additional_bindings[i - 1] */
    uint32_t http_method; /* index into pt_httprule_table.http_methods */
    bool fallback;
    struct pt_httprule_template tmpl;
    enum pt_httprule_body body;
    struct pt_httprule_field body_field;
    struct pt_httprule_field response_field;
    struct pt_str name;    /* gRPC method name (owned) */
    struct pt_str pattern; /* "GET /v1/{x}" (owned) */
    char *owned;
    struct pt_str *owned_fields; /* segments of body_field and response_field */
};

struct pt_httprule_node;

struct pt_httprule_table {
    struct pt_httprule_route *routes;
    size_t nroutes;
    struct pt_str http_methods[PT_HTTPRULE_MAX_HTTP_METHODS]; /* owned bytes */
    uint32_t nhttp_methods;
    struct pt_httprule_node *root;
    struct pt_httprule_limits limits; /* defaults filled in */
};

/* ---- percent-encoding (httprule_decode.c) ---- */

enum pt_httprule_decode_mode {
    PT_HTTPRULE_DECODE_ALL,        /* every %XX (single-segment variables) */
    PT_HTTPRULE_DECODE_KEEP_SLASH, /* every %XX but %2F/%2f, kept as sent */
    PT_HTTPRULE_DECODE_FORM,       /* every %XX, and '+' is a space (query) */
};

static inline bool pt_httprule_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Does every '%' in s start a %XX escape? */
bool pt_httprule_escapes_valid(struct pt_str s);

/* Write the canonical form of s (escapes valid) to out, which has room for
 * 3 * s.len bytes: unreserved escapes decoded, other escapes upper case,
 * raw bytes outside '!'..'~' escaped. Returns the length. */
size_t pt_httprule_canon(struct pt_str s, char *out);

/* Decode s into out (room for s.len bytes). Status: 0 with *len set, or
 * PT_ERR_INVALID for a bad escape. */
int pt_httprule_decode(struct pt_str s, enum pt_httprule_decode_mode mode, char *out, size_t *len);

bool pt_httprule_utf8_valid(const char *p, size_t n);

/* Are a and b the same field, or is one inside the other? */
bool pt_httprule_field_overlap(struct pt_httprule_field a, struct pt_httprule_field b);

/* Split a checked FieldPath into seg (room for its segment count). */
void pt_httprule_field_split(struct pt_str path, struct pt_str *seg);

/* ---- query binding (httprule_query.c) ---- */

/* Upper bound of the parameters query can yield (non-empty '&' pieces). */
size_t pt_httprule_query_count(struct pt_str query);

/*
 * Append the bindings of query to out->params (which has room for the
 * count above), for route r. Status: 0, PT_ERR_INVALID or PT_ERR_LIMIT
 * (out->reason set).
 */
int pt_httprule_query_bind(const struct pt_httprule_route *r, struct pt_str query,
                           const struct pt_httprule_limits *lim, struct pt_arena *arena,
                           struct pt_httprule_match *out);

#endif
