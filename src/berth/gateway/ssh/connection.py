"""One SSH client connection: admission, authentication by public key, then its channels.

- Admission: the client address's limits (`ssh_limits`) are charged as it connects; a
  client over them is disconnected with the reason and the wait as soon as it asks to
  authenticate (no key is looked at).
- Authentication: `<container-id>` and `<user>.<container-id>` name the container; `root`
  (what `ssh root@<hostname>` sends) lets the offered key name it, when exactly one
  container accepts that key. A key that opens several is accepted, but the login only
  shows, on any session, one `ssh` command per container to choose from, then exits 255:
  the list is shown only to a client that proved it holds the key, so a bare public key
  (public, by nature) never lists anyone's containers. At most `MAX_AUTH_TRIES` keys are
  refused per connection, as sshd does; a connection that offered a key and ends without
  logging in counts as a failed login of its address.
- Channels re-ask the authorizer before they open, and the gateway re-asks it for a login
  whenever an event names its container (`recheck_access`): a login that lost its access is
  disconnected, which ends its sessions and forwards.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import asyncssh

from berth.gateway.ssh.access import ROOT_USER, SeveralTargets, SshTarget, parse_ssh_username
from berth.gateway.ssh.forward import FORWARD_HOSTS, ForwardSession
from berth.gateway.ssh.session import NoticeSession, SshSession
from berth.runtime.base import PortUnreachable, RuntimeDriverError, TaskNotFound

if TYPE_CHECKING:
    from berth.gateway.ssh.gateway import SshGateway

logger = logging.getLogger(__name__)

MAX_AUTH_TRIES = 6
"""Keys refused on one connection before it is dropped (sshd's `MaxAuthTries` default)."""
CHOICE_SECONDS = 5.0
"""How long a login whose key opens several containers stays open without a session
(e.g. `ssh -N`) before it is disconnected with the choices in one line."""

Decision = SshTarget | SeveralTargets | None


def openssh_public_key(key: asyncssh.SSHKey) -> str:
    """`<type> <base64>`: the key in OpenSSH format without a comment."""
    return " ".join(key.export_public_key("openssh").decode("ascii").split()[:2])


_SEVERAL = "berth: this key opens several dev boxes; name the one you want:"


def several_targets_message(choices: SeveralTargets) -> str:
    """What a session of a login whose key opens several containers shows: one command a
    line."""
    return "".join(f"{line}\n" for line in (_SEVERAL, *(f"  {c}" for c in choices.ssh_commands)))


def several_targets_line(choices: SeveralTargets) -> str:
    """The same on one line, for a disconnect reason or a refused channel."""
    return f"{_SEVERAL} {' | '.join(choices.ssh_commands)}"


class ServerConnection(asyncssh.SSHServer):
    """One client connection: authentication, then the channels it opens."""

    def __init__(self, gateway: SshGateway) -> None:
        self._gateway = gateway
        self._connection: asyncssh.SSHServerConnection | None = None
        self._address = "unknown"
        self._peer = "unknown"
        self._turned_away: str | None = None
        self._closed = False
        self._target: SshTarget | None = None
        self._choices: SeveralTargets | None = None
        self._choice_timer: asyncio.TimerHandle | None = None
        self._sessions: weakref.WeakSet[SshSession] = weakref.WeakSet()
        self._label = ""  # "user ... from ... -> container ...", for this connection's logs.
        # During authentication: decisions per (user name, key), so that a key's query and
        # its signed request cost one authorizer call; and the last key granted, which is
        # the one a successful signed request used (asyncssh validates right before).
        self._decisions: dict[tuple[str, str], Decision] = {}
        self._granted: tuple[SshTarget | SeveralTargets, str, str] | None = None
        self._keys_offered = 0
        self._refusals = 0

    @property
    def target(self) -> SshTarget | None:
        """Where this connection logged in (None before, or for a list of choices)."""
        return self._target

    # -- connection and authentication -----------------------------------------------------

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connection = conn
        peer = conn.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._address = str(peer[0])
            self._peer = f"{peer[0]}:{peer[1]}"
        self._gateway.track(conn, open_=True)
        self._turned_away = self._gateway.limits.admit(self._address)
        if self._turned_away is not None:
            logger.info("SSH connection from %s turned away: %s", self._peer, self._turned_away)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._choice_timer is not None:
            self._choice_timer.cancel()
        if self._connection is not None:
            self._gateway.track(self._connection, open_=False)
        self._gateway.logged_out(self)
        if self._target is not None or self._choices is not None:
            logger.info("SSH connection closed: %s", self._label)
        elif self._keys_offered:
            self._gateway.limits.failed_login(self._address)

    def begin_auth(self, username: str) -> bool:
        if self._turned_away is not None and self._connection is not None:
            # Told here, not on arrival: the client now waits for an answer, so it reads the
            # reason; a disconnect sent during the key exchange can meet its next packet and
            # turn into a connection reset that hides the reason.
            self._connection.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS, self._turned_away)
        return True  # Every user name needs a key; unknown names fail like wrong keys.

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self._turned_away is not None:
            return False
        self._keys_offered += 1
        fingerprint = key.get_fingerprint("sha256")
        decided = (username, openssh_public_key(key))
        if decided not in self._decisions:
            self._decisions[decided] = await self._decide(username, decided[1], fingerprint)
        decision = self._decisions[decided]
        if decision is None:
            self._refused()
            return False
        self._granted = (decision, username, fingerprint)
        return True

    async def _decide(self, username: str, public_key: str, fingerprint: str) -> Decision:
        """Ask the authorizer, once per user name and key; log refusals."""
        try:
            if username == ROOT_USER:
                decision = await self._decide_by_key(public_key)
            else:
                decision = await self._decide_by_name(username, public_key)
        except Exception:
            logger.exception("SSH authorization failed for %r from %s", username, self._peer)
            return None
        if decision is None:
            logger.info(
                "SSH key refused: user %r from %s, key %s", username, self._peer, fingerprint
            )
        return decision

    async def _decide_by_key(self, public_key: str) -> Decision:
        decision = await self._gateway.authorizer.authorize_key(public_key)
        if isinstance(decision, SshTarget) and decision.login_user != ROOT_USER:
            logger.error("SSH authorizer answered root as %s; refused", decision.login_user)
            return None
        return decision

    async def _decide_by_name(self, username: str, public_key: str) -> SshTarget | None:
        login = parse_ssh_username(username)
        if login is None:
            logger.info(
                "SSH login refused: user name %r from %s names no container "
                "(expected <container-id>, <user>.<container-id> or root)",
                username,
                self._peer,
            )
            return None
        target = await self._gateway.authorizer.authorize(username, public_key)
        if target is not None and (
            target.container_id != login.container_id or target.login_user != login.login_user
        ):
            logger.error(
                "SSH authorizer answered %r with container %s as %s; refused",
                username,
                target.container_id,
                target.login_user,
            )
            return None
        return target

    def _refused(self) -> None:
        self._refusals += 1
        if self._refusals >= MAX_AUTH_TRIES and self._connection is not None:
            logger.info(
                "SSH connection from %s dropped after %d refused keys", self._peer, MAX_AUTH_TRIES
            )
            self._connection.disconnect(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                f"berth: too many authentication failures ({MAX_AUTH_TRIES} keys refused)",
            )

    def auth_completed(self) -> None:
        if self._granted is None:  # Cannot happen: public keys are the only method offered.
            logger.error("SSH login from %s completed without a granted key; closed", self._peer)
            if self._connection is not None:
                self._connection.close()
            return
        granted, username, fingerprint = self._granted
        self._decisions.clear()
        if isinstance(granted, SeveralTargets):
            self._choices = granted
            self._label = f"user {username!r} from {self._peer} -> several containers"
            logger.info("SSH login with a key that opens several containers: %s", self._label)
            self._choice_timer = asyncio.get_running_loop().call_later(
                CHOICE_SECONDS, self._disconnect_with_choices
            )
            return
        self._target = granted
        self._label = f"user {username!r} from {self._peer} -> container {granted.container_id}"
        self._gateway.logged_in(self)
        logger.info(
            "SSH login: %s (task %s) as %s, key %s",
            self._label,
            granted.task_id[:12],
            granted.login_user,
            fingerprint,
        )

    def _disconnect_with_choices(self) -> None:
        if self._connection is not None and self._choices is not None and not self._closed:
            one_line = several_targets_line(self._choices)
            self._connection.disconnect(asyncssh.DISC_BY_APPLICATION, one_line)

    async def recheck_access(self) -> None:
        """Disconnect this login if its access was revoked (the gateway calls this on events
        that name its container); a failed check keeps it and is logged."""
        target = self._target
        if target is None or self._closed:
            return
        try:
            allowed = await self._gateway.authorizer.recheck(target)
        except Exception:
            logger.exception("SSH access recheck failed: %s", self._label)
            return
        if allowed or self._closed or self._connection is None:
            return
        logger.info("SSH access revoked, connection cut: %s", self._label)
        self._closed = True
        reason = (
            f"berth: SSH access to container {target.container_id} was revoked "
            "(SSH disabled, container stopped or deleted, or key removed)"
        )
        # Sessions hear it first: a client whose session channel closes may exit before it
        # reads the disconnect's reason.
        for session in list(self._sessions):
            session.say(reason)
        self._connection.disconnect(asyncssh.DISC_BY_APPLICATION, reason)

    # -- channels --------------------------------------------------------------------------

    def session_requested(self) -> Coroutine[Any, Any, asyncssh.SSHServerSession[bytes]]:
        return self._open_session()

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Coroutine[Any, Any, asyncssh.SSHTCPSession[bytes]]:
        return self._open_forward(dest_host, dest_port)

    async def _recheck(self, what: str) -> SshTarget:
        """The login's target if it may still be used; refuses the channel otherwise."""
        if self._choices is not None:
            message = several_targets_line(self._choices)
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, message)
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

    async def _wake(self, target: SshTarget) -> SshTarget:
        """Resume the target's task if it is paused, before a channel uses it."""
        try:
            await self._gateway.authorizer.wake(target)
        except Exception:
            logger.exception("SSH wake of a paused container failed: %s", self._label)
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED,
                f"berth could not resume container {target.container_id}; try again",
            ) from None
        return target

    async def _open_session(self) -> asyncssh.SSHServerSession[bytes]:
        if self._choices is not None:
            if self._choice_timer is not None:
                self._choice_timer.cancel()
            return NoticeSession(several_targets_message(self._choices))
        target = await self._wake(await self._recheck("session"))
        session = SshSession(self._gateway, target, self._label)
        self._sessions.add(session)
        return session

    async def _open_forward(self, dest_host: str, dest_port: int) -> asyncssh.SSHTCPSession[bytes]:
        if dest_host.lower() not in FORWARD_HOSTS:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                f"berth forwards only to ports of the container itself, not to {dest_host!r}: "
                "use -L <local-port>:localhost:<container-port>",
            )
        target = await self._wake(await self._recheck("port forward"))
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
