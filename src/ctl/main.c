/*
 * porticoctl: the admin CLI. Each command is one or two unary calls to
 * portico.admin.v1.Admin over grpc C core (one batch per call, a deadline
 * each); parsing and formatting live in cli.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/diag.h"
#include "ctl/cli.h"
#include "ctl/json.h"
#include "ctl/rpc.h"
#include "google/protobuf/empty.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "transcode/descpool.h"

/* Pointer: the whole of path ("-" = stdin), NUL-terminated, at most max
 * bytes; NULL after printing why. */
static char *read_bounded(const char *path, size_t max, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "error: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n > max) {
            fprintf(stderr, "error: %s is too large (more than %zu bytes)\n",
                    strcmp(path, "-") == 0 ? "the input" : path, max);
            free(buf);
            buf = NULL;
            break;
        }
        if (n + 1 >= cap) {
            if (cap > max + 1) {
                fprintf(stderr, "error: %s is too large\n", path);
                free(buf);
                buf = NULL;
                break;
            }
            cap *= 2;
            buf = realloc(buf, cap);
        }
        if (!buf)
            abort();
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (buf && ferror(f)) {
        fprintf(stderr, "error: cannot read %s\n", path);
        free(buf);
        buf = NULL;
    }
    if (f != stdin)
        fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

static char *read_file(const char *path, size_t *len)
{
    return read_bounded(path, PT_CONF_MAX_FILE_BYTES, len);
}

static char *slurp_pem(const char *path)
{
    size_t len;
    return read_file(path, &len);
}

struct conn {
    struct pt_ctl_rpc *rpc;
    const struct pt_ctl_args *args;
};

static int conn_open(struct conn *c, const struct pt_ctl_args *a)
{
    c->args = a;
    char *ca = NULL, *cert = NULL, *key = NULL;
    if (a->cacert && !(ca = slurp_pem(a->cacert)))
        return -1;
    if (a->cert && (!(cert = slurp_pem(a->cert)) || !(key = slurp_pem(a->key)))) {
        free(ca);
        free(cert);
        return -1;
    }
    c->rpc = pt_ctl_rpc_open(a->addr, ca, cert, key, a->token, a->timeout_s);
    free(ca);
    free(cert);
    free(key);
    return 0;
}

/* Print the error of a failed call; returns the exit code. */
static int report(struct conn *c, struct pt_ctl_rpc_status *st)
{
    pt_ctl_error_format(stderr, st->code, st->message, st->details, st->details_len);
    bool connected = pt_ctl_rpc_connected(c->rpc);
    int rc = pt_ctl_exit_for_status(st->code, connected);
    if (rc == PT_CTL_EXIT_UNREACHABLE)
        fprintf(stderr, "cannot reach the admin service at %s\n", c->args->addr);
    pt_ctl_rpc_status_fini(st);
    return rc;
}

static void method_name(char *buf, size_t n, const char *service, const char *verb,
                        const char *what)
{
    snprintf(buf, n, "/%s/%s%s", service, verb, what);
}

#define ADMIN_SERVICE "portico.admin.v1.Admin"

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);
    if (!m)
        abort();
    protobuf_c_message_init(d, m);
    return m;
}

static void print_yaml(const ProtobufCMessage *m)
{
    size_t len;
    char *y = pt_conf_emit_yaml(m, &len);
    fwrite(y, 1, len, stdout);
    free(y);
}

static int simple(struct conn *c, const char *method, ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp)
{
    struct pt_ctl_rpc_status st;
    int code = pt_ctl_rpc_call(c->rpc, method, req, rd, resp, &st);
    protobuf_c_message_free_unpacked(req, NULL);
    if (code != 0)
        return report(c, &st);
    pt_ctl_rpc_status_fini(&st);
    return 0;
}

static int cmd_get(struct conn *c, const struct pt_ctl_args *a)
{
    char method[128];
    method_name(method, sizeof(method), ADMIN_SERVICE, "Get", a->kind->method);
    ProtobufCMessage *req = new_message(a->kind->get_req), *resp;
    pt_ctl_msg_set_string(req, a->kind->id_field, a->name);
    int rc = simple(c, method, req, a->kind->object, &resp);
    if (rc)
        return rc;
    print_yaml(resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

static int cmd_delete(struct conn *c, const struct pt_ctl_args *a)
{
    char method[128];
    method_name(method, sizeof(method), ADMIN_SERVICE, "Delete", a->kind->method);
    ProtobufCMessage *req = new_message(a->kind->delete_req), *resp;
    pt_ctl_msg_set_string(req, a->kind->id_field, a->name);
    int rc = simple(c, method, req, &google__protobuf__empty__descriptor, &resp);
    if (rc)
        return rc;
    protobuf_c_message_free_unpacked(resp, NULL);
    printf("deleted %s %s\n", a->kind->name, a->name);
    return 0;
}

/* Every page, merged into the first response's repeated field. */
static int cmd_list(struct conn *c, const struct pt_ctl_args *a)
{
    const struct pt_ctl_kind *k = a->kind;
    char method[128];
    snprintf(method, sizeof(method), "/%s/%s", ADMIN_SERVICE, k->list_method);
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(k->list_resp, k->list_field);
    ProtobufCMessage *all = NULL;
    char *token = strdup("");
    for (unsigned page = 0; page < 100000; page++) {
        Portico__Admin__V1__ListRequest *req = (Portico__Admin__V1__ListRequest *)new_message(
            &portico__admin__v1__list_request__descriptor);
        req->page_size = 500;
        pt_ctl_msg_set_string(&req->base, "page_token", token);
        ProtobufCMessage *resp;
        int rc = simple(c, method, &req->base, k->list_resp, &resp);
        if (rc) {
            free(token);
            protobuf_c_message_free_unpacked(all, NULL);
            return rc;
        }
        free(token);
        const char *next = pt_ctl_msg_get_string(resp, "next_page_token");
        token = strdup(next ? next : "");
        if (!all) {
            all = resp;
        } else {
            size_t *na = (size_t *)((char *)all + fd->quantifier_offset);
            size_t *nr = (size_t *)((char *)resp + fd->quantifier_offset);
            ProtobufCMessage ***aa = (ProtobufCMessage ***)((char *)all + fd->offset);
            ProtobufCMessage ***ra = (ProtobufCMessage ***)((char *)resp + fd->offset);
            if (*nr) {
                *aa = realloc(*aa, (*na + *nr) * sizeof(**aa));
                if (!*aa)
                    abort();
                memcpy(*aa + *na, *ra, *nr * sizeof(**ra));
                *na += *nr;
                *nr = 0;
            }
            protobuf_c_message_free_unpacked(resp, NULL);
        }
        if (!*token)
            break;
    }
    free(token);
    /* Only the objects: drop paging fields from the printed document. */
    pt_ctl_msg_set_string(all, "next_page_token", "");
    const ProtobufCFieldDescriptor *total =
        protobuf_c_message_descriptor_get_field_by_name(k->list_resp, "total_size");
    if (total)
        *(uint32_t *)((char *)all + total->offset) = 0;
    if (*(size_t *)((char *)all + fd->quantifier_offset) == 0)
        printf("# no %s\n", k->plural);
    else
        print_yaml(all);
    protobuf_c_message_free_unpacked(all, NULL);
    return 0;
}

static struct pt_conf *load_file(const ProtobufCMessageDescriptor *d, const char *path)
{
    struct pt_diag diag;
    pt_diag_init(&diag);
    struct pt_conf *conf = pt_conf_load_message_file(d, path, &diag);
    if (!conf)
        fprintf(stderr, "%s", pt_diag_text(&diag));
    pt_diag_fini(&diag);
    return conf;
}

static ProtobufCMessage *copy_message(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        abort();
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    free(buf);
    if (!copy)
        abort();
    return copy;
}

static int cmd_create(struct conn *c, const struct pt_ctl_args *a)
{
    const struct pt_ctl_kind *k = a->kind;
    struct pt_conf *conf = load_file(k->object, a->file);
    if (!conf)
        return PT_CTL_EXIT_USAGE;
    ProtobufCMessage *req = new_message(k->create_req), *resp;
    pt_ctl_msg_set_message(req, k->create_req->fields[0].name, copy_message(pt_conf_message(conf)));
    pt_conf_free(conf);
    char method[128];
    method_name(method, sizeof(method), ADMIN_SERVICE, "Create", k->method);
    int rc = simple(c, method, req, k->create_resp, &resp);
    if (rc)
        return rc;
    if (resp->descriptor == &portico__admin__v1__create_api_key_response__descriptor) {
        Portico__Admin__V1__CreateApiKeyResponse *r =
            (Portico__Admin__V1__CreateApiKeyResponse *)resp;
        if (r->api_key)
            print_yaml(&r->api_key->base);
        printf("key: %s\n", r->key);
        fprintf(stderr, "store this key now: it is not shown again\n");
    } else {
        print_yaml(resp);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

static bool confirm(size_t n)
{
    if (!isatty(STDIN_FILENO))
        return false;
    fprintf(stderr, "apply %zu change%s? [y/N] ", n, n == 1 ? "" : "s");
    char line[32];
    if (!fgets(line, sizeof(line), stdin))
        return false;
    return line[0] == 'y' || line[0] == 'Y';
}

static int apply_call(struct conn *c, const char *text, const struct pt_ctl_args *a, bool dry,
                      uint64_t expected, Portico__Admin__V1__ApplyResponse **out)
{
    Portico__Admin__V1__ApplyRequest *req = (Portico__Admin__V1__ApplyRequest *)new_message(
        &portico__admin__v1__apply_request__descriptor);
    pt_ctl_msg_set_string(&req->base, "yaml", text);
    req->dry_run = dry;
    req->keep_absent = a->keep_absent;
    req->expected_version = expected;
    return simple(c, "/" ADMIN_SERVICE "/Apply", &req->base,
                  &portico__admin__v1__apply_response__descriptor, (ProtobufCMessage **)out);
}

static int cmd_apply(struct conn *c, const struct pt_ctl_args *a)
{
    size_t len;
    char *text = read_file(a->file, &len);
    if (!text)
        return PT_CTL_EXIT_USAGE;
    Portico__Admin__V1__ApplyResponse *plan;
    int rc = apply_call(c, text, a, true, 0, &plan);
    if (rc) {
        free(text);
        return rc;
    }
    size_t n = pt_ctl_apply_format(stdout, plan);
    uint64_t version = plan->version;
    protobuf_c_message_free_unpacked(&plan->base, NULL);
    if (n == 0) {
        printf("no changes\n");
        free(text);
        return 0;
    }
    if (a->dry_run) {
        printf("dry run: %zu change%s not applied\n", n, n == 1 ? "" : "s");
        free(text);
        return 0;
    }
    if (!a->yes) {
        if (!isatty(STDIN_FILENO)) {
            fprintf(stderr, "error: not a terminal; pass -y to apply without asking\n");
            free(text);
            return PT_CTL_EXIT_USAGE;
        }
        fflush(stdout);
        if (!confirm(n)) {
            fprintf(stderr, "not applied\n");
            free(text);
            return PT_CTL_EXIT_REFUSED;
        }
    }
    Portico__Admin__V1__ApplyResponse *done;
    rc = apply_call(c, text, a, false, version, &done);
    free(text);
    if (rc)
        return rc;
    printf("applied %zu change%s; version %llu\n", n, n == 1 ? "" : "s",
           (unsigned long long)done->version);
    protobuf_c_message_free_unpacked(&done->base, NULL);
    return 0;
}

static int cmd_export(struct conn *c, const struct pt_ctl_args *a)
{
    ProtobufCMessage *req = new_message(&portico__admin__v1__export_request__descriptor);
    Portico__Admin__V1__ExportResponse *r;
    int rc = simple(c, "/" ADMIN_SERVICE "/Export", req,
                    &portico__admin__v1__export_response__descriptor, (ProtobufCMessage **)&r);
    if (rc)
        return rc;
    const char *yaml = r->yaml ? r->yaml : "";
    char *owned = NULL;
    if (!*yaml && r->config) /* a server that sends only the message */
        yaml = owned = pt_conf_emit_yaml(&r->config->base, NULL);
    if (a->file && strcmp(a->file, "-") != 0) {
        FILE *f = fopen(a->file, "w");
        if (!f || fputs(yaml, f) < 0 || fclose(f) != 0) {
            fprintf(stderr, "error: cannot write %s: %s\n", a->file, strerror(errno));
            rc = PT_CTL_EXIT_USAGE;
        } else {
            fprintf(stderr, "wrote %s (version %llu)\n", a->file, (unsigned long long)r->version);
        }
    } else {
        fputs(yaml, stdout);
    }
    free(owned);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

static int cmd_health(struct conn *c, const struct pt_ctl_args *a)
{
    ProtobufCMessage *req = new_message(&portico__admin__v1__get_health_request__descriptor);
    Portico__Admin__V1__Health *h;
    int rc = simple(c, "/" ADMIN_SERVICE "/GetHealth", req, &portico__admin__v1__health__descriptor,
                    (ProtobufCMessage **)&h);
    if (rc)
        return rc;
    print_yaml(&h->base);
    bool serving = h->status == PORTICO__ADMIN__V1__HEALTH__STATUS__STATUS_SERVING;
    protobuf_c_message_free_unpacked(&h->base, NULL);

    req = new_message(&grpc__health__v1__health_check_request__descriptor);
    Grpc__Health__V1__HealthCheckResponse *hc;
    rc = simple(c, "/grpc.health.v1.Health/Check", req,
                &grpc__health__v1__health_check_response__descriptor, (ProtobufCMessage **)&hc);
    if (rc)
        return rc;
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &grpc__health__v1__health_check_response__serving_status__descriptor, hc->status);
    printf("grpc_health: %s\n", v ? v->name : "UNKNOWN");
    serving =
        serving && hc->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    protobuf_c_message_free_unpacked(&hc->base, NULL);
    return serving ? 0 : PT_CTL_EXIT_REFUSED;
}

static int cmd_registrations(struct conn *c, const struct pt_ctl_args *a)
{
    ProtobufCMessage *req =
        new_message(&portico__admin__v1__list_registrations_request__descriptor);
    if (a->name)
        pt_ctl_msg_set_string(req, "service", a->name);
    Portico__Admin__V1__ListRegistrationsResponse *r;
    int rc = simple(c, "/" ADMIN_SERVICE "/ListRegistrations", req,
                    &portico__admin__v1__list_registrations_response__descriptor,
                    (ProtobufCMessage **)&r);
    if (rc)
        return rc;
    print_yaml(&r->base);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

static int cmd_deregister(struct conn *c, const struct pt_ctl_args *a)
{
    ProtobufCMessage *req =
        new_message(&portico__admin__v1__deregister_instance_request__descriptor);
    pt_ctl_msg_set_string(req, "lease_id", a->name);
    Google__Protobuf__Empty *e;
    int rc = simple(c, "/" ADMIN_SERVICE "/DeregisterInstance", req,
                    &google__protobuf__empty__descriptor, (ProtobufCMessage **)&e);
    if (rc)
        return rc;
    protobuf_c_message_free_unpacked(&e->base, NULL);
    printf("deregistered %s\n", a->name);
    return 0;
}

static int cmd_validate(struct conn *c, const struct pt_ctl_args *a)
{
    struct pt_conf *conf = load_file(&portico__config__v1__config__descriptor, a->file);
    if (!conf)
        return PT_CTL_EXIT_REFUSED;
    ProtobufCMessage *req = new_message(&portico__admin__v1__validate_request__descriptor);
    pt_ctl_msg_set_message(req, "config", copy_message(pt_conf_message(conf)));
    pt_conf_free(conf);
    Portico__Admin__V1__ValidateResponse *r;
    int rc = simple(c, "/" ADMIN_SERVICE "/Validate", req,
                    &portico__admin__v1__validate_response__descriptor, (ProtobufCMessage **)&r);
    if (rc)
        return rc;
    if (r->valid && r->n_violations == 0) {
        printf("valid\n");
    } else {
        printf("invalid:\n");
        for (size_t i = 0; i < r->n_violations; i++)
            printf("  %s: %s\n", *r->violations[i]->field ? r->violations[i]->field : "(config)",
                   r->violations[i]->description);
        rc = PT_CTL_EXIT_REFUSED;
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

static int cmd_descriptors(struct conn *c, const struct pt_ctl_args *a)
{
    const ProtobufCMessageDescriptor *d =
        a->refresh ? &portico__admin__v1__refresh_descriptors_request__descriptor
                   : &portico__admin__v1__get_descriptors_status_request__descriptor;
    ProtobufCMessage *req = new_message(d);
    pt_ctl_msg_set_string(req, "service", a->name);
    Portico__Admin__V1__DescriptorsStatus *r;
    int rc =
        simple(c,
               a->refresh ? "/" ADMIN_SERVICE "/RefreshDescriptors"
                          : "/" ADMIN_SERVICE "/GetDescriptorsStatus",
               req, &portico__admin__v1__descriptors_status__descriptor, (ProtobufCMessage **)&r);
    if (rc)
        return rc;
    print_yaml(&r->base);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

/* json encode|decode: local, no connection (ctl/json.h). Exit 1 on an
 * unreadable or unusable descriptor set, an unknown type or bad input. */
static int cmd_json(const struct pt_ctl_args *a)
{
    size_t set_len, in_len;
    char *set = read_bounded(a->descriptor_set, PT_DESCPOOL_DEFAULT_MAX_BYTES, &set_len);
    if (!set)
        return PT_CTL_EXIT_REFUSED;
    char *in = read_bounded("-", a->max_input, &in_len);
    if (!in) {
        free(set);
        return PT_CTL_EXIT_REFUSED;
    }
    struct pt_json_out out = {0};
    char err[512];
    int rc = pt_ctl_json_run(a, (const uint8_t *)set, set_len, (const uint8_t *)in, in_len, &out,
                             err, sizeof(err));
    free(set);
    free(in);
    if (rc != 0) {
        fprintf(stderr, "error: %s\n", err);
        pt_json_out_fini(&out);
        return PT_CTL_EXIT_REFUSED;
    }
    /* An empty message encodes to no bytes (and out.data may be NULL). */
    if ((out.len && fwrite(out.data, 1, out.len, stdout) != out.len) || fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write the output: %s\n", strerror(errno));
        rc = PT_CTL_EXIT_REFUSED;
    }
    pt_json_out_fini(&out);
    return rc;
}

int main(int argc, char **argv)
{
    struct pt_ctl_args a;
    char err[256];
    if (pt_ctl_args_parse(&a, argc, argv, getenv("PORTICO_ADMIN_TOKEN"), err, sizeof(err)) != 0) {
        fprintf(stderr, "porticoctl: %s\n%s", err, pt_ctl_usage(a.cmd));
        return PT_CTL_EXIT_USAGE;
    }
    if (a.help) {
        fputs(pt_ctl_usage(a.cmd), stdout);
        return 0;
    }
    if (a.json) {
        fprintf(stderr, "porticoctl: -o json is not supported yet; use -o yaml\n");
        return PT_CTL_EXIT_USAGE;
    }
    if (a.cmd == PT_CTL_CMD_JSON)
        return cmd_json(&a);
    struct conn c = {0};
    int rc;
    if (conn_open(&c, &a) != 0) {
        rc = PT_CTL_EXIT_USAGE;
    } else {
        switch (a.cmd) {
        case PT_CTL_CMD_GET:
            rc = cmd_get(&c, &a);
            break;
        case PT_CTL_CMD_LIST:
            rc = cmd_list(&c, &a);
            break;
        case PT_CTL_CMD_DELETE:
            rc = cmd_delete(&c, &a);
            break;
        case PT_CTL_CMD_CREATE:
            rc = cmd_create(&c, &a);
            break;
        case PT_CTL_CMD_APPLY:
            rc = cmd_apply(&c, &a);
            break;
        case PT_CTL_CMD_EXPORT:
            rc = cmd_export(&c, &a);
            break;
        case PT_CTL_CMD_HEALTH:
            rc = cmd_health(&c, &a);
            break;
        case PT_CTL_CMD_VALIDATE:
            rc = cmd_validate(&c, &a);
            break;
        case PT_CTL_CMD_REGISTRATIONS:
            rc = cmd_registrations(&c, &a);
            break;
        case PT_CTL_CMD_DEREGISTER:
            rc = cmd_deregister(&c, &a);
            break;
        case PT_CTL_CMD_DESCRIPTORS:
            rc = cmd_descriptors(&c, &a);
            break;
        default:
            rc = PT_CTL_EXIT_USAGE;
            break;
        }
    }
    fflush(stdout);
    pt_ctl_rpc_close(c.rpc);
    return rc;
}
