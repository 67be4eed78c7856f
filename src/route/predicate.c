/*
 * Route predicates other than the path: methods, host, headers and query.
 * Compiled once (names lowered, regexes compiled) and evaluated on workers
 * without allocating.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/strutil.h"
#include "http/headers.h"
#include "portico/errors.h"
#include "route/route_int.h"

/* ---- compile ---- */

struct field {
    char text[96];
};

static const char *fieldf(struct field *f, size_t index, const char *suffix)
{
    snprintf(f->text, sizeof(f->text), "routes[%zu].%s", index, suffix);
    return f->text;
}

static bool is_label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static const char *check_dns_name(struct pt_str h)
{
    if (h.len == 0)
        return "empty host name";
    if (h.len > 253)
        return "host name longer than 253 bytes";
    size_t label = 0;
    for (size_t i = 0; i < h.len; i++) {
        char c = h.ptr[i];
        if (c == '.') {
            if (label == 0)
                return "empty label in host name";
            label = 0;
            continue;
        }
        if (c == ':')
            return "host must not include a port (the request's port is ignored)";
        if (c == '*')
            return "'*' is allowed only as the whole first label (\"*.example.com\")";
        if (!is_label_char(c))
            return "invalid character in host name";
        if (++label > 63)
            return "host label longer than 63 bytes";
    }
    if (label == 0)
        return "host name must not end with '.'";
    return NULL;
}

static const char *check_ip_literal(struct pt_str h)
{
    if (h.len < 3 || h.ptr[h.len - 1] != ']')
        return "an IPv6 literal must be written \"[addr]\" without a port";
    for (size_t i = 1; i + 1 < h.len; i++) {
        char c = h.ptr[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                  c == ':' || c == '.';
        if (!ok)
            return "invalid character in IPv6 literal";
    }
    return NULL;
}

static char *lower_copy(struct pt_str s)
{
    char *p = pt_xmalloc(s.len + 1);
    for (size_t i = 0; i < s.len; i++)
        p[i] = pt_ascii_lower(s.ptr[i]);
    p[s.len] = '\0';
    return p;
}

static int compile_host(struct pt_route_entry *e, const char *host, size_t index, const char *where,
                        struct pt_diag *diag)
{
    struct pt_str h = pt_str_from_cstr(host);
    if (h.len == 0) {
        e->host_kind = PT_ROUTE_HOST_ANY;
        return 0;
    }
    const char *err;
    struct pt_str keep = h;
    if (h.len >= 2 && h.ptr[0] == '*' && h.ptr[1] == '.') {
        err = check_dns_name((struct pt_str){h.ptr + 2, h.len - 2});
        e->host_kind = PT_ROUTE_HOST_WILDCARD;
        keep = (struct pt_str){h.ptr + 1, h.len - 1}; /* ".example.com" */
    } else if (h.ptr[0] == '[') {
        err = check_ip_literal(h);
        e->host_kind = PT_ROUTE_HOST_EXACT;
    } else {
        err = check_dns_name(h);
        e->host_kind = PT_ROUTE_HOST_EXACT;
    }
    if (err) {
        struct field f;
        pt_diag_addf(diag, where, fieldf(&f, index, "host"), "%s: \"%s\"", err, host);
        return PT_ERR_CONFIG;
    }
    e->owned = lower_copy(keep);
    e->host = (struct pt_str){e->owned, keep.len};
    return 0;
}

static int compile_methods(struct pt_route_entry *e, const Portico__Config__V1__Route *route,
                           size_t index, const char *where, struct pt_diag *diag)
{
    int rc = 0;
    if (route->n_methods == 0)
        return 0;
    e->methods = pt_xcalloc(route->n_methods, sizeof(*e->methods));
    for (size_t i = 0; i < route->n_methods; i++) {
        struct pt_str m = pt_str_from_cstr(route->methods[i]);
        struct field f;
        char name[48];
        snprintf(name, sizeof(name), "methods[%zu]", i);
        if (!pt_http_is_token(m)) {
            pt_diag_addf(diag, where, fieldf(&f, index, name), "not a valid method token: \"%s\"",
                         route->methods[i] ? route->methods[i] : "");
            rc = PT_ERR_CONFIG;
            continue;
        }
        bool dup = false;
        for (uint32_t k = 0; k < e->nmethods; k++)
            dup = dup || pt_str_eq(e->methods[k], m);
        if (dup) {
            pt_diag_addf(diag, where, fieldf(&f, index, name), "duplicate method \"%s\"",
                         route->methods[i]);
            rc = PT_ERR_CONFIG;
            continue;
        }
        /* The config outlives nothing: keep a copy next to the predicates. */
        char *copy = pt_xstrndup(m.ptr, m.len);
        e->methods[e->nmethods++] = (struct pt_str){copy, m.len};
    }
    return rc;
}

/* The fields HeaderMatch and QueryMatch have in common. */
struct match_spec {
    const char *name;
    bool invert;
    int kind; /* 0 unset, then PT_ROUTE_PRED_* + 1 */
    const char *str;
    bool present;
};

static int compile_pred(struct pt_route_pred *p, const struct match_spec *s, bool header,
                        const char *field_prefix, size_t index, const char *where,
                        struct pt_diag *diag)
{
    struct field f;
    char sub[64];
    struct pt_str name = pt_str_from_cstr(s->name);

    if (name.len == 0 || (header && !pt_http_is_token(name))) {
        snprintf(sub, sizeof(sub), "%s.name", field_prefix);
        if (header)
            pt_diag_addf(diag, where, fieldf(&f, index, sub), "not a valid header name: \"%s\"",
                         s->name ? s->name : "");
        else
            pt_diag_addf(diag, where, fieldf(&f, index, sub), "empty query parameter name");
        return PT_ERR_CONFIG;
    }
    if (s->kind == 0) {
        pt_diag_addf(diag, where, fieldf(&f, index, field_prefix),
                     "set one of exact, prefix, regex or present");
        return PT_ERR_CONFIG;
    }
    p->kind = (enum pt_route_pred_kind)(s->kind - 1);
    p->invert = s->invert;
    p->present = s->present;

    struct pt_str value = p->kind == PT_ROUTE_PRED_PRESENT ? PT_STR("") : pt_str_from_cstr(s->str);
    if (p->kind == PT_ROUTE_PRED_REGEX) {
        size_t n = value.len + 5;
        char *anchored = pt_xmalloc(n);
        snprintf(anchored, n, "^(%s)$", s->str);
        int rc = regcomp(&p->re, anchored, REG_EXTENDED | REG_NOSUB);
        free(anchored);
        if (rc != 0) {
            char msg[256];
            regerror(rc, &p->re, msg, sizeof(msg));
            snprintf(sub, sizeof(sub), "%s.regex", field_prefix);
            pt_diag_addf(diag, where, fieldf(&f, index, sub), "invalid regex \"%s\": %s", s->str,
                         msg);
            p->kind = PT_ROUTE_PRED_PRESENT; /* nothing compiled to free */
            return PT_ERR_CONFIG;
        }
    }
    p->owned = pt_xmalloc(name.len + value.len + 1);
    for (size_t i = 0; i < name.len; i++)
        p->owned[i] = header ? pt_ascii_lower(name.ptr[i]) : name.ptr[i];
    if (value.len)
        memcpy(p->owned + name.len, value.ptr, value.len);
    p->name = (struct pt_str){p->owned, name.len};
    p->value = (struct pt_str){p->owned + name.len, value.len};
    return 0;
}

static struct match_spec header_spec(const Portico__Config__V1__HeaderMatch *m)
{
    struct match_spec s = {m->name, m->invert, 0, NULL, false};
    switch (m->match_case) {
    case PORTICO__CONFIG__V1__HEADER_MATCH__MATCH_EXACT:
        s.kind = PT_ROUTE_PRED_EXACT + 1;
        s.str = m->exact;
        break;
    case PORTICO__CONFIG__V1__HEADER_MATCH__MATCH_PREFIX:
        s.kind = PT_ROUTE_PRED_PREFIX + 1;
        s.str = m->prefix;
        break;
    case PORTICO__CONFIG__V1__HEADER_MATCH__MATCH_REGEX:
        s.kind = PT_ROUTE_PRED_REGEX + 1;
        s.str = m->regex;
        break;
    case PORTICO__CONFIG__V1__HEADER_MATCH__MATCH_PRESENT:
        s.kind = PT_ROUTE_PRED_PRESENT + 1;
        s.present = m->present;
        break;
    default:
        break;
    }
    if (!s.str)
        s.str = "";
    return s;
}

static struct match_spec query_spec(const Portico__Config__V1__QueryMatch *m)
{
    struct match_spec s = {m->name, m->invert, 0, NULL, false};
    switch (m->match_case) {
    case PORTICO__CONFIG__V1__QUERY_MATCH__MATCH_EXACT:
        s.kind = PT_ROUTE_PRED_EXACT + 1;
        s.str = m->exact;
        break;
    case PORTICO__CONFIG__V1__QUERY_MATCH__MATCH_PREFIX:
        s.kind = PT_ROUTE_PRED_PREFIX + 1;
        s.str = m->prefix;
        break;
    case PORTICO__CONFIG__V1__QUERY_MATCH__MATCH_REGEX:
        s.kind = PT_ROUTE_PRED_REGEX + 1;
        s.str = m->regex;
        break;
    case PORTICO__CONFIG__V1__QUERY_MATCH__MATCH_PRESENT:
        s.kind = PT_ROUTE_PRED_PRESENT + 1;
        s.present = m->present;
        break;
    default:
        break;
    }
    if (!s.str)
        s.str = "";
    return s;
}

int pt_route_entry_compile_predicates(struct pt_route_entry *e,
                                      const Portico__Config__V1__Route *route, size_t index,
                                      const char *where, struct pt_diag *diag)
{
    int rc = 0;
    if (compile_host(e, route->host ? route->host : "", index, where, diag) != 0)
        rc = PT_ERR_CONFIG;
    if (compile_methods(e, route, index, where, diag) != 0)
        rc = PT_ERR_CONFIG;

    if (route->n_headers + route->n_query > PT_ROUTE_MAX_PREDICATES) {
        struct field f;
        pt_diag_addf(diag, where, fieldf(&f, index, "headers"),
                     "too many header and query predicates (at most %u)", PT_ROUTE_MAX_PREDICATES);
        return PT_ERR_CONFIG;
    }
    if (route->n_headers)
        e->headers = pt_xcalloc(route->n_headers, sizeof(*e->headers));
    for (size_t i = 0; i < route->n_headers; i++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "headers[%zu]", i);
        const Portico__Config__V1__HeaderMatch *m = route->headers[i];
        if (!m) {
            struct field f;
            pt_diag_addf(diag, where, fieldf(&f, index, prefix), "missing");
            rc = PT_ERR_CONFIG;
            continue;
        }
        struct match_spec s = header_spec(m);
        if (compile_pred(&e->headers[e->nheaders], &s, true, prefix, index, where, diag) == 0)
            e->nheaders++;
        else
            rc = PT_ERR_CONFIG;
    }
    if (route->n_query)
        e->query = pt_xcalloc(route->n_query, sizeof(*e->query));
    for (size_t i = 0; i < route->n_query; i++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "query[%zu]", i);
        const Portico__Config__V1__QueryMatch *m = route->query[i];
        if (!m) {
            struct field f;
            pt_diag_addf(diag, where, fieldf(&f, index, prefix), "missing");
            rc = PT_ERR_CONFIG;
            continue;
        }
        struct match_spec s = query_spec(m);
        if (compile_pred(&e->query[e->nquery], &s, false, prefix, index, where, diag) == 0)
            e->nquery++;
        else
            rc = PT_ERR_CONFIG;
    }
    return rc;
}

static void preds_free(struct pt_route_pred *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (v[i].kind == PT_ROUTE_PRED_REGEX)
            regfree(&v[i].re);
        free(v[i].owned);
    }
    free(v);
}

void pt_route_entry_fini(struct pt_route_entry *e)
{
    pt_route_tmpl_fini(&e->tmpl);
    for (uint32_t i = 0; i < e->nmethods; i++)
        free((char *)e->methods[i].ptr);
    free(e->methods);
    preds_free(e->headers, e->nheaders);
    preds_free(e->query, e->nquery);
    free(e->owned);
    memset(e, 0, sizeof(*e));
}

/* ---- match ---- */

bool pt_route_request_host(struct pt_str a, char *buf, struct pt_str *host)
{
    size_t end;
    if (a.len == 0)
        return false;
    if (a.ptr[0] == '[') {
        const char *close = memchr(a.ptr, ']', a.len);
        if (!close)
            return false;
        end = (size_t)(close - a.ptr) + 1;
        if (end < a.len && a.ptr[end] != ':')
            return false;
    } else {
        const char *colon = memchr(a.ptr, ':', a.len);
        end = colon ? (size_t)(colon - a.ptr) : a.len;
        if (memchr(a.ptr, '@', end))
            return false;
        if (end > 0 && a.ptr[end - 1] == '.')
            end--; /* "example.com." is example.com */
    }
    if (end == 0 || end > PT_ROUTE_HOST_MAX)
        return false;
    for (size_t i = 0; i < end; i++)
        buf[i] = pt_ascii_lower(a.ptr[i]);
    *host = (struct pt_str){buf, end};
    return true;
}

/* A regex value is copied into a NUL-terminated buffer: regexec() wants a C
 * string (sanitizer interceptors even strlen() it), while values here are
 * slices. REG_STARTEND keeps a decoded "%00" inside the value. */
struct regex_buf {
    char v[PT_ROUTE_REGEX_VALUE_MAX + 1];
    size_t len;
};

static bool regex_run(const regex_t *re, struct regex_buf *b)
{
    regmatch_t m[1];
    b->v[b->len] = '\0';
    m[0].rm_so = 0;
    m[0].rm_eo = (regoff_t)b->len;
    return regexec(re, b->v, 1, m, REG_STARTEND) == 0;
}

/* 1 match, 0 no match, -1 the value is too long to be tested. */
static int value_match(const struct pt_route_pred *p, struct pt_str v)
{
    switch (p->kind) {
    case PT_ROUTE_PRED_EXACT:
        return pt_str_eq(v, p->value);
    case PT_ROUTE_PRED_PREFIX:
        return pt_str_has_prefix(v, p->value);
    case PT_ROUTE_PRED_PRESENT:
        return 1;
    case PT_ROUTE_PRED_REGEX:
        break;
    }
    if (v.len > PT_ROUTE_REGEX_VALUE_MAX)
        return -1;
    struct regex_buf b;
    if (v.len)
        memcpy(b.v, v.ptr, v.len);
    b.len = v.len;
    return regex_run(&p->re, &b);
}

static bool header_pred_match(const struct pt_route_pred *p, const struct pt_headers *h)
{
    bool found = false, hit = false;
    for (uint32_t i = 0; h && i < h->n && !hit; i++) {
        if (!pt_str_eq_nocase(h->v[i].name, p->name))
            continue;
        found = true;
        int r = value_match(p, h->v[i].value);
        if (r < 0)
            return false;
        hit = r == 1;
    }
    if (p->kind == PT_ROUTE_PRED_PRESENT)
        hit = p->present ? found : !found;
    return hit != p->invert;
}

/* Decode one byte of a form-encoded query component at *i: '+' is a space,
 * "%XX" a byte, and a '%' not followed by two hex digits is itself. */
static unsigned char qbyte(struct pt_str raw, size_t *i)
{
    char c = raw.ptr[*i];
    if (c == '+') {
        (*i)++;
        return ' ';
    }
    if (c == '%' && *i + 2 < raw.len) {
        int hi = pt_hex_value((unsigned char)raw.ptr[*i + 1]),
            lo = pt_hex_value((unsigned char)raw.ptr[*i + 2]);
        if (hi >= 0 && lo >= 0) {
            *i += 3;
            return (unsigned char)(hi << 4 | lo);
        }
    }
    (*i)++;
    return (unsigned char)c;
}

/* Does the decoded raw equal plain (or start with it, when prefix)? */
static bool qcompare(struct pt_str raw, struct pt_str plain, bool prefix)
{
    size_t i = 0, k = 0;
    while (i < raw.len) {
        if (k == plain.len)
            return prefix;
        if (qbyte(raw, &i) != (unsigned char)plain.ptr[k++])
            return false;
    }
    return k == plain.len;
}

/* 1 match, 0 no match, -1 the value is too long to be tested. */
static int qvalue_match(const struct pt_route_pred *p, struct pt_str raw)
{
    switch (p->kind) {
    case PT_ROUTE_PRED_EXACT:
        return qcompare(raw, p->value, false);
    case PT_ROUTE_PRED_PREFIX:
        return qcompare(raw, p->value, true);
    case PT_ROUTE_PRED_PRESENT:
        return 1;
    case PT_ROUTE_PRED_REGEX:
        break;
    }
    struct regex_buf b;
    b.len = 0;
    for (size_t i = 0; i < raw.len;) {
        if (b.len == PT_ROUTE_REGEX_VALUE_MAX)
            return -1;
        b.v[b.len++] = (char)qbyte(raw, &i);
    }
    return regex_run(&p->re, &b);
}

/* true when the predicate holds; a value that cannot be evaluated makes it
 * fail whether or not it is inverted. */
static bool query_pred_match(const struct pt_route_pred *p, struct pt_str query)
{
    bool found = false, hit = false;
    size_t i = 0;
    while (i < query.len && !hit) {
        size_t j = i;
        while (j < query.len && query.ptr[j] != '&')
            j++;
        struct pt_str pair = {query.ptr + i, j - i};
        i = j + 1;
        if (pair.len == 0)
            continue;
        const char *eq = memchr(pair.ptr, '=', pair.len);
        struct pt_str name = {pair.ptr, eq ? (size_t)(eq - pair.ptr) : pair.len};
        struct pt_str value = eq ? (struct pt_str){eq + 1, pair.len - name.len - 1}
                                 : (struct pt_str){pair.ptr + pair.len, 0};
        if (!qcompare(name, p->name, false))
            continue;
        found = true;
        int r = qvalue_match(p, value);
        if (r < 0)
            return false;
        hit = r == 1;
    }
    if (p->kind == PT_ROUTE_PRED_PRESENT)
        hit = p->present ? found : !found;
    return hit != p->invert;
}

bool pt_route_entry_predicates_match(const struct pt_route_entry *e,
                                     const struct pt_route_request *req)
{
    if (e->nmethods) {
        bool ok = false;
        for (uint32_t i = 0; i < e->nmethods && !ok; i++)
            ok = pt_str_eq(e->methods[i], req->method);
        if (!ok)
            return false;
    }
    /* Regexes are the costly part: evaluate the cheap predicates first. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < e->nheaders; i++)
            if ((e->headers[i].kind == PT_ROUTE_PRED_REGEX) == (pass == 1) &&
                !header_pred_match(&e->headers[i], req->headers))
                return false;
        for (uint32_t i = 0; i < e->nquery; i++)
            if ((e->query[i].kind == PT_ROUTE_PRED_REGEX) == (pass == 1) &&
                !query_pred_match(&e->query[i], req->query))
                return false;
    }
    return true;
}
