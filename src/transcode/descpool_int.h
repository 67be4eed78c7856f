/*
 * transcode/descpool_int.h - private to descpool*.c: the pool's layout and
 * the build context shared by input handling (descpool.c) and descriptor
 * construction (descpool_build.c).
 */
#ifndef PT_TRANSCODE_DESCPOOL_INT_H
#define PT_TRANSCODE_DESCPOOL_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "transcode/descpool.h"

enum dp_kind { DP_MESSAGE = 1, DP_ENUM, DP_SERVICE, DP_METHOD };

struct dp_sym {
    const char *name; /* fully qualified, no leading dot */
    enum dp_kind kind;
    size_t index; /* into the pool's array of that kind; methods: service index */
    size_t sub;   /* methods: index within the service */
};

/* A message descriptor and its side table, allocated together;
 * desc.reserved1 points at info (how pt_descpool_message_info finds it). */
struct dp_msg {
    ProtobufCMessageDescriptor desc;
    struct pt_descpool_message info;
};

struct pt_descpool {
    atomic_uint refs;
    struct pt_arena arena;
    struct dp_sym *syms; /* sorted by name */
    size_t nsyms;
    struct dp_msg **msgs;
    size_t nmsgs;
    ProtobufCEnumDescriptor **enums;
    size_t nenums;
    struct pt_descpool_service *svcs;
    size_t nsvcs;
};

/* Build-time views of the decoded input (freed after the build). */
struct dp_file {
    const uint8_t *raw;
    size_t len;
    Google__Protobuf__FileDescriptorProto *fd;
    const char *name; /* arena copy of fd->name */
    bool proto3;
    bool skip; /* a duplicate of an earlier file */
};

struct dp_bmsg {
    const Google__Protobuf__DescriptorProto *dp;
    const struct dp_file *file;
    const char *full; /* arena */
};

struct dp_benum {
    const Google__Protobuf__EnumDescriptorProto *ep;
    const struct dp_file *file;
    const char *full; /* arena */
};

struct dp_bsvc {
    const Google__Protobuf__ServiceDescriptorProto *sp;
    const struct dp_file *file;
    const char *full; /* arena */
};

struct dp_build {
    struct pt_descpool *pool;
    struct pt_descpool_limits lim;
    char *err;
    size_t errlen;
    struct dp_file *files;
    size_t nfiles;
    struct dp_bmsg *msgs;
    size_t nmsgs, capmsgs;
    struct dp_benum *enums;
    size_t nenums, capenums;
    struct dp_bsvc *svcs;
    size_t nsvcs, capsvcs;
    size_t nfields, nvalues, nmethods;
};

/* Status: always PT_ERR_INVALID (or PT_ERR_LIMIT for dp_limit), after
 * writing the reason into b->err. */
int dp_fail(struct dp_build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int dp_limit(struct dp_build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Pointer: n zeroed bytes from the pool's arena, or NULL (the caller
 * reports the memory limit). */
void *dp_alloc(struct dp_build *b, size_t n);
/* Pointer: arena copy of s, or NULL at the memory limit. */
char *dp_strdup(struct dp_build *b, const char *s);

/* Pointer: the symbol named `name` (no leading dot), or NULL. */
const struct dp_sym *dp_sym_find(const struct pt_descpool *p, const char *name, size_t len);

/* Steps of descpool_build.c, in order. Status: 0 or PT_ERR_* with b->err. */
int dp_build_enums(struct dp_build *b);
int dp_build_messages(struct dp_build *b);
int dp_build_services(struct dp_build *b);

#endif
