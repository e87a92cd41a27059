"""`AsyncClient.compute`: the Workloads API (async). Same contracts as `berth.sdk.compute`,
whose docstrings say them; every method is a coroutine except the streaming ones, which
return async iterators."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Callable, Collection
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
from berth.sdk._transport import AsyncTransport, Call, is_json
from berth.sdk.errors import WaitTimeout
from berth.sdk.files import AsyncFilesAPI
from berth.sdk.paging import follow_async
from berth.sdk.routes import Command, ComputeRoutes, create_body, exec_body, shell_body
from berth.sdk.streams import (
    ExecEvent,
    events_from_result,
    log_lines,
    parse_exec_line,
    workload_check,
)


class AsyncSecretsAPI:
    """`client.compute.secrets` (async)."""

    def __init__(self, transport: AsyncTransport, routes: ComputeRoutes) -> None:
        self._t = transport
        self._routes = routes

    async def list(self, workload_id: str) -> list[SecretKeyOut]:
        return (await self._t.call(self._routes.secrets(workload_id))).secrets

    async def set(self, workload_id: str, key: str, value: str) -> SecretKeyOut:
        return await self._t.call(self._routes.set_secret(workload_id, key, value))

    async def delete(self, workload_id: str, key: str) -> Deleted:
        return await self._t.call(self._routes.delete_secret(workload_id, key))

    async def reveal(self, workload_id: str, key: str) -> SecretValue:
        return await self._t.call(self._routes.reveal_secret(workload_id, key))


class AsyncComputeAPI:
    """`client.compute` (async)."""

    def __init__(self, transport: AsyncTransport, user_id: str | None = None) -> None:
        self._t = transport
        self._routes = ComputeRoutes(user_id)
        self.user_id = user_id
        self.secrets = AsyncSecretsAPI(transport, self._routes)
        self.files = AsyncFilesAPI(transport, self._routes.base)

    def for_user(self, user_id: str | None) -> AsyncComputeAPI:
        return AsyncComputeAPI(self._t, user_id)

    async def list(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        name_prefix: str | None = None,
    ) -> list[WorkloadOut]:
        """Every workload (that the filters keep), newest first, following the cursors."""
        return [w async for w in self.iter(type=type, status=status, name_prefix=name_prefix)]

    def iter(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        name_prefix: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[WorkloadOut]:
        """The workloads, newest first, fetched a page at a time as the iteration goes."""

        async def fetch(cursor: str | None) -> WorkloadList:
            return await self.page(
                limit=page_size, cursor=cursor, type=type, status=status, name_prefix=name_prefix
            )

        return follow_async(fetch, lambda page: page.workloads)

    async def page(
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
        return await self._t.call(call)

    async def create(
        self,
        spec: WorkloadCreate | None = None,
        /,
        *,
        approval_id: str | None = None,
        **fields: Any,
    ) -> WorkloadOut:
        body = create_body(spec, fields)
        return await self._t.call(self._routes.create(body).with_approval(approval_id))

    async def get(self, workload_id: str) -> WorkloadOut:
        return await self._t.call(self._routes.get(workload_id))

    async def delete(self, workload_id: str) -> Deleted:
        return await self._t.call(self._routes.delete(workload_id))

    async def start(self, workload_id: str) -> WorkloadOut:
        return await self._t.call(self._routes.start(workload_id))

    async def stop(self, workload_id: str) -> WorkloadOut:
        return await self._t.call(self._routes.stop(workload_id))

    async def pause(self, workload_id: str) -> WorkloadOut:
        return await self._t.call(self._routes.pause(workload_id))

    async def resume(self, workload_id: str) -> WorkloadOut:
        return await self._t.call(self._routes.resume(workload_id))

    async def scale(self, workload_id: str, count: int) -> WorkloadOut:
        return await self._t.call(self._routes.scale(workload_id, count))

    async def run(self, workload_id: str) -> RunOut:
        return await self._t.call(self._routes.run(workload_id))

    async def runs(self, workload_id: str, *, limit: int | None = None) -> builtins.list[RunOut]:
        return (await self._t.call(self._routes.runs(workload_id, limit))).runs

    async def runs_page(
        self, workload_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> RunList:
        return await self._t.call(self._routes.runs(workload_id, limit, cursor))

    def iter_runs(self, workload_id: str, *, page_size: int | None = None) -> AsyncIterator[RunOut]:
        """Every run, newest first, fetched a page at a time as the iteration goes."""

        async def fetch(cursor: str | None) -> RunList:
            return await self.runs_page(workload_id, limit=page_size, cursor=cursor)

        return follow_async(fetch, lambda page: page.runs)

    async def run_logs(self, workload_id: str, run_id: str) -> LogsOut:
        return await self._t.call(self._routes.logs(workload_id, run_id, follow=False))

    @overload
    async def logs(
        self, workload_id: str, *, run_id: str | None = None, follow: Literal[False] = False
    ) -> LogsOut: ...
    @overload
    async def logs(
        self, workload_id: str, *, run_id: str | None = None, follow: Literal[True]
    ) -> AsyncIterator[str]: ...
    async def logs(
        self, workload_id: str, *, run_id: str | None = None, follow: bool = False
    ) -> LogsOut | AsyncIterator[str]:
        """`await logs(id)` -> `LogsOut`; `await logs(id, follow=True)` -> async iterator of
        lines (the request is sent when iteration starts)."""
        call = self._routes.logs(workload_id, run_id, follow=follow)
        if follow:
            return self._follow(call)
        return await self._t.call(call)

    async def _follow(self, call: Call[LogsOut]) -> AsyncIterator[str]:
        async with self._t.stream(call) as response:
            if is_json(response):
                await response.aread()
                for line in log_lines(LogsOut.model_validate_json(response.content)):
                    yield line
                return
            async for line in response.aiter_lines():
                yield line

    async def exec(
        self,
        workload_id: str,
        command: Command,
        *,
        stdin: str | None = None,
        timeout_seconds: int | None = None,
        task: str | None = None,
        approval_id: str | None = None,
    ) -> ExecResult:
        body = exec_body(
            command, stdin=stdin, timeout_seconds=timeout_seconds, task=task, stream=False
        )
        return await self._t.call(self._routes.exec(workload_id, body).with_approval(approval_id))

    async def exec_stream(
        self,
        workload_id: str,
        command: Command,
        *,
        stdin: str | None = None,
        timeout_seconds: int | None = None,
        task: str | None = None,
        approval_id: str | None = None,
    ) -> AsyncIterator[ExecEvent]:
        """An async generator of `ExecOutput` events, then one `ExecExit`."""
        body = exec_body(
            command, stdin=stdin, timeout_seconds=timeout_seconds, task=task, stream=True
        )
        call = self._routes.exec(workload_id, body).with_approval(approval_id)
        async with self._t.stream(call) as response:
            if is_json(response):
                await response.aread()
                result = ExecResult.model_validate_json(response.content)
                for item in events_from_result(result):
                    yield item
                return
            async for line in response.aiter_lines():
                event = parse_exec_line(line)
                if event is not None:
                    yield event

    async def shell(
        self,
        workload_id: str,
        *,
        task: str | None = None,
        cols: int | None = None,
        rows: int | None = None,
        approval_id: str | None = None,
    ) -> ShellSessionOut:
        body = shell_body(task=task, cols=cols, rows=rows)
        call = self._routes.shell(workload_id, body).with_approval(approval_id)
        return await self._t.call(call)

    async def shell_sessions(self, workload_id: str) -> builtins.list[ShellSessionSummary]:
        return (await self._t.call(self._routes.shell_sessions(workload_id))).sessions

    async def wait_for(
        self,
        workload_id: str,
        status: str | Collection[str] | None = None,
        *,
        predicate: Callable[[WorkloadOut], bool] | None = None,
        timeout: float = 300.0,  # noqa: ASYNC109 (a polling deadline, not a cancel scope)
        interval: float = 0.5,
        on_poll: Callable[[WorkloadOut], None] | None = None,
    ) -> WorkloadOut:
        check = workload_check(status, predicate)
        deadline = time.monotonic() + timeout
        while True:
            workload = await self.get(workload_id)
            if on_poll is not None:
                on_poll(workload)
            if check(workload):
                return workload
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"{workload.name} still {workload.status} after {timeout:g}s", last=workload
                )
            await asyncio.sleep(interval)
