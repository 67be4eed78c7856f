/*
 * Source positions of loaded messages and fields, so that errors found
 * after loading (validation, snapshot compilation, a filter's create())
 * still point at a line of the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_int.h"
#include "core/arena.h"

struct pt_conf_pos {
    const void *msg;
    const void *field;
    int64_t index;
    uint32_t line, col;
};

/* Appends are sequential writes; the one sort at pt_conf_postab_seal()
 * is cheaper than a hash table's random accesses when an alias-heavy
 * document records millions of positions. */
void pt_conf_postab_put(struct pt_conf_postab *t, const void *msg, const void *field, int64_t index,
                        uint32_t line, uint32_t col)
{
    if (!msg)
        return;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->slots = pt_xrealloc(t->slots, t->cap * sizeof(*t->slots));
    }
    t->slots[t->n++] = (struct pt_conf_pos){msg, field, index, line, col};
}

static int key_cmp(const struct pt_conf_pos *a, const void *msg, const void *field, int64_t index)
{
    if (a->msg != msg)
        return (uintptr_t)a->msg < (uintptr_t)msg ? -1 : 1;
    if (a->field != field)
        return (uintptr_t)a->field < (uintptr_t)field ? -1 : 1;
    if (a->index != index)
        return a->index < index ? -1 : 1;
    return 0;
}

static int pos_cmp(const void *x, const void *y)
{
    const struct pt_conf_pos *a = x, *b = y;
    int c = key_cmp(a, b->msg, b->field, b->index);
    if (c)
        return c;
    /* Equal keys keep insertion order, so the first record wins. */
    return a < b ? -1 : a > b;
}

void pt_conf_postab_seal(struct pt_conf_postab *t)
{
    if (t->n < 2)
        return;
    qsort(t->slots, t->n, sizeof(*t->slots), pos_cmp);
    size_t out = 1;
    for (size_t i = 1; i < t->n; i++)
        if (key_cmp(&t->slots[out - 1], t->slots[i].msg, t->slots[i].field, t->slots[i].index))
            t->slots[out++] = t->slots[i];
    t->n = out;
}

void pt_conf_postab_fini(struct pt_conf_postab *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

bool pt_conf_postab_get(const struct pt_conf_postab *t, const void *msg, const void *field,
                        int64_t index, uint32_t *line, uint32_t *col)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(&t->slots[mid], msg, field, index);
        if (c == 0) {
            *line = t->slots[mid].line;
            *col = t->slots[mid].col;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* proto3 JSON name: "path_prefix" -> "pathPrefix". */
static bool camel_eq(const char *field, const char *name, size_t len)
{
    size_t j = 0;
    bool upper = false;
    for (const char *p = field; *p; p++) {
        if (*p == '_') {
            upper = true;
            continue;
        }
        char c = upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p;
        upper = false;
        if (j == len || name[j] != c)
            return false;
        j++;
    }
    return j == len;
}

const ProtobufCFieldDescriptor *pt_conf_field_find(const ProtobufCMessageDescriptor *d,
                                                   const char *name, size_t len)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const char *f = d->fields[i].name;
        if (strlen(f) == len && memcmp(f, name, len) == 0)
            return &d->fields[i];
    }
    for (unsigned i = 0; i < d->n_fields; i++)
        if (camel_eq(d->fields[i].name, name, len))
            return &d->fields[i];
    return NULL;
}

/* "name" or "name[index]". */
static bool split_field(const char *field, size_t *name_len, int64_t *index)
{
    const char *br = strchr(field, '[');
    *index = -1;
    if (!br) {
        *name_len = strlen(field);
        return true;
    }
    *name_len = (size_t)(br - field);
    const char *close = strchr(br, ']');
    if (!close || close[1] != '\0')
        return false;
    uint64_t v;
    if (pt_conf_parse_uint(br + 1, (size_t)(close - br - 1), INT64_MAX, &v) != PT_CONF_NUM_OK)
        return false;
    *index = (int64_t)v;
    return true;
}

const char *pt_conf_where(const struct pt_conf *c, const void *msg, const char *field, char *buf,
                          size_t n)
{
    /* Whatever is returned is also in buf, so callers may keep either. */
    if (!c) {
        if (buf && n)
            buf[0] = '\0';
        return buf && n ? buf : "";
    }
    if (!msg)
        msg = c->msg;
    uint32_t line, col;
    /* Only a message we recorded is dereferenced for its descriptor. */
    if (!pt_conf_postab_get(&c->pos, msg, NULL, -1, &line, &col)) {
        if (!buf || n == 0)
            return c->name;
        snprintf(buf, n, "%s", c->name);
        return buf;
    }
    size_t name_len;
    int64_t index;
    if (field && split_field(field, &name_len, &index)) {
        const ProtobufCMessage *m = msg;
        const ProtobufCFieldDescriptor *fd = pt_conf_field_find(m->descriptor, field, name_len);
        if (fd && !(index >= 0 && pt_conf_postab_get(&c->pos, msg, fd, index, &line, &col)))
            pt_conf_postab_get(&c->pos, msg, fd, -1, &line, &col);
    }
    if (!buf || n == 0)
        return c->name;
    snprintf(buf, n, "%s:%u:%u", c->name, line, col);
    return buf;
}
