/*
 * ctl/cli.h - porticoctl without I/O: command-line parsing, the table of
 * managed kinds (which Admin methods and messages serve each), and the
 * formatting of results and errors. main.c does the gRPC calls.
 *
 *   argv ──pt_ctl_args_parse──> pt_ctl_args ──main.c: calls──> responses
 *                                                  │
 *         pt_ctl_apply_format / pt_ctl_error_format ┘──> text on a FILE
 *
 * Exit codes (PT_CTL_EXIT_*): 0 ok, 1 the server refused (any non-OK
 * status, or `json` met bad input), 2 usage error, 3 the server cannot be
 * reached.
 */
#ifndef PT_CTL_CLI_H
#define PT_CTL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "portico/admin/v1/admin.pb-c.h"

enum pt_ctl_exit {
    PT_CTL_EXIT_OK = 0,
    PT_CTL_EXIT_REFUSED = 1,
    PT_CTL_EXIT_USAGE = 2,
    PT_CTL_EXIT_UNREACHABLE = 3,
};

enum pt_ctl_cmd {
    PT_CTL_CMD_NONE = 0,
    PT_CTL_CMD_GET,
    PT_CTL_CMD_LIST,
    PT_CTL_CMD_DELETE,
    PT_CTL_CMD_CREATE,
    PT_CTL_CMD_APPLY,
    PT_CTL_CMD_EXPORT,
    PT_CTL_CMD_HEALTH,
    PT_CTL_CMD_VALIDATE,
    PT_CTL_CMD_REGISTRATIONS, /* registrations [SERVICE] */
    PT_CTL_CMD_DEREGISTER,    /* deregister LEASE_ID */
    PT_CTL_CMD_JSON,          /* json encode|decode: local, no server (ctl/json.h) */
    PT_CTL_CMD_DESCRIPTORS,   /* descriptors SERVICE [--refresh] */
};

enum pt_ctl_json_op {
    PT_CTL_JSON_ENCODE = 1, /* JSON on stdin -> binary protobuf on stdout */
    PT_CTL_JSON_DECODE,     /* binary protobuf on stdin -> JSON on stdout */
};

/* `json`: the default and the ceiling of --max-input (bytes of stdin). */
#define PT_CTL_JSON_DEFAULT_MAX_INPUT (16u << 20)
#define PT_CTL_JSON_MAX_INPUT_CAP (1u << 30)

/* One managed kind and the Admin methods that serve it. Requests are built
 * by field name, so the table names fields rather than C members. */
struct pt_ctl_kind {
    const char *name;   /* "route": as written on the command line */
    const char *plural; /* "routes" */
    const char *alias;  /* another accepted spelling, or NULL */
    const char *method; /* "Route": GetRoute, ListRoutes, ... */
    const char *list_method;
    const ProtobufCMessageDescriptor *object;
    const ProtobufCMessageDescriptor *get_req, *delete_req, *create_req;
    const char *id_field; /* of get_req and delete_req: "route_id" or "name" */
    const ProtobufCMessageDescriptor *list_resp;
    const char *list_field; /* repeated objects in list_resp */
    const ProtobufCMessageDescriptor *create_resp;
};

/* Pointer: the kind named s (singular, plural or alias), or NULL. */
const struct pt_ctl_kind *pt_ctl_kind_find(const char *s);

struct pt_ctl_args {
    const char *addr;  /* default "127.0.0.1:9901" */
    const char *token; /* --token, else env PORTICO_ADMIN_TOKEN, else NULL */
    const char *cacert, *cert, *key;
    double timeout_s; /* default 10 */
    bool json;        /* -o json */
    enum pt_ctl_cmd cmd;
    const struct pt_ctl_kind *kind;
    const char *name;
    const char *file;
    bool dry_run, keep_absent, yes;
    bool help; /* --help: print pt_ctl_usage(cmd) and exit 0 */
    /* json encode|decode */
    enum pt_ctl_json_op json_op;
    const char *descriptor_set; /* --descriptor-set FILE (a FileDescriptorSet) */
    const char *type_name;      /* --type pkg.Msg */
    bool ignore_unknown;        /* encode */
    bool emit_defaults;         /* decode */
    bool original_names;        /* decode */
    size_t max_input;           /* --max-input BYTES; default PT_CTL_JSON_DEFAULT_MAX_INPUT */
    bool refresh;               /* descriptors --refresh */
};

/*
 * Parse argv (argv[0] is the program). env_token is the value of
 * PORTICO_ADMIN_TOKEN (or NULL). Status: 0, or -1 with a one-line reason in
 * err. Strings in *a borrow from argv.
 */
int pt_ctl_args_parse(struct pt_ctl_args *a, int argc, char *const *argv, const char *env_token,
                      char *err, size_t n);

/* Help text for cmd (PT_CTL_CMD_NONE: the overview). Static. */
const char *pt_ctl_usage(enum pt_ctl_cmd cmd);

/* "NOT_FOUND" for 5; "CODE_<n>" beyond the table (static or buf). */
const char *pt_ctl_code_name(int code, char *buf, size_t n);

/* Exit code for a gRPC status: 0 OK; 3 UNAVAILABLE, or DEADLINE_EXCEEDED
 * when the channel never connected; else 1. */
int pt_ctl_exit_for_status(int code, bool connected);

/*
 * "error: <CODE>: <message>" and, when details (the grpc-status-details-bin
 * trailer: a google.rpc.Status) hold google.rpc.BadRequest field
 * violations, one "  <field>: <description>" line each. Undecodable
 * details are ignored.
 */
void pt_ctl_error_format(FILE *out, int code, const char *message, const uint8_t *details,
                         size_t details_len);

/*
 * The plan of an Apply: "+ route foo", "~ service bar (instances,
 * timeout_ms)", "- plugin baz", then "ignored: <section>" lines.
 * Returns the number of changes.
 */
size_t pt_ctl_apply_format(FILE *out, const Portico__Admin__V1__ApplyResponse *r);

/* Set field `name` of m (a string or a message field) - status 0 or -1
 * when m has no such field of that type. Strings are copied with malloc;
 * a message is stored as given (m owns it afterwards). */
int pt_ctl_msg_set_string(ProtobufCMessage *m, const char *name, const char *value);
int pt_ctl_msg_set_message(ProtobufCMessage *m, const char *name, ProtobufCMessage *value);
/* Borrowed: string field `name` of m, or NULL. */
const char *pt_ctl_msg_get_string(const ProtobufCMessage *m, const char *name);

#endif
