"""Rate limiting through portico (issue 6): rules from the configuration and
the admin API, enforced per instance across worker threads (local mode),
with 429 + rate-limit headers (RESOURCE_EXHAUSTED for gRPC), shadow and
queue actions, tiers from stored API keys, bounded keys from hostile
header values, and the per-rule decision counters (admin API and
Prometheus text).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_ratelimit
"""

import concurrent.futures
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

import grpc

import harness
import protoload
from adminclient import AdminClient

echo_pb2 = harness.load_echo()
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"]
Req = echo_pb2.EchoRequest
HOST = "127.0.0.1"
RL_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset",
              "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def http_get(addr, path, headers=None, timeout=30):
    host, port = harness.split_address(addr)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def burst(addr, n, path="/echo", headers=None, workers=64, timeout=60):
    """n GETs, each on its own connection (so SO_REUSEPORT spreads them over
    the gateway's workers), from `workers` threads at once; the statuses."""
    deadline = time.monotonic() + timeout

    def one(_):
        if time.monotonic() > deadline:
            return -1
        try:
            return http_get(addr, path, headers)[0]
        except OSError:
            return -2

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(one, range(n)))


def base_config(backend, rules=None, routes=None, **top):
    cfg = {
        "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
        "services": [{"name": "web", "instances": [backend.instance()]}],
        "routes": routes or [{"name": "echo", "path_prefix": "/echo", "service": "web"},
                             {"name": "other", "path_prefix": "/status", "service": "web"}],
        "rate_limit_rules": rules or [],
    }
    cfg.update(top)
    return cfg


def rule(name, limit, window=3600, key="global", **extra):
    r = {"name": name, "key_type": key, "limit": limit, "window_seconds": window}
    r.update(extra)
    return r


def stats(admin, name):
    resp = admin.call("GetRateLimitStats", rule=name)
    return resp.rules[0]


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestLocal(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.be = harness.HttpBackend().start()

    @classmethod
    def tearDownClass(cls):
        cls.be.stop()

    def gateway(self, rules, workers=2, **kw):
        return self.enterContext(harness.Portico(base_config(self.be, rules, **kw), workers=workers))

    def test_exact_per_instance_across_workers(self):
        # A token bucket of 100 refilled at 100 per hour: a burst of 1,000
        # concurrent requests over both workers gets exactly 100 through
        # (a refill of one token takes 36 s, far longer than the burst).
        gw = self.gateway([rule("all", 100)], workers=2)
        started = time.monotonic()
        statuses = burst(gw.addr("main"), 1000)
        self.assertLess(time.monotonic() - started, 36)
        self.assertEqual(statuses.count(200), 100, statuses)
        self.assertEqual(statuses.count(429), 900)
        admin = AdminClient(gw.admin_addr)
        self.addCleanup(admin.close)
        st = stats(admin, "all")
        self.assertEqual((st.allowed, st.rejected), (100, 900))
        text = admin.call("GetMetrics").prometheus_text
        self.assertIn('portico_ratelimit_decisions_total{rule="all",decision="allowed"} 100', text)
        self.assertIn('portico_ratelimit_decisions_total{rule="all",decision="rejected"} 900', text)

    def test_reject_headers_and_json_body(self):
        gw = self.gateway([rule("per-ip", 3, window=60, key="ip")])
        addr = gw.addr("main")
        remaining = []
        for _ in range(3):
            status, h, _ = http_get(addr, "/echo")
            self.assertEqual(status, 200)
            for name in RL_HEADERS:
                self.assertIn(name, h)
            self.assertEqual(h["ratelimit-limit"], "3")
            self.assertEqual(h["x-ratelimit-limit"], "3")
            self.assertNotIn("retry-after", h)
            remaining.append(int(h["ratelimit-remaining"]))
        self.assertEqual(remaining, [2, 1, 0])
        status, h, body = http_get(addr, "/echo")
        self.assertEqual(status, 429)
        self.assertEqual(h["content-type"], "application/json")
        doc = json.loads(body)
        self.assertEqual(doc["status"], 429)
        self.assertIn("rate limit exceeded", doc["error"])
        self.assertIn("per-ip", doc["error"])
        self.assertEqual(h["ratelimit-remaining"], "0")
        # One token comes back every 20 s (3 per 60 s).
        self.assertTrue(1 <= int(h["retry-after"]) <= 20, h)
        self.assertTrue(1 <= int(h["ratelimit-reset"]) <= 60, h)
        self.assertEqual(h["x-ratelimit-reset"], h["ratelimit-reset"])
        # The global rule order: a route without rules is not limited.
        gw2 = self.gateway([rule("echo-only", 1, route="echo")])
        self.assertEqual(http_get(gw2.addr("main"), "/echo")[0], 200)
        self.assertEqual(http_get(gw2.addr("main"), "/echo")[0], 429)
        for _ in range(3):
            status, h, _ = http_get(gw2.addr("main"), "/status/200")
            self.assertEqual(status, 200)
            self.assertNotIn("ratelimit-limit", h)

    def test_first_rejection_wins_and_refunds_the_others(self):
        # "wide" allows 5, "narrow" (by header) 1 per tenant. Rejections by
        # "narrow" must not consume "wide": after 4 rejected requests of
        # tenant a, tenants b..e still get through wide's 5.
        gw = self.gateway([rule("wide", 5), rule("narrow", 1, key="header:x-tenant")])
        addr = gw.addr("main")
        self.assertEqual(http_get(addr, "/echo", {"x-tenant": "a"})[0], 200)
        for _ in range(4):
            status, h, _ = http_get(addr, "/echo", {"x-tenant": "a"})
            self.assertEqual(status, 429)
            self.assertEqual(h["ratelimit-limit"], "1")
        for t in "bcde":
            self.assertEqual(http_get(addr, "/echo", {"x-tenant": t})[0], 200, t)
        status, h, _ = http_get(addr, "/echo", {"x-tenant": "f"})
        self.assertEqual(status, 429)
        self.assertEqual(h["ratelimit-limit"], "5")
        # A request without the header skips "narrow" (but not "wide").
        self.assertEqual(http_get(addr, "/echo")[0], 429)

    def test_shadow_counts_and_never_rejects(self):
        gw = self.gateway([rule("watch", 2, action="shadow")])
        for _ in range(6):
            status, h, _ = http_get(gw.addr("main"), "/echo")
            self.assertEqual(status, 200)
            self.assertNotIn("ratelimit-limit", h)  # a shadow rule is invisible
        admin = AdminClient(gw.admin_addr)
        self.addCleanup(admin.close)
        st = stats(admin, "watch")
        self.assertEqual((st.allowed, st.shadow_rejected, st.rejected), (2, 4, 0))
        harness.wait_until(lambda: 'shadow rule "watch" would reject' in gw.stderr,
                           message="shadow log line")

    def test_queue_holds_then_passes(self):
        # 2 per second: the third and fourth of a burst wait about 0.5 and
        # 1 s for their tokens, within max_queue_ms, and all pass.
        gw = self.gateway([rule("q", 2, window=1, action="queue", max_queue_ms=3000)])
        addr = gw.addr("main")
        t0 = time.monotonic()
        results = []

        def timed(_):
            s = http_get(addr, "/echo")[0]
            return s, time.monotonic() - t0

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
            results = list(ex.map(timed, range(4)))
        self.assertEqual([s for s, _ in results], [200] * 4)
        self.assertGreater(max(t for _, t in results), 0.4)
        admin = AdminClient(gw.admin_addr)
        self.addCleanup(admin.close)
        st = stats(admin, "q")
        self.assertEqual(st.allowed, 4)
        self.assertGreaterEqual(st.queued, 2)

    def test_queue_rejects_when_the_wait_is_too_long(self):
        gw = self.gateway([rule("q", 1, window=10, action="queue", max_queue_ms=200)])
        addr = gw.addr("main")
        self.assertEqual(http_get(addr, "/echo")[0], 200)
        t0 = time.monotonic()
        status, h, _ = http_get(addr, "/echo")
        self.assertEqual(status, 429)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("retry-after", h)

    def test_hostile_header_values_are_bounded_keys(self):
        gw = self.gateway([rule("tenant", 2, key="header:x-tenant+ip", max_keys=64)])
        addr = gw.addr("main")
        big = "A" * 8000
        odd = "{evil}|\\x00%0d%0a\tEVAL"
        for value in (big, odd):
            self.assertEqual(http_get(addr, "/echo", {"x-tenant": value})[0], 200)
            self.assertEqual(http_get(addr, "/echo", {"x-tenant": value})[0], 200)
            self.assertEqual(http_get(addr, "/echo", {"x-tenant": value})[0], 429)
        # Values differing only past the first bytes are different keys.
        self.assertEqual(http_get(addr, "/echo", {"x-tenant": big + "B"})[0], 200)
        # Thousands of distinct big keys: all pass (new keys), memory stays
        # bounded by max_keys. The first 3,000 warm the allocator (buffers,
        # per-thread arenas, the table at max_keys); the 2,000 after them
        # are all new keys and must not grow memory: a table keeping every
        # key (8 KB each) would add about 16 MB.
        for i in range(0, 3000, 500):
            statuses = burst(addr, 500, headers={"x-tenant": "%d-%s" % (i, big)}, workers=16)
            self.assertEqual(statuses.count(200), 2)
        rss0 = harness.rss_kb(gw.pid)
        statuses = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
            statuses = list(ex.map(lambda i: http_get(addr, "/echo", {"x-tenant": "%d%s" % (i, big)})[0],
                                   range(2000)))
        self.assertEqual(statuses.count(200), 2000)
        if not harness.is_asan_binary():  # ASan's quarantine keeps freed memory
            self.assertLess(harness.rss_kb(gw.pid) - rss0, 8 * 1024)


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestTiersAndAdmin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.be = harness.HttpBackend().start()
        cls.gw = harness.Portico(base_config(cls.be), workers=2).__enter__()
        cls.addr = cls.gw.addr("main")
        cls.admin = AdminClient(cls.gw.admin_addr)

    @classmethod
    def tearDownClass(cls):
        cls.admin.close()
        cls.gw.__exit__(None, None, None)
        cls.be.stop()

    def wait_status(self, path, want, headers=None, timeout=10):
        got = []

        def check():
            got.append(http_get(self.addr, path, headers)[0])
            return got[-1] == want

        harness.wait_until(check, timeout=timeout, message="status %d (last %s)" % (want, got[-1:]))

    def test_rules_from_the_admin_api_take_effect(self):
        c = self.admin
        r = c.call("CreateRateLimitRule", rule=rule("live", 1, route="other"))
        self.wait_status("/status/200", 429)
        c.call("UpdateRateLimitRule", rule_id="live",
               rule=rule("live", 1000, route="other"), version=r.version)
        self.wait_status("/status/200", 200)
        status, h, _ = http_get(self.addr, "/status/200")
        self.assertEqual(h["ratelimit-limit"], "1000")
        c.call("DeleteRateLimitRule", name="live")
        harness.wait_until(lambda: "ratelimit-limit" not in http_get(self.addr, "/status/200")[1],
                           message="rule gone")

    def test_tiers_from_api_keys(self):
        c = self.admin
        free = c.call("CreateApiKey", api_key={"name": "kfree", "client_id": "acme",
                                               "rate_limit_tier": "free"}).key
        prem = c.call("CreateApiKey", api_key={"name": "kprem", "client_id": "bigco",
                                               "rate_limit_tier": "premium"}).key
        # "free" last: once it is enforced, so is "premium" (snapshots are
        # published in order).
        c.call("CreateRateLimitRule", rule=rule("premium", 5, key="client_id",
                                                           tier="premium", route="echo"))
        c.call("CreateRateLimitRule", rule=rule("free", 2, key="client_id", tier="free",
                                                           route="echo"))
        self.addCleanup(lambda: [c.call(m, name=n) for m, n in (
            ("DeleteRateLimitRule", "free"), ("DeleteRateLimitRule", "premium"),
            ("DeleteApiKey", "kfree"), ("DeleteApiKey", "kprem"))])
        # Wait for the snapshot with both rules: a free client is limited.
        self.wait_status("/echo", 429, {"x-api-key": free})
        status, h, _ = http_get(self.addr, "/echo", {"x-api-key": free})
        self.assertEqual((status, h["ratelimit-limit"]), (429, "2"))
        statuses = [http_get(self.addr, "/echo", {"x-api-key": prem})[0] for _ in range(6)]
        self.assertEqual(statuses, [200] * 5 + [429])
        # Without a key (or with an unknown one) no tier rule applies.
        for hdrs in ({}, {"x-api-key": "not-a-key"}):
            status, h, _ = http_get(self.addr, "/echo", hdrs)
            self.assertEqual(status, 200)
            self.assertNotIn("ratelimit-limit", h)

    def test_stats_of_an_unknown_rule(self):
        e = self.admin.error("GetRateLimitStats", rule="nope")
        self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestGrpc(unittest.TestCase):
    def test_resource_exhausted(self):
        with contextlib.ExitStack() as stack:
            be = stack.enter_context(harness.GrpcBackend())
            cfg = harness.grpc_gateway_config([be.instance()])
            cfg["rate_limit_rules"] = [rule("calls", 2, key="route")]
            gw = stack.enter_context(harness.Portico(cfg))
            ch = harness.grpc_channel(gw.addr("main"))
            stack.callback(ch.close)
            stub = protoload.Stub(ch, ECHO)
            for i in range(2):
                resp, call = stub.Echo.with_call(Req(tag="ok-%d" % i), timeout=30)
                md = dict(call.initial_metadata())
                self.assertEqual(md.get("ratelimit-limit"), "2")
            with self.assertRaises(grpc.RpcError) as cm:
                stub.Echo(Req(tag="limited"), timeout=30)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("rate limit exceeded", cm.exception.details())
            md = dict(cm.exception.initial_metadata() or ()) 
            md.update(dict(cm.exception.trailing_metadata() or ()))
            self.assertIn("retry-after", md)

    def test_queued_client_leaves(self):
        # Each waiting call would wait ~4 s for q's next token; its client
        # gives up after 0.3 s (RST_STREAM). The gateway cancels the wait
        # (on_done frees the timer): the abandoned calls take no token, so
        # a patient call gets the next one, about 4 s after the first call.
        with contextlib.ExitStack() as stack:
            be = stack.enter_context(harness.GrpcBackend())
            cfg = harness.grpc_gateway_config([be.instance()])
            cfg["rate_limit_rules"] = [rule("q", 1, window=4, action="queue", max_queue_ms=6000)]
            gw = stack.enter_context(harness.Portico(cfg))
            ch = harness.grpc_channel(gw.addr("main"))
            stack.callback(ch.close)
            stub = protoload.Stub(ch, ECHO)
            t0 = time.monotonic()
            stub.Echo(Req(tag="first"), timeout=30)
            for i in range(3):
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.Echo(Req(tag="impatient-%d" % i), timeout=0.3)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            stub.Echo(Req(tag="patient"), timeout=30)
            self.assertLess(time.monotonic() - t0, 5.5)
            admin = AdminClient(gw.admin_addr)
            stack.callback(admin.close)
            st = stats(admin, "q")
            self.assertEqual((st.queued, st.allowed, st.rejected), (4, 2, 0))
            self.assertTrue(gw.running())


def redis_time(redis):
    sec, usec = redis.cli("TIME")
    return int(sec) + int(usec) / 1e6


@unittest.skipIf(harness.DIRECT, "gateway-only")
@unittest.skipUnless(shutil.which("redis-server"), "redis-server not installed (scripts/setup.sh --test)")
class TestRedis(unittest.TestCase):
    """Rules in redis mode against a real redis-server on a free port."""

    @classmethod
    def setUpClass(cls):
        cls.be = harness.HttpBackend().start()
        cls.redis = harness.RedisServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        cls.redis.tmp.cleanup()
        cls.be.stop()

    def gateway(self, rules, workers=2, **top):
        top.setdefault("redis", {"address": self.redis.address, "max_backoff_ms": 200})
        return self.enterContext(harness.Portico(base_config(self.be, rules, **top), workers=workers))

    def test_exact_across_three_instances(self):
        # Sliding-window counter, 100 per 10 s, in Redis time: start the
        # burst early in a window so it ends inside it; then exactly 100 of
        # 1,000 concurrent requests spread over 3 instances (2 workers
        # each) pass.
        rules = [rule("shared", 100, window=10, mode="redis", algorithm="sliding_window",
                      fail_open=False, redis_timeout_ms=2000)]
        gws = [self.gateway(rules) for _ in range(3)]
        addrs = [g.addr("main") for g in gws]
        harness.wait_until(lambda: redis_time(self.redis) % 10 < 1.0, timeout=15,
                           message="the start of a 10 s window")
        t0 = redis_time(self.redis)
        deadline = time.monotonic() + 60

        def one(i):
            if time.monotonic() > deadline:
                return -1
            try:
                return http_get(addrs[i % 3], "/echo")[0]
            except OSError:
                return -2

        with concurrent.futures.ThreadPoolExecutor(max_workers=60) as ex:
            statuses = list(ex.map(one, range(1000)))
        t1 = redis_time(self.redis)
        self.assertEqual(int(t0) // 10, int(t1) // 10, "the burst left its window (%.1f s)" % (t1 - t0))
        self.assertEqual(statuses.count(200), 100, statuses)
        self.assertEqual(statuses.count(429), 900)
        failed = 0
        for g in gws:
            with AdminClient(g.admin_addr) as a:
                st = stats(a, "shared")
                failed += st.failed_open + st.failed_closed
        self.assertEqual(failed, 0)

    def test_hybrid_leases_stay_within_the_bound(self):
        # Token bucket of 100 per hour (no refill during the burst), leases
        # of 10: every allowed request spent a token Redis handed out, so at
        # most 100 pass; tokens stranded in the leases of the 3 instances
        # (at most one lease of 10 each) are the only shortfall. Most
        # requests make no Redis call.
        rules = [rule("leased", 100, mode="hybrid", lease_size=10, fail_open=False,
                      redis_timeout_ms=2000)]
        gws = [self.gateway(rules) for _ in range(3)]
        addrs = [g.addr("main") for g in gws]
        before = self.script_calls()

        def one(i):
            try:
                return http_get(addrs[i % 3], "/echo")[0]
            except OSError:
                return -2

        with concurrent.futures.ThreadPoolExecutor(max_workers=60) as ex:
            statuses = list(ex.map(one, range(1000)))
        calls = self.script_calls() - before
        allowed = statuses.count(200)
        self.assertEqual(allowed + statuses.count(429), 1000)
        self.assertLessEqual(allowed, 100)
        self.assertGreaterEqual(allowed, 100 - 3 * 10)
        self.assertLess(calls, 400, "Redis script calls for 1,000 requests")
        sys.stderr.write("\nhybrid: %d of 1000 allowed with %d Redis calls\n" % (allowed, calls))

    def test_hybrid_overshoot_under_steady_overload(self):
        # The bound measured where it can show: a token bucket that refills
        # (50 per second, no burst), leases of 5, 3 instances, 24 clients
        # overloading it for 4 s. In any 1-second interval Redis alone would
        # admit at most C + 50 = 100; leases may add up to 3 x 5 = 15 (see
        # docs/ratelimiting.md). Intervals are placed on the clients' receive
        # times, which trail the decisions by a few ms: 0.2 s of refill (10)
        # is allowed for that.
        L, lease, n_inst = 50, 5, 3
        rules = [rule("steady", L, window=1, mode="hybrid", lease_size=lease, key="route",
                      redis_timeout_ms=2000)]
        gws = [self.gateway(rules) for _ in range(n_inst)]
        addrs = [g.addr("main") for g in gws]
        t_end = time.monotonic() + 4.0
        times, lock = [], threading.Lock()

        def client(i):
            while time.monotonic() < t_end:
                try:
                    st = http_get(addrs[i % n_inst], "/echo", timeout=10)[0]
                except OSError:
                    continue
                if st == 200:
                    with lock:
                        times.append(time.monotonic())

        threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        times.sort()
        worst, j = 0, 0
        for i in range(len(times)):
            while times[i] - times[j] >= 1.0:
                j += 1
            worst = max(worst, i - j + 1)
        bound = L + L + n_inst * lease + int(L * 0.2)
        sys.stderr.write("\nhybrid steady overload: %d allowed in 4 s, at most %d in any 1 s "
                         "(token bucket alone: 100; bound with leases: 115 + 10 slack)\n"
                         % (len(times), worst))
        self.assertGreater(len(times), 150)
        self.assertLessEqual(worst, bound)

    def script_calls(self):
        info = self.redis.cli("INFO", "commandstats")
        return sum(int(m) for m in re.findall(r"cmdstat_eval(?:sha)?:calls=(\d+)", info))

    def test_redis_stopped_mid_load(self):
        # 8 clients send requests back to back on two routes (fail open /
        # fail closed) while Redis is stopped under them and started again:
        # no request hangs past its budget, none fails otherwise, the
        # gateway stays up, and limiting is back afterwards.
        redis = self.enterContext(harness.RedisServer())
        rules = [rule("open", 1000000, key="ip", mode="redis", route="echo", redis_timeout_ms=200),
                 rule("closed", 1000000, key="ip", mode="redis", route="other", fail_open=False,
                      redis_timeout_ms=200)]
        gw = self.gateway(rules, redis={"address": redis.address, "max_backoff_ms": 200})
        addr = gw.addr("main")
        stop = threading.Event()
        results = []
        lock = threading.Lock()

        def client(i):
            path = "/echo" if i % 2 else "/status/200"
            end = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < end:
                t = time.monotonic()
                try:
                    st = http_get(addr, path, timeout=10)[0]
                except OSError:
                    st = -1
                with lock:
                    results.append((path, st, time.monotonic() - t))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            redis.stop()
            time.sleep(2.0)
            redis.start()
            time.sleep(2.0)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertGreater(len(results), 100)
        for path, st, took in results:
            self.assertLess(took, 2.0, (path, st))
            if path == "/echo":
                self.assertEqual(st, 200, "fail open")
            else:
                self.assertIn(st, (200, 429), "fail closed")
        self.assertIn(429, [st for p, st, _ in results if p != "/echo"])
        with AdminClient(gw.admin_addr) as a:
            self.assertGreater(stats(a, "open").failed_open, 0)
            self.assertGreater(stats(a, "closed").failed_closed, 0)
        harness.wait_until(lambda: http_get(addr, "/status/200")[0] == 200, timeout=10,
                           message="limiting back")
        self.assertTrue(gw.running())

    def test_keys_are_bounded_and_cluster_ready(self):
        gw = self.gateway([rule("hostile", 5, key="header:x-t+ip", mode="redis")])
        for v in ("A" * 6000, "{x} FLUSHALL\t*", "plain"):
            self.assertEqual(http_get(gw.addr("main"), "/echo", {"x-t": v})[0], 200)
        keys = self.redis.cli("KEYS", "portico:rl:*")
        self.assertGreaterEqual(len(keys), 3)
        for k in keys:
            self.assertRegex(k, r"^portico:rl:\{[0-9a-f]{16}:[0-9a-f]{16}:[!-~]+\}$")
            self.assertNotIn("{", k[len("portico:rl:{"):])
            self.assertLess(len(k), 200)
        self.assertEqual(self.redis.cli("DBSIZE"), len(self.redis.cli("KEYS", "*")))

    def test_flush_and_script_flush(self):
        # One worker: its one connection loaded the script before the flush.
        gw = self.gateway([rule("flushy", 2, key="header:x-f", mode="redis")], workers=1)
        addr, h = gw.addr("main"), {"x-f": "flush-test"}
        self.assertEqual([http_get(addr, "/echo", h)[0] for _ in range(3)], [200, 200, 429])
        self.redis.cli("FLUSHALL")
        self.redis.cli("SCRIPT", "FLUSH")
        # Counters are gone (a fresh quota); the script is sent again (EVAL
        # after NOSCRIPT), and nothing failed.
        self.assertEqual([http_get(addr, "/echo", h)[0] for _ in range(3)], [200, 200, 429])
        with AdminClient(gw.admin_addr) as a:
            st = stats(a, "flushy")
        self.assertEqual((st.allowed, st.rejected, st.failed_open, st.failed_closed), (4, 2, 0, 0))
        info = self.redis.cli("INFO", "commandstats")
        self.assertRegex(info, r"cmdstat_eval:calls=[1-9]")

    def test_redis_down_slow_and_back(self):
        redis = self.enterContext(harness.RedisServer())
        rules = [rule("open", 3, key="header:x-k", mode="redis", route="echo", redis_timeout_ms=300),
                 rule("closed", 3, key="header:x-k", mode="redis", route="other",
                      fail_open=False, redis_timeout_ms=300)]
        # One worker, so "its connection is back" is one observable fact.
        gw = self.gateway(rules, workers=1, redis={"address": redis.address, "max_backoff_ms": 200})
        addr = gw.addr("main")
        admin = self.enterContext(AdminClient(gw.admin_addr))
        self.assertEqual([http_get(addr, "/echo", {"x-k": "a"})[0] for _ in range(4)],
                         [200, 200, 200, 429])

        def timed(path, key):
            t = time.monotonic()
            status = http_get(addr, path, {"x-k": key}, timeout=10)[0]
            return status, time.monotonic() - t

        # Slow: Redis stops answering; every request ends within its budget.
        redis.pause()
        try:
            for _ in range(3):
                st, took = timed("/echo", "a")
                self.assertEqual(st, 200)
                self.assertLess(took, 2.0)
                st, took = timed("/status/200", "a")
                self.assertEqual(st, 429)
                self.assertLess(took, 2.0)
        finally:
            redis.resume()
        # Down: connections refused; failing fast.
        redis.stop()
        for _ in range(5):
            st, took = timed("/echo", "b")
            self.assertEqual(st, 200)
            self.assertLess(took, 2.0)
            st, took = timed("/status/200", "b")
            self.assertEqual(st, 429)
            self.assertLess(took, 2.0)
        self.assertGreaterEqual(stats(admin, "open").failed_open, 8)
        self.assertGreaterEqual(stats(admin, "closed").failed_closed, 8)
        self.assertIn("redis 127.0.0.1:%d unavailable" % redis.port, gw.stderr)
        # Back (same port, empty): limiting resumes without a restart.
        redis.start()

        def limited():
            return http_get(addr, "/status/200", {"x-k": "c%d" % time.monotonic_ns()})[0] == 200

        harness.wait_until(limited, timeout=20, message="redis limiting back")
        key = {"x-k": "after-restart"}
        self.assertEqual([http_get(addr, "/echo", key)[0] for _ in range(4)], [200, 200, 200, 429])
        self.assertEqual([http_get(addr, "/status/200", key)[0] for _ in range(4)],
                         [200, 200, 200, 429])
        self.assertTrue(gw.running())


REFERENCE = os.path.join(os.path.dirname(os.path.abspath(harness.portico_bin())), "rl_reference")
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "ratelimit",
                      "script.lua")


@unittest.skipUnless(shutil.which("redis-server"), "redis-server not installed (scripts/setup.sh --test)")
@unittest.skipUnless(os.path.exists(REFERENCE), "rl_reference not built (PORTICO_TESTS=ON)")
class TestScriptMirrorsAlgo(unittest.TestCase):
    """The Redis script against algo.c (tests/unit/ratelimit/rl_reference)
    on random traces with a given clock: the same decisions, remaining,
    reset and retry (the script works in microseconds: the C times rounded
    up), takes and refunds."""

    def test_random_traces(self):
        with harness.RedisServer() as redis, open(SCRIPT) as f:
            sha = redis.cli("SCRIPT", "LOAD", f.read())
            rnd = random.Random(6)
            lines, calls = [], []
            for trace in range(200):
                algo = rnd.choice(["token_bucket", "gcra", "sliding_window"])
                limit = rnd.choice([1, 2, 3, 5, 10, 37])
                burst = rnd.choice([0, 0, 1, 4])
                window = rnd.choice([1000, 7919, 100000, 1000000, 3000000])
                now = 1700000000000000 + rnd.randrange(0, 10 ** 9)
                charges = []
                for i in range(40):
                    now += rnd.choice([0, 0, 1, 17, window // limit, window // 3, window, 3 * window,
                                       -rnd.randrange(1, 50)])
                    key = "t%d" % trace
                    r = rnd.random()
                    if r < 0.12 and charges:
                        op, n, charged = "r", 1, rnd.choice(charges)
                    elif r < 0.25:
                        op, n, charged = "t", rnd.randrange(1, 6), 0
                    else:
                        op, n, charged = "d", rnd.choice([1, 1, 1, 2]), 0
                    lines.append("%s %s %s %d %d %d %d %d %d" % (key, op, algo, limit, burst, window,
                                                                n, now, charged))
                    calls.append((key, op, "sw" if algo == "sliding_window" else "tb", limit, burst,
                                  window, n, charged, now))
                    if op == "d":
                        charges.append(now)
            ref = subprocess.run([REFERENCE], input="\n".join(lines) + "\n", capture_output=True,
                                 text=True, timeout=60, check=True).stdout.split("\n")
            for i, (key, op, algo, limit, burst, window, n, charged, now) in enumerate(calls):
                got = redis.cli("EVALSHA", sha, "1", "mirror:" + key, op, algo, limit, burst, window,
                                n, charged, now)
                want = ref[i].split()
                where = "%s (%s)" % (lines[i], got)
                if op == "d":
                    self.assertEqual([str(v) for v in got[:4]], want, where)
                elif op == "t":
                    self.assertEqual(str(got[0]), want[0], where)


if __name__ == "__main__":
    unittest.main()
