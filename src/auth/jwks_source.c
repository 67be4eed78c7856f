#include "auth/jwks_source.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/deliver.h"
#include "auth/fetch.h"
#include "auth/jwks_sched.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/time.h"
#include "portico/errors.h"

struct pt_jwks_wait {
    struct pt_auth_deliv deliv;
    struct pt_jwks_source *src; /* one reference */
    pt_jwks_refresh_fn *cb;
    void *arg;
    int status;
    uint64_t generation;
    struct pt_jwks_wait *next, *prev; /* src->waiters, under src->mu */
    bool in_list;
};

struct pt_jwks_source {
    /* Under js.mu. */
    struct pt_jwks_source *next; /* registry */
    unsigned refs;               /* holders, waits and messages in flight */
    bool active;                 /* timer armed on the fetch thread */
    bool dead;                   /* refs hit 0 while the thread was stopping */

    /* Immutable after creation. */
    struct pt_jwks_source_conf conf; /* strings owned */
    char *path;                      /* file: sources */

    /* Publication: see doc_ref / publish. */
    _Atomic(struct pt_jwks_doc *) doc;
    atomic_uint readers[2];
    atomic_uint epoch;
    _Atomic uint64_t generation;

    /* Under mu. */
    pthread_mutex_t mu;
    struct pt_jwks_wait *waiters_head, *waiters_tail;
    bool demand_posted;
    int last_err;
    char last_why[200];

    /* Fetch thread only. */
    struct pt_jwks_sched sched;
    struct event *timer;
    struct pt_fetch *inflight;
};

static struct {
    pthread_mutex_t mu;
    struct pt_jwks_source *sources;
} js = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_thread_start(void);
static void on_thread_stop(void);
static const struct pt_auth_fetch_hooks hooks = {on_thread_start, on_thread_stop};

/* --- documents ------------------------------------------------------------ */

void pt_jwks_doc_unref(struct pt_jwks_doc *d)
{
    if (!d || atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (d->parsed && d->free_parsed)
        d->free_parsed(d->parsed, d->parse_arg);
    free((char *)d->bytes);
    free(d);
}

/*
 * Readers never lock: they announce themselves in the counter of the
 * current epoch, load the pointer, take a reference, and leave. The writer
 * (one at a time: the fetch thread, or the creator before anyone can read)
 * swaps the pointer, flips the epoch, and waits until the old epoch's
 * counter drains before dropping its reference to the old document: any
 * reader that could have loaded the old pointer announced itself in that
 * counter before the swap. New readers use the other counter, so a steady
 * stream of readers cannot starve the writer.
 */
struct pt_jwks_doc *pt_jwks_source_doc_ref(struct pt_jwks_source *s)
{
    unsigned e = atomic_load(&s->epoch) & 1u;
    atomic_fetch_add(&s->readers[e], 1);
    struct pt_jwks_doc *d = atomic_load(&s->doc);
    if (d)
        atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
    atomic_fetch_sub(&s->readers[e], 1);
    return d;
}

uint64_t pt_jwks_source_generation(const struct pt_jwks_source *s)
{
    return atomic_load_explicit(&s->generation, memory_order_acquire);
}

static void publish(struct pt_jwks_source *s, struct pt_jwks_doc *d)
{
    struct pt_jwks_doc *old = atomic_exchange(&s->doc, d);
    atomic_store_explicit(&s->generation, d->generation, memory_order_release);
    unsigned e = atomic_fetch_add(&s->epoch, 1) & 1u;
    /* A reader holds the counter for a few instructions; it can only be
     * slow if it is descheduled. Bounded: after ~10 s of yielding the old
     * document is leaked rather than freed under a reader. */
    for (unsigned i = 0; atomic_load(&s->readers[e]) != 0; i++) {
        if (i > 10000000u) {
            pt_log_error("jwks %s: a reader never finished; old document leaked", s->conf.url);
            return;
        }
        sched_yield();
    }
    pt_jwks_doc_unref(old);
}

static void set_status(struct pt_jwks_source *s, int err, const char *why)
{
    pthread_mutex_lock(&s->mu);
    s->last_err = err;
    snprintf(s->last_why, sizeof(s->last_why), "%s", err ? why : "");
    pthread_mutex_unlock(&s->mu);
}

int pt_jwks_source_last_error(struct pt_jwks_source *s, char *buf, size_t len)
{
    pthread_mutex_lock(&s->mu);
    int err = s->last_err;
    if (buf && len)
        snprintf(buf, len, "%s", s->last_why);
    pthread_mutex_unlock(&s->mu);
    return err;
}

/* Status: 0 (published, or the same bytes as now), or PT_ERR_INVALID with
 * why: the hook rejected them. Takes ownership of bytes. Writer only. */
static int consider(struct pt_jwks_source *s, char *bytes, size_t len, char *why, size_t wl)
{
    struct pt_jwks_doc *cur = atomic_load(&s->doc);
    if (cur && cur->len == len && memcmp(cur->bytes, bytes, len) == 0) {
        free(bytes);
        return 0;
    }
    void *parsed = NULL;
    if (s->conf.parse) {
        why[0] = '\0';
        parsed = s->conf.parse(bytes, len, s->conf.parse_arg, why, wl);
        if (!parsed) {
            if (!why[0])
                snprintf(why, wl, "the document was rejected");
            free(bytes);
            return PT_ERR_INVALID;
        }
    }
    struct pt_jwks_doc *d = pt_xcalloc(1, sizeof(*d));
    atomic_init(&d->refs, 1);
    d->generation = (cur ? cur->generation : 0) + 1;
    d->fetched_ns = pt_time_real_ns();
    d->bytes = bytes;
    d->len = len;
    d->parsed = parsed;
    d->free_parsed = s->conf.free_parsed;
    d->parse_arg = s->conf.parse_arg;
    publish(s, d);
    return 0;
}

/* Status: 0 with *out (NUL-terminated, malloc'd), or an error with why. */
static int read_file(const char *path, size_t max, char **out, size_t *out_len, char *why,
                     size_t wl)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, wl, "%s: %s", path, strerror(errno));
        return PT_ERR_NOT_FOUND;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, wl, "%s: not a regular file", path);
        close(fd);
        return PT_ERR_INVALID;
    }
    char *buf = pt_xmalloc(max + 2);
    size_t len = 0;
    /* Bounded: at most max + 1 bytes are read. */
    while (len <= max) {
        ssize_t r = read(fd, buf + len, max + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, wl, "%s: %s", path, strerror(errno));
            close(fd);
            free(buf);
            return PT_ERR_INTERNAL;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (len > max) {
        snprintf(why, wl, "%s: larger than %zu bytes", path, max);
        free(buf);
        return PT_ERR_LIMIT;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

/* --- waiters -------------------------------------------------------------- */

static void wait_free(struct pt_jwks_wait *w)
{
    struct pt_jwks_source *s = w->src;
    free(w);
    pt_jwks_source_unref(s);
}

static void wait_run(struct pt_auth_deliv *d)
{
    struct pt_jwks_wait *w = (struct pt_jwks_wait *)d;
    w->cb(w->arg, w->status, w->generation);
    wait_free(w);
}

/* Hand every waiter its result (any thread). */
static void wake_waiters(struct pt_jwks_source *s, int status)
{
    pthread_mutex_lock(&s->mu);
    uint64_t gen = pt_jwks_source_generation(s);
    while (s->waiters_head) {
        struct pt_jwks_wait *w = s->waiters_head;
        s->waiters_head = w->next;
        if (!s->waiters_head)
            s->waiters_tail = NULL;
        w->next = w->prev = NULL;
        w->in_list = false;
        w->status = status;
        w->generation = gen;
        /* Under s->mu: a concurrent cancel sees either "in the list" or
         * "queued", never neither. */
        pt_auth_deliv_post(&w->deliv);
    }
    pthread_mutex_unlock(&s->mu);
}

void pt_jwks_wait_cancel(struct pt_jwks_wait *w)
{
    if (!w)
        return;
    struct pt_jwks_source *s = w->src;
    pthread_mutex_lock(&s->mu);
    bool gone = false;
    if (w->in_list) {
        if (w->prev)
            w->prev->next = w->next;
        else
            s->waiters_head = w->next;
        if (w->next)
            w->next->prev = w->prev;
        else
            s->waiters_tail = w->prev;
        w->in_list = false;
        gone = true;
    } else {
        gone = pt_auth_deliv_unqueue(&w->deliv); /* false: inside its own callback */
    }
    pthread_mutex_unlock(&s->mu);
    if (gone)
        wait_free(w);
}

/* --- fetching (fetch thread) ---------------------------------------------- */

static void arm(struct pt_jwks_source *s, uint64_t delay_ns)
{
    struct timeval tv = {(time_t)(delay_ns / 1000000000u),
                         (suseconds_t)((delay_ns % 1000000000u) / 1000u)};
    event_add(s->timer, &tv);
}

/* A fetch or read ended: publish, note, reschedule, wake. */
static void ended(struct pt_jwks_source *s, int err, char *bytes, size_t len, const char *why)
{
    char buf[200];
    if (err == 0) {
        err = consider(s, bytes, len, buf, sizeof(buf));
        why = buf;
    } else {
        free(bytes);
    }
    if (err) {
        pt_log_warn("jwks %s: %s (keeping the previous document)", s->conf.url, why);
    } else {
        pt_log_debug("jwks %s: generation %llu", s->conf.url,
                     (unsigned long long)pt_jwks_source_generation(s));
    }
    set_status(s, err, why);
    uint64_t delay = pt_jwks_sched_done(&s->sched, err == 0);
    if (s->timer)
        arm(s, delay);
    wake_waiters(s, err);
}

static void on_fetched(struct pt_fetch *f, const struct pt_fetch_result *res, void *arg)
{
    (void)f;
    struct pt_jwks_source *s = arg;
    s->inflight = NULL;
    if (res->err) {
        ended(s, res->err, NULL, 0, res->error);
        return;
    }
    if (res->status != 200) {
        char why[64];
        snprintf(why, sizeof(why), "HTTP status %d", res->status);
        ended(s, PT_ERR_UPSTREAM_PROTOCOL, NULL, 0, why);
        return;
    }
    char *copy = pt_xmalloc(res->body_len + 1);
    memcpy(copy, res->body, res->body_len);
    copy[res->body_len] = '\0';
    ended(s, 0, copy, res->body_len, NULL);
}

static size_t max_bytes(const struct pt_jwks_source *s)
{
    return s->conf.max_bytes ? s->conf.max_bytes : PT_FETCH_DEFAULT_MAX_RESPONSE;
}

/* sched has already marked the fetch as started. */
static void start_fetch(struct pt_jwks_source *s)
{
    if (s->path) {
        char *bytes = NULL;
        size_t len = 0;
        char why[200];
        int rc = read_file(s->path, max_bytes(s), &bytes, &len, why, sizeof(why));
        ended(s, rc, bytes, len, why);
        return;
    }
    struct pt_fetch_header accept = {"Accept", "application/json, application/jwk-set+json"};
    struct pt_fetch_req req = {
        .url = s->conf.url,
        .headers = &accept,
        .nheaders = 1,
        .ca_file = s->conf.ca_file,
        .timeout_ms = s->conf.timeout_ms,
        .max_response_bytes = max_bytes(s),
    };
    int err = 0;
    const char *why = NULL;
    s->inflight = pt_fetch_start(&req, NULL, on_fetched, s, &err, &why);
    if (!s->inflight)
        ended(s, err, NULL, 0, why ? why : "cannot start the fetch");
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pt_jwks_source *s = arg;
    if (s->sched.in_flight)
        return; /* an on-demand fetch is running; it reschedules */
    pt_jwks_sched_timed_start(&s->sched);
    start_fetch(s);
}

/* Under js.mu, fetch thread. */
static void activate_locked(struct pt_jwks_source *s)
{
    if (s->active || s->dead)
        return;
    struct pt_worker *w = pt_auth_fetch_thread_worker();
    if (!w || !pt_auth_fetch_thread_running())
        return;
    s->timer = event_new(w->base, -1, 0, on_timer, s);
    if (!s->timer) {
        pt_log_error("jwks %s: cannot create its timer", s->conf.url);
        return;
    }
    s->active = true;
    pt_jwks_sched_init(&s->sched,
                       &(struct pt_jwks_sched_conf){s->conf.refresh_ms, s->conf.jitter_pct,
                                                    s->conf.on_demand_min_ms, s->conf.retry_min_ms,
                                                    s->conf.retry_max_ms},
                       pt_time_mono_ns() ^ (uintptr_t)s);
    /* A file read at creation waits for its interval; a URL is fetched now. */
    if (s->path && atomic_load(&s->doc))
        arm(s, pt_jwks_sched_done(&s->sched, true));
    else
        arm(s, 0);
}

/* Under js.mu, fetch thread. */
static void deactivate_locked(struct pt_jwks_source *s)
{
    if (!s->active)
        return;
    s->active = false;
    pt_fetch_cancel(s->inflight);
    s->inflight = NULL;
    event_free(s->timer);
    s->timer = NULL;
    wake_waiters(s, PT_ERR_SHUTTING_DOWN);
}

static void source_free(struct pt_jwks_source *s)
{
    pt_jwks_doc_unref(atomic_load(&s->doc));
    free((char *)s->conf.url);
    free((char *)s->conf.ca_file);
    free(s->path);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void activate_msg(struct pt_worker *w, void *arg)
{
    (void)w;
    struct pt_jwks_source *s = arg;
    pthread_mutex_lock(&js.mu);
    activate_locked(s);
    pthread_mutex_unlock(&js.mu);
    pt_jwks_source_unref(s); /* this message's */
}

static void destroy_msg(struct pt_worker *w, void *arg)
{
    (void)w;
    struct pt_jwks_source *s = arg;
    pthread_mutex_lock(&js.mu);
    deactivate_locked(s);
    pthread_mutex_unlock(&js.mu);
    source_free(s);
}

static void demand_msg(struct pt_worker *w, void *arg)
{
    (void)w;
    struct pt_jwks_source *s = arg;
    pthread_mutex_lock(&s->mu);
    s->demand_posted = false;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&js.mu);
    bool active = s->active;
    pthread_mutex_unlock(&js.mu);
    if (!active) {
        wake_waiters(s, PT_ERR_SHUTTING_DOWN);
    } else {
        switch (pt_jwks_sched_demand(&s->sched, pt_time_mono_ns())) {
        case PT_JWKS_DEMAND_START:
            event_del(s->timer);
            start_fetch(s);
            break;
        case PT_JWKS_DEMAND_JOIN:
            break; /* woken when the fetch in flight ends */
        case PT_JWKS_DEMAND_LIMITED:
            wake_waiters(s, PT_ERR_AGAIN);
            break;
        }
    }
    pt_jwks_source_unref(s); /* this message's */
}

static void on_thread_start(void)
{
    pthread_mutex_lock(&js.mu);
    for (struct pt_jwks_source *s = js.sources; s; s = s->next)
        activate_locked(s);
    pthread_mutex_unlock(&js.mu);
}

static void on_thread_stop(void)
{
    pthread_mutex_lock(&js.mu);
    for (struct pt_jwks_source **pp = &js.sources; *pp;) {
        struct pt_jwks_source *s = *pp;
        deactivate_locked(s);
        if (s->dead) {
            *pp = s->next;
            source_free(s);
        } else {
            pp = &s->next;
        }
    }
    pthread_mutex_unlock(&js.mu);
}

/* --- API ------------------------------------------------------------------ */

static bool str_same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool conf_same(const struct pt_jwks_source_conf *a, const struct pt_jwks_source_conf *b)
{
    return str_same(a->url, b->url) && str_same(a->ca_file, b->ca_file) &&
           a->refresh_ms == b->refresh_ms && a->jitter_pct == b->jitter_pct &&
           a->on_demand_min_ms == b->on_demand_min_ms && a->retry_min_ms == b->retry_min_ms &&
           a->retry_max_ms == b->retry_max_ms && a->timeout_ms == b->timeout_ms &&
           a->max_bytes == b->max_bytes && a->parse == b->parse &&
           a->free_parsed == b->free_parsed && a->parse_arg == b->parse_arg;
}

/* Pointer: the path of a file: URL, or NULL if url is not one. */
static char *file_path(const char *url)
{
    if (strncasecmp(url, "file:", 5) != 0)
        return NULL;
    const char *p = url + 5;
    if (strncmp(p, "//", 2) == 0) {
        p += 2; /* file://[host]/path: only an empty host (or localhost) */
        if (strncasecmp(p, "localhost/", 10) == 0)
            p += 9;
        if (*p != '/')
            return pt_xstrdup("");
    }
    return pt_xstrdup(p);
}

struct pt_jwks_source *pt_jwks_source_new(const struct pt_jwks_source_conf *conf, int *err,
                                          const char **why)
{
    int dummy_err;
    const char *dummy_why;
    if (!err)
        err = &dummy_err;
    if (!why)
        why = &dummy_why;
    if (!conf || !conf->url) {
        *err = PT_ERR_INVALID;
        *why = "no URL";
        return NULL;
    }
    char *path = file_path(conf->url);
    if (path && !*path) {
        free(path);
        *err = PT_ERR_INVALID;
        *why = "a file: URL needs a local path";
        return NULL;
    }
    if (!path && pt_fetch_url_check(conf->url, why) != 0) {
        *err = PT_ERR_INVALID;
        return NULL;
    }
    pthread_mutex_lock(&js.mu);
    for (struct pt_jwks_source *s = js.sources; s; s = s->next) {
        if (!s->dead && conf_same(&s->conf, conf)) {
            s->refs++;
            pthread_mutex_unlock(&js.mu);
            free(path);
            return s;
        }
    }
    pthread_mutex_unlock(&js.mu);

    pt_auth_fetch_add_hooks(&hooks);
    struct pt_jwks_source *s = pt_xcalloc(1, sizeof(*s));
    s->conf = *conf;
    s->conf.url = pt_xstrdup(conf->url);
    s->conf.ca_file = conf->ca_file ? pt_xstrdup(conf->ca_file) : NULL;
    s->path = path;
    pthread_mutex_init(&s->mu, NULL);
    s->refs = 1;
    if (path) { /* first read now, on this thread: no reader exists yet */
        char *bytes = NULL;
        size_t len = 0;
        char buf[200];
        int rc = read_file(path, max_bytes(s), &bytes, &len, buf, sizeof(buf));
        if (rc == 0)
            rc = consider(s, bytes, len, buf, sizeof(buf));
        if (rc != 0)
            pt_log_warn("jwks %s: %s", s->conf.url, buf);
        set_status(s, rc, buf);
    }
    pthread_mutex_lock(&js.mu);
    /* Another thread may have created an equal source meanwhile. */
    for (struct pt_jwks_source *o = js.sources; o; o = o->next) {
        if (!o->dead && conf_same(&o->conf, conf)) {
            o->refs++;
            pthread_mutex_unlock(&js.mu);
            s->refs = 0;
            source_free(s);
            return o;
        }
    }
    s->next = js.sources;
    js.sources = s;
    s->refs++; /* the activation message's */
    if (pt_auth_fetch_thread_post(activate_msg, s) != 0)
        s->refs--; /* activated by the thread's start hook */
    pthread_mutex_unlock(&js.mu);
    return s;
}

void pt_jwks_source_ref(struct pt_jwks_source *s)
{
    pthread_mutex_lock(&js.mu);
    s->refs++;
    pthread_mutex_unlock(&js.mu);
}

void pt_jwks_source_unref(struct pt_jwks_source *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&js.mu);
    if (--s->refs > 0) {
        pthread_mutex_unlock(&js.mu);
        return;
    }
    if (s->active) {
        /* Its timer and fetch belong to the fetch thread. */
        for (struct pt_jwks_source **pp = &js.sources; *pp; pp = &(*pp)->next) {
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        }
        if (pt_auth_fetch_thread_post(destroy_msg, s) != 0) {
            /* Stopping, its hook not yet run: leave it to the hook. */
            s->next = js.sources;
            js.sources = s;
            s->dead = true;
        }
        pthread_mutex_unlock(&js.mu);
        return;
    }
    for (struct pt_jwks_source **pp = &js.sources; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&js.mu);
    source_free(s);
}

struct pt_jwks_wait *pt_jwks_source_refresh_now(struct pt_jwks_source *s, struct pt_worker *worker,
                                                pt_jwks_refresh_fn *cb, void *arg)
{
    struct pt_jwks_wait *w = NULL;
    pthread_mutex_lock(&js.mu);
    s->refs += cb ? 2 : 1; /* the wait's, the message's */
    pthread_mutex_unlock(&js.mu);
    pthread_mutex_lock(&s->mu);
    if (cb) {
        w = pt_xcalloc(1, sizeof(*w));
        w->deliv.to = worker;
        w->deliv.run = wait_run;
        w->src = s;
        w->cb = cb;
        w->arg = arg;
        w->prev = s->waiters_tail;
        if (s->waiters_tail)
            s->waiters_tail->next = w;
        else
            s->waiters_head = w;
        s->waiters_tail = w;
        w->in_list = true;
    }
    bool post = !s->demand_posted;
    s->demand_posted = true;
    pthread_mutex_unlock(&s->mu);
    if (!post || pt_auth_fetch_thread_post(demand_msg, s) != 0) {
        if (post) {
            pthread_mutex_lock(&s->mu);
            s->demand_posted = false;
            pthread_mutex_unlock(&s->mu);
            wake_waiters(s, PT_ERR_SHUTTING_DOWN);
        }
        pt_jwks_source_unref(s); /* the message's, not sent */
    }
    return w;
}
