"""A cap on the size of a request's head (request line and headers) for the API server.

uvicorn's httptools protocol, the one berth serves with, has no limit on a head: it buffers a
header for as long as the client keeps sending it (20 MB were accepted in one header). Rather
than subclass uvicorn's protocol and override its private methods, berth puts a small
protocol of its own in front of it: every read goes through a second httptools parser that
only tracks where heads begin and end, and is then handed on unchanged. Past the limit the
front answers `431` with a JSON error and closes the connection, so a connection holds at
most the limit plus one network read of head. Everything else (bodies, pipelining, upgrades,
flow control) is uvicorn's, through the public `asyncio.Protocol` interface alone.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TOO_LARGE_CODE = "request_head_too_large"


class HeadTooLarge(Exception):
    """Raised from a meter callback; httptools reports it as the context of its own error."""


class _HeadMeter:
    """httptools callbacks that count the current head's bytes; raises past the limit."""

    def __init__(self, max_head_bytes: int) -> None:
        self.max_head_bytes = max_head_bytes
        self.reading_head = True
        self.fed_bytes = 0
        """Bytes fed since the current head began (counted per read, so one huge header
        that the parser buffers before any callback sees it is caught too)."""
        self.parsed_bytes = 0
        """The current head's URL and headers as parsed so far."""

    def on_message_begin(self) -> None:
        self.reading_head = True
        self.parsed_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self.fed_bytes = 0

    def _count(self, size: int) -> None:
        self.parsed_bytes += size
        if self.parsed_bytes > self.max_head_bytes:
            raise HeadTooLarge


class HeadLimitedProtocol(asyncio.Protocol):
    """uvicorn's httptools protocol behind a head-size check (see the module docstring).

    Built by uvicorn with the keyword arguments it gives any HTTP protocol class; the limit is
    bound by `head_limited_protocol`.
    """

    max_head_bytes = 64 * 1024

    def __init__(self, **uvicorn_arguments: Any) -> None:
        self._inner = HttpToolsProtocol(**uvicorn_arguments)
        self._meter = _HeadMeter(self.max_head_bytes)
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self._meter)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass `asyncio.Transport`, hence the cast).
        self._transport = cast(asyncio.Transport, transport)
        self._inner.connection_made(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def eof_received(self) -> None:
        self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self._parser is not None and not self._within_limit(data):
            self._refuse_head()
            return
        self._inner.data_received(data)

    def _within_limit(self, data: bytes) -> bool:
        """Feed `data` to the meter; False once the current head is over the limit."""
        assert self._parser is not None
        meter = self._meter
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, HeadTooLarge):
                return False
            raise
        except httptools.HttpParserUpgrade:
            self._parser = None  # the rest of the stream is not HTTP (a WebSocket)
            return True
        except httptools.HttpParserError:
            self._parser = None  # malformed: uvicorn's own parser answers it
            return True
        if meter.reading_head:
            # The parser consumed all of `data` without completing a head: it was all head
            # (at most the tail of a previous pipelined request is counted with it).
            meter.fed_bytes += len(data)
            return meter.fed_bytes <= meter.max_head_bytes
        return True

    def _refuse_head(self) -> None:
        limit = self._meter.max_head_bytes
        body = json.dumps(
            {
                "error": f"request line and headers too large: at most {limit} "
                "bytes (BERTH_MAX_REQUEST_HEAD_BYTES)",
                "code": HEAD_TOO_LARGE_CODE,
                "field": None,
                "limit_bytes": limit,
            }
        ).encode()
        self._parser = None
        assert self._transport is not None
        self._transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self._transport.close()


def head_limited_protocol(max_head_bytes: int) -> type[HeadLimitedProtocol]:
    """The protocol class to give uvicorn (`http=`), refusing heads over `max_head_bytes`."""
    return type("HeadLimitedProtocol", (HeadLimitedProtocol,), {"max_head_bytes": max_head_bytes})
