"""Hostile and malformed input: every case gets the right status (or a
closed connection), and the gateway keeps serving a normal request on a new
connection afterwards.

HTTP/1.1 cases are exact bytes on a raw socket; HTTP/2 cases are raw frames
(wire.H2Conn) after a valid preface. Limits in this gateway:
max_header_bytes 4096, max_headers 20, header_timeout_ms 1500,
max_resets_per_second 100.

Gateway-only (skipped with PORTICO_DIRECT=1).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_bad_input
"""

import contextlib
import json
import socket
import struct
import time
import unittest

import harness
import wire

DIRECT = harness.DIRECT
HOST = "127.0.0.1"
CLOSE = None  # "the connection was closed without a response" is acceptable

GOOD_HEAD = b"GET /echo/x HTTP/1.1\r\nHost: gw.test\r\n"


def req(*lines, body=b""):
    """Request bytes from header lines (bytes), CRLF line ends, no framing added."""
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class TestBadInput(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if DIRECT:
            raise unittest.SkipTest("gateway-only (PORTICO_DIRECT=1)")
        cls._cls = contextlib.ExitStack()
        try:
            cls.be = cls._cls.enter_context(harness.HttpBackend())
            cls.grpc_be = cls._cls.enter_context(harness.GrpcBackend())
            cls.gw = cls._cls.enter_context(harness.Portico({
                "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
                "services": [{"name": "web", "protocol": "http1", "instances": [cls.be.instance()]},
                             {"name": "grpc", "protocol": "grpc", "instances": [cls.grpc_be.instance()]}],
                "routes": [{"name": "echo", "path_prefix": "/echo", "service": "web"},
                           {"name": "slow", "path_prefix": "/slow", "service": "web"},
                           {"name": "grpc", "path_prefix": "/portico.test.Echo", "service": "grpc"}],
                "limits": {"max_header_bytes": 4096, "max_headers": 20, "header_timeout_ms": 1500,
                           "max_resets_per_second": 100},
            }))
        except BaseException:
            cls._cls.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._cls.close()

    @property
    def port(self):
        return self.gw.port("main")

    def assert_serving(self):
        self.assertTrue(self.gw.running(), "gateway exited: %s" % self.gw.stderr[-2000:])
        r, _, _ = wire.exchange(HOST, self.port, wire.request_bytes("GET", "/echo/alive"), close_wait=0)
        self.assertIsNotNone(r, "no response to a normal request")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/echo/alive")

    def check(self, data, statuses, must_close=True):
        """Send `data`, expect a response whose status is in `statuses` (CLOSE
        in it: a close without any response also passes), then a closed
        connection (must_close), then a working gateway."""
        r, closed, rest = wire.exchange(HOST, self.port, data, timeout=30)
        if r is None:
            self.assertIn(CLOSE, statuses, "closed without a response (want %s)" % (statuses,))
            self.assertTrue(closed, "neither a response nor a close within 30 s")
        else:
            self.assertIn(r.status, statuses, r)
            if must_close:
                self.assertTrue(closed, "connection left open after %d" % r.status)
        self.assert_serving()
        return r

    def run_cases(self, cases):
        for case in cases:
            name, data, statuses = case[:3]
            with self.subTest(case=name):
                self.check(data, statuses, *case[3:])

    # -- HTTP/1.1 head ------------------------------------------------------------

    def test_malformed_request_lines(self):
        self.run_cases([
            ("only a method", b"GET\r\n\r\n", (400,)),
            ("no version (HTTP/0.9)", b"GET /echo/x\r\n\r\n", (400, CLOSE)),
            ("two spaces", req(b"GET  /echo/x HTTP/1.1", b"Host: gw.test"), (400,)),
            ("trailing token", req(b"GET /echo/x HTTP/1.1 extra", b"Host: gw.test"), (400,)),
            ("bad protocol name", req(b"GET /echo/x HTTX/1.1", b"Host: gw.test"), (400,)),
            ("bad version digits", req(b"GET /echo/x HTTP/1.x", b"Host: gw.test"), (400,)),
            ("HTTP/2.0 request line", req(b"GET /echo/x HTTP/2.0", b"Host: gw.test"), (400, 505)),
            ("method not a token", req(b"G@T /echo/x HTTP/1.1", b"Host: gw.test"), (400,)),
            ("tab separator", req(b"GET\t/echo/x HTTP/1.1", b"Host: gw.test"), (400,)),
            ("raw CTL in target", req(b"GET /echo/\x01x HTTP/1.1", b"Host: gw.test"), (400,)),
            # well-framed requests with an unacceptable path: the
            # connection may stay open
            ("fragment in target", req(b"GET /echo/x#frag HTTP/1.1", b"Host: gw.test"), (400,), False),
            ("malformed percent", req(b"GET /echo/%zz HTTP/1.1", b"Host: gw.test"), (400,), False),
            ("non-ASCII target", req(b"GET /echo/\xc3\xa9 HTTP/1.1", b"Host: gw.test"), (400,)),
            ("binary garbage", b"\x00\x01\x02\x03\xff\xfe\r\n\r\n", (400, CLOSE)),
        ])

    def test_invalid_header_names(self):
        self.run_cases([
            ("space in name", req(GOOD_HEAD[:-2], b"Bad Name: v"), (400,)),
            ("paren in name", req(GOOD_HEAD[:-2], b"X(y): v"), (400,)),
            ("space before colon", req(GOOD_HEAD[:-2], b"X-A : v"), (400,)),
            ("empty name", req(GOOD_HEAD[:-2], b": v"), (400,)),
            ("NUL in name", req(GOOD_HEAD[:-2], b"X-A\x00: v"), (400,)),
            ("non-ASCII name", req(GOOD_HEAD[:-2], b"X-\xc3\xa9: v"), (400,)),
            ("no colon", req(GOOD_HEAD[:-2], b"X-NoColon"), (400,)),
            ("TE with space before colon", req(b"POST /echo/x HTTP/1.1", b"Host: gw.test",
                                               b"Transfer-Encoding : chunked", body=b"0\r\n\r\n"), (400,)),
        ])

    def test_header_values_with_ctl(self):
        self.run_cases([
            ("SOH", req(GOOD_HEAD[:-2], b"X-A: a\x01b"), (400,)),
            ("NUL", req(GOOD_HEAD[:-2], b"X-A: a\x00b"), (400,)),
            ("DEL", req(GOOD_HEAD[:-2], b"X-A: a\x7fb"), (400,)),
            ("bare CR", req(GOOD_HEAD[:-2], b"X-A: a\rb"), (400,)),
            ("ESC", req(GOOD_HEAD[:-2], b"X-A: \x1b[31m"), (400,)),
        ])
        # HTAB and obs-text are allowed in values
        r, _, _ = wire.exchange(HOST, self.port, req(GOOD_HEAD[:-2], b"X-A: a\tb"), close_wait=0)
        self.assertEqual(r.status, 200, r)

    def test_ambiguous_framing(self):
        self.run_cases([
            ("CL and TE", req(b"POST /echo/x HTTP/1.1", b"Host: gw.test", b"Content-Length: 5",
                              b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"), (400,)),
            ("TE and CL", req(b"POST /echo/x HTTP/1.1", b"Host: gw.test", b"Transfer-Encoding: chunked",
                              b"Content-Length: 5", body=b"0\r\n\r\n"), (400,)),
            ("two different CL", req(b"POST /echo/x HTTP/1.1", b"Host: gw.test", b"Content-Length: 5",
                                     b"Content-Length: 6", body=b"hello!"), (400,)),
            ("CL list", req(b"POST /echo/x HTTP/1.1", b"Host: gw.test", b"Content-Length: 5, 6",
                            body=b"hello!"), (400,)),
            ("negative CL", req(b"POST /echo/x HTTP/1.1", b"Host: gw.test", b"Content-Length: -1"), (400,)),
            ("signed CL", req(b"POST /echo/x HTTP/1.1", b"Host: gw.test", b"Content-Length: +5",
                              body=b"hello"), (400,)),
            ("hex CL", req(b"POST /echo/x HTTP/1.1", b"Host: gw.test", b"Content-Length: 0x5",
                           body=b"hello"), (400,)),
            ("huge CL", req(b"POST /echo/x HTTP/1.1", b"Host: gw.test",
                            b"Content-Length: 99999999999999999999999999"), (400, 413)),
            ("obs-fold", req(GOOD_HEAD[:-2], b"X-A: first", b"  folded"), (400,)),
            ("obs-fold with tab", req(GOOD_HEAD[:-2], b"X-A: first", b"\tfolded"), (400,)),
            ("bare LF everywhere", b"GET /echo/x HTTP/1.1\nHost: gw.test\n\n", (400,)),
            ("bare LF in one header", b"GET /echo/x HTTP/1.1\r\nHost: gw.test\nX-A: b\r\n\r\n", (400,)),
            ("no Host in HTTP/1.1", req(b"GET /echo/x HTTP/1.1", b"X-A: b"), (400,)),
            ("two Host fields", req(b"GET /echo/x HTTP/1.1", b"Host: gw.test", b"Host: other.test"), (400,)),
            ("bad Host value", req(b"GET /echo/x HTTP/1.1", b"Host: gw test"), (400,)),
        ])

    def test_transfer_codings(self):
        base = (b"POST /echo/x HTTP/1.1", b"Host: gw.test")
        self.run_cases([
            ("gzip only", req(*base, b"Transfer-Encoding: gzip", body=b"abc"), (400, 501)),
            ("gzip, chunked", req(*base, b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"), (501,)),
            ("chunked, chunked", req(*base, b"Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n"), (400,)),
            ("chunked not last", req(*base, b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"), (400,)),
            ("xchunked", req(*base, b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"), (400, 501)),
        ])

    def test_invalid_chunked_bodies(self):
        head = req(b"POST /echo/x HTTP/1.1", b"Host: gw.test", b"Transfer-Encoding: chunked")
        for name, body in (("non-hex size", b"zz\r\nhello\r\n0\r\n\r\n"),
                           ("size overflow", b"fffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
                           ("no CRLF after data", b"5\r\nhelloXY0\r\n\r\n"),
                           ("bare LF after size", b"5\nhello\r\n0\r\n\r\n"),
                           ("CTL in extension", b"5;a=\x01\r\nhello\r\n0\r\n\r\n"),
                           ("negative size", b"-5\r\nhello\r\n0\r\n\r\n")):
            with self.subTest(case=name):
                r = self.check(head + body, (400, CLOSE))
                if r is not None:
                    self.assertNotIn(b'"body_length"', r.body)

    def test_header_limits(self):
        self.run_cases([
            ("one huge header", req(GOOD_HEAD[:-2], b"X-Big: " + b"a" * 5000), (431,)),
            ("huge request line", req(b"GET /echo/" + b"a" * 5000 + b" HTTP/1.1", b"Host: gw.test"),
             (414, 431)),
            ("too many headers", req(GOOD_HEAD[:-2], *[b"X-H%d: v" % i for i in range(30)]), (431, 400)),
        ])
        # within the limits
        r, _, _ = wire.exchange(HOST, self.port, req(GOOD_HEAD[:-2], *[b"X-H%d: v" % i for i in range(15)]),
                                close_wait=0)
        self.assertEqual(r.status, 200, r)

    def head_timeout_case(self, trickle):
        """Start a request head and never finish it, sending one more byte
        every 200 ms when `trickle`; returns (closed, elapsed, bytes got)."""
        with wire.RawConn(HOST, self.port, timeout=30) as c:
            c.send(b"GET /echo/slow HTTP/1.1\r\nHost: gw.test\r\nX-Slow: ")
            t0 = time.monotonic()
            closed = False
            for _ in range(100):  # at most 20 s
                if trickle:
                    try:
                        c.send(b"x")
                    except OSError:
                        closed = True
                        break
                c.sock.settimeout(0.2)
                try:
                    d = c.sock.recv(65536)
                    if not d:
                        closed = True
                        break
                    c.buf += d
                except socket.timeout:
                    pass
                except OSError:
                    closed = True
                    break
                if time.monotonic() - t0 > 20:
                    break
            elapsed = time.monotonic() - t0
            return closed, elapsed, c.buf

    def test_slow_loris_head(self):
        # The head is never completed: the header timeout (1.5 s) ends it
        # with 408 or a close -- also when bytes keep trickling in.
        for trickle in (False, True):
            with self.subTest(trickle=trickle):
                closed, elapsed, got = self.head_timeout_case(trickle)
                self.assertTrue(closed or got.startswith(b"HTTP/1.1 408"),
                                "unfinished head still open after %.1fs (header_timeout_ms 1500)" % elapsed)
                if got:
                    self.assertTrue(got.startswith(b"HTTP/1.1 408"), got[:200])
                self.assert_serving()

    def test_idle_connection_without_request(self):
        # A connection that never sends a byte is closed eventually
        # (header or idle timeout), not kept forever.
        with wire.RawConn(HOST, self.port, timeout=30) as c:
            self.assertTrue(c.wait_closed(30), "silent connection kept open for 30 s")
            self.assertTrue(c.buf == b"" or c.buf.startswith(b"HTTP/1.1 408"), c.buf[:200])

    def test_grpc_route_with_json_is_415(self):
        r, _, _ = wire.exchange(HOST, self.port, wire.request_bytes(
            "POST", "/portico.test.Echo/Echo", headers=[("Content-Type", "application/json")], body=b"{}"),
            method="POST", close_wait=0)
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 415, r)
        with wire.H2Conn(HOST, self.port) as h:
            h.handshake()
            blk = wire.request_headers_block("POST", "/portico.test.Echo/Echo", "gw.test",
                                             extra=[("content-type", "application/json")])
            h.send(wire.frame(wire.HEADERS, wire.FLAG_END_HEADERS, 1, blk)
                   + wire.frame(wire.DATA, wire.FLAG_END_STREAM, 1, b"{}"))
            f = h.collect(lambda f: f[2] == 1 and f[0] in (wire.HEADERS, wire.RST_STREAM), timeout=30)
            self.assertIsNotNone(f)
            self.assertEqual(f[0], wire.HEADERS)
            # 415 is not in HPACK's static table: a literal with name index 8
            self.assertIsNone(wire.status_of_headers(f[3], f[1]))
        rc, out, err = wire.curl(["--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
                                  "-H", "Content-Type: application/json", "--data-binary", "{}",
                                  self.gw.url("main") + "/portico.test.Echo/Echo"])
        self.assertEqual((rc, out), (0, b"415"), err)
        self.assert_serving()

    # -- HTTP/2 ------------------------------------------------------------------

    def h2(self):
        h = wire.H2Conn(HOST, self.port, timeout=30)
        self.addCleanup(h.close)
        h.handshake()
        return h

    def test_h2_garbage_after_preface(self):
        for name, junk in (("text", b"this is not an HTTP/2 frame, just garbage\r\n" * 3),
                           ("DATA on stream 0", wire.frame(wire.DATA, 0, 0, b"abc")),
                           ("oversized frame", b"\xff\xff\xff\x00\x00\x00\x00\x00\x01" + b"z" * 100),
                           ("SETTINGS with bad length", wire.frame(wire.SETTINGS, 0, 0, b"\x00\x03\x00")),
                           ("WINDOW_UPDATE of 0 on conn", wire.frame(wire.WINDOW_UPDATE, 0, 0, b"\x00" * 4))):
            with self.subTest(case=name):
                h = self.h2()
                h.send(junk)
                self.assertTrue(h.wait_closed(30), "connection not closed after %s" % name)
                self.assertIsNotNone(h.goaway(), "no GOAWAY before the close")
                self.assertNotEqual(h.goaway()[1], wire.ERR_NO_ERROR)
                self.assert_serving()

    def test_h2_bad_preface(self):
        with wire.H2Conn(HOST, self.port, send_preface=False) as h:
            h.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + wire.settings_frame())
            self.assertTrue(h.wait_closed(30))
            self.assertFalse(h.raw.buf.startswith(b"HTTP/1.1 200"))
        self.assert_serving()

    def test_h2_uppercase_header_name_resets_stream(self):
        h = self.h2()
        h.request(1, "GET", "/echo/upper", extra=[("X-Upper", "1")])
        f = h.collect(lambda f: f[2] == 1 and f[0] in (wire.RST_STREAM, wire.HEADERS) or f[0] == wire.GOAWAY,
                      timeout=30)
        self.assertIsNotNone(f, "connection closed")
        self.assertEqual(f[0], wire.RST_STREAM, "uppercase header name not rejected: %r" % (f,))
        self.assertEqual(struct.unpack(">I", f[3])[0], wire.ERR_PROTOCOL)
        # the connection itself stays usable
        got = h.fetch_many([("GET", "/echo/after-upper")], first_stream=3, timeout=30)
        self.assertEqual(got[3]["status"], 200, got)
        self.assertEqual(json.loads(got[3]["body"])["path"], "/echo/after-upper")

    def test_h2_malformed_requests_reset_stream(self):
        cases = [
            ("connection header", [("connection", "keep-alive")]),
            ("te other than trailers", [("te", "gzip")]),
            ("transfer-encoding", [("transfer-encoding", "chunked")]),
            ("pseudo after regular", [("x-a", "1"), (":foo", "bar")]),
            ("space in name", [("x a", "1")]),
            ("CR in value", [("x-a", "a\rb")]),
        ]
        h = self.h2()
        sid = 1
        for name, extra in cases:
            with self.subTest(case=name):
                h.request(sid, "GET", "/echo/malformed", extra=extra)
                f = h.collect(lambda f: f[2] == sid and f[0] in (wire.RST_STREAM, wire.HEADERS)
                              or f[0] == wire.GOAWAY, timeout=30)
                self.assertIsNotNone(f)
                self.assertEqual(f[0], wire.RST_STREAM, "%s accepted: %r" % (name, f))
                sid += 2
        # missing :path (no helper: build the block by hand)
        blk = (wire.hpack_literal(":method", "GET") + wire.hpack_literal(":scheme", "http")
               + wire.hpack_literal(":authority", "gw.test"))
        h.send(wire.frame(wire.HEADERS, wire.FLAG_END_HEADERS | wire.FLAG_END_STREAM, sid, blk))
        f = h.collect(lambda f: f[2] == sid and f[0] in (wire.RST_STREAM, wire.HEADERS) or f[0] == wire.GOAWAY,
                      timeout=30)
        self.assertEqual(f[0], wire.RST_STREAM, f)
        got = h.fetch_many([("GET", "/echo/ok")], first_stream=sid + 2, timeout=30)
        self.assertEqual(got[sid + 2]["status"], 200)

    def test_h2_ping_and_settings_floods(self):
        for name, one in (("PING", wire.frame(wire.PING, 0, 0, b"\x00" * 8)),
                          ("SETTINGS", wire.settings_frame([(4, 65535)])),
                          ("WINDOW_UPDATE", wire.frame(wire.WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x01")),
                          ("PRIORITY", None)):
            with self.subTest(flood=name):
                h = self.h2()
                if one is None:
                    data = b"".join(wire.frame(wire.PRIORITY, 0, 2 * i + 101, b"\x00\x00\x00\x00\x10")
                                    for i in range(5000))
                else:
                    data = one * 5000
                try:
                    # without reading anything back
                    h.send(data)
                except OSError:
                    pass  # the gateway may cut the connection: fine
                h.wait_closed(3)
                self.assert_serving()
                rss = harness.rss_kb(self.gw.pid)
                self.assertLess(rss, 1024 * 1024, "gateway RSS %d KiB after a %s flood" % (rss, name))

    def test_h2_rapid_reset(self):
        # HEADERS + RST_STREAM(CANCEL) pairs far above max_resets_per_second
        # (100): the gateway answers with GOAWAY (nghttp2's rate limit uses
        # INTERNAL_ERROR) and stays up.
        h = self.h2()
        data = b""
        for i in range(1000):
            sid = 1 + 2 * i
            data += wire.frame(wire.HEADERS, wire.FLAG_END_HEADERS | wire.FLAG_END_STREAM, sid,
                               wire.request_headers_block("GET", "/slow?ms=2000", "gw.test"))
            data += wire.frame(wire.RST_STREAM, 0, sid, struct.pack(">I", wire.ERR_CANCEL))
        t0 = time.monotonic()
        try:
            h.send(data)
        except OSError:
            pass
        closed = h.wait_closed(30)
        self.assertIsNotNone(h.goaway(), "no GOAWAY after 1000 rapid resets (closed=%s)" % closed)
        self.assertNotEqual(h.goaway()[1], wire.ERR_NO_ERROR, h.goaway())
        self.assertLess(h.goaway()[0], 1999, "every stream was accepted: %r" % (h.goaway(),))
        self.assertLess(time.monotonic() - t0, 30)
        self.assert_serving()

    def test_h2_continuation_flood(self):
        # HEADERS without END_HEADERS followed by endless CONTINUATION frames:
        # the header list limit (max_header_bytes) must end it.
        h = self.h2()
        first = wire.request_headers_block("GET", "/echo/cont", "gw.test")
        h.send(wire.frame(wire.HEADERS, wire.FLAG_END_STREAM, 1, first))
        frag = wire.hpack_literal("x-fill", "v" * 100)
        sent = 0
        try:
            for i in range(20000):  # 2.3 MB of header fragments at most
                h.send(wire.frame(wire.CONTINUATION, 0, 1, frag))
                sent += 1
        except OSError:
            pass
        closed = h.wait_closed(30)
        self.assertTrue(closed or h.goaway() is not None or any(f[0] == wire.RST_STREAM for f in h.frames),
                        "20000 CONTINUATION frames accepted without any reaction")
        self.assert_serving()

    def test_h2_settings_values_out_of_range(self):
        for name, pairs in (("ENABLE_PUSH=2", [(2, 2)]), ("INITIAL_WINDOW_SIZE=2^31", [(4, 1 << 31)]),
                            ("MAX_FRAME_SIZE=100", [(5, 100)])):
            with self.subTest(case=name):
                h = self.h2()
                h.send(wire.settings_frame(pairs))
                self.assertTrue(h.wait_closed(30))
                self.assertIsNotNone(h.goaway())
                self.assert_serving()


if __name__ == "__main__":
    unittest.main()
