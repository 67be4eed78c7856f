/*
 * Tests for auth/token_cache with a fake clock: hits, expiry at the
 * token's exp and at the TTL, LRU eviction at capacity, generations
 * (settings and key set) as part of the key, flush, reference counts, and
 * a churn run checked against a simple model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/token_cache.h"

#define T0 1700000000

static struct pt_str tok(const char *s)
{
    return (struct pt_str){s, strlen(s)};
}

static json_t *claims(const char *sub)
{
    return json_pack("{s:s}", "sub", sub);
}

/* The sub of the cached claims, or NULL on a miss (drops the reference). */
static const char *lookup_sub(struct pt_token_cache *c, uint64_t g1, uint64_t g2, const char *t,
                              int64_t now)
{
    static char sub[64];
    json_t *j = pt_token_cache_lookup(c, g1, g2, tok(t), now);
    if (!j)
        return NULL;
    snprintf(sub, sizeof(sub), "%s", json_string_value(json_object_get(j, "sub")));
    json_decref(j);
    return sub;
}

static void test_token_cache__hit_returns_a_new_reference(void **state)
{
    (void)state;
    struct pt_token_cache *c = pt_token_cache_new(NULL);
    json_t *j = claims("alice");
    pt_token_cache_insert(c, 1, 2, tok("aaa.bbb.ccc"), j, true, T0 + 100, T0);
    assert_int_equal(j->refcount, 2);
    json_t *hit = pt_token_cache_lookup(c, 1, 2, tok("aaa.bbb.ccc"), T0 + 1);
    assert_ptr_equal(hit, j);
    assert_int_equal(j->refcount, 3);
    json_decref(hit);
    /* A token differing in one byte, or a prefix, misses. */
    assert_null(lookup_sub(c, 1, 2, "aaa.bbb.ccd", T0 + 1));
    assert_null(lookup_sub(c, 1, 2, "aaa.bbb.cc", T0 + 1));
    struct pt_token_cache_stats st;
    pt_token_cache_stats(c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.inserts, 1);
    assert_int_equal(st.entries, 1);
    pt_token_cache_free(c);
    assert_int_equal(j->refcount, 1);
    json_decref(j);
    pt_token_cache_free(NULL);
}

static void test_token_cache__entry_never_outlives_exp(void **state)
{
    (void)state;
    struct pt_token_cache_opts o = {.max_ttl_s = 3600};
    struct pt_token_cache *c = pt_token_cache_new(&o);
    json_t *j = claims("alice");
    pt_token_cache_insert(c, 1, 1, tok("t"), j, true, T0 + 100, T0);
    assert_string_equal(lookup_sub(c, 1, 1, "t", T0 + 99), "alice");
    assert_null(lookup_sub(c, 1, 1, "t", T0 + 100));
    struct pt_token_cache_stats st;
    pt_token_cache_stats(c, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.entries, 0);
    /* Already expired (or expiring now): not stored. */
    pt_token_cache_insert(c, 1, 1, tok("old"), j, true, T0, T0);
    pt_token_cache_insert(c, 1, 1, tok("older"), j, true, T0 - 5, T0);
    pt_token_cache_stats(c, &st);
    assert_int_equal(st.entries, 0);
    pt_token_cache_free(c);
    assert_int_equal(j->refcount, 1);
    json_decref(j);
}

static void test_token_cache__ttl_caps_long_lived_tokens(void **state)
{
    (void)state;
    struct pt_token_cache_opts o = {.max_ttl_s = 10};
    struct pt_token_cache *c = pt_token_cache_new(&o);
    json_t *j = claims("bob");
    pt_token_cache_insert(c, 1, 1, tok("long"), j, true, T0 + 86400, T0);
    pt_token_cache_insert(c, 1, 1, tok("noexp"), j, false, 0, T0);
    assert_string_equal(lookup_sub(c, 1, 1, "long", T0 + 9), "bob");
    assert_string_equal(lookup_sub(c, 1, 1, "noexp", T0 + 9), "bob");
    assert_null(lookup_sub(c, 1, 1, "long", T0 + 10));
    assert_null(lookup_sub(c, 1, 1, "noexp", T0 + 10));
    /* The default TTL is 300 s. */
    pt_token_cache_free(c);
    c = pt_token_cache_new(NULL);
    pt_token_cache_insert(c, 1, 1, tok("long"), j, true, T0 + 86400, T0);
    assert_non_null(lookup_sub(c, 1, 1, "long", T0 + PT_TOKEN_CACHE_DEFAULT_TTL_S - 1));
    assert_null(lookup_sub(c, 1, 1, "long", T0 + PT_TOKEN_CACHE_DEFAULT_TTL_S));
    pt_token_cache_free(c);
    json_decref(j);
}

static void test_token_cache__generations_are_part_of_the_key(void **state)
{
    (void)state;
    struct pt_token_cache *c = pt_token_cache_new(NULL);
    json_t *a = claims("old-config"), *b = claims("new-keys");
    pt_token_cache_insert(c, 7, 100, tok("t"), a, true, T0 + 100, T0);
    /* A new snapshot (settings) or a key rotation: the old verdict is not
     * served. */
    assert_null(lookup_sub(c, 8, 100, "t", T0));
    assert_null(lookup_sub(c, 7, 101, "t", T0));
    /* Swapped numbers are another key too. */
    assert_null(lookup_sub(c, 100, 7, "t", T0));
    pt_token_cache_insert(c, 7, 101, tok("t"), b, true, T0 + 100, T0);
    assert_string_equal(lookup_sub(c, 7, 101, "t", T0), "new-keys");
    assert_string_equal(lookup_sub(c, 7, 100, "t", T0), "old-config");
    pt_token_cache_flush(c);
    assert_null(lookup_sub(c, 7, 101, "t", T0));
    assert_null(lookup_sub(c, 7, 100, "t", T0));
    assert_int_equal(a->refcount, 1);
    assert_int_equal(b->refcount, 1);
    /* Usable after a flush. */
    pt_token_cache_insert(c, 7, 101, tok("t"), b, true, T0 + 100, T0);
    assert_string_equal(lookup_sub(c, 7, 101, "t", T0), "new-keys");
    pt_token_cache_free(c);
    json_decref(a);
    json_decref(b);
}

static void test_token_cache__lru_eviction_at_capacity(void **state)
{
    (void)state;
    struct pt_token_cache_opts o = {.max_entries = 3};
    struct pt_token_cache *c = pt_token_cache_new(&o);
    json_t *j[4] = {claims("0"), claims("1"), claims("2"), claims("3")};
    const char *t[4] = {"t0", "t1", "t2", "t3"};
    for (int i = 0; i < 3; i++)
        pt_token_cache_insert(c, 1, 1, tok(t[i]), j[i], true, T0 + 100, T0);
    /* Touch t0: t1 is now the least recently used. */
    assert_non_null(lookup_sub(c, 1, 1, "t0", T0));
    pt_token_cache_insert(c, 1, 1, tok(t[3]), j[3], true, T0 + 100, T0);
    assert_null(lookup_sub(c, 1, 1, "t1", T0));
    assert_int_equal(j[1]->refcount, 1);
    assert_string_equal(lookup_sub(c, 1, 1, "t0", T0), "0");
    assert_string_equal(lookup_sub(c, 1, 1, "t2", T0), "2");
    assert_string_equal(lookup_sub(c, 1, 1, "t3", T0), "3");
    struct pt_token_cache_stats st;
    pt_token_cache_stats(c, &st);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.entries, 3);

    /* Inserting a key again replaces its value and does not grow. */
    pt_token_cache_insert(c, 1, 1, tok("t2"), j[1], true, T0 + 100, T0);
    assert_string_equal(lookup_sub(c, 1, 1, "t2", T0), "1");
    assert_int_equal(j[2]->refcount, 1);
    pt_token_cache_stats(c, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.evictions, 1);
    pt_token_cache_free(c);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(j[i]->refcount, 1);
        json_decref(j[i]);
    }
}

/* Many more tokens than entries, random lookups, some expiring: the cache
 * agrees with a model that remembers insertion order and last use. */
static void test_token_cache__churn_matches_a_model(void **state)
{
    (void)state;
    enum { CAP = 64, KEYS = 500, STEPS = 20000 };
    struct pt_token_cache_opts o = {.max_entries = CAP, .max_ttl_s = 1000};
    struct pt_token_cache *c = pt_token_cache_new(&o);
    json_t *j = claims("x");
    /* Model: per key, whether cached, its expiry and last use (LRU). */
    static struct {
        bool in;
        int64_t expires;
        uint64_t used;
    } m[KEYS];
    memset(m, 0, sizeof(m));
    size_t count = 0;
    uint64_t clock_use = 0, seed = 12345;
    int64_t now = T0;
    for (int step = 0; step < STEPS; step++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned k = (unsigned)(seed >> 33) % KEYS;
        char t[32];
        snprintf(t, sizeof(t), "token-%u", k);
        if (step % 50 == 0)
            now++;
        if ((seed >> 20) & 1) {
            bool hit = lookup_sub(c, 1, 1, t, now) != NULL;
            bool want = m[k].in && now < m[k].expires;
            assert_int_equal(hit, want);
            if (m[k].in && !want) {
                m[k].in = false;
                count--;
            }
            if (hit)
                m[k].used = ++clock_use;
        } else {
            int64_t exp = now + 1 + (int64_t)((seed >> 40) % 20);
            if (!m[k].in && count == CAP) {
                /* Evict the model's least recently used. */
                unsigned lru = KEYS;
                for (unsigned i = 0; i < KEYS; i++)
                    if (m[i].in && (lru == KEYS || m[i].used < m[lru].used))
                        lru = i;
                m[lru].in = false;
                count--;
            }
            pt_token_cache_insert(c, 1, 1, tok(t), j, true, exp, now);
            if (!m[k].in)
                count++;
            m[k].in = true;
            m[k].expires = exp;
            m[k].used = ++clock_use;
        }
        struct pt_token_cache_stats st;
        pt_token_cache_stats(c, &st);
        assert_int_equal(st.entries, count);
        assert_true(st.entries <= CAP);
    }
    pt_token_cache_free(c);
    assert_int_equal(j->refcount, 1);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_cache__hit_returns_a_new_reference),
        cmocka_unit_test(test_token_cache__entry_never_outlives_exp),
        cmocka_unit_test(test_token_cache__ttl_caps_long_lived_tokens),
        cmocka_unit_test(test_token_cache__generations_are_part_of_the_key),
        cmocka_unit_test(test_token_cache__lru_eviction_at_capacity),
        cmocka_unit_test(test_token_cache__churn_matches_a_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
