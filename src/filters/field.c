#include "filters/field.h"

#include <stdio.h>
#include <string.h>

#include "core/arena.h"

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool eq_nocase(struct pt_str a, const char *b)
{
    size_t n = strlen(b);
    if (a.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(a.ptr[i]) != b[i])
            return false;
    return true;
}

/* Framing, connection management and routing input: codecs and the proxy
 * own these, and a filter changing them would desynchronize the message
 * from what the gateway frames and routes. */
static const char *const managed[] = {
    "connection", "keep-alive", "transfer-encoding", "upgrade",          "te",
    "trailer",    "host",       "content-length",    "proxy-connection",
};

const char *pt_filters_name_problem(struct pt_str name)
{
    if (name.len == 0)
        return "a header name cannot be empty";
    if (name.ptr[0] == ':')
        return "pseudo-headers (\":name\") are not header fields and cannot be changed";
    if (name.len > PT_FILTERS_MAX_NAME)
        return "a header name is limited to 256 bytes";
    for (size_t i = 0; i < name.len; i++)
        if (!is_tchar((unsigned char)name.ptr[i]))
            return "a header name must be a token: letters, digits and !#$%&'*+-.^_`|~";
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++)
        if (eq_nocase(name, managed[i]))
            return "this is a hop-by-hop or framing header that the gateway manages";
    return NULL;
}

bool pt_filters_value_ok(struct pt_str value, char *why, size_t n)
{
    if (value.len > PT_FILTERS_MAX_VALUE) {
        snprintf(why, n, "a header value is limited to %u bytes (this one has %zu)",
                 PT_FILTERS_MAX_VALUE, value.len);
        return false;
    }
    for (size_t i = 0; i < value.len; i++) {
        unsigned char c = (unsigned char)value.ptr[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            snprintf(why, n,
                     "a header value cannot contain control characters (byte 0x%02x at "
                     "offset %zu)",
                     c, i);
            return false;
        }
    }
    if (value.len && (value.ptr[0] == ' ' || value.ptr[0] == '\t' ||
                      value.ptr[value.len - 1] == ' ' || value.ptr[value.len - 1] == '\t')) {
        snprintf(why, n, "a header value cannot start or end with a space or tab");
        return false;
    }
    return true;
}

char *pt_filters_lower_dup(struct pt_str s)
{
    char *p = pt_xmalloc(s.len + 1);
    for (size_t i = 0; i < s.len; i++)
        p[i] = lower(s.ptr[i]);
    p[s.len] = '\0';
    return p;
}

const char *pt_filters_printable(struct pt_str s, char *buf, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        char esc[4];
        size_t k;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            k = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            esc[0] = (char)c;
            k = 1;
        } else {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            k = 4;
        }
        /* Keep room for "..." and the NUL. */
        if (o + k + 4 > n) {
            if (o + 4 <= n) {
                memcpy(buf + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(buf + o, esc, k);
        o += k;
    }
    buf[o < n ? o : n - 1] = '\0';
    return buf;
}
