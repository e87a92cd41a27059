"""Human approval of agent calls: gate, approve, replay, reject, expiry, mismatched body,
double replay, policy, and the audit trail."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.api import wait_workload
from tests.support.server import FAST_CONTROLLERS, BerthServer, Tenant
from tests.support.streams import read_ws_until

pytestmark = pytest.mark.engine

HEADER = "Berth-Approval-Id"


@pytest.fixture(scope="module")
def gated_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """A server with the default policy: create, exec and shell are gated (~2 s to start)."""
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("gated")) / "data",
        env={"BERTH_DEFAULT_GATED_ACTIONS": '["create", "exec", "shell"]'},
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.fixture
def agent(gated_server: BerthServer) -> Tenant:
    return gated_server.new_tenant()


def human(server: BerthServer, user_id: str) -> httpx.Client:
    token = server.session_token(user_id)
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def schedule_body(name: str) -> dict[str, Any]:
    # A schedule starts no task, so these tests need no container.
    return {
        "name": name,
        "type": "schedule",
        "image": "berth-test/busybox:latest",
        "schedule_expr": "0 0 1 1 *",
    }


def gate(agent: Tenant, body: dict[str, Any]) -> str:
    response = agent.client.post("/v1/compute", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending_approval"
    approval_id: str = response.json()["approval_id"]
    return approval_id


def test_an_agents_create_waits_for_approval_and_changes_nothing(
    gated_server: BerthServer, agent: Tenant
) -> None:
    approval_id = gate(agent, schedule_body("gated"))
    assert agent.client.get("/v1/compute").json()["workloads"] == []
    seen = agent.client.get(f"/v1/approvals/{approval_id}").json()
    assert seen["status"] == "pending" and seen["action"] == "create"
    assert seen["method"] == "POST" and seen["path"] == "/v1/compute"
    assert seen["body"]["name"] == "gated" and seen["result"] is None


def test_a_human_approves_and_the_call_runs_once_as_the_agent(
    gated_server: BerthServer, agent: Tenant
) -> None:
    body = schedule_body("approved")
    approval_id = gate(agent, body)
    with human(gated_server, agent.user_id) as person:
        listed = person.get("/v1/approvals", params={"status": "pending"}).json()["approvals"]
        assert approval_id in [a["id"] for a in listed]
        decided = person.post(f"/v1/approvals/{approval_id}/approve", json={"note": "ok"})
    assert decided.status_code == 200, decided.text
    approval = decided.json()
    assert approval["status"] == "approved" and approval["decided_at"]
    assert approval["result"]["status_code"] == 201
    created = approval["result"]["body"]
    assert created["name"] == "approved" and created["user_id"] == agent.user_id

    # The agent repeats its request naming the approval: the same result, nothing new.
    for _ in range(2):
        again = agent.client.post("/v1/compute", json=body, headers={HEADER: approval_id})
        assert again.status_code == 201 and again.json()["id"] == created["id"]
    assert [w["id"] for w in agent.client.get("/v1/compute").json()["workloads"]] == [created["id"]]
    fetched = agent.client.get(f"/v1/approvals/{approval_id}").json()
    assert fetched["result"]["body"]["id"] == created["id"]


def test_an_approval_is_bound_to_its_body(gated_server: BerthServer, agent: Tenant) -> None:
    approval_id = gate(agent, schedule_body("bound"))
    with human(gated_server, agent.user_id) as person:
        person.post(f"/v1/approvals/{approval_id}/approve")
    other = agent.client.post(
        "/v1/compute", json=schedule_body("sneaky"), headers={HEADER: approval_id}
    )
    assert other.status_code == 409
    assert "different request" in other.json()["error"]
    assert [w["name"] for w in agent.client.get("/v1/compute").json()["workloads"]] == ["bound"]


def test_a_rejected_call_never_runs(gated_server: BerthServer, agent: Tenant) -> None:
    body = schedule_body("rejected")
    approval_id = gate(agent, body)
    with human(gated_server, agent.user_id) as person:
        decided = person.post(f"/v1/approvals/{approval_id}/reject", json={"note": "no"})
        assert decided.json()["status"] == "rejected"
        late = person.post(f"/v1/approvals/{approval_id}/approve")
        assert late.status_code == 409
    again = agent.client.post("/v1/compute", json=body, headers={HEADER: approval_id})
    assert again.status_code == 403 and "rejected" in again.json()["error"]
    assert agent.client.get("/v1/compute").json()["workloads"] == []


def test_an_agent_cannot_approve(gated_server: BerthServer, agent: Tenant) -> None:
    approval_id = gate(agent, schedule_body("self"))
    response = agent.client.post(f"/v1/approvals/{approval_id}/approve")
    assert response.status_code == 403
    assert "human" in response.json()["error"]


def test_concurrent_approvals_and_replays_run_the_call_at_most_once(
    gated_server: BerthServer, agent: Tenant
) -> None:
    body = schedule_body("race")
    approval_id = gate(agent, body)
    statuses: list[int] = []
    token = gated_server.session_token(agent.user_id)

    def approve() -> None:
        with httpx.Client(
            base_url=gated_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as person:
            statuses.append(person.post(f"/v1/approvals/{approval_id}/approve").status_code)

    def replay() -> None:
        response = agent.client.post("/v1/compute", json=body, headers={HEADER: approval_id})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=approve) for _ in range(3)]
    threads += [threading.Thread(target=replay) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses).count(200) == 1  # one approval wins, the others get 409
    assert len(agent.client.get("/v1/compute").json()["workloads"]) == 1


def test_an_approval_expires(gated_server: BerthServer) -> None:
    agent = gated_server.new_tenant()
    gated_server.admin("set-approval-policy", "--gate", "create,exec,shell", "--ttl", "1")
    try:
        body = schedule_body("late")
        approval_id = gate(agent, body)
        time.sleep(1.5)  # the approval's own lifetime is what is under test
        assert agent.client.get(f"/v1/approvals/{approval_id}").json()["status"] == "expired"
        with human(gated_server, agent.user_id) as person:
            assert person.post(f"/v1/approvals/{approval_id}/approve").status_code == 410
        again = agent.client.post("/v1/compute", json=body, headers={HEADER: approval_id})
        assert again.status_code == 410
    finally:
        gated_server.admin("set-approval-policy", "--gate", "create,exec,shell", "--ttl", "86400")


def test_humans_are_never_gated(gated_server: BerthServer, agent: Tenant) -> None:
    with human(gated_server, agent.user_id) as person:
        response = person.post("/v1/compute", json=schedule_body("by-hand"))
    assert response.status_code == 201


def test_invalid_calls_are_refused_at_once_not_queued(
    gated_server: BerthServer, agent: Tenant
) -> None:
    bad = {**schedule_body("bad"), "schedule_expr": "whenever"}
    response = agent.client.post("/v1/compute", json=bad)
    assert response.status_code == 422 and response.json()["field"] == "schedule_expr"
    assert agent.client.get("/v1/approvals").json()["approvals"] == []


def test_a_body_with_unknown_fields_is_gated_and_replayed_the_same_way(
    gated_server: BerthServer, agent: Tenant
) -> None:
    """The warning comes with the pending answer; the replay of the exact body drops the
    field again; a strict caller is refused at once, not queued."""
    body = {**schedule_body("lenient"), "labels": {"team": "a"}}
    strict = agent.client.post("/v1/compute", json=body, params={"strict": "true"})
    assert strict.status_code == 422 and strict.json()["field"] == "labels", strict.text
    assert agent.client.get("/v1/approvals").json()["approvals"] == []

    pending = agent.client.post("/v1/compute", json=body)
    assert pending.status_code == 202, pending.text
    assert pending.headers.get_list("warning") == ['299 - "unknown field \\"labels\\""']
    approval_id = pending.json()["approval_id"]
    with human(gated_server, agent.user_id) as person:
        decided = person.post(f"/v1/approvals/{approval_id}/approve").json()
    assert decided["body"]["labels"] == {"team": "a"}  # the request as the agent sent it
    assert decided["result"]["status_code"] == 201, decided["result"]
    created = decided["result"]["body"]
    again = agent.client.post("/v1/compute", json=body, headers={HEADER: approval_id})
    assert again.status_code == 201 and again.json()["id"] == created["id"]
    assert [w["name"] for w in agent.client.get("/v1/compute").json()["workloads"]] == ["lenient"]


def test_only_humans_change_the_policy(gated_server: BerthServer, agent: Tenant) -> None:
    policy = agent.client.get("/v1/approvals/policy").json()
    assert sorted(policy["gated_actions"]) == ["create", "exec", "shell"]
    refused = agent.client.put(
        "/v1/approvals/policy", json={"gated_actions": [], "ttl_seconds": 3600}
    )
    assert refused.status_code == 403
    with human(gated_server, agent.user_id) as person:
        changed = person.put(
            "/v1/approvals/policy", json={"gated_actions": ["exec", "shell"], "ttl_seconds": 3600}
        )
        assert changed.status_code == 200
        try:
            assert agent.client.post("/v1/compute", json=schedule_body("free")).status_code == 201
        finally:
            person.put(
                "/v1/approvals/policy",
                json={"gated_actions": ["create", "exec", "shell"], "ttl_seconds": 86400},
            )


def test_every_decision_is_audited(gated_server: BerthServer, agent: Tenant) -> None:
    approval_id = gate(agent, schedule_body("audited"))
    with human(gated_server, agent.user_id) as person:
        person.post(f"/v1/approvals/{approval_id}/approve", json={"note": "looks fine"})
        events = person.get(f"/v1/approvals/{approval_id}/events").json()["events"]
    assert [e["action"] for e in events] == [
        "approval.requested",
        "approval.approved",
        "approval.executed",
    ]
    assert events[1]["actor"] == agent.user_id and events[1]["detail"]["note"] == "looks fine"
    assert events[2]["detail"]["status_code"] == 201


def test_an_approved_exec_runs_as_the_agent_and_keeps_its_output(
    gated_server: BerthServer, agent: Tenant
) -> None:
    with human(gated_server, agent.user_id) as person:
        svc = person.post(
            "/v1/compute",
            json={
                "name": "box",
                "type": "service",
                "image": "berth-test/busybox:latest",
                "command": "exec sleep 600",
            },
        ).json()
        wait_workload(person, svc["id"], lambda s: s["running_tasks"] == 1)
        body = {"command": "echo approved-run; exit 5"}
        pending = agent.client.post(f"/v1/compute/{svc['id']}/exec", json=body)
        assert pending.status_code == 202
        approval_id = pending.json()["approval_id"]
        approved = person.post(f"/v1/approvals/{approval_id}/approve").json()
    assert approved["action"] == "exec"
    assert approved["result"]["status_code"] == 200
    assert approved["result"]["body"]["exit_code"] == 5
    assert approved["result"]["body"]["stdout"] == "approved-run\n"
    again = agent.client.post(
        f"/v1/compute/{svc['id']}/exec", json=body, headers={HEADER: approval_id}
    )
    assert again.json() == approved["result"]["body"]


def shell_service(person: httpx.Client, name: str) -> str:
    svc = person.post(
        "/v1/compute",
        json={
            "name": name,
            "type": "service",
            "image": "berth-test/busybox:latest",
            "command": "exec sleep 600",
        },
    ).json()
    wait_workload(person, svc["id"], lambda s: s["running_tasks"] == 1)
    workload_id: str = svc["id"]
    return workload_id


def test_a_shell_is_gated_and_its_approved_session_is_returned(
    gated_server: BerthServer, agent: Tenant
) -> None:
    with human(gated_server, agent.user_id) as person:
        workload_id = shell_service(person, "shellbox")
        pending = agent.client.post(f"/v1/compute/{workload_id}/shell")
        assert pending.status_code == 202
        approval_id = pending.json()["approval_id"]
        approved = person.post(f"/v1/approvals/{approval_id}/approve").json()
        # The session is opened when the agent collects it, not on approval.
        assert approved["status"] == "approved" and approved["result"] is None
        mine = agent.client.get(f"/v1/approvals/{approval_id}").json()["result"]["body"]
        seen = person.get(f"/v1/approvals/{approval_id}").json()["result"]["body"]
    # The token is the agent's: the human sees it hidden, the agent gets it.
    session = seen["session"]
    assert set(session) == {"sessionId", "streamUrl", "tokenValue"}
    assert session["tokenValue"] == "(hidden)"
    mine = mine["session"]
    assert mine["tokenValue"].startswith("sh_") and mine["sessionId"] == session["sessionId"]
    db = gated_server.stored_rows()
    assert mine["tokenValue"].encode() not in db
    assert session["streamUrl"].startswith(gated_server.url.replace("http", "ws"))


def test_an_approved_shell_is_opened_when_its_agent_collects_it_and_only_once(
    gated_server: BerthServer, agent: Tenant
) -> None:
    """The connect window starts when the agent collects the session, however long after
    the approval that is; a second collection gets the same session, not another."""
    connect_window = float(FAST_CONTROLLERS["BERTH_SHELL_CONNECT_SECONDS"])
    with human(gated_server, agent.user_id) as person:
        workload_id = shell_service(person, "latebox")
        pending = agent.client.post(f"/v1/compute/{workload_id}/shell")
        approval_id = pending.json()["approval_id"]
        approved = person.post(f"/v1/approvals/{approval_id}/approve")
        assert approved.status_code == 200, approved.text
    # The agent comes back later than a token issued on approval would have lasted.
    time.sleep(connect_window + 0.5)  # that window is what is under test
    repeated = agent.client.post(f"/v1/compute/{workload_id}/shell", headers={HEADER: approval_id})
    assert repeated.status_code == 200, repeated.text
    session = repeated.json()["session"]
    with connect(f"{session['streamUrl']}?token={session['tokenValue']}") as ws:
        ws.send(b"echo collected-$((40+2))\n")
        read_ws_until(ws, "collected-42")
        ws.send(b"exit\n")

    again = agent.client.get(f"/v1/approvals/{approval_id}").json()
    assert again["result"]["body"]["session"] == session
    sessions = agent.client.get(f"/v1/compute/{workload_id}/shell/sessions").json()["sessions"]
    assert [s["id"] for s in sessions] == [session["sessionId"]]
    with pytest.raises(InvalidStatus) as reused:
        connect(f"{session['streamUrl']}?token={session['tokenValue']}").close()
    assert reused.value.response.status_code == 401
    events = agent.client.get(f"/v1/approvals/{approval_id}/events").json()["events"]
    assert [e["action"] for e in events].count("approval.executed") == 1
