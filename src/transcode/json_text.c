/*
 * Text helpers of the JSON codec: UTF-8 validation, JSON string escaping,
 * base64 both ways, exact integer reading of JSON numbers, and the shortest
 * round-trip formatting of doubles and floats.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/strutil.h"
#include "transcode/json_int.h"

size_t utf8_seq_len(const uint8_t *p, const uint8_t *end)
{
    uint8_t b = p[0];
    if (b < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (b >= 0xc2 && b <= 0xdf) {
        n = 2;
        cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 3;
        cp = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 4;
        cp = b & 0x07;
    } else {
        return 0; /* continuation byte, overlong lead (c0/c1) or > U+10FFFF */
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0; /* overlong or out of range */
    if (cp >= 0xd800 && cp <= 0xdfff)
        return 0; /* surrogates are not characters */
    return n;
}

bool utf8_valid(const uint8_t *p, size_t n)
{
    if (n == 0)
        return true;
    const uint8_t *end = p + n;
    while (p < end) {
        /* Fast path: eight ASCII bytes at a time. */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w & 0x8080808080808080ull)
                break;
            p += 8;
        }
        if (p == end)
            break;
        size_t k = utf8_seq_len(p, end);
        if (k == 0)
            return false;
        p += k;
    }
    return true;
}

/* 0: copy as is; 'u': \u00XX; else the letter after the backslash. */
static const char escape_of[128] = {
    ['\b'] = 'b',  ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't', ['"'] = '"',
    ['\\'] = '\\', [0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u',
    [0x05] = 'u',  [0x06] = 'u', [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u', [0x0f] = 'u',
    [0x10] = 'u',  [0x11] = 'u', [0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u',
    [0x16] = 'u',  [0x17] = 'u', [0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u',
    [0x1c] = 'u',  [0x1d] = 'u', [0x1e] = 'u', [0x1f] = 'u',
};

int jout_string(struct jctx *c, const char *s, size_t n)
{
    /* Worst case every byte becomes \u00XX. */
    if (n > (SIZE_MAX - 2) / 6)
        return jctx_fail(c, PT_ERR_LIMIT, 0, "string too long");
    TRY(jout_reserve(c, n + 2));
    char *o = c->out->data + c->out->len;
    size_t k = 0;
    o[k++] = '"';
    size_t i = 0;
    while (i < n) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x80 || !escape_of[ch]) {
            o[k++] = (char)ch;
            i++;
            continue;
        }
        /* An escape: make room for the rest at the worst case, once. */
        c->out->len += k;
        TRY(jout_reserve(c, 6 * (n - i) + 1));
        o = c->out->data + c->out->len;
        k = 0;
        while (i < n) {
            ch = (unsigned char)s[i++];
            char e = ch < 0x80 ? escape_of[ch] : 0;
            if (!e) {
                o[k++] = (char)ch;
            } else if (e == 'u') {
                static const char hex[] = "0123456789abcdef";
                o[k++] = '\\';
                o[k++] = 'u';
                o[k++] = '0';
                o[k++] = '0';
                o[k++] = hex[ch >> 4];
                o[k++] = hex[ch & 15];
            } else {
                o[k++] = '\\';
                o[k++] = e;
            }
        }
        break;
    }
    o[k++] = '"';
    c->out->len += k;
    return 0;
}

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int jout_base64(struct jctx *c, const uint8_t *p, size_t n)
{
    if (n > (SIZE_MAX / 4) * 3 - 8)
        return jctx_fail(c, PT_ERR_LIMIT, 0, "bytes too long");
    size_t need = (n + 2) / 3 * 4 + 2;
    TRY(jout_reserve(c, need));
    char *o = c->out->data + c->out->len;
    size_t k = 0, i = 0;
    o[k++] = '"';
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        o[k++] = b64_std[v >> 18];
        o[k++] = b64_std[(v >> 12) & 63];
        o[k++] = b64_std[(v >> 6) & 63];
        o[k++] = b64_std[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        o[k++] = b64_std[v >> 18];
        o[k++] = b64_std[(v >> 12) & 63];
        o[k++] = '=';
        o[k++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        o[k++] = b64_std[v >> 18];
        o[k++] = b64_std[(v >> 12) & 63];
        o[k++] = b64_std[(v >> 6) & 63];
        o[k++] = '=';
    }
    o[k++] = '"';
    c->out->len += k;
    return 0;
}

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

long base64_decode(const char *in, size_t n, uint8_t *out)
{
    /* Padding, when present, must complete the last quantum exactly. */
    size_t pad = 0;
    while (pad < n && pad < 2 && in[n - 1 - pad] == '=')
        pad++;
    size_t data = n - pad;
    if (pad && n % 4 != 0)
        return -1;
    if (data % 4 == 1)
        return -1;
    size_t k = 0, i = 0;
    for (; i + 4 <= data; i += 4) {
        int a = b64_value((unsigned char)in[i]), b = b64_value((unsigned char)in[i + 1]),
            cc = b64_value((unsigned char)in[i + 2]), d = b64_value((unsigned char)in[i + 3]);
        if ((a | b | cc | d) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)cc << 6 | (uint32_t)d;
        out[k++] = (uint8_t)(v >> 16);
        out[k++] = (uint8_t)(v >> 8);
        out[k++] = (uint8_t)v;
    }
    size_t rest = data - i;
    if (rest) {
        int a = b64_value((unsigned char)in[i]), b = b64_value((unsigned char)in[i + 1]);
        int cc = rest == 3 ? b64_value((unsigned char)in[i + 2]) : 0;
        if ((a | b | cc) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)cc << 6;
        out[k++] = (uint8_t)(v >> 16);
        if (rest == 3)
            out[k++] = (uint8_t)(v >> 8);
        if (pad && pad != 4 - rest)
            return -1;
    } else if (pad) {
        return -1;
    }
    return (long)k;
}

size_t fmt_i64(int64_t v, char *buf)
{
    if (v >= 0)
        return pt_u64_format((uint64_t)v, buf);
    buf[0] = '-';
    return 1 + pt_u64_format(0 - (uint64_t)v, buf + 1);
}

/* The shortest of %.15g, %.16g, %.17g that reads back as v. For a normal
 * double, 15-digit decimals are spaced wider than its rounding interval, so
 * a shorter round-tripping decimal, padded, is exactly what %.15g prints
 * (%g drops the trailing zeros); 17 digits always round-trip. */
size_t fmt_double(double v, char *buf)
{
    if (v == 0)
        return (size_t)snprintf(buf, 32, signbit(v) ? "-0" : "0");
    if (fabs(v) < 1e15 && v == (double)(int64_t)v)
        return fmt_i64((int64_t)v, buf);
    /* Subnormals have fewer significant bits: search from one digit. */
    int n = 0;
    for (int prec = fabs(v) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
        n = snprintf(buf, 32, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v)
            break;
    }
    return (size_t)n;
}

/* As json_format: the shortest of 6..9 significant digits that reads back
 * as the same float. */
size_t fmt_float(float v, char *buf)
{
    if (v == 0)
        return (size_t)snprintf(buf, 32, signbit(v) ? "-0" : "0");
    if (fabsf(v) < 1e6f && v == (float)(int32_t)v)
        return fmt_i64((int64_t)v, buf);
    int n = 0;
    for (int prec = 6; prec <= 9; prec++) {
        n = snprintf(buf, 32, "%.*g", prec, (double)v);
        if (prec == 9 || strtof(buf, NULL) == v)
            break;
    }
    return (size_t)n;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

bool json_number_syntax(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i == n)
        return false;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && is_digit(s[i]))
            i++;
    } else {
        return false;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i == n || !is_digit(s[i]))
            return false;
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i == n || !is_digit(s[i]))
            return false;
        while (i < n && is_digit(s[i]))
            i++;
    }
    return i == n;
}

enum num_int num_to_int(const char *s, size_t n, bool *neg, uint64_t *mag)
{
    size_t i = 0;
    *neg = false;
    *mag = 0;
    if (i < n && s[i] == '-') {
        *neg = true;
        i++;
    }
    /* Digits of the mantissa, without the point: int part then fraction. */
    size_t int_start = i;
    while (i < n && is_digit(s[i]))
        i++;
    size_t int_end = i, frac_start = i, frac_end = i;
    if (i < n && s[i] == '.') {
        frac_start = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        frac_end = i;
    }
    int64_t exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        while (i < n && is_digit(s[i])) {
            if (exp < 100000) /* far beyond any 64-bit value either way */
                exp = exp * 10 + (s[i] - '0');
            i++;
        }
        if (eneg)
            exp = -exp;
    }
    if (i != n || int_end == int_start)
        return NUM_INT_SYNTAX;
    /* value = digits(int . frac) * 10^(exp - fraclen). Walk the digits;
     * those past the decimal point (after applying exp) must be zero. */
    size_t ndig = (int_end - int_start) + (frac_end - frac_start);
    int64_t point = (int64_t)(int_end - int_start) + exp; /* digits before the point */
    uint64_t v = 0;
    for (size_t k = 0; k < ndig; k++) {
        char ch =
            k < int_end - int_start ? s[int_start + k] : s[frac_start + k - (int_end - int_start)];
        int dv = ch - '0';
        if ((int64_t)k >= point) {
            if (dv != 0)
                return NUM_INT_FRACTION;
            continue;
        }
        if (v > (UINT64_MAX - (uint64_t)dv) / 10)
            return NUM_INT_RANGE;
        v = v * 10 + (uint64_t)dv;
    }
    /* Trailing zeros implied by a positive exponent. */
    if (v != 0) {
        for (int64_t k = (int64_t)ndig; k < point; k++) {
            if (v > UINT64_MAX / 10)
                return NUM_INT_RANGE;
            v *= 10;
        }
    }
    *mag = v;
    return NUM_INT_OK;
}

int num_to_float(const char *s, size_t n, float *out)
{
    char small[64];
    char *buf = n < sizeof(small) ? small : pt_xmalloc(n + 1);
    memcpy(buf, s, n);
    buf[n] = '\0';
    float v = strtof(buf, NULL);
    if (buf != small)
        free(buf);
    *out = v;
    return isinf(v) ? -1 : 0;
}

int num_to_double(const char *s, size_t n, double *out)
{
    char small[64];
    char *buf = n < sizeof(small) ? small : pt_xmalloc(n + 1);
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    double v = strtod(buf, NULL);
    int rc = 0;
    /* ERANGE is also set on underflow, which is fine (rounds to 0 or a
     * subnormal); only an infinite result is out of range. */
    if (isinf(v))
        rc = -1;
    if (buf != small)
        free(buf);
    *out = v;
    return rc;
}
