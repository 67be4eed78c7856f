#!/usr/bin/env python3
"""portico vs nginx vs HAProxy, side by side, in one run (see bench/README.md).

Usually started by bench/run.sh (which installs the tools and builds
portico). Starts a fast backend, nginx, HAProxy and portico on free
127.0.0.1 ports, measures, and writes bench/RESULTS.md plus raw outputs in
bench/out/<timestamp>/.

Every load is bounded in time; every process started here is stopped here,
by PID.
"""
import argparse
import datetime
import json
import os
import platform
import random
import re
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
CLK_TCK = os.sysconf("SC_CLK_TCK")

TARGETS = ["direct", "nginx", "haproxy", "portico"]
PROXIES = ["nginx", "haproxy", "portico"]
SCENARIOS = ["h1", "h2c", "grpc"]
PORT_NAMES = ["BE_H1", "BE_H2", "NGINX_H1", "NGINX_H2", "HAPROXY_H1", "HAPROXY_H2",
              "PORTICO_H1", "PORTICO_H2"]

GRPC_PATH = "/grpc.bench.Echo/Call"
GRPC_HEADERS = ["-H", "content-type: application/grpc", "-H", "te: trailers"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------
# /proc helpers


def children_of(pid):
    """pid and all its descendants (nginx master + workers)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pids):
    """utime+stime (clock ticks) summed over processes; /proc/<pid>/stat of a
    process already sums all its threads."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_busy_ticks(cpu):
    """busy (non-idle, non-iowait) ticks of one CPU from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return sum(v) - v[3] - v[4]
    return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# --------------------------------------------------------------------------
# processes

ISOLATE = {"mode": "none"}


def isolate():
    """preexec_fn for every process started here. "autogroup": the process
    gets its own session, hence its own scheduler autogroup, at autogroup
    nice -20. With autogroups (sched_autogroup_enabled=1) plain nice values
    only rank tasks within one session, so that is what keeps other users'
    jobs (builds, fuzzers) on this shared machine from taking the benchmark's
    CPU. Every target gets the same treatment."""
    if ISOLATE["mode"] != "autogroup":
        return
    os.setsid()
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write("-20")
    except OSError:
        pass


class Proc:
    def __init__(self, name, argv, cpu, outdir, cwd=None):
        self.name = name
        self.argv = ["taskset", "-c", str(cpu)] + argv
        self.logpath = os.path.join(outdir, f"{name}.log")
        self.logf = open(self.logpath, "ab")
        # taskset execs the program: the PID is the program's own.
        self.p = subprocess.Popen(self.argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, cwd=cwd, preexec_fn=isolate)
        self.pid = self.p.pid

    def pids(self):
        return children_of(self.pid) if self.alive() else []

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                for pid in reversed(children_of(self.pid)):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.p.wait(5)
        self.logf.close()


def wait_port(port, proc, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited (rc {proc.p.returncode}); see {proc.logpath}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name}: port {port} not listening after {timeout}s")


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_ports():
    """8 consecutive free ports below the ephemeral range (other engineers'
    tests run on this machine too, so fixed ports may be taken)."""
    rnd = random.Random()
    for _ in range(200):
        base = rnd.randrange(20000, 32000, 10)
        ports = list(range(base, base + len(PORT_NAMES)))
        if all(port_free(p) for p in ports):
            return dict(zip(PORT_NAMES, ports))
    raise RuntimeError("no free port range found")


def render(template, dest, subst):
    with open(os.path.join(BENCH, "conf", template)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.search(r"@[A-Z0-9_]+@", text)
    if left:
        raise RuntimeError(f"{template}: unreplaced {left.group(0)}")
    with open(dest, "w") as f:
        f.write(text)
    return dest


def write_section(path, marker, text):
    """Replace the section that starts with `marker` in the results file
    (or append it), keeping the rest: each script owns its own section."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    if marker in old:
        head, rest = old.split(marker, 1)
        nxt = rest.find("<!-- section: ")
        tail = rest[nxt:] if nxt >= 0 else ""
        new = head.rstrip("\n") + "\n\n" + text + ("\n" + tail if tail else "")
    else:
        new = (old.rstrip("\n") + "\n\n" if old else "") + text
    with open(path, "w") as f:
        f.write(new)


def run(cmd, timeout, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=isolate, **kw)


# --------------------------------------------------------------------------
# load generators and their output


def to_ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(out):
    r = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", out)
    r["requests"] = int(m.group(1))
    r["duration_s"] = to_ms(m.group(2), m.group(3)) / 1000
    r["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"^\s+Latency\s+([\d.]+)(us|ms|s)", out, re.M)
    r["mean_ms"] = to_ms(m.group(1), m.group(2)) if m else float("nan")
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)", out, re.M)
        r[f"p{pct}_ms"] = to_ms(m.group(1), m.group(2))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["errors"] = sum(int(x) for x in m.groups()) if m else 0
    r["ok"] = r["requests"] - r["non2xx"]
    return r


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(round(q / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def parse_h2load(out, logfile=None):
    r = {}
    m = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
    r["mean_ms"] = to_ms(m.group(5), m.group(6)) if m else float("nan")
    m = re.search(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", out)
    r["duration_s"] = to_ms(m.group(1), m.group(2)) / 1000
    r["rps"] = float(m.group(3))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    total, started, done, ok, failed, errored, tmo = (int(x) for x in m.groups())
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    s2, s3, s4, s5 = (int(x) for x in m.groups())
    r["requests"] = done
    r["ok"] = s2
    r["non2xx"] = s3 + s4 + s5
    r["errors"] = failed + errored + tmo
    if not logfile:
        r["p50_ms"] = r["p99_ms"] = r["p999_ms"] = float("nan")
        return r
    lat = []
    bad = 0
    with open(logfile) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            if parts[1] != "200":
                bad += 1
                continue
            lat.append(int(parts[2]) / 1000.0)
    lat.sort()
    r["logged"] = len(lat)
    r["p50_ms"] = percentile(lat, 50)
    r["p99_ms"] = percentile(lat, 99)
    r["p999_ms"] = percentile(lat, 99.9)
    return r


class Bench:
    def __init__(self, a):
        self.a = a
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.out = os.path.abspath(a.out or os.path.join(BENCH, "out", stamp))
        self.run_dir = os.path.join(self.out, "run")
        os.makedirs(self.run_dir, exist_ok=True)
        self.procs = {}
        self.observations = []
        self.results = {"throughput": {}, "rate": {}, "memory": {}, "idle_cpu": {}}
        self.commands = {}

    # ---------------------------------------------------------------- setup
    def prepare(self):
        self.ports = pick_ports()
        # gRPC request: 5-byte frame prefix + a protobuf message (field 1,
        # string "hello benchmark"); bench_backend answers with the same shape.
        msg = b"\x0a\x0f" + b"hello benchmark"
        self.req_bin = os.path.join(self.run_dir, "grpc-req.bin")
        with open(self.req_bin, "wb") as f:
            f.write(b"\x00" + len(msg).to_bytes(4, "big") + msg)
        subst = {f"PORT_{k}": v for k, v in self.ports.items()}
        subst["RUN"] = self.run_dir
        self.conf = {
            "nginx": render("nginx-proxy.conf.in", os.path.join(self.run_dir, "nginx-proxy.conf"), subst),
            "haproxy": render("haproxy.cfg.in", os.path.join(self.run_dir, "haproxy.cfg"), subst),
            "portico": render("portico.yaml.in", os.path.join(self.run_dir, "portico.yaml"), subst),
        }
        chk = run([self.a.portico, "--check-config", self.conf["portico"]], 30)
        if chk.returncode != 0:
            raise RuntimeError(f"portico --check-config failed: {chk.stdout}{chk.stderr}")
        chk = run(["nginx", "-t", "-q", "-c", self.conf["nginx"], "-p", self.run_dir], 30)
        if chk.returncode != 0:
            raise RuntimeError(f"nginx -t: {chk.stderr}")
        chk = run(["haproxy", "-c", "-q", "-f", self.conf["haproxy"]], 30)
        if chk.returncode != 0:
            raise RuntimeError(f"haproxy -c: {chk.stdout}{chk.stderr}")

    def urls(self, target, scenario):
        p = self.ports
        port = {
            ("direct", "h1"): p["BE_H1"], ("direct", "h2c"): p["BE_H2"], ("direct", "grpc"): p["BE_H2"],
            ("nginx", "h1"): p["NGINX_H1"], ("nginx", "h2c"): p["NGINX_H2"], ("nginx", "grpc"): p["NGINX_H2"],
            ("haproxy", "h1"): p["HAPROXY_H1"], ("haproxy", "h2c"): p["HAPROXY_H2"],
            ("haproxy", "grpc"): p["HAPROXY_H2"],
            ("portico", "h1"): p["PORTICO_H1"], ("portico", "h2c"): p["PORTICO_H2"],
            ("portico", "grpc"): p["PORTICO_H2"],
        }[(target, scenario)]
        path = {"h1": "/h1", "h2c": "/h2", "grpc": GRPC_PATH}[scenario]
        return f"http://127.0.0.1:{port}{path}"

    def start_backend(self):
        pr = Proc("backend", [self.a.backend, str(self.ports["BE_H1"]), str(self.ports["BE_H2"])],
                  self.a.client_cpu, self.out)
        self.procs["backend"] = pr
        wait_port(self.ports["BE_H1"], pr)
        wait_port(self.ports["BE_H2"], pr)

    def start_proxy(self, name):
        cpu = self.a.proxy_cpu
        if name == "nginx":
            argv = ["nginx", "-c", self.conf["nginx"], "-p", self.run_dir]
        elif name == "haproxy":
            argv = ["haproxy", "-f", self.conf["haproxy"]]
        else:
            argv = [self.a.portico, "--config", self.conf["portico"]]
        pr = Proc(name, argv, cpu, self.out, cwd=self.run_dir)
        self.procs[name] = pr
        wait_port(self.ports[f"{name.upper()}_H1"], pr)
        wait_port(self.ports[f"{name.upper()}_H2"], pr)
        time.sleep(0.3)
        return pr

    def stop(self, name):
        pr = self.procs.pop(name, None)
        if pr:
            rc_before = pr.p.poll()
            pr.stop()
            if rc_before is not None:
                self.note(f"{name} had already exited with status {rc_before} before it was stopped "
                          f"(see {pr.logpath})")

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name)

    def note(self, msg):
        log("NOTE: " + msg)
        self.observations.append(msg)

    # ------------------------------------------------------------ checks
    def sanity(self):
        """One request per target and scenario; gRPC must return 200,
        content-type application/grpc, a DATA frame and trailer grpc-status 0."""
        self.sanity_results = {}
        for t in TARGETS:
            for s in SCENARIOS:
                url = self.urls(t, s)
                if s == "h1":
                    r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url], 10)
                    ok = r.stdout.strip() == "200 100"
                    detail = r.stdout.strip()
                elif s == "h2c":
                    r = run(["nghttp", "-v", url], 10)
                    out = r.stdout
                    ok = ":status: 200" in out and r.returncode == 0
                    detail = "status 200" if ok else out[-400:]
                else:
                    r = run(["nghttp", "-v", "-d", self.req_bin] + GRPC_HEADERS + [url], 10)
                    out = r.stdout
                    idx_data = out.find("recv DATA frame")
                    idx_trailer = out.find("grpc-status: 0", idx_data if idx_data >= 0 else 0)
                    ok = (":status: 200" in out and "content-type: application/grpc" in out
                          and idx_data >= 0 and idx_trailer > idx_data)
                    detail = ("200, application/grpc, DATA, trailer grpc-status: 0" if ok else out[-600:])
                with open(os.path.join(self.out, f"sanity-{t}-{s}.txt"), "w") as f:
                    f.write(r.stdout + r.stderr)
                self.sanity_results[f"{t}/{s}"] = detail
                if not ok:
                    raise RuntimeError(f"sanity check failed for {t} {s} ({url}): {detail}")
        log("sanity checks passed for every target and scenario")

    # ------------------------------------------------------------ load
    def load_cmd(self, target, scenario, duration, logfile=None, rate=False):
        url = self.urls(target, scenario)
        pin = ["taskset", "-c", str(self.a.client_cpu)]
        if rate:
            if scenario == "h1":
                c, m = self.a.rate_h1_conns, 1
            else:
                c, m = self.a.h2_conns, self.a.h2_streams
            per_client = max(1, round(self.a.rate / c))
            # h2load's --rps timer ticks every max(10 ms, 1/rps): clients
            # connected together tick together and send in bursts. -r1
            # --rate-period=1ms connects one client per millisecond, which
            # spreads their ticks over the 10 ms. -r excludes -D, hence -n.
            cmd = pin + ["h2load", "-t1", f"-c{c}", f"-m{m}", f"--rps={per_client}", "-r1",
                         "--rate-period=1ms", "-n", str(per_client * c * duration)]
            if scenario == "h1":
                cmd.append("--h1")
        elif scenario == "h1":
            return pin + ["wrk", "-t1", f"-c{self.a.h1_conns}", f"-d{duration}s", "--timeout", "5s",
                          "--latency", url]
        else:
            cmd = pin + ["h2load", "-t1", f"-c{self.a.h2_conns}", f"-m{self.a.h2_streams}", "-D",
                         str(duration)]
        if logfile:
            cmd.append(f"--log-file={logfile}")
        if scenario == "grpc":
            cmd += ["-d", self.req_bin] + GRPC_HEADERS
        return cmd + [url]

    def measure(self, kind, target, scenario, rep, duration):
        rate = kind == "rate"
        tag = f"{kind}-{scenario}-{target}-{rep}"
        use_wrk = scenario == "h1" and not rate
        # Per-request logging costs h2load a write(2) per request (about a
        # third of its throughput on one core), so maximum-throughput runs
        # go without it; their percentiles come from a separate logged run.
        logfile = os.path.join(self.out, f"{tag}.h2load.tsv") if rate else None
        cmd = self.load_cmd(target, scenario, duration, logfile, rate)
        if target == "portico":
            self.commands[f"{kind}/{scenario}"] = " ".join(shlex.quote(c) for c in cmd)
        pr = self.procs.get(target)
        pids = pr.pids() if pr else []
        c0 = cpu_ticks(pids)
        b0 = cpu_busy_ticks(self.a.proxy_cpu)
        k0 = cpu_busy_ticks(self.a.client_cpu)
        t0 = time.time()
        res = run(cmd, duration + 60)
        wall = time.time() - t0
        c1 = cpu_ticks(pids)
        b1 = cpu_busy_ticks(self.a.proxy_cpu)
        k1 = cpu_busy_ticks(self.a.client_cpu)
        with open(os.path.join(self.out, f"{tag}.out"), "w") as f:
            f.write(" ".join(cmd) + "\n" + res.stdout + res.stderr)
        if res.returncode != 0:
            self.note(f"{tag}: load generator exited {res.returncode}: {res.stderr.strip()[-300:]}")
        try:
            r = parse_wrk(res.stdout) if use_wrk else parse_h2load(res.stdout, logfile)
        except (AttributeError, ValueError, OSError) as e:
            self.note(f"{tag}: could not parse load generator output ({e}); see {tag}.out")
            return None
        if logfile and os.path.exists(logfile) and not self.a.keep_logs:
            os.unlink(logfile)
        r["wall_s"] = wall
        r["rep"] = rep
        r["client_cpu_busy_pct"] = 100.0 * (k1 - k0) / CLK_TCK / wall
        if pr:
            r["proxy_cpu_s"] = (c1 - c0) / CLK_TCK
            r["req_per_cpu_s"] = r["ok"] / r["proxy_cpu_s"] if r["proxy_cpu_s"] > 0 else float("nan")
            other = (b1 - b0) - (c1 - c0)
            r["cpu0_other_pct"] = max(0.0, 100.0 * other / CLK_TCK / wall)
            if not pr.alive():
                self.note(f"{target} DIED during {tag} (exit status {pr.p.returncode}); see {pr.logpath}")
        if kind == "throughput" and not use_wrk and self.a.latency_duration > 0:
            ltag = f"latency-{scenario}-{target}-{rep}"
            lfile = os.path.join(self.out, f"{ltag}.h2load.tsv")
            lcmd = self.load_cmd(target, scenario, self.a.latency_duration, lfile)
            if target == "portico":
                self.commands[f"latency/{scenario}"] = " ".join(shlex.quote(c) for c in lcmd)
            lres = run(lcmd, self.a.latency_duration + 60)
            with open(os.path.join(self.out, f"{ltag}.out"), "w") as f:
                f.write(" ".join(lcmd) + "\n" + lres.stdout + lres.stderr)
            try:
                lr = parse_h2load(lres.stdout, lfile)
                for k in ("p50_ms", "p99_ms", "p999_ms"):
                    r[k] = lr[k]
                r["latency_run_rps"] = lr["rps"]
                if lr["non2xx"] or lr["errors"]:
                    self.note(f"{ltag}: {lr['non2xx']} non-2xx responses, {lr['errors']} errors/timeouts "
                              f"(of {lr['requests']}); see {ltag}.out")
                r["non2xx"] += lr["non2xx"]
                r["errors"] += lr["errors"]
            except (AttributeError, ValueError, OSError) as e:
                self.note(f"{ltag}: could not parse load generator output ({e}); see {ltag}.out")
            if os.path.exists(lfile) and not self.a.keep_logs:
                os.unlink(lfile)
        if r["non2xx"] or r["errors"]:
            self.note(f"{tag}: {r['non2xx']} non-2xx responses, {r['errors']} errors/timeouts "
                      f"(of {r['requests']}); see {tag}.out")
        log(f"{tag}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms"
            + (f" proxy cpu {r['proxy_cpu_s']:.2f}s -> {r['req_per_cpu_s']:.0f} req/cpu-s"
               f" (other load on cpu{self.a.proxy_cpu}: {r['cpu0_other_pct']:.0f}%)" if pr else ""))
        return r

    def warmup(self, target, scenario):
        cmd = self.load_cmd(target, scenario, self.a.warmup)
        cmd = [c for c in cmd if not c.startswith("--log-file")]
        run(cmd, self.a.warmup + 60)

    # ------------------------------------------------------------ memory
    def memory(self):
        n = self.a.idle_conns
        for name in PROXIES:
            samples = []
            for rep in range(self.a.reps):
                pr = self.start_proxy(name)
                try:
                    # a little traffic first, so lazily initialised state exists
                    run(["taskset", "-c", str(self.a.client_cpu), "h2load", "-n200", "-c2", "-m5",
                         self.urls(name, "h2c")], 30)
                    time.sleep(0.5)
                    pids = pr.pids()
                    rss0 = rss_kib(pids)
                    idle = subprocess.Popen(["taskset", "-c", str(self.a.client_cpu), sys.executable,
                                             os.path.join(BENCH, "idle_h2.py"), "127.0.0.1",
                                             str(self.ports[f"{name.upper()}_H2"]), str(n)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True, preexec_fn=isolate)
                    try:
                        line = idle.stdout.readline().split()
                        if len(line) != 3 or line[0] != "ready":
                            raise RuntimeError(f"idle_h2.py: {line} {idle.stderr.read()[:300]}")
                        opened, failed = int(line[1]), int(line[2])
                        time.sleep(1.0)
                        rss1 = rss_kib(pr.pids())
                        idle.stdin.write("\n")
                        idle.stdin.flush()
                        still = idle.stdout.readline().split()
                        idle.wait(30)
                    finally:
                        if idle.poll() is None:
                            idle.kill()
                            idle.wait()
                    if failed:
                        self.note(f"memory {name}: {failed} of {n} idle h2c connections failed")
                    still_open = int(still[1]) if len(still) == 2 else -1
                    if still_open != opened:
                        self.note(f"memory {name}: only {still_open} of {opened} idle connections "
                                  f"were still open after the RSS sample")
                    per_k = (rss1 - rss0) / opened * 1000 if opened else float("nan")
                    samples.append({"rss0_kib": rss0, "rss1_kib": rss1, "opened": opened,
                                    "kib_per_1000": per_k})
                    log(f"memory {name} #{rep + 1}: RSS {rss0} KiB -> {rss1} KiB with {opened} idle "
                        f"h2c connections: {per_k:.0f} KiB per 1000")
                finally:
                    self.stop(name)
            self.results["memory"][name] = samples

    def wait_quiet(self):
        """Wait (bounded) until other users' jobs leave both CPUs mostly idle."""
        a = self.a
        cpus = (a.proxy_cpu, a.client_cpu)
        end = time.time() + a.wait_quiet
        while True:
            b0 = [cpu_busy_ticks(c) for c in cpus]
            time.sleep(3)
            pct = [100.0 * (cpu_busy_ticks(c) - b0[i]) / CLK_TCK / 3 for i, c in enumerate(cpus)]
            busy = ", ".join(f"cpu{c} {p:.0f}%" for c, p in zip(cpus, pct))
            if max(pct) <= a.quiet_pct:
                self.quiet = f"machine quiet before the load runs ({busy} busy over 3 s)"
                log(self.quiet)
                return
            if time.time() >= end:
                self.quiet = (f"machine still busy after waiting {a.wait_quiet}s for other users' jobs "
                              f"({busy} busy over 3 s) - measured anyway")
                self.note(self.quiet)
                return
            log(f"waiting for a quiet machine: {busy} busy (threshold {a.quiet_pct}%)")

    # ------------------------------------------------------------ main
    def main(self):
        a = self.a
        self.started = time.time()
        self.load_start = loadavg()
        log(f"output: {self.out}")
        self.prepare()
        log(f"ports: {self.ports}")
        self.start_backend()
        if a.idle_conns > 0:
            log(f"memory: {a.idle_conns} idle h2c connections per proxy, {a.reps} fresh start(s) each")
            self.memory()
        for name in PROXIES:
            self.start_proxy(name)
        self.sanity()
        self.quiet = "not checked"
        if a.wait_quiet:
            self.wait_quiet()
        # idle CPU of each proxy (busy loops would show here)
        pids = {n: self.procs[n].pids() for n in PROXIES}
        c0 = {n: cpu_ticks(p) for n, p in pids.items()}
        time.sleep(a.idle_window)
        self.results["idle_cpu"] = {n: (cpu_ticks(p) - c0[n]) / CLK_TCK for n, p in pids.items()}
        log(f"idle CPU over {a.idle_window}s: {self.results['idle_cpu']}")

        for kind, dur in (("throughput", a.duration), ("rate", a.rate_duration)):
            if dur <= 0:
                continue
            for s in a.scenarios:
                self.results[kind][s] = {t: [] for t in TARGETS}
                if kind == "throughput":
                    for t in TARGETS:
                        self.warmup(t, s)
                for rep in range(a.reps):
                    order = TARGETS[rep % len(TARGETS):] + TARGETS[:rep % len(TARGETS)]
                    for t in order:
                        r = self.measure(kind, t, s, rep + 1, dur)
                        if r:
                            self.results[kind][s][t].append(r)
        for name in PROXIES:
            pr = self.procs[name]
            if not pr.alive():
                self.note(f"{name} is not running at the end of the run (exit status {pr.p.returncode})")
        self.route_bench()
        self.load_end = loadavg()
        self.elapsed = time.time() - self.started
        self.stop_all()
        self.scan_logs()
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump({"ports": self.ports, "results": self.results, "observations": self.observations,
                       "commands": self.commands}, f, indent=1)
        write_results(self)
        log(f"wrote {a.results} (raw outputs in {self.out}); took {self.elapsed / 60:.1f} min")

    def route_bench(self):
        """The router's match time with 10,000 routes (bench_route_match), pinned to the
        proxy CPU like the proxies; its output goes into RESULTS.md as is."""
        self.results["route_bench"] = None
        exe = self.a.route_bench
        if not exe or not os.path.exists(exe):
            self.note("bench_route_match not built: route matching not measured")
            return
        cmd = ["taskset", "-c", str(self.a.proxy_cpu), exe, "10000", "200000"]
        log("route matching: " + " ".join(cmd))
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        self.results["route_bench"] = {"cmd": " ".join(cmd), "out": p.stdout.strip(), "rc": p.returncode}

    def scan_logs(self):
        for name in PROXIES + ["backend"]:
            for path in (os.path.join(self.out, f"{name}.log"),
                         os.path.join(self.run_dir, f"{'nginx-proxy' if name == 'nginx' else name}-error.log")):
                if not os.path.exists(path):
                    continue
                with open(path, errors="replace") as f:
                    lines = [l.rstrip() for l in f
                             if re.search(r"\b(warn|warning|error|crit|alert|emerg|fatal|ALERT|WARNING)\b",
                                          l, re.I)]
                if lines:
                    uniq = sorted(set(re.sub(r"^\S+ \S+ ", "", l) for l in lines))[:8]
                    self.note(f"{os.path.basename(path)}: {len(lines)} warning/error line(s), e.g.: "
                              + " | ".join(uniq))


# --------------------------------------------------------------------------
# RESULTS.md


def med(vals):
    vals = [v for v in vals if v == v]
    return statistics.median(vals) if vals else float("nan")


def spread(vals):
    vals = [v for v in vals if v == v]
    if len(vals) < 2:
        return ""
    m = statistics.median(vals)
    if m == 0:
        return ""
    return f" ±{100 * (max(vals) - min(vals)) / 2 / m:.0f}%"


def fmt(v, nd=0):
    if v != v:
        return "n/a"
    return f"{v:,.{nd}f}"


def sh(cmd):
    try:
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or r.stderr.strip()
    except subprocess.TimeoutExpired:
        return "?"


def write_results(b):
    a = b.a
    R = b.results
    L = []
    w = L.append
    cpu_model = sh("lscpu | sed -n 's/^Model name: *//p'")
    commit = sh(f"git -C {ROOT} rev-parse --short HEAD")
    dirty = sh(f"git -C {ROOT} status --porcelain -- src include CMakeLists.txt | wc -l")
    w("# portico vs nginx vs HAProxy")
    w("")
    w(f"Generated by `bench/run.sh{' --quick' if a.quick else ''}` on "
      f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} (took {b.elapsed / 60:.1f} min). "
      "Raw outputs: `bench/out/` (not committed).")
    w("")
    w("## Machine and versions")
    w("")
    w(f"* CPU: {cpu_model}; `nproc` = {os.cpu_count()}; kernel {platform.release()}; "
      f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB RAM")
    w(f"* {sh(a.portico + ' --version 2>&1 | head -1') or 'portico ?'} at commit {commit}"
      f"{f' with {dirty} uncommitted change(s) under src/' if dirty not in ('', '0') else ''}, "
      "RelWithDebInfo (`-O2 -g`)")
    w(f"* {sh('nginx -v 2>&1')}; {sh('haproxy -v | head -1').split(' - ')[0]}; "
      f"{sh('wrk --version 2>&1 | head -1').split(' Copyright')[0]}; {sh('h2load --version')}")
    w(f"* Load average before / after the run: {b.load_start} / {b.load_end}; {b.quiet}. "
      "This machine is shared with other engineers' builds, tests and fuzzers; the "
      f"\"other load on CPU {a.proxy_cpu}\" column is the CPU time other processes took on the "
      "proxy's CPU during each run (from /proc/stat minus the proxy's own time).")
    w("")
    w("## Method")
    w("")
    w("* Priority: " + {
        "autogroup": "every benchmark process (proxies, backend, load generators) runs in its own "
                     "session, i.e. its own scheduler autogroup, at autogroup nice -20, so that other "
                     "users' jobs on this shared machine (in their own autogroups) take little of the "
                     "benchmark's CPUs. Same for every target.",
        "rr": "every benchmark process runs SCHED_RR priority 1 (note: RT throttling, 950 ms per "
              "1 s, stalls a saturated CPU for 50 ms each second, which inflates p99 at maximum "
              "throughput).",
        "none": "default scheduling (other users' jobs compete freely for the CPUs)."}[a.sched])
    w(f"* Pinning (`taskset`): each proxy (all its processes and threads) on CPU {a.proxy_cpu}; the load "
      f"generator, the backend and the idle-connection client on CPU {a.client_cpu}. Direct runs use the "
      f"same placement (backend and load generator sharing CPU {a.client_cpu}).")
    w("* One worker each: nginx `worker_processes 1`, HAProxy `nbthread 1`, portico `workers: 1`. "
      "Access logs off for all three (portico `access_log: {enabled: false}`). Keep-alive to upstreams: "
      "nginx `upstream { keepalive 64; }` + `proxy_http_version 1.1` + `proxy_set_header Connection \"\"`; "
      "HAProxy `http-reuse always`; portico pools by default. `keepalive_requests` raised on nginx so it "
      "does not close connections every 1000 requests. portico keeps its default `request-id` filter "
      "(it generates an id and adds `x-request-id` to every request and response); nginx and HAProxy "
      "do nothing comparable. Configurations: `bench/conf/`.")
    w("* Backend: `bench_backend` (`bench/backend.c`, one thread, libevent + nghttp2): 200 with a "
      "100-byte `text/plain` body over HTTP/1.1 and h2c; for `content-type: application/grpc` it waits "
      "for the whole request, then answers 200, `content-type: application/grpc`, one 27-byte gRPC "
      "message and trailer `grpc-status: 0`. Its direct numbers are the \"direct\" rows.")
    w("* Upstream protocol per scenario: HTTP/1.1 scenario: HTTP/1.1 upstream for all. h2c scenario: "
      "portico h2c -> h2c, HAProxy h2c -> h2 (`proto h2`), **nginx h2c -> HTTP/1.1** (nginx cannot "
      "proxy HTTP/2 upstream except via grpc_pass). gRPC: h2c both sides for all (nginx `grpc_pass`).")
    w(f"* Maximum throughput: HTTP/1.1 with `wrk -t1 -c{a.h1_conns} -d{a.duration}s --latency` "
      f"(keep-alive); h2c and gRPC with `h2load -t1 -c{a.h2_conns} -m{a.h2_streams} -D {a.duration}`; "
      f"gRPC requests are POSTs with `content-type: application/grpc`, `te: trailers` and a 22-byte "
      f"body (5-byte gRPC prefix + 17-byte protobuf). A {a.warmup}s unmeasured warm-up per target and "
      f"scenario precedes the first repetition. Latencies: wrk's own percentiles; for h2c and gRPC, "
      f"h2load's mean from the same run, and p50/p99 from a separate {a.latency_duration} s run with "
      f"`--log-file` (per-request logging costs h2load about a third of its throughput, so it is kept "
      f"out of the runs that measure req/s and CPU).")
    w(f"* Requests per proxy CPU-second: 2xx responses / (utime+stime of all the proxy's processes, "
      f"from /proc/<pid>/stat before and after the load run). Resolution 1/{CLK_TCK} s.")
    w(f"* Fixed moderate rate: `h2load --rps` (wrk2 is not packaged in Debian; h2load is), "
      f"{a.rate} req/s in total, {a.rate * a.rate_duration} requests (about {a.rate_duration} s): "
      f"HTTP/1.1 `--h1 -c{a.rate_h1_conns} -m1 --rps={max(1, round(a.rate / a.rate_h1_conns))}`, "
      f"h2c and gRPC `-c{a.h2_conns} -m{a.h2_streams} --rps={max(1, round(a.rate / a.h2_conns))}`, "
      "both with `-r1 --rate-period=1ms`. Each h2load client sends its share on a timer that ticks "
      "every 10 ms; connecting the clients 1 ms apart spreads the ticks, so requests arrive in small "
      "groups every millisecond instead of one burst every 10 ms. It is an open-loop load as long as "
      "responses come back within a tick. Added latency = the proxy's percentile minus the direct "
      "percentile (medians over repetitions); percentiles from h2load's per-request log.")
    w(f"* Memory: each proxy freshly started, 200 warm-up requests over h2c, then "
      f"`bench/idle_h2.py` opens {a.idle_conns} h2c connections (preface + SETTINGS, ACKs the "
      "server's SETTINGS, then idles); VmRSS summed over the proxy's processes before and 1 s after; "
      "KiB per 1,000 connections = (RSS_with_N - RSS_before) / N x 1000.")
    w(f"* Repetitions: {a.reps}; the tables give the median (± half the min-max range as a % of the "
      "median where it is above 0). Targets are measured interleaved, in a rotating order, so slow "
      "drift in background load spreads across all of them.")
    w("")
    w("Reproduce (as root on Debian 12, from the repository root):")
    w("")
    w("```sh")
    w(f"bench/run.sh{' --quick' if a.quick else ''}")
    w("```")
    w("")
    w("Commands used (for the portico target; other targets differ only in the port):")
    w("")
    w("```")
    for k in sorted(b.commands):
        w(f"{k}: {b.commands[k].replace(ROOT + '/', '')}")
    w("```")
    w("")

    scen_title = {"h1": "HTTP/1.1 (wrk, keep-alive)", "h2c": "h2c (h2load)", "grpc": "gRPC unary (h2load)"}
    verdicts = []
    if R["throughput"]:
        w("## Maximum throughput")
        w("")
    for s in [x for x in a.scenarios if x in R["throughput"]]:
        rows = R["throughput"].get(s, {})
        w(f"### {scen_title[s]}")
        w("")
        w(f"| target | req/s | mean ms | p50 ms | p99 ms | proxy CPU s (busy %) | req per proxy CPU-s | "
          f"non-2xx / errors | other load on CPU {a.proxy_cpu} | CPU {a.client_cpu} busy |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        best = {}
        for t in TARGETS:
            rs = rows.get(t, [])
            if not rs:
                w(f"| {t} | no data | | | | | | | | |")
                continue
            rps = [r["rps"] for r in rs]
            rpc = [r.get("req_per_cpu_s", float("nan")) for r in rs]
            best[t] = med(rpc)
            label = t + (" (h2c -> HTTP/1.1 upstream)" if (t == "nginx" and s == "h2c") else "")
            w(f"| {label} | {fmt(med(rps))}{spread(rps)} | {fmt(med([r['mean_ms'] for r in rs]), 2)} | "
              f"{fmt(med([r['p50_ms'] for r in rs]), 2)} | "
              f"{fmt(med([r['p99_ms'] for r in rs]), 2)} | "
              + (f"{fmt(med([r['proxy_cpu_s'] for r in rs]), 2)} "
                 f"({fmt(med([100 * r['proxy_cpu_s'] / r['duration_s'] for r in rs]))}%) | "
                 f"{fmt(med(rpc))}{spread(rpc)} | "
                 if t != "direct" else "– | – | ")
              + f"{sum(r['non2xx'] for r in rs)} / {sum(r['errors'] for r in rs)} | "
              + (f"{fmt(med([r['cpu0_other_pct'] for r in rs]))}% | " if t != "direct" else "– | ")
              + f"{fmt(med([r['client_cpu_busy_pct'] for r in rs]))}% |")
        w("")
        if s != "h1" and a.latency_duration > 0:
            lr = {t: med([r.get("latency_run_rps", float("nan")) for r in rows.get(t, [])]) for t in TARGETS}
            w(f"req/s, mean and CPU columns: `h2load -D {a.duration}` without per-request logging. p50/p99: "
              f"a separate {a.latency_duration} s run right after it with `--log-file` (h2load then "
              "spends a write(2) per request and drives less load: "
              + ", ".join(f"{t} {fmt(lr[t])}" for t in TARGETS) + " req/s).")
            w("")
        unsat = [t for t in PROXIES if rows.get(t) and
                 med([100 * r["proxy_cpu_s"] / r["duration_s"] for r in rows[t]]) < 90]
        if unsat:
            w(f"Not CPU-bound here (proxy busy < 90%): {', '.join(unsat)}. The other side (load generator "
              f"+ backend on CPU {a.client_cpu}, see its busy column) or latency limited their "
              "throughput; their requests per CPU-second are still comparable, and a proxy that is "
              "less busy usually spends more CPU per request (fewer requests per wake-up), not less.")
            w("")
        if all(k in best for k in PROXIES):
            rival = max(("nginx", "haproxy"), key=lambda k: best[k])
            ratio = best["portico"] / best[rival]
            ok = ratio >= 1.25
            verdicts.append((f"{s} req per CPU-s", ok))
            per_rep = []
            by_rep = {t: {r["rep"]: r.get("req_per_cpu_s", float("nan")) for r in rows.get(t, [])}
                      for t in PROXIES}
            for rep in sorted(by_rep["portico"]):
                if rep in by_rep["nginx"] and rep in by_rep["haproxy"]:
                    per_rep.append(by_rep["portico"][rep] / max(by_rep["nginx"][rep], by_rep["haproxy"][rep]))
            w(f"**portico / {rival} (the better of nginx and HAProxy) in requests per proxy CPU-second: "
              f"{ratio:.2f}x** (target >= 1.25x: "
              + ("met)" if ok else f"**missed** by {1.25 - ratio:.2f}x: portico would need "
                 f"{100 * (1.25 / ratio - 1):.0f}% more, {fmt(1.25 * best[rival])} req per CPU-s)")
              + f". portico / nginx {best['portico'] / best['nginx']:.2f}x, portico / HAProxy "
                f"{best['portico'] / best['haproxy']:.2f}x."
              + (" Within each repetition, portico / the better of the two: "
                 + ", ".join(f"{x:.2f}x" for x in per_rep) + "." if len(per_rep) > 1 else ""))
            w("")

    if R["rate"]:
        w("## Added latency at a fixed moderate rate")
        w("")
    for s in [x for x in a.scenarios if x in R["rate"]]:
        rows = R["rate"].get(s, {})
        w(f"### {scen_title[s].split(' (')[0]} at {a.rate} req/s")
        w("")
        w("| target | achieved req/s | p50 ms | p99 ms | p99.9 ms | added p50 ms | added p99 ms | "
          "non-2xx / errors |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        d = rows.get("direct", [])
        d50 = med([r["p50_ms"] for r in d]) if d else float("nan")
        d99 = med([r["p99_ms"] for r in d]) if d else float("nan")
        added = {}
        for t in TARGETS:
            rs = rows.get(t, [])
            if not rs:
                w(f"| {t} | no data | | | | | | |")
                continue
            p50 = med([r["p50_ms"] for r in rs])
            p99s = [r["p99_ms"] for r in rs]
            p99 = med(p99s)
            added[t] = p99 - d99
            w(f"| {t} | {fmt(med([r['rps'] for r in rs]))} | {fmt(p50, 3)} | {fmt(p99, 3)}{spread(p99s)} | "
              f"{fmt(med([r['p999_ms'] for r in rs]), 3)} | "
              + ("– | – | " if t == "direct" else f"{fmt(p50 - d50, 3)} | {fmt(p99 - d99, 3)} | ")
              + f"{sum(r['non2xx'] for r in rs)} / {sum(r['errors'] for r in rs)} |")
        w("")
        if all(k in added for k in PROXIES):
            rival = min(("nginx", "haproxy"), key=lambda k: added[k])
            ok = added["portico"] <= added[rival]
            verdicts.append((f"{s} added p99", ok))
            w(f"**portico's added p99: {added['portico']:.3f} ms vs {rival}'s {added[rival]:.3f} ms "
              f"(the lower of nginx and HAProxy)** (target <=: "
              + ("met)." if ok else f"**missed** by {added['portico'] - added[rival]:.3f} ms).")
              )
            w("")

    if R["memory"]:
        w(f"## Memory: RSS per 1,000 idle HTTP/2 connections ({a.idle_conns} connections)")
        w("")
        w("| proxy | RSS before (KiB) | RSS with N idle (KiB) | KiB per 1,000 idle h2c connections |")
        w("|---|---:|---:|---:|")
        for t in PROXIES:
            ss = R["memory"].get(t, [])
            if not ss:
                w(f"| {t} | no data | | |")
                continue
            pk = [x["kib_per_1000"] for x in ss]
            w(f"| {t} | {fmt(med([x['rss0_kib'] for x in ss]))} | {fmt(med([x['rss1_kib'] for x in ss]))} | "
              f"{fmt(med(pk))}{spread(pk)} |")
        w("")
        w("nginx's figure is master + worker (the master does not change); HAProxy and portico are one "
          "process each (portico's figure includes all its threads).")
        w("")
    rb = R.get("route_bench")
    if rb:
        w("## Route matching (10,000 routes)")
        w("")
        med_ns = re.search(r"^trie .*median (\d+)", rb["out"], re.M)
        w(f"`{rb['cmd']}` (portico's compiled router, a linear scan for contrast; batches of 64 "
          "lookups timed with clock_gettime):")
        w("")
        w("```")
        w(rb["out"])
        w("```")
        w("")
        if med_ns:
            ok = int(med_ns.group(1)) <= 1000
            verdicts.append(("route match median <= 1 us", ok))
            w(f"**Median match time: {med_ns.group(1)} ns** (target <= 1,000 ns: {'met' if ok else '**missed**'}).")
            w("")
    w("## Summary against the targets")
    w("")
    for name, ok in verdicts:
        w(f"* {name}: {'met' if ok else '**missed**'}")
    w("")
    w(f"Idle CPU of each proxy over {a.idle_window}s with no traffic: "
      + ", ".join(f"{n} {v:.2f} s" for n, v in R["idle_cpu"].items()) + ".")
    w("")
    w("## Observations")
    w("")
    if b.observations:
        for o in b.observations:
            w(f"* {o}")
    else:
        w("* No errors, non-2xx responses, crashes or warnings from any proxy in this run.")
    w("")
    # Sections other scripts own (bench/resilience.py) are kept as they are.
    kept = ""
    try:
        with open(a.results) as f:
            old = f.read()
        at = old.find("<!-- section: ")
        if at >= 0:
            kept = "\n" + old[at:]
    except FileNotFoundError:
        pass
    with open(a.results, "w") as f:
        f.write("\n".join(L) + kept)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repetition, short durations")
    ap.add_argument("--portico", default=os.path.join(ROOT, "build-bench", "portico"))
    ap.add_argument("--backend", default=os.path.join(ROOT, "build-bench", "bench", "bench_backend"))
    ap.add_argument("--out", help="raw output directory (default bench/out/<timestamp>)")
    ap.add_argument("--results", default=os.path.join(BENCH, "RESULTS.md"))
    ap.add_argument("--reps", type=int)
    ap.add_argument("--duration", type=int, help="seconds per maximum-throughput run")
    ap.add_argument("--rate-duration", type=int, help="seconds per fixed-rate run")
    ap.add_argument("--latency-duration", type=int, help="seconds of the logged h2load run that gives "
                    "p50/p99 at maximum throughput for h2c and gRPC (default 3, --quick 2)")
    ap.add_argument("--rate", type=int, default=5000, help="fixed moderate rate, total req/s")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--idle-conns", type=int)
    ap.add_argument("--wait-quiet", type=int, help="seconds to wait at most for other users' jobs to "
                    "leave the CPUs (default 60, --quick 0)")
    ap.add_argument("--quiet-pct", type=float, default=15.0,
                    help="'quiet' means at most this %% busy on each CPU")
    ap.add_argument("--idle-window", type=int, default=3)
    ap.add_argument("--h1-conns", type=int, default=50)
    ap.add_argument("--rate-h1-conns", type=int, default=50)
    ap.add_argument("--h2-conns", type=int, default=10)
    ap.add_argument("--h2-streams", type=int, default=10)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma-separated subset of " + ",".join(SCENARIOS))
    ap.add_argument("--proxy-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--sched", choices=["autogroup", "rr", "none"], default="autogroup",
                    help="scheduling of every benchmark process: own session/autogroup at nice -20 "
                         "(default), SCHED_RR priority 1, or unchanged; the machine is shared")
    ap.add_argument("--keep-logs", action="store_true", help="keep h2load per-request logs")
    ap.add_argument("--route-bench", default=os.path.join(ROOT, "build-bench", "bench", "bench_route_match"),
                    help="bench_route_match binary (route matching with 10,000 routes)")
    a = ap.parse_args()
    a.scenarios = [x for x in a.scenarios.split(",") if x]
    if any(x not in SCENARIOS for x in a.scenarios):
        ap.error(f"--scenarios: choose from {','.join(SCENARIOS)}")
    a.portico = os.path.abspath(a.portico)
    a.backend = os.path.abspath(a.backend)
    if a.reps is None:
        a.reps = 1 if a.quick else 3
    if a.duration is None:
        a.duration = 3 if a.quick else 8
    if a.rate_duration is None:
        a.rate_duration = 3 if a.quick else 8
    if a.latency_duration is None:
        a.latency_duration = 2 if a.quick else 3
    if a.wait_quiet is None:
        a.wait_quiet = 0 if a.quick else 60
    if a.idle_conns is None:
        a.idle_conns = 1000 if a.quick else 4000
    # Every process started from here inherits this priority (and the
    # helpers — curl, nghttp, the idle client — this CPU; the proxies,
    # backend and load generators are pinned explicitly with taskset).
    os.sched_setaffinity(0, {a.client_cpu})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.idle_conns + 100 > resource.getrlimit(resource.RLIMIT_NOFILE)[0]:
        ap.error(f"--idle-conns {a.idle_conns} needs a higher open-file limit (ulimit -n)")
    ISOLATE["mode"] = a.sched
    if a.sched == "rr":
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
    b = Bench(a)
    try:
        b.main()
    finally:
        b.stop_all()


if __name__ == "__main__":
    main()
