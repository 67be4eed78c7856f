/*
 * admin/front.h - the admin listener: one port for gRPC and REST.
 *
 * The admin address is ours, not grpc core's: a thread of its own (a
 * pt_worker with its event loop) accepts, and each connection goes where
 * its first bytes say:
 *
 *   cleartext ──peek 3 bytes──┬─ "PRI" (HTTP/2 preface) ──> fd handed to grpc core
 *                             │    (grpc_server_add_channel_from_fd: gRPC, health, reflection)
 *                             └─ anything else ──> HTTP/1.1 REST (rest.h) on this thread
 *   TLS ──handshake (mTLS)──┬─ ALPN h2 ──> socketpair; grpc core serves one end,
 *                           │    this thread pumps bytes between TLS and the other end
 *                           └─ http/1.1 or none ──> HTTP/1.1 REST on this thread
 *
 * grpc core thus never listens itself and sees only cleartext HTTP/2; TLS
 * and client-certificate checks are OpenSSL's here (src/net/tls.h), the
 * bearer token is checked by whoever serves the call (server.c for gRPC,
 * rest.c for REST).
 *
 * REST connections: keep-alive, pipelining answered in order, Expect:
 * 100-continue; request bodies up to PT_ADMIN_MAX_RECV_BYTES (413 beyond),
 * the parser's header limits (431), a 30 s idle timeout (TLS handshakes
 * and cleartext sniffing: 10 s; a TLS gRPC pump has none, like the
 * connections grpc core holds itself). At most
 * PT_ADMIN_FRONT_MAX_CONNS connections are open here (sniffing, REST, TLS
 * pumps); more are closed at once. Connections handed to grpc core in
 * cleartext are grpc's.
 *
 * Threads: start/stop from one thread (main, via server.c); the rest runs
 * on the front thread.
 */
#ifndef PT_ADMIN_FRONT_H
#define PT_ADMIN_FRONT_H

#include <stddef.h>

#include "admin/rest.h"

#define PT_ADMIN_FRONT_MAX_CONNS 256u

/* Hand a connected, nonblocking socket speaking cleartext HTTP/2 to grpc
 * core; takes ownership of fd. Front thread. */
typedef void pt_admin_front_grpc_fn(void *ctx, int fd);

struct pt_admin_front_opts {
    const char *address; /* "127.0.0.1:9901", "[::1]:9901", "localhost:9901" */
    const char *cert_file, *key_file, *client_ca_file; /* TLS, mTLS; NULL = off */
};

struct pt_admin_front;

/* Pointer: a running front, or NULL with a reason in err (address, bind,
 * TLS files). rest and ctx are borrowed until pt_admin_front_stop(). */
struct pt_admin_front *pt_admin_front_start(const struct pt_admin_front_opts *o,
                                            struct pt_admin_rest *rest,
                                            pt_admin_front_grpc_fn *grpc, void *ctx, char *err,
                                            size_t errlen);
/* The port bound. */
int pt_admin_front_port(const struct pt_admin_front *f);
/* Close the listener and every connection this thread serves; join. NULL ok. */
void pt_admin_front_stop(struct pt_admin_front *f);

#endif
