"""Every API route the SDK calls, as `Call` builders shared by the sync and async clients.

Path segments (ids, keys) are percent-encoded. Bodies contain only what the caller gave, so
that repeating a gated call with its approval id sends the same body the approval is bound to.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from berth.schemas.approvals import ApprovalDecision, ApprovalList, ApprovalOut, ApprovalPolicy
from berth.schemas.workloads import (
    Deleted,
    ExecResult,
    LogsOut,
    RunList,
    RunOut,
    SecretKeyOut,
    SecretList,
    SecretValue,
    ShellSessionList,
    ShellSessionOut,
    WorkloadCreate,
    WorkloadList,
    WorkloadOut,
)
from berth.sdk._transport import Call

Command = str | list[str]
"""A command: a string run by `/bin/sh -c`, or an argv list."""

DEFAULT_EXEC_TIMEOUT = 30
"""The server's default `timeout_seconds` for exec."""


def segment(value: str) -> str:
    return quote(value, safe="")


def create_body(spec: WorkloadCreate | None, fields: dict[str, Any]) -> dict[str, Any]:
    """The create body: the fields set on `spec` (validated locally), then `fields` as given
    (validated by the server, whose error then names the field)."""
    body = spec.model_dump(mode="json", exclude_unset=True) if spec is not None else {}
    body.update(fields)
    return body


def exec_body(
    command: Command,
    *,
    stdin: str | None,
    timeout_seconds: int | None,
    task: str | None,
    stream: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {"command": command}
    if stdin is not None:
        body["stdin"] = stdin
    if timeout_seconds is not None:
        body["timeout_seconds"] = timeout_seconds
    if task is not None:
        body["task"] = task
    if stream:
        body["stream"] = True
    return body


def shell_body(*, task: str | None, cols: int | None, rows: int | None) -> dict[str, Any]:
    given = {"task": task, "cols": cols, "rows": rows}
    return {name: value for name, value in given.items() if value is not None}


def _present(params: dict[str, Any]) -> dict[str, Any] | None:
    """The query parameters given (None: no query string at all)."""
    given = {name: value for name, value in params.items() if value is not None}
    return given or None


class ComputeRoutes:
    """The Workloads API, company-scoped (`/v1/compute`) or per user
    (`/v1/users/{user_id}/compute`)."""

    def __init__(self, user_id: str | None = None) -> None:
        self.user_id = user_id
        self.base = "/v1/compute" if user_id is None else f"/v1/users/{segment(user_id)}/compute"

    def _path(self, workload_id: str, *rest: str) -> str:
        return "/".join([self.base, segment(workload_id), *rest])

    def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        type: str | None = None,
        status: str | None = None,
        name_prefix: str | None = None,
    ) -> Call[WorkloadList]:
        given = {
            "limit": limit,
            "cursor": cursor,
            "type": type,
            "status": status,
            "name_prefix": name_prefix,
        }
        return Call("GET", self.base, WorkloadList, params=_present(given))

    def create(self, body: dict[str, Any]) -> Call[WorkloadOut]:
        return Call("POST", self.base, WorkloadOut, body=body)

    def get(self, workload_id: str) -> Call[WorkloadOut]:
        return Call("GET", self._path(workload_id), WorkloadOut)

    def delete(self, workload_id: str) -> Call[Deleted]:
        return Call("DELETE", self._path(workload_id), Deleted)

    def start(self, workload_id: str) -> Call[WorkloadOut]:
        return Call("POST", self._path(workload_id, "start"), WorkloadOut)

    def stop(self, workload_id: str) -> Call[WorkloadOut]:
        return Call("POST", self._path(workload_id, "stop"), WorkloadOut)

    def pause(self, workload_id: str) -> Call[WorkloadOut]:
        return Call("POST", self._path(workload_id, "pause"), WorkloadOut)

    def resume(self, workload_id: str) -> Call[WorkloadOut]:
        return Call("POST", self._path(workload_id, "resume"), WorkloadOut)

    def scale(self, workload_id: str, count: int) -> Call[WorkloadOut]:
        return Call("POST", self._path(workload_id, "scale"), WorkloadOut, body={"count": count})

    def run(self, workload_id: str) -> Call[RunOut]:
        return Call("POST", self._path(workload_id, "run"), RunOut)

    def runs(self, workload_id: str, limit: int | None, cursor: str | None = None) -> Call[RunList]:
        params = _present({"limit": limit, "cursor": cursor})
        return Call("GET", self._path(workload_id, "runs"), RunList, params=params)

    def logs(self, workload_id: str, run_id: str | None, *, follow: bool) -> Call[LogsOut]:
        path = (
            self._path(workload_id, "logs")
            if run_id is None
            else self._path(workload_id, "runs", segment(run_id), "logs")
        )
        if follow:
            return Call("GET", path, LogsOut, params={"follow": "true"}, unbounded_read=True)
        return Call("GET", path, LogsOut)

    def secrets(self, workload_id: str) -> Call[SecretList]:
        return Call("GET", self._path(workload_id, "secrets"), SecretList)

    def set_secret(self, workload_id: str, key: str, value: str) -> Call[SecretKeyOut]:
        body = {"key": key, "value": value}
        return Call("POST", self._path(workload_id, "secrets"), SecretKeyOut, body=body)

    def delete_secret(self, workload_id: str, key: str) -> Call[Deleted]:
        return Call("DELETE", self._path(workload_id, "secrets", segment(key)), Deleted)

    def reveal_secret(self, workload_id: str, key: str) -> Call[SecretValue]:
        path = self._path(workload_id, "secrets", segment(key), "reveal")
        return Call("GET", path, SecretValue)

    def exec(self, workload_id: str, body: dict[str, Any]) -> Call[ExecResult]:
        wait = int(body.get("timeout_seconds") or DEFAULT_EXEC_TIMEOUT) + 15
        path = self._path(workload_id, "exec")
        return Call("POST", path, ExecResult, body=body, min_read_timeout=wait)

    def shell(self, workload_id: str, body: dict[str, Any]) -> Call[ShellSessionOut]:
        return Call("POST", self._path(workload_id, "shell"), ShellSessionOut, body=body)

    def shell_sessions(self, workload_id: str) -> Call[ShellSessionList]:
        return Call("GET", self._path(workload_id, "shell", "sessions"), ShellSessionList)


class ApprovalRoutes:
    """The approvals API (`/v1/approvals`), company-scoped."""

    base = "/v1/approvals"

    def list(
        self, status: str | None, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[ApprovalList]:
        params = _present({"status": status, "limit": limit, "cursor": cursor})
        return Call("GET", self.base, ApprovalList, params=params)

    def get(self, approval_id: str) -> Call[ApprovalOut]:
        return Call("GET", f"{self.base}/{segment(approval_id)}", ApprovalOut)

    def decide(self, approval_id: str, verb: str, note: str | None) -> Call[ApprovalOut]:
        body = ApprovalDecision(note=note).model_dump(exclude_none=True)
        return Call("POST", f"{self.base}/{segment(approval_id)}/{verb}", ApprovalOut, body=body)

    def get_policy(self) -> Call[ApprovalPolicy]:
        return Call("GET", f"{self.base}/policy", ApprovalPolicy)

    def set_policy(self, policy: ApprovalPolicy) -> Call[ApprovalPolicy]:
        body = policy.model_dump(mode="json")
        return Call("PUT", f"{self.base}/policy", ApprovalPolicy, body=body)
