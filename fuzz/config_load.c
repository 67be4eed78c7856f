/*
 * Fuzz target: arbitrary bytes as a YAML configuration, loaded, validated
 * and freed. Must never crash, hang, or leak, whatever the bytes: the
 * loader's node, depth, size and error limits are what keep it bounded.
 * Validation may look at the file system (readable cert files, the access
 * log's directory) but only reads.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "portico/filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The built-in names the examples use, so seeds validate all the way. */
static const struct pt_filter_type request_id = {.name = "request-id",
                                                 .abi_version = PT_ABI_VERSION};
static const struct pt_filter_type headers = {.name = "headers", .abi_version = PT_ABI_VERSION};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool registered;
    if (!registered) {
        pt_filter_register(&request_id);
        pt_filter_register(&headers);
        registered = true;
    }
    struct pt_diag diag;
    pt_diag_init(&diag);
    struct pt_conf *c = pt_conf_load_string("fuzz.yaml", (const char *)data, size, &diag);
    if (c) {
        char where[256];
        const Portico__Config__V1__Config *cfg = pt_conf_config(c);
        pt_conf_validate(c, &diag);
        pt_conf_where(c, NULL, "listeners", where, sizeof(where));
        for (size_t i = 0; i < cfg->n_routes; i++) {
            char name[256];
            pt_conf_route_name(cfg->routes[i], name, sizeof(name));
            pt_conf_where(c, cfg->routes[i], "methods[0]", where, sizeof(where));
        }
    }
    pt_conf_free(c);
    pt_diag_fini(&diag);
    return 0;
}
