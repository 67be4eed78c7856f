/*
 * store/store_int.h - what a store kind implements (private to src/store).
 */
#ifndef PT_STORE_STORE_INT_H
#define PT_STORE_STORE_INT_H

#include "portico/errors.h"
#include "store/store.h"

struct pt_store_ops {
    const char *kind;
    bool (*connected)(const struct pt_store *s);
    int (*load)(struct pt_store *s, Portico__Config__V1__Config **managed, uint64_t *version,
                char *err, size_t errlen);
    int (*commit)(struct pt_store *s, const Portico__Config__V1__Config *old,
                  const Portico__Config__V1__Config *next, uint64_t expected_version, char *err,
                  size_t errlen);
    void (*close)(struct pt_store *s);
    /* NULL: the kind keeps usage in memory only (0). */
    int (*record_key_use)(struct pt_store *s, const struct pt_store_key_use *v, size_t n, char *err,
                          size_t errlen);
};

/* Every store starts with this; kinds embed it first. */
struct pt_store {
    const struct pt_store_ops *ops;
};

/* Helpers shared by the kinds (store.c). */

/* An empty managed Config (caller frees with protobuf_c_message_free_unpacked). */
Portico__Config__V1__Config *pt_store_empty_config(void);

void pt_store_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
