"""The harness and its backends, and the gateway's process contract.

Backend and harness checks run in both modes (they need no gateway); the
gateway checks (--check-config, SIGTERM exit status, SIGHUP with a bad file)
are skipped with PORTICO_DIRECT=1.

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_harness
"""

import asyncio
import hashlib
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import unittest

import harness

DIRECT = harness.DIRECT
TIMEOUT = 30


def http_get(host, port, path, method="GET", body=None, headers=None, conn=None):
    c = conn or http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r, data


class TestHarnessUtilities(unittest.TestCase):

    def test_yaml_round_trip(self):
        try:
            import yaml
        except ImportError:
            self.skipTest("python3-yaml not installed")
        cfg = harness.grpc_gateway_config([{"host": "::1", "port": 50051}], route_extra={"timeout_ms": 5})
        cfg["routes"].append({"name": "api", "path": "/api/{rest=**}", "methods": ["GET", "POST"],
                              "service": "web", "strip_prefix": True,
                              "headers": [{"name": "x", "exact": "a: b # c"}],
                              "odd": ["yes", "123", "", "null", "\u263a\n", "[x]"]})
        cfg["access_log"] = {"enabled": False}
        self.assertEqual(yaml.safe_load(harness.to_yaml(cfg)), cfg)

    def test_free_port_and_rss(self):
        port = harness.free_port()
        self.assertFalse(harness.can_connect("127.0.0.1", port, timeout=1))
        self.assertGreater(harness.rss_kb(os.getpid()), 1000)
        self.assertEqual(harness.split_address("[::1]:80"), ("::1", 80))
        self.assertEqual(harness.split_address(":8080"), ("", 8080))
        self.assertEqual(harness.hostport("::1", 5), "[::1]:5")

    def test_certs_chain_and_names(self):
        certs = harness.test_certs()
        for cert in (certs.cert, certs.client_cert):
            proc = subprocess.run(["openssl", "verify", "-CAfile", certs.ca_cert, cert],
                                  capture_output=True, timeout=TIMEOUT)
            self.assertEqual(proc.returncode, 0, proc.stderr)
        text = subprocess.run(["openssl", "x509", "-in", certs.cert, "-noout", "-text"],
                              capture_output=True, text=True, timeout=TIMEOUT).stdout
        self.assertIn("DNS:localhost", text)
        self.assertIn("IP Address:127.0.0.1", text)

    def test_pattern(self):
        self.assertEqual(harness.pattern(5, 249), bytes([249, 250, 0, 1, 2]))
        self.assertEqual(len(harness.pattern(3 << 20, 7)), 3 << 20)


class TestHttpBackend(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.be = harness.HttpBackend().start()

    @classmethod
    def tearDownClass(cls):
        cls.be.stop()

    def test_echo_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.be.port, timeout=TIMEOUT)
        try:
            for i in range(1, 4):
                body = os.urandom(i * 1000)
                r, data = http_get(None, None, "/echo/a?b=%d" % i, "POST", body, {"X-T": "v%d" % i}, conn)
                d = json.loads(data)
                self.assertEqual(r.status, 200)
                self.assertEqual((d["method"], d["path"], d["query"]), ("POST", "/echo/a", "b=%d" % i))
                self.assertEqual(d["headers"]["x-t"], "v%d" % i)
                self.assertEqual(d["body_length"], len(body))
                self.assertEqual(d["body_sha256"], hashlib.sha256(body).hexdigest())
                self.assertEqual(d["connection_requests"], i)
        finally:
            conn.close()

    def test_chunked_request_body(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.be.port, timeout=TIMEOUT)
        try:
            conn.putrequest("POST", "/echo")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            conn.send(b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n")
            d = json.loads(conn.getresponse().read())
            self.assertEqual(d["body_length"], 8)
            self.assertEqual(d["body_sha256"], hashlib.sha256(b"helloabc").hexdigest())
        finally:
            conn.close()

    def test_status_bytes_chunked_headers(self):
        r, data = http_get("127.0.0.1", self.be.port, "/status/418")
        self.assertEqual(r.status, 418)
        r, data = http_get("127.0.0.1", self.be.port, "/status/204")
        self.assertEqual((r.status, data), (204, b""))
        r, data = http_get("127.0.0.1", self.be.port, "/bytes?n=300000")
        self.assertEqual(data, harness.pattern(300000))
        self.assertEqual(r.getheader("X-Body-Sha256"), hashlib.sha256(data).hexdigest())
        r, data = http_get("127.0.0.1", self.be.port, "/chunked?n=4&size=1000&delay_ms=5")
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        self.assertEqual(data, harness.pattern(4000))
        self.assertEqual(r.getheader("X-Body-Sha256"), hashlib.sha256(data).hexdigest())
        r, data = http_get("127.0.0.1", self.be.port, "/headers?set=X-A:1&set=Cache-Control:no-store")
        self.assertEqual((r.getheader("X-A"), r.getheader("Cache-Control")), ("1", "no-store"))
        r, data = http_get("127.0.0.1", self.be.port, "/slow?ms=50")
        self.assertEqual(json.loads(data)["slept_ms"], 50)
        r, data = http_get("127.0.0.1", self.be.port, "/nope")
        self.assertEqual(r.status, 404)

    def test_tls_and_ipv6(self):
        if not harness.ipv6_available():
            self.skipTest("no IPv6 loopback")
        certs = harness.test_certs()
        with harness.HttpBackend(host="::1", tls=certs) as be:
            ctx = ssl.create_default_context(cafile=certs.ca_cert)
            conn = http.client.HTTPSConnection("::1", be.port, context=ctx, timeout=TIMEOUT)
            try:
                conn.request("GET", "/echo")
                d = json.loads(conn.getresponse().read())
            finally:
                conn.close()
            self.assertTrue(d["peer"].startswith("::1:"), d["peer"])
            self.assertTrue(be.url.startswith("https://[::1]:"))


class TestWsBackend(unittest.TestCase):

    def test_echo_headers_close(self):
        import websockets

        async def run(url):
            async with websockets.connect(url + "/headers", subprotocols=["chat"], open_timeout=TIMEOUT) as ws:
                info = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                await ws.send("text \u263a")
                t = await asyncio.wait_for(ws.recv(), TIMEOUT)
                await ws.send(b"\x00\xff" * 40000)
                b = await asyncio.wait_for(ws.recv(), TIMEOUT)
            async with websockets.connect(url + "/close/4001", open_timeout=TIMEOUT) as ws:
                try:
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
                except websockets.ConnectionClosed as exc:
                    code = exc.code
            return info, t, b, code

        with harness.WsBackend() as be:
            info, t, b, code = asyncio.run(run(be.url))
        self.assertEqual(info["subprotocol"], "chat")
        self.assertEqual(info["headers"]["upgrade"].lower(), "websocket")
        self.assertEqual(t, "text \u263a")
        self.assertEqual(b, b"\x00\xff" * 40000)
        self.assertEqual(code, 4001)


class TestGatewayProcess(unittest.TestCase):
    """The process contract the harness relies on (gateway mode only)."""

    def setUp(self):
        if DIRECT:
            self.skipTest("gateway-only (PORTICO_DIRECT=1)")

    def http_config(self, be, service="web"):
        return {
            "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
            "services": [{"name": "web", "protocol": "http1", "instances": [be.instance()]}],
            "routes": [{"name": "echo", "path_prefix": "/echo", "service": service}],
        }

    def test_check_config(self):
        with harness.HttpBackend() as be:
            good = self.http_config(be)
            rc, err = harness.check_config(good)
            self.assertEqual(rc, 0, err)
            bad = harness.with_ports(self.http_config(be, service="no-such-service"))
            text = harness.to_yaml(bad)
            line = text.splitlines().index("    service: no-such-service") + 1
            rc, err = harness.check_config(yaml_text=text)
            self.assertEqual(rc, 1, err)
            m = re.search(r"^portico\.yaml:(\d+):(\d+): ([^:\n]+): (.+)$", err, re.M)
            self.assertTrue(m, "no 'file:line:col: field: message' line in:\n" + err)
            self.assertEqual(int(m.group(1)), line, err)
            self.assertIn("service", m.group(3))

    def test_sigterm_exits_zero(self):
        with harness.HttpBackend() as be, harness.Portico(self.http_config(be)) as gw:
            r, data = http_get("127.0.0.1", gw.port("main"), "/echo")
            self.assertEqual(r.status, 200)
            self.assertEqual(gw.stop(signal.SIGTERM, timeout=30), 0, gw.stderr[-2000:])

    def test_bad_reload_keeps_running_config(self):
        with harness.HttpBackend() as be, harness.Portico(self.http_config(be)) as gw:
            gw.reload(self.http_config(be, service="no-such-service"))
            self.assertTrue(gw.running(), gw.stderr[-2000:])
            r, data = http_get("127.0.0.1", gw.port("main"), "/echo")
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(data)["server_id"], "http-backend-%d" % be.port)


if __name__ == "__main__":
    unittest.main()
