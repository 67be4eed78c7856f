/*
 * store/store.h - where the managed configuration lives.
 *
 * The managed part of a configuration (services, routes, rate-limit rules,
 * plugins, API keys: see config.proto) is kept by a store, as one document
 * with one version number that every accepted change increases by one. Two
 * kinds exist:
 *
 *   file      one state file, replaced atomically (temp file, fsync, rename,
 *             fsync of the directory); one instance.
 *   postgres  the tables of sql/, one transaction per change that bumps the
 *             version and NOTIFYs; any number of instances LISTEN and reload.
 *
 * Every object in a loaded document carries its `version` (the document
 * version at which it last changed); the store keeps it.
 *
 *   load ──> (managed, version) ──admin change──> commit(old, new, expected)
 *                  ^                                  │ PT_ERR_CONFLICT when the
 *                  └──── on_change (another writer) ──┘ stored version moved
 *
 * Thread: a store is used by the control side only. commit() and load() may
 * be called from the admin thread while the main thread's event base runs
 * the change watch (postgres); the implementation keeps the two apart (one
 * database connection each).
 */
#ifndef PT_STORE_STORE_H
#define PT_STORE_STORE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "portico/config/v1/config.pb-c.h"

struct pt_store;

/* Called on the main thread's event base when the stored configuration
 * changed under us (another instance wrote, or the connection came back
 * after an outage and may have missed notifications); not for this store's
 * own commits. The receiver calls pt_store_load() (it may do so from inside
 * the callback); it must not close the store from inside the callback. */
typedef void pt_store_changed_fn(void *arg);

/*
 * Open a file store on path (the state file; created on first commit).
 * Pointer: the store, or NULL with a reason in err.
 */
struct pt_store *pt_store_file_open(const char *path, char *err, size_t errlen);

/*
 * Open a PostgreSQL store: conninfo is a libpq URI or key=value string.
 * Connects once, synchronously, for the initial load; when the database is
 * unreachable it still returns the store (pt_store_connected() false) and
 * keeps reconnecting with backoff on base (required; the thread running it
 * must also be the one that closes the store). on_change runs on base.
 * load/commit block for at most a few seconds (connect_timeout=3,
 * statement_timeout 5 s) and fail fast while the database is known down.
 * Pointer: the store, or NULL with a reason in err (bad conninfo, schema
 * missing or older than this binary: "run portico --migrate").
 */
struct pt_store *pt_store_pg_open(const char *conninfo, struct event_base *base,
                                  pt_store_changed_fn *on_change, void *arg, char *err,
                                  size_t errlen);

/*
 * Apply the numbered migrations of sql/ (embedded in the binary) that the
 * database has not seen, each in its own transaction, and print what was
 * done. Status: 0, or PT_ERR_STORE_UNAVAILABLE / PT_ERR_CONFIG with err.
 */
int pt_store_pg_migrate(const char *conninfo, char *err, size_t errlen);

/* "file" or "postgres". */
const char *pt_store_kind(const struct pt_store *s);

/* Reachable now, as far as the store knows (file: always true; postgres:
 * both its connections are up - a dead query connection is only noticed on
 * its next use). */
bool pt_store_connected(const struct pt_store *s);

/*
 * Read the whole managed configuration. *managed gets a Config holding only
 * managed sections (caller frees with protobuf_c_message_free_unpacked(..,
 * NULL)); *version its version. A store never written to returns an empty
 * Config and version 0.
 * Status: 0, PT_ERR_STORE_UNAVAILABLE, or PT_ERR_CONFIG (stored data is
 * unreadable; err says where) - never a partial document.
 */
int pt_store_load(struct pt_store *s, Portico__Config__V1__Config **managed, uint64_t *version,
                  char *err, size_t errlen);

/*
 * Replace the stored configuration `old` (what the caller last loaded, at
 * expected_version) by `next`, whose version is expected_version + 1 and
 * whose changed objects already carry that version. Atomic: afterwards the
 * store holds either old or next, never a mix, whatever happens to the
 * process or the database connection. The postgres store writes only the
 * rows of objects that differ between old and next.
 * Status: 0; PT_ERR_CONFLICT when the stored version is no longer
 * expected_version (someone else wrote: load and retry);
 * PT_ERR_STORE_UNAVAILABLE (nothing written - except when the connection
 * died during COMMIT, whose outcome is then unknown: load again, the version
 * tells); PT_ERR_INVALID (postgres: an object without a name, a name used
 * twice, or data the schema refuses; nothing written).
 */
int pt_store_commit(struct pt_store *s, const Portico__Config__V1__Config *old,
                    const Portico__Config__V1__Config *next, uint64_t expected_version, char *err,
                    size_t errlen);

/* When an API key was last used (a batch collected by src/auth/usage.h). */
struct pt_store_key_use {
    const char *name; /* the key's name */
    uint64_t used_ns; /* wall clock */
};

/*
 * Record API-key usage. postgres: one UPDATE of api_keys.last_used_at for
 * the whole batch (a time never moves backwards), outside the versioned
 * document: no version bump, no NOTIFY, the spec untouched. file: nothing
 * is written (the times stay in memory and the admin API reports them;
 * rewriting the state file every few seconds for this would churn the disk
 * and every instance's change detection). Keys the store does not hold are
 * ignored. Status: 0 or PT_ERR_STORE_UNAVAILABLE (err says why).
 */
int pt_store_record_key_use(struct pt_store *s, const struct pt_store_key_use *v, size_t n,
                            char *err, size_t errlen);

/* File store only: an opaque tag saved with the state (the hash of the seed
 * the YAML file gave), read back by pt_store_file_seed(). */
int pt_store_file_set_seed(struct pt_store *s, const char *seed);
const char *pt_store_file_seed(const struct pt_store *s);

/* NULL is a no-op. */
void pt_store_close(struct pt_store *s);

/* Message helpers the store kinds and their callers share: a deep copy
 * through pack/unpack (freed with protobuf_c_message_free_unpacked(..,
 * NULL); aborts on allocation failure), and equality as identical packed
 * bytes (protobuf-c packs fields in number order, so equal messages pack
 * equal; NULL equals only NULL). */
ProtobufCMessage *pt_store_msg_dup(const ProtobufCMessage *m);
bool pt_store_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b);

#endif
