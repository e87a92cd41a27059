"""Ingress rules through the HTTP gateway on its default ports: the gateway's own HTTP port
lies outside the rule range 8000-8999 (so rules on 80 and 8080 are both served), a rule on a
port the gateway cannot open is refused with 409, and a stopped dev box answers 503 saying
who stopped it and how to start it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.sync.client import connect

from berth.testing.waiting import wait_for
from tests.support.server import BerthServer, Tenant
from tests.support.streams import read_ws_until

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def default_ports_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """A server whose gateway ports are berth's defaults (~2 s to start): 80 when it can
    bind it, else 9080. The gateway listens on loopback only."""
    srv = BerthServer(Path(tmp_path_factory.mktemp("ports")) / "data")
    del srv.env["BERTH_GATEWAY_PORT"]
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.fixture
def tenant(default_ports_server: BerthServer) -> Iterator[Tenant]:
    t = default_ports_server.new_tenant()
    yield t
    for box in t.client.get("/compute/containers").json()["containers"]:
        t.client.delete(f"/compute/containers/{box['id']}")
    for workload in t.client.get("/v1/compute").json().get("workloads", []):
        t.client.delete(f"/v1/compute/{workload['id']}")
    t.client.close()


def gateway_port(tenant: Tenant) -> int:
    """The gateway's HTTP port, as a service's public URL names it."""
    svc = tenant.client.post(
        "/v1/compute",
        json={
            "name": "url",
            "type": "service",
            "image": "berth-test/busybox:latest",
            "command": "sleep 1",
            "port": 8080,
            "replicas": 0,
        },
    )
    assert svc.status_code == 201, svc.text
    tenant.client.delete(f"/v1/compute/{svc.json()['id']}")
    url = urlsplit(svc.json()["url"])
    assert url.hostname == f"{svc.json()['id']}.localhost"
    return url.port or 80


def running_box(tenant: Tenant, tmp_path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True
    )
    key = tenant.client.post(
        "/compute/ssh-keys",
        json={"name": "k", "public_key": (tmp_path / "k.pub").read_text().strip()},
    ).json()
    box = tenant.client.post(
        "/compute/containers", json={"name": "web", "ssh_key_ids": [key["id"]]}
    ).json()
    box_id: str = box["id"]
    wait_for(lambda: status_of(tenant, box_id) == "running", timeout=30, what="a running box")
    return box_id


def status_of(tenant: Tenant, box_id: str) -> str:
    status: str = tenant.client.get(f"/compute/containers/{box_id}").json()["status"]
    return status


def in_terminal(server: BerthServer, tenant: Tenant, box_id: str, command: str) -> None:
    with connect(
        f"{server.url.replace('http', 'ws')}/compute/containers/{box_id}/terminal"
        f"?token={tenant.key}"
    ) as ws:
        ws.send(f"{command}; echo done-$((1+1))\n".encode())
        read_ws_until(ws, "done-2", timeout=20)


def get(port: int, host: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": host}, timeout=5)
    except httpx.HTTPError:
        return None


def test_rules_on_80_and_8080_are_both_served(
    default_ports_server: BerthServer, tenant: Tenant, tmp_path: Path
) -> None:
    http_port = gateway_port(tenant)
    assert http_port in (80, 9080), "the default HTTP port lies outside 8000-8999"
    box_id = running_box(tenant, tmp_path)
    in_terminal(
        default_ports_server,
        tenant,
        box_id,
        "mkdir -p /tmp/a /tmp/b && echo eighty > /tmp/a/index.html && "
        "echo eighty-eighty > /tmp/b/index.html && httpd -p 3000 -h /tmp/a && "
        "httpd -p 3001 -h /tmp/b",
    )
    rules = f"/compute/containers/{box_id}/ingress"
    on_80 = tenant.client.post(rules, json={"port": 80, "target_port": 3000})
    assert on_80.status_code == 201, on_80.text
    on_8080 = tenant.client.post(rules, json={"port": 8080, "target_port": 3001})
    assert on_8080.status_code == 201, f"is 8080 free on this machine? {on_8080.text}"
    host = f"{box_id}.localhost"

    def body_on(port: int) -> str | None:
        response = get(port, host)
        return response.text.strip() if response is not None and response.is_success else None

    assert wait_for(lambda: body_on(http_port), timeout=20) == "eighty"
    assert wait_for(lambda: body_on(8080), timeout=20) == "eighty-eighty"
    assert body_on(http_port) == "eighty"  # the rule on 8080 did not take port 80's place


def test_a_rule_on_a_port_the_gateway_cannot_open_is_409_with_nothing_created(
    tenant: Tenant, tmp_path: Path
) -> None:
    box_id = running_box(tenant, tmp_path)
    rules = f"/compute/containers/{box_id}/ingress"
    with taken_rule_port() as port:
        refused = tenant.client.post(rules, json={"port": port, "target_port": 3000})
        assert refused.status_code == 409, refused.text
        body = refused.json()
        assert body["field"] == "port"
        assert body["error"].startswith(f"port {port}: the gateway cannot listen on it")
        assert tenant.client.get(rules).json() == {"rules": []}


def test_a_stopped_dev_box_answers_503_saying_who_stopped_it_and_how_to_start_it(
    default_ports_server: BerthServer, tenant: Tenant, tmp_path: Path
) -> None:
    http_port = gateway_port(tenant)
    box_id = running_box(tenant, tmp_path)
    rule = tenant.client.post(
        f"/compute/containers/{box_id}/ingress", json={"port": 80, "target_port": 3000}
    )
    assert rule.status_code == 201, rule.text
    assert tenant.client.post(f"/compute/containers/{box_id}/stop").status_code == 200
    wait_for(lambda: status_of(tenant, box_id) == "stopped", timeout=30, what="a stopped box")
    state = tenant.client.get(f"/compute/containers/{box_id}").json()
    reason = state["status_reason"]
    assert f"stopped by its user (POST /compute/containers/{box_id}/stop)" in reason
    assert f"POST /compute/containers/{box_id}/start starts it" in reason
    assert "wakes" not in reason and "scaled to zero" not in reason

    def answered() -> httpx.Response | None:
        response = get(http_port, f"{box_id}.localhost")
        # The route table follows the stop: until then the gone task refuses (502).
        return response if response is not None and response.status_code == 503 else None

    response = wait_for(answered, timeout=20, what="the gateway to answer for the stopped box")
    assert response.json() == {
        "error": f"dev box {box_id} is stopped: {reason}",
        "code": "dev_box_stopped",
        "workload": box_id,
    }
    assert status_of(tenant, box_id) == "stopped"  # a request does not start it


@contextlib.contextmanager
def taken_rule_port() -> Iterator[int]:
    """A port of the rule range that another program (this test) listens on."""
    for port in range(8000, 9000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            sock.listen()
            yield port
            return
    raise AssertionError("no free port in 8000-8999")
