"""HTTP/1.1 through portico: methods, keep-alive, chunked bodies both ways,
100-continue, pipelining, connection management, limits, hop-by-hop and
forwarding headers, path normalization, route matching, route filters and
upstream failures.

Requests are exact bytes on raw sockets (wire.RawConn) so that framing,
header repetition and connection reuse are visible. The HTTP/1.1 backend
(backends/http_backend.py) echoes what it received; the misbehaving backend
(backends/raw_backend.py) truncates responses. Route matches are made
visible with a `headers` filter that sets `x-route` on each route's responses.

Gateway-only (skipped with PORTICO_DIRECT=1), except TestRawBackend.

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_http1
"""

import contextlib
import hashlib
import json
import re
import socket
import time
import unittest

import harness
import wire

DIRECT = harness.DIRECT
MiB = 1 << 20
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
HOST = "127.0.0.1"


def tag_route(name, **extra):
    """A route whose responses carry x-route: <name>."""
    r = {"name": name, "service": "web",
         "filters": [{"name": "headers", "config": {"response": {"set": {"x-route": name}}}}]}
    r.update(extra)
    return r


def backend_reached(resp):
    """True if the response came from the Python backend (its Server header)."""
    return (resp.get("server") or "").startswith("portico-test-backend")


class GatewayTestCase(unittest.TestCase):
    """Helpers: a per-test ExitStack, raw requests to a gateway listener."""

    gw = None

    def setUp(self):
        self._stack = contextlib.ExitStack()
        self.addCleanup(self._stack.close)

    def start_gateway(self, config, **kw):
        return self._stack.enter_context(harness.Portico(config, **kw))

    def req(self, method, path, headers=(), body=None, host="gw.test", gw=None, version="HTTP/1.1",
            timeout=wire.IO_TIMEOUT):
        """One request on a new connection; returns the Response."""
        gw = gw or self.gw
        with wire.RawConn(HOST, gw.port("main"), timeout=timeout) as c:
            c.send(wire.request_bytes(method, path, host=host, headers=headers, body=body,
                                      version=version))
            return c.read_response(method=method)

    def assert_json_error(self, resp, status):
        self.assertEqual(resp.status, status, resp)
        self.assertTrue((resp.get("content-type") or "").startswith("application/json"), resp)
        json.loads(resp.body.decode("utf-8"))  # a JSON document

    def assert_serving(self, gw=None):
        r = self.req("GET", "/echo/alive", gw=gw)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/echo/alive")


class TestHttp1(GatewayTestCase):
    """One gateway for the class: most routes of the checks live here."""

    @classmethod
    def setUpClass(cls):
        if DIRECT:
            raise unittest.SkipTest("gateway-only (PORTICO_DIRECT=1)")
        cls._cls_stack = contextlib.ExitStack()
        try:
            cls.be = cls._cls_stack.enter_context(harness.HttpBackend())
            cls.raw = cls._cls_stack.enter_context(wire.RawBackend())
            cls.gw = cls._cls_stack.enter_context(harness.Portico(cls.config(cls.be, cls.raw)))
        except BaseException:
            cls._cls_stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._cls_stack.close()

    @staticmethod
    def config(be, raw):
        routes = [
            tag_route("echo", path_prefix="/echo"),
            tag_route("files", path_prefix="/files"),
            tag_route("secret", path_prefix="/secret"),
            tag_route("strip", path_prefix="/api/v1", strip_prefix=True),
            tag_route("bytes", path_prefix="/bytes"),
            tag_route("chunked", path_prefix="/chunked"),
            tag_route("status", path_prefix="/status"),
            tag_route("slow", path_prefix="/slow"),
            tag_route("slow-timeout", path_prefix="/slow", host="timeout.test", priority=5, timeout_ms=1500),
            tag_route("small", path_prefix="/echo/small", max_body_bytes=1000),
            tag_route("host-exact", path_prefix="/host", host="a.example.com"),
            tag_route("host-wild", path_prefix="/host", host="*.example.org"),
            tag_route("host-any", path_prefix="/host"),
            tag_route("canary", path_prefix="/pred", headers=[{"name": "x-canary", "exact": "1"}]),
            tag_route("query", path_prefix="/pred", query=[{"name": "v", "exact": "2"}]),
            tag_route("pred-default", path_prefix="/pred"),
            tag_route("prio-high", path_prefix="/prio", priority=10),
            tag_route("prio-deep", path_prefix="/prio/deep"),
            tag_route("spec", path_prefix="/spec"),
            tag_route("spec-deep", path_prefix="/spec/deep"),
            tag_route("m-get", path_prefix="/m", methods=["GET", "HEAD"]),
            tag_route("m-post", path_prefix="/m", methods=["POST"]),
            {"name": "hdr-filter", "path_prefix": "/echo/hf", "service": "web",
             "filters": [{"name": "headers", "config": {
                 "request": {"remove": ["x-remove-me"], "set": {"x-set-me": "new"},
                             "add": {"x-added": ["a", "b"]}}}}]},
            {"name": "resp-filter", "path_prefix": "/headers", "service": "web",
             "filters": [{"name": "headers", "config": {
                 "response": {"remove": ["x-resp-remove"], "set": {"x-resp-set": "new"},
                              "add": {"x-resp-add": ["a", "b"]}}}}]},
            {"name": "down", "path_prefix": "/down", "service": "down"},
            {"name": "raw", "path_prefix": "/raw", "service": "raw", "strip_prefix": True, "timeout_ms": 20000},
        ]
        return {
            "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
            "services": [
                {"name": "web", "protocol": "http1", "instances": [be.instance()]},
                {"name": "down", "protocol": "http1",
                 "instances": [{"host": "127.0.0.1", "port": harness.free_port()}]},
                {"name": "raw", "protocol": "http1", "instances": [raw.instance()]},
            ],
            "routes": routes,
            "limits": {"max_header_bytes": 8192},
        }

    # -- methods, keep-alive ---------------------------------------------------

    def test_methods_status_headers_body(self):
        body = harness.pattern(70000, 3)
        for method in ("POST", "PUT", "DELETE"):
            r = self.req(method, "/echo/m?x=1", headers=[("X-Custom", "v-" + method)], body=body)
            self.assertEqual(r.status, 200, r)
            d = r.json()
            self.assertEqual((d["method"], d["path"], d["query"]), (method, "/echo/m", "x=1"))
            self.assertEqual(d["headers"]["x-custom"], "v-" + method)
            self.assertEqual(d["body_length"], len(body))
            self.assertEqual(d["body_sha256"], hashlib.sha256(body).hexdigest())
        r = self.req("GET", "/bytes?n=300000")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, harness.pattern(300000))
        self.assertEqual(r.get("x-body-sha256"), hashlib.sha256(r.body).hexdigest())
        self.assertEqual(r.get("content-type"), "application/octet-stream")
        r = self.req("GET", "/status/418")
        self.assertEqual((r.status, r.body), (418, b"status 418\n"))
        r = self.req("GET", "/status/204")
        self.assertEqual((r.status, r.body), (204, b""))
        # HEAD: the same headers, no body; the connection stays in sync.
        with wire.RawConn(HOST, self.gw.port("main")) as c:
            c.send(wire.request_bytes("HEAD", "/bytes?n=5000"))
            r = c.read_response(method="HEAD")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.get("content-length"), "5000")
            c.send(wire.request_bytes("GET", "/echo/after-head"))
            r2 = c.read_response()
            self.assertEqual(r2.status, 200, r2)
            self.assertEqual(r2.json()["path"], "/echo/after-head")

    def test_large_bodies_both_ways(self):
        body = harness.pattern(8 * MiB, 11)
        r = self.req("POST", "/echo/big", body=body, timeout=120)
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())
        n = 30 * MiB
        r = self.req("GET", "/bytes?n=%d" % n, timeout=120)
        self.assertEqual(len(r.body), n)
        self.assertTrue(r.body == harness.pattern(n), "30 MiB response altered")

    def test_keep_alive_many_requests_one_connection(self):
        with wire.RawConn(HOST, self.gw.port("main")) as c:
            local = c.sock.getsockname()
            ids = set()
            for i in range(8):
                body = harness.pattern(1000 * i, i)
                c.send(wire.request_bytes("POST" if i % 2 else "GET", "/echo/ka/%d" % i,
                                          body=body if i % 2 else None))
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertNotIn("close", r.connection_tokens(), r)
                d = r.json()
                self.assertEqual(d["path"], "/echo/ka/%d" % i)
                if i % 2:
                    self.assertEqual(d["body_length"], len(body))
                ids.add(r.get("x-request-id"))
            self.assertEqual(len(ids), 8, "every request gets its own id")
            self.assertEqual(c.sock.getsockname(), local)
            self.assertFalse(c.eof)

    # -- chunked, 100-continue, pipelining --------------------------------------

    def test_chunked_request_upload(self):
        body = harness.pattern(1 * MiB + 123, 5)
        with wire.RawConn(HOST, self.gw.port("main")) as c:
            head = wire.request_bytes("POST", "/echo/chunked-up", headers=[("Transfer-Encoding", "chunked")])
            c.send(head)
            # Written in pieces, with an extension and a trailer.
            c.send(b"5;name=value\r\nhello\r\n")
            c.send(wire.chunked(body, [65536, 1, 4000, 333])[:-5])
            c.send(b"0\r\nX-Trailer: t\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            d = r.json()
            self.assertEqual(d["body_length"], 5 + len(body))
            self.assertEqual(d["body_sha256"], hashlib.sha256(b"hello" + body).hexdigest())
            # the connection is still usable
            c.send(wire.request_bytes("GET", "/echo/next"))
            self.assertEqual(c.read_response().json()["path"], "/echo/next")

    def test_chunked_response_is_streamed(self):
        # 5 chunks 1.5 s apart: the first must reach the client long before
        # the backend has produced the last one.
        n, size, delay = 5, 1000, 1500
        with wire.RawConn(HOST, self.gw.port("main"), timeout=60) as c:
            c.send(wire.request_bytes("GET", "/chunked?n=%d&size=%d&delay_ms=%d" % (n, size, delay)))
            version, status, reason, headers = c.read_head()
            self.assertEqual(status, 200)
            if not c.buf:
                self.assertTrue(c._fill(), "closed before the body")
            t_first = time.monotonic()
            resp = wire.Response(version, status, reason, headers, b"")
            if "chunked" in (resp.get("transfer-encoding") or "").lower():
                data = c._read_chunked()
            elif resp.get("content-length") is not None:
                data = c.read_exact(int(resp.get("content-length")))
            else:
                chunks = []
                while True:
                    d = c.read_some()
                    if not d:
                        break
                    chunks.append(d)
                data = b"".join(chunks)
            t_last = time.monotonic()
        self.assertEqual(data, harness.pattern(n * size))
        self.assertEqual(resp.get("x-body-sha256"), hashlib.sha256(data).hexdigest())
        self.assertGreater(t_last - t_first, (n - 1) * delay / 1000.0 / 2,
                           "the response body was buffered, not streamed")

    def test_expect_100_continue(self):
        body = harness.pattern(50000)
        with wire.RawConn(HOST, self.gw.port("main")) as c:
            c.send(wire.request_bytes("POST", "/echo/expect", headers=[
                ("Expect", "100-continue"), ("Content-Length", str(len(body)))]))
            # Nothing of the body is sent until the 100 arrives.
            version, status, _, _ = c.read_head()
            self.assertEqual(status, 100, "expected an interim 100 Continue before the body is sent")
            c.send(body)
            r = c.read_response(method="POST")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_pipelining_three_requests_in_one_write(self):
        body = b"pipelined body"
        data = (wire.request_bytes("GET", "/slow?ms=700")
                + wire.request_bytes("POST", "/echo/p2", body=body)
                + wire.request_bytes("GET", "/echo/p3"))
        with wire.RawConn(HOST, self.gw.port("main")) as c:
            c.send(data)
            r1 = c.read_response()
            r2 = c.read_response(method="POST")
            r3 = c.read_response()
        self.assertEqual(r1.status, 200, r1)
        self.assertEqual(r1.json()["slept_ms"], 700)
        self.assertEqual(r2.json()["path"], "/echo/p2")
        self.assertEqual(r2.json()["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(r3.json()["path"], "/echo/p3")

    # -- connection management ---------------------------------------------------

    def test_http10_without_keep_alive_closes(self):
        with wire.RawConn(HOST, self.gw.port("main")) as c:
            c.send(b"GET /echo/h10 HTTP/1.0\r\nHost: gw.test\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["path"], "/echo/h10")
            self.assertTrue(c.wait_closed(20), "HTTP/1.0 connection left open")
        # An HTTP/1.0 client cannot read chunked coding: a streamed body
        # is delimited by the close instead.
        with wire.RawConn(HOST, self.gw.port("main")) as c:
            c.send(b"GET /chunked?n=3&size=100&delay_ms=10 HTTP/1.0\r\nHost: gw.test\r\n\r\n")
            r = c.read_response()
            self.assertNotIn("chunked", (r.get("transfer-encoding") or "").lower(), r)
            self.assertEqual(r.body, harness.pattern(300), r)

    def test_connection_close_honoured(self):
        with wire.RawConn(HOST, self.gw.port("main")) as c:
            c.send(wire.request_bytes("GET", "/echo/cc", headers=[("Connection", "close")]))
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertIn("close", r.connection_tokens(), r)
            self.assertTrue(c.wait_closed(20), "connection left open after Connection: close")

    # -- errors and limits -------------------------------------------------------

    def test_unknown_route_is_404_json(self):
        for path in ("/nothing-here", "/api/v1x", "/", "/echoes"):
            r = self.req("GET", path)
            self.assert_json_error(r, 404)
            self.assertFalse(backend_reached(r), r)
            self.assertIsNone(r.get("x-route"), r)

    def test_header_section_too_large_is_431(self):
        ok = self.req("GET", "/echo/h", headers=[("X-Fill", "a" * 6000)])
        self.assertEqual(ok.status, 200, ok)
        r, closed, _ = wire.exchange(HOST, self.gw.port("main"),
                                     wire.request_bytes("GET", "/echo/h", headers=[("X-Big", "b" * 9000)]))
        self.assertIsNotNone(r, "no response to a 9000-byte header (limit 8192)")
        self.assertEqual(r.status, 431, r)
        r, closed, _ = wire.exchange(HOST, self.gw.port("main"), wire.request_bytes(
            "GET", "/echo/h", headers=[("X-F%d" % i, "c" * 500) for i in range(20)]))
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 431, r)
        self.assert_serving()

    def test_body_limit_413(self):
        ok = self.req("POST", "/echo/small", body=b"x" * 1000)
        self.assertEqual((ok.status, ok.json()["body_length"]), (200, 1000))
        # Content-Length above the route's limit
        r, _, _ = wire.exchange(HOST, self.gw.port("main"),
                                wire.request_bytes("POST", "/echo/small", body=b"y" * 1001),
                                method="POST", close_wait=0)
        self.assertIsNotNone(r, "no response to Content-Length above max_body_bytes")
        self.assertEqual(r.status, 413, r)
        # The same with Expect: the limit is known before any body byte.
        r, _, _ = wire.exchange(HOST, self.gw.port("main"), wire.request_bytes(
            "POST", "/echo/small", headers=[("Content-Length", "5000000"), ("Expect", "100-continue")]),
            method="POST", close_wait=0)
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 413, r)
        # chunked body exceeding the limit
        r, _, _ = wire.exchange(HOST, self.gw.port("main"), wire.request_bytes(
            "POST", "/echo/small", headers=[("Transfer-Encoding", "chunked")])
            + wire.chunked(b"z" * 1500, [500]), method="POST", close_wait=0)
        self.assertIsNotNone(r, "no response to a chunked body above max_body_bytes")
        self.assertEqual(r.status, 413, r)
        # a chunked body within the limit passes
        r, _, _ = wire.exchange(HOST, self.gw.port("main"), wire.request_bytes(
            "POST", "/echo/small", headers=[("Transfer-Encoding", "chunked")])
            + wire.chunked(b"w" * 900, [300]), method="POST", close_wait=0)
        self.assertEqual((r.status, r.json()["body_length"]), (200, 900))
        self.assert_serving()

    # -- forwarded and hop-by-hop headers -------------------------------------------

    def test_hop_by_hop_request_headers_removed(self):
        r = self.req("GET", "/echo/hop", headers=[
            ("Connection", "x-foo, keep-alive"), ("X-Foo", "bar"), ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"), ("X-Kept", "yes")])
        d = r.json()
        names = [k.lower() for k, _ in d["header_list"]]
        for hop in ("x-foo", "keep-alive", "proxy-connection"):
            self.assertNotIn(hop, names, d["header_list"])
        self.assertNotIn("x-foo", d["headers"].get("connection", "").lower())
        self.assertEqual(d["headers"]["x-kept"], "yes")

    def test_hop_by_hop_response_headers_removed(self):
        with wire.RawConn(HOST, self.gw.port("main")) as c:
            c.send(wire.request_bytes("GET", "/headers?set=Connection:x-bar&set=X-Bar:secret"
                                             "&set=Keep-Alive:timeout%3D9&set=X-Keep:1"))
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.get("x-keep"), "1")
        self.assertIsNone(r.get("x-bar"), "field named by the backend's Connection header was relayed")
        self.assertIsNone(r.get("keep-alive"), r)
        self.assertNotIn("x-bar", r.connection_tokens())

    def test_forwarded_headers_and_request_id(self):
        r = self.req("GET", "/echo/fwd", host="gw.test:8080", headers=[
            ("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example")])
        d = r.json()
        lst = d["header_list"]

        def values(name):
            return [v for k, v in lst if k.lower() == name]

        xff = ", ".join(values("x-forwarded-for"))
        self.assertEqual(xff, "203.0.113.9, 127.0.0.1", lst)
        self.assertEqual(values("x-forwarded-proto"), ["http"], lst)
        self.assertEqual(values("x-forwarded-host"), ["gw.test:8080"], lst)
        rid = values("x-request-id")
        self.assertEqual(len(rid), 1, lst)
        self.assertRegex(rid[0], UUID4)
        self.assertEqual(r.get_all("x-request-id"), rid)
        # a valid incoming id is kept and echoed
        r = self.req("GET", "/echo/fwd", headers=[("X-Request-ID", "client-id_1.2:3")])
        self.assertEqual([v for k, v in r.json()["header_list"] if k.lower() == "x-request-id"],
                         ["client-id_1.2:3"])
        self.assertEqual(r.get("x-request-id"), "client-id_1.2:3")
        # an invalid one is replaced
        r = self.req("GET", "/echo/fwd", headers=[("X-Request-ID", "bad id with spaces")])
        got = [v for k, v in r.json()["header_list"] if k.lower() == "x-request-id"]
        self.assertEqual(len(got), 1)
        self.assertRegex(got[0], UUID4)

    # -- paths and routing --------------------------------------------------------

    def test_strip_prefix(self):
        r = self.req("GET", "/api/v1/echo/x?q=1")
        self.assertEqual(r.get("x-route"), "strip")
        d = r.json()
        self.assertEqual((d["path"], d["query"]), ("/echo/x", "q=1"))
        r = self.req("GET", "/api/v1")
        self.assertEqual(r.get("x-route"), "strip")
        self.assertTrue(backend_reached(r))
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["path"], "/", r)

    def test_path_normalization_before_routing(self):
        cases = [
            # (request target, route, path the backend receives)
            ("/a/../files/x", "files", "/files/x"),
            ("/files/%2e%2e/secret", "secret", "/secret"),
            ("/files/%2E%2E/secret/y", "secret", "/secret/y"),
            ("//files//x", "files", "/files/x"),
            ("/files/./a/./b/", "files", "/files/a/b/"),
            ("/files/a%2Fb", "files", "/files/a%2Fb"),
            ("/files/a%2fb", "files", "/files/a%2Fb"),
            ("/files/%7Euser%41", "files", "/files/~userA"),
            ("/files/x/..%2F..%2Fsecret", "files", "/files/x/..%2F..%2Fsecret"),
            ("/echo/../files/q?a=/../b", "files", "/files/q"),
        ]
        for target, route, forwarded in cases:
            with self.subTest(target=target):
                r = self.req("GET", target)
                self.assertEqual(r.get("x-route"), route, r)
                self.assertTrue(backend_reached(r), r)
                self.assertEqual(r.json()["path"], forwarded, r)
        # the echo route shows the query is forwarded untouched
        r = self.req("GET", "/x/../echo//n?a=%2e%2e/b")
        d = r.json()
        self.assertEqual((r.get("x-route"), d["path"], d["query"]), ("echo", "/echo/n", "a=%2e%2e/b"))

    def test_host_header_query_priority_routing(self):
        cases = [
            ({"host": "a.example.com"}, "/host/1", "host-exact"),
            ({"host": "a.example.com:8443"}, "/host/1", "host-exact"),
            ({"host": "A.Example.COM"}, "/host/1", "host-exact"),
            ({"host": "x.example.org"}, "/host/1", "host-wild"),
            ({"host": "deep.x.example.org"}, "/host/1", "host-wild"),
            ({"host": "other.test"}, "/host/1", "host-any"),
            ({"host": "b.example.com"}, "/host/1", "host-any"),
            ({"headers": [("X-Canary", "1")]}, "/pred/a", "canary"),
            ({"headers": [("X-Canary", "2")]}, "/pred/a", "pred-default"),
            ({}, "/pred/a?v=2", "query"),
            ({}, "/pred/a?w=1&v=%32", "query"),
            ({}, "/pred/a?v=3", "pred-default"),
            ({}, "/pred/a?vv=2", "pred-default"),
            ({}, "/prio/deep/x", "prio-high"),
            ({}, "/prio/x", "prio-high"),
            ({}, "/spec/deep/x", "spec-deep"),
            ({}, "/spec/x", "spec"),
            ({}, "/spec/deeper", "spec"),
        ]
        for kw, path, route in cases:
            with self.subTest(path=path, **{k: str(v) for k, v in kw.items()}):
                r = self.req("GET", path, host=kw.get("host", "gw.test"), headers=kw.get("headers", ()))
                self.assertEqual(r.get("x-route"), route, r)
                self.assertTrue(backend_reached(r), r)

    def test_methods_filter(self):
        r = self.req("GET", "/m/1")
        self.assertEqual(r.get("x-route"), "m-get")
        r = self.req("HEAD", "/m/1")
        self.assertEqual(r.get("x-route"), "m-get")
        r = self.req("POST", "/m/1", body=b"abc")
        self.assertEqual(r.get("x-route"), "m-post")
        for method in ("PUT", "DELETE", "PATCH", "get"):
            with self.subTest(method=method):
                r = self.req(method, "/m/1")
                self.assertIn(r.status, (404, 405), r)
                self.assertFalse(backend_reached(r), r)
                self.assertIsNone(r.get("x-route"))

    # -- route filters -----------------------------------------------------------

    def test_headers_filter_request_side(self):
        r = self.req("GET", "/echo/hf", headers=[("X-Remove-Me", "1"), ("X-Set-Me", "old1"),
                                                  ("X-Set-Me", "old2"), ("X-Added", "client")])
        lst = [(k.lower(), v) for k, v in r.json()["header_list"]]
        self.assertNotIn("x-remove-me", [k for k, _ in lst])
        self.assertEqual([v for k, v in lst if k == "x-set-me"], ["new"])
        self.assertEqual([v for k, v in lst if k == "x-added"], ["client", "a", "b"])

    def test_headers_filter_response_side(self):
        r = self.req("GET", "/headers?set=X-Resp-Remove:1&set=X-Resp-Set:old&set=X-Resp-Add:backend")
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.get("x-resp-remove"), r)
        self.assertEqual(r.get_all("x-resp-set"), ["new"])
        self.assertEqual(r.get_all("x-resp-add"), ["backend", "a", "b"])

    # -- upstream failures ---------------------------------------------------------

    def test_upstream_down_is_503_json(self):
        t0 = time.monotonic()
        r = self.req("GET", "/down/x")
        self.assert_json_error(r, 503)
        self.assertLess(time.monotonic() - t0, 20)
        self.assert_serving()

    def test_route_timeout_is_504(self):
        t0 = time.monotonic()
        r = self.req("GET", "/slow?ms=30000", host="timeout.test", timeout=60)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 504, r)
        self.assertLess(elapsed, 20, "504 came after %.1fs (route timeout 1.5 s)" % elapsed)
        self.assert_serving()

    def test_backend_closing_mid_response(self):
        for path in ("/raw/truncate-length?send=1000&total=100000",
                     "/raw/truncate-chunked?chunks=3&size=700"):
            with self.subTest(path=path):
                with wire.RawConn(HOST, self.gw.port("main"), timeout=30) as c:
                    c.send(wire.request_bytes("GET", path))
                    try:
                        r = c.read_response(allow_truncated=True)
                    except wire.ConnectionClosed:
                        r = None  # closed before any head: acceptable
                    except socket.timeout:
                        self.fail("client hangs: no response head or close within 30 s")
                    if r is not None:
                        self.assertFalse(r.complete and r.status == 200,
                                         "a truncated upstream body was delivered as complete: %r" % r)
                    self.assertTrue(c.wait_closed(30), "connection neither completed nor closed")
        r = self.req("GET", "/raw/close-now")
        self.assertEqual(r.status, 502, r)
        self.assert_serving()


class TestHttp1Config(GatewayTestCase):
    """Checks that need a gateway of their own."""

    def setUp(self):
        if DIRECT:
            self.skipTest("gateway-only (PORTICO_DIRECT=1)")
        super().setUp()
        self.be = self._stack.enter_context(harness.HttpBackend())

    def test_request_id_filter_without_response_header(self):
        self.gw = self.start_gateway({
            "listeners": [{"name": "main", "address": "127.0.0.1:0"}],
            "services": [{"name": "web", "protocol": "http1", "instances": [self.be.instance()]}],
            "routes": [{"name": "echo", "path_prefix": "/echo", "service": "web",
                        "filters": [{"name": "request-id",
                                     "config": {"header": "x-corr-id", "response": False}}]}],
        })
        r = self.req("GET", "/echo/rid")
        lst = [(k.lower(), v) for k, v in r.json()["header_list"]]
        ids = [v for k, v in lst if k == "x-corr-id"]
        self.assertEqual(len(ids), 1, lst)
        self.assertRegex(ids[0], UUID4)
        self.assertIsNone(r.get("x-corr-id"), "response: false, yet the id was echoed: %r" % r)
        r = self.req("GET", "/echo/rid", headers=[("X-Corr-Id", "keep-me")])
        self.assertEqual([v for k, v in r.json()["header_list"] if k.lower() == "x-corr-id"], ["keep-me"])
        self.assertIsNone(r.get("x-corr-id"))

    def test_large_response_bounded_rss_http1(self):
        env, slack = wire.asan_env_and_slack()
        gw = self.gw = self.start_gateway({
            "listeners": [{"name": "main", "address": "127.0.0.1:0"}],
            "services": [{"name": "web", "protocol": "http1", "instances": [self.be.instance()]}],
            "routes": [{"name": "bytes", "path_prefix": "/bytes", "service": "web"}],
        }, env=env)
        self.req("GET", "/bytes?n=100000")
        idle = harness.rss_kb(gw.pid)
        n = 64 * MiB
        digest = hashlib.sha256()
        got = 0
        with wire.RssSampler(gw.pid) as rss, wire.RawConn(HOST, gw.port("main"), timeout=60) as c:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
            c.send(wire.request_bytes("GET", "/bytes?n=%d" % n))
            _, status, _, headers = c.read_head()
            self.assertEqual(status, 200)
            digest.update(c.buf)
            got = len(c.buf)
            c.buf = b""
            deadline = time.monotonic() + 300
            while got < n and time.monotonic() < deadline:
                d = c.sock.recv(256 * 1024)
                if not d:
                    break
                digest.update(d)
                got += len(d)
                time.sleep(0.004)  # a slow reader: about 64 MiB/s at most
        self.assertEqual(got, n)
        self.assertEqual(digest.hexdigest(), hashlib.sha256(harness.pattern(n)).hexdigest())
        grown = (rss.peak_kb - idle) / 1024.0
        self.assertLess(grown, 32 + slack, "gateway RSS grew by %.1f MiB relaying 64 MiB" % grown)


class TestRawBackend(unittest.TestCase):
    """The misbehaving backend itself (both modes)."""

    def test_scripted_responses(self):
        with wire.RawBackend() as be:
            with wire.RawConn(HOST, be.port) as c:
                c.send(wire.request_bytes("GET", "/truncate-length?send=10&total=50"))
                r = c.read_response(allow_truncated=True)
                self.assertEqual((r.status, r.complete, r.body), (200, False, harness.pattern(10)))
            with wire.RawConn(HOST, be.port) as c:
                c.send(wire.request_bytes("GET", "/truncate-chunked?chunks=2&size=5"))
                r = c.read_response(allow_truncated=True)
                self.assertEqual((r.status, r.complete), (200, False))
            r, closed, rest = wire.exchange(HOST, be.port, wire.request_bytes("GET", "/close-now"))
            self.assertIsNone(r)
            self.assertTrue(closed)
            r, closed, _ = wire.exchange(HOST, be.port, wire.request_bytes("GET", "/other"))
            self.assertEqual((r.status, r.body, closed), (200, b"ok\n", True))
            self.assertIn("raw_backend: GET /other", be.log_text())


if __name__ == "__main__":
    unittest.main()
