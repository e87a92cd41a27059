"""Workloads: the list with live status, the create form, and one workload's page (runs with
their logs, secrets, and the actions), all through the domain's workload functions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from pydantic import ValidationError

from berth.dashboard.forms import (
    FormErrors,
    domain_errors,
    env_lines,
    optional_float,
    optional_int,
    validation_errors,
)
from berth.dashboard.render import fragment, page
from berth.dashboard.session import Viewer, changing, domain_of, form_of, viewer
from berth.domain import execution, runs, secrets, workloads
from berth.domain.errors import DomainError, Invalid, NotFound
from berth.schemas.workloads import WorkloadCreate

router = APIRouter(include_in_schema=False)
CREATE_FIELDS = {
    "name",
    "type",
    "image",
    "command",
    "env",
    "port",
    "cpu",
    "memory_mb",
    "replicas",
    "schedule_expr",
    "timeout_seconds",
}
RUNS_SHOWN = 20
EXEC_TIMEOUT_SECONDS = 60.0


async def _rows(request: Request, signed_in: Viewer) -> dict[str, Any]:
    """One page of workloads, newest first (`?cursor=` from the page's "Older" link; a
    cursor that is not one shows the first page), and the next page's cursor."""
    domain, cursor = domain_of(request), request.query_params.get("cursor")
    try:
        found = await workloads.list_workloads(domain, signed_in.actor, cursor=cursor)
    except Invalid:
        found = await workloads.list_workloads(domain, signed_in.actor)
    return {"rows": found.items, "next_cursor": found.next_cursor}


@router.get("/workloads")
async def workload_list(request: Request) -> Response:
    signed_in = await viewer(request)
    return await page(request, "workloads.html", signed_in, **await _rows(request, signed_in))


@router.get("/workloads/fragment")
async def workload_list_fragment(request: Request) -> Response:
    signed_in = await viewer(request)
    return fragment("workloads_table.html", **await _rows(request, signed_in))


@router.get("/workloads/new")
async def new_workload(request: Request) -> Response:
    signed_in = await viewer(request)
    return await page(
        request, "workload_new.html", signed_in, form={"type": "job"}, errors=FormErrors()
    )


def _create_body(form: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "type": form.get("type", ""),
        "image": form.get("image", "").strip(),
        "env": env_lines(form.get("env", "")),
    }
    command = form.get("command", "").strip()
    if command:
        body["command"] = command
    for name in ("port", "memory_mb", "replicas", "timeout_seconds"):
        value = optional_int(form.get(name, ""))
        if value is not None:
            body[name] = value
    cpu = optional_float(form.get("cpu", ""))
    if cpu is not None:
        body["cpu"] = cpu
    schedule = form.get("schedule_expr", "").strip()
    if schedule:
        body["schedule_expr"] = schedule
    return body


@router.post("/workloads")
async def create(request: Request) -> Response:
    """The domain's `create_workload` as the human: a human's create is never gated. A
    refusal shows the form again, each message next to its field (422)."""
    signed_in = await changing(request)
    form = await form_of(request)
    try:
        body = WorkloadCreate.model_validate(_create_body(form))
        created = await workloads.create_workload(domain_of(request), signed_in.actor, body)
    except ValidationError as exc:
        errors = validation_errors(exc, CREATE_FIELDS)
    except DomainError as exc:
        errors = domain_errors(exc, CREATE_FIELDS)
    else:
        return RedirectResponse(f"/workloads/{created.workload.id}", status_code=303)
    return await page(
        request, "workload_new.html", signed_in, status_code=422, form=form, errors=errors
    )


@router.get("/workloads/{workload_id}")
async def detail(request: Request, workload_id: str, run: str | None = None) -> Response:
    signed_in = await viewer(request)
    return await _detail(request, signed_in, workload_id, run)


async def _detail(
    request: Request,
    signed_in: Viewer,
    workload_id: str,
    run_id: str | None,
    *,
    exec_result: dict[str, Any] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    domain = domain_of(request)
    actor = signed_in.actor
    view = await workloads.get_workload(domain, actor, workload_id)
    run_rows = (await runs.list_runs(domain, actor, workload_id, limit=RUNS_SHOWN)).items
    shown = await runs.find_run(domain, actor, workload_id, run_id)
    output = await runs.read_output(domain, workload_id, shown)
    follow = shown is not None and shown.status in ("pending", "running")
    return await page(
        request,
        "workload.html",
        signed_in,
        status_code=status_code,
        view=view,
        w=view.workload,
        runs=run_rows,
        shown=shown,
        lines=output.lines,
        follow=follow,
        secret_keys=view.secret_keys,
        exec_result=exec_result,
        error=error,
    )


@router.get("/workloads/{workload_id}/runs-fragment")
async def runs_fragment(request: Request, workload_id: str) -> Response:
    signed_in = await viewer(request)
    domain = domain_of(request)
    view = await workloads.get_workload(domain, signed_in.actor, workload_id)
    run_rows = (await runs.list_runs(domain, signed_in.actor, workload_id, limit=RUNS_SHOWN)).items
    return fragment("workload_runs.html", w=view.workload, runs=run_rows)


@router.get("/workloads/{workload_id}/runs/{run_id}/follow")
async def follow(request: Request, workload_id: str, run_id: str) -> Response:
    """The run's output as server-sent events (`line`, then `end`): what is there, then new
    lines until the task ends."""
    signed_in = await viewer(request)
    domain = domain_of(request)
    run = await runs.find_run(domain, signed_in.actor, workload_id, run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found")

    async def stream() -> AsyncIterator[str]:
        async for line in runs.follow_output(domain, run):
            yield f"event: line\ndata: {json.dumps(line.message)}\n\n"
        yield "event: end\ndata: {}\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.post("/workloads/{workload_id}/{action}")
async def act(request: Request, workload_id: str, action: str) -> Response:
    signed_in = await changing(request)
    domain = domain_of(request)
    actor = signed_in.actor
    form = await form_of(request)
    try:
        if action == "stop":
            await workloads.stop_workload(domain, actor, workload_id)
        elif action == "start":
            await workloads.start_workload(domain, actor, workload_id)
        elif action == "run":
            await workloads.trigger_run(domain, actor, workload_id)
        elif action == "scale":
            count = optional_int(form.get("count", ""))
            if not isinstance(count, int):
                raise Invalid("count: must be a whole number from 0 to 1000", field="count")
            await workloads.scale_workload(domain, actor, workload_id, count=count)
        elif action == "delete":
            await workloads.delete_workload(domain, actor, workload_id)
            return RedirectResponse("/workloads", status_code=303)
        elif action == "secret":
            await secrets.set_secret(
                domain,
                actor,
                workload_id,
                key=form.get("key", "").strip(),
                value=form.get("value", ""),
            )
        elif action == "unset-secret":
            await secrets.delete_secret(domain, actor, workload_id, form.get("key", ""))
        elif action == "reveal":
            value = await secrets.reveal_secret(domain, actor, workload_id, form.get("key", ""))
            return JSONResponse({"value": value}, headers={"Cache-Control": "no-store"})
        elif action == "exec":
            return await _exec(request, signed_in, workload_id, form.get("command", ""))
        else:
            return Response("no such action", status_code=404)
    except DomainError as exc:
        if action == "reveal":
            return JSONResponse({"error": exc.message}, status_code=400)
        return await _detail(
            request, signed_in, workload_id, None, error=exc.message, status_code=400
        )
    return RedirectResponse(f"/workloads/{workload_id}", status_code=303)


async def _exec(request: Request, signed_in: Viewer, workload_id: str, command: str) -> Response:
    run, result = await execution.exec_command(
        domain_of(request),
        signed_in.actor,
        workload_id,
        command=command,
        stdin=None,
        timeout_seconds=EXEC_TIMEOUT_SECONDS,
        run_id=None,
    )
    shown = {
        "command": command,
        "run_id": run.id,
        "exit_code": result.exit_code,
        "stdout": result.stdout.decode("utf-8", "replace"),
        "stderr": result.stderr.decode("utf-8", "replace"),
    }
    return await _detail(request, signed_in, workload_id, None, exec_result=shown)
