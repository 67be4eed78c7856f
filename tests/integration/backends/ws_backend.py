#!/usr/bin/python3
"""WebSocket echo backend for the integration tests (python3-websockets 10.4).

Paths:
  /headers[...]     first sends one text message, JSON {"path", "headers"
                    (lower-cased name -> value), "subprotocol", "server_id"},
                    then echoes like any other path.
  /close/<code>     closes at once with that close code and reason "bye".
  anything else     echoes every message back with the same type (text or
                    binary), in order.
When a connection has ended, the backend logs (stderr, harness .log_text())
"ws_backend: closed path=<path> code=<close code> reason=<reason>".
Subprotocols "echo" and "chat" are accepted when a client offers them.

Usage: ws_backend.py [--host 127.0.0.1|::1] [--port 0] [--server-id ID]
                     [--tls-cert F --tls-key F]
Prints "READY port=<port>" on stdout once serving; SIGTERM stops it.
"""

import argparse
import asyncio
import json
import os
import signal
import ssl
import sys

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_util as util  # noqa: E402

MAX_MESSAGE = 64 << 20


def make_handler(identity):
    async def handler(ws):
        try:
            await serve(ws)
        finally:
            # What the tests read from the backend log: that (and how) the
            # connection ended on this side.
            await ws.wait_closed()
            sys.stderr.write("ws_backend: closed path=%s code=%s reason=%s\n"
                             % (ws.path, ws.close_code, ws.close_reason))
            sys.stderr.flush()

    async def serve(ws):
        path = ws.path
        server_id = identity["server_id"]
        if path.startswith("/close/"):
            try:
                code = int(path[len("/close/"):].split("?", 1)[0])
            except ValueError:
                code = 1000
            await ws.close(code=code, reason="bye")
            return
        if path.startswith("/headers"):
            headers = {}
            for k, v in ws.request_headers.raw_items():
                lk = k.lower()
                headers[lk] = headers[lk] + ", " + v if lk in headers else v
            await ws.send(json.dumps({"path": path, "headers": headers,
                                      "subprotocol": ws.subprotocol, "server_id": server_id},
                                     sort_keys=True))
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass

    return handler


async def amain(args):
    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    stop = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    identity = {"server_id": args.server_id}
    server = await websockets.serve(make_handler(identity), args.host, args.port, ssl=ctx,
                                    subprotocols=["echo", "chat"], max_size=MAX_MESSAGE,
                                    close_timeout=2)
    port = server.sockets[0].getsockname()[1]
    identity["server_id"] = identity["server_id"] or "ws-backend-%d" % port
    util.announce_ready(port)
    await stop
    server.close()
    await asyncio.wait_for(server.wait_closed(), 5)


def main(argv=None):
    ap = argparse.ArgumentParser(description="WebSocket echo test backend")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--server-id", default="")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args(argv)
    asyncio.run(amain(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
