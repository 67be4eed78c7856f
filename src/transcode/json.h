/*
 * transcode/json.h - the proto3 JSON mapping, directly between JSON text and
 * protobuf wire bytes.
 *
 * Sans-I/O and stateless: each call takes the whole input (the caller caps
 * its size) and appends the whole output to a growable buffer; nothing is
 * kept between calls, so any thread may call at any time. No message structs
 * are built: the schema is any valid ProtobufCMessageDescriptor (protoc-c
 * generated, or built at run time by the descriptor pool), read field by
 * field while the bytes stream through.
 *
 *   pt_json_decode:  JSON text  --tokenizer + descriptor-->  wire bytes
 *   pt_json_encode:  wire bytes --field index + descriptor--> JSON text
 *
 * What protobuf-c descriptors do not carry (json_name, whether a repeated
 * message field is a map, other message types for google.protobuf.Any)
 * comes from struct pt_json_hooks; every hook is optional.
 *
 * Behaviour follows protobuf's json_format (docs/transcoding.md, "JSON
 * mapping", lists every rule and the few deliberate differences). On error
 * nothing is appended (out->len is restored) and err->message names the JSON
 * path of the offending value, e.g. "items[2].price: expected a number, got
 * string".
 *
 * Schema requirements (both hold for protoc-c output and for
 * libprotobuf-c's own pack/unpack): fields[] sorted by number; oneof members
 * flagged PROTOBUF_C_FIELD_FLAG_ONEOF and sharing one quantifier_offset per
 * oneof; explicit presence (proto2 optional, proto3 `optional`) labelled
 * PROTOBUF_C_LABEL_OPTIONAL; proto3 implicit presence PROTOBUF_C_LABEL_NONE;
 * enum values_by_name sorted by strcmp; enum values[] sorted by number.
 */
#ifndef PT_TRANSCODE_JSON_H
#define PT_TRANSCODE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "portico/str.h"

#define PT_JSON_DEFAULT_MAX_DEPTH 64u
#define PT_JSON_MAX_DEPTH_CAP 512u /* larger max_depth values are clamped (C stack) */
#define PT_JSON_DEFAULT_MAX_OUTPUT (64u * 1024u * 1024u)

/* Output: a growable byte buffer owned by the caller (malloc'd storage).
 * Zero-initialize; calls append; release with pt_json_out_fini. */
struct pt_json_out {
    char *data;
    size_t len;
    size_t cap;
};

/* Schema hooks. Every member may be NULL (the default applies). They are
 * called on the calling thread, possibly many times per call, and must be
 * cheap and side-effect free. */
struct pt_json_hooks {
    /* f's JSON name (f is a field of m), borrowed for the call. Return
     * PT_STR_NULL for the default (pt_json_default_name). */
    struct pt_str (*json_name)(void *ctx, const ProtobufCMessageDescriptor *m,
                               const ProtobufCFieldDescriptor *f);
    /* Is f (a field of m) a map field? When NULL: pt_json_default_is_map. */
    bool (*is_map)(void *ctx, const ProtobufCMessageDescriptor *m,
                   const ProtobufCFieldDescriptor *f);
    /* The message type named full_name ("pkg.Msg", no leading dot), for
     * google.protobuf.Any: the codec passes the part of the type URL after
     * its last '/'. NULL (or no hook) = unknown type, an error. */
    const ProtobufCMessageDescriptor *(*find_message)(void *ctx, struct pt_str full_name);
    void *ctx;
};

struct pt_json_options {
    bool ignore_unknown; /* decode: skip unknown fields and unknown enum names
                            instead of failing */
    bool emit_defaults;  /* encode: print proto3 implicit-presence scalars
                            with their default value, empty repeated as [] and
                            maps as {} (json_format's
                            including_default_value_fields) */
    bool original_names; /* encode: proto field names instead of json names */
    unsigned max_depth;  /* nesting of JSON objects and arrays (a message
                            is an object), both directions;
                            0 = PT_JSON_DEFAULT_MAX_DEPTH */
    size_t max_output;   /* bytes this call may append; 0 = PT_JSON_DEFAULT_MAX_OUTPUT */
};

struct pt_json_error {
    size_t offset;     /* byte offset in the input where the error was found */
    char message[256]; /* "<json path>: <what>", NUL-terminated */
};

/* Status: 0, PT_ERR_INVALID (malformed JSON, or a value that does not fit
 * the schema), or PT_ERR_LIMIT (max_depth or max_output exceeded). Parses
 * json (exactly one JSON value, surrounding whitespace allowed) as message
 * type desc and appends its wire encoding to out. hooks and opts may be NULL;
 * err may be NULL. On error out->len is unchanged. */
int pt_json_decode(const ProtobufCMessageDescriptor *desc, struct pt_str json,
                   const struct pt_json_hooks *hooks, const struct pt_json_options *opts,
                   struct pt_json_out *out, struct pt_json_error *err);

/* Status: 0, PT_ERR_INVALID (malformed wire bytes, invalid UTF-8 in a string
 * field, an Any whose type cannot be resolved, a well-known-type value out
 * of range), or PT_ERR_LIMIT. Appends the JSON form (compact, no
 * whitespace) of the message of type desc in wire[0..len) to out. Unknown
 * fields are dropped. hooks, opts and err may be NULL. On error out->len is
 * unchanged. */
int pt_json_encode(const ProtobufCMessageDescriptor *desc, const uint8_t *wire, size_t len,
                   const struct pt_json_hooks *hooks, const struct pt_json_options *opts,
                   struct pt_json_out *out, struct pt_json_error *err);

/* Frees out's storage and zeroes it. */
void pt_json_out_fini(struct pt_json_out *out);

/* The default json_name: protoc's lowerCamelCase of f->name ("foo_bar_baz"
 * -> "fooBarBaz": each '_' dropped and the next character upper-cased).
 * Writes at most cap bytes to buf (no NUL) and returns the full length. */
size_t pt_json_default_name(const ProtobufCFieldDescriptor *f, char *buf, size_t cap);

/* The default map test, a heuristic because protobuf-c descriptors do not
 * record map_entry: f is a repeated message field whose type is named
 * "<m's full name>.<CamelCase(f->name)>Entry" and has exactly two fields,
 * key = 1 and value = 2. A real message shaped and named like that would be
 * misread as a map; the descriptor pool knows map_entry exactly and should
 * supply the is_map hook. */
bool pt_json_default_is_map(const ProtobufCMessageDescriptor *m, const ProtobufCFieldDescriptor *f);

#endif
