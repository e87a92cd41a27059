"""Streamed answers: exec events (NDJSON) and followed log lines, plus polling predicates.

A streamed exec answers `application/x-ndjson` lines: `{"stream": "stdout"|"stderr",
"data": "..."}` as output arrives, then one `{"exit_code": n, "timed_out": bool, ...}`. A
repeated (approved) exec may answer the stored result as one JSON `ExecResult` instead; both
become the same sequence of `ExecOutput` events ending with one `ExecExit`.

A shell session's `streamUrl` is a WebSocket: connect to `shell_stream_url(session)` (the
token as the `token` query parameter) with the subprotocol `SHELL_SUBPROTOCOL`. The client
sends binary frames (stdin bytes) and text frames `{"type": "resize", "cols", "rows"}`; the
server sends binary frames (terminal output), then a text frame `{"type": "exit", "code"}`,
then closes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from berth.schemas.workloads import ExecResult, LogsOut, ShellSessionOut, WorkloadOut
from berth.sdk.errors import BerthError

SHELL_SUBPROTOCOL = "berth.shell.v1"


def shell_stream_url(session: ShellSessionOut) -> str:
    """The session's WebSocket URL with its single-use token as the `token` parameter."""
    info = session.session
    parts = urlsplit(info.stream_url)
    query = urlencode([*parse_qsl(parts.query), ("token", info.token_value)])
    return urlunsplit(parts._replace(query=query))


@dataclass(frozen=True)
class ExecOutput:
    """A chunk of the command's output."""

    stream: Literal["stdout", "stderr"]
    data: str


@dataclass(frozen=True)
class ExecExit:
    """The end of the command: its exit code (`None` when killed) and how it ended."""

    exit_code: int | None
    timed_out: bool
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    """Any other fields of the final line (e.g. `run_id`)."""


ExecEvent = ExecOutput | ExecExit


def parse_exec_line(line: str) -> ExecEvent | None:
    """One NDJSON line of a streamed exec as an event; `None` for a blank line.

    A line `{"error": ..., "code": ...}` (the server failing mid-stream) raises `BerthError`.
    """
    if not line.strip():
        return None
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise BerthError(f"unexpected line in the exec stream: {line[:200]!r}") from exc
    if not isinstance(item, dict):
        raise BerthError(f"unexpected line in the exec stream: {line[:200]!r}")
    if item.get("stream") in ("stdout", "stderr") and isinstance(item.get("data"), str):
        return ExecOutput(stream=item["stream"], data=item["data"])
    if "exit_code" in item:
        code = item.get("exit_code")
        known = {"exit_code", "timed_out", "stdout_truncated", "stderr_truncated"}
        return ExecExit(
            exit_code=code if isinstance(code, int) else None,
            timed_out=bool(item.get("timed_out", False)),
            stdout_truncated=bool(item.get("stdout_truncated", False)),
            stderr_truncated=bool(item.get("stderr_truncated", False)),
            extra={k: v for k, v in item.items() if k not in known},
        )
    if isinstance(item.get("error"), str):
        code = item.get("code")
        raise BerthError(item["error"], code=code if isinstance(code, str) else None)
    raise BerthError(f"unexpected line in the exec stream: {line[:200]!r}")


def events_from_result(result: ExecResult) -> list[ExecEvent]:
    """A whole `ExecResult` as the events a stream would have carried."""
    events: list[ExecEvent] = []
    if result.stdout:
        events.append(ExecOutput(stream="stdout", data=result.stdout))
    if result.stderr:
        events.append(ExecOutput(stream="stderr", data=result.stderr))
    events.append(
        ExecExit(
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            stdout_truncated=result.stdout_truncated,
            stderr_truncated=result.stderr_truncated,
            extra={"run_id": result.run_id},
        )
    )
    return events


def log_lines(logs: LogsOut) -> list[str]:
    """The messages of a logs answer, for a follow that got one (no run to follow yet)."""
    return [event.message for event in logs.events]


def workload_check(
    status: str | Collection[str] | None,
    predicate: Callable[[WorkloadOut], bool] | None,
) -> Callable[[WorkloadOut], bool]:
    """The test `wait_for` applies: the status is one of `status`, and/or `predicate` holds."""
    if status is None and predicate is None:
        raise ValueError("wait_for needs a status or a predicate")
    wanted = {status} if isinstance(status, str) else set(status or ())

    def check(workload: WorkloadOut) -> bool:
        if wanted and workload.status not in wanted:
            return False
        return predicate is None or predicate(workload)

    return check
