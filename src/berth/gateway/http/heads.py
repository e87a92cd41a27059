"""Message heads: what the HTTP gateway reads of a request or response head, and what it
writes on.

Hop-by-hop headers are dropped in both directions (RFC 9110 section 7.6.1): the standard
ones (`HOP_BY_HOP`, which includes `Proxy-Authorization`: credentials meant for a proxy never
reach a service) and every header a message's `Connection` header names, except those
routing and framing need (`NEVER_NOMINATED`). A request's `Proxy` header is dropped too (CGI
programs would take it for `HTTP_PROXY`), and so are the `X-Forwarded-*` headers the gateway
sets itself (an `X-Forwarded-For` it receives is kept aside and extended).
"""

from __future__ import annotations

MAX_HEAD_BYTES = 64 * 1024
"""Longest request head accepted (431 beyond) and response head accepted (502 beyond)."""

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


class HeadTooLarge(Exception):
    """Raised from a parser callback when a head passes `MAX_HEAD_BYTES`."""


class Head:
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

    def count(self, size: int) -> None:
        """Count `size` more bytes of the head (the request target's, say) against
        `MAX_HEAD_BYTES`."""
        self.size += size
        if self.size > MAX_HEAD_BYTES:
            raise HeadTooLarge

    def add(self, name: bytes, value: bytes) -> None:
        self.size += len(name) + len(value) + 4
        if self.size > MAX_HEAD_BYTES:
            raise HeadTooLarge
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
    def from_response_block(cls, block: bytes) -> Head:
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


def is_websocket(upgrade: bytes) -> bool:
    """Whether an `Upgrade` value asks for WebSocket (the one upgrade the gateway relays)."""
    return any(token.strip().lower() == b"websocket" for token in upgrade.split(b","))


def chunk(data: bytes) -> bytes:
    """`data` framed as one chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def response_head(status_line: bytes, head: Head, connection: bytes | None) -> bytes:
    """A response head for the client: the upstream's status line (as HTTP/1.1) and
    end-to-end headers, then the `connection` line(s) the gateway decides on, if any."""
    if not status_line.startswith(b"HTTP/1.1 ") or status_line[12:13] != b" ":
        # Another version, or no space before the (optional) reason: rewritten whole.
        code, _, reason = status_line.split(b" ", 1)[-1].rstrip(b"\r\n").partition(b" ")
        status_line = b"HTTP/1.1 " + code + b" " + reason + b"\r\n"
    if connection is None:
        return b"".join((status_line, *head.lines, b"\r\n"))
    return b"".join((status_line, *head.lines, connection, b"\r\n\r\n"))
