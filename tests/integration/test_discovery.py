"""Service discovery (Service.discovery, Config.dns) against a real DNS
server and real backends: dnsmasq (Debian's dnsmasq-base) on 127.0.0.1 and
a free port answers A records from a hosts file it re-reads on SIGHUP, and
SRV records from a conf file (not re-read on SIGHUP: changing them restarts
dnsmasq on the same port). TTLs are 1 s. Also: registration through the
admin API (RegisterInstance / Heartbeat / DeregisterInstance /
ListRegistrations) and the draining of removed instances.

Backends on 127.0.0.1 and 127.0.0.2 (both loopback) share a port, so A
records alone tell them apart. Every backend reports its server_id.

All gateway-only (skipped with PORTICO_DIRECT=1); skipped without dnsmasq.

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_discovery
"""

import collections
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

import grpc

import harness
import protoload

HOST = "127.0.0.1"
TIMEOUT = 30.0
DNSMASQ = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
# A change must reach traffic within TTL (1 s) + refresh floor + publish.
CHANGE_BOUND = 20.0


def get(conn, path, headers=None):
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.read()


def server_id(body):
    return json.loads(body)["server_id"]


def free_port_on_all(hosts):
    """A TCP port free on every one of `hosts` (loopback addresses)."""
    for _ in range(50):
        port = harness.free_port(hosts[0])
        socks = []
        try:
            for h in hosts:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((h, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise harness.HarnessError("no port free on %s" % (hosts,))


def established(ip, port):
    """Established TCP connections whose local end is ip:port (the
    backend's side), from /proc/net/tcp."""
    want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(ip), "little"), port)
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[1] == want and parts[3] == "01":
                n += 1
    return n


def udp_srv_truncated(port, name):
    """Whether the UDP answer to an SRV query for name has TC set."""
    q = b"\x43\x21\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00\x00\x21\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    try:
        s.sendto(q, (HOST, port))
        data = s.recv(65535)
    finally:
        s.close()
    return data[:2] == b"\x43\x21" and bool(data[2] & 0x02)


def free_udp_port():
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both)."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind((HOST, 0))
            port = u.getsockname()[1]
            t.bind((HOST, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise harness.HarnessError("no free UDP+TCP port")


class Dnsmasq(object):
    """dnsmasq in the foreground on 127.0.0.1:port, authoritative for
    `.test` (names it lacks get NXDOMAIN/NODATA, never REFUSED), A records
    from hosts.txt (re-read on SIGHUP), SRV and host records from
    records.conf. Stopped by PID."""

    def __init__(self, tmp, port=None):
        self.tmp = tmp
        self.port = port or free_udp_port()
        self.proc = None
        self.hosts_path = tmp.join("hosts.txt")
        self.conf_path = tmp.join("records.conf")
        self.set_hosts([])
        self.set_records([])

    def set_hosts(self, entries):
        """entries: [(ip, name)]."""
        with open(self.hosts_path, "w") as f:
            for ip, name in entries:
                f.write("%s %s\n" % (ip, name))

    def set_records(self, lines):
        with open(self.conf_path, "w") as f:
            for line in lines:
                f.write(line + "\n")

    def start(self):
        cmd = [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
               "--port=%d" % self.port, "--listen-address=127.0.0.1", "--bind-interfaces",
               "--local=/test/", "--addn-hosts=" + self.hosts_path,
               "--conf-file=" + self.conf_path, "--local-ttl=1", "--auth-ttl=1",
               "--pid-file=", "--log-queries", "--log-facility=" + self.tmp.join("dnsmasq.log"),
               "--user=" + _user(), "--group=" + _group()]
        with open(self.tmp.join("dnsmasq.err"), "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err)
        harness.wait_until(lambda: self._answers() or self.proc.poll() is not None, timeout=20,
                           message="dnsmasq answering")
        if self.proc.poll() is not None:
            raise harness.StartError("dnsmasq exited: %s" % open(self.tmp.join("dnsmasq.err")).read())
        return self

    def _answers(self):
        # A bare query for "ready.test" (NXDOMAIN) proves it serves.
        q = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ready\x04test\x00\x00\x01\x00\x01")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(q, (HOST, self.port))
            data = s.recv(512)
            return data[:2] == b"\x12\x34"
        except OSError:
            return False
        finally:
            s.close()

    def reload(self):
        """Re-read hosts.txt (SIGHUP)."""
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self):
        self.stop()
        self.start()


def _user():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


def _group():
    import grp
    return grp.getgrgid(os.getgid()).gr_name


class RequestLoop(object):
    """GET /echo in a loop over one keep-alive connection (a new one after
    an error) until stopped; counts server ids and failures, and the time
    each id was last seen."""

    def __init__(self, port, max_requests=20000, max_seconds=120.0):
        self.port = port
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.counts = collections.Counter()
        self.last_seen = {}
        self.failures = []
        self.total = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        deadline = time.monotonic() + self.max_seconds
        conn = http.client.HTTPConnection(HOST, self.port, timeout=TIMEOUT)
        while not self._stop.is_set() and self.total < self.max_requests and time.monotonic() < deadline:
            try:
                status, body = get(conn, "/echo")
                with self._lock:
                    self.total += 1
                    if status == 200:
                        sid = server_id(body)
                        self.counts[sid] += 1
                        self.last_seen[sid] = time.monotonic()
                    else:
                        self.failures.append("status %d: %r" % (status, body[:200]))
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.total += 1
                    self.failures.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=TIMEOUT)
            time.sleep(0.005)  # pacing only: the assertions wait with wait_until
        conn.close()

    def snapshot(self):
        with self._lock:
            return collections.Counter(self.counts), self.total

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(TIMEOUT)
        return False


class DiscoveryCase(unittest.TestCase):

    def setUp(self):
        if harness.DIRECT:
            self.skipTest("gateway-only (PORTICO_DIRECT=1)")
        if not DNSMASQ:
            self.skipTest("dnsmasq not installed (Debian package dnsmasq-base)")
        self._stack = contextlib.ExitStack()
        self.addCleanup(self._stack.close)
        self.tmp = self._stack.enter_context(harness.TempDir(prefix="portico-dns-"))

    def dnsmasq(self, port=None, start=True):
        d = Dnsmasq(self.tmp, port)
        self._stack.callback(d.stop)
        return d.start() if start else d

    def backend(self, sid, host=HOST, port=0):
        return self._stack.enter_context(harness.HttpBackend(host=host, port=port, server_id=sid))

    def gateway(self, service, dns_port, workers=2, extra=None, protocols=("http1",)):
        cfg = {"listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": list(protocols)}],
               "services": [dict(service, name="web")],
               "routes": [{"name": "web", "path_prefix": "/", "service": "web"}],
               "dns": {"nameservers": ["127.0.0.1:%d" % dns_port], "timeout_ms": 500},
               "drain_timeout_ms": 5000}
        if extra:
            cfg.update(extra)
        gw = self._stack.enter_context(harness.Portico(cfg, workers=workers))
        self.addCleanup(self.check_clean_exit, gw)
        return gw

    def check_clean_exit(self, gw):
        rc = gw.stop(timeout=60) if gw.running() else gw.proc.returncode
        self.assertEqual(rc, 0, "gateway exit status %s; stderr tail:\n%s" % (rc, gw.stderr[-4000:]))

    def ids(self, gw, n, path="/echo"):
        """n requests; Counter of server ids (asserting 200s)."""
        counts = collections.Counter()
        conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=TIMEOUT)
        try:
            for _ in range(n):
                status, body = get(conn, path)
                self.assertEqual(status, 200, body[:300])
                counts[server_id(body)] += 1
        finally:
            conn.close()
        return counts

    def status(self, gw, path="/echo"):
        conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=TIMEOUT)
        try:
            return get(conn, path)
        finally:
            conn.close()


class TestDnsA(DiscoveryCase):

    def test_a_records_follow_changes_without_failed_requests(self):
        port = free_port_on_all(["127.0.0.1", "127.0.0.2", "127.0.0.3"])
        self.backend("one", "127.0.0.1", port)
        self.backend("two", "127.0.0.2", port)
        self.backend("three", "127.0.0.3", port)
        dns = self.dnsmasq(start=False)
        dns.set_hosts([("127.0.0.1", "web.test"), ("127.0.0.2", "web.test")])
        dns.start()
        gw = self.gateway({"discovery": {"kind": "dns", "dns_name": "web.test", "port": port,
                                         "family": "ipv4", "min_ttl_ms": 500}}, dns.port)
        harness.wait_until(lambda: self.status(gw)[0] == 200, timeout=CHANGE_BOUND,
                           message="first resolution")
        counts = self.ids(gw, 40)
        self.assertEqual(set(counts), {"one", "two"}, counts)

        with RequestLoop(gw.port("main")) as loop:
            harness.wait_until(lambda: loop.snapshot()[1] >= 20, timeout=TIMEOUT, message="loop running")
            # Add an instance.
            dns.set_hosts([("127.0.0.1", "web.test"), ("127.0.0.2", "web.test"),
                           ("127.0.0.3", "web.test")])
            dns.reload()
            t0 = time.monotonic()
            harness.wait_until(lambda: loop.snapshot()[0]["three"] > 0, timeout=CHANGE_BOUND,
                               message="the added instance receives traffic")
            self.assertLess(time.monotonic() - t0, CHANGE_BOUND)
            # Remove one.
            dns.set_hosts([("127.0.0.2", "web.test"), ("127.0.0.3", "web.test")])
            dns.reload()

            def one_stopped():
                c, _ = loop.snapshot()
                seen = loop.last_seen.get("one", 0)
                return time.monotonic() - seen > 2.0 and c["two"] > 0
            harness.wait_until(one_stopped, timeout=CHANGE_BOUND + 5,
                               message="the removed instance stops receiving requests")
            before, total_before = loop.snapshot()
            harness.wait_until(lambda: loop.snapshot()[1] >= total_before + 100, timeout=TIMEOUT,
                               message="more requests")
            after, _ = loop.snapshot()
        self.assertEqual(after["one"], before["one"], "the removed instance got new requests")
        self.assertGreater(after["two"], before["two"])
        self.assertGreater(after["three"], before["three"])
        self.assertEqual(loop.failures, [], "failed requests: %s" % loop.failures[:5])

    def test_in_flight_request_to_removed_instance_completes(self):
        port = free_port_on_all(["127.0.0.1", "127.0.0.2"])
        self.backend("one", "127.0.0.1", port)
        self.backend("two", "127.0.0.2", port)
        dns = self.dnsmasq(start=False)
        dns.set_hosts([("127.0.0.1", "web.test")])
        dns.start()
        gw = self.gateway({"idle_timeout_ms": 60000,
                           "discovery": {"kind": "dns", "dns_name": "web.test", "port": port,
                                         "family": "ipv4", "min_ttl_ms": 500}}, dns.port)
        harness.wait_until(lambda: self.status(gw)[0] == 200, timeout=CHANGE_BOUND,
                           message="first resolution")
        self.assertEqual(set(self.ids(gw, 10)), {"one"})  # warm the pools (both workers)
        self.assertGreater(established("127.0.0.1", port), 0)
        result = {}

        def slow():
            conn = http.client.HTTPConnection(HOST, gw.port("main"), timeout=TIMEOUT)
            try:
                result["status"], result["body"] = get(conn, "/slow?ms=6000")
            except Exception as exc:  # noqa: BLE001 - asserted below
                result["error"] = exc
            finally:
                conn.close()
        t = threading.Thread(target=slow, daemon=True)
        t.start()
        time.sleep(0.3)  # let the slow request reach the backend (not synchronization of results)
        dns.set_hosts([("127.0.0.2", "web.test")])
        dns.reload()
        harness.wait_until(lambda: server_id(self.status(gw)[1]) == "two", timeout=CHANGE_BOUND,
                           message="new requests go to the new instance")
        t.join(TIMEOUT)
        self.assertNotIn("error", result)
        self.assertEqual(result.get("status"), 200, result)
        self.assertEqual(server_id(result["body"]), "one")
        # Traffic after the swap never reaches the removed instance.
        self.assertEqual(set(self.ids(gw, 30)), {"two"})
        # Its pooled connection closed when the slow response ended, not at
        # the idle timeout (60 s).
        harness.wait_until(lambda: established("127.0.0.1", port) == 0, timeout=10,
                           message="the removed instance's connections close once idle")

    def test_grpc_stream_to_removed_instance_completes_and_h2_connection_closes(self):
        echo_pb2 = harness.load_echo()
        port = free_port_on_all(["127.0.0.1", "127.0.0.2"])
        self._stack.enter_context(harness.GrpcBackend(host="127.0.0.1", port=port, server_id="one"))
        self._stack.enter_context(harness.GrpcBackend(host="127.0.0.2", port=port, server_id="two"))
        dns = self.dnsmasq(start=False)
        dns.set_hosts([("127.0.0.1", "web.test")])
        dns.start()
        gw = self.gateway({"protocol": "grpc", "idle_timeout_ms": 60000,
                           "discovery": {"kind": "dns", "dns_name": "web.test", "port": port,
                                         "family": "ipv4", "min_ttl_ms": 500}}, dns.port,
                          protocols=("h2c",))
        ch = harness.grpc_channel(gw.addr("main"))
        self._stack.callback(ch.close)
        stub = protoload.Stub(ch, echo_pb2.DESCRIPTOR.services_by_name["Echo"])
        Req = echo_pb2.EchoRequest

        def who():
            try:
                return stub.Echo(Req(message="x"), timeout=TIMEOUT).server_id
            except grpc.RpcError:
                return None
        harness.wait_until(lambda: who() == "one", timeout=CHANGE_BOUND, message="first resolution")
        for _ in range(10):
            self.assertEqual(who(), "one")
        slow = stub.Echo.future(Req(message="slow", sleep_ms=5000), timeout=TIMEOUT)
        time.sleep(0.3)  # let it reach the backend (not synchronization of results)
        dns.set_hosts([("127.0.0.2", "web.test")])
        dns.reload()
        harness.wait_until(lambda: who() == "two", timeout=CHANGE_BOUND,
                           message="new calls go to the new instance")
        self.assertEqual(slow.result(timeout=TIMEOUT).server_id, "one")
        self.assertEqual({who() for _ in range(10)}, {"two"})
        harness.wait_until(lambda: established("127.0.0.1", port) == 0, timeout=10,
                           message="the removed instance's HTTP/2 connections close after their last stream")

    def test_dns_down_at_start_then_resolves(self):
        port = harness.free_port()
        self.backend("one", HOST, port)
        dns = self.dnsmasq(start=False)
        dns.set_hosts([("127.0.0.1", "web.test")])
        gw = self.gateway({"discovery": {"kind": "dns", "dns_name": "web.test", "port": port,
                                         "family": "ipv4"}}, dns.port)
        t0 = time.monotonic()
        status, body = self.status(gw)
        self.assertEqual(status, 503, body[:300])
        self.assertLess(time.monotonic() - t0, 5.0, "a service without instances answers at once")
        dns.start()
        harness.wait_until(lambda: self.status(gw)[0] == 200, timeout=60,
                           message="resolves once the DNS server is up")
        self.assertEqual(set(self.ids(gw, 5)), {"one"})

    def test_failure_keeps_last_good_set(self):
        port = harness.free_port()
        self.backend("one", HOST, port)
        dns = self.dnsmasq(start=False)
        dns.set_hosts([("127.0.0.1", "web.test")])
        dns.start()
        gw = self.gateway({"discovery": {"kind": "dns", "dns_name": "web.test", "port": port,
                                         "family": "ipv4", "min_ttl_ms": 200}}, dns.port)
        harness.wait_until(lambda: self.status(gw)[0] == 200, timeout=CHANGE_BOUND,
                           message="first resolution")
        dns.stop()
        harness.wait_until(lambda: "cannot resolve web.test" in gw.stderr, timeout=CHANGE_BOUND,
                           message="the failure is logged")
        self.assertEqual(set(self.ids(gw, 10)), {"one"})
        self.assertEqual(gw.stderr.count("cannot resolve web.test"), 1, "logged once per change")


class TestDnsSrv(DiscoveryCase):

    def test_srv_priority_and_weights(self):
        a, b, c = self.backend("a"), self.backend("b"), self.backend("c")
        dns = self.dnsmasq(start=False)
        dns.set_records([
            "srv-host=_http._tcp.web.test,a.web.test,%d,10,1" % a.port,
            "srv-host=_http._tcp.web.test,b.web.test,%d,10,3" % b.port,
            "srv-host=_http._tcp.web.test,c.web.test,%d,20,1" % c.port,
            "host-record=a.web.test,127.0.0.1",
            "host-record=b.web.test,127.0.0.1",
            "host-record=c.web.test,127.0.0.1",
        ])
        dns.start()
        gw = self.gateway({"lb_algorithm": "weighted_round_robin",
                           "discovery": {"kind": "dns_srv", "dns_name": "_http._tcp.web.test",
                                         "min_ttl_ms": 500}}, dns.port, workers=1)
        harness.wait_until(lambda: self.status(gw)[0] == 200, timeout=CHANGE_BOUND,
                           message="first resolution")
        counts = self.ids(gw, 200)
        self.assertEqual(counts["c"], 0, "a higher priority value is a fallback only: %s" % counts)
        self.assertEqual(counts["a"] + counts["b"], 200)
        self.assertAlmostEqual(counts["b"] / counts["a"], 3.0, delta=0.5, msg=str(counts))

        # The whole priority-10 group goes: the fallback takes over.
        dns.set_records([
            "srv-host=_http._tcp.web.test,c.web.test,%d,20,1" % c.port,
            "host-record=c.web.test,127.0.0.1",
        ])
        dns.restart()
        harness.wait_until(lambda: set(self.ids(gw, 10)) == {"c"}, timeout=CHANGE_BOUND,
                           message="the fallback group takes over")

    def test_truncated_udp_answer_is_asked_again_over_tcp(self):
        a, b = self.backend("a"), self.backend("b")
        dns = self.dnsmasq(start=False)
        # 24 records with long target names do not fit in 512 bytes of UDP
        # (no EDNS): dnsmasq sets TC; the record for b comes last.
        lines = []
        for i in range(24):
            target = "target-number-%02d-with-a-long-name.web.test" % i
            port = b.port if i == 23 else a.port
            lines.append("srv-host=_http._tcp.web.test,%s,%d,10,1" % (target, port))
            lines.append("host-record=%s,127.0.0.1" % target)
        dns.set_records(lines)
        dns.start()
        self.assertTrue(udp_srv_truncated(dns.port, "_http._tcp.web.test"),
                        "the test needs a truncated UDP answer")
        gw = self.gateway({"discovery": {"kind": "dns_srv", "dns_name": "_http._tcp.web.test",
                                         "family": "ipv4"}}, dns.port)
        harness.wait_until(lambda: self.status(gw)[0] == 200, timeout=CHANGE_BOUND,
                           message="first resolution")
        self.assertEqual(set(self.ids(gw, 20)), {"a", "b"})

    def test_srv_targets_resolved_by_a_lookup(self):
        a = self.backend("a")
        dns = self.dnsmasq(start=False)
        # The target is in the hosts file, not a host-record: dnsmasq may or
        # may not add it to the additional section; either way it resolves.
        dns.set_hosts([("127.0.0.1", "tgt.web.test")])
        dns.set_records(["srv-host=_http._tcp.web.test,tgt.web.test,%d,0,0" % a.port])
        dns.start()
        gw = self.gateway({"discovery": {"kind": "dns_srv", "dns_name": "_http._tcp.web.test",
                                         "family": "ipv4"}}, dns.port)
        harness.wait_until(lambda: self.status(gw)[0] == 200, timeout=CHANGE_BOUND,
                           message="first resolution")
        self.assertEqual(set(self.ids(gw, 5)), {"a"})


class TestRegistration(DiscoveryCase):

    def setUp(self):
        super().setUp()
        import adminclient
        self.adminclient = adminclient

    def reg_gateway(self):
        cfg = {"listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1"]}],
               "services": [{"name": "web", "discovery": {"kind": "registration"}},
                            {"name": "static", "instances": [{"host": "127.0.0.1", "port": 9}]}],
               "routes": [{"name": "web", "path_prefix": "/", "service": "web"}],
               "drain_timeout_ms": 5000}
        gw = self._stack.enter_context(harness.Portico(cfg, workers=2))
        self.addCleanup(self.check_clean_exit, gw)
        client = self.adminclient.AdminClient(gw.admin_addr)
        self.addCleanup(client.close)
        return gw, client

    def test_register_heartbeat_expire_deregister(self):
        one, two = self.backend("one"), self.backend("two")
        gw, c = self.reg_gateway()
        self.assertEqual(self.status(gw)[0], 503)
        l1 = c.call("RegisterInstance", service="web", host="127.0.0.1", port=one.port, ttl_seconds=2)
        l2 = c.call("RegisterInstance", service="web", host="127.0.0.1", port=two.port, ttl_seconds=2)
        self.assertTrue(l1.lease_id and l2.lease_id and l1.lease_id != l2.lease_id)
        self.assertGreater(l1.expires.seconds, time.time() - 5)
        # Published before the call returned.
        self.assertEqual(set(self.ids(gw, 20)), {"one", "two"})
        listed = c.call("ListRegistrations", service="web")
        self.assertEqual(sorted(r.port for r in listed.registrations), sorted([one.port, two.port]))

        # Keep one alive; let the other lapse.
        stop = threading.Event()

        def beat():
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                c.call("Heartbeat", lease_id=l1.lease_id)
                stop.wait(0.5)
        t = threading.Thread(target=beat, daemon=True)
        t.start()
        try:
            harness.wait_until(lambda: set(self.ids(gw, 10)) == {"one"}, timeout=15,
                               message="the lapsed registration is removed")
            err = c.error("Heartbeat", lease_id=l2.lease_id)
            self.assertEqual(err.code(), grpc.StatusCode.NOT_FOUND)
        finally:
            stop.set()
            t.join(TIMEOUT)
        # porticoctl lists and removes registrations too.
        ctl = os.environ.get("PORTICOCTL_BIN", os.path.join(os.path.dirname(harness.portico_bin()),
                                                            "porticoctl"))
        out = subprocess.run([ctl, "--addr", gw.admin_addr, "registrations", "web"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(l1.lease_id, out.stdout)
        self.assertNotIn(l2.lease_id, out.stdout)
        out = subprocess.run([ctl, "--addr", gw.admin_addr, "deregister", l1.lease_id],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.status(gw)[0], 503)
        self.assertEqual(c.error("DeregisterInstance", lease_id=l1.lease_id).code(),
                         grpc.StatusCode.NOT_FOUND)
        self.assertEqual(len(c.call("ListRegistrations", service="web").registrations), 0)
        # Registrations never touch the managed configuration's version.
        self.assertEqual(c.call("GetHealth").config_version, 1)

    def test_register_errors(self):
        gw, c = self.reg_gateway()
        err = c.error("RegisterInstance", service="web", host="not-an-ip", port=0)
        self.assertEqual(err.code(), grpc.StatusCode.INVALID_ARGUMENT)
        fields = [f for f, _ in c.violations(err)]
        self.assertIn("host", fields)
        self.assertIn("port", fields)
        err = c.error("RegisterInstance", service="nope", host="127.0.0.1", port=80)
        self.assertEqual(err.code(), grpc.StatusCode.NOT_FOUND)
        err = c.error("RegisterInstance", service="static", host="127.0.0.1", port=80)
        self.assertEqual(err.code(), grpc.StatusCode.FAILED_PRECONDITION)
        err = c.error("Heartbeat", lease_id="0123")
        self.assertEqual(err.code(), grpc.StatusCode.NOT_FOUND)
        err = c.error("RegisterInstance", service="web", host="127.0.0.1", port=80,
                      ttl_seconds=100000)
        self.assertEqual(err.code(), grpc.StatusCode.INVALID_ARGUMENT)


class TestDiscoveryConfig(unittest.TestCase):

    def check(self, service, extra=None):
        cfg = {"listeners": [{"address": "127.0.0.1:0"}],
               "services": [dict(service, name="web")],
               "routes": [{"path_prefix": "/", "service": "web"}]}
        cfg.update(extra or {})
        return harness.check_config(cfg)

    def test_rejections(self):
        if harness.DIRECT:
            self.skipTest("gateway-only (PORTICO_DIRECT=1)")
        rc, err = self.check({"instances": [{"host": "127.0.0.1", "port": 1}],
                              "discovery": {"kind": "dns", "dns_name": "a.test", "port": 1}})
        self.assertNotEqual(rc, 0)
        self.assertIn("not both", err)
        rc, err = self.check({"discovery": {"kind": "dns", "dns_name": "a.test"}})
        self.assertIn("services[0].discovery.port", err)
        rc, err = self.check({"discovery": {"kind": "dns_srv", "dns_name": "bad name"}})
        self.assertIn("services[0].discovery.dns_name", err)
        rc, err = self.check({"discovery": {"kind": "dns", "dns_name": "a.test", "port": 80,
                                            "min_ttl_ms": 5000, "max_ttl_ms": 1000}})
        self.assertIn("max_ttl_ms", err)
        rc, err = self.check({"discovery": {"kind": "dns", "dns_name": "a.test", "port": 80}},
                             {"dns": {"nameservers": ["nope"]}})
        self.assertIn("dns.nameservers[0]", err)
        rc, err = self.check({"discovery": {"kind": "dns", "dns_name": "a.test", "port": 80,
                                            "family": "ipv5"}},
                             {"dns": {"nameservers": ["127.0.0.1:53", "[::1]:5353", "10.0.0.1"]}})
        self.assertIn("family", err)
        self.assertNotIn("nameservers", err)
        rc, err = self.check({"discovery": {"kind": "registration"}})
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()
