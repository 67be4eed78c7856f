/*
 * auth/fetch.h - the auth fetch thread: small outbound HTTP(S) requests for
 * authentication (JWKS documents, token introspection), off the workers.
 *
 * One thread with its own event loop (a pt_worker that runs no proxy), like
 * the health-check thread. A worker calls pt_fetch_start(); the request is
 * handed to the fetch thread, which speaks HTTP/1.1 with libevent's evhttp
 * client (one connection per fetch, `Connection: close`; https through
 * bufferevent_openssl: the server certificate is verified against the
 * request's CA file or the system store, the host name or IP address is
 * checked, SNI is sent). The result is delivered on the worker given as
 * reply_to, from its loop, never inside pt_fetch_start().
 *
 *   worker: start ──> QUEUED ──(fetch thread: a slot is free)──> RUNNING
 *           RUNNING ──response, error, timeout──> DONE ──(reply_to's loop)──> callback
 *           cancel (reply_to's thread): QUEUED/RUNNING/DONE ──> the callback never runs
 *
 * Bounds (all with defaults): at most max_concurrent fetches in flight and
 * max_queued waiting for a slot (beyond: PT_ERR_AGAIN, fast); a connect
 * timeout (which also bounds each read/write stall) and a total timeout
 * counted from pt_fetch_start(); response headers of at most 64 KiB and a
 * body of at most max_response_bytes. Redirects are never followed: a 3xx
 * is delivered as a response like any other. No retries.
 *
 * Threads: start/stop the thread from the main thread; pt_fetch_start from
 * any thread; pt_fetch_cancel on reply_to's thread (the fetch thread when
 * reply_to is NULL).
 */
#ifndef PT_AUTH_FETCH_H
#define PT_AUTH_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/worker.h"
#include "portico/str.h"

#define PT_FETCH_DEFAULT_MAX_CONCURRENT 64u
#define PT_FETCH_DEFAULT_MAX_QUEUED 1024u
#define PT_FETCH_DEFAULT_TIMEOUT_MS 5000u
#define PT_FETCH_DEFAULT_CONNECT_TIMEOUT_MS 2000u
#define PT_FETCH_DEFAULT_MAX_RESPONSE (1024u * 1024u)
#define PT_FETCH_MAX_HEADERS 16

struct pt_fetch_thread_conf {
    uint32_t max_concurrent; /* 0 = PT_FETCH_DEFAULT_MAX_CONCURRENT */
    uint32_t max_queued;     /* 0 = PT_FETCH_DEFAULT_MAX_QUEUED */
};

/* Status: 0 or PT_ERR_INTERNAL. conf NULL = defaults. Idempotent while
 * running; the thread may be started again after a stop. Main thread. */
int pt_auth_fetch_start_thread(const struct pt_fetch_thread_conf *conf);
/* Stop the thread: fetches in flight or queued end with
 * PT_ERR_SHUTTING_DOWN (delivered like any result; the fetch thread's own
 * callbacks run before this returns), later pt_fetch_start() calls fail.
 * Safe when not started. Main thread. */
void pt_auth_fetch_stop_thread(void);
/* Is the thread accepting work? Thread: any. */
bool pt_auth_fetch_thread_running(void);

struct pt_fetch_header {
    const char *name; /* NUL-terminated; no CR, LF or ':' in names */
    const char *value;
};

/* A request; everything is copied by pt_fetch_start(). */
struct pt_fetch_req {
    const char *method; /* NULL = "GET" */
    const char *url;    /* http://host[:port]/path?query or https://...; no userinfo */
    const struct pt_fetch_header *headers; /* extra request headers */
    size_t nheaders;                       /* at most PT_FETCH_MAX_HEADERS */
    const void *body;                      /* NULL = none */
    size_t body_len;
    const char *content_type;    /* of the body; NULL = none */
    const char *ca_file;         /* https: PEM CA bundle; NULL = the system store */
    uint32_t timeout_ms;         /* total; 0 = PT_FETCH_DEFAULT_TIMEOUT_MS */
    uint32_t connect_timeout_ms; /* 0 = PT_FETCH_DEFAULT_CONNECT_TIMEOUT_MS */
    size_t max_response_bytes;   /* body; 0 = PT_FETCH_DEFAULT_MAX_RESPONSE */
};

/* What a fetch ended with. Borrowed: valid until the callback returns. */
struct pt_fetch_result {
    /* 0: an HTTP response arrived (any status, see `status`); else
     * PT_ERR_UPSTREAM_CONNECT (refused, DNS, TLS handshake or certificate),
     * PT_ERR_TIMEOUT, PT_ERR_LIMIT (response too large),
     * PT_ERR_UPSTREAM_PROTOCOL (malformed response), PT_ERR_AGAIN (too
     * many fetches queued) or PT_ERR_SHUTTING_DOWN. */
    int err;
    const char *error;          /* err != 0: what happened, for logs */
    int status;                 /* err == 0: the HTTP status */
    struct pt_str content_type; /* err == 0: the Content-Type value, maybe empty */
    const char *body;           /* err == 0: the body, NUL-terminated after body_len */
    size_t body_len;
};

struct pt_fetch;
typedef void pt_fetch_done_fn(struct pt_fetch *f, const struct pt_fetch_result *res, void *arg);

/* Pointer: a handle, valid until the callback has returned or until
 * pt_fetch_cancel(); or NULL with *err = PT_ERR_INVALID (a bad URL, method
 * or header; *why says what, if why is not NULL) or PT_ERR_SHUTTING_DOWN
 * (the thread is not running). cb runs exactly once unless cancelled, on
 * reply_to (NULL: on the fetch thread), never inside this call. Thread:
 * any. */
struct pt_fetch *pt_fetch_start(const struct pt_fetch_req *req, struct pt_worker *reply_to,
                                pt_fetch_done_fn *cb, void *arg, int *err, const char **why);
/* Cancel: afterwards the callback never runs and f is gone. Called inside
 * f's own callback it does nothing. Thread: reply_to's (the fetch thread
 * when reply_to was NULL). NULL is a no-op. */
void pt_fetch_cancel(struct pt_fetch *f);

/* Status: 0, or PT_ERR_INVALID with *why set: is url one pt_fetch_start()
 * accepts? For configuration validation. Thread: any. */
int pt_fetch_url_check(const char *url, const char **why);

/* For the module's own long-lived objects (JWKS sources): queue fn(w, arg)
 * on the fetch thread. Status: 0, or PT_ERR_SHUTTING_DOWN when the thread
 * is not running (fn is not queued). A queued fn always runs, if need be
 * while the thread stops. Thread: any. */
int pt_auth_fetch_thread_post(pt_worker_msg_fn *fn, void *arg);
/* The fetch thread's worker (timers for JWKS sources), or NULL if it is
 * not running. Use its base only on the fetch thread. */
struct pt_worker *pt_auth_fetch_thread_worker(void);

/* Called on the fetch thread when it starts (after the loop exists) and
 * when it stops (before fetches are ended). At most 4 hooks; registered
 * once per process, from any thread, before or after start. */
struct pt_auth_fetch_hooks {
    void (*on_start)(void);
    void (*on_stop)(void);
};
void pt_auth_fetch_add_hooks(const struct pt_auth_fetch_hooks *hooks);

#endif
