/*
 * fuzz/h1_request.c - the HTTP/1 parser in request mode, fed random bytes in
 * random splits (h1_fuzz.h describes the input layout and the checks).
 */
#include <stddef.h>
#include <stdint.h>

#include "h1_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return h1f_one(PT_H1_REQUEST, data, size);
}
