"""Authorization rules (ABAC), the mtls method and API-key roles through
portico (issue 7), end to end.

TestRulesAndMtls (one gateway: a cleartext listener and a TLS listener
with optional client certificates from harness.test_certs()):
  * rules over claims and path parameters ("the owner or an admin"),
    headers, the query, the request method and the client IP: allowed
    requests reach the backend, refused ones are 403 with no upstream call
    and the reason only in the access log; gRPC callers get
    PERMISSION_DENIED;
  * the mtls method: the certificate's CN (default) or fingerprint becomes
    the identity; no certificate is a 401 with the method's challenge; a
    certificate without the chosen SAN is refused; a rule over the
    certificate's identity;
  * API keys with roles (from the configuration file and created through
    the admin API) pass a route with `roles`; keys without the role get
    403.
Configuration errors: a rule that does not compile is reported at its
  line and column in the file.

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_auth_rules
"""

import contextlib
import hashlib
import http.client
import json
import os
import ssl
import sys
import time
import unittest

import grpc

import harness
import protoload
from adminclient import AdminClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_auth import http_get, header, backend_requests  # noqa: E402
from test_auth_jwt import make_key, sign, claims, bearer  # noqa: E402

echo_pb2 = harness.load_echo()
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"]
Req = echo_pb2.EchoRequest
ADMIN_KEY = "pk_admin_0123456789abcdefghij"
PLAIN_KEY = "pk_plain_0123456789abcdefghij"


def key_entry(name, secret, **extra):
    k = {"name": name, "client_id": name, "key_prefix": secret[:8],
         "key_hash": hashlib.sha256(secret.encode()).hexdigest()}
    k.update(extra)
    return k


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestRulesAndMtls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.tmp = cls.stack.enter_context(harness.TempDir(prefix="portico-rules-"))
            cls.rs, _, rs_pub = make_key(cls.tmp.path, "rs", "rsa")
            cls.certs = harness.test_certs()
            cls.be = cls.stack.enter_context(harness.HttpBackend())
            cls.gbe = cls.stack.enter_context(harness.GrpcBackend())
            jwt_only = ["jwt"]
            cfg = {
                "listeners": [
                    {"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]},
                    {"name": "tls", "address": "127.0.0.1:0",
                     "tls": {"cert_file": cls.certs.cert, "key_file": cls.certs.key,
                             "client_ca_file": cls.certs.ca_cert, "client_cert": "optional"}},
                ],
                "services": [{"name": "web", "instances": [cls.be.instance()]},
                             {"name": "grpc", "protocol": "grpc",
                              "instances": [cls.gbe.instance()]}],
                "access_log": {"path": cls.tmp.join("access.log")},
                "auth": {"jwt_issuers": [{"name": "rs", "issuer": "https://rs.test",
                                          "public_key_file": rs_pub}]},
                "api_keys": [key_entry("k-admin", ADMIN_KEY, roles=["admin"]),
                             key_entry("k-plain", PLAIN_KEY)],
                "routes": [
                    {"name": "owner", "path": "/echo/users/{user_id}", "service": "web",
                     "auth": {"methods": jwt_only,
                              "rule": 'claims.sub == path.user_id || "admin" in identity.roles'}},
                    {"name": "tenant", "path_prefix": "/echo/tenant", "service": "web",
                     "auth": {"methods": jwt_only,
                              "rule": 'header.x-tenant == claims["https://example.com/tenant"]'}},
                    {"name": "query", "path_prefix": "/echo/query", "service": "web",
                     "auth": {"methods": jwt_only,
                              "rule": 'query.mode == "read only" && request.method == "GET"'}},
                    {"name": "local", "path_prefix": "/echo/local", "service": "web",
                     "auth": {"methods": jwt_only,
                              "rule": 'ip_in(client_ip, "127.0.0.0/8", "::1")'}},
                    {"name": "office", "path_prefix": "/echo/office", "service": "web",
                     "auth": {"methods": jwt_only, "rule": 'ip_in(client_ip, "10.0.0.0/8")'}},
                    {"name": "roles", "path_prefix": "/echo/roles", "service": "web",
                     "auth": {"methods": ["api_key", "jwt"], "roles": ["admin"]}},
                    {"name": "mtls", "path_prefix": "/echo/mtls/cn", "service": "web",
                     "auth": {"methods": ["mtls"]}},
                    {"name": "mtls-fp", "path_prefix": "/echo/mtls/fp", "service": "web",
                     "auth": {"methods": ["mtls"], "mtls_identity": "fingerprint"}},
                    {"name": "mtls-dns", "path_prefix": "/echo/mtls/dns", "service": "web",
                     "auth": {"methods": ["mtls"], "mtls_identity": "san_dns"}},
                    {"name": "mtls-rule", "path_prefix": "/echo/mtls/rule", "service": "web",
                     "auth": {"methods": ["mtls", "jwt"],
                              "rule": 'identity.method == "mtls" && '
                                      'claims.common_name == "portico test client"'}},
                    {"name": "grpc", "path_prefix": "/portico.test.Echo", "service": "grpc",
                     "auth": {"methods": jwt_only, "rule": 'claims.sub == "alice"'}},
                    {"name": "open", "path_prefix": "/", "service": "web"},
                ],
            }
            cls.gw = cls.stack.enter_context(harness.Portico(cfg, workers=2))
            cls.addr = cls.gw.addr("main")
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def token(self, **kw):
        return sign(self.rs, "RS256", claims("https://rs.test", **kw))

    def get(self, path, headers=None, method="GET"):
        return http_get(self.addr, path, headers, method=method)

    def tls_get(self, path, cert=True):
        ctx = ssl.create_default_context(cafile=self.certs.ca_cert)
        if cert:
            ctx.load_cert_chain(self.certs.client_cert, self.certs.client_key)
        host, port = harness.split_address(self.gw.addr("tls"))
        conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=30)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.getheaders(), r.read()
        finally:
            conn.close()

    def log_line(self, request_id):
        def find():
            for line in self.gw.access_log_lines():
                if line.get("request_id") == request_id:
                    return line
            return None
        return harness.wait_until(find, timeout=10, message="access log line")

    def allowed(self, path, headers=None, method="GET"):
        st, _, body = self.get(path, headers, method)
        self.assertEqual(st, 200, body)
        return json.loads(body)

    def forbidden(self, path, headers=None, method="GET", reason=None):
        before = backend_requests(self.be)
        st, hdrs, body = self.get(path, headers, method)
        self.assertEqual(st, 403, body)
        self.assertEqual(header(hdrs, "www-authenticate"), [])
        self.assertNotIn("rule", body.decode())
        if reason:
            self.assertEqual(self.log_line(json.loads(body)["request_id"])["auth"], reason)
        self.assertEqual(backend_requests(self.be), before, "the upstream was called")

    # ---- rules ----

    def test_owner_or_admin(self):
        self.allowed("/echo/users/alice", bearer(self.token()))
        self.forbidden("/echo/users/bob", bearer(self.token()),
                       reason="jwt: the route's rule is not true for the caller")
        self.allowed("/echo/users/bob", bearer(self.token(roles=["admin"])))

    def test_header_against_a_claim(self):
        tenant = {"https://example.com/tenant": "t-1"}
        tok = self.token(**tenant)
        self.allowed("/echo/tenant/x", dict(bearer(tok), **{"X-Tenant": "t-1"}))
        self.forbidden("/echo/tenant/x", dict(bearer(tok), **{"X-Tenant": "t-2"}))
        # Missing on either side: unknown, so denied.
        self.forbidden("/echo/tenant/x", bearer(tok))
        self.forbidden("/echo/tenant/x", dict(bearer(self.token()), **{"X-Tenant": "t-1"}))
        # A repeated header: the rule reads the first one.
        self.allowed("/echo/tenant/x", dict(bearer(tok), **{"X-Tenant": ["t-1", "t-2"]}))
        self.forbidden("/echo/tenant/x", dict(bearer(tok), **{"X-Tenant": ["t-2", "t-1"]}))

    def test_query_and_method(self):
        tok = bearer(self.token())
        self.allowed("/echo/query/x?a=1&mode=read+only", tok)
        self.allowed("/echo/query/x?mode=read%20only", tok)
        self.forbidden("/echo/query/x?mode=write", tok)
        self.forbidden("/echo/query/x", tok)
        self.forbidden("/echo/query/x?mode=read+only", tok, method="DELETE")

    def test_client_ip(self):
        self.allowed("/echo/local/x", bearer(self.token()))
        self.forbidden("/echo/office/x", bearer(self.token()))

    def test_grpc_permission_denied(self):
        ch = harness.grpc_channel(self.addr)
        self.addCleanup(ch.close)
        stub = protoload.Stub(ch, ECHO)
        stub.Echo(Req(tag="rule-ok"), timeout=30,
                  metadata=[("authorization", "Bearer " + self.token())])
        with self.assertRaises(grpc.RpcError) as cm:
            stub.Echo(Req(tag="rule-no"), timeout=30,
                      metadata=[("authorization", "Bearer " + self.token(sub="mallory"))])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED)

    # ---- mtls ----

    def test_mtls_identity(self):
        st, _, body = self.tls_get("/echo/mtls/cn/x")
        self.assertEqual(st, 200, body)
        seen = json.loads(body)["headers"]
        self.assertEqual(seen["x-authenticated-user"], "portico test client")
        self.assertEqual(seen["x-client-id"], "portico test client")
        st, _, body = self.tls_get("/echo/mtls/fp/x")
        self.assertEqual(st, 200, body)
        with open(self.certs.client_cert, "rb") as f:
            der = ssl.PEM_cert_to_DER_cert(f.read().decode())
        self.assertEqual(json.loads(body)["headers"]["x-client-id"],
                         hashlib.sha256(der).hexdigest())

    def test_mtls_refusals(self):
        before = backend_requests(self.be)
        st, hdrs, _ = self.tls_get("/echo/mtls/cn/x", cert=False)
        self.assertEqual(st, 401)
        self.assertEqual(header(hdrs, "www-authenticate"), ['Certificate realm="portico"'])
        # The test client certificate has no DNS name.
        st, _, _ = self.tls_get("/echo/mtls/dns/x")
        self.assertEqual(st, 401)
        # Cleartext: no certificate at all.
        st, _, _ = self.get("/echo/mtls/cn/x")
        self.assertEqual(st, 401)
        self.assertEqual(backend_requests(self.be), before)

    def test_mtls_with_a_rule(self):
        st, _, body = self.tls_get("/echo/mtls/rule/x")
        self.assertEqual(st, 200, body)
        # The same route with a token: another method, so the rule says no.
        self.forbidden("/echo/mtls/rule/x", bearer(self.token()))

    # ---- API-key roles ----

    def test_api_key_roles(self):
        seen = self.allowed("/echo/roles/x", {"x-api-key": ADMIN_KEY})["headers"]
        self.assertEqual(seen["x-client-id"], "k-admin")
        self.forbidden("/echo/roles/x", {"x-api-key": PLAIN_KEY},
                       reason="api_key: none of the required roles")
        admin = AdminClient(self.gw.admin_addr)
        self.addCleanup(admin.close)
        key = admin.call("CreateApiKey", api_key={"name": "ops", "client_id": "ops",
                                                  "roles": ["admin", "ops"]}).key
        self.addCleanup(admin.call, "DeleteApiKey", name="ops")
        self.assertEqual(list(admin.call("GetApiKey", name="ops").roles), ["admin", "ops"])

        def passes():
            return self.get("/echo/roles/x", {"x-api-key": key})[0] == 200
        harness.wait_until(passes, timeout=10, message="the created key passes")


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestConfigErrors(unittest.TestCase):
    def test_rule_error_points_into_the_rule(self):
        yaml_text = "\n".join([
            'listeners: [{name: main, address: "127.0.0.1:%d"}]' % harness.free_port(),
            "services: [{name: web, instances: [{host: 127.0.0.1, port: 9}]}]",
            "auth:",
            "  jwt_issuers:",
            "    - {name: a, jwks_url: \"http://127.0.0.1:9/jwks\"}",
            "routes:",
            "  - name: r",
            "    path_prefix: /",
            "    service: web",
            "    auth:",
            "      methods: [jwt]",
            "      rule: 'claims.sub == \"x\" && claims.n = 1'",
            "      mtls_identity: cn",
            "",
        ])
        rc, err = harness.check_config(yaml_text=yaml_text)
        self.assertNotEqual(rc, 0)
        # The '=' is at column 32 of the rule, column 44 of line 12.
        self.assertIn("portico.yaml:12:44: routes[0].auth.rule: rule: '=' is not an operator", err)
        self.assertIn("portico.yaml:13:22: routes[0].auth.mtls_identity", err)

    def test_issuer_errors(self):
        cfg = {
            "listeners": [{"name": "main", "address": "127.0.0.1:0"}],
            "services": [{"name": "web", "instances": [{"host": "127.0.0.1", "port": 9}]}],
            "auth": {"jwt_issuers": [
                {"name": "a", "algorithms": ["none"], "jwks_url": "http://127.0.0.1:9/"},
                {"name": "a", "algorithms": ["HS256"], "jwks_url": "http://127.0.0.1:9/"},
                {"name": "b"},
            ], "introspection": [{"name": "i", "url": "ftp://x", "client_id": "c"}]},
            "routes": [{"name": "r", "path_prefix": "/", "service": "web",
                        "auth": {"methods": ["jwt:nope"]}}],
        }
        rc, err = harness.check_config(cfg)
        self.assertNotEqual(rc, 0)
        for want in ('"none" is never accepted', "HS256 needs a secret", 'issuer "a" is defined twice',
                     "give exactly one key source", "use an http:// or https:// URL",
                     "give exactly one of client_secret_env and client_secret_file"):
            self.assertIn(want, err)
        cfg["auth"] = {"jwt_issuers": [{"name": "a", "jwks_url": "http://127.0.0.1:9/"}]}
        rc, err = harness.check_config(cfg)
        self.assertNotEqual(rc, 0)
        self.assertIn('no JWT issuer is called "nope"', err)


if __name__ == "__main__":
    unittest.main()
