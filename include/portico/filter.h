/*
 * portico/filter.h - the one extension point.
 *
 * Every policy, built in or loaded from a shared object, is a filter type: a
 * table of hooks. A snapshot creates one instance per binding (per route, or
 * once for a global filter) on the control thread; the instance is then
 * shared read-only by all workers until the snapshot is released, so hooks
 * must not modify it. Per-exchange state goes in pt_exchange_set_data().
 *
 * Order: request hooks run global filters first, then route filters, in
 * configuration order; response hooks run in reverse order.
 *
 *   request head ──> request body* ──> [terminal: proxy] ──> response head ──> response body*
 *        │                                                          │
 *        └─ PT_FILTER_PAUSE: the runner stops here and remembers the position;
 *           pt_exchange_resume() continues with the same filter's next phase.
 *        └─ PT_FILTER_REPLIED: the hook called pt_exchange_reply*(); request
 *           hooks after it do not run, response hooks of the filters that
 *           already ran do. From a response hook, a reply replaces the
 *           upstream's response and the remaining response hooks are
 *           skipped (a replacement is never filtered again).
 *
 * A filter that must wait starts a cancellable asynchronous operation,
 * returns PT_FILTER_PAUSE and calls pt_exchange_resume() from its completion.
 * If the exchange ends first (client went away, timeout), on_done() runs and
 * must cancel that operation; after on_done() the exchange must not be used.
 *
 * Thread: create()/destroy() on the control thread; every other hook on the
 * worker that owns the exchange. Hooks never block.
 */
#ifndef PORTICO_FILTER_H
#define PORTICO_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/config.h"
#include "portico/exchange.h"
#include "portico/version.h"

enum pt_filter_status {
    PT_FILTER_CONTINUE = 0,
    PT_FILTER_PAUSE,
    PT_FILTER_REPLIED,
};

/* A piece of a body passing through the chain. Borrowed for the hook's
 * duration. A hook may inspect it, empty it (and keep the bytes for later),
 * or append to it. A filter that changes a body's length removes
 * content-length in its head hook (the body is then sent chunked or framed
 * by HTTP/2). Body hooks run only after every head hook of their direction
 * has continued; `end` is true exactly once, with the last chunk (possibly
 * empty). */
struct pt_chunk;

size_t pt_chunk_len(const struct pt_chunk *c);
/* Copy up to n bytes starting at offset into dst; returns bytes copied. */
size_t pt_chunk_copyout(const struct pt_chunk *c, size_t offset, void *dst, size_t n);
/* Status: 0 or PT_ERR_NOMEM. */
int pt_chunk_append(struct pt_chunk *c, const void *data, size_t n);
void pt_chunk_clear(struct pt_chunk *c);

struct pt_filter_type {
    const char *name;     /* "request-id", "headers", ... : the config's `name` */
    uint32_t abi_version; /* PT_ABI_VERSION */
    /* Pointer: the instance, or NULL after pt_diag_errorf() explained why. */
    void *(*create)(const struct pt_filter_config *cfg, struct pt_diag *diag);
    void (*destroy)(void *instance);
    /* Any hook may be NULL: that phase passes through. */
    enum pt_filter_status (*on_request_head)(struct pt_exchange *x, void *instance);
    enum pt_filter_status (*on_request_body)(struct pt_exchange *x, void *instance,
                                             struct pt_chunk *c, bool end);
    enum pt_filter_status (*on_response_head)(struct pt_exchange *x, void *instance);
    enum pt_filter_status (*on_response_body)(struct pt_exchange *x, void *instance,
                                              struct pt_chunk *c, bool end);
    /* Always called once for every exchange whose request hook ran, however
     * it ended: logging, statistics, cancelling pending work. */
    void (*on_done)(struct pt_exchange *x, void *instance);
};

/*
 * Register a filter type (built-ins at start-up, plugins from their
 * registration function). Status: 0, PT_ERR_CONFIG on a duplicate name or an
 * ABI major version mismatch. Thread: main thread, before workers start.
 */
int pt_filter_register(const struct pt_filter_type *type);

/* A plugin .so exports this symbol; portico calls it once when loading. */
typedef int pt_plugin_init_fn(void);
#define PT_PLUGIN_INIT_SYMBOL "pt_plugin_init"

#endif
