/*
 * auth/jws.h - one JWS signature check (RFC 7515/7518) with one key.
 *
 * pt_jws_verify() answers one question: is sig a valid alg signature of
 * the signing input (the ASCII bytes "header.payload" exactly as the token
 * carries them) under key k? It uses OpenSSL 3 directly, on the EVP_PKEY
 * parsed when the key set was built (auth/jwk.h), so no key is parsed per
 * token:
 *
 *   HS256/384/512  HMAC-SHA-2 with the secret; the signature must be the
 *                  full MAC (32/48/64 bytes), compared in constant time
 *                  (CRYPTO_memcmp)
 *   RS256/384/512  RSASSA-PKCS1-v1_5 with SHA-2 (EVP_DigestVerify); the
 *                  signature must be exactly as long as the modulus
 *                  (RFC 8017 8.2.2 step 1)
 *   ES256/384/512  ECDSA with SHA-2 in the JOSE form: r || s, each exactly
 *                  the field size (64/96/132 bytes in all, RFC 7518 3.4);
 *                  any other length (a DER ECDSA-Sig-Value included) is
 *                  invalid. r and s are re-encoded as DER for OpenSSL,
 *                  which refuses r or s of zero or not below the order.
 *
 * It does not choose keys or algorithms: the caller (auth/jwt.c) has
 * already checked that k fits alg (pt_jwk_fits); a key that does not fit
 * is refused here too, as a second line.
 *
 * Thread: any. Keys are only read; OpenSSL's error queue of the calling
 * thread is left empty.
 */
#ifndef PT_AUTH_JWS_H
#define PT_AUTH_JWS_H

#include <stddef.h>

#include "auth/jwk.h"
#include "portico/str.h"

/* No signature of the nine algorithms is longer: an 8192-bit RSA
 * signature (the largest modulus pt_jwk_limits allows). */
#define PT_JWS_MAX_SIG_BYTES 1024u

/* Status: 0 when sig (siglen bytes, already base64url-decoded) is a valid
 * alg signature of input under k; PT_ERR_INVALID when it is not (wrong
 * length, wrong value, k does not fit alg); PT_ERR_NOMEM when OpenSSL
 * could not set up the check. */
int pt_jws_verify(const struct pt_jwk *k, enum pt_jwt_alg alg, struct pt_str input,
                  const unsigned char *sig, size_t siglen);

#endif
