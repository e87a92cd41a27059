"""Waiting on a condition with a deadline: the one poller of the tests and the server launcher.

A probe is called until its answer is truthy, which is then returned; at the deadline the
wait fails with an `AssertionError` naming what was awaited and the last answer (so a test
reports it as a failure, not an error, and the message says what never happened). Never a
bare sleep in its place: a fixed sleep is either too short on a loaded machine or wasted on
a quiet one. A probe whose wanted answer can be falsy (an exit code 0, an empty list) wraps
it (`(code,)`, `items or None` ...).

`wait_for` is for plain functions, `poll` for coroutines; `poll_until` gives up quietly
(None at the deadline) for a wait nested in another one that retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}; last={last!r}")


async def poll_until(
    check: Callable[[], Awaitable[T | None]], within: float, *, interval: float = 0.05
) -> T | None:
    """Await `check` until it returns something truthy; its last answer at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await check()
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(interval)


async def poll(
    check: Callable[[], Awaitable[T | None]],
    within: float = 15.0,
    *,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """Like `poll_until`, failing at the deadline."""
    result = await poll_until(check, within, interval=interval)
    if not result:
        raise AssertionError(f"timed out after {within}s waiting for {what or check}")
    return result
