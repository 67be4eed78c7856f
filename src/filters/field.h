/*
 * filters/field.h - header-field checks shared by the built-in filters.
 *
 * The checks a filter needs at create() time to accept a header name or
 * value from its configuration, with reasons fit for pt_diag_errorf(). They
 * are stricter than what the exchange accepts on the wire: configuration
 * may not touch fields the gateway itself manages (pseudo-headers, framing
 * and hop-by-hop fields, host).
 *
 * Thread: any; no state.
 */
#ifndef PT_FILTERS_FIELD_H
#define PT_FILTERS_FIELD_H

#include <stdbool.h>
#include <stddef.h>

#include "portico/str.h"

/* Longest header name and value a filter accepts from its configuration. */
#define PT_FILTERS_MAX_NAME 256u
#define PT_FILTERS_MAX_VALUE 8192u

/*
 * Check a header name that configuration asks a filter to set, add or
 * remove: a non-empty RFC 9110 token (any case), not a pseudo-header, not a
 * field the gateway manages. Pointer: NULL when acceptable, else a static
 * sentence saying why not.
 */
const char *pt_filters_name_problem(struct pt_str name);

/*
 * Check a header value from configuration: at most PT_FILTERS_MAX_VALUE
 * bytes, no control characters other than HTAB (so no NUL, CR or LF), no
 * DEL, no leading or trailing space or tab. Returns true when acceptable;
 * otherwise writes a reason into why (NUL-terminated, truncated to n).
 */
bool pt_filters_value_ok(struct pt_str value, char *why, size_t n);

/* Pointer: a malloc'ed, NUL-terminated, lower-case copy of s (free()). */
char *pt_filters_lower_dup(struct pt_str s);

/*
 * Render s for a diagnostic: printable ASCII as is, '"' and '\\' escaped,
 * every other byte as \xNN; truncated with "..." to fit. Pointer: buf
 * (always NUL-terminated, n > 0).
 */
const char *pt_filters_printable(struct pt_str s, char *buf, size_t n);

#endif
