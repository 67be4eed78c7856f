#include "core/registry.h"

#include <string.h>

#include "core/log.h"

#define MAX_FILTER_TYPES 128

static const struct pt_filter_type *types[MAX_FILTER_TYPES];
static size_t ntypes;

int pt_filter_register(const struct pt_filter_type *type)
{
    if (!type || !type->name || !*type->name) {
        pt_log_error("filter registration without a name");
        return PT_ERR_CONFIG;
    }
    if ((type->abi_version >> 16) != PT_ABI_VERSION_MAJOR) {
        pt_log_error("filter type %s: ABI %u.%u, portico speaks %u.%u", type->name,
                     type->abi_version >> 16, type->abi_version & 0xffffu, PT_ABI_VERSION_MAJOR,
                     PT_ABI_VERSION_MINOR);
        return PT_ERR_CONFIG;
    }
    if (pt_filter_type_find(pt_str_from_cstr(type->name))) {
        pt_log_error("filter type %s registered twice", type->name);
        return PT_ERR_CONFIG;
    }
    if (ntypes == MAX_FILTER_TYPES) {
        pt_log_error("too many filter types (max %d)", MAX_FILTER_TYPES);
        return PT_ERR_CONFIG;
    }
    types[ntypes++] = type;
    return 0;
}

const struct pt_filter_type *pt_filter_type_find(struct pt_str name)
{
    for (size_t i = 0; i < ntypes; i++)
        if (pt_str_eq(pt_str_from_cstr(types[i]->name), name))
            return types[i];
    return NULL;
}

size_t pt_filter_type_count(void)
{
    return ntypes;
}

const struct pt_filter_type *pt_filter_type_at(size_t i)
{
    return i < ntypes ? types[i] : NULL;
}
