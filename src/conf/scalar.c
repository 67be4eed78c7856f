/*
 * Scalar conversions for the loader. YAML leaves scalar types to the
 * application; we follow the YAML 1.2 core schema (so "yes" and "on" are
 * strings, not booleans) restricted to decimal numbers, as proto3 JSON does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_int.h"
#include "core/arena.h"
#include "core/strutil.h"
#include "portico/errors.h"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool all_digits(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

/* Magnitude of a digit string; false on overflow. */
static bool digits_value(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

enum pt_conf_num pt_conf_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    bool negative = false;
    if (len && (s[0] == '+' || s[0] == '-')) {
        negative = s[0] == '-';
        s++;
        len--;
    }
    if (!all_digits(s, len))
        return PT_CONF_NUM_SYNTAX;
    uint64_t v;
    if (!digits_value(s, len, &v) || v > max || (negative && v != 0))
        return PT_CONF_NUM_RANGE;
    *out = v;
    return PT_CONF_NUM_OK;
}

enum pt_conf_num pt_conf_parse_int(const char *s, size_t len, int64_t min, int64_t max,
                                   int64_t *out)
{
    bool negative = false;
    if (len && (s[0] == '+' || s[0] == '-')) {
        negative = s[0] == '-';
        s++;
        len--;
    }
    if (!all_digits(s, len))
        return PT_CONF_NUM_SYNTAX;
    uint64_t mag;
    if (!digits_value(s, len, &mag))
        return PT_CONF_NUM_RANGE;
    int64_t v;
    if (negative) {
        if (mag > (uint64_t)INT64_MAX + 1u)
            return PT_CONF_NUM_RANGE;
        v = mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return PT_CONF_NUM_RANGE;
        v = (int64_t)mag;
    }
    if (v < min || v > max)
        return PT_CONF_NUM_RANGE;
    *out = v;
    return PT_CONF_NUM_OK;
}

/* [-+]? ( "." digits | digits ( "." digits? )? ) ( [eE] [-+]? digits )? */
bool pt_conf_looks_numeric(const char *s, size_t len)
{
    size_t i = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    size_t int_digits = 0, frac_digits = 0;
    while (i < len && is_digit(s[i])) {
        i++;
        int_digits++;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && is_digit(s[i])) {
            i++;
            frac_digits++;
        }
    }
    if (int_digits == 0 && frac_digits == 0)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t exp_digits = 0;
        while (i < len && is_digit(s[i])) {
            i++;
            exp_digits++;
        }
        if (exp_digits == 0)
            return false;
    }
    return i == len;
}

enum pt_conf_num pt_conf_parse_double(const char *s, size_t len, double *out)
{
    if (!pt_conf_looks_numeric(s, len))
        return PT_CONF_NUM_SYNTAX;
    char small[64];
    char *copy = len < sizeof(small) ? small : pt_xmalloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    double v = strtod(copy, NULL);
    if (copy != small)
        free(copy);
    if (!isfinite(v))
        return PT_CONF_NUM_RANGE;
    *out = v;
    return PT_CONF_NUM_OK;
}

static bool word_in(const char *s, size_t len, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == len && memcmp(*words, s, len) == 0)
            return true;
    return false;
}

bool pt_conf_parse_bool(const char *s, size_t len, bool *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", NULL};
    static const char *const no[] = {"false", "False", "FALSE", NULL};
    if (word_in(s, len, yes)) {
        *out = true;
        return true;
    }
    if (word_in(s, len, no)) {
        *out = false;
        return true;
    }
    return false;
}

bool pt_conf_is_null_word(const char *s, size_t len)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    return word_in(s, len, nulls);
}

static int b64_digit(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int pt_conf_base64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len)
{
    size_t pad = 0;
    while (len && s[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    /* One leftover character carries only 6 bits: never valid. */
    if (len % 4 == 1 || (pad && (len + pad) % 4 != 0))
        return PT_ERR_CONFIG;
    uint8_t *buf = pt_xmalloc(len / 4 * 3 + 3);
    size_t n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int d = b64_digit(s[i]);
        if (d < 0) {
            free(buf);
            return PT_ERR_CONFIG;
        }
        acc = (acc << 6) | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (uint8_t)(acc >> bits);
        }
    }
    *out = buf;
    *out_len = n;
    return 0;
}

size_t pt_conf_edit_distance(const char *a, size_t alen, const char *b, size_t blen, size_t cap)
{
    size_t diff = alen > blen ? alen - blen : blen - alen;
    if (diff > cap || blen > 255)
        return cap + 1;
    size_t row[256];
    for (size_t j = 0; j <= blen; j++)
        row[j] = j;
    for (size_t i = 1; i <= alen; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= blen; j++) {
            size_t up = row[j];
            size_t cost = pt_ascii_lower(a[i - 1]) == pt_ascii_lower(b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[blen] > cap ? cap + 1 : row[blen];
}
