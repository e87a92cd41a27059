"""The domain's SSH access rules behind the gateway's `SshAuthorizer` protocol."""

from __future__ import annotations

from dataclasses import dataclass

from berth.domain.context import Domain
from berth.domain.ssh_access import SshGrant, authorize_ssh, still_allowed
from berth.gateway.ssh_access import SshTarget, parse_ssh_username
from berth.runtime.base import TaskId


@dataclass(frozen=True)
class GrantedTarget(SshTarget):
    grant: SshGrant | None = None


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
        if grant is None:
            return None
        return GrantedTarget(
            container_id=grant.container_id,
            task_id=TaskId(grant.task_id),
            login_user=grant.login_user,
            grant=grant,
        )

    async def recheck(self, target: SshTarget) -> bool:
        if not isinstance(target, GrantedTarget) or target.grant is None:
            return False
        return await still_allowed(self._domain, target.grant)
