/*
 * The read-only config-tree accessors of portico/config.h, over
 * google.protobuf.Value. Every accessor accepts NULL (a missing key) and
 * answers "not that kind", so filters can chain lookups without checks.
 * Maps keep their configuration order; lookups are linear, which suits
 * create()-time reads of small blocks.
 */
#include "conf/filter_config.h"

#include <string.h>

void pt_filter_config_init(struct pt_filter_config *fc, const Google__Protobuf__Struct *config,
                           struct pt_str route_name)
{
    google__protobuf__struct__init(&fc->empty);
    google__protobuf__value__init(&fc->root);
    fc->root.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
    /* The ABI only reads through the Value; dropping const here is never
     * turned into a write. */
    fc->root.struct_value = config ? (Google__Protobuf__Struct *)config : &fc->empty;
    fc->route = route_name.ptr ? route_name : PT_STR("");
}

const struct pt_config_value *pt_filter_config_root(const struct pt_filter_config *cfg)
{
    return pt_config_value_of(&cfg->root);
}

struct pt_str pt_filter_config_route(const struct pt_filter_config *cfg)
{
    return cfg->route;
}

enum pt_config_kind pt_config_kind(const struct pt_config_value *v)
{
    const Google__Protobuf__Value *pv = pt_config_value_pb(v);
    if (!pv)
        return PT_CONFIG_NULL;
    switch (pv->kind_case) {
    case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
        return PT_CONFIG_BOOL;
    case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
        return PT_CONFIG_NUMBER;
    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
        return PT_CONFIG_STRING;
    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
        return PT_CONFIG_LIST;
    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
        return PT_CONFIG_MAP;
    default:
        return PT_CONFIG_NULL;
    }
}

/* The map behind v, or NULL (a Value may hold a NULL Struct when it came
 * from the wire rather than the loader). */
static const Google__Protobuf__Struct *as_map(const struct pt_config_value *v)
{
    const Google__Protobuf__Value *pv = pt_config_value_pb(v);
    if (!pv || pv->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE)
        return NULL;
    return pv->struct_value;
}

static const Google__Protobuf__ListValue *as_list(const struct pt_config_value *v)
{
    const Google__Protobuf__Value *pv = pt_config_value_pb(v);
    if (!pv || pv->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE)
        return NULL;
    return pv->list_value;
}

const struct pt_config_value *pt_config_find(const struct pt_config_value *v, const char *key)
{
    const Google__Protobuf__Struct *s = as_map(v);
    if (!s || !key)
        return NULL;
    for (size_t i = 0; i < s->n_fields; i++) {
        const Google__Protobuf__Struct__FieldsEntry *e = s->fields[i];
        if (e && e->key && strcmp(e->key, key) == 0)
            return pt_config_value_of(e->value);
    }
    return NULL;
}

bool pt_config_bool(const struct pt_config_value *v, bool *out)
{
    const Google__Protobuf__Value *pv = pt_config_value_pb(v);
    if (!pv || pv->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE)
        return false;
    *out = pv->bool_value != 0;
    return true;
}

bool pt_config_number(const struct pt_config_value *v, double *out)
{
    const Google__Protobuf__Value *pv = pt_config_value_pb(v);
    if (!pv || pv->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE)
        return false;
    *out = pv->number_value;
    return true;
}

bool pt_config_string(const struct pt_config_value *v, struct pt_str *out)
{
    const Google__Protobuf__Value *pv = pt_config_value_pb(v);
    if (!pv || pv->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
        return false;
    *out = pv->string_value ? pt_str_from_cstr(pv->string_value) : PT_STR("");
    return true;
}

size_t pt_config_len(const struct pt_config_value *v)
{
    const Google__Protobuf__Struct *s = as_map(v);
    if (s)
        return s->n_fields;
    const Google__Protobuf__ListValue *l = as_list(v);
    return l ? l->n_values : 0;
}

const struct pt_config_value *pt_config_at(const struct pt_config_value *v, size_t i,
                                           struct pt_str *key)
{
    const Google__Protobuf__Struct *s = as_map(v);
    if (s) {
        if (i >= s->n_fields || !s->fields[i])
            return NULL;
        if (key)
            *key = s->fields[i]->key ? pt_str_from_cstr(s->fields[i]->key) : PT_STR("");
        return pt_config_value_of(s->fields[i]->value);
    }
    const Google__Protobuf__ListValue *l = as_list(v);
    if (!l || i >= l->n_values)
        return NULL;
    if (key)
        *key = PT_STR_NULL;
    return pt_config_value_of(l->values[i]);
}
