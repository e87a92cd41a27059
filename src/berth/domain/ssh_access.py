"""Who may SSH into which container, decided at every connection and every channel, and
again whenever an event names the container (see the gateway's `ssh_revocation`).

The SSH gateway names the container and the login user (it routes by SSH user name, since SSH
carries no host name), or asks which containers a key opens (`root@<any host>`). Access needs
all of: the container is a dev box that is not deleted and should run (not stopped), its
owner has the compute primitive, its SSH access is enabled, the key is one of its owner's keys
selected for it, and its task runs. One query (`_grantable`) states these rules for all three
questions, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, select

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


def _grantable(fingerprint: str) -> Select[str, str, str | None]:
    """(container id, run id, task id) of every container the key may enter now."""
    return (
        select(Workload.id, Run.id, Run.task_id)
        .join(ContainerSshKey, ContainerSshKey.workload_id == Workload.id)
        .join(SshKey, SshKey.id == ContainerSshKey.key_id)
        .join(AccountKit, AccountKit.user_id == Workload.user_id)
        .join(Run, Run.workload_id == Workload.id)
        .where(
            SshKey.fingerprint == fingerprint,
            SshKey.user_id == Workload.user_id,
            Workload.type == "container",
            Workload.deleted_at.is_(None),
            Workload.desired_state == "running",
            Workload.ssh_enabled.is_(True),
            AccountKit.compute_enabled.is_(True),
            Run.status == "running",
            Run.task_id.is_not(None),
        )
    )


def _fingerprint(public_key: str) -> str | None:
    try:
        return parse_public_key(public_key)[1]
    except Invalid:
        return None


async def authorize_ssh(
    domain: Domain, *, container_id: str, login_user: str, public_key: str
) -> SshGrant | None:
    """A grant for `login_user` in the container, or None; see the module docstring."""
    fingerprint = _fingerprint(public_key)
    if fingerprint is None:
        return None
    async with domain.store.reading() as session:
        row = (
            await session.execute(_grantable(fingerprint).where(Workload.id == container_id))
        ).first()
    if row is None or row[2] is None:
        return None
    return SshGrant(container_id, row[2], row[1], login_user, fingerprint)


async def grants_for_key(domain: Domain, *, public_key: str, login_user: str) -> list[SshGrant]:
    """A grant per container the key may enter now, oldest container first.

    The key's owner is whoever selected it: the same public key added by two users opens
    the containers of both (whoever holds the private key is each of them).
    """
    fingerprint = _fingerprint(public_key)
    if fingerprint is None:
        return []
    async with domain.store.reading() as session:
        rows = (
            await session.execute(_grantable(fingerprint).order_by(Workload.created_at, Run.id))
        ).all()
    grants: dict[str, SshGrant] = {}
    for container_id, run_id, task_id in rows:
        if task_id is not None and container_id not in grants:
            grants[container_id] = SshGrant(container_id, task_id, run_id, login_user, fingerprint)
    return list(grants.values())


async def still_allowed(domain: Domain, grant: SshGrant) -> bool:
    """Whether a connection's grant still holds: the same rules, and the same task running
    (SSH toggled off, key removed or deselected, container stopped, deleted or replaced all
    end it)."""
    async with domain.store.reading() as session:
        row = (
            await session.execute(
                _grantable(grant.key_fingerprint)
                .where(Workload.id == grant.container_id, Run.task_id == grant.task_id)
                .limit(1)
            )
        ).first()
    return row is not None
