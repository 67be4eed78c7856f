#include "core/strutil.h"

#include "portico/errors.h"

bool pt_str_eq_nocase(struct pt_str a, struct pt_str b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++)
        if (pt_ascii_lower(a.ptr[i]) != pt_ascii_lower(b.ptr[i]))
            return false;
    return true;
}

bool pt_str_has_prefix(struct pt_str s, struct pt_str prefix)
{
    return s.len >= prefix.len && memcmp(s.ptr, prefix.ptr, prefix.len) == 0;
}

bool pt_str_has_prefix_nocase(struct pt_str s, struct pt_str prefix)
{
    return s.len >= prefix.len && pt_str_eq_nocase((struct pt_str){s.ptr, prefix.len}, prefix);
}

struct pt_str pt_str_trim(struct pt_str s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

int pt_str_to_u64(struct pt_str s, uint64_t *out)
{
    if (s.len == 0 || s.len > 20)
        return PT_ERR_BAD_REQUEST;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c < '0' || c > '9')
            return PT_ERR_BAD_REQUEST;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return PT_ERR_BAD_REQUEST;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

bool pt_str_list_has_token(struct pt_str list, struct pt_str token)
{
    size_t i = 0;
    while (i <= list.len) {
        size_t j = i;
        while (j < list.len && list.ptr[j] != ',')
            j++;
        struct pt_str item = pt_str_trim((struct pt_str){list.ptr + i, j - i});
        if (pt_str_eq_nocase(item, token))
            return true;
        i = j + 1;
    }
    return false;
}

size_t pt_u64_format(uint64_t v, char *buf)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}
