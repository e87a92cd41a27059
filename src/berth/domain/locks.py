"""Row locks for read-then-write guards.

On SQLite every write transaction holds the database's one write lock from its start
(`BEGIN IMMEDIATE`), so a check and the write it guards can never interleave with another
writer. PostgreSQL runs writers side by side (READ COMMITTED): a guard there first locks the
row that every competing writer must lock too (`SELECT ... FOR UPDATE`, which waits for the
holder's commit and then reads the newest version), and its checks run after it, each
statement seeing what the earlier holder committed. On SQLite the lock clause is left out
(SQLAlchemy renders no `FOR UPDATE` there) and costs nothing.

What each guard locks:
- a user's row: every count or sum over what the user owns (quotas of workloads,
  containers and SSH keys, unique live names), every change of the balance, and every
  write of a user's runs;
- a workload's row alone, for a change confined to the workload and rows only it owns (its
  secrets, a dev box's SSH switch, mount paths and ingress rules: `owned_workload` and
  `owned_container` with `lock=True`). Such a change checks nothing of the user's but that
  compute is enabled, and writes no run, so it need not queue behind the user's other
  writes: on PostgreSQL a secret set no longer waits for a create of another service.
  Writes that hold the user's row and change a workload's own columns (its status, desired
  state or deletion: stop, start, scale, delete, a run started or ended, a status refresh)
  lock that workload's row too, after the user's, so they and such a change follow one
  another instead of overwriting each other's columns;
- the row that moves state (a run, an approval, a shell session): the move re-reads the
  state under the lock, so only one of two racing moves sees the state it expects.

The order, so that no two transactions wait for each other in a circle: **the owning users'
rows first** (several: by id, `lock_users`), then the rows of theirs a transaction changes.
A write holding only a workload's row never takes a user's row after it, not even the share
lock that inserting a row referring to a user takes (it inserts no run). A schedule's fire
inserts runs, so it locks the schedules' owners before the schedules.
An API write locks its user and then writes the user's workloads and runs; so a controller's
write of a run or a workload (a run started or finished, a meter tick, a plan, a status, a
wake) locks the run's or workload's owner first too (`lock_owner_then`), even where it needs
nothing of the user's row: two writers of one user's rows then queue on that one row.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.store.models import Base, Run, User, Workload

M = TypeVar("M", bound=Base)
Owned = TypeVar("Owned", Run, Workload)


async def lock_user(session: AsyncSession, user_id: str) -> User | None:
    """The user's row, locked until the transaction ends, as it is now."""
    user: User | None = await session.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return user


async def locked(session: AsyncSession, model: type[M], key: object) -> M | None:
    """`session.get` of a row locked until the transaction ends, read afresh under the lock."""
    return await session.get(model, key, with_for_update=True, populate_existing=True)


async def lock_users(session: AsyncSession, user_ids: set[str]) -> dict[str, User]:
    """Several users' rows locked in one order (by id), so two transactions locking some of
    the same users never wait for each other in a circle."""
    if not user_ids:
        return {}
    rows = await session.scalars(
        select(User)
        .where(User.id.in_(sorted(user_ids)))
        .order_by(User.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {user.id: user for user in rows}


async def lock_owner_then(
    session: AsyncSession, model: type[Owned], key: str
) -> tuple[User | None, Owned | None]:
    """The owning user's row locked, then the run's or workload's (in that order, see the
    module's docstring), both read afresh under their locks; (None, None) if there is no
    such row. The owner is found inside the locking statement (two statements, not three)."""
    owner = select(model.user_id).where(model.id == key).scalar_subquery()
    user: User | None = await session.scalar(
        select(User)
        .where(User.id == owner)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if user is None:
        return None, None
    return user, await locked(session, model, key)


async def lock_owners(
    session: AsyncSession, model: type[Owned], *conditions: ColumnElement[bool]
) -> dict[str, User]:
    """The rows of the users owning the runs or workloads matching `conditions`, locked
    in id order: taken before a transaction that writes several users' rows. One
    statement: the owners are found inside it."""
    owners = select(model.user_id).where(*conditions)
    rows = await session.scalars(
        select(User)
        .where(User.id.in_(owners))
        .order_by(User.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {user.id: user for user in rows}
