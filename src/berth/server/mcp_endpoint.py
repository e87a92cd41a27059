"""`/mcp` on the API port: berth's MCP server over streamable HTTP.

A request must carry `Authorization: Bearer <API key or session token>`, checked as the API
checks it (an unknown, revoked or missing credential is `401` before any MCP message is
read). Each tool call then goes through the SDK into this same application in-process,
carrying the caller's own credential, so approvals, tenancy, quotas and rate limits apply to
it exactly as to the HTTP API. The MCP server is stateless: every POST stands alone, and a
long tool call (`approval_wait`) streams its progress notifications on that POST's response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from berth.api.deps import bearer_credential, domain_of
from berth.api.errors import error_body
from berth.domain.auth import authenticate
from berth.domain.errors import DomainError
from berth.mcp.calls import Ctx
from berth.mcp.server import build_server
from berth.sdk import AsyncClient

MCP_PATH = "/mcp"


class McpEndpoint:
    """The ASGI app served at `/mcp` (not part of the OpenAPI document)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.server = build_server(self._client_for, stateless_http=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            await authenticate(domain_of(request), bearer_credential(request))
        except DomainError as exc:
            response = JSONResponse(
                error_body(exc.message, code=exc.code, field=exc.field),
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        # A manager of the request's own: a stateless request needs nothing that outlives it,
        # and its tasks then live and end in the request's task (none is left to the
        # application's lifespan, which may end in another task than it began).
        manager = StreamableHTTPSessionManager(
            self.server._mcp_server,
            stateless=True,
            security_settings=self.server.settings.transport_security,
        )
        async with manager.run():
            await manager.handle_request(scope, receive, send)

    @asynccontextmanager
    async def _client_for(self, ctx: Ctx) -> AsyncIterator[AsyncClient]:
        request = ctx.request_context.request
        assert isinstance(request, Request), "an HTTP tool call carries its request"
        credential = bearer_credential(request) or ""
        transport = httpx.ASGITransport(app=self.app)
        base_url = str(request.base_url).rstrip("/")
        async with AsyncClient(base_url, credential, transport=transport) as client:
            yield client


def install_mcp_endpoint(app: FastAPI) -> None:
    """Route `/mcp` to berth's MCP server."""
    endpoint = McpEndpoint(app)
    app.router.routes.append(
        Route(MCP_PATH, endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    )
