/*
 * SRV queries and answers, the SRV priority/weight rule and refresh
 * timing. See dns_msg.h.
 */
#include "discovery/dns_msg.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/errors.h"

#define MAX_BACKOFF_MS 30000u
#define FIRST_BACKOFF_MS 1000u
#define MAX_SRV_WEIGHT 10000u

int pt_dns_srv_query(const char *name, uint16_t id, uint8_t *buf, size_t cap)
{
    if (cap < NS_HFIXEDSZ + NS_QFIXEDSZ + 2)
        return PT_ERR_INVALID;
    memset(buf, 0, NS_HFIXEDSZ);
    buf[0] = (uint8_t)(id >> 8);
    buf[1] = (uint8_t)id;
    buf[2] = 0x01; /* RD */
    buf[5] = 1;    /* QDCOUNT */
    int n = ns_name_compress(name, buf + NS_HFIXEDSZ, cap - NS_HFIXEDSZ - NS_QFIXEDSZ, NULL, NULL);
    if (n < 0)
        return PT_ERR_INVALID;
    uint8_t *q = buf + NS_HFIXEDSZ + n;
    q[0] = 0;
    q[1] = ns_t_srv;
    q[2] = 0;
    q[3] = ns_c_in;
    return NS_HFIXEDSZ + n + NS_QFIXEDSZ;
}

static void lower_name(char *s)
{
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '.')
        s[n - 1] = '\0';
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static int fail(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "%s", why);
    return PT_ERR_INVALID;
}

static void add_addr(struct pt_dns_answer *out, ns_rr *rr)
{
    int af = ns_rr_type(*rr) == ns_t_a ? AF_INET : AF_INET6;
    if (out->naddr == PT_DNS_MAX_RECORDS || ns_rr_class(*rr) != ns_c_in ||
        ns_rr_rdlen(*rr) != (af == AF_INET ? 4 : 16))
        return;
    struct pt_dns_addr *a = &out->addr[out->naddr];
    size_t nlen = strlen(ns_rr_name(*rr));
    if (nlen >= sizeof(a->name) || !inet_ntop(af, ns_rr_rdata(*rr), a->ip, sizeof(a->ip)))
        return;
    memcpy(a->name, ns_rr_name(*rr), nlen + 1);
    lower_name(a->name);
    a->v6 = af == AF_INET6;
    a->ttl = ns_rr_ttl(*rr);
    out->naddr++;
}

int pt_dns_answer_parse(const uint8_t *msg, size_t len, uint16_t id, struct pt_dns_answer *out,
                        char *err, size_t errlen)
{
    ns_msg h;
    out->nsrv = out->naddr = 0;
    out->rcode = 0;
    out->truncated = false;
    if (len < NS_HFIXEDSZ || len > 65535 || ns_initparse(msg, (int)len, &h) < 0)
        return fail(err, errlen, "malformed DNS message");
    if (ns_msg_id(h) != id)
        return fail(err, errlen, "answer to another query (id mismatch)");
    if (!ns_msg_getflag(h, ns_f_qr))
        return fail(err, errlen, "not a DNS response");
    out->rcode = ns_msg_getflag(h, ns_f_rcode);
    out->truncated = ns_msg_getflag(h, ns_f_tc) != 0;
    static const ns_sect sects[] = {ns_s_an, ns_s_ar};
    for (size_t si = 0; si < 2; si++) {
        int count = ns_msg_count(h, sects[si]);
        for (int i = 0; i < count; i++) {
            ns_rr rr;
            if (ns_parserr(&h, sects[si], i, &rr) < 0) {
                if (out->truncated)
                    return 0; /* a truncated answer may end anywhere */
                return fail(err, errlen, "malformed DNS record");
            }
            int type = ns_rr_type(rr);
            if (type == ns_t_a || type == ns_t_aaaa) {
                add_addr(out, &rr);
                continue;
            }
            if (type != ns_t_srv || sects[si] != ns_s_an || ns_rr_class(rr) != ns_c_in)
                continue;
            const uint8_t *rd = ns_rr_rdata(rr);
            size_t rdlen = ns_rr_rdlen(rr);
            if (rdlen < 7)
                return fail(err, errlen, "SRV record too short");
            if (out->nsrv == PT_DNS_MAX_RECORDS)
                continue;
            struct pt_dns_srv *s = &out->srv[out->nsrv];
            s->priority = ns_get16(rd);
            s->weight = ns_get16(rd + 2);
            s->port = ns_get16(rd + 4);
            s->ttl = ns_rr_ttl(rr);
            int used = ns_name_uncompress(ns_msg_base(h), ns_msg_end(h), rd + 6, s->target,
                                          sizeof(s->target));
            if (used < 0 || (size_t)used > rdlen - 6)
                return fail(err, errlen, "malformed SRV target");
            lower_name(s->target);
            if (strcmp(s->target, ".") == 0 || s->target[0] == '\0' || s->port == 0)
                continue; /* "service not offered here" */
            out->nsrv++;
        }
    }
    return 0;
}

size_t pt_dns_srv_instances(const struct pt_dns_srv *srv, size_t nsrv, pt_dns_addrs_fn *addrs,
                            void *arg, struct pt_disc_instance *out, size_t cap)
{
    const char *ips[64];
    /* The lowest priority that has a target with an address. */
    bool found = false;
    uint16_t best = 0;
    for (size_t i = 0; i < nsrv; i++) {
        if (found && srv[i].priority >= best)
            continue;
        if (addrs(arg, srv[i].target, ips, 64) > 0) {
            best = srv[i].priority;
            found = true;
        }
    }
    size_t n = 0;
    for (size_t i = 0; found && i < nsrv; i++) {
        if (srv[i].priority != best)
            continue;
        size_t k = addrs(arg, srv[i].target, ips, 64);
        for (size_t j = 0; j < k && n < cap; j++) {
            struct pt_disc_instance *in = &out[n++];
            memset(in, 0, sizeof(*in));
            snprintf(in->host, sizeof(in->host), "%s", ips[j]);
            in->port = srv[i].port;
            in->weight = srv[i].weight == 0               ? 1
                         : srv[i].weight > MAX_SRV_WEIGHT ? MAX_SRV_WEIGHT
                                                          : srv[i].weight;
        }
    }
    return n;
}

uint32_t pt_disc_refresh_ms(uint32_t ttl_s, uint32_t min_ms, uint32_t max_ms)
{
    uint64_t ms = (uint64_t)ttl_s * 1000u;
    if (ms < min_ms)
        ms = min_ms;
    if (ms > max_ms)
        ms = max_ms;
    return (uint32_t)ms;
}

uint32_t pt_disc_backoff_ms(unsigned failures, uint32_t max_ms)
{
    uint32_t cap = max_ms < MAX_BACKOFF_MS ? max_ms : MAX_BACKOFF_MS;
    uint64_t ms = FIRST_BACKOFF_MS;
    for (unsigned i = 1; i < failures && ms < cap; i++)
        ms *= 2;
    return (uint32_t)(ms < cap ? ms : cap);
}

static int inst_cmp(const void *a, const void *b)
{
    const struct pt_disc_instance *x = a, *y = b;
    int c = strcmp(x->host, y->host);
    if (c)
        return c;
    return (int)x->port - (int)y->port;
}

size_t pt_disc_instances_normalize(struct pt_disc_instance *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), inst_cmp);
    size_t k = 1;
    for (size_t i = 1; i < n; i++) {
        if (inst_cmp(&v[i], &v[k - 1]) == 0) {
            if (v[i].weight > v[k - 1].weight)
                v[k - 1].weight = v[i].weight;
            continue;
        }
        v[k++] = v[i];
    }
    return k;
}

bool pt_disc_instances_equal(const struct pt_disc_instance *a, size_t na,
                             const struct pt_disc_instance *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (inst_cmp(&a[i], &b[i]) != 0 || a[i].weight != b[i].weight)
            return false;
    return true;
}
