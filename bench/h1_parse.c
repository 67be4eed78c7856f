/*
 * bench/h1_parse.c - nanoseconds to parse a typical ~300-byte GET request
 * with the http1 parser (head validated, fields delivered, parser reused
 * across keep-alive requests as a connection would), and, for scale, with
 * bare libhttp-parser (no strictness checks, callbacks that only record
 * where each field is).
 *
 * Usage: bench_h1_parse [iterations]   (default 2000000)
 * Times are thread CPU time, best of five rounds: the figures least
 * disturbed by other load on the machine.
 */
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http1/parser.h"

static const char request[] = "GET /api/v1/users/12345/orders?limit=20&offset=40 HTTP/1.1\r\n"
                              "Host: api.example.com\r\n"
                              "User-Agent: Mozilla/5.0 (X11; Linux x86_64) curl/8.1.2\r\n"
                              "Accept: application/json\r\n"
                              "Accept-Encoding: gzip, deflate, br\r\n"
                              "Accept-Language: en-US,en;q=0.9\r\n"
                              "Connection: keep-alive\r\n"
                              "X-Request-Id: 9f1c2a4e-7b7d-4c1e-9a51-0c2b\r\n"
                              "\r\n";

static volatile size_t sink;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int on_head(void *ctx, const struct pt_h1_head *h)
{
    sink += h->nheaders;
    return 0;
}

static double bench_portico(long iterations)
{
    static const struct pt_h1_parser_cb cb = {.on_head = on_head};
    struct pt_h1_parser *p = pt_h1_parser_new(PT_H1_REQUEST, NULL, &cb, NULL);
    size_t len = sizeof(request) - 1;
    double t0 = now_ns();
    for (long i = 0; i < iterations; i++) {
        if (pt_h1_parser_execute(p, request, len) != (ssize_t)len)
            abort();
        pt_h1_parser_next(p);
    }
    double t1 = now_ns();
    pt_h1_parser_free(p);
    return (t1 - t0) / (double)iterations;
}

struct spans {
    const char *at[64];
    size_t len[64];
    int n;
};

static int hp_data(http_parser *hp, const char *at, size_t len)
{
    struct spans *s = hp->data;
    if (s->n < 64) {
        s->at[s->n] = at;
        s->len[s->n++] = len;
    }
    return 0;
}

static int hp_done(http_parser *hp)
{
    struct spans *s = hp->data;
    sink += (size_t)s->n;
    return 0;
}

static double bench_http_parser(long iterations)
{
    http_parser_settings st;
    memset(&st, 0, sizeof(st));
    st.on_url = hp_data;
    st.on_header_field = hp_data;
    st.on_header_value = hp_data;
    st.on_headers_complete = hp_done;
    struct spans s;
    http_parser hp;
    size_t len = sizeof(request) - 1;
    double t0 = now_ns();
    for (long i = 0; i < iterations; i++) {
        s.n = 0;
        http_parser_init(&hp, HTTP_REQUEST);
        hp.data = &s;
        if (http_parser_execute(&hp, &st, request, len) != len)
            abort();
    }
    double t1 = now_ns();
    return (t1 - t0) / (double)iterations;
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 2000000;
    if (iterations <= 0)
        iterations = 1;
    bench_portico(iterations / 10 + 1);
    bench_http_parser(iterations / 10 + 1);
    double ours = 1e18, theirs = 1e18;
    for (int round = 0; round < 5; round++) {
        double a = bench_portico(iterations), b = bench_http_parser(iterations);
        ours = a < ours ? a : ours;
        theirs = b < theirs ? b : theirs;
    }
    printf("request: %zu bytes, %ld iterations, best of 5 rounds\n", sizeof(request) - 1,
           iterations);
    printf("pt_h1_parser      %7.1f ns/request\n", ours);
    printf("libhttp-parser    %7.1f ns/request (no strictness checks)\n", theirs);
    return 0;
}
