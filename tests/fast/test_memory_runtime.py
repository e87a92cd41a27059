"""What the in-memory driver adds to the runtime contract (tests/contract holds it to the
contract itself): time from its clock, what a test steers, scripted commands, selection."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest
from pydantic import ValidationError

from berth.clock import ManualClock
from berth.config import Settings
from berth.runtime.base import (
    CommandNotFound,
    ExecSpec,
    InvalidTaskSpec,
    RuntimeUnavailable,
    TaskEvent,
    TaskId,
    TaskSpec,
    TaskStatus,
)
from berth.runtime.factory import create_runtime
from berth.runtime.memory import ExecCall, ExecReply, MemoryRuntime


def spec(name: str, command: list[str] | None, **overrides: object) -> TaskSpec:
    fields: dict[str, object] = {
        "name": name,
        "image": "berth/busybox:latest",
        "command": command,
        "env": {},
        "labels": {"test": "memory"},
        "cpu": 0.5,
        "memory_mb": 64,
    }
    fields.update(overrides)
    return TaskSpec(**fields)


@pytest.fixture
async def runtime(clock: ManualClock) -> MemoryRuntime:
    return MemoryRuntime(clock=clock)


async def test_a_tasks_sleep_passes_on_the_runtimes_clock(
    runtime: MemoryRuntime, clock: ManualClock
) -> None:
    start = clock.now()
    task = await runtime.launch(spec("sleeper", ["sh", "-c", "echo a; sleep 5; echo b; exit 2"]))
    clock.advance(4.9)
    assert (await runtime.inspect(task.task_id)) == task  # still running, nothing new

    clock.advance(0.1)
    done = await runtime.inspect(task.task_id)
    assert done is not None and done.status is TaskStatus.EXITED
    assert (done.exit_code, done.started_at, done.finished_at) == (
        2,
        start,
        start + timedelta(seconds=5),
    )
    lines = [line async for line in runtime.logs(task.task_id, follow=False)]
    assert [(line.message, line.timestamp) for line in lines] == [
        ("a", start),
        ("b", start + timedelta(seconds=5)),
    ]


async def test_a_test_steers_output_exits_oom_kills_and_removals(runtime: MemoryRuntime) -> None:
    events: list[TaskEvent] = []

    async def watch() -> None:
        async for event in runtime.events({"test": "memory"}):
            events.append(event)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)  # subscribed
    try:
        server = await runtime.launch(spec("server", None))
        runtime.emit(server.task_id, "listening\nhalf")
        runtime.finish(server.task_id, exit_code=4)
        killed = await runtime.launch(spec("hungry", None))
        runtime.oom_kill(killed.task_id)
        gone = await runtime.launch(spec("gone", None))
        runtime.vanish(gone.task_id)
        await asyncio.sleep(0)  # the watcher takes what was queued
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    ended = await runtime.inspect(server.task_id)
    assert ended is not None and (ended.status, ended.exit_code) == (TaskStatus.EXITED, 4)
    output = [line.message async for line in runtime.logs(server.task_id, follow=False)]
    assert output == ["listening", "half"]
    oom = await runtime.inspect(killed.task_id)
    assert oom is not None and (oom.oom_killed, oom.exit_code) == (True, 137)
    assert await runtime.inspect(gone.task_id) is None
    seen = [(e.task_id, e.action, e.labels.get("exitCode")) for e in events]
    assert (server.task_id, "die", "4") in seen
    assert (killed.task_id, "oom", None) in seen
    assert (gone.task_id, "destroy", None) in seen


async def test_an_unavailable_engine_refuses_calls_and_ends_event_streams(
    runtime: MemoryRuntime,
) -> None:
    task = await runtime.launch(spec("kept", None))
    stream = runtime.events({})
    pending = asyncio.create_task(anext(stream))
    await asyncio.sleep(0)
    runtime.available = False
    with pytest.raises(RuntimeUnavailable):
        await pending
    with pytest.raises(RuntimeUnavailable):
        await runtime.list_tasks({})
    with pytest.raises(RuntimeUnavailable):
        await runtime.ping()
    runtime.available = True
    assert [t.task_id for t in await runtime.list_tasks({})] == [task.task_id]


async def test_a_failure_injected_for_a_method_happens_once(runtime: MemoryRuntime) -> None:
    runtime.fail_next("start", InvalidTaskSpec("no room on the engine"))
    with pytest.raises(InvalidTaskSpec, match="no room"):
        await runtime.launch(spec("once", None))
    assert await runtime.list_tasks({}) == []  # a refused start removes the task
    started = await runtime.launch(spec("once", None))
    assert started.status is TaskStatus.RUNNING
    assert runtime.calls["start"] == 2 and runtime.calls["create"] == 2


async def test_an_exec_handler_answers_the_commands_it_knows(runtime: MemoryRuntime) -> None:
    calls: list[ExecCall] = []

    def handler(call: ExecCall) -> ExecReply | None:
        calls.append(call)
        if call.argv[0] == "python3":
            return ExecReply(exit_code=0, stdout=b"3.12\n")
        if call.argv[0] == "deploy":
            return ExecReply(stdout=b"working", hangs=True)
        if call.argv[0] == "bash":
            raise CommandNotFound("'bash' was not found in the task's image")
        return None

    runtime.exec_handler = handler
    task = (await runtime.launch(spec("tools", None, env={"A": "1"}))).task_id
    answered = await runtime.exec(task, ExecSpec(argv=["python3", "--version"], stdin=b"x"))
    assert (answered.exit_code, answered.stdout) == (0, b"3.12\n")
    assert (calls[0].env, calls[0].stdin, calls[0].task.task_id) == ({}, b"x", task)
    hung = await runtime.exec(task, ExecSpec(argv=["deploy"], timeout_seconds=5))
    assert (hung.timed_out, hung.exit_code, hung.stdout) == (True, 137, b"working")
    with pytest.raises(CommandNotFound):
        await runtime.exec(task, ExecSpec(argv=["bash"]))
    shell = await runtime.exec(task, ExecSpec(argv=["sh", "-c", "echo $A"]))
    assert shell.stdout == b"1\n"  # left to the toy shell


async def test_a_published_port_closes_connections_nothing_inside_accepts(
    runtime: MemoryRuntime,
) -> None:
    task = await runtime.launch(spec("quiet", ["sleep", "100"], ports=(8080,)))
    host, port = task.ports[8080]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # accepted by the publisher, then closed
    finally:
        writer.close()
    await runtime.stop(task.task_id, grace_seconds=1)
    stopped = await runtime.inspect(TaskId(task.task_id))
    assert stopped is not None and stopped.ports == {}
    with pytest.raises(OSError):
        await asyncio.open_connection(host, port)


async def test_the_factory_and_the_settings_select_the_in_memory_driver(
    clock: ManualClock,
) -> None:
    runtime = create_runtime("", driver="memory", clock=clock)
    assert isinstance(runtime, MemoryRuntime) and runtime.clock is clock
    assert Settings(runtime="memory").runtime == "memory"
    with pytest.raises(ValidationError):
        Settings(runtime="nomad")  # kubernetes is a driver now
