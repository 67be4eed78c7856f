/*
 * admin/admin_int.h - private to src/admin: the control plane's state, the
 * managed kinds described generically, and message helpers.
 */
#ifndef PT_ADMIN_ADMIN_INT_H
#define PT_ADMIN_ADMIN_INT_H

#include <pthread.h>
#include <sys/types.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "admin/control.h"
#include "admin/server.h"
#include "conf/conf.h"
#include "discovery/discovery.h"
#include "store/store.h"

typedef Portico__Config__V1__Config Config;

struct pt_tc_reflector;

struct pt_control {
    pthread_mutex_t lock;
    char *config_path;
    unsigned nworkers;
    struct pt_worker **wptrs; /* NULL until attached */
    struct event_base *base;

    struct pt_conf *local; /* the instance file as last loaded */
    char *seed;            /* hash of the file's managed sections */
    Config *managed;       /* the managed document, objects with versions */
    uint64_t version;
    struct pt_store *store;
    struct pt_store *cache; /* PostgreSQL: the state file keeps its last document */
    bool store_writable;    /* the file store could not be written at start */

    struct pt_snapshot *snap;
    uint64_t generation;
    bool draining;
    struct timespec started;

    /* Service discovery: the thread (started on attach) and the instances
     * it found, by service, compiled into every snapshot. */
    struct pt_discovery *disc;
    struct pt_ctl_disc *dsets;
    size_t ndsets;

    /* Services with `reflection: true`: the thread fetching their
     * descriptors (started on attach, told every new configuration). */
    struct pt_tc_reflector *reflector;

    /* API-key usage (auth/usage.h) written to the store in batches, every
     * auth.usage_flush_ms on the main thread's loop (started on attach). */
    struct event *usage_timer;
};

struct pt_ctl_disc {
    char *service;
    struct pt_disc_instance *v;
    size_t n;
};

/* ---- the managed kinds ---- */

enum pt_kind {
    PT_KIND_SERVICE,
    PT_KIND_ROUTE,
    PT_KIND_RATE_LIMIT_RULE,
    PT_KIND_PLUGIN,
    PT_KIND_API_KEY,
    PT_KIND_COUNT,
};

struct pt_kind_info {
    const char *name;   /* "route" */
    const char *field;  /* Config field: "routes" */
    const char *single; /* request field name for violations: "route" */
    const ProtobufCMessageDescriptor *desc;
};

const struct pt_kind_info *pt_kind_info(enum pt_kind k);
size_t pt_kind_count(const Config *cfg, enum pt_kind k);
ProtobufCMessage **pt_kind_items(const Config *cfg, enum pt_kind k);
/* Replace the kind's array (takes ownership of items; frees nothing). */
void pt_kind_set(Config *cfg, enum pt_kind k, ProtobufCMessage **items, size_t n);
/* Index of the object named name, or -1. */
ssize_t pt_kind_find(const Config *cfg, enum pt_kind k, const char *name);

/* Every managed object has `name` and `version`. */
const char *pt_obj_name(const ProtobufCMessage *m);
void pt_obj_set_name(ProtobufCMessage *m, const char *name);
uint64_t pt_obj_version(const ProtobufCMessage *m);
void pt_obj_set_version(ProtobufCMessage *m, uint64_t v);

/* ---- message helpers (msg.c) ---- */

ProtobufCMessage *pt_msg_dup(const ProtobufCMessage *m);
void pt_msg_free(ProtobufCMessage *m);
bool pt_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b);
/* Equal when `version` is ignored. */
bool pt_obj_equal(const ProtobufCMessage *a, const ProtobufCMessage *b);
/* Top-level fields (other than version) that differ, as a malloc'd array
 * of borrowed names. */
size_t pt_obj_diff_fields(const ProtobufCMessage *a, const ProtobufCMessage *b,
                          const char ***names);
/*
 * Copy the field at `path` ("timeout_ms", "tls.ca_file") from src into dst
 * (both of the same type; src is consumed: its field is swapped out).
 * Status: 0, or PT_ERR_INVALID when path names no field.
 */
int pt_msg_copy_path(ProtobufCMessage *dst, ProtobufCMessage *src, const char *path);

/* A Config holding only the managed sections of cfg (deep copy). */
Config *pt_managed_extract(const Config *cfg);
/* A deep copy of `local` with its managed sections replaced by managed's. */
Config *pt_managed_merge(const Config *local, const Config *managed);
/* Lowercase hex SHA-256 of the managed sections (versions ignored). */
char *pt_managed_hash(const Config *managed);
/* Set `version` to 0 on every managed object (for export and hashing). */
void pt_managed_clear_versions(Config *managed);

/* ---- changes (control.c) ---- */

/*
 * An edit builds the next managed document from a copy of the current one.
 * It sets `version` = next_version on the objects it touches. On failure it
 * fills st and returns non-zero. focus, when set, names the request field
 * that violations under focus_path belong to ("route" for
 * "routes[4]...").
 */
struct pt_edit {
    int (*fn)(struct pt_edit *e, Config *next, uint64_t next_version, struct pt_admin_status *st);
    void *arg;
    char focus_path[64];
    const char *focus;
    bool noop; /* set by fn: nothing changed, commit nothing */
};

/*
 * Run an edit: validate and compile the merged result, commit it to the
 * store, publish. dry_run stops after compiling (nothing changes).
 * On CONFLICT from the store the document is reloaded and the edit re-run
 * (a few times). Status: 0 (st untouched), else st holds the gRPC status.
 * *version_out gets the resulting version.
 */
int pt_control_change(struct pt_control *c, struct pt_edit *e, bool dry_run,
                      struct pt_admin_status *st, uint64_t *version_out);

/* Under the lock: read-only access to the current document. */
void pt_control_lock(struct pt_control *c);
void pt_control_unlock(struct pt_control *c);

/* Compile `desired` (a full managed document) merged with the instance
 * file without binding anything; violations into st. Status: 0 or -1. */
int pt_control_check(struct pt_control *c, const Config *managed, const char *focus_path,
                     const char *focus, struct pt_admin_status *st);

/* Diff of two managed documents for Apply (control.c). */
struct pt_change {
    int action; /* PORTICO__ADMIN__V1__CHANGE__ACTION__* */
    enum pt_kind kind;
    char *name;
    const char **fields;
    size_t nfields;
};
/*
 * next = desired's objects (unchanged ones keep current's version, others
 * get next_version) plus, with keep_absent, current's objects desired lacks.
 * Returns next (caller frees) and the changes (caller frees with
 * pt_changes_free).
 */
Config *pt_managed_apply(const Config *current, const Config *desired, bool keep_absent,
                         uint64_t next_version, struct pt_change **changes, size_t *nchanges);
void pt_changes_free(struct pt_change *v, size_t n);

/* ---- registration methods (registration.c) ---- */

void pt_admin_register_instance(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                                struct pt_admin_status *st);
void pt_admin_heartbeat(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                        struct pt_admin_status *st);
void pt_admin_deregister_instance(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                                  struct pt_admin_status *st);
void pt_admin_list_registrations(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                                 struct pt_admin_status *st);

/* ---- descriptors from reflection (descriptors.c) ---- */

void pt_admin_refresh_descriptors(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                                  struct pt_admin_status *st);
void pt_admin_get_descriptors_status(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                                     struct pt_admin_status *st);

#endif
