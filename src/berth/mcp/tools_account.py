"""Account tools: what the caller spent and has left (`/v1/usage`), and their SSH keys
(`/compute/ssh-keys`), which dev boxes let in."""

from __future__ import annotations

from typing import Annotated

from mcp.server.fastmcp import FastMCP
from pydantic import Field

from berth.mcp.calls import ClientSource, Ctx, through_api
from berth.mcp.models import Done, SshKeyList
from berth.mcp.tools_workloads import READ, change
from berth.schemas.containers import SshKeyOut
from berth.schemas.usage import UsageOut


def register(server: FastMCP, source: ClientSource) -> None:
    @server.tool(annotations=READ)
    async def usage_get(
        ctx: Ctx,
        days: Annotated[int, Field(ge=1, le=366, description="The period: the last N days.")] = 30,
    ) -> UsageOut:
        """Your credit balance now, and the credits your runs cost over the last `days` days:
        per day, per workload, and the latest runs behind them. Check it before starting
        expensive work: a create or start that needs credits is refused without them."""
        return await through_api(source, ctx, lambda c: c.usage(days))

    @server.tool(annotations=READ)
    async def ssh_keys_list(ctx: Ctx) -> SshKeyList:
        """Your SSH public keys with their ids and fingerprints (a dev box lets in the keys
        named by its `ssh_key_ids`)."""
        keys = await through_api(source, ctx, lambda c: c.containers.ssh_keys())
        return SshKeyList(ssh_keys=keys)

    @server.tool(annotations=change(destructive=False, idempotent=False))
    async def ssh_keys_add(
        ctx: Ctx,
        name: Annotated[str, Field(min_length=1, max_length=100, description="A label.")],
        public_key: Annotated[
            str, Field(description="An OpenSSH public key line, e.g. `ssh-ed25519 AAAA... me`.")
        ],
    ) -> SshKeyOut:
        """Add an SSH public key to your account; its `id` goes in a dev box's
        `ssh_key_ids`."""
        return await through_api(source, ctx, lambda c: c.containers.add_ssh_key(name, public_key))

    @server.tool(annotations=change(destructive=True, idempotent=True))
    async def ssh_keys_delete(
        ctx: Ctx, key_id: Annotated[int, Field(description="The key's id (ssh_keys_list).")]
    ) -> Done:
        """Delete one of your SSH keys: dev boxes stop letting it in."""
        await through_api(source, ctx, lambda c: c.containers.delete_ssh_key(key_id))
        return Done(detail=f"deleted SSH key {key_id}")
