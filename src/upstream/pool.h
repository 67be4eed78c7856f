/*
 * upstream/pool.h - per-worker connection pools and endpoint choice.
 *
 * Each worker keeps, per endpoint (keyed by protocol, TLS identity and
 * "host:port"), its HTTP/2 connections (each multiplexing streams up to
 * the peer's limit; another connection opens when all are full) or its idle
 * HTTP/1.1 keep-alive connections. When an endpoint has max_connections
 * busy connections, exchanges wait in a FIFO queue until one frees up.
 *
 * pt_up_forward() picks an endpoint with the service's balancer (lb.h;
 * its per-worker state is the service's lb_local[worker id]), then starts
 * the exchange's request; the outcome arrives through the events. A waiting
 * exchange is attached through x->up like a started one, so cancelling
 * works the same at every stage.
 *
 * Thread: the worker that owns the pools.
 */
#ifndef PT_UPSTREAM_POOL_H
#define PT_UPSTREAM_POOL_H

#include "core/worker.h"
#include "http/exchange.h"
#include "upstream/service.h"

struct pt_up_worker;

void pt_up_worker_init(struct pt_worker *w);
/*
 * The worker adopted a snapshot whose services are svcs: pools of
 * endpoints no longer among them drain (HTTP/2: no new streams, closed
 * after the last one; HTTP/1.1: idle connections closed now, busy ones
 * when their response ends). Requests in flight on them finish. A pool
 * whose endpoint comes back is used again. Returns how many pools started
 * draining.
 */
size_t pt_up_worker_sweep(struct pt_worker *w, const struct pt_service *svcs, size_t n);

/* Close every pooled connection (shutdown). */
void pt_up_worker_fini(struct pt_worker *w);

/*
 * Send x (its request prepared for forwarding) to one of svc's endpoints.
 * avoid: an endpoint index to skip when another exists (retries), or -1.
 * Status: 0 (x->up set; events follow) or PT_ERR_NO_ENDPOINT /
 * PT_ERR_UPSTREAM_CONNECT (nothing attached).
 */
int pt_up_forward(struct pt_worker *w, const struct pt_service *svc, struct pt_exchange *x,
                  const struct pt_upstream_events *ev, int avoid, int *chosen);

/* The attempt the last pt_up_forward* started for x is over: release its
 * in-flight count and, for latency-aware balancing, record how long it
 * took (o). Idempotent: the proxy calls it when the upstream finishes or
 * fails, before a retry, and when the exchange ends. */
void pt_up_attempt_end(struct pt_exchange *x, enum pt_lb_outcome o);

/* Upgrade (WebSocket): open a dedicated HTTP/1.1 connection, not pooled,
 * that stays with the exchange after a 101. Same status as pt_up_forward. */
int pt_up_forward_upgrade(struct pt_worker *w, const struct pt_service *svc, struct pt_exchange *x,
                          const struct pt_upstream_events *ev, int *chosen);

/* After a 101 on an upgrade attempt: take the upstream transport (struct
 * pt_conn *, with any bytes already read) away from x's attempt. */
void *pt_up_take_transport(struct pt_exchange *x);

#endif
