"""After a load run: every acknowledged write is visible, and nothing deleted came back.

Each client owned what it wrote (see `mix`), so its `Ledger` is the exact expected
state. `verify_clients` reads it back through the API with a fresh connection and lists each
discrepancy; `wait_runs_finished` waits (with a deadline) until every acknowledged job run
has finished and reports those that did not succeed, so a run the reconciler lost under load
shows up too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from berth.testing.load.mix import LoadClient

FINISHED = {"succeeded", "failed", "stopped", "timed_out"}


@dataclass
class Verification:
    checked: int = 0
    """How many facts were compared: a report of 0 problems out of 0 checks proves nothing."""
    problems: list[str] = field(default_factory=list)

    def expect(self, ok: bool, problem: str) -> None:
        self.checked += 1
        if not ok:
            self.problems.append(problem)


async def verify_clients(base_url: str, clients: Sequence[LoadClient]) -> Verification:
    result = Verification()
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        for client in clients:
            await _verify_client(http, client, result)
    return result


async def _get(http: httpx.AsyncClient, client: LoadClient, path: str) -> tuple[int, Any]:
    response = await http.get(path, headers={"Authorization": f"Bearer {client.credential}"})
    body = response.json() if response.headers.get("content-type", "").startswith("appl") else None
    return response.status_code, body


async def _verify_client(http: httpx.AsyncClient, client: LoadClient, out: Verification) -> None:
    ledger, name = client.ledger, client.name
    _status, listing = await _get(http, client, "/v1/compute")
    listed = {w["id"] for w in (listing or {}).get("workloads", [])}
    for service, secrets in ledger.services.items():
        out.expect(service in listed, f"{name}: service {service} missing from the list")
        status, body = await _get(http, client, f"/v1/compute/{service}/secrets")
        keys = {s["key"] for s in (body or {}).get("secrets", [])} if status == 200 else None
        out.expect(keys == set(secrets), f"{name}: {service} secrets {keys} != {set(secrets)}")
        for key, value in secrets.items():
            status, body = await _get(http, client, f"/v1/compute/{service}/secrets/{key}/reveal")
            seen = (body or {}).get("value") if status == 200 else f"status {status}"
            out.expect(seen == value, f"{name}: {service} secret {key} is {seen!r}, not {value!r}")
    for service in ledger.deleted_services:
        status, _body = await _get(http, client, f"/v1/compute/{service}")
        out.expect(status == 404, f"{name}: deleted service {service} answers {status}")
        out.expect(service not in listed, f"{name}: deleted service {service} still listed")

    _status, keys_body = await _get(http, client, "/compute/ssh-keys")
    listed_keys = {int(k["id"]): k["public_key"] for k in (keys_body or {}).get("ssh_keys", [])}
    for key_id, public_key in ledger.ssh_keys.items():
        out.expect(
            listed_keys.get(key_id) == public_key, f"{name}: ssh key {key_id} missing or changed"
        )
    for key_id, public_key in ledger.deleted_keys.items():
        # The same id with the same key again is this client's own later add, or a leftover.
        still_there = listed_keys.get(key_id) == public_key
        out.expect(
            not still_there or ledger.ssh_keys.get(key_id) == public_key,
            f"{name}: deleted ssh key {key_id} still listed",
        )

    for (container, port), target in ledger.ingress.items():
        _status, body = await _get(http, client, f"/compute/containers/{container}/ingress")
        rules = {r["port"]: r["target_port"] for r in (body or {}).get("rules", [])}
        out.expect(
            rules.get(port) == target, f"{name}: ingress {container}:{port} is {rules.get(port)}"
        )
    for container, paths in ledger.mounts.items():
        _status, body = await _get(http, client, f"/compute/containers/{container}/mounts")
        seen = (body or {}).get("mount_paths")
        out.expect(seen == paths, f"{name}: mounts of {container} are {seen}, not {paths}")
    for container, enabled in ledger.ssh_enabled.items():
        _status, body = await _get(http, client, f"/compute/containers/{container}/ssh")
        seen_ssh = (body or {}).get("ssh_enabled")
        out.expect(seen_ssh == enabled, f"{name}: ssh of {container} is {seen_ssh}")


async def wait_runs_finished(
    base_url: str, clients: Sequence[LoadClient], *, within_seconds: float
) -> Verification:
    """Every acknowledged run is listed, finishes within `within_seconds`, and succeeds."""
    result = Verification()
    wanted: dict[str, tuple[LoadClient, set[str]]] = {}
    for client in clients:
        _owner, runs = wanted.setdefault(client.tenant.job_id, (client, set()))
        runs.update(client.ledger.job_runs)
    deadline = time.monotonic() + within_seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        for job, (client, runs) in wanted.items():
            seen: dict[str, str] = {}
            while True:
                _status, body = await _get(http, client, f"/v1/compute/{job}/runs?limit=500")
                seen = {r["id"]: r["status"] for r in (body or {}).get("runs", [])}
                if all(seen.get(run) in FINISHED for run in runs):
                    break
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            for run in sorted(runs):
                result.expect(
                    seen.get(run) == "succeeded", f"job {job} run {run}: {seen.get(run, 'missing')}"
                )
    return result
