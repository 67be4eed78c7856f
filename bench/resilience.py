#!/usr/bin/env python3
"""A failing backend behind portico and behind nginx, side by side in one run.

Four HTTP/1.1 backends (bench/phase_backend.py, one process, pinned to the
client CPU) sit behind the proxy under test (pinned to CPU 0, one worker).
h2load sends a fixed rate of h2c requests for the whole run while backend 0
goes through the phases

    healthy -> slow (every answer after 200 ms) -> failing (503 at once) -> healthy

and h2load's per-request log gives, per 5-second window and per phase, the
p50/p99 latency and the error rate of the route as a whole (an error is any
answer other than 200, or a request that got none).

Targets, each with its nearest settings (written into the run directory):
  portico      least_connections + outlier detection + a per-instance
               circuit breaker + one retry on 5xx on another instance;
  portico-ewma the same with peak_ewma balancing;
  portico-hedge the first with a hedge: a second attempt on another
               instance when no answer came within 50 ms (nginx has no
               equivalent);
  nginx        least_conn, max_fails=5 fail_timeout=10s,
               proxy_next_upstream error timeout http_502 http_503 http_504,
               proxy_next_upstream_tries 2.

Usually run through bench/run.sh --resilience (which installs and builds);
directly: /usr/bin/python3 bench/resilience.py --portico build-bench/portico.
Writes the section "Resilience" of bench/RESULTS.md (the rest of the file
is bench.py's) and raw outputs under bench/out/<time>-resilience/.
Every process is started here and stopped here, by PID.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (Proc, wait_port, port_free, percentile, isolate)

SECTION = "<!-- section: resilience (written by bench/resilience.py) -->"
PHASES = [("healthy", "ok"), ("slow", "slow"), ("failing", "fail"), ("recovered", "ok")]
TARGETS = ["portico", "nginx", "portico-ewma", "portico-hedge"]


def free_ports(n):
    import random
    rnd = random.Random()
    for _ in range(200):
        base = rnd.randrange(20000, 32000, 10)
        ports = list(range(base, base + n))
        if all(bench.port_free(p) for p in ports):
            return ports
    raise RuntimeError("no free port range found")


def portico_conf(port, be_ports, lb, hedge_ms=0):
    inst = "\n".join(f"      - {{host: 127.0.0.1, port: {p}}}" for p in be_ports)
    hedge = f"    hedge: {{delay_ms: {hedge_ms}}}\n" if hedge_ms else ""
    return f"""# portico: {lb} + outlier detection + per-instance breaker + 1 retry on 5xx
workers: 1
listeners:
  - name: main
    address: 127.0.0.1:{port}
    protocols: [http1, h2c]
services:
  - name: be
    protocol: http1
    lb_algorithm: {lb}
    instances:
{inst}
    outlier_detection:
      consecutive_failures: 5
      base_ejection_time_ms: 10000
      max_ejection_percent: 50
    circuit_breaker:
      per_instance: true
      failure_threshold: 5
      timeout_ms: 10000
routes:
  - name: all
    path_prefix: /
    service: be
    retry_count: 1
    retry_on: [5xx, connect-failure, reset]
{hedge}limits:
  idle_timeout_ms: 600000
access_log:
  enabled: false
admin:
  address: "off"
"""


def nginx_conf(port, be_ports, run_dir):
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=5 fail_timeout=10s;" for p in be_ports)
    return f"""# nginx: least_conn, max_fails/fail_timeout, proxy_next_upstream (one retry)
worker_processes 1;
daemon off;
pid {run_dir}/nginx.pid;
error_log {run_dir}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  upstream be {{
    least_conn;
{servers}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port} http2 backlog=4096;
    location / {{
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503 http_504;
      proxy_next_upstream_tries 2;
    }}
  }}
}}
"""


class Run:
    def __init__(self, a, target, rep, out):
        self.a, self.target, self.rep = a, target, rep
        self.dir = os.path.join(out, f"{target}-{rep}")
        os.makedirs(self.dir, exist_ok=True)

    def go(self):
        a = self.a
        ports = free_ports(6)
        be_ports, proxy_port = ports[:4], ports[5]
        fifo = os.path.join(self.dir, "control")
        os.mkfifo(fifo)
        backend = bench.Proc("backend", ["/usr/bin/python3", os.path.join(bench.BENCH, "phase_backend.py"),
                                         "--ports", ",".join(map(str, be_ports)), "--control", fifo,
                                         "--slow-ms", str(a.slow_ms)], a.client_cpu, self.dir)
        procs = [backend]
        try:
            for p in be_ports:
                bench.wait_port(p, backend)
            if self.target == "nginx":
                conf = os.path.join(self.dir, "nginx.conf")
                with open(conf, "w") as f:
                    f.write(nginx_conf(proxy_port, be_ports, self.dir))
                proxy = bench.Proc("nginx", ["nginx", "-c", conf, "-p", self.dir], a.proxy_cpu, self.dir)
            else:
                lb = "peak_ewma" if self.target == "portico-ewma" else "least_connections"
                hedge = 50 if self.target == "portico-hedge" else 0
                conf = os.path.join(self.dir, "portico.yaml")
                with open(conf, "w") as f:
                    f.write(portico_conf(proxy_port, be_ports, lb, hedge))
                proxy = bench.Proc("portico", [a.portico, "--config", conf], a.proxy_cpu, self.dir)
            procs.append(proxy)
            bench.wait_port(proxy_port, proxy)
            # Warm-up: every backend connection pool opens.
            url = f"http://127.0.0.1:{proxy_port}/"
            bench.run(["h2load", "-n", "400", "-c", "4", "-m", "4", url], 60)
            log = os.path.join(self.dir, "h2load.log")
            total = sum(a.phase_s)
            cmd = ["taskset", "-c", str(a.client_cpu), "h2load", "-c", str(a.conns), "-m", "64",
                   "--rps", str(max(1, a.rate // a.conns)), "-D", str(total), "-T", "30",
                   "--log-file", log, url]
            t0 = time.time()
            h2 = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  preexec_fn=bench.isolate)
            with open(fifo, "w") as ctl:
                at = 0.0
                for (name, mode), secs in zip(PHASES, a.phase_s):
                    ctl.write(f"0 {mode}\n")
                    ctl.flush()
                    at += secs
                    time.sleep(max(0.0, t0 + at - time.time()))
                ctl.write("dump\n")
                ctl.flush()
            out, _ = h2.communicate(timeout=total + 120)
            with open(os.path.join(self.dir, "h2load.out"), "w") as f:
                f.write(out)
            return self.analyse(log, t0, out)
        finally:
            for p in reversed(procs):
                p.stop()

    def analyse(self, log, t0, out):
        a = self.a
        rows = []
        with open(log) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) < 3:
                    continue
                start = int(parts[0]) / 1e6 - t0
                rows.append((start, int(parts[1]), int(parts[2]) / 1000.0))
        windows = []
        span = sum(a.phase_s)
        for w0 in range(0, span, a.window_s):
            sel = [r for r in rows if w0 <= r[0] < w0 + a.window_s]
            windows.append(summarize(sel, f"{w0}-{w0 + a.window_s} s"))
        phases = []
        at = 0
        for (name, _), secs in zip(PHASES, a.phase_s):
            sel = [r for r in rows if at <= r[0] < at + secs]
            phases.append(summarize(sel, name))
            at += secs
        return {"windows": windows, "phases": phases, "total": summarize(rows, "whole run"),
                "h2load": out[-1500:]}


def summarize(rows, label):
    lat = sorted(r[2] for r in rows)
    errors = sum(1 for r in rows if r[1] != 200)
    return {"label": label, "requests": len(rows), "errors": errors,
            "error_pct": 100.0 * errors / len(rows) if rows else float("nan"),
            "p50_ms": bench.percentile(lat, 50), "p99_ms": bench.percentile(lat, 99),
            "max_ms": lat[-1] if lat else float("nan")}


def median_of(results, key_fn):
    vals = sorted(key_fn(r) for r in results)
    return vals[len(vals) // 2] if vals else float("nan")


def write_section(a, results, out):
    L = []
    w = L.append
    w(SECTION)
    w("## Resilience: one of four backends turns slow, then fails")
    w("")
    w(f"Run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by `bench/resilience.py` "
      f"(raw output: `{os.path.relpath(out, bench.ROOT)}`). h2load sends {a.rate} req/s of h2c "
      f"({a.conns} connections) for {sum(a.phase_s)} s; backend 0 of 4 is healthy for "
      f"{a.phase_s[0]} s, answers every request after {a.slow_ms} ms for {a.phase_s[1]} s, answers "
      f"503 at once for {a.phase_s[2]} s, then is healthy again for {a.phase_s[3]} s. Proxy on CPU "
      f"{a.proxy_cpu} (1 worker), backends and h2load on CPU {a.client_cpu}. "
      f"{a.reps} repetition(s), medians. An error is any answer other than 200 (or none).")
    w("")
    w("Settings: portico `least_connections` (or `peak_ewma`; `-hedge`: plus `hedge: {delay_ms: 50}`) "
      "+ `outlier_detection` "
      "(5 consecutive failures, 10 s base ejection, at most 50%) + per-instance `circuit_breaker` "
      "(5 failures, 10 s) + `retry_count: 1` on 5xx/connect-failure/reset; nginx `least_conn`, "
      "`max_fails=5 fail_timeout=10s`, `proxy_next_upstream error timeout http_502 http_503 http_504`, "
      "`proxy_next_upstream_tries 2`.")
    w("")
    w("### Per phase")
    w("")
    w("| phase | " + " | ".join(f"{t} p50 / p99 ms" for t in TARGETS if t in results)
      + " | " + " | ".join(f"{t} errors" for t in TARGETS if t in results) + " |")
    w("|---|" + "---:|" * (2 * len([t for t in TARGETS if t in results])))
    for i, (name, _) in enumerate(PHASES):
        cells = []
        errs = []
        for t in TARGETS:
            if t not in results:
                continue
            rs = results[t]
            cells.append(f"{median_of(rs, lambda r: r['phases'][i]['p50_ms']):.1f} / "
                         f"{median_of(rs, lambda r: r['phases'][i]['p99_ms']):.1f}")
            errs.append(f"{median_of(rs, lambda r: r['phases'][i]['error_pct']):.2f}% "
                        f"({median_of(rs, lambda r: r['phases'][i]['errors'])})")
        w(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(errs) + " |")
    w("")
    w(f"### Over time ({a.window_s}-second windows, first repetition)")
    w("")
    present = [t for t in TARGETS if t in results]
    w("| window | phase | " + " | ".join(f"{t} p99 ms / errors" for t in present) + " |")
    w("|---|---|" + "---:|" * len(present))
    nwin = len(results[present[0]][0]["windows"])
    for k in range(nwin):
        label = results[present[0]][0]["windows"][k]["label"]
        w0 = k * a.window_s
        at, phase = 0, PHASES[-1][0]
        for (name, _), secs in zip(PHASES, a.phase_s):
            if w0 < at + secs:
                phase = name
                break
            at += secs
        cells = []
        for t in present:
            win = results[t][0]["windows"][k]
            cells.append(f"{win['p99_ms']:.1f} / {win['errors']}")
        w(f"| {label} | {phase} | " + " | ".join(cells) + " |")
    w("")
    w("### Whole run")
    w("")
    w("| target | requests | errors | p50 ms | p99 ms | max ms |")
    w("|---|---:|---:|---:|---:|---:|")
    for t in present:
        rs = results[t]
        w(f"| {t} | {median_of(rs, lambda r: r['total']['requests'])} | "
          f"{median_of(rs, lambda r: r['total']['errors'])} | "
          f"{median_of(rs, lambda r: r['total']['p50_ms']):.1f} | "
          f"{median_of(rs, lambda r: r['total']['p99_ms']):.1f} | "
          f"{median_of(rs, lambda r: r['total']['max_ms']):.1f} |")
    w("")
    bench.write_section(a.results, SECTION, "\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portico", default=os.path.join(bench.ROOT, "build-bench", "portico"))
    ap.add_argument("--results", default=os.path.join(bench.BENCH, "RESULTS.md"))
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--rate", type=int, default=1000, help="total req/s")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--slow-ms", type=int, default=200)
    ap.add_argument("--phases", default="15,20,20,15", help="seconds of healthy,slow,failing,recovered")
    ap.add_argument("--window", dest="window_s", type=int, default=5)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--proxy-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--sched", choices=["autogroup", "none"], default="autogroup")
    a = ap.parse_args()
    a.phase_s = [int(x) for x in a.phases.split(",")]
    if len(a.phase_s) != 4 or min(a.phase_s) <= 0:
        ap.error("--phases: four positive numbers of seconds")
    a.portico = os.path.abspath(a.portico)
    bench.ISOLATE["mode"] = a.sched
    targets = [t for t in a.targets.split(",") if t]
    if any(t not in TARGETS for t in targets):
        ap.error(f"--targets: choose from {','.join(TARGETS)}")
    out = os.path.join(bench.BENCH, "out", datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + "-resilience")
    os.makedirs(out, exist_ok=True)
    results = {}
    for rep in range(a.reps):
        # Rotate the order so no target always runs first.
        order = targets[rep % len(targets):] + targets[:rep % len(targets)]
        for t in order:
            bench.log(f"resilience: {t} repetition {rep + 1}")
            results.setdefault(t, []).append(Run(a, t, rep, out).go())
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    write_section(a, results, out)
    bench.log(f"resilience: wrote {a.results}")


if __name__ == "__main__":
    main()
