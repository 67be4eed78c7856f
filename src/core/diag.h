/*
 * core/diag.h - configuration diagnostics.
 *
 * A pt_diag collects every error found while loading, validating or
 * compiling configuration, so an operator sees all of them at once, each as
 * one line "file:line: field.path: message". pt_diag_errorf() (the plugin
 * ABI, portico/config.h) prefixes the current context (where the filter's
 * config block is) to its field.
 */
#ifndef PT_CORE_DIAG_H
#define PT_CORE_DIAG_H

#include <stdarg.h>
#include <stddef.h>

#include "portico/config.h"

/* One error, structured: the field path it concerns ("routes[3].service",
 * "" when none) and the message alone. The admin API turns these into
 * google.rpc.BadRequest field violations. */
struct pt_diag_entry {
    char *field;
    char *message;
};

struct pt_diag {
    char *text; /* NUL-terminated, one message per line */
    size_t len;
    size_t cap;
    unsigned errors;
    const char *context;       /* borrowed; position prefix for pt_diag_errorf() */
    const char *context_field; /* borrowed; field path prefix for pt_diag_errorf() */
    struct pt_diag_entry *entries;
    size_t nentries;
};

void pt_diag_init(struct pt_diag *d);
void pt_diag_fini(struct pt_diag *d);
/* Add one error line: "<where>: <field>: <message>" (where/field may be NULL). */
void pt_diag_addf(struct pt_diag *d, const char *where, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void pt_diag_vaddf(struct pt_diag *d, const char *where, const char *field, const char *fmt,
                   va_list ap);
/* Set the context used by pt_diag_errorf(); returns the previous one. */
const char *pt_diag_set_context(struct pt_diag *d, const char *context);
/* Same for the field path pt_diag_errorf() prefixes to its field. */
const char *pt_diag_set_context_field(struct pt_diag *d, const char *field);
const char *pt_diag_text(const struct pt_diag *d);

#endif
