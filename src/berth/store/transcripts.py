"""Shell session transcripts in asciicast v2: a JSON header line, then `[time, code, data]`
events, `o` for output, `i` for input, `r` for a resize (`"COLSxROWS"`).

https://docs.asciinema.org/manual/asciicast/v2/ describes the format; `asciinema play` can
replay these files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO


class TranscriptWriter:
    def __init__(self, path: Path, *, cols: int, rows: int, title: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("w", encoding="utf-8")
        self._start = time.monotonic()
        header = {
            "version": 2,
            "width": cols,
            "height": rows,
            "timestamp": int(time.time()),
            "title": title,
        }
        self._file.write(json.dumps(header) + "\n")
        self._file.flush()

    def _event(self, code: str, data: str) -> None:
        if self._file.closed:
            return
        elapsed = round(time.monotonic() - self._start, 6)
        self._file.write(json.dumps([elapsed, code, data]) + "\n")
        self._file.flush()

    def output(self, data: bytes) -> None:
        self._event("o", data.decode("utf-8", errors="replace"))

    def input(self, data: bytes) -> None:
        self._event("i", data.decode("utf-8", errors="replace"))

    def resize(self, cols: int, rows: int) -> None:
        self._event("r", f"{cols}x{rows}")

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class TranscriptStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, session_id: str) -> Path:
        return self.directory / f"{session_id}.cast"

    def open(self, session_id: str, *, cols: int, rows: int, title: str) -> TranscriptWriter:
        return TranscriptWriter(self.path(session_id), cols=cols, rows=rows, title=title)

    def read(self, session_id: str) -> str | None:
        path = self.path(session_id)
        return path.read_text(encoding="utf-8") if path.exists() else None
