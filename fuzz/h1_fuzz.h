/*
 * fuzz/h1_fuzz.h - the body shared by the h1_request and h1_response
 * harnesses (each includes it once and names its mode).
 *
 * Input: byte 0 picks the limits, byte 1 seeds how the stream is cut into
 * pieces, byte 2 is a no-body mask for responses (bit i: the i-th response
 * answers a HEAD); the remaining bytes are the stream. The stream is parsed
 * twice, once whole and once cut into pseudo-random pieces that each live in
 * their own heap block, and the harness aborts unless:
 *   - every head and trailer view is well formed (lower-case token names,
 *     valid trimmed values, counts within the limits);
 *   - body bytes point into the piece being parsed, and their total never
 *     exceeds the input;
 *   - execute() never reports more bytes than it was given;
 *   - errors are sticky;
 *   - both runs produce the same events, bytes and final status, i.e. the
 *     parser does not depend on where the input was split.
 */
#ifndef PT_FUZZ_H1_FUZZ_H
#define PT_FUZZ_H1_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1/parser.h"

#define H1F_CHECK(cond) \
    do {                \
        if (!(cond))    \
            abort();    \
    } while (0)

struct h1f {
    enum pt_h1_mode mode;
    struct pt_h1_limits lim;
    struct pt_h1_parser *p;
    uint64_t digest;
    const char *lo, *hi;
    size_t input_size;
    size_t body_total;
    uint32_t messages;
    uint8_t no_body_mask;
    bool paused;
    bool upgraded;
    bool stopped; /* paused after an upgrade: the rest is not HTTP */
};

static void h1f_mix(struct h1f *f, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) {
        f->digest ^= b[i];
        f->digest *= 0x100000001b3ull;
    }
}

static void h1f_mix_u64(struct h1f *f, uint64_t v)
{
    h1f_mix(f, &v, sizeof(v));
}

static void h1f_mix_str(struct h1f *f, struct pt_str s)
{
    h1f_mix_u64(f, s.len);
    if (s.len)
        h1f_mix(f, s.ptr, s.len);
}

static void h1f_check_fields(struct h1f *f, const struct pt_header *h, uint32_t n)
{
    H1F_CHECK(n <= f->lim.max_headers);
    h1f_mix_u64(f, n);
    for (uint32_t i = 0; i < n; i++) {
        struct pt_str name = h[i].name, value = h[i].value;
        H1F_CHECK(pt_http_is_token(name));
        for (size_t k = 0; k < name.len; k++)
            H1F_CHECK(name.ptr[k] < 'A' || name.ptr[k] > 'Z');
        H1F_CHECK(pt_http_is_field_value(value));
        if (value.len) {
            H1F_CHECK(value.ptr[0] != ' ' && value.ptr[0] != '\t');
            H1F_CHECK(value.ptr[value.len - 1] != ' ' && value.ptr[value.len - 1] != '\t');
        }
        h1f_mix_str(f, name);
        h1f_mix_str(f, value);
    }
}

static int h1f_on_head(void *ctx, const struct pt_h1_head *h)
{
    struct h1f *f = ctx;
    H1F_CHECK(h->version_minor == 0 || h->version_minor == 1);
    H1F_CHECK(!(h->chunked && h->content_length >= 0));
    H1F_CHECK(h->content_length >= -1);
    if (f->mode == PT_H1_REQUEST) {
        H1F_CHECK(pt_http_is_token(h->method));
        H1F_CHECK(h->target.len > 0 && h->status == 0);
        for (size_t k = 0; k < h->target.len; k++)
            H1F_CHECK(h->target.ptr[k] > 0x20 && h->target.ptr[k] < 0x7f);
        H1F_CHECK(h->has_body == (h->chunked || h->content_length > 0));
    } else {
        H1F_CHECK(h->status == 101 || (h->status >= 200 && h->status <= 999));
        H1F_CHECK(h->upgrade == (h->status == 101));
        H1F_CHECK(pt_http_is_field_value(h->reason));
        if (h->has_body && !h->chunked && h->content_length < 0)
            H1F_CHECK(!h->keep_alive);
    }
    h1f_mix_str(f, h->method);
    h1f_mix_str(f, h->target);
    h1f_mix_str(f, h->reason);
    uint64_t flags = (uint64_t)h->status << 8 | (uint64_t)h->version_minor << 6 |
                     (uint64_t)h->chunked << 5 | (uint64_t)h->keep_alive << 4 |
                     (uint64_t)h->upgrade << 3 | (uint64_t)h->expect_continue << 2 |
                     (uint64_t)h->has_body << 1;
    h1f_mix_u64(f, flags);
    h1f_mix_u64(f, (uint64_t)h->content_length);
    h1f_check_fields(f, h->headers, h->nheaders);
    if (h->upgrade)
        f->upgraded = true;
    return 0;
}

static int h1f_on_body(void *ctx, const char *data, size_t len)
{
    struct h1f *f = ctx;
    H1F_CHECK(len > 0);
    H1F_CHECK(data >= f->lo && data + len <= f->hi);
    f->body_total += len;
    H1F_CHECK(f->body_total <= f->input_size);
    h1f_mix(f, data, len);
    return 0;
}

static int h1f_on_trailers(void *ctx, const struct pt_header *fields, uint32_t n)
{
    struct h1f *f = ctx;
    H1F_CHECK(n > 0);
    h1f_mix_u64(f, 0x7472);
    h1f_check_fields(f, fields, n);
    return 0;
}

static int h1f_on_complete(void *ctx)
{
    struct h1f *f = ctx;
    H1F_CHECK(!f->paused);
    f->paused = true;
    f->messages++;
    h1f_mix_u64(f, 0xc0);
    return 0;
}

static uint32_t h1f_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void h1f_prepare_next(struct h1f *f)
{
    if (f->mode == PT_H1_RESPONSE)
        pt_h1_parser_set_no_body(f->p, f->messages < 8 && (f->no_body_mask >> f->messages) & 1);
}

/* Returns the digest of one run; seed 0 feeds the stream whole. */
static uint64_t h1f_run(struct h1f *f, const char *in, size_t len, uint32_t seed)
{
    static const struct pt_h1_parser_cb cb = {h1f_on_head, h1f_on_body, h1f_on_trailers,
                                              h1f_on_complete};
    f->p = pt_h1_parser_new(f->mode, &f->lim, &cb, f);
    f->digest = 0xcbf29ce484222325ull;
    f->body_total = 0;
    f->messages = 0;
    f->paused = f->upgraded = f->stopped = false;
    h1f_prepare_next(f);

    uint32_t rng = seed * 2654435761u + 1;
    size_t start = 0;
    ssize_t rc = 0;
    while (start < len && rc >= 0 && !f->stopped) {
        size_t n = len - start;
        if (seed) {
            uint32_t r = h1f_rand(&rng);
            size_t want = (r & 3) == 0 ? 1 + (r >> 8) % 512 : 1 + (r >> 8) % 8;
            if (want < n)
                n = want;
        }
        char *piece = malloc(n);
        H1F_CHECK(piece != NULL);
        memcpy(piece, in + start, n);
        size_t off = 0;
        while (off < n) {
            f->lo = piece;
            f->hi = piece + n;
            rc = pt_h1_parser_execute(f->p, piece + off, n - off);
            if (rc < 0) {
                H1F_CHECK(pt_h1_parser_execute(f->p, piece, n) == rc);
                break;
            }
            H1F_CHECK((size_t)rc <= n - off);
            off += (size_t)rc;
            if (!f->paused) {
                H1F_CHECK(off == n);
                continue;
            }
            if (f->upgraded) {
                f->stopped = true;
                h1f_mix_u64(f, start + off);
                break;
            }
            f->paused = false;
            pt_h1_parser_next(f->p);
            h1f_prepare_next(f);
        }
        free(piece);
        start += n;
    }
    h1f_mix_u64(f, (uint64_t)(rc < 0 ? rc : 0));
    if (rc >= 0 && !f->stopped)
        h1f_mix_u64(f, (uint64_t)(int64_t)pt_h1_parser_finish(f->p));
    pt_h1_parser_free(f->p);
    return f->digest;
}

static int h1f_one(enum pt_h1_mode mode, const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    struct h1f f = {.mode = mode, .no_body_mask = data[2], .input_size = size - 3};
    /* Small limits half of the time so that the limit paths are reachable. */
    if (data[0] & 1) {
        f.lim.max_header_bytes = 64 + (uint32_t)(data[0] >> 1) * 8;
        f.lim.max_headers = 1 + (data[0] >> 4);
    } else {
        f.lim.max_header_bytes = 65536;
        f.lim.max_headers = 100;
    }
    const char *in = (const char *)data + 3;
    uint64_t whole = h1f_run(&f, in, size - 3, 0);
    uint64_t split = h1f_run(&f, in, size - 3, (uint32_t)data[1] + 1);
    H1F_CHECK(whole == split);
    return 0;
}

#endif
