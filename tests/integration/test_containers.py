"""The Containers API (`/compute/...`): dev boxes with SSH keys, live status over a
WebSocket, a terminal, persistent mount paths, ingress rules, quotas and clear errors."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from berth.testing.waiting import wait_for
from tests.support.keys import new_public_key
from tests.support.server import BerthServer, Tenant
from tests.support.streams import read_ws_until

pytestmark = pytest.mark.engine


@pytest.fixture
def key_id(tenant: Tenant, tmp_path: Path) -> int:
    response = tenant.client.post(
        "/compute/ssh-keys", json={"name": "laptop", "public_key": new_public_key(tmp_path)}
    )
    assert response.status_code == 201, response.text
    created: int = response.json()["id"]
    return created


@pytest.fixture
def cleanup(tenant: Tenant) -> Iterator[None]:
    yield
    for box in tenant.client.get("/compute/containers").json()["containers"]:
        tenant.client.delete(f"/compute/containers/{box['id']}")


def create_box(tenant: Tenant, key_id: int, **body: Any) -> dict[str, Any]:
    response = tenant.client.post(
        "/compute/containers", json={"name": "dev-box", "ssh_key_ids": [key_id], **body}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def box_state(tenant: Tenant, box_id: str) -> dict[str, Any]:
    state: dict[str, Any] = tenant.client.get(f"/compute/containers/{box_id}").json()
    return state


def wait_status(tenant: Tenant, box_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    return wait_for(
        lambda: (s := box_state(tenant, box_id))["status"] == status and s,
        timeout=timeout,
        what=f"container {box_id} to be {status}",
    )


def terminal(server: BerthServer, tenant: Tenant, box_id: str, query: str = "") -> ClientConnection:
    return connect(
        f"{server.url.replace('http', 'ws')}/compute/containers/{box_id}/terminal"
        f"?token={tenant.key}{query}"
    )


def run_in_terminal(ws: ClientConnection, command: str, marker: str) -> str:
    ws.send(f"{command}; echo {marker}-$((1+1))\n".encode())
    return read_ws_until(ws, f"{marker}-2", timeout=20)


def test_a_container_goes_pending_initializing_running_stopped_over_the_websocket(
    server: BerthServer, tenant: Tenant, key_id: int, cleanup: None
) -> None:
    url = f"{server.url.replace('http', 'ws')}/compute/ws?token={tenant.key}"
    with connect(url) as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first == {"type": "containers", "data": []}
        box = create_box(tenant, key_id, ssh_enabled=True)
        assert box["status"] == "pending"
        assert box["hostname"] == f"{box['id']}.localhost"
        assert box["ssh_command"] == f"ssh -p {server.ssh_port} {box['id']}@localhost"
        assert (box["instance_type"], box["memory_mb"], box["storage_gb"]) == ("nano", 512, 5)
        seen = []
        while "running" not in seen:
            message = json.loads(ws.recv(timeout=30))
            assert message["type"] == "container_status"
            assert message["data"]["container_id"] == box["id"]
            seen.append(message["data"]["status"])
        assert seen[0] in ("pending", "initializing") and "initializing" in seen
        running = box_state(tenant, box["id"])
        assert running["status"] == "running" and running["memory_used_mb"] is not None
        assert tenant.client.post(f"/compute/containers/{box['id']}/stop").status_code == 200
        while seen[-1] != "stopped":
            seen.append(json.loads(ws.recv(timeout=30))["data"]["status"])
        assert tenant.client.delete(f"/compute/containers/{box['id']}").json() == {"status": "ok"}
        while seen[-1] != "deleted":
            seen.append(json.loads(ws.recv(timeout=30))["data"]["status"])
    assert tenant.client.get(f"/compute/containers/{box['id']}").status_code == 404


STOP_ORDER = ["running", "stopping", "stopped"]
START_ORDER = ["stopped", "pending", "initializing", "running"]


def assert_not_older(tenant: Tenant, box_id: str, said: str, order: list[str]) -> None:
    """A read of the container, alone and in the list, says `said` or what comes after."""
    read = box_state(tenant, box_id)["status"]
    listed = [b["status"] for b in tenant.client.get("/compute/containers").json()["containers"]]
    for status in (read, *listed):
        assert order.index(status) >= order.index(said), (status, said)


def test_stop_and_start_answers_and_reads_are_never_older_than_the_websocket(
    server: BerthServer, tenant: Tenant, key_id: int, cleanup: None
) -> None:
    url = f"{server.url.replace('http', 'ws')}/compute/ws?token={tenant.key}"
    with connect(url) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "containers"
        box = create_box(tenant, key_id)
        while json.loads(ws.recv(timeout=30))["data"]["status"] != "running":
            pass

        stopped = tenant.client.post(f"/compute/containers/{box['id']}/stop").json()
        assert stopped["status"] == "stopping"
        assert_not_older(tenant, box["id"], "stopping", STOP_ORDER)
        said = ""
        while said != "stopped":
            said = json.loads(ws.recv(timeout=30))["data"]["status"]
            assert_not_older(tenant, box["id"], said, STOP_ORDER)

        started = tenant.client.post(f"/compute/containers/{box['id']}/start").json()
        assert started["status"] == "pending"
        assert_not_older(tenant, box["id"], "pending", START_ORDER)
        while said != "running":
            said = json.loads(ws.recv(timeout=30))["data"]["status"]
            assert_not_older(tenant, box["id"], said, START_ORDER)


def test_files_under_mount_paths_survive_stop_and_start(
    server: BerthServer, tenant: Tenant, key_id: int, cleanup: None
) -> None:
    box = create_box(tenant, key_id)
    wait_status(tenant, box["id"], "running")
    with terminal(server, tenant, box["id"]) as ws:
        run_in_terminal(ws, "echo kept-$((40+2)) > /root/note.txt; echo lost > /tmp/x", "w")
    tenant.client.post(f"/compute/containers/{box['id']}/stop")
    wait_status(tenant, box["id"], "stopped")
    started = tenant.client.post(f"/compute/containers/{box['id']}/start").json()
    assert started["status"] == "pending"
    wait_status(tenant, box["id"], "running")
    with terminal(server, tenant, box["id"]) as ws:
        out = run_in_terminal(ws, "cat /root/note.txt; ls /tmp", "r")
    assert "kept-42" in out and "lost" not in out.replace("echo lost", "")


def test_updating_mounts_restarts_a_running_container(
    server: BerthServer, tenant: Tenant, key_id: int, cleanup: None
) -> None:
    box = create_box(tenant, key_id)
    wait_status(tenant, box["id"], "running")
    path = f"/compute/containers/{box['id']}/mounts"
    assert tenant.client.get(path).json() == {"mount_paths": ["/root"]}
    updated = tenant.client.put(path, json={"mount_paths": ["/root", "/var/data", "/opt/app"]})
    assert updated.json() == {"mount_paths": ["/root", "/var/data", "/opt/app"], "restarted": True}
    wait_status(tenant, box["id"], "running")
    with terminal(server, tenant, box["id"]) as ws:
        out = run_in_terminal(ws, "grep -c ' /var/data \\| /opt/app ' /proc/mounts", "m")
    assert "\r\n2\r\n" in out
    tenant.client.post(f"/compute/containers/{box['id']}/stop")
    wait_status(tenant, box["id"], "stopped")
    unchanged = tenant.client.put(path, json={"mount_paths": ["/root"]})
    assert unchanged.json() == {"mount_paths": ["/root"], "restarted": False}


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["root"], "not an absolute path"),
        (["/"], "shadow a system directory"),
        (["/usr/local"], "shadow a system directory"),
        (["/etc"], "shadow a system directory"),
        (["/data", "/data"], "listed twice"),
        (["/data", "/data/sub"], "overlap"),
        (["/data/../etc"], "'..'"),
    ],
)
def test_bad_mount_paths_are_refused(
    tenant: Tenant, key_id: int, paths: list[str], message: str
) -> None:
    response = tenant.client.post(
        "/compute/containers", json={"name": "x", "ssh_key_ids": [key_id], "mount_paths": paths}
    )
    assert response.status_code == 400 and message in response.json()["error"]
    assert tenant.client.get("/compute/containers").json()["containers"] == []


def test_ingress_rules(tenant: Tenant, key_id: int, cleanup: None) -> None:
    box = create_box(tenant, key_id)
    rules = f"/compute/containers/{box['id']}/ingress"
    assert tenant.client.post(rules, json={"port": 22}).json()["error"] == (
        "external port not allowed"
    )
    bad_target = tenant.client.post(rules, json={"port": 8080, "target_port": 70000})
    assert bad_target.status_code == 400 and "target port out of range" in bad_target.text
    added = tenant.client.post(rules, json={"port": 8080})
    assert added.status_code == 201 and added.json()["target_port"] == 8080
    assert isinstance(added.json()["created_at"], int)
    updated = tenant.client.post(rules, json={"port": 8080, "target_port": 3000}).json()
    assert updated["id"] == added.json()["id"] and updated["target_port"] == 3000
    assert box_state(tenant, box["id"])["https_enabled"] is False
    tenant.client.post(rules, json={"port": 443, "target_port": 8443})
    assert box_state(tenant, box["id"])["https_enabled"] is True
    listed = tenant.client.get(rules).json()["rules"]
    assert [(r["port"], r["target_port"]) for r in listed] == [(443, 8443), (8080, 3000)]
    assert tenant.client.delete(f"{rules}/443").json() == {"status": "ok"}
    assert tenant.client.delete(f"{rules}/443").status_code == 404
    assert box_state(tenant, box["id"])["https_enabled"] is False


def test_ssh_access_toggles(tenant: Tenant, key_id: int, cleanup: None) -> None:
    box = create_box(tenant, key_id)
    ssh = f"/compute/containers/{box['id']}/ssh"
    assert tenant.client.get(ssh).json() == {"ssh_enabled": False}
    assert tenant.client.put(ssh, json={"ssh_enabled": True}).json() == {"ssh_enabled": True}
    assert tenant.client.get(ssh).json() == {"ssh_enabled": True}


def test_ssh_keys_are_parsed_fingerprinted_limited_and_unique(
    server: BerthServer, tmp_path: Path
) -> None:
    tenant = server.new_tenant()
    keys = "/compute/ssh-keys"
    public = new_public_key(tmp_path, "a")
    added = tenant.client.post(keys, json={"name": "a", "public_key": public}).json()
    assert added["fingerprint"].startswith("SHA256:")
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / "a.pub")], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert added["fingerprint"] == fingerprint
    duplicate = tenant.client.post(keys, json={"name": "again", "public_key": public})
    assert duplicate.status_code == 409
    kind, blob, *_ = public.split()
    for broken in (
        f"{kind} {blob[:-8]}",
        "ssh-dss AAAAB3NzaC1kc3M=",
        "not a key",
        f"ssh-rsa {blob}",
    ):
        response = tenant.client.post(keys, json={"name": "bad", "public_key": broken})
        assert response.status_code == 400, broken
    for n in range(9):
        response = tenant.client.post(
            keys, json={"name": f"k{n}", "public_key": new_public_key(tmp_path, f"k{n}")}
        )
        assert response.status_code == 201
    over = tenant.client.post(
        keys, json={"name": "11", "public_key": new_public_key(tmp_path, "z")}
    )
    assert over.status_code == 400 and "limit reached (10)" in over.json()["error"]
    assert len(tenant.client.get(keys).json()["ssh_keys"]) == 10
    assert tenant.client.delete(f"{keys}/{added['id']}").json() == {"status": "ok"}
    assert tenant.client.delete(f"{keys}/{added['id']}").status_code == 404


def test_the_container_quota_holds_under_concurrent_creates(
    tenant: Tenant, key_id: int, cleanup: None
) -> None:
    codes: list[int] = []

    def create() -> None:
        with httpx.Client(base_url=str(tenant.client.base_url), headers=tenant.client.headers) as c:
            response = c.post("/compute/containers", json={"name": "q", "ssh_key_ids": [key_id]})
            codes.append(response.status_code)
            if response.status_code == 400:
                assert response.json()["error"] == "container limit reached (3)"

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(codes) == [201, 201, 201, 400, 400, 400]
    assert len(tenant.client.get("/compute/containers").json()["containers"]) == 3


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"name": "x", "ssh_key_ids": []}, 400, "at least one SSH key is required"),
        ({"name": "x", "ssh_key_ids": [999999]}, 404, "ssh key 999999 not found"),
        ({"name": "x", "ssh_key_ids": "KEY", "instance_type": "huge"}, 400, "ssh_key_ids"),
        ({"name": "x", "ssh_key_ids": ["KEY"], "instance_type": "huge"}, 400, "unknown instance"),
        ({"name": "x"}, 400, "ssh_key_ids"),
    ],
)
def test_create_errors(
    tenant: Tenant, key_id: int, body: dict[str, Any], status: int, message: str
) -> None:
    body = {
        k: ([key_id if i == "KEY" else i for i in v] if isinstance(v, list) else v)
        for k, v in body.items()
    }
    response = tenant.client.post("/compute/containers", json=body)
    assert response.status_code == status and message in response.json()["error"]


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        pytest.param("/compute/containers/none/ssh", {"ssh_enabled": 0}, "ssh_enabled", id="0"),
        pytest.param(
            "/compute/containers/none/ssh", {"ssh_enabled": "yes"}, "ssh_enabled", id="yes"
        ),
    ],
)
def test_values_of_another_json_type_are_refused_not_coerced(
    tenant: Tenant, route: str, body: dict[str, Any], field: str
) -> None:
    """`0` is not `false`: the body is checked before the container is looked up."""
    response = tenant.client.put(route, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


def test_another_users_container_is_not_found(
    server: BerthServer, tenant: Tenant, key_id: int, cleanup: None
) -> None:
    box = create_box(tenant, key_id)
    other = server.new_tenant()
    for method, suffix in [
        ("GET", ""),
        ("DELETE", ""),
        ("POST", "/start"),
        ("POST", "/stop"),
        ("GET", "/ssh"),
        ("GET", "/ingress"),
        ("GET", "/mounts"),
    ]:
        response = other.client.request(method, f"/compute/containers/{box['id']}{suffix}")
        assert response.status_code == 404, (method, suffix)
        assert response.json()["error"] == "container not found"
    with pytest.raises(InvalidStatus) as refused:
        terminal(server, other, box["id"]).close()
    assert refused.value.response.status_code == 404


def test_the_terminal_refuses_a_stopped_container(
    server: BerthServer, tenant: Tenant, key_id: int, cleanup: None
) -> None:
    box = create_box(tenant, key_id)
    wait_status(tenant, box["id"], "running")
    tenant.client.post(f"/compute/containers/{box['id']}/stop")
    wait_status(tenant, box["id"], "stopped")
    with pytest.raises(InvalidStatus) as refused:
        terminal(server, tenant, box["id"]).close()
    assert refused.value.response.status_code == 409
    body = json.loads(refused.value.response.body or b"{}")
    assert (body["error"], body["code"]) == ("container not running", "conflict")


def test_healthz(server: BerthServer) -> None:
    response = httpx.get(server.url + "/healthz")
    assert (response.status_code, response.text) == (200, "ok")


def test_the_terminal_reports_the_exit_code_with_the_subprotocol(
    server: BerthServer, tenant: Tenant, key_id: int, cleanup: None
) -> None:
    box = create_box(tenant, key_id)
    wait_status(tenant, box["id"], "running")
    with connect(
        f"{server.url.replace('http', 'ws')}/compute/containers/{box['id']}/terminal",
        subprotocols=["berth.shell.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {tenant.key}"},
    ) as ws:
        run_in_terminal(ws, "true", "ready")
        ws.send(b"exit 6\n")
        frames = []
        with pytest.raises(ConnectionClosed):
            while True:
                frames.append(ws.recv(timeout=15))
    assert {"type": "exit", "code": 6} in [json.loads(f) for f in frames if isinstance(f, str)]


def test_a_raw_terminal_takes_its_size_from_the_url(
    server: BerthServer, tenant: Tenant, key_id: int, cleanup: None
) -> None:
    box = create_box(tenant, key_id)
    wait_status(tenant, box["id"], "running")
    with terminal(server, tenant, box["id"], "&cols=132&rows=40") as ws:
        assert ws.subprotocol is None
        assert "\r\n40 132\r\n" in run_in_terminal(ws, "stty size", "sized")
    with terminal(server, tenant, box["id"], "&rows=50") as ws:
        assert "\r\n50 80\r\n" in run_in_terminal(ws, "stty size", "rows")
    for query, field in [
        ("&cols=0", "cols"),
        ("&cols=abc", "cols"),
        ("&cols=1001", "cols"),
        ("&cols=132&rows=4", "rows"),
        ("&rows=-3", "rows"),
    ]:
        with pytest.raises(InvalidStatus) as refused:
            terminal(server, tenant, box["id"], query).close()
        assert refused.value.response.status_code == 400, query
        body = json.loads(refused.value.response.body or b"{}")
        assert body["field"] == field and "from" in body["error"], body


WHOLE_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_fields_are_written_as_the_document_writes_them(
    server: BerthServer, tenant: Tenant, key_id: int, cleanup: None
) -> None:
    """`created_at` in whole seconds (`2026-01-15T10:30:00Z`), usage measured while running
    and `null` once stopped, and `external_ip` always `null` in status updates (a dev box
    has no address of its own: it is reached through berth's gateways)."""
    url = f"{server.url.replace('http', 'ws')}/compute/ws?token={tenant.key}"
    with connect(url) as ws:
        json.loads(ws.recv(timeout=10))
        box = create_box(tenant, key_id)
        updates = []
        while not updates or updates[-1]["status"] != "running":
            updates.append(json.loads(ws.recv(timeout=30))["data"])
        running = box_state(tenant, box["id"])
        assert running["memory_used_mb"] is not None and running["storage_used_gb"] is not None
        tenant.client.post(f"/compute/containers/{box['id']}/stop")
        while updates[-1]["status"] != "stopped":
            updates.append(json.loads(ws.recv(timeout=30))["data"])
    assert all("external_ip" in u and u["external_ip"] is None for u in updates), updates
    stopped = box_state(tenant, box["id"])
    assert (stopped["memory_used_mb"], stopped["storage_used_gb"]) == (None, None)
    listed = tenant.client.get("/compute/containers").json()["containers"]
    keys = tenant.client.get("/compute/ssh-keys").json()["ssh_keys"]
    times = [
        box["created_at"],
        stopped["created_at"],
        listed[0]["created_at"],
        keys[0]["created_at"],
    ]
    assert all(WHOLE_SECONDS.match(t) for t in times), times
    assert len(set(times[:3])) == 1
