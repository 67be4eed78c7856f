/*
 * net/listener.h - listening sockets and per-worker acceptors.
 *
 * Listening sockets are opened on the control thread (so a bind failure
 * rejects a configuration before any worker sees it), one per worker per
 * listener, with SO_REUSEPORT so the kernel spreads connections across
 * workers. A worker watches its own socket with an acceptor.
 */
#ifndef PT_NET_LISTENER_H
#define PT_NET_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/worker.h"

/* Status: 0, or PT_ERR_CONFIG for an address that is not "host:port",
 * "[v6]:port" or ":port" with an IP literal or "localhost" host. */
int pt_net_parse_address(const char *address, struct sockaddr_storage *ss, socklen_t *len);

/* Progress-style: a listening fd (>= 0), or -1 with a message in err. */
int pt_listen_socket_open(const char *address, char *err, size_t errlen);

/*
 * Process-wide registry of listening sockets by address. Snapshots acquire
 * the sockets of their listeners and release them when destroyed, so a
 * reload keeps the very same sockets for unchanged listeners (no connection
 * in a backlog is lost) and closes a removed listener's sockets only once
 * no snapshot uses them. Any thread (a mutex guards it).
 */
/* Pointer: nworkers listening fds for address (opened when not yet open),
 * or NULL with a message in err. Each call takes one reference. */
const int *pt_listen_acquire(const char *address, unsigned nworkers, char *err, size_t errlen);
void pt_listen_release(const char *address);

struct pt_acceptor;
/* Called for every accepted connection (fd nonblocking, close-on-exec, TCP_NODELAY). */
typedef void pt_accept_fn(void *arg, int fd, const struct sockaddr *peer, socklen_t peer_len);

/* Pointer: never NULL. Worker thread. Does not own listen_fd. */
struct pt_acceptor *pt_acceptor_new(struct pt_worker *w, int listen_fd, pt_accept_fn *fn,
                                    void *arg);
void pt_acceptor_pause(struct pt_acceptor *a);
void pt_acceptor_resume(struct pt_acceptor *a);
void pt_acceptor_free(struct pt_acceptor *a);

#endif
