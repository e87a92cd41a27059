"""The Kubernetes objects around a task's pod: its tenant's namespace and NetworkPolicy, its
environment Secret, its PersistentVolumeClaims; made on first use, removed when asked."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from berth.runtime.base import InvalidTaskSpec, RuntimeDriverError, TaskSpec
from berth.runtime.kubernetes.client import (
    MERGE_PATCH,
    ApiClient,
    Json,
    api_message,
    selector_param,
    unexpected,
)
from berth.runtime.kubernetes.mapping import (
    MANAGED_BY,
    claim_manifest,
    claim_name,
    namespace_manifest,
    network_policy_manifest,
    secret_manifest,
    secret_name,
)

CLAIM_GONE_TIMEOUT = 30.0
"""How long a claim being deleted (still protected while a pod used it) is waited for
before a claim of the same name is made again."""


class Objects:
    def __init__(self, api: ApiClient, *, volume_size_gb: float) -> None:
        self._api = api
        self._volume_size_gb = volume_size_gb
        self._known_namespaces: set[str] = set()
        self._lock = asyncio.Lock()

    # -- namespaces --------------------------------------------------------------------------

    async def ensure_namespace(self, name: str, labels: Mapping[str, str]) -> None:
        """The namespace and its tenant-isolating NetworkPolicy (both idempotent)."""
        if name in self._known_namespaces:
            return
        async with self._lock:
            if name in self._known_namespaces:
                return
            await self._create("/api/v1/namespaces", namespace_manifest(name, labels), name)
            await self._create(
                f"/apis/networking.k8s.io/v1/namespaces/{name}/networkpolicies",
                network_policy_manifest(name, labels),
                f"network policy of {name}",
            )
            self._known_namespaces.add(name)

    async def _create(self, path: str, body: Json, what: str) -> None:
        response = await self._api.request("POST", path, body=body)
        if response.status_code in (200, 201, 409):
            return
        if response.status_code in (400, 422):
            raise InvalidTaskSpec(f"the cluster refused {what}: {api_message(response)}")
        raise unexpected(f"creating {what}", response)

    async def remove_namespaces(self, selector: Mapping[str, str]) -> None:
        """Delete the namespaces carrying `selector` (and berth's mark) that hold no pods and
        no claims; the others are kept for a later call."""
        response = await self._api.request(
            "GET",
            "/api/v1/namespaces",
            params={"labelSelector": selector_param({**selector, **MANAGED_BY})},
        )
        if response.status_code != 200:
            raise unexpected("listing namespaces", response)
        for namespace in response.json().get("items") or []:
            name = str(namespace["metadata"]["name"])
            if await self._holds_anything(name):
                continue
            await self.delete_namespace(name)

    async def _holds_anything(self, namespace: str) -> bool:
        """Whether a pod or claim not already being deleted is in the namespace. Those being
        deleted do not keep it: deleting the namespace finishes them, and no later call
        would come to remove a namespace kept for them."""
        for kind in ("pods", "persistentvolumeclaims"):
            response = await self._api.request("GET", f"/api/v1/namespaces/{namespace}/{kind}")
            if response.status_code != 200:
                raise unexpected(f"listing {kind} in {namespace}", response)
            if any(not being_deleted(item) for item in response.json().get("items") or []):
                return True
        return False

    async def delete_namespace(self, name: str) -> None:
        self._known_namespaces.discard(name)
        response = await self._api.request("DELETE", f"/api/v1/namespaces/{name}")
        if response.status_code not in (200, 202, 404, 409):
            raise unexpected(f"removing namespace {name}", response)

    # -- secrets -----------------------------------------------------------------------------

    async def put_secret(self, spec: TaskSpec, namespace: str) -> None:
        """The task's environment as a Secret (replaced if one of that name is left over)."""
        path = f"/api/v1/namespaces/{namespace}/secrets"
        body = secret_manifest(spec, namespace)
        response = await self._api.request("POST", path, body=body)
        if response.status_code == 409:
            response = await self._api.request("PUT", f"{path}/{secret_name(spec.name)}", body=body)
        if response.status_code in (400, 422):
            raise InvalidTaskSpec(
                f"the cluster refused the environment of task '{spec.name}': "
                f"{api_message(response)}"
            )
        if response.status_code not in (200, 201):
            raise unexpected(f"storing the environment of task '{spec.name}'", response)

    async def own_secret(self, namespace: str, pod: Json) -> None:
        """Make the pod the Secret's owner, so the cluster deletes it with the pod."""
        metadata: Json = pod.get("metadata") or {}
        owner = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": metadata.get("name"),
            "uid": metadata.get("uid"),
        }
        await self._api.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/secrets/{secret_name(str(metadata.get('name')))}",
            body={"metadata": {"ownerReferences": [owner]}},
            headers=MERGE_PATCH,
        )

    async def delete_secret(self, namespace: str, pod: str) -> None:
        response = await self._api.request(
            "DELETE", f"/api/v1/namespaces/{namespace}/secrets/{secret_name(pod)}"
        )
        if response.status_code not in (200, 202, 404):
            raise unexpected(f"removing the environment of task {namespace}/{pod}", response)

    # -- claims ------------------------------------------------------------------------------

    async def ensure_claims(self, spec: TaskSpec, namespace: str) -> None:
        """Each volume's claim, sized by the spec (else the driver's default). A claim that
        exists keeps its size: a claim is never shrunk, and growing one needs a StorageClass
        that allows expansion."""
        size_gb = spec.volume_size_gb or self._volume_size_gb
        for volume, _ in spec.volumes:
            await self._ensure_claim(volume, namespace, spec.volume_labels, size_gb)

    async def _ensure_claim(
        self, volume: str, namespace: str, labels: Mapping[str, str], size_gb: float
    ) -> None:
        path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
        body = claim_manifest(volume, namespace, labels, size_gb)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLAIM_GONE_TIMEOUT
        while True:
            response = await self._api.request("POST", path, body=body)
            if response.status_code == 201:
                return
            if response.status_code in (400, 422):
                raise InvalidTaskSpec(
                    f"the cluster refused volume '{volume}': {api_message(response)}"
                )
            if response.status_code != 409:
                raise unexpected(f"creating volume '{volume}'", response)
            existing = await self._api.get_json(f"{path}/{claim_name(volume)}")
            if existing is not None and not existing["metadata"].get("deletionTimestamp"):
                return
            if loop.time() > deadline:
                raise RuntimeDriverError(f"volume '{volume}' is still being deleted")
            await asyncio.sleep(0.2)

    async def _claim_list(self, selector: Mapping[str, str]) -> list[Json]:
        response = await self._api.request(
            "GET",
            "/api/v1/persistentvolumeclaims",
            params={"labelSelector": selector_param({**selector, **MANAGED_BY})},
        )
        if response.status_code != 200:
            raise unexpected("listing volumes", response)
        return list(response.json().get("items") or [])

    async def claims(self, selector: Mapping[str, str]) -> list[tuple[str, str, str]]:
        """(namespace, claim, volume name) of the claims carrying `selector`."""
        found = []
        for claim in await self._claim_list(selector):
            metadata: Json = claim["metadata"]
            if metadata.get("deletionTimestamp"):
                continue
            volume = (metadata.get("annotations") or {}).get("dev.berth/volume")
            found.append((str(metadata["namespace"]), str(metadata["name"]), str(volume)))
        return found

    async def remove_claims(self, selector: Mapping[str, str]) -> None:
        """Delete the claims carrying `selector` that no pod refers to (any pod, ended or
        not: an ended task's volume is kept, as on Docker)."""
        for claim in await self._claim_list(selector):
            metadata: Json = claim["metadata"]
            namespace, name = str(metadata["namespace"]), str(metadata["name"])
            if metadata.get("deletionTimestamp") or await self._claim_used(namespace, name):
                continue
            response = await self._api.request(
                "DELETE", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"
            )
            if response.status_code not in (200, 202, 404):
                raise unexpected(f"removing volume {name}", response)

    async def _claim_used(self, namespace: str, claim: str) -> bool:
        """Whether a pod that is not being deleted mounts the claim (a removed task's pod may
        still be terminating when its volumes are removed)."""
        response = await self._api.request("GET", f"/api/v1/namespaces/{namespace}/pods")
        if response.status_code != 200:
            raise unexpected(f"listing pods in {namespace}", response)
        for pod in response.json().get("items") or []:
            if being_deleted(pod):
                continue  # the claim's protection holds it until the pod is gone
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                if (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim:
                    return True
        return False

    async def nodes(self) -> list[str]:
        response = await self._api.request("GET", "/api/v1/nodes")
        if response.status_code != 200:
            raise unexpected("listing nodes", response)
        return [str(node["metadata"]["name"]) for node in response.json().get("items") or []]


def being_deleted(item: Json) -> bool:
    return bool((item.get("metadata") or {}).get("deletionTimestamp"))
