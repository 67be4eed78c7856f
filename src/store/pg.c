/*
 * The PostgreSQL store: the managed configuration in the tables of sql/.
 *
 * Two connections:
 *
 *   query  load() and commit(), called one at a time by the control side
 *          (admin thread or main thread). Blocking libpq calls, bounded by
 *          connect_timeout, tcp_user_timeout and statement_timeout. After a
 *          failure it reconnects lazily on the next call, at most once per
 *          backoff interval, so a dead database fails calls fast.
 *   watch  LISTEN portico_config, driven by the main thread's event base
 *          with non-blocking libpq (PQconnectStart/PQconnectPoll, then
 *          PQconsumeInput/PQnotifies). Reconnects with jittered exponential
 *          backoff from a timer.
 *
 *   watch:  DOWN --timer--> CONNECTING --PQconnectPoll OK--> LISTENING
 *            ^                   |                               | LISTEN ok
 *            |                   v fail / deadline               v
 *            +------------ (backoff) <------- lost ---------  UP (on_change
 *                                                              once if it was
 *                                                              down before)
 *
 * Shared between threads: only atomics (connected flags, the highest version
 * seen, the "retry the query connection now" hint).
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/log.h"
#include "core/time.h"
#include "store/pg_int.h"

#define CHANNEL "portico_config"
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define WATCH_CONNECT_DEADLINE_MS 5000u
#define STATEMENT_TIMEOUT "SET statement_timeout = 5000"
/* pg_advisory_lock key of migrations: "portico" in ASCII. */
#define MIGRATE_LOCK "31647734761612143"

enum watch_state { W_DOWN, W_CONNECTING, W_LISTENING, W_UP };

struct pg_store {
    struct pt_store base;
    char *conninfo;
    struct event_base *evbase;
    pt_store_changed_fn *on_change;
    void *arg;

    /* query connection (load/commit; serialized by the caller) */
    PGconn *q;
    uint64_t q_next_try_ns;
    uint32_t q_backoff_ms;
    atomic_bool q_ok;
    atomic_bool q_retry_now; /* the watch came back: skip the backoff once */

    /* watch connection (main thread) */
    PGconn *w;
    enum watch_state w_state;
    struct event *w_io;
    struct event *w_timer; /* backoff in DOWN, deadline in CONNECTING/LISTENING */
    uint32_t w_backoff_ms;
    bool w_notify_on_up; /* notifications may have been missed */
    atomic_bool w_ok;
    uint32_t rng;

    _Atomic uint64_t seen; /* highest version loaded, committed or notified */
};

static const struct pt_store_ops pg_ops;

/* ---- connections ---- */

/* Keywords before dbname are defaults the conninfo may override. */
static const char *const conn_keys[] = {
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "application_name",
    "dbname",
    NULL,
};

#define CONN_NVALS 9
#define APP_NAME_LEN 32

/* application_name defaults to "portico-<pid>", so that an operator (or a
 * test) can tell the instances' sessions apart in pg_stat_activity. app
 * (APP_NAME_LEN bytes) holds it and must live as long as vals. */
static void conn_values(const char *conninfo, const char *vals[CONN_NVALS], char app[APP_NAME_LEN])
{
    static const char *const defaults[] = {"3", "5000", "1", "10", "3", "3"};
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        vals[i] = defaults[i];
    snprintf(app, APP_NAME_LEN, "portico-%ld", (long)getpid());
    vals[6] = app;
    vals[7] = conninfo;
    vals[8] = NULL;
}

static PGconn *quiet(PGconn *c);

static PGconn *connect_blocking(const char *conninfo)
{
    const char *vals[CONN_NVALS];
    char app[APP_NAME_LEN];
    conn_values(conninfo, vals, app);
    return quiet(PQconnectdbParams(conn_keys, vals, 1));
}

/* libpq messages end with a newline and may span lines ("server closed the
 * connection unexpectedly\n\tThis probably means..."); one line reads better. */
static const char *trim(const char *msg, char *buf, size_t n)
{
    snprintf(buf, n, "%s", msg && *msg ? msg : "unknown error");
    size_t o = 0;
    bool space = false;
    for (size_t i = 0; buf[i]; i++) {
        bool ws = buf[i] == '\n' || buf[i] == '\t' || buf[i] == ' ';
        if (ws && !space && o)
            buf[o++] = ' ';
        else if (!ws)
            buf[o++] = buf[i];
        space = ws;
    }
    while (o && buf[o - 1] == ' ')
        o--;
    buf[o] = '\0';
    return buf;
}

/* Server notices (NOTICE from CREATE ... IF NOT EXISTS, the FATAL of a
 * shutdown) go to the debug log, not to stderr. */
static void on_notice(void *arg, const char *msg)
{
    char buf[512];
    pt_log_debug("config store: postgres: %s", trim(msg, buf, sizeof(buf)));
}

static PGconn *quiet(PGconn *c)
{
    if (c)
        PQsetNoticeProcessor(c, on_notice, NULL);
    return c;
}

/* Status for a failed statement: the connection is gone, the server is
 * going away or timed us out (unavailable), the data broke a constraint
 * (invalid), or the schema is not what this binary expects. */
static int classify(PGconn *c, const PGresult *r, const char *what, char *err, size_t errlen)
{
    char buf[512];
    const char *msg =
        trim(r && *PQresultErrorMessage(r) ? PQresultErrorMessage(r) : PQerrorMessage(c), buf,
             sizeof(buf));
    if (!c || PQstatus(c) != CONNECTION_OK) {
        pt_store_errf(err, errlen, "%s: connection to the database lost: %s", what, msg);
        return PT_ERR_STORE_UNAVAILABLE;
    }
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    int rc = PT_ERR_INTERNAL;
    if (!st)
        rc = PT_ERR_STORE_UNAVAILABLE;
    else if (!strncmp(st, "08", 2) || !strncmp(st, "53", 2) || !strncmp(st, "57", 2) ||
             !strncmp(st, "58", 2))
        rc = PT_ERR_STORE_UNAVAILABLE; /* incl. 57014: statement_timeout */
    else if (!strncmp(st, "22", 2) || !strncmp(st, "23", 2))
        rc = PT_ERR_INVALID;
    else if (!strncmp(st, "40", 2))
        rc = PT_ERR_CONFLICT;
    else if (!strncmp(st, "42", 2))
        rc = PT_ERR_CONFIG;
    pt_store_errf(err, errlen, "%s: %s%s", what, msg,
                  rc == PT_ERR_CONFIG ? " (is the schema current? run portico --migrate)" : "");
    return rc;
}

/* Status: 0 when the statement succeeded (result cleared), else classify(). */
static int exec(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK
                 ? 0
                 : classify(c, r, what ? what : sql, err, errlen);
    PQclear(r);
    return rc;
}

static int newest_migration(void)
{
    return pt_store_pg_nmigrations ? pt_store_pg_migrations[pt_store_pg_nmigrations - 1].version
                                   : 0;
}

/* Status: 0 when the schema is at least the newest embedded migration,
 * PT_ERR_CONFIG ("run portico --migrate"), or the failure's status. */
static int check_schema(PGconn *c, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    long have = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        have = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    } else {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (!st || strcmp(st, "42P01") != 0) { /* undefined_table: never migrated */
            int rc = classify(c, r, "reading schema_migrations", err, errlen);
            PQclear(r);
            return rc;
        }
    }
    PQclear(r);
    if (have < newest_migration()) {
        pt_store_errf(err, errlen,
                      "database schema is at %ld, this binary needs %d: run portico "
                      "--migrate",
                      have, newest_migration());
        return PT_ERR_CONFIG;
    }
    return 0;
}

static uint32_t jitter(struct pg_store *s, uint32_t ms)
{
    /* xorshift32: spread reconnects of many instances after an outage */
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 17;
    s->rng ^= s->rng << 5;
    return ms / 2 + s->rng % (ms / 2 + 1);
}

static uint32_t next_backoff(uint32_t ms)
{
    return ms >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS : ms * 2;
}

static void q_drop(struct pg_store *s)
{
    PQfinish(s->q);
    s->q = NULL;
    atomic_store(&s->q_ok, false);
}

/* Make the query connection usable. force skips the backoff (one retry after
 * a connection that worked turned out dead). Status: 0, PT_ERR_STORE_UNAVAILABLE,
 * or PT_ERR_CONFIG (schema too old). */
static int q_connect(struct pg_store *s, bool force, char *err, size_t errlen)
{
    if (s->q && PQstatus(s->q) == CONNECTION_OK)
        return 0;
    if (s->q)
        q_drop(s);
    uint64_t now = pt_time_mono_ns();
    bool hint = atomic_exchange(&s->q_retry_now, false);
    if (!force && !hint && now < s->q_next_try_ns) {
        pt_store_errf(err, errlen, "database unreachable; next attempt in %" PRIu64 " ms",
                      (s->q_next_try_ns - now) / 1000000u);
        return PT_ERR_STORE_UNAVAILABLE;
    }
    char buf[512];
    s->q = connect_blocking(s->conninfo);
    int rc = 0;
    if (PQstatus(s->q) != CONNECTION_OK) {
        pt_store_errf(err, errlen, "cannot connect to the database: %s",
                      trim(PQerrorMessage(s->q), buf, sizeof(buf)));
        rc = PT_ERR_STORE_UNAVAILABLE;
    } else if ((rc = exec(s->q, STATEMENT_TIMEOUT, NULL, err, errlen)) == 0) {
        rc = check_schema(s->q, err, errlen);
    }
    if (rc != 0) {
        q_drop(s);
        s->q_next_try_ns = pt_time_mono_ns() + (uint64_t)jitter(s, s->q_backoff_ms) * 1000000u;
        s->q_backoff_ms = next_backoff(s->q_backoff_ms);
        return rc;
    }
    s->q_backoff_ms = BACKOFF_MIN_MS;
    s->q_next_try_ns = 0;
    atomic_store(&s->q_ok, true);
    return 0;
}

static void seen_at_least(struct pg_store *s, uint64_t v)
{
    uint64_t cur = atomic_load(&s->seen);
    while (cur < v && !atomic_compare_exchange_weak(&s->seen, &cur, v))
        ;
}

static void rollback(struct pg_store *s)
{
    if (s->q && PQstatus(s->q) == CONNECTION_OK)
        PQclear(PQexec(s->q, "ROLLBACK"));
    if (s->q && PQstatus(s->q) != CONNECTION_OK)
        q_drop(s);
}

/* Run op with the query connection; when its first statement (BEGIN) finds
 * the connection dead, nothing was done, so reconnect once and run it again. */
#define LOST_AT_BEGIN 1

static int with_query_conn(struct pg_store *s,
                           int (*op)(struct pg_store *s, void *ctx, char *err, size_t errlen),
                           void *ctx, char *err, size_t errlen)
{
    int rc = PT_ERR_STORE_UNAVAILABLE;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = q_connect(s, attempt > 0, err, errlen);
        if (rc != 0)
            return rc;
        rc = op(s, ctx, err, errlen);
        if (rc != LOST_AT_BEGIN)
            break;
        q_drop(s);
        rc = PT_ERR_STORE_UNAVAILABLE;
        pt_store_errf(err, errlen, "connection to the database lost");
    }
    if (rc != 0 && s->q && PQstatus(s->q) != CONNECTION_OK)
        q_drop(s);
    return rc;
}

static int begin(struct pg_store *s, const char *sql, char *err, size_t errlen)
{
    int rc = exec(s->q, sql, "BEGIN", err, errlen);
    if (rc != 0 && PQstatus(s->q) != CONNECTION_OK)
        return LOST_AT_BEGIN;
    return rc;
}

/* ---- load ---- */

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(pt_store_pg_name(*(ProtobufCMessage *const *)a),
                  pt_store_pg_name(*(ProtobufCMessage *const *)b));
}

static void set_items(Portico__Config__V1__Config *c, enum pt_store_pg_kind k,
                      ProtobufCMessage **items, size_t n)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
        &portico__config__v1__config__descriptor, pt_store_pg_kinds[k].field);
    *(size_t *)((char *)c + f->quantifier_offset) = n;
    *(ProtobufCMessage ***)((char *)c + f->offset) = items;
}

struct load_ctx {
    Portico__Config__V1__Config *cfg;
    uint64_t version;
};

/* One kind: every row's spec, unpacked, sorted by name. */
static int load_kind(struct pg_store *s, Portico__Config__V1__Config *cfg, enum pt_store_pg_kind k,
                     char *err, size_t errlen)
{
    const struct pt_store_pg_kind_info *ki = &pt_store_pg_kinds[k];
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT name, spec FROM %s", ki->table);
    PGresult *r = PQexecParams(s->q, sql, 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = classify(s->q, r, ki->table, err, errlen);
        PQclear(r);
        return rc;
    }
    size_t n = (size_t)PQntuples(r);
    ProtobufCMessage **items = pt_xcalloc(n ? n : 1, sizeof(*items));
    set_items(cfg, k, items, 0);
    for (size_t i = 0; i < n; i++) {
        const char *name = PQgetvalue(r, (int)i, 0);
        ProtobufCMessage *m =
            protobuf_c_message_unpack(ki->desc, NULL, (size_t)PQgetlength(r, (int)i, 1),
                                      (const uint8_t *)PQgetvalue(r, (int)i, 1));
        if (!m || strcmp(pt_store_pg_name(m), name) != 0) {
            pt_store_errf(err, errlen, "table %s, row \"%s\": spec is %s", ki->table, name,
                          m ? "another object (its name differs)" : "not a valid message");
            if (m)
                protobuf_c_message_free_unpacked(m, NULL);
            set_items(cfg, k, items, i);
            PQclear(r);
            return PT_ERR_CONFIG;
        }
        items[i] = m;
    }
    PQclear(r);
    /* Byte order, whatever the database's collation. */
    qsort(items, n, sizeof(*items), cmp_by_name);
    set_items(cfg, k, items, n);
    return 0;
}

static int load_op(struct pg_store *s, void *arg, char *err, size_t errlen)
{
    struct load_ctx *ctx = arg;
    int rc = begin(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen);
    if (rc != 0)
        return rc;
    PGresult *r = PQexec(s->q, "SELECT version FROM config_state WHERE id = 1");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = classify(s->q, r, "config_state", err, errlen);
        PQclear(r);
        rollback(s);
        return rc;
    }
    uint64_t version = PQntuples(r) ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    Portico__Config__V1__Config *cfg = pt_store_empty_config();
    for (int k = 0; k < PT_STORE_PG_NKINDS && rc == 0; k++)
        rc = load_kind(s, cfg, (enum pt_store_pg_kind)k, err, errlen);
    if (rc == 0)
        rc = exec(s->q, "COMMIT", NULL, err, errlen);
    if (rc != 0) {
        rollback(s);
        protobuf_c_message_free_unpacked(&cfg->base, NULL);
        return rc;
    }
    ctx->cfg = cfg;
    ctx->version = version;
    return 0;
}

static int pg_load(struct pt_store *st, Portico__Config__V1__Config **managed, uint64_t *version,
                   char *err, size_t errlen)
{
    struct pg_store *s = (struct pg_store *)st;
    struct load_ctx ctx = {0};
    int rc = with_query_conn(s, load_op, &ctx, err, errlen);
    if (rc != 0)
        return rc;
    seen_at_least(s, ctx.version);
    *managed = ctx.cfg;
    *version = ctx.version;
    return 0;
}

/* ---- commit ---- */

struct commit_ctx {
    const Portico__Config__V1__Config *next;
    uint64_t expected;
    struct pt_store_pg_change *ch[PT_STORE_PG_NKINDS];
    size_t nch[PT_STORE_PG_NKINDS];
};

static int exec_params(struct pg_store *s, const char *sql, int n, const char *const *values,
                       const int *lengths, const int *formats, const char *what, char *err,
                       size_t errlen)
{
    PGresult *r = PQexecParams(s->q, sql, n, NULL, values, lengths, formats, 0);
    ExecStatusType st = PQresultStatus(r);
    int rc =
        st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : classify(s->q, r, what, err, errlen);
    PQclear(r);
    return rc;
}

static bool added(const struct commit_ctx *c, enum pt_store_pg_kind k, const char *name)
{
    for (size_t i = 0; i < c->nch[k]; i++)
        if (c->ch[k][i].op == PT_STORE_PG_ADD &&
            strcmp(pt_store_pg_name(c->ch[k][i].next), name) == 0)
            return true;
    return false;
}

static bool written(const struct commit_ctx *c, enum pt_store_pg_kind k, const char *name)
{
    for (size_t i = 0; i < c->nch[k]; i++)
        if (c->ch[k][i].op != PT_STORE_PG_DELETE &&
            strcmp(pt_store_pg_name(c->ch[k][i].next), name) == 0)
            return true;
    return false;
}

/* An unchanged route whose service appears in this commit (or a rule whose
 * route does) still has a NULL reference: resolve it now. Deleted parents
 * need nothing: the foreign keys set their children's reference to NULL. */
static int relink(struct pg_store *s, const struct commit_ctx *c, char *err, size_t errlen)
{
    ProtobufCMessage *const *items;
    size_t n = pt_store_pg_items(c->next, PT_STORE_PG_ROUTES, &items);
    for (size_t i = 0; i < n; i++) {
        const Portico__Config__V1__Route *r = (const void *)items[i];
        if (!r->service || !*r->service || written(c, PT_STORE_PG_ROUTES, r->name) ||
            !added(c, PT_STORE_PG_SERVICES, r->service))
            continue;
        const char *v[2] = {r->name, r->service};
        int rc = exec_params(s,
                             "UPDATE routes SET service_id = (SELECT id FROM services WHERE "
                             "name = $2) WHERE name = $1",
                             2, v, NULL, NULL, "routes", err, errlen);
        if (rc != 0)
            return rc;
    }
    n = pt_store_pg_items(c->next, PT_STORE_PG_RULES, &items);
    for (size_t i = 0; i < n; i++) {
        const Portico__Config__V1__RateLimitRule *r = (const void *)items[i];
        if (!r->route || !*r->route || written(c, PT_STORE_PG_RULES, r->name) ||
            !added(c, PT_STORE_PG_ROUTES, r->route))
            continue;
        const char *v[2] = {r->name, r->route};
        int rc = exec_params(s,
                             "UPDATE rate_limit_rules SET route_id = (SELECT id FROM routes "
                             "WHERE name = $2) WHERE name = $1",
                             2, v, NULL, NULL, "rate_limit_rules", err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int write_changes(struct pg_store *s, const struct commit_ctx *c, char *err, size_t errlen)
{
    /* Parents first so that a new child resolves its new parent by name. */
    for (int k = 0; k < PT_STORE_PG_NKINDS; k++) {
        const struct pt_store_pg_kind_info *ki = &pt_store_pg_kinds[k];
        for (size_t i = 0; i < c->nch[k]; i++) {
            if (c->ch[k][i].op == PT_STORE_PG_DELETE)
                continue;
            struct pt_store_pg_params p;
            pt_store_pg_project((enum pt_store_pg_kind)k, c->ch[k][i].next, &p);
            char what[160];
            snprintf(what, sizeof(what), "%s \"%.100s\"", ki->table,
                     pt_store_pg_name(c->ch[k][i].next));
            int rc = exec_params(s, ki->upsert_sql, p.n, (const char *const *)p.values, p.lengths,
                                 p.formats, what, err, errlen);
            pt_store_pg_params_fini(&p);
            if (rc != 0)
                return rc;
        }
    }
    for (int k = PT_STORE_PG_NKINDS - 1; k >= 0; k--) {
        char sql[96];
        snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE name = $1", pt_store_pg_kinds[k].table);
        for (size_t i = 0; i < c->nch[k]; i++) {
            if (c->ch[k][i].op != PT_STORE_PG_DELETE)
                continue;
            const char *v[1] = {pt_store_pg_name(c->ch[k][i].old)};
            int rc = exec_params(s, sql, 1, v, NULL, NULL, pt_store_pg_kinds[k].table, err, errlen);
            if (rc != 0)
                return rc;
        }
    }
    return relink(s, c, err, errlen);
}

static int commit_op(struct pg_store *s, void *arg, char *err, size_t errlen)
{
    struct commit_ctx *c = arg;
    int rc = begin(s, "BEGIN", err, errlen);
    if (rc != 0)
        return rc;
    rc = exec(s->q,
              "INSERT INTO config_state (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
              "config_state", err, errlen);
    if (rc != 0)
        goto fail;
    PGresult *r = PQexec(s->q, "SELECT version FROM config_state WHERE id = 1 FOR UPDATE");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = classify(s->q, r, "config_state", err, errlen);
        PQclear(r);
        goto fail;
    }
    uint64_t stored = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (stored != c->expected) {
        pt_store_errf(err, errlen, "stored configuration is at version %" PRIu64 ", not %" PRIu64,
                      stored, c->expected);
        rc = PT_ERR_CONFLICT;
        goto fail;
    }
    if ((rc = write_changes(s, c, err, errlen)) != 0)
        goto fail;
    char ver[24];
    snprintf(ver, sizeof(ver), "%" PRIu64, c->expected + 1);
    const char *v[1] = {ver};
    rc = exec_params(
        s, "UPDATE config_state SET version = $1::bigint, updated_at = now() WHERE id = 1", 1, v,
        NULL, NULL, "config_state", err, errlen);
    if (rc == 0)
        rc = exec_params(s, "SELECT pg_notify('" CHANNEL "', $1)", 1, v, NULL, NULL, "NOTIFY", err,
                         errlen);
    if (rc != 0)
        goto fail;
    r = PQexec(s->q, "COMMIT");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        if (PQstatus(s->q) != CONNECTION_OK) {
            char buf[256];
            pt_store_errf(err, errlen,
                          "connection lost during COMMIT (%s): the outcome is "
                          "unknown; load the configuration again",
                          trim(PQerrorMessage(s->q), buf, sizeof(buf)));
            rc = PT_ERR_STORE_UNAVAILABLE;
        } else {
            rc = classify(s->q, r, "COMMIT", err, errlen); /* e.g. a deferred foreign key */
        }
        PQclear(r);
        goto fail;
    }
    PQclear(r);
    return 0;
fail:
    rollback(s);
    return rc;
}

static int pg_commit(struct pt_store *st, const Portico__Config__V1__Config *old,
                     const Portico__Config__V1__Config *next, uint64_t expected_version, char *err,
                     size_t errlen)
{
    struct pg_store *s = (struct pg_store *)st;
    struct commit_ctx c = {.next = next, .expected = expected_version};
    int rc = 0;
    for (int k = 0; k < PT_STORE_PG_NKINDS && rc == 0; k++)
        rc =
            pt_store_pg_diff(old, next, (enum pt_store_pg_kind)k, &c.ch[k], &c.nch[k], err, errlen);
    if (rc == 0)
        rc = with_query_conn(s, commit_op, &c, err, errlen);
    for (int k = 0; k < PT_STORE_PG_NKINDS; k++)
        free(c.ch[k]);
    if (rc == 0)
        seen_at_least(s, expected_version + 1);
    return rc;
}

/* ---- API-key usage ---- */

struct key_use_ctx {
    const char *json;
};

static int key_use_op(struct pg_store *s, void *arg, char *err, size_t errlen)
{
    const struct key_use_ctx *c = arg;
    const char *values[1] = {c->json};
    int rc = exec_params(s, PT_STORE_PG_KEY_USE_SQL, 1, values, NULL, NULL, "record key use", err,
                         errlen);
    /* An idempotent statement on a dead connection: reconnect and repeat. */
    if (rc != 0 && PQstatus(s->q) != CONNECTION_OK)
        return LOST_AT_BEGIN;
    return rc;
}

static int pg_record_key_use(struct pt_store *st, const struct pt_store_key_use *v, size_t n,
                             char *err, size_t errlen)
{
    struct pg_store *s = (struct pg_store *)st;
    struct key_use_ctx c = {pt_store_pg_key_use_json(v, n)};
    int rc = with_query_conn(s, key_use_op, &c, err, errlen);
    free((char *)c.json);
    return rc;
}

/* ---- watch ---- */

static void w_start(struct pg_store *s);

static void w_close(struct pg_store *s)
{
    if (s->w_io) {
        event_free(s->w_io);
        s->w_io = NULL;
    }
    PQfinish(s->w);
    s->w = NULL;
}

static void w_schedule(struct pg_store *s)
{
    uint32_t ms = jitter(s, s->w_backoff_ms);
    s->w_backoff_ms = next_backoff(s->w_backoff_ms);
    s->w_state = W_DOWN;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->w_timer, &tv);
}

static void w_lost(struct pg_store *s, const char *why)
{
    char buf[256];
    if (s->w_state == W_UP)
        pt_log_warn("config store: change watch lost (%s); reconnecting",
                    trim(why ? why : PQerrorMessage(s->w), buf, sizeof(buf)));
    w_close(s);
    atomic_store(&s->w_ok, false);
    s->w_notify_on_up = true;
    w_schedule(s);
}

static void on_w_io(evutil_socket_t fd, short what, void *arg);

static void w_wait(struct pg_store *s, short what)
{
    if (s->w_io)
        event_free(s->w_io);
    s->w_io = event_new(s->evbase, PQsocket(s->w), what, on_w_io, s);
    event_add(s->w_io, NULL);
}

static void w_up(struct pg_store *s)
{
    evtimer_del(s->w_timer);
    s->w_state = W_UP;
    s->w_backoff_ms = BACKOFF_MIN_MS;
    atomic_store(&s->w_ok, true);
    atomic_store(&s->q_retry_now, true);
    if (s->w_notify_on_up) {
        s->w_notify_on_up = false;
        pt_log_info("config store: change watch connected");
        s->on_change(s->arg);
    }
}

static void w_read(struct pg_store *s)
{
    if (!PQconsumeInput(s->w)) {
        w_lost(s, NULL);
        return;
    }
    while (!PQisBusy(s->w)) {
        PGresult *r = PQgetResult(s->w);
        if (!r)
            break;
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (s->w_state == W_LISTENING) {
            if (!ok) {
                w_lost(s, "LISTEN failed");
                return;
            }
            s->w_state = W_UP; /* w_up once the result stream ends */
        }
    }
    bool changed = false;
    PGnotify *n;
    while ((n = PQnotifies(s->w)) != NULL) {
        if (strcmp(n->relname, CHANNEL) == 0) {
            uint64_t v = strtoull(n->extra, NULL, 10);
            if (v > atomic_load(&s->seen)) {
                seen_at_least(s, v);
                changed = true;
            }
        }
        PQfreemem(n);
    }
    if (PQstatus(s->w) != CONNECTION_OK) {
        w_lost(s, NULL);
        return;
    }
    if (s->w_state == W_UP && !atomic_load(&s->w_ok))
        w_up(s); /* may call on_change itself */
    else if (changed)
        s->on_change(s->arg);
}

static void on_w_io(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *s = arg;
    if (s->w_state == W_CONNECTING) {
        switch (PQconnectPoll(s->w)) {
        case PGRES_POLLING_READING:
            w_wait(s, EV_READ);
            return;
        case PGRES_POLLING_WRITING:
            w_wait(s, EV_WRITE);
            return;
        case PGRES_POLLING_OK:
            break;
        default:
            w_lost(s, NULL);
            return;
        }
        if (PQsetnonblocking(s->w, 1) != 0 || !PQsendQuery(s->w, "LISTEN " CHANNEL)) {
            w_lost(s, NULL);
            return;
        }
        s->w_state = W_LISTENING;
        what = EV_WRITE; /* flush below */
    }
    if (what & EV_WRITE) {
        int f = PQflush(s->w);
        if (f < 0) {
            w_lost(s, NULL);
            return;
        }
        w_wait(s, (short)(EV_READ | EV_PERSIST | (f ? EV_WRITE : 0)));
    }
    if (what & EV_READ)
        w_read(s);
}

static void on_w_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *s = arg;
    if (s->w_state == W_DOWN)
        w_start(s);
    else if (s->w_state != W_UP)
        w_lost(s, "connect timed out");
}

static void w_start(struct pg_store *s)
{
    const char *vals[CONN_NVALS];
    char app[APP_NAME_LEN];
    conn_values(s->conninfo, vals, app);
    s->w = quiet(PQconnectStartParams(conn_keys, vals, 1));
    if (!s->w || PQstatus(s->w) == CONNECTION_BAD) {
        w_lost(s, NULL);
        return;
    }
    /* PQconnectPoll does not honour connect_timeout: the timer does. */
    s->w_state = W_CONNECTING;
    struct timeval tv = {WATCH_CONNECT_DEADLINE_MS / 1000, 0};
    evtimer_add(s->w_timer, &tv);
    w_wait(s, EV_WRITE);
}

/* The first watch connection, synchronously, so that a load right after open
 * cannot miss a change made before LISTEN. */
static void w_open(struct pg_store *s)
{
    s->w = connect_blocking(s->conninfo);
    if (PQstatus(s->w) != CONNECTION_OK || exec(s->w, "LISTEN " CHANNEL, NULL, NULL, 0) != 0 ||
        PQsetnonblocking(s->w, 1) != 0) {
        s->w_state = W_CONNECTING; /* not UP: no "lost" message */
        w_lost(s, NULL);
        return;
    }
    s->w_state = W_UP;
    atomic_store(&s->w_ok, true);
    w_wait(s, EV_READ | EV_PERSIST);
}

/* ---- the store ---- */

static bool pg_connected(const struct pt_store *st)
{
    struct pg_store *s = (struct pg_store *)st;
    return atomic_load(&s->w_ok) && atomic_load(&s->q_ok);
}

static void pg_close(struct pt_store *st)
{
    struct pg_store *s = (struct pg_store *)st;
    w_close(s);
    if (s->w_timer)
        event_free(s->w_timer);
    PQfinish(s->q);
    free(s->conninfo);
    free(s);
}

static const struct pt_store_ops pg_ops = {
    .kind = "postgres",
    .connected = pg_connected,
    .load = pg_load,
    .commit = pg_commit,
    .close = pg_close,
    .record_key_use = pg_record_key_use,
};

static bool conninfo_ok(const char *conninfo, char *err, size_t errlen)
{
    char *msg = NULL;
    PQconninfoOption *o = conninfo ? PQconninfoParse(conninfo, &msg) : NULL;
    if (!o) {
        char buf[256];
        pt_store_errf(err, errlen, "bad PostgreSQL connection string: %s",
                      trim(msg ? msg : "empty", buf, sizeof(buf)));
        PQfreemem(msg);
        return false;
    }
    PQconninfoFree(o);
    return true;
}

struct pt_store *pt_store_pg_open(const char *conninfo, struct event_base *base,
                                  pt_store_changed_fn *on_change, void *arg, char *err,
                                  size_t errlen)
{
    if (!conninfo_ok(conninfo, err, errlen))
        return NULL;
    struct pg_store *s = pt_xcalloc(1, sizeof(*s));
    s->base.ops = &pg_ops;
    s->conninfo = pt_xstrdup(conninfo);
    s->evbase = base;
    s->on_change = on_change;
    s->arg = arg;
    s->q_backoff_ms = BACKOFF_MIN_MS;
    s->w_backoff_ms = BACKOFF_MIN_MS;
    s->rng = (uint32_t)pt_time_mono_ns() ^ (uint32_t)(uintptr_t)s ^ 0x9e3779b9u;
    if (!s->rng)
        s->rng = 1;
    atomic_init(&s->q_ok, false);
    atomic_init(&s->q_retry_now, false);
    atomic_init(&s->w_ok, false);
    atomic_init(&s->seen, 0);
    s->w_timer = evtimer_new(base, on_w_timer, s);

    char buf[512];
    int rc = q_connect(s, true, buf, sizeof(buf));
    if (rc == PT_ERR_CONFIG) {
        pt_store_errf(err, errlen, "%s", buf);
        pg_close(&s->base);
        return NULL;
    }
    if (rc != 0)
        pt_log_warn("config store: %s; retrying in the background", buf);
    w_open(s);
    return &s->base;
}

/* ---- migrations ---- */

static int migrate_one(PGconn *c, const struct pt_store_pg_migration *m, char *err, size_t errlen)
{
    char what[64];
    snprintf(what, sizeof(what), "migration %s", m->name);
    int rc = exec(c, "BEGIN", what, err, errlen);
    if (rc != 0)
        return rc;
    char *sql = pt_xstrndup((const char *)m->sql, *m->len);
    rc = exec(c, sql, what, err, errlen);
    free(sql);
    if (rc == 0) {
        char ver[16];
        snprintf(ver, sizeof(ver), "%d", m->version);
        const char *v[2] = {ver, m->name};
        PGresult *r = PQexecParams(c,
                                   "INSERT INTO schema_migrations (version, name, applied_at) "
                                   "VALUES ($1::integer, $2, now())",
                                   2, NULL, v, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = classify(c, r, what, err, errlen);
        PQclear(r);
    }
    if (rc == 0)
        rc = exec(c, "COMMIT", what, err, errlen);
    if (rc != 0 && PQstatus(c) == CONNECTION_OK)
        PQclear(PQexec(c, "ROLLBACK"));
    return rc;
}

int pt_store_pg_migrate(const char *conninfo, char *err, size_t errlen)
{
    if (!conninfo_ok(conninfo, err, errlen))
        return PT_ERR_CONFIG;
    char buf[512];
    PGconn *c = connect_blocking(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        pt_store_errf(err, errlen, "cannot connect to the database: %s",
                      trim(PQerrorMessage(c), buf, sizeof(buf)));
        PQfinish(c);
        return PT_ERR_STORE_UNAVAILABLE;
    }
    /* Another instance migrating at the same time waits here, then finds
     * its work done. */
    int rc = exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", "taking the migration lock", err,
                  errlen);
    if (rc == 0)
        rc = exec(c,
                  "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                  "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                  "creating schema_migrations", err, errlen);
    PGresult *r = NULL;
    if (rc == 0) {
        r = PQexec(c, "SELECT version FROM schema_migrations");
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            rc = classify(c, r, "reading schema_migrations", err, errlen);
    }
    int applied = 0;
    for (size_t i = 0; rc == 0 && i < pt_store_pg_nmigrations; i++) {
        const struct pt_store_pg_migration *m = &pt_store_pg_migrations[i];
        bool done = false;
        for (int t = 0; t < PQntuples(r) && !done; t++)
            done = atoi(PQgetvalue(r, t, 0)) == m->version;
        if (done)
            continue;
        rc = migrate_one(c, m, err, errlen);
        if (rc == 0) {
            printf("migration %s applied\n", m->name);
            applied++;
        }
    }
    PQclear(r);
    if (rc == 0)
        printf("database schema is at version %d (%d migration(s) applied now)\n",
               newest_migration(), applied);
    fflush(stdout);
    if (PQstatus(c) == CONNECTION_OK)
        PQclear(PQexec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")"));
    PQfinish(c);
    if (rc != 0 && rc != PT_ERR_STORE_UNAVAILABLE)
        rc = PT_ERR_CONFIG;
    return rc;
}
