/*
 * http/pipe.h - one direction of a body, from a producer to a consumer.
 *
 * A pipe carries body bytes (and, at the end, optional trailers) from the
 * side that receives them to the side that sends them: downstream codec ->
 * upstream stream for a request, the reverse for a response. Bytes move
 * between evbuffers without copying where the codecs allow it.
 *
 * Backpressure. pt_pipe_write() returns true when the pipe holds more than
 * its high-water mark: the producer then stops reading its source (an
 * HTTP/1.1 socket) or stops granting flow-control credit (HTTP/2). Whenever
 * the consumer takes bytes, on_drain(n) tells the producer; an HTTP/2
 * producer returns exactly n bytes of window, an HTTP/1.1 producer resumes
 * reading once pt_pipe_len() is at or below the low-water mark. Memory per
 * direction therefore stays near hiwat + one read.
 *
 * Limits. A pipe may cap the body (PT_ERR_BODY_TOO_LARGE): the whole body,
 * or, in gRPC mode, each length-prefixed message, so gRPC streams can run
 * indefinitely while no single message exceeds the limit.
 *
 * Callbacks run synchronously from pt_pipe_write()/pt_pipe_end() (on_data)
 * and from the consumer's reads (on_drain); a callback must not call back
 * into the other side of the same pipe.
 *
 *   open ──write*──> open ──end(trailers?)──> eof ──drained──> done
 *     └──abort (either side)──> aborted
 */
#ifndef PT_HTTP_PIPE_H
#define PT_HTTP_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct pt_headers;
struct pt_pipe;

typedef void pt_pipe_data_fn(struct pt_pipe *p, void *consumer);
typedef void pt_pipe_drain_fn(struct pt_pipe *p, size_t n, void *producer);

#define PT_PIPE_HIWAT_DEFAULT (256u * 1024u)

struct pt_pipe {
    struct evbuffer *buf;        /* created on first write */
    struct pt_headers *trailers; /* set by pt_pipe_end(), may be NULL */
    uint64_t in;                 /* bytes written so far */
    uint64_t out;                /* bytes taken by the consumer */
    uint64_t limit;              /* 0 = none */
    uint32_t hiwat;
    bool eof;
    bool grpc_frames; /* apply limit per gRPC message */
    /* gRPC framing state: bytes of the 5-byte prefix seen, and message bytes left */
    uint8_t frame_hdr_len;
    uint8_t frame_hdr[5];
    uint64_t frame_left;

    pt_pipe_data_fn *on_data;
    void *consumer;
    pt_pipe_drain_fn *on_drain;
    void *producer;

    /* Replay (pt_pipe_keep_replay): a copy of the bytes consumed so far,
     * kept so a retry can send them again, up to replay_cap bytes. */
    struct evbuffer *replay;
    uint64_t replay_cap;
    bool replay_lost; /* more than replay_cap bytes were consumed */
    uint64_t out_max; /* highest `out` reached: on_drain reports each byte once */
};

void pt_pipe_init(struct pt_pipe *p, uint32_t hiwat);
void pt_pipe_fini(struct pt_pipe *p);
void pt_pipe_set_limit(struct pt_pipe *p, uint64_t limit, bool per_grpc_message);

void pt_pipe_set_consumer(struct pt_pipe *p, pt_pipe_data_fn *fn, void *consumer);
void pt_pipe_set_producer(struct pt_pipe *p, pt_pipe_drain_fn *fn, void *producer);

/* Progress: 1 when above the high-water mark (pause), 0 otherwise, or
 * PT_ERR_BODY_TOO_LARGE (nothing written). */
int pt_pipe_write(struct pt_pipe *p, const void *data, size_t len);
/* Same, moving len bytes out of src without copying. */
int pt_pipe_write_buffer(struct pt_pipe *p, struct evbuffer *src, size_t len);
/* No more bytes; trailers (may be NULL) must live as long as the pipe. */
void pt_pipe_end(struct pt_pipe *p, struct pt_headers *trailers);

static inline size_t pt_pipe_len(const struct pt_pipe *p)
{
    return (size_t)(p->in - p->out);
}
static inline bool pt_pipe_full(const struct pt_pipe *p)
{
    return pt_pipe_len(p) > p->hiwat;
}
/* True once the producer ended and the consumer took every byte. */
static inline bool pt_pipe_done(const struct pt_pipe *p)
{
    return p->eof && p->in == p->out;
}
static inline bool pt_pipe_below_lowat(const struct pt_pipe *p)
{
    return pt_pipe_len(p) <= p->hiwat / 2;
}

/* Keep a copy of every byte the consumer takes, up to cap bytes, so that
 * pt_pipe_rewind() can offer them again (retries). Call before the
 * consumer takes anything. */
void pt_pipe_keep_replay(struct pt_pipe *p, uint64_t cap);
/* True when every byte taken so far can be offered again: nothing was
 * taken, or all of it was kept. */
bool pt_pipe_can_rewind(const struct pt_pipe *p);
/* Status: 0 after putting every taken byte back in front of the pipe (the
 * next consumer reads the body from its start; the producer is not told
 * about bytes it already got credit for), or -1 when they were not kept. */
int pt_pipe_rewind(struct pt_pipe *p);

/* Consumer: move up to max bytes into dst; returns bytes moved. */
size_t pt_pipe_read_into(struct pt_pipe *p, struct evbuffer *dst, size_t max);
/* Consumer: copy up to max bytes out without draining (then pt_pipe_drain). */
size_t pt_pipe_peek(struct pt_pipe *p, void *dst, size_t max);
void pt_pipe_drain(struct pt_pipe *p, size_t n);

#endif
