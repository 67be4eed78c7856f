/*
 * fuzz/h1_response.c - the HTTP/1 parser in response mode, fed random bytes in
 * random splits (h1_fuzz.h describes the input layout and the checks). The
 * input also says which responses answer a HEAD request.
 */
#include <stddef.h>
#include <stdint.h>

#include "h1_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return h1f_one(PT_H1_RESPONSE, data, size);
}
