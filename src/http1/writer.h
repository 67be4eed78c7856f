/*
 * http1/writer.h - HTTP/1.1 serialization into an evbuffer (sans-I/O).
 *
 * Writers append bytes; they never validate (header fields reaching a
 * writer were validated when parsed or added) and never fail except by
 * aborting on allocation failure. A NULL field list means no fields.
 */
#ifndef PT_HTTP1_WRITER_H
#define PT_HTTP1_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/headers.h"

struct evbuffer;

/* "HTTP/1.1 <status> <reason>\r\n" + fields + "\r\n". */
void pt_h1_write_response_head(struct evbuffer *out, int status, const struct pt_headers *h);
/* "<method> <target> HTTP/1.1\r\n" + fields + "\r\n" (Host is one of the fields). */
void pt_h1_write_request_head(struct evbuffer *out, struct pt_str method, struct pt_str target,
                              const struct pt_headers *h);
/* One chunk "<hex len>\r\n<len bytes moved from data>\r\n"; len 0 writes nothing.
 * len is clipped to what data holds (and to INT_MAX), so the size line
 * always matches the bytes that follow. */
void pt_h1_write_chunk(struct evbuffer *out, struct evbuffer *data, size_t len);
/* "0\r\n" + trailer fields (may be NULL) + "\r\n". */
void pt_h1_write_last_chunk(struct evbuffer *out, const struct pt_headers *trailers);
struct pt_pipe;

enum pt_h1_pump {
    PT_H1_PUMP_MORE = 0, /* the pipe is empty for now; more will come */
    PT_H1_PUMP_FULL,     /* out reached hiwat: wait until the socket drains */
    PT_H1_PUMP_DONE,     /* the whole body (and last chunk) is in out */
};

/* Move a body from pipe p into out, framed as chunks when chunked (the
 * bytes move between buffers without copying), until the pipe is empty or
 * out holds hiwat bytes. At the end of a chunked body the last chunk goes
 * out with p's trailers when send_trailers. *moved (may be NULL) gets the
 * body bytes moved. */
enum pt_h1_pump pt_h1_pump_body(struct pt_pipe *p, struct evbuffer *out, bool chunked,
                                bool send_trailers, size_t hiwat, uint64_t *moved);
/* Reason phrase for a status ("OK", "Not Found"), "Unknown" when unlisted. */
const char *pt_http_reason(int status);

#endif
