/*
 * A route's Transcode configuration compiled against its service's
 * descriptor pool: which methods are exposed, their HTTP rules (config,
 * annotation or fallback) in one matcher table, and the codec options.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "portico/errors.h"
#include "transcode/pool_hooks.h"
#include "transcode/route.h"
#include "transcode/route_int.h"
#include "transcode/route_live.h"

typedef Portico__Config__V1__TranscodeRule Rule;

const ProtobufCFieldDescriptor *pt_tc_field_find(const ProtobufCMessageDescriptor *d,
                                                 struct pt_str name)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (strlen(f->name) == name.len && memcmp(f->name, name.ptr, name.len) == 0)
            return f;
        const struct pt_descpool_field *fi = pt_descpool_field_info(d, f);
        if (fi && fi->json_name && strlen(fi->json_name) == name.len &&
            memcmp(fi->json_name, name.ptr, name.len) == 0)
            return f;
    }
    return NULL;
}

/* The httprule table asks whether a bound field exists. */
static bool field_exists(void *ctx, struct pt_str method, enum pt_httprule_field_use use,
                         const struct pt_str *path, size_t n)
{
    const struct pt_descpool_method *m = pt_descpool_find_method(ctx, method);
    if (!m || n == 0)
        return false;
    const ProtobufCMessageDescriptor *d =
        use == PT_HTTPRULE_FIELD_RESPONSE_BODY ? m->desc->output : m->desc->input;
    if (use != PT_HTTPRULE_FIELD_PATH && n != 1)
        return false;
    for (size_t i = 0; i < n; i++) {
        const ProtobufCFieldDescriptor *f = pt_tc_field_find(d, path[i]);
        if (!f)
            return false;
        const struct pt_descpool_field *fi = pt_descpool_field_info(d, f);
        if (i + 1 == n)
            return use != PT_HTTPRULE_FIELD_PATH || !(fi && fi->is_map);
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
            return false;
        d = f->descriptor;
    }
    return false;
}

/* Fill spec from a config rule; errors to diag. Status: 0 or -1. */
static int rule_spec(const Rule *r, struct pt_httprule_spec *spec, const char *where,
                     const char *field, struct pt_diag *diag)
{
    struct {
        const char *kind;
        const char *path;
    } k[] = {{"GET", r->get},     {"POST", r->post},      {"PUT", r->put},
             {"PATCH", r->patch}, {"DELETE", r->delete_}, {r->custom_kind, r->custom_path}};
    int found = 0;
    memset(spec, 0, sizeof(*spec));
    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
        bool set = i < 5 ? (k[i].path && *k[i].path)
                         : ((k[i].kind && *k[i].kind) || (k[i].path && *k[i].path));
        if (!set)
            continue;
        found++;
        spec->method = pt_str_from_cstr(k[i].kind ? k[i].kind : "");
        spec->path = pt_str_from_cstr(k[i].path ? k[i].path : "");
    }
    if (found != 1) {
        pt_diag_addf(diag, where, field,
                     "exactly one of get, post, put, patch, delete and custom_kind/custom_path "
                     "must be set (found %d)",
                     found);
        return -1;
    }
    if (!spec->method.len || !spec->path.len) {
        pt_diag_addf(diag, where, field, "custom_kind and custom_path go together");
        return -1;
    }
    spec->body = pt_str_from_cstr(r->body ? r->body : "");
    spec->response_body = pt_str_from_cstr(r->response_body ? r->response_body : "");
    if (r->success_status && (r->success_status < 200 || r->success_status > 299)) {
        pt_diag_addf(diag, where, field, "success_status %u is not a 2xx status",
                     r->success_status);
        return -1;
    }
    return 0;
}

/* Per-method working state of the compile. */
struct mstate {
    const struct pt_descpool_method *m;
    const Rule *rule; /* config rule, or NULL */
    struct pt_httprule_proto proto;
    bool have_proto;
    struct pt_httprule_spec spec;
    struct pt_httprule_spec *more;
    size_t nmore;
    bool have_spec;
};

static bool exposed(const Portico__Config__V1__Transcode *tc, const struct pt_descpool_service *s)
{
    if (!tc->n_services)
        return true;
    for (size_t i = 0; i < tc->n_services; i++)
        if (strcmp(tc->services[i], s->desc->name) == 0)
            return true;
    return false;
}

static int compile_options(struct pt_tc_route *r, const Portico__Config__V1__Transcode *tc,
                           const char *where, struct pt_diag *diag)
{
    int rc = 0;
    r->decode.ignore_unknown = tc->ignore_unknown_fields;
    r->encode.emit_defaults = tc->emit_defaults;
    r->encode.original_names = tc->original_names;
    const char *sf = tc->stream_format ? tc->stream_format : "";
    if (!*sf || strcmp(sf, "ndjson") == 0)
        r->stream_format = PT_TC_STREAM_NDJSON;
    else if (strcmp(sf, "sse") == 0)
        r->stream_format = PT_TC_STREAM_SSE;
    else if (strcmp(sf, "json_array") == 0)
        r->stream_format = PT_TC_STREAM_JSON_ARRAY;
    else {
        pt_diag_addf(diag, where, "transcode.stream_format",
                     "\"%s\": expected \"ndjson\", \"sse\" or \"json_array\"", sf);
        rc = -1;
    }
    r->forward_headers = pt_xcalloc(tc->n_forward_headers + 1, sizeof(*r->forward_headers));
    for (size_t i = 0; i < tc->n_forward_headers; i++) {
        const char *h = tc->forward_headers[i];
        size_t n = strlen(h);
        char *c = pt_xmalloc(n + 1);
        for (size_t k = 0; k <= n; k++)
            c[k] = (h[k] >= 'A' && h[k] <= 'Z') ? (char)(h[k] + 32) : h[k];
        r->forward_headers[r->nforward_headers++] = (struct pt_str){c, n};
        char field[64];
        snprintf(field, sizeof(field), "transcode.forward_headers[%zu]", i);
        if (!n || !pt_tc_header_name_ok(pt_str_from_cstr(c))) {
            pt_diag_addf(diag, where, field, "\"%s\" is not a header name", h);
            rc = -1;
        } else if (strncmp(c, "grpc-", 5) == 0 || strcmp(c, "te") == 0 ||
                   strcmp(c, "content-type") == 0 || strcmp(c, "host") == 0 ||
                   strcmp(c, "connection") == 0 || strcmp(c, "content-length") == 0 ||
                   strcmp(c, "transfer-encoding") == 0) {
            pt_diag_addf(diag, where, field, "\"%s\" is set by the gateway and cannot be forwarded",
                         h);
            rc = -1;
        }
    }
    if (tc->status_metadata_key && *tc->status_metadata_key) {
        const char *k = tc->status_metadata_key;
        size_t n = strlen(k);
        char *c = pt_xmalloc(n + 1);
        for (size_t i = 0; i <= n; i++)
            c[i] = (k[i] >= 'A' && k[i] <= 'Z') ? (char)(k[i] + 32) : k[i];
        r->status_key = (struct pt_str){c, n};
        if (!pt_tc_header_name_ok(r->status_key)) {
            pt_diag_addf(diag, where, "transcode.status_metadata_key",
                         "\"%s\" is not a metadata key", k);
            rc = -1;
        }
    }
    return rc;
}

/* Attach the config rules to their methods. Status: 0 or -1. */
static int attach_rules(const Portico__Config__V1__Transcode *tc, struct mstate *ms, size_t n,
                        struct pt_descpool *pool, const char *where, struct pt_diag *diag)
{
    int rc = 0;
    for (size_t i = 0; i < tc->n_rules; i++) {
        const Rule *r = tc->rules[i];
        char field[96];
        snprintf(field, sizeof(field), "transcode.rules[%zu].method", i);
        const char *name = r->method ? r->method : "";
        const struct pt_descpool_method *m = pt_descpool_find_method(pool, pt_str_from_cstr(name));
        size_t k = 0;
        while (m && k < n && ms[k].m != m)
            k++;
        if (!m || k == n) {
            pt_diag_addf(diag, where, field,
                         m ? "method \"%s\" is not in the exposed services"
                           : "unknown method \"%s\" (expected pkg.Service.Method)",
                         name);
            rc = -1;
            continue;
        }
        if (ms[k].rule) {
            pt_diag_addf(diag, where, field, "method \"%s\" has two rules", name);
            rc = -1;
            continue;
        }
        ms[k].rule = r;
    }
    return rc;
}

static int method_specs(struct mstate *s, size_t i, const char *where, struct pt_diag *diag)
{
    char field[96];
    if (s->rule) {
        const Rule *r = s->rule;
        snprintf(field, sizeof(field), "transcode.rules[%zu]", i);
        if (rule_spec(r, &s->spec, where, field, diag) != 0)
            return -1;
        s->more = pt_xcalloc(r->n_additional_bindings + 1, sizeof(*s->more));
        int rc = 0;
        for (size_t b = 0; b < r->n_additional_bindings; b++) {
            const Rule *ab = r->additional_bindings[b];
            snprintf(field, sizeof(field), "transcode.rules[%zu].additional_bindings[%zu]", i, b);
            if (ab->n_additional_bindings || (ab->method && *ab->method)) {
                pt_diag_addf(diag, where, field,
                             "an additional binding has no method and no bindings of its own");
                rc = -1;
                continue;
            }
            if (rule_spec(ab, &s->more[s->nmore++], where, field, diag) != 0)
                rc = -1;
        }
        s->spec.additional_bindings = s->more;
        s->spec.nadditional_bindings = s->nmore;
        s->have_spec = rc == 0;
        return rc;
    }
    const char *err = NULL;
    int st = pt_httprule_proto_load(&s->proto, s->m->options, s->m->options_len, &err);
    if (st == PT_ERR_NOT_FOUND)
        return 0;
    if (st != 0) {
        pt_diag_addf(diag, where, "transcode", "%s: google.api.http: %s", s->m->full_name,
                     err ? err : "invalid");
        return -1;
    }
    s->have_proto = true;
    s->spec = s->proto.spec;
    s->have_spec = true;
    return 0;
}

struct pt_tc_route *pt_tc_route_compile(const Portico__Config__V1__Transcode *tc,
                                        struct pt_descpool *pool, const char *where,
                                        struct pt_diag *diag)
{
    struct pt_tc_route *r = pt_xcalloc(1, sizeof(*r));
    r->pool = pt_descpool_ref(pool);
    pt_tc_pool_hooks(pool, &r->hooks);
    int rc = compile_options(r, tc, where, diag);

    for (size_t i = 0; i < tc->n_services; i++) {
        if (!pt_descpool_find_service(pool, pt_str_from_cstr(tc->services[i]))) {
            char field[64];
            snprintf(field, sizeof(field), "transcode.services[%zu]", i);
            pt_diag_addf(diag, where, field,
                         "unknown gRPC service \"%s\" (not in the descriptor set)",
                         tc->services[i]);
            rc = -1;
        }
    }
    size_t cap = 0;
    for (size_t i = 0; i < pt_descpool_service_count(pool); i++) {
        const struct pt_descpool_service *s = pt_descpool_service_at(pool, i);
        if (exposed(tc, s))
            cap += s->desc->n_methods;
    }
    struct mstate *ms = pt_xcalloc(cap + 1, sizeof(*ms));
    size_t n = 0;
    for (size_t i = 0; i < pt_descpool_service_count(pool); i++) {
        const struct pt_descpool_service *s = pt_descpool_service_at(pool, i);
        if (!exposed(tc, s))
            continue;
        for (unsigned k = 0; k < s->desc->n_methods; k++)
            ms[n++].m = &s->methods[k];
    }
    if (attach_rules(tc, ms, n, pool, where, diag) != 0)
        rc = -1;
    for (size_t i = 0; i < n; i++) {
        size_t ri = 0;
        if (ms[i].rule)
            while (tc->rules[ri] != ms[i].rule)
                ri++;
        if (method_specs(&ms[i], ri, where, diag) != 0)
            rc = -1;
    }

    struct pt_httprule_method *hm = pt_xcalloc(n + 1, sizeof(*hm));
    r->methods = pt_xcalloc(n + 1, sizeof(*r->methods));
    for (size_t i = 0; i < n; i++) {
        const struct pt_descpool_method *m = ms[i].m;
        /* A client stream comes as NDJSON: every binding takes body "*". */
        for (size_t b = 0;
             m->client_streaming && ms[i].have_spec && b <= ms[i].spec.nadditional_bindings; b++) {
            const struct pt_httprule_spec *sp =
                b ? &ms[i].spec.additional_bindings[b - 1] : &ms[i].spec;
            if (!pt_str_eq(sp->body, PT_STR("*"))) {
                pt_diag_addf(diag, where, "transcode",
                             "%s is client-streaming: its rules need body \"*\" (an NDJSON "
                             "request body)",
                             m->full_name);
                rc = -1;
                break;
            }
        }
        struct pt_tc_method *tm = &r->methods[r->nmethods];
        tm->m = m;
        tm->in = m->desc->input;
        tm->out = m->desc->output;
        tm->grpc_path = pt_str_from_cstr(m->path);
        tm->nbindings = 1 + (ms[i].have_spec ? (uint32_t)ms[i].spec.nadditional_bindings : 0);
        tm->success_status = pt_xcalloc(tm->nbindings, sizeof(*tm->success_status));
        if (ms[i].rule) {
            tm->success_status[0] = (uint16_t)ms[i].rule->success_status;
            /* Additional bindings inherit the rule's unless they set their own. */
            for (uint32_t b = 1; b < tm->nbindings; b++) {
                uint32_t v = ms[i].rule->additional_bindings[b - 1]->success_status;
                tm->success_status[b] = (uint16_t)(v ? v : ms[i].rule->success_status);
            }
        }
        hm[r->nmethods].name = pt_str_from_cstr(m->path + 1);
        hm[r->nmethods].rule = ms[i].have_spec ? &ms[i].spec : NULL;
        r->nmethods++;
    }
    if (rc == 0) {
        struct pt_httprule_table_opts o = {.field_exists = field_exists, .field_ctx = pool};
        char wh[640];
        snprintf(wh, sizeof(wh), "%s: transcode", where ? where : "");
        r->table = pt_httprule_table_compile(hm, r->nmethods, &o, wh, diag);
        if (!r->table)
            rc = -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (ms[i].have_proto)
            pt_httprule_proto_fini(&ms[i].proto);
        free(ms[i].more);
    }
    free(ms);
    free(hm);
    if (rc != 0) {
        pt_tc_route_free(r);
        return NULL;
    }
    return r;
}

int pt_tc_route_check_options(const Portico__Config__V1__Transcode *tc, const char *where,
                              struct pt_diag *diag)
{
    struct pt_tc_route *r = pt_xcalloc(1, sizeof(*r));
    int rc = compile_options(r, tc, where, diag);
    pt_tc_route_free(r);
    return rc;
}

void pt_tc_route_free(struct pt_tc_route *r)
{
    if (!r)
        return;
    pt_httprule_table_free(r->table);
    for (size_t i = 0; i < r->nmethods; i++)
        free(r->methods[i].success_status);
    free(r->methods);
    for (size_t i = 0; i < r->nforward_headers; i++)
        free((char *)r->forward_headers[i].ptr);
    free(r->forward_headers);
    free((char *)r->status_key.ptr);
    pt_descpool_unref(r->pool);
    pt_tc_live_free(r->live);
    free(r);
}
