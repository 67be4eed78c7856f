/*
 * Tests for discovery/dns_msg: the SRV query, answers crafted byte by byte
 * (compression, additional records, NXDOMAIN, truncation, malformed and
 * mutated packets: an error, never a crash), the SRV priority/weight rule,
 * and the refresh clamp and backoff.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "discovery/dns_msg.h"
#include "portico/errors.h"

/* ---- a tiny DNS message writer for the tests ---- */

struct msg {
    uint8_t b[4096];
    size_t n;
};

static void put8(struct msg *m, uint8_t v)
{
    m->b[m->n++] = v;
}

static void put16(struct msg *m, uint16_t v)
{
    put8(m, (uint8_t)(v >> 8));
    put8(m, (uint8_t)v);
}

static void put32(struct msg *m, uint32_t v)
{
    put16(m, (uint16_t)(v >> 16));
    put16(m, (uint16_t)v);
}

/* An uncompressed name; returns its offset (for compression pointers). */
static size_t put_name(struct msg *m, const char *name)
{
    size_t at = m->n;
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t len = dot ? (size_t)(dot - name) : strlen(name);
        put8(m, (uint8_t)len);
        memcpy(m->b + m->n, name, len);
        m->n += len;
        name += len + (dot ? 1 : 0);
    }
    put8(m, 0);
    return at;
}

static void put_ptr(struct msg *m, size_t off)
{
    put16(m, (uint16_t)(0xC000 | off));
}

static void header(struct msg *m, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an,
                   uint16_t ns, uint16_t ar)
{
    m->n = 0;
    put16(m, id);
    put16(m, flags);
    put16(m, qd);
    put16(m, an);
    put16(m, ns);
    put16(m, ar);
}

#define QNAME "_http._tcp.web.test"
#define RESPONSE 0x8180 /* QR, RD, RA, rcode 0 */

/* SRV record with owner = pointer to the question, target compressed
 * against `target_off` when non-zero. */
static void put_srv(struct msg *m, size_t qoff, uint16_t prio, uint16_t weight, uint16_t port,
                    const char *target, uint32_t ttl, size_t *target_off)
{
    put_ptr(m, qoff);
    put16(m, 33);
    put16(m, 1);
    put32(m, ttl);
    size_t rdlen_at = m->n;
    put16(m, 0);
    put16(m, prio);
    put16(m, weight);
    put16(m, port);
    size_t at = put_name(m, target);
    if (target_off)
        *target_off = at;
    size_t rdlen = m->n - rdlen_at - 2;
    m->b[rdlen_at] = (uint8_t)(rdlen >> 8);
    m->b[rdlen_at + 1] = (uint8_t)rdlen;
}

static void put_a(struct msg *m, size_t name_off, const uint8_t ip[4], uint32_t ttl)
{
    put_ptr(m, name_off);
    put16(m, 1);
    put16(m, 1);
    put32(m, ttl);
    put16(m, 4);
    memcpy(m->b + m->n, ip, 4);
    m->n += 4;
}

static void put_aaaa(struct msg *m, size_t name_off, uint32_t ttl)
{
    static const uint8_t v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    put_ptr(m, name_off);
    put16(m, 28);
    put16(m, 1);
    put32(m, ttl);
    put16(m, 16);
    memcpy(m->b + m->n, v6, 16);
    m->n += 16;
}

static size_t question(struct msg *m)
{
    size_t q = put_name(m, QNAME);
    put16(m, 33);
    put16(m, 1);
    return q;
}

/* Three SRV records (priorities 10, 10, 20), additional A for a and b,
 * AAAA for a. */
static void good_answer(struct msg *m, uint16_t id)
{
    header(m, id, RESPONSE, 1, 3, 0, 3);
    size_t q = question(m);
    size_t a_off, b_off, c_off;
    put_srv(m, q, 10, 1, 8001, "a.web.test", 30, &a_off);
    put_srv(m, q, 10, 3, 8002, "b.web.test", 20, &b_off);
    put_srv(m, q, 20, 0, 8003, "C.Web.Test.", 60, &c_off);
    static const uint8_t ip1[4] = {127, 0, 0, 1}, ip2[4] = {127, 0, 0, 2};
    put_a(m, a_off, ip1, 5);
    put_a(m, b_off, ip2, 7);
    put_aaaa(m, a_off, 9);
}

static struct pt_dns_answer *new_answer(void)
{
    return calloc(1, sizeof(struct pt_dns_answer));
}

static void test_query__encodes_header_and_question(void **state)
{
    (void)state;
    uint8_t buf[512];
    int n = pt_dns_srv_query(QNAME, 0xBEEF, buf, sizeof(buf));
    assert_int_equal(n, 12 + 21 + 4);
    assert_int_equal(buf[0], 0xBE);
    assert_int_equal(buf[1], 0xEF);
    assert_int_equal(buf[2] & 0x80, 0); /* a query */
    assert_int_equal(buf[2] & 0x01, 1); /* RD */
    assert_int_equal(buf[5], 1);        /* one question */
    assert_memory_equal(buf + 12, "\x05_http\x04_tcp\x03web\x04test\x00", 21);
    assert_int_equal(buf[12 + 21 + 1], 33); /* SRV */
    assert_int_equal(buf[12 + 21 + 3], 1);  /* IN */
}

static void test_query__rejects_bad_names_and_small_buffers(void **state)
{
    (void)state;
    uint8_t buf[512];
    char longlabel[80];
    memset(longlabel, 'a', 70);
    strcpy(longlabel + 70, ".test");
    assert_true(pt_dns_srv_query(longlabel, 1, buf, sizeof(buf)) < 0);
    assert_true(pt_dns_srv_query(QNAME, 1, buf, 20) < 0);
}

static void test_parse__srv_records_and_additional_addresses(void **state)
{
    (void)state;
    struct msg m;
    good_answer(&m, 7);
    struct pt_dns_answer *a = new_answer();
    char err[128];
    assert_int_equal(pt_dns_answer_parse(m.b, m.n, 7, a, err, sizeof(err)), 0);
    assert_int_equal(a->rcode, 0);
    assert_false(a->truncated);
    assert_int_equal(a->nsrv, 3);
    assert_int_equal(a->srv[0].priority, 10);
    assert_int_equal(a->srv[1].weight, 3);
    assert_int_equal(a->srv[1].port, 8002);
    assert_int_equal(a->srv[0].ttl, 30);
    assert_string_equal(a->srv[0].target, "a.web.test");
    assert_string_equal(a->srv[2].target, "c.web.test"); /* lower case, no trailing dot */
    assert_int_equal(a->naddr, 3);
    assert_string_equal(a->addr[0].name, "a.web.test");
    assert_string_equal(a->addr[0].ip, "127.0.0.1");
    assert_false(a->addr[0].v6);
    assert_string_equal(a->addr[1].ip, "127.0.0.2");
    assert_true(a->addr[2].v6);
    assert_string_equal(a->addr[2].ip, "::1");
    free(a);
}

static void test_parse__id_mismatch_and_queries_are_errors(void **state)
{
    (void)state;
    struct msg m;
    good_answer(&m, 7);
    struct pt_dns_answer *a = new_answer();
    char err[128];
    assert_int_equal(pt_dns_answer_parse(m.b, m.n, 8, a, err, sizeof(err)), PT_ERR_INVALID);
    assert_non_null(strstr(err, "id mismatch"));
    m.b[2] &= 0x7F; /* QR off: a query */
    assert_int_equal(pt_dns_answer_parse(m.b, m.n, 7, a, err, sizeof(err)), PT_ERR_INVALID);
    free(a);
}

static void test_parse__nxdomain_reports_rcode(void **state)
{
    (void)state;
    struct msg m;
    header(&m, 9, 0x8183, 1, 0, 0, 0);
    question(&m);
    struct pt_dns_answer *a = new_answer();
    char err[128];
    assert_int_equal(pt_dns_answer_parse(m.b, m.n, 9, a, err, sizeof(err)), 0);
    assert_int_equal(a->rcode, 3);
    assert_int_equal(a->nsrv, 0);
    free(a);
}

static void test_parse__every_truncation_is_an_error(void **state)
{
    (void)state;
    struct msg m;
    good_answer(&m, 7);
    struct pt_dns_answer *a = new_answer();
    char err[128];
    for (size_t len = 0; len < m.n; len++)
        assert_int_equal(pt_dns_answer_parse(m.b, len, 7, a, err, sizeof(err)), PT_ERR_INVALID);
    free(a);
}

static void test_parse__tc_flag_keeps_what_arrived(void **state)
{
    (void)state;
    struct msg m;
    header(&m, 3, RESPONSE | 0x0200, 1, 2, 0, 0);
    size_t q = question(&m);
    put_srv(&m, q, 1, 1, 80, "a.web.test", 30, NULL);
    /* the second record is missing: the server truncated */
    struct pt_dns_answer *a = new_answer();
    char err[128];
    assert_int_equal(pt_dns_answer_parse(m.b, m.n, 3, a, err, sizeof(err)), PT_ERR_INVALID);
    /* counts that match what arrived: parsed, flagged truncated */
    m.b[7] = 1;
    assert_int_equal(pt_dns_answer_parse(m.b, m.n, 3, a, err, sizeof(err)), 0);
    assert_true(a->truncated);
    assert_int_equal(a->nsrv, 1);
    free(a);
}

static void test_parse__short_srv_rdata_is_an_error(void **state)
{
    (void)state;
    struct msg m;
    header(&m, 4, RESPONSE, 1, 1, 0, 0);
    size_t q = question(&m);
    put_ptr(&m, q);
    put16(&m, 33);
    put16(&m, 1);
    put32(&m, 30);
    put16(&m, 6); /* priority, weight, port, no target */
    put16(&m, 1);
    put16(&m, 1);
    put16(&m, 80);
    struct pt_dns_answer *a = new_answer();
    char err[128];
    assert_int_equal(pt_dns_answer_parse(m.b, m.n, 4, a, err, sizeof(err)), PT_ERR_INVALID);
    free(a);
}

static void test_parse__compression_loop_and_wild_pointer_are_errors(void **state)
{
    (void)state;
    struct msg m;
    header(&m, 5, RESPONSE, 1, 1, 0, 0);
    size_t q = question(&m);
    put_ptr(&m, q);
    put16(&m, 33);
    put16(&m, 1);
    put32(&m, 30);
    put16(&m, 8);
    put16(&m, 1);
    put16(&m, 1);
    put16(&m, 80);
    size_t self = m.n;
    put_ptr(&m, self); /* the target points at itself */
    struct pt_dns_answer *a = new_answer();
    char err[128];
    assert_int_equal(pt_dns_answer_parse(m.b, m.n, 5, a, err, sizeof(err)), PT_ERR_INVALID);
    m.b[self] = 0xC0 | 0x3F;
    m.b[self + 1] = 0xFF; /* beyond the message */
    assert_int_equal(pt_dns_answer_parse(m.b, m.n, 5, a, err, sizeof(err)), PT_ERR_INVALID);
    free(a);
}

static void test_parse__root_target_means_not_offered(void **state)
{
    (void)state;
    struct msg m;
    header(&m, 6, RESPONSE, 1, 1, 0, 0);
    size_t q = question(&m);
    put_srv(&m, q, 0, 0, 0, "", 30, NULL);
    struct pt_dns_answer *a = new_answer();
    char err[128];
    assert_int_equal(pt_dns_answer_parse(m.b, m.n, 6, a, err, sizeof(err)), 0);
    assert_int_equal(a->nsrv, 0);
    free(a);
}

static void test_parse__mutated_packets_never_crash(void **state)
{
    (void)state;
    struct msg m;
    good_answer(&m, 7);
    struct pt_dns_answer *a = new_answer();
    char err[128];
    uint32_t seed = 12345;
    int ok = 0, bad = 0;
    for (int i = 0; i < 20000; i++) {
        struct msg x = m;
        int flips = 1 + (int)(seed % 4);
        for (int k = 0; k < flips; k++) {
            seed = seed * 1103515245u + 12345u;
            x.b[(seed >> 8) % x.n] = (uint8_t)(seed >> 16);
        }
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 4) % 5 == 0 ? (seed >> 8) % x.n : x.n;
        if (pt_dns_answer_parse(x.b, len, 7, a, err, sizeof(err)) == 0) {
            ok++;
            assert_true(a->nsrv <= PT_DNS_MAX_RECORDS && a->naddr <= PT_DNS_MAX_RECORDS);
            for (size_t r = 0; r < a->nsrv; r++)
                assert_true(strlen(a->srv[r].target) < PT_DNS_NAME_MAX);
        } else {
            bad++;
        }
    }
    assert_true(ok > 0 && bad > 0);
    free(a);
}

/* ---- the SRV rule ---- */

struct fake_addrs {
    const char *name[8];
    const char *ip[8];
    size_t n;
};

static size_t fake_lookup(void *arg, const char *target, const char **ips, size_t cap)
{
    struct fake_addrs *f = arg;
    size_t n = 0;
    for (size_t i = 0; i < f->n && n < cap; i++)
        if (strcmp(f->name[i], target) == 0)
            ips[n++] = f->ip[i];
    return n;
}

static struct pt_dns_srv srv(uint16_t prio, uint16_t weight, uint16_t port, const char *target)
{
    struct pt_dns_srv s;
    memset(&s, 0, sizeof(s));
    s.priority = prio;
    s.weight = weight;
    s.port = port;
    strcpy(s.target, target);
    return s;
}

static void test_srv_rule__lowest_priority_group_only(void **state)
{
    (void)state;
    struct pt_dns_srv v[] = {srv(20, 1, 3, "c"), srv(10, 0, 1, "a"), srv(10, 60000, 2, "b")};
    struct fake_addrs f = {
        {"a", "b", "b", "c"}, {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9"}, 4};
    struct pt_disc_instance out[8];
    size_t n = pt_dns_srv_instances(v, 3, fake_lookup, &f, out, 8);
    assert_int_equal(n, 3);
    n = pt_disc_instances_normalize(out, n);
    assert_string_equal(out[0].host, "10.0.0.1");
    assert_int_equal(out[0].port, 1);
    assert_int_equal(out[0].weight, 1); /* weight 0 counts as 1 */
    assert_string_equal(out[1].host, "10.0.0.2");
    assert_int_equal(out[1].weight, 10000); /* capped */
    assert_string_equal(out[2].host, "10.0.0.3");
}

static void test_srv_rule__falls_back_when_the_group_has_no_address(void **state)
{
    (void)state;
    struct pt_dns_srv v[] = {srv(10, 5, 1, "gone"), srv(20, 7, 3, "c"), srv(30, 1, 4, "d")};
    struct fake_addrs f = {{"c", "d"}, {"10.0.0.3", "10.0.0.4"}, 2};
    struct pt_disc_instance out[8];
    size_t n = pt_dns_srv_instances(v, 3, fake_lookup, &f, out, 8);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].host, "10.0.0.3");
    assert_int_equal(out[0].weight, 7);
    f.n = 0;
    assert_int_equal(pt_dns_srv_instances(v, 3, fake_lookup, &f, out, 8), 0);
}

/* ---- timing (no clock needed: pure functions of TTL and failures) ---- */

static void test_timing__ttl_is_clamped(void **state)
{
    (void)state;
    assert_int_equal(pt_disc_refresh_ms(0, 1000, 300000), 1000);
    assert_int_equal(pt_disc_refresh_ms(30, 1000, 300000), 30000);
    assert_int_equal(pt_disc_refresh_ms(86400, 1000, 300000), 300000);
    assert_int_equal(pt_disc_refresh_ms(UINT32_MAX, 1000, 300000), 300000);
    assert_int_equal(pt_disc_refresh_ms(1, 500, 500), 500);
}

static void test_timing__backoff_doubles_to_a_cap(void **state)
{
    (void)state;
    assert_int_equal(pt_disc_backoff_ms(1, 300000), 1000);
    assert_int_equal(pt_disc_backoff_ms(2, 300000), 2000);
    assert_int_equal(pt_disc_backoff_ms(3, 300000), 4000);
    assert_int_equal(pt_disc_backoff_ms(6, 300000), 30000);
    assert_int_equal(pt_disc_backoff_ms(1000, 300000), 30000);
    assert_int_equal(pt_disc_backoff_ms(5, 5000), 5000); /* never beyond max_ttl */
}

static void test_instances__normalize_and_equal(void **state)
{
    (void)state;
    struct pt_disc_instance v[4] = {
        {"10.0.0.2", 80, 1}, {"10.0.0.1", 80, 2}, {"10.0.0.2", 80, 5}, {"10.0.0.1", 81, 1}};
    size_t n = pt_disc_instances_normalize(v, 4);
    assert_int_equal(n, 3);
    assert_string_equal(v[0].host, "10.0.0.1");
    assert_int_equal(v[0].port, 80);
    assert_int_equal(v[1].port, 81);
    assert_int_equal(v[2].weight, 5); /* duplicates keep the larger weight */
    struct pt_disc_instance w[3];
    memcpy(w, v, sizeof(w));
    assert_true(pt_disc_instances_equal(v, 3, w, 3));
    w[1].weight = 9;
    assert_false(pt_disc_instances_equal(v, 3, w, 3));
    assert_false(pt_disc_instances_equal(v, 3, w, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query__encodes_header_and_question),
        cmocka_unit_test(test_query__rejects_bad_names_and_small_buffers),
        cmocka_unit_test(test_parse__srv_records_and_additional_addresses),
        cmocka_unit_test(test_parse__id_mismatch_and_queries_are_errors),
        cmocka_unit_test(test_parse__nxdomain_reports_rcode),
        cmocka_unit_test(test_parse__every_truncation_is_an_error),
        cmocka_unit_test(test_parse__tc_flag_keeps_what_arrived),
        cmocka_unit_test(test_parse__short_srv_rdata_is_an_error),
        cmocka_unit_test(test_parse__compression_loop_and_wild_pointer_are_errors),
        cmocka_unit_test(test_parse__root_target_means_not_offered),
        cmocka_unit_test(test_parse__mutated_packets_never_crash),
        cmocka_unit_test(test_srv_rule__lowest_priority_group_only),
        cmocka_unit_test(test_srv_rule__falls_back_when_the_group_has_no_address),
        cmocka_unit_test(test_timing__ttl_is_clamped),
        cmocka_unit_test(test_timing__backoff_doubles_to_a_cap),
        cmocka_unit_test(test_instances__normalize_and_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
