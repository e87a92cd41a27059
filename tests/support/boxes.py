"""Dev boxes in integration tests: one running with an SSH key, waiting for a status, its
terminal WebSocket, a command run in it, and whether the engine has its task frozen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from berth.testing.waiting import wait_for
from tests.support.engine import running_tasks_of
from tests.support.keys import new_public_key
from tests.support.server import BerthServer, Tenant
from tests.support.streams import read_ws_until


def running_box(tenant: Tenant, tmp_path: Path, **body: Any) -> dict[str, Any]:
    key = tenant.client.post(
        "/compute/ssh-keys", json={"name": "k", "public_key": new_public_key(tmp_path, "k")}
    )
    assert key.status_code == 201, key.text
    created = tenant.client.post(
        "/compute/containers", json={"name": "box", "ssh_key_ids": [key.json()["id"]], **body}
    )
    assert created.status_code == 201, created.text
    return wait_box(tenant, created.json()["id"], "running")


def wait_box(tenant: Tenant, box_id: str, status: str) -> dict[str, Any]:
    def seen() -> dict[str, Any] | None:
        box: dict[str, Any] = tenant.client.get(f"/compute/containers/{box_id}").json()
        return box if box["status"] == status else None

    return wait_for(seen, timeout=30, what=f"dev box {box_id} {status}")


def engine_paused(server: BerthServer, workload_id: str) -> bool:
    (task,) = running_tasks_of(server, workload_id)
    return bool(task["State"]["Paused"])


def terminal(server: BerthServer, tenant: Tenant, box_id: str) -> ClientConnection:
    return connect(
        f"{server.url.replace('http', 'ws')}/compute/containers/{box_id}/terminal"
        f"?token={tenant.key}"
    )


def run_in(ws: ClientConnection, command: str, marker: str) -> str:
    ws.send(f"{command}; echo {marker}-$((1+1))\n".encode())
    return read_ws_until(ws, f"{marker}-2", timeout=20)
