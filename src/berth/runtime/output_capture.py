"""A command's output kept up to a limit, for the drivers' one-off execs.

Every driver reads an exec's stdout and stderr to the end (a command must never block on a
full pipe) but keeps only `ExecSpec.max_output_bytes` of each, noting what it dropped.
"""

from __future__ import annotations

from typing import Literal

from berth.runtime.base import ExecResult

Stream = Literal["stdout", "stderr"]


class OutputCapture:
    """Output of each stream kept up to a limit; what comes beyond is read and dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.data: dict[Stream, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self.truncated: dict[Stream, bool] = {"stdout": False, "stderr": False}

    def add(self, stream: Stream, payload: bytes) -> None:
        buffer = self.data[stream]
        room = self.limit - len(buffer)
        if len(payload) > room:
            self.truncated[stream] = True
            payload = payload[: max(room, 0)]
        buffer += payload

    def everything(self) -> bytes:
        """Both streams' kept output, stdout first (where an engine put its own error)."""
        return bytes(self.data["stdout"] + self.data["stderr"])

    def result(self, exit_code: int | None, *, timed_out: bool = False) -> ExecResult:
        """The exec's result with what was kept."""
        return ExecResult(
            exit_code=exit_code,
            stdout=bytes(self.data["stdout"]),
            stderr=bytes(self.data["stderr"]),
            stdout_truncated=self.truncated["stdout"],
            stderr_truncated=self.truncated["stderr"],
            timed_out=timed_out,
        )
