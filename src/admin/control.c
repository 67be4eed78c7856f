/*
 * The control plane: instance file + store -> one compiled snapshot, and
 * every change to either (admin calls, SIGHUP, store notifications) under
 * one lock. See control.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "auth/usage.h"
#include "core/arena.h"
#include "core/diag.h"
#include "core/log.h"
#include "discovery/dns_msg.h"
#include "portico/admin/v1/admin.pb-c.h"
#include "portico/errors.h"
#include "proxy/proxy.h"
#include "transcode/reflect.h"
#include "transcode/reflect_client.h"

#define MAX_WORKERS 1024
#define COMMIT_ATTEMPTS 4
#define ERR_LEN 512

static void on_discovered(void *arg, const char *service, const struct pt_disc_instance *v,
                          size_t n);

/* ---- applying a desired document (Apply, seeding) ---- */

static void change_add(struct pt_change **v, size_t *n, int action, enum pt_kind k,
                       const char *name, const char **fields, size_t nfields)
{
    *v = pt_xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n] = (struct pt_change){action, k, pt_xstrdup(name), fields, nfields};
    (*n)++;
}

void pt_changes_free(struct pt_change *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].fields);
    }
    free(v);
}

Config *pt_managed_apply(const Config *current, const Config *desired, bool keep_absent,
                         uint64_t next_version, struct pt_change **changes, size_t *nchanges)
{
    Config *next = (Config *)pt_msg_dup(&current->base);
    *changes = NULL;
    *nchanges = 0;
    for (int ki = 0; ki < PT_KIND_COUNT; ki++) {
        enum pt_kind k = (enum pt_kind)ki;
        size_t nc = pt_kind_count(next, k), nd = pt_kind_count(desired, k);
        ProtobufCMessage **cur = pt_kind_items(next, k);
        ProtobufCMessage **want = pt_kind_items(desired, k);
        ProtobufCMessage **out = pt_xcalloc(nd + nc + 1, sizeof(*out));
        bool *used = pt_xcalloc(nc + 1, sizeof(*used));
        size_t n = 0;
        for (size_t i = 0; i < nd; i++) {
            const char *name = pt_obj_name(want[i]);
            ssize_t at = -1;
            for (size_t j = 0; j < nc && at < 0; j++)
                if (!used[j] && strcmp(pt_obj_name(cur[j]), name) == 0)
                    at = (ssize_t)j;
            ProtobufCMessage *obj = pt_msg_dup(want[i]);
            if (at < 0) {
                pt_obj_set_version(obj, next_version);
                change_add(changes, nchanges, PORTICO__ADMIN__V1__CHANGE__ACTION__ACTION_CREATE, k,
                           name, NULL, 0);
            } else {
                used[at] = true;
                if (pt_obj_equal(obj, cur[at])) {
                    pt_obj_set_version(obj, pt_obj_version(cur[at]));
                } else {
                    const char **fields;
                    size_t nf = pt_obj_diff_fields(cur[at], obj, &fields);
                    pt_obj_set_version(obj, next_version);
                    change_add(changes, nchanges, PORTICO__ADMIN__V1__CHANGE__ACTION__ACTION_UPDATE,
                               k, name, fields, nf);
                }
            }
            out[n++] = obj;
        }
        for (size_t j = 0; j < nc; j++) {
            if (used[j])
                continue;
            if (keep_absent) {
                out[n++] = cur[j];
                cur[j] = NULL;
            } else {
                change_add(changes, nchanges, PORTICO__ADMIN__V1__CHANGE__ACTION__ACTION_DELETE, k,
                           pt_obj_name(cur[j]), NULL, 0);
            }
        }
        for (size_t j = 0; j < nc; j++)
            pt_msg_free(cur[j]);
        free(cur);
        free(used);
        pt_kind_set(next, k, out, n);
    }
    return next;
}

/* Unnamed routes get their derived name, so every object has an id. */
static void name_routes(Config *managed)
{
    for (size_t i = 0; i < managed->n_routes; i++) {
        Portico__Config__V1__Route *r = managed->routes[i];
        if (r->name && *r->name)
            continue;
        char name[512];
        pt_conf_route_name(r, name, sizeof(name));
        pt_obj_set_name(&r->base, name);
    }
}

/* ---- compiling ---- */

/* Turn diag entries into violations; fields under focus_path are renamed
 * to the request's field ("routes[3].path" -> "route.path"). */
static void diag_to_status(const struct pt_diag *diag, const char *focus_path, const char *focus,
                           struct pt_admin_status *st)
{
    size_t fl = focus_path ? strlen(focus_path) : 0;
    for (size_t i = 0; i < diag->nentries; i++) {
        const char *f = diag->entries[i].field;
        char buf[512];
        if (fl && strncmp(f, focus_path, fl) == 0 && (f[fl] == '.' || f[fl] == '\0')) {
            snprintf(buf, sizeof(buf), "%s%s", focus, f + fl);
            f = buf;
        }
        pt_admin_status_add_violation(st, f, "%s", diag->entries[i].message);
    }
    if (!st->code) {
        const char *first = diag->nentries ? diag->entries[0].message : "invalid configuration";
        if (diag->nentries > 1)
            pt_admin_status_set(st, 3, "%s (and %zu more problem(s))", first, diag->nentries - 1);
        else
            pt_admin_status_set(st, 3, "%s", first);
    }
}

/* Pointer: a snapshot of local + managed (bound for nworkers, or not bound
 * at all for 0), or NULL with st filled. */
static struct pt_snapshot *compile(struct pt_control *c, const Config *managed, unsigned nworkers,
                                   uint64_t generation, const char *focus_path, const char *focus,
                                   struct pt_admin_status *st)
{
    Config *merged = pt_managed_merge(pt_conf_config(c->local), managed);
    struct pt_conf *conf = pt_conf_from_message("admin", &merged->base);
    struct pt_diag diag;
    pt_diag_init(&diag);
    struct pt_disc_set *sets = pt_xcalloc(c->ndsets + 1, sizeof(*sets));
    for (size_t i = 0; i < c->ndsets; i++)
        sets[i] = (struct pt_disc_set){c->dsets[i].service, c->dsets[i].v, c->dsets[i].n};
    struct pt_snapshot *s =
        pt_snapshot_compile_with(conf, nworkers, generation, sets, c->ndsets, &diag);
    free(sets);
    if (!s) {
        pt_conf_free(conf);
        diag_to_status(&diag, focus_path, focus, st);
    }
    pt_diag_fini(&diag);
    return s;
}

int pt_control_check(struct pt_control *c, const Config *managed, const char *focus_path,
                     const char *focus, struct pt_admin_status *st)
{
    struct pt_snapshot *s = compile(c, managed, 0, 0, focus_path, focus, st);
    if (!s)
        return -1;
    pt_snap_unref(&s->base);
    return 0;
}

static void publish(struct pt_control *c, struct pt_snapshot *s)
{
    c->generation = s->base.generation;
    if (c->wptrs)
        pt_proxy_publish(c->wptrs, c->nworkers, s);
    if (c->snap)
        pt_snap_unref(&c->snap->base);
    c->snap = s;
    if (c->disc)
        pt_discovery_configure(c->disc, pt_conf_config(s->conf));
    if (c->reflector)
        pt_tc_reflector_configure(c->reflector, pt_conf_config(s->conf));
}

/* ---- store ---- */

/* Reload the managed document from the store. Status: 0 or a PT_ERR_*. */
static int reload_store(struct pt_control *c, char *err, size_t errlen)
{
    Config *m = NULL;
    uint64_t v = 0;
    int rc = pt_store_load(c->store, &m, &v, err, errlen);
    if (rc != 0)
        return rc;
    name_routes(m);
    pt_msg_free(c->managed ? &c->managed->base : NULL);
    c->managed = m;
    c->version = v;
    return 0;
}

/* ---- the local cache of a PostgreSQL store ---- */

#define CACHE_TAG "postgres-cache:"

/* Keep a copy of the document the database holds in the state file, so the
 * gateway can start with its last good configuration while PostgreSQL is
 * unreachable. Best effort: a failure is logged, never fatal. */
static void cache_save(struct pt_control *c)
{
    if (!c->cache)
        return;
    char err[ERR_LEN] = "", tag[64];
    Config *old = NULL;
    uint64_t v = 0;
    snprintf(tag, sizeof(tag), CACHE_TAG "%llu", (unsigned long long)c->version);
    int rc = pt_store_load(c->cache, &old, &v, err, sizeof(err));
    pt_msg_free(old ? &old->base : NULL);
    if (rc == 0) {
        pt_store_file_set_seed(c->cache, tag);
        rc = pt_store_commit(c->cache, NULL, c->managed, v, err, sizeof(err));
    }
    if (rc != 0)
        pt_log_warn("store: cannot update the local cache of the database: %s", err);
}

/* Start from the cache. Status: 0 with c->managed and c->version set, or -1. */
static int cache_load(struct pt_control *c)
{
    char err[ERR_LEN] = "";
    Config *m = NULL;
    uint64_t v = 0;
    if (!c->cache || pt_store_load(c->cache, &m, &v, err, sizeof(err)) != 0 || v == 0) {
        pt_msg_free(m ? &m->base : NULL);
        return -1;
    }
    const char *tag = pt_store_file_seed(c->cache);
    if (strncmp(tag, CACHE_TAG, strlen(CACHE_TAG)) != 0) {
        pt_msg_free(&m->base);
        return -1;
    }
    name_routes(m);
    pt_msg_free(c->managed ? &c->managed->base : NULL);
    c->managed = m;
    c->version = strtoull(tag + strlen(CACHE_TAG), NULL, 10);
    return 0;
}

int pt_control_change(struct pt_control *c, struct pt_edit *e, bool dry_run,
                      struct pt_admin_status *st, uint64_t *version_out)
{
    char err[ERR_LEN];
    pt_control_lock(c);
    int rc = -1;
    if (!dry_run && c->draining) {
        pt_admin_status_set(st, 14, "the gateway is shutting down; changes are refused");
        goto out;
    }
    for (int attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
        Config *next = (Config *)pt_msg_dup(&c->managed->base);
        uint64_t nv = c->version + 1;
        e->focus_path[0] = '\0';
        e->focus = NULL;
        e->noop = false;
        if (e->fn(e, next, nv, st) != 0) {
            pt_msg_free(&next->base);
            goto out;
        }
        if (e->noop) {
            pt_msg_free(&next->base);
            *version_out = c->version;
            rc = 0;
            goto out;
        }
        name_routes(next);
        struct pt_snapshot *s = compile(c, next, dry_run ? 0 : c->nworkers, c->generation + 1,
                                        e->focus_path, e->focus ? e->focus : "", st);
        if (!s) {
            pt_msg_free(&next->base);
            goto out;
        }
        if (dry_run) {
            pt_snap_unref(&s->base);
            pt_msg_free(&next->base);
            *version_out = c->version;
            rc = 0;
            goto out;
        }
        err[0] = '\0';
        int crc = c->store_writable
                      ? pt_store_commit(c->store, c->managed, next, c->version, err, sizeof(err))
                      : PT_ERR_STORE_UNAVAILABLE;
        if (crc == 0) {
            if (err[0])
                pt_log_warn("store: %s", err);
            pt_msg_free(&c->managed->base);
            c->managed = next;
            c->version = nv;
            cache_save(c);
            publish(c, s);
            pt_log_info("configuration version %llu (generation %llu) applied",
                        (unsigned long long)nv, (unsigned long long)c->generation);
            *version_out = nv;
            rc = 0;
            goto out;
        }
        pt_snap_unref(&s->base);
        pt_msg_free(&next->base);
        if (crc != PT_ERR_CONFLICT) {
            pt_admin_status_set(
                st, 14, "configuration store: %s",
                err[0] ? err : (c->store_writable ? "unavailable" : "not writable (see the log)"));
            goto out;
        }
        /* Someone else wrote: catch up, then run the edit again on top. */
        pt_log_info("store: %s; reloading and retrying", err);
        int lrc = reload_store(c, err, sizeof(err));
        if (lrc != 0) {
            pt_admin_status_set(st, 14, "configuration store: %s", err);
            goto out;
        }
    }
    pt_admin_status_set(st, 10, "the configuration kept changing concurrently; try again");
out:
    pt_control_unlock(c);
    return rc;
}

/* Rebuild and publish from the current document (after a reload). Status:
 * 0 or -1 (logged; the running snapshot stays). */
static int recompile(struct pt_control *c, const char *why)
{
    struct pt_admin_status st = {0};
    struct pt_snapshot *s = compile(c, c->managed, c->nworkers, c->generation + 1, NULL, "", &st);
    if (!s) {
        pt_log_error("%s: the configuration does not compile; still serving generation %llu", why,
                     (unsigned long long)c->generation);
        for (size_t i = 0; i < st.nviolations; i++)
            pt_log_error("  %s: %s", st.violations[i].field, st.violations[i].description);
        pt_admin_status_fini(&st);
        return -1;
    }
    publish(c, s);
    pt_log_info("%s: configuration version %llu (generation %llu) applied", why,
                (unsigned long long)c->version, (unsigned long long)c->generation);
    return 0;
}

void pt_control_on_store_change(void *arg)
{
    struct pt_control *c = arg;
    char err[ERR_LEN];
    pt_control_lock(c);
    Config *old = c->managed;
    uint64_t old_version = c->version;
    c->managed = NULL;
    if (reload_store(c, err, sizeof(err)) != 0) {
        pt_log_warn("store changed but cannot be read now (%s); still serving version %llu", err,
                    (unsigned long long)old_version);
        c->managed = old;
        c->version = old_version;
    } else if (c->version == old_version && pt_msg_equal(&old->base, &c->managed->base)) {
        pt_msg_free(&old->base); /* our own change coming back, or nothing new */
        c->store_writable = true;
    } else if (recompile(c, "store change") != 0) {
        /* Another writer stored something this instance cannot run (say, a
         * plugin type it lacks): keep serving what it had. */
        pt_msg_free(&c->managed->base);
        c->managed = old;
        c->version = old_version;
    } else {
        pt_msg_free(&old->base);
        /* The database is readable again and what it holds runs here: an
         * instance that could not store its seed may write now. */
        c->store_writable = true;
        cache_save(c);
    }
    pt_control_unlock(c);
}

/* ---- the instance file ---- */

static struct pt_conf *load_file(const char *path)
{
    struct pt_diag diag;
    pt_diag_init(&diag);
    struct pt_conf *conf = pt_conf_load_file(path, &diag);
    if (conf && pt_conf_validate(conf, &diag) != 0) {
        pt_conf_free(conf);
        conf = NULL;
    }
    if (!conf) {
        fprintf(stderr, "%s", pt_diag_text(&diag));
        pt_log_error("configuration %s rejected: %u error(s)", path, diag.errors);
    }
    pt_diag_fini(&diag);
    return conf;
}

/* The managed document the file asks for, applied over the current one.
 * Pointer: the next document (caller frees), or NULL when nothing differs. */
static Config *seed_next(struct pt_control *c, const Config *file)
{
    struct pt_change *changes;
    size_t nchanges;
    Config *desired = pt_managed_extract(file);
    name_routes(desired);
    Config *next =
        pt_managed_apply(c->managed, desired, false, c->version + 1, &changes, &nchanges);
    pt_msg_free(&desired->base);
    pt_changes_free(changes, nchanges);
    if (nchanges == 0) {
        pt_msg_free(&next->base);
        return NULL;
    }
    return next;
}

/* Store next (already compiled) as the managed document. A store that
 * cannot be written leaves the file's configuration running in memory and
 * admin changes refused. Status: 0, or PT_ERR_CONFLICT: another instance
 * seeded the (PostgreSQL) store first; next is freed and nothing changed -
 * the caller loads the store's document instead. */
static int commit_seed(struct pt_control *c, Config *next, const char *why)
{
    char err[ERR_LEN] = "";
    pt_store_file_set_seed(c->store, c->seed);
    int rc = pt_store_commit(c->store, c->managed, next, c->version, err, sizeof(err));
    if (rc == PT_ERR_CONFLICT) {
        pt_log_warn("%s: another instance stored its configuration first (%s); the "
                    "configuration file's services, routes, rate-limit rules, plugins and API "
                    "keys are ignored",
                    why, err);
        pt_msg_free(&next->base);
        return rc;
    }
    if (rc != 0) {
        pt_log_warn("%s: cannot write the %s store (%s); admin changes will be refused", why,
                    pt_store_kind(c->store), err);
        c->store_writable = false;
    } else {
        pt_log_info("%s: the configuration file's objects stored as version %llu", why,
                    (unsigned long long)(c->version + 1));
    }
    c->version++;
    pt_msg_free(&c->managed->base);
    c->managed = next;
    if (rc == 0)
        cache_save(c);
    return 0;
}

static int open_store(struct pt_control *c, const char *override)
{
    const Config *cfg = pt_conf_config(c->local);
    const char *kind = override                                                  ? override
                       : (cfg->admin && cfg->admin->store && *cfg->admin->store) ? cfg->admin->store
                                                                                 : "file";
    char err[ERR_LEN] = "";
    char *path;
    if (cfg->admin && cfg->admin->state_file && *cfg->admin->state_file) {
        path = pt_xstrdup(cfg->admin->state_file);
    } else {
        size_t n = strlen(c->config_path) + 8;
        path = pt_xmalloc(n);
        snprintf(path, n, "%s.state", c->config_path);
    }
    if (strcmp(kind, "file") == 0) {
        c->store = pt_store_file_open(path, err, sizeof(err));
    } else {
        /* The state file caches the database's document (see cache_save). */
        c->cache = pt_store_file_open(path, err, sizeof(err));
        c->store = pt_store_pg_open(kind, c->base, pt_control_on_store_change, c, err, sizeof(err));
    }
    free(path);
    if (!c->store) {
        pt_log_error("configuration store: %s", err);
        return -1;
    }
    return 0;
}

/* Load the managed document at start; *seed gets the document the file
 * seeds (to be committed once it compiles), or NULL. Status: 0 or -1. */
static int load_managed(struct pt_control *c, Config **seed)
{
    char err[ERR_LEN] = "";
    const Config *file = pt_conf_config(c->local);
    *seed = NULL;
    int rc = reload_store(c, err, sizeof(err));
    if (rc == PT_ERR_STORE_UNAVAILABLE && c->cache && cache_load(c) == 0) {
        pt_log_warn("configuration store (%s) unavailable: %s; serving the cached configuration "
                    "(version %llu) until it returns; admin changes are refused meanwhile",
                    pt_store_kind(c->store), err, (unsigned long long)c->version);
        return 0;
    }
    if (rc != 0) {
        pt_log_error("configuration store (%s): %s", pt_store_kind(c->store), err);
        return -1;
    }
    if (strcmp(pt_store_kind(c->store), "file") == 0) {
        if (c->version == 0 || strcmp(pt_store_file_seed(c->store), c->seed) != 0) {
            *seed = seed_next(c, file);
            if (!*seed && c->version > 0)
                pt_store_file_set_seed(c->store, c->seed); /* saved with the next commit */
            return 0;
        }
        pt_log_info("managed configuration: version %llu from the state file",
                    (unsigned long long)c->version);
        return 0;
    }
    if (c->version == 0) {
        *seed = seed_next(c, file);
        return 0;
    }
    cache_save(c);
    Config *fm = pt_managed_extract(file);
    bool file_has = false;
    for (int k = 0; k < PT_KIND_COUNT; k++)
        file_has = file_has || pt_kind_count(fm, (enum pt_kind)k) > 0;
    pt_msg_free(&fm->base);
    if (file_has)
        pt_log_warn("the configuration file's services, routes, rate-limit rules, plugins and "
                    "API keys are ignored: the database (version %llu) holds them",
                    (unsigned long long)c->version);
    return 0;
}

static unsigned worker_count(const Config *cfg, unsigned flag)
{
    if (flag)
        return flag;
    if (cfg->workers)
        return cfg->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)(n > MAX_WORKERS ? MAX_WORKERS : n) : 1;
}

struct pt_control *pt_control_open(const struct pt_control_opts *o)
{
    struct pt_control *c = pt_xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    clock_gettime(CLOCK_MONOTONIC, &c->started);
    c->config_path = pt_xstrdup(o->config_path);
    c->base = o->base;
    c->store_writable = true;
    Config *seed = NULL;
    c->local = load_file(o->config_path);
    if (!c->local)
        goto fail;
    c->seed = pt_managed_hash(pt_conf_config(c->local));
    if (open_store(c, o->store_override) != 0 || load_managed(c, &seed) != 0)
        goto fail;
    c->nworkers = worker_count(pt_conf_config(c->local), o->workers_flag);
    struct pt_admin_status st = {0};
    struct pt_snapshot *s = compile(c, seed ? seed : c->managed, c->nworkers, 1, NULL, "", &st);
    if (!s) {
        pt_log_error("configuration %s rejected:", o->config_path);
        for (size_t i = 0; i < st.nviolations; i++)
            fprintf(stderr, "%s: %s: %s\n", o->config_path, st.violations[i].field,
                    st.violations[i].description);
        pt_admin_status_fini(&st);
        pt_msg_free(seed ? &seed->base : NULL);
        goto fail;
    }
    if (seed &&
        commit_seed(c, seed, c->version == 0 ? "first start" : "configuration file changed") != 0) {
        /* Lost the race to seed an empty database: run what it holds. */
        char err[ERR_LEN] = "";
        struct pt_snapshot *won = NULL;
        if (reload_store(c, err, sizeof(err)) != 0)
            pt_log_error("configuration store (%s): %s", pt_store_kind(c->store), err);
        else
            won = compile(c, c->managed, c->nworkers, 1, NULL, "", &st);
        pt_snap_unref(&s->base);
        if (!won) {
            for (size_t i = 0; i < st.nviolations; i++)
                pt_log_error("the stored configuration: %s: %s", st.violations[i].field,
                             st.violations[i].description);
            pt_admin_status_fini(&st);
            goto fail;
        }
        s = won;
        pt_log_info("managed configuration: version %llu from the database",
                    (unsigned long long)c->version);
    }
    publish(c, s);
    return c;
fail:
    pt_control_close(c);
    return NULL;
}

int pt_control_reload_file(struct pt_control *c)
{
    struct pt_conf *conf = load_file(c->config_path);
    if (!conf) {
        pt_log_error("reload failed; still serving configuration generation %llu",
                     (unsigned long long)c->generation);
        return PT_ERR_CONFIG;
    }
    pt_control_lock(c);
    const Config *cfg = pt_conf_config(conf);
    if (cfg->workers && cfg->workers != c->nworkers)
        pt_log_warn("workers: %u configured, %u running; a restart applies the change",
                    cfg->workers, c->nworkers);
    char *seed = pt_managed_hash(cfg);
    Config *next = NULL;
    bool reseed = strcmp(pt_store_kind(c->store), "file") == 0 && strcmp(seed, c->seed) != 0;
    if (reseed)
        next = seed_next(c, cfg);
    struct pt_conf *old_local = c->local;
    c->local = conf;
    struct pt_admin_status st = {0};
    struct pt_snapshot *s =
        compile(c, next ? next : c->managed, c->nworkers, c->generation + 1, NULL, "", &st);
    if (!s) {
        c->local = old_local;
        pt_conf_free(conf);
        pt_msg_free(next ? &next->base : NULL);
        free(seed);
        pt_log_error("reload: %s does not compile; still serving generation %llu", c->config_path,
                     (unsigned long long)c->generation);
        for (size_t i = 0; i < st.nviolations; i++)
            pt_log_error("  %s: %s", st.violations[i].field, st.violations[i].description);
        pt_admin_status_fini(&st);
        pt_control_unlock(c);
        return PT_ERR_CONFIG;
    }
    pt_conf_free(old_local);
    free(c->seed);
    c->seed = seed;
    if (next)
        (void)commit_seed(c, next, "configuration file changed"); /* file store: no conflicts */
    else if (reseed)
        pt_store_file_set_seed(c->store, c->seed);
    publish(c, s);
    pt_log_info("configuration generation %llu loaded from %s (managed version %llu)",
                (unsigned long long)c->generation, c->config_path, (unsigned long long)c->version);
    pt_control_unlock(c);
    return 0;
}

unsigned pt_control_nworkers(const struct pt_control *c)
{
    return c->nworkers;
}

struct pt_snapshot *pt_control_snapshot_ref(struct pt_control *c)
{
    pt_control_lock(c);
    struct pt_snapshot *s = c->snap;
    pt_snap_ref(&s->base);
    pt_control_unlock(c);
    return s;
}

/* ---- API-key usage: batches to the store ---- */

/* Write what workers recorded since the last flush: one store call for the
 * batch (postgres: one UPDATE; file: kept in memory only, see store.h). A
 * failed write keeps the batch for the next round. Main thread. */
static void flush_usage(struct pt_control *c)
{
    struct pt_auth_usage_batch b;
    if (!pt_auth_usage_collect(&b)) {
        pt_auth_usage_batch_fini(&b);
        return;
    }
    struct pt_store_key_use *v = pt_xcalloc(b.n, sizeof(*v));
    for (size_t i = 0; i < b.n; i++)
        v[i] = (struct pt_store_key_use){b.v[i].name, b.v[i].used_ns};
    char err[ERR_LEN] = "";
    pt_control_lock(c);
    int rc = c->store ? pt_store_record_key_use(c->store, v, b.n, err, sizeof(err)) : 0;
    pt_control_unlock(c);
    if (rc == 0)
        pt_auth_usage_flushed(&b);
    else
        pt_log_warn("api keys: last_used_at of %zu key(s) not stored (retried later): %s", b.n,
                    err);
    free(v);
    pt_auth_usage_batch_fini(&b);
}

static void arm_usage_timer(struct pt_control *c)
{
    pt_control_lock(c);
    uint32_t ms =
        c->snap ? pt_auth_plan_usage_flush_ms(c->snap->auth) : PT_AUTH_DEFAULT_USAGE_FLUSH_MS;
    pt_control_unlock(c);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(c->usage_timer, &tv);
}

static void on_usage_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pt_control *c = arg;
    flush_usage(c);
    arm_usage_timer(c);
}

void pt_control_attach(struct pt_control *c, struct pt_worker **wptrs)
{
    if (c->base && !c->usage_timer) {
        c->usage_timer = evtimer_new(c->base, on_usage_timer, c);
        if (c->usage_timer)
            arm_usage_timer(c);
    }
    pt_control_lock(c);
    c->wptrs = wptrs;
    pt_proxy_publish(wptrs, c->nworkers, c->snap);
    /* Discovery starts with the workers: a DNS server that is down delays
     * nothing (discovered services answer 503 until they have instances). */
    c->disc = pt_discovery_new(on_discovered, c);
    if (pt_discovery_start(c->disc) != 0)
        pt_log_error("discovery: not running; discovered services stay without instances");
    pt_discovery_configure(c->disc, pt_conf_config(c->snap->conf));
    /* Descriptors by reflection: fetched on their own thread, published to
     * the process-wide registry the transcoder reads (transcode/reflect.h). */
    char err[256];
    c->reflector = pt_tc_reflector_start(pt_tc_reflect_registry_default(), NULL, err, sizeof(err));
    if (!c->reflector)
        pt_log_error("reflection: not running (%s); services with reflection get no descriptors",
                     err);
    else
        pt_tc_reflector_configure(c->reflector, pt_conf_config(c->snap->conf));
    pt_control_unlock(c);
}

/* ---- discovered instances ---- */

static const Portico__Config__V1__Service *managed_service(const struct pt_control *c,
                                                           const char *name)
{
    ssize_t at = pt_kind_find(c->managed, PT_KIND_SERVICE, name);
    return at < 0 ? NULL : c->managed->services[at];
}

/* The discovery thread (or a registration call) found a new instance set:
 * recompile with it and publish. Neither the managed version nor the store
 * changes: discovered instances are runtime state, not configuration. */
static void on_discovered(void *arg, const char *service, const struct pt_disc_instance *v,
                          size_t n)
{
    struct pt_control *c = arg;
    pt_control_lock(c);
    const Portico__Config__V1__Service *svc = managed_service(c, service);
    struct pt_ctl_disc *set = NULL;
    for (size_t i = 0; i < c->ndsets && !set; i++)
        if (strcmp(c->dsets[i].service, service) == 0)
            set = &c->dsets[i];
    /* No set compiles like an empty one: nothing to do for an empty set
     * either. */
    if (c->draining || (!set && (!svc || n == 0)) ||
        (set && pt_disc_instances_equal(set->v, set->n, v, n))) {
        pt_control_unlock(c);
        return;
    }
    if (!set) {
        c->dsets = pt_xrealloc(c->dsets, (c->ndsets + 1) * sizeof(*c->dsets));
        set = &c->dsets[c->ndsets++];
        set->service = pt_xstrdup(service);
        set->v = NULL;
        set->n = 0;
    }
    struct pt_disc_instance *old = set->v;
    size_t old_n = set->n;
    set->v = pt_xcalloc(n + 1, sizeof(*v));
    memcpy(set->v, v, n * sizeof(*v));
    set->n = n;
    if (!svc || !svc->discovery) {
        free(old); /* kept for when the service comes (back); nothing to compile */
        pt_control_unlock(c);
        return;
    }
    char why[300];
    snprintf(why, sizeof(why), "discovery: service %s now has %zu instance(s)", service, n);
    if (recompile(c, why) != 0) {
        free(set->v);
        set->v = old;
        set->n = old_n;
    } else {
        free(old);
    }
    pt_control_unlock(c);
}

struct pt_discovery *pt_control_discovery(struct pt_control *c)
{
    return c->disc;
}

void pt_control_set_draining(struct pt_control *c)
{
    pt_control_lock(c);
    c->draining = true;
    pt_control_unlock(c);
}

const Portico__Config__V1__Admin *pt_control_admin_conf(const struct pt_control *c)
{
    return pt_conf_config(c->local)->admin;
}

const char *pt_control_config_path(const struct pt_control *c)
{
    return c->config_path;
}

void pt_control_lock(struct pt_control *c)
{
    pthread_mutex_lock(&c->lock);
}

void pt_control_unlock(struct pt_control *c)
{
    pthread_mutex_unlock(&c->lock);
}

void pt_control_close(struct pt_control *c)
{
    if (!c)
        return;
    if (c->usage_timer) {
        event_free(c->usage_timer);
        c->usage_timer = NULL;
        flush_usage(c); /* what the workers recorded since the last round */
    }
    pt_discovery_free(c->disc); /* its thread may be waiting for the lock */
    c->disc = NULL;
    pt_tc_reflector_stop(c->reflector);
    c->reflector = NULL;
    for (size_t i = 0; i < c->ndsets; i++) {
        free(c->dsets[i].service);
        free(c->dsets[i].v);
    }
    free(c->dsets);
    if (c->snap)
        pt_snap_unref(&c->snap->base);
    pt_store_close(c->store);
    pt_store_close(c->cache);
    pt_msg_free(c->managed ? &c->managed->base : NULL);
    pt_conf_free(c->local);
    free(c->seed);
    free(c->config_path);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
