"""The SSH gateway's host key: made once, kept, never silently replaced.

Clients pin the host key on first use, so a new key makes every one of them warn (or refuse,
with `StrictHostKeyChecking=yes`); hence a key that cannot be read is an error, not a reason
to make another.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

import asyncssh

logger = logging.getLogger(__name__)


class SshGatewayError(Exception):
    """The gateway cannot start (unreadable host key, port in use...)."""


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
