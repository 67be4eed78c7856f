#include "core/diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

void pt_diag_init(struct pt_diag *d)
{
    memset(d, 0, sizeof(*d));
}

void pt_diag_fini(struct pt_diag *d)
{
    for (size_t i = 0; i < d->nentries; i++) {
        free(d->entries[i].field);
        free(d->entries[i].message);
    }
    free(d->entries);
    free(d->text);
    memset(d, 0, sizeof(*d));
}

static void append(struct pt_diag *d, const char *s, size_t n)
{
    if (d->len + n + 1 > d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 256;
        while (cap < d->len + n + 1)
            cap *= 2;
        d->text = pt_xrealloc(d->text, cap);
        d->cap = cap;
    }
    memcpy(d->text + d->len, s, n);
    d->len += n;
    d->text[d->len] = '\0';
}

void pt_diag_vaddf(struct pt_diag *d, const char *where, const char *field, const char *fmt,
                   va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (where && *where) {
        append(d, where, strlen(where));
        append(d, ": ", 2);
    }
    if (field && *field) {
        append(d, field, strlen(field));
        append(d, ": ", 2);
    }
    append(d, msg, strlen(msg));
    append(d, "\n", 1);
    d->errors++;
    d->entries = pt_xrealloc(d->entries, (d->nentries + 1) * sizeof(*d->entries));
    d->entries[d->nentries].field = pt_xstrdup(field ? field : "");
    d->entries[d->nentries].message = pt_xstrdup(msg);
    d->nentries++;
}

void pt_diag_addf(struct pt_diag *d, const char *where, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pt_diag_vaddf(d, where, field, fmt, ap);
    va_end(ap);
}

void pt_diag_errorf(struct pt_diag *d, const char *field, const char *fmt, ...)
{
    char full[512];
    const char *f = field;
    if (d->context_field && *d->context_field) {
        snprintf(full, sizeof(full), "%s%s%s", d->context_field, field && *field ? "." : "",
                 field ? field : "");
        f = full;
    }
    va_list ap;
    va_start(ap, fmt);
    pt_diag_vaddf(d, d->context, f, fmt, ap);
    va_end(ap);
}

const char *pt_diag_set_context_field(struct pt_diag *d, const char *field)
{
    const char *old = d->context_field;
    d->context_field = field;
    return old;
}

const char *pt_diag_set_context(struct pt_diag *d, const char *context)
{
    const char *old = d->context;
    d->context = context;
    return old;
}

const char *pt_diag_text(const struct pt_diag *d)
{
    return d->text ? d->text : "";
}
