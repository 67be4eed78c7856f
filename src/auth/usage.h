/*
 * auth/usage.h - when each API key was last used, batched for the store.
 *
 * A process-wide registry of one small record per key name, outliving
 * snapshots (each snapshot's key table takes a reference on the record of
 * every key it has). A worker that accepts a key stores the wall-clock time
 * in the record - at most once per second per record (a compare-and-swap
 * that never moves the time backwards), so a hot key costs a load, not a
 * write, per request. There is no
 * queue to fill: a record holds the newest use, which is all last_used_at
 * needs (deduplication per key comes for free).
 *
 * The control thread collects every record used since its last successful
 * flush (pt_auth_usage_collect), writes the batch to the store, and marks
 * it flushed (pt_auth_usage_flushed) - or leaves it for the next round when
 * the store failed. pt_auth_usage_last() reads the flushed time, what the
 * admin API reports.
 *
 *   worker:   touch(rec, now) ──relaxed store──> rec.used
 *   control:  collect() ──> [(name, used)] ──store──> flushed(batch) ──> rec.flushed = used
 *   admin:    last(name) ──> rec.flushed
 *
 * Threads: ref/unref/collect/flushed/last from any thread (registry mutex,
 * never per request); touch on any worker (no lock, no allocation).
 */
#ifndef PT_AUTH_USAGE_H
#define PT_AUTH_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pt_auth_usage;

/* Pointer, never NULL: the record of key `name`, one more reference. */
struct pt_auth_usage *pt_auth_usage_ref(const char *name);
/* NULL is a no-op. A record whose last reference goes is forgotten (the key
 * was deleted); its unflushed use is dropped with it. */
void pt_auth_usage_unref(struct pt_auth_usage *u);

/* The key was used at now_ns (wall clock). Thread: any worker. */
void pt_auth_usage_touch(struct pt_auth_usage *u, uint64_t now_ns);

struct pt_auth_usage_entry {
    const char *name; /* the record's, valid until pt_auth_usage_batch_fini */
    uint64_t used_ns; /* wall clock */
    struct pt_auth_usage *rec;
};

struct pt_auth_usage_batch {
    struct pt_auth_usage_entry *v;
    size_t n;
};

/* Fill b with every record used since it was last flushed, by name; b is
 * the caller's (pt_auth_usage_batch_fini). Returns b->n. */
size_t pt_auth_usage_collect(struct pt_auth_usage_batch *b);
/* The batch reached the store: its uses become what pt_auth_usage_last()
 * reports, and are not collected again. */
void pt_auth_usage_flushed(const struct pt_auth_usage_batch *b);
void pt_auth_usage_batch_fini(struct pt_auth_usage_batch *b);

/* The last flushed use of key `name`: true with *ns, or false when none. */
bool pt_auth_usage_last(const char *name, uint64_t *ns);

#endif
