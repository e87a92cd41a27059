"""Commands attached to the Docker driver's tasks: terminals and processes with streamed stdin.

Each is an exec whose start hijacked a connection of its own (`upgrade`); reading and writing
go over that connection, while its exit code, a resize and the kill on close are engine
calls made through `ExecControl` (the driver's `DockerExec`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Protocol

from berth.runtime.base import RuntimeDriverError
from berth.runtime.docker.logs import FrameDemuxer, Stream
from berth.runtime.docker.upgrade import READ_SIZE, Connection


class ExecControl(Protocol):
    """The engine calls a session makes about its exec."""

    async def exit_code(self, exec_id: str) -> int | None: ...

    async def kill(self, exec_id: str) -> bool: ...

    async def resize(self, exec_id: str, *, cols: int, rows: int) -> None: ...


async def read_result(task: asyncio.Task[bytes]) -> bytes:
    """The result of a pending read; b"" if it failed or was cancelled (session closed)."""
    await asyncio.wait({task})
    if task.cancelled() or task.exception() is not None:
        return b""
    return task.result()


class _AttachedExec:
    """What a terminal and a process share: an exec attached over a hijacked connection,
    its exit code, and closing it (which kills the command if it still runs)."""

    def __init__(
        self,
        engine: ExecControl,
        exec_id: str,
        connection: Connection,
        first: asyncio.Task[bytes] | None,
    ) -> None:
        self._engine = engine
        self.exec_id = exec_id
        self._connection = connection
        self._first = first
        self._closed = False

    async def wait(self) -> int | None:
        return await self._engine.exit_code(self.exec_id)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._first is not None:
            self._first.cancel()
        try:
            await self._engine.kill(self.exec_id)
        except RuntimeDriverError:
            pass  # Engine gone: closing the connection is all that is left to do.
        finally:
            await self._connection.close()


class DockerTerminal(_AttachedExec):
    """An `InteractiveSession`: a command on a pseudo-terminal in a task.

    One reader at a time: `read` must not be called again before the previous call returned.
    """

    def __init__(
        self,
        engine: ExecControl,
        exec_id: str,
        connection: Connection,
        *,
        first: asyncio.Task[bytes] | None = None,
        pending: bytes = b"",
    ) -> None:
        super().__init__(engine, exec_id, connection, first)
        self._pending = pending

    async def read(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self._first is not None:
            first, self._first = self._first, None
            data = await read_result(first)
            if data or self._closed:
                return data
        if self._closed:
            return b""
        try:
            return await self._connection.reader.read(READ_SIZE)
        except OSError:
            return b""

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise RuntimeDriverError("the terminal session is closed")
        writer = self._connection.writer
        if writer.is_closing():
            return
        try:
            writer.write(data)
            await writer.drain()
        except OSError:
            pass  # The command ended: `read` returns what is left, then b"".

    async def resize(self, *, cols: int, rows: int) -> None:
        if self._closed:
            raise RuntimeDriverError("the terminal session is closed")
        await self._engine.resize(self.exec_id, cols=cols, rows=rows)


class DockerProcess(_AttachedExec):
    """A `ProcessSession`: a command in a task with its standard streams, no terminal.

    The engine multiplexes stdout and stderr into frames on the hijacked connection; they
    are demultiplexed here as they arrive. Ending stdin half-closes our side of the
    connection, which is how the engine learns to close the command's stdin.
    One reader at a time: `read` must not be called again before the previous call returned.
    """

    def __init__(
        self,
        engine: ExecControl,
        exec_id: str,
        connection: Connection,
        *,
        first: asyncio.Task[bytes] | None = None,
        pending: list[tuple[Stream, bytes]] | None = None,
    ) -> None:
        super().__init__(engine, exec_id, connection, first)
        self._demuxer = FrameDemuxer()
        # Empty frames are dropped: an empty chunk is what `read` returns at the end.
        self._frames: collections.deque[tuple[Stream, bytes]] = collections.deque(
            frame for frame in pending or () if frame[1]
        )
        self._ended = False
        self._stdin_closed = False

    async def read(self) -> tuple[Stream, bytes]:
        while not self._frames:
            if self._ended or self._closed:
                return "stdout", b""
            chunk = await self._next_chunk()
            if not chunk:
                self._ended = True
            self._frames.extend(frame for frame in self._demuxer.feed(chunk) if frame[1])
        return self._frames.popleft()

    async def _next_chunk(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            data = await read_result(first)
            if data or self._closed:
                return data
        try:
            return await self._connection.reader.read(READ_SIZE)
        except OSError:
            return b""

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise RuntimeDriverError("the process session is closed")
        writer = self._connection.writer
        if self._stdin_closed or writer.is_closing() or not data:
            return
        try:
            writer.write(data)
            await writer.drain()
        except OSError:
            pass  # The command ended or closed its stdin: `read` returns what is left.

    async def close_stdin(self) -> None:
        if self._stdin_closed or self._closed:
            return
        self._stdin_closed = True
        writer = self._connection.writer
        with contextlib.suppress(OSError, RuntimeError):
            if not writer.is_closing() and writer.can_write_eof():
                await writer.drain()
                writer.write_eof()
