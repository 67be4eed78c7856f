"""Bearer-token authentication through portico (issue 7), end to end: the
"jwt" method with static keys and with a JWKS URL whose keys rotate, and
the attacks that must all fail.

TestJwtStatic (one gateway; RSA, EC and HMAC issuers from files):
  * good RS256 / ES256 / HS256 tokens reach the backend with the identity
    headers (sub, azp) and without the token; typ at+jwt is accepted, and
    demanded where require_typ_at_jwt is set;
  * attacks, each a 401 with `WWW-Authenticate: Bearer realm=..,
    error="invalid_token", error_description=..` and NO request at the
    backend: alg none, HS256 signed with the RSA public key as the secret,
    expired, not yet valid, wrong iss, wrong aud, tampered payload,
    truncated, signed by another key, larger than max_token_bytes; a huge
    header is the codec's 431; two Authorization headers are
    invalid_request; no token is a bare challenge;
  * spoofed X-Authenticated-User / X-Client-ID removed;
  * a token from a query parameter or cookie only where the route enables
    it, removed before forwarding;
  * roles and scopes from the claims; gRPC callers get UNAUTHENTICATED
    (with the description) and PERMISSION_DENIED;
  * the verified-token cache on and off; decision counters.
TestIntrospection (the same server's RFC 7662 endpoint): active tokens,
  the answer cache (a second request makes no call), inactive tokens and
  the negative cache, an endpoint that is down or fails (503, gRPC
  UNAVAILABLE, not cached), the order of jwt and introspection methods.
TestJwks (a local JWKS server, tests/unit/auth/authsrv.py, whose keys the
  test rotates): a token with a new kid triggers a refresh and passes; a
  removed key is refused after the next refresh; a gateway started before
  its JWKS server answers waits for the first fetch, then 503.

Keys are made with the openssl CLI; tokens are signed with PyJWT
(python3-jwt, python3-cryptography).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_auth_jwt
"""

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
import unittest

import grpc
import jwt

import harness
import protoload
from adminclient import AdminClient

echo_pb2 = harness.load_echo()
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"]
Req = echo_pb2.EchoRequest
AUTHSRV = os.path.join(harness.REPO_ROOT, "tests", "unit", "auth", "authsrv.py")
REALM = 'Bearer realm="portico"'
HS_SECRET = b"0123456789abcdef0123456789abcdef-hs256-secret"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_auth import http_get, header, backend_requests  # noqa: E402


def openssl(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True, capture_output=True, timeout=60)


def make_key(d, name, kind):
    priv = os.path.join(d, name + ".pem")
    pub = os.path.join(d, name + ".pub.pem")
    if kind == "rsa":
        openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", priv], d)
    else:
        openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", priv], d)
    openssl(["pkey", "-in", priv, "-pubout", "-out", pub], d)
    with open(priv, "rb") as f:
        p = f.read()
    with open(pub, "rb") as f:
        q = f.read()
    return p, q, pub


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def claims(iss, **kw):
    now = int(time.time())
    c = {"iss": iss, "aud": "api", "sub": "alice", "azp": "app-1", "iat": now, "exp": now + 600,
         "scope": "read write", "roles": ["reader"]}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def sign(key, alg, payload, kid=None, typ="JWT"):
    headers = {"typ": typ} if typ else {}
    if kid:
        headers["kid"] = kid
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def unsigned(payload, alg="none"):
    h = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return h + "." + b64url(json.dumps(payload).encode()) + "."


def bearer(tok):
    return {"authorization": "Bearer " + tok}


def challenge(description):
    return '%s, error="invalid_token", error_description="%s"' % (REALM, description)


class AuthCase(unittest.TestCase):
    addr = None
    be = None

    def get(self, path, headers=None):
        return http_get(self.addr, path, headers)

    def echo(self, path, headers=None):
        status, hdrs, body = self.get(path, headers)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def assert_refused(self, path, headers, status=401, www=None, description=None):
        before = backend_requests(self.be)
        st, hdrs, body = self.get(path, headers)
        self.assertEqual(st, status, body)
        if www is not None:
            self.assertEqual(header(hdrs, "www-authenticate"), [www])
        if description is not None:
            self.assertEqual(json.loads(body)["error"], description)
        self.assertEqual(backend_requests(self.be), before, "the upstream was called")
        return hdrs, body


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestJwtStatic(AuthCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.tmp = cls.stack.enter_context(harness.TempDir(prefix="portico-jwt-"))
            d = cls.tmp.path
            cls.rs, cls.rs_pub, rs_pub_file = make_key(d, "rs", "rsa")
            cls.es, cls.es_pub, es_pub_file = make_key(d, "es", "ec")
            cls.other, _, _ = make_key(d, "other", "rsa")
            secret_file = cls.tmp.write("hs.secret", HS_SECRET + b"\n")
            cls.be = cls.stack.enter_context(harness.HttpBackend())
            cls.gbe = cls.stack.enter_context(harness.GrpcBackend())
            issuers = [
                {"name": "rs", "issuer": "https://rs.test", "audiences": ["api"],
                 "algorithms": ["RS256"], "public_key_file": rs_pub_file, "max_token_bytes": 2048},
                {"name": "es", "issuer": "https://es.test", "audiences": ["api", "other"],
                 "public_key_file": es_pub_file},
                {"name": "hs", "issuer": "https://hs.test", "algorithms": ["HS256"],
                 "secret_file": secret_file},
                {"name": "nocache", "issuer": "https://nc.test", "public_key_file": rs_pub_file,
                 "cache": False},
                {"name": "at", "issuer": "https://at.test", "public_key_file": rs_pub_file,
                 "require_typ_at_jwt": True, "roles_claim": "realm_access.roles"},
            ]
            cfg = {
                "listeners": [{"name": "main", "address": "127.0.0.1:0",
                               "protocols": ["http1", "h2c"]}],
                "services": [{"name": "web", "instances": [cls.be.instance()]},
                             {"name": "grpc", "protocol": "grpc",
                              "instances": [cls.gbe.instance()]}],
                "auth": {"jwt_issuers": issuers},
                "routes": [
                    {"name": "any", "path_prefix": "/echo/any", "service": "web",
                     "auth": {"methods": ["jwt"], "claim_headers": {"email": "X-Email"}}},
                    {"name": "rs-only", "path_prefix": "/echo/rs", "service": "web",
                     "auth": {"methods": ["jwt:rs"]}},
                    {"name": "sources", "path_prefix": "/echo/src", "service": "web",
                     "auth": {"methods": ["jwt"], "token_query_param": "access_token",
                              "token_cookie": "at", "keep_cookie": True}},
                    {"name": "roles", "path_prefix": "/echo/roles", "service": "web",
                     "auth": {"methods": ["jwt"], "roles": ["admin"]}},
                    {"name": "scopes", "path_prefix": "/echo/scopes", "service": "web",
                     "auth": {"methods": ["jwt"], "required_scopes": ["write"]}},
                    {"name": "grpc", "path_prefix": "/portico.test.Echo", "service": "grpc",
                     "auth": {"methods": ["jwt"], "required_scopes": ["write"]}},
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

    def rs_token(self, **kw):
        return sign(self.rs, "RS256", claims("https://rs.test", **kw))

    # ---- good tokens ----

    def test_good_tokens_of_every_family(self):
        toks = {
            "RS256": sign(self.rs, "RS256", claims("https://rs.test", email="a@example.com")),
            "ES256": sign(self.es, "ES256", claims("https://es.test", email="a@example.com")),
            "HS256": sign(HS_SECRET, "HS256", claims("https://hs.test", email="a@example.com")),
            "no typ": sign(self.rs, "RS256", claims("https://rs.test", email="a@example.com"),
                           typ=None),
            "at+jwt": sign(self.rs, "RS256", claims("https://rs.test", email="a@example.com"),
                           typ="at+jwt"),
        }
        for name, tok in toks.items():
            with self.subTest(alg=name):
                doc = self.echo("/echo/any/x", dict(bearer(tok), **{
                    "X-Authenticated-User": "root", "X-Client-ID": "evil",
                    "x_authenticated_user": "root"}))
                seen = doc["headers"]
                self.assertEqual(seen["x-authenticated-user"], "alice")
                self.assertEqual(seen["x-client-id"], "app-1")
                self.assertEqual(seen["x-email"], "a@example.com")
                self.assertNotIn("authorization", seen)
                names = [n.lower() for n, _ in doc["header_list"]]
                self.assertEqual(names.count("x-authenticated-user"), 1)
                self.assertNotIn("x_authenticated_user", names)
        # Twice more: the second is a cache hit and must give the same.
        for _ in range(2):
            seen = self.echo("/echo/any/x", bearer(toks["ES256"]))["headers"]
            self.assertEqual(seen["x-authenticated-user"], "alice")
        for _ in range(2):
            tok = sign(self.rs, "RS256", claims("https://nc.test"))
            self.assertEqual(self.echo("/echo/any/x", bearer(tok))["headers"]
                             ["x-authenticated-user"], "alice")

    def test_scheme_is_case_insensitive(self):
        tok = self.rs_token()
        self.echo("/echo/any/x", {"authorization": "bEaReR   " + tok})

    def test_route_bound_to_one_issuer(self):
        self.echo("/echo/rs/x", bearer(self.rs_token()))
        es = sign(self.es, "ES256", claims("https://es.test"))
        self.assert_refused("/echo/rs/x", bearer(es), www=challenge("signing algorithm not allowed"))

    def test_at_jwt_required(self):
        at = sign(self.rs, "RS256", claims("https://at.test", realm_access={"roles": ["x"]}),
                  typ="at+jwt")
        self.echo("/echo/any/x", bearer(at))
        plain = sign(self.rs, "RS256", claims("https://at.test"))
        self.assert_refused("/echo/any/x", bearer(plain),
                            www=challenge("unsupported token type or header"))

    # ---- attacks ----

    def test_attacks_are_401_without_an_upstream_call(self):
        now = int(time.time())
        good = self.rs_token()
        h, p, s = good.split(".")
        tampered_payload = b64url(json.dumps(claims("https://rs.test", sub="admin")).encode())
        cases = [
            ("alg none", unsigned(claims("https://rs.test")), "signing algorithm not allowed"),
            ("alg None", unsigned(claims("https://rs.test"), "None"), "signing algorithm not allowed"),
            ("HS256 with the RSA public key as secret",
             hs256_with_secret(self.rs_pub, claims("https://rs.test")),
             "signing algorithm not allowed"),
            ("HS256 with the EC public key as secret (ES issuer, default algs)",
             hs256_with_secret(self.es_pub, claims("https://es.test")),
             "signing algorithm not allowed"),
            ("expired", self.rs_token(exp=now - 3600, iat=now - 7200), "token expired"),
            ("not yet valid", self.rs_token(nbf=now + 3600), "token not valid yet"),
            ("issued in the future", self.rs_token(iat=now + 3600), "token not valid yet"),
            ("wrong iss", sign(self.rs, "RS256", claims("https://evil.test")), "untrusted issuer"),
            ("wrong aud", self.rs_token(aud="someone-else"), "audience not accepted"),
            ("no exp", self.rs_token(exp=None), "required claim missing"),
            ("tampered payload", h + "." + tampered_payload + "." + s, "invalid signature"),
            ("signed by another key", sign(self.other, "RS256", claims("https://rs.test")),
             "invalid signature"),
            ("truncated signature", good[:-8], None),
            ("truncated to two segments", h + "." + p, "malformed token"),
            ("garbage", "abc.def.ghi", "malformed token"),
            ("oversized", self.rs_token(pad="x" * 3000), "token too large"),
        ]
        for name, tok, desc in cases:
            with self.subTest(attack=name):
                hdrs, body = self.assert_refused("/echo/any/x", bearer(tok))
                www = header(hdrs, "www-authenticate")
                self.assertEqual(len(www), 1)
                self.assertTrue(www[0].startswith(REALM + ', error="invalid_token"'), www)
                if desc:
                    self.assertEqual(www[0], challenge(desc))
                    self.assertEqual(json.loads(body)["error"], desc)
        # The route bound to "rs" refuses a token of another issuer, too.
        self.assert_refused("/echo/rs/x", bearer(sign(self.rs, "RS256", claims("https://nc.test"))),
                            www=challenge("untrusted issuer"))

    def test_missing_token_and_other_schemes(self):
        self.assert_refused("/echo/any/x", {}, www=REALM)
        self.assert_refused("/echo/any/x", {"authorization": "Basic YTpi"}, www=REALM)
        self.assert_refused("/echo/any/x", {"authorization": "Bearer"},
                            www=REALM + ', error="invalid_request"')

    def test_two_authorization_headers(self):
        tok = self.rs_token()
        self.assert_refused("/echo/any/x", {"authorization": ["Bearer " + tok, "Bearer " + tok]},
                            www=REALM + ', error="invalid_request"')

    def test_huge_header_is_431_from_the_codec(self):
        tok = self.rs_token(pad="x" * 200000)
        before = backend_requests(self.be)
        try:
            st, _, _ = self.get("/echo/any/x", bearer(tok))
        except (ConnectionError, OSError):
            st = None  # the codec may close the connection after its 431
        if st is not None:
            self.assertEqual(st, 431)
        self.assertEqual(backend_requests(self.be), before)

    # ---- token sources ----

    def test_token_from_query_and_cookie_only_where_enabled(self):
        tok = self.rs_token()
        doc = self.echo("/echo/src/x?a=1&access_token=%s&b=2" % tok)
        self.assertEqual(doc["headers"]["x-authenticated-user"], "alice")
        self.assertEqual(doc["query"], "a=1&b=2")
        doc = self.echo("/echo/src/x", {"cookie": "theme=dark; at=%s; lang=en" % tok})
        self.assertEqual(doc["headers"]["x-authenticated-user"], "alice")
        self.assertEqual(doc["headers"]["cookie"], "theme=dark; lang=en")
        doc = self.echo("/echo/src/x?access_token=%s" % tok)
        self.assertEqual(doc["query"], "")
        # The header wins over the other sources.
        doc = self.echo("/echo/src/x?access_token=junk", bearer(tok))
        self.assertEqual(doc["query"], "")
        # A bad token from the query is refused like one from the header.
        self.assert_refused("/echo/src/x?access_token=" + tok[:-8], {})
        # Where the route does not enable them, they are not credentials.
        self.assert_refused("/echo/any/x?access_token=" + tok, {}, www=REALM)
        self.assert_refused("/echo/any/x", {"cookie": "at=" + tok}, www=REALM)

    # ---- policy ----

    def test_roles_and_scopes_from_claims(self):
        self.echo("/echo/roles/x", bearer(self.rs_token(roles=["reader", "admin"])))
        self.echo("/echo/roles/x", bearer(self.rs_token(roles="admin")))
        self.assert_refused("/echo/roles/x", bearer(self.rs_token()), status=403)
        self.echo("/echo/scopes/x", bearer(self.rs_token()))
        self.assert_refused("/echo/scopes/x", bearer(self.rs_token(scope="read")), status=403)
        # scp as an array counts too.
        self.echo("/echo/scopes/x", bearer(self.rs_token(scope=None, scp=["write"])))

    def test_grpc_callers(self):
        ch = harness.grpc_channel(self.addr)
        self.addCleanup(ch.close)
        stub = protoload.Stub(ch, ECHO)
        resp, call = stub.Echo.with_call(Req(tag="jwt-ok"), timeout=30,
                                         metadata=[("authorization", "Bearer " + self.rs_token())])
        md = dict(call.initial_metadata())
        self.assertEqual(md.get("x-authenticated-user"), "alice")
        now = int(time.time())
        for meta, code, details in (
                ([], grpc.StatusCode.UNAUTHENTICATED, None),
                ([("authorization", "Bearer " + self.rs_token(exp=now - 3600, iat=now - 7200))],
                 grpc.StatusCode.UNAUTHENTICATED, "token expired"),
                ([("authorization", "Bearer " + unsigned(claims("https://rs.test")))],
                 grpc.StatusCode.UNAUTHENTICATED, "signing algorithm not allowed"),
                ([("authorization", "Bearer " + self.rs_token(scope="read"))],
                 grpc.StatusCode.PERMISSION_DENIED, None)):
            with self.subTest(details=details, code=code):
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.Echo(Req(tag="jwt-no"), timeout=30, metadata=meta)
                self.assertEqual(cm.exception.code(), code)
                if details:
                    self.assertEqual(cm.exception.details(), details)

    def test_decision_counters_name_the_method(self):
        admin = AdminClient(self.gw.admin_addr)
        self.addCleanup(admin.close)

        def value(decision):
            text = admin.call("GetMetrics").prometheus_text
            want = 'portico_auth_decisions_total{route="any",method="jwt",decision="%s"} ' % decision
            for line in text.splitlines():
                if line.startswith(want):
                    return int(line.split()[-1])
            self.fail("no %s in the metrics" % want)

        a, d = value("allowed"), value("denied")
        self.get("/echo/any/x", bearer(self.rs_token()))
        self.get("/echo/any/x", bearer(unsigned(claims("https://rs.test"))))
        self.assertEqual(value("allowed"), a + 1)
        self.assertEqual(value("denied"), d + 1)


class AuthServer(object):
    """tests/unit/auth/authsrv.py as a process: JWKS from DIR/jwks.json
    (rewritten by the test), an RFC 7662 endpoint, request counts."""

    def __init__(self, directory, client_id="portico", client_secret="s3cr3t"):
        self.dir = directory
        self.args = ["--client-id", client_id, "--client-secret", client_secret]
        self.proc = None
        self.port = None

    def __enter__(self):
        self.proc = subprocess.Popen([harness.PYTHON, AUTHSRV, "--dir", self.dir] + self.args,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("port "):
            self.stop()
            raise RuntimeError("authsrv did not start: %r" % line)
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.proc:
            harness._terminate(self.proc)
            self.proc.stdout.close()
            self.proc = None

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def count(self, path):
        st, _, body = http_get("127.0.0.1:%d" % self.port, "/count?p=" + path)
        assert st == 200
        return int(body)

    def set_jwks(self, keys):
        doc = {"keys": keys}
        tmp = os.path.join(self.dir, "jwks.json.tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, os.path.join(self.dir, "jwks.json"))


def jwk_of(pub_pem, kid, alg):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    pub = load_pem_public_key(pub_pem)
    algo = jwt.algorithms.RSAAlgorithm if alg.startswith("RS") else jwt.algorithms.ECAlgorithm
    k = json.loads(algo.to_jwk(pub))
    k.update({"kid": kid, "alg": alg, "use": "sig"})
    return k


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestJwks(AuthCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.tmp = cls.stack.enter_context(harness.TempDir(prefix="portico-jwks-"))
            d = cls.tmp.path
            cls.k1, cls.k1_pub, _ = make_key(d, "k1", "rsa")
            cls.k2, cls.k2_pub, _ = make_key(d, "k2", "rsa")
            cls.k3, cls.k3_pub, _ = make_key(d, "k3", "ec")
            cls.jwks = {"k1": jwk_of(cls.k1_pub, "k1", "RS256"),
                        "k2": jwk_of(cls.k2_pub, "k2", "RS256"),
                        "k3": jwk_of(cls.k3_pub, "k3", "ES256")}
            cls.srv = cls.stack.enter_context(AuthServer(d))
            cls.srv.set_jwks([cls.jwks["k1"]])
            file_jwks = cls.tmp.write("file-jwks.json", json.dumps({"keys": [cls.jwks["k3"]]}))
            cls.be = cls.stack.enter_context(harness.HttpBackend())
            cfg = {
                "listeners": [{"name": "main", "address": "127.0.0.1:0",
                               "protocols": ["http1", "h2c"]}],
                "services": [{"name": "web", "instances": [cls.be.instance()]}],
                "auth": {"jwt_issuers": [
                    {"name": "idp", "issuer": "https://idp.test", "audiences": ["api"],
                     "jwks_url": cls.srv.url("/jwks"), "jwks_refresh_ms": 1500},
                    {"name": "filekeys", "issuer": "https://file.test", "jwks_file": file_jwks},
                ]},
                "routes": [
                    {"name": "api", "path_prefix": "/echo", "service": "web",
                     "auth": {"methods": ["jwt"]}},
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

    def token(self, key, kid, alg="RS256", iss="https://idp.test", **kw):
        return sign(key, alg, claims(iss, **kw), kid=kid)

    def test_rotation(self):
        # The first document is there (fetched at start, or waited for).
        self.echo("/echo/x", bearer(self.token(self.k1, "k1")))
        # A key appears: its first token names an unknown kid, which makes
        # the gateway fetch the document again and wait for it.
        self.srv.set_jwks([self.jwks["k1"], self.jwks["k2"]])
        before = self.srv.count("/jwks")
        seen = self.echo("/echo/x", bearer(self.token(self.k2, "k2", sub="bob")))["headers"]
        self.assertEqual(seen["x-authenticated-user"], "bob")
        self.assertGreater(self.srv.count("/jwks"), before)
        self.echo("/echo/x", bearer(self.token(self.k1, "k1")))
        # The old key goes: once the gateway has the new document (the
        # next timed refresh, or an on-demand one), k1 tokens are refused.
        self.srv.set_jwks([self.jwks["k2"]])
        old = self.token(self.k1, "k1")

        def refused():
            st, hdrs, _ = self.get("/echo/x", bearer(old))
            return st == 401 and header(hdrs, "www-authenticate") == [challenge("unknown signing key")]
        harness.wait_until(refused, timeout=15, message="k1 refused after its removal")
        self.assert_refused("/echo/x", bearer(old), www=challenge("unknown signing key"))
        self.echo("/echo/x", bearer(self.token(self.k2, "k2")))

    def test_unknown_kid_is_refused_after_a_refresh(self):
        forged, _, _ = make_key(self.tmp.path, "forged", "rsa")
        tok = self.token(forged, "never-published")
        t0 = time.monotonic()
        self.assert_refused("/echo/x", bearer(tok), www=challenge("unknown signing key"))
        self.assertLess(time.monotonic() - t0, 8)
        # A flood of made-up kids costs at most one fetch per interval.
        before = self.srv.count("/jwks")
        for i in range(20):
            self.assert_refused("/echo/x", bearer(self.token(forged, "made-up-%d" % i)))
        self.assertLessEqual(self.srv.count("/jwks") - before, 3)

    def test_jwks_file(self):
        tok = sign(self.k3, "ES256", claims("https://file.test"), kid="k3")
        self.echo("/echo/x", bearer(tok))


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestJwksLifecycle(AuthCase):
    """A JWKS that cannot be fetched: requests wait for the fetch (bounded)
    and get 503 - the keys are unavailable, the token may be fine. A
    reload that keeps the issuer keeps its JWKS source (no new fetch)."""

    def test_reload_keeps_the_source(self):
        with harness.TempDir(prefix="portico-jwks-") as tmp, \
                AuthServer(tmp.path) as srv, harness.HttpBackend() as be:
            key, pub, _ = make_key(tmp.path, "k", "rsa")
            srv.set_jwks([jwk_of(pub, "k", "RS256")])

            def cfg(extra_route):
                routes = [{"name": "api", "path_prefix": "/echo", "service": "web",
                           "auth": {"methods": ["jwt"]}}]
                if extra_route:
                    routes.append({"name": "other", "path_prefix": "/echo/other", "service": "web"})
                return {
                    "listeners": [{"name": "main", "address": "127.0.0.1:0",
                                   "protocols": ["http1"]}],
                    "services": [{"name": "web", "instances": [be.instance()]}],
                    "auth": {"jwt_issuers": [{"name": "idp", "jwks_url": srv.url("/jwks")}]},
                    "routes": routes,
                }
            with harness.Portico(cfg(False), workers=1) as gw:
                self.addr, self.be = gw.addr("main"), be
                tok = bearer(sign(key, "RS256", claims("x"), kid="k"))
                self.echo("/echo/x", tok)
                fetched = srv.count("/jwks")
                self.assertGreaterEqual(fetched, 1)
                gw.reload(cfg(True), wait_for=r"configuration generation \d+ loaded")
                self.echo("/echo/x", tok)
                self.echo("/echo/other/x")
                self.assertEqual(srv.count("/jwks"), fetched, "the reload fetched the JWKS again")

    def test_503_when_the_keys_never_came(self):
        with harness.TempDir(prefix="portico-jwks-") as tmp, \
                harness.HttpBackend() as be:
            key, _, _ = make_key(tmp.path, "k", "rsa")
            port = harness.free_port()  # nothing listens there
            cfg = {
                "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1"]}],
                "services": [{"name": "web", "instances": [be.instance()]}],
                "auth": {"jwt_issuers": [{"name": "idp", "jwks_url":
                                          "http://127.0.0.1:%d/jwks" % port}]},
                "routes": [{"name": "api", "path_prefix": "/", "service": "web",
                            "auth": {"methods": ["jwt"]}}],
            }
            with harness.Portico(cfg, workers=1) as gw:
                self.addr, self.be = gw.addr("main"), be
                t0 = time.monotonic()
                self.assert_refused("/echo", bearer(sign(key, "RS256", claims("x"), kid="a")),
                                    status=503)
                self.assertLess(time.monotonic() - t0, 10)
                self.assertRegex(gw.stderr, r"jwt: issuer idp: no keys")


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestIntrospection(AuthCase):
    """Opaque tokens checked with a local RFC 7662 endpoint (authsrv.py:
    tokens "active..." are active for sub "user-<token>", client app-1,
    scopes read, write, admin:x; "inactive..." are not; "err500..." make
    it fail)."""

    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.tmp = cls.stack.enter_context(harness.TempDir(prefix="portico-intro-"))
            cls.rs, _, rs_pub = make_key(cls.tmp.path, "rs", "rsa")
            cls.srv = cls.stack.enter_context(AuthServer(cls.tmp.path, "portico", "s3cr3t:&+%"))
            secret_file = cls.tmp.write("down.secret", "whatever\n")
            cls.be = cls.stack.enter_context(harness.HttpBackend())
            cls.gbe = cls.stack.enter_context(harness.GrpcBackend())
            corp = ["introspection:corp"]
            cfg = {
                "listeners": [{"name": "main", "address": "127.0.0.1:0",
                               "protocols": ["http1", "h2c"]}],
                "services": [{"name": "web", "instances": [cls.be.instance()]},
                             {"name": "grpc", "protocol": "grpc",
                              "instances": [cls.gbe.instance()]}],
                "auth": {
                    "jwt_issuers": [{"name": "rs", "issuer": "https://rs.test",
                                     "public_key_file": rs_pub}],
                    "introspection": [
                        {"name": "corp", "url": cls.srv.url("/introspect"), "client_id": "portico",
                         "client_secret_env": "PT_TEST_INTROSPECT_SECRET",
                         "token_type_hint": "access_token", "negative_ttl_ms": 60000},
                        {"name": "down", "url": "http://127.0.0.1:%d/introspect" % harness.free_port(),
                         "client_id": "x", "client_secret_file": secret_file, "timeout_ms": 2000},
                    ]},
                "routes": [
                    {"name": "opaque", "path_prefix": "/echo/opaque", "service": "web",
                     "auth": {"methods": corp, "claim_headers": {"username": "X-Username"}}},
                    {"name": "scoped", "path_prefix": "/echo/scoped", "service": "web",
                     "auth": {"methods": corp, "required_scopes": ["admin:x"]}},
                    {"name": "down", "path_prefix": "/echo/down", "service": "web",
                     "auth": {"methods": ["introspection:down"]}},
                    {"name": "jwt-first", "path_prefix": "/echo/jwt-first", "service": "web",
                     "auth": {"methods": ["jwt"] + corp}},
                    {"name": "intro-first", "path_prefix": "/echo/intro-first", "service": "web",
                     "auth": {"methods": corp + ["jwt"]}},
                    {"name": "grpc", "path_prefix": "/portico.test.Echo", "service": "grpc",
                     "auth": {"methods": corp}},
                    {"name": "open", "path_prefix": "/", "service": "web"},
                ],
            }
            cls.gw = cls.stack.enter_context(harness.Portico(
                cfg, workers=2, env={"PT_TEST_INTROSPECT_SECRET": "s3cr3t:&+%"}))
            cls.addr = cls.gw.addr("main")
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def calls(self):
        return self.srv.count("/introspect")

    def test_active_token_and_the_cache(self):
        before = self.calls()
        seen = self.echo("/echo/opaque/x", bearer("active-cache-1"))["headers"]
        self.assertEqual(seen["x-authenticated-user"], "user-active-cache-1")
        self.assertEqual(seen["x-client-id"], "app-1")
        self.assertEqual(seen["x-username"], "alice")
        self.assertNotIn("authorization", seen)
        self.assertEqual(self.calls(), before + 1)
        # The second request is answered from the cache: no call.
        for _ in range(3):
            self.echo("/echo/opaque/x", bearer("active-cache-1"))
        self.assertEqual(self.calls(), before + 1)
        self.echo("/echo/scoped/x", bearer("active-cache-1"))

    def test_inactive_token_and_the_negative_cache(self):
        before = self.calls()
        www = 'Bearer realm="portico", error="invalid_token", error_description="token is not active"'
        self.assert_refused("/echo/opaque/x", bearer("inactive-neg-1"), www=www,
                            description="token is not active")
        self.assertEqual(self.calls(), before + 1)
        self.assert_refused("/echo/opaque/x", bearer("inactive-neg-1"), www=www)
        self.assertEqual(self.calls(), before + 1, "the inactive answer was not cached")

    def test_endpoint_errors_are_503_and_not_cached(self):
        self.assert_refused("/echo/down/x", bearer("active-down"), status=503)
        before = self.calls()
        self.assert_refused("/echo/opaque/x", bearer("err500-1"), status=503)
        self.assert_refused("/echo/opaque/x", bearer("err500-1"), status=503)
        self.assertEqual(self.calls(), before + 2)
        self.assertRegex(self.gw.stderr, r"introspection (down|corp): no answer")

    def test_method_order_decides(self):
        jwt_tok = sign(self.rs, "RS256", claims("https://rs.test"))
        before = self.calls()
        # jwt first: a JWT is the jwt method's, an opaque token falls through.
        self.echo("/echo/jwt-first/x", bearer(jwt_tok))
        self.assertEqual(self.calls(), before)
        seen = self.echo("/echo/jwt-first/x", bearer("active-order-1"))["headers"]
        self.assertEqual(seen["x-authenticated-user"], "user-active-order-1")
        self.assertEqual(self.calls(), before + 1)
        # A bad JWT fails there: no fall-through to introspection.
        expired = sign(self.rs, "RS256", claims("https://rs.test", exp=int(time.time()) - 3600))
        self.assert_refused("/echo/jwt-first/x", bearer(expired))
        self.assertEqual(self.calls(), before + 1)
        # introspection first: every bearer token goes to the endpoint.
        self.assert_refused("/echo/intro-first/x", bearer(jwt_tok))
        self.assertEqual(self.calls(), before + 2)

    def test_grpc_callers(self):
        ch = harness.grpc_channel(self.addr)
        self.addCleanup(ch.close)
        stub = protoload.Stub(ch, ECHO)
        _, call = stub.Echo.with_call(Req(tag="intro-ok"), timeout=30,
                                      metadata=[("authorization", "Bearer active-grpc")])
        self.assertEqual(dict(call.initial_metadata()).get("x-authenticated-user"),
                         "user-active-grpc")
        for tok, code in (("inactive-grpc", grpc.StatusCode.UNAUTHENTICATED),
                          ("err500-grpc", grpc.StatusCode.UNAVAILABLE)):
            with self.subTest(token=tok):
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.Echo(Req(tag="intro-no"), timeout=30,
                              metadata=[("authorization", "Bearer " + tok)])
                self.assertEqual(cm.exception.code(), code)


def hs256_with_secret(secret, payload):
    """The classic forgery: HS256 keyed with a public key's PEM text.
    (PyJWT refuses to do it, so it is done by hand.)"""
    import hashlib
    import hmac
    h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64url(json.dumps(payload).encode())
    mac = hmac.new(secret, (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64url(mac)


if __name__ == "__main__":
    unittest.main()
