/*
 * Identities built by authentication methods, claim text for headers, and
 * identity-header hygiene (see identity.h).
 */
#include "auth/identity.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/strutil.h"
#include "http/headers.h"

static struct pt_str keep(struct pt_auth_identity *id, unsigned slot, const char *s)
{
    if (!s || !*s)
        return PT_STR_NULL;
    id->strings[slot] = pt_xstrdup(s);
    return pt_str_from_cstr(id->strings[slot]);
}

static void keep_list(struct pt_auth_identity *id, unsigned l, char *const *v, size_t n)
{
    if (n > PT_IDENTITY_MAX_ITEMS)
        n = PT_IDENTITY_MAX_ITEMS;
    struct pt_str *out = pt_xcalloc(n ? n : 1, sizeof(*out));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] && *v[i])
            out[k++] = (struct pt_str){pt_xstrdup(v[i]), strlen(v[i])};
    id->lists[l] = out;
    id->view.list[l] = out;
    id->view.n[l] = (uint16_t)k;
}

void pt_auth_identity_build(struct pt_auth_identity *out, const struct pt_auth_identity_spec *spec)
{
    memset(out, 0, sizeof(*out));
    struct pt_identity_full *v = &out->view;
    v->method = keep(out, 0, spec->method);
    v->subject = keep(out, 1, spec->subject);
    v->base.client_id = keep(out, 2, spec->client_id);
    v->client_name = keep(out, 3, spec->client_name);
    v->base.tier = keep(out, 4, spec->tier);
    v->base.credential = keep(out, 5, spec->credential);
    v->base.user_id = keep(out, 6, spec->user_id);
    keep_list(out, PT_IDENTITY_SCOPES, spec->scopes, spec->nscopes);
    keep_list(out, PT_IDENTITY_ROLES, spec->roles, spec->nroles);
    if (spec->claims && json_is_object(spec->claims)) {
        out->claims = spec->claims;
        out->claims_text = json_dumps(spec->claims, JSON_COMPACT | JSON_SORT_KEYS);
        if (!out->claims_text)
            abort(); /* only allocation fails for an object we built */
        v->claims = pt_str_from_cstr(out->claims_text);
    } else if (spec->claims) {
        json_decref(spec->claims);
    }
}

void pt_auth_identity_fini(struct pt_auth_identity *id)
{
    for (unsigned i = 0; i < 8; i++)
        free(id->strings[i]);
    for (unsigned l = 0; l < 2; l++) {
        for (size_t i = 0; i < id->view.n[l]; i++)
            free((char *)id->lists[l][i].ptr);
        free(id->lists[l]);
    }
    json_decref(id->claims);
    free(id->claims_text);
    memset(id, 0, sizeof(*id));
}

/* A value a header may carry, within the cap. */
static bool sendable(struct pt_str v)
{
    return v.len && v.len <= PT_AUTH_MAX_CLAIM_HEADER && pt_http_is_field_value(v);
}

static bool dumped(struct pt_exchange *x, const json_t *j, struct pt_str *out)
{
    char buf[PT_AUTH_MAX_CLAIM_HEADER + 1];
    size_t n = json_dumpb(j, buf, sizeof(buf), JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    if (n == 0 || n > PT_AUTH_MAX_CLAIM_HEADER)
        return false;
    struct pt_str s;
    if (pt_arena_str(&x->arena, (struct pt_str){buf, n}, &s) != 0)
        return false;
    *out = s;
    return sendable(s);
}

bool pt_auth_claim_text(struct pt_exchange *x, const json_t *claims, const char *name,
                        struct pt_str *out)
{
    const json_t *c = claims ? json_object_get(claims, name) : NULL;
    if (!c || json_is_null(c))
        return false;
    if (json_is_string(c)) {
        struct pt_str s = {json_string_value(c), json_string_length(c)};
        if (!sendable(s))
            return false;
        *out = s; /* borrowed: claims outlive the exchange's use of it */
        return true;
    }
    if (!json_is_array(c))
        return dumped(x, c, out);
    /* An array of strings is a space-separated list (as OAuth's "scope"). */
    size_t total = 0, n = json_array_size(c);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(c, i);
        if (!json_is_string(e))
            return dumped(x, c, out);
        total += json_string_length(e) + 1;
    }
    if (!n || total - 1 > PT_AUTH_MAX_CLAIM_HEADER)
        return false;
    char *buf = pt_exchange_alloc(x, total);
    if (!buf)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(c, i);
        if (i)
            buf[k++] = ' ';
        memcpy(buf + k, json_string_value(e), json_string_length(e));
        k += json_string_length(e);
    }
    *out = (struct pt_str){buf, k};
    return sendable(*out);
}

static char fold(char c)
{
    c = pt_ascii_lower(c);
    return c == '_' ? '-' : c;
}

bool pt_auth_header_name_alike(struct pt_str a, struct pt_str b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++)
        if (fold(a.ptr[i]) != fold(b.ptr[i]))
            return false;
    return true;
}

size_t pt_auth_strip_alike(struct pt_headers *h, const struct pt_str *names, size_t n)
{
    size_t removed = 0;
    for (uint32_t i = 0; i < h->n;) {
        bool hit = false;
        for (size_t k = 0; k < n && !hit; k++)
            hit = pt_auth_header_name_alike(h->v[i].name, names[k]);
        if (hit) {
            pt_headers_remove_at(h, i);
            removed++;
        } else {
            i++;
        }
    }
    return removed;
}

/* --- identities in exchange memory ------------------------------------------- */

static bool copy_str(struct pt_exchange *x, struct pt_str in, struct pt_str *out)
{
    if (!in.len) {
        *out = PT_STR_NULL;
        return true;
    }
    return pt_arena_str(&x->arena, in, out) == 0;
}

static bool copy_list(struct pt_exchange *x, const struct pt_str *in, size_t n,
                      const struct pt_str **out, uint16_t *nout)
{
    if (n > PT_IDENTITY_MAX_ITEMS)
        n = PT_IDENTITY_MAX_ITEMS;
    *out = NULL;
    *nout = 0;
    if (!n)
        return true;
    struct pt_str *v = pt_exchange_alloc(x, n * sizeof(*v));
    if (!v)
        return false;
    uint16_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i].len && copy_str(x, in[i], &v[k]))
            k++;
        else if (in[i].len)
            return false;
    *out = v;
    *nout = k;
    return true;
}

const struct pt_identity_full *pt_auth_identity_in_exchange(struct pt_exchange *x,
                                                            const struct pt_auth_id_fields *f)
{
    struct pt_identity_full *id = pt_exchange_alloc(x, sizeof(*id));
    if (!id)
        return NULL;
    memset(id, 0, sizeof(*id));
    id->method = pt_str_from_cstr(f->method); /* static text */
    bool ok =
        copy_str(x, f->subject, &id->subject) && copy_str(x, f->client_id, &id->base.client_id) &&
        copy_str(x, f->client_name, &id->client_name) && copy_str(x, f->tier, &id->base.tier) &&
        copy_str(x, f->credential, &id->base.credential) &&
        copy_str(x, f->user_id, &id->base.user_id) &&
        copy_list(x, f->scopes, f->nscopes, &id->list[PT_IDENTITY_SCOPES],
                  &id->n[PT_IDENTITY_SCOPES]) &&
        copy_list(x, f->roles, f->nroles, &id->list[PT_IDENTITY_ROLES], &id->n[PT_IDENTITY_ROLES]);
    if (!ok)
        return NULL;
    return id;
}

const json_t *pt_auth_claim_at(const json_t *claims, const char *path)
{
    if (!claims || !json_is_object(claims) || !path || !*path)
        return NULL;
    const json_t *v = json_object_get(claims, path);
    if (v || !strchr(path, '.'))
        return v;
    v = claims;
    for (const char *p = path; v && *p;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (!json_is_object(v))
            return NULL;
        v = json_object_getn(v, p, len);
        p += len + (dot ? 1 : 0);
        if (dot && !*p)
            return NULL; /* "a." */
    }
    return v;
}

static size_t split_words(const char *s, size_t len, struct pt_str *out, size_t max, size_t k)
{
    for (size_t i = 0; i < len && k < max;) {
        while (i < len && s[i] == ' ')
            i++;
        size_t start = i;
        while (i < len && s[i] != ' ')
            i++;
        if (i > start)
            out[k++] = (struct pt_str){s + start, i - start};
    }
    return k;
}

size_t pt_auth_claim_words(const json_t *claim, bool split, struct pt_str *out, size_t max)
{
    size_t k = 0;
    if (!claim)
        return 0;
    if (json_is_string(claim)) {
        const char *s = json_string_value(claim);
        size_t len = json_string_length(claim);
        if (split)
            return split_words(s, len, out, max, 0);
        if (len && max)
            out[k++] = (struct pt_str){s, len};
        return k;
    }
    if (!json_is_array(claim))
        return 0;
    for (size_t i = 0; i < json_array_size(claim) && k < max; i++) {
        const json_t *e = json_array_get(claim, i);
        if (json_is_string(e) && json_string_length(e))
            out[k++] = (struct pt_str){json_string_value(e), json_string_length(e)};
    }
    return k;
}

static size_t claims_render(void *src, char *buf, size_t cap)
{
    return json_dumpb(src, buf, cap, JSON_COMPACT);
}

static void claims_release(void *src)
{
    json_decref(src);
}

const struct pt_identity_claims_ops pt_auth_claims_ops = {
    .render = claims_render,
    .release = claims_release,
};
