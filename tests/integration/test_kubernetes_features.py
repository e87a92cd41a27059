"""What berth offers beyond jobs and services, shown on Kubernetes: schedules firing, a
crashing service backing off, scale to zero with held requests, a dev box's ingress rule and
`ssh -L` forward, a terminal that follows its resize, live memory usage and metering.
test_kubernetes_api.py covers jobs, services, exec, shells and dev boxes over SSH.

Needs a cluster (`BERTH_TEST_KUBECONFIG`) with the test image loaded; skipped without one.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from berth.domain import labels
from berth.runtime.base import ExecSpec, TaskStatus
from berth.runtime.kubernetes import KubernetesRuntime
from berth.testing.server import free_port
from berth.testing.waiting import poll, wait_for
from tests.support import cluster
from tests.support.api import create, open_shell, wait_workload
from tests.support.drivers import Env, open_driver
from tests.support.keys import new_public_key
from tests.support.replicas import balance_and_ledger
from tests.support.server import TEST_IMAGE, BerthServer, Tenant
from tests.support.ssh import ssh, ssh_argv
from tests.support.streams import ask_ws_until

pytestmark = [pytest.mark.engine, cluster.needs_cluster]

PODS = "/api/v1/pods"
AWAKE = "mkdir -p /www && echo awake > /www/index.html && exec httpd -f -p 8080 -h /www"


def finished(state: dict[str, Any]) -> bool:
    runs = state["recent_runs"]
    return bool(runs) and runs[0]["status"] not in ("pending", "running")


def workload_pods(server: BerthServer, workload_id: str) -> list[dict[str, Any]]:
    """The workload's pods that are not being deleted."""
    pods = cluster.items(PODS, labels.workload_selector(server.instance_id(), workload_id))
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def gateway_get(server: BerthServer, host: str, *, timeout: float = 5) -> httpx.Response | None:
    try:
        return httpx.get(
            f"http://127.0.0.1:{server.gateway_port}/", headers={"Host": host}, timeout=timeout
        )
    except httpx.HTTPError:
        return None


def dev_box(tenant: Tenant, tmp_path: Path, **body: Any) -> dict[str, Any]:
    """A running dev box whose SSH key is `tmp_path / "id"`."""
    key = tenant.client.post(
        "/compute/ssh-keys", json={"name": "k", "public_key": new_public_key(tmp_path)}
    )
    assert key.status_code == 201, key.text
    created = tenant.client.post(
        "/compute/containers",
        json={
            "name": "box",
            "image": TEST_IMAGE,  # the one image the test cluster has
            "ssh_key_ids": [key.json()["id"]],
            "ssh_enabled": True,
            **body,
        },
    )
    assert created.status_code == 201, created.text
    box: dict[str, Any] = created.json()
    path = f"/compute/containers/{box['id']}"
    wait_for(
        lambda: tenant.client.get(path).json()["status"] == "running",
        timeout=60,
        what="the box running",
    )
    return box


def test_a_schedule_fires_on_the_cluster_and_its_run_is_recorded(
    kube_server: BerthServer, kube_tenant: Tenant
) -> None:
    schedule = create(
        kube_tenant.client,
        name="tick",
        type="schedule",
        schedule_expr="* * * * *",
        command="echo tick-$((6*7))",
        cpu=0.25,
        memory_mb=64,
    )
    assert schedule["status"] == "scheduled", schedule
    state = wait_workload(
        kube_tenant.client, schedule["id"], finished, timeout=90, what="the first fire to end"
    )
    run = state["recent_runs"][0]
    assert (run["status"], run["exit_code"]) == ("succeeded", 0), run
    # Fired on the minute (the scheduler wakes at least every few seconds).
    assert datetime.fromisoformat(run["created_at"]).second < 10, run
    logs = kube_tenant.client.get(f"/v1/compute/{schedule['id']}/runs/{run['id']}/logs").json()
    assert [e["message"] for e in logs["events"]] == ["tick-42"]
    assert state["status"] == "scheduled" and state["next_run_at"], state


def test_a_crashing_service_backs_off_and_reports_the_crash(
    kube_server: BerthServer, kube_tenant: Tenant
) -> None:
    svc = create(
        kube_tenant.client,
        name="crashy",
        type="service",
        command="echo boom; exit 7",
        cpu=0.25,
        memory_mb=64,
    )
    state = wait_workload(
        kube_tenant.client,
        svc["id"],
        lambda s: len([r for r in s["recent_runs"] if r["exit_code"] == 7]) >= 3,
        timeout=60,
        what="three crashes",
    )
    crashes = sorted(
        (r for r in state["recent_runs"] if r["exit_code"] == 7), key=lambda r: r["created_at"]
    )
    assert all(r["status"] == "failed" and "code 7" in r["status_reason"] for r in crashes)

    def gap(before: dict[str, Any], after: dict[str, Any]) -> float:
        return (
            datetime.fromisoformat(after["created_at"])
            - datetime.fromisoformat(before["finished_at"])
        ).total_seconds()

    # Back-off: the replacement after the second crash waited longer than one second.
    assert gap(crashes[1], crashes[2]) >= 1.5, crashes
    looping = wait_workload(
        kube_tenant.client, svc["id"], lambda s: s["status"] == "crash_loop", timeout=30
    )
    assert "code 7" in looping["status_reason"]
    # The first crash's pod is gone; its output was kept.
    logs = kube_tenant.client.get(f"/v1/compute/{svc['id']}/runs/{crashes[0]['id']}/logs")
    assert [e["message"] for e in logs.json()["events"]] == ["boom"]
    # berth is the controller: no pod was restarted in place by the kubelet, and the pods
    # of ended runs are removed (their output archived), not left to pile up.
    pods = workload_pods(kube_server, svc["id"])
    assert len(pods) <= 1, [p["metadata"]["name"] for p in pods]
    for pod in pods:
        assert pod["spec"]["restartPolicy"] == "Never"
        for status in pod["status"].get("containerStatuses") or []:
            assert status["restartCount"] == 0, status


def test_a_service_scaled_to_zero_is_woken_by_held_requests_through_the_gateway(
    kube_server: BerthServer, kube_tenant: Tenant
) -> None:
    svc = create(
        kube_tenant.client,
        name="sleepy",
        type="service",
        command=AWAKE,
        port=8080,
        cpu=0.25,
        memory_mb=64,
        scale_to_zero=True,
        idle_timeout_seconds=2,
    )
    asleep = wait_workload(
        kube_tenant.client,
        svc["id"],
        lambda s: s["status"] == "stopped" and s["running_tasks"] == 0,
        timeout=60,
        what="the idle service to scale to zero",
    )
    assert "scaled to zero" in asleep["status_reason"]
    runs_before = len(asleep["recent_runs"])
    # Asleep, the next task waits as a pod behind berth's scheduling gate: a wake lifts it.
    standby = wait_for(
        lambda: [
            p for p in workload_pods(kube_server, svc["id"]) if p["spec"].get("schedulingGates")
        ],
        timeout=30,
        what="the gated standby pod",
    )
    assert len(standby) == 1

    answers: list[tuple[int, str]] = []

    def request() -> None:
        response = gateway_get(kube_server, f"{svc['id']}.localhost", timeout=90)
        answers.append((response.status_code, response.text.strip()) if response else (0, ""))

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert answers == [(200, "awake")] * 4
    woken = wait_workload(
        kube_tenant.client,
        svc["id"],
        lambda s: len(s["recent_runs"]) > runs_before,
        what="the wake's run",
    )
    assert len(woken["recent_runs"]) == runs_before + 1  # one wake for all four requests
    assert woken["recent_runs"][0]["started_at"] is not None
    # Deleting the service deletes its pods, the standby one included.
    assert kube_tenant.client.delete(f"/v1/compute/{svc['id']}").status_code in (200, 204)
    wait_for(lambda: not workload_pods(kube_server, svc["id"]), timeout=30, what="no pods left")


def test_a_pod_an_operator_deletes_is_replaced_and_served_again(
    kube_server: BerthServer, kube_tenant: Tenant
) -> None:
    """`kubectl delete pod` on a service's pod: berth records the run's end, starts a new
    pod, and the gateway serves through it."""
    svc = create(
        kube_tenant.client,
        name="kept",
        type="service",
        command=AWAKE,
        port=8080,
        cpu=0.25,
        memory_mb=64,
    )
    host = f"{svc['id']}.localhost"

    def served() -> bool:
        response = gateway_get(kube_server, host)
        return response is not None and response.status_code == 200

    wait_for(served, timeout=60, what="the service served")
    (pod,) = workload_pods(kube_server, svc["id"])
    metadata = pod["metadata"]
    cluster.delete(
        f"/api/v1/namespaces/{metadata['namespace']}/pods/{metadata['name']}?gracePeriodSeconds=0"
    )
    state = wait_workload(
        kube_tenant.client,
        svc["id"],
        lambda s: len(s["recent_runs"]) >= 2 and s["running_tasks"] == 1,
        timeout=60,
        what="a replacement running",
    )
    ended = state["recent_runs"][-1]
    assert ended["status"] not in ("pending", "running") and ended["finished_at"], ended
    wait_for(
        lambda: (
            [p["metadata"]["uid"] for p in workload_pods(kube_server, svc["id"])]
            not in ([], [metadata["uid"]])
        ),
        timeout=30,
        what="a new pod",
    )
    wait_for(served, timeout=30, what="the service served by its new pod")


def test_a_dev_box_ingress_rule_is_served_through_the_gateway(
    kube_server: BerthServer, kube_tenant: Tenant, tmp_path: Path
) -> None:
    box = dev_box(kube_tenant, tmp_path)
    serve = (
        "mkdir -p /tmp/www && echo ingress-ok > /tmp/www/index.html && httpd -p 3000 -h /tmp/www"
    )
    started = ssh(kube_server, tmp_path / "id", box["id"], serve, known_hosts=tmp_path / "known")
    assert started.returncode == 0, started.stderr
    # A rule on 80 is served on the gateway's HTTP port.
    rule = kube_tenant.client.post(
        f"/compute/containers/{box['id']}/ingress", json={"port": 80, "target_port": 3000}
    )
    assert rule.status_code == 201, rule.text

    def body() -> str | None:
        response = gateway_get(kube_server, f"{box['id']}.localhost")
        return response.text.strip() if response is not None and response.is_success else None

    assert wait_for(body, timeout=30, what="the rule served") == "ingress-ok"


def test_ssh_local_forwarding_reaches_the_dev_boxs_ports(
    kube_server: BerthServer, kube_tenant: Tenant, tmp_path: Path
) -> None:
    """One server on the pod's loopback only (reached through the API server's port-forward)
    and one on every address (reached by the pod's IP)."""
    box = dev_box(kube_tenant, tmp_path)
    known = tmp_path / "known"
    serve = (
        "mkdir -p /tmp/a /tmp/b && echo on-loopback > /tmp/a/index.html && "
        "echo on-pod-ip > /tmp/b/index.html && "
        "httpd -p 127.0.0.1:8080 -h /tmp/a && httpd -p 8081 -h /tmp/b"
    )
    started = ssh(kube_server, tmp_path / "id", box["id"], serve, known_hosts=known)
    assert started.returncode == 0, started.stderr
    loopback, pod_ip = free_port(), free_port()
    forward = subprocess.Popen(
        ssh_argv(
            kube_server,
            tmp_path / "id",
            box["id"],
            known_hosts=known,
            options=[
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-L",
                f"{loopback}:localhost:8080",
                "-L",
                f"{pod_ip}:localhost:8081",
            ],
        ),
        stderr=subprocess.PIPE,
    )
    try:

        def fetch(port: int) -> str | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text.strip()
            except httpx.HTTPError:
                return None

        assert wait_for(lambda: fetch(loopback), timeout=30) == "on-loopback"
        assert wait_for(lambda: fetch(pod_ip), timeout=30) == "on-pod-ip"
        # Each connection is its own forward: a second fetch works as well as the first.
        assert [fetch(loopback) for _ in range(3)] == ["on-loopback"] * 3
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def test_a_terminal_follows_its_resize_and_reports_the_exit_code(kube_tenant: Tenant) -> None:
    svc = create(kube_tenant.client, name="tty", type="service", command="exec sleep 3600")
    wait_workload(kube_tenant.client, svc["id"], lambda s: s["running_tasks"] == 1, timeout=60)
    session = open_shell(kube_tenant, svc["id"])["session"]
    with connect(
        session["streamUrl"],
        subprotocols=["berth.shell.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {session['tokenValue']}"},
    ) as ws:
        ws.send(json.dumps({"type": "resize", "cols": 123, "rows": 45}))
        ask_ws_until(ws, b"stty size\n", "45 123")
        ws.send(json.dumps({"type": "resize", "cols": 80, "rows": 24}))
        ask_ws_until(ws, b"stty size\n", "24 80")
        ws.send(b"exit 7\n")
        frames = []
        with pytest.raises(ConnectionClosed):
            while True:
                frames.append(ws.recv(timeout=15))
    assert json.loads(next(f for f in frames if isinstance(f, str))) == {"type": "exit", "code": 7}


def test_a_dev_box_reports_its_live_memory_and_storage_usage(
    kube_server: BerthServer, kube_tenant: Tenant, tmp_path: Path
) -> None:
    box = dev_box(kube_tenant, tmp_path)
    path = f"/compute/containers/{box['id']}"

    def used_mb() -> float | None:
        value = kube_tenant.client.get(path).json()["memory_used_mb"]
        return None if value is None else float(value)

    wait_for(lambda: used_mb() is not None, timeout=60, what="a memory figure")
    idle = used_mb() or 0.0  # a whole number of MB: an idle box may use less than one
    # 48 MiB in the pod's /dev/shm (a 64 MiB tmpfs) is the box's memory: the figure follows.
    grow = "head -c 50331648 /dev/zero > /dev/shm/ballast"
    grew = ssh(kube_server, tmp_path / "id", box["id"], grow, known_hosts=tmp_path / "known")
    assert grew.returncode == 0, grew.stderr
    wait_for(
        lambda: (used := used_mb()) is not None and used >= idle + 40,
        timeout=60,
        what="the memory figure to follow the ballast",
    )
    assert kube_tenant.client.get(path).json()["storage_used_gb"] is not None


def test_a_job_run_is_billed_and_the_ledger_matches_the_balance(
    kube_server: BerthServer, kube_tenant: Tenant
) -> None:
    before = kube_server.admin("show-user", "--user", kube_tenant.user_id)["credits"]
    job = create(
        kube_tenant.client, name="metered", type="job", command="sleep 2", cpu=1, memory_mb=256
    )
    state = wait_workload(kube_tenant.client, job["id"], finished, timeout=60)
    run = state["recent_runs"][0]
    assert run["status"] == "succeeded", run
    assert run["vcpu_seconds"] >= 2 and run["gb_seconds"] >= 0.5, run
    assert run["credits"] > 0, run
    after = kube_server.admin("show-user", "--user", kube_tenant.user_id)["credits"]
    assert after == pytest.approx(before - run["credits"], abs=1e-6)
    balance, ledger = balance_and_ledger(kube_server, kube_tenant.user_id)
    assert balance == ledger


# -- the driver alone ----------------------------------------------------------------------


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    runtime = open_driver("kubernetes")
    test_env = Env(runtime)
    try:
        yield test_env
    finally:
        await test_env.clean_up()
        await runtime.close()


def accepts(port: int) -> bool:
    try:
        with httpx.Client(timeout=3) as client:
            client.get(f"http://127.0.0.1:{port}/")
    except httpx.ConnectError:
        return False
    except httpx.HTTPError:
        return True
    return True


async def test_a_pod_deleted_behind_berths_back_leaves_no_published_port(env: Env) -> None:
    """An operator deletes a task's pod (kubectl delete pod): once berth sees it gone, the
    loopback listener that published its port is closed, not left relaying to nothing."""
    spec = env.spec(
        "web",
        ["sh", "-c", AWAKE],
        ports=(8080,),
    )
    state = await env.runtime.launch(spec)
    assert state.status is TaskStatus.RUNNING
    _, port = state.ports[8080]

    async def answers() -> bool | None:
        return True if await asyncio.to_thread(accepts, port) else None

    assert await poll(answers, 20)
    namespace, pod = state.task_id.split("/", 1)
    await asyncio.to_thread(
        cluster.delete, f"/api/v1/namespaces/{namespace}/pods/{pod}?gracePeriodSeconds=0"
    )

    async def gone() -> bool | None:
        return True if await env.runtime.inspect(state.task_id) is None else None

    assert await poll(gone, 60)
    assert not await asyncio.to_thread(accepts, port)
    await env.runtime.remove(state.task_id)  # what the reconciler then does: a no-op


def test_a_rotated_token_file_is_read_again_for_calls_and_streams(tmp_path: Path) -> None:
    """berth in a pod holds a projected token the kubelet rewrites before it expires: the
    driver reads its `tokenFile` again for every call and every exec stream, so it keeps
    working once the old token is retired."""
    token_file, old_file = tmp_path / "token", tmp_path / "old-token"
    with cluster.berth_service_account() as (namespace, account):
        kubeconfig = cluster.service_account_kubeconfig(
            tmp_path / "sa.kubeconfig", namespace, account, token_file=token_file
        )
        old_kubeconfig = cluster.service_account_kubeconfig(
            tmp_path / "old.kubeconfig", namespace, account, token_file=old_file
        )

        def bound_token(secret: str) -> str:
            cluster.create({"kind": "Secret", "metadata": {"name": secret, "namespace": namespace}})
            return cluster.service_account_token(namespace, account, bound_secret=secret)

        def rotate() -> None:
            """The kubelet's rotation: a new token in the file, the old one retired."""
            old_file.write_text(token_file.read_text())
            token_file.write_text(bound_token("second"))
            cluster.delete(f"/api/v1/namespaces/{namespace}/secrets/first")
            wait_for(
                lambda: (
                    cluster.request("GET", "/api/v1/nodes", kubeconfig=old_kubeconfig)[0] == 401
                ),
                timeout=30,
                what="the old token refused",
            )

        token_file.write_text(bound_token("first"))

        async def exercise() -> None:
            runtime = KubernetesRuntime(kubeconfig, namespace=cluster.new_namespace())
            env = Env(runtime)
            try:
                task = await env.running_task("rotated")
                ran = await runtime.exec(task, ExecSpec(argv=["echo", "before"]))
                assert (ran.exit_code, ran.stdout) == (0, b"before\n")
                await asyncio.to_thread(rotate)
                state = await runtime.inspect(task)
                assert state is not None and state.status is TaskStatus.RUNNING
                ran = await runtime.exec(task, ExecSpec(argv=["echo", "after"]))
                assert (ran.exit_code, ran.stdout) == (0, b"after\n")
            finally:
                await env.clean_up()
                await runtime.close()

        asyncio.run(exercise())
