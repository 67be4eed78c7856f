/*
 * transcode/descpool.h - protobuf-c descriptors built at run time.
 *
 * A descriptor pool turns FileDescriptorProtos - a serialized
 * FileDescriptorSet (`protoc --include_imports --descriptor_set_out`) or
 * the list of serialized FileDescriptorProtos a gRPC server-reflection
 * answer carries - into the descriptors libprotobuf-c's pack/unpack
 * machinery runs on, so any message of any service can be packed and
 * unpacked without generated code:
 *
 *   set bytes ──split──┐
 *                      ├─> file bytes ─unpack─> FileDescriptorProto ─┐
 *   reflection list ───┘      (any order; duplicates of the same     │
 *                              file collapse)                        v
 *        symbols (messages, enums, services, methods) ─resolve─> pool:
 *          ProtobufCMessageDescriptor  (layouts like protoc-c's structs)
 *          ProtobufCEnumDescriptor / ProtobufCServiceDescriptor
 *          + side tables (json_name, maps, proto3 optional, method options)
 *
 * Descriptors match what protoc-c 1.4 generates for the same .proto
 * (same field order, labels, flags, offsets, sizeof_message, sorted name
 * and number tables), so a message unpacked with a pool descriptor has
 * the memory layout of the generated struct. Differences, on purpose:
 *  - message_init is NULL (see "Initialising messages" below);
 *  - oneof members carry no default_value (libprotobuf-c's generic init
 *    would otherwise write one member's default into the shared union);
 *  - proto2 enum fields without an explicit default get the enum's first
 *    value as default_value (generated code puts it in its INIT macro);
 *  - proto3 `optional` (which protoc-c 1.4 cannot generate) is laid out
 *    like proto2 optional: LABEL_OPTIONAL, has_ flag before scalars.
 *
 * Memory and ownership: a pool is one arena holding every descriptor,
 * name and side table; nothing points into the caller's input bytes after
 * the build. Every pointer a lookup returns is borrowed from the pool and
 * valid while the caller holds a reference. Pools are refcounted:
 * pt_descpool_new_*() return one reference, pt_descpool_ref() adds one,
 * pt_descpool_unref() drops one and frees the pool at zero. Messages a
 * caller unpacks with pool descriptors belong to the caller and must be
 * freed (protobuf_c_message_free_unpacked) before the last unref.
 *
 * Threads: a pool is immutable once built; any thread may read it and
 * ref/unref it (the count is atomic). Building runs on the calling thread
 * (the control thread, at configuration or reflection time), never on a
 * worker's hot path.
 *
 * Initialising messages: protobuf-c's ProtobufCMessageInit takes only the
 * message pointer, so one generic C function cannot know which descriptor
 * it initialises. Pool descriptors therefore set message_init = NULL;
 * protobuf_c_message_unpack() then uses libprotobuf-c's own generic
 * initialiser (zero the struct, set base.descriptor, copy each non-repeated
 * field's default_value), and callers that build messages themselves use
 * pt_descpool_message_init(), which does the same. Never call
 * protobuf_c_message_init() on a pool descriptor: it calls message_init
 * unconditionally.
 *
 * Not supported: proto2 groups (a file declaring a group field is rejected,
 * naming the field - libprotobuf-c cannot pack them either); extensions
 * (declarations are ignored; extension fields on the wire stay unknown
 * fields and are packed back unchanged). Options other than packed,
 * deprecated, map_entry and MethodOptions (kept raw) are ignored.
 *
 * protobuf_c_message_unpack() recurses once per nested message without a
 * bound: check untrusted bytes with pt_descpool_check_depth() first.
 *
 * Side tables: a pool message descriptor's reserved1 points at its
 * struct pt_descpool_message (pt_descpool_message_info() checks the back
 * pointer, so generated descriptors - reserved1 NULL - are told apart).
 * libprotobuf-c 1.4 behaviour callers meet with pool and generated
 * descriptors alike: proto3 implicit-presence floats and doubles equal to
 * zero (-0.0 included) are not sent; an unknown length-delimited field's
 * data keeps its length prefix.
 */
#ifndef PT_TRANSCODE_DESCPOOL_H
#define PT_TRANSCODE_DESCPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "portico/str.h"

/* Bounds on what a pool accepts; 0 in any field means its default. */
struct pt_descpool_limits {
    size_t max_bytes;       /* serialized input, all files: 32 MiB */
    size_t max_files;       /* 4096 */
    size_t max_messages;    /* message types, nested and map entries included: 65536 */
    size_t max_fields;      /* fields of all messages: 262144 */
    size_t max_enum_values; /* values of all enums: 262144 */
    size_t max_methods;     /* methods of all services: 65536 */
    size_t max_depth;       /* nesting of message declarations: 32 */
    size_t max_memory;      /* the pool's arena: 256 MiB */
};
/* The input is also scanned before it is decoded, so hostile bytes cannot
 * make the decoder allocate far more than the counts above allow: the
 * scan admits 4 length-delimited elements per allowed message, field,
 * enum value and method, plus 64 per file. */

#define PT_DESCPOOL_DEFAULT_MAX_BYTES (32u << 20)
#define PT_DESCPOOL_DEFAULT_MAX_FILES 4096u
#define PT_DESCPOOL_DEFAULT_MAX_MESSAGES 65536u
#define PT_DESCPOOL_DEFAULT_MAX_FIELDS (1u << 18)
#define PT_DESCPOOL_DEFAULT_MAX_ENUM_VALUES (1u << 18)
#define PT_DESCPOOL_DEFAULT_MAX_METHODS 65536u
#define PT_DESCPOOL_DEFAULT_MAX_DEPTH 32u
#define PT_DESCPOOL_DEFAULT_MAX_MEMORY (256u << 20)

struct pt_descpool;

/* What protobuf-c's field descriptor lacks, for one field of a pool message. */
struct pt_descpool_field {
    const ProtobufCFieldDescriptor *field;     /* the field */
    const ProtobufCMessageDescriptor *message; /* the message declaring it */
    const char *json_name; /* FieldDescriptorProto.json_name, else lowerCamelCase */
    int proto_type;        /* FieldDescriptorProto.Type as declared (1 DOUBLE .. 18 SINT64) */
    int oneof_index;       /* into pt_descpool_message.oneofs; -1 when not in a real oneof */
    bool proto3_optional;  /* `optional` in a proto3 file (its synthetic oneof is hidden) */
    bool is_map;           /* a map<K,V>: repeated entry messages, see map_key/map_value */
    const ProtobufCFieldDescriptor *map_key;   /* the entry's field 1, when is_map */
    const ProtobufCFieldDescriptor *map_value; /* the entry's field 2, when is_map */
};

/* A real oneof (proto3 optional's synthetic oneofs are not listed). */
struct pt_descpool_oneof {
    const char *name;
    unsigned case_offset; /* of the uint32_t case field: the set member's number, 0 = none */
    size_t n_fields;
    const ProtobufCFieldDescriptor *const *fields; /* declaration order */
};

struct pt_descpool_message {
    const ProtobufCMessageDescriptor *desc;
    const struct pt_descpool *pool;         /* the owner (for Any: find the packed type) */
    const char *file;                       /* the .proto that declares it */
    bool proto3;                            /* declared in a proto3 file */
    bool map_entry;                         /* a map's synthesized entry type */
    const struct pt_descpool_field *fields; /* parallel to desc->fields (number order) */
    size_t n_oneofs;
    const struct pt_descpool_oneof *oneofs; /* declaration order */
};

struct pt_descpool_method {
    const ProtobufCMethodDescriptor *desc; /* name, input, output */
    const ProtobufCServiceDescriptor *service;
    const char *full_name; /* "pkg.Svc.Method" */
    const char *path;      /* "/pkg.Svc/Method", the gRPC :path */
    bool client_streaming;
    bool server_streaming;
    /* The method's serialized MethodOptions (re-encoded by libprotobuf-c:
     * known fields, then unknown ones in input order; the google.api.http
     * rule is the unknown field 72295728), NULL/0 when it has none. */
    const uint8_t *options;
    size_t options_len;
};

struct pt_descpool_service {
    const ProtobufCServiceDescriptor *desc;
    const char *file;
    const struct pt_descpool_method *methods; /* desc->n_methods, declaration order */
};

/* Fill l with the defaults above. */
void pt_descpool_limits_default(struct pt_descpool_limits *l);

/*
 * Pointer: a new pool (one reference) built from a serialized
 * FileDescriptorSet, or NULL with a one-line reason in err (a missing
 * import, an unresolved type name, a duplicate symbol, malformed bytes, a
 * limit). lim may be NULL (defaults). The input is not kept.
 */
struct pt_descpool *pt_descpool_new_from_set(const uint8_t *set, size_t len,
                                             const struct pt_descpool_limits *lim, char *err,
                                             size_t errlen);
/* Pointer: the same from n serialized FileDescriptorProtos in any order
 * (a reflection answer). The same file given twice with the same bytes
 * counts once; with different bytes it is an error. */
struct pt_descpool *pt_descpool_new_from_files(const struct pt_str *files, size_t n,
                                               const struct pt_descpool_limits *lim, char *err,
                                               size_t errlen);

/* Add a reference; returns p. Any thread. */
struct pt_descpool *pt_descpool_ref(struct pt_descpool *p);
/* Drop a reference; the last one frees the pool. NULL is a no-op. */
void pt_descpool_unref(struct pt_descpool *p);

/*
 * Lookups by fully-qualified name ("pkg.Outer.Inner"; a leading '.' is
 * accepted). Pointer, borrowed from the pool; NULL when not found.
 * Methods: "pkg.Svc.Method", "pkg.Svc/Method" or "/pkg.Svc/Method".
 */
const ProtobufCMessageDescriptor *pt_descpool_find_message(const struct pt_descpool *p,
                                                           struct pt_str name);
const ProtobufCEnumDescriptor *pt_descpool_find_enum(const struct pt_descpool *p,
                                                     struct pt_str name);
const struct pt_descpool_service *pt_descpool_find_service(const struct pt_descpool *p,
                                                           struct pt_str name);
const struct pt_descpool_method *pt_descpool_find_method(const struct pt_descpool *p,
                                                         struct pt_str name);

/* Everything the pool holds, in input order (files) and declaration order
 * within a file; nested messages follow their parent. */
size_t pt_descpool_message_count(const struct pt_descpool *p);
const struct pt_descpool_message *pt_descpool_message_at(const struct pt_descpool *p, size_t i);
size_t pt_descpool_enum_count(const struct pt_descpool *p);
const ProtobufCEnumDescriptor *pt_descpool_enum_at(const struct pt_descpool *p, size_t i);
size_t pt_descpool_service_count(const struct pt_descpool *p);
const struct pt_descpool_service *pt_descpool_service_at(const struct pt_descpool *p, size_t i);

/* Pointer: the side table of a pool descriptor; NULL for a descriptor not
 * built by a pool (generated code), so callers can handle both. */
const struct pt_descpool_message *pt_descpool_message_info(const ProtobufCMessageDescriptor *d);
const struct pt_descpool_field *pt_descpool_field_info(const ProtobufCMessageDescriptor *d,
                                                       const ProtobufCFieldDescriptor *f);

/*
 * Initialise msg (d->sizeof_message bytes, caller's storage) as generated
 * code's INIT would: zero, base.descriptor = d, then each non-repeated
 * field's default_value. Works for generated descriptors too (it calls
 * their message_init).
 */
void pt_descpool_message_init(const ProtobufCMessageDescriptor *d, void *msg);

/*
 * Status: 0 when buf is well-formed protobuf wire format whose messages,
 * read as type d, nest at most max_depth deep (d itself is depth 1);
 * PT_ERR_LIMIT when they nest deeper; PT_ERR_INVALID when the bytes do not
 * parse (a truncated varint or length). Unknown fields are skipped without
 * looking inside. Run it before protobuf_c_message_unpack() on untrusted
 * bytes: unpack's recursion has no bound of its own.
 */
int pt_descpool_check_depth(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                            size_t max_depth);

#endif
