/*
 * Shared fixtures for the auth tests: configurations built in C (API keys,
 * route auth), exchanges without a worker, and a fake exchange handler
 * that records local replies and resumes instead of running a chain.
 */
#ifndef PT_TEST_AUTH_FIXTURE_H
#define PT_TEST_AUTH_FIXTURE_H

#include <openssl/sha.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth_int.h"
#include "core/time.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "http/exchange.h"
#include "http/headers.h"

typedef Portico__Config__V1__Config Config;
typedef Portico__Config__V1__ApiKey ApiKey;
typedef Portico__Config__V1__RouteAuth RouteAuth;

/* Lower-case hex SHA-256 of key into hex (65 bytes). */
static inline void sha256_hex(const char *key, char hex[65])
{
    unsigned char md[32];
    SHA256((const unsigned char *)key, strlen(key), md);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* An API key whose secret is `secret`; strings are the fixture's. */
struct test_key {
    ApiKey k;
    char hash[65];
    Google__Protobuf__Timestamp expires;
    Google__Protobuf__BoolValue enabled;
};

static inline void test_key_init(struct test_key *t, const char *name, const char *client_id,
                                 const char *secret)
{
    memset(t, 0, sizeof(*t));
    portico__config__v1__api_key__init(&t->k);
    sha256_hex(secret, t->hash);
    t->k.name = (char *)name;
    t->k.client_id = (char *)client_id;
    t->k.key_hash = t->hash;
    t->k.key_prefix = (char *)"prefix00";
}

static inline void test_key_expire(struct test_key *t, int64_t seconds_from_now)
{
    google__protobuf__timestamp__init(&t->expires);
    t->expires.seconds = (int64_t)(pt_time_real_ns() / 1000000000ull) + seconds_from_now;
    t->k.expires_at = &t->expires;
}

static inline void test_key_disable(struct test_key *t)
{
    google__protobuf__bool_value__init(&t->enabled);
    t->enabled.value = 0;
    t->k.enabled = &t->enabled;
}

/* A Config holding up to 8 keys (pointers into the test_keys). */
struct test_config {
    Config c;
    ApiKey *keys[8];
};

static inline void test_config_init(struct test_config *tc, struct test_key *keys, size_t n)
{
    portico__config__v1__config__init(&tc->c);
    for (size_t i = 0; i < n; i++)
        tc->keys[i] = &keys[i].k;
    tc->c.api_keys = tc->keys;
    tc->c.n_api_keys = n;
}

/* --- a fake exchange handler ---------------------------------------------------- */

struct fake_state {
    int replies;
    int err;
    int resumes;
};

static struct fake_state fake;

static inline int fake_reply(struct pt_exchange *x, int status, struct pt_str ct, struct pt_str b)
{
    (void)x;
    (void)status;
    (void)ct;
    (void)b;
    fake.replies++;
    fake.err = 0;
    return 0;
}

static inline int fake_reply_error(struct pt_exchange *x, int err, struct pt_str detail)
{
    (void)x;
    (void)detail;
    fake.replies++;
    fake.err = err;
    return 0;
}

static inline void fake_resume(struct pt_exchange *x)
{
    (void)x;
    fake.resumes++;
}

static const struct pt_exchange_handler fake_handler = {
    .reply = fake_reply,
    .reply_error = fake_reply_error,
    .resume = fake_resume,
};

static const struct pt_downstream_ops fake_down_ops;
static struct pt_conn_info fake_conn = {.peer_ip = "192.0.2.7"};

static inline struct pt_exchange *new_exchange(void)
{
    memset(&fake, 0, sizeof(fake));
    pt_exchange_set_handler(&fake_handler);
    struct pt_exchange *x = pt_exchange_new(NULL, &fake_conn, &fake_down_ops, NULL, 0);
    x->req.method = PT_STR("GET");
    x->req.path = PT_STR("/v1/items");
    x->req.target = PT_STR("/v1/items");
    x->req.version = PT_HTTP_11;
    return x;
}

static inline void add_header(struct pt_exchange *x, const char *name, const char *value)
{
    assert_int_equal(
        pt_headers_add(&x->req.headers, pt_str_from_cstr(name), pt_str_from_cstr(value)), 0);
}

static inline bool has_header(struct pt_exchange *x, const char *name, const char *value)
{
    struct pt_str v;
    if (!pt_headers_find(&x->req.headers, pt_str_from_cstr(name), &v))
        return false;
    return !value || pt_str_eq(v, pt_str_from_cstr(value));
}

#define assert_pt_str(s, want)                                                                     \
    do {                                                                                           \
        struct pt_str got_ = (s);                                                                  \
        const char *want_ = (want);                                                                \
        if (!pt_str_eq(got_, pt_str_from_cstr(want_)))                                             \
            fail_msg("got \"%.*s\", want \"%s\"", (int)got_.len, got_.ptr ? got_.ptr : "", want_); \
    } while (0)

#endif
