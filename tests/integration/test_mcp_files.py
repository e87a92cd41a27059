"""The MCP file tools, driven by the MCP SDK's own client over both transports against a real
berth server on the real engine: a gated write approved by a human and read back with exec
`cat`, binary content through base64, listings, and refusals (`..`, over the size limit,
a stopped workload, another user's workload)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession

from berth.testing.waiting import poll
from tests.support.api import wait_workload
from tests.support.keys import public_key_only
from tests.support.mcp_client import TRANSPORTS, connect, error_text, structured
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine

LIMIT = 64 * 1024
"""This module's server's `BERTH_MAX_FILE_BYTES`, small so an oversize call is cheap."""
EVERY_BYTE = bytes(range(256)) * 4


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """A server gating exec (so file writes on workloads), with a 64 KiB file limit."""
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("mcp-files")) / "data",
        env={"BERTH_DEFAULT_GATED_ACTIONS": '["exec"]', "BERTH_MAX_FILE_BYTES": str(LIMIT)},
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.fixture
def agent(mcp_server: BerthServer) -> Iterator[Tenant]:
    tenant = mcp_server.new_tenant()
    yield tenant
    for box in tenant.client.get("/compute/containers").json().get("containers", []):
        tenant.client.delete(f"/compute/containers/{box['id']}")
    for workload in tenant.client.get("/v1/compute").json().get("workloads", []):
        tenant.client.delete(f"/v1/compute/{workload['id']}")
    tenant.client.close()


@pytest.fixture
def person(mcp_server: BerthServer, agent: Tenant) -> Iterator[httpx.Client]:
    """The agent's user signed in as a human: decides approvals, is never gated."""
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


@pytest.fixture
def service(agent: Tenant) -> str:
    """A running service of the agent's (creating is not gated on this server)."""
    response = agent.client.post(
        "/v1/compute",
        json={"name": "files", "type": "service", "image": TEST_IMAGE, "command": "sleep 3600"},
    )
    assert response.status_code == 201, response.text
    workload_id: str = response.json()["id"]
    wait_workload(agent.client, workload_id, lambda s: s["running_tasks"] == 1)
    return workload_id


async def test_the_file_tools_have_schemas_and_truthful_annotations(
    mcp_server: BerthServer, agent: Tenant
) -> None:
    async with connect("http", mcp_server, agent.key) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    for name in ("files_read", "files_list", "files_write", "files_delete"):
        assert tools[name].description and tools[name].outputSchema, name
        assert set(tools[name].inputSchema["required"]) >= {"path"}, name
        assert {"workload_id", "dev_box_id", "task"} <= set(tools[name].inputSchema["properties"])
        assert "task" not in tools[name].inputSchema["required"], name
    hints = {name: tools[name].annotations for name in tools}
    for name in ("files_read", "files_list"):
        assert hints[name].readOnlyHint is True, name  # type: ignore[union-attr]
    for name in ("files_write", "files_delete"):
        assert hints[name].readOnlyHint is False, name  # type: ignore[union-attr]
        assert hints[name].destructiveHint is True, name  # type: ignore[union-attr]
    write = tools["files_write"]
    assert write.inputSchema["properties"]["encoding"]["enum"] == ["utf-8", "base64"]
    assert "pending_approval" in write.outputSchema["properties"]  # type: ignore[index]
    read_out = tools["files_read"].outputSchema
    assert read_out is not None and {"encoding", "content"} <= set(read_out["properties"])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_gated_write_runs_once_approved_and_exec_cat_reads_it(
    transport: str, mcp_server: BerthServer, agent: Tenant, person: httpx.Client, service: str
) -> None:
    text = f"written over {transport}\nline two ✓\n"
    async with connect(transport, mcp_server, agent.key) as session:
        held = structured(
            await session.call_tool(
                "files_write",
                {"workload_id": service, "path": "/srv/app/notes.txt", "content": text},
            )
        )
        assert held["written"] is None
        approval_id = held["pending_approval"]["approval_id"]
        missing = await session.call_tool(
            "files_read", {"workload_id": service, "path": "/srv/app/notes.txt"}
        )
        assert missing.isError and "HTTP 404" in error_text(missing), "nothing ran yet"

        decided = await anyio.to_thread.run_sync(
            lambda: person.post(f"/v1/approvals/{approval_id}/approve")
        )
        assert decided.status_code == 200, decided.text
        waited = structured(
            await session.call_tool("approval_wait", {"approval_id": approval_id, "timeout": 30})
        )
        assert waited["status"] == "approved" and waited["action"] == "exec"
        assert waited["result_status"] == 201
        assert waited["result"] == {
            "path": "/srv/app/notes.txt",
            "size": len(text.encode()),
            "created": True,
        }
        read = structured(
            await session.call_tool(
                "files_read", {"workload_id": service, "path": "/srv/app/notes.txt"}
            )
        )
        assert (read["encoding"], read["content"]) == ("utf-8", text)
        listed = structured(
            await session.call_tool("files_list", {"workload_id": service, "path": "/srv/app"})
        )
        assert [(e["name"], e["type"]) for e in listed["entries"]] == [("notes.txt", "file")]
    # What the task itself has on disk, read by a command in it (a human: not gated).
    cat = await anyio.to_thread.run_sync(
        lambda: person.post(
            f"/v1/compute/{service}/exec", json={"command": ["cat", "/srv/app/notes.txt"]}
        )
    )
    assert cat.status_code == 200 and cat.json()["stdout"] == text, cat.text


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_task_picks_the_replica_a_file_is_written_to_read_from_and_deleted_in(
    transport: str, mcp_server: BerthServer, agent: Tenant, person: httpx.Client
) -> None:
    response = agent.client.post(
        "/v1/compute",
        json={
            "name": "pair",
            "type": "service",
            "image": TEST_IMAGE,
            "command": "sleep 3600",
            "replicas": 2,
        },
    )
    assert response.status_code == 201, response.text
    workload_id = response.json()["id"]
    await anyio.to_thread.run_sync(
        lambda: wait_workload(agent.client, workload_id, lambda s: s["running_tasks"] == 2)
    )
    path = "/tmp/replica.txt"
    async with connect(transport, mcp_server, agent.key) as session:
        runs = structured(await session.call_tool("workloads_runs", {"workload_id": workload_id}))
        running = {r["slot"]: r["id"] for r in runs["runs"] if r["status"] == "running"}
        assert sorted(running) == [0, 1], runs
        first, second = running[0], running[1]

        async def call(tool: str, **arguments: Any) -> Any:
            return await session.call_tool(tool, {"workload_id": workload_id, **arguments})

        async def approved(held: dict[str, Any]) -> dict[str, Any]:
            """The gated call's result once the agent's human approved it."""
            approval_id = held["pending_approval"]["approval_id"]
            decided = await anyio.to_thread.run_sync(
                lambda: person.post(f"/v1/approvals/{approval_id}/approve")
            )
            assert decided.status_code == 200, decided.text
            waited = structured(
                await session.call_tool(
                    "approval_wait", {"approval_id": approval_id, "timeout": 30}
                )
            )
            assert waited["status"] == "approved", waited
            return waited

        # Written in the second replica's task (the approval keeps the `task`)...
        written = await approved(
            structured(await call("files_write", path=path, content="two\n", task=second))
        )
        assert written["result_status"] == 201
        assert written["result"] == {"path": path, "size": 4, "created": True}
        read = structured(await call("files_read", path=path, task=second))
        assert read["content"] == "two\n"
        listed = structured(await call("files_list", path="/tmp", task=second))
        assert "replica.txt" in [e["name"] for e in listed["entries"]]
        # ... and absent from the first's, which is also the default (the lowest slot).
        for elsewhere in ({"task": first}, {}):
            absent = await call("files_read", path=path, **elsewhere)
            assert absent.isError and "HTTP 404" in error_text(absent), elsewhere
            listed = structured(await call("files_list", path="/tmp", **elsewhere))
            assert "replica.txt" not in [e["name"] for e in listed["entries"]], elsewhere

        # A command runs in the task named too (exec takes `task` as the file tools do).
        async def exec_result(**arguments: Any) -> dict[str, Any]:
            out = structured(await call("workloads_exec", **arguments))
            if out["pending_approval"] is not None:
                return dict((await approved(out))["result"])
            return dict(out["result"])

        here = await exec_result(command=f"cat {path}", task=second)
        assert (here["exit_code"], here["stdout"]) == (0, "two\n"), here
        assert (await exec_result(command=f"cat {path}"))["exit_code"] == 1

        deleted = await approved(structured(await call("files_delete", path=path, task=second)))
        assert deleted["result"] == {"path": path, "deleted": True}
        gone = await call("files_read", path=path, task=second)
        assert gone.isError and "HTTP 404" in error_text(gone)

        unknown = await call("files_list", path="/tmp", task="run_unknown")
        assert unknown.isError and "HTTP 404" in error_text(unknown)
        assert "run_unknown" in error_text(unknown)
        box = await session.call_tool("files_list", {"dev_box_id": "x", "path": "/", "task": first})
        assert box.isError and "`task`" in error_text(box)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_binary_content_round_trips_as_base64_in_a_dev_box(
    transport: str, mcp_server: BerthServer, agent: Tenant
) -> None:
    key = agent.client.post(
        "/compute/ssh-keys", json={"name": "k", "public_key": public_key_only()}
    )
    box = agent.client.post(
        "/compute/containers",
        json={"name": "box", "ssh_key_ids": [key.json()["id"]], "image": TEST_IMAGE},
    )
    assert box.status_code == 201, box.text
    box_id = box.json()["id"]
    encoded = base64.b64encode(EVERY_BYTE).decode()
    async with connect(transport, mcp_server, agent.key) as session:
        up = structured(await session.call_tool("devboxes_list", {}))["dev_boxes"]
        assert [b["id"] for b in up] == [box_id]
        written = await _write_when_running(session, box_id, encoded)
        assert written["written"] == {"path": "/root/blob.bin", "size": 1024, "created": True}
        read = structured(
            await session.call_tool("files_read", {"dev_box_id": box_id, "path": "/root/blob.bin"})
        )
        assert read["encoding"] == "base64" and base64.b64decode(read["content"]) == EVERY_BYTE
        forced = structured(
            await session.call_tool(
                "files_read",
                {"dev_box_id": box_id, "path": "/etc/hostname", "encoding": "base64"},
            )
        )
        assert forced["encoding"] == "base64"
        deleted = structured(
            await session.call_tool(
                "files_delete", {"dev_box_id": box_id, "path": "/root/blob.bin"}
            )
        )
        assert deleted["deleted"] == {"path": "/root/blob.bin", "deleted": True}


async def _write_when_running(session: ClientSession, box_id: str, encoded: str) -> dict[str, Any]:
    """files_write into the dev box once it runs (until then: 409 not running)."""

    async def attempt() -> dict[str, Any] | None:
        result = await session.call_tool(
            "files_write",
            {
                "dev_box_id": box_id,
                "path": "/root/blob.bin",
                "content": encoded,
                "encoding": "base64",
            },
        )
        if result.isError and "HTTP 409" in error_text(result):
            return None
        return structured(result)

    return await poll(attempt, 30, interval=0.2, what="the dev box to run")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_files_refuse_escapes_oversize_stopped_targets_and_strangers(
    transport: str,
    mcp_server: BerthServer,
    agent: Tenant,
    person: httpx.Client,
    service: str,
    stranger: Tenant,
) -> None:
    async with connect(transport, mcp_server, agent.key) as session:
        escape = await session.call_tool(
            "files_read", {"workload_id": service, "path": "/tmp/../etc/passwd"}
        )
        assert escape.isError and "HTTP 422 (field `path`)" in error_text(escape)
        neither = await session.call_tool("files_list", {"path": "/"})
        assert neither.isError and "exactly one" in error_text(neither)
        big = await session.call_tool(
            "files_write",
            {"dev_box_id": "x", "path": "/tmp/big", "content": "x" * (LIMIT + 1)},
        )
        assert big.isError and "HTTP 413" in error_text(big) and str(LIMIT) in error_text(big)
    async with connect(transport, mcp_server, stranger.key) as session:
        foreign = await session.call_tool("files_list", {"workload_id": service, "path": "/"})
        assert foreign.isError and "HTTP 404" in error_text(foreign)
    stopped = await anyio.to_thread.run_sync(lambda: person.post(f"/v1/compute/{service}/stop"))
    assert stopped.status_code == 200, stopped.text
    await anyio.to_thread.run_sync(
        lambda: wait_workload(agent.client, service, lambda s: s["running_tasks"] == 0)
    )
    async with connect(transport, mcp_server, agent.key) as session:
        idle = await session.call_tool("files_list", {"workload_id": service, "path": "/"})
        assert idle.isError and "HTTP 409" in error_text(idle)
        assert "start it first" in error_text(idle)
