/*
 * proxy/proxy_int.h - private to src/proxy.
 */
#ifndef PT_PROXY_PROXY_INT_H
#define PT_PROXY_PROXY_INT_H

#include <stdatomic.h>

#include "http/server.h"
#include "net/conn.h"
#include "net/listener.h"

struct pt_access_log;
struct pt_acceptor;

struct px_acceptor {
    struct px_acceptor *next;
    int fd;
    struct pt_acceptor *a;
};

struct sniff;

struct pt_proxy_worker {
    struct pt_worker *w;
    struct px_acceptor *acceptors;
    struct pt_down_conn *conns;
    struct sniff *sniffs; /* connections whose protocol is not known yet */
    atomic_uint nconns;   /* codec connections, sniffing connections and tunnels */
    uint64_t next_conn_id;
    uint64_t rng; /* traffic splits drawn at random (select.c) */
    bool draining;
};

/* exchange.c */
void pt_proxy_exchange_init(void);
void pt_proxy_exchange_end(struct pt_exchange *x, int err);
/* body.c: body-hook stages (only when the chain has body hooks) */
void pt_proxy_body_prepare(struct pt_exchange *x);
void pt_proxy_body_start_request(struct pt_exchange *x);
void pt_proxy_body_start_response(struct pt_exchange *x);
bool pt_proxy_body_resume(struct pt_exchange *x);
void pt_proxy_body_fini(struct pt_exchange *x);
/* circuit.c: circuit breakers around upstream attempts. admit before an
 * attempt (status: 0 or PT_ERR_CIRCUIT_OPEN), chosen once its endpoint is
 * known, done with its outcome (err 0 when a response came; status 0 and
 * grpc -1 when unknown), abandon when it ends without a verdict. done and
 * abandon are no-ops when no attempt is outstanding. */
int pt_proxy_circuit_admit(struct pt_exchange *x);
void pt_proxy_circuit_chosen(struct pt_exchange *x, int endpoint);
void pt_proxy_circuit_done(struct pt_exchange *x, int err, int status, int grpc);
void pt_proxy_circuit_abandon(struct pt_exchange *x);
/* retry.c: the retry budget, backoff and per-try timer of an exchange.
 * first: the first attempt of the exchange is about to start (counts it on
 * its service's budget; keeps the request body for replay when the route
 * retries). admit: a retry was judged allowed (can_retry); returns the
 * backoff in ms (0 = go now), or -1 when the budget or the deadline refuse
 * it (unseen: the server never saw the attempt - no budget, no wait).
 * wait: run go after ms (cancelled by cancel). attempt_started/over: arm
 * and stop the per-try timer around one attempt (over also ends the
 * attempt's hold on the budget). cancel: stop any pending timer. fini:
 * everything, when the exchange ends. */
#define PT_RETRY_REPLAY_MAX_BYTES (64u * 1024u)
typedef void pt_proxy_retry_fn(struct pt_exchange *x);
void pt_proxy_retry_first(struct pt_exchange *x);
int64_t pt_proxy_retry_admit(struct pt_exchange *x, bool unseen);
void pt_proxy_retry_wait(struct pt_exchange *x, uint64_t ms, pt_proxy_retry_fn *go);
void pt_proxy_retry_attempt_started(struct pt_exchange *x, pt_proxy_retry_fn *on_timeout);
void pt_proxy_retry_attempt_over(struct pt_exchange *x);
void pt_proxy_retry_count_timeout(struct pt_exchange *x);
void pt_proxy_retry_cancel(struct pt_exchange *x);
void pt_proxy_retry_fini(struct pt_exchange *x);
void pt_proxy_retry_stats(const struct pt_exchange *x, bool *denied, uint32_t *per_try_timeouts,
                          uint32_t *hedges);
/* hedge.c: hedged attempts (shadow exchanges) of an exchange. start: after
 * the first attempt started, arm the hedge delay when the route hedges and
 * the request is eligible. hold: the primary attempt failed; true when
 * hedges still run (their last failure calls ops->failed with err/flags).
 * primary_answered: the primary's head came first, hedges are cancelled.
 * cancel: stop every hedge, the winner included. */
struct pt_proxy_hedge_ops {
    /* A hedge's head came first: cancel the primary, copy sx's head into
     * x (x's response pipe reset). */
    void (*won)(struct pt_exchange *x, struct pt_exchange *sx, int endpoint);
    /* Run the response phase on the head won() copied. */
    void (*run_response)(struct pt_exchange *x);
    /* The winner's attempt is over (as up_events.on_closed). */
    void (*closed)(struct pt_exchange *x, int err, unsigned flags);
    /* Every attempt failed: handle the primary's failure. */
    void (*failed)(struct pt_exchange *x, int err, unsigned flags);
};
bool pt_proxy_hedge_eligible(const struct pt_exchange *x);
void pt_proxy_hedge_start(struct pt_exchange *x, const struct pt_proxy_hedge_ops *ops);
bool pt_proxy_hedge_hold(struct pt_exchange *x, int err, unsigned flags);
void pt_proxy_hedge_primary_answered(struct pt_exchange *x);
void pt_proxy_hedge_cancel(struct pt_exchange *x);
/* Free what cancel kept (the winner, referenced by x's response): last
 * thing before x itself is freed. */
void pt_proxy_hedge_fini(struct pt_exchange *x);
void pt_proxy_hedge_count(struct pt_exchange *x);
/* log.c: route counters and the access-log line of a finished exchange */
void pt_proxy_log_exchange(struct pt_exchange *x);
/* grpcweb.c: gRPC-Web over the exchange (docs/grpc-web.md).
 * preflight_method: x is a CORS preflight (OPTIONS with Origin and
 * Access-Control-Request-Method); *method is the requested method.
 * preflight: the answer for a route with gRPC-Web: its HTTP status (204,
 * or 403 for an origin or method not allowed) and headers in *extra, or
 * PT_ERR_LIMIT. start: after routing to a route with gRPC-Web; turns a
 * gRPC-Web request into a gRPC one and sets x->grpcweb (status: 0, also
 * when the request is not gRPC-Web, or PT_ERR_LIMIT). decodes: the request
 * body needs the -text decoder; decode: decode a request chunk in place
 * (status: 0, PT_ERR_INVALID, PT_ERR_BODY_TOO_LARGE). head: rewrite the
 * response head before the codec sends it (content-type, a trailers-only
 * status moved to the body, CORS). encode: a response chunk in place,
 * and at the end the trailer frame (status: 0 or PT_ERR_NOMEM).
 * error_body: the body and content-type of a local gRPC error (status and
 * message already encoded; status: 0 or PT_ERR_LIMIT). abort: end a
 * started response with a trailer frame; false when x is not gRPC-Web. */
struct pt_grpcweb_conf;
struct evbuffer;
bool pt_proxy_grpcweb_preflight_method(const struct pt_exchange *x, struct pt_str *method);
int pt_proxy_grpcweb_preflight(struct pt_exchange *x, const struct pt_grpcweb_conf *c,
                               struct pt_headers *extra);
int pt_proxy_grpcweb_start(struct pt_exchange *x);
bool pt_proxy_grpcweb_decodes(const struct pt_exchange *x);
int pt_proxy_grpcweb_decode(struct pt_exchange *x, struct evbuffer *chunk, bool end);
void pt_proxy_grpcweb_head(struct pt_exchange *x);
int pt_proxy_grpcweb_encode(struct pt_exchange *x, struct evbuffer *chunk, bool end,
                            const struct pt_headers *trailers);
int pt_proxy_grpcweb_error_body(struct pt_exchange *x, struct pt_str status, struct pt_str message,
                                struct pt_str *content_type, struct pt_str *body);
bool pt_proxy_grpcweb_abort(struct pt_exchange *x, int code, struct pt_str text);

/* exchange.c: a local reply (status, content type, body, extra headers;
 * body and headers must live as long as x). Status: 0 or PT_ERR_*. */
int pt_proxy_local_reply(struct pt_exchange *x, int status, struct pt_str content_type,
                         struct pt_str body, const struct pt_headers *extra);
/* transcode.c: REST/JSON requests on a route with `transcode` (its
 * terminal step). start: match, collect the body, call the gRPC method
 * (timeout_ms: the call's deadline, 0 = none). reply_error: a local error
 * in the JSON error shape. abort: the response started and fails; true
 * when an in-band error ended it. fini: when the exchange ends, after the
 * upstream let go. */
void pt_proxy_transcode_start(struct pt_exchange *x, uint64_t timeout_ms);
int pt_proxy_transcode_reply_error(struct pt_exchange *x, int err, struct pt_str text,
                                   const struct pt_headers *extra);
bool pt_proxy_transcode_abort(struct pt_exchange *x, int err);
void pt_proxy_transcode_fini(struct pt_exchange *x);

#endif
