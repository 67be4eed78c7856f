/*
 * A route's gRPC-Web settings compiled once per snapshot: the CORS header
 * values are joined here so a request only copies references.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/snapshot.h"
#include "core/arena.h"

#define PT_GRPCWEB_DEFAULT_MAX_AGE_S 600u

static const char *const default_allow[] = {"x-grpc-web", "x-user-agent", "grpc-timeout",
                                            "content-type", "authorization"};

/* Append ", item" (or "item" first) to buf at *len; buf holds enough. */
static void join(char *buf, size_t *len, const char *item)
{
    size_t n = strlen(item);
    if (*len) {
        memcpy(buf + *len, ", ", 2);
        *len += 2;
    }
    for (size_t i = 0; i < n; i++)
        buf[*len + i] = (char)tolower((unsigned char)item[i]);
    *len += n;
}

struct pt_grpcweb_conf *pt_conf_grpcweb_compile(const Portico__Config__V1__GrpcWeb *m)
{
    if (!m || (m->enabled && !m->enabled->value))
        return NULL;
    struct pt_grpcweb_conf *c = pt_xcalloc(1, sizeof(*c));
    c->allow_credentials = m->allow_credentials;
    size_t norig = 0;
    for (size_t i = 0; i < m->n_allowed_origins; i++)
        if (strcmp(m->allowed_origins[i], "*") == 0)
            c->any_origin = true;
        else
            norig++;
    c->origins = pt_xcalloc(norig ? norig : 1, sizeof(*c->origins));
    for (size_t i = 0; i < m->n_allowed_origins; i++) {
        if (strcmp(m->allowed_origins[i], "*") == 0)
            continue;
        char *o = pt_xstrdup(m->allowed_origins[i]);
        for (char *p = o; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        c->origins[c->norigins++] = o;
    }
    size_t cap = 64;
    for (size_t i = 0; i < sizeof(default_allow) / sizeof(default_allow[0]); i++)
        cap += strlen(default_allow[i]) + 2;
    for (size_t i = 0; i < m->n_allowed_headers; i++)
        cap += strlen(m->allowed_headers[i]) + 2;
    for (size_t i = 0; i < m->n_expose_headers; i++)
        cap += strlen(m->expose_headers[i]) + 2;
    c->text = pt_xmalloc(cap);
    size_t len = 0;
    for (size_t i = 0; i < sizeof(default_allow) / sizeof(default_allow[0]); i++)
        join(c->text, &len, default_allow[i]);
    for (size_t i = 0; i < m->n_allowed_headers; i++)
        join(c->text, &len, m->allowed_headers[i]);
    c->allow_headers = (struct pt_str){c->text, len};
    size_t start = len, elen = 0;
    join(c->text + start, &elen, "grpc-status");
    join(c->text + start, &elen, "grpc-message");
    for (size_t i = 0; i < m->n_expose_headers; i++)
        join(c->text + start, &elen, m->expose_headers[i]);
    c->expose_headers = (struct pt_str){c->text + start, elen};
    len += elen;
    unsigned age = m->max_age_s ? m->max_age_s->value : PT_GRPCWEB_DEFAULT_MAX_AGE_S;
    int n = snprintf(c->text + len, cap - len, "%u", age);
    c->max_age = (struct pt_str){c->text + len, (size_t)n};
    return c;
}

void pt_conf_grpcweb_free(struct pt_grpcweb_conf *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->norigins; i++)
        free(c->origins[i]);
    free(c->origins);
    free(c->text);
    free(c);
}
