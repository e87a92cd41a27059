"""How a tool reaches berth: through the SDK client its transport gives it (`ClientSource`),
with the API's refusals turned into tool errors that name the field and the rule."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from mcp.server.fastmcp import Context
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.session import ServerSession

from berth.sdk import AsyncClient, BerthError

T = TypeVar("T")

Ctx = Context[ServerSession, Any, Any]
ClientSource = Callable[[Ctx], AbstractAsyncContextManager[AsyncClient]]
"""Yields the SDK client a tool call acts through (and closes it if it made one)."""


def tool_error(exc: BerthError) -> ToolError:
    """The API's refusal as a tool error the model can act on: the field and the rule."""
    where = f" (field `{exc.field}`)" if exc.field else ""
    status = f"HTTP {exc.status}" if exc.status else "berth"
    return ToolError(f"{status}{where}: {exc.message}")


async def through_api(
    source: ClientSource, ctx: Ctx, action: Callable[[AsyncClient], Awaitable[T]]
) -> T:
    """Run `action` on the caller's SDK client; an API error becomes a tool error."""
    async with source(ctx) as client:
        try:
            return await action(client)
        except BerthError as exc:
            raise tool_error(exc) from exc


def fixed_client(client: AsyncClient) -> ClientSource:
    """Every call through one client (stdio: one caller for the process's lifetime)."""

    @asynccontextmanager
    async def source(_ctx: Ctx) -> AsyncIterator[AsyncClient]:
        yield client

    return source
