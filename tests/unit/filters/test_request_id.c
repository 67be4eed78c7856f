/*
 * The request-id filter: configuration checks, id generation (format,
 * uniqueness within and across threads), trusting or replacing the
 * client's id, and the request and response headers it writes.
 */
#include <pthread.h>
#include <stdlib.h>

#include "harness.h"

#include "filters/request_id/request_id.h"

static struct filter_fixture fx;

static int setup(void **state)
{
    fixture_init(&fx, &pt_filters_request_id_type);
    return 0;
}

static int teardown(void **state)
{
    fixture_fini(&fx);
    return 0;
}

/* 8-4-4-4-12 lower-case hex, version 4, RFC 9562 variant. */
static void assert_uuid_v4(struct pt_str id)
{
    if (id.len != PT_REQUEST_ID_UUID_LEN)
        fail_msg("id \"%.*s\" has %zu characters, want 36", (int)id.len, id.ptr, id.len);
    for (size_t i = 0; i < id.len; i++) {
        char c = id.ptr[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                fail_msg("id \"%.*s\": want '-' at %zu", (int)id.len, id.ptr, i);
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            fail_msg("id \"%.*s\": '%c' at %zu is not lower-case hex", (int)id.len, id.ptr, c, i);
        }
    }
    if (id.ptr[14] != '4')
        fail_msg("id \"%.*s\": version is not 4", (int)id.len, id.ptr);
    if (!strchr("89ab", id.ptr[19]))
        fail_msg("id \"%.*s\": variant is not RFC 9562", (int)id.len, id.ptr);
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, PT_REQUEST_ID_UUID_LEN);
}

/* Every id in ids (n of them, 36 bytes each) differs from every other. */
static void assert_all_distinct(char *ids, size_t n)
{
    qsort(ids, n, PT_REQUEST_ID_UUID_LEN, cmp_id);
    for (size_t i = 1; i < n; i++)
        if (memcmp(ids + (i - 1) * PT_REQUEST_ID_UUID_LEN, ids + i * PT_REQUEST_ID_UUID_LEN,
                   PT_REQUEST_ID_UUID_LEN) == 0)
            fail_msg("id %.36s generated twice", ids + i * PT_REQUEST_ID_UUID_LEN);
}

/* --- generation --------------------------------------------------------------- */

#define MANY_IDS 100000u

static void test_generate__100000_ids_are_uuid_v4_and_distinct(void **state)
{
    char *ids = malloc((size_t)MANY_IDS * PT_REQUEST_ID_UUID_LEN);
    assert_non_null(ids);
    for (size_t i = 0; i < MANY_IDS; i++) {
        char *id = ids + i * PT_REQUEST_ID_UUID_LEN;
        pt_request_id_generate(id);
        assert_uuid_v4((struct pt_str){id, PT_REQUEST_ID_UUID_LEN});
    }
    assert_all_distinct(ids, MANY_IDS);
    free(ids);
}

#define THREADS 4u
#define IDS_PER_THREAD 25000u

static void *generate_in_thread(void *arg)
{
    char *ids = arg;
    for (size_t i = 0; i < IDS_PER_THREAD; i++)
        pt_request_id_generate(ids + i * PT_REQUEST_ID_UUID_LEN);
    return NULL;
}

static void test_generate__threads_draw_distinct_sequences(void **state)
{
    char *ids = malloc((size_t)THREADS * IDS_PER_THREAD * PT_REQUEST_ID_UUID_LEN);
    assert_non_null(ids);
    pthread_t t[THREADS];
    for (size_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, generate_in_thread,
                                        ids + i * IDS_PER_THREAD * PT_REQUEST_ID_UUID_LEN),
                         0);
    for (size_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_all_distinct(ids, (size_t)THREADS * IDS_PER_THREAD);
    free(ids);
}

static void test_incoming_ok__accepts_only_1_to_128_safe_characters(void **state)
{
    char long_id[PT_REQUEST_ID_MAX_INCOMING + 1];
    memset(long_id, 'a', sizeof(long_id));
    assert_true(pt_request_id_incoming_ok(PT_STR("a")));
    assert_true(pt_request_id_incoming_ok(PT_STR("Trace-01.span_2:3")));
    assert_true(pt_request_id_incoming_ok((struct pt_str){long_id, PT_REQUEST_ID_MAX_INCOMING}));
    assert_false(pt_request_id_incoming_ok(PT_STR("")));
    assert_false(pt_request_id_incoming_ok((struct pt_str){long_id, sizeof(long_id)}));
    assert_false(pt_request_id_incoming_ok(PT_STR("a b")));
    assert_false(pt_request_id_incoming_ok(PT_STR("id/1")));
    assert_false(pt_request_id_incoming_ok(PT_STR("id\"1")));
    assert_false(pt_request_id_incoming_ok(PT_STR("caf\xc3\xa9")));
}

/* --- configuration -------------------------------------------------------------- */

static void test_config__empty_block_uses_defaults(void **state)
{
    fixture_create_ok(&fx, "");
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    pt_headers_add(pt_exchange_request_headers(x), PT_STR("x-request-id"), PT_STR("client-1"));
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    /* trust_incoming defaults to true, header to x-request-id, response to true. */
    assert_pt_str(pt_exchange_request_id(x), "client-1");
    assert_int_equal(fx.type->on_response_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_pt_str(header_value(pt_exchange_response_headers(x), "x-request-id", 0), "client-1");
}

static void test_config__unknown_key_is_named(void **state)
{
    fixture_create_fails(&fx, "headr: x-trace-id\n", "unknown key \"headr\"");
}

static void test_config__header_must_be_a_string(void **state)
{
    fixture_create_fails(&fx, "header: 12\n", "header: must be a string");
}

static void test_config__header_must_be_a_token(void **state)
{
    fixture_create_fails(&fx, "header: \"x trace\"\n", "header: invalid header name \"x trace\"");
}

static void test_config__header_cannot_be_empty(void **state)
{
    fixture_create_fails(&fx, "header: \"\"\n",
                         "header: invalid header name \"\": a header name "
                         "cannot be empty");
}

static void test_config__header_cannot_be_a_pseudo_header(void **state)
{
    fixture_create_fails(&fx, "header: \":path\"\n", "header: invalid header name \":path\"");
}

static void test_config__header_cannot_be_hop_by_hop(void **state)
{
    fixture_create_fails(&fx, "header: Connection\n", "header: invalid header name \"Connection\"");
}

static void test_config__booleans_must_be_booleans(void **state)
{
    fixture_create_fails(&fx, "trust_incoming: \"false\"\nresponse: 0\n",
                         "trust_incoming: must be true or false");
    assert_non_null(strstr(pt_diag_text(&fx.diag), "response: must be true or false"));
}

static void test_config__reports_every_error_at_once(void **state)
{
    fixture_create_fails(&fx, "header: \"a b\"\ntrust_incoming: 1\nresponse: yes-please\nx: 1\n",
                         "unknown key \"x\"");
    assert_int_equal(fx.diag.errors, 4);
}

/* --- hooks ------------------------------------------------------------------------ */

static void test_request__without_id_gets_a_generated_uuid(void **state)
{
    fixture_create_ok(&fx, "");
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    struct pt_str id = pt_exchange_request_id(x);
    assert_uuid_v4(id);
    struct pt_headers *h = pt_exchange_request_headers(x);
    assert_int_equal(header_count(h, "x-request-id"), 1);
    assert_true(pt_str_eq(header_value(h, "x-request-id", 0), id));
}

static void test_request__each_exchange_gets_its_own_id(void **state)
{
    fixture_create_ok(&fx, "");
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    char first[PT_REQUEST_ID_UUID_LEN];
    memcpy(first, pt_exchange_request_id(x).ptr, sizeof(first));
    pt_exchange_free(x);
    x = fixture_exchange(&fx, 0);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_false(pt_str_eq(pt_exchange_request_id(x), (struct pt_str){first, sizeof(first)}));
}

static void test_request__trusted_valid_incoming_id_is_kept(void **state)
{
    fixture_create_ok(&fx, "trust_incoming: true\n");
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    struct pt_headers *h = pt_exchange_request_headers(x);
    pt_headers_add(h, PT_STR("X-Request-ID"), PT_STR("edge:7f3a.01_b-9"));
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_pt_str(pt_exchange_request_id(x), "edge:7f3a.01_b-9");
    assert_int_equal(header_count(h, "x-request-id"), 1);
    assert_pt_str(header_value(h, "x-request-id", 0), "edge:7f3a.01_b-9");
}

static void test_request__trusted_id_of_128_characters_is_kept(void **state)
{
    char id[PT_REQUEST_ID_MAX_INCOMING + 1];
    memset(id, '7', PT_REQUEST_ID_MAX_INCOMING);
    id[PT_REQUEST_ID_MAX_INCOMING] = '\0';
    fixture_create_ok(&fx, "");
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    pt_headers_add(pt_exchange_request_headers(x), PT_STR("x-request-id"), pt_str_from_cstr(id));
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_pt_str(pt_exchange_request_id(x), id);
}

/* The incoming value must be replaced: the request ends up with exactly
 * one header field holding a fresh UUID. */
static void assert_incoming_replaced(const char *yaml, const char *const *incoming, size_t n)
{
    fixture_create_ok(&fx, yaml);
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    struct pt_headers *h = pt_exchange_request_headers(x);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pt_headers_add(h, PT_STR("x-request-id"), pt_str_from_cstr(incoming[i])),
                         0);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    struct pt_str id = pt_exchange_request_id(x);
    assert_uuid_v4(id);
    assert_int_equal(header_count(h, "x-request-id"), 1);
    assert_true(pt_str_eq(header_value(h, "x-request-id", 0), id));
}

static void test_request__trusted_id_with_invalid_characters_is_replaced(void **state)
{
    const char *const in[] = {"abc def; drop table"};
    assert_incoming_replaced("", in, 1);
}

static void test_request__trusted_id_longer_than_128_is_replaced(void **state)
{
    char id[PT_REQUEST_ID_MAX_INCOMING + 2];
    memset(id, 'a', PT_REQUEST_ID_MAX_INCOMING + 1);
    id[PT_REQUEST_ID_MAX_INCOMING + 1] = '\0';
    const char *const in[] = {id};
    assert_incoming_replaced("", in, 1);
}

static void test_request__empty_incoming_id_is_replaced(void **state)
{
    const char *const in[] = {""};
    assert_incoming_replaced("", in, 1);
}

static void test_request__several_incoming_ids_are_replaced_by_one(void **state)
{
    const char *const in[] = {"first", "second"};
    assert_incoming_replaced("", in, 2);
}

static void test_request__untrusted_valid_incoming_id_is_replaced(void **state)
{
    const char *const in[] = {"client-chosen-id"};
    assert_incoming_replaced("trust_incoming: false\n", in, 1);
}

static void test_request__custom_header_is_read_and_written_in_lower_case(void **state)
{
    fixture_create_ok(&fx, "header: X-Correlation-ID\n");
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    struct pt_headers *h = pt_exchange_request_headers(x);
    pt_headers_add(h, PT_STR("x-correlation-id"), PT_STR("corr-42"));
    pt_headers_add(h, PT_STR("x-request-id"), PT_STR("not-this-one"));
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_pt_str(pt_exchange_request_id(x), "corr-42");
    assert_int_equal(fx.type->on_response_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_pt_str(header_value(pt_exchange_response_headers(x), "x-correlation-id", 0), "corr-42");
    assert_int_equal(header_count(pt_exchange_response_headers(x), "x-request-id"), 0);
}

static void test_request__exhausted_exchange_memory_replies_with_the_error(void **state)
{
    fixture_create_ok(&fx, "");
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    exchange_squeeze(x, 16);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_REPLIED);
    assert_int_equal(fake_replies.count, 1);
    assert_int_equal(fake_replies.err, PT_ERR_LIMIT);
}

static void test_response__echo_replaces_the_upstreams_values(void **state)
{
    fixture_create_ok(&fx, "");
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    struct pt_headers *rh = pt_exchange_response_headers(x);
    pt_headers_add(rh, PT_STR("x-request-id"), PT_STR("upstream-own-id"));
    pt_headers_add(rh, PT_STR("content-type"), PT_STR("text/plain"));
    assert_int_equal(fx.type->on_response_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_int_equal(header_count(rh, "x-request-id"), 1);
    assert_true(pt_str_eq(header_value(rh, "x-request-id", 0), pt_exchange_request_id(x)));
    assert_pt_str(header_value(rh, "content-type", 0), "text/plain");
}

static void test_response__not_echoed_when_response_is_false(void **state)
{
    fixture_create_ok(&fx, "response: false\n");
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_int_equal(fx.type->on_response_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_int_equal(header_count(pt_exchange_response_headers(x), "x-request-id"), 0);
    /* The request side is unaffected. */
    assert_int_equal(header_count(pt_exchange_request_headers(x), "x-request-id"), 1);
}

static void test_response__exhausted_memory_sends_the_response_without_echo(void **state)
{
    fixture_create_ok(&fx, "");
    struct pt_exchange *x = fixture_exchange(&fx, 0);
    assert_int_equal(fx.type->on_request_head(x, fx.instance), PT_FILTER_CONTINUE);
    exchange_squeeze(x, 16);
    assert_int_equal(fx.type->on_response_head(x, fx.instance), PT_FILTER_CONTINUE);
    assert_int_equal(fake_replies.count, 0);
    assert_int_equal(pt_exchange_response_status(x), 200);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_generate__100000_ids_are_uuid_v4_and_distinct),
        T(test_generate__threads_draw_distinct_sequences),
        T(test_incoming_ok__accepts_only_1_to_128_safe_characters),
        T(test_config__empty_block_uses_defaults),
        T(test_config__unknown_key_is_named),
        T(test_config__header_must_be_a_string),
        T(test_config__header_must_be_a_token),
        T(test_config__header_cannot_be_empty),
        T(test_config__header_cannot_be_a_pseudo_header),
        T(test_config__header_cannot_be_hop_by_hop),
        T(test_config__booleans_must_be_booleans),
        T(test_config__reports_every_error_at_once),
        T(test_request__without_id_gets_a_generated_uuid),
        T(test_request__each_exchange_gets_its_own_id),
        T(test_request__trusted_valid_incoming_id_is_kept),
        T(test_request__trusted_id_of_128_characters_is_kept),
        T(test_request__trusted_id_with_invalid_characters_is_replaced),
        T(test_request__trusted_id_longer_than_128_is_replaced),
        T(test_request__empty_incoming_id_is_replaced),
        T(test_request__several_incoming_ids_are_replaced_by_one),
        T(test_request__untrusted_valid_incoming_id_is_replaced),
        T(test_request__custom_header_is_read_and_written_in_lower_case),
        T(test_request__exhausted_exchange_memory_replies_with_the_error),
        T(test_response__echo_replaces_the_upstreams_values),
        T(test_response__not_echoed_when_response_is_false),
        T(test_response__exhausted_memory_sends_the_response_without_echo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
