"""berth's HTTP gateway: an asyncio HTTP/1.1 reverse proxy routing by Host header.

Contract:

- Requests are routed with a `RouteTable` (Host header + the gateway port they arrived on);
  a route's upstreams are used round-robin; a connection refused by one upstream is retried
  on the next (nothing was sent yet), so a dying replica costs no request.
- Client connections are kept alive (HTTP/1.1 default, `Connection: close` honoured);
  upstream connections are pooled per upstream and reused when the upstream keeps them open.
- Bodies stream in both directions with backpressure and are never buffered whole: a
  `Content-Length` body is copied piecewise, a chunked body is forwarded with its framing as
  is, a response without either is read until the upstream closes (and the client connection
  is then closed). The response is read while the request body is still being sent, so an
  upstream that answers early (or echoes) never deadlocks.
- `X-Forwarded-For` (client address appended), `X-Forwarded-Proto` and `X-Forwarded-Host`
  are set; hop-by-hop headers are dropped.
- `Upgrade` requests (WebSocket) are forwarded; after a `101` both sockets are spliced
  until either side closes.
- Errors are JSON (`{"error", "message", "workload"}`): 503 when no service answers to the
  host or the workload has no running task, 502 when the upstream refuses or breaks the
  connection (naming the workload), 504 when it does not answer within the upstream timeout.

Route changes are `RouteTable.set_routes` swaps: requests already forwarded keep their
upstream connection, so updates never drop in-flight requests. The gateway knows nothing
of the domain; `berth.gateway.routes.load_routes` builds its table.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

import httptools

from berth.gateway.routes import LoopbackAddress, Route, RouteTable, Upstream
from berth.runtime.base import Runtime, RuntimeDriverError

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
"""Longest request or response head accepted (431 / 502 beyond)."""
COPY_BYTES = 64 * 1024

HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
)
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
REASONS = {
    400: "Bad Request",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

BodyKind = Literal["none", "length", "chunked", "until_close"]


@dataclass(frozen=True)
class GatewayTimeouts:
    """Seconds. `connect`: opening an upstream connection. `upstream`: waiting for the
    response head (504 past it) and for each read of a response body (the connection is cut
    past it). `client_idle`: a kept-alive client connection waiting for its next request.
    `pool_idle`: how long an idle upstream connection stays pooled."""

    connect: float = 5.0
    upstream: float = 60.0
    client_idle: float = 75.0
    pool_idle: float = 30.0


class _ReadFailed(Exception):
    """Reading from one side failed (EOF mid-message, reset, timeout)."""


class _WriteFailed(Exception):
    """Writing to one side failed (the peer went away)."""


class _ConnectFailed(Exception):
    """An upstream connection could not be opened."""


class _BadHead(Exception):
    """A request or response head that does not parse."""


class _HeadCollector:
    """httptools callbacks that collect a message head."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))


@dataclass
class _Message:
    """A parsed request or response head."""

    first_line: bytes
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    upgrade: bool
    method: bytes = b""
    target: bytes = b""
    version: str = "1.1"
    status: int = 0

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def body_kind(self) -> tuple[BodyKind, int]:
        """How a request's body is framed: chunked, a length, or none."""
        te = self.header(b"transfer-encoding")
        if te is not None and b"chunked" in te.lower():
            return "chunked", 0
        length = self.header(b"content-length")
        if length is not None and int(length) > 0:
            return "length", int(length)
        return "none", 0


def _keep_alive(version: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """HTTP/1.1 keeps the connection unless `Connection: close`; 1.0 only with keep-alive.
    (httptools answers this only once a whole message was parsed; here only the head was.)"""
    tokens = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    if version == "1.0":
        return b"keep-alive" in tokens
    return b"close" not in tokens


def _parse_head(raw: bytes, *, request: bool) -> _Message:
    collector = _HeadCollector()
    parser: httptools.HttpRequestParser | httptools.HttpResponseParser = (
        httptools.HttpRequestParser(collector)
        if request
        else httptools.HttpResponseParser(collector)
    )
    try:
        parser.feed_data(raw)
    except httptools.HttpParserUpgrade:
        pass
    except httptools.HttpParserError as exc:
        raise _BadHead(str(exc)) from exc
    length = next((v for k, v in collector.headers if k.lower() == b"content-length"), None)
    if length is not None and not length.strip().isdigit():
        raise _BadHead("bad content-length")
    message = _Message(
        first_line=raw.split(b"\r\n", 1)[0],
        headers=collector.headers,
        keep_alive=_keep_alive(parser.get_http_version(), collector.headers),
        upgrade=parser.should_upgrade(),
        version=parser.get_http_version(),
    )
    if isinstance(parser, httptools.HttpRequestParser):
        message.method = parser.get_method()
        message.target = collector.url
    else:
        message.status = parser.get_status_code()
    return message


def _response_body_kind(request: _Message, response: _Message) -> tuple[BodyKind, int]:
    if request.method == b"HEAD" or response.status in (204, 304) or response.status < 200:
        return "none", 0
    te = response.header(b"transfer-encoding")
    if te is not None and b"chunked" in te.lower():
        return "chunked", 0
    length = response.header(b"content-length")
    if length is not None:
        return ("length", int(length)) if int(length) > 0 else ("none", 0)
    return "until_close", 0


async def _read(reader: asyncio.StreamReader, n: int, read_timeout: float | None) -> bytes:
    try:
        async with asyncio.timeout(read_timeout):
            return await reader.read(n)
    except (OSError, TimeoutError) as exc:
        raise _ReadFailed(str(exc) or type(exc).__name__) from exc


async def _read_exactly(reader: asyncio.StreamReader, n: int, read_timeout: float | None) -> bytes:
    try:
        async with asyncio.timeout(read_timeout):
            return await reader.readexactly(n)
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        raise _ReadFailed(str(exc) or type(exc).__name__) from exc


async def _read_line(reader: asyncio.StreamReader, read_timeout: float | None) -> bytes:
    try:
        async with asyncio.timeout(read_timeout):
            return await reader.readuntil(b"\r\n")
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise _ReadFailed(str(exc) or type(exc).__name__) from exc


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    try:
        writer.write(data)
        await writer.drain()
    except OSError as exc:
        raise _WriteFailed(str(exc) or type(exc).__name__) from exc


async def _copy_body(
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter,
    kind: BodyKind,
    length: int,
    read_timeout: float | None,
) -> None:
    """Copy one message body as framed by `kind`; raise `_ReadFailed` / `_WriteFailed`."""
    if kind == "length":
        remaining = length
        while remaining:
            chunk = await _read(src, min(COPY_BYTES, remaining), read_timeout)
            if not chunk:
                raise _ReadFailed("connection closed mid-body")
            remaining -= len(chunk)
            await _write(dst, chunk)
    elif kind == "chunked":
        while True:
            line = await _read_line(src, read_timeout)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _ReadFailed("bad chunk size") from exc
            await _write(dst, line)
            if size == 0:
                while (trailer := await _read_line(src, read_timeout)) != b"\r\n":
                    await _write(dst, trailer)
                await _write(dst, b"\r\n")
                return
            remaining = size + 2  # the chunk and its CRLF
            while remaining:
                chunk = await _read(src, min(COPY_BYTES, remaining), read_timeout)
                if not chunk:
                    raise _ReadFailed("connection closed mid-chunk")
                remaining -= len(chunk)
                await _write(dst, chunk)
    elif kind == "until_close":
        while chunk := await _read(src, COPY_BYTES, read_timeout):
            await _write(dst, chunk)


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


@dataclass
class _UpstreamConn:
    upstream: Upstream
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool


class _Pool:
    """Idle upstream connections, per upstream, most recently used first."""

    def __init__(self, runtime: Runtime | None, timeouts: GatewayTimeouts, max_idle: int) -> None:
        self._runtime = runtime
        self._timeouts = timeouts
        self._max_idle = max_idle
        self._idle: dict[Upstream, list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]]]
        self._idle = {}

    async def acquire(self, upstream: Upstream) -> _UpstreamConn:
        """A pooled connection still open, or a new one; raise `_ConnectFailed`."""
        idle = self._idle.get(upstream)
        now = time.monotonic()
        while idle:
            since, reader, writer = idle.pop()
            if now - since > self._timeouts.pool_idle or reader.at_eof() or writer.is_closing():
                _close(writer)
                continue
            return _UpstreamConn(upstream, reader, writer, reused=True)
        reader, writer = await self._connect(upstream)
        return _UpstreamConn(upstream, reader, writer, reused=False)

    async def _connect(
        self, upstream: Upstream
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            if isinstance(upstream, LoopbackAddress):
                return await asyncio.wait_for(
                    asyncio.open_connection(upstream.host, upstream.port, limit=MAX_HEAD_BYTES),
                    self._timeouts.connect,
                )
            if self._runtime is None:
                raise _ConnectFailed("no runtime to reach tasks")
            return await asyncio.wait_for(
                self._runtime.open_port(upstream.task_id, upstream.port), self._timeouts.connect
            )
        except TimeoutError as exc:
            raise _ConnectFailed(f"{upstream}: connect timed out") from exc
        except (OSError, RuntimeDriverError) as exc:
            raise _ConnectFailed(f"{upstream}: {exc or type(exc).__name__}") from exc

    def release(self, conn: _UpstreamConn) -> None:
        idle = self._idle.setdefault(conn.upstream, [])
        if len(idle) >= self._max_idle or conn.writer.is_closing():
            _close(conn.writer)
            return
        idle.append((time.monotonic(), conn.reader, conn.writer))

    def close(self) -> None:
        for idle in self._idle.values():
            for _, _, writer in idle:
                _close(writer)
        self._idle.clear()


@dataclass(frozen=True)
class WakeOutcome:
    """A woken service's route, or why the request cannot be served."""

    route: Route | None
    status: int = 503
    code: str = "not_woken"
    message: str = ""


class Waker(Protocol):
    async def wake(self, workload_id: str) -> WakeOutcome:
        """Start the workload if it sleeps; return once it accepts connections."""


class HttpGateway:
    """The HTTP reverse proxy on `host`:`port` (and each of `extra_ports`).

    `start` binds every port (raising `OSError` if one is taken) and returns; `stop` closes
    the listeners, cuts open client connections and empties the upstream pool. `scheme` is
    what `X-Forwarded-Proto` says (a TLS front end passes "https"). `runtime` is needed
    only for `TaskPort` upstreams. Port 0 binds a free port; `ports` lists those bound.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        route_table: RouteTable,
        runtime: Runtime | None,
        extra_ports: Iterable[int] = (),
        timeouts: GatewayTimeouts | None = None,
        scheme: str = "http",
        max_idle_per_upstream: int = 64,
        waker: Waker | None = None,
        on_request: Callable[[str], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self._ssl = ssl_context
        self._waker = waker
        self._on_request = on_request
        self.route_table = route_table
        self.timeouts = timeouts or GatewayTimeouts()
        self.scheme = scheme
        self._wanted_ports = [port, *extra_ports]
        self._pool = _Pool(runtime, self.timeouts, max_idle_per_upstream)
        self._servers: list[asyncio.Server] = []
        self._extra: dict[int, asyncio.Server] = {}
        self._clients: set[asyncio.Task[None]] = set()
        self._turns: dict[str, itertools.count[int]] = {}
        self.ports: list[int] = []

    async def start(self) -> None:
        """Listen on every port; idempotent."""
        if self._servers:
            return
        try:
            for port in self._wanted_ports:
                server = await self._listen(port)
                self._servers.append(server)
                self.ports.append(server.sockets[0].getsockname()[1])
        except BaseException:
            await self.stop()
            raise

    async def _listen(self, port: int) -> asyncio.Server:
        return await asyncio.start_server(
            self._on_client,
            self.host,
            port,
            limit=MAX_HEAD_BYTES,
            reuse_address=True,
            ssl=self._ssl,
        )

    async def listen_also(self, ports: Iterable[int]) -> None:
        """Listen on exactly these extra ports (besides those given at construction),
        opening new ones and closing those no longer wanted; a port already taken by
        another program is logged and skipped."""
        wanted = set(ports) - set(self._wanted_ports)
        for port in sorted(set(self._extra) - wanted):
            self._extra.pop(port).close()
        for port in sorted(wanted - set(self._extra)):
            try:
                self._extra[port] = await self._listen(port)
            except OSError as exc:
                log.warning("gateway cannot listen on port %d: %s", port, exc)

    async def stop(self) -> None:
        """Stop listening, close client connections and pooled upstream connections."""
        for server in list(self._extra.values()):
            server.close()
        self._extra.clear()
        for server in self._servers:
            server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        self.ports.clear()
        self._pool.close()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            await self._serve_client(reader, writer)
        except (asyncio.CancelledError, _ReadFailed, _WriteFailed):
            pass
        except Exception:
            log.exception("gateway connection failed")
        finally:
            self._clients.discard(task)
            _close(writer)

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        client_ip = str(peer[0]) if peer else ""
        listen_port = int(writer.get_extra_info("sockname")[1])
        while True:
            try:
                async with asyncio.timeout(self.timeouts.client_idle):
                    raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                await self._error(writer, 431, "head_too_large", "request head too large", None)
                return
            except (asyncio.IncompleteReadError, OSError, TimeoutError):
                return
            try:
                request = _parse_head(raw.lstrip(b"\r\n"), request=True)
            except (_BadHead, ValueError) as exc:
                await self._error(writer, 400, "bad_request", f"malformed request: {exc}", None)
                return
            if not await self._handle(request, reader, writer, listen_port, client_ip):
                return

    async def _handle(
        self,
        request: _Message,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        listen_port: int,
        client_ip: str,
    ) -> bool:
        """Proxy one request; return whether the client connection can carry another."""
        host = (request.header(b"host") or b"").decode("latin-1")
        body_kind, body_length = request.body_kind()
        # Without a body to drain, an error answer keeps the connection usable.
        keep = request.keep_alive and body_kind == "none" and not request.upgrade
        route = self.route_table.resolve(host, listen_port)
        if route is None:
            name = host.rsplit(":", 1)[0] if host else "(no Host header)"
            await self._error(writer, 503, "no_route", f"no service at {name}", None, keep)
            return keep
        if self._on_request is not None:
            self._on_request(route.workload_id)
        if not route.upstreams and self._waker is not None:
            # Scaled to zero: hold the request while the service wakes (one wake shared by
            # every request that arrives meanwhile), then forward it.
            woken = await self._waker.wake(route.workload_id)
            if woken.route is None:
                await self._error(
                    writer, woken.status, woken.code, woken.message, route.workload_id, keep
                )
                return keep
            route = woken.route
        if not route.upstreams:
            await self._error(
                writer,
                503,
                "no_running_task",
                f"workload {route.workload_id} has no running task",
                route.workload_id,
                keep,
            )
            return keep
        for attempt in range(2):
            conn = await self._connect(route)
            if conn is None and self._waker is not None:
                # Every replica refused: the table may still list tasks that just stopped.
                # Hold the request as for a sleeping service; the wake waits for a task.
                woken = await self._waker.wake(route.workload_id)
                if woken.route is not None:
                    route = woken.route
                    conn = await self._connect(route)
            if conn is None:
                await self._error(
                    writer,
                    502,
                    "upstream_unreachable",
                    f"workload {route.workload_id}: no replica accepted the connection",
                    route.workload_id,
                    keep,
                )
                return keep
            outcome = await self._exchange(
                request, body_kind, body_length, route, conn, reader, writer, host, client_ip
            )
            # A pooled connection the upstream had closed: retry once if nothing was lost.
            if outcome == "stale" and attempt == 0:
                continue
            if outcome == "stale":
                await self._error(
                    writer,
                    502,
                    "upstream_closed",
                    f"workload {route.workload_id}: the upstream closed the connection",
                    route.workload_id,
                    keep,
                )
                return keep
            return outcome == "keep"
        return False  # pragma: no cover - the loop always returns

    async def _connect(self, route: Route) -> _UpstreamConn | None:
        """A connection to the route's next upstream in turn, trying the others if refused."""
        turn = next(self._turns.setdefault(route.workload_id, itertools.count()))
        upstreams = route.upstreams
        start = turn % len(upstreams)
        for upstream in upstreams[start:] + upstreams[:start]:
            try:
                return await self._pool.acquire(upstream)
            except _ConnectFailed as exc:
                log.info("gateway: workload %s: %s", route.workload_id, exc)
        return None

    def _upstream_head(self, request: _Message, host: str, client_ip: str) -> bytes:
        forwarded_for = request.header(b"x-forwarded-for")
        xff = (forwarded_for + b", " if forwarded_for else b"") + client_ip.encode()
        parts = [request.method, b" ", request.target, b" HTTP/1.1\r\n"]
        for name, value in request.headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP or lowered in FORWARDED:
                continue
            parts += [name, b": ", value, b"\r\n"]
        if request.upgrade:
            parts += [
                b"Connection: Upgrade\r\nUpgrade: ",
                request.header(b"upgrade") or b"",
                b"\r\n",
            ]
        parts += [
            b"X-Forwarded-For: ",
            xff,
            b"\r\nX-Forwarded-Proto: ",
            self.scheme.encode(),
            b"\r\nX-Forwarded-Host: ",
            host.encode("latin-1"),
            b"\r\n\r\n",
        ]
        return b"".join(parts)

    async def _exchange(
        self,
        request: _Message,
        body_kind: BodyKind,
        body_length: int,
        route: Route,
        conn: _UpstreamConn,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        client_ip: str,
    ) -> Literal["keep", "close", "stale"]:
        """Send one request on `conn` and relay the answer; return what became of the client
        connection ("stale": the pooled connection was dead before anything was exchanged)."""
        workload = route.workload_id
        head = self._upstream_head(request, host, client_ip)

        async def send() -> None:
            await _write(conn.writer, head)
            await _copy_body(reader, conn.writer, body_kind, body_length, self.timeouts.client_idle)

        sending: asyncio.Future[None]
        if body_kind == "none" and not request.upgrade:
            # The common case needs no second task: the head fits the socket buffer.
            conn.writer.write(head)
            sending = asyncio.get_running_loop().create_future()
            sending.set_result(None)
        else:
            sending = asyncio.create_task(send())
        try:
            try:
                response = await self._response_head(conn, request, writer, sending)
            except _ReadFailed as exc:
                _close(conn.writer)
                if conn.reused and body_kind == "none" and not request.upgrade:
                    return "stale"
                client_broke = sending.done() and isinstance(sending.exception(), _ReadFailed)
                if client_broke:
                    return "close"
                await self._error(
                    writer,
                    502,
                    "upstream_broken",
                    f"workload {workload}: the upstream broke the connection ({exc})",
                    workload,
                    False,
                )
                return "close"
            except TimeoutError:
                _close(conn.writer)
                await self._error(
                    writer,
                    504,
                    "upstream_timeout",
                    f"workload {workload}: no response within {self.timeouts.upstream:g}s",
                    workload,
                    False,
                )
                return "close"
            except _BadHead as exc:
                _close(conn.writer)
                await self._error(
                    writer,
                    502,
                    "bad_upstream_response",
                    f"workload {workload}: invalid response ({exc})",
                    workload,
                    False,
                )
                return "close"

            if response.status == 101 and request.upgrade:
                await _write(writer, self._client_head(response, keep=True, upgrade=True))
                await sending
                await _splice(reader, writer, conn.reader, conn.writer)
                return "close"

            resp_kind, resp_length = _response_body_kind(request, response)
            keep = request.keep_alive and resp_kind != "until_close"
            client_head = self._client_head(response, keep=keep, upgrade=False)
            try:
                if resp_kind == "length" and resp_length <= COPY_BYTES:
                    # A small body goes out with its head in one write.
                    body = await _read_exactly(conn.reader, resp_length, self.timeouts.upstream)
                    await _write(writer, client_head + body)
                else:
                    await _write(writer, client_head)
                    await _copy_body(
                        conn.reader, writer, resp_kind, resp_length, self.timeouts.upstream
                    )
            except _ReadFailed:
                _close(conn.writer)
                return "close"  # mid-body: the client sees a cut connection
            if not sending.done():
                # The upstream answered before reading the whole request body.
                sending.cancel()
                _close(conn.writer)
                return "close"
            if sending.exception() is not None:
                _close(conn.writer)
                return "close"
            if response.keep_alive and resp_kind != "until_close":
                self._pool.release(conn)
            else:
                _close(conn.writer)
            return "keep" if keep else "close"
        finally:
            if not sending.done():
                sending.cancel()
                with contextlib.suppress(BaseException):
                    await sending
            elif not sending.cancelled():
                sending.exception()  # retrieved, so it is never reported as unhandled

    async def _response_head(
        self,
        conn: _UpstreamConn,
        request: _Message,
        writer: asyncio.StreamWriter,
        sending: asyncio.Future[None],
    ) -> _Message:
        """The final response head (1xx interim responses are relayed to the client).

        Raises TimeoutError when none arrives within the upstream timeout (also when the
        client stalls its upload), `_ReadFailed` when the upstream connection breaks (or the
        client's body breaks off), `_BadHead` for an unparsable head.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.upstream
        while True:
            if sending.done():
                raw = await self._read_response_head(conn, deadline - loop.time())
                response = _parse_head(raw, request=False)
                if 100 <= response.status < 200 and response.status != 101:
                    await _write(writer, raw)
                    continue
                return response
            reading = asyncio.ensure_future(conn.reader.readuntil(b"\r\n\r\n"))
            try:
                while True:
                    waiting: set[asyncio.Future[object]] = {reading}  # type: ignore[arg-type]
                    if not sending.done():
                        waiting.add(sending)  # type: ignore[arg-type]
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise TimeoutError
                    done, _ = await asyncio.wait(
                        waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                    if reading in done:
                        break
                    if not done:
                        raise TimeoutError
                    error = sending.exception()
                    if isinstance(error, _ReadFailed):
                        raise _ReadFailed(f"client body: {error}")
                    # A failed write to the upstream: its answer (or EOF) tells why.
            finally:
                if not reading.done():
                    reading.cancel()
            try:
                raw = reading.result()
            except asyncio.LimitOverrunError as exc:
                raise _BadHead("response head too large") from exc
            except (asyncio.IncompleteReadError, OSError) as exc:
                raise _ReadFailed(str(exc) or type(exc).__name__) from exc
            response = _parse_head(raw, request=False)
            if 100 <= response.status < 200 and response.status != 101:
                await _write(writer, raw)
                continue
            return response

    @staticmethod
    async def _read_response_head(conn: _UpstreamConn, remaining: float) -> bytes:
        if remaining <= 0:
            raise TimeoutError
        try:
            async with asyncio.timeout(remaining):
                return await conn.reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise
        except asyncio.LimitOverrunError as exc:
            raise _BadHead("response head too large") from exc
        except (asyncio.IncompleteReadError, OSError) as exc:
            raise _ReadFailed(str(exc) or type(exc).__name__) from exc

    def _client_head(self, response: _Message, *, keep: bool, upgrade: bool) -> bytes:
        parts = [response.first_line, b"\r\n"]
        for name, value in response.headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP and not (upgrade and lowered in (b"connection", b"upgrade")):
                continue
            parts += [name, b": ", value, b"\r\n"]
        if not upgrade:
            parts.append(b"Connection: keep-alive\r\n" if keep else b"Connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    async def _error(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        code: str,
        message: str,
        workload: str | None,
        keep: bool = False,
    ) -> None:
        # The same shape as the API's errors: a message to read, a code to match on.
        body = json.dumps({"error": message, "code": code, "workload": workload}).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS[status]}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\n"
            f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
        ).encode()
        with contextlib.suppress(_WriteFailed):
            await _write(writer, head + body)


async def _splice(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until both directions ended (or one side broke)."""

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            await _copy_body(src, dst, "until_close", 0, None)
            if dst.can_write_eof():
                dst.write_eof()
        except (_ReadFailed, _WriteFailed, OSError):
            _close(client_writer)
            _close(upstream_writer)

    try:
        await asyncio.gather(
            pump(client_reader, upstream_writer), pump(upstream_reader, client_writer)
        )
    finally:
        _close(upstream_writer)
