"""`approval_wait`: the second half of a gated call.

A gated tool call returns `pending_approval`. A human approves it through the API; berth then
runs the stored request once, as its original caller, and keeps its answer. `approval_wait`
polls the approval (sending a progress notification each time) and returns that kept answer,
so the action runs exactly once however often an agent waits.
"""

from __future__ import annotations

import time
from typing import Annotated

import anyio
from mcp.server.fastmcp import FastMCP
from pydantic import Field

from berth.mcp.calls import ClientSource, Ctx, through_api
from berth.mcp.models import ApprovalOutcome
from berth.mcp.tools_workloads import READ
from berth.schemas.approvals import ApprovalOut

POLL_SECONDS = 1.0


def outcome(approval: ApprovalOut) -> ApprovalOutcome:
    result = approval.result
    return ApprovalOutcome(
        approval_id=approval.id,
        status=approval.status,
        action=approval.action,
        note=approval.note,
        result_status=None if result is None else result.status_code,
        result=None if result is None else result.body,
    )


def register(server: FastMCP, source: ClientSource) -> None:
    @server.tool(annotations=READ)
    async def approval_wait(
        approval_id: Annotated[str, Field(description="From a `pending_approval` result.")],
        ctx: Ctx,
        timeout: Annotated[  # noqa: ASYNC109 (the tool's own parameter: a polling deadline)
            float, Field(ge=0, le=3600, description="Seconds to wait for a decision.")
        ] = 300,
    ) -> ApprovalOutcome:
        """Wait for a human to decide a gated call. `approved`: `result` is the call's own
        answer (e.g. the created workload, or the exec's exit code and output); `rejected` or
        `expired`: it never ran and `note` says why; `pending`: call again to keep waiting."""
        started = time.monotonic()
        while True:
            approval = await through_api(source, ctx, lambda c: c.approvals.get(approval_id))
            waited = time.monotonic() - started
            if approval.status != "pending" or waited >= timeout:
                return outcome(approval)
            await ctx.report_progress(
                waited, timeout, f"approval {approval_id} waits for a human ({waited:.0f}s)"
            )
            await anyio.sleep(min(POLL_SECONDS, timeout - waited))
