#include "core/error.h"

#include <stddef.h>

struct err_row {
    int http;
    int grpc;
    const char *text;
    const char *name;
};

static const struct err_row rows[] = {
#define PT_ERR_ROW(name, value, http, grpc, text) [-(value)] = {http, grpc, text, #name},
    PT_ERRORS(PT_ERR_ROW)
#undef PT_ERR_ROW
};

static const struct err_row *row(int err)
{
    if (err < 0 && (size_t)(-err) < sizeof(rows) / sizeof(rows[0]) && rows[-err].text)
        return &rows[-err];
    return &rows[-PT_ERR_INTERNAL];
}

int pt_err_http_status(int err)
{
    return row(err)->http;
}

int pt_err_grpc_status(int err)
{
    return row(err)->grpc;
}

const char *pt_err_text(int err)
{
    return row(err)->text;
}

const char *pt_err_name(int err)
{
    return row(err)->name;
}

const char *pt_grpc_status_name(int code)
{
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if (code < 0 || (size_t)code >= sizeof(names) / sizeof(names[0]))
        return "UNKNOWN";
    return names[code];
}
