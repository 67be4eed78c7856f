"""gRPC through portico: unary and streaming calls, metadata, deadlines,
cancellation, status messages, large messages, flow control, errors, TLS.

Each test builds its own gateway config (harness.Portico) in front of a gRPC
backend (backends/grpc_backend.py, one per test class) and talks to the
gateway with grpcio. With PORTICO_DIRECT=1 the clients talk to the backend
directly and gateway-only assertions are skipped: that validates the tests
themselves without the gateway.

What the backend saw (cancellations, the deadline a call arrived with, the
metadata forwarded to it) is read with the backend's GetStats RPC on a direct
channel, never through the gateway.

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_grpc
"""

import contextlib
import hashlib
import http.client
import itertools
import os
import queue
import signal
import threading
import time
import unittest

import grpc

import harness
import protoload

DIRECT = harness.DIRECT
echo_pb2 = harness.load_echo()
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"]
Req = echo_pb2.EchoRequest

RPC_TIMEOUT = 60.0  # every call that is not about deadlines has this one
MiB = 1 << 20


def deadline_bound_ms(client_timeout_s):
    """The largest deadline a backend may see for a client deadline: gRPC
    clients round grpc-timeout up (grpcio sends 20100m for 20 s, 1510m for
    1.5 s), so allow that rounding and nothing like a gateway's own timeout."""
    ms = client_timeout_s * 1000.0
    return int(ms * 1.02 + 100)

# Status messages that must arrive byte-for-byte (percent-encoded on the wire).
STATUS_CASES = [
    (grpc.StatusCode.INVALID_ARGUMENT, "simple message with spaces"),
    (grpc.StatusCode.NOT_FOUND, "100% sure: %41 is not a percent-escape here; %% %zz %"),
    (grpc.StatusCode.PERMISSION_DENIED, "unicode: \u00e9\u00e8 \u263a \u4e2d\u6587 \U0001f608"),
    (grpc.StatusCode.FAILED_PRECONDITION, "line one\nline two\r\nline three\ttabbed"),
    (grpc.StatusCode.UNKNOWN, "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "x" * 2000),
    (grpc.StatusCode.INTERNAL, ""),
    (grpc.StatusCode.UNAVAILABLE, "backend says: try again later"),
]


class RequestQueue(object):
    """Request iterator fed by the test (put / close); bounded waits."""

    _END = object()

    def __init__(self, max_wait_s=RPC_TIMEOUT):
        self._q = queue.Queue()
        self._max_wait_s = max_wait_s

    def put(self, msg):
        self._q.put(msg)

    def close(self):
        self._q.put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            item = self._q.get(timeout=self._max_wait_s)
        except queue.Empty:
            raise StopIteration
        if item is self._END:
            raise StopIteration
        return item


def md_list(metadata, key):
    return [m.value for m in (metadata or ()) if m.key == key]


class GrpcTestBase(unittest.TestCase):
    """Starts one gRPC backend per class; helpers give each test a gateway
    (or, in direct mode, the backend itself) and stubs."""

    backend_kwargs = {}

    @classmethod
    def setUpClass(cls):
        cls._class_stack = contextlib.ExitStack()
        try:
            cls.backend = cls._class_stack.enter_context(harness.GrpcBackend(**cls.backend_kwargs))
            cls.backend_channel = harness.grpc_channel(cls.backend.addr)
            cls._class_stack.callback(cls.backend_channel.close)
            cls.backend_stub = protoload.Stub(cls.backend_channel, ECHO)
        except BaseException:
            cls._class_stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._class_stack.close()

    def setUp(self):
        self._stack = contextlib.ExitStack()
        self.addCleanup(self._stack.close)
        self._tags = itertools.count()
        self.gateway = None

    # -- environment ---------------------------------------------------------

    def gateway_only(self):
        if DIRECT:
            self.skipTest("gateway-only (PORTICO_DIRECT=1)")

    def start_gateway(self, config):
        gw = self._stack.enter_context(harness.Portico(config))
        self.gateway = gw
        return gw

    def default_config(self, **kw):
        return harness.grpc_gateway_config([self.backend.instance()], **kw)

    def target(self, config=None):
        """The address clients use: the backend (direct) or a gateway
        started with `config` (default: one route to the backend)."""
        if DIRECT:
            return self.backend.addr
        gw = self.start_gateway(config or self.default_config())
        return gw.addr("main")

    def channel(self, target, **kw):
        ch = harness.grpc_channel(target, **kw)
        self._stack.callback(ch.close)
        return ch

    def stub(self, target=None, **kw):
        return protoload.Stub(self.channel(target or self.target(), **kw), ECHO)

    def tag(self):
        return "%s#%d" % (self.id(), next(self._tags))

    # -- backend observations ------------------------------------------------

    def calls(self, tag):
        return list(self.backend_stub.GetStats(echo_pb2.StatsRequest(tag=tag), timeout=RPC_TIMEOUT).calls)

    def wait_for_call(self, tag, predicate, timeout=8.0, what="backend condition"):
        """Poll the backend until its record of `tag` satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            calls = self.calls(tag)
            if calls and predicate(calls[0]):
                return calls[0]
            if time.monotonic() > deadline:
                self.fail("timed out after %.0fs waiting for %s; backend recorded: %s"
                          % (timeout, what, calls[0] if calls else "no call"))
            time.sleep(0.05)

    def expect_error(self, fn, *args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except grpc.RpcError as err:
            return err
        self.fail("call succeeded unexpectedly: %r" % (result,))


class TestGrpcCalls(GrpcTestBase):
    """The four call shapes, metadata and concurrency."""

    def test_unary(self):
        stub = self.stub()
        payload = os.urandom(3000)
        resp, call = stub.Echo.with_call(Req(message="hello", payload=payload, tag=self.tag()),
                                         timeout=RPC_TIMEOUT)
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertEqual(resp.message, "hello")
        self.assertEqual(resp.payload, payload)
        self.assertEqual(resp.payload_sha256, hashlib.sha256(payload).hexdigest())
        self.assertEqual(resp.server_id, "grpc-backend-%d" % self.backend.port)
        self.assertEqual(resp.method, "/portico.test.Echo/Echo")

    def test_unary_empty_message(self):
        stub = self.stub()
        resp = stub.Echo(Req(), timeout=RPC_TIMEOUT)
        self.assertEqual(resp.message, "")
        self.assertEqual(resp.payload, b"")
        self.assertEqual(resp.index, 0)

    def test_forwarded_headers_reach_backend(self):
        self.gateway_only()
        stub = self.stub()
        resp = stub.Echo(Req(message="fwd", tag=self.tag()), metadata=[("x-request-id", "client-supplied")],
                         timeout=RPC_TIMEOUT)
        md = {}
        for e in resp.metadata:
            md.setdefault(e.key, []).append(e.value.decode("utf-8", "replace"))
        self.assertEqual(md.get("x-forwarded-for", [""])[-1].split(",")[-1].strip(), "127.0.0.1", md)
        self.assertEqual(md.get("x-forwarded-proto"), ["http"], md)
        self.assertTrue(md.get("x-forwarded-host"), md)
        self.assertIn(str(self.gateway.port("main")), md["x-forwarded-host"][0], md)
        self.assertEqual(len(md.get("x-request-id", [])), 1, md)
        self.assertTrue(md["x-request-id"][0], md)

    def test_access_log_has_grpc_call(self):
        self.gateway_only()
        stub = self.stub()
        stub.Echo(Req(message="logged"), timeout=RPC_TIMEOUT)

        def logged():
            for entry in self.gateway.access_log_lines():
                if any("/portico.test.Echo/Echo" in str(v) for v in entry.values()):
                    return entry
            return None

        entry = harness.wait_until(logged, timeout=10, message="an access-log line for the call")
        self.assertIsInstance(entry, dict)

    def test_server_streaming(self):
        stub = self.stub()
        call = stub.Stream(Req(message="s", stream_count=40, response_size=1500, tag=self.tag()),
                           timeout=RPC_TIMEOUT)
        got = list(call)
        self.assertEqual([r.index for r in got], list(range(40)))
        for r in got:
            self.assertEqual(r.payload, harness.pattern(1500, r.index))
            self.assertEqual(r.message, "s")
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertEqual(md_list(call.trailing_metadata(), "x-trailer"), ["trailer-value"])

    def test_server_streaming_is_not_buffered(self):
        # Five messages 600 ms apart: a proxy that forwards each DATA frame
        # delivers them spread over >= 2.4 s; one that buffers the response
        # delivers them together.
        stub = self.stub()
        call = stub.Stream(Req(stream_count=5, stream_interval_ms=600, response_size=10), timeout=RPC_TIMEOUT)
        arrivals = []
        for r in call:
            arrivals.append(time.monotonic())
        self.assertEqual(len(arrivals), 5)
        self.assertGreater(arrivals[-1] - arrivals[0], 1.2,
                           "stream messages arrived together: the response was buffered")

    def test_client_streaming(self):
        stub = self.stub()
        sizes = [0, 1, 100, 16383, 16384, 16385, 65535, 65536, 200000, 7, 0, 1 << 20]
        payloads = [os.urandom(n) for n in sizes]
        tag = self.tag()
        resp = stub.Collect(iter([Req(payload=p, tag=tag) for p in payloads]), timeout=RPC_TIMEOUT)
        self.assertEqual(resp.index, len(sizes))
        self.assertEqual(resp.received_bytes, sum(sizes))
        self.assertEqual(resp.received_sha256, hashlib.sha256(b"".join(payloads)).hexdigest())

    def test_client_streaming_empty(self):
        stub = self.stub()
        resp = stub.Collect(iter([]), timeout=RPC_TIMEOUT)
        self.assertEqual(resp.index, 0)
        self.assertEqual(resp.received_bytes, 0)

    def test_bidi_ping_pong(self):
        # Each response must arrive while the request stream is still open:
        # the gateway may not wait for the client's half-close.
        stub = self.stub()
        reqs = RequestQueue()
        call = stub.Chat(reqs, timeout=RPC_TIMEOUT)
        try:
            for i in range(20):
                p = os.urandom(i * 997)
                reqs.put(Req(message="ping %d" % i, payload=p))
                resp = next(call)
                self.assertEqual(resp.message, "ping %d" % i)
                self.assertEqual(resp.index, i)
                self.assertEqual(resp.payload, p)
            reqs.close()
            self.assertEqual(list(call), [])
            self.assertEqual(call.code(), grpc.StatusCode.OK)
        finally:
            reqs.close()
            call.cancel()

    def test_bidi_concurrent_streams(self):
        stub = self.stub()
        errors = []

        def run(n):
            try:
                reqs = RequestQueue()
                call = stub.Chat(reqs, timeout=RPC_TIMEOUT)
                for i in range(30):
                    reqs.put(Req(message="%d/%d" % (n, i), response_size=100 + n))
                    r = next(call)
                    if r.message != "%d/%d" % (n, i) or r.payload != harness.pattern(100 + n, i):
                        errors.append("stream %d message %d: got %r" % (n, i, r.message))
                        break
                reqs.close()
                list(call)
            except Exception as exc:  # noqa: BLE001
                errors.append("stream %d: %r" % (n, exc))

        threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(RPC_TIMEOUT + 10)
        self.assertFalse(any(t.is_alive() for t in threads), "streams did not finish")
        self.assertEqual(errors, [])

    def test_concurrent_unary_calls(self):
        stub = self.stub()
        futures = [stub.Echo.future(Req(message="call %d" % i, payload=os.urandom(i % 50 * 100)),
                                    timeout=RPC_TIMEOUT) for i in range(200)]
        for i, f in enumerate(futures):
            self.assertEqual(f.result().message, "call %d" % i)

    def test_metadata_both_ways(self):
        stub = self.stub()
        binval = bytes(range(256))
        sent = [("x-custom", "hello world"), ("x-multi", "first"), ("x-multi", "second"),
                ("x-bin-bin", binval), ("x-zero-bin", b"\x00"), ("x-mixed-case-key", "Value With Caps")]
        resp, call = stub.Echo.with_call(Req(tag=self.tag()), metadata=sent, timeout=RPC_TIMEOUT)
        init = call.initial_metadata()
        trail = call.trailing_metadata()
        # Initial metadata: the backend echoes every x- key.
        self.assertEqual(md_list(init, "x-custom"), ["hello world"])
        self.assertEqual(md_list(init, "x-multi"), ["first", "second"])
        self.assertEqual(md_list(init, "x-bin-bin"), [binval])
        self.assertEqual(md_list(init, "x-zero-bin"), [b"\x00"])
        self.assertEqual(md_list(init, "x-mixed-case-key"), ["Value With Caps"])
        # Trailing metadata set by the backend.
        self.assertEqual(md_list(trail, "x-trailer"), ["trailer-value"])
        self.assertEqual(md_list(trail, "x-trailer-bin"), [binval])
        self.assertEqual(md_list(trail, "x-trailing-custom"), ["hello world"])
        self.assertEqual(md_list(trail, "x-trailing-bin-bin"), [binval])
        # What the backend received.
        got = [(e.key, e.value) for e in resp.metadata]
        for k, v in sent:
            self.assertIn((k, v if isinstance(v, bytes) else v.encode()), got)

    def test_metadata_on_streams(self):
        stub = self.stub()
        md = [("x-stream-md", "s1"), ("x-stream-bin", b"\xff\xfe")]
        call = stub.Stream(Req(stream_count=3, response_size=5), metadata=md, timeout=RPC_TIMEOUT)
        first = next(call)
        self.assertEqual(first.index, 0)
        # Initial metadata is available as soon as the first message is.
        self.assertEqual(md_list(call.initial_metadata(), "x-stream-md"), ["s1"])
        self.assertEqual(md_list(call.initial_metadata(), "x-stream-bin"), [b"\xff\xfe"])
        self.assertEqual(len(list(call)), 2)
        self.assertEqual(md_list(call.trailing_metadata(), "x-trailing-stream-md"), ["s1"])
        self.assertEqual(md_list(call.trailing_metadata(), "x-trailing-stream-bin"), [b"\xff\xfe"])

        reqs = RequestQueue()
        chat = stub.Chat(reqs, metadata=md, timeout=RPC_TIMEOUT)
        reqs.put(Req(message="a"))
        self.assertEqual(next(chat).message, "a")
        self.assertEqual(md_list(chat.initial_metadata(), "x-stream-md"), ["s1"])
        reqs.close()
        list(chat)
        self.assertEqual(md_list(chat.trailing_metadata(), "x-trailer-bin"), [bytes(range(256))])

    def test_initial_metadata_before_request_stream_ends(self):
        # Collect sends its response headers when the first request arrives;
        # the client must see them while its request stream is still open.
        stub = self.stub()
        reqs = RequestQueue()
        fut = stub.Collect.future(reqs, metadata=[("x-early", "yes")], timeout=RPC_TIMEOUT)
        try:
            reqs.put(Req(payload=b"abc"))
            seen = queue.Queue()
            threading.Thread(target=lambda: seen.put(fut.initial_metadata()), daemon=True).start()
            try:
                init = seen.get(timeout=15)
            except queue.Empty:
                self.fail("response headers were held back until the request stream ended")
            self.assertEqual(md_list(init, "x-early"), ["yes"])
        finally:
            reqs.close()
        self.assertEqual(fut.result(timeout=RPC_TIMEOUT).received_bytes, 3)


class TestGrpcErrors(GrpcTestBase):
    """Statuses, unknown methods and services, dead backends."""

    def test_error_status_and_message_arrive_intact(self):
        stub = self.stub()
        for code, message in STATUS_CASES:
            with self.subTest(code=code, message=message[:40]):
                err = self.expect_error(stub.Echo, Req(fail_code=code.value[0], fail_message=message),
                                        timeout=RPC_TIMEOUT)
                self.assertEqual(err.code(), code)
                self.assertEqual(err.details(), message)

    def test_error_after_messages_in_stream(self):
        stub = self.stub()
        message = "failed after 3: 50% done \u263a\nsecond line"
        call = stub.Stream(Req(stream_count=10, response_size=10, fail_code=grpc.StatusCode.ABORTED.value[0],
                               fail_after=3, fail_message=message),
                           metadata=[("x-s", "v")], timeout=RPC_TIMEOUT)
        got = []
        with self.assertRaises(grpc.RpcError) as cm:
            for r in call:
                got.append(r.index)
        self.assertEqual(got, [0, 1, 2])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ABORTED)
        self.assertEqual(cm.exception.details(), message)
        self.assertEqual(md_list(call.initial_metadata(), "x-s"), ["v"])
        self.assertEqual(md_list(call.trailing_metadata(), "x-trailing-s"), ["v"])

    def test_trailers_only_error_keeps_trailing_metadata(self):
        # The backend fails before sending headers: a trailers-only response
        # (one HEADERS frame with grpc-status) that the gateway must forward
        # with its metadata.
        stub = self.stub()
        err = self.expect_error(stub.Echo, Req(fail_code=grpc.StatusCode.NOT_FOUND.value[0], fail_message="nope"),
                                metadata=[("x-q", "1")], timeout=RPC_TIMEOUT)
        self.assertEqual(err.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(err.details(), "nope")
        self.assertEqual(md_list(err.trailing_metadata(), "x-trailer-bin"), [bytes(range(256))])
        self.assertEqual(md_list(err.trailing_metadata(), "x-trailing-q"), ["1"])
        self.assertEqual(md_list(err.initial_metadata(), "x-q"), [])

    def test_error_in_client_stream(self):
        stub = self.stub()
        reqs = [Req(payload=b"a"), Req(payload=b"b", fail_code=grpc.StatusCode.OUT_OF_RANGE.value[0],
                                       fail_message="too far")]
        err = self.expect_error(stub.Collect, iter(reqs), timeout=RPC_TIMEOUT)
        self.assertEqual(err.code(), grpc.StatusCode.OUT_OF_RANGE)
        self.assertEqual(err.details(), "too far")

    def test_unknown_method_is_unimplemented(self):
        ch = self.channel(self.target())
        err = self.expect_error(protoload.raw_method(ch, "/portico.test.Echo/NoSuchMethod"), b"",
                                timeout=RPC_TIMEOUT)
        self.assertEqual(err.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_unknown_service_is_unimplemented(self):
        # Through the gateway no route matches: the gateway itself answers
        # with a trailers-only grpc-status 12.
        ch = self.channel(self.target())
        for path in ("/portico.test.NoSuchService/Echo", "/grpc.testing.UnimplementedService/UnimplementedCall"):
            with self.subTest(path=path):
                err = self.expect_error(protoload.raw_method(ch, path), b"", timeout=RPC_TIMEOUT)
                self.assertEqual(err.code(), grpc.StatusCode.UNIMPLEMENTED)
        for shape in ((False, True), (True, False), (True, True)):
            with self.subTest(shape=shape):
                m = protoload.raw_method(ch, "/portico.test.NoSuchService/S", shape)
                arg = iter([b""]) if shape[0] else b""
                if shape[1]:
                    err = self.expect_error(lambda: list(m(arg, timeout=RPC_TIMEOUT)))
                else:
                    err = self.expect_error(m, arg, timeout=RPC_TIMEOUT)
                self.assertEqual(err.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_backend_down_is_unavailable(self):
        dead_port = harness.free_port()
        if DIRECT:
            target = harness.hostport("127.0.0.1", dead_port)
        else:
            cfg = self.default_config()
            cfg["services"].append({"name": "dead", "protocol": "grpc",
                                    "instances": [{"host": "127.0.0.1", "port": dead_port}]})
            cfg["routes"].insert(0, {"name": "dead", "path_prefix": "/portico.test.Echo/Echo", "service": "dead",
                                     "priority": 10})
            target = self.start_gateway(cfg).addr("main")
        stub = self.stub(target)
        for _ in range(3):
            err = self.expect_error(stub.Echo, Req(message="x"), timeout=RPC_TIMEOUT)
            self.assertEqual(err.code(), grpc.StatusCode.UNAVAILABLE, err.details())
        if not DIRECT:
            # The gateway and the connection are fine: another route works.
            self.assertEqual(len(list(stub.Stream(Req(stream_count=2), timeout=RPC_TIMEOUT))), 2)

    def test_non_grpc_content_type_is_415(self):
        self.gateway_only()
        gw = self.start_gateway(self.default_config())
        conn = http.client.HTTPConnection("127.0.0.1", gw.port("main"), timeout=RPC_TIMEOUT)
        try:
            conn.request("POST", "/portico.test.Echo/Echo", body=b"{}",
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 415)
        finally:
            conn.close()


class TestGrpcDeadlinesAndCancellation(GrpcTestBase):

    def test_client_deadline_exceeded_and_propagated(self):
        stub = self.stub()
        tag = self.tag()
        start = time.monotonic()
        err = self.expect_error(stub.Echo, Req(sleep_ms=20000, tag=tag), timeout=1.0)
        elapsed = time.monotonic() - start
        self.assertEqual(err.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 10.0)
        rec = self.wait_for_call(tag, lambda c: c.cancelled, what="the backend to see the call end")
        # The backend got a grpc-timeout no larger than the client's deadline.
        self.assertGreater(rec.deadline_remaining_ms, 0, "backend saw no deadline (grpc-timeout not forwarded)")
        self.assertLessEqual(rec.deadline_remaining_ms, deadline_bound_ms(1.0))
        self.assertFalse(rec.completed)

    def test_deadline_forwarded_on_success(self):
        stub = self.stub()
        resp = stub.Echo(Req(message="in time", tag=self.tag()), timeout=20.0)
        self.assertEqual(resp.message, "in time")
        self.assertGreater(resp.deadline_remaining_ms, 10000)
        self.assertLessEqual(resp.deadline_remaining_ms, deadline_bound_ms(20.0))

    def test_deadline_on_server_stream(self):
        stub = self.stub()
        tag = self.tag()
        call = stub.Stream(Req(stream_count=100, stream_interval_ms=200, tag=tag), timeout=1.5)
        got = []
        with self.assertRaises(grpc.RpcError) as cm:
            for r in call:
                got.append(r.index)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(len(got), 100)
        rec = self.wait_for_call(tag, lambda c: c.cancelled, what="the backend to see the stream end")
        self.assertLessEqual(rec.deadline_remaining_ms, deadline_bound_ms(1.5))
        self.assertGreater(rec.deadline_remaining_ms, 0)

    def test_route_timeout(self):
        # A route timeout_ms and no client deadline: the gateway ends the call
        # with DEADLINE_EXCEEDED and resets the upstream stream.
        self.gateway_only()
        stub = self.stub(self.target(self.default_config(route_extra={"timeout_ms": 1000})))
        tag = self.tag()
        start = time.monotonic()
        err = self.expect_error(stub.Echo, Req(sleep_ms=20000, tag=tag), timeout=RPC_TIMEOUT)
        self.assertEqual(err.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(time.monotonic() - start, 15.0)
        self.wait_for_call(tag, lambda c: c.cancelled, what="the backend to see the call end")

    def test_cancel_server_stream(self):
        stub = self.stub()
        tag = self.tag()
        call = stub.Stream(Req(stream_count=1000, stream_interval_ms=50, response_size=100, tag=tag),
                           timeout=RPC_TIMEOUT)
        for _ in range(3):
            next(call)
        call.cancel()
        with self.assertRaises(grpc.RpcError) as cm:
            next(call)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.CANCELLED)
        rec = self.wait_for_call(tag, lambda c: c.cancelled, what="the backend to record the cancellation")
        self.assertFalse(rec.completed)
        self.assertLess(rec.messages_sent, 1000)
        # The stream stays stopped: nothing more is sent after the record.
        sent = rec.messages_sent
        time.sleep(0.5)
        self.assertEqual(self.calls(tag)[0].messages_sent, sent)

    def test_cancel_unary_in_flight(self):
        stub = self.stub()
        tag = self.tag()
        fut = stub.Echo.future(Req(sleep_ms=20000, tag=tag), timeout=RPC_TIMEOUT)
        self.wait_for_call(tag, lambda c: c.started, what="the call to reach the backend")
        self.assertTrue(fut.cancel())
        rec = self.wait_for_call(tag, lambda c: c.cancelled, what="the backend to record the cancellation")
        self.assertFalse(rec.completed)

    def test_cancel_bidi_stream(self):
        stub = self.stub()
        tag = self.tag()
        reqs = RequestQueue()
        call = stub.Chat(reqs, timeout=RPC_TIMEOUT)
        try:
            reqs.put(Req(message="one", tag=tag))
            self.assertEqual(next(call).message, "one")
            reqs.put(Req(message="two", sleep_ms=20000, tag=tag))
            self.wait_for_call(tag, lambda c: c.messages_received >= 2, what="the second message")
            call.cancel()
            rec = self.wait_for_call(tag, lambda c: c.cancelled, what="the backend to record the cancellation")
            self.assertEqual(rec.messages_sent, 1)
        finally:
            reqs.close()


class TestGrpcLargeAndFlowControl(GrpcTestBase):

    def test_16mib_messages_both_ways(self):
        stub = self.stub()
        big = os.urandom(16 * MiB)
        resp = stub.Echo(Req(payload=big), timeout=RPC_TIMEOUT)
        self.assertEqual(len(resp.payload), len(big))
        self.assertEqual(resp.payload_sha256, hashlib.sha256(big).hexdigest())
        self.assertTrue(resp.payload == big, "16 MiB payload came back altered")

        down = stub.Echo(Req(response_size=16 * MiB), timeout=RPC_TIMEOUT)
        self.assertTrue(down.payload == harness.pattern(16 * MiB), "16 MiB response altered")

        up = stub.Collect(iter([Req(payload=big), Req(payload=b"tail")]), timeout=RPC_TIMEOUT)
        self.assertEqual(up.received_bytes, len(big) + 4)
        self.assertEqual(up.received_sha256, hashlib.sha256(big + b"tail").hexdigest())

    def test_slow_reader_flow_control(self):
        # 256 MiB streamed in 1 MiB messages to a client that reads slowly:
        # the gateway must apply HTTP/2 flow control upstream instead of
        # buffering, so its RSS stays within a bound (gateway mode).
        count = 256
        size = MiB
        bound_mib = 64
        gw = None
        if DIRECT:
            stub = self.stub()
        else:
            env = None
            if harness.is_asan_binary():
                # Freed memory sits in ASan's quarantine (256 MiB by default)
                # and shadow memory adds 1/8: cap the one, allow for the other.
                env = {"ASAN_OPTIONS": ":".join(filter(None, [
                    os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=16",
                    "thread_local_quarantine_size_kb=256"]))}
                bound_mib += 32
            gw = self._stack.enter_context(harness.Portico(self.default_config(), env=env))
            stub = self.stub(gw.addr("main"))
            stub.Echo(Req(response_size=64 * 1024), timeout=RPC_TIMEOUT)  # warm up pools, buffers
            idle_kb = harness.rss_kb(gw.pid)
        peak_kb = 0
        call = stub.Stream(Req(stream_count=count, response_size=size, tag=self.tag()), timeout=600)
        n = 0
        for r in call:
            self.assertEqual(r.index, n)
            if r.payload != harness.pattern(size, n):
                self.fail("message %d altered" % n)
            n += 1
            if gw is not None:
                peak_kb = max(peak_kb, harness.rss_kb(gw.pid))
            time.sleep(0.02)
        self.assertEqual(n, count)
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        if gw is not None:
            grown_mib = (peak_kb - idle_kb) / 1024.0
            self.assertLess(grown_mib, bound_mib,
                            "gateway RSS grew by %.1f MiB while relaying 256 MiB" % grown_mib)


class TestGrpcTransports(GrpcTestBase):
    """TLS (h2 with ALPN) listener, IPv6, drain and reload."""

    def test_tls_h2_listener(self):
        certs = harness.test_certs()
        if DIRECT:
            be = self._stack.enter_context(harness.GrpcBackend(tls=certs))
            target = be.addr
        else:
            cfg = self.default_config(listeners=[
                {"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]},
                {"name": "tls", "address": "127.0.0.1:0", "protocols": ["http1", "h2"],
                 "tls": {"cert_file": certs.cert, "key_file": certs.key}}])
            target = self.start_gateway(cfg).addr("tls")
        stub = self.stub(target, ca_file=certs.ca_cert, server_name="localhost")
        resp = stub.Echo(Req(message="over tls", payload=os.urandom(70000)), metadata=[("x-t", "1")],
                         timeout=RPC_TIMEOUT)
        self.assertEqual(resp.message, "over tls")
        got = list(stub.Stream(Req(stream_count=5, response_size=20000), timeout=RPC_TIMEOUT))
        self.assertEqual([r.index for r in got], list(range(5)))
        self.assertEqual(got[4].payload, harness.pattern(20000, 4))
        if not DIRECT:
            md = {e.key: e.value for e in resp.metadata}
            self.assertEqual(md.get("x-forwarded-proto"), b"https")

    def test_tls_rejects_untrusted_client_config(self):
        # A client that does not trust the test CA must fail the handshake
        # (proves the TLS test above really verified the certificate).
        certs = harness.test_certs()
        other = harness.make_certs(self._stack.enter_context(harness.TempDir()).path)
        if DIRECT:
            target = self._stack.enter_context(harness.GrpcBackend(tls=certs)).addr
        else:
            cfg = self.default_config(listeners=[
                {"name": "main", "address": "127.0.0.1:0", "protocols": ["h2"],
                 "tls": {"cert_file": certs.cert, "key_file": certs.key}}])
            target = self.start_gateway(cfg).addr("main")
        stub = self.stub(target, ca_file=other.ca_cert, server_name="localhost")
        err = self.expect_error(stub.Echo, Req(), timeout=10)
        self.assertEqual(err.code(), grpc.StatusCode.UNAVAILABLE)

    def test_ipv6(self):
        if not harness.ipv6_available():
            self.skipTest("no IPv6 loopback")
        be = self._stack.enter_context(harness.GrpcBackend(host="::1"))
        if DIRECT:
            target = be.addr
        else:
            cfg = harness.grpc_gateway_config([be.instance()], listeners=[
                {"name": "main", "address": "[::1]:0", "protocols": ["http1", "h2c"]}])
            target = self.start_gateway(cfg).addr("main")
        stub = self.stub(target)
        resp = stub.Echo(Req(message="v6"), timeout=RPC_TIMEOUT)
        self.assertEqual(resp.message, "v6")
        self.assertEqual(resp.server_id, "grpc-backend-%d" % be.port)
        if not DIRECT:
            md = {e.key: e.value for e in resp.metadata}
            self.assertEqual(md.get("x-forwarded-for", b"").split(b",")[-1].strip(), b"::1")

    def test_graceful_drain_finishes_inflight_stream(self):
        self.gateway_only()
        gw = self.start_gateway(self.default_config())
        stub = self.stub(gw.addr("main"))
        call = stub.Stream(Req(stream_count=10, stream_interval_ms=200, response_size=10), timeout=RPC_TIMEOUT)
        first = next(call)
        self.assertEqual(first.index, 0)
        os.kill(gw.pid, signal.SIGTERM)
        rest = [r.index for r in call]
        self.assertEqual(rest, list(range(1, 10)))
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertEqual(gw.wait_exit(30), 0, gw.stderr[-2000:])

    def test_reload_switches_backend_and_keeps_inflight(self):
        self.gateway_only()
        other = self._stack.enter_context(harness.GrpcBackend(server_id="backend-b"))
        cfg_a = self.default_config()
        gw = self.start_gateway(cfg_a)
        stub = self.stub(gw.addr("main"))
        a_id = "grpc-backend-%d" % self.backend.port
        self.assertEqual(stub.Echo(Req(), timeout=RPC_TIMEOUT).server_id, a_id)
        inflight = stub.Stream(Req(stream_count=8, stream_interval_ms=250), timeout=RPC_TIMEOUT)
        self.assertEqual(next(inflight).server_id, a_id)

        cfg_b = harness.grpc_gateway_config([other.instance()])
        gw.reload(cfg_b)
        harness.wait_until(lambda: stub.Echo(Req(), timeout=RPC_TIMEOUT).server_id == "backend-b",
                           timeout=15, message="calls to reach backend-b after SIGHUP")
        # The stream that started before the reload finishes on backend A.
        rest = list(inflight)
        self.assertEqual([r.index for r in rest], list(range(1, 8)))
        self.assertTrue(all(r.server_id == a_id for r in rest))
        self.assertTrue(gw.running())


if __name__ == "__main__":
    unittest.main()
