/*
 * http1/writer.h - HTTP/1.1 serialization into an evbuffer (sans-I/O).
 *
 * Writers append bytes; they never validate (header fields reaching a
 * writer were validated when parsed or added) and never fail except by
 * aborting on allocation failure. A NULL field list means no fields.
 */
#ifndef PT_HTTP1_WRITER_H
#define PT_HTTP1_WRITER_H

#include <stddef.h>

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
/* Reason phrase for a status ("OK", "Not Found"), "Unknown" when unlisted. */
const char *pt_http_reason(int status);

#endif
