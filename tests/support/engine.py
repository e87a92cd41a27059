"""What the container engine itself says about berth's tasks, read over its API.

Tests that judge how berth configured a task (privileges, mounts, networks) ask the engine
directly, as an operator would with `docker inspect`, instead of trusting berth's own view.
The engine a test can stop and restart is `private_engine.py`'s.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from berth.domain import labels
from tests.support.server import BerthServer

ENGINE_SOCKET = "/var/run/docker.sock"


def engine_client() -> httpx.Client:
    """A client of the engine's API (unversioned paths)."""
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=ENGINE_SOCKET), base_url="http://engine", timeout=30
    )


def running_tasks_of(server: BerthServer, workload_id: str) -> list[dict[str, Any]]:
    """`/containers/<id>/json` of the workload's running tasks on this server's instance."""
    selector = [f"{labels.INSTANCE}={server.instance_id()}", f"{labels.WORKLOAD}={workload_id}"]
    with engine_client() as engine:
        listed = engine.get("/containers/json", params={"filters": json.dumps({"label": selector})})
        assert listed.status_code == 200, listed.text
        inspected = []
        for entry in listed.json():
            response = engine.get(f"/containers/{entry['Id']}/json")
            assert response.status_code == 200, response.text
            inspected.append(response.json())
    return inspected


def task_ip(task: dict[str, Any]) -> str:
    """The task's address on its (single) network."""
    (network,) = task["NetworkSettings"]["Networks"].values()
    address: str = network["IPAddress"]
    assert address, task["NetworkSettings"]
    return address


def task_gateway(task: dict[str, Any]) -> str:
    """The host's address on the task's network."""
    (network,) = task["NetworkSettings"]["Networks"].values()
    gateway: str = network["Gateway"]
    return gateway


def engine_machine() -> tuple[float, int]:
    """The engine machine's CPUs and memory (MB), as the engine's `/info` reports them."""
    with engine_client() as engine:
        info = engine.get("/info").json()
    return float(info["NCPU"]), int(info["MemTotal"]) // 2**20


async def engine_get(path: str) -> Any:
    """Raw engine API (v1.41), to check what a driver asked the engine for."""
    transport = httpx.AsyncHTTPTransport(uds=ENGINE_SOCKET)
    async with httpx.AsyncClient(transport=transport, base_url="http://docker/v1.41") as client:
        response = await client.get(path)
        response.raise_for_status()
        return response.json()


def label_value(labels: str, key: str) -> str:
    """One label's value from `docker ps`'s `Labels` column (`k=v,k=v`); "" when absent."""
    for pair in labels.split(","):
        name, _, value = pair.partition("=")
        if name == key:
            return value
    return ""
