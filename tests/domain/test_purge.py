"""The reconciler drops deleted workloads with everything only they own, in a fixed number of
statements whatever their count (`lifecycle.purge_deleted_workloads`): a workload whose runs
are still active, or whose task is still on the engine, waits for a later pass."""

from __future__ import annotations

from sqlalchemy import func, select

from berth.domain import accounts, lifecycle, secrets, workloads
from berth.domain.auth import Actor, Principal
from berth.domain.context import Domain
from berth.store.models import Run, Secret, Workload
from tests.support.runs import a_job, add_runs


async def new_actor(domain: Domain, email: str) -> Actor:
    user, _kit = await accounts.create_user(domain, email=email)
    principal = Principal(
        company_id=user.company_id, user_id=user.id, is_operator=False, kind="api_key"
    )
    return Actor(user_id=user.id, company_id=user.company_id, principal=principal)


async def rows(domain: Domain, model: type[Run] | type[Secret], workload_id: str) -> int:
    async with domain.store.reading() as session:
        statement = select(func.count()).select_from(model).where(model.workload_id == workload_id)
        return int(await session.scalar(statement) or 0)


async def exists(domain: Domain, workload_id: str) -> bool:
    async with domain.store.reading() as session:
        return await session.get(Workload, workload_id) is not None


async def test_a_purge_drops_finished_deleted_workloads_and_keeps_the_rest(
    domain: Domain, actor: Actor
) -> None:
    other = await new_actor(domain, "other@example.com")
    leaving = await new_actor(domain, "leaving@example.com")
    done = await a_job(domain, actor, "done")
    finished = await add_runs(domain, actor, done, 2)
    await secrets.set_secret(domain, actor, done, key="TOKEN", value="x")
    running = await a_job(domain, actor, "running")
    await add_runs(domain, actor, running, 1, status="running")
    on_engine = await a_job(domain, other, "on-engine")
    live = await a_job(domain, other, "live")
    last = await a_job(domain, leaving, "last")
    for owner, workload_id in [
        (actor, done),
        (actor, running),
        (other, on_engine),
        (leaving, last),
    ]:
        await workloads.delete_workload(domain, owner, workload_id)

    purged = await lifecycle.purge_deleted_workloads(domain, keep={on_engine})

    assert sorted(purged.run_ids) == sorted(finished)
    assert purged.idle_user_ids == [leaving.user_id]
    assert purged.container_ids == []
    assert not await exists(domain, done) and not await exists(domain, last)
    assert await rows(domain, Run, done) == 0 and await rows(domain, Secret, done) == 0
    assert await exists(domain, running) and await rows(domain, Run, running) == 1
    assert await exists(domain, on_engine) and await exists(domain, live)

    again = await lifecycle.purge_deleted_workloads(domain, keep={on_engine})
    assert again.run_ids == [] and again.idle_user_ids == []
