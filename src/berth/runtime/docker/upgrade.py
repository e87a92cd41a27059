"""A hand-written HTTP/1.1 upgrade request on the engine's unix socket, for execs.

`POST /exec/{id}/start` *hijacks* the HTTP connection: the engine answers `101 UPGRADED` and
from then on the socket carries the command's streams, both ways. httpx cannot hand over a
hijacked connection, so this request is written by hand on a connection of our own and the
connection is returned once upgraded. Engines that answer `200 OK` instead (older Docker,
Podman) hijack the connection just the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import Any

READ_SIZE = 64 * 1024
"""Largest chunk read from a hijacked connection at once (also its reader's buffer limit)."""

UPGRADE_FAILURES = (
    OSError,
    ValueError,
    TimeoutError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
)
"""What `open_upgraded` raises when the engine cannot be reached or its answer is not HTTP."""


class UpgradeRefused(Exception):
    """The engine answered with an error status instead of upgrading the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"engine answered {status}: {message}")
        self.status = status
        self.message = message


class Connection:
    """A hijacked connection to the engine: the command's streams, both ways."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def open_upgraded(
    socket_path: str,
    target: str,
    body: bytes,
    *,
    connect_timeout: float,
    answer_timeout: float,
) -> Connection:
    """POST the JSON `body` to `target` (a path with the API version) asking for an upgrade;
    the connection once the engine upgraded it.

    Raises `UpgradeRefused` (with the engine's message) for an error answer, and one of
    `UPGRADE_FAILURES` when the engine cannot be reached or answers with something else.
    """
    head = (
        f"POST {target} HTTP/1.1\r\n"
        "Host: docker\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: Upgrade\r\n"
        "Upgrade: tcp\r\n"
        "\r\n"
    ).encode()
    reader, writer = await asyncio.wait_for(
        asyncio.open_unix_connection(socket_path, limit=READ_SIZE), connect_timeout
    )
    connection = Connection(reader, writer)
    try:
        writer.write(head + body)
        await writer.drain()
        status, headers = await asyncio.wait_for(read_head(reader), answer_timeout)
        if status in (101, 200):
            return connection
        message = await _read_error(reader, headers)
    except BaseException:
        await connection.close()
        raise
    await connection.close()
    raise UpgradeRefused(status, message)


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status code and headers (lower-cased names) of an HTTP/1.1 response."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_error(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> str:
    """The engine's message from an error response that follows a refused start."""
    try:
        length = headers.get("content-length")
        if length is not None:
            raw = await asyncio.wait_for(reader.readexactly(min(int(length), READ_SIZE)), 5)
        else:
            raw = await asyncio.wait_for(reader.read(READ_SIZE), 5)
    except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError):
        return "no detail"
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return raw[:500].decode("utf-8", "replace").strip() or "no detail"
