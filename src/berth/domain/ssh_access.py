"""Who may SSH into which container, decided at every connection and every channel.

The SSH gateway names the container and the login user (it routes by SSH user name, since SSH
carries no host name). Access needs all of: the container exists and is the key owner's, its
SSH access is enabled, the key is one of the keys selected for it, and its task runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain.context import Domain
from berth.domain.errors import Invalid
from berth.domain.ssh_keys import parse_public_key
from berth.store.models import AccountKit, ContainerSshKey, Run, SshKey, Workload


@dataclass(frozen=True)
class SshGrant:
    container_id: str
    task_id: str
    run_id: str
    login_user: str
    key_fingerprint: str


async def authorize_ssh(
    domain: Domain, *, container_id: str, login_user: str, public_key: str
) -> SshGrant | None:
    """A grant for `login_user` in the container, or None; see the module docstring."""
    try:
        _normalised, fingerprint = parse_public_key(public_key)
    except Invalid:
        return None
    async with domain.store.reading() as session:
        workload = await session.get(Workload, container_id)
        if (
            workload is None
            or workload.type != "container"
            or workload.deleted_at is not None
            or not workload.ssh_enabled
        ):
            return None
        selected = await session.scalar(
            select(SshKey.id)
            .join(ContainerSshKey, ContainerSshKey.key_id == SshKey.id)
            .where(
                ContainerSshKey.workload_id == container_id,
                SshKey.fingerprint == fingerprint,
                SshKey.user_id == workload.user_id,
            )
        )
        if selected is None:
            return None
        kit = await session.get(AccountKit, workload.user_id)
        if kit is None or not kit.compute_enabled:
            return None
        run = await _running_run(session, container_id)
    if run is None or run.task_id is None:
        return None
    return SshGrant(
        container_id=container_id,
        task_id=run.task_id,
        run_id=run.id,
        login_user=login_user,
        key_fingerprint=fingerprint,
    )


async def still_allowed(domain: Domain, grant: SshGrant) -> bool:
    """Re-check a connection's grant (SSH toggled off, key removed, task replaced...)."""
    async with domain.store.reading() as session:
        workload = await session.get(Workload, grant.container_id)
        if workload is None or workload.deleted_at is not None or not workload.ssh_enabled:
            return False
        selected = await session.scalar(
            select(SshKey.id)
            .join(ContainerSshKey, ContainerSshKey.key_id == SshKey.id)
            .where(
                ContainerSshKey.workload_id == grant.container_id,
                SshKey.fingerprint == grant.key_fingerprint,
            )
        )
        run = await _running_run(session, grant.container_id)
    return selected is not None and run is not None and run.task_id == grant.task_id


async def _running_run(session: AsyncSession, container_id: str) -> Run | None:
    return await session.scalar(
        select(Run).where(Run.workload_id == container_id, Run.status == "running").limit(1)
    )
