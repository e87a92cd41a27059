"""Tasks run unprivileged, and one user's tasks cannot reach another's.

What berth asks of the engine is judged by what the engine reports (`/containers/<id>/json`)
and by what a command inside the task can do, for each kind of task berth makes: a job, a
service and a dev-box container. Network isolation is shown from inside a task with a
positive control (the same user's other service answers), so a broken probe cannot pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from berth.testing.waiting import wait_for
from tests.support.api import create, wait_workload
from tests.support.engine import running_tasks_of, task_gateway, task_ip
from tests.support.keys import new_public_key
from tests.support.server import BerthServer, Tenant

pytestmark = pytest.mark.engine

PORT = 8080


def httpd(text: str) -> str:
    return f"mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p {PORT} -h /www"


@dataclass
class Estate:
    """Two users' tasks on one server: A's job, two services and a dev box; B's service."""

    a: Tenant
    b: Tenant
    tasks: dict[str, dict[str, Any]]  # name -> the engine's inspection of its one task
    workloads: dict[str, str]  # name -> workload id (the dev box's is its container id)


def running_service(owner: Tenant, name: str, text: str) -> str:
    svc = create(owner.client, name=name, type="service", command=httpd(text), port=PORT)
    return str(svc["id"])


@pytest.fixture(scope="module")
def estate(server: BerthServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    """Five tasks (~5-10 s to start on a loaded machine)."""
    a, b = server.new_tenant(), server.new_tenant()
    workloads = {
        "a-job": str(create(a.client, name="a-job", type="job", command="exec sleep 600")["id"]),
        "a-web": running_service(a, "a-web", "from-a-web"),
        "a-other": running_service(a, "a-other", "from-a-other"),
        "b-web": running_service(b, "b-web", "from-b-web"),
    }
    public_key = new_public_key(Path(tmp_path_factory.mktemp("keys")))
    key = a.client.post("/compute/ssh-keys", json={"name": "k", "public_key": public_key})
    assert key.status_code == 201, key.text
    box = a.client.post(
        "/compute/containers", json={"name": "a-box", "ssh_key_ids": [key.json()["id"]]}
    )
    assert box.status_code == 201, box.text
    workloads["a-box"] = box.json()["id"]
    try:
        tasks = {}
        for name, workload_id in workloads.items():
            owner = b if name.startswith("b-") else a
            if name != "a-box":
                wait_workload(
                    owner.client,
                    workload_id,
                    lambda s: s["running_tasks"] == 1,
                    timeout=60,
                    what=f"{name} to run",
                )
            tasks[name] = wait_for_one_task(server, workload_id, name)
        yield Estate(a=a, b=b, tasks=tasks, workloads=workloads)
    finally:
        for tenant in (a, b):
            for workload in tenant.client.get("/v1/compute").json()["workloads"]:
                tenant.client.delete(f"/v1/compute/{workload['id']}")
            tenant.client.delete(f"/compute/containers/{workloads['a-box']}")
            tenant.client.close()


def wait_for_one_task(server: BerthServer, workload_id: str, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        running = [t for t in running_tasks_of(server, workload_id) if t["State"]["Running"]]
        return running[0] if len(running) == 1 else None

    return wait_for(probe, timeout=60, interval=0.3, what=f"{name}'s task in the engine")


def exec_in(owner: Tenant, workload_id: str, command: str) -> dict[str, Any]:
    response = owner.client.post(
        f"/v1/compute/{workload_id}/exec", json={"command": command, "timeout_seconds": 30}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


KINDS = ["a-job", "a-web", "a-box"]


@pytest.mark.parametrize("name", KINDS)
def test_the_engine_runs_every_kind_of_task_unprivileged(estate: Estate, name: str) -> None:
    task = estate.tasks[name]
    host = task["HostConfig"]
    assert host["Privileged"] is False
    assert "no-new-privileges" in (host["SecurityOpt"] or [])
    assert not host.get("CapAdd")
    assert "NET_RAW" in (host.get("CapDrop") or [])
    assert not host.get("Devices")
    assert host["PidsLimit"] and host["PidsLimit"] > 0
    assert host["Memory"] > 0 and host["MemorySwap"] == host["Memory"]
    assert host["NanoCpus"] > 0
    for namespace in ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode"):
        mode = str(host.get(namespace) or "")
        assert mode != "host" and not mode.startswith("container:"), (namespace, mode)
    # Nothing of the host's file system: no bind mounts, only berth's named volumes.
    assert not host.get("Binds")
    assert all(mount["Type"] == "volume" for mount in task["Mounts"]), task["Mounts"]
    # No engine socket by any route: a mount, a volume declaration or an address in the env.
    reachable = [
        *(str(m.get("Source")) + " " + str(m.get("Destination")) for m in task["Mounts"]),
        *(task["Config"].get("Volumes") or {}),
        *(task["Config"].get("Env") or []),
    ]
    sockets = [i for i in reachable if "docker.sock" in i or "DOCKER_HOST" in i or "/run/" in i]
    assert not sockets, reachable


def test_only_a_dev_box_gets_volumes_and_only_named_ones(estate: Estate) -> None:
    assert estate.tasks["a-job"]["Mounts"] == [] and estate.tasks["a-web"]["Mounts"] == []
    (volume,) = estate.tasks["a-box"]["Mounts"]
    assert (volume["Type"], volume["Destination"]) == ("volume", "/root")
    assert volume["Name"].startswith("berth-")


@pytest.mark.parametrize("name", ["a-job", "a-web"])
def test_inside_a_task_there_are_no_new_privileges_and_no_raw_sockets(
    estate: Estate, name: str
) -> None:
    status = exec_in(
        estate.a, estate.workloads[name], "grep -E '^(NoNewPrivs|CapEff)' /proc/1/status"
    )
    fields = dict(line.split(":\t") for line in status["stdout"].splitlines())
    assert fields["NoNewPrivs"] == "1"
    net_raw = 1 << 13  # CAP_NET_RAW
    assert int(fields["CapEff"], 16) & net_raw == 0, fields
    assert int(fields["CapEff"], 16) != 0  # root in the task keeps the ordinary capabilities
    ping = exec_in(estate.a, estate.workloads[name], "ping -c 1 -W 2 127.0.0.1")
    assert ping["exit_code"] != 0 and "permission denied" in ping["stderr"].lower(), ping


def test_each_user_has_a_network_of_their_own(estate: Estate) -> None:
    def networks(name: str) -> set[str]:
        return set(estate.tasks[name]["NetworkSettings"]["Networks"])

    assert networks("a-job") == networks("a-web") == networks("a-other") == networks("a-box")
    assert networks("b-web").isdisjoint(networks("a-web"))


def fetch(
    estate: Estate, tenant: Tenant, from_name: str, address: str, port: int
) -> dict[str, Any]:
    """An HTTP GET from inside a task, with a 3 s limit on connecting and on silence (the
    image's static busybox `wget` crashes, its `nc` does not)."""
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'"
    return exec_in(tenant, estate.workloads[from_name], f"{request} | nc -w 3 {address} {port}")


def body_of(result: dict[str, Any]) -> str | None:
    """The response body if the request got an HTTP 200 answer, else None."""
    head, _, body = str(result["stdout"]).partition("\r\n\r\n")
    ok = result["exit_code"] == 0 and head.startswith("HTTP/1.") and " 200 " in head
    return body if ok else None


def test_a_users_task_reaches_their_own_service_but_not_another_users(estate: Estate) -> None:
    own = fetch(estate, estate.a, "a-job", task_ip(estate.tasks["a-other"]), PORT)
    assert body_of(own) == "from-a-other\n", own

    foreign = fetch(estate, estate.a, "a-job", task_ip(estate.tasks["b-web"]), PORT)
    assert body_of(foreign) is None and "from-b-web" not in foreign["stdout"], foreign
    assert foreign["exit_code"] != 0


def test_another_users_task_cannot_reach_back(estate: Estate) -> None:
    a_web = task_ip(estate.tasks["a-web"])
    foreign = fetch(estate, estate.b, "b-web", a_web, PORT)
    assert body_of(foreign) is None and foreign["exit_code"] != 0, foreign
    # The same probe from a task on A's own network does get through.
    own = fetch(estate, estate.a, "a-other", a_web, PORT)
    assert body_of(own) == "from-a-web\n", own


def test_published_ports_and_berths_own_listeners_are_not_reachable_through_the_host(
    server: BerthServer, estate: Estate
) -> None:
    """Ports are published on the host's loopback only: a task reaching the host on its
    network's gateway address finds neither another user's service nor berth's API."""
    b_port = int(estate.tasks["b-web"]["NetworkSettings"]["Ports"][f"{PORT}/tcp"][0]["HostPort"])
    gateway = task_gateway(estate.tasks["a-job"])
    for port in (b_port, server.port, server.gateway_port):
        through_host = fetch(estate, estate.a, "a-job", gateway, port)
        assert body_of(through_host) is None and through_host["stdout"] == "", (port, through_host)
