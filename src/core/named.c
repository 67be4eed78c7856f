/*
 * Objects shared by name across snapshots (see named.h).
 */
#include "core/named.h"

#include <string.h>

static struct pt_named **find(struct pt_named_table *t, const char *key)
{
    struct pt_named **pp = &t->head;
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

struct pt_named *pt_named_ref(struct pt_named_table *t, const char *key,
                              const struct pt_named_ops *ops, const void *arg)
{
    pthread_mutex_lock(&t->mu);
    struct pt_named **pp = find(t, key);
    struct pt_named *n = *pp;
    if (n && (!ops->same || ops->same(n, arg))) {
        n->refs++;
        pthread_mutex_unlock(&t->mu);
        return n;
    }
    if (n) {
        /* Changed settings: the old object stays with its holders. */
        *pp = n->next;
        n->listed = false;
    }
    n = ops->make(key, arg);
    n->refs = 1;
    n->listed = true;
    n->next = t->head;
    t->head = n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void pt_named_unref(struct pt_named_table *t, struct pt_named *n, const struct pt_named_ops *ops)
{
    if (!n)
        return;
    pthread_mutex_lock(&t->mu);
    bool last = --n->refs == 0;
    if (last && n->listed) {
        struct pt_named **pp = &t->head;
        while (*pp != n)
            pp = &(*pp)->next;
        *pp = n->next;
    }
    pthread_mutex_unlock(&t->mu);
    if (last)
        ops->destroy(n);
}

bool pt_named_visit(struct pt_named_table *t, const char *key,
                    void (*fn)(struct pt_named *n, void *arg), void *arg)
{
    pthread_mutex_lock(&t->mu);
    struct pt_named *n = *find(t, key);
    if (n)
        fn(n, arg);
    pthread_mutex_unlock(&t->mu);
    return n != NULL;
}
