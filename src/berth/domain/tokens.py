"""Human session tokens: HS256 JWTs signed with the data directory's `token.key`."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from berth.domain.errors import Unauthenticated

VERIFIED_TOKENS_KEPT = 1024


@dataclass(frozen=True)
class SessionToken:
    token: str
    expires_at: datetime
    """When the token stops being accepted (whole seconds, as the token itself says)."""


class TokenSigner:
    def __init__(self, key: bytes, *, ttl_seconds: int) -> None:
        self._key = key
        self._ttl = ttl_seconds
        self._verified: OrderedDict[str, tuple[str, float]] = OrderedDict()
        """token -> (user id, expiry as a Unix time): a token is immutable and signed, so
        its verification holds until it expires; only the expiry is checked again."""

    def issue(self, user_id: str, *, ttl_seconds: int | None = None) -> str:
        return self.issue_session(user_id, ttl_seconds=ttl_seconds).token

    def issue_session(self, user_id: str, *, ttl_seconds: int | None = None) -> SessionToken:
        """A session token for `user_id`, valid for `ttl_seconds` (default: the signer's)."""
        now = datetime.now(UTC).replace(microsecond=0)
        ttl = self._ttl if ttl_seconds is None else ttl_seconds
        expires_at = now + timedelta(seconds=ttl)
        claims = {"sub": user_id, "typ": "session", "iat": now, "exp": expires_at}
        return SessionToken(jwt.encode(claims, self._key, algorithm="HS256"), expires_at)

    def issue_invitation(self, user_id: str, state: str, *, ttl_seconds: int) -> SessionToken:
        """A token for setting `user_id`'s password once: `state` fingerprints the password
        the user has now, so the token dies when a password is set. It is no session token
        (`verify` refuses it)."""
        now = datetime.now(UTC).replace(microsecond=0)
        expires_at = now + timedelta(seconds=ttl_seconds)
        claims = {"sub": user_id, "typ": "invite", "st": state, "iat": now, "exp": expires_at}
        return SessionToken(jwt.encode(claims, self._key, algorithm="HS256"), expires_at)

    def verify_invitation(self, token: str) -> tuple[str, str]:
        """(user id, password state) of an invitation token; `Unauthenticated` otherwise."""
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"])
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("this invitation expired; ask for a new one") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("this invitation link is not valid") from exc
        if claims.get("typ") != "invite" or not isinstance(claims.get("sub"), str):
            raise Unauthenticated("this invitation link is not valid")
        return str(claims["sub"]), str(claims.get("st", ""))

    def verify(self, token: str) -> str:
        """Return the token's user id; raise `Unauthenticated` if it is invalid or expired.
        A token verified before is only checked for expiry (a session client sends the same
        token on every request, and decoding and checking it is a large part of one)."""
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            self._verified.move_to_end(token)
            return known[0]
        user_id, expires = self._decode(token)
        self._verified[token] = (user_id, expires)
        while len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)
        return user_id

    def _decode(self, token: str) -> tuple[str, float]:
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"])
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("session token expired; get a new one") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("invalid session token") from exc
        if claims.get("typ") != "session" or not isinstance(claims.get("sub"), str):
            raise Unauthenticated("invalid session token")
        return str(claims["sub"]), float(claims.get("exp", 0))  # no expiry: never kept
