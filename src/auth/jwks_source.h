/*
 * auth/jwks_source.h - where a JWKS document comes from, kept fresh: the
 * latest good document of one URL (http, https or file), refreshed on a
 * timer and on demand.
 *
 * This module delivers bytes; it does not read keys. A parse hook given at
 * creation (the JWT code's keyset builder) turns the bytes into an opaque
 * object; a document the hook rejects is not published and the previous
 * one stays. The published document (struct pt_jwks_doc: bytes, the
 * hook's object, a generation number) is immutable and refcounted; a
 * worker takes a reference without locks (pt_jwks_source_doc_ref) and can
 * tell cheaply whether anything changed (pt_jwks_source_generation: one
 * atomic load). The generation grows by one each time a document with
 * different bytes is published; the first document is generation 1.
 *
 * Refresh (on the auth fetch thread, auth/fetch.h; policy in
 * auth/jwks_sched.h): the first fetch as soon as the thread runs; then every
 * refresh interval ± jitter; after a failure (transport error, a status
 * other than 200, a document the hook rejects) the last good document
 * stays and the fetch is retried with exponential backoff. A verifier that
 * meets an unknown `kid` calls pt_jwks_source_refresh_now(): at most one
 * on-demand fetch per on_demand_min interval; requests while a fetch is in
 * flight join it; requests inside the interval with nothing in flight are
 * answered at once with PT_ERR_AGAIN. A caller can wait: its callback runs
 * on its worker when the fetch ends (success or failure), or never if it
 * cancels first.
 *
 * `file:` sources (file:/abs/path, file:///abs/path or file:relative/path)
 * are read when created (so the document is there at once, parse hook
 * included, on the creating thread) and again on each refresh, timed or on
 * demand, on the fetch thread.
 *
 * Sources are shared: pt_jwks_source_new() with the same configuration
 * (strings compared by value, hooks and parse_arg by identity) returns the
 * existing source with one more reference, so a configuration reload keeps
 * documents and timers instead of fetching everything again.
 *
 * Threads: new/ref/unref, doc_ref, generation from any thread;
 * refresh_now on a worker (or any thread with worker NULL: the callback
 * then runs on the fetch thread); wait_cancel on the waiter's thread. The
 * parse hook runs on the fetch thread (and on the creating thread for the
 * first read of a file:); free_parsed on whichever thread drops the last
 * reference to a document.
 */
#ifndef PT_AUTH_JWKS_SOURCE_H
#define PT_AUTH_JWKS_SOURCE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct pt_worker;

/* Pointer: the hook's object for the document bytes (NUL-terminated after
 * len), or NULL to reject them, with a reason in why (NUL-terminated,
 * why_len bytes at most). */
typedef void *pt_jwks_parse_fn(const char *bytes, size_t len, void *arg, char *why, size_t why_len);
typedef void pt_jwks_free_fn(void *parsed, void *arg);

struct pt_jwks_source_conf {
    const char *url;           /* http://, https:// or file: */
    const char *ca_file;       /* https: PEM CA bundle; NULL = the system store */
    uint32_t refresh_ms;       /* 0 = 5 min */
    uint32_t jitter_pct;       /* 0 = 10 (%) */
    uint32_t on_demand_min_ms; /* 0 = 30 s */
    uint32_t retry_min_ms;     /* 0 = 1 s */
    uint32_t retry_max_ms;     /* 0 = 60 s (never more than refresh_ms) */
    uint32_t timeout_ms;       /* per fetch; 0 = the fetch default (5 s) */
    size_t max_bytes;          /* 0 = 1 MiB */
    pt_jwks_parse_fn *parse;   /* NULL: publish the bytes as they are */
    pt_jwks_free_fn *free_parsed;
    void *parse_arg;
};

/* A published document: immutable; read the fields, do not write them. */
struct pt_jwks_doc {
    atomic_uint refs;
    uint64_t generation;
    uint64_t fetched_ns; /* wall clock, when it was read */
    const char *bytes;   /* NUL-terminated after len */
    size_t len;
    void *parsed; /* the parse hook's object; NULL without a hook */
    pt_jwks_free_fn *free_parsed;
    void *parse_arg;
};

struct pt_jwks_source;

/* Pointer: the source for conf (shared with an equal existing one), or
 * NULL with *err = PT_ERR_INVALID and *why (bad URL). A file: source whose
 * first read fails is still returned (without a document; the failure is
 * in pt_jwks_source_last_error). Fetching starts when the auth fetch
 * thread runs. */
struct pt_jwks_source *pt_jwks_source_new(const struct pt_jwks_source_conf *conf, int *err,
                                          const char **why);
void pt_jwks_source_ref(struct pt_jwks_source *s);
/* NULL is a no-op. The last reference stops its timer and fetch (on the
 * fetch thread) and frees it. */
void pt_jwks_source_unref(struct pt_jwks_source *s);

/* Pointer: the latest document with a reference the caller must drop with
 * pt_jwks_doc_unref(), or NULL if none was ever published. Lock-free. */
struct pt_jwks_doc *pt_jwks_source_doc_ref(struct pt_jwks_source *s);
void pt_jwks_doc_unref(struct pt_jwks_doc *d);
/* The generation of the latest document (0: none yet). One atomic load. */
uint64_t pt_jwks_source_generation(const struct pt_jwks_source *s);
/* Status: 0 if the last fetch succeeded (or none ended yet), else its
 * error code, with a description copied into buf (may be NULL). */
int pt_jwks_source_last_error(struct pt_jwks_source *s, char *buf, size_t len);

/* status: 0 = the fetch ended well (the generation may be unchanged: same
 * bytes); PT_ERR_AGAIN = rate-limited, nothing fetched; another PT_ERR_*
 * = the fetch failed or the hook rejected the document (the previous
 * document stays); PT_ERR_SHUTTING_DOWN = the fetch thread stopped.
 * generation: pt_jwks_source_generation() at that moment. */
typedef void pt_jwks_refresh_fn(void *arg, int status, uint64_t generation);
struct pt_jwks_wait;

/* Ask for a fresh document. With cb: pointer to a wait handle; cb(arg,
 * ...) runs once on `worker` (NULL: the fetch thread) when the fetch this
 * request starts or joins ends, never inside this call, unless cancelled.
 * Without cb: NULL, the refresh still happens (rate-limited). */
struct pt_jwks_wait *pt_jwks_source_refresh_now(struct pt_jwks_source *s, struct pt_worker *worker,
                                                pt_jwks_refresh_fn *cb, void *arg);
/* Afterwards cb never runs. Inside cb: does nothing. Thread: the waiter's.
 * NULL is a no-op. */
void pt_jwks_wait_cancel(struct pt_jwks_wait *w);

#endif
