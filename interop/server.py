#!/usr/bin/python3
"""gRPC interop test server: grpc.testing.TestService per the interop spec.

Usage: server.py --port=N [--host=127.0.0.1] [--use_tls=true --tls_cert_file=F
       --tls_key_file=F] [--server_id=ID]

With --port=0 a free port is chosen. When serving, one line
"READY port=<port>" is printed on stdout (the harness waits for it); logs go
to stderr. SIGTERM/SIGINT stop the server.

Behaviour follows the interop test descriptions: responses carry a payload of
zeros of the requested size, `response_status` makes the call fail with that
code and message, the metadata keys x-grpc-test-echo-initial and
x-grpc-test-echo-trailing-bin are echoed as initial and trailing metadata,
`interval_us` delays each streamed response. UnimplementedCall and the
UnimplementedService are deliberately not served.
"""

import argparse
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protoload  # noqa: E402

empty_pb2, messages_pb2, test_pb2 = protoload.load_interop()

ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.so_reuseport", 0),
]


def _payload(size):
    if size < 0:
        raise ValueError("negative payload size")
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=b"\0" * size)


def _echo_metadata(context):
    """Send the echo-initial value as initial metadata and arrange for the
    echo-trailing value to be sent as trailing metadata."""
    initial = []
    trailing = []
    for key, value in context.invocation_metadata():
        if key == ECHO_INITIAL_KEY:
            initial.append((key, value))
        elif key == ECHO_TRAILING_KEY:
            trailing.append((key, value))
    if initial:
        context.send_initial_metadata(tuple(initial))
    if trailing:
        context.set_trailing_metadata(tuple(trailing))


def status_code(number):
    """grpc.StatusCode for a numeric code (UNKNOWN for numbers it lacks)."""
    for sc in grpc.StatusCode:
        if sc.value[0] == number:
            return sc
    return grpc.StatusCode.UNKNOWN


def _apply_status(context, echo_status):
    if echo_status is not None and echo_status.code != 0:
        context.abort(status_code(echo_status.code), echo_status.message)


def _sleep_us(context, interval_us):
    """Sleep, waking early when the call is no longer active."""
    if interval_us <= 0:
        return
    end = time.monotonic() + interval_us / 1e6
    while context.is_active():
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


class TestServiceServicer(object):
    """grpc.testing.TestService. `on_call(method, context)` is an optional
    hook (used by the integration backend to record calls)."""

    def __init__(self, server_id="portico-interop-server", on_call=None):
        self.server_id = server_id
        self.hostname = os.uname().nodename
        self._on_call = on_call

    def _hook(self, name, context):
        if self._on_call is not None:
            self._on_call(name, context)

    def EmptyCall(self, request, context):
        self._hook("EmptyCall", context)
        _echo_metadata(context)
        return empty_pb2.Empty()

    def UnaryCall(self, request, context):
        self._hook("UnaryCall", context)
        _echo_metadata(context)
        if request.HasField("response_status"):
            _apply_status(context, request.response_status)
        resp = messages_pb2.SimpleResponse(payload=_payload(request.response_size))
        if request.fill_server_id:
            resp.server_id = self.server_id
        resp.hostname = self.hostname
        return resp

    CacheableUnaryCall = UnaryCall

    def StreamingOutputCall(self, request, context):
        self._hook("StreamingOutputCall", context)
        _echo_metadata(context)
        for params in request.response_parameters:
            _sleep_us(context, params.interval_us)
            if not context.is_active():
                return
            yield messages_pb2.StreamingOutputCallResponse(payload=_payload(params.size))
        if request.HasField("response_status"):
            _apply_status(context, request.response_status)

    def StreamingInputCall(self, request_iterator, context):
        self._hook("StreamingInputCall", context)
        _echo_metadata(context)
        total = 0
        for req in request_iterator:
            total += len(req.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        self._hook("FullDuplexCall", context)
        _echo_metadata(context)
        for req in request_iterator:
            if req.HasField("response_status"):
                _apply_status(context, req.response_status)
            for params in req.response_parameters:
                _sleep_us(context, params.interval_us)
                if not context.is_active():
                    return
                yield messages_pb2.StreamingOutputCallResponse(payload=_payload(params.size))

    def HalfDuplexCall(self, request_iterator, context):
        self._hook("HalfDuplexCall", context)
        _echo_metadata(context)
        requests = list(request_iterator)
        for req in requests:
            if req.HasField("response_status"):
                _apply_status(context, req.response_status)
            for params in req.response_parameters:
                _sleep_us(context, params.interval_us)
                if not context.is_active():
                    return
                yield messages_pb2.StreamingOutputCallResponse(payload=_payload(params.size))


def test_service_handler(servicer):
    return protoload.generic_handler(test_pb2.DESCRIPTOR.services_by_name["TestService"], servicer)


def bind(server, host, port, cert_file=None, key_file=None):
    """Bind `server` to host:port (port 0 = free port); return the port."""
    h = "[%s]" % host if ":" in host and not host.startswith("[") else host
    addr = "%s:%d" % (h, port)
    if cert_file:
        with open(cert_file, "rb") as f:
            cert = f.read()
        with open(key_file, "rb") as f:
            key = f.read()
        creds = grpc.ssl_server_credentials([(key, cert)])
        bound = server.add_secure_port(addr, creds)
    else:
        bound = server.add_insecure_port(addr)
    if bound == 0:
        raise RuntimeError("could not bind %s" % addr)
    return bound


def serve_until_signalled(server, port):
    """Start `server`, print the READY line, block until SIGTERM/SIGINT."""
    stop = threading.Event()

    def _on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    sys.stdout.write("READY port=%d\n" % port)
    sys.stdout.flush()
    # Nothing else may go to the stdout pipe (nobody reads it any more).
    os.dup2(2, 1)
    while not stop.wait(0.5):
        pass
    server.stop(grace=1.0).wait(5.0)


def parse_bool(s):
    v = str(s).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError("not a boolean: %r" % s)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--use_tls", type=parse_bool, default=False)
    ap.add_argument("--tls_cert_file")
    ap.add_argument("--tls_key_file")
    ap.add_argument("--server_id", default="portico-interop-server")
    ap.add_argument("--max_workers", type=int, default=64)
    args = ap.parse_args(argv)
    if args.use_tls and not (args.tls_cert_file and args.tls_key_file):
        ap.error("--use_tls needs --tls_cert_file and --tls_key_file")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.max_workers),
                         options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((test_service_handler(TestServiceServicer(args.server_id)),))
    port = bind(server, args.host, args.port,
                args.tls_cert_file if args.use_tls else None,
                args.tls_key_file if args.use_tls else None)
    serve_until_signalled(server, port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
