"""Workload tools: services, jobs and schedules (`/v1/compute`), their runs, logs, exec and
secrets. Create and exec may be gated: they then return `pending_approval`, not an error."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

from berth.mcp.calls import ClientSource, Ctx, through_api
from berth.mcp.models import (
    Done,
    ExecOutcome,
    LogTail,
    PendingApproval,
    RunList,
    SecretList,
    ServiceUrl,
    WorkloadCreated,
    WorkloadList,
)
from berth.schemas.limits import MAX_RUN_ID_CHARS
from berth.schemas.workloads import ExecResult, LogEvent, RunOut, SecretKeyOut, WorkloadOut
from berth.sdk import ApprovalPending, AsyncClient

WorkloadId = Annotated[str, Field(description="The workload's id (from workloads_list).")]

WAIT_POLL_SECONDS = 1.0
SETTLED = {
    "running": frozenset({"running"}),
    "finished": frozenset({"succeeded", "failed", "timed_out", "stopped", "idle"}),
}
"""The workload statuses each `workloads_wait` target ends on (docs/api.md, Status)."""

READ = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True)
"""Reads change nothing."""


def change(*, destructive: bool, idempotent: bool) -> ToolAnnotations:
    return ToolAnnotations(
        readOnlyHint=False, destructiveHint=destructive, idempotentHint=idempotent
    )


def since_events(events: list[LogEvent], since: datetime) -> list[LogEvent]:
    """The events stamped at or after `since`. The logs API has no time filter, so the
    run's whole output is read and cut here; a naive time (either side) is UTC."""
    cut = utc(since)
    return [event for event in events if utc(event.timestamp) >= cut]


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def register(server: FastMCP, source: ClientSource) -> None:
    @server.tool(annotations=READ)
    async def workloads_list(ctx: Ctx) -> WorkloadList:
        """List your workloads (services, jobs, schedules), oldest first, with status,
        public URL and recent runs."""
        return WorkloadList(workloads=await through_api(source, ctx, lambda c: c.compute.list()))

    @server.tool(annotations=READ)
    async def workloads_get(workload_id: WorkloadId, ctx: Ctx) -> WorkloadOut:
        """One workload: its status, spec, public URL (services), running tasks and recent
        runs (a job's exit code is in `recent_runs[0].exit_code`)."""
        return await through_api(source, ctx, lambda c: c.compute.get(workload_id))

    @server.tool(annotations=READ)
    async def workloads_wait(
        workload_id: WorkloadId,
        ctx: Ctx,
        until: Annotated[
            Literal["running", "finished"],
            Field(
                description="running: a service has all its tasks up; finished: a job's "
                "latest run has ended (succeeded, failed, timed_out or stopped)."
            ),
        ] = "finished",
        timeout: Annotated[  # noqa: ASYNC109 (the tool's own parameter: a polling deadline)
            float, Field(ge=0, le=3600, description="Seconds to wait at most.")
        ] = 300,
    ) -> WorkloadOut:
        """Wait, reporting progress, until a workload gets there; returns it as it is then
        (also at the timeout: check `status`). A job's exit code is in
        `recent_runs[0].exit_code`."""
        started = time.monotonic()
        while True:
            workload = await through_api(source, ctx, lambda c: c.compute.get(workload_id))
            waited = time.monotonic() - started
            if workload.status in SETTLED[until] or waited >= timeout:
                return workload
            await ctx.report_progress(
                waited, timeout, f"{workload.name} is {workload.status} ({waited:.0f}s)"
            )
            await anyio.sleep(min(WAIT_POLL_SECONDS, timeout - waited))

    @server.tool(annotations=change(destructive=False, idempotent=False))
    async def workloads_create(
        ctx: Ctx,
        name: Annotated[str, Field(description="1-63 lowercase letters, digits, '-'.")],
        type: Annotated[
            Literal["job", "service", "schedule"],
            Field(
                description="job: runs once to completion; service: keeps `replicas` tasks "
                "running (set `port` for a public URL); schedule: runs on `schedule_expr`."
            ),
        ],
        image: Annotated[str, Field(description="Container image, e.g. `busybox:latest`.")],
        command: Annotated[
            str | list[str] | None,
            Field(description="A shell command line (run by /bin/sh -c) or an argv list."),
        ] = None,
        env: Annotated[dict[str, str] | None, Field(description="Environment variables.")] = None,
        port: Annotated[int | None, Field(description="Services: the port they listen on.")] = None,
        cpu: Annotated[float | None, Field(description="vCPUs per task (default 0.25).")] = None,
        memory_mb: Annotated[int | None, Field(description="Memory per task in MB.")] = None,
        replicas: Annotated[int | None, Field(description="Services: how many tasks.")] = None,
        schedule_expr: Annotated[
            str | None, Field(description="Schedules: five-field cron or `rate(N minutes)`.")
        ] = None,
        timeout_seconds: Annotated[
            int | None, Field(description="Jobs and schedules: kill a run after this long.")
        ] = None,
    ) -> WorkloadCreated:
        """Create a workload. A job starts at once. Costs credits while tasks run. May be
        gated: then nothing is created yet and `pending_approval` says what a human must do;
        call approval_wait with its approval_id (do not call create again)."""
        given: dict[str, Any] = {
            "command": command,
            "env": env,
            "port": port,
            "cpu": cpu,
            "memory_mb": memory_mb,
            "replicas": replicas,
            "schedule_expr": schedule_expr,
            "timeout_seconds": timeout_seconds,
        }
        fields = {key: value for key, value in given.items() if value is not None}

        async def create(client: AsyncClient) -> WorkloadCreated:
            try:
                workload = await client.compute.create(name=name, type=type, image=image, **fields)
            except ApprovalPending as pending:
                return WorkloadCreated(pending_approval=PendingApproval.for_id(pending.approval_id))
            return WorkloadCreated(workload=workload)

        return await through_api(source, ctx, create)

    @server.tool(annotations=change(destructive=True, idempotent=True))
    async def workloads_delete(workload_id: WorkloadId, ctx: Ctx) -> Done:
        """Delete a workload: stops its tasks and removes it, its runs and its secrets."""
        deleted = await through_api(source, ctx, lambda c: c.compute.delete(workload_id))
        return Done(detail=f"deleted {deleted.id}")

    @server.tool(annotations=change(destructive=False, idempotent=False))
    async def workloads_run(workload_id: WorkloadId, ctx: Ctx) -> RunOut:
        """Start a new run of a job or schedule now (costs credits while it runs)."""
        return await through_api(source, ctx, lambda c: c.compute.run(workload_id))

    @server.tool(annotations=READ)
    async def workloads_runs(
        workload_id: WorkloadId,
        ctx: Ctx,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many.")] = 20,
    ) -> RunList:
        """A workload's runs, newest first: status, exit code, times and credits."""
        runs = await through_api(source, ctx, lambda c: c.compute.runs(workload_id, limit=limit))
        return RunList(runs=runs)

    @server.tool(annotations=READ)
    async def workloads_logs(
        workload_id: WorkloadId,
        ctx: Ctx,
        tail: Annotated[int, Field(ge=1, le=10000, description="The last N lines.")] = 100,
        run_id: Annotated[str | None, Field(description="A run's id; default the latest.")] = None,
        since: Annotated[
            datetime | None,
            Field(
                description="Only lines written at or after this ISO-8601 date-time, e.g. "
                "`2025-06-01T12:00:00Z` (no offset means UTC); `tail` then keeps the last "
                "of those."
            ),
        ] = None,
    ) -> LogTail:
        """The last `tail` lines of a run's output (stdout and stderr, in order), optionally
        only those since a time."""
        logs = await through_api(source, ctx, lambda c: c.compute.logs(workload_id, run_id=run_id))
        events = logs.events if since is None else since_events(logs.events, since)
        lines = [f"{event.stream}: {event.message}" for event in events]
        return LogTail(
            workload_id=logs.workload_id,
            run_id=logs.run_id,
            live=logs.live,
            lines=lines[-tail:],
            total_lines=len(lines),
        )

    @server.tool(annotations=change(destructive=True, idempotent=False))
    async def workloads_exec(
        workload_id: WorkloadId,
        command: Annotated[
            str | list[str],
            Field(description="A shell command line (run by /bin/sh -c) or an argv list."),
        ],
        ctx: Ctx,
        stdin: Annotated[str | None, Field(description="Text fed to the command.")] = None,
        timeout_seconds: Annotated[
            int | None, Field(ge=1, le=3600, description="Kill the command after this long.")
        ] = None,
        task: Annotated[
            str | None,
            Field(
                max_length=MAX_RUN_ID_CHARS,
                description="Which task (one replica of a service): the id of a running run "
                "from workloads_runs (`slot` says which replica); it must be running and not "
                "being stopped or replaced (else HTTP 409). Default: the running task of the "
                "lowest slot (one still starting is waited for up to 30 s).",
            ),
        ] = None,
    ) -> ExecOutcome:
        """Run a command inside the workload's running task and return its exit code, stdout
        and stderr. May be gated: then it returns `pending_approval` (call approval_wait)."""

        async def run(client: AsyncClient) -> ExecOutcome:
            try:
                result: ExecResult = await client.compute.exec(
                    workload_id, command, stdin=stdin, timeout_seconds=timeout_seconds, task=task
                )
            except ApprovalPending as pending:
                return ExecOutcome(pending_approval=PendingApproval.for_id(pending.approval_id))
            return ExecOutcome(result=result)

        return await through_api(source, ctx, run)

    @server.tool(annotations=change(destructive=False, idempotent=True))
    async def workloads_scale(
        workload_id: WorkloadId,
        replicas: Annotated[int, Field(ge=0, le=1000, description="Tasks to keep running.")],
        ctx: Ctx,
    ) -> WorkloadOut:
        """Set a service's number of tasks (0 stops them all; more costs credits)."""
        return await through_api(source, ctx, lambda c: c.compute.scale(workload_id, replicas))

    @server.tool(annotations=change(destructive=False, idempotent=True))
    async def workloads_start(workload_id: WorkloadId, ctx: Ctx) -> WorkloadOut:
        """Start a stopped service (or resume a paused schedule)."""
        return await through_api(source, ctx, lambda c: c.compute.start(workload_id))

    @server.tool(annotations=change(destructive=True, idempotent=True))
    async def workloads_stop(workload_id: WorkloadId, ctx: Ctx) -> WorkloadOut:
        """Stop a workload's tasks (a service scales to zero, a schedule pauses)."""
        return await through_api(source, ctx, lambda c: c.compute.stop(workload_id))

    @server.tool(annotations=change(destructive=False, idempotent=True))
    async def workloads_pause(workload_id: WorkloadId, ctx: Ctx) -> WorkloadOut:
        """Pause a running service: its tasks are frozen with their memory kept, and it costs
        only its memory's price until resumed. An exec, a shell, a request to its URL, or
        workloads_resume resumes it where it was. Docker only (a conflict on Kubernetes)."""
        return await through_api(source, ctx, lambda c: c.compute.pause(workload_id))

    @server.tool(annotations=change(destructive=False, idempotent=True))
    async def workloads_resume(workload_id: WorkloadId, ctx: Ctx) -> WorkloadOut:
        """Resume a paused service: its processes carry on where they stopped."""
        return await through_api(source, ctx, lambda c: c.compute.resume(workload_id))

    @server.tool(annotations=READ)
    async def service_url(workload_id: WorkloadId, ctx: Ctx) -> ServiceUrl:
        """The public URL of a service (null until it has a port)."""
        workload = await through_api(source, ctx, lambda c: c.compute.get(workload_id))
        return ServiceUrl(workload_id=workload.id, url=workload.url, status=workload.status)

    @server.tool(annotations=READ)
    async def secrets_list(workload_id: WorkloadId, ctx: Ctx) -> SecretList:
        """The names of a workload's secrets (values are never shown)."""
        secrets = await through_api(source, ctx, lambda c: c.compute.secrets.list(workload_id))
        return SecretList(secrets=secrets)

    @server.tool(annotations=change(destructive=False, idempotent=True))
    async def secrets_set(
        workload_id: WorkloadId,
        key: Annotated[str, Field(description="An environment variable name.")],
        value: Annotated[str, Field(description="The secret value.")],
        ctx: Ctx,
    ) -> SecretKeyOut:
        """Set a secret: the workload's tasks see it as an environment variable from their
        next start."""
        return await through_api(
            source, ctx, lambda c: c.compute.secrets.set(workload_id, key, value)
        )

    @server.tool(annotations=change(destructive=True, idempotent=True))
    async def secrets_delete(
        workload_id: WorkloadId,
        key: Annotated[str, Field(description="The secret's name.")],
        ctx: Ctx,
    ) -> Done:
        """Delete a secret."""
        await through_api(source, ctx, lambda c: c.compute.secrets.delete(workload_id, key))
        return Done(detail=f"deleted secret {key}")
