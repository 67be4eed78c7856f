/*
 * auth/introspect_wire.h - OAuth 2.0 token introspection (RFC 7662) on the
 * wire: the request (form body, client authentication) and the response
 * (JSON into struct pt_introspection). Pure: no I/O, no clock.
 *
 * Request:  POST, Content-Type: application/x-www-form-urlencoded,
 *           body "token=<t>[&token_type_hint=<h>]",
 *           Authorization: Basic base64(form(client_id) ":" form(secret))
 *           (RFC 6749 §2.3.1: each part form-encoded before base64).
 * Response: a JSON object. `active` must be the JSON literal true for an
 *           active token; anything else (false, missing, "true", 1) means
 *           inactive, and then no other member is looked at. For an active
 *           token the members below must have their RFC types (numbers for
 *           exp/iat/nbf, strings for sub, client_id, username, iss,
 *           token_type; scope a space-separated string, also accepted as an
 *           array of strings; aud a string or an array of strings), or the
 *           response is an error, not an answer. Duplicate member names,
 *           NUL characters and non-object documents are errors too.
 *
 * Limits: at most PT_INTROSPECT_MAX_SCOPES scopes and PT_INTROSPECT_MAX_AUD
 * audiences, NumericDates in [0, 2^53].
 */
#ifndef PT_AUTH_INTROSPECT_WIRE_H
#define PT_AUTH_INTROSPECT_WIRE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/str.h"

#define PT_INTROSPECT_MAX_SCOPES 256
#define PT_INTROSPECT_MAX_AUD 64

/* One introspection answer: immutable once built, refcounted, shareable
 * between threads (the cache hands the same one to every worker). */
struct pt_introspection {
    atomic_uint refs;
    bool active;
    bool has_exp, has_iat, has_nbf;
    int64_t exp, iat, nbf;                               /* seconds since the epoch */
    char *sub, *client_id, *username, *iss, *token_type; /* NULL when absent */
    char **scopes;
    size_t nscopes;
    char **aud;
    size_t naud;
    json_t *claims; /* the whole response object; NULL for a made-up inactive answer */
};

/* Pointer (never NULL): an inactive answer with one reference. */
struct pt_introspection *pt_introspection_new_inactive(void);
struct pt_introspection *pt_introspection_ref(struct pt_introspection *r);
/* NULL is a no-op. Any thread. */
void pt_introspection_unref(struct pt_introspection *r);
/* Has the answer the scope (exact, case-sensitive)? */
bool pt_introspection_has_scope(const struct pt_introspection *r, struct pt_str scope);

/* Status: 0 with *out (one reference), or PT_ERR_UPSTREAM_PROTOCOL with a
 * reason in why: not JSON, not an object, or a member of an active answer
 * with the wrong type. */
int pt_introspection_parse(const char *body, size_t len, struct pt_introspection **out, char *why,
                           size_t why_len);

/* application/x-www-form-urlencoded encoding of in: ALPHA, DIGIT and
 * "*-._" kept, space as '+', every other byte as %XX (upper case). Returns
 * the length; writes at most cap bytes to out (NUL-terminated when room);
 * call with cap 0 to size it (at most 3 * in.len). */
size_t pt_form_encode(struct pt_str in, char *out, size_t cap);

/* Pointer (malloc'd, NUL-terminated): "token=...[&token_type_hint=...]". */
char *pt_introspect_form_body(struct pt_str token, const char *token_type_hint, size_t *len);
/* Pointer (malloc'd): "Basic <base64(form(id):form(secret))>". */
char *pt_introspect_basic_auth(const char *client_id, const char *client_secret);

#endif
