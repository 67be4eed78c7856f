/*
 * proxy/proxy_int.h - private to src/proxy.
 */
#ifndef PT_PROXY_PROXY_INT_H
#define PT_PROXY_PROXY_INT_H

#include <stdatomic.h>

#include "http/server.h"
#include "net/conn.h"
#include "net/listener.h"

struct pt_access_log;
struct pt_acceptor;

struct px_acceptor {
    struct px_acceptor *next;
    int fd;
    struct pt_acceptor *a;
};

struct sniff;

struct pt_proxy_worker {
    struct pt_worker *w;
    struct px_acceptor *acceptors;
    struct pt_down_conn *conns;
    struct sniff *sniffs; /* connections whose protocol is not known yet */
    atomic_uint nconns;   /* codec connections, sniffing connections and tunnels */
    uint64_t next_conn_id;
    bool draining;
};

/* exchange.c */
void pt_proxy_exchange_init(void);
void pt_proxy_exchange_end(struct pt_exchange *x, int err);
/* body.c: body-hook stages (only when the chain has body hooks) */
void pt_proxy_body_prepare(struct pt_exchange *x);
void pt_proxy_body_start_request(struct pt_exchange *x);
void pt_proxy_body_start_response(struct pt_exchange *x);
bool pt_proxy_body_resume(struct pt_exchange *x);
void pt_proxy_body_fini(struct pt_exchange *x);
/* log.c: route counters and the access-log line of a finished exchange */
void pt_proxy_log_exchange(struct pt_exchange *x);

#endif
