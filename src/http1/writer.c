#include "http1/writer.h"

#include "http/pipe.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/arena.h"

/* Upper bound of a decimal int (sign included) and of a size_t in hex. */
#define INT_CHARS 12
#define HEX_CHARS (sizeof(size_t) * 2)

struct out {
    char *p;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (n == 0) /* an empty pt_str may carry a NULL pointer */
        return;
    memcpy(o->p, s, n);
    o->p += n;
}

static void put_str(struct out *o, struct pt_str s)
{
    put(o, s.ptr, s.len);
}

static void put_int(struct out *o, int v)
{
    char tmp[INT_CHARS];
    int n = snprintf(tmp, sizeof(tmp), "%d", v);
    put(o, tmp, (size_t)n);
}

static size_t fields_size(const struct pt_headers *h)
{
    size_t n = 0;
    for (uint32_t i = 0; h && i < h->n; i++)
        n += h->v[i].name.len + h->v[i].value.len + 4;
    return n;
}

static void put_fields(struct out *o, const struct pt_headers *h)
{
    for (uint32_t i = 0; h && i < h->n; i++) {
        put_str(o, h->v[i].name);
        put(o, ": ", 2);
        put_str(o, h->v[i].value);
        put(o, "\r\n", 2);
    }
    put(o, "\r\n", 2);
}

/* One contiguous reservation per head: a single copy, no evbuffer chain of
 * tiny pieces for the socket layer to gather. */
static struct out reserve(struct evbuffer *buf, size_t max, struct evbuffer_iovec *v)
{
    if (evbuffer_reserve_space(buf, (ev_ssize_t)max, v, 1) < 1)
        pt_abort_oom(max);
    return (struct out){v->iov_base};
}

static void commit(struct evbuffer *buf, struct evbuffer_iovec *v, const struct out *o)
{
    v->iov_len = (size_t)(o->p - (char *)v->iov_base);
    if (evbuffer_commit_space(buf, v, 1) != 0)
        pt_abort_oom(v->iov_len);
}

void pt_h1_write_response_head(struct evbuffer *out, int status, const struct pt_headers *h)
{
    const char *reason = pt_http_reason(status);
    size_t rlen = strlen(reason);
    struct evbuffer_iovec v;
    struct out o = reserve(out, 9 + INT_CHARS + 1 + rlen + 2 + fields_size(h) + 2, &v);
    put(&o, "HTTP/1.1 ", 9);
    put_int(&o, status);
    put(&o, " ", 1);
    put(&o, reason, rlen);
    put(&o, "\r\n", 2);
    put_fields(&o, h);
    commit(out, &v, &o);
}

void pt_h1_write_request_head(struct evbuffer *out, struct pt_str method, struct pt_str target,
                              const struct pt_headers *h)
{
    struct evbuffer_iovec v;
    struct out o = reserve(out, method.len + 1 + target.len + 11 + fields_size(h) + 2, &v);
    put_str(&o, method);
    put(&o, " ", 1);
    put_str(&o, target);
    put(&o, " HTTP/1.1\r\n", 11);
    put_fields(&o, h);
    commit(out, &v, &o);
}

void pt_h1_write_chunk(struct evbuffer *out, struct evbuffer *data, size_t len)
{
    /* The size line must match the bytes that follow, whatever the caller
     * believed data held. */
    size_t avail = evbuffer_get_length(data);
    if (len > avail)
        len = avail;
    /* evbuffer_remove_buffer() counts in int; the rest goes in the next chunk. */
    if (len > INT_MAX)
        len = INT_MAX;
    if (len == 0)
        return;
    char line[HEX_CHARS + 3];
    int n = snprintf(line, sizeof(line), "%zx\r\n", len);
    if (evbuffer_add(out, line, (size_t)n) != 0 ||
        evbuffer_remove_buffer(data, out, len) != (int)len || evbuffer_add(out, "\r\n", 2) != 0)
        pt_abort_oom(len);
}

void pt_h1_write_last_chunk(struct evbuffer *out, const struct pt_headers *trailers)
{
    struct evbuffer_iovec v;
    struct out o = reserve(out, 3 + fields_size(trailers) + 2, &v);
    put(&o, "0\r\n", 3);
    put_fields(&o, trailers);
    commit(out, &v, &o);
}

static const char *const informational[] = {
    [0] = "Continue",
    [1] = "Switching Protocols",
    [2] = "Processing",
    [3] = "Early Hints",
};

static const char *const successful[] = {
    [0] = "OK",
    [1] = "Created",
    [2] = "Accepted",
    [3] = "Non-Authoritative Information",
    [4] = "No Content",
    [5] = "Reset Content",
    [6] = "Partial Content",
    [7] = "Multi-Status",
    [8] = "Already Reported",
    [26] = "IM Used",
};

static const char *const redirection[] = {
    [0] = "Multiple Choices",   [1] = "Moved Permanently",  [2] = "Found",
    [3] = "See Other",          [4] = "Not Modified",       [5] = "Use Proxy",
    [7] = "Temporary Redirect", [8] = "Permanent Redirect",
};

static const char *const client_error[] = {
    [0] = "Bad Request",
    [1] = "Unauthorized",
    [2] = "Payment Required",
    [3] = "Forbidden",
    [4] = "Not Found",
    [5] = "Method Not Allowed",
    [6] = "Not Acceptable",
    [7] = "Proxy Authentication Required",
    [8] = "Request Timeout",
    [9] = "Conflict",
    [10] = "Gone",
    [11] = "Length Required",
    [12] = "Precondition Failed",
    [13] = "Content Too Large",
    [14] = "URI Too Long",
    [15] = "Unsupported Media Type",
    [16] = "Range Not Satisfiable",
    [17] = "Expectation Failed",
    [21] = "Misdirected Request",
    [22] = "Unprocessable Content",
    [23] = "Locked",
    [24] = "Failed Dependency",
    [25] = "Too Early",
    [26] = "Upgrade Required",
    [28] = "Precondition Required",
    [29] = "Too Many Requests",
    [31] = "Request Header Fields Too Large",
    [51] = "Unavailable For Legal Reasons",
    [99] = "Client Closed Request",
};

static const char *const server_error[] = {
    [0] = "Internal Server Error",
    [1] = "Not Implemented",
    [2] = "Bad Gateway",
    [3] = "Service Unavailable",
    [4] = "Gateway Timeout",
    [5] = "HTTP Version Not Supported",
    [6] = "Variant Also Negotiates",
    [7] = "Insufficient Storage",
    [8] = "Loop Detected",
    [10] = "Not Extended",
    [11] = "Network Authentication Required",
};

const char *pt_http_reason(int status)
{
    static const struct {
        const char *const *text;
        size_t n;
    } classes[] = {
        {NULL, 0},
        {informational, sizeof(informational) / sizeof(informational[0])},
        {successful, sizeof(successful) / sizeof(successful[0])},
        {redirection, sizeof(redirection) / sizeof(redirection[0])},
        {client_error, sizeof(client_error) / sizeof(client_error[0])},
        {server_error, sizeof(server_error) / sizeof(server_error[0])},
    };
    if (status < 100 || status > 599)
        return "Unknown";
    size_t cls = (size_t)status / 100, i = (size_t)status % 100;
    const char *text = i < classes[cls].n ? classes[cls].text[i] : NULL;
    return text ? text : "Unknown";
}

enum pt_h1_pump pt_h1_pump_body(struct pt_pipe *p, struct evbuffer *out, bool chunked,
                                bool send_trailers, size_t hiwat, uint64_t *moved)
{
    uint64_t total = 0;
    while (pt_pipe_len(p) > 0 && evbuffer_get_length(out) < hiwat) {
        size_t n = pt_pipe_len(p);
        if (n > hiwat)
            n = hiwat;
        if (chunked)
            evbuffer_add_printf(out, "%zx\r\n", n);
        pt_pipe_read_into(p, out, n);
        if (chunked)
            evbuffer_add(out, "\r\n", 2);
        total += n;
    }
    if (moved)
        *moved = total;
    if (pt_pipe_done(p)) {
        if (chunked)
            pt_h1_write_last_chunk(out, send_trailers ? p->trailers : NULL);
        return PT_H1_PUMP_DONE;
    }
    return evbuffer_get_length(out) >= hiwat ? PT_H1_PUMP_FULL : PT_H1_PUMP_MORE;
}
