"""The MCP account, SSH key and ingress tools and the workload resources, through the MCP
SDK's client over both transports against a real berth server on the real engine: usage
and balance (and `GET /v1/usage` they read), SSH keys added and deleted, a dev box's port
published through the HTTP gateway and withdrawn (the rules; the gateway's serving of them has its
own suites), and workloads and run logs read as
resources; another user's ids refused."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from mcp.shared.exceptions import McpError
from mcp.types import TextResourceContents
from pydantic import AnyUrl

from tests.support.api import create, wait_workload
from tests.support.keys import public_key_only
from tests.support.mcp_client import TRANSPORTS, connect, error_text, structured
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine


@pytest.fixture
def stranger(server: BerthServer) -> Iterator[Tenant]:
    """Another user of the server, with a key of their own."""
    tenant = server.new_tenant()
    yield tenant
    tenant.client.close()


def ran_a_job(tenant: Tenant) -> dict[str, object]:
    job = create(tenant.client, name="billed", type="job", command="sleep 1; echo billed-output")
    return wait_workload(tenant.client, job["id"], lambda s: s["status"] == "succeeded", timeout=60)


def test_the_usage_route_reports_the_balance_and_what_runs_cost(
    server: BerthServer, tenant: Tenant
) -> None:
    state = ran_a_job(tenant)
    usage = tenant.client.get("/v1/usage", params={"days": 7})
    assert usage.status_code == 200, usage.text
    body = usage.json()
    shown = server.admin("show-user", "--user", tenant.user_id)["credits"]
    assert body["balance"] == pytest.approx(shown)
    assert len(body["days"]) == 7 and body["days"][-1]["credits"] > 0
    (spent,) = body["workloads"]
    assert spent["workload_id"] == state["id"] and spent["credits"] > 0
    assert [run["workload_id"] for run in body["runs"]] == [state["id"]]
    for days in ("0", "367", "many"):
        refused = tenant.client.get("/v1/usage", params={"days": days})
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "days"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_usage_and_ssh_keys_through_the_tools(
    transport: str, server: BerthServer, tenant: Tenant
) -> None:
    state = ran_a_job(tenant)
    key_line = public_key_only()
    async with connect(transport, server, tenant.key) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        for name in ("usage_get", "ssh_keys_list", "devboxes_ingress_list"):
            assert tools[name].annotations and tools[name].annotations.readOnlyHint, name
        for name in ("ssh_keys_delete", "devboxes_ingress_remove"):
            hints = tools[name].annotations
            assert hints and hints.destructiveHint and not hints.readOnlyHint, name
        assert all(tools[name].outputSchema for name in tools if name.startswith("ssh_keys"))
        usage = structured(await session.call_tool("usage_get", {"days": 3}))
        assert len(usage["days"]) == 3
        assert usage["workloads"][0]["workload_id"] == state["id"]
        assert usage["balance"] == pytest.approx(
            server.admin("show-user", "--user", tenant.user_id)["credits"]
        )

        added = structured(
            await session.call_tool("ssh_keys_add", {"name": "laptop", "public_key": key_line})
        )
        assert added["fingerprint"].startswith("SHA256:")
        listed = structured(await session.call_tool("ssh_keys_list", {}))
        assert [k["id"] for k in listed["ssh_keys"]] == [added["id"]]
        bad = await session.call_tool("ssh_keys_add", {"name": "junk", "public_key": "not a key"})
        assert bad.isError and "public_key" in error_text(bad)
        structured(await session.call_tool("ssh_keys_delete", {"key_id": added["id"]}))
        assert structured(await session.call_tool("ssh_keys_list", {}))["ssh_keys"] == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_dev_box_port_is_published_and_withdrawn_through_the_tools(
    transport: str, server: BerthServer, tenant: Tenant
) -> None:
    key = tenant.client.post(
        "/compute/ssh-keys", json={"name": "k", "public_key": public_key_only()}
    )
    assert key.status_code == 201, key.text
    made = tenant.client.post(
        "/compute/containers",
        json={"name": "web-box", "image": TEST_IMAGE, "ssh_key_ids": [key.json()["id"]]},
    )
    assert made.status_code == 201, made.text
    box_id = made.json()["id"]

    async with connect(transport, server, tenant.key) as session:
        rule = structured(
            await session.call_tool(
                "devboxes_ingress_set", {"dev_box_id": box_id, "port": 80, "target_port": 8080}
            )
        )
        assert rule["port"] == 80 and rule["target_port"] == 8080
        rules = structured(await session.call_tool("devboxes_ingress_list", {"dev_box_id": box_id}))
        assert [r["port"] for r in rules["rules"]] == [80]
        refused = await session.call_tool(
            "devboxes_ingress_set", {"dev_box_id": box_id, "port": 22}
        )
        assert refused.isError and "port" in error_text(refused)
        structured(
            await session.call_tool("devboxes_ingress_remove", {"dev_box_id": box_id, "port": 80})
        )
        rules = structured(await session.call_tool("devboxes_ingress_list", {"dev_box_id": box_id}))
        assert rules["rules"] == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_workloads_and_run_logs_are_resources(
    transport: str, server: BerthServer, tenant: Tenant, stranger: Tenant
) -> None:
    state = ran_a_job(tenant)
    run_id = state["recent_runs"][0]["id"]  # type: ignore[index]
    async with connect(transport, server, tenant.key) as session:
        templates = {
            t.uriTemplate for t in (await session.list_resource_templates()).resourceTemplates
        }
        fixed = {str(r.uri) for r in (await session.list_resources()).resources}
        assert "berth://workloads" in fixed
        assert {
            "berth://workloads/{workload_id}",
            "berth://workloads/{workload_id}/runs/{run_id}/logs",
        } <= templates
        listed = await session.read_resource(AnyUrl("berth://workloads"))
        (content,) = listed.contents
        assert isinstance(content, TextResourceContents)
        assert [w["id"] for w in json.loads(content.text)] == [state["id"]]
        one = await session.read_resource(AnyUrl(f"berth://workloads/{state['id']}"))
        (content,) = one.contents
        assert isinstance(content, TextResourceContents)
        assert json.loads(content.text)["status"] == "succeeded"
        logs = await session.read_resource(
            AnyUrl(f"berth://workloads/{state['id']}/runs/{run_id}/logs")
        )
        (content,) = logs.contents
        assert isinstance(content, TextResourceContents)
        assert content.text == "stdout: billed-output\n"
    async with connect(transport, server, stranger.key) as session:
        with pytest.raises(McpError, match="not found"):
            await session.read_resource(AnyUrl(f"berth://workloads/{state['id']}"))
