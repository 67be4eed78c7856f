/*
 * Percent-encoding helpers of the HTTP rule matcher: validation, the
 * canonical form literals are compared in, and the three decodings of
 * httprule.h (single-segment variables, multi-segment variables, query).
 */
#include "transcode/httprule_int.h"

#include "core/strutil.h"
#include "portico/errors.h"

static const char hex_upper[] = "0123456789ABCDEF";

bool pt_httprule_escapes_valid(struct pt_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] != '%')
            continue;
        if (i + 2 >= s.len)
            return false;
        if (pt_hex_value((unsigned char)s.ptr[i + 1]) < 0 ||
            pt_hex_value((unsigned char)s.ptr[i + 2]) < 0)
            return false;
        i += 2;
    }
    return true;
}

size_t pt_httprule_canon(struct pt_str s, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '%' && i + 2 < s.len) {
            int hi = pt_hex_value((unsigned char)s.ptr[i + 1]);
            int lo = pt_hex_value((unsigned char)s.ptr[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (unsigned char)(hi << 4 | lo);
                i += 2;
                if (pt_httprule_unreserved(c)) {
                    out[o++] = (char)c;
                } else {
                    out[o++] = '%';
                    out[o++] = hex_upper[c >> 4];
                    out[o++] = hex_upper[c & 15];
                }
                continue;
            }
        }
        /* Raw bytes a URI may not carry are compared as their escapes, so
         * a raw UTF-8 path matches the escaped literal that spells it. */
        if (c <= 0x20 || c >= 0x7f || c == '%') {
            out[o++] = '%';
            out[o++] = hex_upper[c >> 4];
            out[o++] = hex_upper[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

int pt_httprule_decode(struct pt_str s, enum pt_httprule_decode_mode mode, char *out, size_t *len)
{
    size_t o = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c == '+' && mode == PT_HTTPRULE_DECODE_FORM) {
            out[o++] = ' ';
            continue;
        }
        if (c != '%') {
            out[o++] = c;
            continue;
        }
        if (i + 2 >= s.len)
            return PT_ERR_INVALID;
        int hi = pt_hex_value((unsigned char)s.ptr[i + 1]);
        int lo = pt_hex_value((unsigned char)s.ptr[i + 2]);
        if (hi < 0 || lo < 0)
            return PT_ERR_INVALID;
        if (mode == PT_HTTPRULE_DECODE_KEEP_SLASH && hi == 2 && lo == 15) {
            memcpy(out + o, s.ptr + i, 3);
            o += 3;
        } else {
            out[o++] = (char)(hi << 4 | lo);
        }
        i += 2;
    }
    *len = o;
    return 0;
}

bool pt_httprule_utf8_valid(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

bool pt_httprule_field_overlap(struct pt_httprule_field a, struct pt_httprule_field b)
{
    uint32_t n = a.nseg < b.nseg ? a.nseg : b.nseg;
    for (uint32_t i = 0; i < n; i++)
        if (!pt_str_eq(a.seg[i], b.seg[i]))
            return false;
    return true;
}

void pt_httprule_field_split(struct pt_str path, struct pt_str *seg)
{
    size_t start = 0, k = 0;
    for (size_t i = 0; i <= path.len; i++) {
        if (i == path.len || path.ptr[i] == '.') {
            seg[k++] = (struct pt_str){path.ptr + start, i - start};
            start = i + 1;
        }
    }
}
