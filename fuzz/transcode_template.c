/*
 * Fuzz the google.api.http rule code: template parser, table compiler,
 * matcher with path and query binding, and (flag bit 7) the MethodOptions
 * extraction.
 *
 * Input: byte 0 is flags, the rest is "<template>\n<request-target>".
 * flags bits 0-1: the request method (GET, POST, PATCH, BREW); bit 2: the
 * rule has body "*"; bit 3: body "b"; bit 7: instead, the rest is
 * serialized MethodOptions, loaded and compiled.
 *
 * A rejected template must say why, with a column inside it. An accepted
 * one must be well formed (segments, variables, "**" last), must compile,
 * and a path built from it must match it with one binding per variable.
 * Whatever the request-target, matching must not crash, and what it binds
 * must be valid UTF-8 within the limits. Nothing may leak.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/diag.h"
#include "portico/errors.h"
#include "transcode/httprule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool utf8_ok(struct pt_str s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0;
    while (i < s.len) {
        unsigned char c = p[i];
        size_t need = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : 3;
        if (c >= 0x80 && (c < 0xc2 || c > 0xf4))
            return false;
        if (s.len - i - 1 < need)
            return false;
        for (size_t k = 1; k <= need; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        i += need + 1;
    }
    return true;
}

static void check_match(const struct pt_httprule_table *t, struct pt_str method,
                        struct pt_str target)
{
    const char *q = memchr(target.ptr, '?', target.len);
    struct pt_httprule_request req = {
        .method = method,
        .path = {target.ptr, q ? (size_t)(q - target.ptr) : target.len},
        .query =
            q ? (struct pt_str){q + 1, target.len - (size_t)(q - target.ptr) - 1} : PT_STR_NULL,
    };
    struct pt_arena a;
    pt_arena_init(&a, NULL, 1 << 20);
    struct pt_httprule_match m;
    int rc = pt_httprule_table_match(t, &req, &a, &m);
    if (rc == 0) {
        for (size_t i = 0; i < m.nparams; i++) {
            check(m.params[i].field.nseg > 0);
            check(m.params[i].value.len <= PT_HTTPRULE_DEFAULT_MAX_VALUE_LEN);
            check(utf8_ok(m.params[i].value));
        }
    } else if (rc == PT_ERR_METHOD_NOT_ALLOWED) {
        check(m.nallow > 0);
    } else {
        check(rc == PT_ERR_NO_ROUTE || rc == PT_ERR_INVALID || rc == PT_ERR_LIMIT);
        check(m.reason != NULL);
    }
    pt_arena_fini(&a);
}

static void check_template(const struct pt_httprule_template *t)
{
    check(t->nsegs <= PT_HTTPRULE_MAX_TEMPLATE_SEGMENTS && t->nvars <= PT_HTTPRULE_MAX_VARS);
    for (uint32_t i = 0; i < t->nsegs; i++) {
        const struct pt_httprule_seg *s = &t->segs[i];
        check(s->kind != PT_HTTPRULE_SEG_REST || i + 1 == t->nsegs);
        if (s->kind == PT_HTTPRULE_SEG_LITERAL)
            check(s->literal.len > 0 && !memchr(s->literal.ptr, '/', s->literal.len) &&
                  !memchr(s->literal.ptr, ':', s->literal.len));
    }
    check(t->has_rest == (t->nsegs && t->segs[t->nsegs - 1].kind == PT_HTTPRULE_SEG_REST));
    uint32_t prev_end = 0;
    for (uint32_t i = 0; i < t->nvars; i++) {
        const struct pt_httprule_var *v = &t->vars[i];
        check(v->first >= prev_end && v->first < v->end && v->end <= t->nsegs);
        check(v->field.nseg >= 1 && v->field.nseg <= PT_HTTPRULE_MAX_FIELD_DEPTH);
        prev_end = v->end;
    }
}

/* A path that must match t: literals as they are, "v" for "*", two
 * segments for "**", then the verb. */
static void check_own_path(const struct pt_httprule_table *table,
                           const struct pt_httprule_template *t)
{
    size_t cap = 8;
    for (uint32_t i = 0; i < t->nsegs; i++)
        cap += t->segs[i].literal.len + 8;
    cap += t->verb.len;
    char *path = malloc(cap);
    if (!path)
        abort();
    size_t n = 0;
    for (uint32_t i = 0; i < t->nsegs; i++) {
        path[n++] = '/';
        const struct pt_httprule_seg *s = &t->segs[i];
        if (s->kind == PT_HTTPRULE_SEG_LITERAL) {
            memcpy(path + n, s->literal.ptr, s->literal.len);
            n += s->literal.len;
        } else if (s->kind == PT_HTTPRULE_SEG_SINGLE) {
            path[n++] = 'v';
        } else {
            memcpy(path + n, "r1/r2", 5);
            n += 5;
        }
    }
    if (n == 0)
        path[n++] = '/';
    if (t->verb.len) {
        path[n++] = ':';
        memcpy(path + n, t->verb.ptr, t->verb.len);
        n += t->verb.len;
    }
    struct pt_httprule_request req = {PT_STR("GET"), {path, n}, PT_STR_NULL};
    struct pt_arena a;
    pt_arena_init(&a, NULL, 0);
    struct pt_httprule_match m;
    int rc = pt_httprule_table_match(table, &req, &a, &m);
    /* a path of more than the default segment limit is refused */
    if (rc == PT_ERR_LIMIT) {
        check(t->nsegs + 1 > PT_HTTPRULE_DEFAULT_MAX_PATH_SEGMENTS);
    } else {
        check(rc == 0 && m.method == 0 && m.binding == 0);
        check(m.nparams == t->nvars);
        for (uint32_t i = 0; i < t->nvars; i++) {
            const struct pt_httprule_var *v = &t->vars[i];
            if (v->single && t->segs[v->first].kind == PT_HTTPRULE_SEG_SINGLE)
                check(pt_str_eq(m.params[i].value, PT_STR("v")));
        }
    }
    pt_arena_fini(&a);
    free(path);
}

static void fuzz_options(const uint8_t *data, size_t size)
{
    struct pt_httprule_proto p;
    const char *err = NULL;
    int rc = pt_httprule_proto_load(&p, data, size, &err);
    if (rc != 0) {
        check(rc == PT_ERR_NOT_FOUND || (rc == PT_ERR_INVALID && err));
        return;
    }
    const struct pt_httprule_method m = {PT_STR("f.S/Opt"), &p.spec};
    struct pt_diag d;
    pt_diag_init(&d);
    struct pt_httprule_table *t = pt_httprule_table_compile(&m, 1, NULL, NULL, &d);
    check(t != NULL || d.errors > 0);
    if (t)
        check_match(t, p.spec.method, PT_STR("/x/y?z=1"));
    pt_httprule_table_free(t);
    pt_diag_fini(&d);
    pt_httprule_proto_fini(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t flags = data[0];
    data++;
    size--;
    if (flags & 0x80) {
        fuzz_options(data, size);
        return 0;
    }
    const char *s = (const char *)data;
    const char *nl = memchr(s, '\n', size);
    struct pt_str tmpl = {s, nl ? (size_t)(nl - s) : size};
    struct pt_str target = nl ? (struct pt_str){nl + 1, size - tmpl.len - 1} : PT_STR("/");

    struct pt_httprule_template t;
    struct pt_httprule_error err;
    if (pt_httprule_template_parse(tmpl, &t, &err) != 0) {
        check(err.message != NULL && err.column <= tmpl.len + 1);
        return 0;
    }
    check_template(&t);

    static const struct pt_str methods[] = {PT_STR("GET"), PT_STR("POST"), PT_STR("PATCH"),
                                            PT_STR("BREW")};
    struct pt_httprule_spec spec = {
        .method = PT_STR("GET"),
        .path = tmpl,
        .body = (flags & 4)   ? PT_STR("*")
                : (flags & 8) ? PT_STR("b")
                              : PT_STR(""),
    };
    const struct pt_httprule_method ms[] = {
        {PT_STR("f.S/Tmpl"), &spec},
        {PT_STR("f.S/Fallback"), NULL},
    };
    struct pt_diag d;
    pt_diag_init(&d);
    struct pt_httprule_table *table = pt_httprule_table_compile(ms, 2, NULL, NULL, &d);
    /* "POST /f.S/Fallback" cannot conflict with a GET template */
    check(table != NULL);
    check_own_path(table, &t);
    check_match(table, methods[flags & 3], target);
    pt_httprule_table_free(table);
    pt_diag_fini(&d);
    pt_httprule_template_fini(&t);
    return 0;
}
