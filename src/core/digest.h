/*
 * core/digest.h - SHA-256 for the request path.
 *
 * OpenSSL 3's one-shot SHA256() and EVP_Digest(..., EVP_sha256(), ...) look
 * the algorithm up in the provider table on every call (EVP_MD_fetch: a
 * lock and a hash lookup, more work than hashing a short key). pt_sha256
 * fetches the implementation once per process and reuses it.
 *
 * Thread: any.
 */
#ifndef PT_CORE_DIGEST_H
#define PT_CORE_DIGEST_H

#include <stddef.h>

#define PT_SHA256_LEN 32

/* out = SHA-256(data[0..len)). Never fails with OpenSSL's default provider;
 * should it, out is all zeros and the failure is logged once. */
void pt_sha256(const void *data, size_t len, unsigned char out[PT_SHA256_LEN]);

#endif
