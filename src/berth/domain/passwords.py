"""Human passwords: argon2id hashes, checked in the same time whether or not a user matches.

Hashes come from argon2-cffi's `PasswordHasher` with its defaults (argon2id, RFC 9106's
low-memory profile: 3 passes over 64 MiB, 4 lanes) and are stored as the encoded
`$argon2id$v=19$m=...,t=...,p=...$salt$hash` string, which carries its own salt and
parameters. When the library's defaults grow, `check_password` says a stored hash needs
rehashing and the sign-in that proved the password writes a new one. Hashes written before
argon2 (`scrypt$<salt>$<digest>`) are still checked, and always need rehashing.

A check with no stored hash (an unknown e-mail, a user without a password) runs against a
dummy hash of the same parameters, so its time does not tell whether the user exists.

Hashing and checking take a noticeable fraction of a second of CPU and 64 MiB each: callers
on an event loop run them in a worker thread.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from berth.domain.errors import Invalid

MIN_LENGTH = 8
MAX_LENGTH = 1024
"""Characters. Long enough for any passphrase; bounded so a request cannot make hashing
read megabytes."""

_LEGACY_SCRYPT = "scrypt$"

_hasher = PasswordHasher()
"""Holds only the hashing parameters: no state changes after construction."""


@dataclass(frozen=True)
class PasswordCheck:
    matches: bool
    needs_rehash: bool
    """The password matched a hash made with older parameters or scheme: store a new one."""


def check_new_password(password: str) -> None:
    """Refuse a password that breaks the length rule (`Invalid` naming the field)."""
    if len(password) < MIN_LENGTH:
        raise Invalid(f"password: must be at least {MIN_LENGTH} characters", field="password")
    if len(password) > MAX_LENGTH:
        raise Invalid(f"password: must be at most {MAX_LENGTH} characters", field="password")


def hash_password(password: str) -> str:
    """The encoded argon2id hash of `password` (a new random salt each time). Blocking."""
    return _hasher.hash(password)


def check_password(password: str, stored: str | None) -> PasswordCheck:
    """Whether `password` matches the `stored` hash; None checks against a dummy hash, in
    the same time, and never matches. Blocking."""
    if stored is None:
        _verify_argon2(password, _dummy_hash())
        return PasswordCheck(matches=False, needs_rehash=False)
    if stored.startswith(_LEGACY_SCRYPT):
        matches = _verify_scrypt(password, stored)
        return PasswordCheck(matches=matches, needs_rehash=matches)
    matches = _verify_argon2(password, stored)
    outdated = matches and _hasher.check_needs_rehash(stored)
    return PasswordCheck(matches=matches, needs_rehash=outdated)


def _verify_argon2(password: str, stored: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _verify_scrypt(password: str, stored: str) -> bool:
    """The scheme berth used before argon2 (scrypt, n=2^14, r=8, p=1, 16-byte salt)."""
    try:
        _scheme, salt_hex, digest_hex = stored.split("$")
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return hmac.compare_digest(digest.hex(), digest_hex)


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password with the current parameters, made once per process."""
    return _hasher.hash(secrets.token_urlsafe(16))
