/*
 * The API-key table and the "api_key" authentication method (see
 * apikey.h and method.h).
 */
#include "auth/apikey.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/arena.h"
#include "core/digest.h"
#include "core/strutil.h"
#include "core/time.h"

/* --- the table ---------------------------------------------------------------- */

static bool parse_hash(const char *hex, unsigned char out[32])
{
    if (!hex || strlen(hex) != 64)
        return false;
    for (int i = 0; i < 32; i++) {
        int hi = pt_hex_value((unsigned char)hex[2 * i]),
            lo = pt_hex_value((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

static uint32_t slot_of(const unsigned char hash[32], uint32_t mask)
{
    /* SHA-256 output is uniform: its first bytes are a fine table index. */
    uint32_t h = (uint32_t)hash[0] | (uint32_t)hash[1] << 8 | (uint32_t)hash[2] << 16 |
                 (uint32_t)hash[3] << 24;
    return h & mask;
}

static json_t *key_claims(const Portico__Config__V1__ApiKey *k, const char *client_id,
                          const char *tier)
{
    json_t *scopes = json_array();
    for (size_t i = 0; i < k->n_scopes; i++)
        json_array_append_new(scopes, json_string(k->scopes[i]));
    json_t *c = json_object();
    json_object_set_new(c, "client_id", json_string(client_id));
    if (k->client_name && *k->client_name)
        json_object_set_new(c, "client_name", json_string(k->client_name));
    json_object_set_new(c, "scopes", scopes);
    if (k->n_roles) {
        json_t *roles = json_array();
        for (size_t i = 0; i < k->n_roles; i++)
            json_array_append_new(roles, json_string(k->roles[i]));
        json_object_set_new(c, "roles", roles);
    }
    json_object_set_new(c, "tier", json_string(tier));
    return c;
}

struct pt_auth_keys *pt_auth_keys_compile(const Portico__Config__V1__Config *cfg)
{
    struct pt_auth_keys *t = pt_xcalloc(1, sizeof(*t));
    size_t n = cfg->n_api_keys;
    t->v = pt_xcalloc(n ? n : 1, sizeof(*t->v));
    uint32_t size = 16;
    while (size < 2 * n)
        size *= 2; /* load at most 1/2: short probe sequences */
    t->mask = size - 1;
    t->slots = pt_xcalloc(size, sizeof(*t->slots));
    for (size_t i = 0; i < n; i++) {
        const Portico__Config__V1__ApiKey *k = cfg->api_keys[i];
        struct pt_auth_key *e = &t->v[t->n];
        if (!parse_hash(k->key_hash, e->hash) || pt_auth_keys_find_hash(t, e->hash))
            continue;
        e->enabled = !k->enabled || k->enabled->value;
        if (k->expires_at && (k->expires_at->seconds > 0 || k->expires_at->nanos > 0))
            e->expires_ns =
                (uint64_t)k->expires_at->seconds * 1000000000ull + (uint64_t)k->expires_at->nanos;
        const char *name = k->name ? k->name : "";
        const char *client_id = k->client_id && *k->client_id ? k->client_id : name;
        const char *tier =
            k->rate_limit_tier && *k->rate_limit_tier ? k->rate_limit_tier : PT_AUTH_DEFAULT_TIER;
        struct pt_auth_identity_spec spec = {
            .method = pt_auth_method_api_key.name,
            .subject = client_id,
            .client_id = client_id,
            .client_name = k->client_name,
            .tier = tier,
            .credential = name,
            .scopes = k->scopes,
            .nscopes = k->n_scopes,
            .roles = k->roles,
            .nroles = k->n_roles,
            .claims = key_claims(k, client_id, tier),
        };
        pt_auth_identity_build(&e->id, &spec);
        e->usage = pt_auth_usage_ref(name);
        uint32_t s = slot_of(e->hash, t->mask);
        while (t->slots[s])
            s = (s + 1) & t->mask;
        t->slots[s] = (uint32_t)t->n + 1;
        t->n++;
    }
    return t;
}

void pt_auth_keys_free(struct pt_auth_keys *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        pt_auth_identity_fini(&t->v[i].id);
        pt_auth_usage_unref(t->v[i].usage);
    }
    free(t->v);
    free(t->slots);
    free(t);
}

const struct pt_auth_key *pt_auth_keys_find_hash(const struct pt_auth_keys *t,
                                                 const unsigned char hash[32])
{
    const struct pt_auth_key *found = NULL;
    /* Every candidate on the probe sequence is compared in constant time,
     * and the walk does not stop at a match: its length depends only on
     * the presented hash. Bounded: the table is at most half full. */
    for (uint32_t s = slot_of(hash, t->mask), steps = 0; t->slots[s] && steps <= t->mask;
         s = (s + 1) & t->mask, steps++) {
        const struct pt_auth_key *e = &t->v[t->slots[s] - 1];
        if (CRYPTO_memcmp(e->hash, hash, 32) == 0)
            found = e;
    }
    return found;
}

enum pt_auth_key_status pt_auth_keys_lookup(const struct pt_auth_keys *t, struct pt_str presented,
                                            uint64_t now_ns, const struct pt_auth_key **out)
{
    *out = NULL;
    if (presented.len > PT_AUTH_MAX_API_KEY)
        return PT_AUTH_KEY_TOO_LONG;
    unsigned char hash[32];
    pt_sha256(presented.ptr, presented.len, hash);
    const struct pt_auth_key *e = pt_auth_keys_find_hash(t, hash);
    if (!e)
        return PT_AUTH_KEY_UNKNOWN;
    *out = e;
    if (!e->enabled)
        return PT_AUTH_KEY_DISABLED;
    if (e->expires_ns && e->expires_ns <= now_ns)
        return PT_AUTH_KEY_EXPIRED;
    return PT_AUTH_KEY_OK;
}

const char *pt_auth_key_status_text(enum pt_auth_key_status st)
{
    switch (st) {
    case PT_AUTH_KEY_OK:
        return "api_key: valid";
    case PT_AUTH_KEY_UNKNOWN:
        return "api_key: unknown key";
    case PT_AUTH_KEY_DISABLED:
        return "api_key: key disabled";
    case PT_AUTH_KEY_EXPIRED:
        return "api_key: key expired";
    case PT_AUTH_KEY_TOO_LONG:
        return "api_key: key too long";
    }
    return "api_key: invalid";
}

/* --- the method ---------------------------------------------------------------- */

static enum pt_auth_status apikey_authenticate(struct pt_auth_call *call,
                                               struct pt_auth_result *out)
{
    const struct pt_auth_plan *p = call->plan;
    struct pt_str v;
    if (!pt_headers_find(&call->x->req.headers, p->api_key_header, &v) || !v.len)
        return PT_AUTH_ABSENT;
    /* A repeated header is ambiguous (which one would a backend read?). */
    if (pt_headers_index(&call->x->req.headers, p->api_key_header,
                         (uint32_t)pt_headers_index(&call->x->req.headers, p->api_key_header, 0) +
                             1) >= 0) {
        out->reason = "api_key: header repeated";
        out->challenge_params = PT_STR("error=\"invalid_key\"");
        return PT_AUTH_FAIL;
    }
    const struct pt_auth_key *k;
    uint64_t now = pt_time_real_ns();
    enum pt_auth_key_status st = pt_auth_keys_lookup(p->keys, v, now, &k);
    if (st != PT_AUTH_KEY_OK) {
        out->reason = pt_auth_key_status_text(st);
        out->challenge_params = PT_STR("error=\"invalid_key\"");
        return PT_AUTH_FAIL;
    }
    pt_auth_usage_touch(k->usage, now);
    out->id = &k->id.view;
    out->claims = k->id.claims;
    return PT_AUTH_OK;
}

const struct pt_auth_method pt_auth_method_api_key = {
    .name = "api_key",
    .scheme = "ApiKey",
    .authenticate = apikey_authenticate,
};
