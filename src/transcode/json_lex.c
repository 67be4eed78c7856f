/*
 * The JSON tokenizer of pt_json_decode: a pull tokenizer over the whole
 * input, strict RFC 8259 (no comments, no trailing commas, no NaN literals,
 * no leading zeros, control characters escaped, valid UTF-8, no lone
 * surrogates in \u escapes). It reports value kinds and spans; it never
 * allocates for strings without escapes. Object keys are collected per
 * object and checked for duplicates when the object ends.
 */
#include <stdlib.h>

#include "core/strutil.h"
#include "transcode/json_int.h"

static inline void skip_ws(struct jdec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t'))
        d->p++;
}

enum jtok jlex_peek(struct jdec *d)
{
    skip_ws(d);
    if (d->p == d->end)
        return JT_ERR;
    switch (*d->p) {
    case '{':
        return JT_OBJ;
    case '[':
        return JT_ARR;
    case '"':
        return JT_STR;
    case 't':
        return JT_TRUE;
    case 'f':
        return JT_FALSE;
    case 'n':
        return JT_NULL;
    default:
        if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))
            return JT_NUM;
        return JT_ERR;
    }
}

const char *jtok_name(enum jtok t)
{
    switch (t) {
    case JT_OBJ:
        return "object";
    case JT_ARR:
        return "array";
    case JT_STR:
        return "string";
    case JT_NUM:
        return "number";
    case JT_TRUE:
    case JT_FALSE:
        return "boolean";
    case JT_NULL:
        return "null";
    default:
        return "invalid JSON";
    }
}

int jdec_type_error(struct jdec *d, const char *what, enum jtok got)
{
    if (got == JT_ERR)
        return jctx_fail(&d->c, PT_ERR_INVALID, jdec_off(d), "expected %s, got %s", what,
                         d->p == d->end ? "end of input" : "invalid JSON");
    return jctx_fail(&d->c, PT_ERR_INVALID, jdec_off(d), "expected %s, got %s", what,
                     jtok_name(got));
}

int jdec_expect(struct jdec *d, enum jtok kind, const char *what)
{
    enum jtok t = jlex_peek(d);
    if (t == kind)
        return 0;
    return jdec_type_error(d, what, t);
}

static int hex4(const char *p, uint32_t *v)
{
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        int h = pt_hex_value((unsigned char)p[i]);
        if (h < 0)
            return -1;
        x = x << 4 | (uint32_t)h;
    }
    *v = x;
    return 0;
}

static int bad_string(struct jdec *d, const char *at, const char *why)
{
    d->p = at;
    return jctx_fail(&d->c, PT_ERR_INVALID, jdec_off(d), "%s", why);
}

int jlex_string(struct jdec *d, struct jstr *s)
{
    const char *p = d->p + 1, *end = d->end;
    s->raw = p;
    s->escaped = false;
    for (;;) {
        /* Plain ASCII runs are the common case. */
        while (p < end) {
            unsigned char ch = (unsigned char)*p;
            if (ch == '"' || ch == '\\' || ch < 0x20 || ch >= 0x80)
                break;
            p++;
        }
        if (p == end)
            return bad_string(d, s->raw - 1, "unterminated string");
        unsigned char ch = (unsigned char)*p;
        if (ch == '"')
            break;
        if (ch < 0x20)
            return bad_string(d, p, "control character in string (escape it)");
        if (ch >= 0x80) {
            size_t k = utf8_seq_len((const uint8_t *)p, (const uint8_t *)end);
            if (k == 0)
                return bad_string(d, p, "invalid UTF-8 in string");
            p += k;
            continue;
        }
        /* Backslash. */
        s->escaped = true;
        if (end - p < 2)
            return bad_string(d, p, "unterminated string");
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            continue;
        case 'u':
            break;
        default:
            return bad_string(d, p, "invalid escape in string");
        }
        uint32_t u;
        if (end - p < 6 || hex4(p + 2, &u) != 0)
            return bad_string(d, p, "invalid \\u escape in string");
        if (u >= 0xdc00 && u <= 0xdfff)
            return bad_string(d, p, "lone low surrogate in \\u escape");
        if (u >= 0xd800 && u <= 0xdbff) {
            uint32_t lo;
            if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &lo) != 0 ||
                lo < 0xdc00 || lo > 0xdfff)
                return bad_string(d, p, "lone high surrogate in \\u escape");
            p += 12;
            continue;
        }
        p += 6;
    }
    s->len = (size_t)(p - s->raw);
    d->p = p + 1;
    return 0;
}

static size_t put_utf8(char *dst, uint32_t cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xc0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xe0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        dst[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    dst[0] = (char)(0xf0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    dst[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t jstr_decode(const struct jstr *s, char *dst)
{
    /* The string was validated by jlex_string. */
    const char *p = s->raw, *end = s->raw + s->len;
    size_t k = 0;
    while (p < end) {
        if (*p != '\\') {
            dst[k++] = *p++;
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
        case 'b':
            dst[k++] = '\b';
            break;
        case 'f':
            dst[k++] = '\f';
            break;
        case 'n':
            dst[k++] = '\n';
            break;
        case 'r':
            dst[k++] = '\r';
            break;
        case 't':
            dst[k++] = '\t';
            break;
        case 'u': {
            uint32_t u = 0, lo = 0;
            hex4(p, &u);
            p += 4;
            if (u >= 0xd800 && u <= 0xdbff) {
                hex4(p + 2, &lo);
                p += 6;
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
            }
            k += put_utf8(dst + k, u);
            break;
        }
        default: /* " \ / */
            dst[k++] = e;
            break;
        }
    }
    return k;
}

int jstr_get(struct jdec *d, const struct jstr *s, struct pt_str *out)
{
    if (!s->escaped) {
        *out = (struct pt_str){s->raw, s->len};
        return 0;
    }
    char *buf = pt_arena_alloc(&d->c.arena, s->len ? s->len : 1);
    if (!buf)
        return jctx_fail(&d->c, PT_ERR_LIMIT, jdec_off(d), "out of scratch memory");
    *out = (struct pt_str){buf, jstr_decode(s, buf)};
    return 0;
}

int jlex_number(struct jdec *d, struct pt_str *num)
{
    const char *p = d->p;
    while (p < d->end && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' ||
                          *p == 'e' || *p == 'E'))
        p++;
    if (!json_number_syntax(d->p, (size_t)(p - d->p)))
        return jctx_fail(&d->c, PT_ERR_INVALID, jdec_off(d), "invalid number");
    *num = (struct pt_str){d->p, (size_t)(p - d->p)};
    d->p = p;
    return 0;
}

int jlex_literal(struct jdec *d, enum jtok t)
{
    static const char *const text[] = {
        [JT_TRUE] = "true", [JT_FALSE] = "false", [JT_NULL] = "null"};
    const char *lit = text[t];
    size_t n = strlen(lit);
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, lit, n) != 0)
        return jctx_fail(&d->c, PT_ERR_INVALID, jdec_off(d), "invalid literal");
    d->p += n;
    return 0;
}

static int expect_char(struct jdec *d, char ch, const char *what)
{
    skip_ws(d);
    if (d->p < d->end && *d->p == ch) {
        d->p++;
        return 0;
    }
    return jctx_fail(&d->c, PT_ERR_INVALID, jdec_off(d), "expected %s, got %s", what,
                     d->p == d->end ? "end of input" : "something else");
}

int jlex_obj_begin(struct jdec *d)
{
    TRY(jctx_enter(&d->c, jdec_off(d)));
    d->p++; /* '{', checked by the caller's peek */
    return 0;
}

int jlex_obj_next(struct jdec *d, bool *first, struct pt_str *key, struct jstr *raw_key)
{
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        jctx_leave(&d->c);
        return 0;
    }
    if (!*first) {
        if (d->p == d->end || *d->p != ',')
            return jctx_fail(&d->c, PT_ERR_INVALID, jdec_off(d), "expected ',' or '}' in object");
        d->p++;
        skip_ws(d);
    }
    *first = false;
    if (d->p == d->end || *d->p != '"')
        return jctx_fail(&d->c, PT_ERR_INVALID, jdec_off(d), "expected a string key in object");
    struct jstr tmp;
    struct jstr *s = raw_key ? raw_key : &tmp;
    TRY(jlex_string(d, s));
    TRY(jstr_get(d, s, key));
    return expect_char(d, ':', "':' after object key") < 0 ? -1 : 1;
}

int jlex_arr_begin(struct jdec *d)
{
    TRY(jctx_enter(&d->c, jdec_off(d)));
    d->p++;
    return 0;
}

int jlex_arr_next(struct jdec *d, bool *first)
{
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        jctx_leave(&d->c);
        return 0;
    }
    if (!*first) {
        if (d->p == d->end || *d->p != ',')
            return jctx_fail(&d->c, PT_ERR_INVALID, jdec_off(d), "expected ',' or ']' in array");
        d->p++;
    }
    *first = false;
    return 1;
}

int jkeys_push(struct jdec *d, struct pt_str key)
{
    if (d->nkeys == d->keys_cap) {
        d->keys_cap = d->keys_cap ? d->keys_cap * 2 : 64;
        d->keys = pt_xrealloc(d->keys, d->keys_cap * sizeof(*d->keys));
    }
    d->keys[d->nkeys++] = key;
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    const struct pt_str *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = n ? memcmp(x->ptr, y->ptr, n) : 0;
    if (r)
        return r;
    return x->len < y->len ? -1 : x->len > y->len;
}

int jkeys_check(struct jdec *d, size_t base, size_t offset)
{
    size_t n = d->nkeys - base;
    d->nkeys = base;
    if (n < 2)
        return 0;
    struct pt_str *k = d->keys + base;
    if (n == 2) {
        if (pt_str_eq(k[0], k[1]))
            goto dup;
        return 0;
    }
    qsort(k, n, sizeof(*k), key_cmp);
    for (size_t i = 1; i < n; i++) {
        if (pt_str_eq(k[i - 1], k[i])) {
            k += i;
            goto dup;
        }
    }
    return 0;
dup:
    return jctx_fail(&d->c, PT_ERR_INVALID, offset, "duplicate key \"%.*s\"",
                     (int)(k[0].len > 64 ? 64 : k[0].len), k[0].ptr);
}

int jlex_skip(struct jdec *d)
{
    enum jtok t = jlex_peek(d);
    switch (t) {
    case JT_OBJ: {
        TRY(jlex_obj_begin(d));
        bool first = true;
        size_t base = d->nkeys;
        struct pt_str key;
        int r;
        while ((r = jlex_obj_next(d, &first, &key, NULL)) > 0) {
            jkeys_push(d, key);
            TRY(jlex_skip(d));
        }
        TRY(r);
        return jkeys_check(d, base, jdec_off(d));
    }
    case JT_ARR: {
        TRY(jlex_arr_begin(d));
        bool first = true;
        int r;
        while ((r = jlex_arr_next(d, &first)) > 0)
            TRY(jlex_skip(d));
        return r;
    }
    case JT_STR: {
        struct jstr s;
        return jlex_string(d, &s);
    }
    case JT_NUM: {
        struct pt_str n;
        return jlex_number(d, &n);
    }
    case JT_TRUE:
    case JT_FALSE:
    case JT_NULL:
        return jlex_literal(d, t);
    default:
        return jdec_type_error(d, "a JSON value", t);
    }
}
