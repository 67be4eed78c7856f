/*
 * The PostgreSQL store against a real server (run through with_pg.py, which
 * starts one and lets us stop and start it). The cases share databases and
 * run in order.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "core/arena.h"
#include "core/time.h"
#include "google/protobuf/struct.pb-c.h"
#include "store/pg_int.h"

static char uri_main[256];
static int ctl_r = -1, ctl_w = -1;

static const char *uri_for(char *buf, size_t n, const char *db)
{
    snprintf(buf, n, "%s%s", getenv("PT_TEST_PG_URI_PREFIX"), db);
    return buf;
}

/* Run sql on db; the single value of the first row ("" when none), or fail. */
static char *sql1(const char *uri, const char *sql)
{
    PGconn *c = PQconnectdb(uri);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    char *v = pt_xstrdup(PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(c);
    return v;
}

static void expect_sql(const char *uri, const char *sql, const char *want)
{
    char *got = sql1(uri, sql);
    if (strcmp(got, want) != 0)
        fail_msg("%s\n  got:  %s\n  want: %s", sql, got, want);
    free(got);
}

static void create_db(const char *name)
{
    char buf[256];
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    free(sql1(uri_for(buf, sizeof(buf), "postgres"), sql));
}

static void server(const char *cmd)
{
    char line[256];
    assert_true(write(ctl_w, cmd, strlen(cmd)) == (ssize_t)strlen(cmd));
    size_t n = 0;
    while (n < sizeof(line) - 1) {
        ssize_t r = read(ctl_r, line + n, 1);
        assert_true(r == 1);
        if (line[n++] == '\n')
            break;
    }
    line[n] = '\0';
    assert_string_equal(line, "ok\n");
}

/* ---- config builders ---- */

static char **strv(size_t n, ...)
{
    char **v = pt_xcalloc(n ? n : 1, sizeof(*v));
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        v[i] = pt_xstrdup(va_arg(ap, const char *));
    va_end(ap);
    return v;
}

static Portico__Config__V1__Service *service(const char *name, const char *host, uint32_t port)
{
    Portico__Config__V1__Service *s = pt_xcalloc(1, sizeof(*s));
    portico__config__v1__service__init(s);
    s->name = pt_xstrdup(name);
    s->protocol = PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_GRPC;
    s->n_instances = 1;
    s->instances = pt_xcalloc(1, sizeof(*s->instances));
    s->instances[0] = pt_xcalloc(1, sizeof(**s->instances));
    portico__config__v1__instance__init(s->instances[0]);
    s->instances[0]->host = pt_xstrdup(host);
    s->instances[0]->port = port;
    s->instances[0]->weight = 3;
    s->health_check = pt_xcalloc(1, sizeof(*s->health_check));
    portico__config__v1__health_check__init(s->health_check);
    s->health_check->path = pt_xstrdup("/healthz");
    s->health_check->interval_ms = 1000;
    s->version = 1;
    return s;
}

static Portico__Config__V1__Route *route(const char *name, const char *path, const char *svc)
{
    Portico__Config__V1__Route *r = pt_xcalloc(1, sizeof(*r));
    portico__config__v1__route__init(r);
    r->name = pt_xstrdup(name);
    r->path_prefix = pt_xstrdup(path);
    r->service = pt_xstrdup(svc);
    r->n_methods = 2;
    r->methods = strv(2, "GET", "POST");
    r->timeout_ms = 1500;
    r->retry_count = 2;
    r->priority = -3;
    r->version = 1;
    return r;
}

/* A Config with every kind: services a, b; routes r1 -> a, r2 -> b; a rule on
 * r1; a plugin with a nested config; an API key with timestamps. */
static Portico__Config__V1__Config *full_config(void)
{
    Portico__Config__V1__Config *c = pt_store_empty_config();
    c->n_services = 2;
    c->services = pt_xcalloc(2, sizeof(*c->services));
    c->services[0] = service("a", "127.0.0.1", 8081);
    c->services[1] = service("b", "::1", 8082);
    c->n_routes = 2;
    c->routes = pt_xcalloc(2, sizeof(*c->routes));
    c->routes[0] = route("r1", "/api/", "a");
    c->routes[1] = route("r2", "/other/", "b");
    c->routes[1]->host = pt_xstrdup("example.com");

    Portico__Config__V1__RateLimitRule *rl = pt_xcalloc(1, sizeof(*rl));
    portico__config__v1__rate_limit_rule__init(rl);
    rl->name = pt_xstrdup("per-ip");
    rl->route = pt_xstrdup("r1");
    rl->key_type = pt_xstrdup("ip");
    rl->limit = 100;
    rl->window_seconds = 60;
    rl->burst = 10;
    rl->algorithm = PORTICO__CONFIG__V1__RATE_LIMIT_ALGORITHM__RATE_LIMIT_ALGORITHM_GCRA;
    rl->version = 1;
    c->n_rate_limit_rules = 1;
    c->rate_limit_rules = pt_xcalloc(1, sizeof(*c->rate_limit_rules));
    c->rate_limit_rules[0] = rl;

    Portico__Config__V1__Plugin *pl = pt_xcalloc(1, sizeof(*pl));
    portico__config__v1__plugin__init(pl);
    pl->name = pt_xstrdup("hdr");
    pl->type = pt_xstrdup("headers");
    pl->n_routes = 1;
    pl->routes = strv(1, "r2");
    pl->order = 5;
    pl->enabled = pt_xcalloc(1, sizeof(*pl->enabled));
    google__protobuf__bool_value__init(pl->enabled);
    pl->enabled->value = false;
    pl->config = pt_xcalloc(1, sizeof(*pl->config));
    google__protobuf__struct__init(pl->config);
    pl->config->n_fields = 1;
    pl->config->fields = pt_xcalloc(1, sizeof(*pl->config->fields));
    Google__Protobuf__Struct__FieldsEntry *e = pt_xcalloc(1, sizeof(*e));
    google__protobuf__struct__fields_entry__init(e);
    e->key = pt_xstrdup("set");
    e->value = pt_xcalloc(1, sizeof(*e->value));
    google__protobuf__value__init(e->value);
    e->value->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    e->value->string_value = pt_xstrdup("x-a \"quoted\"");
    pl->config->fields[0] = e;
    pl->version = 1;
    c->n_plugins = 1;
    c->plugins = pt_xcalloc(1, sizeof(*c->plugins));
    c->plugins[0] = pl;

    Portico__Config__V1__ApiKey *k = pt_xcalloc(1, sizeof(*k));
    portico__config__v1__api_key__init(k);
    k->name = pt_xstrdup("key1");
    k->client_id = pt_xstrdup("client-1");
    k->client_name = pt_xstrdup("Client One");
    k->scopes = strv(2, "read", "write");
    k->n_scopes = 2;
    k->rate_limit_tier = pt_xstrdup("premium");
    k->key_hash = pt_xstrdup("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    k->key_prefix = pt_xstrdup("pt_abcde");
    k->expires_at = pt_xcalloc(1, sizeof(*k->expires_at));
    google__protobuf__timestamp__init(k->expires_at);
    k->expires_at->seconds = 2000000000;
    k->expires_at->nanos = 250000000;
    k->version = 1;
    c->n_api_keys = 1;
    c->api_keys = pt_xcalloc(1, sizeof(*c->api_keys));
    c->api_keys[0] = k;
    return c;
}

static void free_config(Portico__Config__V1__Config *c)
{
    protobuf_c_message_free_unpacked(&c->base, NULL);
}

/* ---- change counting ---- */

struct watcher {
    struct event_base *base;
    int changes;
};

static void on_change(void *arg)
{
    ((struct watcher *)arg)->changes++;
}

/* Run base until cond holds or ms pass; whether it holds. */
#define DRIVE_UNTIL(base, ms, cond)                                       \
    ({                                                                    \
        uint64_t deadline_ = pt_time_mono_ns() + (uint64_t)(ms)*1000000u; \
        while (!(cond) && pt_time_mono_ns() < deadline_) {                \
            struct timeval tv_ = {0, 20000};                              \
            event_base_loopexit(base, &tv_);                              \
            event_base_dispatch(base);                                    \
        }                                                                 \
        (bool)(cond);                                                     \
    })

static struct pt_store *open_store(const char *uri, struct watcher *w)
{
    char err[512] = "";
    struct pt_store *s = pt_store_pg_open(uri, w->base, on_change, w, err, sizeof(err));
    if (!s)
        fail_msg("open: %s", err);
    return s;
}

/* ---- cases ---- */

static void test_pg_open__unmigrated_database_asks_for_migrate(void **state)
{
    char uri[256], err[512] = "";
    create_db("fresh");
    struct event_base *base = event_base_new();
    struct pt_store *s = pt_store_pg_open(uri_for(uri, sizeof(uri), "fresh"), base, on_change, NULL,
                                          err, sizeof(err));
    assert_null(s);
    assert_non_null(strstr(err, "database schema is at 0"));
    assert_non_null(strstr(err, "run portico --migrate"));
    event_base_free(base);
}

static void test_pg_migrate__applies_then_is_idempotent(void **state)
{
    char err[512] = "";
    create_db("main");
    assert_int_equal(pt_store_pg_migrate(uri_main, err, sizeof(err)), 0);
    expect_sql(uri_main, "SELECT count(*) FROM schema_migrations", "1");
    expect_sql(uri_main, "SELECT name FROM schema_migrations WHERE version = 1", "001_initial");
    char *applied = sql1(uri_main, "SELECT applied_at::text FROM schema_migrations");
    expect_sql(uri_main, "SELECT version FROM config_state WHERE id = 1", "0");
    assert_int_equal(pt_store_pg_migrate(uri_main, err, sizeof(err)), 0);
    expect_sql(uri_main, "SELECT count(*) FROM schema_migrations", "1");
    expect_sql(uri_main, "SELECT applied_at::text FROM schema_migrations", applied);
    free(applied);
    /* A database that is not there: unavailable, with a reason. */
    char bad[256];
    assert_int_equal(pt_store_pg_migrate(uri_for(bad, sizeof(bad), "nosuchdb"), err, sizeof(err)),
                     PT_ERR_STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "nosuchdb"));
    assert_int_equal(pt_store_pg_migrate("not a conninfo", err, sizeof(err)), PT_ERR_CONFIG);
}

static void *migrate_thread(void *arg)
{
    char err[512] = "";
    intptr_t rc = pt_store_pg_migrate(arg, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "migrate: %s\n", err);
    return (void *)rc;
}

static void test_pg_migrate__two_at_once_do_not_collide(void **state)
{
    char uri[256];
    create_db("race");
    uri_for(uri, sizeof(uri), "race");
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, migrate_thread, uri), 0);
    for (int i = 0; i < 2; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_int_equal((intptr_t)rc, 0);
    }
    expect_sql(uri, "SELECT count(*) FROM schema_migrations", "1");
    expect_sql(uri, "SELECT count(*) FROM config_state", "1");
}

static void test_pg_load__empty_store(void **state)
{
    struct watcher w = {.base = event_base_new()};
    struct pt_store *s = open_store(uri_main, &w);
    assert_string_equal(pt_store_kind(s), "postgres");
    assert_true(pt_store_connected(s));
    Portico__Config__V1__Config *c = NULL;
    uint64_t v = 99;
    char err[512] = "";
    assert_int_equal(pt_store_load(s, &c, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 0);
    assert_int_equal(
        c->n_services + c->n_routes + c->n_rate_limit_rules + c->n_plugins + c->n_api_keys, 0);
    free_config(c);
    pt_store_close(s);
    event_base_free(w.base);
}

static void assert_same_config(const Portico__Config__V1__Config *a,
                               const Portico__Config__V1__Config *b)
{
    for (int k = 0; k < PT_STORE_PG_NKINDS; k++) {
        ProtobufCMessage *const *ia, *const *ib;
        size_t na = pt_store_pg_items(a, (enum pt_store_pg_kind)k, &ia);
        size_t nb = pt_store_pg_items(b, (enum pt_store_pg_kind)k, &ib);
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++)
            assert_true(pt_store_msg_equal(ia[i], ib[i]));
    }
}

static void test_pg_commit__round_trip_every_kind_and_projection(void **state)
{
    struct watcher w = {.base = event_base_new()};
    struct pt_store *s = open_store(uri_main, &w);
    Portico__Config__V1__Config *empty = pt_store_empty_config(), *cfg = full_config(), *got;
    uint64_t v;
    char err[512] = "";
    assert_int_equal(pt_store_commit(s, empty, cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(pt_store_load(s, &got, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 1);
    assert_same_config(cfg, got);
    free_config(got);

    /* The projection columns, filled from the messages. */
    expect_sql(uri_main, "SELECT version FROM config_state", "1");
    expect_sql(uri_main,
               "SELECT protocol || ' ' || load_balancer || ' ' || instances::text || ' ' || "
               "(health_check->>'path') || ' ' || (circuit_breaker IS NULL) || ' ' || version "
               "FROM services WHERE name = 'a'",
               "grpc round_robin [{\"host\": \"127.0.0.1\", \"port\": 8081, \"weight\": 3}] "
               "/healthz true 1");
    expect_sql(uri_main,
               "SELECT r.path || ' ' || array_to_string(r.methods, ',') || ' ' || "
               "coalesce(r.host, '-') || ' ' || s.name || ' ' || r.timeout_ms || ' ' || "
               "r.retry_count || ' ' || r.priority || ' ' || r.enabled || ' ' || r.strip_prefix "
               "FROM routes r JOIN services s ON s.id = r.service_id WHERE r.name = 'r1'",
               "/api/ GET,POST - a 1500 2 -3 true false");
    expect_sql(uri_main, "SELECT host FROM routes WHERE name = 'r2'", "example.com");
    expect_sql(uri_main,
               "SELECT r.name || ' ' || x.key_type || ' ' || x.limit_value || ' ' || "
               "x.window_seconds || ' ' || x.burst_size || ' ' || x.action || ' ' || "
               "x.algorithm || ' ' || x.enabled FROM rate_limit_rules x JOIN routes r ON "
               "r.id = x.route_id",
               "r1 ip 100 60 10 reject gcra true");
    expect_sql(uri_main,
               "SELECT type || ' ' || (config->>'set') || ' ' || array_to_string(routes, ',') || "
               "' ' || global || ' ' || enabled || ' ' || ord FROM plugins",
               "headers x-a \"quoted\" r2 false false 5");
    expect_sql(uri_main,
               "SELECT key_prefix || ' ' || client_id || ' ' || client_name || ' ' || "
               "array_to_string(scopes, ',') || ' ' || rate_limit_tier || ' ' || "
               "extract(epoch FROM expires_at) || ' ' || enabled || ' ' || "
               "(created_at IS NOT NULL) || ' ' || (last_used_at IS NULL) || ' ' || "
               "length(key_hash) FROM api_keys",
               "pt_abcde client-1 Client One read,write premium 2000000000.250000 true true true "
               "64");
    expect_sql(uri_main,
               "SELECT count(*) FROM (SELECT spec FROM services UNION ALL SELECT spec FROM routes "
               "UNION ALL SELECT spec FROM rate_limit_rules UNION ALL SELECT spec FROM plugins "
               "UNION ALL SELECT spec FROM api_keys) x WHERE length(spec) > 0",
               "7");

    /* A second commit touches only what changed: r2 edited, b deleted (r2 now
     * points at a new service c), a and r1 untouched (same row versions). */
    char *xmin_a = sql1(uri_main, "SELECT xmin::text FROM services WHERE name = 'a'");
    char *xmin_r1 = sql1(uri_main, "SELECT xmin::text FROM routes WHERE name = 'r1'");
    Portico__Config__V1__Config *next = (Portico__Config__V1__Config *)pt_store_msg_dup(&cfg->base);
    protobuf_c_message_free_unpacked(&next->services[1]->base, NULL);
    next->services[1] = service("c", "127.0.0.2", 9000);
    next->services[1]->version = 2;
    free(next->routes[1]->service);
    next->routes[1]->service = pt_xstrdup("c");
    next->routes[1]->version = 2;
    assert_int_equal(pt_store_commit(s, cfg, next, 1, err, sizeof(err)), 0);
    expect_sql(uri_main, "SELECT string_agg(name, ',' ORDER BY name) FROM services", "a,c");
    expect_sql(uri_main,
               "SELECT s.name || ' ' || r.version FROM routes r JOIN services s ON "
               "s.id = r.service_id WHERE r.name = 'r2'",
               "c 2");
    expect_sql(uri_main, "SELECT version FROM config_state", "2");
    char q[160];
    snprintf(q, sizeof(q), "SELECT xmin::text = '%s' FROM services WHERE name = 'a'", xmin_a);
    expect_sql(uri_main, q, "t");
    snprintf(q, sizeof(q), "SELECT xmin::text = '%s' FROM routes WHERE name = 'r1'", xmin_r1);
    expect_sql(uri_main, q, "t");
    free(xmin_a);
    free(xmin_r1);
    assert_int_equal(pt_store_load(s, &got, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 2);
    assert_same_config(next, got);
    free_config(got);

    /* Data the schema refuses (window_seconds > 0) is invalid; nothing changes. */
    Portico__Config__V1__Config *bad = (Portico__Config__V1__Config *)pt_store_msg_dup(&next->base);
    bad->rate_limit_rules[0]->window_seconds = 0;
    assert_int_equal(pt_store_commit(s, next, bad, 2, err, sizeof(err)), PT_ERR_INVALID);
    assert_non_null(strstr(err, "rate_limit_rules"));
    expect_sql(uri_main, "SELECT version FROM config_state", "2");
    expect_sql(uri_main, "SELECT window_seconds FROM rate_limit_rules", "60");
    /* A repeated name is refused before the database sees anything. */
    bad->rate_limit_rules[0]->window_seconds = 60;
    free(bad->services[1]->name);
    bad->services[1]->name = pt_xstrdup("a");
    assert_int_equal(pt_store_commit(s, next, bad, 2, err, sizeof(err)), PT_ERR_INVALID);
    assert_non_null(strstr(err, "appears twice"));
    free_config(bad);

    /* Deleting everything leaves empty tables and the version moving on. */
    assert_int_equal(pt_store_commit(s, next, empty, 2, err, sizeof(err)), 0);
    expect_sql(uri_main,
               "SELECT (SELECT count(*) FROM services) + (SELECT count(*) FROM routes) + "
               "(SELECT count(*) FROM rate_limit_rules) + (SELECT count(*) FROM plugins) + "
               "(SELECT count(*) FROM api_keys)",
               "0");
    expect_sql(uri_main, "SELECT version FROM config_state", "3");
    free_config(next);
    free_config(cfg);
    free_config(empty);
    pt_store_close(s);
    event_base_free(w.base);
}

static void test_pg_commit__concurrent_writers_one_conflicts(void **state)
{
    struct watcher wa = {.base = event_base_new()}, wb = {.base = event_base_new()};
    struct pt_store *a = open_store(uri_main, &wa), *b = open_store(uri_main, &wb);
    Portico__Config__V1__Config *ca, *cb;
    uint64_t va, vb;
    char err[512] = "";
    assert_int_equal(pt_store_load(a, &ca, &va, err, sizeof(err)), 0);
    assert_int_equal(pt_store_load(b, &cb, &vb, err, sizeof(err)), 0);
    assert_int_equal(va, vb);
    Portico__Config__V1__Config *na = full_config(), *nb = full_config();
    assert_int_equal(pt_store_commit(a, ca, na, va, err, sizeof(err)), 0);
    assert_int_equal(pt_store_commit(b, cb, nb, vb, err, sizeof(err)), PT_ERR_CONFLICT);
    assert_non_null(strstr(err, "version"));
    free_config(cb);
    /* b reloads and retries: accepted. */
    assert_int_equal(pt_store_load(b, &cb, &vb, err, sizeof(err)), 0);
    assert_int_equal(vb, va + 1);
    free_config(nb);
    nb = pt_store_empty_config();
    assert_int_equal(pt_store_commit(b, cb, nb, vb, err, sizeof(err)), 0);
    free_config(ca);
    free_config(cb);
    free_config(na);
    free_config(nb);
    pt_store_close(a);
    pt_store_close(b);
    event_base_free(wa.base);
    event_base_free(wb.base);
}

static void test_pg_watch__notify_reaches_other_instance_and_outage_recovers(void **state)
{
    struct watcher wa = {.base = event_base_new()}, wb = {.base = event_base_new()};
    struct pt_store *a = open_store(uri_main, &wa), *b = open_store(uri_main, &wb);
    Portico__Config__V1__Config *ca, *cfg = full_config();
    uint64_t va;
    char err[512] = "";
    assert_int_equal(pt_store_load(a, &ca, &va, err, sizeof(err)), 0);
    assert_int_equal(pt_store_commit(a, ca, cfg, va, err, sizeof(err)), 0);
    free_config(ca);
    assert_true(DRIVE_UNTIL(wb.base, 5000, wb.changes > 0));
    assert_int_equal(wb.changes, 1);
    /* the writer's own NOTIFY is not a change for it */
    DRIVE_UNTIL(wa.base, 300, wa.changes > 0);
    assert_int_equal(wa.changes, 0);

    /* PostgreSQL goes away: calls fail fast, connected() turns false. */
    server("stop\n");
    assert_true(DRIVE_UNTIL(wb.base, 5000, !pt_store_connected(b)));
    uint64_t t0 = pt_time_mono_ns();
    assert_int_equal(pt_store_load(a, &ca, &va, err, sizeof(err)), PT_ERR_STORE_UNAVAILABLE);
    Portico__Config__V1__Config *empty = pt_store_empty_config();
    assert_int_equal(pt_store_commit(a, cfg, empty, va, err, sizeof(err)),
                     PT_ERR_STORE_UNAVAILABLE);
    assert_int_equal(pt_store_load(a, &ca, &va, err, sizeof(err)), PT_ERR_STORE_UNAVAILABLE);
    assert_true(pt_store_connected(a) == false);
    assert_true(pt_time_mono_ns() - t0 < 5000000000ull);

    /* Back: both watches reconnect by themselves and report a change. */
    wa.changes = wb.changes = 0;
    server("start\n");
    assert_true(DRIVE_UNTIL(wb.base, 15000, wb.changes > 0));
    assert_true(DRIVE_UNTIL(wa.base, 15000, wa.changes > 0));
    Portico__Config__V1__Config *cb;
    uint64_t vb;
    assert_int_equal(pt_store_load(b, &cb, &vb, err, sizeof(err)), 0);
    assert_true(pt_store_connected(b));
    assert_int_equal(pt_store_load(a, &ca, &va, err, sizeof(err)), 0);
    assert_true(pt_store_connected(a));
    assert_int_equal(va, vb);
    assert_same_config(cfg, cb);
    /* and commits work again, reaching b */
    wb.changes = 0;
    assert_int_equal(pt_store_commit(a, ca, empty, va, err, sizeof(err)), 0);
    assert_true(DRIVE_UNTIL(wb.base, 5000, wb.changes > 0));
    free_config(ca);
    free_config(cb);
    free_config(empty);
    free_config(cfg);
    pt_store_close(a);
    pt_store_close(b);
    event_base_free(wa.base);
    event_base_free(wb.base);
}

int main(void)
{
    const char *prefix = getenv("PT_TEST_PG_URI_PREFIX"), *ctl = getenv("PT_TEST_PG_CTL");
    if (!prefix || !ctl || sscanf(ctl, "%d,%d", &ctl_r, &ctl_w) != 2) {
        fprintf(stderr, "run through tests/unit/store/with_pg.py (needs PostgreSQL)\n");
        return 1;
    }
    uri_for(uri_main, sizeof(uri_main), "main");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_open__unmigrated_database_asks_for_migrate),
        cmocka_unit_test(test_pg_migrate__applies_then_is_idempotent),
        cmocka_unit_test(test_pg_migrate__two_at_once_do_not_collide),
        cmocka_unit_test(test_pg_load__empty_store),
        cmocka_unit_test(test_pg_commit__round_trip_every_kind_and_projection),
        cmocka_unit_test(test_pg_commit__concurrent_writers_one_conflicts),
        cmocka_unit_test(test_pg_watch__notify_reaches_other_instance_and_outage_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
