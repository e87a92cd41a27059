"""Connections to ports inside a task's pod, and ports published on this machine's loopback.

`open_port` connects to the pod's IP first (where berth can route to pods: on a node, or in
the cluster); a server listening only on the pod's own loopback refuses that, and is then
reached through the API server's port-forward subresource, whose WebSocket is bridged to
one end of a socket pair the caller gets. A port-forward reports a refused connection on
its error channel at once; the bridge waits `REFUSAL_WAIT` for that report before handing
the socket over.

`Publisher` gives a task's `TaskSpec.ports` an address on 127.0.0.1, as the Docker driver's
published ports are: a listener per (pod, port) that relays each connection through
`open_port`. The listeners live until the task is removed, stopped or seen gone (a
restarted berth publishes again when it inspects the task).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from berth.runtime.base import PortUnreachable
from berth.runtime.kubernetes.channels import PORT_FORWARD_PROTOCOL, frame, split_frame
from berth.runtime.kubernetes.client import ApiClient, SubresourceRefused

CONNECT_TIMEOUT = 3.0
REFUSAL_WAIT = 0.3
READ_SIZE = 64 * 1024
HALF_CLOSED_WAIT = 30.0


async def connect_pod_ip(address: str, port: int) -> socket.socket | None:
    """A connected socket to `address:port`, or None when it refuses (nothing listens on
    the pod's address); other failures are `PortUnreachable`."""
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
        return sock
    except ConnectionRefusedError:
        sock.close()
        return None
    except (OSError, TimeoutError) as exc:
        sock.close()
        if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return None  # berth cannot route to pods: try the API server instead
        raise PortUnreachable(f"cannot reach port {port} of the task: {exc}") from None


async def port_forward(api: ApiClient, namespace: str, pod: str, port: int) -> socket.socket:
    """A socket bridged to `port` on the pod's loopback through the API server."""
    try:
        ws = await api.websocket(
            f"/api/v1/namespaces/{namespace}/pods/{pod}/portforward",
            {"ports": str(port)},
            [PORT_FORWARD_PROTOCOL],
        )
    except SubresourceRefused as refused:
        raise PortUnreachable(f"cannot forward port {port} of the task: {refused}") from None
    stream = _ForwardStream(ws)
    try:
        refusal = await stream.refusal()
    except BaseException:
        await ws.close()
        raise
    if refusal is not None:
        await ws.close()
        raise PortUnreachable(f"nothing accepts connections on port {port} in the task")
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    bridge = asyncio.create_task(stream.bridge(ours))
    _BRIDGES.add(bridge)
    bridge.add_done_callback(_BRIDGES.discard)
    return theirs


_BRIDGES: set[asyncio.Task[None]] = set()
"""Bridges running (a task needs a strong reference while it runs)."""


class _ForwardStream:
    """One port's data (channel 0) and error (channel 1) over a port-forward WebSocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._prefixed: set[int] = set()
        self._early: list[bytes] = []

    def _payload(self, message: bytes | str) -> tuple[int, bytes] | None:
        parts = split_frame(message)
        if parts is None:
            return None
        channel, payload = parts
        if channel not in self._prefixed:  # each channel's first message is the port alone
            self._prefixed.add(channel)
            payload = payload[2:]
        return (channel, payload) if payload else None

    async def refusal(self) -> str | None:
        """The error channel's message if the pod refused the connection within the wait;
        data that arrives meanwhile (a server's greeting) is kept for the bridge."""
        try:
            async with asyncio.timeout(REFUSAL_WAIT):
                while True:
                    parts = self._payload(await self.ws.recv())
                    if parts is None:
                        continue
                    channel, payload = parts
                    if channel == 1:
                        return payload.decode("utf-8", "replace")
                    self._early.append(payload)
        except TimeoutError:
            return None
        except ConnectionClosed:
            return "the port-forward closed"

    async def bridge(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()

        async def upstream() -> None:
            while data := await loop.sock_recv(sock, READ_SIZE):
                await self.ws.send(frame(0, data))

        async def downstream() -> None:
            for data in self._early:
                await loop.sock_sendall(sock, data)
            async for message in self.ws:
                parts = self._payload(message)
                if parts is not None and parts[0] == 0:
                    await loop.sock_sendall(sock, parts[1])

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if not tasks[1].done():
                # Our side ended its output; the port-forward cannot pass a half-close on,
                # so the answer is awaited a while before the connection is dropped.
                await asyncio.wait([tasks[1]], timeout=HALF_CLOSED_WAIT)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.ws.close()
            sock.close()


Opener = Callable[[], Awaitable[socket.socket]]


class Publisher:
    """Loopback listeners relaying to tasks' ports (see the module docstring), one per
    (task, pod uid, port). A task's listeners go with `unpublish(task)`, whoever deleted
    its pod; a pod recreated under the task's name replaces the old pod's listeners."""

    def __init__(self) -> None:
        self._servers: dict[tuple[str, str, int], asyncio.Server] = {}
        self._lock = asyncio.Lock()

    async def publish(self, task: str, uid: str, port: int, opener: Opener) -> tuple[str, int]:
        key = (task, uid, port)
        async with self._lock:
            for stale in [k for k in self._servers if k[0] == task and k[1] != uid]:
                self._servers.pop(stale).close()
            server = self._servers.get(key)
            if server is None:
                server = await asyncio.start_server(
                    lambda r, w: _relay(r, w, opener), host="127.0.0.1", port=0
                )
                self._servers[key] = server
        return "127.0.0.1", int(server.sockets[0].getsockname()[1])

    async def unpublish(self, task: str) -> None:
        for key in [k for k in self._servers if k[0] == task]:
            self._servers.pop(key).close()

    async def close(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()


async def _relay(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, opener: Opener
) -> None:
    try:
        sock = await opener()
    except Exception:
        writer.close()
        return
    try:
        task_reader, task_writer = await asyncio.open_connection(sock=sock)
    except OSError:
        sock.close()
        writer.close()
        return

    async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(READ_SIZE):
                sink.write(data)
                await sink.drain()
            if sink.can_write_eof():
                sink.write_eof()

    try:
        await asyncio.gather(pump(reader, task_writer), pump(task_reader, writer))
    finally:
        task_writer.close()
        writer.close()
