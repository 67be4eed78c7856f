#!/usr/bin/env python3
"""What rate limiting costs: portico's proxy throughput and latency with no
rule, with a local rule, a Redis rule and a hybrid rule, in one run.

Every rule is keyed by client IP with a limit high enough never to reject
(so the cost measured is the decision, not rejections): 400,000,000 per
10 s (the largest the Redis script allows exactly). portico runs one worker
on CPU 0; bench_backend (bench/backend.c), redis-server and h2load share
CPU 1. h2load sends a fixed number of h2c requests as fast as it can
(closed loop), then a fixed rate for latency. For each target:

  throughput   requests per second, closed loop (and its cost against "none")
  p99 added    p99 latency at a fixed rate minus the p99 of "none"
  redis/req    Redis script calls (EVALSHA + EVAL, INFO commandstats) per request

Issue 6's targets: local costs <= 3% throughput, redis <= 25%, hybrid <= 5%.

Usage (after building build/portico and build/bench/bench_backend):
  /usr/bin/python3 bench/ratelimit.py --portico build/portico
Writes the section "Rate limiting" of bench/RESULTS.md (bench.py keeps such
sections) and raw outputs under bench/out/<time>-ratelimit/. Every process
is started here and stopped here, by PID.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (Proc, wait_port, port_free, parse_h2load, isolate)

SECTION = "<!-- section: ratelimit (written by bench/ratelimit.py) -->"
TARGETS = ["none", "local", "redis", "hybrid"]
LIMIT = 400000000
WINDOW = 10


def free_ports(n):
    import random
    rnd = random.Random()
    for _ in range(200):
        base = rnd.randrange(20000, 32000, 10)
        ports = list(range(base, base + n))
        if all(bench.port_free(p) for p in ports):
            return ports
    raise RuntimeError("no free port range found")


def portico_conf(port, be_port, redis_port, target):
    rules = ""
    if target != "none":
        rules = (f"rate_limit_rules:\n  - {{name: bench, key_type: ip, limit: {LIMIT}, "
                 f"window_seconds: {WINDOW}, mode: {target}, redis_timeout_ms: 1000}}\n")
    return f"""# portico behind bench/ratelimit.py: target {target}
workers: 1
listeners:
  - {{name: main, address: "127.0.0.1:{port}", protocols: [http1, h2c]}}
services:
  - {{name: be, instances: [{{host: 127.0.0.1, port: {be_port}}}]}}
routes:
  - {{name: all, path_prefix: /, service: be}}
access_log: {{enabled: false}}
admin: {{address: "off"}}
redis: {{address: "127.0.0.1:{redis_port}"}}
{rules}"""


def redis_cli(port, *args):
    """One command over RESP; the reply's text (bulk strings and simple
    replies only, which is all this script asks for)."""
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        line = f.readline()
        if line.startswith(b"$"):
            n = int(line[1:-2])
            return f.read(n + 2)[:-2].decode("utf-8", "replace") if n >= 0 else ""
        return line[1:-2].decode("utf-8", "replace")


def script_calls(port):
    info = redis_cli(port, "INFO", "commandstats")
    return sum(int(m) for m in re.findall(r"cmdstat_eval(?:sha)?:calls=(\d+)", info))


def run_target(a, target, ports, out):
    be_h1, be_h2, proxy_port, redis_port = ports
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "portico.yaml")
    with open(conf, "w") as f:
        f.write(portico_conf(proxy_port, be_h1, redis_port, target))
    proxy = bench.Proc("portico", [a.portico, "--config", conf], a.proxy_cpu, d)
    try:
        bench.wait_port(proxy_port, proxy)
        url = f"http://127.0.0.1:{proxy_port}/"
        bench.run(["h2load", "-n", "2000", "-c", "4", "-m", "8", url], 60)  # warm-up
        res = {}
        before = script_calls(redis_port)
        # No per-request log here: it costs h2load a write per request on
        # the CPU it shares with the backend and Redis (latency comes from
        # the fixed-rate run below).
        cmd = ["taskset", "-c", str(a.client_cpu), "h2load", "-n", str(a.requests), "-c",
               str(a.conns), "-m", str(a.streams), url]
        cpu0 = bench.cpu_ticks(proxy.pids())
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, preexec_fn=bench.isolate)
        cpu = (bench.cpu_ticks(proxy.pids()) - cpu0) / bench.CLK_TCK
        with open(os.path.join(d, "closed.out"), "w") as f:
            f.write(p.stdout)
        closed = bench.parse_h2load(p.stdout)
        calls = script_calls(redis_port) - before
        res["rps"] = closed["rps"]
        res["per_cpu_s"] = closed["requests"] / cpu if cpu > 0 else float("nan")
        res["requests"] = closed["requests"]
        res["non200"] = closed["non2xx"] + closed["errors"]
        res["redis_per_req"] = calls / max(1, closed["requests"])
        log = os.path.join(d, "rate.log")
        cmd = ["taskset", "-c", str(a.client_cpu), "h2load", "-c", str(a.conns), "-m", "16",
               "--rps", str(max(1, a.rate // a.conns)), "-D", str(a.rate_s), "--log-file", log, url]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.rate_s + 120,
                           preexec_fn=bench.isolate)
        with open(os.path.join(d, "rate.out"), "w") as f:
            f.write(p.stdout)
        fixed = bench.parse_h2load(p.stdout, log)
        res["p50_ms"] = fixed["p50_ms"]
        res["p99_ms"] = fixed["p99_ms"]
        res["non200"] += fixed["non2xx"] + fixed["errors"]
        return res
    finally:
        proxy.stop()


def med(vals):
    vals = sorted(vals)
    return vals[len(vals) // 2] if vals else float("nan")


def write_section(a, results, out):
    L = []
    w = L.append
    w(SECTION)
    w("## Rate limiting: what a decision costs")
    w("")
    w(f"Run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by `bench/ratelimit.py` "
      f"(raw output: `{os.path.relpath(out, bench.ROOT)}`). portico (1 worker, CPU {a.proxy_cpu}) "
      f"in front of `bench_backend`; redis-server, the backend and h2load on CPU {a.client_cpu}. "
      f"One rule keyed by client IP, {LIMIT} per {WINDOW} s (never rejects), in each mode; "
      f"\"none\" has no rule. Throughput: h2load -n {a.requests} -c {a.conns} -m {a.streams} "
      f"(h2c, closed loop); the cost is in requests per second of portico's own CPU time "
      f"(utime+stime), because h2load, the backend and Redis share the other CPU and their "
      f"contention moves raw req/s. Latency: {a.rate} req/s for {a.rate_s} s. "
      f"{a.reps} repetition(s), medians.")
    w("")
    w("| target | req/s | req per proxy CPU-s | cost (per CPU-s) | p50 ms | p99 ms | p99 added ms "
      "| Redis calls / request | non-200 |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base_cpu = med([r["per_cpu_s"] for r in results.get("none", [])])
    base_p99 = med([r["p99_ms"] for r in results.get("none", [])])
    for t in TARGETS:
        if t not in results:
            continue
        rs = results[t]
        rps = med([r["rps"] for r in rs])
        per_cpu = med([r["per_cpu_s"] for r in rs])
        p99 = med([r["p99_ms"] for r in rs])
        cost = "" if t == "none" else f"{100.0 * (per_cpu - base_cpu) / base_cpu:+.1f}%"
        added = "" if t == "none" else f"{p99 - base_p99:+.2f}"
        w(f"| {t} | {rps:.0f} | {per_cpu:.0f} | {cost} | {med([r['p50_ms'] for r in rs]):.2f} | {p99:.2f} | "
          f"{added} | {med([r['redis_per_req'] for r in rs]):.3f} | "
          f"{sum(r['non200'] for r in rs)} |")
    w("")
    w("Targets of issue 6: local ≤ 3% throughput, redis ≤ 25%, hybrid ≤ 5%. The machine is shared "
      "(2 cores, other jobs running), so differences of a few percent are within noise; "
      "see the raw outputs.")
    w("")
    bench.write_section(a.results, SECTION, "\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portico", default=os.path.join(bench.ROOT, "build-bench", "portico"))
    ap.add_argument("--backend", default=os.path.join(bench.ROOT, "build", "bench", "bench_backend"))
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
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
    bench.ISOLATE["mode"] = a.sched
    targets = [t for t in a.targets.split(",") if t]
    if any(t not in TARGETS for t in targets) or "none" not in targets:
        ap.error(f"--targets: choose from {','.join(TARGETS)} (none included: it is the baseline)")
    out = os.path.join(bench.BENCH, "out", datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + "-ratelimit")
    os.makedirs(out, exist_ok=True)
    ports = free_ports(4)
    be_h1, be_h2, proxy_port, redis_port = ports
    procs = []
    results = {}
    try:
        backend = bench.Proc("backend", [a.backend, str(be_h1), str(be_h2)], a.client_cpu, out)
        procs.append(backend)
        bench.wait_port(be_h1, backend)
        redis = bench.Proc("redis", [a.redis_server, "--port", str(redis_port), "--bind", "127.0.0.1",
                                     "--dir", out, "--save", "", "--appendonly", "no"],
                           a.client_cpu, out)
        procs.append(redis)
        bench.wait_port(redis_port, redis)
        for rep in range(a.reps):
            order = targets[rep % len(targets):] + targets[:rep % len(targets)]
            for t in order:
                bench.log(f"ratelimit: {t} repetition {rep + 1}")
                results.setdefault(t, []).append(run_target(a, t, ports, out))
                time.sleep(1)
    finally:
        for p in reversed(procs):
            p.stop()
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    write_section(a, results, out)
    bench.log(f"ratelimit: wrote {a.results}")


if __name__ == "__main__":
    main()
