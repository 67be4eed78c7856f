/*
 * transcode/json_int.h - private to the JSON codec (json_*.c).
 *
 * struct jctx is what both directions share: the output buffer and its
 * limit, options, hooks, the JSON path for error messages, and the first
 * error. struct jdec (JSON -> wire) adds the tokenizer's position; struct
 * jenc (wire -> JSON) adds the scratch stacks of its field index.
 *
 * Convention inside the codec: functions return 0 or -1; -1 means jctx has
 * recorded the error (jctx_fail) and the caller unwinds.
 */
#ifndef PT_TRANSCODE_JSON_INT_H
#define PT_TRANSCODE_JSON_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "portico/errors.h"
#include "transcode/json.h"

#define TRY(e)         \
    do {               \
        if ((e) < 0)   \
            return -1; \
    } while (0)

/* ---- JSON path (error messages) ---- */

enum jseg_kind { JSEG_FIELD, JSEG_INDEX, JSEG_KEY };

struct jseg {
    enum jseg_kind kind;
    const char *name; /* FIELD, KEY: borrowed for the call */
    size_t len;
    size_t index; /* INDEX */
};

#define JPATH_INLINE 136

struct jpath {
    struct jseg *seg;
    size_t n, cap;
    struct jseg inline_seg[JPATH_INLINE];
};

/* ---- shared context ---- */

struct jctx {
    struct pt_json_out *out;
    size_t out_start; /* out->len at entry, restored on error */
    size_t out_max;   /* out->len may not pass this */
    const struct pt_json_hooks *hooks;
    struct pt_json_options opt;
    struct pt_json_error *err;
    int status; /* first error, 0 if none */
    unsigned depth;
    struct jpath path;
    struct pt_arena arena; /* per-call scratch with stable addresses */
};

void jctx_init(struct jctx *c, const struct pt_json_hooks *hooks,
               const struct pt_json_options *opts, struct pt_json_out *out,
               struct pt_json_error *err);
/* Status of the call: c->status; restores out->len on error; frees scratch. */
int jctx_finish(struct jctx *c);
/* Records the first error as "<path>: <message>" with offset; returns -1. */
int jctx_fail(struct jctx *c, int status, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* -1 with PT_ERR_LIMIT when the nesting limit is reached, else 0 (depth+1). */
int jctx_enter(struct jctx *c, size_t offset);
static inline void jctx_leave(struct jctx *c)
{
    c->depth--;
}

static inline void jpath_push(struct jctx *c, enum jseg_kind kind, const char *name, size_t len,
                              size_t index)
{
    /* jctx_enter bounds depth, and each level pushes at most two segments;
     * the array is sized for that, so this never overflows. */
    if (c->path.n < c->path.cap)
        c->path.seg[c->path.n] = (struct jseg){kind, name, len, index};
    c->path.n++;
}
static inline void jpath_pop(struct jctx *c)
{
    c->path.n--;
}
static inline void jpath_set_index(struct jctx *c, size_t index)
{
    if (c->path.n > 0 && c->path.n <= c->path.cap)
        c->path.seg[c->path.n - 1].index = index;
}

/* ---- output ---- */

int jout_grow(struct jctx *c, size_t n);
static inline int jout_reserve(struct jctx *c, size_t n)
{
    struct pt_json_out *o = c->out;
    if (o->cap - o->len >= n && o->len + n <= c->out_max)
        return 0;
    return jout_grow(c, n);
}
static inline int jout_put(struct jctx *c, const void *p, size_t n)
{
    TRY(jout_reserve(c, n));
    if (n)
        memcpy(c->out->data + c->out->len, p, n);
    c->out->len += n;
    return 0;
}
static inline int jout_byte(struct jctx *c, char b)
{
    TRY(jout_reserve(c, 1));
    c->out->data[c->out->len++] = b;
    return 0;
}
#define JOUT_LIT(c, lit) jout_put((c), (lit), sizeof(lit) - 1)

/* ---- wire writing (decode) ---- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

static inline size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
static inline size_t varint_write(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}
static inline int wput_varint(struct jctx *c, uint64_t v)
{
    TRY(jout_reserve(c, 10));
    c->out->len += varint_write((uint8_t *)c->out->data + c->out->len, v);
    return 0;
}
static inline int wput_tag(struct jctx *c, uint32_t field, int wt)
{
    return wput_varint(c, ((uint64_t)field << 3) | (uint64_t)wt);
}
static inline int wput_fixed32(struct jctx *c, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return jout_put(c, b, 4);
}
static inline int wput_fixed64(struct jctx *c, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return jout_put(c, b, 8);
}
/* Length-delimited records whose length is known only afterwards: reserve
 * one byte, write the body, then widen the length in place (memmove of the
 * body) when it needs more than one byte. Returns the reserved position. */
static inline int wlen_begin(struct jctx *c, size_t *pos)
{
    TRY(jout_reserve(c, 1));
    *pos = c->out->len++;
    return 0;
}
int wlen_end(struct jctx *c, size_t pos);

static inline uint64_t zigzag64(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}
static inline uint32_t zigzag32(int32_t v)
{
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}

/* ---- text helpers (json_text.c) ---- */

/* Length of a valid UTF-8 sequence starting at p (< end), or 0 if invalid
 * (overlong, surrogate, beyond U+10FFFF, truncated). */
size_t utf8_seq_len(const uint8_t *p, const uint8_t *end);
bool utf8_valid(const uint8_t *p, size_t n);
/* Appends s as a JSON string literal (quotes included). s must be valid UTF-8. */
int jout_string(struct jctx *c, const char *s, size_t n);
/* Appends the base64 (standard alphabet, padded) of p[0..n) in quotes. */
int jout_base64(struct jctx *c, const uint8_t *p, size_t n);
/* Decodes base64 in[0..n) (standard or URL-safe alphabet, padding optional)
 * to out (room for n*3/4+3 bytes). Returns the length, or -1 if invalid. */
long base64_decode(const char *in, size_t n, uint8_t *out);
/* Shortest text that reads back as the same double / float (no NaN/Inf). */
size_t fmt_double(double v, char *buf /* >= 32 */);
size_t fmt_float(float v, char *buf /* >= 32 */);
size_t fmt_i64(int64_t v, char *buf /* >= 21 */);

/* An exact decimal reading of a JSON number's text: value = mant * 10^exp10
 * with all digits kept. */
enum num_int { NUM_INT_OK, NUM_INT_FRACTION, NUM_INT_RANGE, NUM_INT_SYNTAX };
/* Is s[0..n) a JSON number (RFC 8259 grammar)? */
bool json_number_syntax(const char *s, size_t n);
/* Integral value of number text s (JSON grammar, already checked): *neg and
 * magnitude *mag. NUM_INT_FRACTION if not integral, NUM_INT_RANGE beyond
 * 2^64-1 in magnitude. */
enum num_int num_to_int(const char *s, size_t n, bool *neg, uint64_t *mag);
/* strtod on s[0..n) (JSON grammar, already checked); 0 ok, -1 out of range. */
int num_to_double(const char *s, size_t n, double *out);
int num_to_float(const char *s, size_t n, float *out);

/* ---- schema helpers (json_schema.c) ---- */

/* The field's JSON name (hook or default), written to buf when computed. */
struct pt_str jfield_name(struct jctx *c, const ProtobufCMessageDescriptor *m,
                          const ProtobufCFieldDescriptor *f, char *buf, size_t cap);
bool jfield_is_map(struct jctx *c, const ProtobufCMessageDescriptor *m,
                   const ProtobufCFieldDescriptor *f);
/* Field of m with this number, or NULL. hint: index to try first (updated). */
const ProtobufCFieldDescriptor *jfield_by_number(const ProtobufCMessageDescriptor *m,
                                                 uint32_t number, unsigned *hint);
/* Field of m whose JSON name or proto name is key, or NULL. hint as above. */
const ProtobufCFieldDescriptor *jfield_by_key(struct jctx *c, const ProtobufCMessageDescriptor *m,
                                              struct pt_str key, unsigned *hint);
const ProtobufCEnumValue *jenum_by_name(const ProtobufCEnumDescriptor *e, struct pt_str name);
const ProtobufCEnumValue *jenum_by_number(const ProtobufCEnumDescriptor *e, int32_t v);
/* Map entry's key (number 1) and value (number 2) fields, or -1. */
int jmap_entry_fields(const ProtobufCMessageDescriptor *entry, const ProtobufCFieldDescriptor **key,
                      const ProtobufCFieldDescriptor **value);
/* The expected wire type of a non-packed value of type t. */
int jwire_type(ProtobufCType t);
/* Explicit presence: written/printed even when it holds the default value. */
static inline bool jfield_has_presence(const ProtobufCFieldDescriptor *f)
{
    return f->label == PROTOBUF_C_LABEL_OPTIONAL || f->label == PROTOBUF_C_LABEL_REQUIRED ||
           (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || f->type == PROTOBUF_C_TYPE_MESSAGE;
}
static inline bool jfield_same_oneof(const ProtobufCFieldDescriptor *a,
                                     const ProtobufCFieldDescriptor *b)
{
    return (a->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && (b->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
           a->quantifier_offset == b->quantifier_offset;
}
const char *jtype_name(ProtobufCType t);

/* ---- well-known types ---- */

enum jwkt {
    JWKT_NONE = 0,
    JWKT_ANY,
    JWKT_TIMESTAMP,
    JWKT_DURATION,
    JWKT_FIELD_MASK,
    JWKT_STRUCT,
    JWKT_VALUE,
    JWKT_LIST_VALUE,
    JWKT_WRAPPER, /* value = field 1 */
};
/* Kind of m by full name; *wrapped is the wrapper's value type. */
enum jwkt jwkt_kind(const ProtobufCMessageDescriptor *m, ProtobufCType *wrapped);

/* ---- decoder (JSON -> wire) ---- */

enum jtok { JT_ERR, JT_OBJ, JT_ARR, JT_STR, JT_NUM, JT_TRUE, JT_FALSE, JT_NULL };

/* A JSON string token: raw is the text between the quotes. */
struct jstr {
    const char *raw;
    size_t len;
    bool escaped; /* contains backslash escapes (decode with jstr_decode) */
};

struct jdec {
    struct jctx c;
    const char *start, *p, *end;
    struct pt_str *keys; /* stack of object keys (duplicate detection) */
    size_t nkeys, keys_cap;
};

static inline size_t jdec_off(const struct jdec *d)
{
    return (size_t)(d->p - d->start);
}
/* Tokenizer (json_lex.c). jlex_peek skips whitespace and classifies the
 * next value without consuming it. */
enum jtok jlex_peek(struct jdec *d);
const char *jtok_name(enum jtok t);
int jlex_string(struct jdec *d, struct jstr *s);
/* Decoded bytes of s into dst (room for s->len bytes); returns length. */
size_t jstr_decode(const struct jstr *s, char *dst);
/* s decoded into stable memory (the input itself when unescaped). */
int jstr_get(struct jdec *d, const struct jstr *s, struct pt_str *out);
int jlex_number(struct jdec *d, struct pt_str *num);
int jlex_literal(struct jdec *d, enum jtok t);
int jlex_skip(struct jdec *d);
/* Objects: jlex_obj_begin consumes '{'; jlex_obj_next returns 1 with the
 * next key (its ':' consumed), 0 after the closing '}', -1 on error. */
int jlex_obj_begin(struct jdec *d);
int jlex_obj_next(struct jdec *d, bool *first, struct pt_str *key, struct jstr *raw_key);
int jlex_arr_begin(struct jdec *d);
int jlex_arr_next(struct jdec *d, bool *first);
/* Expect kind at the current position or fail with "expected <what>, got <kind>". */
int jdec_expect(struct jdec *d, enum jtok kind, const char *what);
int jdec_type_error(struct jdec *d, const char *what, enum jtok got);

/* Object keys, for duplicate detection: push each key, then check once at
 * the end of the object (sorting, so hostile inputs stay O(n log n)). */
int jkeys_push(struct jdec *d, struct pt_str key);
int jkeys_check(struct jdec *d, size_t base, size_t offset);

/* json_decode.c */
int jdec_message(struct jdec *d, const ProtobufCMessageDescriptor *m);
/* Writes one non-message value of field f (no tag). Returns 1 when written,
 * 0 when skipped (unknown enum name ignored), -1 on error. */
int jdec_scalar(struct jdec *d, const ProtobufCFieldDescriptor *f, bool skip_default,
                uint32_t tag_field);
/* A message's fields from a JSON object; any_body: skip "@type" (an Any's
 * payload inline). */
int jdec_regular_fields(struct jdec *d, const ProtobufCMessageDescriptor *m, bool any_body);
/* A map field's entries from a JSON object; a repeated field from an array. */
int jdec_map(struct jdec *d, const ProtobufCFieldDescriptor *f);
int jdec_repeated(struct jdec *d, const ProtobufCFieldDescriptor *f);
/* Writes field tag_field = google.protobuf.Value{null_value: NULL_VALUE}. */
int jdec_value_null(struct jctx *c, uint32_t tag_field);

/* json_wkt.c, decode side: the current value is the JSON of WKT kind. */
int jdec_wkt(struct jdec *d, const ProtobufCMessageDescriptor *m, enum jwkt kind,
             ProtobufCType wrapped);

/* ---- encoder (wire -> JSON) ---- */

struct jspan {
    const uint8_t *p;
    size_t n;
};

/* One field occurrence found in the wire bytes; occurrences of the same
 * field are linked in wire order. */
struct jocc {
    const uint8_t *p; /* value bytes (LEN payload, fixed bytes) */
    uint64_t v;       /* varint value, or LEN length */
    uint32_t next;    /* next occurrence of the same field (absolute index), or JOCC_END */
    uint8_t wt;
};
#define JOCC_END UINT32_MAX

/* A map entry while a map is printed (duplicate keys: the last one wins). */
struct jent {
    uint64_t key;      /* integer and bool keys, normalized */
    const uint8_t *kp; /* string keys */
    size_t kn;
    const uint8_t *p; /* the entry's bytes */
    size_t n;
    uint32_t order; /* wire order */
    bool dead;      /* superseded by a later entry with the same key */
};

struct jenc {
    struct jctx c;
    const uint8_t *wire; /* start, for error offsets */
    struct jocc *occ;
    size_t nocc, occ_cap;
    uint32_t *idx;
    size_t nidx, idx_cap;
    struct jspan *spans;
    size_t nspans, spans_cap;
    struct jent *ents;
    size_t nents, ents_cap;
};

/* The fields of one message, indexed: for fields[i], e->idx[idx_base + 3i]
 * is the first occurrence, +1 the last, +2 the count. */
struct jview {
    const ProtobufCMessageDescriptor *m;
    size_t occ_mark, idx_base; /* stack marks to pop */
};

static inline size_t jenc_off(const struct jenc *e, const uint8_t *p)
{
    return p ? (size_t)(p - e->wire) : 0;
}
/* Scans the message m made of the concatenated spans
 * e->spans[span_base .. +nspans) (several spans = merged occurrences). */
int jview_scan(struct jenc *e, const ProtobufCMessageDescriptor *m, size_t span_base, size_t nspans,
               struct jview *v);
void jview_pop(struct jenc *e, const struct jview *v);
static inline uint32_t jview_count(const struct jenc *e, const struct jview *v, unsigned i)
{
    return e->idx[v->idx_base + 3 * i + 2];
}
static inline uint32_t jview_first(const struct jenc *e, const struct jview *v, unsigned i)
{
    return e->idx[v->idx_base + 3 * i];
}
static inline uint32_t jview_last(const struct jenc *e, const struct jview *v, unsigned i)
{
    return e->idx[v->idx_base + 3 * i + 1];
}
/* Index of the field numbered `number` in v->m, or -1. */
int jview_field(const struct jview *v, uint32_t number);
/* Pushes a span for each occurrence of field i (a message) after wire
 * position `after` (JOCC_END: all); *base and *n say where. */
void jview_msg_spans(struct jenc *e, const struct jview *v, unsigned i, uint32_t after,
                     size_t *base, size_t *n);
void jspan_push(struct jenc *e, const uint8_t *p, size_t n);

int jenc_message(struct jenc *e, const ProtobufCMessageDescriptor *m, size_t span_base,
                 size_t nspans);
/* Prints the fields of an indexed message, after `first` members. */
int jenc_fields(struct jenc *e, const struct jview *v, bool *first);
/* Prints field i of v as a JSON object (a map) / array (repeated). */
int jenc_map(struct jenc *e, const struct jview *v, unsigned i);
int jenc_repeated(struct jenc *e, const struct jview *v, unsigned i);
/* Prints one scalar occurrence (or the default when o is NULL). */
int jenc_scalar(struct jenc *e, const ProtobufCFieldDescriptor *f, const struct jocc *o);
/* Reads a varint at *p (< end); -1 if malformed. */
int jwire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* json_wkt.c, encode side. */
int jenc_wkt(struct jenc *e, const ProtobufCMessageDescriptor *m, enum jwkt kind,
             ProtobufCType wrapped, size_t span_base, size_t nspans);

#endif
