#include "http/pipe.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "portico/errors.h"

void pt_pipe_init(struct pt_pipe *p, uint32_t hiwat)
{
    memset(p, 0, sizeof(*p));
    p->hiwat = hiwat ? hiwat : PT_PIPE_HIWAT_DEFAULT;
}

void pt_pipe_fini(struct pt_pipe *p)
{
    if (p->buf)
        evbuffer_free(p->buf);
    p->buf = NULL;
    if (p->replay)
        evbuffer_free(p->replay);
    p->replay = NULL;
    p->on_data = NULL;
    p->on_drain = NULL;
}

void pt_pipe_set_limit(struct pt_pipe *p, uint64_t limit, bool per_grpc_message)
{
    p->limit = limit;
    p->grpc_frames = per_grpc_message;
}

void pt_pipe_set_consumer(struct pt_pipe *p, pt_pipe_data_fn *fn, void *consumer)
{
    p->on_data = fn;
    p->consumer = consumer;
}

void pt_pipe_set_producer(struct pt_pipe *p, pt_pipe_drain_fn *fn, void *producer)
{
    p->on_drain = fn;
    p->producer = producer;
}

/* Walk gRPC message prefixes in data; Status: 0 or PT_ERR_BODY_TOO_LARGE. */
static int check_grpc_frames(struct pt_pipe *p, const unsigned char *data, size_t len)
{
    while (len) {
        if (p->frame_left) {
            size_t take = len < p->frame_left ? len : (size_t)p->frame_left;
            p->frame_left -= take;
            data += take;
            len -= take;
            continue;
        }
        p->frame_hdr[p->frame_hdr_len++] = *data++;
        len--;
        if (p->frame_hdr_len == 5) {
            uint64_t mlen = ((uint64_t)p->frame_hdr[1] << 24) | ((uint64_t)p->frame_hdr[2] << 16) |
                            ((uint64_t)p->frame_hdr[3] << 8) | p->frame_hdr[4];
            if (p->limit && mlen > p->limit)
                return PT_ERR_BODY_TOO_LARGE;
            p->frame_left = mlen;
            p->frame_hdr_len = 0;
        }
    }
    return 0;
}

static int check_limit(struct pt_pipe *p, const void *data, struct evbuffer *src, size_t len)
{
    if (!p->limit)
        return 0;
    if (!p->grpc_frames)
        return p->in + len > p->limit ? PT_ERR_BODY_TOO_LARGE : 0;
    if (data)
        return check_grpc_frames(p, data, len);
    /* Walk the source buffer's segments without copying. */
    struct evbuffer_ptr pos;
    evbuffer_ptr_set(src, &pos, 0, EVBUFFER_PTR_SET);
    struct evbuffer_iovec vec[8];
    size_t seen = 0;
    while (seen < len) {
        int n = evbuffer_peek(src, (ev_ssize_t)(len - seen), &pos, vec, 8);
        if (n <= 0)
            break;
        for (int i = 0; i < n && i < 8 && seen < len; i++) {
            size_t take = vec[i].iov_len;
            if (take > len - seen)
                take = len - seen;
            int rc = check_grpc_frames(p, vec[i].iov_base, take);
            if (rc)
                return rc;
            seen += take;
        }
        if (evbuffer_ptr_set(src, &pos, seen, EVBUFFER_PTR_SET) != 0)
            break;
    }
    return 0;
}

static struct evbuffer *buf(struct pt_pipe *p)
{
    if (!p->buf) {
        p->buf = evbuffer_new();
        if (!p->buf)
            pt_abort_oom(sizeof(struct evbuffer *));
    }
    return p->buf;
}

int pt_pipe_write(struct pt_pipe *p, const void *data, size_t len)
{
    if (len) {
        int rc = check_limit(p, data, NULL, len);
        if (rc)
            return rc;
        evbuffer_add(buf(p), data, len);
        p->in += len;
        if (p->on_data)
            p->on_data(p, p->consumer);
    }
    return pt_pipe_full(p) ? 1 : 0;
}

int pt_pipe_write_buffer(struct pt_pipe *p, struct evbuffer *src, size_t len)
{
    if (len) {
        int rc = check_limit(p, NULL, src, len);
        if (rc)
            return rc;
        evbuffer_remove_buffer(src, buf(p), len);
        p->in += len;
        if (p->on_data)
            p->on_data(p, p->consumer);
    }
    return pt_pipe_full(p) ? 1 : 0;
}

void pt_pipe_end(struct pt_pipe *p, struct pt_headers *trailers)
{
    if (p->eof)
        return;
    p->eof = true;
    p->trailers = trailers;
    if (p->on_data)
        p->on_data(p, p->consumer);
}

void pt_pipe_keep_replay(struct pt_pipe *p, uint64_t cap)
{
    if (p->replay || p->out)
        return;
    p->replay = evbuffer_new();
    if (!p->replay)
        abort(); /* a real allocation failure aborts */
    p->replay_cap = cap;
    p->replay_lost = false;
}

bool pt_pipe_can_rewind(const struct pt_pipe *p)
{
    return p->out == 0 || (p->replay && !p->replay_lost);
}

int pt_pipe_rewind(struct pt_pipe *p)
{
    if (p->out == 0)
        return 0;
    if (!p->replay || p->replay_lost)
        return -1;
    size_t n = evbuffer_get_length(p->replay);
    if (!p->buf)
        return -1; /* cannot happen: taken bytes were written first */
    evbuffer_prepend_buffer(p->buf, p->replay);
    p->out -= n;
    return 0;
}

/* The consumer is taking the next n bytes: copy them for a replay. */
static void keep(struct pt_pipe *p, size_t n)
{
    if (!p->replay || p->replay_lost)
        return;
    if (evbuffer_get_length(p->replay) + n > p->replay_cap) {
        p->replay_lost = true;
        evbuffer_drain(p->replay, evbuffer_get_length(p->replay));
        return;
    }
    struct evbuffer_ptr pos;
    evbuffer_ptr_set(p->buf, &pos, 0, EVBUFFER_PTR_SET);
    unsigned char tmp[4096];
    size_t off = 0;
    while (off < n) {
        size_t k = n - off < sizeof(tmp) ? n - off : sizeof(tmp);
        ev_ssize_t r = evbuffer_copyout_from(p->buf, &pos, tmp, k);
        if (r <= 0)
            break;
        evbuffer_add(p->replay, tmp, (size_t)r);
        evbuffer_ptr_set(p->buf, &pos, (size_t)r, EVBUFFER_PTR_ADD);
        off += (size_t)r;
    }
}

/* Tell the producer about bytes taken for the first time. */
static void drained(struct pt_pipe *p)
{
    if (p->out <= p->out_max)
        return;
    size_t fresh = (size_t)(p->out - p->out_max);
    p->out_max = p->out;
    if (p->on_drain)
        p->on_drain(p, fresh, p->producer);
}

size_t pt_pipe_read_into(struct pt_pipe *p, struct evbuffer *dst, size_t max)
{
    size_t avail = pt_pipe_len(p);
    size_t n = avail < max ? avail : max;
    if (!n)
        return 0;
    keep(p, n);
    evbuffer_remove_buffer(p->buf, dst, n);
    p->out += n;
    drained(p);
    return n;
}

size_t pt_pipe_peek(struct pt_pipe *p, void *dst, size_t max)
{
    size_t avail = pt_pipe_len(p);
    size_t n = avail < max ? avail : max;
    if (!n)
        return 0;
    return (size_t)evbuffer_copyout(p->buf, dst, n);
}

void pt_pipe_drain(struct pt_pipe *p, size_t n)
{
    size_t avail = pt_pipe_len(p);
    if (n > avail)
        n = avail;
    if (!n)
        return;
    keep(p, n);
    evbuffer_drain(p->buf, n);
    p->out += n;
    drained(p);
}
