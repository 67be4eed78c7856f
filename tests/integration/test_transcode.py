"""REST/JSON clients reaching a gRPC backend through portico's transcoder.

The backend is a grpcio server in this process serving
portico.test.bookstore.Bookstore (tests/integration/protos/portico/test/
bookstore.proto) from message classes built out of the FileDescriptorSet
protoc makes for the test (the same file the gateway's
descriptor_set_file names). It records every call (request message,
metadata, deadline), so tests can check what reached it - and that
nothing did when the gateway refused a request.

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_transcode
"""

import base64
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROTO = "portico/test/bookstore.proto"
PKG = "portico.test.bookstore"
SVC = PKG + ".Bookstore"
HTTP_TIMEOUT = 30.0


def setUpModule():
    if harness.DIRECT:
        raise unittest.SkipTest("transcoding exists only in the gateway (PORTICO_DIRECT=1)")


def descriptor_set():
    """Path of the FileDescriptorSet of bookstore.proto (cached by content)."""
    protoc = os.environ.get("PROTOC", shutil.which("protoc") or "protoc")
    h = hashlib.sha256()
    for name in (PROTO, "google/api/httpbody.proto"):
        with open(os.path.join(HERE, "protos", name), "rb") as f:
            h.update(f.read())
    key = h.hexdigest()[:24]
    base = os.environ.get("PORTICO_PROTO_CACHE") or os.path.join(
        tempfile.gettempdir(), "portico-protogen-%d" % os.getuid())
    os.makedirs(base, exist_ok=True)
    out = os.path.join(base, "bookstore-%s.pb" % key)
    if not os.path.exists(out):
        fd, tmp = tempfile.mkstemp(prefix=".bookstore-", dir=base)
        os.close(fd)
        try:
            proc = subprocess.run(
                [protoc, "-I" + os.path.join(HERE, "protos"),
                 "-I" + os.path.join(REPO, "proto", "third_party"), "-I/usr/include",
                 "--include_imports", "--descriptor_set_out=" + tmp, PROTO,
                 "google/rpc/status.proto", "google/rpc/error_details.proto"],
                capture_output=True, text=True, timeout=60)
            if proc.returncode != 0:
                raise RuntimeError("protoc failed:\n" + proc.stderr)
            os.rename(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out


def load_messages(path):
    with open(path, "rb") as f:
        fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fp in fds.file:
        pool.Add(fp)
    get_class = getattr(message_factory, "GetMessageClass", None)
    if get_class is None:
        get_class = message_factory.MessageFactory(pool).GetPrototype
    out = {}

    def add(desc):
        out[desc.full_name] = get_class(desc)
        for nested in desc.nested_types:
            add(nested)
    for fp in fds.file:
        for desc in pool.FindFileByName(fp.name).message_types_by_name.values():
            add(desc)
    return pool, out


class Backend(object):
    """The Bookstore service; self.calls lists (method, request dict,
    metadata dict, time_remaining) in arrival order."""

    def __init__(self, pool, msgs):
        self.pool = pool
        self.m = msgs
        self.calls = []
        self.lock = threading.Lock()
        svc = pool.FindServiceByName(SVC)
        handlers = {}
        for md in svc.methods:
            req = msgs[md.input_type.full_name]
            resp = msgs[md.output_type.full_name]
            fn = getattr(self, md.name)
            if md.client_streaming and md.server_streaming:
                h = grpc.stream_stream_rpc_method_handler(fn, req.FromString, resp.SerializeToString)
            elif md.client_streaming:
                h = grpc.stream_unary_rpc_method_handler(fn, req.FromString, resp.SerializeToString)
            elif md.server_streaming:
                h = grpc.unary_stream_rpc_method_handler(fn, req.FromString, resp.SerializeToString)
            else:
                h = grpc.unary_unary_rpc_method_handler(fn, req.FromString, resp.SerializeToString)
            handlers[md.name] = h
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SVC, handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self):
        self.server.stop(0)

    def record(self, name, request, context):
        md = {k: v for k, v in context.invocation_metadata()}
        with self.lock:
            self.calls.append((name, json_format.MessageToDict(request), md,
                               context.time_remaining()))

    def last(self):
        with self.lock:
            return self.calls[-1] if self.calls else None

    def count(self):
        with self.lock:
            return len(self.calls)

    def Book(self, **kw):
        return self.m[PKG + ".Book"](**kw)

    def GetBook(self, request, context):
        self.record("GetBook", request, context)
        b = self.Book(name=request.name, title="T " + request.name, isbn=9007199254740993,
                      pages=18446744073709551615, genre=2)
        b.author.name = "Ann"
        b.published.FromJsonString("2020-01-02T03:04:05Z")
        b.read_time.FromJsonString("3.5s")
        b.rating.value = 4
        return b

    def ListBooks(self, request, context):
        self.record("ListBooks", request, context)
        r = self.m[PKG + ".ListBooksResponse"](next_page_token="p2")
        r.books.add(name="b1", tags=list(request.tags))
        r.books.add(name="b2")
        return r

    def ListBookTitles(self, request, context):
        return self.ListBooks(request, context)

    def CreateBook(self, request, context):
        self.record("CreateBook", request, context)
        b = self.m[PKG + ".Book"]()
        b.CopyFrom(request.book)
        b.name = "shelves/%s/books/new" % request.shelf
        return b

    def UpdateBook(self, request, context):
        self.record("UpdateBook", request, context)
        b = self.m[PKG + ".Book"]()
        b.CopyFrom(request.book)
        return b

    def DeleteBook(self, request, context):
        self.record("DeleteBook", request, context)
        return self.m[PKG + ".Echo"](path=request.name)

    def _echo(self, name, request, context):
        self.record(name, request, context)
        md = dict(context.invocation_metadata())
        out = self.m[PKG + ".Echo"]()
        out.CopyFrom(request)
        out.metadata = ",".join(sorted(k for k in md if not k.startswith(("grpc-", ":", "user-agent"))))
        initial = [("x-resp-initial", "i1")]
        if request.status_header:
            initial.append(("x-http-code", request.status_header))
        context.send_initial_metadata(initial)
        context.set_trailing_metadata([("x-resp-trailer", "t1")])
        if request.code:
            self._fail(context, request.code, request.message or "failed")
        return out

    def _fail(self, context, code, message):
        st = self.m["google.rpc.Status"](code=code, message=message)
        info = self.m["google.rpc.BadRequest"]()
        info.field_violations.add(field="f", description="TEST_REASON")
        st.details.add().Pack(info)
        unknown = st.details.add()
        unknown.type_url = "type.googleapis.com/unknown.Thing"
        unknown.value = b"\x01\x02\x03"
        context.set_trailing_metadata([("grpc-status-details-bin", st.SerializeToString()),
                                       ("x-resp-trailer", "t1")])
        code_enum = [c for c in grpc.StatusCode if c.value[0] == code][0]
        context.abort(code_enum, message)

    def Do(self, request, context):
        return self._echo("Do", request, context)

    def Plain(self, request, context):
        return self._echo("Plain", request, context)

    def Watch(self, request, context):
        self.record("Watch", request, context)
        if request.count < 0:
            self._fail(context, request.code, "no stream")
        for i in range(request.count):
            if request.fail_after and i == request.fail_after:
                self._fail(context, request.code or 10, "stream broke")
            if i and request.delay_ms:
                time.sleep(request.delay_ms / 1000.0)
            yield self.m[PKG + ".Echo"](count=i, message="m%d" % i)

    def Download(self, request, context):
        self.record("Download", request, context)
        return self.m["google.api.HttpBody"](content_type="text/csv", data=b"a,b\n" + request.name.encode())

    def UploadRaw(self, request, context):
        self.record("UploadRaw", request, context)
        return self.m[PKG + ".Echo"](path=request.name, message=request.body.content_type,
                                     count=len(request.body.data))

    def RawAll(self, request, context):
        self.record("RawAll", request, context)
        return self.m["google.api.HttpBody"](content_type="application/x-echo",
                                             data=request.data[::-1])

    def WatchRaw(self, request, context):
        self.record("WatchRaw", request, context)
        for i in range(request.count):
            if i and request.delay_ms:
                time.sleep(request.delay_ms / 1000.0)
            if request.fail_after and i == request.fail_after:
                self._fail(context, 14, "raw broke")
            yield self.m["google.api.HttpBody"](content_type="text/plain", data=b"chunk%d;" % i)

    def Upload(self, request_iterator, context):
        msgs = list(request_iterator)
        self.record("Upload", msgs[0] if msgs else self.m[PKG + ".Echo"](), context)
        return self.m[PKG + ".Echo"](count=len(msgs), message="+".join(m.message for m in msgs))

    def Chat(self, request_iterator, context):
        for m in request_iterator:
            yield self.m[PKG + ".Echo"](message=m.message.upper(), shelf=m.shelf)


class TranscodeCase(unittest.TestCase):
    transcode = {}
    route_extra = {}
    backend_class = Backend

    @classmethod
    def setUpClass(cls):
        cls.desc = descriptor_set()
        pool, msgs = load_messages(cls.desc)
        cls.backend = cls.backend_class(pool, msgs)
        route = {"name": "rest", "path_prefix": "/", "service": "books",
                 "transcode": dict(cls.transcode), "timeout_ms": 7000}
        route.update(cls.route_extra)
        cfg = {
            "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
            "services": [{"name": "books", "protocol": "grpc", "descriptor_set_file": cls.desc,
                          "instances": [{"host": "127.0.0.1", "port": cls.backend.port}]}],
            "routes": [route],
            "limits": {"max_body_bytes": 4096},
        }
        cls.gw = harness.Portico(cfg)
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.backend.stop()

    def request(self, method, path, body=None, headers=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.gw.port(), timeout=HTTP_TIMEOUT)
        try:
            data = raw if raw is not None else (json.dumps(body) if body is not None else None)
            h = {"content-type": "application/json"} if data is not None else {}
            h.update(headers or {})
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            text = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, text
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, status=200, raw=None):
        st, h, text = self.request(method, path, body, headers, raw)
        self.assertEqual(st, status, text)
        self.assertTrue(h.get("content-type", "").startswith("application/json"), h)
        return json.loads(text), h


class TestUnary(TranscodeCase):
    transcode = {"forward_headers": ["x-tenant", "X-Trace"],
                 "rules": [{"method": PKG + ".Bookstore.DeleteBook",
                            "delete": "/v1/{name=shelves/*/books/*}", "success_status": 204},
                           {"method": PKG + ".Bookstore.Plain", "post": "/v1/plain", "body": "*",
                            "success_status": 201,
                            "additional_bindings": [{"get": "/v1/plain/{shelf}"}]}],
                 "status_metadata_key": "x-http-code"}

    def test_get_multi_segment_variable(self):
        b, h = self.json("GET", "/v1/shelves/s1/books/b2")
        self.assertEqual(self.backend.last()[1], {"name": "shelves/s1/books/b2"})
        self.assertEqual(b["name"], "shelves/s1/books/b2")
        # 64-bit integers as strings, enums by name, WKTs in their JSON form
        self.assertEqual(b["isbn"], "9007199254740993")
        self.assertEqual(b["pages"], "18446744073709551615")
        self.assertEqual(b["genre"], "HISTORY")
        self.assertEqual(b["published"], "2020-01-02T03:04:05Z")
        self.assertEqual(b["readTime"], "3.500s")
        self.assertEqual(b["rating"], 4)
        self.assertEqual(b["author"], {"name": "Ann"})
        self.assertNotIn("inPrint", b)  # default omitted without emit_defaults

    def test_access_log_shows_the_client_request(self):
        self.json("GET", "/v1/books/logged")
        want = lambda: [e for e in self.gw.access_log_lines()
                        if "/v1/books/logged" in json.dumps(e)]
        harness.wait_until(want, timeout=10, message="access log line")
        entry = json.dumps(want()[0])
        self.assertIn('"GET"', entry)
        self.assertNotIn('"POST"', entry)

    def test_additional_binding_and_escaped_slash(self):
        b, _ = self.json("GET", "/v1/books/a%2Fb")
        self.assertEqual(self.backend.last()[1]["name"], "a/b")
        self.assertEqual(b["name"], "a/b")

    def test_rest_variable_and_verb(self):
        b, _ = self.json("GET", "/v1/files/a/b/c.txt")
        self.assertEqual(b["path"], "a/b/c.txt")
        b, _ = self.json("POST", "/v1/shelves/s9:archive", {"message": "x"})
        self.assertEqual(self.backend.last()[1], {"shelf": "s9", "message": "x"})

    def test_nested_path_field(self):
        b, _ = self.json("GET", "/v1/authors/Bob/do?author.born=1970")
        self.assertEqual(b["author"], {"name": "Bob", "born": "1970"})

    def test_query_nested_repeated_enum_wkt(self):
        b, _ = self.json("GET", "/v1/shelves/s1/books?tags=a&tags=b&page_size=5&filter.name=Z"
                                "&genre=FICTION&mask=title,author.name")
        req = self.backend.last()[1]
        self.assertEqual(req, {"shelf": "s1", "tags": ["a", "b"], "pageSize": 5,
                               "filter": {"name": "Z"}, "genre": "FICTION",
                               "mask": "title,author.name"})
        self.assertEqual(b["books"][0]["tags"], ["a", "b"])
        self.assertEqual(b["nextPageToken"], "p2")

    def test_response_body(self):
        b, _ = self.json("GET", "/v1/shelves/s1/titles")
        self.assertEqual(b, [{"name": "b1"}, {"name": "b2"}])

    def test_body_field(self):
        b, _ = self.json("POST", "/v1/shelves/s2/books",
                         {"title": "Dune", "isbn": "12345678901234", "genre": "FICTION",
                          "published": "2021-05-06T07:08:09Z"})
        req = self.backend.last()[1]
        self.assertEqual(req["shelf"], "s2")
        self.assertEqual(req["book"]["isbn"], "12345678901234")
        self.assertEqual(b["name"], "shelves/s2/books/new")
        self.assertEqual(b["published"], "2021-05-06T07:08:09Z")

    def test_body_star_with_path(self):
        b, _ = self.json("PATCH", "/v1/shelves/s/books/b",
                         {"book": {"title": "New"}, "updateMask": "title"})
        self.assertEqual(self.backend.last()[1],
                         {"book": {"name": "shelves/s/books/b", "title": "New"},
                          "updateMask": "title"})
        self.assertEqual(b, {"name": "shelves/s/books/b", "title": "New"})

    def test_fallback_route(self):
        # Do has annotations: no fallback route
        self.json("POST", "/%s/Do" % SVC, {"message": "x"}, status=404)

    def test_client_streaming_from_ndjson(self):
        b, _ = self.json("POST", "/%s/Upload" % SVC, raw='{"message":"a"}\n\n{"message":"b"}\n'
                                                         '{"message":"c"}')
        self.assertEqual(b, {"count": 3, "message": "a+b+c"})
        b, _ = self.json("POST", "/%s/Upload" % SVC, raw="")
        self.assertEqual(b, {})
        n = self.backend.count()
        b, _ = self.json("POST", "/%s/Upload" % SVC, raw='{"message":"a"}\n{"count":"x"}',
                         status=400)
        self.assertIn("line 2", b["message"])
        self.assertEqual(self.backend.count(), n)

    def test_bidi_streaming(self):
        st, h, text = self.request("POST", "/v1/chat/s7", raw='{"message":"a"}\n{"message":"b"}\n')
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "application/x-ndjson")
        self.assertEqual([json.loads(l) for l in text.decode().splitlines()],
                         [{"shelf": "s7", "message": "A"}, {"shelf": "s7", "message": "B"}])

    def test_config_rule_replaces_annotation_and_success_status(self):
        b, h = self.json("POST", "/v1/plain", {"message": "hi", "numbers": ["1", 2]}, status=201)
        self.assertEqual(b["message"], "hi")
        self.assertEqual(b["numbers"], ["1", "2"])
        b, _ = self.json("GET", "/v1/plain/s5", status=201)
        self.assertEqual(b["shelf"], "s5")
        st, h, text = self.request("DELETE", "/v1/shelves/a/books/b")
        self.assertEqual(st, 204, text)

    def test_status_metadata_key(self):
        b, h = self.json("POST", "/v1/do", {"statusHeader": "202"}, status=202)
        self.assertNotIn("x-http-code", h)

    def test_metadata_allow_list_and_response_headers(self):
        b, h = self.json("POST", "/v1/do", {}, headers={"x-tenant": "t1", "x-trace": "tr",
                                                          "x-other": "no", "cookie": "c=1"})
        md = self.backend.last()[2]
        self.assertEqual(md.get("x-tenant"), "t1")
        self.assertEqual(md.get("x-trace"), "tr")
        self.assertNotIn("x-other", md)
        self.assertNotIn("cookie", md)
        self.assertEqual(h.get("x-resp-initial"), "i1")
        self.assertEqual(h.get("x-resp-trailer"), "t1")
        self.assertFalse([k for k in h if k.startswith("grpc-")], h)

    def test_grpc_timeout_from_route(self):
        self.json("POST", "/v1/do", {})
        remaining = self.backend.last()[3]
        self.assertIsNotNone(remaining)
        self.assertTrue(5.0 < remaining <= 7.0, remaining)

    def test_every_error_code(self):
        expect = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400,
                  10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401}
        for code, status in expect.items():
            b, h = self.json("POST", "/v1/do", {"code": code, "message": "bad %d" % code},
                             status=status)
            self.assertEqual(b["code"], code)
            self.assertEqual(b["message"], "bad %d" % code)
            self.assertEqual(b["details"][0], {"@type": "type.googleapis.com/google.rpc.BadRequest",
                                               "fieldViolations": [{"field": "f",
                                                                    "description": "TEST_REASON"}]})
            self.assertEqual(b["details"][1], {"@type": "type.googleapis.com/unknown.Thing",
                                               "value": base64.b64encode(b"\x01\x02\x03").decode()})

    def test_malformed_json_is_400_and_nothing_sent(self):
        n = self.backend.count()
        b, _ = self.json("POST", "/v1/do", raw='{"count": "abc"}', status=400)
        self.assertEqual(b["code"], 3)
        self.assertIn("count", b["message"])
        b, _ = self.json("POST", "/v1/shelves/s/books", raw='{"author": {"born": true}}',
                         status=400)
        self.assertIn("book.author.born", b["message"])
        self.json("POST", "/v1/do", raw='{"count": 1', status=400)
        self.json("POST", "/v1/do", raw='{"nope": 1}', status=400)
        self.json("GET", "/v1/shelves/s/books?page_size=x", status=400)
        self.assertEqual(self.backend.count(), n)

    def test_404_405_413(self):
        b, h = self.json("GET", "/v2/nothing", status=404)
        self.assertEqual(b["code"], 5)
        b, h = self.json("PUT", "/v1/shelves/s/books/b", {}, status=405)
        self.assertEqual(sorted(x.strip() for x in h["allow"].split(",")),
                         ["DELETE", "GET", "PATCH"])
        self.assertEqual(set(b), {"code", "message", "details"})
        n = self.backend.count()
        b, h = self.json("POST", "/v1/do", {"message": "x" * 5000}, status=413)
        self.assertEqual(set(b), {"code", "message", "details"})
        self.assertEqual(self.backend.count(), n)


class TestHttpBody(TranscodeCase):
    def test_response_http_body(self):
        st, h, text = self.request("GET", "/v1/raw/r1")
        self.assertEqual((st, h["content-type"], text), (200, "text/csv", b"a,b\nr1"))

    def test_request_http_body_field(self):
        raw = b"\x00\x01 not json \xff"
        b, _ = self.json("POST", "/v1/raw/r2", raw=raw, headers={"content-type": "image/x-test"})
        self.assertEqual(b, {"path": "r2", "message": "image/x-test", "count": len(raw)})

    def test_http_body_both_ways(self):
        st, h, text = self.request("POST", "/v1/rawall", raw=b"abc",
                                   headers={"content-type": "text/plain"})
        self.assertEqual((st, h["content-type"], text), (200, "application/x-echo", b"cba"))
        self.assertEqual(self.backend.last()[1], {"contentType": "text/plain",
                                                  "data": base64.b64encode(b"abc").decode()})

    def test_http_body_stream(self):
        st, h, text = self.request("GET", "/v1/rawwatch?count=3")
        self.assertEqual((st, h["content-type"], text), (200, "text/plain", b"chunk0;chunk1;chunk2;"))
        # a failure after bytes went out breaks the transfer, never a clean 200
        with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
            self.request("GET", "/v1/rawwatch?count=3&fail_after=1")


class TestOptions(TranscodeCase):
    transcode = {"emit_defaults": True, "ignore_unknown_fields": True, "original_names": True,
                 "stream_format": "json_array"}

    def test_emit_defaults_original_names(self):
        b, _ = self.json("POST", "/v1/do", {"message": "m"})
        self.assertEqual(b["count"], 0)
        self.assertEqual(b["verb_arg"], "")
        self.assertEqual(b["numbers"], [])
        self.assertEqual(b["labels"], {})

    def test_unknown_fields_ignored(self):
        b, _ = self.json("POST", "/v1/do", {"message": "m", "nope": 1})
        self.assertEqual(self.backend.last()[1], {"message": "m"})
        self.json("GET", "/v1/shelves/s/books?nope=1")

    def test_json_array_stream(self):
        st, h, text = self.request("GET", "/v1/watch?count=3")
        self.assertEqual(st, 200)
        self.assertEqual([m["count"] for m in json.loads(text)], [0, 1, 2])
        st, h, text = self.request("GET", "/v1/watch?count=3&fail_after=2&code=8")
        items = json.loads(text)
        self.assertEqual(items[-1]["error"]["code"], 8)
        self.assertEqual(len(items), 3)
        st, h, text = self.request("GET", "/v1/watch?count=0")
        self.assertEqual((st, json.loads(text)), (200, []))


class TestStreaming(TranscodeCase):
    def stream(self, path, headers=None):
        """(status, headers, [(seconds since the request, line)])"""
        conn = http.client.HTTPConnection("127.0.0.1", self.gw.port(), timeout=HTTP_TIMEOUT)
        t0 = time.monotonic()
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        lines = []
        while True:
            line = r.readline()
            if not line:
                break
            lines.append((time.monotonic() - t0, line.decode()))
            if len(lines) > 1000:
                break
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, lines

    def test_ndjson_first_message_before_end(self):
        st, h, lines = self.stream("/v1/watch?count=3&delay_ms=700")
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "application/x-ndjson")
        msgs = [json.loads(l) for _, l in lines if l.strip()]
        self.assertEqual([m.get("count", 0) for m in msgs], [0, 1, 2])
        # the first line arrived well before the stream ended (2 x 700 ms later)
        self.assertLess(lines[0][0] + 1.0, lines[-1][0])

    def test_sse_by_accept(self):
        st, h, lines = self.stream("/v1/watch?count=2&delay_ms=600",
                                   headers={"accept": "text/event-stream"})
        self.assertEqual(h["content-type"], "text/event-stream")
        data = [l for _, l in lines if l.startswith("data: ")]
        self.assertEqual([json.loads(l[6:]).get("message") for l in data], ["m0", "m1"])
        first = [t for t, l in lines if l.startswith("data: ")][0]
        self.assertLess(first + 0.4, lines[-1][0])

    def test_error_mid_stream_is_in_band(self):
        st, h, lines = self.stream("/v1/watch?count=5&fail_after=2&code=14")
        self.assertEqual(st, 200)
        msgs = [json.loads(l) for _, l in lines if l.strip()]
        self.assertEqual(len(msgs), 3)
        self.assertEqual(msgs[-1]["error"]["code"], 14)
        self.assertEqual(msgs[-1]["error"]["message"], "stream broke")
        self.assertEqual(msgs[-1]["error"]["details"][0]["fieldViolations"][0]["description"],
                         "TEST_REASON")

    def test_sse_error_event(self):
        st, h, lines = self.stream("/v1/watch?count=5&fail_after=1&code=14",
                                   headers={"accept": "text/event-stream"})
        text = "".join(l for _, l in lines)
        self.assertIn("event: error\ndata: {\"code\":14", text)

    def test_error_before_first_message(self):
        # no message yet: a plain error response with the mapped status
        b, h = self.json("GET", "/v1/watch?count=-1&code=9", status=400)
        self.assertEqual((b["code"], b["message"]), (9, "no stream"))
        self.assertEqual(len(b["details"]), 2)
        st, h, text = self.request("GET", "/v1/watch?count=0")
        self.assertEqual((st, text), (200, b""))


class TestDeadline(TranscodeCase):
    route_extra = {"timeout_ms": 1500}

    def test_stream_past_the_deadline_ends_in_band(self):
        st, h, text = self.request("GET", "/v1/watch?count=6&delay_ms=600")
        self.assertEqual(st, 200)
        lines = [json.loads(l) for l in text.decode().splitlines() if l.strip()]
        self.assertTrue(1 <= len(lines) - 1 < 6, lines)
        self.assertEqual(lines[-1]["error"]["code"], 4, lines)  # DEADLINE_EXCEEDED


class TestNoBackend(unittest.TestCase):
    def test_gateway_errors_are_json(self):
        desc = descriptor_set()
        port = harness.free_port()
        cfg = {
            "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
            "services": [{"name": "books", "protocol": "grpc", "descriptor_set_file": desc,
                          "instances": [{"host": "127.0.0.1", "port": port}]}],
            "routes": [{"name": "rest", "path_prefix": "/api", "strip_prefix": True,
                        "service": "books", "transcode": {}}],
        }
        with harness.Portico(cfg) as gw:
            conn = http.client.HTTPConnection("127.0.0.1", gw.port(), timeout=HTTP_TIMEOUT)
            conn.request("GET", "/api/v1/books/x")
            r = conn.getresponse()
            body = json.loads(r.read())
            self.assertEqual(r.status, 503)
            self.assertEqual(body["code"], 14)
            self.assertEqual(set(body), {"code", "message", "details"})
            conn.close()


class TestDeadEndpoint(unittest.TestCase):
    def test_connect_failure_tries_another_endpoint(self):
        desc = descriptor_set()
        pool, msgs = load_messages(desc)
        backend = Backend(pool, msgs)
        try:
            cfg = {
                "listeners": [{"name": "main", "address": "127.0.0.1:0",
                               "protocols": ["http1", "h2c"]}],
                "services": [{"name": "books", "protocol": "grpc", "descriptor_set_file": desc,
                              "instances": [{"host": "127.0.0.1", "port": harness.free_port()},
                                            {"host": "127.0.0.1", "port": backend.port}]}],
                "routes": [{"name": "rest", "path_prefix": "/", "service": "books",
                            "transcode": {}}],
                "workers": 1,
            }
            with harness.Portico(cfg) as gw:
                for i in range(6):
                    conn = http.client.HTTPConnection("127.0.0.1", gw.port(), timeout=HTTP_TIMEOUT)
                    conn.request("GET", "/v1/books/b%d" % i)
                    r = conn.getresponse()
                    body = r.read()
                    conn.close()
                    self.assertEqual(r.status, 200, body)
            self.assertEqual(backend.count(), 6)
        finally:
            backend.stop()


class TestConfigErrors(unittest.TestCase):
    def check(self, transcode, service_extra=None):
        desc = descriptor_set()
        svc = {"name": "books", "protocol": "grpc", "descriptor_set_file": desc,
               "instances": [{"host": "127.0.0.1", "port": 1}]}
        svc.update(service_extra or {})
        cfg = {"listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1"]}],
               "services": [svc],
               "routes": [{"name": "rest", "path_prefix": "/", "service": "books",
                           "transcode": transcode}]}
        rc, out = harness.check_config(cfg)
        self.assertNotEqual(rc, 0, out)
        return out

    def test_errors(self):
        self.assertIn("unknown method", self.check({"rules": [{"method": "x.Y.Z", "get": "/a"}]}))
        self.assertIn("column", self.check({"rules": [{"method": SVC + ".Do", "get": "/v1/{x"}]}))
        self.assertIn("conflict", self.check({"rules": [{"method": SVC + ".Plain",
                                                         "get": "/v1/books/{shelf}"}]}))
        self.assertIn("unknown gRPC service", self.check({"services": ["no.Such"]}))
        self.assertIn("stream_format", self.check({"stream_format": "xml"}))
        self.assertIn("client-streaming", self.check({"rules": [{"method": SVC + ".Upload",
                                                                 "post": "/up", "body": "x"}]}))
        out = self.check({}, {"descriptor_set_file": "/nonexistent.pb"})
        self.assertIn("cannot open", out)
        self.assertRegex(out, r":\d+:\d+")


if __name__ == "__main__":
    unittest.main()
