"""Lists page by keyset: every row once, in order, whatever is created or deleted during a
walk; filters on the workload list; bad page sizes and cursors are refused naming the field."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from berth.domain import runs, ssh_keys, workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.errors import Invalid
from berth.domain.ids import new_run_id
from berth.domain.paging import Page
from berth.domain.views import WorkloadFilter
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import Run
from tests.support.keys import public_key_only

T = TypeVar("T")


def schedule(name: str) -> WorkloadCreate:
    return WorkloadCreate.model_validate(
        {"name": name, "type": "schedule", "image": "img", "schedule_expr": "0 0 1 1 *"}
    )


async def walk(
    read: Callable[[str | None], Awaitable[Page[T]]],
    between: Callable[[int], Awaitable[None]] | None = None,
) -> list[T]:
    """Every item of a list, following its cursors; `between(n)` runs after page n."""
    seen: list[T] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await read(cursor)
        seen.extend(page.items)
        pages += 1
        assert pages < 100, "the cursors never end"
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
        if between is not None:
            await between(pages)


async def test_a_walk_sees_every_workload_once_newest_first_across_a_create_and_delete(
    domain: Domain, actor: Actor
) -> None:
    made = [await workloads.create_workload(domain, actor, schedule(f"w{n}")) for n in range(25)]
    newest_first = [view.workload.id for view in reversed(made)]
    seen_before_delete = newest_first[0]
    unseen_deleted = newest_first[20]

    async def change(page: int) -> None:
        if page == 1:
            await workloads.create_workload(domain, actor, schedule("late"))
            await workloads.delete_workload(domain, actor, seen_before_delete)
            await workloads.delete_workload(domain, actor, unseen_deleted)

    async def read(cursor: str | None) -> Page[Any]:
        return await workloads.list_workloads(domain, actor, limit=7, cursor=cursor)

    seen = [view.workload.id for view in await walk(read, change)]
    expected = [w for w in newest_first if w != unseen_deleted]
    assert seen == expected
    fresh = [view.workload.name for view in (await workloads.list_workloads(domain, actor)).items]
    assert fresh[0] == "late" and len(fresh) == 24


async def test_ties_in_creation_time_are_ordered_by_id(domain: Domain, actor: Actor) -> None:
    made = [await workloads.create_workload(domain, actor, schedule(f"t{n}")) for n in range(5)]
    at = made[0].workload.created_at
    async with domain.store.transaction() as session:
        for view in made:
            row = await session.get(workloads.Workload, view.workload.id)
            assert row is not None
            row.created_at = at

    async def read(cursor: str | None) -> Page[Any]:
        return await workloads.list_workloads(domain, actor, limit=2, cursor=cursor)

    seen = [view.workload.id for view in await walk(read)]
    assert seen == sorted((view.workload.id for view in made), reverse=True)


async def test_the_workload_list_filters_by_type_status_and_name_prefix(
    domain: Domain, actor: Actor
) -> None:
    for n in range(3):
        await workloads.create_workload(domain, actor, schedule(f"nightly-{n}"))
    paused = await workloads.create_workload(domain, actor, schedule("weekly"))
    await workloads.stop_workload(domain, actor, paused.workload.id)
    job = WorkloadCreate.model_validate(
        {"name": "nightly-job", "type": "job", "image": "img", "command": "true"}
    )
    await workloads.create_workload(domain, actor, job)

    async def names(**keep: str) -> list[str]:
        page = await workloads.list_workloads(domain, actor, keep=WorkloadFilter(**keep))
        return [view.workload.name for view in page.items]

    assert await names(name_prefix="nightly-") == [
        "nightly-job",
        "nightly-2",
        "nightly-1",
        "nightly-0",
    ]
    assert await names(type="job") == ["nightly-job"]
    assert await names(status="paused") == ["weekly"]
    assert await names(type="schedule", name_prefix="nightly-1") == ["nightly-1"]
    filtered = WorkloadFilter(name_prefix="nightly-")

    async def read(cursor: str | None) -> Page[Any]:
        return await workloads.list_workloads(domain, actor, limit=1, cursor=cursor, keep=filtered)

    assert [view.workload.name for view in await walk(read)] == await names(name_prefix="nightly-")


@pytest.mark.parametrize(
    ("keep", "field"),
    [
        (WorkloadFilter(type="container"), "type"),
        (WorkloadFilter(status="deleting"), "status"),
        (WorkloadFilter(name_prefix="Web"), "name_prefix"),
        (WorkloadFilter(name_prefix="a%"), "name_prefix"),
        (WorkloadFilter(name_prefix=""), "name_prefix"),
    ],
)
async def test_a_bad_filter_is_refused_naming_it(
    domain: Domain, actor: Actor, keep: WorkloadFilter, field: str
) -> None:
    with pytest.raises(Invalid) as refused:
        await workloads.list_workloads(domain, actor, keep=keep)
    assert refused.value.field == field


def forged(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("limit", "cursor", "field"),
    [
        (0, None, "limit"),
        (501, None, "limit"),
        (-3, None, "limit"),
        (None, "not-a-cursor!", "cursor"),
        (None, "", "cursor"),
        (None, forged({"l": "workloads", "t": "yesterday", "i": "x", "r": 0}), "cursor"),
        (None, forged({"l": "workloads", "t": "2026-01-01T00:00:00", "i": "x", "r": 0}), "cursor"),
        (None, forged({"l": "runs", "t": "2026-01-01T00:00:00+00:00", "i": "x", "r": 0}), "cursor"),
        (None, forged(["workloads"]), "cursor"),
        (None, "x" * 2000, "cursor"),
    ],
)
async def test_a_bad_page_size_or_cursor_is_refused_naming_it(
    domain: Domain, actor: Actor, limit: int | None, cursor: str | None, field: str
) -> None:
    with pytest.raises(Invalid) as refused:
        await workloads.list_workloads(domain, actor, limit=limit, cursor=cursor)
    assert refused.value.field == field


async def test_a_walk_sees_every_run_once_newest_first(domain: Domain, actor: Actor) -> None:
    job = WorkloadCreate.model_validate(
        {"name": "j", "type": "job", "image": "img", "command": "true"}
    )
    workload = (await workloads.create_workload(domain, actor, job)).workload
    start = domain.clock.now()
    async with domain.store.transaction() as session:
        for n in range(24):
            session.add(
                Run(
                    id=new_run_id(),
                    workload_id=workload.id,
                    user_id=actor.user_id,
                    trigger="manual",
                    status="succeeded",
                    cpu=0.5,
                    memory_mb=64,
                    # Pairs share a creation time: their order is by id.
                    created_at=start - timedelta(hours=1, seconds=n // 2),
                )
            )
    every = (await runs.list_runs(domain, actor, workload.id, limit=500)).items
    assert len(every) == 25
    keys = [(run.created_at, run.id) for run in every]
    assert keys == sorted(keys, reverse=True)
    extra: list[str] = []

    async def change(page: int) -> None:
        if page == 2:
            extra.append((await workloads.trigger_run(domain, actor, workload.id)).id)

    async def read(cursor: str | None) -> Page[Any]:
        return await runs.list_runs(domain, actor, workload.id, limit=7, cursor=cursor)

    seen = [run.id for run in await walk(read, change)]
    assert seen == [run.id for run in every] and extra[0] not in seen
    workload_cursor = forged({"l": "workloads", "t": start.isoformat(), "i": "x", "r": 0})
    with pytest.raises(Invalid) as refused:
        await runs.list_runs(domain, actor, workload.id, cursor=workload_cursor)
    assert refused.value.field == "cursor"


async def test_a_walk_sees_every_ssh_key_once_oldest_first(domain: Domain, actor: Actor) -> None:
    added = [
        await ssh_keys.add_key(domain, actor, name=f"k{n}", public_key=public_key_only())
        for n in range(9)
    ]

    async def change(page: int) -> None:
        if page == 1:
            await ssh_keys.delete_key(domain, actor, added[0].id)  # seen already
            await ssh_keys.delete_key(domain, actor, added[5].id)  # not yet
            await ssh_keys.add_key(domain, actor, name="late", public_key=public_key_only())

    async def read(cursor: str | None) -> Page[Any]:
        return await ssh_keys.list_keys(domain, actor, limit=3, cursor=cursor)

    seen = [key.name for key in await walk(read, change)]
    assert seen == [f"k{n}" for n in range(9) if n != 5] + ["late"]
