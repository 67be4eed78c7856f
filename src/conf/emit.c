/*
 * protobuf-c message -> YAML, driven only by descriptors: the inverse of
 * load.c, so pt_conf_load_message_string(emit(m)) packs byte-identical to m.
 *
 * Output is block style throughout (flow style only for the empty `{}` and
 * `[]`), two-space indentation, fields in descriptor order. A string is
 * written plain only when no YAML reader could take it for anything else;
 * otherwise it is double-quoted with escapes.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/conf_int.h"
#include "core/arena.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

struct out {
    char *buf;
    size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        while (cap < o->len + n + 1)
            cap *= 2;
        o->buf = pt_xrealloc(o->buf, cap);
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    put(o, buf, n < 0 ? 0 : (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void indent(struct out *o, unsigned n)
{
    static const char spaces[] = "                                ";
    while (n) {
        unsigned k = n < 32 ? n : 32;
        put(o, spaces, k);
        n -= k;
    }
}

/* ---- descriptors (the same rules as load.c) ---- */

static const void *cmember(const void *msg, unsigned offset)
{
    return (const char *)msg + offset;
}

static bool scalar_is_zero(const ProtobufCFieldDescriptor *fd, const void *p)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p == NULL;
    case PROTOBUF_C_TYPE_FLOAT: {
        float f;
        memcpy(&f, p, sizeof(f));
        return f == 0 && !signbit(f);
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double d;
        memcpy(&d, p, sizeof(d));
        return d == 0 && !signbit(d);
    }
    default: {
        size_t n = pt_conf_field_elem_size(fd);
        static const unsigned char zero[8];
        return memcmp(p, zero, n) == 0;
    }
    }
}

/* Is fd set in m, by the rules of protobuf-c's packer? */
static bool field_is_set(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    const void *p = cmember(m, fd->offset);
    if (fd->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)cmember(m, fd->quantifier_offset) > 0;
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)cmember(m, fd->quantifier_offset) == fd->id;
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(ProtobufCMessage *const *)p != NULL;
    if (fd->label == PROTOBUF_C_LABEL_OPTIONAL || fd->label == PROTOBUF_C_LABEL_REQUIRED) {
        if (fd->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = *(char *const *)p;
            return s != NULL && s != fd->default_value;
        }
        if (fd->label == PROTOBUF_C_LABEL_REQUIRED)
            return true;
        return *(const protobuf_c_boolean *)cmember(m, fd->quantifier_offset) != 0;
    }
    return !scalar_is_zero(fd, p);
}

/* ---- scalars ---- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool word_is(const char *s, size_t len, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == len && memcmp(*words, s, len) == 0)
            return true;
    return false;
}

/* Could a YAML reader (1.2 core, or 1.1 for other tools) resolve this plain
 * scalar as something other than a string? */
static bool ambiguous_word(const char *s, size_t len)
{
    static const char *const words[] = {
        "y",    "Y",    "yes",  "Yes",   "YES",   "n",    "N",    "no",   "No",
        "NO",   "on",   "On",   "ON",    "off",   "Off",  "OFF",  "=",    "<<",
        ".inf", ".Inf", ".INF", "-.inf", "+.inf", ".nan", ".NaN", ".NAN", NULL,
    };
    bool b;
    if (pt_conf_is_null_word(s, len) || pt_conf_parse_bool(s, len, &b) || word_is(s, len, words))
        return true;
    if (pt_conf_looks_numeric(s, len))
        return true;
    /* Anything number-like: 0x1f, 0o17, 1_000, 1:20 (YAML 1.1 base 60),
     * 1.2.3, 2001-12-14 (a timestamp to YAML 1.1 readers). */
    size_t i = 0;
    if (i < len && (s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    if (i < len && is_digit(s[i]))
        return true;
    return false;
}

static bool plain_ok(const char *s, size_t len)
{
    if (len == 0 || ambiguous_word(s, len))
        return false;
    if (s[0] == ' ' || s[len - 1] == ' ')
        return false;
    if (strchr("-?:,[]{}#&*!|>'\"%@`", s[0]))
        return false;
    if (len >= 3 && (memcmp(s, "...", 3) == 0))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f)
            return false;
        if (c == ':' && (i + 1 == len || s[i + 1] == ' '))
            return false;
        if (c == '#' && s[i - 1] == ' ')
            return false;
    }
    return true;
}

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid; *cp. */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* YAML's printable set, minus characters readers treat as line breaks or
 * byte-order marks. */
static bool printable_cp(uint32_t cp)
{
    if (cp < 0x20 || cp == 0x7f)
        return false;
    if (cp >= 0x80 && cp <= 0x9f)
        return false;
    if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
        return false;
    return true;
}

static void put_quoted(struct out *o, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    put(o, "\"", 1);
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        const char *esc = NULL;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\0':
            esc = "\\0";
            break;
        default:
            break;
        }
        if (esc) {
            puts_(o, esc);
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_seq(s + i, len - i, &cp);
        if (n == 0) {
            /* Not UTF-8: YAML cannot carry raw bytes; the escape reads back
             * as U+00xx (documented as lossy). */
            putf(o, "\\x%02x", c);
            i++;
        } else if (!printable_cp(cp)) {
            if (cp <= 0xff)
                putf(o, "\\x%02x", (unsigned)cp);
            else
                putf(o, "\\u%04x", (unsigned)cp);
            i += n;
        } else {
            put(o, str + i, n);
            i += n;
        }
    }
    put(o, "\"", 1);
}

static void put_string(struct out *o, const char *s, size_t len)
{
    if (plain_ok(s, len))
        put(o, s, len);
    else
        put_quoted(o, s, len);
}

static void put_base64(struct out *o, const uint8_t *d, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len == 0) {
        put(o, "\"\"", 2);
        return;
    }
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)d[i + 1] << 8;
        if (i + 2 < len)
            v |= d[i + 2];
        char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                     i + 1 < len ? tab[(v >> 6) & 63] : '=', i + 2 < len ? tab[v & 63] : '='};
        put(o, q, 4);
    }
}

/* The shortest decimal that reads back (through strtod, as the loader
 * does) as exactly v. */
static void put_double(struct out *o, double v, bool is_float)
{
    if (isnan(v)) {
        puts_(o, ".nan");
        return;
    }
    if (isinf(v)) {
        puts_(o, v < 0 ? "-.inf" : ".inf");
        return;
    }
    char buf[64];
    for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        double back = strtod(buf, NULL);
        if (is_float ? (float)back == (float)v && signbit(back) == signbit(v)
                     : memcmp(&back, &v, sizeof(v)) == 0)
            break;
    }
    puts_(o, buf);
}

static void put_enum(struct out *o, const ProtobufCEnumDescriptor *ed, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(ed, value);
    if (!v) {
        /* Unknown to this build; the loader will refuse it, visibly. */
        putf(o, "%d", value);
        return;
    }
    char prefix[128];
    pt_conf_upper_snake(ed->short_name, prefix, sizeof(prefix));
    size_t plen = strlen(prefix);
    const char *name = v->name;
    if (strncmp(name, prefix, plen) == 0 && name[plen] == '_' && name[plen + 1])
        name += plen + 1;
    char lower[128];
    size_t k = 0;
    for (; name[k] && k + 1 < sizeof(lower); k++)
        lower[k] = name[k] >= 'A' && name[k] <= 'Z' ? (char)(name[k] + 32) : name[k];
    lower[k] = '\0';
    put_string(o, lower, k);
}

/* ---- timestamps ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int pt_conf_timestamp_format(int64_t seconds, int32_t nanos, char *buf, size_t n)
{
    if (seconds < PT_CONF_TIMESTAMP_MIN || seconds > PT_CONF_TIMESTAMP_MAX || nanos < 0 ||
        nanos > 999999999)
        return -1;
    int64_t days = seconds / 86400, rem = seconds % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);
    int len = snprintf(buf, n, "%04d-%02u-%02uT%02d:%02d:%02d", (int)y, mo, d, (int)(rem / 3600),
                       (int)(rem / 60 % 60), (int)(rem % 60));
    if (nanos) {
        if (nanos % 1000000 == 0)
            len += snprintf(buf + len, n - (size_t)len, ".%03d", nanos / 1000000);
        else if (nanos % 1000 == 0)
            len += snprintf(buf + len, n - (size_t)len, ".%06d", nanos / 1000);
        else
            len += snprintf(buf + len, n - (size_t)len, ".%09d", nanos);
    }
    len += snprintf(buf + len, n - (size_t)len, "Z");
    return len;
}

static bool digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

int pt_conf_timestamp_parse(const char *s, size_t len, int64_t *seconds, int32_t *nanos)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y, mo, d, h, mi, se;
    if (len < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap ? 1u : 0u) ||
        h > 23 || mi > 59 || se > 59)
        return -1;
    size_t i = 19;
    int32_t ns = 0;
    if (i < len && s[i] == '.') {
        i++;
        size_t nd = 0;
        while (i < len && is_digit(s[i])) {
            if (nd == 9)
                return -1;
            ns = ns * 10 + (s[i] - '0');
            nd++;
            i++;
        }
        if (nd == 0)
            return -1;
        for (; nd < 9; nd++)
            ns *= 10;
    }
    int64_t offset = 0;
    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        unsigned oh, om;
        if (!digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset = (int64_t)(oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    if (t < PT_CONF_TIMESTAMP_MIN || t > PT_CONF_TIMESTAMP_MAX)
        return -1;
    *seconds = t;
    *nanos = ns;
    return 0;
}

/* ---- values ---- */

static void put_scalar(struct out *o, const ProtobufCFieldDescriptor *fd, const void *p)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        putf(o, "%" PRId32, *(const int32_t *)p);
        return;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        putf(o, "%" PRId64, *(const int64_t *)p);
        return;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        putf(o, "%" PRIu32, *(const uint32_t *)p);
        return;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        putf(o, "%" PRIu64, *(const uint64_t *)p);
        return;
    case PROTOBUF_C_TYPE_FLOAT:
        put_double(o, *(const float *)p, true);
        return;
    case PROTOBUF_C_TYPE_DOUBLE:
        put_double(o, *(const double *)p, false);
        return;
    case PROTOBUF_C_TYPE_BOOL:
        puts_(o, *(const protobuf_c_boolean *)p ? "true" : "false");
        return;
    case PROTOBUF_C_TYPE_ENUM:
        put_enum(o, fd->descriptor, *(const int *)p);
        return;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        put_string(o, s ? s : "", s ? strlen(s) : 0);
        return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        put_base64(o, b->data, b->len);
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return;
    }
}

static bool message_is_block(const ProtobufCMessage *m);
static void put_inline_message(struct out *o, const ProtobufCMessage *m);
static void put_block_message(struct out *o, const ProtobufCMessage *m, unsigned ind, bool first);

static bool field_value_is_block(const ProtobufCFieldDescriptor *fd, const void *p)
{
    return fd->type == PROTOBUF_C_TYPE_MESSAGE && message_is_block(*(ProtobufCMessage *const *)p);
}

static bool message_is_block(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (pt_conf_is_wrapper(d) || d == &google__protobuf__timestamp__descriptor)
        return false;
    if (d == &google__protobuf__value__descriptor) {
        const Google__Protobuf__Value *v = (const Google__Protobuf__Value *)m;
        if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE && v->struct_value)
            return message_is_block(&v->struct_value->base);
        if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE && v->list_value)
            return message_is_block(&v->list_value->base);
        return false;
    }
    for (unsigned i = 0; i < d->n_fields; i++)
        if (field_is_set(m, &d->fields[i]))
            return true;
    return false;
}

static void put_inline_message(struct out *o, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (pt_conf_is_wrapper(d)) {
        put_scalar(o, &d->fields[0], cmember(m, d->fields[0].offset));
    } else if (d == &google__protobuf__timestamp__descriptor) {
        const Google__Protobuf__Timestamp *t = (const Google__Protobuf__Timestamp *)m;
        char buf[64];
        if (pt_conf_timestamp_format(t->seconds, t->nanos, buf, sizeof(buf)) > 0)
            puts_(o, buf);
        else /* out of range: written so the loader refuses it, visibly */
            putf(o, "\"invalid timestamp %" PRId64 "s %" PRId32 "ns\"", t->seconds, t->nanos);
    } else if (d == &google__protobuf__value__descriptor) {
        const Google__Protobuf__Value *v = (const Google__Protobuf__Value *)m;
        switch (v->kind_case) {
        case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
            put_double(o, v->number_value, false);
            break;
        case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
            put_string(o, v->string_value, strlen(v->string_value));
            break;
        case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
            puts_(o, v->bool_value ? "true" : "false");
            break;
        case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
            puts_(o, "{}");
            break;
        case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
            puts_(o, "[]");
            break;
        default:
            puts_(o, "null");
            break;
        }
    } else if (d == &google__protobuf__list_value__descriptor) {
        puts_(o, "[]");
    } else {
        puts_(o, "{}");
    }
}

/* One value after "key:" or "-": inline on the same line, or a block on
 * the following lines (a mapping under a key) or continuing this one (a
 * mapping or list under "-"). */
static void put_value(struct out *o, const ProtobufCFieldDescriptor *fd, const void *p,
                      unsigned ind, bool after_dash)
{
    if (!field_value_is_block(fd, p)) {
        put(o, " ", 1);
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
            put_inline_message(o, *(ProtobufCMessage *const *)p);
        else
            put_scalar(o, fd, p);
        put(o, "\n", 1);
        return;
    }
    if (after_dash) {
        put(o, " ", 1);
        put_block_message(o, *(ProtobufCMessage *const *)p, ind, true);
    } else {
        put(o, "\n", 1);
        put_block_message(o, *(ProtobufCMessage *const *)p, ind, false);
    }
}

static void put_key_line(struct out *o, unsigned ind, bool *first, const char *key, size_t len)
{
    if (!*first)
        indent(o, ind);
    *first = false;
    put_string(o, key, len);
    put(o, ":", 1);
}

static void put_sequence(struct out *o, const ProtobufCFieldDescriptor *fd, const void *arr,
                         size_t n, unsigned ind, bool first)
{
    size_t size = pt_conf_field_elem_size(fd);
    for (size_t i = 0; i < n; i++) {
        if (!first)
            indent(o, ind);
        first = false;
        put(o, "-", 1);
        put_value(o, fd, (const char *)arr + i * size, ind + 2, true);
    }
}

static void put_map(struct out *o, const ProtobufCFieldDescriptor *fd,
                    ProtobufCMessage *const *entries, size_t n, unsigned ind, bool first)
{
    const ProtobufCMessageDescriptor *ed = fd->descriptor;
    const ProtobufCFieldDescriptor *kfd = &ed->fields[0], *vfd = &ed->fields[1];
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMessage *e = entries[i];
        if (!first)
            indent(o, ind);
        first = false;
        struct out key = {0};
        put_scalar(&key, kfd, cmember(e, kfd->offset));
        put(o, key.buf ? key.buf : "\"\"", key.buf ? key.len : 2);
        free(key.buf);
        put(o, ":", 1);
        put_value(o, vfd, cmember(e, vfd->offset), ind + 2, false);
    }
}

static void put_block_message(struct out *o, const ProtobufCMessage *m, unsigned ind, bool first)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &google__protobuf__value__descriptor) {
        const Google__Protobuf__Value *v = (const Google__Protobuf__Value *)m;
        if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE)
            put_block_message(o, &v->struct_value->base, ind, first);
        else
            put_block_message(o, &v->list_value->base, ind, first);
        return;
    }
    if (d == &google__protobuf__list_value__descriptor) {
        const Google__Protobuf__ListValue *l = (const Google__Protobuf__ListValue *)m;
        put_sequence(o, &d->fields[0], l->values, l->n_values, ind, first);
        return;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (!field_is_set(m, fd))
            continue;
        const void *p = cmember(m, fd->offset);
        if (d == &google__protobuf__struct__descriptor) {
            put_map(o, fd, *(ProtobufCMessage *const *const *)p,
                    *(const size_t *)cmember(m, fd->quantifier_offset), ind, first);
            return;
        }
        put_key_line(o, ind, &first, fd->name, strlen(fd->name));
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)cmember(m, fd->quantifier_offset);
            put(o, "\n", 1);
            if (fd->type == PROTOBUF_C_TYPE_MESSAGE && pt_conf_is_map_entry(fd->descriptor))
                put_map(o, fd, *(ProtobufCMessage *const *const *)p, n, ind + 2, false);
            else
                put_sequence(o, fd, *(void *const *)p, n, ind + 2, false);
        } else {
            put_value(o, fd, p, ind + 2, false);
        }
    }
}

char *pt_conf_emit_yaml(const ProtobufCMessage *msg, size_t *len)
{
    struct out o = {0};
    put(&o, "", 0);
    if (message_is_block(msg)) {
        put_block_message(&o, msg, 0, true);
    } else {
        put_inline_message(&o, msg);
        put(&o, "\n", 1);
    }
    if (len)
        *len = o.len;
    return o.buf;
}
