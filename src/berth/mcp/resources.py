"""Workloads and run logs as MCP resources, for clients that attach context by URI rather
than call tools: `berth://workloads`, `berth://workloads/{workload_id}` (JSON, as
`workloads_get` answers) and `berth://workloads/{workload_id}/runs/{run_id}/logs` (the run's
output as text, one `stream: line` per line). The list is a fixed resource
(`resources/list`), the other two URI templates (`resources/templates/list`); every read
acts as the caller."""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP

from berth.mcp.calls import ClientSource, through_api

JSON = "application/json"


def register(server: FastMCP, source: ClientSource) -> None:
    @server.resource("berth://workloads", name="workloads", mime_type=JSON)
    async def workloads() -> str:
        """Your workloads with status and recent runs (JSON)."""
        # The request's context, as tools get it injected: the SDK injects none into a fixed
        # resource, and a template's injected one lacks the HTTP request (the caller's key).
        ctx = server.get_context()
        listed = await through_api(source, ctx, lambda c: c.compute.list())
        return "[" + ",".join(w.model_dump_json() for w in listed) + "]"

    @server.resource("berth://workloads/{workload_id}", name="workload", mime_type=JSON)
    async def workload(workload_id: str) -> str:
        """One workload (JSON), as workloads_get answers."""
        ctx = server.get_context()
        found = await through_api(source, ctx, lambda c: c.compute.get(workload_id))
        return found.model_dump_json()

    @server.resource(
        "berth://workloads/{workload_id}/runs/{run_id}/logs",
        name="run logs",
        mime_type="text/plain",
    )
    async def run_logs(workload_id: str, run_id: str) -> str:
        """A run's output, stdout and stderr in order, one `stream: line` per line."""
        ctx = server.get_context()
        logs = await through_api(source, ctx, lambda c: c.compute.logs(workload_id, run_id=run_id))
        return "".join(f"{event.stream}: {event.message}\n" for event in logs.events)
