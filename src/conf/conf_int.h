/*
 * conf/conf_int.h - private to src/conf: the YAML node tree, the position
 * table and scalar conversions shared by the loader and the validator.
 *
 * Loading is two passes. yaml_tree.c turns libyaml events into a tree of
 * pt_conf_ynode (aliases stay pointers to their anchor's node, so the tree
 * is a DAG and costs no more memory than the text); load.c walks that tree
 * against protobuf-c descriptors, counting every node visit so that alias
 * expansion stays bounded.
 */
#ifndef PT_CONF_CONF_INT_H
#define PT_CONF_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "conf/conf.h"
#include "core/arena.h"
#include "core/diag.h"

/* ---- YAML node tree (yaml_tree.c) ---- */

enum pt_conf_ynode_kind {
    PT_CONF_YNODE_SCALAR,
    PT_CONF_YNODE_SEQ,
    PT_CONF_YNODE_MAP,
    PT_CONF_YNODE_ALIAS,
};

struct pt_conf_ynode;

struct pt_conf_ypair {
    struct pt_conf_ynode *key;
    struct pt_conf_ynode *value;
    bool skip; /* a duplicate or non-scalar key, already reported */
};

struct pt_conf_ynode {
    enum pt_conf_ynode_kind kind;
    uint32_t line, col; /* 1-based */
    /* An explicit tag the loader does not understand (reported when the node
     * is used), else NULL. Understood: "!" and !!str (a string), !!int,
     * !!float, !!bool, !!null on scalars, !!seq and !!map on collections. */
    const char *bad_tag;
    /* Scalars: NUL-terminated copy; len counts embedded NULs. */
    const char *str;
    size_t len;
    bool plain; /* plain style and untagged: subject to null/bool/number resolution */
    /* Sequences: items[n]; mappings: pairs[n]. */
    size_t n;
    struct pt_conf_ynode **items;
    struct pt_conf_ypair *pairs;
    bool keys_checked; /* mappings: duplicate keys already reported */
    /* Nodes the loader will visit for this node with every alias expanded,
     * saturating above PT_CONF_MAX_NODES: alias bombs are refused while
     * parsing, before anything is built. */
    size_t expanded;
    struct pt_conf_ynode *target; /* aliases */
};

struct pt_conf_ytree {
    struct pt_arena arena;      /* every node and string */
    struct pt_conf_ynode *root; /* NULL for an empty stream */
};

/* Status: 0, or PT_ERR_CONFIG after adding the reason to diag (malformed
 * YAML, several documents, too deep, too many nodes, undefined alias). The
 * tree must be released with pt_conf_ytree_fini() either way. */
int pt_conf_ytree_parse(struct pt_conf_ytree *t, const char *name, const char *text, size_t len,
                        struct pt_diag *diag);
void pt_conf_ytree_fini(struct pt_conf_ytree *t);

/* ---- source positions (where.c) ---- */

struct pt_conf_pos;

struct pt_conf_postab {
    struct pt_conf_pos *slots;
    size_t n, cap;
};

void pt_conf_postab_fini(struct pt_conf_postab *t);
/* Record where (msg), (msg, field) or (msg, field, index) was written;
 * field is a ProtobufCFieldDescriptor (NULL for the message itself), index
 * -1 for the whole field. When a key is recorded twice the first wins. */
void pt_conf_postab_put(struct pt_conf_postab *t, const void *msg, const void *field, int64_t index,
                        uint32_t line, uint32_t col);
/* After the last put: makes the table searchable. */
void pt_conf_postab_seal(struct pt_conf_postab *t);
bool pt_conf_postab_get(const struct pt_conf_postab *t, const void *msg, const void *field,
                        int64_t index, uint32_t *line, uint32_t *col);

struct pt_conf {
    char *name;
    ProtobufCMessage *msg;
    struct pt_conf_postab pos;
};

/* An enum type's name as its values' prefix: "ListenerProtocol" ->
 * "LISTENER_PROTOCOL" (always NUL-terminated; truncated to size). */
void pt_conf_upper_snake(const char *camel, char *out, size_t size);

/* google.protobuf.*Value wrappers, written as bare scalars. */
bool pt_conf_is_wrapper(const ProtobufCMessageDescriptor *d);
/* protobuf-c keeps no map flag: a map field is a repeated "...Entry"
 * message with exactly key = 1 and value = 2. */
bool pt_conf_is_map_entry(const ProtobufCMessageDescriptor *d);

/* A field by its proto name or its lowerCamelCase JSON name; NULL if none. */
const ProtobufCFieldDescriptor *pt_conf_field_find(const ProtobufCMessageDescriptor *d,
                                                   const char *name, size_t len);

/* ---- scalar conversions (scalar.c) ---- */

enum pt_conf_num {
    PT_CONF_NUM_OK = 0,
    PT_CONF_NUM_SYNTAX, /* not a number of the requested kind */
    PT_CONF_NUM_RANGE,  /* well-formed, but outside [min, max] */
};

/* Decimal integers: an optional '-' (signed only), then digits. */
enum pt_conf_num pt_conf_parse_int(const char *s, size_t len, int64_t min, int64_t max,
                                   int64_t *out);
enum pt_conf_num pt_conf_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out);
/* A YAML 1.2 core-schema decimal number ("1", "-2.5", "1e3", ".5"); RANGE
 * when it overflows to infinity. */
enum pt_conf_num pt_conf_parse_double(const char *s, size_t len, double *out);
/* Does s look like a number at all (for Struct values: number vs string)? */
bool pt_conf_looks_numeric(const char *s, size_t len);
/* YAML 1.2 core spellings: true/True/TRUE, false/False/FALSE. */
bool pt_conf_parse_bool(const char *s, size_t len, bool *out);
/* Plain null spellings: "", "~", null/Null/NULL. */
bool pt_conf_is_null_word(const char *s, size_t len);
/* Base64, standard or URL-safe alphabet, padding optional. Status: 0, or
 * PT_ERR_CONFIG. *out is malloc'd (free()); *out_len its length. */
int pt_conf_base64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len);
/* google.protobuf.Timestamp as RFC 3339 (emit.c). Seconds are bounded to
 * 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z, as protobuf's JSON does. */
#define PT_CONF_TIMESTAMP_MIN (-62135596800LL)
#define PT_CONF_TIMESTAMP_MAX 253402300799LL
/* "2026-11-28T01:02:03Z", "...03.5+02:00": up to 9 fraction digits, 'Z' or
 * a +HH:MM/-HH:MM offset. Status: 0, or -1 when malformed or out of range. */
int pt_conf_timestamp_parse(const char *s, size_t len, int64_t *seconds, int32_t *nanos);
/* UTC with 'Z'; fraction (3, 6 or 9 digits) only when nanos != 0.
 * Progress: characters written (buf NUL-terminated, n >= 32), or -1 when out
 * of range. */
int pt_conf_timestamp_format(int64_t seconds, int32_t nanos, char *buf, size_t n);
/* Levenshtein distance, ASCII case-insensitive, capped at cap+1. */
size_t pt_conf_edit_distance(const char *a, size_t alen, const char *b, size_t blen, size_t cap);

/* ---- names (netaddr.c) ---- */

bool pt_conf_ip_literal(const char *s);
/* An IP literal or an RFC 1123 host name. */
bool pt_conf_host_valid(const char *s);
/* An HTTP token (RFC 9110 tchar+), e.g. a method or a header name. */
bool pt_conf_is_token(const char *s);

/* ---- authentication checks (validate_auth.c) ---- */

/* JWT issuers, introspection endpoints, routes' token sources, rules and
 * mTLS identity: problems added to diag, counted in *errors. */
void pt_conf_validate_auth_ext(const struct pt_conf *c, const Portico__Config__V1__Config *cfg,
                               struct pt_diag *diag, unsigned *errors);

#endif
