#include "core/digest.h"

#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/log.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md; /* fetched once, kept for the process's life */

static void fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void pt_sha256(const void *data, size_t len, unsigned char out[PT_SHA256_LEN])
{
    pthread_once(&once, fetch);
    unsigned int n = 0;
    if (!sha256_md || EVP_Digest(data, len, out, &n, sha256_md, NULL) != 1 || n != PT_SHA256_LEN) {
        static int logged;
        if (!__atomic_exchange_n(&logged, 1, __ATOMIC_RELAXED))
            pt_log_error("SHA-256 is not available from OpenSSL");
        memset(out, 0, PT_SHA256_LEN);
    }
}
