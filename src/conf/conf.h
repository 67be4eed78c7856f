/*
 * conf/conf.h - configuration documents: YAML in, protobuf-c messages out.
 *
 * A pt_conf is one loaded document: a message of the config model
 * (proto/portico/config/v1/config.proto, or any other protobuf-c message,
 * since the loader walks descriptors and knows no message by hand) plus the
 * source position of every message and field it set. Later stages -
 * validation here, snapshot compilation, a filter's create() - report
 * problems with pt_conf_where() so every error points at a line of the file.
 *
 *   text ──pt_conf_load_*──> pt_conf ──pt_conf_validate──> ok ──> snapshot compile
 *              │                              │
 *              └── NULL, every error in diag ─┴── PT_ERR_CONFIG, every error in diag
 *
 * YAML mapping rules (proto3-JSON-like; docs/configuration.md is the
 * operator's version): keys are field names (snake_case, or lowerCamelCase);
 * enums are written without their type prefix, case-insensitively; wrapper
 * types are bare scalars; google.protobuf.Struct/Value/ListValue take any
 * YAML; null leaves a field unset. Anchors, aliases and `<<` merge keys work
 * within bounds (MAX_NODES visits, MAX_DEPTH nesting, MAX_FILE_BYTES).
 *
 * Errors are lines "file:line:col: field.path: message", collected (up to
 * PT_CONF_MAX_ERRORS per load) rather than stopping at the first.
 *
 * Thread: any thread; a pt_conf is immutable after loading and may be read
 * from several threads.
 */
#ifndef PT_CONF_CONF_H
#define PT_CONF_CONF_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/diag.h"
#include "portico/config/v1/config.pb-c.h"

#define PT_CONF_MAX_FILE_BYTES (16u * 1024u * 1024u)
/* Nodes visited while loading, counting every expansion of an alias: the
 * bound that defuses "billion laughs" documents. */
#define PT_CONF_MAX_NODES 1000000u
#define PT_CONF_MAX_DEPTH 64u
#define PT_CONF_MAX_ERRORS 100u

struct pt_conf;

/*
 * Load a portico configuration (Portico__Config__V1__Config).
 * Pointer: the document, or NULL with every error added to diag. An empty
 * file loads as an empty configuration. `name` (the file name) prefixes
 * every error and position.
 */
struct pt_conf *pt_conf_load_file(const char *path, struct pt_diag *diag);
struct pt_conf *pt_conf_load_string(const char *name, const char *text, size_t len,
                                    struct pt_diag *diag);

/* Same, for any message type: the root mapping loads a `desc` message. */
struct pt_conf *pt_conf_load_message_file(const ProtobufCMessageDescriptor *desc, const char *path,
                                          struct pt_diag *diag);
struct pt_conf *pt_conf_load_message_string(const ProtobufCMessageDescriptor *desc,
                                            const char *name, const char *text, size_t len,
                                            struct pt_diag *diag);

/*
 * Wrap a message as a document without source positions (errors then name
 * fields by path alone). Takes ownership of msg, which must be freeable by
 * protobuf_c_message_free_unpacked(msg, NULL) (e.g. from
 * protobuf_c_message_unpack with the default allocator).
 */
struct pt_conf *pt_conf_from_message(const char *name, ProtobufCMessage *msg);

/* Pointer, borrowed until pt_conf_free(): the root message (never NULL). */
const ProtobufCMessage *pt_conf_message(const struct pt_conf *c);
/* Pointer: the root as a Config, or NULL when c was loaded as another type. */
const Portico__Config__V1__Config *pt_conf_config(const struct pt_conf *c);
/* The name given at load time (borrowed until pt_conf_free()). */
const char *pt_conf_name(const struct pt_conf *c);
/* NULL is a no-op. Frees the messages too. */
void pt_conf_free(struct pt_conf *c);

/*
 * "file:line:col" of msg (any message inside c, or NULL for the document),
 * or of one of its fields: `field` is a field name ("timeout_ms"), optionally
 * with an element index for repeated fields ("methods[2]"). Falls back to the
 * message's position when the field was not written, and returns the file
 * name itself when msg is unknown. Pointer: buf (always written when
 * buf and n are given), or pt_conf_name(c) without a buffer.
 */
const char *pt_conf_where(const struct pt_conf *c, const void *msg, const char *field, char *buf,
                          size_t n);

/*
 * Check a loaded Config against the rules an operator expects enforced
 * before anything runs (docs/configuration.md lists them). Status: 0, or
 * PT_ERR_CONFIG with every problem added to diag. Registered filter types
 * are looked up by name (pt_filter_type_find), so register them first.
 * Thread: the caller must own the filter registry (main/control thread).
 */
int pt_conf_validate(const struct pt_conf *c, struct pt_diag *diag);

/*
 * The name a route is known by in errors, metrics and the admin API: its
 * `name`, or "<path or path_prefix>[ <METHOD,METHOD>]" when unnamed.
 * Always NUL-terminates buf (n > 0); truncates to fit.
 */
void pt_conf_route_name(const Portico__Config__V1__Route *r, char *buf, size_t n);

/*
 * The inverse of pt_conf_load_message_string(): msg (any message) as a YAML
 * document that loads back into a message packing byte-identical to msg.
 * Only set fields are written, in descriptor order; enums lower-case without
 * their type prefix; wrappers and Timestamps (RFC 3339, UTC) as scalars;
 * Struct/Value/ListValue as plain YAML; bytes as base64; strings quoted
 * whenever a YAML reader could take them for anything else. Not
 * representable (and so refused when loaded back): NaN/infinite numbers,
 * enum values unknown to the descriptor, bytes in strings that are not UTF-8.
 * Pointer: a NUL-terminated heap string (free()), never NULL; *len (if
 * len is not NULL) is its length.
 */
char *pt_conf_emit_yaml(const ProtobufCMessage *msg, size_t *len);

/* Bytes one value of fd's type occupies in a protobuf-c message (an
 * element of a repeated field; a pointer for strings and messages). */
size_t pt_conf_field_elem_size(const ProtobufCFieldDescriptor *fd);

/* A listener address split into parts. */
struct pt_conf_address {
    char host[64]; /* as written, without brackets; "" for ":port" */
    uint16_t port;
    int family;           /* AF_INET or AF_INET6 */
    unsigned char ip[16]; /* network order; 4 bytes used for AF_INET */
};

/*
 * Parse a listener address: "host:port", "[v6]:port" or ":port" (every IPv4
 * address); host is an IP literal or "localhost" (= 127.0.0.1); port
 * 1..65535. Status: 0, or PT_ERR_CONFIG with a reason in *why (static text).
 */
int pt_conf_address_parse(const char *text, struct pt_conf_address *out, const char **why);

#endif
