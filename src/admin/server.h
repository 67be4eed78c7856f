/*
 * admin/server.h - the admin gRPC server (interface; implementation lands
 * from the admin-rpc branch).
 */
#ifndef PT_ADMIN_SERVER_H
#define PT_ADMIN_SERVER_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

struct pt_admin_violation {
    char *field;
    char *description;
};

struct pt_admin_status {
    int code;
    char *message;
    struct pt_admin_violation *violations;
    size_t nviolations;
};

void pt_admin_status_set(struct pt_admin_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pt_admin_status_add_violation(struct pt_admin_status *st, const char *field, const char *fmt,
                                   ...) __attribute__((format(printf, 3, 4)));

/* Frees what set/add_violation allocated; st may be reused after. */
void pt_admin_status_fini(struct pt_admin_status *st);

typedef void pt_admin_unary_fn(void *ctx, const ProtobufCMessage *request,
                               ProtobufCMessage **response, struct pt_admin_status *st);

struct pt_admin_method {
    const char *path;
    const ProtobufCMessageDescriptor *input;
    pt_admin_unary_fn *fn;
};

struct pt_admin_opts {
    const char *address;
    const char *token;
    const char *cert_file, *key_file, *client_ca_file;
};

struct pt_admin_server *pt_admin_server_start(const struct pt_admin_opts *o,
                                              const struct pt_admin_method *methods, size_t n,
                                              void *ctx, char *err, size_t errlen);
void pt_admin_server_set_serving(struct pt_admin_server *s, bool serving);
void pt_admin_server_stop(struct pt_admin_server *s);

#endif
