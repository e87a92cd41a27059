"""The approval policy: which of the agents' actions wait for a human, and for how long.

Any signed-in human may change it, as with `PUT /v1/approvals/policy` (the domain's
`set_policy` refuses only agents); the page validates with the API's own model."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from berth.dashboard.forms import FormErrors, domain_errors, optional_int, validation_errors
from berth.dashboard.render import page
from berth.dashboard.session import Viewer, changing, domain_of, form_lists, viewer
from berth.domain import approvals
from berth.domain.errors import DomainError
from berth.schemas.approvals import ApprovalPolicy

router = APIRouter(include_in_schema=False)
FIELDS = {"gated_actions", "ttl_seconds"}


async def _page(
    request: Request, signed_in: Viewer, errors: FormErrors, status: int = 200
) -> Response:
    company = await approvals.get_policy(domain_of(request), signed_in.actor.principal)
    return await page(
        request,
        "policy.html",
        signed_in,
        status_code=status,
        gated=set(company.gated_actions or []),
        ttl=company.approval_ttl_seconds,
        actions=approvals.GATEABLE_ACTIONS,
        errors=errors,
    )


@router.get("/policy")
async def policy(request: Request) -> Response:
    return await _page(request, await viewer(request), FormErrors())


@router.post("/policy")
async def set_policy(request: Request) -> Response:
    signed_in = await changing(request)
    form = await form_lists(request)
    try:
        body = ApprovalPolicy.model_validate(
            {
                "gated_actions": form.get("gated_actions", []),
                "ttl_seconds": optional_int(form.get("ttl_seconds", [""])[-1]),
            }
        )
        await approvals.set_policy(
            domain_of(request),
            signed_in.actor.principal,
            gated_actions=list(body.gated_actions),
            ttl_seconds=body.ttl_seconds,
        )
    except ValidationError as exc:
        return await _page(request, signed_in, validation_errors(exc, FIELDS), 422)
    except DomainError as exc:
        return await _page(request, signed_in, domain_errors(exc, FIELDS), 400)
    return RedirectResponse("/policy", status_code=303)
