"""The approval gate of sensitive calls, and the in-process replay of approved ones.

A gated handler calls `require_approval` with its checks, which run before a call is
queued (an invalid call is refused at once, not queued for a human). An approved request is
replayed through the application itself, as its original caller: the replay carries a
per-process secret in `INTERNAL_REPLAY_HEADER` that never leaves the process, and the auth
dependency turns it into the approval's principal.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from berth.api.deps import INTERNAL_REPLAY_HEADER
from berth.domain import approvals
from berth.domain.approvals import GatedRequest, StoredResponse
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.errors import ApprovalRequired
from berth.domain.records import Approval
from berth.schemas.approvals import APPROVAL_HEADER
from berth.schemas.workloads import PendingApproval


class ApprovedResponse(Exception):
    """Short-circuits a repeated gated request with its approved, stored response."""

    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("approved response")
        self.stored = stored


def request_path(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def require_approval(
    request: Request,
    domain: Domain,
    actor: Actor,
    *,
    action: str,
    validate: Callable[[], Awaitable[None]],
) -> None:
    """Return if the call may run now; otherwise raise what answers it.

    `validate` runs every check of the call, and only when the call is about to be queued
    for a human: a call that would fail is refused at once rather than queued. A call that
    runs now makes the same checks itself, and a repeat naming its approval is answered from
    the approval (its original validation already passed).
    """
    approval_id = request.headers.get(APPROVAL_HEADER)
    gated = GatedRequest(
        action=action, method=request.method, path=request_path(request), body=await request.body()
    )
    stored = await approvals.check_gate(
        domain,
        actor,
        gated,
        approval_id,
        replay=lambda approval: replay(request, approval),
        validate=validate,
    )
    if stored is not None:
        raise ApprovedResponse(stored)


async def replay(request: Request, approval: Approval) -> StoredResponse:
    """Run the approved request through the application once; its status and body.

    It is addressed to the server as the approving (or, for a call that runs on collection,
    the collecting) request reached it, so URLs in the result (a shell session's
    `streamUrl`) point where clients reach berth.
    """
    app: FastAPI = request.app
    secret: str = app.state.replay_secret
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url=str(request.base_url), timeout=None
    ) as client:
        response = await client.request(
            approval.method,
            approval.path,
            content=approval.body,
            headers={
                "content-type": "application/json",
                INTERNAL_REPLAY_HEADER: f"{secret}:{approval.id}",
            },
        )
    return StoredResponse(status_code=response.status_code, body=response.content)


async def approval_required_response(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApprovalRequired)
    body = PendingApproval(approval_id=exc.approval_id).model_dump()
    return JSONResponse(body, status_code=202)


async def approved_response(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApprovedResponse)
    return Response(
        content=exc.stored.body,
        status_code=exc.stored.status_code,
        media_type=_media_type(exc.stored.body),
    )


def _media_type(body: bytes) -> str:
    try:
        json.loads(body)
    except ValueError:
        return "text/plain"
    return "application/json"


def install_gate_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApprovalRequired, approval_required_response)
    app.add_exception_handler(ApprovedResponse, approved_response)
