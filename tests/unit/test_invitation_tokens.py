"""Invitation tokens and session tokens are signed with the same key, so neither may pass
for the other: an invitation link is no session, and a session token sets no password."""

from __future__ import annotations

import pytest

from berth.domain.errors import Unauthenticated
from berth.domain.tokens import TokenSigner

SIGNER = TokenSigner(b"k" * 32, ttl_seconds=3600)


def test_an_invitation_is_refused_as_a_session_token() -> None:
    invitation = SIGNER.issue_invitation("usr_1", "state", ttl_seconds=60).token
    assert SIGNER.verify_invitation(invitation) == ("usr_1", "state")
    with pytest.raises(Unauthenticated):
        SIGNER.verify(invitation)


def test_a_session_token_is_refused_as_an_invitation() -> None:
    with pytest.raises(Unauthenticated, match="not valid"):
        SIGNER.verify_invitation(SIGNER.issue("usr_1"))


def test_an_expired_invitation_says_so() -> None:
    expired = SIGNER.issue_invitation("usr_1", "state", ttl_seconds=-10).token
    with pytest.raises(Unauthenticated, match="expired"):
        SIGNER.verify_invitation(expired)
