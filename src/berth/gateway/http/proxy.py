"""berth's HTTP gateway: an asyncio HTTP/1.1 reverse proxy routing by Host header.

Contract:

- Requests are routed with a `RouteTable` (Host header + the gateway port they arrived on);
  a route's upstreams are used round-robin; a connection refused by one upstream is retried
  on the next (nothing was sent yet), so a dying replica costs no request.
- Client connections are kept alive (HTTP/1.1 default, `Connection: close` honoured;
  pipelined requests are answered in order); upstream connections are pooled per upstream
  and reused when the upstream keeps them open.
- Bodies stream in both directions with backpressure and are never buffered whole: each
  piece the parser yields is written on at once, and a side whose peer cannot keep up stops
  being read until the peer drains. A chunked body is re-framed chunk by chunk (trailers are
  dropped), a `Content-Length` body keeps its length, a response framed by the upstream
  closing is relayed until it closes (and the client connection is then closed). The
  response is read while the request body is still being sent, so an upstream that answers
  early (or echoes) never deadlocks.
- `X-Forwarded-For` (client address appended), `X-Forwarded-Proto` and `X-Forwarded-Host`
  are set. Hop-by-hop headers are dropped in both directions (RFC 9110 section 7.6.1): the
  standard ones (`HOP_BY_HOP`, which includes `Proxy-Authorization`: credentials meant for a
  proxy never reach a service) and every header a message's `Connection` header names,
  except those routing and framing need (`NEVER_NOMINATED`: `Host`, `Content-Length`,
  `Transfer-Encoding`; the body is re-framed as it arrives). A request's `Proxy` header is
  dropped too (CGI programs would take it for `HTTP_PROXY`).
- WebSocket upgrade requests are forwarded; after a `101` both sockets are spliced until
  either side closes. Other upgrades (`h2c`...) are forwarded as plain requests without
  their `Upgrade` header, and their connection closes after the answer.
- Upstream status lines are relayed as they are (any code, any reason, as HTTP/1.1); the
  gateway's own answers take their reason phrase from `http.HTTPStatus` (none for a code it
  does not list).
- Errors are JSON in the API's shape (`{"error", "code", "workload"}`): 503 when no service
  answers to the host or the workload has no running task, 502 when the upstream refuses or
  breaks the connection (naming the workload), 504 when it does not answer within the
  upstream timeout.
- With a `connection_limit`, each client address has a token bucket of new connections: a
  connection opened past it has its first request answered 429 (`Retry-After`, code
  `rate_limited`) and is closed. Only opening a connection costs a bucket lookup; requests on
  a kept-alive connection cost nothing extra.

Route changes are `RouteTable.set_routes` swaps: requests already forwarded keep their
upstream connection, so updates never drop in-flight requests. The gateway knows nothing
of the domain; `berth.gateway.http.route_table.load_routes` builds its table.

Why protocols rather than streams: a proxied request on a pooled connection is handled
entirely inside two `data_received` callbacks (the client's, which parses the head and
writes it upstream, and the upstream's, which parses the answer and writes it back), with no
task, future or timer created per request. Only what must wait (opening a connection, waking
a service) runs as a task. Timeouts are enforced by one sweep over the open connections
rather than a timer per read.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal, Protocol, cast

import httptools

from berth.gateway.http.route_table import LoopbackAddress, Route, RouteTable, Upstream
from berth.runtime.base import Runtime, RuntimeDriverError
from berth.token_buckets import TokenBuckets

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
"""Longest request head accepted (431 beyond) and response head accepted (502 beyond)."""
BUFFER_HIGH_WATER = 256 * 1024
"""Request bytes held for an upstream connection still being opened before the client is
no longer read."""
RATE_LIMITED_HEAD_SECONDS = 5.0
"""How long a connection over its client's limit may take to send the request head that is
answered 429 before it is closed unanswered."""

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
    }
)
"""Headers about one connection, never passed on (`Transfer-Encoding` is one too, but it is
kept and the body re-framed to match it as it streams)."""
NEVER_NOMINATED = frozenset({b"host", b"content-length", b"transfer-encoding"})
"""Headers a `Connection` option cannot remove: the route and the body's framing depend on
them (a `Content-Length` dropped from a body still forwarded would smuggle a request)."""
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
DROPPED_FROM_REQUESTS = HOP_BY_HOP | FORWARDED | {b"proxy"}
KEEP_ALIVE = b"Connection: keep-alive"
CLOSE = b"Connection: close"

BodyKind = Literal["none", "length", "chunked", "until_close"]


@dataclass(frozen=True)
class GatewayTimeouts:
    """Seconds. `connect`: opening an upstream connection. `upstream`: waiting for the
    response head (504 past it) and between two pieces of an exchange in progress (both
    connections are cut past it). `client_idle`: a kept-alive client connection waiting for
    its next request. `pool_idle`: how long an idle upstream connection stays pooled."""

    connect: float = 5.0
    upstream: float = 60.0
    client_idle: float = 75.0
    pool_idle: float = 30.0

    def sweep_interval(self) -> float:
        """How often deadlines are checked: a quarter of the shortest, within 50 ms..1 s."""
        shortest = min(self.upstream, self.client_idle, self.pool_idle)
        return min(1.0, max(0.05, shortest / 4))


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


class _Head:
    """What the gateway needs of one message head, collected header by header as the
    parser yields them: the headers it passes on, already serialised, and the values of
    those it acts on (hop-by-hop ones are kept aside, never passed on)."""

    __slots__ = (
        "chunked",
        "connection",
        "dropped",
        "forwarded_for",
        "has_length",
        "host",
        "lines",
        "size",
        "upgrade",
    )

    def __init__(self, dropped: frozenset[bytes]) -> None:
        self.dropped = dropped
        self.lines: list[bytes] = []
        self.size = 0
        self.host = b""
        self.connection = b""
        self.upgrade = b""
        self.forwarded_for = b""
        self.chunked = False
        self.has_length = False

    def add(self, name: bytes, value: bytes) -> None:
        self.size += len(name) + len(value) + 4
        if self.size > MAX_HEAD_BYTES:
            raise _HeadTooLarge
        lowered = name.lower()
        if lowered in self.dropped:
            if lowered == b"connection":
                self.connection = self.connection + b"," + value if self.connection else value
            elif lowered == b"upgrade":
                self.upgrade = value
            elif lowered == b"x-forwarded-for":
                self.forwarded_for = (
                    self.forwarded_for + b", " + value if self.forwarded_for else value
                )
            return
        if lowered == b"host":
            self.host = value
        elif lowered == b"transfer-encoding":
            self.chunked = b"chunked" in value.lower()
        elif lowered == b"content-length":
            self.has_length = True
        self.lines += (name, b": ", value, b"\r\n")

    @classmethod
    def from_response_block(cls, block: bytes) -> _Head:
        """The same from a response's whole block of header lines (each ending in CRLF), as
        one pass over its lines: cheaper than a parser callback per header."""
        head = cls(HOP_BY_HOP)
        kept = []
        for line in block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            lowered = name.lower()
            if lowered in HOP_BY_HOP:
                value = value.strip()
                if lowered == b"connection":
                    head.connection = head.connection + b"," + value if head.connection else value
                elif lowered == b"upgrade":
                    head.upgrade = value
                continue
            if lowered == b"content-length":
                head.has_length = True
            elif lowered == b"transfer-encoding":
                head.chunked = b"chunked" in value.lower()
            kept.append(line)
        names = _nominated(head.connection)
        if names:
            kept = [line for line in kept if line.partition(b":")[0].lower() not in names]
        head.lines = [b"\r\n".join(kept)]  # the block's last CRLF made an empty last line
        return head

    def drop_nominated(self) -> None:
        """Remove the headers the `Connection` header names (it may come after them, so
        this runs once the head is complete). Nothing to do in the usual case, a
        `Connection` header naming only `close`, `keep-alive` or `upgrade`."""
        names = _nominated(self.connection)
        if not names:
            return
        lines = self.lines
        kept: list[bytes] = []
        for index in range(0, len(lines), 4):  # (name, ": ", value, CRLF) per header
            if lines[index].lower() not in names:
                kept += lines[index : index + 4]
        self.lines = kept
        if b"x-forwarded-for" in names:
            self.forwarded_for = b""

    def keep_alive(self, version: str) -> bool:
        """HTTP/1.1 keeps the connection unless `Connection: close`; 1.0 only with
        keep-alive. (httptools answers this only once a whole message was parsed.)"""
        if not self.connection:
            return version != "1.0"
        tokens = {token.strip().lower() for token in self.connection.split(b",")}
        if version == "1.0":
            return b"keep-alive" in tokens
        return b"close" not in tokens


_USUAL_CONNECTION_VALUES = frozenset(
    {b"keep-alive", b"Keep-Alive", b"close", b"Close", b"upgrade", b"Upgrade"}
)
"""What nearly every `Connection` header says: nothing to parse (the fast path)."""


def _nominated(connection: bytes) -> frozenset[bytes]:
    """The header names a `Connection` value lists that are not dropped anyway."""
    if not connection or connection in _USUAL_CONNECTION_VALUES:
        return frozenset()
    tokens = {token.strip().lower() for token in connection.split(b",")}
    return frozenset(tokens - HOP_BY_HOP - NEVER_NOMINATED - {b"close", b""})


def _is_websocket(upgrade: bytes) -> bool:
    """Whether an `Upgrade` value asks for WebSocket (the one upgrade the gateway relays)."""
    return any(token.strip().lower() == b"websocket" for token in upgrade.split(b","))


def _reason(status: int) -> str:
    """The standard reason phrase, or none for a code `http.HTTPStatus` does not list."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _error_bytes(
    status: int,
    code: str,
    message: str,
    workload: str | None,
    keep: bool,
    *,
    retry_after: int | None = None,
) -> bytes:
    # The same shape as the API's errors: a message to read, a code to match on.
    body = json.dumps({"error": message, "code": code, "workload": workload}).encode()
    retry = "" if retry_after is None else f"Retry-After: {retry_after}\r\n"
    head = (
        f"HTTP/1.1 {status} {_reason(status)}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        f"{retry}"
        f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
    ).encode()
    return head + body


class _Pool:
    """Idle upstream connections, per upstream, most recently used last."""

    def __init__(self, max_idle: int) -> None:
        self._max_idle = max_idle
        self._idle: dict[Upstream, list[_UpstreamConnection]] = {}

    def take(self, upstream: Upstream) -> _UpstreamConnection | None:
        idle = self._idle.get(upstream)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def put(self, conn: _UpstreamConnection, now: float) -> None:
        idle = self._idle.setdefault(conn.upstream, [])
        if len(idle) >= self._max_idle or conn.closed:
            conn.close()
            return
        conn.idle_since = now
        idle.append(conn)

    def discard(self, conn: _UpstreamConnection) -> None:
        idle = self._idle.get(conn.upstream)
        if idle and conn in idle:
            idle.remove(conn)

    def expire(self, older_than: float) -> None:
        for upstream, idle in list(self._idle.items()):
            for conn in [c for c in idle if c.idle_since < older_than or c.closed]:
                idle.remove(conn)
                conn.close()
            if not idle:
                del self._idle[upstream]

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


class HttpGateway:
    """The HTTP reverse proxy on `host`:`port` (and each of `extra_ports`).

    `start` binds every port (raising `OSError` if one is taken) and returns; `stop` closes
    the listeners, cuts open client connections and empties the upstream pool. `scheme` is
    what `X-Forwarded-Proto` says (a TLS front end passes "https"). `runtime` is needed
    only for `TaskPort` upstreams. Port 0 binds a free port; `ports` lists those bound.
    `connection_limit` (shared by the gateways of one server) limits new connections per
    client address (see the module docstring); None leaves them unlimited.
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
        connection_limit: TokenBuckets | None = None,
    ) -> None:
        self.host = host
        self.connection_limit = connection_limit
        self._ssl = ssl_context
        self._runtime = runtime
        self.waker = waker
        self.on_request = on_request
        self.route_table = route_table
        self.timeouts = timeouts or GatewayTimeouts()
        self.scheme_bytes = scheme.encode()
        self._wanted_ports = [port, *extra_ports]
        self.pool = _Pool(max_idle_per_upstream)
        self._servers: list[asyncio.Server] = []
        self._extra: dict[int, asyncio.Server] = {}
        self.clients: set[_ClientConnection] = set()
        self.upstreams: set[_UpstreamConnection] = set()
        self._turns: dict[str, itertools.count[int]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep_interval = self.timeouts.sweep_interval()
        self.now = 0.0
        """Loop time as of the last sweep. Deadlines are set from it (a request costs no clock
        read) with one sweep interval added, so one fires between its timeout and its
        timeout plus two intervals."""
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
        self.now = asyncio.get_running_loop().time()
        self._sweeper = asyncio.create_task(self._sweep(), name="gateway-deadlines")

    async def _listen(self, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            lambda: _ClientConnection(self),
            self.host,
            port,
            reuse_address=True,
            backlog=1024,
            ssl=self._ssl,
        )

    async def listen_on(self, port: int) -> None:
        """Listen on `port` too, from now on (nothing to do if it already does); raises
        `OSError` when the port cannot be opened. `listen_also` closes it again once its
        wanted ports no longer include it."""
        if port in self._wanted_ports or port in self._extra:
            return
        self._extra[port] = await self._listen(port)

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
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for server in [*self._extra.values(), *self._servers]:
            server.close()
        self._extra.clear()
        for client in list(self.clients):
            client.abort()
        for upstream in list(self.upstreams):
            upstream.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        self.ports.clear()
        self.pool.close()

    def deadline(self, seconds: float) -> float:
        """A deadline `seconds` from now, on the sweep's clock (see `now`)."""
        return self.now + seconds + self._sweep_interval

    async def _sweep(self) -> None:
        """Enforce the deadlines of every open connection and expire idle pooled ones."""
        loop = asyncio.get_running_loop()
        interval = self._sweep_interval
        while True:
            await asyncio.sleep(interval)
            self.now = now = loop.time()
            for client in [c for c in self.clients if c.deadline is not None]:
                if client.deadline is not None and client.deadline <= now:
                    try:
                        client.deadline_passed()
                    except Exception:
                        log.exception("gateway: acting on a deadline failed")
                        client.abort()
            self.pool.expire(now - self.timeouts.pool_idle)

    def next_upstreams(self, route: Route) -> tuple[Upstream, ...]:
        """The route's upstreams, starting with the one whose turn it is."""
        upstreams = route.upstreams
        if len(upstreams) == 1:
            return upstreams
        turn = next(self._turns.setdefault(route.workload_id, itertools.count()))
        start = turn % len(upstreams)
        return upstreams[start:] + upstreams[:start]

    async def connect(
        self, route: Route, order: tuple[Upstream, ...] | None = None
    ) -> _UpstreamConnection | None:
        """A connection to the route's next upstream in turn (or the first of `order`),
        pooled or new, trying the others if one refuses; None when none accepts."""
        for upstream in order or self.next_upstreams(route):
            pooled = self.pool.take(upstream)
            if pooled is not None:
                return pooled
            try:
                return await self._open(upstream)
            except (OSError, TimeoutError, RuntimeDriverError) as exc:
                log.info("gateway: workload %s: %s: %s", route.workload_id, upstream, exc)
        return None

    async def _open(self, upstream: Upstream) -> _UpstreamConnection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeouts.connect):
            if isinstance(upstream, LoopbackAddress):
                _, conn = await loop.create_connection(
                    lambda: _UpstreamConnection(self, upstream), upstream.host, upstream.port
                )
                return conn
            if self._runtime is None:
                raise OSError("no runtime to reach tasks")
            sock = await self._runtime.open_port(upstream.task_id, upstream.port)
            try:
                _, conn = await loop.create_connection(
                    lambda: _UpstreamConnection(self, upstream), sock=sock
                )
            except BaseException:
                sock.close()
                raise
            return conn


class _Pausable:
    """A protocol whose transport stops being read for as long as any reason holds."""

    transport: asyncio.Transport | None

    def __init__(self) -> None:
        self._pause_reasons: set[str] = set()

    def pause(self, reason: str) -> None:
        if not self._pause_reasons and self.transport is not None:
            with contextlib.suppress(RuntimeError):
                self.transport.pause_reading()
        self._pause_reasons.add(reason)

    def resume(self, reason: str) -> None:
        if not self._pause_reasons or reason not in self._pause_reasons:
            return
        self._pause_reasons.discard(reason)
        if not self._pause_reasons and self.transport is not None:
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()


class _HeadTooLarge(Exception):
    pass


class _ClientConnection(asyncio.Protocol, _Pausable):
    """One client connection: parses requests and hands each to an `_Exchange`, in order.

    `deadline` (loop time) is when the sweep acts: an idle connection is closed, an
    exchange waiting on its upstream times out. None while nothing may time out (a request
    still connecting or waking its service: those have their own limits; a spliced pair).
    """

    def __init__(self, gateway: HttpGateway) -> None:
        _Pausable.__init__(self)
        self.gateway = gateway
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.listen_port = 0
        self.client_ip = b""
        self.tls = False
        self.deadline: float | None = None
        self.exchanges: deque[_Exchange] = deque()
        """Requests in arrival order; the first is the one being served."""
        self.parsing: _Exchange | None = None
        """The request whose head or body is being read."""
        self.spliced: _UpstreamConnection | None = None
        self.raw_pending: list[bytes] | None = None
        """After an upgrade request, bytes the client sent before the upstream's 101."""
        self.out: list[bytes] = []
        self.eof = False
        self.closed = False
        self.writing_paused = False
        self._starting = False
        self._url = b""
        self._head = _Head(DROPPED_FROM_REQUESTS)

    # -- transport events --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = self.transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        self.client_ip = address.encode()
        self.listen_port = int(self.transport.get_extra_info("sockname")[1])
        self.tls = self.transport.get_extra_info("sslcontext") is not None
        self.deadline = self.gateway.deadline(self.gateway.timeouts.client_idle)
        self.gateway.clients.add(self)
        limit = self.gateway.connection_limit
        if limit is not None:
            decision = limit.take(address)
            if not decision.allowed:
                # The parser now answers the first request 429 and nothing is forwarded.
                self.parser = httptools.HttpRequestParser(
                    _RateLimited(self, limit, decision.retry_after)
                )
                self.deadline = self.gateway.deadline(RATE_LIMITED_HEAD_SECONDS)

    def data_received(self, data: bytes) -> None:
        if self.spliced is not None:
            self.spliced.write(data)
            return
        if self.raw_pending is not None:
            self.raw_pending.append(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = int(upgrade.args[0]) if upgrade.args else len(data)
            if self.raw_pending is None and not self.closed:
                self.raw_pending = [data[offset:]] if offset < len(data) else []
                self.pause("upgrade")
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self.refuse(431, "head_too_large", "request head too large")
            else:
                log.error("gateway: handling a request failed", exc_info=exc.__context__)
                self.abort()
        except httptools.HttpParserError as exc:
            self.refuse(400, "bad_request", f"malformed request: {exc}")
        self.flush()

    def eof_received(self) -> bool | None:
        if self.spliced is not None:
            self.eof = True
            self.spliced.write_eof()
            if self.spliced.eof or self.tls:  # both directions ended
                self.spliced.close()
                self.close()
            return not self.tls
        self.eof = True
        # Keep the connection open for writing while a request is still being answered.
        return bool(self.exchanges) and not self.tls

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.deadline = None
        self.gateway.clients.discard(self)
        if self.spliced is not None:
            self.spliced.close()
        exchanges, self.exchanges = list(self.exchanges), deque()
        for exchange in exchanges:
            exchange.client_gone()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.spliced is not None:
            self.spliced.pause("peer_full")
        elif self.exchanges and self.exchanges[0].conn is not None:
            self.exchanges[0].conn.pause("client_full")

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.spliced is not None:
            self.spliced.resume("peer_full")
        elif self.exchanges and self.exchanges[0].conn is not None:
            self.exchanges[0].conn.resume("client_full")

    # -- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._head = _Head(DROPPED_FROM_REQUESTS)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head.size += len(url)
        if self._head.size > MAX_HEAD_BYTES:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head.add(name, value)

    def on_headers_complete(self) -> None:
        parser = self.parser
        head = self._head
        head.drop_nominated()
        upgrade = parser.should_upgrade()
        websocket = upgrade and _is_websocket(head.upgrade)
        exchange = _Exchange(
            self,
            method=parser.get_method(),
            target=self._url,
            head=head,
            # The parser reads nothing after an upgrade request: one not relayed as such is
            # answered, and then the connection ends.
            keep_alive=head.keep_alive(parser.get_http_version()) and not upgrade,
            upgrade=websocket,
        )
        self.parsing = exchange
        self.exchanges.append(exchange)
        if len(self.exchanges) == 1:
            self.deadline = None
            exchange.start()
        else:
            self.pause("pipelined")

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.request_body(body)

    def on_message_complete(self) -> None:
        if self.parsing is not None:
            exchange, self.parsing = self.parsing, None
            exchange.request_complete()

    # -- used by exchanges -------------------------------------------------------------

    def flush(self) -> None:
        if self.out and not self.closed and self.transport is not None:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            self.out.clear()
            self.transport.write(data)

    def finished(self, exchange: _Exchange, keep: bool) -> None:
        """`exchange` (the first) was answered; serve the next request or close."""
        if self.exchanges and self.exchanges[0] is exchange:
            self.exchanges.popleft()
        self.resume("upstream_full")
        self.resume("held")
        if self.parsing is exchange:
            # Answered before its request was read whole: the rest cannot be told apart
            # from a next request, so the connection ends here.
            keep = False
        if not keep or self.eof:
            self.close()
            return
        # The next request may be read on (its body, if pipelined, must reach its upstream).
        self.resume("pipelined")
        if self._starting:
            return  # the loop below, further up the stack, starts the next one
        # A loop, not a recursion: a request answered at once (no route) finishes here again.
        self._starting = True
        try:
            while self.exchanges and not self.exchanges[0].started and not self.closed:
                self.exchanges[0].start()
        finally:
            self._starting = False
        if not self.exchanges and not self.closed:
            self.deadline = self.gateway.deadline(self.gateway.timeouts.client_idle)

    def refuse(self, status: int, code: str, message: str) -> None:
        """Answer a request that cannot be parsed (unless one is in progress) and close."""
        if not self.exchanges:
            self.out.append(_error_bytes(status, code, message, None, False))
        self.close()

    def splice(self, upstream: _UpstreamConnection) -> None:
        """From now on, bytes are copied both ways between this client and `upstream`."""
        self.spliced = upstream
        self.deadline = None
        pending, self.raw_pending = self.raw_pending or [], None
        for data in pending:
            upstream.write(data)
        self.resume("upgrade")

    def write_eof(self) -> None:
        self.flush()
        if self.transport is not None and self.transport.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                self.transport.write_eof()
        else:
            self.close()

    def close(self) -> None:
        self.flush()
        self.deadline = None
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.out.clear()
        self.deadline = None
        if self.transport is not None:
            self.transport.abort()

    def deadline_passed(self) -> None:
        if self.exchanges:
            self.exchanges[0].timed_out()
            self.flush()
        else:
            self.close()


class _RateLimited:
    """Parser callbacks of a connection its client opened past its connection limit: the
    first request is answered 429 as soon as its head is read, and the connection closed."""

    def __init__(self, client: _ClientConnection, limit: TokenBuckets, retry_after: int) -> None:
        self.client = client
        self.limit = limit
        self.retry_after = retry_after

    def on_headers_complete(self) -> None:
        message = (
            f"too many new connections from {self.client.client_ip.decode()}: "
            f"{self.limit.rate:g} per second, bursts of {self.limit.burst}; retry after "
            f"{self.retry_after} s"
        )
        self.client.out.append(
            _error_bytes(429, "rate_limited", message, None, False, retry_after=self.retry_after)
        )
        self.client.close()


class _UpstreamConnection(asyncio.Protocol, _Pausable):
    """One connection to an upstream: carries one exchange at a time, idles in the pool
    between them, and is spliced to a client after a `101 Switching Protocols`."""

    def __init__(self, gateway: HttpGateway, upstream: Upstream) -> None:
        _Pausable.__init__(self)
        self.gateway = gateway
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: _Exchange | None = None
        self.spliced: _ClientConnection | None = None
        self.closed = False
        self.eof = False
        self.writing_paused = False
        self.served = 0
        self.idle_since = 0.0
        self.keep_alive = True
        self.head_bytes: bytes | None = None
        """What arrived since the current response began, until its head is complete: the
        head is read from these bytes whole, rather than header by header."""
        self._fresh_parser = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.gateway.upstreams.add(self)

    def data_received(self, data: bytes) -> None:
        if self.spliced is not None:
            self.spliced.out.append(data)
            self.spliced.flush()
            return
        exchange = self.exchange
        if exchange is None:
            self.close()  # Nothing was asked: an idle connection must stay silent.
            return
        exchange.touch()
        if self.head_bytes is not None:
            self.head_bytes += data
            if len(self.head_bytes) > MAX_HEAD_BYTES and b"\r\n\r\n" not in self.head_bytes:
                exchange.upstream_failed("bad_upstream_response", "response head too large")
                exchange.client.flush()
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = int(upgrade.args[0]) if upgrade.args else len(data)
            if self.exchange is not None:
                self.exchange.upgraded(self, data[offset:])
        except httptools.HttpParserCallbackError as exc:
            if self.exchange is not None:
                if isinstance(exc.__context__, _HeadTooLarge):
                    self.exchange.upstream_failed("bad_upstream_response", "response too large")
                else:
                    log.error("gateway: relaying a response failed", exc_info=exc.__context__)
                    self.exchange.upstream_failed("upstream_broken", "the gateway failed")
        except httptools.HttpParserError as exc:
            if self.exchange is not None:
                self.exchange.upstream_failed("bad_upstream_response", f"invalid response ({exc})")
        if self._fresh_parser:
            self._fresh_parser = False
            self.parser = httptools.HttpResponseParser(self)
        exchange.client.flush()

    def eof_received(self) -> bool | None:
        if self.spliced is not None:
            self.eof = True
            self.spliced.write_eof()
            if self.spliced.eof:  # both directions ended
                self.spliced.close()
                self.close()
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.gateway.upstreams.discard(self)
        self.gateway.pool.discard(self)
        if self.spliced is not None:
            self.spliced.close()
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.upstream_lost(self)

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.spliced is not None:
            self.spliced.pause("peer_full")
        elif self.exchange is not None:
            self.exchange.client.pause("upstream_full")

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.spliced is not None:
            self.spliced.resume("peer_full")
        elif self.exchange is not None:
            self.exchange.client.resume("upstream_full")

    # -- parser callbacks --------------------------------------------------------------

    def on_headers_complete(self) -> None:
        received = self.head_bytes or b""
        end = received.find(b"\r\n\r\n")
        if self.exchange is None or end < 0:
            return
        status_end = received.find(b"\r\n")
        status_line = received[: status_end + 2]
        head = _Head.from_response_block(received[status_end + 2 : end + 2])
        status = self.parser.get_status_code()
        # An interim (1xx) response is followed by the real one, maybe in the same bytes.
        interim = 100 <= status < 200 and status != 101
        self.head_bytes = received[end + 4 :] if interim else None
        self.keep_alive = head.keep_alive("1.0" if status_line.startswith(b"HTTP/1.0") else "1.1")
        if self.exchange.response_head(status, status_line, head):
            # A response to HEAD announces a length but has no body; the parser cannot
            # know, so the next response gets a parser of its own.
            self._fresh_parser = True

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.response_body(body)

    def on_message_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.response_complete()

    # -- used by exchanges -------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def write_eof(self) -> None:
        if self.transport is not None and not self.closed and self.transport.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                self.transport.write_eof()

    def release(self, reusable: bool, now: float) -> None:
        """The exchange it carried is over: back to the pool, or closed."""
        self.exchange = None
        self.served += 1
        self.resume("client_full")
        if reusable and self.keep_alive and not self.closed:
            self.gateway.pool.put(self, now)
        else:
            self.close()

    def close(self) -> None:
        self.exchange = None
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()


class _Exchange:
    """One request and its response, from the request's head to the response's last byte.

    It is created when the client's request head is parsed and started when it is first in
    line: routed, then sent on a pooled connection at once, or in a task that connects (or
    wakes the service) first. Request bytes that arrive before an upstream carries it are
    held (the client is no longer read past BUFFER_HIGH_WATER). The client connection is
    told once (`finished`) when the answer is complete.
    """

    __slots__ = (
        "answered",
        "chunked_request",
        "client",
        "conn",
        "head",
        "head_bytes",
        "held",
        "held_size",
        "host",
        "interim",
        "keep_alive",
        "keep_client",
        "method",
        "request_done",
        "request_has_body",
        "response_kind",
        "response_started",
        "retried",
        "reused",
        "route",
        "started",
        "switching",
        "target",
        "task",
        "upgrade",
    )

    def __init__(
        self,
        client: _ClientConnection,
        *,
        method: bytes,
        target: bytes,
        head: _Head,
        keep_alive: bool,
        upgrade: bool,
    ) -> None:
        self.client = client
        self.method = method
        self.target = target
        self.head = head
        self.keep_alive = keep_alive and not upgrade
        self.upgrade = upgrade
        self.chunked_request = head.chunked
        self.host = head.host.decode("latin-1")
        self.route: Route | None = None
        self.conn: _UpstreamConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.head_bytes = b""
        self.held: list[bytes] = []
        self.held_size = 0
        self.request_done = False
        self.request_has_body = False
        self.reused = False
        self.retried = False
        self.response_started = False
        self.response_kind: BodyKind = "none"
        self.interim = False
        self.switching = False
        self.answered = False
        self.started = False
        self.keep_client = False

    # -- request side ------------------------------------------------------------------

    def start(self) -> None:
        """Route the request: forward it at once on a pooled connection, or connect (or
        wake the service) in a task."""
        self.started = True
        client = self.client
        gateway = client.gateway
        route = gateway.route_table.resolve(self.host, client.listen_port)
        if route is None:
            name = self.host.rsplit(":", 1)[0] if self.host else "(no Host header)"
            self.error(503, "no_route", f"no service at {name}", None)
            return
        self.route = route
        if gateway.on_request is not None:
            gateway.on_request(route.workload_id)
        self.head_bytes = self._upstream_head()
        order = gateway.next_upstreams(route) if route.upstreams else None
        if order:
            conn = gateway.pool.take(order[0])
            if conn is not None:
                self.attach(conn)
                return
        self.task = asyncio.ensure_future(self._connect(route, order))

    async def _connect(self, route: Route, order: tuple[Upstream, ...] | None = None) -> None:
        gateway = self.client.gateway
        try:
            if not route.upstreams and gateway.waker is not None:
                # Scaled to zero: hold the request while the service wakes (one wake shared
                # by every request that arrives meanwhile), then forward it.
                woken = await gateway.waker.wake(route.workload_id)
                if woken.route is None:
                    self.error(woken.status, woken.code, woken.message, route.workload_id)
                    return
                route = woken.route
                order = None
            if not route.upstreams:
                self.error(
                    503,
                    "no_running_task",
                    f"workload {route.workload_id} has no running task",
                    route.workload_id,
                )
                return
            conn = await gateway.connect(route, order)
            if conn is None and gateway.waker is not None:
                # Every replica refused: the table may still list tasks that just stopped.
                # Hold the request as for a sleeping service; the wake waits for a task.
                woken = await gateway.waker.wake(route.workload_id)
                if woken.route is not None:
                    conn = await gateway.connect(woken.route)
            if conn is None:
                self.error(
                    502,
                    "upstream_unreachable",
                    f"workload {route.workload_id}: no replica accepted the connection",
                    route.workload_id,
                )
            elif self.answered or self.client.closed:
                conn.release(True, self.client.gateway.now)
            else:
                self.attach(conn)
        except Exception:
            log.exception("gateway: forwarding a request failed")
            workload = route.workload_id
            self.error(502, "upstream_unreachable", f"workload {workload}: not reached", workload)
        finally:
            self.client.flush()

    def attach(self, conn: _UpstreamConnection) -> None:
        """Send the request on `conn`: the head, then whatever body arrived meanwhile."""
        self.conn = conn
        self.reused = conn.served > 0
        conn.exchange = self
        conn.head_bytes = b""
        # Backpressure carries over: a side that cannot take more stops the other's reads.
        if self.client.writing_paused:
            conn.pause("client_full")
        if conn.writing_paused:
            self.client.pause("upstream_full")
        self.touch()
        if self.held:
            conn.write(self.head_bytes + b"".join(self.held))
            self.held = []
            self.held_size = 0
            self.client.resume("held")
        else:
            conn.write(self.head_bytes)

    def request_body(self, body: bytes) -> None:
        self.request_has_body = True
        if self.answered:
            return  # Answered already: the rest of the body is read only to be dropped.
        data = _chunk(body) if self.chunked_request else body
        if self.conn is not None:
            self.touch()
            self.conn.write(data)
            return
        self.held.append(data)
        self.held_size += len(data)
        if self.held_size > BUFFER_HIGH_WATER:
            self.client.pause("held")

    def request_complete(self) -> None:
        self.request_done = True
        if self.chunked_request and not self.answered:
            if self.conn is not None:
                self.conn.write(b"0\r\n\r\n")
            else:
                self.held.append(b"0\r\n\r\n")

    def _upstream_head(self) -> bytes:
        head = self.head
        client_ip = self.client.client_ip
        xff = head.forwarded_for + b", " + client_ip if head.forwarded_for else client_ip
        parts = [self.method, b" ", self.target, b" HTTP/1.1\r\n", *head.lines]
        if self.upgrade:
            parts += [b"Connection: Upgrade\r\nUpgrade: ", head.upgrade, b"\r\n"]
        parts += [
            b"X-Forwarded-For: ",
            xff,
            b"\r\nX-Forwarded-Proto: ",
            self.client.gateway.scheme_bytes,
            b"\r\nX-Forwarded-Host: ",
            self.host.encode("latin-1"),
            b"\r\n\r\n",
        ]
        return b"".join(parts)

    # -- response side -----------------------------------------------------------------

    def touch(self) -> None:
        """Something moved: the upstream timeout starts again."""
        gateway = self.client.gateway
        self.client.deadline = gateway.deadline(gateway.timeouts.upstream)

    def response_head(self, status: int, status_line: bytes, head: _Head) -> bool:
        """Relay a response head; return True when a body the head announces will not come
        (a response to HEAD)."""
        out = self.client.out
        if 100 <= status < 200 and status != 101:
            self.interim = True
            out.append(_response_head(status_line, head, None))
            return False
        self.interim = False
        self.response_started = True
        if status == 101 and self.upgrade:
            self.switching = True
            connection = b"Connection: Upgrade\r\nUpgrade: " + head.upgrade
            out.append(_response_head(status_line, head, connection))
            return False
        if self.method == b"HEAD" or status in (204, 304):
            kind: BodyKind = "none"
        elif head.chunked:
            kind = "chunked"
        else:
            kind = "length" if head.has_length else "until_close"
        self.response_kind = kind
        # Answered before its request was read whole, the connection ends with the answer
        # (the rest of the request cannot be told from a next one): the head says so.
        keep = self.keep_alive and kind != "until_close" and self.request_done
        self.keep_client = keep
        out.append(_response_head(status_line, head, KEEP_ALIVE if keep else CLOSE))
        if self.method == b"HEAD":
            self.response_complete()
            return True
        return False

    def response_body(self, body: bytes) -> None:
        out = self.client.out
        out.append(_chunk(body) if self.response_kind == "chunked" else body)
        if len(out) >= 16:
            self.client.flush()

    def response_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.answered or self.switching:
            return  # a 101's end is the upgrade, handled by `upgraded`
        self.answered = True
        if self.response_kind == "chunked":
            self.client.out.append(b"0\r\n\r\n")
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.release(self.request_done, self.client.gateway.now)
        self.client.finished(self, self.keep_client)

    def upgraded(self, conn: _UpstreamConnection, rest: bytes) -> None:
        """The upstream switched protocols: splice the two connections from now on."""
        if not self.switching:
            # A 101 nobody asked for (the upgrade was not relayed): not spliced.
            self.upstream_failed("bad_upstream_response", "switched protocols unasked")
            return
        self.answered = True
        self.conn = None
        conn.exchange = None
        client = self.client
        if client.exchanges and client.exchanges[0] is self:
            client.exchanges.popleft()
        client.parsing = None
        conn.spliced = client
        if rest:
            client.out.append(rest)
        client.flush()
        client.splice(conn)

    def upstream_lost(self, conn: _UpstreamConnection) -> None:
        """The upstream connection closed before the exchange ended."""
        if self.conn is not conn or self.answered:
            return
        self.conn = None
        client = self.client
        if self.response_started:
            self.answered = True
            if self.response_kind == "until_close" and not self.switching:
                client.close()  # The end of the body is the end of the connection.
            else:
                client.abort()  # Cut mid-body: the client must see it.
            return
        if self.reused and not self.retried and not self.request_has_body and self.route:
            # A pooled connection the upstream had closed meanwhile: nothing was lost,
            # so the request is sent again, once, on another connection.
            self.retried = True
            self.client.deadline = None
            self.task = asyncio.ensure_future(self._connect(self.route))
            return
        workload = self.route.workload_id if self.route else None
        self.error(
            502,
            "upstream_broken",
            f"workload {workload}: the upstream closed the connection",
            workload,
        )
        client.flush()

    def upstream_failed(self, code: str, message: str) -> None:
        """The upstream sent something that is not HTTP."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        if self.response_started:
            self.answered = True
            self.client.abort()
            return
        workload = self.route.workload_id if self.route else None
        self.error(502, code, f"workload {workload}: {message}", workload)

    def timed_out(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        if self.response_started or self.answered:
            self.answered = True
            self.client.abort()
            return
        workload = self.route.workload_id if self.route else None
        timeout = self.client.gateway.timeouts.upstream
        message = f"workload {workload}: no response within {timeout:g}s"
        self.error(504, "upstream_timeout", message, workload)

    def client_gone(self) -> None:
        self.answered = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def error(self, status: int, code: str, message: str, workload: str | None) -> None:
        """Answer with a gateway error. The connection is kept only when the request was
        read whole (nothing of it is left to drain)."""
        if self.answered:
            return
        self.answered = True
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        keep = self.keep_alive and self.request_done
        self.client.raw_pending = None
        self.client.out.append(_error_bytes(status, code, message, workload, keep))
        self.client.finished(self, keep)


def _response_head(status_line: bytes, head: _Head, connection: bytes | None) -> bytes:
    """A response head for the client: the upstream's status line (as HTTP/1.1) and
    end-to-end headers, then the `connection` line(s) the gateway decides on, if any."""
    if not status_line.startswith(b"HTTP/1.1 ") or status_line[12:13] != b" ":
        # Another version, or no space before the (optional) reason: rewritten whole.
        code, _, reason = status_line.split(b" ", 1)[-1].rstrip(b"\r\n").partition(b" ")
        status_line = b"HTTP/1.1 " + code + b" " + reason + b"\r\n"
    if connection is None:
        return b"".join((status_line, *head.lines, b"\r\n"))
    return b"".join((status_line, *head.lines, connection, b"\r\n\r\n"))
