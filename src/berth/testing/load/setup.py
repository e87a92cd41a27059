"""Before a load run: what each tenant needs, made through the API like any user would.

Per tenant: an SSH key, a job whose command is `true` (its runs are the mix's only task
churn), and two dev boxes made with that key: the first is left running (so reads of it
measure its live memory and storage through the engine), the second is stopped (so its
mount paths can change without restarting anything).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from berth.testing.load.mix import TenantAccess, TenantFixtures, new_public_key

SETUP_TIMEOUT = 120.0


class SetupFailed(RuntimeError):
    pass


async def prepare_tenant(
    base_url: str, access: TenantAccess, *, image: str, label: str
) -> TenantFixtures:
    headers = {"Authorization": f"Bearer {access.api_key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
        key = await _expect(
            http,
            "POST",
            "/compute/ssh-keys",
            {"name": f"{label}-base", "public_key": new_public_key(f"{label}@load")},
            201,
        )
        job = await _expect(
            http,
            "POST",
            "/v1/compute",
            {"name": f"{label}-job", "type": "job", "image": image, "command": "true"},
            201,
        )
        boxes = []
        for box in ("running", "stopped"):
            body = {"name": f"{label}-{box}", "ssh_key_ids": [key["id"]], "image": image}
            boxes.append((await _expect(http, "POST", "/compute/containers", body, 201))["id"])
        await _expect(http, "POST", f"/compute/containers/{boxes[1]}/stop", None, 200)
        for box_id, status in zip(boxes, ("running", "stopped"), strict=True):
            await _wait_status(http, box_id, status)
    return TenantFixtures(
        access=access,
        job_id=job["id"],
        containers=(boxes[0], boxes[1]),
        base_key_id=int(key["id"]),
    )


async def _expect(
    http: httpx.AsyncClient, method: str, path: str, body: Any, status: int
) -> dict[str, Any]:
    response = await http.request(method, path, json=body)
    if response.status_code != status:
        raise SetupFailed(f"{method} {path}: {response.status_code} {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


async def _wait_status(http: httpx.AsyncClient, container_id: str, status: str) -> None:
    deadline = time.monotonic() + SETUP_TIMEOUT
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        seen = await _expect(http, "GET", f"/compute/containers/{container_id}", None, 200)
        if seen["status"] == status:
            return
        await asyncio.sleep(0.2)
    raise SetupFailed(f"container {container_id} not {status} after {SETUP_TIMEOUT:.0f}s: {seen}")
