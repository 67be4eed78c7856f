"""Wire-level client helpers for the integration tests: exact HTTP/1.1 bytes
on raw sockets, a small HTTP/2 frame codec (enough HPACK to send requests and
recognise common statuses), curl/nghttp runners and an RSS sampler.

Nothing here talks to a real network: callers pass 127.0.0.1 / ::1 ports.
Every read has a deadline; nothing loops without a bound.
"""

import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import harness

IO_TIMEOUT = 30.0

# ---------------------------------------------------------------------------
# HTTP/1.1 on a raw socket


class Response(object):
    """One parsed HTTP/1.x response."""

    def __init__(self, version, status, reason, headers, body, interim=()):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers        # [(lower-case name, value)]
        self.body = body
        self.interim = list(interim)  # 1xx responses before this one: [(status, headers)]
        self.complete = True          # False: the connection closed before the body ended

    def get(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def get_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def connection_tokens(self):
        out = set()
        for v in self.get_all("connection"):
            out.update(t.strip().lower() for t in v.split(",") if t.strip())
        return out

    def __repr__(self):
        return "<Response %s %d %r headers=%r body=%r>" % (
            self.version, self.status, self.reason, self.headers, self.body[:300])


class ConnectionClosed(Exception):
    """The peer closed before a complete response head arrived."""


class RawConn(object):
    """A TCP (optionally TLS) connection sending exact bytes and parsing
    responses incrementally. Reads block at most `timeout` seconds each."""

    def __init__(self, host, port, timeout=IO_TIMEOUT, tls_context=None, server_hostname=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((host, port))
        if tls_context is not None:
            s = tls_context.wrap_socket(s, server_hostname=server_hostname or host)
        self.sock = s
        self.buf = b""
        self.eof = False
        self.timeout = timeout

    # -- io ------------------------------------------------------------------

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline=None):
        """Read more bytes; False on EOF/reset."""
        if self.eof:
            return False
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("deadline passed")
            self.sock.settimeout(min(left, self.timeout))
        try:
            data = self.sock.recv(1 << 16)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            data = b""
        finally:
            if deadline is not None:
                self.sock.settimeout(self.timeout)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, marker, limit=1 << 24):
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes" % (marker, limit))
            if not self._fill():
                raise ConnectionClosed("closed before %r; have %r" % (marker, self.buf[:500]))
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionClosed("closed after %d of %d bytes" % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_some(self):
        """Whatever is buffered, or one recv (b'' at EOF)."""
        if self.buf:
            out, self.buf = self.buf, b""
            return out
        if not self._fill():
            return b""
        out, self.buf = self.buf, b""
        return out

    def wait_closed(self, timeout=IO_TIMEOUT):
        """True if the peer closes within `timeout` (bytes received meanwhile
        are kept in .buf); False if it is still open then."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill(deadline)
            except socket.timeout:
                return False
            except OSError:
                self.eof = True
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- responses -----------------------------------------------------------

    def read_head(self):
        """(version, status, reason, headers) of the next response head."""
        head = self.read_until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError("bad status line %r" % lines[0])
        headers = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise ValueError("bad header line %r" % line)
            headers.append((name.strip().lower(), value.strip()))
        return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers

    def read_response(self, method="GET", allow_truncated=False):
        """The next final response (1xx responses are collected in .interim).
        A body cut by a close raises ConnectionClosed unless allow_truncated,
        in which case the Response has complete=False."""
        interim = []
        for _ in range(20):
            version, status, reason, headers = self.read_head()
            if 100 <= status < 200 and status != 101:
                interim.append((status, headers))
                continue
            break
        else:
            raise ValueError("too many 1xx responses")
        resp = Response(version, status, reason, headers, b"", interim)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return resp
        te = ",".join(v for k, v in headers if k == "transfer-encoding").lower()
        cl = resp.get("content-length")
        try:
            if "chunked" in te:
                resp.body = self._read_chunked()
            elif cl is not None:
                resp.body = self.read_exact(int(cl))
            else:
                chunks = []
                while True:
                    d = self.read_some()
                    if not d:
                        break
                    chunks.append(d)
                resp.body = b"".join(chunks)
        except ConnectionClosed:
            if not allow_truncated:
                raise
            resp.body = self.buf
            self.buf = b""
            resp.complete = False
        return resp

    def _read_chunked(self):
        out = []
        for _ in range(1 << 22):
            line = self.read_until(b"\r\n")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # trailers until the empty line
                for _ in range(1000):
                    t = self.read_until(b"\r\n")
                    if t == b"\r\n":
                        break
                return b"".join(out)
            out.append(self.read_exact(size))
            if self.read_exact(2) != b"\r\n":
                raise ValueError("bad chunk terminator")
        raise ValueError("too many chunks")


def request_bytes(method, path, host="gw.test", headers=(), body=None, version="HTTP/1.1"):
    """An HTTP/1.1 request as bytes; Content-Length added for a body unless
    headers already frame it."""
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("Host: %s" % host)
    names = set()
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
        names.add(k.lower())
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return data + (body or b"")


def exchange(host, port, data, method="GET", timeout=IO_TIMEOUT, close_wait=None):
    """Send `data` on a new connection, return (Response or None, closed,
    raw bytes left over). Response None means the connection closed (or
    `timeout` passed) without any response head. After a response, waits
    up to `close_wait` seconds (default `timeout`; 0: not at all) to see
    whether the server closes the connection: `closed`."""
    with RawConn(host, port, timeout=timeout) as c:
        try:
            c.send(data)
        except OSError:
            pass  # the server may reject early and close: read what it said
        try:
            r = c.read_response(method=method, allow_truncated=True)
        except (ConnectionClosed, socket.timeout, ValueError, OSError):
            return None, c.eof, c.buf
        wait = timeout if close_wait is None else close_wait
        closed = c.eof or (wait > 0 and c.wait_closed(timeout=wait))
        return r, closed, c.buf


def chunked(body, sizes):
    """`body` as chunked transfer coding using chunk sizes from `sizes`
    (cycled), ending with the last chunk and no trailers."""
    out = []
    i = 0
    k = 0
    while i < len(body):
        n = sizes[k % len(sizes)]
        k += 1
        piece = body[i:i + n]
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        i += n
    out.append(b"0\r\n\r\n")
    return b"".join(out)


# ---------------------------------------------------------------------------
# HTTP/2 frames

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4

ERR_NO_ERROR = 0
ERR_PROTOCOL = 1
ERR_REFUSED_STREAM = 7
ERR_CANCEL = 8
ERR_ENHANCE_YOUR_CALM = 0xb

# SETTINGS for a client that never needs to send WINDOW_UPDATE per stream.
BIG_WINDOW = [(4, (1 << 31) - 1)]

# :status values nghttp2 sends as one indexed field (HPACK static table).
STATIC_STATUS = {0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500}


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id & 0x7FFFFFFF) + payload


def settings_frame(pairs=(), ack=False):
    return frame(SETTINGS, FLAG_ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def _hpack_int(value, prefix_bits, first):
    maxv = (1 << prefix_bits) - 1
    if value < maxv:
        return bytes([first | value])
    out = [first | maxv]
    value -= maxv
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name, value):
    """A literal header field without indexing, new name, no Huffman."""
    if isinstance(name, str):
        name = name.encode("latin-1")
    if isinstance(value, str):
        value = value.encode("latin-1")
    return b"\x00" + _hpack_int(len(name), 7, 0) + name + _hpack_int(len(value), 7, 0) + value


def request_headers_block(method, path, authority, scheme="http", extra=()):
    block = hpack_literal(":method", method) + hpack_literal(":scheme", scheme)
    block += hpack_literal(":path", path) + hpack_literal(":authority", authority)
    for k, v in extra:
        block += hpack_literal(k, v)
    return block


class H2Conn(object):
    """A raw HTTP/2 client connection (cleartext prior knowledge, or TLS
    with ALPN h2 when tls_context is given). Frames are read with deadlines."""

    def __init__(self, host, port, timeout=IO_TIMEOUT, tls_context=None, send_preface=True,
                 settings=()):
        self.raw = RawConn(host, port, timeout=timeout, tls_context=tls_context,
                           server_hostname="localhost" if tls_context else None)
        self.frames = []
        if send_preface:
            self.raw.send(H2_PREFACE + settings_frame(settings))

    def send(self, data):
        self.raw.send(data)

    def read_frame(self, deadline=None):
        """(type, flags, stream, payload), or None at EOF."""
        try:
            while len(self.raw.buf) < 9:
                if not self.raw._fill(deadline):
                    return None
            length = struct.unpack(">I", b"\x00" + self.raw.buf[:3])[0]
            while len(self.raw.buf) < 9 + length:
                if not self.raw._fill(deadline):
                    return None
        except socket.timeout:
            raise
        except OSError:
            return None
        hdr, self.raw.buf = self.raw.buf[:9 + length], self.raw.buf[9 + length:]
        ftype, flags = hdr[3], hdr[4]
        sid = struct.unpack(">I", hdr[5:9])[0] & 0x7FFFFFFF
        f = (ftype, flags, sid, hdr[9:])
        self.frames.append(f)
        return f

    def handshake(self, timeout=IO_TIMEOUT):
        """Read until the server's SETTINGS (ACKed here) and return its
        parameters as a dict."""
        deadline = time.monotonic() + timeout
        for _ in range(100):
            f = self.read_frame(deadline)
            if f is None:
                raise ConnectionClosed("closed during the HTTP/2 handshake")
            if f[0] == SETTINGS and not f[1] & FLAG_ACK:
                self.send(settings_frame(ack=True))
                p = f[3]
                return {struct.unpack(">H", p[i:i + 2])[0]: struct.unpack(">I", p[i + 2:i + 6])[0]
                        for i in range(0, len(p) - 5, 6)}
        raise ValueError("no SETTINGS from the server")

    def request(self, stream_id, method, path, authority="gw.test", extra=(), body=None, end_stream=None):
        block = request_headers_block(method, path, authority, extra=extra)
        es = body is None if end_stream is None else end_stream
        out = frame(HEADERS, FLAG_END_HEADERS | (FLAG_END_STREAM if es else 0), stream_id, block)
        if body is not None:
            out += frame(DATA, FLAG_END_STREAM, stream_id, body)
        self.send(out)

    def open_windows(self):
        """Raise the connection window to the maximum (send after the
        preface with settings=BIG_WINDOW so stream windows are large too)."""
        self.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", (1 << 31) - 1 - 65535)))

    def fetch_many(self, requests, timeout=IO_TIMEOUT * 4, first_stream=1):
        """Send [(method, path[, extra headers])] as concurrent streams and
        collect {stream_id: {"status", "headers_frames", "body", "end", "rst"}}
        until every stream ended or was reset. Needs open windows (see
        open_windows) for bodies above 64 KiB."""
        out = {}
        sid = first_stream
        data = b""
        for req in requests:
            method, path = req[0], req[1]
            extra = req[2] if len(req) > 2 else ()
            block = request_headers_block(method, path, "gw.test", extra=extra)
            data += frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, sid, block)
            out[sid] = {"status": None, "body": [], "end": False, "rst": None, "path": path}
            sid += 2
        self.send(data)
        pending = set(out)

        def until(f):
            ftype, flags, s, payload = f
            if ftype == GOAWAY:
                return True
            if s not in out:
                return False
            st = out[s]
            if ftype == HEADERS and st["status"] is None:
                st["status"] = status_of_headers(payload, flags) or "other"
            elif ftype == DATA:
                st["body"].append(payload)
            elif ftype == RST_STREAM:
                st["rst"] = struct.unpack(">I", payload)[0]
                pending.discard(s)
            if ftype in (HEADERS, DATA) and flags & FLAG_END_STREAM:
                st["end"] = True
                pending.discard(s)
            return not pending

        self.collect(until, timeout=timeout)
        for st in out.values():
            st["body"] = b"".join(st["body"])
        return out

    def collect(self, until, timeout=IO_TIMEOUT, max_frames=100000):
        """Read frames until until(frame) is true (returns that frame), EOF
        (returns None) or the timeout (socket.timeout)."""
        deadline = time.monotonic() + timeout
        for _ in range(max_frames):
            f = self.read_frame(deadline)
            if f is None:
                return None
            if f[0] == PING and not f[1] & FLAG_ACK:
                self.send(frame(PING, FLAG_ACK, 0, f[3]))
            if until(f):
                return f
        raise ValueError("no matching frame in %d frames" % max_frames)

    def wait_closed(self, timeout=IO_TIMEOUT):
        """Read (and keep) frames until EOF; True if it came within timeout."""
        deadline = time.monotonic() + timeout
        for _ in range(1000000):
            try:
                f = self.read_frame(deadline)
            except socket.timeout:
                return False
            if f is None:
                return True
        return False

    def goaway(self):
        """(last_stream_id, error_code) of the first GOAWAY received, or None."""
        for f in self.frames:
            if f[0] == GOAWAY:
                last, code = struct.unpack(">II", f[3][:8])
                return last & 0x7FFFFFFF, code
        return None

    def close(self):
        self.raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def status_of_headers(payload, flags):
    """The :status of a HEADERS frame payload when nghttp2 sent it as an
    indexed static entry (200, 204, 206, 304, 400, 404, 500); else None."""
    p = payload
    if flags & 0x8:  # PADDED
        pad = p[0]
        p = p[1:len(p) - pad]
    if flags & 0x20:  # PRIORITY
        p = p[5:]
    # skip dynamic table size updates
    i = 0
    while i < len(p) and (p[i] & 0xE0) == 0x20:
        i += 1
        while i < len(p) and p[i - 1] & 0x80 and (p[i - 1] & 0x1F) == 0x1F:
            i += 1
    return STATIC_STATUS.get(p[i]) if i < len(p) else None


# ---------------------------------------------------------------------------
# backends


class RawBackend(harness.BackendProcess):
    """backends/raw_backend.py: truncated and otherwise broken responses."""
    script = os.path.join(harness.BACKENDS_DIR, "raw_backend.py")
    kind = "raw"


class NginxBackend(harness.BackendProcess):
    """backends/nginx_backend.py: nginx as an h2c (prior knowledge) backend
    with static files, an /info echo and WebDAV PUT. `big_mib` sets the size
    of /files/big.bin. The backend's files are in .prefix."""
    script = os.path.join(harness.BACKENDS_DIR, "nginx_backend.py")
    kind = "nginx"

    def __init__(self, big_mib=8, **kw):
        kw.setdefault("extra_args", ["--big-mib", str(big_mib)])
        super().__init__(**kw)

    @property
    def prefix(self):
        return self.tmp.path


# ---------------------------------------------------------------------------
# external clients


def run(cmd, timeout=120, input=None):
    """Run a client command; returns CompletedProcess (bytes)."""
    return subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)


def curl(args, timeout=120):
    """curl with a bounded time; returns (exit code, stdout bytes, stderr text)."""
    p = run(["curl", "--silent", "--show-error", "--max-time", str(int(timeout - 5))] + list(args),
            timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


class RssSampler(object):
    """Samples a process's VmRSS (KiB) every `interval` s in a thread."""

    def __init__(self, pid, interval=0.05):
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, harness.rss_kb(self.pid))
            except (OSError, harness.HarnessError):
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(10)
        return False


def asan_env_and_slack():
    """(env, extra MiB) for RSS-bound tests: ASan keeps freed memory in a
    quarantine (cap it) and adds shadow memory (allow for it)."""
    if not harness.is_asan_binary():
        return None, 0
    import os
    opts = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=16",
                                  "thread_local_quarantine_size_kb=256"]))
    return {"ASAN_OPTIONS": opts}, 32
