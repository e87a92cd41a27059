"""`AsyncClient.containers`: dev boxes, the Containers API (`/compute/containers`), async.

Dev boxes are long-lived containers reached over SSH; their answers carry `ssh_command`,
the command line that opens a shell in the box through berth's SSH gateway.
"""

from __future__ import annotations

import builtins
from typing import Any

from berth.schemas.containers import (
    ContainerList,
    ContainerOut,
    IngressRuleList,
    IngressRuleOut,
    SshKeyList,
    SshKeyOut,
    StatusOk,
)
from berth.sdk._transport import AsyncTransport, Call
from berth.sdk.files import AsyncFilesAPI

PREFIX = "/compute/containers"
KEYS = "/compute/ssh-keys"


class AsyncContainersAPI:
    """`client.containers` (async)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self.files = AsyncFilesAPI(transport, PREFIX)

    async def list(self) -> list[ContainerOut]:
        return (await self._t.call(Call("GET", PREFIX, ContainerList))).containers

    async def create(self, **fields: Any) -> ContainerOut:
        """The fields are sent as given; the server's error names any it refuses."""
        return await self._t.call(Call("POST", PREFIX, ContainerOut, body=fields))

    async def get(self, container_id: str) -> ContainerOut:
        return await self._t.call(Call("GET", f"{PREFIX}/{container_id}", ContainerOut))

    async def delete(self, container_id: str) -> StatusOk:
        return await self._t.call(Call("DELETE", f"{PREFIX}/{container_id}", StatusOk))

    async def start(self, container_id: str) -> ContainerOut:
        return await self._t.call(Call("POST", f"{PREFIX}/{container_id}/start", ContainerOut))

    async def stop(self, container_id: str) -> ContainerOut:
        return await self._t.call(Call("POST", f"{PREFIX}/{container_id}/stop", ContainerOut))

    async def ingress(self, container_id: str) -> builtins.list[IngressRuleOut]:
        """The dev box's ingress rules (ports published through berth's HTTP gateway)."""
        path = f"{PREFIX}/{container_id}/ingress"
        return (await self._t.call(Call("GET", path, IngressRuleList))).rules

    async def add_ingress(
        self, container_id: str, port: int, target_port: int | None = None
    ) -> IngressRuleOut:
        """Publish `target_port` of the box on `port` (80, 443 or 8000-8999); an existing
        rule on `port` is replaced."""
        body = {"port": port, "target_port": target_port}
        path = f"{PREFIX}/{container_id}/ingress"
        return await self._t.call(Call("POST", path, IngressRuleOut, body=body))

    async def remove_ingress(self, container_id: str, port: int) -> StatusOk:
        path = f"{PREFIX}/{container_id}/ingress/{port}"
        return await self._t.call(Call("DELETE", path, StatusOk))

    async def ssh_keys(self) -> builtins.list[SshKeyOut]:
        """Your SSH keys (a dev box lets in the ones named by its `ssh_key_ids`)."""
        return (await self._t.call(Call("GET", KEYS, SshKeyList))).ssh_keys

    async def add_ssh_key(self, name: str, public_key: str) -> SshKeyOut:
        body = {"name": name, "public_key": public_key}
        return await self._t.call(Call("POST", KEYS, SshKeyOut, body=body))

    async def delete_ssh_key(self, key_id: int) -> StatusOk:
        return await self._t.call(Call("DELETE", f"{KEYS}/{key_id}", StatusOk))

    async def pause(self, container_id: str) -> ContainerOut:
        return await self._t.call(Call("POST", f"{PREFIX}/{container_id}/pause", ContainerOut))

    async def resume(self, container_id: str) -> ContainerOut:
        return await self._t.call(Call("POST", f"{PREFIX}/{container_id}/resume", ContainerOut))
