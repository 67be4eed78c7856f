#include "route/template.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "http/path.h"
#include "portico/errors.h"
#include "route/route_int.h"

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9') || c == '.';
}

static bool valid_name(struct pt_str n)
{
    if (n.len == 0 || !is_name_start(n.ptr[0]))
        return false;
    for (size_t i = 1; i < n.len; i++)
        if (!is_name_char(n.ptr[i]))
            return false;
    return true;
}

static bool has_any(struct pt_str s, const char *set)
{
    for (size_t i = 0; i < s.len; i++)
        if (strchr(set, s.ptr[i]) && s.ptr[i] != '\0')
            return true;
    return false;
}

/* Everything the parser accumulates; on failure the caller frees it. */
struct parse {
    struct pt_route_tmpl *t;
    size_t used; /* bytes of t->buf in use */
    size_t cap;
};

static const char *add_param(struct parse *p, struct pt_str name, bool rest)
{
    struct pt_route_tmpl *t = p->t;
    if (!valid_name(name))
        return "invalid parameter name (want [A-Za-z_][A-Za-z0-9_.]*)";
    for (uint16_t i = 0; i < t->nparams; i++)
        if (pt_str_eq(t->params[i].name, name))
            return "duplicate parameter name";
    if (t->nparams >= PT_ROUTE_MAX_PARAMS)
        return "too many parameters (at most 16)";
    char *copy = t->buf + p->used;
    memcpy(copy, name.ptr, name.len);
    p->used += name.len;
    t->params[t->nparams++] = (struct pt_route_tmpl_param){
        {copy, name.len}, rest ? PT_ROUTE_PARAM_REST : (uint8_t)t->nsingle};
    return NULL;
}

/* raw is a segment of the template; the byte before it is its '/'. */
static const char *add_literal(struct parse *p, struct pt_str raw, struct pt_route_seg *seg)
{
    if (has_any(raw, "{}*"))
        return "'{', '}' and '*' must form a whole segment";
    if (has_any(raw, "?"))
        return "'?' is not allowed in a path template";
    char *out = p->t->buf + p->used;
    size_t len;
    struct pt_str with_slash = {raw.ptr - 1, raw.len + 1};
    if (pt_path_normalize(with_slash, out, p->cap - p->used, &len, NULL) != 0)
        return "invalid literal segment (bad '%' escape or a control character)";
    if (len == 1 && raw.len > 0)
        return "dot segments ('.' and '..') are not allowed";
    seg->kind = PT_ROUTE_SEG_LITERAL;
    seg->lit = (struct pt_str){out + 1, len - 1};
    p->used += len + 1;
    return NULL;
}

static const char *parse_segment(struct parse *p, struct pt_str raw, bool last, bool as_prefix)
{
    struct pt_route_tmpl *t = p->t;
    struct pt_route_seg *seg = &t->segs[t->nsegs];
    bool rest = false;
    bool single = false;

    if (pt_str_eq(raw, PT_STR("**"))) {
        rest = true;
    } else if (pt_str_eq(raw, PT_STR("*"))) {
        single = true;
    } else if (raw.len && raw.ptr[0] == '{') {
        if (raw.ptr[raw.len - 1] != '}')
            return "'{' without a closing '}' at the end of the segment";
        struct pt_str inner = {raw.ptr + 1, raw.len - 2};
        const char *eq = memchr(inner.ptr, '=', inner.len);
        struct pt_str name = inner;
        if (eq) {
            name.len = (size_t)(eq - inner.ptr);
            struct pt_str pat = {eq + 1, inner.len - name.len - 1};
            if (pt_str_eq(pat, PT_STR("**")))
                rest = true;
            else if (!pt_str_eq(pat, PT_STR("*")))
                return "a parameter's pattern must be '*' or '**'";
        }
        const char *err = add_param(p, name, rest);
        if (err)
            return err;
        single = !rest;
    } else {
        if (raw.len == 0 && !last)
            return "empty segment ('//') in template";
        const char *err = add_literal(p, raw, seg);
        if (err)
            return err;
        if (t->nliteral == t->nsegs)
            t->strip_len += 1 + seg->lit.len;
        t->nliteral++;
        t->nsegs++;
        return NULL;
    }

    if (rest) {
        if (as_prefix)
            return "path_prefix must not contain '**' (it already matches the rest)";
        if (!last)
            return "'**' must be the last segment";
        seg->kind = PT_ROUTE_SEG_REST;
        t->has_rest = true;
    } else if (single) {
        seg->kind = PT_ROUTE_SEG_SINGLE;
        t->nsingle++;
    }
    t->nsegs++;
    return NULL;
}

int pt_route_tmpl_parse(struct pt_str src, bool as_prefix, struct pt_route_tmpl *t,
                        const char **err)
{
    memset(t, 0, sizeof(*t));
    if (src.len == 0 || src.ptr[0] != '/') {
        *err = "must start with '/'";
        return PT_ERR_CONFIG;
    }
    if (memchr(src.ptr, '\0', src.len)) {
        *err = "contains a NUL byte";
        return PT_ERR_CONFIG;
    }
    /* "/api/" as a prefix is "/api"; "/" as a prefix has no segments. */
    if (as_prefix && src.ptr[src.len - 1] == '/')
        src.len--;

    size_t nsegs = 0;
    for (size_t i = 0; i < src.len; i++)
        nsegs += src.ptr[i] == '/';
    if (nsegs > PT_ROUTE_MAX_SEGMENTS - (as_prefix ? 1 : 0)) {
        *err = "too many segments (at most 128)";
        return PT_ERR_CONFIG;
    }

    struct parse p = {t, 0, 5 * src.len + 16};
    t->buf = pt_xmalloc(p.cap);
    t->segs = pt_xcalloc(nsegs + 1, sizeof(*t->segs));

    size_t i = 1;
    while (nsegs > 0 && i <= src.len) {
        size_t j = i;
        while (j < src.len && src.ptr[j] != '/')
            j++;
        const char *e =
            parse_segment(&p, (struct pt_str){src.ptr + i, j - i}, j == src.len, as_prefix);
        if (e) {
            *err = e;
            pt_route_tmpl_fini(t);
            return PT_ERR_CONFIG;
        }
        i = j + 1;
    }
    if (as_prefix) {
        t->segs[t->nsegs++].kind = PT_ROUTE_SEG_REST;
        t->has_rest = true;
    }
    return 0;
}

void pt_route_tmpl_fini(struct pt_route_tmpl *t)
{
    free(t->buf);
    free(t->segs);
    memset(t, 0, sizeof(*t));
}

int pt_route_template_check(struct pt_str tmpl, const char **err)
{
    struct pt_route_tmpl t;
    int rc = pt_route_tmpl_parse(tmpl, false, &t, err);
    if (rc == 0)
        pt_route_tmpl_fini(&t);
    return rc;
}
