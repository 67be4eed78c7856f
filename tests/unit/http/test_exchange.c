/*
 * The identity of the plugin ABI (portico/exchange.h 1.2 and 1.4):
 * attributes, lists, the subject fallback, set_identity clearing the rest,
 * borrowed identities copied before they change, and the limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/exchange.h"

static const struct pt_downstream_ops down;
static struct pt_conn_info conn;

#define assert_pt_str(s, want)                                                                     \
    do {                                                                                           \
        struct pt_str got_ = (s);                                                                  \
        const char *want_ = (want);                                                                \
        if (!pt_str_eq(got_, pt_str_from_cstr(want_)))                                             \
            fail_msg("got \"%.*s\", want \"%s\"", (int)got_.len, got_.ptr ? got_.ptr : "", want_); \
    } while (0)

static void test_exchange_identity__attributes_and_lists(void **state)
{
    (void)state;
    struct pt_exchange *x = pt_exchange_new(NULL, &conn, &down, NULL, 0);
    assert_int_equal(pt_exchange_identity_get(x, PT_IDENTITY_SUBJECT).len, 0);
    char v[] = "app-1";
    assert_int_equal(pt_exchange_identity_set(x, PT_IDENTITY_CLIENT_ID, pt_str_from_cstr(v)), 0);
    v[0] = 'X'; /* copied */
    assert_pt_str(pt_exchange_identity(x)->client_id, "app-1");
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_SUBJECT), "app-1"); /* fallback */
    assert_int_equal(pt_exchange_identity_set(x, PT_IDENTITY_USER_ID, PT_STR("alice")), 0);
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_SUBJECT), "alice");
    assert_int_equal(pt_exchange_identity_set(x, PT_IDENTITY_SUBJECT, PT_STR("bob")), 0);
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_SUBJECT), "bob");
    assert_int_equal(pt_exchange_identity_set(x, PT_IDENTITY_CLAIMS, PT_STR(" {\"a\":1} ")), 0);
    assert_int_equal(pt_exchange_identity_set(x, PT_IDENTITY_CLAIMS, PT_STR("[1]")),
                     PT_ERR_INVALID);
    assert_int_equal(pt_exchange_identity_set(x, (enum pt_identity_attr)99, PT_STR("x")),
                     PT_ERR_INVALID);
    assert_int_equal(pt_exchange_identity_get(x, (enum pt_identity_attr)99).len, 0);

    assert_int_equal(pt_exchange_identity_add(x, PT_IDENTITY_SCOPES, PT_STR("read")), 0);
    assert_int_equal(pt_exchange_identity_add(x, PT_IDENTITY_SCOPES, PT_STR("write")), 0);
    assert_int_equal(pt_exchange_identity_add(x, PT_IDENTITY_SCOPES, PT_STR_NULL), PT_ERR_INVALID);
    assert_int_equal(pt_exchange_identity_add(x, (enum pt_identity_list)5, PT_STR("a")),
                     PT_ERR_INVALID);
    assert_int_equal(pt_exchange_identity_count(x, PT_IDENTITY_SCOPES), 2);
    assert_pt_str(pt_exchange_identity_item(x, PT_IDENTITY_SCOPES, 1), "write");
    assert_int_equal(pt_exchange_identity_item(x, PT_IDENTITY_SCOPES, 2).len, 0);
    assert_true(pt_exchange_identity_has(x, PT_IDENTITY_SCOPES, PT_STR("read")));
    assert_false(pt_exchange_identity_has(x, PT_IDENTITY_ROLES, PT_STR("read")));
    for (int i = 2; i < PT_IDENTITY_MAX_ITEMS; i++)
        assert_int_equal(pt_exchange_identity_add(x, PT_IDENTITY_SCOPES, PT_STR("s")), 0);
    assert_int_equal(pt_exchange_identity_add(x, PT_IDENTITY_SCOPES, PT_STR("s")), PT_ERR_LIMIT);
    assert_pt_str(pt_exchange_identity_item(x, PT_IDENTITY_SCOPES, 0), "read");

    /* The 1.2 setter replaces the whole identity. */
    struct pt_identity id = {.client_id = PT_STR("other"), .tier = PT_STR("free")};
    assert_int_equal(pt_exchange_set_identity(x, &id), 0);
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_SUBJECT), "other");
    assert_int_equal(pt_exchange_identity_count(x, PT_IDENTITY_SCOPES), 0);
    assert_int_equal(pt_exchange_identity_get(x, PT_IDENTITY_CLAIMS).len, 0);
    pt_exchange_free(x);
}

static void test_exchange_identity__borrowed_lists_copied_before_a_change(void **state)
{
    (void)state;
    struct pt_exchange *x = pt_exchange_new(NULL, &conn, &down, NULL, 0);
    static const struct pt_str scopes[] = {{"a", 1}, {"b", 1}, {"c", 1}};
    struct pt_identity_full id = {.method = PT_STR("api_key")};
    id.list[PT_IDENTITY_SCOPES] = scopes;
    id.n[PT_IDENTITY_SCOPES] = 3;
    pt_exchange_identity_replace(x, &id);
    assert_int_equal(pt_exchange_identity_count(x, PT_IDENTITY_SCOPES), 3);
    assert_int_equal(pt_exchange_identity_add(x, PT_IDENTITY_SCOPES, PT_STR("d")), 0);
    assert_int_equal(pt_exchange_identity_count(x, PT_IDENTITY_SCOPES), 4);
    assert_pt_str(pt_exchange_identity_item(x, PT_IDENTITY_SCOPES, 3), "d");
    assert_pt_str(pt_exchange_identity_item(x, PT_IDENTITY_SCOPES, 2), "c");
    pt_exchange_free(x);
}

static void test_exchange_identity__memory_limit(void **state)
{
    (void)state;
    struct pt_exchange *x = pt_exchange_new(NULL, &conn, &down, NULL, 0);
    x->arena.limit = x->arena.used + 8;
    char big[64];
    memset(big, 'a', sizeof(big));
    assert_int_equal(
        pt_exchange_identity_set(x, PT_IDENTITY_SUBJECT, (struct pt_str){big, sizeof(big)}),
        PT_ERR_LIMIT);
    pt_exchange_free(x);
}

/* Parsed claims handed to the exchange: rendered once, only when read;
 * released when the exchange ends, or when CLAIMS is set explicitly. */
static int renders, releases;

static size_t fake_render(void *src, char *buf, size_t cap)
{
    renders++;
    size_t n = strlen(src);
    memcpy(buf, src, n < cap ? n : cap);
    return n;
}

static void fake_release(void *src)
{
    (void)src;
    releases++;
}

static const struct pt_identity_claims_ops fake_ops = {fake_render, fake_release};

static void test_exchange_identity__claims_rendered_lazily_and_released(void **state)
{
    (void)state;
    static char claims[] = "{\"sub\":\"u\"}";
    struct pt_identity_full id = {.subject = PT_STR("u")};
    renders = releases = 0;
    struct pt_exchange *x = pt_exchange_new(NULL, &conn, &down, NULL, 0);
    pt_exchange_identity_adopt(x, &id, claims, &fake_ops);
    assert_int_equal(renders, 0);
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_CLAIMS), "{\"sub\":\"u\"}");
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_CLAIMS), "{\"sub\":\"u\"}");
    assert_int_equal(renders, 1);
    assert_int_equal(releases, 0);
    pt_exchange_free(x);
    assert_int_equal(releases, 1);

    /* Never read: never rendered, still released. Setting CLAIMS replaces
     * (and releases) them; so does a 1.2 set_identity. */
    x = pt_exchange_new(NULL, &conn, &down, NULL, 0);
    pt_exchange_identity_adopt(x, &id, claims, &fake_ops);
    assert_int_equal(pt_exchange_identity_set(x, PT_IDENTITY_CLAIMS, PT_STR("{}")), 0);
    assert_int_equal(releases, 2);
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_CLAIMS), "{}");
    pt_exchange_identity_adopt(x, &id, claims, &fake_ops);
    struct pt_identity old = {.client_id = PT_STR("c")};
    assert_int_equal(pt_exchange_set_identity(x, &old), 0);
    assert_int_equal(releases, 3);
    assert_int_equal(pt_exchange_identity_get(x, PT_IDENTITY_CLAIMS).len, 0);
    pt_exchange_free(x);
    assert_int_equal(renders, 1);
    assert_int_equal(releases, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exchange_identity__attributes_and_lists),
        cmocka_unit_test(test_exchange_identity__borrowed_lists_copied_before_a_change),
        cmocka_unit_test(test_exchange_identity__memory_limit),
        cmocka_unit_test(test_exchange_identity__claims_rendered_lazily_and_released),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
