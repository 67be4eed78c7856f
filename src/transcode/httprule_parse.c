/*
 * The path template grammar of google.api.http (see httprule.h): a
 * recursive-descent parser that reports the column of the first error.
 */
#include <stdlib.h>
#include <string.h>

#include "transcode/httprule_int.h"

#include "core/arena.h"
#include "portico/errors.h"

struct parser {
    const char *s;
    size_t n;
    size_t i;
    struct pt_httprule_seg *segs;
    uint32_t *cols; /* column of each segment, for errors found later */
    uint32_t nsegs;
    uint32_t segs_cap;
    struct pt_httprule_var *vars;
    uint32_t nvars;
    struct pt_str *fsegs;
    size_t nfsegs;
    char *buf;
    size_t blen;
    char *scratch; /* src.len bytes for decoding one literal */
    struct pt_httprule_error *err;
};

static int fail(struct parser *p, size_t at, const char *msg)
{
    p->err->column = (uint32_t)at + 1;
    p->err->message = msg;
    return PT_ERR_INVALID;
}

static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* pchar minus ':' (the verb) and '*' (wildcards); '%' is checked apart. */
static bool is_literal_char(char c)
{
    if (pt_httprule_unreserved((unsigned char)c))
        return true;
    switch (c) {
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '+':
    case ',':
    case ';':
    case '=':
    case '@':
        return true;
    default:
        return false;
    }
}

static bool is_stop_char(char c)
{
    return c == '/' || c == ':' || c == '{' || c == '}' || c == '*';
}

/* A run of literal characters at p->i, canonicalized into p->buf. */
static int parse_literal(struct parser *p, bool verb, struct pt_str *out)
{
    size_t start = p->i;
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == '%') {
            if (!pt_httprule_escapes_valid(
                    (struct pt_str){p->s + p->i, p->n - p->i < 3 ? p->n - p->i : 3}))
                return fail(p, p->i, "invalid percent-encoding");
            p->i += 3;
        } else if (is_literal_char(c)) {
            p->i++;
        } else if (is_stop_char(c) && !verb) {
            break;
        } else {
            return fail(p, p->i,
                        verb ? "invalid character in the verb"
                             : "invalid character in a literal segment");
        }
    }
    if (p->i == start)
        return fail(p, p->i, verb ? "empty verb" : "empty segment");
    /* Escapes only shrink or keep their size, and no raw byte here needs
     * escaping, so the canonical form fits in the source's length. */
    struct pt_str raw = {p->s + start, p->i - start};
    size_t len = pt_httprule_canon(raw, p->buf + p->blen);
    *out = (struct pt_str){p->buf + p->blen, len};
    p->blen += len;
    /* Decoded, a literal is text: inside a variable it becomes part of a
     * value, and a value must be UTF-8. The scratch space is past buf. */
    size_t dlen;
    if (pt_httprule_decode(raw, PT_HTTPRULE_DECODE_ALL, p->scratch, &dlen) != 0 ||
        !pt_httprule_utf8_valid(p->scratch, dlen))
        return fail(p, start, "a literal must decode to valid UTF-8");
    if (!verb && ((len == 1 && out->ptr[0] == '.') ||
                  (len == 2 && out->ptr[0] == '.' && out->ptr[1] == '.')))
        return fail(p, start, "a literal may not be a dot segment");
    return 0;
}

static int add_seg(struct parser *p, size_t col, enum pt_httprule_seg_kind kind, struct pt_str lit)
{
    if (p->nsegs == p->segs_cap || p->nsegs == PT_HTTPRULE_MAX_TEMPLATE_SEGMENTS)
        return fail(p, col, "too many segments");
    p->cols[p->nsegs] = (uint32_t)col;
    p->segs[p->nsegs++] = (struct pt_httprule_seg){kind, lit};
    return 0;
}

static int parse_segments(struct parser *p, bool in_var);

static int parse_variable(struct parser *p)
{
    size_t open = p->i++;
    if (p->nvars == PT_HTTPRULE_MAX_VARS)
        return fail(p, open, "too many variables");
    size_t start = p->i;
    uint32_t depth = 0;
    for (;;) {
        if (p->i >= p->n || !is_ident_start(p->s[p->i]))
            return fail(p, p->i, "expected a field name");
        while (p->i < p->n && is_ident(p->s[p->i]))
            p->i++;
        if (++depth > PT_HTTPRULE_MAX_FIELD_DEPTH)
            return fail(p, start, "field path too deep");
        if (p->i < p->n && p->s[p->i] == '.') {
            p->i++;
            continue;
        }
        break;
    }
    struct pt_httprule_var *v = &p->vars[p->nvars];
    size_t tlen = p->i - start;
    memcpy(p->buf + p->blen, p->s + start, tlen);
    v->text = (struct pt_str){p->buf + p->blen, tlen};
    p->blen += tlen;
    v->field.seg = p->fsegs + p->nfsegs;
    v->field.nseg = depth;
    pt_httprule_field_split(v->text, p->fsegs + p->nfsegs);
    p->nfsegs += depth;
    for (uint32_t k = 0; k < p->nvars; k++) {
        if (pt_str_eq(p->vars[k].text, v->text))
            return fail(p, start, "field bound twice");
        if (pt_httprule_field_overlap(p->vars[k].field, v->field))
            return fail(p, start, "field overlaps the field of another variable");
    }

    v->first = p->nsegs;
    int rc;
    if (p->i < p->n && p->s[p->i] == '=') {
        p->i++;
        if ((rc = parse_segments(p, true)) != 0)
            return rc;
    } else if ((rc = add_seg(p, open, PT_HTTPRULE_SEG_SINGLE, PT_STR_NULL)) != 0) {
        return rc;
    }
    if (p->i >= p->n || p->s[p->i] != '}')
        return fail(p, p->i, "expected '}'");
    p->i++;
    v->end = p->nsegs;
    v->single = v->end - v->first == 1 && p->segs[v->first].kind != PT_HTTPRULE_SEG_REST;
    p->nvars++;
    return 0;
}

static int parse_segment(struct parser *p, bool in_var)
{
    if (p->i >= p->n)
        return fail(p, p->i, "empty segment");
    size_t at = p->i;
    char c = p->s[p->i];
    switch (c) {
    case '/':
    case ':':
        return fail(p, at, "empty segment");
    case '}':
        return fail(p, at, in_var ? "empty segment" : "unexpected '}'");
    case '{':
        if (in_var)
            return fail(p, at, "variables may not nest");
        return parse_variable(p);
    case '*': {
        bool rest = p->i + 1 < p->n && p->s[p->i + 1] == '*';
        p->i += rest ? 2 : 1;
        if (p->i < p->n) {
            char d = p->s[p->i];
            if (d != '/' && !(in_var ? d == '}' : d == ':'))
                return fail(p, at, "'*' and '**' must be whole segments");
        }
        return add_seg(p, at, rest ? PT_HTTPRULE_SEG_REST : PT_HTTPRULE_SEG_SINGLE, PT_STR_NULL);
    }
    default: {
        struct pt_str lit;
        int rc = parse_literal(p, false, &lit);
        if (rc != 0)
            return rc;
        return add_seg(p, at, PT_HTTPRULE_SEG_LITERAL, lit);
    }
    }
}

static int parse_segments(struct parser *p, bool in_var)
{
    for (;;) {
        int rc = parse_segment(p, in_var);
        if (rc != 0)
            return rc;
        if (p->i < p->n && p->s[p->i] == '/') {
            p->i++;
            continue;
        }
        if (p->i < p->n && (p->s[p->i] == '*' || p->s[p->i] == '{'))
            return fail(p, p->i, "'*', '**' and variables must be whole segments");
        return 0;
    }
}

static int parse(struct parser *p, struct pt_httprule_template *t)
{
    if (p->n == 0 || p->s[0] != '/')
        return fail(p, 0, "a template must start with '/'");
    p->i = 1;
    int rc;
    if (p->n > 1 && (rc = parse_segments(p, false)) != 0)
        return rc;
    if (p->i < p->n && p->s[p->i] == ':') {
        p->i++;
        if ((rc = parse_literal(p, true, &t->verb)) != 0)
            return rc;
    }
    if (p->i < p->n)
        return fail(p, p->i, p->s[p->i] == '}' ? "unexpected '}'" : "expected '/', ':' or the end");
    for (uint32_t k = 0; k < p->nsegs; k++) {
        if (p->segs[k].kind == PT_HTTPRULE_SEG_REST && k + 1 != p->nsegs)
            return fail(p, p->cols[k], "'**' must be the last segment");
    }
    t->has_rest = p->nsegs > 0 && p->segs[p->nsegs - 1].kind == PT_HTTPRULE_SEG_REST;
    return 0;
}

int pt_httprule_template_parse(struct pt_str src, struct pt_httprule_template *t,
                               struct pt_httprule_error *err)
{
    struct pt_httprule_error local;
    if (!err)
        err = &local;
    memset(t, 0, sizeof(*t));
    err->column = 0;
    err->message = NULL;
    if (src.len > PT_HTTPRULE_MAX_TEMPLATE_LEN) {
        err->message = "template too long";
        return PT_ERR_INVALID;
    }
    size_t segs_cap =
        (src.len < PT_HTTPRULE_MAX_TEMPLATE_SEGMENTS ? src.len : PT_HTTPRULE_MAX_TEMPLATE_SEGMENTS);
    size_t fsegs_cap = src.len / 2 + 1;
    size_t sz_segs = segs_cap * sizeof(struct pt_httprule_seg);
    size_t sz_vars = PT_HTTPRULE_MAX_VARS * sizeof(struct pt_httprule_var);
    size_t sz_fsegs = fsegs_cap * sizeof(struct pt_str);
    size_t sz_cols = segs_cap * sizeof(uint32_t);
    char *mem = pt_xmalloc(sz_segs + sz_vars + sz_fsegs + sz_cols + 2 * src.len + 1);
    struct parser p = {
        .s = src.ptr,
        .n = src.len,
        .segs = (struct pt_httprule_seg *)mem,
        .segs_cap = (uint32_t)segs_cap,
        .vars = (struct pt_httprule_var *)(mem + sz_segs),
        .fsegs = (struct pt_str *)(mem + sz_segs + sz_vars),
        .cols = (uint32_t *)(mem + sz_segs + sz_vars + sz_fsegs),
        .buf = mem + sz_segs + sz_vars + sz_fsegs + sz_cols,
        .scratch = mem + sz_segs + sz_vars + sz_fsegs + sz_cols + src.len + 1,
        .err = err,
    };
    int rc = parse(&p, t);
    if (rc != 0) {
        free(mem);
        memset(t, 0, sizeof(*t));
        return rc;
    }
    t->segs = p.segs;
    t->nsegs = p.nsegs;
    t->vars = p.vars;
    t->nvars = p.nvars;
    t->mem = mem;
    return 0;
}

void pt_httprule_template_fini(struct pt_httprule_template *t)
{
    free(t->mem);
    memset(t, 0, sizeof(*t));
}

int pt_httprule_field_path_check(struct pt_str path, uint32_t *nseg, struct pt_httprule_error *err)
{
    struct pt_httprule_error local;
    if (!err)
        err = &local;
    uint32_t depth = 0;
    size_t i = 0;
    for (;;) {
        if (i >= path.len || !is_ident_start(path.ptr[i])) {
            err->column = (uint32_t)i + 1;
            err->message = "expected a field name";
            return PT_ERR_INVALID;
        }
        while (i < path.len && is_ident(path.ptr[i]))
            i++;
        if (++depth > PT_HTTPRULE_MAX_FIELD_DEPTH) {
            err->column = 1;
            err->message = "field path too deep";
            return PT_ERR_INVALID;
        }
        if (i < path.len && path.ptr[i] == '.') {
            i++;
            continue;
        }
        break;
    }
    if (i != path.len) {
        err->column = (uint32_t)i + 1;
        err->message = "invalid character in a field path";
        return PT_ERR_INVALID;
    }
    *nseg = depth;
    return 0;
}
