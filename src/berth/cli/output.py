"""How the client commands print: aligned tables for lists, `key: value` lines for one object,
or, with `--json`, the API's own JSON (lists wrapped as the API wraps them)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from pydantic import BaseModel

from berth.schemas.approvals import ApprovalOut
from berth.schemas.workloads import RunOut, ShellSessionSummary, WorkloadOut

NONE = "-"


def to_json(data: BaseModel | Sequence[BaseModel] | Mapping[str, Any] | str | None) -> Any:
    """JSON-ready data of a model, a list of models, or a mapping holding models (or plain
    values, such as a list's `next_cursor`)."""
    if data is None or isinstance(data, str | int | float):
        return data
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json", by_alias=True)
    if isinstance(data, Mapping):
        return {key: to_json(value) for key, value in data.items()}
    return [to_json(item) for item in data]


def print_json(out: TextIO, data: Any) -> None:
    if isinstance(data, BaseModel | Mapping) or (
        isinstance(data, list) and all(isinstance(i, BaseModel) for i in data)
    ):
        data = to_json(data)
    out.write(json.dumps(data, indent=2, default=str) + "\n")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns aligned to the widest cell; the last column is not padded."""
    grid = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in grid) for i in range(len(headers))]
    lines = []
    for row in grid:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def key_values(pairs: Sequence[tuple[str, str]]) -> str:
    width = max((len(key) for key, _ in pairs), default=0) + 1
    return "".join(f"{(key + ':').ljust(width)} {value}\n" for key, value in pairs)


def value_text(value: Any) -> str:
    """One cell: `-` for nothing, lists joined by commas, mappings as JSON, times in UTC."""
    if value is None or value == "" or value == [] or value == {}:
        return NONE
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json"), separators=(",", ":"))
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def model_pairs(model: BaseModel, *, exclude: Iterable[str] = ()) -> list[tuple[str, str]]:
    skip = set(exclude)
    return [
        (name, value_text(getattr(model, name)))
        for name in type(model).model_fields
        if name not in skip
    ]


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """`42s`, `5m`, `3h`, `2d` since `moment`."""
    if moment is None:
        return NONE
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def status_text(status: str, reason: str | None) -> str:
    return f"{status} ({reason})" if reason else status


def workload_rows(workloads: Iterable[WorkloadOut]) -> str:
    rows = [
        (
            w.id,
            w.name,
            w.type,
            w.status,
            f"{w.running_tasks}/{w.replicas}" if w.type == "service" else str(w.running_tasks),
            w.image,
            age(w.created_at),
        )
        for w in workloads
    ]
    return table(("ID", "NAME", "TYPE", "STATUS", "TASKS", "IMAGE", "AGE"), rows)


def workload_details(workload: WorkloadOut) -> str:
    overrides = {
        "status": status_text(workload.status, workload.status_reason),
        "env": ", ".join(f"{k}={v}" for k, v in workload.env.items()) or NONE,
    }
    pairs = model_pairs(workload, exclude=("recent_runs", "status_reason"))
    text = key_values([(key, overrides.get(key, value)) for key, value in pairs])
    if workload.recent_runs:
        text += "\nrecent runs:\n" + run_rows(workload.recent_runs)
    return text


def run_rows(runs: Iterable[RunOut]) -> str:
    rows = [
        (
            r.id,
            r.trigger,
            str(r.slot),
            status_text(r.status, r.status_reason),
            value_text(r.exit_code),
            value_text(r.started_at),
            NONE if r.duration_seconds is None else f"{r.duration_seconds:.1f}s",
            f"{r.credits:g}",
        )
        for r in runs
    ]
    headers = ("ID", "TRIGGER", "SLOT", "STATUS", "EXIT", "STARTED", "DURATION", "CREDITS")
    return table(headers, rows)


def session_rows(sessions: Iterable[ShellSessionSummary]) -> str:
    rows = [
        (
            s.id,
            s.run_id,
            s.status,
            value_text(s.created_at),
            value_text(s.connected_at),
            value_text(s.ended_at),
            value_text(s.exit_code),
        )
        for s in sessions
    ]
    return table(("ID", "RUN", "STATUS", "CREATED", "CONNECTED", "ENDED", "EXIT"), rows)


def approval_rows(approvals: Iterable[ApprovalOut]) -> str:
    rows = [
        (
            a.id,
            a.status,
            a.action,
            f"{a.method} {a.path}",
            a.user_id,
            a.requested_by,
            age(a.created_at),
            value_text(a.expires_at),
        )
        for a in approvals
    ]
    headers = ("ID", "STATUS", "ACTION", "REQUEST", "USER", "REQUESTED BY", "AGE", "EXPIRES")
    return table(headers, rows)


def approval_details(approval: ApprovalOut) -> str:
    return key_values(model_pairs(approval))
