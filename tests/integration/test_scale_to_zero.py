"""Scale to zero: an idle service stops and accrues nothing; a request wakes it and is held,
never failed, and concurrent requests share one wake."""

from __future__ import annotations

import threading

import httpx
import pytest

from berth.testing.waiting import wait_for
from tests.support.api import create, wait_workload
from tests.support.server import BerthServer, Tenant

pytestmark = pytest.mark.engine

HTTPD = "mkdir -p /www && echo awake > /www/index.html && exec httpd -f -p 8080 -h /www"


def get(server: BerthServer, workload_id: str) -> httpx.Response:
    return httpx.get(
        f"http://127.0.0.1:{server.gateway_port}/",
        headers={"Host": f"{workload_id}.localhost"},
        timeout=60,
    )


def test_an_idle_service_scales_to_zero_and_requests_wake_it_once(
    server: BerthServer, tenant: Tenant
) -> None:
    svc = create(
        tenant.client,
        name="sleepy",
        type="service",
        command=HTTPD,
        port=8080,
        scale_to_zero=True,
        idle_timeout_seconds=2,
    )
    assert (svc["scale_to_zero"], svc["idle_timeout_seconds"]) == (True, 2)
    asleep = wait_workload(
        tenant.client,
        svc["id"],
        lambda s: s["status"] == "stopped" and s["running_tasks"] == 0,
        timeout=40,
        what="the idle service to scale to zero",
    )
    assert "scaled to zero" in asleep["status_reason"]
    runs_before = len(asleep["recent_runs"])
    # Asleep, the service keeps its next task created but not started, so a wake only
    # starts it; that standby is not a run anyone sees.
    standby = wait_for(
        lambda: [
            c
            for c in server.containers()
            if f"dev.berth.workload={svc['id']}" in c["Labels"] and c["State"] == "created"
        ],
        what="the standby task",
    )
    assert len(standby) == 1
    assert len(tenant.client.get(f"/v1/compute/{svc['id']}/runs").json()["runs"]) == runs_before

    answers: list[tuple[int, str]] = []

    def request() -> None:
        response = get(server, svc["id"])
        answers.append((response.status_code, response.text.strip()))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert answers == [(200, "awake")] * 8
    # One wake for all eight requests: one new run, which started (it may already be
    # asleep again: the idle timeout is short).
    woken = wait_workload(
        tenant.client, svc["id"], lambda s: len(s["recent_runs"]) > runs_before, what="the wake"
    )
    assert len(woken["recent_runs"]) == runs_before + 1
    assert woken["recent_runs"][0]["started_at"] is not None


def test_a_wake_that_never_answers_times_out_clearly(server: BerthServer, tenant: Tenant) -> None:
    svc = create(
        tenant.client,
        name="mute",
        type="service",
        command="exec sleep 3600",  # runs, but never listens on its port
        port=8080,
        replicas=0,
    )
    response = get(server, svc["id"])
    assert response.status_code == 504, response.text
    assert response.json()["code"] == "wake_timeout"
    assert svc["id"] in response.json()["error"]


def test_a_service_answers_its_public_url_the_moment_it_is_created(
    server: BerthServer, tenant: Tenant
) -> None:
    """A request right after the create (on a connection already open, so it arrives before
    the gateway's routes are refreshed) is held until the service answers, asleep or not:
    never 503 `no_route`."""
    with httpx.Client(base_url=f"http://127.0.0.1:{server.gateway_port}", timeout=60) as gateway:
        warm = gateway.get("/", headers={"Host": "warm-up.localhost"})
        assert warm.json()["code"] == "no_route"
        for name, asleep in (("at-once-asleep", True), ("at-once-awake", False)):
            svc = create(
                tenant.client,
                name=name,
                type="service",
                command=HTTPD,
                port=8080,
                scale_to_zero=asleep,
                replicas=0 if asleep else 1,
            )
            response = gateway.get("/", headers={"Host": f"{svc['id']}.localhost"})
            assert (response.status_code, response.text.strip()) == (200, "awake"), (
                name,
                response.text,
            )


def test_scale_to_zero_needs_a_service_with_a_port(tenant: Tenant) -> None:
    response = tenant.client.post(
        "/v1/compute",
        json={
            "name": "nope",
            "type": "job",
            "image": "berth-test/busybox:latest",
            "scale_to_zero": True,
        },
    )
    assert response.status_code == 422 and response.json()["field"] == "scale_to_zero"
