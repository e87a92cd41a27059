"""The dashboard's sign-in state and its protection against cross-site requests.

- The session cookie (`berth_session`) holds the session token `POST /v1/auth/sign-in` would
  answer: HttpOnly, SameSite=Lax, Secure when the request came over HTTPS, and expiring with
  the token. Every page resolves it to an `Actor` with the API's own `authenticate`.
- CSRF: every state-changing request (form or fetch) carries a synchronizer token, a MAC of
  the session token (or, before sign-in, of a random pre-session cookie) under a key of this
  process, in the form field `csrf` or the header `X-CSRF-Token`. A request without the
  right one is refused with 403 before anything happens. Binding the token to the session,
  rather than echoing a cookie (double submit), keeps it safe from a sibling host able to
  set cookies for berth's domain (the gateway serves workloads on subdomains).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from berth.domain import operators
from berth.domain.auth import Actor, authenticate, resolve_actor
from berth.domain.context import Domain
from berth.domain.errors import DomainError

SESSION_COOKIE = "berth_session"
PRESESSION_COOKIE = "berth_presession"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
_CSRF_KEY = secrets.token_bytes(32)
"""Per process: a restart makes open forms stale (a reload fixes them), never guessable."""


class SignInRequired(Exception):
    """The request has no valid session: pages redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__("sign in first")
        self.next_path = next_path


class CsrfRefused(Exception):
    """A state-changing request without the right CSRF token (answered 403)."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in human: the actor every domain call takes, and their CSRF token."""

    actor: Actor
    csrf: str
    operator: bool = False
    """A human operator of the company (`berth.domain.operators`): the Users pages."""

    @property
    def user_id(self) -> str:
        return self.actor.user_id


def domain_of(request: Request) -> Domain:
    domain: Domain = request.app.state.domain
    return domain


def csrf_token_for(value: str) -> str:
    return hmac.new(_CSRF_KEY, b"csrf:" + value.encode(), hashlib.sha256).hexdigest()


async def viewer(request: Request) -> Viewer:
    """The signed-in human, or `SignInRequired` (the session is missing, expired, or its
    user is gone)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired(_here(request))
    domain = domain_of(request)
    try:
        principal = await authenticate(domain, token)
        if principal.kind != "session":
            raise SignInRequired(_here(request))
        actor = await resolve_actor(domain, principal, None)
        operator = await operators.is_operator(domain, actor.user_id)
    except DomainError as exc:
        raise SignInRequired(_here(request)) from exc
    return Viewer(actor=actor, csrf=csrf_token_for(token), operator=operator)


async def form_of(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body as a dict (the last of repeated fields;
    `form_lists` keeps them all)."""
    return {key: values[-1] for key, values in (await form_lists(request)).items()}


async def form_lists(request: Request) -> dict[str, list[str]]:
    body = (await request.body()).decode("utf-8", "replace")
    return parse_qs(body, keep_blank_values=True)


async def check_csrf(request: Request, expected: str) -> None:
    """Refuse (`CsrfRefused`) unless the header or the form field carries `expected`."""
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        given = (await form_lists(request)).get(CSRF_FIELD, [""])[-1]
    if not given or not hmac.compare_digest(given, expected):
        raise CsrfRefused()


async def changing(request: Request) -> Viewer:
    """The signed-in human for a state-changing request, its CSRF token checked."""
    signed_in = await viewer(request)
    await check_csrf(request, signed_in.csrf)
    return signed_in


def presession(request: Request) -> tuple[str, bool]:
    """The pre-session nonce the sign-in form's CSRF token is bound to; True when new."""
    value = request.cookies.get(PRESESSION_COOKIE)
    if value:
        return value, False
    return secrets.token_urlsafe(24), True


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_presession(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        PRESESSION_COOKIE,
        value,
        httponly=True,
        samesite="lax",
        secure=secure(request),
        path="/",
    )


def set_session(response: Response, request: Request, token: str, expires_at: datetime) -> None:
    max_age = max(0, int((expires_at - datetime.now(UTC)).total_seconds()))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure(request),
        path="/",
    )
    response.delete_cookie(PRESESSION_COOKIE, path="/")


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure(request)
    )


def sign_in_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/sign-in?next={quote(next_path, safe='/')}", status_code=303)


def safe_next(value: str | None) -> str:
    """Only a path of this site (never `//host` or a URL): no open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")
