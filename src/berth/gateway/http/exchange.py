"""One request and its response through the HTTP gateway.

An `Exchange` is created when the client's request head is parsed and started when it is
first in line: routed, then sent on a pooled connection at once, or in a task that connects
(or wakes the service) first. Bodies stream in both directions as the parsers yield them: a
chunked body is re-framed chunk by chunk (trailers are dropped), a `Content-Length` body
keeps its length, a response framed by the upstream closing is relayed until it closes.
The response is read while the request body is still being sent, so an upstream that
answers early (or echoes) never deadlocks. After a `101` to a WebSocket upgrade, the two
connections are spliced.

The exchange changes the connections only through their methods: what goes to the client
is queued on it (`ClientConnection.queue`), and the client is told once (`finished`, or
`answer` for an answer of the gateway's own) when the exchange is over.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Literal

from berth.gateway.http.error_answers import error_bytes
from berth.gateway.http.heads import CLOSE, KEEP_ALIVE, Head, chunk, response_head

if TYPE_CHECKING:
    from berth.gateway.http.client_connection import ClientConnection
    from berth.gateway.http.route_table import Route, Upstream
    from berth.gateway.http.upstream_connection import UpstreamConnection

log = logging.getLogger(__name__)

BUFFER_HIGH_WATER = 256 * 1024
"""Request bytes held for an upstream connection still being opened before the client is
no longer read."""

BodyKind = Literal["none", "length", "chunked", "until_close"]


class Exchange:
    """One request and its response, from the request's head to the response's last byte.

    Request bytes that arrive before an upstream carries it are held (the client is no
    longer read past BUFFER_HIGH_WATER).
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
        client: ClientConnection,
        *,
        method: bytes,
        target: bytes,
        head: Head,
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
        self.conn: UpstreamConnection | None = None
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
        wake the service) in a task. A Host naming a workload the table does not know is
        looked up first (in a task), and answered `no_route` only if that finds nothing."""
        self.started = True
        client = self.client
        gateway = client.gateway
        route = gateway.route_table.resolve(self.host, client.listen_port)
        if route is not None:
            self._forward(route)
            return
        workload_id = gateway.route_table.workload_of(self.host)
        if workload_id is not None and gateway.route_finder is not None:
            self.task = asyncio.ensure_future(self._find(workload_id))
            return
        self._no_route()

    def _no_route(self) -> None:
        name = self.host.rsplit(":", 1)[0] if self.host else "(no Host header)"
        self.error(503, "no_route", f"no service at {name}", None)

    async def _find(self, workload_id: str) -> None:
        """Route a request for a workload the table does not know, once it is looked up."""
        client = self.client
        finder = client.gateway.route_finder
        assert finder is not None
        try:
            route = await finder.find(workload_id, client.listen_port)
            if self.answered or client.closed:
                return
            if route is None:
                self._no_route()
            else:
                self._forward(route)
        except Exception:
            log.exception("gateway: looking up a route failed")
            self._no_route()
        finally:
            client.flush()

    def _forward(self, route: Route) -> None:
        """Forward the request along `route`: at once on a pooled connection, else in a
        task that connects (or wakes the service) first."""
        gateway = self.client.gateway
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
                woken = await gateway.waker.wake(route.workload_id, self.client.listen_port)
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
                woken = await gateway.waker.wake(route.workload_id, self.client.listen_port)
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

    def attach(self, conn: UpstreamConnection) -> None:
        """Send the request on `conn`: the head, then whatever body arrived meanwhile."""
        self.conn = conn
        self.reused = conn.served > 0
        conn.carry(self)
        # Backpressure carries over: a side that cannot take more stops the other's reads.
        if self.client.writing_paused:
            conn.pause("client_full")
        if conn.writing_paused:
            self.client.pause("upstream_full")
        self.client.restart_upstream_timeout()
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
        data = chunk(body) if self.chunked_request else body
        if self.conn is not None:
            self.client.restart_upstream_timeout()
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

    def response_head(self, status: int, status_line: bytes, head: Head) -> bool:
        """Relay a response head; return True when a body the head announces will not come
        (a response to HEAD)."""
        client = self.client
        if 100 <= status < 200 and status != 101:
            self.interim = True
            client.queue(response_head(status_line, head, None))
            return False
        self.interim = False
        self.response_started = True
        if status == 101 and self.upgrade:
            self.switching = True
            connection = b"Connection: Upgrade\r\nUpgrade: " + head.upgrade
            client.queue(response_head(status_line, head, connection))
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
        client.queue(response_head(status_line, head, KEEP_ALIVE if keep else CLOSE))
        if self.method == b"HEAD":
            self.response_complete()
            return True
        return False

    def response_body(self, body: bytes) -> None:
        self.client.queue(chunk(body) if self.response_kind == "chunked" else body)

    def response_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.answered or self.switching:
            return  # a 101's end is the upgrade, handled by `upgraded`
        self.answered = True
        if self.response_kind == "chunked":
            self.client.queue(b"0\r\n\r\n")
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.release(self.request_done, self.client.gateway.now)
        self.client.finished(self, self.keep_client)

    def upgraded(self, conn: UpstreamConnection, rest: bytes) -> None:
        """The upstream switched protocols: splice the two connections from now on."""
        if not self.switching:
            # A 101 nobody asked for (the upgrade was not relayed): not spliced.
            self.upstream_failed("bad_upstream_response", "switched protocols unasked")
            return
        self.answered = True
        self.conn = None
        conn.splice(self.client)
        self.client.splice(self, conn, rest)

    def upstream_lost(self, conn: UpstreamConnection) -> None:
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
            client.suspend_timeout()
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
        self.client.answer(self, error_bytes(status, code, message, workload, keep), keep)
