/*
 * admin/server.c - the admin gRPC server: one thread, one completion queue,
 * one small state machine per call (README.md has the diagram).
 *
 * Every grpc_call_start_batch gets a tag that names the call and which of
 * its three batch slots completed (receive, send, close); `pending` counts
 * the batches in flight and the call is freed when it drops to zero. The
 * RECV_CLOSE_ON_SERVER batch is started first and completes last, so a call
 * always outlives every other batch of its own.
 */
#include "admin/server.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
/* grpc_security.h declares some functions as `f()`. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <grpc/grpc_security.h>
#pragma GCC diagnostic pop
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/desc.h"
#include "admin/front.h"
#include "admin/rest.h"
#include "core/arena.h"
#include "core/log.h"
#include "grpc/health/v1/health.pb-c.h"

extern const unsigned char pt_descriptor_set[];
extern const size_t pt_descriptor_set_len;

/* request_call()s kept outstanding, so a burst of new calls is matched
 * without waiting for the thread to re-arm one at a time. */
#define ACCEPT_BACKLOG 16
/* The thread polls its flags (stop, serving) at least this often. */
#define POLL_MS 50
/* After stop: how long calls may finish on their own before they are
 * cancelled, and how long cancelled calls get to complete. */
#define STOP_GRACE_MS 1000
#define STOP_HARD_MS 5000

#define HEALTH_CHECK "/grpc.health.v1.Health/Check"
#define HEALTH_WATCH "/grpc.health.v1.Health/Watch"
#define REFLECT_V1 "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
#define REFLECT_V1ALPHA "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

static const char *const served_services[] = {
    "portico.admin.v1.Admin",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
};
/* Health knows these; "" is the server as a whole. */
static const char *const health_services[] = {"", "portico.admin.v1.Admin"};

enum call_kind { K_UNARY, K_HEALTH_CHECK, K_HEALTH_WATCH, K_REFLECT };
enum tag_kind { T_NEW, T_RECV, T_SEND, T_CLOSE, T_SHUTDOWN };

struct call;
struct tag {
    struct call *call;
    enum tag_kind kind;
};

struct call {
    struct pt_admin_server *s;
    grpc_call *gc;
    grpc_call_details details;
    grpc_metadata_array md;
    struct tag t_new, t_recv, t_send, t_close;
    int pending;        /* batches in flight */
    bool accepted;      /* T_NEW completed with a call */
    bool md_sent;       /* initial metadata is out */
    bool finished;      /* status is out (or queued) */
    bool closed;        /* RECV_CLOSE_ON_SERVER completed */
    bool sending;       /* a T_SEND batch is in flight */
    bool update_wanted; /* watch: status changed while a send was in flight */
    int cancelled;
    enum call_kind kind;
    const struct pt_admin_method *method;
    grpc_byte_buffer *recv_buf;
    grpc_byte_buffer *send_buf;
    grpc_slice trailer_value;
    bool has_trailer;
    /* health watch */
    int watch_status; /* last status sent */
    bool watch_known; /* the service is one health knows */
    struct call *wnext, *wprev;
};

struct pt_admin_server {
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t thread;
    bool thread_started;
    int port;
    char *token; /* NULL = no token required */
    const struct pt_admin_method *methods;
    size_t nmethods;
    void *ctx;
    struct pt_admin_desc *desc;
    atomic_bool serving;
    atomic_bool stop;
    bool serving_seen; /* what the watchers were last told (admin thread) */
    bool stopping;
    bool shutdown_done;
    struct tag t_shutdown;
    size_t live;          /* calls allocated (requested or accepted) */
    struct call watchers; /* list head */
    /* Handlers run one at a time: gRPC calls (admin thread) and REST
     * calls (front thread) take this lock. */
    pthread_mutex_t call_mu;
    struct pt_admin_rest *rest;
    struct pt_admin_front *front;
    grpc_server_credentials *insecure;
};

/* ---- small helpers ---- */

static bool slice_eq(grpc_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return GRPC_SLICE_LENGTH(s) == n && memcmp(GRPC_SLICE_START_PTR(s), lit, n) == 0;
}

static grpc_byte_buffer *buffer_from(const uint8_t *data, size_t len)
{
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

static grpc_byte_buffer *buffer_from_message(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice sl = grpc_slice_malloc(n);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

/* Takes the received buffer; returns its bytes as one slice (unref it). */
static grpc_slice take_recv(struct call *c)
{
    grpc_byte_buffer_reader r;
    grpc_slice sl = grpc_empty_slice();
    if (grpc_byte_buffer_reader_init(&r, c->recv_buf)) {
        sl = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
    }
    grpc_byte_buffer_destroy(c->recv_buf);
    c->recv_buf = NULL;
    return sl;
}

static bool start_batch(struct call *c, const grpc_op *ops, size_t n, struct tag *t)
{
    grpc_call_error e = grpc_call_start_batch(c->gc, ops, n, t, NULL);
    if (e != GRPC_CALL_OK) {
        pt_log_warn("admin: grpc_call_start_batch failed (%d)", (int)e);
        return false;
    }
    c->pending++;
    return true;
}

static void watcher_unlink(struct call *c)
{
    if (c->wnext) {
        c->wnext->wprev = c->wprev;
        c->wprev->wnext = c->wnext;
        c->wnext = c->wprev = NULL;
    }
}

/* ---- call lifecycle ---- */

static void request_one(struct pt_admin_server *s)
{
    struct call *c = pt_xcalloc(1, sizeof(*c));
    c->s = s;
    c->t_new = (struct tag){c, T_NEW};
    c->t_recv = (struct tag){c, T_RECV};
    c->t_send = (struct tag){c, T_SEND};
    c->t_close = (struct tag){c, T_CLOSE};
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    if (grpc_server_request_call(s->server, &c->gc, &c->details, &c->md, s->cq, s->cq, &c->t_new) !=
        GRPC_CALL_OK) {
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->md);
        free(c);
        return;
    }
    s->live++;
}

static void call_free(struct call *c)
{
    watcher_unlink(c);
    if (c->recv_buf)
        grpc_byte_buffer_destroy(c->recv_buf);
    if (c->send_buf)
        grpc_byte_buffer_destroy(c->send_buf);
    if (c->has_trailer)
        grpc_slice_unref(c->trailer_value);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->gc)
        grpc_call_unref(c->gc);
    c->s->live--;
    free(c);
}

/* Send `msg` (may be NULL) and, when `finish`, the status too. */
static void call_send(struct call *c, grpc_byte_buffer *msg, bool finish, int code,
                      const char *message, const uint8_t *details, size_t details_len)
{
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
        c->md_sent = true;
    }
    if (msg) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = msg;
        n++;
    }
    grpc_slice status_msg = grpc_empty_slice();
    grpc_metadata trailer;
    if (finish) {
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = (grpc_status_code)code;
        if (message && message[0]) {
            status_msg = grpc_slice_from_copied_string(message);
            ops[n].data.send_status_from_server.status_details = &status_msg;
        }
        if (details) {
            c->trailer_value = grpc_slice_from_copied_buffer((const char *)details, details_len);
            c->has_trailer = true;
            memset(&trailer, 0, sizeof(trailer));
            trailer.key = grpc_slice_from_static_string("grpc-status-details-bin");
            trailer.value = c->trailer_value;
            ops[n].data.send_status_from_server.trailing_metadata_count = 1;
            ops[n].data.send_status_from_server.trailing_metadata = &trailer;
        }
        n++;
        c->finished = true;
    }
    if (c->send_buf)
        grpc_byte_buffer_destroy(c->send_buf);
    c->send_buf = msg;
    if (start_batch(c, ops, n, &c->t_send))
        c->sending = true;
    grpc_slice_unref(status_msg);
}

static void finish(struct call *c, int code, const char *message)
{
    call_send(c, NULL, true, code, message, NULL, 0);
}

static void recv_next(struct call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_buf;
    start_batch(c, &op, 1, &c->t_recv);
}

static bool authorized(const struct call *c)
{
    const struct pt_admin_server *s = c->s;
    if (!s->token)
        return true;
    for (size_t i = 0; i < c->md.count; i++) {
        if (slice_eq(c->md.metadata[i].key, "authorization"))
            return pt_admin_token_matches(
                s->token, (const char *)GRPC_SLICE_START_PTR(c->md.metadata[i].value),
                GRPC_SLICE_LENGTH(c->md.metadata[i].value));
    }
    return false;
}

static void on_new(struct call *c, bool ok)
{
    struct pt_admin_server *s = c->s;
    if (!ok) { /* the server is shutting down */
        call_free(c);
        return;
    }
    c->accepted = true;
    if (!s->stopping)
        request_one(s);

    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    if (!start_batch(c, &op, 1, &c->t_close)) {
        call_free(c);
        return;
    }

    grpc_slice m = c->details.method;
    bool known = true;
    if (slice_eq(m, HEALTH_CHECK)) {
        c->kind = K_HEALTH_CHECK;
    } else if (slice_eq(m, HEALTH_WATCH)) {
        c->kind = K_HEALTH_WATCH;
    } else if (slice_eq(m, REFLECT_V1) || slice_eq(m, REFLECT_V1ALPHA)) {
        c->kind = K_REFLECT;
    } else {
        known = false;
        for (size_t i = 0; i < s->nmethods; i++) {
            if (slice_eq(m, s->methods[i].path)) {
                c->kind = K_UNARY;
                c->method = &s->methods[i];
                known = true;
                break;
            }
        }
    }
    /* Health Check stays open to probes without the token; everything else,
     * including finding out which methods exist, needs it. */
    if (c->kind != K_HEALTH_CHECK && !authorized(c)) {
        finish(c, GRPC_STATUS_UNAUTHENTICATED, "missing or invalid authorization bearer token");
        return;
    }
    if (!known) {
        char *path = grpc_slice_to_c_string(m);
        char msg[512];
        snprintf(msg, sizeof(msg), "unknown method %s", path);
        gpr_free(path);
        finish(c, GRPC_STATUS_UNIMPLEMENTED, msg);
        return;
    }
    if (s->stopping) {
        finish(c, GRPC_STATUS_UNAVAILABLE, "admin server is shutting down");
        return;
    }
    recv_next(c);
}

static int health_status(const struct pt_admin_server *s, const char *service, bool *known)
{
    *known = false;
    for (size_t i = 0; i < sizeof(health_services) / sizeof(health_services[0]); i++)
        if (strcmp(service, health_services[i]) == 0)
            *known = true;
    if (!*known)
        return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    return s->serving_seen ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                           : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static void watch_send(struct call *c)
{
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)c->watch_status;
    c->update_wanted = false;
    call_send(c, buffer_from_message(&r.base), false, 0, NULL, NULL, 0);
}

static void handle_unary(struct call *c, const uint8_t *data, size_t len)
{
    const struct pt_admin_method *m = c->method;
    ProtobufCMessage *req = protobuf_c_message_unpack(m->input, NULL, len, data);
    if (!req) {
        finish(c, GRPC_STATUS_INVALID_ARGUMENT, "request message does not parse");
        return;
    }
    ProtobufCMessage *resp = NULL;
    struct pt_admin_status st = {0};
    pthread_mutex_lock(&c->s->call_mu);
    m->fn(c->s->ctx, req, &resp, &st);
    pthread_mutex_unlock(&c->s->call_mu);
    protobuf_c_message_free_unpacked(req, NULL);
    if (resp && st.code == 0) {
        call_send(c, buffer_from_message(resp), true, GRPC_STATUS_OK, NULL, NULL, 0);
    } else {
        if (st.code == 0) {
            pt_log_error("admin: %s returned neither a response nor an error", m->path);
            pt_admin_status_set(&st, GRPC_STATUS_INTERNAL, "handler returned no response");
        }
        size_t dlen = 0;
        uint8_t *details = pt_admin_status_details_pack(&st, &dlen);
        call_send(c, NULL, true, st.code, st.message, details, dlen);
        free(details);
    }
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    pt_admin_status_fini(&st);
}

static void on_recv(struct call *c, bool ok)
{
    struct pt_admin_server *s = c->s;
    if (!ok || c->closed) /* the call died; its close event frees it */
        return;
    if (!c->recv_buf) { /* the client half-closed */
        if (c->kind == K_REFLECT)
            finish(c, GRPC_STATUS_OK, NULL);
        else
            finish(c, GRPC_STATUS_INVALID_ARGUMENT, "no request message");
        return;
    }
    grpc_slice sl = take_recv(c);
    const uint8_t *data = GRPC_SLICE_START_PTR(sl);
    size_t len = GRPC_SLICE_LENGTH(sl);
    switch (c->kind) {
    case K_UNARY:
        handle_unary(c, data, len);
        break;
    case K_HEALTH_CHECK:
    case K_HEALTH_WATCH: {
        Grpc__Health__V1__HealthCheckRequest *rq =
            grpc__health__v1__health_check_request__unpack(NULL, len, data);
        if (!rq) {
            finish(c, GRPC_STATUS_INVALID_ARGUMENT, "HealthCheckRequest does not parse");
            break;
        }
        bool known;
        int status = health_status(s, rq->service, &known);
        if (c->kind == K_HEALTH_CHECK) {
            if (!known) {
                char msg[300];
                snprintf(msg, sizeof(msg), "unknown service \"%.256s\"", rq->service);
                finish(c, GRPC_STATUS_NOT_FOUND, msg);
            } else {
                Grpc__Health__V1__HealthCheckResponse r =
                    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
                r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
                call_send(c, buffer_from_message(&r.base), true, GRPC_STATUS_OK, NULL, NULL, 0);
            }
        } else {
            c->watch_known = known;
            c->watch_status = status;
            c->wnext = s->watchers.wnext;
            c->wprev = &s->watchers;
            s->watchers.wnext->wprev = c;
            s->watchers.wnext = c;
            watch_send(c);
        }
        grpc__health__v1__health_check_request__free_unpacked(rq, NULL);
        break;
    }
    case K_REFLECT: {
        size_t outlen = 0;
        uint8_t *out = pt_admin_reflect_answer(s->desc, served_services,
                                               sizeof(served_services) / sizeof(served_services[0]),
                                               data, len, &outlen);
        if (!out) {
            finish(c, GRPC_STATUS_INVALID_ARGUMENT, "ServerReflectionRequest does not parse");
            break;
        }
        call_send(c, buffer_from(out, outlen), false, 0, NULL, NULL, 0);
        free(out);
        break;
    }
    }
    grpc_slice_unref(sl);
}

static void on_send(struct call *c, bool ok)
{
    struct pt_admin_server *s = c->s;
    c->sending = false;
    if (c->send_buf) {
        grpc_byte_buffer_destroy(c->send_buf);
        c->send_buf = NULL;
    }
    if (!ok || c->finished || c->closed)
        return;
    if (c->kind == K_REFLECT) {
        if (s->stopping)
            finish(c, GRPC_STATUS_UNAVAILABLE, "admin server is shutting down");
        else
            recv_next(c);
    } else if (c->kind == K_HEALTH_WATCH) {
        if (s->stopping) {
            watcher_unlink(c);
            finish(c, GRPC_STATUS_OK, NULL);
        } else if (c->update_wanted) {
            watch_send(c);
        }
    }
}

/* The serving flag changed (or the server is stopping): tell watchers. */
static void push_watchers(struct pt_admin_server *s)
{
    struct call *c = s->watchers.wnext;
    for (size_t guard = 0; c != &s->watchers && guard < s->live + 1; guard++) {
        struct call *next = c->wnext;
        if (s->stopping) {
            if (!c->sending) {
                watcher_unlink(c);
                finish(c, GRPC_STATUS_OK, NULL);
            }
        } else {
            bool known;
            int st = health_status(s, "", &known);
            if (c->watch_known && st != c->watch_status) {
                c->watch_status = st;
                if (c->sending)
                    c->update_wanted = true;
                else
                    watch_send(c);
            }
        }
        c = next;
    }
}

static void dispatch(struct tag *t, bool ok)
{
    struct call *c = t->call;
    switch (t->kind) {
    case T_SHUTDOWN:
        return;
    case T_NEW:
        on_new(c, ok);
        return; /* on_new's batches hold the call; an error freed it */
    case T_RECV:
        on_recv(c, ok);
        break;
    case T_SEND:
        on_send(c, ok);
        break;
    case T_CLOSE:
        c->closed = true;
        watcher_unlink(c);
        break;
    }
    if (--c->pending == 0)
        call_free(c);
}

static void *admin_thread(void *arg)
{
    struct pt_admin_server *s = arg;
    gpr_timespec stop_at = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    bool cancelled_all = false;
    for (;;) {
        gpr_timespec deadline =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(POLL_MS, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(s->cq, deadline, NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            struct tag *t = ev.tag;
            if (t->kind == T_SHUTDOWN)
                s->shutdown_done = true;
            else
                dispatch(t, ev.success != 0);
        } else if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        bool serving = atomic_load(&s->serving);
        if (!s->stopping && serving != s->serving_seen) {
            s->serving_seen = serving;
            push_watchers(s);
        }
        if (!s->stopping && atomic_load(&s->stop)) {
            s->stopping = true;
            stop_at = gpr_now(GPR_CLOCK_MONOTONIC);
            push_watchers(s);
            grpc_server_shutdown_and_notify(s->server, s->cq, &s->t_shutdown);
        }
        if (s->stopping) {
            gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
            gpr_timespec since = gpr_time_sub(now, stop_at);
            if (!cancelled_all &&
                gpr_time_cmp(since, gpr_time_from_millis(STOP_GRACE_MS, GPR_TIMESPAN)) > 0) {
                grpc_server_cancel_all_calls(s->server);
                cancelled_all = true;
            }
            if (s->shutdown_done && s->live == 0)
                break;
            if (gpr_time_cmp(since, gpr_time_from_millis(STOP_HARD_MS, GPR_TIMESPAN)) > 0) {
                pt_log_warn("admin: %zu call(s) did not finish; leaving them", s->live);
                break;
            }
        }
    }
    grpc_completion_queue_shutdown(s->cq);
    /* Drain what is left, bounded: every pending event is delivered before
     * GRPC_QUEUE_SHUTDOWN. */
    for (int i = 0; i < 100000; i++) {
        grpc_event ev = grpc_completion_queue_next(
            s->cq,
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(100, GPR_TIMESPAN)),
            NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN || ev.type == GRPC_QUEUE_TIMEOUT)
            break;
    }
    return NULL;
}

/* ---- start / stop ---- */

/* The REST side's way to a handler: the same lock as gRPC calls. */
static void rest_call(void *ctx, const struct pt_admin_method *m, const ProtobufCMessage *req,
                      ProtobufCMessage **resp, struct pt_admin_status *st)
{
    struct pt_admin_server *s = ctx;
    pthread_mutex_lock(&s->call_mu);
    m->fn(s->ctx, req, resp, st);
    pthread_mutex_unlock(&s->call_mu);
}

/* The front hands over a cleartext HTTP/2 connection (front thread). */
static void grpc_take_fd(void *ctx, int fd)
{
    struct pt_admin_server *s = ctx;
    grpc_server_add_channel_from_fd(s->server, fd, s->insecure);
}

static void server_free(struct pt_admin_server *s)
{
    pt_admin_rest_free(s->rest);
    if (s->insecure)
        grpc_server_credentials_release(s->insecure);
    if (s->server)
        grpc_server_destroy(s->server);
    if (s->cq)
        grpc_completion_queue_destroy(s->cq);
    pt_admin_desc_free(s->desc);
    free(s->token);
    pthread_mutex_destroy(&s->call_mu);
    free(s);
    grpc_shutdown();
}

struct pt_admin_server *pt_admin_server_start(const struct pt_admin_opts *o,
                                              const struct pt_admin_method *methods, size_t n,
                                              void *ctx, char *err, size_t errlen)
{
    bool has_token = o->token && o->token[0];
    bool has_ca = o->client_ca_file && o->client_ca_file[0];
    if (!o->address || !o->address[0]) {
        snprintf(err, errlen, "admin address is empty");
        return NULL;
    }
    if (!pt_admin_address_is_loopback(o->address) && !has_token && !has_ca) {
        snprintf(err, errlen,
                 "admin address %s is not loopback: configure admin.token, admin.token_env or "
                 "admin.tls.client_ca_file, or listen on 127.0.0.1 / [::1]",
                 o->address);
        return NULL;
    }
    grpc_init();
    struct pt_admin_server *s = pt_xcalloc(1, sizeof(*s));
    s->token = has_token ? pt_xstrdup(o->token) : NULL;
    s->methods = methods;
    s->nmethods = n;
    s->ctx = ctx;
    s->t_shutdown = (struct tag){NULL, T_SHUTDOWN};
    s->watchers.wnext = s->watchers.wprev = &s->watchers;
    pthread_mutex_init(&s->call_mu, NULL);
    atomic_init(&s->serving, true);
    atomic_init(&s->stop, false);
    s->serving_seen = true;
    s->desc = pt_admin_desc_new(pt_descriptor_set, pt_descriptor_set_len, err, errlen);
    if (!s->desc) {
        server_free(s);
        return NULL;
    }
    s->rest = pt_admin_rest_new(methods, n, rest_call, s, s->token, err, errlen);
    if (!s->rest) {
        server_free(s);
        return NULL;
    }
    grpc_arg args[2];
    memset(args, 0, sizeof(args));
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)PT_ADMIN_MAX_RECV_BYTES;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_CONCURRENT_STREAMS;
    args[1].value.integer = 1000;
    grpc_channel_args cargs = {2, args};
    s->insecure = grpc_insecure_server_credentials_create();
    s->cq = grpc_completion_queue_create_for_next(NULL);
    s->server = grpc_server_create(&cargs, NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    /* grpc core listens on no port: the front accepts and hands over. */
    grpc_server_start(s->server);
    for (int i = 0; i < ACCEPT_BACKLOG; i++)
        request_one(s);
    if (pthread_create(&s->thread, NULL, admin_thread, s) != 0) {
        snprintf(err, errlen, "admin: cannot start its thread");
        atomic_store(&s->stop, true);
        admin_thread(s); /* shuts down and drains on this thread instead */
        server_free(s);
        return NULL;
    }
    s->thread_started = true;
    struct pt_admin_front_opts fo = {o->address, o->cert_file, o->key_file, o->client_ca_file};
    s->front = pt_admin_front_start(&fo, s->rest, grpc_take_fd, s, err, errlen);
    if (!s->front) {
        atomic_store(&s->stop, true);
        pthread_join(s->thread, NULL);
        server_free(s);
        return NULL;
    }
    s->port = pt_admin_front_port(s->front);
    return s;
}

int pt_admin_server_port(const struct pt_admin_server *s)
{
    return s->port;
}

void pt_admin_server_set_serving(struct pt_admin_server *s, bool serving)
{
    if (s)
        atomic_store(&s->serving, serving);
}

void pt_admin_server_stop(struct pt_admin_server *s)
{
    if (!s)
        return;
    /* The front first: no new connection reaches grpc core once it stops. */
    pt_admin_front_stop(s->front);
    atomic_store(&s->stop, true);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    server_free(s);
}
