/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "wire.h"

static size_t frame(uint8_t *buf, uint8_t type, const char *payload) {
        size_t n = strlen(payload);

        wire_header_encode(buf, type, (uint32_t) n);
        memcpy(buf + WIRE_HEADER_SIZE, payload, n);
        return WIRE_HEADER_SIZE + n;
}

static void test_header_roundtrip(void **state) {
        uint8_t buf[WIRE_HEADER_SIZE];
        WireHeader h;

        wire_header_encode(buf, 7, 1234);
        assert_int_equal(memcmp(buf, "FLC1\x01\x07\x00\x00\x00\x00\x04\xd2", WIRE_HEADER_SIZE), 0);
        assert_int_equal(wire_header_decode(buf, 4096, &h), 0);
        assert_int_equal(h.type, 7);
        assert_int_equal(h.length, 1234);
}

static void test_header_refusals(void **state) {
        uint8_t buf[WIRE_HEADER_SIZE];
        WireHeader h;

        wire_header_encode(buf, 1, 100);
        assert_int_equal(wire_header_decode(buf, 99, &h), -EMSGSIZE);

        wire_header_encode(buf, 1, 0xFFFFFFF0u);
        assert_int_equal(wire_header_decode(buf, WIRE_CONTROL_MAX, &h), -EMSGSIZE);

        wire_header_encode(buf, 1, 1);
        buf[0] = 'X';
        assert_int_equal(wire_header_decode(buf, 100, &h), -EBADMSG);

        wire_header_encode(buf, 1, 1);
        buf[4] = 2;     /* a version we do not speak */
        assert_int_equal(wire_header_decode(buf, 100, &h), -EBADMSG);

        wire_header_encode(buf, 1, 1);
        buf[7] = 1;     /* reserved must be zero */
        assert_int_equal(wire_header_decode(buf, 100, &h), -EBADMSG);
}

/* Frames split at every possible byte boundary come out whole and in order. */
static void test_reader_byte_by_byte(void **state) {
        uint8_t stream[256];
        size_t n = 0, got = 0;
        WireReader r;

        n += frame(stream + n, 1, "{\"a\":1}");
        n += frame(stream + n, 3, "");
        n += frame(stream + n, 2, "hello");

        wire_reader_init(&r, 1024);
        for (size_t i = 0; i < n; i++) {
                size_t used;
                bool done;

                assert_int_equal(wire_reader_feed(&r, stream + i, 1, &used, &done), 0);
                assert_int_equal(used, 1);
                if (!done)
                        continue;
                got++;
                if (got == 1) {
                        assert_int_equal(r.current.type, 1);
                        assert_string_equal((char *) r.payload, "{\"a\":1}");
                } else if (got == 2) {
                        assert_int_equal(r.current.type, 3);
                        assert_int_equal(r.current.length, 0);
                } else {
                        assert_int_equal(r.current.type, 2);
                        assert_memory_equal(r.payload, "hello", 5);
                }
        }
        assert_int_equal(got, 3);
        assert_false(wire_reader_in_frame(&r));
        wire_reader_done(&r);
}

static void test_reader_whole_stream(void **state) {
        uint8_t stream[256];
        size_t n = 0, off = 0, got = 0;
        WireReader r;

        n += frame(stream + n, 1, "one");
        n += frame(stream + n, 1, "two");

        wire_reader_init(&r, 1024);
        while (off < n) {
                size_t used;
                bool done;

                assert_int_equal(wire_reader_feed(&r, stream + off, n - off, &used, &done), 0);
                off += used;
                if (done)
                        got++;
        }
        assert_int_equal(got, 2);
        wire_reader_done(&r);
}

static void test_reader_refuses_before_payload(void **state) {
        uint8_t hdr[WIRE_HEADER_SIZE];
        WireReader r;
        size_t used;
        bool done;

        wire_reader_init(&r, 16);
        wire_header_encode(hdr, 1, 17);
        assert_int_equal(wire_reader_feed(&r, hdr, sizeof hdr, &used, &done), -EMSGSIZE);
        wire_reader_done(&r);

        wire_reader_init(&r, 16);
        assert_int_equal(wire_reader_feed(&r, (const uint8_t *) "GET / HTTP/1.1\r\n", 16, &used, &done), -EBADMSG);
        wire_reader_done(&r);
}

static void test_reader_mid_frame(void **state) {
        uint8_t stream[64];
        size_t n = frame(stream, 1, "0123456789"), used;
        WireReader r;
        bool done;

        wire_reader_init(&r, 1024);
        assert_int_equal(wire_reader_feed(&r, stream, n - 3, &used, &done), 0);
        assert_false(done);
        assert_true(wire_reader_in_frame(&r));
        wire_reader_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_header_roundtrip),
                cmocka_unit_test(test_header_refusals),
                cmocka_unit_test(test_reader_byte_by_byte),
                cmocka_unit_test(test_reader_whole_stream),
                cmocka_unit_test(test_reader_refuses_before_payload),
                cmocka_unit_test(test_reader_mid_frame),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
