/*
 * The request-id filter. Ids must be unique, not secret, and cost nothing
 * per request: each worker thread draws them from its own xoshiro256**
 * generator (Blackman and Vigna), seeded once from getrandom(2), so the hot
 * path makes no system call and shares no cache line with other workers.
 */
#include "filters/request_id/request_id.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/log.h"
#include "filters/field.h"

/* --- id generation --------------------------------------------------------- */

struct rng {
    uint64_t s[4];
    bool seeded;
};

static _Thread_local struct rng thread_rng;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* SplitMix64 step: spreads weak fallback seed material over the state. */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void rng_seed(struct rng *r)
{
    unsigned char buf[sizeof(r->s)];
    size_t got = 0;
    /* GRND_NONBLOCK: a worker must not wait for the kernel's entropy pool
     * early at boot; the fallback below is unique enough for ids. */
    while (got < sizeof(buf)) {
        ssize_t n = getrandom(buf + got, sizeof(buf) - got, GRND_NONBLOCK);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else
            break;
    }
    if (got == sizeof(buf)) {
        memcpy(r->s, buf, sizeof(buf));
    } else {
        pt_log_warn("request-id: getrandom failed (%s); seeding ids from clocks", strerror(errno));
        uint64_t x = clock_ns(CLOCK_REALTIME) ^ rotl(clock_ns(CLOCK_MONOTONIC), 32) ^
                     ((uint64_t)(uintptr_t)r << 1) ^ ((uint64_t)gettid() << 48) ^
                     (uint64_t)getpid();
        for (size_t i = 0; i < 4; i++)
            r->s[i] = splitmix(&x);
    }
    /* The all-zero state is the generator's one fixed point. */
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
        r->s[0] = 1;
    r->seeded = true;
}

void pt_request_id_generate(char out[PT_REQUEST_ID_UUID_LEN])
{
    static const char hex[] = "0123456789abcdef";
    struct rng *r = &thread_rng;
    if (!r->seeded)
        rng_seed(r);
    uint64_t hi = rng_next(r), lo = rng_next(r);
    /* RFC 9562: version 4 in the high nibble of byte 6, variant 10 in the
     * top bits of byte 8. */
    hi = (hi & ~0xf000ull) | 0x4000ull;
    lo = (lo & ~(3ull << 62)) | (2ull << 62);
    size_t o = 0;
    for (int i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            out[o++] = '-';
        uint64_t w = i < 16 ? hi : lo;
        out[o++] = hex[(w >> (60 - 4 * (i % 16))) & 15];
    }
}

bool pt_request_id_incoming_ok(struct pt_str id)
{
    if (id.len == 0 || id.len > PT_REQUEST_ID_MAX_INCOMING)
        return false;
    for (size_t i = 0; i < id.len; i++) {
        char c = id.ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* --- instance ------------------------------------------------------------------ */

struct request_id {
    struct pt_str header; /* lower case; bytes owned (header_buf) */
    char *header_buf;
    bool trust_incoming;
    bool response;
};

static bool read_bool(const struct pt_config_value *root, const char *key, bool dflt, bool *out,
                      struct pt_diag *diag)
{
    const struct pt_config_value *v = pt_config_find(root, key);
    *out = dflt;
    if (pt_config_kind(v) == PT_CONFIG_NULL)
        return true;
    if (!pt_config_bool(v, out)) {
        pt_diag_errorf(diag, key, "must be true or false");
        return false;
    }
    return true;
}

static void *rid_create(const struct pt_filter_config *cfg, struct pt_diag *diag)
{
    const struct pt_config_value *root = pt_filter_config_root(cfg);
    bool ok = true;
    char buf[160];

    static const char *const known[] = {"header", "trust_incoming", "response"};
    unsigned given[3] = {0, 0, 0};
    for (size_t i = 0; i < pt_config_len(root); i++) {
        struct pt_str key = PT_STR_NULL;
        pt_config_at(root, i, &key);
        size_t k = 0;
        while (k < 3 && !pt_str_eq(key, pt_str_from_cstr(known[k])))
            k++;
        if (k == 3) {
            pt_diag_errorf(diag, NULL,
                           "unknown key \"%s\" (known: header, trust_incoming, response)",
                           pt_filters_printable(key, buf, sizeof(buf)));
            ok = false;
        } else if (given[k]++ == 1) {
            /* A Struct built through the admin API may repeat a key; YAML cannot. */
            pt_diag_errorf(diag, known[k], "given twice");
            ok = false;
        }
    }

    struct pt_str header = PT_STR("x-request-id");
    const struct pt_config_value *hv = pt_config_find(root, "header");
    if (pt_config_kind(hv) != PT_CONFIG_NULL) {
        if (!pt_config_string(hv, &header)) {
            pt_diag_errorf(diag, "header", "must be a string (a header name)");
            ok = false;
        } else {
            const char *why = pt_filters_name_problem(header);
            if (why) {
                pt_diag_errorf(diag, "header", "invalid header name \"%s\": %s",
                               pt_filters_printable(header, buf, sizeof(buf)), why);
                ok = false;
            }
        }
    }

    bool trust = true, response = true;
    ok &= read_bool(root, "trust_incoming", true, &trust, diag);
    ok &= read_bool(root, "response", true, &response, diag);
    if (!ok)
        return NULL;

    struct request_id *r = pt_xcalloc(1, sizeof(*r));
    r->header_buf = pt_filters_lower_dup(header);
    r->header = (struct pt_str){r->header_buf, header.len};
    r->trust_incoming = trust;
    r->response = response;
    return r;
}

static void rid_destroy(void *instance)
{
    struct request_id *r = instance;
    if (!r)
        return;
    free(r->header_buf);
    free(r);
}

/* The client's id when there is exactly one field and it is acceptable:
 * several ids would make logs ambiguous, so they are replaced too. */
static bool incoming_id(const struct pt_headers *h, struct pt_str name, struct pt_str *id)
{
    size_t found = 0;
    for (size_t i = 0, n = pt_headers_count(h); i < n; i++) {
        struct pt_str fname, fvalue;
        pt_headers_at(h, i, &fname, &fvalue);
        if (pt_str_eq(fname, name)) {
            *id = fvalue;
            found++;
        }
    }
    return found == 1 && pt_request_id_incoming_ok(*id);
}

static enum pt_filter_status rid_on_request_head(struct pt_exchange *x, void *instance)
{
    const struct request_id *r = instance;
    struct pt_headers *h = pt_exchange_request_headers(x);
    struct pt_str id;
    int err;

    if (r->trust_incoming && incoming_id(h, r->header, &id)) {
        err = pt_exchange_set_request_id(x, id);
    } else {
        char uuid[PT_REQUEST_ID_UUID_LEN];
        pt_request_id_generate(uuid);
        err = pt_exchange_set_request_id(x, (struct pt_str){uuid, sizeof(uuid)});
        if (err == 0)
            err = pt_headers_set(h, r->header, pt_exchange_request_id(x));
    }
    if (err == 0)
        return PT_FILTER_CONTINUE;
    pt_exchange_reply_error(x, (enum pt_err)err, PT_STR("cannot record the request id"));
    return PT_FILTER_REPLIED;
}

static enum pt_filter_status rid_on_response_head(struct pt_exchange *x, void *instance)
{
    const struct request_id *r = instance;
    struct pt_str id = pt_exchange_request_id(x);
    /* The echo is a convenience: a response that cannot carry it (the
     * exchange's memory is exhausted) still goes out as the upstream sent it. */
    if (r->response && id.len)
        pt_headers_set(pt_exchange_response_headers(x), r->header, id);
    return PT_FILTER_CONTINUE;
}

const struct pt_filter_type pt_filters_request_id_type = {
    .name = "request-id",
    .abi_version = PT_ABI_VERSION,
    .create = rid_create,
    .destroy = rid_destroy,
    .on_request_head = rid_on_request_head,
    .on_response_head = rid_on_response_head,
};
