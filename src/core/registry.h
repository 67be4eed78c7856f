/*
 * core/registry.h - the table of filter types, by name.
 *
 * Filled on the main thread before workers start (built-ins, then plugins);
 * read-only afterwards, so lookups take no lock.
 */
#ifndef PT_CORE_REGISTRY_H
#define PT_CORE_REGISTRY_H

#include "portico/filter.h"

/* Pointer: the type, or NULL when no type has that name. */
const struct pt_filter_type *pt_filter_type_find(struct pt_str name);
/* Number of registered types, and the i-th (for listing). */
size_t pt_filter_type_count(void);
const struct pt_filter_type *pt_filter_type_at(size_t i);

#endif
