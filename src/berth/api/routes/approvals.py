"""The approvals API: humans list, read and decide gated agent calls; policy per company."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from pydantic import Field

from berth.api.deps import DomainDep, PrincipalDep
from berth.api.gate import replay
from berth.api.middleware.strict_json import StrictJsonRoute
from berth.api.paging import PageQuery
from berth.api.query_model import QueryModel
from berth.api.responses import workload_errors
from berth.api.routing import PrefixedRouter
from berth.domain import approval_lists, approvals
from berth.domain.approvals import result_body as approval_result_body
from berth.domain.auth import Principal
from berth.domain.context import Domain
from berth.domain.records import Approval, Company
from berth.schemas.approvals import (
    ApprovalDecision,
    ApprovalList,
    ApprovalOut,
    ApprovalPolicy,
    ApprovalResult,
    AuditEventList,
    AuditEventOut,
)

router = PrefixedRouter(
    prefix="/v1/approvals",
    tags=["approvals"],
    responses=workload_errors(401),
    route_class=StrictJsonRoute,
)


class ApprovalListQuery(PageQuery):
    status: str | None = Field(
        None,
        pattern="^(pending|approved|rejected|expired)$",
        description="Only approvals in this state: pending, approved, rejected or expired.",
    )


APPROVAL_LIST_QUERY = QueryModel(ApprovalListQuery)
DECISION_ERRORS = workload_errors(400, 403, 404, 409, 410, 422)
"""Deciding: API keys may not (403); unknown (404), already decided (409) or expired (410)."""


@router.get(
    "",
    response_model=ApprovalList,
    summary="List approvals, pending first, then newest first, a page at a time",
    responses=workload_errors(422),
    openapi_extra=APPROVAL_LIST_QUERY.openapi,
)
async def list_approvals(
    request: Request, domain: DomainDep, principal: PrincipalDep
) -> ApprovalList:
    query = APPROVAL_LIST_QUERY.parse(request)
    page = await approval_lists.list_approvals(
        domain, principal, status=query.status, limit=query.limit, cursor=query.cursor
    )
    return ApprovalList(
        approvals=[approval_out(domain, row, principal) for row in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/policy",
    response_model=ApprovalPolicy,
    summary="Which actions are gated",
    responses=workload_errors(404),
)
async def get_policy(domain: DomainDep, principal: PrincipalDep) -> ApprovalPolicy:
    return policy_out(await approvals.get_policy(domain, principal))


@router.put(
    "/policy",
    response_model=ApprovalPolicy,
    summary="Change the gated actions",
    responses=workload_errors(400, 403, 404, 422),
)
async def set_policy(
    body: ApprovalPolicy, domain: DomainDep, principal: PrincipalDep
) -> ApprovalPolicy:
    company = await approvals.set_policy(
        domain, principal, gated_actions=list(body.gated_actions), ttl_seconds=body.ttl_seconds
    )
    return policy_out(company)


@router.get(
    "/{approval_id}",
    response_model=ApprovalOut,
    summary="Get an approval",
    responses=workload_errors(404, 410),
)
async def get_approval(
    approval_id: str, request: Request, domain: DomainDep, principal: PrincipalDep
) -> ApprovalOut:
    """The asking agent's own read collects the result: an approved shell is opened now."""
    approval = await approvals.get_approval(domain, principal, approval_id)
    if approvals.collected_by(approval, principal):
        approval = await approvals.collect(
            domain, approval, lambda approved: replay(request, approved)
        )
    return approval_out(domain, approval, principal)


@router.get(
    "/{approval_id}/events",
    response_model=AuditEventList,
    summary="The approval's audit trail",
    responses=workload_errors(404),
)
async def approval_events(
    approval_id: str, domain: DomainDep, principal: PrincipalDep
) -> AuditEventList:
    rows = await approvals.approval_events(domain, principal, approval_id)
    return AuditEventList(
        events=[
            AuditEventOut(at=row.at, actor=row.actor, action=row.action, detail=row.detail)
            for row in rows
        ]
    )


@router.post(
    "/{approval_id}/approve",
    response_model=ApprovalOut,
    summary="Approve: the call runs now (a shell: when its agent collects it), as its caller",
    responses=DECISION_ERRORS,
)
async def approve(
    approval_id: str,
    request: Request,
    domain: DomainDep,
    principal: PrincipalDep,
    body: ApprovalDecision | None = None,
) -> ApprovalOut:
    decided = await approvals.decide(
        domain, principal, approval_id, approve=True, note=body.note if body else None
    )
    if decided.action in approvals.RUNS_ON_COLLECTION:
        return approval_out(domain, decided, principal)  # runs when its agent collects it
    response = await replay(request, decided)
    recorded = await approvals.record_result(domain, approval_id, response)
    return approval_out(domain, recorded, principal)


@router.post(
    "/{approval_id}/reject",
    response_model=ApprovalOut,
    summary="Reject",
    responses=DECISION_ERRORS,
)
async def reject(
    approval_id: str,
    domain: DomainDep,
    principal: PrincipalDep,
    body: ApprovalDecision | None = None,
) -> ApprovalOut:
    decided = await approvals.decide(
        domain, principal, approval_id, approve=False, note=body.note if body else None
    )
    return approval_out(domain, decided, principal)


def _json_or_text(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def approval_out(domain: Domain, approval: Approval, viewer: Principal) -> ApprovalOut:
    result = None
    if approval.result_status is not None:
        body = _json_or_text(approval_result_body(domain, approval))
        if approval.action == "shell" and viewer.key_id != approval.key_id:
            body = _mask_shell_token(body)
        result = ApprovalResult(status_code=approval.result_status, body=body)
    return ApprovalOut(
        id=approval.id,
        status=approval.status,
        action=approval.action,
        method=approval.method,
        path=approval.path,
        body=_json_or_text(approval.body),
        user_id=approval.user_id,
        requested_by=approval.key_id,
        created_at=approval.created_at,
        expires_at=approval.expires_at,
        decided_at=approval.decided_at,
        decided_by=approval.decided_by,
        note=approval.note,
        executed_at=approval.executed_at,
        result=result,
    )


def _mask_shell_token(body: Any) -> Any:
    """A shell session's token is for the agent that asked for it, not for other readers."""
    if isinstance(body, dict) and isinstance(body.get("session"), dict):
        return {**body, "session": {**body["session"], "tokenValue": "(hidden)"}}
    return body


def policy_out(company: Company | approvals.Policy) -> ApprovalPolicy:
    return ApprovalPolicy(
        gated_actions=list(company.gated_actions or []),
        ttl_seconds=company.approval_ttl_seconds,
    )
