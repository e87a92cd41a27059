"""The invitation page: a new human sets their password from the one-time link that
`berth admin invite` printed, and is signed in."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from berth.dashboard.render import page
from berth.dashboard.session import (
    check_csrf,
    csrf_token_for,
    domain_of,
    form_of,
    presession,
    set_presession,
    set_session,
)
from berth.domain import invitations
from berth.domain.errors import Invalid, Unauthenticated

router = APIRouter(include_in_schema=False)


@router.get("/invite/{token}")
async def invitation(request: Request, token: str) -> Response:
    nonce, new = presession(request)
    try:
        invited = await invitations.invited_user(domain_of(request), token)
    except Unauthenticated as exc:
        return await page(request, "invite.html", None, status_code=410, gone=exc.message)
    response = await page(
        request, "invite.html", None, email=invited.email, csrf=csrf_token_for(nonce), error=None
    )
    if new:
        set_presession(response, request, nonce)
    return response


@router.post("/invite/{token}")
async def accept(request: Request, token: str) -> Response:
    nonce, _new = presession(request)
    await check_csrf(request, csrf_token_for(nonce))
    form = await form_of(request)
    domain = domain_of(request)
    password = form.get("password", "")
    try:
        if password != form.get("confirm", ""):
            raise Invalid("the two passwords differ", field="confirm")
        invited = await invitations.accept(domain, token, password)
    except Unauthenticated as exc:
        return await page(request, "invite.html", None, status_code=410, gone=exc.message)
    except Invalid as exc:
        invited_email = (await invitations.invited_user(domain, token)).email
        return await page(
            request,
            "invite.html",
            None,
            status_code=422,
            email=invited_email,
            csrf=csrf_token_for(nonce),
            error=exc.message,
        )
    issued = domain.tokens.issue_session(invited.user_id)
    response = RedirectResponse("/", status_code=303)
    set_session(response, request, issued.token, issued.expires_at)
    return response
