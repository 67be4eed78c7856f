"""Streamed requests and HTTP trailers on transcoded routes.

Client-streaming and bidi methods get their messages from an NDJSON
request body, each line sent upstream as soon as it is complete; streamed
responses end with the backend's gRPC trailers as HTTP trailers (HTTP/2,
and HTTP/1.1 chunked when the client sent "TE: trailers").

The backend is test_transcode's grpcio Bookstore with Upload, Chat and
Watch replaced by versions that note every message as it arrives and
whether the call ended cleanly or was cancelled; the clients are raw
sockets speaking HTTP/1.1 (chunked request bodies, so a test can wait for
an answer before it writes the next line), the python h2 package for
HTTP/2 (python3-h2; skipped without it) and nghttp.

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_transcode_streaming
"""

import json
import select
import shutil
import socket
import subprocess
import time
import unittest

import grpc

import harness
import test_transcode as tt

try:
    import h2.config
    import h2.connection
    import h2.events
except ImportError:  # python3-h2 (scripts/setup.sh --test installs it)
    h2 = None

IO_TIMEOUT = 10.0


def setUpModule():
    tt.setUpModule()


class StreamBackend(tt.Backend):
    """Notes ("Upload"|"Chat", "msg", text) and ("Upload"|"Chat", "end"|"cancelled",
    (messages, first message's text)) as it goes: the first text tells one test's call
    from another's on this shared backend."""

    def __init__(self, pool, msgs):
        self.events = []
        super().__init__(pool, msgs)

    def note(self, *ev):
        with self.lock:
            self.events.append(ev)

    def seen(self, *ev):
        with self.lock:
            return ev in self.events

    def messages(self, name):
        with self.lock:
            return [e[2] for e in self.events if e[0] == name and e[1] == "msg"]

    def ended(self, name, n, first, context):
        # grpcio may end the request iterator of a call the client
        # cancelled before it marks the call inactive: give it a moment
        time.sleep(0.2)
        self.note(name, "end" if context.is_active() else "cancelled", (n, first))

    def Upload(self, request_iterator, context):
        got = []
        try:
            for m in request_iterator:
                self.note("Upload", "msg", m.message)
                got.append(m)
                if m.delay_ms:  # stop reading for a while
                    time.sleep(m.delay_ms / 1000.0)
        except grpc.RpcError:
            self.note("Upload", "cancelled", (len(got), got[0].message if got else ""))
            raise
        self.ended("Upload", len(got), got[0].message if got else "", context)
        return self.m[tt.PKG + ".Echo"](count=len(got), message="+".join(m.message for m in got))

    def Chat(self, request_iterator, context):
        # grpcio stops resuming a response generator whose call was
        # cancelled: the call's end callback tells
        st = {"n": 0, "ended": False, "first": ""}

        def over():
            if not st["ended"]:
                self.note("Chat", "cancelled", (st["n"], st["first"]))
        context.add_callback(over)
        context.send_initial_metadata([("x-chat-initial", "i1")])
        try:
            for m in request_iterator:
                st["n"] += 1
                if st["n"] == 1:
                    st["first"] = m.message
                self.note("Chat", "msg", m.message)
                yield self.m[tt.PKG + ".Echo"](message=m.message.upper(), shelf=m.shelf,
                                               count=st["n"])
        except grpc.RpcError:
            return  # over() notes it
        st["ended"] = True
        self.ended("Chat", st["n"], st["first"], context)
        context.set_trailing_metadata([("x-chat-trailer", "done"), ("x-http-code", "201")])

    def Watch(self, request, context):
        context.set_trailing_metadata([("x-watch-trailer", "w1"), ("x-http-code", "201")])
        yield from super().Watch(request, context)


class H1(object):
    """One HTTP/1.1 connection read and written by hand."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.buf = b""
        self.body = b""

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def send_chunk(self, data):
        self.send(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunks(self):
        self.send(b"0\r\n\r\n")

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def _until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def head(self):
        lines = self._until(b"\r\n\r\n").decode().split("\r\n")
        status = int(lines[0].split()[1])
        h = {}
        for l in lines[1:]:
            if l:
                k, v = l.split(":", 1)
                h[k.strip().lower()] = v.strip()
        return status, h

    def fixed(self, h):
        """A body of content-length bytes."""
        n = int(h["content-length"])
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def chunk(self):
        """The next chunk's data, or None after the last chunk (trailers in
        self.trailers)."""
        size = int(self._until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            self.trailers = {}
            while True:
                l = self._until(b"\r\n")
                if l == b"\r\n":
                    return None
                k, v = l.decode().split(":", 1)
                self.trailers[k.strip().lower()] = v.strip()
        while len(self.buf) < size + 2:
            self._fill()
        data, self.buf = self.buf[:size], self.buf[size + 2:]
        return data

    def line(self):
        """The next line of a chunked body (None at its end)."""
        while b"\n" not in self.body:
            c = self.chunk()
            if c is None:
                return None
            self.body += c
        i = self.body.index(b"\n") + 1
        out, self.body = self.body[:i], self.body[i:]
        return out

    def rest(self):
        """The rest of a chunked body."""
        while True:
            c = self.chunk()
            if c is None:
                out, self.body = self.body, b""
                return out
            self.body += c


def chunked_post(path, extra=""):
    return ("POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: application/x-ndjson\r\n%s\r\n" % (path, extra)).encode()


class H2(object):
    """One h2c (prior knowledge) connection driven by the h2 package."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.c = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.c.initiate_connection()
        self.flush()
        self.head = None
        self.trailers = None
        self.data = b""
        self.ended = False
        self.reset = None

    def close(self):
        self.s.close()

    def flush(self):
        d = self.c.data_to_send()
        if d:
            self.s.sendall(d)

    def wait(self, predicate, what):
        deadline = time.monotonic() + IO_TIMEOUT
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for " + what)
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed waiting for " + what)
            for e in self.c.receive_data(d):
                if isinstance(e, h2.events.ResponseReceived):
                    self.head = dict(e.headers)
                elif isinstance(e, h2.events.DataReceived):
                    self.data += e.data
                    self.c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                elif isinstance(e, h2.events.TrailersReceived):
                    self.trailers = dict(e.headers)
                elif isinstance(e, h2.events.StreamEnded):
                    self.ended = True
                elif isinstance(e, h2.events.StreamReset):
                    self.reset = e.error_code
                    self.ended = True
            self.flush()

    def lines(self):
        return [json.loads(l) for l in self.data.decode().splitlines() if l.strip()]


class StreamCase(tt.TranscodeCase):
    backend_class = StreamBackend
    transcode = {"status_metadata_key": "x-http-code"}

    def h1(self):
        c = H1(self.gw.port())
        self.addCleanup(c.close)
        return c


class TestStreamedRequest(StreamCase):
    def test_lines_reach_the_backend_before_the_body_ends(self):
        c = self.h1()
        c.send(chunked_post("/%s/Upload" % tt.SVC))
        c.send_chunk(b'{"message":"early"}\n{"mess')
        harness.wait_until(lambda: self.backend.seen("Upload", "msg", "early"), timeout=IO_TIMEOUT,
                           message="the first line at the backend")
        self.assertFalse(self.backend.seen("Upload", "end", (1, "early")))
        c.send_chunk(b'age":"late"}\n\n')
        c.send_chunk(b'{"message":"last"}')  # the last line needs no newline
        # "late" arrives while the body is still open ("last" has no newline yet). Other
        # tests' cancelled uploads may still record messages on this shared backend, so
        # look for this call's lines by value, in order, rather than at the list's tail.
        harness.wait_until(lambda: self.backend.seen("Upload", "msg", "late"), timeout=IO_TIMEOUT,
                           message="the second line at the backend")
        msgs = self.backend.messages("Upload")
        self.assertLess(msgs.index("early"), msgs.index("late"))
        self.assertNotIn("last", msgs)
        c.end_chunks()
        st, h = c.head()
        self.assertEqual(st, 200)
        body = json.loads(c.fixed(h))
        self.assertEqual(body, {"count": 3, "message": "early+late+last"})
        self.assertTrue(self.backend.seen("Upload", "end", (3, "early")))

    def test_bidi_answer_arrives_before_the_next_line_http1(self):
        c = self.h1()
        c.send(chunked_post("/v1/chat/s7", "TE: trailers\r\n"))
        c.send_chunk(b'{"message":"one"}\n')
        st, h = c.head()
        self.assertEqual((st, h["content-type"]), (200, "application/x-ndjson"))
        self.assertEqual(h.get("x-chat-initial"), "i1")
        self.assertEqual(json.loads(c.line()), {"shelf": "s7", "message": "ONE", "count": 1})
        c.send_chunk(b'{"message":"two"}\n')
        self.assertEqual(json.loads(c.line()), {"shelf": "s7", "message": "TWO", "count": 2})
        c.end_chunks()
        self.assertEqual(c.rest(), b"")
        self.assertEqual(c.trailers.get("grpc-status"), "0")
        self.assertEqual(c.trailers.get("x-chat-trailer"), "done")
        self.assertNotIn("x-http-code", c.trailers)  # the status key is never passed on
        self.assertTrue(self.backend.seen("Chat", "end", (2, "one")))

    @unittest.skipIf(h2 is None, "python3-h2 is not installed")
    def test_bidi_answer_arrives_before_the_next_line_http2(self):
        c = H2(self.gw.port())
        self.addCleanup(c.close)
        c.c.send_headers(1, [(":method", "POST"), (":path", "/v1/chat/s8"), (":scheme", "http"),
                             (":authority", "t"), ("content-type", "application/x-ndjson")])
        c.c.send_data(1, b'{"message":"one"}\n')
        c.flush()
        c.wait(lambda: b"\n" in c.data, "the answer to line 1")
        self.assertEqual(c.head[":status"], "200")
        self.assertEqual(c.head.get("x-chat-initial"), "i1")
        self.assertEqual(c.lines(), [{"shelf": "s8", "message": "ONE", "count": 1}])
        c.c.send_data(1, b'{"message":"two"}')
        c.flush()
        time.sleep(0.3)  # no newline yet: the line is not complete
        self.assertEqual(self.backend.messages("Chat")[-1], "one")
        c.c.send_data(1, b'\n')
        c.flush()
        c.wait(lambda: c.data.count(b"\n") >= 2, "the answer to line 2")
        c.c.end_stream(1)
        c.flush()
        c.wait(lambda: c.ended, "the end of the stream")
        self.assertIsNone(c.reset)
        self.assertEqual([m["message"] for m in c.lines()], ["ONE", "TWO"])
        self.assertEqual(c.trailers.get("grpc-status"), "0")
        self.assertEqual(c.trailers.get("x-chat-trailer"), "done")
        self.assertNotIn("x-http-code", c.trailers)

    def test_bad_line_after_the_response_started_is_in_band(self):
        c = self.h1()
        c.send(chunked_post("/v1/chat/s1", "TE: trailers\r\n"))
        c.send_chunk(b'{"message":"ok"}\n')
        st, h = c.head()
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(c.line())["message"], "OK")
        c.send_chunk(b'\n{"author": {"born": true}}\n{"message":"never"}\n')
        err = json.loads(c.line())["error"]
        self.assertEqual(err["code"], 3)
        self.assertIn("line 3: ", err["message"])  # the blank line 2 counts
        self.assertIn("author.born", err["message"])
        self.assertIsNone(c.line())
        self.assertEqual(c.trailers.get("grpc-status"), "3")
        harness.wait_until(lambda: self.backend.seen("Chat", "cancelled", (1, "ok")), timeout=IO_TIMEOUT,
                           message="the backend's call cancelled")
        self.assertNotIn("never", self.backend.messages("Chat"))

    def test_bad_line_before_the_response_is_a_400(self):
        c = self.h1()
        c.send(chunked_post("/%s/Upload" % tt.SVC))
        c.send_chunk(b'{"message":"first"}\n')
        harness.wait_until(lambda: self.backend.seen("Upload", "msg", "first"), timeout=IO_TIMEOUT,
                           message="the first line at the backend")
        c.send_chunk(b'{"count":"x"}\n')
        st, h = c.head()
        self.assertEqual(st, 400)
        self.assertTrue(h["content-type"].startswith("application/json"))
        b = json.loads(c.fixed(h))
        self.assertEqual(b["code"], 3)
        self.assertIn("line 2: ", b["message"])
        self.assertIn("count", b["message"])
        harness.wait_until(lambda: self.backend.seen("Upload", "cancelled", (1, "first")),
                           timeout=IO_TIMEOUT, message="the backend's call cancelled")

    @unittest.skipIf(h2 is None, "python3-h2 is not installed")
    def test_bad_line_http2(self):
        c = H2(self.gw.port())
        self.addCleanup(c.close)
        c.c.send_headers(1, [(":method", "POST"), (":path", "/%s/Upload" % tt.SVC),
                             (":scheme", "http"), (":authority", "t")])
        c.c.send_data(1, b'{"message":"h2first"}\n')
        c.flush()
        harness.wait_until(lambda: self.backend.seen("Upload", "msg", "h2first"),
                           timeout=IO_TIMEOUT, message="the first line at the backend")
        c.c.send_data(1, b'{"count":[1]}\n')
        c.flush()
        c.wait(lambda: c.ended, "the answer")
        self.assertEqual(c.head[":status"], "400")
        b = json.loads(c.data)
        self.assertEqual(b["code"], 3)
        self.assertIn("line 2: ", b["message"])
        harness.wait_until(lambda: self.backend.seen("Upload", "cancelled", (1, "h2first")),
                           timeout=IO_TIMEOUT, message="the backend's call cancelled")

    def test_bad_first_line_reaches_nothing(self):
        before = len(self.backend.messages("Upload"))
        b, _ = self.json("POST", "/%s/Upload" % tt.SVC, raw='{"nope": 1}\n{"message":"x"}\n',
                         status=400)
        self.assertIn("line 1: ", b["message"])
        time.sleep(0.2)
        self.assertEqual(len(self.backend.messages("Upload")), before)

    def test_line_limit_replaces_the_body_limit(self):
        # limits.max_body_bytes is 4096: a longer stream of short lines is fine
        lines = "".join(json.dumps({"message": "%d%s" % (i, "x" * 500)}) + "\n" for i in range(12))
        self.assertGreater(len(lines), 4096)
        b, _ = self.json("POST", "/%s/Upload" % tt.SVC, raw=lines)
        self.assertEqual(b["count"], 12)
        # one line over it is a 413 naming the line
        b, _ = self.json("POST", "/%s/Upload" % tt.SVC,
                         raw='{"message":"a"}\n' + json.dumps({"message": "y" * 5000}) + "\n",
                         status=413)
        self.assertIn("line 2: longer than the limit of 4096 bytes", b["message"])

    def test_oversized_line_without_newline_mid_stream(self):
        c = self.h1()
        c.send(chunked_post("/v1/chat/s2"))
        c.send_chunk(b'{"message":"ok2"}\n')
        c.head()
        self.assertEqual(json.loads(c.line())["message"], "OK2")
        for _ in range(3):  # 6000 bytes and no end of line: refused before it ends
            c.send_chunk(b"x" * 2000)
        err = json.loads(c.line())["error"]
        self.assertEqual(err["code"], 8)
        self.assertIn("line 2: longer than the limit", err["message"])
        harness.wait_until(lambda: self.backend.seen("Chat", "cancelled", (1, "ok2")), timeout=IO_TIMEOUT,
                           message="the backend's call cancelled")

    def test_backpressure_from_a_backend_that_does_not_read(self):
        c = self.h1()
        c.send(chunked_post("/%s/Upload" % tt.SVC))
        c.send_chunk(b'{"message":"slow","delayMs":4000}\n')
        harness.wait_until(lambda: self.backend.seen("Upload", "msg", "slow"), timeout=IO_TIMEOUT,
                           message="the first line at the backend")
        line = json.dumps({"message": "x" * 1000}).encode() + b"\n"
        data = b"%x\r\n%s\r\n" % (len(line) * 64, line * 64)
        # push for 2.5 s while the backend reads nothing: the gateway must
        # stop taking bytes after its buffers, the backend's window and the
        # sockets' buffers are full, far below what the client offers
        sent, off, offered = 0, 0, 64 << 20
        deadline = time.monotonic() + 2.5
        while sent < offered and time.monotonic() < deadline:
            _, w, _ = select.select([], [c.s], [], 0.1)
            if w:
                n = c.s.send(data[off:])
                sent += n
                off = (off + n) % len(data)
        self.assertLess(sent, 24 << 20, "the gateway took %d bytes" % sent)
        self.assertEqual(self.backend.messages("Upload")[-1], "slow")

    def test_empty_body_is_an_empty_stream(self):
        b, _ = self.json("POST", "/%s/Upload" % tt.SVC, raw="\n \n")
        self.assertEqual(b, {})
        st, h, text = self.request("POST", "/v1/chat/s3", raw="")
        self.assertEqual((st, text), (200, b""))


class TestTrailers(StreamCase):
    def get(self, path, te):
        c = self.h1()
        c.send(("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (path, "TE: trailers\r\n" if te else ""))
               .encode())
        st, h = c.head()
        self.assertEqual(h.get("transfer-encoding"), "chunked")
        return st, h, c.rest(), c.trailers

    def test_http1_trailers_with_te(self):
        st, h, body, t = self.get("/v1/watch?count=2", True)
        self.assertEqual(st, 200)
        self.assertEqual(len(body.splitlines()), 2)
        self.assertEqual(t.get("grpc-status"), "0")
        self.assertEqual(t.get("x-watch-trailer"), "w1")
        self.assertNotIn("x-http-code", t)
        self.assertNotIn("x-watch-trailer", h)  # not folded into the head of a stream

    def test_http1_no_trailers_without_te(self):
        st, h, body, t = self.get("/v1/watch?count=2", False)
        self.assertEqual((st, len(body.splitlines()), t), (200, 2, {}))

    def test_http1_trailers_of_a_failed_stream(self):
        st, h, body, t = self.get("/v1/watch?count=4&fail_after=1&code=14", True)
        self.assertEqual(json.loads(body.splitlines()[-1])["error"]["code"], 14)
        self.assertEqual(t.get("grpc-status"), "14")
        self.assertEqual(t.get("grpc-message"), "stream broke")
        self.assertEqual(t.get("x-resp-trailer"), "t1")
        self.assertNotIn("grpc-status-details-bin", t)

    def test_unary_still_folds_trailers_into_headers(self):
        st, h, body = self.request("POST", "/v1/do", {"message": "m"}, headers={"te": "trailers"})
        self.assertEqual(st, 200)
        self.assertEqual(h.get("x-resp-trailer"), "t1")

    @unittest.skipIf(not shutil.which("nghttp"), "nghttp is not installed")
    def test_http2_trailers_nghttp(self):
        url = "http://127.0.0.1:%d/v1/watch?count=2" % self.gw.port()
        p = subprocess.run(["nghttp", "-v", "-t", "20", url], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout
        # after the last DATA frame: the trailer fields, then their HEADERS
        # frame, which ends the stream
        tail = out[out.rindex("recv DATA frame"):]
        fields, frame = tail.split("recv HEADERS frame", 1)
        self.assertIn("END_STREAM", "".join(frame.splitlines()[:2]))
        self.assertIn("(stream_id=13) grpc-status: 0", fields)
        self.assertIn("(stream_id=13) x-watch-trailer: w1", fields)
        self.assertNotIn("x-http-code", fields)
        head = out[:out.index("recv DATA frame")]
        self.assertIn(":status: 200", head)
        self.assertNotIn("grpc-status", head)
        self.assertNotIn("x-watch-trailer", head)

if __name__ == "__main__":
    unittest.main()
