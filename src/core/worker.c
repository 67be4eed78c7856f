#include "core/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"
#include "core/snapshot.h"
#include "portico/errors.h"

struct pt_worker_msg {
    pt_worker_msg_fn *fn;
    void *arg;
    struct pt_worker_msg *next;
};

static _Thread_local struct pt_worker *current_worker;

struct pt_worker *pt_worker_current(void)
{
    return current_worker;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct pt_worker *w = arg;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r;
    pthread_mutex_lock(&w->inbox_mu);
    struct pt_worker_msg *m = w->inbox_head;
    w->inbox_head = w->inbox_tail = NULL;
    pthread_mutex_unlock(&w->inbox_mu);
    while (m) {
        struct pt_worker_msg *next = m->next;
        m->fn(w, m->arg);
        free(m);
        m = next;
    }
}

static void on_pending(evutil_socket_t fd, short what, void *arg)
{
    struct pt_worker *w = arg;
    w->pending_active = false;
    pt_worker_run_pending(w);
}

int pt_worker_init(struct pt_worker *w, unsigned id)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->deferred_tail = &w->deferred_head;
    w->dirty_tail = &w->dirty_head;
    pt_arena_pool_init(&w->arena_pool, 1024);
    pthread_mutex_init(&w->inbox_mu, NULL);

    /* One thread owns the base; no libevent locking needed. */
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return PT_ERR_INTERNAL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!w->base)
        return PT_ERR_INTERNAL;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0)
        return PT_ERR_INTERNAL;
    w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
    w->pending_ev = event_new(w->base, -1, 0, on_pending, w);
    if (!w->wake_ev || !w->pending_ev || event_add(w->wake_ev, NULL) != 0)
        return PT_ERR_INTERNAL;
    return 0;
}

void pt_worker_fini(struct pt_worker *w)
{
    if (w->pin) {
        struct pt_snap_pin *p = w->pin;
        w->pin = NULL;
        pt_snap_pin_release(p);
    }
    struct pt_worker_msg *m = w->inbox_head;
    while (m) {
        struct pt_worker_msg *next = m->next;
        free(m);
        m = next;
    }
    if (w->wake_ev)
        event_free(w->wake_ev);
    if (w->pending_ev)
        event_free(w->pending_ev);
    if (w->wake_fd > 0)
        close(w->wake_fd);
    if (w->base)
        event_base_free(w->base);
    pthread_mutex_destroy(&w->inbox_mu);
    pt_arena_pool_fini(&w->arena_pool);
}

static void *worker_main(void *arg)
{
    struct pt_worker *w = arg;
    current_worker = w;
    event_base_dispatch(w->base);
    pt_worker_run_pending(w);
    current_worker = NULL;
    return NULL;
}

int pt_worker_start(struct pt_worker *w)
{
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return PT_ERR_INTERNAL;
    w->running = true;
    return 0;
}

void pt_worker_join(struct pt_worker *w)
{
    if (w->running) {
        pthread_join(w->thread, NULL);
        w->running = false;
    }
}

void pt_worker_post(struct pt_worker *w, pt_worker_msg_fn *fn, void *arg)
{
    struct pt_worker_msg *m = pt_xmalloc(sizeof(*m));
    m->fn = fn;
    m->arg = arg;
    m->next = NULL;
    pthread_mutex_lock(&w->inbox_mu);
    if (w->inbox_tail)
        w->inbox_tail->next = m;
    else
        w->inbox_head = m;
    w->inbox_tail = m;
    pthread_mutex_unlock(&w->inbox_mu);
    uint64_t one = 1;
    ssize_t r = write(w->wake_fd, &one, sizeof(one));
    (void)r; /* EAGAIN means the counter is already non-zero: a wake is pending */
}

void pt_worker_stop(struct pt_worker *w)
{
    event_base_loopbreak(w->base);
}

static void schedule(struct pt_worker *w)
{
    if (!w->pending_active && w->pending_ev) {
        w->pending_active = true;
        event_active(w->pending_ev, 0, 0);
    }
}

void pt_worker_defer(struct pt_worker *w, struct pt_deferred *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->next = NULL;
    *w->deferred_tail = d;
    w->deferred_tail = &d->next;
    schedule(w);
}

void pt_worker_cancel_deferred(struct pt_worker *w, struct pt_deferred *d)
{
    if (!d->queued)
        return;
    for (struct pt_deferred **pp = &w->deferred_head; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            if (w->deferred_tail == &d->next)
                w->deferred_tail = pp;
            break;
        }
    }
    d->queued = false;
}

void pt_worker_mark_dirty(struct pt_worker *w, struct pt_flushable *f)
{
    if (f->queued)
        return;
    f->queued = true;
    f->next = NULL;
    *w->dirty_tail = f;
    w->dirty_tail = &f->next;
    schedule(w);
}

void pt_worker_unmark_dirty(struct pt_worker *w, struct pt_flushable *f)
{
    if (!f->queued)
        return;
    for (struct pt_flushable **pp = &w->dirty_head; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            if (w->dirty_tail == &f->next)
                w->dirty_tail = pp;
            break;
        }
    }
    f->queued = false;
}

void pt_worker_run_pending(struct pt_worker *w)
{
    if (w->in_pending)
        return;
    w->in_pending = true;
    for (;;) {
        if (w->deferred_head) {
            struct pt_deferred *d = w->deferred_head;
            w->deferred_head = d->next;
            if (!w->deferred_head)
                w->deferred_tail = &w->deferred_head;
            d->queued = false;
            d->fn(d);
            continue;
        }
        if (w->dirty_head) {
            struct pt_flushable *f = w->dirty_head;
            w->dirty_head = f->next;
            if (!w->dirty_head)
                w->dirty_tail = &w->dirty_head;
            f->queued = false;
            f->flush(f);
            continue;
        }
        break;
    }
    w->in_pending = false;
}
