/*
 * The reflection fetch against an in-process fake server answering from the
 * descpool test protos' descriptor set, its limits and failure modes, and
 * the registry that publishes pools.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "portico/errors.h"
#include "transcode/reflect.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest Req;
typedef Grpc__Reflection__V1__ServerReflectionResponse Resp;

static Google__Protobuf__FileDescriptorSet *set;
static uint8_t set_bytes[1 << 20];
static size_t set_len;

/* How the fake server misbehaves. */
struct fake {
    bool symbol_error;  /* error_response to file_containing_symbol */
    bool whole_closure; /* answer a symbol with its file and every import */
    bool wrong_file;    /* file_by_filename answers another file */
    bool changed_twice; /* common.proto's second copy differs */
    bool garbage;       /* answers are not ServerReflectionResponse */
    bool list_for_file; /* list_services_response to every file question */
    size_t requests;
};

static int setup(void **state)
{
    (void)state;
    FILE *f = fopen(PT_TC_DESC, "rb");
    if (!f)
        return -1;
    set_len = fread(set_bytes, 1, sizeof(set_bytes), f);
    fclose(f);
    set = google__protobuf__file_descriptor_set__unpack(NULL, set_len, set_bytes);
    return set ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
    return 0;
}

static const Google__Protobuf__FileDescriptorProto *file_named(const char *name)
{
    for (size_t i = 0; i < set->n_file; i++)
        if (strcmp(set->file[i]->name, name) == 0)
            return set->file[i];
    return NULL;
}

static const Google__Protobuf__FileDescriptorProto *file_of_service(const char *full)
{
    for (size_t i = 0; i < set->n_file; i++) {
        const Google__Protobuf__FileDescriptorProto *fp = set->file[i];
        for (size_t j = 0; j < fp->n_service; j++) {
            char buf[256];
            snprintf(buf, sizeof(buf), "%s.%s", fp->package, fp->service[j]->name);
            if (strcmp(buf, full) == 0)
                return fp;
        }
    }
    return NULL;
}

static void add_packed(ProtobufCBinaryData *out, const Google__Protobuf__FileDescriptorProto *fp)
{
    out->len = google__protobuf__file_descriptor_proto__get_packed_size(fp);
    out->data = malloc(out->len);
    google__protobuf__file_descriptor_proto__pack(fp, out->data);
}

/* Append fp and (closure) its imports, depth first, each once. */
static void add_closure(ProtobufCBinaryData *v, size_t *n, const char **seen, size_t *nseen,
                        const Google__Protobuf__FileDescriptorProto *fp)
{
    for (size_t i = 0; i < *nseen; i++)
        if (strcmp(seen[i], fp->name) == 0)
            return;
    seen[(*nseen)++] = fp->name;
    add_packed(&v[(*n)++], fp);
    for (size_t i = 0; i < fp->n_dependency; i++)
        add_closure(v, n, seen, nseen, file_named(fp->dependency[i]));
}

static uint8_t *serve(struct fake *fk, const uint8_t *in, size_t in_len, size_t *out_len)
{
    fk->requests++;
    Req *q = grpc__reflection__v1__server_reflection_request__unpack(NULL, in_len, in);
    assert_non_null(q);
    Resp r = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    Grpc__Reflection__V1__ListServiceResponse ls =
        GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1__ServiceResponse svc[3], *svcp[3];
    Grpc__Reflection__V1__FileDescriptorResponse fr =
        GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1__ErrorResponse er = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    ProtobufCBinaryData files[64];
    size_t nfiles = 0;
    const char *names[] = {"pt.test.kitchen.Kitchen", "grpc.reflection.v1.ServerReflection",
                           "pt.test.legacy.Legacy"};
    bool list = q->message_request_case ==
                GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    if (list ||
        (fk->list_for_file &&
         q->message_request_case ==
             GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME)) {
        for (int i = 0; i < 3; i++) {
            grpc__reflection__v1__service_response__init(&svc[i]);
            svc[i].name = (char *)names[i];
            svcp[i] = &svc[i];
        }
        ls.n_service = 3;
        ls.service = svcp;
        r.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        r.list_services_response = &ls;
    } else if (
        q->message_request_case ==
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL) {
        const Google__Protobuf__FileDescriptorProto *fp =
            file_of_service(q->file_containing_symbol);
        if (!fp || fk->symbol_error) {
            er.error_code = 5;
            er.error_message = "symbol not found";
            r.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
            r.error_response = &er;
        } else {
            const char *seen[64];
            size_t nseen = 0;
            if (fk->whole_closure)
                add_closure(files, &nfiles, seen, &nseen, fp);
            else
                add_packed(&files[nfiles++], fp);
        }
    } else {
        const Google__Protobuf__FileDescriptorProto *fp = file_named(q->file_by_filename);
        if (fk->wrong_file)
            fp = file_named("common.proto") == fp ? file_named("kitchen.proto")
                                                  : file_named("common.proto");
        if (!fp) {
            er.error_code = 5;
            er.error_message = "file not found";
            r.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
            r.error_response = &er;
        } else {
            add_packed(&files[nfiles++], fp);
            if (fk->changed_twice && strcmp(fp->name, "common.proto") == 0) {
                /* the same file again, one byte longer: an extra field */
                files[nfiles].len = files[0].len + 2;
                files[nfiles].data = malloc(files[nfiles].len);
                memcpy(files[nfiles].data, files[0].data, files[0].len);
                files[nfiles].data[files[0].len] = 0x58; /* field 11, varint */
                files[nfiles].data[files[0].len + 1] = 0x01;
                nfiles++;
            }
        }
    }
    if (nfiles) {
        fr.n_file_descriptor_proto = nfiles;
        fr.file_descriptor_proto = files;
        r.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
        r.file_descriptor_response = &fr;
    }
    uint8_t *out;
    if (fk->garbage) {
        *out_len = 3;
        out = malloc(3);
        memcpy(out, "\x0a\x7f\x01", 3);
    } else {
        *out_len = protobuf_c_message_get_packed_size(&r.base);
        out = malloc(*out_len ? *out_len : 1);
        protobuf_c_message_pack(&r.base, out);
    }
    for (size_t i = 0; i < nfiles; i++)
        free(files[i].data);
    grpc__reflection__v1__server_reflection_request__free_unpacked(q, NULL);
    return out;
}

/* Drive f against fk to the end (bounded); returns the last status. */
static int drive(struct pt_tc_reflect_fetch *f, struct fake *fk)
{
    for (int i = 0; i < 1000; i++) {
        uint8_t *req;
        size_t len;
        int rc = pt_tc_reflect_fetch_next(f, &req, &len);
        if (rc <= 0)
            return rc;
        size_t out_len;
        uint8_t *out = serve(fk, req, len, &out_len);
        free(req);
        rc = pt_tc_reflect_fetch_on_response(f, out, out_len);
        free(out);
        if (rc < 0)
            return rc;
    }
    fail_msg("the fetch did not end");
    return -1;
}

static void test_reflect__fetch_follows_imports_by_name(void **state)
{
    (void)state;
    struct fake fk = {0};
    struct pt_tc_reflect_fetch *f = pt_tc_reflect_fetch_new(NULL);
    assert_int_equal(drive(f, &fk), 0);
    assert_string_equal(pt_tc_reflect_fetch_error(f), "");
    const char *const *names;
    assert_int_equal(pt_tc_reflect_fetch_services(f, &names), 2); /* reflection left out */
    assert_string_equal(names[0], "pt.test.kitchen.Kitchen");
    assert_string_equal(names[1], "pt.test.legacy.Legacy");
    /* every file of the set but optional.proto, which declares no service
     * and which nothing imports */
    assert_non_null(file_named("optional.proto"));
    assert_int_equal(pt_tc_reflect_fetch_file_count(f), set->n_file - 1);
    /* one list, two symbols, one request per import file */
    assert_int_equal(fk.requests, 1 + 2 + (set->n_file - 1 - 2));
    char err[256];
    struct pt_descpool *p = pt_tc_reflect_fetch_pool(f, NULL, err, sizeof(err));
    if (!p)
        fail_msg("pool: %s", err);
    assert_non_null(pt_descpool_find_method(p, PT_STR("/pt.test.kitchen.Kitchen/Get")));
    assert_non_null(pt_descpool_find_message(p, PT_STR("pt.test.common.Point")));
    assert_non_null(pt_descpool_find_service(p, PT_STR("pt.test.legacy.Legacy")));
    pt_descpool_unref(p);
    pt_tc_reflect_fetch_free(f);
}

static void test_reflect__whole_closure_in_one_answer_needs_no_more_requests(void **state)
{
    (void)state;
    struct fake fk = {.whole_closure = true};
    struct pt_tc_reflect_fetch *f = pt_tc_reflect_fetch_new(NULL);
    assert_int_equal(drive(f, &fk), 0);
    assert_int_equal(fk.requests, 3); /* files repeated between answers count once */
    assert_int_equal(pt_tc_reflect_fetch_file_count(f), set->n_file - 1);
    char err[256];
    struct pt_descpool *p = pt_tc_reflect_fetch_pool(f, NULL, err, sizeof(err));
    assert_non_null(p);
    pt_descpool_unref(p);
    pt_tc_reflect_fetch_free(f);
}

static void expect_failure(struct fake fk, const struct pt_tc_reflect_limits *lim, int code,
                           const char *want)
{
    struct pt_tc_reflect_fetch *f = pt_tc_reflect_fetch_new(lim);
    int rc = drive(f, &fk);
    if (rc != code || !strstr(pt_tc_reflect_fetch_error(f), want))
        fail_msg("got %d \"%s\", want %d \"%s\"", rc, pt_tc_reflect_fetch_error(f), code, want);
    /* a failed fetch builds no pool and says why */
    char err[256];
    assert_null(pt_tc_reflect_fetch_pool(f, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, want));
    uint8_t *req;
    size_t len;
    assert_true(pt_tc_reflect_fetch_next(f, &req, &len) < 0);
    pt_tc_reflect_fetch_free(f);
}

static void test_reflect__server_errors_fail_the_fetch(void **state)
{
    (void)state;
    expect_failure((struct fake){.symbol_error = true}, NULL, PT_ERR_NOT_FOUND,
                   "symbol \"pt.test.kitchen.Kitchen\" not served: code 5: symbol not found");
    expect_failure((struct fake){.wrong_file = true}, NULL, PT_ERR_INVALID, "got other files");
    expect_failure((struct fake){.changed_twice = true}, NULL, PT_ERR_INVALID,
                   "common.proto: served twice with different contents");
    expect_failure((struct fake){.garbage = true}, NULL, PT_ERR_INVALID,
                   "not a ServerReflectionResponse");
    expect_failure((struct fake){.list_for_file = true}, NULL, PT_ERR_INVALID,
                   "list_services_response to another question");
}

static void test_reflect__limits(void **state)
{
    (void)state;
    struct pt_tc_reflect_limits l = {.max_files = 3};
    expect_failure((struct fake){0}, &l, PT_ERR_LIMIT, "more than 3 files");
    l = (struct pt_tc_reflect_limits){.max_requests = 4};
    expect_failure((struct fake){0}, &l, PT_ERR_LIMIT, "more than 4 reflection requests");
    l = (struct pt_tc_reflect_limits){.max_bytes = 2000};
    expect_failure((struct fake){0}, &l, PT_ERR_LIMIT, "more than 2000 bytes");
    l = (struct pt_tc_reflect_limits){.max_services = 1};
    expect_failure((struct fake){0}, &l, PT_ERR_LIMIT, "more than 1 services");
}

static void test_reflect__protocol_misuse(void **state)
{
    (void)state;
    struct pt_tc_reflect_fetch *f = pt_tc_reflect_fetch_new(NULL);
    /* an answer before any question */
    assert_int_equal(pt_tc_reflect_fetch_on_response(f, NULL, 0), PT_ERR_INVALID);
    pt_tc_reflect_fetch_free(f);
    f = pt_tc_reflect_fetch_new(NULL);
    uint8_t *req;
    size_t len;
    assert_int_equal(pt_tc_reflect_fetch_next(f, &req, &len), 1);
    free(req);
    /* a second question before the first was answered */
    assert_int_equal(pt_tc_reflect_fetch_next(f, &req, &len), PT_ERR_INVALID);
    pt_tc_reflect_fetch_free(f);
    /* not finished: no pool */
    f = pt_tc_reflect_fetch_new(NULL);
    char err[256];
    assert_null(pt_tc_reflect_fetch_pool(f, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "not finished"));
    pt_tc_reflect_fetch_free(f);
}

static struct pt_descpool *whole_pool(void)
{
    char err[256];
    struct pt_descpool *p = pt_descpool_new_from_set(set_bytes, set_len, NULL, err, sizeof(err));
    assert_non_null(p);
    return p;
}

static void test_reflect__registry_publishes_and_keeps_the_last_good_pool(void **state)
{
    (void)state;
    struct pt_tc_reflect_registry *r = pt_tc_reflect_registry_new();
    uint64_t gen = 99;
    assert_null(pt_tc_reflect_pool_ref(r, "orders", &gen));
    assert_int_equal(gen, 0);
    struct pt_tc_reflect_status st;
    assert_int_equal(pt_tc_reflect_status_get(r, "orders", &st), PT_ERR_NOT_FOUND);
    struct pt_tc_reflect_entry *e = pt_tc_reflect_entry_get(r, "orders");
    assert_ptr_equal(e, pt_tc_reflect_entry_get(r, "orders"));
    assert_int_equal(pt_tc_reflect_entry_generation(e), 0);

    const char *svcs[] = {"pt.test.kitchen.Kitchen", "pt.test.legacy.Legacy"};
    assert_int_equal(pt_tc_reflect_publish(r, "orders", whole_pool(), svcs, 2), 1);
    assert_int_equal(pt_tc_reflect_entry_generation(e), 1);
    struct pt_descpool *held = pt_tc_reflect_pool_ref(r, "orders", &gen);
    assert_non_null(held);
    assert_int_equal(gen, 1);
    pt_tc_reflect_record_failure(r, "orders", "connection refused");
    assert_int_equal(pt_tc_reflect_status_get(r, "orders", &st), 0);
    assert_int_equal(st.generation, 1);
    assert_int_equal(st.failures, 1);
    assert_string_equal(st.last_error, "connection refused");
    assert_string_equal(st.services, "pt.test.kitchen.Kitchen,pt.test.legacy.Legacy");
    assert_true(st.n_messages > 10);
    /* the failure kept the pool */
    struct pt_descpool *again = pt_tc_reflect_pool_ref(r, "orders", &gen);
    assert_ptr_equal(again, held);
    pt_descpool_unref(again);
    /* a new publish swaps it; the old one lives while held */
    assert_int_equal(pt_tc_reflect_publish(r, "orders", whole_pool(), svcs, 1), 2);
    assert_int_equal(pt_tc_reflect_status_get(r, "orders", &st), 0);
    assert_int_equal(st.failures, 0);
    assert_string_equal(st.last_error, "");
    assert_string_equal(st.services, "pt.test.kitchen.Kitchen");
    struct pt_descpool *now = pt_tc_reflect_pool_ref(r, "orders", &gen);
    assert_int_equal(gen, 2);
    assert_ptr_not_equal(now, held);
    assert_non_null(pt_descpool_find_message(held, PT_STR("pt.test.common.Point")));
    pt_descpool_unref(held);
    pt_descpool_unref(now);
    /* the service list keeps whole names only */
    char longname[600];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    const char *many[] = {"a.B", longname, longname, "c.D"};
    pt_tc_reflect_publish(r, "orders", whole_pool(), many, 4);
    assert_int_equal(pt_tc_reflect_status_get(r, "orders", &st), 0);
    assert_int_equal(strlen(st.services), 4 + 599);
    assert_int_equal(strncmp(st.services, "a.B,xxx", 7), 0);
    /* other services are independent */
    assert_null(pt_tc_reflect_pool_ref(r, "billing", NULL));
    pt_tc_reflect_registry_free(r);
    assert_ptr_equal(pt_tc_reflect_registry_default(), pt_tc_reflect_registry_default());
}

static void test_reflect__backoff_doubles_to_a_minute(void **state)
{
    (void)state;
    assert_int_equal(pt_tc_reflect_backoff_ms(0), 1000);
    assert_int_equal(pt_tc_reflect_backoff_ms(1), 1000);
    assert_int_equal(pt_tc_reflect_backoff_ms(2), 2000);
    assert_int_equal(pt_tc_reflect_backoff_ms(6), 32000);
    assert_int_equal(pt_tc_reflect_backoff_ms(7), 60000);
    assert_int_equal(pt_tc_reflect_backoff_ms(1000000), 60000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reflect__fetch_follows_imports_by_name),
        cmocka_unit_test(test_reflect__whole_closure_in_one_answer_needs_no_more_requests),
        cmocka_unit_test(test_reflect__server_errors_fail_the_fetch),
        cmocka_unit_test(test_reflect__limits),
        cmocka_unit_test(test_reflect__protocol_misuse),
        cmocka_unit_test(test_reflect__registry_publishes_and_keeps_the_last_good_pool),
        cmocka_unit_test(test_reflect__backoff_doubles_to_a_minute),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
