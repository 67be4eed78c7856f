#!/usr/bin/python3
"""Threaded HTTP/1.1 backend for the integration tests (keep-alive aware).

Endpoints (any method unless noted; the request body is always read in full,
Content-Length or chunked, so the connection stays usable):
  /echo[/...]            200 JSON: method, path, query, headers (lower-cased
                         name -> value, repeated names joined with ", "),
                         header_list ([name, value] as received), body_length,
                         body_sha256, server_id, peer, connection_requests (the
                         number of requests served on this TCP connection).
  /status/<code>         that status, small text body (none for 1xx/204/304).
  /slow?ms=N             200 after N milliseconds.
  /chunked?n=N&size=S&delay_ms=D
                         Transfer-Encoding: chunked, N chunks of S bytes of
                         util.pattern (offset = bytes sent so far), D ms apart
                         (default 10). X-Body-Sha256 header (SHA-256 of all).
  /bytes?n=N             N bytes of util.pattern with Content-Length and
                         X-Body-Sha256.
  /headers?set=name:value[&set=...]
                         200 with those response headers added.
  /health                the health endpoint: 200 "ok" in health mode ok,
                         else as the mode says (below).
  /control?mode=M[&health=H][&ms=N]
                         run-time control (health checks and outlier tests):
                         sets the traffic mode M (every path except /control;
                         also /health unless H is given) and the health mode H
                         (only /health; "" or "same" follows M). Modes:
                           ok     normal behaviour (the default);
                           fail   503 "failing" for every request;
                           hang   no answer for N ms (default 60000), then
                                  the connection is closed;
                           reset  the connection is reset (RST) at once;
                           slow   normal, after N ms.
                         /control without parameters changes nothing. Both
                         answer 200 JSON {mode, health, ms, requests,
                         health_requests}: the requests served (other than
                         /control and /health) and /health requests so far.
  anything else          404 JSON {"error": "not found", "path": ...}.
HEAD gets the same headers and no body.

Usage: http_backend.py [--host 127.0.0.1|::1] [--port 0] [--server-id ID]
                       [--tls-cert F --tls-key F [--tls-client-ca F]]
With --tls-client-ca, TLS clients must present a certificate signed by that CA
(the handshake fails otherwise).
Prints "READY port=<port>" on stdout once serving; SIGTERM stops it.
"""

import argparse
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_util as util  # noqa: E402

MAX_BODY = 1 << 30
MAX_SLOW_MS = 600000
MODES = ("ok", "fail", "hang", "reset", "slow")


class Control(object):
    """Run-time behaviour set through /control (shared by all connections)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.mode = "ok"
        self.health = ""  # "" = same as mode
        self.ms = 0
        self.requests = 0
        self.health_requests = 0

    def snapshot(self):
        with self.lock:
            return {"mode": self.mode, "health": self.health or self.mode, "ms": self.ms,
                    "requests": self.requests, "health_requests": self.health_requests}


CONTROL = Control()


class BadRequest(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "portico-test-backend/1"
    server_id = ""
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 120
    # Headers and body go out in separate writes: with Nagle on, the body
    # waits for the peer's delayed ACK of the headers (~40 ms per response).
    disable_nagle_algorithm = True

    # Keep the per-connection count on the handler: one handler per connection.
    def setup(self):
        super().setup()
        self.connection_requests = 0

    def log_message(self, fmt, *args):
        sys.stderr.write("http_backend: %s - %s\n" % (self.address_string(), fmt % args))

    # -- body reading --------------------------------------------------------

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if te:
            if te.strip().lower() != "chunked":
                raise BadRequest("unsupported transfer-encoding %r" % te)
            if self.headers.get("Content-Length") is not None:
                raise BadRequest("both Content-Length and Transfer-Encoding")
            return self._read_chunked()
        cl = self.headers.get_all("Content-Length") or []
        if not cl:
            return b""
        if len(set(v.strip() for v in cl)) != 1:
            raise BadRequest("conflicting Content-Length")
        try:
            n = int(cl[0])
        except ValueError:
            raise BadRequest("bad Content-Length")
        if n < 0 or n > MAX_BODY:
            raise BadRequest("bad Content-Length")
        return self._read_exact(n)

    def _read_exact(self, n):
        chunks = []
        while n > 0:
            b = self.rfile.read(min(n, 1 << 20))
            if not b:
                raise BadRequest("body truncated")
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def _read_chunked(self):
        chunks = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            if not line.endswith(b"\n"):
                raise BadRequest("bad chunk size line")
            size_s = line.split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                raise BadRequest("bad chunk size")
            if size == 0:
                # Trailer section, ends with an empty line.
                for _ in range(1000):
                    t = self.rfile.readline(65537)
                    if t in (b"\r\n", b"\n", b""):
                        break
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise BadRequest("body too large")
            chunks.append(self._read_exact(size))
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BadRequest("bad chunk terminator")

    # -- responses -----------------------------------------------------------

    def _send(self, code, body=b"", ctype="text/plain", headers=()):
        self.send_response(code)
        no_body = code < 200 or code in (204, 304)
        if not no_body:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if not no_body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code, obj, headers=()):
        self._send(code, json.dumps(obj, sort_keys=True).encode() + b"\n", "application/json", headers)

    def _handle(self):
        self.connection_requests += 1
        try:
            body = self._read_body()
        except BadRequest as exc:
            self.close_connection = True
            self._send(400, str(exc).encode(), headers=[("Connection", "close")])
            return
        url = urlsplit(self.path)
        path = url.path
        q = parse_qs(url.query, keep_blank_values=True)

        def qint(name, default, lo=0, hi=1 << 40):
            try:
                v = int(q.get(name, [default])[0])
            except ValueError:
                v = default
            return max(lo, min(hi, v))

        if path == "/control":
            self._control(q, qint)
            return
        with CONTROL.lock:
            if path == "/health":
                CONTROL.health_requests += 1
                mode = CONTROL.health or CONTROL.mode
            else:
                CONTROL.requests += 1
                mode = CONTROL.mode
            ms = CONTROL.ms
        if mode != "ok" and self._apply_mode(mode, ms):
            return
        if path == "/health":
            self._send(200, b"ok\n")
        elif path == "/echo" or path.startswith("/echo/"):
            headers = {}
            for k, v in self.headers.items():
                lk = k.lower()
                headers[lk] = headers[lk] + ", " + v if lk in headers else v
            self._json(200, {
                "method": self.command,
                "path": path,
                "raw_path": self.path,
                "query": url.query,
                "headers": headers,
                "header_list": [[k, v] for k, v in self.headers.items()],
                "body_length": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "server_id": self.server_id,
                "peer": "%s:%d" % self.client_address[:2],
                "connection_requests": self.connection_requests,
                "http_version": self.request_version,
            })
        elif path.startswith("/status/"):
            try:
                code = int(path[len("/status/"):])
            except ValueError:
                code = 400
            if code < 100 or code > 999:
                code = 400
            self._send(code, ("status %d\n" % code).encode())
        elif path == "/slow":
            ms = qint("ms", 1000, 0, MAX_SLOW_MS)
            time.sleep(ms / 1000.0)
            self._json(200, {"slept_ms": ms, "server_id": self.server_id})
        elif path == "/chunked":
            self._chunked(qint("n", 10, 0, 100000), qint("size", 1024, 0, 16 << 20),
                          qint("delay_ms", 10, 0, 60000))
        elif path == "/bytes":
            n = qint("n", 1024, 0, MAX_BODY)
            data = util.pattern(n)
            self._send(200, data, "application/octet-stream",
                       [("X-Body-Sha256", hashlib.sha256(data).hexdigest())])
        elif path == "/headers":
            extra = []
            for item in q.get("set", []):
                name, sep, value = item.partition(":")
                if sep and name:
                    extra.append((name.strip(), value.strip()))
            self._json(200, {"set": extra}, extra)
        else:
            self._json(404, {"error": "not found", "path": path})

    def _control(self, q, qint):
        mode = q.get("mode", [None])[0]
        health = q.get("health", [None])[0]
        if mode is not None and mode not in MODES:
            self._json(400, {"error": "mode is one of %s" % ", ".join(MODES)})
            return
        if health is not None and health not in MODES + ("", "same"):
            self._json(400, {"error": "health is one of %s or same" % ", ".join(MODES)})
            return
        with CONTROL.lock:
            if mode is not None:
                CONTROL.mode = mode
            if health is not None:
                CONTROL.health = "" if health == "same" else health
            if "ms" in q:
                CONTROL.ms = qint("ms", 0, 0, MAX_SLOW_MS)
        self._json(200, CONTROL.snapshot())

    def _apply_mode(self, mode, ms):
        """Behave as `mode` says; True when the request is answered (or
        dropped) and nothing else may be sent."""
        if mode == "fail":
            self._send(503, b"failing\n")
            return True
        if mode == "slow":
            time.sleep(ms / 1000.0)
            return False
        self.close_connection = True
        if mode == "hang":
            time.sleep((ms or 60000) / 1000.0)
        elif mode == "reset":
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            except OSError:
                pass
        try:
            self.connection.close()
        except OSError:
            pass
        return True

    def _chunked(self, n, size, delay_ms):
        digest = hashlib.sha256()
        for i in range(n):
            digest.update(util.pattern(size, i * size))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Body-Sha256", digest.hexdigest())
        self.end_headers()
        if self.command == "HEAD":
            return
        for i in range(n):
            if i and delay_ms:
                time.sleep(delay_ms / 1000.0)
            if size:
                chunk = util.pattern(size, i * size)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, socket.timeout, ssl.SSLError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    tls_context = None

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, on the connection's own thread.
        if self.tls_context is not None:
            try:
                request = self.tls_context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                sys.stderr.write("http_backend: TLS handshake failed: %s\n" % exc)
                return
        super().finish_request(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description="HTTP/1.1 test backend")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--server-id", default="")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-client-ca")
    args = ap.parse_args(argv)

    if ":" in args.host:
        Server.address_family = socket.AF_INET6
    httpd = Server((args.host, args.port), Handler)
    port = httpd.server_address[1]
    Handler.server_id = args.server_id or "http-backend-%d" % port
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        ctx.set_alpn_protocols(["http/1.1"])
        if args.tls_client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.tls_client_ca)
        httpd.tls_context = ctx
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    util.announce_ready(port)
    util.wait_for_termination()
    httpd.shutdown()
    httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
