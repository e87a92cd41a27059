"""`client.compute`: the Workloads API (sync). The async twin is `berth.sdk.compute_async`.

Every method returns the `berth.schemas` model of the answer (lists unwrapped) and raises the
typed errors of `berth.sdk.errors`. Gated calls (`create`, `exec`, `exec_stream`, `shell`, as
the company's approval policy says) raise `ApprovalPending`; once a human approved, repeat the
same call with `approval_id=` to get its result.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any, Literal, overload

from berth.schemas.workloads import (
    Deleted,
    ExecResult,
    LogsOut,
    RunList,
    RunOut,
    SecretKeyOut,
    SecretValue,
    ShellSessionOut,
    ShellSessionSummary,
    WorkloadCreate,
    WorkloadList,
    WorkloadOut,
)
from berth.sdk._transport import Call, SyncTransport, is_json
from berth.sdk.errors import WaitTimeout
from berth.sdk.files import FilesAPI
from berth.sdk.paging import follow
from berth.sdk.routes import Command, ComputeRoutes, create_body, exec_body, shell_body
from berth.sdk.streams import (
    ExecEvent,
    events_from_result,
    log_lines,
    parse_exec_line,
    workload_check,
)


class SecretsAPI:
    """`client.compute.secrets`: encrypted environment variables of a workload."""

    def __init__(self, transport: SyncTransport, routes: ComputeRoutes) -> None:
        self._t = transport
        self._routes = routes

    def list(self, workload_id: str) -> list[SecretKeyOut]:
        """The secret keys (never the values)."""
        return self._t.call(self._routes.secrets(workload_id)).secrets

    def set(self, workload_id: str, key: str, value: str) -> SecretKeyOut:
        """Set a secret; a running service is redeployed with it."""
        return self._t.call(self._routes.set_secret(workload_id, key, value))

    def delete(self, workload_id: str, key: str) -> Deleted:
        """Delete a secret (`NotFound` for an unknown key)."""
        return self._t.call(self._routes.delete_secret(workload_id, key))

    def reveal(self, workload_id: str, key: str) -> SecretValue:
        """A secret's value."""
        return self._t.call(self._routes.reveal_secret(workload_id, key))


class ComputeAPI:
    """`client.compute`: workloads of the caller, or of `user_id` via the per-user routes."""

    def __init__(self, transport: SyncTransport, user_id: str | None = None) -> None:
        self._t = transport
        self._routes = ComputeRoutes(user_id)
        self.user_id = user_id
        self.secrets = SecretsAPI(transport, self._routes)
        self.files = FilesAPI(transport, self._routes.base)

    def for_user(self, user_id: str | None) -> ComputeAPI:
        """The same API on `/v1/users/{user_id}/compute` (`None`: company-scoped)."""
        return ComputeAPI(self._t, user_id)

    def list(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        name_prefix: str | None = None,
    ) -> list[WorkloadOut]:
        """Every workload (that the filters keep), newest first, following the cursors."""
        return builtins.list(self.iter(type=type, status=status, name_prefix=name_prefix))

    def iter(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        name_prefix: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[WorkloadOut]:
        """The workloads, newest first, fetched a page (`page_size`, server default 100) at
        a time as the iteration goes."""

        def fetch(cursor: str | None) -> WorkloadList:
            return self.page(
                limit=page_size, cursor=cursor, type=type, status=status, name_prefix=name_prefix
            )

        return follow(fetch, lambda page: page.workloads)

    def page(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        type: str | None = None,
        status: str | None = None,
        name_prefix: str | None = None,
    ) -> WorkloadList:
        """One page of workloads, with the `next_cursor` of the next (None on the last)."""
        call = self._routes.list(
            limit=limit, cursor=cursor, type=type, status=status, name_prefix=name_prefix
        )
        return self._t.call(call)

    def create(
        self,
        spec: WorkloadCreate | None = None,
        /,
        *,
        approval_id: str | None = None,
        **fields: Any,
    ) -> WorkloadOut:
        """Create a workload from a `WorkloadCreate` and/or fields (`name=`, `type=`,
        `image=`, ...; the server validates them). Gated: may raise `ApprovalPending`."""
        body = create_body(spec, fields)
        return self._t.call(self._routes.create(body).with_approval(approval_id))

    def get(self, workload_id: str) -> WorkloadOut:
        """The workload with its recent runs and secret keys."""
        return self._t.call(self._routes.get(workload_id))

    def delete(self, workload_id: str) -> Deleted:
        """Delete the workload; it is gone from the API at once."""
        return self._t.call(self._routes.delete(workload_id))

    def start(self, workload_id: str) -> WorkloadOut:
        """Start a service again, or resume a schedule (`Conflict` for a job)."""
        return self._t.call(self._routes.start(workload_id))

    def stop(self, workload_id: str) -> WorkloadOut:
        """Scale a service to zero, pause a schedule, stop in-flight runs."""
        return self._t.call(self._routes.stop(workload_id))

    def pause(self, workload_id: str) -> WorkloadOut:
        """Freeze a running service's tasks, memory kept (`Conflict` if it does not run, or
        on an engine without pause, such as Kubernetes)."""
        return self._t.call(self._routes.pause(workload_id))

    def resume(self, workload_id: str) -> WorkloadOut:
        """Thaw a paused service; its processes carry on."""
        return self._t.call(self._routes.resume(workload_id))

    def scale(self, workload_id: str, count: int) -> WorkloadOut:
        """Set a service's replica count (`Conflict` for jobs and schedules)."""
        return self._t.call(self._routes.scale(workload_id, count))

    def run(self, workload_id: str) -> RunOut:
        """Start a run of a job or schedule now."""
        return self._t.call(self._routes.run(workload_id))

    def runs(self, workload_id: str, *, limit: int | None = None) -> builtins.list[RunOut]:
        """The newest runs: one page (server default 100, at most 500). `iter_runs` walks
        them all."""
        return self._t.call(self._routes.runs(workload_id, limit)).runs

    def runs_page(
        self, workload_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> RunList:
        """One page of runs, newest first, with the `next_cursor` of the next."""
        return self._t.call(self._routes.runs(workload_id, limit, cursor))

    def iter_runs(self, workload_id: str, *, page_size: int | None = None) -> Iterator[RunOut]:
        """Every run, newest first, fetched a page at a time as the iteration goes."""

        def fetch(cursor: str | None) -> RunList:
            return self.runs_page(workload_id, limit=page_size, cursor=cursor)

        return follow(fetch, lambda page: page.runs)

    def run_logs(self, workload_id: str, run_id: str) -> LogsOut:
        """One run's output (to follow it: `logs(id, run_id=..., follow=True)`)."""
        return self._t.call(self._routes.logs(workload_id, run_id, follow=False))

    @overload
    def logs(
        self, workload_id: str, *, run_id: str | None = None, follow: Literal[False] = False
    ) -> LogsOut: ...
    @overload
    def logs(
        self, workload_id: str, *, run_id: str | None = None, follow: Literal[True]
    ) -> Iterator[str]: ...
    def logs(
        self, workload_id: str, *, run_id: str | None = None, follow: bool = False
    ) -> LogsOut | Iterator[str]:
        """The output of `run_id`, or of the run readers want (a service's live task, else
        the latest run). `follow=True`: an iterator of output lines until the task ends; the
        request is sent when iteration starts, so its errors come from the first `next()`."""
        call = self._routes.logs(workload_id, run_id, follow=follow)
        if follow:
            return self._follow(call)
        return self._t.call(call)

    def _follow(self, call: Call[LogsOut]) -> Iterator[str]:
        with self._t.stream(call) as response:
            if is_json(response):
                response.read()
                yield from log_lines(LogsOut.model_validate_json(response.content))
                return
            yield from response.iter_lines()

    def exec(
        self,
        workload_id: str,
        command: Command,
        *,
        stdin: str | None = None,
        timeout_seconds: int | None = None,
        task: str | None = None,
        approval_id: str | None = None,
    ) -> ExecResult:
        """Run `command` (a string for `/bin/sh -c`, or argv) in a running task and wait for
        it. `Conflict` when no task runs. Gated: may raise `ApprovalPending`."""
        body = exec_body(
            command, stdin=stdin, timeout_seconds=timeout_seconds, task=task, stream=False
        )
        return self._t.call(self._routes.exec(workload_id, body).with_approval(approval_id))

    def exec_stream(
        self,
        workload_id: str,
        command: Command,
        *,
        stdin: str | None = None,
        timeout_seconds: int | None = None,
        task: str | None = None,
        approval_id: str | None = None,
    ) -> Iterator[ExecEvent]:
        """As `exec`, streamed: `ExecOutput` events as output arrives, then one `ExecExit`.
        A generator: the request (and `ApprovalPending`) happens at the first `next()`."""
        body = exec_body(
            command, stdin=stdin, timeout_seconds=timeout_seconds, task=task, stream=True
        )
        call = self._routes.exec(workload_id, body).with_approval(approval_id)
        with self._t.stream(call) as response:
            if is_json(response):
                response.read()
                yield from events_from_result(ExecResult.model_validate_json(response.content))
                return
            for line in response.iter_lines():
                event = parse_exec_line(line)
                if event is not None:
                    yield event

    def shell(
        self,
        workload_id: str,
        *,
        task: str | None = None,
        cols: int | None = None,
        rows: int | None = None,
        approval_id: str | None = None,
    ) -> ShellSessionOut:
        """Open a shell session: connect to `session.stream_url` (see `shell_stream_url`)
        within its short validity window. Gated: may raise `ApprovalPending`."""
        body = shell_body(task=task, cols=cols, rows=rows)
        return self._t.call(self._routes.shell(workload_id, body).with_approval(approval_id))

    def shell_sessions(self, workload_id: str) -> builtins.list[ShellSessionSummary]:
        """The workload's shell sessions."""
        return self._t.call(self._routes.shell_sessions(workload_id)).sessions

    def wait_for(
        self,
        workload_id: str,
        status: str | Collection[str] | None = None,
        *,
        predicate: Callable[[WorkloadOut], bool] | None = None,
        timeout: float = 300.0,
        interval: float = 0.5,
        on_poll: Callable[[WorkloadOut], None] | None = None,
    ) -> WorkloadOut:
        """Poll `get` until the status is one of `status` and/or `predicate` holds; return
        that state. `on_poll` sees every state. Raises `WaitTimeout` (with `.last`)."""
        check = workload_check(status, predicate)
        deadline = time.monotonic() + timeout
        while True:
            workload = self.get(workload_id)
            if on_poll is not None:
                on_poll(workload)
            if check(workload):
                return workload
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"{workload.name} still {workload.status} after {timeout:g}s", last=workload
                )
            time.sleep(interval)
