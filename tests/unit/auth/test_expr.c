/*
 * Tests for auth/expr (authorization rule expressions):
 *  - a table of (rule, environment, allow/deny) over every operator,
 *    function and attribute root, short-circuit, MISSING and run-time type
 *    mismatches (never an allow, not even through '!'), IPv4/IPv6/v4-mapped
 *    networks, case-insensitive headers, string escapes;
 *  - compile errors with their column and message;
 *  - every limit at its bound and one past it;
 *  - which attributes a program uses; malformed binder answers;
 *  - randomized rules: evaluation never crashes, is deterministic, a rule
 *    and its negation never both allow, and (without exists()) removing
 *    attributes never turns a deny into an allow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/expr.h"

/* --- a test environment: "name=t:value;..." --------------------------------
 * t is s (string), i (int), b (bool: 1/0), l (list: a,b,c; "l:" is empty).
 * name is the root and the keys joined by '.', header names lower case. */

#define ENT_MAX 40
#define ITEMS_MAX 8

struct ent {
    char name[300];
    enum pt_expr_vtype type;
    char s[64];
    int64_t i;
    bool b;
    char items[ITEMS_MAX][32];
    struct pt_str list[ITEMS_MAX];
    size_t n;
};

struct env {
    struct ent e[ENT_MAX];
    size_t n;
    unsigned calls;
};

static void env_add(struct env *env, const char *name, size_t nlen, const char *v, size_t vlen)
{
    assert_true(env->n < ENT_MAX);
    assert_true(nlen < sizeof(env->e[0].name) && vlen >= 2 && v[1] == ':');
    struct ent *x = &env->e[env->n++];
    memset(x, 0, sizeof(*x));
    memcpy(x->name, name, nlen);
    const char *val = v + 2;
    size_t len = vlen - 2;
    assert_true(len < sizeof(x->s));
    switch (v[0]) {
    case 's':
        x->type = PT_EXPR_VTYPE_STRING;
        memcpy(x->s, val, len);
        break;
    case 'i':
        x->type = PT_EXPR_VTYPE_INT;
        memcpy(x->s, val, len);
        x->i = strtoll(x->s, NULL, 10);
        break;
    case 'b':
        x->type = PT_EXPR_VTYPE_BOOL;
        x->b = val[0] == '1';
        break;
    case 'l':
        x->type = PT_EXPR_VTYPE_LIST;
        for (size_t p = 0; p < len;) {
            size_t q = p;
            while (q < len && val[q] != ',')
                q++;
            assert_true(x->n < ITEMS_MAX && q - p < 32);
            memcpy(x->items[x->n], val + p, q - p);
            x->n++;
            p = q + 1;
        }
        for (size_t k = 0; k < x->n; k++)
            x->list[k] = pt_str_from_cstr(x->items[k]);
        break;
    default:
        fail_msg("bad env type %c", v[0]);
    }
}

static void env_parse(struct env *env, const char *spec)
{
    memset(env, 0, sizeof(*env));
    for (const char *p = spec; p && *p;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        assert_non_null(eq);
        env_add(env, p, (size_t)(eq - p), eq + 1, len - (size_t)(eq - p) - 1);
        p = end ? end + 1 : p + len;
    }
}

static const char *const root_names[] = {"claims", "identity", "path",     "header",
                                         "query",  "request",  "client_ip"};

static bool env_lookup(void *ctx, enum pt_expr_root root, const struct pt_str *keys, size_t nkeys,
                       struct pt_expr_value *out)
{
    struct env *env = ctx;
    env->calls++;
    char name[300];
    size_t n = (size_t)snprintf(name, sizeof(name), "%s", root_names[root]);
    for (size_t k = 0; k < nkeys; k++)
        n += (size_t)snprintf(name + n, sizeof(name) - n, ".%.*s", (int)keys[k].len, keys[k].ptr);
    for (size_t i = 0; i < env->n; i++) {
        const struct ent *x = &env->e[i];
        if (strcmp(x->name, name) != 0)
            continue;
        out->type = x->type;
        if (x->type == PT_EXPR_VTYPE_STRING)
            out->s = pt_str_from_cstr(x->s);
        else if (x->type == PT_EXPR_VTYPE_INT)
            out->i = x->i;
        else if (x->type == PT_EXPR_VTYPE_BOOL)
            out->b = x->b;
        else
            out->list = (struct pt_expr_list){x->list, x->n};
        return true;
    }
    return false;
}

static struct pt_expr *compile_ok(const char *src)
{
    char err[PT_EXPR_ERR_MAX];
    struct pt_expr *e = pt_expr_compile(pt_str_from_cstr(src), err, sizeof(err));
    if (!e)
        fail_msg("compile \"%s\": %s", src, err);
    return e;
}

static bool run(const char *src, const char *spec)
{
    static struct env env;
    env_parse(&env, spec);
    struct pt_expr *e = compile_ok(src);
    bool r = pt_expr_eval(e, env_lookup, &env);
    pt_expr_free(e);
    return r;
}

/* --- the table -------------------------------------------------------------- */

#define FULL                                                                                 \
    "claims.sub=s:alice;claims.roles=l:admin,dev;claims.email_verified=b:1;claims.age=i:42;" \
    "claims.realm.roles=l:ops;claims.https://ex.com/tenant=s:acme;claims.empty=s:;"          \
    "claims.none=l:;claims.str_true=s:true;claims.neg=i:-7;"                                 \
    "identity.subject=s:alice;identity.client_id=s:app-1;identity.tier=s:premium;"           \
    "identity.method=s:jwt;identity.scopes=l:read,write;identity.roles=l:admin;"             \
    "path.user_id=s:alice;path.org=s:acme;header.x-tenant=s:acme;query.page=s:2;"            \
    "request.method=s:GET;request.path=s:/users/alice;request.host=s:api.example.com;"       \
    "client_ip=s:10.1.2.3;header.x-real-ip=s:192.168.1.9"
#define V6 "client_ip=s:2001:db8::5"
#define MAPPED "client_ip=s:::ffff:10.1.2.3"
#define NONE ""

struct row {
    const char *src;
    const char *env;
    bool allow;
};

static const struct row rows[] = {
    /* literals */
    {"true", NONE, true},
    {"false", NONE, false},
    {"!false", NONE, true},
    {"!!true", NONE, true},
    {"1 == 1", NONE, true},
    {"\"a\" == \"a\"", NONE, true},
    {"true == false", NONE, false},
    {"true != false", NONE, true},
    {"-5 < 0", NONE, true},
    {"-9223372036854775808 < 9223372036854775807", NONE, true},
    /* == and != */
    {"claims.sub == path.user_id", FULL, true},
    {"claims.sub == \"bob\"", FULL, false},
    {"claims.sub != \"bob\"", FULL, true},
    {"claims.sub != \"alice\"", FULL, false},
    {"claims.sub != \"bob\"", NONE, false},
    {"!(claims.sub == \"bob\")", NONE, false},
    {"claims.age == 42", FULL, true},
    {"claims.neg == -7", FULL, true},
    {"claims.age == \"42\"", FULL, false},
    {"claims.age != \"42\"", FULL, false},
    {"!(claims.age == \"42\")", FULL, false},
    {"claims.email_verified == true", FULL, true},
    {"claims.roles == [\"admin\", \"dev\"]", FULL, true},
    {"claims.roles == [\"dev\", \"admin\"]", FULL, false},
    {"claims.roles != [\"dev\"]", FULL, true},
    {"claims.empty == \"\"", FULL, true},
    {"claims.sub == claims.sub", NONE, false},
    /* a claim as a condition */
    {"claims.email_verified", FULL, true},
    {"!claims.email_verified", FULL, false},
    {"claims.str_true", FULL, false},
    {"!claims.str_true", FULL, false},
    {"claims.email_verified", NONE, false},
    {"!claims.email_verified", NONE, false},
    /* ordering */
    {"claims.age > 18", FULL, true},
    {"claims.age >= 42", FULL, true},
    {"claims.age < 42", FULL, false},
    {"claims.age <= 42", FULL, true},
    {"claims.age > 100", FULL, false},
    {"claims.age < 100", NONE, false},
    {"!(claims.age < 100)", NONE, false},
    {"request.path < \"/v\"", FULL, true},
    {"\"abc\" < \"abd\"", NONE, true},
    {"\"ab\" < \"abc\"", NONE, true},
    {"\"abc\" <= \"abc\"", NONE, true},
    {"\"abc\" > \"ab\"", NONE, true},
    {"\"b\" >= \"abc\"", NONE, true},
    {"claims.sub > 5", FULL, false},
    {"!(claims.sub > 5)", FULL, false},
    {"claims.roles > \"a\"", FULL, false},
    {"!(claims.roles > \"a\")", FULL, false},
    /* in */
    {"\"admin\" in claims.roles", FULL, true},
    {"\"ops\" in claims.roles", FULL, false},
    {"!(\"ops\" in claims.roles)", FULL, true},
    {"\"admin\" in claims.missing", FULL, false},
    {"!(\"admin\" in claims.missing)", FULL, false},
    {"\"ops\" in claims.realm.roles", FULL, true},
    {"claims.sub in [\"alice\", \"bob\"]", FULL, true},
    {"claims.sub in []", FULL, false},
    {"\"a\" in claims.sub", FULL, false},
    {"!(\"a\" in claims.sub)", FULL, false},
    {"claims.age in [\"42\"]", FULL, false},
    {"\"read\" in identity.scopes", FULL, true},
    /* && || ! with Kleene logic */
    {"claims.sub == \"alice\" && \"admin\" in claims.roles", FULL, true},
    {"claims.sub == \"alice\" && \"x\" in claims.roles", FULL, false},
    {"claims.sub == \"x\" || \"admin\" in claims.roles", FULL, true},
    {"claims.missing == \"x\" || claims.sub == \"alice\"", FULL, true},
    {"claims.sub == \"alice\" || claims.missing == \"x\"", FULL, true},
    {"claims.missing == \"x\" && claims.sub == \"alice\"", FULL, false},
    {"!(claims.missing == \"x\" && claims.sub == \"bob\")", FULL, true},
    {"!(claims.missing == \"x\" || claims.sub == \"bob\")", FULL, false},
    {"!(claims.missing == \"x\" || claims.sub == \"alice\")", FULL, false},
    {"!(claims.missing == \"x\") || !(claims.other == \"y\")", FULL, false},
    {"true && true && false", NONE, false},
    {"false || false || true", NONE, true},
    {"true || false && false", NONE, true},
    {"(true || false) && false", NONE, false},
    {"!true", NONE, false},
    /* '!' binds looser than comparisons, tighter than && */
    {"!claims.sub == \"bob\"", FULL, true},
    {"!\"ops\" in claims.roles", FULL, true},
    {"!\"admin\" in claims.roles && true", FULL, false},
    {"!claims.sub == \"alice\" || true", FULL, true},
    /* starts_with ends_with contains */
    {"starts_with(request.path, \"/users/\")", FULL, true},
    {"starts_with(request.path, \"/admin\")", FULL, false},
    {"starts_with(\"a\", \"abc\")", NONE, false},
    {"starts_with(claims.sub, \"\")", FULL, true},
    {"starts_with(claims.missing, \"a\")", FULL, false},
    {"!starts_with(claims.missing, \"a\")", FULL, false},
    {"!starts_with(claims.age, \"4\")", FULL, false},
    {"ends_with(request.host, \".example.com\")", FULL, true},
    {"ends_with(request.host, \".example.org\")", FULL, false},
    {"ends_with(request.path, path.user_id)", FULL, true},
    {"contains(request.path, \"alice\")", FULL, true},
    {"contains(request.path, \"bob\")", FULL, false},
    {"contains(claims.roles, \"dev\")", FULL, true},
    {"contains(claims.roles, \"de\")", FULL, false},
    {"contains(claims.age, \"4\")", FULL, false},
    {"!contains(claims.age, \"4\")", FULL, false},
    {"contains(\"abc\", \"\")", NONE, true},
    {"contains(\"\", \"a\")", NONE, false},
    {"contains(\"aaaaaaaaab\", \"aaab\")", NONE, true},
    /* exists */
    {"exists(claims.sub)", FULL, true},
    {"exists(claims.missing)", FULL, false},
    {"!exists(claims.missing)", FULL, true},
    {"exists(claims.realm.roles)", FULL, true},
    {"exists(claims.empty)", FULL, true},
    {"exists(header.x-tenant)", FULL, true},
    {"exists(headers[\"X-TENANT\"])", FULL, true},
    {"exists(client_ip)", NONE, false},
    {"exists(claims.sub) == true", FULL, true},
    {"(claims.missing == \"a\") == false", FULL, false},
    {"!((claims.missing == \"a\") == false)", FULL, false},
    /* size */
    {"size(claims.roles) == 2", FULL, true},
    {"size(claims.sub) == 5", FULL, true},
    {"size(claims.none) == 0", FULL, true},
    {"size(claims.missing) == 0", FULL, false},
    {"!(size(claims.missing) == 0)", FULL, false},
    {"size(claims.age) > 0", FULL, false},
    {"size(\"h\u00e9llo\") == 6", NONE, true},
    {"size([\"a\", \"b\", \"c\"]) > size(identity.roles)", FULL, true},
    /* any_in all_in */
    {"any_in(claims.roles, [\"ops\", \"admin\"])", FULL, true},
    {"any_in(claims.roles, [\"ops\"])", FULL, false},
    {"any_in(claims.none, [\"a\"])", FULL, false},
    {"any_in(claims.sub, [\"alice\"])", FULL, false},
    {"!any_in(claims.sub, [\"alice\"])", FULL, false},
    {"all_in([\"read\", \"write\"], identity.scopes)", FULL, true},
    {"all_in([\"read\", \"delete\"], identity.scopes)", FULL, false},
    {"all_in(claims.none, [\"x\"])", FULL, true},
    {"all_in(claims.missing, [\"x\"])", FULL, false},
    {"!all_in(claims.missing, [\"x\"])", FULL, false},
    /* ip_in, IPv4 client */
    {"ip_in(client_ip, \"10.0.0.0/8\")", FULL, true},
    {"ip_in(client_ip, \"192.168.0.0/16\", \"10.1.2.0/24\")", FULL, true},
    {"ip_in(client_ip, \"10.1.2.4/32\")", FULL, false},
    {"ip_in(client_ip, \"10.1.2.3\")", FULL, true},
    {"ip_in(client_ip, \"0.0.0.0/0\")", FULL, true},
    {"ip_in(client_ip, \"10.1.2.0/31\")", FULL, false},
    {"ip_in(client_ip, \"10.1.2.2/31\")", FULL, true},
    {"ip_in(client_ip, \"10.1.0.0/23\")", FULL, false},
    {"ip_in(client_ip, \"10.1.2.0/23\")", FULL, true},
    {"ip_in(client_ip, \"2001:db8::/32\")", FULL, false},
    {"ip_in(client_ip, \"::/0\")", FULL, false},
    {"ip_in(client_ip, \"::ffff:10.0.0.0/104\")", FULL, true},
    {"ip_in(client_ip, \"::ffff:10.1.2.3\")", FULL, true},
    {"!ip_in(client_ip, \"192.168.0.0/16\")", FULL, true},
    {"ip_in(header.x-real-ip, \"192.168.0.0/16\")", FULL, true},
    {"ip_in(client_ip, \"10.0.0.0/8\")", NONE, false},
    {"!ip_in(client_ip, \"10.0.0.0/8\")", NONE, false},
    /* ip_in, IPv6 and v4-mapped clients, and addresses that are not addresses */
    {"ip_in(client_ip, \"2001:db8::/32\")", V6, true},
    {"ip_in(client_ip, \"2001:db9::/32\")", V6, false},
    {"ip_in(client_ip, \"2001:db8::/33\")", V6, true},
    {"ip_in(client_ip, \"2001:db8:8000::/33\")", V6, false},
    {"ip_in(client_ip, \"2001:db8::5/128\")", V6, true},
    {"ip_in(client_ip, \"0.0.0.0/0\")", V6, false},
    {"ip_in(client_ip, \"::/0\")", V6, true},
    {"ip_in(client_ip, \"10.0.0.0/8\")", MAPPED, true},
    {"ip_in(client_ip, \"10.1.2.3/32\")", MAPPED, true},
    {"ip_in(client_ip, \"::/0\")", MAPPED, false},
    {"ip_in(client_ip, \"10.0.0.0/8\")", "client_ip=s:not-an-ip", false},
    {"!ip_in(client_ip, \"10.0.0.0/8\")", "client_ip=s:not-an-ip", false},
    {"!ip_in(client_ip, \"10.0.0.0/8\")", "client_ip=s:10.1.2.3:8080", false},
    {"!ip_in(client_ip, \"10.0.0.0/8\")", "client_ip=s:", false},
    {"!ip_in(client_ip, \"10.0.0.0/8\")", "client_ip=i:167838211", false},
    {"!ip_in(claims.ip, \"10.0.0.0/8\")", "claims.ip=s:10.0.0.1 ", false},
    /* attribute roots */
    {"identity.subject == \"alice\" && identity.client_id == \"app-1\" && identity.tier == "
     "\"premium\" && identity.method == \"jwt\" && \"admin\" in identity.roles",
     FULL, true},
    {"header.x-tenant == path.org", FULL, true},
    {"headers[\"X-Tenant\"] == \"acme\"", FULL, true},
    {"header.X-TENANT == \"acme\"", FULL, true},
    {"header[\"x-tenant\"] == \"acme\"", FULL, true},
    {"query.page == \"2\"", FULL, true},
    {"query[\"page\"] == \"2\"", FULL, true},
    {"query.PAGE == \"2\"", FULL, false},
    {"request.method == \"GET\" && request.host == \"api.example.com\"", FULL, true},
    {"claims[\"https://ex.com/tenant\"] == \"acme\"", FULL, true},
    {"claims.realm[\"roles\"] == [\"ops\"]", FULL, true},
    /* escapes */
    {"\"a\\\"b\" == \"a\\\"b\"", NONE, true},
    {"size(\"a\\\\b\") == 3", NONE, true},
    {"\"\\u00e9\" == \"\u00e9\"", NONE, true},
    {"\"\\ud83d\\ude00\" == \"\U0001F600\"", NONE, true},
    {"\"a\\tb\" != \"a b\"", NONE, true},
    {"size(\"a\\nb\") == 3", NONE, true},
    {"\n\ttrue\r\n", NONE, true},
};

static void test_expr__table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (run(rows[i].src, rows[i].env) != rows[i].allow)
            fail_msg("row %zu: %s: expected %s", i, rows[i].src, rows[i].allow ? "allow" : "deny");
    }
}

/* Every comparison and function that meets MISSING is UNKNOWN: it denies,
 * and so does its negation. */
static void test_expr__missing_denies_even_negated(void **state)
{
    (void)state;
    static const char *const conds[] = {
        "claims.x == \"a\"",
        "claims.x != \"a\"",
        "claims.x < 3",
        "claims.x >= \"a\"",
        "\"a\" in claims.x",
        "claims.x in [\"a\"]",
        "starts_with(claims.x, \"a\")",
        "ends_with(\"a\", claims.x)",
        "contains(claims.x, \"a\")",
        "contains(\"abc\", claims.x)",
        "size(claims.x) == 0",
        "size(claims.x) != 0",
        "ip_in(claims.x, \"0.0.0.0/0\", \"::/0\")",
        "any_in(claims.x, [\"a\"])",
        "all_in(claims.x, [\"a\"])",
        "all_in([\"a\"], claims.x)",
        "claims.x",
        "path.id == \"1\"",
        "header.a != \"1\"",
        "query.a != \"1\"",
        "request.host != \"h\"",
        "identity.subject != \"s\"",
        "!(identity.tier == \"free\")",
        "client_ip != \"1.2.3.4\"",
    };
    for (size_t i = 0; i < sizeof(conds) / sizeof(conds[0]); i++) {
        char neg[256], dneg[256];
        snprintf(neg, sizeof(neg), "!(%s)", conds[i]);
        snprintf(dneg, sizeof(dneg), "!!(%s)", conds[i]);
        assert_false(run(conds[i], NONE));
        if (run(neg, NONE))
            fail_msg("%s allowed with every attribute missing", neg);
        assert_false(run(dneg, NONE));
    }
}

struct order {
    char seen[8][64];
    unsigned n;
};

static bool record_lookup(void *ctx, enum pt_expr_root root, const struct pt_str *keys,
                          size_t nkeys, struct pt_expr_value *out)
{
    struct order *o = ctx;
    if (o->n < 8)
        snprintf(o->seen[o->n], sizeof(o->seen[0]), "%.*s", (int)keys[0].len, keys[0].ptr);
    o->n++;
    if (keys[0].len == 1 && keys[0].ptr[0] == 'a') {
        out->type = PT_EXPR_VTYPE_STRING;
        out->s = PT_STR("x");
        return true;
    }
    return false;
}

/* The examples of docs/authorization-rules.md compile and decide as described. */
static void test_expr__doc_examples(void **state)
{
    (void)state;
    assert_true(run("claims.sub == path.user_id || \"admin\" in claims.roles", FULL));
    assert_true(run("all_in([\"orders:read\", \"orders:write\"], identity.scopes)\n"
                    "  && identity.tier != \"free\"\n"
                    "  && ip_in(client_ip, \"10.0.0.0/8\", \"2001:db8:1::/48\")",
                    "identity.scopes=l:orders:write,orders:read;identity.tier=s:gold;"
                    "client_ip=s:2001:db8:1:2::9"));
    assert_false(run("all_in([\"orders:read\", \"orders:write\"], identity.scopes)\n"
                     "  && identity.tier != \"free\"\n"
                     "  && ip_in(client_ip, \"10.0.0.0/8\", \"2001:db8:1::/48\")",
                     "identity.scopes=l:orders:write,orders:read;client_ip=s:10.0.0.1"));
    assert_true(run("headers[\"X-Tenant\"] == claims[\"https://example.com/tenant\"]",
                    "header.x-tenant=s:acme;claims.https://example.com/tenant=s:acme"));
    assert_true(run("claims.email_verified && ends_with(claims.email, \"@example.com\") && "
                    "!exists(claims.act)",
                    "claims.email_verified=b:1;claims.email=s:a@example.com"));
    assert_false(run("claims.email_verified && ends_with(claims.email, \"@example.com\") && "
                     "!exists(claims.act)",
                     "claims.email_verified=b:1;claims.email=s:a@example.com;claims.act=s:x"));
    assert_true(run("identity.method != \"api_key\" || request.method in [\"GET\", \"HEAD\"]",
                    "identity.method=s:api_key;request.method=s:HEAD"));
    assert_false(run("identity.method != \"api_key\" || request.method in [\"GET\", \"HEAD\"]",
                     "identity.method=s:api_key;request.method=s:POST"));
}

static void test_expr__short_circuit(void **state)
{
    (void)state;
    static const struct {
        const char *src;
        bool allow;
        const char *looked; /* the keys looked up, in order */
    } cases[] = {
        {"true || claims.b == \"y\"", true, ""},
        {"false && claims.b == \"y\"", false, ""},
        {"claims.a == \"x\" || claims.b == \"y\"", true, "a"},
        {"claims.a == \"z\" || claims.b == \"y\"", false, "ab"},
        {"claims.a == \"z\" && claims.b == \"y\"", false, "a"},
        {"claims.b == \"y\" && claims.a == \"z\"", false, "ba"},
        {"claims.b == \"y\" || claims.a == \"x\"", true, "ba"},
        {"claims.b == \"y\" && claims.a == \"x\" && claims.c == \"q\"", false, "bac"},
        {"!(claims.a == \"x\") && claims.b == \"y\"", false, "a"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct order o = {0};
        struct pt_expr *e = compile_ok(cases[i].src);
        assert_int_equal(pt_expr_eval(e, record_lookup, &o), cases[i].allow);
        char got[16] = "";
        for (unsigned k = 0; k < o.n && k < 8; k++)
            strncat(got, o.seen[k], 1);
        if (strcmp(got, cases[i].looked) != 0)
            fail_msg("%s: looked up \"%s\", expected \"%s\"", cases[i].src, got, cases[i].looked);
        pt_expr_free(e);
    }
}

/* --- compile errors ---------------------------------------------------------- */

static void expect_error(const char *src, size_t len, unsigned col, const char *msg)
{
    char err[PT_EXPR_ERR_MAX];
    struct pt_expr *e = pt_expr_compile((struct pt_str){src, len}, err, sizeof(err));
    if (e) {
        pt_expr_free(e);
        fail_msg("\"%.*s\" compiled; expected \"%s\"", (int)(len > 80 ? 80 : len), src, msg);
    }
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "col %u: ", col);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, msg))
        fail_msg("\"%.*s\": got \"%s\", expected \"%s%s\"", (int)(len > 80 ? 80 : len), src, err,
                 prefix, msg);
}

static void test_expr__compile_errors(void **state)
{
    (void)state;
    static const struct {
        const char *src;
        unsigned col;
        const char *msg;
    } cases[] = {
        {"", 1, "empty rule"},
        {"   ", 4, "empty rule"},
        {"1 && \"x\"", 1, "'&&' needs boolean operands, got int"},
        {"true && \"x\"", 9, "'&&' needs boolean operands, got string"},
        {"true || [\"x\"]", 9, "'||' needs boolean operands, got list"},
        {"identity.subject", 1, "a rule must be a boolean expression, got string"},
        {"size(claims.roles)", 1, "a rule must be a boolean expression, got int"},
        {"foo.bar == 1", 1, "unknown attribute 'foo'"},
        {"bogus(1)", 1, "unknown function 'bogus'"},
        {"matches(claims.a, \".*\")", 1, "unknown function 'matches'"},
        {"starts_with(claims.sub)", 1, "starts_with() takes 2 arguments, got 1"},
        {"starts_with(claims.sub, \"a\", \"b\")", 30, "starts_with() takes 2 arguments"},
        {"size()", 1, "size() takes 1 argument, got 0"},
        {"exists(\"x\")", 8, "exists() takes an attribute"},
        {"exists(claims.a == \"x\")", 8, "exists() takes an attribute"},
        {"size(claims.a == \"x\")", 6, "size() takes a string or a list, got bool"},
        {"ip_in(client_ip)", 1, "at least one network"},
        {"ip_in(client_ip, claims.net)", 18, "must be string literals"},
        {"ip_in(client_ip, \"10.0.0.0/33\")", 18, "prefix length must be 0 to 32"},
        {"ip_in(client_ip, \"2001:db8::/129\")", 18, "prefix length must be 0 to 128"},
        {"ip_in(client_ip, \"10.0.0.0/\")", 18, "prefix length"},
        {"ip_in(client_ip, \"10.0.0.0/-1\")", 18, "prefix length"},
        {"ip_in(client_ip, \"10.0.0.0/0008\")", 18, "prefix length"},
        {"ip_in(client_ip, \"10.0.0.1/8\")", 18, "bits set beyond its prefix length"},
        {"ip_in(client_ip, \"2001:db8::1/32\")", 18, "bits set beyond its prefix length"},
        {"ip_in(client_ip, \"300.0.0.0/8\")", 18, "is not an IP network"},
        {"ip_in(client_ip, \"10.0.0/8\")", 18, "is not an IP network"},
        {"ip_in(client_ip, \"fe80::1%eth0\")", 18, "is not an IP network"},
        {"ip_in(client_ip, \"\")", 18, "not an IP network"},
        {"ip_in(client_ip, \" 10.0.0.0/8\")", 18, "not an IP network"},
        {"ip_in(client_ip, \"10.0.0.0/8\",)", 31, "must be string literals"},
        {"ip_in(1, \"10.0.0.0/8\")", 7, "ip_in() takes an address string first, got int"},
        {"identity.subject == 5", 18, "cannot compare string with int"},
        {"1 == \"1\"", 3, "cannot compare int with string"},
        {"identity.scopes == \"read\"", 17, "cannot compare list with string"},
        {"identity.scopes < \"a\"", 1, "'<' compares integers or strings, got list"},
        {"true < false", 1, "'<' compares integers or strings, got bool"},
        {"\"a\" in \"abc\"", 8, "contains() finds a substring"},
        {"[\"a\"] in claims.roles", 1, "'in' needs a string on the left"},
        {"1 in claims.roles", 1, "'in' needs a string on the left, got int"},
        {"\"a\" in 5", 8, "'in' needs a list on the right, got int"},
        {"claims.a == 1 == 2", 15, "comparisons do not chain"},
        {"claims.a = 1", 10, "'=' is not an operator (use '==')"},
        {"claims.a & true", 10, "'&' is not an operator (use '&&')"},
        {"claims.a | true", 10, "'|' is not an operator (use '||')"},
        {"(claims.a", 10, "expected ')', got the end of the rule"},
        {"claims.a)", 9, "unexpected ')' after the expression"},
        {"true false", 6, "unexpected 'false' after the expression"},
        {"&& true", 1, "expected a value, got '&&'"},
        {"claims.a == ", 13, "expected a value, got the end of the rule"},
        {"claims.", 8, "expected a name after '.'"},
        {"claims . sub == \"alice\"", 9, "expected a name after '.'"},
        {"claims", 1, "'claims' needs a field"},
        {"path == \"x\"", 1, "'path' needs a field"},
        {"identity.foo == \"x\"", 1, "unknown field identity.foo"},
        {"identity.subject.x == \"a\"", 1, "'identity' takes one field"},
        {"request.body == \"x\"", 1, "unknown field request.body"},
        {"client_ip.x == \"a\"", 10, "client_ip has no fields"},
        {"headers[\"X Y\"] == \"a\"", 1, "invalid header name"},
        {"claims[\"\"] == \"a\"", 7, "empty attribute name"},
        {"claims[1] == 1", 8, "expected a quoted name after '['"},
        {"claims[\"a\" == 1", 12, "expected ']'"},
        {"\"abc", 1, "unterminated string"},
        {"\"abc\\", 1, "unterminated string"},
        {"\"a\\qb\" == \"x\"", 3, "unknown escape '\\q'"},
        {"\"\\u12\" == \"x\"", 2, "\\u needs four hex digits"},
        {"\"\\udc00\" == \"x\"", 2, "unpaired surrogate \\uDC00"},
        {"\"\\ud800\" == \"x\"", 2, "unpaired surrogate \\uD800"},
        {"\"\\ud800\\u0041\" == \"x\"", 2, "unpaired surrogate"},
        {"\"\\u0000\" == \"x\"", 2, "\\u0000 is not allowed"},
        {"\"a\tb\" == \"x\"", 3, "control character in a string"},
        {"\"\xff\" == \"x\"", 2, "invalid UTF-8"},
        {"\"\xc0\xaf\" == \"x\"", 2, "invalid UTF-8"},
        {"\"\xed\xa0\x80\" == \"x\"", 2, "invalid UTF-8"},
        {"claims.a == 99999999999999999999", 13, "integer out of range"},
        {"claims.a == 9223372036854775808", 13, "integer out of range"},
        {"claims.a == 1.5", 13, "malformed number"},
        {"claims.a == 12abc", 13, "malformed number"},
        {"[1] == claims.a", 2, "list items must be string literals"},
        {"[\"a\",] == claims.a", 6, "list items must be string literals"},
        {"[\"a\" \"b\"] == claims.a", 6, "expected ',' or ']'"},
        {"claims.a == @", 13, "unexpected character '@'"},
        {"claims.a == -", 13, "unexpected character '-'"},
        {"\xc3\xa9", 1, "unexpected byte 0xc3"},
        {"!\"x\"", 2, "'!' needs a boolean, got string"},
        {"any_in(claims.roles, \"a\")", 22, "any_in() takes two lists, got string"},
        {"all_in(1, claims.roles)", 8, "all_in() takes two lists, got int"},
        {"contains(1, \"a\")", 10, "contains() searches a string or a list, got int"},
        {"contains(claims.roles, [\"a\"])", 24, "contains() looks for a string, got list"},
        {"starts_with(identity.roles, \"a\")", 13, "starts_with() takes strings, got list"},
        {"size(true)", 6, "size() takes a string or a list, got bool"},
        {"size(claims.a) == \"1\"", 16, "cannot compare int with string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i].src, strlen(cases[i].src), cases[i].col, cases[i].msg);
    /* A NUL byte in the source is just a bad byte. */
    expect_error("true\0", 5, 5, "unexpected byte 0x00");
    expect_error("\"a\0\" == \"b\"", 11, 3, "control character");
}

static void test_expr__error_buffer(void **state)
{
    (void)state;
    assert_null(pt_expr_compile(PT_STR("1 && 2"), NULL, 0));
    char small[8];
    memset(small, 'x', sizeof(small));
    assert_null(pt_expr_compile(PT_STR("1 && 2"), small, sizeof(small)));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, "col 1: ", 7);
    char one[1] = {'x'};
    assert_null(pt_expr_compile(PT_STR("1 && 2"), one, 1));
    assert_int_equal(one[0], '\0');
    char err[PT_EXPR_ERR_MAX] = "stale";
    struct pt_expr *e = pt_expr_compile(PT_STR("true"), err, sizeof(err));
    assert_non_null(e);
    assert_string_equal(err, "");
    pt_expr_free(e);
    pt_expr_free(NULL);
    assert_null(pt_expr_compile((struct pt_str){NULL, 3}, err, sizeof(err)));
    assert_null(pt_expr_compile(PT_STR_NULL, err, sizeof(err)));
    assert_string_equal(err, "col 1: empty rule");
}

/* --- limits ------------------------------------------------------------------ */

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t len = strlen(head) + strlen(unit) * n + strlen(tail) + 1;
    char *s = malloc(len);
    assert_non_null(s);
    strcpy(s, head);
    for (size_t i = 0; i < n; i++)
        strcat(s, unit);
    strcat(s, tail);
    return s;
}

static void expect_compiles(const char *src)
{
    pt_expr_free(compile_ok(src));
}

static void test_expr__limits(void **state)
{
    (void)state;
    char err[PT_EXPR_ERR_MAX];
    /* Source length. */
    char *s = repeat("true", " ", PT_EXPR_MAX_SOURCE - 4, "");
    expect_compiles(s);
    free(s);
    s = repeat("true", " ", PT_EXPR_MAX_SOURCE - 3, "");
    expect_error(s, strlen(s), PT_EXPR_MAX_SOURCE + 1, "rule longer than 4096 bytes");
    free(s);
    /* Nesting: parentheses, '!', calls, and a mix. */
    char *open = repeat("", "(", PT_EXPR_MAX_DEPTH, "true");
    char *both = repeat(open, ")", PT_EXPR_MAX_DEPTH, "");
    expect_compiles(both);
    free(open);
    free(both);
    open = repeat("", "(", PT_EXPR_MAX_DEPTH + 1, "true");
    both = repeat(open, ")", PT_EXPR_MAX_DEPTH + 1, "");
    expect_error(both, strlen(both), PT_EXPR_MAX_DEPTH + 1, "nesting deeper than 32");
    free(open);
    free(both);
    s = repeat("", "!", PT_EXPR_MAX_DEPTH, "true");
    expect_compiles(s);
    free(s);
    s = repeat("", "!", PT_EXPR_MAX_DEPTH + 1, "true");
    expect_error(s, strlen(s), PT_EXPR_MAX_DEPTH + 1, "nesting deeper than 32");
    free(s);
    s = repeat("", "!(", PT_EXPR_MAX_DEPTH / 2, "exists(claims.a)");
    expect_error(s, strlen(s), PT_EXPR_MAX_DEPTH + 1, "nesting deeper than 32");
    free(s);
    /* Nodes: 255 operands and one || node is 256; one more operand is not. */
    s = repeat("true", " || true", PT_EXPR_MAX_NODES - 2, "");
    expect_compiles(s);
    free(s);
    s = repeat("true", " || true", PT_EXPR_MAX_NODES - 1, "");
    assert_null(pt_expr_compile(pt_str_from_cstr(s), err, sizeof(err)));
    assert_non_null(strstr(err, "more than 256 nodes"));
    free(s);
    s = repeat("true", " || true", PT_EXPR_MAX_NODES + 10, "");
    assert_null(pt_expr_compile(pt_str_from_cstr(s), err, sizeof(err)));
    assert_non_null(strstr(err, "more than 256 nodes"));
    free(s);
    /* List literal length. */
    s = repeat("claims.a in [\"x\"", ", \"x\"", PT_EXPR_MAX_LIST - 1, "]");
    expect_compiles(s);
    free(s);
    s = repeat("claims.a in [\"x\"", ", \"x\"", PT_EXPR_MAX_LIST, "]");
    assert_null(pt_expr_compile(pt_str_from_cstr(s), err, sizeof(err)));
    assert_non_null(strstr(err, "list literal longer than 64 items"));
    free(s);
    /* Attribute path length and segment length. */
    expect_compiles("exists(claims.a.b.c.d.e.f.g.h)");
    expect_error("exists(claims.a.b.c.d.e.f.g.h.i)", 32, 30, "attribute path longer than 8");
    s = repeat("exists(claims.", "k", PT_EXPR_MAX_KEY_LEN, ")");
    expect_compiles(s);
    free(s);
    s = repeat("exists(claims.", "k", PT_EXPR_MAX_KEY_LEN + 1, ")");
    expect_error(s, strlen(s), 14, "attribute name longer than 256 bytes");
    free(s);
    /* Networks per ip_in(). */
    s = repeat("ip_in(client_ip", ", \"10.0.0.0/8\"", PT_EXPR_MAX_CIDRS, ")");
    expect_compiles(s);
    free(s);
    s = repeat("ip_in(client_ip", ", \"10.0.0.0/8\"", PT_EXPR_MAX_CIDRS + 1, ")");
    assert_null(pt_expr_compile(pt_str_from_cstr(s), err, sizeof(err)));
    assert_non_null(strstr(err, "at most 64 networks"));
    free(s);
}

/* A wide, deep, legal rule evaluates (the C stack holds the deepest walk). */
static void test_expr__deepest_rule_evaluates(void **state)
{
    (void)state;
    char *open = repeat("", "!(", PT_EXPR_MAX_DEPTH / 2, "claims.a == \"x\"");
    char *s = repeat(open, ")", PT_EXPR_MAX_DEPTH / 2, "");
    struct env env;
    env_parse(&env, "claims.a=s:x");
    struct pt_expr *e = compile_ok(s);
    assert_true(pt_expr_eval(e, env_lookup, &env));
    assert_int_equal(env.calls, 1);
    pt_expr_free(e);
    free(open);
    free(s);
}

/* --- what a program uses ------------------------------------------------------ */

static void test_expr__uses_and_attrs(void **state)
{
    (void)state;
    struct pt_expr *e =
        compile_ok("claims.sub == path.user_id || \"admin\" in claims.roles || "
                   "headers[\"X-Tenant\"] == header.x-TENANT && exists(claims.sub) && "
                   "claims[\"realm\"].roles == [] && ip_in(client_ip, \"10.0.0.0/8\")");
    assert_true(pt_expr_uses(e, PT_EXPR_ROOT_CLAIMS));
    assert_true(pt_expr_uses(e, PT_EXPR_ROOT_PATH));
    assert_true(pt_expr_uses(e, PT_EXPR_ROOT_HEADER));
    assert_true(pt_expr_uses(e, PT_EXPR_ROOT_CLIENT_IP));
    assert_false(pt_expr_uses(e, PT_EXPR_ROOT_IDENTITY));
    assert_false(pt_expr_uses(e, PT_EXPR_ROOT_QUERY));
    assert_false(pt_expr_uses(e, PT_EXPR_ROOT_REQUEST));
    assert_false(pt_expr_uses(e, (enum pt_expr_root)99));
    size_t n;
    const struct pt_expr_attr *a = pt_expr_attrs(e, &n);
    assert_int_equal(n, 6);
    static const struct {
        enum pt_expr_root root;
        const char *keys[2];
        size_t nkeys;
    } want[] = {
        {PT_EXPR_ROOT_CLAIMS, {"sub"}, 1},
        {PT_EXPR_ROOT_PATH, {"user_id"}, 1},
        {PT_EXPR_ROOT_CLAIMS, {"roles"}, 1},
        {PT_EXPR_ROOT_HEADER, {"x-tenant"}, 1},
        {PT_EXPR_ROOT_CLAIMS, {"realm", "roles"}, 2},
        {PT_EXPR_ROOT_CLIENT_IP, {NULL}, 0},
    };
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].root, want[i].root);
        assert_int_equal(a[i].nkeys, want[i].nkeys);
        for (size_t k = 0; k < a[i].nkeys; k++)
            assert_true(pt_str_eq(a[i].keys[k], pt_str_from_cstr(want[i].keys[k])));
    }
    pt_expr_free(e);
    assert_false(pt_expr_uses(NULL, PT_EXPR_ROOT_CLAIMS));
    assert_null(pt_expr_attrs(NULL, &n));
    assert_int_equal(n, 0);
    assert_false(pt_expr_eval(NULL, env_lookup, NULL));

    /* Escapes decode into the key the binder sees. */
    e = compile_ok("exists(claims[\"a\\u00e9\\\"\\\\\\n\\ud83d\\ude00\"])");
    a = pt_expr_attrs(e, &n);
    assert_int_equal(n, 1);
    assert_true(pt_str_eq(a[0].keys[0], PT_STR("a\xc3\xa9\"\\\n\xf0\x9f\x98\x80")));
    pt_expr_free(e);
}

/* --- the binder's answers are checked ------------------------------------------ */

static int bad_mode;

static bool bad_lookup(void *ctx, enum pt_expr_root root, const struct pt_str *keys, size_t nkeys,
                       struct pt_expr_value *out)
{
    static const struct pt_str items[] = {{"a", 1}, {NULL, 5}};
    switch (bad_mode) {
    case 0:
        out->type = PT_EXPR_VTYPE_STRING;
        out->s = (struct pt_str){NULL, 4};
        return true;
    case 1:
        out->type = PT_EXPR_VTYPE_LIST;
        out->list = (struct pt_expr_list){NULL, 3};
        return true;
    case 2:
        out->type = PT_EXPR_VTYPE_LIST;
        out->list = (struct pt_expr_list){items, 2};
        return true;
    case 3:
        out->type = (enum pt_expr_vtype)77;
        return true;
    default:
        out->type = PT_EXPR_VTYPE_MISSING; /* "found", but nothing */
        return true;
    }
}

static void test_expr__malformed_answers_are_missing(void **state)
{
    (void)state;
    struct pt_expr *rules[] = {
        compile_ok("claims.x == \"a\" || \"a\" in claims.x || contains(claims.x, \"a\") || "
                   "size(claims.x) >= 0 || claims.x"),
        compile_ok("!(claims.x == \"a\") || !(\"a\" in claims.x) || !contains(claims.x, \"a\")"),
        compile_ok("exists(claims.x)"),
    };
    for (bad_mode = 0; bad_mode <= 4; bad_mode++) {
        assert_false(pt_expr_eval(rules[0], bad_lookup, NULL));
        assert_false(pt_expr_eval(rules[1], bad_lookup, NULL));
        assert_false(pt_expr_eval(rules[2], bad_lookup, NULL));
    }
    for (size_t i = 0; i < 3; i++)
        pt_expr_free(rules[i]);
    /* A NULL lookup: everything is MISSING. */
    struct pt_expr *e = compile_ok("!exists(claims.a) && !exists(client_ip)");
    assert_true(pt_expr_eval(e, NULL, NULL));
    pt_expr_free(e);
}

/* --- randomized rules ------------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static const char *const attr_pool[] = {
    "claims.sub",    "claims.roles",    "claims.n",         "claims.flag",    "claims.deep.x",
    "path.id",       "header.x-a",      "query.q",          "request.method", "client_ip",
    "identity.tier", "identity.scopes", "identity.subject",
};
static const char *const str_pool[] = {"\"alice\"", "\"\"",    "\"10.1.2.3\"",
                                       "\"a\"",     "\"GET\"", "\"\\u00e9\""};
static const char *const list_pool[] = {"[]", "[\"a\"]", "[\"alice\", \"a\"]", "[\"read\"]"};
static const char *const cidr_pool[] = {"\"10.0.0.0/8\"", "\"::/0\"", "\"2001:db8::/32\"",
                                        "\"10.1.2.3\"", "\"::ffff:0:0/96\""};

static void cat(char *buf, size_t cap, const char *s)
{
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%s", s);
}

static void gen_bool(char *buf, size_t cap, int depth);

static void gen_value(char *buf, size_t cap, int depth)
{
    char tmp[32];
    switch (depth > 3 ? rnd(4) : rnd(6)) {
    case 0:
        cat(buf, cap, attr_pool[rnd(sizeof(attr_pool) / sizeof(attr_pool[0]))]);
        break;
    case 1:
        cat(buf, cap, str_pool[rnd(sizeof(str_pool) / sizeof(str_pool[0]))]);
        break;
    case 2:
        snprintf(tmp, sizeof(tmp), "%d", (int)rnd(7) - 3);
        cat(buf, cap, tmp);
        break;
    case 3:
        cat(buf, cap, list_pool[rnd(sizeof(list_pool) / sizeof(list_pool[0]))]);
        break;
    case 4:
        cat(buf, cap, "size(");
        gen_value(buf, cap, depth + 1);
        cat(buf, cap, ")");
        break;
    default:
        cat(buf, cap, "(");
        gen_bool(buf, cap, depth + 1);
        cat(buf, cap, ")");
    }
}

static void gen_bool(char *buf, size_t cap, int depth)
{
    static const char *const cmps[] = {" == ", " != ", " < ", " <= ", " > ", " >= ", " in "};
    static const char *const fns2[] = {"starts_with(", "ends_with(", "contains(", "any_in(",
                                       "all_in("};
    switch (depth > 4 ? 5 + rnd(3) : rnd(8)) {
    case 0:
    case 1:
        gen_value(buf, cap, depth + 1);
        cat(buf, cap, cmps[rnd(7)]);
        gen_value(buf, cap, depth + 1);
        break;
    case 2:
        cat(buf, cap, "!");
        gen_bool(buf, cap, depth + 1);
        break;
    case 3:
        cat(buf, cap, "(");
        gen_bool(buf, cap, depth + 1);
        cat(buf, cap, rnd(2) ? " && " : " || ");
        gen_bool(buf, cap, depth + 1);
        cat(buf, cap, ")");
        break;
    case 4:
        cat(buf, cap, fns2[rnd(5)]);
        gen_value(buf, cap, depth + 1);
        cat(buf, cap, ", ");
        gen_value(buf, cap, depth + 1);
        cat(buf, cap, ")");
        break;
    case 5:
        cat(buf, cap, rnd(2) ? "exists(" : "!exists(");
        cat(buf, cap, attr_pool[rnd(sizeof(attr_pool) / sizeof(attr_pool[0]))]);
        cat(buf, cap, ")");
        break;
    case 6:
        cat(buf, cap, "ip_in(");
        gen_value(buf, cap, depth + 1);
        for (uint32_t k = 0, n = 1 + rnd(3); k < n; k++) {
            cat(buf, cap, ", ");
            cat(buf, cap, cidr_pool[rnd(sizeof(cidr_pool) / sizeof(cidr_pool[0]))]);
        }
        cat(buf, cap, ")");
        break;
    default:
        cat(buf, cap, rnd(3) == 0 ? "claims.flag" : (rnd(2) ? "true" : "false"));
    }
}

static void random_env(struct env *env)
{
    static const char *const strs[] = {"s:alice",       "s:", "s:10.1.2.3", "s:GET",
                                       "s:2001:db8::1", "s:a"};
    static const char *const others[] = {"i:0", "i:-2", "i:3",       "b:1",   "b:0",
                                         "l:",  "l:a",  "l:alice,a", "l:read"};
    memset(env, 0, sizeof(*env));
    for (size_t i = 0; i < sizeof(attr_pool) / sizeof(attr_pool[0]); i++) {
        if (rnd(4) == 0)
            continue;
        const char *v = rnd(2) ? strs[rnd(6)] : others[rnd(9)];
        env_add(env, attr_pool[i], strlen(attr_pool[i]), v, strlen(v));
    }
}

static void test_expr__randomized(void **state)
{
    (void)state;
    static char src[8192], neg[8300];
    static struct env full, partial;
    char err[PT_EXPR_ERR_MAX];
    unsigned compiled = 0, allowed = 0, monotone_checked = 0;
    for (unsigned iter = 0; iter < 20000; iter++) {
        src[0] = '\0';
        gen_bool(src, sizeof(src), 0);
        if (rnd(8) == 0 && src[0]) {
            /* Mutate: overwrite, cut or insert a byte. */
            size_t len = strlen(src), at = rnd((uint32_t)len);
            static const char junk[] = "()[]\",.!=<>&|\\u0- x\x01\xff";
            switch (rnd(3)) {
            case 0:
                src[at] = junk[rnd(sizeof(junk) - 1)];
                break;
            case 1:
                src[at] = '\0';
                break;
            default:
                memmove(src + at + 1, src + at, len - at + 1);
                src[at] = junk[rnd(sizeof(junk) - 1)];
            }
        }
        size_t len = strlen(src);
        struct pt_expr *e = pt_expr_compile((struct pt_str){src, len}, err, sizeof(err));
        if (!e) {
            unsigned long col = 0;
            if (sscanf(err, "col %lu: ", &col) != 1 || col < 1 || col > len + 1)
                fail_msg("bad error for \"%s\": \"%s\"", src, err);
            continue;
        }
        compiled++;
        random_env(&full);
        bool a = pt_expr_eval(e, env_lookup, &full);
        assert_int_equal(pt_expr_eval(e, env_lookup, &full), a);
        allowed += a;
        snprintf(neg, sizeof(neg), "!(%s)", src);
        struct pt_expr *ne = pt_expr_compile(pt_str_from_cstr(neg), err, sizeof(err));
        if (ne) {
            if (a && pt_expr_eval(ne, env_lookup, &full))
                fail_msg("both \"%s\" and its negation allow", src);
            pt_expr_free(ne);
        }
        /* Knowing less never allows more (exists() is the one exception). */
        if (!strstr(src, "exists")) {
            partial = full;
            partial.n = 0;
            for (size_t i = 0; i < full.n; i++)
                if (rnd(2))
                    partial.e[partial.n++] = full.e[i];
            for (size_t i = 0; i < partial.n; i++)
                for (size_t k = 0; k < partial.e[i].n; k++)
                    partial.e[i].list[k] = pt_str_from_cstr(partial.e[i].items[k]);
            monotone_checked++;
            if (pt_expr_eval(e, env_lookup, &partial) && !a)
                fail_msg("\"%s\" allows with fewer attributes but denies with all", src);
        }
        pt_expr_free(e);
    }
    /* The generator must keep producing rules that compile and that allow. */
    assert_true(compiled > 4000);
    assert_true(allowed > 500);
    assert_true(monotone_checked > 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expr__table),
        cmocka_unit_test(test_expr__missing_denies_even_negated),
        cmocka_unit_test(test_expr__doc_examples),
        cmocka_unit_test(test_expr__short_circuit),
        cmocka_unit_test(test_expr__compile_errors),
        cmocka_unit_test(test_expr__error_buffer),
        cmocka_unit_test(test_expr__limits),
        cmocka_unit_test(test_expr__deepest_rule_evaluates),
        cmocka_unit_test(test_expr__uses_and_attrs),
        cmocka_unit_test(test_expr__malformed_answers_are_missing),
        cmocka_unit_test(test_expr__randomized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
