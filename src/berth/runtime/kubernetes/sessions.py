"""Terminals and attached processes over an exec's WebSocket (`execs.ExecChannel`)."""

from __future__ import annotations

import contextlib

from berth.runtime.base import RuntimeDriverError
from berth.runtime.kubernetes.channels import STDIN
from berth.runtime.kubernetes.execs import ExecChannel, KubernetesExec, Stream


class _Session:
    def __init__(self, execs: KubernetesExec, channel: ExecChannel) -> None:
        self._execs = execs
        self._channel = channel
        self._ended = False

    async def _next(self) -> tuple[Stream, bytes]:
        if self._ended or self._channel.closed:
            return "stdout", b""
        item = await self._channel.output.get()
        if item is None:
            self._ended = True
            return "stdout", b""
        return item

    async def write(self, data: bytes) -> None:
        if self._channel.closed:
            raise RuntimeDriverError("the session is closed")
        await self._channel.send(STDIN, data)

    async def wait(self) -> int | None:
        return (await self._channel.ending).exit_code

    async def close(self) -> None:
        if self._channel.closed:
            return
        if not self._channel.ending.done():
            with contextlib.suppress(Exception):
                await self._execs.kill(self._channel)
        await self._channel.close()


class KubernetesTerminal(_Session):
    """`InteractiveSession`: one output stream (the terminal), resizable."""

    async def read(self) -> bytes:
        return (await self._next())[1]

    async def resize(self, *, cols: int, rows: int) -> None:
        await self._channel.resize(cols=cols, rows=rows)


class KubernetesProcess(_Session):
    """`ProcessSession`: stdout and stderr apart, stdin closable."""

    async def read(self) -> tuple[Stream, bytes]:
        return await self._next()

    async def close_stdin(self) -> None:
        if not self._channel.closed:
            await self._channel.close_stdin()
