#!/usr/bin/python3
"""Run the gRPC interop test cases through portico (or directly).

Starts the interop server (interop/server.py) and a portico gateway in front
of it with a cleartext h2c listener and a TLS (h2, ALPN) listener, then runs
each interop test case as its own client process over each transport and
prints a pass/fail table per client. Exit status 0 only if every case passed.

Clients (--client): `python` (interop/client.py, grpcio = grpc C-core; the
default), `node` (interop/node/client.js, @grpc/grpc-js on Node's own HTTP/2
stack), `all` (both, one after the other), or any other implementation's
client with --client-cmd. For `node`, `npm ci` is run in interop/node first
when node_modules is missing or does not match package.json (bounded by
--npm-timeout); node and npm are taken from PORTICO_NODE / PORTICO_NPM or PATH.

  run_interop.py                 through the gateway (PORTICO_BIN or --portico-bin)
  run_interop.py --direct        client -> server, no gateway (validates the suite)
  run_interop.py --cases large_unary,ping_pong --transports h2c
  run_interop.py --client node   the @grpc/grpc-js client (also with --direct)
  run_interop.py --client all    python, then node
  run_interop.py --server HOST:PORT
                                 use an already running interop server (any
                                 implementation) instead of starting ours; TLS
                                 is then only used between client and gateway
  run_interop.py --client-cmd 'interop_client --server_host={host}
      --server_port={port} --test_case={case} --use_tls={use_tls}
      --use_test_ca=true --server_host_override={server_host_override}'
                                 run another implementation's client; {ca_file}
                                 is the PEM of the test CA

Gateway config: service `interop` (protocol grpc) with a route for
/grpc.testing.TestService only, so unimplemented_service is answered by the
gateway itself (no route -> grpc-status 12) and unimplemented_method by the
server.
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import client as interop_client  # noqa: E402

CASE_TIMEOUT_S = 120
NPM_TIMEOUT_S = 300
SERVER_NAME = "localhost"
NODE_DIR = os.path.join(HERE, "node")
CLIENTS = ("python", "node")
CLIENT_TITLES = {"python": "python grpcio", "node": "node @grpc/grpc-js", "cmd": "--client-cmd"}


def run_case(cmd, timeout):
    """Run one client process; return (passed, detail)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        return False, "timed out after %ds: %s" % (timeout, out.decode("utf-8", "replace")[-500:])
    text = out.decode("utf-8", "replace").strip()
    ms = (time.monotonic() - start) * 1000
    if proc.returncode == 0:
        return True, "%.0f ms" % ms
    lines = [l for l in text.splitlines() if l.startswith("FAIL")] or text.splitlines()[-5:]
    return False, "exit %d: %s" % (proc.returncode, " | ".join(lines)[:1000])


def _npm_summary(out):
    """The telling lines of npm's error output (error code, failed request,
    log file), else its last lines."""
    lines = [l.strip() for l in out.decode("utf-8", "replace").splitlines() if l.strip()]
    keep = [l for l in lines if l.startswith("npm error code") or "request to" in l
            or "complete log" in l or l.startswith("npm error 40")]
    return " | ".join(keep or lines[-8:])


def _npm_registry(npm):
    try:
        out = subprocess.run([npm, "config", "get", "registry"], cwd=NODE_DIR, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20).stdout
        return out.decode("utf-8", "replace").strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def _node_deps_current():
    """True when interop/node/node_modules holds the exact versions that
    package.json pins."""
    with open(os.path.join(NODE_DIR, "package.json")) as f:
        wanted = json.load(f).get("dependencies", {})
    for name, version in wanted.items():
        installed = os.path.join(NODE_DIR, "node_modules", *name.split("/"), "package.json")
        try:
            with open(installed) as f:
                if json.load(f).get("version") != version:
                    return False
        except (OSError, ValueError):
            return False
    return True


def prepare_node(timeout):
    """Find node and npm and make sure interop/node/node_modules is installed
    (`npm ci` from package-lock.json when it is missing or stale). Returns
    the node executable; raises RuntimeError with a readable reason."""
    node = os.environ.get("PORTICO_NODE") or shutil.which("node")
    if not node:
        raise RuntimeError("node not found (install Node.js >= 18 or set PORTICO_NODE)")
    if _node_deps_current():
        return node
    npm = os.environ.get("PORTICO_NPM") or shutil.which("npm")
    if not npm:
        raise RuntimeError("interop/node/node_modules is missing or out of date and npm was not found "
                           "(install npm or set PORTICO_NPM)")
    cmd = [npm, "ci", "--no-audit", "--no-fund"]
    print("interop: %s in %s (timeout %ds)" % (" ".join(cmd), NODE_DIR, timeout), flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=NODE_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        raise RuntimeError("npm ci did not finish within %ds: is the npm registry (%s) reachable?%s"
                           % (timeout, _npm_registry(npm), (" " + _npm_summary(out)).rstrip()))
    if proc.returncode != 0:
        text = out.decode("utf-8", "replace")
        network = any(k in text for k in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT",
                                          "ECONNRESET", "ENETUNREACH", "EHOSTUNREACH",
                                          "network", "CERT_", "UNABLE_TO_"))
        reason = ("npm registry unreachable (network error)" if network else "npm ci failed")
        raise RuntimeError("%s: npm ci exited %d in %s; registry %s: %s"
                           % (reason, proc.returncode, NODE_DIR, _npm_registry(npm), _npm_summary(out)))
    if not _node_deps_current():
        raise RuntimeError("npm ci succeeded but node_modules does not match package.json")
    print("interop: npm ci done in %.1f s" % (time.monotonic() - start), flush=True)
    return node


def client_command(args, client, case, host, port, tls, ca_file):
    if client == "cmd":
        fields = {"host": host, "port": port, "case": case, "use_tls": "true" if tls else "false",
                  "ca_file": ca_file or "", "server_host_override": SERVER_NAME if tls else ""}
        return [a.format(**fields) for a in shlex.split(args.client_cmd)]
    if client == "node":
        cmd = [args.node, os.path.join(NODE_DIR, "client.js")]
    else:
        cmd = [harness.PYTHON, os.path.join(HERE, "client.py")]
    cmd += ["--server_host=%s" % host, "--server_port=%d" % port, "--test_case=%s" % case]
    if tls:
        cmd += ["--use_tls=true", "--ca_file=%s" % ca_file, "--server_host_override=%s" % SERVER_NAME]
    return cmd


def gateway_config(server_host, server_port, certs):
    return {
        "listeners": [
            {"name": "h2c", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]},
            {"name": "tls", "address": "127.0.0.1:0", "protocols": ["http1", "h2"],
             "tls": {"cert_file": certs.cert, "key_file": certs.key}},
        ],
        "services": [{"name": "interop", "protocol": "grpc",
                      "instances": [{"host": server_host, "port": server_port}]}],
        "routes": [{"name": "interop", "path_prefix": "/grpc.testing.TestService", "service": "interop"}],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description="gRPC interop cases through portico")
    ap.add_argument("--direct", action="store_true", default=harness.DIRECT,
                    help="no gateway: the client talks to the server (default from PORTICO_DIRECT)")
    ap.add_argument("--portico-bin", help="gateway binary (default PORTICO_BIN or build/portico)")
    ap.add_argument("--cases", default="all", help="comma-separated case names, or all")
    ap.add_argument("--transports", default="h2c,tls", help="comma-separated: h2c, tls")
    ap.add_argument("--server", help="HOST:PORT of an interop server already running (cleartext)")
    ap.add_argument("--client", choices=CLIENTS + ("all",),
                    help="which interop client to run: python (default), node, or all")
    ap.add_argument("--client-cmd", help="client command template (see module doc)")
    ap.add_argument("--case-timeout", type=int, default=CASE_TIMEOUT_S)
    ap.add_argument("--npm-timeout", type=int, default=NPM_TIMEOUT_S,
                    help="seconds allowed for `npm ci` in interop/node (default %d)" % NPM_TIMEOUT_S)
    args = ap.parse_args(argv)

    cases = interop_client.CASES if args.cases == "all" else [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in interop_client.CASES]
    if unknown:
        ap.error("unknown case(s): %s" % ", ".join(unknown))
    transports = [t for t in args.transports.split(",") if t]
    if any(t not in ("h2c", "tls") for t in transports):
        ap.error("transports are h2c and tls")
    if args.direct and args.server and "tls" in transports:
        ap.error("--direct --server only supports --transports h2c")
    if args.client_cmd:
        if args.client:
            ap.error("--client and --client-cmd are exclusive")
        clients = ["cmd"]
    else:
        clients = list(CLIENTS) if args.client == "all" else [args.client or "python"]

    # Clients that cannot run: {client: reason}. Checked before any process
    # is started so that a missing npm registry is reported up front.
    unavailable = {}
    if "node" in clients:
        try:
            args.node = prepare_node(args.npm_timeout)
        except RuntimeError as exc:
            unavailable["node"] = str(exc)
            print("interop: node client unavailable: %s" % exc, flush=True)
            if clients == ["node"]:
                print("interop: 0 passed, %d failed" % (len(cases) * len(transports)))
                return 1

    certs = harness.test_certs()
    results = {}
    elapsed = {}
    servers = []
    try:
        if args.server:
            s_host, s_port = harness.split_address(args.server)
        else:
            srv = harness.InteropServer()
            servers.append(srv.start())
            s_host, s_port = srv.host, srv.port
        endpoints = {}
        gw = None
        if args.direct:
            endpoints["h2c"] = (s_host, s_port)
            if "tls" in transports:
                tls_srv = harness.InteropServer(tls=certs)
                servers.append(tls_srv.start())
                endpoints["tls"] = (tls_srv.host, tls_srv.port)
        else:
            gw = harness.Portico(gateway_config(s_host, s_port, certs), binary=args.portico_bin)
            servers.append(gw)
            gw.start()
            endpoints["h2c"] = ("127.0.0.1", gw.port("h2c"))
            endpoints["tls"] = ("127.0.0.1", gw.port("tls"))
        for client in clients:
            client_start = time.monotonic()
            for t in transports:
                host, port = endpoints[t]
                for case in cases:
                    if client in unavailable:
                        results[(client, case, t)] = (False, "node client unavailable (see above)")
                        continue
                    cmd = client_command(args, client, case, host, port, t == "tls", certs.ca_cert)
                    results[(client, case, t)] = run_case(cmd, args.case_timeout)
            elapsed[client] = time.monotonic() - client_start
        if gw is not None and not gw.running():
            for key in results:
                results[key] = (False, "gateway exited with %s during the run" % gw.exit_code)
    finally:
        for s in reversed(servers):
            if isinstance(s, harness.Portico):
                s.__exit__(None, None, None)
            else:
                s.stop()

    mode = "direct" if args.direct else "through portico"
    width = max(len(c) for c in cases)
    for client in clients:
        print("\ngRPC interop (%s, client: %s)" % (mode, CLIENT_TITLES[client]))
        print("%-*s  %s" % (width, "case", "  ".join("%-6s" % t for t in transports)))
        for case in cases:
            print("%-*s  %s" % (width, case, "  ".join(
                "%-6s" % ("PASS" if results[(client, case, t)][0] else "FAIL") for t in transports)))
        mine = [v for k, v in results.items() if k[0] == client]
        print("%s: %d passed, %d failed, %.1f s" % (
            CLIENT_TITLES[client], sum(1 for v in mine if v[0]), sum(1 for v in mine if not v[0]),
            elapsed.get(client, 0.0)))
    failures = [(k, v[1]) for k, v in results.items() if not v[0]]
    for (client, case, t), detail in failures:
        print("FAIL %s [%s%s]: %s" % (case, t, "" if len(clients) == 1 else ", " + client, detail))
    passed = len(results) - len(failures)
    print("interop: %d passed, %d failed" % (passed, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
