"""SSH keys for tests, made with OpenSSH's own tools (or, for keys only added, in process)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def new_public_key(tmp_path: Path, name: str = "id") -> str:
    """A new ed25519 key pair in `tmp_path/name` (and `.pub`), made by `ssh-keygen` as a user
    would; the public key's line. The private key is there for `ssh -i`."""
    path = tmp_path / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return (tmp_path / f"{name}.pub").read_text().strip()


def public_key_only() -> str:
    """A new ed25519 public key's OpenSSH line, made in the test's process: for tests that
    need many keys to add, never one to log in with (no private key is kept)."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return line.decode()
