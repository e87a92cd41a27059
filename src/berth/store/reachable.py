"""Waiting for the database at start-up, and saying plainly why it cannot be had.

A replica is often started before or beside its PostgreSQL (a host booting, a container
orchestrator starting both at once). `berth serve` waits for the database, telling the log
each time it tries again, for up to `BERTH_DATABASE_WAIT_SECONDS`; when the time is up, or at
once when the server refuses berth itself (a wrong password or role, no such database:
waiting would not change it) or the URL cannot be used (malformed, a driver not installed),
it stops with one line naming the address (passwords hidden), the reason and what to check,
instead of a driver's traceback. An SQLite file needs no waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sqlalchemy import URL, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from berth.store.db import is_sqlite
from berth.store.errors import is_transient

FIRST_PAUSE_SECONDS = 0.5
LONGEST_PAUSE_SECONDS = 5.0
ATTEMPT_SECONDS = 5.0
"""How long one connection attempt may take: a host that drops packets would otherwise hold
it for the driver's own timeout (a minute for asyncpg)."""
REFUSING_SQLSTATE_CLASSES = ("28", "3D")
"""Invalid authorization (a wrong password, no such role) and no such database."""


class DatabaseUnreachable(Exception):
    """The database could not be reached in time, refused berth, or its URL cannot be
    used; the message says which, and what to check."""


async def wait_for_database(
    url: str, *, wait_seconds: float, on_wait: Callable[[str], None]
) -> None:
    """Return once the database at `url` answers; while it cannot be reached (refused,
    unreachable, starting up), try again after pauses doubling from `FIRST_PAUSE_SECONDS`
    to `LONGEST_PAUSE_SECONDS`, for up to `wait_seconds`, calling `on_wait` with a line
    before each pause. Raises `DatabaseUnreachable`."""
    try:
        parsed = make_url(url)
        if is_sqlite(url):
            return
        # One connection, closed after: not the store's pool, which it would outlive.
        engine = create_async_engine(parsed, poolclass=NullPool)
    except Exception as error:
        reason = _reason(error)
        if url in reason:  # a parser quoting the URL would show its password
            reason = type(error).__name__
        raise DatabaseUnreachable(
            f"BERTH_DATABASE_URL cannot be used ({reason}): it is an SQLAlchemy URL, "
            "postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DATABASE, with special characters "
            "in the password percent-encoded"
        ) from None
    where = _shown(parsed)
    started = time.monotonic()
    pause = FIRST_PAUSE_SECONDS
    try:
        while True:
            try:
                await _try_once(engine)
                return
            except Exception as error:
                reason = _reason(error)
                if _refusing(error):
                    raise DatabaseUnreachable(
                        f"the database at {where} refused berth ({reason}): check the user, "
                        "password and database name in BERTH_DATABASE_URL"
                    ) from None
                if not is_transient(error, connecting=True):
                    raise DatabaseUnreachable(
                        f"the database at {where} cannot be used ({reason}): check "
                        "BERTH_DATABASE_URL and its options"
                    ) from None
                elapsed = time.monotonic() - started
                left = wait_seconds - elapsed
                if left <= 0:
                    waited = f" in {elapsed:.0f} s" if wait_seconds else ""
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
        await engine.dispose()


async def _try_once(engine: AsyncEngine) -> None:
    try:
        async with asyncio.timeout(ATTEMPT_SECONDS), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except TimeoutError:
        # (Raised by the timeout with the cancelled connect as its cause: named plainly.)
        raise TimeoutError(f"no answer in {ATTEMPT_SECONDS:g} s") from None


def _shown(url: URL) -> str:
    """`url` as a log line may show it: the password hidden, in the address or as a
    `password` option."""
    if "password" in url.query:
        url = url.update_query_dict({"password": "hidden"})
    return url.render_as_string(hide_password=True)


def _driver_error(error: BaseException) -> BaseException:
    """The driver's own error: SQLAlchemy wraps it (`orig`), and its asyncpg adapter wraps
    it once more (`__cause__`)."""
    original = getattr(error, "orig", None) or error
    return original.__cause__ or original


def _refusing(error: BaseException) -> bool:
    state = getattr(_driver_error(error), "sqlstate", None) or getattr(
        getattr(error, "orig", None), "sqlstate", None
    )
    return isinstance(state, str) and state.startswith(REFUSING_SQLSTATE_CLASSES)


def _reason(error: BaseException) -> str:
    """The driver's error, its kind and first line."""
    original = _driver_error(error)
    first_line = (str(original).strip().splitlines() or [""])[0]
    kind = type(original).__name__
    return f"{kind}: {first_line}" if first_line else kind
