/*
 * Rate-limit keys: key_type parsing and bounded key text (see key.h).
 */
#include "ratelimit/key.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/digest.h"
#include "core/error.h"

static bool token_char(unsigned char c)
{
    /* RFC 9110 tchar, lower case only (header names are stored lowered). */
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int parse_part(const char *p, size_t len, struct pt_rl_part *out)
{
    static const struct {
        const char *name;
        enum pt_rl_part_kind kind;
    } simple[] = {
        {"global", PT_RL_PART_GLOBAL},
        {"route", PT_RL_PART_ROUTE},
        {"ip", PT_RL_PART_IP},
        {"api_key", PT_RL_PART_API_KEY},
        {"client_id", PT_RL_PART_CLIENT_ID},
        {"user_id", PT_RL_PART_USER_ID},
    };
    memset(out, 0, sizeof(*out));
    for (size_t k = 0; k < sizeof(simple) / sizeof(simple[0]); k++)
        if (strlen(simple[k].name) == len && memcmp(p, simple[k].name, len) == 0) {
            out->kind = simple[k].kind;
            return 0;
        }
    if (len <= 7 || memcmp(p, "header:", 7) != 0 || len - 7 >= sizeof(out->header))
        return PT_ERR_INVALID;
    out->kind = PT_RL_PART_HEADER;
    for (size_t i = 7; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (!token_char(c) || c == '+')
            return PT_ERR_INVALID;
        out->header[out->header_len++] = (char)c;
    }
    return 0;
}

int pt_rl_keyspec_parse(const char *key_type, unsigned ipv4_prefix, unsigned ipv6_prefix,
                        struct pt_rl_keyspec *out)
{
    memset(out, 0, sizeof(*out));
    if (!key_type || !*key_type || ipv4_prefix < 1 || ipv4_prefix > 32 || ipv6_prefix < 1 ||
        ipv6_prefix > 128)
        return PT_ERR_INVALID;
    out->ipv4_prefix = (uint8_t)ipv4_prefix;
    out->ipv6_prefix = (uint8_t)ipv6_prefix;
    const char *p = key_type;
    for (;;) {
        const char *plus = strchr(p, '+');
        size_t len = plus ? (size_t)(plus - p) : strlen(p);
        if (out->n == PT_RL_MAX_PARTS || parse_part(p, len, &out->parts[out->n]) != 0)
            return PT_ERR_INVALID;
        enum pt_rl_part_kind k = out->parts[out->n].kind;
        if (k == PT_RL_PART_CLIENT_ID || k == PT_RL_PART_USER_ID)
            out->needs_identity = true;
        out->n++;
        if (!plus)
            return 0;
        p = plus + 1;
    }
}

void pt_rl_sha256_hex(const void *data, size_t len, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[PT_SHA256_LEN];
    pt_sha256(data, len, md);
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

static bool plain_value(struct pt_str v)
{
    if (v.len > PT_RL_MAX_VALUE)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        if (c < 0x21 || c > 0x7e || c == '{' || c == '}' || c == '|')
            return false;
    }
    return true;
}

/* Append "<tag>=<value or #hash>"; always fits (see PT_RL_MAX_KEY). */
static size_t put_value(char *buf, size_t n, char tag, struct pt_str v, bool force_hash)
{
    if (n)
        buf[n++] = '|';
    buf[n++] = tag;
    buf[n++] = '=';
    if (!force_hash && plain_value(v)) {
        memcpy(buf + n, v.ptr, v.len);
        return n + v.len;
    }
    char hex[65];
    pt_rl_sha256_hex(v.ptr, v.len, hex);
    buf[n++] = '#';
    memcpy(buf + n, hex, 32);
    return n + 32;
}

static size_t put_ip(char *buf, size_t n, const struct pt_rl_keyspec *ks, const struct sockaddr *sa)
{
    char text[INET6_ADDRSTRLEN + 8] = "-";
    if (sa && sa->sa_family == AF_INET6) {
        struct in6_addr a = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&a)) {
            struct in_addr v4;
            memcpy(&v4, &a.s6_addr[12], 4);
            uint32_t h = ntohl(v4.s_addr);
            h &= ks->ipv4_prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> ks->ipv4_prefix);
            v4.s_addr = htonl(h);
            inet_ntop(AF_INET, &v4, text, sizeof(text));
            snprintf(text + strlen(text), 8, "/%u", ks->ipv4_prefix);
        } else {
            unsigned bits = ks->ipv6_prefix;
            for (unsigned i = 0; i < 16; i++) {
                unsigned keep = bits >= 8 ? 8 : bits;
                a.s6_addr[i] &= (uint8_t)(0xff00u >> keep);
                bits -= keep;
            }
            inet_ntop(AF_INET6, &a, text, sizeof(text));
            snprintf(text + strlen(text), 8, "/%u", ks->ipv6_prefix);
        }
    } else if (sa && sa->sa_family == AF_INET) {
        struct in_addr v4 = ((const struct sockaddr_in *)sa)->sin_addr;
        uint32_t h = ntohl(v4.s_addr);
        h &= ks->ipv4_prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> ks->ipv4_prefix);
        v4.s_addr = htonl(h);
        inet_ntop(AF_INET, &v4, text, sizeof(text));
        snprintf(text + strlen(text), 8, "/%u", ks->ipv4_prefix);
    }
    return put_value(buf, n, 'i', pt_str_from_cstr(text), false);
}

size_t pt_rl_key_build(const struct pt_rl_keyspec *ks, const struct pt_rl_inputs *in, char *buf)
{
    size_t n = 0;
    for (unsigned i = 0; i < ks->n; i++) {
        const struct pt_rl_part *p = &ks->parts[i];
        struct pt_str v = {0};
        switch (p->kind) {
        case PT_RL_PART_GLOBAL:
            if (n)
                buf[n++] = '|';
            buf[n++] = 'g';
            break;
        case PT_RL_PART_ROUTE:
            n = put_value(buf, n, 'r', in->route, false);
            break;
        case PT_RL_PART_IP:
            n = put_ip(buf, n, ks, in->addr);
            break;
        case PT_RL_PART_HEADER:
            if (!in->header ||
                !in->header(in->header_ctx, (struct pt_str){p->header, p->header_len}, &v))
                return 0;
            n = put_value(buf, n, 'h', v, false);
            break;
        case PT_RL_PART_API_KEY:
            if (!in->api_key.len)
                return 0;
            n = put_value(buf, n, 'k', in->api_key, true);
            break;
        case PT_RL_PART_CLIENT_ID:
            if (!in->client_id.len)
                return 0;
            n = put_value(buf, n, 'c', in->client_id, false);
            break;
        case PT_RL_PART_USER_ID:
            if (!in->user_id.len)
                return 0;
            n = put_value(buf, n, 'u', in->user_id, false);
            break;
        }
    }
    return n;
}
