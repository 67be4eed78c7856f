"""The gateway as a process: --check-config, SIGHUP reloads (under load, with
a bad file, moving a listener), SIGTERM drain (in-flight HTTP/1.1 request
finishes with Connection: close, new connections refused, HTTP/2 clients get
GOAWAY, exit 0 within drain_timeout_ms) and the access log.

Gateway-only (skipped with PORTICO_DIRECT=1).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_process
"""

import contextlib
import re
import signal
import threading
import time
import unittest

import harness
import wire

DIRECT = harness.DIRECT
HOST = "127.0.0.1"
LOADED = r"configuration generation \d+ loaded"
ACCESS_KEYS = ("time", "request_id", "method", "path", "status", "duration_ms", "bytes_in", "bytes_out",
               "upstream", "client")


def base_config(be, extra_routes=(), **top):
    cfg = {
        "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
        "services": [{"name": "web", "protocol": "http1", "instances": [be.instance()]}],
        "routes": [{"name": "echo", "path_prefix": "/echo", "service": "web"},
                   {"name": "slow", "path_prefix": "/slow", "service": "web"}] + list(extra_routes),
    }
    cfg.update(top)
    return cfg


def get(port, path, headers=(), timeout=30):
    with wire.RawConn(HOST, port, timeout=timeout) as c:
        c.send(wire.request_bytes("GET", path, headers=headers))
        return c.read_response()


class ProcessTestCase(unittest.TestCase):

    def setUp(self):
        if DIRECT:
            self.skipTest("gateway-only (PORTICO_DIRECT=1)")
        self._stack = contextlib.ExitStack()
        self.addCleanup(self._stack.close)
        self.be = self._stack.enter_context(harness.HttpBackend())

    def start(self, config, **kw):
        return self._stack.enter_context(harness.Portico(config, **kw))


class TestCheckConfig(ProcessTestCase):

    def test_valid_file_exits_zero(self):
        rc, err = harness.check_config(base_config(self.be, drain_timeout_ms=5000,
                                                   limits={"max_header_bytes": 8192}))
        self.assertEqual(rc, 0, err)

    def test_invalid_files_exit_one_with_file_line(self):
        good = harness.to_yaml(harness.with_ports(base_config(self.be)))
        lines = good.splitlines()
        cases = []
        # an unknown key inside the second route
        i = lines.index("    service: web", lines.index("  - name: slow"))
        bad = lines[:i + 1] + ["    timout_ms: 5"] + lines[i + 1:]
        cases.append(("unknown key", "\n".join(bad) + "\n", i + 2, "timout_ms"))
        # a bad enum value
        j = lines.index("    protocol: http1")
        bad = list(lines)
        bad[j] = "    protocol: http3"
        cases.append(("bad enum", "\n".join(bad) + "\n", j + 1, "http3"))
        # an out-of-range number
        bad = lines + ["limits:", "  max_header_bytes: 12"]
        cases.append(("out of range", "\n".join(bad) + "\n", len(lines) + 2, "max_header_bytes"))
        # YAML syntax
        bad = list(lines)
        bad[1] = "  - name: [main"
        cases.append(("yaml syntax", "\n".join(bad) + "\n", None, None))
        for name, text, line, word in cases:
            with self.subTest(case=name):
                rc, err = harness.check_config(yaml_text=text)
                self.assertEqual(rc, 1, err)
                m = re.search(r"^portico\.yaml:(\d+)(?::\d+)?: (.+)$", err, re.M)
                self.assertTrue(m, "no 'portico.yaml:LINE:' error in:\n" + err)
                if line is not None:
                    self.assertEqual(int(m.group(1)), line, err)
                    self.assertIn(word, err)
        # every error of a step is reported at once
        bad = list(lines)
        bad[j] = "    protocol: http3"
        bad = bad[:i + 1] + ["    timout_ms: 5"] + bad[i + 1:]
        rc, err = harness.check_config(yaml_text="\n".join(bad) + "\n")
        self.assertEqual(rc, 1)
        self.assertGreaterEqual(len(re.findall(r"^portico\.yaml:\d+:\d+: ", err, re.M)), 2, err)

    def test_missing_file(self):
        p = wire.run([harness.portico_bin(), "--check-config", "/nonexistent/portico.yaml"], timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"/nonexistent/portico.yaml", p.stderr)


class TestReload(ProcessTestCase):

    def test_reload_under_load_no_failures(self):
        gw = self.start(base_config(self.be))
        port = gw.port("main")
        nthreads, per_thread = 4, 500
        failures = []
        counts = [0] * nthreads
        stop = threading.Event()

        def client(k):
            c = None
            try:
                c = wire.RawConn(HOST, port, timeout=30)
                local = c.sock.getsockname()
                for i in range(per_thread):
                    if stop.is_set():
                        return
                    c.send(wire.request_bytes("GET", "/echo/load/%d/%d" % (k, i)))
                    r = c.read_response()
                    if r.status != 200 or r.json()["path"] != "/echo/load/%d/%d" % (k, i):
                        failures.append((k, i, r.status))
                    if c.eof:
                        failures.append((k, i, "connection closed by the gateway"))
                        return
                    counts[k] += 1
                if c.sock.getsockname() != local:
                    failures.append((k, "reconnected"))
            except Exception as exc:  # noqa: BLE001 - every error is a failure
                failures.append((k, counts[k], repr(exc)))
            finally:
                if c:
                    c.close()

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(nthreads)]
        for t in threads:
            t.start()
        for n in range(1, 6):
            time.sleep(0.3)
            routes = [{"name": "added-%d" % k, "path_prefix": "/added-%d" % k, "service": "web"}
                      for k in range(1, n + 1)]
            self.assertTrue(gw.reload(base_config(self.be, routes), wait_for=LOADED, settle=10),
                            "no 'configuration generation N loaded' line after SIGHUP")
        for t in threads:
            t.join(300)
        stop.set()
        self.assertEqual(failures, [])
        self.assertEqual(sum(counts), nthreads * per_thread)
        for k in range(1, 6):
            r = get(port, "/added-%d/x" % k)
            self.assertEqual(r.status, 404, r)  # the backend's 404: the route exists
            self.assertTrue((r.get("server") or "").startswith("portico-test-backend"), r)
        self.assertEqual(get(port, "/added-6/x").get("server"), None)

    def test_bad_reload_keeps_old_routes_and_logs(self):
        gw = self.start(base_config(self.be))
        port = gw.port("main")
        mark = len(gw.stderr)
        text = harness.to_yaml(gw.config).replace("path_prefix: /echo", "path_prefix: /echo\n    bogus_key: 1")
        gw.reload(yaml_text=text, wait_for=r"(?i)reload failed|rejected", settle=10)
        harness.wait_until(lambda: re.search(r"bogus_key", gw.stderr[mark:]), timeout=10,
                           message="the error naming the bad key on stderr")
        err = gw.stderr[mark:]
        self.assertRegex(err, r"portico\.yaml:\d+:\d+: ")
        self.assertTrue(gw.running())
        self.assertEqual(get(port, "/echo/still").json()["path"], "/echo/still")
        # a good file afterwards is taken
        gw.reload(base_config(self.be, [{"name": "later", "path_prefix": "/later", "service": "web"}]),
                  wait_for=LOADED, settle=10)
        harness.wait_until(lambda: get(port, "/later/x").get("server"), timeout=10, message="new route")

    def test_listener_address_change(self):
        gw = self.start(base_config(self.be))
        old = gw.port("main")
        new = harness.free_port()
        cfg = base_config(self.be)
        cfg["listeners"][0]["address"] = "127.0.0.1:%d" % new
        self.assertTrue(gw.reload(cfg, wait_for=LOADED, settle=10))
        self.assertEqual(gw.port("main"), new)
        harness.wait_until(lambda: harness.can_connect(HOST, new), timeout=15, message="new port listening")
        self.assertEqual(get(new, "/echo/moved").json()["path"], "/echo/moved")
        harness.wait_until(lambda: not harness.can_connect(HOST, old), timeout=15,
                           message="old port to stop accepting")


class TestDrain(ProcessTestCase):

    def test_sigterm_drains_inflight_and_exits_zero(self):
        gw = self.start(base_config(self.be, drain_timeout_ms=20000))
        port = gw.port("main")
        # an h2 client, connected before the signal
        h2 = wire.H2Conn(HOST, port)
        self._stack.callback(h2.close)
        h2.handshake()
        # an HTTP/1.1 request in flight (3 s)
        c = wire.RawConn(HOST, port, timeout=60)
        self._stack.callback(c.close)
        c.send(wire.request_bytes("GET", "/slow?ms=3000"))
        time.sleep(1.0)
        t0 = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        # new connections are refused soon
        harness.wait_until(lambda: not harness.can_connect(HOST, port, timeout=0.5), timeout=10,
                           message="the listener to close")
        # the h2 client is told
        f = h2.collect(lambda f: f[0] == wire.GOAWAY, timeout=10)
        self.assertIsNotNone(f, "no GOAWAY for the h2 client")
        self.assertEqual(h2.goaway()[1], wire.ERR_NO_ERROR)
        # the in-flight request completes, with Connection: close
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["slept_ms"], 3000)
        self.assertIn("close", r.connection_tokens(), r)
        self.assertTrue(c.wait_closed(10))
        h2.close()
        rc = gw.wait_exit(30)
        self.assertEqual(rc, 0, gw.stderr[-2000:])
        self.assertLess(time.monotonic() - t0, 20 + 5)

    def test_drain_timeout_bounds_exit(self):
        gw = self.start(base_config(self.be, drain_timeout_ms=1500))
        port = gw.port("main")
        c = wire.RawConn(HOST, port, timeout=60)
        self._stack.callback(c.close)
        c.send(wire.request_bytes("GET", "/slow?ms=30000"))
        time.sleep(0.5)
        t0 = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        rc = gw.wait_exit(30)
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(rc, "still running 30 s after SIGTERM (drain_timeout_ms 1500)")
        self.assertEqual(rc, 0, gw.stderr[-2000:])
        self.assertLess(elapsed, 12)
        self.assertTrue(c.wait_closed(10))

    def test_idle_keepalive_connection_closed_on_drain(self):
        gw = self.start(base_config(self.be, drain_timeout_ms=20000))
        c = wire.RawConn(HOST, gw.port("main"), timeout=30)
        self._stack.callback(c.close)
        c.send(wire.request_bytes("GET", "/echo/idle"))
        self.assertEqual(c.read_response().status, 200)
        t0 = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        self.assertTrue(c.wait_closed(15), "idle keep-alive connection kept open while draining")
        self.assertEqual(gw.wait_exit(30), 0)
        self.assertLess(time.monotonic() - t0, 15, "an idle connection held the drain")


class TestAccessLog(ProcessTestCase):

    def test_one_json_line_per_request(self):
        gw = self.start(base_config(self.be))
        port = gw.port("main")
        sent = []
        with wire.RawConn(HOST, port) as c:
            for i in range(3):
                c.send(wire.request_bytes("GET", "/echo/log/%d?q=1" % i))
                r = c.read_response()
                sent.append(("GET", "/echo/log/%d" % i, 200, 0, len(r.body), r.get("x-request-id")))
            body = b"b" * 1234
            c.send(wire.request_bytes("POST", "/echo/log/post", body=body))
            r = c.read_response()
            sent.append(("POST", "/echo/log/post", 200, 1234, len(r.body), r.get("x-request-id")))
            c.send(wire.request_bytes("GET", "/no-route"))
            r = c.read_response()
            sent.append(("GET", "/no-route", 404, 0, len(r.body), r.get("x-request-id")))
        got = harness.wait_until(lambda: len(gw.access_log_lines()) >= len(sent) and gw.access_log_lines(),
                                 timeout=10, message="access log lines")
        self.assertEqual(len(got), len(sent), got)
        for line, (method, path, status, bin_, bout, rid) in zip(sorted(got, key=lambda l: l["time"]), sent):
            for k in ACCESS_KEYS:
                self.assertIn(k, line)
            self.assertEqual((line["method"], line["path"], line["status"]), (method, path, status), line)
            self.assertEqual(line["request_id"], rid)
            self.assertEqual(line["bytes_in"], bin_, line)
            self.assertEqual(line["bytes_out"], bout, line)
            self.assertEqual(line["client"], "127.0.0.1")
            self.assertIsInstance(line["duration_ms"], (int, float))
            self.assertGreaterEqual(line["duration_ms"], 0)
            self.assertRegex(line["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
            if status == 404:
                self.assertIsNone(line["upstream"])
            else:
                self.assertEqual(line["upstream"], "127.0.0.1:%d" % self.be.port)


if __name__ == "__main__":
    unittest.main()
