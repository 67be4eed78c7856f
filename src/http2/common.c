#include "http2/common.h"

#include <event2/buffer.h>
#include <string.h>

nghttp2_nv *pt_h2_make_nva(struct pt_arena *a, const struct pt_headers *h,
                           const char *const *pseudo, const struct pt_str *pseudo_values,
                           size_t npseudo, size_t *n)
{
    nghttp2_nv *nva = pt_arena_alloc(a, (npseudo + h->n) * sizeof(*nva));
    if (!nva)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < npseudo; i++) {
        if (!pseudo[i])
            continue;
        nva[k].name = (uint8_t *)pseudo[i];
        nva[k].namelen = strlen(pseudo[i]);
        nva[k].value = (uint8_t *)pseudo_values[i].ptr;
        nva[k].valuelen = pseudo_values[i].len;
        nva[k].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
        k++;
    }
    for (uint32_t i = 0; i < h->n; i++) {
        nva[k].name = (uint8_t *)h->v[i].name.ptr;
        nva[k].namelen = h->v[i].name.len;
        nva[k].value = (uint8_t *)h->v[i].value.ptr;
        nva[k].valuelen = h->v[i].value.len;
        nva[k].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
        if (pt_h2_unique_value(h->v[i].name))
            nva[k].flags |= NGHTTP2_NV_FLAG_NO_INDEX;
        k++;
    }
    *n = k;
    return nva;
}

bool pt_h2_unique_value(struct pt_str name)
{
    /* Values that differ on every message: indexing them would only evict
     * useful entries from both HPACK tables (measured: ~20% of h2c CPU for
     * x-request-id alone). */
    switch (name.len) {
    case 4:
        return memcmp(name.ptr, "date", 4) == 0;
    case 11:
        return memcmp(name.ptr, "traceparent", 11) == 0;
    case 12:
        return memcmp(name.ptr, "x-request-id", 12) == 0 ||
               memcmp(name.ptr, "grpc-timeout", 12) == 0;
    default:
        return false;
    }
}

uint32_t pt_h2_error_code(int err)
{
    switch (err) {
    case 0:
        return NGHTTP2_NO_ERROR;
    case PT_ERR_CANCELLED:
    case PT_ERR_TIMEOUT:
    case PT_ERR_STREAM_IDLE:
        return NGHTTP2_CANCEL;
    case PT_ERR_UPSTREAM_REFUSED:
    case PT_ERR_SHUTTING_DOWN:
        return NGHTTP2_REFUSED_STREAM;
    case PT_ERR_LIMIT:
        return NGHTTP2_ENHANCE_YOUR_CALM;
    default:
        return NGHTTP2_INTERNAL_ERROR;
    }
}

int pt_h2_add_field(struct pt_headers *h, const uint8_t *name, size_t namelen, const uint8_t *value,
                    size_t valuelen)
{
    char *p = pt_arena_alloc(h->arena, namelen + valuelen + 1);
    if (!p)
        return PT_ERR_LIMIT;
    memcpy(p, name, namelen);
    memcpy(p + namelen, value, valuelen);
    p[namelen + valuelen] = '\0';
    return pt_headers_add_ref(h, (struct pt_str){p, namelen},
                              (struct pt_str){p + namelen, valuelen});
}

ssize_t pt_h2_pipe_read(nghttp2_session *ng, int32_t id, struct pt_pipe *p, struct pt_arena *a,
                        size_t length, uint32_t *flags, bool *deferred)
{
    size_t avail = pt_pipe_len(p);
    if (avail == 0 && !p->eof) {
        *deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < length ? avail : length;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (p->eof && n == avail) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (p->trailers && p->trailers->n) {
            size_t nv;
            nghttp2_nv *nva = pt_h2_make_nva(a, p->trailers, NULL, NULL, 0, &nv);
            if (nva && nghttp2_submit_trailer(ng, id, nva, nv) == 0)
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
    }
    return (ssize_t)n;
}

int pt_h2_pipe_send(struct evbuffer *out, const uint8_t *framehd, struct pt_pipe *p, size_t length,
                    bool *blocked)
{
    if (evbuffer_get_length(out) >= PT_H2_OUT_HIWAT) {
        *blocked = true;
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    evbuffer_add(out, framehd, 9);
    if (length)
        pt_pipe_read_into(p, out, length);
    return 0;
}
