"""The approval gate in a whole berth application in this process: an agent's gated create
is stored and changes nothing, a human's approval replays it exactly once, and an approval
left undecided expires on berth's clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from berth.runtime.base import TaskStatus
from tests.fast.app import InProcessBerth, berth_in_process

HEADER = "Berth-Approval-Id"
TTL = 3600
SERVICE = {"name": "web", "type": "service", "image": "berth/busybox:latest"}


@pytest.fixture
async def berth(data_dir: Path) -> AsyncIterator[InProcessBerth]:
    async with berth_in_process(
        data_dir, default_gated_actions=["create"], approval_ttl_seconds=TTL
    ) as app:
        yield app


async def test_an_agents_gated_create_is_stored_and_changes_nothing(
    berth: InProcessBerth,
) -> None:
    _user, key, _session = await berth.user("dev@example.com")
    async with berth.client(key) as agent:
        asked = await agent.post("/v1/compute", json=SERVICE)
        assert asked.status_code == 202, asked.text
        approval_id = asked.json()["approval_id"]
        assert (await agent.get("/v1/compute")).json()["workloads"] == []
        stored = (await agent.get(f"/v1/approvals/{approval_id}")).json()
    assert (stored["status"], stored["method"], stored["path"]) == (
        "pending",
        "POST",
        "/v1/compute",
    )
    assert stored["body"] == SERVICE and stored["result"] is None
    assert berth.runtime.tasks() == []


async def test_approving_runs_the_call_once_as_the_agent_and_its_task_starts(
    berth: InProcessBerth,
) -> None:
    user_id, key, session = await berth.user("dev@example.com")
    runs = berth.domain.bus.subscribe()
    async with berth.client(key) as agent, berth.client(session) as human:
        approval_id = (await agent.post("/v1/compute", json=SERVICE)).json()["approval_id"]

        approved = await human.post(f"/v1/approvals/{approval_id}/approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["result"]["status_code"] == 201
        created = approved.json()["result"]["body"]
        assert created["user_id"] == user_id

        again = await human.post(f"/v1/approvals/{approval_id}/approve")
        assert again.status_code == 409
        repeat = await agent.post("/v1/compute", json=SERVICE, headers={HEADER: approval_id})
        assert repeat.status_code == 201
        assert repeat.json()["id"] == created["id"]
        listed = (await agent.get("/v1/compute")).json()["workloads"]
        assert [w["id"] for w in listed] == [created["id"]]

    # The application's own controllers run it on the in-memory engine.
    async with asyncio.timeout(10):
        while (event := await runs.get()).kind != "run.started":
            pass
    berth.domain.bus.unsubscribe(runs)
    assert event.workload_id == created["id"]
    (task,) = berth.runtime.tasks()
    assert task.status is TaskStatus.RUNNING
    assert task.spec.labels["dev.berth.workload"] == created["id"]


async def test_an_undecided_approval_expires_on_berths_clock(berth: InProcessBerth) -> None:
    _user, key, session = await berth.user("dev@example.com")
    async with berth.client(key) as agent, berth.client(session) as human:
        approval_id = (await agent.post("/v1/compute", json=SERVICE)).json()["approval_id"]
        berth.clock.advance(TTL - 1)
        assert (await agent.get(f"/v1/approvals/{approval_id}")).json()["status"] == "pending"

        berth.clock.advance(1)
        assert (await agent.get(f"/v1/approvals/{approval_id}")).json()["status"] == "expired"
        late = await human.post(f"/v1/approvals/{approval_id}/approve")
        assert late.status_code == 410
        repeat = await agent.post("/v1/compute", json=SERVICE, headers={HEADER: approval_id})
        assert repeat.status_code == 410
        assert (await agent.get("/v1/compute")).json()["workloads"] == []
