/*
 * transcode/reflect_client.h - the reflection thread: fetches the schema of
 * every service configured with `reflection: true` from the backend's own
 * gRPC server reflection, at start, every descriptor_refresh_ms and when
 * asked (admin RefreshDescriptors), and publishes each result to the
 * registry (reflect.h). Not part of pt_transcode: it is the one piece that
 * does I/O, built as its own library (pt_tc_reflect_client) with grpc core.
 *
 * Why grpc core's client API on a dedicated thread, and not nghttp2 on the
 * health-check thread: reflection is plain gRPC with no latency demands,
 * and grpc core already brings what a correct client needs (name
 * resolution, HTTP/2 flow control, deadlines, TLS, status trailers); the
 * admin server and porticoctl drive it the same way. A scheduler thread
 * starts each due fetch on a thread of its own (at most 4 at once, so a
 * backend that hangs delays only its own service), and each fetch makes
 * blocking calls on its own channel and completion queue; nothing here
 * ever runs on the control thread or a worker, and the only shared state
 * is the registry.
 *
 * One fetch = one channel to the service's first static instance; each
 * ServerReflectionRequest is sent on its own ServerReflectionInfo call
 * (message, half-close, one answer, status), grpc.reflection.v1 first and
 * v1alpha when v1 is UNIMPLEMENTED. Bounds: every call has a deadline
 * (call_timeout_ms), the whole fetch another (fetch_timeout_ms), and the
 * fetch's own limits count files, bytes and requests.
 *
 *   per target:  due ──fetch──> ok: publish, next = refresh_ms (or never)
 *                 ^               └─ fail: record, next = backoff (1 s .. 60 s, jittered)
 *                 └── refresh request (admin) makes it due now
 *
 * Threads: start/stop on the main thread (stop cancels the calls in
 * flight and joins every thread); configure from the control
 * plane (any thread, it copies what it needs); refresh from the admin
 * thread (it waits, bounded, for the fetch it asked for).
 */
#ifndef PT_TRANSCODE_REFLECT_CLIENT_H
#define PT_TRANSCODE_REFLECT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "portico/config/v1/config.pb-c.h"
#include "transcode/reflect.h"

struct pt_tc_reflector_opts {
    unsigned call_timeout_ms;  /* one reflection call: default 5000 */
    unsigned fetch_timeout_ms; /* one whole fetch: default 30000 */
    struct pt_tc_reflect_limits limits;
};

struct pt_tc_reflector;

/* Pointer: a running reflection thread publishing to reg (borrowed; must
 * outlive the reflector), or NULL with the reason in err. o may be NULL. */
struct pt_tc_reflector *pt_tc_reflector_start(struct pt_tc_reflect_registry *reg,
                                              const struct pt_tc_reflector_opts *o, char *err,
                                              size_t errlen);

/*
 * Take the services with `reflection: true` from cfg (copied; cfg may be
 * freed afterwards). New targets and targets whose address changed are
 * fetched at once; removed ones stop (their last pool stays published).
 */
void pt_tc_reflector_configure(struct pt_tc_reflector *r, const Portico__Config__V1__Config *cfg);

/*
 * Fetch service `name` now and wait for the result, at most timeout_ms.
 * Status: 0 with *generation = the newly published generation;
 * PT_ERR_NOT_FOUND (not a reflection service; err says so), PT_ERR_TIMEOUT,
 * or another PT_ERR_* with the fetch's failure in err (the previous pool
 * stays published).
 */
int pt_tc_reflector_refresh(struct pt_tc_reflector *r, const char *name, unsigned timeout_ms,
                            uint64_t *generation, char *err, size_t errlen);

/* Stop the thread (a call in flight is cancelled, the fetch ends) and
 * free r. NULL is a no-op. */
void pt_tc_reflector_stop(struct pt_tc_reflector *r);

#endif
