/*
 * One transcoded call, sans-I/O: the request message built from the body
 * and the bindings, the response rendered as JSON, errors in the JSON
 * error shape.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "google/protobuf/any.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "portico/errors.h"
#include "transcode/route.h"
#include "transcode/route_int.h"

/* Bytes of one status-details header we decode. */
#define MAX_DETAILS_BYTES (64u * 1024u)
/* Nesting of a response message or status detail unpacked or rendered. */
#define MAX_WIRE_DEPTH 64u

void pt_tc_out_append(struct pt_json_out *out, const void *p, size_t n)
{
    if (out->len + n + 1 > out->cap) {
        size_t c = out->cap ? out->cap : 256;
        while (c < out->len + n + 1)
            c *= 2;
        out->data = pt_xrealloc(out->data, c);
        out->cap = c;
    }
    memcpy(out->data + out->len, p, n);
    out->len += n;
}

static void put(struct pt_json_out *out, const char *s)
{
    pt_tc_out_append(out, s, strlen(s));
}

bool pt_tc_header_name_ok(struct pt_str name)
{
    if (!name.len)
        return false;
    for (size_t i = 0; i < name.len; i++) {
        char c = name.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* Length of the valid UTF-8 sequence at p[0..n), 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        len = 2, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        len = 4, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    uint32_t cp = c & (0x3fu >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Append s as a JSON string (quotes included); invalid UTF-8 becomes U+FFFD. */
static void json_str(struct pt_json_out *out, struct pt_str s)
{
    static const char hex[] = "0123456789abcdef";
    pt_tc_out_append(out, "\"", 1);
    const unsigned char *p = (const unsigned char *)s.ptr;
    for (size_t i = 0; i < s.len;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            pt_tc_out_append(out, e, 2);
            i++;
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            pt_tc_out_append(out, e, 6);
            i++;
        } else if (c < 0x80) {
            pt_tc_out_append(out, &c, 1);
            i++;
        } else {
            size_t n = utf8_len(p + i, s.len - i);
            if (n) {
                pt_tc_out_append(out, p + i, n);
                i += n;
            } else {
                put(out, "\\ufffd");
                i++;
            }
        }
    }
    pt_tc_out_append(out, "\"", 1);
}

static void set_err(struct pt_tc_error *err, int status, const char *fmt, const char *a,
                    const char *b)
{
    if (!err)
        return;
    err->http_status = status;
    snprintf(err->message, sizeof(err->message), fmt, a, b ? b : "");
}

/* --- the request message ------------------------------------------------ */

static bool is_blank(struct pt_str s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] != ' ' && s.ptr[i] != '\t' && s.ptr[i] != '\r' && s.ptr[i] != '\n')
            return false;
    return true;
}

static int decode_into(const struct pt_tc_route *r, const ProtobufCMessageDescriptor *d,
                       struct pt_str json, struct pt_json_out *out, struct pt_tc_error *err)
{
    struct pt_json_error je;
    memset(&je, 0, sizeof(je));
    int rc = pt_json_decode(d, json, &r->hooks, &r->decode, out, &je);
    if (rc == 0)
        return 0;
    set_err(err, rc == PT_ERR_LIMIT ? 413 : 400, "invalid request: %s%s", je.message, NULL);
    return rc;
}

/* Build {"a":{"b":VALUE}} for one binding and decode it into out. */
static int bind_param(const struct pt_tc_route *r, const ProtobufCMessageDescriptor *d,
                      const struct pt_httprule_param *p, struct pt_json_out *out,
                      struct pt_tc_error *err)
{
    struct pt_json_out j = {0};
    const ProtobufCMessageDescriptor *top = d;
    const ProtobufCFieldDescriptor *f = NULL;
    char path[256];
    size_t pl = 0;
    int rc = 0;
    for (uint32_t i = 0; i < p->field.nseg; i++) {
        struct pt_str seg = p->field.seg[i];
        pl += (size_t)snprintf(path + pl, sizeof(path) - pl, "%s%.*s", i ? "." : "", (int)seg.len,
                               seg.ptr);
        if (pl >= sizeof(path))
            pl = sizeof(path) - 1;
        f = pt_tc_field_find(d, seg);
        if (!f) {
            if (r->decode.ignore_unknown) {
                pt_json_out_fini(&j);
                return 0;
            }
            set_err(err, 400, "invalid request: %s: no such field", path, NULL);
            rc = PT_ERR_INVALID;
            goto done;
        }
        pt_tc_out_append(&j, "{", 1);
        json_str(&j, pt_str_from_cstr(f->name));
        pt_tc_out_append(&j, ":", 1);
        if (i + 1 < p->field.nseg) {
            if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED) {
                set_err(err, 400, "invalid request: %s: not a message field", path, NULL);
                rc = PT_ERR_INVALID;
                goto done;
            }
            d = f->descriptor;
        }
    }
    const struct pt_descpool_field *fi = pt_descpool_field_info(d, f);
    if (fi && fi->is_map) {
        set_err(err, 400, "invalid request: %s: a map cannot be bound from the path or query", path,
                NULL);
        rc = PT_ERR_INVALID;
        goto done;
    }
    bool rep = f->label == PROTOBUF_C_LABEL_REPEATED;
    bool boolish = f->type == PROTOBUF_C_TYPE_BOOL ||
                   (f->type == PROTOBUF_C_TYPE_MESSAGE &&
                    strcmp(((const ProtobufCMessageDescriptor *)f->descriptor)->name,
                           "google.protobuf.BoolValue") == 0);
    if (rep)
        pt_tc_out_append(&j, "[", 1);
    if (boolish && (pt_str_eq(p->value, PT_STR("true")) || pt_str_eq(p->value, PT_STR("false"))))
        pt_tc_out_append(&j, p->value.ptr, p->value.len);
    else
        json_str(&j, p->value);
    if (rep)
        pt_tc_out_append(&j, "]", 1);
    for (uint32_t i = 0; i < p->field.nseg; i++)
        pt_tc_out_append(&j, "}", 1);
    rc = decode_into(r, top, (struct pt_str){j.data, j.len}, out, err);
done:
    pt_json_out_fini(&j);
    return rc;
}

static void put_varint(struct pt_json_out *out, uint64_t v);

bool pt_tc_is_http_body(const ProtobufCMessageDescriptor *d)
{
    return d && strcmp(d->name, "google.api.HttpBody") == 0;
}

/* HttpBody{content_type, data} on the wire. */
static void http_body_wire(struct pt_str ct, struct pt_str data, struct pt_json_out *out)
{
    if (ct.len) {
        pt_tc_out_append(out, "\x0a", 1);
        put_varint(out, ct.len);
        pt_tc_out_append(out, ct.ptr, ct.len);
    }
    if (data.len) {
        pt_tc_out_append(out, "\x12", 1);
        put_varint(out, data.len);
        pt_tc_out_append(out, data.ptr, data.len);
    }
}

int pt_tc_request_build(const struct pt_tc_route *r, const struct pt_httprule_match *m,
                        struct pt_str body, struct pt_str content_type, struct pt_json_out *out,
                        struct pt_tc_error *err)
{
    const struct pt_tc_method *tm = &r->methods[m->method];
    size_t start = out->len;
    int rc = 0;
    const ProtobufCFieldDescriptor *bf =
        m->body == PT_HTTPRULE_BODY_FIELD ? pt_tc_field_find(tm->in, m->body_field.seg[0]) : NULL;
    if (m->body == PT_HTTPRULE_BODY_ALL && pt_tc_is_http_body(tm->in)) {
        http_body_wire(content_type, body, out);
    } else if (bf && bf->type == PROTOBUF_C_TYPE_MESSAGE &&
               bf->label != PROTOBUF_C_LABEL_REPEATED && pt_tc_is_http_body(bf->descriptor)) {
        struct pt_json_out hb = {0};
        http_body_wire(content_type, body, &hb);
        put_varint(out, (uint64_t)bf->id << 3 | 2);
        put_varint(out, hb.len);
        pt_tc_out_append(out, hb.data, hb.len);
        pt_json_out_fini(&hb);
    } else if (m->body == PT_HTTPRULE_BODY_ALL && !is_blank(body)) {
        rc = decode_into(r, tm->in, body, out, err);
    } else if (m->body == PT_HTTPRULE_BODY_FIELD && !is_blank(body)) {
        struct pt_json_out j = {0};
        pt_tc_out_append(&j, "{", 1);
        json_str(&j, m->body_field.seg[0]);
        pt_tc_out_append(&j, ":", 1);
        pt_tc_out_append(&j, body.ptr, body.len);
        pt_tc_out_append(&j, "}", 1);
        rc = decode_into(r, tm->in, (struct pt_str){j.data, j.len}, out, err);
        pt_json_out_fini(&j);
    }
    for (size_t i = 0; rc == 0 && i < m->nparams; i++)
        rc = bind_param(r, tm->in, &m->params[i], out, err);
    if (rc != 0)
        out->len = start;
    return rc;
}

static int one_frame(const struct pt_tc_route *r, const struct pt_httprule_match *m,
                     struct pt_str body, struct pt_str ct, struct pt_json_out *out,
                     struct pt_tc_error *err)
{
    size_t at = out->len;
    pt_tc_out_append(out, "\0\0\0\0\0", 5);
    int rc = pt_tc_request_build(r, m, body, ct, out, err);
    if (rc != 0) {
        out->len = at;
        return rc;
    }
    size_t n = out->len - at - 5;
    if (n > UINT32_MAX) {
        out->len = at;
        set_err(err, 413, "invalid request: %s%s", "message too large", NULL);
        return PT_ERR_LIMIT;
    }
    uint8_t *p = (uint8_t *)out->data + at;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    return 0;
}

int pt_tc_request_line_frame(const struct pt_tc_route *r, const struct pt_httprule_match *m,
                             struct pt_str line, uint64_t lineno, struct pt_str content_type,
                             struct pt_json_out *out, struct pt_tc_error *err)
{
    if (is_blank(line))
        return 0;
    int rc = one_frame(r, m, line, content_type, out, err);
    if (rc != 0 && err) {
        char msg[sizeof(err->message)];
        int k = snprintf(msg, sizeof(msg), "line %llu: ", (unsigned long long)lineno);
        size_t room = sizeof(msg) - (size_t)k - 1, ml = strlen(err->message);
        memcpy(msg + k, err->message, ml < room ? ml : room);
        msg[(size_t)k + (ml < room ? ml : room)] = 0;
        memcpy(err->message, msg, sizeof(msg));
    }
    return rc;
}

int pt_tc_request_frames(const struct pt_tc_route *r, const struct pt_httprule_match *m,
                         struct pt_str body, struct pt_str content_type, struct pt_json_out *out,
                         struct pt_tc_error *err)
{
    if (!r->methods[m->method].m->client_streaming)
        return one_frame(r, m, body, content_type, out, err);
    size_t start = out->len;
    uint64_t line = 0;
    for (size_t i = 0; i < body.len;) {
        const char *nl = memchr(body.ptr + i, '\n', body.len - i);
        size_t end = nl ? (size_t)(nl - body.ptr) : body.len;
        struct pt_str l = {body.ptr + i, end - i};
        line++;
        i = end + 1;
        int rc = pt_tc_request_line_frame(r, m, l, line, content_type, out, err);
        if (rc != 0) {
            out->len = start;
            return rc;
        }
    }
    return 0;
}

/* --- the response -------------------------------------------------------- */

static bool read_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64 && *i < n; shift += 7) {
        uint8_t b = p[(*i)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* Copy the occurrences of field number `id` in wire into out.
 * Status: 0 or PT_ERR_INVALID (malformed, or a group). */
static int filter_field(const uint8_t *wire, size_t len, uint32_t id, struct pt_json_out *out)
{
    size_t i = 0;
    while (i < len) {
        size_t at = i;
        uint64_t key, v;
        if (!read_varint(wire, len, &i, &key))
            return PT_ERR_INVALID;
        switch (key & 7) {
        case 0:
            if (!read_varint(wire, len, &i, &v))
                return PT_ERR_INVALID;
            break;
        case 1:
            if (len - i < 8)
                return PT_ERR_INVALID;
            i += 8;
            break;
        case 5:
            if (len - i < 4)
                return PT_ERR_INVALID;
            i += 4;
            break;
        case 2:
            if (!read_varint(wire, len, &i, &v) || v > len - i)
                return PT_ERR_INVALID;
            i += (size_t)v;
            break;
        default:
            return PT_ERR_INVALID;
        }
        if ((key >> 3) == id)
            pt_tc_out_append(out, wire + at, i - at);
    }
    return 0;
}

/* End of the JSON value starting at p[i] (compact JSON from the codec). */
static size_t value_end(const char *p, size_t n, size_t i)
{
    int depth = 0;
    bool str = false;
    for (; i < n; i++) {
        char c = p[i];
        if (str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                str = false;
            if (!str && depth == 0)
                return i + 1;
            continue;
        }
        if (c == '"')
            str = true;
        else if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']') {
            if (depth == 0)
                return i; /* the end of the enclosing object */
            if (--depth == 0)
                return i + 1;
        } else if (c == ',' && depth == 0)
            return i;
    }
    return n;
}

/* The first member's value of the object j[0..n): true with [*vs, *ve). */
static bool first_member_value(const char *j, size_t n, size_t *vs, size_t *ve)
{
    if (n < 2 || j[0] != '{' || j[1] != '"')
        return false;
    size_t k = value_end(j, n, 1); /* the key */
    if (k >= n || j[k] != ':')
        return false;
    *vs = k + 1;
    *ve = value_end(j, n, k + 1);
    return *ve > *vs;
}

/* The first member is f (with emit_defaults, fields before f could print). */
static bool key_is(const char *j, size_t n, const ProtobufCFieldDescriptor *f,
                   const struct pt_tc_route *r, const ProtobufCMessageDescriptor *d)
{
    const char *name = f->name;
    if (!r->encode.original_names) {
        const struct pt_descpool_field *fi = pt_descpool_field_info(d, f);
        if (fi && fi->json_name)
            name = fi->json_name;
    }
    size_t len = strlen(name);
    return n > len + 2 && memcmp(j + 2, name, len) == 0 && j[2 + len] == '"';
}

/* What an unset response_body field renders as; NULL for an enum. */
static const char *unset_value(const ProtobufCFieldDescriptor *f, const struct pt_tc_route *r,
                               const ProtobufCMessageDescriptor *d)
{
    const struct pt_descpool_field *fi = pt_descpool_field_info(d, f);
    if (fi && fi->is_map)
        return "{}";
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return "[]";
    (void)r;
    switch (f->type) {
    case PROTOBUF_C_TYPE_MESSAGE:
        return "null";
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
        return "\"\"";
    case PROTOBUF_C_TYPE_BOOL:
        return "false";
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return "\"0\"";
    case PROTOBUF_C_TYPE_ENUM:
        return NULL; /* the name of value 0 */
    default:
        return "0";
    }
}

/* The last length-delimited field `id` of wire into *v. Status: 0 or
 * PT_ERR_INVALID. */
static int last_bytes_field(const uint8_t *wire, size_t len, uint32_t id, struct pt_str *v)
{
    size_t i = 0;
    while (i < len) {
        uint64_t key, n;
        if (!read_varint(wire, len, &i, &key))
            return PT_ERR_INVALID;
        switch (key & 7) {
        case 0:
            if (!read_varint(wire, len, &i, &n))
                return PT_ERR_INVALID;
            break;
        case 1:
        case 5:
            n = (key & 7) == 1 ? 8 : 4;
            if (len - i < n)
                return PT_ERR_INVALID;
            i += (size_t)n;
            break;
        case 2:
            if (!read_varint(wire, len, &i, &n) || n > len - i)
                return PT_ERR_INVALID;
            if ((key >> 3) == id)
                *v = (struct pt_str){(const char *)wire + i, (size_t)n};
            i += (size_t)n;
            break;
        default:
            return PT_ERR_INVALID;
        }
    }
    return 0;
}

bool pt_tc_response_http_body(const struct pt_tc_route *r, uint32_t mi,
                              const struct pt_httprule_field *response_field, const uint8_t *wire,
                              size_t len, struct pt_str *content_type, struct pt_str *data)
{
    const struct pt_tc_method *tm = &r->methods[mi];
    *content_type = PT_STR_NULL;
    *data = PT_STR_NULL;
    if (response_field && response_field->nseg) {
        const ProtobufCFieldDescriptor *f = pt_tc_field_find(tm->out, response_field->seg[0]);
        if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED ||
            !pt_tc_is_http_body(f->descriptor))
            return false;
        struct pt_str sub = PT_STR_NULL;
        if (last_bytes_field(wire, len, f->id, &sub) != 0)
            return false;
        wire = (const uint8_t *)sub.ptr;
        len = sub.len;
    } else if (!pt_tc_is_http_body(tm->out)) {
        return false;
    }
    if (len && (last_bytes_field(wire, len, 1, content_type) != 0 ||
                last_bytes_field(wire, len, 2, data) != 0))
        return false;
    return true;
}

int pt_tc_response_json(const struct pt_tc_route *r, uint32_t mi,
                        const struct pt_httprule_field *response_field, const uint8_t *wire,
                        size_t len, struct pt_json_out *out, struct pt_tc_error *err)
{
    const struct pt_tc_method *tm = &r->methods[mi];
    struct pt_json_error je;
    memset(&je, 0, sizeof(je));
    if (pt_descpool_check_depth(tm->out, wire, len, MAX_WIRE_DEPTH) != 0) {
        set_err(err, 500, "the backend's response does not parse as %s%s", tm->out->name, NULL);
        return PT_ERR_INVALID;
    }
    if (!response_field || response_field->nseg == 0) {
        int rc = pt_json_encode(tm->out, wire, len, &r->hooks, &r->encode, out, &je);
        if (rc != 0)
            set_err(err, 500, "the backend's response cannot be rendered: %s%s", je.message, NULL);
        return rc;
    }
    const ProtobufCFieldDescriptor *f = pt_tc_field_find(tm->out, response_field->seg[0]);
    struct pt_json_out only = {0}, j = {0};
    int rc = f ? filter_field(wire, len, f->id, &only) : PT_ERR_INVALID;
    if (rc != 0) {
        set_err(err, 500, "the backend's response does not parse as %s%s", tm->out->name, NULL);
        goto done;
    }
    /* Rendered as a one-field message: {"<name>":VALUE,...} (with
     * emit_defaults the other fields follow) or {} when the field is unset. */
    rc = pt_json_encode(tm->out, (const uint8_t *)only.data, only.len, &r->hooks, &r->encode, &j,
                        &je);
    if (rc != 0) {
        set_err(err, 500, "the backend's response cannot be rendered: %s%s", je.message, NULL);
        goto done;
    }
    size_t vs = 0, ve = 0;
    if (!first_member_value(j.data, j.len, &vs, &ve) || !key_is(j.data, j.len, f, r, tm->out)) {
        const char *u = unset_value(f, r, tm->out);
        const ProtobufCEnumValue *v =
            u ? NULL : protobuf_c_enum_descriptor_get_value(f->descriptor, 0);
        if (u)
            put(out, u);
        else if (v)
            json_str(out, pt_str_from_cstr(v->name));
        else
            put(out, "0");
    } else
        pt_tc_out_append(out, j.data + vs, ve - vs);
done:
    pt_json_out_fini(&only);
    pt_json_out_fini(&j);
    return rc;
}

/* --- status codes and the error shape ------------------------------------ */

int pt_tc_http_status(int code)
{
    static const int map[] = {200, 499, 500, 400, 504, 404, 409, 403, 429,
                              400, 409, 400, 501, 500, 503, 500, 401};
    if (code < 0 || (size_t)code >= sizeof(map) / sizeof(map[0]))
        return 500;
    return map[code];
}

int pt_tc_grpc_code_of_http(int s)
{
    switch (s) {
    case 400:
        return 13; /* INTERNAL */
    case 401:
        return 16; /* UNAUTHENTICATED */
    case 403:
        return 7; /* PERMISSION_DENIED */
    case 404:
        return 12; /* UNIMPLEMENTED */
    case 429:
    case 502:
    case 503:
    case 504:
        return 14; /* UNAVAILABLE */
    default:
        return 2; /* UNKNOWN */
    }
}

static int b64_val(char c)
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

/* Standard or URL-safe base64, padding optional. Returns the length, or
 * -1 when invalid. out holds at least in.len * 3 / 4 + 3 bytes. */
static long b64_decode(struct pt_str in, uint8_t *out)
{
    size_t n = in.len;
    while (n && in.ptr[n - 1] == '=')
        n--;
    uint32_t acc = 0;
    unsigned bits = 0;
    long o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(in.ptr[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return o;
}

static void b64_encode(const uint8_t *p, size_t n, struct pt_json_out *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {t[(v >> 18) & 63], t[(v >> 12) & 63], i + 1 < n ? t[(v >> 6) & 63] : '=',
                     i + 2 < n ? t[v & 63] : '='};
        pt_tc_out_append(out, q, 4);
    }
}

static void put_varint(struct pt_json_out *out, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    pt_tc_out_append(out, b, n);
}

static void render_detail(const struct pt_tc_route *r, const Google__Protobuf__Any *a,
                          struct pt_json_out *out)
{
    const char *url = a->type_url ? a->type_url : "";
    if (r && r->pool) { /* a reflection route's stand-in has no pool */
        struct pt_json_out any = {0};
        pt_tc_out_append(&any, "\x0a", 1);
        put_varint(&any, strlen(url));
        put(&any, url);
        pt_tc_out_append(&any, "\x12", 1);
        put_varint(&any, a->value.len);
        pt_tc_out_append(&any, a->value.data, a->value.len);
        struct pt_json_options o = r->encode;
        o.max_output = MAX_DETAILS_BYTES * 4;
        size_t before = out->len;
        int rc = pt_descpool_check_depth(&google__protobuf__any__descriptor,
                                         (const uint8_t *)any.data, any.len, MAX_WIRE_DEPTH);
        if (rc == 0)
            rc = pt_json_encode(&google__protobuf__any__descriptor, (const uint8_t *)any.data,
                                any.len, &r->hooks, &o, out, NULL);
        pt_json_out_fini(&any);
        if (rc == 0)
            return;
        out->len = before;
    }
    put(out, "{\"@type\":");
    json_str(out, pt_str_from_cstr(url));
    put(out, ",\"value\":\"");
    b64_encode(a->value.data, a->value.len, out);
    put(out, "\"}");
}

void pt_tc_error_json(const struct pt_tc_route *r, int code, struct pt_str message,
                      struct pt_str details_b64, struct pt_json_out *out)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", code);
    put(out, "{\"code\":");
    put(out, num);
    put(out, ",\"message\":");
    json_str(out, message);
    put(out, ",\"details\":[");
    if (details_b64.len && details_b64.len <= MAX_DETAILS_BYTES) {
        uint8_t *raw = pt_xmalloc(details_b64.len * 3 / 4 + 3);
        long n = b64_decode(details_b64, raw);
        Google__Rpc__Status *st = NULL;
        if (n > 0 && pt_descpool_check_depth(&google__rpc__status__descriptor, raw, (size_t)n,
                                             MAX_WIRE_DEPTH) == 0)
            st = google__rpc__status__unpack(NULL, (size_t)n, raw);
        for (size_t i = 0; st && i < st->n_details; i++) {
            if (i)
                pt_tc_out_append(out, ",", 1);
            render_detail(r, st->details[i], out);
        }
        if (st)
            google__rpc__status__free_unpacked(st, NULL);
        free(raw);
    }
    put(out, "]}");
}

size_t pt_tc_grpc_message_decode(struct pt_str in, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < in.len && o < cap; i++) {
        char c = in.ptr[i];
        if (c == '%' && i + 2 < in.len) {
            int a = in.ptr[i + 1], b = in.ptr[i + 2];
            int x = (a >= '0' && a <= '9')   ? a - '0'
                    : (a >= 'A' && a <= 'F') ? a - 'A' + 10
                    : (a >= 'a' && a <= 'f') ? a - 'a' + 10
                                             : -1;
            int y = (b >= '0' && b <= '9')   ? b - '0'
                    : (b >= 'A' && b <= 'F') ? b - 'A' + 10
                    : (b >= 'a' && b <= 'f') ? b - 'a' + 10
                                             : -1;
            if (x >= 0 && y >= 0) {
                buf[o++] = (char)(x * 16 + y);
                i += 2;
                continue;
            }
        }
        buf[o++] = c;
    }
    return o;
}
