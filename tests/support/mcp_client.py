"""The MCP SDK's own client connected to a berth server, over either transport: stdio
(`berth mcp` as a subprocess, configured by environment) or streamable HTTP (`/mcp` on the
API port, Bearer key); and reading a tool call's result."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from berth.testing.server import BerthServer

TRANSPORTS = ["stdio", "http"]


@asynccontextmanager
async def connect(transport: str, server: BerthServer, key: str) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session as `key`, over `transport`."""
    if transport == "stdio":
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        env |= {"BERTH_URL": server.url, "BERTH_API_KEY": key, "XDG_CONFIG_HOME": "/nonexistent"}
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "berth.cli.main", "mcp"], env=env
        )
        async with (
            stdio_client(params) as (read, write),
            ClientSession(read, write, read_timeout_seconds=timedelta(seconds=60)) as session,
        ):
            await session.initialize()
            yield session
        return
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=120)) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write, read_timeout_seconds=timedelta(seconds=60)) as session,
    ):
        await session.initialize()
        yield session


def structured(result: CallToolResult) -> dict[str, Any]:
    """A successful call's structured result."""
    assert not result.isError, error_text(result)
    assert result.structuredContent is not None
    return result.structuredContent


def error_text(result: CallToolResult) -> str:
    return " ".join(part.text for part in result.content if isinstance(part, TextContent))
