"""Who may open SSH sessions into which container: the contract between the SSH gateway and
whatever knows containers, keys and their state (the domain).

SSH carries no host name, so one shared gateway cannot route `root@<id>.<domain>` by host:
the container is named in the SSH *user name* instead, `<container-id>` (log in as root,
that is the image's default user) or `<user>.<container-id>` (log in as `<user>`). The user
name `root` (what `ssh root@<hostname>` sends, whatever the host name) names no container:
the offered key does, when exactly one container accepts it. The gateway asks an
`SshAuthorizer` at every login, again at every channel it opens, and again whenever access
may have been revoked (SSH disabled, container stopped or deleted, key removed), so revoked
access is never granted later on an old connection and open sessions are cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from berth.runtime.base import TaskId

ROOT_USER = "root"
"""The login user when the SSH user name names only the container."""

_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_LOGIN_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
"""POSIX-portable user names (plus dots), as `useradd` accepts them; never a leading `-`,
so a name can never be taken for an option by `su`."""


@dataclass(frozen=True)
class SshLogin:
    """What an SSH user name asks for: a container and the user to be inside it."""

    container_id: str
    login_user: str


def parse_ssh_username(username: str) -> SshLogin | None:
    """`<container-id>` or `<user>.<container-id>`; None when it is neither.

    The container id is what follows the *last* dot, so user names may contain dots
    (`first.last.<id>`) while container ids never do.
    """
    user, dot, container_id = username.rpartition(".")
    if not _CONTAINER_ID.fullmatch(container_id):
        return None
    if not dot:
        return SshLogin(container_id=container_id, login_user=ROOT_USER)
    if not _LOGIN_USER.fullmatch(user):
        return None
    return SshLogin(container_id=container_id, login_user=user)


@dataclass(frozen=True)
class SeveralTargets:
    """A key that opens several containers, offered as `root@...`: the login is refused
    with one command per container, each of which names it."""

    ssh_commands: tuple[str, ...]


@dataclass(frozen=True)
class SshTarget:
    """Where an authorized SSH login goes: the container, its running task, the user."""

    container_id: str
    task_id: TaskId
    login_user: str
    """`root` (the image's default user) unless the user name was `<user>.<container-id>`."""


class SshAuthorizer(Protocol):
    """Decides SSH access; implemented by the domain, injected into `SshGateway`.

    Implementations answer from current state on every call (no caching across calls):
    the gateway calls them exactly when access must be re-decided.
    """

    async def authorize(self, username: str, public_key_openssh: str) -> SshTarget | None:
        """The target for a login attempt, or None to refuse it.

        `username` is the SSH user name as the client sent it (see `parse_ssh_username`;
        the gateway only calls this for names that parse, and refuses a target whose
        container or login user differs from what the name asks for).
        `public_key_openssh` is the offered key as `<type> <base64>` without a comment:
        compare keys by those two fields. Grant only when the key is one selected for that
        container, the container has SSH enabled, and its task is running.
        """

    async def authorize_key(self, public_key_openssh: str) -> SshTarget | SeveralTargets | None:
        """For the user name `root`: where the offered key may log in as root.

        The target when exactly one container accepts the key under the rules of
        `authorize`; `SeveralTargets` when more do; None when none does.
        """

    async def recheck(self, target: SshTarget) -> bool:
        """Whether `target` may still be used (SSH still enabled, the same task running).

        Called whenever a session or port forward opens on an authorized connection, with
        the very object `authorize` returned for it: an implementation may return a subclass
        of `SshTarget` that carries what it needs to re-decide (e.g. the key's fingerprint).
        """

    async def wake(self, target: SshTarget) -> None:
        """Make `target`'s task take commands: resume it if it is paused. Called when a
        session or port forward opens, after `recheck` allowed it."""
