/*
 * Choosing the service of a request: traffic splits and API versions
 * (proxy/select.h).
 */
#include "proxy/select.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf/snapshot.h"
#include "core/arena.h"
#include "http/exchange.h"
#include "http/headers.h"
#include "portico/errors.h"
#include "proxy/proxy_int.h"
#include "upstream/lb.h"

/* --- pure helpers -------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t pt_split_hash(struct pt_str key)
{
    /* Fixed: changing the basis or the finish would move every client to
     * a side drawn anew. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < key.len; i++) {
        h ^= (unsigned char)key.ptr[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h);
}

uint64_t pt_split_point(uint64_t hash, uint64_t total)
{
    return (uint64_t)(((unsigned __int128)hash * total) >> 64);
}

uint32_t pt_split_side_of(const struct pt_split_side *sides, uint32_t n, uint64_t point)
{
    uint64_t upto = 0;
    for (uint32_t i = 0; i < n; i++) {
        upto += sides[i].weight;
        if (point < upto)
            return i;
    }
    /* Not reached with point < total; the last weighted side is safe. */
    for (uint32_t i = n; i-- > 0;)
        if (sides[i].weight)
            return i;
    return 0;
}

static bool version_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_';
}

bool pt_version_in_path(struct pt_str path, uint32_t skip, struct pt_str *version,
                        size_t *seg_start, size_t *seg_end)
{
    size_t end = path.len;
    const char *q = memchr(path.ptr, '?', path.len);
    if (q)
        end = (size_t)(q - path.ptr);
    size_t i = 0;
    for (uint32_t k = 0; k < skip; k++) {
        if (i >= end || path.ptr[i] != '/')
            return false;
        i++;
        while (i < end && path.ptr[i] != '/')
            i++;
    }
    if (i >= end || path.ptr[i] != '/')
        return false;
    size_t start = i++;
    size_t s = i;
    while (i < end && path.ptr[i] != '/')
        i++;
    if (i - s < 2 || path.ptr[s] != 'v' || !isdigit((unsigned char)path.ptr[s + 1]) ||
        i - s - 1 > PT_VERSION_MAX)
        return false;
    for (size_t k = s + 1; k < i; k++)
        if (!version_char((unsigned char)path.ptr[k]))
            return false;
    *version = (struct pt_str){path.ptr + s + 1, i - s - 1};
    *seg_start = start;
    *seg_end = i;
    return true;
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

bool pt_version_in_accept(struct pt_str accept, struct pt_str *version)
{
    const char *p = accept.ptr, *end = accept.ptr + accept.len;
    bool in_range_params = false; /* past the media type of this range */
    while (p < end) {
        while (p < end && ows(*p))
            p++;
        if (p >= end)
            break;
        if (*p == ',') {
            in_range_params = false;
            p++;
            continue;
        }
        if (*p == ';') {
            in_range_params = true;
            p++;
            continue;
        }
        /* A media type or a parameter name: up to '=', ';', ',' or OWS. */
        const char *name = p;
        while (p < end && *p != '=' && *p != ';' && *p != ',' && !ows(*p))
            p++;
        size_t nlen = (size_t)(p - name);
        while (p < end && ows(*p))
            p++;
        if (p >= end || *p != '=')
            continue; /* a media type, or a parameter without a value */
        p++;
        while (p < end && ows(*p))
            p++;
        struct pt_str val;
        bool ok = true;
        if (p < end && *p == '"') {
            const char *v = ++p;
            while (p < end && *p != '"') {
                if (*p == '\\')
                    ok = false;
                p++;
            }
            if (p >= end)
                return false; /* unterminated quoted string */
            val = (struct pt_str){v, (size_t)(p - v)};
            p++;
        } else {
            const char *v = p;
            while (p < end && *p != ';' && *p != ',' && !ows(*p))
                p++;
            val = (struct pt_str){v, (size_t)(p - v)};
        }
        if (in_range_params && ok && nlen == 7 && strncasecmp(name, "version", 7) == 0 && val.len) {
            *version = val;
            return true;
        }
    }
    return false;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* raw (percent-encoded) equals name once decoded; bad escapes never do. */
static bool decoded_equals(const char *raw, const char *end, struct pt_str name)
{
    size_t n = 0;
    for (const char *c = raw; c < end; c++, n++) {
        unsigned char b = (unsigned char)*c;
        if (b == '%') {
            if (end - c < 3 || hexval((unsigned char)c[1]) < 0 || hexval((unsigned char)c[2]) < 0)
                return false;
            b = (unsigned char)(hexval((unsigned char)c[1]) << 4 | hexval((unsigned char)c[2]));
            c += 2;
        }
        if (n >= name.len || (unsigned char)name.ptr[n] != b)
            return false;
    }
    return n == name.len;
}

int pt_version_in_query(struct pt_str query, struct pt_str name, char *buf, size_t cap,
                        struct pt_str *version)
{
    const char *p = query.ptr, *end = query.ptr + query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        if (decoded_equals(p, kend, name)) {
            if (!eq || eq + 1 == stop)
                return 0;
            size_t n = 0;
            for (const char *c = eq + 1; c < stop; c++) {
                if (n >= cap)
                    return PT_ERR_INVALID;
                if (*c == '%') {
                    if (stop - c < 3)
                        return PT_ERR_INVALID;
                    int h = hexval((unsigned char)c[1]), l = hexval((unsigned char)c[2]);
                    if (h < 0 || l < 0)
                        return PT_ERR_INVALID;
                    buf[n++] = (char)(h << 4 | l);
                    c += 2;
                } else {
                    buf[n++] = *c;
                }
            }
            *version = (struct pt_str){buf, n};
            return n ? 1 : 0;
        }
        p = stop + 1;
    }
    return 0;
}

/* --- per request --------------------------------------------------------- */

static uint64_t rng_below(struct pt_exchange *x, uint64_t n)
{
    /* splitmix64 on the worker's own state: no lock, no shared line. */
    struct pt_proxy_worker *pw = x->worker->proxy;
    pw->rng += 0x9e3779b97f4a7c15ull;
    return pt_split_point(mix64(pw->rng), n);
}

static bool header_equals(const struct pt_headers *h, struct pt_str name, struct pt_str value)
{
    for (int i = pt_headers_index(h, name, 0); i >= 0;
         i = pt_headers_index(h, name, (uint32_t)i + 1))
        if (h->v[i].value.len == value.len && memcmp(h->v[i].value.ptr, value.ptr, value.len) == 0)
            return true;
    return false;
}

static const struct pt_service *split(struct pt_exchange *x, const struct pt_route_select *sel)
{
    for (uint32_t i = 0; i < sel->noverrides; i++)
        if (header_equals(&x->req.headers, sel->overrides[i].header, sel->overrides[i].value))
            return sel->overrides[i].service;
    struct pt_str key =
        pt_lb_key_get(sel->key_kind, sel->key_name, &x->req.headers, x->conn->peer_ip);
    uint64_t point = key.ptr && key.len ? pt_split_point(pt_split_hash(key), sel->total_weight)
                                        : rng_below(x, sel->total_weight);
    return sel->sides[pt_split_side_of(sel->sides, sel->nsides, point)].service;
}

static struct pt_str trim(struct pt_str s)
{
    while (s.len && ows(s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len && ows(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

static int detail(struct pt_exchange *x, struct pt_str *out, const char *fmt, struct pt_str arg)
{
    char *buf = pt_arena_alloc(&x->arena, 256);
    if (!buf)
        return PT_ERR_LIMIT;
    int n = snprintf(buf, 256, fmt, (int)(arg.len > 80 ? 80 : arg.len), arg.ptr);
    *out = (struct pt_str){buf, n < 0 ? 0 : n >= 256 ? 255 : (size_t)n};
    return PT_ERR_INVALID;
}

/* The requested version's raw text (found), or none. Status: 0 or an
 * error for a version that cannot be read. */
static int read_version(struct pt_exchange *x, const struct pt_route_select *sel, bool *found,
                        struct pt_str *v, size_t *seg_start, size_t *seg_end, struct pt_str *why)
{
    const struct pt_headers *h = &x->req.headers;
    *found = false;
    switch (sel->version_from) {
    case PT_VERSION_FROM_PATH:
        *found = pt_version_in_path(x->forward_path, sel->version_segment, v, seg_start, seg_end);
        return 0;
    case PT_VERSION_FROM_HEADER: {
        int i = pt_headers_index(h, sel->version_name, 0);
        if (i >= 0) {
            *v = trim(h->v[i].value);
            *found = v->len > 0;
        }
        return 0;
    }
    case PT_VERSION_FROM_ACCEPT:
        for (int i = pt_headers_index(h, PT_STR("accept"), 0); i >= 0 && !*found;
             i = pt_headers_index(h, PT_STR("accept"), (uint32_t)i + 1))
            *found = pt_version_in_accept(h->v[i].value, v);
        return 0;
    case PT_VERSION_FROM_QUERY: {
        char *buf = pt_arena_alloc(&x->arena, PT_VERSION_MAX);
        if (!buf)
            return PT_ERR_LIMIT;
        int rc = pt_version_in_query(x->req.query, sel->version_name, buf, PT_VERSION_MAX, v);
        if (rc < 0)
            return detail(x, why, "invalid API version in query parameter \"%.*s\"",
                          sel->version_name);
        *found = rc == 1;
        return 0;
    }
    }
    return 0;
}

/* forward_path without [a, b) ("/v2"), keeping the query. */
static int strip_segment(struct pt_exchange *x, size_t a, size_t b)
{
    struct pt_str fp = x->forward_path;
    size_t n = fp.len - (b - a);
    bool slash = a == 0 && (b == fp.len || fp.ptr[b] != '/');
    char *p = pt_arena_alloc(&x->arena, n + 2);
    if (!p)
        return PT_ERR_LIMIT;
    size_t k = 0;
    if (slash)
        p[k++] = '/';
    memcpy(p + k, fp.ptr, a);
    k += a;
    memcpy(p + k, fp.ptr + b, fp.len - b);
    k += fp.len - b;
    x->forward_path = (struct pt_str){p, k};
    return 0;
}

static int versioned(struct pt_exchange *x, const struct pt_route_select *sel, struct pt_str *why)
{
    bool found;
    struct pt_str v = PT_STR_NULL;
    size_t a = 0, b = 0;
    int rc = read_version(x, sel, &found, &v, &a, &b, why);
    if (rc)
        return rc;
    if (!found) {
        if (sel->default_version < 0) {
            static const char *const where[] = {
                [PT_VERSION_FROM_PATH] = "an API version is required (a path segment "
                                         "\"v<version>\")",
                [PT_VERSION_FROM_HEADER] = "an API version is required (header %.*s)",
                [PT_VERSION_FROM_ACCEPT] = "an API version is required (version= in Accept)",
                [PT_VERSION_FROM_QUERY] = "an API version is required (query parameter %.*s)",
            };
            return detail(x, why, where[sel->version_from], sel->version_name);
        }
        x->service = sel->versions[sel->default_version].service;
        return 0;
    }
    for (uint32_t i = 0; i < sel->nversions; i++) {
        struct pt_str e = sel->versions[i].version;
        if (e.len == v.len && memcmp(e.ptr, v.ptr, v.len) == 0) {
            x->service = sel->versions[i].service;
            if (sel->version_from == PT_VERSION_FROM_PATH && sel->version_strip)
                return strip_segment(x, a, b);
            return 0;
        }
    }
    return detail(x, why, "unknown API version \"%.*s\"", v);
}

int pt_proxy_select(struct pt_exchange *x, struct pt_str *why)
{
    const struct pt_route_conf *rc = x->route;
    const struct pt_route_select *sel = &rc->select;
    if (sel->nsides) {
        x->service = split(x, sel);
        return 0;
    }
    if (sel->nversions)
        return versioned(x, sel, why);
    x->service = rc->service;
    return 0;
}
