"""A cap on the size of a request's head (request line and headers) for the API server.

uvicorn's httptools protocol, the one it picks when httptools is installed, has no limit on
a head: it buffers a header for as long as the client keeps sending it (20 MB were accepted
in one header). This subclass counts the URL and headers as they are parsed, and the bytes
fed to the parser while a head is still incomplete (one huge header is buffered by the parser
before any callback sees it); past the limit it answers `431` with a JSON error and closes
the connection, so a connection holds at most the limit plus one network read of head.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TOO_LARGE_CODE = "request_head_too_large"


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the limit."""


def head_limited_protocol(max_head_bytes: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, refusing heads larger than `max_head_bytes`."""

    class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._reading_head = True
            self._head_bytes = 0
            """Bytes fed to the parser since the current head began (counted per read)."""
            self._parsed_head_bytes = 0
            """The current head's URL and headers as parsed so far."""
            super().connection_made(transport)

        def on_message_begin(self) -> None:
            self._reading_head = True
            self._parsed_head_bytes = 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._count_parsed(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_parsed(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._reading_head = False
            self._head_bytes = 0
            super().on_headers_complete()

        def _count_parsed(self, size: int) -> None:
            self._parsed_head_bytes += size
            if self._parsed_head_bytes > max_head_bytes:
                # Raising in a parser callback makes uvicorn answer through
                # `send_400_response`, overridden below to answer 431 instead.
                raise HeadTooLarge

        def send_400_response(self, msg: str) -> None:
            if self._parsed_head_bytes > max_head_bytes:
                self._refuse_head()
            else:
                super().send_400_response(msg)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self._reading_head or self.transport.is_closing():
                return
            # The parser consumed all of `data` without completing a head: it was all head
            # (at most the tail of a previous pipelined request is counted with it). This
            # catches one huge header, which the parser buffers before any callback sees it.
            self._head_bytes += len(data)
            if self._head_bytes > max_head_bytes:
                self._refuse_head()

        def _refuse_head(self) -> None:
            body = json.dumps(
                {
                    "error": f"request line and headers too large: at most {max_head_bytes} "
                    "bytes (BERTH_MAX_REQUEST_HEAD_BYTES)",
                    "code": HEAD_TOO_LARGE_CODE,
                    "field": None,
                    "limit_bytes": max_head_bytes,
                }
            ).encode()
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + body
            )
            self.transport.close()

    return HeadLimitedHttpToolsProtocol
