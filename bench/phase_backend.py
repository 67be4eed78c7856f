#!/usr/bin/python3
"""HTTP/1.1 backends whose behaviour changes on command, for bench/resilience.py.

One asyncio process serves N ports (keep-alive, Content-Length bodies). Every
request gets `200 ok <index>` unless its backend's mode says otherwise:

  ok      answer at once
  slow    answer after --slow-ms milliseconds (default 200)
  fail    answer 503 at once
  refuse  stop listening (connections are refused) until the mode changes

Modes are set by writing lines "<index> <mode>" to the control FIFO given with
--control (one process, no extra port); each backend counts the requests it
answered per mode, printed as JSON on SIGTERM and on the line "dump".

Usage: phase_backend.py --ports P1,P2,P3,P4 --control FIFO [--slow-ms 200]
Prints "READY" once every port listens.
"""
import argparse
import asyncio
import json
import os
import signal
import sys


class Backend:
    def __init__(self, index, port, slow_ms):
        self.index = index
        self.port = port
        self.slow_s = slow_ms / 1000.0
        self.mode = "ok"
        self.server = None
        self.counts = {}
        self.writers = set()

    async def listen(self):
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", self.port, backlog=1024)

    async def set_mode(self, mode):
        if mode not in ("ok", "slow", "fail", "refuse"):
            return
        if mode == "refuse" and self.server:
            self.server.close()
            for w in list(self.writers):
                w.close()
            self.server = None
        elif mode != "refuse" and self.server is None:
            await self.listen()
        self.mode = mode

    async def serve(self, reader, writer):
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip() or b"0")
                if length:
                    await reader.readexactly(length)
                mode = self.mode
                self.counts[mode] = self.counts.get(mode, 0) + 1
                if mode == "slow":
                    await asyncio.sleep(self.slow_s)
                if mode == "fail":
                    body = b"failing %d\n" % self.index
                    status = b"503 Service Unavailable"
                else:
                    body = b"ok %d\n" % self.index
                    status = b"200 OK"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()


async def control(path, backends, done):
    loop = asyncio.get_running_loop()
    # Opened read-write so the FIFO never reports EOF between writers.
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
    while not done.is_set():
        line = (await reader.readline()).decode().split()
        if len(line) == 1 and line[0] == "dump":
            dump(backends)
        elif len(line) == 2 and line[0].isdigit() and int(line[0]) < len(backends):
            await backends[int(line[0])].set_mode(line[1])


def dump(backends):
    print(json.dumps({b.index: b.counts for b in backends}), flush=True)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--slow-ms", type=int, default=200)
    a = ap.parse_args()
    backends = [Backend(i, int(p), a.slow_ms) for i, p in enumerate(a.ports.split(","))]
    for b in backends:
        await b.listen()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    task = asyncio.create_task(control(a.control, backends, done))
    print("READY", flush=True)
    await done.wait()
    task.cancel()
    dump(backends)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
