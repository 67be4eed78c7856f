/*
 * Randomized tests of the HTTP rule table:
 *  1. random rule sets and requests, the trie against a reference that
 *     tries every template and ranks them by the documented precedence
 *     (segment by segment: literal > single > "**", a template that ends
 *     before a "**" that matches nothing; exact verb first), and conflicts
 *     against a reference shape comparison;
 *  2. random values (any valid UTF-8, '/', '%', ':', '+', spaces) encoded
 *     into paths and queries the way a client would, then decoded back.
 * The seed is fixed (HTTPRULE_SEED overrides it) and printed on failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_httprule_fixture.h"

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static uint64_t seed(void)
{
    const char *s = getenv("HTTPRULE_SEED");
    uint64_t v = s ? strtoull(s, NULL, 10) : 0x5eed1234abcdULL;
    return v ? v : 1; /* xorshift never leaves 0 */
}

/* ---- 1. trie vs reference ---- */

enum kind { LIT, SINGLE, REST };

struct tseg {
    enum kind kind;
    char lit[4];
};

struct trule {
    struct tseg segs[5];
    int nsegs;
    char verb[4];
    int method; /* index into methods[] */
    char text[96];
};

static const char *const methods[] = {"GET", "POST", "PUT"};

static void gen_rule(struct trule *r, int idx)
{
    memset(r, 0, sizeof(*r));
    r->nsegs = (int)rnd(5);
    int nvar = 0;
    size_t n = 0;
    for (int i = 0; i < r->nsegs; i++) {
        struct tseg *s = &r->segs[i];
        uint32_t k = rnd(10);
        bool last = i == r->nsegs - 1;
        if (last && k >= 8) {
            s->kind = REST;
            n += (size_t)snprintf(r->text + n, sizeof(r->text) - n, rnd(2) ? "/**" : "/{r%d=**}",
                                  nvar++);
        } else if (k >= 5) {
            s->kind = SINGLE;
            n += (size_t)snprintf(r->text + n, sizeof(r->text) - n, rnd(2) ? "/*" : "/{v%d}",
                                  nvar++);
        } else {
            s->kind = LIT;
            s->lit[0] = (char)('a' + rnd(3));
            n += (size_t)snprintf(r->text + n, sizeof(r->text) - n, "/%s", s->lit);
        }
    }
    if (r->nsegs == 0)
        n += (size_t)snprintf(r->text + n, sizeof(r->text) - n, "/");
    if (r->nsegs > 0 && rnd(4) == 0) {
        r->verb[0] = (char)('x' + rnd(2));
        snprintf(r->text + n, sizeof(r->text) - n, ":%s", r->verb);
    }
    r->method = (int)rnd(2);
    (void)idx;
}

static bool same_shape(const struct trule *a, const struct trule *b)
{
    if (a->nsegs != b->nsegs || a->method != b->method || strcmp(a->verb, b->verb) != 0)
        return false;
    for (int i = 0; i < a->nsegs; i++) {
        if (a->segs[i].kind != b->segs[i].kind)
            return false;
        if (a->segs[i].kind == LIT && strcmp(a->segs[i].lit, b->segs[i].lit) != 0)
            return false;
    }
    return true;
}

/* Does r match segs (with this verb)? Fills its precedence key. */
static bool ref_match(const struct trule *r, char segs[][8], int n, const char *verb, int *key,
                      int *klen)
{
    if (strcmp(r->verb, verb) != 0)
        return false;
    bool rest = r->nsegs > 0 && r->segs[r->nsegs - 1].kind == REST;
    int fixed = rest ? r->nsegs - 1 : r->nsegs;
    if (rest ? n < fixed : n != fixed)
        return false;
    *klen = 0;
    for (int i = 0; i < fixed; i++) {
        const struct tseg *s = &r->segs[i];
        if (s->kind == LIT) {
            if (strcmp(s->lit, segs[i]) != 0)
                return false;
            key[(*klen)++] = 4;
        } else {
            if (segs[i][0] == '\0')
                return false;
            key[(*klen)++] = 3;
        }
    }
    key[(*klen)++] = rest ? 1 : 2;
    return true;
}

static int key_cmp(const int *a, int na, const int *b, int nb)
{
    for (int i = 0; i < na && i < nb; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return na == nb ? 0 : (na < nb ? -1 : 1);
}

/* Best rule of method m (or -1), and the methods of every match in allow. */
static int ref_best(const struct trule *rules, int nr, char segs[][8], int n, const char *verb,
                    int m, unsigned *allow)
{
    int best = -1, bkey[8], blen = 0;
    for (int i = 0; i < nr; i++) {
        int key[8], klen;
        if (!ref_match(&rules[i], segs, n, verb, key, &klen))
            continue;
        *allow |= 1u << rules[i].method;
        if (rules[i].method != m)
            continue;
        if (best < 0 || key_cmp(key, klen, bkey, blen) > 0) {
            best = i;
            memcpy(bkey, key, sizeof(key));
            blen = klen;
        }
    }
    return best;
}

static void test_random__trie_matches_reference(void **state)
{
    rng_state = seed();
    static const char *const seg_pool[] = {"a", "b", "c", "d", "", "a:x", "b:y", ":x"};
    static const char *const verb_pool[] = {"", "", ":x", ":y", ":z", ":"};
    int matched = 0, not_allowed = 0, conflicts = 0;
    for (int round = 0; round < 400; round++) {
        struct trule rules[24];
        int nr = 1 + (int)rnd(24);
        struct rule specs[24];
        char names[24][16];
        bool conflict = false;
        for (int i = 0; i < nr; i++) {
            gen_rule(&rules[i], i);
            snprintf(names[i], sizeof(names[i]), "s.S/M%d", i);
            specs[i] = (struct rule){names[i], methods[rules[i].method], rules[i].text, NULL, NULL};
            for (int j = 0; j < i; j++)
                conflict = conflict || same_shape(&rules[i], &rules[j]);
        }
        struct pt_diag d;
        pt_diag_init(&d);
        struct pt_httprule_table *t = table_of(specs, (size_t)nr, NULL, &d);
        if (conflict != (t == NULL))
            fail_msg("seed %llu round %d: conflict expected %d, compile said:\n%s",
                     (unsigned long long)seed(), round, conflict, pt_diag_text(&d));
        pt_diag_fini(&d);
        if (!t) {
            conflicts++;
            continue;
        }
        struct fixture f = {0};
        for (int q = 0; q < 60; q++) {
            char segs[6][8], path[64];
            int n = (int)rnd(5);
            size_t pl = 0;
            path[0] = '\0';
            for (int i = 0; i < n; i++) {
                snprintf(segs[i], sizeof(segs[i]), "%s", seg_pool[rnd(8)]);
                pl += (size_t)snprintf(path + pl, sizeof(path) - pl, "/%s", segs[i]);
            }
            const char *vs = n ? verb_pool[rnd(6)] : "";
            if (n) {
                strncat(segs[n - 1], vs, sizeof(segs[n - 1]) - strlen(segs[n - 1]) - 1);
                pl += (size_t)snprintf(path + pl, sizeof(path) - pl, "%s", vs);
            }
            if (strcmp(path, "") == 0 || strcmp(path, "/") == 0) {
                n = 0; /* "/" has no segments */
                snprintf(path, sizeof(path), "/");
            }
            int m = (int)rnd(3);

            /* the reference: exact verb on the stem first, then the whole path */
            unsigned allow = 0;
            int best = -1;
            char stem[6][8];
            memcpy(stem, segs, sizeof(segs));
            char *colon = n ? strrchr(stem[n - 1], ':') : NULL;
            const char *verb = NULL;
            if (colon && colon != stem[n - 1] && colon[1]) {
                *colon = '\0';
                verb = colon + 1;
                best = ref_best(rules, nr, stem, n, verb, m, &allow);
            }
            if (best < 0)
                best = ref_best(rules, nr, segs, n, "", m, &allow);

            int rc = match(&f, t, methods[m], path);
            if (best >= 0) {
                if (rc != 0 || (int)f.m.method != best)
                    fail_msg("seed %llu round %d: %s %s: got rc %d rule %d, want rule %d (%s)",
                             (unsigned long long)seed(), round, methods[m], path, rc,
                             rc == 0 ? (int)f.m.method : -1, best, rules[best].text);
                matched++;
            } else if (allow) {
                if (rc != PT_ERR_METHOD_NOT_ALLOWED)
                    fail_msg("seed %llu round %d: %s %s: got rc %d, want 405",
                             (unsigned long long)seed(), round, methods[m], path, rc);
                unsigned got = 0;
                for (size_t i = 0; i < f.m.nallow; i++)
                    for (int k = 0; k < 3; k++)
                        if (pt_str_eq(f.m.allow[i], S(methods[k])))
                            got |= 1u << k;
                if (got != allow)
                    fail_msg("seed %llu round %d: %s %s: allow %x, want %x",
                             (unsigned long long)seed(), round, methods[m], path, got, allow);
                not_allowed++;
            } else if (rc != PT_ERR_NO_ROUTE) {
                fail_msg("seed %llu round %d: %s %s: got rc %d, want 404",
                         (unsigned long long)seed(), round, methods[m], path, rc);
            }
        }
        pt_arena_fini(&f.arena);
        pt_httprule_table_free(t);
    }
    /* the generator must exercise every outcome */
    assert_true(matched > 1000);
    assert_true(not_allowed > 100);
    assert_true(conflicts > 10);
}

/* ---- 2. values round-trip ---- */

/* Random valid UTF-8 of 1..max bytes, biased to the bytes that matter. */
static size_t gen_value(char *out, size_t max)
{
    static const char special[] = "/%:+ ?&=#.~-_";
    size_t n = 0, want = 1 + rnd((uint32_t)max);
    while (n < want && n + 4 <= max) {
        switch (rnd(6)) {
        case 0:
            out[n++] = special[rnd(sizeof(special) - 1)];
            break;
        case 1: /* U+00E9 */
            out[n++] = (char)0xc3;
            out[n++] = (char)0xa9;
            break;
        case 2: /* U+20AC */
            out[n++] = (char)0xe2;
            out[n++] = (char)0x82;
            out[n++] = (char)0xac;
            break;
        case 3: /* U+1F600 */
            memcpy(out + n, "\xf0\x9f\x98\x80", 4);
            n += 4;
            break;
        default:
            out[n++] = (char)('a' + rnd(26));
            break;
        }
    }
    return n;
}

/* Percent-encode v like a client: everything but unreserved (and '/' when
 * keep_slash); space as '+' when form and the dice say so. */
static size_t encode(const char *v, size_t n, bool keep_slash, bool form, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
        if (unreserved || (keep_slash && c == '/')) {
            out[o++] = (char)c;
        } else if (form && c == ' ' && rnd(2)) {
            out[o++] = '+';
        } else {
            out[o++] = '%';
            out[o++] = rnd(2) ? hex[c >> 4] : (char)"0123456789abcdef"[c >> 4];
            out[o++] = rnd(2) ? hex[c & 15] : (char)"0123456789abcdef"[c & 15];
        }
    }
    return o;
}

static bool has_dot_segment(const char *v, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && v[i] != '/')
            continue;
        size_t len = i - start;
        if ((len == 1 && v[start] == '.') || (len == 2 && v[start] == '.' && v[start + 1] == '.'))
            return true;
        start = i + 1;
    }
    return false;
}

static void test_random__values_round_trip(void **state)
{
    rng_state = seed() ^ 0x9e3779b97f4a7c15ULL;
    const struct rule rules[] = {
        {"s.S/One", "GET", "/one/{a.b}/{c}", NULL, NULL},
        {"s.S/Rest", "GET", "/rest/{p=**}", NULL, NULL},
        {"s.S/Verb", "POST", "/verb/{name}:do", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, 3);
    struct fixture f = {0};
    int checked = 0;
    for (int round = 0; round < 3000; round++) {
        char v1[64], v2[64], e1[200], e2[200], path[512], query[512];
        size_t n1 = gen_value(v1, 40), n2 = gen_value(v2, 40);
        int which = (int)rnd(3);
        size_t l1, l2, q1, q2;
        char qv[200], qe[600];
        size_t nq = gen_value(qv, 60);
        size_t nqe = encode(qv, nq, false, true, qe);
        snprintf(query, sizeof(query), "x.y=%.*s&z=%.*s", (int)nqe, qe, (int)nqe, qe);
        (void)q1;
        (void)q2;
        int rc;
        if (which == 0) {
            l1 = encode(v1, n1, false, false, e1);
            l2 = encode(v2, n2, false, false, e2);
            snprintf(path, sizeof(path), "/one/%.*s/%.*s", (int)l1, e1, (int)l2, e2);
            rc = match3(&f, t, "GET", path, query);
            bool dot = (n1 <= 2 && has_dot_segment(v1, n1) && !memchr(v1, '/', n1)) ||
                       (n2 <= 2 && has_dot_segment(v2, n2) && !memchr(v2, '/', n2));
            if (dot) {
                assert_int_equal(rc, PT_ERR_NO_ROUTE);
                continue;
            }
            if (rc != 0)
                fail_msg("seed %llu: %s?%s: rc %d (%s)", (unsigned long long)seed(), path, query,
                         rc, f.m.reason);
            assert_int_equal(f.m.nparams, 4);
            assert_true(pt_str_eq(f.m.params[0].value, (struct pt_str){v1, n1}));
            assert_true(pt_str_eq(f.m.params[1].value, (struct pt_str){v2, n2}));
        } else if (which == 1) {
            /* '/' travels raw and splits; nothing else may be %2F here */
            l1 = encode(v1, n1, true, false, e1);
            snprintf(path, sizeof(path), "/rest/%.*s", (int)l1, e1);
            rc = match3(&f, t, "GET", path, query);
            if (has_dot_segment(v1, n1)) {
                assert_int_equal(rc, PT_ERR_NO_ROUTE);
                continue;
            }
            if (rc != 0)
                fail_msg("seed %llu: %s: rc %d (%s)", (unsigned long long)seed(), path, rc,
                         f.m.reason);
            assert_int_equal(f.m.nparams, 3);
            if (!pt_str_eq(f.m.params[0].value, (struct pt_str){v1, n1}))
                fail_msg("seed %llu: %s: got \"%.*s\", want \"%.*s\"", (unsigned long long)seed(),
                         path, (int)f.m.params[0].value.len, f.m.params[0].value.ptr, (int)n1, v1);
        } else {
            l1 = encode(v1, n1, false, false, e1);
            snprintf(path, sizeof(path), "/verb/%.*s:do", (int)l1, e1);
            rc = match3(&f, t, "POST", path, query);
            if (n1 <= 2 && has_dot_segment(v1, n1) && !memchr(v1, '/', n1)) {
                assert_int_equal(rc, PT_ERR_NO_ROUTE);
                continue;
            }
            if (rc != 0)
                fail_msg("seed %llu: %s: rc %d (%s)", (unsigned long long)seed(), path, rc,
                         f.m.reason);
            assert_int_equal(f.m.nparams, 3);
            assert_true(pt_str_eq(f.m.params[0].value, (struct pt_str){v1, n1}));
        }
        /* the query parameters come last, decoded */
        const struct pt_httprule_param *qp = &f.m.params[f.m.nparams - 2];
        assert_int_equal(qp[0].field.nseg, 2);
        assert_true(pt_str_eq(qp[0].value, (struct pt_str){qv, nq}));
        assert_true(pt_str_eq(qp[1].value, (struct pt_str){qv, nq}));
        checked++;
    }
    assert_true(checked > 2500);
    pt_arena_fini(&f.arena);
    pt_httprule_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random__trie_matches_reference),
        cmocka_unit_test(test_random__values_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
