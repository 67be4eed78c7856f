/*
 * http2/common.h - pieces shared by the HTTP/2 server and client sessions.
 */
#ifndef PT_HTTP2_COMMON_H
#define PT_HTTP2_COMMON_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/exchange.h"

/* Stream and connection receive windows we advertise. Large enough for a
 * loopback or LAN stream to run at full speed, small enough that memory per
 * connection stays bounded (at most PT_H2_CONN_WINDOW unconsumed bytes). */
#define PT_H2_STREAM_WINDOW (1u << 20)
#define PT_H2_CONN_WINDOW (4u << 20)
/* Stop serializing frames while this much is queued for the socket. */
#define PT_H2_OUT_HIWAT (256u * 1024u)
#define PT_H2_OUT_LOWAT (64u * 1024u)

/* Pointer: an nghttp2_nv array in x's arena for the given fields preceded
 * by up to two pseudo-header pairs (NULL names skipped), or NULL at the
 * arena limit. *n gets the count. Fields stay owned by the arena (NO_COPY). */
nghttp2_nv *pt_h2_make_nva(struct pt_arena *a, const struct pt_headers *h,
                           const char *const *pseudo, const struct pt_str *pseudo_values,
                           size_t npseudo, size_t *n);

struct evbuffer;

/*
 * The two halves of a zero-copy DATA source reading a body pipe, shared by
 * the server (responses) and the client (requests).
 * pt_h2_pipe_read: for nghttp2's read_callback. Progress: bytes to send
 * (NO_COPY), or NGHTTP2_ERR_DEFERRED with *deferred set while the pipe is
 * empty and not ended. At the end it submits p->trailers (if any) so the
 * DATA frame carries no END_STREAM.
 * pt_h2_pipe_send: for send_data_callback. Status: 0, or
 * NGHTTP2_ERR_WOULDBLOCK with *blocked set while out holds PT_H2_OUT_HIWAT.
 */
ssize_t pt_h2_pipe_read(nghttp2_session *ng, int32_t id, struct pt_pipe *p, struct pt_arena *a,
                        size_t length, uint32_t *flags, bool *deferred);
int pt_h2_pipe_send(struct evbuffer *out, const uint8_t *framehd, struct pt_pipe *p, size_t length,
                    bool *blocked);

/* True for fields whose value is different on every message (request ids,
 * deadlines, dates): sent without HPACK indexing. */
bool pt_h2_unique_value(struct pt_str name);

/* The RST_STREAM code to send for an exchange failure. */
uint32_t pt_h2_error_code(int err);

/* Status: 0 or PT_ERR_LIMIT: copy one received field into h (name already
 * lower case, validated by nghttp2). */
int pt_h2_add_field(struct pt_headers *h, const uint8_t *name, size_t namelen, const uint8_t *value,
                    size_t valuelen);

#endif
