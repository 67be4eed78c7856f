/*
 * portico/errors.h - error codes shared by the core and plugins.
 *
 * Status-returning functions return 0 or one of these negative codes. Each
 * code maps to one HTTP status and one gRPC status (see src/core/error.c);
 * the filter-chain runner alone turns a code into a local reply, choosing the
 * gRPC form (HTTP 200, trailers-only, grpc-status) for gRPC callers.
 * Values are part of the ABI: append, never renumber.
 */
#ifndef PORTICO_ERRORS_H
#define PORTICO_ERRORS_H

/* X(name, value, http_status, grpc_status, short text) */
#define PT_ERRORS(X)                                                               \
    X(PT_ERR_INTERNAL, -1, 500, 13, "internal error")                              \
    X(PT_ERR_NOMEM, -2, 500, 8, "out of memory")                                   \
    X(PT_ERR_BAD_REQUEST, -3, 400, 13, "malformed request")                        \
    X(PT_ERR_NO_ROUTE, -4, 404, 12, "no route matches the request")                \
    X(PT_ERR_HEADERS_TOO_LARGE, -5, 431, 8, "request headers too large")           \
    X(PT_ERR_BODY_TOO_LARGE, -6, 413, 8, "request body too large")                 \
    X(PT_ERR_UNSUPPORTED_MEDIA, -7, 415, 13, "unsupported content type")           \
    X(PT_ERR_NOT_IMPLEMENTED, -8, 501, 12, "not implemented")                      \
    X(PT_ERR_REQUEST_TIMEOUT, -9, 408, 4, "request not received in time")          \
    X(PT_ERR_UPSTREAM_CONNECT, -10, 503, 14, "upstream connect failed")            \
    X(PT_ERR_UPSTREAM_CONNECT_TIMEOUT, -11, 504, 14, "upstream connect timed out") \
    X(PT_ERR_UPSTREAM_RESET, -12, 502, 14, "upstream reset the stream")            \
    X(PT_ERR_UPSTREAM_PROTOCOL, -13, 502, 13, "invalid response from upstream")    \
    X(PT_ERR_UPSTREAM_REFUSED, -14, 503, 14, "upstream refused the stream")        \
    X(PT_ERR_TIMEOUT, -15, 504, 4, "upstream request timed out")                   \
    X(PT_ERR_NO_ENDPOINT, -16, 503, 14, "no upstream instance available")          \
    X(PT_ERR_CANCELLED, -17, 499, 1, "request cancelled")                          \
    X(PT_ERR_SHUTTING_DOWN, -18, 503, 14, "gateway is shutting down")              \
    X(PT_ERR_UNAUTHENTICATED, -19, 401, 16, "authentication required")             \
    X(PT_ERR_FORBIDDEN, -20, 403, 7, "forbidden")                                  \
    X(PT_ERR_RATE_LIMITED, -21, 429, 8, "rate limit exceeded")                     \
    X(PT_ERR_CONFIG, -22, 500, 13, "invalid configuration")                        \
    X(PT_ERR_LIMIT, -23, 400, 8, "a limit was exceeded")                           \
    X(PT_ERR_AGAIN, -24, 503, 14, "try again")                                     \
    X(PT_ERR_CLOSED, -25, 502, 14, "connection closed")                            \
    X(PT_ERR_METHOD_NOT_ALLOWED, -26, 405, 12, "method not allowed")               \
    X(PT_ERR_STREAM_IDLE, -27, 504, 4, "stream idle timeout")                      \
    X(PT_ERR_UPGRADE_REQUIRED, -28, 426, 13, "upgrade required")                   \
    X(PT_ERR_CONFLICT, -29, 409, 10, "changed concurrently; read it again")        \
    X(PT_ERR_NOT_FOUND, -30, 404, 5, "not found")                                  \
    X(PT_ERR_EXISTS, -31, 409, 6, "already exists")                                \
    X(PT_ERR_STORE_UNAVAILABLE, -32, 503, 14, "configuration store unavailable")   \
    X(PT_ERR_INVALID, -33, 400, 3, "invalid argument")                             \
    X(PT_ERR_CIRCUIT_OPEN, -34, 503, 14, "circuit breaker open")                   \
    X(PT_ERR_NO_HEALTHY, -35, 503, 14, "no healthy upstream")

enum pt_err {
#define PT_ERR_ENUM(name, value, http, grpc, text) name = value,
    PT_ERRORS(PT_ERR_ENUM)
#undef PT_ERR_ENUM
};

#define PT_ERR_MIN (-35)

#endif
