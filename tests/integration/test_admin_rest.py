"""The admin API as REST/JSON on the admin port (issue 5, item 7), against
the real binary: curl and raw HTTP/1.1 clients, the same port still serving
gRPC (python grpcio) at the same time, bearer tokens, TLS with client
certificates, and the front's limits.
"""

import http.client
import json
import re
import os
import socket
import ssl
import subprocess
import threading
import time
import unittest

import grpc

import harness
from adminclient import AdminClient
from test_admin_api import base_config, wait_status

HOST = "127.0.0.1"
SC = grpc.StatusCode


def curl(args, timeout=30):
    """(status, headers dict, body bytes) of `curl -i` with args."""
    p = subprocess.run(["curl", "-sS", "-i", "--max-time", "20"] + args, capture_output=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("curl %s: rc %d %s" % (args, p.returncode, p.stderr.decode()))
    raw = p.stdout
    # Skip interim 100 Continue heads.
    while raw.startswith(b"HTTP/1.1 100"):
        raw = raw.split(b"\r\n\r\n", 1)[1]
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def http_req(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
    finally:
        conn.close()


def raw_exchange(port, data, timeout=10.0):
    """Send bytes, read until the server closes (or timeout)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


class AdminRestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.be = harness.HttpBackend().start()
        cls.gw = harness.Portico(base_config(cls.be.port), workers=2)
        cls.gw.start()
        cls.port = cls.gw.port("main")
        cls.admin_port = int(cls.gw.admin_addr.rsplit(":", 1)[1])
        cls.base = "http://%s" % cls.gw.admin_addr
        cls.c = AdminClient(cls.gw.admin_addr)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.gw.stop()
        cls.be.stop()

    def rest(self, method, path, body=None, headers=None):
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        h = {"content-type": "application/json"}
        h.update(headers or {})
        st, hd, data = http_req(self.admin_port, method, path, body, h)
        self.assertEqual(hd.get("content-type"), "application/json", (method, path, data))
        return st, hd, json.loads(data) if data else None

    def wait_status(self, path, want, timeout=3.0):
        return wait_status(self.port, path, want, timeout)

    def test_route_crud_with_curl_reaches_traffic_and_grpc(self):
        st, _, body = curl(["-X", "POST", self.base + "/admin/routes", "-H", "content-type: application/json",
                            "-d", json.dumps({"name": "rest-crud", "pathPrefix": "/restcrud", "service": "web",
                                              "stripPrefix": True})])
        self.assertEqual(st, 200, body)
        created = json.loads(body)
        self.assertEqual(created["name"], "rest-crud")
        version = int(created["version"])  # uint64: a JSON string
        self.assertIsInstance(created["version"], str)
        self.assertEqual(self.wait_status("/restcrud/status/200", 200), 200)
        # The same route through gRPC on the same port.
        self.assertEqual(self.c.call("GetRoute", route_id="rest-crud").path_prefix, "/restcrud")
        # Replace with PUT (proto field names are accepted on input too).
        st, _, got = self.rest("PUT", "/admin/routes/rest-crud",
                               {"route_id": "rest-crud", "version": str(version),
                                "route": {"name": "rest-crud", "path_prefix": "/restcrud2", "service": "web",
                                          "strip_prefix": True}})
        # UpdateRoute's body is the route: the wrapper's fields are unknown there.
        self.assertEqual(st, 400, got)
        st, _, got = self.rest("PUT", "/admin/routes/rest-crud?version=%d" % version,
                               {"name": "rest-crud", "path_prefix": "/restcrud2", "service": "web",
                                "strip_prefix": True})
        self.assertEqual(st, 200, got)
        self.assertEqual(got["pathPrefix"], "/restcrud2")
        self.assertEqual(self.wait_status("/restcrud2/status/200", 200), 200)
        # A stale version: ABORTED -> 409 with the JSON error shape.
        st, _, got = self.rest("PUT", "/admin/routes/rest-crud?version=%d" % version,
                               {"name": "rest-crud", "pathPrefix": "/x", "service": "web"})
        self.assertEqual((st, got["code"]), (409, 10), got)
        # Field mask through the query (FieldMask as its JSON string form).
        _, _, cur = self.rest("GET", "/admin/routes/rest-crud")
        st, _, got2 = self.rest("PUT", "/admin/routes/rest-crud?version=%s&updateMask=timeoutMs" % cur["version"],
                                {"timeoutMs": 1234})
        self.assertEqual(st, 200, got2)
        self.assertEqual(got2["timeoutMs"], 1234)
        self.assertEqual(got2["pathPrefix"], "/restcrud2")
        # List with paging through the query.
        st, _, lst = self.rest("GET", "/admin/routes?page_size=1")
        self.assertEqual(st, 200)
        self.assertEqual(len(lst["routes"]), 1)
        self.assertIn("nextPageToken", lst)
        st, _, lst2 = self.rest("GET", "/admin/routes?pageSize=1&pageToken=" + lst["nextPageToken"])
        self.assertEqual(st, 200)
        self.assertNotEqual(lst2["routes"][0]["name"], lst["routes"][0]["name"])
        # Delete; then it is gone for REST, gRPC and traffic.
        st, _, got = self.rest("DELETE", "/admin/routes/rest-crud")
        self.assertEqual((st, got), (200, {}))
        st, _, got = self.rest("GET", "/admin/routes/rest-crud")
        self.assertEqual((st, got["code"]), (404, 5))
        self.assertEqual(self.c.error("GetRoute", route_id="rest-crud").code(), SC.NOT_FOUND)
        self.assertEqual(self.wait_status("/restcrud2/status/200", 404), 404)

    def test_validation_errors_carry_bad_request_details(self):
        st, _, got = self.rest("POST", "/admin/routes", {"name": "bad", "pathPrefix": "/bad", "service": "nope"})
        self.assertEqual(st, 400)
        self.assertEqual(got["code"], 3)
        (d,) = got["details"]
        self.assertEqual(d["@type"], "type.googleapis.com/google.rpc.BadRequest")
        self.assertIn({"field": "route.service", "description": 'no service named "nope"'},
                      d["fieldViolations"])
        # Malformed JSON, a wrong type, an unknown field: 400 naming the field; nothing created.
        for body, needle in (('{"name": ', "invalid"), ('{"name":"b","stripPrefix":"yes"}', "strip"),
                             ('{"name":"b","pathPrefx":"/b"}', "pathPrefx")):
            st, _, got = self.rest("POST", "/admin/routes", body)
            self.assertEqual(st, 400, body)
            self.assertIn(needle, got["message"].lower() if needle == "invalid" else got["message"], got)
        self.assertEqual(self.c.error("GetRoute", route_id="b").code(), SC.NOT_FOUND)

    def test_not_found_method_not_allowed_and_other_paths(self):
        st, _, got = self.rest("GET", "/admin/nothing-here")
        self.assertEqual((st, got["code"]), (404, 5))
        st, hd, got = self.rest("PATCH", "/admin/routes/home")
        self.assertEqual(st, 405)
        self.assertEqual(set(hd["allow"].split(", ")), {"GET", "PUT", "DELETE"})
        st, _, got = self.rest("GET", "/")
        self.assertEqual(st, 404)
        # Bad escapes in a path variable: 400, not a lookup of garbage.
        st, _, got = self.rest("GET", "/admin/routes/%zz")
        self.assertEqual(st, 400)

    def test_export_apply_round_trip_and_health(self):
        st, _, exp = self.rest("GET", "/admin/config")
        self.assertEqual(st, 200, exp)
        self.assertIn("home", [r["name"] for r in exp["config"]["routes"]])
        self.assertIn("path_prefix: /home", exp["yaml"])
        # Apply the export back as JSON (dry run): nothing to change.
        st, _, ap = self.rest("PUT", "/admin/config", {"config": exp["config"], "dryRun": True})
        self.assertEqual(st, 200, ap)
        self.assertEqual(ap.get("changes", []), [])
        self.assertFalse(ap.get("applied", False))
        # A real change through Apply's yaml form, seen by gRPC.
        yaml_text = exp["yaml"].replace("path_prefix: /home", "path_prefix: /home2")
        st, _, ap = self.rest("PUT", "/admin/config", {"yaml": yaml_text})
        self.assertEqual(st, 200, ap)
        self.assertTrue(ap["applied"])
        self.assertEqual(self.c.call("GetRoute", route_id="home").path_prefix, "/home2")
        st, _, ap = self.rest("PUT", "/admin/config", {"yaml": exp["yaml"]})
        self.assertEqual((st, ap["applied"]), (200, True))
        self.assertEqual(self.c.call("GetRoute", route_id="home").path_prefix, "/home")
        st, _, health = self.rest("GET", "/admin/health")
        self.assertEqual(st, 200)
        self.assertEqual(health["status"], "STATUS_SERVING")
        self.assertEqual(health["workers"], 2)
        st, _, val = self.rest("POST", "/admin/validate", {"route": {"name": "v", "pathPrefix": "/v",
                                                                      "service": "nope"}})
        self.assertEqual(st, 200, val)
        self.assertFalse(val.get("valid", False))
        self.assertIn("route.service", [v["field"] for v in val["violations"]])

    def test_keep_alive_pipelining_and_expect_continue(self):
        reqs = (b"GET /admin/routes/home HTTP/1.1\r\nHost: a\r\n\r\n"
                b"GET /admin/routes/nope HTTP/1.1\r\nHost: a\r\n\r\n"
                b"POST /admin/routes HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                b"Expect: 100-continue\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{\"name\":}")
        out = raw_exchange(self.admin_port, reqs)
        heads = [h.rstrip(b"\r\n") for h in re.findall(rb"HTTP/1\.1 \d{3} [A-Za-z ]+\r\n", out)]
        self.assertEqual(heads, [b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 100 Continue",
                                 b"HTTP/1.1 400 Bad Request"], out)
        self.assertIn(b"connection: close", out.lower())
        # curl sends Expect: 100-continue for a large body and waits for it.
        big = json.dumps({"name": "big", "pathPrefix": "/big", "service": "web",
                          "filters": [{"name": "headers", "config": {"response": {"set": {"x-pad": "p" * 2000000}}}}]})
        with harness.TempDir(prefix="portico-admin-rest-") as tmp:
            path = tmp.join("big.json")
            with open(path, "w") as f:
                f.write(big)
            st, _, body = curl(["-X", "POST", self.base + "/admin/routes", "-H", "content-type: application/json",
                                "-H", "Expect: 100-continue", "--data-binary", "@" + path])
        # The whole 2 MB body arrived and was decoded: validation names the field inside it.
        self.assertEqual(st, 400, body[:300])
        fields = [v["field"] for v in json.loads(body)["details"][0]["fieldViolations"]]
        self.assertEqual(fields, ["route.filters[0].config.response.set.x-pad"])

    def test_limits_and_bad_http(self):
        # A body over 16 MiB announced: 413 before it is sent.
        out = raw_exchange(self.admin_port, b"POST /admin/routes HTTP/1.1\r\nHost: a\r\n"
                                            b"Content-Length: 17000000\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 413 "), out[:80])
        # Chunked past the limit: 413 too, and the connection closes.
        chunk = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
        s = socket.create_connection((HOST, self.admin_port), timeout=10)
        try:
            s.sendall(b"POST /admin/routes HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            got = b""
            for _ in range(20):
                try:
                    s.sendall(chunk)
                except OSError:
                    break
            s.settimeout(5)
            while True:
                try:
                    d = s.recv(65536)
                except (socket.timeout, OSError):
                    break
                if not d:
                    break
                got += d
        finally:
            s.close()
        self.assertTrue(got.startswith(b"HTTP/1.1 413 "), got[:80])
        # Header section too large, malformed framing, garbage: 431 / 400 JSON, never a crash.
        out = raw_exchange(self.admin_port, b"GET /admin/routes HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 431 "), out[:80])
        out = raw_exchange(self.admin_port, b"POST /admin/routes HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
                                            b"Transfer-Encoding: chunked\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out[:80])
        self.assertIn(b'"code":3', out)
        out = raw_exchange(self.admin_port, b"\x16\x03\x01garbage\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out[:80])
        # Still serving both protocols.
        self.assertEqual(self.rest("GET", "/admin/routes/home")[0], 200)
        self.assertEqual(self.c.call("GetRoute", route_id="home").name, "home")

    def test_idle_connections_do_not_block_and_flood_is_bounded(self):
        idle = []
        try:
            # Silent connections (the sniffer waits for bytes) and half-sent requests.
            for i in range(40):
                s = socket.create_connection((HOST, self.admin_port), timeout=5)
                if i % 2:
                    s.sendall(b"GET /admin/routes HTTP/1.1\r\nHost: a\r\n")
                idle.append(s)
            self.assertEqual(self.rest("GET", "/admin/routes/home")[0], 200)
            self.assertEqual(self.c.call("GetRoute", route_id="home").name, "home")
            # Past the front's connection cap (256) new ones are closed at once...
            for _ in range(240):
                try:
                    idle.append(socket.create_connection((HOST, self.admin_port), timeout=5))
                except OSError:
                    break
            time.sleep(0.3)
            s = socket.create_connection((HOST, self.admin_port), timeout=5)
            s.settimeout(5)
            try:
                s.sendall(b"GET /admin/health HTTP/1.1\r\nHost: a\r\n\r\n")
                self.assertIn(s.recv(100), (b"",))
            except (ConnectionResetError, BrokenPipeError):
                pass
            finally:
                s.close()
        finally:
            for s in idle:
                s.close()
        # ...and once they are gone the admin port serves again.
        harness.wait_until(lambda: http_req(self.admin_port, "GET", "/admin/health")[0] == 200, timeout=10,
                           message="admin REST after the flood")
        self.assertEqual(self.c.call("GetRoute", route_id="home").name, "home")

    def test_rest_and_grpc_concurrently(self):
        errors = []

        def rest_loop(n):
            for i in range(30):
                name = "cc-%d-%d" % (n, i)
                st, _, _ = self.rest("POST", "/admin/routes",
                                     {"name": name, "pathPrefix": "/" + name, "service": "web"})
                if st != 200:
                    errors.append(("create", name, st))
                st, _, _ = self.rest("DELETE", "/admin/routes/" + name)
                if st != 200:
                    errors.append(("delete", name, st))

        def grpc_loop():
            c = AdminClient(self.gw.admin_addr)
            try:
                for _ in range(60):
                    c.call("ListRoutes", page_size=1000)
                    c.call("GetRoute", route_id="home")
            except grpc.RpcError as e:
                errors.append(("grpc", e.code()))
            finally:
                c.close()

        threads = [threading.Thread(target=rest_loop, args=(n,)) for n in range(3)]
        threads += [threading.Thread(target=grpc_loop) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        names = {r.name for r in self.c.call("ListRoutes", page_size=1000).routes}
        self.assertEqual({n for n in names if n.startswith("cc-")}, set())


class AdminRestAccessTest(unittest.TestCase):
    def test_bearer_token(self):
        be = harness.HttpBackend().start()
        port = harness.free_port()
        cfg = base_config(be.port)
        cfg["admin"] = {"address": "127.0.0.1:%d" % port, "token_env": "PT_ADMIN_REST_TOKEN"}
        try:
            with harness.Portico(cfg, env={"PT_ADMIN_REST_TOKEN": "t0ken"}) as gw:
                harness.wait_until(lambda: harness.can_connect(HOST, port), message="admin port")
                for hdrs in ({}, {"authorization": "Bearer nope"}, {"authorization": "t0ken"}):
                    st, hd, body = http_req(port, "GET", "/admin/routes/home", headers=hdrs)
                    self.assertEqual(st, 401, hdrs)
                    self.assertEqual(hd["www-authenticate"], 'Bearer realm="portico-admin"')
                    self.assertEqual(json.loads(body)["code"], 16)
                st, _, body = http_req(port, "GET", "/admin/routes/home", headers={"authorization": "Bearer t0ken"})
                self.assertEqual(st, 200, body)
                # gRPC on the same port still checks it.
                self.assertEqual(AdminClient(gw.admin_addr).error("GetRoute", route_id="home").code(),
                                 SC.UNAUTHENTICATED)
                self.assertEqual(AdminClient(gw.admin_addr, token="t0ken").call("GetRoute", route_id="home").name,
                                 "home")
        finally:
            be.stop()

    def test_tls_with_client_certificates(self):
        be = harness.HttpBackend().start()
        try:
            with harness.TempDir(prefix="portico-admin-rest-certs-") as tmp:
                certs = harness.make_certs(tmp.path)
                other = harness.make_certs(tmp.join("other"))
                port = harness.free_port()
                cfg = base_config(be.port)
                cfg["admin"] = {"address": "127.0.0.1:%d" % port,
                                "tls": {"cert_file": certs.cert, "key_file": certs.key,
                                        "client_ca_file": certs.ca_cert}}
                with harness.Portico(cfg) as gw:
                    harness.wait_until(lambda: harness.can_connect(HOST, port), message="admin port")
                    url = "https://localhost:%d/admin/routes/home" % port
                    base = ["--cacert", certs.ca_cert, "--resolve", "localhost:%d:127.0.0.1" % port]
                    st, _, body = curl(base + ["--cert", certs.client_cert, "--key", certs.client_key, url])
                    self.assertEqual(st, 200, body)
                    self.assertEqual(json.loads(body)["name"], "home")
                    # curl offers h2 and http/1.1: the admin port prefers http/1.1 (REST); gRPC
                    # clients offer only h2. Also with --http1.1 explicitly:
                    st, _, body = curl(base + ["--http1.1", "--cert", certs.client_cert, "--key",
                                               certs.client_key, "-X", "POST", "-d",
                                               '{"name":"tlsr","pathPrefix":"/tlsr","service":"web"}',
                                               "https://localhost:%d/admin/routes" % port])
                    self.assertEqual(st, 200, body)
                    # No certificate, or one from another CA: the handshake fails.
                    for extra in ([], ["--cert", other.client_cert, "--key", other.client_key]):
                        p = subprocess.run(["curl", "-sS", "--http1.1", "--max-time", "10"] + base + extra + [url],
                                           capture_output=True, timeout=30)
                        self.assertNotEqual(p.returncode, 0, extra)
                    # gRPC over TLS with a certificate, on the same port.
                    ch = harness.grpc_channel(gw.admin_addr, ca_file=certs.ca_cert, server_name="localhost",
                                              client_cert=(certs.client_cert, certs.client_key))
                    try:
                        stub = ch.unary_unary("/grpc.health.v1.Health/Check")
                        stub(b"", timeout=10)
                    finally:
                        ch.close()
                    # Python's ssl with ALPN http/1.1 only, raw request.
                    ctx = ssl.create_default_context(cafile=certs.ca_cert)
                    ctx.load_cert_chain(certs.client_cert, certs.client_key)
                    ctx.set_alpn_protocols(["http/1.1"])
                    with socket.create_connection((HOST, port), timeout=10) as raw:
                        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                            s.sendall(b"GET /admin/routes/tlsr HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                            data = b""
                            while True:
                                d = s.recv(65536)
                                if not d:
                                    break
                                data += d
                    self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:100])
        finally:
            be.stop()


if __name__ == "__main__":
    unittest.main()
