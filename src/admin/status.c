/*
 * Handler error results (struct pt_admin_status).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/server.h"
#include "core/arena.h"

static char *vformat(const char *fmt, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    return pt_xstrdup(buf);
}

void pt_admin_status_set(struct pt_admin_status *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(st->message);
    st->message = vformat(fmt, ap);
    va_end(ap);
    st->code = code;
}

void pt_admin_status_add_violation(struct pt_admin_status *st, const char *field, const char *fmt,
                                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    st->violations = pt_xrealloc(st->violations, (st->nviolations + 1) * sizeof(*st->violations));
    st->violations[st->nviolations].field = pt_xstrdup(field ? field : "");
    st->violations[st->nviolations].description = vformat(fmt, ap);
    st->nviolations++;
    va_end(ap);
}

void pt_admin_status_fini(struct pt_admin_status *st)
{
    for (size_t i = 0; i < st->nviolations; i++) {
        free(st->violations[i].field);
        free(st->violations[i].description);
    }
    free(st->violations);
    free(st->message);
    memset(st, 0, sizeof(*st));
}
