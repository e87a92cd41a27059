"""Human session tokens: HS256 JWTs signed with the data directory's `token.key`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from berth.domain.errors import Unauthenticated


class TokenSigner:
    def __init__(self, key: bytes, *, ttl_seconds: int) -> None:
        self._key = key
        self._ttl = ttl_seconds

    def issue(self, user_id: str, *, ttl_seconds: int | None = None) -> str:
        now = datetime.now(UTC)
        ttl = self._ttl if ttl_seconds is None else ttl_seconds
        claims = {"sub": user_id, "typ": "session", "iat": now, "exp": now + timedelta(seconds=ttl)}
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str) -> str:
        """Return the token's user id; raise `Unauthenticated` if it is invalid or expired."""
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"])
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("session token expired; get a new one") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("invalid session token") from exc
        if claims.get("typ") != "session" or not isinstance(claims.get("sub"), str):
            raise Unauthenticated("invalid session token")
        return str(claims["sub"])
