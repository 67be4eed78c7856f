/*
 * The exchange handler: what happens to a request between the codec that
 * received it and the upstream that answers it. See docs/life-of-a-request.md.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/snapshot.h"
#include "core/error.h"
#include "core/log.h"
#include "core/strutil.h"
#include "core/time.h"
#include "grpc/grpc.h"
#include "http/path.h"
#include "proxy/chain.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "proxy/select.h"
#include "upstream/pool.h"
#include "websocket/tunnel.h"

static const struct pt_upstream_events up_events;

/* Attempts allowed for a request whose streams keep being refused unseen. */
#define PT_REFUSED_ATTEMPTS 10
static void start_timer(struct pt_exchange *x, uint64_t timeout_ms);

static const struct pt_snapshot *snap_of(const struct pt_exchange *x)
{
    return (const struct pt_snapshot *)x->pin->snap;
}

/* --- local replies ------------------------------------------------------- */

/* Cancel the exchange's own attempt, or the retry waiting to start. */
static void cancel_primary(struct pt_exchange *x)
{
    pt_proxy_retry_cancel(x);
    if (x->up)
        x->up->cancel(x->up);
    x->up = NULL;
}

/* Cancel every attempt: the exchange's own and its hedges. */
static void cancel_upstream(struct pt_exchange *x)
{
    cancel_primary(x);
    pt_proxy_hedge_cancel(x);
}

static void stop_timer(struct pt_exchange *x)
{
    if (x->timer)
        event_del(x->timer);
}

/* Forget whatever response an upstream attempt had started to produce. */
static void reset_pipe(struct pt_pipe *p)
{
    if (p->buf)
        evbuffer_drain(p->buf, evbuffer_get_length(p->buf));
    p->in = p->out = p->out_max = 0;
    p->eof = false;
    p->trailers = NULL;
    p->on_drain = NULL;
    p->producer = NULL;
}

static void reset_response(struct pt_exchange *x, int status)
{
    pt_headers_init(&x->resp.headers, &x->arena, 0);
    reset_pipe(&x->resp_body);
    if (x->resp_up != &x->resp_body)
        reset_pipe(x->resp_up);
    x->resp.status = status;
    x->resp.content_length = -1;
    x->resp.has_body = false;
}

int pt_proxy_local_reply(struct pt_exchange *x, int status, struct pt_str content_type,
                         struct pt_str body, const struct pt_headers *extra)
{
    if (x->resp_started || x->finished)
        return PT_ERR_INTERNAL;
    cancel_upstream(x);
    /* No deadline for a local answer, but the idle check stays: a client
     * that never finishes sending its body must not hold the stream. */
    if (x->timer)
        x->deadline_ns = 0;
    else if (x->pin)
        start_timer(x, 0);
    reset_response(x, status);
    x->resp_local = true;
    struct pt_headers *h = &x->resp.headers;
    if (content_type.len && pt_headers_add_ref(h, PT_STR("content-type"), content_type) != 0)
        return PT_ERR_LIMIT;
    if (extra && pt_headers_copy_ref(h, extra) != 0)
        return PT_ERR_LIMIT;
    if (x->error == PT_ERR_CIRCUIT_OPEN &&
        pt_headers_add_ref(h, PT_STR("x-portico-circuit"), PT_STR("open")) != 0)
        return PT_ERR_LIMIT;
    if (body.len) {
        char *cl = pt_arena_alloc(&x->arena, 24);
        if (!cl)
            return PT_ERR_LIMIT;
        int n = snprintf(cl, 24, "%zu", body.len);
        if (pt_headers_add_ref(h, PT_STR("content-length"), (struct pt_str){cl, (size_t)n}) != 0)
            return PT_ERR_LIMIT;
        x->resp.content_length = (int64_t)body.len;
        x->resp.has_body = true;
        pt_pipe_write(&x->resp_body, body.ptr, body.len);
    }
    pt_pipe_end(&x->resp_body, NULL);
    if (x->phase == PT_PHASE_RESPONSE)
        pt_chain_response_replaced(x);
    else
        pt_chain_run_response(x);
    return 0;
}

static size_t json_escape(struct pt_str in, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < in.len && n + 6 < cap; i++) {
        unsigned char c = (unsigned char)in.ptr[i];
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            out[n++] = '\\';
            out[n++] = 'u';
            out[n++] = '0';
            out[n++] = '0';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        } else {
            out[n++] = (char)c;
        }
    }
    return n;
}

static int grpc_error_reply(struct pt_exchange *x, int code, struct pt_str msg)
{
    char *status = pt_arena_alloc(&x->arena, 4);
    char *enc = pt_arena_alloc(&x->arena, msg.len * 3 + 1);
    if (!status || !enc)
        return PT_ERR_LIMIT;
    int sn = snprintf(status, 4, "%d", code);
    size_t en = pt_grpc_message_encode(msg, enc, msg.len * 3 + 1);
    struct pt_headers extra;
    pt_headers_init(&extra, &x->arena, 0);
    if (pt_headers_add_ref(&extra, PT_STR("grpc-status"), (struct pt_str){status, (size_t)sn}) ||
        pt_headers_add_ref(&extra, PT_STR("grpc-message"), (struct pt_str){enc, en}))
        return PT_ERR_LIMIT;
    x->grpc_status = code;
    if (x->grpcweb) {
        /* gRPC-Web: HTTP 200, the status in the body's trailer frame. */
        struct pt_str ct, body;
        if (pt_proxy_grpcweb_error_body(x, (struct pt_str){status, (size_t)sn},
                                        (struct pt_str){enc, en}, &ct, &body) != 0)
            return PT_ERR_LIMIT;
        return pt_proxy_local_reply(x, 200, ct, body, NULL);
    }
    /* Trailers-only: HTTP 200, the status in the (only) header block. */
    return pt_proxy_local_reply(x, 200, PT_STR("application/grpc"), PT_STR_NULL, &extra);
}

static int px_reply_error(struct pt_exchange *x, int err, struct pt_str detail)
{
    if (!x->error)
        x->error = err;
    struct pt_str text = detail.len ? detail : pt_str_from_cstr(pt_err_text(err));
    if (x->req.is_grpc)
        return grpc_error_reply(x, pt_err_grpc_status(err), text);
    if (x->route && x->route->transcode) /* the transcoder's JSON error shape */
        return pt_proxy_transcode_reply_error(x, err, text, NULL);
    int status = pt_err_http_status(err);
    char esc[768];
    size_t elen = json_escape(text, esc, sizeof(esc));
    char rid[160];
    size_t rlen = json_escape(x->request_id, rid, sizeof(rid));
    char *body = pt_arena_alloc(&x->arena, elen + rlen + 96);
    if (!body)
        return PT_ERR_LIMIT;
    int n =
        snprintf(body, elen + rlen + 96, "{\"error\":\"%.*s\",\"status\":%d%s%.*s%s}\n", (int)elen,
                 esc, status, rlen ? ",\"request_id\":\"" : "", (int)rlen, rid, rlen ? "\"" : "");
    return pt_proxy_local_reply(x, status, PT_STR("application/json"),
                                (struct pt_str){body, (size_t)n}, NULL);
}

static int px_reply(struct pt_exchange *x, int status, struct pt_str content_type,
                    struct pt_str body)
{
    if (status < 200 || status > 999)
        return PT_ERR_INTERNAL;
    struct pt_str ct = {0}, b = {0};
    if (content_type.len && pt_arena_str(&x->arena, content_type, &ct) != 0)
        return PT_ERR_LIMIT;
    if (body.len && pt_arena_str(&x->arena, body, &b) != 0)
        return PT_ERR_LIMIT;
    return pt_proxy_local_reply(x, status, ct, b, NULL);
}

/* The response head went out: make what is left of it end cleanly. */
static void abort_response(struct pt_exchange *x, int err, unsigned flags)
{
    if (!x->error)
        x->error = err;
    if (x->resp_body.eof)
        return; /* complete already; the codec is writing it out */
    if (pt_proxy_transcode_abort(x, err))
        return; /* a transcoded stream ends with an in-band error */
    if (x->req.is_grpc && x->resp.has_body) {
        /* gRPC clients understand a status in trailers better than a reset. */
        int code = (flags & PT_UP_PEER_CANCEL) ? 1 : pt_err_grpc_status(err);
        if (pt_proxy_grpcweb_abort(x, code, pt_str_from_cstr(pt_err_text(err))))
            return;
        struct pt_headers *t = pt_arena_alloc(&x->arena, sizeof(*t));
        char *status = pt_arena_alloc(&x->arena, 4);
        const char *text = pt_err_text(err);
        char *enc = pt_arena_alloc(&x->arena, strlen(text) * 3 + 1);
        if (t && status && enc) {
            pt_headers_init(t, &x->arena, 0);
            int sn = snprintf(status, 4, "%d", code);
            size_t en = pt_grpc_message_encode(pt_str_from_cstr(text), enc, strlen(text) * 3 + 1);
            if (pt_headers_add_ref(t, PT_STR("grpc-status"), (struct pt_str){status, (size_t)sn}) ==
                    0 &&
                pt_headers_add_ref(t, PT_STR("grpc-message"), (struct pt_str){enc, en}) == 0) {
                x->grpc_status = code;
                pt_pipe_end(&x->resp_body, t);
                return;
            }
        }
    }
    /* An upstream RST_STREAM(CANCEL) becomes the client's RST_STREAM(CANCEL). */
    x->down->reset(x, (flags & PT_UP_PEER_CANCEL) ? PT_ERR_CANCELLED : err);
}

/* --- forwarding ---------------------------------------------------------- */

/* The request body can be sent again: none of it went upstream, or all
 * that went is kept for replay (pt_proxy_retry_first). */
static bool body_replayable(const struct pt_exchange *x)
{
    return !x->req.has_body || pt_pipe_can_rewind(x->req_up);
}

static bool method_idempotent(struct pt_str m)
{
    static const char *const safe[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};
    for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
        if (pt_str_eq(m, pt_str_from_cstr(safe[i])))
            return true;
    return false;
}

static bool deadline_passed(const struct pt_exchange *x)
{
    return x->deadline_ns && pt_time_mono_ns() >= x->deadline_ns;
}

static bool can_retry(const struct pt_exchange *x, int err, unsigned flags, int status, int grpc)
{
    const struct pt_route_conf *rc = x->route;
    if (x->resp_started || x->finished || x->upgrade || !body_replayable(x) || deadline_passed(x))
        return false;
    /* Attempts the server cannot have seen are always safe to repeat.
     * Refused streams (REFUSED_STREAM, above a GOAWAY's last stream id) say
     * the server is busy or recycling connections, not failing: allow
     * several rounds. Connect failures: each endpoint once, at most 3. */
    if (flags & PT_UP_RETRYABLE) {
        if (err == PT_ERR_UPSTREAM_REFUSED)
            return x->attempts < PT_REFUSED_ATTEMPTS + rc->retry_count;
        uint32_t n = x->service->nendpoints < 3 ? x->service->nendpoints : 3;
        return x->attempts < (n > 1 ? n : 2) + rc->retry_count;
    }
    if (x->attempts > rc->retry_count)
        return false;
    unsigned m = rc->retry_on;
    /* The server saw this request: repeat it only if doing so is safe. A
     * gRPC UNAVAILABLE is the server saying it did not process the call,
     * which gRPC's own retry policy treats as retriable for any method. */
    bool safe = rc->retry_unsafe || method_idempotent(x->req.method);
    if (grpc == 14 && (m & PT_RETRY_GRPC_UNAVAILABLE))
        return true;
    if (!safe)
        return false;
    if (err == PT_ERR_TIMEOUT && (m & PT_RETRY_PER_TRY_TIMEOUT))
        return true;
    if (err == PT_ERR_UPSTREAM_RESET && (m & PT_RETRY_RESET))
        return true;
    if (status >= 500 && (m & PT_RETRY_5XX))
        return true;
    if ((status == 502 || status == 503 || status == 504) && (m & PT_RETRY_GATEWAY_ERROR))
        return true;
    return false;
}

static void upstream_failed(struct pt_exchange *x, int err, unsigned flags);
static void attempt(struct pt_exchange *x);
static const struct pt_proxy_hedge_ops hedge_ops;

/* The per-try timeout fired: the attempt gave no response head in time. */
static void try_timed_out(struct pt_exchange *x)
{
    pt_proxy_retry_count_timeout(x);
    cancel_primary(x); /* hedges, if any, go on */
    upstream_failed(x, PT_ERR_TIMEOUT, 0);
}

/* A retry can_retry allowed: ask the budget and the deadline
 * (pt_proxy_retry_admit), then go now or after the backoff. Returns false
 * when it may not go; the caller then ends with the outcome it has. */
static bool retry(struct pt_exchange *x, unsigned flags, bool cancel_current)
{
    int64_t wait_ms = pt_proxy_retry_admit(x, (flags & PT_UP_RETRYABLE) != 0);
    if (wait_ms < 0)
        return false;
    if (cancel_current)
        cancel_upstream(x);
    /* The next attempt reads the body from its start (can_retry checked
     * that every byte sent is kept). */
    if (x->req.has_body)
        (void)pt_pipe_rewind(x->req_up);
    reset_response(x, 0);
    if (wait_ms == 0)
        attempt(x);
    else
        pt_proxy_retry_wait(x, (uint64_t)wait_ms, attempt);
    return true;
}

static void attempt(struct pt_exchange *x)
{
    const struct pt_service *svc = x->service;
    if (x->attempts == 0)
        pt_proxy_retry_first(x);
    x->attempts++;
    pt_up_attempt_end(x, PT_LB_ABANDONED); /* lb: a 5xx being retried */
    int open = pt_proxy_circuit_admit(x);
    if (open < 0) {
        px_reply_error(x, open, PT_STR_NULL);
        return;
    }
    int chosen = x->endpoint;
    int rc = x->upgrade ? pt_up_forward_upgrade(x->worker, svc, x, &up_events, &chosen)
                        : pt_up_forward(x->worker, svc, x, &up_events, x->endpoint, &chosen);
    x->endpoint = chosen;
    if (rc == 0) {
        pt_proxy_circuit_chosen(x, chosen);
        pt_proxy_retry_attempt_started(x, try_timed_out);
        if (x->attempts == 1)
            pt_proxy_hedge_start(x, &hedge_ops);
    }
    if (rc == PT_ERR_NO_HEALTHY) { /* health: no usable instance; retrying cannot help */
        pt_proxy_circuit_abandon(x);
        px_reply_error(x, rc, PT_STR_NULL);
        return;
    }
    if (rc < 0)
        upstream_failed(x, rc, PT_UP_RETRYABLE);
}

static void upstream_failed(struct pt_exchange *x, int err, unsigned flags)
{
    pt_up_attempt_end(x, PT_LB_FAILED); /* lb: in-flight counts, latency */
    if (x->finished)
        return;
    pt_proxy_circuit_done(x, err, 0, -1);
    pt_proxy_retry_attempt_over(x);
    if (pt_proxy_hedge_hold(x, err, flags))
        return; /* hedged attempts still running may answer */
    if (can_retry(x, err, flags, 0, -1) && retry(x, flags, false)) {
        pt_log_debug("retrying %.*s after %s (attempt %u)", (int)x->req.path.len, x->req.path.ptr,
                     pt_err_name(err), x->attempts);
        return;
    }
    if (!x->resp_started) {
        if (x->resp_local)
            return;
        if ((flags & PT_UP_PEER_CANCEL) && x->req.is_grpc) {
            /* The backend cancelled the call: the client sees CANCELLED,
             * as it would talking to the backend directly. */
            if (!x->error)
                x->error = err;
            grpc_error_reply(x, 1, PT_STR("upstream cancelled the stream"));
            return;
        }
        px_reply_error(x, err, PT_STR_NULL);
        return;
    }
    abort_response(x, err, flags);
}

static uint64_t activity(const struct pt_exchange *x)
{
    uint64_t a = x->req_body.in + x->req_body.out + x->resp_body.in + x->resp_body.out;
    if (x->req_up != &x->req_body)
        a += x->req_up->in;
    if (x->resp_up != &x->resp_body)
        a += x->resp_up->in;
    return a;
}

/* One timer per exchange serves the deadline and the stream idle timeout:
 * it fires at whichever comes first; activity is read from the pipes'
 * byte counters, so moving bytes costs nothing extra. */
static void arm_timer(struct pt_exchange *x, uint64_t now)
{
    uint64_t idle_ns = (uint64_t)snap_of(x)->stream_idle_timeout_ms * 1000000ull;
    uint64_t at = x->idle_since_ns + idle_ns;
    if (x->deadline_ns && x->deadline_ns < at)
        at = x->deadline_ns;
    uint64_t in = at > now ? at - now : 0;
    struct timeval tv = {(time_t)(in / 1000000000ull), (suseconds_t)((in % 1000000000ull) / 1000)};
    event_add(x->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pt_exchange *x = arg;
    uint64_t now = pt_time_mono_ns();
    int err = 0;
    if (x->deadline_ns && now >= x->deadline_ns) {
        err = PT_ERR_TIMEOUT;
    } else {
        uint64_t a = activity(x);
        if (a != x->idle_mark) {
            x->idle_mark = a;
            x->idle_since_ns = now;
        } else if (now - x->idle_since_ns >=
                   (uint64_t)snap_of(x)->stream_idle_timeout_ms * 1000000ull) {
            err = PT_ERR_STREAM_IDLE;
        }
    }
    if (!err) {
        arm_timer(x, now);
        return;
    }
    pt_proxy_circuit_done(x, err, 0, -1);
    cancel_upstream(x);
    if (!x->resp_started) {
        px_reply_error(x, err, PT_STR_NULL);
        return;
    }
    abort_response(x, err, 0);
}

static void start_timer(struct pt_exchange *x, uint64_t timeout_ms)
{
    uint64_t now = pt_time_mono_ns();
    if (!x->timer) {
        x->timer = pt_arena_alloc(&x->arena, event_get_struct_event_size());
        if (!x->timer)
            return; /* at the arena limit: the downstream's own timeouts still apply */
        event_assign(x->timer, x->worker->base, -1, 0, on_timer, x);
    }
    x->deadline_ns = timeout_ms ? now + timeout_ms * 1000000ull : 0;
    x->idle_mark = activity(x);
    x->idle_since_ns = now;
    arm_timer(x, now);
}

static int set_header(struct pt_exchange *x, struct pt_str name, struct pt_str value)
{
    pt_headers_remove(&x->req.headers, name);
    return pt_headers_add_ref(&x->req.headers, name, value);
}

/* Turn the client's request into the one the upstream sees. Once per
 * exchange, whatever the number of attempts. Status: 0 or PT_ERR_LIMIT. */
static int prepare_request(struct pt_exchange *x, uint64_t timeout_ms)
{
    struct pt_headers *h = &x->req.headers;
    pt_headers_strip_hop_by_hop(h, true);
    pt_headers_remove(h, PT_STR("host"));
    pt_headers_remove(h, PT_STR("expect"));
    if (!x->req.authority.len)
        x->req.authority = x->upstream_addr;

    const char *ip = x->conn->peer_ip;
    size_t iplen = strlen(ip);
    struct pt_str prev;
    struct pt_str xff;
    if (pt_headers_find(h, PT_STR("x-forwarded-for"), &prev) && prev.len) {
        char *v = pt_arena_alloc(&x->arena, prev.len + 2 + iplen);
        if (!v)
            return PT_ERR_LIMIT;
        memcpy(v, prev.ptr, prev.len);
        memcpy(v + prev.len, ", ", 2);
        memcpy(v + prev.len + 2, ip, iplen);
        xff = (struct pt_str){v, prev.len + 2 + iplen};
    } else {
        xff = (struct pt_str){ip, iplen};
    }
    if (set_header(x, PT_STR("x-forwarded-for"), xff) ||
        set_header(x, PT_STR("x-forwarded-proto"), x->req.scheme) ||
        (x->req.authority.len && set_header(x, PT_STR("x-forwarded-host"), x->req.authority)))
        return PT_ERR_LIMIT;

    if (x->req.is_grpc && timeout_ms) {
        char *buf = pt_arena_alloc(&x->arena, 16);
        if (!buf)
            return PT_ERR_LIMIT;
        size_t n = pt_grpc_timeout_format(timeout_ms * 1000000ull, buf);
        if (set_header(x, PT_STR("grpc-timeout"), (struct pt_str){buf, n}))
            return PT_ERR_LIMIT;
    }
    return 0;
}

/* The whole-request timeout: the route's, else the default for HTTP; for
 * gRPC the client's grpc-timeout, capped by the route's. 0 = none. */
static uint64_t request_timeout_ms(struct pt_exchange *x)
{
    const struct pt_route_conf *rc = x->route;
    uint64_t t = rc->timeout_set ? rc->timeout_ms : 0;
    if (!x->req.is_grpc)
        return t ? t : snap_of(x)->request_timeout_ms;
    struct pt_str v;
    uint64_t ns;
    if (pt_headers_find(&x->req.headers, PT_STR("grpc-timeout"), &v) &&
        pt_grpc_timeout_parse(v, &ns) == 0) {
        uint64_t ms = ns / 1000000ull + (ns % 1000000ull ? 1 : 0);
        if (ms == 0)
            ms = 1;
        t = t ? (ms < t ? ms : t) : ms;
    }
    return t;
}

static void terminal(struct pt_exchange *x)
{
    if (!x->route) {
        px_reply_error(x, PT_ERR_NO_ROUTE, PT_STR_NULL);
        return;
    }
    const struct pt_route_conf *rc = x->route;
    if (!x->service) {
        struct pt_str why = PT_STR_NULL;
        int err = pt_proxy_select(x, &why);
        if (err) {
            px_reply_error(x, err == PT_ERR_LIMIT ? PT_ERR_HEADERS_TOO_LARGE : err, why);
            return;
        }
    }
    const struct pt_service *svc = x->service;
    if (rc->transcode && !x->req.is_grpc) {
        /* REST/JSON to gRPC (transcode.c); gRPC clients pass through. */
        uint64_t tmo = request_timeout_ms(x);
        start_timer(x, tmo);
        if (x->req.has_body && x->down->want_body)
            x->down->want_body(x);
        pt_proxy_body_prepare(x);
        pt_proxy_body_start_request(x);
        pt_proxy_transcode_start(x, tmo);
        return;
    }
    if (svc->grpc && !x->req.is_grpc) {
        px_reply_error(x, PT_ERR_UNSUPPORTED_MEDIA,
                       PT_STR("this route serves gRPC: use content-type application/grpc"));
        return;
    }
    if (rc->max_body_bytes && !x->req.is_grpc && x->req.content_length > 0 &&
        (uint64_t)x->req.content_length > rc->max_body_bytes) {
        px_reply_error(x, PT_ERR_BODY_TOO_LARGE, PT_STR_NULL);
        return;
    }
    x->upgrade = x->req.upgrade_websocket && rc->websocket && svc->protocol == PT_UP_HTTP1 &&
                 x->req.version == PT_HTTP_11;
    uint64_t tmo = x->upgrade ? 0 : request_timeout_ms(x);
    if (prepare_request(x, tmo) != 0) {
        px_reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
        return;
    }
    if (!x->upgrade)
        start_timer(x, tmo);
    if (x->req.has_body && x->down->want_body)
        x->down->want_body(x);
    pt_proxy_body_prepare(x);
    pt_proxy_body_start_request(x);
    attempt(x);
}

static void deliver(struct pt_exchange *x)
{
    x->resp_started = true;
    pt_proxy_grpcweb_head(x);
    x->down->send_head(x);
    pt_proxy_body_start_response(x);
}

static void broken(struct pt_exchange *x, const char *filter)
{
    pt_log_error("filter %s returned REPLIED without replying", filter);
    px_reply_error(x, PT_ERR_INTERNAL, PT_STR_NULL);
}

static const struct pt_chain_steps steps = {
    .terminal = terminal,
    .deliver = deliver,
    .broken = broken,
};

/* --- upstream events ----------------------------------------------------- */

static int header_grpc_status(const struct pt_headers *h)
{
    struct pt_str v;
    uint64_t n;
    int i = pt_headers_index(h, PT_STR("grpc-status"), 0);
    if (i < 0)
        return -1;
    v = h->v[i].value;
    return pt_str_to_u64(v, &n) == 0 && n < 1000 ? (int)n : -1;
}

static void websocket_takeover(struct pt_exchange *x)
{
    stop_timer(x);
    pt_headers_remove(&x->resp.headers, PT_STR("connection"));
    x->resp_started = true;
    x->down->send_head(x);
    struct pt_conn *up = pt_up_take_transport(x);
    struct pt_conn *down = x->down->take_transport ? x->down->take_transport(x) : NULL;
    if (!up || !down) {
        pt_log_warn("websocket upgrade could not take over both connections");
        if (up)
            pt_conn_free(up);
        if (down) {
            pt_conn_free(down);
            pt_proxy_exchange_end(x, PT_ERR_INTERNAL);
        } else {
            cancel_upstream(x);
            x->down->reset(x, PT_ERR_INTERNAL);
        }
        return;
    }
    pt_ws_tunnel_start(x, down, up, snap_of(x)->stream_idle_timeout_ms, &x->worker->proxy->nconns);
}

static void on_response_head(struct pt_exchange *x)
{
    pt_proxy_retry_attempt_over(x);
    pt_proxy_hedge_primary_answered(x);
    if (x->upgrade && x->resp.status == 101) {
        pt_proxy_circuit_done(x, 0, 101, -1);
        websocket_takeover(x);
        return;
    }
    int grpc = x->req.is_grpc ? header_grpc_status(&x->resp.headers) : -1;
    if (grpc >= 0)
        x->grpc_status = grpc;
    /* A gRPC call's verdict is in its trailers unless the head has it
     * (trailers-only) or is an HTTP error. */
    if (!x->req.is_grpc || grpc >= 0 || x->resp.status != 200)
        pt_proxy_circuit_done(x, 0, x->resp.status, grpc);
    if (x->resp.status >= 500 || grpc == 14) {
        if (can_retry(x, 0, 0, x->resp.status, grpc) && retry(x, 0, true))
            return;
    }
    pt_headers_strip_hop_by_hop(&x->resp.headers, false);
    pt_chain_run_response(x);
}

static void on_closed(struct pt_exchange *x, int err, unsigned flags)
{
    if (err == 0) {
        pt_up_attempt_end(x, PT_LB_DONE); /* lb: in-flight counts, latency */
        /* The upstream is done; what is left is the client reading the
         * rest, which only the idle check still watches. */
        x->deadline_ns = 0;
        if (x->req.is_grpc && x->resp_up->trailers) {
            int g = header_grpc_status(x->resp_up->trailers);
            if (g >= 0)
                x->grpc_status = g;
        }
        pt_proxy_circuit_done(x, 0, x->resp.status, x->grpc_status);
        return;
    }
    upstream_failed(x, err, flags);
}

static const struct pt_upstream_events up_events = {
    .on_response_head = on_response_head,
    .on_closed = on_closed,
};

/* --- hedging (hedge.c) --------------------------------------------------- */

/* A hedged attempt's head came first: it becomes x's response. */
static void hedge_won(struct pt_exchange *x, struct pt_exchange *sx, int endpoint)
{
    pt_proxy_retry_attempt_over(x);
    pt_proxy_circuit_abandon(x);
    cancel_primary(x);
    pt_up_attempt_end(x, PT_LB_ABANDONED);
    reset_response(x, 0);
    x->resp.status = sx->resp.status;
    x->resp.content_length = sx->resp.content_length;
    x->resp.has_body = sx->resp.has_body;
    /* The values stay in the winner's arena, which lives until x ends. */
    pt_headers_copy_ref(&x->resp.headers, &sx->resp.headers);
    x->endpoint = endpoint;
    x->upstream_addr = sx->upstream_addr;
}

static void hedge_run_response(struct pt_exchange *x)
{
    int grpc = x->req.is_grpc ? header_grpc_status(&x->resp.headers) : -1;
    if (grpc >= 0)
        x->grpc_status = grpc;
    pt_headers_strip_hop_by_hop(&x->resp.headers, false);
    pt_chain_run_response(x);
}

static const struct pt_proxy_hedge_ops hedge_ops = {
    .won = hedge_won,
    .run_response = hedge_run_response,
    .closed = on_closed,
    .failed = upstream_failed,
};

/* --- handler entry points ------------------------------------------------ */

static bool pin(struct pt_exchange *x)
{
    if (!x->pin)
        x->pin = pt_snap_pin_get(x->worker);
    if (x->pin)
        x->snap = snap_of(x);
    return x->pin != NULL;
}

/* A CORS preflight for a route with gRPC-Web is answered here, before any
 * filter (browsers send no credentials with it). True when answered. */
static bool grpcweb_preflight(struct pt_exchange *x, const struct pt_snapshot *s,
                              const struct pt_route_request *rr)
{
    struct pt_route_request pr = *rr;
    struct pt_route_result res;
    if (!s->router || !pt_proxy_grpcweb_preflight_method(x, &pr.method) ||
        !pt_router_match(s->router, &pr, &res) || !s->routes[res.index].grpc_web)
        return false;
    x->route = &s->routes[res.index];
    x->stats = x->route->stats;
    pt_metrics_stats_start(x->stats, x->worker->id);
    struct pt_headers extra;
    int status = pt_proxy_grpcweb_preflight(x, x->route->grpc_web, &extra);
    if (status < 0)
        px_reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
    else
        pt_proxy_local_reply(x, status, PT_STR_NULL, PT_STR_NULL, &extra);
    return true;
}

static void px_start(struct pt_exchange *x)
{
    if (!pin(x)) {
        x->down->reset(x, PT_ERR_SHUTTING_DOWN);
        return;
    }
    const struct pt_snapshot *s = snap_of(x);
    struct pt_request *r = &x->req;
    struct pt_str auth = {0}, path = {0}, query = {0};
    if (pt_http_target_parse(r->target, &auth, &path, &query) != 0) {
        px_reply_error(x, PT_ERR_BAD_REQUEST, PT_STR("invalid request target"));
        return;
    }
    if (auth.len)
        r->authority = auth;
    char *buf = pt_arena_alloc(&x->arena, path.len * 3 + 2);
    size_t len = 0;
    struct pt_path_opts opts = {0};
    if (!buf || pt_path_normalize(path, buf, path.len * 3 + 2, &len, &opts) != 0) {
        px_reply_error(x, buf ? PT_ERR_BAD_REQUEST : PT_ERR_HEADERS_TOO_LARGE,
                       PT_STR("invalid request path"));
        return;
    }
    r->path = (struct pt_str){buf, len};
    r->query = query;

    struct pt_route_request rr = {r->method, r->authority, r->path, r->query, &r->headers};
    struct pt_route_result res;
    if (grpcweb_preflight(x, s, &rr))
        return;
    const struct pt_chain *chain = &s->global_chain;
    if (s->router && pt_router_match(s->router, &rr, &res)) {
        x->route = &s->routes[res.index];
        chain = &x->route->chain;
        x->nparams = res.nparams;
        memcpy(x->params, res.params, res.nparams * sizeof(res.params[0]));
        /* What the upstream is asked for: the normalized path, minus the
         * stripped prefix, plus the query as received. */
        struct pt_str rest = {r->path.ptr + res.strip_len, r->path.len - res.strip_len};
        bool slash = rest.len == 0 || rest.ptr[0] != '/';
        size_t fl = rest.len + (slash ? 1 : 0) + (query.len ? query.len + 1 : 0);
        char *fp = pt_arena_alloc(&x->arena, fl + 1);
        if (!fp) {
            px_reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
            return;
        }
        size_t k = 0;
        if (slash)
            fp[k++] = '/';
        memcpy(fp + k, rest.ptr, rest.len);
        k += rest.len;
        if (query.len) {
            fp[k++] = '?';
            memcpy(fp + k, query.ptr, query.len);
            k += query.len;
        }
        x->forward_path = (struct pt_str){fp, k};
        if (x->route->grpc_web && pt_proxy_grpcweb_start(x) != 0) {
            px_reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
            return;
        }
        /* gRPC-Web-text: the decoder checks each message (grpcweb.c). */
        if (pt_proxy_grpcweb_decodes(x))
            pt_pipe_set_limit(&x->req_body, 0, false);
        else
            pt_pipe_set_limit(&x->req_body, x->route->max_body_bytes, r->is_grpc);
    } else {
        pt_pipe_set_limit(&x->req_body, s->max_body_bytes, r->is_grpc);
    }
    x->stats = x->route ? x->route->stats : s->no_route_stats;
    pt_metrics_stats_start(x->stats, x->worker->id);
    pt_chain_run_request(x, chain);
}

static void px_fail(struct pt_exchange *x, int err)
{
    if (x->finished)
        return;
    pin(x);
    if (!x->error)
        x->error = err;
    cancel_upstream(x);
    if (x->resp_started) {
        x->down->reset(x, err);
        return;
    }
    if (!x->pin) {
        x->down->reset(x, err);
        return;
    }
    px_reply_error(x, err, PT_STR_NULL);
}

void pt_proxy_exchange_end(struct pt_exchange *x, int err)
{
    x->finished = true;
    if (x->timer) {
        event_del(x->timer);
        x->timer = NULL;
    }
    pt_proxy_circuit_abandon(x);
    cancel_upstream(x);
    pt_proxy_transcode_fini(x); /* after the upstream let go of its pipes */
    pt_proxy_retry_fini(x);
    pt_up_attempt_end(x, PT_LB_ABANDONED); /* lb: before the snapshot pin goes */
    if (err && !x->error)
        x->error = err;
    pt_chain_done(x);
    pt_proxy_body_fini(x);
    pt_proxy_log_exchange(x);
    pt_proxy_hedge_fini(x);
    pt_snap_pin_release(x->pin);
    x->pin = NULL;
    pt_exchange_free(x);
}

static void px_resume(struct pt_exchange *x)
{
    pt_proxy_body_resume(x);
    pt_chain_resume(x);
}

static const struct pt_exchange_handler handler = {
    .start = px_start,
    .fail = px_fail,
    .end = pt_proxy_exchange_end,
    .reply = px_reply,
    .reply_error = px_reply_error,
    .resume = px_resume,
};

void pt_proxy_exchange_init(void)
{
    pt_exchange_set_handler(&handler);
    pt_chain_set_steps(&steps);
}

struct pt_str pt_exchange_route_name(const struct pt_exchange *x)
{
    return x->route ? x->route->name_str : PT_STR_NULL;
}
