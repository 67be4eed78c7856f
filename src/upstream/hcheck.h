/*
 * upstream/hcheck.h - the health-check thread: active checks of upstream
 * instances, off the workers' hot path.
 *
 * One thread with its own event loop (a pt_worker that runs no proxy).
 * It learns what to check from every published snapshot
 * (pt_hcheck_update): one target per instance of each service that has a
 * health_check, keyed by the instance's health key "service/host:port".
 * A new snapshot that keeps a target keeps its timer and state (only its
 * configuration is replaced); a target that goes away is stopped and its
 * instance counts as healthy again.
 *
 * Each target runs one check at a time on a fresh connection (the
 * service's protocol and TLS settings; never a pooled connection):
 *   http over HTTP/1.1 services: GET path HTTP/1.1, Connection: close;
 *   http over HTTP/2 services:   GET path on an nghttp2 client session;
 *   grpc:                        POST /grpc.health.v1.Health/Check with
 *                                HealthCheckRequest{service}; healthy iff
 *                                grpc-status 0 and status SERVING.
 * A check without a verdict within timeout_ms fails. Results go to
 * pt_health_check_result(); transitions are logged at info.
 *
 * Threads: start/stop from the main thread; update from any thread.
 */
#ifndef PT_UPSTREAM_HCHECK_H
#define PT_UPSTREAM_HCHECK_H

#include <stddef.h>

struct pt_service;

/* Status: 0 or PT_ERR_INTERNAL. Checks begin with the latest update. */
int pt_hcheck_start(void);
/* Stop the thread and free every target; later updates are ignored.
 * Safe when not started. */
void pt_hcheck_stop(void);
/* The services of a newly published snapshot (copied; the caller keeps
 * ownership). Before start: kept for start. Thread: any. */
void pt_hcheck_update(const struct pt_service *services, size_t n);

#endif
