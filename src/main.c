/*
 * portico - the process: flags, configuration, threads, signals.
 *
 *   portico [--config FILE] [--workers N] [--log-level LEVEL] [--store URI]
 *   portico --check-config FILE
 *   portico [--config FILE] [--store URI] --migrate
 *
 * The main thread opens the control plane (admin/control.h: the instance
 * file plus the managed configuration from the store), starts the workers,
 * then runs its event loop: signals, and the PostgreSQL store's change
 * watch. SIGHUP reloads the file into a new snapshot (a bad file is
 * reported and changes nothing) and reopens the access log; SIGTERM/SIGINT
 * drain (stop accepting, GOAWAY / Connection: close, let in-flight requests
 * finish up to drain_timeout_ms) and exit 0.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/control.h"
#include "admin/server.h"
#include "conf/conf.h"
#include "conf/snapshot.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/time.h"
#include "core/worker.h"
#include "auth/fetch.h"
#include "upstream/hcheck.h"
#include "observe/access_log.h"
#include "proxy/proxy.h"
#include "store/store.h"

#define DEFAULT_CONFIG "config/portico.yaml"
#define MAX_WORKERS 1024

struct app {
    const char *config_path;
    const char *store_uri; /* --store: overrides admin.store */
    unsigned nworkers;
    struct pt_worker *workers;
    struct pt_worker **wptrs;
    struct pt_control *control;
    struct pt_access_log *access_log;
    char *access_log_path;
    struct event_base *base;
    struct event *drain_timer;
    uint64_t drain_deadline_ns;
    bool draining;
    int exit_code;
    struct pt_admin_server *admin;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: portico [--config FILE] [--workers N] [--log-level error|warn|info|debug]\n"
               "               [--store file|postgres://...]\n"
               "       portico --check-config FILE\n"
               "       portico [--config FILE] [--store URI] --migrate\n"
               "       portico --version\n");
}

/* Pointer: a compiled snapshot, or NULL after printing every error
 * (--check-config: the file alone, nothing bound, no store). */
static struct pt_snapshot *load(const char *path)
{
    struct pt_diag diag;
    pt_diag_init(&diag);
    struct pt_snapshot *s = NULL;
    struct pt_conf *conf = pt_conf_load_file(path, &diag);
    if (conf) {
        s = pt_snapshot_compile(conf, 0, 1, &diag);
        if (!s)
            pt_conf_free(conf);
    }
    if (!s) {
        fprintf(stderr, "%s", pt_diag_text(&diag));
        pt_log_error("configuration %s rejected: %u error(s)", path, diag.errors);
    }
    pt_diag_fini(&diag);
    return s;
}

static void reload(struct app *app)
{
    if (pt_control_reload_file(app->control) != 0)
        return;
    struct pt_snapshot *s = pt_control_snapshot_ref(app->control);
    if (app->access_log) {
        const char *dest = s->access_log_path;
        if (strcmp(dest, app->access_log_path) != 0) {
            free(app->access_log_path);
            app->access_log_path = pt_xstrdup(dest);
        }
        if (pt_access_log_reopen(app->access_log, app->access_log_path) != 0)
            pt_log_warn("access log: cannot reopen %s", app->access_log_path);
    }
    pt_snap_unref(&s->base);
}

static void stop_workers(struct app *app)
{
    pt_proxy_shutdown(app->wptrs, app->nworkers);
    event_base_loopbreak(app->base);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct app *app = arg;
    uint32_t open = 0;
    for (unsigned i = 0; i < app->nworkers; i++)
        open += pt_proxy_connections(&app->workers[i]);
    if (open == 0) {
        pt_log_info("drained; exiting");
        stop_workers(app);
        return;
    }
    if (pt_time_mono_ns() >= app->drain_deadline_ns) {
        pt_log_warn("drain timeout: closing %u connection(s) still open", open);
        stop_workers(app);
        return;
    }
    struct timeval tv = {0, 50 * 1000};
    event_add(app->drain_timer, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct app *app = arg;
    if (sig == SIGHUP) {
        if (!app->draining)
            reload(app);
        return;
    }
    if (app->draining) {
        pt_log_warn("second termination signal: exiting now");
        stop_workers(app);
        return;
    }
    app->draining = true;
    pt_control_set_draining(app->control);
    struct pt_snapshot *snap = pt_control_snapshot_ref(app->control);
    uint32_t drain_ms = snap->drain_timeout_ms;
    pt_snap_unref(&snap->base);
    pt_log_info("draining (up to %u ms)", drain_ms);
    app->drain_deadline_ns = pt_time_mono_ns() + (uint64_t)drain_ms * 1000000ull;
    pt_proxy_drain(app->wptrs, app->nworkers);
    pt_admin_server_set_serving(app->admin, false); /* admin: health says NOT_SERVING */
    app->drain_timer = event_new(app->base, -1, 0, on_drain_tick, app);
    struct timeval tv = {0, 50 * 1000};
    event_add(app->drain_timer, &tv);
}

/* ---- admin: start the admin gRPC server (src/admin) ---- */

/* Status: 0 (started, or disabled with address "off"), or -1 after logging
 * why it could not start. */
static int start_admin(struct app *app)
{
    const Portico__Config__V1__Admin *a = pt_control_admin_conf(app->control);
    struct pt_admin_opts o = {.address = "127.0.0.1:9901"};
    if (a && a->address && a->address[0])
        o.address = a->address;
    if (strcmp(o.address, "off") == 0) {
        pt_log_info("admin server disabled (admin.address: off)");
        return 0;
    }
    if (a && a->token && a->token[0])
        o.token = a->token;
    if (a && a->token_env && a->token_env[0]) {
        const char *t = getenv(a->token_env);
        if (!t || !t[0]) {
            pt_log_error("admin: environment variable %s (admin.token_env) is not set or empty",
                         a->token_env);
            return -1;
        }
        o.token = t;
    }
    if (a && a->tls) {
        o.cert_file = a->tls->cert_file;
        o.key_file = a->tls->key_file;
        o.client_ca_file = a->tls->client_ca_file;
    }
    size_t n;
    const struct pt_admin_method *methods = pt_admin_service_methods(&n);
    char err[512];
    app->admin = pt_admin_server_start(&o, methods, n, app->control, err, sizeof(err));
    if (!app->admin) {
        pt_log_error("%s", err);
        return -1;
    }
    pt_log_info("admin listening on %s (%s%s%s)", o.address,
                o.cert_file && o.cert_file[0] ? "tls" : "cleartext",
                o.client_ca_file && o.client_ca_file[0] ? ", client certificates required" : "",
                o.token ? ", bearer token required" : "");
    return 0;
}
/* ---- end admin ---- */

static int check_config(const char *path)
{
    struct pt_snapshot *s = load(path);
    if (!s)
        return 1;
    printf("%s: configuration is valid (%zu listener(s), %zu service(s), %zu route(s))\n", path,
           s->nlisteners, s->nservices, s->nroutes);
    pt_snap_unref(&s->base);
    return 0;
}

/* --- store: --migrate (begin) --- */
/* Apply the PostgreSQL store's migrations to --store URI, else to the
 * configuration file's admin.store. Exit status: 0 or 1. */
static int migrate(const struct app *app)
{
    const char *uri = app->store_uri;
    struct pt_conf *conf = NULL;
    if (!uri) {
        struct pt_diag diag;
        pt_diag_init(&diag);
        conf = pt_conf_load_file(app->config_path, &diag);
        if (!conf) {
            fprintf(stderr, "%s", pt_diag_text(&diag));
            pt_diag_fini(&diag);
            return 1;
        }
        pt_diag_fini(&diag);
        const Portico__Config__V1__Config *cfg = pt_conf_config(conf);
        uri = cfg->admin && cfg->admin->store ? cfg->admin->store : "";
        if (!*uri || strcmp(uri, "file") == 0) {
            fprintf(stderr,
                    "portico: %s: admin.store is not a PostgreSQL URI; nothing to migrate "
                    "(give one with --store)\n",
                    app->config_path);
            pt_conf_free(conf);
            return 1;
        }
    }
    char err[512] = "";
    int rc = pt_store_pg_migrate(uri, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "portico: migration failed: %s\n", err);
    pt_conf_free(conf);
    return rc == 0 ? 0 : 1;
}
/* --- store: --migrate (end) --- */

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, 'k'},
        {"migrate", no_argument, NULL, 'm'},
        {"store", required_argument, NULL, 's'},
        {"workers", required_argument, NULL, 'w'},
        {"log-level", required_argument, NULL, 'l'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct app app = {.config_path = DEFAULT_CONFIG};
    const char *check = NULL;
    bool do_migrate = false;
    unsigned workers_flag = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:k:ms:w:l:vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            app.config_path = optarg;
            break;
        case 'k':
            check = optarg;
            break;
        case 'm':
            do_migrate = true;
            break;
        case 's':
            app.store_uri = optarg;
            break;
        case 'w': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > MAX_WORKERS) {
                fprintf(stderr, "portico: --workers must be 1..%d\n", MAX_WORKERS);
                return 2;
            }
            workers_flag = (unsigned)n;
            break;
        }
        case 'l':
            if (strcmp(optarg, "error") == 0)
                pt_log_set_level(PT_LOG_ERROR);
            else if (strcmp(optarg, "warn") == 0)
                pt_log_set_level(PT_LOG_WARN);
            else if (strcmp(optarg, "info") == 0)
                pt_log_set_level(PT_LOG_INFO);
            else if (strcmp(optarg, "debug") == 0)
                pt_log_set_level(PT_LOG_DEBUG);
            else {
                fprintf(stderr, "portico: unknown log level \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'v':
            printf("portico %s\n", PORTICO_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (do_migrate)
        return migrate(&app);
    signal(SIGPIPE, SIG_IGN);
    /* Block the control signals before any thread exists: threads inherit
     * the mask, so only the main thread (which unblocks them once its
     * handlers are installed) ever receives them, and a SIGHUP that
     * arrives during start-up waits instead of killing the process. */
    sigset_t ctl;
    sigemptyset(&ctl);
    sigaddset(&ctl, SIGHUP);
    sigaddset(&ctl, SIGTERM);
    sigaddset(&ctl, SIGINT);
    pthread_sigmask(SIG_BLOCK, &ctl, NULL);
    if (pt_proxy_global_init() != 0) {
        pt_log_error("filter registration failed");
        return 1;
    }
    if (check)
        return check_config(check);

    app.base = event_base_new();
    if (!app.base)
        return 1;
    /* auth: the thread that fetches JWKS documents and asks introspection
     * endpoints; started before the first snapshot so its JWKS sources
     * fetch at once (cheap when unused: one idle loop). */
    if (pt_auth_fetch_start_thread(NULL) != 0) {
        pt_log_error("cannot start the auth fetch thread");
        event_base_free(app.base);
        return 1;
    }
    struct pt_control_opts copts = {
        .config_path = app.config_path,
        .store_override = app.store_uri,
        .workers_flag = workers_flag,
        .base = app.base,
    };
    app.control = pt_control_open(&copts);
    if (!app.control) {
        pt_auth_fetch_stop_thread();
        event_base_free(app.base);
        return 1;
    }
    app.nworkers = pt_control_nworkers(app.control);
    struct pt_snapshot *snap = pt_control_snapshot_ref(app.control);

    if (snap->access_log_enabled) {
        struct pt_diag diag;
        pt_diag_init(&diag);
        app.access_log_path = pt_xstrdup(snap->access_log_path);
        app.access_log = pt_access_log_start(app.access_log_path, app.nworkers, 0, &diag);
        if (!app.access_log) {
            fprintf(stderr, "%s", pt_diag_text(&diag));
            pt_diag_fini(&diag);
            pt_snap_unref(&snap->base);
            pt_control_close(app.control);
            event_base_free(app.base);
            free(app.access_log_path);
            return 1;
        }
        pt_diag_fini(&diag);
    }

    app.workers = pt_xcalloc(app.nworkers, sizeof(*app.workers));
    app.wptrs = pt_xcalloc(app.nworkers, sizeof(*app.wptrs));
    for (unsigned i = 0; i < app.nworkers; i++) {
        app.wptrs[i] = &app.workers[i];
        if (pt_worker_init(&app.workers[i], i) != 0) {
            pt_log_error("worker %u: cannot create its event loop", i);
            return 1;
        }
        pt_proxy_worker_init(&app.workers[i], app.access_log);
    }
    pt_control_attach(app.control, app.wptrs);
    if (pt_hcheck_start() != 0) { /* health: the active-check thread */
        pt_log_error("cannot start the health-check thread");
        return 1;
    }
    for (unsigned i = 0; i < app.nworkers; i++) {
        if (pt_worker_start(&app.workers[i]) != 0) {
            pt_log_error("worker %u: cannot start its thread", i);
            return 1;
        }
    }

    /* admin: started while the control signals are still blocked, so that
     * its thread and grpc's own threads inherit the mask. */
    struct event *sigs[3] = {NULL, NULL, NULL};
    if (start_admin(&app) != 0) {
        pt_log_error("refusing to start: the admin server could not start");
        pt_control_set_draining(app.control); /* no more publishing (discovery) */
        pt_proxy_shutdown(app.wptrs, app.nworkers);
        pt_snap_unref(&snap->base);
        app.exit_code = 1;
    } else {
        int signos[3] = {SIGHUP, SIGTERM, SIGINT};
        for (int i = 0; i < 3; i++) {
            sigs[i] = evsignal_new(app.base, signos[i], on_signal, &app);
            event_add(sigs[i], NULL);
        }
        pthread_sigmask(SIG_UNBLOCK, &ctl, NULL);
        for (size_t i = 0; i < snap->nlisteners; i++)
            pt_log_info("listening on %s (%s%s%s%s)", snap->listeners[i].address,
                        snap->listeners[i].http1 ? "http1 " : "",
                        snap->listeners[i].h2c ? "h2c " : "", snap->listeners[i].h2 ? "h2 " : "",
                        snap->listeners[i].ssl_ctx ? "tls" : "cleartext");
        pt_snap_unref(&snap->base);
        pt_log_info("portico %s ready: %u worker(s), configuration %s", PORTICO_VERSION,
                    app.nworkers, app.config_path);

        event_base_dispatch(app.base);
    }

    for (unsigned i = 0; i < app.nworkers; i++)
        pt_worker_join(&app.workers[i]);
    pt_hcheck_stop();                /* health */
    pt_auth_fetch_stop_thread();     /* auth: after the workers, before their fini */
    pt_admin_server_stop(app.admin); /* admin */
    for (unsigned i = 0; i < app.nworkers; i++) {
        pt_proxy_worker_fini(&app.workers[i]);
        pt_worker_fini(&app.workers[i]);
    }
    pt_control_close(app.control);
    pt_access_log_stop(app.access_log);
    for (int i = 0; i < 3; i++)
        if (sigs[i])
            event_free(sigs[i]);
    if (app.drain_timer)
        event_free(app.drain_timer);
    event_base_free(app.base);
    free(app.workers);
    free(app.wptrs);
    free(app.access_log_path);
    return app.exit_code;
}
