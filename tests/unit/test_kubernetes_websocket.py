"""The Kubernetes driver's WebSocket to an API server on the event loop `berth serve` runs
(uvloop), against a stand-in API server on loopback TLS: output the server sent before it
dropped the connection is all there for a reader that comes late, as an exec's reader does
when berth's event loop is busy. (uvloop's TLS transport throws away what it holds when the
peer closes while reading is paused, so an exec's connection never pauses.)"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import uvloop
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from berth.runtime.kubernetes.channels import EXEC_PROTOCOL, STDOUT, frame, split_frame
from berth.runtime.kubernetes.client import ApiClient
from berth.runtime.kubernetes.config import ClusterConfig
from berth.testing.waiting import poll
from tests.support.certificates import self_signed

MESSAGES = 64
MESSAGE = bytes(range(256)) * 64  # 16 KiB: 1 MiB in all


async def _read_after_the_server_left(tmp_path: Path) -> int:
    """Bytes of output read from a connection whose reader starts once the server has
    sent everything and dropped the connection (no close frame, as the API server may)."""
    cert, key = self_signed("api-server", ips=("127.0.0.1",)).write(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    gone = asyncio.Event()

    async def command(connection: ServerConnection) -> None:
        for _ in range(MESSAGES):
            await connection.send(frame(STDOUT, MESSAGE))
        await poll(lambda: _flushed(connection), 30, what="the output written")
        connection.transport.abort()
        gone.set()

    async with serve(
        command,
        "127.0.0.1",
        0,
        ssl=server_tls,
        subprotocols=[Subprotocol(EXEC_PROTOCOL)],
        max_size=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        api = ApiClient(
            ClusterConfig(
                server=f"https://127.0.0.1:{port}",
                ssl_context=ssl.create_default_context(cafile=str(cert)),
            )
        )
        ws = await api.websocket("/exec", [], [EXEC_PROTOCOL], queue_messages=None)
        await asyncio.wait_for(gone.wait(), 30)
        received = 0
        try:
            async for message in ws:
                parts = split_frame(message)
                assert parts is not None and parts[0] == STDOUT
                received += len(parts[1])
        except ConnectionClosed:
            pass  # no close frame: the connection just ended
        await api.close()
        return received


async def _flushed(connection: ServerConnection) -> bool:
    return connection.transport.get_write_buffer_size() == 0


def test_output_sent_before_the_api_server_dropped_the_connection_is_all_read(
    tmp_path: Path,
) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        received = runner.run(_read_after_the_server_left(tmp_path))
    assert received == MESSAGES * len(MESSAGE)
