"""The domain's SSH access rules behind the gateway's `SshAuthorizer` protocol."""

from __future__ import annotations

from dataclasses import dataclass

from berth.domain.containers import ssh_command_of
from berth.domain.context import Domain
from berth.domain.pausing import wake_workload
from berth.domain.ssh_access import (
    SshGrant,
    authorize_ssh,
    grants_for_key,
    still_allowed,
)
from berth.gateway.ssh.access import ROOT_USER, SeveralTargets, SshTarget, parse_ssh_username
from berth.runtime.base import TaskId


@dataclass(frozen=True)
class GrantedTarget(SshTarget):
    grant: SshGrant | None = None


def _target(grant: SshGrant) -> GrantedTarget:
    return GrantedTarget(
        container_id=grant.container_id,
        task_id=TaskId(grant.task_id),
        login_user=grant.login_user,
        grant=grant,
    )


class DomainSshAuthorizer:
    def __init__(self, domain: Domain) -> None:
        self._domain = domain

    async def authorize(self, username: str, public_key_openssh: str) -> SshTarget | None:
        login = parse_ssh_username(username)
        if login is None:
            return None
        grant = await authorize_ssh(
            self._domain,
            container_id=login.container_id,
            login_user=login.login_user,
            public_key=public_key_openssh,
        )
        return None if grant is None else _target(grant)

    async def authorize_key(self, public_key_openssh: str) -> SshTarget | SeveralTargets | None:
        grants = await grants_for_key(
            self._domain, public_key=public_key_openssh, login_user=ROOT_USER
        )
        if not grants:
            return None
        if len(grants) == 1:
            return _target(grants[0])
        return SeveralTargets(
            tuple(ssh_command_of(self._domain, grant.container_id) for grant in grants)
        )

    async def recheck(self, target: SshTarget) -> bool:
        if not isinstance(target, GrantedTarget) or target.grant is None:
            return False
        return await still_allowed(self._domain, target.grant)

    async def wake(self, target: SshTarget) -> None:
        await wake_workload(self._domain, target.container_id)
