/*
 * http2/server.h - HTTP/2 downstream connections (h2c and h2 over TLS).
 *
 * One nghttp2 server session per connection. Each request stream becomes an
 * exchange; the request body flows into x->req_body and the stream's
 * flow-control window is returned only as the consumer takes bytes
 * (automatic WINDOW_UPDATE is off), so a slow upstream slows the client.
 * The response body is sent from x->resp_body with zero-copy DATA frames,
 * deferred while the pipe is empty and resumed when bytes arrive.
 *
 *   open ──drain (GOAWAY last-stream-id)──> draining ──no streams──> closed
 *     └── protocol error (GOAWAY) / idle timeout / peer gone ──────> closed
 *
 * Thread: the connection's worker.
 */
#ifndef PT_HTTP2_SERVER_H
#define PT_HTTP2_SERVER_H

#include "http/server.h"
#include "net/conn.h"

struct pt_h2_server;

/* Pointer: the codec connection (never NULL); it takes ownership of conn,
 * whose input may already hold the client preface. tmpl supplies info,
 * limits, on_closed and owner; the returned pt_down_conn is embedded in the
 * server. Input is processed from the next loop iteration. */
struct pt_down_conn *pt_h2_server_new(struct pt_worker *w, struct pt_conn *conn,
                                      const struct pt_down_conn *tmpl);

/* True when bytes start the HTTP/2 client preface; *need_more when they are
 * a strict prefix of it. */
bool pt_h2_is_preface(const char *data, size_t len, bool *need_more);

#endif
