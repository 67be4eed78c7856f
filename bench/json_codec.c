/*
 * bench_json_codec: throughput of the proto3 JSON codec (src/transcode/json*.c)
 * on an Order message (tests/protos/transcode_json/kitchen.proto: items with
 * strings, int64, double, repeated strings, a map, a Timestamp, an enum) of
 * about 1 KiB and about 64 KiB of JSON.
 *
 * For each size: JSON -> protobuf (pt_json_decode) and protobuf -> JSON
 * (pt_json_encode), in MB/s of JSON text (10^6 bytes per second) and
 * messages per second; and, for scale, jansson parsing the same JSON into
 * its tree only (json_loadb), which is what a tree-based codec would pay
 * before converting anything. Each figure is the best of 5 runs of at least
 * 0.2 s. Output only, no assertions.
 *
 * Usage: bench_json_codec
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_fixture.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* JSON of an Order with `items` items. */
static char *order_json(int items, size_t *len)
{
    size_t cap = 1024 + (size_t)items * 1024, n = 0;
    char *s = malloc(cap);
    if (!s)
        abort();
    n += (size_t)snprintf(s + n, cap - n,
                          "{\"id\":\"order-2024-000042\",\"created\":\"2024-05-01T12:34:56.789Z\","
                          "\"totals\":{\"EUR\":\"129900\",\"USD\":\"141350\"},"
                          "\"blob\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"items\":[");
    for (int i = 0; i < items; i++)
        n += (size_t)snprintf(
            s + n, cap - n,
            "%s{\"id\":\"sku-%06d\",\"name\":\"Widget \\u00e9dition %d, blue\",\"priceMicros\":"
            "\"%d\",\"quantity\":%d,\"weight\":%.3f,\"tags\":[\"hardware\",\"blue\",\"sale\"],"
            "\"attrs\":{\"material\":\"steel\",\"origin\":\"DE\"},\"updated\":"
            "\"2024-04-%02dT08:00:00Z\",\"active\":%s,\"color\":\"%s\"}",
            i ? "," : "", i, i, 1990000 + i * 137, 1 + i % 7, 0.125 + i * 0.375, 1 + i % 28,
            i % 3 ? "true" : "false", i % 2 ? "RED" : "GREEN");
    n += (size_t)snprintf(s + n, cap - n, "]}");
    *len = n;
    return s;
}

typedef void (*op_fn)(const void *in, size_t len, struct pt_json_out *out);

static const ProtobufCMessageDescriptor *ORDER = &pt__test__json__order__descriptor;

static void op_decode(const void *in, size_t len, struct pt_json_out *out)
{
    out->len = 0;
    if (pt_json_decode(ORDER, (struct pt_str){in, len}, pt_test_json_hooks(), NULL, out, NULL))
        abort();
}

static void op_encode(const void *in, size_t len, struct pt_json_out *out)
{
    out->len = 0;
    if (pt_json_encode(ORDER, in, len, pt_test_json_hooks(), NULL, out, NULL))
        abort();
}

static void op_jansson(const void *in, size_t len, struct pt_json_out *out)
{
    (void)out;
    json_error_t e;
    json_t *j = json_loadb(in, len, 0, &e);
    if (!j)
        abort();
    json_decref(j);
}

/* Best-of-5 seconds per operation. */
static double time_op(op_fn fn, const void *in, size_t len)
{
    struct pt_json_out out = {0};
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        long iters = 0;
        double t0 = now(), t;
        do {
            for (int k = 0; k < 16; k++)
                fn(in, len, &out);
            iters += 16;
            t = now() - t0;
        } while (t < 0.2);
        if (t / (double)iters < best)
            best = t / (double)iters;
    }
    pt_json_out_fini(&out);
    return best;
}

int main(void)
{
    printf("bench_json_codec: pt.test.json.Order, MB/s of JSON text (1 MB = 10^6 bytes)\n");
    printf("%-8s %9s %9s  %-28s %10s %12s\n", "size", "json B", "wire B", "operation", "MB/s",
           "msgs/s");
    static const struct {
        const char *label;
        int items;
    } sizes[] = {{"~1KiB", 3}, {"~64KiB", 256}};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t jlen;
        char *json = order_json(sizes[s].items, &jlen);
        struct pt_json_out wire = {0}, back = {0};
        if (pt_json_decode(ORDER, (struct pt_str){json, jlen}, pt_test_json_hooks(), NULL, &wire,
                           NULL) ||
            pt_json_encode(ORDER, (const uint8_t *)wire.data, wire.len, pt_test_json_hooks(), NULL,
                           &back, NULL))
            abort();
        struct {
            const char *name;
            op_fn fn;
            const void *in;
            size_t len, text;
        } ops[] = {
            {"JSON->proto (pt_json_decode)", op_decode, json, jlen, jlen},
            {"proto->JSON (pt_json_encode)", op_encode, wire.data, wire.len, back.len},
            {"jansson json_loadb (tree only)", op_jansson, json, jlen, jlen},
        };
        for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
            double sec = time_op(ops[i].fn, ops[i].in, ops[i].len);
            printf("%-8s %9zu %9zu  %-28s %10.1f %12.0f\n", sizes[s].label, jlen, wire.len,
                   ops[i].name, (double)ops[i].text / sec / 1e6, 1.0 / sec);
        }
        pt_json_out_fini(&wire);
        pt_json_out_fini(&back);
        free(json);
    }
    return 0;
}
