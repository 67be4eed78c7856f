#!/usr/bin/env python3
"""What authentication costs: portico's proxy throughput and latency with no
auth, with an API key, with JWT RS256 and ES256 (token cache on and off), in
one run; and JWT verifications per second per core (bench_jwt_verify).

Every request carries a valid credential, so the cost measured is the
check, not rejections. portico runs one worker on CPU 0; bench_backend
(bench/backend.c) and h2load share CPU 1. Each target's portico has two
routes to the same backend: /auth with the target's `auth` and /plain
without, and h2load sends the same request (same credential header) to
both in turn. The plain route is the baseline: a credential's bytes cost
the codec something whether or not anything checks them (nghttp2 never
indexes `authorization` in HPACK, so a 600-byte bearer token is sent and
Huffman-decoded whole on every request), and that is not the check's cost.
For each target:

  throughput   requests per second, closed loop (h2c), and requests per
               second of portico's own CPU time, /auth against /plain
  p99          p99 latency of /auth at a fixed rate

Issue 7's target: JWT with the cache on costs <= 5% throughput.

Keys and tokens are made here with the openssl CLI (RSA 2048, EC P-256);
the JWT signatures are computed by openssl, so this script needs no Python
JWT library.

Usage (after building build/portico and build/bench/bench_backend):
  /usr/bin/python3 bench/auth.py --portico build/portico
Writes the section "Authentication" of bench/RESULTS.md (bench.py keeps
such sections) and raw outputs under bench/out/<time>-auth/. Every process
is started here and stopped here, by PID.
"""
import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (Proc, wait_port, port_free, parse_h2load, isolate)

SECTION = "<!-- section: auth (written by bench/auth.py) -->"
TARGETS = ["none", "api_key", "jwt-rs256", "jwt-rs256-nocache", "jwt-es256", "jwt-es256-nocache"]
API_KEY = "pk_bench_0123456789abcdef0123456789abcdef"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def der_ecdsa_to_jose(der, size):
    """An ECDSA signature as openssl writes it (DER SEQUENCE of two
    INTEGERs) to JOSE's fixed-length r||s."""
    def read_int(buf, i):
        if buf[i] != 0x02:
            raise ValueError("not an INTEGER")
        n = buf[i + 1]
        return int.from_bytes(buf[i + 2:i + 2 + n], "big"), i + 2 + n
    if der[0] != 0x30:
        raise ValueError("not a SEQUENCE")
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    r, i = read_int(der, i)
    s, _ = read_int(der, i)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def make_keys(d):
    rs = os.path.join(d, "rs.pem")
    es = os.path.join(d, "es.pem")
    bench.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
               "-out", rs], 60)
    bench.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-out", es], 60)
    for k in (rs, es):
        bench.run(["openssl", "pkey", "-in", k, "-pubout", "-out", k.replace(".pem", ".pub.pem")], 60)
    return rs, es


def sign_token(key, alg, d):
    header = {"alg": alg, "typ": "JWT", "kid": alg.lower()}
    now = int(time.time())
    claims = {"iss": "bench", "aud": "api", "sub": "user-1", "scope": "read write",
              "iat": now, "exp": now + 6 * 3600}
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":")).encode()))
    src = os.path.join(d, "signing-input")
    with open(src, "w") as f:
        f.write(signing_input)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, src], capture_output=True,
                         check=True, timeout=60).stdout
    if alg == "ES256":
        sig = der_ecdsa_to_jose(sig, 32)
    return signing_input + "." + b64url(sig)


def portico_conf(port, be_port, target, keys):
    auth = ""
    route_auth = ""
    if target == "api_key":
        digest = hashlib.sha256(API_KEY.encode()).hexdigest()
        auth = (f"api_keys:\n  - {{name: bench, client_id: bench, key_hash: \"{digest}\", "
                f"key_prefix: \"{API_KEY[:8]}\"}}\n")
        route_auth = ", auth: {methods: [api_key]}"
    elif target.startswith("jwt-"):
        alg = "RS256" if "rs256" in target else "ES256"
        pub = keys["rs_pub"] if alg == "RS256" else keys["es_pub"]
        cache = "false" if target.endswith("nocache") else "true"
        auth = (f"auth:\n  jwt_issuers:\n    - {{name: bench, issuer: bench, audiences: [api], "
                f"algorithms: [{alg}], public_key_file: \"{pub}\", cache: {cache}}}\n")
        route_auth = ", auth: {methods: [jwt]}"
    return f"""# portico behind bench/auth.py: target {target}
workers: 1
listeners:
  - {{name: main, address: "127.0.0.1:{port}", protocols: [http1, h2c]}}
services:
  - {{name: be, instances: [{{host: 127.0.0.1, port: {be_port}}}]}}
routes:
  - {{name: plain, path_prefix: /plain, service: be}}
  - {{name: auth, path_prefix: /auth, service: be{route_auth}}}
access_log: {{enabled: false}}
admin: {{address: "off"}}
{auth}"""


def credential(target, tokens):
    if target == "api_key":
        return ["-H", "x-api-key: " + API_KEY]
    if target.startswith("jwt-"):
        tok = tokens["RS256"] if "rs256" in target else tokens["ES256"]
        return ["-H", "authorization: Bearer " + tok]
    return []


def closed_loop(a, proxy, cred, url, d, name):
    """h2load closed loop against url: req/s and requests per second of
    portico's CPU time."""
    cmd = (["taskset", "-c", str(a.client_cpu), "h2load", "-n", str(a.requests), "-c",
            str(a.conns), "-m", str(a.streams)] + cred + [url])
    cpu0 = bench.cpu_ticks(proxy.pids())
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, preexec_fn=bench.isolate)
    cpu = (bench.cpu_ticks(proxy.pids()) - cpu0) / bench.CLK_TCK
    with open(os.path.join(d, name + ".out"), "w") as f:
        f.write(p.stdout)
    r = bench.parse_h2load(p.stdout)
    return {"rps": r["rps"], "per_cpu_s": r["requests"] / cpu if cpu > 0 else float("nan"),
            "requests": r["requests"], "non200": r["non2xx"] + r["errors"]}


def run_target(a, target, ports, keys, tokens, out, rep):
    be_h1, be_h2, proxy_port = ports
    d = os.path.join(out, target, str(rep))
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "portico.yaml")
    with open(conf, "w") as f:
        f.write(portico_conf(proxy_port, be_h1, target, keys))
    proxy = bench.Proc("portico", [a.portico, "--config", conf], a.proxy_cpu, d)
    try:
        bench.wait_port(proxy_port, proxy)
        base = f"http://127.0.0.1:{proxy_port}"
        cred = credential(target, tokens)
        # The credential must be accepted, or the run measures rejections.
        for path in ("/auth", "/plain"):
            warm = bench.parse_h2load(bench.run(["h2load", "-n", "2000", "-c", "4", "-m", "8"] +
                                                cred + [base + path], 60).stdout)
            if warm["non2xx"] or warm["errors"]:
                raise RuntimeError(f"auth bench: {target}: {path} answered non-2xx "
                                   f"(see {d}/stderr.log)")
        # Plain and auth in turn, the order alternating between repetitions.
        order = ["plain", "auth"] if rep % 2 == 0 else ["auth", "plain"]
        res = {}
        for name in order:
            res[name] = closed_loop(a, proxy, cred, f"{base}/{name}", d, name)
        log = os.path.join(d, "rate.log")
        cmd = (["taskset", "-c", str(a.client_cpu), "h2load", "-c", str(a.conns), "-m", "16",
                "--rps", str(max(1, a.rate // a.conns)), "-D", str(a.rate_s), "--log-file", log] +
               cred + [base + "/auth"])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.rate_s + 120,
                           preexec_fn=bench.isolate)
        with open(os.path.join(d, "rate.out"), "w") as f:
            f.write(p.stdout)
        fixed = bench.parse_h2load(p.stdout, log)
        res["p50_ms"] = fixed["p50_ms"]
        res["p99_ms"] = fixed["p99_ms"]
        res["non200"] = (res["auth"]["non200"] + res["plain"]["non200"] + fixed["non2xx"] +
                         fixed["errors"])
        return res
    finally:
        proxy.stop()


def verify_rates(a, out):
    """bench_jwt_verify's verifications per second, by algorithm."""
    if not os.path.exists(a.jwt_verify):
        return {}
    p = subprocess.run(["taskset", "-c", str(a.proxy_cpu), a.jwt_verify], capture_output=True,
                       text=True, timeout=600)
    with open(os.path.join(out, "jwt_verify.out"), "w") as f:
        f.write(p.stdout + p.stderr)
    rates = {}
    for m in re.finditer(r"^\s*(HS256|RS256|ES256)\s.*?([\d.]+) verifications/s", p.stdout, re.M):
        rates[m.group(1)] = float(m.group(2))
    m = re.search(r"cache hit.*?([\d.]+) lookups/s", p.stdout)
    if m:
        rates["cache hit"] = float(m.group(1))
    return rates


def med(vals):
    vals = sorted(vals)
    return vals[len(vals) // 2] if vals else float("nan")


def write_section(a, results, rates, out):
    L = []
    w = L.append
    w(SECTION)
    w("## Authentication: what a check costs")
    w("")
    w(f"Run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by `bench/auth.py` "
      f"(raw output: `{os.path.relpath(out, bench.ROOT)}`). portico (1 worker, CPU {a.proxy_cpu}) "
      f"in front of `bench_backend`; the backend and h2load on CPU {a.client_cpu}. Every request "
      f"carries a valid credential (one API key; one RS256 or ES256 token with RSA 2048 / P-256 "
      f"keys); \"nocache\" turns the issuer's verified-token cache off, so every request verifies "
      f"the signature. Throughput: h2load -n {a.requests} -c {a.conns} -m {a.streams} (h2c, closed "
      f"loop) to /auth and, in turn, the same request to /plain (a route without auth on the "
      f"same portico); the cost is /auth against /plain in requests per second of portico's own "
      f"CPU time (utime+stime; h2load and the backend share the other CPU), the median over "
      f"repetitions. Latency of /auth: {a.rate} req/s for {a.rate_s} s. {a.reps} repetition(s).")
    w("")
    w("| target | req/s | req per proxy CPU-s | same request, no auth: req per proxy CPU-s "
      "| cost (per CPU-s) | p50 ms | p99 ms | non-200 |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for t in TARGETS:
        if t not in results:
            continue
        rs = results[t]
        # Cost per repetition (auth against plain of the same portico), then
        # the median: the two runs of a repetition share its conditions.
        costs = [100.0 * (r["auth"]["per_cpu_s"] - r["plain"]["per_cpu_s"]) / r["plain"]["per_cpu_s"]
                 for r in rs]
        cost = f"{med(costs):+.1f}%"  # "none": both routes alike, i.e. the noise
        w(f"| {t} | {med([r['auth']['rps'] for r in rs]):.0f} | "
          f"{med([r['auth']['per_cpu_s'] for r in rs]):.0f} | "
          f"{med([r['plain']['per_cpu_s'] for r in rs]):.0f} | {cost} | "
          f"{med([r['p50_ms'] for r in rs]):.2f} | {med([r['p99_ms'] for r in rs]):.2f} | "
          f"{sum(r['non200'] for r in rs)} |")
    w("")
    if rates:
        w("JWT verifications per second on one core (`bench_jwt_verify`, CPU "
          f"{a.proxy_cpu}; signature and claim checks, no cache):")
        w("")
        w("| algorithm | verifications/s |")
        w("|---|---:|")
        for k in ("HS256", "RS256", "ES256", "cache hit"):
            if k in rates:
                w(f"| {k} | {rates[k]:.0f} |")
        w("")
    w("Target of issue 7: JWT with the cache on costs ≤ 5% throughput. \"none\" has no auth on "
      "either route: its cost column is the noise of the method. Per-repetition values are in "
      "the raw results.json.")
    w("")
    bench.write_section(a.results, SECTION, "\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portico", default=os.path.join(bench.ROOT, "build-bench", "portico"))
    ap.add_argument("--backend", default=os.path.join(bench.ROOT, "build", "bench", "bench_backend"))
    ap.add_argument("--jwt-verify", default=os.path.join(bench.ROOT, "build", "bench",
                                                         "bench_jwt_verify"))
    ap.add_argument("--results", default=os.path.join(bench.BENCH, "RESULTS.md"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--rate", type=int, default=5000, help="req/s of the latency run")
    ap.add_argument("--rate-s", type=int, default=10, help="seconds of the latency run")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--proxy-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--sched", choices=["autogroup", "none"], default="autogroup")
    a = ap.parse_args()
    a.portico = os.path.abspath(a.portico)
    a.backend = os.path.abspath(a.backend)
    a.jwt_verify = os.path.abspath(a.jwt_verify)
    bench.ISOLATE["mode"] = a.sched
    targets = [t for t in a.targets.split(",") if t]
    if any(t not in TARGETS for t in targets):
        ap.error(f"--targets: choose from {','.join(TARGETS)}")
    out = os.path.join(bench.BENCH, "out", datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + "-auth")
    os.makedirs(out, exist_ok=True)
    rs, es = make_keys(out)
    keys = {"rs_pub": rs.replace(".pem", ".pub.pem"), "es_pub": es.replace(".pem", ".pub.pem")}
    tokens = {"RS256": sign_token(rs, "RS256", out), "ES256": sign_token(es, "ES256", out)}
    ports = None
    for _ in range(200):
        base = __import__("random").randrange(20000, 32000, 10)
        if all(bench.port_free(p) for p in range(base, base + 3)):
            ports = list(range(base, base + 3))
            break
    if not ports:
        raise RuntimeError("no free port range found")
    be_h1, be_h2, _ = ports
    results = {}
    backend = bench.Proc("backend", [a.backend, str(be_h1), str(be_h2)], a.client_cpu, out)
    try:
        bench.wait_port(be_h1, backend)
        for rep in range(a.reps):
            order = targets[rep % len(targets):] + targets[:rep % len(targets)]
            for t in order:
                bench.log(f"auth: {t} repetition {rep + 1}")
                results.setdefault(t, []).append(run_target(a, t, ports, keys, tokens, out, rep))
                time.sleep(1)
    finally:
        backend.stop()
    rates = verify_rates(a, out)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"results": results, "verify_rates": rates}, f, indent=1)
    write_section(a, results, rates, out)
    bench.log(f"auth: wrote {a.results}")


if __name__ == "__main__":
    main()
