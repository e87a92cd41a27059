"""Several berth replicas on one PostgreSQL database and one engine: two real `berth serve`
processes with their own data directories, sharing the keys directory (`BERTH_SHARED_DIR`).
Each controller runs on the one replica holding its lease, events cross between replicas
(LISTEN/NOTIFY), and a killed lease holder is replaced within the lease time."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from berth.testing.waiting import wait_for
from tests.support.api import create, open_shell, wait_workload
from tests.support.keys import new_public_key
from tests.support.postgres import PostgresServer
from tests.support.replicas import (
    CONTROLLERS,
    LEASE_SECONDS,
    balance_and_ledger,
    client_of,
    finished,
    lease_holders,
    start_pair,
    tasks_created,
)
from tests.support.server import BerthServer, Tenant
from tests.support.streams import read_ws_until

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def replicas(tmp_path: Path, postgres: PostgresServer) -> Iterator[list[BerthServer]]:
    with start_pair(tmp_path, postgres) as pair:
        yield pair


def test_a_container_created_through_one_replica_shows_on_the_others_websocket_at_once(
    replicas: list[BerthServer], tmp_path: Path
) -> None:
    a, b = replicas
    tenant = a.new_tenant()
    key = tenant.client.post(
        "/compute/ssh-keys", json={"name": "laptop", "public_key": new_public_key(tmp_path)}
    )
    assert key.status_code == 201, key.text
    url = f"{b.url.replace('http', 'ws')}/compute/ws?token={tenant.key}"
    with connect(url) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"type": "containers", "data": []}
        created = tenant.client.post(
            "/compute/containers", json={"name": "box", "ssh_key_ids": [key.json()["id"]]}
        )
        assert created.status_code == 201, created.text
        answered = time.monotonic()
        update = json.loads(ws.recv(timeout=5))
        seen_after = time.monotonic() - answered
    assert update["type"] == "container_status"
    assert update["data"]["container_id"] == created.json()["id"]
    assert seen_after < 1.0, f"replica b's WebSocket saw the change after {seen_after:.2f}s"
    assert tenant.client.delete(f"/compute/containers/{created.json()['id']}").status_code == 200


def test_a_job_created_on_one_replica_runs_exactly_once(replicas: list[BerthServer]) -> None:
    a, b = replicas
    tenant = a.new_tenant()
    since = time.time()
    job = create(tenant.client, name="once", type="job", command="echo once")
    on_b = client_of(b, tenant)
    wait_workload(on_b, job["id"], finished, what="the job to succeed")
    runs = on_b.get(f"/v1/compute/{job['id']}/runs").json()["runs"]
    assert [run["status"] for run in runs] == ["succeeded"]
    assert tasks_created(job["id"], since) == 1
    assert lease_holders(a) == dict.fromkeys(CONTROLLERS, a)


def test_a_killed_lease_holder_is_taken_over_within_the_lease_and_fires_nothing_twice(
    replicas: list[BerthServer],
) -> None:
    """`a` is killed just after its scheduler fired a schedule: `b` takes every controller
    over within the lease (plus one renewal), records the fired run's end, does not fire
    it again, and runs new work once."""
    a, b = replicas
    tenant = a.new_tenant()
    on_b = client_of(b, tenant)
    since = time.time()
    every_minute = create(
        tenant.client, name="tick", type="schedule", schedule_expr="* * * * *", command="sleep 2"
    )

    def fired() -> list[dict[str, object]] | None:
        runs = on_b.get(f"/v1/compute/{every_minute['id']}/runs").json()["runs"]
        return runs or None

    first = wait_for(fired, timeout=75, interval=0.1, what="the first scheduled fire")
    a.kill()
    killed = time.monotonic()
    wait_for(
        lambda: lease_holders(b) == dict.fromkeys(CONTROLLERS, b),
        timeout=LEASE_SECONDS * 3,
        interval=0.1,
        what="b to take every lease over",
    )
    takeover = time.monotonic() - killed
    print(f"takeover after SIGKILL: {takeover:.2f}s (lease {LEASE_SECONDS:g}s)")
    assert takeover <= LEASE_SECONDS + LEASE_SECONDS / 5 + 1.0

    state = wait_workload(
        on_b,
        every_minute["id"],
        lambda s: s["recent_runs"][-1]["status"] not in ("pending", "running"),
        what="the fired run to end",
    )
    assert [run["id"] for run in state["recent_runs"]] == [first[0]["id"]]
    assert tasks_created(every_minute["id"], since) == 1
    balance, ledger = balance_and_ledger(b, tenant.user_id)
    assert balance == ledger
    on_b.delete(f"/v1/compute/{every_minute['id']}")

    job = create(on_b, name="after", type="job", command="echo after")
    wait_workload(on_b, job["id"], finished, what="a job created after the takeover")
    assert len(on_b.get(f"/v1/compute/{job['id']}/runs").json()["runs"]) == 1


def test_a_shell_session_lives_on_the_replica_serving_it_and_ends_when_that_replica_dies(
    replicas: list[BerthServer],
) -> None:
    """A session opened through `b` is served by `a` (any replica claims it); `b`
    restarting leaves it alone (a replica ends only sessions of replicas that are gone);
    killing `a` ends it on record once `a`'s presence lapses."""
    a, b = replicas
    tenant = a.new_tenant()
    on_b = client_of(b, tenant)
    svc = create(on_b, name="shells", type="service", command="sleep 3600")
    wait_workload(on_b, svc["id"], lambda s: s["running_tasks"] == 1)
    opened = open_shell(Tenant(client=on_b, key=tenant.key, user_id=tenant.user_id), svc["id"])
    session_id = opened["session"]["sessionId"]
    stream = f"{a.url.replace('http', 'ws')}/v1/shell/sessions/{session_id}/stream"

    def status() -> str:
        sessions = on_b.get(f"/v1/compute/{svc['id']}/shell/sessions").json()["sessions"]
        return str(next(s["status"] for s in sessions if s["id"] == session_id))

    with connect(f"{stream}?token={opened['session']['tokenValue']}") as ws:
        ws.send("export KEPT=$((6*7)); echo set-$KEPT\n")
        read_ws_until(ws, "set-42")
        b.stop()
        b.start()
        ws.send("echo still-$KEPT\n")
        read_ws_until(ws, "still-42")
        assert status() == "active"
        a.kill()
    wait_for(
        lambda: status() == "ended",
        timeout=LEASE_SECONDS * 4,
        interval=0.2,
        what="the dead replica's session to be ended on record",
    )


def test_requests_reaching_both_replicas_at_once_wake_a_sleeping_service_once(
    replicas: list[BerthServer],
) -> None:
    a, b = replicas
    tenant = a.new_tenant()
    svc = create(
        tenant.client,
        name="sleepy",
        type="service",
        command="mkdir -p /www && echo awake > /www/index.html && exec httpd -f -p 8080 -h /www",
        port=8080,
        scale_to_zero=True,
        idle_timeout_seconds=2,
    )
    asleep = wait_workload(
        tenant.client,
        svc["id"],
        lambda s: s["status"] == "stopped" and s["running_tasks"] == 0,
        timeout=40,
        what="the idle service to scale to zero",
    )
    runs_before = len(asleep["recent_runs"])
    answers: list[tuple[int, str]] = []

    def request(server: BerthServer) -> None:
        response = httpx.get(
            f"http://127.0.0.1:{server.gateway_port}/",
            headers={"Host": f"{svc['id']}.localhost"},
            timeout=60,
        )
        answers.append((response.status_code, response.text.strip()))

    threads = [threading.Thread(target=request, args=(server,)) for server in (a, b) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert answers == [(200, "awake")] * 8
    woken = wait_workload(
        tenant.client, svc["id"], lambda s: len(s["recent_runs"]) > runs_before, what="the wake"
    )
    assert len(woken["recent_runs"]) == runs_before + 1
