/*
 * The transcoder's upstream call: a REST/JSON request on a route with
 * `transcode` becomes one gRPC call to the route's service, and its
 * response (or error) becomes JSON. It is a route mode of the exchange
 * handler rather than a filter because it must read gRPC trailers and
 * choose the HTTP status after the backend's head arrived, which the
 * plugin ABI cannot.
 *
 *   client body ─> x->req_up (collected up to max_body_bytes)
 *      ─ match + pt_tc_request_build ─> tc->up_req (one framed message) ─> upstream
 *   client/bidi streaming: client body ─> tc->body (complete lines only)
 *      ─ pt_tc_request_line_frame per line ─> tc->up_req (as each completes) ─> upstream
 *   upstream ─> tc->up_resp (gRPC frames + trailers)
 *      ─ unary: whole message + trailers ─> one JSON response
 *      ─ server streaming: each message ─> NDJSON line / SSE event / array element
 *        ─> tc->client_out (the exchange's response pipe, flushed as it goes)
 *
 * Backpressure: messages are taken from up_resp only while the client pipe
 * is below its high-water mark, so a slow client slows the backend's
 * HTTP/2 window rather than filling memory; the same way, request lines
 * are read only while up_req is below its mark. Streams end with the
 * backend's trailers (filtered, plus grpc-status/grpc-message) as the
 * client pipe's trailers, which the codecs send where they can. Errors
 * before the response head use the JSON error shape with the mapped HTTP
 * status; after it (a stream that already sent messages) an in-band error
 * object ends the body.
 */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/log.h"
#include "core/strutil.h"
#include "core/time.h"
#include "grpc/grpc.h"
#include "proxy/chain.h"
#include "proxy/proxy_int.h"
#include "transcode/reflect.h"
#include "transcode/route.h"
#include "transcode/route_live.h"
#include "upstream/pool.h"

/* The most one response message may take. */
#define TC_MAX_RESPONSE_MESSAGE (16u << 20)
/* A streamed request line's limit when the route's max_body_bytes is 0. */
#define TC_DEFAULT_LINE_LIMIT (32ull << 20)
/* Bytes of a streamed request kept to send again on another endpoint
 * (an attempt the backend cannot have seen); beyond them, no retry. */
#define TC_REPLAY_MAX (256u * 1024u)

static const char tc_key; /* the exchange data key of struct tc_call */

/* A step that may be asked to run again from inside itself (a pipe write
 * calling back): the outer call loops instead of recursing. */
struct rerun {
    bool running;
    bool again;
};

struct tc_call {
    struct pt_exchange *x;
    const struct pt_tc_route *r;
    struct pt_httprule_match m;
    const struct pt_tc_method *tm;
    /* Reflection routes: the hold that keeps r alive (route_live.h). */
    struct pt_tc_live_hold *live;
    struct pt_pipe *body_in;    /* the client's request body */
    struct pt_pipe *client_out; /* where the transcoded response goes */
    struct pt_pipe *orig_req_up;
    struct pt_pipe *orig_resp_up;
    struct pt_pipe up_req;  /* the gRPC request, framed */
    struct pt_pipe up_resp; /* the gRPC response */
    struct evbuffer *body;
    struct pt_headers meta; /* the backend's response head */
    struct pt_json_out unary;
    struct pt_json_out wire;          /* the framed request, kept for another attempt */
    struct pt_json_out frame;         /* streamed request: the line being framed */
    struct pt_str method;             /* the client's HTTP method */
    struct pt_headers client_headers; /* the client's request head */
    struct pt_headers up_headers;     /* the upstream call's */
    struct pt_str ct;                 /* the client's content-type */
    uint64_t timeout_ms;
    uint64_t line_limit; /* streamed request: bytes of one line */
    uint64_t lines;      /* streamed request: lines taken so far */
    size_t scanned;      /* streamed request: bytes of body searched for '\n' */
    enum pt_tc_stream_format format;
    uint32_t messages;
    int grpc;        /* final status, -1 until known */
    bool have_unary; /* unary: a response message arrived */
    bool upstream_done;
    bool started;      /* the response head went to the chain */
    bool ended;        /* client_out ended */
    bool pipes;        /* up_req/up_resp initialised */
    struct rerun pump; /* pump_response */
    bool raw;          /* a stream of google.api.HttpBody: bytes, no framing */
    bool stream_req;   /* client streaming: each line goes upstream when complete */
    bool req_ended;    /* stream_req: no more lines (end of body, or an error) */
    bool replay_lost;  /* stream_req: wire no longer holds every frame sent */
    struct rerun feed; /* pump_lines */
};

static void reply_or_stream_error(struct tc_call *tc, struct pt_str msg);
static void start_attempt(struct tc_call *tc, int avoid);

static struct tc_call *call_of(const struct pt_exchange *x)
{
    return pt_exchange_get_data(x, &tc_key);
}

/* The upstream stream reads the request's method and head when it starts;
 * everything else (the codec answering - "TE: trailers" -, the access
 * log) must see the client's again. */
static void client_view(struct tc_call *tc)
{
    if (!tc->method.len)
        return; /* the upstream head was never made */
    tc->x->req.method = tc->method;
    tc->x->req.headers = tc->client_headers;
}

/* --- replies ------------------------------------------------------------- */

static bool hop_or_internal(struct pt_str n)
{
    static const char *const skip[] = {
        "content-type", "content-length",    "te",      "trailer",          "connection",
        "keep-alive",   "transfer-encoding", "upgrade", "proxy-connection", "date",
        "server"};
    if (n.len >= 5 && memcmp(n.ptr, "grpc-", 5) == 0)
        return true;
    if (n.len && n.ptr[0] == ':')
        return true;
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (pt_str_eq(n, pt_str_from_cstr(skip[i])))
            return true;
    return false;
}

/* The fields of src (may be NULL) that may reach the client, added to h.
 * Status: 0 or PT_ERR_LIMIT. */
static int add_allowed(const struct tc_call *tc, struct pt_headers *h, const struct pt_headers *src)
{
    if (!src || !src->v)
        return 0;
    for (uint32_t i = 0; i < src->n; i++) {
        struct pt_str n = src->v[i].name;
        if (hop_or_internal(n) || (tc->r->status_key.len && pt_str_eq(n, tc->r->status_key)))
            continue;
        if (pt_headers_add_ref(h, n, src->v[i].value) != 0)
            return PT_ERR_LIMIT;
    }
    return 0;
}

/* Backend metadata (head, then trailers) as response headers. */
static int add_metadata(struct tc_call *tc, struct pt_headers *h, bool trailers)
{
    if (add_allowed(tc, h, &tc->meta) != 0)
        return PT_ERR_LIMIT;
    return add_allowed(tc, h, trailers && tc->pipes ? tc->up_resp.trailers : NULL);
}

/*
 * The HTTP trailers of a streamed response that ends with gRPC status
 * code: the backend's trailing metadata under the rules of add_allowed,
 * then grpc-status and grpc-message (msg percent-encoded again). The
 * codecs send them where the client can take them (HTTP/2; HTTP/1.1
 * chunked with "TE: trailers"). Pointer: in the arena, or NULL when it is
 * full (the stream then ends without trailers).
 */
static struct pt_headers *stream_trailers(struct tc_call *tc, int code, struct pt_str msg)
{
    struct pt_exchange *x = tc->x;
    struct pt_headers *h = pt_arena_alloc(&x->arena, sizeof(*h));
    char *num = pt_arena_alloc(&x->arena, 12);
    if (!h || !num)
        return NULL;
    pt_headers_init(h, &x->arena, 0);
    if (add_allowed(tc, h, tc->pipes ? tc->up_resp.trailers : NULL) != 0)
        return NULL;
    int n = snprintf(num, 12, "%d", code);
    if (pt_headers_add_ref(h, PT_STR("grpc-status"), (struct pt_str){num, (size_t)n}) != 0)
        return NULL;
    if (msg.len) {
        size_t cap = msg.len * 3 + 1;
        char *enc = pt_arena_alloc(&x->arena, cap);
        if (!enc)
            return NULL;
        size_t len = pt_grpc_message_encode(msg, enc, cap);
        if (pt_headers_add_ref(h, PT_STR("grpc-message"), (struct pt_str){enc, len}) != 0)
            return NULL;
    }
    return h;
}

/* Hand a response head (and, when body is given, the whole body) to the
 * chain. Status: 0 or PT_ERR_LIMIT. */
static int respond(struct tc_call *tc, int status, struct pt_str ct, const struct pt_json_out *body,
                   bool trailers)
{
    struct pt_exchange *x = tc->x;
    pt_headers_init(&x->resp.headers, &x->arena, 0);
    x->resp.status = status;
    x->resp.has_body = true;
    x->resp.content_length = -1;
    if (pt_headers_add_ref(&x->resp.headers, PT_STR("content-type"), ct) != 0 ||
        add_metadata(tc, &x->resp.headers, trailers) != 0)
        return PT_ERR_LIMIT;
    if (body) {
        char *cl = pt_arena_alloc(&x->arena, 24);
        if (!cl)
            return PT_ERR_LIMIT;
        int n = snprintf(cl, 24, "%zu", body->len);
        if (pt_headers_add_ref(&x->resp.headers, PT_STR("content-length"),
                               (struct pt_str){cl, (size_t)n}) != 0)
            return PT_ERR_LIMIT;
        x->resp.content_length = (int64_t)body->len;
        tc->ended = true;
        if (body->len)
            pt_pipe_write(tc->client_out, body->data, body->len);
        pt_pipe_end(tc->client_out, NULL);
    }
    tc->started = true;
    pt_chain_run_response(x);
    return 0;
}

/* The JSON error shape before any response head: status from the gRPC code. */
static void reply_grpc_error(struct tc_call *tc, int code, struct pt_str msg, struct pt_str details,
                             bool with_metadata)
{
    struct pt_exchange *x = tc->x;
    struct pt_json_out out = {0};
    pt_tc_error_json(tc->r, code, msg, details, &out);
    x->grpc_status = code;
    int rc = PT_ERR_LIMIT;
    if (with_metadata) {
        rc = respond(tc, pt_tc_http_status(code), PT_STR("application/json"), &out, true);
    } else {
        struct pt_str body = {0};
        if (pt_arena_str(&x->arena, (struct pt_str){out.data, out.len}, &body) == 0)
            rc = pt_proxy_local_reply(x, pt_tc_http_status(code), PT_STR("application/json"), body,
                                      NULL);
    }
    pt_json_out_fini(&out);
    if (rc != 0)
        pt_exchange_handler->reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
}

int pt_proxy_transcode_reply_error(struct pt_exchange *x, int err, struct pt_str text,
                                   const struct pt_headers *extra)
{
    struct tc_call *tc = call_of(x);
    struct pt_json_out out = {0};
    /* A REST path no rule matches is NOT_FOUND, not UNIMPLEMENTED. */
    int code = err == PT_ERR_NO_ROUTE ? 5 : pt_err_grpc_status(err);
    pt_tc_error_json(x->route ? x->route->transcode : NULL, code, text, PT_STR_NULL, &out);
    struct pt_str body = {0};
    int rc = pt_arena_str(&x->arena, (struct pt_str){out.data, out.len}, &body);
    pt_json_out_fini(&out);
    if (rc != 0)
        return PT_ERR_LIMIT;
    if (tc)
        tc->grpc = code;
    return pt_proxy_local_reply(x, pt_err_http_status(err), PT_STR("application/json"), body,
                                extra);
}

/* A stream that already sent messages ends with an error object. */
static void stream_error(struct tc_call *tc, int code, struct pt_str msg, struct pt_str details)
{
    if (tc->ended)
        return;
    if (tc->raw) {
        /* Raw HttpBody bytes have no room for an error object: the client
         * sees the stream reset instead of a complete body. */
        tc->ended = true;
        tc->x->grpc_status = code;
        tc->x->down->reset(tc->x, PT_ERR_UPSTREAM_RESET);
        return;
    }
    struct pt_json_out e = {0}, out = {0};
    pt_tc_error_json(tc->r, code, msg, details, &e);
    switch (tc->format) {
    case PT_TC_STREAM_NDJSON:
        pt_tc_out_append(&out, "{\"error\":", 9);
        pt_tc_out_append(&out, e.data, e.len);
        pt_tc_out_append(&out, "}\n", 2);
        break;
    case PT_TC_STREAM_SSE:
        pt_tc_out_append(&out, "event: error\ndata: ", 19);
        pt_tc_out_append(&out, e.data, e.len);
        pt_tc_out_append(&out, "\n\n", 2);
        break;
    case PT_TC_STREAM_JSON_ARRAY:
        if (tc->messages)
            pt_tc_out_append(&out, ",", 1);
        pt_tc_out_append(&out, "{\"error\":", 9);
        pt_tc_out_append(&out, e.data, e.len);
        pt_tc_out_append(&out, "}]", 2);
        break;
    }
    tc->x->grpc_status = code;
    tc->ended = true; /* first: the writes below may re-enter through on_client_drain */
    pt_pipe_write(tc->client_out, out.data, out.len);
    pt_pipe_end(tc->client_out, stream_trailers(tc, code, msg));
    pt_json_out_fini(&e);
    pt_json_out_fini(&out);
}

bool pt_proxy_transcode_abort(struct pt_exchange *x, int err)
{
    struct tc_call *tc = call_of(x);
    if (!tc || !tc->started || tc->ended || !tc->tm->m->server_streaming)
        return false;
    stream_error(tc, pt_err_grpc_status(err), pt_str_from_cstr(pt_err_text(err)), PT_STR_NULL);
    return true;
}

/* --- the response -------------------------------------------------------- */

static struct pt_str stream_ct(enum pt_tc_stream_format f)
{
    switch (f) {
    case PT_TC_STREAM_SSE:
        return PT_STR("text/event-stream");
    case PT_TC_STREAM_JSON_ARRAY:
        return PT_STR("application/json");
    default:
        return PT_STR("application/x-ndjson");
    }
}

static void stream_start(struct tc_call *tc)
{
    if (tc->format == PT_TC_STREAM_JSON_ARRAY)
        pt_pipe_write(tc->client_out, "[", 1);
    if (respond(tc, 200, stream_ct(tc->format), NULL, false) != 0)
        pt_exchange_handler->reply_error(tc->x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
}

static void cancel_call(struct tc_call *tc)
{
    struct pt_exchange *x = tc->x;
    if (x->up) {
        x->up->cancel(x->up);
        x->up = NULL;
        pt_up_attempt_end(x, PT_LB_ABANDONED);
        pt_proxy_circuit_abandon(x);
    }
}

/* One google.api.HttpBody message of a server stream: its data as it is;
 * the first one's content type is the response's. */
static void stream_http_body(struct tc_call *tc, struct pt_str ct, struct pt_str data)
{
    struct pt_exchange *x = tc->x;
    if (!tc->started) {
        struct pt_str ctc = PT_STR("application/octet-stream");
        if (ct.len && pt_arena_str(&x->arena, ct, &ctc) != 0)
            ctc = PT_STR("application/octet-stream");
        tc->raw = true;
        if (respond(tc, 200, ctc, NULL, false) != 0) {
            pt_exchange_handler->reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
            return;
        }
    }
    tc->messages++;
    if (!tc->ended && data.len)
        pt_pipe_write(tc->client_out, data.ptr, data.len);
}

/* One message of a server stream. Status: 0, or -1 when the call ended. */
static int stream_message(struct tc_call *tc, const uint8_t *msg, size_t len)
{
    struct pt_str hct, hdata;
    if (pt_tc_response_http_body(tc->r, tc->m.method, &tc->m.response_field, msg, len, &hct,
                                 &hdata)) {
        stream_http_body(tc, hct, hdata);
        return 0;
    }
    struct pt_json_out j = {0};
    struct pt_tc_error err;
    const char *pre = tc->format == PT_TC_STREAM_SSE                            ? "data: "
                      : (tc->format == PT_TC_STREAM_JSON_ARRAY && tc->messages) ? ","
                                                                                : "";
    pt_tc_out_append(&j, pre, strlen(pre));
    if (pt_tc_response_json(tc->r, tc->m.method, &tc->m.response_field, msg, len, &j, &err) != 0) {
        pt_json_out_fini(&j);
        reply_or_stream_error(tc, pt_str_from_cstr(err.message));
        return -1;
    }
    if (tc->format == PT_TC_STREAM_SSE)
        pt_tc_out_append(&j, "\n\n", 2);
    else if (tc->format == PT_TC_STREAM_NDJSON)
        pt_tc_out_append(&j, "\n", 1);
    if (!tc->started)
        stream_start(tc);
    tc->messages++;
    if (!tc->ended)
        pt_pipe_write(tc->client_out, j.data, j.len);
    pt_json_out_fini(&j);
    return 0;
}

static int status_override(struct tc_call *tc)
{
    int st = tc->tm->success_status[tc->m.binding];
    const struct pt_headers *src[2] = {&tc->meta, tc->up_resp.trailers};
    for (int k = 0; tc->r->status_key.len && k < 2; k++) {
        struct pt_str v;
        uint64_t n;
        if (src[k] && src[k]->v && pt_headers_find(src[k], tc->r->status_key, &v) &&
            pt_str_to_u64(v, &n) == 0 && n >= 200 && n <= 599)
            st = (int)n;
    }
    return st ? st : 200;
}

/* The backend is done and every message was taken: end the response. */
static void finish(struct tc_call *tc)
{
    struct pt_exchange *x = tc->x;
    const struct pt_headers *t = tc->up_resp.trailers ? tc->up_resp.trailers : &tc->meta;
    struct pt_str v = PT_STR_NULL, msg = PT_STR_NULL, det = PT_STR_NULL;
    uint64_t code = 2;
    if (t->v && pt_headers_find(t, PT_STR("grpc-status"), &v)) {
        if (pt_str_to_u64(v, &code) != 0 || code > 16)
            code = 2;
    } else {
        msg = PT_STR("the backend sent no grpc-status");
    }
    struct pt_str m;
    if (t->v && pt_headers_find(t, PT_STR("grpc-message"), &m)) {
        char *buf = pt_arena_alloc(&x->arena, m.len + 1);
        if (buf)
            msg = (struct pt_str){buf, pt_tc_grpc_message_decode(m, buf, m.len)};
    }
    if (t->v)
        pt_headers_find(t, PT_STR("grpc-status-details-bin"), &det);
    tc->grpc = (int)code;
    x->grpc_status = (int)code;
    pt_proxy_circuit_done(x, 0, 200, (int)code);
    if (tc->tm->m->server_streaming) {
        if (code != 0 && tc->started) {
            stream_error(tc, (int)code, msg, det);
            return;
        }
        if (code != 0) {
            reply_grpc_error(tc, (int)code, msg, det, true);
            return;
        }
        if (!tc->started)
            stream_start(tc);
        if (!tc->ended) {
            tc->ended = true;
            if (tc->format == PT_TC_STREAM_JSON_ARRAY && !tc->raw)
                pt_pipe_write(tc->client_out, "]", 1);
            pt_pipe_end(tc->client_out, stream_trailers(tc, 0, msg));
        }
        return;
    }
    if (code != 0) {
        reply_grpc_error(tc, (int)code, msg, det, true);
        return;
    }
    if (!tc->have_unary) {
        reply_grpc_error(tc, 13, PT_STR("the backend sent no response message"), PT_STR_NULL,
                         false);
        return;
    }
    struct pt_json_out j = {0};
    struct pt_tc_error err;
    struct pt_str hct, hdata;
    if (pt_tc_response_http_body(tc->r, tc->m.method, &tc->m.response_field,
                                 (const uint8_t *)tc->unary.data, tc->unary.len, &hct, &hdata)) {
        /* google.api.HttpBody: its bytes and content type as they are. */
        struct pt_str ctc = PT_STR("application/octet-stream");
        if (hct.len && pt_arena_str(&x->arena, hct, &ctc) != 0)
            ctc = PT_STR("application/octet-stream");
        pt_tc_out_append(&j, hdata.ptr, hdata.len);
        if (respond(tc, status_override(tc), ctc, &j, true) != 0)
            pt_exchange_handler->reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
        pt_json_out_fini(&j);
        return;
    }
    if (pt_tc_response_json(tc->r, tc->m.method, &tc->m.response_field,
                            (const uint8_t *)tc->unary.data, tc->unary.len, &j, &err) != 0) {
        pt_json_out_fini(&j);
        reply_grpc_error(tc, 13, pt_str_from_cstr(err.message), PT_STR_NULL, false);
        return;
    }
    if (respond(tc, status_override(tc), PT_STR("application/json"), &j, true) != 0)
        pt_exchange_handler->reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
    pt_json_out_fini(&j);
}

static void reply_or_stream_error(struct tc_call *tc, struct pt_str msg)
{
    cancel_call(tc);
    if (tc->started)
        stream_error(tc, 13, msg, PT_STR_NULL);
    else
        reply_grpc_error(tc, 13, msg, PT_STR_NULL, false);
}

/* Take whole messages out of up_resp while the client keeps up. */
static void pump_response_once(struct tc_call *tc);

/* Run once(tc), again as often as it was asked to from inside itself. */
static void run_rerun(struct tc_call *tc, struct rerun *r, void (*once)(struct tc_call *))
{
    if (r->running) {
        r->again = true;
        return;
    }
    r->running = true;
    do {
        r->again = false;
        once(tc);
    } while (r->again && !tc->x->finished);
    r->running = false;
}

static void pump_response(struct tc_call *tc)
{
    /* Writing to the client may call back (on_client_drain). */
    run_rerun(tc, &tc->pump, pump_response_once);
}

static void pump_response_once(struct tc_call *tc)
{
    struct pt_exchange *x = tc->x;
    if (x->finished || x->resp_local || tc->ended)
        return;
    for (;;) {
        if (tc->started && pt_pipe_full(tc->client_out))
            return; /* on_client_drain continues */
        size_t avail = pt_pipe_len(&tc->up_resp);
        uint8_t hdr[5];
        if (avail < 5 || pt_pipe_peek(&tc->up_resp, hdr, 5) != 5)
            break;
        size_t len =
            ((size_t)hdr[1] << 24) | ((size_t)hdr[2] << 16) | ((size_t)hdr[3] << 8) | hdr[4];
        if (hdr[0] != 0) {
            reply_or_stream_error(tc, PT_STR("compressed messages are not supported"));
            return;
        }
        if (avail - 5 < len)
            break;
        uint8_t *msg = malloc(len + 5);
        if (!msg)
            pt_abort_oom(len + 5);
        pt_pipe_peek(&tc->up_resp, msg, len + 5);
        pt_pipe_drain(&tc->up_resp, len + 5);
        int rc = 0;
        if (tc->tm->m->server_streaming) {
            rc = stream_message(tc, msg + 5, len);
        } else if (tc->have_unary) {
            cancel_call(tc);
            reply_grpc_error(tc, 13, PT_STR("the backend sent more than one response message"),
                             PT_STR_NULL, false);
            rc = -1;
        } else {
            tc->have_unary = true;
            pt_tc_out_append(&tc->unary, msg + 5, len);
        }
        free(msg);
        if (rc != 0 || x->finished || x->resp_local || tc->ended)
            return;
    }
    if (!tc->upstream_done)
        return;
    if (pt_pipe_len(&tc->up_resp) == 0)
        finish(tc);
    else
        reply_or_stream_error(tc, PT_STR("the backend's response ended inside a message"));
}

static void on_up_data(struct pt_pipe *p, void *consumer)
{
    (void)p;
    pump_response(consumer);
}

static void on_client_drain(struct pt_pipe *p, size_t n, void *producer)
{
    (void)p;
    (void)n;
    struct tc_call *tc = producer;
    if (!pt_pipe_full(tc->client_out))
        pump_response(tc);
}

static void on_response_head(struct pt_exchange *x)
{
    struct tc_call *tc = call_of(x);
    client_view(tc);
    if (x->resp.status != 200) {
        int code = pt_tc_grpc_code_of_http(x->resp.status);
        char text[64];
        int n = snprintf(text, sizeof(text), "the backend answered HTTP %d", x->resp.status);
        pt_proxy_circuit_done(x, 0, x->resp.status, -1);
        cancel_call(tc);
        reply_grpc_error(tc, code, (struct pt_str){text, (size_t)n}, PT_STR_NULL, false);
        return;
    }
    tc->meta = x->resp.headers;
    pt_headers_init(&x->resp.headers, &x->arena, 0);
    x->resp.status = 0;
}

static void on_closed(struct pt_exchange *x, int err, unsigned flags)
{
    struct tc_call *tc = call_of(x);
    client_view(tc);
    if (err) {
        pt_up_attempt_end(x, PT_LB_FAILED);
        pt_proxy_circuit_done(x, err, 0, -1);
        if (x->finished || x->resp_local || tc->ended)
            return;
        if (tc->started) {
            stream_error(tc, (flags & PT_UP_PEER_CANCEL) ? 1 : pt_err_grpc_status(err),
                         pt_str_from_cstr(pt_err_text(err)), PT_STR_NULL);
            return;
        }
        /* The backend cannot have seen the call (connect failure, refused
         * stream): another endpoint may take it, up to 3 attempts. */
        uint32_t n = x->service->nendpoints < 3 ? x->service->nendpoints : 3;
        if ((flags & PT_UP_RETRYABLE) && !tc->replay_lost && x->attempts < (n > 1 ? n : 1) &&
            !(x->deadline_ns && pt_time_mono_ns() >= x->deadline_ns)) {
            start_attempt(tc, x->endpoint);
            return;
        }
        pt_exchange_handler->reply_error(x, err, PT_STR_NULL);
        return;
    }
    pt_up_attempt_end(x, PT_LB_DONE);
    x->deadline_ns = 0; /* what is left is the client reading */
    tc->upstream_done = true;
    if (!tc->up_resp.eof)
        pt_pipe_end(&tc->up_resp, NULL);
    pump_response(tc);
}

static const struct pt_upstream_events tc_events = {
    .on_response_head = on_response_head,
    .on_closed = on_closed,
};

/* --- the request --------------------------------------------------------- */

/* The upstream call's head; content_length -1 for a streamed request. */
static int rewrite_head(struct tc_call *tc, int64_t content_length)
{
    struct pt_exchange *x = tc->x;
    struct pt_headers h;
    pt_headers_init(&h, &x->arena, 0);
    for (size_t i = 0; i < tc->r->nforward_headers; i++) {
        struct pt_str name = tc->r->forward_headers[i];
        for (int k = pt_headers_index(&x->req.headers, name, 0); k >= 0;
             k = pt_headers_index(&x->req.headers, name, (uint32_t)k + 1))
            if (pt_headers_add_ref(&h, name, x->req.headers.v[k].value) != 0)
                return PT_ERR_LIMIT;
    }
    if (pt_headers_add_ref(&h, PT_STR("content-type"), PT_STR("application/grpc")) ||
        pt_headers_add_ref(&h, PT_STR("te"), PT_STR("trailers")))
        return PT_ERR_LIMIT;
    if (tc->timeout_ms) {
        char *buf = pt_arena_alloc(&x->arena, 16);
        if (!buf)
            return PT_ERR_LIMIT;
        size_t n = pt_grpc_timeout_format(tc->timeout_ms * 1000000ull, buf);
        if (pt_headers_add_ref(&h, PT_STR("grpc-timeout"), (struct pt_str){buf, n}))
            return PT_ERR_LIMIT;
    }
    tc->client_headers = x->req.headers;
    tc->up_headers = h;
    x->req.headers = h;
    tc->method = x->req.method;
    x->forward_path = tc->tm->grpc_path;
    x->req.has_body = true;
    x->req.content_length = content_length;
    if (!x->req.authority.len)
        x->req.authority = x->upstream_addr;
    return 0;
}

static void on_up_req_drain(struct pt_pipe *p, size_t n, void *producer);

/* One attempt: the framed request (tc->wire: all of it, or for a streamed
 * request the frames sent so far) to an endpoint other than avoid (-1:
 * any). */
static void start_attempt(struct tc_call *tc, int avoid)
{
    struct pt_exchange *x = tc->x;
    if (tc->pipes) {
        pt_pipe_fini(&tc->up_req);
        pt_pipe_fini(&tc->up_resp);
    }
    pt_pipe_init(&tc->up_req, PT_PIPE_HIWAT_DEFAULT);
    pt_pipe_init(&tc->up_resp, PT_PIPE_HIWAT_DEFAULT);
    tc->pipes = true;
    pt_pipe_set_limit(&tc->up_resp, TC_MAX_RESPONSE_MESSAGE, true);
    if (tc->wire.len)
        pt_pipe_write(&tc->up_req, tc->wire.data, tc->wire.len);
    if (!tc->stream_req || tc->req_ended)
        pt_pipe_end(&tc->up_req, NULL);
    if (tc->stream_req)
        pt_pipe_set_producer(&tc->up_req, on_up_req_drain, tc);
    x->req_up = &tc->up_req;
    x->resp_up = &tc->up_resp;
    pt_pipe_set_consumer(&tc->up_resp, on_up_data, tc);
    pt_pipe_set_producer(tc->client_out, on_client_drain, tc);
    /* The upstream stream reads the method and head when it starts; once
     * it answered or ended, the client's are back (client_view). */
    x->req.method = PT_STR("POST");
    x->req.headers = tc->up_headers;

    int open = pt_proxy_circuit_admit(x);
    if (open < 0) {
        pt_exchange_handler->reply_error(x, open, PT_STR_NULL);
        return;
    }
    int chosen = -1;
    x->attempts++;
    int rc = pt_up_forward(x->worker, x->service, x, &tc_events, avoid, &chosen);
    x->endpoint = chosen;
    if (rc != 0) {
        client_view(tc);
        pt_proxy_circuit_abandon(x);
        pt_exchange_handler->reply_error(x, rc, PT_STR_NULL);
        return;
    }
    pt_proxy_circuit_chosen(x, chosen);
}

static void send_call(struct tc_call *tc)
{
    struct pt_exchange *x = tc->x;
    size_t blen = evbuffer_get_length(tc->body);
    struct pt_str body = {(const char *)evbuffer_pullup(tc->body, -1), blen};
    struct pt_json_out wire = {0};
    struct pt_tc_error err;
    memset(&err, 0, sizeof(err));
    struct pt_str ct = PT_STR_NULL;
    pt_headers_find(&x->req.headers, PT_STR("content-type"), &ct);
    if (pt_tc_request_frames(tc->r, &tc->m, body, ct, &wire, &err) != 0) {
        pt_json_out_fini(&wire);
        struct pt_str msg = pt_str_from_cstr(err.message);
        if (err.http_status == 413)
            pt_proxy_transcode_reply_error(x, PT_ERR_BODY_TOO_LARGE, msg, NULL);
        else
            pt_proxy_transcode_reply_error(x, PT_ERR_INVALID, msg, NULL);
        return;
    }
    if (rewrite_head(tc, (int64_t)wire.len) != 0) {
        pt_json_out_fini(&wire);
        pt_exchange_handler->reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
        return;
    }
    tc->wire = wire;
    start_attempt(tc, -1);
}

/* --- a streamed request (client and bidi streaming) ---------------------- */

/* A streamed line that cannot be sent: the call (if it started) is
 * cancelled, and the client gets the error - the JSON error response with
 * http_status (400, 413) while no response head went out, else the
 * in-band error object. */
static void line_error(struct tc_call *tc, int http_status, struct pt_str msg)
{
    struct pt_exchange *x = tc->x;
    tc->req_ended = true;
    pt_pipe_set_consumer(tc->body_in, NULL, NULL);
    cancel_call(tc);
    client_view(tc);
    if (tc->started) {
        stream_error(tc, http_status == 413 ? 8 : 3, msg, PT_STR_NULL);
        return;
    }
    if (tc->ended)
        return;
    tc->ended = true;
    if (pt_proxy_transcode_reply_error(
            x, http_status == 413 ? PT_ERR_BODY_TOO_LARGE : PT_ERR_INVALID, msg, NULL) != 0)
        pt_exchange_handler->reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
}

/* Start the call of a streamed request: with its first message, or at the
 * end of a body without any. Status: 0, or -1 when the exchange got a
 * reply instead. */
static int begin_call(struct tc_call *tc)
{
    struct pt_exchange *x = tc->x;
    if (rewrite_head(tc, -1) != 0) {
        pt_exchange_handler->reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
        return -1;
    }
    start_attempt(tc, -1);
    return x->finished || x->resp_local ? -1 : 0;
}

/* One framed message upstream (kept for another attempt while small).
 * Status: 0, or -1 when the exchange is over. */
static int send_frame(struct tc_call *tc, const char *data, size_t len)
{
    if (!tc->pipes && begin_call(tc) != 0)
        return -1;
    if (!tc->replay_lost) {
        if (tc->wire.len + len <= TC_REPLAY_MAX) {
            pt_tc_out_append(&tc->wire, data, len);
        } else {
            tc->replay_lost = true;
            pt_json_out_fini(&tc->wire);
            memset(&tc->wire, 0, sizeof(tc->wire));
        }
    }
    pt_pipe_write(&tc->up_req, data, len);
    return 0;
}

/* One line (without its '\n'). Status: 0, or -1 when the stream is over. */
static int take_line(struct tc_call *tc, struct pt_str line)
{
    tc->lines++;
    if (line.len > tc->line_limit) {
        char text[96];
        int n = snprintf(text, sizeof(text), "line %llu: longer than the limit of %llu bytes",
                         (unsigned long long)tc->lines, (unsigned long long)tc->line_limit);
        line_error(tc, 413, (struct pt_str){text, (size_t)n});
        return -1;
    }
    struct pt_tc_error err;
    memset(&err, 0, sizeof(err));
    tc->frame.len = 0;
    if (pt_tc_request_line_frame(tc->r, &tc->m, line, tc->lines, tc->ct, &tc->frame, &err) != 0) {
        line_error(tc, err.http_status == 413 ? 413 : 400, pt_str_from_cstr(err.message));
        return -1;
    }
    if (tc->frame.len && send_frame(tc, tc->frame.data, tc->frame.len) != 0)
        return -1;
    return 0;
}

/* Move complete lines from the client's body upstream while the upstream
 * takes them: the body is read only when no complete line is waiting, so
 * what is held is at most one read of the pipe plus one partial line. */
static void pump_lines_once(struct tc_call *tc)
{
    struct pt_exchange *x = tc->x;
    for (;;) {
        if (x->finished || x->resp_local || tc->ended || tc->req_ended || tc->upstream_done)
            return;
        if (tc->pipes && pt_pipe_full(&tc->up_req))
            return; /* on_up_req_drain continues */
        size_t have = evbuffer_get_length(tc->body);
        if (tc->scanned < have) {
            struct evbuffer_ptr from;
            evbuffer_ptr_set(tc->body, &from, tc->scanned, EVBUFFER_PTR_SET);
            struct evbuffer_ptr nl = evbuffer_search(tc->body, "\n", 1, &from);
            if (nl.pos >= 0) {
                size_t len = (size_t)nl.pos;
                const char *p =
                    len > tc->line_limit ? NULL : (const char *)evbuffer_pullup(tc->body, len + 1);
                /* After an error the stream is over: body stays as it is. */
                if (take_line(tc, (struct pt_str){p ? p : "", p ? len : tc->line_limit + 1}) != 0)
                    return;
                evbuffer_drain(tc->body, len + 1);
                tc->scanned = 0;
                continue;
            }
            tc->scanned = have;
        }
        if (have > tc->line_limit) {
            take_line(tc, (struct pt_str){"", (size_t)tc->line_limit + 1});
            return;
        }
        size_t n = pt_pipe_len(tc->body_in);
        if (n) {
            pt_pipe_read_into(tc->body_in, tc->body, n);
            continue;
        }
        if (!tc->body_in->eof)
            return; /* on_body_data continues */
        /* The end of the body: what is left is the last line. */
        if (have) {
            const char *p = (const char *)evbuffer_pullup(tc->body, -1);
            if (take_line(tc, (struct pt_str){p, have}) != 0)
                return;
            evbuffer_drain(tc->body, have);
            tc->scanned = 0;
        }
        tc->req_ended = true;
        pt_pipe_set_consumer(tc->body_in, NULL, NULL);
        if (!tc->pipes) {
            begin_call(tc); /* no message at all: an empty stream */
            return;
        }
        pt_pipe_end(&tc->up_req, NULL);
        return;
    }
}

static void pump_lines(struct tc_call *tc)
{
    /* Writing upstream may call back (on_up_req_drain). */
    run_rerun(tc, &tc->feed, pump_lines_once);
}

static void on_up_req_drain(struct pt_pipe *p, size_t n, void *producer)
{
    (void)n;
    struct tc_call *tc = producer;
    if (!pt_pipe_full(p))
        pump_lines(tc);
}

/* --- a buffered request -------------------------------------------------- */

static void pump_body(struct tc_call *tc)
{
    struct pt_exchange *x = tc->x;
    if (tc->stream_req) {
        pump_lines(tc);
        return;
    }
    if (x->finished || x->resp_local || tc->pipes)
        return;
    size_t n = pt_pipe_len(tc->body_in);
    if (n)
        pt_pipe_read_into(tc->body_in, tc->body, n);
    uint64_t max = x->route->max_body_bytes;
    if (max && evbuffer_get_length(tc->body) > max) {
        pt_pipe_set_consumer(tc->body_in, NULL, NULL);
        pt_exchange_handler->reply_error(x, PT_ERR_BODY_TOO_LARGE, PT_STR_NULL);
        return;
    }
    if (!tc->body_in->eof)
        return;
    pt_pipe_set_consumer(tc->body_in, NULL, NULL);
    send_call(tc);
}

static void on_body_data(struct pt_pipe *p, void *consumer)
{
    (void)p;
    pump_body(consumer);
}

static bool accepts_sse(const struct pt_exchange *x)
{
    for (int i = pt_headers_index(&x->req.headers, PT_STR("accept"), 0); i >= 0;
         i = pt_headers_index(&x->req.headers, PT_STR("accept"), (uint32_t)i + 1)) {
        struct pt_str v = x->req.headers.v[i].value;
        for (size_t k = 0; k + 17 <= v.len; k++)
            if (strncasecmp(v.ptr + k, "text/event-stream", 17) == 0)
                return true;
    }
    return false;
}

void pt_proxy_transcode_start(struct pt_exchange *x, uint64_t timeout_ms)
{
    const struct pt_tc_route *r = x->route->transcode;
    struct tc_call *tc = pt_arena_alloc(&x->arena, sizeof(*tc));
    if (!tc || pt_exchange_set_data(x, &tc_key, tc) != 0) {
        pt_exchange_handler->reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
        return;
    }
    memset(tc, 0, sizeof(*tc));
    tc->x = x;
    tc->grpc = -1;
    tc->timeout_ms = timeout_ms;
    tc->orig_req_up = x->req_up;
    tc->orig_resp_up = x->resp_up;
    tc->body_in = x->req_up;
    tc->client_out = x->resp_up;
    if (r->live) {
        /* Schema from reflection: the route compiled from the current pool,
         * held until pt_proxy_transcode_fini (route_live.h). */
        const char *why = NULL;
        r = pt_tc_live_acquire(r->live, x->worker->id, &tc->live, &why);
        if (!r) {
            /* Never fetched: say why the last attempt failed (the
             * registry's lock, on this error path only). */
            char text[640];
            struct pt_tc_reflect_status st;
            if (x->service &&
                pt_tc_reflect_status_get(pt_tc_reflect_registry_default(), x->service->name, &st) ==
                    0 &&
                st.generation == 0 && st.last_error[0]) {
                snprintf(text, sizeof(text), "%s; last attempt: %s", why, st.last_error);
                why = text;
            }
            pt_proxy_transcode_reply_error(x, PT_ERR_AGAIN, pt_str_from_cstr(why), NULL);
            return;
        }
    }
    tc->r = r;
    tc->format = accepts_sse(x) ? PT_TC_STREAM_SSE : r->stream_format;

    /* The path the rules see: the forwarded one (strip_prefix applied). */
    struct pt_str path = x->forward_path;
    const char *q = memchr(path.ptr, '?', path.len);
    if (q)
        path.len = (size_t)(q - path.ptr);
    struct pt_httprule_request hr = {x->req.method, path, x->req.query};
    int rc = pt_httprule_table_match(r->table, &hr, &x->arena, &tc->m);
    if (rc == PT_ERR_METHOD_NOT_ALLOWED) {
        size_t len = 0;
        for (size_t i = 0; i < tc->m.nallow; i++)
            len += tc->m.allow[i].len + 2;
        char *allow = pt_arena_alloc(&x->arena, len + 1);
        struct pt_headers extra;
        pt_headers_init(&extra, &x->arena, 0);
        size_t k = 0;
        for (size_t i = 0; allow && i < tc->m.nallow; i++) {
            if (i) {
                memcpy(allow + k, ", ", 2);
                k += 2;
            }
            memcpy(allow + k, tc->m.allow[i].ptr, tc->m.allow[i].len);
            k += tc->m.allow[i].len;
        }
        if (allow)
            pt_headers_add_ref(&extra, PT_STR("allow"), (struct pt_str){allow, k});
        pt_proxy_transcode_reply_error(x, rc, PT_STR("method not allowed"), &extra);
        return;
    }
    if (rc != 0) {
        struct pt_str why = rc == PT_ERR_NO_ROUTE
                                ? PT_STR("no method matches this path")
                                : pt_str_from_cstr(tc->m.reason ? tc->m.reason : "bad path");
        pt_proxy_transcode_reply_error(x, rc == PT_ERR_NO_ROUTE ? rc : PT_ERR_INVALID, why, NULL);
        return;
    }
    tc->tm = &r->methods[tc->m.method];
    tc->body = evbuffer_new();
    if (!tc->body)
        pt_abort_oom(64);
    if (!x->req.has_body) {
        send_call(tc);
        return;
    }
    if (tc->tm->m->client_streaming) {
        /* NDJSON lines go upstream as they complete: each line is limited
         * instead of the whole body (as gRPC messages are). */
        tc->stream_req = true;
        tc->line_limit =
            x->route->max_body_bytes ? x->route->max_body_bytes : TC_DEFAULT_LINE_LIMIT;
        pt_pipe_set_limit(&x->req_body, 0, false);
        pt_headers_find(&x->req.headers, PT_STR("content-type"), &tc->ct);
    }
    pt_pipe_set_consumer(tc->body_in, on_body_data, tc);
    pump_body(tc);
}

void pt_proxy_transcode_fini(struct pt_exchange *x)
{
    struct tc_call *tc = call_of(x);
    if (!tc)
        return;
    pt_exchange_set_data(x, &tc_key, NULL);
    client_view(tc); /* the access log shows the client's request */
    if (tc->body_in)
        pt_pipe_set_consumer(tc->body_in, NULL, NULL);
    if (tc->client_out)
        pt_pipe_set_producer(tc->client_out, NULL, NULL);
    x->req_up = tc->orig_req_up;
    x->resp_up = tc->orig_resp_up;
    if (tc->pipes) {
        pt_pipe_fini(&tc->up_req);
        pt_pipe_fini(&tc->up_resp);
    }
    if (tc->body)
        evbuffer_free(tc->body);
    pt_json_out_fini(&tc->unary);
    pt_json_out_fini(&tc->wire);
    pt_json_out_fini(&tc->frame);
    pt_tc_live_release(tc->live); /* last: tc->r may be its route */
}
