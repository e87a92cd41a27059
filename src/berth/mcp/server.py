"""berth's MCP server: one definition, served over stdio (`berth mcp`) or streamable HTTP
(`/mcp` on the API port).

Every tool calls berth's HTTP API through the async SDK, as the caller: the server never
reaches the domain itself, so authentication, tenancy, approval gating, quotas, credits and
rate limits apply to an agent's tool call exactly as they do to any API client. What differs
between the transports is only where a tool gets its SDK client (`ClientSource`): over stdio
one client with the key `berth login` stored (or `BERTH_API_KEY`); over HTTP a client per
call that carries the caller's own Bearer key into the application in-process.
"""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP
from mcp.server.transport_security import TransportSecuritySettings

from berth.mcp import (
    resources,
    tools_account,
    tools_approvals,
    tools_devboxes,
    tools_files,
    tools_workloads,
)
from berth.mcp.calls import ClientSource

INSTRUCTIONS = """\
berth runs containers for you: services (long-running, with a public URL), jobs (run to
completion), schedules (cron) and dev boxes (long-lived containers you reach over SSH).
Money is in credits: creating or starting work that runs a task needs credits.

Some calls are gated by your company's policy (by default: creating a workload, exec and
shell by an API key; writing or deleting a file in a workload counts as exec). A gated call
does nothing yet and returns `pending_approval` with an `approval_id`: tell the human what
you asked for, then call `approval_wait` with that id.
It returns the call's own result once a human approves (the call runs exactly once), or the
rejection and its note. Never repeat a gated call to retry it.
"""


def build_server(source: ClientSource, *, stateless_http: bool = False) -> FastMCP:
    """The MCP server with all of berth's tools, each acting through `source`."""
    server = FastMCP(
        "berth",
        instructions=INSTRUCTIONS,
        stateless_http=stateless_http,
        log_level="WARNING",
        # Every HTTP request carries a Bearer key that a browser will not attach for another
        # site, so the Host check (meant for keyless local servers) would only refuse the
        # names and addresses berth is legitimately reached by.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    tools_workloads.register(server, source)
    tools_devboxes.register(server, source)
    tools_files.register(server, source)
    tools_approvals.register(server, source)
    tools_account.register(server, source)
    resources.register(server, source)
    return server
