"""The admin gRPC server against the real binary: reflection (v1, v1alpha,
python grpcio and buf curl), health Check/Watch, bearer-token and mTLS
access control, the loopback rule, and Admin methods invoked by clients that
learn the service through reflection alone.

The Python client knows only the reflection and health protos (compiled
here from proto/third_party under private file names, so that the
generated modules do not shadow the `grpc` package); everything about the
Admin service is learned from the server.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import unittest

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

import harness
import protoload

THIRD = os.path.join(harness.REPO_ROOT, "proto", "third_party")
RPC_TIMEOUT = 10
ADMIN = "portico.admin.v1.Admin"
EXPECTED_METHODS = {"CreateRoute", "GetRoute", "ListRoutes", "UpdateRoute", "DeleteRoute",
                    "CreateService", "Validate", "Export", "Apply", "GetMetrics", "GetHealth"}
ALL_SERVICES = {ADMIN, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection"}


def _load_client_protos():
    tmp = tempfile.mkdtemp(prefix="portico-admin-protos-")
    try:
        names = {"grpc/reflection/v1/reflection.proto": "ptadmintest/reflection_v1.proto",
                 "grpc/reflection/v1alpha/reflection.proto": "ptadmintest/reflection_v1alpha.proto",
                 "grpc/health/v1/health.proto": "ptadmintest/health_v1.proto"}
        os.makedirs(os.path.join(tmp, "ptadmintest"))
        for src, dst in names.items():
            shutil.copy(os.path.join(THIRD, src), os.path.join(tmp, dst))
        return protoload.load_protos(tmp, list(names.values()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


REFL_V1, REFL_V1ALPHA, HEALTH = _load_client_protos()


def base_config():
    return {"listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}]}


def reflect(channel, requests, alpha=False, metadata=None):
    mod = REFL_V1ALPHA if alpha else REFL_V1
    pkg = "v1alpha" if alpha else "v1"
    call = channel.stream_stream(
        "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % pkg,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=mod.ServerReflectionResponse.FromString)
    return list(call(iter([mod.ServerReflectionRequest(**r) for r in requests]),
                     timeout=RPC_TIMEOUT, metadata=metadata))


def health_check(channel, service="", metadata=None):
    call = channel.unary_unary("/grpc.health.v1.Health/Check",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=HEALTH.HealthCheckResponse.FromString)
    return call(HEALTH.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT, metadata=metadata)


def health_watch(channel, service=""):
    call = channel.unary_stream("/grpc.health.v1.Health/Watch",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=HEALTH.HealthCheckResponse.FromString)
    return call(HEALTH.HealthCheckRequest(service=service), timeout=30)


def start_expecting_exit(gw):
    """Start a gateway that should refuse to run; its exit code. (Its
    listeners may accept briefly before the admin server is refused.)"""
    try:
        gw.start()
    except harness.StartError:
        pass
    return gw.wait_exit(30)


def status_name(st):
    return HEALTH.HealthCheckResponse.ServingStatus.Name(st)


class ReflectionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = harness.Portico(base_config()).__enter__()
        cls.channel = harness.grpc_channel(cls.gw.admin_addr)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.gw.__exit__(None, None, None)

    def test_list_services_v1_and_v1alpha(self):
        for alpha in (False, True):
            (r,) = reflect(self.channel, [{"list_services": ""}], alpha=alpha)
            names = {s.name for s in r.list_services_response.service}
            self.assertEqual(names, ALL_SERVICES, "alpha=%s" % alpha)

    def _pool_for(self, symbol, alpha=False):
        (r,) = reflect(self.channel, [{"file_containing_symbol": symbol}], alpha=alpha)
        self.assertEqual(r.WhichOneof("message_response"), "file_descriptor_response", r)
        protos = [descriptor_pb2.FileDescriptorProto.FromString(b)
                  for b in r.file_descriptor_response.file_descriptor_proto]
        pool = descriptor_pool.DescriptorPool()
        pending = {p.name: p for p in protos}
        added = set()
        # Add in dependency order; every import must be among the returned files.
        for _ in range(len(pending) + 1):
            for name, p in list(pending.items()):
                if all(d in added for d in p.dependency):
                    pool.Add(p)
                    added.add(name)
                    del pending[name]
        self.assertEqual(pending, {}, "files whose imports were not returned: %s" % list(pending))
        return pool, protos

    def test_admin_service_from_reflection_alone(self):
        for alpha in (False, True):
            pool, protos = self._pool_for(ADMIN, alpha=alpha)
            self.assertEqual(protos[0].name, "portico/admin/v1/admin.proto")
            svc = pool.FindServiceByName(ADMIN)
            self.assertTrue(EXPECTED_METHODS <= {m.name for m in svc.methods})
            # The google.api.http option survives (extension 72295728 of MethodOptions).
            opts = svc.FindMethodByName("CreateRoute").GetOptions()
            raw = opts.SerializeToString()
            ext_pool_file = pool.FindFileByName("google/api/annotations.proto")
            self.assertIn("http", ext_pool_file.extensions_by_name)
            self.assertIn(b"/admin/routes", raw)
            # Decode the HttpRule through the reflected descriptors.
            from google.protobuf import message_factory
            http_ext = ext_pool_file.extensions_by_name["http"]
            factory = message_factory.MessageFactory(pool)
            mo_cls = factory.GetPrototype(pool.FindMessageTypeByName("google.protobuf.MethodOptions"))
            factory.GetPrototype(pool.FindMessageTypeByName("google.api.HttpRule"))
            mo = mo_cls.FromString(raw)
            rule = mo.Extensions[http_ext]
            self.assertEqual(rule.post, "/admin/routes")
            self.assertEqual(rule.body, "route")

    def test_method_symbol_and_files(self):
        (r,) = reflect(self.channel, [{"file_containing_symbol": ADMIN + ".CreateRoute"}])
        first = descriptor_pb2.FileDescriptorProto.FromString(r.file_descriptor_response.file_descriptor_proto[0])
        self.assertEqual(first.name, "portico/admin/v1/admin.proto")
        (r,) = reflect(self.channel, [{"file_by_filename": "google/api/http.proto"}])
        names = [descriptor_pb2.FileDescriptorProto.FromString(b).name
                 for b in r.file_descriptor_response.file_descriptor_proto]
        self.assertEqual(names[0], "google/api/http.proto")
        (r,) = reflect(self.channel, [{"file_containing_symbol": "portico.config.v1.Route"}])
        first = descriptor_pb2.FileDescriptorProto.FromString(r.file_descriptor_response.file_descriptor_proto[0])
        self.assertEqual(first.name, "portico/config/v1/config.proto")

    def test_extensions(self):
        ext = REFL_V1.ExtensionRequest(containing_type="google.protobuf.MethodOptions",
                                       extension_number=72295728)
        r1, r2 = reflect(self.channel, [
            {"file_containing_extension": ext},
            {"all_extension_numbers_of_type": "google.protobuf.MethodOptions"}])
        first = descriptor_pb2.FileDescriptorProto.FromString(r1.file_descriptor_response.file_descriptor_proto[0])
        self.assertEqual(first.name, "google/api/annotations.proto")
        self.assertEqual(r2.all_extension_numbers_response.base_type_name, "google.protobuf.MethodOptions")
        self.assertIn(72295728, list(r2.all_extension_numbers_response.extension_number))

    def test_not_found_errors_keep_the_stream(self):
        rs = reflect(self.channel, [{"file_by_filename": "no/such.proto"},
                                    {"file_containing_symbol": "no.such.Symbol"},
                                    {"all_extension_numbers_of_type": "no.such.Type"},
                                    {"list_services": ""}])
        self.assertEqual(len(rs), 4)
        for r in rs[:3]:
            self.assertEqual(r.WhichOneof("message_response"), "error_response", r)
            self.assertEqual(r.error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])
        self.assertEqual(rs[3].WhichOneof("message_response"), "list_services_response")

    def test_invoke_admin_methods_learned_by_reflection(self):
        from google.protobuf import json_format, message_factory
        pool, _ = self._pool_for(ADMIN)
        factory = message_factory.MessageFactory(pool)
        svc = pool.FindServiceByName(ADMIN)

        def call(method, **fields):
            m = svc.FindMethodByName(method)
            req_cls = factory.GetPrototype(m.input_type)
            resp_cls = factory.GetPrototype(m.output_type)
            req = json_format.ParseDict(fields, req_cls())
            rpc = self.channel.unary_unary("/%s/%s" % (ADMIN, method),
                                           request_serializer=lambda x: x.SerializeToString(),
                                           response_deserializer=resp_cls.FromString)
            return rpc(req, timeout=RPC_TIMEOUT)

        svc_obj = call("CreateService", service={"name": "refl-svc", "protocol": "SERVICE_PROTOCOL_GRPC",
                                                   "instances": [{"host": "127.0.0.1", "port": 9}]})
        self.assertEqual(svc_obj.name, "refl-svc")
        self.assertGreater(svc_obj.version, 0)
        listed = call("ListServices", page_size=10)
        self.assertIn("refl-svc", [s.name for s in listed.services])
        health = call("GetHealth")
        self.assertEqual(json_format.MessageToDict(health)["status"], "STATUS_SERVING")
        with self.assertRaises(grpc.RpcError) as cm:
            call("GetService", name="no-such-service")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        call("DeleteService", name="refl-svc")
        with self.assertRaises(grpc.RpcError) as cm:
            self.channel.unary_unary("/no.Such/Method")(b"", timeout=RPC_TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_health_check(self):
        self.assertEqual(status_name(health_check(self.channel).status), "SERVING")
        self.assertEqual(status_name(health_check(self.channel, ADMIN).status), "SERVING")
        with self.assertRaises(grpc.RpcError) as cm:
            health_check(self.channel, "no.such.Service")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_health_watch_unknown_service(self):
        stream = health_watch(self.channel, "no.such.Service")
        self.assertEqual(status_name(next(stream).status), "SERVICE_UNKNOWN")
        stream.cancel()

    def test_malformed_request_is_invalid_argument(self):
        call = self.channel.unary_unary("/grpc.health.v1.Health/Check")
        with self.assertRaises(grpc.RpcError) as cm:
            call(b"\x0a\xff\xff", timeout=RPC_TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_oversized_request_is_refused(self):
        call = self.channel.unary_unary("/grpc.health.v1.Health/Check")
        with self.assertRaises(grpc.RpcError) as cm:
            call(b"\x0a\x84\x80\x80\x08" + b"x" * (17 * 1024 * 1024), timeout=RPC_TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(status_name(health_check(self.channel).status), "SERVING")

    def test_many_concurrent_calls(self):
        futures = [self.channel.unary_unary("/grpc.health.v1.Health/Check").future(b"", timeout=RPC_TIMEOUT)
                   for _ in range(200)]
        self.assertEqual({f.result() for f in futures}, {b"\x08\x01"})


class BufCurlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            cls.buf = harness.buf_binary()
        except harness.HarnessError as exc:
            if os.environ.get("CI"):
                raise  # CI installs it from npm: a missing buf is a failure there
            raise unittest.SkipTest("buf CLI unavailable: %s" % exc)

    def run_buf(self, *args):
        proc = subprocess.run([self.buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge"] + list(args),
                              capture_output=True, timeout=60, env=dict(os.environ, HOME=tempfile.gettempdir()))
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    def test_list_methods_and_call_via_reflection(self):
        with harness.Portico(base_config()) as gw:
            url = "http://%s" % gw.admin_addr
            for proto in ("grpc-v1", "grpc-v1alpha"):
                rc, out, err = self.run_buf("--reflect-protocol", proto, "--list-methods", url)
                self.assertEqual(rc, 0, err)
                methods = set(out.split())
                self.assertIn(ADMIN + "/CreateRoute", methods, proto)
                self.assertIn("grpc.health.v1.Health/Watch", methods, proto)
            rc, out, err = self.run_buf("-d", '{"service": "%s"}' % ADMIN, url + "/grpc.health.v1.Health/Check")
            self.assertEqual(rc, 0, err)
            self.assertIn('"SERVING"', out)
            rc, out, err = self.run_buf(
                "-d", '{"service": {"name": "buf-svc", "instances": [{"host": "127.0.0.1", "port": 9}]}}',
                url + "/%s/CreateService" % ADMIN)
            self.assertEqual(rc, 0, err)
            self.assertIn('"buf-svc"', out)
            rc, out, err = self.run_buf(
                "-d", '{"route": {"name": "buf-route", "pathPrefix": "/buf", "service": "buf-svc"}}',
                url + "/%s/CreateRoute" % ADMIN)
            self.assertEqual(rc, 0, err)
            rc, out, err = self.run_buf("-d", "{}", url + "/%s/ListRoutes" % ADMIN)
            self.assertEqual(rc, 0, err)
            self.assertIn('"buf-route"', out)
            # An invalid change: the error names the field (google.rpc.BadRequest).
            rc, out, err = self.run_buf(
                "-d", '{"route": {"name": "bad", "pathPrefix": "/bad", "service": "missing"}}',
                url + "/%s/CreateRoute" % ADMIN)
            self.assertNotEqual(rc, 0)
            self.assertIn("invalid_argument", (out + err).lower())
            self.assertIn("google.rpc.BadRequest", out + err)
            # buf prints the detail decoded when it resolves the type through
            # reflection, else as base64 of the packed BadRequest.
            import base64, json as _json
            details = _json.loads(out or err)["details"]
            text = _json.dumps(details)
            if "route.service" not in text:
                text = base64.b64decode(details[0]["value"]).decode("latin-1")
            self.assertIn("route.service", text)


class HealthWatchDrainTest(unittest.TestCase):
    def test_watch_sees_not_serving_when_draining(self):
        gw = harness.Portico(base_config())
        with gw:
            ch = harness.grpc_channel(gw.admin_addr)
            stream = health_watch(ch)
            self.assertEqual(status_name(next(stream).status), "SERVING")
            os.kill(gw.pid, signal.SIGTERM)
            self.assertEqual(status_name(next(stream).status), "NOT_SERVING")
            # The stream then ends cleanly when the server stops.
            self.assertEqual(list(stream), [])
            self.assertEqual(stream.code(), grpc.StatusCode.OK)
            self.assertEqual(gw.wait_exit(30), 0)
            ch.close()


class AccessControlTest(unittest.TestCase):
    def test_bearer_token(self):
        port = harness.free_port()
        cfg = base_config()
        cfg["admin"] = {"address": "127.0.0.1:%d" % port, "token_env": "PT_ADMIN_TEST_TOKEN"}
        with harness.Portico(cfg, env={"PT_ADMIN_TEST_TOKEN": "s3cret-token"}) as gw:
            harness.wait_until(lambda: harness.can_connect("127.0.0.1", port), message="admin port")
            ch = harness.grpc_channel(gw.admin_addr)
            for md in (None, [("authorization", "Bearer wrong")], [("authorization", "s3cret-token")]):
                with self.assertRaises(grpc.RpcError) as cm:
                    reflect(ch, [{"list_services": ""}], metadata=md)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED, md)
            (r,) = reflect(ch, [{"list_services": ""}], metadata=[("authorization", "Bearer s3cret-token")])
            self.assertEqual({s.name for s in r.list_services_response.service}, ALL_SERVICES)
            # Health Check stays open to probes without the token.
            self.assertEqual(status_name(health_check(ch).status), "SERVING")
            with self.assertRaises(grpc.RpcError) as cm:
                ch.unary_unary("/%s/ListRoutes" % ADMIN)(b"", timeout=RPC_TIMEOUT)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            ch.close()

    def test_missing_token_env_refuses_to_start(self):
        cfg = base_config()
        cfg["admin"] = {"address": "127.0.0.1:%d" % harness.free_port(), "token_env": "PT_ADMIN_UNSET_VAR"}
        env = {k: v for k, v in os.environ.items() if k != "PT_ADMIN_UNSET_VAR"}
        gw = harness.Portico(cfg, env=env)
        gw.env = env
        self.assertEqual(start_expecting_exit(gw), 1)
        self.assertIn("PT_ADMIN_UNSET_VAR", gw.stderr)
        gw.tmp.cleanup()  # an expected failure: no need to keep its files
        gw._cleanup()

    def test_mtls(self):
        with harness.TempDir(prefix="portico-admin-certs-") as tmp:
            certs = harness.make_certs(tmp.path)
            other = harness.make_certs(tmp.join("other"))
            port = harness.free_port()
            cfg = base_config()
            cfg["admin"] = {"address": "127.0.0.1:%d" % port,
                            "tls": {"cert_file": certs.cert, "key_file": certs.key,
                                    "client_ca_file": certs.ca_cert}}
            with harness.Portico(cfg) as gw:
                harness.wait_until(lambda: harness.can_connect("127.0.0.1", port), message="admin port")
                good = harness.grpc_channel(gw.admin_addr, ca_file=certs.ca_cert, server_name="localhost",
                                            client_cert=(certs.client_cert, certs.client_key))
                self.assertEqual(status_name(health_check(good).status), "SERVING")
                (r,) = reflect(good, [{"list_services": ""}])
                self.assertIn(ADMIN, {s.name for s in r.list_services_response.service})
                good.close()
                for client_cert in (None, (other.client_cert, other.client_key)):
                    bad = harness.grpc_channel(gw.admin_addr, ca_file=certs.ca_cert, server_name="localhost",
                                               client_cert=client_cert)
                    with self.assertRaises(grpc.RpcError) as cm:
                        health_check(bad)
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE, client_cert)
                    bad.close()

    def test_non_loopback_without_credentials_refused(self):
        # TEST-NET-1 address: refused before any bind is attempted.
        for address in ("192.0.2.1:9901", "0.0.0.0:9901", "[::]:9901"):
            cfg = base_config()
            cfg["admin"] = {"address": address}
            gw = harness.Portico(cfg)
            self.assertEqual(start_expecting_exit(gw), 1, address)
            self.assertIn("is not loopback", gw.stderr)
            gw.tmp.cleanup()  # an expected failure: no need to keep its files
        gw._cleanup()

    def test_admin_off(self):
        cfg = base_config()
        cfg["admin"] = {"address": "off"}
        with harness.Portico(cfg) as gw:
            self.assertIsNone(gw.admin_addr)
            self.assertIn("admin server disabled", gw.stderr)


if __name__ == "__main__":
    unittest.main()
