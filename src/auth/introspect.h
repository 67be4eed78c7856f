/*
 * auth/introspect.h - the OAuth 2.0 token introspection client (RFC 7662):
 * "is this opaque token active, and whose is it?", asked of a configured
 * endpoint with client credentials, answered asynchronously and cached.
 *
 *   worker: start(token) ──cache hit──> callback (deferred on the worker)
 *                        ──same token already asked on this worker──> join it
 *                        ──miss──> POST via the auth fetch thread (fetch.h)
 *           response ──> parse (introspect_wire.h) ──> cache (introspect_cache.h)
 *                    ──> every joined callback, on the worker
 *
 * Outcomes, for the filter:
 *   status 0, res->active:  the token is good; res carries sub, client_id,
 *                           username, scopes, aud, iss, token_type, claims;
 *   status 0, !res->active: the endpoint says no (or exp has passed, or nbf
 *                           is ahead by more than the leeway) -> answer 401
 *                           invalid_token (gRPC UNAUTHENTICATED);
 *   status < 0:             no answer: connection error, timeout, a status
 *                           other than 200 (401/403 from the endpoint mean
 *                           OUR credentials are wrong, not the token),
 *                           malformed JSON -> answer 503 (gRPC UNAVAILABLE)
 *                           and log `detail`; never 401, never cached.
 * Tokens longer than PT_INTROSPECT_MAX_TOKEN are inactive without asking.
 *
 * Threads: client new/free on any thread (the control thread); start and
 * cancel on a worker (the one passed as `w`, which must be the caller's)
 * or on any thread that runs w's loop; callbacks on w.
 */
#ifndef PT_AUTH_INTROSPECT_H
#define PT_AUTH_INTROSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "auth/introspect_cache.h"
#include "auth/introspect_wire.h"
#include "portico/str.h"

struct pt_worker;

#define PT_INTROSPECT_MAX_TOKEN 8192

struct pt_introspect_conf {
    const char *url;             /* the introspection endpoint, http(s) */
    const char *client_id;       /* HTTP Basic; required */
    const char *client_secret;   /* required (may be empty) */
    const char *token_type_hint; /* NULL = not sent */
    const char *ca_file;         /* https: NULL = the system store */
    uint32_t timeout_ms;         /* 0 = the fetch default (5 s) */
    size_t max_response_bytes;   /* 0 = 64 KiB */
    uint32_t leeway_s;           /* nbf tolerance; exp is never stretched */
    /* The cache: a shared one (a reference is taken), or NULL to make one
     * from cache_conf. */
    struct pt_introspect_cache *cache;
    struct pt_introspect_cache_conf cache_conf;
    /* Wall clock in ns; NULL = pt_time_real_ns (tests pass a fake). */
    uint64_t (*clock_ns)(void);
};

struct pt_introspect_client;

/* Pointer: a client, or NULL with *err = PT_ERR_INVALID and *why. */
struct pt_introspect_client *pt_introspect_client_new(const struct pt_introspect_conf *conf,
                                                      int *err, const char **why);
/* Drop the creator's reference; operations in flight keep the client
 * alive until they end. NULL is a no-op. */
void pt_introspect_client_free(struct pt_introspect_client *c);

/* res borrowed for the call (pt_introspection_ref to keep it); NULL when
 * status < 0. detail: for logs, when status < 0 (else NULL). */
typedef void pt_introspect_done_fn(void *arg, int status, struct pt_introspection *res,
                                   const char *detail);
struct pt_introspect_op;

/* Pointer (never NULL): the operation; cb runs once on w, never inside
 * this call, unless cancelled. token is copied. */
struct pt_introspect_op *pt_introspect_start(struct pt_introspect_client *c, struct pt_str token,
                                             struct pt_worker *w, pt_introspect_done_fn *cb,
                                             void *arg);
/* Afterwards cb never runs; the endpoint request is abandoned when no
 * other caller waits for it. Inside cb: does nothing. NULL is a no-op. */
void pt_introspect_cancel(struct pt_introspect_op *op);
/* Pointer: the cached answer for token with one reference, or NULL. For a
 * fast path without pausing. Thread: any. */
struct pt_introspection *pt_introspect_lookup(struct pt_introspect_client *c, struct pt_str token);

#endif
