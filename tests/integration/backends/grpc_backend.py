#!/usr/bin/python3
"""gRPC backend for the integration tests.

Serves two services on one port:
  * portico.test.Echo (tests/integration/protos/portico/test/echo.proto):
    unary Echo, server-streaming Stream, client-streaming Collect, bidi Chat,
    and GetStats, which reports what the backend saw for the calls of a tag
    (cancellations, the deadline each call arrived with, forwarded metadata);
  * grpc.testing.TestService, the interop servicer of interop/server.py;
  * grpc.health.v1.Health (proto/third_party/grpc/health/v1/health.proto):
    Check answers the status set for the requested service name (default
    SERVING for every name); Watch is not implemented;
  * portico.test.Control/SetHealth, a run-time control for health-check
    tests: the request is raw bytes (no proto) "<service>=<STATUS>", STATUS
    one of SERVING, NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN, or "FAIL" (Check
    fails with UNAVAILABLE), or "HANG" (Check never answers in time); an
    empty <service> is the server as a whole. The reply is the number of
    Check calls received so far, as ASCII digits.

Every Echo call:
  * echoes request metadata whose key starts with "x-" as initial metadata
    (same key and value), except when it fails before sending anything, which
    yields a trailers-only response;
  * sets trailing metadata: x-trailer: trailer-value, x-trailer-bin: bytes
    0..255, and each "x-<rest>" request key again as "x-trailing-<rest>".

Usage: grpc_backend.py [--host 127.0.0.1|::1] [--port 0] [--server-id ID]
                       [--tls-cert F --tls-key F]
Prints "READY port=<port>" on stdout once serving; SIGTERM stops it.
"""

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_util as util  # noqa: E402  (also puts interop/ on sys.path)
import protoload  # noqa: E402

interop_server = util.load_interop_server()

echo_pb2 = util.load_echo()


def _load_health():
    # The generated module of grpc/health/v1/health.proto would be
    # grpc.health.v1.health_pb2, inside the grpc package: compile a copy
    # under another path (the messages keep their grpc.health.v1 names).
    src = os.path.join(util.REPO_ROOT, "proto", "third_party", "grpc", "health", "v1",
                       "health.proto")
    root = tempfile.mkdtemp(prefix="portico-health-proto-")
    try:
        os.mkdir(os.path.join(root, "portico_health"))
        shutil.copyfile(src, os.path.join(root, "portico_health", "health.proto"))
        (mod,) = protoload.load_protos(root, ["portico_health/health.proto"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return mod


health_pb2 = _load_health()

TRAILER_BIN = bytes(range(256))
SKIP_ECHO_PREFIXES = ("grpc-",)


def _status_code(number):
    return interop_server.status_code(number)


def _deadline_ms(context):
    """Milliseconds left before the call's deadline (from the grpc-timeout the
    backend received), or -1 when the call has no deadline."""
    left = context.time_remaining()
    if left is None or left > 10 * 365 * 86400:
        return -1
    return int(left * 1000)


def _metadata_entries(md):
    out = []
    for key, value in md:
        if isinstance(value, str):
            value = value.encode("utf-8")
        out.append(echo_pb2.MetadataEntry(key=key, value=value))
    return out


def _call_details(context):
    # The :authority and :path are not in the public ServicerContext API;
    # grpc 1.51 keeps them in the RPC event's call details.
    ev = getattr(context, "_rpc_event", None)
    details = getattr(ev, "call_details", None)
    method = getattr(details, "method", b"") or b""
    host = getattr(details, "host", b"") or b""
    if isinstance(method, bytes):
        method = method.decode("utf-8", "replace")
    if isinstance(host, bytes):
        host = host.decode("utf-8", "replace")
    return host, method


class Recorder(object):
    """Thread-safe record of every call, keyed by tag."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []
        self.calls_started = 0
        self.calls_cancelled = 0
        self.last_deadline_ms = -1

    def begin(self, tag, method, context):
        rec = echo_pb2.CallStats(tag=tag, method=method, started=True,
                                 deadline_remaining_ms=_deadline_ms(context))
        rec.metadata.extend(_metadata_entries(context.invocation_metadata()))
        with self.lock:
            self.calls.append(rec)
            self.calls_started += 1
            self.last_deadline_ms = rec.deadline_remaining_ms

        def on_done():
            # Runs when the RPC terminates. A handler that got to its end
            # (success or deliberate failure) has set completed first.
            with self.lock:
                if not rec.completed and not rec.cancelled:
                    rec.cancelled = True
                    self.calls_cancelled += 1

        if not context.add_callback(on_done):
            on_done()
        return rec

    def finish(self, rec):
        with self.lock:
            if not rec.cancelled:
                rec.completed = True

    def mark_cancelled(self, rec):
        with self.lock:
            if not rec.completed and not rec.cancelled:
                rec.cancelled = True
                self.calls_cancelled += 1

    def add(self, rec, sent=0, received=0):
        with self.lock:
            rec.messages_sent += sent
            rec.messages_received += received

    def stats(self, tag, server_id):
        with self.lock:
            resp = echo_pb2.StatsResponse(calls_started=self.calls_started,
                                          calls_cancelled=self.calls_cancelled,
                                          last_deadline_remaining_ms=self.last_deadline_ms,
                                          server_id=server_id)
            for rec in self.calls:
                if not tag or rec.tag == tag:
                    resp.calls.add().CopyFrom(rec)
            return resp


def _sleep(context, ms):
    """Sleep `ms`, returning False early if the call stops being active."""
    end = time.monotonic() + ms / 1000.0
    while True:
        if not context.is_active():
            return False
        left = end - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.02))


class EchoServicer(object):
    def __init__(self, server_id, recorder):
        self.server_id = server_id
        self.rec = recorder

    # -- helpers -------------------------------------------------------------

    def _echo_md(self, context):
        md = [(k, v) for k, v in context.invocation_metadata()
              if k.startswith("x-") and not k.startswith(SKIP_ECHO_PREFIXES)]
        trailing = [("x-trailer", "trailer-value"), ("x-trailer-bin", TRAILER_BIN)]
        trailing += [("x-trailing-" + k[2:], v) for k, v in md]
        return md, trailing

    def _start(self, context, method, tag, send_headers=True):
        rec = self.rec.begin(tag, method, context)
        initial, trailing = self._echo_md(context)
        context.set_trailing_metadata(tuple(trailing))
        if send_headers:
            context.send_initial_metadata(tuple(initial))
        return rec

    def _fail(self, context, rec, req):
        self.rec.finish(rec)
        context.abort(_status_code(req.fail_code), req.fail_message)

    def _response(self, context, req, index, payload=None):
        authority, method = _call_details(context)
        if payload is None:
            payload = util.pattern(req.response_size, index) if req.response_size else req.payload
        return echo_pb2.EchoResponse(message=req.message, payload=payload, index=index,
                                     server_id=self.server_id,
                                     deadline_remaining_ms=_deadline_ms(context),
                                     authority=authority, method=method)

    # -- RPCs ----------------------------------------------------------------

    def Echo(self, req, context):
        fail_now = req.fail_code != 0
        rec = self._start(context, "Echo", req.tag, send_headers=not fail_now)
        self.rec.add(rec, received=1)
        if req.sleep_ms and not _sleep(context, req.sleep_ms):
            self.rec.mark_cancelled(rec)
            return echo_pb2.EchoResponse()
        if fail_now:
            self._fail(context, rec, req)
        resp = self._response(context, req, 0)
        resp.metadata.extend(_metadata_entries(context.invocation_metadata()))
        resp.payload_sha256 = hashlib.sha256(req.payload).hexdigest()
        self.rec.add(rec, sent=1)
        self.rec.finish(rec)
        return resp

    def Stream(self, req, context):
        fail_now = req.fail_code != 0 and req.fail_after == 0
        rec = self._start(context, "Stream", req.tag, send_headers=not fail_now)
        self.rec.add(rec, received=1)
        if fail_now:
            self._fail(context, rec, req)
        if req.sleep_ms and not _sleep(context, req.sleep_ms):
            self.rec.mark_cancelled(rec)
            return
        for i in range(req.stream_count):
            if req.fail_code and i == req.fail_after:
                self._fail(context, rec, req)
            if req.stream_interval_ms and not _sleep(context, req.stream_interval_ms):
                self.rec.mark_cancelled(rec)
                return
            if not context.is_active():
                self.rec.mark_cancelled(rec)
                return
            yield self._response(context, req, i)
            self.rec.add(rec, sent=1)
        if req.fail_code:
            self._fail(context, rec, req)
        self.rec.finish(rec)

    def Collect(self, req_iter, context):
        rec = None
        count = 0
        total = 0
        digest = hashlib.sha256()
        first = None
        try:
            for req in req_iter:
                if rec is None:
                    first = req
                    rec = self._start(context, "Collect", req.tag)
                count += 1
                total += len(req.payload)
                digest.update(req.payload)
                self.rec.add(rec, received=1)
                if req.fail_code:
                    self._fail(context, rec, req)
        except grpc.RpcError:
            if rec is not None:
                self.rec.mark_cancelled(rec)
            raise
        if rec is None:
            first = echo_pb2.EchoRequest()
            rec = self._start(context, "Collect", "")
        if not context.is_active():
            self.rec.mark_cancelled(rec)
            return echo_pb2.EchoResponse()
        resp = self._response(context, first, count, payload=b"")
        resp.received_bytes = total
        resp.received_sha256 = digest.hexdigest()
        self.rec.add(rec, sent=1)
        self.rec.finish(rec)
        return resp

    def Chat(self, req_iter, context):
        rec = None
        i = 0
        for req in req_iter:
            if rec is None:
                rec = self._start(context, "Chat", req.tag)
            self.rec.add(rec, received=1)
            if req.fail_code:
                self._fail(context, rec, req)
            if req.sleep_ms and not _sleep(context, req.sleep_ms):
                self.rec.mark_cancelled(rec)
                return
            yield self._response(context, req, i)
            self.rec.add(rec, sent=1)
            i += 1
        if rec is None:
            rec = self._start(context, "Chat", "")
        self.rec.finish(rec)

    def GetStats(self, req, context):
        return self.rec.stats(req.tag, self.server_id)


class HealthServicer(object):
    """grpc.health.v1.Health/Check with statuses settable at run time."""

    def __init__(self):
        self.lock = threading.Lock()
        self.status = {}  # service name -> status name; missing = SERVING
        self.checks = 0

    def Check(self, req, context):
        with self.lock:
            self.checks += 1
            st = self.status.get(req.service, "SERVING")
        if st == "FAIL":
            context.abort(grpc.StatusCode.UNAVAILABLE, "health: failing")
        if st == "HANG":
            _sleep(context, 60000)
            return health_pb2.HealthCheckResponse()
        return health_pb2.HealthCheckResponse(
            status=health_pb2.HealthCheckResponse.ServingStatus.Value(st))

    def set_health(self, request, context):
        text = request.decode("utf-8", "replace")
        name, sep, st = text.rpartition("=")
        names = list(health_pb2.HealthCheckResponse.ServingStatus.keys()) + ["FAIL", "HANG"]
        if not sep or st not in names:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "want <service>=<%s>" % "|".join(names))
        with self.lock:
            self.status[name] = st
            return str(self.checks).encode()


def main(argv=None):
    ap = argparse.ArgumentParser(description="gRPC test backend")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--server-id", default="")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--max-workers", type=int, default=128)
    args = ap.parse_args(argv)

    recorder = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.max_workers),
                         options=interop_server.SERVER_OPTIONS)
    port = interop_server.bind(server, args.host, args.port, args.tls_cert, args.tls_key)
    server_id = args.server_id or "grpc-backend-%d" % port

    def on_interop_call(method, context):
        recorder.finish(recorder.begin("interop/" + method, method, context))

    health = HealthServicer()
    raw = dict(request_deserializer=None, response_serializer=None)
    server.add_generic_rpc_handlers((
        protoload.generic_handler(echo_pb2.DESCRIPTOR.services_by_name["Echo"],
                                  EchoServicer(server_id, recorder)),
        protoload.generic_handler(health_pb2.DESCRIPTOR.services_by_name["Health"], health),
        grpc.method_handlers_generic_handler("portico.test.Control", {
            "SetHealth": grpc.unary_unary_rpc_method_handler(health.set_health, **raw)}),
        interop_server.test_service_handler(
            interop_server.TestServiceServicer(server_id, on_call=on_interop_call)),
    ))
    server.start()
    util.announce_ready(port)
    util.wait_for_termination()
    server.stop(grace=1.0).wait(5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
