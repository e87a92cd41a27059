"""Pure decoding helpers for the Docker driver: engine timestamps and the logs byte stream.

`GET /containers/{id}/logs` returns, for a container without a TTY, a multiplexed stream of
frames: an 8-byte header (stream type byte, three zero bytes, big-endian uint32 payload length)
followed by the payload. With a TTY the stream is raw bytes, all of it stdout. With
`timestamps=1` the engine prefixes every log entry with an RFC3339Nano timestamp and a space.

Docker writes each log entry as exactly one frame, and splits lines longer than 16 KiB into
several entries, each with its own timestamp. The decoder therefore buffers partial lines per
stream across frames and drops the timestamp that starts a frame continuing a partial line.
Nothing here does I/O.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

from berth.runtime.base import LogLine

Stream = Literal["stdout", "stderr"]

FRAME_HEADER = struct.Struct(">BxxxI")
"""Stream type (0 stdin, 1 stdout, 2 stderr), 3 padding bytes, payload length."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_RE = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
    rb"(?:([Zz])|([+-])(\d\d):?(\d\d))"
)


def _match_time(raw: bytes) -> tuple[datetime | None, int] | None:
    """Parse a timestamp at the start of `raw`; (datetime or None for the zero time, end)."""
    m = _TIME_RE.match(raw)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    if year <= 1:  # Go's zero time.Time: "0001-01-01T00:00:00Z" means "never".
        return None, m.end()
    fraction = (m.group(7) or b"").ljust(6, b"0")[:6]
    if m.group(8):
        tz: timezone = UTC
    else:
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        tz = timezone(-offset if m.group(9) == b"-" else offset)
    try:
        parsed = datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=tz)
    except ValueError:
        return None
    return parsed.astimezone(UTC), m.end()


def parse_engine_time(value: str | None) -> datetime | None:
    """An engine timestamp (RFC3339, up to nanoseconds) as aware UTC; None if unset or bad."""
    if not value:
        return None
    matched = _match_time(value.encode())
    if matched is None or matched[1] != len(value):
        return None
    return matched[0]


def split_timestamp(raw: bytes) -> tuple[datetime | None, bytes]:
    """Split the `timestamps=1` prefix off one log line: (time or None, rest of the line)."""
    matched = _match_time(raw)
    if matched is None or matched[0] is None:
        return None, raw
    end = matched[1]
    if raw[end : end + 1] == b" ":
        end += 1
    elif end != len(raw):
        return None, raw
    return matched[0], raw[end:]


def since_param(since: datetime) -> str:
    """`since` for the logs endpoint: exact Unix seconds with microseconds (naive means UTC)."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    delta = since - _EPOCH
    return f"{delta.days * 86400 + delta.seconds}.{delta.microseconds:06d}"


class FrameDemuxer:
    """Reassembles multiplexed frames from arbitrarily cut chunks of the logs stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> Iterator[tuple[Stream, bytes]]:
        """Yield (stream, payload) for every frame completed by `chunk`."""
        self._buffer += chunk
        while len(self._buffer) >= FRAME_HEADER.size:
            kind, length = FRAME_HEADER.unpack_from(self._buffer)
            end = FRAME_HEADER.size + length
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[FRAME_HEADER.size : end])
            del self._buffer[:end]
            yield ("stderr" if kind == 2 else "stdout"), payload

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered."""
        return len(self._buffer)


class LogDecoder:
    """Turns the logs byte stream into `LogLine`s: demultiplex, split lines, parse timestamps.

    `tty` selects the raw (single stdout stream) format instead of frames. Lines are yielded
    without their newline (and, for a TTY, without the carriage return before it). A line
    that lacks a parseable timestamp gets the previous line's time (or now).
    """

    def __init__(self, *, tty: bool) -> None:
        self._tty = tty
        self._demuxer = FrameDemuxer()
        self._partial: dict[Stream, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self._last_time: datetime | None = None

    def feed(self, chunk: bytes) -> list[LogLine]:
        """The complete lines that `chunk` finishes, in stream order."""
        if self._tty:
            return self._add("stdout", chunk, frame_start=False)
        lines: list[LogLine] = []
        for stream, payload in self._demuxer.feed(chunk):
            lines.extend(self._add(stream, payload, frame_start=True))
        return lines

    def finish(self) -> list[LogLine]:
        """Flush partial lines left when the stream ended (stdout first, then stderr)."""
        lines: list[LogLine] = []
        for stream, buffer in self._partial.items():
            if buffer:
                lines.append(self._line(stream, bytes(buffer)))
                buffer.clear()
        return lines

    def _add(self, stream: Stream, data: bytes, *, frame_start: bool) -> list[LogLine]:
        buffer = self._partial[stream]
        if frame_start and buffer:
            # A continuation entry of a long line: its own timestamp is not part of the text.
            when, rest = split_timestamp(data)
            if when is not None:
                data = rest
        buffer += data
        lines: list[LogLine] = []
        start = 0
        while (newline := buffer.find(b"\n", start)) != -1:
            lines.append(self._line(stream, bytes(buffer[start:newline])))
            start = newline + 1
        del buffer[:start]
        return lines

    def _line(self, stream: Stream, raw: bytes) -> LogLine:
        when, text = split_timestamp(raw)
        if when is None:
            when = self._last_time or datetime.now(UTC)
        self._last_time = when
        if self._tty and text.endswith(b"\r"):
            text = text[:-1]
        return LogLine(timestamp=when, stream=stream, message=text.decode("utf-8", "replace"))
