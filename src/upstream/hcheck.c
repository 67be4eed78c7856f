#include "upstream/hcheck.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/log.h"
#include "core/time.h"
#include "core/worker.h"
#include "net/conn.h"
#include "portico/errors.h"
#include "upstream/health.h"
#include "upstream/service.h"

/* The health thread's worker id (not a proxy worker). */
#define HCHECK_WORKER_ID 0xfffffu
/* Bytes of a response looked at: a status line, or a gRPC message. */
#define MAX_HEAD 1024

/* What to check: copied from a snapshot's service and endpoint. */
struct spec {
    struct spec *next;
    char *key; /* health key "service/host:port" */
    char *service;
    char *endpoint; /* host:port, for logs and :authority */
    struct pt_health *health;
    struct pt_health_check_conf conf;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    SSL_CTX *ssl_ctx; /* one reference, or NULL */
    char *sni;
    bool h2;
    uint32_t connect_timeout_ms;
};

struct target;

/* One check in flight. */
struct probe {
    struct target *t;
    struct pt_conn *conn;
    nghttp2_session *h2;
    int32_t stream_id;
    struct pt_deferred done_task;
    enum pt_health_last result; /* NONE while undecided */
    /* h2 */
    int status;
    int grpc_status;
    uint8_t msg[MAX_HEAD];
    size_t msg_len;
    uint8_t body[5 + 2 + 4 + 256];
    size_t body_len, body_off;
};

struct target {
    struct target *next;
    struct spec *s;
    struct event *timer;
    struct event *deadline;
    struct probe *probe;
    uint64_t rng;
    bool seen;
};

static struct {
    pthread_mutex_t mu;
    bool started;
    bool stopped; /* after pt_hcheck_stop: updates are ignored */
    struct pt_worker w;
    struct spec *pending; /* latest update not yet applied */
    bool has_pending;
    /* Health thread only. */
    struct target *targets;
} hc = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* --- specs ---------------------------------------------------------------- */

static void spec_free(struct spec *s)
{
    while (s) {
        struct spec *next = s->next;
        pt_health_unref(s->health);
        pt_health_check_conf_fini(&s->conf);
        if (s->ssl_ctx)
            SSL_CTX_free(s->ssl_ctx);
        free(s->key);
        free(s->service);
        free(s->endpoint);
        free(s->sni);
        free(s);
        s = next;
    }
}

static struct spec *specs_of(const struct pt_service *services, size_t n)
{
    struct spec *head = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct pt_service *svc = &services[i];
        if (!svc->has_check)
            continue;
        for (uint32_t e = 0; e < svc->nendpoints; e++) {
            const struct pt_endpoint *ep = &svc->endpoints[e];
            if (!ep->health)
                continue;
            struct spec *s = pt_xcalloc(1, sizeof(*s));
            size_t klen = strlen(svc->name) + strlen(ep->key) + 2;
            s->key = pt_xmalloc(klen);
            snprintf(s->key, klen, "%s/%s", svc->name, ep->key);
            s->service = pt_xstrdup(svc->name);
            s->endpoint = pt_xstrdup(ep->key);
            s->health = pt_health_ref(s->key);
            pt_health_check_conf_copy(&s->conf, &svc->check);
            memcpy(&s->addr, &ep->addr, sizeof(s->addr));
            s->addr_len = ep->addr_len;
            if (svc->ssl_ctx && SSL_CTX_up_ref(svc->ssl_ctx) == 1)
                s->ssl_ctx = svc->ssl_ctx;
            s->sni = pt_xstrdup(svc->sni ? svc->sni : ep->host);
            s->h2 = svc->protocol == PT_UP_H2;
            s->connect_timeout_ms = svc->connect_timeout_ms;
            s->next = head;
            head = s;
        }
    }
    return head;
}

/* --- results -------------------------------------------------------------- */

static void schedule(struct target *t, bool first);

static void probe_free(struct probe *p)
{
    if (!p)
        return;
    pt_worker_cancel_deferred(&hc.w, &p->done_task);
    if (p->h2)
        nghttp2_session_del(p->h2);
    pt_conn_free(p->conn);
    free(p);
}

static void report(struct target *t, enum pt_health_last r)
{
    struct spec *s = t->s;
    int change = pt_health_check_result(s->health, &s->conf, r);
    if (change > 0)
        pt_log_info("service %s: instance %s is healthy (active check)", s->service, s->endpoint);
    else if (change < 0)
        pt_log_info("service %s: instance %s is unhealthy (active check: %s)", s->service,
                    s->endpoint, pt_health_last_name(r));
    else
        pt_log_debug("service %s: instance %s check: %s", s->service, s->endpoint,
                     pt_health_last_name(r));
}

/* Deferred: the probe has a verdict (never inside a connection callback). */
static void on_done(struct pt_deferred *d)
{
    struct probe *p = (struct probe *)((char *)d - offsetof(struct probe, done_task));
    struct target *t = p->t;
    enum pt_health_last r = p->result;
    t->probe = NULL;
    event_del(t->deadline);
    probe_free(p);
    report(t, r);
    schedule(t, false);
}

static void decide(struct probe *p, enum pt_health_last r)
{
    if (p->result != PT_HEALTH_LAST_NONE)
        return;
    p->result = r;
    pt_worker_defer(&hc.w, &p->done_task);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct target *t = arg;
    if (t->probe) {
        decide(t->probe, PT_HEALTH_LAST_TIMEOUT);
        pt_worker_run_pending(&hc.w);
    }
}

/* --- HTTP/1.1 ------------------------------------------------------------- */

static void h1_read(struct pt_conn *c, void *ctx)
{
    struct probe *p = ctx;
    if (p->result != PT_HEALTH_LAST_NONE)
        return;
    size_t len = evbuffer_get_length(c->in);
    struct evbuffer_ptr eol = evbuffer_search_eol(c->in, NULL, NULL, EVBUFFER_EOL_CRLF);
    if (eol.pos < 0) {
        if (len > MAX_HEAD || c->read_eof)
            decide(p, PT_HEALTH_LAST_FAILED);
        return;
    }
    char line[64];
    size_t n = (size_t)eol.pos < sizeof(line) - 1 ? (size_t)eol.pos : sizeof(line) - 1;
    evbuffer_copyout(c->in, line, n);
    line[n] = '\0';
    int st = 0;
    char sp = 0;
    if (strncmp(line, "HTTP/1.", 7) != 0 || sscanf(line + 8, "%c%3d", &sp, &st) != 2 || sp != ' ') {
        decide(p, PT_HEALTH_LAST_FAILED);
        return;
    }
    if (st >= 100 && st < 200) { /* interim: wait for the final status */
        struct evbuffer_ptr end = evbuffer_search(c->in, "\r\n\r\n", 4, NULL);
        if (end.pos >= 0)
            evbuffer_drain(c->in, (size_t)end.pos + 4);
        return;
    }
    decide(p, pt_health_status_ok(&p->t->s->conf, st) ? PT_HEALTH_LAST_OK : PT_HEALTH_LAST_FAILED);
}

static void h1_connected(struct pt_conn *c, void *ctx)
{
    struct probe *p = ctx;
    const struct spec *s = p->t->s;
    evbuffer_add_printf(c->out,
                        "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: portico-health-check\r\n"
                        "Connection: close\r\n\r\n",
                        s->conf.path, s->conf.host ? s->conf.host : s->endpoint);
    pt_conn_write_soon(c);
}

static void probe_closed(struct pt_conn *c, void *ctx, int err)
{
    struct probe *p = ctx;
    bool connect = err == PT_ERR_UPSTREAM_CONNECT || err == PT_ERR_UPSTREAM_CONNECT_TIMEOUT ||
                   c->connecting || c->handshaking;
    decide(p, connect ? PT_HEALTH_LAST_CONNECT : PT_HEALTH_LAST_FAILED);
}

static const struct pt_conn_cb h1_cb = {
    .on_read = h1_read,
    .on_connected = h1_connected,
    .on_close = probe_closed,
};

/* --- HTTP/2 and gRPC ------------------------------------------------------ */

static void h2_flush(struct probe *p)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(p->h2, &data);
        if (n < 0) {
            decide(p, PT_HEALTH_LAST_FAILED);
            return;
        }
        if (n == 0)
            break;
        evbuffer_add(p->conn->out, data, (size_t)n);
    }
    pt_conn_write_soon(p->conn);
}

static int h2_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *user_data)
{
    struct probe *p = user_data;
    if (frame->hd.stream_id != p->stream_id)
        return 0;
    char v[16];
    size_t n = valuelen < sizeof(v) - 1 ? valuelen : sizeof(v) - 1;
    memcpy(v, value, n);
    v[n] = '\0';
    if (namelen == 7 && memcmp(name, ":status", 7) == 0)
        p->status = atoi(v);
    else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
        p->grpc_status = atoi(v);
    return 0;
}

static int h2_on_frame(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct probe *p = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != p->stream_id)
        return 0;
    if (p->t->s->conf.kind == PT_HEALTH_HTTP && p->status >= 200)
        decide(p, pt_health_status_ok(&p->t->s->conf, p->status) ? PT_HEALTH_LAST_OK
                                                                 : PT_HEALTH_LAST_FAILED);
    return 0;
}

static int h2_on_data(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                      const uint8_t *data, size_t len, void *user_data)
{
    struct probe *p = user_data;
    if (stream_id != p->stream_id)
        return 0;
    size_t room = sizeof(p->msg) - p->msg_len;
    size_t n = len < room ? len : room;
    memcpy(p->msg + p->msg_len, data, n);
    p->msg_len += n;
    return 0;
}

/* HealthCheckResponse.status (field 1, varint) of one gRPC message; 0
 * (UNKNOWN) when absent or malformed. */
static uint64_t grpc_serving_status(const uint8_t *m, size_t len)
{
    if (len < 5 || m[0] != 0)
        return 0;
    size_t mlen = ((size_t)m[1] << 24) | ((size_t)m[2] << 16) | ((size_t)m[3] << 8) | m[4];
    if (mlen > len - 5)
        return 0;
    const uint8_t *q = m + 5, *end = m + 5 + mlen;
    uint64_t status = 0;
    while (q < end) {
        uint64_t tag = 0;
        int shift = 0;
        while (q < end && shift < 64) {
            tag |= (uint64_t)(*q & 0x7f) << shift;
            shift += 7;
            if (!(*q++ & 0x80))
                break;
        }
        unsigned wt = tag & 7;
        if (wt == 0) {
            uint64_t v = 0;
            shift = 0;
            while (q < end && shift < 64) {
                v |= (uint64_t)(*q & 0x7f) << shift;
                shift += 7;
                if (!(*q++ & 0x80))
                    break;
            }
            if (tag >> 3 == 1)
                status = v;
        } else if (wt == 2) {
            uint64_t l = 0;
            shift = 0;
            while (q < end && shift < 64) {
                l |= (uint64_t)(*q & 0x7f) << shift;
                shift += 7;
                if (!(*q++ & 0x80))
                    break;
            }
            if (l > (uint64_t)(end - q))
                return 0;
            q += l;
        } else if (wt == 5) {
            q += 4;
        } else if (wt == 1) {
            q += 8;
        } else {
            return 0;
        }
    }
    return status;
}

static int h2_on_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                       void *user_data)
{
    struct probe *p = user_data;
    if (stream_id != p->stream_id)
        return 0;
    if (p->t->s->conf.kind == PT_HEALTH_HTTP) {
        decide(p, PT_HEALTH_LAST_FAILED); /* closed before a final status */
        return 0;
    }
    bool ok = error_code == 0 && p->status == 200 && p->grpc_status == 0 &&
              grpc_serving_status(p->msg, p->msg_len) == 1;
    decide(p, ok ? PT_HEALTH_LAST_OK : PT_HEALTH_LAST_FAILED);
    return 0;
}

static ssize_t body_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    struct probe *p = user_data;
    size_t left = p->body_len - p->body_off;
    size_t n = left < length ? left : length;
    memcpy(buf, p->body + p->body_off, n);
    p->body_off += n;
    if (p->body_off == p->body_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void h2_read(struct pt_conn *c, void *ctx)
{
    struct probe *p = ctx;
    if (p->result != PT_HEALTH_LAST_NONE)
        return;
    size_t len = evbuffer_get_length(c->in);
    if (len) {
        const uint8_t *data = evbuffer_pullup(c->in, (ssize_t)len);
        ssize_t r = nghttp2_session_mem_recv(p->h2, data, len);
        evbuffer_drain(c->in, len);
        if (r < 0) {
            decide(p, PT_HEALTH_LAST_FAILED);
            return;
        }
    }
    if (p->result == PT_HEALTH_LAST_NONE) {
        if (c->read_eof)
            decide(p, PT_HEALTH_LAST_FAILED);
        else
            h2_flush(p);
    }
}

#define NV(n, v)                                                                               \
    {                                                                                          \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME \
    }

static void h2_connected(struct pt_conn *c, void *ctx)
{
    struct probe *p = ctx;
    const struct spec *s = p->t->s;
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        pt_abort_oom(sizeof(void *));
    nghttp2_session_callbacks_set_on_header_callback(cbs, h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2_on_frame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2_on_close);
    int rc = nghttp2_session_client_new(&p->h2, cbs, p);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0)
        pt_abort_oom(sizeof(void *));
    nghttp2_submit_settings(p->h2, NGHTTP2_FLAG_NONE, NULL, 0);
    const char *authority = s->conf.host ? s->conf.host : s->endpoint;
    const char *scheme = s->ssl_ctx ? "https" : "http";
    if (s->conf.kind == PT_HEALTH_GRPC) {
        size_t sl = strlen(s->conf.grpc_service);
        if (sl > 255)
            sl = 255;
        size_t mlen = sl ? 2 + sl : 0;
        uint8_t *b = p->body;
        b[0] = 0;
        b[1] = b[2] = b[3] = 0;
        b[4] = (uint8_t)mlen;
        if (sl) {
            b[5] = 0x0a;
            b[6] = (uint8_t)sl;
            memcpy(b + 7, s->conf.grpc_service, sl);
        }
        p->body_len = 5 + mlen;
        nghttp2_nv nv[] = {
            NV(":method", "POST"),
            NV(":scheme", scheme),
            NV(":path", "/grpc.health.v1.Health/Check"),
            NV(":authority", authority),
            NV("content-type", "application/grpc"),
            NV("te", "trailers"),
            NV("user-agent", "portico-health-check"),
        };
        nghttp2_data_provider dp = {.read_callback = body_read};
        p->stream_id = nghttp2_submit_request(p->h2, NULL, nv, sizeof(nv) / sizeof(nv[0]), &dp, p);
    } else {
        nghttp2_nv nv[] = {
            NV(":method", "GET"),
            NV(":scheme", scheme),
            NV(":path", s->conf.path),
            NV(":authority", authority),
            NV("user-agent", "portico-health-check"),
        };
        p->stream_id = nghttp2_submit_request(p->h2, NULL, nv, sizeof(nv) / sizeof(nv[0]), NULL, p);
    }
    if (p->stream_id < 0) {
        decide(p, PT_HEALTH_LAST_FAILED);
        return;
    }
    p->status = 0;
    p->grpc_status = -1;
    h2_flush(p);
}

static const struct pt_conn_cb h2_cb = {
    .on_read = h2_read,
    .on_connected = h2_connected,
    .on_close = probe_closed,
};

/* --- scheduling ----------------------------------------------------------- */

static uint64_t rng_next(struct target *t)
{
    uint64_t z = (t->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void start_probe(evutil_socket_t fd, short what, void *arg)
{
    struct target *t = arg;
    struct spec *s = t->s;
    if (t->probe)
        return;
    struct probe *p = pt_xcalloc(1, sizeof(*p));
    p->t = t;
    p->done_task.fn = on_done;
    t->probe = p;
    int err = 0;
    uint32_t ct =
        s->connect_timeout_ms < s->conf.timeout_ms ? s->connect_timeout_ms : s->conf.timeout_ms;
    p->conn = pt_conn_connect(&hc.w, (const struct sockaddr *)&s->addr, s->addr_len, ct, s->ssl_ctx,
                              s->sni, s->h2 ? &h2_cb : &h1_cb, p, &err);
    if (!p->conn) {
        decide(p, PT_HEALTH_LAST_CONNECT);
    } else {
        struct timeval tv = {s->conf.timeout_ms / 1000, (s->conf.timeout_ms % 1000) * 1000};
        event_add(t->deadline, &tv);
    }
    pt_worker_run_pending(&hc.w);
}

static void schedule(struct target *t, bool first)
{
    const struct pt_health_check_conf *c = &t->s->conf;
    uint64_t ms = first ? 0 : c->interval_ms;
    if (c->jitter_ms)
        ms += rng_next(t) % ((uint64_t)c->jitter_ms + 1);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    event_add(t->timer, &tv);
}

static void target_free(struct target *t)
{
    probe_free(t->probe);
    event_free(t->timer);
    event_free(t->deadline);
    spec_free(t->s);
    free(t);
}

/* Health thread: apply the latest update. */
static void apply(struct pt_worker *w, void *arg)
{
    (void)w;
    (void)arg;
    pthread_mutex_lock(&hc.mu);
    struct spec *specs = hc.pending;
    bool has = hc.has_pending;
    hc.pending = NULL;
    hc.has_pending = false;
    pthread_mutex_unlock(&hc.mu);
    if (!has)
        return;
    for (struct target *t = hc.targets; t; t = t->next)
        t->seen = false;
    while (specs) {
        struct spec *s = specs;
        specs = s->next;
        s->next = NULL;
        struct target *t = hc.targets;
        while (t && (t->seen || strcmp(t->s->key, s->key) != 0))
            t = t->next;
        if (t) {
            /* Kept: same timer, same state. A check in flight reads its
             * settings through t->s when it needs them, so the new spec
             * can replace the old under it; only a change of what is
             * spoken, or to where, abandons it (checked again at once).
             * Recompiles that change nothing (reloads, discovery) thus
             * never delay or repeat checks. */
            bool moved = t->s->h2 != s->h2 || t->s->conf.kind != s->conf.kind ||
                         t->s->addr_len != s->addr_len ||
                         memcmp(&t->s->addr, &s->addr, s->addr_len) != 0;
            bool resched = t->s->conf.interval_ms != s->conf.interval_ms && !t->probe;
            if (t->probe && moved) {
                probe_free(t->probe);
                t->probe = NULL;
                event_del(t->deadline);
                resched = true;
            }
            spec_free(t->s);
            t->s = s;
            t->seen = true;
            if (resched) {
                event_del(t->timer);
                schedule(t, true);
            }
            continue;
        }
        t = pt_xcalloc(1, sizeof(*t));
        t->s = s;
        t->seen = true;
        t->rng = pt_time_mono_ns() ^ (uintptr_t)t;
        t->timer = event_new(hc.w.base, -1, 0, start_probe, t);
        t->deadline = event_new(hc.w.base, -1, 0, on_deadline, t);
        t->next = hc.targets;
        hc.targets = t;
        pt_log_debug("health check: %s (%s, every %u ms)", s->key,
                     s->conf.kind == PT_HEALTH_GRPC ? "grpc" : "http", s->conf.interval_ms);
        schedule(t, true);
    }
    /* Gone: stop checking; the instance no longer has an active verdict. */
    for (struct target **pp = &hc.targets; *pp;) {
        struct target *t = *pp;
        if (t->seen) {
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        pt_health_check_reset(t->s->health);
        target_free(t);
    }
}

static void stop_thread(struct pt_worker *w, void *arg)
{
    (void)arg;
    while (hc.targets) {
        struct target *t = hc.targets;
        hc.targets = t->next;
        target_free(t);
    }
    pt_conn_free_all();
    pt_worker_stop(w);
}

/* --- API ------------------------------------------------------------------ */

void pt_hcheck_update(const struct pt_service *services, size_t n)
{
    pthread_mutex_lock(&hc.mu);
    bool stopped = hc.stopped;
    pthread_mutex_unlock(&hc.mu);
    if (stopped)
        return;
    struct spec *specs = specs_of(services, n);
    pthread_mutex_lock(&hc.mu);
    if (hc.stopped) {
        pthread_mutex_unlock(&hc.mu);
        spec_free(specs);
        return;
    }
    struct spec *old = hc.pending;
    hc.pending = specs;
    bool post = hc.started && !hc.has_pending;
    hc.has_pending = true;
    if (post)
        pt_worker_post(&hc.w, apply, NULL);
    pthread_mutex_unlock(&hc.mu);
    spec_free(old);
}

int pt_hcheck_start(void)
{
    pthread_mutex_lock(&hc.mu);
    if (hc.started || hc.stopped) {
        pthread_mutex_unlock(&hc.mu);
        return 0;
    }
    if (pt_worker_init(&hc.w, HCHECK_WORKER_ID) != 0) {
        pthread_mutex_unlock(&hc.mu);
        return PT_ERR_INTERNAL;
    }
    if (pt_worker_start(&hc.w) != 0) {
        pt_worker_fini(&hc.w);
        pthread_mutex_unlock(&hc.mu);
        return PT_ERR_INTERNAL;
    }
    hc.started = true;
    if (hc.has_pending)
        pt_worker_post(&hc.w, apply, NULL);
    pthread_mutex_unlock(&hc.mu);
    return 0;
}

void pt_hcheck_stop(void)
{
    pthread_mutex_lock(&hc.mu);
    bool started = hc.started;
    hc.started = false;
    hc.stopped = true;
    struct spec *pending = hc.pending;
    hc.pending = NULL;
    hc.has_pending = false;
    pthread_mutex_unlock(&hc.mu);
    spec_free(pending);
    if (!started)
        return;
    pt_worker_post(&hc.w, stop_thread, NULL);
    pt_worker_join(&hc.w);
    pt_worker_fini(&hc.w);
}
