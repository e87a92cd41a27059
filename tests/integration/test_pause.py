"""Pause and resume on the Docker engine: a paused dev box or service is frozen by the
engine (memory and files kept), shows `paused`, is billed for its memory alone, wakes for a
terminal, an exec, an SSH session or a request through the gateway, and stays paused and
resumable across a restart of berth."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import ClientConnection

from berth.testing.waiting import wait_for
from tests.support.api import create, wait_workload, workload_state
from tests.support.boxes import engine_paused, run_in, running_box, terminal, wait_box
from tests.support.cli import clean_env, ok, run_berth
from tests.support.engine import running_tasks_of
from tests.support.server import BerthServer, Tenant
from tests.support.ssh import ssh

pytestmark = pytest.mark.engine


def ticks(ws: ClientConnection, marker: str) -> int:
    """How many lines the background loop has written so far."""
    out = run_in(ws, 'echo "n=$(wc -l < /tmp/ticks)=n"', marker)
    found = re.findall(r"n=\s*(\d+)=n", out)
    assert found, out
    return int(found[-1])


def act(tenant: Tenant, path: str) -> httpx.Response:
    return tenant.client.post(path, timeout=30)


def test_a_paused_box_keeps_its_shell_and_processes_and_resumes_where_it_was(
    server: BerthServer, tenant: Tenant, tmp_path: Path
) -> None:
    box = running_box(tenant, tmp_path)
    with terminal(server, tenant, box["id"]) as ws:
        run_in(
            ws,
            "KEPT=value-$((40+2)); (while :; do echo tick >> /tmp/ticks; sleep 0.1; done &)",
            "a",
        )
        before = ticks(ws, "b")

        paused = act(tenant, f"/compute/containers/{box['id']}/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json()["status"] == "paused"
        assert "/resume" in paused.json()["status_reason"]
        assert engine_paused(server, box["id"])
        again = act(tenant, f"/compute/containers/{box['id']}/pause")
        assert (again.status_code, again.json()["status"]) == (200, "paused")

        resumed = act(tenant, f"/compute/containers/{box['id']}/resume")
        assert (resumed.status_code, resumed.json()["status"]) == (200, "running")
        assert not engine_paused(server, box["id"])
        out = run_in(ws, "echo $KEPT", "c")
        assert "value-42" in out
        wait_for(
            lambda: ticks(ws, "d") > before,
            timeout=10,
            what="the background loop to go on ticking",
        )


def test_a_terminal_and_an_ssh_session_wake_a_paused_box(
    server: BerthServer, tenant: Tenant, tmp_path: Path
) -> None:
    box = running_box(tenant, tmp_path, ssh_enabled=True)
    assert act(tenant, f"/compute/containers/{box['id']}/pause").status_code == 200
    with terminal(server, tenant, box["id"]) as ws:
        assert "awake-1" in run_in(ws, "echo awake-$((0+1))", "t")
    assert wait_box(tenant, box["id"], "running") and not engine_paused(server, box["id"])

    assert act(tenant, f"/compute/containers/{box['id']}/pause").status_code == 200
    known = tmp_path / "known_hosts"
    done = ssh(server, tmp_path / "k", box["id"], "echo via-ssh-$((6*7))", known_hosts=known)
    assert (done.returncode, done.stdout) == (0, "via-ssh-42\n"), done.stderr
    assert wait_box(tenant, box["id"], "running") and not engine_paused(server, box["id"])


def test_a_paused_box_stops_a_stopped_one_does_not_pause_and_a_strangers_is_not_found(
    server: BerthServer, tenant: Tenant, tmp_path: Path
) -> None:
    box = running_box(tenant, tmp_path)
    stranger = server.new_tenant()
    for verb in ("pause", "resume"):
        foreign = act(stranger, f"/compute/containers/{box['id']}/{verb}")
        assert (foreign.status_code, foreign.json()["code"]) == (404, "not_found")
    assert act(tenant, f"/compute/containers/{box['id']}/pause").status_code == 200
    assert act(tenant, f"/compute/containers/{box['id']}/stop").status_code == 200
    wait_box(tenant, box["id"], "stopped")  # a paused box stops like a running one
    refused = act(tenant, f"/compute/containers/{box['id']}/pause")
    assert refused.status_code == 409, refused.text
    assert f"dev box {box['id']} is stopped" in refused.json()["error"]
    assert "/start starts it" in refused.json()["error"]


def test_a_paused_service_is_billed_for_memory_alone_and_wakes_for_exec_and_requests(
    server: BerthServer, tenant: Tenant
) -> None:
    serve = "mkdir -p /www && echo awake > /www/index.html && exec httpd -f -p 8080 -h /www"
    svc = create(tenant.client, name="frozen", type="service", command=serve, port=8080)
    wait_workload(tenant.client, svc["id"], lambda s: s["status"] == "running")
    paused = act(tenant, f"/v1/compute/{svc['id']}/pause")
    assert (paused.status_code, paused.json()["status"]) == (200, "paused"), paused.text

    def usage() -> tuple[float, float]:
        (run,) = [r for r in workload_state(tenant.client, svc["id"])["recent_runs"]]
        return run["vcpu_seconds"], run["gb_seconds"]

    def tick_after(gb: float) -> tuple[float, float]:
        return wait_for(lambda: (u := usage())[1] > gb and u, timeout=15, what="a meter tick")

    # The first tick after the pause charges the running time before it (a tick that read
    # the clock just before the pause was recorded, then waited for its write, may come
    # after it); from then on the meter adds memory alone.
    vcpu, gb = tick_after(tick_after(usage()[1])[1])
    later = tick_after(gb)
    assert later[0] == pytest.approx(vcpu, abs=1e-6) and later[1] > gb

    ran = tenant.client.post(f"/v1/compute/{svc['id']}/exec", json={"command": "echo hi"})
    assert (ran.status_code, ran.json()["stdout"]) == (200, "hi\n"), ran.text
    assert workload_state(tenant.client, svc["id"])["status"] == "running"

    assert act(tenant, f"/v1/compute/{svc['id']}/pause").status_code == 200
    answer = httpx.get(
        f"http://127.0.0.1:{server.gateway_port}/",
        headers={"Host": f"{svc['id']}.localhost"},
        timeout=30,
    )
    assert (answer.status_code, answer.text) == (200, "awake\n")
    assert workload_state(tenant.client, svc["id"])["status"] == "running"
    assert not engine_paused(server, svc["id"])


def test_a_paused_box_stays_paused_and_resumable_across_a_restart_of_berth(
    crashable: BerthServer, tmp_path: Path
) -> None:
    tenant = crashable.new_tenant()
    box = running_box(tenant, tmp_path)
    with terminal(crashable, tenant, box["id"]) as ws:
        run_in(ws, "echo before > /tmp/mark", "m")
    (task,) = running_tasks_of(crashable, box["id"])
    assert act(tenant, f"/compute/containers/{box['id']}/pause").status_code == 200

    crashable.kill()
    crashable.start()
    tenant.client = httpx.Client(
        base_url=crashable.url, headers={"Authorization": f"Bearer {tenant.key}"}, timeout=30
    )
    # The restarted reconciler adopts its tasks and starts new work (a service runs)...
    svc = create(tenant.client, name="after", type="service", command="exec sleep 3600")
    wait_workload(tenant.client, svc["id"], lambda s: s["status"] == "running")
    # ...and leaves the paused box as it was: the same task, frozen, never restarted.
    assert wait_box(tenant, box["id"], "paused")
    (same,) = running_tasks_of(crashable, box["id"])
    assert same["Id"] == task["Id"] and same["State"]["Paused"]
    assert same["State"]["StartedAt"] == task["State"]["StartedAt"]
    resumed = act(tenant, f"/compute/containers/{box['id']}/resume")
    assert (resumed.status_code, resumed.json()["status"]) == (200, "running")
    with terminal(crashable, tenant, box["id"]) as ws:
        assert "before" in run_in(ws, "cat /tmp/mark", "r")


def test_the_cli_pauses_and_resumes_a_service(
    server: BerthServer, tenant: Tenant, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "config", BERTH_URL=server.url, BERTH_API_KEY=tenant.key)
    svc = create(tenant.client, name="cli", type="service", command="exec sleep 3600")
    wait_workload(tenant.client, svc["id"], lambda s: s["status"] == "running")
    assert "paused" in ok(run_berth("compute", "pause", svc["id"], env=env))
    assert engine_paused(server, svc["id"])
    assert "running" in ok(run_berth("compute", "resume", svc["id"], env=env))
    assert not engine_paused(server, svc["id"])


def test_a_request_through_an_ingress_rule_wakes_a_paused_box(
    server: BerthServer, tenant: Tenant, tmp_path: Path
) -> None:
    box = running_box(tenant, tmp_path)
    with terminal(server, tenant, box["id"]) as ws:
        run_in(ws, "mkdir -p /tmp/www && echo served > /tmp/www/index.html", "w")
        run_in(ws, "httpd -p 8080 -h /tmp/www", "h")
    rule = tenant.client.post(
        f"/compute/containers/{box['id']}/ingress", json={"port": 80, "target_port": 8080}
    )
    assert rule.status_code == 201, rule.text

    def through_rule() -> httpx.Response:
        return httpx.get(
            f"http://127.0.0.1:{server.gateway_port}/",
            headers={"Host": f"{box['id']}.localhost"},
            timeout=30,
        )

    wait_for(lambda: through_rule().status_code == 200, timeout=20, what="the rule to serve")
    assert act(tenant, f"/compute/containers/{box['id']}/pause").status_code == 200
    answer = through_rule()
    assert (answer.status_code, answer.text) == (200, "served\n")
    assert wait_box(tenant, box["id"], "running") and not engine_paused(server, box["id"])
