"""Brokered shell sessions: a short-lived, single-use token for one task of one workload.

`open_session` picks the task and issues the token (kept only as a hash); the WebSocket that
presents it must connect within the connect window, and `claim_session` lets exactly one
connection use it. Refusals happen before any shell starts.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import delete, or_, select, update

from berth.domain.accounts import load_compute_user
from berth.domain.auth import Actor
from berth.domain.containers import owned_container
from berth.domain.context import Domain
from berth.domain.errors import Conflict, NotFound, Unauthenticated
from berth.domain.execution import retiring, running_target
from berth.domain.ids import new_shell_session_id
from berth.domain.pausing import wake_run
from berth.domain.replicas import PRESENCE_PREFIX, presence_name
from berth.domain.workloads import owned_workload
from berth.store.models import Lease, Run, ShellSession, Workload

LOGIN_SHELL = """\
user=$(id -un 2>/dev/null) || user=root
shell=
while IFS=: read -r name _ _ _ _ home sh; do
  if [ "$name" = "$user" ]; then shell=$sh; [ -n "$home" ] && HOME=$home; break; fi
done 2>/dev/null </etc/passwd
if [ -z "$shell" ] || [ ! -x "$shell" ]; then
  if [ -x /bin/bash ]; then shell=/bin/bash; else shell=/bin/sh; fi
fi
export HOME SHELL="$shell" USER="$user" LOGNAME="$user"
cd "$HOME" 2>/dev/null || cd /
exec "$shell" -l
"""
"""Runs the login shell of the image's default user from /etc/passwd (bash, else sh when
that is missing) in its home directory, as sshd would."""


@dataclass(frozen=True)
class TerminalTarget:
    """The running task a container's terminal opens its shell in."""

    task_id: str
    run_id: str


async def container_terminal(domain: Domain, actor: Actor, container_id: str) -> TerminalTarget:
    """Where the actor's terminal into their own dev box runs (the same rights as SSH):
    `NotFound` for an unknown or foreign container, `PrimitiveDisabled` without compute,
    `Conflict` ("container not running") when no task of it runs."""
    async with domain.store.reading() as session:
        await load_compute_user(session, actor.user_id)
        workload = await owned_container(session, actor, container_id)
        run = await session.scalar(
            select(Run).where(Run.workload_id == workload.id, Run.status == "running")
        )
    if run is None or run.task_id is None:
        raise Conflict("container not running")
    await wake_run(domain, run)  # a paused dev box is resumed before its shell starts
    return TerminalTarget(task_id=run.task_id, run_id=run.id)


@dataclass(frozen=True)
class IssuedSession:
    session: ShellSession
    token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(
    domain: Domain,
    actor: Actor,
    workload_id: str,
    *,
    run_id: str | None,
    cols: int,
    rows: int,
    connect_seconds: int,
) -> IssuedSession:
    target = await running_target(domain, actor, workload_id, run_id)
    token = "sh_" + secrets.token_urlsafe(32)
    now = domain.clock.now()
    session_row = ShellSession(
        id=new_shell_session_id(),
        workload_id=target.workload.id,
        run_id=target.run.id,
        user_id=actor.user_id,
        token_hash=_hash(token),
        cols=cols,
        rows=rows,
        status="waiting",
        created_at=now,
        connect_by=now + timedelta(seconds=connect_seconds),
    )
    async with domain.store.transaction() as session:
        session.add(session_row)
    return IssuedSession(session=session_row, token=token)


@dataclass(frozen=True)
class ClaimedSession:
    session: ShellSession
    task_id: str


async def claim_session(domain: Domain, session_id: str, token: str | None) -> ClaimedSession:
    """Use a session's token once; refuse wrong, reused, expired or foreign tokens, and
    sessions whose task no longer runs or is being retired (see `execution.retiring`)."""
    if not token:
        raise Unauthenticated("missing session token: pass ?token= or a Bearer header")
    now = domain.clock.now()
    async with domain.store.transaction() as session:
        claimed = await session.execute(
            update(ShellSession)
            .where(
                ShellSession.id == session_id,
                ShellSession.token_hash == _hash(token),
                ShellSession.status == "waiting",
                ShellSession.connect_by > now,
            )
            .values(status="active", connected_at=now, served_by=domain.replica_id)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise Unauthenticated("invalid, used or expired shell session token")
        row = await session.get(ShellSession, session_id)
        assert row is not None
        run = await session.get(Run, row.run_id)
        workload = await session.get(Workload, row.workload_id)
        if run is None or run.status != "running" or run.task_id is None or workload is None:
            row.status, row.ended_at = "ended", now
            raise Unauthenticated("the session's task is no longer running")
        if retiring(workload, run):
            # Its task stops as soon as its replacement runs: the shell would be cut.
            row.status, row.ended_at = "ended", now
            raise Unauthenticated(
                "the session's task is being replaced (the workload rolls onto a new "
                "generation); open a new shell session"
            )
        found = ClaimedSession(session=row, task_id=run.task_id)
    await wake_run(domain, run)  # a paused workload is resumed before its shell starts
    return found


async def end_session(domain: Domain, session_id: str, *, exit_code: int | None) -> None:
    async with domain.store.transaction() as session:
        row = await session.get(ShellSession, session_id)
        if row is not None and row.status != "ended":
            row.status, row.ended_at, row.exit_code = "ended", domain.clock.now(), exit_code


async def end_orphaned_sessions(domain: Domain, *, starting: bool = False) -> int:
    """End the `active` sessions whose replica is gone: its WebSocket went with it (a crash
    gives no chance to record the end), so they are ended now, without an exit code. A
    replica is gone once its presence lease has lapsed (`berth.domain.replicas`); sessions
    of live replicas, this one's included, are left alone. On a database only one process
    serves from (SQLite, not `Store.shared`), a process `starting` knows every other replica
    is gone: an earlier run of itself, stopped or crashed a moment ago, whose presence lease
    has not lapsed yet. Presence leases lapsed for good are deleted with them. Run at
    start-up and by the `sessions` controller; returns how many sessions it ended."""
    now = domain.clock.now()
    async with domain.store.transaction() as session:
        serving = set(
            await session.scalars(
                select(ShellSession.served_by).where(ShellSession.status == "active").distinct()
            )
        )
        rows = await session.execute(
            select(Lease.name, Lease.expires_at).where(Lease.name.startswith(PRESENCE_PREFIX))
        )
        presences = {name: expires for name, expires in rows}
        live = {
            replica
            for replica in serving
            if replica is not None
            and (
                replica == domain.replica_id
                or (
                    (domain.store.shared or not starting)
                    and presences.get(presence_name(replica), now) > now
                )
            )
        }
        gone = serving - live
        ended = 0
        if gone:
            result = await session.execute(
                update(ShellSession)
                .where(
                    ShellSession.status == "active",
                    or_(
                        ShellSession.served_by.in_([r for r in gone if r is not None]),
                        ShellSession.served_by.is_(None),
                    ),
                )
                .values(status="ended", ended_at=now),
                execution_options={"synchronize_session": False},
            )
            ended = int(result.rowcount)  # type: ignore[attr-defined]
        await session.execute(
            delete(Lease).where(Lease.name.startswith(PRESENCE_PREFIX), Lease.expires_at <= now),
            execution_options={"synchronize_session": False},
        )
    return ended


async def list_sessions(domain: Domain, actor: Actor, workload_id: str) -> list[ShellSession]:
    async with domain.store.reading() as session:
        await load_compute_user(session, actor.user_id)
        await owned_workload(session, actor, workload_id)
        rows = list(
            await session.scalars(
                select(ShellSession)
                .where(ShellSession.workload_id == workload_id)
                .order_by(ShellSession.created_at.desc())
            )
        )
    now = domain.clock.now()
    for row in rows:
        if row.status == "waiting" and row.connect_by <= now:
            row.status = "expired"
    return rows


async def get_session(
    domain: Domain, actor: Actor, workload_id: str, session_id: str
) -> ShellSession:
    for row in await list_sessions(domain, actor, workload_id):
        if row.id == session_id:
            return row
    raise NotFound(f"shell session {session_id} not found")


async def read_transcript(domain: Domain, actor: Actor, workload_id: str, session_id: str) -> str:
    """A session's transcript (asciicast v2) as recorded; `NotFound` if the session is not
    the actor's, or if it never connected (nothing was recorded)."""
    row = await get_session(domain, actor, workload_id, session_id)
    text = domain.transcripts.read(row.id)
    if text is None:
        raise NotFound(f"session {session_id} has no transcript (it never connected)")
    return text


class Transcript(Protocol):
    """What a terminal bridge records a session through: output, input and resizes, in the
    order they happen, until `close`."""

    def output(self, data: bytes) -> None: ...

    def input(self, data: bytes) -> None: ...

    def resize(self, cols: int, rows: int) -> None: ...

    def close(self) -> None: ...


def start_transcript(
    domain: Domain, session_id: str, *, cols: int, rows: int, title: str
) -> Transcript:
    """Begin recording the claimed session `session_id` (replacing anything recorded for it);
    `read_transcript` serves it afterwards."""
    return domain.transcripts.open(session_id, cols=cols, rows=rows, title=title)
