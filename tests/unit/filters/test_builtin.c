/*
 * Registration of the built-in filter types, and the configuration
 * examples of their READMEs: a whole portico document with `filters:` at
 * the top level and on a route, each block handed to its type's create().
 */
#include "harness.h"

#include "core/registry.h"
#include "filters/builtin.h"

typedef Portico__Config__V1__Config Config;
typedef Portico__Config__V1__Filter Filter;

static void test_register__adds_every_builtin_type_by_name(void **state)
{
    assert_int_equal(pt_filters_register_builtin(), 0);
    const struct pt_filter_type *rid = pt_filter_type_find(PT_STR("request-id"));
    const struct pt_filter_type *hdr = pt_filter_type_find(PT_STR("headers"));
    assert_non_null(rid);
    assert_non_null(hdr);
    assert_int_equal(rid->abi_version, PT_ABI_VERSION);
    assert_int_equal(hdr->abi_version, PT_ABI_VERSION);
    assert_non_null(rid->create);
    assert_non_null(hdr->destroy);
}

static void test_register__twice_reports_the_duplicate(void **state)
{
    /* The first test registered them already (the registry is process-wide). */
    assert_int_equal(pt_filters_register_builtin(), PT_ERR_CONFIG);
}

/* Create every filter of a list through the registry; all must succeed. */
static void create_all(Filter *const *filters, size_t n, struct pt_str route)
{
    for (size_t i = 0; i < n; i++) {
        const struct pt_filter_type *t = pt_filter_type_find(pt_str_from_cstr(filters[i]->name));
        assert_non_null(t);
        struct pt_diag diag;
        pt_diag_init(&diag);
        struct pt_filter_config fc;
        pt_filter_config_init(&fc, filters[i]->config, route);
        void *inst = t->create(&fc, &diag);
        if (!inst)
            fail_msg("%s: %s", filters[i]->name, pt_diag_text(&diag));
        t->destroy(inst);
        pt_diag_fini(&diag);
    }
}

/* Load a whole document and create every filter in it, global and per route. */
static void load_and_create_all(const char *yaml)
{
    if (pt_filter_type_count() == 0)
        assert_int_equal(pt_filters_register_builtin(), 0);
    struct pt_diag diag;
    pt_diag_init(&diag);
    struct pt_conf *conf = pt_conf_load_string("portico.yaml", yaml, strlen(yaml), &diag);
    if (!conf)
        fail_msg("%s", pt_diag_text(&diag));
    const Config *cfg = pt_conf_config(conf);
    assert_true(cfg->n_filters > 0 || cfg->n_routes > 0);
    create_all(cfg->filters, cfg->n_filters, PT_STR(""));
    for (size_t i = 0; i < cfg->n_routes; i++)
        create_all(cfg->routes[i]->filters, cfg->routes[i]->n_filters,
                   pt_str_from_cstr(cfg->routes[i]->name));
    pt_conf_free(conf);
    pt_diag_fini(&diag);
}

/* The examples in src/filters/request_id/README.md, verbatim. */
static void test_readme_examples__request_id(void **state)
{
    load_and_create_all("filters:                      # top level: every route\n"
                        "  - name: request-id\n"
                        "    config:\n"
                        "      header: x-request-id\n"
                        "      trust_incoming: false   # the edge mints ids; clients cannot "
                        "choose them\n"
                        "      response: true\n");
    load_and_create_all("routes:\n"
                        "  - name: partner-api\n"
                        "    path_prefix: /partner\n"
                        "    service: partner\n"
                        "    filters:\n"
                        "      - name: request-id\n"
                        "        config: {header: X-Correlation-ID}\n");
}

/* The examples in src/filters/headers/README.md, verbatim. */
static void test_readme_examples__headers(void **state)
{
    load_and_create_all("routes:\n"
                        "  - name: items\n"
                        "    path_prefix: /v1/items\n"
                        "    service: items\n"
                        "    filters:\n"
                        "      - name: headers\n"
                        "        config:\n"
                        "          request:\n"
                        "            set: {x-env: prod}\n"
                        "            add: {x-tag: [edge, eu-west]}\n"
                        "            remove: [x-debug]\n");
    load_and_create_all("filters:\n"
                        "  - name: headers\n"
                        "    config:\n"
                        "      response:\n"
                        "        remove: [server, x-powered-by]\n"
                        "        set:\n"
                        "          strict-transport-security: max-age=31536000\n"
                        "          x-content-type-options: nosniff\n");
    load_and_create_all("filters: [{name: headers, config: {request: {set: {x-env: prod}}}}]\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register__adds_every_builtin_type_by_name),
        cmocka_unit_test(test_register__twice_reports_the_duplicate),
        cmocka_unit_test(test_readme_examples__request_id),
        cmocka_unit_test(test_readme_examples__headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
