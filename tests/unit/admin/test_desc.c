/* admin/desc.c: the descriptor index and the reflection exchange, on the
 * embedded FileDescriptorSet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/desc.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "portico/errors.h"

extern const unsigned char pt_descriptor_set[];
extern const size_t pt_descriptor_set_len;

static struct pt_admin_desc *desc(void)
{
    char err[256] = "";
    struct pt_admin_desc *d =
        pt_admin_desc_new(pt_descriptor_set, pt_descriptor_set_len, err, sizeof(err));
    assert_non_null(d);
    return d;
}

static const char *file_of(const struct pt_admin_desc *d, const char *symbol)
{
    size_t f;
    if (pt_admin_desc_find_symbol(d, symbol, &f) != 0)
        return NULL;
    return pt_admin_desc_file_name(d, f);
}

static void test_desc__symbols_resolve_to_their_files(void **state)
{
    struct pt_admin_desc *d = desc();
    assert_string_equal(file_of(d, "portico.admin.v1.Admin"), "portico/admin/v1/admin.proto");
    assert_string_equal(file_of(d, "portico.admin.v1.Admin.CreateRoute"),
                        "portico/admin/v1/admin.proto");
    assert_string_equal(file_of(d, ".portico.config.v1.Route"), "portico/config/v1/config.proto");
    assert_string_equal(file_of(d, "google.protobuf.DescriptorProto.ExtensionRange"),
                        "google/protobuf/descriptor.proto");
    assert_string_equal(file_of(d, "grpc.health.v1.HealthCheckResponse.ServingStatus"),
                        "grpc/health/v1/health.proto");
    assert_string_equal(file_of(d, "google.api.http"), "google/api/annotations.proto");
    assert_string_equal(file_of(d, "grpc.reflection.v1alpha.ServerReflection"),
                        "grpc/reflection/v1alpha/reflection.proto");
    assert_null(file_of(d, "portico.admin.v1.Admin.NoSuchMethod"));
    assert_null(file_of(d, "portico.admin"));
    assert_null(file_of(d, ""));
    pt_admin_desc_free(d);
}

static void test_desc__file_bytes_are_the_sets_own(void **state)
{
    struct pt_admin_desc *d = desc();
    assert_true(pt_admin_desc_file_count(d) >= 10);
    for (size_t i = 0; i < pt_admin_desc_file_count(d); i++) {
        size_t len;
        const uint8_t *b = pt_admin_desc_file_bytes(d, i, &len);
        /* A slice of the embedded set itself, not a re-encoding. */
        assert_true(b > pt_descriptor_set && b + len <= pt_descriptor_set + pt_descriptor_set_len);
        Google__Protobuf__FileDescriptorProto *fd =
            google__protobuf__file_descriptor_proto__unpack(NULL, len, b);
        assert_non_null(fd);
        assert_string_equal(fd->name, pt_admin_desc_file_name(d, i));
        google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
    }
    pt_admin_desc_free(d);
}

static void test_desc__closure_lists_file_first_and_every_import_once(void **state)
{
    struct pt_admin_desc *d = desc();
    size_t f, *list;
    assert_int_equal(pt_admin_desc_find_file(d, "portico/admin/v1/admin.proto", &f), 0);
    size_t n = pt_admin_desc_closure(d, f, &list);
    assert_int_equal(list[0], f);
    const char *want[] = {"google/api/annotations.proto",     "google/api/http.proto",
                          "google/protobuf/descriptor.proto", "portico/config/v1/config.proto",
                          "google/protobuf/empty.proto",      "google/protobuf/field_mask.proto"};
    for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
        size_t seen = 0;
        for (size_t i = 0; i < n; i++)
            seen += strcmp(pt_admin_desc_file_name(d, list[i]), want[w]) == 0;
        assert_int_equal(seen, 1);
    }
    free(list);
    assert_int_equal(pt_admin_desc_find_file(d, "no/such.proto", &f), PT_ERR_NOT_FOUND);
    pt_admin_desc_free(d);
}

static void test_desc__extensions(void **state)
{
    struct pt_admin_desc *d = desc();
    size_t f;
    assert_int_equal(
        pt_admin_desc_find_extension(d, ".google.protobuf.MethodOptions", 72295728, &f), 0);
    assert_string_equal(pt_admin_desc_file_name(d, f), "google/api/annotations.proto");
    assert_int_equal(pt_admin_desc_find_extension(d, "google.protobuf.MethodOptions", 1, &f),
                     PT_ERR_NOT_FOUND);
    int32_t *nums;
    size_t n;
    assert_int_equal(pt_admin_desc_extension_numbers(d, "google.protobuf.MethodOptions", &nums, &n),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(nums[0], 72295728);
    free(nums);
    assert_int_equal(pt_admin_desc_extension_numbers(d, "portico.config.v1.Route", &nums, &n), 0);
    assert_int_equal(n, 0);
    free(nums);
    /* Not a message: */
    assert_int_equal(pt_admin_desc_extension_numbers(d, "portico.admin.v1.Admin", &nums, &n),
                     PT_ERR_NOT_FOUND);
    pt_admin_desc_free(d);
}

static void test_desc__malformed_set_is_refused(void **state)
{
    char err[256] = "";
    const uint8_t bad_field[] = {0x12, 0x00};
    assert_null(pt_admin_desc_new(bad_field, sizeof(bad_field), err, sizeof(err)));
    assert_non_null(strstr(err, "unexpected field"));
    const uint8_t truncated[] = {0x0a, 0x05, 0x0a, 0x01};
    assert_null(pt_admin_desc_new(truncated, sizeof(truncated), err, sizeof(err)));
    assert_non_null(strstr(err, "truncated"));
    /* A file importing one that is not in the set. */
    Google__Protobuf__FileDescriptorProto fd = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
    char *dep = "missing.proto";
    fd.name = "a.proto";
    fd.n_dependency = 1;
    fd.dependency = &dep;
    uint8_t buf[64];
    size_t len = google__protobuf__file_descriptor_proto__pack(&fd, buf + 2);
    buf[0] = 0x0a;
    buf[1] = (uint8_t)len;
    assert_null(pt_admin_desc_new(buf, len + 2, err, sizeof(err)));
    assert_non_null(strstr(err, "missing.proto"));
}

static Grpc__Reflection__V1__ServerReflectionResponse *
ask(const struct pt_admin_desc *d, Grpc__Reflection__V1__ServerReflectionRequest *rq)
{
    static const char *const services[] = {"a.B", "c.D"};
    uint8_t buf[512];
    size_t len = grpc__reflection__v1__server_reflection_request__pack(rq, buf);
    size_t outlen;
    uint8_t *out = pt_admin_reflect_answer(d, services, 2, buf, len, &outlen);
    assert_non_null(out);
    Grpc__Reflection__V1__ServerReflectionResponse *r =
        grpc__reflection__v1__server_reflection_response__unpack(NULL, outlen, out);
    free(out);
    assert_non_null(r);
    assert_non_null(r->original_request);
    return r;
}

static void test_reflect__answers(void **state)
{
    struct pt_admin_desc *d = desc();
    Grpc__Reflection__V1__ServerReflectionRequest rq =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    rq.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    rq.list_services = "";
    Grpc__Reflection__V1__ServerReflectionResponse *r = ask(d, &rq);
    assert_int_equal(
        r->message_response_case,
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE);
    assert_int_equal(r->list_services_response->n_service, 2);
    assert_string_equal(r->list_services_response->service[1]->name, "c.D");
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    rq.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    rq.file_containing_symbol = "grpc.health.v1.Health.Watch";
    r = ask(d, &rq);
    assert_int_equal(
        r->message_response_case,
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
    assert_int_equal(r->file_descriptor_response->n_file_descriptor_proto, 1);
    size_t f, len;
    assert_int_equal(pt_admin_desc_find_file(d, "grpc/health/v1/health.proto", &f), 0);
    const uint8_t *b = pt_admin_desc_file_bytes(d, f, &len);
    assert_int_equal(r->file_descriptor_response->file_descriptor_proto[0].len, len);
    assert_memory_equal(r->file_descriptor_response->file_descriptor_proto[0].data, b, len);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    rq.file_containing_symbol = "nope.Nope";
    r = ask(d, &rq);
    assert_int_equal(
        r->message_response_case,
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
    assert_int_equal(r->error_response->error_code, 5);
    assert_non_null(strstr(r->error_response->error_message, "nope.Nope"));
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
    pt_admin_desc_free(d);
}

static void test_reflect__garbage_request_is_null(void **state)
{
    struct pt_admin_desc *d = desc();
    const uint8_t garbage[] = {0x1a, 0x7f, 0x00};
    size_t outlen;
    assert_null(pt_admin_reflect_answer(d, NULL, 0, garbage, sizeof(garbage), &outlen));
    pt_admin_desc_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_desc__symbols_resolve_to_their_files),
        cmocka_unit_test(test_desc__file_bytes_are_the_sets_own),
        cmocka_unit_test(test_desc__closure_lists_file_first_and_every_import_once),
        cmocka_unit_test(test_desc__extensions),
        cmocka_unit_test(test_desc__malformed_set_is_refused),
        cmocka_unit_test(test_reflect__answers),
        cmocka_unit_test(test_reflect__garbage_request_is_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
