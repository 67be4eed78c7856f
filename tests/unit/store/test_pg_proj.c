/*
 * The server-independent half of the PostgreSQL store: diff by name, the
 * projection parameters and their JSON, the embedded migrations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "google/protobuf/struct.pb-c.h"
#include "store/pg_int.h"

static Portico__Config__V1__Service *service(const char *name, uint32_t port)
{
    Portico__Config__V1__Service *s = pt_xcalloc(1, sizeof(*s));
    portico__config__v1__service__init(s);
    s->name = pt_xstrdup(name);
    s->n_instances = 1;
    s->instances = pt_xcalloc(1, sizeof(*s->instances));
    s->instances[0] = pt_xcalloc(1, sizeof(**s->instances));
    portico__config__v1__instance__init(s->instances[0]);
    s->instances[0]->host = pt_xstrdup("10.0.0.1");
    s->instances[0]->port = port;
    return s;
}

static Portico__Config__V1__Config *services(size_t n, ...)
{
    Portico__Config__V1__Config *c = pt_store_empty_config();
    c->n_services = n;
    c->services = pt_xcalloc(n ? n : 1, sizeof(*c->services));
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        const char *name = va_arg(ap, const char *);
        c->services[i] = service(name, va_arg(ap, unsigned));
    }
    va_end(ap);
    return c;
}

static void test_pg_diff__add_change_delete_sorted_and_unchanged_skipped(void **state)
{
    Portico__Config__V1__Config *old = services(3, "c", 1u, "a", 1u, "b", 1u);
    Portico__Config__V1__Config *next = services(3, "d", 1u, "b", 2u, "a", 1u);
    struct pt_store_pg_change *ch;
    size_t n;
    char err[256];
    assert_int_equal(pt_store_pg_diff(old, next, PT_STORE_PG_SERVICES, &ch, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 3);
    assert_int_equal(ch[0].op, PT_STORE_PG_CHANGE);
    assert_string_equal(pt_store_pg_name(ch[0].next), "b");
    assert_string_equal(pt_store_pg_name(ch[0].old), "b");
    assert_int_equal(ch[1].op, PT_STORE_PG_DELETE);
    assert_string_equal(pt_store_pg_name(ch[1].old), "c");
    assert_null(ch[1].next);
    assert_int_equal(ch[2].op, PT_STORE_PG_ADD);
    assert_string_equal(pt_store_pg_name(ch[2].next), "d");
    assert_null(ch[2].old);
    free(ch);
    /* other kinds: nothing to do */
    assert_int_equal(pt_store_pg_diff(old, next, PT_STORE_PG_ROUTES, &ch, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    free(ch);
    /* NULL old = everything added */
    assert_int_equal(pt_store_pg_diff(NULL, next, PT_STORE_PG_SERVICES, &ch, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ch[i].op, PT_STORE_PG_ADD);
    free(ch);
    protobuf_c_message_free_unpacked(&old->base, NULL);
    protobuf_c_message_free_unpacked(&next->base, NULL);
}

static void test_pg_diff__repeated_or_missing_name_is_invalid(void **state)
{
    Portico__Config__V1__Config *old = services(1, "a", 1u);
    Portico__Config__V1__Config *dup = services(2, "x", 1u, "x", 2u);
    Portico__Config__V1__Config *unnamed = services(1, "", 1u);
    struct pt_store_pg_change *ch = NULL;
    size_t n;
    char err[256];
    assert_int_equal(pt_store_pg_diff(old, dup, PT_STORE_PG_SERVICES, &ch, &n, err, sizeof(err)),
                     PT_ERR_INVALID);
    assert_non_null(strstr(err, "services \"x\" appears twice"));
    assert_int_equal(
        pt_store_pg_diff(old, unnamed, PT_STORE_PG_SERVICES, &ch, &n, err, sizeof(err)),
        PT_ERR_INVALID);
    assert_non_null(strstr(err, "has no name"));
    protobuf_c_message_free_unpacked(&old->base, NULL);
    protobuf_c_message_free_unpacked(&dup->base, NULL);
    protobuf_c_message_free_unpacked(&unnamed->base, NULL);
}

static void test_pg_project__service_columns_and_binary_spec(void **state)
{
    Portico__Config__V1__Service *s = service("svc \"1\"", 8080);
    s->protocol = PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_H2C;
    s->version = 7;
    s->circuit_breaker = pt_xcalloc(1, sizeof(*s->circuit_breaker));
    portico__config__v1__circuit_breaker__init(s->circuit_breaker);
    s->circuit_breaker->failure_threshold = 5;
    struct pt_store_pg_params p;
    pt_store_pg_project(PT_STORE_PG_SERVICES, &s->base, &p);
    assert_int_equal(p.n, 8);
    assert_string_equal(p.values[0], "svc \"1\"");
    assert_string_equal(p.values[1], "h2c");
    assert_string_equal(p.values[2], "round_robin"); /* unset: the documented default */
    assert_string_equal(p.values[3], "[{\"host\":\"10.0.0.1\",\"port\":8080,\"weight\":1}]");
    assert_null(p.values[4]); /* no health check */
    assert_non_null(strstr(p.values[5], "\"failure_threshold\":5"));
    assert_string_equal(p.values[6], "7");
    assert_int_equal(p.formats[7], 1);
    Portico__Config__V1__Service *back = portico__config__v1__service__unpack(
        NULL, (size_t)p.lengths[7], (const uint8_t *)p.values[7]);
    assert_non_null(back);
    assert_true(pt_store_msg_equal(&back->base, &s->base));
    for (int i = 0; i < 7; i++)
        assert_int_equal(p.formats[i], 0);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    pt_store_pg_params_fini(&p);
    protobuf_c_message_free_unpacked(&s->base, NULL);
}

static void test_pg_project__route_uses_prefix_and_nulls_empty_host(void **state)
{
    Portico__Config__V1__Route *r = pt_xcalloc(1, sizeof(*r));
    portico__config__v1__route__init(r);
    r->name = pt_xstrdup("r");
    r->path_prefix = pt_xstrdup("/p/");
    r->n_methods = 2;
    r->methods = pt_xcalloc(2, sizeof(char *));
    r->methods[0] = pt_xstrdup("GET");
    r->methods[1] = pt_xstrdup("a\"b\\c\n");
    struct pt_store_pg_params p;
    pt_store_pg_project(PT_STORE_PG_ROUTES, &r->base, &p);
    assert_string_equal(p.values[1], "/p/");
    assert_string_equal(p.values[2], "[\"GET\",\"a\\\"b\\\\c\\n\"]");
    assert_null(p.values[3]);                 /* host */
    assert_null(p.values[4]);                 /* service */
    assert_string_equal(p.values[9], "true"); /* enabled by default */
    pt_store_pg_params_fini(&p);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static Google__Protobuf__Value *value(Google__Protobuf__Value__KindCase k)
{
    Google__Protobuf__Value *v = pt_xcalloc(1, sizeof(*v));
    google__protobuf__value__init(v);
    v->kind_case = k;
    return v;
}

static void test_pg_struct_json__nested_values(void **state)
{
    Google__Protobuf__Struct *s = pt_xcalloc(1, sizeof(*s));
    google__protobuf__struct__init(s);
    s->n_fields = 2;
    s->fields = pt_xcalloc(2, sizeof(*s->fields));
    for (int i = 0; i < 2; i++) {
        s->fields[i] = pt_xcalloc(1, sizeof(**s->fields));
        google__protobuf__struct__fields_entry__init(s->fields[i]);
    }
    s->fields[0]->key = pt_xstrdup("n");
    s->fields[0]->value = value(GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE);
    s->fields[0]->value->number_value = 1.5;
    s->fields[1]->key = pt_xstrdup("l");
    Google__Protobuf__Value *l = value(GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE);
    l->list_value = pt_xcalloc(1, sizeof(*l->list_value));
    google__protobuf__list_value__init(l->list_value);
    l->list_value->n_values = 3;
    l->list_value->values = pt_xcalloc(3, sizeof(*l->list_value->values));
    l->list_value->values[0] = value(GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE);
    l->list_value->values[0]->bool_value = 1;
    l->list_value->values[1] = value(GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    l->list_value->values[2] = value(GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE);
    l->list_value->values[2]->string_value = pt_xstrdup("\x01");
    s->fields[1]->value = l;
    char *j = pt_store_pg_struct_json(&s->base);
    assert_string_equal(j, "{\"n\":1.5,\"l\":[true,null,\"\\u0001\"]}");
    free(j);
    j = pt_store_pg_struct_json(NULL);
    assert_string_equal(j, "{}");
    free(j);
    protobuf_c_message_free_unpacked(&s->base, NULL);
}

static void test_pg_project__api_key_timestamps_in_microseconds(void **state)
{
    Portico__Config__V1__ApiKey *k = pt_xcalloc(1, sizeof(*k));
    portico__config__v1__api_key__init(k);
    k->name = pt_xstrdup("k");
    k->expires_at = pt_xcalloc(1, sizeof(*k->expires_at));
    google__protobuf__timestamp__init(k->expires_at);
    k->expires_at->seconds = 10;
    k->expires_at->nanos = 999999;
    struct pt_store_pg_params p;
    pt_store_pg_project(PT_STORE_PG_API_KEYS, &k->base, &p);
    assert_int_equal(p.n, 13);
    assert_string_equal(p.values[5], "[]");
    assert_null(p.values[6]);
    assert_string_equal(p.values[7], "10000999");
    assert_int_equal(p.formats[10], 1);
    assert_null(p.values[11]);
    assert_null(p.values[12]);
    pt_store_pg_params_fini(&p);
    protobuf_c_message_free_unpacked(&k->base, NULL);
}

static void test_pg_migrations__embedded_in_order(void **state)
{
    assert_true(pt_store_pg_nmigrations >= 1);
    assert_int_equal(pt_store_pg_migrations[0].version, 1);
    assert_string_equal(pt_store_pg_migrations[0].name, "001_initial");
    for (size_t i = 0; i < pt_store_pg_nmigrations; i++) {
        assert_true(*pt_store_pg_migrations[i].len > 0);
        if (i)
            assert_true(pt_store_pg_migrations[i].version > pt_store_pg_migrations[i - 1].version);
    }
    char *sql =
        pt_xstrndup((const char *)pt_store_pg_migrations[0].sql, *pt_store_pg_migrations[0].len);
    assert_non_null(strstr(sql, "CREATE TABLE config_state"));
    free(sql);
}

static void test_pg_key_use_json__names_escaped_microseconds(void **state)
{
    (void)state;
    struct pt_store_key_use v[] = {{"k1", 1700000000123456789ull}, {"we\"ird\\key", 1000}};
    char *j = pt_store_pg_key_use_json(v, 2);
    assert_string_equal(j, "[{\"n\":\"k1\",\"us\":1700000000123456},"
                           "{\"n\":\"we\\\"ird\\\\key\",\"us\":1}]");
    free(j);
    j = pt_store_pg_key_use_json(v, 0);
    assert_string_equal(j, "[]");
    free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_diff__add_change_delete_sorted_and_unchanged_skipped),
        cmocka_unit_test(test_pg_diff__repeated_or_missing_name_is_invalid),
        cmocka_unit_test(test_pg_project__service_columns_and_binary_spec),
        cmocka_unit_test(test_pg_project__route_uses_prefix_and_nulls_empty_host),
        cmocka_unit_test(test_pg_struct_json__nested_values),
        cmocka_unit_test(test_pg_project__api_key_timestamps_in_microseconds),
        cmocka_unit_test(test_pg_migrations__embedded_in_order),
        cmocka_unit_test(test_pg_key_use_json__names_escaped_microseconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
