/*
 * auth/identity.h - the caller's identity as authentication methods build
 * it, and the request headers that carry it upstream.
 *
 * Every method yields the same identity (http/exchange.h struct
 * pt_identity_full, the plugin ABI's view): subject, client id and name,
 * tier, credential, method, scopes, roles, and the claims - kept as a
 * jansson object for claim_headers (and, later, ABAC rules) and as compact
 * JSON text for the ABI.
 *
 * An owned identity (struct pt_auth_identity) is built once - an API key's
 * when its snapshot compiles - and lent to every exchange that presents the
 * credential, without copying: the exchange pins the snapshot.
 *
 * Header hygiene: the gateway alone sets the identity headers. Names are
 * compared case-insensitively AND with '-' equal to '_', because CGI-style
 * backends (WSGI, PHP, nginx with underscores_in_headers) read
 * X_Authenticated_User and X-Authenticated-User as the same variable.
 *
 * Thread: build/fini on the control thread; the rest on the exchange's
 * worker.
 */
#ifndef PT_AUTH_IDENTITY_H
#define PT_AUTH_IDENTITY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "http/exchange.h"
#include "portico/str.h"

struct pt_auth_identity {
    struct pt_identity_full view; /* points into the owned strings below */
    char *strings[8];
    struct pt_str *lists[2];
    json_t *claims;    /* owned; NULL when none */
    char *claims_text; /* owned compact JSON, keys sorted */
};

/* Field values of an identity being built; NULL or "" means unset. */
struct pt_auth_identity_spec {
    const char *method;
    const char *subject;
    const char *client_id;
    const char *client_name;
    const char *tier;
    const char *credential;
    const char *user_id;
    char *const *scopes;
    size_t nscopes;
    char *const *roles;
    size_t nroles;
    json_t *claims; /* a JSON object; the identity takes this reference */
};

/* Build *out from spec (strings copied). Never fails (allocation failure
 * aborts); lists are truncated at PT_IDENTITY_MAX_ITEMS. */
void pt_auth_identity_build(struct pt_auth_identity *out, const struct pt_auth_identity_spec *spec);
void pt_auth_identity_fini(struct pt_auth_identity *id);

/*
 * An identity built per request (a verified token's, a certificate's): the
 * fields borrowed for the call, copied into the exchange's memory.
 */
struct pt_auth_id_fields {
    const char *method;
    struct pt_str subject, client_id, client_name, tier, credential, user_id;
    const struct pt_str *scopes;
    size_t nscopes;
    const struct pt_str *roles;
    size_t nroles;
    const json_t *claims; /* unused here: the auth step hands the claims to the
                             exchange (pt_exchange_identity_adopt) */
};

/* Pointer: the identity in exchange memory (every string and list
 * copied, lists cut at PT_IDENTITY_MAX_ITEMS, empty items skipped), or
 * NULL when the exchange's memory limit is reached. */
const struct pt_identity_full *pt_auth_identity_in_exchange(struct pt_exchange *x,
                                                            const struct pt_auth_id_fields *f);

/* Claims (a jansson object) as the exchange's identity keeps them: text
 * made with json_dumpb on first read, json_decref when the exchange ends. */
extern const struct pt_identity_claims_ops pt_auth_claims_ops;

/* The value of a claim named by a dotted path ("realm_access.roles"): the
 * top-level member with exactly that name if there is one, else the walk
 * through nested objects. Pointer (borrowed from claims) or NULL. */
const json_t *pt_auth_claim_at(const json_t *claims, const char *path);

/* Words of a claim: a string is one word (or, with split, its
 * space-separated words), an array contributes its string items. Writes
 * up to max to out (borrowed from claims); returns how many were written. */
size_t pt_auth_claim_words(const json_t *claim, bool split, struct pt_str *out, size_t max);

/* Longest claim header value sent upstream; a longer value is not sent. */
#define PT_AUTH_MAX_CLAIM_HEADER 4096

/*
 * The text of claim `name` of claims for a header: a string as it is, an
 * array of strings joined by single spaces (scopes), a number or boolean as
 * JSON, an object as compact JSON. Progress: true with *out (exchange
 * memory or borrowed from claims), false when the claim is absent, null,
 * too long, or has bytes a header field cannot carry.
 */
bool pt_auth_claim_text(struct pt_exchange *x, const json_t *claims, const char *name,
                        struct pt_str *out);

/* Header names equal as the gateway compares identity headers:
 * case-insensitive, '-' and '_' alike. */
bool pt_auth_header_name_alike(struct pt_str a, struct pt_str b);

/* Remove every request header whose name is alike one of names. Returns
 * the number removed. */
size_t pt_auth_strip_alike(struct pt_headers *h, const struct pt_str *names, size_t n);

#endif
