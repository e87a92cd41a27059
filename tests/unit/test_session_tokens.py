"""Session tokens: a verified token is remembered until it expires, and no longer."""

from __future__ import annotations

import pytest

from berth.domain import tokens
from berth.domain.errors import Unauthenticated
from berth.domain.tokens import TokenSigner


def test_a_token_is_decoded_once_and_checked_again_once_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = TokenSigner(b"k" * 32, ttl_seconds=60)
    token = signer.issue("usr_1")
    decoded: list[str] = []
    decode = signer._decode

    def counting(value: str) -> tuple[str, float]:
        decoded.append(value)
        return decode(value)

    monkeypatch.setattr(signer, "_decode", counting)
    assert [signer.verify(token) for _ in range(5)] == ["usr_1"] * 5
    assert decoded == [token]
    real_time = tokens.time.time
    monkeypatch.setattr(tokens.time, "time", lambda: real_time() + 61)
    signer.verify(token)  # past its expiry the token is decoded (and its expiry checked) again
    assert decoded == [token, token]


def test_an_expired_token_is_refused() -> None:
    signer = TokenSigner(b"k" * 32, ttl_seconds=60)
    token = signer.issue("usr_1", ttl_seconds=-1)
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="expired"):
            signer.verify(token)


def test_a_forged_token_is_refused_every_time() -> None:
    signer = TokenSigner(b"k" * 32, ttl_seconds=60)
    forged = TokenSigner(b"x" * 32, ttl_seconds=60).issue("usr_1")
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="invalid"):
            signer.verify(forged)
