#include "core/snapshot.h"

#include <stdlib.h>

#include "core/arena.h"
#include "core/worker.h"

void pt_snap_init(struct pt_snap_base *s, uint64_t generation,
                  void (*destroy)(struct pt_snap_base *))
{
    atomic_init(&s->refs, 1);
    s->generation = generation;
    s->destroy = destroy;
}

void pt_snap_ref(struct pt_snap_base *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void pt_snap_unref(struct pt_snap_base *s)
{
    if (!s)
        return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        s->destroy(s);
}

struct pt_snap_pin *pt_snap_pin_get(struct pt_worker *w)
{
    struct pt_snap_pin *p = w->pin;
    if (p)
        p->refs++;
    return p;
}

void pt_snap_pin_release(struct pt_snap_pin *p)
{
    if (!p)
        return;
    if (--p->refs == 0) {
        pt_snap_unref(p->snap);
        free(p);
    }
}

static void swap_pin(struct pt_worker *w, void *arg)
{
    struct pt_snap_base *snap = arg; /* carries the reference taken for us */
    struct pt_snap_pin *p = pt_xmalloc(sizeof(*p));
    p->snap = snap;
    p->refs = 1;
    struct pt_snap_pin *old = w->pin;
    w->pin = p;
    pt_snap_pin_release(old);
}

void pt_snap_publish(struct pt_worker *const *workers, unsigned n, struct pt_snap_base *snap)
{
    for (unsigned i = 0; i < n; i++) {
        pt_snap_ref(snap);
        pt_worker_post(workers[i], swap_pin, snap);
    }
}
