"""OpenSSH's `ssh` against a berth server's SSH gateway, as a user runs it: a key of its
own, a known-hosts file of the test's, no agent and no prompts."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.support.server import BerthServer


def ssh_argv(
    server: BerthServer,
    key: Path,
    user: str,
    *command: str,
    known_hosts: Path,
    strict: bool = False,
    options: Sequence[str] = (),
) -> list[str]:
    return [
        "ssh",
        "-p",
        str(server.ssh_port),
        "-i",
        str(key),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        f"StrictHostKeyChecking={'yes' if strict else 'accept-new'}",
        *options,
        f"{user}@127.0.0.1",
        *command,
    ]


def ssh(
    server: BerthServer,
    key: Path,
    user: str,
    *command: str,
    known_hosts: Path,
    strict: bool = False,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ssh_argv(server, key, user, *command, known_hosts=known_hosts, strict=strict),
        capture_output=True,
        text=True,
        timeout=60,
    )
