/*
 * Tests for ratelimit/key: key_type parsing, key text for each part,
 * IPv4/IPv6 prefixes (and v4-mapped addresses), combinations, absent
 * inputs, and bounded, printable keys from hostile values.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "portico/errors.h"
#include "ratelimit/key.h"

struct hdr {
    const char *name;
    const char *value;
    size_t len; /* 0: strlen(value) */
};

static bool find_header(void *ctx, struct pt_str name, struct pt_str *value)
{
    for (const struct hdr *h = ctx; h && h->name; h++)
        if (strlen(h->name) == name.len && memcmp(h->name, name.ptr, name.len) == 0) {
            value->ptr = h->value;
            value->len = h->len ? h->len : strlen(h->value);
            return true;
        }
    return false;
}

static struct sockaddr_storage v4(const char *ip)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    return ss;
}

/* The key as a NUL-terminated string ("" when the rule skips). */
static const char *build(const char *key_type, unsigned p4, unsigned p6,
                         const struct sockaddr_storage *ss, struct hdr *headers,
                         struct pt_rl_inputs *extra)
{
    static char out[PT_RL_MAX_KEY + 1];
    struct pt_rl_keyspec ks;
    assert_int_equal(pt_rl_keyspec_parse(key_type, p4, p6, &ks), 0);
    struct pt_rl_inputs in = extra ? *extra : (struct pt_rl_inputs){0};
    in.addr = (const struct sockaddr *)ss;
    in.header = find_header;
    in.header_ctx = headers;
    if (!in.route.len)
        in.route = PT_STR("users");
    size_t n = pt_rl_key_build(&ks, &in, out);
    assert_true(n <= PT_RL_MAX_KEY);
    out[n] = '\0';
    return out;
}

static void test_key__parse_accepts_parts_and_rejects_junk(void **state)
{
    (void)state;
    struct pt_rl_keyspec ks;
    assert_int_equal(pt_rl_keyspec_parse("ip+route", 32, 64, &ks), 0);
    assert_int_equal(ks.n, 2);
    assert_int_equal(ks.parts[0].kind, PT_RL_PART_IP);
    assert_int_equal(ks.parts[1].kind, PT_RL_PART_ROUTE);
    assert_false(ks.needs_identity);
    assert_int_equal(pt_rl_keyspec_parse("header:X-Tenant+client_id", 32, 64, &ks), 0);
    assert_string_equal(ks.parts[0].header, "x-tenant");
    assert_true(ks.needs_identity);
    const char *bad[] = {"",        "ipv4",       "ip+",        "+ip",
                         "header:", "header:a b", "header:a:b", "global+route+ip+api_key+user_id",
                         "IP"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pt_rl_keyspec_parse(bad[i], 32, 64, &ks), PT_ERR_INVALID);
    assert_int_equal(pt_rl_keyspec_parse("ip", 0, 64, &ks), PT_ERR_INVALID);
    assert_int_equal(pt_rl_keyspec_parse("ip", 32, 129, &ks), PT_ERR_INVALID);
}

static void test_key__each_part(void **state)
{
    (void)state;
    struct sockaddr_storage a = v4("192.0.2.7");
    struct hdr h[] = {{"x-tenant", "acme", 0}, {NULL, NULL, 0}};
    struct pt_rl_inputs id = {.client_id = PT_STR("cli-1"), .user_id = PT_STR("u42")};
    assert_string_equal(build("global", 32, 64, &a, h, NULL), "g");
    assert_string_equal(build("route", 32, 64, &a, h, NULL), "r=users");
    assert_string_equal(build("ip", 32, 64, &a, h, NULL), "i=192.0.2.7/32");
    assert_string_equal(build("header:x-tenant", 32, 64, &a, h, NULL), "h=acme");
    assert_string_equal(build("client_id", 32, 64, &a, h, &id), "c=cli-1");
    assert_string_equal(build("user_id", 32, 64, &a, h, &id), "u=u42");
    assert_string_equal(build("ip+route", 32, 64, &a, h, NULL), "i=192.0.2.7/32|r=users");
    assert_string_equal(build("global+header:x-tenant+user_id", 32, 64, &a, h, &id),
                        "g|h=acme|u=u42");
}

static void test_key__absent_inputs_skip_the_rule(void **state)
{
    (void)state;
    struct sockaddr_storage a = v4("192.0.2.7");
    assert_string_equal(build("header:x-tenant", 32, 64, &a, NULL, NULL), "");
    assert_string_equal(build("ip+client_id", 32, 64, &a, NULL, NULL), "");
    assert_string_equal(build("user_id", 32, 64, &a, NULL, NULL), "");
    assert_string_equal(build("api_key", 32, 64, &a, NULL, NULL), "");
    /* No address at all (never on a real connection): one shared key. */
    assert_string_equal(build("ip", 32, 64, NULL, NULL, NULL), "i=-");
}

static void test_key__ip_prefixes(void **state)
{
    (void)state;
    struct sockaddr_storage a = v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd");
    struct sockaddr_storage b = v6("2001:db8:1:2:ffff::1");
    struct sockaddr_storage c = v6("2001:db8:1:3::1");
    char ka[PT_RL_MAX_KEY + 1];
    strcpy(ka, build("ip", 32, 64, &a, NULL, NULL));
    assert_string_equal(ka, "i=2001:db8:1:2::/64");
    assert_string_equal(build("ip", 32, 64, &b, NULL, NULL), ka); /* same /64 */
    assert_string_equal(build("ip", 32, 64, &c, NULL, NULL), "i=2001:db8:1:3::/64");
    assert_string_equal(build("ip", 32, 48, &c, NULL, NULL), "i=2001:db8:1::/48");
    assert_string_equal(build("ip", 32, 56, &c, NULL, NULL), "i=2001:db8:1::/56");
    struct sockaddr_storage d = v6("2001:db8:1:2f::1");
    assert_string_equal(build("ip", 32, 60, &d, NULL, NULL), "i=2001:db8:1:20::/60");
    assert_string_equal(build("ip", 32, 128, &a, NULL, NULL),
                        "i=2001:db8:1:2:aaaa:bbbb:cccc:dddd/128");
    struct sockaddr_storage e = v4("198.51.100.77");
    assert_string_equal(build("ip", 24, 64, &e, NULL, NULL), "i=198.51.100.0/24");
    assert_string_equal(build("ip", 1, 64, &e, NULL, NULL), "i=128.0.0.0/1");
    /* An IPv4 client on a dual-stack socket counts as IPv4. */
    struct sockaddr_storage m = v6("::ffff:192.0.2.9");
    assert_string_equal(build("ip", 32, 64, &m, NULL, NULL), "i=192.0.2.9/32");
}

static bool printable_key(const char *k)
{
    for (; *k; k++)
        if (*k < 0x21 || *k > 0x7e || *k == '{' || *k == '}')
            return false;
    return true;
}

static void test_key__hostile_values_are_bounded_and_hashed(void **state)
{
    (void)state;
    struct sockaddr_storage a = v4("192.0.2.7");
    char *big = malloc(100000);
    memset(big, 'A', 99999);
    big[99999] = '\0';
    struct hdr h[] = {{"x-t", big, 0},
                      {"x-u", "{tag}\r\n EVAL", 0},
                      {"x-v", "a|b", 0},
                      {"x-z", "\0\xff", 2},
                      {NULL, NULL, 0}};
    const char *k = build("header:x-t", 32, 64, &a, h, NULL);
    assert_int_equal(strlen(k), 2 + 1 + 32);
    assert_int_equal(k[2], '#');
    assert_true(printable_key(k));
    char first[PT_RL_MAX_KEY + 1];
    strcpy(first, k);
    big[50000] = 'B'; /* a difference deep inside gives another key */
    assert_string_not_equal(build("header:x-t", 32, 64, &a, h, NULL), first);
    big[50000] = 'A';
    assert_string_equal(build("header:x-t", 32, 64, &a, h, NULL), first);
    for (const char *name = "uvz"; *name; name++) {
        char kt[32] = "header:x-";
        kt[9] = *name;
        kt[10] = '\0';
        k = build(kt, 32, 64, &a, h, NULL);
        assert_int_equal(k[2], '#');
        assert_true(printable_key(k));
    }
    /* Four hostile parts together still fit. */
    struct pt_rl_inputs id = {
        .client_id = {big, 99999}, .user_id = {big, 70000}, .route = {big, 1000}};
    k = build("header:x-t+client_id+user_id+route", 32, 64, &a, h, &id);
    assert_true(strlen(k) <= PT_RL_MAX_KEY);
    assert_true(printable_key(k));
    /* Exactly PT_RL_MAX_VALUE printable bytes stay as they are; one more is hashed. */
    char edge[PT_RL_MAX_VALUE + 2];
    memset(edge, 'x', sizeof(edge));
    edge[PT_RL_MAX_VALUE] = '\0';
    struct hdr e[] = {{"x-e", edge, 0}, {NULL, NULL, 0}};
    assert_int_equal(strlen(build("header:x-e", 32, 64, &a, e, NULL)), 2 + PT_RL_MAX_VALUE);
    edge[PT_RL_MAX_VALUE] = 'x';
    edge[PT_RL_MAX_VALUE + 1] = '\0';
    assert_int_equal(strlen(build("header:x-e", 32, 64, &a, e, NULL)), 2 + 33);
    free(big);
}

static void test_key__api_key_is_never_stored(void **state)
{
    (void)state;
    struct sockaddr_storage a = v4("192.0.2.7");
    struct pt_rl_inputs in = {.api_key = PT_STR("sk_live_secret")};
    const char *k = build("api_key", 32, 64, &a, NULL, &in);
    assert_null(strstr(k, "secret"));
    char hex[65];
    pt_rl_sha256_hex("sk_live_secret", 14, hex);
    assert_int_equal(strncmp(k, "k=#", 3), 0);
    assert_memory_equal(k + 3, hex, 32);
    /* Known SHA-256 answer. */
    pt_rl_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key__parse_accepts_parts_and_rejects_junk),
        cmocka_unit_test(test_key__each_part),
        cmocka_unit_test(test_key__absent_inputs_skip_the_rule),
        cmocka_unit_test(test_key__ip_prefixes),
        cmocka_unit_test(test_key__hostile_values_are_bounded_and_hashed),
        cmocka_unit_test(test_key__api_key_is_never_stored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
