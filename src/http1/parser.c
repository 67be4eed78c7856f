#include "http1/parser.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/strutil.h"
#include "portico/errors.h"

#define DEFAULT_MAX_HEADER_BYTES 65536u
#define DEFAULT_MAX_HEADERS 100u
#define HEAD_BUF_INITIAL 1024u
/* A chunk-size line (size, BWS, extensions) longer than this is abuse, not
 * metadata: extensions are ignored, so nothing legitimate needs more. */
#define CHUNK_LINE_MAX 4096u

enum state {
    S_HEAD, /* start line + fields, or leading empty lines before them */
    S_BODY_LENGTH,
    S_BODY_CLOSE,
    S_CHUNK_SIZE,
    S_CHUNK_BWS, /* whitespace between chunk size and ';' */
    S_CHUNK_EXT,
    S_CHUNK_SIZE_LF,
    S_CHUNK_DATA,
    S_CHUNK_DATA_CR,
    S_CHUNK_DATA_LF,
    S_TRAILERS,
    S_PAUSED,
    S_FAILED,
};

/* Offsets rather than pointers: the head buffer may move while it grows. */
struct span {
    uint32_t off;
    uint32_t len;
};

struct field_span {
    struct span name;
    struct span value;
};

struct pt_h1_parser {
    enum pt_h1_mode mode;
    enum state state;
    int err;
    uint32_t max_header_bytes;
    uint32_t max_headers;
    struct pt_h1_parser_cb cb;
    void *ctx;

    char *buf;
    uint32_t buf_len;
    uint32_t buf_cap;
    uint32_t line_start;
    uint32_t skipped; /* empty lines ignored before a request-line */
    bool have_start_line;
    bool in_msg; /* set once a message is known to have started */
    bool no_body;

    struct field_span *spans;
    struct pt_header *fields;
    uint32_t nfields;
    uint32_t fields_cap;

    struct span method; /* requests */
    struct span target; /* requests */
    struct span reason; /* responses */
    int status;
    int version_minor;

    uint64_t remaining; /* body or chunk bytes still to deliver */
    uint32_t chunk_line;
    bool chunk_digits;
};

/* Token characters mapped to their lower case; 0 for everything else. */
static const char lower_token[256] = {
    ['!'] = '!', ['#'] = '#', ['$'] = '$', ['%'] = '%', ['&'] = '&', ['\''] = '\'', ['*'] = '*',
    ['+'] = '+', ['-'] = '-', ['.'] = '.', ['^'] = '^', ['_'] = '_', ['`'] = '`',   ['|'] = '|',
    ['~'] = '~', ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4',   ['5'] = '5',
    ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9', ['a'] = 'a', ['b'] = 'b',   ['c'] = 'c',
    ['d'] = 'd', ['e'] = 'e', ['f'] = 'f', ['g'] = 'g', ['h'] = 'h', ['i'] = 'i',   ['j'] = 'j',
    ['k'] = 'k', ['l'] = 'l', ['m'] = 'm', ['n'] = 'n', ['o'] = 'o', ['p'] = 'p',   ['q'] = 'q',
    ['r'] = 'r', ['s'] = 's', ['t'] = 't', ['u'] = 'u', ['v'] = 'v', ['w'] = 'w',   ['x'] = 'x',
    ['y'] = 'y', ['z'] = 'z', ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd',   ['E'] = 'e',
    ['F'] = 'f', ['G'] = 'g', ['H'] = 'h', ['I'] = 'i', ['J'] = 'j', ['K'] = 'k',   ['L'] = 'l',
    ['M'] = 'm', ['N'] = 'n', ['O'] = 'o', ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r',   ['S'] = 's',
    ['T'] = 't', ['U'] = 'u', ['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y',   ['Z'] = 'z',
};

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Field values and reason phrases: HTAB, SP, VCHAR, obs-text. */
static bool is_value_char(unsigned char c)
{
    return c >= 0x20 ? c != 0x7f : c == '\t';
}

/* uri-host (reg-name, IPv4, IP-literal) and port characters. Anything else
 * in Host (spaces, '/', '@', '\\') could make routing and the backend
 * disagree about which authority was asked for. */
static bool is_host_char(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-._~!$&'()*+,;=%:[]", c) != NULL;
}

static struct pt_str view(const struct pt_h1_parser *p, struct span s)
{
    return (struct pt_str){p->buf + s.off, s.len};
}

struct pt_h1_parser *pt_h1_parser_new(enum pt_h1_mode mode, const struct pt_h1_limits *limits,
                                      const struct pt_h1_parser_cb *cb, void *ctx)
{
    struct pt_h1_parser *p = pt_xcalloc(1, sizeof(*p));
    p->mode = mode;
    p->state = S_HEAD;
    p->max_header_bytes = DEFAULT_MAX_HEADER_BYTES;
    p->max_headers = DEFAULT_MAX_HEADERS;
    if (limits && limits->max_header_bytes)
        p->max_header_bytes = limits->max_header_bytes;
    if (limits && limits->max_headers)
        p->max_headers = limits->max_headers;
    if (cb)
        p->cb = *cb;
    p->ctx = ctx;
    return p;
}

void pt_h1_parser_free(struct pt_h1_parser *p)
{
    if (!p)
        return;
    free(p->buf);
    free(p->spans);
    free(p->fields);
    free(p);
}

static void reset_section(struct pt_h1_parser *p)
{
    p->buf_len = 0;
    p->line_start = 0;
    p->skipped = 0;
    p->nfields = 0;
    p->have_start_line = false;
}

static int fail(struct pt_h1_parser *p, int err)
{
    p->state = S_FAILED;
    p->err = err;
    return err;
}

static int complete(struct pt_h1_parser *p)
{
    /* Paused before the callback so that a callback calling
     * pt_h1_parser_next() resumes parsing in the same execute(). */
    p->state = S_PAUSED;
    p->in_msg = false;
    if (p->cb.on_complete) {
        int rc = p->cb.on_complete(p->ctx);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int deliver_body(struct pt_h1_parser *p, const char *data, size_t len)
{
    if (len && p->cb.on_body) {
        int rc = p->cb.on_body(p->ctx, data, len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void append(struct pt_h1_parser *p, const char *data, size_t n)
{
    size_t need = (size_t)p->buf_len + n;
    if (need > p->buf_cap) {
        size_t cap = p->buf_cap ? p->buf_cap : HEAD_BUF_INITIAL;
        while (cap < need)
            cap *= 2;
        if (cap > p->max_header_bytes)
            cap = p->max_header_bytes;
        p->buf = pt_xrealloc(p->buf, cap);
        p->buf_cap = (uint32_t)cap;
    }
    memcpy(p->buf + p->buf_len, data, n);
    p->buf_len += (uint32_t)n;
}

/* "HTTP/1.<digit>". A later minor version is answered as 1.1 (RFC 9110
 * §2.5); any other major version is not HTTP/1.x. */
static int parse_version(const char *s, size_t n, int *minor)
{
    if (n != 8 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9')
        return PT_ERR_BAD_REQUEST;
    *minor = s[7] == '0' ? 0 : 1;
    return 0;
}

/* method SP request-target SP HTTP-version, single spaces only. */
static int parse_request_line(struct pt_h1_parser *p, uint32_t off, uint32_t n)
{
    const char *s = p->buf + off;
    uint32_t i = 0;
    while (i < n && lower_token[(unsigned char)s[i]])
        i++;
    if (i == 0 || i == n || s[i] != ' ')
        return PT_ERR_BAD_REQUEST;
    p->method = (struct span){off, i};
    uint32_t t = ++i;
    /* URI characters are all visible ASCII; raw bytes >= 0x80 are not. */
    while (i < n && s[i] > 0x20 && s[i] < 0x7f)
        i++;
    if (i == t || i == n || s[i] != ' ')
        return PT_ERR_BAD_REQUEST;
    p->target = (struct span){off + t, i - t};
    i++;
    return parse_version(s + i, n - i, &p->version_minor);
}

/* HTTP-version SP 3DIGIT SP reason. Servers that drop the second SP along
 * with an empty reason are common enough to accept. */
static int parse_status_line(struct pt_h1_parser *p, uint32_t off, uint32_t n)
{
    const char *s = p->buf + off;
    if (n < 12 || s[8] != ' ' || parse_version(s, 8, &p->version_minor) != 0)
        return PT_ERR_BAD_REQUEST;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PT_ERR_BAD_REQUEST;
        status = status * 10 + (s[i] - '0');
    }
    if (status < 100)
        return PT_ERR_BAD_REQUEST;
    p->status = status;
    p->reason = (struct span){off + n, 0};
    if (n == 12)
        return 0;
    if (s[12] != ' ')
        return PT_ERR_BAD_REQUEST;
    for (uint32_t i = 13; i < n; i++)
        if (!is_value_char((unsigned char)s[i]))
            return PT_ERR_BAD_REQUEST;
    p->reason = (struct span){off + 13, n - 13};
    return 0;
}

static int add_field(struct pt_h1_parser *p, uint32_t off, uint32_t n)
{
    char *s = p->buf + off;
    /* obs-fold, and whitespace before the first field name (RFC 9112 §2.2). */
    if (is_ows(s[0]))
        return PT_ERR_BAD_REQUEST;
    uint32_t i = 0;
    for (; i < n; i++) {
        char c = lower_token[(unsigned char)s[i]];
        if (!c)
            break;
        s[i] = c;
    }
    /* Rejects an empty name, a bad name byte, and "name :" alike. */
    if (i == 0 || i == n || s[i] != ':')
        return PT_ERR_BAD_REQUEST;
    uint32_t name_len = i++;
    while (i < n && is_ows(s[i]))
        i++;
    uint32_t vstart = i;
    for (; i < n; i++)
        if (!is_value_char((unsigned char)s[i]))
            return PT_ERR_BAD_REQUEST;
    uint32_t vend = n;
    while (vend > vstart && is_ows(s[vend - 1]))
        vend--;
    if (p->nfields == p->max_headers)
        return PT_ERR_HEADERS_TOO_LARGE;
    if (p->nfields == p->fields_cap) {
        uint32_t cap = p->fields_cap ? p->fields_cap * 2 : 16;
        if (cap > p->max_headers)
            cap = p->max_headers;
        p->spans = pt_xrealloc(p->spans, cap * sizeof(*p->spans));
        p->fields = pt_xrealloc(p->fields, cap * sizeof(*p->fields));
        p->fields_cap = cap;
    }
    p->spans[p->nfields++] = (struct field_span){{off, name_len}, {off + vstart, vend - vstart}};
    return 0;
}

struct framing {
    int64_t content_length;
    uint32_t hosts;
    uint32_t chunked_count;
    bool te_seen;
    bool te_last_chunked;
    bool te_unknown;
    bool te_other; /* a known coding other than chunked */
    bool conn_close;
    bool conn_keep_alive;
    bool conn_upgrade;
    bool upgrade_field;
    bool expect_continue;
};

static bool name_is(struct pt_str name, const char *lit, size_t len)
{
    return name.len == len && memcmp(name.ptr, lit, len) == 0;
}

#define NAME_IS(name, lit) name_is((name), (lit), sizeof(lit) - 1)

/* Calls fn on each element of a comma-separated list, trimmed. Empty
 * elements are rejected: in framing fields they are a sign of a crafted
 * message, and nothing legitimate sends them. */
typedef int list_item_fn(struct framing *f, struct pt_str item);

static int each_list_item(struct pt_str list, struct framing *f, list_item_fn *fn)
{
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < list.len && list.ptr[j] != ',')
            j++;
        struct pt_str item = pt_str_trim((struct pt_str){list.ptr + i, j - i});
        if (item.len == 0)
            return PT_ERR_BAD_REQUEST;
        int rc = fn(f, item);
        if (rc < 0)
            return rc;
        if (j == list.len)
            return 0;
        i = j + 1;
    }
}

static int content_length_item(struct framing *f, struct pt_str item)
{
    uint64_t v;
    if (pt_str_to_u64(item, &v) != 0 || v > INT64_MAX)
        return PT_ERR_BAD_REQUEST;
    if (f->content_length >= 0 && (uint64_t)f->content_length != v)
        return PT_ERR_BAD_REQUEST;
    f->content_length = (int64_t)v;
    return 0;
}

static int transfer_coding_item(struct framing *f, struct pt_str item)
{
    size_t n = 0;
    while (n < item.len && item.ptr[n] != ';' && !is_ows(item.ptr[n]))
        n++;
    struct pt_str coding = {item.ptr, n};
    if (!pt_http_is_token(coding))
        return PT_ERR_BAD_REQUEST;
    while (n < item.len && is_ows(item.ptr[n]))
        n++;
    if (n < item.len && item.ptr[n] != ';')
        return PT_ERR_BAD_REQUEST;
    if (pt_str_eq_nocase(coding, PT_STR("chunked"))) {
        /* chunked takes no parameters. */
        if (n != item.len)
            return PT_ERR_BAD_REQUEST;
        f->chunked_count++;
        f->te_last_chunked = true;
        return 0;
    }
    f->te_last_chunked = false;
    static const struct pt_str known[] = {PT_STR("gzip"), PT_STR("x-gzip"), PT_STR("deflate"),
                                          PT_STR("compress"), PT_STR("x-compress")};
    for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
        if (pt_str_eq_nocase(coding, known[k])) {
            f->te_other = true;
            return 0;
        }
    }
    f->te_unknown = true;
    return 0;
}

static int connection_item(struct framing *f, struct pt_str item)
{
    if (pt_str_eq_nocase(item, PT_STR("close")))
        f->conn_close = true;
    else if (pt_str_eq_nocase(item, PT_STR("keep-alive")))
        f->conn_keep_alive = true;
    else if (pt_str_eq_nocase(item, PT_STR("upgrade")))
        f->conn_upgrade = true;
    return 0;
}

static int scan_field(struct framing *f, struct pt_str name, struct pt_str value)
{
    switch (name.len) {
    case 4:
        if (NAME_IS(name, "host")) {
            f->hosts++;
            for (size_t i = 0; i < value.len; i++)
                if (!is_host_char(value.ptr[i]))
                    return PT_ERR_BAD_REQUEST;
        }
        return 0;
    case 6:
        if (NAME_IS(name, "expect") && pt_str_eq_nocase(value, PT_STR("100-continue")))
            f->expect_continue = true;
        return 0;
    case 7:
        if (NAME_IS(name, "upgrade"))
            f->upgrade_field = true;
        return 0;
    case 10:
        if (NAME_IS(name, "connection"))
            return each_list_item(value, f, connection_item);
        return 0;
    case 14:
        if (NAME_IS(name, "content-length"))
            return each_list_item(value, f, content_length_item);
        return 0;
    case 17:
        if (NAME_IS(name, "transfer-encoding")) {
            f->te_seen = true;
            return each_list_item(value, f, transfer_coding_item);
        }
        return 0;
    default:
        return 0;
    }
}

/*
 * RFC 9112 §6.1 and §6.3, tightened: a message must not be framed two ways,
 * and a request's body length must be knowable from the head alone.
 */
static int check_transfer_encoding(const struct pt_h1_parser *p, const struct framing *f)
{
    if (f->content_length >= 0)
        return PT_ERR_BAD_REQUEST;
    /* An HTTP/1.0 recipient may not understand chunked; its framing is faulty. */
    if (p->version_minor == 0)
        return PT_ERR_BAD_REQUEST;
    if (f->chunked_count > 1)
        return PT_ERR_BAD_REQUEST;
    if (p->mode == PT_H1_RESPONSE)
        return 0;
    if (f->te_unknown)
        return PT_ERR_NOT_IMPLEMENTED;
    if (!f->te_last_chunked)
        return PT_ERR_BAD_REQUEST;
    /* "gzip, chunked": Transfer-Encoding is hop-by-hop, so forwarding the
     * decoded chunks would silently hand the backend gzip bytes. */
    if (f->te_other)
        return PT_ERR_NOT_IMPLEMENTED;
    return 0;
}

static int end_head(struct pt_h1_parser *p)
{
    bool response = p->mode == PT_H1_RESPONSE;
    if (response && p->status < 200 && p->status != 101) {
        /* Interim responses carry nothing the caller needs; the final
         * response follows on the same connection. */
        reset_section(p);
        p->in_msg = true;
        return 0;
    }

    struct framing f = {.content_length = -1};
    for (uint32_t i = 0; i < p->nfields; i++) {
        struct pt_str name = view(p, p->spans[i].name);
        struct pt_str value = view(p, p->spans[i].value);
        p->fields[i] = (struct pt_header){name, value};
        int rc = scan_field(&f, name, value);
        if (rc < 0)
            return rc;
    }
    if (f.te_seen) {
        int rc = check_transfer_encoding(p, &f);
        if (rc < 0)
            return rc;
    }
    if (!response && (f.hosts > 1 || (f.hosts == 0 && p->version_minor == 1)))
        return PT_ERR_BAD_REQUEST;

    struct pt_h1_head h = {
        .status = response ? p->status : 0,
        .version_minor = p->version_minor,
        .headers = p->fields,
        .nheaders = p->nfields,
        .content_length = f.content_length,
        .chunked = f.te_seen && f.te_last_chunked,
    };
    if (response)
        h.reason = view(p, p->reason);
    else {
        h.method = view(p, p->method);
        h.target = view(p, p->target);
    }
    if (p->version_minor == 1)
        h.keep_alive = !f.conn_close;
    else
        h.keep_alive = f.conn_keep_alive && !f.conn_close;

    enum state next;
    if (!response) {
        /* RFC 9110 §7.8 and §10.1.1: Upgrade and 100-continue mean nothing
         * in an HTTP/1.0 request. */
        h.upgrade = p->version_minor == 1 && f.conn_upgrade && f.upgrade_field;
        h.expect_continue = p->version_minor == 1 && f.expect_continue;
        if (h.chunked)
            next = S_CHUNK_SIZE;
        else if (f.content_length > 0)
            next = S_BODY_LENGTH;
        else
            next = S_PAUSED;
    } else {
        /* RFC 9112 §6.3 items 1 and 2: the framing fields of these are
         * about some other representation, not a body that follows. */
        bool bodiless = p->no_body || p->status == 101 || p->status == 204 || p->status == 304;
        h.upgrade = p->status == 101;
        h.chunked = h.chunked && !bodiless;
        if (bodiless || f.content_length == 0)
            next = S_PAUSED;
        else if (h.chunked)
            next = S_CHUNK_SIZE;
        else if (f.content_length > 0)
            next = S_BODY_LENGTH;
        else {
            next = S_BODY_CLOSE;
            h.keep_alive = false;
        }
    }
    h.has_body = next != S_PAUSED;

    if (p->cb.on_head) {
        int rc = p->cb.on_head(p->ctx, &h);
        if (rc < 0)
            return rc;
    }
    reset_section(p);
    p->remaining = next == S_BODY_LENGTH ? (uint64_t)f.content_length : 0;
    p->chunk_line = 0;
    p->chunk_digits = false;
    if (next == S_PAUSED)
        return complete(p);
    p->state = next;
    return 0;
}

static int end_trailers(struct pt_h1_parser *p)
{
    if (p->nfields && p->cb.on_trailers) {
        for (uint32_t i = 0; i < p->nfields; i++)
            p->fields[i] =
                (struct pt_header){view(p, p->spans[i].name), view(p, p->spans[i].value)};
        int rc = p->cb.on_trailers(p->ctx, p->fields, p->nfields);
        if (rc < 0)
            return rc;
    }
    reset_section(p);
    return complete(p);
}

/* A line ending in LF has just been appended to the buffer. */
static int end_line(struct pt_h1_parser *p)
{
    uint32_t off = p->line_start;
    uint32_t end = p->buf_len;
    /* A CR anywhere else is caught by the character checks below. */
    if (end - off < 2 || p->buf[end - 2] != '\r')
        return PT_ERR_BAD_REQUEST;
    uint32_t n = end - off - 2;
    p->line_start = end;
    if (p->state == S_TRAILERS)
        return n ? add_field(p, off, n) : end_trailers(p);
    if (!p->have_start_line) {
        if (n == 0 && p->mode == PT_H1_REQUEST) {
            /* RFC 9112 §2.2: ignore empty lines before a request-line (some
             * clients send CRLF after a POST body), within the head budget. */
            p->skipped += 2;
            if (p->skipped > p->max_header_bytes)
                return PT_ERR_HEADERS_TOO_LARGE;
            p->buf_len = p->line_start = 0;
            return 0;
        }
        if (n == 0)
            return PT_ERR_BAD_REQUEST;
        p->have_start_line = true;
        p->in_msg = true;
        return p->mode == PT_H1_REQUEST ? parse_request_line(p, off, n)
                                        : parse_status_line(p, off, n);
    }
    return n ? add_field(p, off, n) : end_head(p);
}

/* Head or trailer section: copy whole lines into the buffer and handle each
 * as soon as its LF arrives, so any split of the input behaves the same. */
static int read_lines(struct pt_h1_parser *p, const char *data, size_t len, size_t *used)
{
    enum state section = p->state;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) + 1 : len - pos;
        if ((size_t)p->buf_len + p->skipped + n > p->max_header_bytes)
            return PT_ERR_HEADERS_TOO_LARGE;
        append(p, data + pos, n);
        pos += n;
        if (!nl)
            break;
        int rc = end_line(p);
        if (rc < 0)
            return rc;
        if (p->state != section)
            break;
    }
    *used = pos;
    return 0;
}

/* Body bytes up to `remaining`, passed through without copying. */
static int read_counted(struct pt_h1_parser *p, const char *data, size_t len, size_t *used)
{
    size_t n = len;
    if (n > p->remaining)
        n = (size_t)p->remaining;
    p->remaining -= n;
    *used = n;
    return deliver_body(p, data, n);
}

static int chunk_line_byte(struct pt_h1_parser *p, char c)
{
    if (++p->chunk_line > CHUNK_LINE_MAX)
        return PT_ERR_BAD_REQUEST;
    switch (p->state) {
    case S_CHUNK_SIZE: {
        int h = pt_hex_value((unsigned char)c);
        if (h >= 0) {
            if (p->remaining >> 60)
                return PT_ERR_BAD_REQUEST;
            p->remaining = (p->remaining << 4) | (uint64_t)h;
            p->chunk_digits = true;
            return 0;
        }
        if (!p->chunk_digits)
            return PT_ERR_BAD_REQUEST;
        if (c == '\r')
            p->state = S_CHUNK_SIZE_LF;
        else if (c == ';')
            p->state = S_CHUNK_EXT;
        else if (is_ows(c))
            p->state = S_CHUNK_BWS;
        else
            return PT_ERR_BAD_REQUEST;
        return 0;
    }
    case S_CHUNK_BWS:
        if (c == ';')
            p->state = S_CHUNK_EXT;
        else if (!is_ows(c))
            return PT_ERR_BAD_REQUEST;
        return 0;
    case S_CHUNK_EXT:
        /* Extensions are ignored, but a CTL in one (bare LF, NUL) is where
         * parsers disagree about where the line ends. */
        if (c == '\r')
            p->state = S_CHUNK_SIZE_LF;
        else if (!is_value_char((unsigned char)c))
            return PT_ERR_BAD_REQUEST;
        return 0;
    default: /* S_CHUNK_SIZE_LF */
        if (c != '\n')
            return PT_ERR_BAD_REQUEST;
        p->chunk_line = 0;
        p->chunk_digits = false;
        if (p->remaining == 0) {
            reset_section(p);
            p->state = S_TRAILERS;
        } else {
            p->state = S_CHUNK_DATA;
        }
        return 0;
    }
}

ssize_t pt_h1_parser_execute(struct pt_h1_parser *p, const char *data, size_t len)
{
    if (p->state == S_FAILED)
        return p->err;
    size_t pos = 0;
    while (pos < len && p->state != S_PAUSED) {
        size_t used = 1;
        int rc = 0;
        switch (p->state) {
        case S_HEAD:
        case S_TRAILERS:
            rc = read_lines(p, data + pos, len - pos, &used);
            break;
        case S_BODY_LENGTH:
            rc = read_counted(p, data + pos, len - pos, &used);
            if (rc == 0 && p->remaining == 0)
                rc = complete(p);
            break;
        case S_BODY_CLOSE:
            used = len - pos;
            rc = deliver_body(p, data + pos, used);
            break;
        case S_CHUNK_DATA:
            rc = read_counted(p, data + pos, len - pos, &used);
            if (p->remaining == 0)
                p->state = S_CHUNK_DATA_CR;
            break;
        case S_CHUNK_DATA_CR:
            if (data[pos] != '\r')
                rc = PT_ERR_BAD_REQUEST;
            p->state = S_CHUNK_DATA_LF;
            break;
        case S_CHUNK_DATA_LF:
            if (data[pos] != '\n')
                rc = PT_ERR_BAD_REQUEST;
            p->state = S_CHUNK_SIZE;
            break;
        case S_CHUNK_SIZE:
        case S_CHUNK_BWS:
        case S_CHUNK_EXT:
        case S_CHUNK_SIZE_LF:
            rc = chunk_line_byte(p, data[pos]);
            break;
        case S_PAUSED:
        case S_FAILED:
            break;
        }
        if (rc < 0)
            return fail(p, rc);
        pos += used;
    }
    return (ssize_t)pos;
}

void pt_h1_parser_next(struct pt_h1_parser *p)
{
    if (p->state != S_PAUSED)
        return;
    reset_section(p);
    p->no_body = false;
    p->state = S_HEAD;
}

void pt_h1_parser_set_no_body(struct pt_h1_parser *p, bool no_body)
{
    p->no_body = no_body;
}

int pt_h1_parser_finish(struct pt_h1_parser *p)
{
    switch (p->state) {
    case S_FAILED:
        return p->err;
    case S_PAUSED:
        return 0;
    case S_BODY_CLOSE: {
        int rc = complete(p);
        return rc < 0 ? fail(p, rc) : 0;
    }
    case S_HEAD:
        if (!pt_h1_parser_in_message(p))
            return 0;
        return fail(p, PT_ERR_CLOSED);
    default:
        return fail(p, PT_ERR_CLOSED);
    }
}

bool pt_h1_parser_in_message(const struct pt_h1_parser *p)
{
    switch (p->state) {
    case S_PAUSED:
    case S_FAILED:
        return false;
    case S_HEAD:
        /* A lone CR may be the start of an ignored empty line. */
        return p->in_msg || (p->buf_len > 0 && (p->mode == PT_H1_RESPONSE || p->buf[0] != '\r'));
    default:
        return true;
    }
}
