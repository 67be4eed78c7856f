"""The Admin service's semantics against the real binary, with a python
grpcio client: CRUD of every managed kind, optimistic versions, field masks,
validation with google.rpc.BadRequest details, pagination, API key secrets,
plugins taking effect on traffic, Validate, Export/Apply round trips.
"""

import hashlib
import http.client
import time
import unittest

import grpc

import harness
from adminclient import AdminClient

HOST = "127.0.0.1"
SC = grpc.StatusCode


def base_config(backend_port):
    return {
        "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
        "services": [{"name": "web", "instances": [{"host": HOST, "port": backend_port}]}],
        "routes": [{"name": "home", "path_prefix": "/home", "service": "web", "strip_prefix": True}],
    }


def http_get(port, path, headers=None):
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body
    finally:
        conn.close()


def wait_status(port, path, want, timeout=2.0):
    """GET path until it answers want (or timeout); the last status."""
    deadline = time.monotonic() + timeout
    while True:
        st, _, _ = http_get(port, path)
        if st == want or time.monotonic() > deadline:
            return st
        time.sleep(0.01)


class AdminApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = harness.TempDir()
        cls.be = harness.HttpBackend().start()
        cls.gw = harness.Portico(base_config(cls.be.port), workers=2)
        cls.gw.start()
        cls.port = cls.gw.port("main")
        cls.c = AdminClient(cls.gw.admin_addr)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.gw.stop()
        cls.be.stop()
        cls.tmp.cleanup()

    def wait_status(self, path, want, timeout=2.0):
        return wait_status(self.port, path, want, timeout)

    # ---- routes ----

    def test_route_crud_and_traffic(self):
        c = self.c
        r = c.call("CreateRoute", route={"name": "api-crud", "path_prefix": "/crud", "service": "web", "strip_prefix": True})
        self.assertEqual(r.name, "api-crud")
        self.assertGreater(r.version, 0)
        self.assertEqual(self.wait_status("/crud/status/200", 200), 200)
        got = c.call("GetRoute", route_id="api-crud")
        self.assertEqual(got, r)
        e = c.error("CreateRoute", route={"name": "api-crud", "path_prefix": "/other", "service": "web"})
        self.assertEqual(e.code(), SC.ALREADY_EXISTS)
        # Replace whole: a new path.
        r2 = c.call("UpdateRoute", route_id="api-crud",
                    route={"name": "api-crud", "path_prefix": "/crud2", "service": "web", "strip_prefix": True},
                    version=r.version)
        self.assertGreater(r2.version, r.version)
        self.assertEqual(self.wait_status("/crud2/status/200", 200), 200)
        self.assertEqual(self.wait_status("/crud/status/200", 404), 404)
        c.call("DeleteRoute", route_id="api-crud")
        self.assertEqual(self.wait_status("/crud2/status/200", 404), 404)
        self.assertEqual(c.error("GetRoute", route_id="api-crud").code(), SC.NOT_FOUND)
        self.assertEqual(c.error("DeleteRoute", route_id="api-crud").code(), SC.NOT_FOUND)

    def test_update_needs_current_version(self):
        c = self.c
        r = c.call("CreateRoute", route={"name": "ver", "path_prefix": "/ver", "service": "web"})
        e = c.error("UpdateRoute", route_id="ver",
                    route={"name": "ver", "path_prefix": "/ver", "service": "web", "timeout_ms": 5},
                    version=r.version + 100)
        self.assertEqual(e.code(), SC.ABORTED)
        self.assertIn("read it again", e.details())
        e = c.error("UpdateRoute", route_id="ver", route={"name": "ver", "path_prefix": "/v", "service": "web"})
        self.assertEqual(e.code(), SC.INVALID_ARGUMENT)
        self.assertIn(("version",), [(f,) for f, _ in c.violations(e)])
        r2 = c.call("UpdateRoute", route_id="ver",
                    route={"name": "ver", "path_prefix": "/ver", "service": "web", "timeout_ms": 500},
                    version=r.version)
        # The first version is now stale.
        e = c.error("UpdateRoute", route_id="ver",
                    route={"name": "ver", "path_prefix": "/ver", "service": "web", "timeout_ms": 7},
                    version=r.version)
        self.assertEqual(e.code(), SC.ABORTED)
        # Delete with a stale version is refused too.
        self.assertEqual(c.error("DeleteRoute", route_id="ver", version=r.version).code(), SC.ABORTED)
        c.call("DeleteRoute", route_id="ver", version=r2.version)

    def test_field_mask(self):
        c = self.c
        r = c.call("CreateRoute", route={"name": "masked", "path_prefix": "/masked", "service": "web",
                                         "methods": ["GET"], "timeout_ms": 1000})
        r2 = c.call("UpdateRoute", route_id="masked", route={"timeout_ms": 2500, "path_prefix": "/ignored"},
                    update_mask="timeoutMs", version=r.version)
        self.assertEqual(r2.timeout_ms, 2500)
        self.assertEqual(r2.path_prefix, "/masked")  # not in the mask: unchanged
        self.assertEqual(list(r2.methods), ["GET"])
        # Nested path and a repeated field.
        s = c.call("CreateService", service={"name": "masksvc", "instances": [{"host": HOST, "port": 9}],
                                             "tls": {"enabled": True, "server_name": "a.example"}})
        s2 = c.call("UpdateService", service_id="masksvc",
                    service={"tls": {"server_name": "b.example"}, "instances": [{"host": HOST, "port": 10}]},
                    update_mask="tls.serverName,instances", version=s.version)
        self.assertEqual(s2.tls.server_name, "b.example")
        self.assertTrue(s2.tls.enabled)
        self.assertEqual([i.port for i in s2.instances], [10])
        e = c.error("UpdateRoute", route_id="masked", route={}, update_mask="noSuchField",
                    version=r2.version)
        self.assertEqual(e.code(), SC.INVALID_ARGUMENT)
        self.assertEqual(c.violations(e)[0][0], "update_mask.paths[0]")
        e = c.error("UpdateRoute", route_id="masked", route={}, update_mask="version",
                    version=r2.version)
        self.assertEqual(e.code(), SC.INVALID_ARGUMENT)
        c.call("DeleteRoute", route_id="masked")
        c.call("DeleteService", name="masksvc")

    def test_validation_errors_name_fields_and_change_nothing(self):
        c = self.c
        before = c.call("GetHealth").config_version
        e = c.error("CreateRoute", route={"name": "bad", "path": "/a", "service": "nope",
                                          "retry_on": ["sometimes"], "retry_count": 1})
        self.assertEqual(e.code(), SC.INVALID_ARGUMENT)
        fields = {f for f, _ in c.violations(e)}
        self.assertEqual(fields, {"route.service", "route.retry_on[0]"})
        # A path template that does not compile.
        e = c.error("CreateRoute", route={"name": "bad", "path": "/a/{x", "service": "web"})
        self.assertEqual(e.code(), SC.INVALID_ARGUMENT)
        self.assertEqual([f for f, _ in c.violations(e)], ["route.path"], c.violations(e))
        self.assertEqual(c.call("GetHealth").config_version, before)
        self.assertEqual(c.error("GetRoute", route_id="bad").code(), SC.NOT_FOUND)
        # Deleting a service still used by a route: refused, naming the route.
        e = c.error("DeleteService", name="web")
        self.assertEqual(e.code(), SC.FAILED_PRECONDITION)
        self.assertTrue(any(f.startswith("routes[") and f.endswith(".service") for f, _ in c.violations(e)),
                        c.violations(e))
        self.assertEqual(c.call("GetHealth").config_version, before)
        self.assertEqual(http_get(self.port, "/home/status/200")[0], 200)

    def test_list_pagination(self):
        c = self.c
        names = ["page-%02d" % i for i in range(25)]
        for n in names:
            c.call("CreateService", service={"name": n, "instances": [{"host": HOST, "port": 9}]})
        seen, token, pages = [], "", 0
        while True:
            resp = c.call("ListServices", page_size=7, page_token=token)
            pages += 1
            self.assertLessEqual(len(resp.services), 7)
            seen.extend(s.name for s in resp.services)
            token = resp.next_page_token
            if not token:
                break
            self.assertLess(pages, 20)
        self.assertEqual(seen, sorted(seen))
        self.assertTrue(set(names) <= set(seen))
        self.assertEqual(resp.total_size, len(seen))
        for n in names:
            c.call("DeleteService", name=n)

    # ---- API keys ----

    def test_api_key_secret_shown_once(self):
        c = self.c
        resp = c.call("CreateApiKey", api_key={"name": "k1", "client_id": "acme", "scopes": ["read"],
                                               "rate_limit_tier": "premium"})
        key = resp.key
        self.assertGreaterEqual(len(key), 32)
        self.assertEqual(resp.api_key.key_prefix, key[:8])
        self.assertEqual(resp.api_key.key_hash, hashlib.sha256(key.encode()).hexdigest())
        self.assertTrue(resp.api_key.HasField("created_at"))
        got = c.call("GetApiKey", name="k1")
        listed = c.call("ListApiKeys")
        export = c.call("Export")
        for text in (str(got), str(listed), export.yaml, str(export.config)):
            self.assertNotIn(key, text)
        self.assertIn(resp.api_key.key_hash, export.yaml)
        # The hash cannot be set by a client, nor changed.
        e = c.error("CreateApiKey", api_key={"name": "k2", "client_id": "acme", "key_hash": "0" * 64})
        self.assertEqual(e.code(), SC.INVALID_ARGUMENT)
        upd = c.call("UpdateApiKey", api_key_id="k1", api_key={"name": "k1", "client_id": "acme",
                                                               "enabled": False}, version=got.version)
        self.assertEqual(upd.key_hash, got.key_hash)
        self.assertTrue(upd.HasField("enabled"))
        self.assertFalse(upd.enabled.value)
        e = c.error("UpdateApiKey", api_key_id="k1", api_key={}, update_mask="keyHash",
                    version=upd.version)
        self.assertEqual(e.code(), SC.INVALID_ARGUMENT)
        c.call("DeleteApiKey", name="k1")

    # ---- rate-limit rules ----

    def test_rate_limit_rules(self):
        c = self.c
        r = c.call("CreateRateLimitRule", rule={"name": "per-ip", "route": "home", "key_type": "ip+route",
                                                "limit": 100, "window_seconds": 60, "burst": 10})
        self.assertEqual(r.route, "home")
        e = c.error("CreateRateLimitRule", rule={"name": "bad-rule", "route": "nope", "key_type": "cookie",
                                                 "limit": 0, "window_seconds": 0})
        fields = {f for f, _ in c.violations(e)}
        self.assertEqual(fields, {"rule.route", "rule.key_type", "rule.limit", "rule.window_seconds"})
        listed = c.call("ListRateLimitRules")
        self.assertEqual([x.name for x in listed.rules], ["per-ip"])
        # A route with rules cannot be deleted out from under them.
        tmp = c.call("CreateRoute", route={"name": "ruled", "path_prefix": "/ruled", "service": "web"})
        c.call("UpdateRateLimitRule", rule_id="per-ip", rule={"route": "ruled"},
               update_mask="route", version=r.version)
        self.assertEqual(c.error("DeleteRoute", route_id="ruled").code(), SC.FAILED_PRECONDITION)
        c.call("DeleteRateLimitRule", name="per-ip")
        c.call("DeleteRoute", route_id="ruled", version=tmp.version)

    # ---- plugins ----

    def test_plugin_bound_to_route_takes_effect(self):
        c = self.c
        c.call("CreateRoute", route={"name": "plugged", "path_prefix": "/plugged", "service": "web", "strip_prefix": True})
        p = c.call("CreatePlugin", plugin={"name": "tag", "type": "headers", "routes": ["plugged"],
                                           "config": {"response": {"set": {"x-plugged": "yes"}}}})
        deadline = time.monotonic() + 2
        while True:
            st, hdrs, _ = http_get(self.port, "/plugged/status/200")
            if hdrs.get("x-plugged") == "yes" or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self.assertEqual((st, hdrs.get("x-plugged")), (200, "yes"))
        self.assertNotIn("x-plugged", http_get(self.port, "/home/status/200")[1])
        # A config the filter rejects: the violation points into plugin.config.
        e = c.error("UpdatePlugin", plugin_id="tag",
                    plugin={"name": "tag", "type": "headers", "routes": ["plugged"],
                            "config": {"response": {"set": {"bad header": "x"}}}},
                    version=p.version)
        self.assertEqual(e.code(), SC.INVALID_ARGUMENT)
        self.assertTrue(all(f.startswith("plugin.config") for f, _ in c.violations(e)), c.violations(e))
        e = c.error("CreatePlugin", plugin={"name": "ghost", "type": "no-such-filter", "global": True})
        self.assertIn("plugin.type", {f for f, _ in c.violations(e)})
        e = c.error("CreatePlugin", plugin={"name": "unbound", "type": "headers"})
        self.assertEqual(e.code(), SC.INVALID_ARGUMENT)
        # Global: every route.
        g = c.call("CreatePlugin", plugin={"name": "everywhere", "type": "headers", "global": True,
                                           "config": {"response": {"set": {"x-global": "1"}}}})
        deadline = time.monotonic() + 2
        while "x-global" not in http_get(self.port, "/home/status/200")[1] and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(http_get(self.port, "/home/status/200")[1].get("x-global"), "1")
        c.call("DeletePlugin", name="everywhere", version=g.version)
        c.call("DeletePlugin", name="tag")
        c.call("DeleteRoute", route_id="plugged")

    # ---- whole configuration ----

    def test_validate_is_a_dry_run(self):
        c = self.c
        before = c.call("GetHealth").config_version
        ok = c.call("Validate", route={"name": "dry", "path_prefix": "/dry", "service": "web"})
        self.assertTrue(ok.valid)
        bad = c.call("Validate", route={"name": "dry", "path_prefix": "/dry", "service": "missing"})
        self.assertFalse(bad.valid)
        self.assertEqual([v.field for v in bad.violations], ["route.service"])
        whole = c.call("Validate", config={"services": [{"name": "a", "instances": [{"host": HOST, "port": 1}]}],
                                           "routes": [{"name": "x", "path": "/x", "service": "b"}]})
        self.assertFalse(whole.valid)
        self.assertEqual([v.field for v in whole.violations], ["routes[0].service"])
        self.assertEqual(c.call("GetHealth").config_version, before)
        self.assertEqual(c.error("GetRoute", route_id="dry").code(), SC.NOT_FOUND)

    def test_export_apply_round_trip(self):
        c = self.c
        exp = c.call("Export")
        self.assertIn("routes:", exp.yaml)
        self.assertIn("home", exp.yaml)
        # Applying the export changes nothing.
        same = c.call("Apply", yaml=exp.yaml)
        self.assertFalse(same.applied)
        self.assertEqual(list(same.changes), [])
        self.assertEqual(same.version, exp.version)
        # A new route and a changed one, as a dry run then for real.
        text = exp.yaml + ""
        doc = c.to_dict(exp.config)
        doc["routes"].append({"name": "applied", "path_prefix": "/applied", "service": "web", "strip_prefix": True})
        for r in doc["routes"]:
            if r["name"] == "home":
                r["timeout_ms"] = 4321
        dry = c.call("Apply", config=doc, dry_run=True)
        self.assertFalse(dry.applied)
        got = {(ch.kind, ch.name, c.to_dict(ch).get("action")) for ch in dry.changes}
        self.assertIn(("route", "applied", "ACTION_CREATE"), got)
        self.assertIn(("route", "home", "ACTION_UPDATE"), got)
        self.assertEqual(c.error("GetRoute", route_id="applied").code(), SC.NOT_FOUND)
        # A stale expected_version aborts.
        e = c.error("Apply", config=doc, expected_version=dry.version + 5)
        self.assertEqual(e.code(), SC.ABORTED)
        real = c.call("Apply", config=doc, expected_version=dry.version)
        self.assertTrue(real.applied)
        self.assertEqual(real.version, dry.version + 1)
        self.assertEqual(self.wait_status("/applied/status/200", 200), 200)
        self.assertEqual(c.call("GetRoute", route_id="home").timeout_ms, 4321)
        # Back to the export: the new route is deleted, home restored.
        back = c.call("Apply", yaml=text)
        self.assertIn(("route", "applied", "ACTION_DELETE"),
                      {(ch.kind, ch.name, c.to_dict(ch).get("action")) for ch in back.changes})
        self.assertEqual(self.wait_status("/applied/status/200", 404), 404)
        # Instance settings are reported, not applied.
        doc2 = c.to_dict(exp.config)
        doc2["workers"] = 7
        self.assertIn("workers", list(c.call("Apply", config=doc2, dry_run=True).ignored_sections))
        # YAML that does not load: INVALID_ARGUMENT naming the problem.
        e = c.error("Apply", yaml="routes: [{name: x, path: /x, service: web, bogus_key: 1}]")
        self.assertEqual(e.code(), SC.INVALID_ARGUMENT)

    def test_health_and_stats(self):
        c = self.c
        h = c.call("GetHealth")
        self.assertEqual(c.to_dict(h)["status"], "STATUS_SERVING")
        self.assertEqual(h.store, "file")
        self.assertTrue(h.store_connected)
        self.assertEqual(h.workers, 2)
        for _ in range(5):
            http_get(self.port, "/home/status/200")
        st = c.call("GetRouteStats", route_id="home")
        self.assertGreaterEqual(st.requests, 5)
        self.assertEqual(c.error("GetRouteStats", route_id="nope").code(), SC.NOT_FOUND)


if __name__ == "__main__":
    unittest.main()
