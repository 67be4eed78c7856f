/*
 * portico - the process: flags, configuration, threads, signals.
 *
 *   portico [--config FILE] [--workers N] [--log-level LEVEL]
 *   portico --check-config FILE
 *
 * The main thread loads and compiles the configuration, starts the
 * workers, then waits for signals: SIGHUP reloads the file into a new
 * snapshot (a bad file is reported and changes nothing) and reopens the
 * access log; SIGTERM/SIGINT drain (stop accepting, GOAWAY / Connection:
 * close, let in-flight requests finish up to drain_timeout_ms) and exit 0.
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

#include "admin/server.h"
#include "conf/conf.h"
#include "conf/snapshot.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/time.h"
#include "core/worker.h"
#include "observe/access_log.h"
#include "proxy/proxy.h"

#define DEFAULT_CONFIG "config/portico.yaml"
#define MAX_WORKERS 1024

struct app {
    const char *config_path;
    unsigned nworkers;
    struct pt_worker *workers;
    struct pt_worker **wptrs;
    struct pt_snapshot *snap; /* the main thread's reference to the current snapshot */
    uint64_t generation;
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
               "       portico --check-config FILE\n"
               "       portico --version\n");
}

/* Pointer: a compiled snapshot, or NULL after printing every error. */
static struct pt_snapshot *load(const char *path, unsigned nworkers, uint64_t generation)
{
    struct pt_diag diag;
    pt_diag_init(&diag);
    struct pt_snapshot *s = NULL;
    struct pt_conf *conf = pt_conf_load_file(path, &diag);
    if (conf) {
        s = pt_snapshot_compile(conf, nworkers, generation, &diag);
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

static unsigned worker_count(const struct pt_snapshot *s, unsigned flag)
{
    if (flag)
        return flag;
    const Portico__Config__V1__Config *cfg = pt_conf_config(s->conf);
    if (cfg->workers)
        return cfg->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)(n > MAX_WORKERS ? MAX_WORKERS : n) : 1;
}

static void reload(struct app *app)
{
    struct pt_snapshot *s = load(app->config_path, app->nworkers, app->generation + 1);
    if (!s) {
        pt_log_error("reload failed; still serving configuration generation %llu",
                     (unsigned long long)app->generation);
        return;
    }
    const Portico__Config__V1__Config *cfg = pt_conf_config(s->conf);
    if (cfg->workers && cfg->workers != app->nworkers)
        pt_log_warn("workers: %u configured, %u running; a restart applies the change",
                    cfg->workers, app->nworkers);
    app->generation++;
    pt_proxy_publish(app->wptrs, app->nworkers, s);
    pt_snap_unref(&app->snap->base);
    app->snap = s;
    if (app->access_log) {
        const char *dest = s->access_log_path;
        if (strcmp(dest, app->access_log_path) != 0) {
            free(app->access_log_path);
            app->access_log_path = pt_xstrdup(dest);
        }
        if (pt_access_log_reopen(app->access_log, app->access_log_path) != 0)
            pt_log_warn("access log: cannot reopen %s", app->access_log_path);
    }
    pt_log_info("configuration generation %llu loaded from %s", (unsigned long long)app->generation,
                app->config_path);
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
    pt_log_info("draining (up to %u ms)", app->snap->drain_timeout_ms);
    app->drain_deadline_ns = pt_time_mono_ns() + (uint64_t)app->snap->drain_timeout_ms * 1000000ull;
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
    const Portico__Config__V1__Config *cfg = pt_conf_config(app->snap->conf);
    const Portico__Config__V1__Admin *a = cfg->admin;
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
    /* Admin service methods: pt_admin_service_methods() */
    static const struct pt_admin_method *methods = NULL;
    size_t n = 0;
    char err[512];
    app->admin = pt_admin_server_start(&o, methods, n, NULL, err, sizeof(err));
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
    struct pt_snapshot *s = load(path, 0, 1);
    if (!s)
        return 1;
    printf("%s: configuration is valid (%zu listener(s), %zu service(s), %zu route(s))\n", path,
           s->nlisteners, s->nservices, s->nroutes);
    pt_snap_unref(&s->base);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, 'k'},
        {"workers", required_argument, NULL, 'w'},
        {"log-level", required_argument, NULL, 'l'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct app app = {.config_path = DEFAULT_CONFIG};
    const char *check = NULL;
    unsigned workers_flag = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:k:w:l:vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            app.config_path = optarg;
            break;
        case 'k':
            check = optarg;
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

    /* Compile once without binding to learn the worker count, then for real. */
    struct pt_snapshot *probe = load(app.config_path, 0, 0);
    if (!probe)
        return 1;
    app.nworkers = worker_count(probe, workers_flag);
    pt_snap_unref(&probe->base);
    app.generation = 1;
    app.snap = load(app.config_path, app.nworkers, app.generation);
    if (!app.snap)
        return 1;

    if (app.snap->access_log_enabled) {
        struct pt_diag diag;
        pt_diag_init(&diag);
        app.access_log_path = pt_xstrdup(app.snap->access_log_path);
        app.access_log = pt_access_log_start(app.access_log_path, app.nworkers, 0, &diag);
        if (!app.access_log) {
            fprintf(stderr, "%s", pt_diag_text(&diag));
            pt_diag_fini(&diag);
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
    pt_proxy_publish(app.wptrs, app.nworkers, app.snap);
    for (unsigned i = 0; i < app.nworkers; i++) {
        if (pt_worker_start(&app.workers[i]) != 0) {
            pt_log_error("worker %u: cannot start its thread", i);
            return 1;
        }
    }

    /* admin: started while the control signals are still blocked, so that
     * its thread and grpc's own threads inherit the mask. */
    if (start_admin(&app) != 0) {
        pt_log_error("refusing to start: the admin server could not start");
        pt_proxy_shutdown(app.wptrs, app.nworkers);
        for (unsigned i = 0; i < app.nworkers; i++)
            pt_worker_join(&app.workers[i]);
        return 1;
    }

    app.base = event_base_new();
    if (!app.base)
        return 1;
    struct event *sigs[3];
    int signos[3] = {SIGHUP, SIGTERM, SIGINT};
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(app.base, signos[i], on_signal, &app);
        event_add(sigs[i], NULL);
    }
    pthread_sigmask(SIG_UNBLOCK, &ctl, NULL);
    for (size_t i = 0; i < app.snap->nlisteners; i++)
        pt_log_info("listening on %s (%s%s%s%s)", app.snap->listeners[i].address,
                    app.snap->listeners[i].http1 ? "http1 " : "",
                    app.snap->listeners[i].h2c ? "h2c " : "",
                    app.snap->listeners[i].h2 ? "h2 " : "",
                    app.snap->listeners[i].ssl_ctx ? "tls" : "cleartext");
    pt_log_info("portico %s ready: %u worker(s), configuration %s", PORTICO_VERSION, app.nworkers,
                app.config_path);

    event_base_dispatch(app.base);

    for (unsigned i = 0; i < app.nworkers; i++)
        pt_worker_join(&app.workers[i]);
    pt_admin_server_stop(app.admin); /* admin */
    for (unsigned i = 0; i < app.nworkers; i++) {
        pt_proxy_worker_fini(&app.workers[i]);
        pt_worker_fini(&app.workers[i]);
    }
    pt_snap_unref(&app.snap->base);
    pt_access_log_stop(app.access_log);
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    if (app.drain_timer)
        event_free(app.drain_timer);
    event_base_free(app.base);
    free(app.workers);
    free(app.wptrs);
    free(app.access_log_path);
    return app.exit_code;
}
