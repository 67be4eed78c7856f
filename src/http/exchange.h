/*
 * http/exchange.h - the exchange as the core sees it.
 *
 * One request and its response, protocol-neutral (portico/exchange.h is the
 * plugin view of the same object). Three parties touch it:
 *
 *   downstream codec (http1, http2)  creates it, fills the request head,
 *       produces the request body pipe, consumes the response body pipe,
 *       sends the response head when told, and ends it.
 *   proxy (src/proxy)                 routes it, runs the filter chain, picks
 *       and drives the upstream, produces local replies, logs it.
 *   upstream stream (src/upstream)    consumes the request pipe, fills the
 *       response head, produces the response pipe.
 *
 * Lifetime: the downstream codec owns the exchange. It calls
 * pt_exchange_handler->end(x, err) exactly once, when its stream is finished
 * (response fully written) or lost (client reset, connection closed); end()
 * detaches the upstream, runs on_done hooks, writes the access log line and
 * frees the exchange. Nobody touches x after end().
 *
 *   created ──head parsed──> started (handler->start) ──> routed ──> chain ─┬─> forwarding
 *                                                                          └─> local reply
 *   any state ──downstream end(err)──> freed
 */
#ifndef PT_HTTP_EXCHANGE_H
#define PT_HTTP_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/arena.h"
#include "core/worker.h"
#include "http/headers.h"
#include "http/pipe.h"
#include "portico/exchange.h"

struct pt_exchange;
struct pt_snap_pin;
struct pt_snapshot;
struct pt_route_conf;
struct pt_service;
struct pt_route_stats;
struct pt_up_stream;
struct event;
struct pt_proxy_grpcweb;

/* What every exchange on a downstream connection shares. Owned by the
 * connection; outlives its exchanges. */
struct pt_conn_info {
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char peer_ip[46]; /* text form, NUL-terminated */
    uint16_t peer_port;
    bool tls;
    uint64_t id; /* per-worker connection number */
    struct pt_str listener_name;
    /* The verified client certificate (TLS with client_cert optional or
     * required), or NULL. Holds one reference (net/client_cert.h), dropped
     * by whoever owns this info when it goes. */
    const struct pt_client_cert *client_cert;
};

/* Implemented by each downstream codec. */
struct pt_downstream_ops {
    /* x->resp holds the final head; the body follows in x->resp_body, whose
     * consumer the codec set at creation. */
    void (*send_head)(struct pt_exchange *x);
    /* The proxy will read the request body: HTTP/1.1 sends "100 Continue"
     * when the client asked for it. May be NULL. */
    void (*want_body)(struct pt_exchange *x);
    /* The exchange failed after the response started (or the proxy cancels
     * it): reset the stream or close the connection. The codec then calls
     * handler->end() (possibly later). */
    void (*reset)(struct pt_exchange *x, int err);
    /* The response head of a successful upgrade (101) was sent and the
     * proxy wants the raw connection: returns the codec's transport handle
     * (struct pt_conn *) and detaches it from the codec, or NULL when the
     * codec cannot upgrade (HTTP/2). May be NULL. */
    void *(*take_transport)(struct pt_exchange *x);
};

/*
 * One attempt to get the response from an upstream: an HTTP/1.1 or HTTP/2
 * client stream. It consumes x->req_body (as the pipe's consumer), fills
 * x->resp and produces x->resp_body, and reports through the events its
 * starter gave it.
 */
struct pt_up_stream {
    /* Abandon the attempt (reset the stream, or discard the connection if it
     * cannot be reused). No callback follows; x->up is cleared. */
    void (*cancel)(struct pt_up_stream *s);
};

enum pt_up_flags {
    /* The upstream cannot have processed the request (connect failure,
     * refused stream, GOAWAY above the last stream id, stale keep-alive
     * connection closed before any response byte). */
    PT_UP_RETRYABLE = 1u << 0,
    /* The peer cancelled (HTTP/2 RST_STREAM CANCEL). */
    PT_UP_PEER_CANCEL = 1u << 1,
};

struct pt_upstream_events {
    /* x->resp holds the response head (status, fields, has_body); the body
     * follows in x->resp_body. For a 101 the connection is the tunnel's. */
    void (*on_response_head)(struct pt_exchange *x);
    /* The attempt is over and detached (x->up already NULL): err 0 once the
     * whole response (and trailers) went into x->resp_body, else a PT_ERR_*
     * with pt_up_flags. */
    void (*on_closed)(struct pt_exchange *x, int err, unsigned flags);
};

/* Implemented by src/proxy; codecs call through pt_exchange_handler. */
struct pt_exchange_handler {
    /* The request head is complete (x->req filled); body may follow. */
    void (*start)(struct pt_exchange *x);
    /* The codec found the request invalid before or after start: reply with
     * err if no response started, else reset. */
    void (*fail)(struct pt_exchange *x, int err);
    /* The downstream stream is finished (err 0) or lost (err < 0): finish
     * and free the exchange. */
    void (*end)(struct pt_exchange *x, int err);
    /* Plugin ABI entry points. */
    int (*reply)(struct pt_exchange *x, int status, struct pt_str content_type, struct pt_str body);
    int (*reply_error)(struct pt_exchange *x, int err, struct pt_str detail);
    void (*resume)(struct pt_exchange *x);
};

extern const struct pt_exchange_handler *pt_exchange_handler;
void pt_exchange_set_handler(const struct pt_exchange_handler *h);

enum pt_http_version {
    PT_HTTP_10 = 10,
    PT_HTTP_11 = 11,
    PT_HTTP_2 = 20,
};

struct pt_request {
    struct pt_str method;
    struct pt_str scheme;
    struct pt_str authority; /* :authority or Host */
    struct pt_str target;    /* as received: path and query */
    struct pt_str path;      /* normalized, without query */
    struct pt_str query;     /* without '?' */
    struct pt_headers headers;
    int64_t content_length; /* -1 when unknown */
    enum pt_http_version version;
    bool is_head;           /* HEAD: the response has no body */
    bool is_grpc;           /* content-type application/grpc* */
    bool has_body;          /* a body follows the head (may still be empty) */
    bool expect_continue;   /* HTTP/1.1 Expect: 100-continue */
    bool upgrade_websocket; /* HTTP/1.1 Upgrade: websocket */
};

struct pt_response {
    int status;
    struct pt_headers headers;
    int64_t content_length; /* -1 when unknown */
    bool has_body;          /* false: end of stream with the head */
};

/* Up to this many route parameters are captured. */
#define PT_ROUTE_MAX_PARAMS 16

struct pt_route_param {
    struct pt_str name;
    struct pt_str value;
};

struct pt_exchange_data {
    const void *key;
    void *data;
};

/* The caller's identity (portico/exchange.h, ABI 1.2 and 1.4). Strings and
 * lists are arena copies, or borrowed from something that outlives the
 * exchange (its pinned snapshot) when set with pt_exchange_identity_replace. */
#define PT_IDENTITY_MAX_ITEMS 256

struct pt_identity_full {
    struct pt_identity base; /* client_id, user_id, tier, credential */
    struct pt_str subject;
    struct pt_str client_name;
    struct pt_str method;
    struct pt_str claims;         /* JSON object text */
    const struct pt_str *list[2]; /* enum pt_identity_list */
    uint16_t n[2];
    /* Claims an authentication method parsed, turned into `claims` text
     * only when someone reads CLAIMS (most requests never do); one
     * reference, released with the exchange (pt_exchange_identity_adopt). */
    void *claims_src;
    const struct pt_identity_claims_ops *claims_ops;
};

/* How parsed claims become text and are released (src/auth: jansson). */
struct pt_identity_claims_ops {
    /* Writes up to cap bytes of JSON object text; returns the full length
     * (0 on failure). */
    size_t (*render)(void *src, char *buf, size_t cap);
    void (*release)(void *src);
};

struct pt_exchange {
    struct pt_arena arena;
    struct pt_worker *worker;
    const struct pt_conn_info *conn;
    const struct pt_downstream_ops *down;
    void *down_ctx;

    struct pt_request req;
    struct pt_response resp;
    struct pt_pipe req_body;  /* codec -> upstream */
    struct pt_pipe resp_body; /* upstream -> codec */
    /* The pipes upstream streams use: req_body/resp_body themselves, or,
     * when the filter chain has body hooks, the far side of the proxy's
     * body stage (req_filtered/resp_raw). */
    struct pt_pipe *req_up;
    struct pt_pipe *resp_up;
    struct pt_pipe req_filtered;
    struct pt_pipe resp_raw;
    void *body_stage[2]; /* owned by src/proxy */
    /* gRPC-Web state (src/proxy/grpcweb.c), NULL unless the request is
     * gRPC-Web on a route that enables it. */
    struct pt_proxy_grpcweb *grpcweb;

    /* Owned by src/proxy. */
    struct pt_snap_pin *pin;
    const struct pt_snapshot *snap;
    const struct pt_route_conf *route;
    /* The service this request goes to: the route's, or the one its
     * traffic split or API version chose (set before forwarding). */
    const struct pt_service *service;
    struct pt_route_stats *stats; /* counted in flight there (observe/metrics.h), or NULL */
    struct pt_route_param params[PT_ROUTE_MAX_PARAMS];
    uint16_t nparams;
    const void *chain;  /* struct pt_chain (conf/snapshot.h) */
    uint16_t chain_pos; /* next filter to run in the current phase */
    uint16_t chain_ran; /* filters whose request hook ran (they get on_done) */
    uint8_t phase;      /* enum pt_chain_phase (proxy/chain.h) */
    bool paused;
    bool upgrade;      /* forwarding a WebSocket upgrade */
    bool resp_started; /* response head handed to the codec */
    bool resp_local;   /* the response is a local reply */
    bool finished;     /* end() ran */
    struct pt_deferred resume_task;
    struct event *timer;        /* deadline and stream idle checks (arena storage) */
    uint64_t deadline_ns;       /* 0 = none */
    uint64_t idle_mark;         /* pipe byte counters at the last idle check */
    uint64_t idle_since_ns;     /* when idle_mark last changed */
    struct pt_up_stream *up;    /* the current upstream attempt */
    struct pt_str forward_path; /* path sent upstream (after strip_prefix), with query */
    struct pt_str upstream_addr;
    int error; /* why the exchange failed, 0 if it did not */
    uint32_t attempts;
    int32_t endpoint; /* index of the last endpoint tried, -1 before */
    int grpc_status;  /* final grpc-status seen, -1 when none (for logs) */

    struct pt_exchange_data *data;
    uint8_t ndata;
    uint8_t data_cap;

    struct pt_str request_id;
    struct pt_identity_full identity; /* see pt_identity_full */
    uint16_t identity_cap[2];         /* arena capacity of identity.list[i]; 0: borrowed */
    /* Why authentication or authorization refused the request (src/auth),
     * for the access log only; static or arena text. */
    struct pt_str auth_reason;
    uint64_t start_ns; /* wall clock, for the log */
    uint64_t start_mono_ns;
    uint64_t bytes_in;  /* request body bytes received */
    uint64_t bytes_out; /* response body bytes sent */
};

/* Install id as the exchange's identity (copied; strings borrowed) and hand
 * it one reference to parsed claims (src, may be NULL) that the exchange
 * renders on demand and releases when it ends or the identity changes. */
void pt_exchange_identity_adopt(struct pt_exchange *x, const struct pt_identity_full *id, void *src,
                                const struct pt_identity_claims_ops *ops);

/* Pointer: a new exchange with its own arena (limit bytes, 0 = none). */
struct pt_exchange *pt_exchange_new(struct pt_worker *w, const struct pt_conn_info *conn,
                                    const struct pt_downstream_ops *down, void *down_ctx,
                                    size_t arena_limit);
/* Release the exchange's memory (called by the proxy's end()). */
void pt_exchange_free(struct pt_exchange *x);

/* Replace the whole identity with id, borrowing every string and list:
 * they must outlive the exchange (a pinned snapshot's data, or the
 * exchange's arena). Used by src/auth, which builds identities from
 * compiled tables without copying. */
void pt_exchange_identity_replace(struct pt_exchange *x, const struct pt_identity_full *id);

/* Classify content-type: application/grpc, application/grpc+proto, ... */
bool pt_http_is_grpc_content_type(struct pt_str content_type);

#endif
