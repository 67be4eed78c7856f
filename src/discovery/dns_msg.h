/*
 * discovery/dns_msg.h - DNS messages for SRV discovery, sans I/O.
 *
 * evdns resolves A and AAAA records but knows nothing of SRV, so the SRV
 * query is built here and its answer parsed with glibc's libresolv
 * (ns_initparse, ns_parserr, ns_name_uncompress): SRV records of the
 * answer section, and A/AAAA records of the answer and additional sections
 * (the addresses of the targets, when the server sends them). Anything
 * malformed is an error, never a crash; counts are bounded.
 *
 * Thread: any (no shared state).
 */
#ifndef PT_DISCOVERY_DNS_MSG_H
#define PT_DISCOVERY_DNS_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/snapshot.h"

#define PT_DNS_MAX_RECORDS 256 /* per section kind kept from one answer */
#define PT_DNS_NAME_MAX 256

struct pt_dns_srv {
    uint16_t priority;
    uint16_t weight;
    uint16_t port;
    uint32_t ttl;
    char target[PT_DNS_NAME_MAX]; /* lower case, no trailing dot */
};

struct pt_dns_addr {
    char name[PT_DNS_NAME_MAX]; /* owner, lower case, no trailing dot */
    char ip[48];                /* text form */
    bool v6;
    uint32_t ttl;
};

struct pt_dns_answer {
    int rcode;
    bool truncated;
    struct pt_dns_srv srv[PT_DNS_MAX_RECORDS];
    size_t nsrv;
    struct pt_dns_addr addr[PT_DNS_MAX_RECORDS];
    size_t naddr;
};

/* Build a recursive SRV (class IN) query for name with this id.
 * Progress: the message length, or <0 (name too long or invalid, buffer
 * too small). */
int pt_dns_srv_query(const char *name, uint16_t id, uint8_t *buf, size_t cap);

/*
 * Parse an answer to the query with this id. Status: 0 (out filled; the
 * caller checks out->rcode and out->truncated), or PT_ERR_INVALID with a
 * reason in err (malformed, not a response, another id). Records beyond
 * PT_DNS_MAX_RECORDS are ignored; SRV records with target "." (service
 * not offered) are skipped.
 */
int pt_dns_answer_parse(const uint8_t *msg, size_t len, uint16_t id, struct pt_dns_answer *out,
                        char *err, size_t errlen);

/*
 * The instances an SRV answer offers: usable[i] says whether srv[i]'s
 * target has addresses (addresses of target t are found with find_addrs).
 * Only the lowest priority with a usable record counts (RFC 2782); each of
 * its records gives one instance per address of its target, with the
 * record's weight (0 counts as 1, above 10000 as 10000). Returns the number
 * written to out (at most cap).
 */
typedef size_t pt_dns_addrs_fn(void *arg, const char *target, const char **ips, size_t cap);
size_t pt_dns_srv_instances(const struct pt_dns_srv *srv, size_t nsrv, pt_dns_addrs_fn *addrs,
                            void *arg, struct pt_disc_instance *out, size_t cap);

/* Next refresh of records with this TTL (seconds): clamped to
 * [min_ms, max_ms]. */
uint32_t pt_disc_refresh_ms(uint32_t ttl_s, uint32_t min_ms, uint32_t max_ms);
/* Delay before retry number `failures` (1, 2, ...) after failed lookups:
 * 1 s doubling, at most max_ms and at most 30 s. */
uint32_t pt_disc_backoff_ms(unsigned failures, uint32_t max_ms);

/* Sort instances (host, port) and drop duplicates (keeping the larger
 * weight). Returns the new count. */
size_t pt_disc_instances_normalize(struct pt_disc_instance *v, size_t n);
bool pt_disc_instances_equal(const struct pt_disc_instance *a, size_t na,
                             const struct pt_disc_instance *b, size_t nb);

#endif
