"""The Docker driver's networks: each tenant's (made on first use), a warm pool's holding
network, and moving a task from one to the other."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from berth.runtime.base import InvalidTaskSpec, TaskSpec
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
        if not spec.network or spec.network in self.known:
            return
        name = spec.network
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
                "Labels": dict(spec.network_labels),
                "CheckDuplicate": True,
            }
            if spec.network_isolated:
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

    async def join_only(self, task_id: str, joined: set[str], spec: TaskSpec) -> None:
        """Put a task (now on the networks `joined`) on the spec's network and take it off
        every other: a warm pool's task leaves its holding network for its tenant's. Its
        published ports may change meanwhile (read the task's state after this)."""
        if not spec.network:
            return
        if spec.network not in joined:
            await self.ensure(spec)
            await self._call(spec.network, "connect", {"Container": task_id})
        for other in sorted(joined - {spec.network}):
            await self._call(other, "disconnect", {"Container": task_id, "Force": True})

    async def _call(self, network: str, action: str, body: Json) -> None:
        response = await self._engine.request(
            "POST", f"/networks/{path_segment(network)}/{action}", body=body
        )
        if response.status_code not in (200, 204):
            raise unexpected(f"{action} of task {body['Container']} on '{network}'", response)

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
