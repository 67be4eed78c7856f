/*
 * The headers filter. create() turns the config block into three arrays
 * per side (names to remove, fields to set, fields to add), names already
 * lower case and every byte already checked, so a hook only walks arrays;
 * the only per-request work is the exchange copying each field it adds.
 */
#include "filters/headers/headers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "filters/field.h"

struct field_op {
    struct pt_str name;  /* lower case, owned */
    struct pt_str value; /* owned */
};

struct side {
    struct pt_str *remove; /* lower case, owned */
    size_t nremove;
    struct field_op *set;
    size_t nset;
    struct field_op *add; /* one entry per field: a list value gives several */
    size_t nadd;
};

struct headers_filter {
    struct side request;
    struct side response;
};

/* --- create ------------------------------------------------------------------ */

/* Room for a diagnostic field path such as "response.add.x-tag[3]". */
#define PATH_LEN (PT_FILTERS_MAX_NAME * 4 + 64)

struct compiler {
    struct pt_diag *diag;
    bool ok;
};

static void errorf(struct compiler *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errorf(struct compiler *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pt_diag_errorf(c->diag, path, "%s", msg);
    c->ok = false;
}

/* A path cut short by the buffer still labels its message well enough:
 * snprintf's result only matters when it fails outright. */
static void path_fmt(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void path_fmt(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(out, PATH_LEN, fmt, ap) < 0)
        out[0] = '\0';
    va_end(ap);
}

static void path_key(char *out, const char *prefix, struct pt_str key)
{
    char buf[PT_FILTERS_MAX_NAME * 4 + 8];
    path_fmt(out, "%s.%s", prefix, pt_filters_printable(key, buf, sizeof(buf)));
}

static void path_index(char *out, const char *prefix, size_t i)
{
    path_fmt(out, "%s[%zu]", prefix, i);
}

static void free_str(struct pt_str s)
{
    free((char *)s.ptr);
}

/*
 * Accept a header name at `path`: v's string for a list entry (v must then
 * be a string), or `name` itself for a map key (v NULL). Pointer: a
 * lower-case copy (free()), or NULL after reporting why not; `seen` holds the lower-case names
 * already accepted by the same operation, since a case-insensitive repeat is a mistake that YAML's
 * own duplicate-key check cannot catch.
 */
static char *accept_name(struct compiler *c, const char *path, const char *op,
                         const struct pt_config_value *v, struct pt_str name,
                         const struct pt_str *seen, size_t nseen)
{
    char buf[PT_FILTERS_MAX_NAME * 4 + 8];
    if (v && !pt_config_string(v, &name)) {
        errorf(c, path, "must be a string (a header name)");
        return NULL;
    }
    const char *why = pt_filters_name_problem(name);
    if (why) {
        errorf(c, path, "invalid header name \"%s\": %s",
               pt_filters_printable(name, buf, sizeof(buf)), why);
        return NULL;
    }
    char *lower = pt_filters_lower_dup(name);
    for (size_t i = 0; i < nseen; i++) {
        if (pt_str_eq(seen[i], (struct pt_str){lower, name.len})) {
            errorf(c, path, "header \"%s\" is listed twice in %s (names are case-insensitive)",
                   lower, op);
            free(lower);
            return NULL;
        }
    }
    return lower;
}

/* Accept a header value at `path`. Pointer: a copy (free()) or NULL after
 * reporting why not. */
static char *accept_value(struct compiler *c, const char *path, const struct pt_config_value *v,
                          size_t *len)
{
    struct pt_str value;
    char why[160];
    if (!pt_config_string(v, &value)) {
        errorf(c, path, "a header value must be a string (quote numbers and booleans)");
        return NULL;
    }
    if (!pt_filters_value_ok(value, why, sizeof(why))) {
        errorf(c, path, "%s", why);
        return NULL;
    }
    *len = value.len;
    return pt_xstrndup(value.len ? value.ptr : "", value.len);
}

static void compile_remove(struct compiler *c, const char *prefix, const struct pt_config_value *v,
                           struct side *s)
{
    if (pt_config_kind(v) != PT_CONFIG_LIST) {
        errorf(c, prefix, "must be a list of header names");
        return;
    }
    size_t n = pt_config_len(v);
    s->remove = pt_xcalloc(n ? n : 1, sizeof(*s->remove));
    for (size_t i = 0; i < n; i++) {
        char path[PATH_LEN];
        path_index(path, prefix, i);
        const struct pt_config_value *e = pt_config_at(v, i, NULL);
        char *name = accept_name(c, path, "remove", e, PT_STR_NULL, s->remove, s->nremove);
        if (name)
            s->remove[s->nremove++] = (struct pt_str){name, strlen(name)};
    }
}

/* One `name: value` (or, for add, `name: [value, ...]`) entry. */
static void compile_entry(struct compiler *c, const char *path, const char *op, bool lists,
                          struct pt_str name, const struct pt_config_value *v, struct field_op *ops,
                          size_t *nops, struct pt_str *seen, size_t *nseen)
{
    char *lname = accept_name(c, path, op, NULL, name, seen, *nseen);
    if (!lname)
        return;
    seen[(*nseen)++] = (struct pt_str){lname, name.len};

    size_t nvalues = 1;
    if (pt_config_kind(v) == PT_CONFIG_LIST) {
        if (!lists) {
            errorf(c, path, "set takes one string per header; use add for several values");
            return;
        }
        nvalues = pt_config_len(v);
        if (nvalues == 0) {
            errorf(c, path, "an empty list adds nothing; give at least one value");
            return;
        }
    }
    for (size_t i = 0; i < nvalues; i++) {
        char epath[PATH_LEN];
        const struct pt_config_value *e = v;
        if (pt_config_kind(v) == PT_CONFIG_LIST) {
            path_index(epath, path, i);
            e = pt_config_at(v, i, NULL);
        } else {
            path_fmt(epath, "%s", path);
        }
        size_t len = 0;
        char *value = accept_value(c, epath, e, &len);
        if (!value)
            continue;
        ops[(*nops)++] = (struct field_op){
            .name = {pt_xstrndup(lname, name.len), name.len},
            .value = {value, len},
        };
    }
}

/* `set` (lists: false) or `add` (lists: true, one field per element). */
static void compile_fields(struct compiler *c, const char *prefix, const char *op,
                           const struct pt_config_value *v, bool lists, struct field_op **ops,
                           size_t *nops)
{
    if (pt_config_kind(v) != PT_CONFIG_MAP) {
        errorf(c, prefix, "must be a map of header name to %s",
               lists ? "a string or a list of strings" : "a string");
        return;
    }
    size_t n = pt_config_len(v), cap = 0;
    for (size_t i = 0; i < n; i++) {
        const struct pt_config_value *e = pt_config_at(v, i, NULL);
        cap += (lists && pt_config_kind(e) == PT_CONFIG_LIST) ? pt_config_len(e) : 1;
    }
    *ops = pt_xcalloc(cap ? cap : 1, sizeof(**ops));
    struct pt_str *seen = pt_xcalloc(n ? n : 1, sizeof(*seen));
    size_t nseen = 0;
    for (size_t i = 0; i < n; i++) {
        struct pt_str name = PT_STR_NULL;
        const struct pt_config_value *e = pt_config_at(v, i, &name);
        char path[PATH_LEN];
        path_key(path, prefix, name);
        compile_entry(c, path, op, lists, name, e, *ops, nops, seen, &nseen);
    }
    for (size_t i = 0; i < nseen; i++)
        free_str(seen[i]);
    free(seen);
}

static void compile_side(struct compiler *c, const char *prefix, const struct pt_config_value *v,
                         struct side *s)
{
    char buf[PT_FILTERS_MAX_NAME * 4 + 8];
    if (pt_config_kind(v) == PT_CONFIG_NULL)
        return;
    if (pt_config_kind(v) != PT_CONFIG_MAP) {
        errorf(c, prefix, "must be a map with set, add and/or remove");
        return;
    }
    /* A Struct built through the admin API may repeat a key; YAML cannot. */
    bool seen_remove = false, seen_set = false, seen_add = false;
    for (size_t i = 0; i < pt_config_len(v); i++) {
        struct pt_str key = PT_STR_NULL;
        const struct pt_config_value *e = pt_config_at(v, i, &key);
        char path[PATH_LEN];
        path_key(path, prefix, key);
        bool *seen = pt_str_eq(key, PT_STR("remove")) ? &seen_remove
                     : pt_str_eq(key, PT_STR("set"))  ? &seen_set
                     : pt_str_eq(key, PT_STR("add"))  ? &seen_add
                                                      : NULL;
        if (!seen) {
            errorf(c, prefix, "unknown key \"%s\" (known: set, add, remove)",
                   pt_filters_printable(key, buf, sizeof(buf)));
            continue;
        }
        if (*seen) {
            errorf(c, path, "given twice");
            continue;
        }
        *seen = true;
        if (pt_config_kind(e) == PT_CONFIG_NULL)
            continue;
        if (seen == &seen_remove)
            compile_remove(c, path, e, s);
        else if (seen == &seen_set)
            compile_fields(c, path, "set", e, false, &s->set, &s->nset);
        else
            compile_fields(c, path, "add", e, true, &s->add, &s->nadd);
    }
}

static void free_side(struct side *s)
{
    for (size_t i = 0; i < s->nremove; i++)
        free_str(s->remove[i]);
    for (size_t i = 0; i < s->nset; i++) {
        free_str(s->set[i].name);
        free_str(s->set[i].value);
    }
    for (size_t i = 0; i < s->nadd; i++) {
        free_str(s->add[i].name);
        free_str(s->add[i].value);
    }
    free(s->remove);
    free(s->set);
    free(s->add);
}

static void hdr_destroy(void *instance)
{
    struct headers_filter *f = instance;
    if (!f)
        return;
    free_side(&f->request);
    free_side(&f->response);
    free(f);
}

static void *hdr_create(const struct pt_filter_config *cfg, struct pt_diag *diag)
{
    const struct pt_config_value *root = pt_filter_config_root(cfg);
    struct compiler c = {.diag = diag, .ok = true};
    struct headers_filter *f = pt_xcalloc(1, sizeof(*f));
    char buf[PT_FILTERS_MAX_NAME * 4 + 8];

    bool seen_request = false, seen_response = false;
    for (size_t i = 0; i < pt_config_len(root); i++) {
        struct pt_str key = PT_STR_NULL;
        const struct pt_config_value *v = pt_config_at(root, i, &key);
        bool request = pt_str_eq(key, PT_STR("request"));
        bool response = pt_str_eq(key, PT_STR("response"));
        if ((request && seen_request) || (response && seen_response))
            errorf(&c, request ? "request" : "response", "given twice");
        else if (request)
            compile_side(&c, "request", v, &f->request);
        else if (response)
            compile_side(&c, "response", v, &f->response);
        else
            errorf(&c, NULL, "unknown key \"%s\" (known: request, response)",
                   pt_filters_printable(key, buf, sizeof(buf)));
        seen_request |= request;
        seen_response |= response;
    }
    if (!c.ok) {
        hdr_destroy(f);
        return NULL;
    }
    return f;
}

/* --- hooks ---------------------------------------------------------------------- */

/* Status: 0, or the exchange's error when a field cannot be stored. */
static int apply(struct pt_headers *h, const struct side *s)
{
    for (size_t i = 0; i < s->nremove; i++)
        pt_headers_remove(h, s->remove[i]);
    for (size_t i = 0; i < s->nset; i++) {
        int err = pt_headers_set(h, s->set[i].name, s->set[i].value);
        if (err)
            return err;
    }
    for (size_t i = 0; i < s->nadd; i++) {
        int err = pt_headers_add(h, s->add[i].name, s->add[i].value);
        if (err)
            return err;
    }
    return 0;
}

/* A configured policy that cannot be applied must not be skipped silently
 * (it may be a security header): the exchange fails instead. */
static enum pt_filter_status failed(struct pt_exchange *x, int err)
{
    pt_exchange_reply_error(x, (enum pt_err)err, PT_STR("cannot apply the configured headers"));
    return PT_FILTER_REPLIED;
}

static enum pt_filter_status hdr_on_request_head(struct pt_exchange *x, void *instance)
{
    const struct headers_filter *f = instance;
    int err = apply(pt_exchange_request_headers(x), &f->request);
    return err ? failed(x, err) : PT_FILTER_CONTINUE;
}

static enum pt_filter_status hdr_on_response_head(struct pt_exchange *x, void *instance)
{
    const struct headers_filter *f = instance;
    int err = apply(pt_exchange_response_headers(x), &f->response);
    return err ? failed(x, err) : PT_FILTER_CONTINUE;
}

const struct pt_filter_type pt_filters_headers_type = {
    .name = "headers",
    .abi_version = PT_ABI_VERSION,
    .create = hdr_create,
    .destroy = hdr_destroy,
    .on_request_head = hdr_on_request_head,
    .on_response_head = hdr_on_response_head,
};
