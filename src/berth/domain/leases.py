"""Controller leases: which replica runs each controller, renewed while it runs.

Several berth replicas share one database; each controller (reconciler, scheduler, meter,
idle scaler) must run on one of them at a time. A lease is a row (name, holder, expires_at).
`hold` takes or renews it in one guarded statement, so of any number of replicas trying at
once exactly one succeeds:

- `UPDATE leases SET holder = me, expires_at = now + ttl WHERE name = n AND (holder = me OR
  expires_at <= now)`: renews one's own lease, or takes over one whose holder let it lapse.
  On PostgreSQL the second of two racing updates waits for the first's row lock and then
  re-checks its WHERE against the committed row (READ COMMITTED), which no longer matches; on
  SQLite the one write lock orders them.
- when no row exists yet, `INSERT ... ON CONFLICT DO NOTHING`: one insert wins, the others
  insert nothing.

Expiry is decided on the database's rows with `Domain.clock`, so replicas' clocks must agree
to well within a lease (NTP does this). A holder that cannot renew must stop its controller
before the lease runs out (`berth.control.leadership` does).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import Executable

from berth.domain.context import Domain
from berth.store.models import Lease


async def hold(domain: Domain, name: str, holder: str, *, seconds: float) -> bool:
    """Take or renew lease `name` for `holder` until `seconds` from now; whether it holds it."""
    now = domain.clock.now()
    until = now + timedelta(seconds=seconds)
    async with domain.store.transaction() as session:
        if await _renew_or_take(session, name, holder, now, until):
            return True
        return await _create(session, name, holder, until)


async def release(domain: Domain, name: str, holder: str) -> None:
    """Give lease `name` up at once if `holder` has it (a replica shutting down), so another
    replica takes it over on its next attempt rather than after the expiry."""
    async with domain.store.transaction() as session:
        await session.execute(
            delete(Lease).where(Lease.name == name, Lease.holder == holder),
            execution_options={"synchronize_session": False},
        )


async def holders(domain: Domain) -> dict[str, tuple[str, datetime]]:
    """Every lease: name -> (holder, expires_at), expired ones included."""
    async with domain.store.reading() as session:
        rows = await session.execute(select(Lease.name, Lease.holder, Lease.expires_at))
        return {name: (holder, expires) for name, holder, expires in rows}


async def _renew_or_take(
    session: AsyncSession, name: str, holder: str, now: datetime, until: datetime
) -> bool:
    result = await session.execute(
        update(Lease)
        .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at <= now))
        .values(holder=holder, expires_at=until),
        execution_options={"synchronize_session": False},
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def _create(session: AsyncSession, name: str, holder: str, until: datetime) -> bool:
    values = {"name": name, "holder": holder, "expires_at": until}
    dialect = session.get_bind().dialect.name
    statement: Executable
    if dialect == "postgresql":
        statement = postgresql.insert(Lease).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(Lease).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - berth runs on these two stores only
        statement = insert(Lease).values(values)
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0) == 1)
