/*
 * portico/exchange.h - the protocol-neutral request/response unit.
 *
 * An exchange is one request and its response, whatever protocol the client
 * spoke (an HTTP/1.1 request, an HTTP/2 stream, a gRPC call). Filters see
 * and change it only through these functions.
 *
 * Ownership: the exchange belongs to portico; a filter borrows it for the
 * duration of a hook, and until on_done() for an operation it started while
 * paused. Strings returned here are borrowed until the exchange ends.
 * Memory from pt_exchange_alloc() lives exactly as long as the exchange.
 *
 * Thread: every function must be called on the worker thread that runs the
 * exchange (the thread that called the hook).
 */
#ifndef PORTICO_EXCHANGE_H
#define PORTICO_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "portico/client_cert.h"
#include "portico/errors.h"
#include "portico/str.h"

struct pt_exchange;
struct pt_headers;
struct event_base;

/* --- request ----------------------------------------------------------- */

struct pt_str pt_exchange_method(const struct pt_exchange *x);
/* The normalized path (no query): what was routed and what is forwarded,
 * before strip_prefix. */
struct pt_str pt_exchange_path(const struct pt_exchange *x);
/* The raw query string without '?', empty when there is none. */
struct pt_str pt_exchange_query(const struct pt_exchange *x);
struct pt_str pt_exchange_authority(const struct pt_exchange *x);
/* "http" or "https", as the client connected. */
struct pt_str pt_exchange_scheme(const struct pt_exchange *x);
/* The value of x-request-id once set (the request-id filter sets it). */
struct pt_str pt_exchange_request_id(const struct pt_exchange *x);
/* Set the exchange's request id (copied); the access log, error bodies and
 * the request-id filter's header use it. Status: 0, PT_ERR_LIMIT, or
 * PT_ERR_BAD_REQUEST when id is empty or has bytes not allowed in a field. */
int pt_exchange_set_request_id(struct pt_exchange *x, struct pt_str id);
/* Name of the matched route; empty before routing. */
struct pt_str pt_exchange_route_name(const struct pt_exchange *x);
/* A path parameter captured by the route template ("{user_id}"). */
bool pt_exchange_path_param(const struct pt_exchange *x, struct pt_str name, struct pt_str *value);
/* The client's address as the gateway sees it. */
const struct sockaddr *pt_exchange_client_addr(const struct pt_exchange *x, socklen_t *len);
/* True when the request's content-type is application/grpc[+proto|...]. */
bool pt_exchange_is_grpc(const struct pt_exchange *x);

struct pt_headers *pt_exchange_request_headers(struct pt_exchange *x);

/* --- identity (ABI 1.2) ---------------------------------------------------- */

/*
 * Who the caller is, as far as the filters that ran so far know: empty
 * strings until an authentication step fills them. A route's `auth` step
 * (src/auth) sets the identity after the global filters and before the
 * route's own; on routes without `auth`, the rate limiter fills it from a
 * stored API key when nothing else did.
 *   client_id   the calling application (an API key's client_id, a token's
 *               client id / azp)
 *   user_id     the end user on whose behalf it calls (a token's sub)
 *   tier        its rate-limit tier ("free", "standard", "premium", ...)
 *   credential  what proved it: the API key's name, or the token issuer
 */
struct pt_identity {
    struct pt_str client_id;
    struct pt_str user_id;
    struct pt_str tier;
    struct pt_str credential;
};

/* Pointer, never NULL, borrowed until the identity is set again or the
 * exchange ends. */
const struct pt_identity *pt_exchange_identity(const struct pt_exchange *x);
/* Replace the identity (every string copied): the four fields above, and
 * every attribute and list of ABI 1.4 below is cleared. Status: 0 or
 * PT_ERR_LIMIT. */
int pt_exchange_set_identity(struct pt_exchange *x, const struct pt_identity *id);

/* --- client certificate (ABI 1.3) ------------------------------------------ */

/*
 * The verified certificate the client presented in the TLS handshake of the
 * exchange's connection (portico/client_cert.h): true with *out set, or
 * false with *out NULL when the connection is cleartext, the listener does
 * not ask for certificates, or the client sent none (client_cert: optional).
 * *out is borrowed until the exchange ends; the same object for every
 * exchange of a connection, read once after its handshake.
 */
bool pt_exchange_client_cert(const struct pt_exchange *x, const struct pt_client_cert **out);

/* --- identity, the whole of it (ABI 1.4) ------------------------------------ */

/*
 * Every authentication method (API keys, JWT, token introspection, client
 * certificates) yields the same identity. struct pt_identity above keeps
 * its 1.2 layout (plugins built against 1.2 pass it by pointer), so the
 * rest is reached through these accessors, which can grow without breaking
 * anyone: new attributes and lists are new enum values.
 *
 *   SUBJECT      who is calling: a token's sub; for an API key, its
 *                client_id. Reading it when unset gives user_id, else
 *                client_id.
 *   CLIENT_ID, USER_ID, TIER, CREDENTIAL   the fields of struct pt_identity
 *   CLIENT_NAME  a display name of the client (an API key's client_name)
 *   METHOD       the method that authenticated the caller: "api_key", ...;
 *                empty for an anonymous caller
 *   CLAIMS       the claims as a JSON object text ("" when none): a token's
 *                payload; for an API key {"client_id", "client_name",
 *                "scopes", "tier"}
 *   SCOPES, ROLES  lists of words
 *
 * Strings returned are borrowed until the identity changes or the exchange
 * ends; values given are copied.
 */
enum pt_identity_attr {
    PT_IDENTITY_SUBJECT = 0,
    PT_IDENTITY_CLIENT_ID = 1,
    PT_IDENTITY_CLIENT_NAME = 2,
    PT_IDENTITY_TIER = 3,
    PT_IDENTITY_METHOD = 4,
    PT_IDENTITY_USER_ID = 5,
    PT_IDENTITY_CREDENTIAL = 6,
    PT_IDENTITY_CLAIMS = 7,
};

enum pt_identity_list {
    PT_IDENTITY_SCOPES = 0,
    PT_IDENTITY_ROLES = 1,
};

/* Empty when unset or for a value this ABI does not know. */
struct pt_str pt_exchange_identity_get(const struct pt_exchange *x, enum pt_identity_attr a);
/* Number of items in a list (0 for an unknown list). */
size_t pt_exchange_identity_count(const struct pt_exchange *x, enum pt_identity_list l);
/* Item i of a list; empty when i is out of range. */
struct pt_str pt_exchange_identity_item(const struct pt_exchange *x, enum pt_identity_list l,
                                        size_t i);
/* True when the list holds exactly value (case-sensitive). */
bool pt_exchange_identity_has(const struct pt_exchange *x, enum pt_identity_list l,
                              struct pt_str value);
/* Set one attribute (empty clears it). CLAIMS must be a JSON object's text.
 * Status: 0, PT_ERR_LIMIT, or PT_ERR_INVALID (unknown attribute, CLAIMS not
 * '{'...'}'). */
int pt_exchange_identity_set(struct pt_exchange *x, enum pt_identity_attr a, struct pt_str value);
/* Append to a list. Status: 0, PT_ERR_LIMIT (memory, or more than 256
 * items), PT_ERR_INVALID (unknown list, empty value). */
int pt_exchange_identity_add(struct pt_exchange *x, enum pt_identity_list l, struct pt_str value);

/* --- response (from on_response_head) ----------------------------------- */

int pt_exchange_response_status(const struct pt_exchange *x);
void pt_exchange_set_response_status(struct pt_exchange *x, int status);
struct pt_headers *pt_exchange_response_headers(struct pt_exchange *x);

/* --- headers ------------------------------------------------------------ */

/* Names are compared case-insensitively and stored in lower case. Values
 * added are copied into the exchange's memory. */
size_t pt_headers_count(const struct pt_headers *h);
void pt_headers_at(const struct pt_headers *h, size_t i, struct pt_str *name, struct pt_str *value);
/* First value of name; false when absent. */
bool pt_headers_find(const struct pt_headers *h, struct pt_str name, struct pt_str *value);
/* Status: 0, or PT_ERR_LIMIT when the exchange's memory or header limit is hit,
 * PT_ERR_BAD_REQUEST when name or value has bytes HTTP forbids. */
int pt_headers_add(struct pt_headers *h, struct pt_str name, struct pt_str value);
/* Remove every field called name, then add one. Status as pt_headers_add. */
int pt_headers_set(struct pt_headers *h, struct pt_str name, struct pt_str value);
/* Number of fields removed. */
size_t pt_headers_remove(struct pt_headers *h, struct pt_str name);

/* --- memory and per-exchange state --------------------------------------- */

/* Arena memory freed with the exchange; NULL when the exchange's memory
 * limit is exceeded (reply PT_ERR_LIMIT or similar, do not crash). */
void *pt_exchange_alloc(struct pt_exchange *x, size_t size);
/* Per-exchange state keyed by any stable pointer (normally the instance). */
void *pt_exchange_get_data(const struct pt_exchange *x, const void *key);
/* Status: 0 or PT_ERR_LIMIT. */
int pt_exchange_set_data(struct pt_exchange *x, const void *key, void *data);

/* --- control -------------------------------------------------------------- */

/*
 * Produce a local response instead of forwarding. Allowed until the response
 * head has gone to the client; the hook then returns PT_FILTER_REPLIED.
 * content_type and body are copied. Status: 0 or PT_ERR_INTERNAL when a
 * response has already started.
 */
int pt_exchange_reply(struct pt_exchange *x, int http_status, struct pt_str content_type,
                      struct pt_str body);
/*
 * Reply with an error code: HTTP status and small JSON body for HTTP
 * clients, trailers-only grpc-status / grpc-message for gRPC clients.
 * `detail` (may be empty) is the message shown to the client.
 */
int pt_exchange_reply_error(struct pt_exchange *x, enum pt_err err, struct pt_str detail);
/*
 * Continue a chain that a hook paused. Safe to call from any callback on the
 * exchange's worker; the chain continues after the current callback returns,
 * never inside this call.
 */
void pt_exchange_resume(struct pt_exchange *x);
/* The worker's libevent loop, for filters that start asynchronous I/O. */
struct event_base *pt_exchange_event_base(struct pt_exchange *x);

#endif
