"""Helpers shared by the backend scripts and the test harness."""

import os
import signal
import sys
import threading

BACKENDS_DIR = os.path.dirname(os.path.abspath(__file__))
INTEGRATION_DIR = os.path.dirname(BACKENDS_DIR)
REPO_ROOT = os.path.dirname(os.path.dirname(INTEGRATION_DIR))
INTEROP_DIR = os.path.join(REPO_ROOT, "interop")
PROTO_ROOT = os.path.join(INTEGRATION_DIR, "protos")

# Appended, not prepended: interop/ holds generic module names (client,
# server) that must not shadow a test directory's own modules.
if INTEROP_DIR not in sys.path:
    sys.path.append(INTEROP_DIR)


def load_interop_server():
    """interop/server.py as a module (under a name that cannot clash)."""
    import importlib.util
    name = "portico_interop_server"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(INTEROP_DIR, "server.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod

_PATTERN_PERIOD = 251
_pattern_cache = {"buf": b""}
_pattern_lock = threading.Lock()


def pattern(size, offset=0):
    """`size` bytes where byte i is (offset + i) % 251: a cheap deterministic
    payload in which a shifted, truncated or reordered chunk is detectable."""
    start = offset % _PATTERN_PERIOD
    need = start + size
    with _pattern_lock:
        buf = _pattern_cache["buf"]
        if len(buf) < need:
            reps = need // _PATTERN_PERIOD + 1
            buf = bytes(range(_PATTERN_PERIOD)) * reps
            _pattern_cache["buf"] = buf
    return buf[start:start + size]


def load_echo():
    """Return the generated module for portico/test/echo.proto."""
    import protoload
    (mod,) = protoload.load_protos(PROTO_ROOT, ["portico/test/echo.proto"])
    return mod


def announce_ready(port):
    """Tell the harness we are serving on `port`, then stop using stdout
    (the harness no longer reads the pipe)."""
    sys.stdout.write("READY port=%d\n" % port)
    sys.stdout.flush()
    os.dup2(2, 1)


def wait_for_termination():
    """Block until SIGTERM or SIGINT."""
    stop = threading.Event()

    def _on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    while not stop.wait(0.5):
        pass


def host_for_url(host):
    return "[%s]" % host if ":" in host and not host.startswith("[") else host
