/*
 * transcode/httprule.h - google.api.http rules: path templates, a compiled
 * matcher table for whole services, and field bindings from the path and
 * the query string. Sans-I/O: bytes and structs in, results out.
 *
 * Flow:
 *
 *   MethodOptions bytes --pt_httprule_proto_load--+
 *                                                 +--> pt_httprule_spec --+
 *   gateway config (plain struct) ----------------+                       |
 *                                                                         v
 *   [{method name, spec | NULL}] ---------------> pt_httprule_table_compile (control thread)
 *                                                                         |
 *   (HTTP method, raw path, raw query) --> pt_httprule_table_match (any worker, read-only table)
 *        --> method index + binding + body/response_body + params[] (field path, value)
 *
 * Template grammar (google/api/http.proto):
 *
 *   Template  = "/" Segments [ Verb ] ;
 *   Segments  = Segment { "/" Segment } ;
 *   Segment   = "*" | "**" | LITERAL | Variable ;
 *   Variable  = "{" FieldPath [ "=" Segments ] "}" ;
 *   FieldPath = IDENT { "." IDENT } ;
 *   Verb      = ":" LITERAL ;
 *
 * IDENT is [A-Za-z_][A-Za-z0-9_]*. LITERAL is one or more URI path
 * characters (unreserved, sub-delims but '*', '@', and %XX escapes); ':' is
 * not allowed in a literal because it starts the verb, a literal may not be
 * a dot segment ("." or "..", also when spelled %2E), and it must decode to
 * valid UTF-8 (inside a variable it becomes part of a value). "/" alone (no
 * segments) is accepted and matches only "/". "{var}" means "{var=*}".
 * "**" must be the last segment (before the verb), whether alone or as the
 * last segment of the last variable. Variables do not nest, a field may be
 * bound once, and two variables may not bind a field and its sub-field.
 * Literals are compared in a canonical form: escapes of unreserved
 * characters decoded, other escapes in upper case, so "%7e" == "~" and
 * "%3a" == "%3A", but "%3A" != ":" (a reserved character and its escape
 * differ, RFC 3986 section 6.2.2).
 *
 * Matching a request path (raw, as received, without the query):
 *   - Every '%' must start a %XX escape, else 400 (PT_ERR_INVALID).
 *   - "/a/b" is the segments "a", "b"; "/" has none; "/a/" has "a" and "".
 *   - The verb: if the last segment contains ':' after its first byte, the
 *     text after the last ':' is the request's verb (like grpc-gateway and
 *     Envoy). Templates with that exact verb are tried first against the
 *     path without ":verb". If none matches, templates without a verb are
 *     tried against the whole path, so "/v1/{name}" binds name="a:b" for
 *     "/v1/a:b". A template with a verb never matches a path without one.
 *     A ':' spelled %3A never starts a verb.
 *   - Precedence, segment by segment from the left: a literal beats a
 *     single-segment match ("*" or a variable; the two are the same shape),
 *     which beats "**". When the path runs out, a template that ends there
 *     beats a "**" that matches zero segments. So for "/v1/x/y",
 *     "/v1/x/{b}" beats "/v1/{a}/y" and "/v1/x/{r=**}" beats "/v1/{a}/y".
 *     Templates with the same HTTP method, the same verb and the same shape
 *     (literals, single matches, "**") are a conflict, reported by compile.
 *   - "*" and single-segment variables need a non-empty segment; "**"
 *     matches zero or more segments, empty ones included.
 *   - No re-normalization: the gateway normalizes the path before routing.
 *     But a dot segment ("." or "..", also as %2E) never matches anything,
 *     so a path that still has one gets 404 rather than binding ".." into a
 *     field whose value a backend might use as a path.
 *   - The HTTP method is compared case-sensitively. Precedence is decided
 *     among the request method's templates; when the path matches only
 *     other methods' templates the answer is PT_ERR_METHOD_NOT_ALLOWED with
 *     the methods that would match (for an Allow header), else
 *     PT_ERR_NO_ROUTE. HEAD is not mapped to GET.
 *
 * Values of path variables (what http.proto says, in our words): a client
 * expanding a variable of exactly one segment ("{var}", "{var=*}",
 * "{var=lit}") escapes every byte outside [-_.~0-9A-Za-z], so the server
 * reverses all of it: every %XX is decoded, and %2F becomes a '/' inside
 * the value without ever splitting the path. A variable of several
 * segments ("{var=**}", or "{var=shelves/SEG}" where SEG is a "*") is
 * expanded keeping '/' as the separator, so the server decodes every
 * escape EXCEPT %2F/%2f, which stay in the value exactly as sent
 * ("a%2Fb/c" binds "a%2Fb/c"). One consequence of that rule: in a
 * multi-segment value "%252F" and "%2F" both arrive as the three
 * characters "%2F". Decoded values must be valid UTF-8 (values are text;
 * bytes fields take base64, which is ASCII). A variable that matched zero
 * segments ("**" at the end) yields no binding.
 *
 * Query parameters (application/x-www-form-urlencoded: '+' is a space,
 * %XX decoded, invalid escapes are 400): "a.b=1" binds the nested field
 * a.b, "x=1&x=2" yields two bindings for x in order, "x" and "x=" bind "".
 * Names must decode to a FieldPath, else 400. A parameter is dropped when
 * its field and a path variable's field are equal or one contains the
 * other (the path wins), or when body is "*" (no query binding at all), or
 * when its field and the body field are equal or one contains the other.
 * Whether a field exists is for whoever applies the bindings.
 *
 * Fallback: a method given without a rule gets "POST /pkg.Service/Method"
 * with body "*" (the gRPC path, JSON body).
 *
 * Threads: compile on the control thread; the table is then immutable and
 * any number of workers may match on it at once.
 */
#ifndef PT_TRANSCODE_HTTPRULE_H
#define PT_TRANSCODE_HTTPRULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/diag.h"
#include "portico/str.h"

/* The field number of the google.api.http extension of MethodOptions. */
#define PT_HTTPRULE_EXTENSION_FIELD 72295728u

/* Hard limits of templates and tables. */
#define PT_HTTPRULE_MAX_TEMPLATE_LEN 4096u
#define PT_HTTPRULE_MAX_TEMPLATE_SEGMENTS 128u
#define PT_HTTPRULE_MAX_VARS 32u
#define PT_HTTPRULE_MAX_FIELD_DEPTH 32u  /* segments of one field path */
#define PT_HTTPRULE_MAX_HTTP_METHODS 64u /* distinct HTTP methods in one table */
#define PT_HTTPRULE_MAX_HTTP_METHOD_LEN 32u

/* Defaults of struct pt_httprule_limits (0 there means these). */
#define PT_HTTPRULE_DEFAULT_MAX_PATH_SEGMENTS 128u
#define PT_HTTPRULE_DEFAULT_MAX_QUERY_PARAMS 128u
#define PT_HTTPRULE_DEFAULT_MAX_VALUE_LEN 8192u
/* max_path_segments is capped here (the matcher recurses once per segment). */
#define PT_HTTPRULE_CAP_MAX_PATH_SEGMENTS 1024u

/* A parse error: 1-based byte column in the parsed text (0 = none) and a
 * static message. */
struct pt_httprule_error {
    uint32_t column;
    const char *message;
};

/* A field path "a.b.c" as its segments. */
struct pt_httprule_field {
    const struct pt_str *seg;
    uint32_t nseg;
};

/* ---- templates (httprule_parse.c) ---- */

enum pt_httprule_seg_kind {
    PT_HTTPRULE_SEG_LITERAL,
    PT_HTTPRULE_SEG_SINGLE, /* "*" or one segment of a variable */
    PT_HTTPRULE_SEG_REST,   /* "**" */
};

struct pt_httprule_seg {
    enum pt_httprule_seg_kind kind;
    struct pt_str literal; /* canonical form; literals only */
};

struct pt_httprule_var {
    struct pt_httprule_field field;
    struct pt_str text; /* "a.b.c" */
    uint32_t first;     /* segments [first, end) of the template */
    uint32_t end;
    bool single; /* exactly one segment, not "**": decoded fully */
};

struct pt_httprule_template {
    struct pt_httprule_seg *segs;
    uint32_t nsegs;
    struct pt_httprule_var *vars;
    uint32_t nvars;
    struct pt_str verb; /* canonical; empty when none */
    bool has_rest;      /* the last segment is "**" */
    void *mem;          /* owns everything above */
};

/*
 * Parse a path template into t (owning copies of what it keeps).
 * Status: 0, or PT_ERR_INVALID with *err set (t then holds nothing).
 */
int pt_httprule_template_parse(struct pt_str src, struct pt_httprule_template *t,
                               struct pt_httprule_error *err);
void pt_httprule_template_fini(struct pt_httprule_template *t);

/*
 * Check that path is a FieldPath (IDENT { "." IDENT }, at most
 * PT_HTTPRULE_MAX_FIELD_DEPTH segments) and count its segments.
 * Status: 0 with *nseg set, or PT_ERR_INVALID with *err set (column within
 * path).
 */
int pt_httprule_field_path_check(struct pt_str path, uint32_t *nseg, struct pt_httprule_error *err);

/* ---- rules ---- */

/*
 * One HTTP rule as the gateway configuration gives it (the plain form of
 * google.api.HttpRule; config's "verb" is the HTTP method here, to keep
 * "verb" for the ":verb" suffix). All strings are borrowed.
 */
struct pt_httprule_spec {
    struct pt_str method;        /* "GET", "PUT", "POST", "DELETE", "PATCH" or a custom kind */
    struct pt_str path;          /* the template */
    struct pt_str body;          /* "" no body, "*" every field not in the path, or a field */
    struct pt_str response_body; /* "" the whole response, or a top-level response field */
    const struct pt_httprule_spec *additional_bindings; /* may not have their own */
    size_t nadditional_bindings;
};

/* The google.api.http option of one method, decoded (httprule_option.c). */
struct pt_httprule_proto {
    struct pt_httprule_spec spec;  /* borrows from msg and more */
    struct pt_httprule_spec *more; /* spec.additional_bindings */
    void *msg;                     /* the unpacked Google__Api__HttpRule */
};

/*
 * Find the google.api.http option (extension field 72295728) in the
 * serialized MethodOptions opts and decode it into p. Several occurrences
 * merge, as protobuf says. Status: 0 (p filled; pt_httprule_proto_fini it),
 * PT_ERR_NOT_FOUND (no such option; p holds nothing), or PT_ERR_INVALID
 * with *err a static message (malformed options, a rule with no pattern, or
 * nested additional_bindings; p holds nothing).
 */
int pt_httprule_proto_load(struct pt_httprule_proto *p, const uint8_t *opts, size_t len,
                           const char **err);
void pt_httprule_proto_fini(struct pt_httprule_proto *p);

/* ---- the matcher table (httprule_match.c) ---- */

enum pt_httprule_field_use {
    PT_HTTPRULE_FIELD_PATH,          /* a path variable (request message) */
    PT_HTTPRULE_FIELD_BODY,          /* body: "field" (request message) */
    PT_HTTPRULE_FIELD_RESPONSE_BODY, /* response_body (response message) */
};

/* Does the method's message have this field, usable this way? Called by
 * compile only; method is the name given in pt_httprule_method. */
typedef bool (*pt_httprule_field_exists_fn)(void *ctx, struct pt_str method,
                                            enum pt_httprule_field_use use,
                                            const struct pt_str *path, size_t n);

struct pt_httprule_limits {
    uint32_t max_path_segments; /* request path segments; 0 = default, capped */
    uint32_t max_query_params;  /* '&'-separated parameters; 0 = default */
    uint32_t max_value_len;     /* bytes of one decoded value or name; 0 = default */
};

/* One gRPC method to route to. */
struct pt_httprule_method {
    struct pt_str name;                  /* "pkg.Service/Method" */
    const struct pt_httprule_spec *rule; /* NULL: POST /pkg.Service/Method, body "*" */
};

struct pt_httprule_table_opts {
    struct pt_httprule_limits limits;
    pt_httprule_field_exists_fn field_exists; /* NULL: every FieldPath is accepted */
    void *field_ctx;
};

struct pt_httprule_table;

/*
 * Compile the rules of methods[0..n) (one service or several) into a
 * table. Every problem goes to diag (where = position prefix, may be NULL;
 * the field is the method name, with ".additional_bindings[i]"): template
 * errors with their column, bad methods, body and response_body, fields
 * the callback rejects, nested additional_bindings, and conflicting
 * templates. Copies what it keeps; opts may be NULL.
 * Pointer: the table, or NULL when anything was wrong.
 */
struct pt_httprule_table *pt_httprule_table_compile(const struct pt_httprule_method *methods,
                                                    size_t n,
                                                    const struct pt_httprule_table_opts *opts,
                                                    const char *where, struct pt_diag *diag);
/* NULL is a no-op. No match may be running on it. */
void pt_httprule_table_free(struct pt_httprule_table *t);

struct pt_httprule_request {
    struct pt_str method; /* HTTP method */
    struct pt_str path;   /* raw, percent-encoded, no query */
    struct pt_str query;  /* raw, without '?'; may be empty */
};

enum pt_httprule_body {
    PT_HTTPRULE_BODY_NONE,
    PT_HTTPRULE_BODY_ALL,   /* body: "*" */
    PT_HTTPRULE_BODY_FIELD, /* body: "field" */
};

/* One field binding: set field to value (the text form; the JSON/proto
 * layer converts it to the field's type and appends for repeated fields). */
struct pt_httprule_param {
    struct pt_httprule_field field;
    struct pt_str value; /* decoded */
    bool from_path;      /* a path variable, else a query parameter */
};

struct pt_httprule_match {
    uint32_t method;           /* index into the methods given to compile */
    struct pt_str method_name; /* its name */
    uint32_t binding;          /* 0 the rule itself, i additional_bindings[i - 1] */
    bool fallback;             /* the POST /pkg.Service/Method route */
    struct pt_str pattern;     /* "GET /v1/{name=**}" for logs */
    enum pt_httprule_body body;
    struct pt_httprule_field body_field;     /* BODY_FIELD only */
    struct pt_httprule_field response_field; /* nseg 0: the whole response */
    struct pt_httprule_param *params;        /* path variables, then the query */
    size_t nparams;
    const struct pt_str *allow; /* PT_ERR_METHOD_NOT_ALLOWED: methods the path has */
    size_t nallow;
    const char *reason; /* static text for PT_ERR_INVALID and PT_ERR_LIMIT */
};

/*
 * Match req against t and bind its path variables and query parameters.
 * Strings in *out borrow from t (names, fields of path variables), from
 * req, or from arena (values, query field paths, allow).
 * Status: 0 (matched); PT_ERR_NO_ROUTE (404); PT_ERR_METHOD_NOT_ALLOWED
 * (405, out->allow set); PT_ERR_INVALID (400: bad escape, invalid UTF-8,
 * bad query name; out->reason); PT_ERR_LIMIT (a limit of the table, or the
 * arena's byte limit; out->reason).
 */
int pt_httprule_table_match(const struct pt_httprule_table *t,
                            const struct pt_httprule_request *req, struct pt_arena *arena,
                            struct pt_httprule_match *out);

#endif
