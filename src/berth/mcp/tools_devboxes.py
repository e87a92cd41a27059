"""Dev box tools (`/compute/containers`): long-lived containers reached over SSH."""

from __future__ import annotations

from typing import Annotated

from mcp.server.fastmcp import FastMCP
from pydantic import Field

from berth.mcp.calls import ClientSource, Ctx, through_api
from berth.mcp.models import DevBoxList, Done, IngressRuleList, SshCommand
from berth.mcp.tools_workloads import READ, change
from berth.schemas.containers import ContainerOut, IngressRuleOut

DevBoxId = Annotated[str, Field(description="The dev box's id (from devboxes_list).")]


def register(server: FastMCP, source: ClientSource) -> None:
    @server.tool(annotations=READ)
    async def devboxes_list(ctx: Ctx) -> DevBoxList:
        """List your dev boxes with status, size, usage and the SSH command of each."""
        boxes = await through_api(source, ctx, lambda c: c.containers.list())
        return DevBoxList(dev_boxes=boxes)

    @server.tool(annotations=change(destructive=False, idempotent=False))
    async def devboxes_create(
        ctx: Ctx,
        name: Annotated[str, Field(description="Display name, 1-63 characters.")],
        ssh_key_ids: Annotated[
            list[int], Field(min_length=1, description="Ids of your SSH keys allowed in.")
        ],
        instance_type: Annotated[str, Field(description="Size, e.g. `nano`.")] = "nano",
        memory_mb: Annotated[int, Field(ge=64, le=65536)] = 512,
        storage_gb: Annotated[int, Field(ge=1, le=1024)] = 5,
        ssh_enabled: Annotated[bool, Field(description="Allow SSH in at once.")] = True,
    ) -> ContainerOut:
        """Create and start a dev box (costs credits while it runs). Its `ssh_command` opens
        a shell in it once it is `running`."""
        return await through_api(
            source,
            ctx,
            lambda c: c.containers.create(
                name=name,
                ssh_key_ids=ssh_key_ids,
                instance_type=instance_type,
                memory_mb=memory_mb,
                storage_gb=storage_gb,
                ssh_enabled=ssh_enabled,
            ),
        )

    @server.tool(annotations=change(destructive=True, idempotent=True))
    async def devboxes_delete(dev_box_id: DevBoxId, ctx: Ctx) -> Done:
        """Delete a dev box and its disk: what is stored in it is lost."""
        await through_api(source, ctx, lambda c: c.containers.delete(dev_box_id))
        return Done(detail=f"deleted dev box {dev_box_id}")

    @server.tool(annotations=change(destructive=False, idempotent=True))
    async def devboxes_start(dev_box_id: DevBoxId, ctx: Ctx) -> ContainerOut:
        """Start a stopped dev box (its disk is kept; costs credits while it runs)."""
        return await through_api(source, ctx, lambda c: c.containers.start(dev_box_id))

    @server.tool(annotations=change(destructive=True, idempotent=True))
    async def devboxes_stop(dev_box_id: DevBoxId, ctx: Ctx) -> ContainerOut:
        """Stop a dev box: its processes end, its disk is kept."""
        return await through_api(source, ctx, lambda c: c.containers.stop(dev_box_id))

    @server.tool(annotations=change(destructive=False, idempotent=True))
    async def devboxes_pause(dev_box_id: DevBoxId, ctx: Ctx) -> ContainerOut:
        """Pause an idle dev box: its processes are frozen with their memory and files kept,
        and it costs only its memory's price until resumed. A terminal, an SSH login, or
        devboxes_resume resumes it where it was. Docker only (a conflict on Kubernetes)."""
        return await through_api(source, ctx, lambda c: c.containers.pause(dev_box_id))

    @server.tool(annotations=change(destructive=False, idempotent=True))
    async def devboxes_resume(dev_box_id: DevBoxId, ctx: Ctx) -> ContainerOut:
        """Resume a paused dev box: its processes carry on where they stopped."""
        return await through_api(source, ctx, lambda c: c.containers.resume(dev_box_id))

    @server.tool(annotations=READ)
    async def devboxes_ssh_command(dev_box_id: DevBoxId, ctx: Ctx) -> SshCommand:
        """The command line that opens an SSH shell in a dev box (for a human, or a terminal
        you control), and whether SSH is enabled on it."""
        box = await through_api(source, ctx, lambda c: c.containers.get(dev_box_id))
        return SshCommand(
            dev_box_id=box.id,
            ssh_command=box.ssh_command,
            ssh_enabled=box.ssh_enabled,
            status=box.status,
        )

    @server.tool(annotations=READ)
    async def devboxes_ingress_list(dev_box_id: DevBoxId, ctx: Ctx) -> IngressRuleList:
        """A dev box's ingress rules: which of its ports berth's HTTP gateway publishes, and
        on which public port."""
        rules = await through_api(source, ctx, lambda c: c.containers.ingress(dev_box_id))
        return IngressRuleList(rules=rules)

    @server.tool(annotations=change(destructive=False, idempotent=True))
    async def devboxes_ingress_set(
        dev_box_id: DevBoxId,
        ctx: Ctx,
        port: Annotated[int, Field(description="The public port: 80, 443 or 8000-8999.")],
        target_port: Annotated[
            int | None, Field(description="The box's port (default: the same as `port`).")
        ] = None,
    ) -> IngressRuleOut:
        """Publish a port of the dev box through berth's HTTP gateway (a rule already on
        `port` is replaced)."""
        return await through_api(
            source, ctx, lambda c: c.containers.add_ingress(dev_box_id, port, target_port)
        )

    @server.tool(annotations=change(destructive=True, idempotent=True))
    async def devboxes_ingress_remove(
        dev_box_id: DevBoxId,
        ctx: Ctx,
        port: Annotated[int, Field(description="The rule's public port.")],
    ) -> Done:
        """Stop publishing a dev box's port: requests to it are no longer served."""
        await through_api(source, ctx, lambda c: c.containers.remove_ingress(dev_box_id, port))
        return Done(detail=f"removed the rule on port {port} of dev box {dev_box_id}")
