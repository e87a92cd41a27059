"""Human operators: users who manage the other users of their company in the dashboard.

An operator API key (`berth admin create-key --operator`) has always managed users through
the CLI; a human operator is a user flagged `is_operator` (`berth admin update-user --user ID
--operator on`), who signs in like anyone and sees the dashboard's operator pages: the
company's users, their AccountKits (compute on or off, limits), and credit grants. The flag
gives no extra rights on the API: a signed-in operator's session token acts there as that
user alone, as before.

Every use case here takes the acting user and refuses (`Forbidden`) anyone who is not an
operator, and (`NotFound`) a user of another company, so no page can reach further.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from berth.domain import accounts
from berth.domain.context import Domain
from berth.domain.errors import Forbidden, Invalid, NotFound
from berth.store.models import AccountKit, User

MAX_LISTED = 1000
"""Users listed on one page at most (a company with more pages through `berth admin`)."""


@dataclass(frozen=True)
class KitChange:
    """What an operator may change of a user: AccountKit fields, and a grant (added credits).
    None leaves a field as it is."""

    compute_enabled: bool | None = None
    max_cpu: float | None = None
    max_memory_mb: int | None = None
    max_replicas: int | None = None
    max_workloads: int | None = None
    max_containers: int | None = None
    max_ssh_keys: int | None = None
    add_credits: float | None = None


async def is_operator(domain: Domain, user_id: str) -> bool:
    async with domain.store.reading() as session:
        flag = await session.scalar(select(User.is_operator).where(User.id == user_id))
    return bool(flag)


async def set_operator(domain: Domain, user_id: str, operator: bool) -> User:
    """Make a user an operator of their company, or not (`berth admin update-user`)."""
    async with domain.store.transaction() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        user.is_operator = operator
    return user


async def company_users(domain: Domain, operator_id: str) -> list[tuple[User, AccountKit]]:
    """The users of the operator's company with their AccountKits, by email."""
    company_id = await _operators_company(domain, operator_id)
    async with domain.store.reading() as session:
        rows = await session.execute(
            select(User, AccountKit)
            .join(AccountKit, AccountKit.user_id == User.id)
            .where(User.company_id == company_id)
            .order_by(User.email)
            .limit(MAX_LISTED)
        )
        return [(user, kit) for user, kit in rows]


async def managed_user(domain: Domain, operator_id: str, user_id: str) -> tuple[User, AccountKit]:
    """A user of the operator's company, with their AccountKit."""
    company_id = await _operators_company(domain, operator_id)
    user, kit = await accounts.get_user(domain, user_id)
    if user.company_id != company_id:
        raise NotFound(f"user {user_id} not found")
    return user, kit


async def change_user(
    domain: Domain, operator_id: str, user_id: str, change: KitChange
) -> tuple[User, AccountKit]:
    """Apply `change` to a user of the operator's company (validated as `berth admin
    update-user` validates: limits positive, counts not negative, grants positive)."""
    await managed_user(domain, operator_id, user_id)
    if change.add_credits is not None and not change.add_credits > 0:
        raise Invalid("add_credits: a grant must be more than 0", field="add_credits")
    return await accounts.update_user(
        domain,
        user_id,
        compute_enabled=change.compute_enabled,
        add_credits=change.add_credits,
        max_cpu=change.max_cpu,
        max_memory_mb=change.max_memory_mb,
        max_replicas=change.max_replicas,
        max_workloads=change.max_workloads,
        max_containers=change.max_containers,
        max_ssh_keys=change.max_ssh_keys,
    )


async def _operators_company(domain: Domain, operator_id: str) -> str:
    async with domain.store.reading() as session:
        row = (
            await session.execute(
                select(User.company_id, User.is_operator).where(User.id == operator_id)
            )
        ).first()
    if row is None or not row.is_operator:
        raise Forbidden(
            "operators only: an operator makes you one with "
            "`berth admin update-user --user ID --operator on`"
        )
    return str(row.company_id)
