/*
 * Query parameters as field bindings (application/x-www-form-urlencoded):
 * every parameter not covered by a path variable or by the body becomes a
 * (field path, value) pair, in order. See httprule.h for the rules.
 */
#include <string.h>

#include "transcode/httprule_int.h"

#include "core/arena.h"
#include "portico/errors.h"

size_t pt_httprule_query_count(struct pt_str query)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= query.len; i++) {
        if (i < query.len && query.ptr[i] != '&')
            continue;
        if (i > start)
            n++;
        start = i + 1;
    }
    return n;
}

static int fail(struct pt_httprule_match *out, int rc, const char *reason)
{
    out->reason = reason;
    return rc;
}

/* Decode one name or value into the arena. */
static int decode(struct pt_str raw, const struct pt_httprule_limits *lim, struct pt_arena *arena,
                  struct pt_httprule_match *out, struct pt_str *res)
{
    /* A decoded byte takes at most three raw bytes. */
    if (raw.len / 3 > lim->max_value_len)
        return fail(out, PT_ERR_LIMIT, "query parameter too long");
    char *buf = pt_arena_alloc(arena, raw.len ? raw.len : 1);
    if (!buf)
        return fail(out, PT_ERR_LIMIT, "request too large");
    size_t len;
    if (pt_httprule_decode(raw, PT_HTTPRULE_DECODE_FORM, buf, &len) != 0)
        return fail(out, PT_ERR_INVALID, "invalid percent-encoding in the query");
    if (len > lim->max_value_len)
        return fail(out, PT_ERR_LIMIT, "query parameter too long");
    if (!pt_httprule_utf8_valid(buf, len))
        return fail(out, PT_ERR_INVALID, "query parameter is not valid UTF-8");
    *res = (struct pt_str){buf, len};
    return 0;
}

/* Is field covered by the body or by a path variable of r? */
static bool excluded(const struct pt_httprule_route *r, struct pt_httprule_field field)
{
    if (r->body == PT_HTTPRULE_BODY_FIELD && pt_httprule_field_overlap(r->body_field, field))
        return true;
    for (uint32_t i = 0; i < r->tmpl.nvars; i++) {
        if (pt_httprule_field_overlap(r->tmpl.vars[i].field, field))
            return true;
    }
    return false;
}

static int bind_one(const struct pt_httprule_route *r, struct pt_str piece,
                    const struct pt_httprule_limits *lim, struct pt_arena *arena,
                    struct pt_httprule_match *out)
{
    const char *eq = memchr(piece.ptr, '=', piece.len);
    struct pt_str raw_name = {piece.ptr, eq ? (size_t)(eq - piece.ptr) : piece.len};
    struct pt_str raw_value =
        eq ? (struct pt_str){eq + 1, piece.len - raw_name.len - 1} : PT_STR("");
    struct pt_str name, value;
    int rc = decode(raw_name, lim, arena, out, &name);
    if (rc == 0)
        rc = decode(raw_value, lim, arena, out, &value);
    if (rc != 0)
        return rc;
    uint32_t nseg;
    if (pt_httprule_field_path_check(name, &nseg, NULL) != 0)
        return fail(out, PT_ERR_INVALID, "query parameter name is not a field path");
    struct pt_str *seg = pt_arena_alloc(arena, nseg * sizeof(*seg));
    if (!seg)
        return fail(out, PT_ERR_LIMIT, "request too large");
    pt_httprule_field_split(name, seg);
    struct pt_httprule_field field = {seg, nseg};
    if (excluded(r, field))
        return 0;
    out->params[out->nparams++] =
        (struct pt_httprule_param){.field = field, .value = value, .from_path = false};
    return 0;
}

int pt_httprule_query_bind(const struct pt_httprule_route *r, struct pt_str query,
                           const struct pt_httprule_limits *lim, struct pt_arena *arena,
                           struct pt_httprule_match *out)
{
    if (r->body == PT_HTTPRULE_BODY_ALL)
        return 0;
    size_t start = 0;
    for (size_t i = 0; i <= query.len; i++) {
        if (i < query.len && query.ptr[i] != '&')
            continue;
        if (i > start) {
            int rc = bind_one(r, (struct pt_str){query.ptr + start, i - start}, lim, arena, out);
            if (rc != 0)
                return rc;
        }
        start = i + 1;
    }
    return 0;
}
