"""A pass re-derives statuses a slice at a time: every stale status is corrected within
ceil(workloads / slice) slices, and no slice reads more than it was given."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from berth.domain import lifecycle, workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import Workload


async def statuses(domain: Domain) -> dict[str, str]:
    async with domain.store.reading() as session:
        rows = await session.execute(select(Workload.id, Workload.status))
        return {workload_id: status for workload_id, status in rows}


async def test_the_sweep_corrects_stale_statuses_a_slice_at_a_time(
    domain: Domain, actor: Actor
) -> None:
    for n in range(5):
        body = WorkloadCreate(name=f"s{n}", type="schedule", image="img", schedule_expr="0 0 1 1 *")
        await workloads.create_workload(domain, actor, body)
    truth = await statuses(domain)
    assert set(truth.values()) == {"scheduled"}
    async with domain.store.transaction() as session:
        await session.execute(update(Workload).values(status="stale"))
    events = domain.bus.subscribe()

    ids = sorted(truth)
    now = datetime.now(UTC)
    after = await lifecycle.refresh_status_slice(domain, now, after="", limit=2)
    assert after == ids[1]
    assert sorted(w for w, s in (await statuses(domain)).items() if s == "stale") == ids[2:]
    after = await lifecycle.refresh_status_slice(domain, now, after=after, limit=2)
    assert after == ids[3]
    after = await lifecycle.refresh_status_slice(domain, now, after=after, limit=2)
    assert after == ""  # the last slice came short: the next one starts over
    assert await statuses(domain) == truth
    published = events.take_waiting()
    assert sorted(e.workload_id or "" for e in published if e.kind == "workload.status") == ids
