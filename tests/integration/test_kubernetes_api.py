"""berth end to end on Kubernetes: `berth serve --runtime kubernetes` on the test cluster,
driven only through its API, gateways and real clients (httpx, websockets, OpenSSH), with
the cluster's own objects checked as an operator would with kubectl.

Needs a cluster (`BERTH_TEST_KUBECONFIG`) with the test image loaded; skipped without one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from berth.domain import labels
from berth.testing.waiting import wait_for
from tests.support import cluster
from tests.support.api import create, open_shell, wait_workload
from tests.support.keys import new_public_key
from tests.support.server import TEST_IMAGE, BerthServer, Tenant
from tests.support.ssh import ssh
from tests.support.streams import read_ws_until

pytestmark = [pytest.mark.engine, cluster.needs_cluster]

HTTPD = 'mkdir -p /www && echo "hello $GREETING" > /www/index.html && exec httpd -f -p 8080 -h /www'
PODS = "/api/v1/pods"
CLAIMS = "/api/v1/persistentvolumeclaims"
NAMESPACES = "/api/v1/namespaces"


def running(count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s["status"] == "running" and s["running_tasks"] == count


def finished(state: dict[str, Any]) -> bool:
    runs = state["recent_runs"]
    return bool(runs) and runs[0]["status"] not in ("pending", "running")


def workload_pods(server: BerthServer, workload_id: str) -> list[dict[str, Any]]:
    """The workload's pods that are not being deleted."""
    pods = cluster.items(PODS, labels.workload_selector(server.instance_id(), workload_id))
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def cpu_count(quantity: str) -> float:
    """A Kubernetes CPU quantity (`2`, `1500m`) in CPUs."""
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def through_gateway(server: BerthServer, workload_id: str) -> str | None:
    try:
        response = httpx.get(
            f"http://127.0.0.1:{server.gateway_port}/",
            headers={"Host": f"{workload_id}.localhost"},
            timeout=5,
        )
    except httpx.HTTPError:
        return None
    return response.text.strip() if response.status_code == 200 else None


def test_a_job_records_its_exit_code_and_both_streams(kube_tenant: Tenant) -> None:
    job = create(
        kube_tenant.client,
        name="report",
        type="job",
        command="echo out-line; echo err-line >&2; exit 3",
        cpu=0.25,
        memory_mb=64,
    )
    state = wait_workload(kube_tenant.client, job["id"], finished, what="the job to finish")
    run = state["recent_runs"][0]
    assert (run["status"], run["exit_code"]) == ("failed", 3)
    assert "code 3" in state["status_reason"]
    assert run["started_at"] and run["finished_at"]
    logs = kube_tenant.client.get(f"/v1/compute/{job['id']}/runs/{run['id']}/logs").json()
    assert sorted((e["stream"], e["message"]) for e in logs["events"]) == [
        ("stderr", "err-line"),
        ("stdout", "out-line"),
    ]


def test_a_service_answers_through_the_gateway_scales_and_rolls_on_a_secret(
    kube_server: BerthServer, kube_tenant: Tenant
) -> None:
    client = kube_tenant.client
    svc = create(
        client,
        name="web",
        type="service",
        command=HTTPD,
        port=8080,
        replicas=2,
        cpu=0.25,
        memory_mb=64,
        env={"GREETING": "world"},
    )
    wait_workload(client, svc["id"], running(2), timeout=60, what="two replicas")
    assert len(workload_pods(kube_server, svc["id"])) == 2
    assert wait_for(lambda: through_gateway(kube_server, svc["id"]), timeout=20) == "hello world"

    scaled = client.post(f"/v1/compute/{svc['id']}/scale", json={"count": 1})
    assert scaled.status_code == 200, scaled.text
    wait_workload(client, svc["id"], running(1), timeout=30)
    wait_for(lambda: len(workload_pods(kube_server, svc["id"])) == 1, timeout=30, what="one pod")

    response = client.post(
        f"/v1/compute/{svc['id']}/secrets", json={"key": "GREETING", "value": "s3cret-v4lue"}
    )
    assert response.status_code == 200, response.text
    wait_for(
        lambda: through_gateway(kube_server, svc["id"]) == "hello s3cret-v4lue",
        timeout=60,
        what="the rolled task answering",
    )
    state = wait_workload(client, svc["id"], running(1), timeout=30)
    assert state["generation"] == 2
    (pod,) = wait_for(lambda: (p := workload_pods(kube_server, svc["id"])) and len(p) == 1 and p)
    assert pod["metadata"]["labels"][labels.GENERATION] == "2"
    assert "s3cret-v4lue" not in json.dumps(pod)  # the value is in a Secret, not the pod spec


def test_exec_and_a_shell_session(kube_tenant: Tenant) -> None:
    client = kube_tenant.client
    svc = create(client, name="box", type="service", command="exec sleep 3600", cpu=0.25)
    wait_workload(client, svc["id"], running(1), timeout=60)

    def exec_(**body: Any) -> dict[str, Any]:
        response = client.post(f"/v1/compute/{svc['id']}/exec", json=body, timeout=60)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    result = exec_(command="echo out; echo err >&2; exit 3")
    assert (result["exit_code"], result["stdout"], result["stderr"]) == (3, "out\n", "err\n")
    piped = exec_(command=["cat"], stdin="piped in")
    assert (piped["exit_code"], piped["stdout"]) == (0, "piped in")

    session = open_shell(kube_tenant, svc["id"])["session"]
    with connect(f"{session['streamUrl']}?token={session['tokenValue']}") as ws:
        ws.send("echo answer-$((6*7))\n")
        read_ws_until(ws, "answer-42")


def test_a_dev_box_over_ssh_keeps_its_mount_path_and_delete_removes_everything(
    kube_server: BerthServer, kube_tenant: Tenant, tmp_path: Path
) -> None:
    client = kube_tenant.client
    key = client.post(
        "/compute/ssh-keys", json={"name": "k", "public_key": new_public_key(tmp_path)}
    )
    assert key.status_code == 201, key.text
    created = client.post(
        "/compute/containers",
        json={
            "name": "box",
            "image": TEST_IMAGE,
            "ssh_key_ids": [key.json()["id"]],
            "ssh_enabled": True,
            "storage_gb": 3,
        },
    )
    assert created.status_code == 201, created.text
    box = created.json()
    box_path = f"/compute/containers/{box['id']}"

    def status_is(status: str) -> bool:
        return bool(client.get(box_path).json()["status"] == status)

    wait_for(lambda: status_is("running"), timeout=60, what="the box running")
    known = tmp_path / "known_hosts"
    wrote = ssh(
        kube_server,
        tmp_path / "id",
        box["id"],
        "echo kept-$((40+2)) > /root/note; exit 5",
        known_hosts=known,
    )
    assert wrote.returncode == 5, wrote.stderr

    selector = labels.workload_selector(kube_server.instance_id(), box["id"])
    (claim,) = cluster.items(CLAIMS, selector)
    # The box's storage_gb, as the API server writes it.
    assert claim["spec"]["resources"]["requests"]["storage"] == "3Gi"

    client.post(f"{box_path}/stop")
    wait_for(lambda: status_is("stopped"), timeout=60, what="the box stopped")
    wait_for(lambda: not cluster.items(PODS, selector), timeout=30, what="the pod deleted")
    assert cluster.names(CLAIMS, selector) == [claim["metadata"]["name"]]

    client.post(f"{box_path}/start")
    wait_for(lambda: status_is("running"), timeout=60, what="the box running again")
    read = ssh(kube_server, tmp_path / "id", box["id"], "cat /root/note", known_hosts=known)
    assert (read.returncode, read.stdout) == (0, "kept-42\n"), read.stderr

    tenant_selector = {**labels.instance_selector(kube_server.instance_id())}
    tenant_selector[labels.USER] = kube_tenant.user_id
    assert len(cluster.names(NAMESPACES, tenant_selector)) == 1
    assert client.delete(box_path).status_code in (200, 204)

    def leftovers() -> dict[str, list[str]]:
        return {
            "pods": cluster.names(PODS, selector),
            "claims": cluster.names(CLAIMS, selector),
            "namespaces": cluster.names(NAMESPACES, tenant_selector),
        }

    try:
        wait_for(lambda: not any(leftovers().values()), timeout=60, what="all deleted")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; left: {leftovers()}") from None


def test_an_image_the_cluster_lacks_fails_the_run_within_seconds(kube_tenant: Tenant) -> None:
    started = time.monotonic()
    job = create(kube_tenant.client, name="ghost", type="job", image="berth-test/no-such-image:1")
    state = wait_workload(kube_tenant.client, job["id"], finished, timeout=30)
    run = state["recent_runs"][0]
    assert run["status"] == "failed", run
    assert "berth-test/no-such-image:1" in run["status_reason"], run
    assert "pull" in run["status_reason"].lower(), run
    assert time.monotonic() - started < 30


def test_a_namespace_quota_exceeded_fails_the_run_with_the_quotas_reason(
    kube_tenant: Tenant,
) -> None:
    """The cluster's operator caps the user's namespace at no pods (a ResourceQuota): the next
    job's run fails within seconds, saying which quota refused it, never `pending` forever."""
    api = kube_tenant.client
    first = create(api, name="first", type="job", command="true")
    wait_workload(api, first["id"], finished, timeout=60)
    (namespace,) = cluster.names(NAMESPACES, {labels.USER: kube_tenant.user_id})
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-pods", "namespace": namespace},
            "spec": {"hard": {"pods": "0"}},
        }
    )
    started = time.monotonic()
    job = create(api, name="capped", type="job", command="true")
    state = wait_workload(api, job["id"], finished, timeout=30)
    run = state["recent_runs"][0]
    assert run["status"] == "failed", run
    assert "exceeded quota" in run["status_reason"] and "no-pods" in run["status_reason"], run
    assert time.monotonic() - started < 30


def test_a_replica_no_node_has_room_for_fails_with_the_schedulers_reason(
    kube_server: BerthServer, kube_tenant: Tenant
) -> None:
    """Two replicas of 1.5 CPUs each on a cluster whose nodes are smaller than 3: the one
    the scheduler cannot place fails its run, with the scheduler's reason, within seconds."""
    nodes = cluster.items("/api/v1/nodes", {})
    cpus = max(cpu_count(node["status"]["allocatable"]["cpu"]) for node in nodes)
    if len(nodes) != 1 or cpus >= 3:
        pytest.skip("needs a single node with fewer than 3 CPUs")
    svc = create(
        kube_tenant.client,
        name="big",
        type="service",
        command="exec sleep 3600",
        replicas=2,
        cpu=1.5,
        memory_mb=64,
    )

    def refused(state: dict[str, Any]) -> bool:
        return any(r["status"] == "failed" for r in state["recent_runs"])

    state = wait_workload(kube_tenant.client, svc["id"], refused, timeout=30)
    failure = next(r for r in state["recent_runs"] if r["status"] == "failed")
    assert "Insufficient cpu" in failure["status_reason"], failure
    assert state["status"] != "pending", state
