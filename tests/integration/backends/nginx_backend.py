#!/usr/bin/python3
"""nginx (the Debian package) as an HTTP/2 cleartext (h2c, prior knowledge)
backend for the integration tests, run in the foreground as one process with
its configuration, pid file, logs and temporary files in the working
directory.

Locations:
  /info[...]     200 text/plain "<server_protocol> <method> <request_uri>
                 x-test=<X-Test header>\\n" (shows what nginx received)
  /files/<name>  static files from ./www/files: "big.bin" (--big-mib MiB of
                 util.pattern) and "small.txt" ("hello from nginx\\n")
  /dav/<name>    PUT stores the request body as ./www/dav/<name> (WebDAV
                 module), GET reads it back, DELETE removes it
  anything else  404

Usage: nginx_backend.py [--host 127.0.0.1|::1] [--port 0] [--big-mib N]
                        [--server-id ID]
Prints "READY port=<port>" on stdout once nginx accepts connections; SIGTERM
stops nginx (by its PID) and exits.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_util as util  # noqa: E402

NGINX = "/usr/sbin/nginx"

CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    default_type application/octet-stream;
    http2_max_concurrent_streams 256;
    keepalive_requests 100000;
    server {{
        listen {listen} http2;
        server_name _;
        client_max_body_size 0;
        location /info {{
            default_type text/plain;
            return 200 "$server_protocol $request_method $request_uri x-test=$http_x_test\\n";
        }}
        location /files/ {{
            root {prefix}/www;
        }}
        location /dav/ {{
            root {prefix}/www;
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
        location / {{
            return 404;
        }}
    }}
}}
"""


def free_port(host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def can_connect(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect((host, port))
            return True
    except OSError:
        return False


def write_files(prefix, big_mib):
    files = os.path.join(prefix, "www", "files")
    os.makedirs(files, exist_ok=True)
    os.makedirs(os.path.join(prefix, "www", "dav"), exist_ok=True)
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(prefix, "tmp", d), exist_ok=True)
    with open(os.path.join(files, "small.txt"), "w") as f:
        f.write("hello from nginx\n")
    with open(os.path.join(files, "big.bin"), "wb") as f:
        block = 1 << 20
        for i in range(big_mib):
            f.write(util.pattern(block, i * block))


def start_nginx(prefix, host, port):
    listen = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(CONF.format(prefix=prefix, listen=listen))
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
    ap = argparse.ArgumentParser(description="nginx h2c test backend")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--server-id", default="")
    ap.add_argument("--big-mib", type=int, default=8)
    args = ap.parse_args(argv)
    prefix = os.getcwd()
    write_files(prefix, args.big_mib)
    proc = None
    for _ in range(5):
        port = args.port or free_port(args.host)
        proc = start_nginx(prefix, args.host, port)
        if proc is not None or args.port:
            break
    if proc is None:
        sys.stderr.write("nginx_backend: nginx did not start\n")
        try:
            with open(os.path.join(prefix, "error.log")) as f:
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
