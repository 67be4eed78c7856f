#include "auth/deliver.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/fetch.h"
#include "core/worker.h"

/* Queued deliveries, spread over buckets by target so that a drain scans
 * only its own bucket and workers seldom share a lock. */
#define NBUCKETS 64

static struct bucket {
    pthread_mutex_t mu;
    struct pt_auth_deliv *head, *tail;
} buckets[NBUCKETS];

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_buckets(void)
{
    for (int i = 0; i < NBUCKETS; i++)
        pthread_mutex_init(&buckets[i].mu, NULL);
}

static struct bucket *bucket_of(const struct pt_worker *w)
{
    pthread_once(&once, init_buckets);
    uintptr_t h = (uintptr_t)w;
    h ^= h >> 17;
    h *= 0x9e3779b97f4a7c15ull;
    return &buckets[(h >> 40) % NBUCKETS];
}

static void unlink_locked(struct bucket *b, struct pt_auth_deliv *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        b->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        b->tail = d->prev;
    d->next = d->prev = NULL;
    d->queued = false;
}

static void on_drain(struct pt_worker *w, void *arg)
{
    (void)arg;
    pt_auth_deliv_drain(w);
}

/* Deliveries for the fetch thread are keyed by NULL, not by its worker. */
static void on_drain_fetch_thread(struct pt_worker *w, void *arg)
{
    (void)w;
    (void)arg;
    pt_auth_deliv_drain(NULL);
}

void pt_auth_deliv_post(struct pt_auth_deliv *d)
{
    pt_auth_deliv_queue(d);
    pt_auth_deliv_wake(d->to);
}

void pt_auth_deliv_wake(struct pt_worker *to)
{
    if (to)
        pt_worker_post(to, on_drain, NULL);
    else
        (void)pt_auth_fetch_thread_post(on_drain_fetch_thread, NULL); /* stopped: drained at stop */
}

void pt_auth_deliv_queue(struct pt_auth_deliv *d)
{
    struct bucket *b = bucket_of(d->to);
    pthread_mutex_lock(&b->mu);
    d->next = NULL;
    d->prev = b->tail;
    if (b->tail)
        b->tail->next = d;
    else
        b->head = d;
    b->tail = d;
    d->queued = true;
    pthread_mutex_unlock(&b->mu);
}

bool pt_auth_deliv_unqueue(struct pt_auth_deliv *d)
{
    struct bucket *b = bucket_of(d->to);
    pthread_mutex_lock(&b->mu);
    bool was = d->queued;
    if (was)
        unlink_locked(b, d);
    pthread_mutex_unlock(&b->mu);
    return was;
}

void pt_auth_deliv_drain(struct pt_worker *w)
{
    struct bucket *b = bucket_of(w);
    /* One at a time: a run may unqueue (cancel) another delivery for w, so
     * nothing is taken out of the list before it is about to run. Bounded
     * by the deliveries queued for w. */
    for (;;) {
        pthread_mutex_lock(&b->mu);
        struct pt_auth_deliv *d = b->head;
        while (d && d->to != w)
            d = d->next;
        if (d)
            unlink_locked(b, d);
        pthread_mutex_unlock(&b->mu);
        if (!d)
            return;
        d->run(d);
    }
}
