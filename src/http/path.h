/*
 * http/path.h - request-target splitting and path normalization.
 *
 * Every request's path is normalized exactly once, before routing and before
 * any authorization filter looks at it, and the normalized form is what gets
 * routed AND forwarded upstream. Checking one spelling and forwarding another
 * is how gateways get bypassed ("/admin" denied, "/x/../admin" let through),
 * so there is no "raw path" for anyone above the codecs to use.
 *
 * The normal form:
 *   - starts with '/' (the asterisk-form "*" passes through unchanged);
 *   - %XX of unreserved characters (ALPHA DIGIT - . _ ~) is decoded; every
 *     other %XX stays encoded with upper-case hex, so "%2F" is data, never a
 *     separator, and "%00" stays "%00";
 *   - raw bytes >= 0x80 and the characters " < > \ ^ ` { | } ? are
 *     percent-encoded (a backslash is a separator to some backends);
 *   - raw control bytes, space, DEL, '#' and a malformed '%' are rejected;
 *   - dot segments are removed (RFC 3986 section 5.2.4) after the unreserved
 *     decoding, so "/%2e%2e/" is a dot segment; ".." at the root stays there;
 *   - runs of '/' become one unless keep_duplicate_slashes; a trailing '/'
 *     is kept.
 * Normalizing a normalized path returns it unchanged.
 *
 * Thread: pure functions, any thread.
 */
#ifndef PT_HTTP_PATH_H
#define PT_HTTP_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "portico/str.h"

/* Output capacity that always suffices for an input of n bytes. */
#define PT_PATH_NORMALIZE_CAP(n) ((n)*3 + 1)

struct pt_path_opts {
    bool keep_duplicate_slashes; /* default false: "//" becomes "/" */
};

/*
 * Split a request-target into its parts; the results borrow from target.
 *   origin-form    "/p?q"                     -> path "/p", query "q"
 *   absolute-form  "http(s)://host[:port]/p?q" -> authority "host[:port]",
 *                  path "/p" ("/" when empty), query "q"
 *   asterisk-form  "*"                        -> path "*"
 * authority is empty unless the target is in absolute-form. query.ptr is
 * NULL when the target has no '?', so "/p?" and "/p" stay distinguishable.
 * Control bytes, space, DEL and '#' anywhere in the target are rejected, and
 * so is userinfo ("user@host") in the authority.
 * Status: 0 or PT_ERR_BAD_REQUEST.
 */
int pt_http_target_parse(struct pt_str target, struct pt_str *authority, struct pt_str *path,
                         struct pt_str *query);

/*
 * Normalize a path (no query) into out, which is NUL-terminated as a
 * convenience; *out_len excludes the NUL. opts may be NULL (defaults).
 * Status: 0, PT_ERR_BAD_REQUEST for a path that is not acceptable, or
 * PT_ERR_LIMIT when cap is too small (PT_PATH_NORMALIZE_CAP(in.len) always
 * suffices).
 */
int pt_path_normalize(struct pt_str in, char *out, size_t cap, size_t *out_len,
                      const struct pt_path_opts *opts);

#endif
