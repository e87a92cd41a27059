"""Reading a node's kubelet: its summary API (usage) and its log folder (a task's output
with stdout and stderr apart).

The kubelet is asked through the API server's node proxy (`/api/v1/nodes/<node>/proxy/...`,
RBAC verb `get` on `nodes/proxy`). An API server does not proxy to a loopback or link-local
node address; berth running on such a node then asks the kubelet at the node's own
addresses (its status' `addresses` and kubelet port) with the same credentials, which the
kubelet authenticates and authorises as the API server would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import httpx

from berth.runtime.base import RuntimeUnavailable
from berth.runtime.kubernetes.client import ApiClient, Json

KUBELET_TIMEOUT = httpx.Timeout(10.0, connect=2.0)


class Kubelets:
    def __init__(self, api: ApiClient) -> None:
        self._api = api
        self._direct: dict[str, str] = {}
        """Nodes the API server will not proxy to -> the kubelet's base URL that answered."""

    async def get(
        self, node: str, path: str, *, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """GET `path` (e.g. `/stats/summary`) from `node`'s kubelet; the answer, whatever
        its status (the proxy's own when the kubelet cannot be reached either way)."""
        base = self._direct.get(node)
        if base is not None:
            with contextlib.suppress(RuntimeUnavailable):
                return await self._api.request(
                    "GET", base + path, headers=headers, limits=KUBELET_TIMEOUT
                )
        response = await self._api.request(
            "GET", f"/api/v1/nodes/{node}/proxy{path}", headers=headers
        )
        if response.status_code != 400:
            return response
        for candidate in await self._addresses(node):
            with contextlib.suppress(RuntimeUnavailable):
                direct = await self._api.request(
                    "GET", candidate + path, headers=headers, limits=KUBELET_TIMEOUT
                )
                if direct.status_code < 500:
                    self._direct[node] = candidate
                    return direct
        return response

    async def _addresses(self, node: str) -> list[str]:
        found = await self._api.get_json(f"/api/v1/nodes/{node}")
        if found is None:
            return []
        status: Json = found.get("status") or {}
        endpoint: Json = (status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
        port = int(endpoint.get("Port") or 10250)
        bases = []
        for address in status.get("addresses") or []:
            host = str(address.get("address") or "")
            if host:
                bases.append(f"https://{f'[{host}]' if ':' in host else host}:{port}")
        return bases
