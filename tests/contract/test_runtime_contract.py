"""What `berth.runtime.base` promises of every driver: tasks, logs, events, volumes, capacity.

Each test runs against every driver (the in-memory one always, Docker with the engine), with
the same commands. What only the Docker driver does (the limits it asks the engine for, the
kernel's OOM killer, its networks) is tested in tests/integration/test_docker_runtime.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest

from berth.runtime.base import (
    ImageNotFound,
    InvalidTaskSpec,
    LogLine,
    TaskEvent,
    TaskId,
    TaskNotFound,
    TaskStatus,
)
from berth.testing.waiting import poll, poll_until
from tests.support.drivers import IMAGE, RUN_LABEL, Env


async def collect_logs(env: Env, task_id: TaskId, **kwargs: Any) -> list[LogLine]:
    async with contextlib.aclosing(env.runtime.logs(task_id, **kwargs)) as lines:
        return [line async for line in lines]


# -- launch, create, start --------------------------------------------------------------------


async def test_launch_runs_with_its_labels_and_publishes_ports_on_loopback(env: Env) -> None:
    script = "echo page > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
    spec = env.spec("web", ["sh", "-c", script], ports=(8080,))
    state = await env.runtime.launch(spec)

    assert state.status is TaskStatus.RUNNING
    assert state.name == spec.name
    assert state.labels == spec.labels
    assert state.started_at is not None and state.started_at.tzinfo is not None
    assert state.finished_at is None and state.exit_code is None
    host, port = state.ports[8080]
    assert host == "127.0.0.1"

    async def page() -> str | None:
        async with httpx.AsyncClient() as client:
            try:
                response = await client.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx.TransportError:
                return None
            return response.text if response.status_code == 200 else None

    assert await poll(page) == "page\n"


async def test_create_makes_a_task_that_only_start_runs(env: Env) -> None:
    spec = env.spec("later", ["sleep", "100"])
    created = await env.runtime.create(spec)
    assert created.status is TaskStatus.CREATED
    assert created.started_at is None
    assert (await env.runtime.create(spec)).task_id == created.task_id

    started = await env.runtime.start(created.task_id)
    assert started.task_id == created.task_id and started.status is TaskStatus.RUNNING
    assert started.started_at is not None
    again = await env.runtime.start(created.task_id)  # running: returned as it is
    assert again.status is TaskStatus.RUNNING and again.started_at == started.started_at
    with pytest.raises(TaskNotFound):
        await env.runtime.start(TaskId(f"berth-test-{env.run}-nothing"))


async def test_launch_is_idempotent_by_name(env: Env) -> None:
    spec = env.spec("idem", ["sleep", "100"])
    first = await env.runtime.launch(spec)
    second = await env.runtime.launch(spec)
    assert second.task_id == first.task_id
    assert second.status is TaskStatus.RUNNING
    assert [s.task_id for s in await env.runtime.list_tasks(env.labels)] == [first.task_id]


async def test_concurrent_launches_of_one_name_make_one_task(env: Env) -> None:
    spec = env.spec("race", ["sleep", "100"])
    states = await asyncio.gather(*(env.runtime.launch(spec) for _ in range(3)))
    assert len({s.task_id for s in states}) == 1
    assert len(await env.runtime.list_tasks(env.labels)) == 1


async def test_the_exit_code_and_the_engines_times_are_recorded(env: Env) -> None:
    state = await env.runtime.launch(env.spec("exit3", ["sh", "-c", "exit 3"]))
    final = await env.wait_exited(state.task_id)
    assert final.exit_code == 3
    assert not final.oom_killed
    assert final.finished_at is not None and final.started_at is not None
    assert final.finished_at.tzinfo is not None
    assert final.finished_at >= final.started_at


async def test_a_missing_command_exits_127_with_the_reason_in_the_output(env: Env) -> None:
    state = await env.runtime.launch(env.spec("nocmd", ["/bin/no-such-binary"]))
    done = await env.wait_exited(state.task_id)
    assert done.exit_code == 127
    output = [line.message for line in await collect_logs(env, state.task_id, follow=False)]
    assert any("no-such-binary" in line for line in output)


async def test_a_missing_image_raises_image_not_found(env: Env) -> None:
    image = f"berth-test/missing-{env.run}:latest"
    with pytest.raises(ImageNotFound, match=f"berth-test/missing-{env.run}"):
        await env.runtime.launch(env.spec("noimage", ["true"], image=image))
    with pytest.raises(ImageNotFound):
        await env.runtime.ensure_image(image)
    assert await env.runtime.list_tasks(env.labels) == []
    await env.runtime.ensure_image(IMAGE)  # present: no pull, no error


async def test_an_impossible_spec_raises_invalid_task_spec(env: Env) -> None:
    with pytest.raises(InvalidTaskSpec):
        await env.runtime.launch(env.spec("tiny", ["true"], memory_mb=1))
    assert await env.runtime.list_tasks(env.labels) == []


async def test_capacity_bounds_what_a_task_may_have(env: Env) -> None:
    capacity = await env.runtime.capacity()
    assert capacity.cpus >= 1 and capacity.memory_bytes > 64 * 1024 * 1024
    assert await env.runtime.capacity() == capacity
    with pytest.raises(InvalidTaskSpec):
        await env.runtime.launch(env.spec("too-big", ["true"], cpu=capacity.cpus + 1))
    assert await env.runtime.list_tasks(env.labels) == []


# -- list, stop, remove -----------------------------------------------------------------------


async def test_list_tasks_selects_by_every_label(env: Env) -> None:
    a = await env.runtime.launch(env.spec("a", ["sleep", "100"], labels={**env.labels, "r": "a"}))
    b = await env.runtime.launch(env.spec("b", ["true"], labels={**env.labels, "r": "b"}))
    everything = await env.runtime.list_tasks(env.labels)
    assert {s.task_id for s in everything} == {a.task_id, b.task_id}
    only_a = await env.runtime.list_tasks({**env.labels, "r": "a"})
    assert [s.task_id for s in only_a] == [a.task_id]
    assert only_a[0].status is TaskStatus.RUNNING
    await env.wait_exited(b.task_id)
    (exited,) = await env.runtime.list_tasks({**env.labels, "r": "b"})
    assert exited.status is TaskStatus.EXITED and exited.exit_code == 0
    assert exited.finished_at is not None
    assert await env.runtime.list_tasks({RUN_LABEL: env.run + "-other"}) == []


async def test_stop_ends_a_task_and_is_idempotent(env: Env) -> None:
    state = await env.runtime.launch(env.spec("stop", ["sleep", "100"]))
    await env.runtime.stop(state.task_id, grace_seconds=5)
    stopped = await env.runtime.inspect(state.task_id)
    assert stopped is not None and stopped.status is TaskStatus.EXITED
    assert stopped.exit_code not in (0, None)

    await env.runtime.stop(state.task_id, grace_seconds=1)  # already stopped
    await env.runtime.remove(state.task_id)
    await env.runtime.stop(state.task_id, grace_seconds=1)  # gone


async def test_remove_is_idempotent_and_kills_running_tasks(env: Env) -> None:
    state = await env.runtime.launch(env.spec("rm", ["sleep", "100"]))
    await env.runtime.remove(state.task_id)
    assert await env.runtime.inspect(state.task_id) is None
    await env.runtime.remove(state.task_id)
    assert await env.runtime.list_tasks(env.labels) == []


async def test_memory_usage_is_known_while_the_task_runs(env: Env) -> None:
    state = await env.runtime.launch(env.spec("mem", ["sleep", "100"]))
    used = await poll(lambda: env.runtime.memory_usage(state.task_id))
    assert 0 <= used <= 64 * 1024 * 1024
    await env.runtime.stop(state.task_id, grace_seconds=1)
    assert await poll_until(lambda: _gone(env.runtime.memory_usage(state.task_id)), 5)


async def _gone(usage: Any) -> bool | None:
    return True if await usage is None else None


# -- logs -------------------------------------------------------------------------------------


async def test_logs_split_by_stream_in_order_with_timestamps(env: Env) -> None:
    script = "echo one; sleep 0.05; echo two >&2; sleep 0.05; echo three; printf four"
    state = await env.runtime.launch(env.spec("logs", ["sh", "-c", script]))
    await env.wait_exited(state.task_id)

    lines = await collect_logs(env, state.task_id, follow=False)
    assert [(line.stream, line.message) for line in lines] == [
        ("stdout", "one"),
        ("stderr", "two"),
        ("stdout", "three"),
        ("stdout", "four"),
    ]
    stamps = [line.timestamp for line in lines]
    assert all(stamp.tzinfo is not None for stamp in stamps)
    assert stamps == sorted(stamps)
    assert state.started_at is not None
    assert abs((stamps[0] - state.started_at).total_seconds()) < 10

    since = await collect_logs(env, state.task_id, follow=False, since=lines[2].timestamp)
    assert [line.message for line in since] == ["three", "four"]


async def test_logs_follow_streams_until_the_task_ends(env: Env) -> None:
    script = "echo first; sleep 1; echo second"
    state = await env.runtime.launch(env.spec("follow", ["sh", "-c", script]))
    received: list[str] = []
    async with asyncio.timeout(15):
        async with contextlib.aclosing(env.runtime.logs(state.task_id, follow=True)) as lines:
            async for line in lines:
                received.append(line.message)
                if line.message == "first":
                    # Still sleeping: this line arrived while the task runs.
                    current = await env.runtime.inspect(state.task_id)
                    assert current is not None and current.status is TaskStatus.RUNNING
    assert received == ["first", "second"]
    final = await env.runtime.inspect(state.task_id)
    assert final is not None and final.status is TaskStatus.EXITED


async def test_logs_of_a_missing_task_raise_task_not_found(env: Env) -> None:
    with pytest.raises(TaskNotFound):
        await collect_logs(env, TaskId(f"berth-test-{env.run}-nothing"), follow=False)


# -- events -----------------------------------------------------------------------------------


async def test_events_report_tasks_starting_and_dying(env: Env) -> None:
    events: list[TaskEvent] = []

    async def watch() -> None:
        async with contextlib.aclosing(env.runtime.events(env.labels)) as stream:
            async for event in stream:
                events.append(event)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)  # let it subscribe (a driver in this process does so at once)
    try:
        # The subscription opens asynchronously: launch short tasks until one's death is seen.
        attempt = 0

        async def died() -> tuple[TaskId, TaskEvent] | None:
            nonlocal attempt
            attempt += 1
            state = await env.runtime.launch(env.spec(f"die{attempt}", ["sh", "-c", "exit 7"]))
            await env.wait_exited(state.task_id)

            async def seen() -> tuple[TaskId, TaskEvent] | None:
                for event in events:
                    if event.task_id == state.task_id and event.action == "die":
                        return state.task_id, event
                if watcher.done():
                    watcher.result()
                return None

            return await poll_until(seen, within=2)

        task_id, death = await poll(died, within=20)
        assert death.labels[RUN_LABEL] == env.run
        assert death.labels.get("exitCode") == "7"
        assert any(e.task_id == task_id and e.action == "start" for e in events)
        assert all(e.labels.get(RUN_LABEL) == env.run for e in events)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


# -- volumes ----------------------------------------------------------------------------------


async def test_volumes_outlive_their_task_and_go_once_unused(env: Env) -> None:
    volume = (f"berth-test-{env.run}-data", "/data")

    def with_volume(suffix: str, script: str) -> Any:
        return env.spec(suffix, ["sh", "-c", script], volumes=(volume,), volume_labels=env.labels)

    writer = await env.runtime.launch(with_volume("write", "echo kept > /data/f"))
    await env.wait_exited(writer.task_id)
    assert volume[0] in await env.runtime.volume_usage(env.labels)
    await env.runtime.remove_volumes(env.labels)  # still used by a task: kept
    await env.runtime.remove(writer.task_id)

    reader = await env.runtime.launch(with_volume("read", "cat /data/f"))
    await env.wait_exited(reader.task_id)
    lines = await collect_logs(env, reader.task_id, follow=False)
    assert [line.message for line in lines] == ["kept"]

    await env.runtime.remove(reader.task_id)
    await env.runtime.remove_volumes(env.labels)
    await env.runtime.remove_volumes(env.labels)  # idempotent
    fresh = await env.runtime.launch(with_volume("fresh", "cat /data/f"))
    assert (await env.wait_exited(fresh.task_id)).exit_code != 0  # an empty volume again
