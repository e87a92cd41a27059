"""One SSH client connection: authentication by public key, then the channels it opens."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import asyncssh

from berth.gateway.ssh_access import SshTarget, parse_ssh_username
from berth.gateway.ssh_forward import FORWARD_HOSTS, ForwardSession
from berth.gateway.ssh_session import SshSession
from berth.runtime.base import PortUnreachable, RuntimeDriverError, TaskNotFound

if TYPE_CHECKING:
    from berth.gateway.ssh import SshGateway

logger = logging.getLogger(__name__)


def openssh_public_key(key: asyncssh.SSHKey) -> str:
    """`<type> <base64>`: the key in OpenSSH format without a comment."""
    return " ".join(key.export_public_key("openssh").decode("ascii").split()[:2])


class ServerConnection(asyncssh.SSHServer):
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
        public_key = openssh_public_key(key)
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
        return SshSession(self._gateway, target, self._label)

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
        return ForwardSession(self._gateway, reader, writer)
