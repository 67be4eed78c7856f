"""Retries and timeouts through the gateway, against backends that fail on
command (backends/fault_backend.py): a 503 or a reset retried on the other
instance; a POST with a body retried only with retry_unsafe, its body
replayed intact; a hanging instance skipped by the per-try timeout; the
retry budget capping what failing backends see under concurrency; the
overall deadline across attempts; gRPC UNAVAILABLE retried.

Requests are counted at the backends (their /__stats or log lines) and in
the route's statistics (admin GetRouteStats: retries,
retry_budget_exhausted, per_try_timeouts). Gateway: 2 workers.

All gateway-only (skipped with PORTICO_DIRECT=1).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_retry
"""

import contextlib
import hashlib
import http.client
import json
import os
import threading
import time
import unittest

import grpc

import adminclient
import harness
import protoload
import wire

HOST = "127.0.0.1"
TIMEOUT = 30.0

echo_pb2 = harness.load_echo()
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"]
Req = echo_pb2.EchoRequest


class FaultBackend(harness.BackendProcess):
    """backends/fault_backend.py: fails on command."""
    script = os.path.join(harness.BACKENDS_DIR, "fault_backend.py")
    kind = "fault"

    def stats(self):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=TIMEOUT)
        try:
            conn.request("GET", "/__stats")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def requests(self):
        return self.stats()["requests"]

    def grpc_calls(self):
        return self.log_text().count("CALL ")


def request(gw, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, data
    finally:
        conn.close()


class RetryCase(unittest.TestCase):

    def setUp(self):
        if harness.DIRECT:
            self.skipTest("gateway-only (PORTICO_DIRECT=1)")
        self._stack = contextlib.ExitStack()
        self.addCleanup(self._stack.close)

    def fault(self, name, *args):
        return self._stack.enter_context(FaultBackend(server_id=name, extra_args=list(args)))

    def gateway(self, instances, route, protocol=None, workers=2):
        svc = {"name": "web", "instances": [b.instance() for b in instances]}
        if protocol:
            svc["protocol"] = protocol
        cfg = {"listeners": [{"name": "main", "address": "127.0.0.1:0",
                              "protocols": ["http1", "h2c"]}],
               "services": [svc],
               "routes": [dict({"name": "r", "path_prefix": "/", "service": "web"}, **route)],
               "drain_timeout_ms": 5000}
        gw = self._stack.enter_context(harness.Portico(cfg, workers=workers))
        self.addCleanup(self.check_clean_exit, gw)
        return gw

    def check_clean_exit(self, gw):
        rc = gw.stop(timeout=60) if gw.running() else gw.proc.returncode
        self.assertEqual(rc, 0, "gateway exit status %s; stderr tail:\n%s" % (rc, gw.stderr[-4000:]))

    def route_stats(self, gw):
        with adminclient.AdminClient(gw.admin_addr) as admin:
            return admin.call("GetRouteStats", route_id="r")


class TestRetryConditions(RetryCase):

    def test_503_is_retried_on_the_other_instance(self):
        bad = self.fault("bad", "--mode", "503")
        good = self.fault("good")
        gw = self.gateway([bad, good], {"retry_count": 1, "retry_on": ["5xx"]})
        for i in range(8):
            status, body = request(gw, "GET", "/item/%d" % i)
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)["server_id"], "good")
        self.assertGreaterEqual(bad.requests(), 1)  # round robin sent some there first
        self.assertEqual(good.requests(), 8)
        harness.wait_until(lambda: self.route_stats(gw).retries == bad.requests(),
                           message="route stats count every retry")
        # The access log says how many attempts each request took.
        harness.wait_until(lambda: len(gw.access_log_lines()) >= 8, message="access log lines")
        attempts = [l.get("attempts", 1) for l in gw.access_log_lines()]
        self.assertEqual(sum(a - 1 for a in attempts), bad.requests())
        self.assertLessEqual(max(attempts), 2)

    def test_503_without_the_condition_is_returned(self):
        bad = self.fault("bad", "--mode", "503")
        good = self.fault("good")
        gw = self.gateway([bad, good], {"retry_count": 1, "retry_on": ["reset"]})
        statuses = [request(gw, "GET", "/x")[0] for _ in range(6)]
        self.assertIn(503, statuses)
        self.assertEqual(statuses.count(503), bad.requests())

    def test_reset_is_retried(self):
        bad = self.fault("bad", "--mode", "reset")
        good = self.fault("good")
        gw = self.gateway([bad, good], {"retry_count": 1, "retry_on": ["reset"]})
        for i in range(6):
            status, body = request(gw, "GET", "/r/%d" % i)
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)["server_id"], "good")
        self.assertGreaterEqual(bad.requests(), 1)

    def test_post_with_body_needs_retry_unsafe(self):
        bad = self.fault("bad", "--mode", "503")
        good = self.fault("good")
        body = bytes(range(256)) * 40  # 10 KiB: sent upstream before the 503 comes back
        gw = self.gateway([bad, good], {"retry_count": 1, "retry_on": ["5xx"]})
        statuses = [request(gw, "POST", "/orders", body)[0] for _ in range(6)]
        self.assertIn(503, statuses, "a POST that reached the server is not repeated")
        self.assertEqual(statuses.count(503), bad.requests())
        # PUT is idempotent: retried, and the body arrives whole at the other instance.
        for _ in range(4):
            status, data = request(gw, "PUT", "/orders/1", body)
            self.assertEqual(status, 200, data)
            got = json.loads(data)
            self.assertEqual(got["body_len"], len(body))
            self.assertEqual(got["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_retry_unsafe_replays_the_body(self):
        bad = self.fault("bad", "--mode", "503")
        good = self.fault("good")
        body = os.urandom(20000)
        gw = self.gateway([bad, good], {"retry_count": 1, "retry_on": ["5xx"], "retry_unsafe": True})
        for _ in range(6):
            status, data = request(gw, "POST", "/orders", body)
            self.assertEqual(status, 200, data)
            got = json.loads(data)
            self.assertEqual(got["server_id"], "good")
            self.assertEqual(got["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertGreaterEqual(bad.requests(), 1)

    def test_body_larger_than_the_replay_buffer_is_not_retried(self):
        bad = self.fault("bad", "--mode", "503")
        good = self.fault("good")
        body = b"x" * (200 * 1024)  # above the 64 KiB kept for replay
        gw = self.gateway([bad, good], {"retry_count": 1, "retry_on": ["5xx"]})
        statuses = [request(gw, "PUT", "/big", body)[0] for _ in range(4)]
        self.assertIn(503, statuses)
        self.assertEqual(statuses.count(503), bad.requests())


class TestBackoff(RetryCase):

    def test_backoff_never_waits_past_the_deadline(self):
        # Backoff drawn from [0, 30 s] against a 2 s deadline: a retry that
        # could not start in time does not happen; the client gets the last
        # response (503) at once instead of a 504 at the deadline.
        a = self.fault("a", "--mode", "503")
        b = self.fault("b", "--mode", "503")
        gw = self.gateway([a, b], {"retry_count": 1, "retry_on": ["5xx"], "timeout_ms": 2000,
                                   "retry_backoff_base_ms": 30000,
                                   "retry_backoff_max_ms": 30000})
        for i in range(6):
            t0 = time.monotonic()
            status, body = request(gw, "GET", "/bo/%d" % i)
            self.assertEqual(status, 503, body)
            self.assertLess(time.monotonic() - t0, 6.0)

    def test_client_gone_during_the_backoff(self):
        # Backoff drawn from [0, 60 s]: a client that goes away meanwhile
        # ends its exchange at once (the wait is cancelled, nothing fires
        # later on freed memory; the ASan build checks the latter).
        a = self.fault("a", "--mode", "503")
        b = self.fault("b", "--mode", "503")
        gw = self.gateway([a, b], {"retry_count": 1, "retry_on": ["5xx"], "timeout_ms": 120000,
                                   "retry_backoff_base_ms": 60000,
                                   "retry_backoff_max_ms": 60000})
        # HTTP/2: closing the connection ends its streams (an HTTP/1.1
        # client's FIN after a complete request is only a half-close).
        for i in range(6):
            h = wire.H2Conn(HOST, gw.port("main"), timeout=TIMEOUT)
            h.handshake()
            h.request(1, "GET", "/gone/%d" % i)
            harness.wait_until(lambda: a.requests() + b.requests() > i, timeout=TIMEOUT,
                               message="first attempt answered")
            time.sleep(0.1)
            h.close()
        harness.wait_until(lambda: self.route_stats(gw).in_flight == 0, timeout=10,
                           message="the abandoned requests ended well before their backoff")
        self.assertTrue(gw.running())


class TestTimeouts(RetryCase):

    def test_per_try_timeout_moves_on_from_a_hanging_instance(self):
        hang = self.fault("hang", "--mode", "hang")
        good = self.fault("good")
        gw = self.gateway([hang, good], {"retry_count": 1, "retry_on": ["per-try-timeout"],
                                         "per_try_timeout_ms": 300, "timeout_ms": 20000})
        for i in range(4):
            t0 = time.monotonic()
            status, body = request(gw, "GET", "/p/%d" % i)
            took = time.monotonic() - t0
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)["server_id"], "good")
            self.assertLess(took, 10.0, "well within the 20 s route timeout")
        self.assertGreaterEqual(hang.requests(), 1)
        harness.wait_until(lambda: self.route_stats(gw).per_try_timeouts == hang.requests(),
                           message="per-try timeouts counted")

    def test_per_try_timeout_without_retry_is_a_504(self):
        hang = self.fault("hang", "--mode", "hang")
        gw = self.gateway([hang], {"per_try_timeout_ms": 300, "timeout_ms": 20000})
        t0 = time.monotonic()
        status, body = request(gw, "GET", "/p")
        self.assertEqual(status, 504, body)
        self.assertLess(time.monotonic() - t0, 10.0)

    def test_deadline_covers_all_attempts(self):
        a = self.fault("a", "--mode", "hang")
        b = self.fault("b", "--mode", "hang")
        gw = self.gateway([a, b], {"retry_count": 10, "retry_on": ["per-try-timeout"],
                                   "per_try_timeout_ms": 400, "timeout_ms": 1500})
        t0 = time.monotonic()
        status, body = request(gw, "GET", "/d")
        took = time.monotonic() - t0
        self.assertEqual(status, 504, body)
        self.assertGreaterEqual(took, 1.3)
        self.assertLess(took, 8.0, "the deadline ends the request, not the 10 retries")
        # At most ceil(1500 / 400) attempts fit in the deadline.
        self.assertLessEqual(a.requests() + b.requests(), 4)

    def test_grpc_deadline_exceeded_across_attempts(self):
        be = self._stack.enter_context(harness.GrpcBackend(server_id="slow"))
        gw = self.gateway([be], {"retry_count": 3, "retry_on": ["per-try-timeout"],
                                 "per_try_timeout_ms": 300, "timeout_ms": 1000}, protocol="grpc")
        with harness.grpc_channel(gw.addr("main")) as ch:
            stub = protoload.Stub(ch, ECHO)
            t0 = time.monotonic()
            with self.assertRaises(grpc.RpcError) as cm:
                stub.Echo(Req(message="x", sleep_ms=5000), timeout=TIMEOUT)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED,
                             cm.exception.details())
            self.assertLess(time.monotonic() - t0, 8.0)


class TestGrpcRetry(RetryCase):

    def test_unavailable_is_retried_with_the_message(self):
        bad = self.fault("bad", "--grpc", "--grpc-code", "14")
        good = self.fault("good", "--grpc")
        gw = self.gateway([bad, good], {"retry_count": 1, "retry_on": ["retriable-status-codes"]},
                          protocol="grpc")
        with harness.grpc_channel(gw.addr("main")) as ch:
            stub = protoload.Stub(ch, ECHO)
            for i in range(6):
                payload = os.urandom(3000)
                resp = stub.Echo(Req(message="m%d" % i, payload=payload), timeout=TIMEOUT)
                self.assertEqual(resp.server_id, "good")
                self.assertEqual(resp.payload, payload)
        self.assertGreaterEqual(bad.grpc_calls(), 1)

    def test_other_codes_are_not_retried(self):
        bad = self.fault("bad", "--grpc", "--grpc-code", "13")
        good = self.fault("good", "--grpc")
        gw = self.gateway([bad, good], {"retry_count": 1, "retry_on": ["retriable-status-codes"]},
                          protocol="grpc")
        codes = []
        with harness.grpc_channel(gw.addr("main")) as ch:
            stub = protoload.Stub(ch, ECHO)
            for i in range(4):
                try:
                    stub.Echo(Req(message="m"), timeout=TIMEOUT)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as e:
                    codes.append(e.code())
        self.assertIn(grpc.StatusCode.INTERNAL, codes)
        self.assertEqual(codes.count(grpc.StatusCode.INTERNAL), bad.grpc_calls())


class TestHedging(RetryCase):

    def test_hedge_answers_for_a_hanging_instance(self):
        hang = self.fault("hang", "--mode", "hang")
        fast = self.fault("fast")
        gw = self.gateway([hang, fast], {"timeout_ms": 20000, "hedge": {"delay_ms": 200}})
        for i in range(6):
            t0 = time.monotonic()
            status, body = request(gw, "GET", "/h/%d" % i)
            took = time.monotonic() - t0
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)["server_id"], "fast")
            self.assertLess(took, 5.0, "the hedge answered, not the 20 s deadline")
        hung = hang.requests()
        self.assertGreaterEqual(hung, 1)
        # Every request that went to the hanging instance was hedged, and
        # that attempt was cancelled once the hedge won.
        harness.wait_until(lambda: hang.log_text().count("GONE ") == hung,
                           message="the losing attempts are cancelled")
        harness.wait_until(lambda: self.route_stats(gw).hedges == hung,
                           message="hedges counted")
        harness.wait_until(lambda: len(gw.access_log_lines()) >= 6, message="access log lines")
        self.assertEqual(sum(l.get("attempts", 1) - 1 for l in gw.access_log_lines()), hung)

    def test_hedged_response_body_is_relayed_whole(self):
        hang = self.fault("hang", "--mode", "hang")
        fast = self.fault("fast")
        gw = self.gateway([hang, fast], {"timeout_ms": 20000, "hedge": {"delay_ms": 100}})
        size = 3 * 1024 * 1024 + 17
        want = harness._util.pattern(size)
        for i in range(4):
            status, body = request(gw, "GET", "/big/%d?size=%d" % (i, size))
            self.assertEqual(status, 200)
            self.assertEqual(len(body), size)
            self.assertTrue(body == want, "body differs")
        self.assertGreaterEqual(hang.requests(), 1)

    def test_requests_with_a_body_are_not_hedged(self):
        hang = self.fault("hang", "--mode", "hang")
        fast = self.fault("fast")
        gw = self.gateway([hang, fast], {"timeout_ms": 1500, "hedge": {"delay_ms": 100}})
        statuses = [request(gw, "POST", "/p/%d" % i, b"data")[0] for i in range(4)]
        self.assertIn(504, statuses)
        self.assertEqual(statuses.count(504), hang.requests())
        self.assertEqual(statuses.count(200), fast.requests())
        self.assertEqual(self.route_stats(gw).hedges, 0)

    def test_hedge_of_a_failing_instance_waits_for_the_primary(self):
        # The hedge's 503 does not win while the slow primary still runs.
        slow = self.fault("slow", "--mode", "slow", "--delay-ms", "600")
        bad = self.fault("bad", "--mode", "503")
        gw = self.gateway([slow, bad], {"timeout_ms": 20000, "hedge": {"delay_ms": 100}})
        got = {}
        for i in range(4):
            status, body = request(gw, "GET", "/w/%d" % i)
            got[status] = got.get(status, 0) + 1
            if status == 200:
                self.assertEqual(json.loads(body)["server_id"], "slow")
        # Primaries on "slow" answer 200 after their hedge's 503 was dropped;
        # primaries on "bad" answer 503 at once (no retry configured).
        self.assertEqual(got.get(200, 0), slow.requests())
        self.assertEqual(got.get(200, 0) + got.get(503, 0), 4)
        self.assertGreaterEqual(got.get(200, 0), 1)


class TestBudget(RetryCase):

    def test_budget_caps_retries_under_concurrency(self):
        a = self.fault("a", "--mode", "hang")
        b = self.fault("b", "--mode", "hang")
        n, retry_count = 20, 3
        gw = self.gateway([a, b], {"retry_count": retry_count, "retry_on": ["per-try-timeout"],
                                   "per_try_timeout_ms": 600, "timeout_ms": 20000,
                                   "retry_budget": {"budget_percent": 20,
                                                    "min_retry_concurrency": 1}})
        results = []
        lock = threading.Lock()
        go = threading.Barrier(n)

        def one(i):
            go.wait(timeout=TIMEOUT)
            status, _ = request(gw, "GET", "/b/%d" % i)
            with lock:
                results.append(status)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(len(results), n)
        self.assertEqual(set(results), {504})
        seen = a.requests() + b.requests()
        # Without a budget: n * (1 + retry_count) = 80 attempts. With it, at
        # most 20% of the requests in flight retry at once (at least 1), and
        # each budgeted retry slot serves one attempt at a time.
        self.assertGreaterEqual(seen, n)
        self.assertLessEqual(seen, n + (n * 20 // 100) * retry_count, "attempts seen: %d" % seen)
        st = self.route_stats(gw)
        self.assertGreater(st.retry_budget_exhausted, 0)
        self.assertEqual(st.retries, seen - n)


if __name__ == "__main__":
    unittest.main()
