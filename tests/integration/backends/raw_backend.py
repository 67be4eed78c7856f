#!/usr/bin/python3
"""Misbehaving HTTP/1.1 backend for the integration tests: answers with
exact bytes that a well-behaved server would not send.

It reads one request head (the body, if any, is not read) and then, by path:
  /truncate-length?send=N&total=M[&ctype=T][&hold_ms=H]
                 "200" with Content-Length M (Content-Type T, default
                 application/octet-stream), sends N (< M) bytes of
                 util.pattern, waits H ms (default 0), then closes the
                 connection.
  /truncate-chunked?chunks=K&size=S
                 "200" chunked, K chunks of S bytes, then closes without the
                 last chunk.
  /close-now     closes the connection without sending anything.
  /hang          sends nothing and keeps the connection open (up to 10 min).
  /head-then-hang
                 sends a "200" head with Content-Length 1000 and 10 bytes,
                 then keeps the connection open (up to 10 min).
  anything else  "200" with Content-Length and body "ok\\n", then closes.
Each request is logged on stderr as "raw_backend: <method> <target>".

Usage: raw_backend.py [--host 127.0.0.1|::1] [--port 0]
Prints "READY port=<port>" on stdout once serving; SIGTERM stops it.
"""

import argparse
import os
import socket
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_util as util  # noqa: E402

HOLD_S = 600


def _read_head(conn):
    buf = b""
    deadline = time.monotonic() + 60
    while b"\r\n\r\n" not in buf:
        if len(buf) > 1 << 20 or time.monotonic() > deadline:
            return None
        conn.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            d = conn.recv(65536)
        except OSError:
            return None
        if not d:
            return None
        buf += d
    return buf.split(b"\r\n\r\n", 1)[0]


def _hold(conn):
    """Keep the connection open until the peer closes it or HOLD_S pass."""
    deadline = time.monotonic() + HOLD_S
    conn.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            if not conn.recv(65536):
                return
        except socket.timeout:
            continue
        except OSError:
            return


def handle(conn):
    try:
        head = _read_head(conn)
        if head is None:
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        target = parts[1] if len(parts) > 1 else "/"
        sys.stderr.write("raw_backend: %s %s\n" % (parts[0], target))
        sys.stderr.flush()
        url = urlsplit(target)
        q = parse_qs(url.query)

        def qint(name, default):
            try:
                return int(q.get(name, [default])[0])
            except ValueError:
                return default

        path = url.path
        if path == "/truncate-length":
            total = qint("total", 100000)
            send = min(qint("send", 1000), max(0, total - 1))
            ctype = q.get("ctype", ["application/octet-stream"])[0].encode("latin-1")
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                         b"Content-Length: %d\r\n\r\n" % (ctype, total) + util.pattern(send))
            hold_ms = qint("hold_ms", 0)
            if hold_ms > 0:
                time.sleep(min(hold_ms, HOLD_S * 1000) / 1000.0)
        elif path == "/truncate-chunked":
            chunks, size = qint("chunks", 2), qint("size", 1000)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(chunks):
                conn.sendall(b"%x\r\n%s\r\n" % (size, util.pattern(size, i * size)))
        elif path == "/close-now":
            pass
        elif path == "/hang":
            _hold(conn)
        elif path == "/head-then-hang":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + util.pattern(10))
            _hold(conn)
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
                         b"Connection: close\r\n\r\nok\n")
    except OSError:
        pass
    finally:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="misbehaving HTTP/1.1 test backend")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--server-id", default="")
    args = ap.parse_args(argv)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(128)
    srv.settimeout(0.5)

    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    util.announce_ready(srv.getsockname()[1])
    util.wait_for_termination()
    stop.set()
    srv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
