/*
 * Validation: a minimal valid config passes, and each rule rejects what it
 * must with a "file:line:col: field.path: message" line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "google/protobuf/struct.pb-c.h"
#include "portico/errors.h"
#include "portico/filter.h"

static struct pt_conf *conf;
static struct pt_diag diag;
static char tmpdir[64];
static char cert[128], key[128];

static const struct pt_filter_type dummy_type = {
    .name = "dummy",
    .abi_version = PT_ABI_VERSION,
};

static int group_setup(void **state)
{
    if (pt_filter_register(&dummy_type) != 0)
        return -1;
    strcpy(tmpdir, "/tmp/pt_validateXXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
    snprintf(key, sizeof(key), "%s/key.pem", tmpdir);
    const char *paths[] = {cert, key};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "w");
        if (!f)
            return -1;
        fputs("-----BEGIN PLACEHOLDER-----\n", f);
        fclose(f);
    }
    return 0;
}

static int group_teardown(void **state)
{
    unlink(cert);
    unlink(key);
    rmdir(tmpdir);
    return 0;
}

static int setup(void **state)
{
    conf = NULL;
    pt_diag_init(&diag);
    return 0;
}

static int teardown(void **state)
{
    pt_conf_free(conf);
    conf = NULL;
    pt_diag_fini(&diag);
    return 0;
}

/* A valid base every test extends: one listener, one service, one route. */
#define BASE                                           \
    "listeners:\n"                                     \
    "  - address: \":8080\"\n"                         \
    "services:\n"                                      \
    "  - name: api\n"                                  \
    "    instances: [{host: 127.0.0.1, port: 9000}]\n" \
    "routes:\n"                                        \
    "  - path_prefix: /\n"                             \
    "    service: api\n"

static int validate(const char *text)
{
    /* Several checks in one test each start afresh. */
    pt_conf_free(conf);
    pt_diag_fini(&diag);
    pt_diag_init(&diag);
    conf = pt_conf_load_string("portico.yaml", text, strlen(text), &diag);
    if (!conf)
        fail_msg("load failed:\n%s", pt_diag_text(&diag));
    return pt_conf_validate(conf, &diag);
}

static void valid(const char *text)
{
    if (validate(text) != 0)
        fail_msg("validation failed:\n%s", pt_diag_text(&diag));
    assert_int_equal(diag.errors, 0);
}

static void invalid(const char *text, const char *want)
{
    assert_int_equal(validate(text), PT_ERR_CONFIG);
    if (!strstr(pt_diag_text(&diag), want))
        fail_msg("diagnostics:\n%s\ndo not contain: %s", pt_diag_text(&diag), want);
}

/* Replace the single %s in fmt with a path, for configs that name files. */
static char *with_path(const char *fmt, const char *a, const char *b)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), fmt, a, b);
    return buf;
}

/* ---- top level ---- */

static void test_validate__minimal_config_is_valid(void **state)
{
    valid(BASE);
}

static void test_validate__empty_config_needs_a_listener(void **state)
{
    invalid("", "portico.yaml: listeners: at least one listener is required");
}

static void test_validate__workers_are_bounded(void **state)
{
    valid(BASE "workers: 1024\n");
    pt_conf_free(conf);
    conf = NULL;
    invalid(BASE "workers: 1025\n", "portico.yaml:9:10: workers: 1025 is too large (at most 1024)");
}

static void test_validate__drain_timeout_is_bounded(void **state)
{
    invalid(BASE "drain_timeout_ms: 3600001\n", "drain_timeout_ms: 3600001 is too large");
}

static void test_validate__non_config_document_is_rejected(void **state)
{
    const char *text = "a: 1\n";
    conf = pt_conf_load_message_string(&google__protobuf__struct__descriptor, "s.yaml", text,
                                       strlen(text), &diag);
    assert_non_null(conf);
    assert_int_equal(pt_conf_validate(conf, &diag), PT_ERR_CONFIG);
}

/* ---- listeners ---- */

static void test_validate__listener_address_forms_are_accepted(void **state)
{
    valid("listeners:\n"
          "  - address: \":8080\"\n"
          "  - address: \"127.0.0.1:8081\"\n"
          "  - address: \"[::1]:8082\"\n"
          "  - address: \"localhost:8083\"\n"
          "  - address: \"0.0.0.0:8084\"\n"
          "  - address: \"[::]:8085\"\n");
}

static void test_validate__listener_addresses_parse(void **state)
{
    struct pt_conf_address a;
    const char *why;
    assert_int_equal(pt_conf_address_parse(":80", &a, &why), 0);
    assert_int_equal(a.port, 80);
    assert_string_equal(a.host, "");
    assert_int_equal(pt_conf_address_parse("0.0.0.0:443", &a, &why), 0);
    assert_int_equal(pt_conf_address_parse("localhost:8080", &a, &why), 0);
    assert_memory_equal(a.ip, "\x7f\x00\x00\x01", 4);
    assert_int_equal(pt_conf_address_parse("[::1]:8443", &a, &why), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(pt_conf_address_parse("[::]:1", &a, &why), 0);
    assert_int_equal(pt_conf_address_parse("10.1.2.3:65535", &a, &why), 0);

    assert_int_equal(pt_conf_address_parse("", &a, &why), PT_ERR_CONFIG);
    assert_int_equal(pt_conf_address_parse("8080", &a, &why), PT_ERR_CONFIG);
    assert_int_equal(pt_conf_address_parse(":0", &a, &why), PT_ERR_CONFIG);
    assert_int_equal(pt_conf_address_parse(":65536", &a, &why), PT_ERR_CONFIG);
    assert_int_equal(pt_conf_address_parse(":+80", &a, &why), PT_ERR_CONFIG);
    assert_int_equal(pt_conf_address_parse("host:", &a, &why), PT_ERR_CONFIG);
    assert_int_equal(pt_conf_address_parse("example.com:80", &a, &why), PT_ERR_CONFIG);
    assert_string_equal(why, "host must be an IP address or localhost");
    assert_int_equal(pt_conf_address_parse("::1:80", &a, &why), PT_ERR_CONFIG);
    assert_int_equal(pt_conf_address_parse("[::1]80", &a, &why), PT_ERR_CONFIG);
    assert_int_equal(pt_conf_address_parse("[1.2.3.4]:80", &a, &why), PT_ERR_CONFIG);
    assert_int_equal(pt_conf_address_parse("256.0.0.1:80", &a, &why), PT_ERR_CONFIG);
}

static void test_validate__bad_listener_address_is_reported(void **state)
{
    invalid("listeners: [{address: \"example.com:80\"}]\n",
            "portico.yaml:1:23: listeners[0].address: \"example.com:80\": host must be an IP "
            "address or localhost");
}

static void test_validate__missing_listener_address_is_reported(void **state)
{
    invalid("listeners: [{name: x}]\n", "listeners[0].address: address is required");
}

static void test_validate__listener_names_default_to_address_and_must_be_unique(void **state)
{
    invalid("listeners:\n  - address: \":80\"\n  - address: \"127.0.0.1:81\"\n    name: \":80\"\n",
            "portico.yaml:4:11: listeners[1].name: duplicate listener name \":80\" (also "
            "listeners[0])");
}

static void test_validate__two_listeners_on_one_address_are_rejected(void **state)
{
    invalid("listeners:\n  - {name: a, address: \"localhost:80\"}\n"
            "  - {name: b, address: \"127.0.0.1:80\"}\n",
            "listeners[1].address: listeners[0] already listens on 127.0.0.1:80");
}

static void test_validate__ipv6_listeners_normalize_for_duplicates(void **state)
{
    invalid("listeners:\n  - {name: a, address: \"[::1]:80\"}\n"
            "  - {name: b, address: \"[0:0::1]:80\"}\n",
            "listeners[0] already listens on [::1]:80");
}

static void test_validate__duplicate_protocol_is_rejected(void **state)
{
    invalid("listeners: [{address: \":80\", protocols: [http1, h2c, http1]}]\n",
            "listeners[0].protocols[2]: http1 is listed twice");
}

static void test_validate__h2_requires_tls(void **state)
{
    invalid("listeners: [{address: \":80\", protocols: [h2]}]\n",
            "listeners[0].protocols[0]: h2 is HTTP/2 over TLS and needs tls");
}

static void test_validate__h2c_is_not_allowed_with_tls(void **state)
{
    invalid(with_path("listeners: [{address: \":443\", protocols: [h2c], "
                      "tls: {cert_file: %s, key_file: %s}}]\n",
                      cert, key),
            "listeners[0].protocols[0]: h2c is cleartext and cannot be served with tls");
}

static void test_validate__tls_listener_with_readable_files_is_valid(void **state)
{
    valid(with_path("listeners: [{address: \":443\", protocols: [http1, h2], "
                    "tls: {cert_file: %s, key_file: %s}}]\n",
                    cert, key));
}

static void test_validate__tls_listener_needs_cert_and_key(void **state)
{
    invalid("listeners: [{address: \":443\", tls: {}}]\n",
            "listeners[0].tls.cert_file: cert_file is required with tls");
    assert_non_null(strstr(pt_diag_text(&diag), "listeners[0].tls.key_file: key_file is required"));
}

static void test_validate__tls_files_must_be_readable(void **state)
{
    invalid(with_path("listeners: [{address: \":443\", tls: {cert_file: %s, key_file: %s}}]\n",
                      cert, "/nonexistent/key.pem"),
            "listeners[0].tls.key_file: cannot read \"/nonexistent/key.pem\": No such file");
}

static void test_validate__tls_file_may_not_be_a_directory(void **state)
{
    invalid(with_path("listeners: [{address: \":443\", tls: {cert_file: %s, key_file: %s}}]\n",
                      cert, tmpdir),
            "is a directory, not a file");
}

/* mTLS listener settings; extra is the rest of the tls map (files exist). */
static char *mtls(const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "listeners: [{address: \":443\", tls: {cert_file: %s, key_file: %s, %s}}]\n", cert,
             key, extra);
    return buf;
}

static void test_validate__mtls_modes_with_a_ca_are_valid(void **state)
{
    char extra[512];
    const char *modes[] = {"required", "optional"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(extra, sizeof(extra),
                 "client_ca_file: %s, client_cert: %s, verify_depth: 16, crl_file: %s", cert,
                 modes[i], cert);
        valid(mtls(extra));
    }
    snprintf(extra, sizeof(extra), "client_ca_file: %s", cert);
    valid(mtls(extra)); /* required by default */
    valid(mtls("client_cert: none"));
}

static void test_validate__mtls_needs_a_ca_bundle(void **state)
{
    invalid(mtls("client_cert: required"),
            "listeners[0].tls.client_ca_file: client_cert: required needs client_ca_file");
    invalid(mtls("client_cert: optional"), "client_cert: optional needs client_ca_file");
    invalid(mtls("verify_depth: 2"),
            "listeners[0].tls.verify_depth: verify_depth needs client_ca_file");
    char extra[512];
    snprintf(extra, sizeof(extra), "crl_file: %s", cert);
    invalid(mtls(extra), "listeners[0].tls.crl_file: crl_file needs client_ca_file");
}

static void test_validate__mtls_contradictions_and_limits(void **state)
{
    char extra[512];
    snprintf(extra, sizeof(extra), "client_ca_file: %s, client_cert: none", cert);
    invalid(mtls(extra), "client_ca_file is unused with client_cert: none");
    snprintf(extra, sizeof(extra), "client_ca_file: %s, verify_depth: 17", cert);
    invalid(mtls(extra), "listeners[0].tls.verify_depth: 17 is too large (at most 16)");
    invalid(mtls("client_ca_file: /nonexistent/ca.pem"),
            "listeners[0].tls.client_ca_file: cannot read \"/nonexistent/ca.pem\"");
    snprintf(extra, sizeof(extra), "client_ca_file: %s, crl_file: /nonexistent/crl.pem", cert);
    invalid(mtls(extra), "listeners[0].tls.crl_file: cannot read \"/nonexistent/crl.pem\"");
}

/* ---- services ---- */

#define LISTENER "listeners: [{address: \":80\"}]\n"

static void test_validate__service_needs_a_name(void **state)
{
    invalid(LISTENER "services: [{instances: [{host: a, port: 1}]}]\n",
            "services[0].name: a service needs a name");
}

static void test_validate__service_name_charset_is_restricted(void **state)
{
    invalid(LISTENER "services: [{name: \"a/b\", instances: [{host: a, port: 1}]}]\n",
            "services[0].name: \"a/b\": a service name uses only letters, digits");
}

static void test_validate__service_names_are_unique(void **state)
{
    invalid(LISTENER "services:\n  - {name: a, instances: [{host: a, port: 1}]}\n"
                     "  - {name: a, instances: [{host: b, port: 1}]}\n",
            "portico.yaml:4:12: services[1].name: duplicate service name \"a\" (also services[0])");
}

static void test_validate__service_needs_an_instance(void **state)
{
    invalid(LISTENER "services: [{name: a}]\n",
            "services[0].instances: a service needs at least one instance");
}

static void test_validate__instance_host_and_port_are_checked(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: \"bad_host\", port: 0}]}]\n",
            "services[0].instances[0].host: \"bad_host\" is neither an IP address nor a host name");
    assert_non_null(
        strstr(pt_diag_text(&diag), "services[0].instances[0].port: port is required (1..65535)"));
}

static void test_validate__instance_host_names_and_ips_are_accepted(void **state)
{
    valid(LISTENER "services: [{name: a, instances: [{host: users.internal, port: 1},"
                   " {host: \"::1\", port: 2}, {host: backend-1.example.com., port: 3}]}]\n");
}

static void test_validate__instance_port_above_65535_is_rejected(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 65536}]}]\n",
            "port 65536 is out of range (1..65535)");
}

static void test_validate__instance_weight_is_bounded(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1, weight: 10001}]}]\n",
            "services[0].instances[0].weight: 10001 is too large (at most 10000)");
}

static void test_validate__duplicate_instance_is_rejected(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}, {host: a, port: 1}]}]\n",
            "services[0].instances[1]: a:1 is listed twice (also instances[0])");
}

static void test_validate__health_check_is_valid(void **state)
{
    valid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], panic_mode: true, "
                   "health_check: {path: /healthz, interval_ms: 1000, timeout_ms: 500, "
                   "jitter_ms: 100, healthy_threshold: 1, unhealthy_threshold: 2, type: http, "
                   "expected_statuses: [\"200-299\", \"418\"], host: example.com}, "
                   "outlier_detection: {consecutive_failures: 3, base_ejection_time_ms: 1000, "
                   "max_ejection_time_ms: 5000, max_ejection_percent: 100}}, "
                   "{name: g, protocol: grpc, instances: [{host: a, port: 2}], "
                   "health_check: {type: grpc, grpc_service: pkg.Svc}}]\n");
}

static void test_validate__health_check_bad_status_range(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], "
                     "health_check: {expected_statuses: [\"299-200\"]}}]\n",
            "services[0].health_check.expected_statuses[0]: \"299-200\": a status (100..599) or "
            "a range");
}

static void test_validate__health_check_interval_is_bounded(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], "
                     "health_check: {interval_ms: 5}}]\n",
            "services[0].health_check.interval_ms: 5 is out of range (10..3600000, or 0 for the "
            "default)");
}

static void test_validate__health_check_path_is_a_path(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], "
                     "health_check: {path: healthz}}]\n",
            "services[0].health_check.path: \"healthz\": a health check path starts with '/'");
}

static void test_validate__grpc_health_check_needs_h2(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], "
                     "health_check: {type: grpc}}]\n",
            "services[0].health_check.type: gRPC health checks need an HTTP/2 service");
}

static void test_validate__grpc_service_needs_grpc_check(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], "
                     "health_check: {grpc_service: x}}]\n",
            "services[0].health_check.grpc_service: grpc_service needs type grpc");
}

static void test_validate__outlier_detection_bounds(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], "
                     "outlier_detection: {max_ejection_percent: 101}}]\n",
            "services[0].outlier_detection.max_ejection_percent: 101 is out of range (1..100, or 0 "
            "for the default)");
}

static void test_validate__reflection_rules(void **state)
{
    valid(LISTENER "services: [{name: a, protocol: grpc, instances: [{host: a, port: 1}], "
                   "reflection: true, descriptor_refresh_ms: 1000}]\n");
    valid(LISTENER "services: [{name: a, protocol: grpc, instances: [{host: a, port: 1}], "
                   "reflection: true}]\n");
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], reflection: true}]\n",
            "services[0].reflection: reflection needs protocol grpc");
    invalid(LISTENER "services: [{name: a, protocol: grpc, instances: [{host: a, port: 1}], "
                     "reflection: true, descriptor_refresh_ms: 999}]\n",
            "services[0].descriptor_refresh_ms: 999: descriptor_refresh_ms is 0");
    invalid(LISTENER "services: [{name: a, protocol: grpc, instances: [{host: a, port: 1}], "
                     "descriptor_refresh_ms: 5000}]\n",
            "services[0].descriptor_refresh_ms: descriptor_refresh_ms needs reflection: true");
    invalid(LISTENER "services: [{name: a, protocol: grpc, instances: [{host: a, port: 1}], "
                     "tls: {enabled: true}, reflection: true}]\n",
            "services[0].reflection: reflection does not support TLS to the backend yet");
    invalid(LISTENER "services: [{name: a, protocol: grpc, discovery: {kind: registration}, "
                     "reflection: true}]\n",
            "services[0].reflection: reflection needs static instances (not discovery)");
}

static void test_validate__outlier_max_ejection_time_not_below_base(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], "
                     "outlier_detection: {base_ejection_time_ms: 60000, "
                     "max_ejection_time_ms: 1000}}]\n",
            "services[0].outlier_detection.max_ejection_time_ms: max_ejection_time_ms (1000) is "
            "shorter than base_ejection_time_ms (60000)");
}

static void test_validate__circuit_breaker_is_valid(void **state)
{
    valid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}, {host: a, port: 2}], "
                   "circuit_breaker: {failure_threshold: 5, failure_rate_threshold: 100, "
                   "failure_on: [5xx, gateway-error, timeout, reset, connect-failure, "
                   "\"grpc:UNAVAILABLE\", \"grpc:4\"], per_instance: true}}]\n");
}

static void test_validate__circuit_breaker_rate_is_a_percentage(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], "
                     "circuit_breaker: {failure_rate_threshold: 101}}]\n",
            "services[0].circuit_breaker.failure_rate_threshold: 101 is out of range (1..100, or "
            "0 for the default)");
}

static void test_validate__circuit_breaker_timeout_is_bounded(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], "
                     "circuit_breaker: {timeout_ms: 3600001}}]\n",
            "services[0].circuit_breaker.timeout_ms: 3600001 is too large (at most 3600000)");
}

static void test_validate__circuit_breaker_unknown_failure_kind(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], "
                     "circuit_breaker: {failure_on: [\"grpc:OK\"]}}]\n",
            "services[0].circuit_breaker.failure_on[0]: unknown failure kind \"grpc:OK\"");
}

static void test_validate__circuit_breaker_duplicate_failure_kind(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], "
                     "circuit_breaker: {failure_on: [reset, reset]}}]\n",
            "services[0].circuit_breaker.failure_on[1]: reset is listed twice");
}

static void test_validate__service_timeouts_and_connections_are_bounded(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}], "
                     "connect_timeout_ms: 3600001, idle_timeout_ms: 3600001, "
                     "max_connections: 100001}]\n",
            "services[0].connect_timeout_ms: 3600001 is too large");
    assert_non_null(strstr(pt_diag_text(&diag), "services[0].idle_timeout_ms: 3600001"));
    assert_non_null(strstr(pt_diag_text(&diag), "services[0].max_connections: 100001"));
}

static void test_validate__h2_service_implies_tls(void **state)
{
    valid(LISTENER "services: [{name: a, protocol: h2, instances: [{host: a, port: 1}],"
                   " tls: {server_name: api.example.com}}]\n");
}

static void test_validate__tls_settings_without_tls_are_rejected(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}],"
                     " tls: {server_name: api.example.com}}]\n",
            "services[0].tls: tls settings are given but tls.enabled is not true");
}

static void test_validate__h2c_service_with_tls_is_rejected(void **state)
{
    invalid(LISTENER "services: [{name: a, protocol: h2c, instances: [{host: a, port: 1}],"
                     " tls: {enabled: true}}]\n",
            "services[0].tls.enabled: protocol h2c is cleartext");
}

static void test_validate__upstream_client_cert_needs_key(void **state)
{
    invalid(with_path(LISTENER "services: [{name: a, protocol: grpc, instances: [{host: a, port: "
                               "1}], tls: {enabled: true, cert_file: %s}}]\n%s",
                      cert, ""),
            "services[0].tls.key_file: cert_file and key_file (the client certificate) must be "
            "given together");
}

static void test_validate__upstream_ca_file_must_be_readable(void **state)
{
    invalid(LISTENER "services: [{name: a, instances: [{host: a, port: 1}],"
                     " tls: {enabled: true, ca_file: /nonexistent/ca.pem}}]\n",
            "services[0].tls.ca_file: cannot read \"/nonexistent/ca.pem\"");
}

static void test_validate__ca_file_with_skip_verify_is_rejected(void **state)
{
    invalid(with_path(LISTENER
                      "services: [{name: a, instances: [{host: a, port: 1}],"
                      " tls: {enabled: true, ca_file: %s, insecure_skip_verify: true}}]\n%s",
                      cert, ""),
            "services[0].tls.ca_file: ca_file has no effect with insecure_skip_verify");
}

static void test_validate__upstream_mtls_with_readable_files_is_valid(void **state)
{
    valid(with_path(LISTENER "services: [{name: a, instances: [{host: a, port: 1}],"
                             " tls: {enabled: true, cert_file: %s, key_file: %s}}]\n",
                    cert, key));
}

/* ---- routes ---- */

#define SERVICES                                         \
    "listeners: [{address: \":80\"}]\n"                  \
    "services:\n"                                        \
    "  - {name: api, instances: [{host: a, port: 1}]}\n" \
    "  - {name: grpc, protocol: grpc, instances: [{host: b, port: 2}]}\n"

static void test_validate__route_name_defaults_to_path_and_methods(void **state)
{
    Portico__Config__V1__Route r = PORTICO__CONFIG__V1__ROUTE__INIT;
    char buf[64];
    r.path = "/users/{id}";
    pt_conf_route_name(&r, buf, sizeof(buf));
    assert_string_equal(buf, "/users/{id}");
    char *methods[] = {"GET", "PUT"};
    r.methods = methods;
    r.n_methods = 2;
    pt_conf_route_name(&r, buf, sizeof(buf));
    assert_string_equal(buf, "/users/{id} GET,PUT");
    r.path = "";
    r.path_prefix = "/api";
    r.n_methods = 1;
    pt_conf_route_name(&r, buf, sizeof(buf));
    assert_string_equal(buf, "/api GET");
    r.name = "users";
    pt_conf_route_name(&r, buf, sizeof(buf));
    assert_string_equal(buf, "users");
}

static void test_validate__route_name_truncates_to_buffer(void **state)
{
    Portico__Config__V1__Route r = PORTICO__CONFIG__V1__ROUTE__INIT;
    char *methods[] = {"DELETE"};
    r.path = "/abcdef";
    r.methods = methods;
    r.n_methods = 1;
    char buf[10];
    pt_conf_route_name(&r, buf, sizeof(buf));
    assert_string_equal(buf, "/abcdef D");
}

static void test_validate__route_effective_names_are_unique(void **state)
{
    invalid(SERVICES "routes:\n  - {path: /a, methods: [GET], service: api}\n"
                     "  - {path: /a, methods: [GET], service: api, priority: 1}\n",
            "routes[1]: duplicate route name \"/a GET\" (also routes[0]); unnamed routes are "
            "named by path and methods: give one a name");
}

static void test_validate__same_path_with_other_methods_is_fine(void **state)
{
    valid(SERVICES "routes:\n  - {path: /a, methods: [GET], service: api}\n"
                   "  - {path: /a, methods: [POST], service: api}\n"
                   "  - {name: a-any, path: /a, service: api}\n");
}

static void test_validate__explicit_route_names_are_unique(void **state)
{
    invalid(SERVICES "routes:\n  - {name: r, path: /a, service: api}\n"
                     "  - {name: r, path: /b, service: api}\n",
            "routes[1].name: duplicate route name \"r\" (also routes[0])\n");
}

static void test_validate__route_needs_path_or_prefix(void **state)
{
    invalid(SERVICES "routes: [{service: api}]\n",
            "portico.yaml:5:10: routes[0]: a route needs path or path_prefix");
}

static void test_validate__route_may_not_have_path_and_prefix(void **state)
{
    invalid(SERVICES "routes: [{path: /a, path_prefix: /b, service: api}]\n",
            "routes[0].path_prefix: set either path or path_prefix, not both");
}

static void test_validate__route_needs_a_service(void **state)
{
    invalid(SERVICES "routes: [{path: /a}]\n", "routes[0].service: service is required");
}

static void test_validate__route_service_must_exist(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: apii}]\n",
            "routes[0].service: no service named \"apii\"; did you mean \"api\"?");
}

/* ---- traffic splits and API versions ---- */

static void test_validate__split_is_a_valid_target(void **state)
{
    valid(SERVICES "routes:\n  - path: /a\n    splits: [{service: api, weight: 90}, "
                   "{service: grpc, weight: 10}]\n    split_key: \"header:x-user\"\n"
                   "    split_overrides: [{header: x-canary, value: always, service: grpc}]\n");
}

static void test_validate__route_takes_exactly_one_target(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, splits: [{service: api, weight: 1}]}]\n",
            "routes[0]: set exactly one of service, splits and versions");
    invalid(SERVICES "routes: [{path: /a}]\n",
            "routes[0].service: service is required (or splits or versions)");
}

static void test_validate__split_services_must_exist(void **state)
{
    invalid(SERVICES "routes: [{path: /a, splits: [{service: api, weight: 1}, "
                     "{service: apii, weight: 1}]}]\n",
            "routes[0].splits[1].service: no service named \"apii\"; did you mean \"api\"?");
    invalid(SERVICES "routes: [{path: /a, splits: [{weight: 1}]}]\n",
            "routes[0].splits[0].service: service is required");
}

static void test_validate__split_weights_must_add_up(void **state)
{
    invalid(SERVICES "routes: [{path: /a, splits: [{service: api}, {service: grpc}]}]\n",
            "routes[0].splits: the weights of a split add up to 0");
    invalid(SERVICES "routes: [{path: /a, splits: [{service: api, weight: 1000001}]}]\n",
            "routes[0].splits[0].weight: 1000001 is too large");
    invalid(SERVICES "routes: [{path: /a, splits: [{service: api, weight: 1}, "
                     "{service: api, weight: 2}]}]\n",
            "routes[0].splits[1]: api is listed twice");
}

static void test_validate__split_side_may_have_weight_zero(void **state)
{
    /* A side of weight 0 takes no traffic (blue-green switched over). */
    valid(SERVICES "routes: [{path: /a, splits: [{service: api, weight: 0}, "
                   "{service: grpc, weight: 1}]}]\n");
}

static void test_validate__split_key_forms(void **state)
{
    valid(SERVICES
          "routes: [{path: /a, split_key: request, splits: [{service: api, weight: 1}]}]\n");
    valid(SERVICES "routes: [{path: /a, split_key: ip, splits: [{service: api, weight: 1}]}]\n");
    valid(SERVICES
          "routes: [{path: /a, split_key: \"cookie:sid\", splits: [{service: api, weight: 1}]}]\n");
    invalid(SERVICES
            "routes: [{path: /a, split_key: \"header:\", splits: [{service: api, weight: 1}]}]\n",
            "routes[0].split_key: \"header:\" is not a split key");
    invalid(SERVICES "routes: [{path: /a, split_key: user, splits: [{service: api, weight: 1}]}]\n",
            "routes[0].split_key: \"user\" is not a split key");
    invalid(SERVICES "routes: [{path: /a, service: api, split_key: ip}]\n",
            "routes[0].split_key: split_key has no effect without splits");
}

static void test_validate__split_overrides_are_checked(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, split_overrides: [{header: x, value: y, "
                     "service: api}]}]\n",
            "routes[0].split_overrides: split_overrides need splits");
    invalid(SERVICES "routes: [{path: /a, splits: [{service: api, weight: 1}], split_overrides: "
                     "[{header: \"x y\", value: v, service: api}]}]\n",
            "routes[0].split_overrides[0].header: \"x y\" is not a valid header name");
    invalid(SERVICES "routes: [{path: /a, splits: [{service: api, weight: 1}], split_overrides: "
                     "[{header: x, value: v, service: nope}]}]\n",
            "routes[0].split_overrides[0].service: no service named \"nope\"");
}

static void test_validate__versions_are_checked(void **state)
{
    valid(SERVICES
          "routes: [{path_prefix: /api, versions: {strip: true, default_version: \"1\", "
          "versions: [{version: \"1\", service: api}, {version: \"2\", service: grpc}]}}]\n");
    valid(SERVICES "routes: [{path_prefix: /api, versions: {from: \"header:x-api-version\", "
                   "versions: [{version: beta, service: api}]}}]\n");
}

static void test_validate__bad_versions_are_reported(void **state)
{
    invalid(SERVICES "routes: [{path_prefix: /api, versions: {versions: [{version: \"1\", "
                     "service: api}, {version: \"2\", service: nope}]}}]\n",
            "routes[0].versions.versions[1].service: no service named \"nope\"");
}

static void test_validate__version_default_must_be_listed(void **state)
{
    invalid(SERVICES "routes: [{path_prefix: /api, versions: {default_version: \"3\", "
                     "versions: [{version: \"1\", service: api}]}}]\n",
            "routes[0].versions.default_version: \"3\" is not one of the versions listed");
}

static void test_validate__version_source_forms(void **state)
{
    invalid(SERVICES "routes: [{path_prefix: /api, versions: {from: cookie, "
                     "versions: [{version: \"1\", service: api}]}}]\n",
            "routes[0].versions.from: \"cookie\" is not a version source");
}

static void test_validate__version_query_needs_a_name(void **state)
{
    invalid(SERVICES "routes: [{path_prefix: /api, versions: {from: \"query:\", "
                     "versions: [{version: \"1\", service: api}]}}]\n",
            "routes[0].versions.from: \"query:\": a name must follow");
}

static void test_validate__version_strip_only_from_path(void **state)
{
    invalid(SERVICES "routes: [{path_prefix: /api, versions: {from: accept, strip: true, "
                     "versions: [{version: \"1\", service: api}]}}]\n",
            "routes[0].versions.strip: strip applies to versions from \"path\" only");
}

static void test_validate__versions_need_one_entry(void **state)
{
    invalid(SERVICES "routes: [{path_prefix: /api, versions: {}}]\n",
            "routes[0].versions.versions: list at least one version");
}

static void test_validate__path_versions_start_with_a_digit(void **state)
{
    invalid(SERVICES "routes: [{path_prefix: /api, versions: {versions: [{version: beta, "
                     "service: api}]}}]\n",
            "routes[0].versions.versions[0].version: \"beta\": a version read from the path");
}

static void test_validate__version_names_are_checked(void **state)
{
    invalid(SERVICES "routes: [{path_prefix: /api, versions: {from: accept, versions: "
                     "[{version: \"1/2\", service: api}]}}]\n",
            "routes[0].versions.versions[0].version: \"1/2\": a version uses only");
}

static void test_validate__versions_are_listed_once(void **state)
{
    invalid(SERVICES "routes: [{path_prefix: /api, versions: {from: accept, versions: "
                     "[{version: \"1\", service: api}, {version: \"1\", service: api}]}}]\n",
            "routes[0].versions.versions[1]: 1 is listed twice");
}

static void test_validate__methods_are_tokens(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, methods: [\"GET /\"]}]\n",
            "routes[0].methods[0]: \"GET /\" is not an HTTP method");
}

static void test_validate__lowercase_standard_method_is_rejected(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, methods: [post]}]\n",
            "routes[0].methods[0]: methods are case-sensitive; write \"POST\"");
}

static void test_validate__custom_methods_are_allowed(void **state)
{
    valid(SERVICES "routes: [{path: /a, service: api, methods: [PURGE, PROPFIND]}]\n");
}

static void test_validate__methods_are_unique_within_a_route(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, methods: [GET, PUT, GET]}]\n",
            "routes[0].methods[2]: GET is listed twice");
}

static void test_validate__priority_is_bounded(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, priority: -1000001}]\n",
            "routes[0].priority: -1000001 is out of range (-1000000..1000000)");
}

static void test_validate__route_timeout_is_bounded(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, timeout_ms: 86400001}]\n",
            "routes[0].timeout_ms: 86400001 is too large (at most 86400000)");
}

static void test_validate__retry_count_is_bounded(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, retry_count: 11}]\n",
            "routes[0].retry_count: 11 is too large (at most 10)");
}

static void test_validate__retry_conditions_are_known(void **state)
{
    valid(SERVICES "routes: [{path: /a, service: api, retry_count: 2, retry_on: [connect-failure,"
                   " refused-stream, reset, 5xx, gateway-error, retriable-status-codes,"
                   " per-try-timeout]}]\n");
    pt_conf_free(conf);
    conf = NULL;
    valid(SERVICES "routes: [{path: /a, service: api, retry_count: 2, retry_on: [timeout]}]\n");
    pt_conf_free(conf);
    conf = NULL;
    invalid(SERVICES "routes: [{path: /a, service: api, retry_count: 2, retry_on: [timeouts]}]\n",
            "routes[0].retry_on[0]: unknown retry condition \"timeouts\"");
}

static void test_validate__retry_backoff_budget_and_per_try_timeout(void **state)
{
    valid(SERVICES "routes: [{path: /a, service: api, retry_count: 2, per_try_timeout_ms: 500,"
                   " retry_backoff_base_ms: 10, retry_backoff_max_ms: 100, retry_unsafe: true,"
                   " retry_budget: {budget_percent: 50, min_retry_concurrency: 1}}]\n");
    pt_conf_free(conf);
    conf = NULL;
    /* A per-try timeout alone is useful: it bounds each attempt. */
    valid(SERVICES "routes: [{path: /a, service: api, per_try_timeout_ms: 500}]\n");
    pt_conf_free(conf);
    conf = NULL;
    invalid(SERVICES "routes: [{path: /a, service: api, retry_count: 1, retry_backoff_base_ms: 300,"
                     " retry_backoff_max_ms: 200}]\n",
            "routes[0].retry_backoff_max_ms: retry_backoff_max_ms (200) is below "
            "retry_backoff_base_ms (300)");
    pt_conf_free(conf);
    conf = NULL;
    invalid(SERVICES "routes: [{path: /a, service: api, retry_count: 1,"
                     " retry_budget: {budget_percent: 101}}]\n",
            "routes[0].retry_budget.budget_percent: 101 is too large (at most 100)");
    pt_conf_free(conf);
    conf = NULL;
    invalid(SERVICES "routes: [{path: /a, service: api, retry_unsafe: true}]\n",
            "routes[0].retry_unsafe: retry_unsafe has no effect while retry_count is 0");
    pt_conf_free(conf);
    conf = NULL;
    invalid(SERVICES "routes: [{path: /a, service: api, per_try_timeout_ms: 3600001}]\n",
            "routes[0].per_try_timeout_ms: 3600001 is too large");
}

static void test_validate__hedge_needs_a_delay_and_few_attempts(void **state)
{
    valid(SERVICES "routes: [{path: /a, service: api, hedge: {delay_ms: 50}}]\n");
    pt_conf_free(conf);
    conf = NULL;
    valid(SERVICES "routes: [{path: /a, service: api, hedge: {delay_ms: 50, max_attempts: 4}}]\n");
    pt_conf_free(conf);
    conf = NULL;
    invalid(SERVICES "routes: [{path: /a, service: api, hedge: {max_attempts: 2}}]\n",
            "routes[0].hedge.delay_ms: a hedge needs delay_ms");
    pt_conf_free(conf);
    conf = NULL;
    invalid(SERVICES "routes: [{path: /a, service: api, hedge: {delay_ms: 5, max_attempts: 5}}]\n",
            "routes[0].hedge.max_attempts: 5 is too large (at most 4)");
    pt_conf_free(conf);
    conf = NULL;
    invalid(SERVICES "routes: [{path: /a, service: api, hedge: {delay_ms: 5, max_attempts: 1}}]\n",
            "routes[0].hedge.max_attempts: max_attempts 1 never hedges");
}

static void test_validate__retry_on_without_retry_count_is_rejected(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, retry_on: [reset]}]\n",
            "routes[0].retry_on: retry_on has no effect while retry_count is 0");
}

static void test_validate__route_body_limit_is_bounded(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, max_body_bytes: 1099511627777}]\n",
            "routes[0].max_body_bytes: 1099511627777 is too large");
}

static void test_validate__header_match_needs_name_and_kind(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, headers: [{exact: x}, {name: x-a}]}]\n",
            "routes[0].headers[0].name: a header match needs a name");
    assert_non_null(strstr(pt_diag_text(&diag),
                           "routes[0].headers[1]: set one of exact, prefix, regex or present"));
}

static void test_validate__header_match_name_is_a_token(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, headers: [{name: \":authority\", "
                     "present: true}]}]\n",
            "routes[0].headers[0].name: \":authority\" is not a valid header name");
}

static void test_validate__query_match_needs_name_and_kind(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, query: [{prefix: x}, {name: q}]}]\n",
            "routes[0].query[0].name: a query match needs a name");
    assert_non_null(strstr(pt_diag_text(&diag), "routes[0].query[1]: set one of"));
}

static void test_validate__route_filters_must_be_registered(void **state)
{
    valid(SERVICES
          "routes: [{path: /a, service: api, filters: [{name: dummy, config: {a: 1}}]}]\n");
    pt_conf_free(conf);
    conf = NULL;
    invalid(SERVICES "routes: [{path: /a, service: api, filters: [{name: dumy}]}]\n",
            "routes[0].filters[0].name: unknown filter type \"dumy\" (known: dummy");
}

static void test_validate__filter_needs_a_name(void **state)
{
    invalid(SERVICES "routes: [{path: /a, service: api, filters: [{config: {a: 1}}]}]\n",
            "routes[0].filters[0].name: a filter needs a name");
}

static void test_validate__global_filters_are_checked(void **state)
{
    invalid(SERVICES "filters: [{name: dummy}, {name: nope}]\n",
            "filters[1].name: unknown filter type \"nope\"");
}

static void test_validate__websocket_needs_http1_service(void **state)
{
    valid(SERVICES "routes: [{path: /ws, service: api, websocket: true}]\n");
    pt_conf_free(conf);
    conf = NULL;
    invalid(SERVICES "routes: [{path: /ws, service: grpc, websocket: true}]\n",
            "routes[0].websocket: websocket needs a service with protocol http1");
}

/* ---- limits and access log ---- */

static void test_validate__limits_in_range_are_valid(void **state)
{
    valid(BASE "limits: {max_header_bytes: 1024, max_headers: 8, max_body_bytes: 1048576,"
               " max_concurrent_streams: 1, idle_timeout_ms: 86400000, header_timeout_ms: 1,"
               " request_timeout_ms: 5, stream_idle_timeout_ms: 10, max_connections: 1,"
               " max_resets_per_second: 1}\n");
}

static void test_validate__limits_out_of_range_are_rejected(void **state)
{
    invalid(BASE "limits: {max_header_bytes: 1048577, max_headers: 7, max_concurrent_streams: "
                 "10001, header_timeout_ms: 86400001, max_body_bytes: 1099511627777, "
                 "max_connections: 1000001, max_resets_per_second: 100001}\n",
            "limits.max_header_bytes: 1048577 is out of range (1024..1048576, or 0 for the "
            "default)");
    const char *t = pt_diag_text(&diag);
    assert_non_null(strstr(t, "limits.max_headers: 7 is out of range"));
    assert_non_null(strstr(t, "limits.max_concurrent_streams: 10001"));
    assert_non_null(strstr(t, "limits.header_timeout_ms: 86400001 is too large"));
    assert_non_null(strstr(t, "limits.max_body_bytes: 1099511627777 is too large"));
    assert_non_null(strstr(t, "limits.max_connections: 1000001"));
    assert_non_null(strstr(t, "limits.max_resets_per_second: 100001"));
    assert_int_equal(diag.errors, 7);
}

static void test_validate__access_log_targets(void **state)
{
    valid(BASE "access_log: {path: stdout}\n");
    pt_conf_free(conf);
    conf = NULL;
    valid(BASE "access_log: {path: stderr, enabled: false}\n");
    pt_conf_free(conf);
    conf = NULL;
    valid(with_path(BASE "access_log: {path: %s/access.log}\n%s", tmpdir, ""));
}

static void test_validate__access_log_directory_must_exist(void **state)
{
    invalid(BASE "access_log: {path: /nonexistent/dir/access.log}\n",
            "access_log.path: directory \"/nonexistent/dir\" does not exist");
}

static void test_validate__access_log_path_may_not_be_a_directory(void **state)
{
    invalid(with_path(BASE "access_log: {path: %s}\n%s", tmpdir, ""), "exists and is not a file");
}

/* ---- reporting ---- */

static void test_validate__every_problem_is_reported(void **state)
{
    invalid("workers: 5000\nlisteners: [{address: x}]\nroutes: [{path: /a}]\n", "workers:");
    const char *t = pt_diag_text(&diag);
    assert_non_null(strstr(t, "listeners[0].address:"));
    assert_non_null(strstr(t, "routes[0].service: service is required"));
    assert_int_equal(diag.errors, 3);
}

static void test_validate__error_count_is_capped(void **state)
{
    char *text = malloc(64 * 1024);
    assert_non_null(text);
    size_t j = (size_t)sprintf(text, "listeners: [{address: \":80\"}]\nroutes:\n");
    for (int i = 0; i < 300; i++)
        j += (size_t)sprintf(text + j, "  - {path: /r%d}\n", i);
    invalid(text, "too many errors");
    free(text);
    assert_int_equal(diag.errors, PT_CONF_MAX_ERRORS + 1);
}

/* ---- rate-limit enforcement fields (issue 6) ---- */

#define RULE "rate_limit_rules:\n  - {name: r, key_type: ip, limit: 10, window_seconds: 60, "

static void test_validate__rate_limit_enforcement_fields(void **state)
{
    valid(BASE RULE "ipv6_prefix: 48, ipv4_prefix: 24, tier: free, max_keys: 1000}\n");
    invalid(BASE RULE "ipv6_prefix: 129}\n",
            "rate_limit_rules[0].ipv6_prefix: 129 is out of range");
    invalid(BASE RULE "ipv4_prefix: 33}\n", "rate_limit_rules[0].ipv4_prefix: 33 is out of range");
    invalid(BASE RULE "tier: Free}\n", "rate_limit_rules[0].tier: \"Free\"");
    invalid(BASE RULE "lease_size: 11}\n", "lease_size: 11 is larger than limit (10)");
    invalid(BASE "rate_limit_rules:\n  - {name: r, key_type: ip+route+global+api_key+user_id, "
                 "limit: 1, window_seconds: 1}\n",
            "joins 5 parts (at most 4)");
}

static void test_validate__redis_modes_need_redis(void **state)
{
    valid(BASE RULE "mode: hybrid}\nredis: {address: \"127.0.0.1:6379\"}\n");
    invalid(BASE RULE "mode: redis}\n", "rate_limit_rules[0].mode: mode redis needs redis.address");
    invalid(BASE RULE "mode: redis}\nredis: {address: localhost}\n",
            "redis.address: \"localhost\": expected host:port");
    invalid(BASE "rate_limit_rules:\n  - {name: r, key_type: ip, limit: 1000000, "
                 "window_seconds: 86400, mode: redis}\nredis: {address: \"h:1\"}\n",
            "(limit + burst) x window_seconds is at most 4000000000");
    invalid(BASE "redis: {address: \"h:1\", key_prefix: \"a{b\"}\n",
            "redis.key_prefix: use printable characters");
    invalid(BASE "redis: {address: \"h:1\", password_env: PORTICO_TEST_SURELY_UNSET}\n",
            "environment variable PORTICO_TEST_SURELY_UNSET is not set");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

/* ---- authentication ---- */

#define AUTH_ROUTE(block)                                                   \
    "listeners: [{address: \"127.0.0.1:8080\"}]\n"                          \
    "services: [{name: api, instances: [{host: 127.0.0.1, port: 9000}]}]\n" \
    "routes:\n  - path_prefix: /\n    service: api\n    auth: " block "\n"

static void test_validate__route_auth_valid_forms(void **state)
{
    valid(AUTH_ROUTE("{methods: [api_key]}"));
    valid(AUTH_ROUTE("{allow_anonymous: true}"));
    valid(AUTH_ROUTE("{methods: [api_key], required_scopes: [read, write], scopes_match: any, "
                     "roles: [admin], keep_authorization: true, keep_cookie: true, "
                     "claim_headers: {tier: X-Tier, scopes: X-Scopes}}"));
    valid(BASE "auth: {api_key_header: X-Key, user_header: X-User, client_id_header: X-App, "
               "usage_flush_ms: 2000, realm: example}\n");
}

static void test_validate__route_auth_problems_are_reported(void **state)
{
    invalid(AUTH_ROUTE("{}"), "routes[0].auth.methods: name at least one method");
    invalid(AUTH_ROUTE("{methods: [api_key, api_key]}"),
            "routes[0].auth.methods[1]: api_key is listed twice");
    invalid(AUTH_ROUTE("{methods: [\"\"]}"),
            "routes[0].auth.methods[0]: a method name is required");
    invalid(AUTH_ROUTE("{allow_anonymous: true, required_scopes: [read]}"),
            "required_scopes and roles need a method");
    invalid(AUTH_ROUTE("{methods: [api_key], required_scopes: [\"a b\"]}"),
            "routes[0].auth.required_scopes[0]: a scope is a non-empty word");
    invalid(AUTH_ROUTE("{methods: [api_key], roles: [\"\"]}"), "routes[0].auth.roles[0]");
    invalid(AUTH_ROUTE("{methods: [api_key], required_scopes: [a], scopes_match: most}"),
            "\"most\": use all or any");
    invalid(AUTH_ROUTE("{methods: [api_key], scopes_match: any}"),
            "scopes_match needs required_scopes");
    invalid(AUTH_ROUTE("{methods: [api_key], claim_headers: {tier: \"X Tier\"}}"),
            "claim \"tier\": header \"X Tier\" is not a valid header name");
    invalid(AUTH_ROUTE("{methods: [api_key], claim_headers: {tier: Cookie}}"),
            "is a header HTTP or the gateway already uses");
    invalid(AUTH_ROUTE("{methods: [api_key], claim_headers: {tier: X-A, scopes: x_a}}"),
            "header \"x_a\" is used twice");
}

static void test_validate__auth_settings_problems_are_reported(void **state)
{
    invalid(BASE "auth: {api_key_header: \"X Key\"}\n",
            "auth.api_key_header: \"X Key\" is not a valid header name");
    invalid(BASE "auth: {user_header: Authorization}\n", "auth.user_header");
    invalid(BASE "auth: {user_header: X-Id, client_id_header: x_id}\n",
            "auth.client_id_header: \"x_id\" is also user_header");
    invalid(BASE "auth: {usage_flush_ms: 10}\n", "auth.usage_flush_ms: 10 is out of range");
    invalid(BASE "auth: {realm: \"a\\\"b\"}\n", "auth.realm");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_validate__minimal_config_is_valid),
        T(test_validate__rate_limit_enforcement_fields),
        T(test_validate__redis_modes_need_redis),
        T(test_validate__empty_config_needs_a_listener),
        T(test_validate__workers_are_bounded),
        T(test_validate__drain_timeout_is_bounded),
        T(test_validate__non_config_document_is_rejected),
        T(test_validate__listener_address_forms_are_accepted),
        T(test_validate__listener_addresses_parse),
        T(test_validate__bad_listener_address_is_reported),
        T(test_validate__missing_listener_address_is_reported),
        T(test_validate__listener_names_default_to_address_and_must_be_unique),
        T(test_validate__two_listeners_on_one_address_are_rejected),
        T(test_validate__ipv6_listeners_normalize_for_duplicates),
        T(test_validate__duplicate_protocol_is_rejected),
        T(test_validate__h2_requires_tls),
        T(test_validate__h2c_is_not_allowed_with_tls),
        T(test_validate__tls_listener_with_readable_files_is_valid),
        T(test_validate__tls_listener_needs_cert_and_key),
        T(test_validate__tls_files_must_be_readable),
        T(test_validate__tls_file_may_not_be_a_directory),
        T(test_validate__mtls_modes_with_a_ca_are_valid),
        T(test_validate__mtls_needs_a_ca_bundle),
        T(test_validate__mtls_contradictions_and_limits),
        T(test_validate__service_needs_a_name),
        T(test_validate__service_name_charset_is_restricted),
        T(test_validate__service_names_are_unique),
        T(test_validate__service_needs_an_instance),
        T(test_validate__instance_host_and_port_are_checked),
        T(test_validate__instance_host_names_and_ips_are_accepted),
        T(test_validate__instance_port_above_65535_is_rejected),
        T(test_validate__instance_weight_is_bounded),
        T(test_validate__duplicate_instance_is_rejected),
        T(test_validate__health_check_is_valid),
        T(test_validate__health_check_bad_status_range),
        T(test_validate__health_check_interval_is_bounded),
        T(test_validate__health_check_path_is_a_path),
        T(test_validate__grpc_health_check_needs_h2),
        T(test_validate__grpc_service_needs_grpc_check),
        T(test_validate__outlier_detection_bounds),
        T(test_validate__reflection_rules),
        T(test_validate__outlier_max_ejection_time_not_below_base),
        T(test_validate__circuit_breaker_is_valid),
        T(test_validate__circuit_breaker_rate_is_a_percentage),
        T(test_validate__circuit_breaker_timeout_is_bounded),
        T(test_validate__circuit_breaker_unknown_failure_kind),
        T(test_validate__circuit_breaker_duplicate_failure_kind),
        T(test_validate__service_timeouts_and_connections_are_bounded),
        T(test_validate__h2_service_implies_tls),
        T(test_validate__tls_settings_without_tls_are_rejected),
        T(test_validate__h2c_service_with_tls_is_rejected),
        T(test_validate__upstream_client_cert_needs_key),
        T(test_validate__upstream_ca_file_must_be_readable),
        T(test_validate__ca_file_with_skip_verify_is_rejected),
        T(test_validate__upstream_mtls_with_readable_files_is_valid),
        T(test_validate__route_name_defaults_to_path_and_methods),
        T(test_validate__route_name_truncates_to_buffer),
        T(test_validate__route_effective_names_are_unique),
        T(test_validate__same_path_with_other_methods_is_fine),
        T(test_validate__explicit_route_names_are_unique),
        T(test_validate__route_needs_path_or_prefix),
        T(test_validate__route_may_not_have_path_and_prefix),
        T(test_validate__route_needs_a_service),
        T(test_validate__route_service_must_exist),
        T(test_validate__split_is_a_valid_target),
        T(test_validate__route_takes_exactly_one_target),
        T(test_validate__split_services_must_exist),
        T(test_validate__split_weights_must_add_up),
        T(test_validate__split_side_may_have_weight_zero),
        T(test_validate__split_key_forms),
        T(test_validate__split_overrides_are_checked),
        T(test_validate__versions_are_checked),
        T(test_validate__bad_versions_are_reported),
        T(test_validate__version_default_must_be_listed),
        T(test_validate__version_source_forms),
        T(test_validate__version_query_needs_a_name),
        T(test_validate__version_strip_only_from_path),
        T(test_validate__versions_need_one_entry),
        T(test_validate__path_versions_start_with_a_digit),
        T(test_validate__version_names_are_checked),
        T(test_validate__versions_are_listed_once),
        T(test_validate__methods_are_tokens),
        T(test_validate__lowercase_standard_method_is_rejected),
        T(test_validate__custom_methods_are_allowed),
        T(test_validate__methods_are_unique_within_a_route),
        T(test_validate__priority_is_bounded),
        T(test_validate__route_timeout_is_bounded),
        T(test_validate__retry_count_is_bounded),
        T(test_validate__retry_conditions_are_known),
        T(test_validate__retry_on_without_retry_count_is_rejected),
        T(test_validate__retry_backoff_budget_and_per_try_timeout),
        T(test_validate__hedge_needs_a_delay_and_few_attempts),
        T(test_validate__route_body_limit_is_bounded),
        T(test_validate__header_match_needs_name_and_kind),
        T(test_validate__header_match_name_is_a_token),
        T(test_validate__query_match_needs_name_and_kind),
        T(test_validate__route_filters_must_be_registered),
        T(test_validate__filter_needs_a_name),
        T(test_validate__global_filters_are_checked),
        T(test_validate__websocket_needs_http1_service),
        T(test_validate__limits_in_range_are_valid),
        T(test_validate__limits_out_of_range_are_rejected),
        T(test_validate__access_log_targets),
        T(test_validate__access_log_directory_must_exist),
        T(test_validate__access_log_path_may_not_be_a_directory),
        T(test_validate__every_problem_is_reported),
        T(test_validate__error_count_is_capped),
        T(test_validate__route_auth_valid_forms),
        T(test_validate__route_auth_problems_are_reported),
        T(test_validate__auth_settings_problems_are_reported),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
