/*
 * core/error.h - the error table: each PT_ERR_* code (portico/errors.h) with
 * its HTTP status, gRPC status and text.
 */
#ifndef PT_CORE_ERROR_H
#define PT_CORE_ERROR_H

#include "portico/errors.h"

/* For any negative code; unknown codes map to PT_ERR_INTERNAL's row. */
int pt_err_http_status(int err);
int pt_err_grpc_status(int err);
const char *pt_err_text(int err);
const char *pt_err_name(int err);

/* Canonical gRPC status code names ("UNAVAILABLE"), "UNKNOWN" when out of range. */
const char *pt_grpc_status_name(int code);

#endif
