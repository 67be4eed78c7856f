/*
 * The JSON codec's per-call context: output growth under a limit, the JSON
 * path of the value being worked on, and the first error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/arena.h"
#include "portico/errors.h"
#include "transcode/json_int.h"

void jctx_init(struct jctx *c, const struct pt_json_hooks *hooks,
               const struct pt_json_options *opts, struct pt_json_out *out,
               struct pt_json_error *err)
{
    static const struct pt_json_hooks no_hooks;
    memset(c, 0, offsetof(struct jctx, path));
    c->out = out;
    c->out_start = out->len;
    c->hooks = hooks ? hooks : &no_hooks;
    if (opts)
        c->opt = *opts;
    if (c->opt.max_depth == 0)
        c->opt.max_depth = PT_JSON_DEFAULT_MAX_DEPTH;
    if (c->opt.max_depth > PT_JSON_MAX_DEPTH_CAP)
        c->opt.max_depth = PT_JSON_MAX_DEPTH_CAP;
    if (c->opt.max_output == 0)
        c->opt.max_output = PT_JSON_DEFAULT_MAX_OUTPUT;
    c->out_max = out->len + c->opt.max_output;
    if (c->out_max < out->len) /* wrapped */
        c->out_max = SIZE_MAX;
    c->err = err;
    if (err) {
        err->offset = 0;
        err->message[0] = '\0';
    }
    /* Each nesting level pushes at most two segments (a field and an index
     * or key), plus a few for the well-known types' own levels. */
    c->path.n = 0;
    c->path.cap = 2 * (size_t)c->opt.max_depth + 8;
    if (c->path.cap <= JPATH_INLINE) {
        c->path.seg = c->path.inline_seg;
        c->path.cap = JPATH_INLINE;
    } else {
        c->path.seg = pt_xmalloc(c->path.cap * sizeof(struct jseg));
    }
    pt_arena_init(&c->arena, NULL, 0);
}

int jctx_finish(struct jctx *c)
{
    if (c->status != 0)
        c->out->len = c->out_start;
    if (c->path.seg != c->path.inline_seg)
        free(c->path.seg);
    pt_arena_fini(&c->arena);
    return c->status;
}

struct sbuf {
    char *p;
    size_t n, cap; /* n counts every byte offered; at most cap - 1 are kept */
};

static void sput(struct sbuf *b, char ch)
{
    if (b->n + 1 < b->cap)
        b->p[b->n] = ch;
    b->n++;
}

static void sputs(struct sbuf *b, const char *s)
{
    while (*s)
        sput(b, *s++);
}

/* Writes the path to buf as field.names[3]["key"], ending in ": ". */
static size_t format_path(const struct jctx *c, char *buf, size_t cap)
{
    struct sbuf b = {buf, 0, cap};
    size_t segs = c->path.n < c->path.cap ? c->path.n : c->path.cap;
    for (size_t i = 0; i < segs; i++) {
        const struct jseg *s = &c->path.seg[i];
        if (s->kind == JSEG_INDEX) {
            char num[24];
            snprintf(num, sizeof(num), "[%zu]", s->index);
            sputs(&b, num);
            continue;
        }
        if (s->kind == JSEG_FIELD && i > 0)
            sput(&b, '.');
        if (s->kind == JSEG_KEY)
            sputs(&b, "[\"");
        /* Names come from the input: keep them short and printable. */
        size_t len = s->len > 40 ? 40 : s->len;
        for (size_t j = 0; j < len; j++) {
            unsigned char ch = (unsigned char)s->name[j];
            sput(&b, ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '?');
        }
        if (s->len > len)
            sputs(&b, "...");
        if (s->kind == JSEG_KEY)
            sputs(&b, "\"]");
    }
    if (segs == 0)
        sputs(&b, "(root)");
    sputs(&b, ": ");
    return b.n < cap ? b.n : cap - 1;
}

int jctx_fail(struct jctx *c, int status, size_t offset, const char *fmt, ...)
{
    if (c->status != 0)
        return -1;
    c->status = status;
    if (!c->err)
        return -1;
    c->err->offset = offset;
    /* Deep paths keep their last part, which names the value. */
    char path[1024];
    size_t n = format_path(c, path, sizeof(path));
    size_t keep = 120;
    if (n > keep) {
        memcpy(c->err->message, "...", 3);
        memcpy(c->err->message + 3, path + n - keep, keep);
        n = keep + 3;
    } else {
        memcpy(c->err->message, path, n);
    }
    c->err->message[n] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->message + n, sizeof(c->err->message) - n, fmt, ap);
    va_end(ap);
    return -1;
}

int jctx_enter(struct jctx *c, size_t offset)
{
    if (c->depth >= c->opt.max_depth)
        return jctx_fail(c, PT_ERR_LIMIT, offset, "nesting deeper than %u levels",
                         c->opt.max_depth);
    c->depth++;
    return 0;
}

int jout_grow(struct jctx *c, size_t n)
{
    struct pt_json_out *o = c->out;
    if (n > c->out_max - o->len || o->len + n > c->out_max)
        return jctx_fail(c, PT_ERR_LIMIT, 0, "output larger than %zu bytes", c->opt.max_output);
    if (o->cap - o->len >= n)
        return 0;
    size_t cap = o->cap ? o->cap : 256;
    while (cap - o->len < n)
        cap *= 2;
    o->data = pt_xrealloc(o->data, cap);
    o->cap = cap;
    return 0;
}

int wlen_end(struct jctx *c, size_t pos)
{
    struct pt_json_out *o = c->out;
    size_t body = o->len - pos - 1;
    size_t vs = varint_size(body);
    if (vs > 1) {
        TRY(jout_reserve(c, vs - 1));
        memmove(o->data + pos + vs, o->data + pos + 1, body);
        o->len += vs - 1;
    }
    varint_write((uint8_t *)o->data + pos, body);
    return 0;
}

void pt_json_out_fini(struct pt_json_out *out)
{
    free(out->data);
    out->data = NULL;
    out->len = out->cap = 0;
}
