"""TCP connections made from inside a task's own network, for `DockerRuntime.open_port`.

`ssh -L 8080:localhost:8080` means "port 8080 on the container's own loopback": the server
may listen on 127.0.0.1 only, which nothing outside the task can reach, and berth must not
route to a task's bridge address either (those addresses belong to the engine, may overlap
or be firewalled, and on some hosts are off-limits). So the connection is made from inside
the task's network namespace instead.

Linux `setns(2)` with `CLONE_NEWNET` moves only the *calling thread* into another network
namespace, and a socket belongs for good to the namespace it was created in: connecting,
sending and receiving on it later happen there, whichever thread does them. So a dedicated,
short-lived thread enters the namespace of the task's main process (`/proc/<pid>/ns/net`),
creates the socket, switches back to the namespace it started in and connects; the
connected socket is then handed to asyncio. A thread is never reused: should switching back
fail, that thread ends right after and nothing else ever runs in the task's namespace.

This needs berth on the engine's host, in its PID namespace, with the right to enter
namespaces (root), as killing a timed-out exec does (see `procfs.kill_exec_process`).
The process id the engine reports is only trusted if /proc shows that process in the task's
own cgroup, checked before and after opening its namespace, so a reused pid never leads
into another container's network. Elsewhere (an engine inside a VM, rootless) the port is
reported unreachable with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import socket
import threading
from collections.abc import Callable, Sequence

from berth.runtime.base import PortUnreachable
from berth.runtime.docker.procfs import in_container

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a server in the task to accept (a refusal comes at once)."""

_LIBC = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd`."""
    setns = getattr(_LIBC, "setns", None)
    if setns is None:
        raise OSError(errno.ENOSYS, "setns(2) is not available on this system")
    if setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _socket_in_namespace(pid: int, container_id: str) -> socket.socket:
    """A new TCP socket created in the network namespace of `pid` (see the module docstring).

    Blocking and thread-affine: call it only from a thread of its own.
    """
    unreachable = PortUnreachable(
        "the task's network cannot be entered from here: berth must run as root on the "
        "container engine's host to forward ports"
    )
    if not in_container(pid, container_id):
        raise unreachable
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise unreachable from exc
    try:
        if not in_container(pid, container_id):  # The pid was reused while opening.
            raise unreachable
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                _setns(target)
            except OSError as exc:
                raise unreachable from exc
            try:
                return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                _setns(own)
        finally:
            os.close(own)
    finally:
        os.close(target)


def connect_in_task(
    pid: int, container_id: str, port: int, addresses: Sequence[str] = ()
) -> socket.socket:
    """A non-blocking socket connected to `port` inside the task: on 127.0.0.1, else on the
    first of the task's own network `addresses` that accepts (a server may listen on its
    network address only).

    Blocking and thread-affine: call it only from a thread of its own.
    """
    failure: OSError | None = None
    for address in ("127.0.0.1", *addresses):
        sock = _socket_in_namespace(pid, container_id)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect((address, port))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            failure = failure or exc
            continue
        return sock
    reason = "connection refused" if isinstance(failure, ConnectionRefusedError) else str(failure)
    raise PortUnreachable(
        f"nothing accepts connections on port {port} inside the container ({reason}); "
        "start the server there first (listening on 127.0.0.1 or 0.0.0.0)"
    ) from failure


async def _in_own_thread(work: Callable[[], socket.socket]) -> socket.socket:
    """Run `work` in a fresh thread (never a pooled one); a late socket is closed, not leaked."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[socket.socket] = loop.create_future()

    def deliver(sock: socket.socket) -> None:
        if future.done():  # The caller was cancelled meanwhile.
            sock.close()
        else:
            future.set_result(sock)

    def fail(exc: BaseException) -> None:
        if not future.done():
            future.set_exception(exc)

    def run() -> None:
        try:
            sock = work()
        except BaseException as exc:
            with contextlib.suppress(RuntimeError):  # A closed loop: nobody waits any more.
                loop.call_soon_threadsafe(fail, exc)
            return
        try:
            loop.call_soon_threadsafe(deliver, sock)
        except RuntimeError:
            sock.close()

    threading.Thread(target=run, name="berth-netns-connect", daemon=True).start()
    return await future


async def open_port_in_task(
    pid: int, container_id: str, port: int, addresses: Sequence[str] = ()
) -> socket.socket:
    """`Runtime.open_port` for the task whose main process is `pid` (as this host sees it),
    whose network addresses are `addresses`."""
    if not 1 <= port <= 65535:
        raise PortUnreachable(f"{port} is not a TCP port (1-65535)")
    return await _in_own_thread(lambda: connect_in_task(pid, container_id, port, addresses))
