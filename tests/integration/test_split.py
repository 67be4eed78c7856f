"""Choosing the service per request: traffic splits (by weight at random,
sticky by header, cookie or IP, overrides) and API versions (path with and
without strip, header, Accept, query, default, unknown), against real HTTP
and gRPC backends that report their server_id. The access log's "service"
field names the service each request went to. Gateway: 2 workers.

All gateway-only (skipped with PORTICO_DIRECT=1).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_split
"""

import collections
import contextlib
import http.client
import json
import threading
import time
import unittest

import grpc

import harness
import protoload
from adminclient import AdminClient

HOST = "127.0.0.1"
TIMEOUT = 30.0
RPC_TIMEOUT = 30.0

echo_pb2 = harness.load_echo()
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"]


def get(conn, path, headers=None):
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    return r.status, body


class SplitCase(unittest.TestCase):

    def setUp(self):
        if harness.DIRECT:
            self.skipTest("gateway-only (PORTICO_DIRECT=1)")
        self._stack = contextlib.ExitStack()
        self.addCleanup(self._stack.close)

    def backends(self, names):
        return {n: self._stack.enter_context(harness.HttpBackend(server_id=n)) for n in names}

    def config(self, bes, routes, protocols=("http1",)):
        return {"listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": list(protocols)}],
                "services": [{"name": n, "instances": [b.instance()]} for n, b in bes.items()],
                "routes": routes,
                "drain_timeout_ms": 5000}

    def gateway(self, cfg):
        gw = self._stack.enter_context(harness.Portico(cfg, workers=2))
        self.addCleanup(self.check_clean_exit, gw)
        return gw

    def check_clean_exit(self, gw):
        rc = gw.stop(timeout=60) if gw.running() else gw.proc.returncode
        self.assertEqual(rc, 0, "gateway exit status %s; stderr tail:\n%s" % (rc, gw.stderr[-4000:]))

    def spread(self, gw, total, threads=4, headers_for=None, path="/echo"):
        """Send `total` GET `path` over `threads` keep-alive connections
        (bounded: each connection's requests have a timeout); return a
        Counter of server ids and {request headers: set(ids)}."""
        counts = collections.Counter()
        by_key = collections.defaultdict(set)
        lock = threading.Lock()
        errors = []

        def run(t):
            conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=TIMEOUT)
            try:
                for k in range(t, total, threads):
                    h = headers_for(k) if headers_for else None
                    status, body = get(conn, path, h)
                    if status != 200:
                        raise AssertionError("status %d: %r" % (status, body[:200]))
                    sid = json.loads(body)["server_id"]
                    with lock:
                        counts[sid] += 1
                        if h:
                            by_key[tuple(sorted(h.items()))].add(sid)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                conn.close()

        ts = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(300)
        self.assertFalse(any(t.is_alive() for t in ts), "load threads did not finish")
        self.assertEqual(errors, [])
        self.assertEqual(sum(counts.values()), total)
        return counts, by_key

    def one(self, gw, path, headers=None):
        conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=TIMEOUT)
        try:
            status, body = get(conn, path, headers)
            return status, json.loads(body) if body else None
        finally:
            conn.close()


class TestSplit(SplitCase):

    def test_random_split_90_10_within_2_percent(self):
        bes = self.backends(["stable", "canary"])
        gw = self.gateway(self.config(bes, [{"name": "web", "path_prefix": "/", "splits": [
            {"service": "stable", "weight": 90}, {"service": "canary", "weight": 10}]}]))
        n = 10000
        counts, _ = self.spread(gw, n, threads=8)
        print("split 90/10 over %d:" % n, dict(counts))
        self.assertEqual(set(counts), {"stable", "canary"})
        # sd of the canary share is 0.3%; 2% is almost 7 sd.
        self.assertLessEqual(abs(counts["canary"] / n - 0.10), 0.02, counts)
        # The access log names the chosen service of every request.
        lines = []

        def logged():
            lines[:] = [l for l in gw.access_log_lines() if l.get("route") == "web"]
            return len(lines) >= n
        harness.wait_until(logged, timeout=30, message="%d access log lines" % n)
        logged_counts = collections.Counter(l["service"] for l in lines)
        self.assertEqual(logged_counts, counts)

    def test_header_key_is_sticky_and_shares_by_weight(self):
        bes = self.backends(["stable", "canary"])
        gw = self.gateway(self.config(bes, [{"name": "web", "path_prefix": "/", "split_key": "header:X-User",
                                              "splits": [{"service": "stable", "weight": 70},
                                                         {"service": "canary", "weight": 30}]}]))
        keys = 2000
        _, by_key = self.spread(gw, 2 * keys, threads=8, headers_for=lambda k: {"X-User": "user-%d" % (k % keys)})
        self.assertEqual(len(by_key), keys)
        for key, sids in by_key.items():
            self.assertEqual(len(sids), 1, (key, sids))  # one client, one side
        sides = collections.Counter(next(iter(s)) for s in by_key.values())
        print("split 70/30 by header over %d keys:" % keys, dict(sides))
        # sd of the share over 2000 keys is ~1%: allow 5%.
        self.assertLessEqual(abs(sides["canary"] / keys - 0.30), 0.05, sides)
        # A request without the key is drawn at random: both sides appear.
        counts, _ = self.spread(gw, 200, threads=2)
        self.assertEqual(set(counts), {"stable", "canary"}, counts)

    def test_cookie_and_ip_keys_are_sticky(self):
        bes = self.backends(["blue", "green"])
        gw = self.gateway(self.config(bes, [
            {"name": "by-cookie", "path_prefix": "/echo/c", "split_key": "cookie:sid",
             "splits": [{"service": "blue", "weight": 1}, {"service": "green", "weight": 1}]},
            {"name": "by-ip", "path_prefix": "/echo/i", "split_key": "ip",
             "splits": [{"service": "blue", "weight": 1}, {"service": "green", "weight": 1}]}]))
        _, by_key = self.spread(gw, 600, path="/echo/c", headers_for=lambda k: {
            "Cookie": "theme=dark; sid=s%d; lang=en" % (k % 200)})
        self.assertEqual(len(by_key), 200)
        self.assertTrue(all(len(s) == 1 for s in by_key.values()), by_key)
        sides = collections.Counter(next(iter(s)) for s in by_key.values())
        self.assertEqual(set(sides), {"blue", "green"}, sides)
        counts, _ = self.spread(gw, 200, path="/echo/i")
        self.assertEqual(len(counts), 1, counts)  # one client address, one side

    def test_overrides_beat_the_split(self):
        bes = self.backends(["stable", "canary"])
        gw = self.gateway(self.config(bes, [{"name": "web", "path_prefix": "/", "split_key": "header:x-user",
                                              "splits": [{"service": "stable", "weight": 50},
                                                         {"service": "canary", "weight": 50}],
                                              "split_overrides": [
                                                  {"header": "X-Canary", "value": "always", "service": "canary"},
                                                  {"header": "x-canary", "value": "never", "service": "stable"}]}]))
        counts, _ = self.spread(gw, 200, headers_for=lambda k: {"X-Canary": "always", "X-User": "u%d" % k})
        self.assertEqual(dict(counts), {"canary": 200})
        counts, _ = self.spread(gw, 200, headers_for=lambda k: {"X-Canary": "never", "X-User": "u%d" % k})
        self.assertEqual(dict(counts), {"stable": 200})
        # Another value is no override: the split applies.
        counts, _ = self.spread(gw, 200, headers_for=lambda k: {"X-Canary": "maybe", "X-User": "u%d" % k})
        self.assertEqual(set(counts), {"stable", "canary"}, counts)

    def test_reload_changes_weights(self):
        bes = self.backends(["stable", "canary"])

        def cfg(ws, wc):
            return self.config(bes, [{"name": "web", "path_prefix": "/", "splits": [
                {"service": "stable", "weight": ws}, {"service": "canary", "weight": wc}]}])
        gw = self.gateway(cfg(1, 0))
        counts, _ = self.spread(gw, 200)
        self.assertEqual(dict(counts), {"stable": 200})
        gw.reload(cfg(0, 1))
        harness.wait_until(lambda: self.one(gw, "/echo")[1]["server_id"] == "canary", timeout=15,
                           message="the new weights")
        counts, _ = self.spread(gw, 200)
        self.assertEqual(dict(counts), {"canary": 200})

    def test_admin_api_update_and_delete_refusal(self):
        bes = self.backends(["stable", "canary"])
        gw = self.gateway(self.config(bes, [{"name": "web", "path_prefix": "/", "splits": [
            {"service": "stable", "weight": 1}, {"service": "canary", "weight": 0}]}]))
        c = AdminClient(gw.admin_addr)
        self.addCleanup(c.close)
        # A service a split uses cannot be deleted.
        e = c.error("DeleteService", name="canary")
        self.assertEqual(e.code(), grpc.StatusCode.FAILED_PRECONDITION, e.details())
        self.assertIn("routes[0].splits[1].service", [f for f, _ in c.violations(e)], c.violations(e))
        r = c.call("GetRoute", route_id="web")
        c.call("UpdateRoute", route_id="web", version=r.version,
               route={"name": "web", "path_prefix": "/", "splits": [
                   {"service": "stable", "weight": 0}, {"service": "canary", "weight": 1}]})
        harness.wait_until(lambda: self.one(gw, "/echo")[1]["server_id"] == "canary", timeout=15,
                           message="the updated split")
        counts, _ = self.spread(gw, 100)
        self.assertEqual(dict(counts), {"canary": 100})
        # A side of weight 0 is still a reference: refused too.
        self.assertEqual(c.error("DeleteService", name="stable").code(),
                         grpc.StatusCode.FAILED_PRECONDITION)


class TestVersions(SplitCase):

    def versions_gateway(self, versioning, **route):
        bes = self.backends(["api-v1", "api-v2"])
        r = {"name": "api", "path_prefix": "/echo",
             "versions": dict({"versions": [{"version": "1", "service": "api-v1"},
                                            {"version": "2", "service": "api-v2"}]}, **versioning)}
        r.update(route)
        return self.gateway(self.config(bes, [r]))

    def assert_bad_version(self, gw, path, headers, want):
        status, body = self.one(gw, path, headers)
        self.assertEqual(status, 400, body)
        self.assertIn(want, body["error"])
        self.assertEqual(body["status"], 400)

    def test_path_without_strip(self):
        gw = self.versions_gateway({"default_version": "1"})
        status, b = self.one(gw, "/echo/v2/users?x=1&y=%20")
        self.assertEqual((status, b["server_id"], b["path"], b["query"]), (200, "api-v2", "/echo/v2/users", "x=1&y=%20"))
        status, b = self.one(gw, "/echo/v1")
        self.assertEqual((status, b["server_id"]), (200, "api-v1"))
        # No version segment ("v" alone, "values", nothing): the default.
        for path in ("/echo/users", "/echo/v", "/echo/values/v2", "/echo"):
            status, b = self.one(gw, path)
            self.assertEqual((status, b["server_id"]), (200, "api-v1"), path)
        self.assert_bad_version(gw, "/echo/v3/users", None, 'unknown API version "3"')
        self.assert_bad_version(gw, "/echo/v2x", None, 'unknown API version "2x"')
        lines = []

        def logged():
            lines[:] = gw.access_log_lines()
            return len(lines) >= 8
        harness.wait_until(logged, timeout=15, message="access log lines")
        by_path = {l["path"]: l for l in lines}
        self.assertEqual(by_path["/echo/v2/users"]["service"], "api-v2")
        self.assertEqual(by_path["/echo/v1"]["service"], "api-v1")
        self.assertIsNone(by_path["/echo/v3/users"]["service"])
        self.assertEqual(by_path["/echo/v3/users"]["status"], 400)

    def test_path_with_strip(self):
        gw = self.versions_gateway({"strip": True, "default_version": "2"})
        status, b = self.one(gw, "/echo/v1/users/7?q=a%2Fb")
        self.assertEqual((status, b["server_id"], b["path"], b["query"]), (200, "api-v1", "/echo/users/7", "q=a%2Fb"))
        status, b = self.one(gw, "/echo/v1?q=1")
        self.assertEqual((status, b["server_id"], b["path"], b["query"]), (200, "api-v1", "/echo", "q=1"))
        status, b = self.one(gw, "/echo/users")  # default: nothing to strip
        self.assertEqual((status, b["server_id"], b["path"]), (200, "api-v2", "/echo/users"))

    def test_path_with_strip_prefix_and_strip(self):
        bes = self.backends(["api-v1", "api-v2"])
        gw = self.gateway(self.config(bes, [{
            "name": "api", "path_prefix": "/api", "strip_prefix": True,
            "versions": {"strip": True, "versions": [{"version": "1", "service": "api-v1"},
                                                      {"version": "2", "service": "api-v2"}]}}]))
        status, b = self.one(gw, "/api/v2/echo/x?k=v")
        self.assertEqual((status, b["server_id"], b["path"], b["query"]), (200, "api-v2", "/echo/x", "k=v"))
        # No default: a request without a version is refused.
        self.assert_bad_version(gw, "/api/echo", None, "an API version is required")

    def test_path_after_a_template_literal_prefix(self):
        # Only the template's leading literal segments count: "/echo" here.
        gw = self.versions_gateway({"default_version": "1"}, path_prefix="", path="/echo/{rest=**}")
        status, b = self.one(gw, "/echo/v2/a/v1")
        self.assertEqual((status, b["server_id"], b["path"]), (200, "api-v2", "/echo/v2/a/v1"))
        status, b = self.one(gw, "/echo/a/v2")
        self.assertEqual((status, b["server_id"]), (200, "api-v1"))

    def test_header(self):
        gw = self.versions_gateway({"from": "header:X-Api-Version"})
        status, b = self.one(gw, "/echo/a", {"X-API-Version": "2"})
        self.assertEqual((status, b["server_id"]), (200, "api-v2"))
        status, b = self.one(gw, "/echo/a", {"x-api-version": " 1 "})
        self.assertEqual((status, b["server_id"]), (200, "api-v1"))
        self.assert_bad_version(gw, "/echo/a", None, "an API version is required (header x-api-version)")
        self.assert_bad_version(gw, "/echo/a", {"X-Api-Version": "7"}, 'unknown API version "7"')
        self.assert_bad_version(gw, "/echo/a", {"X-Api-Version": "\"}{"}, 'unknown API version ""}{"')

    def test_accept(self):
        gw = self.versions_gateway({"from": "accept", "default_version": "1"})
        status, b = self.one(gw, "/echo", {"Accept": "application/vnd.api+json; version=2"})
        self.assertEqual((status, b["server_id"]), (200, "api-v2"))
        status, b = self.one(gw, "/echo", {"Accept": "text/html;q=0.9, application/json;Version=\"2\""})
        self.assertEqual((status, b["server_id"]), (200, "api-v2"))
        for accept in ("application/json", "*/*", "version=2", ";;,,==", "a/b; version="):
            status, b = self.one(gw, "/echo", {"Accept": accept})
            self.assertEqual((status, b["server_id"]), (200, "api-v1"), accept)
        self.assert_bad_version(gw, "/echo", {"Accept": "a/b; version=3"}, 'unknown API version "3"')

    def test_query(self):
        gw = self.versions_gateway({"from": "query:version", "default_version": "1"})
        status, b = self.one(gw, "/echo?a=1&version=%32")
        self.assertEqual((status, b["server_id"], b["query"]), (200, "api-v2", "a=1&version=%32"))
        status, b = self.one(gw, "/echo?xversion=2")
        self.assertEqual((status, b["server_id"]), (200, "api-v1"))
        self.assert_bad_version(gw, "/echo?version=9", None, 'unknown API version "9"')
        self.assert_bad_version(gw, "/echo?version=%zz", None, "invalid API version in query parameter")


class TestGrpcSplit(SplitCase):

    def grpc_backends(self, names):
        return {n: self._stack.enter_context(harness.GrpcBackend(server_id=n)) for n in names}

    def stub(self, gw):
        ch = harness.grpc_channel(gw.addr("main"))
        self._stack.callback(ch.close)
        return protoload.Stub(ch, ECHO)

    def grpc_config(self, bes, route):
        return {"listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
                "services": [{"name": n, "protocol": "grpc", "instances": [b.instance()]} for n, b in bes.items()],
                "routes": [dict({"name": "grpc", "path_prefix": "/portico.test.Echo"}, **route)]}

    def test_grpc_split_and_sticky_metadata(self):
        bes = self.grpc_backends(["g-stable", "g-canary"])
        gw = self.gateway(self.grpc_config(bes, {"split_key": "header:x-user", "splits": [
            {"service": "g-stable", "weight": 1}, {"service": "g-canary", "weight": 1}]}))
        stub = self.stub(gw)
        seen = collections.Counter()
        for i in range(200):
            resp = stub.Echo(echo_pb2.EchoRequest(message="m%d" % i), timeout=RPC_TIMEOUT)
            seen[resp.server_id] += 1
        self.assertEqual(set(seen), {"g-stable", "g-canary"}, seen)
        by_user = collections.defaultdict(set)
        for i in range(300):
            user = "u%d" % (i % 50)
            resp = stub.Echo(echo_pb2.EchoRequest(message="x"), timeout=RPC_TIMEOUT,
                             metadata=(("x-user", user),))
            by_user[user].add(resp.server_id)
        self.assertTrue(all(len(s) == 1 for s in by_user.values()), by_user)
        self.assertEqual(set.union(*by_user.values()), {"g-stable", "g-canary"})

    def test_grpc_unknown_version_is_invalid_argument(self):
        bes = self.grpc_backends(["g-v1", "g-v2"])
        gw = self.gateway(self.grpc_config(bes, {"versions": {
            "from": "header:x-api-version",
            "versions": [{"version": "1", "service": "g-v1"}, {"version": "2", "service": "g-v2"}]}}))
        stub = self.stub(gw)
        resp = stub.Echo(echo_pb2.EchoRequest(message="x"), timeout=RPC_TIMEOUT,
                         metadata=(("x-api-version", "2"),))
        self.assertEqual(resp.server_id, "g-v2")
        for md, want in (((("x-api-version", "9"),), 'unknown API version "9"'),
                         ((), "an API version is required")):
            with self.assertRaises(grpc.RpcError) as cm:
                stub.Echo(echo_pb2.EchoRequest(message="x"), timeout=RPC_TIMEOUT, metadata=md)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn(want, cm.exception.details())


if __name__ == "__main__":
    unittest.main()
