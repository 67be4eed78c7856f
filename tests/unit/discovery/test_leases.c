/*
 * Tests for discovery/leases: registration, renewal, expiry, removal,
 * limits and retention, driven by a fake clock (plain numbers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "discovery/leases.h"
#include "portico/errors.h"

static struct pt_disc_instance inst(const char *host, uint16_t port, uint32_t weight)
{
    struct pt_disc_instance i;
    memset(&i, 0, sizeof(i));
    strcpy(i.host, host);
    i.port = port;
    i.weight = weight;
    return i;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void test_leases__expire_after_ttl_unless_renewed(void **state)
{
    (void)state;
    struct pt_leases l;
    pt_leases_init(&l);
    struct pt_disc_instance a = inst("10.0.0.1", 80, 1), b = inst("10.0.0.2", 80, 2);
    assert_non_null(pt_leases_put(&l, "web", &a, 2000, "id-a", 10, 1000));
    assert_non_null(pt_leases_put(&l, "web", &b, 2000, "id-b", 10, 1000));
    struct pt_disc_instance out[4];
    assert_int_equal(pt_leases_instances(&l, "web", 1000, out, 4), 2);
    assert_int_equal(pt_leases_next_expiry(&l), 3000);

    assert_non_null(pt_leases_renew(&l, "id-a", 2500)); /* a now lives to 4500 */
    char **svcs = NULL;
    size_t nsvcs = 0;
    assert_int_equal(pt_leases_expire(&l, 2999, &svcs, &nsvcs), 0);
    assert_int_equal(pt_leases_expire(&l, 3000, &svcs, &nsvcs), 1);
    assert_int_equal(nsvcs, 1);
    assert_string_equal(svcs[0], "web");
    free_names(svcs, nsvcs);
    assert_int_equal(pt_leases_instances(&l, "web", 3000, out, 4), 1);
    assert_string_equal(out[0].host, "10.0.0.1");
    assert_null(pt_leases_renew(&l, "id-b", 3000)); /* expired: gone */
    /* Past its expiry but before a sweep: not renewable, not listed. */
    assert_null(pt_leases_renew(&l, "id-a", 4500));
    assert_int_equal(pt_leases_instances(&l, "web", 4500, out, 4), 0);
    pt_leases_fini(&l);
}

static void test_leases__same_host_and_port_renews_the_lease(void **state)
{
    (void)state;
    struct pt_leases l;
    pt_leases_init(&l);
    struct pt_disc_instance a = inst("10.0.0.1", 80, 1);
    struct pt_lease *x = pt_leases_put(&l, "web", &a, 1000, "first", 10, 0);
    assert_string_equal(x->id, "first");
    a.weight = 7;
    x = pt_leases_put(&l, "web", &a, 5000, "second", 10, 500);
    assert_string_equal(x->id, "first");
    assert_int_equal(x->inst.weight, 7);
    assert_int_equal(x->expires_ms, 5500);
    assert_int_equal(l.n, 1);
    pt_leases_fini(&l);
}

static void test_leases__limit_per_service(void **state)
{
    (void)state;
    struct pt_leases l;
    pt_leases_init(&l);
    struct pt_disc_instance a = inst("10.0.0.1", 80, 1), b = inst("10.0.0.2", 80, 1);
    assert_non_null(pt_leases_put(&l, "web", &a, 1000, "a", 1, 0));
    assert_null(pt_leases_put(&l, "web", &b, 1000, "b", 1, 0));
    assert_non_null(pt_leases_put(&l, "api", &b, 1000, "c", 1, 0)); /* another service */
    /* Once a lapses, there is room again. */
    assert_non_null(pt_leases_put(&l, "web", &b, 1000, "d", 1, 1000));
    pt_leases_fini(&l);
}

static bool keep_web(void *arg, const char *service)
{
    (void)arg;
    return strcmp(service, "web") == 0;
}

static void test_leases__remove_and_retain(void **state)
{
    (void)state;
    struct pt_leases l;
    pt_leases_init(&l);
    struct pt_disc_instance a = inst("10.0.0.1", 80, 1);
    pt_leases_put(&l, "web", &a, 1000, "a", 10, 0);
    pt_leases_put(&l, "api", &a, 1000, "b", 10, 0);
    char *svc = NULL;
    assert_int_equal(pt_leases_remove(&l, "nope", 0, &svc), PT_ERR_NOT_FOUND);
    assert_int_equal(pt_leases_remove(&l, "a", 0, &svc), 0);
    assert_string_equal(svc, "web");
    free(svc);
    assert_int_equal(pt_leases_remove(&l, "a", 0, &svc), PT_ERR_NOT_FOUND);
    assert_int_equal(pt_leases_count(&l, "api", 0), 1);
    pt_leases_put(&l, "web", &a, 1000, "c", 10, 0);
    assert_int_equal(pt_leases_retain(&l, keep_web, NULL), 1); /* api is no longer opted in */
    assert_int_equal(pt_leases_count(&l, "api", 0), 0);
    assert_int_equal(pt_leases_count(&l, "web", 0), 1);
    pt_leases_fini(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leases__expire_after_ttl_unless_renewed),
        cmocka_unit_test(test_leases__same_host_and_port_renews_the_lease),
        cmocka_unit_test(test_leases__limit_per_service),
        cmocka_unit_test(test_leases__remove_and_retain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
