/*
 * What a finished exchange leaves behind: its route's counters (always) and
 * one access-log line (when logging is on), built on the worker; the
 * writer thread does the log's I/O.
 */
#include "conf/snapshot.h"
#include "core/error.h"
#include "core/time.h"
#include "observe/access_log.h"
#include "observe/metrics.h"
#include "proxy/proxy_int.h"
#include "upstream/service.h"

/* An exchange that ended before routing (bad target, codec error) counts
 * under the no-route pseudo-route of the snapshot it pinned, if any. */
static void count_exchange(struct pt_exchange *x, int status, uint64_t duration_ns)
{
    struct pt_route_stats *st = x->stats;
    if (!st && x->pin)
        st = pt_snapshot_of(x->pin->snap)->no_route_stats;
    if (!st || !x->worker)
        return;
    struct pt_metrics_sample s = {
        .status = status,
        .upstream_error = pt_metrics_is_upstream_error(x->error),
        .retries = x->attempts > 1 ? x->attempts - 1 : 0,
        .duration_ns = duration_ns,
        .bytes_in = x->bytes_in,
        .bytes_out = x->bytes_out,
    };
    pt_proxy_retry_stats(x, &s.retry_budget_denied, &s.per_try_timeouts, &s.hedges);
    pt_metrics_stats_end(st, x->worker->id, x->stats != NULL, &s);
}

void pt_proxy_log_exchange(struct pt_exchange *x)
{
    uint64_t duration_ns = pt_time_mono_ns() - x->start_mono_ns;
    int status = x->resp_started ? x->resp.status : (x->error ? 499 : 0);
    count_exchange(x, status, duration_ns);
    struct pt_access_ring *ring = x->worker ? x->worker->access_ring : NULL;
    if (!ring)
        return;
    struct pt_access_entry e = {0};
    e.time_ns = x->start_ns;
    e.duration_ns = duration_ns;
    e.request_id = x->request_id;
    e.method = x->req.method;
    e.path = x->req.path.len ? x->req.path : x->req.target;
    e.authority = x->req.authority;
    e.protocol = x->req.version == PT_HTTP_2    ? PT_ACCESS_PROTOCOL_HTTP_2
                 : x->req.version == PT_HTTP_10 ? PT_ACCESS_PROTOCOL_HTTP_1_0
                                                : PT_ACCESS_PROTOCOL_HTTP_1_1;
    e.status = status;
    e.has_grpc_status = x->req.is_grpc && x->grpc_status >= 0;
    e.grpc_status = x->grpc_status;
    e.bytes_in = x->bytes_in;
    e.bytes_out = x->bytes_out;
    e.upstream = x->up || x->attempts ? x->upstream_addr : PT_STR_NULL;
    e.route = pt_exchange_route_name(x);
    if (x->service)
        e.service = pt_str_from_cstr(x->service->name);
    e.client = pt_str_from_cstr(x->conn->peer_ip);
    e.worker = x->worker->id;
    e.error = x->error ? pt_str_from_cstr(pt_err_name(x->error)) : PT_STR_NULL;
    bool denied;
    uint32_t timeouts, hedges;
    pt_proxy_retry_stats(x, &denied, &timeouts, &hedges);
    e.attempts = x->attempts + hedges;
    const struct pt_client_cert *cert;
    if (pt_exchange_client_cert(x, &cert)) {
        e.client_cert_subject = cert->subject;
        e.client_cert_sha256 = cert->sha256;
    }
    e.client_id = x->identity.base.client_id;
    e.auth = x->auth_reason;
    pt_access_log_append(ring, &e);
}
