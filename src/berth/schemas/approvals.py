"""Wire models of the approvals API (`/v1/approvals`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from berth.schemas.paging import NextCursor
from berth.schemas.request_body import StrictModel

ApprovalAction = Literal["create", "exec", "shell"]

APPROVAL_HEADER = "Berth-Approval-Id"
"""Repeat a gated request with this header naming its approval to get the approved result."""


class ApprovalResult(BaseModel):
    status_code: int
    body: Any


class ApprovalOut(BaseModel):
    id: str
    status: Literal["pending", "approved", "rejected", "expired"]
    action: ApprovalAction
    method: str
    path: str
    body: Any = Field(description="The JSON body of the gated request.")
    user_id: str = Field(description="The user the request acts as.")
    requested_by: str = Field(description="The API key that made the request.")
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str | None = Field(description="The human (user id) who decided.")
    note: str | None
    executed_at: datetime | None
    result: ApprovalResult | None = Field(
        description="The replayed request's status code and body, once approved."
    )


class ApprovalList(BaseModel):
    approvals: list[ApprovalOut]
    next_cursor: NextCursor = None


class ApprovalDecision(StrictModel):
    note: str | None = Field(default=None, max_length=2000)


class ApprovalPolicy(StrictModel):
    gated_actions: list[ApprovalAction] = Field(
        max_length=10, description="Actions that an API-key caller must have approved by a human."
    )
    ttl_seconds: int = Field(
        default=86400, ge=60, le=30 * 86400, description="How long an approval stays open."
    )


class AuditEventOut(BaseModel):
    at: datetime
    actor: str = Field(description="A user id (human), an API key id (agent) or `berth`.")
    action: str = Field(
        description="`approval.requested`, `.approved`, `.rejected`, `.executed`, `.expired`."
    )
    detail: dict[str, Any]


class AuditEventList(BaseModel):
    events: list[AuditEventOut]
