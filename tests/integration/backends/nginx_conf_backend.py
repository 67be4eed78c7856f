#!/usr/bin/python3
"""nginx (the Debian package) with a configuration written by the test: the
`http {}` body (server blocks, upstreams, ...) is given on the command line;
this script adds the common part (pid, error log, temporary paths, an
access log with connection numbers), picks a free port, starts nginx in the
foreground as one process and prints "READY port=N" once it accepts TCP
connections. SIGTERM stops nginx (by its PID) and exits.

Placeholders in the text (replaced, so nginx's own braces need no escaping):
  @LISTEN@  the listen address "127.0.0.1:PORT" (or "[::1]:PORT")
  @PORT@    the port
  @PREFIX@  the working directory (nginx prefix: logs, www/, tmp/)
  @CERT@ @KEY@        --tls-cert / --tls-key (server certificate and key)
  @CLIENT_CA@         --client-ca (CA for ssl_client_certificate)

Access log (@PREFIX@/access.log, format "conn"), one line per request:
  <connection serial> <request number on that connection> <client port>
  <server_protocol> <status> "<request_uri>" ssl=<protocol or ->
  sni=<ssl_server_name or -> verify=<ssl_client_verify or ->
Files: www/small.txt ("hello from nginx\\n").

Usage: nginx_conf_backend.py --http-conf TEXT [--host 127.0.0.1|::1]
        [--port 0] [--server-id ID] [--tls-cert F --tls-key F] [--client-ca F]
"""

import argparse
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_util as util  # noqa: E402
from nginx_backend import NGINX, can_connect, free_port  # noqa: E402

PRELUDE = """
daemon off;
master_process off;
worker_processes 1;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log info;
events { worker_connections 4096; }
http {
    log_format conn '$connection $connection_requests $remote_port $server_protocol $status '
                    '"$request_uri" ssl=$ssl_protocol sni=$ssl_server_name verify=$ssl_client_verify';
    access_log @PREFIX@/access.log conn;
    client_body_temp_path @PREFIX@/tmp/body;
    proxy_temp_path @PREFIX@/tmp/proxy;
    fastcgi_temp_path @PREFIX@/tmp/fastcgi;
    uwsgi_temp_path @PREFIX@/tmp/uwsgi;
    scgi_temp_path @PREFIX@/tmp/scgi;
    default_type application/octet-stream;
@HTTP@
}
"""


def render(text, prefix, host, port, args):
    listen = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    out = PRELUDE.replace("@HTTP@", text)
    for key, value in (("@LISTEN@", listen), ("@PORT@", str(port)), ("@PREFIX@", prefix),
                       ("@CERT@", args.tls_cert or ""), ("@KEY@", args.tls_key or ""),
                       ("@CLIENT_CA@", args.client_ca or "")):
        out = out.replace(key, value)
    return out


def prepare(prefix):
    os.makedirs(os.path.join(prefix, "www"), exist_ok=True)
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(prefix, "tmp", d), exist_ok=True)
    with open(os.path.join(prefix, "www", "small.txt"), "w") as f:
        f.write("hello from nginx\n")


def start(prefix, host, port, args):
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(render(args.http_conf, prefix, host, port, args))
    log = open(os.path.join(prefix, "nginx.stderr"), "ab")
    try:
        proc = subprocess.Popen([NGINX, "-p", prefix, "-c", conf], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log)
    finally:
        log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        if can_connect(host, port):
            return proc
        time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description="nginx with a test-written configuration")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--server-id", default="")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca")
    ap.add_argument("--http-conf", required=True)
    args = ap.parse_args(argv)
    prefix = os.getcwd()
    prepare(prefix)
    proc = None
    for _ in range(5):
        port = args.port or free_port(args.host)
        proc = start(prefix, args.host, port, args)
        if proc is not None or args.port:
            break
    if proc is None:
        sys.stderr.write("nginx_conf_backend: nginx did not start\n")
        for name in ("nginx.stderr", "error.log"):
            try:
                with open(os.path.join(prefix, name)) as f:
                    sys.stderr.write(f.read()[-4000:])
            except OSError:
                pass
        return 1
    util.announce_ready(port)
    util.wait_for_termination()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
