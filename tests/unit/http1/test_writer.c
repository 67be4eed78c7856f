#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "core/arena.h"
#include "http/headers.h"
#include "http1/parser.h"
#include "http1/writer.h"

static char *drain(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    assert_non_null(s);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    return s;
}

static void assert_buf(struct evbuffer *b, const char *expect)
{
    char *s = drain(b);
    assert_string_equal(s, expect);
    free(s);
}

struct fixture {
    struct pt_arena arena;
    struct pt_headers h;
    struct evbuffer *out;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    pt_arena_init(&f->arena, NULL, 0);
    pt_headers_init(&f->h, &f->arena, 0);
    f->out = evbuffer_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    evbuffer_free(f->out);
    pt_arena_fini(&f->arena);
    free(f);
    return 0;
}

static void add(struct pt_headers *h, const char *name, const char *value)
{
    assert_int_equal(pt_headers_add_ref(h, pt_str_from_cstr(name), pt_str_from_cstr(value)), 0);
}

static void test_writer__writes_response_head(void **state)
{
    struct fixture *f = *state;
    add(&f->h, "content-type", "text/plain");
    add(&f->h, "content-length", "5");
    pt_h1_write_response_head(f->out, 404, &f->h);
    assert_buf(f->out, "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\n"
                       "content-length: 5\r\n\r\n");
}

static void test_writer__writes_response_head_without_fields(void **state)
{
    struct fixture *f = *state;
    pt_h1_write_response_head(f->out, 204, &f->h);
    assert_buf(f->out, "HTTP/1.1 204 No Content\r\n\r\n");
    pt_h1_write_response_head(f->out, 299, NULL);
    assert_buf(f->out, "HTTP/1.1 299 Unknown\r\n\r\n");
}

static void test_writer__appends_to_existing_output(void **state)
{
    struct fixture *f = *state;
    evbuffer_add(f->out, "abc", 3);
    pt_h1_write_response_head(f->out, 200, NULL);
    assert_buf(f->out, "abcHTTP/1.1 200 OK\r\n\r\n");
}

static void test_writer__writes_request_head(void **state)
{
    struct fixture *f = *state;
    add(&f->h, "host", "backend:8080");
    add(&f->h, "x-request-id", "42");
    pt_h1_write_request_head(f->out, PT_STR("POST"), PT_STR("/v1/items?x=1"), &f->h);
    assert_buf(f->out,
               "POST /v1/items?x=1 HTTP/1.1\r\nhost: backend:8080\r\nx-request-id: 42\r\n\r\n");
}

static void test_writer__writes_chunks_in_hex(void **state)
{
    struct fixture *f = *state;
    struct evbuffer *data = evbuffer_new();
    char big[300];
    memset(big, 'x', sizeof(big));
    evbuffer_add(data, "hello", 5);
    evbuffer_add(data, big, sizeof(big));
    pt_h1_write_chunk(f->out, data, 5);
    assert_buf(f->out, "5\r\nhello\r\n");
    pt_h1_write_chunk(f->out, data, 300);
    char *s = drain(f->out);
    assert_int_equal(strncmp(s, "12c\r\nxxx", 8), 0);
    assert_int_equal(strlen(s), 5 + 300 + 2);
    assert_string_equal(s + 305, "\r\n");
    free(s);
    assert_int_equal(evbuffer_get_length(data), 0);
    evbuffer_free(data);
}

static void test_writer__zero_length_chunk_writes_nothing(void **state)
{
    struct fixture *f = *state;
    struct evbuffer *data = evbuffer_new();
    evbuffer_add(data, "abc", 3);
    pt_h1_write_chunk(f->out, data, 0);
    assert_int_equal(evbuffer_get_length(f->out), 0);
    assert_int_equal(evbuffer_get_length(data), 3);
    evbuffer_free(data);
}

static void test_writer__chunk_size_matches_the_bytes_available(void **state)
{
    struct fixture *f = *state;
    struct evbuffer *data = evbuffer_new();
    evbuffer_add(data, "abc", 3);
    pt_h1_write_chunk(f->out, data, 10);
    assert_buf(f->out, "3\r\nabc\r\n");
    pt_h1_write_chunk(f->out, data, 10);
    assert_int_equal(evbuffer_get_length(f->out), 0);
    evbuffer_free(data);
}

static void test_writer__writes_last_chunk_with_and_without_trailers(void **state)
{
    struct fixture *f = *state;
    pt_h1_write_last_chunk(f->out, NULL);
    assert_buf(f->out, "0\r\n\r\n");
    add(&f->h, "grpc-status", "0");
    add(&f->h, "grpc-message", "");
    pt_h1_write_last_chunk(f->out, &f->h);
    assert_buf(f->out, "0\r\ngrpc-status: 0\r\ngrpc-message: \r\n\r\n");
}

static void test_writer__knows_standard_reason_phrases(void **state)
{
    struct {
        int status;
        const char *reason;
    } cases[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {103, "Early Hints"},
        {200, "OK"},
        {201, "Created"},
        {204, "No Content"},
        {206, "Partial Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {413, "Content Too Large"},
        {415, "Unsupported Media Type"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {499, "Client Closed Request"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
        {511, "Network Authentication Required"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(pt_http_reason(cases[i].status), cases[i].reason);
    const int unknown[] = {-1, 0, 99, 199, 209, 306, 418, 450, 509, 599, 600, 1000};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        assert_string_equal(pt_http_reason(unknown[i]), "Unknown");
}

/* --- round trips through the parser -------------------------------------- */

struct parsed {
    char head[1024];
    char body[1024];
    size_t body_len;
    char trailers[256];
    int completes;
};

static int rt_head(void *ctx, const struct pt_h1_head *h)
{
    struct parsed *p = ctx;
    size_t n = (size_t)snprintf(p->head, sizeof(p->head), "%.*s %.*s %d %.*s\n", (int)h->method.len,
                                h->method.ptr, (int)h->target.len, h->target.ptr, h->status,
                                (int)h->reason.len, h->reason.ptr);
    for (uint32_t i = 0; i < h->nheaders; i++)
        n += (size_t)snprintf(p->head + n, sizeof(p->head) - n, "%.*s=%.*s\n",
                              (int)h->headers[i].name.len, h->headers[i].name.ptr,
                              (int)h->headers[i].value.len, h->headers[i].value.ptr);
    return 0;
}

static int rt_body(void *ctx, const char *data, size_t len)
{
    struct parsed *p = ctx;
    memcpy(p->body + p->body_len, data, len);
    p->body_len += len;
    return 0;
}

static int rt_trailers(void *ctx, const struct pt_header *f, uint32_t n)
{
    struct parsed *p = ctx;
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++)
        len += (size_t)snprintf(p->trailers + len, sizeof(p->trailers) - len, "%.*s=%.*s\n",
                                (int)f[i].name.len, f[i].name.ptr, (int)f[i].value.len,
                                f[i].value.ptr);
    return 0;
}

static int rt_complete(void *ctx)
{
    struct parsed *p = ctx;
    p->completes++;
    return 0;
}

static void parse_back(enum pt_h1_mode mode, struct evbuffer *b, struct parsed *out)
{
    static const struct pt_h1_parser_cb cb = {rt_head, rt_body, rt_trailers, rt_complete};
    memset(out, 0, sizeof(*out));
    char *s = drain(b);
    struct pt_h1_parser *p = pt_h1_parser_new(mode, NULL, &cb, out);
    assert_int_equal(pt_h1_parser_execute(p, s, strlen(s)), (ssize_t)strlen(s));
    assert_int_equal(out->completes, 1);
    pt_h1_parser_free(p);
    free(s);
}

static void test_writer__response_head_round_trips(void **state)
{
    struct fixture *f = *state;
    add(&f->h, "content-length", "0");
    add(&f->h, "set-cookie", "a=1");
    add(&f->h, "set-cookie", "b=2; Path=/");
    pt_h1_write_response_head(f->out, 503, &f->h);
    struct parsed p;
    parse_back(PT_H1_RESPONSE, f->out, &p);
    assert_string_equal(p.head, "  503 Service Unavailable\ncontent-length=0\nset-cookie=a=1\n"
                                "set-cookie=b=2; Path=/\n");
}

static void test_writer__chunked_request_round_trips(void **state)
{
    struct fixture *f = *state;
    add(&f->h, "host", "up.internal");
    add(&f->h, "transfer-encoding", "chunked");
    pt_h1_write_request_head(f->out, PT_STR("PUT"), PT_STR("/obj/1"), &f->h);
    struct evbuffer *data = evbuffer_new();
    evbuffer_add(data, "first second", 12);
    pt_h1_write_chunk(f->out, data, 6);
    pt_h1_write_chunk(f->out, data, 6);
    struct pt_headers tr;
    pt_headers_init(&tr, &f->arena, 0);
    add(&tr, "x-digest", "sha-256=abc");
    pt_h1_write_last_chunk(f->out, &tr);
    evbuffer_free(data);

    struct parsed p;
    parse_back(PT_H1_REQUEST, f->out, &p);
    assert_string_equal(p.head, "PUT /obj/1 0 \nhost=up.internal\ntransfer-encoding=chunked\n");
    assert_int_equal(p.body_len, 12);
    assert_memory_equal(p.body, "first second", 12);
    assert_string_equal(p.trailers, "x-digest=sha-256=abc\n");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_writer__writes_response_head),
        T(test_writer__writes_response_head_without_fields),
        T(test_writer__appends_to_existing_output),
        T(test_writer__writes_request_head),
        T(test_writer__writes_chunks_in_hex),
        T(test_writer__zero_length_chunk_writes_nothing),
        T(test_writer__chunk_size_matches_the_bytes_available),
        T(test_writer__writes_last_chunk_with_and_without_trailers),
        T(test_writer__knows_standard_reason_phrases),
        T(test_writer__response_head_round_trips),
        T(test_writer__chunked_request_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
