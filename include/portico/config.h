/*
 * portico/config.h - read-only access to a filter's configuration.
 *
 * A filter's `config:` block (YAML mapping, or JSON object over the admin
 * API) reaches its create() hook as a tree of pt_config_value: null, bool,
 * number, string, list or map. Values are owned by the snapshot being
 * compiled and borrowed only for the duration of create(): copy what the
 * instance keeps.
 *
 * Thread: the control thread (create() runs there).
 */
#ifndef PORTICO_CONFIG_H
#define PORTICO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "portico/str.h"

struct pt_config_value;
struct pt_filter_config;
struct pt_diag;

enum pt_config_kind {
    PT_CONFIG_NULL = 0,
    PT_CONFIG_BOOL,
    PT_CONFIG_NUMBER,
    PT_CONFIG_STRING,
    PT_CONFIG_LIST,
    PT_CONFIG_MAP,
};

/* The filter's whole config block: a map (empty when none was given). */
const struct pt_config_value *pt_filter_config_root(const struct pt_filter_config *cfg);
/* Name of the route the instance is bound to, or "" for a global filter. */
struct pt_str pt_filter_config_route(const struct pt_filter_config *cfg);

enum pt_config_kind pt_config_kind(const struct pt_config_value *v);
/* Map lookup: the value for key, or NULL when v is not a map or has no key. */
const struct pt_config_value *pt_config_find(const struct pt_config_value *v, const char *key);
/* Scalar reads: true when v has that kind (a NULL v never does). */
bool pt_config_bool(const struct pt_config_value *v, bool *out);
bool pt_config_number(const struct pt_config_value *v, double *out);
bool pt_config_string(const struct pt_config_value *v, struct pt_str *out);
/* Lists and maps: number of elements (0 for scalars), and the i-th element;
 * for maps, *key receives the element's key (may be NULL). */
size_t pt_config_len(const struct pt_config_value *v);
const struct pt_config_value *pt_config_at(const struct pt_config_value *v, size_t i,
                                           struct pt_str *key);

/*
 * Report a configuration error. `field` is a dotted path inside the filter's
 * config ("set.x-env"), or NULL for the block as a whole; the caller adds the
 * file, line and route. Any error makes the whole configuration invalid.
 */
void pt_diag_errorf(struct pt_diag *diag, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
