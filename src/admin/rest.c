/*
 * admin/rest.c - the admin API as REST/JSON through the transcoder
 * (see rest.h).
 */
#include "admin/rest.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/log.h"
#include "http/path.h"
#include "portico/errors.h"
#include "transcode/route.h"

extern const unsigned char pt_descriptor_set[];
extern const size_t pt_descriptor_set_len;

#define ADMIN_SERVICE "portico.admin.v1.Admin"
/* Per-request scratch (bindings, normalized path): far above any admin
 * path, far below anything that matters. */
#define REQUEST_ARENA_LIMIT (256u * 1024u)

struct pt_admin_rest {
    struct pt_descpool *pool;
    struct pt_tc_route *route;
    /* handler of route->methods[i], NULL when the server has none */
    const struct pt_admin_method **handlers;
    pt_admin_rest_call_fn *call;
    void *call_ctx;
    const char *token;
};

struct pt_admin_rest *pt_admin_rest_new(const struct pt_admin_method *methods, size_t n,
                                        pt_admin_rest_call_fn *call, void *call_ctx,
                                        const char *token, char *err, size_t errlen)
{
    struct pt_descpool *pool =
        pt_descpool_new_from_set(pt_descriptor_set, pt_descriptor_set_len, NULL, err, errlen);
    if (!pool)
        return NULL;
    char *services[] = {ADMIN_SERVICE};
    Portico__Config__V1__Transcode tc = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    tc.n_services = 1;
    tc.services = services;
    struct pt_diag diag;
    pt_diag_init(&diag);
    struct pt_tc_route *route = pt_tc_route_compile(&tc, pool, "admin", &diag);
    pt_descpool_unref(pool); /* the route holds its own reference */
    if (!route) {
        snprintf(err, errlen, "admin REST table: %s", pt_diag_text(&diag));
        pt_diag_fini(&diag);
        return NULL;
    }
    pt_diag_fini(&diag);

    struct pt_admin_rest *r = pt_xcalloc(1, sizeof(*r));
    r->pool = route->pool;
    r->route = route;
    r->call = call;
    r->call_ctx = call_ctx;
    r->token = token && token[0] ? token : NULL;
    r->handlers = pt_xcalloc(route->nmethods ? route->nmethods : 1, sizeof(*r->handlers));
    for (size_t i = 0; i < route->nmethods; i++) {
        struct pt_str path = route->methods[i].grpc_path;
        for (size_t k = 0; k < n; k++)
            if (strlen(methods[k].path) == path.len &&
                memcmp(methods[k].path, path.ptr, path.len) == 0)
                r->handlers[i] = &methods[k];
    }
    return r;
}

void pt_admin_rest_free(struct pt_admin_rest *r)
{
    if (!r)
        return;
    pt_tc_route_free(r->route);
    free(r->handlers);
    free(r);
}

/* ---- answers ---- */

static void reply_error(struct pt_admin_rest *r, struct pt_admin_rest_response *resp, int code,
                        struct pt_str message, struct pt_str details_b64)
{
    resp->status = pt_tc_http_status(code);
    resp->body.len = 0;
    pt_tc_error_json(r->route, code, message, details_b64, &resp->body);
}

static void reply_status(struct pt_admin_rest *r, struct pt_admin_rest_response *resp,
                         const struct pt_admin_status *st)
{
    size_t dlen = 0;
    uint8_t *details = pt_admin_status_details_pack(st, &dlen);
    char *b64 = NULL;
    size_t blen = 0;
    if (details) {
        b64 = pt_xmalloc(4 * ((dlen + 2) / 3) + 1);
        blen = (size_t)EVP_EncodeBlock((unsigned char *)b64, details, (int)dlen);
    }
    const char *msg = st->message ? st->message : "";
    reply_error(r, resp, st->code, pt_str_from_cstr(msg), (struct pt_str){b64, blen});
    free(b64);
    free(details);
}

static bool token_ok(const struct pt_admin_rest *r, const struct pt_admin_rest_request *req)
{
    if (!r->token)
        return true;
    if (req->nauthorization != 1)
        return false;
    return pt_admin_token_matches(r->token, req->authorization.ptr, req->authorization.len);
}

static void set_allow(struct pt_admin_rest_response *resp, const struct pt_httprule_match *m)
{
    size_t k = 0;
    for (size_t i = 0; i < m->nallow; i++) {
        if (k + m->allow[i].len + 3 > sizeof(resp->allow))
            break;
        if (i) {
            memcpy(resp->allow + k, ", ", 2);
            k += 2;
        }
        memcpy(resp->allow + k, m->allow[i].ptr, m->allow[i].len);
        k += m->allow[i].len;
    }
    resp->allow[k] = '\0';
}

/* Decode wire into method mi's request type, call its handler, answer. */
static void call_method(struct pt_admin_rest *r, uint32_t mi, const struct pt_httprule_match *m,
                        const struct pt_json_out *wire, struct pt_admin_rest_response *resp)
{
    const struct pt_admin_method *h = r->handlers[mi];
    if (!h) {
        reply_error(r, resp, PT_ADMIN_UNIMPLEMENTED,
                    PT_STR("this admin server has no handler for the method"), PT_STR_NULL);
        return;
    }
    ProtobufCMessage *req =
        protobuf_c_message_unpack(h->input, NULL, wire->len, (const uint8_t *)wire->data);
    if (!req) {
        reply_error(r, resp, PT_ADMIN_INVALID_ARGUMENT, PT_STR("request message does not parse"),
                    PT_STR_NULL);
        return;
    }
    ProtobufCMessage *out = NULL;
    struct pt_admin_status st = {0};
    r->call(r->call_ctx, h, req, &out, &st);
    protobuf_c_message_free_unpacked(req, NULL);
    if (!out || st.code != 0) {
        if (st.code == 0)
            pt_admin_status_set(&st, PT_ADMIN_INTERNAL, "handler returned no response");
        if (out)
            protobuf_c_message_free_unpacked(out, NULL);
        reply_status(r, resp, &st);
        pt_admin_status_fini(&st);
        return;
    }
    size_t len = protobuf_c_message_get_packed_size(out);
    uint8_t *buf = pt_xmalloc(len ? len : 1);
    protobuf_c_message_pack(out, buf);
    protobuf_c_message_free_unpacked(out, NULL);
    struct pt_tc_error err;
    memset(&err, 0, sizeof(err));
    resp->body.len = 0;
    if (pt_tc_response_json(r->route, mi, &m->response_field, buf, len, &resp->body, &err) != 0) {
        pt_log_error("admin REST: %s answer cannot be rendered as JSON: %s", h->path, err.message);
        reply_error(r, resp, PT_ADMIN_INTERNAL, pt_str_from_cstr(err.message), PT_STR_NULL);
    } else {
        uint16_t success = r->route->methods[mi].success_status
                               ? r->route->methods[mi].success_status[m->binding]
                               : 0;
        resp->status = success ? success : 200;
    }
    free(buf);
}

void pt_admin_rest_handle(struct pt_admin_rest *r, const struct pt_admin_rest_request *req,
                          struct pt_admin_rest_response *resp)
{
    struct pt_arena arena;
    pt_arena_init(&arena, NULL, REQUEST_ARENA_LIMIT);
    resp->allow[0] = '\0';
    resp->unauthenticated = false;

    struct pt_str authority, path, query;
    char *norm = NULL;
    size_t nlen = 0;
    if (pt_http_target_parse(req->target, &authority, &path, &query) != 0 || path.len == 0 ||
        path.ptr[0] != '/' || !(norm = pt_arena_alloc(&arena, PT_PATH_NORMALIZE_CAP(path.len))) ||
        pt_path_normalize(path, norm, PT_PATH_NORMALIZE_CAP(path.len), &nlen, NULL) != 0) {
        reply_error(r, resp, PT_ADMIN_INVALID_ARGUMENT, PT_STR("malformed request target"),
                    PT_STR_NULL);
        pt_arena_fini(&arena);
        return;
    }
    struct pt_httprule_request hr = {
        req->method, {norm, nlen}, query.ptr ? query : (struct pt_str){"", 0}};
    struct pt_httprule_match m;
    memset(&m, 0, sizeof(m));
    int rc = pt_httprule_table_match(r->route->table, &hr, &arena, &m);
    /* The token is checked before anything about the request is told,
     * except that a path is not an admin path at all. */
    if (rc != PT_ERR_NO_ROUTE && !token_ok(r, req)) {
        resp->unauthenticated = true;
        reply_error(r, resp, PT_ADMIN_UNAUTHENTICATED,
                    PT_STR("missing or invalid authorization bearer token"), PT_STR_NULL);
    } else if (rc == PT_ERR_METHOD_NOT_ALLOWED) {
        set_allow(resp, &m);
        reply_error(r, resp, PT_ADMIN_UNIMPLEMENTED, PT_STR("method not allowed"), PT_STR_NULL);
        resp->status = 405;
    } else if (rc == PT_ERR_NO_ROUTE) {
        reply_error(r, resp, PT_ADMIN_NOT_FOUND, PT_STR("no admin method matches this path"),
                    PT_STR_NULL);
    } else if (rc != 0) {
        reply_error(r, resp, PT_ADMIN_INVALID_ARGUMENT,
                    pt_str_from_cstr(m.reason ? m.reason : "bad path"), PT_STR_NULL);
    } else {
        struct pt_json_out wire = {0};
        struct pt_tc_error err;
        memset(&err, 0, sizeof(err));
        if (pt_tc_request_build(r->route, &m, req->body, req->content_type, &wire, &err) != 0) {
            reply_error(r, resp, PT_ADMIN_INVALID_ARGUMENT, pt_str_from_cstr(err.message),
                        PT_STR_NULL);
            if (err.http_status == 413)
                resp->status = 413;
        } else {
            call_method(r, m.method, &m, &wire, resp);
        }
        pt_json_out_fini(&wire);
    }
    pt_arena_fini(&arena);
}
