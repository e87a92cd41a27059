"""The Docker exec plumbing's pure parts: output capture, start-failure detection, HTTP head."""

from __future__ import annotations

import asyncio

import pytest

from berth.runtime.docker.execs import ExecInfo, _failed_to_start
from berth.runtime.docker.upgrade import read_head
from berth.runtime.output_capture import OutputCapture

OCI_ERROR = (
    b'OCI runtime exec failed: exec failed: unable to start container process: exec: "/bin/sh":'
    b" stat /bin/sh: no such file or directory: unknown\r\n"
)


def test_capture_keeps_each_stream_up_to_its_limit() -> None:
    capture = OutputCapture(5)
    capture.add("stdout", b"abc")
    capture.add("stdout", b"defg")
    capture.add("stdout", b"hij")
    capture.add("stderr", b"12345")
    assert bytes(capture.data["stdout"]) == b"abcde"
    assert capture.truncated == {"stdout": True, "stderr": False}
    assert bytes(capture.data["stderr"]) == b"12345"


def info(*, running: bool = False, exit_code: int | None, pid: int) -> ExecInfo:
    return ExecInfo(running=running, exit_code=exit_code, pid=pid, container_id="c" * 64)


def test_only_the_engine_failing_to_start_counts_as_a_start_failure() -> None:
    assert _failed_to_start(info(exit_code=126, pid=0), OCI_ERROR)
    assert _failed_to_start(info(exit_code=None, pid=0), b"Container abc is not running\r\n")
    # A command that ran (it had a process) and printed the same words, then exited 127.
    assert not _failed_to_start(info(exit_code=127, pid=4242), OCI_ERROR)
    # No pid reported but an ordinary exit and ordinary output (engines without `Pid`).
    assert not _failed_to_start(info(exit_code=127, pid=0), b"sh: nope: not found\n")
    assert not _failed_to_start(info(running=True, exit_code=None, pid=0), OCI_ERROR)


async def test_read_head_parses_the_upgrade_answer() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(
        b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
        b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x02hi"
    )
    status, headers = await read_head(reader)
    assert status == 101
    assert headers["upgrade"] == "tcp"
    assert await reader.readexactly(10) == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"


async def test_read_head_rejects_what_is_not_http() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(ValueError):
        await read_head(reader)
