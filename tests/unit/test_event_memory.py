"""What the reconciler remembers of the engine's events (pure logic, no engine)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from berth.control.event_memory import TaskEventMemory
from berth.runtime.base import TaskEvent, TaskId

T = TaskId("t1")
AT = datetime(2026, 1, 1, tzinfo=UTC)


def event(action: str, *, exit_code: int | None = None, task: TaskId = T) -> TaskEvent:
    return TaskEvent(task_id=task, action=action, labels={}, at=AT, exit_code=exit_code)


async def test_a_start_is_told_once_whether_it_came_before_or_after_the_question() -> None:
    memory = TaskEventMemory()
    memory.note(event("start"))
    assert await memory.start_of(T) == AT
    later = memory.start_of(T)  # told once: now it waits for another start event
    assert not later.done()
    memory.note(event("start"))
    assert await asyncio.wait_for(later, 1) == AT


async def test_a_question_given_up_leaves_nothing_behind() -> None:
    memory = TaskEventMemory()
    waiting = memory.start_of(T)
    waiting.cancel()
    await asyncio.sleep(0)
    memory.note(event("start"))  # remembered for the next question, not lost in the old one
    assert await memory.start_of(T) == AT


def test_only_a_zero_exit_without_an_oom_kill_tells_the_whole_result() -> None:
    memory = TaskEventMemory()
    assert memory.exited_cleanly(event("die", exit_code=0))
    assert not memory.exited_cleanly(event("die", exit_code=1))
    assert not memory.exited_cleanly(event("die"))
    assert not memory.exited_cleanly(
        TaskEvent(task_id=T, action="die", labels={}, at=None, exit_code=0)
    )
    memory.note(event("oom"))
    assert not memory.exited_cleanly(event("die", exit_code=0))
    memory.note(event("destroy"))
    assert memory.exited_cleanly(event("die", exit_code=0))


def test_a_death_is_held_for_its_run_until_taken() -> None:
    memory = TaskEventMemory()
    death = event("die", exit_code=0)
    memory.hold_death("run_1", death)
    assert memory.take_held_death("run_2") is None
    assert memory.take_held_death("run_1") is death
    assert memory.take_held_death("run_1") is None


async def test_an_oom_kill_reported_after_the_death_is_still_seen() -> None:
    memory = TaskEventMemory()
    asking = asyncio.ensure_future(memory.oom_killed_within(T, 5))
    await asyncio.sleep(0)  # the question is asked before the report comes
    memory.note(event("oom"))
    assert await asking is True
    assert await memory.oom_killed_within(T, 0) is True  # and remembered


async def test_a_kill_with_no_oom_report_is_not_called_one() -> None:
    memory = TaskEventMemory()
    memory.note(event("oom", task=TaskId("other")))
    assert await memory.oom_killed_within(T, 0.01) is False
