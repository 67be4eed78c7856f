/*
 * The pure parts of token introspection: form encoding and client
 * authentication (auth/introspect_wire.h), response parsing including
 * hostile JSON, and the answer cache with a fake clock
 * (auth/introspect_cache.h). The client against a real endpoint is in
 * test_fetch.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/introspect_cache.h"
#include "auth/introspect_wire.h"
#include "portico/errors.h"

#define S 1000000000ull

/* --- form encoding -------------------------------------------------------- */

static void check_encode(struct pt_str in, const char *want)
{
    size_t n = pt_form_encode(in, NULL, 0);
    assert_int_equal(n, strlen(want));
    char *buf = malloc(n + 1);
    assert_int_equal(pt_form_encode(in, buf, n + 1), n);
    assert_string_equal(buf, want);
    free(buf);
}

static void test_form__encoding(void **state)
{
    (void)state;
    check_encode(PT_STR("abcXYZ019*-._"), "abcXYZ019*-._");
    check_encode(PT_STR("a b"), "a+b");
    check_encode(PT_STR("a+b=c&d/e?f#g%h~"), "a%2Bb%3Dc%26d%2Fe%3Ff%23g%25h%7E");
    check_encode(PT_STR("\xc3\xa9"), "%C3%A9");
    check_encode((struct pt_str){"a\0b", 3}, "a%00b");
    check_encode(PT_STR("\r\n"), "%0D%0A");
    check_encode(PT_STR(""), "");
    /* A short buffer gets a prefix and the full length back. */
    char small[4];
    assert_int_equal(pt_form_encode(PT_STR("a b c"), small, sizeof(small)), 5);
    assert_memory_equal(small, "a+b+", 4);
}

static void test_form__request_body(void **state)
{
    (void)state;
    size_t len = 0;
    char *b = pt_introspect_form_body(PT_STR("a b&c=d"), "access_token", &len);
    assert_string_equal(b, "token=a+b%26c%3Dd&token_type_hint=access_token");
    assert_int_equal(len, strlen(b));
    free(b);
    b = pt_introspect_form_body(PT_STR("2YotnFZFEjr1zCsicMWpAA"), NULL, &len);
    assert_string_equal(b, "token=2YotnFZFEjr1zCsicMWpAA");
    free(b);
    b = pt_introspect_form_body(PT_STR("x"), "", &len);
    assert_string_equal(b, "token=x");
    free(b);
}

static void test_form__basic_auth(void **state)
{
    (void)state;
    /* RFC 6749 §2.3.1's example. */
    char *a = pt_introspect_basic_auth("s6BhdRkqt3", "gX1fBat3bV");
    assert_string_equal(a, "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW");
    free(a);
    /* Each part form-encoded before base64: "a%3Ab:p+w%25%7E". */
    a = pt_introspect_basic_auth("a:b", "p w%~");
    assert_string_equal(a, "Basic YSUzQWI6cCt3JTI1JTdF");
    free(a);
    a = pt_introspect_basic_auth("id", "");
    assert_string_equal(a, "Basic aWQ6"); /* "id:" */
    free(a);
}

/* --- response parsing ----------------------------------------------------- */

static struct pt_introspection *parse_ok(const char *json)
{
    struct pt_introspection *r = NULL;
    char why[200] = "";
    int rc = pt_introspection_parse(json, strlen(json), &r, why, sizeof(why));
    if (rc != 0)
        fail_msg("parse failed: %s: %s", json, why);
    assert_non_null(r);
    return r;
}

static void parse_err(const char *json, size_t len, const char *why_part)
{
    struct pt_introspection *r = (struct pt_introspection *)1;
    char why[200] = "";
    int rc = pt_introspection_parse(json, len, &r, why, sizeof(why));
    if (rc != PT_ERR_UPSTREAM_PROTOCOL)
        fail_msg("accepted: %.*s", (int)(len > 80 ? 80 : len), json);
    assert_null(r);
    if (why_part && !strstr(why, why_part))
        fail_msg("'%s': reason '%s' lacks '%s'", json, why, why_part);
}

#define PERR(json, why) parse_err(json, strlen(json), why)

static void test_parse__active_answer(void **state)
{
    (void)state;
    struct pt_introspection *r = parse_ok(
        "{\"active\":true,\"scope\":\"  read write\\u0020 admin \",\"client_id\":\"l238j323ds\","
        "\"username\":\"jdoe\",\"token_type\":\"Bearer\",\"exp\":1419356238,\"iat\":1419350238,"
        "\"nbf\":1419350000.7,\"sub\":\"Z5O3upPC88QrAjx00dis\",\"aud\":\"https://rs.example\","
        "\"iss\":\"https://server.example.com/\",\"jti\":\"JlbmMiOiJBMTI4Q0JDLUhTMjU2In\","
        "\"extension_field\":{\"a\":[1,2]}}");
    assert_true(r->active);
    assert_true(r->has_exp && r->has_iat && r->has_nbf);
    assert_int_equal(r->exp, 1419356238);
    assert_int_equal(r->iat, 1419350238);
    assert_int_equal(r->nbf, 1419350000);
    assert_string_equal(r->sub, "Z5O3upPC88QrAjx00dis");
    assert_string_equal(r->client_id, "l238j323ds");
    assert_string_equal(r->username, "jdoe");
    assert_string_equal(r->iss, "https://server.example.com/");
    assert_string_equal(r->token_type, "Bearer");
    assert_int_equal(r->nscopes, 3);
    assert_string_equal(r->scopes[0], "read");
    assert_string_equal(r->scopes[1], "write");
    assert_string_equal(r->scopes[2], "admin");
    assert_true(pt_introspection_has_scope(r, PT_STR("write")));
    assert_false(pt_introspection_has_scope(r, PT_STR("writ")));
    assert_false(pt_introspection_has_scope(r, PT_STR("WRITE")));
    assert_int_equal(r->naud, 1);
    assert_string_equal(r->aud[0], "https://rs.example");
    assert_string_equal(json_string_value(json_object_get(r->claims, "jti")),
                        "JlbmMiOiJBMTI4Q0JDLUhTMjU2In");
    pt_introspection_unref(r);

    r = parse_ok("{\"active\":true,\"aud\":[\"a\",\"b\"],\"scope\":[\"x\",\"y z\"]}");
    assert_int_equal(r->naud, 2);
    assert_int_equal(r->nscopes, 2);
    assert_string_equal(r->scopes[1], "y z");
    assert_false(r->has_exp);
    assert_null(r->sub);
    pt_introspection_unref(r);
}

static void test_parse__only_json_true_is_active(void **state)
{
    (void)state;
    const char *inactive[] = {
        "{\"active\":false}",  "{\"active\":\"true\"}",
        "{\"active\":1}",      "{\"active\":null}",
        "{\"active\":[true]}", "{}",
        "{\"Active\":true}",   "{\"active\":{\"a\":true}}",
        "{\"active\":0.5}",    "{\"active\":false,\"exp\":\"junk\",\"scope\":7,\"aud\":{}}",
    };
    for (size_t i = 0; i < sizeof(inactive) / sizeof(inactive[0]); i++) {
        struct pt_introspection *r = parse_ok(inactive[i]);
        assert_false(r->active);
        assert_int_equal(r->nscopes, 0);
        assert_null(r->sub);
        pt_introspection_unref(r);
    }
}

static void test_parse__hostile_documents(void **state)
{
    (void)state;
    PERR("", "JSON");
    PERR("{\"active\":true,", "JSON");
    PERR("[true]", "object");
    PERR("true", "JSON"); /* jansson wants an array or object at top level */
    PERR("\"active\"", NULL);
    PERR("{\"active\":true,\"active\":false}", "JSON"); /* duplicates */
    PERR("{\"active\":true,\"sub\":\"a\\u0000b\"}", "JSON");
    const char nul[] = "{\"active\":true}\0garbage";
    parse_err(nul, sizeof(nul) - 1, "JSON");
    PERR("{\"active\":true,\"exp\":\"1419356238\"}", "exp");
    PERR("{\"active\":true,\"exp\":-1}", "exp");
    PERR("{\"active\":true,\"iat\":1e300}", "iat");
    PERR("{\"active\":true,\"nbf\":9007199254740993}", "nbf");
    PERR("{\"active\":true,\"sub\":42}", "sub");
    PERR("{\"active\":true,\"client_id\":null}", "client_id");
    PERR("{\"active\":true,\"username\":[\"a\"]}", "username");
    PERR("{\"active\":true,\"iss\":{}}", "iss");
    PERR("{\"active\":true,\"token_type\":true}", "token_type");
    PERR("{\"active\":true,\"scope\":7}", "scope");
    PERR("{\"active\":true,\"scope\":[\"a\",1]}", "scope");
    PERR("{\"active\":true,\"aud\":[\"a\",null]}", "aud");
    PERR("{\"active\":true,\"aud\":false}", "aud");

    /* Too many scopes or audiences. */
    size_t cap = 64 + 4 * (PT_INTROSPECT_MAX_SCOPES + 10);
    char *big = malloc(cap);
    size_t n = (size_t)snprintf(big, cap, "{\"active\":true,\"scope\":\"");
    for (int i = 0; i < PT_INTROSPECT_MAX_SCOPES + 1; i++)
        n += (size_t)snprintf(big + n, cap - n, "s ");
    n += (size_t)snprintf(big + n, cap - n, "\"}");
    parse_err(big, n, "scope");
    n = (size_t)snprintf(big, cap, "{\"active\":true,\"aud\":[");
    for (int i = 0; i < PT_INTROSPECT_MAX_AUD + 1; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s\"a\"", i ? "," : "");
    n += (size_t)snprintf(big + n, cap - n, "]}");
    parse_err(big, n, "aud");
    free(big);

    /* Deep nesting is refused by the parser's depth limit, not the stack. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 32);
    n = (size_t)snprintf(deep, 32, "{\"active\":true,\"x\":");
    memset(deep + n, '[', depth);
    memset(deep + n + depth, ']', depth);
    n += 2 * depth;
    deep[n++] = '}';
    parse_err(deep, n, "JSON");
    free(deep);

    /* Exactly at the scope limit is fine. */
    cap = 64 + 2 * PT_INTROSPECT_MAX_SCOPES;
    big = malloc(cap);
    n = (size_t)snprintf(big, cap, "{\"active\":true,\"scope\":\"");
    for (int i = 0; i < PT_INTROSPECT_MAX_SCOPES; i++)
        n += (size_t)snprintf(big + n, cap - n, "s ");
    snprintf(big + n, cap - n, "\"}");
    struct pt_introspection *r = parse_ok(big);
    assert_int_equal(r->nscopes, PT_INTROSPECT_MAX_SCOPES);
    pt_introspection_unref(r);
    free(big);
}

/* --- cache ---------------------------------------------------------------- */

static struct pt_introspection *active_until(int64_t exp)
{
    struct pt_introspection *r = pt_introspection_new_inactive();
    r->active = true;
    if (exp >= 0) {
        r->has_exp = true;
        r->exp = exp;
    }
    return r;
}

static void key_of(struct pt_introspect_cache *c, const char *token, uint8_t *k)
{
    pt_introspect_cache_key(c, PT_STR("https://as/introspect\nclient"), pt_str_from_cstr(token), k);
}

static bool present(struct pt_introspect_cache *c, const char *token, uint64_t now)
{
    uint8_t k[PT_INTROSPECT_KEY_LEN];
    key_of(c, token, k);
    struct pt_introspection *r = pt_introspect_cache_lookup(c, k, now);
    pt_introspection_unref(r);
    return r != NULL;
}

static void put(struct pt_introspect_cache *c, const char *token, struct pt_introspection *r,
                uint64_t now)
{
    uint8_t k[PT_INTROSPECT_KEY_LEN];
    key_of(c, token, k);
    pt_introspect_cache_put(c, k, r, now);
    pt_introspection_unref(r);
}

static void test_cache__positive_lives_until_exp_or_max_ttl(void **state)
{
    (void)state;
    struct pt_introspect_cache *c =
        pt_introspect_cache_new(&(struct pt_introspect_cache_conf){.max_ttl_ms = 300000});
    uint64_t t0 = 1700000000ull * S;
    /* exp in 60 s, max TTL 300 s: gone at exp. */
    put(c, "a", active_until(1700000060), t0);
    assert_true(present(c, "a", t0 + 59 * S));
    assert_true(present(c, "a", t0 + 60 * S - 1));
    assert_false(present(c, "a", t0 + 60 * S));
    assert_int_equal(pt_introspect_cache_count(c), 0); /* dropped on lookup */
    /* exp in an hour: gone after max TTL. */
    put(c, "b", active_until(1700003600), t0);
    assert_true(present(c, "b", t0 + 299 * S));
    assert_false(present(c, "b", t0 + 300 * S));
    /* No exp: max TTL. */
    put(c, "c", active_until(-1), t0);
    assert_true(present(c, "c", t0 + 299 * S));
    assert_false(present(c, "c", t0 + 300 * S));
    /* exp already passed (or now): never stored. */
    put(c, "d", active_until(1700000000), t0);
    put(c, "e", active_until(5), t0);
    assert_int_equal(pt_introspect_cache_count(c), 0);
    assert_false(present(c, "d", t0));
    pt_introspect_cache_unref(c);
}

static void test_cache__negative_ttl(void **state)
{
    (void)state;
    struct pt_introspect_cache *c = pt_introspect_cache_new(NULL);
    uint64_t t0 = 1700000000ull * S;
    put(c, "bad", pt_introspection_new_inactive(), t0);
    assert_true(present(c, "bad", t0 + 9 * S));
    assert_false(present(c, "bad", t0 + 10 * S)); /* default 10 s */
    struct pt_introspect_cache *c2 =
        pt_introspect_cache_new(&(struct pt_introspect_cache_conf){.negative_ttl_ms = 1500});
    put(c2, "bad", pt_introspection_new_inactive(), t0);
    assert_true(present(c2, "bad", t0 + 1499000000ull));
    assert_false(present(c2, "bad", t0 + 1500000000ull));
    pt_introspect_cache_unref(c);
    pt_introspect_cache_unref(c2);
}

static void test_cache__lru_eviction_and_replace(void **state)
{
    (void)state;
    struct pt_introspect_cache *c =
        pt_introspect_cache_new(&(struct pt_introspect_cache_conf){.max_entries = 3});
    uint64_t t0 = 1700000000ull * S;
    put(c, "k1", active_until(-1), t0);
    put(c, "k2", active_until(-1), t0);
    put(c, "k3", active_until(-1), t0);
    assert_true(present(c, "k1", t0)); /* k1 is now the most recent */
    put(c, "k4", active_until(-1), t0);
    assert_int_equal(pt_introspect_cache_count(c), 3);
    assert_false(present(c, "k2", t0));
    assert_true(present(c, "k1", t0));
    assert_true(present(c, "k3", t0));
    assert_true(present(c, "k4", t0));
    /* Replacing keeps one entry with the new answer. */
    put(c, "k4", pt_introspection_new_inactive(), t0);
    assert_int_equal(pt_introspect_cache_count(c), 3);
    uint8_t k[PT_INTROSPECT_KEY_LEN];
    key_of(c, "k4", k);
    struct pt_introspection *r = pt_introspect_cache_lookup(c, k, t0);
    assert_false(r->active);
    pt_introspection_unref(r);
    /* Expired entries at the LRU end go first. */
    put(c, "n1", pt_introspection_new_inactive(), t0);
    assert_int_equal(pt_introspect_cache_count(c), 3);
    put(c, "fresh", active_until(-1), t0 + 20 * S); /* the inactive ones have expired */
    assert_true(present(c, "fresh", t0 + 20 * S));
    pt_introspect_cache_unref(c);
}

static void test_cache__bounded_with_stripes(void **state)
{
    (void)state;
    struct pt_introspect_cache *c = pt_introspect_cache_new(NULL);
    uint64_t t0 = 1700000000ull * S;
    char tok[32];
    for (int i = 0; i < 25000; i++) {
        snprintf(tok, sizeof(tok), "token-%d", i);
        put(c, tok, active_until(-1), t0);
    }
    size_t n = pt_introspect_cache_count(c);
    assert_true(n <= PT_INTROSPECT_CACHE_DEFAULT_MAX);
    assert_true(n >= PT_INTROSPECT_CACHE_DEFAULT_MAX - 16);
    assert_true(present(c, "token-24999", t0));
    assert_false(present(c, "token-0", t0));
    pt_introspect_cache_unref(c);
}

static void test_cache__keys_are_salted_and_namespaced(void **state)
{
    (void)state;
    struct pt_introspect_cache *a = pt_introspect_cache_new(NULL);
    struct pt_introspect_cache *b = pt_introspect_cache_new(NULL);
    uint8_t k1[32], k2[32], k3[32], k4[32];
    pt_introspect_cache_key(a, PT_STR("ns1"), PT_STR("tok"), k1);
    pt_introspect_cache_key(a, PT_STR("ns1"), PT_STR("tok"), k2);
    assert_memory_equal(k1, k2, 32);
    pt_introspect_cache_key(a, PT_STR("ns2"), PT_STR("tok"), k3);
    assert_memory_not_equal(k1, k3, 32);
    /* "ns1" + "tok" is not "ns1t" + "ok". */
    pt_introspect_cache_key(a, PT_STR("ns1t"), PT_STR("ok"), k3);
    assert_memory_not_equal(k1, k3, 32);
    pt_introspect_cache_key(b, PT_STR("ns1"), PT_STR("tok"), k4);
    assert_memory_not_equal(k1, k4, 32);
    pt_introspect_cache_unref(a);
    pt_introspect_cache_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form__encoding),
        cmocka_unit_test(test_form__request_body),
        cmocka_unit_test(test_form__basic_auth),
        cmocka_unit_test(test_parse__active_answer),
        cmocka_unit_test(test_parse__only_json_true_is_active),
        cmocka_unit_test(test_parse__hostile_documents),
        cmocka_unit_test(test_cache__positive_lives_until_exp_or_max_ttl),
        cmocka_unit_test(test_cache__negative_ttl),
        cmocka_unit_test(test_cache__lru_eviction_and_replace),
        cmocka_unit_test(test_cache__bounded_with_stripes),
        cmocka_unit_test(test_cache__keys_are_salted_and_namespaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
