/*
 * Fuzz the descriptor pool (transcode/descpool.c): arbitrary bytes as a
 * FileDescriptorSet - what a config file or a backend's reflection answer
 * may hold. Any input is a pool or an error, never a crash. A pool that
 * builds must also work: every message type initialises, packs, passes the
 * depth check and unpacks again with its own descriptors; the same files
 * given as a list in reverse order build the same pool.
 */
#include <stdlib.h>
#include <string.h>

#include "transcode/descpool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const struct pt_descpool *p)
{
    for (size_t i = 0; i < pt_descpool_message_count(p); i++) {
        const ProtobufCMessageDescriptor *d = pt_descpool_message_at(p, i)->desc;
        if (pt_descpool_find_message(p, pt_str_from_cstr(d->name)) != d)
            abort();
        ProtobufCMessage *m = calloc(1, d->sizeof_message);
        if (!m)
            abort();
        pt_descpool_message_init(d, m);
        size_t len = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf || protobuf_c_message_pack(m, buf) != len)
            abort();
        if (pt_descpool_check_depth(d, buf, len, 64) != 0)
            abort();
        ProtobufCMessage *back = protobuf_c_message_unpack(d, NULL, len, buf);
        /* a message with required fields does not unpack from its defaults */
        if (back)
            protobuf_c_message_free_unpacked(back, NULL);
        free(buf);
        free(m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct pt_descpool_limits lim = {0};
    lim.max_bytes = 1u << 20;
    lim.max_memory = 64u << 20;
    struct pt_descpool *p = pt_descpool_new_from_set(data, size, &lim, err, sizeof(err));
    if (!p) {
        if (!err[0])
            abort();
        return 0;
    }
    exercise(p);

    /* the set's files (field 1, length-delimited, one-byte or two-byte
     * lengths only: enough for the corpus) as a reversed list */
    struct pt_str files[64];
    size_t n = 0, at = 0;
    while (at + 2 <= size && n < 64 && data[at] == 0x0a) {
        size_t len = data[at + 1], h = 2;
        if (len & 0x80) {
            if (at + 3 > size)
                break;
            len = (len & 0x7f) | (size_t)data[at + 2] << 7;
            h = 3;
        }
        if (len > size - at - h)
            break;
        files[n++] = (struct pt_str){(const char *)data + at + h, len};
        at += h + len;
    }
    if (at == size && n) {
        for (size_t i = 0; i < n / 2; i++) {
            struct pt_str t = files[i];
            files[i] = files[n - 1 - i];
            files[n - 1 - i] = t;
        }
        struct pt_descpool *q = pt_descpool_new_from_files(files, n, &lim, err, sizeof(err));
        if (!q || pt_descpool_message_count(q) != pt_descpool_message_count(p))
            abort();
        pt_descpool_unref(q);
    }
    pt_descpool_unref(p);
    return 0;
}
