/*
 * Shared fixtures for the filter tests: a filter's config block loaded from
 * YAML the way the configuration loader does it (a google.protobuf.Struct),
 * exchanges without a worker, and a fake exchange handler that records
 * local replies instead of sending them.
 */
#ifndef PT_TEST_FILTERS_HARNESS_H
#define PT_TEST_FILTERS_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "conf/filter_config.h"
#include "core/diag.h"
#include "google/protobuf/struct.pb-c.h"
#include "http/exchange.h"
#include "portico/filter.h"

struct filter_fixture {
    const struct pt_filter_type *type;
    struct pt_conf *conf;
    struct pt_diag diag;
    struct pt_filter_config fc;
    void *instance;
    struct pt_conn_info conn;
    struct pt_exchange *x;
};

/* What the fake handler saw. */
struct fake_replies {
    int count;
    int err;
};

static struct fake_replies fake_replies;

static inline int fake_reply(struct pt_exchange *x, int status, struct pt_str content_type,
                             struct pt_str body)
{
    fake_replies.count++;
    fake_replies.err = 0;
    return 0;
}

static inline int fake_reply_error(struct pt_exchange *x, int err, struct pt_str detail)
{
    fake_replies.count++;
    fake_replies.err = err;
    return 0;
}

static const struct pt_exchange_handler fake_handler = {
    .reply = fake_reply,
    .reply_error = fake_reply_error,
};

static const struct pt_downstream_ops fake_down_ops;

static inline void fixture_init(struct filter_fixture *f, const struct pt_filter_type *type)
{
    memset(f, 0, sizeof(*f));
    f->type = type;
    pt_diag_init(&f->diag);
    snprintf(f->conn.peer_ip, sizeof(f->conn.peer_ip), "192.0.2.7");
    memset(&fake_replies, 0, sizeof(fake_replies));
    pt_exchange_set_handler(&fake_handler);
}

/* Run create() on the YAML config block; the instance, or NULL with
 * f->diag holding the errors. */
static inline void *fixture_create(struct filter_fixture *f, const char *yaml)
{
    f->conf = pt_conf_load_message_string(&google__protobuf__struct__descriptor, "filter.yaml",
                                          yaml, strlen(yaml), &f->diag);
    if (!f->conf)
        fail_msg("YAML did not load:\n%s", pt_diag_text(&f->diag));
    pt_filter_config_init(&f->fc, (const Google__Protobuf__Struct *)pt_conf_message(f->conf),
                          PT_STR(""));
    f->instance = f->type->create(&f->fc, &f->diag);
    return f->instance;
}

static inline void *fixture_create_ok(struct filter_fixture *f, const char *yaml)
{
    if (!fixture_create(f, yaml))
        fail_msg("create() failed:\n%s", pt_diag_text(&f->diag));
    assert_int_equal(f->diag.errors, 0);
    return f->instance;
}

/* create() must fail and report an error line containing `want`. */
static inline void fixture_create_fails(struct filter_fixture *f, const char *yaml,
                                        const char *want)
{
    if (fixture_create(f, yaml))
        fail_msg("create() succeeded, expected an error containing: %s", want);
    if (f->diag.errors == 0)
        fail_msg("create() failed without reporting why");
    if (!strstr(pt_diag_text(&f->diag), want))
        fail_msg("diagnostics:\n%s\ndo not contain: %s", pt_diag_text(&f->diag), want);
}

/* A GET exchange; arena_limit 0 = none. */
static inline struct pt_exchange *fixture_exchange(struct filter_fixture *f, size_t arena_limit)
{
    f->x = pt_exchange_new(NULL, &f->conn, &fake_down_ops, NULL, arena_limit);
    f->x->req.method = PT_STR("GET");
    f->x->req.scheme = PT_STR("https");
    f->x->req.authority = PT_STR("api.example.com");
    f->x->req.target = PT_STR("/v1/items");
    f->x->req.path = PT_STR("/v1/items");
    f->x->req.version = PT_HTTP_11;
    f->x->resp.status = 200;
    return f->x;
}

static inline void fixture_fini(struct filter_fixture *f)
{
    pt_exchange_free(f->x);
    if (f->instance)
        f->type->destroy(f->instance);
    pt_conf_free(f->conf);
    pt_diag_fini(&f->diag);
    memset(f, 0, sizeof(*f));
}

/* Number of fields called name (lower case), and the i-th one's value. */
static inline size_t header_count(const struct pt_headers *h, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < pt_headers_count(h); i++) {
        struct pt_str fname, fvalue;
        pt_headers_at(h, i, &fname, &fvalue);
        n += pt_str_eq(fname, pt_str_from_cstr(name));
    }
    return n;
}

static inline struct pt_str header_value(const struct pt_headers *h, const char *name, size_t nth)
{
    for (size_t i = 0; i < pt_headers_count(h); i++) {
        struct pt_str fname, fvalue;
        pt_headers_at(h, i, &fname, &fvalue);
        if (pt_str_eq(fname, pt_str_from_cstr(name)) && nth-- == 0)
            return fvalue;
    }
    return PT_STR_NULL;
}

#define assert_pt_str(s, want)                                                                     \
    do {                                                                                           \
        struct pt_str got_ = (s);                                                                  \
        const char *want_ = (want);                                                                \
        if (!pt_str_eq(got_, pt_str_from_cstr(want_)))                                             \
            fail_msg("got \"%.*s\", want \"%s\"", (int)got_.len, got_.ptr ? got_.ptr : "", want_); \
    } while (0)

/* Let the exchange's arena hand out only `room` more bytes. */
static inline void exchange_squeeze(struct pt_exchange *x, size_t room)
{
    x->arena.limit = x->arena.used + room;
}

#endif
