#include "grpc/grpc.h"

#include "portico/errors.h"

int pt_grpc_timeout_parse(struct pt_str v, uint64_t *ns)
{
    if (v.len < 2 || v.len > 9)
        return PT_ERR_BAD_REQUEST;
    uint64_t n = 0;
    for (size_t i = 0; i + 1 < v.len; i++) {
        char c = v.ptr[i];
        if (c < '0' || c > '9')
            return PT_ERR_BAD_REQUEST;
        n = n * 10 + (uint64_t)(c - '0');
    }
    uint64_t mul;
    switch (v.ptr[v.len - 1]) {
    case 'H':
        mul = 3600ull * 1000000000ull;
        break;
    case 'M':
        mul = 60ull * 1000000000ull;
        break;
    case 'S':
        mul = 1000000000ull;
        break;
    case 'm':
        mul = 1000000ull;
        break;
    case 'u':
        mul = 1000ull;
        break;
    case 'n':
        mul = 1ull;
        break;
    default:
        return PT_ERR_BAD_REQUEST;
    }
    /* 8 digits times an hour fits in 64 bits only loosely: saturate. */
    if (n > UINT64_MAX / mul)
        *ns = UINT64_MAX;
    else
        *ns = n * mul;
    return 0;
}

size_t pt_grpc_timeout_format(uint64_t ns, char *buf)
{
    static const struct {
        char unit;
        uint64_t ns;
    } units[] = {{'n', 1ull},          {'u', 1000ull},        {'m', 1000000ull},
                 {'S', 1000000000ull}, {'M', 60000000000ull}, {'H', 3600000000000ull}};
    /* The finest unit whose value fits in the 8 digits allowed. Rounding
     * up by less than one unit keeps the value exact for all practical
     * deadlines (8 digits of nanoseconds cover 100 ms). */
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        uint64_t v = ns / units[i].ns + (ns % units[i].ns ? 1 : 0);
        if (v <= 99999999ull) {
            char tmp[12];
            size_t n = 0;
            do {
                tmp[n++] = (char)('0' + v % 10);
                v /= 10;
            } while (v);
            for (size_t k = 0; k < n; k++)
                buf[k] = tmp[n - 1 - k];
            buf[n] = units[i].unit;
            return n + 1;
        }
    }
    buf[0] = '9';
    for (int k = 1; k < 8; k++)
        buf[k] = '9';
    buf[8] = 'H';
    return 9;
}

size_t pt_grpc_message_encode(struct pt_str msg, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < msg.len; i++) {
        unsigned char c = (unsigned char)msg.ptr[i];
        if (c >= 0x20 && c <= 0x7e && c != '%') {
            if (n + 1 > cap)
                break;
            out[n++] = (char)c;
        } else {
            if (n + 3 > cap)
                break;
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    return n;
}
