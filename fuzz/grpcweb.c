/*
 * Fuzz the gRPC-Web request decoder: data[0] picks the mode, the message
 * limit and the piece size, data[1..] is the body. Decoding in pieces must
 * give the same bytes and verdict as decoding it whole, and in text mode a
 * body that decodes cleanly must re-encode and decode to the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "grpc/grpcweb.h"
#include "portico/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Status of the whole run; decoded bytes in out (cap large enough). */
static int run(bool text, uint64_t max, const uint8_t *in, size_t n, size_t piece, uint8_t *out,
               size_t *outlen)
{
    struct pt_grpcweb_decoder d;
    pt_grpcweb_decoder_init(&d, text, max);
    size_t k = 0;
    for (size_t off = 0; off < n; off += piece) {
        size_t take = n - off < piece ? n - off : piece;
        long r =
            pt_grpcweb_decode(&d, in + off, take, out + k, pt_grpcweb_decode_bound(take) + take);
        if (r < 0) {
            *outlen = k;
            return (int)r;
        }
        k += (size_t)r;
    }
    *outlen = k;
    return pt_grpcweb_decode_finish(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    bool text = data[0] & 1;
    uint64_t max = (data[0] >> 1) & 7 ? ((uint64_t)(data[0] >> 1) & 7) * 40 : 0;
    size_t piece = (size_t)(data[0] >> 4) + 1;
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    size_t cap = n + 8;
    uint8_t *whole = malloc(cap), *parts = malloc(cap);
    size_t wl = 0, pl = 0;
    int rw = run(text, max, body, n, n ? n : 1, whole, &wl);
    int rp = run(text, max, body, n, piece, parts, &pl);
    if (rw != rp)
        abort();
    if (rw == 0 && (wl != pl || memcmp(whole, parts, wl) != 0))
        abort();
    if (rw != 0 && rw != PT_ERR_INVALID && rw != PT_ERR_BODY_TOO_LARGE)
        abort();
    if (rw == 0 && text) {
        char *again = malloc(pt_grpcweb_b64_len(wl) + 1);
        size_t al = pt_grpcweb_b64_encode(whole, wl, again);
        uint8_t *round = malloc(al + 8);
        size_t rl = 0;
        if (run(true, max, (const uint8_t *)again, al, piece, round, &rl) != 0 || rl != wl ||
            memcmp(round, whole, wl) != 0)
            abort();
        free(round);
        free(again);
    }
    free(whole);
    free(parts);
    return 0;
}
