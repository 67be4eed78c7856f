#!/usr/bin/python3
"""A small HTTP(S) server for tests/unit/auth/test_fetch.c.

Binds 127.0.0.1 on a free port, prints "port N" on stdout, then serves:
  GET  /ok            "hello" (text/plain)
  GET  /jwks          the bytes of DIR/jwks.json (status from DIR/jwks.status if present)
  GET  /count?p=PATH  how many requests PATH got so far (text)
  GET  /hang          never answers (sleeps 30 s)
  GET  /big           2 MiB body with Content-Length
  GET  /redirect      302 to /ok
  POST /echo          JSON: the method, body, Content-Type and a few request headers
  POST /introspect    RFC 7662 endpoint: checks HTTP Basic credentials (form-decoded
                      id and secret, RFC 6749 2.3.1), the Content-Type and the form body;
                      the answer depends on the token (see introspect()).
With --cert/--key it speaks TLS. Stopped by the test with SIGTERM.
"""
import argparse
import base64
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {}
counts_lock = threading.Lock()


def count(path):
    with counts_lock:
        counts[path] = counts.get(path, 0) + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, ctype="application/json", extra=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def read_body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        count(url.path)
        if url.path == "/ok":
            self.send(200, "hello", "text/plain")
        elif url.path == "/jwks":
            status = 200
            sp = os.path.join(self.server.dir, "jwks.status")
            if os.path.exists(sp):
                with open(sp) as f:
                    status = int(f.read().strip())
            with open(os.path.join(self.server.dir, "jwks.json"), "rb") as f:
                self.send(status, f.read())
        elif url.path == "/count":
            p = urllib.parse.parse_qs(url.query).get("p", [""])[0]
            with counts_lock:
                n = counts.get(p, 0)
            self.send(200, str(n), "text/plain")
        elif url.path == "/hang":
            time.sleep(30)
            self.close_connection = True
        elif url.path == "/big":
            self.send(200, b"x" * (2 * 1024 * 1024), "application/octet-stream")
        elif url.path == "/redirect":
            self.send(302, "", "text/plain", {"Location": "/ok"})
        else:
            self.send(404, "{}")

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        count(url.path)
        body = self.read_body()
        if url.path == "/echo":
            self.send(200, json.dumps({
                "method": self.command,
                "body": body.decode("latin-1"),
                "content_type": self.headers.get("Content-Type"),
                "host": self.headers.get("Host"),
                "x_test": self.headers.get("X-Test"),
                "connection": self.headers.get("Connection"),
            }))
        elif url.path == "/introspect":
            self.introspect(body)
        else:
            self.send(404, "{}")

    def introspect(self, body):
        auth = self.headers.get("Authorization", "")
        ok = False
        if auth.startswith("Basic "):
            try:
                plain = base64.b64decode(auth[6:], validate=True).decode()
                cid, secret = plain.split(":", 1)
                ok = (urllib.parse.unquote_plus(cid) == self.server.client_id and
                      urllib.parse.unquote_plus(secret) == self.server.client_secret)
            except (ValueError, UnicodeDecodeError):
                ok = False
        if not ok:
            self.send(401, json.dumps({"error": "invalid_client"}),
                      extra={"WWW-Authenticate": 'Basic realm="introspect"'})
            return
        if self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
            self.send(400, json.dumps({"error": "invalid_request", "why": "content type"}))
            return
        try:
            form = urllib.parse.parse_qs(body.decode("ascii"), keep_blank_values=True,
                                         strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            self.send(400, json.dumps({"error": "invalid_request", "why": "form"}))
            return
        if list(form.get("token", [])) == [] or len(form["token"]) != 1:
            self.send(400, json.dumps({"error": "invalid_request", "why": "token"}))
            return
        token = form["token"][0]
        hint = form.get("token_type_hint", [None])[0]
        now = int(time.time())
        active = {"active": True, "sub": "user-" + token, "client_id": "app-1",
                  "username": "alice", "scope": "read  write admin:x", "aud": ["api", "web"],
                  "iss": "https://issuer.test", "token_type": "Bearer", "exp": now + 3600,
                  "iat": now, "nbf": now - 5, "hint": hint}
        if token.startswith("active"):
            self.send(200, json.dumps(active))
        elif token.startswith("slow"):
            time.sleep(1.5)
            self.send(200, json.dumps(active))
        elif token.startswith("echo:"):
            active["sub"] = token
            self.send(200, json.dumps(active))
        elif token.startswith("shortexp"):
            active["exp"] = now + 2
            self.send(200, json.dumps(active))
        elif token.startswith("expired"):
            active["exp"] = now - 10
            self.send(200, json.dumps(active))
        elif token.startswith("inactive"):
            self.send(200, json.dumps({"active": False}))
        elif token.startswith("err500"):
            self.send(500, json.dumps({"error": "server_error"}))
        elif token.startswith("badjson"):
            self.send(200, "{\"active\": true,")
        elif token.startswith("stractive"):
            self.send(200, json.dumps({"active": "true", "sub": "x"}))
        else:
            self.send(200, json.dumps({"active": False}))


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients that cancel (the tests do) close their connections early.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-id", default="client 1")
    ap.add_argument("--client-secret", default="s3cr3t:&+%")
    a = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    srv.dir = a.dir
    srv.client_id = a.client_id
    srv.client_secret = a.client_secret
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("port %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
