"""A backend that fails on command, for the retry tests.

HTTP/1.1 (default): every request is answered according to the current
mode, set with --mode or at run time with `GET /__mode?m=<mode>`:

  ok      200, JSON {"server_id", "method", "path", "body_len", "body_sha256"};
          with ?size=N, N bytes of backend_util.pattern (x-server-id header)
  503     503 with a small JSON body (after reading the whole request body)
  reset   read the request, then close the connection with an RST, no response
  hang    read the request head, never answer (until the client goes away,
          logged as "GONE <path>", or 120 s pass)
  slow    sleep --delay-ms, then answer like ok

`GET /__stats` answers {"requests": N, "by_path": {...}}: the requests this
instance received (control paths excluded). Every request is also logged
to stderr as "REQ <method> <path> <mode>".

--grpc: a gRPC server of portico.test.Echo/Echo whose calls fail with
--grpc-code (0 = answer normally, with the server id); each call is logged
as "CALL <code>" on stderr.
"""

import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_util as util  # noqa: E402

MODES = ("ok", "503", "reset", "hang", "slow")


class State(object):
    def __init__(self, mode, delay_ms, server_id):
        self.lock = threading.Lock()
        self.mode = mode
        self.delay_ms = delay_ms
        self.server_id = server_id
        self.requests = 0
        self.by_path = {}

    def count(self, path):
        with self.lock:
            self.requests += 1
            self.by_path[path] = self.by_path.get(path, 0) + 1
            return self.mode


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def _send(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _read_body(self):
            n = int(self.headers.get("content-length") or 0)
            return self.rfile.read(n) if n else b""

        def _control(self, url):
            if url.path == "/__stats":
                with state.lock:
                    self._send(200, {"requests": state.requests, "by_path": dict(state.by_path)})
                return True
            if url.path == "/__mode":
                m = parse_qs(url.query).get("m", [""])[0]
                if m not in MODES:
                    self._send(400, {"error": "unknown mode %r" % m})
                    return True
                with state.lock:
                    state.mode = m
                self._send(200, {"mode": m})
                return True
            return False

        def _handle(self):
            url = urlsplit(self.path)
            if self._control(url):
                return
            mode = state.count(url.path)
            sys.stderr.write("REQ %s %s %s\n" % (self.command, url.path, mode))
            sys.stderr.flush()
            if mode == "hang":
                self.close_connection = True
                deadline = time.monotonic() + 120
                self.connection.settimeout(0.5)
                while time.monotonic() < deadline:
                    try:
                        if not self.connection.recv(65536):
                            sys.stderr.write("GONE %s\n" % url.path)  # the client went away
                            sys.stderr.flush()
                            return
                    except socket.timeout:
                        continue
                    except OSError:
                        sys.stderr.write("GONE %s\n" % url.path)
                        sys.stderr.flush()
                        return
                return
            body = self._read_body()
            if mode == "reset":
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
                return
            if mode == "503":
                self._send(503, {"error": "unavailable", "server_id": state.server_id})
                return
            if mode == "slow":
                time.sleep(state.delay_ms / 1000.0)
            size = parse_qs(url.query).get("size")
            if size:
                data = util.pattern(int(size[0]))
                self.send_response(200)
                self.send_header("content-type", "application/octet-stream")
                self.send_header("x-server-id", state.server_id)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                return
            self._send(200, {"server_id": state.server_id, "method": self.command,
                             "path": url.path, "body_len": len(body),
                             "body_sha256": hashlib.sha256(body).hexdigest()})

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

        def do_HEAD(self):
            self._handle()

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the default 5 drops SYNs under a burst


def serve_grpc(args, server_id):
    from concurrent import futures

    import grpc
    import protoload

    interop_server = util.load_interop_server()
    echo_pb2 = util.load_echo()
    code = args.grpc_code

    class Echo(object):
        def Echo(self, req, context):
            sys.stderr.write("CALL %d\n" % code)
            sys.stderr.flush()
            if code:
                context.abort(interop_server.status_code(code), "fault backend says %d" % code)
            return echo_pb2.EchoResponse(message=req.message, payload=req.payload,
                                         server_id=server_id)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                         options=interop_server.SERVER_OPTIONS)
    port = interop_server.bind(server, args.host, args.port, None, None)
    server.add_generic_rpc_handlers((
        protoload.generic_handler(echo_pb2.DESCRIPTOR.services_by_name["Echo"], Echo()),))
    server.start()
    util.announce_ready(port)
    util.wait_for_termination()
    server.stop(grace=1.0).wait(5.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description="backend that fails on command")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--server-id", default="")
    ap.add_argument("--mode", choices=MODES, default="ok")
    ap.add_argument("--delay-ms", type=int, default=1000)
    ap.add_argument("--grpc", action="store_true")
    ap.add_argument("--grpc-code", type=int, default=0)
    args = ap.parse_args(argv)
    if args.grpc:
        serve_grpc(args, args.server_id or "fault-grpc")
        return 0
    state = State(args.mode, args.delay_ms, args.server_id or "fault")
    httpd = Server((args.host, args.port), make_handler(state))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    util.announce_ready(httpd.server_address[1])
    util.wait_for_termination()
    httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
