/*
 * transcode/route_live.h - a transcoded route whose schema comes from the
 * backend's server reflection (Service.reflection) instead of a descriptor
 * set file: its pt_tc_route is recompiled whenever the reflection registry
 * (reflect.h) publishes a new pool for the service, without a reload.
 *
 * Who does what:
 *
 *   control thread   pt_tc_live_new(): copies the route's Transcode, lists
 *                    the live route, compiles it at once if the registry
 *                    already has a pool
 *   reflection       publish ──hook──> every live route of that service
 *   thread           compiles pt_tc_route from the new pool (or records why
 *                    it cannot), installs it as a refcounted "state" and
 *                    bumps the live route's version (one atomic store)
 *   worker           per request: version == its slot's version?  (one
 *                    atomic load) yes: pin the slot's hold (plain counter);
 *                    no: take the mutex once, ref the current state into a
 *                    new hold, retire the old hold (freed when its last
 *                    request ends)
 *
 * States are immutable and refcounted (atomic, moved only when a hold is
 * made or freed), so a request in flight keeps the compiled route and pool
 * it started with even when a refresh swaps them; the last reference frees
 * them on whatever thread drops it (only memory is freed). A state without
 * a route says why: not fetched yet, or the pool does not fit the route
 * (the reason is logged once, when that generation is compiled). A refresh
 * that fails publishes nothing, so the last good state stays.
 *
 * Threads: _new on the control thread; _free and the publish hook on any
 * thread; _acquire/_release on the worker that owns slot `worker` (slots
 * are worker-local; workers beyond nslots take a private hold).
 */
#ifndef PT_TRANSCODE_ROUTE_LIVE_H
#define PT_TRANSCODE_ROUTE_LIVE_H

#include <stdint.h>

#include "portico/config/v1/config.pb-c.h"
#include "transcode/reflect.h"
#include "transcode/route.h"

struct pt_tc_live;
struct pt_tc_live_hold;

/*
 * Pointer (never NULL; allocation failure aborts): a live route for tc
 * (copied) on portico service `service` of registry reg, with nslots
 * worker slots; where is the route's config position (for messages).
 * Installs reg's publish hook.
 */
struct pt_tc_live *pt_tc_live_new(const Portico__Config__V1__Transcode *tc,
                                  struct pt_tc_reflect_registry *reg, const char *service,
                                  const char *where, unsigned nslots);
/* Unlist and drop the owner's reference. NULL is a no-op. */
void pt_tc_live_free(struct pt_tc_live *l);

/*
 * Compile l from the registry's current pool if it is newer than what l
 * has (the publish hook does this; callable from any thread). Status: 0
 * when l now has a route for that generation, PT_ERR_NOT_FOUND when the
 * registry has no pool yet, PT_ERR_INVALID when the pool does not fit.
 */
int pt_tc_live_refresh(struct pt_tc_live *l);

/*
 * Per request, on worker `worker`: the route to use (NULL when there is
 * none; *why then says why, borrowed until release) and *hold, which the
 * request gives back with pt_tc_live_release() on the same worker.
 */
const struct pt_tc_route *pt_tc_live_acquire(struct pt_tc_live *l, unsigned worker,
                                             struct pt_tc_live_hold **hold, const char **why);
void pt_tc_live_release(struct pt_tc_live_hold *hold);

/* The registry generation of l's current state (0: nothing fetched yet). */
uint64_t pt_tc_live_generation(struct pt_tc_live *l);

#endif
