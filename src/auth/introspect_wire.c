#include "auth/introspect_wire.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "portico/errors.h"

/* NumericDates beyond 2^53 are not exact in JSON numbers anyway. */
#define MAX_DATE 9007199254740992.0

struct pt_introspection *pt_introspection_new_inactive(void)
{
    struct pt_introspection *r = pt_xcalloc(1, sizeof(*r));
    atomic_init(&r->refs, 1);
    return r;
}

struct pt_introspection *pt_introspection_ref(struct pt_introspection *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void pt_introspection_unref(struct pt_introspection *r)
{
    if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(r->sub);
    free(r->client_id);
    free(r->username);
    free(r->iss);
    free(r->token_type);
    free_list(r->scopes, r->nscopes);
    free_list(r->aud, r->naud);
    if (r->claims)
        json_decref(r->claims);
    free(r);
}

bool pt_introspection_has_scope(const struct pt_introspection *r, struct pt_str scope)
{
    for (size_t i = 0; i < r->nscopes; i++)
        if (strlen(r->scopes[i]) == scope.len && memcmp(r->scopes[i], scope.ptr, scope.len) == 0)
            return true;
    return false;
}

/* --- response ------------------------------------------------------------- */

/* Status: 0 (absent or a valid date) or -1. */
static int get_date(json_t *obj, const char *name, bool *has, int64_t *out, char *why, size_t wl)
{
    json_t *v = json_object_get(obj, name);
    if (!v)
        return 0;
    double d;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > (json_int_t)MAX_DATE) {
            snprintf(why, wl, "\"%s\" is out of range", name);
            return -1;
        }
        d = (double)i;
    } else if (json_is_real(v))
        d = json_real_value(v);
    else {
        snprintf(why, wl, "\"%s\" is not a number", name);
        return -1;
    }
    if (!(d >= 0 && d <= MAX_DATE)) { /* also rejects NaN */
        snprintf(why, wl, "\"%s\" is out of range", name);
        return -1;
    }
    *has = true;
    *out = (int64_t)d; /* d >= 0: truncation is floor */
    return 0;
}

/* Status: 0 (absent or a string) or -1. */
static int get_string(json_t *obj, const char *name, char **out, char *why, size_t wl)
{
    json_t *v = json_object_get(obj, name);
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        snprintf(why, wl, "\"%s\" is not a string", name);
        return -1;
    }
    *out = pt_xstrndup(json_string_value(v), json_string_length(v));
    return 0;
}

static int push(char ***v, size_t *n, size_t max, const char *s, size_t len, const char *name,
                char *why, size_t wl)
{
    if (*n >= max) {
        snprintf(why, wl, "\"%s\" has more than %zu entries", name, max);
        return -1;
    }
    *v = pt_xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = pt_xstrndup(s, len);
    return 0;
}

/* A string, or (with allow_array) an array of strings. Status: 0 or -1. */
static int get_list(json_t *obj, const char *name, bool split, char ***v, size_t *n, size_t max,
                    char *why, size_t wl)
{
    json_t *val = json_object_get(obj, name);
    if (!val)
        return 0;
    if (json_is_string(val)) {
        const char *s = json_string_value(val);
        size_t len = json_string_length(val);
        if (!split)
            return push(v, n, max, s, len, name, why, wl);
        size_t i = 0;
        while (i < len) {
            while (i < len && s[i] == ' ')
                i++;
            size_t start = i;
            while (i < len && s[i] != ' ')
                i++;
            if (i > start && push(v, n, max, s + start, i - start, name, why, wl) != 0)
                return -1;
        }
        return 0;
    }
    if (json_is_array(val)) {
        size_t idx;
        json_t *e;
        json_array_foreach(val, idx, e)
        {
            if (!json_is_string(e)) {
                snprintf(why, wl, "\"%s\" has a member that is not a string", name);
                return -1;
            }
            if (push(v, n, max, json_string_value(e), json_string_length(e), name, why, wl) != 0)
                return -1;
        }
        return 0;
    }
    snprintf(why, wl, "\"%s\" is neither a string nor an array", name);
    return -1;
}

int pt_introspection_parse(const char *body, size_t len, struct pt_introspection **out, char *why,
                           size_t wl)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(why, wl, "not valid JSON: %s", jerr.text);
        return PT_ERR_UPSTREAM_PROTOCOL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        snprintf(why, wl, "not a JSON object");
        return PT_ERR_UPSTREAM_PROTOCOL;
    }
    struct pt_introspection *r = pt_introspection_new_inactive();
    r->claims = root;
    r->active = json_is_true(json_object_get(root, "active"));
    if (!r->active) {
        *out = r;
        return 0;
    }
    if (get_date(root, "exp", &r->has_exp, &r->exp, why, wl) != 0 ||
        get_date(root, "iat", &r->has_iat, &r->iat, why, wl) != 0 ||
        get_date(root, "nbf", &r->has_nbf, &r->nbf, why, wl) != 0 ||
        get_string(root, "sub", &r->sub, why, wl) != 0 ||
        get_string(root, "client_id", &r->client_id, why, wl) != 0 ||
        get_string(root, "username", &r->username, why, wl) != 0 ||
        get_string(root, "iss", &r->iss, why, wl) != 0 ||
        get_string(root, "token_type", &r->token_type, why, wl) != 0 ||
        get_list(root, "scope", true, &r->scopes, &r->nscopes, PT_INTROSPECT_MAX_SCOPES, why, wl) !=
            0 ||
        get_list(root, "aud", false, &r->aud, &r->naud, PT_INTROSPECT_MAX_AUD, why, wl) != 0) {
        pt_introspection_unref(r);
        return PT_ERR_UPSTREAM_PROTOCOL;
    }
    *out = r;
    return 0;
}

/* --- request -------------------------------------------------------------- */

static bool form_safe(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '*' ||
           c == '-' || c == '.' || c == '_';
}

size_t pt_form_encode(struct pt_str in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.ptr[i];
        char tmp[3];
        size_t k;
        if (form_safe(c)) {
            tmp[0] = (char)c;
            k = 1;
        } else if (c == ' ') {
            tmp[0] = '+';
            k = 1;
        } else {
            tmp[0] = '%';
            tmp[1] = hex[c >> 4];
            tmp[2] = hex[c & 15];
            k = 3;
        }
        for (size_t j = 0; j < k; j++, n++)
            if (n < cap)
                out[n] = tmp[j];
    }
    if (n < cap)
        out[n] = '\0';
    return n;
}

static void append_encoded(char *buf, size_t *off, size_t cap, struct pt_str s)
{
    *off += pt_form_encode(s, buf + *off, cap - *off);
}

char *pt_introspect_form_body(struct pt_str token, const char *token_type_hint, size_t *len)
{
    struct pt_str hint = pt_str_from_cstr(token_type_hint);
    size_t cap = 6 + 3 * token.len + (hint.len ? 17 + 3 * hint.len : 0) + 1;
    char *buf = pt_xmalloc(cap);
    size_t off = 0;
    memcpy(buf, "token=", 6);
    off = 6;
    append_encoded(buf, &off, cap, token);
    if (hint.len) {
        memcpy(buf + off, "&token_type_hint=", 17);
        off += 17;
        append_encoded(buf, &off, cap, hint);
    }
    buf[off] = '\0';
    *len = off;
    return buf;
}

char *pt_introspect_basic_auth(const char *client_id, const char *client_secret)
{
    struct pt_str id = pt_str_from_cstr(client_id);
    struct pt_str secret = pt_str_from_cstr(client_secret);
    size_t cap = 3 * (id.len + secret.len) + 2;
    char *plain = pt_xmalloc(cap);
    size_t off = 0;
    append_encoded(plain, &off, cap, id);
    plain[off++] = ':';
    append_encoded(plain, &off, cap, secret);
    size_t b64cap = 4 * ((off + 2) / 3) + 1;
    char *out = pt_xmalloc(6 + b64cap);
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)plain, (int)off);
    free(plain);
    return out;
}
