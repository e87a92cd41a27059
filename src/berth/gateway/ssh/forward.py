"""`ssh -L` channels, bridged to a TCP connection inside the container.

Local port forwarding (`ssh -L <port>:localhost:<container-port>`) reaches the container's
*own* loopback through `Runtime.open_port`; other destinations are refused (see
`ServerConnection`), so the gateway can never be used to reach anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import asyncssh

from berth.gateway.ssh.session import HIGH_WATER, READ_SIZE

if TYPE_CHECKING:
    from berth.gateway.ssh.gateway import SshGateway

FORWARD_HOSTS = frozenset({"localhost", "127.0.0.1"})
"""`-L` destinations accepted: they mean the container itself."""


class ForwardSession(asyncssh.SSHTCPSession[bytes]):
    """A `-L` channel bridged to a TCP connection inside the container, both ways, with
    half-closes passed on (an HTTP client's end of request, a server's end of response)."""

    def __init__(
        self, gateway: SshGateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._gateway = gateway
        self._reader = reader
        self._writer = writer
        self._channel: asyncssh.SSHTCPChannel[bytes] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._pump: asyncio.Task[None] | None = None
        self._paused = False
        self._client_ended = False
        self._server_ended = False
        self._closed = False

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self._channel = chan
        self._pump = self._gateway.spawn(self._to_client(), "forward")

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if self._writer.is_closing():
            return
        self._writer.write(data)
        buffered = self._writer.transport.get_write_buffer_size()
        if buffered > HIGH_WATER and not self._paused and self._channel is not None:
            self._paused = True
            self._channel.pause_reading()
            self._gateway.spawn(self._drain(), "forward-drain")

    async def _drain(self) -> None:
        with contextlib.suppress(OSError):
            await self._writer.drain()
        self._paused = False
        if self._channel is not None and not self._closed:
            self._channel.resume_reading()

    def eof_received(self) -> bool:
        self._client_ended = True
        with contextlib.suppress(OSError, RuntimeError):
            if not self._writer.is_closing() and self._writer.can_write_eof():
                self._writer.write_eof()
        if self._server_ended and self._channel is not None:
            self._channel.close()
        return True

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._writable.set()
        if self._pump is not None:
            self._pump.cancel()
        self._writer.close()

    async def _to_client(self) -> None:
        channel = self._channel
        assert channel is not None
        try:
            while data := await self._reader.read(READ_SIZE):
                while not self._closed and not self._writable.is_set():
                    await self._writable.wait()
                if self._closed:
                    return
                channel.write(data)
        except OSError:
            channel.close()  # Reset inside the container: end the channel too.
            return
        self._server_ended = True
        with contextlib.suppress(OSError):
            channel.write_eof()
            if self._client_ended:
                channel.close()
