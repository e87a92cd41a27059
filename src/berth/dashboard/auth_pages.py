"""Signing in and out: the domain's `sign_in` (with its per-address failure limit) for a
session token kept in the session cookie."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from berth.dashboard.render import page
from berth.dashboard.session import (
    SESSION_COOKIE,
    check_csrf,
    clear_session,
    csrf_token_for,
    form_of,
    presession,
    safe_next,
    set_presession,
    set_session,
    viewer,
)
from berth.dashboard.session import domain_of as domain_for
from berth.domain.errors import TooManyAttempts, Unauthenticated
from berth.domain.sign_in import SignInFailures, sign_in

router = APIRouter(include_in_schema=False)


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str = "/") -> Response:
    nonce, new = presession(request)
    response = await page(
        request,
        "sign_in.html",
        None,
        csrf=csrf_token_for(nonce),
        next=safe_next(next),
        email="",
        error=None,
    )
    if new:
        set_presession(response, request, nonce)
    return response


@router.post("/sign-in")
async def sign_in_submit(request: Request) -> Response:
    nonce, _new = presession(request)
    await check_csrf(request, csrf_token_for(nonce))
    form = await form_of(request)
    email, password = form.get("email", "").strip(), form.get("password", "")
    next_path = safe_next(form.get("next"))
    failures: SignInFailures = request.app.state.sign_in_failures
    error: str | None = None
    status = 401
    if not email or not password:
        error, status = "Enter your e-mail address and your password.", 400
    else:
        try:
            signed_in = await sign_in(
                domain_for(request), email=email, password=password, failures=failures
            )
        except Unauthenticated as exc:
            error = exc.message[:1].upper() + exc.message[1:] + "."
        except TooManyAttempts as exc:
            error, status = exc.message, 429
        else:
            response = RedirectResponse(next_path, status_code=303)
            set_session(response, request, signed_in.token, signed_in.expires_at)
            return response
    return await page(
        request,
        "sign_in.html",
        None,
        status_code=status,
        csrf=csrf_token_for(nonce),
        next=next_path,
        email=email,
        error=error,
    )


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """Forget the session cookie. The token itself stays valid until it expires (tokens are
    not stored server-side); the cookie was its only copy in the browser."""
    if request.cookies.get(SESSION_COOKIE):
        await check_csrf(request, (await viewer(request)).csrf)
    response = RedirectResponse("/sign-in", status_code=303)
    clear_session(response, request)
    return response
