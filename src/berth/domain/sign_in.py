"""Humans sign in with an e-mail address and a password, for a session token.

The token is the one `berth admin token` issues (`TokenSigner`), so everything that takes a
human's session token takes it. The rules:

- One answer for every failure: a wrong password, an unknown e-mail address and a user who
  has no password all raise `Unauthenticated(SIGN_IN_REFUSED)`, and all of them cost one
  password check (against a dummy hash when there is no stored one), so neither the message
  nor the time tells which addresses are users.
- Failures are counted per e-mail address (`SignInFailures`, compared without case): past its
  burst an address is refused with `TooManyAttempts` before any password is checked, the
  right one included, until its bucket refills. This bounds guessing at one account from
  many client addresses; the API's rate limit already bounds each client address.
- A password that matched a hash made with older parameters (or the older scrypt scheme) is
  rehashed and stored, unless the password was changed meanwhile.

Passwords are set by the operator (`set_password`, `berth admin set-password`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from berth.domain.context import Domain
from berth.domain.errors import NotFound, TooManyAttempts, Unauthenticated
from berth.domain.passwords import check_new_password, check_password, hash_password
from berth.store.models import User
from berth.token_buckets import TokenBuckets

SIGN_IN_REFUSED = "wrong e-mail address or password"


class SignInFailures:
    """Failed sign-ins per e-mail address, in this process's memory.

    Each address has a token bucket of `burst` attempts refilled at `per_second`; every
    attempt takes a token and a successful one forgets the bucket, so only failures add up.
    A rate or burst of 0 turns the limit off. Buckets are bounded in number (`TokenBuckets`).
    """

    def __init__(self, *, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets = (
            TokenBuckets(rate=per_second, burst=burst) if per_second > 0 and burst > 0 else None
        )

    def charge(self, email: str) -> None:
        """Count an attempt for `email` before its password is checked (so concurrent
        attempts cannot all slip past the limit); raise `TooManyAttempts` if none is left."""
        if self._buckets is None:
            return
        decision = self._buckets.take(_key(email))
        if not decision.allowed:
            raise TooManyAttempts(
                f"too many failed sign-ins for this e-mail address: {self.burst} at most, then "
                f"one every {1 / self.per_second:g} s (BERTH_SIGN_IN_FAILURE_BURST, "
                f"BERTH_SIGN_IN_FAILURES_PER_SECOND); retry after {decision.retry_after} s",
                retry_after=decision.retry_after,
            )

    def clear(self, email: str) -> None:
        """The attempt succeeded: `email`'s earlier failures are forgiven."""
        if self._buckets is not None:
            self._buckets.forget(_key(email))


def _key(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class SignedIn:
    token: str
    user_id: str
    expires_at: datetime


async def sign_in(
    domain: Domain, *, email: str, password: str, failures: SignInFailures
) -> SignedIn:
    """A session token for the user with this e-mail address and password (see the module
    docstring for the failures). The address is compared exactly as the user was created."""
    failures.charge(email)
    async with domain.store.reading() as session:
        user = await session.scalar(select(User).where(User.email == email.strip()))
        user_id = user.id if user is not None else None
        stored = user.password_hash if user is not None else None
    result = await asyncio.to_thread(check_password, password, stored)
    if user_id is None or stored is None or not result.matches:
        raise Unauthenticated(SIGN_IN_REFUSED)
    failures.clear(email)
    if result.needs_rehash:
        await _store_hash(domain, user_id, await asyncio.to_thread(hash_password, password), stored)
    issued = domain.tokens.issue_session(user_id)
    return SignedIn(token=issued.token, user_id=user_id, expires_at=issued.expires_at)


async def set_password(domain: Domain, user_id: str, password: str) -> None:
    """Give the user `password` (replacing any), after checking the length rule. Session
    tokens already issued stay valid until they expire."""
    check_new_password(password)
    hashed = await asyncio.to_thread(hash_password, password)
    async with domain.store.transaction() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        user.password_hash = hashed


async def _store_hash(domain: Domain, user_id: str, hashed: str, replacing: str) -> None:
    """Store a rehashed password unless the password changed since it was checked."""
    async with domain.store.transaction() as session:
        await session.execute(
            update(User)
            .where(User.id == user_id, User.password_hash == replacing)
            .values(password_hash=hashed)
        )
