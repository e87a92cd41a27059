"""berth's MCP server, driven by the MCP SDK's own client over both transports against a real
berth server on the real engine: stdio (`berth mcp` as a subprocess, configured by
environment) and streamable HTTP (`/mcp` on the API port, Bearer key)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from berth.testing.waiting import poll
from tests.support.cli import clean_env, ok, run_berth
from tests.support.mcp_client import TRANSPORTS, connect, error_text, structured
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """A server whose policy gates an agent's create (exec is left free for its own test)."""
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("mcp")) / "data",
        env={"BERTH_DEFAULT_GATED_ACTIONS": '["create"]'},
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.fixture
def agent(mcp_server: BerthServer) -> Iterator[Tenant]:
    tenant = mcp_server.new_tenant()
    yield tenant
    for workload in tenant.client.get("/v1/compute").json().get("workloads", []):
        tenant.client.delete(f"/v1/compute/{workload['id']}")
    tenant.client.close()


@pytest.fixture
def person(mcp_server: BerthServer, agent: Tenant) -> Iterator[httpx.Client]:
    """The agent's user signed in as a human (session token): humans decide approvals, and
    their own calls are never gated."""
    token = mcp_server.session_token(agent.user_id)
    with httpx.Client(
        base_url=mcp_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def stranger(mcp_server: BerthServer) -> Iterator[Tenant]:
    """Another user of the server, with a key of their own."""
    tenant = mcp_server.new_tenant()
    yield tenant
    tenant.client.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_tools_are_listed_with_schemas_and_truthful_annotations(
    transport: str, mcp_server: BerthServer, agent: Tenant
) -> None:
    async with connect(transport, mcp_server, agent.key) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    for name in (
        "workloads_list",
        "workloads_get",
        "workloads_create",
        "workloads_delete",
        "workloads_run",
        "workloads_runs",
        "workloads_logs",
        "workloads_exec",
        "workloads_scale",
        "workloads_start",
        "workloads_stop",
        "workloads_pause",
        "workloads_resume",
        "secrets_list",
        "secrets_set",
        "secrets_delete",
        "devboxes_list",
        "devboxes_create",
        "devboxes_delete",
        "devboxes_start",
        "devboxes_stop",
        "devboxes_pause",
        "devboxes_resume",
        "devboxes_ssh_command",
        "service_url",
        "approval_wait",
        "workloads_wait",
    ):
        assert name in tools, name
        assert tools[name].description and tools[name].outputSchema, name
    create = tools["workloads_create"]
    assert set(create.inputSchema["required"]) == {"name", "type", "image"}
    assert create.inputSchema["properties"]["type"]["enum"] == ["job", "service", "schedule"]
    assert "pending_approval" in create.outputSchema["properties"]  # type: ignore[index]
    logs = tools["workloads_logs"].inputSchema
    assert {"type": "string", "format": "date-time"} in logs["properties"]["since"]["anyOf"]
    assert set(logs["required"]) == {"workload_id"}
    exec_out = tools["workloads_exec"].outputSchema
    assert exec_out is not None and "result" in exec_out["properties"]
    annotations = {name: tool.annotations for name, tool in tools.items()}
    assert all(a is not None for a in annotations.values())
    assert annotations["workloads_list"].readOnlyHint is True  # type: ignore[union-attr]
    assert annotations["approval_wait"].readOnlyHint is True  # type: ignore[union-attr]
    for name in ("workloads_delete", "devboxes_delete", "secrets_delete", "workloads_exec"):
        assert annotations[name].readOnlyHint is False  # type: ignore[union-attr]
        assert annotations[name].destructiveHint is True, name  # type: ignore[union-attr]
    create_hints = annotations["workloads_create"]
    assert create_hints is not None
    assert create_hints.destructiveHint is False and create_hints.idempotentHint is False


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_gated_create_waits_for_a_human_and_approval_wait_returns_the_job(
    transport: str, mcp_server: BerthServer, agent: Tenant, person: httpx.Client
) -> None:
    name = f"gated-{transport}"
    async with connect(transport, mcp_server, agent.key) as session:
        created = structured(
            await session.call_tool(
                "workloads_create",
                {"name": name, "type": "job", "image": TEST_IMAGE, "command": "echo done"},
            )
        )
        assert created["workload"] is None
        pending = created["pending_approval"]
        assert pending["status"] == "pending_approval" and "approve" in pending["next_step"]
        approval_id = pending["approval_id"]
        listed = structured(await session.call_tool("workloads_list", {}))
        assert listed["workloads"] == [], "nothing is created before a human approves"

        progressed = anyio.Event()
        progress: list[float] = []

        async def on_progress(value: float, _total: float | None, _message: str | None) -> None:
            progress.append(value)
            progressed.set()

        outcome: dict[str, Any] = {}

        async def wait() -> None:
            result = await session.call_tool(
                "approval_wait",
                {"approval_id": approval_id, "timeout": 60},
                progress_callback=on_progress,
            )
            outcome.update(structured(result))

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await progressed.wait()  # the wait is under way, reporting progress
            decided = await anyio.to_thread.run_sync(
                lambda: person.post(f"/v1/approvals/{approval_id}/approve")
            )
            assert decided.status_code == 200, decided.text

        assert progress, "approval_wait reports progress while it waits"
        assert outcome["status"] == "approved" and outcome["result_status"] == 201
        job = outcome["result"]
        assert job["name"] == name and job["type"] == "job"

        # Waiting again returns the same kept answer: the create ran exactly once.
        again = structured(await session.call_tool("approval_wait", {"approval_id": approval_id}))
        assert again["result"]["id"] == job["id"]

        done = structured(
            await session.call_tool(
                "workloads_wait", {"workload_id": job["id"], "until": "finished", "timeout": 60}
            )
        )
        assert done["status"] == "succeeded", done
        assert done["recent_runs"][0]["exit_code"] == 0
        names = [
            w["name"]
            for w in structured(await session.call_tool("workloads_list", {}))["workloads"]
        ]
        assert names == [name]
        logs = structured(
            await session.call_tool("workloads_logs", {"workload_id": job["id"], "tail": 5})
        )
        assert logs["lines"] == ["stdout: done"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_exec_returns_the_exit_code_and_both_outputs(
    transport: str, mcp_server: BerthServer, agent: Tenant, person: httpx.Client
) -> None:
    # A human creates the service (humans are not gated); the agent execs in it.
    service = {"name": f"box-{transport}", "type": "service", "image": TEST_IMAGE}
    response = await anyio.to_thread.run_sync(
        lambda: person.post("/v1/compute", json={**service, "command": "sleep 3600"})
    )
    assert response.status_code == 201, response.text
    workload_id = response.json()["id"]
    async with connect(transport, mcp_server, agent.key) as session:
        up = structured(
            await session.call_tool(
                "workloads_wait", {"workload_id": workload_id, "until": "running", "timeout": 60}
            )
        )
        assert up["status"] == "running" and up["running_tasks"] == 1, up
        ran = structured(
            await session.call_tool(
                "workloads_exec",
                {
                    "workload_id": workload_id,
                    "command": "cat; echo oops >&2; exit 3",
                    "stdin": "fed in\n",
                    "timeout_seconds": 20,
                },
            )
        )
    assert ran["pending_approval"] is None
    result = ran["result"]
    assert result["exit_code"] == 3 and not result["timed_out"]
    assert result["stdout"] == "fed in\n" and result["stderr"] == "oops\n"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_logs_since_a_time_keep_the_lines_at_or_after_it(
    transport: str, mcp_server: BerthServer, agent: Tenant, person: httpx.Client
) -> None:
    # A job printing one line, then a second once the test lets it (a file appears).
    job = {
        "name": f"since-{transport}",
        "type": "job",
        "image": TEST_IMAGE,
        "command": "echo early; until [ -f /tmp/go ]; do sleep 0.1; done; echo late",
    }
    response = await anyio.to_thread.run_sync(lambda: person.post("/v1/compute", json=job))
    assert response.status_code == 201, response.text
    workload_id = response.json()["id"]
    async with connect(transport, mcp_server, agent.key) as session:

        async def logs(**arguments: Any) -> dict[str, Any]:
            return structured(
                await session.call_tool("workloads_logs", {"workload_id": workload_id, **arguments})
            )

        async def early_printed() -> bool:
            lines: list[str] = (await logs())["lines"]
            return lines == ["stdout: early"]

        await poll(early_printed, 60, interval=0.2, what="the job's first line")
        go = await session.call_tool(
            "workloads_exec", {"workload_id": workload_id, "command": "touch /tmp/go"}
        )
        assert structured(go)["result"]["exit_code"] == 0, go
        done = structured(
            await session.call_tool(
                "workloads_wait", {"workload_id": workload_id, "until": "finished", "timeout": 60}
            )
        )
        assert done["status"] == "succeeded", done
        # The lines' own times, as the logs API stamps them.
        api = await anyio.to_thread.run_sync(lambda: person.get(f"/v1/compute/{workload_id}/logs"))
        stamps = [datetime.fromisoformat(e["timestamp"]) for e in api.json()["events"]]
        assert [e["message"] for e in api.json()["events"]] == ["early", "late"]
        early, late = stamps
        assert early < late
        between = early + (late - early) / 2

        everything = await logs()
        assert everything["lines"] == ["stdout: early", "stdout: late"]
        assert everything["total_lines"] == 2
        assert (await logs(since=early.isoformat()))["lines"] == everything["lines"]
        for form in (
            between.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            between.astimezone(UTC).replace(tzinfo=None).isoformat(),  # naive: UTC
            between.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
            late.isoformat(),  # at the time itself: kept
        ):
            cut = await logs(since=form, run_id=done["recent_runs"][0]["id"])
            assert (cut["lines"], cut["total_lines"]) == (["stdout: late"], 1), form
        after = await logs(since=(late + timedelta(microseconds=1)).isoformat())
        assert (after["lines"], after["total_lines"]) == ([], 0)
        # `tail` keeps the last of the lines since the time; `total_lines` counts them all.
        last = await logs(since=early.isoformat(), tail=1)
        assert (last["lines"], last["total_lines"]) == (["stdout: late"], 2)

        for bad in ("yesterday", "2025-13-01T00:00:00Z"):
            refused = await session.call_tool(
                "workloads_logs", {"workload_id": workload_id, "since": bad}
            )
            assert refused.isError and "since" in error_text(refused), bad


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_bad_argument_is_a_tool_error_naming_the_field(
    transport: str, mcp_server: BerthServer, agent: Tenant
) -> None:
    async with connect(transport, mcp_server, agent.key) as session:
        # Refused by the tool's own schema...
        wrong_type = await session.call_tool(
            "workloads_scale", {"workload_id": "x", "replicas": "many"}
        )
        assert wrong_type.isError and "replicas" in error_text(wrong_type)
        # ... and by the API, whose field and rule the error carries.
        bad_image = await session.call_tool(
            "workloads_create", {"name": "bad", "type": "job", "image": "no spaces allowed"}
        )
        assert bad_image.isError
        assert "HTTP 422" in error_text(bad_image) and "`image`" in error_text(bad_image)
        missing = await session.call_tool("workloads_get", {"workload_id": "nope"})
        assert missing.isError and "HTTP 404" in error_text(missing)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_another_users_key_sees_nothing_of_the_first(
    transport: str, mcp_server: BerthServer, agent: Tenant, person: httpx.Client, stranger: Tenant
) -> None:
    schedule = {"name": "mine", "type": "schedule", "image": TEST_IMAGE}
    response = await anyio.to_thread.run_sync(
        lambda: person.post("/v1/compute", json={**schedule, "schedule_expr": "0 0 1 1 *"})
    )
    assert response.status_code == 201, response.text
    workload_id = response.json()["id"]
    async with connect(transport, mcp_server, stranger.key) as session:
        listed = structured(await session.call_tool("workloads_list", {}))
        assert listed["workloads"] == []
        for tool in ("workloads_get", "service_url", "secrets_list"):
            seen = await session.call_tool(tool, {"workload_id": workload_id})
            assert seen.isError and "HTTP 404" in error_text(seen), tool
        deleted = await session.call_tool("workloads_delete", {"workload_id": workload_id})
        assert deleted.isError
    assert agent.client.get(f"/v1/compute/{workload_id}").status_code == 200


def test_the_http_endpoint_refuses_a_missing_or_unknown_key_as_the_api_does(
    mcp_server: BerthServer,
) -> None:
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    for headers in ({}, {"Authorization": "Bearer nv_sk_unknown"}):
        response = httpx.post(f"{mcp_server.url}/mcp", json=hello, headers={**accept, **headers})
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        # The same refusal, word for word, as the API's own.
        api = httpx.get(f"{mcp_server.url}/v1/compute", headers=headers)
        assert api.status_code == 401 and response.json() == api.json()


def test_the_mcp_endpoint_is_not_in_the_openapi_document(mcp_server: BerthServer) -> None:
    document = httpx.get(f"{mcp_server.url}/openapi.json").json()
    assert "/mcp" not in document["paths"]
    assert all(not path.startswith("/mcp") for path in document["paths"])


async def test_a_client_configured_by_berth_mcp_config_drives_berth(
    mcp_server: BerthServer, agent: Tenant, tmp_path: Path
) -> None:
    env = clean_env(tmp_path)
    ok(run_berth("login", "--url", mcp_server.url, "--key", agent.key, env=env))
    printed = ok(await anyio.to_thread.run_sync(lambda: run_berth("mcp", "config", env=env)))
    assert agent.key not in printed, "the key stays in the file berth login wrote"
    entry = json.loads(printed)["mcpServers"]["berth"]
    assert entry["env"] == {"BERTH_URL": mcp_server.url}
    params = StdioServerParameters(
        command=entry["command"], args=entry["args"], env={**env, **entry["env"]}
    )
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write, read_timeout_seconds=timedelta(seconds=60)) as session,
    ):
        await session.initialize()
        assert structured(await session.call_tool("workloads_list", {})) == {"workloads": []}

    http = json.loads(ok(run_berth("mcp", "config", "--transport", "http", env=env)))
    assert http["mcpServers"]["berth"]["url"] == f"{mcp_server.url}/mcp"
    assert http["mcpServers"]["berth"]["headers"] == {"Authorization": "Bearer ${BERTH_API_KEY}"}
