/*
 * Fuzz the reflection fetch (transcode/reflect.c): the input is a backend's
 * answers, each a 2-byte big-endian length and that many bytes (a
 * serialized ServerReflectionResponse, or anything). The fetch asks, takes
 * each answer in turn, and ends in a pool or an error - never a crash, and
 * never more requests than its limit.
 */
#include <stdlib.h>
#include <string.h>

#include "transcode/reflect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pt_tc_reflect_limits lim = {.max_files = 64, .max_bytes = 1 << 20, .max_requests = 128};
    struct pt_tc_reflect_fetch *f = pt_tc_reflect_fetch_new(&lim);
    size_t at = 0, asked = 0;
    int rc;
    for (;;) {
        uint8_t *req;
        size_t len;
        rc = pt_tc_reflect_fetch_next(f, &req, &len);
        if (rc <= 0)
            break;
        free(req);
        if (++asked > lim.max_requests)
            abort();
        if (size - at < 2) {
            rc = -1; /* the backend stopped answering */
            break;
        }
        size_t n = (size_t)data[at] << 8 | data[at + 1];
        at += 2;
        if (n > size - at)
            n = size - at;
        rc = pt_tc_reflect_fetch_on_response(f, data + at, n);
        at += n;
        if (rc < 0)
            break;
    }
    if (rc == 0) {
        char err[256];
        struct pt_descpool *p = pt_tc_reflect_fetch_pool(f, NULL, err, sizeof(err));
        pt_descpool_unref(p);
    } else if (rc < -1 && !pt_tc_reflect_fetch_error(f)[0]) {
        abort(); /* every failure says why */
    }
    pt_tc_reflect_fetch_free(f);
    return 0;
}
