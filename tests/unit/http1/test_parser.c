#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http1/parser.h"
#include "portico/errors.h"

/* --- recorder ------------------------------------------------------------ */

/* Every event lands in a text log, so that feeding the same bytes in
 * different splits can be compared as strings. Body bytes are gathered and
 * logged at the end of the message because their chunking legitimately
 * depends on the split. */
struct rec {
    char log[32768];
    size_t log_len;
    char body[8192];
    size_t body_len;
    int heads;
    int completes;
    int trailers;
    struct pt_h1_head h; /* scalars of the last head; views cleared */
    char method[64];
    char target[256];
    char reason[64];
    char fields[4096]; /* "name: value\n" of the last head */
    char trailer_fields[1024];
    const char *lo, *hi; /* the input execute() is working on */
    bool body_outside_input;
    bool paused;
    int fail_on_head;
    int fail_on_body;
    int fail_on_complete;
    int fail_on_trailers;
};

static struct rec R;
static struct pt_h1_parser *P;

static void logf_(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->log + r->log_len, sizeof(r->log) - r->log_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->log_len += (size_t)n;
    if (r->log_len >= sizeof(r->log))
        r->log_len = sizeof(r->log) - 1;
}

static void copy_str(char *dst, size_t cap, struct pt_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static void format_fields(char *dst, size_t cap, const struct pt_header *f, uint32_t n)
{
    size_t len = 0;
    dst[0] = '\0';
    for (uint32_t i = 0; i < n && len < cap; i++) {
        int k = snprintf(dst + len, cap - len, "%.*s: %.*s\n", (int)f[i].name.len, f[i].name.ptr,
                         (int)f[i].value.len, f[i].value.ptr);
        if (k > 0)
            len += (size_t)k;
    }
}

static int on_head(void *ctx, const struct pt_h1_head *h)
{
    struct rec *r = ctx;
    r->heads++;
    r->h = *h;
    copy_str(r->method, sizeof(r->method), h->method);
    copy_str(r->target, sizeof(r->target), h->target);
    copy_str(r->reason, sizeof(r->reason), h->reason);
    r->h.method = r->h.target = r->h.reason = PT_STR_NULL;
    r->h.headers = NULL;
    format_fields(r->fields, sizeof(r->fields), h->headers, h->nheaders);
    logf_(r, "head %s %s %d %s 1.%d cl=%lld chunked=%d ka=%d up=%d expect=%d body=%d\n%s",
          r->method, r->target, h->status, r->reason, h->version_minor,
          (long long)h->content_length, h->chunked, h->keep_alive, h->upgrade, h->expect_continue,
          h->has_body, r->fields);
    return r->fail_on_head;
}

static int on_body(void *ctx, const char *data, size_t len)
{
    struct rec *r = ctx;
    if (data < r->lo || data + len > r->hi)
        r->body_outside_input = true;
    if (len > sizeof(r->body) - r->body_len)
        len = sizeof(r->body) - r->body_len;
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    return r->fail_on_body;
}

static int on_trailers(void *ctx, const struct pt_header *f, uint32_t n)
{
    struct rec *r = ctx;
    r->trailers++;
    format_fields(r->trailer_fields, sizeof(r->trailer_fields), f, n);
    logf_(r, "trailers\n%s", r->trailer_fields);
    return r->fail_on_trailers;
}

static int on_complete(void *ctx)
{
    struct rec *r = ctx;
    r->completes++;
    r->paused = true;
    logf_(r, "body=[%.*s]\ncomplete\n", (int)r->body_len, r->body);
    r->body_len = 0;
    return r->fail_on_complete;
}

static const struct pt_h1_parser_cb CB = {on_head, on_body, on_trailers, on_complete};

static struct pt_h1_parser *fresh(enum pt_h1_mode mode, const struct pt_h1_limits *limits)
{
    pt_h1_parser_free(P);
    memset(&R, 0, sizeof(R));
    P = pt_h1_parser_new(mode, limits, &CB, &R);
    return P;
}

/* Feeds s cut at the given offsets, each piece in its own heap block (so
 * ASan notices a read past a piece), calling next() after every message and
 * stopping after an upgrade. Status: 0 or the parser's error. */
static int drive_cuts(struct pt_h1_parser *p, struct rec *r, const char *s, size_t len,
                      const size_t *cuts, size_t ncuts)
{
    size_t start = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : len;
        if (end <= start)
            continue;
        size_t plen = end - start;
        char *piece = malloc(plen);
        assert_non_null(piece);
        memcpy(piece, s + start, plen);
        size_t off = 0;
        while (off < plen) {
            r->lo = piece;
            r->hi = piece + plen;
            ssize_t n = pt_h1_parser_execute(p, piece + off, plen - off);
            if (n < 0) {
                logf_(r, "error %d\n", (int)n);
                free(piece);
                return (int)n;
            }
            off += (size_t)n;
            if (r->paused) {
                if (r->h.upgrade) {
                    free(piece);
                    return 0;
                }
                r->paused = false;
                pt_h1_parser_next(p);
            } else {
                assert_int_equal(off, plen);
            }
        }
        free(piece);
        start = end;
    }
    return 0;
}

static int drive(struct pt_h1_parser *p, struct rec *r, const char *s, size_t len)
{
    return drive_cuts(p, r, s, len, NULL, 0);
}

static int parse_req(const char *s)
{
    fresh(PT_H1_REQUEST, NULL);
    return drive(P, &R, s, strlen(s));
}

static int parse_resp(const char *s)
{
    fresh(PT_H1_RESPONSE, NULL);
    return drive(P, &R, s, strlen(s));
}

static int teardown(void **state)
{
    pt_h1_parser_free(P);
    P = NULL;
    return 0;
}

/* Log of the whole input fed at once, then compared with every two-piece
 * split and with byte-by-byte feeding. */
static void check_every_split(enum pt_h1_mode mode, const char *s, int expect_rc)
{
    size_t len = strlen(s);
    fresh(mode, NULL);
    assert_int_equal(drive(P, &R, s, len), expect_rc);
    static char whole[sizeof(R.log)];
    memcpy(whole, R.log, R.log_len);
    whole[R.log_len] = '\0';
    assert_true(R.completes > 0 || expect_rc < 0);

    for (size_t cut = 1; cut < len; cut++) {
        fresh(mode, NULL);
        assert_int_equal(drive_cuts(P, &R, s, len, &cut, 1), expect_rc);
        R.log[R.log_len] = '\0';
        assert_string_equal(R.log, whole);
        assert_false(R.body_outside_input);
    }
    size_t *cuts = malloc(len * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    fresh(mode, NULL);
    assert_int_equal(drive_cuts(P, &R, s, len, cuts, len), expect_rc);
    R.log[R.log_len] = '\0';
    assert_string_equal(R.log, whole);
    free(cuts);
}

static void assert_req_rejected(const char *s, int err)
{
    if (parse_req(s) != err)
        fail_msg("expected %d for request %s", err, s);
    assert_int_equal(R.heads, 0);
}

static void assert_resp_rejected(const char *s, int err)
{
    if (parse_resp(s) != err)
        fail_msg("expected %d for response %s", err, s);
    assert_int_equal(R.heads, 0);
}

#define GET_HEAD(extra) "GET / HTTP/1.1\r\nHost: example.com\r\n" extra "\r\n"
#define POST_HEAD(extra) "POST /up HTTP/1.1\r\nHost: example.com\r\n" extra "\r\n"
#define OK_HEAD(extra) "HTTP/1.1 200 OK\r\n" extra "\r\n"

/* --- requests ------------------------------------------------------------ */

static void test_parser__parses_a_simple_get(void **state)
{
    const char *s = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    fresh(PT_H1_REQUEST, NULL);
    assert_int_equal(pt_h1_parser_execute(P, s, strlen(s)), (ssize_t)strlen(s));
    assert_int_equal(R.heads, 1);
    assert_int_equal(R.completes, 1);
    assert_string_equal(R.method, "GET");
    assert_string_equal(R.target, "/index.html?q=1");
    assert_int_equal(R.h.version_minor, 1);
    assert_int_equal(R.h.nheaders, 2);
    assert_string_equal(R.fields, "host: example.com\naccept: */*\n");
    assert_int_equal(R.h.content_length, -1);
    assert_false(R.h.chunked);
    assert_true(R.h.keep_alive);
    assert_false(R.h.upgrade);
    assert_false(R.h.expect_continue);
    assert_false(R.h.has_body);
    assert_int_equal(R.h.status, 0);
    assert_false(pt_h1_parser_in_message(P));
}

static void test_parser__lowercases_names_and_trims_values(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHOST: a\r\nX-Mixed-Case:  \t v a l \t \r\n"
                               "X-Empty:\r\nX-Blank:   \r\n\r\n"),
                     0);
    assert_string_equal(R.fields, "host: a\nx-mixed-case: v a l\nx-empty: \nx-blank: \n");
}

static void test_parser__keeps_field_order_and_repeats(void **state)
{
    assert_int_equal(parse_req(GET_HEAD("Cookie: a=1\r\nX: 1\r\nCookie: b=2\r\n")), 0);
    assert_string_equal(R.fields, "host: example.com\ncookie: a=1\nx: 1\ncookie: b=2\n");
}

static void test_parser__accepts_htab_and_obs_text_in_values(void **state)
{
    assert_int_equal(parse_req(GET_HEAD("X: a\tb \xc3\xa9\r\n")), 0);
    assert_string_equal(R.fields, "host: example.com\nx: a\tb \xc3\xa9\n");
}

static void test_parser__accepts_any_method_token(void **state)
{
    assert_int_equal(parse_req("PROPFIND /x HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    assert_string_equal(R.method, "PROPFIND");
    assert_int_equal(parse_req("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    assert_string_equal(R.method, "M-SEARCH");
    assert_string_equal(R.target, "*");
}

static void test_parser__delivers_content_length_body_without_copying(void **state)
{
    const char *s = POST_HEAD("Content-Length: 11\r\n") "hello world";
    fresh(PT_H1_REQUEST, NULL);
    R.lo = s;
    R.hi = s + strlen(s);
    assert_int_equal(pt_h1_parser_execute(P, s, strlen(s)), (ssize_t)strlen(s));
    assert_false(R.body_outside_input);
    assert_int_equal(R.h.content_length, 11);
    assert_true(R.h.has_body);
    assert_int_equal(R.completes, 1);
    assert_non_null(strstr(R.log, "body=[hello world]"));
}

static void test_parser__content_length_zero_has_no_body(void **state)
{
    assert_int_equal(parse_req(POST_HEAD("Content-Length: 0\r\n")), 0);
    assert_int_equal(R.h.content_length, 0);
    assert_false(R.h.has_body);
    assert_int_equal(R.completes, 1);
}

static void test_parser__body_split_across_calls_points_into_each_input(void **state)
{
    const char *head = POST_HEAD("Content-Length: 10\r\n");
    fresh(PT_H1_REQUEST, NULL);
    assert_int_equal(pt_h1_parser_execute(P, head, strlen(head)), (ssize_t)strlen(head));
    assert_true(pt_h1_parser_in_message(P));
    char a[4] = {'0', '1', '2', '3'}, b[6] = {'4', '5', '6', '7', '8', '9'};
    R.lo = a;
    R.hi = a + 4;
    assert_int_equal(pt_h1_parser_execute(P, a, 4), 4);
    assert_int_equal(R.completes, 0);
    R.lo = b;
    R.hi = b + 6;
    assert_int_equal(pt_h1_parser_execute(P, b, 6), 6);
    assert_false(R.body_outside_input);
    assert_int_equal(R.completes, 1);
    assert_non_null(strstr(R.log, "body=[0123456789]"));
}

static void test_parser__every_split_of_a_head_gives_the_same_result(void **state)
{
    check_every_split(PT_H1_REQUEST,
                      "\r\nPOST /api/v1/items?id=42 HTTP/1.1\r\nHost: api.example.com:8443\r\n"
                      "User-Agent: curl/8.0\r\nAccept: application/json\r\nX-Tab:\tv\t\r\n"
                      "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
                      0);
}

static void test_parser__every_split_of_a_chunked_body_gives_the_same_result(void **state)
{
    check_every_split(PT_H1_REQUEST,
                      POST_HEAD("Transfer-Encoding: chunked\r\n") "5\r\nhello\r\n"
                                                                  "1A;ext=1;q=\"x y\"\r\n"
                                                                  "abcdefghijklmnopqrstuvwxyz\r\n"
                                                                  "0003 ; e\r\n123\r\n"
                                                                  "0\r\nX-Sum: 9\r\nX-B: 1\r\n\r\n",
                      0);
}

static void test_parser__every_split_of_a_rejected_message_gives_the_same_error(void **state)
{
    check_every_split(PT_H1_REQUEST,
                      POST_HEAD("Transfer-Encoding: chunked\r\n") "5\r\nhelloXY0\r\n\r\n",
                      PT_ERR_BAD_REQUEST);
    check_every_split(PT_H1_REQUEST, "GET / HTTP/1.1\r\nHost: a\r\nX: 1\n\r\n", PT_ERR_BAD_REQUEST);
}

static void test_parser__pipelined_requests_pause_after_each_message(void **state)
{
    const char *a = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    const char *b = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz";
    const char *c = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "2\r\nhi\r\n0\r\n\r\n";
    char buf[512];
    snprintf(buf, sizeof(buf), "%s%s%s", a, b, c);
    size_t len = strlen(buf);
    fresh(PT_H1_REQUEST, NULL);

    ssize_t n = pt_h1_parser_execute(P, buf, len);
    assert_int_equal(n, (ssize_t)strlen(a));
    assert_int_equal(R.completes, 1);
    assert_string_equal(R.target, "/a");
    /* Paused: nothing more is consumed until next(). */
    assert_int_equal(pt_h1_parser_execute(P, buf + n, len - (size_t)n), 0);
    assert_int_equal(R.heads, 1);

    pt_h1_parser_next(P);
    size_t off = (size_t)n;
    n = pt_h1_parser_execute(P, buf + off, len - off);
    assert_int_equal(n, (ssize_t)strlen(b));
    assert_string_equal(R.target, "/b");
    assert_int_equal(R.completes, 2);

    pt_h1_parser_next(P);
    off += (size_t)n;
    n = pt_h1_parser_execute(P, buf + off, len - off);
    assert_int_equal(n, (ssize_t)strlen(c));
    assert_string_equal(R.target, "/c");
    assert_int_equal(R.completes, 3);
    assert_non_null(strstr(R.log, "body=[xyz]"));
    assert_non_null(strstr(R.log, "body=[hi]"));
}

static int next_in_callback(void *ctx)
{
    struct rec *r = ctx;
    r->completes++;
    pt_h1_parser_next(P);
    return 0;
}

static void test_parser__next_inside_on_complete_keeps_parsing(void **state)
{
    struct pt_h1_parser_cb cb = CB;
    cb.on_complete = next_in_callback;
    pt_h1_parser_free(P);
    memset(&R, 0, sizeof(R));
    P = pt_h1_parser_new(PT_H1_REQUEST, NULL, &cb, &R);
    const char *s = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(pt_h1_parser_execute(P, s, strlen(s)), (ssize_t)strlen(s));
    assert_int_equal(R.completes, 2);
}

static void test_parser__ignores_empty_lines_before_request_line(void **state)
{
    assert_int_equal(parse_req("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    assert_int_equal(R.heads, 1);
    fresh(PT_H1_REQUEST, NULL);
    assert_int_equal(pt_h1_parser_execute(P, "\r\n\r", 3), 3);
    assert_false(pt_h1_parser_in_message(P));
    assert_int_equal(pt_h1_parser_finish(P), 0);
}

static void test_parser__bounds_empty_lines_before_request_line(void **state)
{
    struct pt_h1_limits lim = {.max_header_bytes = 64};
    fresh(PT_H1_REQUEST, &lim);
    for (int i = 0; i < 32; i++)
        assert_int_equal(pt_h1_parser_execute(P, "\r\n", 2), 2);
    assert_int_equal(pt_h1_parser_execute(P, "\r\n", 2), PT_ERR_HEADERS_TOO_LARGE);
}

static void test_parser__accepts_transfer_coding_parameters_in_responses(void **state)
{
    assert_int_equal(
        parse_resp(OK_HEAD("Transfer-Encoding: gzip ; level=1, chunked\r\n") "1\r\nx\r\n0\r\n\r\n"),
        0);
    assert_true(R.h.chunked);
    assert_int_equal(R.completes, 1);
}

static void test_parser__rejects_bare_lf_line_ending(void **state)
{
    assert_req_rejected("GET / HTTP/1.1\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/1.1\r\nHost: a\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/1.1\r\nHost: a\r\n\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_bare_cr(void **state)
{
    assert_req_rejected("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_obs_fold(void **state)
{
    assert_req_rejected(GET_HEAD("X: a\r\n b\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(GET_HEAD("X: a\r\n\tb\r\n"), PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_whitespace_before_first_field(void **state)
{
    assert_req_rejected("GET / HTTP/1.1\r\n Host: a\r\n\r\n", PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_invalid_header_name_bytes(void **state)
{
    assert_req_rejected(GET_HEAD("X(y): 1\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(GET_HEAD("X\"y: 1\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(GET_HEAD("X\xc3\xa9: 1\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(GET_HEAD("X/y: 1\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(GET_HEAD("no colon\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(GET_HEAD("nocolon\r\n"), PT_ERR_BAD_REQUEST);
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX\0Y: 1\r\n\r\n";
    fresh(PT_H1_REQUEST, NULL);
    assert_int_equal(drive(P, &R, nul, sizeof(nul) - 1), PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_empty_header_name(void **state)
{
    assert_req_rejected(GET_HEAD(": v\r\n"), PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_whitespace_between_name_and_colon(void **state)
{
    assert_req_rejected(GET_HEAD("Content-Length : 5\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(GET_HEAD("X\t: 5\r\n"), PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_control_bytes_in_values(void **state)
{
    assert_req_rejected(GET_HEAD("X: a\x01"
                                 "b\r\n"),
                        PT_ERR_BAD_REQUEST);
    assert_req_rejected(GET_HEAD("X: a\x7f\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(GET_HEAD("X: a\x1b[0m\r\n"), PT_ERR_BAD_REQUEST);
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    fresh(PT_H1_REQUEST, NULL);
    assert_int_equal(drive(P, &R, nul, sizeof(nul) - 1), PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_request_line_with_extra_spaces(void **state)
{
    assert_req_rejected("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / \r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET /\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_invalid_method_token(void **state)
{
    assert_req_rejected("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GE\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("/ HTTP/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_control_and_non_ascii_bytes_in_target(void **state)
{
    assert_req_rejected("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_invalid_http_version(void **state)
{
    assert_req_rejected("GET / HTTP/2.0\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/0.9\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / http/1.1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/1.x\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/1.10\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/1\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/11\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
}

static void test_parser__treats_a_later_minor_version_as_1_1(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 0);
    assert_int_equal(R.h.version_minor, 1);
    assert_req_rejected("GET / HTTP/1.2\r\n\r\n", PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_missing_host_on_http11(void **state)
{
    assert_req_rejected("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", PT_ERR_BAD_REQUEST);
}

static void test_parser__accepts_missing_host_on_http10(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.0\r\n\r\n"), 0);
    assert_int_equal(R.h.version_minor, 0);
    assert_int_equal(R.completes, 1);
}

static void test_parser__rejects_more_than_one_host(void **state)
{
    assert_req_rejected("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_host_with_invalid_characters(void **state)
{
    assert_req_rejected("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_req_rejected("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", PT_ERR_BAD_REQUEST);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), 0);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: xn--bcher-kva.example_1.com\r\n\r\n"), 0);
}

static void test_parser__rejects_content_length_with_transfer_encoding(void **state)
{
    assert_req_rejected(POST_HEAD("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
                        PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n"),
                        PT_ERR_BAD_REQUEST);
    assert_resp_rejected(OK_HEAD("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
                         PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_differing_content_lengths(void **state)
{
    assert_req_rejected(POST_HEAD("Content-Length: 5\r\nContent-Length: 6\r\n"),
                        PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Content-Length: 5, 6\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Content-Length: 5\r\nContent-Length: 05, 6\r\n"),
                        PT_ERR_BAD_REQUEST);
}

static void test_parser__merges_identical_content_lengths(void **state)
{
    assert_int_equal(parse_req(POST_HEAD("Content-Length: 3\r\nContent-Length: 3\r\n") "abc"), 0);
    assert_int_equal(R.h.content_length, 3);
    assert_non_null(strstr(R.log, "body=[abc]"));
    assert_int_equal(parse_req(POST_HEAD("Content-Length: 3, 3\r\n") "abc"), 0);
    assert_int_equal(R.h.content_length, 3);
    assert_int_equal(parse_req(POST_HEAD("Content-Length: 003\r\n") "abc"), 0);
    assert_int_equal(R.h.content_length, 3);
}

static void test_parser__rejects_non_numeric_content_length(void **state)
{
    const char *bad[] = {"abc", "-1", "+5", "5 5", "0x5", "5,", ",5", "5,,5", "1.0", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char s[256];
        snprintf(s, sizeof(s), POST_HEAD("Content-Length: %s\r\n"), bad[i]);
        assert_req_rejected(s, PT_ERR_BAD_REQUEST);
    }
}

static void test_parser__rejects_overflowing_content_length(void **state)
{
    assert_req_rejected(POST_HEAD("Content-Length: 9223372036854775808\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Content-Length: 18446744073709551616\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Content-Length: 99999999999999999999999\r\n"),
                        PT_ERR_BAD_REQUEST);
    fresh(PT_H1_REQUEST, NULL);
    const char *max = POST_HEAD("Content-Length: 9223372036854775807\r\n");
    assert_int_equal(pt_h1_parser_execute(P, max, strlen(max)), (ssize_t)strlen(max));
    assert_int_equal(R.h.content_length, INT64_MAX);
}

static void test_parser__rejects_transfer_encoding_not_ending_in_chunked(void **state)
{
    assert_req_rejected(POST_HEAD("Transfer-Encoding: gzip\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Transfer-Encoding: chunked, gzip\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),
                        PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Transfer-Encoding: \r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Transfer-Encoding: chunked,\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Transfer-Encoding: chunked;x=1\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Transfer-Encoding: chunked x\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Transfer-Encoding: \"chunked\"\r\n"), PT_ERR_BAD_REQUEST);
    assert_resp_rejected(OK_HEAD("Transfer-Encoding: gzip x, chunked\r\n"), PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_unknown_transfer_coding_as_not_implemented(void **state)
{
    assert_req_rejected(POST_HEAD("Transfer-Encoding: foo\r\n"), PT_ERR_NOT_IMPLEMENTED);
    assert_req_rejected(POST_HEAD("Transfer-Encoding: foo, chunked\r\n"), PT_ERR_NOT_IMPLEMENTED);
    assert_req_rejected(POST_HEAD("Transfer-Encoding: identity\r\n"), PT_ERR_NOT_IMPLEMENTED);
}

static void test_parser__rejects_coding_before_chunked_as_not_implemented(void **state)
{
    assert_req_rejected(POST_HEAD("Transfer-Encoding: gzip, chunked\r\n"), PT_ERR_NOT_IMPLEMENTED);
    assert_req_rejected(POST_HEAD("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
                        PT_ERR_NOT_IMPLEMENTED);
}

static void test_parser__rejects_chunked_applied_twice(void **state)
{
    assert_req_rejected(POST_HEAD("Transfer-Encoding: chunked, chunked\r\n"), PT_ERR_BAD_REQUEST);
    assert_req_rejected(POST_HEAD("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
                        PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_chunked_on_http10(void **state)
{
    assert_req_rejected("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                        PT_ERR_BAD_REQUEST);
    assert_resp_rejected("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                         PT_ERR_BAD_REQUEST);
}

static void test_parser__accepts_chunked_case_insensitively(void **state)
{
    assert_int_equal(parse_req(POST_HEAD("Transfer-Encoding:  ChUnKeD \r\n") "0\r\n\r\n"), 0);
    assert_true(R.h.chunked);
    assert_true(R.h.has_body);
    assert_int_equal(R.completes, 1);
}

/* --- chunked ------------------------------------------------------------- */

#define CHUNKED_POST POST_HEAD("Transfer-Encoding: chunked\r\n")

static void test_parser__decodes_chunks(void **state)
{
    assert_int_equal(parse_req(CHUNKED_POST "3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n"), 0);
    assert_non_null(strstr(R.log, "body=[abc0123456789]"));
    assert_int_equal(R.trailers, 0);
    assert_int_equal(R.completes, 1);
}

static void test_parser__ignores_chunk_extensions(void **state)
{
    assert_int_equal(parse_req(CHUNKED_POST "3;a=b;c\r\nabc\r\n2 ; q=\"x;y\"\r\nde\r\n"
                                            "0;last\r\n\r\n"),
                     0);
    assert_non_null(strstr(R.log, "body=[abcde]"));
}

static void test_parser__rejects_malformed_chunk_size(void **state)
{
    const char *cases[] = {CHUNKED_POST "\r\n",    CHUNKED_POST "-1\r\n",
                           CHUNKED_POST "0x5\r\n", CHUNKED_POST "5 x\r\nhello\r\n",
                           CHUNKED_POST ";x\r\n",  CHUNKED_POST "5\n",
                           CHUNKED_POST "5\r\r\n", CHUNKED_POST "5\rX",
                           CHUNKED_POST " 5\r\n",  CHUNKED_POST "1ffffffffffffffff\r\n"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (parse_req(cases[i]) != PT_ERR_BAD_REQUEST)
            fail_msg("accepted chunk framing in %s", cases[i]);
    }
}

static void test_parser__accepts_the_largest_chunk_size(void **state)
{
    const char *s = CHUNKED_POST "ffffffffffffffff\r\nab";
    fresh(PT_H1_REQUEST, NULL);
    assert_int_equal(pt_h1_parser_execute(P, s, strlen(s)), (ssize_t)strlen(s));
    assert_true(pt_h1_parser_in_message(P));
}

static void test_parser__rejects_missing_crlf_after_chunk_data(void **state)
{
    assert_int_equal(parse_req(CHUNKED_POST "5\r\nhelloXY0\r\n\r\n"), PT_ERR_BAD_REQUEST);
    assert_int_equal(parse_req(CHUNKED_POST "5\r\nhello\n0\r\n\r\n"), PT_ERR_BAD_REQUEST);
    assert_int_equal(parse_req(CHUNKED_POST "5\r\nhello\rX0\r\n\r\n"), PT_ERR_BAD_REQUEST);
    assert_int_equal(parse_req(CHUNKED_POST "5\r\nhello world\r\n0\r\n\r\n"), PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_control_bytes_in_chunk_extension(void **state)
{
    assert_int_equal(parse_req(CHUNKED_POST "5;a\nb\r\nhello\r\n0\r\n\r\n"), PT_ERR_BAD_REQUEST);
    assert_int_equal(parse_req(CHUNKED_POST "5;a\rb\r\nhello\r\n0\r\n\r\n"), PT_ERR_BAD_REQUEST);
    static const char nul[] = CHUNKED_POST "5;a\0\r\nhello\r\n0\r\n\r\n";
    fresh(PT_H1_REQUEST, NULL);
    assert_int_equal(drive(P, &R, nul, sizeof(nul) - 1), PT_ERR_BAD_REQUEST);
}

static void test_parser__rejects_overlong_chunk_extension(void **state)
{
    static char s[8192];
    int n = snprintf(s, sizeof(s), CHUNKED_POST "1;x=");
    memset(s + n, 'a', 5000);
    memcpy(s + n + 5000, "\r\na\r\n0\r\n\r\n", 11);
    assert_int_equal(parse_req(s), PT_ERR_BAD_REQUEST);
    memset(s + n, 'a', 4000);
    memcpy(s + n + 4000, "\r\na\r\n0\r\n\r\n", 11);
    assert_int_equal(parse_req(s), 0);
}

static void test_parser__delivers_trailers(void **state)
{
    assert_int_equal(parse_req(CHUNKED_POST "2\r\nhi\r\n0\r\nX-Checksum:  abc \r\n"
                                            "Grpc-Status: 0\r\n\r\n"),
                     0);
    assert_int_equal(R.trailers, 1);
    assert_string_equal(R.trailer_fields, "x-checksum: abc\ngrpc-status: 0\n");
    assert_int_equal(R.completes, 1);
    /* The head's fields are untouched by the trailer section. */
    assert_string_equal(R.fields, "host: example.com\ntransfer-encoding: chunked\n");
}

static void test_parser__validates_trailers_like_the_head(void **state)
{
    assert_int_equal(parse_req(CHUNKED_POST "0\r\nX: a\r\n b\r\n\r\n"), PT_ERR_BAD_REQUEST);
    assert_int_equal(parse_req(CHUNKED_POST "0\r\nX : a\r\n\r\n"), PT_ERR_BAD_REQUEST);
    assert_int_equal(parse_req(CHUNKED_POST "0\r\nX: a\n\r\n"), PT_ERR_BAD_REQUEST);
    assert_int_equal(parse_req(CHUNKED_POST "0\r\nX: a\x01\r\n\r\n"), PT_ERR_BAD_REQUEST);
    assert_int_equal(parse_req(CHUNKED_POST "0\r\n\n"), PT_ERR_BAD_REQUEST);
    assert_int_equal(R.trailers, 0);
    assert_int_equal(R.completes, 0);
}

static void test_parser__limits_trailers(void **state)
{
    struct pt_h1_limits lim = {.max_header_bytes = 128, .max_headers = 3};
    const char *many = CHUNKED_POST "0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    fresh(PT_H1_REQUEST, &lim);
    assert_int_equal(drive(P, &R, many, strlen(many)), PT_ERR_HEADERS_TOO_LARGE);
    char big[512];
    int n = snprintf(big, sizeof(big), CHUNKED_POST "0\r\nX: ");
    memset(big + n, 'v', 200);
    memcpy(big + n + 200, "\r\n\r\n", 5);
    fresh(PT_H1_REQUEST, &lim);
    assert_int_equal(drive(P, &R, big, strlen(big)), PT_ERR_HEADERS_TOO_LARGE);
}

/* --- limits and errors --------------------------------------------------- */

static void test_parser__rejects_head_over_max_header_bytes(void **state)
{
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789\r\n\r\n";
    uint32_t len = (uint32_t)strlen(s);
    struct pt_h1_limits exact = {.max_header_bytes = len};
    fresh(PT_H1_REQUEST, &exact);
    assert_int_equal(drive(P, &R, s, len), 0);
    assert_int_equal(R.completes, 1);
    struct pt_h1_limits less = {.max_header_bytes = len - 1};
    fresh(PT_H1_REQUEST, &less);
    assert_int_equal(drive(P, &R, s, len), PT_ERR_HEADERS_TOO_LARGE);
}

static void test_parser__rejects_unterminated_line_over_the_limit(void **state)
{
    struct pt_h1_limits lim = {.max_header_bytes = 64};
    fresh(PT_H1_REQUEST, &lim);
    char s[100];
    memset(s, 'a', sizeof(s));
    assert_int_equal(pt_h1_parser_execute(P, s, 60), 60);
    assert_int_equal(pt_h1_parser_execute(P, s, 40), PT_ERR_HEADERS_TOO_LARGE);
}

static void test_parser__rejects_more_than_max_headers(void **state)
{
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    struct pt_h1_limits three = {.max_headers = 3};
    fresh(PT_H1_REQUEST, &three);
    assert_int_equal(drive(P, &R, s, strlen(s)), 0);
    struct pt_h1_limits two = {.max_headers = 2};
    fresh(PT_H1_REQUEST, &two);
    assert_int_equal(drive(P, &R, s, strlen(s)), PT_ERR_HEADERS_TOO_LARGE);
}

static void test_parser__default_limits_allow_100_fields(void **state)
{
    static char s[8192];
    size_t n = (size_t)snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < 100; i++)
        n += (size_t)snprintf(s + n, sizeof(s) - n, "X-%d: %d\r\n", i, i);
    memcpy(s + n, "\r\n", 3);
    assert_int_equal(parse_req(s), 0);
    assert_int_equal(R.h.nheaders, 100);
    memcpy(s + n, "Y: 1\r\n\r\n", 9);
    assert_int_equal(parse_req(s), PT_ERR_HEADERS_TOO_LARGE);
}

static void test_parser__default_limits_allow_64k_head(void **state)
{
    static char s[70000];
    size_t n = (size_t)snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    size_t fill = 65536 - n - 4;
    memset(s + n, 'v', fill);
    memcpy(s + n + fill, "\r\n\r\n", 5);
    assert_int_equal(parse_req(s), 0);
    memcpy(s + n + fill, "v\r\n\r\n", 6);
    assert_int_equal(parse_req(s), PT_ERR_HEADERS_TOO_LARGE);
}

static void test_parser__errors_are_sticky(void **state)
{
    fresh(PT_H1_REQUEST, NULL);
    const char *bad = "GET / HTTP/1.1\nHost: a\r\n\r\n";
    const char *good = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(pt_h1_parser_execute(P, bad, strlen(bad)), PT_ERR_BAD_REQUEST);
    assert_int_equal(pt_h1_parser_execute(P, good, strlen(good)), PT_ERR_BAD_REQUEST);
    pt_h1_parser_next(P);
    assert_int_equal(pt_h1_parser_execute(P, good, strlen(good)), PT_ERR_BAD_REQUEST);
    assert_int_equal(pt_h1_parser_finish(P), PT_ERR_BAD_REQUEST);
    assert_int_equal(R.heads, 0);
}

static void test_parser__callback_errors_stop_parsing_and_stick(void **state)
{
    const char *s = POST_HEAD("Content-Length: 3\r\n") "abc";
    fresh(PT_H1_REQUEST, NULL);
    R.fail_on_head = PT_ERR_NO_ROUTE;
    assert_int_equal(pt_h1_parser_execute(P, s, strlen(s)), PT_ERR_NO_ROUTE);
    assert_int_equal(pt_h1_parser_execute(P, s, strlen(s)), PT_ERR_NO_ROUTE);
    assert_int_equal(R.body_len, 0);

    fresh(PT_H1_REQUEST, NULL);
    R.fail_on_body = PT_ERR_BODY_TOO_LARGE;
    assert_int_equal(pt_h1_parser_execute(P, s, strlen(s)), PT_ERR_BODY_TOO_LARGE);
    assert_int_equal(R.completes, 0);

    const char *t = CHUNKED_POST "1\r\na\r\n0\r\nX: 1\r\n\r\n";
    fresh(PT_H1_REQUEST, NULL);
    R.fail_on_trailers = PT_ERR_UNSUPPORTED_MEDIA;
    assert_int_equal(pt_h1_parser_execute(P, t, strlen(t)), PT_ERR_UNSUPPORTED_MEDIA);
    assert_int_equal(R.completes, 0);

    fresh(PT_H1_REQUEST, NULL);
    R.fail_on_complete = PT_ERR_INTERNAL;
    assert_int_equal(pt_h1_parser_execute(P, s, strlen(s)), PT_ERR_INTERNAL);
    assert_int_equal(pt_h1_parser_finish(P), PT_ERR_INTERNAL);
}

static void test_parser__works_without_callbacks(void **state)
{
    struct pt_h1_parser *p = pt_h1_parser_new(PT_H1_REQUEST, NULL, NULL, NULL);
    const char *s = CHUNKED_POST "1\r\na\r\n0\r\nT: 1\r\n\r\n";
    assert_int_equal(pt_h1_parser_execute(p, s, strlen(s)), (ssize_t)strlen(s));
    assert_false(pt_h1_parser_in_message(p));
    pt_h1_parser_free(p);
    pt_h1_parser_free(NULL);
}

/* --- connection semantics ------------------------------------------------ */

static void test_parser__keep_alive_follows_version_and_connection(void **state)
{
    struct {
        const char *s;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: te\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(parse_req(cases[i].s), 0);
        if (R.h.keep_alive != cases[i].keep_alive)
            fail_msg("keep_alive wrong for %s", cases[i].s);
    }
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0);
    assert_true(R.h.keep_alive);
    assert_int_equal(parse_resp("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), 0);
    assert_false(R.h.keep_alive);
    assert_int_equal(
        parse_resp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"), 0);
    assert_true(R.h.keep_alive);
}

static void test_parser__reports_expect_continue(void **state)
{
    assert_int_equal(parse_req(POST_HEAD("Expect: 100-Continue\r\nContent-Length: 1\r\n") "x"), 0);
    assert_true(R.h.expect_continue);
    assert_int_equal(parse_req("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"), 0);
    assert_false(R.h.expect_continue);
}

static void test_parser__request_upgrade_stops_after_the_head(void **state)
{
    const char *s = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                    "Upgrade: websocket\r\n\r\n\x81\x05hello";
    size_t head_len = strlen(s) - 7;
    fresh(PT_H1_REQUEST, NULL);
    assert_int_equal(pt_h1_parser_execute(P, s, strlen(s)), (ssize_t)head_len);
    assert_true(R.h.upgrade);
    assert_false(R.h.has_body);
    assert_int_equal(R.completes, 1);
    assert_int_equal(pt_h1_parser_execute(P, s + head_len, 7), 0);
}

static void test_parser__request_upgrade_completes_after_its_body(void **state)
{
    const char *s = "POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
                    "Content-Length: 4\r\n\r\nbodyPRI * HTTP/2.0";
    fresh(PT_H1_REQUEST, NULL);
    assert_int_equal(pt_h1_parser_execute(P, s, strlen(s)), (ssize_t)(strlen(s) - 14));
    assert_true(R.h.upgrade);
    assert_non_null(strstr(R.log, "body=[body]"));
}

static void test_parser__upgrade_needs_connection_upgrade_and_http11(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"), 0);
    assert_false(R.h.upgrade);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n"), 0);
    assert_false(R.h.upgrade);
    assert_int_equal(
        parse_req("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"), 0);
    assert_false(R.h.upgrade);
}

static void test_parser__in_message_spans_first_byte_to_complete(void **state)
{
    fresh(PT_H1_REQUEST, NULL);
    assert_false(pt_h1_parser_in_message(P));
    assert_int_equal(pt_h1_parser_execute(P, "G", 1), 1);
    assert_true(pt_h1_parser_in_message(P));
    const char *rest = "ET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nx";
    assert_int_equal(pt_h1_parser_execute(P, rest, strlen(rest)), (ssize_t)strlen(rest));
    assert_true(pt_h1_parser_in_message(P));
    assert_int_equal(pt_h1_parser_finish(P), PT_ERR_CLOSED);
    assert_int_equal(pt_h1_parser_execute(P, "y", 1), PT_ERR_CLOSED);
}

static void test_parser__finish_mid_head_reports_closed(void **state)
{
    fresh(PT_H1_REQUEST, NULL);
    assert_int_equal(pt_h1_parser_execute(P, "GET / HT", 8), 8);
    assert_int_equal(pt_h1_parser_finish(P), PT_ERR_CLOSED);
    fresh(PT_H1_REQUEST, NULL);
    assert_int_equal(pt_h1_parser_finish(P), 0);
}

/* --- responses ----------------------------------------------------------- */

static void test_parser__parses_a_response_with_content_length(void **state)
{
    assert_int_equal(parse_resp("HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!"), 0);
    assert_int_equal(R.h.status, 404);
    assert_string_equal(R.reason, "Not Found");
    assert_string_equal(R.method, "");
    assert_non_null(strstr(R.log, "body=[nope!]"));
}

static void test_parser__accepts_status_line_without_reason(void **state)
{
    assert_int_equal(parse_resp("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), 0);
    assert_int_equal(R.h.status, 200);
    assert_string_equal(R.reason, "");
    assert_int_equal(parse_resp("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), 0);
    assert_string_equal(R.reason, "");
}

static void test_parser__rejects_malformed_status_line(void **state)
{
    const char *bad[] = {
        "HTTP/1.1 20 OK\r\n\r\n",   "HTTP/1.1 2000 OK\r\n\r\n",    "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n", "HTTP/1.1 099 X\r\n\r\n",      "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",  "HTTP/1.1 200 O\x01K\r\n\r\n", "\r\nHTTP/1.1 200 OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_resp_rejected(bad[i], PT_ERR_BAD_REQUEST);
}

static void test_parser__response_without_length_is_read_until_close(void **state)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it";
    fresh(PT_H1_RESPONSE, NULL);
    assert_int_equal(drive(P, &R, s, strlen(s)), 0);
    assert_true(R.h.has_body);
    assert_false(R.h.keep_alive);
    assert_int_equal(R.completes, 0);
    assert_int_equal(drive(P, &R, " and more", 9), 0);
    assert_int_equal(pt_h1_parser_finish(P), 0);
    assert_int_equal(R.completes, 1);
    assert_non_null(strstr(R.log, "body=[all of it and more]"));
    assert_int_equal(pt_h1_parser_finish(P), 0);
}

static void test_parser__response_with_non_chunked_coding_is_read_until_close(void **state)
{
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx"), 0);
    assert_false(R.h.chunked);
    assert_true(R.h.has_body);
    assert_int_equal(R.completes, 0);
    assert_int_equal(pt_h1_parser_finish(P), 0);
    assert_non_null(strstr(R.log, "body=[xx]"));
}

static void test_parser__finish_mid_body_reports_closed(void **state)
{
    fresh(PT_H1_RESPONSE, NULL);
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
    assert_int_equal(drive(P, &R, s, strlen(s)), 0);
    assert_int_equal(pt_h1_parser_finish(P), PT_ERR_CLOSED);
    fresh(PT_H1_RESPONSE, NULL);
    s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
    assert_int_equal(drive(P, &R, s, strlen(s)), 0);
    assert_int_equal(pt_h1_parser_finish(P), PT_ERR_CLOSED);
}

static void test_parser__response_to_head_has_no_body(void **state)
{
    const char *a = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    const char *b = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    char buf[256];
    snprintf(buf, sizeof(buf), "%s%s", a, b);
    fresh(PT_H1_RESPONSE, NULL);
    pt_h1_parser_set_no_body(P, true);
    assert_int_equal(pt_h1_parser_execute(P, buf, strlen(buf)), (ssize_t)strlen(a));
    assert_false(R.h.has_body);
    assert_int_equal(R.h.content_length, 1000);
    assert_int_equal(R.completes, 1);
    /* next() clears no_body: the following response has its body. */
    pt_h1_parser_next(P);
    assert_int_equal(pt_h1_parser_execute(P, buf + strlen(a), strlen(b)), (ssize_t)strlen(b));
    assert_true(R.h.has_body);
    assert_non_null(strstr(R.log, "body=[ok]"));
}

static void test_parser__response_to_head_ignores_chunked(void **state)
{
    fresh(PT_H1_RESPONSE, NULL);
    pt_h1_parser_set_no_body(P, true);
    const char *s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(pt_h1_parser_execute(P, s, strlen(s)), (ssize_t)strlen(s));
    assert_false(R.h.chunked);
    assert_false(R.h.has_body);
    assert_int_equal(R.completes, 1);
}

static void test_parser__204_and_304_have_no_body(void **state)
{
    const char *s = "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
                    "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ncontent";
    assert_int_equal(parse_resp(s), 0);
    assert_int_equal(R.heads, 3);
    assert_int_equal(R.completes, 3);
    assert_non_null(strstr(R.log, "head   204 No Content 1.1 cl=7 chunked=0 ka=1 up=0 expect=0 "
                                  "body=0\ncontent-length: 7\nbody=[]\ncomplete\n"));
    assert_non_null(strstr(R.log, "body=[content]"));
}

static void test_parser__skips_interim_responses(void **state)
{
    const char *s = "HTTP/1.1 100 Continue\r\n\r\n"
                    "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                    "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    check_every_split(PT_H1_RESPONSE, s, 0);
    assert_int_equal(R.heads, 1);
    assert_int_equal(R.h.status, 201);
    assert_string_equal(R.fields, "content-length: 2\n");

    fresh(PT_H1_RESPONSE, NULL);
    const char *interim = "HTTP/1.1 100 Continue\r\n\r\n";
    assert_int_equal(pt_h1_parser_execute(P, interim, strlen(interim)), (ssize_t)strlen(interim));
    assert_int_equal(R.heads, 0);
    assert_true(pt_h1_parser_in_message(P));
    assert_int_equal(pt_h1_parser_finish(P), PT_ERR_CLOSED);
}

static void test_parser__interim_responses_are_still_validated(void **state)
{
    assert_resp_rejected("HTTP/1.1 100 Continue\r\nX : y\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
                         PT_ERR_BAD_REQUEST);
}

static void test_parser__switching_protocols_is_an_upgrade(void **state)
{
    const char *s = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                    "Upgrade: websocket\r\n\r\n\x81\x02hi";
    size_t head_len = strlen(s) - 4;
    fresh(PT_H1_RESPONSE, NULL);
    assert_int_equal(pt_h1_parser_execute(P, s, strlen(s)), (ssize_t)head_len);
    assert_true(R.h.upgrade);
    assert_false(R.h.has_body);
    assert_int_equal(R.completes, 1);
}

static void test_parser__response_chunked_with_trailers(void **state)
{
    check_every_split(PT_H1_RESPONSE,
                      "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\ngrpc-status: 0\r\n"
                      "grpc-message: \r\n\r\n",
                      0);
    assert_int_equal(R.trailers, 1);
    assert_string_equal(R.trailer_fields, "grpc-status: 0\ngrpc-message: \n");
}

static void test_parser__pipelined_responses(void **state)
{
    check_every_split(PT_H1_RESPONSE,
                      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n"
                      "HTTP/1.1 204 No Content\r\n\r\n",
                      0);
    assert_int_equal(R.completes, 3);
}

#define T(name) cmocka_unit_test_teardown(name, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_parser__parses_a_simple_get),
        T(test_parser__lowercases_names_and_trims_values),
        T(test_parser__keeps_field_order_and_repeats),
        T(test_parser__accepts_htab_and_obs_text_in_values),
        T(test_parser__accepts_any_method_token),
        T(test_parser__delivers_content_length_body_without_copying),
        T(test_parser__content_length_zero_has_no_body),
        T(test_parser__body_split_across_calls_points_into_each_input),
        T(test_parser__every_split_of_a_head_gives_the_same_result),
        T(test_parser__every_split_of_a_chunked_body_gives_the_same_result),
        T(test_parser__every_split_of_a_rejected_message_gives_the_same_error),
        T(test_parser__pipelined_requests_pause_after_each_message),
        T(test_parser__next_inside_on_complete_keeps_parsing),
        T(test_parser__ignores_empty_lines_before_request_line),
        T(test_parser__bounds_empty_lines_before_request_line),
        T(test_parser__accepts_transfer_coding_parameters_in_responses),
        T(test_parser__rejects_bare_lf_line_ending),
        T(test_parser__rejects_bare_cr),
        T(test_parser__rejects_obs_fold),
        T(test_parser__rejects_whitespace_before_first_field),
        T(test_parser__rejects_invalid_header_name_bytes),
        T(test_parser__rejects_empty_header_name),
        T(test_parser__rejects_whitespace_between_name_and_colon),
        T(test_parser__rejects_control_bytes_in_values),
        T(test_parser__rejects_request_line_with_extra_spaces),
        T(test_parser__rejects_invalid_method_token),
        T(test_parser__rejects_control_and_non_ascii_bytes_in_target),
        T(test_parser__rejects_invalid_http_version),
        T(test_parser__treats_a_later_minor_version_as_1_1),
        T(test_parser__rejects_missing_host_on_http11),
        T(test_parser__accepts_missing_host_on_http10),
        T(test_parser__rejects_more_than_one_host),
        T(test_parser__rejects_host_with_invalid_characters),
        T(test_parser__rejects_content_length_with_transfer_encoding),
        T(test_parser__rejects_differing_content_lengths),
        T(test_parser__merges_identical_content_lengths),
        T(test_parser__rejects_non_numeric_content_length),
        T(test_parser__rejects_overflowing_content_length),
        T(test_parser__rejects_transfer_encoding_not_ending_in_chunked),
        T(test_parser__rejects_unknown_transfer_coding_as_not_implemented),
        T(test_parser__rejects_coding_before_chunked_as_not_implemented),
        T(test_parser__rejects_chunked_applied_twice),
        T(test_parser__rejects_chunked_on_http10),
        T(test_parser__accepts_chunked_case_insensitively),
        T(test_parser__decodes_chunks),
        T(test_parser__ignores_chunk_extensions),
        T(test_parser__rejects_malformed_chunk_size),
        T(test_parser__accepts_the_largest_chunk_size),
        T(test_parser__rejects_missing_crlf_after_chunk_data),
        T(test_parser__rejects_control_bytes_in_chunk_extension),
        T(test_parser__rejects_overlong_chunk_extension),
        T(test_parser__delivers_trailers),
        T(test_parser__validates_trailers_like_the_head),
        T(test_parser__limits_trailers),
        T(test_parser__rejects_head_over_max_header_bytes),
        T(test_parser__rejects_unterminated_line_over_the_limit),
        T(test_parser__rejects_more_than_max_headers),
        T(test_parser__default_limits_allow_100_fields),
        T(test_parser__default_limits_allow_64k_head),
        T(test_parser__errors_are_sticky),
        T(test_parser__callback_errors_stop_parsing_and_stick),
        T(test_parser__works_without_callbacks),
        T(test_parser__keep_alive_follows_version_and_connection),
        T(test_parser__reports_expect_continue),
        T(test_parser__request_upgrade_stops_after_the_head),
        T(test_parser__request_upgrade_completes_after_its_body),
        T(test_parser__upgrade_needs_connection_upgrade_and_http11),
        T(test_parser__in_message_spans_first_byte_to_complete),
        T(test_parser__finish_mid_head_reports_closed),
        T(test_parser__parses_a_response_with_content_length),
        T(test_parser__accepts_status_line_without_reason),
        T(test_parser__rejects_malformed_status_line),
        T(test_parser__response_without_length_is_read_until_close),
        T(test_parser__response_with_non_chunked_coding_is_read_until_close),
        T(test_parser__finish_mid_body_reports_closed),
        T(test_parser__response_to_head_has_no_body),
        T(test_parser__response_to_head_ignores_chunked),
        T(test_parser__204_and_304_have_no_body),
        T(test_parser__skips_interim_responses),
        T(test_parser__interim_responses_are_still_validated),
        T(test_parser__switching_protocols_is_an_upgrade),
        T(test_parser__response_chunked_with_trailers),
        T(test_parser__pipelined_responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
