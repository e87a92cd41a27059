"""Ports of the in-memory runtime's tasks: servers inside tasks, and their published ports.

A task "listens" on a port when a handler is registered for it: the toy `httpd` registers
`http_responder`, a test registers its own with `MemoryRuntime.serve`. A handler gets the two
ends of a stream as `asyncio.start_server` gives them. `open_port` connects to it over a
socket pair (no network at all). A published port (`TaskSpec.ports`) is a real listener on
127.0.0.1 at a port the system picks, which hands each connection to the task's handler or,
like a real engine's port publisher when nothing listens inside, closes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

PortHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
"""Serves one connection to a port inside a task."""

_MAX_HEAD = 64 * 1024


def http_responder(lookup: Callable[[str], bytes | None]) -> PortHandler:
    """A tiny HTTP server: GET or HEAD of a path `lookup` finds is answered 200 with it, any
    other 404. HTTP/1.1 connections are kept alive; HTTP/1.0 ones closed after the answer."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > _MAX_HEAD:
                    break
                request, *fields = head.decode("latin-1").split("\r\n")
                method, path, version = [*request.split(" "), "", "", ""][:3]
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in fields if line)
                }
                length = int(headers.get("content-length") or 0)
                if length:
                    await reader.readexactly(length)
                body = lookup(path.split("?", 1)[0]) if method in ("GET", "HEAD") else None
                status = b"200 OK" if body is not None else b"404 Not Found"
                content = body if body is not None else b"404 Not Found\n"
                keep = version == "HTTP/1.1" and headers.get("connection") != "close"
                writer.write(
                    b"HTTP/1.1 "
                    + status
                    + b"\r\nContent-Type: text/html\r\n"
                    + b"Content-Length: %d\r\n" % len(content)
                    + (b"" if keep else b"Connection: close\r\n")
                    + b"\r\n"
                    + (content if method != "HEAD" else b"")
                )
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except ValueError:
            pass  # a malformed Content-Length: the connection is dropped
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return serve


class Connections:
    """The connections served inside one task, cancelled when the task ends."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def serve(
        self, handler: PortHandler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(handler, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(
        handler: PortHandler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
