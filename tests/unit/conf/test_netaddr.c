/*
 * Syntax of network names in configuration: listener addresses, upstream
 * host names and HTTP tokens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "conf/conf_int.h"
#include "portico/errors.h"

static void test_netaddr__address_forms(void **state)
{
    struct pt_conf_address a;
    const char *why = NULL;
    assert_int_equal(pt_conf_address_parse(":80", &a, &why), 0);
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.port, 80);
    assert_memory_equal(a.ip, "\0\0\0\0", 4);
    assert_int_equal(pt_conf_address_parse("192.168.1.2:65535", &a, &why), 0);
    assert_memory_equal(a.ip, "\xc0\xa8\x01\x02", 4);
    assert_int_equal(a.port, 65535);
    assert_int_equal(pt_conf_address_parse("[fe80::1]:443", &a, &why), 0);
    assert_int_equal(a.family, AF_INET6);
    assert_string_equal(a.host, "fe80::1");
}

static void test_netaddr__address_errors_explain(void **state)
{
    struct pt_conf_address a;
    const char *why = NULL;
    assert_int_equal(pt_conf_address_parse(NULL, &a, &why), PT_ERR_CONFIG);
    assert_string_equal(why, "address is empty");
    assert_int_equal(pt_conf_address_parse("127.0.0.1", &a, &why), PT_ERR_CONFIG);
    assert_string_equal(why, "missing port (write host:port, or :port for every address)");
    assert_int_equal(pt_conf_address_parse("[::1]", &a, &why), PT_ERR_CONFIG);
    assert_string_equal(why, "an IPv6 address is written [addr]:port");
    assert_int_equal(pt_conf_address_parse("[nope]:80", &a, &why), PT_ERR_CONFIG);
    assert_string_equal(why, "not an IPv6 address");
    assert_int_equal(pt_conf_address_parse(":http", &a, &why), PT_ERR_CONFIG);
    assert_string_equal(why, "port must be a number from 1 to 65535");
    char longhost[100];
    memset(longhost, '1', sizeof(longhost));
    strcpy(longhost + 80, ":80");
    assert_int_equal(pt_conf_address_parse(longhost, &a, &why), PT_ERR_CONFIG);
    assert_string_equal(why, "host is too long");
}

static void test_netaddr__host_names_follow_rfc1123(void **state)
{
    assert_true(pt_conf_host_valid("localhost"));
    assert_true(pt_conf_host_valid("a.b-c.example.com"));
    assert_true(pt_conf_host_valid("example.com."));
    assert_true(pt_conf_host_valid("2001:db8::1"));
    assert_true(pt_conf_host_valid("10.0.0.1"));
    assert_true(pt_conf_host_valid("3com.net"));
    assert_false(pt_conf_host_valid(""));
    assert_false(pt_conf_host_valid(NULL));
    assert_false(pt_conf_host_valid("-a.com"));
    assert_false(pt_conf_host_valid("a-.com"));
    assert_false(pt_conf_host_valid("a..com"));
    assert_false(pt_conf_host_valid(".a.com"));
    assert_false(pt_conf_host_valid("a_b.com"));
    assert_false(pt_conf_host_valid("a.com.."));
    assert_false(pt_conf_host_valid("[::1]"));
    char label[80];
    memset(label, 'a', 64);
    label[64] = '\0';
    assert_false(pt_conf_host_valid(label));
    label[63] = '\0';
    assert_true(pt_conf_host_valid(label));
}

static void test_netaddr__tokens(void **state)
{
    assert_true(pt_conf_is_token("GET"));
    assert_true(pt_conf_is_token("x-request-id"));
    assert_true(pt_conf_is_token("M-SEARCH"));
    assert_true(pt_conf_is_token("!#$%&'*+-.^_`|~"));
    assert_false(pt_conf_is_token(""));
    assert_false(pt_conf_is_token(NULL));
    assert_false(pt_conf_is_token("a b"));
    assert_false(pt_conf_is_token(":path"));
    assert_false(pt_conf_is_token("a\"b"));
    assert_false(pt_conf_is_token("caf\xc3\xa9"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_netaddr__address_forms),
        cmocka_unit_test(test_netaddr__address_errors_explain),
        cmocka_unit_test(test_netaddr__host_names_follow_rfc1123),
        cmocka_unit_test(test_netaddr__tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
