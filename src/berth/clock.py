"""Where berth reads the time: one `Clock` object, passed down with the other dependencies.

The domain and the controllers decide with the time (crash back-off, schedules, approval
expiry, idle services, usage) and read it from `Domain.clock`, never from `datetime.now`, so
a test can run them on a `ManualClock` and move time forward instead of waiting for it. The
in-memory runtime takes the same clock, so its tasks' start and finish stamps agree with it.
Waiting itself (timeouts, sleeps between passes) stays on the event loop's clock: a
`ManualClock` does not make anything wake up earlier, it changes what a pass sees.

It sits outside the layers, like `token_buckets`: the domain and the runtime drivers both use
it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()

MANUAL_CLOCK_START = datetime(2030, 1, 1, tzinfo=UTC)
"""Where a `ManualClock` starts unless told: a fixed moment, so tests that read times
(schedules' fire times, expiries) see the same ones on every run."""


class ManualClock:
    """A clock that only moves when told to (tests, and the in-memory runtime's tasks)."""

    def __init__(self, start: datetime = MANUAL_CLOCK_START) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock's time is timezone-aware")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by `seconds` (never back); the new time."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to `moment`, which must not be earlier than now."""
        if moment < self._now:
            raise ValueError("a clock does not go back")
        self._now = moment.astimezone(UTC)
