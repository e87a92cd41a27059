"""Events between replicas on PostgreSQL: LISTEN/NOTIFY on one channel.

Each replica keeps one connection of its own (not from the pool: a LISTEN belongs to its
connection) that listens on `CHANNEL` and sends this replica's events there with
`pg_notify`, one at a time and in order. PostgreSQL hands each notification to every
listener, the sender included (the domain's bus drops its own by their origin). Sending
never blocks the publisher: messages wait in a bounded queue. When the connection is lost,
it is made again (with back-off) and `on_gap` is called, since notifications sent meanwhile
were missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import make_url

log = logging.getLogger("berth.store")

CHANNEL = "berth_events"
MAX_PAYLOAD_BYTES = 7900
"""PostgreSQL refuses a notification payload of 8000 bytes or more."""
QUEUE_SIZE = 10_000
KEEPALIVE_SECONDS = 5.0
"""An idle connection is checked this often, so a lost one is noticed and made again."""
RETRY_MAX_SECONDS = 5.0
CONNECT_WAIT_SECONDS = 10.0


def asyncpg_dsn(url: str) -> str:
    """The libpq-style address of a SQLAlchemy PostgreSQL URL (any of its drivers)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class EventChannel:
    """One replica's end of the channel; `start()` connects, `stop()` closes."""

    def __init__(
        self, url: str, *, on_message: Callable[[str], None], on_gap: Callable[[], None]
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self._on_message = on_message
        self._on_gap = on_gap
        self._outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._unsent: str | None = None
        """The message being sent when the connection was lost: sent first once back."""

    def send(self, payload: str) -> None:
        """Queue `payload` for the other replicas (dropped, with a warning, when too large
        for a notification or when the queue is full)."""
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            log.warning("event too large to send to other replicas: %.200s", payload)
            return
        try:
            self._outbox.put_nowait(payload)
        except asyncio.QueueFull:
            log.warning("event queue to other replicas is full; an event is dropped")

    async def start(self) -> None:
        """Connect and listen (waits up to `CONNECT_WAIT_SECONDS` for the first connection;
        without one yet, the channel keeps trying in the background)."""
        self._task = asyncio.create_task(self._run(), name="event-channel")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), CONNECT_WAIT_SECONDS)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = 0.2
        first = True
        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(self._dsn)
                await connection.add_listener(CHANNEL, self._notified)
                if not first:
                    log.warning("event channel to other replicas connected again")
                    self._on_gap()
                first, delay = False, 0.2
                self._connected.set()
                await self._send_forever(connection)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not first or connection is not None:
                    log.warning("event channel to other replicas lost (%s); reconnecting", exc)
                first = False
            finally:
                self._connected.clear()
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(connection.close(timeout=1))
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _send_forever(self, connection: Any) -> None:
        while True:
            if self._unsent is None:
                try:
                    self._unsent = await asyncio.wait_for(self._outbox.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await connection.execute("SELECT 1")
                    continue
            await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, self._unsent)
            self._unsent = None

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_message(payload)
