/*
 * The discovery thread: DNS watches (evdns for A/AAAA, our own SRV query),
 * the lease timer, and the hand-over of changed sets. See discovery.h.
 */
#include "discovery/discovery.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/log.h"
#include "core/time.h"
#include "discovery/dns_msg.h"
#include "portico/errors.h"

#define MAX_NAMESERVERS 8
#define LEASE_TICK_MS 100
#define RESOLV_CONF "/etc/resolv.conf"
#define KIND_DNS PORTICO__CONFIG__V1__DISCOVERY_KIND__DISCOVERY_KIND_DNS
#define KIND_SRV PORTICO__CONFIG__V1__DISCOVERY_KIND__DISCOVERY_KIND_DNS_SRV
#define KIND_REG PORTICO__CONFIG__V1__DISCOVERY_KIND__DISCOVERY_KIND_REGISTRATION

/* A discovered service as configured. */
struct spec {
    char *service;
    int kind;
    char *name;
    uint16_t port;
    int family; /* 0 any, 4, 6 */
    uint32_t min_ms;
    uint32_t max_ms;
};

struct dns_conf {
    char **ns;
    size_t nns;
    uint32_t timeout_ms;
    uint32_t attempts;
};

struct watch;

/* One SRV query in flight: UDP, then TCP when the answer is truncated. */
struct srvq {
    struct watch *w;
    int fd;
    struct event *ev;
    struct bufferevent *bev;
    uint16_t id;
    uint8_t q[PT_DNS_NAME_MAX + 32];
    int qlen;
    unsigned attempt;
};

struct lookup {
    struct watch *w;
    char name[PT_DNS_NAME_MAX];
};

struct watch {
    struct watch *next;
    struct pt_discovery *d;
    struct spec sp;
    struct event *timer;
    bool dead;
    unsigned pending; /* evdns lookups and SRV queries in flight */
    struct pt_dns_answer *ans;
    char why[400];
    unsigned failures;
    bool ever_ok;
    struct srvq *sq;
    struct pt_disc_instance *last;
    size_t nlast;
    bool published;
};

struct pt_discovery {
    pthread_mutex_t mu;    /* want*, changed, stop, leases */
    pthread_mutex_t pubmu; /* one publish at a time, in order */
    pt_discovery_publish_fn *fn;
    void *arg;

    struct spec *want;
    size_t nwant;
    struct dns_conf want_dns;
    bool changed;
    bool stop;
    struct pt_leases leases;

    pthread_t thread;
    bool started;
    struct event_base *base;
    int wake_fd;
    struct event *wake_ev;
    struct event *lease_tick;

    /* discovery thread only */
    bool stopping;
    struct spec *have;
    size_t nhave;
    struct dns_conf have_dns;
    bool have_dns_set;
    struct evdns_base *evdns;
    struct sockaddr_storage ns_addr[MAX_NAMESERVERS];
    int ns_len[MAX_NAMESERVERS];
    size_t nns;
    struct watch *watches;
};

static uint64_t now_ms(void)
{
    return pt_time_mono_ns() / 1000000u;
}

static uint64_t to_unix_ms(uint64_t mono_ms)
{
    uint64_t real = pt_time_real_ns() / 1000000u, mono = now_ms();
    return real + (mono_ms > mono ? mono_ms - mono : 0);
}

/* ---- specs ---- */

static void spec_fini(struct spec *s)
{
    free(s->service);
    free(s->name);
}

static void specs_free(struct spec *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        spec_fini(&v[i]);
    free(v);
}

static bool spec_same(const struct spec *a, const struct spec *b)
{
    return strcmp(a->service, b->service) == 0 && a->kind == b->kind &&
           strcmp(a->name, b->name) == 0 && a->port == b->port && a->family == b->family &&
           a->min_ms == b->min_ms && a->max_ms == b->max_ms;
}

static struct spec spec_copy(const struct spec *s)
{
    struct spec c = *s;
    c.service = pt_xstrdup(s->service);
    c.name = pt_xstrdup(s->name);
    return c;
}

static void dns_conf_fini(struct dns_conf *c)
{
    for (size_t i = 0; i < c->nns; i++)
        free(c->ns[i]);
    free(c->ns);
    memset(c, 0, sizeof(*c));
}

static bool dns_conf_same(const struct dns_conf *a, const struct dns_conf *b)
{
    if (a->nns != b->nns || a->timeout_ms != b->timeout_ms || a->attempts != b->attempts)
        return false;
    for (size_t i = 0; i < a->nns; i++)
        if (strcmp(a->ns[i], b->ns[i]) != 0)
            return false;
    return true;
}

static void dns_conf_copy(struct dns_conf *to, const struct dns_conf *from)
{
    to->nns = from->nns;
    to->ns = pt_xcalloc(from->nns + 1, sizeof(*to->ns));
    for (size_t i = 0; i < from->nns; i++)
        to->ns[i] = pt_xstrdup(from->ns[i]);
    to->timeout_ms = from->timeout_ms;
    to->attempts = from->attempts;
}

/* ---- publishing ---- */

/* Caller holds pubmu, not mu. */
static void publish(struct pt_discovery *d, const char *service, const struct pt_disc_instance *v,
                    size_t n)
{
    d->fn(d->arg, service, v, n);
}

/* ---- the watch of one DNS name ---- */

static void watch_schedule(struct watch *w, uint32_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(w->timer, &tv);
}

static void watch_free(struct watch *w)
{
    struct pt_discovery *d = w->d;
    for (struct watch **pp = &d->watches; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    event_free(w->timer);
    free(w->ans);
    free(w->last);
    spec_fini(&w->sp);
    free(w);
}

static bool family_ok(const struct watch *w, bool v6)
{
    return w->sp.family == 0 || (w->sp.family == 6) == v6;
}

static size_t srv_addrs(void *arg, const char *target, const char **ips, size_t cap)
{
    struct watch *w = arg;
    size_t n = 0;
    for (size_t i = 0; i < w->ans->naddr && n < cap; i++)
        if (family_ok(w, w->ans->addr[i].v6) && strcmp(w->ans->addr[i].name, target) == 0)
            ips[n++] = w->ans->addr[i].ip;
    return n;
}

static void round_finish(struct watch *w)
{
    struct pt_discovery *d = w->d;
    if (d->stopping || w->dead) {
        free(w->ans);
        w->ans = NULL;
        return;
    }
    struct pt_disc_instance *v = pt_xcalloc(PT_DISC_MAX_INSTANCES, sizeof(*v));
    size_t n = 0;
    uint32_t ttl = UINT32_MAX;
    const struct pt_dns_answer *a = w->ans;
    if (w->sp.kind == KIND_DNS) {
        for (size_t i = 0; i < a->naddr && n < PT_DISC_MAX_INSTANCES; i++) {
            if (!family_ok(w, a->addr[i].v6))
                continue;
            snprintf(v[n].host, sizeof(v[n].host), "%s", a->addr[i].ip);
            v[n].port = w->sp.port;
            v[n].weight = 1;
            n++;
        }
    } else {
        n = pt_dns_srv_instances(a->srv, a->nsrv, srv_addrs, w, v, PT_DISC_MAX_INSTANCES);
        for (size_t i = 0; i < a->nsrv; i++)
            ttl = a->srv[i].ttl < ttl ? a->srv[i].ttl : ttl;
    }
    for (size_t i = 0; i < a->naddr; i++)
        ttl = a->addr[i].ttl < ttl ? a->addr[i].ttl : ttl;
    n = pt_disc_instances_normalize(v, n);
    if (n == 0) {
        if (!w->why[0])
            snprintf(w->why, sizeof(w->why), "no %s records",
                     w->sp.kind == KIND_DNS ? "address" : "usable SRV");
        w->failures++;
        if (w->failures == 1)
            pt_log_warn("discovery: service %s: cannot resolve %s (%s); keeping its %zu "
                        "instance(s) and retrying",
                        w->sp.service, w->sp.name, w->why, w->nlast);
        watch_schedule(w, pt_disc_backoff_ms(w->failures, w->sp.max_ms));
        free(v);
    } else {
        if (w->failures || !w->ever_ok)
            pt_log_info("discovery: service %s: %s resolves to %zu instance(s)", w->sp.service,
                        w->sp.name, n);
        w->failures = 0;
        w->ever_ok = true;
        watch_schedule(w, pt_disc_refresh_ms(ttl, w->sp.min_ms, w->sp.max_ms));
        if (!w->published || !pt_disc_instances_equal(v, n, w->last, w->nlast)) {
            free(w->last);
            w->last = v;
            w->nlast = n;
            w->published = true;
            pthread_mutex_lock(&d->pubmu);
            publish(d, w->sp.service, v, n);
            pthread_mutex_unlock(&d->pubmu);
        } else {
            free(v);
        }
    }
    free(w->ans);
    w->ans = NULL;
}

/* One asynchronous piece of a round is over. */
static void round_piece_done(struct watch *w)
{
    if (--w->pending > 0)
        return;
    round_finish(w);
    if (w->dead || w->d->stopping)
        watch_free(w);
}

static void add_addrs(struct watch *w, const char *name, char type, int count, int ttl,
                      const void *addresses)
{
    struct pt_dns_answer *a = w->ans;
    for (int i = 0; i < count && a->naddr < PT_DNS_MAX_RECORDS; i++) {
        struct pt_dns_addr *x = &a->addr[a->naddr];
        bool v6 = type == DNS_IPv6_AAAA;
        const void *src = v6 ? (const void *)((const struct in6_addr *)addresses + i)
                             : (const void *)((const struct in_addr *)addresses + i);
        if (!inet_ntop(v6 ? AF_INET6 : AF_INET, src, x->ip, sizeof(x->ip)))
            continue;
        snprintf(x->name, sizeof(x->name), "%s", name);
        x->v6 = v6;
        x->ttl = ttl > 0 ? (uint32_t)ttl : 0;
        a->naddr++;
    }
}

static void on_lookup(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    struct lookup *lk = arg;
    struct watch *w = lk->w;
    if (w->ans && !w->dead && !w->d->stopping) {
        if (result == DNS_ERR_NONE && (type == DNS_IPv4_A || type == DNS_IPv6_AAAA))
            add_addrs(w, lk->name, type, count, ttl, addresses);
        else if (result != DNS_ERR_NONE && result != DNS_ERR_NOTEXIST)
            snprintf(w->why, sizeof(w->why), "%s: %s", lk->name, evdns_err_to_string(result));
        else if (!w->why[0])
            snprintf(w->why, sizeof(w->why), "%s: no such name", lk->name);
    }
    free(lk);
    round_piece_done(w);
}

static void lookup_start(struct watch *w, const char *name, bool v6)
{
    struct lookup *lk = pt_xcalloc(1, sizeof(*lk));
    lk->w = w;
    snprintf(lk->name, sizeof(lk->name), "%s", name);
    struct evdns_request *r =
        v6 ? evdns_base_resolve_ipv6(w->d->evdns, name, DNS_QUERY_NO_SEARCH, on_lookup, lk)
           : evdns_base_resolve_ipv4(w->d->evdns, name, DNS_QUERY_NO_SEARCH, on_lookup, lk);
    if (!r) {
        snprintf(w->why, sizeof(w->why), "%s: the lookup could not start", name);
        free(lk);
        return;
    }
    w->pending++;
}

static void lookup_both(struct watch *w, const char *name)
{
    if (w->sp.family != 6)
        lookup_start(w, name, false);
    if (w->sp.family != 4)
        lookup_start(w, name, true);
}

/* ---- SRV over UDP (and TCP) ---- */

static void srvq_close(struct srvq *q)
{
    if (q->ev)
        event_free(q->ev);
    q->ev = NULL;
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    if (q->bev)
        bufferevent_free(q->bev);
    q->bev = NULL;
}

/* The SRV query is over (answer in w->ans, or failed with w->why). */
static void srvq_done(struct srvq *q, bool ok)
{
    struct watch *w = q->w;
    srvq_close(q);
    w->sq = NULL;
    free(q);
    if (ok && !w->dead && !w->d->stopping) {
        /* Targets whose addresses the answer lacks: ask evdns. */
        const struct pt_dns_answer *a = w->ans;
        for (size_t i = 0; i < a->nsrv; i++) {
            const char *ips[1];
            bool seen = false;
            for (size_t k = 0; k < i && !seen; k++)
                seen = strcmp(a->srv[k].target, a->srv[i].target) == 0;
            if (!seen && srv_addrs(w, a->srv[i].target, ips, 1) == 0)
                lookup_both(w, a->srv[i].target);
        }
    }
    round_piece_done(w);
}

static void srvq_send(struct srvq *q);
static void tcp_arm(struct srvq *q);

/* Status: 0 answered (done), 1 keep waiting (a stray datagram). */
static int srvq_answer(struct srvq *q, const uint8_t *buf, size_t len, bool tcp)
{
    struct watch *w = q->w;
    char err[128];
    if (pt_dns_answer_parse(buf, len, q->id, w->ans, err, sizeof(err)) != 0) {
        if (!tcp && strstr(err, "id mismatch"))
            return 1;
        snprintf(w->why, sizeof(w->why), "SRV answer: %s", err);
        srvq_done(q, false);
        return 0;
    }
    if (w->ans->truncated && !tcp) {
        /* Ask the same server again over TCP. */
        srvq_close(q);
        q->bev = bufferevent_socket_new(w->d->base, -1, BEV_OPT_CLOSE_ON_FREE);
        size_t ns = (q->attempt - 1) % w->d->nns;
        uint8_t lenb[2] = {(uint8_t)(q->qlen >> 8), (uint8_t)q->qlen};
        if (!q->bev || bufferevent_socket_connect(q->bev, (struct sockaddr *)&w->d->ns_addr[ns],
                                                  w->d->ns_len[ns]) != 0) {
            snprintf(w->why, sizeof(w->why), "SRV over TCP: cannot connect");
            srvq_done(q, false);
            return 0;
        }
        bufferevent_write(q->bev, lenb, 2);
        bufferevent_write(q->bev, q->q, (size_t)q->qlen);
        tcp_arm(q);
        return 0;
    }
    if (w->ans->rcode != 0 || w->ans->nsrv == 0) {
        snprintf(w->why, sizeof(w->why), "%s",
                 w->ans->rcode == 3   ? "no such name"
                 : w->ans->rcode == 2 ? "server failure"
                 : w->ans->rcode      ? "query refused or failed"
                                      : "no SRV records");
        srvq_done(q, false);
        return 0;
    }
    srvq_done(q, true);
    return 0;
}

static void on_tcp_read(struct bufferevent *bev, void *arg)
{
    struct srvq *q = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (evbuffer_get_length(in) < 2)
        return;
    uint8_t lenb[2];
    evbuffer_copyout(in, lenb, 2);
    size_t len = ((size_t)lenb[0] << 8) | lenb[1];
    if (evbuffer_get_length(in) < len + 2)
        return;
    evbuffer_drain(in, 2);
    uint8_t *buf = pt_xmalloc(len ? len : 1);
    evbuffer_remove(in, buf, len);
    (void)srvq_answer(q, buf, len, true);
    free(buf);
}

static void on_tcp_event(struct bufferevent *bev, short what, void *arg)
{
    struct srvq *q = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    snprintf(q->w->why, sizeof(q->w->why), "SRV over TCP: %s",
             (what & BEV_EVENT_TIMEOUT) ? "timeout" : "connection failed");
    srvq_done(q, false);
}

static void tcp_arm(struct srvq *q)
{
    uint32_t ms = q->w->d->have_dns.timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    bufferevent_setcb(q->bev, on_tcp_read, NULL, on_tcp_event, q);
    bufferevent_set_timeouts(q->bev, &tv, &tv);
    bufferevent_enable(q->bev, EV_READ | EV_WRITE);
}

static void on_udp(evutil_socket_t fd, short what, void *arg)
{
    struct srvq *q = arg;
    struct watch *w = q->w;
    if (what & EV_TIMEOUT) {
        snprintf(w->why, sizeof(w->why), "SRV query timed out");
        srvq_send(q);
        return;
    }
    uint8_t buf[65536];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        snprintf(w->why, sizeof(w->why), "SRV query: %s", strerror(errno));
        srvq_send(q);
        return;
    }
    (void)srvq_answer(q, buf, (size_t)n, false);
}

/* (Re)send the query to the next nameserver, or give up. */
static void srvq_send(struct srvq *q)
{
    struct watch *w = q->w;
    struct pt_discovery *d = w->d;
    srvq_close(q);
    uint32_t tries = d->have_dns.attempts * (uint32_t)(d->nns ? d->nns : 1);
    if (d->nns == 0 || q->attempt >= tries) {
        if (d->nns == 0)
            snprintf(w->why, sizeof(w->why), "no nameserver");
        srvq_done(q, false);
        return;
    }
    size_t ns = q->attempt % d->nns;
    q->attempt++;
    uint16_t id;
    if (getrandom(&id, sizeof(id), 0) != sizeof(id))
        id = (uint16_t)pt_time_mono_ns();
    q->id = id;
    q->qlen = pt_dns_srv_query(w->sp.name, id, q->q, sizeof(q->q));
    if (q->qlen < 0) {
        snprintf(w->why, sizeof(w->why), "cannot build the SRV query");
        srvq_done(q, false);
        return;
    }
    q->fd = socket(d->ns_addr[ns].ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&d->ns_addr[ns], d->ns_len[ns]) != 0 ||
        send(q->fd, q->q, (size_t)q->qlen, 0) != q->qlen) {
        snprintf(w->why, sizeof(w->why), "SRV query: %s", strerror(errno));
        /* try the next one from the loop, not recursively */
        srvq_close(q);
        q->ev = evtimer_new(d->base, on_udp, q);
        struct timeval tv = {0, 1000};
        evtimer_add(q->ev, &tv);
        return;
    }
    q->ev = event_new(d->base, q->fd, EV_READ | EV_PERSIST, on_udp, q);
    uint32_t ms = d->have_dns.timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(q->ev, &tv);
}

static void srv_start(struct watch *w)
{
    struct srvq *q = pt_xcalloc(1, sizeof(*q));
    q->w = w;
    q->fd = -1;
    w->sq = q;
    w->pending++;
    srvq_send(q);
}

/* ---- rounds ---- */

static void on_watch_timer(evutil_socket_t fd, short what, void *arg)
{
    struct watch *w = arg;
    if (w->pending)
        return;
    if (!w->d->evdns) {
        watch_schedule(w, pt_disc_backoff_ms(++w->failures, w->sp.max_ms));
        return;
    }
    w->ans = pt_xcalloc(1, sizeof(*w->ans));
    w->why[0] = '\0';
    w->pending = 1; /* this call: nothing finishes the round before it returns */
    if (w->sp.kind == KIND_DNS)
        lookup_both(w, w->sp.name);
    else
        srv_start(w);
    round_piece_done(w);
}

static struct watch *watch_new(struct pt_discovery *d, const struct spec *sp)
{
    struct watch *w = pt_xcalloc(1, sizeof(*w));
    w->d = d;
    w->sp = spec_copy(sp);
    w->timer = evtimer_new(d->base, on_watch_timer, w);
    if (!w->timer)
        pt_abort_oom(sizeof(*w));
    w->next = d->watches;
    d->watches = w;
    watch_schedule(w, 0);
    return w;
}

static void watch_kill(struct watch *w)
{
    w->dead = true;
    evtimer_del(w->timer);
    if (w->sq) {
        /* Our own query: end it now (its piece completes the round). */
        struct srvq *q = w->sq;
        srvq_close(q);
        w->sq = NULL;
        free(q);
        w->pending--;
    }
    if (w->pending == 0)
        watch_free(w);
}

/* ---- nameservers ---- */

static size_t resolv_conf_nameservers(char ***out)
{
    FILE *f = fopen(RESOLV_CONF, "r");
    size_t n = 0;
    *out = NULL;
    if (!f)
        return 0;
    char line[512];
    while (fgets(line, sizeof(line), f) && n < MAX_NAMESERVERS) {
        char addr[256];
        if (sscanf(line, " nameserver %255s", addr) != 1)
            continue;
        *out = pt_xrealloc(*out, (n + 1) * sizeof(**out));
        (*out)[n++] = pt_xstrdup(addr);
    }
    fclose(f);
    return n;
}

/* Rebuild the resolver for have_dns; every watch asks again now. */
static void resolver_rebuild(struct pt_discovery *d)
{
    if (d->evdns)
        evdns_base_free(d->evdns, 1);
    d->evdns = evdns_base_new(d->base, 0);
    d->nns = 0;
    if (!d->evdns) {
        pt_log_error("discovery: cannot create the DNS resolver");
        return;
    }
    char **ns = d->have_dns.ns;
    size_t nns = d->have_dns.nns;
    char **sys = NULL;
    if (nns == 0)
        nns = resolv_conf_nameservers(&sys), ns = sys;
    for (size_t i = 0; i < nns && d->nns < MAX_NAMESERVERS; i++) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        memset(&ss, 0, sizeof(ss));
        if (evutil_parse_sockaddr_port(ns[i], (struct sockaddr *)&ss, &len) != 0) {
            pt_log_warn("discovery: nameserver \"%s\" ignored: not an address", ns[i]);
            continue;
        }
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        if (ss.ss_family == AF_INET && in->sin_port == 0)
            in->sin_port = htons(53);
        if (ss.ss_family == AF_INET6 && in6->sin6_port == 0)
            in6->sin6_port = htons(53);
        if (evdns_base_nameserver_sockaddr_add(d->evdns, (struct sockaddr *)&ss, len, 0) != 0) {
            pt_log_warn("discovery: nameserver \"%s\" ignored", ns[i]);
            continue;
        }
        d->ns_addr[d->nns] = ss;
        d->ns_len[d->nns] = len;
        d->nns++;
    }
    for (size_t i = 0; sys && i < nns; i++)
        free(sys[i]);
    free(sys);
    if (d->nns == 0)
        pt_log_warn("discovery: no nameserver (dns.nameservers or %s); DNS discovery waits",
                    RESOLV_CONF);
    char buf[32];
    snprintf(buf, sizeof(buf), "%.3f", d->have_dns.timeout_ms / 1000.0);
    evdns_base_set_option(d->evdns, "timeout:", buf);
    snprintf(buf, sizeof(buf), "%u", d->have_dns.attempts);
    evdns_base_set_option(d->evdns, "attempts:", buf);
    evdns_base_set_option(d->evdns, "randomize-case:", "0");
    for (struct watch *w = d->watches; w; w = w->next)
        if (!w->dead && !w->pending)
            watch_schedule(w, 0);
}

/* ---- configuration, on the discovery thread ---- */

static bool is_registration(void *arg, const char *service)
{
    struct pt_discovery *d = arg;
    for (size_t i = 0; i < d->nhave; i++)
        if (d->have[i].kind == KIND_REG && strcmp(d->have[i].service, service) == 0)
            return true;
    return false;
}

static void lease_set_publish(struct pt_discovery *d, const char *service)
{
    struct pt_disc_instance *v = pt_xcalloc(PT_DISC_MAX_INSTANCES, sizeof(*v));
    pthread_mutex_lock(&d->mu);
    size_t n = pt_leases_instances(&d->leases, service, now_ms(), v, PT_DISC_MAX_INSTANCES);
    pthread_mutex_unlock(&d->mu);
    publish(d, service, v, n);
    free(v);
}

static void reconcile(struct pt_discovery *d)
{
    pthread_mutex_lock(&d->mu);
    if (!d->changed) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    d->changed = false;
    size_t nwant = d->nwant;
    struct spec *want = pt_xcalloc(nwant + 1, sizeof(*want));
    for (size_t i = 0; i < nwant; i++)
        want[i] = spec_copy(&d->want[i]);
    struct dns_conf dns;
    dns_conf_copy(&dns, &d->want_dns);
    pthread_mutex_unlock(&d->mu);

    struct spec *old = d->have;
    size_t nold = d->nhave;
    d->have = want;
    d->nhave = nwant;
    bool dns_changed = !d->have_dns_set || !dns_conf_same(&dns, &d->have_dns);
    dns_conf_fini(&d->have_dns);
    d->have_dns = dns;
    d->have_dns_set = true;

    /* Watches no longer wanted as they are. */
    for (struct watch *w = d->watches, *next; w; w = next) {
        next = w->next;
        bool keep = false;
        for (size_t i = 0; i < nwant && !keep; i++)
            keep = spec_same(&w->sp, &want[i]);
        if (!keep && !w->dead)
            watch_kill(w);
    }
    pthread_mutex_lock(&d->pubmu);
    pthread_mutex_lock(&d->mu);
    size_t dropped = pt_leases_retain(&d->leases, is_registration, d);
    pthread_mutex_unlock(&d->mu);
    if (dropped)
        pt_log_info("discovery: %zu registration(s) dropped: their service no longer takes "
                    "registrations",
                    dropped);
    for (size_t i = 0; i < nwant; i++) {
        bool same = false;
        for (size_t k = 0; k < nold && !same; k++)
            same = spec_same(&old[k], &want[i]);
        if (same)
            continue;
        /* A changed source replaces the service's instances with its first
         * good answer (registrations: at once); until then the previous
         * ones keep serving, as after a failed lookup. */
        if (want[i].kind == KIND_REG)
            lease_set_publish(d, want[i].service);
        else
            watch_new(d, &want[i]);
    }
    pthread_mutex_unlock(&d->pubmu);
    specs_free(old, nold);
    if (dns_changed)
        resolver_rebuild(d);
}

/* The lease tick runs only while there are leases (an idle gateway's
 * discovery thread sleeps). */
static void lease_tick_arm(struct pt_discovery *d)
{
    pthread_mutex_lock(&d->mu);
    bool any = d->leases.n > 0;
    pthread_mutex_unlock(&d->mu);
    if (any && !evtimer_pending(d->lease_tick, NULL)) {
        struct timeval tick = {0, LEASE_TICK_MS * 1000};
        evtimer_add(d->lease_tick, &tick);
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct pt_discovery *d = arg;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        pt_log_warn("discovery: wake-up read failed: %s", strerror(errno));
    pthread_mutex_lock(&d->mu);
    bool stop = d->stop;
    pthread_mutex_unlock(&d->mu);
    if (stop) {
        event_base_loopbreak(d->base);
        return;
    }
    reconcile(d);
    lease_tick_arm(d);
}

static void on_lease_tick(evutil_socket_t fd, short what, void *arg)
{
    struct pt_discovery *d = arg;
    char **services = NULL;
    size_t nservices = 0;
    pthread_mutex_lock(&d->pubmu);
    pthread_mutex_lock(&d->mu);
    size_t n = pt_leases_expire(&d->leases, now_ms(), &services, &nservices);
    pthread_mutex_unlock(&d->mu);
    if (n)
        pt_log_info("discovery: %zu registration(s) expired without a heartbeat", n);
    for (size_t i = 0; i < nservices; i++) {
        lease_set_publish(d, services[i]);
        free(services[i]);
    }
    free(services);
    pthread_mutex_unlock(&d->pubmu);
    lease_tick_arm(d);
}

static void wake(struct pt_discovery *d)
{
    uint64_t one = 1;
    if (d->wake_fd >= 0 && write(d->wake_fd, &one, sizeof(one)) < 0)
        pt_log_warn("discovery: wake-up write failed: %s", strerror(errno));
}

static void *thread_main(void *arg)
{
    struct pt_discovery *d = arg;
    event_base_dispatch(d->base);
    /* Stop: end every lookup (evdns reports them failed) and free. */
    d->stopping = true;
    for (struct watch *w = d->watches, *next; w; w = next) {
        next = w->next;
        watch_kill(w);
    }
    if (d->evdns)
        evdns_base_free(d->evdns, 1);
    d->evdns = NULL;
    for (int i = 0; i < 100 && d->watches; i++)
        event_base_loop(d->base, EVLOOP_NONBLOCK);
    while (d->watches) /* lookups that never reported back */
        watch_free(d->watches);
    return NULL;
}

/* ---- API ---- */

struct pt_discovery *pt_discovery_new(pt_discovery_publish_fn *fn, void *arg)
{
    struct pt_discovery *d = pt_xcalloc(1, sizeof(*d));
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->pubmu, NULL);
    d->fn = fn;
    d->arg = arg;
    d->wake_fd = -1;
    pt_leases_init(&d->leases);
    d->want_dns.timeout_ms = PT_DISC_DEFAULT_TIMEOUT_MS;
    d->want_dns.attempts = PT_DISC_DEFAULT_ATTEMPTS;
    return d;
}

/* evdns reports every nameserver state change on its own; this module
 * logs each service's state change once, so evdns speaks at debug level. */
static void evdns_log(int severity, const char *msg)
{
    pt_log(PT_LOG_DEBUG, "evdns: %s", msg);
}

int pt_discovery_start(struct pt_discovery *d)
{
    evdns_set_log_fn(evdns_log);
    d->base = event_base_new();
    d->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!d->base || d->wake_fd < 0) {
        pt_log_error("discovery: cannot create its event loop");
        return PT_ERR_INTERNAL;
    }
    d->wake_ev = event_new(d->base, d->wake_fd, EV_READ | EV_PERSIST, on_wake, d);
    d->lease_tick = evtimer_new(d->base, on_lease_tick, d);
    if (!d->wake_ev || !d->lease_tick || event_add(d->wake_ev, NULL) != 0) {
        pt_log_error("discovery: cannot create its events");
        return PT_ERR_INTERNAL;
    }
    pthread_mutex_lock(&d->mu);
    d->changed = true;
    pthread_mutex_unlock(&d->mu);
    if (pthread_create(&d->thread, NULL, thread_main, d) != 0) {
        pt_log_error("discovery: cannot start its thread");
        return PT_ERR_INTERNAL;
    }
    d->started = true;
    wake(d);
    return 0;
}

void pt_discovery_configure(struct pt_discovery *d, const Portico__Config__V1__Config *cfg)
{
    size_t n = 0;
    struct spec *v = pt_xcalloc(cfg->n_services + 1, sizeof(*v));
    for (size_t i = 0; i < cfg->n_services; i++) {
        const Portico__Config__V1__Service *s = cfg->services[i];
        const Portico__Config__V1__Discovery *dc = s->discovery;
        if (!dc)
            continue;
        struct spec *sp = &v[n++];
        sp->service = pt_xstrdup(s->name);
        sp->kind = dc->kind;
        sp->name = pt_xstrdup(dc->dns_name ? dc->dns_name : "");
        sp->port = (uint16_t)dc->port;
        sp->family = dc->family && strcmp(dc->family, "ipv4") == 0   ? 4
                     : dc->family && strcmp(dc->family, "ipv6") == 0 ? 6
                                                                     : 0;
        sp->min_ms = dc->min_ttl_ms ? dc->min_ttl_ms : PT_DISC_DEFAULT_MIN_TTL_MS;
        sp->max_ms = dc->max_ttl_ms ? dc->max_ttl_ms : PT_DISC_DEFAULT_MAX_TTL_MS;
        if (sp->max_ms < sp->min_ms)
            sp->max_ms = sp->min_ms;
    }
    struct dns_conf dns = {0};
    if (cfg->dns) {
        dns.nns = cfg->dns->n_nameservers;
        dns.ns = pt_xcalloc(dns.nns + 1, sizeof(*dns.ns));
        for (size_t i = 0; i < dns.nns; i++)
            dns.ns[i] = pt_xstrdup(cfg->dns->nameservers[i]);
    }
    dns.timeout_ms =
        cfg->dns && cfg->dns->timeout_ms ? cfg->dns->timeout_ms : PT_DISC_DEFAULT_TIMEOUT_MS;
    dns.attempts = cfg->dns && cfg->dns->attempts ? cfg->dns->attempts : PT_DISC_DEFAULT_ATTEMPTS;

    pthread_mutex_lock(&d->mu);
    bool same = n == d->nwant && dns_conf_same(&dns, &d->want_dns);
    for (size_t i = 0; i < n && same; i++)
        same = spec_same(&v[i], &d->want[i]);
    if (same) {
        pthread_mutex_unlock(&d->mu);
        specs_free(v, n);
        dns_conf_fini(&dns);
        return;
    }
    specs_free(d->want, d->nwant);
    d->want = v;
    d->nwant = n;
    dns_conf_fini(&d->want_dns);
    d->want_dns = dns;
    d->changed = true;
    pthread_mutex_unlock(&d->mu);
    wake(d);
}

void pt_discovery_free(struct pt_discovery *d)
{
    if (!d)
        return;
    if (d->started) {
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        pthread_mutex_unlock(&d->mu);
        wake(d);
        pthread_join(d->thread, NULL);
    }
    if (d->wake_ev)
        event_free(d->wake_ev);
    if (d->lease_tick)
        event_free(d->lease_tick);
    if (d->evdns)
        evdns_base_free(d->evdns, 0);
    if (d->base)
        event_base_free(d->base);
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    specs_free(d->want, d->nwant);
    specs_free(d->have, d->nhave);
    dns_conf_fini(&d->want_dns);
    dns_conf_fini(&d->have_dns);
    pt_leases_fini(&d->leases);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->pubmu);
    free(d);
}

static void lease_info(const struct pt_lease *l, struct pt_disc_lease_info *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", l->id);
    snprintf(out->service, sizeof(out->service), "%s", l->service);
    out->inst = l->inst;
    out->ttl_ms = l->ttl_ms;
    out->expires_unix_ms = to_unix_ms(l->expires_ms);
}

int pt_discovery_register(struct pt_discovery *d, const char *service,
                          const struct pt_disc_instance *inst, uint32_t ttl_ms, size_t max,
                          struct pt_disc_lease_info *out)
{
    unsigned char rnd[PT_LEASE_ID_LEN / 2];
    char id[PT_LEASE_ID_LEN + 1];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t t = pt_time_mono_ns() ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    pthread_mutex_lock(&d->pubmu);
    pthread_mutex_lock(&d->mu);
    struct pt_lease *l = pt_leases_put(&d->leases, service, inst, ttl_ms, id, max, now_ms());
    if (l)
        lease_info(l, out);
    pthread_mutex_unlock(&d->mu);
    if (l)
        lease_set_publish(d, service);
    pthread_mutex_unlock(&d->pubmu);
    if (l)
        wake(d); /* arms the lease tick */
    return l ? 0 : PT_ERR_LIMIT;
}

int pt_discovery_heartbeat(struct pt_discovery *d, const char *lease_id,
                           struct pt_disc_lease_info *out)
{
    pthread_mutex_lock(&d->mu);
    struct pt_lease *l = pt_leases_renew(&d->leases, lease_id, now_ms());
    if (l)
        lease_info(l, out);
    pthread_mutex_unlock(&d->mu);
    return l ? 0 : PT_ERR_NOT_FOUND;
}

int pt_discovery_deregister(struct pt_discovery *d, const char *lease_id)
{
    char *service = NULL;
    pthread_mutex_lock(&d->pubmu);
    pthread_mutex_lock(&d->mu);
    int rc = pt_leases_remove(&d->leases, lease_id, now_ms(), &service);
    pthread_mutex_unlock(&d->mu);
    if (rc == 0)
        lease_set_publish(d, service);
    pthread_mutex_unlock(&d->pubmu);
    free(service);
    return rc;
}

size_t pt_discovery_list(struct pt_discovery *d, const char *service,
                         struct pt_disc_lease_info **out)
{
    pthread_mutex_lock(&d->mu);
    uint64_t now = now_ms();
    *out = pt_xcalloc(d->leases.n + 1, sizeof(**out));
    size_t n = 0;
    for (size_t i = 0; i < d->leases.n; i++) {
        const struct pt_lease *l = &d->leases.v[i];
        if (l->expires_ms <= now || (service && *service && strcmp(l->service, service) != 0))
            continue;
        lease_info(l, &(*out)[n++]);
    }
    pthread_mutex_unlock(&d->mu);
    return n;
}
