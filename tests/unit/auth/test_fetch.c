/*
 * The network side of authentication against real local servers: the auth
 * fetch thread (auth/fetch.h), JWKS sources over HTTP (auth/jwks_source.h)
 * and the introspection client (auth/introspect.h). authsrv.py runs on
 * free ports of 127.0.0.1 (plain, TLS with a good certificate, TLS with a
 * certificate for another host); certificates come from the openssl CLI.
 * Requests are started and cancelled on a real worker thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>

#include "auth/fetch.h"
#include "auth/introspect.h"
#include "auth/jwks_source.h"
#include "core/time.h"
#include "core/worker.h"
#include "portico/errors.h"

#ifndef PT_AUTH_TEST_DIR
#error "PT_AUTH_TEST_DIR must name tests/unit/auth"
#endif

/* --- fixtures: servers, certificates, a worker ---------------------------- */

struct srv {
    pid_t pid;
    int port;
};

static char tmpdir[256];
static struct srv plain, tls_good, tls_other;
static struct pt_worker tw;
static bool have_tls;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
    return pt_time_mono_ns() / 1000000u;
}

static char *path_in(const char *name)
{
    static char bufs[8][512];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void write_file(const char *name, const char *content)
{
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path_in(name));
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    assert_int_equal(rename(tmp, path_in(name)), 0); /* atomic for the server */
}

static int srv_start(struct srv *s, const char *cert, const char *key)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        if (cert)
            execl("/usr/bin/python3", "python3", PT_AUTH_TEST_DIR "/authsrv.py", "--dir", tmpdir,
                  "--cert", cert, "--key", key, (char *)NULL);
        else
            execl("/usr/bin/python3", "python3", PT_AUTH_TEST_DIR "/authsrv.py", "--dir", tmpdir,
                  (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    s->pid = pid;
    char line[64];
    size_t n = 0;
    uint64_t deadline = now_ms() + 15000;
    while (n < sizeof(line) - 1 && now_ms() < deadline) {
        struct pollfd p = {fds[0], POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t r = read(fds[0], line + n, 1);
        if (r <= 0)
            break;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(fds[0]);
    if (sscanf(line, "port %d", &s->port) != 1) {
        fprintf(stderr, "authsrv did not start: '%s'\n", line);
        return -1;
    }
    return 0;
}

static void srv_stop(struct srv *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
        sleep_ms(20);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static int make_certs(void)
{
    const char *d = tmpdir;
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    if (sh("cd %s && openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca "
           "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
           ">/dev/null 2>&1",
           d, ec) != 0)
        return -1;
    if (sh("cd %s && openssl req -x509 %s -keyout ca2.key -out ca2.pem -days 2 -subj /CN=other-ca "
           "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
           ">/dev/null 2>&1",
           d, ec) != 0)
        return -1;
    const char *names[2] = {"good", "other"};
    const char *sans[2] = {"IP:127.0.0.1,DNS:localhost", "DNS:other.example"};
    for (int i = 0; i < 2; i++) {
        if (sh("cd %s && printf 'subjectAltName=%s\\nbasicConstraints=CA:FALSE\\n"
               "extendedKeyUsage=serverAuth\\n' > %s.ext && "
               "openssl req %s -keyout %s.key -out %s.csr -subj /CN=%s >/dev/null 2>&1 && "
               "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
               "-extfile %s.ext -out %s.pem >/dev/null 2>&1",
               d, sans[i], names[i], ec, names[i], names[i], names[i], names[i], names[i],
               names[i]) != 0)
            return -1;
    }
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/pt-authfetch-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    write_file("jwks.json", "{\"keys\":[{\"kid\":\"v1\"}]}");
    if (srv_start(&plain, NULL, NULL) != 0)
        return -1;
    have_tls = make_certs() == 0;
    if (have_tls) {
        if (srv_start(&tls_good, path_in("good.pem"), path_in("good.key")) != 0 ||
            srv_start(&tls_other, path_in("other.pem"), path_in("other.key")) != 0)
            return -1;
    } else {
        fprintf(stderr, "openssl CLI failed: TLS tests will fail\n");
    }
    if (pt_worker_init(&tw, 7) != 0 || pt_worker_start(&tw) != 0)
        return -1;
    return pt_auth_fetch_start_thread(NULL);
}

static void stop_worker(struct pt_worker *w, void *arg)
{
    (void)arg;
    pt_worker_stop(w);
}

static int group_teardown(void **state)
{
    (void)state;
    pt_auth_fetch_stop_thread();
    pt_worker_post(&tw, stop_worker, NULL);
    pt_worker_join(&tw);
    pt_worker_fini(&tw);
    srv_stop(&plain);
    srv_stop(&tls_good);
    srv_stop(&tls_other);
    sh("rm -rf %s", tmpdir);
    return 0;
}

/* Run fn(arg) on the test worker and wait until it returned. */
struct call {
    void (*fn)(void *arg);
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

static void call_msg(struct pt_worker *w, void *arg)
{
    (void)w;
    struct call *c = arg;
    c->fn(c->arg);
    pthread_mutex_lock(&c->mu);
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_worker(void (*fn)(void *), void *arg)
{
    struct call c = {fn, arg, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    pt_worker_post(&tw, call_msg, &c);
    pthread_mutex_lock(&c.mu);
    while (!c.done)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
}

/* Poll flag (set by callbacks on other threads) for up to ms. */
static bool wait_flag(atomic_int *flag, int want, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (atomic_load(flag) < want && now_ms() < end)
        sleep_ms(5);
    return atomic_load(flag) >= want;
}

/* --- fetch ---------------------------------------------------------------- */

struct got {
    struct pt_fetch_req req;
    struct pt_fetch *f;
    bool in_start;
    atomic_int done;
    bool on_worker, nested;
    int err;
    char error[256];
    int status;
    char ctype[128];
    char *body;
    size_t len;
};

static void got_cb(struct pt_fetch *f, const struct pt_fetch_result *res, void *arg)
{
    (void)f;
    struct got *g = arg;
    if (res->err)
        print_message("  fetch %s: %s\n", g->req.url, res->error);
    g->on_worker = pt_worker_current() == &tw;
    g->nested = g->in_start;
    g->err = res->err;
    if (res->err)
        snprintf(g->error, sizeof(g->error), "%s", res->error);
    g->status = res->status;
    snprintf(g->ctype, sizeof(g->ctype), "%.*s", (int)res->content_type.len,
             res->content_type.ptr ? res->content_type.ptr : "");
    if (!res->err) {
        g->body = malloc(res->body_len + 1);
        memcpy(g->body, res->body, res->body_len + 1);
        g->len = res->body_len;
    }
    atomic_fetch_add(&g->done, 1);
}

static void start_got(void *arg)
{
    struct got *g = arg;
    g->in_start = true;
    int err = 0;
    g->f = pt_fetch_start(&g->req, &tw, got_cb, g, &err, NULL);
    g->in_start = false;
    if (!g->f) {
        g->err = err;
        atomic_store(&g->done, 1);
    }
}

static void fetch_sync(struct got *g)
{
    on_worker(start_got, g);
    assert_true(wait_flag(&g->done, 1, 20000));
}

static char *url(const struct srv *s, bool tls, const char *host, const char *path)
{
    static char bufs[8][256];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 256, "%s://%s:%d%s", tls ? "https" : "http", host, s->port, path);
    return b;
}

static void test_fetch__get_ok_on_the_worker(void **state)
{
    (void)state;
    struct got g = {.req = {.url = url(&plain, false, "127.0.0.1", "/ok")}};
    fetch_sync(&g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "hello");
    assert_string_equal(g.ctype, "text/plain");
    assert_true(g.on_worker);
    assert_false(g.nested);
    free(g.body);
}

static void test_fetch__post_sends_body_and_headers(void **state)
{
    (void)state;
    struct pt_fetch_header h[1] = {{"X-Test", "yes"}};
    struct got g = {.req = {.method = "POST",
                            .url = url(&plain, false, "127.0.0.1", "/echo"),
                            .headers = h,
                            .nheaders = 1,
                            .body = "a=1&b=%20",
                            .body_len = 9,
                            .content_type = "application/x-www-form-urlencoded"}};
    fetch_sync(&g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    assert_non_null(strstr(g.body, "\"body\": \"a=1&b=%20\""));
    assert_non_null(strstr(g.body, "\"content_type\": \"application/x-www-form-urlencoded\""));
    assert_non_null(strstr(g.body, "\"x_test\": \"yes\""));
    char host[64];
    snprintf(host, sizeof(host), "\"host\": \"127.0.0.1:%d\"", plain.port);
    assert_non_null(strstr(g.body, host));
    free(g.body);
}

static void test_fetch__bad_requests_fail_at_start(void **state)
{
    (void)state;
    int err = 0;
    const char *why = NULL;
    struct pt_fetch_req r = {.url = "ftp://127.0.0.1/x"};
    assert_null(pt_fetch_start(&r, NULL, got_cb, NULL, &err, &why));
    assert_int_equal(err, PT_ERR_INVALID);
    assert_non_null(why);
    const char *bad[] = {"http://",
                         "http://user:pw@127.0.0.1/",
                         "http://127.0.0.1/a\r\nX: y",
                         "http://127.0.0.1:99999/",
                         "not a url",
                         ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r.url = bad[i];
        assert_null(pt_fetch_start(&r, NULL, got_cb, NULL, &err, &why));
        assert_int_equal(err, PT_ERR_INVALID);
        assert_int_equal(pt_fetch_url_check(bad[i], &why), PT_ERR_INVALID);
    }
    struct pt_fetch_header h = {"X-Bad", "a\r\nInjected: 1"};
    r = (struct pt_fetch_req){.url = "http://127.0.0.1:1/", .headers = &h, .nheaders = 1};
    assert_null(pt_fetch_start(&r, NULL, got_cb, NULL, &err, &why));
    assert_int_equal(err, PT_ERR_INVALID);
    r = (struct pt_fetch_req){.url = "http://127.0.0.1:1/", .method = "BREW"};
    assert_null(pt_fetch_start(&r, NULL, got_cb, NULL, &err, &why));
    assert_int_equal(pt_fetch_url_check("https://[::1]:8443/a?b=c", &why), 0);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_fetch__connection_refused(void **state)
{
    (void)state;
    struct srv none = {0, free_port()};
    struct got g = {.req = {.url = url(&none, false, "127.0.0.1", "/")}};
    fetch_sync(&g);
    assert_int_equal(g.err, PT_ERR_UPSTREAM_CONNECT);
    assert_non_null(strstr(g.error, "refused"));
    assert_true(g.on_worker);
    assert_false(g.nested);
}

static void test_fetch__total_timeout(void **state)
{
    (void)state;
    struct got g = {.req = {.url = url(&plain, false, "127.0.0.1", "/hang"), .timeout_ms = 300}};
    uint64_t t0 = now_ms();
    fetch_sync(&g);
    assert_int_equal(g.err, PT_ERR_TIMEOUT);
    assert_true(now_ms() - t0 < 3000);
}

static void test_fetch__stall_timeout(void **state)
{
    (void)state;
    struct got g = {.req = {.url = url(&plain, false, "127.0.0.1", "/hang"),
                            .timeout_ms = 10000,
                            .connect_timeout_ms = 300}};
    uint64_t t0 = now_ms();
    fetch_sync(&g);
    assert_int_equal(g.err, PT_ERR_TIMEOUT);
    assert_true(now_ms() - t0 < 5000);
}

static void test_fetch__oversized_response(void **state)
{
    (void)state;
    struct got g = {.req = {.url = url(&plain, false, "127.0.0.1", "/big")}};
    fetch_sync(&g);
    assert_int_equal(g.err, PT_ERR_LIMIT);
    struct got g2 = {
        .req = {.url = url(&plain, false, "127.0.0.1", "/big"), .max_response_bytes = 4u << 20}};
    fetch_sync(&g2);
    assert_int_equal(g2.err, 0);
    assert_int_equal(g2.len, 2u << 20);
    free(g2.body);
}

static void test_fetch__redirect_not_followed(void **state)
{
    (void)state;
    struct got g = {.req = {.url = url(&plain, false, "127.0.0.1", "/redirect")}};
    fetch_sync(&g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 302);
    free(g.body);
}

static void test_fetch__https_good_certificate(void **state)
{
    (void)state;
    assert_true(have_tls);
    struct got g = {
        .req = {.url = url(&tls_good, true, "127.0.0.1", "/ok"), .ca_file = path_in("ca.pem")}};
    fetch_sync(&g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "hello");
    free(g.body);
    /* By DNS name (SNI + host check), where localhost is 127.0.0.1 first. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo("localhost", NULL, &hints, &ai) == 0 && ai->ai_family == AF_INET) {
        struct got g2 = {
            .req = {.url = url(&tls_good, true, "localhost", "/ok"), .ca_file = path_in("ca.pem")}};
        fetch_sync(&g2);
        assert_int_equal(g2.err, 0);
        assert_int_equal(g2.status, 200);
        free(g2.body);
    }
    if (ai)
        freeaddrinfo(ai);
}

static void test_fetch__https_wrong_ca_refused(void **state)
{
    (void)state;
    assert_true(have_tls);
    struct got g = {
        .req = {.url = url(&tls_good, true, "127.0.0.1", "/ok"), .ca_file = path_in("ca2.pem")}};
    fetch_sync(&g);
    assert_int_equal(g.err, PT_ERR_UPSTREAM_CONNECT);
    assert_non_null(strstr(g.error, "certificate"));
    /* The system store does not know the test CA either. */
    struct got g2 = {.req = {.url = url(&tls_good, true, "127.0.0.1", "/ok")}};
    fetch_sync(&g2);
    assert_int_equal(g2.err, PT_ERR_UPSTREAM_CONNECT);
    /* A missing CA file is a clear error. */
    struct got g3 = {.req = {.url = url(&tls_good, true, "127.0.0.1", "/ok"),
                             .ca_file = path_in("nonexistent.pem")}};
    fetch_sync(&g3);
    assert_int_equal(g3.err, PT_ERR_UPSTREAM_CONNECT);
    assert_non_null(strstr(g3.error, "nonexistent.pem"));
}

static void test_fetch__https_wrong_host_refused(void **state)
{
    (void)state;
    assert_true(have_tls);
    /* Signed by the right CA, but for other.example, not 127.0.0.1. */
    struct got g = {
        .req = {.url = url(&tls_other, true, "127.0.0.1", "/ok"), .ca_file = path_in("ca.pem")}};
    fetch_sync(&g);
    assert_int_equal(g.err, PT_ERR_UPSTREAM_CONNECT);
    assert_non_null(strstr(g.error, "mismatch"));
}

/* Cancelled right after start: the network side is torn down, no callback. */
static atomic_int late_calls;

static void never_cb(struct pt_fetch *f, const struct pt_fetch_result *res, void *arg)
{
    (void)f;
    (void)res;
    (void)arg;
    atomic_fetch_add(&late_calls, 1);
}

static void start_and_cancel(void *arg)
{
    (void)arg;
    struct pt_fetch_req r = {.url = url(&plain, false, "127.0.0.1", "/hang")};
    struct pt_fetch *f = pt_fetch_start(&r, &tw, never_cb, NULL, NULL, NULL);
    assert_non_null(f);
    pt_fetch_cancel(f);
    r.url = url(&plain, false, "127.0.0.1", "/ok");
    f = pt_fetch_start(&r, &tw, never_cb, NULL, NULL, NULL);
    pt_fetch_cancel(f);
}

static void test_fetch__cancel_before_completion(void **state)
{
    (void)state;
    atomic_store(&late_calls, 0);
    on_worker(start_and_cancel, NULL);
    struct got g = {.req = {.url = url(&plain, false, "127.0.0.1", "/ok")}};
    fetch_sync(&g); /* the thread still works */
    assert_int_equal(g.err, 0);
    free(g.body);
    sleep_ms(200);
    assert_int_equal(atomic_load(&late_calls), 0);
}

/* Cancelled after the result is queued for the worker (the worker was
 * busy while the fetch finished): the queued delivery is taken back. */
static void start_wait_cancel(void *arg)
{
    (void)arg;
    struct pt_fetch_req r = {.url = url(&plain, false, "127.0.0.1", "/ok")};
    struct pt_fetch *f = pt_fetch_start(&r, &tw, never_cb, NULL, NULL, NULL);
    assert_non_null(f);
    sleep_ms(500); /* blocks the worker: the fetch completes meanwhile */
    pt_fetch_cancel(f);
}

static void test_fetch__cancel_after_result_queued(void **state)
{
    (void)state;
    atomic_store(&late_calls, 0);
    on_worker(start_wait_cancel, NULL);
    sleep_ms(300);
    assert_int_equal(atomic_load(&late_calls), 0);
}

/* Many fetches, each cancelled by a timer at a random moment around its
 * completion: every one either completes or is cancelled, never both. */
#define RACERS 200

struct racer {
    struct pt_fetch *f;
    struct event *timer;
    bool completed, cancelled;
};

static struct racer racers[RACERS];
static atomic_int race_settled, race_bad;

static void racer_cb(struct pt_fetch *f, const struct pt_fetch_result *res, void *arg)
{
    (void)f;
    (void)res;
    struct racer *r = arg;
    if (r->cancelled || r->completed)
        atomic_fetch_add(&race_bad, 1);
    r->completed = true;
    r->f = NULL;
    atomic_fetch_add(&race_settled, 1);
}

static void racer_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct racer *r = arg;
    /* Keep the worker busy for a moment, as a loaded worker is: results
     * that arrive meanwhile are queued for it, and the cancel below then
     * has to take them back. */
    uint64_t until = pt_time_mono_ns() + (uint64_t)(rand() % 3000) * 1000u;
    while (pt_time_mono_ns() < until)
        ;
    if (!r->completed) {
        pt_fetch_cancel(r->f);
        r->f = NULL;
        r->cancelled = true;
        atomic_fetch_add(&race_settled, 1);
    }
}

static void start_racers(void *arg)
{
    (void)arg;
    unsigned seed = (unsigned)pt_time_mono_ns();
    for (int i = 0; i < RACERS; i++) {
        struct racer *r = &racers[i];
        memset(r, 0, sizeof(*r));
        struct pt_fetch_req q = {.url = url(&plain, false, "127.0.0.1", "/ok")};
        r->f = pt_fetch_start(&q, &tw, racer_cb, r, NULL, NULL);
        assert_non_null(r->f);
        r->timer = event_new(tw.base, -1, 0, racer_timer, r);
        struct timeval tv = {0, (suseconds_t)(rand_r(&seed) % 60000)};
        event_add(r->timer, &tv);
    }
}

static void free_racers(void *arg)
{
    (void)arg;
    for (int i = 0; i < RACERS; i++)
        event_free(racers[i].timer);
}

static void test_fetch__cancel_races_completion(void **state)
{
    (void)state;
    atomic_store(&race_settled, 0);
    atomic_store(&race_bad, 0);
    on_worker(start_racers, NULL);
    assert_true(wait_flag(&race_settled, RACERS, 30000));
    sleep_ms(300); /* late deliveries would show now */
    on_worker(free_racers, NULL);
    assert_int_equal(atomic_load(&race_bad), 0);
    assert_int_equal(atomic_load(&race_settled), RACERS);
    int completed = 0, cancelled = 0;
    for (int i = 0; i < RACERS; i++) {
        completed += racers[i].completed;
        cancelled += racers[i].cancelled;
    }
    assert_int_equal(completed + cancelled, RACERS);
    print_message("racers: %d completed, %d cancelled\n", completed, cancelled);
}

/* Bounded concurrency: 2 in flight, 2 queued, the rest refused at once. */
static struct got bounded[6];

static void start_bounded(void *arg)
{
    (void)arg;
    for (int i = 0; i < 6; i++)
        start_got(&bounded[i]);
}

static void test_fetch__bounded_queue_and_restart(void **state)
{
    (void)state;
    pt_auth_fetch_stop_thread();
    struct pt_fetch_thread_conf conf = {.max_concurrent = 2, .max_queued = 2};
    assert_int_equal(pt_auth_fetch_start_thread(&conf), 0);
    for (int i = 0; i < 6; i++)
        bounded[i] = (struct got){
            .req = {.url = url(&plain, false, "127.0.0.1", "/hang"), .timeout_ms = 700}};
    on_worker(start_bounded, NULL);
    int again = 0, timeout = 0;
    for (int i = 0; i < 6; i++) {
        assert_true(wait_flag(&bounded[i].done, 1, 10000));
        again += bounded[i].err == PT_ERR_AGAIN;
        timeout += bounded[i].err == PT_ERR_TIMEOUT;
    }
    assert_int_equal(again, 2);
    assert_int_equal(timeout, 4);
    pt_auth_fetch_stop_thread();
    assert_int_equal(pt_auth_fetch_start_thread(NULL), 0);
}

static void test_fetch__stop_ends_fetches_in_flight(void **state)
{
    (void)state;
    struct got g = {.req = {.url = url(&plain, false, "127.0.0.1", "/hang"), .timeout_ms = 20000}};
    on_worker(start_got, &g);
    sleep_ms(200);
    pt_auth_fetch_stop_thread();
    assert_true(wait_flag(&g.done, 1, 5000));
    assert_int_equal(g.err, PT_ERR_SHUTTING_DOWN);
    assert_true(g.on_worker);
    int err = 0;
    struct pt_fetch_req r = {.url = url(&plain, false, "127.0.0.1", "/ok")};
    assert_null(pt_fetch_start(&r, &tw, got_cb, NULL, &err, NULL));
    assert_int_equal(err, PT_ERR_SHUTTING_DOWN);
    assert_int_equal(pt_auth_fetch_start_thread(NULL), 0);
    struct got g2 = {.req = {.url = url(&plain, false, "127.0.0.1", "/ok")}};
    fetch_sync(&g2);
    assert_int_equal(g2.err, 0);
    free(g2.body);
}

/* --- JWKS over HTTP ------------------------------------------------------- */

static atomic_int parse_calls;

static void *parse_keys(const char *bytes, size_t len, void *arg, char *why, size_t wl)
{
    (void)arg;
    atomic_fetch_add(&parse_calls, 1);
    if (!strstr(bytes, "\"keys\"")) {
        snprintf(why, wl, "no \"keys\" member");
        return NULL;
    }
    char *copy = malloc(len + 1);
    memcpy(copy, bytes, len + 1);
    return copy;
}

static void free_keys(void *parsed, void *arg)
{
    (void)arg;
    free(parsed);
}

static bool wait_gen(struct pt_jwks_source *s, uint64_t gen, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (pt_jwks_source_generation(s) < gen && now_ms() < end)
        sleep_ms(10);
    return pt_jwks_source_generation(s) >= gen;
}

static void assert_doc(struct pt_jwks_source *s, const char *want)
{
    struct pt_jwks_doc *d = pt_jwks_source_doc_ref(s);
    assert_non_null(d);
    assert_string_equal(d->bytes, want);
    assert_string_equal((const char *)d->parsed, want);
    pt_jwks_doc_unref(d);
}

struct refresh_wait {
    struct pt_jwks_source *src;
    struct pt_jwks_wait *w;
    atomic_int done;
    int status;
    uint64_t gen;
    bool on_worker;
    bool in_call;
    bool nested;
};

static void refresh_cb(void *arg, int status, uint64_t gen)
{
    struct refresh_wait *r = arg;
    r->status = status;
    r->gen = gen;
    r->on_worker = pt_worker_current() == &tw;
    r->nested = r->in_call;
    atomic_fetch_add(&r->done, 1);
}

static void ask_refresh(void *arg)
{
    struct refresh_wait *r = arg;
    r->in_call = true;
    r->w = pt_jwks_source_refresh_now(r->src, &tw, refresh_cb, r);
    r->in_call = false;
}

static void ask_and_cancel(void *arg)
{
    struct refresh_wait *r = arg;
    r->w = pt_jwks_source_refresh_now(r->src, &tw, refresh_cb, r);
    pt_jwks_wait_cancel(r->w);
}

static void test_jwks__http_source_on_demand(void **state)
{
    (void)state;
    write_file("jwks.json", "{\"keys\":[{\"kid\":\"v1\"}]}");
    struct pt_jwks_source_conf conf = {
        .url = url(&plain, false, "127.0.0.1", "/jwks"),
        .refresh_ms = 600000, /* only on demand here */
        .on_demand_min_ms = 600000,
        .parse = parse_keys,
        .free_parsed = free_keys,
    };
    int err = 0;
    struct pt_jwks_source *s = pt_jwks_source_new(&conf, &err, NULL);
    assert_non_null(s);
    assert_true(wait_gen(s, 1, 5000));
    assert_doc(s, "{\"keys\":[{\"kid\":\"v1\"}]}");
    /* Shared: the same configuration gives the same source. */
    struct pt_jwks_source *s2 = pt_jwks_source_new(&conf, &err, NULL);
    assert_ptr_equal(s, s2);
    pt_jwks_source_unref(s2);

    /* An unknown kid: the keys rotated; a waiter resumes on its worker. */
    write_file("jwks.json", "{\"keys\":[{\"kid\":\"v2\"}]}");
    struct refresh_wait r = {.src = s};
    on_worker(ask_refresh, &r);
    assert_true(wait_flag(&r.done, 1, 5000));
    assert_int_equal(r.status, 0);
    assert_int_equal(r.gen, 2);
    assert_true(r.on_worker);
    assert_false(r.nested);
    assert_doc(s, "{\"keys\":[{\"kid\":\"v2\"}]}");

    /* Right after: rate-limited, answered without a fetch. */
    char path[64];
    snprintf(path, sizeof(path), "/count?p=/jwks");
    struct got before = {.req = {.url = url(&plain, false, "127.0.0.1", path)}};
    fetch_sync(&before);
    struct refresh_wait r2 = {.src = s};
    on_worker(ask_refresh, &r2);
    assert_true(wait_flag(&r2.done, 1, 5000));
    assert_int_equal(r2.status, PT_ERR_AGAIN);
    assert_int_equal(r2.gen, 2);
    assert_false(r2.nested);
    struct got after = {.req = {.url = url(&plain, false, "127.0.0.1", path)}};
    fetch_sync(&after);
    assert_string_equal(before.body, after.body);
    free(before.body);
    free(after.body);

    /* A waiter cancelled at once never hears back. */
    struct refresh_wait r3 = {.src = s};
    on_worker(ask_and_cancel, &r3);
    sleep_ms(300);
    assert_int_equal(atomic_load(&r3.done), 0);
    pt_jwks_source_unref(s);
}

static void test_jwks__http_source_timer_failures_and_rejects(void **state)
{
    (void)state;
    write_file("jwks.json", "{\"keys\":[{\"kid\":\"t1\"}]}");
    struct pt_jwks_source_conf conf = {
        .url = url(&plain, false, "127.0.0.1", "/jwks"),
        .refresh_ms = 300,
        .retry_min_ms = 100,
        .parse = parse_keys,
        .free_parsed = free_keys,
    };
    struct pt_jwks_source *s = pt_jwks_source_new(&conf, NULL, NULL);
    assert_non_null(s);
    assert_true(wait_gen(s, 1, 5000));
    uint64_t g = pt_jwks_source_generation(s);
    assert_doc(s, "{\"keys\":[{\"kid\":\"t1\"}]}");

    /* The timer picks up a rotation. */
    write_file("jwks.json", "{\"keys\":[{\"kid\":\"t2\"}]}");
    assert_true(wait_gen(s, g + 1, 5000));
    assert_doc(s, "{\"keys\":[{\"kid\":\"t2\"}]}");
    g = pt_jwks_source_generation(s);

    /* The server fails: the last good document stays. */
    write_file("jwks.status", "500");
    write_file("jwks.json", "{\"keys\":[{\"kid\":\"t3\"}]}");
    uint64_t end = now_ms() + 5000;
    while (pt_jwks_source_last_error(s, NULL, 0) == 0 && now_ms() < end)
        sleep_ms(10);
    char why[200];
    assert_int_equal(pt_jwks_source_last_error(s, why, sizeof(why)), PT_ERR_UPSTREAM_PROTOCOL);
    assert_non_null(strstr(why, "500"));
    assert_int_equal(pt_jwks_source_generation(s), g);
    assert_doc(s, "{\"keys\":[{\"kid\":\"t2\"}]}");

    /* The parse hook rejects a document: kept out. */
    unlink(path_in("jwks.status"));
    write_file("jwks.json", "garbage");
    end = now_ms() + 5000;
    while (pt_jwks_source_last_error(s, why, sizeof(why)) != PT_ERR_INVALID && now_ms() < end)
        sleep_ms(10);
    assert_int_equal(pt_jwks_source_last_error(s, why, sizeof(why)), PT_ERR_INVALID);
    assert_non_null(strstr(why, "keys"));
    assert_int_equal(pt_jwks_source_generation(s), g);

    /* Recovery. */
    write_file("jwks.json", "{\"keys\":[{\"kid\":\"t4\"}]}");
    assert_true(wait_gen(s, g + 1, 5000));
    assert_doc(s, "{\"keys\":[{\"kid\":\"t4\"}]}");
    assert_int_equal(pt_jwks_source_last_error(s, NULL, 0), 0);
    pt_jwks_source_unref(s);
}

static void test_jwks__https_source(void **state)
{
    (void)state;
    assert_true(have_tls);
    write_file("jwks.json", "{\"keys\":[{\"kid\":\"tls\"}]}");
    struct pt_jwks_source_conf conf = {
        .url = url(&tls_good, true, "127.0.0.1", "/jwks"),
        .ca_file = path_in("ca.pem"),
        .parse = parse_keys,
        .free_parsed = free_keys,
    };
    struct pt_jwks_source *s = pt_jwks_source_new(&conf, NULL, NULL);
    assert_true(wait_gen(s, 1, 5000));
    assert_doc(s, "{\"keys\":[{\"kid\":\"tls\"}]}");
    pt_jwks_source_unref(s);
    /* Wrong CA: no document, an error that says why. */
    conf.ca_file = path_in("ca2.pem");
    s = pt_jwks_source_new(&conf, NULL, NULL);
    char why[200];
    uint64_t end = now_ms() + 5000;
    while (pt_jwks_source_last_error(s, why, sizeof(why)) == 0 && now_ms() < end)
        sleep_ms(10);
    assert_int_equal(pt_jwks_source_last_error(s, why, sizeof(why)), PT_ERR_UPSTREAM_CONNECT);
    assert_null(pt_jwks_source_doc_ref(s));
    pt_jwks_source_unref(s);
}

/* --- introspection -------------------------------------------------------- */

struct ask {
    struct pt_introspect_client *c;
    const char *token;
    struct pt_introspect_op *op;
    atomic_int done;
    bool in_call, nested, on_worker;
    int status;
    bool active;
    char sub[256];
    char detail[256];
    size_t nscopes, naud;
    char scope1[32];
    char hint[32];
};

static void ask_cb(void *arg, int status, struct pt_introspection *res, const char *detail)
{
    struct ask *a = arg;
    a->status = status;
    a->nested = a->in_call;
    a->on_worker = pt_worker_current() == &tw;
    if (res) {
        a->active = res->active;
        snprintf(a->sub, sizeof(a->sub), "%s", res->sub ? res->sub : "");
        a->nscopes = res->nscopes;
        a->naud = res->naud;
        if (res->nscopes > 1)
            snprintf(a->scope1, sizeof(a->scope1), "%s", res->scopes[1]);
        json_t *h = res->claims ? json_object_get(res->claims, "hint") : NULL;
        snprintf(a->hint, sizeof(a->hint), "%s", json_is_string(h) ? json_string_value(h) : "");
    }
    if (detail)
        snprintf(a->detail, sizeof(a->detail), "%s", detail);
    atomic_fetch_add(&a->done, 1);
}

static void ask_start(void *arg)
{
    struct ask *a = arg;
    a->in_call = true;
    a->op = pt_introspect_start(a->c, pt_str_from_cstr(a->token), &tw, ask_cb, a);
    a->in_call = false;
}

static void ask_sync(struct ask *a)
{
    on_worker(ask_start, a);
    assert_true(wait_flag(&a->done, 1, 10000));
    assert_true(a->on_worker);
    assert_false(a->nested);
}

static int server_count(const char *p)
{
    char path[128];
    snprintf(path, sizeof(path), "/count?p=%s", p);
    struct got g = {.req = {.url = url(&plain, false, "127.0.0.1", path)}};
    fetch_sync(&g);
    assert_int_equal(g.err, 0);
    int n = atoi(g.body);
    free(g.body);
    return n;
}

static struct pt_introspect_client *client(const char *secret, uint32_t timeout_ms)
{
    struct pt_introspect_conf conf = {
        .url = url(&plain, false, "127.0.0.1", "/introspect"),
        .client_id = "client 1",
        .client_secret = secret,
        .token_type_hint = "access_token",
        .timeout_ms = timeout_ms,
    };
    int err = 0;
    const char *why = NULL;
    struct pt_introspect_client *c = pt_introspect_client_new(&conf, &err, &why);
    assert_non_null(c);
    return c;
}

static void test_introspect__active_inactive_errors_and_cache(void **state)
{
    (void)state;
    struct pt_introspect_client *c = client("s3cr3t:&+%", 0);
    int n0 = server_count("/introspect");

    struct ask a = {.c = c, .token = "active-1"};
    ask_sync(&a);
    assert_int_equal(a.status, 0);
    assert_true(a.active);
    assert_string_equal(a.sub, "user-active-1");
    assert_int_equal(a.nscopes, 3);
    assert_string_equal(a.scope1, "write");
    assert_int_equal(a.naud, 2);
    assert_string_equal(a.hint, "access_token");
    assert_int_equal(server_count("/introspect"), n0 + 1);
    /* Cached: no second request; also visible to the fast path. */
    struct ask a2 = {.c = c, .token = "active-1"};
    ask_sync(&a2);
    assert_int_equal(a2.status, 0);
    assert_true(a2.active);
    assert_int_equal(server_count("/introspect"), n0 + 1);
    struct pt_introspection *hit = pt_introspect_lookup(c, PT_STR("active-1"));
    assert_non_null(hit);
    pt_introspection_unref(hit);

    /* Inactive, and cached as such (negative TTL). */
    struct ask b = {.c = c, .token = "inactive-1"};
    ask_sync(&b);
    assert_int_equal(b.status, 0);
    assert_false(b.active);
    struct ask b2 = {.c = c, .token = "inactive-1"};
    ask_sync(&b2);
    assert_false(b2.active);
    assert_int_equal(server_count("/introspect"), n0 + 2);

    /* "active": "true" is not active. An exp in the past is inactive. */
    struct ask s = {.c = c, .token = "stractive"};
    ask_sync(&s);
    assert_int_equal(s.status, 0);
    assert_false(s.active);
    struct ask x = {.c = c, .token = "expired-1"};
    ask_sync(&x);
    assert_int_equal(x.status, 0);
    assert_false(x.active);

    /* Endpoint errors: reported as errors, never cached. */
    int n1 = server_count("/introspect");
    struct ask e = {.c = c, .token = "err500"};
    ask_sync(&e);
    assert_true(e.status < 0);
    assert_non_null(strstr(e.detail, "500"));
    struct ask e2 = {.c = c, .token = "err500"};
    ask_sync(&e2);
    assert_true(e2.status < 0);
    struct ask j = {.c = c, .token = "badjson"};
    ask_sync(&j);
    assert_int_equal(j.status, PT_ERR_UPSTREAM_PROTOCOL);
    assert_int_equal(server_count("/introspect"), n1 + 3);

    /* Percent-encoding round trip of an awkward token. */
    const char *odd = "echo: a+b/c=d&e%f~g*h.i_j-k\x01\xc3\xa9";
    struct ask o = {.c = c, .token = odd};
    ask_sync(&o);
    assert_int_equal(o.status, 0);
    assert_true(o.active);
    assert_string_equal(o.sub, odd);

    /* Oversized and empty tokens: inactive without a request. */
    int n2 = server_count("/introspect");
    char *big = malloc(PT_INTROSPECT_MAX_TOKEN + 2);
    memset(big, 'a', PT_INTROSPECT_MAX_TOKEN + 1);
    big[PT_INTROSPECT_MAX_TOKEN + 1] = '\0';
    struct ask g = {.c = c, .token = big};
    ask_sync(&g);
    assert_int_equal(g.status, 0);
    assert_false(g.active);
    free(big);
    assert_int_equal(server_count("/introspect"), n2);
    pt_introspect_client_free(c);
}

static void test_introspect__wrong_credentials_are_an_error(void **state)
{
    (void)state;
    struct pt_introspect_client *c = client("wrong", 0);
    struct ask a = {.c = c, .token = "active-2"};
    ask_sync(&a);
    assert_true(a.status < 0);
    assert_non_null(strstr(a.detail, "401"));
    pt_introspect_client_free(c);
}

static void test_introspect__timeout_is_an_error(void **state)
{
    (void)state;
    struct pt_introspect_client *c = client("s3cr3t:&+%", 300);
    struct ask a = {.c = c, .token = "slow-timeout"};
    ask_sync(&a);
    assert_int_equal(a.status, PT_ERR_TIMEOUT);
    pt_introspect_client_free(c);
}

/* Five asks for one token on one worker: one request. Then one of two
 * joined asks is cancelled; the other still gets its answer. */
static struct ask many[5];

static void start_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++)
        ask_start(&many[i]);
}

static void start_two_cancel_one(void *arg)
{
    (void)arg;
    ask_start(&many[0]);
    ask_start(&many[1]);
    pt_introspect_cancel(many[0].op);
}

static void start_and_cancel_ask(void *arg)
{
    struct ask *a = arg;
    ask_start(a);
    pt_introspect_cancel(a->op);
}

static void test_introspect__coalesces_and_cancels(void **state)
{
    (void)state;
    struct pt_introspect_client *c = client("s3cr3t:&+%", 0);
    int n0 = server_count("/introspect");
    for (int i = 0; i < 5; i++)
        many[i] = (struct ask){.c = c, .token = "slow-many"};
    on_worker(start_many, NULL);
    for (int i = 0; i < 5; i++) {
        assert_true(wait_flag(&many[i].done, 1, 10000));
        assert_int_equal(many[i].status, 0);
        assert_true(many[i].active);
        assert_false(many[i].nested);
    }
    assert_int_equal(server_count("/introspect"), n0 + 1);

    for (int i = 0; i < 2; i++)
        many[i] = (struct ask){.c = c, .token = "slow-two"};
    on_worker(start_two_cancel_one, NULL);
    assert_true(wait_flag(&many[1].done, 1, 10000));
    assert_true(many[1].active);
    sleep_ms(100);
    assert_int_equal(atomic_load(&many[0].done), 0);

    /* Cancel of the only asker abandons the request; cancel of a cache
     * hit (answered later) also means no callback. */
    struct ask z = {.c = c, .token = "slow-alone"};
    on_worker(start_and_cancel_ask, &z);
    struct ask h = {.c = c, .token = "slow-many"};
    on_worker(start_and_cancel_ask, &h);
    sleep_ms(1800);
    assert_int_equal(atomic_load(&z.done), 0);
    assert_int_equal(atomic_load(&h.done), 0);
    pt_introspect_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch__get_ok_on_the_worker),
        cmocka_unit_test(test_fetch__post_sends_body_and_headers),
        cmocka_unit_test(test_fetch__bad_requests_fail_at_start),
        cmocka_unit_test(test_fetch__connection_refused),
        cmocka_unit_test(test_fetch__total_timeout),
        cmocka_unit_test(test_fetch__stall_timeout),
        cmocka_unit_test(test_fetch__oversized_response),
        cmocka_unit_test(test_fetch__redirect_not_followed),
        cmocka_unit_test(test_fetch__https_good_certificate),
        cmocka_unit_test(test_fetch__https_wrong_ca_refused),
        cmocka_unit_test(test_fetch__https_wrong_host_refused),
        cmocka_unit_test(test_fetch__cancel_before_completion),
        cmocka_unit_test(test_fetch__cancel_after_result_queued),
        cmocka_unit_test(test_fetch__cancel_races_completion),
        cmocka_unit_test(test_fetch__bounded_queue_and_restart),
        cmocka_unit_test(test_fetch__stop_ends_fetches_in_flight),
        cmocka_unit_test(test_jwks__http_source_on_demand),
        cmocka_unit_test(test_jwks__http_source_timer_failures_and_rejects),
        cmocka_unit_test(test_jwks__https_source),
        cmocka_unit_test(test_introspect__active_inactive_errors_and_cache),
        cmocka_unit_test(test_introspect__wrong_credentials_are_an_error),
        cmocka_unit_test(test_introspect__timeout_is_an_error),
        cmocka_unit_test(test_introspect__coalesces_and_cancels),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
