"""Exec and shell-session routes of the Workloads API (both gated), mounted under both
prefixes like the workload routes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from berth.api.deps import DomainDep
from berth.api.gate import require_approval
from berth.api.middleware.strict_json import StrictJsonRoute
from berth.api.responses import GATE_ERRORS, workload_errors
from berth.api.routing import PrefixedRouter
from berth.domain import execution, shells
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.errors import DomainError
from berth.domain.records import ShellSession
from berth.runtime.base import ExecResult as RuntimeExecResult
from berth.runtime.base import RuntimeUnavailable
from berth.schemas.workloads import (
    ExecRequest,
    ExecResult,
    PendingApproval,
    ShellRequest,
    ShellSessionInfo,
    ShellSessionList,
    ShellSessionOut,
    ShellSessionSummary,
)

GATED: dict[int | str, dict[str, Any]] = {
    202: {"model": PendingApproval, "description": "Waiting for a human's approval"},
    **workload_errors(400, 409, 422, *GATE_ERRORS),
}


def build_execution_router(
    prefix: str, actor_dependency: Callable[..., Coroutine[Any, Any, Actor]]
) -> APIRouter:
    router = PrefixedRouter(
        prefix=prefix,
        tags=["exec and shell"],
        responses=workload_errors(401, 403, 404),
        route_class=StrictJsonRoute,
    )
    ActorDep = Depends(actor_dependency)

    @router.post(
        "/{workload_id}/exec",
        response_model=ExecResult,
        summary="Run a one-off command in a running task (gated)",
        responses={**GATED, 200: {"content": {"application/x-ndjson": {}}}},
    )
    async def exec_command(
        workload_id: str,
        body: ExecRequest,
        request: Request,
        domain: DomainDep,
        actor: Actor = ActorDep,
    ) -> ExecResult | StreamingResponse:
        await require_approval(
            request,
            domain,
            actor,
            action="exec",
            validate=lambda: execution.check_target(domain, actor, workload_id, body.task),
        )
        if body.stream:
            return StreamingResponse(
                _stream_exec(domain, actor, workload_id, body), media_type="application/x-ndjson"
            )
        run, result = await execution.exec_command(
            domain,
            actor,
            workload_id,
            command=body.command,
            stdin=body.stdin,
            timeout_seconds=body.timeout_seconds,
            run_id=body.task,
        )
        return exec_result_out(run.id, result)

    @router.post(
        "/{workload_id}/shell",
        response_model=ShellSessionOut,
        summary="Broker an interactive shell session (gated)",
        responses=GATED,
    )
    async def open_shell(
        workload_id: str,
        request: Request,
        domain: DomainDep,
        actor: Actor = ActorDep,
        body: ShellRequest | None = None,
    ) -> ShellSessionOut:
        options = body or ShellRequest()
        await require_approval(
            request,
            domain,
            actor,
            action="shell",
            validate=lambda: execution.check_target(domain, actor, workload_id, options.task),
        )
        settings = request.app.state.settings
        issued = await shells.open_session(
            domain,
            actor,
            workload_id,
            run_id=options.task,
            cols=options.cols,
            rows=options.rows,
            connect_seconds=settings.shell_connect_seconds,
        )
        return ShellSessionOut(
            session=ShellSessionInfo(
                session_id=issued.session.id,
                stream_url=stream_url(request, issued.session.id),
                token_value=issued.token,
            ),
            region=settings.region,
        )

    @router.get(
        "/{workload_id}/shell/sessions",
        response_model=ShellSessionList,
        summary="Shell sessions of a workload, newest first",
    )
    async def list_shell_sessions(
        workload_id: str, domain: DomainDep, actor: Actor = ActorDep
    ) -> ShellSessionList:
        rows = await shells.list_sessions(domain, actor, workload_id)
        return ShellSessionList(sessions=[session_summary(row) for row in rows])

    @router.get(
        "/{workload_id}/shell/sessions/{session_id}/transcript",
        response_class=Response,
        summary="A session's transcript (asciicast v2)",
        responses={
            200: {
                "description": "The transcript, one JSON event per line.",
                "content": {"application/x-asciicast": {"schema": {"type": "string"}}},
            }
        },
    )
    async def shell_transcript(
        workload_id: str, session_id: str, domain: DomainDep, actor: Actor = ActorDep
    ) -> PlainTextResponse:
        text = await shells.read_transcript(domain, actor, workload_id, session_id)
        return PlainTextResponse(text, media_type="application/x-asciicast")

    return router


def stream_url(request: Request, session_id: str) -> str:
    base = str(request.base_url).rstrip("/")
    scheme = "wss" if base.startswith("https") else "ws"
    return f"{scheme}{base[base.index(':') :]}/v1/shell/sessions/{session_id}/stream"


def exec_result_out(run_id: str, result: RuntimeExecResult) -> ExecResult:
    return ExecResult(
        run_id=run_id,
        exit_code=result.exit_code,
        stdout=result.stdout.decode("utf-8", errors="replace"),
        stderr=result.stderr.decode("utf-8", errors="replace"),
        stdout_truncated=result.stdout_truncated,
        stderr_truncated=result.stderr_truncated,
        timed_out=result.timed_out,
    )


def session_summary(row: ShellSession) -> ShellSessionSummary:
    return ShellSessionSummary(
        id=row.id,
        workload_id=row.workload_id,
        run_id=row.run_id,
        status=row.status,
        created_at=row.created_at,
        connected_at=row.connected_at,
        ended_at=row.ended_at,
        exit_code=row.exit_code,
    )


async def _stream_exec(
    domain: Domain, actor: Actor, workload_id: str, body: ExecRequest
) -> AsyncIterator[bytes]:
    """NDJSON: output chunks as the command prints them, then the result line."""
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def on_output(stream: str, data: bytes) -> None:
        await queue.put((stream, data))

    async def run() -> tuple[str, RuntimeExecResult]:
        run_row, result = await execution.exec_command(
            domain,
            actor,
            workload_id,
            command=body.command,
            stdin=body.stdin,
            timeout_seconds=body.timeout_seconds,
            run_id=body.task,
            on_output=on_output,
        )
        return run_row.id, result

    task = asyncio.create_task(run())
    try:
        while not (task.done() and queue.empty()):
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                stream, data = getter.result()
                line = {"stream": stream, "data": data.decode("utf-8", errors="replace")}
                yield (json.dumps(line) + "\n").encode()
            else:
                getter.cancel()
        try:
            run_id, result = task.result()
        except DomainError as exc:
            yield (json.dumps({"error": exc.message, "code": exc.code}) + "\n").encode()
            return
        except RuntimeUnavailable as exc:
            yield (json.dumps({"error": str(exc), "code": "engine_unavailable"}) + "\n").encode()
            return
        final = exec_result_out(run_id, result).model_dump(exclude={"stdout", "stderr"})
        yield (json.dumps(final) + "\n").encode()
    finally:
        task.cancel()
