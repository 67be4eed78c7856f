/*
 * The API-key table: lookups by SHA-256, disabled and expired keys,
 * rotation (two keys of one client), colliding table slots, hostile input,
 * and the identity each key lends to exchanges.
 */
#include "fixture.h"

static uint64_t now(void)
{
    return pt_time_real_ns();
}

static void test_apikey__valid_key_and_its_identity(void **state)
{
    (void)state;
    struct test_key k[1];
    test_key_init(&k[0], "k1", "acme", "secret-one");
    char *scopes[] = {"read", "write"};
    k[0].k.scopes = scopes;
    k[0].k.n_scopes = 2;
    k[0].k.client_name = "Acme Corp";
    k[0].k.rate_limit_tier = "premium";
    struct test_config tc;
    test_config_init(&tc, k, 1);
    struct pt_auth_keys *t = pt_auth_keys_compile(&tc.c);
    const struct pt_auth_key *e;
    assert_int_equal(pt_auth_keys_lookup(t, PT_STR("secret-one"), now(), &e), PT_AUTH_KEY_OK);
    const struct pt_identity_full *id = &e->id.view;
    assert_pt_str(id->method, "api_key");
    assert_pt_str(id->subject, "acme");
    assert_pt_str(id->base.client_id, "acme");
    assert_pt_str(id->base.tier, "premium");
    assert_pt_str(id->base.credential, "k1");
    assert_pt_str(id->client_name, "Acme Corp");
    assert_int_equal(id->base.user_id.len, 0);
    assert_int_equal(id->n[PT_IDENTITY_SCOPES], 2);
    assert_pt_str(id->list[PT_IDENTITY_SCOPES][1], "write");
    assert_int_equal(id->n[PT_IDENTITY_ROLES], 0);
    assert_pt_str(id->claims, "{\"client_id\":\"acme\",\"client_name\":\"Acme Corp\","
                              "\"scopes\":[\"read\",\"write\"],\"tier\":\"premium\"}");
    pt_auth_keys_free(t);
}

static void test_apikey__unknown_and_near_misses(void **state)
{
    (void)state;
    struct test_key k[1];
    test_key_init(&k[0], "k1", "acme", "secret-one");
    struct test_config tc;
    test_config_init(&tc, k, 1);
    struct pt_auth_keys *t = pt_auth_keys_compile(&tc.c);
    const struct pt_auth_key *e;
    static const char *const wrong[] = {"secret-on", "secret-one ",  "Secret-one",
                                        "",          "secret-one\n", "SECRET-ONE"};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        assert_int_equal(pt_auth_keys_lookup(t, pt_str_from_cstr(wrong[i]), now(), &e),
                         PT_AUTH_KEY_UNKNOWN);
        assert_null(e);
    }
    /* The stored hash itself is not a key. */
    assert_int_equal(pt_auth_keys_lookup(t, pt_str_from_cstr(k[0].hash), now(), &e),
                     PT_AUTH_KEY_UNKNOWN);
    pt_auth_keys_free(t);
}

static void test_apikey__disabled_and_expired(void **state)
{
    (void)state;
    struct test_key k[3];
    test_key_init(&k[0], "off", "acme", "key-off");
    test_key_disable(&k[0]);
    test_key_init(&k[1], "old", "acme", "key-old");
    test_key_expire(&k[1], -1);
    test_key_init(&k[2], "later", "acme", "key-later");
    test_key_expire(&k[2], 3600);
    struct test_config tc;
    test_config_init(&tc, k, 3);
    struct pt_auth_keys *t = pt_auth_keys_compile(&tc.c);
    const struct pt_auth_key *e;
    assert_int_equal(pt_auth_keys_lookup(t, PT_STR("key-off"), now(), &e), PT_AUTH_KEY_DISABLED);
    assert_non_null(e); /* found, so the log can say why */
    assert_int_equal(pt_auth_keys_lookup(t, PT_STR("key-old"), now(), &e), PT_AUTH_KEY_EXPIRED);
    assert_int_equal(pt_auth_keys_lookup(t, PT_STR("key-later"), now(), &e), PT_AUTH_KEY_OK);
    /* expires_at is exclusive: at that instant the key is expired. */
    uint64_t at = (uint64_t)k[2].expires.seconds * 1000000000ull;
    assert_int_equal(pt_auth_keys_lookup(t, PT_STR("key-later"), at - 1, &e), PT_AUTH_KEY_OK);
    assert_int_equal(pt_auth_keys_lookup(t, PT_STR("key-later"), at, &e), PT_AUTH_KEY_EXPIRED);
    pt_auth_keys_free(t);
}

static void test_apikey__rotation_two_keys_one_client(void **state)
{
    (void)state;
    struct test_key k[2];
    test_key_init(&k[0], "acme-2023", "acme", "old-secret");
    test_key_init(&k[1], "acme-2024", "acme", "new-secret");
    struct test_config tc;
    test_config_init(&tc, k, 2);
    struct pt_auth_keys *t = pt_auth_keys_compile(&tc.c);
    const struct pt_auth_key *a, *b;
    assert_int_equal(pt_auth_keys_lookup(t, PT_STR("old-secret"), now(), &a), PT_AUTH_KEY_OK);
    assert_int_equal(pt_auth_keys_lookup(t, PT_STR("new-secret"), now(), &b), PT_AUTH_KEY_OK);
    assert_ptr_not_equal(a, b);
    assert_pt_str(a->id.view.base.client_id, "acme");
    assert_pt_str(b->id.view.base.client_id, "acme");
    assert_pt_str(a->id.view.base.credential, "acme-2023");
    assert_pt_str(b->id.view.base.credential, "acme-2024");
    pt_auth_keys_free(t);
    /* The old key disabled: the new one alone works. */
    test_key_disable(&k[0]);
    t = pt_auth_keys_compile(&tc.c);
    assert_int_equal(pt_auth_keys_lookup(t, PT_STR("old-secret"), now(), &a), PT_AUTH_KEY_DISABLED);
    assert_int_equal(pt_auth_keys_lookup(t, PT_STR("new-secret"), now(), &b), PT_AUTH_KEY_OK);
    pt_auth_keys_free(t);
}

static void test_apikey__colliding_slots_compare_every_byte(void **state)
{
    (void)state;
    /* Hashes that share their first 31 bytes (the table index) and differ
     * in the last: every candidate on the probe sequence is compared in
     * full. */
    struct test_key k[3];
    const char *hex[3] = {
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddee01",
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddee02",
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddee03",
    };
    for (int i = 0; i < 3; i++) {
        test_key_init(&k[i], i == 0 ? "a" : i == 1 ? "b" : "c", "acme", "unused");
        memcpy(k[i].hash, hex[i], 65);
    }
    struct test_config tc;
    test_config_init(&tc, k, 3);
    struct pt_auth_keys *t = pt_auth_keys_compile(&tc.c);
    assert_int_equal(t->n, 3);
    for (int i = 0; i < 3; i++) {
        unsigned char h[32];
        for (int j = 0; j < 32; j++)
            sscanf(hex[i] + 2 * j, "%2hhx", &h[j]);
        const struct pt_auth_key *e = pt_auth_keys_find_hash(t, h);
        assert_non_null(e);
        assert_int_equal(memcmp(e->hash, h, 32), 0);
        h[31] = 0x04; /* same slot, no key */
        assert_null(pt_auth_keys_find_hash(t, h));
        h[31] = (unsigned char)(i + 1);
        h[0] ^= 0x80; /* another slot */
        assert_null(pt_auth_keys_find_hash(t, h));
    }
    pt_auth_keys_free(t);
}

static void test_apikey__bad_stored_hashes_are_skipped(void **state)
{
    (void)state;
    struct test_key k[4];
    test_key_init(&k[0], "short", "acme", "x");
    k[0].k.key_hash = "abcd";
    test_key_init(&k[1], "nothex", "acme", "x");
    k[1].k.key_hash = "zz112233445566778899aabbccddeeff00112233445566778899aabbccddee01";
    test_key_init(&k[2], "good", "acme", "good-key");
    test_key_init(&k[3], "dup", "other", "good-key"); /* the same hash again */
    struct test_config tc;
    test_config_init(&tc, k, 4);
    struct pt_auth_keys *t = pt_auth_keys_compile(&tc.c);
    assert_int_equal(t->n, 1);
    const struct pt_auth_key *e;
    assert_int_equal(pt_auth_keys_lookup(t, PT_STR("good-key"), now(), &e), PT_AUTH_KEY_OK);
    assert_pt_str(e->id.view.base.credential, "good"); /* the first one wins */
    pt_auth_keys_free(t);
}

static void test_apikey__hostile_presented_keys(void **state)
{
    (void)state;
    struct test_key k[1];
    test_key_init(&k[0], "k", "acme", "key");
    struct test_config tc;
    test_config_init(&tc, k, 1);
    struct pt_auth_keys *t = pt_auth_keys_compile(&tc.c);
    const struct pt_auth_key *e;
    static char big[PT_AUTH_MAX_API_KEY + 2];
    memset(big, 'a', sizeof(big) - 1);
    assert_int_equal(
        pt_auth_keys_lookup(t, (struct pt_str){big, PT_AUTH_MAX_API_KEY + 1}, now(), &e),
        PT_AUTH_KEY_TOO_LONG);
    assert_int_equal(pt_auth_keys_lookup(t, (struct pt_str){big, PT_AUTH_MAX_API_KEY}, now(), &e),
                     PT_AUTH_KEY_UNKNOWN);
    const char nul[] = {'k', 'e', 'y', '\0', 'x'};
    assert_int_equal(pt_auth_keys_lookup(t, (struct pt_str){nul, sizeof(nul)}, now(), &e),
                     PT_AUTH_KEY_UNKNOWN);
    pt_auth_keys_free(t);
}

static void test_apikey__many_keys_all_found(void **state)
{
    (void)state;
    enum { N = 2000 };
    ApiKey *ptrs = calloc(N, sizeof(*ptrs));
    ApiKey **list = calloc(N, sizeof(*list));
    char(*hashes)[65] = calloc(N, 65);
    char(*names)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        portico__config__v1__api_key__init(&ptrs[i]);
        snprintf(names[i], 16, "key-%d", i);
        sha256_hex(names[i], hashes[i]); /* the secret is the name */
        ptrs[i].name = names[i];
        ptrs[i].client_id = "c";
        ptrs[i].key_hash = hashes[i];
        list[i] = &ptrs[i];
    }
    Config c = PORTICO__CONFIG__V1__CONFIG__INIT;
    c.api_keys = list;
    c.n_api_keys = N;
    struct pt_auth_keys *t = pt_auth_keys_compile(&c);
    assert_int_equal(t->n, N);
    assert_true(t->mask + 1 >= 2 * N);
    for (int i = 0; i < N; i++) {
        const struct pt_auth_key *e;
        assert_int_equal(pt_auth_keys_lookup(t, pt_str_from_cstr(names[i]), now(), &e),
                         PT_AUTH_KEY_OK);
        assert_pt_str(e->id.view.base.credential, names[i]);
        char other[24];
        snprintf(other, sizeof(other), "nokey-%d", i);
        assert_int_equal(pt_auth_keys_lookup(t, pt_str_from_cstr(other), now(), &e),
                         PT_AUTH_KEY_UNKNOWN);
    }
    pt_auth_keys_free(t);
    free(ptrs);
    free(list);
    free(hashes);
    free(names);
}

static void test_apikey__default_tier_and_client_id(void **state)
{
    (void)state;
    struct test_key k[1];
    test_key_init(&k[0], "solo", "", "s");
    struct test_config tc;
    test_config_init(&tc, k, 1);
    struct pt_auth_keys *t = pt_auth_keys_compile(&tc.c);
    const struct pt_auth_key *e;
    assert_int_equal(pt_auth_keys_lookup(t, PT_STR("s"), now(), &e), PT_AUTH_KEY_OK);
    assert_pt_str(e->id.view.base.tier, PT_AUTH_DEFAULT_TIER);
    assert_pt_str(e->id.view.base.client_id, "solo"); /* falls back to the name */
    pt_auth_keys_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apikey__valid_key_and_its_identity),
        cmocka_unit_test(test_apikey__unknown_and_near_misses),
        cmocka_unit_test(test_apikey__disabled_and_expired),
        cmocka_unit_test(test_apikey__rotation_two_keys_one_client),
        cmocka_unit_test(test_apikey__colliding_slots_compare_every_byte),
        cmocka_unit_test(test_apikey__bad_stored_hashes_are_skipped),
        cmocka_unit_test(test_apikey__hostile_presented_keys),
        cmocka_unit_test(test_apikey__many_keys_all_found),
        cmocka_unit_test(test_apikey__default_tier_and_client_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
