"""TLS listeners: HTTP/1.1 and HTTP/2 over TLS chosen by ALPN, clients with
and without ALPN, listeners restricted to one protocol, and clients that
speak the wrong thing to a TLS port (the gateway keeps serving).

Clients: curl (--http1.1 / --http2 with --cacert), nghttp, and Python's ssl
module for exact ALPN offers. Certificates: harness.test_certs() (a
throw-away CA; the server certificate names localhost and 127.0.0.1).

Gateway-only (skipped with PORTICO_DIRECT=1).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_tls
"""

import contextlib
import hashlib
import json
import os
import ssl
import unittest

import harness
import wire

DIRECT = harness.DIRECT
HOST = "127.0.0.1"
MiB = 1 << 20


class TestTlsListener(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if DIRECT:
            raise unittest.SkipTest("gateway-only (PORTICO_DIRECT=1)")
        cls.certs = harness.test_certs()
        cls._cls = contextlib.ExitStack()
        try:
            cls.be = cls._cls.enter_context(harness.HttpBackend())
            tls = {"cert_file": cls.certs.cert, "key_file": cls.certs.key}
            cls.gw = cls._cls.enter_context(harness.Portico({
                "listeners": [
                    {"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]},
                    {"name": "tls", "address": "127.0.0.1:0", "protocols": ["http1", "h2"], "tls": tls},
                    {"name": "tls-h1", "address": "127.0.0.1:0", "protocols": ["http1"], "tls": tls},
                ],
                "services": [{"name": "web", "protocol": "http1", "instances": [cls.be.instance()]}],
                "routes": [{"name": "echo", "path_prefix": "/echo", "service": "web"},
                           {"name": "bytes", "path_prefix": "/bytes", "service": "web"}],
            }))
        except BaseException:
            cls._cls.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._cls.close()

    def setUp(self):
        self._stack = contextlib.ExitStack()
        self.addCleanup(self._stack.close)
        self.tmp = self._stack.enter_context(harness.TempDir(prefix="portico-tls-"))

    def url(self, listener="tls"):
        return "https://localhost:%d" % self.gw.port(listener)

    def curl(self, args, listener="tls"):
        out = self.tmp.join("out")
        rc, stdout, err = wire.curl(["--cacert", self.certs.ca_cert, "-o", out,
                                     "-w", "%{http_version} %{http_code}",
                                     "--resolve", "localhost:%d:127.0.0.1" % self.gw.port(listener)]
                                    + list(args), timeout=180)
        self.assertEqual(rc, 0, err)
        with open(out, "rb") as f:
            body = f.read()
        v, code = stdout.decode().split()
        return v, int(code), body

    def ctx(self, alpn):
        c = ssl.create_default_context(cafile=self.certs.ca_cert)
        if alpn is not None:
            c.set_alpn_protocols(alpn)
        return c

    def handshake(self, alpn, listener="tls"):
        """Connect with an ALPN offer; returns (RawConn, selected protocol)."""
        c = wire.RawConn(HOST, self.gw.port(listener), tls_context=self.ctx(alpn),
                         server_hostname="localhost")
        self._stack.callback(c.close)
        return c, c.sock.selected_alpn_protocol()

    def assert_serving(self):
        v, code, body = self.curl(["--http1.1", self.url() + "/echo/alive"])
        self.assertEqual((v, code), ("1.1", 200))

    # -- curl -------------------------------------------------------------------

    def test_curl_http11_over_tls(self):
        v, code, body = self.curl(["--http1.1", self.url() + "/echo/t1?x=1"])
        self.assertEqual((v, code), ("1.1", 200))
        d = json.loads(body)
        self.assertEqual((d["path"], d["query"]), ("/echo/t1", "x=1"))
        self.assertEqual(d["headers"]["x-forwarded-proto"], "https")

    def test_curl_http2_over_tls(self):
        v, code, body = self.curl(["--http2", self.url() + "/echo/t2"])
        self.assertEqual((v, code), ("2", 200))
        d = json.loads(body)
        self.assertEqual(d["path"], "/echo/t2")
        self.assertEqual(d["headers"]["x-forwarded-proto"], "https")
        # bodies both ways over h2+TLS
        data = os.urandom(3 * MiB)
        src = self.tmp.write("up", data)
        v, code, body = self.curl(["--http2", "--data-binary", "@" + src, self.url() + "/echo/up"])
        self.assertEqual(json.loads(body)["body_sha256"], hashlib.sha256(data).hexdigest())
        v, code, body = self.curl(["--http2", self.url() + "/bytes?n=%d" % (20 * MiB)])
        self.assertEqual((v, code, len(body)), ("2", 200, 20 * MiB))
        self.assertTrue(body == harness.pattern(20 * MiB))

    def test_nghttp_over_tls(self):
        p = wire.run(["nghttp", "-n", "-v", "-m", "30", "-t", "120",
                      "https://127.0.0.1:%d/echo/ng" % self.gw.port("tls")], timeout=180)
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("negotiated protocol: h2", out.lower(), out[:300])
        self.assertEqual(out.count(":status: 200"), 30)

    # -- ALPN -------------------------------------------------------------------

    def test_alpn_choices(self):
        cases = [(["h2", "http/1.1"], "h2"), (["http/1.1", "h2"], "h2"), (["h2"], "h2"),
                 (["http/1.1"], "http/1.1")]
        for offer, expected in cases:
            with self.subTest(offer=offer):
                c, chosen = self.handshake(offer)
                self.assertEqual(chosen, expected)
                if chosen == "h2":
                    c.send(wire.H2_PREFACE + wire.settings_frame())
                    h = wire.H2Conn.__new__(wire.H2Conn)
                    h.raw, h.frames = c, []
                    h.handshake()
                    got = h.fetch_many([("GET", "/echo/alpn")], timeout=60)
                    self.assertEqual(got[1]["status"], 200)
                    self.assertEqual(json.loads(got[1]["body"])["path"], "/echo/alpn")
                else:
                    c.send(wire.request_bytes("GET", "/echo/alpn", host="localhost"))
                    r = c.read_response()
                    self.assertEqual((r.status, r.version), (200, "HTTP/1.1"))

    def test_no_alpn_gets_http11(self):
        c, chosen = self.handshake(None)
        self.assertIsNone(chosen)
        for i in range(3):
            c.send(wire.request_bytes("GET", "/echo/noalpn/%d" % i, host="localhost"))
            r = c.read_response()
            self.assertEqual((r.status, r.json()["path"]), (200, "/echo/noalpn/%d" % i))

    def test_unknown_alpn_only(self):
        # No protocol in common: either no_application_protocol (RFC 7301)
        # or no ALPN at all and HTTP/1.1 -- never h2.
        try:
            c, chosen = self.handshake(["spdy/3", "foo"])
        except (ssl.SSLError, ConnectionError):
            return
        self.assertIsNone(chosen)
        c.send(wire.request_bytes("GET", "/echo/unknown-alpn", host="localhost"))
        self.assertEqual(c.read_response().status, 200)

    def test_http1_only_tls_listener_never_selects_h2(self):
        for offer in (["h2", "http/1.1"], None):
            with self.subTest(offer=offer):
                c, chosen = self.handshake(offer, listener="tls-h1")
                self.assertIn(chosen, ("http/1.1", None))
                c.send(wire.request_bytes("GET", "/echo/h1only", host="localhost"))
                self.assertEqual(c.read_response().status, 200)
        try:
            c, chosen = self.handshake(["h2"], listener="tls-h1")
        except (ssl.SSLError, ConnectionError):
            return
        self.assertNotEqual(chosen, "h2")
        v, code, _ = self.curl(["--http2", self.url("tls-h1") + "/echo/x"], listener="tls-h1")
        self.assertEqual((v, code), ("1.1", 200))

    # -- wrong things on the TLS port -------------------------------------------------

    def test_plaintext_request_to_tls_port(self):
        for data in (b"GET /echo/plain HTTP/1.1\r\nHost: localhost\r\n\r\n",
                     wire.H2_PREFACE + wire.settings_frame(),
                     b"\x16\x03\x01\x00\x05hello" + os.urandom(200)):
            with self.subTest(data=data[:20]):
                with wire.RawConn(HOST, self.gw.port("tls"), timeout=30) as c:
                    c.send(data)
                    self.assertTrue(c.wait_closed(30), "TLS port kept a plaintext client open")
                    self.assertFalse(c.buf.startswith(b"HTTP/1.1 200"), c.buf[:200])
                    self.assertNotIn(b'"path"', c.buf)
        self.assert_serving()

    def test_client_that_never_handshakes(self):
        # a TCP connection that sends nothing does not block others
        with wire.RawConn(HOST, self.gw.port("tls"), timeout=30):
            self.assert_serving()
            v, code, _ = self.curl(["--http2", self.url() + "/echo/x"])
            self.assertEqual((v, code), ("2", 200))

    def test_untrusted_and_wrong_name(self):
        # The configured certificate is what the listener presents: a
        # client trusting only another CA fails, the test CA succeeds.
        other = harness.make_certs(self.tmp.join("other"))
        bad = ssl.create_default_context(cafile=other.ca_cert)
        with self.assertRaises(ssl.SSLError):
            wire.RawConn(HOST, self.gw.port("tls"), tls_context=bad, server_hostname="localhost").close()
        good = self.ctx(["http/1.1"])
        with self.assertRaises(ssl.SSLCertVerificationError):
            wire.RawConn(HOST, self.gw.port("tls"), tls_context=good, server_hostname="not-localhost").close()
        self.assert_serving()


if __name__ == "__main__":
    unittest.main()
