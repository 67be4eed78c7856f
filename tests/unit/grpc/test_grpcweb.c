#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/grpcweb.h"
#include "portico/errors.h"

/* A gRPC body of messages with the given lengths (bytes 'a' + index). */
static size_t make_frames(const size_t *lens, size_t n, uint8_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        out[k++] = 0;
        out[k++] = (uint8_t)(lens[i] >> 24);
        out[k++] = (uint8_t)(lens[i] >> 16);
        out[k++] = (uint8_t)(lens[i] >> 8);
        out[k++] = (uint8_t)lens[i];
        memset(out + k, (int)('a' + i), lens[i]);
        k += lens[i];
    }
    return k;
}

/* Decode text in two pieces split at `at`, then finish; returns the status
 * of the whole, the decoded bytes in out/outlen. */
static int decode_split(const char *text, size_t len, size_t at, uint8_t *out, size_t *outlen,
                        uint64_t max)
{
    struct pt_grpcweb_decoder d;
    pt_grpcweb_decoder_init(&d, true, max);
    size_t n = 0;
    long r = pt_grpcweb_decode(&d, (const uint8_t *)text, at, out, pt_grpcweb_decode_bound(at));
    if (r < 0)
        return (int)r;
    n += (size_t)r;
    r = pt_grpcweb_decode(&d, (const uint8_t *)text + at, len - at, out + n,
                          pt_grpcweb_decode_bound(len - at));
    if (r < 0)
        return (int)r;
    n += (size_t)r;
    *outlen = n;
    return pt_grpcweb_decode_finish(&d);
}

static void test_mode__classifies_content_types(void **state)
{
    assert_int_equal(pt_grpcweb_mode_of(PT_STR("application/grpc-web")), PT_GRPCWEB_BINARY);
    assert_int_equal(pt_grpcweb_mode_of(PT_STR("application/grpc-web+proto")), PT_GRPCWEB_BINARY);
    assert_int_equal(pt_grpcweb_mode_of(PT_STR("Application/GRPC-Web-Text")), PT_GRPCWEB_TEXT);
    assert_int_equal(pt_grpcweb_mode_of(PT_STR("application/grpc-web-text+proto; charset=x")),
                     PT_GRPCWEB_TEXT);
    assert_int_equal(pt_grpcweb_mode_of(PT_STR("application/grpc")), PT_GRPCWEB_NONE);
    assert_int_equal(pt_grpcweb_mode_of(PT_STR("application/grpc-webx")), PT_GRPCWEB_NONE);
    assert_int_equal(pt_grpcweb_mode_of(PT_STR("application/grpc-web+json")), PT_GRPCWEB_NONE);
    assert_int_equal(pt_grpcweb_mode_of(PT_STR("")), PT_GRPCWEB_NONE);
}

static void test_b64__encodes_every_tail_length(void **state)
{
    char out[16];
    assert_int_equal(pt_grpcweb_b64_encode((const uint8_t *)"", 0, out), 0);
    assert_int_equal(pt_grpcweb_b64_encode((const uint8_t *)"f", 1, out), 4);
    assert_memory_equal(out, "Zg==", 4);
    assert_int_equal(pt_grpcweb_b64_encode((const uint8_t *)"fo", 2, out), 4);
    assert_memory_equal(out, "Zm8=", 4);
    assert_int_equal(pt_grpcweb_b64_encode((const uint8_t *)"foo", 3, out), 4);
    assert_memory_equal(out, "Zm9v", 4);
    assert_int_equal(pt_grpcweb_b64_encode((const uint8_t *)"foobar", 6, out), 8);
    assert_memory_equal(out, "Zm9vYmFy", 8);
    assert_int_equal(pt_grpcweb_b64_len(7), 12);
}

/* Every body, base64-encoded whole and as padded pieces, decodes to the
 * same bytes however the text is split in two. */
static void test_decode__every_split_point_gives_the_same_bytes(void **state)
{
    const size_t shapes[][3] = {{0, 0, 0}, {1, 0, 0}, {2, 3, 0}, {7, 1, 100}, {300, 0, 0}};
    const size_t nshapes[] = {1, 1, 2, 3, 1};
    for (size_t s = 0; s < sizeof(nshapes) / sizeof(nshapes[0]); s++) {
        uint8_t body[512];
        size_t blen = make_frames(shapes[s], nshapes[s], body);
        /* Variant 0: one base64 text. Variant 1: each frame its own padded
         * piece, and the first frame cut after 1 byte (padding mid-body). */
        for (int variant = 0; variant < 2; variant++) {
            char text[1024];
            size_t tlen = 0;
            if (variant == 0) {
                tlen = pt_grpcweb_b64_encode(body, blen, text);
            } else {
                tlen += pt_grpcweb_b64_encode(body, 1, text);
                tlen += pt_grpcweb_b64_encode(body + 1, 4, text + tlen);
                tlen += pt_grpcweb_b64_encode(body + 5, blen - 5, text + tlen);
            }
            for (size_t at = 0; at <= tlen; at++) {
                uint8_t out[1024];
                size_t olen = 0;
                assert_int_equal(decode_split(text, tlen, at, out, &olen, 0), 0);
                assert_int_equal(olen, blen);
                assert_memory_equal(out, body, blen);
            }
        }
    }
}

static void test_decode__one_byte_at_a_time(void **state)
{
    uint8_t body[64];
    const size_t lens[] = {10, 4};
    size_t blen = make_frames(lens, 2, body);
    char text[128];
    size_t tlen = pt_grpcweb_b64_encode(body, 7, text);
    tlen += pt_grpcweb_b64_encode(body + 7, blen - 7, text + tlen);
    struct pt_grpcweb_decoder d;
    pt_grpcweb_decoder_init(&d, true, 100);
    uint8_t out[128];
    size_t n = 0;
    for (size_t i = 0; i < tlen; i++) {
        long r = pt_grpcweb_decode(&d, (const uint8_t *)text + i, 1, out + n,
                                   pt_grpcweb_decode_bound(1));
        assert_true(r >= 0);
        n += (size_t)r;
    }
    assert_int_equal(pt_grpcweb_decode_finish(&d), 0);
    assert_int_equal(n, blen);
    assert_memory_equal(out, body, blen);
}

static void test_decode__rejects_bad_base64(void **state)
{
    const char *bad[] = {"AAA*", "A=AA", "AA=A", "=AAA", "AAAA\n", "AAAA AAAA", "AA-_"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t out[32];
        size_t n;
        assert_int_equal(decode_split(bad[i], strlen(bad[i]), 0, out, &n, 0), PT_ERR_INVALID);
    }
}

static void test_decode__truncated_input_fails_at_finish(void **state)
{
    uint8_t body[32], out[64];
    const size_t lens[] = {6};
    size_t blen = make_frames(lens, 1, body);
    char text[64];
    size_t n;
    /* Ends inside a quantum. */
    size_t tlen = pt_grpcweb_b64_encode(body, blen, text);
    assert_int_equal(decode_split(text, tlen - 1, 0, out, &n, 0), PT_ERR_INVALID);
    /* Whole quanta, but the frame is short of 2 bytes. */
    tlen = pt_grpcweb_b64_encode(body, blen - 2, text);
    assert_int_equal(decode_split(text, tlen, 0, out, &n, 0), PT_ERR_INVALID);
    /* Only part of a prefix. */
    tlen = pt_grpcweb_b64_encode(body, 3, text);
    assert_int_equal(decode_split(text, tlen, 0, out, &n, 0), PT_ERR_INVALID);
}

static void test_decode__oversized_message_is_resource_exhausted(void **state)
{
    uint8_t body[128], out[256];
    const size_t lens[] = {10, 50};
    size_t blen = make_frames(lens, 2, body);
    char text[256];
    size_t tlen = pt_grpcweb_b64_encode(body, blen, text), n;
    assert_int_equal(decode_split(text, tlen, 3, out, &n, 49), PT_ERR_BODY_TOO_LARGE);
    assert_int_equal(decode_split(text, tlen, 3, out, &n, 50), 0);
    /* The error sticks. */
    struct pt_grpcweb_decoder d;
    pt_grpcweb_decoder_init(&d, true, 49);
    assert_int_equal(pt_grpcweb_decode(&d, (const uint8_t *)text, tlen, out, sizeof(out)),
                     PT_ERR_BODY_TOO_LARGE);
    assert_int_equal(pt_grpcweb_decode(&d, (const uint8_t *)"AAAA", 4, out, sizeof(out)),
                     PT_ERR_BODY_TOO_LARGE);
    assert_int_equal(pt_grpcweb_decode_finish(&d), PT_ERR_BODY_TOO_LARGE);
}

/* An oversized frame prefix followed by a bad character: the first error
 * in the stream wins at every split point. */
static void test_decode__first_error_wins_at_every_split(void **state)
{
    uint8_t body[8] = {0, 0, 0, 1, 0}; /* a 256-byte message announced */
    char text[32];
    size_t tlen = pt_grpcweb_b64_encode(body, 6, text);
    text[tlen++] = '*';
    for (size_t at = 0; at <= tlen; at++) {
        uint8_t out[64];
        size_t n;
        assert_int_equal(decode_split(text, tlen, at, out, &n, 100), PT_ERR_BODY_TOO_LARGE);
    }
}

static void test_decode__rejects_trailer_and_reserved_flags(void **state)
{
    const uint8_t flags[] = {0x80, 0x02, 0xff};
    for (size_t i = 0; i < sizeof(flags); i++) {
        uint8_t frame[5] = {flags[i], 0, 0, 0, 0}, out[16];
        struct pt_grpcweb_decoder d;
        pt_grpcweb_decoder_init(&d, false, 0);
        assert_int_equal(pt_grpcweb_decode(&d, frame, 5, out, sizeof(out)), PT_ERR_INVALID);
    }
    uint8_t compressed[6] = {1, 0, 0, 0, 1, 'x'}, out[16];
    struct pt_grpcweb_decoder d;
    pt_grpcweb_decoder_init(&d, false, 0);
    assert_int_equal(pt_grpcweb_decode(&d, compressed, 6, out, sizeof(out)), 6);
    assert_int_equal(pt_grpcweb_decode_finish(&d), 0);
}

static void test_trailer__frame_has_lowercase_lines(void **state)
{
    struct pt_grpcweb_field f[] = {
        {PT_STR("grpc-status"), PT_STR("3")},
        {PT_STR("Grpc-Message"), PT_STR("bad%20thing")},
        {PT_STR("x-extra"), PT_STR("")},
    };
    size_t size = pt_grpcweb_trailer_size(f, 3);
    uint8_t out[128];
    assert_int_equal(pt_grpcweb_trailer_write(f, 3, out), size);
    const char want[] = "grpc-status: 3\r\ngrpc-message: bad%20thing\r\nx-extra: \r\n";
    size_t wl = sizeof(want) - 1;
    assert_int_equal(size, 5 + wl);
    assert_int_equal(out[0], 0x80);
    assert_int_equal(out[1], 0);
    assert_int_equal(out[2], 0);
    assert_int_equal(out[3], (wl >> 8) & 0xff);
    assert_int_equal(out[4], wl & 0xff);
    assert_memory_equal(out + 5, want, wl);
}

static void test_trailer__drops_fields_that_break_framing(void **state)
{
    struct pt_grpcweb_field f[] = {
        {PT_STR("a"), PT_STR("x\r\nb: y")},
        {PT_STR(""), PT_STR("v")},
        {PT_STR("c:d"), PT_STR("v")},
        {PT_STR("ok"), PT_STR("1")},
    };
    uint8_t out[64];
    size_t n = pt_grpcweb_trailer_write(f, 4, out);
    assert_int_equal(n, pt_grpcweb_trailer_size(f, 4));
    assert_int_equal(n, 5 + 7);
    assert_memory_equal(out + 5, "ok: 1\r\n", 7);
    /* No fields: an empty trailer frame. */
    assert_int_equal(pt_grpcweb_trailer_write(f, 0, out), 5);
    assert_int_equal(out[0], 0x80);
    assert_int_equal(out[4], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mode__classifies_content_types),
        cmocka_unit_test(test_b64__encodes_every_tail_length),
        cmocka_unit_test(test_decode__every_split_point_gives_the_same_bytes),
        cmocka_unit_test(test_decode__one_byte_at_a_time),
        cmocka_unit_test(test_decode__rejects_bad_base64),
        cmocka_unit_test(test_decode__truncated_input_fails_at_finish),
        cmocka_unit_test(test_decode__oversized_message_is_resource_exhausted),
        cmocka_unit_test(test_decode__first_error_wins_at_every_split),
        cmocka_unit_test(test_decode__rejects_trailer_and_reserved_flags),
        cmocka_unit_test(test_trailer__frame_has_lowercase_lines),
        cmocka_unit_test(test_trailer__drops_fields_that_break_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
