/*
 * pt_json_encode: protobuf wire bytes -> JSON text.
 *
 * JSON wants each field once, in declaration order, while the wire may
 * repeat a field anywhere (repeated elements interleaved with other fields,
 * a singular field several times - the last wins, or merges for messages -
 * packed and unpacked runs of one repeated field). So each message is first
 * indexed: one scan records every known field occurrence and links the
 * occurrences of each field in wire order (jview); then fields are printed
 * in descriptor order from the links. Nested messages are indexed when they
 * are printed, on top of the same scratch stacks.
 */
#include <math.h>
#include <stdlib.h>

#include "core/strutil.h"
#include "transcode/json_int.h"

static void *grow(void *v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return v;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    *cap = c;
    return pt_xrealloc(v, c * elem);
}

void jspan_push(struct jenc *e, const uint8_t *p, size_t n)
{
    e->spans = grow(e->spans, &e->spans_cap, e->nspans + 1, sizeof(*e->spans));
    e->spans[e->nspans++] = (struct jspan){p, n};
}

int jwire_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (p == end)
            return -1;
        uint8_t b = *p++;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (i == 9 && b > 1)
                return -1;
            *v = x;
            *pp = p;
            return 0;
        }
    }
    return -1;
}

static bool packable(ProtobufCType t)
{
    return t != PROTOBUF_C_TYPE_STRING && t != PROTOBUF_C_TYPE_BYTES &&
           t != PROTOBUF_C_TYPE_MESSAGE;
}

static int malformed(struct jenc *e, const uint8_t *at, const char *what)
{
    return jctx_fail(&e->c, PT_ERR_INVALID, jenc_off(e, at), "malformed protobuf: %s", what);
}

/* Skips an unknown group up to its end tag (groups only appear in proto2
 * data; they are never printed). */
static int skip_group(struct jenc *e, const uint8_t **pp, const uint8_t *end, uint32_t number,
                      unsigned depth)
{
    if (depth > e->c.opt.max_depth)
        return jctx_fail(&e->c, PT_ERR_LIMIT, jenc_off(e, *pp), "groups nested too deeply");
    const uint8_t *p = *pp;
    while (p < end) {
        const uint8_t *at = p;
        uint64_t tag, v;
        if (jwire_varint(&p, end, &tag) != 0 || tag > UINT32_MAX || (tag >> 3) == 0)
            return malformed(e, at, "bad tag");
        switch (tag & 7) {
        case WT_VARINT:
            if (jwire_varint(&p, end, &v) != 0)
                return malformed(e, at, "bad varint");
            break;
        case WT_I64:
            if (end - p < 8)
                return malformed(e, at, "truncated fixed64");
            p += 8;
            break;
        case WT_I32:
            if (end - p < 4)
                return malformed(e, at, "truncated fixed32");
            p += 4;
            break;
        case WT_LEN:
            if (jwire_varint(&p, end, &v) != 0 || v > (uint64_t)(end - p))
                return malformed(e, at, "length past the end");
            p += v;
            break;
        case WT_SGROUP:
            TRY(skip_group(e, &p, end, (uint32_t)(tag >> 3), depth + 1));
            break;
        case WT_EGROUP:
            if ((tag >> 3) != number)
                return malformed(e, at, "mismatched end group");
            *pp = p;
            return 0;
        default:
            return malformed(e, at, "bad wire type");
        }
    }
    return malformed(e, p, "unterminated group");
}

int jview_scan(struct jenc *e, const ProtobufCMessageDescriptor *m, size_t span_base, size_t nspans,
               struct jview *v)
{
    v->m = m;
    v->occ_mark = e->nocc;
    v->idx_base = e->nidx;
    size_t nf = m->n_fields;
    e->idx = grow(e->idx, &e->idx_cap, e->nidx + 3 * nf, sizeof(*e->idx));
    for (size_t i = 0; i < nf; i++) {
        e->idx[e->nidx + 3 * i] = JOCC_END;
        e->idx[e->nidx + 3 * i + 1] = JOCC_END;
        e->idx[e->nidx + 3 * i + 2] = 0;
    }
    e->nidx += 3 * nf;
    unsigned hint = 0;
    for (size_t s = 0; s < nspans; s++) {
        const uint8_t *p = e->spans[span_base + s].p, *end = p + e->spans[span_base + s].n;
        while (p < end) {
            const uint8_t *at = p, *vp = NULL;
            uint64_t tag, val = 0;
            if (jwire_varint(&p, end, &tag) != 0 || tag > UINT32_MAX || (tag >> 3) == 0)
                return malformed(e, at, "bad tag");
            uint32_t number = (uint32_t)(tag >> 3);
            int wt = (int)(tag & 7);
            switch (wt) {
            case WT_VARINT:
                if (jwire_varint(&p, end, &val) != 0)
                    return malformed(e, at, "bad varint");
                break;
            case WT_I64:
                if (end - p < 8)
                    return malformed(e, at, "truncated fixed64");
                vp = p;
                p += 8;
                break;
            case WT_I32:
                if (end - p < 4)
                    return malformed(e, at, "truncated fixed32");
                vp = p;
                p += 4;
                break;
            case WT_LEN:
                if (jwire_varint(&p, end, &val) != 0 || val > (uint64_t)(end - p))
                    return malformed(e, at, "length past the end");
                vp = p;
                p += val;
                break;
            case WT_SGROUP:
                TRY(skip_group(e, &p, end, number, 1));
                continue;
            default:
                return malformed(e, at, "bad wire type");
            }
            const ProtobufCFieldDescriptor *f = jfield_by_number(m, number, &hint);
            if (!f)
                continue; /* unknown fields are not printed */
            if (wt != jwire_type(f->type) &&
                !(wt == WT_LEN && f->label == PROTOBUF_C_LABEL_REPEATED && packable(f->type)))
                continue; /* a wire type the field cannot have: unknown, as protobuf does */
            if (e->nocc >= JOCC_END - 1)
                return jctx_fail(&e->c, PT_ERR_LIMIT, jenc_off(e, at), "too many fields");
            e->occ = grow(e->occ, &e->occ_cap, e->nocc + 1, sizeof(*e->occ));
            uint32_t k = (uint32_t)e->nocc++;
            e->occ[k] = (struct jocc){vp, val, JOCC_END, (uint8_t)wt};
            uint32_t *ix = &e->idx[v->idx_base + 3 * (size_t)(f - m->fields)];
            if (ix[0] == JOCC_END)
                ix[0] = k;
            else
                e->occ[ix[1]].next = k;
            ix[1] = k;
            ix[2]++;
        }
    }
    return 0;
}

void jview_pop(struct jenc *e, const struct jview *v)
{
    e->nocc = v->occ_mark;
    e->nidx = v->idx_base;
}

int jview_field(const struct jview *v, uint32_t number)
{
    for (unsigned i = 0; i < v->m->n_fields; i++)
        if (v->m->fields[i].id == number)
            return (int)i;
    return -1;
}

void jview_msg_spans(struct jenc *e, const struct jview *v, unsigned i, uint32_t after,
                     size_t *base, size_t *n)
{
    *base = e->nspans;
    for (uint32_t k = jview_first(e, v, i); k != JOCC_END; k = e->occ[k].next)
        if (after == JOCC_END || k > after)
            jspan_push(e, e->occ[k].p, e->occ[k].v);
    *n = e->nspans - *base;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static bool is_null_enum(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_ENUM && f->descriptor &&
           strcmp(((const ProtobufCEnumDescriptor *)f->descriptor)->name,
                  "google.protobuf.NullValue") == 0;
}

static int put_quoted_int(struct jctx *c, bool quote, int64_t s, uint64_t u, bool is_signed)
{
    char buf[24];
    size_t n = is_signed ? fmt_i64(s, buf) : pt_u64_format(u, buf);
    if (!quote)
        return jout_put(c, buf, n);
    TRY(jout_reserve(c, n + 2));
    char *o = c->out->data + c->out->len;
    o[0] = '"';
    memcpy(o + 1, buf, n);
    o[n + 1] = '"';
    c->out->len += n + 2;
    return 0;
}

static int put_double(struct jctx *c, double v)
{
    if (isnan(v))
        return JOUT_LIT(c, "\"NaN\"");
    if (isinf(v))
        return v > 0 ? JOUT_LIT(c, "\"Infinity\"") : JOUT_LIT(c, "\"-Infinity\"");
    char buf[32];
    return jout_put(c, buf, fmt_double(v, buf));
}

static int put_float(struct jctx *c, float v)
{
    if (isnan(v))
        return JOUT_LIT(c, "\"NaN\"");
    if (isinf(v))
        return v > 0 ? JOUT_LIT(c, "\"Infinity\"") : JOUT_LIT(c, "\"-Infinity\"");
    char buf[32];
    return jout_put(c, buf, fmt_float(v, buf));
}

int jenc_scalar(struct jenc *e, const ProtobufCFieldDescriptor *f, const struct jocc *o)
{
    struct jctx *c = &e->c;
    static const uint8_t zeros[8];
    uint64_t v = o ? o->v : 0;
    const uint8_t *p = o && o->p ? o->p : zeros;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
        return put_quoted_int(c, false, (int32_t)(uint32_t)v, 0, true);
    case PROTOBUF_C_TYPE_SINT32: {
        uint32_t z = (uint32_t)v;
        return put_quoted_int(c, false, (int32_t)((z >> 1) ^ (0u - (z & 1))), 0, true);
    }
    case PROTOBUF_C_TYPE_SFIXED32:
        return put_quoted_int(c, false, (int32_t)le32(p), 0, true);
    case PROTOBUF_C_TYPE_UINT32:
        return put_quoted_int(c, false, 0, (uint32_t)v, false);
    case PROTOBUF_C_TYPE_FIXED32:
        return put_quoted_int(c, false, 0, le32(p), false);
    case PROTOBUF_C_TYPE_INT64:
        return put_quoted_int(c, true, (int64_t)v, 0, true);
    case PROTOBUF_C_TYPE_SINT64:
        return put_quoted_int(c, true, (int64_t)((v >> 1) ^ (0 - (v & 1))), 0, true);
    case PROTOBUF_C_TYPE_SFIXED64:
        return put_quoted_int(c, true, (int64_t)le64(p), 0, true);
    case PROTOBUF_C_TYPE_UINT64:
        return put_quoted_int(c, true, 0, v, false);
    case PROTOBUF_C_TYPE_FIXED64:
        return put_quoted_int(c, true, 0, le64(p), false);
    case PROTOBUF_C_TYPE_BOOL:
        return v ? JOUT_LIT(c, "true") : JOUT_LIT(c, "false");
    case PROTOBUF_C_TYPE_FLOAT: {
        uint32_t bits = le32(p);
        float fv;
        memcpy(&fv, &bits, 4);
        return put_float(c, fv);
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        uint64_t bits = le64(p);
        double dv;
        memcpy(&dv, &bits, 8);
        return put_double(c, dv);
    }
    case PROTOBUF_C_TYPE_ENUM: {
        if (is_null_enum(f))
            return JOUT_LIT(c, "null");
        int32_t n = (int32_t)(uint32_t)v;
        const ProtobufCEnumValue *ev = f->descriptor ? jenum_by_number(f->descriptor, n) : NULL;
        if (ev)
            return jout_string(c, ev->name, strlen(ev->name));
        return put_quoted_int(c, false, n, 0, true);
    }
    case PROTOBUF_C_TYPE_STRING:
        if (!o)
            return JOUT_LIT(c, "\"\"");
        if (!utf8_valid(o->p, o->v))
            return jctx_fail(c, PT_ERR_INVALID, jenc_off(e, o->p), "invalid UTF-8 in string field");
        return jout_string(c, (const char *)o->p, o->v);
    case PROTOBUF_C_TYPE_BYTES:
        return o ? jout_base64(c, o->p, o->v) : JOUT_LIT(c, "\"\"");
    case PROTOBUF_C_TYPE_MESSAGE:
        break;
    }
    return jctx_fail(c, PT_ERR_INTERNAL, 0, "message where a scalar was expected");
}

/* Default value of an implicit-presence field, by its wire representation
 * (32-bit varint types keep only their low 32 bits, as protobuf reads them). */
static bool occ_is_default(const ProtobufCFieldDescriptor *f, const struct jocc *o)
{
    if (is_null_enum(f))
        return true; /* NullValue has one value; any number prints as null */
    switch (o->wt) {
    case WT_I32:
        return le32(o->p) == 0;
    case WT_I64:
        return le64(o->p) == 0;
    case WT_VARINT:
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_ENUM:
            return (uint32_t)o->v == 0;
        default:
            return o->v == 0;
        }
    default:
        return o->v == 0; /* LEN length */
    }
}

/* Elements of one packed run. */
static int enc_packed(struct jenc *e, const ProtobufCFieldDescriptor *f, const struct jocc *run,
                      size_t *index, bool *first)
{
    const uint8_t *p = run->p, *end = run->p + run->v;
    int wt = jwire_type(f->type);
    while (p < end) {
        struct jocc o = {p, 0, JOCC_END, (uint8_t)wt};
        if (wt == WT_VARINT) {
            if (jwire_varint(&p, end, &o.v) != 0)
                return malformed(e, p, "bad varint in packed field");
            o.p = NULL;
        } else {
            size_t w = wt == WT_I32 ? 4 : 8;
            if ((size_t)(end - p) < w)
                return malformed(e, p, "truncated packed field");
            p += w;
        }
        if (!*first)
            TRY(jout_byte(&e->c, ','));
        *first = false;
        jpath_set_index(&e->c, (*index)++);
        TRY(jenc_scalar(e, f, &o));
    }
    return 0;
}

int jenc_repeated(struct jenc *e, const struct jview *v, unsigned i)
{
    struct jctx *c = &e->c;
    const ProtobufCFieldDescriptor *f = &v->m->fields[i];
    TRY(jctx_enter(c, 0));
    TRY(jout_byte(c, '['));
    jpath_push(c, JSEG_INDEX, NULL, 0, 0);
    bool first = true;
    size_t index = 0;
    for (uint32_t k = jview_first(e, v, i); k != JOCC_END; k = e->occ[k].next) {
        struct jocc o = e->occ[k];
        if (o.wt == WT_LEN && packable(f->type)) {
            TRY(enc_packed(e, f, &o, &index, &first));
            continue;
        }
        if (!first)
            TRY(jout_byte(c, ','));
        first = false;
        jpath_set_index(c, index++);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            size_t base = e->nspans;
            jspan_push(e, o.p, o.v);
            TRY(jenc_message(e, f->descriptor, base, 1));
            e->nspans = base;
        } else {
            TRY(jenc_scalar(e, f, &o));
        }
    }
    jpath_pop(c);
    jctx_leave(c);
    return jout_byte(c, ']');
}

static uint64_t norm_key(ProtobufCType t, const struct jocc *o)
{
    switch (t) {
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return le32(o->p);
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return le64(o->p);
    case PROTOBUF_C_TYPE_BOOL:
        return o->v != 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
        return o->v;
    default: /* 32-bit varints: only the low 32 bits count */
        return (uint32_t)o->v;
    }
}

static int ent_cmp(const void *a, const void *b, void *arg)
{
    const struct jent *x = a, *y = b;
    if (arg) { /* string keys */
        size_t n = x->kn < y->kn ? x->kn : y->kn;
        int r = n ? memcmp(x->kp, y->kp, n) : 0;
        if (r)
            return r;
        if (x->kn != y->kn)
            return x->kn < y->kn ? -1 : 1;
    } else if (x->key != y->key) {
        return x->key < y->key ? -1 : 1;
    }
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Reads one map entry's key, and where its value occurrences are. */
static int scan_entry(struct jenc *e, const ProtobufCFieldDescriptor *kf,
                      const ProtobufCFieldDescriptor *vf, const uint8_t *p, size_t n,
                      struct jocc *key, bool *has_key, struct jocc *val, bool *has_val,
                      size_t *vspans)
{
    const uint8_t *end = p + n;
    *has_key = *has_val = false;
    while (p < end) {
        const uint8_t *at = p, *vp = NULL;
        uint64_t tag, x = 0;
        if (jwire_varint(&p, end, &tag) != 0 || tag > UINT32_MAX || (tag >> 3) == 0)
            return malformed(e, at, "bad tag in map entry");
        int wt = (int)(tag & 7);
        switch (wt) {
        case WT_VARINT:
            if (jwire_varint(&p, end, &x) != 0)
                return malformed(e, at, "bad varint");
            break;
        case WT_I64:
        case WT_I32:
            if ((size_t)(end - p) < (wt == WT_I64 ? 8u : 4u))
                return malformed(e, at, "truncated fixed value");
            vp = p;
            p += wt == WT_I64 ? 8 : 4;
            break;
        case WT_LEN:
            if (jwire_varint(&p, end, &x) != 0 || x > (uint64_t)(end - p))
                return malformed(e, at, "length past the end");
            vp = p;
            p += x;
            break;
        case WT_SGROUP:
            TRY(skip_group(e, &p, end, (uint32_t)(tag >> 3), 1));
            continue;
        default:
            return malformed(e, at, "bad wire type");
        }
        uint32_t number = (uint32_t)(tag >> 3);
        struct jocc o = {vp, x, JOCC_END, (uint8_t)wt};
        if (number == 1 && wt == jwire_type(kf->type)) {
            *key = o;
            *has_key = true;
        } else if (number == 2 && wt == jwire_type(vf->type)) {
            *val = o;
            *has_val = true;
            if (vspans && vf->type == PROTOBUF_C_TYPE_MESSAGE) {
                jspan_push(e, vp, x);
                (*vspans)++;
            }
        }
    }
    return 0;
}

static int put_map_key(struct jenc *e, ProtobufCType t, const struct jent *en)
{
    struct jctx *c = &e->c;
    switch (t) {
    case PROTOBUF_C_TYPE_STRING:
        if (!utf8_valid(en->kp, en->kn))
            return jctx_fail(c, PT_ERR_INVALID, jenc_off(e, en->kp), "invalid UTF-8 in map key");
        return jout_string(c, (const char *)en->kp, en->kn);
    case PROTOBUF_C_TYPE_BOOL:
        return en->key ? JOUT_LIT(c, "\"true\"") : JOUT_LIT(c, "\"false\"");
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return put_quoted_int(c, true, (int32_t)(uint32_t)en->key, 0, true);
    case PROTOBUF_C_TYPE_SINT32: {
        uint32_t z = (uint32_t)en->key;
        return put_quoted_int(c, true, (int32_t)((z >> 1) ^ (0u - (z & 1))), 0, true);
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return put_quoted_int(c, true, (int64_t)en->key, 0, true);
    case PROTOBUF_C_TYPE_SINT64:
        return put_quoted_int(c, true, (int64_t)((en->key >> 1) ^ (0 - (en->key & 1))), 0, true);
    default:
        return put_quoted_int(c, true, 0, en->key, false);
    }
}

int jenc_map(struct jenc *e, const struct jview *v, unsigned i)
{
    struct jctx *c = &e->c;
    const ProtobufCFieldDescriptor *f = &v->m->fields[i], *kf, *vf;
    jmap_entry_fields(f->descriptor, &kf, &vf); /* checked by jfield_is_map */
    bool str_keys = kf->type == PROTOBUF_C_TYPE_STRING;
    size_t ebase = e->nents;
    uint32_t order = 0;
    for (uint32_t k = jview_first(e, v, i); k != JOCC_END; k = e->occ[k].next) {
        struct jocc o = e->occ[k], key = {0}, val;
        bool has_key, has_val;
        TRY(scan_entry(e, kf, vf, o.p, o.v, &key, &has_key, &val, &has_val, NULL));
        e->ents = grow(e->ents, &e->ents_cap, e->nents + 1, sizeof(*e->ents));
        struct jent *en = &e->ents[e->nents++];
        *en = (struct jent){0, NULL, 0, o.p, o.v, order++, false};
        if (has_key) {
            if (str_keys) {
                en->kp = key.p;
                en->kn = key.v;
            } else {
                en->key = norm_key(kf->type, &key);
            }
        }
    }
    size_t n = e->nents - ebase;
    if (n > 1) {
        /* Sort a copy by (key, order) to find superseded entries; print the
         * survivors in wire order. */
        struct jent *sorted = pt_xmalloc(n * sizeof(*sorted));
        memcpy(sorted, e->ents + ebase, n * sizeof(*sorted));
        qsort_r(sorted, n, sizeof(*sorted), ent_cmp, str_keys ? (void *)1 : NULL);
        for (size_t j = 0; j + 1 < n; j++) {
            const struct jent *a = &sorted[j], *b = &sorted[j + 1];
            bool same = str_keys
                            ? a->kn == b->kn && (a->kn == 0 || memcmp(a->kp, b->kp, a->kn) == 0)
                            : a->key == b->key;
            if (same)
                e->ents[ebase + a->order].dead = true;
        }
        free(sorted);
    }
    TRY(jctx_enter(c, 0));
    TRY(jout_byte(c, '{'));
    bool first = true;
    for (size_t j = 0; j < n; j++) {
        struct jent en = e->ents[ebase + j];
        if (en.dead)
            continue;
        if (!first)
            TRY(jout_byte(c, ','));
        first = false;
        size_t key_at = c->out->len;
        TRY(put_map_key(e, kf->type, &en));
        /* The path names the key as printed (without its quotes). */
        char keybuf[24];
        size_t keylen = c->out->len - key_at - 2;
        if (!str_keys)
            memcpy(keybuf, c->out->data + key_at + 1, keylen < sizeof(keybuf) ? keylen : 0);
        TRY(jout_byte(c, ':'));
        jpath_push(c, JSEG_KEY, str_keys ? (const char *)en.kp : keybuf,
                   str_keys ? en.kn : (keylen < sizeof(keybuf) ? keylen : 0), 0);
        struct jocc key, val;
        bool has_key, has_val;
        size_t sbase = e->nspans, nsp = 0;
        TRY(scan_entry(e, kf, vf, en.p, en.n, &key, &has_key, &val, &has_val, &nsp));
        if (vf->type == PROTOBUF_C_TYPE_MESSAGE)
            TRY(jenc_message(e, vf->descriptor, sbase, nsp));
        else
            TRY(jenc_scalar(e, vf, has_val ? &val : NULL));
        e->nspans = sbase;
        jpath_pop(c);
    }
    e->nents = ebase;
    jctx_leave(c);
    return jout_byte(c, '}');
}

/* Are all occurrences of a repeated scalar field empty packed runs? */
static bool packed_empty(const struct jenc *e, const struct jview *v, unsigned i)
{
    for (uint32_t k = jview_first(e, v, i); k != JOCC_END; k = e->occ[k].next)
        if (e->occ[k].wt != WT_LEN || e->occ[k].v != 0)
            return false;
    return true;
}

/* A field with no occurrence, printed only with emit_defaults. */
static bool default_printed(const struct jctx *c, const ProtobufCFieldDescriptor *f)
{
    if (!c->opt.emit_defaults)
        return false;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return true;
    return f->label == PROTOBUF_C_LABEL_NONE && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
           f->type != PROTOBUF_C_TYPE_MESSAGE;
}

int jenc_fields(struct jenc *e, const struct jview *v, bool *first)
{
    struct jctx *c = &e->c;
    const ProtobufCMessageDescriptor *m = v->m;
    for (unsigned i = 0; i < m->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &m->fields[i];
        uint32_t count = jview_count(e, v, i);
        uint32_t after = JOCC_END; /* for a oneof: the last occurrence of another member */
        if (count == 0) {
            if (!default_printed(c, f))
                continue;
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            bool superseded = false;
            for (unsigned j = 0; j < m->n_fields; j++) {
                if (j == i || jview_count(e, v, j) == 0 || !jfield_same_oneof(f, &m->fields[j]))
                    continue;
                uint32_t lj = jview_last(e, v, j);
                if (lj > jview_last(e, v, i))
                    superseded = true;
                else if (after == JOCC_END || lj > after)
                    after = lj;
            }
            if (superseded)
                continue;
        }
        bool is_map = jfield_is_map(c, m, f);
        if (count > 0 && !is_map && f->label == PROTOBUF_C_LABEL_REPEATED && packable(f->type) &&
            !c->opt.emit_defaults && packed_empty(e, v, i))
            continue;
        if (count > 0 && !is_map && f->label != PROTOBUF_C_LABEL_REPEATED &&
            f->type != PROTOBUF_C_TYPE_MESSAGE && !jfield_has_presence(f) &&
            !c->opt.emit_defaults && occ_is_default(f, &e->occ[jview_last(e, v, i)]))
            continue;
        char buf[128];
        struct pt_str name = jfield_name(c, m, f, buf, sizeof(buf));
        if (!*first)
            TRY(jout_byte(c, ','));
        *first = false;
        TRY(jout_string(c, name.ptr, name.len));
        TRY(jout_byte(c, ':'));
        jpath_push(c, JSEG_FIELD, name.ptr, name.len, 0);
        if (count == 0) {
            if (is_map)
                TRY(JOUT_LIT(c, "{}"));
            else if (f->label == PROTOBUF_C_LABEL_REPEATED)
                TRY(JOUT_LIT(c, "[]"));
            else
                TRY(jenc_scalar(e, f, NULL));
        } else if (is_map) {
            TRY(jenc_map(e, v, i));
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            TRY(jenc_repeated(e, v, i));
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            size_t base, n;
            jview_msg_spans(e, v, i, after, &base, &n);
            TRY(jenc_message(e, f->descriptor, base, n));
            e->nspans = base;
        } else {
            TRY(jenc_scalar(e, f, &e->occ[jview_last(e, v, i)]));
        }
        jpath_pop(c);
    }
    return 0;
}

int jenc_message(struct jenc *e, const ProtobufCMessageDescriptor *m, size_t span_base,
                 size_t nspans)
{
    struct jctx *c = &e->c;
    if (!m)
        return jctx_fail(c, PT_ERR_INVALID, 0, "message type without descriptor");
    ProtobufCType wrapped = 0;
    enum jwkt kind = jwkt_kind(m, &wrapped);
    /* Depth counts JSON containers, as the decoder does: a message's object
     * here, maps and arrays where they are printed; the well-known types
     * printed as strings or numbers are no level. */
    bool object = kind == JWKT_NONE || kind == JWKT_ANY;
    if (object)
        TRY(jctx_enter(c, nspans ? jenc_off(e, e->spans[span_base].p) : 0));
    if (kind != JWKT_NONE) {
        TRY(jenc_wkt(e, m, kind, wrapped, span_base, nspans));
    } else {
        struct jview v;
        TRY(jview_scan(e, m, span_base, nspans, &v));
        TRY(jout_byte(c, '{'));
        bool first = true;
        TRY(jenc_fields(e, &v, &first));
        TRY(jout_byte(c, '}'));
        jview_pop(e, &v);
    }
    if (object)
        jctx_leave(c);
    return 0;
}

int pt_json_encode(const ProtobufCMessageDescriptor *desc, const uint8_t *wire, size_t len,
                   const struct pt_json_hooks *hooks, const struct pt_json_options *opts,
                   struct pt_json_out *out, struct pt_json_error *err)
{
    struct jenc e;
    jctx_init(&e.c, hooks, opts, out, err);
    static const uint8_t none[1];
    e.wire = wire ? wire : none;
    e.occ = NULL;
    e.idx = NULL;
    e.spans = NULL;
    e.ents = NULL;
    e.nocc = e.occ_cap = e.nidx = e.idx_cap = e.nspans = e.spans_cap = e.nents = e.ents_cap = 0;
    jspan_push(&e, e.wire, wire ? len : 0);
    jenc_message(&e, desc, 0, 1);
    free(e.occ);
    free(e.idx);
    free(e.spans);
    free(e.ents);
    return jctx_finish(&e.c);
}
