/*
 * Syntax of the network names written in configuration: listener
 * addresses, upstream hosts, HTTP tokens. Nothing here resolves a name or
 * opens a socket; that happens when a snapshot is compiled.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "conf/conf_int.h"
#include "portico/errors.h"

static int parse_port(const char *s, uint16_t *out, const char **why)
{
    uint64_t v;
    if (!*s) {
        *why = "missing port (write host:port)";
        return PT_ERR_CONFIG;
    }
    if (pt_conf_parse_uint(s, strlen(s), 65535, &v) != PT_CONF_NUM_OK || s[0] == '+' ||
        s[0] == '-' || v == 0) {
        *why = "port must be a number from 1 to 65535";
        return PT_ERR_CONFIG;
    }
    *out = (uint16_t)v;
    return 0;
}

int pt_conf_address_parse(const char *text, struct pt_conf_address *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (!text || !*text) {
        *why = "address is empty";
        return PT_ERR_CONFIG;
    }
    const char *port;
    size_t hlen;
    const char *host = text;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            *why = "an IPv6 address is written [addr]:port";
            return PT_ERR_CONFIG;
        }
        host = text + 1;
        hlen = (size_t)(close - host);
        port = close + 2;
        out->family = AF_INET6;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon) {
            *why = "missing port (write host:port, or :port for every address)";
            return PT_ERR_CONFIG;
        }
        hlen = (size_t)(colon - text);
        if (memchr(text, ':', hlen)) {
            *why = "an IPv6 address is written in brackets: [addr]:port";
            return PT_ERR_CONFIG;
        }
        port = colon + 1;
        out->family = AF_INET;
    }
    if (hlen >= sizeof(out->host)) {
        *why = "host is too long";
        return PT_ERR_CONFIG;
    }
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    if (parse_port(port, &out->port, why) != 0)
        return PT_ERR_CONFIG;
    if (out->family == AF_INET6) {
        if (inet_pton(AF_INET6, out->host, out->ip) != 1) {
            *why = "not an IPv6 address";
            return PT_ERR_CONFIG;
        }
        return 0;
    }
    if (hlen == 0) /* ":port": every IPv4 address */
        return 0;
    const char *ip = strcmp(out->host, "localhost") == 0 ? "127.0.0.1" : out->host;
    if (inet_pton(AF_INET, ip, out->ip) != 1) {
        *why = "host must be an IP address or localhost";
        return PT_ERR_CONFIG;
    }
    return 0;
}

bool pt_conf_ip_literal(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* RFC 1123 host names: dot-separated labels of letters, digits and inner
 * hyphens, 63 bytes a label, 253 in all; one trailing dot allowed. */
bool pt_conf_host_valid(const char *s)
{
    if (!s || !*s)
        return false;
    if (pt_conf_ip_literal(s))
        return true;
    size_t len = strlen(s);
    if (s[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && label > 0))
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && s[len - 1] != '-';
}

/* RFC 9110 tchar. */
bool pt_conf_is_token(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        char c = *s;
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !strchr("!#$%&'*+-.^_`|~", c))
            return false;
    }
    return true;
}
