/*
 * The YAML loader: mapping rules (keys, scalars, enums, wrappers, Struct,
 * oneofs, nulls), YAML features (anchors, aliases, merge keys), every kind
 * of error with its position and field path, the hostile-document limits,
 * and pt_conf_where().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

typedef Portico__Config__V1__Config Config;

static struct pt_conf *conf;
static struct pt_diag diag;

static int setup(void **state)
{
    conf = NULL;
    pt_diag_init(&diag);
    return 0;
}

static int teardown(void **state)
{
    pt_conf_free(conf);
    conf = NULL;
    pt_diag_fini(&diag);
    return 0;
}

static const Config *load_ok(const char *text)
{
    conf = pt_conf_load_string("portico.yaml", text, strlen(text), &diag);
    if (!conf)
        fail_msg("load failed:\n%s", pt_diag_text(&diag));
    assert_int_equal(diag.errors, 0);
    return pt_conf_config(conf);
}

/* The load must fail and the diagnostics contain `want`. */
static void load_fails(const char *text, const char *want)
{
    conf = pt_conf_load_string("portico.yaml", text, strlen(text), &diag);
    if (conf)
        fail_msg("loaded, but expected an error containing: %s", want);
    if (!strstr(pt_diag_text(&diag), want))
        fail_msg("diagnostics:\n%s\ndo not contain: %s", pt_diag_text(&diag), want);
}

/* ---- documents ---- */

static void test_load__empty_text_is_empty_config(void **state)
{
    const Config *c = load_ok("");
    assert_int_equal(c->n_listeners, 0);
    assert_null(c->limits);
}

static void test_load__comments_only_is_empty_config(void **state)
{
    const Config *c = load_ok("# nothing yet\n\n# really\n");
    assert_int_equal(c->n_routes, 0);
}

static void test_load__explicit_null_document_is_empty_config(void **state)
{
    const Config *c = load_ok("---\n~\n");
    assert_int_equal(c->workers, 0);
}

static void test_load__document_must_be_a_mapping(void **state)
{
    load_fails("- a\n- b\n",
               "portico.yaml:1:1: a configuration document must be a mapping, got a list");
}

static void test_load__scalar_document_is_rejected(void **state)
{
    load_fails("hello\n", "must be a mapping, got \"hello\"");
}

static void test_load__second_document_is_rejected(void **state)
{
    load_fails("workers: 1\n---\nworkers: 2\n",
               "portico.yaml:2:1: a second YAML document; a configuration file holds exactly one");
}

static void test_load__malformed_yaml_reports_libyaml_problem_and_position(void **state)
{
    load_fails("routes:\n  - path: /a\n   service: x\n", "portico.yaml:3:");
    assert_non_null(strstr(pt_diag_text(&diag), "invalid YAML: "));
}

static void test_load__unclosed_flow_sequence_is_malformed(void **state)
{
    load_fails("listeners: [\n", "invalid YAML");
}

static void test_load__invalid_utf8_is_reported_with_position(void **state)
{
    load_fails("workers: 1\nname: \"\xff\"\n", "portico.yaml:2:");
    assert_non_null(strstr(pt_diag_text(&diag), "invalid YAML"));
}

static void test_load__oversized_text_is_rejected(void **state)
{
    size_t len = PT_CONF_MAX_FILE_BYTES + 1;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, ' ', len);
    conf = pt_conf_load_string("big.yaml", big, len, &diag);
    free(big);
    assert_null(conf);
    assert_non_null(strstr(pt_diag_text(&diag), "big.yaml: file is larger than 16777216 bytes"));
}

/* ---- fields and scalars ---- */

static const char *full_config = "workers: 4\n"
                                 "drain_timeout_ms: 1000\n"
                                 "listeners:\n"
                                 "  - name: public\n"
                                 "    address: \":8080\"\n"
                                 "    protocols: [http1, h2c]\n"
                                 "services:\n"
                                 "  - name: users\n"
                                 "    protocol: grpc\n"
                                 "    instances:\n"
                                 "      - {host: 10.0.0.1, port: 9000, weight: 3}\n"
                                 "routes:\n"
                                 "  - path_prefix: /users\n"
                                 "    methods: [GET, POST]\n"
                                 "    service: users\n"
                                 "    priority: -5\n"
                                 "    enabled: false\n"
                                 "    max_body_bytes: 0\n"
                                 "    headers:\n"
                                 "      - {name: x-env, exact: prod, invert: true}\n"
                                 "limits:\n"
                                 "  max_body_bytes: 18446744073709551615\n"
                                 "access_log: {path: stderr}\n";

static void test_load__full_config_maps_every_kind_of_field(void **state)
{
    const Config *c = load_ok(full_config);
    assert_int_equal(c->workers, 4);
    assert_int_equal(c->drain_timeout_ms, 1000);
    assert_int_equal(c->n_listeners, 1);
    assert_string_equal(c->listeners[0]->name, "public");
    assert_string_equal(c->listeners[0]->address, ":8080");
    assert_int_equal(c->listeners[0]->n_protocols, 2);
    assert_int_equal(c->listeners[0]->protocols[0],
                     PORTICO__CONFIG__V1__LISTENER_PROTOCOL__LISTENER_PROTOCOL_HTTP1);
    assert_int_equal(c->listeners[0]->protocols[1],
                     PORTICO__CONFIG__V1__LISTENER_PROTOCOL__LISTENER_PROTOCOL_H2C);
    assert_int_equal(c->services[0]->protocol,
                     PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_GRPC);
    assert_string_equal(c->services[0]->instances[0]->host, "10.0.0.1");
    assert_int_equal(c->services[0]->instances[0]->port, 9000);
    assert_int_equal(c->services[0]->instances[0]->weight, 3);
    const Portico__Config__V1__Route *r = c->routes[0];
    assert_string_equal(r->path_prefix, "/users");
    assert_string_equal(r->path, "");
    assert_int_equal(r->n_methods, 2);
    assert_string_equal(r->methods[1], "POST");
    assert_int_equal(r->priority, -5);
    assert_non_null(r->enabled);
    assert_false(r->enabled->value);
    assert_non_null(r->max_body_bytes);
    assert_int_equal(r->max_body_bytes->value, 0);
    assert_int_equal(r->headers[0]->match_case, PORTICO__CONFIG__V1__HEADER_MATCH__MATCH_EXACT);
    assert_string_equal(r->headers[0]->exact, "prod");
    assert_true(r->headers[0]->invert);
    assert_true(c->limits->max_body_bytes == UINT64_MAX);
    assert_string_equal(c->access_log->path, "stderr");
    assert_null(c->access_log->enabled);
}

static void test_load__lower_camel_case_keys_are_accepted(void **state)
{
    const Config *c =
        load_ok("drainTimeoutMs: 7\nroutes:\n  - pathPrefix: /x\n    stripPrefix: true\n");
    assert_int_equal(c->drain_timeout_ms, 7);
    assert_string_equal(c->routes[0]->path_prefix, "/x");
    assert_true(c->routes[0]->strip_prefix);
}

static void test_load__both_spellings_of_one_field_are_a_duplicate(void **state)
{
    load_fails(
        "drain_timeout_ms: 1\ndrainTimeoutMs: 2\n",
        "portico.yaml:2:1: duplicate key \"drainTimeoutMs\" (drain_timeout_ms is already set "
        "at line 1, column 1)");
}

static void test_load__quoted_digits_load_into_integer_fields(void **state)
{
    const Config *c = load_ok("workers: \"8\"\n");
    assert_int_equal(c->workers, 8);
}

static void test_load__plain_number_loads_into_string_field(void **state)
{
    const Config *c = load_ok("services:\n  - name: 8080\n");
    assert_string_equal(c->services[0]->name, "8080");
}

static void test_load__non_integer_reports_path_and_position(void **state)
{
    load_fails(
        "routes:\n  - path: /a\n    timeout_ms: fast\n",
        "portico.yaml:3:17: routes[0].timeout_ms: expected an unsigned integer, got \"fast\"");
}

static void test_load__uint32_overflow_is_out_of_range(void **state)
{
    load_fails("workers: 4294967296\n",
               "portico.yaml:1:10: workers: \"4294967296\" is out of range (0..4294967295)");
}

static void test_load__negative_unsigned_is_out_of_range(void **state)
{
    load_fails("workers: -1\n", "workers: \"-1\" is out of range (0..4294967295)");
}

static void test_load__int32_bounds_are_checked(void **state)
{
    const Config *c = load_ok("routes:\n  - priority: -2147483648\n");
    assert_int_equal(c->routes[0]->priority, INT32_MIN);
    pt_conf_free(conf);
    conf = NULL;
    load_fails("routes:\n  - priority: 2147483648\n",
               "routes[0].priority: \"2147483648\" is out of range (-2147483648..2147483647)");
}

static void test_load__huge_number_is_out_of_range(void **state)
{
    load_fails("limits: {max_body_bytes: 99999999999999999999999999}\n",
               "limits.max_body_bytes: \"99999999999999999999999999\" is out of range");
}

static void test_load__decimal_fraction_is_not_an_integer(void **state)
{
    load_fails("workers: 1.5\n", "workers: expected an unsigned integer, got \"1.5\"");
}

static void test_load__booleans_are_only_true_and_false(void **state)
{
    load_fails("routes:\n  - websocket: yes\n",
               "routes[0].websocket: expected true or false, got \"yes\"");
}

static void test_load__quoted_true_is_not_a_boolean(void **state)
{
    load_fails("routes:\n  - websocket: \"true\"\n", "expected true or false, got \"true\"");
}

static void test_load__enum_is_case_insensitive_without_prefix(void **state)
{
    const Config *c = load_ok("services:\n  - protocol: GRPC\n  - protocol: H2c\n");
    assert_int_equal(c->services[0]->protocol,
                     PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_GRPC);
    assert_int_equal(c->services[1]->protocol,
                     PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_H2C);
}

static void test_load__enum_full_value_name_is_accepted(void **state)
{
    const Config *c = load_ok("services:\n  - lb_algorithm: LB_ALGORITHM_ROUND_ROBIN\n");
    assert_int_equal(c->services[0]->lb_algorithm,
                     PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_ROUND_ROBIN);
}

static void test_load__unknown_enum_lists_valid_names(void **state)
{
    load_fails(
        "services:\n  - protocol: grpcc\n",
        "services[0].protocol: unknown value \"grpcc\"; expected one of: http1, h2, h2c, grpc");
}

static void test_load__unspecified_enum_value_may_not_be_written(void **state)
{
    load_fails("services:\n  - protocol: unspecified\n",
               "services[0].protocol: unspecified is the unset value and may not be written");
}

static void test_load__enum_in_list_reports_element_path(void **state)
{
    load_fails("listeners:\n  - protocols: [http1, http3]\n",
               "portico.yaml:2:24: listeners[0].protocols[1]: unknown value \"http3\"");
}

static void test_load__null_leaves_fields_unset(void **state)
{
    const Config *c = load_ok("limits: null\naccess_log: ~\nworkers:\nroutes:\n"
                              "  - name: ~\n    enabled: null\n");
    assert_null(c->limits);
    assert_null(c->access_log);
    assert_int_equal(c->workers, 0);
    assert_string_equal(c->routes[0]->name, "");
    assert_null(c->routes[0]->enabled);
}

static void test_load__null_list_is_empty(void **state)
{
    const Config *c = load_ok("listeners: null\nservices:\n");
    assert_int_equal(c->n_listeners, 0);
    assert_int_equal(c->n_services, 0);
}

static void test_load__null_list_element_is_rejected(void **state)
{
    load_fails("routes:\n  - methods: [GET, null]\n",
               "routes[0].methods[1]: a list element may not be null");
}

static void test_load__scalar_where_list_expected_is_rejected(void **state)
{
    load_fails("routes:\n  - methods: GET\n", "routes[0].methods: expected a list, got \"GET\"");
}

static void test_load__mapping_where_scalar_expected_is_rejected(void **state)
{
    load_fails("workers: {a: 1}\n", "workers: expected an unsigned integer, got a mapping");
}

static void test_load__list_where_message_expected_is_rejected(void **state)
{
    load_fails("limits: [1]\n", "limits: expected a mapping, got a list");
}

static void test_load__unknown_key_suggests_closest_field(void **state)
{
    load_fails(
        "routes:\n  - path: /a\n    timout_ms: 5\n",
        "portico.yaml:3:5: routes[0]: unknown key \"timout_ms\"; did you mean \"timeout_ms\"?");
}

static void test_load__unknown_key_far_from_any_field_has_no_suggestion(void **state)
{
    load_fails("frobnicate: 1\n", "portico.yaml:1:1: unknown key \"frobnicate\"\n");
}

static void test_load__duplicate_key_is_rejected(void **state)
{
    load_fails("workers: 1\nworkers: 2\n",
               "portico.yaml:2:1: duplicate key \"workers\" (first at line 1, column 1)");
}

static void test_load__oneof_allows_only_one_member(void **state)
{
    load_fails("routes:\n  - headers:\n      - {name: a, exact: x, prefix: y}\n",
               "routes[0].headers[0].prefix: only one of exact, prefix, regex, present may be set");
}

static void test_load__oneof_member_loads(void **state)
{
    const Config *c = load_ok("routes:\n  - query:\n      - {name: debug, present: true}\n");
    assert_int_equal(c->routes[0]->query[0]->match_case,
                     PORTICO__CONFIG__V1__QUERY_MATCH__MATCH_PRESENT);
    assert_true(c->routes[0]->query[0]->present);
}

static void test_load__nul_in_string_is_rejected(void **state)
{
    load_fails("routes:\n  - name: \"a\\0b\"\n", "routes[0].name: strings may not contain NUL");
}

static void test_load__all_errors_are_collected(void **state)
{
    load_fails("workers: x\ndrain_timeout_ms: y\nbogus: 1\n", "workers: expected");
    assert_non_null(strstr(pt_diag_text(&diag), "drain_timeout_ms: expected"));
    assert_non_null(strstr(pt_diag_text(&diag), "unknown key \"bogus\""));
    assert_int_equal(diag.errors, 3);
}

static void test_load__errors_stop_after_the_cap(void **state)
{
    char *text = malloc(200 * 16);
    assert_non_null(text);
    size_t j = 0;
    for (int i = 0; i < 200; i++)
        j += (size_t)sprintf(text + j, "k%03d: 1\n", i);
    load_fails(text, "too many errors");
    free(text);
    assert_int_equal(diag.errors, PT_CONF_MAX_ERRORS + 1);
}

/* ---- Struct / Value ---- */

static const Google__Protobuf__Value *field(const Google__Protobuf__Struct *s, const char *key)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (strcmp(s->fields[i]->key, key) == 0)
            return s->fields[i]->value;
    fail_msg("no key %s", key);
    return NULL;
}

static void test_load__filter_config_takes_any_yaml(void **state)
{
    const Config *c = load_ok("filters:\n"
                              "  - name: x\n"
                              "    config:\n"
                              "      n: 42\n"
                              "      f: -1.5e3\n"
                              "      t: true\n"
                              "      y: yes\n"
                              "      z: ~\n"
                              "      e:\n"
                              "      s: hello\n"
                              "      q: \"42\"\n"
                              "      tagged: !!str 7\n"
                              "      list: [1, two, {three: 3}]\n"
                              "      map: {a: {b: []}}\n");
    const Google__Protobuf__Struct *s = c->filters[0]->config;
    assert_non_null(s);
    assert_int_equal(s->n_fields, 11);
    assert_string_equal(s->fields[0]->key, "n");
    assert_true(field(s, "n")->number_value == 42.0);
    assert_true(field(s, "f")->number_value == -1500.0);
    assert_int_equal(field(s, "t")->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE);
    assert_true(field(s, "t")->bool_value);
    assert_string_equal(field(s, "y")->string_value, "yes");
    assert_int_equal(field(s, "z")->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    assert_int_equal(field(s, "e")->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    assert_string_equal(field(s, "s")->string_value, "hello");
    assert_string_equal(field(s, "q")->string_value, "42");
    assert_string_equal(field(s, "tagged")->string_value, "7");
    const Google__Protobuf__ListValue *l = field(s, "list")->list_value;
    assert_int_equal(l->n_values, 3);
    assert_string_equal(l->values[1]->string_value, "two");
    assert_int_equal(l->values[2]->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE);
    const Google__Protobuf__Struct *a = field(field(s, "map")->struct_value, "a")->struct_value;
    assert_int_equal(field(a, "b")->list_value->n_values, 0);
}

static void test_load__null_filter_config_is_unset(void **state)
{
    const Config *c = load_ok("filters:\n  - name: x\n    config:\n");
    assert_null(c->filters[0]->config);
}

static void test_load__filter_config_must_be_a_mapping(void **state)
{
    load_fails("filters:\n  - name: x\n    config: [1]\n",
               "filters[0].config: expected a mapping, got a list");
}

static void test_load__struct_duplicate_key_is_rejected(void **state)
{
    load_fails("filters:\n  - name: x\n    config: {a: 1, a: 2}\n",
               "filters[0].config: duplicate key \"a\"");
}

static void test_load__struct_infinite_number_is_rejected(void **state)
{
    load_fails("filters:\n  - name: x\n    config: {a: 1e999}\n",
               "filters[0].config.a: number \"1e999\" is out of range");
}

static void test_load__unsupported_tag_is_rejected(void **state)
{
    load_fails("filters:\n  - name: x\n    config: {a: !secret abc}\n",
               "filters[0].config.a: unsupported tag !secret");
}

static void test_load__core_schema_tags_are_understood(void **state)
{
    const Config *c = load_ok("workers: !!int 3\nroutes: !!seq [!!map {name: !!str 5}]\n");
    assert_int_equal(c->workers, 3);
    assert_string_equal(c->routes[0]->name, "5");
}

static void test_load__binary_tag_is_rejected_by_short_name(void **state)
{
    load_fails("routes: [{name: !!binary aGk=}]\n", "routes[0].name: unsupported tag !!binary");
}

/* ---- anchors, aliases, merges ---- */

static void test_load__aliases_reuse_anchored_nodes(void **state)
{
    const Config *c = load_ok("services:\n"
                              "  - name: a\n"
                              "    instances: &pool\n"
                              "      - {host: 10.0.0.1, port: 80}\n"
                              "      - {host: 10.0.0.2, port: 80}\n"
                              "  - name: b\n"
                              "    instances: *pool\n");
    assert_int_equal(c->services[1]->n_instances, 2);
    assert_string_equal(c->services[1]->instances[1]->host, "10.0.0.2");
    assert_ptr_not_equal(c->services[0]->instances[0], c->services[1]->instances[0]);
}

static void test_load__merge_key_copies_fields_and_own_keys_win(void **state)
{
    const Config *c = load_ok("routes:\n"
                              "  - &base {path_prefix: /a, service: s, timeout_ms: 100}\n"
                              "  - <<: *base\n"
                              "    timeout_ms: 200\n"
                              "    path_prefix: /b\n");
    assert_string_equal(c->routes[1]->path_prefix, "/b");
    assert_string_equal(c->routes[1]->service, "s");
    assert_int_equal(c->routes[1]->timeout_ms, 200);
}

static void test_load__merge_list_earlier_mapping_wins(void **state)
{
    const Config *c = load_ok("services:\n"
                              "  - &x {name: x, connect_timeout_ms: 1}\n"
                              "  - &y {name: y, connect_timeout_ms: 2, idle_timeout_ms: 3}\n"
                              "  - <<: [*x, *y]\n"
                              "    name: z\n");
    assert_string_equal(c->services[2]->name, "z");
    assert_int_equal(c->services[2]->connect_timeout_ms, 1);
    assert_int_equal(c->services[2]->idle_timeout_ms, 3);
}

static void test_load__merge_of_scalar_is_rejected(void **state)
{
    load_fails("routes:\n  - <<: 5\n", "routes[0]: << takes a mapping or a list of mappings");
}

static void test_load__undefined_alias_is_rejected(void **state)
{
    load_fails("routes: *nope\n", "portico.yaml:1:9: alias *nope refers to no anchor");
}

static void test_load__alias_inside_its_own_anchor_is_rejected(void **state)
{
    load_fails("filters: &a [{name: x, config: {self: *a}}]\n", "alias *a refers to no anchor");
}

static void test_load__alias_bomb_is_stopped(void **state)
{
    load_fails("filters:\n"
               "  - name: x\n"
               "    config:\n"
               "      a: &a [x, x, x, x, x, x, x, x, x, x]\n"
               "      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
               "      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
               "      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
               "      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
               "      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
               "      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
               "portico.yaml:9:10: this node expands to more than 1000000 nodes through "
               "aliases");
}

static void test_load__alias_expansion_below_the_limit_loads(void **state)
{
    const Config *c = load_ok("filters:\n"
                              "  - name: x\n"
                              "    config:\n"
                              "      a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                              "      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                              "      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                              "      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                              "      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n");
    const Google__Protobuf__Value *e = c->filters[0]->config->fields[4]->value;
    assert_int_equal(e->list_value->n_values, 10);
    assert_int_equal(e->list_value->values[9]->list_value->values[9]->list_value->n_values, 10);
}

static void test_load__deep_nesting_is_stopped(void **state)
{
    char text[512];
    size_t j = (size_t)sprintf(text, "filters: [{name: x, config: {a: ");
    for (int i = 0; i < 70; i++)
        text[j++] = '[';
    text[j] = '\0';
    load_fails(text, "nesting deeper than 64 levels");
}

static void test_load__deep_nesting_through_aliases_is_stopped(void **state)
{
    /* Each anchor is 20 levels deep; chaining them exceeds 64. */
    char text[4096];
    size_t j = (size_t)sprintf(text, "filters: [{name: x, config: {a: &a ");
    for (int i = 0; i < 20; i++)
        text[j++] = '[';
    for (int i = 0; i < 20; i++)
        text[j++] = ']';
    const char *prev = "a";
    const char *names[] = {"b", "c", "d", "e"};
    for (int k = 0; k < 4; k++) {
        j += (size_t)sprintf(text + j, ", %s: &%s ", names[k], names[k]);
        for (int i = 0; i < 19; i++)
            text[j++] = '[';
        j += (size_t)sprintf(text + j, "*%s", prev);
        for (int i = 0; i < 19; i++)
            text[j++] = ']';
        prev = names[k];
    }
    sprintf(text + j, "}}]\n");
    load_fails(text, "nesting deeper than 64 levels (counting aliases)");
}

/* ---- files ---- */

static void test_load__file_loads_and_names_errors_by_path(void **state)
{
    char path[] = "/tmp/pt_conf_testXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "workers: 2\nnope: 1\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    conf = pt_conf_load_file(path, &diag);
    assert_null(conf);
    char want[128];
    snprintf(want, sizeof(want), "%s:2:1: unknown key \"nope\"", path);
    assert_non_null(strstr(pt_diag_text(&diag), want));
    unlink(path);
}

static void test_load__missing_file_is_reported(void **state)
{
    conf = pt_conf_load_file("/nonexistent/portico.yaml", &diag);
    assert_null(conf);
    assert_non_null(strstr(pt_diag_text(&diag), "/nonexistent/portico.yaml: cannot open: "));
}

/* ---- positions ---- */

static void test_load__where_names_messages_fields_and_elements(void **state)
{
    const Config *c = load_ok("routes:\n"
                              "  - path: /a\n"
                              "    methods: [GET, PUT]\n"
                              "    timeoutMs: 5\n");
    char buf[128];
    const Portico__Config__V1__Route *r = c->routes[0];
    assert_string_equal(pt_conf_where(conf, r, NULL, buf, sizeof(buf)), "portico.yaml:2:5");
    assert_string_equal(pt_conf_where(conf, r, "path", buf, sizeof(buf)), "portico.yaml:2:11");
    assert_string_equal(pt_conf_where(conf, r, "timeout_ms", buf, sizeof(buf)),
                        "portico.yaml:4:16");
    assert_string_equal(pt_conf_where(conf, r, "methods", buf, sizeof(buf)), "portico.yaml:3:14");
    assert_string_equal(pt_conf_where(conf, r, "methods[1]", buf, sizeof(buf)),
                        "portico.yaml:3:20");
    /* Not written: the message's own position. */
    assert_string_equal(pt_conf_where(conf, r, "service", buf, sizeof(buf)), "portico.yaml:2:5");
    assert_string_equal(pt_conf_where(conf, NULL, NULL, buf, sizeof(buf)), "portico.yaml:1:1");
    int unrelated;
    assert_string_equal(pt_conf_where(conf, &unrelated, "x", buf, sizeof(buf)), "portico.yaml");
}

static void test_load__where_of_aliased_message_is_the_alias(void **state)
{
    const Config *c = load_ok("limits: &l {max_headers: 10}\n"
                              "filters:\n"
                              "  - &f {name: a}\n"
                              "  - *f\n");
    char buf[128];
    (void)c->limits;
    assert_string_equal(pt_conf_where(conf, c->filters[1], NULL, buf, sizeof(buf)),
                        "portico.yaml:4:5");
}

/* ---- other message types ---- */

static void test_load__any_message_type_loads(void **state)
{
    const char *text = "a: 1\nb: [x]\n";
    conf = pt_conf_load_message_string(&google__protobuf__struct__descriptor, "s.yaml", text,
                                       strlen(text), &diag);
    assert_non_null(conf);
    assert_null(pt_conf_config(conf));
    const Google__Protobuf__Struct *s = (const Google__Protobuf__Struct *)pt_conf_message(conf);
    assert_int_equal(s->n_fields, 2);
}

static void test_load__bytes_are_base64(void **state)
{
    const char *text = "aGVsbG8\n";
    conf = pt_conf_load_message_string(&google__protobuf__bytes_value__descriptor, "b.yaml", text,
                                       strlen(text), &diag);
    assert_non_null(conf);
    const Google__Protobuf__BytesValue *b =
        (const Google__Protobuf__BytesValue *)pt_conf_message(conf);
    assert_int_equal(b->value.len, 5);
    assert_memory_equal(b->value.data, "hello", 5);
    pt_conf_free(conf);
    text = "not base64!\n";
    conf = pt_conf_load_message_string(&google__protobuf__bytes_value__descriptor, "b.yaml", text,
                                       strlen(text), &diag);
    assert_null(conf);
    assert_non_null(strstr(pt_diag_text(&diag), "expected base64 data"));
}

static void test_load__free_accepts_null(void **state)
{
    pt_conf_free(NULL);
}

/* A document built from a message has no positions: pt_conf_where still
 * fills the caller's buffer (with the document's name), since callers keep
 * the buffer rather than the returned pointer. */
static void test_load__where_without_positions_fills_the_buffer(void **state)
{
    Portico__Config__V1__Config *cfg = calloc(1, sizeof(*cfg));
    portico__config__v1__config__init(cfg);
    struct pt_conf *c = pt_conf_from_message("admin", &cfg->base);
    char buf[64];
    memset(buf, 'x', sizeof(buf));
    const char *w = pt_conf_where(c, cfg, "workers", buf, sizeof(buf));
    assert_string_equal(w, "admin");
    assert_string_equal(buf, "admin");
    memset(buf, 'x', sizeof(buf));
    assert_string_equal(pt_conf_where(NULL, NULL, NULL, buf, sizeof(buf)), "");
    assert_string_equal(buf, "");
    pt_conf_free(c);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_load__empty_text_is_empty_config),
        T(test_load__comments_only_is_empty_config),
        T(test_load__explicit_null_document_is_empty_config),
        T(test_load__document_must_be_a_mapping),
        T(test_load__scalar_document_is_rejected),
        T(test_load__second_document_is_rejected),
        T(test_load__malformed_yaml_reports_libyaml_problem_and_position),
        T(test_load__unclosed_flow_sequence_is_malformed),
        T(test_load__invalid_utf8_is_reported_with_position),
        T(test_load__oversized_text_is_rejected),
        T(test_load__full_config_maps_every_kind_of_field),
        T(test_load__lower_camel_case_keys_are_accepted),
        T(test_load__both_spellings_of_one_field_are_a_duplicate),
        T(test_load__quoted_digits_load_into_integer_fields),
        T(test_load__plain_number_loads_into_string_field),
        T(test_load__non_integer_reports_path_and_position),
        T(test_load__uint32_overflow_is_out_of_range),
        T(test_load__negative_unsigned_is_out_of_range),
        T(test_load__int32_bounds_are_checked),
        T(test_load__huge_number_is_out_of_range),
        T(test_load__decimal_fraction_is_not_an_integer),
        T(test_load__booleans_are_only_true_and_false),
        T(test_load__quoted_true_is_not_a_boolean),
        T(test_load__enum_is_case_insensitive_without_prefix),
        T(test_load__enum_full_value_name_is_accepted),
        T(test_load__unknown_enum_lists_valid_names),
        T(test_load__unspecified_enum_value_may_not_be_written),
        T(test_load__enum_in_list_reports_element_path),
        T(test_load__null_leaves_fields_unset),
        T(test_load__null_list_is_empty),
        T(test_load__null_list_element_is_rejected),
        T(test_load__scalar_where_list_expected_is_rejected),
        T(test_load__mapping_where_scalar_expected_is_rejected),
        T(test_load__list_where_message_expected_is_rejected),
        T(test_load__unknown_key_suggests_closest_field),
        T(test_load__unknown_key_far_from_any_field_has_no_suggestion),
        T(test_load__duplicate_key_is_rejected),
        T(test_load__oneof_allows_only_one_member),
        T(test_load__oneof_member_loads),
        T(test_load__nul_in_string_is_rejected),
        T(test_load__all_errors_are_collected),
        T(test_load__errors_stop_after_the_cap),
        T(test_load__filter_config_takes_any_yaml),
        T(test_load__null_filter_config_is_unset),
        T(test_load__filter_config_must_be_a_mapping),
        T(test_load__struct_duplicate_key_is_rejected),
        T(test_load__struct_infinite_number_is_rejected),
        T(test_load__unsupported_tag_is_rejected),
        T(test_load__where_without_positions_fills_the_buffer),
        T(test_load__core_schema_tags_are_understood),
        T(test_load__binary_tag_is_rejected_by_short_name),
        T(test_load__aliases_reuse_anchored_nodes),
        T(test_load__merge_key_copies_fields_and_own_keys_win),
        T(test_load__merge_list_earlier_mapping_wins),
        T(test_load__merge_of_scalar_is_rejected),
        T(test_load__undefined_alias_is_rejected),
        T(test_load__alias_inside_its_own_anchor_is_rejected),
        T(test_load__alias_bomb_is_stopped),
        T(test_load__alias_expansion_below_the_limit_loads),
        T(test_load__deep_nesting_is_stopped),
        T(test_load__deep_nesting_through_aliases_is_stopped),
        T(test_load__file_loads_and_names_errors_by_path),
        T(test_load__missing_file_is_reported),
        T(test_load__where_names_messages_fields_and_elements),
        T(test_load__where_of_aliased_message_is_the_alias),
        T(test_load__any_message_type_loads),
        T(test_load__bytes_are_base64),
        T(test_load__free_accepts_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
