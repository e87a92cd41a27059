"""The approvals inbox: the calls the human's agents are waiting on, decided in a click.

Approving runs the same code as `POST /v1/approvals/{id}/approve`: the domain's `decide`,
then the API's in-process replay of the stored request as its agent, whose response is kept
(a shell runs when its agent collects it, as in the API).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from berth.api.gate import replay
from berth.dashboard.render import fragment, page, pending_count
from berth.dashboard.session import changing, domain_of, form_of, viewer
from berth.domain import approval_lists, approvals
from berth.domain.errors import DomainError
from berth.schemas.paging import MAX_PAGE_SIZE

router = APIRouter(include_in_schema=False)
HISTORY_SHOWN = 50
DECISION_STATUS = {"not_found": 404, "forbidden": 403, "conflict": 409, "gone": 410}


@router.get("/")
async def home(request: Request) -> Response:
    """The inbox when something waits for a decision, else the workloads."""
    signed_in = await viewer(request)
    waiting = await pending_count(request, signed_in)
    return RedirectResponse("/approvals" if waiting else "/workloads", status_code=303)


async def _lists(request: Request) -> dict[str, Any]:
    signed_in = await viewer(request)
    # Pending first, then newest first: one page holds every pending one a person can read.
    found = await approval_lists.list_approvals(
        domain_of(request), signed_in.actor.principal, status=None, limit=MAX_PAGE_SIZE
    )
    rows = found.items
    pending = [row for row in rows if row.status == "pending"]
    decided = [row for row in rows if row.status != "pending"][:HISTORY_SHOWN]
    names = await approvals.key_names(
        domain_of(request), signed_in.actor.principal, {row.key_id for row in pending + decided}
    )
    return {"pending_rows": pending, "history": decided, "viewer": signed_in, "key_names": names}


@router.get("/approvals")
async def inbox(request: Request) -> Response:
    lists = await _lists(request)
    signed_in = lists.pop("viewer")
    return await page(request, "approvals.html", signed_in, **lists)


@router.get("/approvals/fragment")
async def inbox_fragment(request: Request) -> Response:
    """The inbox's lists alone: the page's script swaps them in when an approval changes."""
    return fragment("approvals_lists.html", **await _lists(request))


@router.get("/approvals/{approval_id}")
async def approval_detail(request: Request, approval_id: str) -> Response:
    signed_in = await viewer(request)
    domain = domain_of(request)
    principal = signed_in.actor.principal
    approval = await approvals.get_approval(domain, principal, approval_id)
    events = await approvals.approval_events(domain, principal, approval_id)
    result = approvals.result_body(domain, approval) if approval.action != "shell" else None
    names = await approvals.key_names(domain, principal, {approval.key_id})
    return await page(
        request,
        "approval.html",
        signed_in,
        approval=approval,
        events=events,
        result=result,
        key_names=names,
    )


@router.post("/approvals/{approval_id}/{decision}")
async def decide(request: Request, approval_id: str, decision: str) -> Response:
    signed_in = await changing(request)
    if decision not in ("approve", "reject"):
        return Response("no such decision", status_code=404)
    note = (await form_of(request)).get("note", "").strip() or None
    domain = domain_of(request)
    try:
        decided = await approvals.decide(
            domain,
            signed_in.actor.principal,
            approval_id,
            approve=decision == "approve",
            note=note,
        )
        if decided.status == "approved" and decided.action not in approvals.RUNS_ON_COLLECTION:
            await approvals.record_result(domain, approval_id, await replay(request, decided))
    except DomainError as exc:
        lists = await _lists(request)
        lists.pop("viewer")
        return await page(
            request,
            "approvals.html",
            signed_in,
            status_code=DECISION_STATUS.get(exc.code, 400),
            error=exc.message,
            **lists,
        )
    return RedirectResponse(f"/approvals/{approval_id}", status_code=303)


@router.get("/approvals-count")
async def count(request: Request) -> Response:
    """`{"pending": N}` for the navigation's badge, refreshed on every approval event."""
    return JSONResponse({"pending": await pending_count(request, await viewer(request))})
