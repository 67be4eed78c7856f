/*
 * Fuzz the HTTP/2 server session: bytes after the client preface go into a
 * real pt_h2_server over a socketpair; a minimal exchange handler answers
 * every request (sometimes with a body, trailers or a reset) so streams run
 * their whole life: headers, DATA, flow control, trailers, RST, GOAWAY.
 * Must never crash, leak or hang.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http2/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pt_worker worker;
static unsigned answer_kind;

static void answer(struct pt_exchange *x, int status)
{
    x->resp.status = status;
    pt_headers_add(&x->resp.headers, PT_STR("content-type"), PT_STR("text/plain"));
    x->resp.has_body = (answer_kind % 3) != 0;
    if (x->resp.has_body) {
        pt_pipe_write(&x->resp_body, "hello world", 11);
        struct pt_headers *t = NULL;
        if (answer_kind % 2) {
            t = pt_arena_alloc(&x->arena, sizeof(*t));
            if (t) {
                pt_headers_init(t, &x->arena, 0);
                pt_headers_add(t, PT_STR("grpc-status"), PT_STR("0"));
            }
        }
        pt_pipe_end(&x->resp_body, t);
    }
    x->resp_started = true;
    x->down->send_head(x);
    answer_kind++;
}

static void h_start(struct pt_exchange *x)
{
    if (answer_kind % 7 == 5) {
        answer_kind++;
        x->down->reset(x, PT_ERR_CANCELLED);
        return;
    }
    answer(x, 200);
}

static void h_fail(struct pt_exchange *x, int err)
{
    if (x->resp_started)
        x->down->reset(x, err);
    else
        answer(x, 400);
}

static void h_end(struct pt_exchange *x, int err)
{
    pt_exchange_free(x);
}

static const struct pt_exchange_handler handler = {.start = h_start, .fail = h_fail, .end = h_end};

static void closed(struct pt_down_conn *dc)
{
    *(int *)dc->owner = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        init = 1;
        pt_worker_init(&worker, 0);
        pt_exchange_set_handler(&handler);
    }
    answer_kind = size ? data[0] : 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        return 0;
    int done = 0;
    struct pt_down_conn tmpl = {0};
    tmpl.on_closed = closed;
    tmpl.owner = &done;
    tmpl.limits = (struct pt_server_limits){.max_header_bytes = 16384,
                                            .max_headers = 64,
                                            .max_concurrent_streams = 16,
                                            .idle_timeout_ms = 60000,
                                            .header_timeout_ms = 60000,
                                            .max_resets_per_second = 50,
                                            .exchange_arena_bytes = 256 * 1024};
    struct sockaddr_storage peer = {0};
    peer.ss_family = AF_UNIX;
    struct pt_conn *c =
        pt_conn_accepted(&worker, sv[0], (struct sockaddr *)&peer, sizeof(peer), NULL, NULL, NULL);
    pt_h2_server_new(&worker, c, &tmpl);
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    evbuffer_add(c->in, preface, sizeof(preface) - 1);
    evbuffer_add(c->in, data, size);
    /* Let the server consume what is buffered and answer (bounded turns). */
    for (int i = 0; i < 50 && !done; i++) {
        pt_worker_run_pending(&worker);
        event_base_loop(worker.base, EVLOOP_NONBLOCK);
        char sink[65536];
        while (read(sv[1], sink, sizeof(sink)) > 0) {
        }
        if (i == 10)
            shutdown(sv[1], SHUT_WR); /* the client goes away */
    }
    /* Whatever state it is in, the connection must close cleanly. */
    for (int i = 0; i < 200 && !done; i++) {
        close(sv[1]);
        sv[1] = -1;
        event_base_loop(worker.base, EVLOOP_NONBLOCK);
        pt_worker_run_pending(&worker);
    }
    if (sv[1] >= 0)
        close(sv[1]);
    if (!done)
        abort(); /* a connection that never closes is a leak */
    return 0;
}
