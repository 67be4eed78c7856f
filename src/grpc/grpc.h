/*
 * grpc/grpc.h - gRPC-over-HTTP/2 details the proxy needs (sans-I/O).
 *
 * grpc-timeout (PROTOCOL-HTTP2: up to 8 ASCII digits and a unit H M S m u n)
 * and grpc-message (percent-encoded UTF-8: bytes outside 0x20..0x7E, and
 * '%' itself, become %XX).
 */
#ifndef PT_GRPC_GRPC_H
#define PT_GRPC_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "portico/str.h"

/* Status: 0 with *ns set, or PT_ERR_BAD_REQUEST for a malformed value. */
int pt_grpc_timeout_parse(struct pt_str v, uint64_t *ns);
/* Write the shortest exact-or-rounded-up grpc-timeout for ns into buf
 * (at least 10 bytes); returns its length. */
size_t pt_grpc_timeout_format(uint64_t ns, char *buf);
/* Percent-encode msg into out (cap >= 3 * msg.len); returns the length. */
size_t pt_grpc_message_encode(struct pt_str msg, char *out, size_t cap);

#endif
