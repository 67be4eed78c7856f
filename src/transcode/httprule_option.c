/*
 * The google.api.http option of a method: found in the serialized
 * MethodOptions by a small wire-format scan (protobuf-c would keep the
 * extension as an unknown field anyway, and the scan needs no descriptor),
 * then unpacked with the generated google.api.HttpRule code and turned into
 * the plain pt_httprule_spec the table compiles.
 */
#include <stdlib.h>
#include <string.h>

#include "transcode/httprule_int.h"

#include "core/arena.h"
#include "google/api/http.pb-c.h"
#include "portico/errors.h"

/* Groups are long deprecated, but an unknown field may still be one. */
#define MAX_GROUP_DEPTH 32

struct wire {
    const uint8_t *p;
    size_t n;
    size_t i;
};

static bool read_varint(struct wire *w, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (w->i >= w->n)
            return false;
        uint8_t b = w->p[w->i++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

static bool skip_bytes(struct wire *w, uint64_t len)
{
    if (len > w->n - w->i)
        return false;
    w->i += (size_t)len;
    return true;
}

/* Skip the value of a field of wire type wt; for a group, up to and with
 * its end tag. */
static bool skip_value(struct wire *w, unsigned wt, uint64_t field, int depth)
{
    uint64_t v;
    switch (wt) {
    case 0:
        return read_varint(w, &v);
    case 1:
        return skip_bytes(w, 8);
    case 2:
        return read_varint(w, &v) && skip_bytes(w, v);
    case 5:
        return skip_bytes(w, 4);
    case 3:
        if (depth >= MAX_GROUP_DEPTH)
            return false;
        for (;;) {
            uint64_t tag;
            if (!read_varint(w, &tag))
                return false;
            unsigned iwt = (unsigned)(tag & 7);
            uint64_t ifield = tag >> 3;
            if (ifield == 0 || ifield > 0x1fffffff)
                return false;
            if (iwt == 4)
                return ifield == field;
            if (!skip_value(w, iwt, ifield, depth + 1))
                return false;
        }
    default:
        return false;
    }
}

/*
 * Concatenate the payloads of every occurrence of the extension (protobuf
 * merges repeated occurrences of a message field; unpacking the
 * concatenation does exactly that). Status: 0 (found, *out malloc'd),
 * PT_ERR_NOT_FOUND, PT_ERR_INVALID.
 */
static int find_option(const uint8_t *opts, size_t len, uint8_t **out, size_t *outlen)
{
    struct wire w = {opts, len, 0};
    uint8_t *buf = NULL;
    size_t blen = 0;
    bool found = false;
    while (w.i < w.n) {
        uint64_t tag;
        if (!read_varint(&w, &tag))
            goto bad;
        unsigned wt = (unsigned)(tag & 7);
        uint64_t field = tag >> 3;
        if (field == 0 || field > 0x1fffffff)
            goto bad;
        if (field != PT_HTTPRULE_EXTENSION_FIELD) {
            if (!skip_value(&w, wt, field, 0))
                goto bad;
            continue;
        }
        uint64_t n;
        if (wt != 2 || !read_varint(&w, &n) || n > w.n - w.i)
            goto bad;
        if (!buf)
            buf = pt_xmalloc(len ? len : 1); /* every payload fits in the input */
        memcpy(buf + blen, w.p + w.i, (size_t)n);
        blen += (size_t)n;
        w.i += (size_t)n;
        found = true;
    }
    if (!found)
        return PT_ERR_NOT_FOUND;
    *out = buf;
    *outlen = blen;
    return 0;
bad:
    free(buf);
    return PT_ERR_INVALID;
}

static struct pt_str cstr(const char *s)
{
    return pt_str_from_cstr(s ? s : "");
}

static int spec_from_rule(const Google__Api__HttpRule *r, struct pt_httprule_spec *s,
                          const char **err)
{
    memset(s, 0, sizeof(*s));
    switch (r->pattern_case) {
    case GOOGLE__API__HTTP_RULE__PATTERN_GET:
        s->method = PT_STR("GET");
        s->path = cstr(r->get);
        break;
    case GOOGLE__API__HTTP_RULE__PATTERN_PUT:
        s->method = PT_STR("PUT");
        s->path = cstr(r->put);
        break;
    case GOOGLE__API__HTTP_RULE__PATTERN_POST:
        s->method = PT_STR("POST");
        s->path = cstr(r->post);
        break;
    case GOOGLE__API__HTTP_RULE__PATTERN_DELETE:
        s->method = PT_STR("DELETE");
        s->path = cstr(r->delete_);
        break;
    case GOOGLE__API__HTTP_RULE__PATTERN_PATCH:
        s->method = PT_STR("PATCH");
        s->path = cstr(r->patch);
        break;
    case GOOGLE__API__HTTP_RULE__PATTERN_CUSTOM:
        if (!r->custom) {
            *err = "google.api.http: custom pattern without kind and path";
            return PT_ERR_INVALID;
        }
        s->method = cstr(r->custom->kind);
        s->path = cstr(r->custom->path);
        break;
    default:
        *err = "google.api.http: no pattern (get, put, post, delete, patch or custom)";
        return PT_ERR_INVALID;
    }
    s->body = cstr(r->body);
    s->response_body = cstr(r->response_body);
    return 0;
}

int pt_httprule_proto_load(struct pt_httprule_proto *p, const uint8_t *opts, size_t len,
                           const char **err)
{
    const char *local;
    if (!err)
        err = &local;
    memset(p, 0, sizeof(*p));
    uint8_t *bytes = NULL;
    size_t blen = 0;
    int rc = find_option(opts, len, &bytes, &blen);
    if (rc == PT_ERR_NOT_FOUND)
        return rc;
    if (rc != 0) {
        *err = "MethodOptions: malformed protobuf";
        return rc;
    }
    Google__Api__HttpRule *r = google__api__http_rule__unpack(NULL, blen, bytes);
    free(bytes);
    if (!r) {
        *err = "google.api.http: not a valid google.api.HttpRule";
        return PT_ERR_INVALID;
    }
    if ((rc = spec_from_rule(r, &p->spec, err)) != 0)
        goto fail;
    if (r->n_additional_bindings) {
        p->more = pt_xcalloc(r->n_additional_bindings, sizeof(*p->more));
        for (size_t i = 0; i < r->n_additional_bindings; i++) {
            const Google__Api__HttpRule *a = r->additional_bindings[i];
            if (a->n_additional_bindings) {
                *err = "google.api.http: additional_bindings may not have additional_bindings";
                rc = PT_ERR_INVALID;
                goto fail;
            }
            if ((rc = spec_from_rule(a, &p->more[i], err)) != 0)
                goto fail;
        }
        p->spec.additional_bindings = p->more;
        p->spec.nadditional_bindings = r->n_additional_bindings;
    }
    p->msg = r;
    return 0;
fail:
    free(p->more);
    google__api__http_rule__free_unpacked(r, NULL);
    memset(p, 0, sizeof(*p));
    return rc;
}

void pt_httprule_proto_fini(struct pt_httprule_proto *p)
{
    if (p->msg)
        google__api__http_rule__free_unpacked(p->msg, NULL);
    free(p->more);
    memset(p, 0, sizeof(*p));
}
