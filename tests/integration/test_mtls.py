"""mTLS listeners: client certificates required or optional, verified
against a CA bundle (and a CRL), over HTTP/1.1 and HTTP/2 (ALPN); the
verified certificate's identity reaches the exchange (pt_exchange_client_cert,
read here through the access log's client_cert_* keys, which the proxy fills
from that accessor).

Certificates are made by the test with the openssl CLI: a client CA (with
`openssl ca`, so it can backdate a certificate and revoke one), a client
certificate with DNS, URI (SPIFFE) and email SANs, one from another CA, an
expired one and a revoked one. The server certificate comes from
harness.test_certs().

Clients: curl (--cert, --http1.1 / --http2, TLS 1.2 and 1.3), nghttp, and
Python's ssl module.

Gateway-only (skipped with PORTICO_DIRECT=1).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_mtls
"""

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import ssl
import subprocess
import unittest

import harness
import wire

DIRECT = harness.DIRECT
HOST = "127.0.0.1"
SPIFFE = "spiffe://example.org/ns/prod/sa/svc-a"
LOADED = r"configuration generation \d+ loaded"

CA_CNF = """[ ca ]
default_ca = ca_default
[ ca_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
crlnumber = {dir}/crlnumber
certificate = {dir}/ca.pem
private_key = {dir}/ca.key
default_md = sha256
default_days = 3650
default_crl_days = 30
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = supplied
organizationName = optional
"""

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(args, cwd):
    p = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise harness.HarnessError("openssl %s failed:\n%s" % (" ".join(args), p.stderr.decode("utf-8", "replace")))
    return p.stdout


class ClientCa(object):
    """A CA managed with `openssl ca` (index, serials, CRL) in its own directory."""

    def __init__(self, directory, cn):
        self.dir = directory
        os.makedirs(os.path.join(directory, "issued"))
        open(os.path.join(directory, "index.txt"), "w").close()
        with open(os.path.join(directory, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(directory, "crlnumber"), "w") as f:
            f.write("01\n")
        self.cnf = os.path.join(directory, "ca.cnf")
        with open(self.cnf, "w") as f:
            f.write(CA_CNF.format(dir=directory))
        self.cert = os.path.join(directory, "ca.pem")
        openssl(["req", "-x509"] + EC + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "3650",
                                         "-subj", "/O=Example/CN=" + cn,
                                         "-addext", "basicConstraints=critical,CA:TRUE",
                                         "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)

    def issue(self, name, subj, sans=None, start=None, end=None):
        """A clientAuth leaf; returns (cert, key) paths. start/end:
        YYYYMMDDHHMMSSZ validity (backdating works with `openssl ca`)."""
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth\n")
            if sans:
                f.write("subjectAltName=%s\n" % sans)
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".pem")
        openssl(["req", "-new"] + EC + ["-keyout", key, "-out", csr, "-subj", subj], self.dir)
        args = ["ca", "-batch", "-notext", "-preserveDN", "-config", self.cnf, "-in", csr, "-out", cert, "-extfile", ext]
        if start:
            args += ["-startdate", start]
        if end:
            args += ["-enddate", end]
        else:
            args += ["-days", "3650"]
        openssl(args, self.dir)
        return cert, key

    def revoke(self, cert):
        openssl(["ca", "-batch", "-config", self.cnf, "-revoke", cert], self.dir)

    def crl(self, name):
        out = os.path.join(self.dir, name)
        openssl(["ca", "-batch", "-config", self.cnf, "-gencrl", "-out", out], self.dir)
        return out


def fingerprint(cert_path):
    with open(cert_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


def openssl_subject(cert_path):
    """The subject as `openssl x509 -nameopt RFC2253` prints it."""
    out = openssl(["x509", "-in", cert_path, "-noout", "-subject", "-nameopt", "RFC2253"], None)
    return out.decode().strip().split("=", 1)[1]


class TestMtls(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if DIRECT:
            raise unittest.SkipTest("gateway-only (PORTICO_DIRECT=1)")
        cls._cls = contextlib.ExitStack()
        try:
            cls.server = harness.test_certs()
            cls.tmp = cls._cls.enter_context(harness.TempDir(prefix="portico-mtls-"))
            cls.ca = ClientCa(cls.tmp.join("ca"), "portico mtls client CA")
            cls.other = ClientCa(cls.tmp.join("other"), "portico mtls other CA")
            cls.good = cls.ca.issue("good", "/O=Example/CN=svc-a",
                                    "DNS:svc-a.internal,DNS:svc-a.example.org,URI:%s,email:svc-a@example.org" % SPIFFE)
            cls.foreign = cls.other.issue("foreign", "/O=Example/CN=svc-a", "URI:%s" % SPIFFE)
            cls.expired = cls.ca.issue("expired", "/CN=svc-old", start="20200101000000Z", end="20200102000000Z")
            cls.revoked = cls.ca.issue("revoked", "/CN=svc-revoked")
            cls.ca.revoke(cls.revoked[0])
            cls.crl = cls.ca.crl("ca.crl")
            cls.be = cls._cls.enter_context(harness.HttpBackend())
            cls.ws_be = cls._cls.enter_context(harness.WsBackend())
            cls.gw = cls._cls.enter_context(harness.Portico(cls.config()))
        except BaseException:
            cls._cls.close()
            raise

    @classmethod
    def config(cls, required_ca=None):
        def tls(**extra):
            t = {"cert_file": cls.server.cert, "key_file": cls.server.key}
            t.update(extra)
            return t
        return {
            "listeners": [
                {"name": "req", "address": "127.0.0.1:0",
                 "tls": tls(client_ca_file=required_ca or cls.ca.cert, client_cert="required")},
                {"name": "opt", "address": "127.0.0.1:0",
                 "tls": tls(client_ca_file=cls.ca.cert, client_cert="optional")},
                # A CA bundle alone means required.
                {"name": "ca-only", "address": "127.0.0.1:0", "tls": tls(client_ca_file=cls.ca.cert)},
                {"name": "crl", "address": "127.0.0.1:0",
                 "tls": tls(client_ca_file=cls.ca.cert, crl_file=cls.crl)},
                {"name": "plain", "address": "127.0.0.1:0", "tls": tls()},
            ],
            "services": [{"name": "web", "protocol": "http1", "instances": [cls.be.instance()]},
                         {"name": "ws", "protocol": "http1", "instances": [cls.ws_be.instance()]}],
            "routes": [{"name": "echo", "path_prefix": "/echo", "service": "web"},
                       {"name": "ws", "path_prefix": "/ws", "service": "ws", "websocket": True,
                        "strip_prefix": True}],
        }

    @classmethod
    def tearDownClass(cls):
        try:
            # SIGTERM exits 0: no crash and, for sanitizer builds, no error
            # or leak report (connection certificates are reference-counted).
            rc = cls.gw.stop(timeout=60) if cls.gw.running() else cls.gw.proc.returncode
            if rc != 0:
                raise AssertionError("gateway exit status %s; stderr tail:\n%s" % (rc, cls.gw.stderr[-4000:]))
        finally:
            cls._cls.close()

    def setUp(self):
        self._stack = contextlib.ExitStack()
        self.addCleanup(self._stack.close)
        self.out = self._stack.enter_context(harness.TempDir(prefix="portico-mtls-out-"))

    # -- clients ----------------------------------------------------------------

    def curl(self, listener, path, cert=None, http="--http1.1", extra=()):
        """(exit code, "version status" or "", stderr)."""
        port = self.gw.port(listener)
        args = ["--cacert", self.server.ca_cert, "--resolve", "localhost:%d:127.0.0.1" % port,
                "-o", self.out.join("body"), "-w", "%{http_version} %{http_code}", http] + list(extra)
        if cert:
            args += ["--cert", cert[0], "--key", cert[1]]
        rc, stdout, err = wire.curl(args + ["https://localhost:%d%s" % (port, path)], timeout=60)
        return rc, stdout.decode().strip(), err

    def assert_served(self, listener, path, cert=None, http="--http1.1", extra=()):
        rc, got, err = self.curl(listener, path, cert, http, extra)
        self.assertEqual(rc, 0, err)
        self.assertEqual(got, ("2 200" if http == "--http2" else "1.1 200"))
        with open(self.out.join("body"), "rb") as f:
            self.assertEqual(json.loads(f.read())["path"], path.split("?")[0])

    def assert_refused(self, listener, path, cert=None, http="--http1.1", extra=()):
        rc, got, err = self.curl(listener, path, cert, http, extra)
        # No HTTP response at all: the TLS handshake (or, with TLS 1.3, the
        # first read after it) fails with an alert.
        # curl reports it as 35 (handshake), 56 (receive), 55/16 (send) or
        # similar, depending on the TLS version and when the alert arrives.
        self.assertNotEqual(rc, 0, "served %r without a valid client certificate" % got)
        self.assertTrue(got in ("", "000") or got.endswith(" 000"), got)
        return err

    def log_entry(self, path):
        """The access-log line of the request for path (waits for the writer)."""
        def find():
            for e in self.gw.access_log_lines():
                if e.get("path") == path:
                    return e
            return None
        return harness.wait_until(find, timeout=10, message="access log line for %s" % path)

    def assert_no_log(self, path):
        self.assertFalse([e for e in self.gw.access_log_lines() if e.get("path") == path])

    # -- required -----------------------------------------------------------------

    def test_required_valid_cert_http1_and_http2(self):
        # The same RFC 2253 form as OpenSSL's command line prints.
        self.assertEqual(openssl_subject(self.good[0]), "CN=svc-a,O=Example")
        for http in ("--http1.1", "--http2"):
            with self.subTest(http=http):
                path = "/echo/req-ok%s" % http.replace("-", "")
                self.assert_served("req", path, self.good, http)
                e = self.log_entry(path)
                self.assertEqual(e["protocol"], "HTTP/2" if http == "--http2" else "HTTP/1.1")
                self.assertEqual(e["client_cert_subject"], "CN=svc-a,O=Example")
                self.assertEqual(e["client_cert_sha256"], fingerprint(self.good[0]))

    def test_required_without_cert_is_refused(self):
        for http in ("--http1.1", "--http2"):
            for tls in (("--tlsv1.3",), ("--tlsv1.2", "--tls-max", "1.2")):
                with self.subTest(http=http, tls=tls[0]):
                    err = self.assert_refused("req", "/echo/req-none", None, http, tls)
                    # TLS 1.2 fails inside the handshake with an alert. In
                    # TLS 1.3 the server decides after the client's Finished,
                    # when the client may already have sent its request:
                    # the alert can then be lost to the connection's reset.
                    if tls[0] == "--tlsv1.2":
                        self.assertIn("alert handshake failure", err.lower())
        self.assert_no_log("/echo/req-none")

    def test_required_bad_certs_are_refused(self):
        cases = {"other CA": self.foreign, "expired": self.expired}
        for name, cert in cases.items():
            for http in ("--http1.1", "--http2"):
                with self.subTest(cert=name, http=http):
                    self.assert_refused("req", "/echo/req-bad", cert, http)
        self.assert_no_log("/echo/req-bad")

    def test_ca_bundle_alone_means_required(self):
        self.assert_refused("ca-only", "/echo/ca-only-none")
        self.assert_served("ca-only", "/echo/ca-only-ok", self.good)

    def test_nghttp_with_client_cert(self):
        port = self.gw.port("req")
        p = wire.run(["nghttp", "-n", "-v", "--cert", self.good[0], "--key", self.good[1],
                      "https://127.0.0.1:%d/echo/req-nghttp" % port], timeout=60)
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("negotiated protocol: h2", out.lower())
        self.assertIn(":status: 200", out)
        self.assertEqual(self.log_entry("/echo/req-nghttp")["client_cert_sha256"], fingerprint(self.good[0]))
        p = wire.run(["nghttp", "-n", "-v", "https://127.0.0.1:%d/echo/req-nghttp-none" % port], timeout=60)
        self.assertNotIn(":status:", p.stdout.decode("utf-8", "replace"))
        self.assert_no_log("/echo/req-nghttp-none")

    def test_python_ssl_sees_certificate_request_with_our_ca(self):
        """CertificateRequest names the client CA: Python's ssl (TLS 1.2)
        fails with an alert when it has no certificate to send."""
        ctx = ssl.create_default_context(cafile=self.server.ca_cert)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with self.assertRaises((ssl.SSLError, ConnectionResetError)):
            c = wire.RawConn(HOST, self.gw.port("req"), tls_context=ctx, server_hostname="localhost")
            self._stack.callback(c.close)
            c.send(wire.request_bytes("GET", "/echo/py-none", host="localhost"))
            c.sock.recv(1)
        ctx.load_cert_chain(self.good[0], self.good[1])
        c = wire.RawConn(HOST, self.gw.port("req"), tls_context=ctx, server_hostname="localhost")
        self._stack.callback(c.close)
        c.send(wire.request_bytes("GET", "/echo/py-ok", host="localhost"))
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(self.log_entry("/echo/py-ok")["client_cert_subject"], "CN=svc-a,O=Example")

    def test_keepalive_requests_share_the_connection_identity(self):
        ctx = ssl.create_default_context(cafile=self.server.ca_cert)
        ctx.load_cert_chain(self.good[0], self.good[1])
        c = wire.RawConn(HOST, self.gw.port("req"), tls_context=ctx, server_hostname="localhost")
        self._stack.callback(c.close)
        for i in range(3):
            c.send(wire.request_bytes("GET", "/echo/keep-%d" % i, host="localhost"))
            self.assertEqual(c.read_response().status, 200)
        for i in range(3):
            self.assertEqual(self.log_entry("/echo/keep-%d" % i)["client_cert_sha256"], fingerprint(self.good[0]))

    def test_websocket_tunnel_keeps_the_identity_until_it_ends(self):
        """After the upgrade the tunnel owns the exchange (the HTTP/1.1 codec
        is gone); its log line still has the certificate. Under ASan this
        also checks the tunnel's own copy of the connection info."""
        import websockets
        ctx = ssl.create_default_context(cafile=self.server.ca_cert)
        ctx.set_alpn_protocols(["http/1.1"])
        ctx.load_cert_chain(self.good[0], self.good[1])

        async def run():
            url = "wss://localhost:%d/ws/echo" % self.gw.port("req")
            async with websockets.connect(url, ssl=ctx, open_timeout=20, close_timeout=20,
                                          ping_interval=None) as ws:
                await ws.send("mtls")
                return await asyncio.wait_for(ws.recv(), 20)

        self.assertEqual(asyncio.run(run()), "mtls")
        e = self.log_entry("/ws/echo")
        self.assertEqual(e["status"], 101)
        self.assertEqual(e["client"], "127.0.0.1")
        self.assertEqual(e["client_cert_sha256"], fingerprint(self.good[0]))

    # -- optional -----------------------------------------------------------------

    def test_optional_accepts_no_cert(self):
        for http in ("--http1.1", "--http2"):
            with self.subTest(http=http):
                path = "/echo/opt-none%s" % http.replace("-", "")
                self.assert_served("opt", path, None, http)
                e = self.log_entry(path)
                self.assertNotIn("client_cert_subject", e)
                self.assertNotIn("client_cert_sha256", e)

    def test_optional_valid_cert_is_exposed(self):
        self.assert_served("opt", "/echo/opt-ok", self.good, "--http2")
        e = self.log_entry("/echo/opt-ok")
        self.assertEqual(e["client_cert_subject"], "CN=svc-a,O=Example")
        self.assertEqual(e["client_cert_sha256"], fingerprint(self.good[0]))

    def test_optional_invalid_cert_fails_the_handshake(self):
        for name, cert in {"other CA": self.foreign, "expired": self.expired}.items():
            with self.subTest(cert=name):
                self.assert_refused("opt", "/echo/opt-bad", cert)
        self.assert_no_log("/echo/opt-bad")

    # -- CRL, plain TLS -------------------------------------------------------------

    def test_crl_rejects_revoked_cert(self):
        self.assert_served("crl", "/echo/crl-ok", self.good)
        err = self.assert_refused("crl", "/echo/crl-revoked", self.revoked, extra=("--tlsv1.2", "--tls-max", "1.2"))
        self.assertIn("revoked", err.lower())
        self.assert_no_log("/echo/crl-revoked")

    def test_plain_tls_listener_asks_for_no_cert(self):
        # A client certificate offered anyway is ignored (never requested).
        self.assert_served("plain", "/echo/plain", self.good)
        self.assertNotIn("client_cert_subject", self.log_entry("/echo/plain"))

    # -- reload ---------------------------------------------------------------------

    def test_reload_swaps_the_ca_and_keeps_open_connections(self):
        ctx = ssl.create_default_context(cafile=self.server.ca_cert)
        ctx.load_cert_chain(self.good[0], self.good[1])
        c = wire.RawConn(HOST, self.gw.port("req"), tls_context=ctx, server_hostname="localhost")
        self._stack.callback(c.close)
        c.send(wire.request_bytes("GET", "/echo/before-reload", host="localhost"))
        self.assertEqual(c.read_response().status, 200)
        try:
            # Only the other CA's clients now.
            self.assertTrue(self.gw.reload(self.config(required_ca=self.other.cert), wait_for=LOADED, settle=10))
            self.assert_refused("req", "/echo/after-reload-good", self.good)
            self.assert_served("req", "/echo/after-reload-foreign", self.foreign)
            # The connection made before keeps its context and its identity.
            c.send(wire.request_bytes("GET", "/echo/old-conn", host="localhost"))
            self.assertEqual(c.read_response().status, 200)
            self.assertEqual(self.log_entry("/echo/old-conn")["client_cert_sha256"], fingerprint(self.good[0]))
        finally:
            self.assertTrue(self.gw.reload(self.config(), wait_for=LOADED, settle=10))
        self.assert_served("req", "/echo/reload-back", self.good)


class TestMtlsConfigErrors(unittest.TestCase):
    """portico --check-config rejects bad mTLS settings with clear errors."""

    @classmethod
    def setUpClass(cls):
        if DIRECT:
            raise unittest.SkipTest("gateway-only (PORTICO_DIRECT=1)")
        cls.server = harness.test_certs()
        cls._tmp = harness.TempDir(prefix="portico-mtls-cfg-")
        cls.tmp = cls._tmp
        cls.ca = ClientCa(cls.tmp.join("ca"), "portico mtls config CA")
        cls.crl = cls.ca.crl("ca.crl")

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def check(self, **tls_extra):
        tls = {"cert_file": self.server.cert, "key_file": self.server.key}
        tls.update(tls_extra)
        cfg = {"listeners": [{"name": "m", "address": "127.0.0.1:%d" % harness.free_port(), "tls": tls}],
               "routes": []}
        return harness.check_config(cfg)

    def assert_rejected(self, pattern, **tls_extra):
        rc, text = self.check(**tls_extra)
        self.assertNotEqual(rc, 0, text)
        self.assertRegex(text, pattern)

    def test_errors(self):
        garbage = self.tmp.write("garbage.pem", b"not a certificate\n")
        self.assert_rejected(r"client_cert: required needs client_ca_file", client_cert="required")
        self.assert_rejected(r"client_cert: optional needs client_ca_file", client_cert="optional")
        self.assert_rejected(r"client_ca_file.*cannot read", client_ca_file=self.tmp.join("missing.pem"))
        self.assert_rejected(r'client_ca_file ".*garbage.pem": no PEM certificate could be read', client_ca_file=garbage)
        self.assert_rejected(r"unused with client_cert: none", client_ca_file=self.ca.cert,
                             client_cert="none")
        self.assert_rejected(r"crl_file needs client_ca_file", crl_file=self.ca.cert)
        self.assert_rejected(r'crl_file ".*": no PEM CRL could be read', client_ca_file=self.ca.cert,
                             crl_file=self.ca.cert)
        self.assert_rejected(r"verify_depth.*too large", client_ca_file=self.ca.cert, verify_depth=17)
        self.assert_rejected(r'client_cert: unknown value "sometimes"', client_ca_file=self.ca.cert, client_cert="sometimes")

    def test_valid(self):
        rc, text = self.check(client_ca_file=self.ca.cert, client_cert="optional", verify_depth=2,
                              crl_file=self.crl)
        self.assertEqual(rc, 0, text)


if __name__ == "__main__":
    unittest.main()
