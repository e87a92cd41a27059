"""The reconciler's record of engine operations under way (pure logic, no engine)."""

from __future__ import annotations

import asyncio

from berth.control.operations import Operations


async def idle() -> bool:
    await asyncio.sleep(0)
    return True


async def test_overlapping_noters_with_equal_sets_each_see_what_started_meanwhile() -> None:
    operations = Operations(ended=lambda _key, _settled: None, engine_down=lambda _exc: None)
    with operations.noting() as first:
        with operations.noting() as second:
            assert first == second == set()  # equal, yet two noters
        # The inner one leaving must not take the outer one's place.
        operations.start("run_1", idle())
        assert first == {"run_1"}
    with operations.noting() as third:  # nothing left over from the two before
        assert third == {"run_1"}
    await operations.settle()
    assert operations.keys() == set()
