"""Integration-test harness: real portico processes and real backends.

Everything runs on loopback (127.0.0.1 or ::1), on free ports, in temporary
directories, in processes started here and stopped by PID. Typical use:

    with harness.GrpcBackend() as be, harness.Portico({
            "listeners": [{"name": "main", "address": "127.0.0.1:0",
                           "protocols": ["http1", "h2c"]}],
            "services": [{"name": "echo", "protocol": "grpc",
                          "instances": [be.instance()]}],
            "routes": [{"name": "echo", "path_prefix": "/portico.test.Echo",
                        "service": "echo"}]}) as gw:
        channel = harness.grpc_channel(gw.addr("main"))

A listener address with port 0 gets a free port chosen here (and kept across
reloads by listener name); if the gateway then fails with "address in use"
the start is retried with new ports. Unless the config sets `admin` itself,
each gateway also gets its own free admin port (Portico.admin_addr).

Environment:
  PORTICO_BIN     the gateway binary (default <repo>/build/portico)
  PORTICO_DIRECT  "1": direct mode, tests talk to backends without the gateway
  PORTICO_PYTHON  interpreter for backend processes (default /usr/bin/python3)
  PORTICO_KEEP_TMP "1": keep temporary directories (logs, configs) for debugging
"""

import atexit
import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS_DIR = os.path.join(HERE, "backends")
if BACKENDS_DIR not in sys.path:
    sys.path.append(BACKENDS_DIR)
import backend_util as _util  # noqa: E402  (puts interop/ on sys.path)

REPO_ROOT = _util.REPO_ROOT
INTEROP_DIR = _util.INTEROP_DIR
PYTHON = os.environ.get("PORTICO_PYTHON", "/usr/bin/python3")
DEFAULT_BIN = os.path.join(REPO_ROOT, "build", "portico")

pattern = _util.pattern
load_echo = _util.load_echo


def _truthy(v):
    return str(v or "").strip().lower() in ("1", "true", "yes", "on")


DIRECT = _truthy(os.environ.get("PORTICO_DIRECT"))
KEEP_TMP = _truthy(os.environ.get("PORTICO_KEEP_TMP"))


def portico_bin():
    return os.environ.get("PORTICO_BIN") or DEFAULT_BIN


def is_asan_binary(path=None):
    """True if the binary is built with AddressSanitizer (PORTICO_SANITIZE),
    whose quarantine and shadow memory change what RSS measurements mean."""
    path = path or portico_bin()
    needle = b"__asan_init"
    try:
        with open(path, "rb") as f:
            tail = b""
            while True:
                block = f.read(1 << 20)
                if not block:
                    return False
                if needle in tail + block:
                    return True
                tail = block[-len(needle):]
    except OSError:
        return False


class HarnessError(Exception):
    pass


class StartError(HarnessError):
    pass


# ---------------------------------------------------------------------------
# small utilities


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago on `host` (bind to port 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host.strip("[]"), 0))
        return s.getsockname()[1]


def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def hostport(host, port):
    """'host:port', with brackets around IPv6 literals."""
    return "%s:%d" % (_util.host_for_url(host), port)


def split_address(address):
    """'127.0.0.1:80' | '[::1]:80' | ':80' -> (host, port); host '' = any."""
    m = re.match(r"^\[([^\]]+)\]:(\d+)$", address)
    if m:
        return m.group(1), int(m.group(2))
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ValueError("address without port: %r" % address)
    return host, int(port)


def can_connect(host, port, timeout=1.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((host, port))
            return True
    except OSError:
        return False


def wait_until(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Poll `predicate` until it returns a truthy value (returned) or
    `timeout` seconds pass (HarnessError)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            raise HarnessError("timed out after %.1fs waiting for %s%s" % (
                timeout, message, " (last error: %r)" % (last_exc,) if last_exc else ""))
        time.sleep(interval)


def rss_kb(pid):
    """Resident set size of `pid` in KiB, from /proc/<pid>/status."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise HarnessError("no VmRSS for pid %d" % pid)


class TempDir(object):
    """A temporary directory, removed on exit (kept when PORTICO_KEEP_TMP=1)."""

    def __init__(self, prefix="portico-it-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    def write(self, name, data, mode=0o644):
        p = self.join(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        os.chmod(p, mode)
        return p

    def cleanup(self):
        if self.path and not KEEP_TMP:
            shutil.rmtree(self.path, ignore_errors=True)
        elif self.path:
            sys.stderr.write("harness: kept %s\n" % self.path)
        self.path = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False


def _read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _terminate(proc, sig=signal.SIGTERM, timeout=10.0):
    """Signal one process by PID and wait; SIGKILL after `timeout`.
    Returns (exit code, True if it had to be killed)."""
    if proc.poll() is not None:
        return proc.returncode, False
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return proc.wait(timeout=30), True


# ---------------------------------------------------------------------------
# YAML


_PLAIN_RE = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./\-]*$")
_YAML_SPECIAL = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def _yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    s = str(v)
    if _PLAIN_RE.match(s) and s.lower() not in _YAML_SPECIAL:
        return s
    return json.dumps(s, ensure_ascii=False)


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists and scalars (lists of scalars in flow
    style), the way a person writes a portico config."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            key = _yaml_scalar(k)
            if isinstance(v, dict) and v:
                lines.append("%s%s:\n%s" % (pad, key, to_yaml(v, indent + 2)))
            elif isinstance(v, list) and v and any(isinstance(i, (dict, list)) for i in v):
                lines.append("%s%s:\n%s" % (pad, key, to_yaml(v, indent + 2)))
            else:
                lines.append("%s%s: %s\n" % (pad, key, _flow(v)))
        return "".join(lines)
    if isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                body = to_yaml(item, indent + 2)
                lines.append("%s- %s" % (pad, body[indent + 2:]))
            else:
                lines.append("%s- %s\n" % (pad, _flow(item)))
        return "".join(lines)
    return pad + _yaml_scalar(obj) + "\n"


def _flow(v):
    if isinstance(v, list):
        return "[" + ", ".join(_flow(i) for i in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s: %s" % (_yaml_scalar(k), _flow(x)) for k, x in v.items()) + "}"
    return _yaml_scalar(v)


# ---------------------------------------------------------------------------
# the gateway


def _listeners_from_yaml(text):
    """(name, address, tls) of each listener in a YAML text the harness did
    not build: parsed with python3-yaml when installed, else only the
    `address:` keys are read (names then default to addresses)."""
    try:
        import yaml
        doc = yaml.safe_load(text)
        if isinstance(doc, dict) and isinstance(doc.get("listeners"), list):
            return [(l.get("name") or l["address"], l["address"], bool(l.get("tls")))
                    for l in doc["listeners"] if isinstance(l, dict) and "address" in l]
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - deliberately invalid YAML: fall back
        pass
    out = []
    for m in re.finditer(r"address:\s*[\"']?([^\"'\s#,}]+)", text):
        out.append((m.group(1), m.group(1), False))
    return out


ADMIN_PORT_KEY = "\0admin"


def _strip_yaml_comments(text):
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))


def with_ports(config):
    """A copy of `config` whose listener addresses with port 0 have a free
    port instead."""
    cfg = json.loads(json.dumps(config))
    for lst in cfg.get("listeners") or []:
        host, port = split_address(lst["address"])
        if port == 0:
            p = free_port(host or "127.0.0.1")
            lst["address"] = hostport(host, p) if host else ":%d" % p
    return cfg


def check_config(config=None, yaml_text=None, binary=None, timeout=30):
    """Run `portico --check-config` on a config (a dict: port-0 listener
    addresses get a free port; or YAML text, verbatim); return (exit code,
    stderr with the temporary file's path shown as "portico.yaml")."""
    with TempDir() as tmp:
        text = yaml_text if yaml_text is not None else to_yaml(with_ports(config))
        path = tmp.write("portico.yaml", text)
        proc = subprocess.run([binary or portico_bin(), "--check-config", path],
                              capture_output=True, timeout=timeout)
        return proc.returncode, proc.stderr.decode("utf-8", "replace").replace(path, "portico.yaml")


class Portico(object):
    """One gateway process, as a context manager.

    config: a dict in the shape of portico.config.v1.Config (YAML keys), or
    yaml_text: the file verbatim (no port substitution then). `workers`
    overrides config["workers"] (default 2). Unless `access_log` is set, the
    access log goes to <tmp>/access.log."""

    def __init__(self, config=None, yaml_text=None, workers=None, binary=None,
                 start_timeout=30.0, env=None, default_access_log=True):
        if (config is None) == (yaml_text is None):
            raise ValueError("give exactly one of config and yaml_text")
        self.binary = binary or portico_bin()
        self.tmp = TempDir(prefix="portico-gw-")
        self.config_path = self.tmp.join("portico.yaml")
        self.stderr_path = self.tmp.join("stderr.log")
        self.stdout_path = self.tmp.join("stdout.log")
        self.start_timeout = start_timeout
        self.env = dict(os.environ, **(env or {}))
        self._workers = workers
        self._default_access_log = default_access_log
        self._raw_yaml = yaml_text
        self._template = config
        self._ports = {}
        self._yaml_written = None
        self.config = None
        self.proc = None
        self.exit_code = None
        self._stderr_file = None
        self._stdout_file = None

    # -- config --------------------------------------------------------------

    def _materialize(self, template, fresh_ports):
        cfg = json.loads(json.dumps(template))  # deep copy
        if self._workers is not None:
            cfg["workers"] = self._workers
        cfg.setdefault("workers", 2)
        if self._default_access_log and "access_log" not in cfg:
            cfg["access_log"] = {"path": self.tmp.join("access.log")}
        for i, lst in enumerate(cfg.get("listeners") or []):
            name = lst.get("name") or lst.get("address") or str(i)
            host, port = split_address(lst["address"])
            if port == 0:
                if fresh_ports or name not in self._ports:
                    self._ports[name] = free_port(host or "127.0.0.1")
                lst["address"] = hostport(host, self._ports[name]) if host else ":%d" % self._ports[name]
        # admin: every gateway gets its own admin port (the default 9901 would clash).
        if "admin" not in cfg:
            if fresh_ports or ADMIN_PORT_KEY not in self._ports:
                self._ports[ADMIN_PORT_KEY] = free_port("127.0.0.1")
            cfg["admin"] = {"address": "127.0.0.1:%d" % self._ports[ADMIN_PORT_KEY]}
        return cfg

    def _raw_yaml_with_admin(self, text, fresh_ports):
        """YAML text given verbatim gets an admin block appended (a free
        port) when it has no top-level `admin:` key and is block-style."""
        if re.search(r"(?m)^admin\s*:", text) or re.match(r"\s*[\[{]", _strip_yaml_comments(text)):
            return text
        if fresh_ports or ADMIN_PORT_KEY not in self._ports:
            self._ports[ADMIN_PORT_KEY] = free_port("127.0.0.1")
        sep = "" if not text or text.endswith("\n") else "\n"
        return "%s%sadmin:\n  address: \"127.0.0.1:%d\"\n" % (text, sep, self._ports[ADMIN_PORT_KEY])

    @property
    def admin_addr(self):
        """'127.0.0.1:PORT' of the admin gRPC server, or None when it is off
        (or the config's admin address is not known here)."""
        if self.config is not None:
            address = ((self.config.get("admin") or {}).get("address")) or "127.0.0.1:9901"
        else:
            m = re.search(r"(?m)^admin\s*:\s*\n\s+address\s*:\s*[\"']?([^\"'\s#]+)", self._yaml_written or "")
            address = m.group(1) if m else None
        if not address or address == "off":
            return None
        return address

    def _write_config(self, cfg=None, yaml_text=None):
        text = yaml_text if yaml_text is not None else to_yaml(cfg)
        tmp_path = self.config_path + ".new"
        with open(tmp_path, "w") as f:
            f.write(text)
        os.rename(tmp_path, self.config_path)

    def listeners(self):
        """[(name, host, port, tls)] of the current config."""
        out = []
        if self.config is not None:
            for i, lst in enumerate(self.config.get("listeners") or []):
                name = lst.get("name") or lst.get("address") or str(i)
                host, port = split_address(lst["address"])
                out.append((name, host or "127.0.0.1", port, bool(lst.get("tls"))))
        else:
            for name, address, tls in _listeners_from_yaml(self._raw_yaml):
                host, port = split_address(address)
                out.append((name, host or "127.0.0.1", port, tls))
        return out

    def _listener(self, name=None):
        ls = self.listeners()
        if not ls:
            raise HarnessError("config has no listeners")
        if name is None:
            return ls[0]
        for entry in ls:
            if entry[0] == name:
                return entry
        raise HarnessError("no listener named %r (have %s)" % (name, [l[0] for l in ls]))

    def addr(self, listener=None):
        """'host:port' of a listener (first by default), e.g. a gRPC target."""
        _, host, port, _ = self._listener(listener)
        return hostport(host, port)

    def port(self, listener=None):
        return self._listener(listener)[2]

    def url(self, listener=None, scheme=None):
        """'http://host:port' ('https' for a TLS listener)."""
        _, host, port, tls = self._listener(listener)
        return "%s://%s" % (scheme or ("https" if tls else "http"), hostport(host, port))

    # -- lifecycle -----------------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def stderr(self):
        return _read_file(self.stderr_path)

    @property
    def stdout(self):
        return _read_file(self.stdout_path)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        if not os.path.exists(self.binary):
            raise StartError("portico binary not found at %s (set PORTICO_BIN, or PORTICO_DIRECT=1 "
                             "to run the suites without the gateway)" % self.binary)
        attempts = 3
        for attempt in range(attempts):
            if self._template is not None:
                self.config = self._materialize(self._template, fresh_ports=attempt > 0)
                self._write_config(self.config)
            else:
                self._yaml_written = self._raw_yaml_with_admin(self._raw_yaml, fresh_ports=attempt > 0)
                self._write_config(yaml_text=self._yaml_written)
            try:
                self._spawn_and_wait()
                return self
            except StartError as exc:
                retry = attempt + 1 < attempts and re.search(
                    r"(?i)address already in use|EADDRINUSE|admin: cannot listen", self.stderr)
                if self._template is None and not (retry and self._yaml_written != self._raw_yaml):
                    retry = False  # verbatim YAML: only a harness-chosen admin port can change
                if not retry:
                    raise
                sys.stderr.write("harness: port clash, retrying portico start (%s)\n" % exc)
        return self

    def _spawn_and_wait(self):
        for f in (self._stderr_file, self._stdout_file):
            if f:
                f.close()
        self._stderr_file = open(self.stderr_path, "ab")
        self._stdout_file = open(self.stdout_path, "ab")
        mark = len(self.stderr)
        self.proc = subprocess.Popen([self.binary, "--config", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._stdout_file,
                                     stderr=self._stderr_file, env=self.env, cwd=self.tmp.path)
        self.exit_code = None
        pending = [(h, p) for _, h, p, _ in self.listeners()]
        if self.admin_addr and self._ports.get(ADMIN_PORT_KEY):
            pending.append(("127.0.0.1", self._ports[ADMIN_PORT_KEY]))
        # Listeners accept as soon as they are bound, before the admin server
        # and the last start-up lines: "ready" is logged when start-up is done.
        ready = False
        deadline = time.monotonic() + self.start_timeout
        while pending or not ready:
            ready = ready or " ready: " in self.stderr[mark:]
            if self.proc.poll() is not None:
                self.exit_code = self.proc.returncode
                raise StartError("portico exited with %s before its listeners were ready; stderr:\n%s"
                                 % (self.proc.returncode, self.stderr[-4000:]))
            pending = [(h, p) for h, p in pending if not can_connect(h, p, timeout=0.5)]
            if not pending and ready:
                break
            if time.monotonic() > deadline:
                _terminate(self.proc, signal.SIGKILL, 5)
                raise StartError("portico listeners %s not accepting after %.0fs; stderr:\n%s"
                                 % (pending, self.start_timeout, self.stderr[-4000:]))
            time.sleep(0.05)

    def reload(self, new_config=None, yaml_text=None, wait_for=r"(?i)reload", settle=2.0):
        """Rewrite the config file, send SIGHUP, then wait up to `settle`
        seconds for a new stderr line matching `wait_for`. Returns True if
        such a line appeared (False: settled by time only). Listener
        addresses with port 0 keep the port their listener name had."""
        mark = len(self.stderr)
        if new_config is not None:
            self._template = new_config
            self.config = self._materialize(new_config, fresh_ports=False)
            self._write_config(self.config)
        elif yaml_text is not None:
            self._raw_yaml = yaml_text
            self._template = None
            self.config = None
            self._yaml_written = self._raw_yaml_with_admin(yaml_text, fresh_ports=False)
            self._write_config(yaml_text=self._yaml_written)
        os.kill(self.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + settle
        rx = re.compile(wait_for) if wait_for else None
        while time.monotonic() < deadline:
            if rx is not None and rx.search(self.stderr[mark:]):
                return True
            time.sleep(0.05)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Send `sig` and wait for exit; SIGKILL (and HarnessError) if it
        takes longer than `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        rc, killed = _terminate(self.proc, sig, timeout)
        self.exit_code = rc
        if killed:
            raise HarnessError("portico did not exit within %.0fs of signal %d; stderr tail:\n%s"
                               % (timeout, sig, self.stderr[-4000:]))
        return rc

    def wait_exit(self, timeout=30.0):
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def access_log_path(self):
        al = (self.config or {}).get("access_log") or {}
        return al.get("path")

    def access_log_lines(self):
        """Parsed JSON objects of the access log file (lines that are not JSON
        raise: the access log is specified as one JSON object per line)."""
        path = self.access_log_path()
        if not path or path in ("stdout", "stderr"):
            text = self.stdout if path in (None, "stdout") else self.stderr
            return [json.loads(l) for l in text.splitlines() if l.startswith("{")]
        out = []
        for line in _read_file(path).splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self.running():
                self.exit_code, _ = _terminate(self.proc, signal.SIGTERM, 15)
        finally:
            self._cleanup()
        return False

    def _cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            _terminate(self.proc, signal.SIGKILL, 5)
        for f in (self._stderr_file, self._stdout_file):
            if f:
                f.close()
        self._stderr_file = self._stdout_file = None
        if self.tmp.path:
            if KEEP_TMP or (self.exit_code not in (None, 0) and self.exit_code != -signal.SIGTERM):
                sys.stderr.write("harness: portico exit code %s, files kept in %s\n"
                                 % (self.exit_code, self.tmp.path))
                self.tmp.path = None
            else:
                self.tmp.cleanup()


# ---------------------------------------------------------------------------
# backends


class BackendProcess(object):
    """A backend script run with PORTICO_PYTHON in its own process; it prints
    "READY port=N" when serving. Stopped by PID (SIGTERM, then SIGKILL)."""

    script = None
    kind = "backend"
    scheme = "http"
    tls_scheme = "https"

    def __init__(self, host="127.0.0.1", port=0, server_id=None, tls=None,
                 extra_args=(), ready_timeout=60.0):
        self.host = host
        self.requested_port = port
        self.server_id = server_id
        self.tls = tls  # CertBundle or (cert_file, key_file)
        self.extra_args = list(extra_args)
        self.ready_timeout = ready_timeout
        self.port = None
        self.proc = None
        self.tmp = None

    def _tls_files(self):
        if self.tls is None:
            return None
        if isinstance(self.tls, tuple):
            return self.tls
        return self.tls.cert, self.tls.key

    def command(self):
        cmd = [PYTHON, self.script, "--host", self.host, "--port", str(self.requested_port)]
        if self.server_id:
            cmd += ["--server-id", self.server_id]
        tls = self._tls_files()
        if tls:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        return cmd + self.extra_args

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def addr(self):
        return hostport(self.host, self.port)

    @property
    def url(self):
        return "%s://%s" % (self.tls_scheme if self.tls else self.scheme, self.addr)

    def instance(self):
        """This backend as a portico service instance."""
        return {"host": self.host, "port": self.port}

    def log_text(self):
        return _read_file(self.tmp.join("backend.log")) if self.tmp and self.tmp.path else ""

    def start(self):
        self.tmp = TempDir(prefix="portico-%s-" % self.kind)
        log = open(self.tmp.join("backend.log"), "wb")
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=log, cwd=self.tmp.path)
        finally:
            log.close()
        lines = queue.Queue()

        def reader(stream):
            try:
                lines.put(stream.readline())
            finally:
                stream.close()

        threading.Thread(target=reader, args=(self.proc.stdout,), daemon=True).start()
        try:
            line = lines.get(timeout=self.ready_timeout)
        except queue.Empty:
            line = b""
        m = re.match(rb"READY port=(\d+)", line or b"")
        if not m:
            _terminate(self.proc, signal.SIGKILL, 5)
            text = self.log_text()
            self.tmp.cleanup()
            raise StartError("%s did not become ready: %r\n%s" % (self.kind, line, text[-4000:]))
        self.port = int(m.group(1))
        return self

    def stop(self, timeout=10.0):
        if self.proc is not None:
            _terminate(self.proc, signal.SIGTERM, timeout)
        if self.tmp is not None:
            self.tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class HttpBackend(BackendProcess):
    """backends/http_backend.py: threaded HTTP/1.1 (optionally TLS)."""
    script = os.path.join(BACKENDS_DIR, "http_backend.py")
    kind = "http"


class GrpcBackend(BackendProcess):
    """backends/grpc_backend.py: portico.test.Echo + grpc.testing.TestService."""
    script = os.path.join(BACKENDS_DIR, "grpc_backend.py")
    kind = "grpc"


class WsBackend(BackendProcess):
    """backends/ws_backend.py: WebSocket echo."""
    script = os.path.join(BACKENDS_DIR, "ws_backend.py")
    kind = "ws"
    scheme = "ws"
    tls_scheme = "wss"


class InteropServer(BackendProcess):
    """interop/server.py, the grpc.testing.TestService interop server."""
    script = os.path.join(INTEROP_DIR, "server.py")
    kind = "interop"

    def command(self):
        cmd = [PYTHON, self.script, "--host", self.host, "--port", str(self.requested_port)]
        if self.server_id:
            cmd += ["--server_id", self.server_id]
        tls = self._tls_files()
        if tls:
            cmd += ["--use_tls=true", "--tls_cert_file", tls[0], "--tls_key_file", tls[1]]
        return cmd + self.extra_args


# ---------------------------------------------------------------------------
# certificates


class CertBundle(object):
    """PEM files of a throw-away CA, a server certificate it signed (SANs:
    localhost, 127.0.0.1, ::1 by default) and a client certificate (mTLS)."""

    def __init__(self, directory):
        self.dir = directory
        self.ca_cert = os.path.join(directory, "ca.pem")
        self.ca_key = os.path.join(directory, "ca.key")
        self.cert = os.path.join(directory, "server.pem")
        self.key = os.path.join(directory, "server.key")
        self.client_cert = os.path.join(directory, "client.pem")
        self.client_key = os.path.join(directory, "client.key")

    def read(self, name):
        with open(getattr(self, name), "rb") as f:
            return f.read()


def _openssl(args, cwd):
    proc = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise HarnessError("openssl %s failed:\n%s" % (" ".join(args), proc.stderr.decode("utf-8", "replace")))


def make_certs(directory, dns_names=("localhost",), ips=("127.0.0.1", "::1")):
    """Generate a CertBundle in `directory` with the openssl CLI (EC P-256)."""
    os.makedirs(directory, exist_ok=True)
    b = CertBundle(directory)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(["req", "-x509"] + ec + ["-keyout", b.ca_key, "-out", b.ca_cert, "-days", "3650",
                                      "-subj", "/CN=portico test CA",
                                      "-addext", "basicConstraints=critical,CA:TRUE",
                                      "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)
    san = ",".join(["DNS:%s" % d for d in dns_names] + ["IP:%s" % i for i in ips])
    leaves = [
        ("server", b.cert, b.key, dns_names[0] if dns_names else "server", "serverAuth", san),
        ("client", b.client_cert, b.client_key, "portico test client", "clientAuth", None),
    ]
    for name, cert, key, cn, eku, alt in leaves:
        csr = os.path.join(directory, name + ".csr")
        ext = os.path.join(directory, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n")
            f.write("extendedKeyUsage=%s\n" % eku)
            if alt:
                f.write("subjectAltName=%s\n" % alt)
        _openssl(["req", "-new"] + ec + ["-keyout", key, "-out", csr, "-subj", "/CN=" + cn], directory)
        _openssl(["x509", "-req", "-in", csr, "-CA", b.ca_cert, "-CAkey", b.ca_key, "-CAcreateserial",
                  "-out", cert, "-days", "3650", "-extfile", ext], directory)
    return b


_cert_cache = {}
_cert_lock = threading.Lock()


def test_certs():
    """One CertBundle per test process (generated on first use)."""
    with _cert_lock:
        if "bundle" not in _cert_cache:
            tmp = TempDir(prefix="portico-certs-")
            atexit.register(tmp.cleanup)
            _cert_cache["bundle"] = make_certs(tmp.path)
        return _cert_cache["bundle"]


# ---------------------------------------------------------------------------
# gRPC helpers

GRPC_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # Each test gets its own connections, never a subchannel shared with
    # another test's channel to the same address.
    ("grpc.use_local_subchannel_pool", 1),
]


def grpc_channel(target, ca_file=None, server_name=None, client_cert=None, options=()):
    """A gRPC channel to 'host:port': cleartext (h2c prior knowledge) or,
    with ca_file, TLS verified against that CA (server_name overrides the name
    checked, e.g. 'localhost'); client_cert=(cert_file, key_file) for mTLS."""
    import grpc
    opts = list(GRPC_CHANNEL_OPTIONS) + list(options)
    if ca_file is None:
        return grpc.insecure_channel(target, options=opts)
    with open(ca_file, "rb") as f:
        root = f.read()
    key = chain = None
    if client_cert:
        with open(client_cert[1], "rb") as f:
            key = f.read()
        with open(client_cert[0], "rb") as f:
            chain = f.read()
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)
    return grpc.secure_channel(target, creds, options=opts)


def grpc_gateway_config(backend_instances, listeners=None, route_prefixes=("/portico.test.Echo",),
                        service_name="echo-grpc", route_extra=None, service_extra=None, **top):
    """A gateway config with one gRPC service and one route per prefix.
    `backend_instances`: list of {"host", "port"} (e.g. [backend.instance()])."""
    service = {"name": service_name, "protocol": "grpc", "instances": list(backend_instances)}
    service.update(service_extra or {})
    routes = []
    for i, prefix in enumerate(route_prefixes):
        r = {"name": "grpc-%d" % i, "path_prefix": prefix, "service": service_name}
        r.update(route_extra or {})
        routes.append(r)
    cfg = {
        "listeners": listeners or [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
        "services": [service],
        "routes": routes,
    }
    cfg.update(top)
    return cfg


# ---------------------------------------------------------------------------
# buf CLI (buf curl), pinned in tests/integration/buf/package-lock.json

BUF_DIR = os.path.join(HERE, "buf")
NPM_TIMEOUT_S = int(os.environ.get("PORTICO_NPM_TIMEOUT", "300"))
_buf_lock = threading.Lock()


def _buf_deps_current():
    with open(os.path.join(BUF_DIR, "package.json")) as f:
        wanted = json.load(f).get("dependencies", {})
    for name, version in wanted.items():
        installed = os.path.join(BUF_DIR, "node_modules", *name.split("/"), "package.json")
        try:
            with open(installed) as f:
                if json.load(f).get("version") != version:
                    return False
        except (OSError, ValueError):
            return False
    return os.path.exists(os.path.join(BUF_DIR, "node_modules", ".bin", "buf"))


def buf_binary(timeout=NPM_TIMEOUT_S):
    """Path of the pinned `buf` executable, running `npm ci` in
    tests/integration/buf first when node_modules is missing or stale.
    Raises HarnessError with the reason (npm missing, registry unreachable)."""
    with _buf_lock:
        if not _buf_deps_current():
            npm = os.environ.get("PORTICO_NPM") or shutil.which("npm")
            if not npm:
                raise HarnessError("tests/integration/buf needs `npm ci` but npm was not found "
                                   "(install npm or set PORTICO_NPM)")
            proc = subprocess.Popen([npm, "ci", "--no-audit", "--no-fund"], cwd=BUF_DIR,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise HarnessError("npm ci in %s did not finish within %ds (is the npm registry "
                                   "reachable?)" % (BUF_DIR, timeout))
            if proc.returncode != 0 or not _buf_deps_current():
                raise HarnessError("npm ci in %s failed (exit %d):\n%s"
                                   % (BUF_DIR, proc.returncode, out.decode("utf-8", "replace")[-2000:]))
        return os.path.join(BUF_DIR, "node_modules", ".bin", "buf")


class GatewayCase(unittest.TestCase):
    """Base of the suites that need the gateway (skipped in direct mode):
    self._stack, an ExitStack closed at cleanup for processes and temporary
    directories, and check_clean_exit, registered for every gateway started
    with start_gateway."""

    def setUp(self):
        if DIRECT:
            self.skipTest("gateway-only (PORTICO_DIRECT=1)")
        self._stack = contextlib.ExitStack()
        self.addCleanup(self._stack.close)

    def start_gateway(self, cfg, workers=2):
        gw = self._stack.enter_context(Portico(cfg, workers=workers))
        self.addCleanup(self.check_clean_exit, gw)
        return gw

    def check_clean_exit(self, gw):
        """SIGTERM exits 0: no crash, and for sanitizer builds no error or
        leak report (those make the exit status non-zero)."""
        rc = gw.stop(timeout=60) if gw.running() else gw.proc.returncode
        self.assertEqual(rc, 0, "gateway exit status %s; stderr tail:\n%s" % (rc, gw.stderr[-4000:]))


def spread_server_ids(port, total, threads=4, headers_for=None, path="/echo", timeout=30.0,
                      host="127.0.0.1"):
    """Send `total` GET `path` (HttpBackend's /echo) over `threads` keep-alive
    connections, request k with headers_for(k) if given; every answer must be
    200. Returns (Counter of server ids, {sorted header items: set of ids}).
    Bounded: each request has `timeout`, each thread 300 s."""
    import collections
    import http.client
    counts = collections.Counter()
    by_key = collections.defaultdict(set)
    lock = threading.Lock()
    errors = []

    def run(t):
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            for k in range(t, total, threads):
                h = headers_for(k) if headers_for else None
                conn.request("GET", path, headers=h or {})
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise AssertionError("status %d: %r" % (r.status, body[:200]))
                sid = json.loads(body)["server_id"]
                with lock:
                    counts[sid] += 1
                    if h:
                        by_key[tuple(sorted(h.items()))].add(sid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            conn.close()

    ts = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    if any(t.is_alive() for t in ts):
        raise AssertionError("load threads did not finish")
    if errors:
        raise AssertionError("requests failed: %r" % errors[:3])
    if sum(counts.values()) != total:
        raise AssertionError("%d answers for %d requests" % (sum(counts.values()), total))
    return counts, by_key


# ---------------------------------------------------------------------------
# Redis (rate limits): a real redis-server from Debian on a free port


class RedisServer(object):
    """redis-server on 127.0.0.1:<free port>, data in a temp dir, no
    persistence; stopped by PID. stop()/start() keep the port, so a test can
    restart it. `cli(*args)` runs one command through a raw RESP socket and
    returns the decoded reply."""

    def __init__(self, port=None, binary=None):
        self.binary = binary or shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = port or free_port()
        self.tmp = TempDir(prefix="portico-redis-")
        self.proc = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=15.0):
        log = open(self.tmp.join("redis.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.tmp.path,
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        wait_until(lambda: self._ping(), timeout=timeout, message="redis-server on %d" % self.port)
        return self

    def _ping(self):
        if self.proc.poll() is not None:
            raise HarnessError("redis-server exited with %s" % self.proc.returncode)
        try:
            return self.cli("PING") == "PONG"
        except OSError:
            return False

    def stop(self):
        if self.proc is not None:
            _terminate(self.proc, signal.SIGTERM, 10)
            self.proc = None

    def pause(self):
        """SIGSTOP: connections stay open, nothing answers."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def cli(self, *args, timeout=5.0):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return self._read(f)
        finally:
            s.close()

    def _read(self, f):
        line = f.readline()
        if not line:
            raise OSError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(f) for _ in range(n)]
        raise OSError("bad RESP reply %r" % line)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.tmp.cleanup()
        return False
