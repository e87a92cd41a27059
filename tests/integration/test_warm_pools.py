"""Warm pools on the Docker engine (`BERTH_WARM_POOLS`): ready tasks that creates take.

Judged by what the engine says (`docker inspect` over its API): a pool task runs on the
holding network and no tenant's, a create takes it (the dev box or service *is* that
container, moved onto its tenant's network), the pool refills with a new container, a
taken container is never handed out again, a box's data lives in its own volume across
stop and start, and a restarted berth puts its ready tasks back on the shelf.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth.domain import labels
from berth.testing.waiting import wait_for
from tests.support.boxes import wait_box
from tests.support.engine import engine_client, running_tasks_of
from tests.support.keys import new_public_key
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine

SANDBOX_IMAGE = "berth-test/sandbox:latest"
"""Its own command serves /var/www on 8080 (scripts/setup.sh)."""
POOLS = [
    {"kind": "devbox", "name": "boxes", "image": TEST_IMAGE, "size": 1, "max_size": 1},
    {"kind": "service", "name": "sandboxes", "image": SANDBOX_IMAGE, "port": 8080, "size": 1,
     "max_size": 1},
]  # fmt: skip


@pytest.fixture(scope="module")
def pool_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("pools")) / "data",
        env={"BERTH_WARM_POOLS": json.dumps(POOLS)},
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def pool_tasks(server: BerthServer, profile: str) -> list[dict[str, Any]]:
    """The engine's tasks made for pool `profile` and not taken yet (those still on the
    holding network: a taken one keeps its pool labels, which cannot change)."""
    selector = [
        f"{labels.INSTANCE}={server.instance_id()}",
        f"{labels.POOL}={profile}",
    ]
    with engine_client() as engine:
        listed = engine.get("/containers/json", params={"filters": json.dumps({"label": selector})})
        assert listed.status_code == 200, listed.text
        tasks = [engine.get(f"/containers/{entry['Id']}/json").json() for entry in listed.json()]
    holding = f"berth-{server.instance_id()}-pool"
    return [task for task in tasks if networks_of(task) == {holding}]


def ready_task(server: BerthServer, profile: str, *, besides: set[str]) -> dict[str, Any]:
    """A running pool task of `profile` other than the containers in `besides`."""

    def seen() -> dict[str, Any] | None:
        fresh = [t for t in pool_tasks(server, profile) if t["Id"] not in besides]
        return fresh[0] if fresh and fresh[0]["State"]["Running"] else None

    return wait_for(seen, timeout=30, what=f"a ready task in pool {profile}")


def networks_of(task: dict[str, Any]) -> set[str]:
    return set(task["NetworkSettings"]["Networks"])


def new_key(tenant: Tenant, tmp_path: Path) -> int:
    name = f"k{tenant.user_id}"
    key = tenant.client.post(
        "/compute/ssh-keys", json={"name": name, "public_key": new_public_key(tmp_path, name)}
    )
    assert key.status_code == 201, key.text
    return int(key.json()["id"])


def test_a_dev_box_create_takes_the_ready_task_and_the_pool_refills(
    pool_server: BerthServer, tmp_path: Path
) -> None:
    ready = ready_task(pool_server, "boxes", besides=set())
    pool_network = f"berth-{pool_server.instance_id()}-pool"
    assert networks_of(ready) == {pool_network}
    assert labels.USER not in ready["Config"]["Labels"]  # no tenant's yet
    assert any(m["Destination"] == "/root" for m in ready["Mounts"])

    alice = pool_server.new_tenant()
    created = alice.client.post(
        "/compute/containers",
        json={"name": "box", "ssh_key_ids": [new_key(alice, tmp_path)], "image": TEST_IMAGE},
    )
    assert created.status_code == 201, created.text
    box = wait_box(alice, created.json()["id"], "running")
    assert box["id"] == ready["Config"]["Labels"][labels.WORKLOAD]
    assert created.json()["status"] == "running"  # at once: the task already runs
    (task,) = running_tasks_of(pool_server, box["id"])
    assert task["Id"] == ready["Id"]  # the pool's container itself, not a new one
    # It joins its user's network right after the create (the holding one carries nothing
    # between its tasks, and leaving it would re-bind published ports).
    tenant_network = f"berth-{pool_server.instance_id()}-{alice.user_id[4:]}"
    wait_for(
        lambda: (
            networks_of(running_tasks_of(pool_server, box["id"])[0])
            == {tenant_network, pool_network}
        ),
        timeout=10,
        what="the box on its user's network",
    )

    # Its data lives in the box's own volume: kept across a stop and start.
    written = alice.client.put(
        f"/compute/containers/{box['id']}/files", params={"path": "/root/kept.txt"},
        content=b"from the pool",
    )  # fmt: skip
    assert written.status_code in (200, 201), written.text
    assert alice.client.post(f"/compute/containers/{box['id']}/stop").status_code == 200
    wait_box(alice, box["id"], "stopped")
    assert alice.client.post(f"/compute/containers/{box['id']}/start").status_code == 200
    wait_box(alice, box["id"], "running")
    read = alice.client.get(
        f"/compute/containers/{box['id']}/files", params={"path": "/root/kept.txt"}
    )
    assert (read.status_code, read.content) == (200, b"from the pool"), read.text

    # The pool refilled with another container; the next tenant gets that one, never
    # alice's (which a delete removes from the engine).
    refill = ready_task(pool_server, "boxes", besides={ready["Id"]})
    bob = pool_server.new_tenant()
    other = alice_box_delete_then_create(pool_server, alice, bob, box["id"], tmp_path)
    (bobs_task,) = running_tasks_of(pool_server, other["id"])
    assert bobs_task["Id"] == refill["Id"] != ready["Id"]
    with engine_client() as engine:
        gone = engine.get(f"/containers/{ready['Id']}/json")
        assert gone.status_code == 404 or not gone.json()["State"]["Running"]


def alice_box_delete_then_create(
    server: BerthServer, alice: Tenant, bob: Tenant, box_id: str, tmp_path: Path
) -> dict[str, Any]:
    assert alice.client.delete(f"/compute/containers/{box_id}").status_code in (200, 204)
    created = bob.client.post(
        "/compute/containers",
        json={"name": "box", "ssh_key_ids": [new_key(bob, tmp_path)], "image": TEST_IMAGE},
    )
    assert created.status_code == 201, created.text
    wait_for(lambda: not running_tasks_of(server, box_id), timeout=30, what="alice's box gone")
    box = wait_box(bob, created.json()["id"], "running")
    # Joined to bob's network a moment after the create (no command came first).
    tenant_network = f"berth-{server.instance_id()}-{bob.user_id[4:]}"
    wait_for(
        lambda: tenant_network in networks_of(running_tasks_of(server, box["id"])[0]),
        timeout=10,
        what="bob's box on his network",
    )
    return box


def test_a_create_of_another_shape_starts_its_own_task(
    pool_server: BerthServer, tmp_path: Path
) -> None:
    ready = ready_task(pool_server, "boxes", besides=set())
    carol = pool_server.new_tenant()
    created = carol.client.post(
        "/compute/containers",
        json={
            "name": "big", "ssh_key_ids": [new_key(carol, tmp_path)], "image": TEST_IMAGE,
            "memory_mb": 640,
        },
    )  # fmt: skip
    assert created.status_code == 201, created.text
    box = wait_box(carol, created.json()["id"], "running")
    assert box["id"] != ready["Config"]["Labels"][labels.WORKLOAD]
    (task,) = running_tasks_of(pool_server, box["id"])
    assert task["Id"] != ready["Id"] and labels.POOLED not in task["Config"]["Labels"]
    assert [t["Id"] for t in pool_tasks(pool_server, "boxes") if t["State"]["Running"]] == [
        ready["Id"]
    ]


def test_a_sandbox_service_is_served_from_the_pool_billed_from_its_create(
    pool_server: BerthServer,
) -> None:
    ready = ready_task(pool_server, "sandboxes", besides=set())
    dave = pool_server.new_tenant()
    before = datetime.fromisoformat(ready["State"]["StartedAt"][:26] + "+00:00")
    body = {"name": "sandbox", "type": "service", "image": SANDBOX_IMAGE, "port": 8080}
    created = dave.client.post("/v1/compute", json=body)
    assert created.status_code == 201, created.text
    service = created.json()
    assert service["id"] == ready["Config"]["Labels"][labels.WORKLOAD]

    # The first command, sent at once, waits for the task and runs in the pool's container.
    ran = dave.client.post(
        f"/v1/compute/{service['id']}/exec",
        json={"command": "echo hi > /var/www/index.html; hostname"},
    )
    assert ran.status_code == 200, ran.text
    assert ran.json()["exit_code"] == 0
    assert ready["Id"].startswith(ran.json()["stdout"].strip())

    # Its own command kept serving, now through the gateway on the tenant's network.
    with httpx.Client(timeout=30) as client:
        answer = client.get(
            f"http://127.0.0.1:{pool_server.gateway_port}/",
            headers={"Host": f"{service['id']}.localhost"},
        )
    assert (answer.status_code, answer.text) == (200, "hi\n")

    runs = dave.client.get(f"/v1/compute/{service['id']}/runs").json()["runs"]
    (run,) = runs
    started = datetime.fromisoformat(run["started_at"])
    assert started >= datetime.fromisoformat(service["created_at"]) > before


def shelved(server: BerthServer, profile: str) -> int:
    """Ready tasks of `profile` on the server's shelf, as `GET /v1/system` says."""
    status = httpx.get(server.url + "/v1/system", timeout=10).json()
    return sum(pool["ready"] for pool in status["warm_pools"] if pool["name"] == profile)


def test_a_restarted_berth_replaces_the_ready_tasks_it_finds(pool_server: BerthServer) -> None:
    """It cannot tell whether one joined a tenant's network before a crash, so none is
    handed out again: each is removed and the pools are made anew."""
    ready = ready_task(pool_server, "boxes", besides=set())
    wait_for(lambda: shelved(pool_server, "boxes"), timeout=30, what="a shelved task")
    pool_server.stop()
    pool_server.start()
    wait_for(lambda: shelved(pool_server, "boxes"), timeout=30, what="a task shelved again")
    fresh = [t["Id"] for t in pool_tasks(pool_server, "boxes") if t["State"]["Running"]]
    assert len(fresh) == 1 and fresh != [ready["Id"]]
    with engine_client() as engine:
        assert engine.get(f"/containers/{ready['Id']}/json").status_code == 404
