#include "grpc/grpcweb.h"

#include <string.h>

#include "core/strutil.h"
#include "portico/errors.h"

enum pt_grpcweb_mode pt_grpcweb_mode_of(struct pt_str ct)
{
    size_t end = 0;
    while (end < ct.len && ct.ptr[end] != ';')
        end++;
    struct pt_str t = pt_str_trim((struct pt_str){ct.ptr, end});
    static const struct {
        const char *name;
        enum pt_grpcweb_mode mode;
    } types[] = {
        {"application/grpc-web", PT_GRPCWEB_BINARY},
        {"application/grpc-web+proto", PT_GRPCWEB_BINARY},
        {"application/grpc-web-text", PT_GRPCWEB_TEXT},
        {"application/grpc-web-text+proto", PT_GRPCWEB_TEXT},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (pt_str_eq_nocase(t, pt_str_from_cstr(types[i].name)))
            return types[i].mode;
    return PT_GRPCWEB_NONE;
}

void pt_grpcweb_decoder_init(struct pt_grpcweb_decoder *d, bool text, uint64_t max_message)
{
    memset(d, 0, sizeof(*d));
    d->text = text;
    d->max_message = max_message;
}

/* 0..63, 64 for '=', 255 for anything else. */
static uint8_t b64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return (uint8_t)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (uint8_t)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (uint8_t)(c - '0' + 52);
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    if (c == '=')
        return 64;
    return 255;
}

/* Check decoded bytes against the framing: a frame prefix, then its
 * message bytes. Status: 0 or the error. */
static int frames_check(struct pt_grpcweb_decoder *d, const uint8_t *b, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (d->frame_left) {
            size_t take = n - i;
            if (take > d->frame_left)
                take = (size_t)d->frame_left;
            d->frame_left -= take;
            i += take;
            continue;
        }
        d->hdr[d->nhdr++] = b[i++];
        if (d->nhdr < 5)
            continue;
        d->nhdr = 0;
        /* Client frames: bit 0 = compressed; the trailer bit and the
         * reserved bits have no meaning in a request. */
        if (d->hdr[0] & ~1u)
            return PT_ERR_INVALID;
        uint64_t len = ((uint64_t)d->hdr[1] << 24) | ((uint64_t)d->hdr[2] << 16) |
                       ((uint64_t)d->hdr[3] << 8) | d->hdr[4];
        if (d->max_message && len > d->max_message)
            return PT_ERR_BODY_TOO_LARGE;
        d->frame_left = len;
    }
    return 0;
}

/* Decode the complete quantum in d->quantum into out. Returns the bytes
 * written (1..3) or -1 when the quantum is malformed. */
static int quantum_decode(const uint8_t q[4], uint8_t *out)
{
    uint8_t v[4];
    for (int i = 0; i < 4; i++)
        v[i] = b64_value(q[i]);
    /* Padding only at the end of a quantum: "xx==" or "xxx=". */
    if (v[0] > 63 || v[1] > 63)
        return -1;
    if (v[2] == 64 && v[3] != 64)
        return -1;
    out[0] = (uint8_t)(v[0] << 2 | v[1] >> 4);
    if (v[2] == 64)
        return 1;
    out[1] = (uint8_t)(v[1] << 4 | v[2] >> 2);
    if (v[3] == 64)
        return 2;
    out[2] = (uint8_t)(v[2] << 6 | v[3]);
    return 3;
}

long pt_grpcweb_decode(struct pt_grpcweb_decoder *d, const uint8_t *in, size_t len, uint8_t *out,
                       size_t cap)
{
    if (d->error)
        return d->error;
    size_t n = 0;
    if (!d->text) {
        if (len > cap)
            return d->error = PT_ERR_INTERNAL;
        if (len)
            memcpy(out, in, len);
        n = len;
    } else {
        for (size_t i = 0; i < len; i++) {
            uint8_t v = b64_value(in[i]);
            if (v == 255)
                return d->error = PT_ERR_INVALID;
            d->quantum[d->nquantum++] = in[i];
            if (d->nquantum < 4)
                continue;
            d->nquantum = 0;
            if (n + 3 > cap)
                return d->error = PT_ERR_INTERNAL;
            int k = quantum_decode(d->quantum, out + n);
            if (k < 0)
                return d->error = PT_ERR_INVALID;
            /* Checked quantum by quantum: the first error in stream order
             * wins, however the body was split. */
            int rc = frames_check(d, out + n, (size_t)k);
            if (rc < 0)
                return d->error = rc;
            n += (size_t)k;
        }
        return (long)n;
    }
    int rc = frames_check(d, out, n);
    if (rc < 0)
        return d->error = rc;
    return (long)n;
}

int pt_grpcweb_decode_finish(struct pt_grpcweb_decoder *d)
{
    if (d->error)
        return d->error;
    if (d->nquantum || d->nhdr || d->frame_left)
        return d->error = PT_ERR_INVALID;
    return 0;
}

size_t pt_grpcweb_b64_encode(const uint8_t *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[n++] = abc[v >> 18];
        out[n++] = abc[(v >> 12) & 63];
        out[n++] = abc[(v >> 6) & 63];
        out[n++] = abc[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[n++] = abc[v >> 18];
        out[n++] = abc[(v >> 12) & 63];
        out[n++] = i + 1 < len ? abc[(v >> 6) & 63] : '=';
        out[n++] = '=';
    }
    return n;
}

static bool field_ok(const struct pt_grpcweb_field *f)
{
    if (!f->name.len)
        return false;
    for (size_t i = 0; i < f->name.len; i++) {
        char c = f->name.ptr[i];
        if (c == '\r' || c == '\n' || c == '\0' || c == ':' || c == ' ')
            return false;
    }
    for (size_t i = 0; i < f->value.len; i++) {
        char c = f->value.ptr[i];
        if (c == '\r' || c == '\n' || c == '\0')
            return false;
    }
    return true;
}

size_t pt_grpcweb_trailer_size(const struct pt_grpcweb_field *f, size_t n)
{
    size_t total = 5;
    for (size_t i = 0; i < n; i++)
        if (field_ok(&f[i]))
            total += f[i].name.len + 2 + f[i].value.len + 2;
    return total;
}

size_t pt_grpcweb_trailer_write(const struct pt_grpcweb_field *f, size_t n, uint8_t *out)
{
    size_t k = 5;
    for (size_t i = 0; i < n; i++) {
        if (!field_ok(&f[i]))
            continue;
        for (size_t j = 0; j < f[i].name.len; j++) {
            char c = f[i].name.ptr[j];
            out[k++] = (uint8_t)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        out[k++] = ':';
        out[k++] = ' ';
        if (f[i].value.len)
            memcpy(out + k, f[i].value.ptr, f[i].value.len);
        k += f[i].value.len;
        out[k++] = '\r';
        out[k++] = '\n';
    }
    size_t len = k - 5;
    out[0] = PT_GRPCWEB_TRAILER_FLAG;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
    return k;
}
