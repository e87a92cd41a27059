"""Human operators (`berth.domain.operators`): only a user flagged as operator manages users,
only those of their own company, with the same rules as `berth admin update-user`."""

from __future__ import annotations

import pytest

from berth.domain import accounts, operators
from berth.domain.context import Domain
from berth.domain.errors import Forbidden, Invalid, NotFound
from berth.domain.ids import new_company_id
from berth.domain.operators import KitChange
from berth.store.models import Company, User


async def test_an_operator_lists_and_changes_the_users_of_their_company(domain: Domain) -> None:
    boss, _ = await accounts.create_user(domain, email="boss@example.com")
    dev, _ = await accounts.create_user(domain, email="dev@example.com", credits=5)
    await operators.set_operator(domain, boss.id, True)

    listed = await operators.company_users(domain, boss.id)
    assert [user.email for user, _kit in listed] == ["boss@example.com", "dev@example.com"]

    user, kit = await operators.change_user(
        domain, boss.id, dev.id, KitChange(compute_enabled=False, max_cpu=1.5, add_credits=2)
    )
    assert (kit.compute_enabled, kit.max_cpu, user.credits) == (False, 1.5, 7)
    with pytest.raises(Invalid) as refused:
        await operators.change_user(domain, boss.id, dev.id, KitChange(add_credits=0))
    assert refused.value.field == "add_credits"
    with pytest.raises(Invalid) as refused:
        await operators.change_user(domain, boss.id, dev.id, KitChange(max_cpu=-1))
    assert refused.value.field == "max_cpu"
    assert (await accounts.get_user(domain, dev.id))[0].credits == 7


async def test_a_user_who_is_not_an_operator_is_refused(domain: Domain) -> None:
    boss, _ = await accounts.create_user(domain, email="boss@example.com")
    dev, _ = await accounts.create_user(domain, email="dev@example.com")
    await operators.set_operator(domain, boss.id, True)
    await operators.set_operator(domain, boss.id, False)
    for call in (
        operators.company_users(domain, dev.id),
        operators.managed_user(domain, dev.id, boss.id),
        operators.change_user(domain, boss.id, dev.id, KitChange(add_credits=100)),
    ):
        with pytest.raises(Forbidden):
            await call
    assert not await operators.is_operator(domain, boss.id)


async def test_an_operator_cannot_reach_a_user_of_another_company(domain: Domain) -> None:
    boss, _ = await accounts.create_user(domain, email="boss@example.com")
    await operators.set_operator(domain, boss.id, True)
    async with domain.store.transaction() as session:
        other = Company(
            id=new_company_id(), name="other", gated_actions=[], approval_ttl_seconds=60
        )
        session.add(other)
        await session.flush()
    stranger, _ = await accounts.create_user(domain, email="stranger@example.com")
    async with domain.store.transaction() as session:
        moved = await session.get(User, stranger.id)
        assert moved is not None
        moved.company_id = other.id

    with pytest.raises(NotFound):
        await operators.change_user(domain, boss.id, stranger.id, KitChange(add_credits=1))
    listed = await operators.company_users(domain, boss.id)
    assert [user.email for user, _kit in listed] == ["boss@example.com"]
