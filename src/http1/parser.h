/*
 * http1/parser.h - sans-I/O HTTP/1.x message parser (requests or responses).
 *
 * Bytes in, events out; no sockets, no allocation per message beyond the
 * parser's own head buffer. Strict by design (RFC 9112 §2.2, §6.1, §6.3;
 * ARCHITECTURE §6): rejected are both Content-Length and Transfer-Encoding,
 * repeated Content-Length with differing values, a Transfer-Encoding whose
 * final coding is not chunked (requests), obs-fold, bare CR or bare LF line
 * endings, invalid header names, control bytes in values, a missing or
 * repeated Host on requests, and malformed chunk framing. It does not use
 * libhttp-parser: the Debian build is lenient exactly where a gateway must
 * not be (README.md, "Why not libhttp-parser").
 *
 * The head is copied into the parser's buffer (bounded by the limits);
 * body bytes are never copied: on_body points into the caller's input.
 * Input may be split at any byte; the events do not depend on the split.
 *
 *   idle ──bytes──> head ──on_head──> body* ──on_complete──> paused
 *     ^                                                         │
 *     └──────────────── pt_h1_parser_next() ────────────────────┘
 *   any ──error──> failed (execute returns <0 from then on)
 *
 * After on_complete the parser stops consuming (execute returns the bytes
 * up to the end of that message): the caller answers the message, then
 * calls pt_h1_parser_next() to parse the following pipelined one. After an
 * upgrade (request with Upgrade accepted by the caller, or a 101 response)
 * the remaining bytes are not HTTP and the caller stops calling execute.
 *
 * Callbacks run inside execute() (on_complete also inside finish()); they
 * may call pt_h1_parser_next() from on_complete to keep parsing in the same
 * call, and must not call execute() or free the parser.
 *
 * Thread: a parser belongs to one connection, i.e. one worker.
 */
#ifndef PT_HTTP1_PARSER_H
#define PT_HTTP1_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http/headers.h"

enum pt_h1_mode {
    PT_H1_REQUEST,
    PT_H1_RESPONSE,
};

/* 0 means the default. The same limits apply to a trailer section. */
struct pt_h1_limits {
    uint32_t max_header_bytes; /* whole head incl. request/status line; default 65536 */
    uint32_t max_headers;      /* header fields; default 100 */
};

/* Borrowed views valid only during on_head / on_trailers. Header names are
 * in lower case; values have surrounding whitespace removed. */
struct pt_h1_head {
    struct pt_str method; /* requests */
    struct pt_str target; /* requests: request-target as sent */
    int status;           /* responses */
    struct pt_str reason; /* responses */
    int version_minor;    /* HTTP/1.<minor>: 0 or 1 */
    const struct pt_header *headers;
    uint32_t nheaders;
    int64_t content_length; /* -1 when absent; framing is has_body/chunked */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* from version and Connection */
    bool upgrade;           /* request: Connection: upgrade + Upgrade; response: 101 */
    bool expect_continue;   /* request: Expect: 100-continue */
    bool has_body;          /* a body follows (chunked, length > 0, or read until close) */
};

/* Any callback may be NULL. */
struct pt_h1_parser_cb {
    /* Status: 0 to go on, or a negative PT_ERR_* to stop (execute returns it). */
    int (*on_head)(void *ctx, const struct pt_h1_head *head);
    int (*on_body)(void *ctx, const char *data, size_t len);
    /* Trailer fields of a chunked message (only called when there are some). */
    int (*on_trailers)(void *ctx, const struct pt_header *fields, uint32_t n);
    int (*on_complete)(void *ctx);
};

struct pt_h1_parser;

/* Pointer: never NULL (allocation failure aborts). limits may be NULL. */
struct pt_h1_parser *pt_h1_parser_new(enum pt_h1_mode mode, const struct pt_h1_limits *limits,
                                      const struct pt_h1_parser_cb *cb, void *ctx);
void pt_h1_parser_free(struct pt_h1_parser *p);

/*
 * Progress: bytes consumed (fewer than len when the parser paused at the end
 * of a message or at an upgrade), or a negative PT_ERR_*:
 *   PT_ERR_BAD_REQUEST       malformed or ambiguous message (400 / 502 upstream)
 *   PT_ERR_HEADERS_TOO_LARGE head over max_header_bytes or max_headers (431)
 *   PT_ERR_NOT_IMPLEMENTED   unknown transfer coding (501)
 *   or the error a callback returned.
 * Calling it while paused consumes nothing and returns 0.
 */
ssize_t pt_h1_parser_execute(struct pt_h1_parser *p, const char *data, size_t len);
/* Leave the paused state to parse the next message. */
void pt_h1_parser_next(struct pt_h1_parser *p);
/* Response mode: the request being answered was HEAD (or the response must
 * otherwise have no body). Set before the response head is parsed; it holds
 * for the current message and pt_h1_parser_next() clears it. */
void pt_h1_parser_set_no_body(struct pt_h1_parser *p, bool no_body);
/* The peer closed the connection. Status: 0 when that completes the
 * message (a response read until close; nothing in progress), or
 * PT_ERR_CLOSED when a message was cut short. */
int pt_h1_parser_finish(struct pt_h1_parser *p);
/* True between the first byte of a message and on_complete. */
bool pt_h1_parser_in_message(const struct pt_h1_parser *p);

#endif
