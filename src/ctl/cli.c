/*
 * porticoctl's sans-I/O half: see cli.h.
 */
#include <stdlib.h>
#include <string.h>

#include "ctl/cli.h"
#include "core/error.h"
#include "google/protobuf/any.pb-c.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

#define ADMIN(x) &portico__admin__v1__##x##__descriptor
#define CONFIG(x) &portico__config__v1__##x##__descriptor

static const struct pt_ctl_kind kinds[] = {
    {"route", "routes", NULL, "Route", "ListRoutes", CONFIG(route), ADMIN(get_route_request),
     ADMIN(delete_route_request), ADMIN(create_route_request), "route_id",
     ADMIN(list_routes_response), "routes", CONFIG(route)},
    {"service", "services", NULL, "Service", "ListServices", CONFIG(service), ADMIN(get_request),
     ADMIN(delete_request), ADMIN(create_service_request), "name", ADMIN(list_services_response),
     "services", CONFIG(service)},
    {"rate-limit", "rate-limits", "rate_limit_rule", "RateLimitRule", "ListRateLimitRules",
     CONFIG(rate_limit_rule), ADMIN(get_request), ADMIN(delete_request),
     ADMIN(create_rate_limit_rule_request), "name", ADMIN(list_rate_limit_rules_response), "rules",
     CONFIG(rate_limit_rule)},
    {"plugin", "plugins", NULL, "Plugin", "ListPlugins", CONFIG(plugin), ADMIN(get_request),
     ADMIN(delete_request), ADMIN(create_plugin_request), "name", ADMIN(list_plugins_response),
     "plugins", CONFIG(plugin)},
    {"api-key", "api-keys", "api_key", "ApiKey", "ListApiKeys", CONFIG(api_key), ADMIN(get_request),
     ADMIN(delete_request), ADMIN(create_api_key_request), "name", ADMIN(list_api_keys_response),
     "api_keys", ADMIN(create_api_key_response)},
};

const struct pt_ctl_kind *pt_ctl_kind_find(const char *s)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        const struct pt_ctl_kind *k = &kinds[i];
        if (strcmp(s, k->name) == 0 || strcmp(s, k->plural) == 0 ||
            (k->alias && strcmp(s, k->alias) == 0))
            return k;
    }
    /* "rate-limit-rule(s)", "rate_limits", "api_keys": forgive - vs _. */
    char norm[64];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(norm))
        return NULL;
    for (size_t i = 0; i <= n; i++)
        norm[i] = s[i] == '_' ? '-' : s[i];
    if (strcmp(norm, s) != 0)
        return pt_ctl_kind_find(norm);
    if (strcmp(norm, "rate-limit-rule") == 0 || strcmp(norm, "rate-limit-rules") == 0)
        return pt_ctl_kind_find("rate-limit");
    return NULL;
}

static const struct {
    const char *name;
    enum pt_ctl_cmd cmd;
} commands[] = {
    {"get", PT_CTL_CMD_GET},
    {"list", PT_CTL_CMD_LIST},
    {"delete", PT_CTL_CMD_DELETE},
    {"create", PT_CTL_CMD_CREATE},
    {"apply", PT_CTL_CMD_APPLY},
    {"export", PT_CTL_CMD_EXPORT},
    {"health", PT_CTL_CMD_HEALTH},
    {"validate", PT_CTL_CMD_VALIDATE},
    {"registrations", PT_CTL_CMD_REGISTRATIONS},
    {"deregister", PT_CTL_CMD_DEREGISTER},
    {"json", PT_CTL_CMD_JSON},
    {"descriptors", PT_CTL_CMD_DESCRIPTORS},
};

static int fail(char *err, size_t n, const char *fmt, const char *arg)
{
    snprintf(err, n, fmt, arg ? arg : "");
    return -1;
}

int pt_ctl_args_parse(struct pt_ctl_args *a, int argc, char *const *argv, const char *env_token,
                      char *err, size_t n)
{
    memset(a, 0, sizeof(*a));
    a->addr = "127.0.0.1:9901";
    a->timeout_s = 10;
    a->token = env_token && *env_token ? env_token : NULL;
    a->max_input = PT_CTL_JSON_DEFAULT_MAX_INPUT;
    bool json_opt = false, json_enc_opt = false, json_dec_opt = false;
    const char *pos[3];
    size_t npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = NULL;
        /* Options with a value: "--opt V" or "--opt=V". */
        static const char *const valued[] = {
            "--addr",   "--token", "--cacert", "--cert",           "--key",  "--timeout",  "-o",
            "--output", "-f",      "--file",   "--descriptor-set", "--type", "--max-input"};
        const char *opt = NULL;
        for (size_t j = 0; j < sizeof(valued) / sizeof(valued[0]); j++) {
            size_t l = strlen(valued[j]);
            if (strcmp(s, valued[j]) == 0) {
                if (i + 1 >= argc)
                    return fail(err, n, "%s needs a value", s);
                opt = valued[j];
                v = argv[++i];
                break;
            }
            if (strncmp(s, valued[j], l) == 0 && s[l] == '=' && valued[j][1] == '-') {
                opt = valued[j];
                v = s + l + 1;
                break;
            }
        }
        if (opt) {
            if (strcmp(opt, "--addr") == 0) {
                if (!*v)
                    return fail(err, n, "--addr needs HOST:PORT", NULL);
                a->addr = v;
            } else if (strcmp(opt, "--token") == 0) {
                a->token = *v ? v : NULL;
            } else if (strcmp(opt, "--cacert") == 0) {
                a->cacert = v;
            } else if (strcmp(opt, "--cert") == 0) {
                a->cert = v;
            } else if (strcmp(opt, "--key") == 0) {
                a->key = v;
            } else if (strcmp(opt, "--timeout") == 0) {
                char *end;
                double t = strtod(v, &end);
                if (end == v || *end || !(t > 0) || t > 3600)
                    return fail(err, n, "--timeout takes seconds (0 < S <= 3600), got \"%s\"", v);
                a->timeout_s = t;
            } else if (strcmp(opt, "-o") == 0 || strcmp(opt, "--output") == 0) {
                if (strcmp(v, "yaml") == 0)
                    a->json = false;
                else if (strcmp(v, "json") == 0)
                    a->json = true;
                else
                    return fail(err, n, "-o takes yaml or json, got \"%s\"", v);
            } else if (strcmp(opt, "--descriptor-set") == 0) {
                a->descriptor_set = v, json_opt = true;
            } else if (strcmp(opt, "--type") == 0) {
                a->type_name = v, json_opt = true;
            } else if (strcmp(opt, "--max-input") == 0) {
                char *end;
                unsigned long long m = strtoull(v, &end, 10);
                if (end == v || *end || *v == '-' || m == 0 || m > PT_CTL_JSON_MAX_INPUT_CAP)
                    return fail(err, n, "--max-input takes bytes (1 .. 1073741824), got \"%s\"", v);
                a->max_input = (size_t)m, json_opt = true;
            } else {
                a->file = v;
            }
            continue;
        }
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
            a->help = true;
        } else if (strcmp(s, "--dry-run") == 0) {
            a->dry_run = true;
        } else if (strcmp(s, "--keep-absent") == 0) {
            a->keep_absent = true;
        } else if (strcmp(s, "-y") == 0 || strcmp(s, "--yes") == 0) {
            a->yes = true;
        } else if (strcmp(s, "--refresh") == 0) {
            a->refresh = true;
        } else if (strcmp(s, "--ignore-unknown") == 0) {
            a->ignore_unknown = true, json_enc_opt = true;
        } else if (strcmp(s, "--emit-defaults") == 0) {
            a->emit_defaults = true, json_dec_opt = true;
        } else if (strcmp(s, "--original-names") == 0) {
            a->original_names = true, json_dec_opt = true;
        } else if (s[0] == '-' && s[1]) {
            return fail(err, n, "unknown option %s", s);
        } else if (a->cmd == PT_CTL_CMD_NONE) {
            for (size_t j = 0; j < sizeof(commands) / sizeof(commands[0]); j++)
                if (strcmp(s, commands[j].name) == 0)
                    a->cmd = commands[j].cmd;
            if (a->cmd == PT_CTL_CMD_NONE)
                return fail(err, n, "unknown command \"%s\"", s);
        } else {
            if (npos == 3)
                return fail(err, n, "unexpected argument \"%s\"", s);
            pos[npos++] = s;
        }
    }
    if (a->help)
        return 0;
    if (a->cmd == PT_CTL_CMD_NONE)
        return fail(err, n, "no command given", NULL);
    if ((a->cert != NULL) != (a->key != NULL))
        return fail(err, n, "--cert and --key go together", NULL);
    if (a->cert && !a->cacert)
        return fail(err, n, "--cert needs --cacert (client certificates need TLS)", NULL);

    size_t want = 0; /* positional arguments after the command */
    bool kind = false, file = false, file_optional = false;
    switch (a->cmd) {
    case PT_CTL_CMD_GET:
    case PT_CTL_CMD_DELETE:
        want = 2, kind = true;
        break;
    case PT_CTL_CMD_LIST:
        want = 1, kind = true;
        break;
    case PT_CTL_CMD_CREATE:
        want = 1, kind = true, file = true;
        break;
    case PT_CTL_CMD_APPLY:
    case PT_CTL_CMD_VALIDATE:
        file = true;
        break;
    case PT_CTL_CMD_EXPORT:
        file_optional = true;
        break;
    case PT_CTL_CMD_REGISTRATIONS:
        want = npos > 0 ? 1 : 0;
        break;
    case PT_CTL_CMD_DEREGISTER:
        if (npos == 0)
            return fail(err, n, "missing the lease id", NULL);
        want = 1;
        break;
    case PT_CTL_CMD_DESCRIPTORS:
        if (npos == 0)
            return fail(err, n, "missing the service", NULL);
        want = 1;
        break;
    case PT_CTL_CMD_JSON:
        if (npos == 0)
            return fail(err, n, "json needs encode or decode", NULL);
        if (strcmp(pos[0], "encode") == 0)
            a->json_op = PT_CTL_JSON_ENCODE;
        else if (strcmp(pos[0], "decode") == 0)
            a->json_op = PT_CTL_JSON_DECODE;
        else
            return fail(err, n, "json takes encode or decode, got \"%s\"", pos[0]);
        if (!a->descriptor_set)
            return fail(err, n, "--descriptor-set FILE is required", NULL);
        if (!a->type_name || !*a->type_name)
            return fail(err, n, "--type pkg.Msg is required", NULL);
        if (a->json_op == PT_CTL_JSON_ENCODE && json_dec_opt)
            return fail(err, n, "--emit-defaults and --original-names are options of json decode",
                        NULL);
        if (a->json_op == PT_CTL_JSON_DECODE && json_enc_opt)
            return fail(err, n, "--ignore-unknown is an option of json encode", NULL);
        want = 1;
        break;
    default:
        break;
    }
    if (npos < want)
        return fail(err, n,
                    want == 2 && npos == 1 ? "missing the name"
                                           : "missing the kind (route, "
                                             "service, rate-limit, "
                                             "plugin, api-key)",
                    NULL);
    if (npos > want)
        return fail(err, n, "unexpected argument \"%s\"", pos[want]);
    if (a->cmd != PT_CTL_CMD_JSON && (json_opt || json_enc_opt || json_dec_opt))
        return fail(err, n,
                    "--descriptor-set, --type, --max-input, --ignore-unknown, --emit-defaults "
                    "and --original-names are options of json",
                    NULL);
    if (a->cmd == PT_CTL_CMD_JSON) {
        if (a->file)
            return fail(err, n, "-f is not an option of this command", NULL);
    } else if (kind) {
        a->kind = pt_ctl_kind_find(pos[0]);
        if (!a->kind)
            return fail(err, n, "unknown kind \"%s\" (route, service, rate-limit, plugin, api-key)",
                        pos[0]);
        if (want == 2)
            a->name = pos[1];
    } else if (want == 1) {
        a->name = pos[0]; /* a service or a lease id */
    }
    if (file && !a->file)
        return fail(err, n, "-f FILE is required", NULL);
    if (!file && !file_optional && a->file)
        return fail(err, n, "-f is not an option of this command", NULL);
    if (a->cmd != PT_CTL_CMD_DESCRIPTORS && a->refresh)
        return fail(err, n, "--refresh is an option of descriptors", NULL);
    if (a->cmd != PT_CTL_CMD_APPLY && (a->dry_run || a->keep_absent || a->yes))
        return fail(err, n, "--dry-run, --keep-absent and -y are options of apply", NULL);
    return 0;
}

const char *pt_ctl_usage(enum pt_ctl_cmd cmd)
{
    switch (cmd) {
    case PT_CTL_CMD_GET:
        return "usage: porticoctl [options] get <kind> <name>\n"
               "Print one object as YAML. kind: route, service, rate-limit, plugin, api-key\n"
               "(plurals accepted).\n";
    case PT_CTL_CMD_LIST:
        return "usage: porticoctl [options] list <kind>\n"
               "Print every object of a kind, following page tokens to the end.\n";
    case PT_CTL_CMD_DELETE:
        return "usage: porticoctl [options] delete <kind> <name>\n";
    case PT_CTL_CMD_CREATE:
        return "usage: porticoctl [options] create <kind> -f FILE\n"
               "FILE holds one object as YAML. For api-key the generated key is printed once;\n"
               "store it, it cannot be shown again.\n";
    case PT_CTL_CMD_APPLY:
        return "usage: porticoctl [options] apply -f FILE [--dry-run] [--keep-absent] [-y]\n"
               "Make the managed configuration match FILE. Shows the changes first (a dry run),\n"
               "then asks for confirmation (on a terminal; -y skips it) and applies them only\n"
               "if nothing changed on the server in between.\n"
               "  --dry-run      only show the changes\n"
               "  --keep-absent  keep objects that FILE does not mention (default: delete them)\n"
               "  -y, --yes      do not ask\n";
    case PT_CTL_CMD_EXPORT:
        return "usage: porticoctl [options] export [-f FILE]\n"
               "Write the current configuration as YAML to FILE (default: stdout).\n";
    case PT_CTL_CMD_HEALTH:
        return "usage: porticoctl [options] health\n"
               "Print the gateway's health; exit 0 if it is SERVING, else 1.\n";
    case PT_CTL_CMD_VALIDATE:
        return "usage: porticoctl [options] validate -f FILE\n"
               "Ask the gateway whether FILE (a whole configuration) is valid.\n";
    case PT_CTL_CMD_REGISTRATIONS:
        return "usage: porticoctl [options] registrations [SERVICE]\n"
               "Print the live registrations (leases) of SERVICE, or of every service, on this\n"
               "gateway instance (registrations are not shared between instances).\n";
    case PT_CTL_CMD_DEREGISTER:
        return "usage: porticoctl [options] deregister LEASE_ID\n"
               "Remove a registered instance now.\n";
    case PT_CTL_CMD_DESCRIPTORS:
        return "usage: porticoctl [options] descriptors SERVICE [--refresh]\n"
               "Show the descriptors a service with `reflection: true` fetched from its\n"
               "backend (generation, gRPC services, last error). --refresh fetches them now\n"
               "and waits for the result; a failure exits 1 and keeps the last good ones.\n";
    case PT_CTL_CMD_JSON:
        return "usage: porticoctl json encode --descriptor-set FILE --type pkg.Msg "
               "[--ignore-unknown]\n"
               "       porticoctl json decode --descriptor-set FILE --type pkg.Msg "
               "[--emit-defaults] [--original-names]\n"
               "Convert one message between the proto3 JSON mapping and binary protobuf, using\n"
               "the gateway's transcoder; no server is contacted. encode: JSON on stdin,\n"
               "binary on stdout. decode: binary on stdin, JSON (one line) on stdout.\n"
               "  --descriptor-set FILE  a FileDescriptorSet (protoc --include_imports\n"
               "                         --descriptor_set_out=FILE ...)\n"
               "  --type pkg.Msg         the message type, fully qualified\n"
               "  --ignore-unknown       encode: skip unknown fields and enum names\n"
               "  --emit-defaults        decode: print fields that hold their default value\n"
               "  --original-names       decode: proto field names instead of JSON names\n"
               "  --max-input BYTES      largest stdin accepted (default 16 MiB)\n"
               "Bad input, an unknown type or an unusable descriptor set: a one-line error\n"
               "(with the JSON path of the offending value) and exit 1.\n";
    default:
        return "usage: porticoctl [options] <command> [args]\n"
               "\n"
               "commands:\n"
               "  get <kind> <name>       list <kind>        delete <kind> <name>\n"
               "  create <kind> -f FILE   apply -f FILE [--dry-run] [--keep-absent] [-y]\n"
               "  export [-f FILE]        health             validate -f FILE\n"
               "  registrations [SERVICE] deregister LEASE_ID\n"
               "  descriptors SERVICE [--refresh]\n"
               "  json encode|decode --descriptor-set FILE --type pkg.Msg (local, no server)\n"
               "kinds: route, service, rate-limit, plugin, api-key (plurals accepted)\n"
               "\n"
               "options:\n"
               "  --addr HOST:PORT   admin address (default 127.0.0.1:9901)\n"
               "  --token T          bearer token (default: $PORTICO_ADMIN_TOKEN)\n"
               "  --cacert F         use TLS, trusting the CAs in F\n"
               "  --cert F --key F   client certificate for mTLS\n"
               "  --timeout S        deadline of each call in seconds (default 10)\n"
               "  -o yaml|json       output format (default yaml)\n"
               "  -h, --help         help (also per command: porticoctl apply --help)\n"
               "\n"
               "exit codes: 0 ok, 1 the server refused, 2 usage error, 3 server unreachable\n";
    }
}

const char *pt_ctl_code_name(int code, char *buf, size_t n)
{
    if (code >= 0 && code <= 16)
        return pt_grpc_status_name(code);
    snprintf(buf, n, "CODE_%d", code);
    return buf;
}

int pt_ctl_exit_for_status(int code, bool connected)
{
    if (code == 0)
        return PT_CTL_EXIT_OK;
    if (code == 14 || (code == 4 && !connected))
        return PT_CTL_EXIT_UNREACHABLE;
    return PT_CTL_EXIT_REFUSED;
}

void pt_ctl_error_format(FILE *out, int code, const char *message, const uint8_t *details,
                         size_t details_len)
{
    char buf[32];
    fprintf(out, "error: %s: %s\n", pt_ctl_code_name(code, buf, sizeof(buf)),
            message && *message ? message : "(no message)");
    if (!details || !details_len)
        return;
    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, details_len, details);
    if (!st)
        return;
    static const char bad_request[] = "google.rpc.BadRequest";
    for (size_t i = 0; i < st->n_details; i++) {
        const Google__Protobuf__Any *any = st->details[i];
        const char *t = any->type_url ? strrchr(any->type_url, '/') : NULL;
        t = t ? t + 1 : any->type_url;
        if (!t || strcmp(t, bad_request) != 0)
            continue;
        Google__Rpc__BadRequest *br =
            google__rpc__bad_request__unpack(NULL, any->value.len, any->value.data);
        if (!br)
            continue;
        for (size_t j = 0; j < br->n_field_violations; j++) {
            const Google__Rpc__BadRequest__FieldViolation *v = br->field_violations[j];
            fprintf(out, "  %s: %s\n", v->field && *v->field ? v->field : "(request)",
                    v->description ? v->description : "");
        }
        google__rpc__bad_request__free_unpacked(br, NULL);
    }
    google__rpc__status__free_unpacked(st, NULL);
}

size_t pt_ctl_apply_format(FILE *out, const Portico__Admin__V1__ApplyResponse *r)
{
    for (size_t i = 0; i < r->n_changes; i++) {
        const Portico__Admin__V1__Change *c = r->changes[i];
        char sign;
        switch (c->action) {
        case PORTICO__ADMIN__V1__CHANGE__ACTION__ACTION_CREATE:
            sign = '+';
            break;
        case PORTICO__ADMIN__V1__CHANGE__ACTION__ACTION_DELETE:
            sign = '-';
            break;
        case PORTICO__ADMIN__V1__CHANGE__ACTION__ACTION_UPDATE:
            sign = '~';
            break;
        default:
            sign = '?';
            break;
        }
        fprintf(out, "%c %s %s", sign, c->kind, c->name);
        if (c->n_fields) {
            fputs(" (", out);
            for (size_t j = 0; j < c->n_fields; j++)
                fprintf(out, "%s%s", j ? ", " : "", c->fields[j]);
            fputc(')', out);
        }
        fputc('\n', out);
    }
    for (size_t i = 0; i < r->n_ignored_sections; i++)
        fprintf(out, "ignored: %s (not managed through the admin API)\n", r->ignored_sections[i]);
    return r->n_changes;
}

static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessage *m, const char *name,
                                                   ProtobufCType type)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (!fd || fd->type != type || fd->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return fd;
}

static void mark_oneof(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)((char *)m + fd->quantifier_offset) = fd->id;
}

int pt_ctl_msg_set_string(ProtobufCMessage *m, const char *name, const char *value)
{
    const ProtobufCFieldDescriptor *fd = field_named(m, name, PROTOBUF_C_TYPE_STRING);
    if (!fd)
        return -1;
    char **dst = (char **)((char *)m + fd->offset);
    if (*dst && *dst != (const char *)fd->default_value)
        free(*dst);
    *dst = strdup(value);
    if (!*dst)
        abort();
    mark_oneof(m, fd);
    return 0;
}

int pt_ctl_msg_set_message(ProtobufCMessage *m, const char *name, ProtobufCMessage *value)
{
    const ProtobufCFieldDescriptor *fd = field_named(m, name, PROTOBUF_C_TYPE_MESSAGE);
    if (!fd || fd->descriptor != value->descriptor)
        return -1;
    ProtobufCMessage **dst = (ProtobufCMessage **)((char *)m + fd->offset);
    if (*dst)
        protobuf_c_message_free_unpacked(*dst, NULL);
    *dst = value;
    mark_oneof(m, fd);
    return 0;
}

const char *pt_ctl_msg_get_string(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *fd = field_named(m, name, PROTOBUF_C_TYPE_STRING);
    if (!fd)
        return NULL;
    return *(char *const *)((const char *)m + fd->offset);
}
