/*
 * One access-log line per exchange, built on the worker and handed to its
 * ring (the writer thread does the I/O).
 */
#include "core/error.h"
#include "core/time.h"
#include "observe/access_log.h"
#include "proxy/proxy_int.h"

void pt_proxy_log_exchange(struct pt_exchange *x)
{
    struct pt_access_ring *ring = x->worker ? x->worker->access_ring : NULL;
    if (!ring)
        return;
    struct pt_access_entry e = {0};
    e.time_ns = x->start_ns;
    e.duration_ns = pt_time_mono_ns() - x->start_mono_ns;
    e.request_id = x->request_id;
    e.method = x->req.method;
    e.path = x->req.path.len ? x->req.path : x->req.target;
    e.authority = x->req.authority;
    e.protocol = x->req.version == PT_HTTP_2    ? PT_ACCESS_PROTOCOL_HTTP_2
                 : x->req.version == PT_HTTP_10 ? PT_ACCESS_PROTOCOL_HTTP_1_0
                                                : PT_ACCESS_PROTOCOL_HTTP_1_1;
    e.status = x->resp_started ? x->resp.status : (x->error ? 499 : 0);
    e.has_grpc_status = x->req.is_grpc && x->grpc_status >= 0;
    e.grpc_status = x->grpc_status;
    e.bytes_in = x->bytes_in;
    e.bytes_out = x->bytes_out;
    e.upstream = x->up || x->attempts ? x->upstream_addr : PT_STR_NULL;
    e.route = pt_exchange_route_name(x);
    e.client = pt_str_from_cstr(x->conn->peer_ip);
    e.error = x->error ? pt_str_from_cstr(pt_err_name(x->error)) : PT_STR_NULL;
    pt_access_log_append(ring, &e);
}
