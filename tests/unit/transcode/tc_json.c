/*
 * tc_json: the JSON codec (src/transcode/json*.c) as a command, over the
 * test schema (json_fixture.h), for tests/unit/transcode/json_roundtrip.py
 * and for people. Placed next to the portico binary.
 *
 *   tc_json encode TYPE [options]   JSON on stdin -> protobuf bytes on stdout
 *   tc_json decode TYPE [options]   protobuf bytes on stdin -> JSON on stdout
 * options: --emit-defaults --ignore-unknown --original-names --lines
 * --lines: one document per line, each answered by one line: protobuf bytes
 * as base64 (encode) or JSON (decode), or "error: <message>". With --lines,
 * decode reads base64 lines.
 * Exit status: 0, 1 on a codec error (message on stderr), 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_fixture.h"

static int b64val(int ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

static size_t unb64(const char *in, size_t n, unsigned char *out)
{
    size_t k = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)in[i]);
        if (v < 0)
            continue;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (unsigned char)(acc >> bits);
        }
    }
    return k;
}

static void put_b64(const unsigned char *p, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        putchar(t[v >> 18]);
        putchar(t[(v >> 12) & 63]);
        putchar(i + 1 < n ? t[(v >> 6) & 63] : '=');
        putchar(i + 2 < n ? t[v & 63] : '=');
    }
}

static int run(bool encode, const ProtobufCMessageDescriptor *desc,
               const struct pt_json_options *opts, const char *in, size_t n, bool lines)
{
    struct pt_json_out out = {0};
    struct pt_json_error err;
    int rc;
    if (encode)
        rc = pt_json_decode(desc, (struct pt_str){in, n}, pt_test_json_hooks(), opts, &out, &err);
    else
        rc = pt_json_encode(desc, (const uint8_t *)in, n, pt_test_json_hooks(), opts, &out, &err);
    if (rc != 0) {
        if (lines)
            printf("error: %s\n", err.message);
        else
            fprintf(stderr, "tc_json: %s\n", err.message);
    } else if (lines && encode) {
        put_b64((const unsigned char *)out.data, out.len);
        putchar('\n');
    } else {
        fwrite(out.data, 1, out.len, stdout);
        if (lines)
            putchar('\n');
    }
    pt_json_out_fini(&out);
    return rc != 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "encode") != 0 && strcmp(argv[1], "decode") != 0)) {
        fprintf(stderr, "usage: tc_json encode|decode TYPE [--emit-defaults] [--ignore-unknown] "
                        "[--original-names] [--lines]\n");
        return 2;
    }
    bool encode = strcmp(argv[1], "encode") == 0, lines = false;
    const ProtobufCMessageDescriptor *desc = pt_test_json_find(pt_str_from_cstr(argv[2]));
    if (!desc) {
        fprintf(stderr, "tc_json: unknown type %s\n", argv[2]);
        return 2;
    }
    struct pt_json_options opts = {0};
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--emit-defaults") == 0)
            opts.emit_defaults = true;
        else if (strcmp(argv[i], "--ignore-unknown") == 0)
            opts.ignore_unknown = true;
        else if (strcmp(argv[i], "--original-names") == 0)
            opts.original_names = true;
        else if (strcmp(argv[i], "--lines") == 0)
            lines = true;
        else {
            fprintf(stderr, "tc_json: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    size_t cap = 1 << 16, len = 0, got;
    char *buf = malloc(cap);
    if (!buf)
        return 2;
    while ((got = fread(buf + len, 1, cap - len, stdin)) > 0) {
        len += got;
        if (len == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                return 2;
            buf = nb;
        }
    }
    int rc = 0;
    if (!lines) {
        rc = run(encode, desc, &opts, buf, len, false);
    } else {
        unsigned char *bin = malloc(len + 1);
        if (!bin)
            return 2;
        size_t start = 0;
        for (size_t i = 0; i <= len; i++) {
            if (i < len && buf[i] != '\n')
                continue;
            if (i > start || i < len) {
                if (encode) {
                    run(true, desc, &opts, buf + start, i - start, true);
                } else {
                    size_t n = unb64(buf + start, i - start, bin);
                    run(false, desc, &opts, (const char *)bin, n, true);
                }
            }
            start = i + 1;
        }
        free(bin);
    }
    free(buf);
    fflush(stdout);
    return rc;
}
