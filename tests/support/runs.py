"""Workloads and finished runs written straight to the store, for domain tests that need a
history (retention, usage reports) without an engine to make it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from berth.domain import workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.ids import new_run_id
from berth.runtime.base import LogLine
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import CreditEntry, Run


async def a_job(domain: Domain, actor: Actor, name: str) -> str:
    body = WorkloadCreate.model_validate(
        {"name": name, "type": "job", "image": "img", "command": "true"}
    )
    view = await workloads.create_workload(domain, actor, body)
    async with domain.store.transaction() as session:  # the create's own run: not wanted here
        for run in await session.scalars(select(Run).where(Run.workload_id == view.workload.id)):
            await session.delete(run)
    return view.workload.id


async def add_runs(
    domain: Domain,
    actor: Actor,
    workload_id: str,
    count: int,
    *,
    status: str = "succeeded",
    days_ago: float = 0,
    archived: bool = True,
) -> list[str]:
    """`count` runs, oldest first, each with an archived log and a usage ledger entry."""
    now = domain.clock.now() - timedelta(days=days_ago)
    ids = []
    async with domain.store.transaction() as session:
        for n in range(count):
            run_id = new_run_id()
            at = now - timedelta(minutes=count - n)
            finished = status not in ("pending", "running")
            session.add(
                Run(
                    id=run_id,
                    workload_id=workload_id,
                    user_id=actor.user_id,
                    trigger="schedule",
                    status=status,
                    cpu=0.5,
                    memory_mb=64,
                    created_at=at,
                    finished_at=at + timedelta(seconds=30) if finished else None,
                    task_id=None if archived else f"task-{run_id}",
                    logs_archived=archived and finished,
                    credits_micro=7,
                )
            )
            session.add(
                CreditEntry(user_id=actor.user_id, amount_micro=-7, kind="usage", run_id=run_id)
            )
            ids.append(run_id)
    for run_id in ids:
        line = LogLine(timestamp=now, stream="stdout", message=f"output of {run_id}")
        domain.logs.write(run_id, [line])
    return ids
