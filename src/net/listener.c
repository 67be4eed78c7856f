#include "net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/log.h"
#include "portico/errors.h"

#define ACCEPTS_PER_EVENT 64

int pt_net_parse_address(const char *address, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[128];
    const char *port_s;
    memset(ss, 0, sizeof(*ss));
    if (address[0] == '[') {
        const char *end = strchr(address, ']');
        if (!end || end[1] != ':' || (size_t)(end - address - 1) >= sizeof(host))
            return PT_ERR_CONFIG;
        memcpy(host, address + 1, (size_t)(end - address - 1));
        host[end - address - 1] = '\0';
        port_s = end + 2;
    } else {
        const char *colon = strrchr(address, ':');
        if (!colon || (size_t)(colon - address) >= sizeof(host) || strchr(address, ':') != colon)
            return PT_ERR_CONFIG;
        memcpy(host, address, (size_t)(colon - address));
        host[colon - address] = '\0';
        port_s = colon + 1;
    }
    char *endp;
    errno = 0;
    long port = strtol(port_s, &endp, 10);
    if (!*port_s || *endp || errno || port < 1 || port > 65535)
        return PT_ERR_CONFIG;
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_ANY);
        in->sin_port = htons((uint16_t)port);
        *len = sizeof(*in);
        return 0;
    }
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *len = sizeof(*in);
        return 0;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*in6);
        return 0;
    }
    return PT_ERR_CONFIG;
}

int pt_listen_socket_open(const char *address, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (pt_net_parse_address(address, &ss, &len) != 0) {
        snprintf(err, errlen, "invalid listen address \"%s\"", address);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        snprintf(err, errlen, "bind %s: %s", address, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 4096) != 0) {
        snprintf(err, errlen, "listen %s: %s", address, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

struct listen_entry {
    struct listen_entry *next;
    char *address;
    int *fds;
    unsigned nfds;
    unsigned refs;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct listen_entry *registry;

const int *pt_listen_acquire(const char *address, unsigned nworkers, char *err, size_t errlen)
{
    pthread_mutex_lock(&registry_mu);
    for (struct listen_entry *e = registry; e; e = e->next) {
        if (strcmp(e->address, address) == 0 && e->nfds == nworkers) {
            e->refs++;
            pthread_mutex_unlock(&registry_mu);
            return e->fds;
        }
    }
    struct listen_entry *e = pt_xcalloc(1, sizeof(*e));
    e->address = pt_xstrdup(address);
    e->fds = pt_xcalloc(nworkers, sizeof(int));
    e->nfds = nworkers;
    e->refs = 1;
    for (unsigned i = 0; i < nworkers; i++) {
        e->fds[i] = pt_listen_socket_open(address, err, errlen);
        if (e->fds[i] < 0) {
            while (i--)
                close(e->fds[i]);
            free(e->fds);
            free(e->address);
            free(e);
            pthread_mutex_unlock(&registry_mu);
            return NULL;
        }
    }
    e->next = registry;
    registry = e;
    pthread_mutex_unlock(&registry_mu);
    return e->fds;
}

void pt_listen_release(const char *address)
{
    pthread_mutex_lock(&registry_mu);
    for (struct listen_entry **pp = &registry; *pp; pp = &(*pp)->next) {
        struct listen_entry *e = *pp;
        if (strcmp(e->address, address) != 0)
            continue;
        if (--e->refs == 0) {
            *pp = e->next;
            for (unsigned i = 0; i < e->nfds; i++)
                close(e->fds[i]);
            free(e->fds);
            free(e->address);
            free(e);
        }
        break;
    }
    pthread_mutex_unlock(&registry_mu);
}

struct pt_acceptor {
    struct pt_worker *w;
    int fd;
    struct event *ev;
    pt_accept_fn *fn;
    void *arg;
    bool paused;
};

static void on_acceptable(evutil_socket_t fd, short what, void *arg)
{
    struct pt_acceptor *a = arg;
    for (int i = 0; i < ACCEPTS_PER_EVENT && !a->paused; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int c = accept4(fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            /* EMFILE/ENFILE/ENOBUFS: nothing to do but try again later. */
            pt_log_warn("accept: %s", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        a->fn(a->arg, c, (struct sockaddr *)&peer, len);
    }
}

struct pt_acceptor *pt_acceptor_new(struct pt_worker *w, int listen_fd, pt_accept_fn *fn, void *arg)
{
    struct pt_acceptor *a = pt_xcalloc(1, sizeof(*a));
    a->w = w;
    a->fd = listen_fd;
    a->fn = fn;
    a->arg = arg;
    a->ev = event_new(w->base, listen_fd, EV_READ | EV_PERSIST, on_acceptable, a);
    if (!a->ev)
        pt_abort_oom(sizeof(*a));
    event_add(a->ev, NULL);
    return a;
}

void pt_acceptor_pause(struct pt_acceptor *a)
{
    if (!a->paused) {
        a->paused = true;
        event_del(a->ev);
    }
}

void pt_acceptor_resume(struct pt_acceptor *a)
{
    if (a->paused) {
        a->paused = false;
        event_add(a->ev, NULL);
    }
}

void pt_acceptor_free(struct pt_acceptor *a)
{
    if (!a)
        return;
    event_free(a->ev);
    free(a);
}
