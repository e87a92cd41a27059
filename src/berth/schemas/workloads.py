"""Wire models of the Workloads API (`/v1/compute`, `/v1/users/{user_id}/compute`).

Field-level rules live here so that the OpenAPI document states them; rules that relate
fields to each other (a schedule needs `schedule_expr`) and per-user limits are checked in the
domain, which names the field in its error too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from berth.schemas.limits import (
    MAX_ENV_ENTRIES,
    MAX_ENV_VALUE_CHARS,
    MAX_EXEC_STDIN_CHARS,
    MAX_RUN_ID_CHARS,
    MAX_TERMINAL_COLS,
    MAX_TERMINAL_ROWS,
    MIN_TERMINAL_COLS,
    MIN_TERMINAL_ROWS,
    Command,
    EnvTotal,
)
from berth.schemas.paging import NextCursor
from berth.schemas.request_body import StrictModel

WorkloadType = Literal["service", "job", "schedule"]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"),
]


class WorkloadCreate(StrictModel):
    """Body of `POST /v1/compute`."""

    name: Name = Field(
        description="Lowercase letters, digits and '-', 1-63 characters, unique per user."
    )
    type: WorkloadType = Field(description="`service`, `job` or `schedule`.")
    image: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$",
        description="Container image reference, e.g. `berth/busybox:latest`.",
    )
    command: Command | None = Field(
        default=None,
        description="A string run by `/bin/sh -c`, or an argv list; default: the image's own.",
    )
    env: Annotated[
        dict[EnvName, Annotated[str, StringConstraints(max_length=MAX_ENV_VALUE_CHARS)]],
        EnvTotal,
    ] = Field(
        default_factory=dict,
        max_length=MAX_ENV_ENTRIES,
        description="Environment variables: at most 200, 256 KiB of names and values in all.",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Services: the port the task listens on."
    )
    cpu: float = Field(
        default=0.25, ge=0.01, le=64, description="vCPUs allocated to each task (at least 0.01)."
    )
    memory_mb: int = Field(default=256, ge=16, le=262144, description="Memory per task (MB).")
    replicas: int = Field(default=1, ge=0, le=1000, description="Services: number of tasks.")
    schedule_expr: str | None = Field(
        default=None,
        max_length=200,
        description="Schedules: five-field cron, `cron(...)` or `rate(N minutes|hours|days)`.",
    )
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        le=7 * 86400,
        description="Jobs and scheduled runs: a run still going after this long is stopped.",
    )
    scale_to_zero: bool = Field(
        default=False,
        description="Services with a port: stop every task after `idle_timeout_seconds` "
        "without requests; the next request wakes the service and is held until it answers.",
    )
    idle_timeout_seconds: int = Field(
        default=300, ge=1, le=7 * 86400, description="Idle time before scaling to zero."
    )


class ScaleRequest(StrictModel):
    count: int = Field(ge=0, le=1000, description="The new replica count (0 scales to zero).")


class RunOut(BaseModel):
    id: str
    workload_id: str
    trigger: str = Field(description="`create`, `manual`, `schedule` or `replica`.")
    slot: int = Field(description="Services: the replica this task serves.")
    status: str = Field(
        description="`pending`, `running`, `succeeded`, `failed`, `stopped` or `timed_out`."
    )
    status_reason: str | None
    exit_code: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    vcpu_seconds: float
    gb_seconds: float
    credits: float


class WorkloadOut(BaseModel):
    id: str
    user_id: str
    name: str
    type: WorkloadType
    status: str
    status_reason: str | None
    image: str
    command: str | list[str] | None
    env: dict[str, str]
    port: int | None
    url: str | None = Field(description="Public URL; `null` while the service is headless.")
    cpu: float
    memory_mb: int
    replicas: int
    running_tasks: int
    schedule_expr: str | None
    next_run_at: datetime | None
    timeout_seconds: int | None
    scale_to_zero: bool = False
    idle_timeout_seconds: int = 300
    generation: int
    secret_keys: list[str]
    recent_runs: list[RunOut]
    created_at: datetime
    updated_at: datetime


class WorkloadList(BaseModel):
    workloads: list[WorkloadOut]
    next_cursor: NextCursor = None


class RunList(BaseModel):
    runs: list[RunOut]
    next_cursor: NextCursor = None


class LogEvent(BaseModel):
    timestamp: datetime
    stream: Literal["stdout", "stderr"]
    message: str


class LogsOut(BaseModel):
    workload_id: str
    run_id: str | None
    live: bool = Field(description="True while the output comes from a task still running.")
    events: list[LogEvent]


class SecretSet(StrictModel):
    key: EnvName
    value: str = Field(max_length=MAX_ENV_VALUE_CHARS)


class SecretKeyOut(BaseModel):
    key: str
    created_at: datetime
    updated_at: datetime


class SecretList(BaseModel):
    secrets: list[SecretKeyOut]


class SecretValue(BaseModel):
    key: str
    value: str


class Deleted(BaseModel):
    id: str
    deleted: bool = True


class ExecRequest(StrictModel):
    """Body of `POST /v1/compute/{id}/exec`."""

    command: Command = Field(
        description="A string run by `/bin/sh -c`, or an argv list (no shell needed)."
    )
    stdin: str | None = Field(
        default=None,
        max_length=MAX_EXEC_STDIN_CHARS,
        description="Written to the command's stdin.",
    )
    timeout_seconds: int = Field(
        default=30, ge=1, le=600, description="The command is killed after this long."
    )
    task: str | None = Field(
        default=None,
        max_length=MAX_RUN_ID_CHARS,
        description="The run id of the task to run in; default: a running task (lowest slot).",
    )
    stream: bool = Field(
        default=False,
        description='Stream output as NDJSON lines (`{"stream", "data"}`, then '
        '`{"exit_code", ...}`) instead of one JSON result.',
    )


class ExecResult(BaseModel):
    run_id: str = Field(description="The run (task) the command ran in.")
    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool


class ShellRequest(StrictModel):
    """Body of `POST /v1/compute/{id}/shell` (optional)."""

    task: str | None = Field(
        default=None, max_length=MAX_RUN_ID_CHARS, description="Run id of the task; default: any."
    )
    cols: int = Field(default=80, ge=MIN_TERMINAL_COLS, le=MAX_TERMINAL_COLS)
    rows: int = Field(default=24, ge=MIN_TERMINAL_ROWS, le=MAX_TERMINAL_ROWS)


class ShellSessionInfo(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    session_id: str = Field(alias="sessionId")
    stream_url: str = Field(alias="streamUrl")
    token_value: str = Field(alias="tokenValue")


class ShellSessionOut(BaseModel):
    session: ShellSessionInfo
    region: str


class ShellSessionSummary(BaseModel):
    id: str
    workload_id: str
    run_id: str
    status: str = Field(description="`waiting`, `active`, `ended` or `expired`.")
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    exit_code: int | None


class ShellSessionList(BaseModel):
    sessions: list[ShellSessionSummary]


class PendingApproval(BaseModel):
    status: Literal["pending_approval"] = "pending_approval"
    approval_id: str
