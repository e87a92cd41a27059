"""Waiting for the database at start-up, and saying plainly why it cannot be had.

A replica is often started before or beside its PostgreSQL (a host booting, a container
orchestrator starting both at once). `berth serve` waits for the database, telling the log
each time it tries again, for up to `BERTH_DATABASE_WAIT_SECONDS`; when the time is up, or at
once when the server refuses berth itself (a wrong password, no such database: waiting would
not change it), it stops with one line naming the address (password hidden), the reason and
what to check, instead of a driver's traceback. An SQLite file needs no waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sqlalchemy import make_url, text

from berth.store.db import Store
from berth.store.errors import is_transient

FIRST_PAUSE_SECONDS = 0.5
LONGEST_PAUSE_SECONDS = 5.0


class DatabaseUnreachable(Exception):
    """The database could not be reached in time, or refused berth; the message says
    which, and what to check."""


async def wait_for_database(
    url: str, *, wait_seconds: float, on_wait: Callable[[str], None]
) -> None:
    """Return once the database at `url` answers; while it cannot be reached (refused,
    unreachable, starting up), try again after pauses doubling from `FIRST_PAUSE_SECONDS`
    to `LONGEST_PAUSE_SECONDS`, for up to `wait_seconds`, calling `on_wait` with a line
    before each pause. Raises `DatabaseUnreachable`."""
    if make_url(url).get_backend_name() == "sqlite":
        return
    store = Store(url, pool_size=1, pool_overflow=0)
    where = make_url(url).render_as_string(hide_password=True)
    deadline = time.monotonic() + wait_seconds
    pause = FIRST_PAUSE_SECONDS
    try:
        while True:
            try:
                async with store.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
                return
            except Exception as error:
                reason = _reason(error)
                if not is_transient(error, connecting=True):
                    raise DatabaseUnreachable(
                        f"the database at {where} refused berth ({reason}): check the user, "
                        "password and database name in BERTH_DATABASE_URL"
                    ) from None
                left = deadline - time.monotonic()
                if left <= 0:
                    waited = f" in {wait_seconds:g} s" if wait_seconds else ""
                    hint = " (BERTH_DATABASE_WAIT_SECONDS sets how long berth waits)"
                    raise DatabaseUnreachable(
                        f"the database at {where} could not be reached{waited} ({reason}): "
                        "check that PostgreSQL runs there and that BERTH_DATABASE_URL names it"
                        + (hint if wait_seconds else "")
                    ) from None
                pause = min(pause, left)
                on_wait(
                    f"waiting for the database at {where} ({reason}); trying again in "
                    f"{pause:.1f} s, giving up in {left:.1f} s"
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
    finally:
        await store.close()


def _reason(error: BaseException) -> str:
    """The driver's own error, its kind and first line (SQLAlchemy wraps it)."""
    original = getattr(error, "orig", None) or error
    first_line = (str(original).strip().splitlines() or [""])[0]
    kind = type(original).__name__
    return f"{kind}: {first_line}" if first_line else kind
