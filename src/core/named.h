/*
 * core/named.h - reference-counted objects shared by name across snapshots.
 *
 * Circuit breakers, instance health and retry budgets belong to a name
 * ("service" or "service/host:port"), not to one compiled snapshot: every
 * snapshot that has the name holds a reference, so a reload that keeps the
 * name keeps the object and its state. An object whose settings changed is
 * replaced in its table; the old one lives on, unlisted, with the snapshots
 * that still hold it, and goes with the last of them.
 *
 * Embed a struct pt_named in the object and give the table its functions.
 *
 * Thread: any; one mutex per table, held only for the list operations and
 * the callbacks below (which must not call back into the table).
 */
#ifndef PT_CORE_NAMED_H
#define PT_CORE_NAMED_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct pt_named {
    struct pt_named *next;
    char *key;
    unsigned refs;
    bool listed; /* in its table (false once replaced) */
};

struct pt_named_table {
    pthread_mutex_t mu;
    struct pt_named *head;
};

#define PT_NAMED_TABLE_INIT             \
    {                                   \
        PTHREAD_MUTEX_INITIALIZER, NULL \
    }

/* The object that embeds n as its member `member`. */
#define PT_NAMED_OF(n, type, member) ((type *)(void *)((char *)(n)-offsetof(type, member)))

struct pt_named_ops {
    /* A new object for key and arg, its pt_named's key set (refs and
     * listing are the table's). Never NULL (allocation aborts). */
    struct pt_named *(*make)(const char *key, const void *arg);
    /* Whether the listed object n still fits arg; NULL: always. */
    bool (*same)(const struct pt_named *n, const void *arg);
    /* Free the whole object, its key included. */
    void (*destroy)(struct pt_named *n);
};

/* One more reference to key's object: the listed one if it fits arg, else
 * a new one (listed in its place). */
struct pt_named *pt_named_ref(struct pt_named_table *t, const char *key,
                              const struct pt_named_ops *ops, const void *arg);

/* Drop a reference; the last one unlists and destroys the object. */
void pt_named_unref(struct pt_named_table *t, struct pt_named *n, const struct pt_named_ops *ops);

/* Call fn on key's listed object under the table's lock. Returns whether
 * there was one. */
bool pt_named_visit(struct pt_named_table *t, const char *key,
                    void (*fn)(struct pt_named *n, void *arg), void *arg);

#endif
