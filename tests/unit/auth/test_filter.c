/*
 * The auth step on exchanges without a worker: header hygiene everywhere,
 * API keys (valid, missing, invalid, disabled, expired), anonymous access,
 * scopes and roles, identity and claim headers, credential removal, the
 * 401 challenge, counters, a method that pends (resume and cancel), and
 * the lookups the rate limiter uses.
 */
#include "fixture.h"

#define KEY_READ "key-read-0123456789"
#define KEY_RW "key-rw-0123456789"
#define KEY_OFF "key-off-0123456789"
#define KEY_OLD "key-old-0123456789"

struct env {
    struct test_key keys[4];
    struct test_config tc;
    char *read_scopes[1];
    char *rw_scopes[2];
    struct pt_auth_plan *plan;
};

static struct env E;

static int setup(void **state)
{
    (void)state;
    memset(&E, 0, sizeof(E));
    test_key_init(&E.keys[0], "k-read", "reader", KEY_READ);
    E.read_scopes[0] = "read";
    E.keys[0].k.scopes = E.read_scopes;
    E.keys[0].k.n_scopes = 1;
    E.keys[0].k.rate_limit_tier = "free";
    test_key_init(&E.keys[1], "k-rw", "writer", KEY_RW);
    E.rw_scopes[0] = "read";
    E.rw_scopes[1] = "write";
    E.keys[1].k.scopes = E.rw_scopes;
    E.keys[1].k.n_scopes = 2;
    E.keys[1].k.client_name = "Writer Inc";
    test_key_init(&E.keys[2], "k-off", "reader", KEY_OFF);
    test_key_disable(&E.keys[2]);
    test_key_init(&E.keys[3], "k-old", "reader", KEY_OLD);
    test_key_expire(&E.keys[3], -10);
    test_config_init(&E.tc, E.keys, 4);
    struct pt_auth_error err = {0};
    E.plan = pt_auth_plan_compile(&E.tc.c, &err);
    assert_non_null(E.plan);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pt_auth_plan_free(E.plan);
    return 0;
}

static struct pt_auth_route *route(RouteAuth *ra)
{
    struct pt_auth_error err = {0};
    struct pt_auth_route *r = pt_auth_route_new(E.plan, ra, "test-route", &err);
    if (!r)
        fail_msg("route: %s: %s", err.field, err.text);
    return r;
}

static enum pt_filter_status request(struct pt_exchange *x, struct pt_auth_route *r)
{
    return pt_auth_filter_type.on_request_head(x, r);
}

static void done(struct pt_exchange *x, struct pt_auth_route *r)
{
    pt_auth_filter_type.on_done(x, r);
    pt_exchange_free(x);
}

static char *api_key_only[] = {"api_key"};

static void init_api_key(RouteAuth *ra)
{
    portico__config__v1__route_auth__init(ra);
    ra->methods = api_key_only;
    ra->n_methods = 1;
}

static uint64_t count(const char *route_name, const char *method, enum pt_auth_decision d)
{
    size_t n;
    struct pt_auth_stats_entry *l = pt_auth_stats_list(&n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].route, route_name) == 0)
            for (size_t k = 0; k < l[i].nrows; k++)
                if (strcmp(l[i].rows[k].method, method) == 0)
                    v = l[i].rows[k].counts[d];
    pt_auth_stats_list_free(l, n);
    return v;
}

/* --- hygiene ---------------------------------------------------------------------- */

static void test_filter__spoofed_identity_headers_removed_on_routes_without_auth(void **state)
{
    (void)state;
    /* Another route's claim header is the gateway's too: removed here. */
    Portico__Config__V1__RouteAuth__ClaimHeadersEntry e =
        PORTICO__CONFIG__V1__ROUTE_AUTH__CLAIM_HEADERS_ENTRY__INIT;
    e.key = "tier";
    e.value = "X-Tier";
    Portico__Config__V1__RouteAuth__ClaimHeadersEntry *ev[] = {&e};
    RouteAuth other;
    init_api_key(&other);
    other.claim_headers = ev;
    other.n_claim_headers = 1;
    Portico__Config__V1__Route rt = PORTICO__CONFIG__V1__ROUTE__INIT;
    rt.auth = &other;
    Portico__Config__V1__Route *routes[] = {&rt};
    E.tc.c.routes = routes;
    E.tc.c.n_routes = 1;
    struct pt_auth_error err = {0};
    struct pt_auth_plan *p = pt_auth_plan_compile(&E.tc.c, &err);
    E.tc.c.routes = NULL;
    E.tc.c.n_routes = 0;
    struct pt_auth_route *open = pt_auth_route_new(p, NULL, "open", &err);
    struct pt_exchange *x = new_exchange();
    add_header(x, "x-authenticated-user", "root");
    add_header(x, "X-Client-ID", "evil");
    add_header(x, "x_authenticated_user", "root"); /* CGI backends read this as the same */
    add_header(x, "x-client_id", "evil");
    add_header(x, "x-tier", "premium");
    add_header(x, "x-api-key", KEY_READ);
    add_header(x, "authorization", "Bearer abc");
    add_header(x, "x-other", "kept");
    assert_int_equal(request(x, open), PT_FILTER_CONTINUE);
    assert_false(has_header(x, "x-authenticated-user", NULL));
    assert_false(has_header(x, "x_authenticated_user", NULL));
    assert_false(has_header(x, "x-client-id", NULL));
    assert_false(has_header(x, "x-client_id", NULL));
    assert_false(has_header(x, "x-tier", NULL));
    /* Not an auth route: credentials pass untouched, no identity. */
    assert_true(has_header(x, "x-api-key", KEY_READ));
    assert_true(has_header(x, "authorization", NULL));
    assert_true(has_header(x, "x-other", "kept"));
    assert_int_equal(pt_exchange_identity_get(x, PT_IDENTITY_SUBJECT).len, 0);
    assert_int_equal(fake.replies, 0);
    done(x, open);
    pt_auth_route_free(open);
    pt_auth_plan_free(p);
}

/* --- API keys ------------------------------------------------------------------------ */

static void test_filter__valid_key_sets_identity_and_headers(void **state)
{
    (void)state;
    Portico__Config__V1__RouteAuth__ClaimHeadersEntry c1 =
        PORTICO__CONFIG__V1__ROUTE_AUTH__CLAIM_HEADERS_ENTRY__INIT;
    c1.key = "scopes";
    c1.value = "X-Scopes";
    Portico__Config__V1__RouteAuth__ClaimHeadersEntry c2 =
        PORTICO__CONFIG__V1__ROUTE_AUTH__CLAIM_HEADERS_ENTRY__INIT;
    c2.key = "client_name";
    c2.value = "X-Client-Name";
    Portico__Config__V1__RouteAuth__ClaimHeadersEntry c3 =
        PORTICO__CONFIG__V1__ROUTE_AUTH__CLAIM_HEADERS_ENTRY__INIT;
    c3.key = "sub"; /* API keys have no such claim: no header */
    c3.value = "X-Sub";
    Portico__Config__V1__RouteAuth__ClaimHeadersEntry *cv[] = {&c1, &c2, &c3};
    RouteAuth ra;
    init_api_key(&ra);
    ra.claim_headers = cv;
    ra.n_claim_headers = 3;
    struct pt_auth_route *r = route(&ra);
    struct pt_exchange *x = new_exchange();
    add_header(x, "x-api-key", KEY_RW);
    add_header(x, "authorization", "Basic Zm9vOmJhcg==");
    add_header(x, "cookie", "session=1");
    add_header(x, "cookie", "other=2");
    add_header(x, "x-authenticated-user", "spoof");
    uint64_t before = count("test-route", "api_key", PT_AUTH_ALLOWED);
    assert_int_equal(request(x, r), PT_FILTER_CONTINUE);
    assert_int_equal(fake.replies, 0);
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_SUBJECT), "writer");
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_CLIENT_ID), "writer");
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_METHOD), "api_key");
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_CREDENTIAL), "k-rw");
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_TIER), "standard");
    assert_true(pt_exchange_identity_has(x, PT_IDENTITY_SCOPES, PT_STR("write")));
    assert_true(has_header(x, "x-authenticated-user", "writer"));
    assert_true(has_header(x, "x-client-id", "writer"));
    assert_true(has_header(x, "x-scopes", "read write"));
    assert_true(has_header(x, "x-client-name", "Writer Inc"));
    assert_false(has_header(x, "x-sub", NULL));
    assert_false(has_header(x, "x-api-key", NULL));
    assert_false(has_header(x, "authorization", NULL));
    assert_false(has_header(x, "cookie", NULL));
    assert_int_equal(count("test-route", "api_key", PT_AUTH_ALLOWED), before + 1);
    /* The rate limiter still sees the key that was removed. */
    assert_pt_str(pt_auth_api_key(x, E.plan), KEY_RW);
    done(x, r);
    pt_auth_route_free(r);
}

static void test_filter__keep_authorization_and_cookie(void **state)
{
    (void)state;
    RouteAuth ra;
    init_api_key(&ra);
    ra.keep_authorization = 1;
    ra.keep_cookie = 1;
    struct pt_auth_route *r = route(&ra);
    struct pt_exchange *x = new_exchange();
    add_header(x, "x-api-key", KEY_READ);
    add_header(x, "authorization", "Basic Zm9vOmJhcg==");
    add_header(x, "cookie", "session=1");
    assert_int_equal(request(x, r), PT_FILTER_CONTINUE);
    assert_true(has_header(x, "authorization", "Basic Zm9vOmJhcg=="));
    assert_true(has_header(x, "cookie", "session=1"));
    assert_false(has_header(x, "x-api-key", NULL)); /* always removed */
    done(x, r);
    pt_auth_route_free(r);
}

static void expect_401(struct pt_auth_route *r, const char *key, const char *reason,
                       const char *challenge)
{
    struct pt_exchange *x = new_exchange();
    if (key)
        add_header(x, "x-api-key", key);
    assert_int_equal(request(x, r), PT_FILTER_REPLIED);
    assert_int_equal(fake.replies, 1);
    assert_int_equal(fake.err, PT_ERR_UNAUTHENTICATED);
    assert_pt_str(x->auth_reason, reason);
    assert_int_equal(pt_exchange_identity_get(x, PT_IDENTITY_SUBJECT).len, 0);
    /* The reply runs the step's response hook: the challenge. */
    assert_int_equal(pt_auth_filter_type.on_response_head(x, r), PT_FILTER_CONTINUE);
    struct pt_str v;
    assert_true(pt_headers_find(&x->resp.headers, PT_STR("www-authenticate"), &v));
    assert_pt_str(v, challenge);
    done(x, r);
}

static void test_filter__missing_and_invalid_keys_are_401(void **state)
{
    (void)state;
    RouteAuth ra;
    init_api_key(&ra);
    struct pt_auth_route *r = route(&ra);
    uint64_t none = count("test-route", "none", PT_AUTH_DENIED);
    uint64_t bad = count("test-route", "api_key", PT_AUTH_DENIED);
    expect_401(r, NULL, "no credential", "ApiKey realm=\"portico\"");
    expect_401(r, "wrong", "api_key: unknown key",
               "ApiKey realm=\"portico\", error=\"invalid_key\"");
    expect_401(r, KEY_OFF, "api_key: key disabled",
               "ApiKey realm=\"portico\", error=\"invalid_key\"");
    expect_401(r, KEY_OLD, "api_key: key expired",
               "ApiKey realm=\"portico\", error=\"invalid_key\"");
    assert_int_equal(count("test-route", "none", PT_AUTH_DENIED), none + 1);
    assert_int_equal(count("test-route", "api_key", PT_AUTH_DENIED), bad + 3);
    pt_auth_route_free(r);
}

static void test_filter__repeated_key_header_is_401(void **state)
{
    (void)state;
    RouteAuth ra;
    init_api_key(&ra);
    struct pt_auth_route *r = route(&ra);
    struct pt_exchange *x = new_exchange();
    add_header(x, "x-api-key", KEY_READ);
    add_header(x, "x-api-key", "other");
    assert_int_equal(request(x, r), PT_FILTER_REPLIED);
    assert_int_equal(fake.err, PT_ERR_UNAUTHENTICATED);
    assert_pt_str(x->auth_reason, "api_key: header repeated");
    done(x, r);
    pt_auth_route_free(r);
}

/* --- anonymous -------------------------------------------------------------------------- */

static void test_filter__anonymous_allowed_but_invalid_key_still_401(void **state)
{
    (void)state;
    RouteAuth ra;
    init_api_key(&ra);
    ra.allow_anonymous = 1;
    struct pt_auth_route *r = route(&ra);
    struct pt_exchange *x = new_exchange();
    add_header(x, "authorization", "Bearer t");
    uint64_t anon = count("test-route", "none", PT_AUTH_ANONYMOUS);
    assert_int_equal(request(x, r), PT_FILTER_CONTINUE);
    assert_int_equal(fake.replies, 0);
    assert_int_equal(pt_exchange_identity_get(x, PT_IDENTITY_SUBJECT).len, 0);
    assert_false(has_header(x, "x-authenticated-user", NULL));
    assert_false(has_header(x, "authorization", NULL)); /* not kept */
    assert_int_equal(count("test-route", "none", PT_AUTH_ANONYMOUS), anon + 1);
    done(x, r);
    expect_401(r, "not-a-key", "api_key: unknown key",
               "ApiKey realm=\"portico\", error=\"invalid_key\"");
    /* A valid key on an anonymous route still identifies the caller. */
    x = new_exchange();
    add_header(x, "x-api-key", KEY_READ);
    assert_int_equal(request(x, r), PT_FILTER_CONTINUE);
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_CLIENT_ID), "reader");
    done(x, r);
    pt_auth_route_free(r);
}

static void test_filter__anonymous_with_a_policy_needs_credentials(void **state)
{
    (void)state;
    char *scopes[] = {"read"};
    RouteAuth ra;
    init_api_key(&ra);
    ra.allow_anonymous = 1;
    ra.required_scopes = scopes;
    ra.n_required_scopes = 1;
    struct pt_auth_route *r = route(&ra);
    expect_401(r, NULL, "no credential; the route's policy needs one", "ApiKey realm=\"portico\"");
    pt_auth_route_free(r);
}

/* --- policy ----------------------------------------------------------------------------- */

static void expect(struct pt_auth_route *r, const char *key, enum pt_filter_status want,
                   const char *reason)
{
    struct pt_exchange *x = new_exchange();
    add_header(x, "x-api-key", key);
    assert_int_equal(request(x, r), want);
    if (want == PT_FILTER_REPLIED) {
        assert_int_equal(fake.err, PT_ERR_FORBIDDEN);
        assert_pt_str(x->auth_reason, reason);
        /* No identity and no headers for a refused caller; no challenge. */
        assert_int_equal(pt_exchange_identity_get(x, PT_IDENTITY_SUBJECT).len, 0);
        assert_int_equal(pt_auth_filter_type.on_response_head(x, r), PT_FILTER_CONTINUE);
        assert_false(pt_headers_find(&x->resp.headers, PT_STR("www-authenticate"), NULL));
    } else {
        assert_int_equal(fake.replies, 0);
    }
    done(x, r);
}

static void test_filter__scopes_all_any_and_roles(void **state)
{
    (void)state;
    char *scopes[] = {"read", "write"};
    RouteAuth ra;
    init_api_key(&ra);
    ra.required_scopes = scopes;
    ra.n_required_scopes = 2;
    struct pt_auth_route *all = route(&ra);
    uint64_t forb = count("test-route", "api_key", PT_AUTH_FORBIDDEN);
    expect(all, KEY_RW, PT_FILTER_CONTINUE, NULL);
    expect(all, KEY_READ, PT_FILTER_REPLIED, "api_key: missing scope \"write\"");
    assert_int_equal(count("test-route", "api_key", PT_AUTH_FORBIDDEN), forb + 1);
    pt_auth_route_free(all);

    char *one[] = {"write", "admin"};
    ra.required_scopes = one;
    ra.scopes_match = "any";
    struct pt_auth_route *any = route(&ra);
    expect(any, KEY_RW, PT_FILTER_CONTINUE, NULL);
    expect(any, KEY_READ, PT_FILTER_REPLIED, "api_key: none of the required scopes");
    pt_auth_route_free(any);

    char *roles[] = {"admin"};
    RouteAuth rb;
    init_api_key(&rb);
    rb.roles = roles;
    rb.n_roles = 1;
    struct pt_auth_route *admin = route(&rb);
    /* API keys carry no roles: default deny. */
    expect(admin, KEY_RW, PT_FILTER_REPLIED, "api_key: none of the required roles");
    pt_auth_route_free(admin);
}

/* --- compile errors ----------------------------------------------------------------------- */

static void test_filter__route_compile_errors(void **state)
{
    (void)state;
    struct pt_auth_error err = {0};
    char *unknown[] = {"api_key", "saml"};
    RouteAuth ra;
    init_api_key(&ra);
    ra.methods = unknown;
    ra.n_methods = 2;
    assert_null(pt_auth_route_new(E.plan, &ra, "r", &err));
    assert_string_equal(err.field, "methods[1]");
    assert_non_null(strstr(err.text, "unknown authentication method \"saml\" (known: api_key, jwt, "
                                     "introspection, mtls)"));

    /* Methods that need configuration the plan does not have. */
    char *jwt[] = {"jwt"};
    ra.methods = jwt;
    ra.n_methods = 1;
    assert_null(pt_auth_route_new(E.plan, &ra, "r", &err));
    assert_non_null(strstr(err.text, "no JWT issuers are configured"));
    char *intro[] = {"introspection:corp"};
    ra.methods = intro;
    assert_null(pt_auth_route_new(E.plan, &ra, "r", &err));
    assert_non_null(strstr(err.text, "no introspection endpoints are configured"));
    char *arg[] = {"api_key:x"};
    ra.methods = arg;
    assert_null(pt_auth_route_new(E.plan, &ra, "r", &err));
    assert_non_null(strstr(err.text, "takes no"));
    ra.n_methods = 2;

    char *twice[] = {"api_key", "api_key"};
    ra.methods = twice;
    assert_null(pt_auth_route_new(E.plan, &ra, "r", &err));
    assert_non_null(strstr(err.text, "listed twice"));

    RouteAuth none = PORTICO__CONFIG__V1__ROUTE_AUTH__INIT;
    assert_null(pt_auth_route_new(E.plan, &none, "r", &err));
    assert_string_equal(err.field, "methods");

    Portico__Config__V1__RouteAuth__ClaimHeadersEntry c =
        PORTICO__CONFIG__V1__ROUTE_AUTH__CLAIM_HEADERS_ENTRY__INIT;
    c.key = "tier";
    c.value = "X_Authenticated_User";
    Portico__Config__V1__RouteAuth__ClaimHeadersEntry *cv[] = {&c};
    RouteAuth rc;
    init_api_key(&rc);
    rc.claim_headers = cv;
    rc.n_claim_headers = 1;
    assert_null(pt_auth_route_new(E.plan, &rc, "r", &err));
    assert_non_null(strstr(err.text, "the user header"));
    c.value = "X-Api-Key";
    assert_null(pt_auth_route_new(E.plan, &rc, "r", &err));
    assert_non_null(strstr(err.text, "API-key header"));
    c.value = "Cookie";
    assert_null(pt_auth_route_new(E.plan, &rc, "r", &err));
}

/* --- a method that pends ------------------------------------------------------------------- */

static struct pt_auth_call *pending_call;
static int cancels;
static enum pt_auth_status first_answer;

static enum pt_auth_status slow_authenticate(struct pt_auth_call *call, struct pt_auth_result *out)
{
    (void)out;
    if (first_answer != PT_AUTH_PENDING)
        return first_answer;
    pending_call = call;
    call->op = &pending_call;
    return PT_AUTH_PENDING;
}

static void slow_cancel(struct pt_auth_call *call)
{
    assert_ptr_equal(call->op, &pending_call);
    cancels++;
    pending_call = NULL;
}

static const struct pt_auth_method slow_method = {
    .name = "slow",
    .scheme = "Bearer",
    .authenticate = slow_authenticate,
    .cancel = slow_cancel,
};

static struct pt_auth_route *slow_then_api_key(void)
{
    static char *two[] = {"api_key"};
    RouteAuth ra;
    init_api_key(&ra);
    ra.methods = two;
    struct pt_auth_route *r = route(&ra);
    /* The test's method first, then api_key (the table has no async
     * method yet: this drives the step's PENDING path). */
    r->methods[1] = r->methods[0];
    r->methods[0] = &slow_method;
    r->nmethods = 2;
    return r;
}

static void test_filter__pending_method_resumes_with_its_answer(void **state)
{
    (void)state;
    struct pt_auth_route *r = slow_then_api_key();
    first_answer = PT_AUTH_PENDING;

    /* OK later: the chain resumes with the identity. */
    struct pt_exchange *x = new_exchange();
    assert_int_equal(request(x, r), PT_FILTER_PAUSE);
    assert_non_null(pending_call);
    struct test_key *k = &E.keys[1];
    (void)k;
    const struct pt_auth_key *key;
    assert_int_equal(pt_auth_keys_lookup(E.plan->keys, PT_STR(KEY_RW), pt_time_real_ns(), &key),
                     PT_AUTH_KEY_OK);
    struct pt_auth_result res = {.id = &key->id.view, .claims = key->id.claims};
    pt_auth_call_done(pending_call, PT_AUTH_OK, &res);
    assert_int_equal(fake.resumes, 1);
    assert_true(has_header(x, "x-authenticated-user", "writer"));
    pt_auth_call_done(pending_call, PT_AUTH_OK, &res); /* a second answer is ignored */
    assert_int_equal(fake.resumes, 1);
    done(x, r);
    assert_int_equal(cancels, 0);

    /* ABSENT later: the next method (api_key) decides. */
    x = new_exchange();
    add_header(x, "x-api-key", KEY_READ);
    assert_int_equal(request(x, r), PT_FILTER_PAUSE);
    pt_auth_call_done(pending_call, PT_AUTH_ABSENT, NULL);
    assert_int_equal(fake.resumes, 1);
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_CLIENT_ID), "reader");
    done(x, r);

    /* FAIL later: 401 with the method's challenge, no resume. */
    x = new_exchange();
    assert_int_equal(request(x, r), PT_FILTER_PAUSE);
    struct pt_auth_result bad = {.reason = "slow: token revoked",
                                 .challenge_params = PT_STR("error=\"invalid_token\"")};
    pt_auth_call_done(pending_call, PT_AUTH_FAIL, &bad);
    assert_int_equal(fake.resumes, 0);
    assert_int_equal(fake.err, PT_ERR_UNAUTHENTICATED);
    assert_pt_str(x->auth_reason, "slow: token revoked");
    pt_auth_filter_type.on_response_head(x, r);
    struct pt_str v;
    assert_true(pt_headers_find(&x->resp.headers, PT_STR("www-authenticate"), &v));
    assert_pt_str(v, "Bearer realm=\"portico\", error=\"invalid_token\"");
    done(x, r);
    pt_auth_route_free(r);
}

static void test_filter__pending_method_cancelled_when_the_exchange_ends(void **state)
{
    (void)state;
    struct pt_auth_route *r = slow_then_api_key();
    first_answer = PT_AUTH_PENDING;
    cancels = 0;
    struct pt_exchange *x = new_exchange();
    assert_int_equal(request(x, r), PT_FILTER_PAUSE);
    done(x, r); /* the client went away */
    assert_int_equal(cancels, 1);
    assert_null(pending_call);
    pt_auth_route_free(r);
}

static void test_filter__no_credential_lists_every_challenge(void **state)
{
    (void)state;
    struct pt_auth_route *r = slow_then_api_key();
    first_answer = PT_AUTH_ABSENT;
    /* Challenges compiled from the route's configuration (api_key). */
    expect_401(r, NULL, "no credential", "ApiKey realm=\"portico\"");
    pt_auth_route_free(r);
}

static void test_filter__roles_from_a_method_identity(void **state)
{
    (void)state;
    /* An identity with roles (as token methods will give): the route's
     * roles policy lets it through, and refuses one without the role. */
    static char *roles[] = {"admin", "ops"};
    RouteAuth ra;
    init_api_key(&ra);
    ra.roles = roles;
    ra.n_roles = 2;
    struct pt_auth_route *r = route(&ra);
    r->methods[0] = &slow_method;
    first_answer = PT_AUTH_PENDING;
    static const struct pt_str has[] = {{"viewer", 6}, {"ops", 3}};
    static const struct pt_str lacks[] = {{"viewer", 6}};
    struct pt_identity_full id = {.method = PT_STR("slow"), .subject = PT_STR("alice")};
    id.list[PT_IDENTITY_ROLES] = has;
    id.n[PT_IDENTITY_ROLES] = 2;
    struct pt_auth_result res = {.id = &id};
    struct pt_exchange *x = new_exchange();
    assert_int_equal(request(x, r), PT_FILTER_PAUSE);
    pt_auth_call_done(pending_call, PT_AUTH_OK, &res);
    assert_int_equal(fake.resumes, 1);
    assert_true(has_header(x, "x-authenticated-user", "alice"));
    assert_true(pt_exchange_identity_has(x, PT_IDENTITY_ROLES, PT_STR("ops")));
    done(x, r);
    id.list[PT_IDENTITY_ROLES] = lacks;
    id.n[PT_IDENTITY_ROLES] = 1;
    x = new_exchange();
    assert_int_equal(request(x, r), PT_FILTER_PAUSE);
    pt_auth_call_done(pending_call, PT_AUTH_OK, &res);
    assert_int_equal(fake.resumes, 0);
    assert_int_equal(fake.err, PT_ERR_FORBIDDEN);
    assert_pt_str(x->auth_reason, "slow: none of the required roles");
    assert_false(has_header(x, "x-authenticated-user", NULL));
    done(x, r);
    pt_auth_route_free(r);
}

/* --- the rate limiter's lookups ------------------------------------------------------------- */

static void test_filter__rate_limiter_identifies_valid_keys_only(void **state)
{
    (void)state;
    struct pt_exchange *x = new_exchange();
    add_header(x, "x-api-key", KEY_READ);
    assert_true(pt_auth_identify_api_key(x, E.plan));
    assert_pt_str(pt_exchange_identity_get(x, PT_IDENTITY_TIER), "free");
    assert_pt_str(pt_auth_api_key(x, E.plan), KEY_READ);
    assert_false(pt_auth_identify_api_key(x, E.plan)); /* already identified */
    pt_exchange_free(x);
    static const char *const refused[] = {KEY_OFF, KEY_OLD, "nope"};
    for (size_t i = 0; i < 3; i++) {
        x = new_exchange();
        add_header(x, "x-api-key", refused[i]);
        assert_false(pt_auth_identify_api_key(x, E.plan));
        assert_int_equal(pt_exchange_identity_get(x, PT_IDENTITY_CLIENT_ID).len, 0);
        pt_exchange_free(x);
    }
    x = new_exchange();
    assert_int_equal(pt_auth_api_key(x, E.plan).len, 0);
    pt_exchange_free(x);
}

static void test_filter__configured_header_names(void **state)
{
    (void)state;
    Portico__Config__V1__Auth a = PORTICO__CONFIG__V1__AUTH__INIT;
    a.api_key_header = "X-Gateway-Key";
    a.user_header = "X-User";
    a.client_id_header = "X-App";
    a.realm = "example";
    E.tc.c.auth = &a;
    struct pt_auth_error err = {0};
    struct pt_auth_plan *p = pt_auth_plan_compile(&E.tc.c, &err);
    E.tc.c.auth = NULL;
    assert_non_null(p);
    RouteAuth ra;
    init_api_key(&ra);
    struct pt_auth_route *r = pt_auth_route_new(p, &ra, "named", &err);
    struct pt_exchange *x = new_exchange();
    add_header(x, "x-api-key", KEY_READ); /* the default name means nothing now */
    add_header(x, "x-user", "spoof");
    assert_int_equal(request(x, r), PT_FILTER_REPLIED);
    pt_auth_filter_type.on_response_head(x, r);
    struct pt_str v;
    assert_true(pt_headers_find(&x->resp.headers, PT_STR("www-authenticate"), &v));
    assert_pt_str(v, "ApiKey realm=\"example\"");
    done(x, r);
    x = new_exchange();
    add_header(x, "x-gateway-key", KEY_READ);
    add_header(x, "x-user", "spoof");
    assert_int_equal(request(x, r), PT_FILTER_CONTINUE);
    assert_true(has_header(x, "x-user", "reader"));
    assert_true(has_header(x, "x-app", "reader"));
    assert_false(has_header(x, "x-gateway-key", NULL));
    done(x, r);
    pt_auth_route_free(r);
    pt_auth_plan_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter__spoofed_identity_headers_removed_on_routes_without_auth),
        cmocka_unit_test(test_filter__valid_key_sets_identity_and_headers),
        cmocka_unit_test(test_filter__keep_authorization_and_cookie),
        cmocka_unit_test(test_filter__missing_and_invalid_keys_are_401),
        cmocka_unit_test(test_filter__repeated_key_header_is_401),
        cmocka_unit_test(test_filter__anonymous_allowed_but_invalid_key_still_401),
        cmocka_unit_test(test_filter__anonymous_with_a_policy_needs_credentials),
        cmocka_unit_test(test_filter__scopes_all_any_and_roles),
        cmocka_unit_test(test_filter__route_compile_errors),
        cmocka_unit_test(test_filter__pending_method_resumes_with_its_answer),
        cmocka_unit_test(test_filter__pending_method_cancelled_when_the_exchange_ends),
        cmocka_unit_test(test_filter__no_credential_lists_every_challenge),
        cmocka_unit_test(test_filter__roles_from_a_method_identity),
        cmocka_unit_test(test_filter__rate_limiter_identifies_valid_keys_only),
        cmocka_unit_test(test_filter__configured_header_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
