#include "filters/builtin.h"

#include <stddef.h>

#include "filters/headers/headers.h"
#include "filters/request_id/request_id.h"

static const struct pt_filter_type *const builtin[] = {
    &pt_filters_request_id_type,
    &pt_filters_headers_type,
};

int pt_filters_register_builtin(void)
{
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
        int err = pt_filter_register(builtin[i]);
        if (err)
            return err;
    }
    return 0;
}
