"""A change confined to one workload (its secrets, a dev box's SSH switch, mounts and ingress
rules) locks that workload's row, not its user's (`berth.domain.locks`): its guards still
hold under concurrent calls on both stores, and on PostgreSQL it no longer waits behind a
write holding the user's row."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import func, select

from berth.domain import containers, ingress, locks, secrets, ssh_keys, workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.errors import Invalid
from berth.schemas.containers import ContainerCreate
from berth.schemas.limits import MAX_SECRETS
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import Secret
from tests.support.concurrent import CALLS, at_once, count, only
from tests.support.keys import public_key_only
from tests.support.postgres import PostgresServer


async def new_service(domain: Domain, actor: Actor) -> str:
    body = WorkloadCreate(name="svc", type="service", image="img", replicas=0)
    return (await workloads.create_workload(domain, actor, body)).workload.id


async def test_concurrent_secret_sets_stop_at_the_limit_per_workload(
    domain: Domain, actor: Actor
) -> None:
    service = await new_service(domain, actor)
    room = 5
    for n in range(MAX_SECRETS - room):
        await secrets.set_secret(domain, actor, service, key=f"K{n}", value="v")
    done, refused = await at_once(
        [secrets.set_secret(domain, actor, service, key=f"NEW{n}", value="v") for n in range(CALLS)]
    )
    only(refused, Invalid)
    assert len(done) == room
    assert await count(domain, select(func.count()).select_from(Secret)) == MAX_SECRETS


async def test_one_secret_set_concurrently_is_one_row_holding_one_of_the_values(
    domain: Domain, actor: Actor
) -> None:
    service = await new_service(domain, actor)
    values = [f"value-{n}" for n in range(CALLS)]
    done, refused = await at_once(
        [secrets.set_secret(domain, actor, service, key="TOKEN", value=v) for v in values]
    )
    assert not refused, refused
    assert len(done) == CALLS
    assert await count(domain, select(func.count()).select_from(Secret)) == 1
    revealed = await secrets.reveal_secret(domain, actor, service, "TOKEN")
    assert revealed in values


async def test_a_workload_change_does_not_wait_for_the_users_row(
    domain: Domain, actor: Actor, postgres_server: PostgresServer | None
) -> None:
    if postgres_server is None:
        pytest.skip("PostgreSQL only (BERTH_TEST_DATABASE=postgresql): SQLite has one writer")
    service = await new_service(domain, actor)
    key = await ssh_keys.add_key(domain, actor, name="k", public_key=public_key_only())
    box = await containers.create_container(
        domain, actor, ContainerCreate(name="box", ssh_key_ids=[key.id])
    )
    box_id = box.workload.id
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold_the_users_row() -> None:
        async with domain.store.transaction() as session:
            assert await locks.lock_user(session, actor.user_id) is not None
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold_the_users_row())
    try:
        await asyncio.wait_for(holding.wait(), 10)
        changes: list[Callable[[], Awaitable[object]]] = [
            lambda: secrets.set_secret(domain, actor, service, key="A", value="1"),
            lambda: secrets.delete_secret(domain, actor, service, "A"),
            lambda: containers.set_ssh_enabled(domain, actor, box_id, False),
            lambda: containers.set_mount_paths(domain, actor, box_id, ["/data"]),
            lambda: ingress.add_rule(domain, actor, box_id, port=80, target_port=8080),
            lambda: ingress.remove_rule(domain, actor, box_id, 80),
        ]
        for change in changes:
            await asyncio.wait_for(change(), 10)
        assert not holder.done()
    finally:
        release.set()
        await holder
