"""The Docker driver's networks: each tenant's (made on first use), a warm pool's holding
network, and joining a running task to one more (`NetworkJoining`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from berth.runtime.base import InvalidTaskSpec, TaskNotFound, TaskSpec
from berth.runtime.docker.client import EngineClient, unexpected
from berth.runtime.docker.mapping import Json, engine_message, label_filters, path_segment


class DockerNetworks:
    def __init__(self, engine: EngineClient) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()
        self.known: set[str] = set()
        """Networks seen present: a launch skips re-checking them. An entry is dropped when a
        create says the network is missing after all."""

    async def ensure(self, spec: TaskSpec) -> None:
        """The spec's network exists (made now with its labels if not)."""
        if spec.network:
            await self._ensure(spec.network, spec.network_labels, isolated=spec.network_isolated)

    async def _ensure(self, name: str, labels: Mapping[str, str], *, isolated: bool) -> None:
        if name in self.known:
            return
        async with self._lock:
            response = await self._engine.request("GET", f"/networks/{path_segment(name)}")
            if response.status_code == 200:
                self.known.add(name)
                return
            if response.status_code != 404:
                raise unexpected(f"inspecting network '{name}'", response)
            body: Json = {
                "Name": name,
                "Driver": "bridge",
                "Labels": dict(labels),
                "CheckDuplicate": True,
            }
            if isolated:
                body["Options"] = {"com.docker.network.bridge.enable_icc": "false"}
            response = await self._engine.request("POST", "/networks/create", body=body)
            if response.status_code in (200, 201, 409):  # 409: created concurrently elsewhere
                self.known.add(name)
                return
            if 400 <= response.status_code < 500:
                raise InvalidTaskSpec(
                    f"network '{name}' cannot be created: {engine_message(response)}"
                )
            raise unexpected(f"creating network '{name}'", response)

    async def join(self, task_id: str, network: str, labels: Mapping[str, str]) -> None:
        """Attach a running task to `network` too (made with `labels` on first use). Its
        other networks are kept: leaving one re-binds the task's published ports (a new host
        port, 60-200 ms of the engine's time), and a warm pool's holding network carries
        nothing between its tasks."""
        await self._ensure(network, labels, isolated=False)
        response = await self._engine.request(
            "POST", f"/networks/{path_segment(network)}/connect", body={"Container": task_id}
        )
        if response.status_code == 404 and "network" in engine_message(response).lower():
            self.known.discard(network)  # removed behind berth's back: made again next time
        if response.status_code == 404:
            raise TaskNotFound(f"task {task_id} or network '{network}' is gone")
        if response.status_code == 403 and "already exists" in engine_message(response):
            return  # joined already
        if response.status_code not in (200, 204):
            raise unexpected(f"joining task {task_id} to network '{network}'", response)

    async def remove(self, selector: Mapping[str, str]) -> None:
        """Remove the networks labelled with `selector` that no task uses any more."""
        filters = json.dumps({"label": label_filters(selector)})
        response = await self._engine.request("GET", "/networks", params={"filters": filters})
        if response.status_code != 200:
            raise unexpected("listing networks", response)
        for network in response.json():
            labels: Mapping[str, str] = network.get("Labels") or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            self.known.discard(str(network.get("Name", "")))
            deleted = await self._engine.request(
                "DELETE", f"/networks/{path_segment(network['Id'])}"
            )
            if deleted.status_code in (200, 204, 404, 403, 409):
                continue  # 403/409: still has active endpoints, kept for now.
            if "active endpoints" in engine_message(deleted):
                continue
            raise unexpected(f"removing network {network.get('Name')}", deleted)
