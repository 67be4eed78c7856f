/*
 * proxy/proxy.h - the data plane as the main thread drives it.
 *
 * main: pt_proxy_global_init() once; per worker pt_proxy_worker_init()
 * before its thread starts; pt_proxy_publish() for every new snapshot
 * (the first one included); pt_proxy_drain() on SIGTERM, then poll
 * pt_proxy_connections() until zero or the drain timeout; stop the
 * workers; pt_proxy_worker_fini() after each has joined.
 */
#ifndef PT_PROXY_PROXY_H
#define PT_PROXY_PROXY_H

#include <stdatomic.h>
#include <stdint.h>

#include "conf/snapshot.h"
#include "core/worker.h"

struct pt_access_log;

/* Install the exchange handler and register the built-in filters.
 * Status: 0 or PT_ERR_CONFIG. Main thread, before any snapshot compiles. */
int pt_proxy_global_init(void);

/* access_log may be NULL (disabled). Before the worker's thread starts. */
void pt_proxy_worker_init(struct pt_worker *w, struct pt_access_log *access_log);
/* After the worker's thread has exited. */
void pt_proxy_worker_fini(struct pt_worker *w);

/* Control thread: hand snap to every worker; each swaps its pointer and
 * reconciles its listeners (new sockets accepted, removed ones dropped). */
void pt_proxy_publish(struct pt_worker *const *workers, unsigned n, struct pt_snapshot *snap);

/* Control thread: every worker stops accepting and drains its connections. */
void pt_proxy_drain(struct pt_worker *const *workers, unsigned n);
/* Control thread: every worker closes everything it still has (ending
 * the exchanges, releasing pools and sockets) and leaves its loop. */
void pt_proxy_shutdown(struct pt_worker *const *workers, unsigned n);
/* Any thread: open downstream connections (and tunnels) of a worker. */
uint32_t pt_proxy_connections(const struct pt_worker *w);

#endif
