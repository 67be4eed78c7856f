/*
 * porticoctl's transport: unary calls on grpc C core. Kept apart from the
 * rest (and built without src/ on the include path) because src/grpc/grpc.h
 * would shadow <grpc/grpc.h>.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "rpc.h"

struct pt_ctl_rpc {
    grpc_channel *ch;
    grpc_completion_queue *cq;
    char *auth; /* "Bearer <token>" or NULL */
    double timeout_s;
};

void pt_ctl_rpc_status_fini(struct pt_ctl_rpc_status *st)
{
    free(st->message);
    free(st->details);
}

struct pt_ctl_rpc *pt_ctl_rpc_open(const char *addr, const char *ca_pem, const char *cert_pem,
                                   const char *key_pem, const char *token, double timeout_s)
{
    grpc_init();
    struct pt_ctl_rpc *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->timeout_s = timeout_s;
    if (token) {
        size_t n = strlen(token) + 8;
        c->auth = malloc(n);
        if (!c->auth)
            abort();
        snprintf(c->auth, n, "Bearer %s", token);
    }
    grpc_channel_credentials *creds;
    if (ca_pem) {
        grpc_ssl_pem_key_cert_pair pair = {key_pem, cert_pem};
        creds = grpc_ssl_credentials_create(ca_pem, cert_pem ? &pair : NULL, NULL, NULL);
    } else {
        creds = grpc_insecure_credentials_create();
    }
    c->ch = grpc_channel_create(addr, creds, NULL);
    grpc_channel_credentials_release(creds);
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    return c;
}

bool pt_ctl_rpc_connected(struct pt_ctl_rpc *c)
{
    return grpc_channel_check_connectivity_state(c->ch, 0) == GRPC_CHANNEL_READY;
}

void pt_ctl_rpc_close(struct pt_ctl_rpc *c)
{
    if (!c)
        return;
    if (c->ch)
        grpc_channel_destroy(c->ch);
    if (c->cq) {
        grpc_completion_queue_shutdown(c->cq);
        /* Every batch was plucked, so the queue reports shutdown at once. */
        for (int i = 0; i < 16; i++) {
            grpc_event ev = grpc_completion_queue_pluck(c->cq, (void *)1,
                                                        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN)
                break;
        }
        grpc_completion_queue_destroy(c->cq);
    }
    free(c->auth);
    free(c);
    grpc_shutdown();
}

static char *slice_dup(grpc_slice s)
{
    size_t n = GRPC_SLICE_LENGTH(s);
    char *p = malloc(n + 1);
    if (!p)
        abort();
    memcpy(p, GRPC_SLICE_START_PTR(s), n);
    p[n] = '\0';
    return p;
}

/*
 * One unary call. Status: the gRPC status code (0 = OK, *resp set, caller
 * frees it); st is filled either way (status_fini).
 */
int pt_ctl_rpc_call(struct pt_ctl_rpc *c, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                    struct pt_ctl_rpc_status *st)
{
    memset(st, 0, sizeof(*st));
    *resp = NULL;
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                     gpr_time_from_millis((int64_t)(c->timeout_s * 1000), GPR_TIMESPAN));
    grpc_slice method_slice = grpc_slice_from_static_string(method);
    grpc_call *gc = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                             method_slice, NULL, deadline, NULL);

    size_t len = protobuf_c_message_get_packed_size(req);
    grpc_slice body = grpc_slice_malloc(len);
    protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(body));
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1);
    grpc_slice_unref(body);

    grpc_metadata md[1];
    size_t nmd = 0;
    if (c->auth) {
        md[0].key = grpc_slice_from_static_string("authorization");
        md[0].value = grpc_slice_from_copied_string(c->auth);
        nmd = 1;
    }

    grpc_metadata_array initial, trailing;
    grpc_metadata_array_init(&initial);
    grpc_metadata_array_init(&trailing);
    grpc_byte_buffer *recv = NULL;
    grpc_slice details = grpc_empty_slice();
    const char *error_string = NULL;

    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = nmd;
    ops[0].data.send_initial_metadata.metadata = md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = &error_string;

    void *tag = (void *)1;
    grpc_call_error err = grpc_call_start_batch(gc, ops, 6, tag, NULL);
    if (err != GRPC_CALL_OK) {
        st->code = (int)GRPC_STATUS_INTERNAL;
        st->message = strdup("cannot start the call");
    } else {
        grpc_event ev = grpc_completion_queue_pluck(
            c->cq, tag, gpr_time_add(deadline, gpr_time_from_seconds(5, GPR_TIMESPAN)), NULL);
        if (ev.type != GRPC_OP_COMPLETE) {
            grpc_call_cancel(gc, NULL);
            grpc_completion_queue_pluck(c->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        }
        st->code = (int)code;
        st->message = slice_dup(details);
        for (size_t i = 0; i < trailing.count; i++) {
            if (grpc_slice_str_cmp(trailing.metadata[i].key, "grpc-status-details-bin") == 0) {
                grpc_slice v = trailing.metadata[i].value;
                st->details_len = GRPC_SLICE_LENGTH(v);
                st->details = malloc(st->details_len ? st->details_len : 1);
                if (!st->details)
                    abort();
                memcpy(st->details, GRPC_SLICE_START_PTR(v), st->details_len);
            }
        }
        if (st->code == (int)GRPC_STATUS_OK) {
            if (!recv) {
                st->code = (int)GRPC_STATUS_INTERNAL;
                free(st->message);
                st->message = strdup("the server sent no response message");
            } else {
                grpc_byte_buffer_reader reader;
                grpc_byte_buffer_reader_init(&reader, recv);
                grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
                grpc_byte_buffer_reader_destroy(&reader);
                *resp = protobuf_c_message_unpack(resp_desc, NULL, GRPC_SLICE_LENGTH(all),
                                                  GRPC_SLICE_START_PTR(all));
                grpc_slice_unref(all);
                if (!*resp) {
                    st->code = (int)GRPC_STATUS_INTERNAL;
                    free(st->message);
                    st->message = strdup("cannot decode the response");
                }
            }
        }
    }
    if (error_string)
        gpr_free((void *)error_string);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial);
    grpc_metadata_array_destroy(&trailing);
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    if (nmd)
        grpc_slice_unref(md[0].value);
    grpc_call_unref(gc);
    return st->code;
}
