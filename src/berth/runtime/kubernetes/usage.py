"""What the cluster's nodes offer and what tasks use, from node objects and the kubelet's
summary API (`/api/v1/nodes/<node>/proxy/stats/summary`, which needs no metrics-server)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from berth.runtime.base import Capacity, RuntimeUnavailable
from berth.runtime.kubernetes.client import ApiClient, Json, unexpected
from berth.runtime.kubernetes.kubelet import Kubelets
from berth.runtime.kubernetes.mapping import CONTAINER, parse_quantity

CAPACITY_TTL = 60.0
SUMMARY_TTL = 1.0
"""Seconds one node's summary serves several tasks' questions (a meter pass asks for all)."""
VOLUME_SUMMARY_TTL = 15.0


class Usage:
    """Capacity and usage readings, cached as the Docker driver caches its own."""

    def __init__(self, api: ApiClient, kubelets: Kubelets) -> None:
        self._api = api
        self._kubelets = kubelets
        self._capacity: tuple[float, Capacity] | None = None
        self._summaries: dict[str, tuple[float, Json]] = {}
        self._claim_sizes: dict[tuple[str, str], int] = {}
        self._claims_read_at = -VOLUME_SUMMARY_TTL

    async def capacity(self) -> Capacity:
        """The largest node's allocatable CPUs and memory (what one pod can be given)."""
        now = asyncio.get_running_loop().time()
        if self._capacity is not None and now - self._capacity[0] <= CAPACITY_TTL:
            return self._capacity[1]
        try:
            response = await self._api.request("GET", "/api/v1/nodes")
        except RuntimeUnavailable:
            if self._capacity is not None:
                return self._capacity[1]
            raise
        if response.status_code != 200:
            raise unexpected("reading the nodes' capacity", response)
        best = Capacity(cpus=0.0, memory_bytes=0)
        for node in response.json().get("items") or []:
            allocatable: Mapping[str, str] = (node.get("status") or {}).get("allocatable") or {}
            cpus = parse_quantity(str(allocatable.get("cpu", "0")))
            memory = int(parse_quantity(str(allocatable.get("memory", "0"))))
            if (cpus, memory) > (best.cpus, best.memory_bytes):
                best = Capacity(cpus=cpus, memory_bytes=memory)
        self._capacity = (now, best)
        return best

    async def _summary(self, node: str, ttl: float) -> Json:
        now = asyncio.get_running_loop().time()
        cached = self._summaries.get(node)
        if cached is not None and now - cached[0] <= ttl:
            return cached[1]
        response = await self._kubelets.get(node, "/stats/summary")
        if response.status_code != 200:
            raise unexpected(f"reading node {node}'s usage summary", response)
        summary: Json = response.json()
        self._summaries[node] = (now, summary)
        return summary

    async def memory_usage(self, pod: Json) -> int | None:
        """The task container's working set (memory the kernel cannot simply drop)."""
        node = (pod.get("spec") or {}).get("nodeName")
        metadata: Json = pod.get("metadata") or {}
        if not node:
            return None
        summary = await self._summary(str(node), SUMMARY_TTL)
        for entry in summary.get("pods") or []:
            ref: Json = entry.get("podRef") or {}
            if ref.get("uid") != metadata.get("uid"):
                continue
            for container in entry.get("containers") or []:
                if container.get("name") == CONTAINER:
                    used = (container.get("memory") or {}).get("workingSetBytes")
                    return int(used) if isinstance(used, int) else None
        return None

    async def claim_sizes(self, nodes: set[str]) -> dict[tuple[str, str], int]:
        """Bytes used per (namespace, claim) mounted on `nodes`, remembered for claims no
        pod mounts now (the kubelet measures only mounted volumes)."""
        now = asyncio.get_running_loop().time()
        if now - self._claims_read_at > VOLUME_SUMMARY_TTL:
            for node in nodes:
                summary = await self._summary(node, 0.0)
                for entry in summary.get("pods") or []:
                    for volume in entry.get("volume") or []:
                        ref: Json = volume.get("pvcRef") or {}
                        used = volume.get("usedBytes")
                        if ref.get("name") and isinstance(used, int):
                            key = (str(ref.get("namespace")), str(ref["name"]))
                            self._claim_sizes[key] = used
            self._claims_read_at = now
        return dict(self._claim_sizes)
