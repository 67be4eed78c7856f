/*
 * The headers filter: every configuration rule (each error names its
 * field), and remove/set/add applied to real exchanges on both sides.
 */
#include <stdlib.h>

#include "harness.h"

#include "filters/headers/headers.h"

static struct filter_fixture fx;

static int setup(void **state)
{
    fixture_init(&fx, &pt_filters_headers_type);
    return 0;
}

static int teardown(void **state)
{
    fixture_fini(&fx);
    return 0;
}

/* The fields of h as "name: value" lines, in order. */
static const char *dump(const struct pt_headers *h)
{
    static char buf[2048];
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < pt_headers_count(h) && o < sizeof(buf); i++) {
        struct pt_str name, value;
        pt_headers_at(h, i, &name, &value);
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%.*s: %.*s\n", (int)name.len, name.ptr,
                              (int)value.len, value.ptr);
    }
    return buf;
}

#define assert_headers(h, want)                                \
    do {                                                       \
        const char *got_ = dump(h);                            \
        if (strcmp(got_, (want)) != 0)                         \
            fail_msg("headers:\n%s\nwant:\n%s", got_, (want)); \
    } while (0)

static struct pt_exchange *request_with(const char *const *fields, size_t n)
{
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    for (size_t i = 0; i + 1 < n; i += 2)
        assert_int_equal(pt_headers_add(pt_exchange_request_headers(x), pt_str_from_cstr(fields[i]),
                                        pt_str_from_cstr(fields[i + 1])),
                         0);
    return x;
}

/* --- configuration: shape ----------------------------------------------------------- */

static void test_config__empty_block_changes_nothing(void **state)
{
    fixture_create_ok(&fx, "");
    const char *const in[] = {"accept", "*/*"};
    struct pt_exchange *x = request_with(in, 2);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_int_equal(fx.type->on_response_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_headers(pt_exchange_request_headers(x), "accept: */*\n");
    assert_headers(pt_exchange_response_headers(x), "");
}

static void test_config__unknown_top_level_key_is_named(void **state)
{
    fixture_create_fails(&fx, "reqest: {set: {x-a: b}}\n", "unknown key \"reqest\"");
}

static void test_config__unknown_operation_is_named_with_its_side(void **state)
{
    fixture_create_fails(&fx, "response: {replace: {x-a: b}}\n",
                         "response: unknown key \"replace\" (known: set, add, remove)");
}

static void test_config__side_must_be_a_map(void **state)
{
    fixture_create_fails(&fx, "request: [x-a]\n", "request: must be a map");
}

static void test_config__set_must_be_a_map(void **state)
{
    fixture_create_fails(&fx, "request: {set: [x-a, b]}\n", "request.set: must be a map");
}

static void test_config__add_must_be_a_map(void **state)
{
    fixture_create_fails(&fx, "response: {add: x-a}\n", "response.add: must be a map");
}

static void test_config__remove_must_be_a_list(void **state)
{
    fixture_create_fails(&fx, "request: {remove: x-debug}\n",
                         "request.remove: must be a list of header names");
}

static void test_config__remove_entries_must_be_strings(void **state)
{
    fixture_create_fails(&fx, "request: {remove: [x-a, {x: y}]}\n",
                         "request.remove[1]: must be a string");
}

static void test_config__values_must_be_strings(void **state)
{
    fixture_create_fails(&fx, "request: {set: {x-version: 2}}\n",
                         "request.set.x-version: a header value must be a string");
}

static void test_config__set_value_cannot_be_a_list(void **state)
{
    fixture_create_fails(&fx, "request: {set: {x-a: [one, two]}}\n",
                         "request.set.x-a: set takes one string per header");
}

static void test_config__add_list_elements_must_be_strings(void **state)
{
    fixture_create_fails(&fx, "response: {add: {x-tag: [one, true]}}\n",
                         "response.add.x-tag[1]: a header value must be a string");
}

static void test_config__add_list_cannot_be_empty(void **state)
{
    fixture_create_fails(&fx, "response: {add: {x-tag: []}}\n",
                         "response.add.x-tag: an empty list adds nothing");
}

/* --- configuration: names ------------------------------------------------------------- */

static void test_config__empty_name_is_rejected(void **state)
{
    fixture_create_fails(&fx, "request: {set: {\"\": v}}\n",
                         "request.set.: invalid header name \"\": a header name cannot be empty");
}

static void test_config__name_with_invalid_bytes_is_rejected(void **state)
{
    fixture_create_fails(&fx, "request: {set: {\"x env\": v}}\n",
                         "request.set.x env: invalid header name \"x env\": a header name must "
                         "be a token");
}

static void test_config__name_with_non_ascii_is_rejected_and_escaped(void **state)
{
    fixture_create_fails(&fx, "request: {add: {\"x-caf\xc3\xa9\": v}}\n",
                         "request.add.x-caf\\xc3\\xa9: invalid header name");
}

static void test_config__pseudo_header_is_rejected(void **state)
{
    fixture_create_fails(&fx, "request: {set: {\":authority\": evil.example}}\n",
                         "request.set.:authority: invalid header name \":authority\": "
                         "pseudo-headers");
}

static void test_config__removing_a_pseudo_header_is_rejected(void **state)
{
    fixture_create_fails(&fx, "request: {remove: [\":path\"]}\n",
                         "request.remove[0]: invalid header name \":path\"");
}

static void test_config__every_managed_header_is_rejected_in_every_operation(void **state)
{
    static const char *const managed[] = {
        "connection", "keep-alive", "transfer-encoding", "upgrade",          "te",
        "trailer",    "host",       "content-length",    "proxy-connection",
    };
    static const char *const shapes[] = {
        "request: {set: {%s: v}}\n",
        "response: {add: {%s: [v]}}\n",
        "request: {remove: [%s]}\n",
    };
    static const char *const paths[] = {"request.set.%s", "response.add.%s", "request.remove[0]"};
    for (size_t s = 0; s < 3; s++) {
        for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++) {
            char yaml[128], want[160], path[64];
            /* Upper case too: the check is case-insensitive. */
            char upper[32];
            size_t k = 0;
            for (; managed[i][k]; k++)
                upper[k] = (char)(k == 0 ? managed[i][k] - 'a' + 'A' : managed[i][k]);
            upper[k] = '\0';
            snprintf(yaml, sizeof(yaml), shapes[s], upper);
            snprintf(path, sizeof(path), paths[s], upper);
            snprintf(want, sizeof(want), "%s: invalid header name \"%s\": this is a hop-by-hop",
                     path, upper);
            fixture_create_fails(&fx, yaml, want);
            fixture_fini(&fx);
            fixture_init(&fx, &pt_filters_headers_type);
        }
    }
}

static void test_config__case_insensitive_duplicate_in_set_is_rejected(void **state)
{
    fixture_create_fails(&fx, "request: {set: {X-Env: prod, x-env: dev}}\n",
                         "request.set.x-env: header \"x-env\" is listed twice in set");
}

static void test_config__case_insensitive_duplicate_in_remove_is_rejected(void **state)
{
    fixture_create_fails(&fx, "response: {remove: [Server, server]}\n",
                         "response.remove[1]: header \"server\" is listed twice in remove");
}

/* --- configuration: values ------------------------------------------------------------ */

static void test_config__value_with_cr_lf_is_rejected(void **state)
{
    fixture_create_fails(&fx, "request: {set: {x-a: \"ok\\r\\nx-injected: 1\"}}\n",
                         "request.set.x-a: a header value cannot contain control characters "
                         "(byte 0x0d at offset 2)");
}

static void test_config__value_with_control_character_is_rejected(void **state)
{
    fixture_create_fails(&fx, "response: {add: {x-a: [fine, \"bell\\a\"]}}\n",
                         "response.add.x-a[1]: a header value cannot contain control characters "
                         "(byte 0x07 at offset 4)");
}

static void test_config__value_with_del_is_rejected(void **state)
{
    fixture_create_fails(&fx, "request: {set: {x-a: \"a\\x7f\"}}\n",
                         "request.set.x-a: a header value cannot contain control characters "
                         "(byte 0x7f");
}

static void test_config__value_with_surrounding_space_is_rejected(void **state)
{
    fixture_create_fails(&fx, "request: {set: {x-a: \" padded\"}}\n",
                         "request.set.x-a: a header value cannot start or end with a space");
}

static void test_config__value_over_8192_bytes_is_rejected(void **state)
{
    size_t n = 8193;
    char *yaml = malloc(n + 64);
    assert_non_null(yaml);
    int o = snprintf(yaml, n + 64, "request: {set: {x-big: ");
    memset(yaml + o, 'v', n);
    snprintf(yaml + o + n, 64, "}}\n");
    fixture_create_fails(&fx, yaml, "request.set.x-big: a header value is limited to 8192 bytes");
    free(yaml);
}

static void test_config__value_may_be_empty_or_contain_tabs_and_utf8(void **state)
{
    fixture_create_ok(&fx,
                      "request: {set: {x-empty: \"\", x-tab: \"a\\tb\", x-utf8: caf\xc3\xa9}}\n");
    struct pt_exchange *x = request_with(NULL, 0);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_headers(pt_exchange_request_headers(x), "x-empty: \nx-tab: a\tb\nx-utf8: caf\xc3\xa9\n");
}

static void test_config__null_operations_are_ignored(void **state)
{
    fixture_create_ok(&fx, "request:\n  set:\n  remove: ~\nresponse:\n");
}

static void test_config__reports_every_error_at_once(void **state)
{
    fixture_create_fails(&fx,
                         "request:\n"
                         "  set: {host: a, x-ok: fine, x-bad: \"a\\nb\"}\n"
                         "  remove: [\":path\", 3]\n"
                         "response:\n"
                         "  add: {x-n: 5}\n"
                         "extra: 1\n",
                         "extra");
    assert_int_equal(fx.diag.errors, 6);
}

/* --- request side ------------------------------------------------------------------------ */

static void test_request__set_replaces_every_value(void **state)
{
    fixture_create_ok(&fx, "request: {set: {X-Env: prod}}\n");
    const char *const in[] = {"x-env", "dev", "accept", "*/*", "x-env", "test"};
    struct pt_exchange *x = request_with(in, 6);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_headers(pt_exchange_request_headers(x), "accept: */*\nx-env: prod\n");
}

static void test_request__add_appends_after_existing_values(void **state)
{
    fixture_create_ok(&fx, "request: {add: {x-forwarded-tag: edge}}\n");
    const char *const in[] = {"x-forwarded-tag", "client"};
    struct pt_exchange *x = request_with(in, 2);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_headers(pt_exchange_request_headers(x),
                   "x-forwarded-tag: client\nx-forwarded-tag: edge\n");
}

static void test_request__add_with_a_list_adds_one_field_per_value_in_order(void **state)
{
    fixture_create_ok(&fx, "request: {add: {x-tag: [one, two, three], x-single: s}}\n");
    struct pt_exchange *x = request_with(NULL, 0);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_headers(pt_exchange_request_headers(x),
                   "x-tag: one\nx-tag: two\nx-tag: three\nx-single: s\n");
}

static void test_request__remove_is_case_insensitive_and_removes_every_field(void **state)
{
    fixture_create_ok(&fx, "request: {remove: [X-Debug, COOKIE]}\n");
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    struct pt_headers *h = pt_exchange_request_headers(x);
    pt_headers_add(h, PT_STR("X-DEBUG"), PT_STR("1"));
    pt_headers_add(h, PT_STR("accept"), PT_STR("*/*"));
    pt_headers_add(h, PT_STR("x-debug"), PT_STR("2"));
    pt_headers_add(h, PT_STR("Cookie"), PT_STR("a=b"));
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_headers(h, "accept: */*\n");
}

static void test_request__remove_of_an_absent_header_is_harmless(void **state)
{
    fixture_create_ok(&fx, "request: {remove: [x-absent]}\n");
    const char *const in[] = {"accept", "*/*"};
    struct pt_exchange *x = request_with(in, 2);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_headers(pt_exchange_request_headers(x), "accept: */*\n");
}

static void test_request__applies_remove_then_set_then_add(void **state)
{
    /* YAML order is deliberately the reverse of the order applied. */
    fixture_create_ok(&fx, "request:\n"
                           "  add: {x-a: added, x-b: added}\n"
                           "  set: {x-a: set}\n"
                           "  remove: [x-a, x-b]\n");
    const char *const in[] = {"x-a", "client", "x-b", "client"};
    struct pt_exchange *x = request_with(in, 4);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_headers(pt_exchange_request_headers(x), "x-a: set\nx-a: added\nx-b: added\n");
}

static void test_request__does_not_touch_the_response(void **state)
{
    fixture_create_ok(&fx, "request: {set: {x-env: prod}, remove: [server]}\n");
    struct pt_exchange *x = request_with(NULL, 0);
    pt_headers_add(pt_exchange_response_headers(x), PT_STR("server"), PT_STR("backend"));
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_int_equal(fx.type->on_response_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_headers(pt_exchange_response_headers(x), "server: backend\n");
}

static void test_request__instance_serves_many_exchanges_unchanged(void **state)
{
    fixture_create_ok(&fx, "request: {set: {x-env: prod}, add: {x-tag: [a, b]}}\n");
    for (int i = 0; i < 3; i++) {
        struct pt_exchange *x = request_with(NULL, 0);
        assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
        assert_headers(pt_exchange_request_headers(x), "x-env: prod\nx-tag: a\nx-tag: b\n");
        pt_exchange_free(x);
        fx.x = NULL;
    }
}

static void test_request__exhausted_exchange_memory_replies_with_the_error(void **state)
{
    fixture_create_ok(&fx, "request: {set: {x-env: prod}}\n");
    struct pt_exchange *x = request_with(NULL, 0);
    exchange_squeeze(x, 16);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_REPLIED);
    assert_int_equal(fake_replies.count, 1);
    assert_int_equal(fake_replies.err, PT_ERR_LIMIT);
}

/* --- response side ----------------------------------------------------------------------- */

static void test_response__remove_set_and_add_apply_to_the_response(void **state)
{
    fixture_create_ok(&fx, "response:\n"
                           "  remove: [Server, x-powered-by]\n"
                           "  set: {Strict-Transport-Security: max-age=31536000, "
                           "cache-control: no-store}\n"
                           "  add: {vary: [Origin, Accept-Encoding]}\n");
    struct pt_exchange *x = request_with(NULL, 0);
    struct pt_headers *rh = pt_exchange_response_headers(x);
    pt_headers_add(rh, PT_STR("server"), PT_STR("backend/1.0"));
    pt_headers_add(rh, PT_STR("cache-control"), PT_STR("public"));
    pt_headers_add(rh, PT_STR("X-Powered-By"), PT_STR("php"));
    pt_headers_add(rh, PT_STR("vary"), PT_STR("Cookie"));
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_int_equal(fx.type->on_response_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_headers(rh, "vary: Cookie\n"
                       "strict-transport-security: max-age=31536000\n"
                       "cache-control: no-store\n"
                       "vary: Origin\n"
                       "vary: Accept-Encoding\n");
    assert_headers(pt_exchange_request_headers(x), "");
}

static void test_response__exhausted_exchange_memory_replies_with_the_error(void **state)
{
    fixture_create_ok(&fx, "response: {add: {x-frame-options: DENY}}\n");
    struct pt_exchange *x = request_with(NULL, 0);
    exchange_squeeze(x, 16);
    assert_int_equal(fx.type->on_response_head(x, fx.instance), PT_FILTER_REPLIED);
    assert_int_equal(fake_replies.count, 1);
    assert_int_equal(fake_replies.err, PT_ERR_LIMIT);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_config__empty_block_changes_nothing),
        T(test_config__unknown_top_level_key_is_named),
        T(test_config__unknown_operation_is_named_with_its_side),
        T(test_config__side_must_be_a_map),
        T(test_config__set_must_be_a_map),
        T(test_config__add_must_be_a_map),
        T(test_config__remove_must_be_a_list),
        T(test_config__remove_entries_must_be_strings),
        T(test_config__values_must_be_strings),
        T(test_config__set_value_cannot_be_a_list),
        T(test_config__add_list_elements_must_be_strings),
        T(test_config__add_list_cannot_be_empty),
        T(test_config__empty_name_is_rejected),
        T(test_config__name_with_invalid_bytes_is_rejected),
        T(test_config__name_with_non_ascii_is_rejected_and_escaped),
        T(test_config__pseudo_header_is_rejected),
        T(test_config__removing_a_pseudo_header_is_rejected),
        T(test_config__every_managed_header_is_rejected_in_every_operation),
        T(test_config__case_insensitive_duplicate_in_set_is_rejected),
        T(test_config__case_insensitive_duplicate_in_remove_is_rejected),
        T(test_config__value_with_cr_lf_is_rejected),
        T(test_config__value_with_control_character_is_rejected),
        T(test_config__value_with_del_is_rejected),
        T(test_config__value_with_surrounding_space_is_rejected),
        T(test_config__value_over_8192_bytes_is_rejected),
        T(test_config__value_may_be_empty_or_contain_tabs_and_utf8),
        T(test_config__null_operations_are_ignored),
        T(test_config__reports_every_error_at_once),
        T(test_request__set_replaces_every_value),
        T(test_request__add_appends_after_existing_values),
        T(test_request__add_with_a_list_adds_one_field_per_value_in_order),
        T(test_request__remove_is_case_insensitive_and_removes_every_field),
        T(test_request__remove_of_an_absent_header_is_harmless),
        T(test_request__applies_remove_then_set_then_add),
        T(test_request__does_not_touch_the_response),
        T(test_request__instance_serves_many_exchanges_unchanged),
        T(test_request__exhausted_exchange_memory_replies_with_the_error),
        T(test_response__remove_set_and_add_apply_to_the_response),
        T(test_response__exhausted_exchange_memory_replies_with_the_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
