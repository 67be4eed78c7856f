"""Per-route statistics and Prometheus metrics, read through the admin API
(portico.admin.v1.Admin/GetMetrics and GetRouteStats, see
proto/portico/admin/v1/admin.proto) after real traffic through the gateway.

Traffic: route "app" forwards /status/... to a live HTTP backend (200 and
404 answers), route "broken" forwards to a port nothing listens on (the
gateway answers 5xx: upstream errors), and /nothing matches no route
(counted under the no-route pseudo-route: route "" in Metrics.routes,
route="(none)" in the Prometheus text).

Checks: counts per status class, upstream errors, in_flight back to 0,
plausible latency quantiles, the Prometheus text (the route's counters;
`promtool check metrics` when promtool -- Debian package `prometheus` -- is
installed), counters kept across an unrelated reload (SIGHUP with one more
route) and gone once their route is removed.

The admin messages are built from a FileDescriptorSet that protoc writes at
test time (cached under PORTICO_PROTO_CACHE): generated Python modules would
need google.api's Python package, which Debian does not ship, and a
generated google/ package would shadow google.protobuf.

Gateway-only (skipped with PORTICO_DIRECT=1).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_metrics
"""

import hashlib
import http.client
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import harness

DIRECT = harness.DIRECT
HOST = "127.0.0.1"
PROTO_DIR = os.path.join(harness.REPO_ROOT, "proto")
ADMIN_PROTO = "portico/admin/v1/admin.proto"
RPC_TIMEOUT = 30.0
HTTP_TIMEOUT = 30.0

N_OK, N_NOT_FOUND, N_BROKEN, N_NO_ROUTE = 20, 10, 5, 3


def _admin_descriptor_set():
    """Serialized FileDescriptorSet of admin.proto and its imports, made by
    protoc once per input hash and cached."""
    protoc = os.environ.get("PROTOC", shutil.which("protoc") or "protoc")
    h = hashlib.sha256()
    h.update(subprocess.run([protoc, "--version"], capture_output=True, timeout=60).stdout)
    h.update(b"admin.proto + google/rpc status and error details")
    for root, _dirs, files in sorted(os.walk(PROTO_DIR)):
        for f in sorted(files):
            if f.endswith(".proto"):
                with open(os.path.join(root, f), "rb") as fh:
                    h.update(f.encode() + b"\0" + fh.read())
    base = os.environ.get("PORTICO_PROTO_CACHE") or os.path.join(
        tempfile.gettempdir(), "portico-protogen-%d" % os.getuid())
    os.makedirs(base, exist_ok=True)
    out = os.path.join(base, "admin-%s.pb" % h.hexdigest()[:24])
    if not os.path.exists(out):
        fd, tmp = tempfile.mkstemp(prefix=".admin-", dir=base)
        os.close(fd)
        try:
            proc = subprocess.run(
                [protoc, "-I" + PROTO_DIR, "-I" + os.path.join(PROTO_DIR, "third_party"),
                 "--include_imports", "--descriptor_set_out=" + tmp, ADMIN_PROTO,
                 "google/rpc/status.proto", "google/rpc/error_details.proto"],
                capture_output=True, text=True, timeout=60)
            if proc.returncode != 0:
                raise RuntimeError("protoc failed:\n" + proc.stderr)
            os.rename(tmp, out)  # atomic: concurrent runs write identical bytes
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    with open(out, "rb") as f:
        return f.read()


def load_admin_messages():
    """{full message name: class} for admin.proto and its imports, built in
    a private descriptor pool (nothing registered globally)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(_admin_descriptor_set())
    pool = descriptor_pool.DescriptorPool()
    get_class = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    if get_class is None:
        get_class = message_factory.MessageFactory(pool).GetPrototype
    out = {}

    def add(desc):
        out[desc.full_name] = get_class(desc)
        for nested in desc.nested_types:
            add(nested)
    for fp in fds.file:  # dependencies come first in the set
        pool.Add(fp)
    for fp in fds.file:
        for desc in pool.FindFileByName(fp.name).message_types_by_name.values():
            add(desc)
    return out


def _msgs():
    if not hasattr(_msgs, "cache"):
        _msgs.cache = load_admin_messages()
    return _msgs.cache


class AdminClient(object):
    def __init__(self, address):
        m = _msgs()
        self.m = m
        self.channel = grpc.insecure_channel(address)
        self.get_metrics = self.channel.unary_unary(
            "/portico.admin.v1.Admin/GetMetrics",
            request_serializer=m["portico.admin.v1.GetMetricsRequest"].SerializeToString,
            response_deserializer=m["portico.admin.v1.Metrics"].FromString)
        self.get_route_stats = self.channel.unary_unary(
            "/portico.admin.v1.Admin/GetRouteStats",
            request_serializer=m["portico.admin.v1.GetRouteStatsRequest"].SerializeToString,
            response_deserializer=m["portico.admin.v1.RouteStats"].FromString)

    def metrics(self):
        return self.get_metrics(self.m["portico.admin.v1.GetMetricsRequest"](),
                                timeout=RPC_TIMEOUT)

    def route_stats(self, name):
        return self.get_route_stats(self.m["portico.admin.v1.GetRouteStatsRequest"](route_id=name),
                                    timeout=RPC_TIMEOUT)

    def close(self):
        self.channel.close()


def parse_prometheus(text):
    """{(name, frozenset(labels.items())): value} of the sample lines."""
    out = {}
    rx = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    lrx = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = rx.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        labels = {}
        if m.group(2):
            for lm in lrx.finditer(m.group(2)):
                labels[lm.group(1)] = (lm.group(2).replace("\\n", "\n").replace('\\"', '"')
                                       .replace("\\\\", "\\"))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def sample(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def http_get(port, path):
    conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT)
    try:
        conn.request("GET", path, headers={"Host": "gw.test"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@unittest.skipIf(DIRECT, "gateway-only")
class MetricsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.backend = cls.gw = cls.admin = None
        try:
            cls.backend = harness.HttpBackend().start()
            cls.dead_port = harness.free_port(HOST)  # nothing listens there
            admin_port = harness.free_port(HOST)
            cls.admin_addr = "%s:%d" % (HOST, admin_port)
            cls.gw = harness.Portico(cls.config(extra_route=False)).start()
            harness.wait_until(lambda: harness.can_connect(HOST, admin_port), timeout=20,
                               message="admin service listening on " + cls.admin_addr)
            cls.admin = AdminClient(cls.admin_addr)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.admin is not None:
            cls.admin.close()
        try:
            if cls.gw is not None:
                cls.gw.__exit__(None, None, None)
        finally:
            if cls.backend is not None:
                cls.backend.stop()

    @classmethod
    def config(cls, extra_route=False, broken=True):
        routes = [{"name": "app", "path_prefix": "/status", "service": "up"}]
        if broken:
            routes.append({"name": "broken", "path_prefix": "/broken", "service": "down"})
        if extra_route:
            routes.append({"name": "extra", "path_prefix": "/echo", "service": "up"})
        return {
            "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1"]}],
            "admin": {"address": cls.admin_addr},
            "services": [
                {"name": "up", "instances": [cls.backend.instance()]},
                {"name": "down", "connect_timeout_ms": 2000,
                 "instances": [{"host": HOST, "port": cls.dead_port}]},
            ],
            "routes": routes,
        }

    def route(self, metrics, name):
        found = [r for r in metrics.routes if r.route == name]
        self.assertLessEqual(len(found), 1, "route %r listed twice" % name)
        return found[0] if found else None

    def send_traffic(self):
        port = self.gw.port("main")
        statuses = []
        for _ in range(N_OK):
            statuses.append(http_get(port, "/status/200"))
        for _ in range(N_NOT_FOUND):
            statuses.append(http_get(port, "/status/404"))
        for i in range(N_BROKEN):
            statuses.append(http_get(port, "/broken/%d" % i))
        for _ in range(N_NO_ROUTE):
            statuses.append(http_get(port, "/nothing"))
        self.assertEqual(statuses[:N_OK], [200] * N_OK)
        self.assertEqual(statuses[N_OK:N_OK + N_NOT_FOUND], [404] * N_NOT_FOUND)
        for s in statuses[N_OK + N_NOT_FOUND:N_OK + N_NOT_FOUND + N_BROKEN]:
            self.assertTrue(500 <= s < 600, statuses)
        self.assertEqual(statuses[-N_NO_ROUTE:], [404] * N_NO_ROUTE)

    def wait_settled(self, name, requests):
        """The stats of `name` once `requests` completed and none is in flight
        (the access-log style hook runs after the response is written)."""
        last = [None]

        def ok():
            last[0] = self.admin.route_stats(name)
            return last[0].requests >= requests and last[0].in_flight == 0
        harness.wait_until(ok, timeout=10, message="%s: %d requests settled" % (name, requests))
        return last[0]

    def test_1_counts_latency_and_prometheus_text(self):
        self.send_traffic()
        app = self.wait_settled("app", N_OK + N_NOT_FOUND)
        self.assertEqual(app.route, "app")
        self.assertEqual(app.requests, N_OK + N_NOT_FOUND)
        self.assertEqual(app.responses_2xx, N_OK)
        self.assertEqual(app.responses_4xx, N_NOT_FOUND)
        self.assertEqual((app.responses_1xx, app.responses_3xx, app.responses_5xx), (0, 0, 0))
        self.assertEqual(app.upstream_errors, 0)
        self.assertEqual(app.in_flight, 0)
        self.assertEqual(app.bytes_in, 0)
        self.assertGreater(app.bytes_out, 0)
        self.assertGreater(app.latency_ms_p50, 0)
        self.assertLessEqual(app.latency_ms_p50, app.latency_ms_p90)
        self.assertLessEqual(app.latency_ms_p90, app.latency_ms_p99)
        self.assertLess(app.latency_ms_p99, 5000)
        self.assertGreater(app.latency_ms_mean, 0)
        self.assertLess(app.latency_ms_mean, 5000)

        broken = self.wait_settled("broken", N_BROKEN)
        self.assertEqual(broken.requests, N_BROKEN)
        self.assertEqual(broken.responses_5xx, N_BROKEN)
        self.assertEqual(broken.upstream_errors, N_BROKEN)
        self.assertEqual(broken.responses_2xx + broken.responses_4xx, 0)
        self.assertEqual(broken.in_flight, 0)

        m = self.admin.metrics()
        none = self.route(m, "")
        self.assertIsNotNone(none, "no-route pseudo-route missing from Metrics.routes")
        self.assertEqual(none.responses_4xx, N_NO_ROUTE)
        self.assertEqual(none.upstream_errors, 0)
        self.assertEqual(self.route(m, "app").requests, N_OK + N_NOT_FOUND)
        self.assertGreaterEqual(m.snapshot_generation, 1)
        self.assertGreater(m.uptime_seconds, 0)

        s = parse_prometheus(m.prometheus_text)
        self.assertEqual(sample(s, "portico_requests_total", route="app", code_class="2xx"), N_OK)
        self.assertEqual(sample(s, "portico_requests_total", route="app", code_class="4xx"),
                         N_NOT_FOUND)
        self.assertEqual(sample(s, "portico_requests_total", route="broken", code_class="5xx"),
                         N_BROKEN)
        self.assertEqual(sample(s, "portico_requests_total", route="(none)", code_class="4xx"),
                         N_NO_ROUTE)
        self.assertEqual(sample(s, "portico_upstream_errors_total", route="broken"), N_BROKEN)
        self.assertEqual(sample(s, "portico_upstream_errors_total", route="app"), 0)
        self.assertEqual(sample(s, "portico_requests_in_flight", route="app"), 0)
        self.assertEqual(sample(s, "portico_request_duration_seconds_count", route="app"),
                         N_OK + N_NOT_FOUND)
        self.assertEqual(sample(s, "portico_request_duration_seconds_bucket", route="app", le="+Inf"),
                         N_OK + N_NOT_FOUND)
        self.assertGreater(sample(s, "portico_request_duration_seconds_sum", route="app"), 0)
        self.assertEqual(sample(s, "portico_bytes_sent_total", route="app"), app.bytes_out)
        self.assertIsNotNone(sample(s, "portico_bytes_received_total", route="app"))
        self.assertEqual(sample(s, "portico_snapshot_generation"), m.snapshot_generation)
        self.assertEqual(sample(s, "portico_config_version"), m.config_version)
        self.assertEqual(sample(s, "portico_connections"), m.connections)
        self.assertIsNotNone(sample(s, "portico_uptime_seconds"))

    def test_2_prometheus_text_passes_promtool(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool not installed (Debian package prometheus)")
        http_get(self.gw.port("main"), "/status/200")
        text = self.admin.metrics().prometheus_text
        proc = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                              capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stdout.decode() + proc.stderr.decode())

    def test_3_counters_survive_reload_and_vanish_with_their_route(self):
        port = self.gw.port("main")
        for _ in range(3):
            self.assertEqual(http_get(port, "/status/200"), 200)
        before = self.wait_settled("app", 3)
        gen = self.admin.metrics().snapshot_generation

        # Unrelated change: one more route. "app" keeps its counters.
        self.gw.reload(self.config(extra_route=True), wait_for=None, settle=0)
        harness.wait_until(lambda: self.admin.metrics().snapshot_generation > gen, timeout=10,
                           message="new snapshot after SIGHUP")
        harness.wait_until(lambda: self.route(self.admin.metrics(), "extra") is not None,
                           timeout=10, message="route extra listed")
        after = self.admin.route_stats("app")
        self.assertEqual(after.requests, before.requests)
        self.assertEqual(after.responses_2xx, before.responses_2xx)
        self.assertEqual(self.admin.route_stats("extra").requests, 0)
        self.assertEqual(http_get(port, "/echo/x"), 200)
        self.assertEqual(http_get(port, "/status/200"), 200)
        self.assertEqual(self.wait_settled("app", before.requests + 1).requests,
                         before.requests + 1)
        self.assertEqual(self.wait_settled("extra", 1).responses_2xx, 1)

        # Remove "broken": its statistics disappear everywhere.
        self.assertIsNotNone(self.route(self.admin.metrics(), "broken"))
        gen = self.admin.metrics().snapshot_generation
        self.gw.reload(self.config(extra_route=True, broken=False), wait_for=None, settle=0)
        harness.wait_until(lambda: self.admin.metrics().snapshot_generation > gen, timeout=10,
                           message="new snapshot after SIGHUP")
        harness.wait_until(lambda: self.route(self.admin.metrics(), "broken") is None,
                           timeout=10, message="route broken no longer listed")
        with self.assertRaises(grpc.RpcError) as ctx:
            self.admin.route_stats("broken")
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.NOT_FOUND)
        text = self.admin.metrics().prometheus_text
        self.assertNotIn('route="broken"', text)
        self.assertIn('route="app"', text)
        self.assertEqual(self.admin.route_stats("app").requests, before.requests + 1)


if __name__ == "__main__":
    unittest.main()
