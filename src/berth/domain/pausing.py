"""Pausing and resuming services and dev boxes: their tasks frozen, memory and files kept.

A pause freezes every running task of the workload with the engine's pause (the runtime's
optional `Pausing` ability: Docker's cgroup freezer) and records on each run when
(`Run.paused_at`); a resume thaws them and adds the pause to `Run.paused_seconds`. The runs
stay `running` throughout: the reconciler, which sees a frozen task as running, neither
restarts nor loses it, and a restarted berth finds it paused as it was, resumable. The meter
charges a paused run's memory but no vCPU time (`domain.billing`).

What uses a task wakes its paused workload first: an exec, a shell or terminal, an SSH
session and a request through the HTTP gateway (`wake_workload`, `wake_run`); a resumed
process carries on where it was.

Engine calls run outside transactions. Pauses and resumes of one workload are serialized
in this process (`Domain.freezes`). A pause marks its runs before it freezes their tasks,
and a resume thaws the tasks before it marks the runs, so whatever a crash interrupts, berth
never holds a frozen task for a running one (the opposite is mended by the next wake or
resume, which thaw idempotently).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain import activity
from berth.domain.accounts import load_compute_user
from berth.domain.auth import Actor
from berth.domain.billing import end_pause
from berth.domain.containers import container_status, owned_container
from berth.domain.context import Domain
from berth.domain.errors import Conflict
from berth.domain.locks import lock_owner_then
from berth.domain.statuses import derive_statuses, publish_statuses
from berth.domain.workloads import owned_workload
from berth.runtime.base import Pausing, TaskId, TaskNotFound
from berth.store.models import Run, Workload

Kind = Literal["service", "container"]
"""Which API asks: the Workloads API's services, or the Containers API's dev boxes."""


class PauseUnsupported(Conflict):
    """The engine berth drives cannot freeze a task."""

    code = "pause_unsupported"


def _freezer(domain: Domain) -> Pausing:
    runtime = domain.runtime
    if runtime is None or not isinstance(runtime, Pausing):
        raise PauseUnsupported(
            "pause needs the docker runtime: this berth runs tasks on an engine that cannot "
            "freeze them (Kubernetes has no pause); stop it instead (its volumes are kept)"
        )
    return runtime


async def pause(domain: Domain, actor: Actor, workload_id: str, *, kind: Kind) -> None:
    """Freeze every running task of the caller's service or dev box. Pausing a paused one
    changes nothing; one that does not run (stopped, starting, failed) is a `Conflict`
    naming its state.

    The runs are marked paused before the engine freezes their tasks: a crash between the
    two leaves a task that runs while berth thinks it paused (the next wake or resume thaws
    it, a no-op), never a frozen task that berth would hand commands to."""
    async with domain.freezes.hold(workload_id):
        workload, runs = await _owned_with_runs(domain, actor, workload_id, kind=kind)
        freezer = _freezer(domain)
        _require_running(workload, runs, kind=kind, verb="pause")
        await _freeze(domain, workload_id, runs, freezer=freezer, kind=kind)


async def idle_boxes(domain: Domain) -> list[tuple[Workload, datetime]]:
    """Dev boxes that run, none of whose tasks is paused, with when they last started or
    changed (the earliest their idleness can count from), for `pause_idle_box`."""
    async with domain.store.reading() as session:
        rows = await session.execute(
            select(Workload, func.max(Run.started_at), func.count(Run.paused_at))
            .join(Run, Run.workload_id == Workload.id)
            .where(
                Workload.type == "container",
                Workload.deleted_at.is_(None),
                Workload.desired_state == "running",
                Run.status == "running",
                Run.standby.is_(False),
                Run.stop_requested.is_(False),
            )
            .group_by(Workload.id)
        )
        return [
            (box, max(box.updated_at, started or box.updated_at))
            for box, started, paused in rows
            if not paused
        ]


async def pause_idle_box(domain: Domain, workload_id: str) -> bool:
    """Pause a dev box nobody uses (the idle scaler decided it, with no caller): as
    `pause`, but a box that stopped, paused or changed meanwhile is left alone. True if it
    was paused."""
    async with domain.freezes.hold(workload_id):
        async with domain.store.reading() as session:
            box = await session.get(Workload, workload_id)
            runs = await _live_runs(session, workload_id)
        if box is None or box.deleted_at is not None or box.desired_state != "running":
            return False
        if not runs or any(run.paused_at is not None for run in runs):
            return False
        try:
            await _freeze(domain, workload_id, runs, freezer=_freezer(domain), kind="container")
        except Conflict:
            return False
        return True


async def _freeze(
    domain: Domain, workload_id: str, runs: Sequence[Run], *, freezer: Pausing, kind: Kind
) -> None:
    todo = [run for run in runs if run.paused_at is None and run.task_id is not None]
    await _record(domain, workload_id, [run.id for run in todo], paused=True)
    frozen: list[str] = []
    try:
        for run in todo:
            assert run.task_id is not None
            await freezer.pause(TaskId(run.task_id))
            frozen.append(run.id)
    except BaseException as exc:
        unfrozen = [run.id for run in todo if run.id not in frozen]
        await _record(domain, workload_id, unfrozen, paused=False)
        if isinstance(exc, TaskNotFound):
            noun = _noun(kind)
            raise Conflict(f"{noun} {workload_id} stopped meanwhile: {exc}") from exc
        raise


async def resume(domain: Domain, actor: Actor, workload_id: str, *, kind: Kind) -> None:
    """Thaw the caller's paused service or dev box; its processes carry on. Resuming one
    that runs changes nothing; one that does not run is a `Conflict` naming its state.
    Every running task is asked to thaw, paused in berth's records or not (idempotent), so
    a resume also mends a task the engine froze behind berth's back."""
    async with domain.freezes.hold(workload_id):
        workload, runs = await _owned_with_runs(domain, actor, workload_id, kind=kind)
        freezer = _freezer(domain)
        _require_running(workload, runs, kind=kind, verb="resume")
        await _thaw(domain, workload_id, runs, freezer=freezer, everyone=True)


async def wake_workload(domain: Domain, workload_id: str) -> bool:
    """Resume `workload_id` if a task of it is paused (for a request or a login that found
    it frozen; the caller has authorized it). True if something was thawed."""
    async with domain.freezes.hold(workload_id):
        async with domain.store.reading() as session:
            runs = await _live_runs(session, workload_id)
        if not any(run.paused_at is not None for run in runs):
            return False
        await _thaw(domain, workload_id, runs)
        return True


async def wake_run(domain: Domain, run: Run) -> None:
    """Resume `run`'s workload first if `run` is paused (an exec or a shell about to use its
    task, as read a moment ago)."""
    if run.paused_at is not None:
        await wake_workload(domain, run.workload_id)


async def _thaw(
    domain: Domain,
    workload_id: str,
    runs: Sequence[Run],
    *,
    freezer: Pausing | None = None,
    everyone: bool = False,
) -> None:
    """Thaw the paused runs' tasks (`everyone`: every run's), then record it."""
    freezer = freezer or _freezer(domain)
    thawed = []
    for run in runs:
        if (everyone or run.paused_at is not None) and run.task_id is not None:
            try:
                await freezer.resume(TaskId(run.task_id))
            except TaskNotFound:
                continue  # its task ended meanwhile: the reconciler records that
            if run.paused_at is not None:
                thawed.append(run.id)
    await _record(domain, workload_id, thawed, paused=False)
    # Resumed means used: an idle box is not paused again before its idle time passes anew.
    activity.announce(domain, workload_id)


async def _owned_with_runs(
    domain: Domain, actor: Actor, workload_id: str, *, kind: Kind
) -> tuple[Workload, list[Run]]:
    async with domain.store.reading() as session:
        await load_compute_user(session, actor.user_id)
        if kind == "container":
            workload = await owned_container(session, actor, workload_id)
        else:
            workload = await owned_workload(session, actor, workload_id)
        return workload, await _live_runs(session, workload.id)


async def _live_runs(session: AsyncSession, workload_id: str) -> list[Run]:
    """The workload's runs whose task runs and keeps running (not asked to stop)."""
    return list(
        await session.scalars(
            select(Run).where(
                Run.workload_id == workload_id,
                Run.status == "running",
                Run.task_id.is_not(None),
                Run.standby.is_(False),
                Run.stop_requested.is_(False),
            )
        )
    )


def _noun(kind: Kind) -> str:
    return "dev box" if kind == "container" else "service"


def _require_running(workload: Workload, runs: Sequence[Run], *, kind: Kind, verb: str) -> None:
    noun = _noun(kind)
    if workload.type not in ("service", "container"):
        hint = "; POST .../stop pauses a schedule" if workload.type == "schedule" else ""
        raise Conflict(f"a {workload.type} does not {verb}: only services and dev boxes do{hint}")
    status = container_status(workload) if kind == "container" else workload.status
    if workload.desired_state != "running" or workload.replicas == 0 or not runs:
        start = (
            f"POST /compute/containers/{workload.id}/start"
            if kind == "container"
            else f"POST /v1/compute/{workload.id}/start"
        )
        raise Conflict(
            f"{noun} {workload.id} is {status}: only a running {noun} can {verb}"
            + ("" if workload.desired_state == "running" else f" ({start} starts it)")
        )


async def _record(domain: Domain, workload_id: str, run_ids: list[str], *, paused: bool) -> None:
    """Write what the engine did to `run_ids` (each still running on the task it was read
    with), and the workload's status."""
    if not run_ids:
        return
    now = domain.clock.now()
    async with domain.store.transaction() as session:
        _, workload = await lock_owner_then(session, Workload, workload_id)
        if workload is None:
            return
        for run in await session.scalars(
            select(Run).where(Run.id.in_(run_ids), Run.status == "running").order_by(Run.id)
        ):
            if paused and run.paused_at is None:
                run.paused_at = now
            elif not paused:
                end_pause(run, now=now)
        changed = await derive_statuses(session, [workload], now)
    publish_statuses(domain, changed)
