#!/usr/bin/python3
"""gRPC interop test client (the standard interop test cases).

Usage: client.py --server_host=HOST --server_port=PORT --test_case=CASE
       [--use_tls=true [--ca_file=CA.pem] [--server_host_override=NAME]]

CASE is one of the names in CASES, or "all". Each case prints one line,
"PASS <case>" or "FAIL <case>: <reason>"; the exit status is 0 only when every
case passed. Every RPC has a deadline (--rpc_timeout_s, default 30), so a
broken peer fails the case instead of hanging it.
"""

import argparse
import os
import queue
import sys
import time
import traceback

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protoload  # noqa: E402

empty_pb2, messages_pb2, test_pb2 = protoload.load_interop()

ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"
SPECIAL_STATUS_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.use_local_subchannel_pool", 1),
]


class CaseFailure(AssertionError):
    pass


def expect(cond, msg):
    if not cond:
        raise CaseFailure(msg)


def expect_status(err, code, details=None):
    expect(isinstance(err, grpc.RpcError), "expected an RPC error, got %r" % (err,))
    expect(err.code() == code, "expected status %s, got %s (%r)" % (code, err.code(), err.details()))
    if details is not None:
        expect(err.details() == details, "expected message %r, got %r" % (details, err.details()))


def payload(size):
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=b"\0" * size)


def expect_payload(p, size):
    expect(p.type == messages_pb2.COMPRESSABLE, "payload type %r" % p.type)
    expect(len(p.body) == size, "payload size %d, expected %d" % (len(p.body), size))
    expect(p.body == b"\0" * size, "payload body is not all zeros")


class RequestQueue(object):
    """A request iterator fed from the test: put() sends, close() half-closes,
    abandon() ends it without more messages (after a cancelled call). Waits
    are bounded so a forgotten queue never blocks a thread forever."""

    _END = object()

    def __init__(self, max_wait_s=60.0):
        self._q = queue.Queue()
        self._max_wait_s = max_wait_s

    def put(self, msg):
        self._q.put(msg)

    def close(self):
        self._q.put(self._END)

    abandon = close

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


class Client(object):
    def __init__(self, channel, rpc_timeout_s=30.0):
        self.channel = channel
        self.timeout = rpc_timeout_s
        self.stub = protoload.Stub(channel, test_pb2.DESCRIPTOR.services_by_name["TestService"])
        self.unimpl_stub = protoload.Stub(channel, test_pb2.DESCRIPTOR.services_by_name["UnimplementedService"])

    # -- cases ---------------------------------------------------------------

    def empty_unary(self):
        resp = self.stub.EmptyCall(empty_pb2.Empty(), timeout=self.timeout)
        expect(isinstance(resp, empty_pb2.Empty), "response is not grpc.testing.Empty")
        expect(resp.ByteSize() == 0, "response is not empty")

    def large_unary(self):
        req = messages_pb2.SimpleRequest(response_type=messages_pb2.COMPRESSABLE,
                                         response_size=314159, payload=payload(271828))
        resp = self.stub.UnaryCall(req, timeout=self.timeout)
        expect_payload(resp.payload, 314159)

    def client_streaming(self):
        sizes = [27182, 8, 1828, 45904]
        reqs = [messages_pb2.StreamingInputCallRequest(payload=payload(s)) for s in sizes]
        resp = self.stub.StreamingInputCall(iter(reqs), timeout=self.timeout)
        expect(resp.aggregated_payload_size == 74922,
               "aggregated_payload_size %d, expected 74922" % resp.aggregated_payload_size)

    def server_streaming(self):
        sizes = [31415, 9, 2653, 58979]
        req = messages_pb2.StreamingOutputCallRequest(
            response_type=messages_pb2.COMPRESSABLE,
            response_parameters=[messages_pb2.ResponseParameters(size=s) for s in sizes])
        got = list(self.stub.StreamingOutputCall(req, timeout=self.timeout))
        expect(len(got) == len(sizes), "%d responses, expected %d" % (len(got), len(sizes)))
        for resp, size in zip(got, sizes):
            expect_payload(resp.payload, size)

    def ping_pong(self):
        req_sizes = [27182, 8, 1828, 45904]
        resp_sizes = [31415, 9, 2653, 58979]
        reqs = RequestQueue()
        call = self.stub.FullDuplexCall(reqs, timeout=self.timeout)
        try:
            for rq, rs in zip(req_sizes, resp_sizes):
                reqs.put(messages_pb2.StreamingOutputCallRequest(
                    response_type=messages_pb2.COMPRESSABLE,
                    response_parameters=[messages_pb2.ResponseParameters(size=rs)],
                    payload=payload(rq)))
                resp = next(call)
                expect_payload(resp.payload, rs)
            reqs.close()
            rest = list(call)
            expect(rest == [], "%d unexpected extra responses" % len(rest))
            expect(call.code() == grpc.StatusCode.OK, "status %s" % call.code())
        finally:
            reqs.abandon()
            call.cancel()

    def empty_stream(self):
        call = self.stub.FullDuplexCall(iter([]), timeout=self.timeout)
        got = list(call)
        expect(got == [], "%d responses to an empty stream" % len(got))
        expect(call.code() == grpc.StatusCode.OK, "status %s" % call.code())

    def timeout_on_sleeping_server(self):
        reqs = RequestQueue()
        reqs.put(messages_pb2.StreamingOutputCallRequest(payload=payload(27182)))
        call = self.stub.FullDuplexCall(reqs, timeout=0.001)
        try:
            try:
                got = list(call)
            except grpc.RpcError as err:
                expect_status(err, grpc.StatusCode.DEADLINE_EXCEEDED)
            else:
                raise CaseFailure("call succeeded with %d responses" % len(got))
        finally:
            reqs.abandon()

    def cancel_after_begin(self):
        reqs = RequestQueue()
        fut = self.stub.StreamingInputCall.future(reqs, timeout=self.timeout)
        try:
            fut.cancel()
            expect(fut.cancelled(), "future not cancelled")
            expect(fut.code() == grpc.StatusCode.CANCELLED, "status %s" % fut.code())
        finally:
            reqs.abandon()

    def cancel_after_first_response(self):
        reqs = RequestQueue()
        call = self.stub.FullDuplexCall(reqs, timeout=self.timeout)
        try:
            reqs.put(messages_pb2.StreamingOutputCallRequest(
                response_type=messages_pb2.COMPRESSABLE,
                response_parameters=[messages_pb2.ResponseParameters(size=31415)],
                payload=payload(27182)))
            resp = next(call)
            expect_payload(resp.payload, 31415)
            call.cancel()
            try:
                next(call)
            except grpc.RpcError as err:
                expect_status(err, grpc.StatusCode.CANCELLED)
            else:
                raise CaseFailure("stream went on after cancel")
        finally:
            reqs.abandon()

    def _status_case(self, message):
        status = messages_pb2.EchoStatus(code=2, message=message)
        try:
            self.stub.UnaryCall(messages_pb2.SimpleRequest(response_status=status), timeout=self.timeout)
        except grpc.RpcError as err:
            expect_status(err, grpc.StatusCode.UNKNOWN, message)
        else:
            raise CaseFailure("UnaryCall succeeded")

    def status_code_and_message(self):
        message = "test status message"
        self._status_case(message)
        status = messages_pb2.EchoStatus(code=2, message=message)
        call = self.stub.FullDuplexCall(
            iter([messages_pb2.StreamingOutputCallRequest(response_status=status)]), timeout=self.timeout)
        try:
            got = list(call)
        except grpc.RpcError as err:
            expect_status(err, grpc.StatusCode.UNKNOWN, message)
        else:
            raise CaseFailure("FullDuplexCall succeeded with %d responses" % len(got))

    def special_status_message(self):
        self._status_case(SPECIAL_STATUS_MESSAGE)

    def custom_metadata(self):
        initial_value = "test_initial_metadata_value"
        trailing_value = b"\xab\xab\xab"
        md = ((ECHO_INITIAL_KEY, initial_value), (ECHO_TRAILING_KEY, trailing_value))

        def check(call):
            init = [v for k, v in call.initial_metadata() if k == ECHO_INITIAL_KEY]
            trail = [v for k, v in call.trailing_metadata() if k == ECHO_TRAILING_KEY]
            expect(init == [initial_value], "initial metadata %r" % (call.initial_metadata(),))
            expect(trail == [trailing_value], "trailing metadata %r" % (call.trailing_metadata(),))

        req = messages_pb2.SimpleRequest(response_type=messages_pb2.COMPRESSABLE,
                                         response_size=314159, payload=payload(271828))
        resp, call = self.stub.UnaryCall.with_call(req, metadata=md, timeout=self.timeout)
        expect_payload(resp.payload, 314159)
        check(call)

        sreq = messages_pb2.StreamingOutputCallRequest(
            response_type=messages_pb2.COMPRESSABLE,
            response_parameters=[messages_pb2.ResponseParameters(size=314159)],
            payload=payload(271828))
        call = self.stub.FullDuplexCall(iter([sreq]), metadata=md, timeout=self.timeout)
        got = list(call)
        expect(len(got) == 1, "%d responses, expected 1" % len(got))
        expect_payload(got[0].payload, 314159)
        check(call)

    def unimplemented_method(self):
        try:
            self.stub.UnimplementedCall(empty_pb2.Empty(), timeout=self.timeout)
        except grpc.RpcError as err:
            expect_status(err, grpc.StatusCode.UNIMPLEMENTED)
        else:
            raise CaseFailure("UnimplementedCall succeeded")

    def unimplemented_service(self):
        try:
            self.unimpl_stub.UnimplementedCall(empty_pb2.Empty(), timeout=self.timeout)
        except grpc.RpcError as err:
            expect_status(err, grpc.StatusCode.UNIMPLEMENTED)
        else:
            raise CaseFailure("UnimplementedService.UnimplementedCall succeeded")


CASES = [
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "status_code_and_message",
    "special_status_message",
    "custom_metadata",
    "unimplemented_method",
    "unimplemented_service",
]


def parse_bool(s):
    v = str(s).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError("not a boolean: %r" % s)


def make_channel(host, port, use_tls=False, ca_file=None, host_override=None):
    h = "[%s]" % host if ":" in host and not host.startswith("[") else host
    target = "%s:%d" % (h, port)
    options = list(CHANNEL_OPTIONS)
    if use_tls:
        root = None
        if ca_file:
            with open(ca_file, "rb") as f:
                root = f.read()
        if host_override:
            options.append(("grpc.ssl_target_name_override", host_override))
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=root), options=options)
    return grpc.insecure_channel(target, options=options)


def run_cases(client, cases, out=sys.stdout):
    failed = 0
    for case in cases:
        start = time.monotonic()
        try:
            getattr(client, case)()
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            failed += 1
            detail = str(exc) if isinstance(exc, (CaseFailure, grpc.RpcError)) else traceback.format_exc()
            if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
                detail = "unexpected RPC error %s: %r" % (exc.code(), exc.details())
            out.write("FAIL %s: %s\n" % (case, detail.strip().replace("\n", "\\n")))
        else:
            out.write("PASS %s (%.0f ms)\n" % (case, (time.monotonic() - start) * 1000))
        out.flush()
    return failed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server_host", default="localhost")
    ap.add_argument("--server_port", type=int, required=True)
    ap.add_argument("--test_case", default="large_unary",
                    help="one of %s, a comma-separated list, or all" % ", ".join(CASES))
    ap.add_argument("--use_tls", type=parse_bool, default=False)
    ap.add_argument("--use_test_ca", type=parse_bool, default=False,
                    help="accepted for compatibility; give the CA with --ca_file")
    ap.add_argument("--ca_file", help="PEM CA bundle to verify the server (default: system roots)")
    ap.add_argument("--server_host_override", default="",
                    help="name to verify the server certificate against")
    ap.add_argument("--rpc_timeout_s", type=float, default=30.0)
    args = ap.parse_args(argv)

    if args.test_case == "all":
        cases = list(CASES)
    else:
        cases = [c.strip() for c in args.test_case.split(",") if c.strip()]
        unknown = [c for c in cases if c not in CASES]
        if unknown:
            ap.error("unknown test case(s): %s" % ", ".join(unknown))

    channel = make_channel(args.server_host, args.server_port, args.use_tls, args.ca_file,
                           args.server_host_override or None)
    try:
        failed = run_cases(Client(channel, args.rpc_timeout_s), cases)
    finally:
        channel.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
