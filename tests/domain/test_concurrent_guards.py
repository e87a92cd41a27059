"""Read-then-write guards hold under concurrent calls, on SQLite and on PostgreSQL (run the
suite with `BERTH_TEST_DATABASE=postgresql`): SQLite's one writer serializes them, and on
PostgreSQL each guard locks the row its competitors lock too (`berth.domain.locks`). Each
test fires many calls at once and checks the end state."""

from __future__ import annotations

from collections.abc import Awaitable

from sqlalchemy import func, select

from berth.domain import accounts, containers, ledger, ssh_keys, workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.errors import Conflict, QuotaExceeded
from berth.schemas.containers import ContainerCreate
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import CreditEntry, SshKey, User, Workload
from tests.support.concurrent import CALLS, at_once, count, only
from tests.support.keys import public_key_only


async def test_concurrent_container_creates_stop_at_the_limit_of_three(
    domain: Domain, actor: Actor
) -> None:
    key = await ssh_keys.add_key(domain, actor, name="k", public_key=public_key_only())
    body = ContainerCreate(name="box", ssh_key_ids=[key.id])
    done, refused = await at_once(
        [containers.create_container(domain, actor, body) for _ in range(CALLS)]
    )
    only(refused, QuotaExceeded)
    assert len(done) == 3
    boxes = select(func.count()).select_from(Workload).where(Workload.type == "container")
    assert await count(domain, boxes) == 3


async def test_concurrent_ssh_key_adds_stop_at_the_limit_of_ten(
    domain: Domain, actor: Actor
) -> None:
    done, refused = await at_once(
        [
            ssh_keys.add_key(domain, actor, name=f"k{n}", public_key=public_key_only())
            for n in range(CALLS)
        ]
    )
    only(refused, QuotaExceeded)
    assert len(done) == 10
    assert await count(domain, select(func.count()).select_from(SshKey)) == 10


async def test_one_key_added_concurrently_is_added_once(domain: Domain, actor: Actor) -> None:
    same = public_key_only()
    done, refused = await at_once(
        [ssh_keys.add_key(domain, actor, name=f"k{n}", public_key=same) for n in range(CALLS)]
    )
    only(refused, Conflict)
    assert len(done) == 1


def job(name: str) -> WorkloadCreate:
    return WorkloadCreate.model_validate(
        {"name": name, "type": "job", "image": "img", "command": ["true"]}
    )


async def test_concurrent_workload_creates_stop_at_max_workloads(
    domain: Domain, actor: Actor
) -> None:
    await accounts.update_user(domain, actor.user_id, max_workloads=4)
    done, refused = await at_once(
        [workloads.create_workload(domain, actor, job(f"j{n}")) for n in range(CALLS)]
    )
    only(refused, QuotaExceeded)
    assert len(done) == 4
    assert await count(domain, select(func.count()).select_from(Workload)) == 4


async def test_creates_and_deletes_at_once_keep_the_live_counts_the_rows_count(
    domain: Domain, actor: Actor
) -> None:
    """The quotas read counts kept on the user (not a count of rows): concurrent creates and
    deletes of workloads and dev boxes leave them equal to the rows."""
    await accounts.update_user(domain, actor.user_id, max_workloads=6)
    key = await ssh_keys.add_key(domain, actor, name="k", public_key=public_key_only())
    first = [await workloads.create_workload(domain, actor, job(f"old{n}")) for n in range(3)]
    box = await containers.create_container(
        domain, actor, ContainerCreate(name="box", ssh_key_ids=[key.id])
    )
    calls: list[Awaitable[object]] = [
        *(workloads.delete_workload(domain, actor, view.workload.id) for view in first),
        containers.delete_container(domain, actor, box.workload.id),
        *(workloads.create_workload(domain, actor, job(f"new{n}")) for n in range(CALLS)),
        *(
            containers.create_container(
                domain, actor, ContainerCreate(name=f"b{n}", ssh_key_ids=[key.id])
            )
            for n in range(5)
        ),
    ]
    _done, refused = await at_once(calls)
    only(refused, QuotaExceeded)
    live = Workload.deleted_at.is_(None)
    rows = await count(domain, select(func.count()).select_from(Workload).where(live))
    boxes = await count(
        domain,
        select(func.count()).select_from(Workload).where(live, Workload.type == "container"),
    )
    async with domain.store.reading() as session:
        user = await session.get(User, actor.user_id)
    assert user is not None
    assert (user.live_workloads, user.live_containers) == (rows, boxes)
    # Jobs count to the six (boxes too, but only boxes limit boxes: to three).
    assert rows - boxes <= 6 and boxes <= 3


async def test_one_name_created_concurrently_is_created_once(domain: Domain, actor: Actor) -> None:
    done, refused = await at_once(
        [workloads.create_workload(domain, actor, job("same")) for _ in range(CALLS)]
    )
    only(refused, Conflict)
    assert len(done) == 1


async def test_concurrent_grants_and_adjustments_keep_the_balance_the_ledgers_sum(
    domain: Domain, actor: Actor
) -> None:
    before, _kit = await accounts.get_user(domain, actor.user_id)
    await at_once(
        [accounts.update_user(domain, actor.user_id, add_credits=0.25) for _ in range(CALLS)]
    )
    after, _kit = await accounts.get_user(domain, actor.user_id)
    assert after.credits_micro == before.credits_micro + CALLS * 250_000
    async with domain.store.reading() as session:
        assert await ledger.ledger_sum(session, actor.user_id) == after.credits_micro
        grants = await session.scalar(
            select(func.count())
            .select_from(CreditEntry)
            .where(CreditEntry.user_id == actor.user_id, CreditEntry.kind == "grant")
        )
    assert grants == CALLS + 1  # the starting balance is the first grant

    # Taking more than the balance, concurrently: the balance never goes below zero.
    await accounts.update_user(domain, actor.user_id, credits=1.0)
    done, refused = await at_once(
        [accounts.update_user(domain, actor.user_id, add_credits=-0.3) for _ in range(CALLS)]
    )
    assert len(done) == 3 and len(refused) == CALLS - 3
    async with domain.store.reading() as session:
        user = await session.get(User, actor.user_id)
        assert user is not None and user.credits_micro == 100_000
        assert await ledger.ledger_sum(session, actor.user_id) == user.credits_micro
