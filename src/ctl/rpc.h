/*
 * ctl/rpc.h - unary gRPC calls for porticoctl (grpc C core underneath;
 * no grpc type appears here). One pt_ctl_rpc is one channel.
 * Thread: one thread at a time per pt_ctl_rpc.
 */
#ifndef PT_CTL_RPC_H
#define PT_CTL_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

struct pt_ctl_rpc;

/* A call's final status: message and details (the grpc-status-details-bin
 * trailer, decoded from base64 already) are heap copies. */
struct pt_ctl_rpc_status {
    int code;
    char *message;
    uint8_t *details;
    size_t details_len;
};

/*
 * A channel to addr ("host:port"): TLS when ca_pem is set (with a client
 * certificate when cert_pem and key_pem are set), else cleartext. token,
 * when set, goes in "authorization: Bearer <token>" on every call; each
 * call's deadline is timeout_s from its start. Pointer: never NULL (the
 * connection is made lazily, by the first call). The PEM strings are
 * copied.
 */
struct pt_ctl_rpc *pt_ctl_rpc_open(const char *addr, const char *ca_pem, const char *cert_pem,
                                   const char *key_pem, const char *token, double timeout_s);
/* NULL is a no-op. */
void pt_ctl_rpc_close(struct pt_ctl_rpc *c);

/*
 * Call method ("/pkg.Service/Method") with req. Status: the gRPC code; on
 * 0, *resp is the decoded response (protobuf_c_message_free_unpacked). st
 * is filled in every case; release with pt_ctl_rpc_status_fini().
 */
int pt_ctl_rpc_call(struct pt_ctl_rpc *c, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                    struct pt_ctl_rpc_status *st);
void pt_ctl_rpc_status_fini(struct pt_ctl_rpc_status *st);

/* Is the channel connected now (to tell "unreachable" from "slow")? */
bool pt_ctl_rpc_connected(struct pt_ctl_rpc *c);

#endif
