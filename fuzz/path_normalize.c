/*
 * Fuzz the request-target splitter and the path normalizer.
 *
 * Input: byte 0 picks the options (bit 0: keep duplicate slashes; bit 1:
 * feed the bytes to pt_http_target_parse first), the rest is the target or
 * path. Whatever is accepted must be in normal form: normalizing it again
 * changes nothing, it starts with '/' (or is "*"), it has no "//" (unless
 * kept), no "." or ".." segment, no raw byte >= 0x80, control byte, space,
 * DEL, '#' or backslash, and every '%' starts an upper-case escape of a
 * byte that is not unreserved.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int upper_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void check_normal_form(const char *p, size_t n, bool keep)
{
    if (n == 1 && p[0] == '*')
        return;
    check(n >= 1 && p[0] == '/');
    size_t seg_start = 1;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '/') {
            if (i > 0) {
                size_t len = i - seg_start;
                const char *seg = p + seg_start;
                check(!(len == 1 && seg[0] == '.'));
                check(!(len == 2 && seg[0] == '.' && seg[1] == '.'));
                if (!keep && i < n)
                    check(len > 0);
            }
            seg_start = i + 1;
            continue;
        }
        unsigned char c = (unsigned char)p[i];
        check(c >= 0x21 && c < 0x7f && c != '#' && c != '\\');
        if (c == '%') {
            check(i + 2 < n);
            int hi = upper_hex((unsigned char)p[i + 1]), lo = upper_hex((unsigned char)p[i + 2]);
            check(hi >= 0 && lo >= 0);
            check(!is_unreserved((unsigned char)(hi << 4 | lo)));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct pt_path_opts opts = {.keep_duplicate_slashes = data[0] & 1};
    struct pt_str in = {(const char *)data + 1, size - 1};
    if (data[0] & 2) {
        struct pt_str authority, query;
        if (pt_http_target_parse(in, &authority, &in, &query) != 0)
            return 0;
        check(in.len > 0);
    }

    size_t cap = PT_PATH_NORMALIZE_CAP(in.len);
    char *out = malloc(cap);
    char *again = malloc(PT_PATH_NORMALIZE_CAP(cap));
    if (!out || !again)
        abort();
    size_t len, len2;
    if (pt_path_normalize(in, out, cap, &len, &opts) == 0) {
        check(len < cap && out[len] == '\0');
        check_normal_form(out, len, opts.keep_duplicate_slashes);
        check(pt_path_normalize((struct pt_str){out, len}, again, PT_PATH_NORMALIZE_CAP(cap), &len2,
                                &opts) == 0);
        check(len2 == len && memcmp(out, again, len) == 0);
        /* An exactly sized buffer is enough. */
        check(pt_path_normalize((struct pt_str){out, len}, again, len + 1, &len2, &opts) == 0);
    }
    free(out);
    free(again);
    return 0;
}
