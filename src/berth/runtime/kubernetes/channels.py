"""The API server's WebSocket channel protocol for exec and port-forward (pure, no I/O).

Each binary message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 the error
channel (a `Status` object once the command has ended: `Success`, or `NonZeroExitCode` with
the exit code in `details.causes`, or a failure of the runtime to start the command), 4 the
terminal size (`{"Width": cols, "Height": rows}`). `v5.channel.k8s.io` adds channel 255: a
message `[255, n]` closes channel n, which is how a command's stdin reaches end-of-file.
Port-forward uses channel 2i for data and 2i+1 for errors of the i-th port; the first
message on each carries the port number (two bytes, little-endian) and nothing else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
EXEC_PROTOCOL = "v5.channel.k8s.io"
"""The only exec protocol that can close stdin without closing the whole connection."""
PORT_FORWARD_PROTOCOL = "v4.channel.k8s.io"

_RUNTIME_FAILURE = re.compile(
    r"OCI runtime|exec failed|unable to start container process|failed to exec", re.IGNORECASE
)
_MISSING_PROGRAM = re.compile(
    r"no such file or directory|executable file not found|not found in \$PATH", re.IGNORECASE
)
_NOT_RUNNING = re.compile(
    r"not running|container not found|cannot exec into a container in a completed pod|"
    r"is terminated|does not have a host assigned|pod does not exist",
    re.IGNORECASE,
)


def frame(channel: int, data: bytes = b"") -> bytes:
    return bytes([channel]) + data


def close_frame(channel: int) -> bytes:
    return bytes([CLOSE, channel])


def resize_frame(*, cols: int, rows: int) -> bytes:
    return frame(RESIZE, json.dumps({"Width": cols, "Height": rows}).encode())


def split_frame(message: bytes | str) -> tuple[int, bytes] | None:
    """(channel, payload) of one message; None for an empty or text message."""
    if isinstance(message, str) or not message:
        return None
    return message[0], bytes(message[1:])


@dataclass(frozen=True)
class Ending:
    """What the error channel says about how a command ended."""

    exit_code: int | None
    """The command's exit code; None when it never ran (see `failure`)."""
    failure: str | None = None
    """The runtime's message when it could not run the command at all."""

    @property
    def missing_program(self) -> bool:
        return self.failure is not None and bool(
            _RUNTIME_FAILURE.search(self.failure) and _MISSING_PROGRAM.search(self.failure)
        )

    @property
    def not_running(self) -> bool:
        return self.failure is not None and bool(_NOT_RUNNING.search(self.failure))


def parse_status(payload: bytes) -> Ending:
    """The error channel's `Status` object as an `Ending`."""
    try:
        status = json.loads(payload)
    except ValueError:
        text = payload.decode("utf-8", "replace").strip()
        return Ending(exit_code=None, failure=text or "the command failed")
    if not isinstance(status, dict):
        return Ending(exit_code=None, failure=str(status))
    if status.get("status") == "Success":
        return Ending(exit_code=0)
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            message = str(cause.get("message") or "")
            if cause.get("reason") == "ExitCode" and message.lstrip("-").isdigit():
                return Ending(exit_code=int(message))
    return Ending(exit_code=None, failure=str(status.get("message") or "the command failed"))


def port_prefix(port: int) -> bytes:
    return port.to_bytes(2, "little")
