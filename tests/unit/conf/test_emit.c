/*
 * pt_conf_emit_yaml(): exact output for chosen messages, and the round trip
 * load(emit(m)) packs byte-identical to m - for the shipped configurations,
 * a configuration using every field kind, and seeded random messages built
 * by walking descriptors.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "conf/conf_int.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "portico/admin/v1/admin.pb-c.h"

#ifndef PT_SOURCE_DIR
#error "PT_SOURCE_DIR must name the source tree"
#endif

/* ---- helpers ---- */

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(protobuf_c_message_pack(m, buf), *len);
    return buf;
}

static struct pt_conf *load(const ProtobufCMessageDescriptor *d, const char *text)
{
    struct pt_diag diag;
    pt_diag_init(&diag);
    struct pt_conf *c = pt_conf_load_message_string(d, "<emitted>", text, strlen(text), &diag);
    if (!c)
        fail_msg("emitted YAML does not load:\n%s\n--- YAML:\n%s", pt_diag_text(&diag), text);
    pt_diag_fini(&diag);
    return c;
}

/* load(emit(m)) packs like m, and emitting that again gives the same text. */
static void assert_round_trip(const ProtobufCMessage *m)
{
    size_t ylen, alen, blen;
    char *yaml = pt_conf_emit_yaml(m, &ylen);
    assert_non_null(yaml);
    assert_int_equal(strlen(yaml), ylen);
    struct pt_conf *c = load(m->descriptor, yaml);
    uint8_t *a = pack(m, &alen), *b = pack(pt_conf_message(c), &blen);
    if (alen != blen || memcmp(a, b, alen) != 0)
        fail_msg("round trip changed the message (%zu -> %zu bytes); YAML:\n%s", alen, blen, yaml);
    char *again = pt_conf_emit_yaml(pt_conf_message(c), NULL);
    assert_string_equal(yaml, again);
    free(again);
    free(a);
    free(b);
    pt_conf_free(c);
    free(yaml);
}

static void round_trip_file(const char *path)
{
    struct pt_diag diag;
    pt_diag_init(&diag);
    struct pt_conf *c = pt_conf_load_file(path, &diag);
    if (!c)
        fail_msg("%s does not load: %s", path, pt_diag_text(&diag));
    pt_diag_fini(&diag);
    assert_round_trip(pt_conf_message(c));
    pt_conf_free(c);
}

static void assert_emits(const ProtobufCMessageDescriptor *d, const char *in, const char *want)
{
    struct pt_conf *c = load(d, in);
    char *got = pt_conf_emit_yaml(pt_conf_message(c), NULL);
    assert_string_equal(got, want);
    free(got);
    assert_round_trip(pt_conf_message(c));
    pt_conf_free(c);
}

/* ---- shipped files ---- */

static void test_shipped_configs(void **state)
{
    round_trip_file(PT_SOURCE_DIR "/config/portico.yaml");
    static const char *const dirs[] = {PT_SOURCE_DIR "/config/examples", PT_SOURCE_DIR "/examples"};
    unsigned files = 0;
    for (size_t i = 0; i < 2; i++) {
        DIR *dir = opendir(dirs[i]);
        if (!dir)
            continue;
        struct dirent *e;
        while ((e = readdir(dir))) {
            size_t n = strlen(e->d_name);
            if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0)
                continue;
            char path[1024];
            snprintf(path, sizeof(path), "%s/%s", dirs[i], e->d_name);
            round_trip_file(path);
            files++;
        }
        closedir(dir);
    }
    assert_true(files > 0);
}

/* ---- every field kind ---- */

static const char every_kind[] =
    "workers: 4\n"
    "drain_timeout_ms: 0\n"
    "listeners:\n"
    "  - name: \"yes\"\n"
    "    address: \"127.0.0.1:8080\"\n"
    "    protocols: [http1, h2c, h2]\n"
    "    tls: {cert_file: \"a b.crt\", key_file: \" lead\"}\n"
    "services:\n"
    "  - name: svc\n"
    "    protocol: grpc\n"
    "    lb_algorithm: round_robin\n"
    "    instances: [{host: \"::1\", port: 9000, weight: 0}, {host: h, port: 1}]\n"
    "    health_check: {}\n"
    "    circuit_breaker: {failure_threshold: 5}\n"
    "    tls: {enabled: true, insecure_skip_verify: false}\n"
    "    version: 18446744073709551615\n"
    "routes:\n"
    "  - name: \"null\"\n"
    "    path: \"/a: b #c\"\n"
    "    methods: [GET, \"\", \"true\", \"1\", \"0x1\", \"~\", \"-\", \"a\\nb\", \"tab\\there\"]\n"
    "    priority: -2147483648\n"
    "    enabled: false\n"
    "    max_body_bytes: 0\n"
    "    headers:\n"
    "      - {name: a, exact: \"\"}\n"
    "      - {name: b, present: false, invert: true}\n"
    "      - {name: c, regex: \"^[a-z]+$\"}\n"
    "    query: [{name: q, prefix: \"#x\"}]\n"
    "    filters:\n"
    "      - name: headers\n"
    "        config:\n"
    "          response: {set: {x-a: \"1\", x-b: 1, x-c: null, x-d: [], x-e: {}}}\n"
    "          list: [1.5, -0.25, 1e+300, true, \"false\", [a, [b]], {k: v}]\n"
    "          \"<<\": not a merge\n"
    "          \"\": empty key\n"
    "  - name: \"h\\u00e9llo \\u2603 \\U0001F600\"\n"
    "    path_prefix: \"ctl\\x01\\x7f\\u0085\\u2028\"\n"
    "    max_body_bytes: 18446744073709551615\n"
    "limits: {max_header_bytes: 8192}\n"
    "access_log: {enabled: true}\n"
    "filters: [{name: request-id}]\n"
    "rate_limit_rules:\n"
    "  - {name: r, route: api, key_type: ip+route, limit: 10, window_seconds: 60,\n"
    "     burst: 0, action: queue, enabled: false, algorithm: gcra, max_queue_ms: 5}\n"
    "plugins:\n"
    "  - name: p\n"
    "    type: headers\n"
    "    config: {request: {set: {x-y: \"on\"}}, n: 0, deep: {a: {b: {c: [[[]]]}}}}\n"
    "    routes: [api, \"\"]\n"
    "    global: true\n"
    "    enabled: true\n"
    "    order: -1\n"
    "api_keys:\n"
    "  - name: k\n"
    "    client_id: c\n"
    "    scopes: [read, write]\n"
    "    expires_at: \"2026-11-28T01:02:03Z\"\n"
    "    created_at: 1970-01-01T00:00:00.5+01:00\n"
    "    last_used_at: 2024-02-29T23:59:59.123456789-00:30\n"
    "    enabled: false\n"
    "admin: {address: \"127.0.0.1:9901\", token_env: T, tls: {client_ca_file: ca.pem}}\n";

static void test_every_kind(void **state)
{
    struct pt_conf *c = load(&portico__config__v1__config__descriptor, every_kind);
    const Portico__Config__V1__Config *cfg = pt_conf_config(c);
    assert_int_equal(cfg->n_api_keys, 1);
    assert_int_equal(cfg->api_keys[0]->created_at->seconds, -3600);
    assert_int_equal(cfg->api_keys[0]->created_at->nanos, 500000000);
    assert_int_equal(cfg->api_keys[0]->last_used_at->nanos, 123456789);
    assert_round_trip(pt_conf_message(c));
    pt_conf_free(c);
}

/* ---- exact output ---- */

static void test_emit_route(void **state)
{
    assert_emits(&portico__config__v1__route__descriptor,
                 "{name: api, path_prefix: /api, methods: [GET, POST], enabled: false,\n"
                 " max_body_bytes: 0, timeout_ms: 0, headers: [{name: x, exact: \"\"},\n"
                 " {name: y, present: false}], filters: [{name: f, config: {}}]}\n",
                 "name: api\n"
                 "path_prefix: /api\n"
                 "methods:\n"
                 "  - GET\n"
                 "  - POST\n"
                 "enabled: false\n"
                 "headers:\n"
                 "  - name: x\n"
                 "    exact: \"\"\n"
                 "  - name: \"y\"\n"
                 "    present: false\n"
                 "filters:\n"
                 "  - name: f\n"
                 "    config: {}\n"
                 "max_body_bytes: 0\n");
}

static void test_emit_plugin_struct(void **state)
{
    assert_emits(&portico__config__v1__plugin__descriptor,
                 "name: p\ntype: headers\nconfig:\n  a: [1, \"2\", null, [x, {k: true}]]\n"
                 "  b: {c: 0.5}\n  d: []\nenabled: true\n",
                 "name: p\n"
                 "type: headers\n"
                 "config:\n"
                 "  a:\n"
                 "    - 1\n"
                 "    - \"2\"\n"
                 "    - null\n"
                 "    - - x\n"
                 "      - k: true\n"
                 "  b:\n"
                 "    c: 0.5\n"
                 "  d: []\n"
                 "enabled: true\n");
}

static void test_emit_api_key(void **state)
{
    assert_emits(&portico__config__v1__api_key__descriptor,
                 "name: k\nexpires_at: 2026-11-28T03:02:03.250+02:00\n"
                 "created_at: 2026-01-01T00:00:00.000001Z\nlast_used_at: 2000-02-29T12:00:00Z\n"
                 "version: 3\n",
                 "name: k\n"
                 "expires_at: 2026-11-28T01:02:03.250Z\n"
                 "created_at: 2026-01-01T00:00:00.000001Z\n"
                 "last_used_at: 2000-02-29T12:00:00Z\n"
                 "version: 3\n");
}

static void test_emit_empty(void **state)
{
    Portico__Config__V1__Config cfg = PORTICO__CONFIG__V1__CONFIG__INIT;
    char *s = pt_conf_emit_yaml(&cfg.base, NULL);
    assert_string_equal(s, "{}\n");
    free(s);
    assert_round_trip(&cfg.base);
}

static void test_string_quoting(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"/a/b c", "/a/b c"},
        {"127.0.0.1:80", "\"127.0.0.1:80\""},
        {"http://x/#y", "http://x/#y"},
        {"", "\"\""},
        {"true", "\"true\""},
        {"False", "\"False\""},
        {"null", "\"null\""},
        {"~", "\"~\""},
        {"yes", "\"yes\""},
        {"off", "\"off\""},
        {"1", "\"1\""},
        {"-1.5e3", "\"-1.5e3\""},
        {"0x1", "\"0x1\""},
        {".inf", "\".inf\""},
        {" lead", "\" lead\""},
        {"trail ", "\"trail \""},
        {"a: b", "\"a: b\""},
        {"a:", "\"a:\""},
        {"a #b", "\"a #b\""},
        {"#a", "\"#a\""},
        {"- x", "\"- x\""},
        {"*ref", "\"*ref\""},
        {"{x}", "\"{x}\""},
        {"'q'", "\"'q'\""},
        {"say \"hi\"", "say \"hi\""},
        {"\"q\" x", "\"\\\"q\\\" x\""},
        {"back\\slash", "back\\slash"},
        {"two\nlines", "\"two\\nlines\""},
        {"tab\there", "\"tab\\there\""},
        {"bell\x07", "\"bell\\x07\""},
        {"del\x7f", "\"del\\x7f\""},
        {"h\xc3\xa9llo", "\"h\xc3\xa9llo\""},
        {"nel\xc2\x85", "\"nel\\x85\""},
        {"ls\xe2\x80\xa8", "\"ls\\u2028\""},
        {"bom\xef\xbb\xbf", "\"bom\\ufeff\""},
        {"\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},
        {"...", "\"...\""},
        {"<<", "\"<<\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Google__Protobuf__StringValue v = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
        v.value = (char *)cases[i].in;
        char *s = pt_conf_emit_yaml(&v.base, NULL);
        char want[256];
        snprintf(want, sizeof(want), "%s\n", cases[i].out);
        if (strcmp(s, want) != 0)
            fail_msg("case %zu: got %s want %s", i, s, want);
        free(s);
        assert_round_trip(&v.base);
    }
}

static void test_scalars(void **state)
{
    Google__Protobuf__BytesValue b = GOOGLE__PROTOBUF__BYTES_VALUE__INIT;
    uint8_t raw[] = {0, 0xff, 'a', 0x10};
    for (size_t n = 0; n <= sizeof(raw); n++) {
        b.value = (ProtobufCBinaryData){n, raw};
        assert_round_trip(&b.base);
    }
    b.value = (ProtobufCBinaryData){4, raw};
    char *s = pt_conf_emit_yaml(&b.base, NULL);
    assert_string_equal(s, "AP9hEA==\n");
    free(s);

    static const double doubles[] = {
        0, -0.0, 0.1, 1e-300, 4.9e-324, 1.7976931348623157e308, -123456789.125, 1e21, 3};
    for (size_t i = 0; i < sizeof(doubles) / sizeof(doubles[0]); i++) {
        Google__Protobuf__DoubleValue d = GOOGLE__PROTOBUF__DOUBLE_VALUE__INIT;
        d.value = doubles[i];
        assert_round_trip(&d.base);
        Google__Protobuf__FloatValue f = GOOGLE__PROTOBUF__FLOAT_VALUE__INIT;
        f.value = (float)doubles[i];
        if (isfinite(f.value))
            assert_round_trip(&f.base);
    }
    Google__Protobuf__FloatValue f = GOOGLE__PROTOBUF__FLOAT_VALUE__INIT;
    f.value = 0.1f;
    s = pt_conf_emit_yaml(&f.base, NULL);
    assert_string_equal(s, "0.1\n");
    free(s);
    Google__Protobuf__Int64Value i64 = GOOGLE__PROTOBUF__INT64_VALUE__INIT;
    i64.value = INT64_MIN;
    assert_round_trip(&i64.base);
}

static void test_timestamps(void **state)
{
    static const struct {
        const char *in;
        int64_t s;
        int32_t ns;
    } ok[] = {
        {"1970-01-01T00:00:00Z", 0, 0},
        {"2026-11-28T01:02:03Z", 1795827723, 0},
        {"2026-11-28t01:02:03.5z", 1795827723, 500000000},
        {"2026-11-28T02:02:03+01:00", 1795827723, 0},
        {"0001-01-01T00:00:00Z", PT_CONF_TIMESTAMP_MIN, 0},
        {"9999-12-31T23:59:59.999999999Z", PT_CONF_TIMESTAMP_MAX, 999999999},
        {"1969-12-31T23:59:59.1Z", -1, 100000000},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t s;
        int32_t ns;
        if (pt_conf_timestamp_parse(ok[i].in, strlen(ok[i].in), &s, &ns) != 0)
            fail_msg("refused %s", ok[i].in);
        assert_int_equal(s, ok[i].s);
        assert_int_equal(ns, ok[i].ns);
        Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        t.seconds = s;
        t.nanos = ns;
        assert_round_trip(&t.base);
    }
    static const char *const bad[] = {
        "",
        "2026-11-28",
        "2026-11-28T01:02:03",
        "2026-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-11-28T24:00:00Z",
        "2026-11-28T01:60:00Z",
        "2026-11-28T01:02:60Z",
        "2026-11-28T01:02:03.Z",
        "2026-11-28T01:02:03.1234567890Z",
        "2026-11-28T01:02:03+0100",
        "2026-11-28T01:02:03+24:00",
        "0000-12-31T23:59:59Z",
        "0001-01-01T00:00:00+00:01",
        "2026-11-28T01:02:03Zjunk",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t s;
        int32_t ns;
        if (pt_conf_timestamp_parse(bad[i], strlen(bad[i]), &s, &ns) == 0)
            fail_msg("accepted %s", bad[i]);
    }
    char buf[64];
    assert_int_equal(pt_conf_timestamp_format(PT_CONF_TIMESTAMP_MAX + 1, 0, buf, sizeof(buf)), -1);
    assert_int_equal(pt_conf_timestamp_format(0, -1, buf, sizeof(buf)), -1);
    assert_true(pt_conf_timestamp_format(-1, 1, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "1969-12-31T23:59:59.000000001Z");

    struct pt_diag diag;
    pt_diag_init(&diag);
    const char *text = "name: k\nexpires_at: tomorrow\n";
    assert_null(pt_conf_load_message_string(&portico__config__v1__api_key__descriptor, "k.yaml",
                                            text, strlen(text), &diag));
    assert_non_null(strstr(pt_diag_text(&diag), "k.yaml:2:13: expires_at: expected an RFC 3339"));
    pt_diag_fini(&diag);
}

/* ---- random messages ---- */

static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static unsigned below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static size_t put_utf8(char *p, uint32_t cp)
{
    if (cp < 0x80) {
        p[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (char)(0xc0 | (cp >> 6));
        p[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        p[0] = (char)(0xe0 | (cp >> 12));
        p[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        p[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    p[0] = (char)(0xf0 | (cp >> 18));
    p[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    p[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    p[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static char *rand_string(void)
{
    static const char *const tricky[] = {
        "",   "true", "null", "~",   "1",    "0x1", "-",  "- a", "a: b", "#",  " x",
        "x ", "yes",  "<<",   "...", "---",  "'",   "\"", "\\",  "{",    "[]", "1.5e3",
        ".5", "on",   "NULL", "a#b", "a #b", ":",   "?",  "%",   "@",    "`",  "!tag",
    };
    if (below(3) == 0)
        return strdup(tricky[below(sizeof(tricky) / sizeof(tricky[0]))]);
    unsigned n = below(12);
    char *s = malloc(n * 4 + 1);
    size_t j = 0;
    for (unsigned i = 0; i < n; i++) {
        uint32_t cp;
        switch (below(6)) {
        case 0:
            cp = 1 + below(0x7f); /* ASCII incl. controls, no NUL */
            break;
        case 1:
            cp = 0x80 + below(0x180); /* Latin-1 incl. C1 */
            break;
        case 2:
            cp = 0x100 + below(0xd800 - 0x100);
            break;
        case 3:
            cp = 0xe000 + below(0x10000 - 0xe000);
            break;
        case 4:
            cp = 0x10000 + below(0x100000);
            break;
        default:
            cp = (uint32_t) " :#-'\"\\\n\tab"[below(12)];
            break;
        }
        j += put_utf8(s + j, cp);
    }
    s[j] = '\0';
    return s;
}

static double rand_double(void)
{
    switch (below(4)) {
    case 0:
        return (double)(int32_t)rnd();
    case 1:
        return (double)below(1000) / 8;
    default: {
        double d;
        do {
            uint64_t bits = rnd();
            memcpy(&d, &bits, sizeof(d));
        } while (!isfinite(d));
        return d;
    }
    }
}

static ProtobufCMessage *rand_message(const ProtobufCMessageDescriptor *d, unsigned depth);

static int rand_enum(const ProtobufCEnumDescriptor *ed, bool allow_zero)
{
    for (unsigned tries = 0; tries < 16; tries++) {
        int v = ed->values[below(ed->n_values)].value;
        if (v != 0 || allow_zero)
            return v;
    }
    return ed->values[ed->n_values - 1].value;
}

/* A random value of fd's element type into dst. */
static void rand_scalar(const ProtobufCFieldDescriptor *fd, void *dst, bool any_enum,
                        unsigned depth)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        *(int32_t *)dst = below(3) ? (int32_t)below(100) : (int32_t)rnd();
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        *(uint32_t *)dst = below(3) ? below(100) : (uint32_t)rnd();
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        *(int64_t *)dst = below(3) ? (int64_t)below(100) : (int64_t)rnd();
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        *(uint64_t *)dst = below(3) ? below(100) : rnd();
        break;
    case PROTOBUF_C_TYPE_FLOAT: {
        float f;
        do
            f = (float)rand_double();
        while (!isfinite(f));
        *(float *)dst = f;
        break;
    }
    case PROTOBUF_C_TYPE_DOUBLE:
        *(double *)dst = rand_double();
        break;
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)dst = below(2);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        *(int *)dst = rand_enum(fd->descriptor, any_enum);
        break;
    case PROTOBUF_C_TYPE_STRING:
        *(char **)dst = rand_string();
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = dst;
        b->len = below(10);
        b->data = malloc(b->len + 1);
        for (size_t i = 0; i < b->len; i++)
            b->data[i] = (uint8_t)rnd();
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        *(ProtobufCMessage **)dst = rand_message(fd->descriptor, depth + 1);
        break;
    }
}

static ProtobufCMessage *new_msg(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);
    protobuf_c_message_init(d, m);
    return m;
}

static Google__Protobuf__Value *rand_value(unsigned depth);

static Google__Protobuf__Struct *rand_struct(unsigned depth)
{
    Google__Protobuf__Struct *s =
        (Google__Protobuf__Struct *)new_msg(&google__protobuf__struct__descriptor);
    s->n_fields = depth > 4 ? 0 : below(4);
    s->fields = s->n_fields ? malloc(s->n_fields * sizeof(*s->fields)) : NULL;
    for (size_t i = 0; i < s->n_fields; i++) {
        Google__Protobuf__Struct__FieldsEntry *e = (Google__Protobuf__Struct__FieldsEntry *)new_msg(
            &google__protobuf__struct__fields_entry__descriptor);
        char *k = rand_string();
        size_t n = strlen(k);
        e->key = malloc(n + 8);
        snprintf(e->key, n + 8, "%s%zu", k, i); /* keys must be unique */
        free(k);
        e->value = rand_value(depth + 1);
        s->fields[i] = e;
    }
    return s;
}

static Google__Protobuf__Value *rand_value(unsigned depth)
{
    Google__Protobuf__Value *v =
        (Google__Protobuf__Value *)new_msg(&google__protobuf__value__descriptor);
    switch (below(depth > 4 ? 4 : 6)) {
    case 0:
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
        break;
    case 1:
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        v->number_value = rand_double();
        break;
    case 2:
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        v->string_value = rand_string();
        break;
    case 3:
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
        v->bool_value = below(2);
        break;
    case 4:
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
        v->struct_value = rand_struct(depth + 1);
        break;
    default: {
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
        Google__Protobuf__ListValue *l =
            (Google__Protobuf__ListValue *)new_msg(&google__protobuf__list_value__descriptor);
        l->n_values = below(4);
        l->values = l->n_values ? malloc(l->n_values * sizeof(*l->values)) : NULL;
        for (size_t i = 0; i < l->n_values; i++)
            l->values[i] = rand_value(depth + 1);
        v->list_value = l;
        break;
    }
    }
    return v;
}

/* A map's keys are unique (YAML mapping keys): append each entry's index
 * (one digit, so key + index strings never collide). */
static void unique_map_keys(ProtobufCMessage **entries, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        const ProtobufCFieldDescriptor *kf =
            protobuf_c_message_descriptor_get_field_by_name(entries[j]->descriptor, "key");
        if (!kf || kf->type != PROTOBUF_C_TYPE_STRING)
            return;
        char **key = (char **)((char *)entries[j] + kf->offset);
        size_t len = *key ? strlen(*key) : 0;
        char *k = malloc(len + 2);
        memcpy(k, *key ? *key : "", len);
        k[len] = (char)('0' + j % 10);
        k[len + 1] = '\0';
        if (*key != protobuf_c_empty_string)
            free(*key);
        *key = k;
    }
}

static ProtobufCMessage *rand_message(const ProtobufCMessageDescriptor *d, unsigned depth)
{
    if (d == &google__protobuf__struct__descriptor)
        return &rand_struct(depth)->base;
    if (d == &google__protobuf__value__descriptor)
        return &rand_value(depth)->base;
    ProtobufCMessage *m = new_msg(d);
    if (d == &google__protobuf__timestamp__descriptor) {
        Google__Protobuf__Timestamp *t = (Google__Protobuf__Timestamp *)m;
        t->seconds = PT_CONF_TIMESTAMP_MIN +
                     (int64_t)(rnd() % (uint64_t)(PT_CONF_TIMESTAMP_MAX - PT_CONF_TIMESTAMP_MIN));
        static const int32_t scale[] = {0, 1000000, 1000, 1};
        int32_t k = scale[below(4)];
        t->nanos = k ? (int32_t)(rnd() % (1000000000u / (uint32_t)k)) * k : 0;
        return m;
    }
    uint32_t oneof_done[8] = {0};
    size_t n_oneof_done = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        char *field = (char *)m + fd->offset;
        bool nested = fd->type == PROTOBUF_C_TYPE_MESSAGE;
        if (nested && depth >= 4)
            continue;
        if (below(3) == 0)
            continue;
        if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            bool taken = false;
            for (size_t j = 0; j < n_oneof_done; j++)
                taken |= oneof_done[j] == fd->quantifier_offset;
            if (taken || n_oneof_done == 8)
                continue;
            oneof_done[n_oneof_done++] = fd->quantifier_offset;
            rand_scalar(fd, field, false, depth);
            *(uint32_t *)((char *)m + fd->quantifier_offset) = fd->id;
        } else if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = below(4), size;
            switch (fd->type) {
            case PROTOBUF_C_TYPE_STRING:
            case PROTOBUF_C_TYPE_MESSAGE:
                size = sizeof(void *);
                break;
            case PROTOBUF_C_TYPE_BYTES:
                size = sizeof(ProtobufCBinaryData);
                break;
            case PROTOBUF_C_TYPE_INT64:
            case PROTOBUF_C_TYPE_SINT64:
            case PROTOBUF_C_TYPE_SFIXED64:
            case PROTOBUF_C_TYPE_UINT64:
            case PROTOBUF_C_TYPE_FIXED64:
            case PROTOBUF_C_TYPE_DOUBLE:
                size = 8;
                break;
            case PROTOBUF_C_TYPE_BOOL:
                size = sizeof(protobuf_c_boolean);
                break;
            default:
                size = 4;
                break;
            }
            if (n == 0)
                continue;
            char *arr = calloc(n, size);
            for (size_t j = 0; j < n; j++)
                rand_scalar(fd, arr + j * size, false, depth);
            if (nested && pt_conf_is_map_entry(fd->descriptor))
                unique_map_keys((ProtobufCMessage **)arr, n);
            *(size_t *)((char *)m + fd->quantifier_offset) = n;
            *(void **)field = arr;
        } else {
            bool optional = fd->label == PROTOBUF_C_LABEL_OPTIONAL;
            rand_scalar(fd, field, !optional, depth);
            if (optional && !nested && fd->type != PROTOBUF_C_TYPE_STRING)
                *(protobuf_c_boolean *)((char *)m + fd->quantifier_offset) = 1;
        }
    }
    return m;
}

static void test_random_round_trip(void **state)
{
    static const ProtobufCMessageDescriptor *const roots[] = {
        &portico__config__v1__config__descriptor,
        &portico__config__v1__route__descriptor,
        &portico__config__v1__api_key__descriptor,
        &portico__config__v1__plugin__descriptor,
        &portico__admin__v1__validate_request__descriptor,
        &portico__admin__v1__apply_request__descriptor,
        &portico__admin__v1__apply_response__descriptor,
        &portico__admin__v1__route_stats__descriptor,
        &portico__admin__v1__update_route_request__descriptor,
        &portico__admin__v1__health__descriptor,
        &google__protobuf__struct__descriptor,
        &google__protobuf__bytes_value__descriptor,
        &google__protobuf__float_value__descriptor,
    };
    const char *seed_env = getenv("PT_EMIT_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x9e3779b97f4a7c15ull;
    for (unsigned i = 0; i < 400; i++) {
        rng = seed + i * 0x2545f4914f6cdd1dull;
        if (!rng)
            rng = 1;
        const ProtobufCMessageDescriptor *d = roots[i % (sizeof(roots) / sizeof(roots[0]))];
        ProtobufCMessage *m = rand_message(d, 0);
        assert_round_trip(m);
        protobuf_c_message_free_unpacked(m, NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_configs), cmocka_unit_test(test_every_kind),
        cmocka_unit_test(test_emit_route),      cmocka_unit_test(test_emit_plugin_struct),
        cmocka_unit_test(test_emit_api_key),    cmocka_unit_test(test_emit_empty),
        cmocka_unit_test(test_string_quoting),  cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_timestamps),      cmocka_unit_test(test_random_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
