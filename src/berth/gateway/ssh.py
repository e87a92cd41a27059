"""The SSH gateway: OpenSSH clients reach shells, commands and ports of running containers.

One listening port serves every container. SSH carries no host name, so the container is
named in the SSH user name (`ssh <container-id>@<host> -p <port>`, or
`<user>.<container-id>@...` to be someone else than root inside; see `ssh_access`).

- Authentication is by public key only (no passwords, no keyboard-interactive): the
  injected `SshAuthorizer` decides from the user name and the offered key, and must grant
  only a key selected for that container while SSH is enabled and the container runs.
- Every channel (session or port forward) re-asks the authorizer before it opens, so access
  revoked since the login (SSH disabled, container stopped) is refused on old connections.
- Sessions are bridged to commands in the container through the `Runtime` contract, so no
  sshd is needed in the image: with a PTY, `open_terminal` (window changes become resizes);
  without one, `open_process` with stdin streamed and stdout/stderr kept apart, so pipes,
  `ssh -T` shells and tools like rsync or git work. The client gets the command's exit
  status. Subsystems (sftp) are not offered.
- Local port forwarding (`ssh -L <port>:localhost:<container-port>`) reaches the
  container's *own* loopback through `Runtime.open_port`; other destinations are refused,
  so the gateway can never be used to reach anything else. Remote forwarding is refused.
- The host key is generated once (ed25519, mode 0600) and kept, so clients never see a
  changed host key across restarts.
- One log line per login, session and forward (user name, peer, container, key
  fingerprint); never key material, never the commands people run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import asyncssh

from berth.domain.shells import LOGIN_SHELL
from berth.gateway.ssh_access import ROOT_USER, SshAuthorizer, SshTarget, parse_ssh_username
from berth.runtime.base import (
    CommandNotFound,
    InteractiveSession,
    PortUnreachable,
    ProcessSession,
    Runtime,
    RuntimeDriverError,
    TaskNotFound,
)

logger = logging.getLogger(__name__)

_COMMAND_IN_HOME = 'cd "${HOME:-/}" 2>/dev/null || cd /; exec /bin/sh -c "$1"'
"""`ssh host CMD` as root: CMD (passed as "$1", never pasted in) run from the home directory."""

_AS_USER = """\
if ! command -v su >/dev/null 2>&1; then
  echo "berth: cannot log in as '$1': this container has no 'su' command;" \
"log in as root (ssh <container-id>@...) instead" >&2
  exit 1
fi
if [ "$#" -ge 2 ]; then exec su - "$1" -c "$2"; fi
exec su - "$1"
"""
"""A login as a non-root user ("$1"), with a command ("$2") or its login shell, via `su -`."""

FORWARD_HOSTS = frozenset({"localhost", "127.0.0.1"})
"""`-L` destinations accepted: they mean the container itself."""

DEFAULT_COLS = 80
DEFAULT_ROWS = 24
GATEWAY_FAILURE = 255
"""Exit status when the gateway could not run the command (what `ssh` uses for its own)."""
LOGIN_TIMEOUT = 30.0
KEEPALIVE_SECONDS = 30.0
STOP_TIMEOUT = 5.0
_READ_SIZE = 64 * 1024
_HIGH_WATER = 256 * 1024
"""Bytes buffered towards a command or port before the client is asked to pause."""
_LOW_WATER = 64 * 1024


class SshGatewayError(Exception):
    """The gateway cannot start (unreadable host key, port in use...)."""


def session_argv(login_user: str, command: str | None) -> list[str]:
    """The argv for a session: `command` (or the login shell when None) as `login_user`.

    The user name and the command are passed as positional parameters, never pasted into
    a script. `root` means the image's default user (no `su`).
    """
    if login_user == ROOT_USER:
        if command is None:
            return ["/bin/sh", "-c", LOGIN_SHELL]
        return ["/bin/sh", "-c", _COMMAND_IN_HOME, "berth-ssh", command]
    extra = [] if command is None else [command]
    return ["/bin/sh", "-c", _AS_USER, "berth-ssh", login_user, *extra]


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """The gateway's host key: read from `path`, or generated there (ed25519) if missing.

    Creation is atomic and never replaces a key (a hard link of a complete temporary file),
    so two gateways starting at once agree on one key. An unreadable key is an error, not
    a reason to make a new one: clients would then see a changed host key. Blocking.
    """
    try:
        key = asyncssh.read_private_key(str(path))
    except FileNotFoundError:
        pass
    except (OSError, asyncssh.KeyImportError) as exc:
        raise SshGatewayError(
            f"the SSH host key at {path} cannot be read ({exc}); fix it or remove it "
            "(a new key makes every client warn that the host key changed)"
        ) from exc
    else:
        _restrict(path)
        return key
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = asyncssh.generate_private_key("ssh-ed25519", comment="berth ssh gateway")
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(key.export_private_key("openssh"))
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # Another starter won: use its key.
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    logger.info("generated the SSH gateway host key at %s", path)
    return asyncssh.read_private_key(str(path))


def _restrict(path: Path) -> None:
    """Make a private key readable by its owner only (it may have been copied carelessly)."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning("SSH host key %s had mode %o; setting 0600", path, mode)
        path.chmod(0o600)


def _openssh_public_key(key: asyncssh.SSHKey) -> str:
    """`<type> <base64>`: the key in OpenSSH format without a comment."""
    return " ".join(key.export_public_key("openssh").decode("ascii").split()[:2])


class SshGateway:
    """The SSH server. `start` binds and serves; `stop` closes every connection.

    `port` 0 picks a free port (read it back from `port` after `start`).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        host_key_path: Path,
        authorizer: SshAuthorizer,
        runtime: Runtime,
    ) -> None:
        self.host = host
        self._port = port
        self.host_key_path = host_key_path
        self.authorizer = authorizer
        self.runtime = runtime
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port listened on (the one picked by the system once started with port 0)."""
        return self._acceptor.get_port() if self._acceptor is not None else self._port

    async def start(self) -> None:
        """Load (or create) the host key and listen; raises `SshGatewayError` if it cannot."""
        if self._acceptor is not None:
            raise SshGatewayError("the SSH gateway is already started")
        key = await asyncio.to_thread(load_or_create_host_key, self.host_key_path)
        try:
            self._acceptor = await asyncssh.create_server(
                lambda: _ServerConnection(self),
                self.host,
                self._port,
                config=None,
                server_host_keys=[key],
                server_version="berth",
                encoding=None,
                public_key_auth=True,
                password_auth=False,
                kbdint_auth=False,
                host_based_auth=False,
                gss_host=None,
                agent_forwarding=False,
                x11_forwarding=False,
                allow_scp=False,
                login_timeout=LOGIN_TIMEOUT,
                keepalive_interval=KEEPALIVE_SECONDS,
            )
        except OSError as exc:
            raise SshGatewayError(
                f"the SSH gateway cannot listen on {self.host}:{self._port}: {exc.strerror or exc}"
            ) from exc
        logger.info(
            "SSH gateway listening on %s:%d (host key %s)",
            self.host,
            self.port,
            key.get_fingerprint("sha256"),
        )

    async def stop(self) -> None:
        """Stop listening, close every connection and end their commands; idempotent."""
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is None:
            return
        acceptor.close()
        connections = list(self._connections)
        for connection in connections:
            connection.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=STOP_TIMEOUT)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT):
                for connection in connections:
                    await connection.wait_closed()
                await acceptor.wait_closed()

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        """Run `work` as a task the gateway keeps (and ends on `stop`); failures are logged."""
        task = asyncio.create_task(work, name=f"berth-ssh-{what}")
        self._tasks.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            if not done.cancelled() and (exc := done.exception()) is not None:
                logger.error("SSH gateway %s failed", what, exc_info=exc)

        task.add_done_callback(finished)
        return task

    def track(self, connection: asyncssh.SSHServerConnection, *, open_: bool) -> None:
        """Note a connection as open (closed by `stop`) or as gone."""
        if open_:
            self._connections.add(connection)
        else:
            self._connections.discard(connection)


class _ServerConnection(asyncssh.SSHServer):
    """One client connection: authentication, then the channels it opens."""

    def __init__(self, gateway: SshGateway) -> None:
        self._gateway = gateway
        self._connection: asyncssh.SSHServerConnection | None = None
        self._peer = "unknown"
        self._target: SshTarget | None = None
        self._label = ""  # "user ... from ... -> container ...", for this connection's logs.
        # During authentication: decisions per (user name, key), so that a key's query and
        # its signed request cost one authorizer call; and the last key granted, which is
        # the one a successful signed request used (asyncssh validates right before).
        self._decisions: dict[tuple[str, str], SshTarget | None] = {}
        self._granted: tuple[SshTarget, str, str] | None = None

    # -- connection and authentication -----------------------------------------------------

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connection = conn
        peer = conn.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._peer = f"{peer[0]}:{peer[1]}"
        self._gateway.track(conn, open_=True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connection is not None:
            self._gateway.track(self._connection, open_=False)
        if self._target is not None:
            logger.info("SSH connection closed: %s", self._label)

    def begin_auth(self, username: str) -> bool:
        return True  # Every user name needs a key; unknown names fail like wrong keys.

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        fingerprint = key.get_fingerprint("sha256")
        login = parse_ssh_username(username)
        if login is None:
            logger.info(
                "SSH login refused: user name %r from %s names no container "
                "(expected <container-id> or <user>.<container-id>)",
                username,
                self._peer,
            )
            return False
        public_key = _openssh_public_key(key)
        decided = (username, public_key)
        if decided in self._decisions:
            target = self._decisions[decided]
        else:
            try:
                target = await self._gateway.authorizer.authorize(username, public_key)
            except Exception:
                logger.exception("SSH authorization failed for %r from %s", username, self._peer)
                return False
            if target is not None and (
                target.container_id != login.container_id or target.login_user != login.login_user
            ):
                logger.error(
                    "SSH authorizer answered %r with container %s as %s; refused",
                    username,
                    target.container_id,
                    target.login_user,
                )
                target = None
            self._decisions[decided] = target
            if target is None:
                logger.info(
                    "SSH key refused: user %r from %s, key %s", username, self._peer, fingerprint
                )
        if target is None:
            return False
        self._granted = (target, username, fingerprint)
        return True

    def auth_completed(self) -> None:
        if self._granted is None:  # Cannot happen: public keys are the only method offered.
            logger.error("SSH login from %s completed without a granted key; closed", self._peer)
            if self._connection is not None:
                self._connection.close()
            return
        target, username, fingerprint = self._granted
        self._target = target
        self._decisions.clear()
        self._label = f"user {username!r} from {self._peer} -> container {target.container_id}"
        logger.info(
            "SSH login: %s (task %s) as %s, key %s",
            self._label,
            target.task_id[:12],
            target.login_user,
            fingerprint,
        )

    # -- channels --------------------------------------------------------------------------

    def session_requested(self) -> Coroutine[Any, Any, asyncssh.SSHServerSession[bytes]]:
        return self._open_session()

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Coroutine[Any, Any, asyncssh.SSHTCPSession[bytes]]:
        return self._open_forward(dest_host, dest_port)

    async def _recheck(self, what: str) -> SshTarget:
        """The login's target if it may still be used; refuses the channel otherwise."""
        target = self._target
        if target is None:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "not logged in"
            )
        try:
            allowed = await self._gateway.authorizer.recheck(target)
        except Exception:
            logger.exception("SSH access recheck failed: %s", self._label)
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED, "berth could not check SSH access; try again"
            ) from None
        if not allowed:
            logger.info("SSH %s refused, access revoked: %s", what, self._label)
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                f"SSH access to container {target.container_id} is no longer allowed "
                "(SSH disabled, container not running, or key removed)",
            )
        return target

    async def _open_session(self) -> asyncssh.SSHServerSession[bytes]:
        target = await self._recheck("session")
        return _Session(self._gateway, target, self._label)

    async def _open_forward(self, dest_host: str, dest_port: int) -> asyncssh.SSHTCPSession[bytes]:
        if dest_host.lower() not in FORWARD_HOSTS:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                f"berth forwards only to ports of the container itself, not to {dest_host!r}: "
                "use -L <local-port>:localhost:<container-port>",
            )
        target = await self._recheck("port forward")
        try:
            sock = await self._gateway.runtime.open_port(target.task_id, dest_port)
        except TaskNotFound:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED, f"container {target.container_id} is not running"
            ) from None
        except PortUnreachable as exc:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, str(exc)) from None
        except RuntimeDriverError as exc:
            logger.warning("SSH port forward failed (%s): %s", exc, self._label)
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, str(exc)) from None
        try:
            reader, writer = await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        logger.info("SSH forward to container port %d: %s", dest_port, self._label)
        return _ForwardSession(self._gateway, reader, writer)


class _Inbox:
    """Bytes from the client waiting for the command, with flow control on the channel:
    reading from the client pauses above a high-water mark and resumes once drained."""

    def __init__(self) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._ended = False
        self._ready = asyncio.Event()
        self._channel: asyncssh.SSHServerChannel[bytes] | None = None
        self._paused = False

    def attach(self, channel: asyncssh.SSHServerChannel[bytes]) -> None:
        self._channel = channel

    def put(self, data: bytes) -> None:
        if self._ended or not data:
            return
        self._chunks.append(data)
        self._size += len(data)
        self._ready.set()
        if self._size > _HIGH_WATER and not self._paused and self._channel is not None:
            self._paused = True
            self._channel.pause_reading()

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    async def get(self) -> bytes | None:
        """Everything queued (at least one byte), or None after the client's end of input."""
        while not self._chunks:
            if self._ended:
                return None
            self._ready.clear()
            await self._ready.wait()
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        if self._paused and self._channel is not None:
            self._paused = False
            self._channel.resume_reading()
        return data


class _Session(asyncssh.SSHServerSession[bytes]):
    """A session channel: a login shell or a command in the container, PTY or not."""

    def __init__(self, gateway: SshGateway, target: SshTarget, label: str) -> None:
        self._gateway = gateway
        self._target = target
        self._label = label
        self._channel: asyncssh.SSHServerChannel[bytes] | None = None
        self._inbox = _Inbox()
        self._writable = asyncio.Event()
        self._writable.set()
        self._resized = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- asyncssh callbacks ----------------------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._channel = chan
        self._inbox.attach(chan)

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any
    ) -> bool:
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        logger.info("SSH subsystem %r refused (not offered): %s", subsystem, self._label)
        return False

    def session_started(self) -> None:
        self._task = self._gateway.spawn(self._run(), "session")

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self._inbox.put(data)

    def eof_received(self) -> bool:
        self._inbox.end()
        return True  # Half-open: the command's output still flows to the client.

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self._resized.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._writable.set()
        if self._task is not None:
            self._task.cancel()  # Closes the terminal or process: the command is killed.

    # -- running ---------------------------------------------------------------------------

    async def _run(self) -> None:
        channel = self._channel
        assert channel is not None
        command = channel.get_command()
        pty = channel.get_terminal_type() is not None
        argv = session_argv(self._target.login_user, command)
        logger.info(
            "SSH %s%s: %s",
            "shell" if command is None else "command",
            " with a terminal" if pty else "",
            self._label,
        )
        status: int | None = GATEWAY_FAILURE
        newline = "\r\n" if pty else "\n"
        try:
            status = await (self._run_terminal(argv) if pty else self._run_process(argv))
        except TaskNotFound:
            self._say(f"berth: container {self._target.container_id} is not running{newline}")
        except CommandNotFound:
            self._say(f"berth: the container's image has no /bin/sh, which SSH needs{newline}")
        except RuntimeDriverError as exc:
            self._say(f"berth: {exc}{newline}")
        except Exception:
            logger.exception("SSH session failed: %s", self._label)
            self._say(f"berth: internal error (see the berth server log){newline}")
        with contextlib.suppress(OSError):
            if status is None:
                channel.close()
            else:
                channel.exit(status)

    def _say(self, message: str) -> None:
        if self._channel is not None and not self._closed:
            with contextlib.suppress(OSError):
                self._channel.write_stderr(message.encode())

    async def _send(self, data: bytes, *, stderr: bool = False) -> bool:
        """Write to the client, waiting while its window is full; False once it is gone."""
        while not self._closed and not self._writable.is_set():
            await self._writable.wait()
        channel = self._channel
        if self._closed or channel is None:
            return False
        try:
            if stderr:
                channel.write_stderr(data)
            else:
                channel.write(data)
        except OSError:
            return False
        return True

    def _size(self) -> tuple[int, int]:
        assert self._channel is not None
        cols, rows, _, _ = self._channel.get_terminal_size()
        return cols or DEFAULT_COLS, rows or DEFAULT_ROWS

    async def _run_terminal(self, argv: list[str]) -> int | None:
        self._resized.clear()
        cols, rows = self._size()
        terminal = await self._gateway.runtime.open_terminal(
            self._target.task_id, argv, cols=cols, rows=rows
        )
        helpers = [
            self._gateway.spawn(self._type_into(terminal), "terminal-input"),
            self._gateway.spawn(self._follow_size(terminal), "terminal-resize"),
        ]
        try:
            while data := await terminal.read():
                if not await self._send(data):
                    return None
            return await terminal.wait()
        finally:
            await _end(helpers)
            await terminal.close()

    async def _type_into(self, terminal: InteractiveSession) -> None:
        # The client's end of input is ignored, as sshd does on a terminal: `exit` ends it.
        with contextlib.suppress(RuntimeDriverError):
            while (data := await self._inbox.get()) is not None:
                await terminal.write(data)

    async def _follow_size(self, terminal: InteractiveSession) -> None:
        while True:
            await self._resized.wait()
            self._resized.clear()
            cols, rows = self._size()
            try:
                await terminal.resize(cols=cols, rows=rows)
            except RuntimeDriverError as exc:
                logger.debug("SSH terminal resize failed (%s): %s", exc, self._label)

    async def _run_process(self, argv: list[str]) -> int | None:
        process = await self._gateway.runtime.open_process(self._target.task_id, argv)
        feeder = self._gateway.spawn(self._feed(process), "process-input")
        try:
            while True:
                stream, data = await process.read()
                if not data:
                    break
                if not await self._send(data, stderr=stream == "stderr"):
                    return None
            return await process.wait()
        finally:
            await _end([feeder])
            await process.close()

    async def _feed(self, process: ProcessSession) -> None:
        with contextlib.suppress(RuntimeDriverError):
            while (data := await self._inbox.get()) is not None:
                await process.write(data)
            await process.close_stdin()


class _ForwardSession(asyncssh.SSHTCPSession[bytes]):
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
        if buffered > _HIGH_WATER and not self._paused and self._channel is not None:
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
            while data := await self._reader.read(_READ_SIZE):
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


async def _end(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel helper tasks and wait until they are done (their errors are logged by spawn)."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
