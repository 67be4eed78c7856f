"""Live admin changes under traffic: "an accepted change is serving on every
worker within 100 ms, with no dropped connection and no failed request".

One gateway (2 workers) in front of two HTTP/1.1 backends (server ids A and
B) and one gRPC backend. For the whole test, client threads keep traffic
flowing, each over ONE connection that must survive to the end:

  h1      2 threads, HTTP/1.1 keep-alive GET /echo/h1/...     (route h1-base)
  h2      1 thread, raw h2c streams GET /echo/h2/...          (route h2-base)
  unary   1 thread, gRPC Echo on one channel                  (route grpc)
  stream  1 long-lived gRPC server stream, a message every 20 ms, indices
          checked consecutive                                 (route grpc)

Meanwhile the test makes 200 admin changes: create route, update route
with and without a FieldMask (a `headers` filter setting x-rev, a new
timeout), delete route, create service, update service (its only instance
flips between A and B, with new connect/idle timeouts; with and without a
mask), and updates of the very routes the traffic uses (h1-base, h2-base,
grpc: new x-rev header, new timeout, always valid).

Every worker is probed: probe connections (HTTP/1.1 and gRPC channels) are
opened until each worker holds one, which the access log's "worker" key
tells (request ids sent by the probe are matched to log lines). After each
admin call returns, the probes of every worker are polled until the change
shows (the new route answers, the deleted one is 404, the header carries
the new x-rev, the answer comes from the new instance); the latency of a
change is the time until the LAST worker shows it. Every latency must be
<= 100 ms; the distribution is printed. A service created alone changes no
traffic: it is observed through the route created on it next.

At the end: zero failed requests, every traffic connection is the one it
started with (the HTTP connections never saw EOF, the gRPC channels went
READY once and never left it), and the stream's messages kept coming in
order.

Gateway-only (skipped with PORTICO_DIRECT=1).
Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_admin_live
"""

import json
import os
import socket
import statistics
import struct
import sys
import threading
import time
import unittest
import uuid

import grpc

import harness
import protoload
import wire
from adminclient import AdminClient

HOST = "127.0.0.1"
WORKERS = 2
N_CHANGES = 200
LIMIT_MS = 100.0
VISIBLE_TIMEOUT_S = 5.0  # give up on one change after this (the assertion reports it)
TEST_BUDGET_S = 120.0    # hard bound of the change loop
MAX_PROBE_CONNS = 64

echo_pb2 = harness.load_echo()
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"]


def rev_filter(rev):
    return [{"name": "headers", "config": {"response": {"set": {"x-rev": str(rev)}}}}]


def percentile(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


class Traffic(object):
    """Counters and errors shared by the traffic threads."""

    def __init__(self):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = {}
        self.errors = []

    def count(self, name):
        with self.lock:
            self.ok[name] = self.ok.get(name, 0) + 1

    def error(self, name, what):
        with self.lock:
            self.errors.append("%s: %s" % (name, what))


def h1_client(t, port, name):
    conn = wire.RawConn(HOST, port, timeout=30)
    local = conn.sock.getsockname() if hasattr(conn, "sock") else None
    n = 0
    try:
        while not t.stop.is_set():
            conn.send(wire.request_bytes("GET", "/echo/h1/%s/%d" % (name, n)))
            r = conn.read_response()
            n += 1
            if r.status != 200:
                t.error(name, "status %d on request %d" % (r.status, n))
            elif "close" in r.connection_tokens():
                t.error(name, "the gateway asked to close the connection")
                return
            else:
                t.count(name)
            time.sleep(0.002)
    except Exception as exc:  # noqa: BLE001 - a drop is the failure counted
        t.error(name, "connection failed after %d requests: %r" % (n, exc))
    finally:
        conn.close()
    return local


def h2_client(t, port, name):
    try:
        c = wire.H2Conn(HOST, port, timeout=30, settings=wire.BIG_WINDOW)
        c.handshake()
        c.open_windows()
    except Exception as exc:  # noqa: BLE001
        t.error(name, "h2 setup failed: %r" % (exc,))
        return
    sid, n = 1, 0
    try:
        while not t.stop.is_set():
            c.request(sid, "GET", "/echo/h2/%d" % n)
            state = {"status": None, "end": False, "bad": None}

            def until(f, sid=sid, state=state):
                ftype, flags, s, payload = f
                if ftype == wire.GOAWAY:
                    state["bad"] = "GOAWAY %r" % (struct.unpack(">II", payload[:8]),)
                    return True
                if s != sid:
                    return False
                if ftype == wire.RST_STREAM:
                    state["bad"] = "RST_STREAM %d" % struct.unpack(">I", payload)[0]
                    return True
                if ftype == wire.HEADERS and state["status"] is None:
                    state["status"] = wire.status_of_headers(payload, flags)
                if ftype in (wire.HEADERS, wire.DATA) and flags & wire.FLAG_END_STREAM:
                    state["end"] = True
                    return True
                return False

            f = c.collect(until, timeout=30)
            c.frames = []
            n += 1
            if f is None:
                t.error(name, "connection closed after %d requests" % n)
                return
            if state["bad"]:
                t.error(name, state["bad"])
                return
            if state["status"] != 200:
                t.error(name, "status %r on stream %d" % (state["status"], sid))
            else:
                t.count(name)
            sid += 2
            time.sleep(0.002)
    except Exception as exc:  # noqa: BLE001
        t.error(name, "h2 connection failed after %d requests: %r" % (n, exc))
    finally:
        c.close()


class ChannelWatch(object):
    """Connectivity states a channel went through (one connection: READY
    once, never back to CONNECTING/TRANSIENT_FAILURE/IDLE)."""

    def __init__(self, channel):
        self.states = []
        self.lock = threading.Lock()
        channel.subscribe(self._on, try_to_connect=True)

    def _on(self, state):
        with self.lock:
            if not self.states or self.states[-1] != state:
                self.states.append(state)

    def after_ready(self):
        with self.lock:
            s = list(self.states)
        if grpc.ChannelConnectivity.READY not in s:
            return s
        return s[s.index(grpc.ChannelConnectivity.READY):]


def grpc_unary_client(t, channel, name):
    stub = protoload.Stub(channel, ECHO)
    n = 0
    while not t.stop.is_set():
        try:
            r = stub.Echo(echo_pb2.EchoRequest(message="u%d" % n), timeout=30)
            if r.message != "u%d" % n:
                t.error(name, "wrong answer %r" % r.message)
            else:
                t.count(name)
        except grpc.RpcError as exc:
            t.error(name, "Echo %d: %s %s" % (n, exc.code(), exc.details()))
        n += 1
        time.sleep(0.002)


def grpc_stream_client(t, call, name, state):
    expect = 0
    try:
        for r in call:
            if r.index != expect:
                t.error(name, "message %d arrived as index %d" % (expect, r.index))
            expect = r.index + 1
            state["received"] = expect
            t.count(name)
    except grpc.RpcError as exc:
        if not (t.stop.is_set() and exc.code() == grpc.StatusCode.CANCELLED):
            t.error(name, "stream broke after %d messages: %s %s" % (expect, exc.code(), exc.details()))
        return
    if not t.stop.is_set():
        t.error(name, "stream ended early after %d messages" % expect)


@unittest.skipIf(harness.DIRECT, "gateway-only")
class LiveAdminTest(unittest.TestCase):

    def setUp(self):
        self.be_a = harness.HttpBackend(server_id="A").start()
        self.addCleanup(self.be_a.stop)
        self.be_b = harness.HttpBackend(server_id="B").start()
        self.addCleanup(self.be_b.stop)
        self.be_g = harness.GrpcBackend().start()
        self.addCleanup(self.be_g.stop)
        cfg = {
            "workers": WORKERS,
            "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
            "services": [
                {"name": "web", "instances": [self.be_a.instance()]},
                {"name": "flip", "instances": [self.be_a.instance()]},
                {"name": "grpc", "protocol": "grpc", "instances": [self.be_g.instance()]},
            ],
            "routes": [
                {"name": "h1-base", "path_prefix": "/echo/h1", "service": "web"},
                {"name": "h2-base", "path_prefix": "/echo/h2", "service": "web"},
                {"name": "flip-route", "path_prefix": "/echo/flip", "service": "flip"},
                {"name": "grpc", "path_prefix": "/portico.test.Echo", "service": "grpc"},
            ],
        }
        self.gw = harness.Portico(cfg)
        self.gw.__enter__()
        self.addCleanup(self.gw.__exit__, None, None, None)
        self.port = self.gw.port("main")
        harness.wait_until(lambda: harness.can_connect(HOST, int(self.gw.admin_addr.rsplit(":", 1)[1])),
                           timeout=30, message="admin port")
        self.admin = AdminClient(self.gw.admin_addr)
        self.addCleanup(self.admin.close)

    # -- probes: one HTTP/1.1 connection and one gRPC channel per worker -----

    def _worker_of(self, request_ids):
        """{request id: worker} from the access log, waiting for all ids."""
        want = set(request_ids)

        def found():
            got = {}
            for line in self.gw.access_log_lines():
                if line.get("request_id") in want:
                    got[line["request_id"]] = line["worker"]
            return got if len(got) == len(want) else None
        return harness.wait_until(found, timeout=10, message="probe requests in the access log")

    def open_probes(self):
        h1 = {}
        spare = []
        for k in range(MAX_PROBE_CONNS):
            c = wire.RawConn(HOST, self.port, timeout=10)
            rid = "probe-h1-%d-%s" % (k, uuid.uuid4().hex[:8])
            c.send(wire.request_bytes("GET", "/echo/h1/probe", headers=[("X-Request-Id", rid)]))
            self.assertEqual(c.read_response().status, 200)
            w = self._worker_of([rid])[rid]
            if w in h1:
                spare.append(c)
            else:
                h1[w] = c
            if len(h1) == WORKERS:
                break
        for c in spare:
            c.close()
        self.assertEqual(sorted(h1), list(range(WORKERS)),
                         "probe connections reached workers %s only" % sorted(h1))
        grpc_probes = {}
        for k in range(MAX_PROBE_CONNS):
            ch = harness.grpc_channel(self.gw.addr("main"))
            stub = protoload.Stub(ch, ECHO)
            rid = "probe-grpc-%d-%s" % (k, uuid.uuid4().hex[:8])
            stub.Echo(echo_pb2.EchoRequest(message="p"), metadata=[("x-request-id", rid)], timeout=10)
            w = self._worker_of([rid])[rid]
            if w in grpc_probes:
                ch.close()
            else:
                grpc_probes[w] = (ch, stub)
            if len(grpc_probes) == WORKERS:
                break
        self.assertEqual(sorted(grpc_probes), list(range(WORKERS)),
                         "gRPC probe channels reached workers %s only" % sorted(grpc_probes))
        for c in h1.values():
            self.addCleanup(c.close)
        for ch, _ in grpc_probes.values():
            self.addCleanup(ch.close)
        return h1, grpc_probes

    def http_probe(self, conn, path):
        conn.send(wire.request_bytes("GET", path))
        r = conn.read_response()
        self.assertNotIn("close", r.connection_tokens(), "probe connection closed by the gateway")
        return r

    def wait_visible(self, t0, check_worker):
        """Poll check_worker(w) for every worker until each has returned
        True once; the seconds from t0 until the last one did, or None."""
        pending = set(range(WORKERS))
        deadline = t0 + VISIBLE_TIMEOUT_S
        last = t0
        while pending and time.monotonic() < deadline:
            for w in sorted(pending):
                if check_worker(w):
                    last = time.monotonic()
                    pending.discard(w)
        return None if pending else last - t0

    # -- the test ----------------------------------------------------------------

    def test_200_changes_under_traffic(self):
        h1_probes, grpc_probes = self.open_probes()
        t = Traffic()
        threads = []
        for k in range(2):
            threads.append(threading.Thread(target=h1_client, args=(t, self.port, "h1-%d" % k), daemon=True))
        threads.append(threading.Thread(target=h2_client, args=(t, self.port, "h2"), daemon=True))
        unary_ch = harness.grpc_channel(self.gw.addr("main"))
        self.addCleanup(unary_ch.close)
        unary_watch = ChannelWatch(unary_ch)
        threads.append(threading.Thread(target=grpc_unary_client, args=(t, unary_ch, "grpc-unary"), daemon=True))
        stream_ch = harness.grpc_channel(self.gw.addr("main"))
        self.addCleanup(stream_ch.close)
        stream_watch = ChannelWatch(stream_ch)
        stream_state = {"received": 0}
        stream_call = protoload.Stub(stream_ch, ECHO).Stream(
            echo_pb2.EchoRequest(message="s", stream_count=1000000, stream_interval_ms=20), timeout=600)
        threads.append(threading.Thread(target=grpc_stream_client,
                                        args=(t, stream_call, "grpc-stream", stream_state), daemon=True))
        for th in threads:
            th.start()
        try:
            latencies, kinds = self.run_changes(h1_probes, grpc_probes, t)
        finally:
            stream_before = stream_state["received"]
            time.sleep(0.3)  # the stream keeps delivering after the last change
            stream_after = stream_state["received"]
            t.stop.set()
            stream_call.cancel()
            for th in threads:
                th.join(timeout=40)
        self.assertFalse([th.name for th in threads if th.is_alive()], "traffic threads did not stop")

        vals = sorted(v * 1000.0 for v in latencies.values() if v is not None)
        sys.stderr.write(
            "\nlive admin: %d changes (%s); change->served on all %d workers: n=%d median %.2f ms, "
            "p90 %.2f ms, p99 %.2f ms, max %.2f ms\n"
            % (len(kinds), ", ".join("%s %d" % (k, n) for k, n in sorted(count_kinds(kinds).items())),
               WORKERS, len(vals), statistics.median(vals) if vals else float("nan"),
               percentile(vals, 90), percentile(vals, 99), vals[-1] if vals else float("nan")))
        sys.stderr.write("traffic: %s; stream messages %d\n"
                         % (", ".join("%s %d" % kv for kv in sorted(t.ok.items())), stream_state["received"]))

        self.assertEqual(t.errors, [], "failed requests or dropped connections")
        self.assertEqual(len(kinds), N_CHANGES)
        missing = [i for i, v in latencies.items() if v is None]
        self.assertEqual(missing, [], "changes never seen on every worker within %.0fs: %s"
                         % (VISIBLE_TIMEOUT_S, [(i, kinds[i]) for i in missing]))
        slow = [(i, kinds[i], round(v * 1000, 2)) for i, v in sorted(latencies.items()) if v * 1000 > LIMIT_MS]
        self.assertEqual(slow, [], "changes served later than %.0f ms after the call returned" % LIMIT_MS)
        for name in ("h1-0", "h1-1", "h2", "grpc-unary", "grpc-stream"):
            self.assertGreater(t.ok.get(name, 0), 20, "too little %s traffic: %s" % (name, t.ok))
        self.assertGreater(stream_after, stream_before, "the long-lived stream stopped delivering")
        for what, watch in (("unary", unary_watch), ("stream", stream_watch)):
            self.assertEqual(watch.after_ready(), [grpc.ChannelConnectivity.READY],
                             "the %s channel reconnected: %s" % (what, watch.states))

    def run_changes(self, h1_probes, grpc_probes, t):
        admin = self.admin
        a_id, b_id = "A", "B"
        ver = {}             # route/service name -> version
        routes = []          # created routes alive: (name, service, server id)
        services = {}        # created service -> server id
        latest_service = None
        flip_on = "A"
        latencies, kinds = {}, {}
        deadline = time.monotonic() + TEST_BUDGET_S

        def expect_status(path, status, server=None, rev=None):
            def check(w):
                r = self.http_probe(h1_probes[w], path)
                if r.status != status:
                    return False
                if server is not None and r.json().get("server_id") != server:
                    return False
                return rev is None or r.get("x-rev") == str(rev)
            return check

        def expect_grpc_rev(rev):
            def check(w):
                _, stub = grpc_probes[w]
                _, call = stub.Echo.with_call(echo_pb2.EchoRequest(message="probe"), timeout=10)
                return dict(call.initial_metadata()).get("x-rev") == str(rev)
            return check

        def route_body(name, prefix, service, rev=None, timeout_ms=None):
            r = {"name": name, "path_prefix": prefix, "service": service}
            if rev is not None:
                r["filters"] = rev_filter(rev)
            if timeout_ms:
                r["timeout_ms"] = timeout_ms
            return r

        base_routes = {
            "h1-base": ("/echo/h1", "web", lambda rev: expect_status("/echo/h1/p", 200, rev=rev)),
            "h2-base": ("/echo/h2", "web", lambda rev: expect_status("/echo/h2/p", 200, rev=rev)),
            "grpc": ("/portico.test.Echo", "grpc", expect_grpc_rev),
        }
        for name in base_routes:
            ver[name] = int(admin.call_dict("GetRoute", {"route_id": name})["version"])
        ver["flip"] = int(admin.call_dict("GetService", {"name": "flip"})["version"])

        for i in range(N_CHANGES):
            self.assertLess(time.monotonic(), deadline, "change loop over its time budget")
            if t.errors:
                break  # the traffic failed: stop and report
            slot = i % 10
            check = None
            if slot == 0 or (slot == 6 and not routes):
                svc = latest_service or "web"
                sid = services.get(svc, a_id)
                name, prefix = "r%d" % i, "/echo/r%d" % i
                kind = "create route"
                out = admin.call_dict("CreateRoute", {"route": route_body(name, prefix, svc)})
                ver[name] = int(out["version"])
                routes.append((name, prefix, svc))
                check = expect_status(prefix + "/x", 200, server=sid)
                latest_service = None
            elif slot in (1, 3) and routes:
                name, prefix, svc = routes[-1]
                rev = "r%d" % i
                if slot == 1:
                    kind = "update route (mask)"
                    out = admin.call_dict("UpdateRoute", {
                        "route_id": name, "version": ver[name], "route": {"filters": rev_filter(rev)},
                        "update_mask": "filters"})
                else:
                    kind = "update route (whole)"
                    out = admin.call_dict("UpdateRoute", {
                        "route_id": name, "version": ver[name],
                        "route": route_body(name, prefix, svc, rev=rev, timeout_ms=20000 + i)})
                ver[name] = int(out["version"])
                check = expect_status(prefix + "/x", 200, rev=rev)
            elif slot in (2, 7):
                flip_on = b_id if flip_on == a_id else a_id
                be = self.be_b if flip_on == b_id else self.be_a
                svc = {"name": "flip", "instances": [be.instance()],
                       "connect_timeout_ms": 1000 + i, "idle_timeout_ms": 30000 + i}
                if slot == 2:
                    kind = "update service (whole)"
                    req = {"service_id": "flip", "version": ver["flip"], "service": svc}
                else:
                    kind = "update service (mask)"
                    req = {"service_id": "flip", "version": ver["flip"], "service": svc,
                           "update_mask": "instances,connectTimeoutMs,idleTimeoutMs"}
                ver["flip"] = int(admin.call_dict("UpdateService", req)["version"])
                check = expect_status("/echo/flip/x", 200, server=flip_on)
            elif slot in (4, 5, 8):
                name = ("h1-base", "h2-base", "grpc")[(4, 5, 8).index(slot)]
                prefix, svc, mk = base_routes[name]
                rev = "b%d" % i
                if (i // 10) % 2 == 0:
                    kind = "update traffic route (mask)"
                    out = admin.call_dict("UpdateRoute", {
                        "route_id": name, "version": ver[name],
                        "route": {"filters": rev_filter(rev), "timeout_ms": 30000 + i},
                        "update_mask": "filters,timeoutMs"})
                else:
                    kind = "update traffic route (whole)"
                    out = admin.call_dict("UpdateRoute", {
                        "route_id": name, "version": ver[name],
                        "route": route_body(name, prefix, svc, rev=rev, timeout_ms=30000 + i)})
                ver[name] = int(out["version"])
                check = mk(rev)
            elif slot == 6:
                name, prefix, _ = routes.pop(0)
                kind = "delete route"
                admin.call_dict("DeleteRoute", {"route_id": name, "version": ver.pop(name)})
                check = expect_status(prefix + "/x", 404)
            else:  # slot 9: a service, routed by the next create route
                name = "s%d" % i
                sid = b_id if (i // 10) % 2 else a_id
                be = self.be_b if sid == b_id else self.be_a
                kind = "create service"
                admin.call_dict("CreateService", {"service": {
                    "name": name, "instances": [be.instance()], "connect_timeout_ms": 2000}})
                services[name] = sid
                latest_service = name
            t0 = time.monotonic()
            kinds[i] = kind
            if check is not None:
                latencies[i] = self.wait_visible(t0, check)
        return latencies, kinds


def count_kinds(kinds):
    out = {}
    for k in kinds.values():
        out[k] = out.get(k, 0) + 1
    return out


if __name__ == "__main__":
    unittest.main()
