"""Dev-box usage on the read path: measured once, then served from the last measurement
while a single background measurement refreshes a stale figure."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from berth.domain.usage import LiveUsage
from berth.runtime.base import RuntimeDriverError


class CountingEngine:
    """Answers the two usage calls of the runtime contract, counting them; a measurement
    can be held until `release` is set."""

    def __init__(self) -> None:
        self.memory_calls = 0
        self.volume_calls = 0
        self.memory = 100
        self.fail = False
        self.release = asyncio.Event()
        self.release.set()

    async def memory_usage(self, task_id: str) -> int | None:
        self.memory_calls += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeDriverError("engine down")
        return self.memory

    async def volume_usage(self, selector: Mapping[str, str]) -> dict[str, int]:
        self.volume_calls += 1
        return {"a": 2, "b": 3}


async def test_the_first_read_measures_and_later_reads_are_served_from_it() -> None:
    engine = CountingEngine()
    usage = LiveUsage()
    assert await usage.memory_bytes(engine, "t1") == 100  # type: ignore[arg-type]
    engine.memory = 200
    for _ in range(5):
        assert await usage.memory_bytes(engine, "t1") == 100  # type: ignore[arg-type]
    assert engine.memory_calls == 1
    for _ in range(3):
        assert await usage.storage_bytes(engine, {"x": "1"}) == 5  # type: ignore[arg-type]
    assert engine.volume_calls == 1


async def test_a_stale_figure_is_served_at_once_and_refreshed_once_in_the_background() -> None:
    engine = CountingEngine()
    usage = LiveUsage(memory_ttl=0.0)
    assert await usage.memory_bytes(engine, "t1") == 100  # type: ignore[arg-type]
    engine.memory = 200
    engine.release.clear()  # the refresh waits for the engine
    readers = [usage.memory_bytes(engine, "t1") for _ in range(10)]  # type: ignore[arg-type]
    assert await asyncio.gather(*readers) == [100] * 10  # none waited for the engine
    assert engine.memory_calls == 2  # the first read, then one refresh for all ten
    (figure,) = usage.figures.values()
    assert figure.refreshing is not None
    engine.release.set()
    await figure.refreshing
    assert await usage.memory_bytes(engine, "t1") == 200  # type: ignore[arg-type]


async def test_an_engine_error_keeps_the_last_figure() -> None:
    engine = CountingEngine()
    usage = LiveUsage(memory_ttl=0.0)
    assert await usage.memory_bytes(engine, "t1") == 100  # type: ignore[arg-type]
    engine.fail = True
    assert await usage.memory_bytes(engine, "t1") == 100  # type: ignore[arg-type]
    (figure,) = usage.figures.values()
    assert figure.refreshing is not None
    await figure.refreshing
    assert await usage.memory_bytes(engine, "t1") == 100  # type: ignore[arg-type]


async def test_the_epoch_moves_when_a_measurement_changes_a_figure_and_not_otherwise() -> None:
    engine = CountingEngine()
    usage = LiveUsage(memory_ttl=3600.0)
    before = usage.epoch()
    await usage.memory_bytes(engine, "t1")  # type: ignore[arg-type]
    first = usage.epoch()
    assert first != before  # a new figure
    await usage.memory_bytes(engine, "t1")  # type: ignore[arg-type]
    assert usage.epoch() == first  # served from the figure: nothing changed
    (figure,) = usage.figures.values()
    await usage._refresh(figure, lambda: engine.memory_usage("t1"))  # the same value again
    assert usage.epoch() == first
    engine.memory = 300
    await usage._refresh(figure, lambda: engine.memory_usage("t1"))
    assert usage.epoch() != first


def test_the_epoch_moves_once_per_memory_time_to_live(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("berth.domain.usage.time.monotonic", lambda: now[0])
    usage = LiveUsage(memory_ttl=2.0)
    start = usage.epoch()
    now[0] = 101.9
    assert usage.epoch() == start
    now[0] = 102.0
    assert usage.epoch() != start
