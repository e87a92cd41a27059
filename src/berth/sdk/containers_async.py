"""`AsyncClient.containers`: dev boxes, the Containers API (`/compute/containers`), async.

Dev boxes are long-lived containers reached over SSH; their answers carry `ssh_command`,
the command line that opens a shell in the box through berth's SSH gateway.
"""

from __future__ import annotations

from typing import Any

from berth.schemas.containers import ContainerList, ContainerOut, StatusOk
from berth.sdk._transport import AsyncTransport, Call

PREFIX = "/compute/containers"


class AsyncContainersAPI:
    """`client.containers` (async)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

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

    async def pause(self, container_id: str) -> ContainerOut:
        return await self._t.call(Call("POST", f"{PREFIX}/{container_id}/pause", ContainerOut))

    async def resume(self, container_id: str) -> ContainerOut:
        return await self._t.call(Call("POST", f"{PREFIX}/{container_id}/resume", ContainerOut))
