"""The upstream side of the HTTP gateway: one protocol per connection to an upstream.

A connection carries one exchange at a time, idles in the pool between them, and is
spliced to a client after a `101 Switching Protocols`. A response head is collected whole
from the bytes received (one pass over its lines, see `Head.from_response_block`) rather
than header by header; the body is relayed piece by piece as the parser yields it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, cast

import httptools

from berth.gateway.http.backpressure import Pausable
from berth.gateway.http.heads import MAX_HEAD_BYTES, Head, HeadTooLarge

if TYPE_CHECKING:
    from berth.gateway.http.client_connection import ClientConnection
    from berth.gateway.http.exchange import Exchange
    from berth.gateway.http.proxy import HttpGateway
    from berth.gateway.http.route_table import Upstream

log = logging.getLogger(__name__)


class UpstreamConnection(asyncio.Protocol, Pausable):
    """One connection to an upstream: carries one exchange at a time, idles in the pool
    between them, and is spliced to a client after a `101 Switching Protocols`."""

    def __init__(self, gateway: HttpGateway, upstream: Upstream) -> None:
        Pausable.__init__(self)
        self.gateway = gateway
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.spliced: ClientConnection | None = None
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
        self.gateway.upstream_opened(self)

    def data_received(self, data: bytes) -> None:
        if self.spliced is not None:
            self.spliced.send(data)
            return
        exchange = self.exchange
        if exchange is None:
            self.close()  # Nothing was asked: an idle connection must stay silent.
            return
        exchange.client.restart_upstream_timeout()  # something moved
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
                if isinstance(exc.__context__, HeadTooLarge):
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
        self.gateway.upstream_closed(self)
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
        head = Head.from_response_block(received[status_end + 2 : end + 2])
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

    def carry(self, exchange: Exchange) -> None:
        """Carry `exchange` from now on: its response is the next to arrive."""
        self.exchange = exchange
        self.head_bytes = b""

    def splice(self, client: ClientConnection) -> None:
        """The exchange switched protocols: from now on, bytes go straight to `client`."""
        self.exchange = None
        self.spliced = client

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
            self.idle_since = now
            self.gateway.pool.put(self)
        else:
            self.close()

    def close(self) -> None:
        self.exchange = None
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()
