"""The HTTP gateway's tests' parts: a tiny HTTP/1.1 upstream on loopback, a gateway on a free
loopback port in the test process, and a WebSocket echo server behind one."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from berth.gateway.http.proxy import GatewayTimeouts, HttpGateway
from berth.gateway.http.route_table import LoopbackAddress, Route, RouteKey, RouteTable
from berth.testing.server import free_port

# --- a tiny HTTP/1.1 upstream on loopback -------------------------------------------------


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return
            yield await reader.readexactly(size)
            await reader.readexactly(2)
    else:
        remaining = int(headers.get("content-length", "0"))
        while remaining:
            chunk = await reader.read(min(remaining, 65536))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def http_response(status: int, body: bytes, content_type: str = "text/plain") -> bytes:
    """A whole HTTP/1.1 response with a Content-Length body."""
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Upstream:
    """GET /who -> name; GET /headers -> the request's headers as JSON-ish text;
    POST /echo -> the body echoed back chunked as it arrives; POST /sha -> body sha256;
    GET /slow -> after 0.3 s; GET /hang -> never answers; GET /big?mb=N -> N MB chunked."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def address(self) -> LoopbackAddress:
        return LoopbackAddress("127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._serve_requests(reader, writer)
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(Exception):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                _method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                self.requests += 1
                await self._route(target, headers, reader, writer)
                await writer.drain()

    async def _route(
        self,
        target: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        if target == "/who":
            writer.write(http_response(200, self.name.encode()))
        elif target == "/headers":
            text = "\n".join(f"{k}: {v}" for k, v in sorted(headers.items()))
            writer.write(http_response(200, text.encode()))
        elif target == "/slow":
            await asyncio.sleep(0.3)
            writer.write(http_response(200, self.name.encode()))
        elif target == "/hang":
            await asyncio.sleep(3600)
        elif target == "/sha":
            digest = hashlib.sha256()
            async for chunk in _read_body(reader, headers):
                digest.update(chunk)
            writer.write(http_response(200, digest.hexdigest().encode()))
        elif target == "/echo":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            async for chunk in _read_body(reader, headers):
                writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        elif target.startswith("/big"):
            mb = int(target.split("=")[1])
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            block = b"x" * (1024 * 1024)
            for _ in range(mb):
                writer.write(b"%x\r\n%b\r\n" % (len(block), block))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(http_response(404, b"nope"))


# --- fixtures --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def gateway(
    routes: dict[RouteKey, Route] | None = None,
    *,
    timeouts: GatewayTimeouts | None = None,
    runtime: Any = None,
) -> AsyncIterator[tuple[HttpGateway, RouteTable, str]]:
    table = RouteTable("localhost")
    gw = HttpGateway(
        host="127.0.0.1", port=free_port(), route_table=table, runtime=runtime, timeouts=timeouts
    )
    await gw.start()
    if routes is not None:
        table.set_routes(routes)
    try:
        yield gw, table, f"http://127.0.0.1:{gw.ports[0]}"
    finally:
        await gw.stop()


def key(gw: HttpGateway, name: str) -> RouteKey:
    """The route key of host `name` on the gateway's (first) port."""
    return (name, gw.ports[0])


# --- a WebSocket echo server behind a gateway ----------------------------------------------


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


@contextlib.asynccontextmanager
async def echo_behind_gateway() -> AsyncIterator[HttpGateway]:
    """A gateway routing `sock.localhost` to a WebSocket echo server."""
    async with ws_serve(_echo, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        async with gateway() as (gw, table, _url):
            table.set_routes(
                {key(gw, "sock"): Route("sock", (LoopbackAddress("127.0.0.1", port),))}
            )
            yield gw


def connect_through(gw: HttpGateway, path: str = "/") -> Any:
    """A WebSocket client to `sock.localhost` through the gateway (see `echo_behind_gateway`)."""
    return ws_connect(
        f"ws://sock.localhost:{gw.ports[0]}{path}", host="127.0.0.1", port=gw.ports[0], proxy=None
    )
