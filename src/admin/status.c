/*
 * admin/status.c - handler status results, their google.rpc.Status
 * encoding, and the access-control predicates (sans I/O).
 */
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/server.h"
#include "core/arena.h"
#include "google/protobuf/any.pb-c.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        abort(); /* a real malloc failure aborts (ARCHITECTURE principle 6) */
    return s;
}

void pt_admin_status_set(struct pt_admin_status *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(st->message);
    st->message = vformat(fmt, ap);
    va_end(ap);
    st->code = code;
}

void pt_admin_status_add_violation(struct pt_admin_status *st, const char *field, const char *fmt,
                                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    st->violations = pt_xrealloc(st->violations, (st->nviolations + 1) * sizeof(*st->violations));
    st->violations[st->nviolations].field = pt_xstrdup(field ? field : "");
    st->violations[st->nviolations].description = vformat(fmt, ap);
    st->nviolations++;
    va_end(ap);
}

void pt_admin_status_fini(struct pt_admin_status *st)
{
    for (size_t i = 0; i < st->nviolations; i++) {
        free(st->violations[i].field);
        free(st->violations[i].description);
    }
    free(st->violations);
    free(st->message);
    memset(st, 0, sizeof(*st));
}

uint8_t *pt_admin_status_details_pack(const struct pt_admin_status *st, size_t *len)
{
    if (!st->nviolations)
        return NULL;
    Google__Rpc__BadRequest br = GOOGLE__RPC__BAD_REQUEST__INIT;
    Google__Rpc__BadRequest__FieldViolation *fv = pt_xcalloc(st->nviolations, sizeof(*fv));
    Google__Rpc__BadRequest__FieldViolation **fvp = pt_xcalloc(st->nviolations, sizeof(*fvp));
    for (size_t i = 0; i < st->nviolations; i++) {
        google__rpc__bad_request__field_violation__init(&fv[i]);
        fv[i].field = st->violations[i].field;
        fv[i].description = st->violations[i].description;
        fvp[i] = &fv[i];
    }
    br.n_field_violations = st->nviolations;
    br.field_violations = fvp;
    size_t blen = google__rpc__bad_request__get_packed_size(&br);
    uint8_t *bbuf = pt_xmalloc(blen ? blen : 1);
    google__rpc__bad_request__pack(&br, bbuf);

    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = "type.googleapis.com/google.rpc.BadRequest";
    any.value.data = bbuf;
    any.value.len = blen;
    Google__Protobuf__Any *anyp = &any;
    Google__Rpc__Status s = GOOGLE__RPC__STATUS__INIT;
    s.code = st->code;
    s.message = st->message ? st->message : "";
    s.n_details = 1;
    s.details = &anyp;
    *len = google__rpc__status__get_packed_size(&s);
    uint8_t *out = pt_xmalloc(*len ? *len : 1);
    google__rpc__status__pack(&s, out);
    free(bbuf);
    free(fv);
    free(fvp);
    return out;
}

bool pt_admin_address_is_loopback(const char *address)
{
    char host[256];
    const char *colon;
    size_t n;
    if (address[0] == '[') {
        const char *end = strchr(address, ']');
        if (!end)
            return false;
        n = (size_t)(end - address - 1);
        if (n >= sizeof(host))
            return false;
        memcpy(host, address + 1, n);
    } else {
        colon = strrchr(address, ':');
        /* more than one colon without brackets: a bare IPv6 address */
        n = colon && strchr(address, ':') == colon ? (size_t)(colon - address) : strlen(address);
        if (n >= sizeof(host))
            return false;
        memcpy(host, address, n);
    }
    host[n] = 0;
    if (strcasecmp(host, "localhost") == 0)
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return memcmp(&a6, &in6addr_loopback, sizeof(a6)) == 0;
    return false;
}

bool pt_admin_token_matches(const char *token, const char *authorization, size_t len)
{
    static const char prefix[] = "Bearer ";
    const size_t plen = sizeof(prefix) - 1;
    if (len < plen || strncasecmp(authorization, prefix, plen) != 0)
        return false;
    /* Hash both sides so the comparison takes the same time whatever the
     * presented token's length or content. */
    unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, strlen(token), want);
    SHA256((const unsigned char *)authorization + plen, len - plen, got);
    return CRYPTO_memcmp(want, got, sizeof(want)) == 0;
}
