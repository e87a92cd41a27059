"""The structured results of berth's MCP tools (their output schemas).

Tools return berth's own wire models (`berth.schemas`) where one fits; these wrap them where
a tool can end two ways (done, or waiting for a human) or returns a part of a model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from berth.schemas.containers import ContainerOut, IngressRuleOut, SshKeyOut
from berth.schemas.workloads import ExecResult, RunOut, SecretKeyOut, WorkloadOut

HUMAN_STEP = (
    "A human of your company must approve this call: `berth approvals approve {id}` with "
    "their own login, or POST /v1/approvals/{id}/approve with a session token. Then call "
    "approval_wait with this approval_id to get the result; do not repeat the call."
)


class PendingApproval(BaseModel):
    """A gated call: nothing ran yet; it runs once, when a human approves it."""

    status: Literal["pending_approval"] = "pending_approval"
    approval_id: str
    next_step: str = Field(description="What must happen before the call runs.")

    @classmethod
    def for_id(cls, approval_id: str) -> PendingApproval:
        return cls(approval_id=approval_id, next_step=HUMAN_STEP.format(id=approval_id))


class WorkloadCreated(BaseModel):
    """`workload` when the create ran; `pending_approval` when a human must approve it."""

    workload: WorkloadOut | None = None
    pending_approval: PendingApproval | None = None


class ExecOutcome(BaseModel):
    """`result` when the command ran; `pending_approval` when a human must approve it."""

    result: ExecResult | None = None
    pending_approval: PendingApproval | None = None


class WorkloadList(BaseModel):
    workloads: list[WorkloadOut]


class RunList(BaseModel):
    runs: list[RunOut]


class LogTail(BaseModel):
    workload_id: str
    run_id: str | None = Field(description="The run the lines come from (null: the latest).")
    live: bool = Field(description="True while the run is still going.")
    lines: list[str] = Field(description="The last lines, oldest first, each `stream: text`.")
    total_lines: int = Field(
        description="How many lines the run's log holds in all (with `since`: how many of "
        "them are at or after it), before `tail` kept the last: more than `lines` holds "
        "means a larger `tail` shows earlier ones."
    )


class SecretList(BaseModel):
    secrets: list[SecretKeyOut]


class DevBoxList(BaseModel):
    dev_boxes: list[ContainerOut]


class SshKeyList(BaseModel):
    ssh_keys: list[SshKeyOut]


class IngressRuleList(BaseModel):
    rules: list[IngressRuleOut]


class Done(BaseModel):
    ok: bool = True
    detail: str


class ServiceUrl(BaseModel):
    workload_id: str
    url: str | None = Field(description="The public URL; null while the service has no port.")
    status: str


class SshCommand(BaseModel):
    dev_box_id: str
    ssh_command: str = Field(description="Run this in a terminal to open a shell in the box.")
    ssh_enabled: bool
    status: str


class ApprovalOutcome(BaseModel):
    """How a gated call ended. `approved`: `result` is the action's own answer (its HTTP
    status and body); `rejected`/`expired`: it never ran, `note` says why; `pending`: still
    waiting when the timeout passed (call approval_wait again)."""

    approval_id: str
    status: Literal["pending", "approved", "rejected", "expired"]
    action: str
    note: str | None = None
    result_status: int | None = None
    result: Any = None
