"""Whether the cluster has an image: the nodes' image lists first, else a probe pod.

Kubernetes pulls images itself, when a pod needs one. `ensure` asks the nodes (whose status
lists the images they hold) and, when none lists it, runs a probe pod with the image and a
command that does not exist: the kubelet pulls the image (or fails to), then fails to start
the command. `StartError` means the image is there; a pull failure is `ImageNotFound`.
"""

from __future__ import annotations

import asyncio
import secrets

from berth.runtime.base import ImageNotFound, RuntimeDriverError
from berth.runtime.kubernetes.client import ApiClient, Json, unexpected
from berth.runtime.kubernetes.mapping import CONTAINER, image_names
from berth.runtime.kubernetes.objects import Objects
from berth.runtime.kubernetes.status import IMAGE_FAILURES, container_status, waiting_failure

PROBE_TIMEOUT = 300.0


class ImageProbe:
    def __init__(self, api: ApiClient, objects: Objects, namespace: str) -> None:
        self._api = api
        self._objects = objects
        self._namespace = namespace
        self._known: set[str] = set()

    async def ensure(self, image: str) -> None:
        if image in self._known:
            return
        if await self._listed(image) or await self._probe(image):
            self._known.add(image)

    async def _listed(self, image: str) -> bool:
        response = await self._api.request("GET", "/api/v1/nodes")
        if response.status_code != 200:
            raise unexpected("listing nodes", response)
        names = image_names(image)
        for node in response.json().get("items") or []:
            for entry in (node.get("status") or {}).get("images") or []:
                if names & set(entry.get("names") or []):
                    return True
        return False

    async def _probe(self, image: str) -> bool:
        await self._objects.ensure_namespace(self._namespace, {})
        name = f"berth-image-probe-{secrets.token_hex(6)}"
        path = f"/api/v1/namespaces/{self._namespace}/pods"
        manifest: Json = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "berth"}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 0,
                "containers": [
                    {
                        "name": CONTAINER,
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/.berth-image-probe"],
                        "resources": {"limits": {"cpu": "10m", "memory": "16Mi"}},
                    }
                ],
            },
        }
        response = await self._api.request("POST", path, body=manifest)
        if response.status_code in (400, 422):
            raise ImageNotFound(f"image '{image}' is not a valid image name")
        if response.status_code != 201:
            raise unexpected(f"probing image '{image}'", response)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + PROBE_TIMEOUT
            while loop.time() < deadline:
                pod = await self._api.get_json(f"{path}/{name}")
                if pod is None:
                    break
                failure = waiting_failure(pod)
                if failure is not None and failure[0] in IMAGE_FAILURES:
                    raise ImageNotFound(
                        f"image '{image}' was not found and could not be pulled: {failure[1]}"
                    )
                state = container_status(pod)
                if state.get("imageID") or "terminated" in (state.get("state") or {}):
                    return True
                await asyncio.sleep(0.1)
            raise RuntimeDriverError(f"probing image '{image}' did not finish")
        finally:
            await self._api.request("DELETE", f"{path}/{name}", body={"gracePeriodSeconds": 0})
