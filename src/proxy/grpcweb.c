/*
 * gRPC-Web as a codec over the exchange (docs/grpc-web.md).
 *
 * A request on a route with grpc_web whose content-type is
 * application/grpc-web* becomes a gRPC request (is_grpc, content-type
 * application/grpc, te: trailers); -text bodies are base64-decoded by the
 * request body stage (body.c). The response goes through the response body
 * stage: messages pass through (base64 for -text) and the trailers - or a
 * trailers-only head's status - become the 0x80 trailer frame, so the
 * codec sends no HTTP trailers at all. Local replies (gateway errors)
 * carry the same frame as their body. CORS: preflights are answered here,
 * actual responses get Access-Control-Allow-Origin and -Expose-Headers.
 */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/snapshot.h"
#include "core/strutil.h"
#include "grpc/grpc.h"
#include "grpc/grpcweb.h"
#include "portico/errors.h"
#include "proxy/proxy_int.h"

struct pt_proxy_grpcweb {
    enum pt_grpcweb_mode mode;
    const struct pt_grpcweb_conf *conf;
    struct pt_str content_type; /* of the response: the request's media type */
    struct pt_str origin;       /* Access-Control-Allow-Origin value, empty: none */
    struct pt_grpcweb_decoder dec;
    /* grpc-status and grpc-message of a trailers-only head, moved out of
     * the response head into the trailer frame. */
    struct pt_headers head_status;
    /* The upstream answered an HTTP error without a gRPC status: its body
     * is dropped and its status mapped into the trailer frame. */
    int http_error;
    bool ended; /* the trailer frame went out */
};

/* The Access-Control-Allow-Origin value for the request's Origin, or
 * empty when it has none or it is not allowed. */
static struct pt_str allowed_origin(const struct pt_grpcweb_conf *c, const struct pt_headers *h)
{
    struct pt_str o;
    if (!pt_headers_find(h, PT_STR("origin"), &o) || !o.len)
        return PT_STR_NULL;
    if (c->any_origin)
        return PT_STR("*");
    for (size_t i = 0; i < c->norigins; i++)
        if (pt_str_eq_nocase(o, pt_str_from_cstr(c->origins[i])))
            return o;
    return PT_STR_NULL;
}

/* --- preflight ------------------------------------------------------------ */

bool pt_proxy_grpcweb_preflight_method(const struct pt_exchange *x, struct pt_str *method)
{
    struct pt_str o;
    return pt_str_eq(x->req.method, PT_STR("OPTIONS")) &&
           pt_headers_find(&x->req.headers, PT_STR("origin"), &o) &&
           pt_headers_find(&x->req.headers, PT_STR("access-control-request-method"), method) &&
           method->len;
}

int pt_proxy_grpcweb_preflight(struct pt_exchange *x, const struct pt_grpcweb_conf *c,
                               struct pt_headers *extra)
{
    pt_headers_init(extra, &x->arena, 0);
    struct pt_str m;
    (void)pt_proxy_grpcweb_preflight_method(x, &m);
    struct pt_str origin = allowed_origin(c, &x->req.headers);
    if (!origin.len || !pt_str_eq(m, PT_STR("POST")))
        return 403;
    if (pt_headers_add_ref(extra, PT_STR("access-control-allow-origin"), origin) ||
        pt_headers_add_ref(extra, PT_STR("access-control-allow-methods"), PT_STR("POST")) ||
        pt_headers_add_ref(extra, PT_STR("access-control-allow-headers"), c->allow_headers) ||
        pt_headers_add_ref(extra, PT_STR("access-control-max-age"), c->max_age) ||
        (c->allow_credentials &&
         pt_headers_add_ref(extra, PT_STR("access-control-allow-credentials"), PT_STR("true"))) ||
        (!c->any_origin && pt_headers_add_ref(extra, PT_STR("vary"), PT_STR("Origin"))))
        return PT_ERR_LIMIT;
    return 204;
}

/* --- request -------------------------------------------------------------- */

static int set_header(struct pt_headers *h, struct pt_str name, struct pt_str value)
{
    pt_headers_remove(h, name);
    return pt_headers_add_ref(h, name, value);
}

int pt_proxy_grpcweb_start(struct pt_exchange *x)
{
    const struct pt_grpcweb_conf *c = x->route->grpc_web;
    struct pt_headers *h = &x->req.headers;
    struct pt_str ct;
    if (!pt_headers_find(h, PT_STR("content-type"), &ct))
        return 0;
    enum pt_grpcweb_mode mode = pt_grpcweb_mode_of(ct);
    if (mode == PT_GRPCWEB_NONE || !pt_str_eq(x->req.method, PT_STR("POST")))
        return 0;
    struct pt_proxy_grpcweb *g = pt_arena_alloc(&x->arena, sizeof(*g));
    if (!g)
        return PT_ERR_LIMIT;
    memset(g, 0, sizeof(*g));
    g->mode = mode;
    g->conf = c;
    pt_headers_init(&g->head_status, &x->arena, 0);
    pt_grpcweb_decoder_init(&g->dec, true, x->route->max_body_bytes);
    size_t end = 0;
    while (end < ct.len && ct.ptr[end] != ';')
        end++;
    char *lower = pt_arena_alloc(&x->arena, end ? end : 1);
    if (!lower)
        return PT_ERR_LIMIT;
    struct pt_str media = pt_str_trim((struct pt_str){ct.ptr, end});
    for (size_t i = 0; i < media.len; i++) {
        char ch = media.ptr[i];
        lower[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    }
    g->content_type = (struct pt_str){lower, media.len};
    g->origin = allowed_origin(c, h);
    /* What a gRPC server expects. A -text body changes length when decoded. */
    if (set_header(h, PT_STR("content-type"), PT_STR("application/grpc")) ||
        set_header(h, PT_STR("te"), PT_STR("trailers")))
        return PT_ERR_LIMIT;
    pt_headers_remove(h, PT_STR("x-grpc-web"));
    if (mode == PT_GRPCWEB_TEXT) {
        pt_headers_remove(h, PT_STR("content-length"));
        x->req.content_length = -1;
    }
    x->req.is_grpc = true;
    x->grpcweb = g;
    return 0;
}

bool pt_proxy_grpcweb_decodes(const struct pt_exchange *x)
{
    return x->grpcweb && x->grpcweb->mode == PT_GRPCWEB_TEXT;
}

int pt_proxy_grpcweb_decode(struct pt_exchange *x, struct evbuffer *chunk, bool end)
{
    struct pt_proxy_grpcweb *g = x->grpcweb;
    size_t len = evbuffer_get_length(chunk);
    if (len) {
        const uint8_t *in = evbuffer_pullup(chunk, -1);
        size_t cap = pt_grpcweb_decode_bound(len);
        uint8_t *out = malloc(cap);
        if (!in || !out)
            pt_abort_oom(cap);
        long n = pt_grpcweb_decode(&g->dec, in, len, out, cap);
        evbuffer_drain(chunk, len);
        if (n > 0)
            evbuffer_add(chunk, out, (size_t)n);
        free(out);
        if (n < 0)
            return (int)n;
    }
    return end ? pt_grpcweb_decode_finish(&g->dec) : 0;
}

/* --- response ------------------------------------------------------------- */

static int add_cors(struct pt_exchange *x, struct pt_proxy_grpcweb *g)
{
    struct pt_headers *h = &x->resp.headers;
    if (!g->origin.len)
        return 0;
    if (set_header(h, PT_STR("access-control-allow-origin"), g->origin) ||
        set_header(h, PT_STR("access-control-expose-headers"), g->conf->expose_headers) ||
        (g->conf->allow_credentials &&
         set_header(h, PT_STR("access-control-allow-credentials"), PT_STR("true"))) ||
        (!g->conf->any_origin && pt_headers_add_ref(h, PT_STR("vary"), PT_STR("Origin"))))
        return PT_ERR_LIMIT;
    return 0;
}

void pt_proxy_grpcweb_head(struct pt_exchange *x)
{
    struct pt_proxy_grpcweb *g = x->grpcweb;
    if (!g)
        return;
    struct pt_headers *h = &x->resp.headers;
    if (!x->resp_local) {
        /* A trailers-only head: its status goes into the trailer frame. */
        static const struct pt_str moved[] = {PT_STR("grpc-status"), PT_STR("grpc-message"),
                                              PT_STR("grpc-status-details-bin")};
        for (size_t i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
            int k = pt_headers_index(h, moved[i], 0);
            if (k < 0)
                continue;
            if (pt_headers_add_ref(&g->head_status, moved[i], h->v[k].value) == 0)
                pt_headers_remove(h, moved[i]);
        }
        if (x->resp.status != 200 &&
            pt_headers_index(&g->head_status, PT_STR("grpc-status"), 0) < 0) {
            g->http_error = x->resp.status;
            x->resp.status = 200;
        }
        pt_headers_remove(h, PT_STR("content-length"));
        if (set_header(h, PT_STR("content-type"), g->content_type) != 0)
            x->error = x->error ? x->error : PT_ERR_LIMIT;
        x->resp.content_length = -1;
        x->resp.has_body = true;
    }
    if (add_cors(x, g) != 0 && !x->error)
        x->error = PT_ERR_LIMIT;
}

/* HTTP status -> gRPC status for an upstream that gave none (gRPC's
 * http-grpc-status-mapping). */
static int status_from_http(int http)
{
    switch (http) {
    case 400:
        return 13;
    case 401:
        return 16;
    case 403:
        return 7;
    case 404:
        return 12;
    case 429:
    case 502:
    case 503:
    case 504:
        return 14;
    default:
        return 2;
    }
}

/* Append the trailer frame for fields (base64 for -text) to out.
 * Status: 0 or PT_ERR_NOMEM. */
static int frame_append(struct pt_proxy_grpcweb *g, const struct pt_grpcweb_field *f, size_t n,
                        struct evbuffer *out)
{
    size_t size = pt_grpcweb_trailer_size(f, n);
    uint8_t *frame = malloc(size);
    if (!frame)
        pt_abort_oom(size);
    pt_grpcweb_trailer_write(f, n, frame);
    int rc;
    if (g->mode == PT_GRPCWEB_TEXT) {
        char *text = malloc(pt_grpcweb_b64_len(size));
        if (!text)
            pt_abort_oom(size);
        size_t tl = pt_grpcweb_b64_encode(frame, size, text);
        rc = evbuffer_add(out, text, tl);
        free(text);
    } else {
        rc = evbuffer_add(out, frame, size);
    }
    free(frame);
    g->ended = true;
    return rc == 0 ? 0 : PT_ERR_NOMEM;
}

static int base64_in_place(struct evbuffer *chunk)
{
    size_t len = evbuffer_get_length(chunk);
    if (!len)
        return 0;
    const uint8_t *in = evbuffer_pullup(chunk, -1);
    char *text = malloc(pt_grpcweb_b64_len(len));
    if (!in || !text)
        pt_abort_oom(len);
    size_t tl = pt_grpcweb_b64_encode(in, len, text);
    evbuffer_drain(chunk, len);
    int rc = evbuffer_add(chunk, text, tl);
    free(text);
    return rc == 0 ? 0 : PT_ERR_NOMEM;
}

int pt_proxy_grpcweb_encode(struct pt_exchange *x, struct evbuffer *chunk, bool end,
                            const struct pt_headers *trailers)
{
    struct pt_proxy_grpcweb *g = x->grpcweb;
    if (g->ended || g->http_error)
        evbuffer_drain(chunk, evbuffer_get_length(chunk));
    if (g->ended)
        return 0;
    if (g->mode == PT_GRPCWEB_TEXT && base64_in_place(chunk) != 0)
        return PT_ERR_NOMEM;
    if (!end)
        return 0;
    /* The trailers, then whatever a trailers-only head moved aside. */
    size_t nt = trailers ? trailers->n : 0, nh = g->head_status.n;
    struct pt_grpcweb_field *f = malloc((nt + nh + 2) * sizeof(*f));
    if (!f)
        pt_abort_oom(nt + nh);
    size_t n = 0;
    bool have_status = false;
    for (size_t i = 0; i < nt; i++) {
        struct pt_header *t = &trailers->v[i];
        if (t->name.len && t->name.ptr[0] == ':')
            continue;
        have_status |= pt_str_eq_nocase(t->name, PT_STR("grpc-status"));
        f[n++] = (struct pt_grpcweb_field){t->name, t->value};
    }
    for (size_t i = 0; !have_status && i < nh; i++) {
        struct pt_header *t = &g->head_status.v[i];
        f[n++] = (struct pt_grpcweb_field){t->name, t->value};
    }
    have_status |= nh && pt_headers_index(&g->head_status, PT_STR("grpc-status"), 0) >= 0;
    char code[8], why[48];
    if (!have_status) {
        int c = status_from_http(g->http_error);
        int cl = snprintf(code, sizeof(code), "%d", c);
        int wl =
            g->http_error
                ? snprintf(why, sizeof(why), "upstream%%20answered%%20HTTP%%20%d", g->http_error)
                : snprintf(why, sizeof(why), "upstream%%20sent%%20no%%20grpc-status");
        f[n++] = (struct pt_grpcweb_field){PT_STR("grpc-status"), {code, (size_t)cl}};
        f[n++] = (struct pt_grpcweb_field){PT_STR("grpc-message"), {why, (size_t)wl}};
        x->grpc_status = c;
    }
    int rc = frame_append(g, f, n, chunk);
    free(f);
    return rc;
}

/* --- gateway errors ------------------------------------------------------- */

int pt_proxy_grpcweb_error_body(struct pt_exchange *x, struct pt_str status, struct pt_str message,
                                struct pt_str *content_type, struct pt_str *body)
{
    struct pt_proxy_grpcweb *g = x->grpcweb;
    struct pt_grpcweb_field f[2] = {{PT_STR("grpc-status"), status},
                                    {PT_STR("grpc-message"), message}};
    size_t n = message.len ? 2 : 1;
    size_t size = pt_grpcweb_trailer_size(f, n);
    uint8_t *frame = pt_arena_alloc(&x->arena, size);
    if (!frame)
        return PT_ERR_LIMIT;
    pt_grpcweb_trailer_write(f, n, frame);
    *content_type = g->content_type;
    g->ended = true;
    if (g->mode != PT_GRPCWEB_TEXT) {
        *body = (struct pt_str){(const char *)frame, size};
        return 0;
    }
    char *text = pt_arena_alloc(&x->arena, pt_grpcweb_b64_len(size));
    if (!text)
        return PT_ERR_LIMIT;
    *body = (struct pt_str){text, pt_grpcweb_b64_encode(frame, size, text)};
    return 0;
}

bool pt_proxy_grpcweb_abort(struct pt_exchange *x, int code, struct pt_str text)
{
    struct pt_proxy_grpcweb *g = x->grpcweb;
    if (!g)
        return false;
    if (g->ended || x->resp_body.eof)
        return true;
    char status[8];
    int sn = snprintf(status, sizeof(status), "%d", code);
    char enc[256];
    size_t en = pt_grpc_message_encode(text, enc, sizeof(enc));
    struct pt_grpcweb_field f[2] = {{PT_STR("grpc-status"), {status, (size_t)sn}},
                                    {PT_STR("grpc-message"), {enc, en}}};
    struct evbuffer *b = evbuffer_new();
    if (!b)
        pt_abort_oom(64);
    x->grpc_status = code;
    (void)frame_append(g, f, 2, b);
    (void)pt_pipe_write_buffer(&x->resp_body, b, evbuffer_get_length(b));
    evbuffer_free(b);
    pt_pipe_end(&x->resp_body, NULL);
    return true;
}
