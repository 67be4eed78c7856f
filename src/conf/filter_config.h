/*
 * conf/filter_config.h - the filter-config ABI (portico/config.h) over the
 * loaded configuration.
 *
 * A filter's `config:` block is a google.protobuf.Struct in the Config
 * message; a pt_config_value is a google.protobuf.Value, so a filter reads
 * the very messages the loader (or the admin API) produced, without a copy.
 * The root is a Struct rather than a Value, so pt_filter_config carries a
 * Value wrapping it: that is the one piece of storage this needs.
 *
 * Thread: the control thread, while the snapshot compiler calls create().
 */
#ifndef PT_CONF_FILTER_CONFIG_H
#define PT_CONF_FILTER_CONFIG_H

#include "google/protobuf/struct.pb-c.h"
#include "portico/config.h"
#include "portico/str.h"

/* Caller-owned (usually on the stack around one create() call). */
struct pt_filter_config {
    Google__Protobuf__Value root;   /* STRUCT_VALUE pointing at the config block */
    Google__Protobuf__Struct empty; /* the root when the filter has no config */
    struct pt_str route;            /* borrowed; "" for a global filter */
};

/*
 * Point fc at a filter's config block. `config` (NULL = no block, read as an
 * empty map) and route_name's bytes are borrowed: they must outlive every use
 * of fc and of the values read through it.
 */
void pt_filter_config_init(struct pt_filter_config *fc, const Google__Protobuf__Struct *config,
                           struct pt_str route_name);

/* The Value behind a pt_config_value, and back (the same object). */
static inline const Google__Protobuf__Value *pt_config_value_pb(const struct pt_config_value *v)
{
    return (const Google__Protobuf__Value *)(const void *)v;
}

static inline const struct pt_config_value *pt_config_value_of(const Google__Protobuf__Value *v)
{
    return (const struct pt_config_value *)(const void *)v;
}

#endif
