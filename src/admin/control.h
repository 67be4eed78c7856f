/*
 * admin/control.h - the control plane: one owner for the running
 * configuration.
 *
 * A running configuration has two parts (config.proto says which field is
 * which):
 *
 *   instance  workers, listeners, limits, access log, global filters, admin:
 *             read from this instance's file, reloaded on SIGHUP
 *   managed   services, routes, rate-limit rules, plugins, API keys: kept by
 *             the store (file or PostgreSQL), changed through the admin API,
 *             versioned
 *
 * pt_control merges them into one Config, compiles it into a snapshot and
 * publishes that to every worker. Every change - an admin call, SIGHUP, a
 * notification that another instance changed the store - runs under one
 * lock: build the next managed document, validate and compile the merged
 * whole, commit it to the store, publish. A failure at any step leaves the
 * running snapshot, the store and the in-memory document as they were.
 *
 * The YAML file seeds the managed part. With the file store, a file whose
 * managed sections changed since they were last seeded (a hash kept in the
 * state file) is applied on start and on SIGHUP like `porticoctl apply`;
 * otherwise the state file (admin changes included) is what runs. With
 * PostgreSQL, the file seeds an empty database once; afterwards its managed
 * sections are ignored (and a warning says so), and the state file caches
 * the database's document so a restart while the database is down serves
 * the last good configuration.
 *
 * Thread: pt_control_open/attach/close on the main thread; everything else
 * from the main thread or the admin thread (serialized by the lock).
 */
#ifndef PT_ADMIN_CONTROL_H
#define PT_ADMIN_CONTROL_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/snapshot.h"
#include "core/worker.h"

struct pt_control;

struct pt_control_opts {
    const char *config_path;
    const char *store_override; /* --store, or NULL */
    unsigned workers_flag;      /* --workers, or 0 */
    struct event_base *base;    /* the main thread's; the PostgreSQL watch runs on it */
};

/*
 * Load the instance file, open the store, load (or seed) the managed part
 * and compile the first snapshot, binding listeners for the worker count.
 * Pointer: the control plane, or NULL after printing every error to stderr.
 */
struct pt_control *pt_control_open(const struct pt_control_opts *o);

unsigned pt_control_nworkers(const struct pt_control *c);

/* Pointer: the current snapshot with a reference the caller drops. */
struct pt_snapshot *pt_control_snapshot_ref(struct pt_control *c);

/* Publish the current snapshot to these workers; later changes reach them
 * too. wptrs must outlive the control plane. */
void pt_control_attach(struct pt_control *c, struct pt_worker **wptrs);

/* SIGHUP: re-read the file. Status: 0, or PT_ERR_CONFIG (reported; the
 * running configuration stays). */
int pt_control_reload_file(struct pt_control *c);

/* The store says it changed (another instance, or it came back). */
void pt_control_on_store_change(void *arg);

/* Start of a drain: admin writes are refused (main turns the admin
 * server's health to NOT_SERVING). */
void pt_control_set_draining(struct pt_control *c);

/* The discovery object (registrations), or NULL before attach. */
struct pt_discovery *pt_control_discovery(struct pt_control *c);

/* The admin service's settings from the instance file. */
const Portico__Config__V1__Admin *pt_control_admin_conf(const struct pt_control *c);
const char *pt_control_config_path(const struct pt_control *c);

/* The portico.admin.v1.Admin methods (service.c), for
 * pt_admin_server_start() with the control plane as ctx. */
struct pt_admin_method;
const struct pt_admin_method *pt_admin_service_methods(size_t *n);

/* NULL is a no-op. Workers must be stopped first. */
void pt_control_close(struct pt_control *c);

#endif
