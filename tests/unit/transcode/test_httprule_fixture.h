/*
 * Helpers shared by the test_httprule_*.c tests: tables from short rule
 * lists, matching into an arena, and checks of the bindings.
 */
#ifndef TEST_HTTPRULE_FIXTURE_H
#define TEST_HTTPRULE_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/diag.h"
#include "portico/errors.h"
#include "transcode/httprule.h"

struct rule {
    const char *name;
    const char *method; /* NULL: no rule (fallback) */
    const char *path;
    const char *body;
    const char *response_body;
};

static inline struct pt_str S(const char *s) {
    return pt_str_from_cstr(s ? s : "");
}

static inline struct pt_httprule_spec
spec_of(const struct rule *r)
{
    return (struct pt_httprule_spec){
        .method = S(r->method),
        .path = S(r->path),
        .body = S(r->body),
        .response_body = S(r->response_body),
    };
}

/* A table of n rules, each its own method; NULL (and diag filled) on error. */
static inline struct pt_httprule_table *table_of(const struct rule *rules, size_t n,
                                                 const struct pt_httprule_table_opts *opts,
                                                 struct pt_diag *diag)
{
    struct pt_httprule_spec specs[64];
    struct pt_httprule_method methods[64];
    if (n > 64)
        fail_msg("too many rules");
    for (size_t i = 0; i < n; i++) {
        specs[i] = spec_of(&rules[i]);
        methods[i] =
            (struct pt_httprule_method){S(rules[i].name), rules[i].method ? &specs[i] : NULL};
    }
    return pt_httprule_table_compile(methods, n, opts, "test", diag);
}

static inline struct pt_httprule_table *table_ok(const struct rule *rules, size_t n)
{
    struct pt_diag d;
    pt_diag_init(&d);
    struct pt_httprule_table *t = table_of(rules, n, NULL, &d);
    if (!t)
        fail_msg("compile failed:\n%s", pt_diag_text(&d));
    pt_diag_fini(&d);
    return t;
}

/* Compile must fail with an error mentioning want. */
static inline void table_bad(const struct rule *rules, size_t n,
                             const struct pt_httprule_table_opts *opts, const char *want)
{
    struct pt_diag d;
    pt_diag_init(&d);
    struct pt_httprule_table *t = table_of(rules, n, opts, &d);
    if (t)
        fail_msg("compile succeeded; wanted an error with \"%s\"", want);
    if (!strstr(pt_diag_text(&d), want))
        fail_msg("errors:\n%s\ndo not mention \"%s\"", pt_diag_text(&d), want);
    pt_diag_fini(&d);
}

struct fixture {
    struct pt_arena arena;
    struct pt_httprule_match m;
};

static inline int match3(struct fixture *f, const struct pt_httprule_table *t, const char *method,
                         const char *path, const char *query)
{
    pt_arena_fini(&f->arena);
    pt_arena_init(&f->arena, NULL, 1 << 20);
    struct pt_httprule_request req = {S(method), S(path), S(query)};
    return pt_httprule_table_match(t, &req, &f->arena, &f->m);
}

static inline int match(struct fixture *f, const struct pt_httprule_table *t, const char *method,
                        const char *path)
{
    return match3(f, t, method, path, "");
}

static inline void assert_pt_str(struct pt_str s, const char *want)
{
    if (!pt_str_eq(s, S(want)))
        fail_msg("got \"%.*s\" (%zu bytes), want \"%s\"", (int)s.len, s.ptr, s.len, want);
}

/* "a.b" of a field path, in buf. */
static inline const char *field_text(struct pt_httprule_field f, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < f.nseg; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%.*s", i ? "." : "", (int)f.seg[i].len,
                              f.seg[i].ptr);
    return buf;
}

/* The params must be exactly want: "field=value" strings, in order. */
static inline void assert_params(const struct pt_httprule_match *m, const char *const *want,
                                 size_t n)
{
    char got[1024], fb[256];
    size_t g = 0;
    got[0] = '\0';
    for (size_t i = 0; i < m->nparams; i++)
        g += (size_t)snprintf(got + g, sizeof(got) - g, "[%s=%.*s]",
                              field_text(m->params[i].field, fb, sizeof(fb)),
                              (int)m->params[i].value.len, m->params[i].value.ptr);
    char exp[1024];
    size_t e = 0;
    exp[0] = '\0';
    for (size_t i = 0; i < n; i++)
        e += (size_t)snprintf(exp + e, sizeof(exp) - e, "[%s]", want[i]);
    if (strcmp(got, exp) != 0)
        fail_msg("params %s, want %s", got, exp);
}

#define ASSERT_PARAMS(m, ...)                                        \
    do {                                                             \
        const char *const want_[] = {__VA_ARGS__};                   \
        assert_params((m), want_, sizeof(want_) / sizeof(want_[0])); \
    } while (0)
#define ASSERT_NO_PARAMS(m) assert_int_equal((m)->nparams, 0)

#endif
