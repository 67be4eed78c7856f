/*
 * ratelimit/key.h - what a rule counts requests by.
 *
 * A rule's key_type ("ip", "header:x-tenant", "ip+route", ...) compiles once
 * into a key spec; per request, pt_rl_key_build() turns the request's
 * inputs into one bounded key string. Sans-I/O: the inputs are plain
 * values (and a header lookup), so the unit tests drive it directly.
 *
 * Key text: one element per part, joined by '|':
 *   global      "g"                     route    "r=<route name>"
 *   ip          "i=<network>/<prefix>"  (IPv4 masked to ipv4_prefix,
 *                                         IPv6 to ipv6_prefix; v4-mapped
 *                                         IPv6 counts as IPv4)
 *   header:<n>  "h=<value>"             api_key  "k=#<hash of the key>"
 *   client_id   "c=<client id>"         user_id  "u=<user id>"
 * A value longer than PT_RL_MAX_VALUE, or with a byte outside '!'..'~', or
 * one of '{', '}', '|', is replaced by '#' and 32 hex digits of its SHA-256
 * (128 bits): keys stay short and printable whatever the client sends, and
 * cannot break out of a Redis hash tag. An API key is always hashed (the
 * secret is never stored). So a key is at most PT_RL_MAX_KEY bytes.
 *
 * Absent inputs: a header, an API key, a client id or a user id the request
 * does not carry makes the rule skip the request (it does not count it
 * under an empty key).
 *
 * Thread: any; a spec is immutable after parsing.
 */
#ifndef PT_RATELIMIT_KEY_H
#define PT_RATELIMIT_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "portico/str.h"

#define PT_RL_MAX_PARTS 4
#define PT_RL_MAX_VALUE 64
/* 4 parts of "x=" + 64 bytes, an address with its prefix, separators. */
#define PT_RL_MAX_KEY 320

enum pt_rl_part_kind {
    PT_RL_PART_GLOBAL = 0,
    PT_RL_PART_ROUTE,
    PT_RL_PART_IP,
    PT_RL_PART_HEADER,
    PT_RL_PART_API_KEY,
    PT_RL_PART_CLIENT_ID,
    PT_RL_PART_USER_ID,
};

struct pt_rl_part {
    enum pt_rl_part_kind kind;
    char header[128]; /* lower-case name, NUL-terminated (HEADER only) */
    size_t header_len;
};

struct pt_rl_keyspec {
    struct pt_rl_part parts[PT_RL_MAX_PARTS];
    unsigned n;
    uint8_t ipv4_prefix; /* 1..32 */
    uint8_t ipv6_prefix; /* 1..128 */
    bool needs_identity; /* a client_id or user_id part */
};

/* Status: 0, or PT_ERR_INVALID for an unknown part, more than
 * PT_RL_MAX_PARTS parts, a bad header name or a prefix out of range. */
int pt_rl_keyspec_parse(const char *key_type, unsigned ipv4_prefix, unsigned ipv6_prefix,
                        struct pt_rl_keyspec *out);

/* One request's inputs. Empty strings mean absent. */
struct pt_rl_inputs {
    const struct sockaddr *addr; /* may be NULL: the ip part is then "i=-" */
    struct pt_str route;
    struct pt_str api_key; /* the raw x-api-key value */
    struct pt_str client_id;
    struct pt_str user_id;
    /* First value of header `name` (lower case); false when absent. */
    bool (*header)(void *ctx, struct pt_str name, struct pt_str *value);
    void *header_ctx;
};

/* Progress: the key's length (1..PT_RL_MAX_KEY) written to buf (which
 * holds PT_RL_MAX_KEY bytes, not NUL-terminated), or 0 when an input the
 * spec needs is absent (the rule does not apply to the request). */
size_t pt_rl_key_build(const struct pt_rl_keyspec *ks, const struct pt_rl_inputs *in, char *buf);

/* Write the 64 lowercase hex digits of SHA-256(data) to hex (65 bytes,
 * NUL-terminated). */
void pt_rl_sha256_hex(const void *data, size_t len, char hex[65]);

#endif
