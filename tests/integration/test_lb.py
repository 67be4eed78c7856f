"""Load balancing per service (lb_algorithm) against real HTTP backends:
weighted round robin shares, header and IP hash stickiness, least
connections steering away from busy backends, random spread. Each backend
reports its server_id in the /echo and /slow bodies. Gateway: 2 workers.

All gateway-only (skipped with PORTICO_DIRECT=1).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_lb
"""

import collections
import http.client
import json
import threading
import time
import unittest

import harness

HOST = "127.0.0.1"
TIMEOUT = 30.0


def get(conn, path, headers=None):
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    return r.status, body


class LbCase(harness.GatewayCase):

    def backends(self, names):
        return [self._stack.enter_context(harness.HttpBackend(server_id=n)) for n in names]

    def gateway(self, service):
        cfg = {"listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1"]}],
               "services": [dict(service, name="web")],
               "routes": [{"name": "web", "path_prefix": "/", "service": "web"}],
               "drain_timeout_ms": 5000}
        gw = self._stack.enter_context(harness.Portico(cfg, workers=2))
        self.addCleanup(self.check_clean_exit, gw)
        return gw

    def spread(self, gw, total, threads=4, headers_for=None):
        """Send `total` GET /echo over `threads` keep-alive connections;
        return a Counter of server ids (and {key: set(ids)} by header)."""
        return harness.spread_server_ids(gw.port("main"), total, threads, headers_for,
                                         timeout=TIMEOUT)


class TestLb(LbCase):

    def test_weighted_round_robin_shares(self):
        bes = self.backends(["w5", "w3", "w2"])
        weights = [5, 3, 2]
        inst = [dict(b.instance(), weight=w) for b, w in zip(bes, weights)]
        gw = self.gateway({"lb_algorithm": "weighted_round_robin", "instances": inst})
        counts, _ = self.spread(gw, 2000)
        print("weighted_round_robin 5:3:2 over 2000:", dict(counts))
        for name, w in zip(["w5", "w3", "w2"], weights):
            self.assertLessEqual(abs(counts[name] / 2000.0 - w / 10.0), 0.05, counts)

    def test_header_hash_sticky_and_spread(self):
        bes = self.backends(["h-a", "h-b", "h-c"])
        gw = self.gateway({"lb_algorithm": "hash", "hash_on": "header:X-User",
                           "instances": [b.instance() for b in bes]})
        counts, by_key = self.spread(gw, 600, headers_for=lambda k: {"X-User": "user-%d" % (k % 100)})
        print("hash header:X-User, 100 users x 6:", dict(counts))
        self.assertEqual(len(by_key), 100)
        for key, sids in by_key.items():
            self.assertEqual(len(sids), 1, (key, sids))  # same header, same backend
        users = collections.Counter(next(iter(s)) for s in by_key.values())
        self.assertEqual(set(users), {"h-a", "h-b", "h-c"}, users)
        for n in users.values():
            self.assertGreaterEqual(n, 15, users)
        # Without the header: round robin over all three.
        counts, _ = self.spread(gw, 90, threads=1)
        self.assertEqual(set(counts), {"h-a", "h-b", "h-c"}, counts)

    def test_cookie_and_ip_hash_sticky(self):
        bes = self.backends(["c-a", "c-b", "c-c"])
        gw = self.gateway({"lb_algorithm": "hash", "hash_on": "cookie:sid",
                           "instances": [b.instance() for b in bes]})
        _, by_key = self.spread(gw, 300, headers_for=lambda k: {
            "Cookie": "theme=dark; sid=s%d; lang=en" % (k % 30)})
        self.assertEqual(len(by_key), 30)
        self.assertTrue(all(len(s) == 1 for s in by_key.values()), by_key)
        self.assertGreater(len(set.union(*by_key.values())), 1)
        gw.stop()
        gw2 = self.gateway({"lb_algorithm": "ip_hash", "instances": [b.instance() for b in bes]})
        counts, _ = self.spread(gw2, 200)
        self.assertEqual(len(counts), 1, counts)  # one client address, one backend

    def test_least_connections_avoids_busy(self):
        bes = self.backends(["lc-a", "lc-b", "lc-c"])
        gw = self.gateway({"lb_algorithm": "least_connections",
                           "instances": [b.instance() for b in bes]})
        slow_ids = []
        errors = []

        def slow():
            conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=TIMEOUT)
            try:
                status, body = get(conn, "/slow?ms=2500")
                slow_ids.append(json.loads(body)["server_id"] if status == 200 else status)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                conn.close()

        ts = []
        for _ in range(2):
            t = threading.Thread(target=slow, daemon=True)
            t.start()
            ts.append(t)
            time.sleep(0.3)  # the first is in flight before the second is placed
        counts, _ = self.spread(gw, 60, threads=1)
        for t in ts:
            t.join(30)
        self.assertEqual(errors, [])
        print("least_connections: slow on", slow_ids, "fast:", dict(counts))
        self.assertEqual(len(set(slow_ids)), 2, slow_ids)  # the second went to an idle one
        idle = ({"lc-a", "lc-b", "lc-c"} - set(slow_ids)).pop()
        self.assertEqual(dict(counts), {idle: 60})
        # Once they are done, all three serve again.
        counts, _ = self.spread(gw, 300, threads=3)
        self.assertEqual(set(counts), {"lc-a", "lc-b", "lc-c"}, counts)

    def test_random_roughly_uniform(self):
        bes = self.backends(["r-a", "r-b", "r-c"])
        gw = self.gateway({"lb_algorithm": "random", "instances": [b.instance() for b in bes]})
        counts, _ = self.spread(gw, 1500)
        print("random over 1500:", dict(counts))
        for sid in ("r-a", "r-b", "r-c"):
            self.assertLessEqual(abs(counts[sid] - 500), 75, counts)  # ~4 standard deviations

    def test_invalid_configs_rejected(self):
        bes = self.backends(["v-a"])
        bad = [
            ({"lb_algorithm": "round_robin", "hash_on": "ip"}, "hash_on"),
            ({"lb_algorithm": "hash"}, "hash_on"),
            ({"lb_algorithm": "hash", "hash_on": "query:x"}, "hash_on"),
            ({"lb_algorithm": "ip_hash", "hash_on": "header:x"}, "hash_on"),
        ]
        for svc, word in bad:
            svc = dict(svc, name="web", instances=[bes[0].instance()])
            cfg = {"listeners": [{"name": "main", "address": "127.0.0.1:0"}], "services": [svc],
                   "routes": [{"name": "web", "path_prefix": "/", "service": "web"}]}
            rc, out = harness.check_config(cfg)
            self.assertNotEqual(rc, 0, svc)
            self.assertIn(word, out)
        svc = {"name": "web", "lb_algorithm": "weighted_round_robin",
               "instances": [dict(bes[0].instance(), weight=1001)]}
        rc, out = harness.check_config({"listeners": [{"name": "main", "address": "127.0.0.1:0"}],
                                        "services": [svc]})
        self.assertNotEqual(rc, 0)
        self.assertIn("1..1000", out)


if __name__ == "__main__":
    unittest.main()
