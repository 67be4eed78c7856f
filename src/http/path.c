#include "http/path.h"

#include "core/strutil.h"
#include "portico/errors.h"

enum byte_class {
    B_LITERAL = 0,
    B_REJECT,  /* never valid in a request-target */
    B_ENCODE,  /* valid only percent-encoded in a path */
    B_PERCENT, /* starts %XX */
    B_SLASH,
};

static const char hex_upper[] = "0123456789ABCDEF";

static enum byte_class classify(unsigned char c)
{
    if (c < 0x20 || c == 0x7f || c == ' ' || c == '#')
        return B_REJECT;
    if (c >= 0x80)
        return B_ENCODE;
    switch (c) {
    case '"':
    case '<':
    case '>':
    case '\\':
    case '^':
    case '`':
    case '{':
    case '|':
    case '}':
    case '?':
        return B_ENCODE;
    case '%':
        return B_PERCENT;
    case '/':
        return B_SLASH;
    default:
        return B_LITERAL;
    }
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/*
 * The output is built as R = "/" followed by "<segment>/" for every segment
 * kept so far. Appending and dropping the last segment are then both cheap
 * and need no side stack: a raw '/' in the output is always a separator,
 * because every '/' that was data stays "%2F". The final path is R without
 * its last '/' (or "/" when R is "/").
 */
struct out_buf {
    char *p;
    size_t cap;
    size_t len;
};

static bool put(struct out_buf *o, char c)
{
    if (o->len >= o->cap)
        return false;
    o->p[o->len++] = c;
    return true;
}

static bool put_encoded(struct out_buf *o, unsigned char v)
{
    return put(o, '%') && put(o, hex_upper[v >> 4]) && put(o, hex_upper[v & 15]);
}

static void drop_last_segment(struct out_buf *o)
{
    if (o->len <= 1)
        return; /* ".." at the root stays at the root */
    size_t k = o->len - 1;
    while (k > 0 && o->p[k - 1] != '/')
        k--;
    o->len = k;
}

int pt_path_normalize(struct pt_str in, char *out, size_t cap, size_t *out_len,
                      const struct pt_path_opts *opts)
{
    bool keep_slashes = opts && opts->keep_duplicate_slashes;
    const unsigned char *s = (const unsigned char *)in.ptr;
    struct out_buf o = {out, cap, 0};

    if (in.len == 1 && s[0] == '*') {
        if (!put(&o, '*') || !put(&o, '\0'))
            return PT_ERR_LIMIT;
        *out_len = 1;
        return 0;
    }
    if (in.len == 0 || s[0] != '/')
        return PT_ERR_BAD_REQUEST;
    if (!put(&o, '/'))
        return PT_ERR_LIMIT;

    size_t i = 1;
    for (;;) {
        size_t seg_start = o.len;
        while (i < in.len && s[i] != '/') {
            unsigned char c = s[i];
            bool ok = true;
            switch (classify(c)) {
            case B_REJECT:
                return PT_ERR_BAD_REQUEST;
            case B_PERCENT: {
                int hi = i + 2 < in.len ? pt_hex_value((unsigned char)s[i + 1]) : -1;
                int lo = hi >= 0 ? pt_hex_value((unsigned char)s[i + 2]) : -1;
                if (lo < 0)
                    return PT_ERR_BAD_REQUEST;
                unsigned char v = (unsigned char)(hi << 4 | lo);
                ok = is_unreserved(v) ? put(&o, (char)v) : put_encoded(&o, v);
                i += 3;
                break;
            }
            case B_ENCODE:
                ok = put_encoded(&o, c);
                i++;
                break;
            case B_LITERAL:
            case B_SLASH:
                ok = put(&o, (char)c);
                i++;
                break;
            }
            if (!ok)
                return PT_ERR_LIMIT;
        }

        /* The segment is now in canonical form, so a decoded "%2e" is a dot
         * like any other. A dot segment that ends the path leaves an empty
         * segment behind ("/a/b/.." is "/a/"), as RFC 3986 does. */
        bool last = i >= in.len;
        size_t seg_len = o.len - seg_start;
        const char *seg = out + seg_start;
        bool keep_segment = true;
        if (seg_len == 1 && seg[0] == '.') {
            o.len = seg_start;
            keep_segment = last;
        } else if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') {
            o.len = seg_start;
            drop_last_segment(&o);
            keep_segment = last;
        } else if (seg_len == 0) {
            keep_segment = last || keep_slashes;
        }
        if (keep_segment && !put(&o, '/'))
            return PT_ERR_LIMIT;
        if (last)
            break;
        i++;
    }

    if (o.len > 1)
        o.len--;
    if (o.len >= o.cap)
        return PT_ERR_LIMIT;
    out[o.len] = '\0';
    *out_len = o.len;
    return 0;
}

static bool is_authority_byte(unsigned char c)
{
    if (is_unreserved(c))
        return true;
    switch (c) {
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
    case ':':
    case '[':
    case ']':
    case '%':
        return true;
    default:
        return false;
    }
}

static bool has_scheme(struct pt_str t, struct pt_str scheme)
{
    return pt_str_has_prefix_nocase(t, scheme);
}

int pt_http_target_parse(struct pt_str target, struct pt_str *authority, struct pt_str *path,
                         struct pt_str *query)
{
    static const char root[] = "/";
    const unsigned char *s = (const unsigned char *)target.ptr;

    if (target.len == 0)
        return PT_ERR_BAD_REQUEST;
    for (size_t i = 0; i < target.len; i++)
        if (classify(s[i]) == B_REJECT)
            return PT_ERR_BAD_REQUEST;

    *authority = (struct pt_str){target.ptr, 0};
    *query = PT_STR_NULL;

    if (target.len == 1 && s[0] == '*') {
        *path = target;
        return 0;
    }

    size_t start;
    if (s[0] == '/') {
        start = 0;
    } else {
        size_t skip;
        if (has_scheme(target, PT_STR("http://")))
            skip = 7;
        else if (has_scheme(target, PT_STR("https://")))
            skip = 8;
        else
            return PT_ERR_BAD_REQUEST;
        size_t end = skip;
        while (end < target.len && s[end] != '/' && s[end] != '?') {
            if (!is_authority_byte(s[end]))
                return PT_ERR_BAD_REQUEST;
            end++;
        }
        if (end == skip)
            return PT_ERR_BAD_REQUEST;
        *authority = (struct pt_str){target.ptr + skip, end - skip};
        start = end;
    }

    size_t q = start;
    while (q < target.len && s[q] != '?')
        q++;
    if (q == start)
        *path = (struct pt_str){root, 1}; /* "http://h?x" and "http://h" mean "/" */
    else
        *path = (struct pt_str){target.ptr + start, q - start};
    if (q < target.len)
        *query = (struct pt_str){target.ptr + q + 1, target.len - q - 1};
    return 0;
}
