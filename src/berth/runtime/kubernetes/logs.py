"""Decoding a task's output (pure, no I/O), from the two places a cluster keeps it.

- The pod `log` subresource (what `kubectl logs` reads; it can follow): with
  `timestamps=true` every line starts with the kubelet's RFC 3339 time (nanoseconds) and a
  space. It merges stdout and stderr into one stream, so its lines are reported as `stdout`
  (the API's `stream` option, which keeps them apart, is still behind a feature gate).
  `sinceTime` is whole seconds, so lines before a finer `since` are dropped here.
- The kubelet's log file of the container (CRI format: `<time> <stream> <P|F> <text>`, `P`
  for a piece of a longer line), read through the kubelet's `/logs/pods/...`: stdout and
  stderr apart. Only the current file is there (the kubelet rotates it at its size limit).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

from berth.runtime.base import LogLine

Stream = Literal["stdout", "stderr"]


def parse_log_time(text: str) -> datetime | None:
    """`2026-12-01T05:23:52.464671137Z` as aware UTC (to the microsecond)."""
    if not text.endswith("Z"):
        return None
    body = text[:-1]
    whole, dot, fraction = body.partition(".")
    try:
        stamp = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    except ValueError:
        return None
    if dot:
        digits = (fraction + "000000")[:6]
        if not digits.isdigit():
            return None
        stamp = stamp.replace(microsecond=int(digits))
    return stamp


def since_param(since: datetime) -> str:
    """`sinceTime` for the API (whole seconds, rounded down)."""
    return since.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class LogDecoder:
    """Splits the log stream into `LogLine`s; `since` drops earlier lines."""

    def __init__(self, since: datetime | None = None) -> None:
        self._since = since
        self._pending = b""

    def feed(self, chunk: bytes) -> Iterator[LogLine]:
        self._pending += chunk
        *complete, self._pending = self._pending.split(b"\n")
        for raw in complete:
            line = self._line(raw)
            if line is not None:
                yield line

    def finish(self) -> Iterator[LogLine]:
        if self._pending:
            line = self._line(self._pending)
            self._pending = b""
            if line is not None:
                yield line

    def _line(self, raw: bytes) -> LogLine | None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        stamp_text, _, message = text.partition(" ")
        stamp = parse_log_time(stamp_text)
        if stamp is None:
            return None
        if self._since is not None and stamp < self._since:
            return None
        return LogLine(timestamp=stamp, stream="stdout", message=message)


class CriLogDecoder:
    """Splits a CRI log file into `LogLine`s, joining partial lines per stream."""

    def __init__(self, since: datetime | None = None) -> None:
        self._since = since
        self._pending = b""
        self._partial: dict[Stream, tuple[datetime, list[str]]] = {}

    def feed(self, chunk: bytes) -> Iterator[LogLine]:
        self._pending += chunk
        *complete, self._pending = self._pending.split(b"\n")
        for raw in complete:
            line = self._line(raw.decode("utf-8", "replace"))
            if line is not None:
                yield line

    def finish(self) -> Iterator[LogLine]:
        pending, self._pending = self._pending, b""
        if pending:
            line = self._line(pending.decode("utf-8", "replace"))
            if line is not None:
                yield line
        # Output that ended without a newline (`printf four`) stays a partial line.
        ends = []
        for stream, (stamp, pieces) in self._partial.items():
            if pieces and (self._since is None or stamp >= self._since):
                ends.append(LogLine(timestamp=stamp, stream=stream, message="".join(pieces)))
        self._partial = {}
        yield from sorted(ends, key=lambda line: line.timestamp)

    def _line(self, text: str) -> LogLine | None:
        parts = text.split(" ", 3)
        if len(parts) < 3 or parts[1] not in ("stdout", "stderr"):
            return None
        stamp = parse_log_time(parts[0])
        stream: Stream = "stdout" if parts[1] == "stdout" else "stderr"
        message = parts[3] if len(parts) == 4 else ""
        if stamp is None:
            return None
        first, pieces = self._partial.pop(stream, (stamp, []))
        if parts[2] == "P":
            self._partial[stream] = (first, [*pieces, message])
            return None
        message, stamp = "".join([*pieces, message]), first
        if self._since is not None and stamp < self._since:
            return None
        return LogLine(timestamp=stamp, stream=stream, message=message)
