"""Services: replicas on published loopback ports, scale, stop and start, crash back-off,
secrets rolled onto running tasks, and metering that stops when the service does."""

from __future__ import annotations

import httpx
import pytest

from berth.testing.waiting import wait_for
from tests.support.api import create, wait_workload
from tests.support.server import BerthServer, Tenant

pytestmark = pytest.mark.engine

HTTPD = 'mkdir -p /www && echo "hello $GREETING" > /www/index.html && exec httpd -f -p 8080 -h /www'


def running(count: int):  # type: ignore[no-untyped-def]
    return lambda s: s["status"] == "running" and s["running_tasks"] == count


def published_ports(server: BerthServer, workload_id: str) -> list[int]:
    ports = []
    for container in server.containers():
        if workload_id in container["Labels"] and container["State"] == "running":
            # "127.0.0.1:32768->8080/tcp"
            ports.append(int(container["Ports"].split("->")[0].rsplit(":", 1)[1]))
    return ports


def fetch_all(ports: list[int]) -> set[str]:
    return {httpx.get(f"http://127.0.0.1:{p}/", timeout=5).text.strip() for p in ports}


def test_a_service_runs_its_replicas_and_scales(tenant: Tenant, server: BerthServer) -> None:
    svc = create(
        tenant.client,
        name="web",
        type="service",
        command=HTTPD,
        port=8080,
        replicas=2,
        env={"GREETING": "world"},
    )
    assert svc["url"] == f"http://{svc['id']}.localhost:{server.gateway_port}"
    wait_workload(tenant.client, svc["id"], running(2), what="two replicas")
    ports = wait_for(lambda: (p := published_ports(server, svc["id"])) and len(p) == 2 and p)
    assert wait_for(lambda: fetch_all(ports) == {"hello world"}, timeout=10)

    # The public URL: berth's gateway routes by host name to the service's tasks.
    def through_gateway() -> str | None:
        response = httpx.get(
            f"http://127.0.0.1:{server.gateway_port}/",
            headers={"Host": f"{svc['id']}.localhost"},
            timeout=5,
        )
        return response.text.strip() if response.status_code == 200 else None

    assert wait_for(through_gateway, timeout=15) == "hello world"

    scaled = tenant.client.post(f"/v1/compute/{svc['id']}/scale", json={"count": 3})
    assert scaled.status_code == 200 and scaled.json()["replicas"] == 3
    wait_workload(tenant.client, svc["id"], running(3), what="three replicas")

    tenant.client.post(f"/v1/compute/{svc['id']}/scale", json={"count": 1})
    wait_workload(tenant.client, svc["id"], running(1), what="one replica")
    wait_for(lambda: len(published_ports(server, svc["id"])) == 1, timeout=20)
    assert wait_for(through_gateway, timeout=15) == "hello world"

    # POST /stop scales to zero; the next request through the gateway wakes it.
    tenant.client.post(f"/v1/compute/{svc['id']}/stop")
    wait_workload(tenant.client, svc["id"], lambda s: s["status"] == "stopped")
    assert through_gateway() == "hello world"
    wait_workload(tenant.client, svc["id"], running(1), what="the woken service")

    tenant.client.delete(f"/v1/compute/{svc['id']}")

    def unavailable() -> dict | None:  # type: ignore[type-arg]
        response = httpx.get(
            f"http://127.0.0.1:{server.gateway_port}/",
            headers={"Host": f"{svc['id']}.localhost"},
            timeout=5,
        )
        return response.json() if response.status_code == 503 else None

    assert wait_for(unavailable, timeout=20)["code"] == "no_route"


def test_stop_scales_a_service_to_zero_and_start_brings_it_back(tenant: Tenant) -> None:
    svc = create(tenant.client, name="sleeper", type="service", command="exec sleep 600")
    wait_workload(tenant.client, svc["id"], running(1))
    stopped = tenant.client.post(f"/v1/compute/{svc['id']}/stop")
    assert stopped.status_code == 200
    state = wait_workload(
        tenant.client, svc["id"], lambda s: s["status"] == "stopped" and s["running_tasks"] == 0
    )
    assert state["recent_runs"][0]["status"] == "stopped"

    # A stopped service accrues nothing: its runs' usage no longer grows.
    usage = sum(r["credits"] for r in state["recent_runs"])
    started = tenant.client.post(f"/v1/compute/{svc['id']}/start")
    assert started.status_code == 200
    state = wait_workload(tenant.client, svc["id"], running(1))
    assert sum(r["credits"] for r in state["recent_runs"][1:]) == usage


def test_stop_start_and_scale_answer_the_status_they_lead_to(tenant: Tenant) -> None:
    """Not the status from before the call: the reconciler would publish it moments later,
    and a client must never see the answer of an accepted change older than that."""
    svc = create(tenant.client, name="sleeper", type="service", command="exec sleep 600")
    wait_workload(tenant.client, svc["id"], running(1))
    path = f"/v1/compute/{svc['id']}"

    scaled = tenant.client.post(f"{path}/scale", json={"count": 2}).json()
    assert (scaled["status"], scaled["status_reason"]) == ("deploying", "1/2 tasks running")
    wait_workload(tenant.client, svc["id"], running(2))
    scaled = tenant.client.post(f"{path}/scale", json={"count": 1}).json()
    assert scaled["status"] == "running"  # the task left of the two is running
    wait_workload(tenant.client, svc["id"], running(1))

    stopped = tenant.client.post(f"{path}/stop").json()
    assert stopped["status"] == "stopping"
    assert tenant.client.get(path).json()["status"] in ("stopping", "stopped")
    wait_workload(tenant.client, svc["id"], lambda s: s["status"] == "stopped")

    started = tenant.client.post(f"{path}/start").json()
    assert (started["status"], started["status_reason"]) == ("deploying", "0/1 tasks running")
    assert tenant.client.get(path).json()["status"] in ("deploying", "running")
    wait_workload(tenant.client, svc["id"], running(1))
    zero = tenant.client.post(f"{path}/scale", json={"count": 0}).json()
    assert zero["status"] == "stopping"


def test_a_crashing_task_is_replaced_with_back_off_and_the_crash_is_visible(
    tenant: Tenant,
) -> None:
    svc = create(tenant.client, name="crashy", type="service", command="echo boom; exit 7")
    state = wait_workload(
        tenant.client,
        svc["id"],
        lambda s: len([r for r in s["recent_runs"] if r["exit_code"] == 7]) >= 3,
        timeout=40,
        what="three crashes",
    )
    assert state["status"] in ("crash_loop", "deploying")
    crashes = sorted(
        (r for r in state["recent_runs"] if r["exit_code"] == 7), key=lambda r: r["created_at"]
    )
    assert all(r["status"] == "failed" and r["status_reason"] for r in crashes)
    # Back-off: each replacement waits longer than the one before (1 s, then 2 s).
    from datetime import datetime

    def gap(a: dict, b: dict) -> float:  # type: ignore[type-arg]
        return (
            datetime.fromisoformat(b["created_at"]) - datetime.fromisoformat(a["finished_at"])
        ).total_seconds()

    assert gap(crashes[1], crashes[2]) >= 1.5
    crash_state = wait_workload(
        tenant.client, svc["id"], lambda s: s["status"] == "crash_loop", timeout=20
    )
    assert "code 7" in crash_state["status_reason"]
    logs = tenant.client.get(f"/v1/compute/{svc['id']}/runs/{crashes[0]['id']}/logs").json()
    assert [e["message"] for e in logs["events"]] == ["boom"]


def test_setting_a_secret_rolls_the_service_onto_the_new_environment(
    tenant: Tenant, server: BerthServer
) -> None:
    svc = create(
        tenant.client,
        name="greeter",
        type="service",
        command=HTTPD,
        port=8080,
        env={"GREETING": "plain"},
    )
    wait_workload(tenant.client, svc["id"], running(1))
    response = tenant.client.post(
        f"/v1/compute/{svc['id']}/secrets", json={"key": "GREETING", "value": "t0p-s3cret-v4lue"}
    )
    assert response.status_code == 200, response.text

    def serves(text: str) -> bool:
        ports = published_ports(server, svc["id"])
        try:
            return bool(ports) and fetch_all(ports) == {text}
        except httpx.HTTPError:
            return False

    wait_for(lambda: serves("hello t0p-s3cret-v4lue"), timeout=30, what="the rolled task")
    state = wait_workload(tenant.client, svc["id"], running(1))
    assert state["secret_keys"] == ["GREETING"] and state["generation"] == 2

    listed = tenant.client.get(f"/v1/compute/{svc['id']}/secrets").json()
    assert [s["key"] for s in listed["secrets"]] == ["GREETING"]
    assert "value" not in listed["secrets"][0]
    revealed = tenant.client.get(f"/v1/compute/{svc['id']}/secrets/GREETING/reveal").json()
    assert revealed == {"key": "GREETING", "value": "t0p-s3cret-v4lue"}

    assert b"t0p-s3cret-v4lue" not in server.stored_rows()

    assert tenant.client.delete(f"/v1/compute/{svc['id']}/secrets/GREETING").status_code == 200
    wait_for(lambda: serves("hello plain"), timeout=30, what="the task without the secret")
    missing = tenant.client.get(f"/v1/compute/{svc['id']}/secrets/GREETING/reveal")
    assert missing.status_code == 404


def test_a_running_service_accrues_usage_and_debits_credits(
    tenant: Tenant, server: BerthServer
) -> None:
    before = server.admin("show-user", "--user", tenant.user_id)["credits"]
    svc = create(tenant.client, name="meter", type="service", command="exec sleep 600", cpu=1)
    wait_workload(
        tenant.client,
        svc["id"],
        lambda s: s["recent_runs"] and s["recent_runs"][0]["vcpu_seconds"] >= 1.0,
        what="a second of metered usage",
    )
    after = server.admin("show-user", "--user", tenant.user_id)["credits"]
    assert after < before
