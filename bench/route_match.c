/*
 * bench_route_match: how long one route match takes with a large table.
 *
 * Builds 10,000 routes shaped like a real API gateway's (versioned REST
 * resources with parameters, path prefixes, a share with exact or wildcard
 * hosts, method lists and header predicates), compiles them, and times
 * 200,000 lookups of a mix of hits and misses against the trie. The same
 * requests (the first 20,000 of them: it is slow) go through the linear
 * reference matcher for contrast, and the two answers are compared.
 *
 * Method: lookups run in batches of 64 between two clock_gettime
 * (CLOCK_MONOTONIC) calls; each batch gives one sample of "ns per match"
 * (batch time / 64), so the timer's own cost is spread thin. The median,
 * p90 and p99 are over those samples; the mean is total time / lookups.
 *
 * Usage: bench_route_match [routes] [lookups]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/diag.h"
#include "http/headers.h"
#include "portico/config/v1/config.pb-c.h"
#include "route/router.h"

#define BATCH 64

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *const words[] = {"billing",   "catalog",  "checkout", "identity",  "inventory",
                                    "orders",    "payments", "pricing",  "profile",   "search",
                                    "shipping",  "reviews",  "reports",  "messaging", "accounts",
                                    "analytics", "media",    "ledger",   "loyalty",   "fraud",
                                    "tax",       "content",  "support",  "partners",  "devices"};
static const char *const flavors[] = {"", "-internal", "-partner", "-admin"};
static const char *const resources[] = {"users",    "orders",   "items",   "invoices",  "customers",
                                        "products", "carts",    "refunds", "shipments", "tickets",
                                        "accounts", "sessions", "keys",    "events",    "files",
                                        "webhooks", "plans",    "coupons", "addresses", "notes"};
static const char *const subresources[] = {"items", "history", "notes", "status", "attachments"};

#define NWORDS (sizeof(words) / sizeof(words[0]))
#define NFLAVORS (sizeof(flavors) / sizeof(flavors[0]))
#define NRES (sizeof(resources) / sizeof(resources[0]))
#define NSUB (sizeof(subresources) / sizeof(subresources[0]))

/* Everything allocated for the config, freed at the end. */
static void **mem;
static size_t nmem, capmem;

static void *keep(void *p)
{
    if (nmem == capmem) {
        capmem = capmem ? capmem * 2 : 1024;
        mem = pt_xrealloc(mem, capmem * sizeof(*mem));
    }
    mem[nmem++] = p;
    return p;
}

static char *fmt(const char *f, const char *a, const char *b, const char *c)
{
    char buf[256];
    snprintf(buf, sizeof(buf), f, a, b, c);
    return keep(pt_xstrdup(buf));
}

struct gen {
    Portico__Config__V1__Route **routes;
    size_t n;
    size_t want;
};

static Portico__Config__V1__Route *add(struct gen *g, char *path, bool prefix)
{
    Portico__Config__V1__Route *r = keep(pt_xmalloc(sizeof(*r)));
    portico__config__v1__route__init(r);
    if (prefix)
        r->path_prefix = path;
    else
        r->path = path;
    g->routes[g->n++] = r;
    return r;
}

static void set_methods(Portico__Config__V1__Route *r, const char *a, const char *b)
{
    r->methods = keep(pt_xcalloc(2, sizeof(char *)));
    r->methods[r->n_methods++] = (char *)a;
    if (b)
        r->methods[r->n_methods++] = (char *)b;
}

static void add_header(Portico__Config__V1__Route *r, const char *name, const char *exact)
{
    Portico__Config__V1__HeaderMatch *m = keep(pt_xmalloc(sizeof(*m)));
    portico__config__v1__header_match__init(m);
    m->name = (char *)name;
    if (exact) {
        m->match_case = PORTICO__CONFIG__V1__HEADER_MATCH__MATCH_EXACT;
        m->exact = (char *)exact;
    } else {
        m->match_case = PORTICO__CONFIG__V1__HEADER_MATCH__MATCH_PRESENT;
        m->present = 1;
    }
    r->headers = keep(pt_xcalloc(1, sizeof(*r->headers)));
    r->headers[r->n_headers++] = m;
}

/* A group is one API ("billing-partner"); its routes are its resources in
 * two versions, plus a prefix for its static assets. Some groups live on
 * their own host. */
static void gen_routes(struct gen *g)
{
    static const char *const versions[] = {"v1", "v2", "v3"};
    for (size_t gi = 0; g->n < g->want; gi++) {
        const char *word = words[gi % NWORDS];
        const char *flavor = flavors[(gi / NWORDS) % NFLAVORS];
        char group[64];
        snprintf(group, sizeof(group), "%s%s%s", word, flavor,
                 gi >= NWORDS * NFLAVORS
                     ? fmt("-%s", words[gi / (NWORDS * NFLAVORS) % NWORDS], NULL, NULL)
                     : "");
        char *grp = keep(pt_xstrdup(group));
        int host_mode = (int)(gi % 10); /* 0: exact host, 1: wildcard host, else none */
        char *host = host_mode == 0   ? fmt("%s.api.example.com", grp, NULL, NULL)
                     : host_mode == 1 ? fmt("*.%s.example.com", grp, NULL, NULL)
                                      : NULL;

        size_t first = g->n;
        Portico__Config__V1__Route *r = add(g, fmt("/static/%s", grp, NULL, NULL), true);
        r->strip_prefix = 1;
        for (size_t v = 0; v < 2 && g->n < g->want; v++) {
            const char *ver = versions[(gi + v) % 3];
            for (size_t k = 0; k < 6 && g->n + 8 < g->want; k++) {
                const char *res = resources[(gi * 7 + v * 3 + k) % NRES];
                const char *sub = subresources[(gi + k) % NSUB];
                char *base = fmt("/api/%s/%s/%s", grp, ver, res);
                Portico__Config__V1__Route *list = add(g, base, false);
                set_methods(list, "GET", NULL);
                Portico__Config__V1__Route *create = add(g, base, false);
                set_methods(create, "POST", NULL);
                char *one = fmt("%s/{id}", base, NULL, NULL);
                set_methods(add(g, one, false), "GET", "HEAD");
                set_methods(add(g, one, false), "PUT", "PATCH");
                set_methods(add(g, one, false), "DELETE", NULL);
                add(g, fmt("%s/{id}/%s", base, sub, NULL), false);
                add(g, fmt("%s/{id}/%s/{sub_id}", base, sub, NULL), false);
                if (k % 3 == 0) {
                    Portico__Config__V1__Route *canary = add(g, one, false);
                    add_header(canary, "x-canary", NULL);
                    canary->priority = 1;
                }
                if (k % 3 == 1) {
                    Portico__Config__V1__Route *beta = add(g, base, false);
                    add_header(beta, "x-api-version", "beta");
                }
            }
            if (g->n < g->want)
                add(g, fmt("/api/%s/%s", grp, ver, NULL), true)->strip_prefix = 1;
        }
        for (size_t i = first; host && i < g->n; i++)
            g->routes[i]->host = host;
    }
}

struct request {
    struct pt_route_request req;
};

static const char *const methods[] = {"GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH"};

/* Requests: most built from real routes with values filled in, the rest
 * near misses (unknown group, unknown version, too deep, wrong method). */
static void gen_requests(struct gen *g, struct request *reqs, size_t n, char *pathbuf,
                         const struct pt_headers *hsets)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const Portico__Config__V1__Route *r = g->routes[rnd((uint32_t)g->n)];
        const char *src = r->path[0] ? r->path : r->path_prefix;
        char *p = pathbuf + off;
        size_t len = 0;
        for (const char *s = src; *s;) {
            if (*s == '{') {
                len += (size_t)sprintf(p + len, "%u", rnd(1000000));
                while (*s && *s != '}')
                    s++;
                if (*s)
                    s++;
            } else {
                p[len++] = *s++;
            }
        }
        if (r->path_prefix[0])
            len += (size_t)sprintf(p + len, "/%s/%u", resources[rnd(NRES)], rnd(1000));
        uint32_t kind = rnd(10);
        if (kind == 0)
            len += (size_t)sprintf(p + len, "/unknown/%u", rnd(100));
        else if (kind == 1 && len > 6)
            memcpy(p + 5, "zz", 2); /* unknown group */
        p[len] = '\0';
        off += len + 1;

        char *host = NULL;
        if (r->host[0] == '*')
            host = fmt("edge%s", r->host + 1, NULL, NULL);
        else if (r->host[0])
            host = r->host;
        else if (rnd(4) == 0)
            host = "www.example.com";
        reqs[i].req = (struct pt_route_request){
            .method = pt_str_from_cstr(r->n_methods && rnd(4) ? r->methods[0] : methods[rnd(7)]),
            .authority = pt_str_from_cstr(host ? host : "gateway.example.com:443"),
            .path = {p, len},
            .query = rnd(3) ? PT_STR("") : PT_STR("page=2&limit=50"),
            .headers = &hsets[rnd(4)],
        };
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef bool (*match_fn)(const struct pt_router *, const struct pt_route_request *,
                         struct pt_route_result *);

static void run(const char *name, match_fn fn, const struct pt_router *router,
                const struct request *reqs, size_t n, size_t *hits)
{
    size_t nbatches = n / BATCH;
    uint64_t *samples = pt_xcalloc(nbatches, sizeof(*samples));
    struct pt_route_result out;
    size_t h = 0;
    uint64_t total = 0;
    for (size_t b = 0; b < nbatches; b++) {
        uint64_t t0 = now_ns();
        for (size_t i = b * BATCH; i < (b + 1) * BATCH; i++)
            h += fn(router, &reqs[i].req, &out);
        uint64_t dt = now_ns() - t0;
        total += dt;
        samples[b] = dt; /* per batch; divided below */
    }
    qsort(samples, nbatches, sizeof(*samples), cmp_u64);
    double per = 1.0 / BATCH;
    printf("%-7s lookups=%zu hits=%zu (%.1f%%)  ns/match: median %.0f  p90 %.0f  p99 %.0f  "
           "mean %.0f\n",
           name, nbatches * BATCH, h, 100.0 * (double)h / (double)(nbatches * BATCH),
           (double)samples[nbatches / 2] * per, (double)samples[nbatches * 90 / 100] * per,
           (double)samples[nbatches * 99 / 100] * per, (double)total / (double)(nbatches * BATCH));
    free(samples);
    *hits = h;
}

int main(int argc, char **argv)
{
    size_t nroutes = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    size_t nlookups = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
    size_t nlinear = nlookups < 20000 ? nlookups : 20000;
    if (nroutes == 0 || nlookups < BATCH) {
        fprintf(stderr, "usage: %s [routes >= 1] [lookups >= %d]\n", argv[0], BATCH);
        return 2;
    }

    struct gen g = {pt_xcalloc(nroutes, sizeof(*g.routes)), 0, nroutes};
    gen_routes(&g);

    struct pt_diag d;
    pt_diag_init(&d);
    uint64_t t0 = now_ns();
    struct pt_router *router =
        pt_router_compile((const Portico__Config__V1__Route *const *)g.routes, g.n, NULL, &d);
    uint64_t compile_ns = now_ns() - t0;
    if (!router) {
        fprintf(stderr, "compile failed:\n%s", pt_diag_text(&d));
        return 1;
    }
    pt_diag_fini(&d);

    struct pt_arena arena;
    pt_arena_init(&arena, NULL, 0);
    struct pt_headers hsets[4];
    for (int i = 0; i < 4; i++)
        pt_headers_init(&hsets[i], &arena, 0);
    pt_headers_add_ref(&hsets[0], PT_STR("user-agent"), PT_STR("bench/1.0"));
    pt_headers_add_ref(&hsets[0], PT_STR("accept"), PT_STR("application/json"));
    pt_headers_add_ref(&hsets[1], PT_STR("x-canary"), PT_STR("1"));
    pt_headers_add_ref(&hsets[2], PT_STR("x-api-version"), PT_STR("beta"));
    pt_headers_add_ref(&hsets[3], PT_STR("accept"), PT_STR("*/*"));

    struct request *reqs = pt_xcalloc(nlookups, sizeof(*reqs));
    char *pathbuf = pt_xmalloc(nlookups * 160);
    gen_requests(&g, reqs, nlookups, pathbuf, hsets);

    printf("routes=%zu compiled in %.1f ms; batches of %d lookups per clock_gettime pair\n",
           pt_router_size(router), (double)compile_ns / 1e6, BATCH);

    size_t hits, lin_hits;
    run("warmup", pt_router_match, router, reqs, nlookups, &hits);
    run("trie", pt_router_match, router, reqs, nlookups, &hits);
    run("linear", pt_router_match_linear, router, reqs, nlinear, &lin_hits);

    size_t mismatches = 0;
    for (size_t i = 0; i < nlinear; i++) {
        struct pt_route_result a, b;
        bool ha = pt_router_match(router, &reqs[i].req, &a);
        bool hb = pt_router_match_linear(router, &reqs[i].req, &b);
        mismatches +=
            ha != hb ||
            (ha && (a.index != b.index || a.nparams != b.nparams || a.strip_len != b.strip_len));
    }
    printf("trie vs linear on %zu requests: %zu disagreements\n", nlinear, mismatches);

    pt_router_free(router);
    pt_arena_fini(&arena);
    free(pathbuf);
    free(reqs);
    free(g.routes);
    for (size_t i = 0; i < nmem; i++)
        free(mem[i]);
    free(mem);
    return mismatches ? 1 : 0;
}
