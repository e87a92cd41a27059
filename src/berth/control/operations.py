"""The reconciler's engine operations under way: at most one per key, each in its own task.

A key is a run id (or, for a changed workload's planning, `workload:<id>`). Whoever reads
runs and then acts on what it read notes the operations under way meanwhile
(`Operations.noting`) and leaves their runs to them: what it read of those runs may be stale
by the time it acts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from berth.runtime.base import RuntimeUnavailable

log = logging.getLogger("berth.reconciler")

Operation = Coroutine[Any, Any, bool | None]
"""An engine operation on one run (or workload); it returns True if it left its run settled
(running as wanted, nothing for a pass to do), else the pass that follows it checks."""

Ended = Callable[[str, bool], None]
"""Called with (key, settled) when an operation ends, unless it was cancelled."""


class Operations:
    def __init__(self, *, ended: Ended, engine_down: Callable[[RuntimeUnavailable], None]) -> None:
        self._ended = ended
        self._engine_down = engine_down
        self._running: dict[str, asyncio.Task[bool]] = {}
        self._noters: list[set[str]] = []

    def __contains__(self, key: str) -> bool:
        return key in self._running

    def keys(self) -> set[str]:
        return set(self._running)

    def start(self, key: str, work: Operation) -> asyncio.Task[bool] | None:
        """Run `work` as the operation for `key`, unless one is under way (then `work` is
        dropped and None returned). The task ends with True if `work` settled its run."""
        if key in self._running:
            work.close()
            return None
        task = asyncio.create_task(self._guarded(key, work))
        self._running[key] = task
        for noted in self._noters:
            noted.add(key)
        return task

    @contextlib.contextmanager
    def noting(self) -> Iterator[set[str]]:
        """The keys of operations under way now or started until the block ends."""
        noted = set(self._running)
        self._noters.append(noted)
        try:
            yield noted
        finally:
            # By identity: another noter's set may be equal to this one (`list.remove` would
            # take the first equal set, someone else's, and later fail on this one).
            self._noters[:] = [other for other in self._noters if other is not noted]

    async def settle(self) -> None:
        """Wait until no operation is under way, those they started included."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Abandon the operations under way (at shutdown); the next start redoes them."""
        pending = list(self._running.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _guarded(self, key: str, work: Operation) -> bool:
        cancelled = settled = False
        try:
            settled = bool(await work)
        except asyncio.CancelledError:
            cancelled = True
            raise
        except RuntimeUnavailable as exc:
            self._engine_down(exc)
        except Exception:
            log.exception("engine operation %s failed; the next pass retries", key)
        finally:
            self._running.pop(key, None)
            if not cancelled:
                self._ended(key, settled)
        return settled
