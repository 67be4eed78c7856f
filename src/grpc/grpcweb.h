/*
 * grpc/grpcweb.h - the gRPC-Web wire format (sans-I/O).
 *
 * gRPC-Web (PROTOCOL-WEB.md) carries the gRPC length-prefixed messages
 * unchanged and turns the HTTP/2 trailers into one last frame in the body:
 * flag byte 0x80, a 4-byte big-endian length, then HTTP/1-style header
 * lines "name: value\r\n" (names lower case). The "-text" variants send
 * the same bytes in base64; a body may be several base64 pieces, each
 * padded, one after the other ("AAA=AAA=" is valid).
 *
 * Request side: a streaming decoder (base64 for -text, then frame checks:
 * flags, per-message size, truncation at the end) that accepts its input
 * split at any byte boundary. Response side: base64 of a piece of the body
 * (each piece padded on its own, as the spec allows) and the trailer frame.
 *
 *   decoder: init ──decode(piece)*──> finish ──> 0 | PT_ERR_INVALID
 *                        └─ <0 (PT_ERR_INVALID, PT_ERR_BODY_TOO_LARGE): stays failed
 */
#ifndef PT_GRPC_GRPCWEB_H
#define PT_GRPC_GRPCWEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/str.h"

enum pt_grpcweb_mode {
    PT_GRPCWEB_NONE = 0, /* not a gRPC-Web content type */
    PT_GRPCWEB_BINARY,   /* application/grpc-web, application/grpc-web+proto */
    PT_GRPCWEB_TEXT,     /* application/grpc-web-text, application/grpc-web-text+proto */
};

/* The mode a request's content-type asks for (parameters after ';' are
 * ignored; case-insensitive). */
enum pt_grpcweb_mode pt_grpcweb_mode_of(struct pt_str content_type);

/* Flag byte of the trailer frame. */
#define PT_GRPCWEB_TRAILER_FLAG 0x80u

struct pt_grpcweb_decoder {
    uint64_t max_message; /* 0 = no limit */
    uint64_t frame_left;  /* message bytes still expected */
    int error;            /* sticky: the first error */
    bool text;
    uint8_t quantum[4]; /* base64 characters of the quantum in progress */
    uint8_t nquantum;
    uint8_t hdr[5]; /* frame prefix in progress */
    uint8_t nhdr;
};

void pt_grpcweb_decoder_init(struct pt_grpcweb_decoder *d, bool text, uint64_t max_message);

/* The most bytes pt_grpcweb_decode() can write for len input bytes. */
static inline size_t pt_grpcweb_decode_bound(size_t len)
{
    return len / 4 * 3 + 3;
}

/* Progress: decode in[0..len) into out (cap >= pt_grpcweb_decode_bound(len));
 * returns the bytes written (>= 0), or PT_ERR_INVALID (bad base64, a frame
 * flag other than 0 or 1) or PT_ERR_BODY_TOO_LARGE (a message over
 * max_message). In binary mode the bytes are copied as they are, checked. */
long pt_grpcweb_decode(struct pt_grpcweb_decoder *d, const uint8_t *in, size_t len, uint8_t *out,
                       size_t cap);

/* Status: the body ended; 0, or PT_ERR_INVALID when it ended inside a
 * base64 quantum or a frame (or the decoder had failed: its error). */
int pt_grpcweb_decode_finish(struct pt_grpcweb_decoder *d);

/* Base64 (standard alphabet, padded) of in[0..len) into out, which holds
 * at least pt_grpcweb_b64_len(len) bytes; returns the length written. */
static inline size_t pt_grpcweb_b64_len(size_t len)
{
    return (len + 2) / 3 * 4;
}
size_t pt_grpcweb_b64_encode(const uint8_t *in, size_t len, char *out);

struct pt_grpcweb_field {
    struct pt_str name;
    struct pt_str value;
};

/* The size of the trailer frame (prefix included) for these fields;
 * fields whose name or value could break the framing (empty name, CR, LF,
 * NUL, ':' in the name) are left out, here and in _write. */
size_t pt_grpcweb_trailer_size(const struct pt_grpcweb_field *f, size_t n);
/* Write the trailer frame into out (pt_grpcweb_trailer_size bytes); names
 * are written in lower case. Returns the bytes written. */
size_t pt_grpcweb_trailer_write(const struct pt_grpcweb_field *f, size_t n, uint8_t *out);

#endif
