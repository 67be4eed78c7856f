"""WebSocket (HTTP/1.1 Upgrade) through portico to the WebSocket echo backend
(backends/ws_backend.py): text and binary messages up to 1 MiB, ping/pong,
subprotocols, backpressure without loss, close in both directions (the
backend logs each connection's end), no upgrade on routes without
`websocket: true`, the stream idle timeout, and wss on a TLS listener.

Client: python3-websockets (10.4, asyncio). Gateway-only (skipped with
PORTICO_DIRECT=1).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_websocket
"""

import asyncio
import base64
import contextlib
import json
import os
import re
import ssl
import time
import unittest
import uuid

import websockets

import harness
import wire

DIRECT = harness.DIRECT
HOST = "127.0.0.1"
MiB = 1 << 20
T = 30  # seconds: bound on every single wait


def ws_config(ws_be, http_be, limits=None, tls=None):
    listeners = [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}]
    if tls:
        listeners.append({"name": "tls", "address": "127.0.0.1:0", "protocols": ["http1", "h2"], "tls": tls})
    cfg = {
        "listeners": listeners,
        "services": [{"name": "ws", "protocol": "http1", "instances": [ws_be.instance()]},
                     {"name": "web", "protocol": "http1", "instances": [http_be.instance()]}],
        "routes": [
            {"name": "ws", "path_prefix": "/ws", "service": "ws", "websocket": True, "strip_prefix": True},
            {"name": "ws-plain", "path_prefix": "/plain-ws", "service": "ws", "strip_prefix": True},
            {"name": "web", "path_prefix": "/nows", "service": "web", "strip_prefix": True},
        ],
    }
    if limits:
        cfg["limits"] = limits
    return cfg


class WsTestCase(unittest.TestCase):

    def setUp(self):
        if DIRECT:
            self.skipTest("gateway-only (PORTICO_DIRECT=1)")
        self._stack = contextlib.ExitStack()
        self.addCleanup(self._stack.close)

    def start(self, limits=None, tls=None, env=None):
        self.ws_be = self._stack.enter_context(harness.WsBackend())
        self.http_be = self._stack.enter_context(harness.HttpBackend())
        self.gw = self._stack.enter_context(
            harness.Portico(ws_config(self.ws_be, self.http_be, limits, tls), env=env))
        return self.gw

    def url(self, path):
        return "ws://127.0.0.1:%d%s" % (self.gw.port("main"), path)

    def tag(self):
        return "t-" + uuid.uuid4().hex[:12]

    def wait_backend_closed(self, path, timeout=T):
        """The backend's log line for the end of the connection on `path`:
        returns (code, reason)."""
        rx = re.compile(r"^ws_backend: closed path=%s code=(\S+) reason=(.*)$" % re.escape(path), re.M)
        m = harness.wait_until(lambda: rx.search(self.ws_be.log_text()), timeout=timeout,
                               message="backend to see the close of %s" % path)
        return m.group(1), m.group(2)

    def backend_closed_yet(self, path):
        return ("ws_backend: closed path=%s " % path) in self.ws_be.log_text()


class TestWebSocket(WsTestCase):

    def test_text_binary_ping_and_1mib_messages(self):
        self.start()

        async def run():
            async with websockets.connect(self.url("/ws/echo"), open_timeout=T, close_timeout=T,
                                          ping_interval=None, max_size=64 * MiB) as ws:
                out = []
                for msg in ("hello", "h\u00e9llo \u263a \U0001f600", "", b"\x00\x01\xff" * 10, b"",
                            bytes(range(256)), harness.pattern(MiB, 7),
                            "x" * MiB, harness.pattern(MiB + 13, 1)):
                    await ws.send(msg)
                    got = await asyncio.wait_for(ws.recv(), T)
                    out.append((msg, got))
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, T)
                return out

        for sent, got in asyncio.run(run()):
            self.assertEqual(type(got), type(sent))
            self.assertTrue(got == sent, "message of %d altered" % len(sent))

    def test_headers_and_subprotocol_reach_backend(self):
        self.start()

        async def run():
            async with websockets.connect(self.url("/ws/headers?q=1"), subprotocols=["chat"], open_timeout=T,
                                          extra_headers={"X-Custom": "c1"}, ping_interval=None) as ws:
                info = json.loads(await asyncio.wait_for(ws.recv(), T))
                return info, ws.subprotocol

        info, proto = asyncio.run(run())
        self.assertEqual(proto, "chat")
        self.assertEqual(info["subprotocol"], "chat")
        self.assertEqual(info["path"], "/headers?q=1")
        self.assertEqual(info["headers"]["upgrade"].lower(), "websocket")
        self.assertEqual(info["headers"]["x-custom"], "c1")

    def test_backpressure_does_not_lose_data(self):
        env, slack = wire.asan_env_and_slack()
        self.start(env=env)
        count, size = 400, 64 * 1024

        async def run():
            async with websockets.connect(self.url("/ws/echo"), open_timeout=T, ping_interval=None,
                                          max_size=4 * MiB, max_queue=4, close_timeout=T) as ws:
                async def sender():
                    for i in range(count):
                        await asyncio.wait_for(ws.send(harness.pattern(size, i)), 120)

                send_task = asyncio.ensure_future(sender())
                await asyncio.sleep(3)  # nobody reads: every buffer on the path fills
                peak = harness.rss_kb(self.gw.pid)
                bad = []
                for i in range(count):
                    got = await asyncio.wait_for(ws.recv(), 120)
                    if got != harness.pattern(size, i):
                        bad.append(i)
                    if i % 50 == 0:
                        peak = max(peak, harness.rss_kb(self.gw.pid))
                await asyncio.wait_for(send_task, 120)
                return bad, peak

        idle = harness.rss_kb(self.gw.pid)
        bad, peak = asyncio.run(run())
        self.assertEqual(bad, [], "messages lost, altered or reordered")
        grown = (peak - idle) / 1024.0
        self.assertLess(grown, 24 + slack, "gateway RSS grew by %.1f MiB relaying 25 MiB" % grown)

    def test_client_close_reaches_backend(self):
        self.start()
        tag = self.tag()

        async def run():
            ws = await websockets.connect(self.url("/ws/" + tag), open_timeout=T, ping_interval=None,
                                          close_timeout=T)
            await ws.send("one")
            self.assertEqual(await asyncio.wait_for(ws.recv(), T), "one")
            await asyncio.wait_for(ws.close(code=4321, reason="client-bye"), T)
            return ws.close_code

        code = asyncio.run(run())
        self.assertEqual(code, 4321, "the close frame echoed by the backend")
        self.assertEqual(self.wait_backend_closed("/" + tag), ("4321", "client-bye"))

    def test_client_disconnect_without_close_frame_reaches_backend(self):
        self.start()
        tag = self.tag()
        key = base64.b64encode(os.urandom(16)).decode()
        with wire.RawConn(HOST, self.gw.port("main")) as c:
            c.send(wire.request_bytes("GET", "/ws/" + tag, headers=[
                ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
                ("Sec-WebSocket-Version", "13")]))
            _, status, _, headers = c.read_head()
            self.assertEqual(status, 101)
            self.assertFalse(self.backend_closed_yet("/" + tag))
        # TCP closed without a close frame: the tunnel must end upstream too
        code, _ = self.wait_backend_closed("/" + tag)
        self.assertEqual(code, "1006")

    def test_backend_close_reaches_client(self):
        self.start()

        async def run():
            ws = await websockets.connect(self.url("/ws/close/4001"), open_timeout=T, ping_interval=None,
                                          close_timeout=T)
            try:
                await asyncio.wait_for(ws.recv(), T)
            except websockets.ConnectionClosed as exc:
                await asyncio.wait_for(ws.wait_closed(), T)
                return exc.code, exc.reason
            return None

        self.assertEqual(asyncio.run(run()), (4001, "bye"))
        self.assertEqual(self.wait_backend_closed("/close/4001"), ("4001", "bye"))

    def test_backend_tcp_close_reaches_client(self):
        # The backend process dies mid-tunnel: the client's connection ends.
        self.start()

        async def run():
            ws = await websockets.connect(self.url("/ws/echo"), open_timeout=T, ping_interval=None,
                                          close_timeout=5)
            await ws.send("x")
            await asyncio.wait_for(ws.recv(), T)
            self.ws_be.stop()
            try:
                await asyncio.wait_for(ws.recv(), T)
            except websockets.ConnectionClosed:
                return True
            return False

        self.assertTrue(asyncio.run(run()))

    def test_upgrade_refused_without_websocket_route_flag(self):
        self.start()
        key = base64.b64encode(os.urandom(16)).decode()
        up = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
              ("Sec-WebSocket-Version", "13")]
        # to the HTTP backend: forwarded (if at all) as a plain request,
        # without the hop-by-hop Upgrade / Connection: upgrade
        with self.subTest(backend="http"):
            r, _, _ = wire.exchange(HOST, self.gw.port("main"),
                                    wire.request_bytes("GET", "/nows/echo/u", headers=up), close_wait=0)
            self.assertIsNotNone(r)
            self.assertNotEqual(r.status, 101, r)
            if r.status == 200:
                h = r.json()["headers"]
                self.assertNotIn("upgrade", h, "Upgrade forwarded on a route without websocket: true")
                self.assertNotIn("upgrade", h.get("connection", "").lower())
        # to the WebSocket backend on a route without websocket: true
        with self.subTest(backend="websocket"):
            r, _, _ = wire.exchange(HOST, self.gw.port("main"),
                                    wire.request_bytes("GET", "/plain-ws/echo", headers=up), timeout=10, close_wait=0)
            self.assertIsNotNone(r, "no response")
            self.assertNotEqual(r.status, 101, r)

        async def run():
            try:
                async with websockets.connect(self.url("/plain-ws/echo"), open_timeout=T):
                    return "open"
            except websockets.InvalidStatusCode as exc:
                return exc.status_code
            except websockets.InvalidHandshake as exc:
                return repr(exc)

        self.assertNotEqual(asyncio.run(run()), "open")

    def test_idle_tunnel_closed_after_stream_idle_timeout(self):
        self.start(limits={"stream_idle_timeout_ms": 1500})
        tag = self.tag()

        async def run():
            ws = await websockets.connect(self.url("/ws/" + tag), open_timeout=T, ping_interval=None,
                                          close_timeout=5)
            # active for 4 s (well past the idle timeout): stays open
            for i in range(16):
                await ws.send("m%d" % i)
                self.assertEqual(await asyncio.wait_for(ws.recv(), T), "m%d" % i)
                await asyncio.sleep(0.25)
            last = time.monotonic()
            try:
                await asyncio.wait_for(ws.wait_closed(), T)
            except asyncio.TimeoutError:
                return None
            return time.monotonic() - last

        idle = asyncio.run(run())
        self.assertIsNotNone(idle, "idle tunnel still open after %ds (stream_idle_timeout_ms 1500)" % T)
        self.assertGreater(idle, 1.0, "closed before the idle timeout")
        self.wait_backend_closed("/" + tag)

    def test_wss_on_tls_listener(self):
        certs = harness.test_certs()
        self.start(tls={"cert_file": certs.cert, "key_file": certs.key})
        ctx = ssl.create_default_context(cafile=certs.ca_cert)
        ctx.set_alpn_protocols(["http/1.1"])

        async def run():
            url = "wss://localhost:%d/ws/echo" % self.gw.port("tls")
            async with websockets.connect(url, ssl=ctx, open_timeout=T, ping_interval=None,
                                          max_size=8 * MiB, close_timeout=T) as ws:
                await ws.send("over tls")
                a = await asyncio.wait_for(ws.recv(), T)
                await ws.send(harness.pattern(2 * MiB))
                b = await asyncio.wait_for(ws.recv(), T)
                return a, b

        a, b = asyncio.run(run())
        self.assertEqual(a, "over tls")
        self.assertTrue(b == harness.pattern(2 * MiB))


if __name__ == "__main__":
    unittest.main()
