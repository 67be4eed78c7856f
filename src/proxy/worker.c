/*
 * Per-worker data-plane state: listeners, accepting, choosing a codec,
 * tracking downstream connections, draining.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "filters/builtin.h"
#include "http1/server.h"
#include "http2/server.h"
#include "net/client_cert.h"
#include "observe/access_log.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "ratelimit/redis.h"
#include "upstream/hcheck.h"
#include "upstream/pool.h"
#include "websocket/tunnel.h"

/* A connection whose protocol is not known yet: TLS handshake (ALPN) or
 * the first bytes of cleartext (HTTP/2 preface or not). */
struct sniff {
    struct sniff *prev;
    struct sniff *next;
    struct pt_proxy_worker *pw;
    struct pt_conn *conn;
    struct pt_down_conn tmpl;
    struct event *timer;
    bool http1;
    bool h2c;
    bool h2;
};

static void conn_closed(struct pt_down_conn *dc)
{
    struct pt_proxy_worker *pw = dc->owner;
    if (dc->prev)
        dc->prev->next = dc->next;
    else if (pw->conns == dc)
        pw->conns = dc->next;
    if (dc->next)
        dc->next->prev = dc->prev;
    atomic_fetch_sub(&pw->nconns, 1);
    /* Its exchanges have ended (a WebSocket tunnel keeps its own reference). */
    pt_client_cert_unref(dc->info.client_cert);
    dc->info.client_cert = NULL;
}

static void track(struct pt_proxy_worker *pw, struct pt_down_conn *dc)
{
    dc->prev = NULL;
    dc->next = pw->conns;
    if (pw->conns)
        pw->conns->prev = dc;
    pw->conns = dc;
    if (pw->draining && dc->ops->drain)
        dc->ops->drain(dc);
}

static void sniff_free(struct sniff *s, bool close_conn)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        s->pw->sniffs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (close_conn) {
        pt_conn_free(s->conn);
        atomic_fetch_sub(&s->pw->nconns, 1);
        pt_client_cert_unref(s->tmpl.info.client_cert);
    }
    event_free(s->timer);
    free(s);
}

static void start_codec(struct sniff *s, bool h2)
{
    struct pt_proxy_worker *pw = s->pw;
    struct pt_conn *conn = s->conn;
    struct pt_down_conn tmpl = s->tmpl;
    sniff_free(s, false);
    struct pt_down_conn *dc =
        h2 ? pt_h2_server_new(pw->w, conn, &tmpl) : pt_h1_server_new(pw->w, conn, &tmpl);
    track(pw, dc);
}

static void sniff_on_read(struct pt_conn *c, void *ctx)
{
    struct sniff *s = ctx;
    size_t len = evbuffer_get_length(c->in);
    if (len == 0) {
        if (c->read_eof)
            sniff_free(s, true);
        return;
    }
    char buf[24];
    size_t n = len < sizeof(buf) ? len : sizeof(buf);
    evbuffer_copyout(c->in, buf, n);
    bool more = false;
    bool h2 = pt_h2_is_preface(buf, n, &more);
    if (more && !c->read_eof)
        return;
    if (h2 && s->h2c) {
        start_codec(s, true);
    } else if (!h2 && s->http1) {
        start_codec(s, false);
    } else {
        /* A protocol this listener does not serve. */
        sniff_free(s, true);
    }
}

static void sniff_on_connected(struct pt_conn *c, void *ctx)
{
    struct sniff *s = ctx;
    /* Once per connection: every exchange on it shares the result. */
    if (c->ssl)
        s->tmpl.info.client_cert = pt_client_cert_of_ssl(c->ssl);
    bool h2 = c->alpn && strcmp(c->alpn, "h2") == 0;
    if (h2 && s->h2)
        start_codec(s, true);
    else if (!h2 && s->http1)
        start_codec(s, false);
    else
        sniff_free(s, true);
}

static void sniff_on_close(struct pt_conn *c, void *ctx, int err)
{
    sniff_free(ctx, true);
}

static const struct pt_conn_cb sniff_cb = {
    .on_read = sniff_on_read,
    .on_drained = NULL,
    .on_connected = sniff_on_connected,
    .on_close = sniff_on_close,
};

static void sniff_timeout(evutil_socket_t fd, short what, void *arg)
{
    sniff_free(arg, true);
}

static void on_accept(void *arg, int fd, const struct sockaddr *peer, socklen_t peer_len)
{
    struct px_acceptor *pa = arg;
    struct pt_worker *w = pt_worker_current();
    struct pt_proxy_worker *pw = w->proxy;
    const struct pt_snapshot *snap = w->pin ? (const struct pt_snapshot *)w->pin->snap : NULL;
    const struct pt_listener_rt *l = NULL;
    for (size_t i = 0; snap && i < snap->nlisteners; i++)
        if (snap->listeners[i].fds[w->id] == pa->fd)
            l = &snap->listeners[i];
    if (!l || pw->draining || atomic_load(&pw->nconns) >= snap->max_connections) {
        close(fd);
        return;
    }
    struct sniff *s = pt_xcalloc(1, sizeof(*s));
    s->pw = pw;
    s->http1 = l->http1;
    s->h2c = l->h2c;
    s->h2 = l->h2;
    struct pt_down_conn *t = &s->tmpl;
    t->on_closed = conn_closed;
    t->owner = pw;
    t->limits = snap->limits;
    t->info.tls = l->ssl_ctx != NULL;
    t->info.id = ++pw->next_conn_id;
    t->info.listener_name = pt_str_from_cstr(l->name);
    if (peer_len > sizeof(t->info.peer))
        peer_len = sizeof(t->info.peer);
    memcpy(&t->info.peer, peer, peer_len);
    t->info.peer_len = peer_len;
    pt_sockaddr_ip(peer, t->info.peer_ip, sizeof(t->info.peer_ip), &t->info.peer_port);
    s->timer = event_new(w->base, -1, 0, sniff_timeout, s);
    if (!s->timer)
        pt_abort_oom(sizeof(*s));
    uint32_t ms = snap->limits.header_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(s->timer, &tv);
    atomic_fetch_add(&pw->nconns, 1);
    s->next = pw->sniffs;
    if (pw->sniffs)
        pw->sniffs->prev = s;
    pw->sniffs = s;
    s->conn = pt_conn_accepted(w, fd, peer, peer_len, l->ssl_ctx, &sniff_cb, s);
}

/* --- listeners ------------------------------------------------------------ */

static void apply_listeners(struct pt_worker *w, void *arg)
{
    struct pt_proxy_worker *pw = w->proxy;
    const struct pt_snapshot *snap = w->pin ? (const struct pt_snapshot *)w->pin->snap : NULL;
    if (!snap || pw->draining)
        return;
    /* Connections to instances the snapshot no longer has close once idle. */
    pt_up_worker_sweep(w, snap->services, snap->nservices);
    /* Drop acceptors whose socket the new snapshot no longer has. */
    for (struct px_acceptor **pp = &pw->acceptors; *pp;) {
        struct px_acceptor *a = *pp;
        bool keep = false;
        for (size_t i = 0; i < snap->nlisteners && !keep; i++)
            keep = snap->listeners[i].fds[w->id] == a->fd;
        if (keep) {
            pp = &a->next;
            continue;
        }
        *pp = a->next;
        pt_acceptor_free(a->a);
        free(a);
    }
    for (size_t i = 0; i < snap->nlisteners; i++) {
        int fd = snap->listeners[i].fds[w->id];
        bool have = false;
        for (struct px_acceptor *a = pw->acceptors; a && !have; a = a->next)
            have = a->fd == fd;
        if (have)
            continue;
        struct px_acceptor *a = pt_xcalloc(1, sizeof(*a));
        a->fd = fd;
        a->a = pt_acceptor_new(w, fd, on_accept, a);
        a->next = pw->acceptors;
        pw->acceptors = a;
    }
}

static void free_acceptors(struct pt_proxy_worker *pw)
{
    while (pw->acceptors) {
        struct px_acceptor *a = pw->acceptors;
        pw->acceptors = a->next;
        pt_acceptor_free(a->a);
        free(a);
    }
}

static void drain_worker(struct pt_worker *w, void *arg)
{
    struct pt_proxy_worker *pw = w->proxy;
    pw->draining = true;
    free_acceptors(pw);
    for (struct pt_down_conn *dc = pw->conns; dc;) {
        struct pt_down_conn *next = dc->next;
        dc->ops->drain(dc);
        dc = next;
    }
}

static void shutdown_worker(struct pt_worker *w, void *arg)
{
    struct pt_proxy_worker *pw = w->proxy;
    pw->draining = true;
    free_acceptors(pw);
    while (pw->sniffs)
        sniff_free(pw->sniffs, true);
    while (pw->conns)
        pw->conns->ops->close(pw->conns);
    pt_ws_tunnel_close_all();
    pt_worker_run_pending(w);
    pt_up_worker_fini(w);
    pt_worker_run_pending(w);
    pt_conn_free_all();
    pt_worker_stop(w);
}

/* --- API ------------------------------------------------------------------ */

int pt_proxy_global_init(void)
{
    pt_proxy_exchange_init();
    return pt_filters_register_builtin();
}

void pt_proxy_worker_init(struct pt_worker *w, struct pt_access_log *access_log)
{
    struct pt_proxy_worker *pw = pt_xcalloc(1, sizeof(*pw));
    pw->w = w;
    /* Distinct per worker and per process start: random splits need no
     * reproducibility, only independence. */
    pw->rng = pt_time_mono_ns() ^ ((uint64_t)w->id << 56) ^ (uint64_t)(uintptr_t)pw;
    w->proxy = pw;
    w->access_ring = access_log ? pt_access_log_ring_get(access_log, w->id) : NULL;
    pt_up_worker_init(w);
}

void pt_proxy_worker_fini(struct pt_worker *w)
{
    struct pt_proxy_worker *pw = w->proxy;
    if (!pw)
        return;
    free_acceptors(pw);
    pt_up_worker_fini(w);
    pt_rl_worker_fini(w); /* its Redis connection, if rate limits used one */
    free(pw);
    w->proxy = NULL;
}

void pt_proxy_publish(struct pt_worker *const *workers, unsigned n, struct pt_snapshot *snap)
{
    pt_snap_publish(workers, n, &snap->base);
    for (unsigned i = 0; i < n; i++)
        pt_worker_post(workers[i], apply_listeners, NULL);
    pt_hcheck_update(snap->services, snap->nservices); /* health: what to check */
}

void pt_proxy_drain(struct pt_worker *const *workers, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        pt_worker_post(workers[i], drain_worker, NULL);
}

void pt_proxy_shutdown(struct pt_worker *const *workers, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        pt_worker_post(workers[i], shutdown_worker, NULL);
}

uint32_t pt_proxy_connections(const struct pt_worker *w)
{
    return atomic_load(&w->proxy->nconns);
}
