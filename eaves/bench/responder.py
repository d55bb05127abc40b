"""A static HTTP responder: answers every request with the same small JSON body, doing as little as it can.

It exists to measure the load generator, not a server: ``eaves bench`` runs wrk against it with the same
script, connections and CPU as the real runs, so the requests per second it reaches are what wrk itself can
send on its core (a lower bound when the responder's own core is the one that saturates, which the benchmark
reports). A ceiling that comes close to that figure was measuring wrk, not the server.

    python -m eaves.bench.responder --port 8798
"""

from __future__ import annotations

import argparse
import asyncio

from eaves.bench.ceiling import FIXED_BODY

RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(FIXED_BODY)).encode() + b"\r\n\r\n" + FIXED_BODY)
_HEALTH = b'{"status":"ok"}'
HEALTH_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                   + str(len(_HEALTH)).encode() + b"\r\n\r\n" + _HEALTH)


class StaticProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, requests with a Content-Length body (what wrk sends); pipelining tolerated."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15:stop if stop >= 0 else None])
            total = end + 4 + length
            if len(buffer) < total:
                break
            out.append(HEALTH_RESPONSE if head.startswith(b"get /healthz") else RESPONSE)
            buffer = buffer[total:]
        self.buffer = buffer
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StaticProtocol, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8798)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port))
    except ImportError:  # pragma: no cover - uvloop is in the lock file; plain asyncio still works
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
