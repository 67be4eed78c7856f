/*
 * Fuzz one transcoded call's sans-I/O steps (transcode/route_call.c) over
 * the integration tests' bookstore service: the first byte picks the step
 * and, for requests and responses, the method; the rest is what a client
 * or a backend may send - a request body (JSON, NDJSON for client streams,
 * raw bytes for HttpBody), a response message's wire bytes (whole, its
 * response_body field, HttpBody), or grpc-status-details-bin contents.
 * Any input is a result or an error, never a crash; a built request always
 * parses as framed messages of the method's input type.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transcode/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pt_tc_route *route;

static void setup(void)
{
    FILE *f = fopen(PT_TC_BOOKSTORE_DESC, "rb");
    if (!f)
        abort();
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    char err[256];
    struct pt_descpool *pool = pt_descpool_new_from_set(buf, n, NULL, err, sizeof(err));
    if (!pool)
        abort();
    /* Every method gets the rule POST /f/<Method> with body "*", so every
     * input type is reachable with a query string too. */
    static Portico__Config__V1__TranscodeRule rules[64];
    static Portico__Config__V1__TranscodeRule *rp[64];
    static char paths[64][128];
    Portico__Config__V1__Transcode tc = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    const struct pt_descpool_service *svc =
        pt_descpool_find_service(pool, PT_STR("portico.test.bookstore.Bookstore"));
    if (!svc)
        abort();
    for (size_t i = 0; i < svc->desc->n_methods && i < 64; i++) {
        Portico__Config__V1__TranscodeRule r = PORTICO__CONFIG__V1__TRANSCODE_RULE__INIT;
        rules[i] = r;
        snprintf(paths[i], sizeof(paths[i]), "/f/%s", svc->methods[i].desc->name);
        rules[i].method = (char *)svc->methods[i].full_name;
        rules[i].post = paths[i];
        rules[i].body = "*";
        rp[i] = &rules[i];
        tc.n_rules++;
    }
    tc.rules = rp;
    struct pt_diag d;
    pt_diag_init(&d);
    route = pt_tc_route_compile(&tc, pool, "fuzz", &d);
    if (!route)
        fprintf(stderr, "%s\n", pt_diag_text(&d));
    pt_diag_fini(&d);
    pt_descpool_unref(pool);
    if (!route)
        abort();
}

static void check_frames(const ProtobufCMessageDescriptor *in, const struct pt_json_out *w)
{
    size_t i = 0;
    while (i < w->len) {
        if (w->len - i < 5)
            abort();
        const uint8_t *p = (const uint8_t *)w->data + i;
        size_t n = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
        if (p[0] != 0 || n > w->len - i - 5 || pt_descpool_check_depth(in, p + 5, n, 200) != 0)
            abort();
        i += 5 + n;
    }
}

static void request(uint32_t mi, const uint8_t *data, size_t size)
{
    const struct pt_tc_method *tm = &route->methods[mi];
    struct pt_arena a;
    pt_arena_init(&a, NULL, 0);
    char path[160];
    snprintf(path, sizeof(path), "/f/%s", tm->m->desc->name);
    struct pt_httprule_request req = {PT_STR("POST"), pt_str_from_cstr(path),
                                      PT_STR("name=x&count=3")};
    struct pt_httprule_match m;
    if (pt_httprule_table_match(route->table, &req, &a, &m) == 0) {
        struct pt_json_out w = {0};
        struct pt_tc_error err;
        struct pt_str body = {(const char *)data, size};
        if (pt_tc_request_frames(route, &m, body, PT_STR("text/plain"), &w, &err) == 0)
            check_frames(tm->in, &w);
        else if (w.len != 0 || !err.message[0])
            abort();
        pt_json_out_fini(&w);
    } else {
        abort(); /* every method has its rule */
    }
    pt_arena_fini(&a);
}

static void response(uint32_t mi, bool field, const uint8_t *data, size_t size)
{
    const struct pt_tc_method *tm = &route->methods[mi];
    struct pt_str seg = {NULL, 0};
    struct pt_httprule_field f = {&seg, 0};
    if (field && tm->out->n_fields) {
        seg = pt_str_from_cstr(tm->out->fields[size % tm->out->n_fields].name);
        f.nseg = 1;
    }
    struct pt_json_out out = {0};
    struct pt_tc_error err;
    if (pt_tc_response_json(route, mi, &f, data, size, &out, &err) != 0 && out.len)
        abort();
    pt_json_out_fini(&out);
    struct pt_str ct, body;
    pt_tc_response_http_body(route, mi, &f, data, size, &ct, &body);
}

static void details(const uint8_t *data, size_t size)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *b = malloc(size * 4 / 3 + 4);
    if (!b)
        abort();
    size_t o = 0;
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < size ? (uint32_t)data[i + 1] << 8 : 0) |
                     (i + 2 < size ? data[i + 2] : 0);
        b[o++] = t[v >> 18 & 63];
        b[o++] = t[v >> 12 & 63];
        if (i + 1 < size)
            b[o++] = t[v >> 6 & 63];
        if (i + 2 < size)
            b[o++] = t[v & 63];
    }
    struct pt_json_out out = {0};
    pt_tc_error_json(route, 3, (struct pt_str){(const char *)data, size}, (struct pt_str){b, o},
                     &out);
    if (out.len < 2 || out.data[0] != '{' || out.data[out.len - 1] != '}')
        abort();
    pt_json_out_fini(&out);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!route)
        setup();
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    uint32_t mi = (uint32_t)(sel >> 2) % (uint32_t)route->nmethods;
    switch (sel & 3) {
    case 0:
        request(mi, data + 1, size - 1);
        break;
    case 1:
        response(mi, false, data + 1, size - 1);
        break;
    case 2:
        response(mi, true, data + 1, size - 1);
        break;
    default:
        details(data + 1, size - 1);
        break;
    }
    return 0;
}
