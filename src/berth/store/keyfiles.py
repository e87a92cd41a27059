"""Key material kept in the data directory: created once (mode 0600), then only read.

The writing is `berth.private_files`' create-if-absent, so servers and admin commands that
start at the same time end up with one key that all of them use.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from berth.private_files import read_or_create_private_file


class KeyFileError(Exception):
    """A key file exists but holds nothing usable; berth will not silently replace it."""


def load_or_create_key(path: Path, *, nbytes: int = 32) -> bytes:
    """The key stored at `path`, a new random one (`nbytes` of entropy) on first use.

    An existing empty file is an error, not a reason to make a new key: the key encrypts
    stored secrets or signs live tokens, and a new one would make them unreadable.
    """
    value = read_or_create_private_file(
        path, lambda: secrets.token_urlsafe(nbytes).encode()
    ).strip()
    if not value:
        raise KeyFileError(f"the key file {path} is empty; restore it from a backup")
    return value
