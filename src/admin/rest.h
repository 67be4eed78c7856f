/*
 * admin/rest.h - the admin API as REST/JSON: the Admin service's own
 * google.api.http annotations, served through the transcoder (sans I/O).
 *
 * The table is compiled once, from the FileDescriptorSet the binary
 * carries, by the same code that compiles a transcoded route
 * (transcode/route.h): the annotations of portico.admin.v1.Admin give the
 * paths ("POST /admin/routes", "GET /admin/routes/{route_id}", ...); a
 * method without one answers "POST /portico.admin.v1.Admin/<Method>".
 * One request:
 *
 *   method + target ──path normalized──> pt_httprule_table_match ──> method, bindings
 *     (404 / 405 + Allow / 400 as {"code","message"} JSON)
 *   bearer token check (when the server has a token) ──> 401 + WWW-Authenticate
 *   JSON body + bindings ──pt_tc_request_build──> wire ──unpack──> request message
 *   call (the server's handler, one call at a time) ──> response message
 *   ──pack──pt_tc_response_json──> 200 JSON, or the status as
 *   {"code","message","details":[google.rpc.BadRequest ...]} with its HTTP status
 *
 * The connection side (HTTP/1.1 parsing, TLS, keep-alive) is front.c's.
 *
 * Thread: new/free on one thread; handle may run on any thread, one call
 * at a time per rest object (it is read-only except through `call`).
 */
#ifndef PT_ADMIN_REST_H
#define PT_ADMIN_REST_H

#include <stdbool.h>
#include <stddef.h>

#include "admin/server.h"
#include "portico/str.h"
#include "transcode/json.h"

/* Runs method m's handler for req (the server serializes handler calls).
 * Same contract as pt_admin_unary_fn. */
typedef void pt_admin_rest_call_fn(void *ctx, const struct pt_admin_method *m,
                                   const ProtobufCMessage *req, ProtobufCMessage **resp,
                                   struct pt_admin_status *st);

struct pt_admin_rest_request {
    struct pt_str method;        /* "GET" */
    struct pt_str target;        /* request-target as sent: "/admin/routes?page_size=2" */
    struct pt_str content_type;  /* may be empty */
    struct pt_str authorization; /* may be empty */
    int nauthorization;          /* Authorization fields sent (more than one: refused) */
    struct pt_str body;          /* the whole body; may be empty */
};

struct pt_admin_rest_response {
    int status;              /* HTTP status */
    struct pt_json_out body; /* JSON; pt_json_out_fini() when done */
    char allow[96];          /* 405: the Allow header's value, else "" */
    bool unauthenticated;    /* 401: send WWW-Authenticate */
};

struct pt_admin_rest;

/* Pointer: the table, or NULL with a reason in err. methods, call_ctx and
 * token are borrowed until pt_admin_rest_free(); token NULL or "" means
 * none is required. */
struct pt_admin_rest *pt_admin_rest_new(const struct pt_admin_method *methods, size_t n,
                                        pt_admin_rest_call_fn *call, void *call_ctx,
                                        const char *token, char *err, size_t errlen);
void pt_admin_rest_free(struct pt_admin_rest *r); /* NULL ok */

/* Answer one request into *resp (zeroed by the caller). Never fails:
 * every problem is an HTTP error status with a JSON body. */
void pt_admin_rest_handle(struct pt_admin_rest *r, const struct pt_admin_rest_request *req,
                          struct pt_admin_rest_response *resp);

#endif
