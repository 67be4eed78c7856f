/*
 * The well-known types' special JSON forms, both directions:
 *   Timestamp   "1972-01-01T10:00:20.021Z" (RFC 3339; offsets accepted on
 *               input, Z with 0/3/6/9 fraction digits on output; years 1..9999)
 *   Duration    "-1.500s" (|seconds| <= 315576000000, nanos with the same sign)
 *   FieldMask   "a.fooBar,b" (paths lowerCamelCase in JSON, snake_case on the wire)
 *   Struct, Value, ListValue, NullValue   any JSON value
 *   wrappers    the bare wrapped value
 *   Any         {"@type": url, ...fields} or {"@type": url, "value": <special form>}
 * Field numbers are those of the google/protobuf protos, fixed forever.
 */
#include <math.h>
#include <stdio.h>

#include "transcode/json_int.h"

#define TS_MIN (-62135596800ll) /* 0001-01-01T00:00:00Z */
#define TS_MAX 253402300799ll   /* 9999-12-31T23:59:59Z */
#define DUR_MAX 315576000000ll

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
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

static int digits(const char *s, size_t n, unsigned *v)
{
    unsigned x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (unsigned)(s[i] - '0');
    }
    *v = x;
    return 0;
}

/* RFC 3339 date-time to seconds and nanos; -1 if invalid or out of range. */
static int parse_timestamp(struct pt_str s, int64_t *secs, int32_t *nanos)
{
    const char *p = s.ptr;
    size_t n = s.len;
    unsigned y, mo, d, h, mi, se;
    if (n < 20 || p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':' ||
        digits(p, 4, &y) || digits(p + 5, 2, &mo) || digits(p + 8, 2, &d) ||
        digits(p + 11, 2, &h) || digits(p + 14, 2, &mi) || digits(p + 17, 2, &se))
        return -1;
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || se > 59)
        return -1;
    size_t i = 19;
    uint32_t ns = 0;
    if (i < n && p[i] == '.') {
        size_t start = ++i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        size_t nd = i - start;
        if (nd < 1 || nd > 9)
            return -1;
        for (size_t k = 0; k < 9; k++)
            ns = ns * 10 + (k < nd ? (uint32_t)(p[start + k] - '0') : 0);
    }
    int64_t offset = 0;
    if (i < n && p[i] == 'Z') {
        i++;
    } else if (i + 6 == n && (p[i] == '+' || p[i] == '-') && p[i + 3] == ':') {
        unsigned oh, om;
        if (digits(p + i + 1, 2, &oh) || digits(p + i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset = (int64_t)(oh * 3600 + om * 60) * (p[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != n)
        return -1;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    if (t < TS_MIN || t > TS_MAX)
        return -1;
    *secs = t;
    *nanos = (int32_t)ns;
    return 0;
}

/* "[-]S[.fffffffff]s" to seconds and nanos (same sign); -1 if invalid. */
static int parse_duration(struct pt_str s, int64_t *secs, int32_t *nanos)
{
    const char *p = s.ptr;
    size_t n = s.len, i = 0;
    if (n < 2 || p[n - 1] != 's')
        return -1;
    n--;
    bool neg = p[0] == '-';
    if (neg)
        i++;
    size_t start = i;
    uint64_t v = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        v = v * 10 + (uint64_t)(p[i] - '0');
        if (v > (uint64_t)DUR_MAX)
            return -1;
        i++;
    }
    if (i == start)
        return -1;
    uint32_t ns = 0;
    if (i < n && p[i] == '.') {
        size_t fs = ++i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        size_t nd = i - fs;
        if (nd < 1 || nd > 9)
            return -1;
        for (size_t k = 0; k < 9; k++)
            ns = ns * 10 + (k < nd ? (uint32_t)(p[fs + k] - '0') : 0);
    }
    if (i != n)
        return -1;
    *secs = neg ? -(int64_t)v : (int64_t)v;
    *nanos = neg ? -(int32_t)ns : (int32_t)ns;
    return 0;
}

static int read_string(struct jdec *d, const char *what, struct pt_str *s)
{
    TRY(jdec_expect(d, JT_STR, what));
    struct jstr raw;
    TRY(jlex_string(d, &raw));
    return jstr_get(d, &raw, s);
}

static int put_secs_nanos(struct jctx *c, int64_t secs, int32_t nanos)
{
    if (secs != 0) {
        TRY(wput_tag(c, 1, WT_VARINT));
        TRY(wput_varint(c, (uint64_t)secs));
    }
    if (nanos != 0) {
        TRY(wput_tag(c, 2, WT_VARINT));
        TRY(wput_varint(c, (uint64_t)(int64_t)nanos));
    }
    return 0;
}

static int dec_field_mask(struct jdec *d, struct pt_str s, size_t at)
{
    struct jctx *c = &d->c;
    if (s.len == 0)
        return 0;
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < s.len && s.ptr[j] != ',')
            j++;
        size_t pos;
        TRY(wput_tag(c, 1, WT_LEN));
        TRY(wlen_begin(c, &pos));
        for (size_t k = i; k < j; k++) {
            char ch = s.ptr[k];
            if (ch == '_')
                return jctx_fail(c, PT_ERR_INVALID, at,
                                 "FieldMask path must be lowerCamelCase (no '_')");
            if (ch >= 'A' && ch <= 'Z') {
                TRY(jout_byte(c, '_'));
                ch = (char)(ch + 32);
            }
            TRY(jout_byte(c, ch));
        }
        TRY(wlen_end(c, pos));
        if (j == s.len)
            return 0;
        i = j + 1;
    }
}

static const ProtobufCFieldDescriptor *
wkt_field(struct jctx *c, const ProtobufCMessageDescriptor *m, uint32_t number, size_t at)
{
    unsigned hint = 0;
    const ProtobufCFieldDescriptor *f = jfield_by_number(m, number, &hint);
    if (!f)
        jctx_fail(c, PT_ERR_INVALID, at, "descriptor of %s has no field %u", m->name, number);
    return f;
}

/* Value's body from any JSON value. */
static int dec_value(struct jdec *d, const ProtobufCMessageDescriptor *m)
{
    struct jctx *c = &d->c;
    size_t at = jdec_off(d);
    enum jtok k = jlex_peek(d);
    switch (k) {
    case JT_NULL:
        TRY(jlex_literal(d, k));
        TRY(wput_tag(c, 1, WT_VARINT));
        return wput_varint(c, 0);
    case JT_TRUE:
    case JT_FALSE:
        TRY(jlex_literal(d, k));
        TRY(wput_tag(c, 4, WT_VARINT));
        return wput_varint(c, k == JT_TRUE);
    case JT_NUM: {
        struct pt_str num;
        double v;
        TRY(jlex_number(d, &num));
        if (num_to_double(num.ptr, num.len, &v) != 0)
            return jctx_fail(c, PT_ERR_INVALID, at, "number out of range");
        uint64_t bits;
        memcpy(&bits, &v, 8);
        TRY(wput_tag(c, 2, WT_I64));
        return wput_fixed64(c, bits);
    }
    case JT_STR: {
        struct jstr s;
        TRY(jlex_string(d, &s));
        TRY(wput_tag(c, 3, WT_LEN));
        if (!s.escaped) {
            TRY(wput_varint(c, s.len));
            return jout_put(c, s.raw, s.len);
        }
        size_t pos;
        TRY(wlen_begin(c, &pos));
        TRY(jout_reserve(c, s.len));
        c->out->len += jstr_decode(&s, c->out->data + c->out->len);
        return wlen_end(c, pos);
    }
    case JT_OBJ:
    case JT_ARR: {
        const ProtobufCFieldDescriptor *f = wkt_field(c, m, k == JT_OBJ ? 5 : 6, at);
        if (!f)
            return -1;
        size_t pos;
        TRY(wput_tag(c, f->id, WT_LEN));
        TRY(wlen_begin(c, &pos));
        TRY(jdec_message(d, f->descriptor));
        return wlen_end(c, pos);
    }
    default:
        return jdec_type_error(d, "a JSON value", k);
    }
}

static struct pt_str type_name_of(struct pt_str url)
{
    for (size_t i = url.len; i > 0; i--)
        if (url.ptr[i - 1] == '/')
            return (struct pt_str){url.ptr + i, url.len - i};
    return url;
}

static const ProtobufCMessageDescriptor *find_type(struct jctx *c, struct pt_str url)
{
    struct pt_str name = type_name_of(url);
    if (!c->hooks->find_message || name.len == 0)
        return NULL;
    return c->hooks->find_message(c->hooks->ctx, name);
}

static int dec_any(struct jdec *d)
{
    struct jctx *c = &d->c;
    size_t at = jdec_off(d);
    TRY(jdec_expect(d, JT_OBJ, "an object (Any)"));
    /* "@type" may come anywhere in the object: find it first. */
    const char *save = d->p;
    TRY(jlex_obj_begin(d));
    bool first = true, any_key = false;
    struct pt_str key, url = PT_STR_NULL;
    int r;
    while ((r = jlex_obj_next(d, &first, &key, NULL)) > 0) {
        any_key = true;
        if (pt_str_eq(key, PT_STR("@type"))) {
            if (url.ptr)
                return jctx_fail(c, PT_ERR_INVALID, at, "duplicate key \"@type\"");
            TRY(read_string(d, "a type URL string", &url));
            if (!url.ptr)
                url.ptr = "";
        } else {
            TRY(jlex_skip(d));
        }
    }
    TRY(r);
    if (!any_key)
        return 0; /* {} is the empty Any */
    if (!url.ptr)
        return jctx_fail(c, PT_ERR_INVALID, at, "Any without \"@type\"");
    const ProtobufCMessageDescriptor *m = find_type(c, url);
    if (!m)
        return jctx_fail(c, PT_ERR_INVALID, at, "unknown type \"%.*s\" in Any",
                         (int)(url.len > 100 ? 100 : url.len), url.ptr);
    const char *end = d->p;
    d->p = save;
    TRY(wput_tag(c, 1, WT_LEN));
    TRY(wput_varint(c, url.len));
    TRY(jout_put(c, url.ptr, url.len));
    size_t pos;
    TRY(wput_tag(c, 2, WT_LEN));
    TRY(wlen_begin(c, &pos));
    ProtobufCType wrapped = 0;
    enum jwkt kind = jwkt_kind(m, &wrapped);
    if (kind == JWKT_NONE) {
        TRY(jdec_regular_fields(d, m, true));
    } else {
        /* A special form in "value". */
        TRY(jlex_obj_begin(d));
        first = true;
        bool have = false;
        while ((r = jlex_obj_next(d, &first, &key, NULL)) > 0) {
            if (pt_str_eq(key, PT_STR("@type"))) {
                TRY(jlex_skip(d));
            } else if (pt_str_eq(key, PT_STR("value"))) {
                if (have)
                    return jctx_fail(c, PT_ERR_INVALID, jdec_off(d), "duplicate key \"value\"");
                have = true;
                jpath_push(c, JSEG_FIELD, "value", 5, 0);
                TRY(jdec_wkt(d, m, kind, wrapped));
                jpath_pop(c);
            } else if (c->opt.ignore_unknown) {
                TRY(jlex_skip(d));
            } else {
                return jctx_fail(c, PT_ERR_INVALID, jdec_off(d),
                                 "unknown field \"%.*s\" in Any holding %s",
                                 (int)(key.len > 64 ? 64 : key.len), key.ptr, m->name);
            }
        }
        TRY(r);
        if (!have)
            return jctx_fail(c, PT_ERR_INVALID, at, "Any holding %s needs \"value\"", m->name);
    }
    if (d->p != end)
        return jctx_fail(c, PT_ERR_INTERNAL, at, "Any re-read did not end where it did");
    return wlen_end(c, pos);
}

int jdec_wkt(struct jdec *d, const ProtobufCMessageDescriptor *m, enum jwkt kind,
             ProtobufCType wrapped)
{
    struct jctx *c = &d->c;
    size_t at = jdec_off(d);
    struct pt_str s;
    int64_t secs;
    int32_t nanos;
    const ProtobufCFieldDescriptor *f;
    (void)wrapped;
    switch (kind) {
    case JWKT_TIMESTAMP:
        TRY(read_string(d, "an RFC 3339 timestamp string", &s));
        if (parse_timestamp(s, &secs, &nanos) != 0)
            return jctx_fail(c, PT_ERR_INVALID, at,
                             "invalid timestamp \"%.*s\" (RFC 3339, years 0001-9999)",
                             (int)(s.len > 64 ? 64 : s.len), s.ptr);
        return put_secs_nanos(c, secs, nanos);
    case JWKT_DURATION:
        TRY(read_string(d, "a duration string like \"1.5s\"", &s));
        if (parse_duration(s, &secs, &nanos) != 0)
            return jctx_fail(c, PT_ERR_INVALID, at,
                             "invalid duration \"%.*s\" (like \"-1.5s\", at most 315576000000s)",
                             (int)(s.len > 64 ? 64 : s.len), s.ptr);
        return put_secs_nanos(c, secs, nanos);
    case JWKT_FIELD_MASK:
        TRY(read_string(d, "a FieldMask string", &s));
        return dec_field_mask(d, s, at);
    case JWKT_WRAPPER:
        if (!(f = wkt_field(c, m, 1, at)))
            return -1;
        return jdec_scalar(d, f, true, 1) < 0 ? -1 : 0;
    case JWKT_STRUCT:
        if (!(f = wkt_field(c, m, 1, at)))
            return -1;
        return jdec_map(d, f);
    case JWKT_LIST_VALUE:
        if (!(f = wkt_field(c, m, 1, at)))
            return -1;
        return jdec_repeated(d, f);
    case JWKT_VALUE:
        return dec_value(d, m);
    case JWKT_ANY:
        return dec_any(d);
    default:
        return jctx_fail(c, PT_ERR_INTERNAL, at, "not a well-known type");
    }
}

/* ---- wire -> JSON ---- */

static const struct jocc *last_occ(struct jenc *e, const struct jview *v, uint32_t number)
{
    int i = jview_field(v, number);
    if (i < 0 || jview_count(e, v, (unsigned)i) == 0)
        return NULL;
    return &e->occ[jview_last(e, v, (unsigned)i)];
}

static int enc_timestamp(struct jenc *e, const struct jview *v)
{
    struct jctx *c = &e->c;
    const struct jocc *so = last_occ(e, v, 1), *no = last_occ(e, v, 2);
    int64_t secs = so ? (int64_t)so->v : 0;
    int64_t nanos = no ? (int32_t)(uint32_t)no->v : 0;
    if (secs < TS_MIN || secs > TS_MAX || nanos < 0 || nanos > 999999999)
        return jctx_fail(c, PT_ERR_INVALID, jenc_off(e, so ? so->p : NULL),
                         "Timestamp out of range (seconds %lld, nanos %lld)", (long long)secs,
                         (long long)nanos);
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int64_t y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);
    char buf[48];
    int n = snprintf(buf, sizeof(buf), "\"%04lld-%02u-%02uT%02u:%02u:%02u", (long long)y, mo, d,
                     (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60));
    if (nanos % 1000000000 == 0)
        ;
    else if (nanos % 1000000 == 0)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".%03u", (unsigned)(nanos / 1000000));
    else if (nanos % 1000 == 0)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".%06u", (unsigned)(nanos / 1000));
    else
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".%09u", (unsigned)nanos);
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "Z\"");
    return jout_put(c, buf, (size_t)n);
}

static int enc_duration(struct jenc *e, const struct jview *v)
{
    struct jctx *c = &e->c;
    const struct jocc *so = last_occ(e, v, 1), *no = last_occ(e, v, 2);
    int64_t secs = so ? (int64_t)so->v : 0;
    int64_t nanos = no ? (int32_t)(uint32_t)no->v : 0;
    if (secs < -DUR_MAX || secs > DUR_MAX || nanos < -999999999 || nanos > 999999999 ||
        (secs > 0 && nanos < 0) || (secs < 0 && nanos > 0))
        return jctx_fail(c, PT_ERR_INVALID, jenc_off(e, so ? so->p : NULL),
                         "Duration out of range (seconds %lld, nanos %lld)", (long long)secs,
                         (long long)nanos);
    bool neg = secs < 0 || nanos < 0;
    uint64_t s = neg ? (uint64_t)(-secs) : (uint64_t)secs;
    uint64_t ns = neg ? (uint64_t)(-nanos) : (uint64_t)nanos;
    char buf[48];
    int n = snprintf(buf, sizeof(buf), "\"%s%llu", neg ? "-" : "", (unsigned long long)s);
    if (ns == 0)
        ;
    else if (ns % 1000000 == 0)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".%03llu",
                      (unsigned long long)(ns / 1000000));
    else if (ns % 1000 == 0)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".%06llu", (unsigned long long)(ns / 1000));
    else
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".%09llu", (unsigned long long)ns);
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "s\"");
    return jout_put(c, buf, (size_t)n);
}

static int enc_field_mask(struct jenc *e, const struct jview *v)
{
    struct jctx *c = &e->c;
    int i = jview_field(v, 1);
    size_t total = 0;
    for (uint32_t k = i < 0 ? JOCC_END : jview_first(e, v, (unsigned)i); k != JOCC_END;
         k = e->occ[k].next)
        total += e->occ[k].v + 1;
    char *buf = pt_arena_alloc(&c->arena, total + 1);
    if (!buf)
        return jctx_fail(c, PT_ERR_LIMIT, 0, "out of scratch memory");
    size_t n = 0;
    bool first = true;
    for (uint32_t k = i < 0 ? JOCC_END : jview_first(e, v, (unsigned)i); k != JOCC_END;
         k = e->occ[k].next) {
        const struct jocc *o = &e->occ[k];
        if (!utf8_valid(o->p, o->v))
            return jctx_fail(c, PT_ERR_INVALID, jenc_off(e, o->p), "invalid UTF-8 in FieldMask");
        if (!first)
            buf[n++] = ',';
        first = false;
        /* snake_case -> lowerCamelCase; only what reads back the same has a
         * JSON form (json_format's rules). */
        bool under = false;
        for (size_t j = 0; j < o->v; j++) {
            char ch = (char)o->p[j];
            if ((ch >= 'A' && ch <= 'Z') || (under && !(ch >= 'a' && ch <= 'z')))
                return jctx_fail(c, PT_ERR_INVALID, jenc_off(e, o->p),
                                 "FieldMask path \"%.*s\" has no JSON form (snake_case, "
                                 "lower-case letters after '_')",
                                 (int)(o->v > 64 ? 64 : o->v), (const char *)o->p);
            if (ch == '_') {
                under = true;
                continue;
            }
            buf[n++] = under ? (char)(ch - 32) : ch;
            under = false;
        }
        if (under)
            return jctx_fail(c, PT_ERR_INVALID, jenc_off(e, o->p), "FieldMask path ends with '_'");
    }
    return jout_string(c, buf, n);
}

static int enc_value(struct jenc *e, const struct jview *v)
{
    struct jctx *c = &e->c;
    const ProtobufCMessageDescriptor *m = v->m;
    int win = -1;
    for (unsigned i = 0; i < m->n_fields; i++) {
        if (m->fields[i].id < 1 || m->fields[i].id > 6 || jview_count(e, v, i) == 0)
            continue;
        if (win < 0 || jview_last(e, v, i) > jview_last(e, v, (unsigned)win))
            win = (int)i;
    }
    if (win < 0)
        return JOUT_LIT(c, "null");
    const ProtobufCFieldDescriptor *f = &m->fields[win];
    const struct jocc *o = &e->occ[jview_last(e, v, (unsigned)win)];
    switch (f->id) {
    case 1:
        return JOUT_LIT(c, "null");
    case 2: {
        uint64_t bits = 0;
        for (int k = 7; k >= 0; k--)
            bits = bits << 8 | o->p[k];
        double dv;
        memcpy(&dv, &bits, 8);
        if (!isfinite(dv))
            return jctx_fail(c, PT_ERR_INVALID, jenc_off(e, o->p),
                             "Value.number_value cannot be NaN or Infinity in JSON");
        char buf[32];
        return jout_put(c, buf, fmt_double(dv, buf));
    }
    case 3:
    case 4:
        return jenc_scalar(e, f, o);
    default: {
        /* struct_value / list_value: merge the occurrences after any other kind. */
        uint32_t after = JOCC_END;
        for (unsigned i = 0; i < m->n_fields; i++)
            if ((int)i != win && m->fields[i].id >= 1 && m->fields[i].id <= 6 &&
                jview_count(e, v, i) > 0 && (after == JOCC_END || jview_last(e, v, i) > after))
                after = jview_last(e, v, i);
        size_t base, n;
        jview_msg_spans(e, v, (unsigned)win, after, &base, &n);
        TRY(jenc_message(e, f->descriptor, base, n));
        e->nspans = base;
        return 0;
    }
    }
}

static int enc_any(struct jenc *e, const struct jview *v)
{
    struct jctx *c = &e->c;
    const struct jocc *uo = last_occ(e, v, 1), *vo = last_occ(e, v, 2);
    if (!uo && !vo)
        return JOUT_LIT(c, "{}");
    struct pt_str url = uo ? (struct pt_str){(const char *)uo->p, uo->v} : PT_STR("");
    if (!utf8_valid((const uint8_t *)url.ptr, url.len))
        return jctx_fail(c, PT_ERR_INVALID, jenc_off(e, uo ? uo->p : NULL),
                         "invalid UTF-8 in Any type URL");
    const ProtobufCMessageDescriptor *m = find_type(c, url);
    if (!m)
        return jctx_fail(c, PT_ERR_INVALID, jenc_off(e, uo ? uo->p : NULL),
                         "unknown type \"%.*s\" in Any", (int)(url.len > 100 ? 100 : url.len),
                         url.ptr);
    TRY(JOUT_LIT(c, "{\"@type\":"));
    TRY(jout_string(c, url.ptr, url.len));
    size_t base = e->nspans;
    static const uint8_t nothing[1];
    jspan_push(e, vo ? vo->p : nothing, vo ? vo->v : 0);
    if (jwkt_kind(m, NULL) != JWKT_NONE) {
        TRY(JOUT_LIT(c, ",\"value\":"));
        jpath_push(c, JSEG_FIELD, "value", 5, 0);
        TRY(jenc_message(e, m, base, 1));
        jpath_pop(c);
    } else {
        struct jview pv;
        TRY(jview_scan(e, m, base, 1, &pv));
        bool first = false;
        TRY(jenc_fields(e, &pv, &first));
        jview_pop(e, &pv);
    }
    e->nspans = base;
    return jout_byte(c, '}');
}

int jenc_wkt(struct jenc *e, const ProtobufCMessageDescriptor *m, enum jwkt kind,
             ProtobufCType wrapped, size_t span_base, size_t nspans)
{
    struct jctx *c = &e->c;
    struct jview v;
    (void)wrapped;
    TRY(jview_scan(e, m, span_base, nspans, &v));
    int rc = 0, i;
    switch (kind) {
    case JWKT_TIMESTAMP:
        rc = enc_timestamp(e, &v);
        break;
    case JWKT_DURATION:
        rc = enc_duration(e, &v);
        break;
    case JWKT_FIELD_MASK:
        rc = enc_field_mask(e, &v);
        break;
    case JWKT_WRAPPER:
        i = jview_field(&v, 1);
        if (i < 0)
            return jctx_fail(c, PT_ERR_INVALID, 0, "descriptor of %s has no field 1", m->name);
        rc = jenc_scalar(e, &m->fields[i],
                         jview_count(e, &v, (unsigned)i) ? &e->occ[jview_last(e, &v, (unsigned)i)]
                                                         : NULL);
        break;
    case JWKT_STRUCT:
    case JWKT_LIST_VALUE:
        i = jview_field(&v, 1);
        if (i < 0)
            return jctx_fail(c, PT_ERR_INVALID, 0, "descriptor of %s has no field 1", m->name);
        if (jview_count(e, &v, (unsigned)i) == 0)
            rc = kind == JWKT_STRUCT ? JOUT_LIT(c, "{}") : JOUT_LIT(c, "[]");
        else if (kind == JWKT_STRUCT)
            rc = jenc_map(e, &v, (unsigned)i);
        else
            rc = jenc_repeated(e, &v, (unsigned)i);
        break;
    case JWKT_VALUE:
        rc = enc_value(e, &v);
        break;
    case JWKT_ANY:
        rc = enc_any(e, &v);
        break;
    default:
        rc = jctx_fail(c, PT_ERR_INTERNAL, 0, "not a well-known type");
        break;
    }
    jview_pop(e, &v);
    return rc;
}
