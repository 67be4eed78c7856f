/*
 * transcode/route.h - one route's REST/JSON <-> gRPC transcoding, compiled.
 *
 * A route with `transcode` (config.proto, message Transcode) compiles, on
 * the control thread, into a pt_tc_route: the descriptor pool of its
 * service (one reference), the google.api.http matcher table of the
 * exposed services (config rules, else the methods' annotations, else the
 * POST /pkg.Svc/Method fallback), per-method facts (message types,
 * streaming, success status) and the codec options. Workers then use it
 * read-only, sans-I/O:
 *
 *   HTTP method + path + query ──pt_httprule_table_match──> method, bindings
 *   body JSON + bindings ──pt_tc_request_build──> gRPC request message (wire)
 *   gRPC response message ──pt_tc_response_json──> JSON (or its response_body)
 *   grpc-status, grpc-message, grpc-status-details-bin ──pt_tc_error_json──>
 *        {"code": N, "message": "...", "details": [...]} and an HTTP status
 *
 * The data-plane side (buffering, the upstream call, streaming) is the
 * proxy's (src/proxy/transcode.c).
 *
 * Threads: compile on the control thread (or, for reflection routes, the
 * thread that publishes the pool: route_live.h); everything else on any
 * thread (nothing here keeps state between calls).
 */
#ifndef PT_TRANSCODE_ROUTE_H
#define PT_TRANSCODE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/diag.h"
#include "portico/config/v1/config.pb-c.h"
#include "transcode/descpool.h"
#include "transcode/httprule.h"
#include "transcode/json.h"

enum pt_tc_stream_format {
    PT_TC_STREAM_NDJSON,
    PT_TC_STREAM_SSE,
    PT_TC_STREAM_JSON_ARRAY,
};

/* One gRPC method of a transcoded route. */
struct pt_tc_method {
    const struct pt_descpool_method *m; /* borrowed from the route's pool */
    const ProtobufCMessageDescriptor *in;
    const ProtobufCMessageDescriptor *out;
    struct pt_str grpc_path; /* "/pkg.Svc/Method" */
    /* success_status[binding] (0 the rule, i additional_bindings[i-1]);
     * 0 = 200. */
    uint16_t *success_status;
    uint32_t nbindings;
};

struct pt_tc_route {
    struct pt_descpool *pool; /* one reference */
    struct pt_json_hooks hooks;
    struct pt_httprule_table *table;
    struct pt_tc_method *methods; /* indexed like the table's methods */
    size_t nmethods;
    struct pt_json_options decode;
    struct pt_json_options encode;
    enum pt_tc_stream_format stream_format;
    struct pt_str *forward_headers; /* lower case */
    size_t nforward_headers;
    struct pt_str status_key; /* empty: none (malloc'd) */
    /* Non-NULL: the schema comes from server reflection (route_live.h) and
     * every field above is unset; each request takes the route to use from
     * pt_tc_live_acquire(). Owned (freed with the route). */
    struct pt_tc_live *live;
};

/*
 * Compile tc for a route whose service has pool (borrowed; the route takes
 * its own reference). Every problem goes to diag at where (the route's
 * position): unknown services and methods, bad templates, conflicts,
 * bodies naming no field, bad stream formats and header names.
 * Pointer: the route, or NULL when anything was wrong.
 */
struct pt_tc_route *pt_tc_route_compile(const Portico__Config__V1__Transcode *tc,
                                        struct pt_descpool *pool, const char *where,
                                        struct pt_diag *diag);
/* Status: 0, or -1 with the problems in diag: the parts of tc that need
 * no schema (stream_format, forward_headers, status_metadata_key), for a
 * route whose schema comes later (reflection). */
int pt_tc_route_check_options(const Portico__Config__V1__Transcode *tc, const char *where,
                              struct pt_diag *diag);
/* NULL is a no-op. Frees memory only, so any thread may free a route no
 * one uses any more (the last reference to a reflection state may go on a
 * worker or the reflection thread). */
void pt_tc_route_free(struct pt_tc_route *r);

struct pt_tc_live;
/* Pointer (never NULL): a route that stands for live (taking it over):
 * no table and no pool of its own; see struct pt_tc_route.live. */
struct pt_tc_route *pt_tc_route_new_live(struct pt_tc_live *live);

/* A request that could not be built: what to tell the client. */
struct pt_tc_error {
    int http_status; /* 400, 413 */
    char message[320];
};

/*
 * google.api.HttpBody: when the body goes to a message (body "*") or a
 * field (body "field") of that type, the raw body and content_type become
 * its data and content_type instead of being parsed as JSON; the response
 * side is pt_tc_response_http_body.
 *
 * Build the request message of m->method from body (the whole request
 * body; may be empty) and the bindings of m (path variables, then the
 * query): body JSON per the rule's body ("*", a field, or none), then one
 * wire chunk per binding, appended (protobuf merge: the last scalar wins,
 * repeated fields append, messages merge). Status: 0 with the message in
 * out (appended), or PT_ERR_INVALID / PT_ERR_LIMIT with *err set (nothing
 * to send upstream).
 */
int pt_tc_request_build(const struct pt_tc_route *r, const struct pt_httprule_match *m,
                        struct pt_str body, struct pt_str content_type, struct pt_json_out *out,
                        struct pt_tc_error *err);

/*
 * Append the JSON of a response message of method mi (the whole message,
 * or the rule's response_body field: response_field.nseg > 0) to out.
 * Status: 0, or PT_ERR_INVALID / PT_ERR_LIMIT with err (a message the
 * schema cannot render).
 */
int pt_tc_response_json(const struct pt_tc_route *r, uint32_t mi,
                        const struct pt_httprule_field *response_field, const uint8_t *wire,
                        size_t len, struct pt_json_out *out, struct pt_tc_error *err);

/*
 * The gRPC request body of a call: pt_tc_request_build's message with its
 * 5-byte length prefix; for a client-streaming method, one framed message
 * per non-blank line of body (NDJSON; every line gets the bindings; no
 * line, no message). Status and err as pt_tc_request_build (a line's error
 * names its line number).
 */
int pt_tc_request_frames(const struct pt_tc_route *r, const struct pt_httprule_match *m,
                         struct pt_str body, struct pt_str content_type, struct pt_json_out *out,
                         struct pt_tc_error *err);

/*
 * One line of a client-streaming method's NDJSON body, for callers that
 * stream the body (pt_tc_request_frames is the whole-body form): line is
 * the line without its '\n' (a '\r' before it counts as blank space);
 * lineno (from 1) names it in err. A blank line appends nothing; any other
 * becomes one framed message with m's bindings appended to out. Status:
 * 0, or PT_ERR_INVALID / PT_ERR_LIMIT with err ("line N: ..."; out
 * unchanged).
 */
int pt_tc_request_line_frame(const struct pt_tc_route *r, const struct pt_httprule_match *m,
                             struct pt_str line, uint64_t lineno, struct pt_str content_type,
                             struct pt_json_out *out, struct pt_tc_error *err);

/* Is d google.api.HttpBody (by full name)? */
bool pt_tc_is_http_body(const ProtobufCMessageDescriptor *d);

/*
 * When method mi's response (or its response_field) is a google.api.HttpBody:
 * true, with *content_type and *data pointing into wire (the last
 * occurrence of each, empty when unset). False otherwise, or when the wire
 * does not parse.
 */
bool pt_tc_response_http_body(const struct pt_tc_route *r, uint32_t mi,
                              const struct pt_httprule_field *response_field, const uint8_t *wire,
                              size_t len, struct pt_str *content_type, struct pt_str *data);

/* The HTTP status for a gRPC status code (OK 200, CANCELLED 499, ...;
 * codes out of range are 500). */
int pt_tc_http_status(int grpc_code);
/* The gRPC code for an HTTP error status from a backend that answered
 * without gRPC (gRPC's own mapping: 400 INTERNAL, 401 UNAUTHENTICATED, ...). */
int pt_tc_grpc_code_of_http(int http_status);

/*
 * Append {"code":N,"message":"...","details":[...]} to out: message is the
 * text as given (already percent-decoded), details_b64 the value of
 * grpc-status-details-bin (may be empty): a google.rpc.Status whose Any
 * details are rendered through r's pool when their type is known, else as
 * {"@type": url, "value": base64}. r may be NULL (no pool: the latter
 * form). Never fails: undecodable details are left out.
 */
void pt_tc_error_json(const struct pt_tc_route *r, int code, struct pt_str message,
                      struct pt_str details_b64, struct pt_json_out *out);

/* Append bytes to a pt_json_out (aborts on allocation failure). */
void pt_tc_out_append(struct pt_json_out *out, const void *p, size_t n);
/* Decode percent-encoding of a grpc-message value into buf (cap bytes).
 * Returns the length written. */
size_t pt_tc_grpc_message_decode(struct pt_str in, char *buf, size_t cap);

#endif
