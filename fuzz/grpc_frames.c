/*
 * Fuzz the per-message gRPC body limit of pt_pipe: random bytes in random
 * pieces (data[0] picks the limit, data[1..] the split sizes) must give the
 * same verdict as parsing the whole stream at once, and never write past
 * the first message over the limit.
 */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "http/pipe.h"
#include "portico/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reference: the offset of the first oversized message's end-of-prefix, or
 * SIZE_MAX when none. */
static size_t reference(const uint8_t *d, size_t n, uint64_t limit)
{
    size_t i = 0;
    while (i + 5 <= n) {
        uint64_t len = ((uint64_t)d[i + 1] << 24) | ((uint64_t)d[i + 2] << 16) |
                       ((uint64_t)d[i + 3] << 8) | d[i + 4];
        if (len > limit)
            return i + 5;
        i += 5 + len;
    }
    return SIZE_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint64_t limit = (uint64_t)data[0] * 13 + 1;
    uint8_t split = data[1] | 1;
    const uint8_t *body = data + 2;
    size_t n = size - 2;
    size_t bad = reference(body, n, limit);
    for (int mode = 0; mode < 2; mode++) {
        struct pt_pipe p;
        pt_pipe_init(&p, 0);
        pt_pipe_set_limit(&p, limit, true);
        size_t off = 0;
        int rc = 0;
        while (off < n) {
            size_t take = split;
            if (take > n - off)
                take = n - off;
            if (mode == 0) {
                rc = pt_pipe_write(&p, body + off, take);
            } else {
                struct evbuffer *src = evbuffer_new();
                evbuffer_add(src, body + off, take);
                rc = pt_pipe_write_buffer(&p, src, take);
                evbuffer_free(src);
            }
            if (rc < 0)
                break;
            off += take;
        }
        if ((rc < 0) != (bad != SIZE_MAX))
            abort();
        if (rc < 0 && !(off < bad && bad <= off + split))
            abort(); /* refused in the wrong piece */
        if (rc < 0 && rc != PT_ERR_BODY_TOO_LARGE)
            abort();
        pt_pipe_fini(&p);
    }
    return 0;
}
