/*
 * Bearer tokens: finding them in a request, and removing the query
 * parameter or cookie that carried one (see bearer.h).
 */
#include "auth/bearer.h"

#include <string.h>

#include "auth/auth_int.h"
#include "core/strutil.h"
#include "http/headers.h"

bool pt_auth_bearer_is_jwt(struct pt_str t)
{
    /* memchr is vectorized; a token is ~1 KB and this runs per request. */
    const char *p = t.ptr, *end = t.ptr + t.len;
    size_t dots = 0;
    while (p < end && dots < 3) {
        const char *d = memchr(p, '.', (size_t)(end - p));
        if (!d)
            break;
        dots++;
        p = d + 1;
    }
    return dots == 2;
}

/* Percent-decode s (form rules: '+' is a space) into out (cap >= s.len).
 * Status: 0 with *n, or -1 for a bad %XX. */
static int form_decode(struct pt_str s, char *out, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= s.len)
                return -1;
            int hi = pt_hex_value((unsigned char)s.ptr[i + 1]);
            int lo = pt_hex_value((unsigned char)s.ptr[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        out[k++] = c;
    }
    *n = k;
    return 0;
}

/* Is the raw (encoded) parameter name the same as name once decoded? */
static bool name_is(struct pt_str raw, struct pt_str name)
{
    if (raw.len < name.len)
        return false;
    if (raw.len == name.len && memcmp(raw.ptr, name.ptr, name.len) == 0)
        return true;
    char buf[256];
    size_t n;
    if (raw.len > sizeof(buf) || form_decode(raw, buf, &n) != 0)
        return false;
    return n == name.len && memcmp(buf, name.ptr, n) == 0;
}

/* The next "name[=value]" of a query from *pos on; false at the end. */
static bool next_param(struct pt_str q, size_t *pos, struct pt_str *whole, struct pt_str *pname,
                       struct pt_str *pvalue)
{
    if (*pos >= q.len)
        return false;
    size_t start = *pos, end = start;
    while (end < q.len && q.ptr[end] != '&')
        end++;
    *whole = (struct pt_str){q.ptr + start, end - start};
    size_t eq = start;
    while (eq < end && q.ptr[eq] != '=')
        eq++;
    *pname = (struct pt_str){q.ptr + start, eq - start};
    *pvalue = eq < end ? (struct pt_str){q.ptr + eq + 1, end - eq - 1} : PT_STR_NULL;
    *pos = end + 1;
    return true;
}

int pt_auth_form_decode(struct pt_exchange *x, struct pt_str in, struct pt_str *out)
{
    char *buf = pt_exchange_alloc(x, in.len + 1);
    if (!buf)
        return PT_ERR_LIMIT;
    size_t len;
    if (form_decode(in, buf, &len) != 0)
        return PT_ERR_INVALID;
    *out = (struct pt_str){buf, len};
    return 0;
}

int pt_auth_query_param(struct pt_exchange *x, struct pt_str query, struct pt_str name,
                        struct pt_str *out)
{
    size_t pos = 0;
    struct pt_str whole, n, v;
    while (next_param(query, &pos, &whole, &n, &v)) {
        if (name_is(n, name))
            return pt_auth_form_decode(x, v, out);
    }
    return PT_ERR_INVALID;
}

/* The first cookie called name in a Cookie header value (RFC 6265 5.4:
 * "a=b; c=d"). */
static bool cookie_find(struct pt_str h, struct pt_str name, struct pt_str *value)
{
    size_t i = 0;
    while (i < h.len) {
        while (i < h.len && (h.ptr[i] == ' ' || h.ptr[i] == ';' || h.ptr[i] == '\t'))
            i++;
        size_t start = i;
        while (i < h.len && h.ptr[i] != ';')
            i++;
        struct pt_str pair = pt_str_trim((struct pt_str){h.ptr + start, i - start});
        const char *eq = memchr(pair.ptr, '=', pair.len);
        if (!eq)
            continue;
        struct pt_str n = pt_str_trim((struct pt_str){pair.ptr, (size_t)(eq - pair.ptr)});
        if (pt_str_eq(n, name)) {
            struct pt_str v = {eq + 1, pair.len - (size_t)(eq + 1 - pair.ptr)};
            if (v.len >= 2 && v.ptr[0] == '"' && v.ptr[v.len - 1] == '"')
                v = (struct pt_str){v.ptr + 1, v.len - 2};
            *value = v;
            return true;
        }
    }
    return false;
}

enum pt_auth_bearer pt_auth_bearer_find(struct pt_exchange *x, const struct pt_auth_route *r,
                                        struct pt_str *token, const char **where)
{
    struct pt_headers *h = &x->req.headers;
    int first = pt_headers_index(h, PT_STR("authorization"), 0);
    if (first >= 0) {
        if (pt_headers_index(h, PT_STR("authorization"), (uint32_t)first + 1) >= 0)
            return PT_AUTH_BEARER_INVALID;
        struct pt_str v = pt_str_trim(h->v[first].value);
        if (v.len >= 6 && pt_str_eq_nocase((struct pt_str){v.ptr, 6}, PT_STR("bearer")) &&
            (v.len == 6 || v.ptr[6] == ' ' || v.ptr[6] == '\t')) {
            struct pt_str t = pt_str_trim((struct pt_str){v.ptr + 6, v.len - 6});
            if (!t.len)
                return PT_AUTH_BEARER_INVALID;
            *token = t;
            *where = "header";
            return PT_AUTH_BEARER_FOUND;
        }
    }
    if (r->token_query_param.len && x->req.query.len) {
        struct pt_str t;
        if (pt_auth_query_param(x, x->req.query, r->token_query_param, &t) == 0 && t.len) {
            *token = t;
            *where = "query";
            return PT_AUTH_BEARER_FOUND;
        }
    }
    if (r->token_cookie.len) {
        for (int i = pt_headers_index(h, PT_STR("cookie"), 0); i >= 0;
             i = pt_headers_index(h, PT_STR("cookie"), (uint32_t)i + 1)) {
            struct pt_str t;
            if (cookie_find(h->v[i].value, r->token_cookie, &t) && t.len) {
                *token = t;
                *where = "cookie";
                return PT_AUTH_BEARER_FOUND;
            }
        }
    }
    return PT_AUTH_BEARER_ABSENT;
}

/* query without the parameters called name, into out (cap >= q.len). */
static size_t query_without(struct pt_str q, struct pt_str name, char *out)
{
    size_t pos = 0, k = 0;
    struct pt_str whole, n, v;
    while (next_param(q, &pos, &whole, &n, &v)) {
        if (!whole.len || name_is(n, name))
            continue;
        if (k)
            out[k++] = '&';
        memcpy(out + k, whole.ptr, whole.len);
        k += whole.len;
    }
    return k;
}

void pt_auth_bearer_remove_query(struct pt_exchange *x, struct pt_str name)
{
    struct pt_str q = x->req.query;
    if (!q.len)
        return;
    char *nq = pt_exchange_alloc(x, q.len + 1);
    if (!nq)
        return;
    size_t nl = query_without(q, name, nq);
    if (nl == q.len)
        return; /* nothing to remove */
    x->req.query = (struct pt_str){nq, nl};
    /* The forwarded target: its path, then the new query. */
    struct pt_str fp = x->forward_path;
    const char *qm = fp.ptr ? memchr(fp.ptr, '?', fp.len) : NULL;
    if (!qm)
        return;
    size_t plen = (size_t)(qm - fp.ptr);
    char *nf = pt_exchange_alloc(x, plen + 1 + nl + 1);
    if (!nf) {
        /* Never forward the credential: drop the whole query instead. */
        x->forward_path.len = plen;
        return;
    }
    memcpy(nf, fp.ptr, plen);
    size_t k = plen;
    if (nl) {
        nf[k++] = '?';
        memcpy(nf + k, nq, nl);
        k += nl;
    }
    x->forward_path = (struct pt_str){nf, k};
}

void pt_auth_bearer_remove_cookie(struct pt_exchange *x, struct pt_str name)
{
    struct pt_headers *h = &x->req.headers;
    for (int i = pt_headers_index(h, PT_STR("cookie"), 0); i >= 0;) {
        struct pt_str v = h->v[i].value, dummy;
        if (!cookie_find(v, name, &dummy)) {
            i = pt_headers_index(h, PT_STR("cookie"), (uint32_t)i + 1);
            continue;
        }
        /* Rebuild the header from the other cookies. */
        char *out = pt_exchange_alloc(x, 2 * v.len + 1); /* "; " may replace ";" */
        size_t k = 0, p = 0;
        while (out && p < v.len) {
            while (p < v.len && (v.ptr[p] == ' ' || v.ptr[p] == ';' || v.ptr[p] == '\t'))
                p++;
            size_t start = p;
            while (p < v.len && v.ptr[p] != ';')
                p++;
            struct pt_str pair = pt_str_trim((struct pt_str){v.ptr + start, p - start});
            if (!pair.len)
                continue;
            const char *eq = memchr(pair.ptr, '=', pair.len);
            struct pt_str n =
                pt_str_trim((struct pt_str){pair.ptr, eq ? (size_t)(eq - pair.ptr) : pair.len});
            if (eq && pt_str_eq(n, name))
                continue;
            if (k) {
                out[k++] = ';';
                out[k++] = ' ';
            }
            memcpy(out + k, pair.ptr, pair.len);
            k += pair.len;
        }
        if (!out || !k) {
            pt_headers_remove_at(h, (uint32_t)i);
            i = pt_headers_index(h, PT_STR("cookie"), (uint32_t)i);
            continue;
        }
        h->v[i].value = (struct pt_str){out, k};
        i = pt_headers_index(h, PT_STR("cookie"), (uint32_t)i + 1);
    }
}
