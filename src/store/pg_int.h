/*
 * store/pg_int.h - the parts of the PostgreSQL store that need no server
 * (private to src/store and its unit tests).
 *
 * A managed kind is one repeated field of Config and one table:
 *
 *   kind              Config field         table              parent
 *   service           services             services           -
 *   route             routes               routes             service (service_id)
 *   rate-limit rule   rate_limit_rules     rate_limit_rules   route (route_id)
 *   plugin            plugins              plugins            -
 *   API key           api_keys             api_keys           -
 *
 * pt_store_pg_diff() compares two documents kind by kind, by name;
 * pt_store_pg_project() turns one object into the text parameters of its
 * table's upsert statement (the projection columns; JSON for the JSONB and
 * TEXT[] columns), the packed message being the last parameter (spec).
 */
#ifndef PT_STORE_PG_INT_H
#define PT_STORE_PG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store_int.h"

enum pt_store_pg_kind {
    PT_STORE_PG_SERVICES,
    PT_STORE_PG_ROUTES,
    PT_STORE_PG_RULES,
    PT_STORE_PG_PLUGINS,
    PT_STORE_PG_API_KEYS,
    PT_STORE_PG_NKINDS,
};

#define PT_STORE_PG_MAX_PARAMS 16

struct pt_store_pg_kind_info {
    const char *table;
    const char *field; /* the repeated field of Config */
    const ProtobufCMessageDescriptor *desc;
    /* INSERT ... ON CONFLICT (name) DO UPDATE; $1 is the name. */
    const char *upsert_sql;
    int nparams;
    int spec_param; /* index (from 0) of the spec, the one binary parameter */
};

extern const struct pt_store_pg_kind_info pt_store_pg_kinds[PT_STORE_PG_NKINDS];

/* The objects of one kind in a Config (borrowed). */
size_t pt_store_pg_items(const Portico__Config__V1__Config *c, enum pt_store_pg_kind k,
                         ProtobufCMessage *const **items);

/* The `name` of a managed object (never NULL). */
const char *pt_store_pg_name(const ProtobufCMessage *m);

enum pt_store_pg_op {
    PT_STORE_PG_ADD,    /* in next only */
    PT_STORE_PG_CHANGE, /* in both, packed bytes differ */
    PT_STORE_PG_DELETE, /* in old only */
};

struct pt_store_pg_change {
    enum pt_store_pg_op op;
    const ProtobufCMessage *old;  /* NULL for ADD */
    const ProtobufCMessage *next; /* NULL for DELETE */
};

/*
 * The changes turning old's objects of kind k into next's, sorted by name.
 * Status: 0 with *out (caller frees) and *n, or PT_ERR_INVALID with err when
 * an object has no name or a name appears twice in one document.
 */
int pt_store_pg_diff(const Portico__Config__V1__Config *old,
                     const Portico__Config__V1__Config *next, enum pt_store_pg_kind k,
                     struct pt_store_pg_change **out, size_t *n, char *err, size_t errlen);

/* Parameters of one upsert: values[i] NUL-terminated text or NULL (SQL NULL);
 * the spec (last parameter) is binary. */
struct pt_store_pg_params {
    int n;
    char *values[PT_STORE_PG_MAX_PARAMS];
    int lengths[PT_STORE_PG_MAX_PARAMS];
    int formats[PT_STORE_PG_MAX_PARAMS];
};

/* Fill p for object m of kind k. Free with pt_store_pg_params_fini(). */
void pt_store_pg_project(enum pt_store_pg_kind k, const ProtobufCMessage *m,
                         struct pt_store_pg_params *p);
void pt_store_pg_params_fini(struct pt_store_pg_params *p);

/* The JSON array [{"n": name, "us": microseconds since the epoch}, ...]
 * of a usage batch, the parameter of PT_STORE_PG_KEY_USE_SQL; caller
 * frees. */
char *pt_store_pg_key_use_json(const struct pt_store_key_use *v, size_t n);

/* One statement for a whole batch; last_used_at never moves backwards. */
#define PT_STORE_PG_KEY_USE_SQL                                                                  \
    "UPDATE api_keys AS k SET last_used_at = timestamptz 'epoch' + u.us * interval '1 "          \
    "microsecond' FROM jsonb_to_recordset($1::jsonb) AS u(n text, us bigint) WHERE k.name = "    \
    "u.n AND (k.last_used_at IS NULL OR k.last_used_at < timestamptz 'epoch' + u.us * interval " \
    "'1 microsecond')"

/* JSON of a google.protobuf.Struct (NULL -> "{}"); caller frees. */
char *pt_store_pg_struct_json(const ProtobufCMessage *s);

/* Embedded migrations (generated from sql/ at build time), ascending. */
struct pt_store_pg_migration {
    int version;
    const char *name;         /* "001_initial" */
    const unsigned char *sql; /* not NUL-terminated */
    const size_t *len;
};
extern const struct pt_store_pg_migration pt_store_pg_migrations[];
extern const size_t pt_store_pg_nmigrations;

#endif
