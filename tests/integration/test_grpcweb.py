"""gRPC-Web through portico (docs/grpc-web.md) against a real grpcio
backend (backends/grpc_backend.py): a byte-exact gRPC-Web client written
here speaks HTTP/1.1 (raw sockets, so bodies can be split at chosen bytes
and responses read as they arrive) and HTTP/2 (wire.H2Conn).

Covered: unary (binary and -text), status with a percent-encoded message,
trailers-only answers, server streaming with flush timing, -text bodies
split inside base64 quanta and sent as padded pieces, malformed -text
bodies, CORS preflight (allowed and denied) and actual-response headers,
gateway-produced errors (backend down) as trailer frames, config checks.

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_grpcweb
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import struct
import time
import unittest

import harness
import wire

echo_pb2 = harness.load_echo()
Req = echo_pb2.EchoRequest
Resp = echo_pb2.EchoResponse

ORIGIN = "https://app.example"
GRPC_WEB = {"allowed_origins": [ORIGIN], "allowed_headers": ["x-custom"],
            "expose_headers": ["x-trailer"], "max_age_s": 300}
ECHO = "/portico.test.Echo/Echo"
STREAM = "/portico.test.Echo/Stream"


def frame(msg, flag=0):
    return bytes([flag]) + struct.pack(">I", len(msg)) + msg


def b64_pieces(text):
    """Decode base64 text that may be several padded pieces one after the
    other (each 4-character quantum decoded on its own)."""
    if len(text) % 4:
        raise AssertionError("base64 text of length %d" % len(text))
    return b"".join(base64.b64decode(text[i:i + 4]) for i in range(0, len(text), 4))


def parse_frames(body):
    """[(flag, payload)]; raises on a truncated frame."""
    out, i = [], 0
    while i < len(body):
        if i + 5 > len(body):
            raise AssertionError("truncated frame prefix at %d: %r" % (i, body[i:]))
        flag, n = body[i], struct.unpack(">I", body[i + 1:i + 5])[0]
        if i + 5 + n > len(body):
            raise AssertionError("truncated frame at %d" % i)
        out.append((flag, body[i + 5:i + 5 + n]))
        i += 5 + n
    return out


def trailer_fields(payload):
    """The trailer frame's lines as [(name, value)], checking the format."""
    text = payload.decode("latin-1")
    if text and not text.endswith("\r\n"):
        raise AssertionError("trailer frame does not end with CRLF: %r" % text)
    fields = []
    for line in text.split("\r\n")[:-1]:
        name, sep, value = line.partition(": ")
        if not sep or name != name.lower():
            raise AssertionError("bad trailer line %r" % line)
        fields.append((name, value))
    return fields


class GrpcWebResult(object):
    def __init__(self, status, headers, body, text):
        self.status = status
        self.headers = headers  # [(lower name, value)]
        self.raw = body
        frames = parse_frames(b64_pieces(body) if text else body)
        self.messages = [p for f, p in frames if not f & 0x80]
        trailers = [p for f, p in frames if f & 0x80]
        if len(trailers) != 1 or not frames[-1][0] & 0x80:
            raise AssertionError("want exactly one trailer frame, last: %r" % (frames,))
        self.trailers = dict(trailer_fields(trailers[0]))
        self.trailer_list = trailer_fields(trailers[0])

    def header(self, name):
        vals = [v for k, v in self.headers if k == name]
        return vals[0] if vals else None

    @property
    def code(self):
        return int(self.trailers["grpc-status"])


class GrpcWebCase(harness.GatewayCase):
    backend = None

    @classmethod
    def setUpClass(cls):
        if harness.DIRECT:
            return
        cls.backend = harness.GrpcBackend()
        cls.backend.start()

    @classmethod
    def tearDownClass(cls):
        if cls.backend:
            cls.backend.stop()

    def config(self, grpc_web=None, instances=None):
        return harness.grpc_gateway_config(
            instances or [self.backend.instance()],
            route_extra={"grpc_web": dict(GRPC_WEB if grpc_web is None else grpc_web)})

    def gateway(self, **kw):
        gw = self.start_gateway(self.config(**kw))
        host, port = gw.addr("main").rsplit(":", 1)
        return host, int(port)

    # -- HTTP/1.1 client ---------------------------------------------------

    def h1_send(self, addr, path, pieces, content_type="application/grpc-web+proto",
                origin=ORIGIN, extra=()):
        conn = wire.RawConn(*addr)
        self._stack.callback(conn.close)
        total = sum(len(p) for p in pieces)
        head = ["POST %s HTTP/1.1" % path, "Host: gw.test", "Content-Type: %s" % content_type,
                "X-Grpc-Web: 1", "Content-Length: %d" % total]
        if origin:
            head.append("Origin: %s" % origin)
        head += ["%s: %s" % kv for kv in extra]
        conn.send(("\r\n".join(head) + "\r\n\r\n").encode())
        for i, p in enumerate(pieces):
            if i:
                time.sleep(0.03)  # separate reads at the gateway
            conn.send(p)
        return conn

    def h1_call(self, addr, path, body, text=False, **kw):
        ct = "application/grpc-web-text" if text else "application/grpc-web+proto"
        pieces = body if isinstance(body, list) else [body]
        conn = self.h1_send(addr, path, pieces, content_type=ct, **kw)
        r = conn.read_response(method="POST")
        return GrpcWebResult(r.status, r.headers, r.body, text)

    # -- checks --------------------------------------------------------------

    def check_ok_echo(self, res, message):
        self.assertEqual(res.status, 200)
        self.assertEqual(res.code, 0, res.trailers)
        self.assertEqual(len(res.messages), 1)
        resp = Resp.FromString(res.messages[0])
        self.assertEqual(resp.message, message)
        self.assertEqual(resp.method, ECHO)
        return resp


class TestGrpcWebUnary(GrpcWebCase):

    def test_unary_binary_over_http1(self):
        addr = self.gateway()
        payload = bytes(range(256)) * 3
        res = self.h1_call(addr, ECHO, frame(Req(message="hi", payload=payload).SerializeToString()),
                           extra=[("X-Custom-Md", "v1")])
        resp = self.check_ok_echo(res, "hi")
        self.assertEqual(resp.payload, payload)
        self.assertEqual(res.header("content-type"), "application/grpc-web+proto")
        # Trailing metadata in the frame, lower case, after the status.
        self.assertEqual(res.trailers.get("x-trailer"), "trailer-value")
        self.assertEqual(res.trailers.get("x-trailing-custom-md"), "v1")
        self.assertIsNone(res.header("grpc-status"))
        # The backend saw a gRPC request, not a gRPC-Web one.
        md = {m.key: m.value for m in resp.metadata}
        self.assertNotIn("x-grpc-web", md)

    def test_native_grpc_still_works_on_the_route(self):
        import grpc
        import protoload
        host, port = self.gateway()
        ch = harness.grpc_channel("%s:%d" % (host, port))
        self._stack.callback(ch.close)
        stub = protoload.Stub(ch, echo_pb2.DESCRIPTOR.services_by_name["Echo"])
        resp, call = stub.Echo.with_call(Req(message="native"), timeout=30)
        self.assertEqual(resp.message, "native")
        self.assertEqual(dict(call.trailing_metadata()).get("x-trailer"), "trailer-value")
        with self.assertRaises(grpc.RpcError) as cm:
            stub.Echo(Req(fail_code=7, fail_message="no"), timeout=30)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED)

    def test_unary_text_and_content_type_mirrored(self):
        addr = self.gateway()
        body = base64.b64encode(frame(Req(message="texty").SerializeToString()))
        res = self.h1_call(addr, ECHO, body, text=True)
        self.check_ok_echo(res, "texty")
        self.assertEqual(res.header("content-type"), "application/grpc-web-text")
        self.assertEqual(len(res.raw) % 4, 0)

    def test_status_with_percent_encoded_message_trailers_only(self):
        addr = self.gateway()
        msg = "100% sure: caf\u00e9 \u263a"
        req = Req(message="x", fail_code=5, fail_message=msg)
        res = self.h1_call(addr, ECHO, frame(req.SerializeToString()))
        # The backend answers trailers-only (no message sent).
        self.assertEqual(res.status, 200)
        self.assertEqual(res.messages, [])
        self.assertEqual(res.code, 5)
        enc = res.trailers["grpc-message"]
        self.assertNotIn("\u00e9", enc)
        from urllib.parse import unquote
        self.assertEqual(unquote(enc, encoding="utf-8"), msg)
        self.assertIsNone(res.header("grpc-status"))
        self.assertIsNone(res.header("grpc-message"))
        self.assertEqual(res.trailer_list[0][0], "grpc-status")

    def test_error_after_messages_in_real_trailers(self):
        addr = self.gateway()
        req = Req(message="s", stream_count=3, fail_code=9, fail_message="stop", fail_after=2)
        res = self.h1_call(addr, STREAM, frame(req.SerializeToString()))
        self.assertEqual(res.status, 200)
        self.assertEqual(len(res.messages), 2)
        self.assertEqual(res.code, 9)
        self.assertEqual(res.trailers["grpc-message"], "stop")

    def h2_call(self, addr, content_type, pieces):
        with wire.H2Conn(*addr) as h2:
            h2.handshake()
            h2.request(1, "POST", ECHO, extra=[("content-type", content_type),
                                               ("x-grpc-web", "1"), ("origin", ORIGIN)],
                       end_stream=False)
            for i, p in enumerate(pieces):
                if i:
                    time.sleep(0.03)
                last = i == len(pieces) - 1
                h2.send(wire.frame(wire.DATA, wire.FLAG_END_STREAM if last else 0, 1, p))
            st = {"headers": [], "body": b"", "end": False}

            def until(f):
                ftype, flags, sid, payload = f
                if sid != 1:
                    return False
                if ftype == wire.HEADERS:
                    st["headers"].append(payload)
                elif ftype == wire.DATA:
                    st["body"] += payload
                elif ftype == wire.RST_STREAM:
                    raise AssertionError("stream reset")
                return bool(ftype in (wire.HEADERS, wire.DATA) and flags & wire.FLAG_END_STREAM)

            h2.collect(until)
        # One header block (no HTTP trailers): the status is in the body.
        self.assertEqual(len(st["headers"]), 1)
        return st["body"]

    def test_unary_over_http2(self):
        addr = self.gateway()
        body = self.h2_call(addr, "application/grpc-web+proto",
                            [frame(Req(message="over-h2").SerializeToString())])
        self.check_ok_echo(GrpcWebResult(200, [], body, False), "over-h2")

    def test_text_over_http2_in_split_data_frames(self):
        addr = self.gateway()
        text = base64.b64encode(frame(Req(message="h2-text").SerializeToString()))
        body = self.h2_call(addr, "application/grpc-web-text", [text[:2], text[2:9], text[9:]])
        self.check_ok_echo(GrpcWebResult(200, [], body, True), "h2-text")


class TestGrpcWebText(GrpcWebCase):

    def test_text_body_split_at_every_kind_of_boundary(self):
        addr = self.gateway()
        msg = frame(Req(message="split-%d" % 7, payload=b"\x00\xff" * 50).SerializeToString())
        whole = base64.b64encode(msg)
        cases = [
            [whole[:1], whole[1:]],                      # inside the first quantum
            [whole[:6], whole[6:7], whole[7:]],          # inside later quanta
            [whole[:len(whole) - 1], whole[-1:]],        # the last character alone
            # concatenated padded pieces, themselves split mid-quantum
            [base64.b64encode(msg[:1]) + base64.b64encode(msg[1:5])[:3],
             base64.b64encode(msg[1:5])[3:], base64.b64encode(msg[5:])],
        ]
        for pieces in cases:
            with self.subTest(pieces=[len(p) for p in pieces]):
                res = self.h1_call(addr, ECHO, pieces, text=True)
                resp = self.check_ok_echo(res, "split-7")
                self.assertEqual(resp.payload, b"\x00\xff" * 50)

    def test_malformed_text_is_invalid_argument(self):
        addr = self.gateway()
        good = base64.b64encode(frame(Req(message="x").SerializeToString()))
        for body in [b"!!!!" + good, good[:-2], base64.b64encode(frame(b"", flag=0x80))]:
            with self.subTest(body=body[:12]):
                res = self.h1_call(addr, ECHO, body, text=True)
                self.assertEqual(res.status, 200)
                self.assertEqual(res.messages, [])
                self.assertEqual(res.code, 3, res.trailers)
                self.assertEqual(res.header("content-type"), "application/grpc-web-text")

    def test_oversized_text_message_is_resource_exhausted(self):
        gw = self.start_gateway(harness.grpc_gateway_config(
            [self.backend.instance()],
            route_extra={"grpc_web": GRPC_WEB, "max_body_bytes": 1000}))
        host, port = gw.addr("main").rsplit(":", 1)
        body = base64.b64encode(frame(Req(payload=b"z" * 2000).SerializeToString()))
        res = self.h1_call((host, int(port)), ECHO, body, text=True)
        self.assertEqual(res.code, 8, res.trailers)
        # Binary bodies: the per-message limit of gRPC, answered the same way.
        res = self.h1_call((host, int(port)), ECHO, b64_pieces(body))
        self.assertEqual(res.status, 200)
        self.assertEqual(res.code, 8, res.trailers)
        self.assertEqual(res.header("content-type"), "application/grpc-web+proto")


class TestGrpcWebStreaming(GrpcWebCase):

    def read_chunk(self, conn, deadline):
        line = conn.read_until(b"\r\n")
        size = int(line.split(b";")[0], 16)
        data = conn.read_exact(size) if size else b""
        if size:
            conn.read_exact(2)
        if time.monotonic() > deadline:
            raise AssertionError("stream too slow")
        return data

    def run_stream(self, text):
        addr = self.gateway()
        req = Req(message="tick", stream_count=3, stream_interval_ms=800)
        body = frame(req.SerializeToString())
        ct = "application/grpc-web-text" if text else "application/grpc-web+proto"
        if text:
            body = base64.b64encode(body)
        t0 = time.monotonic()
        conn = self.h1_send(addr, STREAM, [body], content_type=ct)
        version, status, reason, headers = conn.read_head()
        self.assertEqual(status, 200)
        self.assertIn(("transfer-encoding", "chunked"), headers)
        deadline = t0 + 30
        got, first_at, raw = b"", None, b""
        for _ in range(1000):
            data = self.read_chunk(conn, deadline)
            if not data:
                break
            raw += data
            got = b64_pieces(raw) if text else raw
            if first_at is None and len(got) >= 5 and len(got) >= 5 + struct.unpack(">I", got[1:5])[0]:
                first_at = time.monotonic() - t0
        total = time.monotonic() - t0
        res = GrpcWebResult(200, headers, raw, text)
        self.assertEqual(res.code, 0)
        self.assertEqual([Resp.FromString(m).index for m in res.messages], [0, 1, 2])
        # The first message was flushed long before the stream ended.
        self.assertIsNotNone(first_at)
        self.assertGreaterEqual(total, 2.2)
        self.assertLess(first_at, total - 1.2, "first message at %.2fs of %.2fs" % (first_at, total))

    def test_server_streaming_binary_flushes_each_message(self):
        self.run_stream(text=False)

    def test_server_streaming_text_flushes_each_message(self):
        self.run_stream(text=True)


class TestGrpcWebCors(GrpcWebCase):

    def preflight(self, addr, origin, method="POST"):
        conn = wire.RawConn(*addr)
        self._stack.callback(conn.close)
        conn.send(wire.request_bytes("OPTIONS", ECHO, headers=[
            ("Origin", origin), ("Access-Control-Request-Method", method),
            ("Access-Control-Request-Headers", "x-grpc-web,content-type,x-custom")]))
        return conn.read_response(method="OPTIONS")

    def test_preflight_allowed(self):
        addr = self.gateway()
        r = self.preflight(addr, ORIGIN)
        self.assertEqual(r.status, 204)
        self.assertEqual(r.get("access-control-allow-origin"), ORIGIN)
        self.assertEqual(r.get("access-control-allow-methods"), "POST")
        allowed = [h.strip() for h in r.get("access-control-allow-headers").split(",")]
        for h in ["x-grpc-web", "x-user-agent", "grpc-timeout", "content-type", "authorization",
                  "x-custom"]:
            self.assertIn(h, allowed)
        self.assertEqual(r.get("access-control-max-age"), "300")
        self.assertIsNone(r.get("access-control-allow-credentials"))

    def test_preflight_on_a_post_only_route(self):
        cfg = self.config()
        cfg["routes"][0]["methods"] = ["POST"]
        gw = self.start_gateway(cfg)
        host, port = gw.addr("main").rsplit(":", 1)
        r = self.preflight((host, int(port)), ORIGIN)
        self.assertEqual(r.status, 204)
        self.assertEqual(r.get("access-control-allow-origin"), ORIGIN)
        self.assertEqual(r.get("vary"), "Origin")

    def test_preflight_denied_origin_and_method(self):
        addr = self.gateway()
        for origin, method in [("https://evil.example", "POST"), (ORIGIN, "PUT")]:
            r = self.preflight(addr, origin, method)
            self.assertEqual(r.status, 403)
            self.assertIsNone(r.get("access-control-allow-origin"))

    def test_wildcard_origin_and_credentials(self):
        addr = self.gateway(grpc_web={"allowed_origins": ["*"]})
        r = self.preflight(addr, "https://any.example")
        self.assertEqual(r.status, 204)
        self.assertEqual(r.get("access-control-allow-origin"), "*")
        rc, err = harness.check_config(harness.grpc_gateway_config(
            [self.backend.instance()],
            route_extra={"grpc_web": {"allowed_origins": ["*"], "allow_credentials": True}}))
        self.assertNotEqual(rc, 0)
        self.assertIn("allow_credentials", err)

    def test_actual_response_cors_headers(self):
        addr = self.gateway()
        body = frame(Req(message="c").SerializeToString())
        res = self.h1_call(addr, ECHO, body)
        self.assertEqual(res.header("access-control-allow-origin"), ORIGIN)
        exposed = [h.strip() for h in res.header("access-control-expose-headers").split(",")]
        for h in ["grpc-status", "grpc-message", "x-trailer"]:
            self.assertIn(h, exposed)
        # A disallowed origin still gets its answer, without CORS headers.
        res = self.h1_call(addr, ECHO, body, origin="https://evil.example")
        self.check_ok_echo(res, "c")
        self.assertIsNone(res.header("access-control-allow-origin"))
        self.assertIsNone(res.header("access-control-expose-headers"))


class TestGrpcWebGatewayErrors(GrpcWebCase):

    def test_backend_down_is_unavailable_trailer_frame(self):
        dead = harness.free_port()
        addr = self.gateway(instances=[{"host": "127.0.0.1", "port": dead}])
        for text in (False, True):
            body = frame(Req(message="x").SerializeToString())
            res = self.h1_call(addr, ECHO, base64.b64encode(body) if text else body, text=text)
            self.assertEqual(res.status, 200)
            self.assertEqual(res.code, 14, res.trailers)
            self.assertTrue(res.trailers.get("grpc-message"))
            self.assertEqual(res.header("content-type"),
                             "application/grpc-web-text" if text else "application/grpc-web+proto")
            self.assertEqual(res.header("access-control-allow-origin"), ORIGIN)

    def test_auth_failure_is_unauthenticated_trailer_frame(self):
        secret = "pk_test_grpcweb_0123456789abcdef"
        cfg = self.config()
        cfg["routes"][0]["auth"] = {"methods": ["api_key"]}
        cfg["api_keys"] = [{"name": "k", "client_id": "c", "key_prefix": secret[:8],
                            "key_hash": hashlib.sha256(secret.encode()).hexdigest()}]
        gw = self.start_gateway(cfg)
        host, port = gw.addr("main").rsplit(":", 1)
        addr = (host, int(port))
        body = frame(Req(message="a").SerializeToString())
        res = self.h1_call(addr, ECHO, body)
        self.assertEqual(res.status, 200)
        self.assertEqual(res.code, 16, res.trailers)
        self.assertEqual(res.header("access-control-allow-origin"), ORIGIN)
        # A preflight needs no credentials.
        conn = wire.RawConn(*addr)
        self._stack.callback(conn.close)
        conn.send(wire.request_bytes("OPTIONS", ECHO, headers=[
            ("Origin", ORIGIN), ("Access-Control-Request-Method", "POST")]))
        self.assertEqual(conn.read_response(method="OPTIONS").status, 204)
        res = self.h1_call(addr, ECHO, body, extra=[("x-api-key", secret)])
        self.check_ok_echo(res, "a")

    def test_rate_limited_is_resource_exhausted_trailer_frame(self):
        cfg = self.config()
        cfg["rate_limit_rules"] = [{"name": "calls", "key_type": "route", "limit": 1,
                                    "window_seconds": 3600}]
        gw = self.start_gateway(cfg)
        host, port = gw.addr("main").rsplit(":", 1)
        body = base64.b64encode(frame(Req(message="r").SerializeToString()))
        self.check_ok_echo(self.h1_call((host, int(port)), ECHO, body, text=True), "r")
        res = self.h1_call((host, int(port)), ECHO, body, text=True)
        self.assertEqual(res.status, 200)
        self.assertEqual(res.code, 8, res.trailers)
        self.assertIn("rate limit", res.trailers.get("grpc-message", ""))

    def test_deadline_mid_stream_ends_with_trailer_frame(self):
        addr = self.gateway()
        req = Req(message="slow", stream_count=20, stream_interval_ms=300)
        res = self.h1_call(addr, STREAM, frame(req.SerializeToString()),
                           extra=[("grpc-timeout", "1000m")])
        self.assertEqual(res.status, 200)
        self.assertGreaterEqual(len(res.messages), 1)
        self.assertLess(len(res.messages), 20)
        self.assertEqual(res.code, 4, res.trailers)

    def test_upstream_http_error_without_grpc_status(self):
        """An h2c upstream answering 503 text/plain (a proxy in front of the
        gRPC server, say): the client gets 200 and UNAVAILABLE in the trailer
        frame, not the text body."""
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        srv.settimeout(0.5)
        stop = threading.Event()
        self._stack.callback(srv.close)

        def answer(conn):
            conn.settimeout(10)
            buf = [b""]

            def need(n):
                while len(buf[0]) < n:
                    d = conn.recv(65536)
                    if not d:
                        return False
                    buf[0] += d
                return True

            with conn:
                conn.sendall(wire.settings_frame())
                if not need(24) or not buf[0].startswith(wire.H2_PREFACE):
                    return
                buf[0] = buf[0][24:]
                for _ in range(10000):
                    if not need(9):
                        return
                    n = struct.unpack(">I", b"\x00" + buf[0][:3])[0]
                    if not need(9 + n):
                        return
                    f, buf[0] = buf[0][:9 + n], buf[0][9 + n:]
                    ftype, flags, sid = f[3], f[4], struct.unpack(">I", f[5:9])[0] & 0x7FFFFFFF
                    if ftype == wire.SETTINGS and not flags & wire.FLAG_ACK:
                        conn.sendall(wire.settings_frame(ack=True))
                    elif ftype == wire.HEADERS and sid:
                        block = wire.hpack_literal(":status", "503") + \
                            wire.hpack_literal("content-type", "text/plain")
                        conn.sendall(wire.frame(wire.HEADERS, wire.FLAG_END_HEADERS, sid, block) +
                                     wire.frame(wire.DATA, wire.FLAG_END_STREAM, sid, b"busy\n"))

        def serve():
            for _ in range(1000):
                if stop.is_set():
                    return
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                threading.Thread(target=answer, args=(conn,), daemon=True).start()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        self._stack.callback(t.join, 5)
        self._stack.callback(stop.set)  # first: cleanups run last-in first-out
        addr = self.gateway(instances=[{"host": "127.0.0.1", "port": srv.getsockname()[1]}])
        for text in (False, True):
            body = frame(Req(message="x").SerializeToString())
            res = self.h1_call(addr, ECHO, base64.b64encode(body) if text else body, text=text)
            self.assertEqual(res.status, 200)
            self.assertEqual(res.messages, [])
            self.assertEqual(res.code, 14, res.trailers)
            self.assertIn("503", res.trailers.get("grpc-message"))

    def test_config_requires_grpc_service(self):
        cfg = harness.grpc_gateway_config([{"host": "127.0.0.1", "port": 1}],
                                          route_extra={"grpc_web": {}})
        cfg["services"][0]["protocol"] = "http1"
        rc, err = harness.check_config(cfg)
        self.assertNotEqual(rc, 0)
        self.assertIn("grpc_web needs services with protocol grpc", err)


NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "interop",
                        "grpcweb-node")


def node_deps_current():
    with open(os.path.join(NODE_DIR, "package.json")) as f:
        wanted = json.load(f).get("dependencies", {})
    for name, version in wanted.items():
        try:
            with open(os.path.join(NODE_DIR, "node_modules", *name.split("/"), "package.json")) as f:
                if json.load(f).get("version") != version:
                    return False
        except (OSError, ValueError):
            return False
    return True


class TestGrpcWebNodeClient(GrpcWebCase):
    """A real gRPC-Web client library (interop/grpcweb-node/README.md)."""

    def setUp(self):
        super().setUp()
        self.node = os.environ.get("PORTICO_NODE") or shutil.which("node")
        npm = os.environ.get("PORTICO_NPM") or shutil.which("npm")
        if not self.node or not npm:
            self.skipTest("node and npm are needed for the @improbable-eng/grpc-web client")
        if not node_deps_current():
            proc = subprocess.Popen([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                out, _ = proc.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                self.fail("npm ci in %s did not finish in 300 s (npm registry reachable?)" % NODE_DIR)
            self.assertTrue(proc.returncode == 0 and node_deps_current(),
                            "npm ci failed:\n%s" % out.decode("utf-8", "replace")[-2000:])

    def test_improbable_eng_client(self):
        host, port = self.gateway(grpc_web={})
        protos = os.path.join(os.path.dirname(os.path.abspath(__file__)), "protos")
        proc = subprocess.run([self.node, os.path.join(NODE_DIR, "client.js"),
                               "http://%s:%d" % (host, port), protos],
                              capture_output=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode("utf-8", "replace")[-2000:])
        out = json.loads(proc.stdout)
        unary = out["unary"]
        self.assertEqual(unary["code"], 0)
        self.assertEqual([m["message"] for m in unary["messages"]], ["hello from node"])
        self.assertEqual(unary["trailers"].get("x-trailer"), ["trailer-value"])
        self.assertEqual(unary["trailers"].get("x-trailing-from-node"), ["grpc-web"])
        err = out["error"]
        self.assertEqual(err["code"], 5)
        self.assertEqual(err["message"], "caf\u00e9 100% \u263a")
        self.assertEqual(err["messages"], [])
        stream = out["stream"]
        self.assertEqual(stream["code"], 0)
        self.assertEqual([m["index"] for m in stream["messages"]], [0, 1, 2])


if __name__ == "__main__":
    unittest.main()
