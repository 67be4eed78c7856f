#!/usr/bin/env python3
"""What transcoding costs: a unary call as REST/JSON -> gRPC -> JSON through
portico's transcoder against the same call proxied as plain gRPC, in one run.

portico (one worker on CPU 0) has two routes to the same bench_backend
(bench/backend.c, which answers every gRPC call with one small message of
bench/conf/bench_echo.proto's grpc.bench.Msg): /grpc.bench.Echo (plain gRPC
proxying) and /v1 (transcode, `POST /v1/echo` with body "*"). h2load (h2c,
closed loop, on CPU 1 with the backend) sends the same request both ways:

  grpc   POST /grpc.bench.Echo/Call, application/grpc, the 22-byte message
  json   POST /v1/echo, application/json, {"text":"hello benchmark"}

and the result is requests per second and requests per second of portico's
own CPU time (utime+stime; h2load and the backend share the other CPU, so
raw req/s also moves with their contention), with json / grpc as a ratio.
Issue 5's target: transcoded throughput >= 60% of plain gRPC proxying.

In the same run, the codec alone: bench_json_codec (bench/json_codec.c) on
the proxy's CPU, MB/s of JSON text for a ~1 KiB and a ~64 KiB message,
JSON->proto and proto->JSON (and jansson parsing the same text into a tree,
for scale).

Usage (after building build/portico and build/bench/bench_backend):
  /usr/bin/python3 bench/transcode.py --portico build/portico
Writes the section "Transcoding" of bench/RESULTS.md (--results to write
elsewhere) and raw outputs under bench/out/<time>-transcode/. Every process
is started and stopped here, by PID.
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (Proc, wait_port, port_free, parse_h2load, isolate)
from ratelimit import free_ports, med  # noqa: E402

SECTION = "<!-- section: transcode (written by bench/transcode.py) -->"
TARGETS = ["grpc", "json"]
PROTO = os.path.join(bench.BENCH, "conf", "bench_echo.proto")
GRPC_MSG = b"\x0a\x0f" + b"hello benchmark"
JSON_MSG = b'{"text":"hello benchmark"}'


def descriptor_set(out):
    path = os.path.join(out, "bench_echo.pb")
    protoc = shutil.which("protoc") or "protoc"
    subprocess.run([protoc, "-I" + os.path.dirname(PROTO),
                    "-I" + os.path.join(bench.ROOT, "proto", "third_party"), "-I/usr/include",
                    "--include_imports", "--descriptor_set_out=" + path,
                    os.path.basename(PROTO)], check=True, timeout=60)
    return path


def portico_conf(port, be_port, desc):
    return f"""# portico behind bench/transcode.py
workers: 1
listeners:
  - {{name: main, address: "127.0.0.1:{port}", protocols: [http1, h2c]}}
services:
  - {{name: be, protocol: grpc, descriptor_set_file: "{desc}",
      instances: [{{host: 127.0.0.1, port: {be_port}}}]}}
routes:
  - {{name: grpc, path_prefix: /grpc.bench.Echo, service: be}}
  - {{name: rest, path_prefix: /v1, service: be, transcode: {{}}}}
access_log: {{enabled: false}}
admin: {{address: "off"}}
"""


def h2load_args(target, port, files):
    if target == "grpc":
        return (["-d", files["grpc"], "-H", "content-type: application/grpc", "-H", "te: trailers"],
                f"http://127.0.0.1:{port}/grpc.bench.Echo/Call")
    return (["-d", files["json"], "-H", "content-type: application/json"],
            f"http://127.0.0.1:{port}/v1/echo")


def sanity(port, files):
    """Both ways answer 200 with the expected body before anything is timed."""
    for t in TARGETS:
        args, url = h2load_args(t, port, files)
        p = bench.run(["nghttp", "-v"] + args + [url], 30)
        out = p.stdout
        if t == "json":
            ok = ":status: 200" in out and '"text":"' in out
        else:
            ok = ":status: 200" in out and "grpc-status: 0" in out
        if not ok:
            raise RuntimeError(f"sanity check of {t} failed:\n{out[-1500:]}")


def run_target(a, target, port, proxy, files, out, rep):
    args, url = h2load_args(target, port, files)
    bench.run(["h2load", "-n", "2000", "-c", "4", "-m", "8"] + args + [url], 60)  # warm-up
    cmd = ["taskset", "-c", str(a.client_cpu), "h2load", "-n", str(a.requests), "-c",
           str(a.conns), "-m", str(a.streams)] + args + [url]
    cpu0 = bench.cpu_ticks(proxy.pids())
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, preexec_fn=bench.isolate)
    cpu = (bench.cpu_ticks(proxy.pids()) - cpu0) / bench.CLK_TCK
    with open(os.path.join(out, f"{target}-{rep}.out"), "w") as f:
        f.write(p.stdout)
    r = bench.parse_h2load(p.stdout)
    return {"rps": r["rps"], "per_cpu_s": r["requests"] / cpu if cpu > 0 else float("nan"),
            "requests": r["requests"], "non200": r["non2xx"] + r["errors"]}


def run_codec(a, out):
    """Rows of bench_json_codec: (size, json bytes, wire bytes, operation, MB/s)."""
    p = subprocess.run(["taskset", "-c", str(a.proxy_cpu), a.json_codec], capture_output=True, text=True,
                       timeout=300, preexec_fn=bench.isolate)
    with open(os.path.join(out, "json-codec.out"), "w") as f:
        f.write(p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError("bench_json_codec failed: %s" % p.stderr)
    rows = []
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[0].startswith("~"):
            op = " ".join(parts[3:-2])
            rows.append({"size": parts[0], "json": int(parts[1]), "wire": int(parts[2]), "op": op,
                         "mbps": float(parts[-2])})
    if not rows:
        raise RuntimeError("bench_json_codec printed no rows")
    return rows


def write_section(a, results, out, codec):
    L = []
    w = L.append
    w(SECTION)
    w("## Transcoding: REST/JSON -> gRPC -> JSON against plain gRPC proxying")
    w("")
    w(f"Run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by `bench/transcode.py` "
      f"(raw output: `{os.path.relpath(out, bench.ROOT)}`). portico (1 worker, CPU {a.proxy_cpu}) "
      f"in front of `bench_backend`; the backend and h2load on CPU {a.client_cpu}. The same unary "
      f"call as plain gRPC (`/grpc.bench.Echo/Call`, 22-byte message) and as JSON through a "
      f"transcoded route (`POST /v1/echo`, `{JSON_MSG.decode()}`). h2load -n {a.requests} "
      f"-c {a.conns} -m {a.streams} (h2c, closed loop). {a.reps} repetition(s), medians.")
    w("")
    w("| call | req/s | req per proxy CPU-s | non-200 |")
    w("|---|---:|---:|---:|")
    for t in TARGETS:
        rs = results[t]
        w(f"| {t} | {med([r['rps'] for r in rs]):.0f} | {med([r['per_cpu_s'] for r in rs]):.0f} | "
          f"{sum(r['non200'] for r in rs)} |")
    g_rps, j_rps = med([r["rps"] for r in results["grpc"]]), med([r["rps"] for r in results["json"]])
    g_cpu = med([r["per_cpu_s"] for r in results["grpc"]])
    j_cpu = med([r["per_cpu_s"] for r in results["json"]])
    w("")
    w(f"Transcoded / plain: **{100.0 * j_rps / g_rps:.0f}%** of req/s, "
      f"**{100.0 * j_cpu / g_cpu:.0f}%** of req per proxy CPU-s (issue 5's target: >= 60%).")
    w("")
    w(f"The codec alone in the same run (`bench_json_codec`, CPU {a.proxy_cpu}, best of 5 runs of >= 0.2 s; "
      "MB/s of JSON text, 1 MB = 10^6 bytes; the message is `pt.test.json.Order` with nested items, "
      "maps, enums, 64-bit integers, bytes and a Timestamp):")
    w("")
    w("| message | JSON bytes | wire bytes | operation | MB/s |")
    w("|---|---:|---:|---|---:|")
    for r in codec:
        w(f"| {r['size']} | {r['json']} | {r['wire']} | {r['op']} | {r['mbps']:.1f} |")
    w("")
    bench.write_section(a.results, SECTION, "\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portico", default=os.path.join(bench.ROOT, "build-bench", "portico"))
    ap.add_argument("--backend", default=os.path.join(bench.ROOT, "build", "bench", "bench_backend"))
    ap.add_argument("--json-codec", default=os.path.join(bench.ROOT, "build", "bench", "bench_json_codec"))
    ap.add_argument("--results", default=os.path.join(bench.BENCH, "RESULTS.md"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--proxy-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--sched", choices=["autogroup", "none"], default="autogroup")
    a = ap.parse_args()
    a.portico = os.path.abspath(a.portico)
    a.backend = os.path.abspath(a.backend)
    a.json_codec = os.path.abspath(a.json_codec)
    bench.ISOLATE["mode"] = a.sched
    out = os.path.join(bench.BENCH, "out", datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + "-transcode")
    os.makedirs(out, exist_ok=True)
    files = {"grpc": os.path.join(out, "grpc-req.bin"), "json": os.path.join(out, "json-req.json")}
    with open(files["grpc"], "wb") as f:
        f.write(b"\x00" + len(GRPC_MSG).to_bytes(4, "big") + GRPC_MSG)
    with open(files["json"], "wb") as f:
        f.write(JSON_MSG)
    desc = descriptor_set(out)
    be_h1, be_h2, proxy_port = free_ports(3)
    conf = os.path.join(out, "portico.yaml")
    with open(conf, "w") as f:
        f.write(portico_conf(proxy_port, be_h2, desc))
    procs = []
    results = {}
    try:
        backend = bench.Proc("backend", [a.backend, str(be_h1), str(be_h2)], a.client_cpu, out)
        procs.append(backend)
        bench.wait_port(be_h2, backend)
        proxy = bench.Proc("portico", [a.portico, "--config", conf], a.proxy_cpu, out)
        procs.append(proxy)
        bench.wait_port(proxy_port, proxy)
        sanity(proxy_port, files)
        for rep in range(a.reps):
            order = TARGETS if rep % 2 == 0 else TARGETS[::-1]
            for t in order:
                bench.log(f"transcode: {t} repetition {rep + 1}")
                results.setdefault(t, []).append(run_target(a, t, proxy_port, proxy, files, out, rep))
                time.sleep(1)
    finally:
        for p in reversed(procs):
            p.stop()
    bench.log("transcode: the codec alone (bench_json_codec)")
    codec = run_codec(a, out)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"calls": results, "codec": codec}, f, indent=1)
    write_section(a, results, out, codec)
    bench.log(f"transcode: wrote {a.results}")


if __name__ == "__main__":
    main()
