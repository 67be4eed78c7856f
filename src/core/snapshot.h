/*
 * core/snapshot.h - publication of immutable configuration snapshots.
 *
 * The control (main) thread compiles a snapshot and publishes it to every
 * worker by message; each worker swaps its own current pin. A request pins
 * the worker-local wrapper (pt_snap_pin) with a plain counter, so the hot
 * path touches no shared cache line; the shared atomic count moves only
 * when a pin is created or retired.
 *
 *   control:  compile ──> pt_snap_base(refs=1) ──publish──> worker inbox (ref per worker)
 *   worker:   pin(snap, local=1 "current") ──requests: local++/-- ──> swapped out ──>
 *             local hits 0 ──> pt_snap_unref() ──> last ref: destroy() on that worker
 *
 * destroy() may therefore run on any worker or the control thread; it must
 * only free memory.
 */
#ifndef PT_CORE_SNAPSHOT_H
#define PT_CORE_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>

struct pt_snap_base {
    atomic_uint refs;
    uint64_t generation;
    void (*destroy)(struct pt_snap_base *snap);
};

void pt_snap_init(struct pt_snap_base *s, uint64_t generation,
                  void (*destroy)(struct pt_snap_base *));
void pt_snap_ref(struct pt_snap_base *s);
void pt_snap_unref(struct pt_snap_base *s);

struct pt_worker;

/* A worker's local hold on one snapshot. */
struct pt_snap_pin {
    struct pt_snap_base *snap;
    uint32_t refs; /* worker-local: requests + 1 while current */
};

/* Pointer (never NULL once a snapshot was published): the worker's current
 * pin, with its local count raised. Worker thread only. */
struct pt_snap_pin *pt_snap_pin_get(struct pt_worker *w);
void pt_snap_pin_release(struct pt_snap_pin *p);

/* Control thread: hand snap to every worker (each takes its own reference). */
void pt_snap_publish(struct pt_worker *const *workers, unsigned n, struct pt_snap_base *snap);

#endif
