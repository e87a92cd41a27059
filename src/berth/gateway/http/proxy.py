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

The parts, one module each: `heads` (reading and re-framing heads, hop-by-hop rules),
`client_connection` and `upstream_connection` (the two protocols), `exchange` (one request
and its response: routing, relaying, backpressure, WebSocket splice), `upstream_pool`,
`error_answers` (the gateway's own answers); this module is the listener and what the
connections share (routes, pool, deadlines).

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
import logging
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from berth.gateway.http.client_connection import ClientConnection
from berth.gateway.http.route_table import LoopbackAddress, Route, RouteTable, Upstream
from berth.gateway.http.upstream_connection import UpstreamConnection
from berth.gateway.http.upstream_pool import UpstreamPool
from berth.runtime.base import Runtime, RuntimeDriverError
from berth.token_buckets import TokenBuckets

log = logging.getLogger(__name__)


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
    async def wake(self, workload_id: str, listen_port: int) -> WakeOutcome:
        """Start the workload if it sleeps (or resume it if it is paused); return once it
        accepts connections, with its route on the gateway port `listen_port`."""


class RouteFinder(Protocol):
    async def find(self, workload_id: str, listen_port: int) -> Route | None:
        """The route for a workload the table does not know (yet), or None."""


class HttpGateway:
    """The HTTP reverse proxy on `host`:`port` (and each of `extra_ports`).

    `start` binds every port (raising `OSError` if one is taken) and returns; `stop` closes
    the listeners, cuts open client connections and empties the upstream pool. `scheme` is
    what `X-Forwarded-Proto` says (a TLS front end passes "https"). `runtime` is needed
    only for `TaskPort` upstreams. `route_finder`, when given, is asked about a Host that
    names a workload the table does not know before the request is answered `no_route`
    (a workload created a moment ago). Port 0 binds a free port; `ports` lists those bound.
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
        route_finder: RouteFinder | None = None,
        on_request: Callable[[str], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connection_limit: TokenBuckets | None = None,
    ) -> None:
        self.host = host
        self.connection_limit = connection_limit
        self._ssl = ssl_context
        self._runtime = runtime
        self.waker = waker
        self.route_finder = route_finder
        self.on_request = on_request
        self.route_table = route_table
        self.timeouts = timeouts or GatewayTimeouts()
        self.scheme_bytes = scheme.encode()
        self._wanted_ports = [port, *extra_ports]
        self.pool = UpstreamPool(max_idle_per_upstream)
        self._servers: list[asyncio.Server] = []
        self._extra: dict[int, asyncio.Server] = {}
        self.clients: set[ClientConnection] = set()
        self.upstreams: set[UpstreamConnection] = set()
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
            lambda: ClientConnection(self),
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

    def client_opened(self, client: ClientConnection) -> None:
        self.clients.add(client)

    def client_closed(self, client: ClientConnection) -> None:
        self.clients.discard(client)

    def upstream_opened(self, conn: UpstreamConnection) -> None:
        self.upstreams.add(conn)

    def upstream_closed(self, conn: UpstreamConnection) -> None:
        self.upstreams.discard(conn)
        self.pool.discard(conn)

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
    ) -> UpstreamConnection | None:
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

    async def _open(self, upstream: Upstream) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeouts.connect):
            if isinstance(upstream, LoopbackAddress):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(self, upstream), upstream.host, upstream.port
                )
                return conn
            if self._runtime is None:
                raise OSError("no runtime to reach tasks")
            sock = await self._runtime.open_port(upstream.task_id, upstream.port)
            try:
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(self, upstream), sock=sock
                )
            except BaseException:
                sock.close()
                raise
            return conn
