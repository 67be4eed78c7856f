/*
 * transcode/reflect.h - a service's descriptors from its own gRPC server
 * reflection: the sans-I/O fetch, and the registry that publishes the
 * resulting pools by service name.
 *
 * One fetch walks grpc.reflection.v1 ServerReflectionInfo (v1alpha has the
 * same messages; only the method path differs):
 *
 *   list_services ──> each service but grpc.reflection.* ──file_containing_symbol──┐
 *                                                                                 v
 *        files (deduplicated by name) <── file_descriptor_response ── each answer
 *          │ imports not yet seen
 *          └──file_by_filename──> (until none is missing) ──> pt_descpool_new_from_files
 *
 * The caller does the I/O: pt_tc_reflect_fetch_next() gives the next
 * serialized ServerReflectionRequest, the caller sends it and hands the
 * serialized ServerReflectionResponse to pt_tc_reflect_fetch_on_response().
 * Each request may travel on its own call or all on one stream; the fetch
 * does not care. Everything from the backend is untrusted: answers are
 * bounded in count, bytes and requests (struct pt_tc_reflect_limits), an
 * answer that does not match the question fails the fetch, and the pool
 * build applies its own limits. The time bound is the driver's
 * (reflect_client.h).
 *
 * The registry (process-wide, pt_tc_reflect_registry_default()) keeps, per
 * portico service, the last good pool, a generation that grows on every
 * publish, the gRPC services the pool covers and the last failure. A
 * failed refresh keeps the last good pool. Readers:
 *
 *   e = pt_tc_reflect_entry_get(reg, "orders")      // once, at compile time
 *   per request: gen = pt_tc_reflect_entry_generation(e)   // atomic, no lock
 *                if gen changed: pool = pt_tc_reflect_pool_ref(reg, "orders", &gen)
 *
 * Threads: a fetch belongs to one thread (the reflection thread). The
 * registry may be used from any thread: writes and pool_ref take a short
 * mutex; entry_generation is a lock-free atomic load.
 */
#ifndef PT_TRANSCODE_REFLECT_H
#define PT_TRANSCODE_REFLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transcode/descpool.h"

/* Bounds on one fetch; 0 in any field means its default. */
struct pt_tc_reflect_limits {
    size_t max_files;    /* distinct files kept: 1024 */
    size_t max_bytes;    /* serialized files, all of them: 16 MiB */
    size_t max_requests; /* requests sent: 2048 */
    size_t max_services; /* services taken from list_services: 256 */
};
#define PT_TC_REFLECT_DEFAULT_MAX_FILES 1024u
#define PT_TC_REFLECT_DEFAULT_MAX_BYTES (16u << 20)
#define PT_TC_REFLECT_DEFAULT_MAX_REQUESTS 2048u
#define PT_TC_REFLECT_DEFAULT_MAX_SERVICES 256u

struct pt_tc_reflect_fetch;

/* Pointer: a new fetch (never NULL; allocation failure aborts). lim may be
 * NULL (defaults). */
struct pt_tc_reflect_fetch *pt_tc_reflect_fetch_new(const struct pt_tc_reflect_limits *lim);
void pt_tc_reflect_fetch_free(struct pt_tc_reflect_fetch *f);

/*
 * Progress: 1 with *req (malloc'd, the caller frees) and *len set to the
 * next serialized ServerReflectionRequest; 0 when nothing is left to ask
 * (build the pool); <0 (PT_ERR_LIMIT, PT_ERR_INVALID, PT_ERR_NOT_FOUND)
 * when the fetch failed - pt_tc_reflect_fetch_error() says why. Call it
 * again only after the answer to the previous request was given.
 */
int pt_tc_reflect_fetch_next(struct pt_tc_reflect_fetch *f, uint8_t **req, size_t *len);

/* Status: 0, or <0 (the fetch failed; see _error) for the serialized
 * ServerReflectionResponse answering the last request. An error_response
 * to list_services or to a symbol fails with PT_ERR_NOT_FOUND. */
int pt_tc_reflect_fetch_on_response(struct pt_tc_reflect_fetch *f, const uint8_t *resp, size_t len);

/* The reason of the failure, "" while none (borrowed from f). */
const char *pt_tc_reflect_fetch_error(const struct pt_tc_reflect_fetch *f);

/* The gRPC services list_services named (reflection itself excluded), in
 * the server's order; borrowed from f. */
size_t pt_tc_reflect_fetch_services(const struct pt_tc_reflect_fetch *f, const char *const **names);
/* Files collected so far and their bytes. */
size_t pt_tc_reflect_fetch_file_count(const struct pt_tc_reflect_fetch *f);

/* Pointer: a pool (one reference) from every file collected, after _next
 * returned 0; or NULL with the reason in err (the pool's own checks, or
 * "not finished"). lim may be NULL. */
struct pt_descpool *pt_tc_reflect_fetch_pool(struct pt_tc_reflect_fetch *f,
                                             const struct pt_descpool_limits *lim, char *err,
                                             size_t errlen);

/* Milliseconds to wait before retry number `failures` (1, 2, ...): 1 s,
 * doubling, at most 60 s. The driver adds jitter. */
uint32_t pt_tc_reflect_backoff_ms(unsigned failures);

/* -- registry ------------------------------------------------------------- */

struct pt_tc_reflect_registry;
struct pt_tc_reflect_entry;

/* Pointer: a new, empty registry. */
struct pt_tc_reflect_registry *pt_tc_reflect_registry_new(void);
/* Frees every entry and drops every pool reference. NULL is a no-op. */
void pt_tc_reflect_registry_free(struct pt_tc_reflect_registry *r);
/* The process-wide registry the reflection thread publishes to and the
 * transcoder reads from (created on first use; never freed). */
struct pt_tc_reflect_registry *pt_tc_reflect_registry_default(void);

/* Pointer: the entry of service `name`, created empty (generation 0, no
 * pool) if new; stable until the registry is freed. Never NULL. */
struct pt_tc_reflect_entry *pt_tc_reflect_entry_get(struct pt_tc_reflect_registry *r,
                                                    const char *name);
/* Lock-free: the entry's generation, 0 until a first pool is published. */
uint64_t pt_tc_reflect_entry_generation(const struct pt_tc_reflect_entry *e);

/*
 * Publish pool (the caller's reference moves to the registry) as service
 * `name`'s current pool, covering the gRPC services names[0..n). Returns
 * the new generation. The previous pool is unreferenced (it lives on while
 * readers hold references).
 */
uint64_t pt_tc_reflect_publish(struct pt_tc_reflect_registry *r, const char *name,
                               struct pt_descpool *pool, const char *const *services, size_t n);
/* Record a failed fetch for `name` (the current pool stays). */
void pt_tc_reflect_record_failure(struct pt_tc_reflect_registry *r, const char *name,
                                  const char *why);

/* Pointer: a new reference to service `name`'s current pool (the caller
 * unrefs it), NULL when none was published; *generation (may be NULL) gets
 * the generation of the pool returned (0 with NULL). */
struct pt_descpool *pt_tc_reflect_pool_ref(struct pt_tc_reflect_registry *r, const char *name,
                                           uint64_t *generation);

/*
 * Called after every publish, on the publishing thread, outside the
 * registry's lock (it may call pt_tc_reflect_pool_ref): the transcoder's
 * reflection routes compile there (route_live.h), so workers never do.
 */
typedef void (*pt_tc_reflect_published_fn)(void *ctx, struct pt_tc_reflect_registry *r,
                                           const char *name, uint64_t generation);
/* Set r's one publish hook (NULL fn: none). Set it before anything
 * publishes, or accept that publishes racing the call may miss it. */
void pt_tc_reflect_on_publish(struct pt_tc_reflect_registry *r, pt_tc_reflect_published_fn fn,
                              void *ctx);

/* What the admin API shows for one service. */
struct pt_tc_reflect_status {
    uint64_t generation;
    uint64_t failures;    /* failed fetches since the last success */
    char last_error[256]; /* "" after a success */
    char services[1024];  /* the gRPC services of the current pool, comma-separated */
    size_t n_messages;    /* message types in the current pool */
};
/* Status: 0, or PT_ERR_NOT_FOUND when the registry has no entry `name`. */
int pt_tc_reflect_status_get(struct pt_tc_reflect_registry *r, const char *name,
                             struct pt_tc_reflect_status *out);

#endif
