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


def http_responder(body: bytes) -> PortHandler:
    """A tiny HTTP/1.1 server: every request is answered 200 with `body` (keep-alive)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > _MAX_HEAD:
                    break
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip() or 0)
                if length:
                    await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    + b"Content-Length: %d\r\n\r\n" % len(body)
                    + body
                )
                await writer.drain()
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
