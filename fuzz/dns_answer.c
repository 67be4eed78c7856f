/*
 * Fuzz the SRV answer parser (discovery/dns_msg.c): arbitrary bytes as a
 * DNS response (the id is taken from the message itself, so mutations
 * reach the records), then the SRV rule over whatever parsed. Any input
 * is an answer or an error, never a crash; parsed names stay bounded.
 */
#include <stdlib.h>
#include <string.h>

#include "discovery/dns_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pt_dns_answer answer;

static size_t addrs(void *arg, const char *target, const char **ips, size_t cap)
{
    const struct pt_dns_answer *a = arg;
    size_t n = 0;
    for (size_t i = 0; i < a->naddr && n < cap; i++)
        if (strcmp(a->addr[i].name, target) == 0)
            ips[n++] = a->addr[i].ip;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint16_t id = (uint16_t)(data[0] << 8 | data[1]);
    char err[128];
    if (pt_dns_answer_parse(data, size, id, &answer, err, sizeof(err)) != 0)
        return 0;
    if (answer.nsrv > PT_DNS_MAX_RECORDS || answer.naddr > PT_DNS_MAX_RECORDS)
        abort();
    for (size_t i = 0; i < answer.nsrv; i++)
        if (strlen(answer.srv[i].target) >= PT_DNS_NAME_MAX)
            abort();
    struct pt_disc_instance out[64];
    size_t n = pt_dns_srv_instances(answer.srv, answer.nsrv, addrs, &answer, out, 64);
    if (n > 64)
        abort();
    (void)pt_disc_instances_normalize(out, n);
    return 0;
}
