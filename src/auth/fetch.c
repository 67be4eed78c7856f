#include "auth/fetch.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/deliver.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/time.h"
#include "portico/errors.h"

/* The fetch thread's worker id (not a proxy worker). */
#define FETCH_WORKER_ID 0xffffeu
#define MAX_RESPONSE_HEADERS (64 * 1024)
#define MAX_HOOKS 4

/* Who may touch a fetch, under ft.mu (see the diagram in fetch.h). */
enum fstate {
    F_ENGINE,     /* queued or running: the fetch thread owns the network side */
    F_DONE,       /* result ready, delivery queued for reply_to */
    F_DELIVERING, /* the callback is running */
};

struct pt_fetch {
    atomic_uint refs; /* owner + engine (+ an abort message in flight) */

    /* The request, immutable after pt_fetch_start(). */
    enum evhttp_cmd_type cmd;
    bool https;
    bool host_is_ip;
    char *host; /* for connect and certificate checks: no brackets */
    uint16_t port;
    char *target; /* path?query */
    char *host_header;
    char *hdr_names[PT_FETCH_MAX_HEADERS];
    char *hdr_values[PT_FETCH_MAX_HEADERS];
    size_t nheaders;
    char *body;
    size_t body_len;
    char *content_type;
    char *ca_file;
    uint32_t timeout_ms, connect_timeout_ms;
    size_t max_bytes;
    uint64_t start_ns;

    /* The owner's side. */
    pt_fetch_done_fn *cb;
    void *arg;
    struct pt_auth_deliv deliv;

    /* Under ft.mu. */
    enum fstate state;
    bool cancelled;

    /* Fetch thread only. */
    bool engine_done;         /* ended here: nothing left to tear down */
    bool waiting, in_running; /* in ft.waiting / ft.running */
    struct pt_fetch *next, *prev;
    struct evhttp_connection *conn;
    struct bufferevent *bev; /* https: ours until the connection takes it */
    SSL *ssl;                /* borrowed from bev */
    struct event *deadline;
    struct pt_deferred finish_task;
    bool have_result;
    int sock_err;
    int http_err; /* enum evhttp_request_error + 1; 0 = none */

    /* The result. */
    struct pt_fetch_result res;
    char errbuf[200];
    char *resp_body;
    char *resp_ctype;
};

struct ctx_entry {
    struct ctx_entry *next;
    char *ca_file; /* NULL: the system store */
    SSL_CTX *ctx;
    struct stat st; /* of ca_file when loaded: reloaded when it changes */
};

struct fetch_list {
    struct pt_fetch *head, *tail;
    unsigned n;
};

static struct {
    pthread_mutex_t mu;
    bool started; /* the thread exists */
    bool running; /* accepting work (posts) */
    struct pt_worker w;
    struct pt_fetch_thread_conf conf;
    const struct pt_auth_fetch_hooks *hooks[MAX_HOOKS];
    int nhooks;

    /* Fetch thread only. */
    bool stopping;
    struct evdns_base *dns;
    struct fetch_list running_list, waiting_list;
    struct ctx_entry *ctxs;
} ft = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* --- handles -------------------------------------------------------------- */

static void fetch_unref(struct pt_fetch *f)
{
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(f->host);
    free(f->target);
    free(f->host_header);
    for (size_t i = 0; i < f->nheaders; i++) {
        free(f->hdr_names[i]);
        free(f->hdr_values[i]);
    }
    free(f->body);
    free(f->content_type);
    free(f->ca_file);
    free(f->resp_body);
    free(f->resp_ctype);
    free(f);
}

static void list_add(struct fetch_list *l, struct pt_fetch *f)
{
    f->next = NULL;
    f->prev = l->tail;
    if (l->tail)
        l->tail->next = f;
    else
        l->head = f;
    l->tail = f;
    l->n++;
}

static void list_del(struct fetch_list *l, struct pt_fetch *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        l->head = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else
        l->tail = f->prev;
    f->next = f->prev = NULL;
    l->n--;
}

/* --- posting to the fetch thread ------------------------------------------ */

static int post_locked(pt_worker_msg_fn *fn, void *arg)
{
    if (!ft.running)
        return PT_ERR_SHUTTING_DOWN;
    pt_worker_post(&ft.w, fn, arg);
    return 0;
}

int pt_auth_fetch_thread_post(pt_worker_msg_fn *fn, void *arg)
{
    pthread_mutex_lock(&ft.mu);
    int rc = post_locked(fn, arg);
    pthread_mutex_unlock(&ft.mu);
    return rc;
}

bool pt_auth_fetch_thread_running(void)
{
    pthread_mutex_lock(&ft.mu);
    bool r = ft.running;
    pthread_mutex_unlock(&ft.mu);
    return r;
}

struct pt_worker *pt_auth_fetch_thread_worker(void)
{
    pthread_mutex_lock(&ft.mu);
    struct pt_worker *w = ft.started ? &ft.w : NULL;
    pthread_mutex_unlock(&ft.mu);
    return w;
}

void pt_auth_fetch_add_hooks(const struct pt_auth_fetch_hooks *hooks)
{
    pthread_mutex_lock(&ft.mu);
    bool have = false;
    for (int i = 0; i < ft.nhooks; i++)
        have = have || ft.hooks[i] == hooks;
    if (!have && ft.nhooks < MAX_HOOKS)
        ft.hooks[ft.nhooks++] = hooks;
    else if (!have)
        pt_log_error("auth fetch: too many hook sets; one ignored");
    pthread_mutex_unlock(&ft.mu);
}

/* --- results and delivery ------------------------------------------------- */

static void deliver_run(struct pt_auth_deliv *d)
{
    struct pt_fetch *f = (struct pt_fetch *)((char *)d - offsetof(struct pt_fetch, deliv));
    pthread_mutex_lock(&ft.mu);
    f->state = F_DELIVERING;
    pthread_mutex_unlock(&ft.mu);
    f->cb(f, &f->res, f->arg);
    fetch_unref(f); /* the engine's reference, carried by the delivery */
    fetch_unref(f); /* the owner's: the handle is gone */
}

static void set_error(struct pt_fetch *f, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(struct pt_fetch *f, int err, const char *fmt, ...)
{
    if (f->have_result)
        return;
    f->have_result = true;
    f->res.err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->errbuf, sizeof(f->errbuf), fmt, ap);
    va_end(ap);
    f->res.error = f->errbuf;
}

static void start_waiting(void);
static void on_finish(struct pt_deferred *d);

/* Fetch thread: release the network side of f (no callbacks follow). */
static void teardown(struct pt_fetch *f)
{
    pt_worker_cancel_deferred(&ft.w, &f->finish_task);
    if (f->deadline) {
        event_free(f->deadline);
        f->deadline = NULL;
    }
    if (f->conn) {
        evhttp_connection_free(f->conn); /* frees a pending request without its callback */
        f->conn = NULL;
        f->bev = NULL;
        f->ssl = NULL;
    }
    if (f->bev) { /* created, never handed to a connection */
        bufferevent_free(f->bev);
        f->bev = NULL;
        f->ssl = NULL;
    }
    if (f->in_running) {
        list_del(&ft.running_list, f);
        f->in_running = false;
    }
    if (f->waiting) {
        list_del(&ft.waiting_list, f);
        f->waiting = false;
    }
    f->engine_done = true;
}

/* Fetch thread: f has its result (or was cancelled); end it here and hand
 * the result to its owner. */
static void complete(struct pt_fetch *f)
{
    bool ran = f->in_running;
    teardown(f);
    pthread_mutex_lock(&ft.mu);
    bool cancelled = f->cancelled;
    if (!cancelled) {
        f->state = F_DONE;
        pt_auth_deliv_queue(&f->deliv); /* the engine reference goes with it */
    }
    pthread_mutex_unlock(&ft.mu);
    if (cancelled)
        fetch_unref(f);
    else
        pt_auth_deliv_wake(f->deliv.to);
    if (ran && !ft.stopping)
        start_waiting();
}

static void on_finish(struct pt_deferred *d)
{
    struct pt_fetch *f = (struct pt_fetch *)((char *)d - offsetof(struct pt_fetch, finish_task));
    complete(f);
}

/* --- evhttp callbacks ----------------------------------------------------- */

static void describe_failure(struct pt_fetch *f)
{
    enum evhttp_request_error e = (enum evhttp_request_error)(f->http_err - 1);
    if (f->http_err && e == EVREQ_HTTP_TIMEOUT) {
        set_error(f, PT_ERR_TIMEOUT, "no progress within %u ms (connect or read)",
                  f->connect_timeout_ms);
        return;
    }
    if (f->http_err && e == EVREQ_HTTP_DATA_TOO_LONG) {
        set_error(f, PT_ERR_LIMIT, "response larger than %zu bytes (or headers over %d)",
                  f->max_bytes, MAX_RESPONSE_HEADERS);
        return;
    }
    if (f->http_err && e == EVREQ_HTTP_INVALID_HEADER) {
        set_error(f, PT_ERR_UPSTREAM_PROTOCOL, "malformed HTTP response");
        return;
    }
    if (f->ssl) {
        long vr = SSL_get_verify_result(f->ssl);
        if (vr != X509_V_OK) {
            set_error(f, PT_ERR_UPSTREAM_CONNECT, "TLS: certificate verification failed: %s",
                      X509_verify_cert_error_string(vr));
            return;
        }
        unsigned long tls =
            f->conn ? bufferevent_get_openssl_error(evhttp_connection_get_bufferevent(f->conn)) : 0;
        if (tls) {
            char buf[120];
            ERR_error_string_n(tls, buf, sizeof(buf));
            set_error(f, PT_ERR_UPSTREAM_CONNECT, "TLS: %s", buf);
            return;
        }
    }
    if (f->http_err && f->sock_err) {
        set_error(f, PT_ERR_UPSTREAM_CONNECT, "%s:%u: %s", f->host, f->port, strerror(f->sock_err));
        return;
    }
    if (f->http_err) {
        set_error(f, PT_ERR_UPSTREAM_CONNECT, "%s:%u: connection closed without a response",
                  f->host, f->port);
        return;
    }
    /* evhttp reports a failed connect without an error callback, and has
     * closed the socket (and lost errno) by then. */
    set_error(f, PT_ERR_UPSTREAM_CONNECT, "%s:%u: connection refused or failed", f->host, f->port);
}

static void on_req_error(enum evhttp_request_error e, void *arg)
{
    struct pt_fetch *f = arg;
    f->http_err = (int)e + 1;
    int se = EVUTIL_SOCKET_ERROR();
    f->sock_err = (se == EAGAIN || se == EINPROGRESS) ? 0 : se;
}

static void on_response(struct evhttp_request *req, void *arg)
{
    struct pt_fetch *f = arg;
    if (f->have_result)
        return;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (!req || code <= 0) {
        describe_failure(f);
    } else {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        if (len > f->max_bytes) {
            set_error(f, PT_ERR_LIMIT, "response larger than %zu bytes", f->max_bytes);
        } else {
            f->resp_body = pt_xmalloc(len + 1);
            evbuffer_remove(in, f->resp_body, len);
            f->resp_body[len] = '\0';
            const char *ct =
                evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
            f->resp_ctype = pt_xstrdup(ct ? ct : "");
            f->have_result = true;
            f->res.err = 0;
            f->res.status = code;
            f->res.body = f->resp_body;
            f->res.body_len = len;
            f->res.content_type = pt_str_from_cstr(f->resp_ctype);
        }
    }
    /* evhttp still uses the connection after this callback: free it later. */
    pt_worker_defer(&ft.w, &f->finish_task);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pt_fetch *f = arg;
    if (f->have_result)
        return; /* finishing already */
    set_error(f, PT_ERR_TIMEOUT, "no complete response within %u ms", f->timeout_ms);
    complete(f);
}

/* --- TLS contexts --------------------------------------------------------- */

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Fetch thread. Pointer: the client context for ca_file (NULL = system
 * store), built once and rebuilt when the file changes; or NULL with the
 * reason in buf. */
static SSL_CTX *ctx_get(const char *ca_file, char *buf, size_t len)
{
    struct stat st;
    memset(&st, 0, sizeof(st));
    if (ca_file && stat(ca_file, &st) != 0) {
        snprintf(buf, len, "CA file %s: %s", ca_file, strerror(errno));
        return NULL;
    }
    struct ctx_entry **pp = &ft.ctxs;
    for (; *pp; pp = &(*pp)->next) {
        struct ctx_entry *e = *pp;
        bool match = ca_file ? (e->ca_file && strcmp(e->ca_file, ca_file) == 0) : !e->ca_file;
        if (!match)
            continue;
        if (!ca_file || same_file(&e->st, &st))
            return e->ctx;
        *pp = e->next; /* changed on disk: load it again */
        SSL_CTX_free(e->ctx);
        free(e->ca_file);
        free(e);
        break;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(buf, len, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        char e[120];
        ERR_error_string_n(ERR_get_error(), e, sizeof(e));
        ERR_clear_error();
        snprintf(buf, len, "CA %s: %s", ca_file ? ca_file : "(system store)", e);
        SSL_CTX_free(ctx);
        return NULL;
    }
    struct ctx_entry *e = pt_xcalloc(1, sizeof(*e));
    e->ca_file = ca_file ? pt_xstrdup(ca_file) : NULL;
    e->ctx = ctx;
    e->st = st;
    e->next = ft.ctxs;
    ft.ctxs = e;
    return ctx;
}

static void ctx_free_all(void)
{
    while (ft.ctxs) {
        struct ctx_entry *e = ft.ctxs;
        ft.ctxs = e->next;
        SSL_CTX_free(e->ctx);
        free(e->ca_file);
        free(e);
    }
}

/* --- running a fetch ------------------------------------------------------ */

/* Fetch thread: open the connection and send the request. On failure f
 * has its result (complete() follows from the caller). */
static bool launch(struct pt_fetch *f)
{
    struct event_base *base = ft.w.base;
    if (f->https) {
        SSL_CTX *ctx = ctx_get(f->ca_file, f->errbuf, sizeof(f->errbuf));
        if (!ctx) {
            char why[sizeof(f->errbuf)];
            memcpy(why, f->errbuf, sizeof(why));
            set_error(f, PT_ERR_UPSTREAM_CONNECT, "TLS: %s", why);
            return false;
        }
        SSL *ssl = SSL_new(ctx);
        if (!ssl) {
            set_error(f, PT_ERR_INTERNAL, "TLS: cannot create a session");
            return false;
        }
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        int ok;
        if (f->host_is_ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(vp, f->host);
        } else {
            X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = X509_VERIFY_PARAM_set1_host(vp, f->host, 0) == 1 &&
                 SSL_set_tlsext_host_name(ssl, f->host) == 1;
        }
        if (ok != 1) {
            SSL_free(ssl);
            set_error(f, PT_ERR_UPSTREAM_CONNECT, "TLS: cannot check host %s", f->host);
            return false;
        }
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        f->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!f->bev) {
            SSL_free(ssl);
            set_error(f, PT_ERR_INTERNAL, "TLS: cannot create a connection");
            return false;
        }
        /* Servers often close without close_notify. Bodies are framed by
         * Content-Length or chunking, which evhttp checks; a body read
         * until close could be cut short, and then fails to parse. */
        bufferevent_openssl_set_allow_dirty_shutdown(f->bev, 1);
        f->ssl = ssl;
    }
    f->conn = evhttp_connection_base_bufferevent_new(base, ft.dns, f->bev, f->host, f->port);
    if (!f->conn) {
        set_error(f, PT_ERR_INTERNAL, "cannot create a connection to %s:%u", f->host, f->port);
        return false;
    }
    struct timeval tv = {f->connect_timeout_ms / 1000, (f->connect_timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(f->conn, &tv);
    evhttp_connection_set_retries(f->conn, 0);
    evhttp_connection_set_max_headers_size(f->conn, MAX_RESPONSE_HEADERS);
    evhttp_connection_set_max_body_size(f->conn, (ev_ssize_t)f->max_bytes);

    struct evhttp_request *req = evhttp_request_new(on_response, f);
    if (!req) {
        set_error(f, PT_ERR_INTERNAL, "cannot create a request");
        return false;
    }
    evhttp_request_set_error_cb(req, on_req_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", f->host_header);
    evhttp_add_header(h, "Connection", "close");
    evhttp_add_header(h, "User-Agent", "portico");
    if (f->content_type)
        evhttp_add_header(h, "Content-Type", f->content_type);
    for (size_t i = 0; i < f->nheaders; i++)
        evhttp_add_header(h, f->hdr_names[i], f->hdr_values[i]);
    if (f->body) {
        char cl[24];
        snprintf(cl, sizeof(cl), "%zu", f->body_len);
        evhttp_add_header(h, "Content-Length", cl);
        evbuffer_add(evhttp_request_get_output_buffer(req), f->body, f->body_len);
    }
    /* On failure evhttp has freed req. */
    if (evhttp_make_request(f->conn, req, f->cmd, f->target) != 0) {
        set_error(f, PT_ERR_UPSTREAM_CONNECT, "cannot send the request to %s:%u", f->host, f->port);
        return false;
    }
    return true;
}

static void run_one(struct pt_fetch *f)
{
    list_add(&ft.running_list, f);
    f->in_running = true;
    if (!launch(f))
        complete(f); /* inside a message or a deferred task: never the caller's call */
}

static void start_waiting(void)
{
    uint32_t max = ft.conf.max_concurrent;
    while (ft.waiting_list.head && ft.running_list.n < max) {
        struct pt_fetch *f = ft.waiting_list.head;
        list_del(&ft.waiting_list, f);
        f->waiting = false;
        run_one(f);
    }
}

static void begin_msg(struct pt_worker *w, void *arg)
{
    (void)w;
    struct pt_fetch *f = arg;
    pthread_mutex_lock(&ft.mu);
    bool cancelled = f->cancelled;
    pthread_mutex_unlock(&ft.mu);
    if (cancelled) {
        f->engine_done = true;
        fetch_unref(f);
        return;
    }
    if (ft.stopping) {
        set_error(f, PT_ERR_SHUTTING_DOWN, "the auth fetch thread is stopping");
        complete(f);
        return;
    }
    uint64_t spent_ms = (pt_time_mono_ns() - f->start_ns) / 1000000u;
    if (spent_ms >= f->timeout_ms) {
        set_error(f, PT_ERR_TIMEOUT, "no complete response within %u ms (queued)", f->timeout_ms);
        complete(f);
        return;
    }
    uint64_t left = f->timeout_ms - spent_ms;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000)};
    f->deadline = event_new(ft.w.base, -1, 0, on_deadline, f);
    event_add(f->deadline, &tv);
    if (ft.running_list.n < ft.conf.max_concurrent) {
        run_one(f);
    } else if (ft.waiting_list.n < ft.conf.max_queued) {
        list_add(&ft.waiting_list, f);
        f->waiting = true;
    } else {
        set_error(f, PT_ERR_AGAIN, "too many fetches in flight (%u) and queued (%u)",
                  ft.conf.max_concurrent, ft.conf.max_queued);
        complete(f);
    }
}

static void abort_msg(struct pt_worker *w, void *arg)
{
    (void)w;
    struct pt_fetch *f = arg;
    if (!f->engine_done) {
        bool ran = f->in_running;
        teardown(f);
        fetch_unref(f); /* the engine's */
        if (ran && !ft.stopping)
            start_waiting();
    }
    fetch_unref(f); /* this message's */
}

/* --- requests ------------------------------------------------------------- */

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static bool valid_header_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c))
            return false;
    }
    return true;
}

/* Parsed URL pieces, owned by the caller when parse_url succeeds. */
struct url_parts {
    bool https;
    bool host_is_ip;
    char *host;
    uint16_t port;
    char *target;
    char *host_header;
};

static int parse_url(const char *url, struct url_parts *u, const char **why)
{
    memset(u, 0, sizeof(*u));
    if (!url || !*url) {
        *why = "empty URL";
        return PT_ERR_INVALID;
    }
    if (has_ctl(url) || strchr(url, ' ')) {
        *why = "control characters or spaces in the URL";
        return PT_ERR_INVALID;
    }
    struct evhttp_uri *uri = evhttp_uri_parse_with_flags(url, 0);
    if (!uri) {
        *why = "not a valid URL";
        return PT_ERR_INVALID;
    }
    int rc = PT_ERR_INVALID;
    const char *scheme = evhttp_uri_get_scheme(uri);
    const char *host = evhttp_uri_get_host(uri);
    int port = evhttp_uri_get_port(uri);
    if (!scheme || (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        *why = "the URL's scheme must be http or https";
        goto out;
    }
    if (!host || !*host) {
        *why = "the URL has no host";
        goto out;
    }
    if (evhttp_uri_get_userinfo(uri)) {
        *why = "credentials in the URL are not supported";
        goto out;
    }
    u->https = strcasecmp(scheme, "https") == 0;
    if (port == 0 || port > 65535) {
        *why = "the URL's port is out of range";
        goto out;
    }
    u->port = (uint16_t)(port > 0 ? port : u->https ? 443 : 80);
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']')
        u->host = pt_xstrndup(host + 1, hl - 2);
    else
        u->host = pt_xstrdup(host);
    unsigned char addr[16];
    bool v6 = inet_pton(AF_INET6, u->host, addr) == 1;
    u->host_is_ip = v6 || inet_pton(AF_INET, u->host, addr) == 1;
    const char *path = evhttp_uri_get_path(uri);
    const char *query = evhttp_uri_get_query(uri);
    if (!path || !*path)
        path = "/";
    size_t tl = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
    u->target = pt_xmalloc(tl);
    snprintf(u->target, tl, "%s%s%s", path, query ? "?" : "", query ? query : "");
    size_t hhl = strlen(u->host) + 16;
    u->host_header = pt_xmalloc(hhl);
    bool default_port = port < 0 || (u->https ? port == 443 : port == 80);
    if (default_port)
        snprintf(u->host_header, hhl, v6 ? "[%s]" : "%s", u->host);
    else
        snprintf(u->host_header, hhl, v6 ? "[%s]:%u" : "%s:%u", u->host, u->port);
    rc = 0;
out:
    evhttp_uri_free(uri);
    if (rc != 0) {
        free(u->host);
        free(u->target);
        free(u->host_header);
        memset(u, 0, sizeof(*u));
    }
    return rc;
}

int pt_fetch_url_check(const char *url, const char **why)
{
    struct url_parts u;
    const char *w = NULL;
    int rc = parse_url(url, &u, &w);
    if (rc == 0) {
        free(u.host);
        free(u.target);
        free(u.host_header);
    } else if (why) {
        *why = w;
    }
    return rc;
}

static const struct {
    const char *name;
    enum evhttp_cmd_type cmd;
} methods[] = {
    {"GET", EVHTTP_REQ_GET},         {"POST", EVHTTP_REQ_POST},     {"HEAD", EVHTTP_REQ_HEAD},
    {"PUT", EVHTTP_REQ_PUT},         {"DELETE", EVHTTP_REQ_DELETE}, {"PATCH", EVHTTP_REQ_PATCH},
    {"OPTIONS", EVHTTP_REQ_OPTIONS},
};

struct pt_fetch *pt_fetch_start(const struct pt_fetch_req *req, struct pt_worker *reply_to,
                                pt_fetch_done_fn *cb, void *arg, int *err, const char **why)
{
    const char *w = NULL;
    int dummy;
    if (!err)
        err = &dummy;
    if (!why)
        why = &w;
    if (!req || !cb) {
        *why = "no request or callback";
        *err = PT_ERR_INVALID;
        return NULL;
    }
    const char *method = req->method ? req->method : "GET";
    int m = -1;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(methods[i].name, method) == 0)
            m = (int)i;
    if (m < 0) {
        *why = "unsupported method";
        *err = PT_ERR_INVALID;
        return NULL;
    }
    if (req->nheaders > PT_FETCH_MAX_HEADERS || (req->nheaders && !req->headers)) {
        *why = "too many request headers";
        *err = PT_ERR_INVALID;
        return NULL;
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct pt_fetch_header *h = &req->headers[i];
        if (!h->name || !h->value || !valid_header_name(h->name) || has_ctl(h->value)) {
            *why = "invalid request header";
            *err = PT_ERR_INVALID;
            return NULL;
        }
    }
    if (req->content_type && has_ctl(req->content_type)) {
        *why = "invalid content type";
        *err = PT_ERR_INVALID;
        return NULL;
    }
    struct url_parts u;
    if (parse_url(req->url, &u, why) != 0) {
        *err = PT_ERR_INVALID;
        return NULL;
    }
    struct pt_fetch *f = pt_xcalloc(1, sizeof(*f));
    atomic_init(&f->refs, 2); /* owner + engine */
    f->cmd = methods[m].cmd;
    f->https = u.https;
    f->host_is_ip = u.host_is_ip;
    f->host = u.host;
    f->port = u.port;
    f->target = u.target;
    f->host_header = u.host_header;
    for (size_t i = 0; i < req->nheaders; i++) {
        f->hdr_names[i] = pt_xstrdup(req->headers[i].name);
        f->hdr_values[i] = pt_xstrdup(req->headers[i].value);
    }
    f->nheaders = req->nheaders;
    if (req->body) {
        f->body = pt_xmalloc(req->body_len + 1);
        memcpy(f->body, req->body, req->body_len);
        f->body_len = req->body_len;
    }
    f->content_type = req->content_type ? pt_xstrdup(req->content_type) : NULL;
    f->ca_file = req->ca_file ? pt_xstrdup(req->ca_file) : NULL;
    f->timeout_ms = req->timeout_ms ? req->timeout_ms : PT_FETCH_DEFAULT_TIMEOUT_MS;
    f->connect_timeout_ms =
        req->connect_timeout_ms ? req->connect_timeout_ms : PT_FETCH_DEFAULT_CONNECT_TIMEOUT_MS;
    if (f->connect_timeout_ms > f->timeout_ms)
        f->connect_timeout_ms = f->timeout_ms;
    f->max_bytes =
        req->max_response_bytes ? req->max_response_bytes : PT_FETCH_DEFAULT_MAX_RESPONSE;
    f->start_ns = pt_time_mono_ns();
    f->cb = cb;
    f->arg = arg;
    f->deliv.to = reply_to;
    f->deliv.run = deliver_run;
    f->finish_task.fn = on_finish;
    f->state = F_ENGINE;

    pthread_mutex_lock(&ft.mu);
    int rc = post_locked(begin_msg, f);
    pthread_mutex_unlock(&ft.mu);
    if (rc != 0) {
        atomic_store(&f->refs, 1);
        fetch_unref(f);
        *why = "the auth fetch thread is not running";
        *err = rc;
        return NULL;
    }
    return f;
}

void pt_fetch_cancel(struct pt_fetch *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&ft.mu);
    switch (f->state) {
    case F_DELIVERING:
        pthread_mutex_unlock(&ft.mu);
        return; /* inside its own callback: the handle ends when it returns */
    case F_ENGINE:
        f->cancelled = true;
        /* Stop the network side early; without a running thread the
         * engine sees `cancelled` when it gets to f. */
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
        if (post_locked(abort_msg, f) != 0)
            atomic_fetch_sub_explicit(&f->refs, 1, memory_order_relaxed);
        pthread_mutex_unlock(&ft.mu);
        fetch_unref(f);
        return;
    case F_DONE:
        /* The delivery is queued for this thread, which is the only one
         * that runs it: it cannot start while we take it back. */
        if (pt_auth_deliv_unqueue(&f->deliv)) {
            pthread_mutex_unlock(&ft.mu);
            fetch_unref(f); /* the delivery's */
            fetch_unref(f); /* the owner's */
            return;
        }
        pthread_mutex_unlock(&ft.mu);
        return;
    }
    pthread_mutex_unlock(&ft.mu);
}

/* --- the thread ----------------------------------------------------------- */

static void start_msg(struct pt_worker *w, void *arg)
{
    (void)w;
    (void)arg;
    ft.dns = evdns_base_new(ft.w.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!ft.dns)
        pt_log_warn("auth fetch: no DNS resolver configuration; host names resolve blocking");
    pthread_mutex_lock(&ft.mu);
    int n = ft.nhooks;
    const struct pt_auth_fetch_hooks *hooks[MAX_HOOKS];
    memcpy(hooks, ft.hooks, sizeof(hooks));
    pthread_mutex_unlock(&ft.mu);
    for (int i = 0; i < n; i++)
        if (hooks[i]->on_start)
            hooks[i]->on_start();
}

static void stop_msg(struct pt_worker *w, void *arg)
{
    (void)arg;
    ft.stopping = true;
    pthread_mutex_lock(&ft.mu);
    ft.running = false;
    int n = ft.nhooks;
    const struct pt_auth_fetch_hooks *hooks[MAX_HOOKS];
    memcpy(hooks, ft.hooks, sizeof(hooks));
    pthread_mutex_unlock(&ft.mu);
    for (int i = 0; i < n; i++)
        if (hooks[i]->on_stop)
            hooks[i]->on_stop();
    while (ft.waiting_list.head || ft.running_list.head) {
        struct pt_fetch *f = ft.waiting_list.head ? ft.waiting_list.head : ft.running_list.head;
        set_error(f, PT_ERR_SHUTTING_DOWN, "the auth fetch thread is stopping");
        complete(f);
    }
    pt_auth_deliv_drain(NULL);
    if (ft.dns) {
        evdns_base_free(ft.dns, 1);
        ft.dns = NULL;
    }
    pt_worker_stop(w);
}

int pt_auth_fetch_start_thread(const struct pt_fetch_thread_conf *conf)
{
    pthread_mutex_lock(&ft.mu);
    if (ft.started) {
        pthread_mutex_unlock(&ft.mu);
        return 0;
    }
    ft.conf.max_concurrent =
        conf && conf->max_concurrent ? conf->max_concurrent : PT_FETCH_DEFAULT_MAX_CONCURRENT;
    ft.conf.max_queued = conf && conf->max_queued ? conf->max_queued : PT_FETCH_DEFAULT_MAX_QUEUED;
    ft.stopping = false;
    if (pt_worker_init(&ft.w, FETCH_WORKER_ID) != 0) {
        pt_worker_fini(&ft.w);
        pthread_mutex_unlock(&ft.mu);
        return PT_ERR_INTERNAL;
    }
    pt_worker_post(&ft.w, start_msg, NULL); /* first in the inbox */
    /* Accepting work before the thread runs: whatever is posted meanwhile
     * queues behind start_msg, and start hooks see a running thread. */
    ft.started = true;
    ft.running = true;
    if (pt_worker_start(&ft.w) != 0) {
        ft.started = false;
        ft.running = false;
        pt_worker_fini(&ft.w);
        pthread_mutex_unlock(&ft.mu);
        return PT_ERR_INTERNAL;
    }
    pthread_mutex_unlock(&ft.mu);
    return 0;
}

void pt_auth_fetch_stop_thread(void)
{
    pthread_mutex_lock(&ft.mu);
    bool started = ft.started;
    pthread_mutex_unlock(&ft.mu);
    if (!started)
        return;
    pt_worker_post(&ft.w, stop_msg, NULL);
    pt_worker_join(&ft.w);
    /* Messages posted before stop_msg cleared `running` but after the
     * loop's last read of its inbox are still queued: run them here (the
     * thread is gone; this thread now owns the loop). Their handlers see
     * `stopping`. Bounded: nothing can be posted any more. */
    event_base_loop(ft.w.base, EVLOOP_NONBLOCK);
    pt_worker_run_pending(&ft.w);
    pt_auth_deliv_drain(NULL);
    ctx_free_all();
    pthread_mutex_lock(&ft.mu);
    pt_worker_fini(&ft.w);
    ft.started = false;
    pthread_mutex_unlock(&ft.mu);
}
