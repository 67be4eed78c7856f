/*
 * admin/server.h - the admin gRPC server (grpc C core), its health and
 * reflection services, and its access control.
 *
 * One thread, one completion queue. Every call is a small state machine
 * driven by completion-queue events (see README.md for the diagram); the
 * handlers of unary methods run on that thread, one at a time.
 *
 *   pt_admin_server_start ──> serving ──set_serving(false)──> not serving
 *          │ NULL + err            │                                │
 *          │ (bad address,         └────────── pt_admin_server_stop ┘
 *          │  no credentials off loopback, TLS files)      ends Watch streams,
 *                                                          cancels calls, joins
 *
 * Services: the caller's method table (unary, e.g. portico.admin.v1.Admin),
 * grpc.health.v1.Health (Check, Watch) and grpc.reflection.v1 / v1alpha
 * ServerReflection. Anything else is UNIMPLEMENTED.
 *
 * Access: a non-loopback address needs a token or client_ca_file. With a
 * token, every call except health Check needs `authorization: Bearer
 * <token>` (UNAUTHENTICATED otherwise). With client_ca_file, TLS requires
 * and verifies client certificates.
 *
 * Thread: start/stop from one thread (main); set_serving from any thread.
 */
#ifndef PT_ADMIN_SERVER_H
#define PT_ADMIN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* gRPC status codes a handler may use. */
enum pt_admin_code {
    PT_ADMIN_OK = 0,
    PT_ADMIN_CANCELLED = 1,
    PT_ADMIN_UNKNOWN = 2,
    PT_ADMIN_INVALID_ARGUMENT = 3,
    PT_ADMIN_DEADLINE_EXCEEDED = 4,
    PT_ADMIN_NOT_FOUND = 5,
    PT_ADMIN_ALREADY_EXISTS = 6,
    PT_ADMIN_PERMISSION_DENIED = 7,
    PT_ADMIN_RESOURCE_EXHAUSTED = 8,
    PT_ADMIN_FAILED_PRECONDITION = 9,
    PT_ADMIN_ABORTED = 10,
    PT_ADMIN_OUT_OF_RANGE = 11,
    PT_ADMIN_UNIMPLEMENTED = 12,
    PT_ADMIN_INTERNAL = 13,
    PT_ADMIN_UNAVAILABLE = 14,
    PT_ADMIN_DATA_LOSS = 15,
    PT_ADMIN_UNAUTHENTICATED = 16,
};

/* Largest request message accepted (RESOURCE_EXHAUSTED beyond). */
#define PT_ADMIN_MAX_RECV_BYTES (16u * 1024u * 1024u)

struct pt_admin_violation {
    char *field;
    char *description;
};

/* A handler's error result. Caller's storage; pt_admin_status_fini frees
 * what the setters allocated. */
struct pt_admin_status {
    int code;      /* gRPC status code; 0 = OK */
    char *message; /* malloc'd or NULL */
    struct pt_admin_violation *violations;
    size_t nviolations; /* -> google.rpc.BadRequest in grpc-status-details-bin */
};

void pt_admin_status_set(struct pt_admin_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pt_admin_status_add_violation(struct pt_admin_status *st, const char *field, const char *fmt,
                                   ...) __attribute__((format(printf, 3, 4)));
void pt_admin_status_fini(struct pt_admin_status *st);

/* Pointer: malloc'd serialized google.rpc.Status {code, message, details =
 * [Any(google.rpc.BadRequest)]} in *len, or NULL when st has no violations
 * (no details trailer is sent then). */
uint8_t *pt_admin_status_details_pack(const struct pt_admin_status *st, size_t *len);

/* A unary method: the request is unpacked by the server (and freed by it);
 * on success set *response to a heap message the server packs and frees
 * with protobuf_c_message_free_unpacked(resp, NULL); on failure leave
 * *response NULL and fill st. Runs on the admin thread, one call at a time. */
typedef void pt_admin_unary_fn(void *ctx, const ProtobufCMessage *request,
                               ProtobufCMessage **response, struct pt_admin_status *st);

struct pt_admin_method {
    const char *path; /* "/portico.admin.v1.Admin/CreateRoute" */
    const ProtobufCMessageDescriptor *input;
    pt_admin_unary_fn *fn;
};

struct pt_admin_opts {
    const char *address; /* "127.0.0.1:9901", "[::1]:9901", "localhost:9901" */
    const char *token;   /* NULL or "" = none */
    const char *cert_file, *key_file, *client_ca_file; /* TLS, mTLS; NULL = off */
};

/* Whether `address` ("host:port") names a loopback host: 127.0.0.0/8, ::1
 * or localhost. */
bool pt_admin_address_is_loopback(const char *address);

/* Whether `authorization` (a metadata value, not NUL-terminated) is
 * "Bearer <token>", compared in constant time for a given token. */
bool pt_admin_token_matches(const char *token, const char *authorization, size_t len);

/* Pointer: a running server, or NULL with a reason in err. `methods` and
 * `ctx` are borrowed until pt_admin_server_stop(). */
struct pt_admin_server *pt_admin_server_start(const struct pt_admin_opts *o,
                                              const struct pt_admin_method *methods, size_t n,
                                              void *ctx, char *err, size_t errlen);
/* The port actually bound (useful with port 0). */
int pt_admin_server_port(const struct pt_admin_server *s);
void pt_admin_server_set_serving(struct pt_admin_server *s, bool serving); /* any thread */
void pt_admin_server_stop(struct pt_admin_server *s); /* NULL ok; ends Watch streams, joins */

#endif
