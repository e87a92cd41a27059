"""Signing in by password: the token, the one refusal, the per-address failure limit, and
hashes that are upgraded when a sign-in proves the password. Real store, real argon2."""

from __future__ import annotations

import hashlib
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher

from berth.domain import accounts
from berth.domain.auth import authenticate
from berth.domain.context import Domain
from berth.domain.errors import Invalid, NotFound, TooManyAttempts, Unauthenticated
from berth.domain.sign_in import SIGN_IN_REFUSED, SignInFailures, set_password, sign_in
from berth.store.models import User

PASSWORD = "correct horse battery staple"


def unlimited() -> SignInFailures:
    return SignInFailures(per_second=0, burst=0)


async def _user_with_password(domain: Domain, email: str = "ada@example.com") -> str:
    user, _kit = await accounts.create_user(domain, email=email)
    await set_password(domain, user.id, PASSWORD)
    return user.id


async def _stored_hash(domain: Domain, user_id: str) -> str | None:
    async with domain.store.reading() as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user.password_hash


async def test_the_right_password_gives_a_session_token_for_the_user(domain: Domain) -> None:
    user_id = await _user_with_password(domain)
    signed_in = await sign_in(
        domain, email="ada@example.com", password=PASSWORD, failures=unlimited()
    )
    assert signed_in.user_id == user_id
    principal = await authenticate(domain, signed_in.token)
    assert (principal.user_id, principal.kind) == (user_id, "session")
    lifetime = (signed_in.expires_at - datetime.now(UTC)).total_seconds()
    assert 12 * 3600 - 60 < lifetime <= 12 * 3600


async def test_the_password_is_stored_only_as_an_argon2id_hash(domain: Domain) -> None:
    user_id = await _user_with_password(domain)
    stored = await _stored_hash(domain, user_id)
    assert stored is not None and stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_a_wrong_password_an_unknown_address_and_no_password_are_refused_alike(
    domain: Domain,
) -> None:
    await _user_with_password(domain)
    await accounts.create_user(domain, email="nopass@example.com")
    attempts = [
        ("ada@example.com", "wrong password"),
        ("nobody@example.com", PASSWORD),
        ("nopass@example.com", ""),
        ("nopass@example.com", PASSWORD),
    ]
    for email, password in attempts:
        with pytest.raises(Unauthenticated) as refused:
            await sign_in(domain, email=email, password=password, failures=unlimited())
        assert (refused.value.message, refused.value.field) == (SIGN_IN_REFUSED, None)


async def test_an_unknown_address_costs_the_same_password_check_as_a_wrong_password(
    domain: Domain,
) -> None:
    """Without the dummy hash an unknown address would be answered in about a millisecond,
    a hundred times sooner than a wrong password: a list of users for the asking."""
    await _user_with_password(domain)

    async def seconds(email: str) -> float:
        started = time.perf_counter()
        with pytest.raises(Unauthenticated):
            await sign_in(domain, email=email, password="wrong", failures=unlimited())
        return time.perf_counter() - started

    wrong = statistics.median([await seconds("ada@example.com") for _ in range(3)])
    unknown = statistics.median([await seconds("nobody@example.com") for _ in range(3)])
    assert unknown > wrong / 4, (unknown, wrong)


async def test_failures_per_address_are_limited_even_for_the_right_password(
    domain: Domain,
) -> None:
    await _user_with_password(domain)
    await _user_with_password(domain, "grace@example.com")
    failures = SignInFailures(per_second=0.01, burst=3)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await sign_in(domain, email="ada@example.com", password="guess", failures=failures)
    for email, password in (("ada@example.com", PASSWORD), ("ADA@example.com ", "guess")):
        with pytest.raises(TooManyAttempts) as limited:
            await sign_in(domain, email=email, password=password, failures=failures)
        assert 1 <= limited.value.retry_after <= 100
        assert "BERTH_SIGN_IN_FAILURE_BURST" in limited.value.message
    # Another address is not affected, nor is an address nobody has.
    await sign_in(domain, email="grace@example.com", password=PASSWORD, failures=failures)
    with pytest.raises(TooManyAttempts):
        for _ in range(4):
            with pytest.raises(Unauthenticated):
                await sign_in(domain, email="x@example.com", password="guess", failures=failures)


async def test_a_successful_sign_in_forgives_earlier_failures(domain: Domain) -> None:
    await _user_with_password(domain)
    failures = SignInFailures(per_second=0.01, burst=3)
    for _round in range(3):
        for _ in range(2):
            with pytest.raises(Unauthenticated):
                await sign_in(domain, email="ada@example.com", password="typo", failures=failures)
        await sign_in(domain, email="ada@example.com", password=PASSWORD, failures=failures)


def _weaker_argon2(password: str) -> str:
    return PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(password)


def _scrypt_as_before_argon2(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


@pytest.mark.parametrize("old_hash", [_weaker_argon2, _scrypt_as_before_argon2])
async def test_an_outdated_hash_is_replaced_when_a_sign_in_proves_the_password(
    domain: Domain, old_hash: Callable[[str], str]
) -> None:
    user, _kit = await accounts.create_user(domain, email="old@example.com")
    async with domain.store.transaction() as session:
        row = await session.get(User, user.id)
        assert row is not None
        row.password_hash = old_hash(PASSWORD)
    with pytest.raises(Unauthenticated):
        await sign_in(domain, email="old@example.com", password="wrong", failures=unlimited())
    await sign_in(domain, email="old@example.com", password=PASSWORD, failures=unlimited())
    upgraded = await _stored_hash(domain, user.id)
    assert upgraded is not None and upgraded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    await sign_in(domain, email="old@example.com", password=PASSWORD, failures=unlimited())


async def test_setting_a_password_checks_its_length_and_the_user(domain: Domain) -> None:
    user, _kit = await accounts.create_user(domain, email="ada@example.com")
    with pytest.raises(Invalid, match="password: must be at least 8 characters") as short:
        await set_password(domain, user.id, "short")
    assert short.value.field == "password"
    with pytest.raises(Invalid, match="at most 1024"):
        await set_password(domain, user.id, "x" * 1025)
    assert await _stored_hash(domain, user.id) is None
    with pytest.raises(NotFound):
        await set_password(domain, "u_missing", PASSWORD)
