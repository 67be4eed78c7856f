#!/usr/bin/env python3
"""Open N idle HTTP/2 cleartext (prior knowledge) connections and hold them.

Each connection sends the client preface and an empty SETTINGS frame, waits
for the server's SETTINGS, acknowledges it, and then stays silent (it keeps
reading so that a server PING or GOAWAY is seen, and answers PINGs).

Prints "ready <n> <failed>" on stdout once every connection has either seen
the server's SETTINGS or failed, then holds the connections until stdin is
closed (or a line arrives), and exits.

    idle_h2.py HOST PORT N
"""
import asyncio
import struct
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = struct.pack(">I", 0)[1:] + bytes([0x4, 0x0]) + struct.pack(">I", 0)
SETTINGS_ACK = struct.pack(">I", 0)[1:] + bytes([0x4, 0x1]) + struct.pack(">I", 0)


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


class Conn:
    def __init__(self):
        self.ready = asyncio.get_running_loop().create_future()
        self.closed = False
        self.writer = None

    async def run(self, host, port):
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as e:
            if not self.ready.done():
                self.ready.set_result(f"connect: {e}")
            return
        self.writer = writer
        writer.write(PREFACE + SETTINGS)
        try:
            while True:
                head = await reader.readexactly(9)
                length = int.from_bytes(head[:3], "big")
                ftype, flags = head[3], head[4]
                payload = await reader.readexactly(length) if length else b""
                if ftype == 0x4 and not (flags & 0x1):  # SETTINGS (not ACK)
                    writer.write(SETTINGS_ACK)
                    if not self.ready.done():
                        self.ready.set_result(None)
                elif ftype == 0x6 and not (flags & 0x1):  # PING -> PING ACK
                    writer.write(frame(0x6, 0x1, 0, payload))
                elif ftype == 0x7:  # GOAWAY
                    break
        except (asyncio.IncompleteReadError, OSError):
            pass
        self.closed = True
        if not self.ready.done():
            self.ready.set_result("closed by server before SETTINGS")


async def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    conns = [Conn() for _ in range(n)]
    tasks = []
    batch = 200  # stay under listen backlogs
    for i in range(0, n, batch):
        for c in conns[i:i + batch]:
            tasks.append(asyncio.create_task(c.run(host, port)))
        await asyncio.wait_for(asyncio.gather(*(c.ready for c in conns[i:i + batch])), 30)
    failed = [c.ready.result() for c in conns if c.ready.result() is not None]
    print(f"ready {n - len(failed)} {len(failed)}", flush=True)
    if failed:
        print(f"first failure: {failed[0]}", file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    still = sum(1 for c in conns if c.writer is not None and not c.closed)
    print(f"still-open {still}", flush=True)
    for c in conns:
        if c.writer is not None:
            c.writer.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
