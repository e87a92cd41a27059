"""The use cases behind the terminal WebSockets, against the real store: where a container's
terminal runs, which workloads the status stream reports, and shell transcripts."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from berth.domain import accounts, containers, leases, lifecycle, shells, ssh_keys, workloads
from berth.domain.auth import Actor, Principal
from berth.domain.context import Domain
from berth.domain.errors import Conflict, NotFound, PrimitiveDisabled
from berth.domain.replicas import presence_name
from berth.schemas.containers import ContainerCreate
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import Run


def public_key(directory: Path) -> str:
    path = directory / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(path.with_name("key.pub").read_text().split()[:2])


async def new_box(domain: Domain, actor: Actor, directory: Path) -> str:
    """A dev box of the actor's (a container needs an SSH key)."""
    key = await ssh_keys.add_key(domain, actor, name="k", public_key=public_key(directory))
    body = ContainerCreate(name="box", ssh_key_ids=[key.id])
    return (await containers.create_container(domain, actor, body)).workload.id


async def start_tasks(domain: Domain, workload_id: str) -> str:
    """Let the planner add the workload's run and record its task as started (as the
    reconciler would); the run's id."""
    await lifecycle.converge_desired_runs(domain, datetime.now(UTC))
    async with domain.store.reading() as session:
        (run,) = await session.scalars(select(Run).where(Run.workload_id == workload_id))
    assert await lifecycle.mark_run_started(
        domain, run.id, task_id=f"task-{workload_id}", started_at=datetime.now(UTC)
    )
    return run.id


async def test_a_container_terminal_opens_in_the_running_task_of_the_actors_own_box(
    domain: Domain, actor: Actor, tmp_path: Path
) -> None:
    box = await new_box(domain, actor, tmp_path)
    with pytest.raises(Conflict, match="container not running"):
        await shells.container_terminal(domain, actor, box)

    run_id = await start_tasks(domain, box)
    target = await shells.container_terminal(domain, actor, box)
    assert (target.task_id, target.run_id) == (f"task-{box}", run_id)

    user, _kit = await accounts.create_user(domain, email="other@example.com")
    stranger = Actor(
        user_id=user.id,
        company_id=user.company_id,
        principal=Principal(
            company_id=user.company_id, user_id=user.id, is_operator=False, kind="api_key"
        ),
    )
    with pytest.raises(NotFound, match="container not found"):
        await shells.container_terminal(domain, stranger, box)

    await accounts.update_user(domain, actor.user_id, compute_enabled=False)
    with pytest.raises(PrimitiveDisabled):
        await shells.container_terminal(domain, actor, box)


async def test_a_service_is_not_a_container(domain: Domain, actor: Actor, tmp_path: Path) -> None:
    body = WorkloadCreate(name="svc", type="service", image="img")
    service = (await workloads.create_workload(domain, actor, body)).workload
    box = await new_box(domain, actor, tmp_path)
    await start_tasks(domain, service.id)

    assert await containers.is_container(domain, box)
    assert not await containers.is_container(domain, service.id)
    assert not await containers.is_container(domain, "wl_unknown")
    with pytest.raises(NotFound, match="container not found"):
        await shells.container_terminal(domain, actor, service.id)


async def test_compute_user_required_for_the_status_stream(domain: Domain, actor: Actor) -> None:
    await accounts.require_compute_user(domain, actor)
    with pytest.raises(NotFound):
        await accounts.require_compute_user(domain, replace(actor, user_id="usr_unknown"))
    await accounts.update_user(domain, actor.user_id, compute_enabled=False)
    with pytest.raises(PrimitiveDisabled):
        await accounts.require_compute_user(domain, actor)
    # What the request's credential was read with decides, without another read.
    read_disabled = replace(actor, principal=replace(actor.principal, compute_enabled=False))
    with pytest.raises(PrimitiveDisabled):
        await accounts.require_compute_user(domain, read_disabled)


async def test_a_transcript_is_served_once_recorded_and_only_to_its_owner(
    domain: Domain, actor: Actor
) -> None:
    body = WorkloadCreate(name="svc", type="service", image="img")
    service = (await workloads.create_workload(domain, actor, body)).workload
    await start_tasks(domain, service.id)
    issued = await shells.open_session(
        domain, actor, service.id, run_id=None, cols=80, rows=24, connect_seconds=60
    )
    session_id = issued.session.id
    with pytest.raises(NotFound, match="never connected"):
        await shells.read_transcript(domain, actor, service.id, session_id)

    transcript = shells.start_transcript(domain, session_id, cols=80, rows=24, title="t")
    transcript.output(b"$ ")
    transcript.input(b"ls\n")
    transcript.resize(100, 30)
    transcript.close()
    text = await shells.read_transcript(domain, actor, service.id, session_id)
    header, *events = text.splitlines()
    assert '"width": 80' in header
    assert [event.split(", ", 1)[1] for event in events] == [
        '"o", "$ "]',
        '"i", "ls\\n"]',
        '"r", "100x30"]',
    ]

    with pytest.raises(NotFound):
        await shells.read_transcript(domain, actor, service.id, "sh_unknown")


async def test_a_sweep_ends_only_the_sessions_of_replicas_that_are_gone(
    domain: Domain, actor: Actor
) -> None:
    """Replicas `a` and `b` each serve a session; `a` keeps a presence lease, `b` has none
    (it is gone). A sweep from replica `c` ends `b`'s session only, and `a`'s once its
    presence has lapsed; its lapsed presence lease is deleted with it."""
    body = WorkloadCreate(name="svc", type="service", image="img")
    service = (await workloads.create_workload(domain, actor, body)).workload
    await start_tasks(domain, service.id)
    a, b, c = (replace(domain, replica_id=name) for name in ("a", "b", "c"))
    assert await leases.hold(a, presence_name("a"), "a", seconds=60)

    async def claimed_on(replica: Domain) -> str:
        issued = await shells.open_session(
            replica, actor, service.id, run_id=None, cols=80, rows=24, connect_seconds=60
        )
        await shells.claim_session(replica, issued.session.id, issued.token)
        return issued.session.id

    on_a, on_b = await claimed_on(a), await claimed_on(b)

    async def statuses() -> dict[str, str]:
        rows = await shells.list_sessions(domain, actor, service.id)
        return {row.id: row.status for row in rows}

    assert await shells.end_orphaned_sessions(b) == 0  # its own session, and a is alive
    assert await shells.end_orphaned_sessions(c) == 1
    assert await statuses() == {on_a: "active", on_b: "ended"}

    assert await leases.hold(a, presence_name("a"), "a", seconds=-1)  # a stopped renewing
    assert await shells.end_orphaned_sessions(c) == 1
    assert await statuses() == {on_a: "ended", on_b: "ended"}
    assert presence_name("a") not in await leases.holders(domain)


async def test_a_process_starting_on_sqlite_ends_its_earlier_runs_sessions_at_once(
    domain: Domain, actor: Actor
) -> None:
    """Replica `old` serves a session and crashes with its presence lease still current. On
    SQLite (one process serves) the process starting next ends that session at once; on
    PostgreSQL `old` may be another live replica, so the session waits for its lease."""
    body = WorkloadCreate(name="svc", type="service", image="img")
    service = (await workloads.create_workload(domain, actor, body)).workload
    await start_tasks(domain, service.id)
    old, new = (replace(domain, replica_id=name) for name in ("old", "new"))
    assert await leases.hold(old, presence_name("old"), "old", seconds=60)
    issued = await shells.open_session(
        old, actor, service.id, run_id=None, cols=80, rows=24, connect_seconds=60
    )
    await shells.claim_session(old, issued.session.id, issued.token)

    ended = await shells.end_orphaned_sessions(new, starting=True)

    assert ended == (0 if domain.store.shared else 1)
    assert await shells.end_orphaned_sessions(new) == 0  # a sweep waits for the lease
