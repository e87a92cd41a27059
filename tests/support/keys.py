"""SSH keys for tests, made with OpenSSH's own tools."""

from __future__ import annotations

import subprocess
from pathlib import Path


def new_public_key(tmp_path: Path, name: str = "id") -> str:
    """A new ed25519 key pair in `tmp_path/name` (and `.pub`), made by `ssh-keygen` as a user
    would; the public key's line. The private key is there for `ssh -i`."""
    path = tmp_path / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return (tmp_path / f"{name}.pub").read_text().strip()
