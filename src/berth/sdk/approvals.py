"""`client.approvals`: human approvals of gated agent calls (sync and async).

Approvals are company-scoped. A human (session token) may approve or reject; an API-key
caller may read its own approvals (to wait for a decision) but never decide one. Once an
approval is `approved`, its `result` holds the replayed request's status code and body, and
repeating the gated call with `approval_id=` returns that same result. An approved shell is
opened when its agent first collects it (its own `get`, or the repeated call), so its
token's connect window starts then; later collections get the same session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

from berth.schemas.approvals import ApprovalList, ApprovalOut, ApprovalPolicy
from berth.sdk._transport import AsyncTransport, SyncTransport
from berth.sdk.errors import WaitTimeout
from berth.sdk.paging import follow, follow_async
from berth.sdk.routes import ApprovalRoutes

DECIDED = frozenset({"approved", "rejected", "expired"})


def _still_pending(approval_id: str, timeout: float, last: ApprovalOut) -> WaitTimeout:
    return WaitTimeout(f"approval {approval_id} still pending after {timeout:g}s", last=last)


class ApprovalsAPI:
    """`client.approvals`."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport
        self._routes = ApprovalRoutes()

    def list(self, status: str | None = None) -> list[ApprovalOut]:
        """The approvals the caller may see, pending first, then newest first; `status`
        filters (`pending`, ...). Follows the cursors to the last page."""
        return list(self.iter(status))

    def iter(
        self, status: str | None = None, *, page_size: int | None = None
    ) -> Iterator[ApprovalOut]:
        """The approvals, fetched a page at a time as the iteration goes."""

        def fetch(cursor: str | None) -> ApprovalList:
            return self._t.call(self._routes.list(status, limit=page_size, cursor=cursor))

        return follow(fetch, lambda page: page.approvals)

    def page(
        self, status: str | None = None, *, limit: int | None = None, cursor: str | None = None
    ) -> ApprovalList:
        """One page of approvals, with the `next_cursor` of the next (None on the last)."""
        return self._t.call(self._routes.list(status, limit=limit, cursor=cursor))

    def get(self, approval_id: str) -> ApprovalOut:
        return self._t.call(self._routes.get(approval_id))

    def approve(self, approval_id: str, note: str | None = None) -> ApprovalOut:
        """Approve: the stored request runs now as its original caller (humans only); a
        shell runs when its agent collects it, so its `result` is None here."""
        return self._t.call(self._routes.decide(approval_id, "approve", note))

    def reject(self, approval_id: str, note: str | None = None) -> ApprovalOut:
        """Reject: the request never runs (humans only)."""
        return self._t.call(self._routes.decide(approval_id, "reject", note))

    def get_policy(self) -> ApprovalPolicy:
        """Which actions need approval for API-key callers, and how long approvals last."""
        return self._t.call(self._routes.get_policy())

    def set_policy(self, policy: ApprovalPolicy) -> ApprovalPolicy:
        """Replace the policy (all fields; read it first to change one)."""
        return self._t.call(self._routes.set_policy(policy))

    def wait(
        self,
        approval_id: str,
        *,
        timeout: float | None = None,
        interval: float = 1.0,
        on_poll: Callable[[ApprovalOut], None] | None = None,
    ) -> ApprovalOut:
        """Poll until the approval is decided (`approved`, `rejected` or `expired`) and return
        it; `timeout=None` waits as long as the approval may stay open. `WaitTimeout` else."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            approval = self.get(approval_id)
            if on_poll is not None:
                on_poll(approval)
            if approval.status in DECIDED:
                return approval
            if deadline is not None and time.monotonic() >= deadline:
                raise _still_pending(approval_id, timeout or 0, approval)
            time.sleep(interval)


class AsyncApprovalsAPI:
    """`client.approvals` (async); contracts as `ApprovalsAPI`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._routes = ApprovalRoutes()

    async def list(self, status: str | None = None) -> list[ApprovalOut]:
        return [approval async for approval in self.iter(status)]

    def iter(
        self, status: str | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[ApprovalOut]:
        async def fetch(cursor: str | None) -> ApprovalList:
            return await self._t.call(self._routes.list(status, limit=page_size, cursor=cursor))

        return follow_async(fetch, lambda page: page.approvals)

    async def page(
        self, status: str | None = None, *, limit: int | None = None, cursor: str | None = None
    ) -> ApprovalList:
        return await self._t.call(self._routes.list(status, limit=limit, cursor=cursor))

    async def get(self, approval_id: str) -> ApprovalOut:
        return await self._t.call(self._routes.get(approval_id))

    async def approve(self, approval_id: str, note: str | None = None) -> ApprovalOut:
        return await self._t.call(self._routes.decide(approval_id, "approve", note))

    async def reject(self, approval_id: str, note: str | None = None) -> ApprovalOut:
        return await self._t.call(self._routes.decide(approval_id, "reject", note))

    async def get_policy(self) -> ApprovalPolicy:
        return await self._t.call(self._routes.get_policy())

    async def set_policy(self, policy: ApprovalPolicy) -> ApprovalPolicy:
        return await self._t.call(self._routes.set_policy(policy))

    async def wait(
        self,
        approval_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (a polling deadline)
        interval: float = 1.0,
        on_poll: Callable[[ApprovalOut], None] | None = None,
    ) -> ApprovalOut:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            approval = await self.get(approval_id)
            if on_poll is not None:
                on_poll(approval)
            if approval.status in DECIDED:
                return approval
            if deadline is not None and time.monotonic() >= deadline:
                raise _still_pending(approval_id, timeout or 0, approval)
            await asyncio.sleep(interval)
