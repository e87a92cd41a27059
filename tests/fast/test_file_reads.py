"""A file read whose exec stream broke before the command's status came is read again (a
read changes nothing); a write is never repeated, and a read that keeps breaking says so."""

from __future__ import annotations

import pytest

from berth.clock import ManualClock
from berth.runtime import files
from berth.runtime.base import RuntimeDriverError, TaskSpec
from berth.runtime.memory import ExecCall, ExecReply, MemoryRuntime

BROKEN = RuntimeDriverError("the command could not be started: the connection ended")


async def flaky_task(breaks: int) -> tuple[MemoryRuntime, list[str], str]:
    """A task whose first `breaks` file commands fail like a dropped exec stream."""
    runtime = MemoryRuntime(clock=ManualClock())
    calls: list[str] = []

    def handler(call: ExecCall) -> ExecReply | None:
        if "berth-files" not in call.argv:
            return None
        calls.append(call.argv[call.argv.index("berth-files") + 1])
        if len(calls) <= breaks:
            raise BROKEN
        return ExecReply(exit_code=0, stdout=b"file\nhello")

    runtime.exec_handler = handler
    spec = TaskSpec(
        name="t", image="berth/busybox:latest", command=["sleep", "infinity"], env={},
        labels={}, cpu=0.5, memory_mb=64,
    )  # fmt: skip
    task = (await runtime.launch(spec)).task_id
    return runtime, calls, task


async def test_a_read_whose_stream_broke_is_read_again() -> None:
    runtime, calls, task = await flaky_task(breaks=files.READ_ATTEMPTS - 1)
    read = await files.read_path(runtime, task, "/tmp/x", max_bytes=100, max_entries=10)
    assert isinstance(read, files.FileContent) and read.data == b"hello"
    assert len(calls) == files.READ_ATTEMPTS


async def test_a_read_that_keeps_breaking_and_a_broken_write_are_errors() -> None:
    runtime, calls, task = await flaky_task(breaks=files.READ_ATTEMPTS)
    with pytest.raises(RuntimeDriverError, match="connection ended"):
        await files.read_path(runtime, task, "/tmp/x", max_bytes=100, max_entries=10)
    assert len(calls) == files.READ_ATTEMPTS

    runtime, calls, task = await flaky_task(breaks=1)
    with pytest.raises(RuntimeDriverError, match="connection ended"):
        await files.write_file(runtime, task, "/tmp/x", b"data")
    assert calls == ["/tmp/x"]
