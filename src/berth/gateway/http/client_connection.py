"""The client side of the HTTP gateway: one protocol per accepted connection.

It parses requests (httptools) and hands each to an `Exchange`, serving them in arrival
order (pipelined ones wait, unread past their head, until those before are answered). What
goes back to the client is queued on the connection (`queue`) and written in one piece at
the end of the callback that produced it (`flush`). After a WebSocket upgrade the
connection is spliced to its upstream connection: bytes are copied both ways as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from berth.gateway.http.backpressure import Pausable
from berth.gateway.http.error_answers import error_bytes
from berth.gateway.http.exchange import Exchange
from berth.gateway.http.heads import DROPPED_FROM_REQUESTS, Head, HeadTooLarge, is_websocket
from berth.token_buckets import TokenBuckets

if TYPE_CHECKING:
    from berth.gateway.http.proxy import HttpGateway
    from berth.gateway.http.upstream_connection import UpstreamConnection

log = logging.getLogger(__name__)

RATE_LIMITED_HEAD_SECONDS = 5.0
"""How long a connection over its client's limit may take to send the request head that is
answered 429 before it is closed unanswered."""


class ClientConnection(asyncio.Protocol, Pausable):
    """One client connection: parses requests and hands each to an `Exchange`, in order.

    `deadline` (loop time) is when the sweep acts: an idle connection is closed, an
    exchange waiting on its upstream times out. None while nothing may time out (a request
    still connecting or waking its service: those have their own limits; a spliced pair).
    """

    def __init__(self, gateway: HttpGateway) -> None:
        Pausable.__init__(self)
        self.gateway = gateway
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.listen_port = 0
        self.client_ip = b""
        self.tls = False
        self.deadline: float | None = None
        self.exchanges: deque[Exchange] = deque()
        """Requests in arrival order; the first is the one being served."""
        self.parsing: Exchange | None = None
        """The request whose head or body is being read."""
        self.spliced: UpstreamConnection | None = None
        self.raw_pending: list[bytes] | None = None
        """After an upgrade request, bytes the client sent before the upstream's 101."""
        self.out: list[bytes] = []
        self.eof = False
        self.closed = False
        self.writing_paused = False
        self._starting = False
        self._url = b""
        self._head = Head(DROPPED_FROM_REQUESTS)

    # -- transport events --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = self.transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        self.client_ip = address.encode()
        self.listen_port = int(self.transport.get_extra_info("sockname")[1])
        self.tls = self.transport.get_extra_info("sslcontext") is not None
        self.deadline = self.gateway.deadline(self.gateway.timeouts.client_idle)
        self.gateway.client_opened(self)
        limit = self.gateway.connection_limit
        if limit is not None:
            decision = limit.take(address)
            if not decision.allowed:
                # The parser now answers the first request 429 and nothing is forwarded.
                self.parser = httptools.HttpRequestParser(
                    RateLimited(self, limit, decision.retry_after)
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
            if isinstance(exc.__context__, HeadTooLarge):
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
        self.gateway.client_closed(self)
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
        self._head = Head(DROPPED_FROM_REQUESTS)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head.count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head.add(name, value)

    def on_headers_complete(self) -> None:
        parser = self.parser
        head = self._head
        head.drop_nominated()
        upgrade = parser.should_upgrade()
        websocket = upgrade and is_websocket(head.upgrade)
        exchange = Exchange(
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

    # -- used by exchanges and the upstream connection ---------------------------------

    def queue(self, data: bytes) -> None:
        """Queue `data` for the client; written by the next `flush` (at once when many
        pieces are queued)."""
        out = self.out
        out.append(data)
        if len(out) >= 16:
            self.flush()

    def send(self, data: bytes) -> None:
        """Write `data` to the client now (after whatever was queued)."""
        self.out.append(data)
        self.flush()

    def flush(self) -> None:
        if self.out and not self.closed and self.transport is not None:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            self.out.clear()
            self.transport.write(data)

    def restart_upstream_timeout(self) -> None:
        """Something moved in the exchange being served: its upstream timeout starts again."""
        gateway = self.gateway
        self.deadline = gateway.deadline(gateway.timeouts.upstream)

    def suspend_timeout(self) -> None:
        """Nothing times out until the next `restart_upstream_timeout` (the exchange runs a
        task with limits of its own)."""
        self.deadline = None

    def finished(self, exchange: Exchange, keep: bool) -> None:
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

    def answer(self, exchange: Exchange, response: bytes, keep: bool) -> None:
        """The gateway answers `exchange` itself with `response` (whole); bytes held
        after an upgrade request are dropped."""
        self.raw_pending = None
        self.queue(response)
        self.finished(exchange, keep)

    def refuse(self, status: int, code: str, message: str) -> None:
        """Answer a request that cannot be parsed (unless one is in progress) and close."""
        if not self.exchanges:
            self.out.append(error_bytes(status, code, message, None, False))
        self.close()

    def splice(self, exchange: Exchange, upstream: UpstreamConnection, rest: bytes) -> None:
        """`exchange` switched protocols: from now on, bytes are copied both ways between
        this client and `upstream`, starting with `rest` (what followed the upstream's 101)
        and what the client sent meanwhile."""
        if self.exchanges and self.exchanges[0] is exchange:
            self.exchanges.popleft()
        self.parsing = None
        if rest:
            self.out.append(rest)
        self.flush()
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


class RateLimited:
    """Parser callbacks of a connection its client opened past its connection limit: the
    first request is answered 429 as soon as its head is read, and the connection closed."""

    def __init__(self, client: ClientConnection, limit: TokenBuckets, retry_after: int) -> None:
        self.client = client
        self.limit = limit
        self.retry_after = retry_after

    def on_headers_complete(self) -> None:
        message = (
            f"too many new connections from {self.client.client_ip.decode()}: "
            f"{self.limit.rate:g} per second, bursts of {self.limit.burst}; retry after "
            f"{self.retry_after} s"
        )
        self.client.queue(
            error_bytes(429, "rate_limited", message, None, False, retry_after=self.retry_after)
        )
        self.client.close()
