/*
 * filters/request_id/request_id.h - the "request-id" filter type.
 *
 * Gives every request an id (kept from the client when trusted, else a new
 * UUID v4), records it with pt_exchange_set_request_id() for logs and
 * tracing, forwards it upstream in a header and echoes it to the client.
 * README.md in this folder documents the configuration.
 */
#ifndef PT_FILTERS_REQUEST_ID_H
#define PT_FILTERS_REQUEST_ID_H

#include <stdbool.h>
#include <stddef.h>

#include "portico/filter.h"

/* Length of a generated id: a UUID in its 8-4-4-4-12 text form. */
#define PT_REQUEST_ID_UUID_LEN 36u
/* Longest client-supplied id that trust_incoming keeps. */
#define PT_REQUEST_ID_MAX_INCOMING 128u

extern const struct pt_filter_type pt_filters_request_id_type;

/*
 * Write a fresh random UUID v4 (lower-case hex) into out; no NUL is added.
 * Uses the calling thread's generator, seeded from getrandom(2) on the
 * thread's first call only. Thread: any.
 */
void pt_request_id_generate(char out[PT_REQUEST_ID_UUID_LEN]);

/* Is id acceptable as a client-supplied request id: 1..128 bytes of
 * [A-Za-z0-9._:-]? */
bool pt_request_id_incoming_ok(struct pt_str id);

#endif
