/*
 * Tests for observe/access_log: the JSON line format (escaping, truncation,
 * keys) and the ring/writer machinery (ordering, drops, errors, reopen, stop).
 * Lines are checked with a small strict JSON parser written here, which also
 * undoes the escaping so values can be compared with what was logged.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/diag.h"
#include "observe/access_log.h"
#include "portico/errors.h"

/* ---- a strict parser for one flat JSON object line ---------------------- */

enum jtype { J_STRING, J_NUMBER, J_NULL };

struct jfield {
    char key[32];
    enum jtype type;
    char *val; /* decoded bytes (\u00XX -> that byte), or the number's text */
    size_t len;
};

struct jline {
    struct jfield f[24];
    int n;
};

static void jline_free(struct jline *j)
{
    for (int i = 0; i < j->n; i++)
        free(j->f[i].val);
    j->n = 0;
}

/* Length of the well-formed UTF-8 character at s, by decoding it, or 0. */
static size_t test_utf8_char(const unsigned char *s, size_t avail)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (avail < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static bool valid_utf8(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = test_utf8_char(u + i, n - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses a JSON string at *pp; returns false on any violation. */
static bool jparse_string(const char **pp, const char *end, char **out, size_t *outlen)
{
    const char *p = *pp;
    if (p >= end || *p != '"')
        return false;
    p++;
    char *buf = malloc((size_t)(end - p) + 1);
    size_t n = 0;
    for (;;) {
        if (p >= end)
            goto fail;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c < 0x20)
            goto fail;
        if (c != '\\') {
            buf[n++] = (char)c;
            p++;
            continue;
        }
        if (p + 1 >= end)
            goto fail;
        char e = p[1];
        p += 2;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            buf[n++] = e;
            break;
        case 'b':
            buf[n++] = '\b';
            break;
        case 'f':
            buf[n++] = '\f';
            break;
        case 'n':
            buf[n++] = '\n';
            break;
        case 'r':
            buf[n++] = '\r';
            break;
        case 't':
            buf[n++] = '\t';
            break;
        case 'u': {
            if (end - p < 4)
                goto fail;
            int v = 0;
            for (int i = 0; i < 4; i++) {
                int h = hexval(p[i]);
                if (h < 0)
                    goto fail;
                v = v * 16 + h;
            }
            /* The access log only escapes single bytes. */
            if (v > 0xFF)
                goto fail;
            buf[n++] = (char)v;
            p += 4;
            break;
        }
        default:
            goto fail;
        }
    }
    *pp = p + 1;
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    return true;
fail:
    free(buf);
    return false;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool jparse_number(const char **pp, const char *end, char **out, size_t *outlen)
{
    const char *p = *pp, *start = p;
    if (p < end && *p == '-')
        p++;
    if (p >= end || !is_digit(*p))
        return false;
    if (*p == '0')
        p++;
    else
        while (p < end && is_digit(*p))
            p++;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return false;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return false;
        while (p < end && is_digit(*p))
            p++;
    }
    size_t n = (size_t)(p - start);
    *out = malloc(n + 1);
    memcpy(*out, start, n);
    (*out)[n] = '\0';
    *outlen = n;
    *pp = p;
    return true;
}

/* True when line[0..n) is one valid UTF-8 JSON object with string, number
 * or null values, unique keys, followed by exactly one '\n'. */
static bool jparse_line(const char *line, size_t n, struct jline *j)
{
    j->n = 0;
    if (n < 3 || line[n - 1] != '\n' || memchr(line, '\n', n - 1) || !valid_utf8(line, n))
        return false;
    const char *p = line, *end = line + n - 1;
    if (*p++ != '{')
        return false;
    for (;;) {
        if (j->n == (int)(sizeof(j->f) / sizeof(j->f[0])))
            goto fail;
        struct jfield *f = &j->f[j->n];
        char *key;
        size_t klen;
        if (!jparse_string(&p, end, &key, &klen))
            goto fail;
        bool key_ok = klen < sizeof(f->key) && memchr(key, '\0', klen) == NULL;
        if (key_ok)
            memcpy(f->key, key, klen + 1);
        free(key);
        if (!key_ok)
            goto fail;
        for (int i = 0; i < j->n; i++) {
            if (strcmp(j->f[i].key, f->key) == 0)
                goto fail;
        }
        if (p >= end || *p++ != ':')
            goto fail;
        if (p < end && *p == '"') {
            f->type = J_STRING;
            if (!jparse_string(&p, end, &f->val, &f->len))
                goto fail;
        } else if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
            f->type = J_NULL;
            f->val = NULL;
            f->len = 0;
            p += 4;
        } else {
            f->type = J_NUMBER;
            if (!jparse_number(&p, end, &f->val, &f->len))
                goto fail;
        }
        j->n++;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '}' && p + 1 == end)
            return true;
        goto fail;
    }
fail:
    jline_free(j);
    return false;
}

static const struct jfield *jget(const struct jline *j, const char *key)
{
    for (int i = 0; i < j->n; i++) {
        if (strcmp(j->f[i].key, key) == 0)
            return &j->f[i];
    }
    return NULL;
}

/* ---- helpers ------------------------------------------------------------ */

static char line[PT_ACCESS_LINE_MAX];

static size_t format(const struct pt_access_entry *e)
{
    size_t n = pt_access_entry_format(e, line);
    assert_true(n >= 2 && n <= PT_ACCESS_LINE_MAX);
    return n;
}

static void format_and_parse(const struct pt_access_entry *e, struct jline *j)
{
    size_t n = format(e);
    if (!jparse_line(line, n, j))
        fail_msg("not a valid JSON line: %.*s", (int)n, line);
}

/* Formats e with path p, returns the decoded "path" value (caller frees). */
static char *formatted_path(struct pt_str p, size_t *len)
{
    struct pt_access_entry e = {.path = p};
    struct jline j;
    format_and_parse(&e, &j);
    const struct jfield *f = jget(&j, "path");
    assert_non_null(f);
    assert_int_equal(f->type, J_STRING);
    char *v = malloc(f->len + 1);
    memcpy(v, f->val, f->len + 1);
    *len = f->len;
    jline_free(&j);
    return v;
}

/* Escaped length of the "path" value as it appears in the line. */
static size_t raw_path_len(size_t n)
{
    const char *k = strstr(line, "\"path\":\"");
    assert_non_null(k);
    const char *s = k + 8, *p = s;
    while (p < line + n && *p != '"')
        p += (*p == '\\') ? 2 : 1;
    return (size_t)(p - s);
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

struct fixture {
    char dir[64];
    char path[128];
};

static int setup_dir(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    strcpy(fx->dir, "/tmp/pt_access_log_XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->path, sizeof(fx->path), "%s/access.log", fx->dir);
    *state = fx;
    return 0;
}

static int teardown_dir(void **state)
{
    struct fixture *fx = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        *len = 0;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
}

static size_t count_lines(const char *buf, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += buf[i] == '\n';
    return c;
}

struct line_check {
    unsigned nrings;
    long next_seq[8]; /* per ring: the lowest sequence number still allowed */
    long seen[8];
    bool dense;      /* sequence numbers must follow each other without gaps */
    const char *tag; /* request ids look like "<tag>-<ring>-<seq>" */
};

/* Every line parses and belongs to tag; per ring the sequence only grows
 * (and, when dense, grows by exactly one). Returns the number of lines. */
static size_t check_lines(const char *buf, size_t n, struct line_check *c)
{
    size_t lines = 0;
    const char *p = buf, *end = buf + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        struct jline j;
        if (!jparse_line(p, (size_t)(nl - p + 1), &j))
            fail_msg("bad line: %.*s", (int)(nl - p), p);
        const struct jfield *id = jget(&j, "request_id");
        assert_non_null(id);
        char tag[16];
        unsigned ring;
        long seq;
        assert_int_equal(sscanf(id->val, "%15[a-z]-%u-%ld", tag, &ring, &seq), 3);
        assert_string_equal(tag, c->tag);
        assert_true(ring < c->nrings);
        if (c->dense)
            assert_int_equal(seq, c->next_seq[ring]);
        else
            assert_true(seq >= c->next_seq[ring]);
        c->next_seq[ring] = seq + 1;
        c->seen[ring]++;
        jline_free(&j);
        lines++;
        p = nl + 1;
    }
    return lines;
}

static void append_numbered(struct pt_access_ring *r, const char *tag, unsigned ring, long seq)
{
    char id[64];
    snprintf(id, sizeof(id), "%s-%u-%ld", tag, ring, seq);
    struct pt_access_entry e = {
        .time_ns = 1709251199123000000ull,
        .duration_ns = 1234567,
        .request_id = pt_str_from_cstr(id),
        .method = PT_STR("GET"),
        .path = PT_STR("/v1/users/12345/orders?page=2"),
        .authority = PT_STR("api.example.com"),
        .protocol = PT_ACCESS_PROTOCOL_HTTP_2,
        .status = 200,
        .bytes_out = 512,
        .upstream = PT_STR("10.0.0.1:8080"),
        .route = PT_STR("orders"),
        .client = PT_STR("192.0.2.7"),
    };
    pt_access_log_append(r, &e);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Poll until the file holds at least want lines; bounded at 10 s. */
static bool wait_for_lines(const char *path, size_t want)
{
    for (int i = 0; i < 10000; i++) {
        size_t n;
        char *buf = read_file(path, &n);
        size_t have = buf ? count_lines(buf, n) : 0;
        free(buf);
        if (have >= want)
            return true;
        sleep_ms(1);
    }
    return false;
}

static struct pt_access_log *start_ok(const char *dest, unsigned nrings, size_t ring_bytes)
{
    struct pt_diag d;
    pt_diag_init(&d);
    struct pt_access_log *l = pt_access_log_start(dest, nrings, ring_bytes, &d);
    if (!l)
        fail_msg("start failed: %s", pt_diag_text(&d));
    pt_diag_fini(&d);
    return l;
}

/* ---- format --------------------------------------------------------------- */

static void test_access_entry_format__full_entry_has_every_key_in_order(void **state)
{
    struct pt_access_entry e = {
        .time_ns = 1709251199123456789ull,
        .duration_ns = 1234567,
        .request_id = PT_STR("8f14e45f-ceea-467f-a0e6-1b2c3d4e5f60"),
        .method = PT_STR("POST"),
        .path = PT_STR("/pkg.Service/Call"),
        .authority = PT_STR("api.example.com:8443"),
        .protocol = PT_ACCESS_PROTOCOL_HTTP_2,
        .status = 200,
        .has_grpc_status = true,
        .grpc_status = 14,
        .bytes_in = 17,
        .bytes_out = 18446744073709551615ull,
        .upstream = PT_STR("10.0.0.1:8080"),
        .route = PT_STR("grpc-call"),
        .service = PT_STR("grpc-backend"),
        .client = PT_STR("2001:db8::1"),
        .worker = 3,
        .error = PT_STR("upstream reset the stream"),
        .attempts = 3,
    };
    size_t n = format(&e);
    const char *want =
        "{\"time\":\"2024-02-29T23:59:59.123Z\",\"request_id\":\"8f14e45f-ceea-467f-a0e6-"
        "1b2c3d4e5f60\",\"method\":\"POST\",\"path\":\"/pkg.Service/Call\",\"authority\":"
        "\"api.example.com:8443\",\"protocol\":\"HTTP/2\",\"status\":200,\"grpc_status\":14,"
        "\"duration_ms\":1.235,\"bytes_in\":17,\"bytes_out\":18446744073709551615,\"upstream\":"
        "\"10.0.0.1:8080\",\"route\":\"grpc-call\",\"service\":\"grpc-backend\",\"client\":\"2001:"
        "db8::1\",\"worker\":3,"
        "\"attempts\":3,\"error\":"
        "\"upstream reset the stream\"}\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(line, want, n);

    struct jline j;
    format_and_parse(&e, &j);
    static const char *const keys[] = {
        "time",   "request_id",  "method",      "path",     "authority", "protocol",
        "status", "grpc_status", "duration_ms", "bytes_in", "bytes_out", "upstream",
        "route",  "service",     "client",      "worker",   "attempts",  "error"};
    assert_int_equal(j.n, (int)(sizeof(keys) / sizeof(keys[0])));
    for (int i = 0; i < j.n; i++)
        assert_string_equal(j.f[i].key, keys[i]);
    jline_free(&j);
}

static void test_access_entry_format__absent_optionals_are_null_or_omitted(void **state)
{
    struct pt_access_entry e = {0};
    size_t n = format(&e);
    const char *want = "{\"time\":\"1970-01-01T00:00:00.000Z\",\"request_id\":\"\",\"method\":\"\","
                       "\"path\":\"\",\"authority\":\"\",\"protocol\":\"HTTP/1.0\",\"status\":0,"
                       "\"duration_ms\":0.000,\"bytes_in\":0,\"bytes_out\":0,\"upstream\":null,"
                       "\"route\":null,\"service\":null,\"client\":\"\",\"worker\":0}\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(line, want, n);

    /* A non-NULL pointer with length 0 is absent too. */
    e.upstream = (struct pt_str){"x", 0};
    e.route = (struct pt_str){"x", 0};
    e.service = (struct pt_str){"x", 0};
    e.error = (struct pt_str){"x", 0};
    struct jline j;
    format_and_parse(&e, &j);
    assert_int_equal(jget(&j, "upstream")->type, J_NULL);
    assert_int_equal(jget(&j, "route")->type, J_NULL);
    assert_int_equal(jget(&j, "service")->type, J_NULL);
    assert_null(jget(&j, "error"));
    assert_null(jget(&j, "grpc_status"));
    jline_free(&j);
}

static void test_access_entry_format__client_cert_keys_come_last_when_present(void **state)
{
    struct pt_access_entry e = {
        .client_cert_subject = PT_STR("CN=svc-a,O=Acme\\, Inc."),
        .client_cert_sha256 = PT_STR("5f0c1d"),
    };
    size_t n = format(&e);
    const char *tail = ",\"worker\":0,\"client_cert_subject\":\"CN=svc-a,O=Acme\\\\, Inc.\","
                       "\"client_cert_sha256\":\"5f0c1d\"}\n";
    assert_true(n > strlen(tail));
    assert_memory_equal(line + n - strlen(tail), tail, strlen(tail));
    /* Each one is omitted on its own when empty. */
    e.client_cert_subject = (struct pt_str){"x", 0};
    struct jline j;
    format_and_parse(&e, &j);
    assert_null(jget(&j, "client_cert_subject"));
    assert_string_equal(jget(&j, "client_cert_sha256")->val, "5f0c1d");
    jline_free(&j);
}

static void test_access_entry_format__grpc_status_zero_is_present(void **state)
{
    struct pt_access_entry e = {.has_grpc_status = true, .grpc_status = 0, .status = 200};
    struct jline j;
    format_and_parse(&e, &j);
    const struct jfield *g = jget(&j, "grpc_status");
    assert_non_null(g);
    assert_int_equal(g->type, J_NUMBER);
    assert_string_equal(g->val, "0");
    jline_free(&j);
}

static void test_access_entry_format__negative_and_extreme_ints_are_valid_numbers(void **state)
{
    struct pt_access_entry e = {.status = INT_MIN, .has_grpc_status = true, .grpc_status = INT_MAX};
    struct jline j;
    format_and_parse(&e, &j);
    assert_string_equal(jget(&j, "status")->val, "-2147483648");
    assert_string_equal(jget(&j, "grpc_status")->val, "2147483647");
    jline_free(&j);
}

static void test_access_entry_format__quotes_backslash_and_control_bytes_are_escaped(void **state)
{
    static const char path[] = "/a\"b\\c\nd\re\tf\0g\x1f\x7fh";
    struct pt_access_entry e = {.path = {path, sizeof(path) - 1}};
    size_t n = format(&e);
    const char *want = "\"path\":\"/a\\\"b\\\\c\\u000ad\\u000de\\u0009f\\u0000g\\u001f\\u007fh\"";
    assert_non_null(memmem(line, n, want, strlen(want)));

    size_t len;
    char *v = formatted_path(e.path, &len);
    assert_int_equal(len, sizeof(path) - 1);
    assert_memory_equal(v, path, len);
    free(v);
}

static void test_access_entry_format__every_string_field_is_escaped(void **state)
{
    static const char evil[] = "\"}\n{\"injected\":1,\"x\":\"\\\x01\xff";
    struct pt_str s = {evil, sizeof(evil) - 1};
    struct pt_access_entry e = {.request_id = s,
                                .method = s,
                                .path = s,
                                .authority = s,
                                .upstream = s,
                                .route = s,
                                .service = s,
                                .client = s,
                                .error = s};
    struct jline j;
    format_and_parse(&e, &j);
    static const char *const fields[] = {"request_id", "method",  "path",   "authority", "upstream",
                                         "route",      "service", "client", "error"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const struct jfield *f = jget(&j, fields[i]);
        assert_non_null(f);
        assert_int_equal(f->type, J_STRING);
        assert_int_equal(f->len, s.len);
        assert_memory_equal(f->val, evil, s.len);
    }
    assert_null(jget(&j, "injected"));
    jline_free(&j);
}

static void test_access_entry_format__valid_utf8_kept_invalid_bytes_escaped(void **state)
{
    /* Kept: é (2 bytes), € (3), U+FFFF, 😀 (4), U+10FFFF. */
    static const char good[] =
        "/\xc3\xa9/\xe2\x82\xac/\xef\xbf\xbf/\xf0\x9f\x98\x80/\xf4\x8f\xbf\xbf";
    struct pt_access_entry e = {.path = {good, sizeof(good) - 1}};
    size_t n = format(&e);
    char want[64];
    snprintf(want, sizeof(want), "\"path\":\"%s\"", good);
    assert_non_null(memmem(line, n, want, strlen(want)));

    static const struct {
        const char *in;
        const char *out;
    } bad[] = {
        {"\x80", "\\u0080"},                                  /* lone continuation byte */
        {"\xc0\xaf", "\\u00c0\\u00af"},                       /* overlong '/' */
        {"\xe0\x80\xaf", "\\u00e0\\u0080\\u00af"},            /* overlong, 3 bytes */
        {"\xed\xa0\x80", "\\u00ed\\u00a0\\u0080"},            /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", "\\u00f4\\u0090\\u0080\\u0080"}, /* above U+10FFFF */
        {"\xf5\x80", "\\u00f5\\u0080"},
        {"\xff\xfe", "\\u00ff\\u00fe"},
        {"a\xe2\x82", "a\\u00e2\\u0082"}, /* cut short at the end */
        {"\xe2\x82"
         "b",
         "\\u00e2\\u0082b"},                 /* cut short before ASCII */
        {"\xc3\xc3\xa9", "\\u00c3\xc3\xa9"}, /* bad lead, then a good é */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        e.path = pt_str_from_cstr(bad[i].in);
        n = format(&e);
        snprintf(want, sizeof(want), "\"path\":\"%s\"", bad[i].out);
        if (!memmem(line, n, want, strlen(want)))
            fail_msg("case %zu: want %s in %.*s", i, want, (int)n, line);
        struct jline j;
        format_and_parse(&e, &j);
        const struct jfield *f = jget(&j, "path");
        assert_int_equal(f->len, e.path.len);
        assert_memory_equal(f->val, bad[i].in, f->len);
        jline_free(&j);
    }
}

static void test_access_entry_format__long_path_is_cut_with_marker(void **state)
{
    size_t big = 10000;
    char *p = malloc(big);
    memset(p, 'a', big);
    struct pt_access_entry e = {.path = {p, big}, .method = PT_STR("GET"), .status = 200};
    size_t n = format(&e);
    assert_int_equal(raw_path_len(n), PT_ACCESS_CAP_PATH);

    size_t len;
    char *v = formatted_path(e.path, &len);
    assert_int_equal(len, PT_ACCESS_CAP_PATH);
    assert_true(ends_with(v, len, PT_ACCESS_TRUNCATED_MARKER));
    size_t kept = len - strlen(PT_ACCESS_TRUNCATED_MARKER);
    assert_memory_equal(v, p, kept);
    free(v);

    /* Exactly at the cap: kept whole, no marker. */
    e.path.len = PT_ACCESS_CAP_PATH;
    v = formatted_path(e.path, &len);
    assert_int_equal(len, PT_ACCESS_CAP_PATH);
    assert_false(ends_with(v, len, PT_ACCESS_TRUNCATED_MARKER));
    free(v);
    free(p);
}

static void test_access_entry_format__cut_never_splits_an_escape_or_utf8_sequence(void **state)
{
    /* Each unit is one character: one UTF-8 sequence or one escaped byte. */
    static const char *const units[] = {
        "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\"", "\x01", "\xff", "a"};
    char *p = malloc(3 * PT_ACCESS_CAP_PATH + 8);
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        for (size_t shift = 0; shift < 6; shift++) {
            size_t n = 0;
            for (size_t i = 0; i < shift; i++)
                p[n++] = 'x';
            size_t ul = strlen(units[u]);
            while (n + ul <= 3 * PT_ACCESS_CAP_PATH) {
                memcpy(p + n, units[u], ul);
                n += ul;
            }
            struct pt_access_entry e = {.path = {p, n}};
            size_t linelen = format(&e);
            size_t raw = raw_path_len(linelen);
            assert_true(raw <= PT_ACCESS_CAP_PATH);
            assert_true(raw > PT_ACCESS_CAP_PATH - 6 - strlen(PT_ACCESS_TRUNCATED_MARKER));

            size_t len;
            char *v = formatted_path(e.path, &len);
            assert_true(ends_with(v, len, PT_ACCESS_TRUNCATED_MARKER));
            size_t kept = len - strlen(PT_ACCESS_TRUNCATED_MARKER);
            /* What is kept is a prefix of the input made of whole units. */
            assert_memory_equal(v, p, kept);
            assert_int_equal((kept - shift) % ul, 0);
            free(v);
        }
    }
    free(p);
}

static void test_access_entry_format__worst_case_entry_fits_line_cap(void **state)
{
    size_t big = 8 * PT_ACCESS_LINE_MAX;
    char *p = malloc(big);
    memset(p, 0x01, big); /* every byte escapes to six */
    struct pt_str s = {p, big};
    struct pt_access_entry e = {
        .time_ns = UINT64_MAX,
        .duration_ns = UINT64_MAX,
        .request_id = s,
        .method = s,
        .path = s,
        .authority = s,
        .protocol = (enum pt_access_protocol)99,
        .status = INT_MIN,
        .has_grpc_status = true,
        .grpc_status = INT_MIN,
        .bytes_in = UINT64_MAX,
        .bytes_out = UINT64_MAX,
        .upstream = s,
        .route = s,
        .service = s,
        .client = s,
        .error = s,
        .client_cert_subject = s,
        .client_cert_sha256 = s,
    };
    struct jline j;
    format_and_parse(&e, &j);
    assert_string_equal(jget(&j, "time")->val, "2554-07-21T23:34:33.709Z");
    assert_string_equal(jget(&j, "protocol")->val, "unknown");
    assert_string_equal(jget(&j, "duration_ms")->val, "18446744073709.552");
    static const struct {
        const char *key;
        size_t cap;
    } caps[] = {
        {"request_id", PT_ACCESS_CAP_REQUEST_ID},
        {"method", PT_ACCESS_CAP_METHOD},
        {"path", PT_ACCESS_CAP_PATH},
        {"authority", PT_ACCESS_CAP_AUTHORITY},
        {"upstream", PT_ACCESS_CAP_UPSTREAM},
        {"route", PT_ACCESS_CAP_ROUTE},
        {"service", PT_ACCESS_CAP_SERVICE},
        {"client", PT_ACCESS_CAP_CLIENT},
        {"error", PT_ACCESS_CAP_ERROR},
        {"client_cert_subject", PT_ACCESS_CAP_CLIENT_CERT_SUBJECT},
        {"client_cert_sha256", PT_ACCESS_CAP_CLIENT_CERT_SHA256},
    };
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        const struct jfield *f = jget(&j, caps[i].key);
        assert_true(ends_with(f->val, f->len, PT_ACCESS_TRUNCATED_MARKER));
        size_t kept = f->len - strlen(PT_ACCESS_TRUNCATED_MARKER);
        /* Six escaped bytes per input byte, cut to the cap with the marker. */
        assert_int_equal(kept, (caps[i].cap - strlen(PT_ACCESS_TRUNCATED_MARKER)) / 6);
    }
    jline_free(&j);
    free(p);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random bytes biased towards what needs escaping and towards UTF-8 leads
 * and continuations, so valid and broken sequences both occur often. */
static void random_bytes(char *p, size_t n)
{
    static const unsigned char pool[] = {'"',  '\\', 0,    '\n', 0x1f, 0x7f, 0x80, 0xbf,
                                         0xc2, 0xc3, 0xe0, 0xe2, 0xed, 0xf0, 0xf4, 0xff};
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng();
        if (r % 3 == 0)
            p[i] = (char)pool[(r >> 8) % sizeof(pool)];
        else if (r % 3 == 1)
            p[i] = (char)(0x20 + (r >> 8) % 95);
        else
            p[i] = (char)(r >> 8);
    }
}

static void test_access_entry_format__random_bytes_round_trip_as_valid_json(void **state)
{
    enum { NFIELDS = 8, MAXLEN = 200 };
    static const char *const keys[NFIELDS] = {"request_id", "method", "path",   "authority",
                                              "upstream",   "route",  "client", "error"};
    char bufs[NFIELDS][MAXLEN];
    for (int iter = 0; iter < 5000; iter++) {
        struct pt_str s[NFIELDS];
        for (int k = 0; k < NFIELDS; k++) {
            /* Lengths stay small enough that no field reaches its cap even
             * when every byte escapes to six (method's cap is 128). */
            size_t len = 1 + rng() % (k == 1 || k == 6 ? 16 : 40);
            random_bytes(bufs[k], len);
            s[k] = (struct pt_str){bufs[k], len};
        }
        struct pt_access_entry e = {
            .time_ns = rng(),
            .duration_ns = rng() >> (rng() % 64),
            .request_id = s[0],
            .method = s[1],
            .path = s[2],
            .authority = s[3],
            .upstream = s[4],
            .route = s[5],
            .client = s[6],
            .error = s[7],
            .status = (int)(rng() % 600),
            .has_grpc_status = rng() % 2,
            .grpc_status = (int)(rng() % 17),
            .bytes_in = rng(),
            .bytes_out = rng() >> 20,
        };
        struct jline j;
        format_and_parse(&e, &j);
        for (int k = 0; k < NFIELDS; k++) {
            const struct jfield *f = jget(&j, keys[k]);
            assert_non_null(f);
            assert_int_equal(f->len, s[k].len);
            assert_memory_equal(f->val, s[k].ptr, s[k].len);
        }
        jline_free(&j);
    }
}

static void test_access_entry_format__time_is_rfc3339_utc_millis(void **state)
{
    static const struct {
        uint64_t ns;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {999999999, "1970-01-01T00:00:00.999Z"},
        {946684799999000000ull, "1999-12-31T23:59:59.999Z"},
        {951825600000000000ull, "2000-02-29T12:00:00.000Z"},
        {1709251199123456789ull, "2024-02-29T23:59:59.123Z"},
        {4107542400000000000ull, "2100-03-01T00:00:00.000Z"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pt_access_entry e = {.time_ns = cases[i].ns};
        struct jline j;
        format_and_parse(&e, &j);
        assert_string_equal(jget(&j, "time")->val, cases[i].want);
        jline_free(&j);
    }
    /* Against the C library for random instants up to the year 2554. */
    for (int i = 0; i < 20000; i++) {
        uint64_t ns = rng();
        time_t secs = (time_t)(ns / 1000000000u);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char want[40];
        size_t k = strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(want + k, sizeof(want) - k, ".%03uZ", (unsigned)(ns % 1000000000u / 1000000u));
        struct pt_access_entry e = {.time_ns = ns};
        size_t n = format(&e);
        assert_true(n > 10 + strlen(want));
        assert_memory_equal(line + 9, want, strlen(want));
    }
}

static void test_access_entry_format__duration_has_three_decimals(void **state)
{
    static const struct {
        uint64_t ns;
        const char *want;
    } cases[] = {
        {0, "0.000"},
        {499, "0.000"},
        {500, "0.001"},
        {999, "0.001"},
        {1000000, "1.000"},
        {1500000, "1.500"},
        {1234567, "1.235"},
        {999999499, "999.999"},
        {999999500, "1000.000"},
        {60000000000ull, "60000.000"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pt_access_entry e = {.duration_ns = cases[i].ns};
        struct jline j;
        format_and_parse(&e, &j);
        const struct jfield *f = jget(&j, "duration_ms");
        assert_int_equal(f->type, J_NUMBER);
        assert_string_equal(f->val, cases[i].want);
        jline_free(&j);
    }
}

static void test_access_entry_format__protocol_names(void **state)
{
    static const struct {
        enum pt_access_protocol p;
        const char *want;
    } cases[] = {
        {PT_ACCESS_PROTOCOL_HTTP_1_0, "HTTP/1.0"},
        {PT_ACCESS_PROTOCOL_HTTP_1_1, "HTTP/1.1"},
        {PT_ACCESS_PROTOCOL_HTTP_2, "HTTP/2"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pt_access_entry e = {.protocol = cases[i].p};
        struct jline j;
        format_and_parse(&e, &j);
        assert_string_equal(jget(&j, "protocol")->val, cases[i].want);
        jline_free(&j);
    }
}

/* ---- the writer ------------------------------------------------------------ */

static void test_access_log__append_to_null_ring_is_a_no_op(void **state)
{
    struct pt_access_entry e = {.status = 200};
    pt_access_log_append(NULL, &e);
    pt_access_log_stop(NULL);
}

static void test_access_log__start_rejects_bad_arguments(void **state)
{
    struct fixture *fx = *state;
    struct pt_diag d;
    pt_diag_init(&d);
    assert_null(pt_access_log_start("/nonexistent-dir/access.log", 1, 0, &d));
    assert_int_equal(d.errors, 1);
    assert_non_null(strstr(pt_diag_text(&d), "/nonexistent-dir/access.log"));
    assert_null(pt_access_log_start(fx->path, 0, 0, &d));
    assert_null(pt_access_log_start(fx->path, 1, (size_t)PT_ACCESS_RING_MAX + 1, &d));
    assert_null(pt_access_log_start("", 1, 0, &d));
    assert_int_equal(d.errors, 4);
    pt_diag_fini(&d);
}

static void test_access_log__stop_flushes_every_appended_line(void **state)
{
    struct fixture *fx = *state;
    struct pt_access_log *l = start_ok(fx->path, 2, 0);
    for (long i = 0; i < 1000; i++) {
        append_numbered(pt_access_log_ring_get(l, 0), "stop", 0, i);
        append_numbered(pt_access_log_ring_get(l, 1), "stop", 1, i);
    }
    assert_int_equal(pt_access_log_dropped(l), 0);
    pt_access_log_stop(l);

    size_t n;
    char *buf = read_file(fx->path, &n);
    struct line_check c = {.nrings = 2, .dense = true, .tag = "stop"};
    assert_int_equal(check_lines(buf, n, &c), 2000);
    assert_int_equal(c.seen[0], 1000);
    assert_int_equal(c.seen[1], 1000);
    free(buf);

    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    mode_t mask = umask(0);
    umask(mask);
    assert_int_equal(st.st_mode & 0777, 0640 & ~mask);
}

static void test_access_log__idle_line_is_written_without_stop(void **state)
{
    struct fixture *fx = *state;
    struct pt_access_log *l = start_ok(fx->path, 1, 0);
    /* One short line stays far below the wake threshold: only the periodic
     * flush can write it. */
    append_numbered(pt_access_log_ring_get(l, 0), "idle", 0, 0);
    assert_true(wait_for_lines(fx->path, 1));
    pt_access_log_stop(l);
}

struct producer {
    struct pt_access_ring *ring;
    unsigned index;
    long count;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (long i = 0; i < p->count; i++)
        append_numbered(p->ring, "multi", p->index, i);
    return NULL;
}

static void test_access_log__lines_from_many_threads_arrive_once_in_ring_order(void **state)
{
    struct fixture *fx = *state;
    enum { THREADS = 4, PER_THREAD = 5000 };
    /* Rings large enough to hold every line even if the writer never ran,
     * so nothing may be dropped. */
    struct pt_access_log *l = start_ok(fx->path, THREADS, 4u << 20);
    pthread_t t[THREADS];
    struct producer p[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        p[i] = (struct producer){pt_access_log_ring_get(l, i), i, PER_THREAD};
        assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(pt_access_log_dropped(l), 0);
    pt_access_log_stop(l);

    size_t n;
    char *buf = read_file(fx->path, &n);
    struct line_check c = {.nrings = THREADS, .dense = true, .tag = "multi"};
    assert_int_equal(check_lines(buf, n, &c), THREADS * PER_THREAD);
    for (unsigned i = 0; i < THREADS; i++)
        assert_int_equal(c.seen[i], PER_THREAD);
    free(buf);
}

struct fifo_reader {
    int fd;
    char *buf;
    size_t len;
};

static void *read_all(void *arg)
{
    struct fifo_reader *r = arg;
    size_t cap = 1 << 16;
    r->buf = malloc(cap);
    for (;;) {
        if (r->len == cap) {
            cap *= 2;
            r->buf = realloc(r->buf, cap);
        }
        ssize_t n = read(r->fd, r->buf + r->len, cap - r->len);
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    return NULL;
}

static void test_access_log__full_ring_drops_and_counts_without_blocking(void **state)
{
    struct fixture *fx = *state;
    char fifo[160];
    snprintf(fifo, sizeof(fifo), "%s/fifo", fx->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    struct fifo_reader rd = {.fd = open(fifo, O_RDONLY | O_NONBLOCK)};
    assert_true(rd.fd >= 0);

    /* Nobody reads the FIFO yet: once the pipe is full the writer blocks in
     * write(2), the smallest ring fills, and further lines must be dropped
     * while append keeps returning. */
    struct pt_access_log *l = start_ok(fifo, 1, 1);
    assert_int_equal(fcntl(rd.fd, F_SETFL, 0), 0);
    enum { LINES = 3000 };
    struct pt_access_ring *r = pt_access_log_ring_get(l, 0);
    for (long i = 0; i < LINES; i++)
        append_numbered(r, "full", 0, i);
    uint64_t dropped = pt_access_log_dropped(l);
    assert_true(dropped > 0);

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_all, &rd), 0);
    pt_access_log_stop(l);
    pthread_join(t, NULL);
    close(rd.fd);

    struct line_check c = {.nrings = 1, .dense = false, .tag = "full"};
    size_t got = check_lines(rd.buf, rd.len, &c);
    assert_int_equal(got + dropped, LINES);
    free(rd.buf);
}

static void test_access_log__write_errors_are_counted_and_never_block(void **state)
{
    if (access("/dev/full", W_OK) != 0)
        skip();
    struct pt_access_log *l = start_ok("/dev/full", 1, 1);
    struct pt_access_ring *r = pt_access_log_ring_get(l, 0);
    append_numbered(r, "err", 0, 0);
    int i;
    for (i = 0; i < 10000 && pt_access_log_write_errors(l) == 0; i++)
        sleep_ms(1);
    assert_true(pt_access_log_write_errors(l) > 0);
    /* Failed bytes stay queued, so the ring fills and lines are dropped. */
    for (long k = 1; k < 2000; k++)
        append_numbered(r, "err", 0, k);
    assert_true(pt_access_log_dropped(l) > 0);
    pt_access_log_stop(l);
}

static void test_access_log__closed_pipe_is_a_counted_error_not_a_crash(void **state)
{
    struct fixture *fx = *state;
    char fifo[160];
    snprintf(fifo, sizeof(fifo), "%s/fifo", fx->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int rd = open(fifo, O_RDONLY | O_NONBLOCK);
    assert_true(rd >= 0);
    struct pt_access_log *l = start_ok(fifo, 1, 0);
    close(rd);
    /* SIGPIPE keeps its default action (terminate) in this process: only
     * the writer thread's blocked mask turns it into an EPIPE error. */
    append_numbered(pt_access_log_ring_get(l, 0), "pipe", 0, 0);
    for (int i = 0; i < 10000 && pt_access_log_write_errors(l) == 0; i++)
        sleep_ms(1);
    assert_true(pt_access_log_write_errors(l) > 0);
    pt_access_log_stop(l);
}

static void test_access_log__reopen_after_rename_writes_to_new_file(void **state)
{
    struct fixture *fx = *state;
    char rotated[160];
    snprintf(rotated, sizeof(rotated), "%s.1", fx->path);
    struct pt_access_log *l = start_ok(fx->path, 1, 0);
    struct pt_access_ring *r = pt_access_log_ring_get(l, 0);
    for (long i = 0; i < 10; i++)
        append_numbered(r, "before", 0, i);
    assert_int_equal(rename(fx->path, rotated), 0);
    assert_int_equal(pt_access_log_reopen(l, NULL), 0);
    for (long i = 0; i < 10; i++)
        append_numbered(r, "after", 0, i);
    pt_access_log_stop(l);

    size_t n;
    char *buf = read_file(rotated, &n);
    struct line_check before = {.nrings = 1, .dense = true, .tag = "before"};
    assert_int_equal(check_lines(buf, n, &before), 10);
    free(buf);
    buf = read_file(fx->path, &n);
    assert_non_null(buf);
    struct line_check after = {.nrings = 1, .dense = true, .tag = "after"};
    assert_int_equal(check_lines(buf, n, &after), 10);
    free(buf);
}

static void test_access_log__reopen_failure_keeps_old_destination(void **state)
{
    struct fixture *fx = *state;
    struct pt_access_log *l = start_ok(fx->path, 1, 0);
    struct pt_access_ring *r = pt_access_log_ring_get(l, 0);
    append_numbered(r, "keep", 0, 0);
    assert_int_equal(pt_access_log_reopen(l, "/nonexistent-dir/x.log"), PT_ERR_CONFIG);
    append_numbered(r, "keep", 0, 1);
    /* NULL still means the destination that was last opened successfully. */
    assert_int_equal(pt_access_log_reopen(l, NULL), 0);
    append_numbered(r, "keep", 0, 2);
    pt_access_log_stop(l);

    size_t n;
    char *buf = read_file(fx->path, &n);
    struct line_check c = {.nrings = 1, .dense = true, .tag = "keep"};
    assert_int_equal(check_lines(buf, n, &c), 3);
    free(buf);
}

static void test_access_log__reopen_switches_between_destinations_while_logging(void **state)
{
    struct fixture *fx = *state;
    char other[160];
    snprintf(other, sizeof(other), "%s/other.log", fx->dir);
    struct pt_access_log *l = start_ok(fx->path, 1, 4u << 20);
    struct producer p = {pt_access_log_ring_get(l, 0), 0, 10000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, produce, &p), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(pt_access_log_reopen(l, i % 2 ? fx->path : other), 0);
    pthread_join(t, NULL);
    assert_int_equal(pt_access_log_dropped(l), 0);
    pt_access_log_stop(l);

    /* Every line lands in exactly one of the two files, whole, and each
     * file keeps the ring's order. */
    size_t n1, n2;
    char *b1 = read_file(fx->path, &n1);
    char *b2 = read_file(other, &n2);
    struct line_check c1 = {.nrings = 1, .dense = false, .tag = "multi"};
    struct line_check c2 = {.nrings = 1, .dense = false, .tag = "multi"};
    size_t total = check_lines(b1, n1, &c1) + check_lines(b2, n2, &c2);
    assert_int_equal(total, 10000);
    free(b1);
    free(b2);
}

static void test_access_log__stdout_destination_writes_to_fd_1(void **state)
{
    struct fixture *fx = *state;
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(fx->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);

    struct pt_access_log *l = start_ok("stdout", 1, 0);
    for (long i = 0; i < 3; i++)
        append_numbered(pt_access_log_ring_get(l, 0), "out", 0, i);
    pt_access_log_stop(l);
    dup2(saved, STDOUT_FILENO);
    close(saved);

    size_t n;
    char *buf = read_file(fx->path, &n);
    struct line_check c = {.nrings = 1, .dense = true, .tag = "out"};
    assert_int_equal(check_lines(buf, n, &c), 3);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_entry_format__full_entry_has_every_key_in_order),
        cmocka_unit_test(test_access_entry_format__absent_optionals_are_null_or_omitted),
        cmocka_unit_test(test_access_entry_format__client_cert_keys_come_last_when_present),
        cmocka_unit_test(test_access_entry_format__grpc_status_zero_is_present),
        cmocka_unit_test(test_access_entry_format__negative_and_extreme_ints_are_valid_numbers),
        cmocka_unit_test(test_access_entry_format__quotes_backslash_and_control_bytes_are_escaped),
        cmocka_unit_test(test_access_entry_format__every_string_field_is_escaped),
        cmocka_unit_test(test_access_entry_format__valid_utf8_kept_invalid_bytes_escaped),
        cmocka_unit_test(test_access_entry_format__long_path_is_cut_with_marker),
        cmocka_unit_test(test_access_entry_format__cut_never_splits_an_escape_or_utf8_sequence),
        cmocka_unit_test(test_access_entry_format__worst_case_entry_fits_line_cap),
        cmocka_unit_test(test_access_entry_format__random_bytes_round_trip_as_valid_json),
        cmocka_unit_test(test_access_entry_format__time_is_rfc3339_utc_millis),
        cmocka_unit_test(test_access_entry_format__duration_has_three_decimals),
        cmocka_unit_test(test_access_entry_format__protocol_names),
        cmocka_unit_test(test_access_log__append_to_null_ring_is_a_no_op),
        cmocka_unit_test_setup_teardown(test_access_log__start_rejects_bad_arguments, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_access_log__stop_flushes_every_appended_line,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_access_log__idle_line_is_written_without_stop,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_access_log__lines_from_many_threads_arrive_once_in_ring_order, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_access_log__full_ring_drops_and_counts_without_blocking, setup_dir, teardown_dir),
        cmocka_unit_test(test_access_log__write_errors_are_counted_and_never_block),
        cmocka_unit_test_setup_teardown(test_access_log__closed_pipe_is_a_counted_error_not_a_crash,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_access_log__reopen_after_rename_writes_to_new_file,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_access_log__reopen_failure_keeps_old_destination,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_access_log__reopen_switches_between_destinations_while_logging, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(test_access_log__stdout_destination_writes_to_fd_1,
                                        setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
