"""The SSH gateway's host key: made once, kept, never silently replaced.

Clients pin the host key on first use, so a new key makes every one of them warn (or refuse,
with `StrictHostKeyChecking=yes`); hence a key that cannot be read is an error, not a reason
to make another.
"""

from __future__ import annotations

import logging
from pathlib import Path

import asyncssh

from berth.private_files import create_private_file

logger = logging.getLogger(__name__)


class SshGatewayError(Exception):
    """The gateway cannot start (unreadable host key, port in use...)."""


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """The gateway's host key: read from `path`, or generated there (ed25519) if missing.

    Creation is atomic and never replaces a key (`berth.private_files.create_private_file`),
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
    key = asyncssh.generate_private_key("ssh-ed25519", comment="berth ssh gateway")
    if create_private_file(path, key.export_private_key("openssh")):
        logger.info("generated the SSH gateway host key at %s", path)
    # Read back either way: when another starter won, its key is the one to use.
    return asyncssh.read_private_key(str(path))


def _restrict(path: Path) -> None:
    """Make a private key readable by its owner only (it may have been copied carelessly)."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning("SSH host key %s had mode %o; setting 0600", path, mode)
        path.chmod(0o600)
