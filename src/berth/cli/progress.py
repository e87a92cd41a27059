"""A one-line progress indicator on stderr while the CLI waits for a state.

On a terminal: a spinner with the current status, redrawn in place and erased at the end.
Elsewhere (a pipe, a log file): the label once, a dot per poll, each new status once, and a
newline at the end, so logs stay readable.
"""

from __future__ import annotations

from types import TracebackType
from typing import TextIO

FRAMES = "|/-\\"


class Progress:
    """Use as a context manager; call `update(status)` on every poll."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream = stream
        self._label = label
        self._tty = stream.isatty()
        self._ticks = 0
        self._status: str | None = None

    def update(self, status: str) -> None:
        if self._tty:
            frame = FRAMES[self._ticks % len(FRAMES)]
            self._stream.write(f"\r\x1b[K{frame} {self._label}: {status}")
        elif self._status is None:
            self._stream.write(f"{self._label}: {status} .")
        elif status != self._status:
            self._stream.write(f" {status} .")
        else:
            self._stream.write(".")
        self._ticks += 1
        self._status = status
        self._stream.flush()

    def finish(self) -> None:
        """Erase the spinner line (terminal) or end the dotted line (elsewhere)."""
        if self._ticks:
            self._stream.write("\r\x1b[K" if self._tty else "\n")
            self._stream.flush()
            self._ticks = 0
            self._status = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()
