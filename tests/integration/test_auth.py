"""Authentication and authorization through portico (issue 7): the auth
step with API keys, against real backends, for HTTP/1.1, h2c and gRPC
callers.

TestApiKeys (one gateway, keys in its file):
  * a valid key reaches the backend, which sees X-Authenticated-User,
    X-Client-ID and the configured claim headers, and neither the key nor
    Authorization/Cookie (unless the route keeps them);
  * missing, wrong, disabled, expired keys: 401 + WWW-Authenticate, a JSON
    body without the reason, the reason in the access log, no upstream call;
  * rotation: two keys of one client both work;
  * anonymous routes; scopes all/any and roles (403, reason only logged);
  * spoofed identity headers (also spelled with '_') removed on every route;
  * path-normalization attacks cannot reach the protected route without a
    key, and the backend gets exactly the normalized path;
  * gRPC: UNAUTHENTICATED, PERMISSION_DENIED, identity metadata;
  * portico_auth_decisions_total per route, method and decision.
TestManagedKeys (keys through the admin API, file store):
  * a key created, disabled, re-enabled and deleted takes effect within
    seconds; last_used_at appears in GetApiKey/ListApiKeys after a batch
    (and is not written to the state file); rate limits count by the
    identity the auth step set.
TestPostgres: last_used_at written to a real PostgreSQL in batches, kept
  when the key is updated, without bumping the configuration version.

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_auth
"""

import contextlib
import hashlib
import http.client
import json
import os
import subprocess
import time
import unittest

import grpc

import harness
import pgserver
import protoload
import wire
from adminclient import AdminClient

echo_pb2 = harness.load_echo()
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"]
Req = echo_pb2.EchoRequest
HOST = "127.0.0.1"
CHALLENGE = 'ApiKey realm="portico"'
INVALID_CHALLENGE = 'ApiKey realm="portico", error="invalid_key"'

try:
    pgserver._bindir()
    HAVE_PG = True
except RuntimeError:
    HAVE_PG = False
if os.environ.get("CI") and not HAVE_PG:
    raise RuntimeError("CI=true but the PostgreSQL server binaries are not installed")

SECRETS = {
    "k-read": "pk_read_0123456789abcdefghij",
    "k-rw": "pk_rw_0123456789abcdefghijkl",
    "k-off": "pk_off_0123456789abcdefghijk",
    "k-old": "pk_old_0123456789abcdefghijk",
    "rot-2023": "pk_rot23_0123456789abcdefgh",
    "rot-2024": "pk_rot24_0123456789abcdefgh",
    "k-none": "pk_none_0123456789abcdefghi",
}


def api_key(name, client_id, **extra):
    secret = SECRETS[name]
    k = {"name": name, "client_id": client_id, "key_prefix": secret[:8],
         "key_hash": hashlib.sha256(secret.encode()).hexdigest()}
    k.update(extra)
    return k


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def http_get(addr, path, headers=None, method="GET", timeout=30):
    host, port = harness.split_address(addr)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        hdrs.setdefault("Host", "gw.test")
        for k, v in hdrs.items():
            if isinstance(v, (list, tuple)):
                for one in v:
                    conn.putheader(k, one)
            else:
                conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        conn.close()


def header(headers, name):
    vals = [v for k, v in headers if k.lower() == name.lower()]
    return vals


def curl_h2(addr, path, headers=None, timeout=60):
    """curl over h2c (prior knowledge), the path sent as it is: (status,
    headers [(name, value)], body)."""
    args = ["curl", "-sS", "-i", "--http2-prior-knowledge", "--path-as-is", "--max-time",
            str(timeout)]
    for k, v in (headers or {}).items():
        args += ["-H", "%s: %s" % (k, v)]
    args.append("http://%s%s" % (addr, path))
    out = subprocess.run(args, capture_output=True, timeout=timeout + 10).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/2"), lines[0]
    status = int(lines[0].split()[1])
    hdrs = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:] if ":" in l]
    return status, hdrs, body


def backend_path(body):
    """The path the HTTP backend saw: /echo answers JSON with it, any other
    path a 404 JSON with it."""
    return json.loads(body)["path"]


def backend_requests(be):
    status, _, body = http_get(be.addr, "/control")
    assert status == 200
    return json.loads(body)["requests"]


def routes():
    return [
        {"name": "secure", "path_prefix": "/echo/secure", "service": "web",
         "auth": {"methods": ["api_key"],
                  "claim_headers": {"tier": "X-Tier", "scopes": "X-Scopes",
                                    "client_name": "X-Client-Name"}}},
        {"name": "anon", "path_prefix": "/echo/anon", "service": "web",
         "auth": {"methods": ["api_key"], "allow_anonymous": True}},
        {"name": "all", "path_prefix": "/echo/all", "service": "web",
         "auth": {"methods": ["api_key"], "required_scopes": ["read", "write"]}},
        {"name": "any", "path_prefix": "/echo/any", "service": "web",
         "auth": {"methods": ["api_key"], "required_scopes": ["write", "admin"],
                  "scopes_match": "any"}},
        {"name": "roles", "path_prefix": "/echo/roles", "service": "web",
         "auth": {"methods": ["api_key"], "roles": ["admin"]}},
        {"name": "keep", "path_prefix": "/echo/keep", "service": "web",
         "auth": {"methods": ["api_key"], "keep_authorization": True, "keep_cookie": True}},
        {"name": "admin", "path_prefix": "/admin", "service": "web",
         "auth": {"methods": ["api_key"]}},
        {"name": "open", "path_prefix": "/echo", "service": "web"},
        {"name": "public", "path_prefix": "/", "service": "web"},
        {"name": "grpc", "path_prefix": "/portico.test.Echo", "service": "grpc",
         "auth": {"methods": ["api_key"], "required_scopes": ["read"]}},
    ]


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestApiKeys(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.be = cls.stack.enter_context(harness.HttpBackend())
            cls.gbe = cls.stack.enter_context(harness.GrpcBackend())
            cls.tmp = cls.stack.enter_context(harness.TempDir(prefix="portico-auth-"))
            now = time.time()
            cfg = {
                "listeners": [{"name": "main", "address": "127.0.0.1:0",
                               "protocols": ["http1", "h2c"]}],
                "services": [{"name": "web", "instances": [cls.be.instance()]},
                             {"name": "grpc", "protocol": "grpc",
                              "instances": [cls.gbe.instance()]}],
                "access_log": {"path": cls.tmp.join("access.log")},
                "api_keys": [
                    api_key("k-read", "reader", scopes=["read"], rate_limit_tier="free"),
                    api_key("k-rw", "writer", scopes=["read", "write"], client_name="Writer Inc"),
                    api_key("k-off", "reader", enabled=False),
                    api_key("k-old", "reader", expires_at=rfc3339(now - 60)),
                    api_key("rot-2023", "rotating", expires_at=rfc3339(now + 3600)),
                    api_key("rot-2024", "rotating"),
                    api_key("k-none", "nobody"),
                ],
                "routes": routes(),
            }
            cls.gw = cls.stack.enter_context(harness.Portico(cfg, workers=2))
            cls.addr = cls.gw.addr("main")
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def get(self, path, headers=None):
        return http_get(self.addr, path, headers)

    def echo(self, path, headers=None):
        status, hdrs, body = self.get(path, headers)
        self.assertEqual(status, 200, body)
        return json.loads(body)["headers"]

    def log_line(self, request_id, timeout=10):
        def find():
            for line in self.gw.access_log_lines():
                if line.get("request_id") == request_id:
                    return line
            return None
        return harness.wait_until(find, timeout=timeout, message="access log line")

    def assert_401(self, path, headers, challenge, reason, h2=False):
        before = backend_requests(self.be)
        if h2:
            status, hdrs, body = curl_h2(self.addr, path, headers)
        else:
            status, hdrs, body = self.get(path, headers)
        self.assertEqual(status, 401, body)
        self.assertEqual(header(hdrs, "www-authenticate"), [challenge])
        doc = json.loads(body)
        self.assertEqual(doc["status"], 401)
        self.assertNotIn("expired", body.decode())
        self.assertNotIn("disabled", body.decode())
        self.assertEqual(self.log_line(doc["request_id"])["auth"], reason)
        self.assertEqual(backend_requests(self.be), before, "the upstream was called")

    # ---- API keys ----

    def test_valid_key_identity_headers_seen_by_backend(self):
        for h2 in (False, True):
            with self.subTest(h2c=h2):
                hdrs = {"x-api-key": SECRETS["k-rw"]}
                if h2:
                    status, _, body = curl_h2(self.addr, "/echo/secure/x", hdrs)
                    self.assertEqual(status, 200, body)
                    seen = json.loads(body)["headers"]
                else:
                    seen = self.echo("/echo/secure/x", hdrs)
                self.assertEqual(seen["x-authenticated-user"], "writer")
                self.assertEqual(seen["x-client-id"], "writer")
                self.assertEqual(seen["x-tier"], "standard")
                self.assertEqual(seen["x-scopes"], "read write")
                self.assertEqual(seen["x-client-name"], "Writer Inc")
                self.assertNotIn("x-api-key", seen)
        # The access log names the client.
        status, _, body = self.get("/echo/secure/x", {"x-api-key": SECRETS["k-read"]})
        self.assertEqual(status, 200)
        rid = json.loads(body)["headers"]["x-request-id"]
        line = self.log_line(rid)
        self.assertEqual(line["client_id"], "reader")
        self.assertNotIn("auth", line)

    def test_missing_wrong_disabled_expired_are_401(self):
        for h2 in (False, True):
            with self.subTest(h2c=h2):
                self.assert_401("/echo/secure/x", {}, CHALLENGE, "no credential", h2)
                self.assert_401("/echo/secure/x", {"x-api-key": "pk_wrong_0123456789"},
                                INVALID_CHALLENGE, "api_key: unknown key", h2)
                self.assert_401("/echo/secure/x", {"x-api-key": SECRETS["k-off"]},
                                INVALID_CHALLENGE, "api_key: key disabled", h2)
                self.assert_401("/echo/secure/x", {"x-api-key": SECRETS["k-old"]},
                                INVALID_CHALLENGE, "api_key: key expired", h2)
                # The stored hash is not a key.
                self.assert_401("/echo/secure/x",
                                {"x-api-key": hashlib.sha256(SECRETS["k-rw"].encode()).hexdigest()},
                                INVALID_CHALLENGE, "api_key: unknown key", h2)
        # Two key headers: ambiguous, refused.
        self.assert_401("/echo/secure/x", {"x-api-key": [SECRETS["k-rw"], "other"]},
                        INVALID_CHALLENGE, "api_key: header repeated")

    def test_rotation_two_keys_of_one_client(self):
        for name in ("rot-2023", "rot-2024"):
            seen = self.echo("/echo/secure/x", {"x-api-key": SECRETS[name]})
            self.assertEqual(seen["x-client-id"], "rotating")

    def test_anonymous_route(self):
        seen = self.echo("/echo/anon/x", {"authorization": "Bearer abc"})
        self.assertNotIn("x-authenticated-user", seen)
        self.assertNotIn("authorization", seen)
        seen = self.echo("/echo/anon/x", {"x-api-key": SECRETS["k-read"]})
        self.assertEqual(seen["x-authenticated-user"], "reader")
        # An invalid key is still refused.
        self.assert_401("/echo/anon/x", {"x-api-key": "pk_wrong_0123456789"}, INVALID_CHALLENGE,
                        "api_key: unknown key")

    def test_scopes_all_any_and_roles(self):
        def forbidden(path, key, reason):
            before = backend_requests(self.be)
            status, hdrs, body = self.get(path, {"x-api-key": SECRETS[key]})
            self.assertEqual(status, 403, body)
            self.assertEqual(header(hdrs, "www-authenticate"), [])
            doc = json.loads(body)
            self.assertNotIn("scope", body.decode())
            self.assertNotIn("role", body.decode())
            self.assertEqual(self.log_line(doc["request_id"])["auth"], reason)
            self.assertEqual(backend_requests(self.be), before)

        self.echo("/echo/all/x", {"x-api-key": SECRETS["k-rw"]})
        forbidden("/echo/all/x", "k-read", 'api_key: missing scope "write"')
        self.echo("/echo/any/x", {"x-api-key": SECRETS["k-rw"]})
        forbidden("/echo/any/x", "k-read", "api_key: none of the required scopes")
        # API keys carry no roles: a route that requires one refuses them.
        forbidden("/echo/roles/x", "k-rw", "api_key: none of the required roles")
        # Without any key the policy is a 401, not a 403.
        self.assert_401("/echo/all/x", {}, CHALLENGE, "no credential")

    def test_spoofed_identity_headers_removed_on_every_route(self):
        spoof = {"X-Authenticated-User": "root", "X-Client-ID": "admin",
                 "X_Authenticated_User": "root", "x-client_id": "admin", "X-Tier": "premium",
                 "X-Scopes": "admin", "X-Unrelated": "kept"}
        for path, key in (("/echo/secure/x", "k-read"), ("/echo/anon/x", None),
                          ("/echo/open", None), ("/echo/open", "k-read")):
            with self.subTest(path=path, key=key):
                hdrs = dict(spoof)
                if key:
                    hdrs["x-api-key"] = SECRETS[key]
                status, _, body = self.get(path, hdrs)
                self.assertEqual(status, 200, body)
                doc = json.loads(body)
                names = [n for n, _ in doc["header_list"]]
                self.assertNotIn("x_authenticated_user", names)
                self.assertNotIn("x-client_id", names)
                self.assertEqual(doc["headers"].get("x-unrelated"), "kept")
                if path == "/echo/secure/x":
                    self.assertEqual(names.count("x-authenticated-user"), 1)
                    self.assertEqual(doc["headers"]["x-authenticated-user"], "reader")
                    self.assertEqual(doc["headers"]["x-client-id"], "reader")
                    self.assertEqual(doc["headers"]["x-tier"], "free")
                    self.assertEqual(doc["headers"]["x-scopes"], "read")
                else:
                    for n in ("x-authenticated-user", "x-client-id", "x-tier", "x-scopes"):
                        self.assertNotIn(n, names)
        # h2c too.
        status, _, body = curl_h2(self.addr, "/echo/open", spoof)
        self.assertEqual(status, 200)
        self.assertNotIn("x-authenticated-user", json.loads(body)["headers"])

    def test_authorization_and_cookie_removed_unless_kept(self):
        creds = {"x-api-key": SECRETS["k-read"], "Authorization": "Basic dXNlcjpwdw==",
                 "Cookie": "session=abc"}
        seen = self.echo("/echo/secure/x", creds)
        self.assertNotIn("authorization", seen)
        self.assertNotIn("cookie", seen)
        self.assertNotIn("x-api-key", seen)
        seen = self.echo("/echo/keep/x", creds)
        self.assertEqual(seen["authorization"], "Basic dXNlcjpwdw==")
        self.assertEqual(seen["cookie"], "session=abc")
        self.assertNotIn("x-api-key", seen)  # always removed
        # h2c splits cookies into several fields: all of them go.
        status, _, body = curl_h2(self.addr, "/echo/secure/x",
                                  {"x-api-key": SECRETS["k-read"], "Cookie": "a=1; b=2"})
        self.assertEqual(status, 200)
        self.assertNotIn("cookie", json.loads(body)["headers"])
        # A route without auth forwards credentials untouched.
        seen = self.echo("/echo/open", creds)
        self.assertEqual(seen["x-api-key"], SECRETS["k-read"])
        self.assertEqual(seen["authorization"], "Basic dXNlcjpwdw==")

    # ---- path normalization ----

    ATTACKS = [
        # (sent, normalized path the protected route sees)
        ("/public/../admin", "/admin"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%2E%2E/admin/x", "/admin/x"),
        ("/public/./../admin/x", "/admin/x"),
        ("//admin", "/admin"),
        ("//admin//x", "/admin/x"),
        ("/admin/", "/admin/"),
        ("/admin/./x", "/admin/x"),
        ("/./admin", "/admin"),
        ("/%61dmin", "/admin"),
        ("/admin/x/..", "/admin/"),
        ("/public/../admin?q=1", "/admin?q=1"),
        ("/../../admin", "/admin"),
    ]
    # Spellings that are another resource: forwarded (to the public route)
    # exactly as normalized; %2F and a backslash are data, never separators.
    OTHERS = [
        ("/admin%2Fx", "/admin%2Fx"),
        ("/admin%2fx", "/admin%2Fx"),
        ("/public/..%2Fadmin", "/public/..%2Fadmin"),
        ("/public/%2e%2e%2fadmin", "/public/..%2Fadmin"),
        ("/public/..%5Cadmin", "/public/..%5Cadmin"),
        ("/adminx", "/adminx"),
    ]

    def test_path_normalization_cannot_bypass_auth(self):
        for h2 in (False, True):
            send = (lambda p, h: curl_h2(self.addr, p, h)) if h2 else self.get
            for sent, normal in self.ATTACKS:
                with self.subTest(h2c=h2, path=sent):
                    before = backend_requests(self.be)
                    status, hdrs, body = send(sent, {})
                    self.assertEqual(status, 401, body)
                    self.assertEqual(backend_requests(self.be), before)
                    # With a key: the backend gets the normalized path.
                    status, _, body = send(sent, {"x-api-key": SECRETS["k-read"]})
                    self.assertEqual(status, 404, body)  # the backend's 404 names the path
                    got = backend_path(body)
                    want = normal.split("?")[0]
                    self.assertEqual(got, want)
            for sent, normal in self.OTHERS:
                with self.subTest(h2c=h2, path=sent):
                    status, _, body = send(sent, {})
                    self.assertEqual(status, 404, body)
                    self.assertEqual(backend_path(body), normal)

    def test_absolute_form_target_is_normalized_too(self):
        host, port = harness.split_address(self.addr)
        for target in ("http://gw.test/public/../admin", "http://gw.test//admin/x",
                       "http://gw.test/public/%2e%2e/admin"):
            with self.subTest(target=target):
                resp, _, _ = wire.exchange(host, port, wire.request_bytes("GET", target),
                                           close_wait=0)
                self.assertIsNotNone(resp)
                self.assertEqual(resp.status, 401, resp)
                self.assertEqual(resp.get_all("www-authenticate"), [CHALLENGE])

    # ---- gRPC ----

    def test_grpc_callers(self):
        ch = harness.grpc_channel(self.addr)
        self.addCleanup(ch.close)
        stub = protoload.Stub(ch, ECHO)
        resp, call = stub.Echo.with_call(
            Req(tag="auth-ok"), timeout=30,
            metadata=[("x-api-key", SECRETS["k-read"]), ("x-authenticated-user", "root"),
                      ("x_client_id", "evil")])
        md = dict(call.initial_metadata())
        self.assertEqual(md.get("x-authenticated-user"), "reader")
        self.assertEqual(md.get("x-client-id"), "reader")
        self.assertNotIn("x-api-key", md)
        self.assertNotIn("x_client_id", md)
        for meta, code in (([], grpc.StatusCode.UNAUTHENTICATED),
                           ([("x-api-key", "pk_wrong_0123456789")], grpc.StatusCode.UNAUTHENTICATED),
                           ([("x-api-key", SECRETS["k-old"])], grpc.StatusCode.UNAUTHENTICATED),
                           ([("x-api-key", SECRETS["k-none"])], grpc.StatusCode.PERMISSION_DENIED)):
            with self.subTest(meta=meta):
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.Echo(Req(tag="auth-no"), timeout=30, metadata=meta)
                self.assertEqual(cm.exception.code(), code)
                self.assertNotIn("scope", cm.exception.details() or "")

    # ---- counters ----

    def test_decision_counters(self):
        admin = AdminClient(self.gw.admin_addr)
        self.addCleanup(admin.close)

        def value(route, method, decision):
            text = admin.call("GetMetrics").prometheus_text
            want = 'portico_auth_decisions_total{route="%s",method="%s",decision="%s"} ' % (
                route, method, decision)
            for line in text.splitlines():
                if line.startswith(want):
                    return int(line.split()[-1])
            self.fail("no %s in the metrics" % want)

        a, d, f, n = (value("all", "api_key", "allowed"), value("all", "none", "denied"),
                      value("all", "api_key", "forbidden"), value("all", "api_key", "denied"))
        self.get("/echo/all/x", {"x-api-key": SECRETS["k-rw"]})
        self.get("/echo/all/x", {})
        self.get("/echo/all/x", {"x-api-key": SECRETS["k-read"]})
        self.get("/echo/all/x", {"x-api-key": "nope"})
        self.assertEqual(value("all", "api_key", "allowed"), a + 1)
        self.assertEqual(value("all", "none", "denied"), d + 1)
        self.assertEqual(value("all", "api_key", "forbidden"), f + 1)
        self.assertEqual(value("all", "api_key", "denied"), n + 1)
        an = value("anon", "none", "anonymous")
        self.get("/echo/anon/x", {})
        self.assertEqual(value("anon", "none", "anonymous"), an + 1)


def usage_seconds(key_msg):
    if not key_msg.HasField("last_used_at"):
        return None
    return key_msg.last_used_at.seconds + key_msg.last_used_at.nanos / 1e9


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestManagedKeys(unittest.TestCase):
    """Keys through the admin API (file store)."""

    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.be = cls.stack.enter_context(harness.HttpBackend())
            cfg = {
                "listeners": [{"name": "main", "address": "127.0.0.1:0",
                               "protocols": ["http1", "h2c"]}],
                "services": [{"name": "web", "instances": [cls.be.instance()]}],
                "auth": {"usage_flush_ms": 1000},
                "routes": [
                    {"name": "secure", "path_prefix": "/echo/secure", "service": "web",
                     "auth": {"methods": ["api_key"]}},
                    {"name": "open", "path_prefix": "/echo", "service": "web"},
                ],
            }
            cls.gw = cls.stack.enter_context(harness.Portico(cfg, workers=2))
            cls.addr = cls.gw.addr("main")
            cls.admin = AdminClient(cls.gw.admin_addr)
            cls.stack.callback(cls.admin.close)
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def status(self, path, key=None):
        return http_get(self.addr, path, {"x-api-key": key} if key else {})[0]

    def wait_status(self, path, key, want, timeout=10):
        t0 = time.monotonic()
        harness.wait_until(lambda: self.status(path, key) == want, timeout=timeout,
                           interval=0.02, message="status %d" % want)
        return time.monotonic() - t0

    def test_created_revoked_and_deleted_within_seconds(self):
        c = self.admin
        key = c.call("CreateApiKey", api_key={"name": "live", "client_id": "acme"}).key
        self.addCleanup(lambda: c.call("DeleteApiKey", name="live") if any(
            k.name == "live" for k in c.call("ListApiKeys").api_keys) else None)
        self.assertLess(self.wait_status("/echo/secure/x", key, 200), 2.0)
        got = c.call("GetApiKey", name="live")
        c.call("UpdateApiKey", api_key_id="live",
               api_key={"name": "live", "client_id": "acme", "enabled": False},
               version=got.version)
        took = self.wait_status("/echo/secure/x", key, 401)
        self.assertLess(took, 2.0, "revocation took %.2f s" % took)
        got = c.call("GetApiKey", name="live")
        c.call("UpdateApiKey", api_key_id="live",
               api_key={"name": "live", "client_id": "acme", "enabled": True},
               version=got.version)
        self.assertLess(self.wait_status("/echo/secure/x", key, 200), 2.0)
        c.call("DeleteApiKey", name="live")
        took = self.wait_status("/echo/secure/x", key, 401)
        self.assertLess(took, 2.0, "deletion took %.2f s" % took)

    def test_last_used_at_after_a_batch(self):
        c = self.admin
        key = c.call("CreateApiKey", api_key={"name": "used", "client_id": "acme"}).key
        self.addCleanup(c.call, "DeleteApiKey", name="used")
        unused = c.call("CreateApiKey", api_key={"name": "unused", "client_id": "acme"}).key
        self.addCleanup(c.call, "DeleteApiKey", name="unused")
        del unused
        self.wait_status("/echo/secure/x", key, 200)
        state_path = self.gw.config_path + ".state"
        with open(state_path, "rb") as f:
            state = f.read()
        used_at = time.time()
        for _ in range(20):
            self.assertEqual(self.status("/echo/secure/x", key), 200)

        def flushed():
            return usage_seconds(c.call("GetApiKey", name="used"))

        t = harness.wait_until(flushed, timeout=5, interval=0.1, message="last_used_at")
        self.assertLess(abs(t - used_at), 5)
        listed = {k.name: k for k in c.call("ListApiKeys").api_keys}
        self.assertEqual(usage_seconds(listed["used"]), t)
        self.assertIsNone(usage_seconds(listed["unused"]))
        # Not written to the state file (that would rewrite it every batch).
        time.sleep(1.5)
        with open(state_path, "rb") as f:
            self.assertEqual(f.read(), state)
        # Later use moves it forward, in the next batch.
        time.sleep(1.1)
        self.assertEqual(self.status("/echo/secure/x", key), 200)
        harness.wait_until(lambda: flushed() > t, timeout=5, interval=0.1,
                           message="a newer last_used_at")

    def test_rate_limit_counts_the_authenticated_client(self):
        c = self.admin
        a = c.call("CreateApiKey", api_key={"name": "rl-a", "client_id": "rl-client",
                                            "rate_limit_tier": "free"}).key
        b = c.call("CreateApiKey", api_key={"name": "rl-b", "client_id": "rl-client",
                                            "rate_limit_tier": "free"}).key
        other = c.call("CreateApiKey", api_key={"name": "rl-c", "client_id": "rl-other",
                                                "rate_limit_tier": "free"}).key
        c.call("CreateRateLimitRule", rule={"name": "per-client", "key_type": "client_id",
                                            "limit": 3, "window_seconds": 3600, "tier": "free",
                                            "route": "secure"})
        c.call("CreateRateLimitRule", rule={"name": "per-key", "key_type": "api_key",
                                            "limit": 1000, "window_seconds": 3600,
                                            "route": "secure"})
        self.addCleanup(lambda: [c.call(m, name=n) for m, n in (
            ("DeleteRateLimitRule", "per-client"), ("DeleteRateLimitRule", "per-key"),
            ("DeleteApiKey", "rl-a"), ("DeleteApiKey", "rl-b"), ("DeleteApiKey", "rl-c"))])
        self.wait_status("/echo/secure/x", a, 429)  # the rules are live
        # Both keys of one client share its budget; another client has its own.
        self.assertEqual(self.status("/echo/secure/x", b), 429)
        statuses = [self.status("/echo/secure/x", other) for _ in range(4)]
        self.assertEqual(statuses, [200, 200, 200, 429])
        # The api_key rule still saw the key the auth step removed.
        st = c.call("GetRateLimitStats", rule="per-key").rules[0]
        self.assertGreater(st.allowed, 0)


@unittest.skipIf(harness.DIRECT, "gateway-only")
@unittest.skipUnless(HAVE_PG, "PostgreSQL server binaries not installed")
class TestPostgres(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = pgserver.PgServer()
        cls.pg.start()
        cls.be = harness.HttpBackend().start()

    @classmethod
    def tearDownClass(cls):
        cls.be.stop()
        cls.pg.cleanup()

    def test_last_used_at_batches_in_postgres(self):
        uri = self.pg.create_database("auth_usage")
        r = subprocess.run([harness.portico_bin(), "--migrate", "--store", uri],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg = {
            "workers": 2,
            "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1"]}],
            "admin": {"address": "127.0.0.1:%d" % harness.free_port(), "store": uri},
            "auth": {"usage_flush_ms": 1000},
            "services": [{"name": "web", "instances": [self.be.instance()]}],
            "routes": [{"name": "secure", "path_prefix": "/echo", "service": "web",
                        "auth": {"methods": ["api_key"]}}],
        }
        with harness.Portico(cfg) as gw, AdminClient(gw.admin_addr) as c:
            host, port = harness.split_address(gw.admin_addr)
            harness.wait_until(lambda: harness.can_connect(host, port, 0.5), timeout=30,
                               message="admin port")
            key = c.call("CreateApiKey", api_key={"name": "pgkey", "client_id": "acme"}).key
            c.call("CreateApiKey", api_key={"name": "pgidle", "client_id": "acme"})
            addr = gw.addr("main")
            harness.wait_until(lambda: http_get(addr, "/echo", {"x-api-key": key})[0] == 200,
                               timeout=10, message="key live")
            version = self.pg.psql("SELECT version FROM config_state", "auth_usage").strip()
            used_at = time.time()
            for _ in range(10):
                self.assertEqual(http_get(addr, "/echo", {"x-api-key": key})[0], 200)

            def column(name):
                out = self.pg.psql("SELECT extract(epoch FROM last_used_at) FROM api_keys "
                                   "WHERE name = '%s'" % name, "auth_usage").strip()
                return float(out) if out else None

            t = harness.wait_until(lambda: column("pgkey"), timeout=5, interval=0.1,
                                   message="last_used_at in PostgreSQL")
            self.assertLess(abs(t - used_at), 5)
            self.assertIsNone(column("pgidle"))
            # Usage is not a configuration change.
            self.assertEqual(self.pg.psql("SELECT version FROM config_state",
                                          "auth_usage").strip(), version)
            # The admin API reports it too.
            got = c.call("GetApiKey", name="pgkey")
            self.assertLess(abs(usage_seconds(got) - t), 0.01)
            # Updating the key (disabling it) keeps the column.
            c.call("UpdateApiKey", api_key_id="pgkey",
                   api_key={"name": "pgkey", "client_id": "acme", "enabled": False},
                   version=got.version)
            harness.wait_until(lambda: http_get(addr, "/echo", {"x-api-key": key})[0] == 401,
                               timeout=5, message="key revoked")
            self.assertEqual(column("pgkey"), t)


if __name__ == "__main__":
    unittest.main()
