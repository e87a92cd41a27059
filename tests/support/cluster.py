"""The Kubernetes cluster tests may run on, named by `BERTH_TEST_KUBECONFIG`, and what its
API server says about berth's objects (read with the driver's own client, as kubectl would).

Without the variable, tests that need a cluster are skipped with `NO_CLUSTER` as the reason.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Mapping

import pytest

from berth.domain import labels
from berth.runtime.kubernetes.client import ApiClient, Json, selector_param
from berth.runtime.kubernetes.config import load_config
from berth.runtime.kubernetes.mapping import image_names

KUBECONFIG = os.environ.get("BERTH_TEST_KUBECONFIG", "")
"""A cluster for the Kubernetes driver (tests/README or docs/kubernetes.md says how)."""
NO_CLUSTER = "no cluster: set BERTH_TEST_KUBECONFIG"
needs_cluster = pytest.mark.skipif(not KUBECONFIG, reason=NO_CLUSTER)


def new_namespace() -> str:
    """A namespace name of a test's own, for a driver's objects outside any tenant's."""
    return f"berth-test-{secrets.token_hex(4)}"


def server_env(namespace: str) -> dict[str, str]:
    """The settings of a `berth serve` on the cluster, its own objects in `namespace`."""
    return {
        "BERTH_RUNTIME": "kubernetes",
        "BERTH_KUBECONFIG": KUBECONFIG,
        "BERTH_KUBERNETES_NAMESPACE": namespace,
    }


async def _with_api(calls: list[tuple[str, str, Mapping[str, str] | None]]) -> list[Json | None]:
    api = ApiClient(load_config(KUBECONFIG))
    try:
        results: list[Json | None] = []
        for method, path, selector in calls:
            if method == "GET":
                params = {"labelSelector": selector_param(selector)} if selector else None
                results.append(await api.get_json(path, params=params))
            else:
                response = await api.request(method, path)
                assert response.status_code in (200, 202, 404), response.text
                results.append(None)
        return results
    finally:
        await api.close()


def items(path: str, selector: Mapping[str, str]) -> list[Json]:
    """The objects listed at `path` (e.g. `/api/v1/pods`, all namespaces) carrying `selector`."""
    listed = asyncio.run(_with_api([("GET", path, selector)]))[0] or {}
    found: list[Json] = listed.get("items") or []
    return found


def names(path: str, selector: Mapping[str, str]) -> list[str]:
    return [str(item["metadata"]["name"]) for item in items(path, selector)]


def has_image(image: str) -> bool:
    """Whether a node of the cluster lists `image` (loaded there: the cluster pulls nothing)."""
    wanted = image_names(image)
    for node in items("/api/v1/nodes", {}):
        for entry in (node.get("status") or {}).get("images") or []:
            if wanted & set(entry.get("names") or []):
                return True
    return False


def remove_instance(instance_id: str, namespace: str) -> None:
    """Delete every namespace of a berth instance's users, and its own `namespace`, with all
    they hold (the API server finishes the deletion in the background)."""
    tenants = names("/api/v1/namespaces", labels.instance_selector(instance_id))
    deletes = [("DELETE", f"/api/v1/namespaces/{name}", None) for name in [*tenants, namespace]]
    asyncio.run(_with_api(deletes))
