/*
 * The filter-chain runner and body stages, driven without sockets: a real
 * worker loop (run by hand), real exchanges and pipes, test filter types.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <string.h>

#include "core/worker.h"
#include "proxy/chain.h"
#include "proxy/proxy_int.h"

/* --- a recording world --------------------------------------------------- */

static char trace[512];
static int terminals, delivers, broken_calls;
static struct pt_worker worker;

static void rec(const char *s)
{
    strncat(trace, s, sizeof(trace) - strlen(trace) - 1);
}

static void t_terminal(struct pt_exchange *x)
{
    terminals++;
    rec("T ");
}

static void t_deliver(struct pt_exchange *x)
{
    delivers++;
    rec("D ");
}

static void t_broken(struct pt_exchange *x, const char *name)
{
    broken_calls++;
}

static const struct pt_chain_steps steps = {t_terminal, t_deliver, t_broken};

static void h_resume(struct pt_exchange *x)
{
    pt_proxy_body_resume(x);
    pt_chain_resume(x);
}

static int h_reply(struct pt_exchange *x, int status, struct pt_str ct, struct pt_str body)
{
    x->resp_local = true;
    x->resp.status = status;
    if (x->phase == PT_PHASE_RESPONSE)
        pt_chain_response_replaced(x);
    return 0;
}

static const struct pt_exchange_handler handler = {.resume = h_resume, .reply = h_reply};

/* A filter instance says what its hooks do. */
struct tf {
    const char *name;
    enum pt_filter_status req, resp;
    int pause_once; /* pause the first time, continue after */
    int paused;
    int done;
    bool upper; /* body: uppercase the chunk */
    int body_calls;
    int ends;
    bool pause_body_once;
    int body_paused;
};

static enum pt_filter_status f_req(struct pt_exchange *x, void *inst)
{
    struct tf *f = inst;
    rec(f->name);
    rec(" ");
    if (f->pause_once && !f->paused) {
        f->paused = 1;
        return PT_FILTER_PAUSE;
    }
    if (f->req == PT_FILTER_REPLIED)
        pt_exchange_reply(x, 403, PT_STR_NULL, PT_STR_NULL);
    return f->req;
}

static enum pt_filter_status f_resp(struct pt_exchange *x, void *inst)
{
    struct tf *f = inst;
    rec("r");
    rec(f->name);
    rec(" ");
    return f->resp;
}

static enum pt_filter_status f_body(struct pt_exchange *x, void *inst, struct pt_chunk *c, bool end)
{
    struct tf *f = inst;
    f->body_calls++;
    if (end)
        f->ends++;
    if (f->pause_body_once && !f->body_paused) {
        f->body_paused = 1;
        return PT_FILTER_PAUSE;
    }
    if (f->upper) {
        size_t n = pt_chunk_len(c);
        char buf[256];
        n = pt_chunk_copyout(c, 0, buf, n < sizeof(buf) ? n : sizeof(buf));
        for (size_t i = 0; i < n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z')
                buf[i] = (char)(buf[i] - 32);
        pt_chunk_clear(c);
        pt_chunk_append(c, buf, n);
    }
    return PT_FILTER_CONTINUE;
}

static void f_done(struct pt_exchange *x, void *inst)
{
    ((struct tf *)inst)->done++;
}

static const struct pt_filter_type type = {
    .name = "test",
    .abi_version = PT_ABI_VERSION,
    .on_request_head = f_req,
    .on_response_head = f_resp,
    .on_done = f_done,
};
static const struct pt_filter_type body_type = {
    .name = "body",
    .abi_version = PT_ABI_VERSION,
    .on_request_body = f_body,
    .on_response_body = f_body,
    .on_done = f_done,
};

static struct pt_conn_info info = {.peer_ip = "127.0.0.1"};

static struct pt_exchange *new_x(void)
{
    return pt_exchange_new(&worker, &info, NULL, NULL, 0);
}

static int setup(void **state)
{
    memset(trace, 0, sizeof(trace));
    terminals = delivers = broken_calls = 0;
    assert_int_equal(pt_worker_init(&worker, 0), 0);
    pt_exchange_set_handler(&handler);
    pt_chain_set_steps(&steps);
    return 0;
}

static int teardown(void **state)
{
    pt_worker_fini(&worker);
    return 0;
}

static struct pt_chain make_chain(struct pt_filter_inst *fi, struct tf *tfs, int n,
                                  const struct pt_filter_type *t)
{
    for (int i = 0; i < n; i++) {
        fi[i].type = t;
        fi[i].instance = &tfs[i];
    }
    struct pt_chain c = {.filters = fi, .n = (uint16_t)n};
    c.request_body_hooks = t->on_request_body != NULL;
    c.response_body_hooks = t->on_response_body != NULL;
    return c;
}

/* --- head phases ---------------------------------------------------------- */

static void test_chain__runs_request_hooks_in_order_then_terminal(void **state)
{
    struct tf tfs[3] = {{.name = "a"}, {.name = "b"}, {.name = "c"}};
    struct pt_filter_inst fi[3];
    struct pt_chain c = make_chain(fi, tfs, 3, &type);
    struct pt_exchange *x = new_x();
    pt_chain_run_request(x, &c);
    assert_string_equal(trace, "a b c T ");
    assert_int_equal(terminals, 1);
    pt_chain_done(x);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tfs[i].done, 1);
    pt_exchange_free(x);
}

static void test_chain__pause_stops_and_resume_continues_later(void **state)
{
    struct tf tfs[3] = {{.name = "a"}, {.name = "b", .pause_once = 1}, {.name = "c"}};
    struct pt_filter_inst fi[3];
    struct pt_chain c = make_chain(fi, tfs, 3, &type);
    struct pt_exchange *x = new_x();
    pt_chain_run_request(x, &c);
    assert_string_equal(trace, "a b ");
    assert_int_equal(terminals, 0);
    assert_true(x->paused);
    pt_exchange_resume(x);
    /* Never inside the resume call. */
    assert_string_equal(trace, "a b ");
    pt_worker_run_pending(&worker);
    assert_string_equal(trace, "a b c T ");
    assert_int_equal(terminals, 1);
    pt_chain_done(x);
    pt_exchange_free(x);
}

static void test_chain__resume_twice_runs_once(void **state)
{
    struct tf tfs[2] = {{.name = "a", .pause_once = 1}, {.name = "b"}};
    struct pt_filter_inst fi[2];
    struct pt_chain c = make_chain(fi, tfs, 2, &type);
    struct pt_exchange *x = new_x();
    pt_chain_run_request(x, &c);
    pt_exchange_resume(x);
    pt_exchange_resume(x);
    pt_worker_run_pending(&worker);
    pt_exchange_resume(x);
    pt_worker_run_pending(&worker);
    assert_int_equal(terminals, 1);
    assert_string_equal(trace, "a b T ");
    pt_chain_done(x);
    pt_exchange_free(x);
}

static void test_chain__done_only_for_filters_that_ran(void **state)
{
    struct tf tfs[3] = {{.name = "a"}, {.name = "b", .pause_once = 1}, {.name = "c"}};
    struct pt_filter_inst fi[3];
    struct pt_chain c = make_chain(fi, tfs, 3, &type);
    struct pt_exchange *x = new_x();
    pt_chain_run_request(x, &c);
    /* The client goes away while b waits: a and b get on_done, c never ran. */
    x->finished = true;
    pt_chain_done(x);
    pt_chain_done(x);
    assert_int_equal(tfs[0].done, 1);
    assert_int_equal(tfs[1].done, 1);
    assert_int_equal(tfs[2].done, 0);
    /* A resume after the end does nothing. */
    pt_exchange_resume(x);
    pt_worker_run_pending(&worker);
    assert_int_equal(terminals, 0);
    pt_exchange_free(x);
}

static void test_chain__replied_stops_request_hooks(void **state)
{
    struct tf tfs[3] = {{.name = "a"}, {.name = "b", .req = PT_FILTER_REPLIED}, {.name = "c"}};
    struct pt_filter_inst fi[3];
    struct pt_chain c = make_chain(fi, tfs, 3, &type);
    struct pt_exchange *x = new_x();
    pt_chain_run_request(x, &c);
    assert_string_equal(trace, "a b ");
    assert_int_equal(terminals, 0);
    assert_int_equal(x->resp.status, 403);
    assert_int_equal(broken_calls, 0);
    pt_chain_done(x);
    pt_exchange_free(x);
}

static enum pt_filter_status lie(struct pt_exchange *x, void *inst)
{
    return PT_FILTER_REPLIED;
}

static void test_chain__replied_hook_that_did_not_reply_calls_broken(void **state)
{
    static const struct pt_filter_type liar = {
        .name = "liar", .abi_version = PT_ABI_VERSION, .on_request_head = lie};
    struct pt_filter_inst fi[1] = {{&liar, NULL}};
    struct pt_chain c = {.filters = fi, .n = 1};
    struct pt_exchange *x = new_x();
    pt_chain_run_request(x, &c);
    assert_int_equal(broken_calls, 1);
    assert_int_equal(terminals, 0);
    pt_exchange_free(x);
}

static void test_chain__response_hooks_run_in_reverse_over_filters_that_ran(void **state)
{
    struct tf tfs[3] = {{.name = "a"}, {.name = "b"}, {.name = "c", .req = PT_FILTER_REPLIED}};
    struct pt_filter_inst fi[3];
    struct pt_chain c = make_chain(fi, tfs, 3, &type);
    struct pt_exchange *x = new_x();
    pt_chain_run_request(x, &c);
    pt_chain_run_response(x);
    assert_string_equal(trace, "a b c rc rb ra D ");
    assert_int_equal(delivers, 1);
    pt_exchange_free(x);
}

static void test_chain__response_pause_and_resume(void **state)
{
    struct tf tfs[2] = {{.name = "a"}, {.name = "b", .resp = PT_FILTER_PAUSE}};
    struct pt_filter_inst fi[2];
    struct pt_chain c = make_chain(fi, tfs, 2, &type);
    struct pt_exchange *x = new_x();
    pt_chain_run_request(x, &c);
    pt_chain_run_response(x);
    assert_string_equal(trace, "a b T rb ");
    assert_int_equal(delivers, 0);
    tfs[1].resp = PT_FILTER_CONTINUE;
    pt_exchange_resume(x);
    pt_worker_run_pending(&worker);
    assert_string_equal(trace, "a b T rb ra D ");
    assert_int_equal(delivers, 1);
    pt_exchange_free(x);
}

static enum pt_filter_status reply_in_response(struct pt_exchange *x, void *inst)
{
    rec("R ");
    pt_exchange_reply(x, 500, PT_STR_NULL, PT_STR_NULL);
    return PT_FILTER_REPLIED;
}

static void test_chain__reply_from_response_hook_skips_remaining_hooks(void **state)
{
    static const struct pt_filter_type replier = {
        .name = "replier", .abi_version = PT_ABI_VERSION, .on_response_head = reply_in_response};
    struct tf tfs[1] = {{.name = "a"}};
    struct pt_filter_inst fi[2] = {{&type, &tfs[0]}, {&replier, NULL}};
    struct pt_chain c = {.filters = fi, .n = 2};
    struct pt_exchange *x = new_x();
    pt_chain_run_request(x, &c);
    pt_chain_run_response(x);
    assert_string_equal(trace, "a T R D ");
    assert_int_equal(delivers, 1);
    assert_int_equal(x->resp.status, 500);
    pt_exchange_free(x);
}

/* --- body stages ---------------------------------------------------------- */

static void test_body__request_chunks_pass_hooks_and_end_once(void **state)
{
    struct tf tfs[2] = {{.name = "u", .upper = true}, {.name = "v"}};
    struct pt_filter_inst fi[2];
    struct pt_chain c = make_chain(fi, tfs, 2, &body_type);
    struct pt_exchange *x = new_x();
    x->req.has_body = true;
    pt_chain_run_request(x, &c);
    assert_int_equal(terminals, 1);
    pt_proxy_body_prepare(x);
    assert_ptr_equal(x->req_up, &x->req_filtered);
    pt_proxy_body_start_request(x);
    pt_pipe_write(&x->req_body, "hello ", 6);
    pt_pipe_write(&x->req_body, "world", 5);
    pt_pipe_end(&x->req_body, NULL);
    char out[32] = {0};
    size_t n = pt_pipe_peek(x->req_up, out, sizeof(out) - 1);
    assert_int_equal(n, 11);
    assert_string_equal(out, "HELLO WORLD");
    assert_true(x->req_up->eof);
    assert_int_equal(tfs[0].ends, 1);
    assert_int_equal(tfs[1].ends, 1);
    pt_proxy_body_fini(x);
    pt_exchange_free(x);
}

static void test_body__pause_holds_the_chunk_until_resume(void **state)
{
    struct tf tfs[2] = {{.name = "p", .pause_body_once = true}, {.name = "u", .upper = true}};
    struct pt_filter_inst fi[2];
    struct pt_chain c = make_chain(fi, tfs, 2, &body_type);
    struct pt_exchange *x = new_x();
    x->req.has_body = true;
    pt_chain_run_request(x, &c);
    pt_proxy_body_prepare(x);
    pt_proxy_body_start_request(x);
    pt_pipe_write(&x->req_body, "abc", 3);
    assert_int_equal(pt_pipe_len(x->req_up), 0);
    assert_int_equal(tfs[1].body_calls, 0);
    pt_exchange_resume(x);
    assert_int_equal(pt_pipe_len(x->req_up), 0);
    pt_worker_run_pending(&worker);
    char out[8] = {0};
    assert_int_equal(pt_pipe_peek(x->req_up, out, 7), 3);
    assert_string_equal(out, "ABC");
    pt_proxy_body_fini(x);
    pt_exchange_free(x);
}

static void test_body__stage_respects_output_backpressure(void **state)
{
    struct tf tfs[1] = {{.name = "v"}};
    struct pt_filter_inst fi[1];
    struct pt_chain c = make_chain(fi, tfs, 1, &body_type);
    struct pt_exchange *x = new_x();
    x->req.has_body = true;
    pt_chain_run_request(x, &c);
    pt_proxy_body_prepare(x);
    pt_proxy_body_start_request(x);
    static char big[64 * 1024];
    memset(big, 'x', sizeof(big));
    for (int i = 0; i < 16; i++)
        pt_pipe_write(&x->req_body, big, sizeof(big));
    /* 1 MiB offered; the output holds about its high-water mark, the rest
     * waits in the input (where the codec's flow control sees it). */
    size_t out = pt_pipe_len(x->req_up);
    assert_true(out <= x->req_up->hiwat + 64 * 1024);
    assert_true(pt_pipe_len(&x->req_body) > 0);
    /* The consumer drains: the stage refills. */
    struct evbuffer *sink = evbuffer_new();
    size_t total = 0;
    for (int i = 0; i < 100 && total < 16 * sizeof(big); i++)
        total += pt_pipe_read_into(x->req_up, sink, SIZE_MAX);
    assert_int_equal(total, 16 * sizeof(big));
    evbuffer_free(sink);
    pt_proxy_body_fini(x);
    pt_exchange_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain__runs_request_hooks_in_order_then_terminal,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain__pause_stops_and_resume_continues_later, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chain__resume_twice_runs_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain__done_only_for_filters_that_ran, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chain__replied_stops_request_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain__replied_hook_that_did_not_reply_calls_broken,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_chain__response_hooks_run_in_reverse_over_filters_that_ran, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain__response_pause_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain__reply_from_response_hook_skips_remaining_hooks,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_body__request_chunks_pass_hooks_and_end_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_body__pause_holds_the_chunk_until_resume, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_body__stage_respects_output_backpressure, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
