/*
 * Tests for http/pipe's replay: bytes the consumer took can be offered
 * again (retries) while they fit the replay cap; the producer hears about
 * each byte once however often it is read.
 */
#include <event2/buffer.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/pipe.h"

static size_t drained_total;

static void on_drain(struct pt_pipe *p, size_t n, void *producer)
{
    (void)p;
    (void)producer;
    drained_total += n;
}

static size_t read_all(struct pt_pipe *p, char *out, size_t cap)
{
    struct evbuffer *dst = evbuffer_new();
    size_t n = 0;
    /* Small reads, mixing both consumer calls. */
    while (pt_pipe_len(p)) {
        if (n % 2)
            pt_pipe_read_into(p, dst, 3);
        else {
            char tmp[5];
            size_t k = pt_pipe_peek(p, tmp, sizeof(tmp));
            evbuffer_add(dst, tmp, k);
            pt_pipe_drain(p, k);
        }
        n++;
    }
    size_t len = evbuffer_get_length(dst);
    if (len > cap)
        len = cap;
    evbuffer_remove(dst, out, len);
    evbuffer_free(dst);
    return len;
}

static void test_pipe__rewind_offers_the_body_again(void **state)
{
    (void)state;
    struct pt_pipe p;
    pt_pipe_init(&p, 0);
    pt_pipe_set_producer(&p, on_drain, NULL);
    drained_total = 0;
    pt_pipe_keep_replay(&p, 1024);
    const char *body = "the quick brown fox jumps over the lazy dog";
    size_t blen = strlen(body);
    pt_pipe_write(&p, body, 20);
    char got[128];
    size_t n = read_all(&p, got, sizeof(got));
    assert_int_equal(n, 20);
    pt_pipe_write(&p, body + 20, blen - 20);
    pt_pipe_end(&p, NULL);
    n = read_all(&p, got, sizeof(got));
    assert_int_equal(n, blen - 20);
    assert_true(pt_pipe_done(&p));
    assert_int_equal(drained_total, blen);

    assert_true(pt_pipe_can_rewind(&p));
    assert_int_equal(pt_pipe_rewind(&p), 0);
    assert_false(pt_pipe_done(&p));
    assert_int_equal(pt_pipe_len(&p), blen);
    n = read_all(&p, got, sizeof(got));
    assert_int_equal(n, blen);
    assert_memory_equal(got, body, blen);
    assert_true(pt_pipe_done(&p));
    /* The producer already got credit for these bytes. */
    assert_int_equal(drained_total, blen);

    /* And again: a second retry sees the same body. */
    assert_int_equal(pt_pipe_rewind(&p), 0);
    n = read_all(&p, got, sizeof(got));
    assert_memory_equal(got, body, blen);
    pt_pipe_fini(&p);
}

static void test_pipe__rewind_mid_body_then_more_arrives(void **state)
{
    (void)state;
    struct pt_pipe p;
    pt_pipe_init(&p, 0);
    pt_pipe_keep_replay(&p, 1024);
    pt_pipe_write(&p, "abcdef", 6);
    char got[64];
    struct evbuffer *dst = evbuffer_new();
    pt_pipe_read_into(&p, dst, 4); /* "abcd" went upstream, "ef" waits */
    assert_int_equal(pt_pipe_rewind(&p), 0);
    pt_pipe_write(&p, "gh", 2);
    size_t n = read_all(&p, got, sizeof(got));
    assert_int_equal(n, 8);
    assert_memory_equal(got, "abcdefgh", 8);
    evbuffer_free(dst);
    pt_pipe_fini(&p);
}

static void test_pipe__over_the_cap_cannot_rewind(void **state)
{
    (void)state;
    struct pt_pipe p;
    pt_pipe_init(&p, 0);
    pt_pipe_keep_replay(&p, 10);
    pt_pipe_write(&p, "0123456789", 10);
    char got[64];
    read_all(&p, got, sizeof(got));
    assert_true(pt_pipe_can_rewind(&p)); /* exactly the cap */
    pt_pipe_write(&p, "x", 1);
    read_all(&p, got, sizeof(got));
    assert_false(pt_pipe_can_rewind(&p));
    assert_int_equal(pt_pipe_rewind(&p), -1);
    pt_pipe_fini(&p);
}

static void test_pipe__without_replay_only_an_untouched_pipe_rewinds(void **state)
{
    (void)state;
    struct pt_pipe p;
    pt_pipe_init(&p, 0);
    pt_pipe_write(&p, "abc", 3);
    assert_true(pt_pipe_can_rewind(&p)); /* nothing taken yet */
    assert_int_equal(pt_pipe_rewind(&p), 0);
    char got[8];
    read_all(&p, got, sizeof(got));
    assert_false(pt_pipe_can_rewind(&p));
    assert_int_equal(pt_pipe_rewind(&p), -1);
    /* Asking for replay after bytes were taken is too late. */
    pt_pipe_keep_replay(&p, 100);
    assert_false(pt_pipe_can_rewind(&p));
    pt_pipe_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe__rewind_offers_the_body_again),
        cmocka_unit_test(test_pipe__rewind_mid_body_then_more_arrives),
        cmocka_unit_test(test_pipe__over_the_cap_cannot_rewind),
        cmocka_unit_test(test_pipe__without_replay_only_an_untouched_pipe_rewinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
