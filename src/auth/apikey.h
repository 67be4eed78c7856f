/*
 * auth/apikey.h - stored API keys: one table per snapshot, one lookup for
 * authentication and rate limiting.
 *
 * The configuration's api_keys (the file store or PostgreSQL, managed with
 * the admin API's CreateApiKey & co.) hold only SHA-256 hashes. A table is
 * compiled from them once per snapshot: an open-addressing hash table
 * indexed by the first bytes of the hash, each entry with its precomputed
 * identity (identity.h). A lookup hashes the presented key, walks one probe
 * sequence and compares every candidate's full 32 bytes with CRYPTO_memcmp,
 * so the time taken depends on the presented key's hash (which the caller
 * already knows) and never on how many leading bytes of a stored hash it
 * guessed.
 *
 * Disabled keys stay in the table so that a refusal can say why in the log
 * (the client only ever hears "invalid API key"); an expired key is one
 * whose expires_at has passed at the time of the lookup. Several keys may
 * name the same client_id: during a rotation both the old and the new key
 * are valid until the old one is disabled, deleted or expires.
 *
 * Revocation: deleting or disabling a key through the admin API compiles a
 * new snapshot, published to every worker within milliseconds; a request
 * keeps the snapshot it started with.
 *
 * Thread: compile/free on the control thread; lookup on any thread.
 */
#ifndef PT_AUTH_APIKEY_H
#define PT_AUTH_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/identity.h"
#include "auth/usage.h"
#include "portico/config/v1/config.pb-c.h"
#include "portico/str.h"

/* A presented key longer than this is refused without hashing it. */
#define PT_AUTH_MAX_API_KEY 1024
/* Tier of a key that names none. */
#define PT_AUTH_DEFAULT_TIER "standard"

struct pt_auth_key {
    unsigned char hash[32];
    bool enabled;
    uint64_t expires_ns; /* wall clock; 0 = never */
    struct pt_auth_identity id;
    struct pt_auth_usage *usage; /* last_used_at record (usage.h) */
};

struct pt_auth_keys {
    struct pt_auth_key *v;
    size_t n;
    uint32_t *slots; /* index + 1 into v; 0 = empty */
    uint32_t mask;   /* slots has mask + 1 entries, a power of two */
};

enum pt_auth_key_status {
    PT_AUTH_KEY_OK = 0,
    PT_AUTH_KEY_UNKNOWN,  /* no stored key has this hash */
    PT_AUTH_KEY_DISABLED, /* enabled: false */
    PT_AUTH_KEY_EXPIRED,  /* expires_at has passed */
    PT_AUTH_KEY_TOO_LONG, /* longer than PT_AUTH_MAX_API_KEY */
};

/* Pointer, never NULL: the table of cfg's api_keys. Entries whose key_hash
 * is not 64 hex digits are skipped (validation rejects them before). */
struct pt_auth_keys *pt_auth_keys_compile(const Portico__Config__V1__Config *cfg);
/* NULL is a no-op. */
void pt_auth_keys_free(struct pt_auth_keys *t);

/* Look up a presented key at now_ns (wall clock). *out is the entry found
 * (also for DISABLED and EXPIRED), else NULL. */
enum pt_auth_key_status pt_auth_keys_lookup(const struct pt_auth_keys *t, struct pt_str presented,
                                            uint64_t now_ns, const struct pt_auth_key **out);

/* The lookup by hash alone (the presented key already hashed). */
const struct pt_auth_key *pt_auth_keys_find_hash(const struct pt_auth_keys *t,
                                                 const unsigned char hash[32]);

/* A short reason for the log. */
const char *pt_auth_key_status_text(enum pt_auth_key_status st);

#endif
