"""The SSH gateway: OpenSSH clients reach shells, commands and ports of running containers.

One listening port serves every container. SSH carries no host name, so the container is
named in the SSH user name (`ssh <container-id>@<host> -p <port>`, or
`<user>.<container-id>@...` to be someone else than root inside; see `ssh_access`), or, for
`ssh root@<any host>`, by the offered key when exactly one container accepts it.

- Authentication is by public key only (no passwords, no keyboard-interactive): the
  injected `SshAuthorizer` decides from the user name and the offered key, and must grant
  only a key selected for that container while SSH is enabled and the container runs.
- Every channel (session or port forward) re-asks the authorizer before it opens, so access
  revoked since the login (SSH disabled, container stopped) is refused on old connections;
  and with an event bus, every event naming a container re-asks it for the logins into that
  container, and those that lost access are disconnected (`ssh_revocation`).
- Each client address is limited in connection attempts and failed logins (`ssh_limits`).
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

The pieces: `ssh_connection` (admission, authentication, opening channels), `ssh_session`
(shells and commands), `ssh_forward` (`-L`), `ssh_host_key`, `ssh_limits`,
`ssh_revocation`; `ssh_access` is the contract with whatever decides access
(`ssh_authorizer`, the domain's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Coroutine
from pathlib import Path
from typing import Any

import asyncssh

from berth.domain.activity import OpenUses
from berth.domain.events import EventBus
from berth.gateway.ssh.access import SshAuthorizer
from berth.gateway.ssh.connection import ServerConnection
from berth.gateway.ssh.host_key import SshGatewayError, load_or_create_host_key
from berth.gateway.ssh.limits import AddressLimits, SshLimits
from berth.gateway.ssh.revocation import cut_revoked_logins
from berth.runtime.base import Runtime

logger = logging.getLogger(__name__)

LOGIN_TIMEOUT = 30.0
KEEPALIVE_SECONDS = 30.0
STOP_TIMEOUT = 5.0


class SshGateway:
    """The SSH server. `start` binds and serves; `stop` closes every connection.

    `port` 0 picks a free port (read it back from `port` after `start`). `events`, when
    given, is the bus whose events cut revoked logins (subscribed from `start` on); `uses`,
    when given, holds each logged-in container open while its login lasts (so an idle dev
    box is not paused under it, `berth.domain.activity`).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        host_key_path: Path,
        authorizer: SshAuthorizer,
        runtime: Runtime,
        limits: SshLimits | None = None,
        events: EventBus | None = None,
        uses: OpenUses | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self.host_key_path = host_key_path
        self.authorizer = authorizer
        self.runtime = runtime
        self.limits = AddressLimits(limits or SshLimits())
        self._events = events
        self._uses = uses
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._logins: dict[str, set[ServerConnection]] = {}
        """Logged-in connections by container id, for `recheck_logins`."""
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port listened on (the one picked by the system once started with port 0)."""
        return self._acceptor.get_port() if self._acceptor is not None else self._port

    @property
    def connection_count(self) -> int:
        """Connections open now, logged in or not (a closed one is gone once asyncssh has
        reported it lost, which is when its failed login, if any, has been counted)."""
        return len(self._connections)

    async def start(self) -> None:
        """Load (or create) the host key and listen; raises `SshGatewayError` if it cannot."""
        if self._acceptor is not None:
            raise SshGatewayError("the SSH gateway is already started")
        key = await asyncio.to_thread(load_or_create_host_key, self.host_key_path)
        if self._events is not None:  # Subscribed before any login, so none is missed.
            self.spawn(
                cut_revoked_logins(self._events.subscribe(), self.recheck_logins), "revocation"
            )
        try:
            self._acceptor = await asyncssh.create_server(
                lambda: ServerConnection(self),
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
            await self._end_tasks()
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
        await self._end_tasks()
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

    def logged_in(self, login: ServerConnection) -> None:
        """Note a login (with its target set) so that events about its container reach it."""
        if login.target is not None:
            logins = self._logins.setdefault(login.target.container_id, set())
            if login not in logins and self._uses is not None:
                self._uses.add(login.target.container_id)
            logins.add(login)

    def logged_out(self, login: ServerConnection) -> None:
        if login.target is None:
            return
        logins = self._logins.get(login.target.container_id)
        if logins is not None:
            if login in logins and self._uses is not None:
                self._uses.discard(login.target.container_id)
            logins.discard(login)
            if not logins:
                del self._logins[login.target.container_id]

    async def recheck_logins(self, container_ids: Collection[str] | None) -> None:
        """Re-ask the authorizer about every login into these containers (all if None) and
        disconnect those whose access was revoked."""
        if container_ids is None:
            logins = [login for group in self._logins.values() for login in group]
        else:
            logins = [login for cid in container_ids for login in self._logins.get(cid, ())]
        if logins:
            await asyncio.gather(*(login.recheck_access() for login in logins))

    async def _end_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=STOP_TIMEOUT)
