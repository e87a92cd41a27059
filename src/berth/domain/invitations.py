"""One-time invitation links: how a new human sets their first password in the dashboard.

`berth admin invite` makes a signed token naming the user and a fingerprint of the password
they have now (none, for a new user). Setting a password through it changes that
fingerprint, so the link works once; it also expires (`INVITATION_TTL_SECONDS`). Nothing is
stored: the token carries all of it, signed with the session tokens' key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from berth.domain.accounts import get_user
from berth.domain.context import Domain
from berth.domain.errors import NotFound, Unauthenticated
from berth.domain.sign_in import set_password

INVITATION_TTL_SECONDS = 7 * 24 * 3600
USED = "this invitation was already used; ask for a new one"


@dataclass(frozen=True)
class Invitation:
    user_id: str
    email: str
    token: str
    expires_at: datetime


def _state(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "no password").encode()).hexdigest()[:24]


async def invite(
    domain: Domain, user_id: str, *, ttl_seconds: int = INVITATION_TTL_SECONDS
) -> Invitation:
    user, _kit = await get_user(domain, user_id)
    issued = domain.tokens.issue_invitation(
        user.id, _state(user.password_hash), ttl_seconds=ttl_seconds
    )
    return Invitation(user.id, user.email, issued.token, issued.expires_at)


async def invited_user(domain: Domain, token: str) -> Invitation:
    """Whom a still usable invitation is for; `Unauthenticated` when it is invalid, expired
    or used."""
    user_id, state = domain.tokens.verify_invitation(token)
    try:
        user, _kit = await get_user(domain, user_id)
    except NotFound as exc:
        raise Unauthenticated("this invitation link is not valid") from exc
    if state != _state(user.password_hash):
        raise Unauthenticated(USED)
    return Invitation(user.id, user.email, token, datetime.min)


async def accept(domain: Domain, token: str, password: str) -> Invitation:
    """Set the invited user's password (the length rule of `set_password` applies). Two
    concurrent acceptances may both pass the check; each sets a password the invitee
    chose, and the link is dead after either."""
    invited = await invited_user(domain, token)
    await set_password(domain, invited.user_id, password)
    return invited
