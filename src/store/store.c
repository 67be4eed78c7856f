/*
 * Store dispatch and helpers shared by the store kinds.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "store/store_int.h"

const char *pt_store_kind(const struct pt_store *s)
{
    return s->ops->kind;
}

bool pt_store_connected(const struct pt_store *s)
{
    return s->ops->connected(s);
}

int pt_store_load(struct pt_store *s, Portico__Config__V1__Config **managed, uint64_t *version,
                  char *err, size_t errlen)
{
    return s->ops->load(s, managed, version, err, errlen);
}

int pt_store_commit(struct pt_store *s, const Portico__Config__V1__Config *old,
                    const Portico__Config__V1__Config *next, uint64_t expected_version, char *err,
                    size_t errlen)
{
    return s->ops->commit(s, old, next, expected_version, err, errlen);
}

int pt_store_record_key_use(struct pt_store *s, const struct pt_store_key_use *v, size_t n,
                            char *err, size_t errlen)
{
    if (!n || !s->ops->record_key_use)
        return 0;
    return s->ops->record_key_use(s, v, n, err, errlen);
}

void pt_store_close(struct pt_store *s)
{
    if (s)
        s->ops->close(s);
}

Portico__Config__V1__Config *pt_store_empty_config(void)
{
    Portico__Config__V1__Config *c = pt_xcalloc(1, sizeof(*c));
    portico__config__v1__config__init(c);
    return c;
}

ProtobufCMessage *pt_store_msg_dup(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = pt_xmalloc(n ? n : 1);
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    free(buf);
    if (!copy)
        abort(); /* only an allocation failure can make our own bytes unreadable */
    return copy;
}

bool pt_store_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    if (!a || !b)
        return a == b;
    size_t na = protobuf_c_message_get_packed_size(a);
    size_t nb = protobuf_c_message_get_packed_size(b);
    if (na != nb)
        return false;
    uint8_t *ba = pt_xmalloc(na ? na : 1), *bb = pt_xmalloc(nb ? nb : 1);
    protobuf_c_message_pack(a, ba);
    protobuf_c_message_pack(b, bb);
    bool eq = memcmp(ba, bb, na) == 0;
    free(ba);
    free(bb);
    return eq;
}

void pt_store_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
