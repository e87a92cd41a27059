"""The log archive: each finished task's output, kept after its container is gone.

One JSON-lines file per run under `<data dir>/logs/`, written whole (to a temporary file, then
renamed) when a task ends and before it is removed, so a crash never leaves half an archive.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Literal, cast

from berth.runtime.base import LogLine


class LogArchive:
    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    def path(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.jsonl"

    def exists(self, run_id: str) -> bool:
        return self.path(run_id).exists()

    def write(self, run_id: str, lines: Iterable[LogLine]) -> bool:
        """Archive a run's output; return True if it was cut at `max_bytes`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(run_id)
        tmp = target.with_suffix(f".{secrets.token_hex(4)}.tmp")
        written = 0
        truncated = False
        with tmp.open("w", encoding="utf-8") as handle:
            for line in lines:
                record = json.dumps(
                    {"t": line.timestamp.isoformat(), "s": line.stream, "m": line.message}
                )
                written += len(record) + 1
                if written > self.max_bytes:
                    truncated = True
                    break
                handle.write(record + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(target)
        return truncated

    def read(self, run_id: str) -> list[LogLine]:
        target = self.path(run_id)
        if not target.exists():
            return []
        lines = []
        with target.open(encoding="utf-8") as handle:
            for raw in handle:
                record = json.loads(raw)
                lines.append(
                    LogLine(
                        timestamp=datetime.fromisoformat(record["t"]),
                        stream=cast(Literal["stdout", "stderr"], record["s"]),
                        message=record["m"],
                    )
                )
        return lines

    def delete(self, run_id: str) -> None:
        self.path(run_id).unlink(missing_ok=True)
