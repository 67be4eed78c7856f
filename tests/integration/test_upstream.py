"""The upstream side of portico against real backends: TLS to the upstream
(gRPC, h2 and HTTP/1.1; verification, server_name, insecure_skip_verify,
mTLS), GOAWAY from an h2 backend, overflow connections when a backend's
SETTINGS_MAX_CONCURRENT_STREAMS is reached, the per-endpoint connection
limit, round robin (and a down instance), cancellation and resets, and
connection reuse.

Backends: backends/http_backend.py, backends/grpc_backend.py,
backends/raw_backend.py, and nginx from Debian with a configuration written
by each test (backends/nginx_conf_backend.py), whose access log records the
connection serial number of every request. Upstream connections are also
counted from the outside with `ss` (ESTABLISHED sockets whose peer is the
backend's port).

All gateway-only (skipped with PORTICO_DIRECT=1).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_upstream
"""

import collections
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import unittest

import grpc

import harness
import protoload
import wire

DIRECT = harness.DIRECT
HOST = "127.0.0.1"
MiB = 1 << 20
echo_pb2 = harness.load_echo()
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"]
Req = echo_pb2.EchoRequest
RPC_TIMEOUT = 60.0
HTTP_TIMEOUT = 60.0


# ---------------------------------------------------------------------------
# helpers


class NginxConf(harness.BackendProcess):
    """nginx with the `http {}` body written by the test
    (backends/nginx_conf_backend.py). `tls` (a CertBundle) fills @CERT@ and
    @KEY@, `client_ca` @CLIENT_CA@."""
    script = os.path.join(harness.BACKENDS_DIR, "nginx_conf_backend.py")
    kind = "nginx-conf"

    def __init__(self, http_conf, client_ca=None, **kw):
        extra = ["--http-conf", http_conf]
        if client_ca:
            extra += ["--client-ca", client_ca]
        kw["extra_args"] = extra + list(kw.get("extra_args", ()))
        super().__init__(**kw)

    _LINE = re.compile(r'^(\d+) (\d+) (\d+) (\S+) (\d+) "([^"]*)" ssl=(\S*) sni=(\S*) verify=(\S*)$')

    def access(self):
        """The access log as dicts: conn, creq, rport, proto, status, uri,
        ssl, sni, verify."""
        out = []
        path = os.path.join(self.tmp.path, "access.log")
        # nginx writes a request's line after sending the response, so a
        # client that has its response can be a moment early: read once the
        # file has stopped growing (checked every 50 ms, at most 2 s).
        deadline = time.monotonic() + 2.0
        last = -1
        while time.monotonic() < deadline:
            try:
                size = os.path.getsize(path)
            except OSError:
                size = -1
            if size == last:
                break
            last = size
            time.sleep(0.05)
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            return out
        for line in text.splitlines():
            m = self._LINE.match(line.strip())
            if m:
                out.append({"conn": int(m.group(1)), "creq": int(m.group(2)), "rport": int(m.group(3)),
                            "proto": m.group(4), "status": int(m.group(5)), "uri": m.group(6),
                            "ssl": m.group(7), "sni": m.group(8), "verify": m.group(9)})
        return out

    def error_log(self):
        try:
            with open(os.path.join(self.tmp.path, "error.log")) as f:
                return f.read()
        except OSError:
            return ""


# An /info location: what nginx saw, on one line.
INFO_LOCATION = r"""
        location /info {
            default_type text/plain;
            return 200 "$server_protocol $request_method $request_uri alpn=$ssl_alpn_protocol sni=$ssl_server_name verify=$ssl_client_verify dn=$ssl_client_s_dn\n";
        }
        location = /small.txt {
            root @PREFIX@/www;
        }
"""


def nginx_server(listen_opts="", body=INFO_LOCATION, server_extra="", http_extra=""):
    """An `http {}` body with one server on @LISTEN@."""
    return """
%s
    server {
        listen @LISTEN@ %s;
        server_name _;
%s
%s
        location / {
            return 404;
        }
    }
""" % (http_extra, listen_opts, server_extra, body)


TLS_SERVER = """
        ssl_certificate @CERT@;
        ssl_certificate_key @KEY@;
"""

MTLS_SERVER = TLS_SERVER + """
        ssl_verify_client on;
        ssl_client_certificate @CLIENT_CA@;
"""


class UpstreamConns(object):
    """Samples, with `ss`, the ESTABLISHED TCP connections whose peer port is
    `port` (on loopback that is the client side: the gateway's upstream
    sockets) every `interval` seconds in a thread; .peak is the most seen at
    once, .ports every local port seen."""

    def __init__(self, port, interval=0.02):
        self.port = port
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self.ports = set()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def now(self):
        p = subprocess.run(["ss", "-tnH", "state", "established", "( dport = :%d )" % self.port],
                           capture_output=True, timeout=10)
        ports = set()
        for line in p.stdout.decode().splitlines():
            parts = line.split()
            # Recv-Q Send-Q Local:Port Peer:Port (state is filtered: no column)
            if len(parts) >= 4 and parts[3].endswith(":%d" % self.port):
                ports.add(int(parts[2].rsplit(":", 1)[1]))
        return ports

    def _run(self):
        while not self._stop.is_set():
            ports = self.now()
            self.samples += 1
            self.peak = max(self.peak, len(ports))
            self.ports |= ports
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(15)
        return False


def http_get(conn, path, headers=None, method="GET", body=None):
    """One request on an http.client connection: (status, headers, body)."""
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def http_once(port, path, headers=None, timeout=HTTP_TIMEOUT):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        return http_get(conn, path, headers)
    finally:
        conn.close()


def run_threads(n, fn, timeout=300):
    """Run fn(i) in n threads at once; return the results in order (an
    exception is returned in place of its result)."""
    results = [None] * n
    start = threading.Barrier(n)

    def body(i):
        try:
            start.wait(30)
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise AssertionError("threads still running after %ds" % timeout)
    return results


def gateway_config(services, routes, **top):
    cfg = {"listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
           "services": services, "routes": routes}
    cfg.update(top)
    return cfg


class UpstreamCase(harness.GatewayCase):

    def enter(self, cm):
        return self._stack.enter_context(cm)

    def gateway(self, services, routes, workers=2, **top):
        top.setdefault("drain_timeout_ms", 5000)
        gw = self.enter(harness.Portico(gateway_config(services, routes, **top), workers=workers))
        self.addCleanup(self.check_clean_exit, gw)
        return gw

    def stub(self, gw):
        ch = harness.grpc_channel(gw.addr("main"))
        self._stack.callback(ch.close)
        return protoload.Stub(ch, ECHO)

    def assert_gateway_alive(self, gw):
        self.assertTrue(gw.running(), "gateway exited; stderr:\n%s" % gw.stderr[-3000:])


# ---------------------------------------------------------------------------
# 1. TLS to the upstream


class TestUpstreamTls(UpstreamCase):
    """certs: harness.test_certs() (CA1; server cert for localhost,
    127.0.0.1, ::1; client cert for mTLS). named: its own CA, a server cert
    only for backend.portico.test (so a connection to 127.0.0.1 verifies
    only when server_name is used). other: another CA with a localhost
    cert (untrusted by CA1)."""

    NAME = "backend.portico.test"

    @classmethod
    def setUpClass(cls):
        if DIRECT:
            raise unittest.SkipTest("gateway-only (PORTICO_DIRECT=1)")
        cls._tmp = harness.TempDir(prefix="portico-up-certs-")
        cls.certs = harness.test_certs()
        cls.named = harness.make_certs(cls._tmp.join("named"), dns_names=(cls.NAME,), ips=())
        cls.other = harness.make_certs(cls._tmp.join("other"))

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def tls_service(self, name, instance, protocol="http1", **tls):
        svc = {"name": name, "protocol": protocol, "instances": [instance]}
        if protocol != "h2":
            tls.setdefault("enabled", True)
        svc["tls"] = tls
        return svc

    # (a)
    def test_grpc_over_tls_unary_and_streaming(self):
        be = self.enter(harness.GrpcBackend(tls=self.named))
        gw = self.gateway([self.tls_service("g", be.instance(), "grpc", ca_file=self.named.ca_cert,
                                            server_name=self.NAME)],
                          [{"name": "g", "path_prefix": "/portico.test.Echo", "service": "g"}])
        stub = self.stub(gw)
        r = stub.Echo(Req(message="over tls", payload=harness.pattern(100000)), timeout=RPC_TIMEOUT)
        self.assertEqual(r.message, "over tls")
        self.assertEqual(r.payload, harness.pattern(100000))
        got = list(stub.Stream(Req(message="s", stream_count=30, response_size=20000), timeout=RPC_TIMEOUT))
        self.assertEqual([m.index for m in got], list(range(30)))
        for m in got:
            self.assertEqual(m.payload, harness.pattern(20000, m.index))
        reqs = [Req(message="c%d" % i, payload=harness.pattern(50000, i)) for i in range(20)]
        r = stub.Collect(iter(reqs), timeout=RPC_TIMEOUT)
        self.assertEqual((r.index, r.received_bytes), (20, 20 * 50000))
        chat = list(stub.Chat(iter([Req(message="m%d" % i) for i in range(10)]), timeout=RPC_TIMEOUT))
        self.assertEqual([m.message for m in chat], ["m%d" % i for i in range(10)])
        # Concurrent calls multiplexed on the TLS upstream connection.
        futs = [stub.Echo.future(Req(message="f%d" % i, sleep_ms=200), timeout=RPC_TIMEOUT) for i in range(30)]
        self.assertEqual([f.result().message for f in futs], ["f%d" % i for i in range(30)])

    # (b)
    def test_h2_over_tls_to_nginx_with_http11_client(self):
        ng = self.enter(NginxConf(nginx_server("ssl http2", server_extra=TLS_SERVER), tls=self.named))
        gw = self.gateway([self.tls_service("ng", ng.instance(), "h2", ca_file=self.named.ca_cert,
                                            server_name=self.NAME)],
                          [{"name": "ng", "path_prefix": "/", "service": "ng"}])
        conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=HTTP_TIMEOUT)
        self.addCleanup(conn.close)
        for i in range(5):
            status, headers, body = http_get(conn, "/info?i=%d" % i)
            self.assertEqual(status, 200, body)
            self.assertEqual(body.decode(), "HTTP/2.0 GET /info?i=%d alpn=h2 sni=%s verify=NONE dn=\n"
                             % (i, self.NAME))
        status, _, body = http_get(conn, "/small.txt")
        self.assertEqual((status, body), (200, b"hello from nginx\n"))
        log = ng.access()
        self.assertEqual(len(log), 6, log)
        self.assertTrue(all(e["proto"] == "HTTP/2.0" and e["ssl"].startswith("TLSv1") and e["sni"] == self.NAME
                            for e in log), log)

    # (c)
    def test_http1_over_tls_to_nginx(self):
        ng = self.enter(NginxConf(nginx_server("ssl", server_extra=TLS_SERVER), tls=self.named))
        gw = self.gateway([self.tls_service("ng", ng.instance(), "http1", ca_file=self.named.ca_cert,
                                            server_name=self.NAME)],
                          [{"name": "ng", "path_prefix": "/", "service": "ng"}])
        conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=HTTP_TIMEOUT)
        self.addCleanup(conn.close)
        for i in range(5):
            status, _, body = http_get(conn, "/info?i=%d" % i)
            self.assertEqual(status, 200, body)
            self.assertRegex(body.decode(), r"^HTTP/1\.1 GET /info\?i=%d alpn=\S* sni=%s verify=NONE dn=\n$"
                             % (i, re.escape(self.NAME)))
        # And from an h2c client.
        rc, out, err = wire.curl(["--http2-prior-knowledge", "-w", "|%{http_version} %{http_code}",
                                  gw.url("main") + "/info?h2=1"])
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith(b"HTTP/1.1 GET /info?h2=1 ") and out.endswith(b"|2 200"), out)
        log = ng.access()
        self.assertEqual(len(log), 6, log)
        self.assertTrue(all(e["proto"] == "HTTP/1.1" and e["ssl"].startswith("TLSv1") and e["sni"] == self.NAME
                            for e in log), log)

    # (d)
    def test_verification_failures_http(self):
        # nginx "bad" presents a certificate from another CA; nginx "good" a
        # CA1 certificate for localhost/127.0.0.1.
        bad = self.enter(NginxConf(nginx_server("ssl", server_extra=TLS_SERVER), tls=self.other))
        bad_h2 = self.enter(NginxConf(nginx_server("ssl http2", server_extra=TLS_SERVER), tls=self.other))
        good = self.enter(NginxConf(nginx_server("ssl", server_extra=TLS_SERVER), tls=self.certs))
        ca = self.certs.ca_cert
        services = [
            self.tls_service("bad-ca", bad.instance(), ca_file=ca),
            self.tls_service("bad-ca-h2", bad_h2.instance(), "h2", ca_file=ca),
            self.tls_service("bad-ca-default-store", bad.instance()),
            self.tls_service("skip", bad.instance(), insecure_skip_verify=True),
            self.tls_service("skip-h2", bad_h2.instance(), "h2", insecure_skip_verify=True),
            self.tls_service("wrong-name", good.instance(), ca_file=ca, server_name="wrong.portico.test"),
            self.tls_service("right-name", good.instance(), ca_file=ca, server_name="localhost"),
            self.tls_service("ip-name", good.instance(), ca_file=ca),
        ]
        routes = [{"name": s["name"], "path_prefix": "/" + s["name"], "service": s["name"],
                   "strip_prefix": True} for s in services]
        gw = self.gateway(services, routes)
        expect = {"bad-ca": 503, "bad-ca-h2": 503, "bad-ca-default-store": 503, "skip": 200,
                  "skip-h2": 200, "wrong-name": 503, "right-name": 200, "ip-name": 200}
        got = {}
        for name in expect:
            status, headers, body = http_once(gw.port("main"), "/%s/info?svc=%s" % (name, name))
            got[name] = status
            if status == 503:
                self.assertIn("json", headers.get("content-type", ""), body)
        self.assertEqual(got, expect)
        # The failed handshakes never became requests at the backend.
        seen = [e["uri"] for ng in (bad, bad_h2, good) for e in ng.access()]
        for name, status in expect.items():
            n = sum(1 for u in seen if u == "/info?svc=%s" % name)
            self.assertEqual(n, 1 if status == 200 else 0, (name, seen))
        self.assert_gateway_alive(gw)

    def test_verification_failures_grpc(self):
        bad = self.enter(harness.GrpcBackend(tls=self.other))
        good = self.enter(harness.GrpcBackend(tls=self.certs))
        ca = self.certs.ca_cert
        services = [
            self.tls_service("bad-ca", bad.instance(), "grpc", ca_file=ca),
            self.tls_service("skip", bad.instance(), "grpc", insecure_skip_verify=True),
            self.tls_service("wrong-name", good.instance(), "grpc", ca_file=ca, server_name="wrong.portico.test"),
            self.tls_service("right-name", good.instance(), "grpc", ca_file=ca, server_name="localhost"),
        ]
        routes = [{"name": s["name"], "path_prefix": "/portico.test.Echo", "service": s["name"],
                   "headers": [{"name": "x-svc", "exact": s["name"]}]} for s in services]
        gw = self.gateway(services, routes)
        stub = self.stub(gw)
        got = {}
        for s in services:
            md = (("x-svc", s["name"]),)
            try:
                stub.Echo(Req(message=s["name"]), metadata=md, timeout=RPC_TIMEOUT)
                list(stub.Stream(Req(stream_count=3), metadata=md, timeout=RPC_TIMEOUT))
                got[s["name"]] = grpc.StatusCode.OK
            except grpc.RpcError as err:
                got[s["name"]] = err.code()
        self.assertEqual(got, {"bad-ca": grpc.StatusCode.UNAVAILABLE, "skip": grpc.StatusCode.OK,
                               "wrong-name": grpc.StatusCode.UNAVAILABLE, "right-name": grpc.StatusCode.OK})
        self.assert_gateway_alive(gw)

    # (e)
    def test_mtls_to_nginx(self):
        # nginx requires a client certificate signed by CA1. It completes the
        # TLS handshake without one and answers "400 No required SSL
        # certificate was sent" itself, which the gateway relays.
        ng = self.enter(NginxConf(nginx_server("ssl", server_extra=MTLS_SERVER), tls=self.certs,
                                  client_ca=self.certs.ca_cert))
        ng2 = self.enter(NginxConf(nginx_server("ssl http2", server_extra=MTLS_SERVER), tls=self.certs,
                                   client_ca=self.certs.ca_cert))
        ca = self.certs.ca_cert
        client = {"cert_file": self.certs.client_cert, "key_file": self.certs.client_key}
        services = [
            self.tls_service("mtls", ng.instance(), ca_file=ca, server_name="localhost", **client),
            self.tls_service("mtls-h2", ng2.instance(), "h2", ca_file=ca, server_name="localhost", **client),
            self.tls_service("nocert", ng.instance(), ca_file=ca, server_name="localhost"),
            self.tls_service("nocert-h2", ng2.instance(), "h2", ca_file=ca, server_name="localhost"),
        ]
        routes = [{"name": s["name"], "path_prefix": "/" + s["name"], "service": s["name"],
                   "strip_prefix": True} for s in services]
        gw = self.gateway(services, routes)
        for name, proto in (("mtls", "HTTP/1.1"), ("mtls-h2", "HTTP/2.0")):
            status, _, body = http_once(gw.port("main"), "/%s/info" % name)
            self.assertEqual(status, 200, body)
            text = body.decode()
            self.assertTrue(text.startswith(proto + " GET /info "), text)
            self.assertIn("verify=SUCCESS dn=CN=portico test client", text)
        for name in ("nocert", "nocert-h2"):
            status, _, body = http_once(gw.port("main"), "/%s/info" % name)
            self.assertEqual(status, 400, body)
            self.assertIn(b"No required SSL certificate was sent", body)
        verify = sorted((e["proto"], e["verify"], e["status"]) for e in ng.access() + ng2.access())
        self.assertEqual(verify, [("HTTP/1.1", "NONE", 400), ("HTTP/1.1", "SUCCESS", 200),
                                  ("HTTP/2.0", "NONE", 400), ("HTTP/2.0", "SUCCESS", 200)])
        self.assert_gateway_alive(gw)

    def test_mtls_required_in_handshake(self):
        # A backend that rejects a client without a certificate in the TLS
        # handshake itself: the gateway fails cleanly (502/503), keeps
        # serving, and works with the client certificate configured.
        be = self.enter(harness.HttpBackend(tls=self.certs, extra_args=["--tls-client-ca", self.certs.ca_cert]))
        ca = self.certs.ca_cert
        services = [
            self.tls_service("mtls", be.instance(), ca_file=ca, cert_file=self.certs.client_cert,
                             key_file=self.certs.client_key),
            self.tls_service("nocert", be.instance(), ca_file=ca),
            self.tls_service("wrongcert", be.instance(), ca_file=ca, cert_file=self.other.client_cert,
                             key_file=self.other.client_key),
        ]
        routes = [{"name": s["name"], "path_prefix": "/" + s["name"], "service": s["name"],
                   "strip_prefix": True} for s in services]
        gw = self.gateway(services, routes)
        for round_ in range(2):
            for name in ("nocert", "wrongcert"):
                status, headers, body = http_once(gw.port("main"), "/%s/echo" % name)
                self.assertIn(status, (502, 503), (round_, name, body))
                self.assertIn("json", headers.get("content-type", ""))
            status, _, body = http_once(gw.port("main"), "/mtls/echo")
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)["path"], "/echo")
        self.assertIn("TLS handshake failed", be.log_text())
        self.assert_gateway_alive(gw)


# ---------------------------------------------------------------------------
# 2. GOAWAY from the upstream


class TestUpstreamGoaway(UpstreamCase):
    """nginx h2c with keepalive_requests 5: after the 5th stream of a
    connection it sends GOAWAY and ignores later streams; the gateway must
    retry those (the backend never saw them) on a new connection."""

    N = 300
    CONC = 20

    def start(self):
        ng = self.enter(NginxConf(nginx_server("http2", http_extra="    keepalive_requests 5;")))
        gw = self.gateway([{"name": "ng", "protocol": "h2c", "instances": [ng.instance()]}],
                          [{"name": "ng", "path_prefix": "/", "service": "ng"}])
        return ng, gw

    def check_backend_log(self, ng, tag):
        log = [e for e in ng.access() if e["uri"].startswith("/info?%s&" % tag)]
        uris = collections.Counter(e["uri"] for e in log)
        dup = [u for u, c in uris.items() if c > 1]
        self.assertEqual(dup, [], "requests the backend processed twice")
        self.assertEqual(len(uris), self.N)
        per_conn = collections.Counter(e["conn"] for e in log)
        self.assertLessEqual(max(per_conn.values()), 5, per_conn)
        self.assertGreaterEqual(len(per_conn), self.N // 5, per_conn)
        return per_conn

    def test_h2_client_20_streams(self):
        ng, gw = self.start()
        failures = []
        with wire.H2Conn(HOST, gw.port("main"), settings=wire.BIG_WINDOW) as h:
            h.handshake()
            h.open_windows()
            for batch in range(self.N // self.CONC):
                idx = [batch * self.CONC + k for k in range(self.CONC)]
                got = h.fetch_many([("GET", "/info?h2&i=%d" % i) for i in idx],
                                   first_stream=1 + 2 * batch * self.CONC, timeout=120)
                for k, (sid, st) in enumerate(sorted(got.items())):
                    want = ("HTTP/2.0 GET /info?h2&i=%d " % idx[k]).encode()
                    if st["status"] != 200 or not st["end"] or st["rst"] is not None \
                            or not st["body"].startswith(want):
                        failures.append((idx[k], st["status"], st["rst"], st["body"][:200]))
            self.assertIsNone(h.goaway(), "the gateway sent GOAWAY to its client")
        self.assertEqual(failures, [], "%d of %d requests failed" % (len(failures), self.N))
        self.check_backend_log(ng, "h2")
        self.assert_gateway_alive(gw)

    def test_http1_keepalive_clients(self):
        ng, gw = self.start()
        per = self.N // self.CONC

        def client(c):
            conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=HTTP_TIMEOUT)
            bad = []
            try:
                for k in range(per):
                    i = c * per + k
                    status, _, body = http_get(conn, "/info?h1&i=%d" % i)
                    if status != 200 or not body.startswith(("HTTP/2.0 GET /info?h1&i=%d " % i).encode()):
                        bad.append((i, status, body[:200]))
            finally:
                conn.close()
            return bad

        results = run_threads(self.CONC, client)
        errors = [r for r in results if isinstance(r, BaseException)]
        self.assertEqual(errors, [])
        failures = [b for r in results for b in r]
        self.assertEqual(failures, [], "%d of %d requests failed" % (len(failures), self.N))
        self.check_backend_log(ng, "h1")
        self.assert_gateway_alive(gw)


# ---------------------------------------------------------------------------
# 3. overflow connections (backend stream limit)


class TestOverflowConnections(UpstreamCase):
    """nginx h2c with http2_max_concurrent_streams 4 proxying /slow to the
    HTTP backend (500 ms): 40 concurrent requests need about 10 upstream
    connections to run in parallel."""

    N = 40
    MS = 500

    def start(self):
        be = self.enter(harness.HttpBackend())
        body = """
        location /slow {
            proxy_pass http://127.0.0.1:%d;
        }
""" % be.port
        ng = self.enter(NginxConf(nginx_server("http2", body=body, http_extra="    http2_max_concurrent_streams 4;")))
        gw = self.gateway([{"name": "ng", "protocol": "h2c", "instances": [ng.instance()]}],
                          [{"name": "ng", "path_prefix": "/", "service": "ng"}], workers=1)
        return ng, gw

    def check(self, ng, conns, elapsed, tag):
        log = [e for e in ng.access() if e["uri"].startswith("/slow?ms=%d&%s&" % (self.MS, tag))]
        self.assertEqual(len(log), self.N, log)
        self.assertTrue(all(e["status"] == 200 for e in log), log)
        per_conn = collections.Counter(e["conn"] for e in log)
        self.assertGreater(len(per_conn), 1, "one upstream connection for %d streams with a limit of 4" % self.N)
        self.assertGreater(conns.peak, 1, "ss never saw more than one upstream connection")
        serial = self.N * self.MS / 1000.0
        self.assertLess(elapsed, serial / 3.0, "%d x %d ms took %.1fs: not parallel" % (self.N, self.MS, elapsed))
        return per_conn

    def test_h2_client_40_streams(self):
        ng, gw = self.start()
        with wire.H2Conn(HOST, gw.port("main"), settings=wire.BIG_WINDOW) as h:
            h.handshake()
            h.open_windows()
            with UpstreamConns(ng.port) as conns:
                t0 = time.monotonic()
                got = h.fetch_many([("GET", "/slow?ms=%d&h2&i=%d" % (self.MS, i)) for i in range(self.N)],
                                   timeout=120)
                elapsed = time.monotonic() - t0
        bad = [(sid, st["status"], st["rst"]) for sid, st in got.items()
               if st["status"] != 200 or st["rst"] is not None or not st["end"]]
        self.assertEqual(bad, [])
        per_conn = self.check(ng, conns, elapsed, "h2")
        sys_msg = "upstream connections: ss peak %d, nginx saw %d" % (conns.peak, len(per_conn))
        self.assertGreaterEqual(len(per_conn), 5, sys_msg)

    def test_http1_clients_40(self):
        ng, gw = self.start()

        def client(i):
            return http_once(gw.port("main"), "/slow?ms=%d&h1&i=%d" % (self.MS, i))[0]

        with UpstreamConns(ng.port) as conns:
            t0 = time.monotonic()
            results = run_threads(self.N, client)
            elapsed = time.monotonic() - t0
        self.assertEqual(results, [200] * self.N)
        self.check(ng, conns, elapsed, "h1")


# ---------------------------------------------------------------------------
# 4. connection limit per endpoint


class TestConnectionLimit(UpstreamCase):
    """max_connections: 2 (per worker and instance; one worker here) to an
    HTTP/1.1 backend: 10 concurrent 1 s requests queue for the 2
    connections: about 5 s, never more than 2 connections."""

    N = 10
    MS = 1000

    def start(self):
        be = self.enter(harness.HttpBackend())
        gw = self.gateway([{"name": "web", "instances": [be.instance()], "max_connections": 2}],
                          [{"name": "web", "path_prefix": "/", "service": "web"}], workers=1)
        return be, gw

    def check(self, conns, elapsed):
        self.assertLessEqual(conns.peak, 2, "more than max_connections upstream connections")
        self.assertGreaterEqual(conns.peak, 1)
        self.assertGreater(conns.samples, 10)
        slow = self.MS / 1000.0
        # 10 requests over 2 connections: 5 rounds. Fewer than 5 rounds
        # means the limit was not applied; 10 means one connection.
        self.assertGreaterEqual(elapsed, 4.5 * slow, "%.2fs: the limit of 2 was not applied" % elapsed)
        self.assertLess(elapsed, 9.0 * slow, "%.2fs: requests were not served 2 at a time" % elapsed)

    def test_http1_clients_queue(self):
        be, gw = self.start()
        with UpstreamConns(be.port) as conns:
            t0 = time.monotonic()
            results = run_threads(self.N, lambda i: http_once(gw.port("main"), "/slow?ms=%d" % self.MS)[0])
            elapsed = time.monotonic() - t0
        self.assertEqual(results, [200] * self.N)
        self.check(conns, elapsed)
        self.assertLessEqual(len(conns.ports), 2, "connections were replaced: %s" % sorted(conns.ports))

    def test_h2_client_queue(self):
        be, gw = self.start()
        with wire.H2Conn(HOST, gw.port("main"), settings=wire.BIG_WINDOW) as h:
            h.handshake()
            h.open_windows()
            with UpstreamConns(be.port) as conns:
                t0 = time.monotonic()
                got = h.fetch_many([("GET", "/slow?ms=%d" % self.MS)] * self.N, timeout=120)
                elapsed = time.monotonic() - t0
        self.assertEqual([(st["status"], st["rst"]) for st in got.values()], [(200, None)] * self.N)
        self.check(conns, elapsed)


# ---------------------------------------------------------------------------
# 5. round robin


class TestRoundRobin(UpstreamCase):

    def test_three_instances_even_spread(self):
        bes = [self.enter(harness.HttpBackend(server_id=n)) for n in ("rr-a", "rr-b", "rr-c")]
        gw = self.gateway([{"name": "web", "instances": [b.instance() for b in bes]}],
                          [{"name": "web", "path_prefix": "/", "service": "web"}])
        counts = collections.Counter()
        lock = threading.Lock()

        def client(c):
            conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=HTTP_TIMEOUT)
            try:
                for _ in range(30):
                    status, _, body = http_get(conn, "/echo")
                    with lock:
                        counts[json.loads(body)["server_id"] if status == 200 else status] += 1
            finally:
                conn.close()

        results = run_threads(10, client)
        self.assertEqual([r for r in results if r is not None], [])
        self.assertEqual(sum(counts.values()), 300)
        self.assertEqual(set(counts), {"rr-a", "rr-b", "rr-c"}, counts)
        for sid in ("rr-a", "rr-b", "rr-c"):
            self.assertLessEqual(abs(counts[sid] - 100), 5, counts)

    def test_down_instance_does_not_fail_requests(self):
        # No retry_count on the route: a connect failure is retried on
        # another instance implicitly (the backend cannot have seen it).
        a = self.enter(harness.HttpBackend(server_id="up-a"))
        c = self.enter(harness.HttpBackend(server_id="up-c"))
        down = {"host": HOST, "port": harness.free_port()}
        gw = self.gateway([{"name": "web", "instances": [a.instance(), down, c.instance()]}],
                          [{"name": "web", "path_prefix": "/", "service": "web"}])
        counts = collections.Counter()
        for i in range(100):
            status, _, body = http_once(gw.port("main"), "/echo?i=%d" % i)
            counts[json.loads(body)["server_id"] if status == 200 else status] += 1
        self.assertEqual(counts["up-a"] + counts["up-c"], 100, counts)
        self.assertGreater(counts["up-a"], 20, counts)
        self.assertGreater(counts["up-c"], 20, counts)
        # The same over one keep-alive connection and over h2.
        conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=HTTP_TIMEOUT)
        self.addCleanup(conn.close)
        statuses = [http_get(conn, "/echo")[0] for _ in range(30)]
        self.assertEqual(statuses, [200] * 30)
        with wire.H2Conn(HOST, gw.port("main"), settings=wire.BIG_WINDOW) as h:
            h.handshake()
            h.open_windows()
            got = h.fetch_many([("GET", "/echo")] * 30, timeout=120)
        self.assertEqual([(st["status"], st["rst"]) for st in got.values()], [(200, None)] * 30)

    def test_down_instance_grpc(self):
        a = self.enter(harness.GrpcBackend(server_id="g-a"))
        c = self.enter(harness.GrpcBackend(server_id="g-c"))
        down = {"host": HOST, "port": harness.free_port()}
        gw = self.gateway([{"name": "g", "protocol": "grpc", "instances": [a.instance(), down, c.instance()]}],
                          [{"name": "g", "path_prefix": "/portico.test.Echo", "service": "g"}])
        stub = self.stub(gw)
        ids = collections.Counter(stub.Echo(Req(message="x"), timeout=RPC_TIMEOUT).server_id for _ in range(60))
        self.assertEqual(sum(ids.values()), 60)
        self.assertEqual(set(ids), {"g-a", "g-c"}, ids)


# ---------------------------------------------------------------------------
# 6. cancellation and resets


class TestCancellationAndResets(UpstreamCase):

    def test_http1_client_disconnect_closes_upstream(self):
        be = self.enter(harness.HttpBackend())
        gw = self.gateway([{"name": "web", "instances": [be.instance()]}],
                          [{"name": "web", "path_prefix": "/", "service": "web"}], workers=1)
        probe = UpstreamConns(be.port)
        # A 30 s chunked response (600 x 1 KiB, 50 ms apart) and a 64 MiB one.
        for path in ("/chunked?n=600&size=1024&delay_ms=50", "/bytes?n=%d" % (64 * MiB),
                     "/chunked?n=600&size=1024&delay_ms=50"):
            with self.subTest(path=path):
                c = wire.RawConn(HOST, gw.port("main"), timeout=30)
                try:
                    c.send(wire.request_bytes("GET", path))
                    head = c.read_until(b"\r\n\r\n")
                    self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
                    c.read_exact(16 * 1024)
                    self.assertEqual(len(probe.now()), 1)
                finally:
                    c.close()
                t0 = time.monotonic()
                harness.wait_until(lambda: not probe.now(), timeout=10,
                                   message="the upstream connection to close after the client left")
                self.assertLess(time.monotonic() - t0, 10)
                status, _, body = http_once(gw.port("main"), "/echo")
                self.assertEqual(status, 200, body)
                self.assertEqual(json.loads(body)["connection_requests"], 1,
                                 "the aborted connection went back to the pool")
        self.assert_gateway_alive(gw)

    def reset_nginx(self, raw_port, extra_locations=""):
        body = INFO_LOCATION + """
        location = /reset {
            proxy_pass http://127.0.0.1:%d/truncate-length?send=20000&total=1000000&hold_ms=500;
            proxy_buffering off;
        }
%s
""" % (raw_port, extra_locations)
        return self.enter(NginxConf(nginx_server("http2", body=body)))

    def test_h2_backend_resets_stream_mid_response(self):
        raw = self.enter(wire.RawBackend())
        ng = self.reset_nginx(raw.port)
        gw = self.gateway([{"name": "ng", "protocol": "h2c", "instances": [ng.instance()]}],
                          [{"name": "ng", "path_prefix": "/", "service": "ng"}], workers=1)
        # Warm up: one upstream connection exists.
        self.assertEqual(http_once(gw.port("main"), "/info?warm")[0], 200)
        with wire.H2Conn(HOST, gw.port("main"), settings=wire.BIG_WINDOW) as h:
            h.handshake()
            h.open_windows()
            reqs = [("GET", "/reset")] + [("GET", "/info?during&i=%d" % i) for i in range(10)]
            got = h.fetch_many(reqs, timeout=60)
            st = got[1]
            self.assertIsNotNone(st["rst"], "the client's stream was not reset: %r" % (st,))
            self.assertFalse(st["end"], "a reset response ended normally: %r" % (st,))
            # Mid-response: the head and part of the body came first.
            self.assertEqual(st["status"], 200)
            self.assertGreater(len(st["body"]), 0)
            self.assertLess(len(st["body"]), 1000000)
            self.assertTrue(st["body"] == harness.pattern(len(st["body"])))
            for i in range(10):
                o = got[3 + 2 * i]
                self.assertEqual((o["status"], o["rst"], o["end"]), (200, None, True), o)
                self.assertTrue(o["body"].startswith(b"HTTP/2.0 GET /info?during&i=%d " % i), o["body"])
            after = h.fetch_many([("GET", "/info?after")], first_stream=101, timeout=60)[101]
            self.assertEqual((after["status"], after["rst"]), (200, None))
            self.assertIsNone(h.goaway())
        # nginx writes a request's log line after sending its response: wait
        # for the last one rather than racing it.
        harness.wait_until(lambda: any(e["uri"] == "/info?after" for e in ng.access()),
                           timeout=10, message="nginx's log line for /info?after")
        log = ng.access()
        conn_of = {e["uri"]: e["conn"] for e in log}
        self.assertIn("/reset", conn_of, log)
        self.assertEqual(len({e["conn"] for e in log}), 1,
                         "the reset closed the upstream connection: %s" % log)
        self.assertEqual(conn_of["/info?after"], conn_of["/reset"])

    def test_h2_backend_reset_seen_by_http1_client(self):
        raw = self.enter(wire.RawBackend())
        ng = self.reset_nginx(raw.port)
        gw = self.gateway([{"name": "ng", "protocol": "h2c", "instances": [ng.instance()]}],
                          [{"name": "ng", "path_prefix": "/", "service": "ng"}], workers=1)
        r, closed, _ = wire.exchange(HOST, gw.port("main"), wire.request_bytes("GET", "/reset"), timeout=30)
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 200)
        self.assertFalse(r.complete, "a reset response looked complete to the HTTP/1.1 client")
        self.assertTrue(closed)
        self.assertEqual(http_once(gw.port("main"), "/info?after")[0], 200)
        self.assertEqual(len({e["conn"] for e in ng.access()}), 1, ng.access())

    def test_grpc_backend_reset(self):
        be = self.enter(harness.GrpcBackend())
        raw = self.enter(wire.RawBackend())
        body = """
        location = /portico.test.Echo/Stream {
            proxy_pass http://127.0.0.1:%d/truncate-length?ctype=application/grpc&send=20000&total=1000000&hold_ms=500;
            proxy_buffering off;
        }
        location /portico.test.Echo/ {
            grpc_pass grpc://127.0.0.1:%d;
        }
""" % (raw.port, be.port)
        ng = self.enter(NginxConf(nginx_server("http2", body=body)))
        gw = self.gateway([{"name": "g", "protocol": "grpc", "instances": [ng.instance()]}],
                          [{"name": "g", "path_prefix": "/portico.test.Echo", "service": "g"}], workers=1)
        stub = self.stub(gw)
        self.assertEqual(stub.Echo(Req(message="warm"), timeout=RPC_TIMEOUT).message, "warm")
        during = [stub.Echo.future(Req(message="during%d" % i, sleep_ms=1500), timeout=RPC_TIMEOUT)
                  for i in range(5)]
        with self.assertRaises(grpc.RpcError) as cm:
            list(stub.Stream(Req(stream_count=5), timeout=RPC_TIMEOUT))
        code = cm.exception.code()
        # Which of the three the gateway gives is reported, not prescribed.
        sys.stderr.write("[gRPC client saw %s: %r] " % (code, cm.exception.details()))
        self.assertIn(code, (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED),
                      cm.exception)
        self.assertEqual([f.result().message for f in during], ["during%d" % i for i in range(5)])
        self.assertEqual(stub.Echo(Req(message="after"), timeout=RPC_TIMEOUT).message, "after")
        conns = {e["conn"] for e in ng.access()}
        self.assertEqual(len(conns), 1, "the reset closed the upstream connection: %s" % ng.access())
        self.assertEqual(len(ng.access()), 8, ng.access())


# ---------------------------------------------------------------------------
# 7. reuse


class TestReuse(UpstreamCase):

    N = 200

    def test_http1_keepalive_sequential(self):
        be = self.enter(harness.HttpBackend())
        gw = self.gateway([{"name": "web", "instances": [be.instance()]}],
                          [{"name": "web", "path_prefix": "/", "service": "web"}])
        conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=HTTP_TIMEOUT)
        self.addCleanup(conn.close)
        peers = collections.Counter()
        for i in range(self.N):
            status, _, body = http_get(conn, "/echo?i=%d" % i)
            self.assertEqual(status, 200, body)
            peers[json.loads(body)["peer"]] += 1
        self.assertLessEqual(len(peers), 2, peers)

    def test_new_client_connections_share_upstream(self):
        # Every request on a new downstream connection (spread over 2
        # workers): the upstream connections are pooled per worker.
        be = self.enter(harness.HttpBackend())
        gw = self.gateway([{"name": "web", "instances": [be.instance()]}],
                          [{"name": "web", "path_prefix": "/", "service": "web"}])
        peers = collections.Counter()
        for i in range(self.N):
            status, _, body = http_once(gw.port("main"), "/echo?i=%d" % i)
            self.assertEqual(status, 200, body)
            peers[json.loads(body)["peer"]] += 1
        self.assertLessEqual(len(peers), 4, peers)

    def test_h2c_client_to_http1_backend_sequential(self):
        be = self.enter(harness.HttpBackend())
        gw = self.gateway([{"name": "web", "instances": [be.instance()]}],
                          [{"name": "web", "path_prefix": "/", "service": "web"}])
        peers = collections.Counter()
        with wire.H2Conn(HOST, gw.port("main"), settings=wire.BIG_WINDOW) as h:
            h.handshake()
            h.open_windows()
            for i in range(self.N):
                st = h.fetch_many([("GET", "/echo?i=%d" % i)], first_stream=1 + 2 * i, timeout=60)[1 + 2 * i]
                self.assertEqual((st["status"], st["rst"]), (200, None))
                peers[json.loads(st["body"])["peer"]] += 1
        self.assertLessEqual(len(peers), 2, peers)

    def test_h2c_upstream_sequential(self):
        ng = self.enter(NginxConf(nginx_server("http2")))
        gw = self.gateway([{"name": "ng", "protocol": "h2c", "instances": [ng.instance()]}],
                          [{"name": "ng", "path_prefix": "/", "service": "ng"}])
        with wire.H2Conn(HOST, gw.port("main"), settings=wire.BIG_WINDOW) as h:
            h.handshake()
            h.open_windows()
            for i in range(self.N):
                st = h.fetch_many([("GET", "/info?h2&i=%d" % i)], first_stream=1 + 2 * i, timeout=60)[1 + 2 * i]
                self.assertEqual((st["status"], st["rst"]), (200, None))
        conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=HTTP_TIMEOUT)
        self.addCleanup(conn.close)
        for i in range(self.N):
            status, _, body = http_get(conn, "/info?h1&i=%d" % i)
            self.assertEqual(status, 200, body)
        log = ng.access()
        for tag in ("h2", "h1"):
            conns = collections.Counter(e["conn"] for e in log if e["uri"].startswith("/info?%s&" % tag))
            self.assertEqual(sum(conns.values()), self.N)
            self.assertLessEqual(len(conns), 2, (tag, conns))
        # Both clients (possibly on different workers) together: at most one
        # connection per worker.
        self.assertLessEqual(len({e["conn"] for e in log}), 2, log[:5])


if __name__ == "__main__":
    unittest.main()
